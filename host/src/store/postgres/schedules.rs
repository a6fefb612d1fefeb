//! Schedules in the shared store: added and removed through any replica,
//! fired by exactly one.
//!
//! Every replica ticks; a tick takes the schedule rows it can lock
//! (`FOR UPDATE SKIP LOCKED`) and, in the same transaction, queues a run
//! for each due one and moves its `last_run` on, so a replica ticking at
//! the same moment skips the rows and then finds them not due. The slot is
//! also the run's dedupe key: even a tick that saw stale rows cannot queue
//! a slot twice. The rules are [`crate::schedule`]'s: no overlap (a due
//! slot while the last run is queued or running is skipped and counted),
//! missed slots coalesced into one run.

use super::runs;
use super::{PgStore, StoreError};
use crate::schedule::Schedule;
use crate::store::runs::NewRun;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// `user`'s schedules by name, each with how its last run ended (read from the run).
pub async fn list(store: &PgStore, user: &str) -> Result<Vec<Schedule>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT s.schedule, r.status FROM schedules s LEFT JOIN runs r ON r.id = s.schedule->>'last_session'
             WHERE s.user_name = $1 ORDER BY s.name",
            &[&user],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let mut schedule: Schedule = serde_json::from_value(row.get::<_, Value>(0)).ok()?;
            if let Some(status) = row.get::<_, Option<String>>(1) {
                schedule.last_status = Some(status);
            }
            Some(schedule)
        })
        .collect())
}

/// Adds `schedule` for `user`; `Ok(false)` when one of that name exists.
pub async fn add(store: &PgStore, user: &str, schedule: &Schedule) -> Result<bool, StoreError> {
    let client = store.client().await?;
    let value = serde_json::to_value(schedule).map_err(|e| StoreError::Refused(e.to_string()))?;
    let added = client
        .execute(
            "INSERT INTO schedules (user_name, name, schedule) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&user, &schedule.name, &value],
        )
        .await?;
    Ok(added == 1)
}

/// Removes `user`'s schedule `name`; `Ok(false)` when there was none.
pub async fn remove(store: &PgStore, user: &str, name: &str) -> Result<bool, StoreError> {
    let client = store.client().await?;
    let removed = client
        .execute(
            "DELETE FROM schedules WHERE user_name = $1 AND name = $2",
            &[&user, &name],
        )
        .await?;
    Ok(removed == 1)
}

/// What one tick did: (user, schedule, run id) started, (user, schedule) skipped.
#[derive(Debug, Default)]
pub struct Tick {
    pub started: Vec<(String, String, String)>,
    pub skipped: Vec<(String, String)>,
}

/// Fires every due schedule this replica could lock. `run_for` makes the
/// run of a schedule (`None`: it cannot run here, e.g. an unknown profile:
/// its slot passes with that reason).
pub async fn tick(
    store: &PgStore,
    now: DateTime<Utc>,
    run_for: impl Fn(&str, &Schedule) -> Result<NewRun, String>,
) -> Result<Tick, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT s.user_name, s.schedule, r.status FROM schedules s
             LEFT JOIN runs r ON r.id = s.schedule->>'last_session'
             FOR UPDATE OF s SKIP LOCKED",
            &[],
        )
        .await?;
    let mut tick = Tick::default();
    for row in rows {
        let user: String = row.get(0);
        let Ok(mut schedule) = serde_json::from_value::<Schedule>(row.get(1)) else {
            continue;
        };
        let last_status: Option<String> = row.get(2);
        let since = schedule.last_run.unwrap_or(schedule.created);
        let Some(slot) = schedule.next_after(since) else {
            continue;
        };
        if slot > now {
            continue;
        }
        schedule.last_run = Some(now);
        if matches!(last_status.as_deref(), Some("queued" | "running")) {
            schedule.skipped += 1;
            tick.skipped.push((user.clone(), schedule.name.clone()));
        } else {
            match run_for(&user, &schedule) {
                Ok(mut run) => {
                    run.dedupe_key = Some(format!("schedule:{user}:{}:{}", schedule.name, slot.to_rfc3339()));
                    if runs::insert(&tx, &run).await? {
                        schedule.last_session = Some(run.id.clone());
                        schedule.last_status = Some("queued".into());
                        tick.started.push((user.clone(), schedule.name.clone(), run.id));
                    }
                }
                Err(why) => schedule.last_status = Some(format!("not started: {why}")),
            }
        }
        let value = serde_json::to_value(&schedule).map_err(|e| StoreError::Refused(e.to_string()))?;
        tx.execute(
            "UPDATE schedules SET schedule = $3 WHERE user_name = $1 AND name = $2",
            &[&user, &schedule.name, &value],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(tick)
}
