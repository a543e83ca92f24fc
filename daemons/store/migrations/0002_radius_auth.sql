-- RADIUS authentication: NAS clients and subscribers.
-- Secrets are sealed (AES-256-GCM, daemons/core/secrets.py) with the configured key:
-- a shared secret must be recoverable to sign packets, and CHAP/MS-CHAP need the cleartext
-- or the NT hash. PAP-only subscribers may instead carry a one-way hash.

CREATE TABLE nas_clients (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    network      cidr NOT NULL UNIQUE,        -- one address (/32, /128) or a prefix
    secret_enc   bytea NOT NULL,              -- sealed with context 'nas:<name>'
    vendor       text NOT NULL DEFAULT 'generic',
    require_message_authenticator boolean NOT NULL DEFAULT true,
    coa_port     integer NOT NULL DEFAULT 3799 CHECK (coa_port BETWEEN 1 AND 65535),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscribers (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 253),
    password_hash text,                       -- bcrypt / argon2 / crypt: PAP only
    password_enc  bytea,                      -- sealed cleartext, context 'sub:<username>:pw'
    nt_hash_enc   bytea,                      -- sealed NT hash, context 'sub:<username>:nt'
    plan          text NOT NULL DEFAULT 'default',
    state         text NOT NULL DEFAULT 'active'
                  CHECK (state IN ('active', 'suspended', 'disabled')),
    mac           macaddr,                    -- bound Calling-Station-Id, if any
    framed_ip     inet,                       -- static Framed-IP-Address, if any
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX subscribers_plan_idx ON subscribers (plan);
