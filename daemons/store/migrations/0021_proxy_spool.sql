-- Issue 28: proxied accounting that netd acknowledged while its home-server pool was dead.
-- A row is committed before the NAS gets its Accounting-Response, forwarded in id order
-- (per pool) when the pool is back, and deleted once the home server has answered it.
CREATE TABLE radius_proxy_spool (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pool        text NOT NULL,
    realm       text NOT NULL DEFAULT '',
    nas         text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    attributes  bytea NOT NULL  -- the request's attributes as on the wire, for the home server
);
CREATE INDEX radius_proxy_spool_pool_idx ON radius_proxy_spool (pool, id);

-- Issue 28: realms managed through the API (policies/radius/realms.toml's [realms.<name>]
-- tables; a realm of the same name in a file wins). Home servers and pools stay in files.
CREATE TABLE radius_realms (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 253),
    spec        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
