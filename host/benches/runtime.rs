//! Runtime benchmark: prints a Markdown table of medians (see BENCHMARKS.md).
//!
//! `cargo bench -p boram-host --bench runtime` measures, in release:
//! - one call of a trivial tool (`echo` from the test fixtures) in a fresh
//!   Store built from its sandbox template, end to end;
//! - throughput with a fresh instance per call on 2 worker threads;
//! - the same work done by spawning `python3`, as the Python seed agent did;
//! - loading a component by compiling it vs from the compile cache.

use boram_host::policy::Policy;
use boram_host::runtime::{LoadedComponent, Runtime, RuntimeOptions, SandboxTemplate};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TRIVIAL_INPUT: &str = r#"{"text":"hello"}"#;
const LATENCY_CALLS: usize = 5_000;
const LATENCY_ROUNDS: usize = 6;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);
const PYTHON_SPAWNS: usize = 60;
const LOADS: usize = 15;

fn main() {
    // `cargo bench --bench runtime -- latency` runs only the sections whose name contains the argument.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let wants = |section: &str| section.contains(filter.as_str());
    let fixtures = PathBuf::from(env!("BORAM_FIXTURES_DIR"));
    let tools = PathBuf::from(env!("BORAM_WORKSPACE_DIR")).join("tools");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let cache = tempfile::tempdir().expect("tempdir");
    let runtime = Arc::new(
        Runtime::new(&RuntimeOptions {
            cache_dir: Some(cache.path().into()),
            no_pooling: false,
            memory_budget_mb: None,
            ..RuntimeOptions::default()
        })
        .expect("runtime"),
    );
    let echo = Arc::new(
        rt.block_on(runtime.load(&fixtures.join("hostile.wasm")))
            .expect("load fixture"),
    );
    let sandbox = Arc::new(SandboxTemplate::from_policy(&Policy::deny_all().tool("echo")));

    println!(
        "allocator: {:?}; {} logical CPUs\n",
        runtime.allocator(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| measurement | median | p95 | notes |");
    println!("|---|---|---|---|");

    // The machine is noisy (a shared VM): measure in rounds and show how far
    // the rounds' medians spread, next to the median of all samples.
    let rounds: Vec<Vec<Duration>> = (0..LATENCY_ROUNDS)
        .map(|_| rt.block_on(latency(&runtime, &echo, &sandbox)))
        .collect();
    let round_medians: Vec<Duration> = rounds.iter().map(|r| percentile(r, 50)).collect();
    let all: Vec<Duration> = rounds.concat();
    let (p50, p95) = (percentile(&all, 50), percentile(&all, 95));
    println!(
        "| trivial tool call, fresh Store per call | {} | {} | {LATENCY_ROUNDS}x{LATENCY_CALLS} sequential calls (instantiate + call + drop); round medians {}-{} |",
        us(p50),
        us(p95),
        us(*round_medians.iter().min().expect("rounds")),
        us(*round_medians.iter().max().expect("rounds")),
    );

    if wants("throughput") {
        let per_sec = rt.block_on(throughput(&runtime, &echo, &sandbox));
        println!(
            "| throughput, fresh instance per call, 2 threads | {per_sec:.0} calls/s | | {}s window, 2 tokio workers, 8 tasks |",
            THROUGHPUT_WINDOW.as_secs()
        );
    }
    if wants("python") {
        python_row(p50);
    }
    if wants("load") {
        load_rows(&rt, &tools);
    }
}

/// Spawning the interpreter for the same echo, compared with the wasm call's median `wasm_p50`.
fn python_row(wasm_p50: Duration) {
    let (python, version) = python();
    let spawns = python_spawns(&python);
    let (py50, py95) = (percentile(&spawns, 50), percentile(&spawns, 95));
    println!(
        "| same work by spawning `{python}` ({version}) | {} | {} | {PYTHON_SPAWNS} spawns; **{:.0}x** the wasm call |",
        ms(py50),
        ms(py95),
        py50.as_secs_f64() / wasm_p50.as_secs_f64()
    );
}

/// Loading a component by compiling it vs from the compile cache.
fn load_rows(rt: &tokio::runtime::Runtime, tools: &Path) {
    for name in ["read_file", "grep"] {
        let wasm = tools.join(format!("{name}.wasm"));
        let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
        let (compiled, cached) = loads(rt, &wasm);
        let (c50, l50) = (percentile(&compiled, 50), percentile(&cached, 50));
        println!(
            "| load `{name}` ({} KiB): compile | {} | {} | {LOADS} loads, each with a fresh runtime and no cache |",
            size / 1024,
            ms(c50),
            ms(percentile(&compiled, 95))
        );
        println!(
            "| load `{name}` ({} KiB): from cache | {} | {} | **{:.0}x** faster than compiling |",
            size / 1024,
            ms(l50),
            ms(percentile(&cached, 95)),
            c50.as_secs_f64() / l50.as_secs_f64()
        );
    }
}

async fn latency(runtime: &Runtime, echo: &LoadedComponent, sandbox: &SandboxTemplate) -> Vec<Duration> {
    for _ in 0..500 {
        runtime.call(echo, "echo", TRIVIAL_INPUT, sandbox, None).await;
    }
    let mut samples = Vec::with_capacity(LATENCY_CALLS);
    for _ in 0..LATENCY_CALLS {
        let start = Instant::now();
        let report = runtime.call(echo, "echo", TRIVIAL_INPUT, sandbox, None).await;
        samples.push(start.elapsed());
        assert!(report.outcome.is_ok(), "{:?}", report.error);
    }
    samples
}

async fn throughput(runtime: &Arc<Runtime>, echo: &Arc<LoadedComponent>, sandbox: &Arc<SandboxTemplate>) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + THROUGHPUT_WINDOW;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (runtime, echo, sandbox, done) = (runtime.clone(), echo.clone(), sandbox.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let report = runtime.call(&echo, "echo", TRIVIAL_INPUT, &sandbox, None).await;
                    assert!(report.outcome.is_ok());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    for t in tasks {
        t.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The system interpreter by absolute path (what a tool runner would exec), and its version.
fn python() -> (String, String) {
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("python3");
    let version = Command::new(python)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    (python.to_string(), version)
}

fn python_spawns(python: &str) -> Vec<Duration> {
    let script = "import json,sys; print(json.dumps(json.loads(sys.argv[1])))";
    (0..PYTHON_SPAWNS)
        .map(|_| {
            let start = Instant::now();
            let out = Command::new(python)
                .args(["-c", script, TRIVIAL_INPUT])
                .output()
                .expect("python3");
            let elapsed = start.elapsed();
            assert!(out.status.success());
            elapsed
        })
        .collect()
}

/// Loads `wasm` with compilation (no cache) and from a warm cache, each in a fresh runtime.
fn loads(rt: &tokio::runtime::Runtime, wasm: &Path) -> (Vec<Duration>, Vec<Duration>) {
    let cache = tempfile::tempdir().expect("tempdir");
    let with_cache = RuntimeOptions {
        cache_dir: Some(cache.path().into()),
        ..RuntimeOptions::default()
    };
    rt.block_on(Runtime::new(&with_cache).expect("runtime").load(wasm))
        .expect("warm the cache");
    let mut compiled = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..LOADS {
        let runtime = Runtime::new(&RuntimeOptions::default()).expect("runtime");
        let start = Instant::now();
        rt.block_on(runtime.load(wasm)).expect("load");
        compiled.push(start.elapsed());
        let runtime = Runtime::new(&with_cache).expect("runtime");
        let start = Instant::now();
        rt.block_on(runtime.load(wasm)).expect("load");
        cached.push(start.elapsed());
    }
    (compiled, cached)
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
