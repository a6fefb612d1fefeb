//! Remembered approvals in the shared store: given through one replica,
//! honoured by every one. Each user sees only their own.

use super::{PgStore, StoreError};
use crate::store::approvals::{Grant, RememberedApproval};
use tokio_postgres::Row;

const COLUMNS: &str = "id, tool, sha256, grant_fingerprint, origins, any_host, granted";

fn entry(row: &Row) -> RememberedApproval {
    RememberedApproval {
        id: row.get::<_, i64>(0).to_string(),
        grant: Grant {
            tool: row.get(1),
            sha256: row.get(2),
            grant: row.get(3),
            origins: row.get::<_, Vec<String>>(4).into_iter().collect(),
            any_host: row.get(5),
        },
        granted: row.get(6),
    }
}

/// `user`'s answers for `tool` at content hash `sha256` (what a decision reads).
pub async fn of_tool(
    store: &PgStore,
    user: &str,
    tool: &str,
    sha256: &str,
) -> Result<Vec<RememberedApproval>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM approvals WHERE user_name = $1 AND tool = $2 AND sha256 = $3 ORDER BY id"),
            &[&user, &tool, &sha256],
        )
        .await?;
    Ok(rows.iter().map(entry).collect())
}

/// Every answer of `user`, oldest first.
pub async fn list(store: &PgStore, user: &str) -> Result<Vec<RememberedApproval>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM approvals WHERE user_name = $1 ORDER BY id"),
            &[&user],
        )
        .await?;
    Ok(rows.iter().map(entry).collect())
}

/// Remembers `grant` for `user`; the stored entry.
pub async fn add(store: &PgStore, user: &str, grant: Grant, granted: String) -> Result<RememberedApproval, StoreError> {
    let client = store.client().await?;
    let origins: Vec<String> = grant.origins.iter().cloned().collect();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO approvals (user_name, tool, sha256, grant_fingerprint, origins, any_host, granted)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
            ),
            &[
                &user,
                &grant.tool,
                &grant.sha256,
                &grant.grant,
                &origins,
                &grant.any_host,
                &granted,
            ],
        )
        .await?;
    Ok(entry(&row))
}

/// Forgets `user`'s entry `id`; `Ok(false)` when there is none (or it is another user's).
pub async fn remove(store: &PgStore, user: &str, id: &str) -> Result<bool, StoreError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(false);
    };
    let client = store.client().await?;
    let removed = client
        .execute("DELETE FROM approvals WHERE user_name = $1 AND id = $2", &[&user, &id])
        .await?;
    Ok(removed == 1)
}
