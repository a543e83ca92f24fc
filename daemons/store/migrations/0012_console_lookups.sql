-- The NOC console links a subscriber to its ONU and its CPE, and a CPE back to its
-- subscriber: the ONUs bound to a subscriber, the CPE informing from a session's address,
-- and the sessions that had a CPE's address.
CREATE INDEX IF NOT EXISTS onu_bindings_subscriber_idx ON onu_bindings (subscriber);
CREATE INDEX IF NOT EXISTS cpe_devices_ip_idx ON cpe_devices (ip);
CREATE INDEX IF NOT EXISTS radius_sessions_framed_ip_idx ON radius_sessions (framed_ip, started_at);
