//! `boram serve`: builds the users, metrics and agent factory from the
//! flags and `[serve]` in the config file, then runs [`crate::serve`].

use super::agent::args::AgentArgs;
use crate::app::service::{self, Cluster, ServiceAgents};
use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use crate::registry::watch::{self, ReloadEvent};
use crate::schedule::{Finished, Schedule, ScheduleStore, Scheduler, Starter, SystemClock};
use crate::serve::metrics::Metrics;
use crate::serve::runs::{AgentFactory, RunQueue};
use crate::serve::tenants::{Tenant, UserSpec, hash_token};
use crate::serve::{AppState, check_exposure, check_exposure_of};
use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Default listening address.
const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Environment variable with the single user's token when no users are configured.
const TOKEN_ENV: &str = "BORAM_SERVE_TOKEN";

#[derive(Debug, Args)]
pub struct ServeCommand {
    /// Address to listen on, e.g. 0.0.0.0:8080 (needs tokens). Port 0 picks
    /// a free one. Default: `[serve] addr`, else 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    addr: Option<String>,
    /// Check everything the service needs (data directory, policy, tools,
    /// port), print what is wrong and how to fix it, and exit.
    #[arg(long)]
    check: bool,
    /// Run under a supervisor that restarts the service when it exits or
    /// stops answering /health, with exponential backoff (see README).
    #[arg(long)]
    supervise: bool,
    /// Supervisor: how often to call /health.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    health_interval_ms: u64,
    /// Supervisor: first restart delay, doubled per consecutive failure (capped at 60 s).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    backoff_ms: u64,
    /// Supervisor: consecutive failures before giving up.
    #[arg(long, value_name = "N", default_value_t = 10)]
    restart_limit: u32,
    /// The model for `POST /v1/runs` (same options as `boram run`; without
    /// one, runs are refused and tools still work).
    #[command(flatten)]
    agent: AgentArgs,
}

