"""The pure parts behind the reconciliation with ONOS: SADIS entries as ONOS reads them
(checked against tests/voltha/onos_rules.py, written from ONOS's sources independently of
netd's code) and the plan for each UNI port."""

from __future__ import annotations

from typing import Any

from voltha_protos import common_pb2, device_pb2

from daemons.voltha import entries, inventory, reconcile
from tests.voltha import onos_rules

ADMIN, OPER, CONN = common_pb2.AdminState, common_pb2.OperStatus, common_pb2.ConnectStatus
RATES = (100_000_000, 20_000_000)


def test_profiles_carry_the_rate_and_bursts_are_kbit() -> None:
    entry = entries.service_entry(100, 201, 64, "fiber-100", RATES)
    assert entry["downstreamBandwidthProfile"] == "fiber-100-down-100000k"
    assert entry["upstreamBandwidthProfile"] == "fiber-100-up-20000k"
    assert not any(k.endswith("Priority") for k in entry)  # left out: "do not set"
    faster = entries.service_entry(100, 201, 64, "fiber-100", (150_000_000, 20_000_000))
    assert faster["downstreamBandwidthProfile"] != entry["downstreamBandwidthProfile"]
    profile = entries.bandwidth_profile("fiber-100-down-100000k", 100_000)
    assert profile == {"id": "fiber-100-down-100000k", "cir": 100_000, "cbs": 1000}
    assert entries.bandwidth_profile("slow-up-64k", 64)["cbs"] == 13  # one 1522-byte frame
    for name, doc in (("fiber-100-down-100000k", profile), ("Default", entries.DEFAULT_PROFILE)):
        assert onos_rules.problems("bandwidthprofiles", name, doc) == []
    sub = entries.subscriber_entry("ALPHe3d1cea3-1", "alice", [entry])
    assert onos_rules.problems("subscribers", "ALPHe3d1cea3-1", sub) == []
    assert entries.service_entry(1, 2, 64, "nolimit", (None, None))["upstreamBandwidthProfile"] == (
        "Default"
    )


def test_olt_entries_onos_can_parse() -> None:
    row: dict[str, Any] = {
        "serial": "EC1234",
        "host_and_port": "10.0.0.1:9191",
        "mac_address": "00:00:0a:00:00:01",
        "uplink": 16777216,
    }
    entry = entries.olt_entry(row)
    assert entry == {
        "id": "EC1234",
        "uplinkPort": 16777216,
        "hardwareIdentifier": "00:00:0a:00:00:01",
        "ipAddress": "10.0.0.1",
        "nasId": "EC1234",
    }
    assert onos_rules.problems("subscribers", "EC1234", entry) == []
    named = entries.olt_entry({**row, "host_and_port": "olt.lab:9191", "mac_address": ""})
    assert named is not None
    assert "ipAddress" not in named and "hardwareIdentifier" not in named
    assert onos_rules.problems("subscribers", "EC1234", named) == []
    v6 = entries.olt_entry({**row, "host_and_port": "[2001:db8::1]:9191"})
    assert v6 is not None and "ipAddress" not in v6
    assert entries.olt_entry({**row, "uplink": None}) is None
    # What netd served before: ONOS's parsers throw on both.
    old = {**entry, "hardwareIdentifier": ""}
    assert onos_rules.problems("subscribers", "EC1234", old)[0].startswith("ONOS cannot")
    old = {**entry, "ipAddress": "olt.lab"}
    assert onos_rules.problems("subscribers", "EC1234", old)[0].startswith("ONOS cannot")


def test_netds_canonical_entry_is_onos_own() -> None:
    entry = entries.service_entry(100, 201, 64, "fiber-100", RATES)
    assert entries.canonical_tag(entry) == onos_rules.canonical_tag(entry)
    legacy = {**entry, "usPonCTagPriority": 0, "isIgmpRequired": False}
    assert entries.canonical_tag(legacy) == onos_rules.canonical_tag(legacy)
    full = onos_rules.canonical_tag(entry)
    assert entries.minimal_tag(full) == entry
    assert onos_rules.canonical_tag(entries.minimal_tag(full)) == full


def _olt() -> device_pb2.Device:
    return device_pb2.Device(
        id="olt-1",
        type="openolt",
        root=True,
        serial_number="EC1234",
        mac_address="00:00:0a:00:00:01",
        admin_state=ADMIN.ENABLED,
        oper_status=OPER.ACTIVE,
        connect_status=CONN.REACHABLE,
    )


def _onu(serial: str, onu_id: int, oper: int = OPER.ACTIVE) -> device_pb2.Device:
    d = device_pb2.Device(
        id=f"onu-{serial}",
        type="brcm_openomci_onu",
        root=False,
        parent_id="olt-1",
        parent_port_no=(2 << 28),
        serial_number=serial,
        admin_state=ADMIN.ENABLED,
        oper_status=oper,
        connect_status=CONN.REACHABLE,
    )
    d.proxy_address.onu_id = onu_id
    return d


