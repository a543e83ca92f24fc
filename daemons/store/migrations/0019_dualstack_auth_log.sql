-- Issue 21: IPv6 subscribers (RFC 3162, 4818, 6911). A subscriber's static IPv6 address,
-- WAN prefix and delegated prefix, and the NAS pools named in its Access-Accept; a
-- session's IPv6 prefixes as its accounting reported them, so a session is found by an
-- address inside them (GiST on inet: >>= uses it).
ALTER TABLE subscribers
    ADD COLUMN framed_ipv6_address inet,
    ADD COLUMN framed_ipv6_prefix cidr,
    ADD COLUMN delegated_ipv6_prefix cidr,
    ADD COLUMN framed_ipv6_pool text,
    ADD COLUMN delegated_ipv6_pool text;

ALTER TABLE radius_sessions
    ADD COLUMN framed_ipv6_address inet,
    ADD COLUMN framed_ipv6_prefix cidr,
    ADD COLUMN delegated_ipv6_prefix cidr;

CREATE INDEX radius_sessions_ipv6_prefix_idx ON radius_sessions
    USING gist (framed_ipv6_prefix inet_ops) WHERE stopped_at IS NULL;
CREATE INDEX radius_sessions_delegated_prefix_idx ON radius_sessions
    USING gist (delegated_ipv6_prefix inet_ops) WHERE stopped_at IS NULL;

-- Issue 21: the authentication history. Every Access-Accept and Access-Reject, written in
-- batches off the hot path; kept radius.auth_log_retention days.
CREATE TABLE radius_auth_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    username    text NOT NULL,
    nas         text NOT NULL,
    nas_port    text NOT NULL DEFAULT '',
    calling_station text NOT NULL DEFAULT '',
    method      text NOT NULL,
    result      text NOT NULL CHECK (result IN ('accept', 'reject')),
    reason      text NOT NULL,
    plan        text,
    given       jsonb NOT NULL DEFAULT '{}'  -- addresses, prefixes and pools the Accept gave
);
CREATE INDEX radius_auth_log_user_idx ON radius_auth_log (username, id);
CREATE INDEX radius_auth_log_at_idx ON radius_auth_log (at);
-- The history links a login to the session it started (user, NAS, port, time).
CREATE INDEX radius_sessions_user_started_idx ON radius_sessions (username, started_at);

-- Issue 21: netd-managed IPv6 pools. A pool is a prefix cut into per-subscriber prefixes of
-- one length (/56 or /60 delegated, /64 WAN); a slot is carved on first use (next_index)
-- and leased; a lease is a row whose prefix is the primary key: never leased twice.
CREATE TABLE ipv6_pools (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    prefix      cidr NOT NULL CHECK (family(prefix) = 6),
    length      smallint NOT NULL CHECK (length BETWEEN 1 AND 128),
    capacity    bigint NOT NULL CHECK (capacity > 0),
    next_index  bigint NOT NULL DEFAULT 0,
    lease_time  integer NOT NULL DEFAULT 900 CHECK (lease_time > 0),
    CHECK (length > masklen(prefix))
);
CREATE TABLE ipv6_pool_leases (
    prefix       cidr PRIMARY KEY,
    pool         text NOT NULL REFERENCES ipv6_pools (name) ON DELETE CASCADE,
    username     text,
    nas          text,
    allocated_at timestamptz,
    expires_at   timestamptz
);
CREATE INDEX ipv6_pool_leases_user_idx ON ipv6_pool_leases (pool, username);
CREATE INDEX ipv6_pool_leases_free_idx ON ipv6_pool_leases (pool, expires_at);
