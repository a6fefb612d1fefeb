//! `boram memory …` (the agent's long-term notes) and `boram failures`
//! (the failure store), both in `memory.db` of the data directory.

use super::UsageError;
use super::context::GlobalArgs;
use crate::memory::failures::FailureStore;
use crate::memory::{Entry, MemoryError, MemoryStore};
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// The agent's long-term memory: notes kept across sessions.
#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Save a note.
    Save {
        /// The note.
        text: String,
        /// A tag (repeatable): letters, digits, `-`, `_`.
        #[arg(long = "tag", short)]
        tags: Vec<String>,
    },
    /// Search notes, best match first.
    Search {
        query: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The newest notes.
    Latest {
        #[arg(default_value_t = 10)]
        n: usize,
        #[arg(long)]
        json: bool,
    },
    /// Delete a note by id.
    Delete { id: i64 },
}

impl MemoryCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = MemoryStore::open(&global.data_dir()).map_err(usage)?;
        match self {
            Self::Save { text, tags } => {
                let id = store.save(&text, &tags).map_err(usage)?;
                println!("saved note {id}");
            }
            Self::Search { query, limit, json } => print_entries(&store.search(&query, limit).map_err(usage)?, json)?,
            Self::Latest { n, json } => print_entries(&store.latest(n).map_err(usage)?, json)?,
            Self::Delete { id } => {
                if !store.delete(id).map_err(usage)? {
                    return Err(UsageError(format!("there is no note {id} (see `boram memory latest`)")).into());
                }
                println!("deleted note {id}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Bad input is a usage error (exit 2); a database problem is not.
fn usage(e: MemoryError) -> anyhow::Error {
    match e {
        MemoryError::Invalid(m) => UsageError(m).into(),
        other => other.into(),
    }
}

/// Prints notes, one per line (or one JSON object per line).
pub fn print_entries(entries: &[Entry], json: bool) -> anyhow::Result<()> {
    for e in entries {
        if json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            let tags = if e.tags.is_empty() {
                String::new()
            } else {
                format!(" #{}", e.tags.join(" #"))
            };
            println!(
                "{:>4}  {}  {}{tags}",
                e.id,
                &e.created[..e.created.len().min(10)],
                e.text.replace('\n', " ")
            );
        }
    }
    if entries.is_empty() && !json {
        eprintln!("no notes");
    }
    Ok(())
}

/// Failed tool calls and tasks, newest first, with what fixed them.
#[derive(Debug, Args)]
pub struct FailuresCommand {
    /// Only this tool (`task` for failed tasks).
    #[arg(long)]
    tool: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

impl FailuresCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let store = FailureStore::open(&global.data_dir()).map_err(usage)?;
        let failures = store.list(self.tool.as_deref(), self.limit).map_err(usage)?;
        for f in &failures {
            if self.json {
                println!("{}", serde_json::to_string(f)?);
                continue;
            }
            println!(
                "{}  {}  {}  {}",
                &f.time[..f.time.len().min(19)],
                f.tool,
                f.kind,
                f.message.replace('\n', " ")
            );
            println!("    input: {}", f.input);
            if let Some(fix) = &f.fixed_by {
                println!("    fixed by: {fix}");
            }
        }
        if failures.is_empty() && !self.json {
            eprintln!("no failures recorded");
        }
        Ok(ExitCode::SUCCESS)
    }
}
