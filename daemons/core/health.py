"""Liveness, readiness and startup state, shared by every daemon of a process."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from daemons.store.cache import Cache


class Health:
    """``started`` flips once startup is done; ``draining`` once shutdown begins."""

    def __init__(self, pool: asyncpg.Pool, cache: Cache, timeout: float = 1.0) -> None:
        self.pool = pool
        self.cache = cache
        self.timeout = timeout
        self.started = False
        self.draining = False

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

    async def ready(self) -> tuple[bool, dict[str, str]]:
        """Whether this process should receive traffic, and why (check name -> result)."""
        pg, rd = await asyncio.gather(self._postgres(), self._redis())
        checks = {
            "startup": "ok" if self.started else "starting",
            "draining": "yes" if self.draining else "no",
            "postgres": pg,
            "redis": rd,
        }
        ok = self.started and not self.draining and pg == "ok" and rd == "ok"
        return ok, checks
