"""Keeping in-memory state in step with PostgreSQL: reload now, on NOTIFY, and on a timer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from daemons.core.ratelog import RateLimitedLog

STORE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    RedisError,
    TimeoutError,
)


async def reload_on_notify(
    pool: asyncpg.Pool,
    channels: Sequence[str],
    reload: Callable[[], Awaitable[None]],
    every: float,
    ratelog: RateLimitedLog,
    failed: str,
) -> None:
    """Run ``reload`` at once, then on every NOTIFY on ``channels`` and every ``every``
    seconds anyway, until cancelled. A store error keeps the current state (one line
    ``failed``, rate-limited) and the LISTEN connection is taken again next round. The
    connection goes back to the pool when the task ends, or the pool's close would wait."""
    changed = asyncio.Event()
    conn: Any = None

    def notified(*_: object) -> None:
        changed.set()

    async def give_back(conn: Any) -> None:
        # Listeners are removed first: asyncpg warns (outside any log format) about a
        # connection released with a listener still on it.
        with contextlib.suppress(Exception):
            if not conn.is_closed():
                for channel in channels:
                    await conn.remove_listener(channel, notified)
        with contextlib.suppress(Exception):
            await pool.release(conn)

    try:
        while True:
            try:
                if conn is None or conn.is_closed():
                    conn = await pool.acquire()
                    for channel in channels:
                        await conn.add_listener(channel, notified)
                await reload()
            except STORE_ERRORS as exc:
                ratelog.log(
                    logging.WARNING, "reload:" + ",".join(channels), failed, error=repr(exc)
                )
                if conn is not None:
                    await give_back(conn)
                    conn = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), every)
            changed.clear()
    finally:
        if conn is not None:
            await give_back(conn)
