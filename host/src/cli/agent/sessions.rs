//! `boram sessions list`: the saved transcripts in the data directory —
//! the CLI's own and those of `boram serve` users (their runs and
//! schedules), with the user they belong to.

use crate::cli::context::GlobalArgs;
use crate::config;
use clap::Subcommand;
use std::process::ExitCode;

/// Saved agent sessions (transcripts in DATA_DIR/sessions).
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, oldest first: id, user (of `boram serve` runs and
    /// schedules), start time, model, prompts, cost, first prompt.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

impl SessionsCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let Self::List { json } = self;
        let dir = config::sessions_dir(&global.data_dir());
        let mut sessions = Vec::new();
        for (user, dir) in crate::session::all_dirs(&global.data_dir()) {
            for mut summary in crate::session::list(&dir)? {
                summary.user = user.clone();
                sessions.push(summary);
            }
        }
        sessions.sort_by(|a, b| (&a.started, &a.id).cmp(&(&b.started, &b.id)));
        if json {
            for s in &sessions {
                println!("{}", serde_json::to_string(s)?);
            }
            return Ok(ExitCode::SUCCESS);
        }
        if sessions.is_empty() {
            eprintln!("no sessions yet in {} (start one with `boram chat`)", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{:<22} {:<10} {:<20} {:<22} {:>7} {:>9}  FIRST PROMPT",
            "ID", "USER", "STARTED", "MODEL", "PROMPTS", "COST"
        );
        for s in &sessions {
            let started: String = s.started.chars().take(19).collect();
            println!(
                "{:<22} {:<10} {:<20} {:<22} {:>7} {:>9}  {}",
                s.id,
                s.user.as_deref().unwrap_or("-"),
                started.replace('T', " "),
                s.model,
                s.prompts,
                format!("${:.4}", s.cost_usd),
                s.title
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
