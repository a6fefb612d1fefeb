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
//! - a ticker's lateness on a 2-thread runtime while two tasks append to a
//!   file that is drained at a slow pace (a FIFO read 4 KiB per ms,
//!   standing for a slow disk, at half the rate they append): the
//!   old way blocks the workers, the writer thread does not (for 500 ms,
//!   well within its queue).

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
    println!("| 1 ms ticker on a 2-thread runtime, 2 tasks appending to a stalled file | p50 late | p99 late |");
    println!("|---|---|---|");
    row("caller writes the line itself (before)", &stalled_direct);
    row("writer thread", &stalled_writer);
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

/// How late a 1 ms ticker runs while two tasks append 4 KiB a ms each
/// (in 1 KiB lines) to a FIFO drained at 4 KiB per ms.
async fn ticker_lateness(dir: &std::path::Path, name: &str, direct: bool) -> Vec<Duration> {
    let fifo = dir.join(format!("{name}.fifo"));
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drain = {
        let (fifo, stop) = (fifo.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reader = std::fs::File::open(&fifo).expect("read end");
            let mut chunk = [0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = reader.read(&mut chunk);
                std::thread::sleep(Duration::from_millis(1));
            }
            // Drain the rest fast so the writers can finish.
            while reader.read(&mut chunk).is_ok_and(|n| n > 0) {}
        })
    };
    let line = json!({"pad": "x".repeat(1000)});
    let writer = std::sync::Arc::new(JsonlFile::open(&fifo).expect("open"));
    let raw = std::sync::Arc::new(Mutex::new(
        std::fs::OpenOptions::new().append(true).open(&fifo).expect("open"),
    ));
    let appenders: Vec<_> = (0..2)
        .map(|_| {
            let (writer, raw, line, stop) = (writer.clone(), raw.clone(), line.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if direct {
                        let mut bytes = serde_json::to_vec(&line).expect("json");
                        bytes.push(b'\n');
                        let _ = raw.lock().expect("lock").write_all(&bytes);
                    } else {
                        writer.append(&line).expect("append");
                    }
                    // 4 KiB a ms from each: twice what the "disk" takes.
                    if i % 4 == 3 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let mut late = Vec::new();
    let mut next = Instant::now() + Duration::from_millis(1);
    for _ in 0..500 {
        tokio::time::sleep_until(next.into()).await;
        late.push(Instant::now().saturating_duration_since(next));
        next += Duration::from_millis(1);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for appender in appenders {
        appender.await.expect("appender");
    }
    drop(raw);
    drop(writer);
    drain.join().expect("drain");
    late
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
