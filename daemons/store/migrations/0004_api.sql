-- The admin/status API: tokens, the audit trail, and plans managed through the API.

-- Bearer tokens. The token itself is shown once, at creation; only its SHA-256 is kept
-- (a token is 256 random bits, so a fast hash is enough: there is nothing to brute-force).
CREATE TABLE api_tokens (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT '',
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Every mutating API call, allowed or not: who, what, when, the result, the request id.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,                -- api:<token name>, anonymous, cli:<user>
    role        text NOT NULL DEFAULT '',
    method      text NOT NULL,
    path        text NOT NULL,
    action      text NOT NULL,                -- the operation: nas.create, session.disconnect
    target      text NOT NULL DEFAULT '',     -- what it acted on: a name, a session id
    status      integer NOT NULL,             -- the HTTP status answered
    result      text NOT NULL CHECK (result IN ('ok', 'denied', 'invalid', 'error')),
    request_id  text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_ts_idx ON audit_log (ts DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, id);

-- RADIUS plans created through the API. They sit beside the plans of policies/radius/*.toml
-- (a name is in one place or the other) and take effect on every radius daemon at once
-- (NOTIFY netd_plans_changed).
CREATE TABLE radius_plans (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    spec        jsonb NOT NULL,               -- the keys of a [plans.NAME] table
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
