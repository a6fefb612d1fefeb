//! What the service counts: Prometheus metrics for `GET /metrics` (the
//! Prometheus project's `prometheus-client`), and the recent figures the
//! dashboard shows (`GET /v1/stats`): per-tool count, failure rate and
//! p50/p95 latency over the last calls, denials, model usage per minute,
//! reload events.
//!
//! `/metrics` speaks both formats Prometheus reads: OpenMetrics when the
//! scraper asks for it (`Accept: application/openmetrics-text`, as
//! Prometheus itself does), else the classic text format 0.0.4 (curl, older
//! scrapers, the classic parsers). The crate encodes OpenMetrics only;
//! [`to_text_004`] rewrites that into the classic format (counter families
//! are named with their `_total`, `info` becomes a gauge, no `# EOF`).
//! Families that have a fixed set of labels (denial kinds, run outcomes)
//! are exported at 0 from the start, so a fresh service is not empty.

use crate::llm::Usage;
use crate::runtime::{CallReport, Outcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// Latencies kept per tool for the dashboard's percentiles.
const RECENT_CALLS: usize = 1000;
/// Minutes of model usage kept for the dashboard's chart.
const USAGE_MINUTES: usize = 120;
/// Reload events kept for the dashboard.
const RECENT_RELOADS: usize = 20;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolOutcome {
    tool: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabel {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabel {
    model: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabel {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// Every kind of denial, exported at 0 until one happens.
pub const DENIAL_KINDS: [&str; 4] = ["policy", "approval", "http", "sandbox"];
/// Every way a run ends (the agent's stop words).
const RUN_OUTCOMES: [&str; 6] = ["answered", "max_rounds", "budget", "time_limit", "cancelled", "error"];
/// Every hot-swap event (`registry::watch::ReloadEvent`, and the policy's).
const RELOAD_EVENTS: [&str; 6] = [
    "tool_loaded",
    "tool_swapped",
    "tool_rejected",
    "tool_unloaded",
    "policy_reloaded",
    "policy_rejected",
];

pub struct Metrics {
    registry: Registry,
    tool_calls: Family<ToolOutcome, Counter>,
    tool_latency: Family<ToolLabel, Histogram>,
    denials: Family<KindLabel, Counter>,
    model_calls: Family<ModelLabel, Counter>,
    model_tokens: Family<TokenLabel, Counter>,
    model_cost: Family<ModelLabel, Counter<f64, AtomicU64>>,
    reloads: Family<EventLabel, Counter>,
    runs: Family<KindLabel, Counter>,
    run_duration: Family<OutcomeLabel, Histogram>,
    http_requests: Family<HttpLabel, Counter>,
    http_latency: Family<RouteLabel, Histogram>,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    tools: BTreeMap<String, ToolRecent>,
    denials: BTreeMap<String, u64>,
    /// (unix minute, input tokens, output tokens, cost) per minute.
    usage: VecDeque<(u64, u64, u64, f64)>,
    reloads: VecDeque<serde_json::Value>,
}

#[derive(Default)]
struct ToolRecent {
    calls: u64,
    failures: u64,
    latencies_ms: VecDeque<f64>,
}

/// The dashboard's figures.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub tools: Vec<ToolStats>,
    pub denials: BTreeMap<String, u64>,
    /// `{minute (unix seconds), input_tokens, output_tokens, cost_usd}` per minute.
    pub usage: Vec<serde_json::Value>,
    pub reloads: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct ToolStats {
    pub tool: String,
    pub calls: u64,
    pub failures: u64,
    pub failure_rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("boram");
        let tool_calls = Family::<ToolOutcome, Counter>::default();
        registry.register("tool_calls", "Tool calls by tool and outcome", tool_calls.clone());
        let tool_latency = Family::<ToolLabel, Histogram>::new_with_constructor(|| {
            // 0.25 ms … ~8 s
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register(
            "tool_call_duration_seconds",
            "Wall time of tool calls, sandbox set-up included",
            tool_latency.clone(),
        );
        let denials = Family::<KindLabel, Counter>::default();
        registry.register(
            "denials",
            "Refusals by kind: policy (approval = deny), approval (prompt refused), http (egress denied)",
            denials.clone(),
        );
        let model_calls = Family::<ModelLabel, Counter>::default();
        registry.register("model_calls", "Completed model calls", model_calls.clone());
        let model_tokens = Family::<TokenLabel, Counter>::default();
        registry.register(
            "model_tokens",
            "Model tokens by kind (input, output, cache_read, cache_write)",
            model_tokens.clone(),
        );
        let model_cost = Family::<ModelLabel, Counter<f64, AtomicU64>>::default();
        registry.register("model_cost_usd", "Model cost in US dollars", model_cost.clone());
        let reloads = Family::<EventLabel, Counter>::default();
        registry.register(
            "reloads",
            "Hot-swap events (tool loaded, swapped, rejected, …)",
            reloads.clone(),
        );
        let runs = Family::<KindLabel, Counter>::default();
        registry.register("runs", "Agent runs by how they ended", runs.clone());
        let run_duration = Family::<OutcomeLabel, Histogram>::new_with_constructor(|| {
            // 50 ms … ~27 min
            Histogram::new(exponential_buckets(0.05, 2.0, 16))
        });
        registry.register(
            "run_duration_seconds",
            "Wall time of agent runs (of this attempt, for a resumed run) by outcome",
            run_duration.clone(),
        );
        let http_requests = Family::<HttpLabel, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route (the path pattern), method and status",
            http_requests.clone(),
        );
        let http_latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            // 0.1 ms … ~3 s (an event stream counts until its headers are sent)
            Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to its response headers) by route",
            http_latency.clone(),
        );
        registry.register(
            "build",
            "The running boram: version",
            prometheus_client::metrics::info::Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        for kind in DENIAL_KINDS {
            let _ = denials.get_or_create(&KindLabel { kind: kind.into() });
        }
        for outcome in RUN_OUTCOMES {
            let _ = runs.get_or_create(&KindLabel { kind: outcome.into() });
            let _ = run_duration.get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            });
        }
        for event in RELOAD_EVENTS {
            let _ = reloads.get_or_create(&EventLabel { event: event.into() });
        }
        Self {
            registry,
            tool_calls,
            tool_latency,
            denials,
            model_calls,
            model_tokens,
            model_cost,
            reloads,
            runs,
            run_duration,
            http_requests,
            http_latency,
            recent: Mutex::default(),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn tool_call(&self, report: &CallReport) {
        let outcome = serde_json::to_value(report.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.tool_calls
            .get_or_create(&ToolOutcome {
                tool: report.tool.clone(),
                outcome,
            })
            .inc();
        let seconds = report.duration.as_secs_f64();
        self.tool_latency
            .get_or_create(&ToolLabel {
                tool: report.tool.clone(),
            })
            .observe(seconds);
        if report.outcome == Outcome::Denied {
            self.denial("policy");
        }
        for _ in report.http.iter().filter(|r| r.denied()) {
            self.denial("http");
        }
        let mut recent = self.recent();
        let entry = recent.tools.entry(report.tool.clone()).or_default();
        entry.calls += 1;
        if !report.outcome.is_ok() {
            entry.failures += 1;
        }
        entry.latencies_ms.push_back(seconds * 1e3);
        if entry.latencies_ms.len() > RECENT_CALLS {
            entry.latencies_ms.pop_front();
        }
    }

    pub fn denial(&self, kind: &str) {
        self.denials.get_or_create(&KindLabel { kind: kind.into() }).inc();
        *self.recent().denials.entry(kind.to_string()).or_default() += 1;
    }

    pub fn model_call(&self, model: &str, usage: &Usage, cost_usd: Option<f64>) {
        let model = model.to_string();
        self.model_calls
            .get_or_create(&ModelLabel { model: model.clone() })
            .inc();
        for (kind, n) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
        ] {
            self.model_tokens
                .get_or_create(&TokenLabel {
                    model: model.clone(),
                    kind: kind.into(),
                })
                .inc_by(n);
        }
        let cost = cost_usd.unwrap_or(0.0);
        self.model_cost.get_or_create(&ModelLabel { model }).inc_by(cost);
        let minute = now_secs() / 60 * 60;
        let mut recent = self.recent();
        match recent.usage.back_mut() {
            Some(last) if last.0 == minute => {
                last.1 += usage.input_tokens;
                last.2 += usage.output_tokens;
                last.3 += cost;
            }
            _ => recent
                .usage
                .push_back((minute, usage.input_tokens, usage.output_tokens, cost)),
        }
        if recent.usage.len() > USAGE_MINUTES {
            recent.usage.pop_front();
        }
    }

    pub fn reload(&self, event: &serde_json::Value) {
        let kind = event["event"].as_str().unwrap_or("unknown").to_string();
        self.reloads.get_or_create(&EventLabel { event: kind }).inc();
        let mut recent = self.recent();
        recent.reloads.push_back(event.clone());
        if recent.reloads.len() > RECENT_RELOADS {
            recent.reloads.pop_front();
        }
    }

    /// Exports the families of these tools and this model at 0 from the
    /// start (`prometheus-client` leaves out a family with no series).
    pub fn expect(&self, tools: &[String], model: Option<&str>) {
        for tool in tools {
            let _ = self.tool_calls.get_or_create(&ToolOutcome {
                tool: tool.clone(),
                outcome: "ok".into(),
            });
            let _ = self.tool_latency.get_or_create(&ToolLabel { tool: tool.clone() });
        }
        if let Some(model) = model {
            let _ = self.model_calls.get_or_create(&ModelLabel { model: model.into() });
            let _ = self.model_cost.get_or_create(&ModelLabel { model: model.into() });
            for kind in ["input", "output", "cache_read", "cache_write"] {
                let _ = self.model_tokens.get_or_create(&TokenLabel {
                    model: model.into(),
                    kind: kind.into(),
                });
            }
        }
    }

    /// A run ended with `stop` after `took`.
    pub fn run_finished(&self, stop: &str, took: std::time::Duration) {
        self.runs.get_or_create(&KindLabel { kind: stop.into() }).inc();
        self.run_duration
            .get_or_create(&OutcomeLabel { outcome: stop.into() })
            .observe(took.as_secs_f64());
    }

    /// An HTTP request to `route` (its pattern, e.g. `/v1/runs/{id}`) answered `status` after `took`.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: std::time::Duration) {
        self.http_requests
            .get_or_create(&HttpLabel {
                route: route.into(),
                method: method.into(),
                status: status.to_string(),
            })
            .inc();
        self.http_latency
            .get_or_create(&RouteLabel { route: route.into() })
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }

    /// The classic Prometheus text format (0.0.4).
    pub fn encode_text_004(&self) -> String {
        to_text_004(&self.encode())
    }

    pub fn stats(&self) -> Stats {
        let recent = self.recent();
        let tools = recent
            .tools
            .iter()
            .map(|(tool, r)| {
                let mut sorted: Vec<f64> = r.latencies_ms.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                ToolStats {
                    tool: tool.clone(),
                    calls: r.calls,
                    failures: r.failures,
                    failure_rate: if r.calls == 0 {
                        0.0
                    } else {
                        r.failures as f64 / r.calls as f64
                    },
                    p50_ms: percentile(&sorted, 0.50),
                    p95_ms: percentile(&sorted, 0.95),
                }
            })
            .collect();
        Stats {
            tools,
            denials: recent.denials.clone(),
            usage: recent
                .usage
                .iter()
                .map(|(minute, input, output, cost)| {
                    serde_json::json!({"minute": minute, "input_tokens": input, "output_tokens": output, "cost_usd": cost})
                })
                .collect(),
            reloads: recent.reloads.iter().cloned().collect(),
        }
    }
}

/// OpenMetrics text (as `prometheus-client` writes it) in the classic text
/// format 0.0.4: a counter family is named with its samples' `_total`
/// suffix (the classic parsers match samples to the `# TYPE` name, and
/// find none otherwise), `info` and `stateset` become gauges, `# UNIT`
/// and `# EOF` go, and `_created` samples are dropped.
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(String, String)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name.to_string(), text.to_string()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_string(), "gauge"),
                "gaugehistogram" => (name.to_string(), "histogram"),
                other => (name.to_string(), other),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        let sample_name = line.split(['{', ' ']).next().unwrap_or_default();
        if sample_name.ends_with("_created") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether an `Accept` header prefers OpenMetrics to the classic text
/// format (by quality, the earlier range winning a tie; `*/*` alone is text).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut best: Option<(f32, bool)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let openmetrics = match media.as_str() {
            "application/openmetrics-text" => true,
            "text/plain" | "*/*" | "text/*" => false,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, openmetrics));
        }
    }
    best.is_some_and(|(_, openmetrics)| openmetrics)
}

