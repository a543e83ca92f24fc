"""The events table: one verb to append, one to read back."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import asyncpg
from redis.exceptions import RedisError

from daemons.store import stream
from daemons.store.cache import Cache

log = logging.getLogger("netd.events")

Severity = Literal["debug", "info", "warning", "error", "critical"]


async def append_event(
    pool: asyncpg.Pool,
    source: str,
    kind: str,
    *,
    subject: str = "",
    data: dict[str, Any] | None = None,
    severity: Severity = "info",
    cache: Cache | None = None,
) -> int:
    """Append one event and return its id; with ``cache``, publish it on the event stream
    too (best effort: the table is the record). Raises asyncpg errors if PostgreSQL fails."""
    event_id: int = await pool.fetchval(
        "INSERT INTO events (source, kind, severity, subject, data) "
        "VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id",
        source,
        kind,
        severity,
        subject,
        json.dumps(data or {}, default=str),
    )
    if cache is not None:
        try:
            await stream.publish(
                cache,
                kind,
                {
                    "id": event_id,
                    "source": source,
                    "subject": subject,
                    "severity": severity,
                    "data": json.loads(json.dumps(data or {}, default=str)),
                },
            )
        except (RedisError, OSError) as exc:
            log.warning("event not published", extra={"fields": {"kind": kind, "error": repr(exc)}})
    return event_id


async def list_events(
    pool: asyncpg.Pool,
    *,
    before: int | None,
    limit: int,
    kind: str | None = None,
    source: str | None = None,
    subject: str | None = None,
    severity: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first, filtered; ``before`` is the last id of the previous page."""
    rows = await pool.fetch(
        "SELECT id, ts, source, kind, severity, subject, data FROM events "
        "WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR kind = $2) "
        "AND ($3::text IS NULL OR source = $3) AND ($4::text IS NULL OR subject = $4) "
        "AND ($5::text IS NULL OR severity = $5) ORDER BY id DESC LIMIT $6",
        before,
        kind,
        source,
        subject,
        severity,
        limit,
    )
    return [{**dict(row), "data": json.loads(row["data"])} for row in rows]


async def recent_events(
    pool: asyncpg.Pool, kind: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest events first, optionally of one kind."""
    rows = await pool.fetch(
        "SELECT id, ts, source, kind, severity, subject, data FROM events "
        "WHERE ($1::text IS NULL OR kind = $1) ORDER BY id DESC LIMIT $2",
        kind,
        limit,
    )
    return [{**dict(row), "data": json.loads(row["data"])} for row in rows]
