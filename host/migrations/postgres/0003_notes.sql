-- Long-term memory notes of every user, shared by every replica; the same
-- notes a laptop keeps in memory.db. Searched with PostgreSQL full-text
-- search (English stemming, like the SQLite index's porter tokenizer).
CREATE TABLE notes (
    id bigserial PRIMARY KEY,
    user_name text NOT NULL,
    text text NOT NULL,
    tags text NOT NULL DEFAULT '',
    created text NOT NULL,
    search tsvector GENERATED ALWAYS AS (to_tsvector('english', text || ' ' || tags)) STORED
);
CREATE INDEX notes_search ON notes USING gin (search);
CREATE INDEX notes_by_user ON notes (user_name, id DESC);
