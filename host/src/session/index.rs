//! The sessions index: `sessions.index.db` (SQLite, WAL) beside the
//! sessions directory (so the directory itself holds only transcripts),
//! holding each transcript's listing line (model, title, prompts, cost)
//! with the file's size and modification time when it was summarised.
//!
//! Listing sessions used to read every transcript in full, so `boram
//! sessions list` and `chat --resume last` grew with the whole history.
//! Now a listing reads the directory and each file's metadata, and reads
//! a transcript only when it changed since it was indexed (size or mtime
//! differ) or is new. The JSONL files stay the truth: the index is a
//! cache that can always be rebuilt, so one that cannot be opened
//! (damaged, from a newer build, a read-only directory) is replaced or,
//! failing that, bypassed — the listing is never lost to it. The metadata
//! is taken before a transcript is read, so a session written to during
//! the read is read again next time rather than listed stale.

use super::SessionSummary;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the index of sessions directory `dir` is: `<dir>.index.db` beside it.
pub fn index_path(dir: &Path) -> PathBuf {
    match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => parent.join(format!("{}.index.db", name.to_string_lossy())),
        _ => dir.join("sessions.index.db"),
    }
}
/// The schema this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// What a transcript's metadata was when its line was indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: i64,
    pub mtime_ns: i64,
}

impl Stamp {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        Ok(Self {
            size: meta.len() as i64,
            mtime_ns,
        })
    }
}

/// An open index of one sessions directory.
pub struct SessionIndex {
    conn: Connection,
}

impl SessionIndex {
    /// Opens (creating) the index of `dir`; a damaged or foreign file is
    /// set aside and a fresh index made. `None` (with a warning) when no
    /// index can be kept there: listings then read the transcripts.
    pub fn open(dir: &Path) -> Option<Self> {
        let path = index_path(dir);
        match Self::open_file(&path) {
            Ok(index) => Some(index),
            Err(first) => {
                // A cache: start it again rather than give up on it.
                let aside = path.with_extension("db.damaged");
                let _ = std::fs::rename(&path, &aside);
                for suffix in ["-wal", "-shm"] {
                    let mut side = path.clone().into_os_string();
                    side.push(suffix);
                    let _ = std::fs::remove_file(side);
                }
                match Self::open_file(&path) {
                    Ok(index) => {
                        tracing::warn!(file = %path.display(), error = %first, aside = %aside.display(), "the sessions index could not be used; it was set aside and is rebuilt");
                        Some(index)
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "no sessions index; listing reads every transcript");
                        None
                    }
                }
            }
        }
    }

    fn open_file(path: &Path) -> rusqlite::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // A lost write is re-derived from the transcript: no fsync needed.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            // Opened on every listing: only a new file is set up (WAL mode
            // and the version persist in the file).
            SCHEMA_VERSION => {}
            0 => {
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS sessions (
                         id TEXT PRIMARY KEY,
                         size INTEGER NOT NULL,
                         mtime_ns INTEGER NOT NULL,
                         summary TEXT NOT NULL
                     ) WITHOUT ROWID;",
                )?;
                conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            // A newer build's index: set aside and rebuilt by [`Self::open`].
            _ => return Err(rusqlite::Error::InvalidQuery),
        }
        Ok(Self { conn })
    }

    /// The indexed lines of `ids` (all of them in one scan when there are
    /// many, else one lookup each: the dashboard lists 10 of thousands).
    fn lines_of(&self, ids: &[String]) -> rusqlite::Result<HashMap<String, (Stamp, String)>> {
        if ids.len() > 64 {
            return self.all();
        }
        let mut statement = self
            .conn
            .prepare_cached("SELECT size, mtime_ns, summary FROM sessions WHERE id = ?1")?;
        let mut lines = HashMap::new();
        for id in ids {
            let mut rows = statement.query(params![id])?;
            if let Some(row) = rows.next()? {
                let stamp = Stamp {
                    size: row.get(0)?,
                    mtime_ns: row.get(1)?,
                };
                lines.insert(id.clone(), (stamp, row.get(2)?));
            }
        }
        Ok(lines)
    }

    /// Every indexed line, by id.
    fn all(&self) -> rusqlite::Result<HashMap<String, (Stamp, String)>> {
        let mut statement = self.conn.prepare("SELECT id, size, mtime_ns, summary FROM sessions")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                (
                    Stamp {
                        size: row.get(1)?,
                        mtime_ns: row.get(2)?,
                    },
                    row.get::<_, String>(3)?,
                ),
            ))
        })?;
        rows.collect()
    }

    /// The indexed line of `id`, if there is one.
    #[cfg(test)]
    fn get(&self, id: &str) -> rusqlite::Result<Option<(Stamp, String)>> {
        use rusqlite::OptionalExtension as _;
        self.conn
            .query_row(
                "SELECT size, mtime_ns, summary FROM sessions WHERE id = ?1",
                params![id],
                |row| {
                    Ok((
                        Stamp {
                            size: row.get(0)?,
                            mtime_ns: row.get(1)?,
                        },
                        row.get(2)?,
                    ))
                },
            )
            .optional()
    }
}

