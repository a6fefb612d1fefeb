//! Persistent memory: `memory.db` (SQLite) in the data directory, holding
//! the agent's long-term notes ([`MemoryStore`], full-text search with FTS5)
//! and the record of failed tool calls ([`failures::FailureStore`]). One
//! connection per store, behind a mutex: SQLite calls are short and the
//! agent makes few of them.

pub mod failures;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// File name of the database inside the data directory.
pub const MEMORY_FILE: &str = "memory.db";
/// Longest note saved, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Most tags per note.
pub const MAX_TAGS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// Bad input from the model or the user (they can fix it).
    #[error("{0}")]
    Invalid(String),
    #[error("memory database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The shared store (cluster mode) failed.
    #[error("shared memory: {0}")]
    Shared(String),
}

pub type Result<T, E = MemoryError> = std::result::Result<T, E>;

/// One saved note.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub text: String,
    pub tags: Vec<String>,
    pub created: String,
    /// Relevance for a search (higher is better); absent in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// `memory.db`: one connection, behind a mutex, shared by the stores.
pub(crate) struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Db {
    /// Opens `memory.db` in `data_dir` and creates the tables it lacks.
    pub(crate) fn open(data_dir: &Path) -> Result<Arc<Self>> {
        let path = data_dir.join(MEMORY_FILE);
        let db_err = |source| MemoryError::Db {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir)
            .map_err(|e| MemoryError::Invalid(format!("cannot create {}: {e}", data_dir.display())))?;
        let conn = Connection::open(&path).map_err(db_err)?;
        // WAL: a reader (another boram) never blocks the writer; a crash never leaves half a write.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(Arc::new(Self {
            conn: Mutex::new(conn),
            path,
        }))
    }

    /// Runs `f` on the connection; a SQLite error names the file.
    pub(crate) fn run<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|source| MemoryError::Db {
            path: self.path.clone(),
            source,
        })
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5(
    text, tags, content='notes', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS notes_ai AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts(rowid, text, tags) VALUES (new.id, new.text, new.tags);
END;
CREATE TRIGGER IF NOT EXISTS notes_ad AFTER DELETE ON notes BEGIN
    INSERT INTO notes_fts(notes_fts, rowid, text, tags) VALUES ('delete', old.id, old.text, old.tags);
END;
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    session TEXT NOT NULL,
    tool TEXT NOT NULL,
    input_digest TEXT NOT NULL,
    input TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    fixed_by TEXT
);
CREATE INDEX IF NOT EXISTS failures_tool ON failures(tool, time);
";

/// The agent's long-term notes.
pub struct MemoryStore {
    db: Arc<Db>,
}

impl MemoryStore {
    pub fn open(data_dir: &Path) -> Result<Self> {
        Ok(Self {
            db: Db::open(data_dir)?,
        })
    }

    /// The failure store of the same database, on the same connection.
    pub fn failures(&self) -> failures::FailureStore {
        failures::FailureStore::on(self.db.clone())
    }

    fn db<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.db.run(f)
    }

    /// Saves a note; returns its id. Text and tags are validated first.
    pub fn save(&self, text: &str, tags: &[String]) -> Result<i64> {
        let (text, tags) = validated(text, tags)?;
        let created = crate::audit::now();
        self.db(|c| {
            c.execute(
                "INSERT INTO notes (text, tags, created) VALUES (?1, ?2, ?3)",
                params![text, tags.join(" "), created],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Notes matching `query`, best first. Any text works as a query: it
    /// is split into words, each matched (with stemming) in text or tags.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Entry>> {
        let Some(expr) = fts_query(query) else {
            return Err(MemoryError::Invalid("`query` has no words to search for".into()));
        };
        self.db(|c| {
            let mut stmt = c.prepare(
                "SELECT n.id, n.text, n.tags, n.created, bm25(notes_fts) AS rank
                 FROM notes_fts JOIN notes n ON n.id = notes_fts.rowid
                 WHERE notes_fts MATCH ?1 ORDER BY rank LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![expr, limit as i64], |r| {
                let rank: f64 = r.get(4)?;
                entry(r, Some(-rank))
            })?;
            rows.collect()
        })
    }

    /// The `n` newest notes, newest first.
    pub fn latest(&self, n: usize) -> Result<Vec<Entry>> {
        self.db(|c| {
            let mut stmt = c.prepare("SELECT id, text, tags, created FROM notes ORDER BY id DESC LIMIT ?1")?;
            let rows = stmt.query_map(params![n as i64], |r| entry(r, None))?;
            rows.collect()
        })
    }

    /// Deletes note `id`; false when there was none.
    pub fn delete(&self, id: i64) -> Result<bool> {
        self.db(|c| Ok(c.execute("DELETE FROM notes WHERE id = ?1", params![id])? > 0))
    }

    pub fn get(&self, id: i64) -> Result<Option<Entry>> {
        self.db(|c| {
            c.query_row(
                "SELECT id, text, tags, created FROM notes WHERE id = ?1",
                params![id],
                |r| entry(r, None),
            )
            .optional()
        })
    }
}

fn entry(r: &rusqlite::Row<'_>, score: Option<f64>) -> rusqlite::Result<Entry> {
    let tags: String = r.get(2)?;
    Ok(Entry {
        id: r.get(0)?,
        text: r.get(1)?,
        tags: tags.split_whitespace().map(str::to_string).collect(),
        created: r.get(3)?,
        score,
    })
}

/// Tags are short lowercase words: letters, digits, `-` and `_`.
fn normalise_tags(tags: &[String]) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(MemoryError::Invalid(format!("{} tags; at most {MAX_TAGS}", tags.len())));
    }
    tags.iter()
        .map(|t| {
            // Letters of any script: a Korean user tags notes `일정`.
            let tag = t.trim().trim_start_matches('#').to_lowercase();
            let ok = !tag.is_empty()
                && tag.chars().count() <= 32
                && tag.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_');
            if ok {
                Ok(tag)
            } else {
                Err(MemoryError::Invalid(format!(
                    "tag `{t}` is not valid: use 1-32 letters, digits, `-` or `_` (e.g. \"project-x\")"
                )))
            }
        })
        .collect()
}