def _uni(onu_id: int) -> device_pb2.Port:
    return device_pb2.Port(
        port_no=(onu_id << 8), type=device_pb2.Port.ETHERNET_UNI, oper_status=OPER.ACTIVE
    )


def _snap(*onus: tuple[str, int, int]) -> inventory.Snapshot:
    devices = [_olt(), *(_onu(s, i, oper) for s, i, oper in onus)]
    ports = {f"onu-{s}": [_uni(i)] for s, i, _ in onus}
    return inventory.snapshot("lab", devices, ports)


WANT = reconcile.Want("alice", "fiber-100", entries.service_entry(100, 201, 64, "fiber-100", RATES))
KEY = ("alphe3d1cea3", 1)


def _plan(
    snap: inventory.Snapshot,
    rows: list[reconcile.ServiceRow],
    programmed: list[tuple[str, dict[str, Any]]],
    wants: dict[reconcile.Key, reconcile.Want] | None = None,
) -> list[tuple[str, str, str]]:
    plans = reconcile.plan(
        "lab",
        reconcile.ports(snap),
        [r.serial for r in snap.devices.values() if r.kind == "onu"],
        {KEY: WANT} if wants is None else wants,
        rows,
        programmed,
        10.0,
        lambda _loc, _key: False,
    )
    return [
        (s.kind, s.event.kind if s.event else "", s.event.data.get("why", "") if s.event else "")
        for p in plans
        for s in p.steps
    ]


def _row(entry: dict[str, Any], age: float = 60.0) -> reconcile.ServiceRow:
    r = reconcile.row_for(
        ("ALPHe3d1cea3", 1), "alice", "fiber-100", entry, "of:000000000a000001/256"
    )
    return reconcile.ServiceRow(**{**r.__dict__, "age": age})


def test_ports_are_where_onos_has_them() -> None:
    ports = reconcile.ports(_snap(("ALPHe3d1cea3", 1, OPER.ACTIVE)))
    assert ports == {
        KEY: reconcile.Port("ALPHe3d1cea3", 1, "of:000000000a000001/256", True),
    }
    assert reconcile.onos_device("00:00:0a:00:00:01") == "of:000000000a000001"
    assert reconcile.onos_device("") is None


def test_plans() -> None:
    active = _snap(("ALPHe3d1cea3", 1, OPER.ACTIVE))
    loc = "of:000000000a000001/256"
    there = [(loc, onos_rules.canonical_tag(WANT.entry))]
    # New: provisioned. Steady: nothing at all.
    assert _plan(active, [], []) == [("provision", "voltha.service.provisioned", "bound")]
    assert _plan(active, [_row(WANT.entry)], there) == []
    # ONOS lost it (an OLT reboot): provisioned again, as a correction; not while settling.
    assert _plan(active, [_row(WANT.entry)], []) == [
        ("provision", "voltha.service.corrected", "missing in ONOS")
    ]
    assert _plan(active, [_row(WANT.entry, age=1.0)], []) == []
    # ONOS has it and netd had no record: recorded.
    assert _plan(active, [], there) == [("record", "voltha.service.corrected", "found in ONOS")]
    # Something else on the port: recorded (so SADIS serves it), then removed.
    stray = {**WANT.entry, "ponCTag": 499}
    assert _plan(active, [_row(WANT.entry)], [*there, (loc, onos_rules.canonical_tag(stray))]) == [
        ("record", "", ""),
        ("remove", "voltha.service.corrected", "stale in ONOS"),
    ]
    # New tags: the old removed while SADIS still serves it, then the new provisioned.
    old = {**WANT.entry, "ponCTag": 200}
    assert _plan(active, [_row(old)], [(loc, onos_rules.canonical_tag(old))]) == [
        ("remove", "voltha.service.removed", "binding or plan changed"),
        ("provision", "voltha.service.provisioned", "bound"),
    ]
    # Unbound, ONU still there: removed. Unbound, ONU gone: forgotten. Bound, gone: kept.
    assert _plan(active, [_row(WANT.entry)], there, {}) == [
        ("remove", "voltha.service.removed", "unbound")
    ]
    empty = _snap()
    assert _plan(empty, [_row(WANT.entry)], [], {}) == [
        ("forget", "voltha.service.removed", "ONU gone")
    ]
    assert _plan(empty, [_row(WANT.entry)], []) == []
    # A port netd does not manage (unbound, no record) is left alone, whatever ONOS has.
    assert _plan(active, [], there, {}) == []
    # An ONU that is not active is not compared with ONOS (its flows come and go).
    rebooting = _snap(("ALPHe3d1cea3", 1, OPER.DISCOVERED))
    assert _plan(rebooting, [_row(WANT.entry)], []) == []
