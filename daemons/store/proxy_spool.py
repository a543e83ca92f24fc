"""The proxy's accounting spool (issue 28): records acknowledged to a NAS while their
home-server pool was dead, kept in PostgreSQL until a home server has answered them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Spooled:
    id: int
    pool: str
    realm: str
    nas: str
    age: float  # seconds since it was spooled (for Acct-Delay-Time)
    attributes: bytes


async def spool_records(
    pool: asyncpg.Pool, home_pool: str, records: Sequence[tuple[str, str, bytes]]
) -> None:
    """Append ``(realm, nas, attributes)`` records for ``home_pool``; durable on return."""
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO radius_proxy_spool (pool, realm, nas, attributes) VALUES ($1, $2, $3, $4)",
            [(home_pool, realm, nas, attrs) for realm, nas, attrs in records],
        )


async def next_spooled(pool: asyncpg.Pool, home_pool: str, limit: int) -> list[Spooled]:
    """The oldest ``limit`` records spooled for ``home_pool``, in order."""
    rows = await pool.fetch(
        "SELECT id, pool, realm, nas, extract(epoch FROM now() - received_at) AS age,"
        " attributes FROM radius_proxy_spool WHERE pool = $1 ORDER BY id LIMIT $2",
        home_pool,
        limit,
    )
    return [
        Spooled(r["id"], r["pool"], r["realm"], r["nas"], float(r["age"]), r["attributes"])
        for r in rows
    ]


async def forwarded(pool: asyncpg.Pool, ids: Sequence[int]) -> None:
    """Records a home server has answered: gone from the spool."""
    await pool.execute("DELETE FROM radius_proxy_spool WHERE id = ANY($1::bigint[])", list(ids))


async def spooled_pools(pool: asyncpg.Pool) -> dict[str, int]:
    """Pools with records waiting, and how many."""
    rows = await pool.fetch("SELECT pool, count(*) AS n FROM radius_proxy_spool GROUP BY pool")
    return {r["pool"]: int(r["n"]) for r in rows}
