-- SNMP polling: targets and the samples read from them.

CREATE TABLE snmp_targets (
    name             text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    address          inet NOT NULL,
    port             integer NOT NULL DEFAULT 161 CHECK (port BETWEEN 1 AND 65535),
    version          text NOT NULL DEFAULT '2c' CHECK (version IN ('1', '2c', '3')),
    -- community, or v3 user, protocols and keys: JSON sealed with context 'snmp:<name>'
    credentials_enc  bytea NOT NULL,
    profiles         text[] NOT NULL DEFAULT '{}',
    interval         integer CHECK (interval IS NULL OR interval BETWEEN 10 AND 86400),
    tags             text[] NOT NULL DEFAULT '{}',
    enabled          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Samples, partitioned by day (the poller creates today's and tomorrow's partitions and
-- drops those older than poller.retention_days); the default partition catches the rest.
CREATE TABLE snmp_samples (
    ts       timestamptz NOT NULL,
    target   text NOT NULL,
    metric   text NOT NULL,
    labels   jsonb NOT NULL DEFAULT '{}'::jsonb,
    value    double precision NOT NULL
) PARTITION BY RANGE (ts);
CREATE TABLE snmp_samples_default PARTITION OF snmp_samples DEFAULT;
CREATE INDEX snmp_samples_target_idx ON snmp_samples (target, metric, ts);
