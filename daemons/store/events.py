"""The events table: one verb to append, one to read back."""

from __future__ import annotations

import json
from typing import Any, Literal

import asyncpg

Severity = Literal["debug", "info", "warning", "error", "critical"]


async def append_event(
    pool: asyncpg.Pool,
    source: str,
    kind: str,
    *,
    subject: str = "",
    data: dict[str, Any] | None = None,
    severity: Severity = "info",
) -> int:
    """Append one event and return its id. Raises asyncpg errors if PostgreSQL fails."""
    event_id: int = await pool.fetchval(
        "INSERT INTO events (source, kind, severity, subject, data) "
        "VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id",
        source,
        kind,
        severity,
        subject,
        json.dumps(data or {}, default=str),
    )
    return event_id


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
