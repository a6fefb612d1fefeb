//! Big components that are not compiled yet load after an agent command
//! starts, not before it. A Python or JavaScript tool carries its
//! interpreter (12–18 MB) and takes 15–30 s to compile on a laptop. A
//! chat should not wait that long for the tools it needs now (issue 17).
//! Components over the threshold that the compile cache does not hold are
//! left out of the first registry, compiled in the background, and
//! swapped in when ready. From then on the model is
//! offered their tools, and stderr says so. Small components and cached
//! ones load at once, as before.

use super::ToolHost;
use crate::runtime::Runtime;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Background compiles not finished yet, in this process.
static PENDING: AtomicUsize = AtomicUsize::new(0);
static FINISHED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Environment variable: components at least this many MB are compiled in
/// the background when not cached (`0`: every uncached one; tests use it).
pub const THRESHOLD_ENV: &str = "BORAM_BACKGROUND_COMPILE_MB";
/// Default threshold: above every first-party Rust tool (at most about
/// 1 MB), below the Python and JavaScript ones.
const DEFAULT_THRESHOLD_MB: u64 = 4;

/// The size from which an uncached component is compiled in the background.
pub fn threshold_bytes() -> u64 {
    let mb = std::env::var(THRESHOLD_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_THRESHOLD_MB);
    mb * 1_000_000
}

/// Whether `path` should load in the background: at least `threshold`
/// bytes and not in `runtime`'s compile cache.
pub fn should_defer(runtime: &Runtime, path: &Path, threshold: u64) -> bool {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    size >= threshold && runtime.needs_compile(path)
}

/// Says which components are compiling, then loads them and swaps each
/// into `host` as it is ready.
/// [`finish_before_exit`] waits for them.
pub fn spawn(host: Arc<ToolHost>, paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            let size = std::fs::metadata(p).map_or(0, |m| m.len());
            format!("{} ({:.1} MB)", file_name(p), size as f64 / 1e6)
        })
        .collect();
    eprintln!(
        "compiling {} in the background (not in the compile cache yet); its tools are offered once ready",
        names.join(", ")
    );
    PENDING.fetch_add(paths.len(), Ordering::SeqCst);
    tokio::spawn(async move {
        use futures::StreamExt as _;
        let runtime = host.registry().runtime().clone();
        // In parallel, one per core, as a start loads: the agent itself
        // mostly waits on the model.
        let parallel = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        futures::stream::iter(paths)
            .for_each_concurrent(parallel, |path| {
                let (host, runtime) = (host.clone(), runtime.clone());
                async move {
                    let loaded = runtime.load_quietly(&path).await;
                    match loaded {
                        Ok(component) => {
                            let tools: Vec<String> = component.specs.iter().map(|s| s.name.clone()).collect();
                            match host.swap_component(Arc::new(component)) {
                                Ok(()) => eprintln!(
                                    "✓ {} compiled: {} offered from the next model request",
                                    file_name(&path),
                                    tools.join(", ")
                                ),
                                Err(e) => eprintln!("warning: {}: {e}", path.display()),
                            }
                        }
                        Err(e) => eprintln!("warning: {}: {e}", path.display()),
                    }
                    PENDING.fetch_sub(1, Ordering::SeqCst);
                    FINISHED.notify_waiters();
                }
            })
            .await;
    });
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Before the process exits (a one-shot `boram run` that answered while a
/// big tool was still compiling): lets the compiles finish, so the next
/// start finds them in the cache, and says so. Ctrl-C stops waiting;
/// returns `false` then, and the caller exits without waiting (the compile
/// workers die with the process).
pub async fn finish_before_exit() -> bool {
    if PENDING.load(Ordering::SeqCst) == 0 {
        return true;
    }
    eprintln!("finishing the background compile so the next start finds it cached (Ctrl-C to skip)…");
    let all_done = async {
        loop {
            let finished = FINISHED.notified();
            if PENDING.load(Ordering::SeqCst) == 0 {
                return;
            }
            finished.await;
        }
    };
    tokio::select! {
        () = all_done => true,
        _ = tokio::signal::ctrl_c() => false,
    }
}
