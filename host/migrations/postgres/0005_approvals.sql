-- Remembered ("always") approvals of every user, shared by every replica:
-- an answer given through one replica holds on all of them. The same
-- entries a laptop keeps in approvals.json.
CREATE TABLE approvals (
    id bigserial PRIMARY KEY,
    user_name text NOT NULL,
    tool text NOT NULL,
    sha256 text NOT NULL,
    grant_fingerprint text NOT NULL,
    origins text[] NOT NULL DEFAULT '{}',
    any_host boolean NOT NULL DEFAULT false,
    granted text NOT NULL
);
CREATE INDEX approvals_by_tool ON approvals (user_name, tool, sha256);
