-- TR-069 ACS: devices, their parameter trees, tasks queued for them, their faults.

CREATE TABLE cpe_devices (
    id                      text PRIMARY KEY,            -- OUI-ProductClass-SerialNumber
    oui                     text NOT NULL,
    product_class           text NOT NULL DEFAULT '',
    serial                  text NOT NULL,
    manufacturer            text NOT NULL DEFAULT '',
    software_version        text NOT NULL DEFAULT '',
    root                    text NOT NULL DEFAULT '',    -- InternetGatewayDevice or Device
    cwmp_ns                 text NOT NULL DEFAULT '',
    ip                      inet,
    connection_request_url  text NOT NULL DEFAULT '',
    last_inform             timestamptz,
    last_events             text[] NOT NULL DEFAULT '{}',
    tags                    text[] NOT NULL DEFAULT '{}',
    discovered_at           timestamptz,                 -- full tree read once
    refreshed_at            timestamptz,                 -- values last read in full
    registered_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cpe_devices_serial_idx ON cpe_devices (serial);
CREATE INDEX cpe_devices_tags_idx ON cpe_devices USING gin (tags);

CREATE TABLE cpe_parameters (
    device_id   text NOT NULL REFERENCES cpe_devices (id) ON DELETE CASCADE,
    name        text NOT NULL,
    object      boolean NOT NULL DEFAULT false,
    writable    boolean,
    value       text,
    type        text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, name)
);

-- Work for a device, run in order in its next session.
CREATE TABLE cpe_tasks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    text NOT NULL REFERENCES cpe_devices (id) ON DELETE CASCADE,
    kind         text NOT NULL,                -- getParameterValues, setParameterValues, ...
    args         jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'fault', 'cancelled', 'expired')),
    attempts     integer NOT NULL DEFAULT 0,
    not_before   timestamptz NOT NULL DEFAULT now(),  -- retry backoff
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT '',
    finished_at  timestamptz,
    result       jsonb
);
CREATE INDEX cpe_tasks_pending_idx ON cpe_tasks (device_id, id) WHERE status IN ('queued', 'running');

CREATE TABLE cpe_faults (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts          timestamptz NOT NULL DEFAULT now(),
    device_id   text NOT NULL REFERENCES cpe_devices (id) ON DELETE CASCADE,
    task_id     bigint,
    code        integer NOT NULL,
    message     text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX cpe_faults_device_idx ON cpe_faults (device_id, id);
