"""A task whose session died after the CPE executed it (the ACS was killed, the connection
dropped) is not sent again when the Inform proves it was carried out; otherwise it is.
And a session's requeue of its unfinished tasks is fenced by their attempt count."""

from __future__ import annotations

import json

from daemons.acs import cwmp
from daemons.acs import engine as eng
from daemons.core.config import DatabaseConfig
from daemons.store import acs as store
from daemons.store.pg import create_pool
from tests.acs.sim import MODELS, Cpe, load_model

MODEL = "data_model_202BC1-BM632w-8KA8WA1151100043.csv"  # has ParameterKey


def _session(cpe: Cpe, events: list[tuple[str, str]] | None = None) -> eng.Session:
    body = cpe.inform()
    if events:
        extra = "".join(
            f"<EventStruct><EventCode>{c}</EventCode><CommandKey>{k}</CommandKey></EventStruct>"
            for c, k in events
        )
        body = body.replace(b"</Event>", extra.encode() + b"</Event>", 1)
    return eng.Session(eng.EngineConfig(), cwmp.parse(body))


def _sent(session: eng.Session) -> list[str]:
    """The RPCs the session sends, each answered with a CPE fault."""
    out: list[str] = []
    step = session.receive(cwmp.parse(b""))
    while step.body is not None:
        out.append(step.body.split(">", 1)[0].split(" ", 1)[0])
        step = session.receive(cwmp.parse(_cpe_fault(session.ns)))
    return out


def _cpe_fault(ns: str) -> bytes:
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:cwmp="{ns}"><soap:Header><cwmp:ID soap:mustUnderstand="1">1</cwmp:ID>'
        "</soap:Header><soap:Body><soap:Fault><faultcode>Client</faultcode>"
        "<faultstring>CWMP fault</faultstring><detail><cwmp:Fault><FaultCode>9002</FaultCode>"
        "<FaultString>x</FaultString></cwmp:Fault></detail></soap:Fault></soap:Body>"
        "</soap:Envelope>"
    ).encode()


def test_inform_evidence_closes_tasks_without_resending() -> None:
    cpe = Cpe(load_model(MODELS / MODEL))
    root = cpe.root
    writable = next(n for n, p in cpe.tree.items() if p.writable and not p.object)
    cpe.tree[root + "ManagementServer.ParameterKey"].value = "netd-task-1"
    tasks = [
        eng.Task(1, "setParameterValues", {"values": [[writable, "v", "xsd:string"]]}, 2),
        eng.Task(2, "reboot", {}, 2),
        eng.Task(3, "download", {"url": "http://127.0.0.1:9/fw"}, 2),
        eng.Task(4, "setParameterValues", {"values": [[writable, "w", "xsd:string"]]}, 2),
        eng.Task(5, "reboot", {}, 2),
        eng.Task(6, "addObject", {"name": root + "X."}, 2),
    ]
    session = _session(
        cpe, [("1 BOOT", ""), ("M Reboot", "netd-task-2"), ("M Download", "netd-task-3")]
    )
    session.plan(tasks, discovered=True)
    results = {
        e.task_id: (e.status, e.result) for e in session.confirmed if isinstance(e, eng.TaskResult)
    }
    assert results == {
        1: ("done", {"confirmed": "ParameterKey"}),
        2: ("done", {"confirmed": "M Reboot"}),
        3: ("running", {"status": 1, "confirmed": "M Download"}),
    }
    params = [e for e in session.confirmed if isinstance(e, eng.Params)]
    assert [(v.name, v.value) for p in params for v in p.values] == [(writable, "v")]
    # No proof for 4, 5 and 6 (another key, no "M Reboot" with theirs): sent, in order.
    assert _sent(session) == ["<cwmp:SetParameterValues", "<cwmp:Reboot", "<cwmp:AddObject"]


def test_a_factory_reset_started_before_is_proved_by_bootstrap() -> None:
    cpe = Cpe(load_model(MODELS / MODEL))
    session = _session(cpe, [("0 BOOTSTRAP", "")])
    session.plan(
        [eng.Task(8, "factoryReset", {}, 2), eng.Task(9, "factoryReset", {}, 1)], discovered=True
    )
    assert [(e.task_id, e.status) for e in session.confirmed if isinstance(e, eng.TaskResult)] == [
        (8, "done")
    ]
    assert _sent(session) == ["<cwmp:FactoryReset/"]  # task 9 was never started before


def test_no_evidence_without_the_key() -> None:
    cpe = Cpe(load_model(MODELS / MODEL))
    session = _session(cpe, [("M Reboot", "someone-else")])
    session.plan([eng.Task(7, "reboot", {}, 3)], discovered=True)
    assert session.confirmed == []
    assert _sent(session) == ["<cwmp:Reboot"]


async def test_requeue_is_fenced_by_attempts(migrated: str) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        dev = cwmp.DeviceId("M", "00AABB", "PC", "SN1")
        await store.register_device(
            pool,
            dev,
            ns="urn:dslforum-org:cwmp-1-0",
            root="Device.",
            ip=None,
            events=[],
            params=[],
            auto_register=True,
        )
        tid = await store.queue_task(pool, dev.key, "reboot", {}, "test")
        first = await store.start_tasks(pool, dev.key)
        assert [(t.id, t.attempts) for t in first] == [(tid, 1)]
        # The CPE informs again (its session died): started again at once, lease or not.
        second = await store.start_tasks(pool, dev.key)
        assert [(t.id, t.attempts) for t in second] == [(tid, 2)]
        # The dead session's requeue comes late: it no longer owns the task.
        await store.requeue_unfinished(pool, [(tid, 1)], 5, 30.0)
        row = await pool.fetchrow("SELECT status, attempts FROM cpe_tasks WHERE id = $1", tid)
        assert row is not None and (row["status"], row["attempts"]) == ("running", 2)
        await store.requeue_unfinished(pool, [(tid, 2)], 5, 30.0)
        row = await pool.fetchrow("SELECT status FROM cpe_tasks WHERE id = $1", tid)
        assert row is not None and row["status"] == "queued"
        # A transfer the CPE is carrying out (a result recorded) is not started again.
        await store.finish_task(pool, tid, "running", {"status": 1})
        await pool.execute("UPDATE cpe_tasks SET not_before = now() WHERE id = $1", tid)
        assert await store.start_tasks(pool, dev.key) == []
        assert json.loads(
            await pool.fetchval("SELECT result FROM cpe_tasks WHERE id = $1", tid)
        ) == {"status": 1}
    finally:
        await pool.close()
