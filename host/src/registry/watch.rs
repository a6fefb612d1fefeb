//! Hot swap: watch the tools directory and the policy file, and swap
//! changes into the [`ToolHost`] without a restart.
//!
//! Only events that change a file's content or its name count (inotify also
//! reports every open and read, and loading a changed file reads it: taken
//! as changes, those made one edit reload forever). A policy whose bytes
//! did not change is not reloaded. So one save is exactly one reload.
//! File events are debounced (a build writes a file in several steps);
//! a changed `.wasm` is then loaded off the request path — compiled,
//! instantiated, `describe` called — and swapped in only if all of that
//! worked, so a broken or half-written file never replaces a working
//! version. A removed `.wasm` unloads its tools. An edited policy applies to
//! the next call if it is valid; if not, the previous one stays. Every
//! outcome is logged and written to the audit log with old and new hashes.

use super::ToolHost;
use crate::policy::Policy;
use notify::{RecursiveMode, Watcher as _};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last event before a change is applied.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// What a swap attempt did, for the log, the audit log and the UI.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReloadEvent {
    ToolLoaded {
        path: PathBuf,
        tools: Vec<String>,
        new_sha256: String,
    },
    ToolSwapped {
        path: PathBuf,
        tools: Vec<String>,
        old_sha256: String,
        new_sha256: String,
    },
    ToolRejected {
        path: PathBuf,
        old_sha256: Option<String>,
        error: String,
    },
    ToolUnloaded {
        path: PathBuf,
        old_sha256: String,
    },
    PolicyReloaded {
        path: PathBuf,
    },
    PolicyRejected {
        path: PathBuf,
        error: String,
    },
}

impl ReloadEvent {
    /// Whether the set of tools or what they may do changed (a rejected
    /// edit leaves both as they were): clients that list tools should
    /// list them again.
    pub fn changes_tools(&self) -> bool {
        !matches!(
            self,
            ReloadEvent::ToolRejected { .. } | ReloadEvent::PolicyRejected { .. }
        )
    }
}

/// Keeps watching while alive.
pub struct Watching {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `tools_dir` (and `policy`, if given); `on_event` hears
/// about every reload.
pub fn watch(
    host: Arc<ToolHost>,
    tools_dir: &Path,
    policy: Option<&Path>,
    on_event: Arc<dyn Fn(&ReloadEvent) + Send + Sync>,
) -> notify::Result<Watching> {
    // Watch the policy's directory: editors replace files by renaming, which
    // a watch on the file itself would lose.
    let policy = policy.map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    let mut dirs = vec![tools_dir.to_path_buf()];
    dirs.extend(policy.as_deref().and_then(Path::parent).map(Path::to_path_buf));
    let tools_dir = std::path::absolute(tools_dir).unwrap_or_else(|_| tools_dir.to_path_buf());
    // The policy text in force: a save that changes nothing is not a reload.
    let applied = Arc::new(std::sync::Mutex::new(
        policy.as_deref().and_then(|p| std::fs::read(p).ok()),
    ));
    watch_dirs(&dirs, DEBOUNCE, move |changed| {
        let (host, policy, tools_dir, on_event) = (host.clone(), policy.clone(), tools_dir.clone(), on_event.clone());
        let applied = applied.clone();
        async move {
            for path in changed {
                let event = if Some(&path) == policy.as_ref() {
                    let text = std::fs::read(&path).ok();
                    let mut applied = applied.lock().unwrap_or_else(|e| e.into_inner());
                    if text.is_some() && *applied == text {
                        None
                    } else {
                        let event = reload_policy(&host, &path);
                        *applied = text;
                        event
                    }
                } else if path.parent() == Some(tools_dir.as_path()) && path.extension().is_some_and(|e| e == "wasm") {
                    reload_tool(&host, &path).await
                } else {
                    None
                };
                if let Some(event) = event {
                    report(&host, &event);
                    on_event(&event);
                }
            }
        }
    })
}

/// Watches `dirs` (not recursively) and calls `on_change` with the paths
/// that changed, once they have been quiet for `debounce` (a build or an
/// editor writes a file in several steps). Stops when the result is dropped.
pub fn watch_dirs<F, Fut>(dirs: &[PathBuf], debounce: Duration, mut on_change: F) -> notify::Result<Watching>
where
    F: FnMut(BTreeSet<PathBuf>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && changes_content(&event.kind)
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })?;
    for dir in dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut changed = BTreeSet::from([first]);
            while let Ok(Some(path)) = tokio::time::timeout(debounce, rx.recv()).await {
                changed.insert(path);
            }
            on_change(changed).await;
        }
    });
    Ok(Watching {
        _watcher: watcher,
        task,
    })
}

