"""Store verbs for RADIUS accounting: the ledger, the sessions table, quotas and CoA audit.

The live sessions in Redis are ``store.live``'s; their verbs are re-exported here (see
``__all__``), so callers keep one module for accounting.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.store import live, pg, pools6, stream
from daemons.store.cache import Cache
from daemons.store.ledger_rows import (
    GATE,
    GATE_AND_EVENTS,
    INSERT_EVENTS,
    UPSERT_SESSION,
    columns,
    fold_sessions,
)
from daemons.store.live import (
    NAS_REBOOT,
    V6_SQL,
    ip_session_key,
    ipv6_candidates,
    live_index_key,
    live_session_count,
    live_session_ids,
    live_session_key,
    live_sessions,
    live_sessions_present,
    nas_sessions_key,
    rebuild_live_sessions,
    update_live_sessions,
)


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def ensure_partitions(pool: asyncpg.Pool, now: float) -> None:
    """Monthly ledger partitions for this month and the next (idempotent, and safe when
    several batches or worker processes ask at once)."""
    day = _ts(now).date().replace(day=1)
    for _ in range(2):
        nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        name = f"accounting_events_{day:%Y_%m}"
        await pg.create_partition(
            pool, "accounting_events", name, "event_time", day.isoformat(), nxt.isoformat()
        )
        day = nxt


def _prefixes(r: AcctRecord) -> list[str]:
    return [p for p in (r.framed_ipv6_prefix, r.delegated_ipv6_prefix) if p]


async def append_accounting(
    pool: asyncpg.Pool, records: Sequence[AcctRecord]
) -> tuple[set[str], list[tuple[str, str, str | None]]]:
    """Write a batch in one transaction: ledger rows (duplicates skipped) and sessions.

    Returns the idem keys that were new, and the (unique_id, username) of sessions closed by
    Accounting-On/Off. Raises asyncpg/OS errors; then nothing of the batch was written.
    """
    unique: dict[str, AcctRecord] = {}
    # Rows are locked in one order (by session, then arrival) so that two batches touching
    # the same sessions cannot deadlock; arrival order within a session is kept (stable).
    for r in sorted(records, key=lambda rec: rec.unique_id):
        unique.setdefault(r.idem_key, r)  # retransmits may land in the same batch
    closed: list[tuple[str, str, str | None]] = []
    keys = sorted(unique)
    ordered = [unique[k] for k in keys]
    async with pool.acquire() as conn, conn.transaction():
        new = {row["idem_key"] for row in await conn.fetch(GATE_AND_EVENTS, *columns(ordered))}
        fresh = [r for k, r in unique.items() if k in new]
        # Sessions in one statement: each session's records of the batch folded into one
        # row first (ON CONFLICT DO UPDATE may touch a row once per statement).
        sessions = fold_sessions(r for r in fresh if r.is_session_event)
        if sessions:
            await conn.execute(UPSERT_SESSION, *map(list, zip(*sessions, strict=True)))
        # Issue 21: netd-managed IPv6 prefixes, released by a Stop, renewed by the others.
        held = [(r, p) for r in fresh if r.is_session_event for p in _prefixes(r)]
        await pools6.release(
            conn, [(p, r.username) for r, p in held if r.status == AcctStatus.STOP]
        )
        await pools6.refresh(
            conn, [(p, r.username) for r, p in held if r.status != AcctStatus.STOP]
        )
        for r in fresh:
            if r.status in (AcctStatus.ACCOUNTING_ON, AcctStatus.ACCOUNTING_OFF):
                rows = await conn.fetch(
                    "UPDATE radius_sessions SET stopped_at = $2, updated_at = $2, "
                    "terminate_cause = $3, close_reason = 'nas-restart' "
                    "WHERE nas = $1 AND stopped_at IS NULL "
                    "RETURNING unique_id, username, host(framed_ip) AS ip",
                    r.nas,
                    _ts(r.event_time),
                    NAS_REBOOT,
                )
                closed += [(row["unique_id"], row["username"], row["ip"]) for row in rows]
    return new, closed


async def prune_dedup(pool: asyncpg.Pool, days: int = 7) -> None:
    await pool.execute(
        "DELETE FROM accounting_dedup WHERE created_at < now() - $1::interval", timedelta(days=days)
    )


LOST_SERVICE = 3  # RFC 2866 §5.10 Acct-Terminate-Cause Lost-Service
ADMIN_RESET = 6  # RFC 2866 §5.10 Acct-Terminate-Cause Admin-Reset

_CLOSE = (
    "UPDATE radius_sessions SET stopped_at = updated_at, terminate_cause = $2, "
    "close_reason = $3 WHERE stopped_at IS NULL AND {which} "
    "RETURNING unique_id, nas, acct_session_id, username, nas_port, "
    "host(framed_ip) AS ip, extract(epoch FROM updated_at) AS at, updated_at, session_time, "
    f"input_octets, output_octets, input_packets, output_packets, {V6_SQL}"
)


async def close_sessions(
    pool: asyncpg.Pool,
    cache: Cache,
    *,
    cause: int,
    reason: str,
    note: str,
    gate: str,
    stale_before: float | None = None,
    unique_ids: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Close open sessions the NAS will never stop: those with no update since
    ``stale_before`` (epoch seconds), or those of ``unique_ids``. Each gets a synthetic Stop
    in the ledger (once: the dedup gate, its key ``gate:unique_id``) with terminate cause
    ``cause`` at its last update, and is closed with ``close_reason`` ``reason``; then its
    pool lease is released and Redis forgets it (the live index, the user's
    Simultaneous-Use set, the address), with a session.stop on the event stream. Returns
    the sessions closed (a session already closed is not)."""
    which: Any
    if stale_before is not None:
        query, which = _CLOSE.format(which="updated_at < $1"), _ts(stale_before)
    else:
        query, which = _CLOSE.format(which="unique_id = ANY($1::text[])"), list(unique_ids)
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(query, which, cause, reason)
        if not rows:
            return []
        keys = [f"{gate}:{r['unique_id']}" for r in rows]
        new = {x["idem_key"] for x in await conn.fetch(GATE, keys)}
        synthetic = [
            AcctRecord(
                nas=r["nas"],
                status=AcctStatus.STOP,
                acct_session_id=r["acct_session_id"],
                unique_id=r["unique_id"],
                idem_key=k,
                event_time=float(r["at"]),
                username=r["username"],
                nas_port=r["nas_port"],
                framed_ip=r["ip"],
                input_octets=r["input_octets"],
                output_octets=r["output_octets"],
                input_packets=r["input_packets"],
                output_packets=r["output_packets"],
                session_time=r["session_time"],
                terminate_cause=cause,
                attributes={"netd-synthetic-stop": note},
            )
            for r, k in zip(rows, keys, strict=True)
            if k in new
        ]
        if synthetic:
            await conn.execute(INSERT_EVENTS, *columns(synthetic))
    await pool.execute(
        "UPDATE ip_pool_addresses a SET expires_at = now() FROM unnest($1::inet[], "
        "$2::text[]) AS l(ip, u) WHERE a.address = l.ip AND a.username = l.u",
        [r["ip"] for r in rows if r["ip"]],
        [r["username"] for r in rows if r["ip"]],
    )
    await pools6.release(  # issue 21: netd-managed IPv6 prefixes
        pool, [(p, r["username"]) for r in rows for p in r["ipv6"] if "/" in p]
    )
    async with cache.client.pipeline(transaction=False) as pipe:
        for r in rows:
            live.forget(pipe, cache, r["unique_id"], r["username"], r["nas"], r["ip"], r["ipv6"])
            stream.add(
                pipe,
                cache,
                "session.stop",
                {
                    "session": r["unique_id"],
                    "user": r["username"],
                    "nas": r["nas"],
                    "ip": r["ip"],
                    "time": float(r["at"]),
                    "session_time": r["session_time"],
                    "in": r["input_octets"],
                    "out": r["output_octets"],
                    "reason": reason,
                    "terminate_cause": cause,
                },
            )
        await pipe.execute()
    return [dict(r) for r in rows]


