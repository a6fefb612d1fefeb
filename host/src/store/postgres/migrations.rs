//! The schema, as numbered SQL files in `host/migrations/postgres`,
//! applied in order and recorded in `boram_migrations`.
//!
//! Several replicas start at once against one database, so the whole check
//! and apply runs in one transaction under a transaction-level advisory
//! lock: the first replica applies, the others wait and then find nothing
//! to do. (That lock is why this is a few lines here rather than a
//! migration crate: the ones for tokio-postgres do not serialise
//! concurrent runners.) A database migrated by a newer build, with
//! migrations this build does not know, is refused rather than used.

use super::{PgStore, StoreError};

/// Every migration: (version, name, SQL). Append only; never edit one that shipped.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "runs_and_sessions",
        include_str!("../../../migrations/postgres/0001_runs_and_sessions.sql"),
    ),
    (
        2,
        "schedules",
        include_str!("../../../migrations/postgres/0002_schedules.sql"),
    ),
    (3, "notes", include_str!("../../../migrations/postgres/0003_notes.sql")),
    (
        4,
        "log_lines",
        include_str!("../../../migrations/postgres/0004_log_lines.sql"),
    ),
    (
        5,
        "approvals",
        include_str!("../../../migrations/postgres/0005_approvals.sql"),
    ),
];

/// The advisory lock key all replicas take while migrating ("boram" in ASCII).
const LOCK_KEY: i64 = 0x0062_6f72_616d;

/// Brings the database's schema up to this build's.
pub async fn apply(store: &PgStore) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS boram_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM boram_migrations ORDER BY version", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let known = MIGRATIONS.last().map_or(0, |(v, _, _)| *v);
    if let Some(newer) = applied.iter().find(|v| **v > known) {
        return Err(StoreError::Refused(format!(
            "the database has schema version {newer}, newer than this boram knows ({known}); upgrade boram"
        )));
    }
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO boram_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "applied a database migration");
    }
    tx.commit().await?;
    Ok(())
}
