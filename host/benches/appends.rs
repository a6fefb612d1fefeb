//! Append benchmark (issue 16): what a JSONL append costs the caller now
//! that each file has a writer thread, next to the write the caller used
//! to make itself, in one run; and what a stalled file costs the async
//! runtime either way.
//!
//! `cargo bench -p boram-host --bench appends` prints a Markdown table:
//! - the old way, for reference: the caller serialises the record and
//!   `write`s the line itself (what `JsonlFile::append` did before);
//! - `append` alone: the caller's time to hand the line over (the write
//!   happens on the writer thread);
//! - `append` + `flush`: handed over and waited for (a transcript record
//!   before a tool call or model request, an audit line of a call);
//! - a 1 ms ticker's lateness on a 2-thread runtime while two tasks append
//!   256 KiB each to a file stalled for 200 ms (a FIFO nobody reads yet;
//!   a pipe holds 64 KiB): the old way blocks both workers until the
//!   stall ends, the writer thread does not (its queue takes the lines).

use boram_host::audit::JsonlFile;
use serde_json::json;
use std::io::{Read as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const APPENDS: usize = 20_000;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = json!({"time": "2026-12-08T01:00:00.000Z", "type": "message", "message": {"role": "assistant", "content": [{"type": "text", "text": "x".repeat(300)}]}});
    let direct = direct_writes(&dir.path().join("direct.jsonl"), &record);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let (handed, flushed) = rt.block_on(async {
        let file = JsonlFile::open(&dir.path().join("writer.jsonl")).expect("open");
        let mut handed = Vec::with_capacity(APPENDS);
        for _ in 0..APPENDS {
            let started = Instant::now();
            file.append(&record).expect("append");
            handed.push(started.elapsed());
        }
        file.flush().await.expect("flush");
        let mut flushed = Vec::with_capacity(APPENDS);
        for _ in 0..APPENDS {
            let started = Instant::now();
            file.append_flushed(&record).await.expect("append");
            flushed.push(started.elapsed());
        }
        (handed, flushed)
    });
    let stalled_direct = rt.block_on(ticker_lateness(dir.path(), "direct", true));
    let stalled_writer = rt.block_on(ticker_lateness(dir.path(), "writer", false));

    println!("| one ~400-byte JSONL record | p50 | p99 |");
    println!("|---|---|---|");
    row("caller writes the line itself (before)", &direct);
    row("`append`: handed to the writer thread", &handed);
    row("`append` + `flush`: written, waited for", &flushed);
    println!();
    println!(
        "| 1 ms ticker on a 2-thread runtime, 2 tasks appending 256 KiB each to a file stalled 200 ms | p50 late | most late |"
    );
    println!("|---|---|---|");
    lateness_row("caller writes the line itself (before)", &stalled_direct);
    lateness_row("writer thread", &stalled_writer);
}

/// The old way: serialise and `write` under a lock, on the caller's thread.
fn direct_writes(path: &std::path::Path, record: &serde_json::Value) -> Vec<Duration> {
    let file = Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .expect("open"),
    );
    (0..APPENDS)
        .map(|_| {
            let started = Instant::now();
            let mut line = serde_json::to_vec(record).expect("json");
            line.push(b'\n');
            file.lock().expect("lock").write_all(&line).expect("write");
            started.elapsed()
        })
        .collect()
}

/// How late a 1 ms ticker runs while two tasks each append 256 KiB (in
/// 1 KiB lines) to a FIFO nobody reads for the first 200 ms (a stalled
/// disk; a pipe holds 64 KiB), then drained.
async fn ticker_lateness(dir: &std::path::Path, name: &str, direct: bool) -> Vec<Duration> {
    let fifo = dir.join(format!("{name}.fifo"));
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let writer = std::sync::Arc::new(JsonlFile::open(&fifo).expect("open"));
    let raw = std::sync::Arc::new(Mutex::new(
        std::fs::OpenOptions::new().append(true).open(&fifo).expect("open"),
    ));
    let line = json!({"pad": "x".repeat(1012)});
    let expected = 2 * 256 * (serde_json::to_string(&line).expect("json").len() + 1);
    let drain = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut reader = std::fs::File::open(&fifo).expect("read end");
            let mut chunk = [0u8; 65536];
            let mut total = 0;
            while total < expected {
                total += reader.read(&mut chunk).expect("read");
            }
        })
    };
    let appenders: Vec<_> = (0..2)
        .map(|_| {
            let (writer, raw, line) = (writer.clone(), raw.clone(), line.clone());
            tokio::spawn(async move {
                for _ in 0..256 {
                    if direct {
                        let mut bytes = serde_json::to_vec(&line).expect("json");
                        bytes.push(b'\n');
                        raw.lock().expect("lock").write_all(&bytes).expect("write");
                    } else {
                        writer.append(&line).expect("append");
                    }
                }
            })
        })
        .collect();
    // On a worker, like the service's handlers (not on the bench's own thread).
    let ticker = tokio::spawn(async {
        let mut late = Vec::new();
        let mut next = Instant::now() + Duration::from_millis(1);
        for _ in 0..300 {
            tokio::time::sleep_until(next.into()).await;
            late.push(Instant::now().saturating_duration_since(next));
            next = Instant::now() + Duration::from_millis(1);
        }
        late
    });
    let late = ticker.await.expect("ticker");
    for appender in appenders {
        appender.await.expect("appender");
    }
    writer.flush().await.expect("flush");
    drain.join().expect("drain");
    late
}

fn lateness_row(label: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    println!(
        "| {label} | {:.2} ms | {:.2} ms |",
        sorted[sorted.len() / 2].as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3
    );
}

fn row(label: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    println!(
        "| {label} | {:.1} µs | {:.1} µs |",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    );
}
