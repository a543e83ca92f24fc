"""`netd voltha` against the fakes' real behaviours (issue 25): an OLT reboot (ONU devices
deleted one at a time, found again as new devices on new UNI ports, ONOS's provisioned state
purged) brings every bound ONU's service back and refuses the unbound ones again, with no
false unreachable event; reconciliation with ONOS's ``programmed-subscribers`` removes what is
stale; a VLAN or rate change replaces the service in ONOS; serials are matched in openolt's
form; SADIS entries read as ONOS reads them; no empty port label reaches openolt; firmware
refusals fail at once and an ONU rebooting while it activates does not fail a good job."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from voltha_protos import common_pb2, device_pb2

from daemons.store import api as api_store
from daemons.store import radius as radius_store
from tests.voltha.conftest import Stack, until
from tests.voltha.onos_rules import problems

ADMIN, OPER = common_pb2.AdminState, common_pb2.OperStatus
UNI = device_pb2.Port.ETHERNET_UNI


async def make_olt(stack: Stack, host: str) -> str:
    async with stack.client() as c:
        made = await c.post("/api/v1/voltha/olts", json={"stack": "lab", "host_and_port": host})
        assert made.status_code == 201, made.text
    olt_id = str(made.json()["id"])
    await stack.voltha.wait_for(lambda: stack.voltha.device(olt_id).oper_status == OPER.ACTIVE)
    return olt_id


async def bind(stack: Stack, serial: str, subscriber: str, s_tag: int, c_tag: int) -> None:
    async with stack.client() as c:
        r = await c.put(
            f"/api/v1/voltha/onus/{serial}/binding",
            json={"subscriber": subscriber, "s_tag": s_tag, "c_tag": c_tag},
        )
        assert r.status_code in (200, 201), r.text


def onu(stack: Stack, olt_id: str, serial: str) -> device_pb2.Device | None:
    return stack.voltha.find_onu(serial, olt_id)


def active(stack: Stack, olt_id: str, serial: str) -> bool:
    d = onu(stack, olt_id, serial)
    return d is not None and d.oper_status == OPER.ACTIVE


def uni_location(stack: Stack, olt_id: str, serial: str) -> str | None:
    """Where ONOS should have the service: the OLT's ONOS device, the ONU's first UNI."""
    d = onu(stack, olt_id, serial)
    if d is None:
        return None
    ports = [p.port_no for p in stack.voltha.ports(d.id) if p.type == UNI]
    return f"{stack.voltha.onos_device_id(olt_id)}/{min(ports)}" if ports else None


def programmed(stack: Stack, olt_id: str, serial: str, s_tag: int, c_tag: int) -> bool:
    service = stack.onos.services.get((f"{serial}-1", s_tag, c_tag, 64))
    return service is not None and service.location == uni_location(stack, olt_id, serial)


async def events_of(stack: Stack, after: int, kind: str | None = None) -> list[dict[str, Any]]:
    return [
        {**e, "data": json.loads(e["data"])} for e in await stack.events(kind=kind, after=after)
    ]


async def test_olt_reboot_brings_every_service_back_and_refuses_the_unbound(
    stack: Stack,
) -> None:
    olt_id = await make_olt(stack, "10.95.0.1:9191")
    await bind(stack, "RBTA00000001", "alice", 100, 301)
    await bind(stack, "RBTA00000002", "bob", 100, 302)
    serials = ["RBTA00000001", "RBTA00000002", "RBTA00000003"]
    for s in serials:
        stack.voltha.discover_onu(olt_id, 0, s)
    await until(lambda: programmed(stack, olt_id, "RBTA00000001", 100, 301), what="alice up")
    await until(lambda: programmed(stack, olt_id, "RBTA00000002", 100, 302), what="bob up")
    await until(
        lambda: onu(stack, olt_id, "RBTA00000003").admin_state == ADMIN.DISABLED,  # type: ignore[union-attr]
        what="the unbound ONU refused",
    )
    before = {s: uni_location(stack, olt_id, s) for s in serials[:2]}
    old_ids = {s: onu(stack, olt_id, s).id for s in serials}  # type: ignore[union-attr]
    mark = await stack.last_event_id()
    errors = await stack.metric("netd_voltha_syncs_total", stack="lab", result="error")
    async with stack.client() as c:
        assert (await c.post(f"/api/v1/voltha/devices/{olt_id}/reboot")).status_code == 202

    def found_anew() -> bool:
        # The unbound one is refused as soon as it is seen, active or not yet.
        return all(
            (active(stack, olt_id, s) or s == "RBTA00000003")
            and onu(stack, olt_id, s).id != old_ids[s]  # type: ignore[union-attr]
            for s in serials
            if onu(stack, olt_id, s) is not None
        ) and all(onu(stack, olt_id, s) is not None for s in serials)

    await until(found_anew, 20, "the ONUs found again as new devices")
    after = {s: uni_location(stack, olt_id, s) for s in serials[:2]}
    assert after != before  # new ONU ids: new UNI port numbers
    await until(lambda: programmed(stack, olt_id, "RBTA00000001", 100, 301), what="alice back")
    await until(lambda: programmed(stack, olt_id, "RBTA00000002", 100, 302), what="bob back")
    await until(
        lambda: onu(stack, olt_id, "RBTA00000003").admin_state == ADMIN.DISABLED,  # type: ignore[union-attr]
        what="the rediscovered unbound ONU refused again",
    )

    async def recorded() -> bool:  # the events follow ONOS's answer, in netd's next write
        events = await events_of(stack, mark)
        return {e["subject"] for e in events if e["kind"] == "voltha.service.corrected"} == {
            "RBTA00000001-1",
            "RBTA00000002-1",
        } and any(e["kind"] == "voltha.onu.refused" for e in events)

    await until(recorded, what="the corrections and the refusal recorded")
    events = await events_of(stack, mark)
    kinds = [e["kind"] for e in events]
    # One ONU gone from ListDevicePorts in the middle of a sync: no false unreachable.
    assert "voltha.unreachable" not in kinds and "voltha.reachable" not in kinds
    assert await stack.metric("netd_voltha_syncs_total", stack="lab", result="error") == errors
    assert kinds.count("voltha.onu.removed") >= 3
    corrected = [e for e in events if e["kind"] == "voltha.service.corrected"]
    assert {e["subject"] for e in corrected} == {"RBTA00000001-1", "RBTA00000002-1"}
    assert {e["data"]["action"] for e in corrected} == {"provisioned"}
    assert all(e["data"]["why"] == "missing in ONOS" for e in corrected)
    refused = [e for e in events if e["kind"] == "voltha.onu.refused"]
    assert [e["subject"] for e in refused] == ["RBTA00000003"]


async def test_a_service_onos_has_and_netd_does_not_want_is_removed(stack: Stack) -> None:
    olt_id = await make_olt(stack, "10.95.0.2:9191")
    await bind(stack, "STAL00000001", "alice", 100, 401)
    stack.voltha.discover_onu(olt_id, 0, "STAL00000001")
    await until(lambda: programmed(stack, olt_id, "STAL00000001", 100, 401))
    mark = await stack.last_event_id()
    # Another service on the same port, put in ONOS behind netd's back (SADIS serves the
    # records of any stack for a port: a row of a stack netd does not run makes ONOS's
    # lookup succeed).
    async with httpx.AsyncClient(base_url=stack.sadis) as s:
        entry = (await s.get("/subscribers/STAL00000001-1")).json()
    stray = {**entry["uniTagList"][0], "ponCTag": 499}
    await stack.pool.execute(
        "INSERT INTO voltha_onos_services (stack, serial, uni, subscriber, plan, s_tag, c_tag, "
        "tp_id, tag_info) VALUES ('elsewhere', 'STAL00000001', 1, 'alice', 'fiber-100', 100, "
        "499, 64, $1::jsonb)",
        json.dumps(stray),
    )
    async with httpx.AsyncClient(
        base_url=stack.onos.base_url, auth=("onos", "rocks"), timeout=5
    ) as o:
        r = await o.post("/onos/olt/oltapp/services/STAL00000001-1/100/499/64")
        assert r.status_code == 200
    assert ("STAL00000001-1", 100, 499, 64) in stack.onos.services
    await stack.pool.execute("DELETE FROM voltha_onos_services WHERE stack = 'elsewhere'")
    await until(
        lambda: ("STAL00000001-1", 100, 499, 64) not in stack.onos.requested,
        what="the stray service removed",
    )
    assert programmed(stack, olt_id, "STAL00000001", 100, 401)

    async def written() -> bool:
        rows = await stack.pool.fetch(
            "SELECT c_tag FROM voltha_onos_services WHERE serial = 'STAL00000001'"
        )
        return [r["c_tag"] for r in rows] == [401]

    await until(written, what="the stray's record gone")
    corrected = await events_of(stack, mark, "voltha.service.corrected")
    assert [(e["subject"], e["data"]["action"], e["data"]["c_tag"]) for e in corrected] == [
        ("STAL00000001-1", "removed", 499)
    ]
    rows = await stack.pool.fetch(
        "SELECT c_tag FROM voltha_onos_services WHERE serial = 'STAL00000001' ORDER BY c_tag"
    )
    assert [r["c_tag"] for r in rows] == [401]


async def test_new_vlan_tags_replace_the_service_in_onos(stack: Stack) -> None:
    olt_id = await make_olt(stack, "10.95.0.3:9191")
    await bind(stack, "VLAN00000001", "bob", 100, 501)
    stack.voltha.discover_onu(olt_id, 0, "VLAN00000001")
    await until(lambda: programmed(stack, olt_id, "VLAN00000001", 100, 501))
    mark = await stack.last_event_id()
    await bind(stack, "VLAN00000001", "bob", 100, 502)
    await until(lambda: programmed(stack, olt_id, "VLAN00000001", 100, 502), what="new tags")
    await until(
        lambda: ("VLAN00000001-1", 100, 501, 64) not in stack.onos.requested,
        what="the old service gone from ONOS, not only its flows",
    )
    assert ("VLAN00000001-1", 100, 501, 64) not in stack.onos.services

    async def kinds() -> list[tuple[str, int]]:
        return [
            (e["kind"], e["data"]["c_tag"])
            for e in await events_of(stack, mark)
            if e["kind"].startswith("voltha.service.")
        ]

    await until(
        lambda: _has(kinds, ("voltha.service.provisioned", 502)), what="the provisioned event"
    )
    assert ("voltha.service.removed", 501) in await kinds()


async def _has(got: Any, item: Any) -> bool:
    return item in await got()


async def test_a_new_rate_gets_a_new_profile_and_reaches_onos(stack: Stack) -> None:
    olt_id = await make_olt(stack, "10.95.0.4:9191")
    await api_store.put_plan(stack.pool, "lab-50", {"download": "50M", "upload": "10M"})
    await radius_store.upsert_subscriber(
        stack.pool, stack.cache, radius_store.SubscriberRow("carol", plan="lab-50")
    )
    await bind(stack, "RATE00000001", "carol", 100, 601)
    stack.voltha.discover_onu(olt_id, 0, "RATE00000001")
    key = ("RATE00000001-1", 100, 601, 64)

    def down_cir() -> int | None:
        service = stack.onos.services.get(key)
        if service is None:
            return None
        profile = service.uni_tag["downstreamBandwidthProfile"]
        return int(service.bandwidth_profiles[profile]["cir"])

    await until(lambda: down_cir() == 50_000, what="50 Mbit/s in ONOS")
    await api_store.put_plan(stack.pool, "lab-50", {"download": "80M", "upload": "10M"})
    await until(lambda: down_cir() == 80_000, 20, "80 Mbit/s in ONOS")
    assert programmed(stack, olt_id, "RATE00000001", 100, 601)


async def test_every_sadis_entry_reads_as_onos_reads_it(stack: Stack) -> None:
    """What netd serves, checked with ONOS's own rules (tests/voltha/onos_rules.py), for
    every bound port, every OLT (one registered by host name) and every profile."""
    named = await make_olt(stack, "olt-lab.example.net:9191")
    await bind(stack, "SADS00000001", "bob", 200, 700)
    stack.voltha.discover_onu(named, 0, "SADS00000001")
    await until(lambda: active(stack, named, "SADS00000001"))
    await until(lambda: _synced(stack, stack.voltha.device(named).serial_number), what="OLT synced")
    ports = [
        f"{r['serial']}-{r['uni']}"
        for r in await stack.pool.fetch("SELECT serial, uni FROM onu_bindings")
    ]
    olts = [r["serial"] for r in await stack.pool.fetch("SELECT serial FROM voltha_olts")]
    found: dict[str, list[str]] = {}
    profiles = {"Default"}
    async with httpx.AsyncClient(base_url=stack.sadis) as s:
        for key in ports + olts:
            r = await s.get(f"/subscribers/{key}")
            assert r.status_code == 200, (key, r.text)
            found[f"subscribers/{key}"] = problems("subscribers", key, r.json())
            for tag in r.json().get("uniTagList", []):
                profiles |= {tag["upstreamBandwidthProfile"], tag["downstreamBandwidthProfile"]}
        for key in sorted(profiles):
            r = await s.get(f"/bandwidthprofiles/{key}")
            assert r.status_code == 200, (key, r.text)
            found[f"bandwidthprofiles/{key}"] = problems("bandwidthprofiles", key, r.json())
        olt_doc = (await s.get(f"/subscribers/{stack.voltha.device(named).serial_number}")).json()
    assert len(olts) >= 2 and len(ports) >= 4 and len(profiles) >= 3
    assert {k: v for k, v in found.items() if v} == {}
    assert "ipAddress" not in olt_doc  # a host name is no Ip4Address
    assert olt_doc["hardwareIdentifier"] == stack.voltha.device(named).mac_address


async def _synced(stack: Stack, serial: str) -> bool:
    return bool(
        await stack.pool.fetchval("SELECT count(*) FROM voltha_olts WHERE serial = $1", serial)
    )


async def test_serials_are_matched_in_openolts_form(stack: Stack) -> None:
    olt_id = await make_olt(stack, "10.95.0.5:9191")
    await bind(stack, "ALPHE3D1CEA3", "alice", 100, 801)  # typed from the label
    stack.voltha.discover_onu(olt_id, 0, "ALPHe3d1cea3")  # as openolt writes it
    await until(lambda: programmed(stack, olt_id, "ALPHe3d1cea3", 100, 801), what="provisioned")
    assert onu(stack, olt_id, "ALPHe3d1cea3").admin_state == ADMIN.ENABLED  # type: ignore[union-attr]
    stored = await stack.pool.fetchval(
        "SELECT serial FROM onu_bindings WHERE lower(serial) = 'alphe3d1cea3'"
    )
    assert stored == "ALPHe3d1cea3"
    async with stack.client() as c:
        got = await c.get("/api/v1/voltha/onus/ALPHE3D1CEA3")
        assert got.status_code == 200 and got.json()["binding"]["subscriber"] == "alice"


async def test_enabling_a_serial_whose_onu_is_gone_is_not_allowed_yet(stack: Stack) -> None:
    olt_id = await make_olt(stack, "10.95.0.6:9191")
    first = stack.voltha.discover_onu(olt_id, 0, "GONE00000001")
    await until(lambda: stack.voltha.device(first).admin_state == ADMIN.DISABLED, what="refused")
    await _delete_onu(stack, first)
    mark = await stack.last_event_id()
    await bind(stack, "GONE00000001", "bob", 100, 901)
    syncs = await stack.metric("netd_voltha_syncs_total", stack="lab", result="ok")
    await until(lambda: _more(stack, syncs + 3), what="three syncs")
    assert [e["kind"] for e in await events_of(stack, mark, "voltha.onu.allowed")] == []
    assert await stack.pool.fetchval(
        "SELECT count(*) FROM voltha_disabled_onus WHERE serial = 'GONE00000001'"
    )
    again = stack.voltha.discover_onu(olt_id, 0, "GONE00000001")
    await until(lambda: programmed(stack, olt_id, "GONE00000001", 100, 901), what="provisioned")
    assert stack.voltha.device(again).admin_state == ADMIN.ENABLED
    allowed = await events_of(stack, mark, "voltha.onu.allowed")
    assert [e["subject"] for e in allowed] == ["GONE00000001"]
    assert not await stack.pool.fetchval(
        "SELECT count(*) FROM voltha_disabled_onus WHERE serial = 'GONE00000001'"
    )


async def _delete_onu(stack: Stack, device_id: str) -> None:
    from daemons.core.config import VolthaStack  # noqa: PLC0415
    from daemons.voltha.client import VolthaClient  # noqa: PLC0415

    client = VolthaClient("lab", VolthaStack(address=stack.voltha.address, deadline=2.0))
    try:
        await client.delete(device_id)
    finally:
        await client.close()


async def _more(stack: Stack, n: float) -> bool:
    return await stack.metric("netd_voltha_syncs_total", stack="lab", result="ok") >= n


async def test_no_empty_port_label_reaches_openolt(stack: Stack) -> None:
    olt_id = await make_olt(stack, "10.95.0.7:9191")
    await bind(stack, "LABL00000001", "alice", 100, 951)
    onu_id = stack.voltha.discover_onu(olt_id, 1, "LABL00000001")
    await until(lambda: active(stack, olt_id, "LABL00000001"))
    pon = stack.voltha.device(onu_id).parent_port_no
    stack.voltha.drop_port(olt_id, pon)

    async def port_gone() -> bool:
        return not await stack.pool.fetchval(
            "SELECT count(*) FROM voltha_ports WHERE device_id = $1 AND port_no = $2", olt_id, pon
        )

    await until(port_gone, what="the PON port gone from the inventory")
    seen = len(stack.voltha.calls)

    def reads() -> int:
        return sum(
            1
            for c, r in stack.voltha.calls[seen:]
            if c == "Extension/GetExtValue" and r.targetId == onu_id
        )

    await until(lambda: reads() >= 2, what="two optics passes over the ONU")
    labels = [
        r.request.oltRxPower.port_label
        for c, r in stack.voltha.calls[seen:]
        if c == "Extension/GetExtValue" and r.request.WhichOneof("request") == "oltRxPower"
    ]
    assert "" not in labels
    assert stack.voltha.adapter_crashes == 0


async def test_firmware_refusals_fail_at_once_and_an_activation_reboot_does_not(
    stack: Stack,
) -> None:
    olt_id = await make_olt(stack, "10.95.0.8:9191")
    await bind(stack, "FWUP00000001", "alice", 100, 961)
    await bind(stack, "FWUP00000002", "bob", 100, 962)
    good = stack.voltha.discover_onu(olt_id, 0, "FWUP00000001")
    bad = stack.voltha.discover_onu(olt_id, 0, "FWUP00000002")
    await until(
        lambda: active(stack, olt_id, "FWUP00000001") and active(stack, olt_id, "FWUP00000002")
    )
    await until(lambda: _synced_onu(stack, "FWUP00000002"), what="ONUs synced")
    async with stack.client() as c:
        for url in ("https://files.lab/onu.bin", "tftp://files.lab/onu.bin", "sftp://f/onu"):
            r = await c.post(
                "/api/v1/voltha/firmware-jobs",
                json={"stack": "lab", "version": "v3", "url": url, "onus": ["FWUP00000001"]},
            )
            assert r.status_code == 422, (url, r.text)
            assert "http://" in r.text
        # openonu refuses in DownloadImageToDevice's own answer (VENDOR_DEVICE_MISMATCH):
        # the job ends at once, not after firmware_step_timeout (10 s here).
        stack.voltha.fail_image_download(
            bad, device_pb2.ImageState.VENDOR_DEVICE_MISMATCH, at_start=True
        )
        t0 = time.monotonic()
        made = await c.post(
            "/api/v1/voltha/firmware-jobs",
            json={
                "stack": "lab",
                "version": "v3",
                "url": "http://files.lab/onu-v3.bin",
                "onus": ["FWUP00000001", "FWUP00000002"],
            },
        )
        assert made.status_code == 202, made.text
        job_id = made.json()["id"]

        async def ended() -> dict[str, Any] | None:
            job = (await c.get(f"/api/v1/voltha/firmware-jobs/{job_id}")).json()
            return job if job["state"] in ("done", "failed") else None

        job = await until(ended, 30, "the job's end")
    by_serial = {d["serial"]: d for d in job["devices"]}
    assert by_serial["FWUP00000002"]["state"] == "failed"
    assert "VENDOR_DEVICE_MISMATCH" in by_serial["FWUP00000002"]["reason"]
    assert "refused" in by_serial["FWUP00000002"]["reason"]
    # The good ONU rebooted while activating (GetImageStatus said unknown meanwhile).
    assert by_serial["FWUP00000001"]["state"] == "done", by_serial["FWUP00000001"]
    assert stack.voltha.device(good).firmware_version == "v3"
    assert job["counts"] == {"done": 1, "failed": 1}
    state = stack.voltha.image_state(good, "v3")
    assert state is not None and state.image_state == state.IMAGE_COMMITTED
    assert time.monotonic() - t0 < 30


async def _synced_onu(stack: Stack, serial: str) -> bool:
    return bool(
        await stack.pool.fetchval("SELECT count(*) FROM voltha_onus WHERE serial = $1", serial)
    )
