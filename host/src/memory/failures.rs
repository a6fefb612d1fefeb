//! The failure store (reflexion): every failed tool call and failed task,
//! with what fixed it when a later call of the same tool in the same
//! session succeeded. Before the model sees a failing tool's result, the
//! agent looks here for recent failures of that tool with similar input and
//! adds them — and their fix — to the result, so a known mistake is not
//! made twice.

use super::{Db, Result};
use rusqlite::{Connection, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// Failures older than this are not brought back to the model.
pub const RECENT_DAYS: u64 = 14;
/// Inputs at least this similar (Jaccard over their words) count as "similar".
pub const SIMILAR: f64 = 0.5;
/// Longest input text kept per failure.
const MAX_INPUT_CHARS: usize = 2000;

/// One failed call (or task, with tool `task`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub id: i64,
    pub time: String,
    pub session: String,
    pub tool: String,
    pub input_digest: String,
    pub input: String,
    /// `denied`, `invalid_input`, `failed`, `timeout`, … or a turn's stop reason.
    pub kind: String,
    pub message: String,
    /// The input of the next successful call of the tool in that session.
    pub fixed_by: Option<String>,
}

pub struct FailureStore {
    db: Arc<Db>,
}

impl FailureStore {
    pub fn open(data_dir: &Path) -> Result<Self> {
        Ok(Self::on(Db::open(data_dir)?))
    }

    pub(super) fn on(db: Arc<Db>) -> Self {
        Self { db }
    }

    fn db<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.db.run(f)
    }

    /// Records a failure.
    pub fn record(&self, session: &str, tool: &str, input: &str, kind: &str, message: &str) -> Result<i64> {
        let kept: String = crate::scrub::scrub(input).chars().take(MAX_INPUT_CHARS).collect();
        let message: String = crate::scrub::scrub(message).chars().take(MAX_INPUT_CHARS).collect();
        self.db(|c| {
            c.execute(
                "INSERT INTO failures (time, session, tool, input_digest, input, kind, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![crate::audit::now(), session, tool, digest(input), kept, kind, message],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// A call of `tool` succeeded with `input`: it is the fix for the
    /// session's unfixed failures of that tool.
    pub fn mark_fixed(&self, session: &str, tool: &str, input: &str) -> Result<usize> {
        let kept: String = input.chars().take(MAX_INPUT_CHARS).collect();
        self.db(|c| {
            c.execute(
                "UPDATE failures SET fixed_by = ?1 WHERE session = ?2 AND tool = ?3 AND fixed_by IS NULL",
                params![kept, session, tool],
            )
        })
    }

    /// Recent failures of `tool` whose input is similar to `input`, most
    /// similar (then newest) first, at most `limit`.
    pub fn similar(&self, tool: &str, input: &str, limit: usize) -> Result<Vec<Failure>> {
        let since = humantime::format_rfc3339_millis(
            std::time::SystemTime::now() - std::time::Duration::from_secs(RECENT_DAYS * 86_400),
        )
        .to_string();
        let candidates = self.query(
            "SELECT id, time, session, tool, input_digest, input, kind, message, fixed_by FROM failures
             WHERE tool = ?1 AND time >= ?2 ORDER BY id DESC LIMIT 200",
            params![tool, since],
        )?;
        let wanted = words(input);
        let mut scored: Vec<(f64, Failure)> = candidates
            .into_iter()
            .map(|f| (jaccard(&wanted, &words(&f.input)), f))
            .filter(|(s, _)| *s >= SIMILAR)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.id.cmp(&a.1.id)));
        Ok(scored.into_iter().take(limit).map(|(_, f)| f).collect())
    }

    /// The newest failures, optionally of one tool.
    pub fn list(&self, tool: Option<&str>, limit: usize) -> Result<Vec<Failure>> {
        self.query(
            "SELECT id, time, session, tool, input_digest, input, kind, message, fixed_by FROM failures
             WHERE ?1 IS NULL OR tool = ?1 ORDER BY id DESC LIMIT ?2",
            params![tool, limit as i64],
        )
    }

    fn query(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Failure>> {
        self.db(|c| {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt.query_map(args, |r| {
                Ok(Failure {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    session: r.get(2)?,
                    tool: r.get(3)?,
                    input_digest: r.get(4)?,
                    input: r.get(5)?,
                    kind: r.get(6)?,
                    message: r.get(7)?,
                    fixed_by: r.get(8)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// What the model is told about earlier failures like this call.
pub fn reminder(failures: &[Failure]) -> Option<String> {
    if failures.is_empty() {
        return None;
    }
    let mut text = String::from("Earlier failures of this tool with similar input:");
    for f in failures {
        text.push_str(&format!(
            "\n- {} ({}): input {} failed: {}",
            f.time, f.kind, f.input, f.message
        ));
        match &f.fixed_by {
            Some(fix) => text.push_str(&format!("; it worked afterwards with input {fix}")),
            None => text.push_str("; no fix was found then"),
        }
    }
    Some(text)
}

fn digest(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// The set of lowercase words and numbers of a text (JSON punctuation ignored).
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let shared = a.intersection(b).count() as f64;
    shared / (a.len() as f64 + b.len() as f64 - shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_similar_failure_comes_back_with_its_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FailureStore::open(dir.path()).expect("open");
        let bad = r#"{"path":"/workspace/notes.md"}"#;
        store
            .record("s1", "read_file", bad, "failed", "no such file")
            .expect("record");
        store
            .mark_fixed("s1", "read_file", r#"{"path":"/workspace/notes.txt"}"#)
            .expect("fix");
        store
            .record("s1", "grep", r#"{"pattern":"x"}"#, "failed", "other tool")
            .expect("record");

        let store = FailureStore::open(dir.path()).expect("reopen");
        let found = store
            .similar("read_file", r#"{"path": "/workspace/notes.md"}"#, 3)
            .expect("similar");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].fixed_by.as_deref(), Some(r#"{"path":"/workspace/notes.txt"}"#));
        let text = reminder(&found).expect("reminder");
        assert!(text.contains("no such file") && text.contains("notes.txt"), "{text}");
        assert!(
            store
                .similar("read_file", r#"{"path":"/etc/hosts"}"#, 3)
                .expect("similar")
                .is_empty()
        );
        assert_eq!(store.list(None, 10).expect("list").len(), 2);
        assert_eq!(store.list(Some("grep"), 10).expect("list").len(), 1);
    }

    #[test]
    fn jaccard_is_the_share_of_common_words() {
        let a = words("path workspace notes md");
        assert_eq!(jaccard(&a, &a), 1.0);
        let b = words("path workspace notes txt");
        assert!((jaccard(&a, &b) - 3.0 / 5.0).abs() < 1e-9, "{}", jaccard(&a, &b));
    }
}
