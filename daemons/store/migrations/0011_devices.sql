-- Devices configured over SSH CLI (netmiko) or NETCONF (ncclient): their credentials
-- (sealed), pinned SSH host keys, versioned config backups, and change jobs.

CREATE TABLE devices (
    name             text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    address          inet NOT NULL,
    port             integer NOT NULL DEFAULT 22 CHECK (port BETWEEN 1 AND 65535),
    -- a netmiko device_type (cisco_ios, juniper_junos...) or 'netconf'
    platform         text NOT NULL CHECK (platform ~ '^[a-z0-9_]{1,64}$'),
    -- username, password, enable secret: JSON sealed with context 'device:<name>'
    credentials_enc  bytea NOT NULL,
    -- the SSH host key accepted for it ("ssh-ed25519 AAAA..."); NULL until first contact
    host_key         text,
    -- a different key the device offered, refused until the operator accepts it
    offered_host_key text,
    tags             text[] NOT NULL DEFAULT '{}',
    vars             jsonb NOT NULL DEFAULT '{}'::jsonb,   -- template variables
    snmp_target      text REFERENCES snmp_targets (name) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_tags_idx ON devices USING gin (tags);

-- A backup is stored only when the config changed (same sha256 as the latest: not stored).
CREATE TABLE device_backups (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device      text NOT NULL REFERENCES devices (name) ON DELETE CASCADE,
    ts          timestamptz NOT NULL DEFAULT now(),
    sha256      text NOT NULL,
    config      text NOT NULL,
    reason      text NOT NULL DEFAULT 'scheduled'   -- scheduled, on-demand, pre-change, ...
);
CREATE INDEX device_backups_device_idx ON device_backups (device, id DESC);

CREATE TABLE config_jobs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template          text NOT NULL,
    variables         jsonb NOT NULL DEFAULT '{}'::jsonb,
    mode              text NOT NULL CHECK (mode IN ('dry-run', 'apply', 'rollback')),
    stop_on_failure   boolean NOT NULL DEFAULT false,
    concurrency       integer NOT NULL DEFAULT 8 CHECK (concurrency BETWEEN 1 AND 256),
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'running', 'done', 'failed')),
    rollback_of       bigint REFERENCES config_jobs (id),
    created_by        text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz
);

CREATE TABLE config_job_devices (
    job_id         bigint NOT NULL REFERENCES config_jobs (id) ON DELETE CASCADE,
    device         text NOT NULL,
    state          text NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'running', 'ok', 'unchanged', 'failed',
                                    'rolled-back', 'skipped')),
    diff           text NOT NULL DEFAULT '',
    error          text NOT NULL DEFAULT '',
    backup_before  bigint REFERENCES device_backups (id) ON DELETE SET NULL,
    backup_after   bigint REFERENCES device_backups (id) ON DELETE SET NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, device)
);
