-- VOLTHA: the device tree of each stack as last synced, the ONU allow-list (bindings of
-- ONU serials to subscribers, with their service tags), serials we disabled, active optics
-- alarms, and ONU firmware jobs.

CREATE TABLE voltha_devices (
    stack           text NOT NULL,
    id              text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('olt', 'onu')),
    type            text NOT NULL DEFAULT '',
    parent_id       text NOT NULL DEFAULT '',
    pon_port        bigint NOT NULL DEFAULT 0,
    onu_id          bigint NOT NULL DEFAULT 0,
    serial          text NOT NULL DEFAULT '',
    vendor          text NOT NULL DEFAULT '',
    model           text NOT NULL DEFAULT '',
    firmware        text NOT NULL DEFAULT '',
    host_and_port   text NOT NULL DEFAULT '',
    admin_state     text NOT NULL,
    oper_status     text NOT NULL,
    connect_status  text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stack, id)
);
CREATE INDEX voltha_devices_serial_idx ON voltha_devices (serial);
CREATE INDEX voltha_devices_parent_idx ON voltha_devices (stack, parent_id);

CREATE VIEW voltha_olts AS SELECT * FROM voltha_devices WHERE kind = 'olt';
CREATE VIEW voltha_onus AS SELECT * FROM voltha_devices WHERE kind = 'onu';

CREATE TABLE voltha_ports (
    stack        text NOT NULL,
    device_id    text NOT NULL,
    port_no      bigint NOT NULL,
    label        text NOT NULL DEFAULT '',
    type         text NOT NULL,
    admin_state  text NOT NULL,
    oper_status  text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stack, device_id, port_no)
);

-- The allow-list: an ONU serial bound to a subscriber may come up; its UNI's service is
-- provisioned through ONOS with these tags (SADIS serves them as <serial>-<uni>).
CREATE TABLE onu_bindings (
    serial       text PRIMARY KEY CHECK (serial ~ '^[A-Za-z0-9]{4,32}$'),
    subscriber   text NOT NULL REFERENCES subscribers (username) ON DELETE CASCADE,
    uni          integer NOT NULL DEFAULT 1 CHECK (uni BETWEEN 1 AND 16),
    s_tag        integer NOT NULL CHECK (s_tag BETWEEN 1 AND 4094),
    c_tag        integer NOT NULL CHECK (c_tag BETWEEN 1 AND 4094),
    tp_id        integer NOT NULL DEFAULT 64 CHECK (tp_id BETWEEN 64 AND 255),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Serials the allow-list disabled, and where, to enable them again once bound.
CREATE TABLE voltha_disabled_onus (
    stack        text NOT NULL,
    serial       text NOT NULL,
    olt_id       text NOT NULL,
    pon_port     bigint NOT NULL,
    disabled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stack, serial)
);

-- Optics alarms raised and not cleared yet (kept across restarts: no duplicate raise).
CREATE TABLE voltha_alarms (
    stack      text NOT NULL,
    device_id  text NOT NULL,
    alarm      text NOT NULL,
    serial     text NOT NULL DEFAULT '',
    value      double precision,
    raised_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stack, device_id, alarm)
);

CREATE TABLE voltha_firmware_jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stack        text NOT NULL,
    version      text NOT NULL,
    url          text NOT NULL,
    vendor       text NOT NULL DEFAULT '',
    crc32        bigint NOT NULL DEFAULT 0,
    activate     boolean NOT NULL DEFAULT true,
    commit       boolean NOT NULL DEFAULT true,
    concurrency  integer NOT NULL DEFAULT 4 CHECK (concurrency BETWEEN 1 AND 256),
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'done', 'failed', 'cancelled')),
    created_by   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);

CREATE TABLE voltha_firmware_devices (
    job_id      bigint NOT NULL REFERENCES voltha_firmware_jobs (id) ON DELETE CASCADE,
    device_id   text NOT NULL,
    serial      text NOT NULL DEFAULT '',
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'downloading', 'activating', 'committing',
                                 'done', 'failed')),
    reason      text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, device_id)
);

-- Subscriber services provisioned through ONOS's olt app (one per bound ONU UNI). SADIS
-- keeps serving a provisioned service after its binding is gone, until ONOS has removed it
-- (the olt app reads the subscriber from SADIS to remove it).
CREATE TABLE voltha_services (
    stack           text NOT NULL,
    serial          text NOT NULL,
    uni             integer NOT NULL,
    subscriber      text NOT NULL,
    plan            text NOT NULL,
    s_tag           integer NOT NULL,
    c_tag           integer NOT NULL,
    tp_id           integer NOT NULL,
    provisioned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stack, serial, uni)
);