/// The listing lines of `ids` (transcripts in `dir`), in the order given:
/// from the index where the file is unchanged, else read (and indexed).
/// A transcript that cannot be read is skipped with a warning. Index rows
/// of transcripts that are gone are removed when the whole directory is
/// listed (`complete`).
pub fn summaries(dir: &Path, ids: Vec<String>, complete: bool) -> Vec<SessionSummary> {
    let index = SessionIndex::open(dir);
    // Rows of transcripts that are gone are found only in a full listing.
    let known = index
        .as_ref()
        .and_then(|i| {
            match complete {
                true => i.all(),
                false => i.lines_of(&ids),
            }
            .inspect_err(|e| tracing::warn!(error = %e, "cannot read the sessions index"))
            .ok()
        })
        .unwrap_or_default();
    let mut fresh: Vec<(String, Stamp, String)> = Vec::new();
    let mut listed = Vec::with_capacity(ids.len());
    for id in &ids {
        let path: PathBuf = dir.join(format!("{id}.jsonl"));
        let stamp = match Stamp::of(&path) {
            Ok(stamp) => stamp,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping an unreadable session");
                continue;
            }
        };
        if let Some((indexed, json)) = known.get(id)
            && *indexed == stamp
            && let Ok(summary) = serde_json::from_str::<SessionSummary>(json)
        {
            listed.push(summary);
            continue;
        }
        match super::summarize(&path, id.clone()) {
            Ok(summary) => {
                if let Ok(json) = serde_json::to_string(&summary) {
                    fresh.push((id.clone(), stamp, json));
                }
                listed.push(summary);
            }
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "skipping an unreadable session"),
        }
    }
    if let Some(mut index) = index {
        let gone: Vec<&String> = match complete {
            true => {
                let present: std::collections::HashSet<&String> = ids.iter().collect();
                known.keys().filter(|id| !present.contains(id)).collect()
            }
            false => Vec::new(),
        };
        if (!fresh.is_empty() || !gone.is_empty())
            && let Err(e) = write(&mut index, &fresh, &gone)
        {
            // Not fatal: the next listing reads those transcripts again.
            tracing::warn!(error = %e, "cannot update the sessions index");
        }
    }
    listed
}

