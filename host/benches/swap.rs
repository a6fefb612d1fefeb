//! Hot-swap benchmark: `cargo bench -p boram-host --bench swap`.
//!
//! - swap latency: from renaming a new `.wasm` into the tools directory to
//!   the first call answered by the new version (file watcher, debounce,
//!   compile, describe, swap), for the small `echo` fixture — both versions
//!   compiled fresh each time (the compile cache is off) and with the cache
//!   warm (the usual case when a build flips between two outputs);
//! - throughput of `echo` calls from 4 tasks with and without a swap every
//!   200 ms.

use boram_host::policy::Policy;
use boram_host::registry::watch::watch;
use boram_host::registry::{Registry, ToolHost};
use boram_host::runtime::{Runtime, RuntimeOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SWAPS: usize = 12;
const WINDOW: Duration = Duration::from_secs(3);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(run());
}

async fn run() {
    let fixtures = PathBuf::from(env!("BORAM_FIXTURES_DIR"));
    let versions = [
        std::fs::read(fixtures.join("hostile.wasm")).expect("v1"),
        std::fs::read(fixtures.join("echo_v2.wasm")).expect("v2"),
    ];
    println!("| measurement | median | p95 | notes |");
    println!("|---|---|---|---|");
    for (label, cache) in [("no compile cache", false), ("compile cache warm", true)] {
        let (host, dir, _watching) = setup(&versions[0], cache).await;
        let mut latencies = Vec::new();
        for i in 1..=SWAPS {
            let version = &versions[i % 2];
            let expected = if i % 2 == 1 { "HI" } else { "hi" };
            let started = Instant::now();
            install(version, &dir.path().join("tools"));
            loop {
                if answer(&host).await.contains(expected) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies.push(started.elapsed());
        }
        latencies.sort();
        println!(
            "| swap latency, rename → first call on the new version ({label}) | {} | {} | {SWAPS} swaps alternating a 511 KB and a 151 KB component; includes the {} ms debounce |",
            ms(latencies[latencies.len() / 2]),
            ms(latencies[latencies.len() * 95 / 100]),
            boram_host::registry::watch::DEBOUNCE.as_millis()
        );
    }
    let (host, dir, _watching) = setup(&versions[0], true).await;
    let quiet = throughput(&host, None).await;
    let busy = throughput(&host, Some((&versions, dir.path().join("tools")))).await;
    println!(
        "| echo calls/s, 4 tasks, no swaps | {quiet:.0} | | {}s window |",
        WINDOW.as_secs()
    );
    println!(
        "| echo calls/s, 4 tasks, a swap every 200 ms | {busy:.0} | | {:.0} % of the quiet rate |",
        busy / quiet * 100.0
    );
}

async fn setup(v1: &[u8], cache: bool) -> (Arc<ToolHost>, tempfile::TempDir, boram_host::registry::watch::Watching) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    install(v1, &tools);
    let runtime = Arc::new(
        Runtime::new(&RuntimeOptions {
            cache_dir: cache.then(|| dir.path().join("cache")),
            no_pooling: false,
            memory_budget_mb: None,
            ..RuntimeOptions::default()
        })
        .expect("runtime"),
    );
    let registry = Registry::load_dir(runtime, &tools).await.expect("load");
    let host = Arc::new(ToolHost::new(registry, Policy::deny_all(), None));
    // deny-all still runs tools (approval "prompt" is the agent's business).
    let watching = watch(host.clone(), &tools, None, Arc::new(|_| {})).expect("watch");
    (host, dir, watching)
}

fn install(bytes: &[u8], dir: &Path) {
    let tmp = dir.join(".echo.partial");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join("echo.wasm")).expect("rename");
}

async fn answer(host: &ToolHost) -> String {
    let report = host.call("echo", r#"{"text":"hi"}"#, None).await.expect("echo");
    report.output.unwrap_or_default()
}

async fn throughput(host: &Arc<ToolHost>, swapping: Option<(&[Vec<u8>; 2], PathBuf)>) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (host, stop, calls) = (host.clone(), stop.clone(), calls.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let out = answer(&host).await;
                    assert!(out.contains("hi") || out.contains("HI"), "{out}");
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < WINDOW {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some((versions, dir)) = &swapping {
            i += 1;
            install(&versions[i % 2], dir);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("caller");
    }
    calls.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}
