//! Memory benchmark (issue 14): resident memory of the host around tool
//! calls that use a lot of linear memory. Prints a Markdown table.
//!
//! `cargo bench -p boram-host --bench memory` runs, under `memory_mb = 512`
//! with the pooling allocator:
//! - 20 sequential calls that each touch 400 MiB: RSS after them, against
//!   the RSS before (a finished call's memory must go back to the system);
//! - 20 such calls started at once under a 2048 MiB budget: the highest RSS
//!   seen while they run (at most 4 may run at once);
//! - 40 hot swaps flapping between two versions of a tool, each followed
//!   by a call: RSS and open memfds (wasmtime's memory images) before and
//!   after (swapped-out versions must be freed).

use boram_host::policy::Policy;
use boram_host::runtime::{Runtime, RuntimeOptions, SandboxTemplate};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const CALLS: usize = 20;
const TOUCH_MB: u64 = 400;
const BUDGET_MB: u64 = 2048;

fn main() {
    let fixtures = PathBuf::from(env!("BORAM_FIXTURES_DIR"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Arc::new(
        Runtime::new(&RuntimeOptions {
            cache_dir: None,
            no_pooling: false,
            memory_budget_mb: Some(BUDGET_MB),
            ..RuntimeOptions::default()
        })
        .expect("runtime"),
    );
    let component = Arc::new(rt.block_on(runtime.load(&fixtures.join("hostile.wasm"))).expect("load"));
    let policy = Policy::parse(
        "version = 1\n[tools.alloc]\nmemory_mb = 512\nconcurrency = 128\ntimeout_ms = 600000\n",
        "bench.toml",
        std::path::Path::new("."),
    )
    .expect("policy");
    let sandbox = Arc::new(SandboxTemplate::from_policy(&policy.tool("alloc")));
    let input = format!(r#"{{"mb":{TOUCH_MB}}}"#);
    println!("allocator: {:?}\n", runtime.allocator());
    println!("| measurement | RSS MiB | notes |");
    println!("|---|---|---|");
    let before = rss_mb();
    println!("| before any call | {before} | |");
    for _ in 0..CALLS {
        let report = rt.block_on(runtime.call(&component, "alloc", &input, &sandbox, None));
        assert!(report.outcome.is_ok(), "{:?}", report.error);
    }
    println!(
        "| after {CALLS} sequential calls touching {TOUCH_MB} MiB each | {} | was {before} before |",
        rss_mb()
    );
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_mb(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    rt.block_on(async {
        let calls: Vec<_> = (0..CALLS)
            .map(|_| {
                let (runtime, component, sandbox, input) =
                    (runtime.clone(), component.clone(), sandbox.clone(), input.clone());
                tokio::spawn(async move { runtime.call(&component, "alloc", &input, &sandbox, None).await })
            })
            .collect();
        for call in calls {
            let report = call.await.expect("join");
            assert!(report.outcome.is_ok(), "{:?}", report.error);
        }
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    println!(
        "| peak while {CALLS} such calls are started at once | {} | budget {BUDGET_MB} MiB: at most {} run at once |",
        peak.load(Ordering::Relaxed),
        BUDGET_MB / 512
    );
    println!("| after they all finished | {} | |", rss_mb());
    flapping(&rt, &runtime, &fixtures);
}

/// 40 swaps between two versions of `echo` through a tool host.
fn flapping(rt: &tokio::runtime::Runtime, runtime: &Arc<Runtime>, fixtures: &std::path::Path) {
    use boram_host::registry::{Registry, ToolHost};
    const SWAPS: usize = 40;
    let versions = [fixtures.join("hostile.wasm"), fixtures.join("echo_v2.wasm")];
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&versions[0], dir.path().join("echo.wasm")).expect("copy");
    let registry = rt
        .block_on(Registry::load_dir(runtime.clone(), dir.path()))
        .expect("registry");
    let policy = Policy::parse(
        "version = 1\n[defaults]\napproval = \"allow\"\n",
        "bench.toml",
        std::path::Path::new("."),
    )
    .expect("policy");
    let host = ToolHost::new(registry, policy, None);
    let call = || rt.block_on(host.call("echo", r#"{"text":"hi"}"#, None)).expect("echo");
    call();
    let (rss_before, memfds_before) = (rss_mb(), memfds());
    for i in 0..SWAPS {
        // As the watcher does: the new version is loaded from the same path.
        let path = dir.path().join("echo.wasm");
        std::fs::copy(&versions[(i + 1) % 2], &path).expect("copy");
        let component = rt.block_on(runtime.load(&path)).expect("load");
        host.swap_component(Arc::new(component)).expect("swap");
        assert!(call().outcome.is_ok());
    }
    println!(
        "| after {SWAPS} hot swaps flapping between two versions | {} | was {rss_before} before; memfds {memfds_before} → {} |",
        rss_mb(),
        memfds()
    );
}

/// Open memfds of this process (wasmtime's copy-on-write memory images).
fn memfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.flatten()
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("/memfd:")))
                .count()
        })
        .unwrap_or(0)
}

/// This process's resident set, from /proc.
fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
