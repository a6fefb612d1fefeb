//! `boram schedule add|list|remove|run-now`: scheduled agent runs, kept in
//! the user's data directory (`<data>/schedules.json` for `local`,
//! `<data>/users/<user>/schedules.json` otherwise: the same place `boram
//! serve` reads them from) and run by `boram serve`.

use super::agent::args::AgentArgs;
use crate::agent::PromptMode;
use crate::app::AgentPlace;
use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use crate::schedule::{Schedule, ScheduleStore};
use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Whose schedules (a `[[serve.users]]` name; `local` without users).
    #[arg(long, global = true, default_value = crate::config::LOCAL_USER)]
    user: String,
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Add a schedule: `boram schedule add weekly_papers --cron "0 8 * * 1" --profile research "task"`.
    Add {
        name: String,
        /// Five-field cron expression in UTC (minute hour day-of-month month day-of-week).
        #[arg(long)]
        cron: String,
        /// Agent profile to run as (default: general).
        #[arg(long)]
        profile: Option<String>,
        /// The task, as you would give it to `boram run`.
        #[arg(required = true, num_args = 1..)]
        task: Vec<String>,
    },
    /// List schedules with their next and last runs.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a schedule.
    Remove { name: String },
    /// Run a schedule now, here (same session, usage and transcript as a scheduled run).
    RunNow {
        name: String,
        #[command(flatten)]
        agent: AgentArgs,
    },
}

impl ScheduleArgs {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let data_dir = crate::config::user_data_dir(&global.data_dir(), &self.user);
        let store = ScheduleStore::open(&data_dir);
        match self.command {
            ScheduleCommand::Add {
                name,
                cron,
                profile,
                task,
            } => {
                if let Some(p) = &profile
                    && crate::agent::profiles::Profiles::default().get(p).is_none()
                {
                    eprintln!(
                        "note: `{p}` is not a built-in profile; define [profiles.{p}] in the config the service runs with"
                    );
                }
                let schedule = Schedule::new(name.clone(), cron, profile, task.join(" "), chrono::Utc::now());
                let next = schedule.next_after(schedule.created);
                store.add(schedule).map_err(|e| UsageError(format!("{e:#}")))?;
                println!(
                    "added `{name}`; next run {} (UTC), by `boram serve`",
                    next.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "never".into())
                );
            }
            ScheduleCommand::List { json } => {
                let schedules = store.list()?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&schedules)?);
                } else if schedules.is_empty() {
                    println!("no schedules; add one with `boram schedule add NAME --cron \"0 8 * * 1\" TASK`");
                } else {
                    let now = chrono::Utc::now();
                    for s in &schedules {
                        let next = s
                            .next_after(s.last_run.unwrap_or(s.created).max(now))
                            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_else(|| "-".into());
                        let last = s
                            .last_run
                            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_else(|| "never".into());
                        println!(
                            "{:<20} {:<15} {:<9} next {next}  last {last} ({})  {}",
                            s.name,
                            s.cron,
                            s.profile.as_deref().unwrap_or("general"),
                            s.last_status.as_deref().unwrap_or("-"),
                            s.task
                        );
                    }
                }
            }
            ScheduleCommand::Remove { name } => {
                if !store.remove(&name)? {
                    return Err(UsageError(format!("no schedule named `{name}`")).into());
                }
                println!("removed `{name}`");
            }
            ScheduleCommand::RunNow { name, agent } => {
                let schedule = store
                    .list()?
                    .into_iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| UsageError(format!("no schedule named `{name}`")))?;
                let app = agent.app(global);
                let host = Arc::new(app.tool_host().await?);
                // The schedule's user's directory (the data directory for `local`).
                let kit = agent.kit(&data_dir)?;
                let place = AgentPlace {
                    host,
                    data_dir: &data_dir,
                    tools_dir: &app.tools_dir,
                    workspace: None,
                    shared: None,
                };
                let mode = PromptMode::Unattended { yes: agent.yes };
                let mut run = kit.agent_as(schedule.profile.as_deref(), place, mode, None)?;
                let session = run.session().id().to_string();
                let events = super::agent::render_sink();
                let result = run.turn(&schedule.task, &events, &CancellationToken::new()).await;
                store.update(|list| {
                    if let Some(s) = list.iter_mut().find(|s| s.name == name) {
                        s.last_run = Some(chrono::Utc::now());
                        s.last_session = Some(session.clone());
                        s.last_status = Some(result.stop.as_str().to_string());
                    }
                    Ok(())
                })?;
                eprintln!("session {session}: {}", result.stop.as_str());
                return Ok(if result.stop.is_success() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(crate::cli::EXIT_FAILURE)
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
