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
