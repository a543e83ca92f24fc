"""Tests of the test fakes themselves: FakeVoltha through a grpc.aio client on the wheel's
stubs, FakeOnos through httpx against a tiny SADIS app served here."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
import uvicorn
from google.protobuf import empty_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from voltha_protos import (
    common_pb2,
    device_pb2,
    extensions_pb2,
    extensions_pb2_grpc,
    voltha_pb2_grpc,
)

from tests.voltha.fake_core import (
    NNI_PORT_BASE,
    ONU_TYPE,
    FakeVoltha,
    pon_port_no,
    uni_port_no,
)
from tests.voltha.fake_onos import FakeOnos

AdminState = common_pb2.AdminState
OperStatus = common_pb2.OperStatus
ConnectStatus = common_pb2.ConnectStatus
ImageState = device_pb2.ImageState
GetValueResponse = extensions_pb2.GetValueResponse
Code = grpc.StatusCode

STEP = 0.05


@pytest.fixture
async def core() -> AsyncIterator[FakeVoltha]:
    fake = FakeVoltha(step_seconds=STEP)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def channel(core: FakeVoltha) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(core.address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> voltha_pb2_grpc.VolthaServiceStub:
    return voltha_pb2_grpc.VolthaServiceStub(channel)


@pytest.fixture
def ext(channel: grpc.aio.Channel) -> extensions_pb2_grpc.ExtensionStub:
    return extensions_pb2_grpc.ExtensionStub(channel)


async def rpc_error(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


async def active_olt(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub, host: str = "10.0.0.5:9191"
) -> str:
    olt = await stub.CreateDevice(device_pb2.Device(type="openolt", host_and_port=host))
    await stub.EnableDevice(common_pb2.ID(id=olt.id))
    await core.wait_for(lambda: core.device(olt.id).oper_status == OperStatus.ACTIVE)
    return str(olt.id)


async def active_onu(core: FakeVoltha, olt_id: str, pon: int, serial: str) -> str:
    onu_id = core.discover_onu(olt_id, pon, serial)
    await core.wait_for(lambda: core.device(onu_id).oper_status == OperStatus.ACTIVE)
    return onu_id


# ------------------------------------------------------------------ FakeVoltha


async def test_create_enable_and_voltha_errors(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt = await stub.CreateDevice(
        device_pb2.Device(type="openolt", host_and_port="10.0.0.5:9191"), timeout=5
    )
    uuid.UUID(olt.id)
    assert (olt.root, olt.admin_state, olt.oper_status, olt.connect_status) == (
        True,
        AdminState.PREPROVISIONED,
        OperStatus.UNKNOWN,
        ConnectStatus.UNKNOWN,
    )
    assert core.calls[-1][0] == "CreateDevice"
    assert core.calls[-1][1].host_and_port == "10.0.0.5:9191"

    dup = device_pb2.Device(type="openolt", host_and_port="10.0.0.5:9191")
    assert await rpc_error(stub.CreateDevice(dup)) == (
        Code.UNKNOWN,
        "device is already pre-provisioned",
    )
    assert await rpc_error(stub.CreateDevice(device_pb2.Device(type="openolt"))) == (
        Code.UNKNOWN,
        "no-device-info-present; MAC or HOSTIP&PORT",
    )
    assert await rpc_error(stub.GetDevice(common_pb2.ID(id="nope"))) == (Code.NOT_FOUND, "nope")
    assert await rpc_error(stub.EnableDevice(common_pb2.ID(id="nope"))) == (
        Code.NOT_FOUND,
        "nope",
    )
    assert await rpc_error(stub.ListDevicePorts(common_pb2.ID(id="nope"))) == (
        Code.NOT_FOUND,
        "device-nope",
    )
    assert await rpc_error(stub.DisableDevice(common_pb2.ID(id=olt.id))) == (
        Code.FAILED_PRECONDITION,
        f"deviceId:{olt.id}, invalid-admin-state:PREPROVISIONED",
    )

    await stub.EnableDevice(common_pb2.ID(id=olt.id))
    got = await stub.GetDevice(common_pb2.ID(id=olt.id))
    assert (got.admin_state, got.oper_status) == (AdminState.ENABLED, OperStatus.ACTIVATING)
    await core.wait_for(lambda: core.device(olt.id).oper_status == OperStatus.ACTIVE)
    got = await stub.GetDevice(common_pb2.ID(id=olt.id))
    assert got.connect_status == ConnectStatus.REACHABLE
    assert got.mac_address == "00:00:0a:00:00:05"
    assert core.onos_device_id(olt.id) == "of:000000000a000005"
    ports = (await stub.ListDevicePorts(common_pb2.ID(id=olt.id))).items
    assert [(p.type, p.port_no, p.label) for p in ports] == [
        (device_pb2.Port.ETHERNET_NNI, NNI_PORT_BASE, "nni-0"),
        *[(device_pb2.Port.PON_OLT, pon_port_no(i), f"pon-{i}") for i in range(4)],
    ]
    assert all(p.oper_status == OperStatus.ACTIVE for p in ports)
    assert await rpc_error(stub.EnableDevice(common_pb2.ID(id=olt.id))) == (
        Code.FAILED_PRECONDITION,
        f"cannot-enable-an-already-enabled-device: {olt.id}",
    )

    core.set_pon_port_count("10.0.0.6:9191", 2)
    small = await stub.CreateDevice(
        device_pb2.Device(type="openolt", host_and_port="10.0.0.6:9191")
    )
    await stub.EnableDevice(common_pb2.ID(id=small.id))
    await core.wait_for(lambda: core.device(small.id).oper_status == OperStatus.ACTIVE)
    assert len(core.ports(small.id)) == 3

    odd = await stub.CreateDevice(device_pb2.Device(type="adtran_olt", host_and_port="h:1"))
    assert await rpc_error(stub.EnableDevice(common_pb2.ID(id=odd.id))) == (
        Code.UNKNOWN,
        "adapter-not-registered-for-device-type adtran_olt",
    )
    code, details = await rpc_error(stub.ListAdapters(empty_pb2.Empty()))
    assert (code, details) == (Code.UNIMPLEMENTED, "method ListAdapters not implemented")

    listed = await stub.ListDevices(empty_pb2.Empty())
    assert {d.id for d in listed.items} == {olt.id, small.id, odd.id}
    await stub.DeleteDevice(common_pb2.ID(id=odd.id))
    assert await rpc_error(stub.GetDevice(common_pb2.ID(id=odd.id))) == (Code.NOT_FOUND, odd.id)


async def test_onu_discovery_steps_to_active(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt_id = await active_olt(core, stub)
    onu_id = core.discover_onu(olt_id, 1, "BBSM00000001")
    seen: list[int] = []

    def record() -> bool:
        oper = core.device(onu_id).oper_status
        if not seen or seen[-1] != oper:
            seen.append(oper)
        return bool(oper == OperStatus.ACTIVE)

    await core.wait_for(record, timeout=5)
    assert seen == [OperStatus.DISCOVERED, OperStatus.ACTIVATING, OperStatus.ACTIVE]

    onu = await stub.GetDevice(common_pb2.ID(id=onu_id))
    uuid.UUID(onu.id)
    assert (onu.type, onu.root, onu.parent_id, onu.parent_port_no) == (
        ONU_TYPE,
        False,
        olt_id,
        pon_port_no(1),
    )
    assert (onu.serial_number, onu.vendor_id) == ("BBSM00000001", "BBSM")
    assert (onu.proxy_address.device_id, onu.proxy_address.channel_id) == (olt_id, 1)
    assert onu.proxy_address.onu_id == 1
    assert (onu.admin_state, onu.connect_status, onu.reason) == (
        AdminState.ENABLED,
        ConnectStatus.REACHABLE,
        "initial-mib-downloaded",
    )
    ports = {p.type: p for p in (await stub.ListDevicePorts(common_pb2.ID(id=onu_id))).items}
    assert ports[device_pb2.Port.PON_ONU].port_no == pon_port_no(1)
    uni = ports[device_pb2.Port.ETHERNET_UNI]
    assert uni.port_no == uni_port_no(1, 1, 0)
    assert (uni.ofp_port.name, uni.oper_status) == ("BBSM00000001-1", OperStatus.ACTIVE)

    second = core.discover_onu(olt_id, pon_port_no(1), "BBSM00000002")
    assert core.device(second).proxy_address.onu_id == 2
    assert core.discover_onu(olt_id, 1, "BBSM00000001") == onu_id
    with pytest.raises(ValueError, match="no PON port"):
        core.discover_onu(olt_id, 9, "BBSM00000009")

    core.lose_onu(onu_id)
    assert core.device(onu_id).connect_status == ConnectStatus.UNREACHABLE
    assert core.discover_onu(olt_id, 1, "BBSM00000001") == onu_id
    await core.wait_for(lambda: core.device(onu_id).oper_status == OperStatus.ACTIVE)

    await stub.DisableDevice(common_pb2.ID(id=onu_id))
    assert (core.device(onu_id).oper_status, core.device(onu_id).reason) == (
        OperStatus.UNKNOWN,
        "omci-admin-lock",
    )
    await stub.EnableDevice(common_pb2.ID(id=onu_id))
    await core.wait_for(lambda: core.device(onu_id).oper_status == OperStatus.ACTIVE)
    assert core.device(onu_id).reason == "onu-reenabled"


async def test_onu_found_while_the_olt_activates_waits_for_it(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt = await stub.CreateDevice(device_pb2.Device(type="openolt", host_and_port="10.0.0.9:1"))
    with pytest.raises(ValueError, match="not enabled"):
        core.discover_onu(olt.id, 0, "BBSM00000001")
    await stub.EnableDevice(common_pb2.ID(id=olt.id))
    onu_id = core.discover_onu(olt.id, 0, "BBSM00000001")
    assert core.device(olt.id).oper_status == OperStatus.ACTIVATING
    await core.wait_for(lambda: core.device(onu_id).oper_status == OperStatus.ACTIVE)
    assert core.device(olt.id).oper_status == OperStatus.ACTIVE


async def test_olt_disable_reenable_and_reboot(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt_id = await active_olt(core, stub)
    onu_id = await active_onu(core, olt_id, 0, "ALPH00000001")

    await stub.DisableDevice(common_pb2.ID(id=olt_id))
    await stub.DisableDevice(common_pb2.ID(id=olt_id))  # already disabled: a no-op
    onu = core.device(onu_id)
    assert (onu.connect_status, onu.oper_status) == (
        ConnectStatus.UNREACHABLE,
        OperStatus.DISCOVERED,
    )
    await stub.EnableDevice(common_pb2.ID(id=olt_id))
    await core.wait_for(lambda: core.device(onu_id).oper_status == OperStatus.ACTIVE)

    await stub.RebootDevice(common_pb2.ID(id=olt_id))
    assert core.device(olt_id).connect_status == ConnectStatus.UNREACHABLE
    assert await rpc_error(stub.RebootDevice(common_pb2.ID(id=olt_id))) == (
        Code.FAILED_PRECONDITION,
        f"cannot complete operation as device :{olt_id} is in operstatus:UNKNOWN"
        " ,connect-status:UNREACHABLE",
    )
    # rw_core deletes the children of a rebooted OLT; the ONU is discovered again.
    await core.wait_for(lambda: onu_id not in {d.id for d in core.devices()})

    def back() -> bool:
        again = core.find_onu("ALPH00000001", olt_id)
        return again is not None and again.oper_status == OperStatus.ACTIVE

    await core.wait_for(back)
    again = core.find_onu("ALPH00000001", olt_id)
    assert again is not None
    assert again.id != onu_id
    assert again.proxy_address.onu_id == 1

    await stub.DeleteDevice(common_pb2.ID(id=olt_id))
    assert core.devices() == []


async def test_disabled_serial_sets_the_admin_state_only(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt_id = await active_olt(core, stub)
    onu_id = await active_onu(core, olt_id, 2, "BBSM000000AA")
    pon = device_pb2.Port(port_no=pon_port_no(2))

    def req(serial: str = "BBSM000000AA", olt: str = olt_id) -> device_pb2.OnuSerialNumberOnOLTPon:
        return device_pb2.OnuSerialNumberOnOLTPon(
            olt_device_id=common_pb2.ID(id=olt), port=pon, serial_number=serial
        )

    await stub.DisableOnuSerialNumber(req())
    onu = core.device(onu_id)
    # voltha-go agent.go disableOnuSerialNumber: the admin state, nothing else.
    assert (onu.admin_state, onu.oper_status, onu.reason) == (
        AdminState.DISABLED,
        OperStatus.ACTIVE,
        "initial-mib-downloaded",
    )
    assert await rpc_error(stub.DisableOnuSerialNumber(req())) == (
        Code.FAILED_PRECONDITION,
        f"device-already-disabled: {onu_id}",
    )
    assert await rpc_error(stub.DisableOnuSerialNumber(req(serial="XXXX00000000"))) == (
        Code.NOT_FOUND,
        "onu-device-id-not-found-for-serial-number-XXXX00000000",
    )
    assert await rpc_error(stub.DisableOnuSerialNumber(req(olt="nope"))) == (
        Code.NOT_FOUND,
        'id:"nope"',
    )
    # Serials are compared as given (manager.go GetOnuDeviceIdBySerial).
    assert await rpc_error(stub.EnableOnuSerialNumber(req(serial="bbsm000000aa"))) == (
        Code.NOT_FOUND,
        "onu-device-id-not-found-for-serial-number-bbsm000000aa",
    )

    # The ONU device goes and the ONU is found again: a new device, enabled like any other
    # (ChildDeviceDetected enables what it creates), though the OLT keeps the serial.
    await stub.DeleteDevice(common_pb2.ID(id=onu_id))
    assert await rpc_error(stub.EnableOnuSerialNumber(req())) == (
        Code.NOT_FOUND,
        "onu-device-id-not-found-for-serial-number-BBSM000000AA",
    )
    again = core.discover_onu(olt_id, 2, "BBSM000000AA")
    assert core.device(again).admin_state == AdminState.ENABLED
    await core.wait_for(lambda: core.device(again).oper_status == OperStatus.ACTIVE)
    assert core.disabled_serials(olt_id) == {"BBSM000000AA"}
    assert await rpc_error(stub.EnableOnuSerialNumber(req())) == (
        Code.FAILED_PRECONDITION,
        f"device-already-enabled: {again}",
    )
    await stub.DisableOnuSerialNumber(req())
    await stub.EnableOnuSerialNumber(req())
    assert core.device(again).admin_state == AdminState.ENABLED
    assert core.disabled_serials(olt_id) == set()


async def test_get_ext_value(
    core: FakeVoltha,
    stub: voltha_pb2_grpc.VolthaServiceStub,
    ext: extensions_pb2_grpc.ExtensionStub,
) -> None:
    olt_id = await active_olt(core, stub)
    onu_id = await active_onu(core, olt_id, 0, "BBSM00000001")
    other = await active_onu(core, olt_id, 0, "BBSM00000002")
    core.set_onu_optics(onu_id, rx_dbm=-21.5, tx_dbm=2.25, temperature_c=45.0)
    core.set_olt_rx_power(olt_id, "BBSM00000001", -23.5)
    core.set_olt_rx_power(olt_id, other, -19.0)
    core.set_pon_stats(olt_id, 0, rx_bytes=1000, tx_bytes=2000, bip_errors=3)
    core.set_onu_pon_counters(onu_id, bip_errors=7, rx_packets=11)

    def get(target: str, **request: Any) -> Any:
        return ext.GetExtValue(
            extensions_pb2.SingleGetValueRequest(
                targetId=target, request=extensions_pb2.GetValueRequest(**request)
            )
        )

    optical = extensions_pb2.GetOnuPonOpticalInfo()
    r = (await get(onu_id, onuOpticalInfo=optical)).response
    assert r.status == GetValueResponse.OK
    info = r.onuOpticalInfo
    assert (info.receivedOpticalPower, info.meanOpticalLaunchPower, info.temperature) == (
        -21.5,
        2.25,
        45.0,
    )
    assert core.calls[-1][0] == "Extension/GetExtValue"

    r = (
        await get(olt_id, oltRxPower=extensions_pb2.GetOltRxPowerRequest(port_label="pon-0"))
    ).response
    assert {x.onu_sn: x.rx_power for x in r.oltRxPower.rx_power} == {
        "BBSM00000001": -23.5,
        "BBSM00000002": -19.0,
    }
    one = extensions_pb2.GetOltRxPowerRequest(port_label="pon-0", onu_sn="BBSM00000002")
    r = (await get(olt_id, oltRxPower=one)).response
    assert [(x.onu_sn, x.status, x.rx_power) for x in r.oltRxPower.rx_power] == [
        ("BBSM00000002", "success", -19.0)
    ]
    r = (
        await get(olt_id, oltPonStats=extensions_pb2.GetPonStatsRequest(portLabel="pon-0"))
    ).response
    stats = r.oltPonStatsResponse
    assert (stats.ponPort, stats.portStatistics.rx_bytes, stats.portStatistics.bip_errors) == (
        0,
        1000,
        3,
    )
    counters_req = extensions_pb2.GetOnuCountersRequest(intf_id=0, onu_id=1)
    r = (await get(olt_id, onuPonInfo=counters_req)).response
    assert (r.onuPonCounters.bip_errors, r.onuPonCounters.rx_packets) == (7, 11)

    bad = extensions_pb2.GetPonStatsRequest(portLabel="nni-0")
    r = (await get(olt_id, oltPonStats=bad)).response
    assert (r.status, r.errReason) == (GetValueResponse.ERROR, GetValueResponse.INVALID_PORT_TYPE)
    r = (await get(onu_id, oltPonStats=bad)).response
    assert (r.status, r.errReason) == (GetValueResponse.ERROR, GetValueResponse.UNSUPPORTED)
    missing = extensions_pb2.GetOnuCountersRequest(intf_id=0, onu_id=9)
    r = (await get(olt_id, onuPonInfo=missing)).response
    assert (r.status, r.errReason) == (GetValueResponse.ERROR, GetValueResponse.INVALID_DEVICE)
    assert await rpc_error(get("nope", onuOpticalInfo=optical)) == (
        Code.NOT_FOUND,
        "target-id nope",
    )

    legacy = extensions_pb2.ValueSpecifier(id="nope", value=extensions_pb2.ValueType.DISTANCE)
    assert await rpc_error(stub.GetExtValue(legacy)) == (
        Code.ABORTED,
        "rpc error: code = NotFound desc = nope",
    )


async def test_image_download_failing_and_committed(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt_id = await active_olt(core, stub)
    good = await active_onu(core, olt_id, 0, "BBSM00000001")
    bad = await active_onu(core, olt_id, 0, "BBSM00000002")
    core.fail_image_download(bad)
    image = device_pb2.Image(version="v2.0", url="http://images/onu-v2.0.bin")
    answer = await stub.DownloadImageToDevice(
        device_pb2.DeviceImageDownloadRequest(
            device_id=[common_pb2.ID(id=good), common_pb2.ID(id=bad), common_pb2.ID(id=olt_id)],
            image=image,
        )
    )
    by_id = {s.device_id: s.imageState for s in answer.device_image_states}
    assert by_id[good].download_state == ImageState.DOWNLOAD_STARTED
    assert by_id[bad].download_state == ImageState.DOWNLOAD_STARTED
    assert (by_id[olt_id].download_state, by_id[olt_id].reason) == (
        ImageState.DOWNLOAD_FAILED,
        ImageState.UNKNOWN_ERROR,
    )

    async def status(device_id: str) -> device_pb2.ImageState:
        r = await stub.GetImageStatus(
            device_pb2.DeviceImageRequest(device_id=[common_pb2.ID(id=device_id)], version="v2.0")
        )
        return r.device_image_states[0].imageState

    def state(device_id: str) -> device_pb2.ImageState:
        s = core.image_state(device_id, "v2.0")
        assert s is not None
        return s

    await core.wait_for(lambda: state(bad).download_state == ImageState.DOWNLOAD_FAILED)
    s = await status(bad)
    assert (s.reason, s.image_state) == (
        ImageState.OMCI_TRANSFER_ERROR,
        ImageState.IMAGE_DOWNLOADING_ABORTED,
    )

    await core.wait_for(lambda: state(good).download_state == ImageState.DOWNLOAD_SUCCEEDED)
    assert (await status(good)).image_state == ImageState.IMAGE_INACTIVE
    request = device_pb2.DeviceImageRequest(device_id=[common_pb2.ID(id=good)], version="v2.0")
    activated = await stub.ActivateImage(request)
    assert activated.device_image_states[0].imageState.image_state == ImageState.IMAGE_ACTIVATING
    await core.wait_for(lambda: state(good).image_state == ImageState.IMAGE_ACTIVE)
    committed = await stub.CommitImage(request)
    assert committed.device_image_states[0].imageState.image_state == ImageState.IMAGE_COMMITTING
    await core.wait_for(lambda: state(good).image_state == ImageState.IMAGE_COMMITTED)
    assert core.device(good).firmware_version == "v2.0"

    never = device_pb2.DeviceImageRequest(device_id=[common_pb2.ID(id=bad)], version="v2.0")
    aborted = (await stub.CommitImage(never)).device_image_states[0].imageState
    assert aborted.image_state == ImageState.IMAGE_COMMIT_ABORTED
    unknown = (await status("nope")).download_state
    assert unknown == ImageState.DOWNLOAD_UNKNOWN
    assert await rpc_error(
        stub.DownloadImageToDevice(device_pb2.DeviceImageDownloadRequest(image=image))
    ) == (Code.INVALID_ARGUMENT, "invalid argument")


async def test_stop_and_restart_keep_state(core: FakeVoltha) -> None:
    async with grpc.aio.insecure_channel(core.address) as ch:
        stub = voltha_pb2_grpc.VolthaServiceStub(ch)
        olt_id = await active_olt(core, stub)
    onu_id = core.discover_onu(olt_id, 0, "BBSM00000001")
    port = core.port

    await core.stop()
    async with grpc.aio.insecure_channel(core.address) as ch:
        stub = voltha_pb2_grpc.VolthaServiceStub(ch)
        code, _ = await rpc_error(stub.GetDevice(common_pb2.ID(id=olt_id), timeout=1))
        assert code == Code.UNAVAILABLE
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert core.device(onu_id).oper_status == OperStatus.DISCOVERED  # no steps while down

    await core.restart()
    assert core.port == port
    # A channel of its own subchannels: gRPC shares them across a process's channels, and
    # the one the refused call above left in its reconnect backoff fails a new call at
    # once, without trying the restarted server (seen as a flaky "connection refused").
    local = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(core.address, options=local) as ch:
        stub = voltha_pb2_grpc.VolthaServiceStub(ch)
        got = await stub.GetDevice(common_pb2.ID(id=olt_id), timeout=5, wait_for_ready=True)
        assert got.oper_status == OperStatus.ACTIVE
        await core.wait_for(lambda: core.device(onu_id).oper_status == OperStatus.ACTIVE)
        await core.restart()  # restart of a running core
        # The channel saw its connection go: wait for it to reconnect rather than fail fast.
        again = await stub.GetDevice(common_pb2.ID(id=onu_id), timeout=5, wait_for_ready=True)
        assert again.id == onu_id


async def test_hang_hits_the_client_deadline(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    core.hang = True
    code, _ = await rpc_error(stub.ListDevices(empty_pb2.Empty(), timeout=0.3))
    assert code == Code.DEADLINE_EXCEEDED
    assert core.calls[-1][0] == "ListDevices"
    core.hang = False
    assert (await stub.ListDevices(empty_pb2.Empty(), timeout=5)).items == []


# ------------------------------------------------------------------ FakeOnos


class Sadis:
    """A tiny SADIS HTTP source: subscribers and bandwidth profiles from dicts."""

    def __init__(self) -> None:
        self.subscribers: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.port = 0

        async def subscriber(request: Request) -> Response:
            found = self.subscribers.get(request.path_params["id"])
            return JSONResponse(found) if found else Response(status_code=404)

        async def profile(request: Request) -> Response:
            found = self.profiles.get(request.path_params["id"])
            return JSONResponse(found) if found else Response(status_code=404)

        app = Starlette(
            routes=[
                Route("/subscribers/{id}", subscriber),
                Route("/bandwidthprofiles/{id}", profile),
            ]
        )
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        config.load()
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)
        self._sock = socket.socket()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        await self._server.startup(sockets=[self._sock])

    async def stop(self) -> None:
        self._server.should_exit = True
        await self._server.shutdown()
        self._sock.close()


def subscriber(port_name: str, *tags: tuple[int, int, int, str, str]) -> dict[str, Any]:
    return {
        "id": port_name,
        "nasPortId": port_name,
        "circuitId": f"{port_name}-circuit",
        "remoteId": f"{port_name}-remote",
        "uniTagList": [
            {
                "ponSTag": s,
                "ponCTag": c,
                "technologyProfileId": tp,
                "upstreamBandwidthProfile": up,
                "downstreamBandwidthProfile": down,
                "isDhcpRequired": True,
                "serviceName": "hsia",
            }
            for s, c, tp, up, down in tags
        ],
    }


@pytest.fixture
async def sadis() -> AsyncIterator[Sadis]:
    server = Sadis()
    server.profiles["User_Bandwidth1"] = {
        "id": "User_Bandwidth1",
        "cir": 50000,
        "cbs": 10000,
        "eir": 100000,
        "ebs": 10000,
        "air": 0,
        "gir": 0,
    }
    server.profiles["Default"] = {"id": "Default", "cir": 1000000, "cbs": 10000, "eir": 0}
    # The OLT's own entry: the olt app takes the NNI from its uplinkPort.
    server.subscribers["FAKEOLT1"] = {
        "id": "FAKEOLT1",
        "uplinkPort": 16777216,
        "hardwareIdentifier": "00:00:0a:00:00:01",
        "ipAddress": "10.0.0.1",
        "nasId": "FAKEOLT1",
    }
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def onos(sadis: Sadis) -> AsyncIterator[FakeOnos]:
    fake = FakeOnos(sadis.url)
    fake.add_device("of:0000000000000001", "FAKEOLT1")
    fake.add_port("of:0000000000000001", 256, "BBSM00000001-1")
    fake.add_port("of:0000000000000001", 16777216, "nni-16777216")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http(onos: FakeOnos) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=onos.base_url + "/onos/olt/oltapp", auth=("onos", "rocks"), timeout=5
    ) as client:
        yield client


async def test_onos_auth_and_injected_failures(onos: FakeOnos, http: httpx.AsyncClient) -> None:
    assert (await http.get("/status")).status_code == 200
    async with httpx.AsyncClient(base_url=onos.base_url, timeout=5) as anon:
        r = await anon.get("/onos/olt/oltapp/status")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Basic")
        r = await anon.get("/onos/olt/oltapp/status", auth=("onos", "wrong"))
        assert r.status_code == 401
    onos.fail_next = 2
    assert (await http.get("/status")).status_code == 500
    assert (await http.post("/services/BBSM00000001-1/900/100/64")).status_code == 500
    assert (await http.get("/status")).status_code == 200
    assert ("GET", "/onos/olt/oltapp/status") in onos.requests


async def test_onos_service_by_tags(sadis: Sadis, onos: FakeOnos, http: httpx.AsyncClient) -> None:
    name = "BBSM00000001-1"
    sadis.subscribers[name] = subscriber(
        name, (900, 100, 64, "User_Bandwidth1", "Default"), (900, 101, 65, "Gone", "Default")
    )
    r = await http.post(f"/services/{name}/900/100/64")
    assert r.status_code == 200
    service = onos.services[(name, 900, 100, 64)]
    assert service.location == "of:0000000000000001/256"
    assert service.subscriber["circuitId"] == f"{name}-circuit"
    assert service.uni_tag["isDhcpRequired"] is True
    assert service.uni_tag["upstreamOltBandwidthProfile"] == "User_Bandwidth1"
    assert service.bandwidth_profiles["User_Bandwidth1"]["cir"] == 50000
    assert set(service.bandwidth_profiles) == {"User_Bandwidth1", "Default"}
    assert (await http.post(f"/services/{name}/900/100/64")).status_code == 204

    listed = (await http.get("/programmed-subscribers/of:0000000000000001")).json()
    assert [e["location"] for e in listed["entries"]] == ["of:0000000000000001/256"]
    assert listed["entries"][0]["tagInfo"]["ponCTag"] == 100

    # A missing bandwidth profile is found after the request was accepted.
    assert (await http.post(f"/services/{name}/900/101/65")).status_code == 200
    assert (name, 900, 101, 65) not in onos.services
    assert onos.failed[-1][1] == "BandwidthProfile Gone information not found in sadis"

    assert (await http.post(f"/services/{name}/900/999/64")).status_code == 204
    r = await http.post("/services/NOPE00000000-1/900/100/64")
    assert (r.status_code, r.text) == (500, "ConnectPoint not found for NOPE00000000-1")
    r = await http.post(f"/services/{name}/5000/100/64")
    assert r.status_code == 400
    assert "4095" in r.json()["message"]
    assert (await http.post("/services/nni-16777216/900/100/64")).status_code == 204

    assert (await http.delete(f"/services/{name}/900/100/64")).status_code == 200
    assert (name, 900, 100, 64) not in onos.services
    assert (await http.delete(f"/services/{name}/900/100/64")).status_code == 204


async def test_onos_whole_subscriber(sadis: Sadis, onos: FakeOnos, http: httpx.AsyncClient) -> None:
    name = "BBSM00000001-1"
    r = await http.post("/of:0000000000000001/256")
    assert r.status_code == 200  # the olt app only queues it; SADIS has no such subscriber
    assert onos.failed[-1] == (
        "of:0000000000000001/256",
        "Subscriber information not found in sadis for port of:0000000000000001/256",
    )
    sadis.subscribers[name] = subscriber(
        name, (900, 100, 64, "User_Bandwidth1", "Default"), (900, 200, 64, "Default", "Default")
    )
    assert (await http.post("/of:0000000000000001/256")).status_code == 200
    assert set(onos.services) == {(name, 900, 100, 64), (name, 900, 200, 64)}
    assert (await http.post("/of:0000000000000001/abc")).status_code == 404
    assert (await http.delete("/of:0000000000000001/256")).status_code == 204
    assert onos.services == {}
    assert (await http.post(f"/services/{name}")).status_code == 200
    assert len(onos.services) == 2
    assert (await http.delete(f"/services/{name}")).status_code == 200
    assert onos.services == {}


async def test_onos_sees_fake_voltha_ports(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub, sadis: Sadis
) -> None:
    olt_id = await active_olt(core, stub, host="10.0.0.7:9191")
    await active_onu(core, olt_id, 0, "BBSM00000007")
    name = "BBSM00000007-1"
    sadis.subscribers[name] = subscriber(name, (900, 100, 64, "User_Bandwidth1", "Default"))
    olt = core.device(olt_id)
    sadis.subscribers[olt.serial_number] = {
        "id": olt.serial_number,
        "uplinkPort": NNI_PORT_BASE,
        "hardwareIdentifier": olt.mac_address,
    }
    async with (
        FakeOnos(sadis.url, voltha=core) as onos,
        httpx.AsyncClient(auth=("onos", "rocks"), timeout=5) as http,
    ):
        r = await http.post(f"{onos.base_url}/onos/olt/oltapp/services/{name}/900/100/64")
        assert r.status_code == 200
    service = onos.services[(name, 900, 100, 64)]
    assert service.device_id == core.onos_device_id(olt_id) == "of:000000000a000007"
    assert service.port_no == uni_port_no(0, 1, 0)
