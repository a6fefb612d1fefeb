//! A user's sessions behind one seam, for the service's API: transcripts
//! in the user's `sessions/` directory (listed through the sessions index,
//! read on the blocking pool) or, in cluster mode, in the shared store.

use crate::session::{Record, SessionSummary};
use crate::store::StoreError;
use crate::store::postgres::PgStore;
use std::path::PathBuf;

/// Where one user's sessions live.
pub enum SessionBook {
    /// `sessions/<id>.jsonl` files in this directory.
    Files(PathBuf),
    /// The shared store of cluster mode, for one user.
    Shared { store: PgStore, user: String },
}

impl SessionBook {
    /// The records of session `id`; `None` when the user has no such
    /// session (another user's is none of theirs).
    pub async fn records(&self, id: &str) -> Result<Option<Vec<Record>>, StoreError> {
        if !crate::session::is_session_id(id) {
            return Ok(None);
        }
        match self {
            SessionBook::Files(dir) => {
                let path = crate::session::session_path(dir, id);
                blocking(move || match crate::session::read_records(&path) {
                    Ok(records) => Ok(Some(records)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                })
                .await
            }
            SessionBook::Shared { store, user } => crate::store::postgres::runs::user_session(store, user, id).await,
        }
    }

    /// The `n` newest sessions, oldest first.
    pub async fn newest(&self, n: usize) -> Result<Vec<SessionSummary>, StoreError> {
        match self {
            SessionBook::Files(dir) => {
                let dir = dir.clone();
                blocking(move || crate::session::list_newest(&dir, n)).await
            }
            SessionBook::Shared { store, user } => {
                Ok(
                    crate::store::postgres::runs::newest_sessions(store, user, i64::try_from(n).unwrap_or(i64::MAX))
                        .await?
                        .into_iter()
                        .map(|(id, records)| crate::session::summarize_records(id, records))
                        .collect(),
                )
            }
        }
    }
}

/// Directory reads, files and the index's SQLite: off the async workers.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    crate::store::on_blocking_pool(op)
        .await?
        .map_err(|e| StoreError::Local(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_book_reads_a_session_and_nothing_outside_its_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let session = crate::session::Session::create(&dir, "anthropic", "m").expect("session");
        session
            .message(&crate::llm::Message::user_text("안녕하세요"))
            .expect("append");
        session.sync().await.expect("sync");
        let id = session.id().to_string();
        std::fs::write(root.path().join("secret.jsonl"), "{}\n").expect("outside");
        let book = SessionBook::Files(dir);
        let records = book.records(&id).await.expect("read").expect("found");
        assert_eq!(records.len(), 2, "started + the message");
        assert!(book.records("20990101-000000-0000").await.expect("read").is_none());
        assert!(book.records("../secret").await.expect("read").is_none());
        let newest = book.newest(10).await.expect("list");
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].title, "안녕하세요");
    }
}
