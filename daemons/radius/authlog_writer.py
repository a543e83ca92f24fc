"""The authentication history's writer (issue 21): the shell around ``radius/authlog.py``.

The hot path only appends a record to a bounded buffer; a task writes the buffer to
PostgreSQL in one statement every ``interval`` seconds (and publishes rejects on the event
stream), summarizes the new ranges of the history's BRIN index every few seconds, and
purges records past the retention once an hour. When PostgreSQL does not
answer, records wait in the buffer (at most ``max_buffer``; beyond, the oldest are
dropped and counted) and the next flush retries them. A drain writes what is buffered,
within its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

import asyncpg
from redis.exceptions import RedisError

from daemons.radius import authlog
from daemons.radius.auth import Outcome
from daemons.radius.codec import Code, Packet
from daemons.store import authlog as store
from daemons.store.cache import Cache

log = logging.getLogger("netd.radius")
PURGE_EVERY = 3600.0
# How often the history's new BRIN ranges are summarized (store.authlog.summarize_auth_log):
# until then, lookups read them whole.
SUMMARIZE_EVERY = 5.0
STORE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class AuthLogWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: Cache,
        retention_days: float,
        interval: float = 0.5,
        max_buffer: int = 200_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._pool, self._cache = pool, cache
        self._retention = retention_days * 86400.0
        self._interval = interval
        # Records as binary COPY tuples (``authlog.line``), not requests nor rows: bytes are
        # not tracked by the garbage collector (holding the requests' packets, thousands
        # between flushes, made every collection walk them), and the flush only joins them:
        # asyncpg's encoding of rows of Python values cost netd ~1 µs a record on the loop,
        # and the rows themselves ~1.7 µs (benchmarks/radius_auth.py, BENCH_AUTH_LOG_ONLY).
        self._buffer: deque[bytes] = deque()
        # The event-stream entries of the buffered rejects (few: only rejects make one).
        self._rejects: deque[dict[str, object]] = deque()
        self._max = max_buffer
        self._on_drop = on_drop
        self._task: asyncio.Task[None] | None = None
        self._purged_at = 0.0
        self._summarized_at = time.monotonic()
        self._summary_start = 0  # the first block not known to be summarized
        self._summarized_written = 0  # self.written at the last summary
        self._summaries = True  # False once the role was found not to own the index
        self.written = 0
        self.dropped = 0

    def add(
        self, pkt: Packet, nas: str, username: str | None, outcome: Outcome, now: float
    ) -> None:
        """Never waits: the row (a few µs) goes to the buffer. Access-Challenges are steps,
        not results: not recorded. The oldest record goes when the buffer is full."""
        if outcome.code == Code.ACCESS_CHALLENGE:
            return
        buf = self._buffer
        if len(buf) >= self._max:
            buf.popleft()
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(1)
        buf.append(authlog.line(pkt, nas, username, outcome, now))
        if outcome.code == Code.ACCESS_REJECT:
            rejects = self._rejects
            if len(rejects) >= self._max:
                rejects.popleft()
            rejects.append(authlog.reject_data(authlog.row(pkt, nas, username, outcome, now)))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()
            if time.monotonic() - self._summarized_at >= SUMMARIZE_EVERY:
                await self.summarize()
            now = time.time()
            if now - self._purged_at >= PURGE_EVERY:
                self._purged_at = now
                await self.purge(now - self._retention)

    async def summarize(self) -> None:
        """Summarize the history's new BRIN ranges, when anything was written since the last
        time. Another writer (or VACUUM) holding the lock: next time."""
        self._summarized_at = time.monotonic()
        if not self._summaries or self.written == self._summarized_written:
            return
        try:
            _, blocks = await store.summarize_auth_log(self._pool, self._summary_start)
        except asyncpg.LockNotAvailableError:
            return
        except asyncpg.InsufficientPrivilegeError as exc:
            self._summaries = False
            log.warning(
                "auth log index not summarized by netd: the database role does not own it; "
                "VACUUM summarizes it, and until then lookups read the newest records whole",
                extra={"fields": {"error": str(exc)}},
            )
            return
        except STORE_ERRORS as exc:
            log.warning("auth log index not summarized", extra={"fields": {"error": repr(exc)}})
            return
        self._summarized_written = self.written
        self._summary_start = store.next_start(blocks)

    async def purge(self, before: float) -> None:
        """Delete records older than ``before``; reset the index ranges they emptied."""
        try:
            n, emptied = await store.purge_auth_events(self._pool, before)
        except STORE_ERRORS as exc:
            log.warning("auth log not purged", extra={"fields": {"error": repr(exc)}})
            return
        if n:
            log.info("auth log purged", extra={"fields": {"records": n}})
        try:
            await store.reset_ranges(self._pool, emptied)
        except STORE_ERRORS as exc:
            log.warning(
                "auth log index ranges of purged records not reset; lookups may read them whole",
                extra={"fields": {"ranges": len(emptied), "error": repr(exc)}},
            )

    async def flush(self) -> None:
        """Write what is buffered; on a store error it stays for the next flush."""
        if not self._buffer:
            return
        batch = list(self._buffer)
        rejects = list(self._rejects)
        dropped = self.dropped
        try:
            await store.copy_auth_lines(self._pool, batch)
        except STORE_ERRORS as exc:
            log.warning(
                "auth log not written; kept for the next try",
                extra={"fields": {"records": len(batch), "error": repr(exc)}},
            )
            return
        # Records added meanwhile stay; any dropped meanwhile were the batch's oldest.
        for _ in range(max(0, len(batch) - (self.dropped - dropped))):
            self._buffer.popleft()
        self.written += len(batch)
        for _ in range(min(len(rejects), len(self._rejects))):
            self._rejects.popleft()
        try:
            await store.publish_rejects(self._cache, rejects)
        except (RedisError, OSError) as exc:
            log.warning("auth rejects not published", extra={"fields": {"error": repr(exc)}})

    async def close(self, deadline: float = 5.0) -> None:
        """Stop the task and write what is left, within ``deadline`` seconds."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), deadline)
