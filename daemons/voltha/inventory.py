"""VOLTHA's device tree as rows, and what changed between two reads of it. Pure.

A sync reads every device (ListDevices) and each one's ports (ListDevicePorts) and turns
them into a ``Snapshot``: OLTs (root devices), ONUs (children), ports. ``diff`` against the
snapshot last written gives the rows to write and the events to raise:
- ``voltha.olt.added`` / ``voltha.onu.discovered`` for a new device, ``.removed`` for a gone one;
- ``voltha.olt.state`` / ``voltha.onu.state`` when admin state, oper status, connect status
  or reason changes (the event carries before and after);
- ``voltha.port.state`` when a port's admin or oper state changes.
Nothing changed: an empty diff, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from voltha_protos import common_pb2, device_pb2


def _names(enum: Any) -> Callable[[int], str]:
    """An enum value's name; a value this client's protos do not know (proto3 enums are
    open: a newer VOLTHA sends new states) is ``UNKNOWN_<n>``. ``Name`` raised ValueError
    for it, out of the sync, which ended the stack's sync loop for good."""

    def name(value: int) -> str:
        try:
            return str(enum.Name(value))
        except ValueError:
            return f"UNKNOWN_{int(value)}"

    return name


_ADMIN = _names(common_pb2.AdminState.Types)
_OPER = _names(common_pb2.OperStatus.Types)
_CONNECT = _names(common_pb2.ConnectStatus.Types)
_PORT_TYPE = _names(device_pb2.Port.PortType)


def _text(value: str) -> str:
    """A protobuf string as PostgreSQL stores it: proto3 strings may hold NUL, text may not
    (the row, and the whole sync with it, would be refused at every tick)."""
    return value.replace("\0", "") if "\0" in value else value


STATE_FIELDS = ("admin_state", "oper_status", "connect_status", "reason")


@dataclass(frozen=True)
class DeviceRow:
    stack: str
    id: str
    kind: str  # "olt" | "onu"
    type: str
    parent_id: str
    pon_port: int  # ONU: the OLT's PON port number it hangs on
    onu_id: int  # ONU: its id on that PON
    serial: str
    vendor: str
    model: str
    firmware: str
    host_and_port: str
    admin_state: str
    oper_status: str
    connect_status: str
    reason: str
    mac_address: str = ""  # an OLT's: SADIS's hardwareIdentifier, ONOS's datapath id

    def state(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in STATE_FIELDS}


@dataclass(frozen=True)
class PortRow:
    stack: str
    device_id: str
    port_no: int
    label: str
    type: str
    admin_state: str
    oper_status: str


@dataclass
class Snapshot:
    devices: dict[str, DeviceRow] = field(default_factory=dict)
    ports: dict[tuple[str, int], PortRow] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    kind: str
    subject: str
    data: dict[str, Any]
    severity: str = "info"


@dataclass
class Diff:
    upsert_devices: list[DeviceRow] = field(default_factory=list)
    delete_devices: list[str] = field(default_factory=list)
    upsert_ports: list[PortRow] = field(default_factory=list)
    delete_ports: list[tuple[str, int]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.upsert_devices
            or self.delete_devices
            or self.upsert_ports
            or self.delete_ports
            or self.events
        )


def device_row(stack: str, d: Any) -> DeviceRow:
    proxy = d.proxy_address
    return DeviceRow(
        stack=stack,
        id=_text(d.id),
        kind="olt" if d.root else "onu",
        type=_text(d.type),
        parent_id=_text(d.parent_id) if not d.root else "",
        pon_port=int(d.parent_port_no) if not d.root else 0,
        onu_id=int(proxy.onu_id) if not d.root else 0,
        serial=_text(d.serial_number),
        vendor=_text(d.vendor),
        model=_text(d.model),
        firmware=_text(d.firmware_version),
        host_and_port=_text(d.host_and_port),
        admin_state=_ADMIN(d.admin_state),
        oper_status=_OPER(d.oper_status),
        connect_status=_CONNECT(d.connect_status),
        reason=_text(d.reason),
        mac_address=_text(d.mac_address),
    )


def port_row(stack: str, device_id: str, p: Any) -> PortRow:
    return PortRow(
        stack=stack,
        device_id=_text(device_id),
        port_no=int(p.port_no),
        label=_text(p.label),
        type=_PORT_TYPE(p.type),
        admin_state=_ADMIN(p.admin_state),
        oper_status=_OPER(p.oper_status),
    )


def snapshot(stack: str, devices: Iterable[Any], ports: Mapping[str, Iterable[Any]]) -> Snapshot:
    snap = Snapshot()
    for d in devices:
        row = device_row(stack, d)
        snap.devices[row.id] = row
        for p in ports.get(d.id, ()):
            prow = port_row(stack, d.id, p)
            snap.ports[(row.id, prow.port_no)] = prow
    return snap


def _about(row: DeviceRow) -> dict[str, Any]:
    out: dict[str, Any] = {"stack": row.stack, "id": row.id, "serial": row.serial}
    if row.kind == "onu":
        out.update(olt_id=row.parent_id, pon_port=row.pon_port, onu_id=row.onu_id)
    else:
        out["host_and_port"] = row.host_and_port
    return out


def diff(old: Snapshot, new: Snapshot) -> Diff:
    out = Diff()
    for dev_id, row in new.devices.items():
        before = old.devices.get(dev_id)
        if before == row:
            continue
        out.upsert_devices.append(row)
        if before is None:
            kind = "voltha.olt.added" if row.kind == "olt" else "voltha.onu.discovered"
            out.events.append(Event(kind, row.serial or row.id, {**_about(row), **row.state()}))
        elif before.state() != row.state():
            changed = {
                f: [getattr(before, f), getattr(row, f)]
                for f in STATE_FIELDS
                if getattr(before, f) != getattr(row, f)
            }
            bad = row.oper_status in ("FAILED", "UNKNOWN") or row.connect_status == "UNREACHABLE"
            out.events.append(
                Event(
                    f"voltha.{row.kind}.state",
                    row.serial or row.id,
                    {**_about(row), **row.state(), "changed": changed},
                    "warning" if bad else "info",
                )
            )
    for dev_id, before in old.devices.items():
        if dev_id not in new.devices:
            out.delete_devices.append(dev_id)
            out.events.append(
                Event(f"voltha.{before.kind}.removed", before.serial or dev_id, _about(before))
            )
    for key, prow in new.ports.items():
        was = old.ports.get(key)
        if was == prow:
            continue
        out.upsert_ports.append(prow)
        if was is not None and (was.admin_state, was.oper_status) != (
            prow.admin_state,
            prow.oper_status,
        ):
            owner = new.devices.get(prow.device_id)
            out.events.append(
                Event(
                    "voltha.port.state",
                    f"{owner.serial if owner else prow.device_id}/{prow.label or prow.port_no}",
                    {**asdict(prow), "was": [was.admin_state, was.oper_status]},
                )
            )
    out.delete_ports = [k for k in old.ports if k not in new.ports]
    return out
