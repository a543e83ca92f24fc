"""Store verbs for the ACS's work across devices: bulk runs (one task for every device a
filter matches, paced) and the connection requests due (``cpe_tasks.poke_at``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from daemons.store.acs import DEVICE_COLUMNS


async def take_due_pokes(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` devices whose queued tasks want a connection request now (a bulk
    run's paced slot, a retry after backoff), oldest slot first; their slots are taken
    (any number of ACS processes share the work)."""
    rows = await pool.fetch(
        "WITH due AS (SELECT id FROM cpe_tasks WHERE poke_at <= now() AND status = 'queued' "
        "ORDER BY poke_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
        "UPDATE cpe_tasks t SET poke_at = NULL FROM due WHERE t.id = due.id "
        "RETURNING t.id, t.device_id",
        limit,
    )
    devices: dict[str, list[int]] = {}
    for r in rows:
        devices.setdefault(r["device_id"], []).append(r["id"])
    if not devices:
        return []
    found = await pool.fetch(
        f"SELECT {DEVICE_COLUMNS} FROM cpe_devices WHERE id = ANY($1::text[])", list(devices)
    )
    return [{**dict(d), "tasks": devices[d["id"]]} for d in found]


async def record_pokes(pool: asyncpg.Pool, outcomes: Sequence[tuple[int, str]]) -> None:
    """What each task's connection request gave (cpe_tasks.poke)."""
    await pool.execute(  # locks in id order, as start_tasks does: no deadlock between them
        "WITH o AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS o(id, outcome)), "
        "l AS (SELECT id FROM cpe_tasks WHERE id IN (SELECT id FROM o) ORDER BY id FOR UPDATE) "
        "UPDATE cpe_tasks t SET poke = o.outcome FROM o, l WHERE t.id = o.id AND l.id = o.id",
        [i for i, _ in outcomes],
        [o for _, o in outcomes],
    )


def _filter_sql(f: dict[str, Any], first: int) -> tuple[str, list[Any]]:
    """The WHERE clause of a device filter (keys checked by acs.tasks.check_filter)."""
    where, params = ["true"], []

    def arg(value: Any) -> str:
        params.append(value)
        return f"${first + len(params) - 1}"

    if f.get("tags"):
        where.append(f"d.tags @> {arg(list(f['tags']))}::text[]")
    for key in ("oui", "product_class", "software_version"):
        if f.get(key) is not None:
            where.append(f"d.{key} = {arg(f[key])}")
    if f.get("parameter"):
        name, value = f["parameter"]["name"], f["parameter"]["value"]
        where.append(
            "EXISTS (SELECT 1 FROM cpe_parameters p WHERE p.device_id = d.id "
            f"AND p.name = {arg(name)} AND p.value = {arg(value)})"
        )
    return " AND ".join(where), params


async def count_matching(pool: asyncpg.Pool, f: dict[str, Any]) -> int:
    where, params = _filter_sql(f, 1)
    return int(await pool.fetchval(f"SELECT count(*) FROM cpe_devices d WHERE {where}", *params))


