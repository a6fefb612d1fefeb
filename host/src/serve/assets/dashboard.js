// BoramClaw dashboard: polls /v1/stats every 2 s, starts runs and follows
// their events. The bearer token (when the service requires one) is kept
// in localStorage; `?token=…` in the address sets it.
"use strict";

const params = new URLSearchParams(location.search);
if (params.get("token")) localStorage.setItem("boram-token", params.get("token"));
let token = localStorage.getItem("boram-token") || "";
let chart = null;

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

function needToken() {
  document.getElementById("token-box").style.display = "inline";
  document.getElementById("status").textContent = "this service needs a token";
}

async function refresh() {
  let response;
  try {
    response = await fetch("/v1/stats", { headers: headers() });
  } catch (e) {
    document.getElementById("status").textContent = "offline: " + e;
    return;
  }
  if (response.status === 401) return needToken();
  const data = await response.json();
  const s = data.stats;
  document.getElementById("status").textContent =
    "user " + data.user + " · up " + data.uptime_s + " s · " + s.tools.reduce((n, t) => n + t.calls, 0) + " tool calls";
  fill("tools-table", s.tools.map((t) => [
    cell(t.tool), cell(t.calls, "num"), cell((t.failure_rate * 100).toFixed(1), "num" + (t.failures ? " bad" : "")),
    cell(t.p50_ms.toFixed(2), "num"), cell(t.p95_ms.toFixed(2), "num"),
  ]));
  const denials = Object.entries(s.denials);
  fill("denials-table", denials.length ? denials.map(([k, n]) => [cell(k), cell(n, "num")]) : [[cell("none", "muted")]]);
  fill("reloads-table", s.reloads.length
    ? s.reloads.slice().reverse().map((r) => [cell(r.time || ""), cell(r.event), cell((r.tools || []).join(", ") || r.path || "")])
    : [[cell("none", "muted")]]);
  fill("runs-table", data.runs.map((r) => [cell(r.started.slice(11, 19)), cell(r.status), cell(r.prompt.slice(0, 60))]));
  fill("sessions-table", data.sessions.map((x) => [cell(x.started.slice(0, 19).replace("T", " ")), cell(x.model), cell(x.title),
    cell("$" + x.cost_usd.toFixed(4), "num")]));
  drawUsage(s.usage);
  const schedules = await (await fetch("/v1/schedules", { headers: headers() })).json();
  fill("schedules-table", schedules.schedules.length
    ? schedules.schedules.map((x) => [cell(x.name), cell(x.cron), cell(x.profile || "general"),
      cell("next " + (x.next_run || "-").slice(0, 16).replace("T", " ")), cell(x.last_status || "never run"),
      cell(x.task.slice(0, 60))])
    : [[cell("none — boram schedule add NAME --cron \"0 8 * * 1\" TASK", "muted")]]);
}

function drawUsage(usage) {
  const el = document.getElementById("usage-chart");
  if (!usage.length) {
    el.textContent = "no model calls yet";
    chart = null;
    return;
  }
  // The last 60 minutes, one point per minute, zero where nothing happened.
  const byMinute = new Map(usage.map((u) => [u.minute, u]));
  const last = usage[usage.length - 1].minute;
  const minutes = Array.from({ length: 61 }, (_, i) => last - (60 - i) * 60);
  const pick = (key) => minutes.map((m) => (byMinute.get(m) || {})[key] || 0);
  const series = [minutes, pick("input_tokens"), pick("output_tokens"), pick("cost_usd")];
  if (chart) return chart.setData(series);
  el.textContent = "";
  chart = new uPlot({
    width: Math.max(el.clientWidth - 20, 300), height: 220,
    series: [{}, { label: "input tokens", stroke: "#2f6fdf" }, { label: "output tokens", stroke: "#12a150" },
      { label: "cost $", stroke: "#c2410c", scale: "usd" }],
    axes: [{}, {}, { scale: "usd", side: 1, grid: { show: false } }],
  }, series, el);
}

async function startRun() {
  const prompt = document.getElementById("prompt").value.trim();
  if (!prompt) return;
  const out = document.getElementById("events");
  const state = document.getElementById("run-state");
  out.textContent = "";
  const response = await fetch("/v1/runs", {
    method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify({ prompt }),
  });
  const started = await response.json();
  if (!response.ok) { state.textContent = started.error; return; }
  state.textContent = "run " + started.id;
  const stream = await fetch(started.events, { headers: headers() });
  const reader = stream.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      const event = JSON.parse(data);
      if (event.type === "text_delta") out.append(event.text);
      else out.append("\n[" + event.type + "] " + JSON.stringify(event) + "\n");
      out.scrollTop = out.scrollHeight;
      if (event.type === "done") state.textContent = "run " + started.id + ": " + event.stop;
    }
  }
  refresh();
}

document.getElementById("run").addEventListener("click", startRun);
document.getElementById("save-token").addEventListener("click", () => {
  token = document.getElementById("token").value;
  localStorage.setItem("boram-token", token);
  document.getElementById("token-box").style.display = "none";
  refresh();
});
refresh();
setInterval(refresh, 2000);
