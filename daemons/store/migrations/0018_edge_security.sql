-- Issue 26, secure by default at the edges.
-- /files/ requests name only their username: per-device CPE credentials are found by it.
CREATE INDEX IF NOT EXISTS cpe_credentials_username ON cpe_credentials (username);

-- API tokens: an optional expiry, the source networks a token may be used from (empty:
-- any), and when its secret was last rotated (`netd token rotate`). last_used_at exists.
ALTER TABLE api_tokens
    ADD COLUMN IF NOT EXISTS expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS networks cidr[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS rotated_at timestamptz;

-- The audit export's position per target (a file path, a syslog address): the last audit
-- row id written there, so an export resumes after a restart without a gap or a repeat.
CREATE TABLE IF NOT EXISTS audit_export (
    target     text PRIMARY KEY,
    last_id    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
