//! Sessions listing benchmark (issue 16): what `boram sessions list`,
//! `chat --resume last` and the dashboard pay with a long history. Prints
//! a Markdown table.
//!
//! `cargo bench -p boram-host --bench sessions` writes 2,000 transcripts
//! of 10 turns each (a prompt, a tool call with its result, an answer and
//! the usage per turn; ~14 KiB a file) into a temp dir, then times, in one
//! run: reading every transcript (what a listing did before the index),
//! the first listing (which builds `index.db`), listings with the index
//! current, a listing after one session grew, and the dashboard's 10
//! newest with and without the index.

use boram_host::llm::Message;
use boram_host::session::{self, Record, Session};
use std::path::Path;
use std::time::Instant;

const SESSIONS: usize = 2000;
const TURNS: usize = 10;
const REPEATS: usize = 5;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = dir.path().join("sessions");
    let started = Instant::now();
    let ids: Vec<String> = (0..SESSIONS).map(|n| write_session(&sessions, n)).collect();
    let bytes: u64 = std::fs::read_dir(&sessions)
        .expect("dir")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "{SESSIONS} transcripts, {:.1} MiB, written in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );

    let read_all = best_of(|| {
        let mut prompts = 0;
        for id in &ids {
            let records = session::read_records(&sessions.join(format!("{id}.jsonl"))).expect("read");
            prompts += session::summarize_records(id.clone(), records).prompts;
        }
        assert_eq!(prompts, SESSIONS * TURNS);
    });
    let first = time(|| assert_eq!(session::list(&sessions).expect("list").len(), SESSIONS));
    let warm = best_of(|| assert_eq!(session::list(&sessions).expect("list").len(), SESSIONS));
    let (one, _) = Session::open(&sessions, &ids[SESSIONS / 2]).expect("open");
    one.message(&Message::user_text("one more question")).expect("append");
    drop(one);
    let after_change = time(|| {
        let listed = session::list(&sessions).expect("list");
        let grown = listed.iter().find(|s| s.id == ids[SESSIONS / 2]).expect("listed");
        assert_eq!(grown.prompts, TURNS + 1);
    });
    let newest = best_of(|| assert_eq!(session::list_newest(&sessions, 10).expect("list").len(), 10));
    let newest_read = best_of(|| {
        let mut names: Vec<String> = std::fs::read_dir(&sessions)
            .expect("dir")
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".jsonl").map(str::to_string))
            .collect();
        names.sort();
        for id in &names[names.len() - 10..] {
            let records = session::read_records(&sessions.join(format!("{id}.jsonl"))).expect("read");
            session::summarize_records(id.clone(), records);
        }
    });

    println!(
        "| {SESSIONS} sessions ({:.1} MiB of transcripts) | time | vs reading every transcript |",
        bytes as f64 / (1 << 20) as f64
    );
    println!("|---|---|---|");
    for (label, seconds) in [
        ("read every transcript (the listing before the index)", read_all),
        ("first listing: reads them all and builds sessions.index.db", first),
        ("listing, index current (sessions list, --resume last)", warm),
        ("listing after one session grew (that one re-read)", after_change),
        (
            "10 newest, reading their transcripts (the dashboard before the index)",
            newest_read,
        ),
        ("10 newest from the index (the dashboard, every 2 s)", newest),
    ] {
        println!("| {label} | {:.1} ms | {:.2}x |", seconds * 1e3, seconds / read_all);
    }
}

fn write_session(dir: &Path, n: usize) -> String {
    let session = Session::create(dir, "anthropic", "claude-sonnet-4-5").expect("create");
    for turn in 0..TURNS {
        let time = "2026-12-03T06:00:00.000Z".to_string();
        session
            .message(&Message::user_text(format!(
                "question {turn} of session {n}: what changed in the build?"
            )))
            .expect("prompt");
        let id = format!("toolu_{n}_{turn}");
        session
            .append(Record::ToolStarted {
                time: time.clone(),
                id: id.clone(),
                tool: "read_file".into(),
            })
            .expect("started");
        session
            .append(Record::ToolFinished {
                time: time.clone(),
                id,
                tool: "read_file".into(),
                content: "Meeting moved to Thursday. The build now caches components.\n".repeat(12),
                is_error: false,
            })
            .expect("finished");
        session
            .append(Record::Usage {
                time,
                usage: Default::default(),
                cost_usd: Some(0.0012),
            })
            .expect("usage");
    }
    session.id().to_string()
}

fn time(work: impl FnOnce()) -> f64 {
    let started = Instant::now();
    work();
    started.elapsed().as_secs_f64()
}

fn best_of(mut work: impl FnMut()) -> f64 {
    (0..REPEATS).map(|_| time(&mut work)).fold(f64::INFINITY, f64::min)
}
