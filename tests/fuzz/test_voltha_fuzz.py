"""Hostile VOLTHA input: the Device and Port messages a VOLTHA core answers, as any bytes.

The inventory reads each message into a row for PostgreSQL. The property: bytes either
parse (protobuf's DecodeError otherwise) and then make rows, never an exception; every
text is storable (no NUL) and every number fits the columns (bigint). Inputs are valid OLT,
ONU and port messages mutated, with enum values this client does not know among them.
"""

from __future__ import annotations

from dataclasses import asdict

from google.protobuf.message import DecodeError
from hypothesis import example, given
from hypothesis import strategies as st
from voltha_protos import device_pb2

from daemons.voltha import inventory
from tests.fuzz.strategies import budget, mutated

OLT = device_pb2.Device(
    id="olt-1",
    type="openolt",
    root=True,
    serial_number="EC1840000192",
    vendor="EdgeCore",
    model="asfvolt16",
    firmware_version="BAL.3.1",
    host_and_port="10.0.0.5:9191",
    admin_state=3,
    oper_status=4,
    connect_status=2,
)
ONU = device_pb2.Device(
    id="onu-1",
    type="brcm_openomci_onu",
    root=False,
    parent_id="olt-1",
    parent_port_no=536870912,
    serial_number="BRCM00000001",
    vendor="BRCM",
    admin_state=3,
    oper_status=4,
    connect_status=2,
    reason="initial-mib-downloaded",
)
ONU.proxy_address.onu_id = 1
PORT = device_pb2.Port(port_no=16, label="nni-1048576", type=1, admin_state=3, oper_status=4)
SEEDS = [OLT.SerializeToString(), ONU.SerializeToString()]
PORT_SEEDS = [PORT.SerializeToString()]


def _check_row(row: object) -> None:
    for value in asdict(row).values():  # type: ignore[call-overload]
        if isinstance(value, str):
            assert "\0" not in value
        elif isinstance(value, int):
            assert -(2**63) <= value < 2**63


def read(device_bytes: bytes, port_bytes: bytes) -> None:
    device, port = device_pb2.Device(), device_pb2.Port()
    try:
        device.ParseFromString(device_bytes)
        port.ParseFromString(port_bytes)
    except DecodeError:
        return
    snap = inventory.snapshot("fuzz", [device], {device.id: [port]})
    for row in [*snap.devices.values(), *snap.ports.values()]:
        _check_row(row)
    inventory.diff(inventory.Snapshot(), snap)
    inventory.diff(snap, inventory.Snapshot())


@budget(400)
@given(mutated(SEEDS, max_ops=4), mutated(PORT_SEEDS, max_ops=2))
@example(SEEDS[1] + b"\x80\x01\x4d", PORT_SEEDS[0])  # admin_state (16) = 77, unknown here
def test_mutated_messages(device: bytes, port: bytes) -> None:
    read(device, port)


@budget(200)
@given(st.binary(max_size=120), st.binary(max_size=40))
def test_random_bytes(device: bytes, port: bytes) -> None:
    read(device, port)


def test_unknown_enum_values_and_nul_are_read() -> None:
    """A state this client's protos do not name (a newer VOLTHA's) raised ValueError out of
    the sync, ending the stack's sync loop for good; a NUL in a string was written to text."""
    onu = device_pb2.Device()
    onu.CopyFrom(ONU)
    onu.serial_number = "BRCM\x0000000001"
    raw = onu.SerializeToString() + b"\x80\x01\x4d"  # field 16 (admin_state), varint 77
    onu.ParseFromString(raw)
    row = inventory.device_row("fuzz", onu)
    assert row.admin_state == "UNKNOWN_77" and row.serial == "BRCM00000001"
