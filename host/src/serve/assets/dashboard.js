// BoramClaw dashboard: polls /v1/stats every 2 s, starts runs and shows
// each run as a timeline (prompt, tool calls with outcome and duration,
// approvals and denials, the answer). The bearer token (when the service
// requires one) is kept in localStorage; `?token=…` in the address sets
// it, `?run=ID` opens that run's timeline.
"use strict";

const params = new URLSearchParams(location.search);
if (params.get("token")) localStorage.setItem("boram-token", params.get("token"));
let token = localStorage.getItem("boram-token") || "";
const charts = {};
let following = 0; // the timeline shown (a newer run replaces an older one)

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function cell(text, cls) {
  return el("td", cls, text);
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

// Without a valid token nothing but the gate is shown: empty headings
// would look like a service with nothing in it.
function gate(closed) {
  document.getElementById("gate").style.display = closed ? "block" : "none";
  document.getElementById("main").style.display = closed ? "none" : "grid";
  document.getElementById("token-box").style.display = closed ? "inline" : "none";
  if (closed) document.getElementById("status").textContent = "a token is needed";
}

async function refresh() {
  let response;
  try {
    response = await fetch("/v1/stats", { headers: headers() });
  } catch (e) {
    document.getElementById("status").textContent = "offline: " + e;
    return;
  }
  if (response.status === 401) return gate(true);
  gate(false);
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
    ? s.reloads.slice().reverse().map((r) => [cell((r.time || "").slice(11, 19)), cell(r.event),
      cell((r.tools || []).join(", ") || r.path || "", "text")])
    : [[cell("none", "muted")]]);
  fill("runs-table", data.runs.map((r) => {
    const link = el("a", "", r.prompt.slice(0, 80));
    link.href = "?run=" + encodeURIComponent(r.id);
    link.addEventListener("click", (e) => { e.preventDefault(); showRun(r.id, r.prompt); });
    const prompt = cell("", "text");
    prompt.append(link);
    return [cell(r.started.slice(11, 19)), cell(r.status, r.status === "error" ? "bad" : ""), prompt];
  }));
  fill("sessions-table", data.sessions.map((x) => [cell(x.started.slice(0, 16).replace("T", " ")), cell(x.model),
    cell(x.title, "text"), cell("$" + x.cost_usd.toFixed(4), "num")]));
  drawUsage(s.usage);
  const schedules = await (await fetch("/v1/schedules", { headers: headers() })).json();
  fill("schedules-table", schedules.schedules.length
    ? schedules.schedules.map((x) => [cell(x.name), cell(x.cron), cell(x.profile || "general"),
      cell("next " + (x.next_run || "-").slice(0, 16).replace("T", " ")), cell(x.last_status || "never run"),
      cell(x.task.slice(0, 80), "text")])
    : [[cell("none — boram schedule add NAME --cron \"0 8 * * 1\" TASK", "muted text")]]);
  // For the browser test: does anything stick out sideways at this width?
  document.body.dataset.overflow = document.documentElement.scrollWidth > window.innerWidth + 1 ? "yes" : "no";
}

// Tokens and cost on separate charts, each on its own scale: on one chart
// the cost line (cents) lay flat on the token axis and hid the input line.
function drawUsage(usage) {
  const byMinute = new Map(usage.map((u) => [u.minute, u]));
  const last = usage.length ? usage[usage.length - 1].minute : Math.floor(Date.now() / 60000) * 60;
  const minutes = Array.from({ length: 61 }, (_, i) => last - (60 - i) * 60);
  const pick = (key) => minutes.map((m) => (byMinute.get(m) || {})[key] || 0);
  draw("tokens-chart", [minutes, pick("input_tokens"), pick("output_tokens")],
    [{ label: "input tokens", stroke: "#2f6fdf" }, { label: "output tokens", stroke: "#12a150" }]);
  draw("cost-chart", [minutes, pick("cost_usd")], [{ label: "cost $", stroke: "#c2410c", value: (u, v) => v == null ? "" : "$" + v.toFixed(4) }]);
}

function draw(id, data, series) {
  if (charts[id]) return charts[id].setData(data);
  const box = document.getElementById(id);
  charts[id] = new uPlot({
    width: Math.max(box.clientWidth - 10, 280), height: 200,
    series: [{}, ...series],
  }, data, box);
}

