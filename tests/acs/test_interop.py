"""The CPE simulator against a real `netd acs`: several real data models on both roots,
every RPC as a task, a firmware Download finished by TransferComplete in a later session,
and the quirks of real CPE stacks."""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from daemons.core.secrets import Sealer
from daemons.store import acs as store
from tests.acs.conftest import AcsServer
from tests.acs.sim import Cpe, Http, load_model, model_files, run_session

MODELS = {p.stem: p for p in model_files()}
IGD = MODELS["device-00259E-EG8145V5-48575443A94196A5-2023-03-28T154335106Z"]
TR181 = MODELS["device-1C61B4-EX220-2226469000523"]


async def _wait_no_sessions(acs: AcsServer) -> None:
    for _ in range(100):
        if acs.metric("netd_acs_sessions_live") == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("a session was left behind")


@pytest.mark.parametrize(
    "model",
    [IGD, TR181, MODELS["device-9CA2F4-EC220_G5_V2-22282X5007025"]],
    ids=lambda p: p.stem[:30],
)
async def test_first_session_discovers_the_whole_tree(acs: AcsServer, model: object) -> None:
    cpe = Cpe(load_model(model), serial_suffix="-disc")  # type: ignore[arg-type]
    statuses = await run_session(cpe, "127.0.0.1", acs.port)
    assert statuses[0] == 200 and statuses[-1] == 204
    leaves = {
        n: p.value for n, p in cpe.tree.items() if n.startswith(cpe.root) and not n.endswith(".")
    }
    stored = await store.device_params(acs.pool, cpe.device_id)
    assert {
        n: r["value"] for n, r in stored.items() if not r["object"] and r["value"] is not None
    } == leaves
    writable = {n for n, p in cpe.tree.items() if p.writable and n.startswith(cpe.root)}
    assert {n for n, r in stored.items() if r["writable"]} == writable
    dev = await acs.pool.fetchrow("SELECT * FROM cpe_devices WHERE id = $1", cpe.device_id)
    assert dev["root"] == cpe.root.rstrip(".") and dev["discovered_at"] is not None
    assert dev["last_events"] == ["2 PERIODIC"]
    # The next session reads nothing again: the tree is known.
    cpe.seen.clear()
    assert (await run_session(cpe, "127.0.0.1", acs.port))[-1] == 204
    assert cpe.seen == []
    await _wait_no_sessions(acs)


async def test_tasks_run_in_order_in_the_next_session(acs: AcsServer) -> None:
    cpe = Cpe(load_model(TR181), serial_suffix="-tasks", ns="urn:dslforum-org:cwmp-1-4")
    await run_session(cpe, "127.0.0.1", acs.port)
    wifi = next(n for n, p in cpe.tree.items() if p.writable and n.endswith(".SSID"))
    ids = [
        await store.queue_task(acs.pool, cpe.device_id, kind, args, "test")
        for kind, args in (
            ("setParameterValues", {"values": [[wifi, "netd-wifi", "xsd:string"]]}),
            ("getParameterValues", {"names": [wifi]}),
            ("setParameterValues", {"values": [["Device.Nope", "1", "xsd:string"]]}),
            ("download", {"url": "http://127.0.0.1:1/fw.bin", "file_size": 100}),
            ("reboot", {}),
        )
    ]
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    assert cpe.seen == [
        "SetParameterValues",
        "GetParameterValues",
        "SetParameterValues",
        "Download",
        "Reboot",
    ]
    assert cpe.tree[wifi].value == "netd-wifi"
    tasks = [await store.get_task(acs.pool, i) for i in ids]
    assert [t["status"] for t in tasks if t] == ["done", "done", "fault", "running", "done"]
    fault = await acs.pool.fetchrow("SELECT * FROM cpe_faults WHERE task_id = $1", ids[2])
    assert fault["code"] == 9005
    stored = await store.device_params(acs.pool, cpe.device_id, wifi)
    assert stored[wifi]["value"] == "netd-wifi"
    # The firmware lands later: TransferComplete in the next session closes the task.
    cpe.seen.clear()
    statuses = await run_session(cpe, "127.0.0.1", acs.port)
    assert statuses[-1] == 204
    done = await store.get_task(acs.pool, ids[3])
    assert (
        done is not None
        and done["status"] == "done"
        and done["result"]["transfer"]["fault_code"] == 0
    )
    await _wait_no_sessions(acs)


