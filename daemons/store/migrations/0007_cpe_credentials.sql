-- Per-device CPE credentials for CWMP authentication (beside the global acs.username and
-- acs.password). The password is sealed (AES-256-GCM, context 'cpe:<device id>'): Digest
-- needs it back. A row may exist before its device first calls in, so no foreign key.
CREATE TABLE cpe_credentials (
    device_id     text PRIMARY KEY,
    username      text NOT NULL CHECK (length(username) BETWEEN 1 AND 256),
    password_enc  bytea NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
