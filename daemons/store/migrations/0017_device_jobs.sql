-- Configuration jobs that hold up on real devices (issue 23). Additive (ARCHITECTURE.md):
-- a daemon of the release before runs on this schema during a rolling upgrade.

-- The pinned SSH host keys of a device: one per key type ("ssh-rsa AAAA...",
-- "ssh-ed25519 AAAA..."). A device that adds a key of a new type beside an unchanged
-- pinned one has the new one learnt; a different key of a pinned type is refused.
-- host_key stays, kept equal to the first pinned key for a daemon of the release before.
ALTER TABLE devices ADD COLUMN host_keys text[] NOT NULL DEFAULT '{}';
UPDATE devices SET host_keys = ARRAY[host_key] WHERE host_key IS NOT NULL;

-- Backups are secret material: the config is sealed in config_enc (daemons/core/secrets.py,
-- context 'backup:<device>'), config is NULL once it is; sha256 now holds an HMAC-SHA256
-- under a key derived from the secrets key (a plain SHA-256 would let whoever reads the
-- redacted text confirm a guessed password). Rows in clear (written before this migration,
-- or by a daemon of the release before during an upgrade) are sealed by the devices
-- daemon at start. A daemon of the release before reads a sealed row's config as NULL and
-- fails that device's step: run rollbacks from upgraded daemons.
ALTER TABLE device_backups ADD COLUMN config_enc bytea;
ALTER TABLE device_backups ADD COLUMN size integer;
ALTER TABLE device_backups ALTER COLUMN config DROP NOT NULL;
ALTER TABLE device_backups ADD CONSTRAINT device_backups_config_check
    CHECK (config IS NOT NULL OR config_enc IS NOT NULL);

-- Jobs: a cancel, a forced rollback (over drift), a deadline, and a terminal state for
-- each (the allowed states widened: 'cancelled').
ALTER TABLE config_jobs DROP CONSTRAINT config_jobs_state_check;
ALTER TABLE config_jobs ADD CONSTRAINT config_jobs_state_check
    CHECK (state IN ('pending', 'running', 'done', 'failed', 'cancelled'));
ALTER TABLE config_jobs ADD COLUMN force boolean NOT NULL DEFAULT false;
ALTER TABLE config_jobs ADD COLUMN cancel_requested_by text;
ALTER TABLE config_jobs ADD COLUMN deadline timestamptz;

ALTER TABLE config_job_devices DROP CONSTRAINT config_job_devices_state_check;
ALTER TABLE config_job_devices ADD CONSTRAINT config_job_devices_state_check
    CHECK (state IN ('pending', 'running', 'ok', 'unchanged', 'failed', 'rolled-back',
                     'skipped', 'cancelled'));
-- Why a device's part ended as it did (locked, rejected, drift, timeout, unsupported...),
-- the device's own error report (error-tag, error-path, bad-element...), and how many
-- attempts it took.
ALTER TABLE config_job_devices ADD COLUMN reason text NOT NULL DEFAULT '';
ALTER TABLE config_job_devices ADD COLUMN error_details jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE config_job_devices ADD COLUMN attempts integer NOT NULL DEFAULT 0;