async def test_quirks_old_cookie_odd_prefix_and_gzip(acs: AcsServer) -> None:
    cpe = Cpe(load_model(IGD), serial_suffix="-quirk")
    await run_session(cpe, "127.0.0.1", acs.port)
    old = cpe.cookie
    assert old
    # An Inform with a previous session's cookie starts a new session all the same.
    assert (await run_session(cpe, "127.0.0.1", acs.port))[-1] == 204
    assert cpe.cookie != old
    # A gzip body, and the cookie fallback across a new TCP connection.
    first = await Http.open("127.0.0.1", acs.port)
    status, got, _ = await first.post(
        "/", gzip.compress(cpe.inform()), {"Content-Encoding": "gzip"}
    )
    assert status == 200
    cookie = got["set-cookie"].split(";", 1)[0]
    await first.close()
    second = await Http.open("127.0.0.1", acs.port)
    status, _, _ = await second.post("/", b"", {"Cookie": cookie})
    assert status == 204
    await second.close()
    await _wait_no_sessions(acs)


async def test_every_rpc_over_the_wire(acs: AcsServer) -> None:
    cpe = Cpe(
        load_model(MODELS["device-C0B101-ZXHN_H199A-ZTEYH86LCN10105-2023-03-28T154022233Z"]),
        serial_suffix="-all",
    )
    await run_session(cpe, "127.0.0.1", acs.port)
    root = cpe.root
    writable = next(n for n, p in cpe.tree.items() if p.writable and not p.object)
    table = next(n for n, p in cpe.tree.items() if p.object and p.writable and n.count(".") >= 2)
    kinds = [
        ("getParameterNames", {"path": root, "next_level": True}),
        ("getParameterAttributes", {"names": [writable]}),
        ("setParameterAttributes", {"attributes": [{"name": writable, "notification": 2}]}),
        ("addObject", {"name": table}),
        ("deleteObject", {"name": table + "1."}),
        ("refreshObject", {"path": root + "DeviceInfo."}),
        ("upload", {"url": "http://127.0.0.1:1/up"}),
        ("scheduleInform", {"delay": 5}),
        ("factoryReset", {}),
    ]
    ids = [await store.queue_task(acs.pool, cpe.device_id, k, a, "test") for k, a in kinds]
    instance_leaves = any(  # AddObject copies the table's first instance, if it has one
        n.startswith(table) and n[len(table) :].split(".")[0].isdigit() and not n.endswith(".")
        for n in cpe.tree
    )
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    statuses = [(await store.get_task(acs.pool, i))["status"] for i in ids]  # type: ignore[index]
    assert statuses == ["done"] * 6 + ["running", "done", "done"]
    assert cpe.seen == [
        "GetParameterNames",
        "GetParameterAttributes",
        "SetParameterAttributes",
        "AddObject",
        "GetParameterNames",  # the new instance is read into the stored tree
        *(["GetParameterValues"] if instance_leaves else []),
        "DeleteObject",
        "GetParameterNames",
        "GetParameterValues",
        "Upload",
        "ScheduleInform",
        "FactoryReset",
    ]


async def test_hostile_and_broken_input_gets_4xx_and_leaves_no_session(acs: AcsServer) -> None:
    url = f"http://127.0.0.1:{acs.port}/"
    cpe = Cpe(load_model(IGD), serial_suffix="-bad")
    bodies = {
        "billion laughs": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">'
        b'<!ENTITY b "&a;&a;">]><l>&b;</l>',
        "xxe": b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]><f>&x;</f>',
        "malformed": b"<soap:Envelope",
        "wrong namespace": cpe.inform()
        .replace(b"<cwmp:Inform>", b'<x:Inform xmlns:x="urn:x">')
        .replace(b"</cwmp:Inform>", b"</x:Inform>"),
        "no session": cpe.envelope("<cwmp:GetParameterValuesResponse/>"),
    }
    async with httpx.AsyncClient(timeout=10) as c:
        for what, body in bodies.items():
            resp = await c.post(url, content=body)
            assert resp.status_code == 400, what
        big = await c.post(url, content=b"<x>" + b"a" * (5 * 1024 * 1024) + b"</x>")
        assert big.status_code == 413
        bomb = gzip.compress(b"a" * (64 * 1024 * 1024))
        resp = await c.post(url, content=bomb, headers={"Content-Encoding": "gzip"})
        assert resp.status_code == 413
        assert (await c.get(url)).status_code == 405
        # A CPE that vanishes mid-session: the session is dropped after session_timeout.
        conn = await Http.open("127.0.0.1", acs.port)
        status, _, _ = await conn.post("/", cpe.inform(), {})
        assert status == 200
        await conn.close()
        # An unknown method inside a session gets fault 8000.
        conn = await Http.open("127.0.0.1", acs.port)
        await conn.post("/", cpe.inform(), {})
        status, _, data = await conn.post("/", cpe.envelope("<cwmp:Kick/>"), {})
        assert status == 200 and b"<FaultCode>8000</FaultCode>" in data
        await conn.close()
    await asyncio.sleep(2.5)
    await _wait_no_sessions(acs)
    # The first session is replaced by the second Inform of the same CPE, the second times out.
    assert acs.metric("netd_acs_sessions_total", outcome="timeout") >= 1
    assert acs.metric("netd_acs_sessions_total", outcome="replaced") >= 1
    assert acs.proc.proc.poll() is None