// The timeline of one run, from its events (the whole history, then live).
function timeline(prompt) {
  const list = document.getElementById("timeline");
  list.replaceChildren();
  const calls = new Map();
  let answer = null;
  const add = (cls, what, detail) => {
    const li = el("li", cls);
    li.append(el("span", "what", what));
    if (detail !== undefined) li.append(el("span", "detail", detail));
    list.append(li);
    return li;
  };
  if (prompt) add("prompt", "Prompt", prompt);
  return (event) => {
    switch (event.type) {
      case "text_delta":
        if (!answer) answer = add("answer", "Answer");
        answer.append(event.text);
        break;
      case "tool_call": {
        answer = null;
        const li = add("tool", event.name);
        li.prepend(el("span", "badge running", "called"));
        const input = JSON.stringify(event.input);
        li.append(el("span", "detail", input.length > 300 ? input.slice(0, 300) + "…" : input));
        calls.set(event.id, li);
        break;
      }
      case "approval": {
        const li = calls.get(event.id) || add("tool", event.name);
        if (event.decision.startsWith("deny")) {
          li.classList.add("denied");
          li.querySelector(".badge").className = "badge denied";
          li.querySelector(".badge").textContent = "denied";
          // The reason names the operator's fix (the policy line to change).
          li.append(el("span", "fix", event.reason || event.decision));
        }
        break;
      }
      case "tool_started": {
        const badge = calls.get(event.id)?.querySelector(".badge");
        if (badge) badge.textContent = "running";
        break;
      }
      case "tool_result": {
        const li = calls.get(event.id) || add("tool", event.name);
        let badge = li.querySelector(".badge");
        if (!badge) {
          badge = el("span", "badge");
          li.prepend(badge);
        }
        if (!li.classList.contains("denied")) {
          badge.className = "badge " + (event.is_error ? "failed" : "ok");
          badge.textContent = event.outcome;
        }
        li.querySelector(".what").textContent = event.name + " · " + event.duration_ms + " ms";
        // A refusal's result repeats the reason already shown as the fix.
        const fix = li.querySelector(".fix");
        if (!(fix && event.content.includes(fix.textContent))) {
          const content = event.content.length > 400 ? event.content.slice(0, 400) + "…" : event.content;
          li.append(el("span", "detail", content));
        }
        break;
      }
      case "retrying":
        add("retry", "Retrying", "attempt " + event.attempt + " in " + event.wait_ms + " ms: " + event.reason);
        break;
      case "resumed":
        add("retry", "Resumed", "the run continued after its process stopped");
        break;
      case "done": {
        const tokens = event.usage ? (event.usage.input_tokens + " in / " + event.usage.output_tokens + " out tokens") : "";
        const cost = event.cost_usd !== undefined ? " · $" + Number(event.cost_usd).toFixed(4) : "";
        add("done", "Done: " + event.stop, event.rounds + " rounds · " + tokens + cost + (event.error ? "\n" + event.error : ""));
        break;
      }
      default:
        break;
    }
  };
}

async function follow(url, onEvent, mine) {
  const stream = await fetch(url, { headers: headers() });
  const reader = stream.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done || mine !== following) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}

async function showRun(id, prompt) {
  const mine = ++following;
  const state = document.getElementById("run-state");
  state.textContent = "run " + id;
  if (prompt === undefined) {
    const run = await fetch("/v1/runs/" + encodeURIComponent(id), { headers: headers() });
    prompt = run.ok ? (await run.json()).prompt : "";
  }
  const onEvent = timeline(prompt);
  await follow("/v1/runs/" + encodeURIComponent(id) + "/events", (event) => {
    onEvent(event);
    if (event.type === "done") state.textContent = "run " + id + ": " + event.stop;
  }, mine);
  document.body.dataset.timeline = "done";
  refresh();
}

async function startRun() {
  const prompt = document.getElementById("prompt").value.trim();
  if (!prompt) return;
  const response = await fetch("/v1/runs", {
    method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify({ prompt }),
  });
  const started = await response.json();
  if (!response.ok) { document.getElementById("run-state").textContent = started.error; return; }
  showRun(started.id, prompt);
}

document.getElementById("run").addEventListener("click", startRun);
document.getElementById("save-token").addEventListener("click", () => {
  token = document.getElementById("token").value;
  localStorage.setItem("boram-token", token);
  refresh();
});
refresh();
if (params.get("run")) showRun(params.get("run"));
setInterval(refresh, 2000);
