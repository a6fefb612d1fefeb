//! Agent runs started over HTTP (`POST /v1/runs`) or by a schedule: one
//! prompt to a new agent session of a user, run in the background, its
//! events (the same JSON as `boram run --json`) followed over SSE and
//! ending with one `done` event that carries the run's cost and tokens.
//!
//! [`queue::RunQueue`] queues them in a run store (SQLite in the data
//! directory, or PostgreSQL shared by replicas): a run outlives the process
//! that took it, and is resumed from its journal after a crash.

pub mod queue;

use crate::agent::{Agent, AgentEvent, TurnResult};
use crate::llm::Usage;
use crate::serve::tenants::Tenant;
use crate::session::SessionChoice;
use serde_json::{Value, json};
use std::sync::Arc;

/// Builds the agents runs use.
pub trait AgentSource: Send + Sync {
    /// An agent for `tenant`, as `profile` (`None`: the default), writing `session`.
    fn agent(&self, tenant: &Tenant, profile: Option<&str>, session: SessionChoice<'_>) -> anyhow::Result<Agent>;
    /// The provider and model an agent of `profile` talks to (named in the
    /// session before it starts).
    fn model_of(&self, profile: Option<&str>) -> anyhow::Result<(String, String)>;
}

pub type AgentFactory = Arc<dyn AgentSource>;

pub use crate::store::RunSummary;

/// Why a run could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The shared store is unreachable: try again (503).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

pub use queue::RunQueue;

/// Called with a run's stop word and how long it ran when it ends on this replica.
pub type OnFinish = Box<dyn FnOnce(&str, std::time::Duration) + Send>;

/// Counts a run's refusals where they happen, like a refused direct call:
/// `policy` (the policy denies the tool), `approval` (a `prompt` tool with
/// nobody to ask, or an answer no).
pub fn count_denial(metrics: &crate::serve::metrics::Metrics, event: &AgentEvent) {
    if let AgentEvent::Approval { decision, .. } = event
        && decision.starts_with("deny")
    {
        metrics.denial(if decision == "deny (policy)" {
            "policy"
        } else {
            "approval"
        });
    }
}

/// An agent event as a follower sees it; `None` for the agent's own
/// `done`: the run's (with cost and tokens) is the one end a follower sees.
pub fn event_value(event: &AgentEvent) -> Option<Value> {
    if matches!(event, AgentEvent::Done { .. }) {
        return None;
    }
    Some(serde_json::to_value(event).unwrap_or_else(|_| json!({"type": "unknown"})))
}

/// The run's one `done` event.
pub fn done_event(stop: &str, result: &TurnResult, cost_usd: f64, usage: Usage) -> Value {
    json!({
        "type": "done",
        "stop": stop,
        "rounds": result.rounds,
        "text": result.text,
        "error": result.error,
        "cost_usd": cost_usd,
        "usage": usage,
    })
}

/// The result of a run whose turn panicked: it still ends (`error`) and
/// reports `done`, so a follower never waits on a lost worker.
pub fn panic_result(run: &str, panic: Box<dyn std::any::Any + Send>) -> TurnResult {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    tracing::error!(run, panic = %what, "a run failed unexpectedly");
    TurnResult {
        stop: crate::agent::Stop::Error,
        rounds: 0,
        text: String::new(),
        error: Some(format!("the run failed unexpectedly ({what}); this is a bug in boram")),
    }
}
