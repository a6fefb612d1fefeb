//! `boram tool build [NAME] [--watch]`: compiles tool crates to
//! `wasm32-wasip2` with a progress display and places each component in the
//! tools directory, where a running `boram chat` swaps it in. With
//! `--watch` it rebuilds once per save until Ctrl-C (which also stops a
//! build in progress, cargo and its compilers with it); a failed build
//! leaves the last good component in place. Only writes, creations,
//! removals and renames of sources count as saves: a build reads every
//! source, and inotify reports those reads too.

use crate::authoring::build::{self, BuildFailure, ToolCrate};
use crate::cli::UsageError;
use crate::cli::context::GlobalArgs;
use clap::Args;
use guest_build::BuildEvent;
use indicatif::{ProgressBar, ProgressStyle};
use notify::Watcher as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct BuildCommand {
    /// The tool crate to build. Default: every member of the tools workspace.
    name: Option<String>,
    /// Where the crate is (as given to `boram tool new --dir`). Default: the tools directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Rebuild whenever a source file changes, until Ctrl-C.
    #[arg(long)]
    watch: bool,
}

/// Quiet time after the last save before rebuilding (editors write in steps).
const WATCH_DEBOUNCE: Duration = Duration::from_millis(300);
/// Exit code after Ctrl-C, as shells expect (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

/// Ctrl-C stopped a build.
struct Interrupted;

impl BuildCommand {
    pub async fn run(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let tools_dir = global.tools_dir();
        let dir = self.dir.clone().unwrap_or_else(|| tools_dir.clone());
        let krate = build::locate(&dir, self.name.as_deref()).map_err(UsageError)?;
        let Ok(ok) = build_once(&krate, &tools_dir).await else {
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        };
        if !self.watch {
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::cli::EXIT_FAILURE)
            });
        }
        watch(&krate, &tools_dir).await?;
        Ok(ExitCode::from(EXIT_INTERRUPTED))
    }
}

/// One build with progress on stderr; true when it placed its components.
/// Ctrl-C stops it (and the whole cargo process group); `Err` then.
async fn build_once(krate: &ToolCrate, tools_dir: &Path) -> Result<bool, Interrupted> {
    let what = krate
        .package
        .clone()
        .unwrap_or_else(|| krate.manifest.display().to_string());
    let progress = Progress::start(&what);
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut job = {
        let krate = krate.clone();
        let tools_dir = tools_dir.to_path_buf();
        let progress = progress.clone();
        let cancel = cancel.clone();
        tokio::task::spawn_blocking(move || {
            build::build_and_place(&krate, &tools_dir, None, Some(cancel), &mut |event| {
                progress.event(event)
            })
        })
    };
    let result = tokio::select! {
        result = &mut job => result,
        _ = tokio::signal::ctrl_c() => {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = job.await;
            progress.finish();
            eprintln!("build cancelled");
            return Err(Interrupted);
        }
    };
    progress.finish();
    Ok(match result {
        Ok(Ok((output, placed))) => {
            for p in &placed {
                eprintln!(
                    "built {} ({} KiB) in {:.1} s: {}",
                    p.path.display(),
                    p.size_bytes.div_ceil(1024),
                    output.elapsed.as_secs_f64(),
                    if p.changed { "updated" } else { "unchanged" }
                );
            }
            if output.warnings > 0 {
                eprintln!("{} compiler warning(s) above", output.warnings);
            }
            true
        }
        Ok(Err(BuildFailure::Compile(output))) => {
            eprintln!(
                "build failed: {} error(s); the previous component (if any) stays in place",
                output.errors.len().max(1)
            );
            if output.errors.is_empty() {
                eprintln!("{}", output.failure_text(20_000));
            }
            false
        }
        Ok(Err(other)) => {
            eprintln!("build failed: {other}");
            false
        }
        Err(e) => {
            eprintln!("build failed: {e}");
            false
        }
    })
}

/// Rebuilds once per save of the crate's sources until Ctrl-C.
async fn watch(krate: &ToolCrate, tools_dir: &Path) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    // notify reports absolute paths; a relative `--dir` must match them.
    let roots: Vec<PathBuf> = krate
        .sources
        .iter()
        .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
        .collect();
    let watched = roots.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && crate::registry::watch::changes_content(&event.kind)
            && event.paths.iter().any(|p| is_source(&watched, p))
        {
            let _ = tx.send(());
        }
    })?;
    for dir in &roots {
        watcher.watch(dir, notify::RecursiveMode::Recursive)?;
    }
    eprintln!(
        "watching {} for changes (Ctrl-C to stop)",
        krate
            .sources
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    loop {
        tokio::select! {
            changed = rx.recv() => {
                if changed.is_none() {
                    return Ok(());
                }
                while let Ok(Some(())) = tokio::time::timeout(WATCH_DEBOUNCE, rx.recv()).await {}
                eprintln!("change detected; rebuilding");
                if build_once(krate, tools_dir).await.is_err() {
                    return Ok(());
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Rust sources and manifests under one of `roots`, not build output
/// (`target/`) or hidden editor files.
fn is_source(roots: &[PathBuf], path: &Path) -> bool {
    let Some(relative) = roots.iter().find_map(|r| path.strip_prefix(r).ok()) else {
        return false;
    };
    let in_output = relative
        .components()
        .any(|c| c.as_os_str() == "target" || c.as_os_str().to_string_lossy().starts_with('.'));
    !in_output && path.extension().is_some_and(|e| e == "rs" || e == "toml")
}

/// A spinner on a terminal, plain lines otherwise; compiler messages
/// printed above it as they arrive.
#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
    compiled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Progress {
    fn start(what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} building {prefix} [{elapsed}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            eprintln!("building {what} for {}", guest_build::GUEST_TARGET);
        }
        Self {
            bar,
            compiled: Default::default(),
        }
    }

    fn event(&self, event: &BuildEvent) {
        match event {
            BuildEvent::Compiled { crate_name, fresh } => {
                let n = self.compiled.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let line = format!(
                    "{n} crates ready, last: {crate_name}{}",
                    if *fresh { " (fresh)" } else { "" }
                );
                match &self.bar {
                    Some(bar) => bar.set_message(line),
                    None if !fresh => eprintln!("  compiled {crate_name}"),
                    None => {}
                }
            }
            BuildEvent::Diagnostic { rendered, .. } => match &self.bar {
                Some(bar) => bar.suspend(|| eprint!("{rendered}")),
                None => eprint!("{rendered}"),
            },
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
