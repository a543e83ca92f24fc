-- VOLTHA and ONOS as they really behave (issue 25).
--
-- 1. Devices keep their MAC address: an OLT's is the hardwareIdentifier of its SADIS entry
--    and, as voltha-go builds it, the datapath id of its ONOS device (of:<MAC as 16 hex>).
ALTER TABLE voltha_devices ADD COLUMN mac_address text NOT NULL DEFAULT '';

-- 2. voltha_onos_services: the services ONOS holds on each UNI port, each with the
--    uniTagList entry SADIS served for it (tag_info), verbatim: SADIS keeps serving a
--    port's recorded entries, and only them, until ONOS has removed them, so that ONOS can
--    match what it holds (the olt app compares the whole entry) and a new entry is served
--    only once the old one is gone. A port can hold several while an old one is removed.
--    It takes over from voltha_services (one row a port, tags only), which stays for the
--    daemons of the previous release during a rolling upgrade and goes in a later release.
CREATE TABLE voltha_onos_services (
    stack           text NOT NULL,
    serial          text NOT NULL,
    uni             integer NOT NULL,
    subscriber      text NOT NULL,
    plan            text NOT NULL,
    s_tag           integer NOT NULL,
    c_tag           integer NOT NULL,
    tp_id           integer NOT NULL,
    tag_info        jsonb NOT NULL,
    location        text NOT NULL DEFAULT '',  -- ONOS's <device>/<port> when provisioned
    provisioned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stack, serial, uni, s_tag, c_tag, tp_id)
);
-- SADIS looks a port up by the serial in ONOS's port name, whatever its case.
CREATE INDEX voltha_onos_services_port_idx ON voltha_onos_services (lower(serial), uni);
-- The services provisioned before, with the entry netd served for them then.
INSERT INTO voltha_onos_services (stack, serial, uni, subscriber, plan, s_tag, c_tag, tp_id,
                                  tag_info, provisioned_at)
SELECT stack, serial, uni, subscriber, plan, s_tag, c_tag, tp_id, jsonb_build_object(
    'uniTagMatch', 4096,
    'ponCTag', c_tag,
    'ponSTag', s_tag,
    'usPonCTagPriority', 0,
    'usPonSTagPriority', 0,
    'dsPonCTagPriority', 0,
    'dsPonSTagPriority', 0,
    'technologyProfileId', tp_id,
    'upstreamBandwidthProfile', plan || '-up',
    'downstreamBandwidthProfile', plan || '-down',
    'isDhcpRequired', true,
    'isIgmpRequired', false,
    'enableMacLearning', false,
    'serviceName', 'hsia'
), provisioned_at
FROM voltha_services;

-- 3. ONU serials in openolt's form: the vendor id as the ONU gives it (upper case), the
--    vendor-specific part as lower-case hex (voltha-openolt-adapter device_handler.go
--    stringifySerialNumber); VOLTHA, ONOS and SADIS compare them case-sensitively. A serial
--    bound twice under two spellings keeps its latest binding; the other is recorded in an
--    event before it goes.
INSERT INTO events (source, kind, severity, subject, data)
SELECT 'voltha', 'voltha.binding.merged', 'warning', b.serial,
       jsonb_build_object('serial', b.serial, 'subscriber', b.subscriber, 's_tag', b.s_tag,
                          'c_tag', b.c_tag, 'tp_id', b.tp_id, 'uni', b.uni,
                          'kept', upper(substr(b.serial, 1, 4)) || lower(substr(b.serial, 5)),
                          'why', 'the same ONU serial bound under two spellings')
FROM (
    SELECT *, row_number() OVER (
        PARTITION BY upper(substr(serial, 1, 4)) || lower(substr(serial, 5))
        ORDER BY updated_at DESC, serial
    ) AS rank
    FROM onu_bindings WHERE serial ~ '^[A-Za-z0-9]{4}[0-9A-Fa-f]{8}$'
) b
WHERE b.rank > 1;
DELETE FROM onu_bindings o USING (
    SELECT serial, row_number() OVER (
        PARTITION BY upper(substr(serial, 1, 4)) || lower(substr(serial, 5))
        ORDER BY updated_at DESC, serial
    ) AS rank
    FROM onu_bindings WHERE serial ~ '^[A-Za-z0-9]{4}[0-9A-Fa-f]{8}$'
) d
WHERE o.serial = d.serial AND d.rank > 1;
UPDATE onu_bindings SET serial = upper(substr(serial, 1, 4)) || lower(substr(serial, 5))
WHERE serial ~ '^[A-Za-z0-9]{4}[0-9A-Fa-f]{8}$'
  AND serial <> upper(substr(serial, 1, 4)) || lower(substr(serial, 5));
-- Bindings are matched to ONU devices whatever the case of the serial (an operator types
-- it from a label; netd speaks to VOLTHA and ONOS with the device's own spelling).
CREATE INDEX onu_bindings_serial_lower_idx ON onu_bindings (lower(serial));