impl ServeCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        if self.supervise {
            return self.supervise(global).await;
        }
        crate::supervise::die_with_supervisor();
        let config = self.agent.config_file()?;
        let serve = &config.serve;
        let app = self.agent.app(global);
        let (data_dir, tools_dir) = (app.data_dir.clone(), app.tools_dir.clone());
        let addr_text = self
            .addr
            .clone()
            .or_else(|| serve.addr.clone())
            .unwrap_or_else(|| DEFAULT_ADDR.into());
        let addr: SocketAddr = addr_text
            .parse()
            .map_err(|e| UsageError(format!("--addr {addr_text}: {e}; use IP:PORT, e.g. 127.0.0.1:8080")))?;
        let approve_prompt = serve.approve_prompt.unwrap_or(false) || self.agent.yes;

        // `--workspace` (from the agent flags): the single user's directory
        // when `[[serve.users]]` is not configured.
        let users = users(&serve.users, self.agent.workspace.clone())?;
        let mut problems = Vec::new();
        let policy = match &global.policy {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some((path.clone(), text)),
                Err(e) => {
                    problems.push(format!(
                        "cannot read the policy {} ({e}); check --policy",
                        path.display()
                    ));
                    None
                }
            },
            None => None,
        };
        // A preflight changes nothing: a missing data directory is reported
        // (starting creates it), and nothing is loaded that would create it.
        let data_dir_missing = self.check && !data_dir.exists();
        if data_dir_missing {
            problems.push(format!(
                "the data directory {} does not exist; create it: mkdir -p {} (or pass --data-dir)",
                data_dir.display(),
                data_dir.display()
            ));
        } else if let Err(e) = check_writable(&data_dir) {
            problems.push(e);
        }
        let registry = match data_dir_missing {
            true => None,
            false => match app.registry().await {
                Ok(registry) => Some(registry),
                Err(e) => {
                    problems.push(format!("{e:#}"));
                    None
                }
            },
        };
        if let Some(registry) = &registry {
            for problem in registry.problems() {
                problems.push(format!(
                    "{} does not load: {}; fix the tool or remove the file",
                    problem.path.display(),
                    problem.error
                ));
            }
            if registry.names().count() == 0 {
                problems.push(format!(
                    "no tools in {}; build them (`cargo build`, `boram tool build`) or pass --tools-dir",
                    tools_dir.display()
                ));
            }
        }
        let metrics = Arc::new(Metrics::new());
        let mut tenants = Vec::new();
        let ready = registry.is_some() && (global.policy.is_none() || policy.is_some());
        let trusted = app.trusted_paths();
        if self.check {
            for spec in ready.then_some(&users).into_iter().flatten() {
                let policy = policy.as_ref().map(|(p, t)| (p.as_path(), t.as_str()));
                if let Err(e) = Tenant::check(spec, policy, &trusted) {
                    problems.push(e);
                }
            }
        }
        // Cluster mode: the shared store, opened before the users' tool
        // hosts so their audit lines are copied into it.
        let store_url = crate::store::postgres::configured_url(config.store.url.as_deref());
        let cluster = match (&store_url, ready && !self.check) {
            (Some(url), true) => match Cluster::open(url, &config.store).await {
                Ok(cluster) => Some(cluster),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
            _ => None,
        };
        let shared_log = cluster.as_ref().map(|c| c.log.clone());
        for spec in (ready && !self.check).then_some(&users).into_iter().flatten() {
            let observer = {
                let metrics = metrics.clone();
                Arc::new(move |report: &crate::runtime::CallReport| metrics.tool_call(report))
            };
            let policy = policy.as_ref().map(|(p, t)| (p.as_path(), t.as_str()));
            let registry = registry.as_ref().expect("checked by the loop");
            // A service runs unattended: no audit record, no tool call.
            let audit_required = config.audit.required.unwrap_or(true);
            let audit = crate::serve::tenants::AuditSettings {
                required: audit_required,
                copy_to: shared_log.clone(),
            };
            match Tenant::build(spec, registry, policy, &data_dir, &trusted, observer, &audit) {
                Ok(tenant) => tenants.push(Arc::new(tenant)),
                Err(e) => problems.push(e),
            }
        }
        let exposure = match self.check {
            true => check_exposure_of(&addr, users.iter().any(|u| u.token_sha256.is_none())),
            false => check_exposure(&addr, &tenants),
        };
        if let Err(e) = exposure {
            problems.push(e);
        }
        let listener = match bind(addr, serve.next_free_port.unwrap_or(false)).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                problems.push(e);
                None
            }
        };
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            return Err(UsageError(format!("the service cannot start:\n{}", list.join("\n"))).into());
        }
        let (Some(listener), Some(registry)) = (listener, registry) else {
            unreachable!("a missing listener or registry is a problem reported above")
        };
        if self.check {
            println!(
                "ok: data directory {} writable, {} tools load, policy valid for {} user(s), {} free",
                data_dir.display(),
                registry.names().count(),
                users.len(),
                listener.local_addr()?
            );
            return Ok(ExitCode::SUCCESS);
        }

        let tool_names: Vec<String> = registry.names().map(|n| n.to_string()).collect();
        metrics.expect(&tool_names, None);
        let agents: Option<AgentFactory> = match self.agent.kit(&data_dir) {
            Ok(kit) => Some(Arc::new(ServiceAgents::new(
                kit,
                cluster.clone(),
                metrics.clone(),
                tools_dir.clone(),
                approve_prompt,
            ))),
            Err(e) => {
                eprintln!("warning: agent runs are off: {e:#}");
                None
            }
        };
        let runs = service::run_queue(
            cluster.as_ref(),
            &data_dir,
            &config.store,
            tenants.clone(),
            agents.clone(),
            metrics.clone(),
        )?;
        runs.start_workers();

        let body_limit = serve
            .body_limit_kb
            .unwrap_or(crate::config::serve::DEFAULT_BODY_LIMIT_KB)
            << 10;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let notes_for = |tenant: &Tenant| service::notes_for(cluster.as_ref(), tenant);
        let mcp = Arc::new(crate::mcp::http::McpEndpoints::new(
            &tenants,
            &notes_for,
            approve_prompt,
            &shutdown,
            body_limit,
        ));

        // Hot swap, for every user's tool host; each reload is counted and
        // shown, and that user's MCP clients list the tools again.
        let mut watchers = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            // Every user's host reloads the same file: count it once.
            let metrics = (i == 0).then(|| metrics.clone());
            let (mcp, user) = (mcp.clone(), tenant.name.clone());
            watchers.push(
                watch::watch(
                    tenant.host.clone(),
                    &tools_dir,
                    None,
                    Arc::new(move |event: &ReloadEvent| {
                        if let Some(metrics) = &metrics {
                            let mut line = serde_json::to_value(event).unwrap_or_default();
                            line["time"] = serde_json::json!(crate::audit::now());
                            metrics.reload(&line);
                        }
                        if event.changes_tools() {
                            let (mcp, user) = (mcp.clone(), user.clone());
                            tokio::spawn(async move { mcp.tools_changed_for(&user).await });
                        }
                    }),
                )
                .context("cannot watch the tools directory")?,
            );
        }

        // An edited policy applies to the next call, for every user.
        let _policy_watch = match &global.policy {
            Some(path) => Some(
                crate::serve::policy_watch::watch(path, tenants.clone(), metrics.clone(), mcp.clone())
                    .context("cannot watch the policy file")?,
            ),
            None => None,
        };
        let state = Arc::new(AppState {
            started: std::time::Instant::now(),
            tenants: tenants.clone(),
            metrics,
            runs,
            agents,
            approve_prompt,
            mcp,
            shutdown,
            hidden_paths: Arc::new(crate::serve::client_errors::HiddenPaths::new(
                global
                    .policy
                    .iter()
                    .map(|p| (p.clone(), "the service's policy"))
                    .chain([
                        (tools_dir.clone(), "the tools directory"),
                        (data_dir.clone(), "the data directory"),
                    ]),
            )),
        });
        let _schedulers = start_schedulers(&state);
        let local = listener.local_addr()?;
        let listening = format!(
            "listening on http://{local} ({} tools; users: {})\n",
            registry.names().count(),
            tenants
                .iter()
                .map(|t| if t.is_open() {
                    format!("{} (open, loopback only)", t.name)
                } else {
                    t.name.clone()
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        // One write: supervisors and scripts read this line for the address,
        // and `eprintln!` writes its pieces separately to an unbuffered stderr
        // (a reader could see "listening on " with the address still to come).
        {
            use std::io::Write as _;
            let _ = std::io::stderr().write_all(listening.as_bytes());
        }
        crate::serve::serve(listener, state, body_limit, shutdown_signal()).await?;
        drop(watchers);
        if let Some(log) = &shared_log
            && !log.flush(std::time::Duration::from_secs(5)).await
        {
            eprintln!("warning: some audit/usage copies did not reach the database (this replica's files have them)");
        }
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    }
}

/// The configured users; without any, one user `local` with the token in
/// `BORAM_SERVE_TOKEN`, or open (loopback only) without it.
fn users(configured: &[crate::config::serve::UserToml], workspace: Option<PathBuf>) -> anyhow::Result<Vec<UserSpec>> {
    if !configured.is_empty() {
        if workspace.is_some() {
            return Err(UsageError(
                "--workspace is for a service without [[serve.users]]; each configured user has its own".into(),
            )
            .into());
        }
        let env = |name: &str| std::env::var(name).ok();
        let specs = configured
            .iter()
            .map(|u| UserSpec::from_config(u, &env))
            .collect::<Result<Vec<_>, _>>()
            .map_err(UsageError)?;
        return Ok(specs);
    }
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    Ok(vec![UserSpec {
        name: crate::config::LOCAL_USER.into(),
        token_sha256: token.as_deref().map(hash_token),
        workspace,
    }])
}

impl ServeCommand {
    /// `--check`: validate and change nothing.
    pub fn is_check(&self) -> bool {
        self.check
    }

    /// Re-runs this command without `--supervise` under the supervisor.
    async fn supervise(&self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let program = std::env::current_exe()?;
        let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--supervise").collect();
        let mut options = crate::supervise::SuperviseOptions::new(program, args);
        options.health_interval = std::time::Duration::from_millis(self.health_interval_ms.max(50));
        options.backoff_base = std::time::Duration::from_millis(self.backoff_ms);
        options.max_restarts = self.restart_limit;
        let config = self.agent.config_file()?;
        if config.serve.recovery.unwrap_or(false) {
            let kit = self
                .agent
                .kit(&global.data_dir())
                .context("[serve] recovery = true needs a model")?;
            options.recovery = Some(crate::supervise::recovery::Recovery {
                gateway: Arc::new(kit.gateway()),
                model: kit.model_name().to_string(),
                after: config.serve.recovery_after.unwrap_or(3).max(1),
                data_dir: global.data_dir(),
            });
        }
        let audit = crate::audit::AuditLog::open(&global.data_dir()).ok();
        crate::supervise::supervise(&options, audit.as_ref()).await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Fails with the fix when `dir` cannot be created or written.
fn check_writable(dir: &std::path::Path) -> Result<(), String> {
    let probe = dir.join(".write-test");
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "the data directory {} is not writable ({e}); fix its permissions or pass --data-dir",
                dir.display()
            )
        })
}

