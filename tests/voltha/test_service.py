"""`netd voltha` and `netd api` against our fake VOLTHA core and fake ONOS: registration
and the action set with voltha-go's error semantics, the allow-list both ways with the
subscriber's service provisioned through ONOS from our SADIS, optics alarms, firmware jobs
with a failed download, a sync that writes nothing when nothing changed, and the core going
away in the middle of a sync and coming back with no event lost or raised twice."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import httpx
from voltha_protos import common_pb2

from daemons.core.config import VolthaStack
from daemons.voltha.client import VolthaClient, VolthaError
from tests.voltha.conftest import Stack, until

ADMIN, OPER = common_pb2.AdminState, common_pb2.OperStatus
shared: dict[str, str] = {}


def _kinds(events: list[dict[str, Any]], subject: str | None = None) -> list[str]:
    return [e["kind"] for e in events if subject is None or e["subject"] == subject]


async def test_register_and_actions(stack: Stack) -> None:
    mark = await stack.last_event_id()
    async with stack.client() as c:
        made = await c.post(
            "/api/v1/voltha/olts", json={"stack": "lab", "host_and_port": "10.90.0.1:9191"}
        )
        assert made.status_code == 201, made.text
        olt_id = made.json()["id"]
        shared["olt"] = olt_id
        dup = await c.post(
            "/api/v1/voltha/olts", json={"stack": "lab", "host_and_port": "10.90.0.1:9191"}
        )
        assert dup.status_code == 409, dup.text
        assert dup.json()["error"]["details"][0]["code"] == "UNKNOWN"
        assert "device is already pre-provisioned" in dup.json()["error"]["message"]
        nostack = await c.post(
            "/api/v1/voltha/olts", json={"stack": "nope", "host_and_port": "10.90.0.2:9191"}
        )
        assert nostack.status_code == 404
        await stack.voltha.wait_for(lambda: stack.voltha.device(olt_id).oper_status == OPER.ACTIVE)

        async def synced(oper: str, admin: str = "ENABLED") -> bool:
            r = await c.get(f"/api/v1/voltha/olts/{olt_id}")
            return r.status_code == 200 and (r.json()["oper_status"], r.json()["admin_state"]) == (
                oper,
                admin,
            )

        await until(lambda: synced("ACTIVE"), what="the OLT in the inventory, active")
        shown = (await c.get(f"/api/v1/voltha/olts/{olt_id}")).json()
        assert {p["type"] for p in shown["ports"]} == {"ETHERNET_NNI", "PON_OLT"}
        again = await c.post(f"/api/v1/voltha/devices/{olt_id}/enable")
        assert again.status_code == 409, again.text  # FAILED_PRECONDITION: already enabled
        assert again.json()["error"]["details"][0]["code"] == "FAILED_PRECONDITION"
        assert (await c.post(f"/api/v1/voltha/devices/{olt_id}/disable")).status_code == 202
        await until(lambda: synced("UNKNOWN", "DISABLED"), what="the OLT disabled")
        assert (await c.post(f"/api/v1/voltha/devices/{olt_id}/enable")).status_code == 202
        await until(lambda: synced("ACTIVE"), what="the OLT enabled again")
        assert (await c.post(f"/api/v1/voltha/devices/{olt_id}/reboot")).status_code == 202
        await until(lambda: synced("ACTIVE"), what="the OLT back after its reboot")
        missing = await c.post("/api/v1/voltha/devices/no-such-device/reboot")
        assert missing.status_code == 404
        # A second OLT, pre-provisioned only, then deleted.
        other = await c.post(
            "/api/v1/voltha/olts",
            json={"stack": "lab", "host_and_port": "10.90.0.2:9191", "enable": False},
        )
        assert other.status_code == 201
        other_id = other.json()["id"]
        await until(lambda: _listed(c, other_id), what="the pre-provisioned OLT synced")
        assert (await c.delete(f"/api/v1/voltha/olts/{other_id}")).status_code == 204
        await until(lambda: _gone(c, other_id), what="the deleted OLT gone")
    async with stack.client(stack.viewer) as v:
        assert (await v.post(f"/api/v1/voltha/devices/{olt_id}/reboot")).status_code == 403
        assert (await v.get("/api/v1/voltha/olts")).status_code == 200
    events = await stack.events(after=mark)
    assert _kinds(events).count("voltha.olt.added") == 2
    assert _kinds(events).count("voltha.olt.removed") == 1
    states = [json.loads(e["data"])["changed"] for e in events if e["kind"] == "voltha.olt.state"]
    assert {"admin_state": ["ENABLED", "DISABLED"]} in [
        {k: v for k, v in s.items() if k == "admin_state"} for s in states
    ]


async def _listed(c: httpx.AsyncClient, device_id: str) -> bool:
    return (await c.get(f"/api/v1/voltha/olts/{device_id}")).status_code == 200


async def _gone(c: httpx.AsyncClient, device_id: str) -> bool:
    return (await c.get(f"/api/v1/voltha/olts/{device_id}")).status_code == 404


async def test_client_errors_as_voltha_go_gives_them(stack: Stack) -> None:
    client = VolthaClient("lab", VolthaStack(address=stack.voltha.address, deadline=0.5))
    try:
        try:
            await client.enable("no-such-id")
        except VolthaError as exc:
            assert exc.code == "NOT_FOUND" and not exc.unavailable
        else:
            raise AssertionError("no error")
        stack.voltha.hang = True
        try:
            await client.devices()
        except VolthaError as exc:
            assert exc.code == "DEADLINE_EXCEEDED" and exc.unavailable
        else:
            raise AssertionError("no deadline")
    finally:
        stack.voltha.hang = False
        await client.close()


async def test_allowlist_both_ways_and_services(stack: Stack) -> None:
    olt_id = shared["olt"]
    mark = await stack.last_event_id()
    async with stack.client() as c:
        bound = await c.put(
            "/api/v1/voltha/onus/BRCM00000001/binding",
            json={"subscriber": "alice", "s_tag": 100, "c_tag": 201},
        )
        assert bound.status_code == 201, bound.text
        nobody = await c.put(
            "/api/v1/voltha/onus/BRCM00000009/binding",
            json={"subscriber": "nobody", "s_tag": 100, "c_tag": 209},
        )
        assert nobody.status_code == 422
    onu1 = stack.voltha.discover_onu(olt_id, 0, "BRCM00000001")
    onu2 = stack.voltha.discover_onu(olt_id, 1, "ALPH00000002")
    shared["onu1"], shared["onu2"] = onu1, onu2
    # The unbound one is refused; the bound one comes up and gets its service.
    await stack.voltha.wait_for(lambda: stack.voltha.device(onu2).admin_state == ADMIN.DISABLED, 10)
    await stack.voltha.wait_for(lambda: stack.voltha.device(onu1).oper_status == OPER.ACTIVE, 10)
    alice = ("BRCM00000001-1", 100, 201, 64)
    await until(lambda: alice in stack.onos.services, what="alice's service in ONOS")
    async with httpx.AsyncClient(base_url=stack.sadis) as s:
        sub = (await s.get("/subscribers/BRCM00000001-1")).json()
        profile = (await s.get("/bandwidthprofiles/fiber-100-down-100000k")).json()
        assert (await s.get("/subscribers/ALPH00000002-1")).status_code == 404
    assert sub["remoteId"] == "alice"
    tag = sub["uniTagList"][0]
    assert (tag["ponSTag"], tag["ponCTag"], tag["technologyProfileId"]) == (100, 201, 64)
    assert tag["downstreamBandwidthProfile"] == "fiber-100-down-100000k"  # the rate in the id
    assert profile["cir"] == 100_000 and profile["cbs"] == 1000  # kbit: 10 ms at the rate
    # Bound later: enabled again, up, provisioned.
    async with stack.client() as c:
        r = await c.put(
            "/api/v1/voltha/onus/ALPH00000002/binding",
            json={"subscriber": "bob", "s_tag": 100, "c_tag": 202},
        )
        assert r.status_code == 201
    await stack.voltha.wait_for(
        lambda: (
            stack.voltha.device(onu2).admin_state == ADMIN.ENABLED
            and stack.voltha.device(onu2).oper_status == OPER.ACTIVE
        ),
        10,
    )
    await until(lambda: ("ALPH00000002-1", 100, 202, 64) in stack.onos.services)
    # Unbound: the service goes, the ONU is refused again; bound again: back.
    async with stack.client() as c:
        assert (await c.delete("/api/v1/voltha/onus/BRCM00000001/binding")).status_code == 204
    await until(lambda: alice not in stack.onos.services, what="alice's service removed")
    await stack.voltha.wait_for(lambda: stack.voltha.device(onu1).admin_state == ADMIN.DISABLED, 10)
    async with stack.client() as c:
        r = await c.put(
            "/api/v1/voltha/onus/BRCM00000001/binding",
            json={"subscriber": "alice", "s_tag": 100, "c_tag": 201},
        )
        assert r.status_code == 201
        await stack.voltha.wait_for(
            lambda: stack.voltha.device(onu1).oper_status == OPER.ACTIVE, 10
        )
        await until(lambda: alice in stack.onos.services)
        listed = (await c.get("/api/v1/voltha/onus", params={"olt": olt_id})).json()
    assert {(o["serial"], o["subscriber"]) for o in listed} == {
        ("BRCM00000001", "alice"),
        ("ALPH00000002", "bob"),
    }
    events = await stack.events(after=mark)
    assert _kinds(events, "ALPH00000002").count("voltha.onu.refused") == 1
    assert _kinds(events, "ALPH00000002").count("voltha.onu.allowed") == 1
    assert _kinds(events, "BRCM00000001").count("voltha.onu.refused") == 1
    assert _kinds(events, "BRCM00000001").count("voltha.onu.allowed") == 1
    assert _kinds(events, "BRCM00000001").count("voltha.onu.discovered") == 1
    assert _kinds(events, "BRCM00000001-1").count("voltha.service.provisioned") == 2
    assert _kinds(events, "BRCM00000001-1").count("voltha.service.removed") == 1


async def test_optics_alarm_with_hysteresis(stack: Stack) -> None:
    onu1 = shared["onu1"]
    mark = await stack.last_event_id()
    stack.voltha.set_onu_optics(onu1, rx_dbm=-29.0, tx_dbm=2.5)
    stack.voltha.set_olt_rx_power(shared["olt"], "BRCM00000001", -28.25)
    stack.voltha.set_pon_stats(shared["olt"], 0, rx_bytes=123456, tx_packets=789)
    stack.voltha.set_onu_pon_counters(onu1, bip_errors=3, fec_codewords_uncorrectable=1)

    async def raised() -> bool:
        return "voltha.alarm.raised" in _kinds(await stack.events(after=mark), "BRCM00000001")

    await until(raised, what="the low receive power alarm")
    assert (
        await stack.metric("netd_voltha_onu_optics", serial="BRCM00000001", value="rx_dbm") == -29.0
    )
    async with stack.client() as c:
        optics = (await c.get("/api/v1/voltha/onus/BRCM00000001/optics")).json()
    assert optics["values"]["rx_dbm"] == -29.0 and optics["values"]["tx_dbm"] == 2.5
    assert optics["values"]["olt_rx_dbm"] == -28.25
    assert optics["counters"]["bip_errors"] == 3
    assert await stack.metric("netd_voltha_olt_rx_power_dbm", serial="BRCM00000001") == -28.25
    assert await stack.metric("netd_voltha_pon_port_stat", port="pon-0", stat="rx_bytes") == 123456
    assert (
        await stack.metric(
            "netd_voltha_onu_pon_counter",
            serial="BRCM00000001",
            counter="fec_codewords_uncorrectable",
        )
        == 1
    )
    stack.voltha.set_onu_optics(onu1, rx_dbm=-26.5, tx_dbm=2.5)  # inside, but not by 1 dB

    async def read(level: float) -> bool:
        got = await stack.metric("netd_voltha_onu_optics", serial="BRCM00000001", value="rx_dbm")
        return got == level

    await until(lambda: read(-26.5))
    await asyncio.sleep(1.2)  # two more optics passes
    assert "voltha.alarm.cleared" not in _kinds(await stack.events(after=mark), "BRCM00000001")
    stack.voltha.set_onu_optics(onu1, rx_dbm=-20.0, tx_dbm=2.5)

    async def cleared() -> bool:
        return "voltha.alarm.cleared" in _kinds(await stack.events(after=mark), "BRCM00000001")

    await until(cleared, what="the alarm cleared")
    await asyncio.sleep(1.2)
    alarms = [
        (e["kind"], json.loads(e["data"])["alarm"])
        for e in await stack.events(after=mark)
        if e["kind"].startswith("voltha.alarm.")
    ]
    # The ONU's own reading went low and back; the OLT's reading of it (-28.25) stays low.
    assert sorted(alarms) == [
        ("voltha.alarm.cleared", "onu_rx_low"),
        ("voltha.alarm.raised", "olt_rx_low"),
        ("voltha.alarm.raised", "onu_rx_low"),
    ]
    data = [json.loads(e["data"]) for e in await stack.events("voltha.alarm.raised", mark)]
    assert {d["threshold"] for d in data} == {-27.0}
    active = await stack.pool.fetch("SELECT alarm, value FROM voltha_alarms")
    assert [(r["alarm"], r["value"]) for r in active] == [("olt_rx_low", -28.25)]


async def test_firmware_job_with_a_failed_download(stack: Stack) -> None:
    stack.voltha.fail_image_download(shared["onu2"])
    async with stack.client() as c:
        made = await c.post(
            "/api/v1/voltha/firmware-jobs",
            json={
                "stack": "lab",
                "version": "v2.0.1",
                "url": "http://files.lab/onu-v2.0.1.bin",
                "onus": ["BRCM00000001", "ALPH00000002"],
                "concurrency": 2,
            },
        )
        assert made.status_code == 202, made.text
        job_id = made.json()["id"]

        async def ended() -> dict[str, Any] | None:
            job = (await c.get(f"/api/v1/voltha/firmware-jobs/{job_id}")).json()
            return job if job["state"] in ("done", "failed") else None

        job = await until(ended, 20, "the firmware job's end")
    assert job["state"] == "failed" and job["counts"] == {"done": 1, "failed": 1}
    by_serial = {d["serial"]: d for d in job["devices"]}
    assert by_serial["BRCM00000001"]["state"] == "done"
    assert "DOWNLOAD_FAILED" in by_serial["ALPH00000002"]["reason"]
    state = stack.voltha.image_state(shared["onu1"], "v2.0.1")
    assert state is not None and state.image_state == state.IMAGE_COMMITTED
    reports = await stack.events("voltha.firmware.failed")
    assert [e["subject"] for e in reports] == [f"job:{job_id}"]


async def test_a_sync_with_nothing_changed_writes_nothing(stack: Stack) -> None:
    async def quiet() -> bool:
        before = await stack.last_event_id()
        await asyncio.sleep(1.2)
        return await stack.last_event_id() == before

    await until(quiet, 20, "the inventory settled")
    rows = "SELECT xmin::text, * FROM {} ORDER BY 2, 3"
    devices = await stack.pool.fetch(rows.format("voltha_devices"))
    ports = await stack.pool.fetch(rows.format("voltha_ports"))
    mark = await stack.last_event_id()
    syncs = await stack.metric("netd_voltha_syncs_total", stack="lab", result="ok")
    await until(lambda: _more(stack, syncs + 3), what="three more syncs")
    assert await stack.pool.fetch(rows.format("voltha_devices")) == devices
    assert await stack.pool.fetch(rows.format("voltha_ports")) == ports
    assert await stack.last_event_id() == mark


async def _more(stack: Stack, n: float) -> bool:
    return await stack.metric("netd_voltha_syncs_total", stack="lab", result="ok") >= n


async def test_voltha_away_in_the_middle_of_a_sync(stack: Stack) -> None:
    onu2 = shared["onu2"]
    mark = await stack.last_event_id()
    seen = len(stack.voltha.calls)
    # Cut a sync after its ListDevices: every later call hangs, then the core goes away.
    await until(lambda: any(name == "ListDevices" for name, _ in stack.voltha.calls[seen:]), 5)
    stack.voltha.hang = True
    await asyncio.sleep(0.1)
    await stack.voltha.stop()
    stack.voltha.hang = False
    # A change while it is away (one the restarted adapters leave alone).
    stack.voltha.set_onu_state(onu2, connect=common_pb2.ConnectStatus.UNREACHABLE)

    async def kind(k: str) -> bool:
        return k in _kinds(await stack.events(after=mark))

    await until(lambda: kind("voltha.unreachable"), what="the core reported unreachable")
    await asyncio.sleep(1.0)  # several failed syncs while it is away
    await stack.voltha.restart()
    await until(lambda: kind("voltha.reachable"), what="the core reported back")

    async def changed() -> bool:
        return "voltha.onu.state" in _kinds(await stack.events(after=mark), "ALPH00000002")

    await until(changed, what="the change made while away")
    await asyncio.sleep(1.5)  # more syncs: nothing raised twice
    events = await stack.events(after=mark)
    kinds = _kinds(events)
    assert kinds.count("voltha.unreachable") == 1 and kinds.count("voltha.reachable") == 1
    onu = [json.loads(e["data"]) for e in events if e["subject"] == "ALPH00000002"]
    assert [d["changed"] for d in onu if "changed" in d] == [
        {"connect_status": ["REACHABLE", "UNREACHABLE"]}
    ]
    assert _kinds(events, "ALPH00000002").count("voltha.onu.state") == 1
    assert await stack.metric("netd_voltha_up", stack="lab") == 1.0


async def test_cli(stack: Stack) -> None:
    def netd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daemons.cli", *args],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    olts = await asyncio.to_thread(netd, "olt", "list", "--stack", "lab")
    assert olts.returncode == 0, olts.stderr
    assert [json.loads(x)["id"] for x in olts.stdout.splitlines()] == [shared["olt"]]
    onus = await asyncio.to_thread(netd, "onu", "list")
    assert {json.loads(x)["serial"] for x in onus.stdout.splitlines()} == {
        "BRCM00000001",
        "ALPH00000002",
    }
    bad = await asyncio.to_thread(
        netd,
        "onu",
        "bind",
        "ZZZZ00000001",
        "--subscriber",
        "nobody",
        "--s-tag",
        "1",
        "--c-tag",
        "2",
    )
    assert bad.returncode == 2 and "no subscriber nobody" in bad.stderr
    for url in ("https://files.lab/onu.bin", "tftp://files.lab/onu.bin"):
        refused = await asyncio.to_thread(
            netd, "onu-firmware", "start", "--stack", "lab", "--version", "v9", "--url", url,
            "BRCM00000001",
        )  # fmt: skip
        assert refused.returncode == 2 and "http://" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    dup = await asyncio.to_thread(netd, "olt", "add", "--stack", "lab", "10.90.0.1:9191")
    assert dup.returncode == 1 and "device is already pre-provisioned" in dup.stderr
    shown = await asyncio.to_thread(netd, "onu", "show", "BRCM00000001")
    assert shown.returncode == 0, shown.stderr
    onu = json.loads(shown.stdout)
    assert onu["binding"]["subscriber"] == "alice" and onu["optics"]["values"]["rx_dbm"] == -20.0
    assert {p["type"] for p in onu["ports"]} == {"PON_ONU", "ETHERNET_UNI"}
    olt = await asyncio.to_thread(netd, "olt", "show", shared["olt"])
    assert olt.returncode == 0 and json.loads(olt.stdout)["kind"] == "olt"
    jobs = await asyncio.to_thread(netd, "onu-firmware", "status")
    assert jobs.returncode == 0 and json.loads(jobs.stdout.splitlines()[0])["state"] == "failed"
