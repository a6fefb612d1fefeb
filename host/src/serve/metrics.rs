//! What the service counts: Prometheus metrics for `GET /metrics` (the
//! Prometheus project's `prometheus-client`), and the recent figures the
//! dashboard shows (`GET /v1/stats`): per-tool count, failure rate and
//! p50/p95 latency over the last calls, denials, model usage per minute,
//! reload events.

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

    pub fn run_finished(&self, stop: &str) {
        self.runs.get_or_create(&KindLabel { kind: stop.into() }).inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
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
