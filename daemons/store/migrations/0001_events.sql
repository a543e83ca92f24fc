-- Events: what happened in the network and in netd itself, for the NOC and for audit.
-- Daemon lifecycle (started/stopped) lands here from the foundation; later daemons add
-- their own kinds (device state changes, unreachable targets, ...).
CREATE TABLE events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts        timestamptz NOT NULL DEFAULT now(),
    source    text NOT NULL,                 -- daemon that saw it: radius, acs, voltha, ...
    kind      text NOT NULL,                 -- dotted name: daemon.started, onu.discovered, ...
    severity  text NOT NULL DEFAULT 'info'
              CHECK (severity IN ('debug', 'info', 'warning', 'error', 'critical')),
    subject   text NOT NULL DEFAULT '',      -- what it is about: an instance, a device id, ...
    data      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX events_ts_idx ON events (ts DESC);
CREATE INDEX events_kind_ts_idx ON events (kind, ts DESC);
CREATE INDEX events_subject_ts_idx ON events (subject, ts DESC) WHERE subject <> '';
