-- ACS (issue 24): a stored tree that follows the device, tasks that end, UDP connection
-- requests for CPEs behind NAT, and bulk work across devices.

-- Discovery in steps that survive a session's end: the names are listed once (listed_at),
-- then the values read; a leaf whose value has not been read since it was listed is
-- `unread`; one the CPE faults on when asked alone is `fault` (its CWMP fault code) and is
-- not asked again by discovery. A BOOTSTRAP clears listed_at and discovered_at.
ALTER TABLE cpe_devices ADD COLUMN listed_at timestamptz;
ALTER TABLE cpe_parameters ADD COLUMN unread boolean NOT NULL DEFAULT false;
ALTER TABLE cpe_parameters ADD COLUMN fault integer;
CREATE INDEX cpe_parameters_unread_idx ON cpe_parameters (device_id, name) WHERE unread;

-- UDP connection requests (TR-069 Annex G): the CPE's NAT binding (host:port) from its
-- ManagementServer.UDPConnectionRequestAddress, and whether it has STUN on.
ALTER TABLE cpe_devices ADD COLUMN udp_connection_request_address text NOT NULL DEFAULT '';
ALTER TABLE cpe_devices ADD COLUMN stun_enabled boolean NOT NULL DEFAULT false;

-- Bulk work: one task (or preset run) for every device a filter matched, paced.
CREATE TABLE cpe_bulk (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    filter       jsonb NOT NULL,
    kind         text NOT NULL,                -- a task kind, or 'preset'
    args         jsonb NOT NULL DEFAULT '{}'::jsonb,
    rate         double precision NOT NULL CHECK (rate > 0),  -- connection requests a second
    devices      integer NOT NULL DEFAULT 0,
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT '',
    finished_at  timestamptz
);

-- Tasks: the bulk run a task belongs to; when the ACS should send the CPE a connection
-- request for it (bulk pacing, a retry after backoff), and what that request gave; the
-- deadline of a task waiting on the CPE (a transfer's TransferComplete).
ALTER TABLE cpe_tasks ADD COLUMN bulk_id bigint REFERENCES cpe_bulk (id) ON DELETE SET NULL;
ALTER TABLE cpe_tasks ADD COLUMN poke_at timestamptz;
ALTER TABLE cpe_tasks ADD COLUMN poke text NOT NULL DEFAULT '';
ALTER TABLE cpe_tasks ADD COLUMN deadline_at timestamptz;
CREATE INDEX cpe_tasks_poke_idx ON cpe_tasks (poke_at) WHERE poke_at IS NOT NULL;
CREATE INDEX cpe_tasks_bulk_idx ON cpe_tasks (bulk_id, id) WHERE bulk_id IS NOT NULL;
CREATE INDEX cpe_tasks_deadline_idx ON cpe_tasks (deadline_at)
    WHERE deadline_at IS NOT NULL AND status = 'running';
CREATE INDEX cpe_devices_oui_idx ON cpe_devices (oui, product_class);
