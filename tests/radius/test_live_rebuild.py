"""Rebuilding Redis's live sessions from the sessions table (real PostgreSQL and Redis):
after Redis lost them, and after it missed updates but kept stale data."""

from __future__ import annotations

import time

from daemons.core.config import DatabaseConfig
from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.store import accounting
from daemons.store.cache import Cache
from daemons.store.pg import create_pool
from daemons.store.radius import sessions_key


def record(sid: str, status: int, at: float, ip: str | None = None) -> AcctRecord:
    return AcctRecord(
        nas="lo",
        status=status,
        acct_session_id=sid,
        unique_id=f"lo/{sid}",
        idem_key=f"lo/{sid}/{status}",
        event_time=at,
        username=f"user-{sid}",
        framed_ip=ip,
    )


async def live(cache: Cache) -> set[str]:
    return set(await accounting.live_session_ids(cache, limit=1000))


async def test_rebuild_after_redis_lost_everything(migrated: str, cache: Cache) -> None:
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        now = time.time()
        records = [
            record("a", AcctStatus.START, now - 60, "100.64.0.1"),
            record("b", AcctStatus.START, now - 60),
            record("b", AcctStatus.STOP, now - 30),
        ]
        await accounting.ensure_partitions(pool, now)
        await accounting.append_accounting(pool, records)
        assert not await accounting.live_sessions_present(cache)
        assert await accounting.rebuild_live_sessions(pool, cache) == (1, 0)
        assert await accounting.live_sessions_present(cache)
        assert await live(cache) == {"lo/a"}
        [view] = await accounting.live_sessions(cache, ["lo/a"])
        assert (view["username"], view["framed_ip"]) == ("user-a", "100.64.0.1")
        assert await cache.client.get(accounting.ip_session_key(cache, "100.64.0.1")) == b"lo/a"
    finally:
        await pool.close()


async def test_rebuild_repairs_a_redis_that_missed_updates(migrated: str, cache: Cache) -> None:
    """Redis kept its data but missed a Start and a Stop (unreachable, or restored from a
    snapshot): the rebuild adds the session it missed and removes the one the table has
    closed, and leaves alone a session the table does not know yet (its records still in
    the accounting spool)."""
    pool = await create_pool(DatabaseConfig(), migrated, "test")
    try:
        now = time.time()
        await accounting.ensure_partitions(pool, now)
        seen = [
            record("kept", AcctStatus.START, now - 90),
            record("closed", AcctStatus.START, now - 90, "100.64.0.2"),
        ]
        await accounting.append_accounting(pool, seen)
        await accounting.update_live_sessions(cache, seen, [])
        await accounting.rebuild_live_sessions(pool, cache)  # the marker: nothing lost
        spooled = [record("spooled", AcctStatus.START, now - 10)]
        await accounting.update_live_sessions(cache, spooled, [])
        # What Redis missed: a Stop and a new session.
        missed = [
            record("closed", AcctStatus.STOP, now - 20, "100.64.0.2"),
            record("new", AcctStatus.START, now - 20),
        ]
        await accounting.append_accounting(pool, missed)
        assert await live(cache) == {"lo/kept", "lo/closed", "lo/spooled"}

        assert await accounting.rebuild_live_sessions(pool, cache) == (2, 1)
        assert await live(cache) == {"lo/kept", "lo/new", "lo/spooled"}
        assert await accounting.live_sessions(cache, ["lo/closed"]) == []
        assert await cache.client.get(accounting.ip_session_key(cache, "100.64.0.2")) is None
        assert await cache.client.scard(sessions_key(cache, "user-closed")) == 0
        assert await cache.client.zcard(accounting.nas_sessions_key(cache, "lo")) == 3
    finally:
        await pool.close()