/// Whether an event can change what a file holds: creation, removal, a
/// write, a rename. Opens, reads, closes without writing, and metadata
/// (permissions, access times) cannot.
pub(crate) fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        // A file closed after writing: its content is final now.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
        // A backend that cannot say what happened: assume a change.
        EventKind::Any => true,
    }
}

/// Loads, replaces or unloads the component at `path`.
pub async fn reload_tool(host: &ToolHost, path: &Path) -> Option<ReloadEvent> {
    // Registries hold absolute paths (see `Registry::load_dir`).
    let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let old = host.registry().component_at(path).map(|c| c.sha256.clone());
    if !path.exists() {
        host.remove_file(path);
        return old.map(|old_sha256| ReloadEvent::ToolUnloaded {
            path: path.to_path_buf(),
            old_sha256,
        });
    }
    let runtime = host.registry().runtime().clone();
    match runtime.load(path).await {
        Ok(component) if Some(&component.sha256) == old.as_ref() => None,
        Ok(component) => {
            let component = Arc::new(component);
            let tools = component.specs.iter().map(|s| s.name.clone()).collect();
            let new_sha256 = component.sha256.clone();
            if let Err(error) = host.swap_component(component) {
                return Some(ReloadEvent::ToolRejected {
                    path: path.to_path_buf(),
                    old_sha256: old,
                    error,
                });
            }
            Some(match old {
                Some(old_sha256) => ReloadEvent::ToolSwapped {
                    path: path.to_path_buf(),
                    tools,
                    old_sha256,
                    new_sha256,
                },
                None => ReloadEvent::ToolLoaded {
                    path: path.to_path_buf(),
                    tools,
                    new_sha256,
                },
            })
        }
        Err(e) => Some(ReloadEvent::ToolRejected {
            path: path.to_path_buf(),
            old_sha256: old,
            error: format!("{e:#}"),
        }),
    }
}

/// [`reload_tool`], then logs and audits what happened: for a component
/// placed by something other than the watcher (`create_tool`), which must
/// know the outcome before it answers.
pub async fn apply_tool_file(host: &ToolHost, path: &Path) -> Option<ReloadEvent> {
    let event = reload_tool(host, path).await;
    if let Some(event) = &event {
        report(host, event);
    }
    event
}

/// Applies the policy file at `path`, or keeps the current one if it is invalid.
pub fn reload_policy(host: &ToolHost, path: &Path) -> Option<ReloadEvent> {
    if !path.exists() {
        return None;
    }
    Some(
        match Policy::load(path)
            .map_err(|e| e.to_string())
            .and_then(|p| host.set_policy(p))
        {
            Ok(warnings) => {
                for warning in warnings {
                    tracing::warn!("{warning}");
                }
                ReloadEvent::PolicyReloaded {
                    path: path.to_path_buf(),
                }
            }
            Err(e) => ReloadEvent::PolicyRejected {
                path: path.to_path_buf(),
                error: e,
            },
        },
    )
}

fn report(host: &ToolHost, event: &ReloadEvent) {
    match event {
        ReloadEvent::ToolRejected { path, error, .. } | ReloadEvent::PolicyRejected { path, error } => {
            tracing::warn!(path = %path.display(), error = %error, "reload rejected; the previous version stays");
        }
        other => tracing::info!(event = ?other, "reloaded"),
    }
    if let Some(audit) = host.audit() {
        let mut line = serde_json::to_value(event).unwrap_or_else(|_| json!({}));
        line["time"] = json!(crate::audit::now());
        audit.event(&line);
    }
}
