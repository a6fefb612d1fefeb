//! Memory notes in the shared store: a note saved through one replica is
//! found through any other. Each user sees only their own notes.

use super::{PgStore, StoreError};
use crate::memory::Entry;

/// Saves a validated note; its id.
pub async fn save(store: &PgStore, user: &str, text: &str, tags: &[String], created: &str) -> Result<i64, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "INSERT INTO notes (user_name, text, tags, created) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&user, &text, &tags.join(" "), &created],
        )
        .await?;
    Ok(row.get(0))
}

/// `user`'s notes matching any of `words`, best first.
pub async fn search(store: &PgStore, user: &str, words: &[String], limit: usize) -> Result<Vec<Entry>, StoreError> {
    let client = store.client().await?;
    // Words are letters and digits only (see `memory::query_words`), so
    // joined with `|` they are a valid tsquery: any word matches.
    let query = words.join(" | ");
    let rows = client
        .query(
            "SELECT id, text, tags, created, ts_rank(search, q)::float8 AS rank
             FROM notes, to_tsquery('english', $2) q
             WHERE user_name = $1 AND search @@ q
             ORDER BY rank DESC, id DESC LIMIT $3",
            &[&user, &query, &(limit as i64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let tags: String = row.get(2);
            Entry {
                id: row.get(0),
                text: row.get(1),
                tags: tags.split_whitespace().map(str::to_string).collect(),
                created: row.get(3),
                score: Some(row.get(4)),
            }
        })
        .collect())
}
