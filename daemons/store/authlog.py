"""Store verbs for the authentication history (issue 21): append a batch, read it back
with the session each login started, purge what is older than the retention."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from daemons.radius.authlog import (
    COLUMNS,
    COPY_COLUMNS,
    COPY_HEADER,
    COPY_TRAILER,
    AuthEvent,
    Row,
)
from daemons.store import stream
from daemons.store.cache import Cache

_INSERT = """
INSERT INTO radius_auth_log (at, username, nas, nas_port, calling_station, method, result,
    reason, plan, given)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[])
"""


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def append_auth_events(pool: asyncpg.Pool, events: Sequence[AuthEvent]) -> None:
    """One statement for the batch. Raises asyncpg/OS errors (then nothing was written)."""
    if not events:
        return
    await pool.execute(
        _INSERT,
        [_ts(e.at) for e in events],
        [e.username for e in events],
        [e.nas for e in events],
        [e.nas_port for e in events],
        [e.calling_station for e in events],
        [e.method for e in events],
        [e.result for e in events],
        [e.reason for e in events],
        [e.plan for e in events],
        [json.dumps(e.given) for e in events],
    )


async def copy_auth_rows(pool: asyncpg.Pool, rows: Sequence[Row]) -> None:
    """Rows by binary COPY (cheaper for PostgreSQL than an INSERT). Raises asyncpg/OS
    errors (then nothing was written)."""
    if rows:
        async with pool.acquire() as conn:
            await conn.copy_records_to_table("radius_auth_log", records=rows, columns=COLUMNS)


async def copy_auth_lines(pool: asyncpg.Pool, lines: Sequence[bytes]) -> None:
    """The writer's batch: tuples already in binary COPY form (``authlog.line``), sent as
    one COPY as they are. Raises asyncpg/OS errors (then nothing was written)."""
    if lines:
        async with pool.acquire() as conn:
            await conn.copy_to_table(
                "radius_auth_log", source=_once(lines), columns=COPY_COLUMNS, format="binary"
            )


async def _once(lines: Sequence[bytes]) -> AsyncIterator[bytes]:
    """The COPY's data in one piece (asyncpg takes an async iterable of bytes)."""
    yield b"".join((COPY_HEADER, *lines, COPY_TRAILER))


async def publish_rejects(cache: Cache, rejects: Sequence[dict[str, object]]) -> None:
    """Rejects (``authlog.reject_data``) on the event stream (``auth.reject``), one round
    trip. Raises RedisError."""
    if not rejects:
        return
    async with cache.client.pipeline(transaction=False) as pipe:
        for r in rejects:
            stream.add(pipe, cache, "auth.reject", r)
        await pipe.execute()


# The history's BRIN index (migration 0022) covers a range of pages once it is summarized;
# until then every lookup reads the range whole. Summarizing each range as the table grows
# (from ``start``, the first block not known to be summarized) keeps lookups short; what a
# range already summarized gets is a no-op. brin_summarize_range takes the table's
# SHARE UPDATE EXCLUSIVE lock (as VACUUM and the other writers' summaries do): waited for at
# most ``lock_timeout`` seconds, under deadlock_timeout, so autovacuum is never cancelled.
AUTH_LOG_INDEX = "radius_auth_log_brin"
PAGES_PER_RANGE = 16
_SUMMARIZE = f"""
WITH size AS (
    SELECT pg_relation_size('radius_auth_log') / current_setting('block_size')::bigint AS n
)
SELECT coalesce((SELECT sum(brin_summarize_range('{AUTH_LOG_INDEX}', b))
                 FROM generate_series($1::bigint, (SELECT n FROM size) - 1,
                                      {PAGES_PER_RANGE}) AS b), 0)::bigint AS ranges,
       (SELECT n FROM size) AS blocks
"""


