//! A user's scheduled runs behind one seam, for the service's API: the
//! schedules file of the user's data directory (changed under its file
//! lock, on the blocking pool) or, in cluster mode, the shared store's
//! table, so every replica sees the same schedules. The scheduler that
//! fires them is [`crate::schedule`].

use crate::schedule::{Schedule, ScheduleStore};
use crate::store::StoreError;
use crate::store::postgres::PgStore;
use std::path::PathBuf;

/// Where one user's schedules live.
pub enum ScheduleBook {
    /// The schedules file in this data directory.
    File(PathBuf),
    /// The shared store of cluster mode, for one user.
    Shared { store: PgStore, user: String },
}

/// Why a schedule was not added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// Bad cron, bad or taken name: the client's to fix (400).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ScheduleBook {
    /// Every schedule of the user, in the order they were added.
    pub async fn list(&self) -> Result<Vec<Schedule>, StoreError> {
        match self {
            ScheduleBook::File(dir) => on_file(dir, |file| file.list()).await,
            ScheduleBook::Shared { store, user } => crate::store::postgres::schedules::list(store, user).await,
        }
    }

    /// Adds `schedule`: its cron must be valid and its name new.
    pub async fn add(&self, schedule: Schedule) -> Result<(), AddError> {
        schedule.validate().map_err(AddError::Refused)?;
        match self {
            ScheduleBook::File(dir) => {
                let dir = dir.clone();
                crate::store::on_blocking_pool(move || ScheduleStore::open(&dir).add(schedule))
                    .await?
                    .map_err(|e| AddError::Refused(format!("{e:#}")))
            }
            ScheduleBook::Shared { store, user } => {
                let name = schedule.name.clone();
                if crate::store::postgres::schedules::add(store, user, &schedule).await? {
                    Ok(())
                } else {
                    Err(AddError::Refused(format!(
                        "a schedule named `{name}` exists; remove it first"
                    )))
                }
            }
        }
    }

    /// Removes schedule `name`; `Ok(false)` when there is none.
    pub async fn remove(&self, name: &str) -> Result<bool, StoreError> {
        match self {
            ScheduleBook::File(dir) => {
                let name = name.to_string();
                on_file(dir, move |file| file.remove(&name)).await
            }
            ScheduleBook::Shared { store, user } => crate::store::postgres::schedules::remove(store, user, name).await,
        }
    }
}

/// Runs `op` on the schedules file of `dir` on the blocking pool (it reads,
/// locks and replaces a file).
async fn on_file<T: Send + 'static>(
    dir: &std::path::Path,
    op: impl FnOnce(&ScheduleStore) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    let dir = dir.to_path_buf();
    crate::store::on_blocking_pool(move || op(&ScheduleStore::open(&dir)))
        .await?
        .map_err(|e| StoreError::Local(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(name: &str, cron: &str) -> Schedule {
        Schedule::new(name.into(), cron.into(), None, "report".into(), chrono::Utc::now())
    }

    #[tokio::test]
    async fn the_file_book_adds_refuses_lists_and_removes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let book = ScheduleBook::File(dir.path().to_path_buf());
        book.add(schedule("daily", "0 9 * * *")).await.expect("added");
        let taken = book.add(schedule("daily", "0 10 * * *")).await.expect_err("taken");
        assert!(
            matches!(&taken, AddError::Refused(m) if m == "a schedule named `daily` exists; remove it first"),
            "{taken}"
        );
        let bad = book.add(schedule("hourly", "every hour")).await.expect_err("bad cron");
        assert!(matches!(bad, AddError::Refused(_)), "{bad}");
        let names: Vec<String> = book.list().await.expect("list").into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["daily"]);
        assert!(book.remove("daily").await.expect("remove"));
        assert!(!book.remove("daily").await.expect("remove again"));
        assert!(book.list().await.expect("list").is_empty());
    }
}