async def test_per_device_credentials_need_digest_even_when_auth_is_off(acs: AcsServer) -> None:
    cpe = Cpe(load_model(IGD), serial_suffix="-own", username="own-user", password="own-pw")
    sealer = Sealer(bytes.fromhex(acs.env["NETD_SECRETS_KEY"]))
    await store.set_credentials(acs.pool, sealer, cpe.device_id, "own-user", "own-pw")
    statuses = await run_session(cpe, "127.0.0.1", acs.port)
    assert statuses[:2] == [401, 200] and statuses[-1] == 204
    thief = Cpe(load_model(IGD), serial_suffix="-own", username="own-user", password="guess")
    assert await run_session(thief, "127.0.0.1", acs.port) == [401, 401]
    sealed = await acs.pool.fetchval(
        "SELECT password_enc FROM cpe_credentials WHERE device_id = $1", cpe.device_id
    )
    assert b"own-pw" not in sealed
    assert await store.delete_credentials(acs.pool, cpe.device_id)
    assert (await run_session(cpe, "127.0.0.1", acs.port))[0] == 200


async def test_a_vanished_cpe_gets_its_task_again_later_and_old_tasks_expire(
    acs: AcsServer,
) -> None:
    cpe = Cpe(load_model(IGD), serial_suffix="-gone")
    await run_session(cpe, "127.0.0.1", acs.port)
    task_id = await store.queue_task(acs.pool, cpe.device_id, "reboot", {}, "test")
    stale = await store.queue_task(
        acs.pool,
        cpe.device_id,
        "factoryReset",
        {},
        "test",
        expires_at=datetime.now(UTC) + timedelta(seconds=1),
    )
    await asyncio.sleep(1.2)
    conn = await Http.open("127.0.0.1", acs.port)
    await conn.post("/", cpe.inform(), {})
    status, _, data = await conn.post("/", b"", {})
    assert status == 200 and b"Reboot" in data  # then the CPE drops off the network
    await conn.close()
    await asyncio.sleep(2.5)  # session_timeout is 2 s
    await _wait_no_sessions(acs)
    for _ in range(50):
        task = await store.get_task(acs.pool, task_id)
        assert task is not None
        if task["status"] == "queued":
            break
        await asyncio.sleep(0.1)
    assert task["status"] == "queued" and task["attempts"] == 1
    assert task["not_before"] > datetime.now(UTC)  # backoff: not in the very next session
    expired = await store.get_task(acs.pool, stale)
    assert expired is not None and expired["status"] == "expired"
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    assert cpe.seen == []  # still backing off
    await acs.pool.execute("UPDATE cpe_tasks SET not_before = now() WHERE id = $1", task_id)
    await run_session(cpe, "127.0.0.1", acs.port)
    assert cpe.seen == ["Reboot"]
    done = await store.get_task(acs.pool, task_id)
    assert done is not None and (done["status"], done["attempts"]) == ("done", 2)


async def test_a_task_whose_session_died_with_its_acs_runs_again_at_the_next_inform(
    acs: AcsServer,
) -> None:
    """kill -9 of an ACS mid-session leaves a task running with no result: the CPE's next
    Inform means that session is over (a CPE holds one session at a time), so the task runs
    in the new session rather than being lost (tests/faults/test_kill9.py does it for real)."""
    cpe = Cpe(load_model(IGD), serial_suffix="-lease")
    await run_session(cpe, "127.0.0.1", acs.port)
    task_id = await store.queue_task(acs.pool, cpe.device_id, "reboot", {}, "test")
    await acs.pool.execute(
        "UPDATE cpe_tasks SET status = 'running', attempts = 1, "
        "not_before = now() + interval '1 hour' WHERE id = $1",
        task_id,
    )
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    assert cpe.seen == ["Reboot"]
    done = await store.get_task(acs.pool, task_id)
    assert done is not None and (done["status"], done["attempts"]) == ("done", 2)