/// Binds `addr`; when the port is taken and `next_free` is set, the next
/// free one of the following 20.
async fn bind(addr: SocketAddr, next_free: bool) -> Result<tokio::net::TcpListener, String> {
    let taken = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => return Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => e,
        Err(e) => return Err(format!("cannot listen on {addr}: {e}")),
    };
    if next_free && addr.port() != 0 {
        for port in addr.port().saturating_add(1)..=addr.port().saturating_add(20) {
            if let Ok(listener) = tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
                eprintln!("note: port {} is in use; using {port}", addr.port());
                return Ok(listener);
            }
        }
    }
    Err(format!(
        "cannot listen on {addr}: {taken} (another `boram serve`?); stop it, pick another --addr, or set \
         [serve] next_free_port = true"
    ))
}

/// How often the schedulers look for due schedules.
const SCHEDULE_TICK: std::time::Duration = std::time::Duration::from_secs(15);

/// One scheduler per user, ticking until the service stops; each due
/// schedule becomes a run like `POST /v1/runs` (same session, events, metrics).
fn start_schedulers(state: &Arc<AppState>) -> Vec<tokio::task::JoinHandle<()>> {
    if state.agents.is_none() {
        return Vec::new();
    }
    if state.runs.shared_store().is_some() {
        return vec![cluster_scheduler(state.runs.clone(), state.shutdown.clone())];
    }
    state
        .tenants
        .iter()
        .map(|tenant| {
            let store = Arc::new(ScheduleStore::open(&tenant.data_dir));
            let start: Starter = {
                let (runs, tenant) = (state.runs.clone(), tenant.clone());
                Arc::new(move |schedule: &Schedule, finished: Finished| {
                    let queued = runs.start(
                        &tenant,
                        schedule.profile.as_deref(),
                        schedule.task.clone(),
                        Some(reports_to(finished)),
                    );
                    // The scheduler's tick is synchronous (its store is a
                    // small file); queueing is one local SQLite insert.
                    let id = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(queued))?;
                    Ok(id)
                })
            };
            let scheduler = Scheduler::new(store, Arc::new(SystemClock), start);
            let (name, shutdown) = (tenant.name.clone(), state.shutdown.clone());
            let (runs, tenant) = (state.runs.clone(), tenant.clone());
            tokio::spawn(async move {
                adopt_scheduled_runs(&scheduler, &runs, &tenant).await;
                loop {
                    match scheduler.tick() {
                        Ok(report) => {
                            for (schedule, slots) in &report.started {
                                tracing::info!(user = %name, schedule, slots, "scheduled run started");
                            }
                            for schedule in &report.skipped {
                                tracing::warn!(user = %name, schedule, "scheduled run skipped: the previous one is still going");
                            }
                        }
                        Err(e) => tracing::error!(user = %name, error = %e, "cannot read the schedules"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(schedule_tick()) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            })
        })
        .collect()
}

/// A run's end, told to the schedule that started it.
fn reports_to(finished: Finished) -> crate::serve::runs::OnFinish {
    Box::new(move |stop: &str, _took| finished(stop.to_string()))
}

/// Scheduled runs a previous process started and did not see end (killed,
/// or stopped with the run given back): the run queue resumes them, so the
/// schedule waits for that run (no overlapping slot) and records its end;
/// one that ended meanwhile, or that the queue does not know (an earlier
/// build's), gets its status now instead of showing "running" for ever.
async fn adopt_scheduled_runs(scheduler: &Scheduler, runs: &RunQueue, tenant: &Tenant) {
    let unfinished = match scheduler.unfinished() {
        Ok(unfinished) => unfinished,
        Err(e) => return tracing::error!(user = %tenant.name, error = %e, "cannot read the schedules"),
    };
    for (schedule, run) in unfinished {
        // Registered before the status is read: a run that ends in between
        // still reports, and one that had ended is settled below.
        let finished = scheduler.adopt(&schedule);
        runs.on_finish(&run, reports_to(finished));
        let status = match runs.get(&tenant.name, &run).await {
            Ok(Some(summary)) => summary.status,
            Ok(None) => "interrupted: the service stopped during the run".to_string(),
            Err(e) => {
                tracing::warn!(user = %tenant.name, schedule, error = %e, "cannot look up a scheduled run");
                continue;
            }
        };
        if status == "queued" || status == "running" {
            tracing::info!(user = %tenant.name, schedule, run, "a scheduled run of the previous process is resumed");
        } else if let Some(finished) = runs.take_on_finish(&run) {
            // Ended already (or unknown): free the schedule and record it.
            finished(&status, std::time::Duration::ZERO);
        }
    }
}

/// Cluster mode: one loop ticks every user's schedules in the shared
/// store; every replica runs one, and each due slot fires once.
fn cluster_scheduler(
    shared: Arc<RunQueue>,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reported = false;
        loop {
            match shared.tick_schedules().await {
                Ok(tick) => {
                    reported = false;
                    for (user, schedule, run) in &tick.started {
                        tracing::info!(user, schedule, run, "scheduled run queued");
                    }
                    for (user, schedule) in &tick.skipped {
                        tracing::warn!(user, schedule, "scheduled run skipped: the previous one is still going");
                    }
                }
                Err(e) if !reported => {
                    tracing::error!(error = %e, "cannot tick the schedules; retrying");
                    reported = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(schedule_tick()) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// How often schedules are looked at: [`SCHEDULE_TICK`], or
/// `BORAM_SCHEDULE_TICK_MS` (for tests and impatient operators).
fn schedule_tick() -> std::time::Duration {
    std::env::var("BORAM_SCHEDULE_TICK_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or(SCHEDULE_TICK)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
