-- Sessions, their transcripts, and the queue of agent runs that many
-- `boram serve` replicas share. Applied once, in order, by
-- host/src/store/postgres/migrations.rs (recorded in boram_migrations).

CREATE TABLE sessions (
    id text PRIMARY KEY,
    user_name text NOT NULL,
    started timestamptz NOT NULL DEFAULT now(),
    provider text NOT NULL,
    model text NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name, started DESC);

-- One row per transcript record, numbered by the writer (not by clock):
-- the key makes a second writer of the same step fail instead of interleaving.
CREATE TABLE session_records (
    session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- A run is queued, then leased by one replica at a time: `epoch` grows
-- with every claim and fences off writes from an earlier holder.
CREATE TABLE runs (
    id text PRIMARY KEY,
    user_name text NOT NULL,
    -- Deferred: a run is inserted first (its dedupe key decides), then its session.
    session_id text NOT NULL REFERENCES sessions (id) DEFERRABLE INITIALLY DEFERRED,
    profile text,
    prompt text NOT NULL,
    status text NOT NULL DEFAULT 'queued',
    created timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished timestamptz,
    owner text,
    epoch bigint NOT NULL DEFAULT 0,
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    answer text,
    error text,
    -- A scheduled run's slot (`schedule:<user>:<name>:<time>`): one run per slot across replicas.
    dedupe_key text UNIQUE
);
CREATE INDEX runs_claimable ON runs (created) WHERE status IN ('queued', 'running');
CREATE INDEX runs_by_user ON runs (user_name, created DESC);

-- The events a follower of a run sees (the JSON of `boram run --json`), in order.
CREATE TABLE run_events (
    run_id text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    event jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);