async def reap_stale_sessions(
    pool: asyncpg.Pool, cache: Cache, stale_after: float, now: float
) -> int:
    """Close sessions with no update for ``stale_after`` seconds: a synthetic Stop in the
    ledger (once: the dedup gate), the session closed as "stale", Redis cleaned."""
    closed = await close_sessions(
        pool,
        cache,
        cause=LOST_SERVICE,
        reason="stale",
        note=f"no interim update for {stale_after:.0f} s",
        gate="reaper",
        stale_before=now - stale_after,
    )
    return len(closed)


_SESSION_COLUMNS = (
    "unique_id, nas, acct_session_id, username, nas_port, host(framed_ip) AS framed_ip, "
    "started_at, updated_at, stopped_at, session_time, input_octets, output_octets, "
    "terminate_cause, close_reason, host(framed_ipv6_address) AS framed_ipv6_address, "
    "framed_ipv6_prefix::text AS framed_ipv6_prefix, "
    "delegated_ipv6_prefix::text AS delegated_ipv6_prefix"
)


async def find_sessions(
    pool: asyncpg.Pool,
    *,
    unique_id: str | None = None,
    username: str | None = None,
    nas: str | None = None,
    ip: str | None = None,
    include_closed: bool = False,
    limit: int = 100,
    acct_session_id: str | None = None,
) -> list[dict[str, object]]:
    """Sessions, newest first, filtered by any of id, Acct-Session-Id, user, NAS and
    address."""
    rows = await pool.fetch(
        f"SELECT {_SESSION_COLUMNS} FROM radius_sessions WHERE "
        "($1::text IS NULL OR unique_id = $1) AND ($2::text IS NULL OR username = $2) AND "
        "($3::text IS NULL OR nas = $3) AND ($4::inet IS NULL OR framed_ip = $4 OR "
        "framed_ipv6_address = $4 OR framed_ipv6_prefix >>= $4 OR delegated_ipv6_prefix >>= $4) "
        "AND "
        "($5 OR stopped_at IS NULL) AND ($7::text IS NULL OR acct_session_id = $7) "
        "ORDER BY started_at DESC LIMIT $6",
        unique_id,
        username,
        nas,
        ip,
        include_closed,
        limit,
        acct_session_id,
    )
    return [dict(r) for r in rows]


