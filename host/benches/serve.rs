//! HTTP service throughput: `cargo bench -p boram-host --bench serve`.
//!
//! Starts the real `boram serve` binary on 127.0.0.1 (its own process) and
//! drives `POST /v1/tools/text_stats/call` from this process — the load
//! generator — with 1, 8 and 32 concurrent keep-alive connections for a
//! few seconds each. Prints calls/s and latency percentiles as a Markdown
//! table (BENCHMARKS.md). Both processes share the machine's 2 cores, so
//! the figures are a floor for a dedicated server.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(4);
const BODY: &str = r#"{"text": "the quick brown fox jumps over the lazy dog"}"#;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workspace = std::path::PathBuf::from(env!("BORAM_WORKSPACE_DIR"));
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "version = 1\n[defaults]\napproval = \"allow\"\n").expect("policy");
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(["serve", "--addr", "127.0.0.1:0", "--policy"])
        .arg(&policy)
        .arg("--tools-dir")
        .arg(workspace.join("tools"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn boram serve");
    let url = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("listening on ").nth(1)
            && rest.contains('\n')
        {
            break rest.split_whitespace().next().expect("addr").to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    println!("| concurrent connections | calls/s | p50 | p99 | errors |");
    println!("|---|---|---|---|---|");
    for connections in [1, 8, 32] {
        let (calls, mut latencies, errors) = rt.block_on(load(&url, connections));
        latencies.sort();
        let pct = |q: f64| latencies[((q * latencies.len() as f64) as usize).min(latencies.len() - 1)];
        println!(
            "| {connections} | {:.0} | {:.2} ms | {:.2} ms | {errors} |",
            calls as f64 / WINDOW.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `connections` clients calling in a loop for [`WINDOW`]: (calls, latencies, errors).
async fn load(url: &str, connections: usize) -> (usize, Vec<Duration>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let endpoint = format!("{url}/v1/tools/text_stats/call");
    // Warm up: compile caches, connection pools.
    let warm = reqwest::Client::builder().no_proxy().build().expect("client");
    for _ in 0..50 {
        let _ = warm.post(&endpoint).body(BODY).send().await;
    }
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let stop = stop.clone();
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder().no_proxy().build().expect("client");
                let mut latencies = Vec::new();
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    match client.post(&endpoint).body(BODY).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(started.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    tokio::time::sleep(WINDOW).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.expect("join");
        all.extend(latencies);
        errors += e;
    }
    (all.len(), all, errors)
}