/// An FTS5 expression from free text: each word quoted (so punctuation and
/// FTS operators in the text cannot break the query), joined with OR so
/// that BM25 ranks notes by how many and how rare the matching words are.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = query_words(text).iter().map(|w| format!("\"{w}\"")).collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

/// A query's words: runs of letters and digits, lowercased (any one of
/// them matches a note).
pub fn query_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A note's text (trimmed, secrets scrubbed) and tags, checked the same
/// way whatever store keeps it.
pub fn validated(text: &str, tags: &[String]) -> Result<(String, Vec<String>)> {
    let text = crate::scrub::scrub(text.trim()).into_owned();
    if text.is_empty() {
        return Err(MemoryError::Invalid("`text` is empty; say what to remember".into()));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(MemoryError::Invalid(format!(
            "`text` is {} characters; a note holds at most {MAX_TEXT_CHARS} — save the essentials",
            text.chars().count()
        )));
    }
    Ok((text, normalise_tags(tags)?))
}

/// Where an agent's notes are: this machine's `memory.db`, or the shared
/// store (cluster mode), where every replica sees the same notes of a user.
pub enum Notes {
    Local(Arc<MemoryStore>),
    Shared {
        store: crate::store::postgres::PgStore,
        user: String,
    },
}

impl Notes {
    /// Saves a note; returns its id.
    pub async fn save(&self, text: &str, tags: &[String]) -> Result<i64> {
        match self {
            Notes::Local(store) => store.save(text, tags),
            Notes::Shared { store, user } => {
                let (text, tags) = validated(text, tags)?;
                crate::store::postgres::notes::save(store, user, &text, &tags, &crate::audit::now())
                    .await
                    .map_err(|e| MemoryError::Shared(e.to_string()))
            }
        }
    }

    /// Notes matching `query`, best first.
    pub async fn search(&self, query: &str, limit: usize) -> Result<Vec<Entry>> {
        match self {
            Notes::Local(store) => store.search(query, limit),
            Notes::Shared { store, user } => {
                let words = query_words(query);
                if words.is_empty() {
                    return Err(MemoryError::Invalid("`query` has no words to search for".into()));
                }
                crate::store::postgres::notes::search(store, user, &words, limit)
                    .await
                    .map_err(|e| MemoryError::Shared(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_survive_a_reopen_and_search_ranks_the_relevant_one_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = MemoryStore::open(dir.path()).expect("open");
            store
                .save("The user prefers metric units.", &["prefs".into()])
                .expect("save");
            store
                .save(
                    "Deploys to production happen on Thursdays after the review.",
                    &["ops".into()],
                )
                .expect("save");
            store
                .save("The staging database is called analytics-stg.", &[])
                .expect("save");
        }
        let store = MemoryStore::open(dir.path()).expect("reopen");
        let found = store.search("when do we deploy to production?", 5).expect("search");
        assert!(found[0].text.contains("Thursdays"), "{found:?}");
        assert_eq!(
            store.latest(2).expect("latest")[0].text,
            "The staging database is called analytics-stg."
        );
        assert_eq!(store.search("#ops", 5).expect("tag search")[0].tags, ["ops"]);
        let id = found[0].id;
        assert!(store.delete(id).expect("delete"));
        assert!(store.get(id).expect("get").is_none());
        assert!(
            !store
                .search("deploy production", 5)
                .expect("search")
                .iter()
                .any(|e| e.id == id)
        );
    }

    #[test]
    fn bad_input_is_rejected_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MemoryStore::open(dir.path()).expect("open");
        let msg = |r: Result<i64>| r.expect_err("invalid").to_string();
        assert!(msg(store.save("  ", &[])).contains("empty"));
        assert!(msg(store.save(&"x".repeat(MAX_TEXT_CHARS + 1), &[])).contains("at most"));
        assert!(msg(store.save("ok", &["two words".into()])).contains("not valid"));
        assert!(msg(store.save("ok", &["a\u{202e}b".into()])).contains("not valid"));
        assert!(msg(store.save("ok", &["가".repeat(33)])).contains("not valid"));
        // Letters of any script are letters: 32 Hangul syllables fit (96 bytes).
        store
            .save("엄마 생신은 5월 8일", &["#가족".into(), "가".repeat(32)])
            .expect("Korean tags");
        assert_eq!(store.search("가족", 5).expect("by tag").len(), 1);
        assert!(
            store
                .search("?!", 5)
                .expect_err("no words")
                .to_string()
                .contains("no words")
        );
        // FTS syntax in a query is just text.
        store.save("quotes \"and\" NEAR(stuff)", &[]).expect("save");
        assert_eq!(store.search("NEAR( \" AND", 5).expect("search").len(), 1);
    }
}
