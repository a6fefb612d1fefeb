//! The service's state, opened from `[store]`: in cluster mode the shared
//! PostgreSQL store (runs, notes, approvals, copies of the audit and usage
//! lines), else the embedded run queue in the data directory; and the
//! agents of `POST /v1/runs` and schedules, each in its user's place.

use super::{AgentKit, AgentPlace, UsageError};
use crate::agent::PromptMode;
use crate::config::model::StoreToml;
use crate::serve::metrics::Metrics;
use crate::serve::runs::queue::QueueSettings;
use crate::serve::runs::{AgentFactory, AgentSource, RunQueue};
use crate::serve::tenants::Tenant;
use crate::store::postgres::logs::SharedLog;
use crate::store::postgres::{PgStore, SharedUser};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lease and workers of a replica on PostgreSQL when `[store]` does not
/// say: a dead replica's runs move after 15 s; 4 runs at once per replica
/// (more replicas add more).
const CLUSTER_DEFAULTS: (f64, usize) = (15.0, 4);
/// ... and of one service on its data directory: a run a crash left behind
/// is resumed 5 s after the service is back (one machine: renewing a lease
/// is a local SQLite write); 16 runs at once.
const EMBEDDED_DEFAULTS: (f64, usize) = (5.0, 16);

/// Cluster mode's shared store, opened once per replica.
#[derive(Clone)]
pub struct Cluster {
    pub store: PgStore,
    pub settings: QueueSettings,
    /// Where copies of this replica's audit and usage lines go.
    pub log: SharedLog,
    /// The URL without its password, for messages.
    pub shown_url: String,
}

impl Cluster {
    /// Connects to `url` (and migrates it), with `[store]`'s settings.
    pub async fn open(url: &str, store: &StoreToml) -> Result<Self, String> {
        let shown_url = redact_url(url);
        let pg = PgStore::connect(url).await.map_err(|e| {
            format!("cluster mode: cannot open the store at {shown_url} ({e}); check [store] url / BORAM_DATABASE_URL")
        })?;
        let settings = queue_settings(store, CLUSTER_DEFAULTS);
        let log = SharedLog::spawn(pg.clone(), &settings.replica);
        Ok(Self {
            store: pg,
            settings,
            log,
            shown_url,
        })
    }

    /// `user`'s part of the shared store.
    pub fn user(&self, user: &str) -> SharedUser {
        SharedUser {
            store: self.store.clone(),
            log: self.log.clone(),
            user: user.to_string(),
        }
    }
}

/// The run queue: on the shared store in cluster mode, else on the
/// embedded store in `data_dir` (`runs.db`), so runs survive a restart
/// either way.
pub fn run_queue(
    cluster: Option<&Cluster>,
    data_dir: &Path,
    store: &StoreToml,
    tenants: Vec<Arc<Tenant>>,
    agents: Option<AgentFactory>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<RunQueue>> {
    Ok(match cluster {
        Some(cluster) => {
            eprintln!(
                "cluster mode: replica {} on {} (lease {:.1} s, {} workers)",
                cluster.settings.replica,
                cluster.shown_url,
                cluster.settings.lease.as_secs_f64(),
                cluster.settings.workers
            );
            let dyn_store: Arc<dyn crate::store::runs::RunStore> = Arc::new(cluster.store.clone());
            RunQueue::new(
                dyn_store,
                Some(cluster.store.clone()),
                cluster.settings.clone(),
                tenants,
                agents,
                metrics,
            )
        }
        None => {
            let runs = crate::store::embedded::EmbeddedRuns::open(data_dir)
                .map_err(|e| UsageError(format!("cannot open the run queue: {e}")))?;
            let settings = queue_settings(store, EMBEDDED_DEFAULTS);
            RunQueue::new(Arc::new(runs), None, settings, tenants, agents, metrics)
        }
    })
}

/// `tenant`'s memory notes for MCP clients: the shared store's in cluster
/// mode, else `memory.db` in the user's data directory (`None`, with a
/// warning, when it cannot be opened).
pub fn notes_for(cluster: Option<&Cluster>, tenant: &Tenant) -> Option<Arc<crate::memory::Notes>> {
    match cluster {
        Some(cluster) => Some(Arc::new(cluster.user(&tenant.name).notes())),
        None => match crate::memory::MemoryStore::open(&tenant.data_dir) {
            Ok(memory) => Some(Arc::new(crate::memory::Notes::Local(Arc::new(memory)))),
            Err(e) => {
                eprintln!("warning: user `{}`: MCP clients get no memory tools: {e}", tenant.name);
                None
            }
        },
    }
}

/// The agents of the service's runs: one kit (one gateway, so one queue
/// and breaker for every run), each agent in its user's place.
pub struct ServiceAgents {
    kit: AgentKit,
    cluster: Option<Cluster>,
    metrics: Arc<Metrics>,
    tools_dir: PathBuf,
    approve_prompt: bool,
}

impl ServiceAgents {
    /// Agents from `kit`; their model calls are counted in `metrics`.
    pub fn new(
        kit: AgentKit,
        cluster: Option<Cluster>,
        metrics: Arc<Metrics>,
        tools_dir: PathBuf,
        approve_prompt: bool,
    ) -> Self {
        // The model's families exist from the start.
        metrics.expect(&[], Some(kit.model_name()));
        Self {
            kit,
            cluster,
            metrics,
            tools_dir,
            approve_prompt,
        }
    }
}

impl AgentSource for ServiceAgents {
    fn agent(
        &self,
        tenant: &Tenant,
        profile: Option<&str>,
        session: crate::session::SessionChoice<'_>,
    ) -> anyhow::Result<crate::agent::Agent> {
        let metrics = self.metrics.clone();
        let observer: crate::llm::UsageObserver =
            Arc::new(move |model, usage, cost| metrics.model_call(model, usage, cost));
        let place = AgentPlace {
            host: tenant.host.clone(),
            data_dir: &tenant.data_dir,
            tools_dir: &self.tools_dir,
            workspace: None,
            shared: self.cluster.as_ref().map(|c| c.user(&tenant.name)),
        };
        let mode = PromptMode::Service {
            approve_prompt: self.approve_prompt,
        };
        self.kit.agent_in(profile, place, mode, session, Some(observer))
    }

    fn model_of(&self, profile: Option<&str>) -> anyhow::Result<(String, String)> {
        self.kit.model_of(profile)
    }
}

/// `[store]` as settings, with the environment's overrides and `defaults`
/// (lease seconds, workers) for what it leaves out.
fn queue_settings(store: &StoreToml, defaults: (f64, usize)) -> QueueSettings {
    let replica = std::env::var(crate::config::REPLICA_ENV)
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| store.replica.clone())
        .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
    QueueSettings {
        replica,
        lease: std::time::Duration::from_secs_f64(store.lease_secs.unwrap_or(defaults.0).clamp(0.5, 3600.0)),
        workers: store.workers.unwrap_or(defaults.1).max(1),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "boram".into())
}

/// The URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "the configured database".into(),
    }
}
