//! `boram serve`: builds the users, metrics and agent factory from the
//! flags and `[serve]` in the config file, then runs [`crate::serve`].

use super::agent::args::{AgentArgs, AgentPlace};
use crate::agent::PromptMode;
use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use crate::registry::watch::{self, ReloadEvent};
use crate::schedule::{Finished, Schedule, ScheduleStore, Scheduler, Starter, SystemClock};
use crate::serve::metrics::Metrics;
use crate::serve::runs::{AgentFactory, Runs};
use crate::serve::tenants::{Tenant, UserSpec, hash_token};
use crate::serve::{AppState, check_exposure};
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
    /// Workspace directory of the single user when `[[serve.users]]` is
    /// not configured: `${workspace}` in the policy.
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// The model for `POST /v1/runs` (same options as `boram run`; without
    /// one, runs are refused and tools still work).
    #[command(flatten)]
    agent: AgentArgs,
}

impl ServeCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let config = self.agent.config_file()?;
        let serve = &config.serve;
        let data_dir = global.data_dir();
        let tools_dir = global.tools_dir();
        let addr_text = self
            .addr
            .clone()
            .or_else(|| serve.addr.clone())
            .unwrap_or_else(|| DEFAULT_ADDR.into());
        let addr: SocketAddr = addr_text
            .parse()
            .map_err(|e| UsageError(format!("--addr {addr_text}: {e}; use IP:PORT, e.g. 127.0.0.1:8080")))?;
        let approve_prompt = serve.approve_prompt.unwrap_or(false) || self.agent.yes;

        let users = users(&serve.users, self.workspace.clone())?;
        let policy = match &global.policy {
            Some(path) => Some((
                path.clone(),
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
            )),
            None => None,
        };
        let registry = global.registry().await?;
        let metrics = Arc::new(Metrics::new());
        let mut tenants = Vec::new();
        for spec in &users {
            let observer = {
                let metrics = metrics.clone();
                Arc::new(move |report: &crate::runtime::CallReport| metrics.tool_call(report))
            };
            let policy = policy.as_ref().map(|(p, t)| (p.as_path(), t.as_str()));
            let tenant = Tenant::build(spec, &registry, policy, &data_dir, observer).map_err(UsageError)?;
            tenants.push(Arc::new(tenant));
        }
        check_exposure(&addr, &tenants).map_err(UsageError)?;

        let agents: Option<AgentFactory> = match self.agent.kit(&data_dir) {
            Ok(kit) => {
                let kit = Arc::new(kit);
                let metrics = metrics.clone();
                let tools_dir = tools_dir.clone();
                Some(Arc::new(move |tenant: &Tenant, profile: Option<&str>| {
                    let metrics = metrics.clone();
                    let observer: crate::llm::UsageObserver =
                        Arc::new(move |model, usage, cost| metrics.model_call(model, usage, cost));
                    let place = AgentPlace {
                        host: tenant.host.clone(),
                        data_dir: &tenant.data_dir,
                        tools_dir: &tools_dir,
                    };
                    let mode = PromptMode::Unattended { yes: approve_prompt };
                    kit.agent_as(profile, place, mode, Some(observer))
                }))
            }
            Err(e) => {
                eprintln!("warning: agent runs are off: {e:#}");
                None
            }
        };

        // Hot swap, for every user's tool host; each reload is counted and shown.
        let mut watchers = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            // Every user's host reloads the same file: count it once.
            let metrics = (i == 0).then(|| metrics.clone());
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
                    }),
                )
                .context("cannot watch the tools directory")?,
            );
        }

        let state = Arc::new(AppState {
            started: std::time::Instant::now(),
            tenants: tenants.clone(),
            metrics,
            runs: Runs::default(),
            agents,
            approve_prompt,
            shutdown: Default::default(),
        });
        let _schedulers = start_schedulers(&state);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| UsageError(format!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr()?;
        eprintln!(
            "listening on http://{local} ({} tools; users: {})",
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
        let body_limit = serve
            .body_limit_kb
            .unwrap_or(crate::config::serve::DEFAULT_BODY_LIMIT_KB)
            << 10;
        crate::serve::serve(listener, state, body_limit, shutdown_signal()).await?;
        drop(watchers);
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
        name: "local".into(),
        token_sha256: token.as_deref().map(hash_token),
        workspace,
    }])
}

/// How often the schedulers look for due schedules.
const SCHEDULE_TICK: std::time::Duration = std::time::Duration::from_secs(15);

/// One scheduler per user, ticking until the service stops; each due
/// schedule becomes a run like `POST /v1/runs` (same session, events, metrics).
fn start_schedulers(state: &Arc<AppState>) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(factory) = state.agents.clone() else {
        return Vec::new();
    };
    state
        .tenants
        .iter()
        .map(|tenant| {
            let store = Arc::new(ScheduleStore::open(&tenant.data_dir));
            let start: Starter = {
                let (state, tenant, factory) = (state.clone(), tenant.clone(), factory.clone());
                Arc::new(move |schedule: &Schedule, finished: Finished| {
                    let metrics = state.metrics.clone();
                    let run = state.runs.start(
                        &tenant,
                        &factory,
                        schedule.profile.as_deref(),
                        schedule.task.clone(),
                        Box::new(move |stop: &str| {
                            metrics.run_finished(stop);
                            finished(stop.to_string());
                        }),
                    )?;
                    Ok(run.summary().id)
                })
            };
            let scheduler = Scheduler::new(store, Arc::new(SystemClock), start);
            let (name, shutdown) = (tenant.name.clone(), state.shutdown.clone());
            tokio::spawn(async move {
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
                        _ = tokio::time::sleep(SCHEDULE_TICK) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            })
        })
        .collect()
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