@contextlib.asynccontextmanager
async def _lock_bounded(pool: asyncpg.Pool, lock_timeout: float) -> AsyncIterator[Any]:
    """A transaction whose lock waits end after ``lock_timeout`` seconds (LockNotAvailable)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {round(lock_timeout * 1000)}")
        yield conn


async def summarize_auth_log(
    pool: asyncpg.Pool, start: int, lock_timeout: float = 0.2
) -> tuple[int, int]:
    """Summarize the history's BRIN ranges from block ``start`` to the table's end (the
    last, partial range too). Returns (ranges summarized, the table's blocks). Raises
    asyncpg's LockNotAvailableError when the lock was not had in time, and its
    InsufficientPrivilegeError when the role does not own the index."""
    async with _lock_bounded(pool, lock_timeout) as conn:
        row = await conn.fetchrow(_SUMMARIZE, start)
    assert row is not None
    return int(row["ranges"]), int(row["blocks"])


def next_start(blocks: int) -> int:
    """Where the next summary starts: the first block of the table's last (partial) range,
    which grows after this one summarized it."""
    return max(0, (blocks - 1) // PAGES_PER_RANGE * PAGES_PER_RANGE)


_PURGE = f"""
WITH gone AS (
    DELETE FROM radius_auth_log WHERE id IN (
        SELECT id FROM radius_auth_log WHERE at < $1 LIMIT $2
    ) RETURNING ctid
)
SELECT count(*) AS n,
       coalesce(array_agg(DISTINCT (ctid::text::point)[0]::bigint
                          / {PAGES_PER_RANGE} * {PAGES_PER_RANGE}), '{{}}') AS ranges
FROM gone
"""
_DESUMMARIZE = f"""
SELECT count(brin_desummarize_range('{AUTH_LOG_INDEX}', b)) FROM unnest($1::bigint[]) AS b
"""
_RESUMMARIZE = f"""
SELECT count(brin_summarize_range('{AUTH_LOG_INDEX}', b)) FROM unnest($1::bigint[]) AS b
"""


async def purge_auth_events(
    pool: asyncpg.Pool, before: float, batch: int = 10_000
) -> tuple[int, list[int]]:
    """Delete records older than ``before`` (epoch seconds), a batch at a time. Returns how
    many, and the first blocks of the BRIN ranges they were in (``reset_ranges``)."""
    total, emptied = 0, set[int]()
    while True:
        row = await pool.fetchrow(_PURGE, _ts(before), batch)
        assert row is not None
        n = int(row["n"])
        total += n
        emptied.update(int(b) for b in row["ranges"])
        if n < batch:
            return total, sorted(emptied)


async def reset_ranges(
    pool: asyncpg.Pool, ranges: Sequence[int], lock_timeout: float = 1.0
) -> None:
    """Summarize the BRIN ranges a purge emptied afresh, from what is left in them.

    VACUUM frees a purged page and new records fill it again; a summary only ever widens,
    so without this the new names and times would join those of the deleted records, and
    every lookup would end up reading those ranges. Raises as ``summarize_auth_log``;
    a reset not done costs lookups time, never a record."""
    if not ranges:
        return
    async with _lock_bounded(pool, lock_timeout) as conn:
        await conn.fetchval(_DESUMMARIZE, list(ranges))
        await conn.fetchval(_RESUMMARIZE, list(ranges))


# The session a login started: the first one of that user on that NAS (and port, when the
# request named one) starting within a minute of the Accept (RFC 2866 §5: a NAS sends
# Start once the service is up).
_LIST = """
SELECT l.id, l.at, l.username, l.nas, l.nas_port, l.calling_station, l.method, l.result,
       l.reason, l.plan, l.given, s.unique_id AS session, s.started_at AS session_started,
       s.stopped_at AS session_stopped
FROM radius_auth_log l
LEFT JOIN LATERAL (
    SELECT unique_id, started_at, stopped_at FROM radius_sessions s
    WHERE l.result = 'accept' AND s.username = l.username AND s.nas = l.nas
      AND (l.nas_port = '' OR s.nas_port = l.nas_port)
      AND s.started_at BETWEEN l.at - interval '5 seconds' AND l.at + interval '60 seconds'
    ORDER BY s.started_at LIMIT 1
) s ON true
WHERE ($1::text IS NULL OR l.username = $1) AND ($2::text IS NULL OR l.nas = $2)
  AND ($3::timestamptz IS NULL OR l.at >= $3) AND ($4::timestamptz IS NULL OR l.at < $4)
  AND ($5::text IS NULL OR l.result = $5) AND ($6::bigint IS NULL OR l.id < $6)
ORDER BY l.id DESC LIMIT $7
"""


async def list_auth_events(
    pool: asyncpg.Pool,
    *,
    username: str | None = None,
    nas: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    result: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; page with ``before_id`` (the last id of the previous page)."""
    rows = await pool.fetch(_LIST, username, nas, since, until, result, before_id, limit)
    out = []
    for r in rows:
        d = dict(r)
        d["given"] = json.loads(d["given"]) if isinstance(d["given"], str) else d["given"]
        out.append(d)
    return out
