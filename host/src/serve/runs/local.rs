//! Runs of one `boram serve` (the embedded store): each is one prompt to a
//! new agent session of the calling user, run in the background in this
//! process. Its events are kept in memory in order and fanned out live, so
//! a follower replays what happened so far and then follows along, ending
//! with a `done` event. The session's transcript is in the user's data
//! directory; a run does not outlive its process.

use super::{AgentFactory, RunSummary, done_event, event_value, panic_result};
use crate::agent::{AgentEvent, EventSink};
use crate::serve::tenants::Tenant;
use crate::session::SessionChoice;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Finished runs kept in memory (their sessions stay on disk); older ones are dropped.
const KEPT_RUNS: usize = 500;

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

    /// Every event from the first, following along until `done`.
    pub fn events(&self) -> futures::stream::BoxStream<'static, Value> {
        use futures::StreamExt as _;
        let (past, live, done) = self.follow();
        futures::stream::iter(past).chain(live_until_done(live, done)).boxed()
    }

    fn push(&self, event: Value) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.push(event.clone());
        let _ = self.live.send(event);
    }
}

#[derive(Default)]
pub struct LocalRuns {
    /// Counts what happens inside runs (denials).
    metrics: Option<Arc<crate::serve::metrics::Metrics>>,
    runs: Mutex<HashMap<String, Arc<Run>>>,
    /// Runs still going, for graceful shutdown.
    tasks: tokio_util::task::TaskTracker,
    cancel: CancellationToken,
}

impl LocalRuns {
    pub fn new(metrics: Arc<crate::serve::metrics::Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..Self::default()
        }
    }

    /// Starts `prompt` on a new agent of `tenant`; returns the run.
    pub fn start(
        &self,
        tenant: &Tenant,
        factory: &AgentFactory,
        profile: Option<&str>,
        prompt: String,
        on_finish: super::OnFinish,
    ) -> anyhow::Result<Arc<Run>> {
        let mut agent = factory.agent(tenant, profile, SessionChoice::New)?;
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
                replica: None,
                attempts: 1,
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
            let metrics = self.metrics.clone();
            Arc::new(move |event: &AgentEvent| {
                if let Some(metrics) = &metrics {
                    super::count_denial(metrics, event);
                }
                if let Some(value) = event_value(event) {
                    run.push(value);
                }
            })
        };
        let cancel = self.cancel.child_token();
        let task_run = run.clone();
        let started = std::time::Instant::now();
        self.tasks.spawn(async move {
            // A panic anywhere in the turn still ends the run (`error`) and
            // reports `done`: a follower must never wait on a lost worker.
            let turn = std::panic::AssertUnwindSafe(agent.turn(&prompt, &sink, &cancel));
            let result = match futures::FutureExt::catch_unwind(turn).await {
                Ok(result) => result,
                Err(panic) => panic_result(&task_run.summary().id, panic),
            };
            let stop = result.stop.as_str().to_string();
            {
                let mut summary = task_run.summary.lock().unwrap_or_else(|e| e.into_inner());
                summary.status = stop.clone();
                summary.answer = (!result.text.is_empty()).then(|| result.text.clone());
                summary.error = result.error.clone();
            }
            task_run.push(done_event(&stop, &result, agent.spent_usd(), agent.usage()));
            on_finish(&stop, started.elapsed());
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

/// Live events until (and including) `done`.
fn live_until_done(receiver: broadcast::Receiver<Value>, already_done: bool) -> impl futures::Stream<Item = Value> {
    futures::stream::unfold((receiver, already_done), |(mut receiver, finished)| async move {
        if finished {
            return None;
        }
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    let done = event["type"] == "done";
                    return Some((event, (receiver, done)));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