async def create_bulk(
    pool: asyncpg.Pool,
    f: dict[str, Any],
    kind: str,
    args: dict[str, Any],
    rate: float,
    created_by: str,
    expires_at: datetime | None = None,
) -> int:
    """A bulk run: one task for every device the filter matches, in one transaction. The
    devices that can be sent a connection request (a ConnectionRequestURL, or a UDP
    binding with STUN on) get paced slots, ``rate`` a second from now, in id order; the
    others run theirs at their next Inform. Its id."""
    where, params = _filter_sql(f, 7)
    async with pool.acquire() as conn, conn.transaction():
        bulk_id: int = await conn.fetchval(
            "INSERT INTO cpe_bulk (filter, kind, args, rate, created_by) "
            "VALUES ($1::jsonb, $2, $3::jsonb, $4, $5) RETURNING id",
            json.dumps(f),
            kind,
            json.dumps(args),
            rate,
            created_by,
        )
        status = await conn.execute(
            "INSERT INTO cpe_tasks (device_id, kind, args, created_by, expires_at, bulk_id, "
            "poke_at) SELECT id, $2, $3::jsonb, $4, $5, $1, CASE WHEN pokeable THEN "
            "now() + make_interval(secs => (row_number() OVER (PARTITION BY pokeable "
            "ORDER BY id) - 1) / $6::float8) END "
            "FROM (SELECT d.id, (d.connection_request_url <> '' OR (d.stun_enabled "
            "AND d.udp_connection_request_address <> '')) AS pokeable "
            f"FROM cpe_devices d WHERE {where}) m ORDER BY id",
            bulk_id,
            kind,
            json.dumps(args),
            created_by,
            expires_at,
            rate,
            *params,
        )
        devices = int(status.rsplit(" ", 1)[1])
        await conn.execute("UPDATE cpe_bulk SET devices = $2 WHERE id = $1", bulk_id, devices)
    return bulk_id


_BULK = (
    "SELECT b.id, b.filter, b.kind, b.args, b.rate, b.devices, b.created_at, b.created_by, "
    "CASE WHEN b.status = 'cancelled' THEN 'cancelled' "
    "WHEN coalesce(s.open, 0) = 0 THEN 'done' ELSE 'running' END AS status, "
    "coalesce(s.counts, '{}'::jsonb) AS counts, coalesce(s.poked, 0) AS poked, "
    "s.last_slot, CASE WHEN coalesce(s.open, 0) = 0 THEN coalesce(b.finished_at, s.last_end) "
    "END AS finished_at FROM cpe_bulk b LEFT JOIN LATERAL (SELECT "
    "(SELECT jsonb_object_agg(status, n) FROM (SELECT status, count(*) n FROM cpe_tasks "
    "WHERE bulk_id = b.id GROUP BY status) c) AS counts, "
    "count(*) FILTER (WHERE status IN ('queued', 'running')) AS open, "
    "count(*) FILTER (WHERE poke <> '') AS poked, max(poke_at) AS last_slot, "
    "max(finished_at) AS last_end FROM cpe_tasks WHERE bulk_id = b.id) s ON true"
)


def _bulk_row(r: asyncpg.Record) -> dict[str, Any]:
    out = dict(r)
    for key in ("filter", "args", "counts"):
        out[key] = json.loads(r[key]) if isinstance(r[key], str) else r[key]
    return out


async def get_bulk(pool: asyncpg.Pool, bulk_id: int) -> dict[str, Any] | None:
    """A bulk run with its progress: tasks by status, connection requests sent so far, the
    last paced slot still ahead, and (once every task has ended) when it finished."""
    row = await pool.fetchrow(f"{_BULK} WHERE b.id = $1", bulk_id)
    return _bulk_row(row) if row else None


async def list_bulk(pool: asyncpg.Pool, before: int | None, limit: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"{_BULK} WHERE ($1::bigint IS NULL OR b.id < $1) ORDER BY b.id DESC LIMIT $2",
        before,
        limit,
    )
    return [_bulk_row(r) for r in rows]


async def cancel_bulk(pool: asyncpg.Pool, bulk_id: int) -> int | None:
    """Cancel a bulk run: its queued and running tasks are cancelled (as ``cancel_task``:
    the ACS sends them no more); how many, or None for an unknown run."""
    async with pool.acquire() as conn, conn.transaction():
        found = await conn.execute(
            "UPDATE cpe_bulk SET status = 'cancelled', finished_at = now() WHERE id = $1",
            bulk_id,
        )
        if found.endswith(" 0"):
            return None
        status = await conn.execute(
            "UPDATE cpe_tasks SET status = 'cancelled', finished_at = now(), poke_at = NULL, "
            "deadline_at = NULL WHERE bulk_id = $1 AND status IN ('queued', 'running')",
            bulk_id,
        )
    return int(status.rsplit(" ", 1)[1])
