"""Bulk work across CPEs (issue 24): a task queued for every device a filter matches, through
the API and the CLI; the ACS's connection requests go out at the run's rate, not all at
once; progress and per-device results; a preset run; the filter checked the same way on
both paths."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from daemons.store import acs as store
from tests.acs.conftest import AcsServer
from tests.acs.sim import ConnectionRequests, Cpe, load_model, model_files, run_session
from tests.acs.test_cli import netd

ACS_ENV = {
    "NETD_ACS_CONNECTION_REQUEST_USERNAME": "cr-user",
    "NETD_ACS_CONNECTION_REQUEST_PASSWORD": "cr-pass",
}
MODEL = {p.stem: p for p in model_files()}["device-1C61B4-EX220-2226469000523"]
INTERVAL = "Device.ManagementServer.PeriodicInformInterval"


async def _fleet(acs: AcsServer, n: int, tag: str) -> list[tuple[Cpe, ConnectionRequests]]:
    """``n`` CPEs that called in once, tagged, each with a connection request listener; a
    CPE whose listener is called opens a session (as a real one does)."""
    fleet = []
    for i in range(n):
        cpe = Cpe(load_model(MODEL), serial_suffix=f"-{tag}-{i}")
        listener = ConnectionRequests("cr-user", "cr-pass")
        cpe.tree["Device.ManagementServer.ConnectionRequestURL"].value = await listener.start()
        await run_session(cpe, "127.0.0.1", acs.port)
        await store.set_tags(acs.pool, cpe.device_id, [tag])
        fleet.append((cpe, listener))
    return fleet


async def _answer_pokes(fleet: list[tuple[Cpe, ConnectionRequests]], acs: AcsServer) -> None:
    async def one(cpe: Cpe, listener: ConnectionRequests) -> None:
        await asyncio.wait_for(listener.called.wait(), 30)
        await run_session(cpe, "127.0.0.1", acs.port)

    await asyncio.gather(*(one(c, cr) for c, cr in fleet))


async def test_a_bulk_run_is_paced_and_reports_per_device(
    acs: AcsServer, acs_api: tuple[str, str]
) -> None:
    fleet = await _fleet(acs, 8, "bulk-a")
    other = await _fleet(acs, 2, "bulk-other")
    url, token = acs_api
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        bad = await c.post(
            "/api/v1/cpe-bulk",
            json={"filter": {"tags": ["bulk-a"], "colour": "red"}, "kind": "reboot"},
        )
        assert bad.status_code == 422
        none = await c.post(
            "/api/v1/cpe-bulk", json={"filter": {"tags": ["nobody"]}, "kind": "reboot"}
        )
        assert none.status_code == 404
        before = time.monotonic()  # the sim's clock (cr.times)
        resp = await c.post(
            "/api/v1/cpe-bulk",
            json={
                "filter": {"tags": ["bulk-a"], "product_class": fleet[0][0].product_class},
                "kind": "getParameterValues",
                "args": {"names": ["Device.DeviceInfo.UpTime"]},
                "rate": 4,
            },
        )
        assert resp.status_code == 201, resp.text
        bulk = resp.json()
        assert bulk["devices"] == 8 and bulk["status"] == "running"
        await _answer_pokes(fleet, acs)
        times = sorted(t for _, cr in fleet for t in cr.times)
        # 8 requests at 4 a second: the i-th has its slot, the bulk's start + i / 4, and goes
        # out no sooner (the last about 1.75 s after the bulk was made). Measured from the
        # first request instead, a first one late on a loaded machine made the span short.
        assert len(times) == 8, times
        assert all(t - before >= i / 4 - 0.05 for i, t in enumerate(times)), (before, times)
        assert all(cr.accepted == 0 for _, cr in other)
        for _ in range(50):
            got = (await c.get(f"/api/v1/cpe-bulk/{bulk['id']}")).json()
            if got["status"] == "done":
                break
            await asyncio.sleep(0.1)
        assert got["status"] == "done" and got["counts"] == {"done": 8}, got
        assert got["poked"] == 8 and got["finished_at"]
        tasks = (await c.get("/api/v1/cpe-tasks", params={"bulk": bulk["id"]})).json()
        assert sorted(t["device_id"] for t in tasks["items"]) == sorted(
            cpe.device_id for cpe, _ in fleet
        )
        assert {(t["status"], t["poke"]) for t in tasks["items"]} == {("done", "ok")}
    for _, cr in fleet + other:
        await cr.close()


async def test_a_preset_run_by_cli_with_a_parameter_filter(acs: AcsServer) -> None:
    fleet = await _fleet(acs, 3, "bulk-preset")
    first = fleet[0][0]
    for cpe, _ in fleet:
        assert cpe.tree[INTERVAL].value != "3600"
    bad = netd(acs, "cpe", "bulk", "reboot", "--param", "nope")
    assert bad.returncode == 2 and "NAME=VALUE" in bad.stderr
    out = netd(
        acs,
        "cpe",
        "bulk",
        "runPreset",
        "--args",
        json.dumps({"preset": "inform-interval"}),  # the shipped preset
        "--tag",
        "bulk-preset",
        "--param",
        f"Device.DeviceInfo.SerialNumber={first.tree['Device.DeviceInfo.SerialNumber'].value}",
    )
    assert out.returncode == 0, out.stderr
    bulk = json.loads(out.stdout)
    assert bulk["devices"] == 3  # the serial parameter is the same in every copy of the model
    await _answer_pokes(fleet, acs)
    shown = netd(acs, "cpe", "bulk-show", str(bulk["id"]), "--tasks")
    lines = [json.loads(x) for x in shown.stdout.splitlines()]
    for cpe, cr in fleet:
        assert cpe.tree[INTERVAL].value == "3600", lines
        await cr.close()
    assert lines[0]["status"] == "done" and lines[0]["counts"] == {"done": 3}
    assert [t["result"]["preset"] for t in lines[1:]] == ["inform-interval"] * 3
    assert all(t["result"]["changed"] >= 1 for t in lines[1:])  # the interval at least
    assert netd(acs, "cpe", "bulk-cancel", str(bulk["id"])).returncode == 0
