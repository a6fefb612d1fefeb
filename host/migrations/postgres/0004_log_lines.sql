-- The audit and usage lines of every replica in one place (cluster mode).
-- Each replica still writes its own audit.jsonl and usage.jsonl first (an
-- audit line must not wait on the network); these rows are the copies,
-- written in batches. `origin` names each line once (replica, process,
-- number), so a batch retried after a lost answer is not stored twice.
CREATE TABLE log_lines (
    id bigserial PRIMARY KEY,
    origin text NOT NULL UNIQUE,
    kind text NOT NULL,
    replica text NOT NULL,
    user_name text NOT NULL,
    line jsonb NOT NULL,
    written timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX log_lines_by_kind ON log_lines (kind, user_name, id);
