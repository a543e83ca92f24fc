-- Issue 26, secure by default at the edges.
-- /files/ requests name only their username: per-device CPE credentials are found by it.
CREATE INDEX IF NOT EXISTS cpe_credentials_username ON cpe_credentials (username);
