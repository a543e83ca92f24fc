-- RADIUS accounting: the append-only ledger and the sessions it describes.
-- A record is acknowledged to the NAS only after the transaction that inserts it commits.

-- Every Accounting-Request, once (idem_key: NAS + Acct-Session-Id + status + event time,
-- so a retransmit or a duplicate inserts nothing). Partitioned by month of event_time;
-- netd creates the current and next month's partitions, the default one catches the rest.
CREATE TABLE accounting_events (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    event_time      timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    idem_key        text NOT NULL,
    nas             text NOT NULL,
    status_type     smallint NOT NULL,            -- RFC 2866 Acct-Status-Type
    acct_session_id text NOT NULL DEFAULT '',
    unique_id       text NOT NULL,                -- the session's Acct-Unique-Session-Id
    username        text NOT NULL DEFAULT '',
    nas_port        text NOT NULL DEFAULT '',
    framed_ip       inet,
    input_octets    bigint NOT NULL DEFAULT 0,    -- with Acct-Input-Gigawords (RFC 2869)
    output_octets   bigint NOT NULL DEFAULT 0,
    input_packets   bigint NOT NULL DEFAULT 0,
    output_packets  bigint NOT NULL DEFAULT 0,
    session_time    bigint NOT NULL DEFAULT 0,
    terminate_cause integer,
    delay_time      integer NOT NULL DEFAULT 0,
    attributes      jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, event_time),
    UNIQUE (idem_key, event_time)
) PARTITION BY RANGE (event_time);

CREATE TABLE accounting_events_default PARTITION OF accounting_events DEFAULT;

-- The idempotency gate. A partitioned table's unique keys must include the partition key,
-- and a retransmit's event time can shift with Acct-Delay-Time, so duplicates are caught
-- here, in the same transaction as the ledger insert. Keys older than a week are pruned
-- (NAS retransmits stop within minutes).
CREATE TABLE accounting_dedup (
    idem_key    text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounting_dedup_created_idx ON accounting_dedup (created_at);
CREATE INDEX accounting_events_user_idx ON accounting_events (username, event_time);
CREATE INDEX accounting_events_session_idx ON accounting_events (unique_id);

-- One row per session, open until a Stop (or Accounting-On/Off of its NAS) closes it.
CREATE TABLE radius_sessions (
    unique_id       text PRIMARY KEY,
    nas             text NOT NULL,
    acct_session_id text NOT NULL,
    username        text NOT NULL DEFAULT '',
    nas_port        text NOT NULL DEFAULT '',
    framed_ip       inet,
    started_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    stopped_at      timestamptz,
    session_time    bigint NOT NULL DEFAULT 0,
    input_octets    bigint NOT NULL DEFAULT 0,
    output_octets   bigint NOT NULL DEFAULT 0,
    input_packets   bigint NOT NULL DEFAULT 0,
    output_packets  bigint NOT NULL DEFAULT 0,
    terminate_cause integer,
    close_reason    text,                         -- stop | nas-restart | stale (reaped)
    quota_acted_at  timestamptz                   -- when its plan's quota action ran
);
CREATE INDEX radius_sessions_user_updated_idx ON radius_sessions (username, updated_at);

CREATE INDEX radius_sessions_open_user_idx ON radius_sessions (username) WHERE stopped_at IS NULL;
CREATE INDEX radius_sessions_open_nas_idx ON radius_sessions (nas) WHERE stopped_at IS NULL;

-- Every Disconnect-/CoA-Request sent (RFC 5176) and what came of it.
CREATE TABLE coa_requests (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    actor        text NOT NULL,                 -- cli:<user>, api:<token name>, quota
    kind         text NOT NULL CHECK (kind IN ('disconnect', 'coa')),
    nas          text NOT NULL,
    unique_id    text NOT NULL DEFAULT '',
    username     text NOT NULL DEFAULT '',
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb,
    result       text CHECK (result IN ('ack', 'nak', 'timeout', 'error')),
    error_cause  integer,                      -- RFC 5176 §3.6 Error-Cause of a NAK
    attempts     integer NOT NULL DEFAULT 0
);
CREATE INDEX coa_requests_created_idx ON coa_requests (created_at DESC);

-- IP pools managed by netd (like FreeRADIUS sqlippool). A plan's framed_pool naming one of
-- these gets a Framed-IP-Address at Access-Accept; other names go to the NAS as Framed-Pool.
CREATE TABLE ip_pools (
    name        text PRIMARY KEY,
    lease_time  integer NOT NULL DEFAULT 900 CHECK (lease_time > 0),  -- seconds
    description text NOT NULL DEFAULT ''
);

CREATE TABLE ip_pool_addresses (
    address      inet PRIMARY KEY,
    pool         text NOT NULL REFERENCES ip_pools (name) ON DELETE CASCADE,
    username     text,                      -- holder, kept after release for stickiness
    nas          text,
    allocated_at timestamptz,
    expires_at   timestamptz                -- free when NULL or past
);
CREATE INDEX ip_pool_addresses_free_idx ON ip_pool_addresses (pool, expires_at);
CREATE INDEX ip_pool_addresses_user_idx ON ip_pool_addresses (pool, username);
