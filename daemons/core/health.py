"""Liveness, readiness and startup state, shared by every daemon of a process."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from daemons.store.cache import Cache


class Health:
    """``started`` flips once startup is done; ``draining`` once shutdown begins.

    Store checks are single-flight and their result is kept for ``result_ttl`` seconds:
    however many probes arrive at once, at most one ``SELECT 1`` and one ``PING`` are in
    flight, so a probe storm cannot exhaust the pool and turn a busy node unready.
    """

    def __init__(
        self, pool: asyncpg.Pool, cache: Cache, timeout: float = 1.0, result_ttl: float = 0.5
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.timeout = timeout
        self.result_ttl = result_ttl
        self.started = False
        self.draining = False
        self._inflight: asyncio.Future[tuple[str, str]] | None = None
        self._last: tuple[float, tuple[str, str]] | None = None

    async def _postgres(self) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                await self.pool.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return f"down: {type(exc).__name__}"
        return "ok"

    async def _redis(self) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                await self.cache.ping()
        except (OSError, TimeoutError, RedisError) as exc:
            return f"down: {type(exc).__name__}"
        return "ok"

    async def _check_stores(self) -> tuple[str, str]:
        pg, rd = await asyncio.gather(self._postgres(), self._redis())
        return pg, rd

    async def stores(self) -> tuple[str, str]:
        """PostgreSQL and Redis check results, shared by concurrent callers."""
        loop = asyncio.get_running_loop()
        if self._last is not None and loop.time() - self._last[0] < self.result_ttl:
            return self._last[1]
        if self._inflight is None:
            self._inflight = loop.create_task(self._check_stores())
            self._inflight.add_done_callback(self._remember)
        return await asyncio.shield(self._inflight)

    def _remember(self, done: asyncio.Future[tuple[str, str]]) -> None:
        self._inflight = None
        if not done.cancelled() and done.exception() is None:
            self._last = (asyncio.get_running_loop().time(), done.result())

    async def ready(self) -> tuple[bool, dict[str, str]]:
        """Whether this process should receive traffic, and why (check name -> result)."""
        pg, rd = await self.stores()
        checks = {
            "startup": "ok" if self.started else "starting",
            "draining": "yes" if self.draining else "no",
            "postgres": pg,
            "redis": rd,
        }
        ok = self.started and not self.draining and pg == "ok" and rd == "ok"
        return ok, checks
