"""The real behaviours the fakes were taught (issue 25), checked on the fakes themselves:
ONUs discovered reachable and their reasons up to ``omci-flows-pushed``, an OLT reboot
(REBOOTED, ONU devices deleted one at a time, found again as new devices with new ONU ids),
image downloads refused in DownloadImageToDevice's own answer, an ONU rebooting while it
activates an image, the openolt adapter killed by a port label with no "-", grpc-go's
keepalive enforcement, and ONOS's olt app following devices and matching services whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import empty_pb2
from voltha_protos import (
    common_pb2,
    device_pb2,
    extensions_pb2,
    extensions_pb2_grpc,
    voltha_pb2_grpc,
)

from tests.voltha.fake_core import NNI_PORT_BASE, FakeVoltha, pon_port_no, uni_port_no
from tests.voltha.fake_onos import FakeOnos
from tests.voltha.test_fakes import STEP, Sadis, active_olt, active_onu, rpc_error, subscriber

AdminState = common_pb2.AdminState
OperStatus = common_pb2.OperStatus
ConnectStatus = common_pb2.ConnectStatus
ImageState = device_pb2.ImageState
Code = grpc.StatusCode


@pytest.fixture
async def core() -> AsyncIterator[FakeVoltha]:
    fake = FakeVoltha(step_seconds=STEP)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def stub(core: FakeVoltha) -> AsyncIterator[voltha_pb2_grpc.VolthaServiceStub]:
    async with grpc.aio.insecure_channel(core.address) as ch:
        yield voltha_pb2_grpc.VolthaServiceStub(ch)


@pytest.fixture
async def sadis() -> AsyncIterator[Sadis]:
    server = Sadis()
    server.profiles["Prof"] = {"id": "Prof", "cir": 50000, "cbs": 500}
    await server.start()
    yield server
    await server.stop()


def olt_entry(core: FakeVoltha, olt_id: str) -> dict[str, Any]:
    olt = core.device(olt_id)
    return {"id": olt.serial_number, "uplinkPort": NNI_PORT_BASE, "nasId": olt.serial_number}


async def test_onu_found_reachable_and_its_reasons_up_to_flows_pushed(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt_id = await active_olt(core, stub)
    onu_id = core.discover_onu(olt_id, 0, "BBSM00000001")
    first = core.device(onu_id)
    # openolt onuDiscIndication: "onu-discovered-reachable".
    assert (first.admin_state, first.oper_status, first.connect_status, first.reason) == (
        AdminState.ENABLED,
        OperStatus.DISCOVERED,
        ConnectStatus.REACHABLE,
        "activating-onu",
    )
    reasons: list[str] = []

    def record(final: str) -> bool:
        reason = core.device(onu_id).reason
        if not reasons or reasons[-1] != reason:
            reasons.append(reason)
        return reason == final

    await core.wait_for(lambda: record("initial-mib-downloaded"))
    core.flows_changed(onu_id, pushed=True)
    await core.wait_for(lambda: record("omci-flows-pushed"))
    core.flows_changed(onu_id, pushed=False)
    await core.wait_for(lambda: record("tech-profile-config-delete-success"))
    assert reasons == [
        "activating-onu",
        "starting-openomci",
        "discovery-mibsync-complete",
        "initial-mib-downloaded",
        "tech-profile-config-download-success",
        "omci-flows-pushed",
        "omci-flows-deleted",
        "tech-profile-config-delete-success",
    ]


async def test_olt_reboot_rebooted_then_onus_deleted_one_at_a_time_and_found_anew(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt_id = await active_olt(core, stub)
    serials = ["BBSM00000001", "BBSM00000002", "BBSM00000003"]
    old = {s: await active_onu(core, olt_id, 0, s) for s in serials}
    assert [core.device(old[s]).proxy_address.onu_id for s in serials] == [1, 2, 3]
    generation = core.logical_device(olt_id)
    await stub.RebootDevice(common_pb2.ID(id=olt_id))
    await core.wait_for(lambda: core.device(olt_id).oper_status == OperStatus.REBOOTED)
    assert core.device(olt_id).connect_status == ConnectStatus.REACHABLE
    assert core.logical_device(olt_id) == generation + 1
    # One at a time: a moment with some ONU devices gone and some still there, when
    # ListDevicePorts of one listed a moment ago answers NOT_FOUND.
    await core.wait_for(lambda: 0 < len(core.onus(olt_id)) < len(serials))
    gone = next(i for i in old.values() if i not in {d.id for d in core.devices()})
    assert await rpc_error(stub.ListDevicePorts(common_pb2.ID(id=gone))) == (
        Code.NOT_FOUND,
        f"device-{gone}",
    )

    def back() -> bool:
        found = [core.find_onu(s, olt_id) for s in serials]
        return all(d is not None and d.oper_status == OperStatus.ACTIVE for d in found)

    await core.wait_for(back, timeout=10)
    assert core.device(olt_id).oper_status == OperStatus.ACTIVE
    new = {s: core.find_onu(s, olt_id) for s in serials}
    assert all(d is not None and d.id != old[s] for s, d in new.items())
    # Found in the reverse order: new ONU ids, so new UNI port numbers.
    ids = [d.proxy_address.onu_id for d in new.values() if d is not None]
    assert ids == [3, 2, 1]
    unis = {
        s: [p.port_no for p in core.ports(d.id) if p.type == device_pb2.Port.ETHERNET_UNI]
        for s, d in new.items()
        if d is not None
    }
    assert unis["BBSM00000001"] == [uni_port_no(0, 3, 0)]


async def test_image_refusals_at_once_and_the_onu_reboots_while_activating(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt_id = await active_olt(core, stub)
    onu = await active_onu(core, olt_id, 0, "BBSM00000001")

    async def download(url: str) -> device_pb2.ImageState:
        answer = await stub.DownloadImageToDevice(
            device_pb2.DeviceImageDownloadRequest(
                device_id=[common_pb2.ID(id=onu)],
                image=device_pb2.Image(version="v9", url=url),
            )
        )
        return answer.device_image_states[0].imageState

    https = await download("https://files/onu.bin")
    assert (https.download_state, https.reason) == (
        ImageState.DOWNLOAD_FAILED,
        ImageState.UNKNOWN_ERROR,
    )
    tftp = await download("tftp://files/onu.bin")
    assert (tftp.download_state, tftp.reason) == (
        ImageState.DOWNLOAD_FAILED,
        ImageState.INVALID_URL,
    )
    assert (await download("http://files/onu.bin")).download_state == ImageState.DOWNLOAD_STARTED
    await core.wait_for(
        lambda: core.image_state(onu, "v9").download_state == ImageState.DOWNLOAD_SUCCEEDED  # type: ignore[union-attr]
    )
    request = device_pb2.DeviceImageRequest(device_id=[common_pb2.ID(id=onu)], version="v9")
    await stub.ActivateImage(request)
    seen: list[tuple[int, int, int]] = []
    reasons: set[str] = set()
    for _ in range(200):
        s = (await stub.GetImageStatus(request)).device_image_states[0].imageState
        seen.append((s.download_state, s.reason, s.image_state))
        reasons.add(core.device(onu).reason)
        if s.image_state == ImageState.IMAGE_ACTIVE:
            break
        await asyncio.sleep(STEP / 5)
    assert seen[-1][2] == ImageState.IMAGE_ACTIVE
    # rw_core's answer while the adapter is busy with the rebooting ONU.
    assert (
        ImageState.DOWNLOAD_UNKNOWN,
        ImageState.UNKNOWN_ERROR,
        ImageState.IMAGE_UNKNOWN,
    ) in seen
    assert {"rebooting", "stopping-openomci", "starting-openomci"} <= reasons
    assert core.device(onu).firmware_version == "v9"
    assert core.device(onu).oper_status == OperStatus.ACTIVE


async def test_a_port_label_without_a_dash_kills_openolt(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub
) -> None:
    olt_id = await active_olt(core, stub)
    await active_onu(core, olt_id, 0, "BBSM00000001")
    async with grpc.aio.insecure_channel(core.address) as ch:
        ext = extensions_pb2_grpc.ExtensionStub(ch)

        def ask(label: str) -> Any:
            return ext.GetExtValue(
                extensions_pb2.SingleGetValueRequest(
                    targetId=olt_id,
                    request=extensions_pb2.GetValueRequest(
                        oltRxPower=extensions_pb2.GetOltRxPowerRequest(
                            port_label=label, onu_sn="BBSM00000001"
                        )
                    ),
                )
            )

        ok = await ask("pon-0")
        assert ok.response.status == extensions_pb2.GetValueResponse.OK
        assert core.adapter_crashes == 0
        assert (await rpc_error(ask("")))[0] == Code.UNAVAILABLE
        assert (await rpc_error(ask("pon0")))[0] == Code.UNAVAILABLE
        assert core.adapter_crashes == 2


async def peers_across_idle(options: list[tuple[str, Any]], idle: float = 4.0) -> list[str]:
    """The connections (caller addresses) of two calls ``idle`` seconds apart, on one
    channel with ``options``, to a fake core enforcing grpc-go's keepalive policy scaled
    down 60 times (MinTime 5 s)."""
    core = FakeVoltha(keepalive_min_time=300 / 60)
    await core.start()
    try:
        async with grpc.aio.insecure_channel(core.address, options=options) as ch:
            stub = voltha_pb2_grpc.VolthaServiceStub(ch)
            await stub.ListDevices(empty_pb2.Empty(), timeout=2)
            await asyncio.sleep(idle)
            await stub.ListDevices(empty_pb2.Empty(), timeout=2)
        return list(core.peers)
    finally:
        await core.stop()


async def test_grpc_go_keepalive_enforcement() -> None:
    """A client pinging between calls gets GOAWAY too_many_pings at the third strike and a
    new connection (C-core sends a ping at most about once a second: the fourth ping, 3 s
    in); one that does not ping between calls keeps its connection."""
    pinging, quiet = await asyncio.gather(
        peers_across_idle(
            [
                ("grpc.keepalive_time_ms", 20_000 // 60),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0),
            ]
        ),
        peers_across_idle([("grpc.keepalive_time_ms", 360_000 // 60)]),
    )
    assert pinging[0] != pinging[1], pinging
    assert quiet[0] == quiet[1], quiet


async def test_onos_follows_the_olt_reboot_and_uni_ports(
    core: FakeVoltha, stub: voltha_pb2_grpc.VolthaServiceStub, sadis: Sadis
) -> None:
    olt_id = await active_olt(core, stub, host="10.0.0.8:9191")
    onu = await active_onu(core, olt_id, 0, "BBSM00000008")
    name = "BBSM00000008-1"
    sadis.subscribers[name] = subscriber(name, (900, 100, 64, "Prof", "Prof"))
    async with (
        FakeOnos(sadis.url, voltha=core) as onos,
        httpx.AsyncClient(
            base_url=f"{onos.base_url}/onos/olt/oltapp", auth=("onos", "rocks"), timeout=5
        ) as http,
    ):
        # No OLT entry in SADIS: the olt app has no NNI for the OLT, takes the request in
        # and programs nothing.
        assert (await http.post(f"/services/{name}/900/100/64")).status_code == 200
        assert onos.services == {}
        assert "upstream port is not configured" in onos.failed[-1][1]
        assert (await http.delete(f"/services/{name}/900/100/64")).status_code == 200
        # An entry ONOS cannot read is no entry either: an empty MAC, a host name.
        for bad in ({"hardwareIdentifier": ""}, {"ipAddress": "olt.lab"}):
            sadis.subscribers[core.device(olt_id).serial_number] = {
                **olt_entry(core, olt_id),
                **bad,
            }
            assert (await http.post(f"/services/{name}/900/100/64")).status_code == 200
            assert onos.services == {}
            assert (await http.delete(f"/services/{name}/900/100/64")).status_code == 200
        sadis.subscribers[core.device(olt_id).serial_number] = olt_entry(core, olt_id)
        assert (await http.post(f"/services/{name}/900/100/64")).status_code == 200
        assert (name, 900, 100, 64) in onos.services
        await core.wait_for(lambda: core.device(onu).reason == "omci-flows-pushed")

        # SADIS now describes the service otherwise (another profile): ONOS compares the
        # whole UniTagInformation, cannot match the old service, answers 204, keeps it.
        sadis.subscribers[name] = subscriber(name, (900, 100, 64, "Prof", "Other"))
        assert (await http.delete(f"/services/{name}/900/100/64")).status_code == 204
        assert (name, 900, 100, 64) in onos.services
        sadis.subscribers[name] = subscriber(name, (900, 100, 64, "Prof", "Prof"))

        # The ONU reboots: its UNI goes down (flows gone, still provisioned) and comes back
        # (the olt app programs it again from SADIS).
        await stub.RebootDevice(common_pb2.ID(id=onu))
        await until_async(lambda: (name, 900, 100, 64) not in onos.services)
        assert (name, 900, 100, 64) in onos.requested
        await until_async(lambda: (name, 900, 100, 64) in onos.services)

        # The OLT reboots: its logical device goes, and with it everything the olt app had.
        await stub.RebootDevice(common_pb2.ID(id=olt_id))
        await until_async(lambda: not onos.requested)
        assert onos.services == {}

        def found_anew() -> bool:
            found = core.find_onu("BBSM00000008", olt_id)
            return found is not None and found.id != onu and found.oper_status == OperStatus.ACTIVE

        await core.wait_for(found_anew, 10)
        listed = (await http.get("/programmed-subscribers")).json()
        assert listed == {"entries": []}
        assert pon_port_no(0) in {p.port_no for p in core.ports(olt_id)}


async def until_async(check: Any, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.02)