fn write(index: &mut SessionIndex, fresh: &[(String, Stamp, String)], gone: &[&String]) -> rusqlite::Result<()> {
    let tx = index.conn.transaction()?;
    {
        let mut upsert = tx.prepare(
            "INSERT INTO sessions (id, size, mtime_ns, summary) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, summary = excluded.summary",
        )?;
        for (id, stamp, json) in fresh {
            upsert.execute(params![id, stamp.size, stamp.mtime_ns, json])?;
        }
        let mut delete = tx.prepare("DELETE FROM sessions WHERE id = ?1")?;
        for id in gone {
            delete.execute(params![id])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;

    fn session_with_prompts(dir: &Path, prompts: &[&str]) -> String {
        let session = Session::create(dir, "anthropic", "claude-sonnet-4-5").expect("create");
        for prompt in prompts {
            session
                .message(&crate::llm::Message::user_text(*prompt))
                .expect("message");
        }
        session.id().to_string()
    }

    fn listed(dir: &Path) -> Vec<(String, usize, String)> {
        crate::session::list(dir)
            .expect("list")
            .into_iter()
            .map(|s| (s.id, s.prompts, s.title))
            .collect()
    }

    #[test]
    fn a_listing_is_indexed_and_follows_every_change_to_a_transcript() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let a = session_with_prompts(&dir, &["first question"]);
        let b = session_with_prompts(&dir, &["마감일은 언제야?"]);
        // Ids sort by start time; in the same second, by their random tail.
        let mut expected = vec![
            (a.clone(), 1, "first question".to_string()),
            (b.clone(), 1, "마감일은 언제야?".to_string()),
        ];
        expected.sort();
        assert_eq!(listed(&dir), expected);
        let index = SessionIndex::open(&dir).expect("index");
        let (stamp, json) = index.get(&a).expect("read").expect("a is indexed");
        assert_eq!(stamp, Stamp::of(&dir.join(format!("{a}.jsonl"))).expect("stat"));
        assert!(json.contains("first question"), "{json}");

        // A transcript continued (by another process, say): listed anew.
        let (session, _) = Session::open(&dir, &a).expect("reopen");
        session
            .message(&crate::llm::Message::user_text("second question"))
            .expect("message");
        drop(session);
        let continued = listed(&dir).into_iter().find(|(id, _, _)| *id == a);
        assert_eq!(continued, Some((a.clone(), 2, "first question".to_string())));
        // A transcript removed: gone from the listing and from the index.
        std::fs::remove_file(dir.join(format!("{b}.jsonl"))).expect("remove");
        assert_eq!(listed(&dir), [(a.clone(), 2, "first question".to_string())]);
        assert!(index.get(&b).expect("read").is_none());
    }

    #[test]
    fn an_indexed_line_is_used_while_the_file_is_unchanged() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let id = session_with_prompts(&dir, &["what the file says"]);
        listed(&dir);
        // Plant a different line for the same stamp: a listing that reads
        // the index (not the transcript) shows it.
        let index = SessionIndex::open(&dir).expect("index");
        index
            .conn
            .execute(
                "UPDATE sessions SET summary = replace(summary, 'what the file says', 'from the index')",
                [],
            )
            .expect("plant");
        assert_eq!(listed(&dir)[0].2, "from the index");
        // Touching the file (same size, new mtime) makes it read again.
        let path = dir.join(format!("{id}.jsonl"));
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(later))
            .expect("touch");
        assert_eq!(listed(&dir)[0].2, "what the file says");
    }

    #[test]
    fn a_damaged_index_is_set_aside_and_rebuilt() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let id = session_with_prompts(&dir, &["still listed"]);
        let index = index_path(&dir);
        std::fs::write(&index, b"\xef\xbb\xbfnot a database\r\n\xff\xfe").expect("garbage");
        assert_eq!(listed(&dir), [(id.clone(), 1, "still listed".to_string())]);
        assert!(index.with_extension("db.damaged").is_file());
        let index = SessionIndex::open(&dir).expect("a fresh index");
        assert!(index.get(&id).expect("read").is_some(), "rebuilt by the listing");
    }

    #[test]
    fn without_a_writable_index_the_listing_still_works() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let id = session_with_prompts(&dir, &["no index here"]);
        // Directories where the index and its set-aside copy would go: the
        // index can be neither opened nor replaced (permissions would not
        // stop root, which CI runs as).
        let index = index_path(&dir);
        for path in [index.clone(), index.with_extension("db.damaged")] {
            std::fs::create_dir(&path).expect("dir");
            std::fs::write(path.join("keep"), b"x").expect("file");
        }
        assert_eq!(listed(&dir), [(id, 1, "no index here".to_string())]);
    }
}
