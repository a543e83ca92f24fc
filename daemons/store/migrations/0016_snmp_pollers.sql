-- Several `netd poller` processes share the SNMP targets: each target is polled under a
-- lease (one owner at a time, renewed every poller.sync_interval, lapsing after
-- poller.lease_ttl), and each poller says it is alive here so the others know how to
-- share (rendezvous hashing over the live pollers decides who should hold what).

CREATE TABLE snmp_pollers (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),  -- instance:pid:random
    instance    text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE snmp_leases (
    target      text PRIMARY KEY REFERENCES snmp_targets (name) ON DELETE CASCADE,
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    polled_at   timestamptz  -- the last poll its owner reported (set on a handover)
);
CREATE INDEX snmp_leases_owner_idx ON snmp_leases (owner);
