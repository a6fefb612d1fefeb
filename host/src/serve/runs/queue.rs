//! The queue of agent runs of a service, over either run store
//! ([`crate::store::runs::RunStore`]): SQLite in the data directory (one
//! `boram serve`) or PostgreSQL (cluster mode, any number of replicas).
//! `POST /v1/runs` or a due schedule queues a run; every service claims
//! queued runs up to its number of worker slots and executes them; events
//! are written to the store and read back by whichever service a client
//! follows them on.
//!
//! A run's transcript is its journal (a JSONL file in the user's sessions
//! directory, or rows in PostgreSQL): a service that dies holding a run
//! (kill -9, a lost machine) stops renewing its lease; when the lease
//! expires the service started again, or another replica, claims the run
//! and resumes it from the journal. A model reply already recorded is not
//! asked for again, a finished tool call is not run again, and a call that
//! had started is reported to the model as interrupted ("it may have
//! run"). The lease's epoch fences the old holder off: if it was only
//! slow, not dead, its next write fails and it stops.

use super::{AgentFactory, OnFinish, RunError, RunSummary, done_event, event_value, panic_result};
use crate::agent::{AgentEvent, EventSink, TurnResult};
use crate::serve::metrics::Metrics;
use crate::serve::tenants::Tenant;
use crate::session::{Record, SessionChoice};
use crate::store::StoreError;
use crate::store::appender::Appender;
use crate::store::postgres::{PgStore, schedules};
use crate::store::runs::{Claimed, Fence, NewRun, Outcome, RunStore, Table};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// How often an idle replica looks for queued runs (a run submitted to
/// this replica wakes it at once).
const CLAIM_POLL: Duration = Duration::from_millis(250);
/// How often a follower reads new events.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// How this service takes part.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// This service's name in leases and run listings (a cluster's replica).
    pub replica: String,
    /// How long a claim holds without renewal: a dead replica's runs are
    /// resumed elsewhere this long after its last heartbeat.
    pub lease: Duration,
    /// Runs this replica executes at once.
    pub workers: usize,
}

pub struct RunQueue {
    store: Arc<dyn RunStore>,
    /// The PostgreSQL store, in cluster mode: where schedules, notes and
    /// sessions live too.
    postgres: Option<PgStore>,
    settings: QueueSettings,
    tenants: Vec<Arc<Tenant>>,
    factory: Option<AgentFactory>,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    wake: Notify,
    /// Woken when this process committed events of any run: its followers
    /// read at once (followers of runs on other replicas poll).
    events_written: Arc<Notify>,
    tasks: tokio_util::task::TaskTracker,
    /// Stops claiming new runs (shutdown).
    stop_claiming: CancellationToken,
    /// Cancels runs still going after the shutdown grace period.
    cancel: CancellationToken,
    /// Set when runs are cancelled for shutdown: they go back to the queue.
    releasing: AtomicBool,
    /// What to call when a run submitted here ends here (a schedule's bookkeeping).
    on_finish: Mutex<HashMap<String, OnFinish>>,
}

