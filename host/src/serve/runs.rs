//! Agent runs started over HTTP (`POST /v1/runs`): each is one prompt to a
//! new agent session of the calling user, run in the background. Its events
//! (the same JSON as `boram run --json`) are kept in order and fanned out
//! live, so `GET /v1/runs/{id}/events` replays what happened so far and
//! then follows along, ending with a `done` event.

use super::tenants::Tenant;
use crate::agent::{Agent, AgentEvent, EventSink};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Finished runs kept in memory (their sessions stay on disk); older ones are dropped.
const KEPT_RUNS: usize = 500;

/// Builds a fresh agent (new session) for a user, as a profile (`None`: the default).
pub type AgentFactory = Arc<dyn Fn(&Tenant, Option<&str>) -> anyhow::Result<Agent> + Send + Sync>;

/// One run, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub session: String,
    pub prompt: String,
    pub started: String,
    /// `running`, or how it stopped (`answered`, `max_rounds`, `error`, …).
    pub status: String,
    pub answer: Option<String>,
    pub error: Option<String>,
}

pub struct Run {
    pub user: String,
    summary: Mutex<RunSummary>,
    events: Mutex<Vec<Value>>,
    live: broadcast::Sender<Value>,
}

impl Run {
    pub fn summary(&self) -> RunSummary {
        self.summary.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Events so far, and a receiver for those after them (taken under one
    /// lock, so none is missed or repeated).
    pub fn follow(&self) -> (Vec<Value>, broadcast::Receiver<Value>, bool) {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let done = events.last().is_some_and(|e| e["type"] == "done");
        (events.clone(), self.live.subscribe(), done)
    }

    fn push(&self, event: Value) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.push(event.clone());
        let _ = self.live.send(event);
    }
}

#[derive(Default)]
pub struct Runs {
    runs: Mutex<HashMap<String, Arc<Run>>>,
    /// Runs still going, for graceful shutdown.
    tasks: tokio_util::task::TaskTracker,
    cancel: CancellationToken,
}

impl Runs {
    /// Starts `prompt` on a new agent of `tenant`; returns the run.
    pub fn start(
        &self,
        tenant: &Tenant,
        factory: &AgentFactory,
        profile: Option<&str>,
        prompt: String,
        on_finish: Box<dyn FnOnce(&str) + Send>,
    ) -> anyhow::Result<Arc<Run>> {
        let mut agent = factory(tenant, profile)?;
        let id = agent.session().id().to_string();
        let (live, _) = broadcast::channel(1024);
        let run = Arc::new(Run {
            user: tenant.name.clone(),
            summary: Mutex::new(RunSummary {
                id: id.clone(),
                session: id.clone(),
                prompt: prompt.clone(),
                started: crate::audit::now(),
                status: "running".into(),
                answer: None,
                error: None,
            }),
            events: Mutex::default(),
            live,
        });
        {
            let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            if runs.len() >= KEPT_RUNS {
                // Forget the oldest finished runs; running ones stay.
                let mut finished: Vec<(String, String)> = runs
                    .iter()
                    .map(|(id, r)| (id.clone(), r.summary()))
                    .filter(|(_, s)| s.status != "running")
                    .map(|(id, s)| (s.started, id))
                    .collect();
                finished.sort();
                for (_, id) in finished.iter().take(runs.len() + 1 - KEPT_RUNS) {
                    runs.remove(id);
                }
            }
            runs.insert(id, run.clone());
        }
        let sink: EventSink = {
            let run = run.clone();
            Arc::new(move |event: &AgentEvent| {
                // The run's own `done` (below, with cost and tokens) is the
                // one end a follower sees; the agent's would come first.
                if matches!(event, AgentEvent::Done { .. }) {
                    return;
                }
                run.push(serde_json::to_value(event).unwrap_or_else(|_| json!({"type": "unknown"})));
            })
        };
        let cancel = self.cancel.child_token();
        let task_run = run.clone();
        self.tasks.spawn(async move {
            // A panic anywhere in the turn still ends the run (`error`) and
            // reports `done`: a follower must never wait on a lost worker.
            let turn = std::panic::AssertUnwindSafe(agent.turn(&prompt, &sink, &cancel));
            let result = match futures::FutureExt::catch_unwind(turn).await {
                Ok(result) => result,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    tracing::error!(run = %task_run.summary().id, panic = %what, "a run failed unexpectedly");
                    crate::agent::TurnResult {
                        stop: crate::agent::Stop::Error,
                        rounds: 0,
                        text: String::new(),
                        error: Some(format!("the run failed unexpectedly ({what}); this is a bug in boram")),
                    }
                }
            };
            let stop = serde_json::to_value(result.stop)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            {
                let mut summary = task_run.summary.lock().unwrap_or_else(|e| e.into_inner());
                summary.status = stop.clone();
                summary.answer = (!result.text.is_empty()).then(|| result.text.clone());
                summary.error = result.error.clone();
            }
            task_run.push(json!({
                "type": "done",
                "stop": stop,
                "rounds": result.rounds,
                "text": result.text,
                "error": result.error,
                "cost_usd": agent.spent_usd(),
                "usage": agent.usage(),
            }));
            on_finish(&stop);
        });
        Ok(run)
    }

    /// The run `id` if it belongs to `user`: another user's run is "not found".
    pub fn get(&self, user: &str, id: &str) -> Option<Arc<Run>> {
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .filter(|r| r.user == user)
            .cloned()
    }

    /// `user`'s runs, newest first.
    pub fn list(&self, user: &str) -> Vec<RunSummary> {
        let mut runs: Vec<RunSummary> = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|r| r.user == user)
            .map(|r| r.summary())
            .collect();
        runs.sort_by(|a, b| b.started.cmp(&a.started));
        runs
    }

    /// Waits up to `grace` for running runs to finish, then cancels the rest.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!("cancelling runs still going after the grace period");
            self.cancel.cancel();
            self.tasks.wait().await;
        }
    }
}