async def ledger_records(
    pool: asyncpg.Pool,
    username: str,
    since: datetime,
    until: datetime,
    after_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A user's accounting records with event time in [since, until), in id order."""
    rows = await pool.fetch(
        "SELECT id, event_time, received_at, nas, status_type, acct_session_id, unique_id, "
        "username, nas_port, host(framed_ip) AS framed_ip, input_octets, output_octets, "
        "input_packets, output_packets, session_time, terminate_cause FROM accounting_events "
        "WHERE username = $1 AND event_time >= $2 AND event_time < $3 "
        "AND ($4::bigint IS NULL OR id > $4) ORDER BY id LIMIT $5",
        username,
        since,
        until,
        after_id,
        limit,
    )
    return [dict(r) for r in rows]


async def ledger_usage(
    pool: asyncpg.Pool, username: str, since: datetime, until: datetime
) -> dict[str, int]:
    """Totals for a user over [since, until): the sessions active in it (with the counters
    their last record in the period reported) and the number of records."""
    row = await pool.fetchrow(
        "WITH last AS (SELECT DISTINCT ON (unique_id) unique_id, input_octets, output_octets, "
        "session_time FROM accounting_events WHERE username = $1 AND event_time >= $2 "
        "AND event_time < $3 ORDER BY unique_id, event_time DESC, id DESC) "
        "SELECT count(*) AS sessions, coalesce(sum(input_octets), 0) AS input_octets, "
        "coalesce(sum(output_octets), 0) AS output_octets, "
        "coalesce(sum(session_time), 0) AS session_time, "
        "(SELECT count(*) FROM accounting_events WHERE username = $1 AND event_time >= $2 "
        "AND event_time < $3) AS records FROM last",
        username,
        since,
        until,
    )
    assert row is not None
    return {
        k: int(row[k])
        for k in ("sessions", "records", "input_octets", "output_octets", "session_time")
    }


async def session_nas_ip(pool: asyncpg.Pool, unique_id: str) -> str | None:
    """The NAS-IP-Address its NAS reported for a session, from the ledger."""
    value = await pool.fetchval(
        "SELECT attributes->>'NAS-IP-Address' FROM accounting_events WHERE unique_id = $1 "
        "AND attributes ? 'NAS-IP-Address' ORDER BY id LIMIT 1",
        unique_id,
    )
    return str(value) if value else None


async def audit_coa(
    pool: asyncpg.Pool,
    *,
    actor: str,
    kind: str,
    nas: str,
    unique_id: str,
    username: str,
    attributes: dict[str, object],
) -> int:
    audit_id: int = await pool.fetchval(
        "INSERT INTO coa_requests (actor, kind, nas, unique_id, username, attributes) "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id",
        actor,
        kind,
        nas,
        unique_id,
        username,
        json.dumps(attributes, default=str),
    )
    return audit_id


async def finish_coa(
    pool: asyncpg.Pool, audit_id: int, result: str, error_cause: int | None, attempts: int
) -> None:
    await pool.execute(
        "UPDATE coa_requests SET finished_at = now(), result = $2, error_cause = $3, "
        "attempts = $4 WHERE id = $1",
        audit_id,
        result,
        error_cause,
        attempts,
    )


async def month_usage(pool: asyncpg.Pool, username: str, now: float) -> tuple[int, int]:
    """(octets, seconds) the user's sessions used in the calendar month of ``now``."""
    start = _ts(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    row = await pool.fetchrow(
        "SELECT coalesce(sum(input_octets + output_octets), 0) AS octets, "
        "coalesce(sum(session_time), 0) AS seconds FROM radius_sessions "
        "WHERE username = $1 AND updated_at >= $2",
        username,
        start,
    )
    assert row is not None
    return int(row["octets"]), int(row["seconds"])


async def claim_quota_action(pool: asyncpg.Pool, unique_id: str) -> bool:
    """True once per session: the caller runs the quota action."""
    status = await pool.execute(
        "UPDATE radius_sessions SET quota_acted_at = now() WHERE unique_id = $1 "
        "AND quota_acted_at IS NULL",
        unique_id,
    )
    return bool(status.endswith(" 1"))


__all__ = [
    "ADMIN_RESET",
    "LOST_SERVICE",
    "NAS_REBOOT",
    "append_accounting",
    "audit_coa",
    "claim_quota_action",
    "close_sessions",
    "ensure_partitions",
    "find_sessions",
    "finish_coa",
    "ip_session_key",
    "ipv6_candidates",
    "ledger_records",
    "ledger_usage",
    "live_index_key",
    "live_session_count",
    "live_session_ids",
    "live_session_key",
    "live_sessions",
    "live_sessions_present",
    "month_usage",
    "nas_sessions_key",
    "prune_dedup",
    "reap_stale_sessions",
    "rebuild_live_sessions",
    "session_nas_ip",
    "update_live_sessions",
]