impl RunQueue {
    /// A queue over `store`; `postgres` is the same store when it is one
    /// (cluster mode).
    pub fn new(
        store: Arc<dyn RunStore>,
        postgres: Option<PgStore>,
        settings: QueueSettings,
        tenants: Vec<Arc<Tenant>>,
        factory: Option<AgentFactory>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(settings.workers.max(1))),
            store,
            postgres,
            settings,
            tenants,
            factory,
            metrics,
            wake: Notify::new(),
            events_written: Arc::new(Notify::new()),
            tasks: Default::default(),
            stop_claiming: CancellationToken::new(),
            cancel: CancellationToken::new(),
            releasing: AtomicBool::new(false),
            on_finish: Mutex::default(),
        })
    }

    pub fn replica(&self) -> &str {
        &self.settings.replica
    }

    /// Whether the database answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// The PostgreSQL store, in cluster mode: where schedules, notes and
    /// sessions live too.
    pub fn shared_store(&self) -> Option<&PgStore> {
        self.postgres.as_ref()
    }

    /// Queues a run for every due schedule of every user in the shared
    /// store that no other replica is ticking right now (see
    /// [`crate::store::postgres::schedules`]); nothing without one.
    pub async fn tick_schedules(&self) -> Result<schedules::Tick, StoreError> {
        let (Some(factory), Some(pg)) = (&self.factory, &self.postgres) else {
            return Ok(Default::default());
        };
        let tick = schedules::tick(pg, chrono::Utc::now(), |user, schedule| {
            let (provider, model) = factory
                .model_of(schedule.profile.as_deref())
                .map_err(|e| format!("{e:#}"))?;
            Ok(NewRun {
                id: crate::session::new_shared_id(),
                user: user.to_string(),
                profile: schedule.profile.clone(),
                prompt: schedule.task.clone(),
                provider,
                model,
                dedupe_key: None,
            })
        })
        .await?;
        if !tick.started.is_empty() {
            self.wake.notify_one();
        }
        Ok(tick)
    }

    /// Starts claiming and executing runs (none without a model).
    pub fn start_workers(self: &Arc<Self>) {
        if self.factory.is_none() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move { me.claim_loop().await });
    }

    /// Queues `prompt` for `tenant`; returns the run's id. `on_finish` is
    /// called if the run ends in this process.
    pub async fn start(
        &self,
        tenant: &Tenant,
        profile: Option<&str>,
        prompt: String,
        on_finish: Option<OnFinish>,
    ) -> Result<String, RunError> {
        let id = self.submit(tenant, profile, prompt, None, on_finish).await?;
        id.ok_or_else(|| RunError::Other("the run was not queued".into()))
    }

    /// Queues `prompt` for `tenant`; `Ok(None)` when `dedupe_key` was used already.
    pub async fn submit(
        &self,
        tenant: &Tenant,
        profile: Option<&str>,
        prompt: String,
        dedupe_key: Option<String>,
        on_finish: Option<OnFinish>,
    ) -> Result<Option<String>, RunError> {
        let Some(factory) = &self.factory else {
            return Err(RunError::Other("no model is configured for this service".into()));
        };
        let (provider, model) = factory
            .model_of(profile)
            .map_err(|e| RunError::Other(format!("{e:#}")))?;
        let run = NewRun {
            id: crate::session::new_shared_id(),
            user: tenant.name.clone(),
            profile: profile.map(str::to_string),
            prompt,
            provider,
            model,
            dedupe_key,
        };
        // Registered before the run can be claimed, so its end always finds it.
        if let Some(on_finish) = on_finish {
            self.on_finish(&run.id, on_finish);
        }
        let queued = self.store.submit(&run).await;
        if !matches!(queued, Ok(true)) {
            self.take_on_finish(&run.id);
        }
        let queued = queued.map_err(|e| unavailable(e, "queue the run"))?;
        self.wake.notify_one();
        Ok(queued.then_some(run.id))
    }

    /// Calls `on_finish` when run `id` (queued or resumed here) ends here,
    /// as if it had been given at submission (a schedule adopting a run
    /// its previous process started).
    pub fn on_finish(&self, id: &str, on_finish: OnFinish) {
        self.callbacks().insert(id.to_string(), on_finish);
    }

    /// Takes back what [`Self::on_finish`] registered for run `id`, if the
    /// run has not called it yet.
    pub fn take_on_finish(&self, id: &str) -> Option<OnFinish> {
        self.callbacks().remove(id)
    }

    pub async fn get(&self, user: &str, id: &str) -> Result<Option<RunSummary>, RunError> {
        let row = self
            .store
            .get(user, id)
            .await
            .map_err(|e| unavailable(e, "read the run"))?;
        Ok(row)
    }

    pub async fn list(&self, user: &str, limit: usize) -> Result<Vec<RunSummary>, RunError> {
        let rows = self
            .store
            .list(user, limit as i64)
            .await
            .map_err(|e| unavailable(e, "list the runs"))?;
        Ok(rows)
    }

    /// Every event of the run from the first, read from the database until
    /// `done` (while the database is down the stream waits for it).
    pub async fn events(&self, user: &str, id: &str) -> Result<Option<BoxStream<'static, Value>>, RunError> {
        if self.get(user, id).await?.is_none() {
            return Ok(None);
        }
        let start = (
            (self.store.clone(), self.events_written.clone()),
            id.to_string(),
            -1_i64,
            VecDeque::<Value>::new(),
            false,
        );
        let stream = futures::stream::unfold(start, |(source, id, mut last, mut buffer, ended)| async move {
            let (store, written) = &source;
            loop {
                if let Some(event) = buffer.pop_front() {
                    let done = event["type"] == "done";
                    return Some((event, (source, id, last, buffer, done)));
                }
                if ended {
                    return None;
                }
                // Registered before the read, so a commit between the read
                // and the wait still wakes this follower.
                let notified = written.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                match store.events_after(&id, last, 500).await {
                    Ok(rows) if rows.is_empty() => {
                        tokio::select! {
                            _ = notified => {}
                            _ = tokio::time::sleep(FOLLOW_POLL) => {}
                        }
                    }
                    Ok(rows) => {
                        last = rows.last().map_or(last, |(seq, _)| *seq);
                        buffer.extend(rows.into_iter().map(|(_, event)| event));
                    }
                    Err(e) => {
                        tracing::warn!(run = id, error = %e, "cannot read the run's events; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Some(stream.boxed()))
    }

    /// Stops claiming, lets the runs going finish within `grace`, then
    /// cancels the rest and gives them back to the queue.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_claiming.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!("giving runs still going back to the queue");
            self.releasing.store(true, Ordering::SeqCst);
            self.cancel.cancel();
            self.tasks.wait().await;
        }
    }

    async fn claim_loop(self: Arc<Self>) {
        let mut reported = false;
        loop {
            let permit = tokio::select! {
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = self.stop_claiming.cancelled() => return,
            };
            if self.stop_claiming.is_cancelled() {
                return;
            }
            match self.store.claim(&self.settings.replica, self.settings.lease).await {
                Ok(Some(claimed)) => {
                    reported = false;
                    let me = self.clone();
                    self.tasks.spawn(async move {
                        me.execute(claimed).await;
                        drop(permit);
                    });
                    continue;
                }
                Ok(None) => reported = false,
                Err(e) => {
                    // Once per outage, not every poll.
                    if !reported {
                        tracing::error!(error = %e, "cannot claim runs; retrying until the database answers");
                        reported = true;
                    }
                }
            }
            drop(permit);
            tokio::select! {
                _ = tokio::time::sleep(CLAIM_POLL) => {}
                _ = self.wake.notified() => {}
                _ = self.stop_claiming.cancelled() => return,
            }
        }
    }

    /// Runs (or resumes) one claimed run to its end, or until its lease is lost.
    async fn execute(self: &Arc<Self>, claimed: Claimed) {
        let claimed_at = std::time::Instant::now();
        let id = claimed.id.clone();
        tracing::info!(run = id, attempt = claimed.attempts, "running a queued run");
        let fence = Fence {
            run: id.clone(),
            epoch: claimed.epoch,
        };
        let tenant = self.tenants.iter().find(|t| t.name == claimed.user);
        let loaded = async {
            let first_event = self.store.next_event_seq(&id).await?;
            let journal = match tenant {
                Some(tenant) => {
                    let sessions = crate::config::sessions_dir(&tenant.data_dir);
                    Some(
                        self.store
                            .clone()
                            .open_journal(&claimed, fence.clone(), &sessions)
                            .await?,
                    )
                }
                None => None,
            };
            Ok::<_, StoreError>((journal, first_event))
        }
        .await;
        let (journal, first_event) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                // The lease runs out and the run is claimed again later.
                tracing::error!(run = id, error = %e, "cannot open the run's journal; leaving it for a retry");
                return;
            }
        };
        let events = Arc::new(Appender::spawn_notifying(
            self.store.clone(),
            Table::RunEvents,
            id.clone(),
            Some(fence),
            first_event,
            self.events_written.clone(),
        ));
        let resumed = journal
            .as_ref()
            .is_some_and(|(_, records)| records.iter().any(|r| matches!(r, Record::Message { .. })));
        let cancel = self.cancel.child_token();
        let heartbeat = self.heartbeat(&claimed, cancel.clone());

        let factory = self.factory.as_ref();
        let agent = match (tenant.zip(journal), factory) {
            (Some((tenant, (session, records))), Some(factory)) => factory
                .agent(
                    tenant,
                    claimed.profile.as_deref(),
                    SessionChoice::Given { session, records },
                )
                .map_err(|e| format!("cannot start the run: {e:#}")),
            (None, _) => Err(format!(
                "user `{}` is not configured on replica {}; give every replica the same [[serve.users]]",
                claimed.user, self.settings.replica
            )),
            (_, None) => Err("no model is configured on this replica".into()),
        };
        let mut agent = match agent {
            Ok(agent) => agent,
            Err(message) => {
                heartbeat.abort();
                let result = TurnResult {
                    stop: crate::agent::Stop::Error,
                    rounds: 0,
                    text: String::new(),
                    error: Some(message),
                };
                self.finish(&claimed, claimed_at, &events, &result, 0.0, Default::default(), None)
                    .await;
                return;
            }
        };
        if claimed.attempts > 1 {
            let _ = events.append(json!({
                "type": "resumed",
                "attempt": claimed.attempts,
                "replica": self.settings.replica,
            }));
        }
        let sink: EventSink = {
            let events = events.clone();
            let metrics = self.metrics.clone();
            Arc::new(move |event: &AgentEvent| {
                super::count_denial(&metrics, event);
                if let Some(value) = event_value(event) {
                    let _ = events.append(value);
                }
            })
        };
        let turn = async {
            if resumed {
                agent.continue_turn(&claimed.prompt, &sink, &cancel).await
            } else {
                agent.turn(&claimed.prompt, &sink, &cancel).await
            }
        };
        let result = match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(turn)).await {
            Ok(result) => result,
            Err(panic) => panic_result(&id, panic),
        };
        heartbeat.abort();
        if self.releasing.load(Ordering::SeqCst) {
            let _ = agent.session().sync().await;
            match self.store.release(&id, claimed.epoch).await {
                Ok(()) => tracing::warn!(run = id, "gave the run back to the queue; another replica resumes it"),
                Err(e) => tracing::warn!(run = id, error = %e, "cannot give the run back; its lease will expire"),
            }
            return;
        }
        if let Err(e) = agent.session().sync().await {
            tracing::warn!(run = id, error = %e, "the run's journal is incomplete");
        }
        let metrics = self.metrics.clone();
        let submitted_here = self.callbacks().remove(&id);
        let on_finish: OnFinish = Box::new(move |stop, took| {
            metrics.run_finished(stop, took);
            if let Some(then) = submitted_here {
                then(stop, took);
            }
        });
        self.finish(
            &claimed,
            claimed_at,
            &events,
            &result,
            agent.spent_usd(),
            agent.usage(),
            Some(on_finish),
        )
        .await;
    }

    /// Renews the lease every third of its length; cancels the run when it is lost.
    fn heartbeat(&self, claimed: &Claimed, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        let (store, lease) = (self.store.clone(), self.settings.lease);
        let (id, epoch) = (claimed.id.clone(), claimed.epoch);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match store.heartbeat(&id, epoch, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            run = id,
                            "the run's lease was lost (another replica has it now); stopping it here"
                        );
                        cancel.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(run = id, error = %e, "cannot renew the run's lease; retrying"),
                }
            }
        })
    }

    /// Writes the run's end and its `done` event, once the events before it are in.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        claimed: &Claimed,
        claimed_at: std::time::Instant,
        events: &Appender,
        result: &TurnResult,
        cost_usd: f64,
        usage: crate::llm::Usage,
        on_finish: Option<OnFinish>,
    ) {
        let stop = result.stop.as_str().to_string();
        if let Err(e) = events.sync().await {
            tracing::warn!(run = claimed.id, error = %e, "the run's events are incomplete");
        }
        let outcome = Outcome {
            status: stop.clone(),
            answer: (!result.text.is_empty()).then(|| result.text.clone()),
            error: result.error.clone(),
            done: done_event(&stop, result, cost_usd, usage),
            done_seq: events.next_seq(),
        };
        // A database that is down is waited for, as long as the lease could last.
        let mut backoff = Duration::from_millis(100);
        let deadline = tokio::time::Instant::now() + self.settings.lease;
        loop {
            match self.store.finish(&claimed.id, claimed.epoch, &outcome).await {
                Ok(true) => {
                    self.events_written.notify_waiters();
                    tracing::info!(run = claimed.id, stop, "run finished");
                    if let Some(on_finish) = on_finish {
                        on_finish(&stop, claimed_at.elapsed());
                    }
                    return;
                }
                Ok(false) => {
                    tracing::warn!(
                        run = claimed.id,
                        "the run's lease was lost before it ended; another replica ends it"
                    );
                    return;
                }
                Err(e) if e.is_unavailable() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(run = claimed.id, error = %e, "cannot record the run's end; it will be resumed");
                    return;
                }
            }
        }
    }
}

impl RunQueue {
    fn callbacks(&self) -> std::sync::MutexGuard<'_, HashMap<String, OnFinish>> {
        self.on_finish.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A store error as the client sees it: unreachable → 503 with what was not done.
fn unavailable(e: StoreError, what: &str) -> RunError {
    match e {
        StoreError::Unavailable(_) => RunError::Unavailable(format!("cannot {what}: {e}; try again")),
        other => RunError::Other(format!("cannot {what}: {other}")),
    }
}