/// Nearest-rank percentile of sorted values; 0 when empty.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_service_exports_every_family_in_both_formats_issue_18() {
        let metrics = Metrics::new();
        metrics.expect(&["text_stats".to_string()], Some("claude-x"));
        let open = metrics.encode();
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE boram_tool_calls counter"), "{open}");
        assert!(open.contains("boram_denials_total{kind=\"sandbox\"} 0"), "{open}");
        assert!(open.contains("boram_runs_total{kind=\"answered\"} 0"), "{open}");
        assert!(open.contains("boram_reloads_total{event=\"tool_swapped\"} 0"), "{open}");
        assert!(
            open.contains("boram_tool_calls_total{tool=\"text_stats\",outcome=\"ok\"} 0"),
            "{open}"
        );
        assert!(
            open.contains("boram_model_tokens_total{model=\"claude-x\",kind=\"input\"} 0"),
            "{open}"
        );
        let text = metrics.encode_text_004();
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
        assert!(text.contains("# TYPE boram_tool_calls_total counter"), "{text}");
        assert!(text.contains("# HELP boram_denials_total Refusals by kind"), "{text}");
        assert!(text.contains("# TYPE boram_build_info gauge"), "{text}");
        assert!(
            text.contains(&format!(
                "boram_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("# TYPE boram_run_duration_seconds histogram"), "{text}");
    }

    #[test]
    fn openmetrics_only_when_the_scraper_prefers_it_issue_18() {
        // What Prometheus 2.x/3.x sends.
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
             text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some(
            "text/plain, application/openmetrics-text;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(wants_openmetrics(Some(
            "text/plain;q=0.3, application/openmetrics-text"
        )));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.95), 95.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn model_usage_is_exposed_in_prometheus_text() {
        let metrics = Metrics::new();
        let usage = Usage {
            input_tokens: 100,
            output_tokens: 20,
            ..Usage::default()
        };
        metrics.model_call("claude-x", &usage, Some(0.5));
        metrics.denial("approval");
        let text = metrics.encode();
        assert!(text.contains("boram_model_calls_total{model=\"claude-x\"} 1"), "{text}");
        assert!(
            text.contains("boram_model_tokens_total{model=\"claude-x\",kind=\"input\"} 100"),
            "{text}"
        );
        assert!(
            text.contains("boram_model_cost_usd_total{model=\"claude-x\"} 0.5"),
            "{text}"
        );
        assert!(text.contains("boram_denials_total{kind=\"approval\"} 1"), "{text}");
        assert_eq!(metrics.stats().usage[0]["input_tokens"], 100);
    }
}
