-- SNMPv3 users the trap receiver accepts traps and informs from.

CREATE TABLE snmp_trap_users (
    name             text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:@-]{1,32}$'),
    -- auth and priv protocols and passphrases: JSON sealed with context 'snmp-trap-user:<name>'
    credentials_enc  bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
