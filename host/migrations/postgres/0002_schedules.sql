-- Schedules shared by every replica. A tick locks the rows it looks at
-- (FOR UPDATE SKIP LOCKED), so one replica fires a due schedule and the
-- others skip it; a fired slot's run carries the slot in runs.dedupe_key.
CREATE TABLE schedules (
    user_name text NOT NULL,
    name text NOT NULL,
    -- The schedule as `boram schedule` shows it (cron, task, profile,
    -- created, last_run, last_session, skipped).
    schedule jsonb NOT NULL,
    PRIMARY KEY (user_name, name)
);
