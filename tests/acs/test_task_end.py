"""Every task ends (issue 24), against a real `netd acs` and the CPE simulator: a CPE that
drops a Reboot gets it again only after a backoff, and the task fails with the reason after
acs.task_max_attempts; a started task can be cancelled (CLI and API), the ACS sends it no
more, and the answer says what the CPE may still do."""

from __future__ import annotations

import asyncio
import time

import httpx

from daemons.store import acs as store
from tests.acs.conftest import AcsServer
from tests.acs.sim import Cpe, Http, load_model, model_files, run_session
from tests.acs.test_cli import netd

ACS_ENV = {
    "NETD_ACS_TASK_BACKOFF": "0.4",
    "NETD_ACS_TASK_MAX_ATTEMPTS": "3",
    "NETD_ACS_SESSION_TIMEOUT": "30",  # a dropped session is found by the next Inform
}
MODEL = {p.stem: p for p in model_files()}["device-1C61B4-EX220-2226469000523"]


async def _state(acs: AcsServer, tid: int) -> dict[str, object]:
    task = await store.get_task(acs.pool, tid)
    assert task is not None
    return task


async def test_a_dropped_reboot_backs_off_and_fails_after_max_attempts(acs: AcsServer) -> None:
    cpe = Cpe(load_model(MODEL), serial_suffix="-drop")
    await run_session(cpe, "127.0.0.1", acs.port)
    cpe.drop = {"Reboot"}
    tid = await store.queue_task(acs.pool, cpe.device_id, "reboot", {}, "test")
    sent: list[float] = []
    t0 = time.monotonic()
    for _ in range(40):  # the CPE calls back at once, again and again (a retry storm)
        cpe.seen.clear()
        await run_session(cpe, "127.0.0.1", acs.port)
        if "Reboot" in cpe.seen:
            sent.append(time.monotonic() - t0)
        if (await _state(acs, tid))["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.1)
    task = await _state(acs, tid)
    assert task["status"] == "fault", task
    assert task["attempts"] == 3 and len(sent) == 3, (task, sent)
    assert "3 attempts" in task["result"]["string"]  # type: ignore[index]
    # The backoff: 0.4 s, then 0.8 s, between the sends (main sent it at every Inform).
    assert sent[1] - sent[0] >= 0.4 and sent[2] - sent[1] >= 0.8, sent


async def test_cancel_a_started_task_with_the_cli(acs: AcsServer) -> None:
    cpe = Cpe(load_model(MODEL), serial_suffix="-cancel-cli")
    await run_session(cpe, "127.0.0.1", acs.port)
    tid = await store.queue_task(acs.pool, cpe.device_id, "reboot", {}, "test")
    # A session starts the task, then the CPE goes quiet before the ACS sends it.
    conn = await Http.open("127.0.0.1", acs.port)
    await conn.post("/", cpe.inform(), {})
    assert (await _state(acs, tid))["status"] == "running"
    out = netd(acs, "cpe", "cancel", str(tid))
    assert out.returncode == 0, out.stderr  # main: "unknown, started or ended", exit 1
    assert "cancelled task" in out.stdout and "may" in out.stdout
    await conn.close()
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    assert "Reboot" not in cpe.seen
    assert (await _state(acs, tid))["status"] == "cancelled"
    again = netd(acs, "cpe", "cancel", str(tid))
    assert again.returncode == 1 and "ended" in again.stderr


async def test_cancel_a_running_transfer_through_the_api(
    acs: AcsServer, acs_api: tuple[str, str]
) -> None:
    cpe = Cpe(load_model(MODEL), serial_suffix="-cancel-api", complete_transfers=False)
    await run_session(cpe, "127.0.0.1", acs.port)
    tid = await store.queue_task(
        acs.pool, cpe.device_id, "download", {"url": "http://127.0.0.1:9/fw.bin"}, "test"
    )
    await run_session(cpe, "127.0.0.1", acs.port)
    assert (await _state(acs, tid))["status"] == "running"  # accepted, TransferComplete due
    url, token = acs_api
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        resp = await c.delete(f"/api/v1/cpe-tasks/{tid}")
        assert resp.status_code == 200, resp.text  # main: 409
        body = resp.json()
        assert body["task"]["status"] == "cancelled" and body["was"] == "running"
        assert "TransferComplete" in body["note"]
        again = await c.delete(f"/api/v1/cpe-tasks/{tid}")
        assert again.status_code == 409
    # The CPE finishes the download after all: recorded, the task stays cancelled.
    cpe.complete_transfers = True
    await run_session(cpe, "127.0.0.1", acs.port)
    task = await _state(acs, tid)
    assert task["status"] == "cancelled"
    assert task["result"]["transfer"]["fault_code"] == 0  # type: ignore[index]
