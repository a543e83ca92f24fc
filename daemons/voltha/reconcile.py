"""What to do about the services on each bound ONU's UNI ports, from what netd wants, what
it recorded and what ONOS's olt app says it has programmed there. Pure.

ONOS's state moves without netd: an OLT reboot makes voltha-go delete every ONU device and
ONOS purge what it had on the OLT (opencord/olt ``Olt.java``: DEVICE_AVAILABILITY_CHANGED
with no ports left, ``purgeDeviceFlows``); the ONUs come back as new devices, perhaps on new
UNI port numbers. So every sync compares, for each UNI port of an ONU that is there:

- entries ONOS has that netd did not record (on a port netd manages: bound, or with a
  record): the wanted one is recorded; any other is stale: recorded (so that SADIS serves
  it and ONOS can match it) and removed;
- records ONOS does not have any more: the wanted one is provisioned again (once it is
  older than ``settle``: ONOS programs asynchronously); any other is forgotten;
- records that are not the wanted service (new tags, a new rate, unbound) are removed while
  SADIS still serves them; the wanted service is provisioned only once they are gone.

Ports of ONUs that are not active are not compared with ONOS (their flows come and go with
the port), only cleared of services nobody wants. Records of an ONU device that is gone stay
while the serial is bound (it will be back), and go otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daemons.voltha.entries import TagKey, minimal_tag, tag_key
from daemons.voltha.inventory import Event, Snapshot
from daemons.voltha.policy import serial_key

Key = tuple[str, int]  # (ONU serial in openolt's form, UNI number from 1)


@dataclass(frozen=True)
class ServiceRow:
    """A service ONOS holds (or held) on a UNI port, with the entry SADIS served for it."""

    serial: str
    uni: int
    subscriber: str
    plan: str
    s_tag: int
    c_tag: int
    tp_id: int
    tag_info: dict[str, Any]
    location: str = ""
    age: float = 0.0  # seconds since it was provisioned or recorded


@dataclass(frozen=True)
class Port:
    serial: str  # as VOLTHA has it: ONOS names the port <serial>-<uni>
    uni: int
    location: str  # the ONOS connect point, "" while unknown
    active: bool  # the ONU is admin ENABLED and oper ACTIVE

    @property
    def name(self) -> str:
        return f"{self.serial}-{self.uni}"


@dataclass(frozen=True)
class Want:
    subscriber: str
    plan: str
    entry: dict[str, Any]  # the uniTagList entry SADIS serves for it


@dataclass(frozen=True)
class Step:
    """One thing to do: ``record`` or ``forget`` a row (no call), ``remove`` or
    ``provision`` a service in ONOS. ``event`` is raised once it is done."""

    kind: str
    row: ServiceRow
    event: Event | None = None


@dataclass
class PortPlan:
    port: Port | None
    key: Key
    steps: list[Step] = field(default_factory=list)


def onos_device(mac: str) -> str | None:
    """The ONOS device id of an OLT: voltha-go makes the logical device's datapath id from
    the OLT's MAC (logical_manager.go createLogicalDevice, utils CreateDataPathID), and
    ONOS names an OpenFlow device ``of:`` and its 16 hex digits."""
    digits = mac.replace(":", "")
    if len(digits) != 12:
        return None
    try:
        return f"of:{int(digits, 16):016x}"
    except ValueError:
        return None


def ports(snap: Snapshot) -> dict[Key, Port]:
    """Every UNI port of every ONU in the snapshot, by (serial, UNI number). openonu numbers
    UNI ports with voltha-lib-go's MkUniPortNum (the UNI id in the low 8 bits) and names
    them ``<serial>-<UNI id + 1>`` (common/onu_uni_port.go)."""
    olts = {r.id: onos_device(r.mac_address) for r in snap.devices.values() if r.kind == "olt"}
    out: dict[Key, Port] = {}
    for p in snap.ports.values():
        if p.type != "ETHERNET_UNI":
            continue
        onu = snap.devices.get(p.device_id)
        if onu is None or onu.kind != "onu" or not onu.serial:
            continue
        uni = (p.port_no & 0xFF) + 1
        device = olts.get(onu.parent_id)
        active = onu.admin_state == "ENABLED" and onu.oper_status == "ACTIVE"
        location = f"{device}/{p.port_no}" if device else ""
        out[(serial_key(onu.serial), uni)] = Port(onu.serial, uni, location, active)
    return out


def row_for(
    port: Port | Key, subscriber: str, plan: str, entry: Mapping[str, Any], location: str = ""
) -> ServiceRow:
    serial, uni = (port.serial, port.uni) if isinstance(port, Port) else port
    return ServiceRow(
        serial=serial,
        uni=uni,
        subscriber=subscriber,
        plan=plan,
        s_tag=int(entry.get("ponSTag", 0)),
        c_tag=int(entry.get("ponCTag", 0)),
        tp_id=int(entry.get("technologyProfileId", -1)),
        tag_info=dict(entry),
        location=location,
    )


def _event(
    kind: str, stack: str, row: ServiceRow, why: str, action: str = "", severity: str = "info"
) -> Event:
    data: dict[str, Any] = {
        "stack": stack,
        "port": f"{row.serial}-{row.uni}",
        "location": row.location,
        "subscriber": row.subscriber,
        "s_tag": row.s_tag,
        "c_tag": row.c_tag,
        "tp_id": row.tp_id,
        "upstream": row.tag_info.get("upstreamBandwidthProfile"),
        "downstream": row.tag_info.get("downstreamBandwidthProfile"),
        "why": why,
    }
    if action:
        data["action"] = action
    return Event(kind, f"{row.serial}-{row.uni}", data, severity)


def plan(
    stack: str,
    uni_ports: Mapping[Key, Port],
    present: Iterable[str],
    wants: Mapping[Key, Want],
    rows: Sequence[ServiceRow],
    programmed: Sequence[tuple[str, Mapping[str, Any]]],
    settle: float,
    settling: Callable[[str, TagKey], bool],
) -> list[PortPlan]:
    """The steps for every port with something to do. ``present``: serials (openolt form)
    of the ONU devices there; ``programmed``: ONOS's (location, tagInfo) list;
    ``settling(location, key)``: netd asked ONOS to remove that service moments ago."""
    here: dict[str, dict[TagKey, Mapping[str, Any]]] = {}
    for location, tag in programmed:
        here.setdefault(location, {})[tag_key(tag)] = tag
    by_port: dict[Key, list[ServiceRow]] = {}
    for r in rows:
        by_port.setdefault((serial_key(r.serial), r.uni), []).append(r)
    there = set(present)
    out = []
    # Ports netd manages: bound, or holding a service netd recorded. Another UNI port's
    # services in ONOS are not netd's business (with voltha.allowlist off, an operator may
    # run ONUs beside netd).
    for key in sorted(set(by_port) | set(wants)):
        p = _port_plan(
            stack,
            key,
            uni_ports.get(key),
            key[0] in there,
            wants.get(key),
            by_port.get(key, []),
            here,
            settle,
            settling,
        )
        if p.steps:
            out.append(p)
    return out


def _port_plan(
    stack: str,
    key: Key,
    port: Port | None,
    present: bool,
    want: Want | None,
    rows: list[ServiceRow],
    here: Mapping[str, Mapping[TagKey, Mapping[str, Any]]],
    settle: float,
    settling: Callable[[str, TagKey], bool],
) -> PortPlan:
    out = PortPlan(port, key)
    want_key = tag_key(want.entry) if want else None
    if port is None:
        if not present and want is None:  # the ONU is gone and nobody wants it back
            for r in rows:
                out.steps.append(
                    Step("forget", r, _event("voltha.service.removed", stack, r, "ONU gone"))
                )
        return out
    unwanted = "unbound" if want is None else "binding or plan changed"
    if not port.active or not port.location:
        # Not compared with ONOS: an inactive ONU's flows come and go with its port; with no
        # MAC for its OLT, netd cannot tell ONOS's device. Unwanted records are removed; an
        # active ONU with no record of its wanted service gets it.
        for r in rows:
            if tag_key(r.tag_info) != want_key:
                out.steps.append(
                    Step("remove", r, _event("voltha.service.removed", stack, r, unwanted))
                )
        if port.active and want is not None and want_key not in {tag_key(r.tag_info) for r in rows}:
            r = row_for(port, want.subscriber, want.plan, want.entry)
            out.steps.append(
                Step("provision", r, _event("voltha.service.provisioned", stack, r, "bound"))
            )
        return out
    onos = here.get(port.location, {})
    recorded = {tag_key(r.tag_info): r for r in rows}
    for k, tag in onos.items():
        if k in recorded:
            continue
        if k == want_key and want is not None:
            r = row_for(port, want.subscriber, want.plan, want.entry, port.location)
            ev = _event(
                "voltha.service.corrected", stack, r, "found in ONOS", "recorded", "warning"
            )
            out.steps.append(Step("record", r, ev))
        elif not settling(port.location, k):
            first = rows[0] if rows else None
            r = row_for(
                port,
                first.subscriber if first else (want.subscriber if want else ""),
                first.plan if first else (want.plan if want else ""),
                minimal_tag(tag),
                port.location,
            )
            out.steps.append(Step("record", r))
            ev = _event("voltha.service.corrected", stack, r, "stale in ONOS", "removed", "warning")
            out.steps.append(Step("remove", r, ev))
    provisioned = False
    for k, r in recorded.items():
        if k != want_key:
            if k in onos:
                ev = _event("voltha.service.removed", stack, r, unwanted)
                out.steps.append(Step("remove", r, ev))
            else:
                ev = _event("voltha.service.removed", stack, r, "no longer in ONOS")
                out.steps.append(Step("forget", r, ev))
        elif k not in onos and r.age >= settle and want is not None:
            again = row_for(port, want.subscriber, want.plan, want.entry, port.location)
            ev = _event(
                "voltha.service.corrected",
                stack,
                again,
                "missing in ONOS",
                "provisioned",
                "warning",
            )
            out.steps.append(Step("provision", again, ev))
            provisioned = True
        else:
            provisioned = True  # there, or just provisioned and settling
    if want is not None and want_key not in recorded and want_key not in onos and not provisioned:
        r = row_for(port, want.subscriber, want.plan, want.entry, port.location)
        out.steps.append(
            Step("provision", r, _event("voltha.service.provisioned", stack, r, "bound"))
        )
    return out
