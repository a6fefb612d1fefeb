//! Agent runs started over HTTP (`POST /v1/runs`) or by a schedule: one
//! prompt to a new agent session of a user, run in the background, its
//! events (the same JSON as `boram run --json`) followed over SSE and
//! ending with one `done` event that carries the run's cost and tokens.
//!
//! Two backends behind [`RunQueue`]: [`local`] runs in this process (the
//! embedded store: a run ends with its process); [`shared`] queues runs in
//! PostgreSQL, where any replica may execute one, a dead replica's run is
//! resumed by another from its journal, and events are read back from the
//! database by whichever replica a client asks.

pub mod local;
pub mod shared;

use crate::agent::{Agent, AgentEvent, TurnResult};
use crate::llm::Usage;
use crate::serve::tenants::Tenant;
use crate::session::SessionChoice;
use futures::stream::BoxStream;
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

/// Where this service's runs live.
pub enum RunQueue {
    Local(local::LocalRuns),
    Shared(Arc<shared::SharedRuns>),
}

/// Called with a run's stop word and how long it ran when it ends on this replica.
pub type OnFinish = Box<dyn FnOnce(&str, std::time::Duration) + Send>;

impl RunQueue {
    /// Starts (or queues) `prompt` for `tenant`; returns the run's id.
    pub async fn start(
        &self,
        tenant: &Arc<Tenant>,
        factory: &AgentFactory,
        profile: Option<&str>,
        prompt: String,
        on_finish: OnFinish,
    ) -> Result<String, RunError> {
        match self {
            RunQueue::Local(runs) => runs
                .start(tenant, factory, profile, prompt, on_finish)
                .map(|run| run.summary().id)
                .map_err(|e| RunError::Other(format!("{e:#}"))),
            RunQueue::Shared(runs) => runs
                .submit(tenant, profile, prompt, None)
                .await
                .map(|id| id.unwrap_or_default()),
        }
    }

    pub async fn get(&self, user: &str, id: &str) -> Result<Option<RunSummary>, RunError> {
        match self {
            RunQueue::Local(runs) => Ok(runs.get(user, id).map(|run| run.summary())),
            RunQueue::Shared(runs) => runs.get(user, id).await,
        }
    }

    /// `user`'s newest `limit` runs, newest first.
    pub async fn list(&self, user: &str, limit: usize) -> Result<Vec<RunSummary>, RunError> {
        match self {
            RunQueue::Local(runs) => Ok(runs.list(user).into_iter().take(limit).collect()),
            RunQueue::Shared(runs) => runs.list(user, limit).await,
        }
    }

    /// The events of `user`'s run `id`, from the first, following along
    /// until `done`; `None` when there is no such run of that user.
    pub async fn events(&self, user: &str, id: &str) -> Result<Option<BoxStream<'static, Value>>, RunError> {
        match self {
            RunQueue::Local(runs) => Ok(runs.get(user, id).map(|run| run.events())),
            RunQueue::Shared(runs) => runs.events(user, id).await,
        }
    }

    /// The shared store, in cluster mode: where schedules, notes and
    /// sessions live too.
    pub fn shared_store(&self) -> Option<&crate::store::postgres::PgStore> {
        match self {
            RunQueue::Local(_) => None,
            RunQueue::Shared(runs) => Some(runs.store()),
        }
    }

    /// Lets running runs finish within `grace`; a shared run still going
    /// then goes back to the queue for another replica.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        match self {
            RunQueue::Local(runs) => runs.shutdown(grace).await,
            RunQueue::Shared(runs) => runs.shutdown(grace).await,
        }
    }
}

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
