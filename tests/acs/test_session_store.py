"""The session path's store verbs (store/acs_session.py) on a real PostgreSQL: what one
statement per CPE message decides, and that it is one statement.

Issue 30: an ACS session (Inform, GetParameterValues, end) cost about 21 round trips to
PostgreSQL (a reset query at each release, BEGIN/COMMIT around each verb, the credentials,
the device, its parameters, three task updates, the cancel check, the values, the result);
the ACS spent 1.04 ms of CPU on it. Now an Inform is one statement and each later message
one statement shared with other sessions' messages.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from daemons.acs import cwmp
from daemons.core.config import DatabaseConfig
from daemons.core.secrets import Sealer
from daemons.store import acs as store
from daemons.store import acs_session as session
from daemons.store.pg import create_pool

NS = "urn:dslforum-org:cwmp-1-0"
T = TypeVar("T")


def _dev(serial: str) -> cwmp.DeviceId:
    return cwmp.DeviceId("M", "00AABB", "PC", serial)


def _pv(name: str, value: str, type_: str = "xsd:string") -> cwmp.ParamValue:
    return cwmp.ParamValue(name, value, type_)


async def _inform(db: Any, dev: cwmp.DeviceId, **kw: Any) -> session.Informed:
    args: dict[str, Any] = {
        "ns": NS,
        "root": "Device.",
        "ip": "192.0.2.7",
        "events": ["1 BOOT"],
        "params": [_pv("Device.DeviceInfo.SoftwareVersion", "1.0")],
        "auto_register": True,
        "max_attempts": 3,
    }
    args.update(kw)
    return await session.inform(db, dev, **args)


async def _counted(dsn: str, run: Callable[[Any], Awaitable[T]]) -> tuple[T, list[str]]:
    """What ``run`` gives on a connection of the ACS's session pool, and the queries it
    sent, the pool's own at the release included (not asyncpg's look-up of a type it
    meets for the first time on a connection)."""
    pool = await session.open_session_pool(DatabaseConfig(), dsn, "test")
    queries: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: queries.append(q.query))
            out = await run(conn)
        return out, [q for q in queries if "pg_catalog" not in q and "'jit'" not in q]
    finally:
        await pool.close()


async def _status(pool: asyncpg.Pool, task_id: int) -> tuple[str, int, Any]:
    row = await pool.fetchrow(
        "SELECT status, attempts, result FROM cpe_tasks WHERE id = $1", task_id
    )
    assert row is not None
    result = json.loads(row["result"]) if row["result"] is not None else None
    return row["status"], row["attempts"], result


async def test_inform_is_one_statement_and_starts_what_is_due(migrated: str) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        dev = _dev("SN1")
        first = await _inform(pool, dev)
        assert (first.written, first.known, first.discovered, first.listed) == (
            True,
            False,
            False,
            False,
        )
        assert first.tasks == [] and first.own is None
        due = await store.queue_task(pool, dev.key, "reboot", {}, "t")
        later = await store.queue_task(pool, dev.key, "reboot", {}, "t")
        await pool.execute(
            "UPDATE cpe_tasks SET not_before = now() + interval '1 hour' WHERE id = $1", later
        )
        gone = await store.queue_task(pool, dev.key, "reboot", {}, "t")
        await pool.execute(
            "UPDATE cpe_tasks SET expires_at = now() - interval '1 s' WHERE id = $1", gone
        )
        tired = await store.queue_task(pool, dev.key, "reboot", {}, "t")
        await pool.execute(
            "UPDATE cpe_tasks SET status = 'running', attempts = 3 WHERE id = $1", tired
        )
        waiting = await store.queue_task(pool, dev.key, "download", {}, "t")
        await pool.execute(
            "UPDATE cpe_tasks SET status = 'running', attempts = 1, result = '{}' WHERE id = $1",
            waiting,
        )
        await pool.execute("UPDATE cpe_devices SET discovered_at = now() WHERE id = $1", dev.key)
        again, queries = await _counted(migrated, lambda db: _inform(db, dev))
        assert len(queries) == 1  # one round trip, one commit, and no reset query
        assert (again.written, again.known, again.discovered) == (True, True, True)
        assert [(t.id, t.attempts) for t in again.tasks] == [(due, 1)]
        assert (await _status(pool, due))[:2] == ("running", 1)
        assert (await _status(pool, later))[:2] == ("queued", 0)
        assert (await _status(pool, gone))[:2] == ("expired", 0)
        status, attempts, result = await _status(pool, tired)
        assert (status, attempts) == ("fault", 3) and "no answer after 3" in result["string"]
        assert (await _status(pool, waiting))[:2] == ("running", 1)
        # A BOOTSTRAP forgets the tree: it is read anew.
        boot = await _inform(pool, dev, events=["0 BOOTSTRAP"])
        assert (boot.known, boot.discovered, boot.listed) == (True, False, False)
        assert await pool.fetchval(
            "SELECT discovered_at IS NULL FROM cpe_devices WHERE id = $1", dev.key
        )
    finally:
        await pool.close()


async def test_inform_writes_nothing_unless_admitted(migrated: str) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        stranger = await _inform(pool, _dev("SN2"), auto_register=False)
        assert not stranger.written and not stranger.known
        refused = await _inform(pool, _dev("SN3"), admitted=False)
        assert not refused.written
        assert not await pool.fetchval(
            "SELECT count(*) FROM cpe_devices WHERE serial IN ('SN2', 'SN3')"
        )
        # A device with its own credentials: nothing is written on the global ones; the
        # statement hands the sealed password back, and the caller's check trusts it.
        dev = _dev("SN4")
        await _inform(pool, dev)
        tid = await store.queue_task(pool, dev.key, "reboot", {}, "t")
        sealer = Sealer(bytes(32))
        await store.set_credentials(pool, sealer, dev.key, "cpe", "pw")
        held = await _inform(pool, dev, params=[_pv("Device.DeviceInfo.SoftwareVersion", "2")])
        assert not held.written and held.tasks == [] and held.own is not None
        assert store.open_credentials(sealer, dev.key, *held.own) == ("cpe", "pw")
        assert (await _status(pool, tid))[0] == "queued"
        assert (
            await pool.fetchval("SELECT software_version FROM cpe_devices WHERE id = $1", dev.key)
            == "1.0"
        )
        trusted = await _inform(pool, dev, trusted=True, admitted=False)
        assert trusted.written and [t.id for t in trusted.tasks] == [tid]
    finally:
        await pool.close()


async def test_steps_of_several_sessions_in_one_statement(migrated: str) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        a, b = _dev("SNA"), _dev("SNB")
        await _inform(pool, a)
        await _inform(pool, b)
        ta = await store.queue_task(pool, a.key, "getParameterValues", {}, "t")
        tb = await store.queue_task(pool, b.key, "download", {}, "t")
        tc = await store.queue_task(pool, b.key, "reboot", {}, "t")
        await store.cancel_task(pool, tc)
        udp = "Device.ManagementServer.UDPConnectionRequestAddress"
        steps = [
            session.StepWrite(
                a.key,
                [_pv("Device.X", "1\x00"), _pv("Device.X", "2"), _pv(udp, " 198.51.100.1:7 ")],
                discovered=True,
                finished=[session.Finish(ta, "done", {"n": 1})],
            ),
            session.StepWrite(
                b.key,
                [_pv("Device.X", "b", "xsd:int")],
                finished=[session.Finish(tb, "running", {"status": 1}, 30.0)],
                next_task=tc,
            ),
            session.StepWrite(a.key, next_task=ta),
        ]
        cancelled, queries = await _counted(migrated, lambda db: session.record_steps(db, steps))
        assert len(queries) == 1
        assert cancelled == [False, True, False]
        values = await pool.fetch(
            "SELECT device_id, value, type FROM cpe_parameters WHERE name = 'Device.X' "
            "ORDER BY device_id"
        )
        assert [tuple(r) for r in values] == [(a.key, "2", "xsd:string"), (b.key, "b", "xsd:int")]
        row = await pool.fetchrow(
            "SELECT udp_connection_request_address, discovered_at IS NOT NULL AS d, "
            "refreshed_at IS NOT NULL AS r FROM cpe_devices WHERE id = $1",
            a.key,
        )
        assert row is not None and tuple(row) == ("198.51.100.1:7", True, True)
        assert (await _status(pool, ta))[0::2] == ("done", {"n": 1})
        status, _, result = await _status(pool, tb)
        assert status == "running" and result == {"status": 1, "deadline_s": "30"}
        assert await pool.fetchval("SELECT deadline_at > now() FROM cpe_tasks WHERE id = $1", tb)
    finally:
        await pool.close()


async def test_informs_of_several_devices_in_one_statement(migrated: str) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        a, b, c = _dev("SNX"), _dev("SNY"), _dev("SNZ")
        await _inform(pool, a)
        ta = await store.queue_task(pool, a.key, "reboot", {}, "t")
        sealer = Sealer(bytes(32))
        await _inform(pool, c)
        await store.set_credentials(pool, sealer, c.key, "own", "pw")
        pv = [_pv("Device.ManagementServer.STUNEnable", "1"), _pv("Device.Y", "y")]
        writes = [
            session.InformWrite(a, NS, "Device.", "192.0.2.1", ["0 BOOTSTRAP"], pv, True),
            session.InformWrite(b, NS, "Device.", None, ["1 BOOT"], pv, True),
            session.InformWrite(c, NS, "Device.", None, ["1 BOOT"], pv, True),
        ]
        got, queries = await _counted(migrated, lambda db: session.informs(db, writes, 3))
        assert len(queries) == 1
        assert [(g.written, g.known) for g in got] == [(True, True), (True, False), (False, True)]
        assert [t.id for t in got[0].tasks] == [ta] and got[1].tasks == []
        assert got[2].own is not None and got[0].own is None
        rows = await pool.fetch("SELECT id, stun_enabled, last_events FROM cpe_devices ORDER BY id")
        assert {r["id"]: (r["stun_enabled"], list(r["last_events"])) for r in rows} == {
            a.key: (True, ["0 BOOTSTRAP"]),
            b.key: (True, ["1 BOOT"]),
            c.key: (False, ["1 BOOT"]),
        }
        assert (
            await pool.fetchval("SELECT count(*) FROM cpe_parameters WHERE name = 'Device.Y'") == 2
        )
        # Two Informs of one device in a batch are refused together (the batcher then
        # runs them one by one).
        twice = [writes[1], writes[1]]
        try:
            await session.informs(pool, twice, 3)
        except asyncpg.PostgresError:
            pass
        else:
            raise AssertionError("two Informs of one device were written in one statement")
    finally:
        await pool.close()
