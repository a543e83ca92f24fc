"""netd-managed IPv6 pools (issue 21): create, list, lease, release.

A lease is sticky: a user gets their own prefix back while nobody else holds it (a lapsed
or released lease stays theirs until the pool reuses it, oldest first). One user's
concurrent logins are serialised by an advisory lock, so a user holds one prefix per pool;
the prefix is the leases table's primary key, so no prefix is ever leased twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from daemons.radius import pools6
from daemons.store.radius import NAS_CHANNEL

_MINE = """
UPDATE ipv6_pool_leases l SET nas = $3, allocated_at = now(),
    expires_at = now() + make_interval(secs => p.lease_time)
FROM ipv6_pools p
WHERE l.pool = $1 AND l.username = $2 AND p.name = l.pool
RETURNING l.prefix::text
"""
_REUSE = """
WITH pick AS (
    SELECT prefix FROM ipv6_pool_leases
    WHERE pool = $1 AND (expires_at IS NULL OR expires_at < now())
    ORDER BY expires_at NULLS FIRST, prefix LIMIT 1 FOR UPDATE SKIP LOCKED
)
UPDATE ipv6_pool_leases l SET username = $2, nas = $3, allocated_at = now(),
    expires_at = now() + make_interval(secs => p.lease_time)
FROM pick, ipv6_pools p
WHERE l.prefix = pick.prefix AND p.name = l.pool
RETURNING l.prefix::text
"""
_CARVE = """
UPDATE ipv6_pools SET next_index = next_index + 1
WHERE name = $1 AND next_index < capacity
RETURNING next_index - 1 AS slot, prefix::text AS prefix, length, lease_time
"""


async def pool_names(pool: asyncpg.Pool) -> set[str]:
    return {r["name"] for r in await pool.fetch("SELECT name FROM ipv6_pools")}


async def add_pool(
    pool: asyncpg.Pool, name: str, prefix: str, length: int, lease_time: int = 900
) -> int:
    """Create a pool (or change its lease time); its capacity in prefixes. Raises
    ValueError for a length that does not fit, asyncpg errors."""
    capacity = pools6.slots(prefix, length)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO ipv6_pools (name, prefix, length, capacity, lease_time) "
            "VALUES ($1, $2::cidr, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET "
            "lease_time = EXCLUDED.lease_time RETURNING prefix::text, length",
            name,
            prefix,
            length,
            capacity,
            lease_time,
        )
        if row is None or row["prefix"] != prefix or row["length"] != length:
            raise ValueError(f"IPv6 pool {name} exists with another prefix or length")
        await conn.execute(f"NOTIFY {NAS_CHANNEL}")  # running daemons reload their pools
    return capacity


async def list_pools(pool: asyncpg.Pool) -> list[dict[str, object]]:
    rows = await pool.fetch(
        "SELECT p.name, p.prefix::text AS prefix, p.length, p.lease_time, p.capacity, "
        "(SELECT count(*) FROM ipv6_pool_leases l WHERE l.pool = p.name "
        "AND l.expires_at > now()) AS leased FROM ipv6_pools p ORDER BY p.name"
    )
    return [dict(r) for r in rows]


async def allocate(pool: asyncpg.Pool, name: str, username: str, nas: str) -> str | None:
    """A prefix of pool ``name`` for ``username`` (theirs again if nobody took it), or None
    when every prefix is leased."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))", name, username
        )
        for query in (_MINE, _REUSE):
            got = await conn.fetchval(query, name, username, nas)
            if got is not None:
                return str(got)
        carved = await conn.fetchrow(_CARVE, name)
        if carved is None:
            return None
        prefix = pools6.slot(carved["prefix"], carved["length"], carved["slot"])
        await conn.execute(
            "INSERT INTO ipv6_pool_leases (prefix, pool, username, nas, allocated_at, "
            "expires_at) VALUES ($1::cidr, $2, $3, $4, now(), "
            "now() + make_interval(secs => $5))",
            prefix,
            name,
            username,
            nas,
            carved["lease_time"],
        )
        return prefix


async def release(conn: Any, held: Sequence[tuple[str, str]]) -> None:
    """End the leases of (prefix, username) pairs (a Stop, a reaped session): free for
    others, still the user's until reused."""
    if held:
        await conn.execute(
            "UPDATE ipv6_pool_leases l SET expires_at = now() FROM unnest($1::cidr[], "
            "$2::text[]) AS h(prefix, username) WHERE l.prefix = h.prefix "
            "AND l.username = h.username",
            [p for p, _ in held],
            [u for _, u in held],
        )


async def refresh(conn: Any, held: Sequence[tuple[str, str]]) -> None:
    """Extend the leases of live sessions (Start, Interim-Update) by the pool's lease time."""
    if held:
        await conn.execute(
            "UPDATE ipv6_pool_leases l SET expires_at = now() + make_interval(secs => "
            "p.lease_time) FROM ipv6_pools p, unnest($1::cidr[], $2::text[]) AS h(prefix, "
            "username) WHERE l.prefix = h.prefix AND l.username = h.username "
            "AND p.name = l.pool",
            [p for p, _ in held],
            [u for _, u in held],
        )
