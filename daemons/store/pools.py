"""IP pools: allocation that never hands an address out twice (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import asyncpg

from daemons.store.radius import NAS_CHANNEL

_ALLOCATE = """
WITH pick AS (
    SELECT address FROM ip_pool_addresses
    WHERE pool = $1 AND (expires_at IS NULL OR expires_at < now() OR username = $2)
    ORDER BY (username = $2) IS TRUE DESC, expires_at NULLS FIRST, address
    LIMIT 1 FOR UPDATE SKIP LOCKED
)
UPDATE ip_pool_addresses a SET username = $2, nas = $3, allocated_at = now(),
    expires_at = now() + make_interval(secs => p.lease_time)
FROM pick, ip_pools p
WHERE a.address = pick.address AND p.name = $1
RETURNING host(a.address)
"""


def usable_hosts(network: str) -> Iterator[str]:
    """Addresses of a range, without the network and broadcast addresses of IPv4 /30 and
    larger."""
    net = ipaddress.ip_network(network, strict=False)
    hosts = net.hosts() if net.version == 4 and net.prefixlen < 31 else iter(net)
    for host in hosts:
        yield str(host)


async def pool_names(pool: asyncpg.Pool) -> set[str]:
    return {r["name"] for r in await pool.fetch("SELECT name FROM ip_pools")}


async def add_pool(
    pool: asyncpg.Pool, name: str, ranges: list[str], lease_time: int = 900, description: str = ""
) -> int:
    """Create or extend a pool with the addresses of ``ranges``; return how many were added."""
    addresses = [a for r in ranges for a in usable_hosts(r)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO ip_pools (name, lease_time, description) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO UPDATE SET lease_time = EXCLUDED.lease_time",
            name,
            lease_time,
            description,
        )
        status = await conn.execute(
            "INSERT INTO ip_pool_addresses (address, pool) SELECT unnest($1::inet[]), $2 "
            "ON CONFLICT (address) DO NOTHING",
            addresses,
            name,
        )
        await conn.execute(f"NOTIFY {NAS_CHANNEL}")  # running daemons reload their pools
    return int(status.rsplit(" ", 1)[-1])


async def remove_pool(pool: asyncpg.Pool, name: str, force: bool = False) -> bool:
    """Remove a pool and its addresses; unless ``force``, only while none is leased (checked
    in the same statement). False if nothing was removed."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "DELETE FROM ip_pools p WHERE p.name = $1 AND ($2 OR NOT EXISTS (SELECT 1 FROM "
            "ip_pool_addresses a WHERE a.pool = p.name AND a.expires_at > now()))",
            name,
            force,
        )
        await conn.execute(f"NOTIFY {NAS_CHANNEL}")  # running daemons reload their pools
    return bool(status.endswith(" 1"))


async def allocate(pool: asyncpg.Pool, name: str, username: str, nas: str) -> str | None:
    """A free address of pool ``name`` for ``username`` (theirs again if still free), or
    None when the pool is exhausted."""
    value = await pool.fetchval(_ALLOCATE, name, username, nas)
    return str(value) if value else None


async def refresh(pool: asyncpg.Pool, address: str, username: str) -> None:
    """Extend a lease (on Interim-Update)."""
    await pool.execute(
        "UPDATE ip_pool_addresses a SET expires_at = now() + make_interval(secs => "
        "p.lease_time) FROM ip_pools p WHERE a.address = $1::inet AND a.username = $2 "
        "AND p.name = a.pool",
        address,
        username,
    )


async def release(pool: asyncpg.Pool, address: str, username: str) -> None:
    """Free an address (on Stop); its holder is remembered for stickiness."""
    await pool.execute(
        "UPDATE ip_pool_addresses SET expires_at = now() WHERE address = "
        "$1::inet AND username = $2",
        address,
        username,
    )


async def usage(pool: asyncpg.Pool) -> list[dict[str, object]]:
    rows = await pool.fetch(
        "SELECT p.name, p.lease_time, count(a.address) AS size, count(a.address) FILTER "
        "(WHERE a.expires_at > now()) AS leased FROM ip_pools p LEFT JOIN ip_pool_addresses "
        "a ON a.pool = p.name GROUP BY p.name, p.lease_time ORDER BY p.name"
    )
    return [dict(r) for r in rows]


async def refresh_many(pool: asyncpg.Pool, leases: list[tuple[str, str]]) -> None:
    """Extend many leases (address, username) in one statement."""
    if leases:
        await pool.execute(
            "UPDATE ip_pool_addresses a SET expires_at = now() + make_interval(secs => "
            "p.lease_time) FROM ip_pools p, unnest($1::inet[], $2::text[]) AS l(ip, u) "
            "WHERE a.address = l.ip AND a.username = l.u AND p.name = a.pool",
            [a for a, _ in leases],
            [u for _, u in leases],
        )


async def release_many(pool: asyncpg.Pool, leases: list[tuple[str, str]]) -> None:
    """Free many addresses (address, username) in one statement."""
    if leases:
        await pool.execute(
            "UPDATE ip_pool_addresses a SET expires_at = now() FROM unnest($1::inet[], "
            "$2::text[]) AS l(ip, u) WHERE a.address = l.ip AND a.username = l.u",
            [a for a, _ in leases],
            [u for _, u in leases],
        )
