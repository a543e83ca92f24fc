"""The embedded PostgreSQL and Redis: start, reuse, persist, stop."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from daemons.store.embedded import EmbeddedStores
from tests.support import pid_alive


def stores(state: Path) -> EmbeddedStores:
    return EmbeddedStores(state, postgres=True, redis=True, run_as="netd", timeout=60)


async def test_start_reuse_persist_and_stop(tmp_path: Path) -> None:
    state = tmp_path / "var" / "netd"
    first = stores(state)
    first.acquire()
    assert first.postgres is not None and first.redis is not None
    pg_pid, redis_pid = first.postgres.pid(), first.redis.pid()
    assert pg_pid and redis_pid and pid_alive(pg_pid) and pid_alive(redis_pid)

    conn = await asyncpg.connect(first.postgres.dsn)
    await conn.execute("CREATE TABLE keep (v text); INSERT INTO keep VALUES ('kept')")
    await conn.close()
    rd = aioredis.Redis.from_url(first.redis.url)
    await rd.set("netd:{t}:k", b"v")
    await rd.aclose()

    # A second user (another netd process) reuses the running servers.
    second = stores(state)
    second.acquire()
    assert second.postgres is not None and second.postgres.pid() == pg_pid
    assert second.redis is not None and second.redis.pid() == redis_pid

    assert first.release() is False, "servers must stay up while another user holds them"
    assert pid_alive(pg_pid) and pid_alive(redis_pid)
    assert second.release() is True
    assert not pid_alive(pg_pid) and not pid_alive(redis_pid)

    # The next start finds the data where it was left.
    third = stores(state)
    third.acquire()
    try:
        assert third.postgres is not None and third.redis is not None
        assert third.postgres.pid() != pg_pid
        conn = await asyncpg.connect(third.postgres.dsn)
        assert await conn.fetchval("SELECT v FROM keep") == "kept"
        await conn.close()
        rd = aioredis.Redis.from_url(third.redis.url)
        assert await rd.get("netd:{t}:k") == b"v"
        await rd.aclose()
    finally:
        third.release()


async def test_adopts_servers_left_by_a_killed_process(tmp_path: Path) -> None:
    state = tmp_path / "netd"
    crashed = stores(state)
    crashed.acquire()
    assert crashed.postgres is not None
    pid = crashed.postgres.pid()
    crashed._lease = None  # as if the process died: its lock went with it, servers run on
    again = stores(state)
    again.acquire()
    assert again.postgres is not None and again.postgres.pid() == pid
    assert again.release() is True
    assert pid is not None and not pid_alive(pid)
