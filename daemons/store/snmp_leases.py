"""Store verbs for sharing SNMP targets among pollers: leases and liveness.

A poller heartbeats (``heartbeat``: it is alive, and who else is); renews the leases it
holds and claims those it should hold that nobody holds (``sync``: one transaction); and,
having polled a target it hands over, lets its lease lapse at once (``release``). A lease
is held until ``expires_at`` by PostgreSQL's clock; a claim succeeds only on a lapsed or
absent lease, and UPDATE re-checks that under the row lock, so two pollers never hold one
target at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class Synced:
    kept: frozenset[str]  # leases renewed
    claimed: dict[str, datetime | None]  # leases won now, with the last owner's last poll


async def heartbeat(pool: asyncpg.Pool, me: str, instance: str, ttl: float) -> list[str]:
    """Say ``me`` is alive; the pollers alive (seen within ``ttl`` seconds), ``me`` among
    them. Pollers unseen for an hour are forgotten. (The pollers' clocks do not matter:
    every time here is PostgreSQL's.)"""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO snmp_pollers (id, instance) VALUES ($1, $2) "
            "ON CONFLICT (id) DO UPDATE SET seen_at = now()",
            me,
            instance,
        )
        await conn.execute("DELETE FROM snmp_pollers WHERE seen_at < now() - interval '1 hour'")
        rows = await conn.fetch(
            "SELECT id FROM snmp_pollers WHERE seen_at > now() - make_interval(secs => $1) "
            "ORDER BY id",
            ttl,
        )
    return [r["id"] for r in rows]


async def sync(
    pool: asyncpg.Pool,
    me: str,
    ttl: float,
    held: Sequence[str],
    wanted: Sequence[str],
    orphaned_after: float,
    orphans_limit: int,
) -> Synced:
    """Renew the leases of ``held``; claim those of ``wanted`` that are lapsed or absent,
    and up to ``orphans_limit`` leases lapsed for more than ``orphaned_after`` seconds
    (their rightful owner did not take them: another poller does)."""
    async with pool.acquire() as conn, conn.transaction():
        kept = await conn.fetch(
            "UPDATE snmp_leases SET expires_at = now() + make_interval(secs => $2) "
            "WHERE owner = $1 AND target = ANY($3::text[]) AND expires_at > now() "
            "RETURNING target",
            me,
            ttl,
            list(held),
        )
        claimed = await conn.fetch(
            "INSERT INTO snmp_leases (target, owner, expires_at) "
            "SELECT t.name, $1, now() + make_interval(secs => $2) FROM snmp_targets t "
            "WHERE t.enabled AND t.name = ANY($3::text[]) "
            "ON CONFLICT (target) DO UPDATE SET owner = EXCLUDED.owner, "
            "expires_at = EXCLUDED.expires_at WHERE snmp_leases.expires_at <= now() "
            "RETURNING target, polled_at",
            me,
            ttl,
            list(wanted),
        )
        orphans = await conn.fetch(
            "UPDATE snmp_leases l SET owner = $1, expires_at = now() + make_interval(secs => $2) "
            "WHERE l.target IN (SELECT o.target FROM snmp_leases o JOIN snmp_targets t "
            "ON t.name = o.target WHERE t.enabled "
            "AND o.expires_at < now() - make_interval(secs => $3) ORDER BY o.target LIMIT $4 "
            "FOR UPDATE OF o SKIP LOCKED) RETURNING l.target, l.polled_at",
            me,
            ttl,
            orphaned_after,
            orphans_limit,
        )
    return Synced(
        frozenset(r["target"] for r in kept),
        {r["target"]: r["polled_at"] for r in [*claimed, *orphans]},
    )


async def release(
    pool: asyncpg.Pool, me: str, targets: Sequence[str], polled_at: datetime | None
) -> None:
    """Let ``targets``' leases lapse now (a handover, or a clean stop), noting the last
    poll so the next owner does not poll again within the interval."""
    await pool.execute(
        "UPDATE snmp_leases SET expires_at = now(), polled_at = COALESCE($3, polled_at) "
        "WHERE owner = $1 AND target = ANY($2::text[])",
        me,
        list(targets),
        polled_at,
    )


async def leave(pool: asyncpg.Pool, me: str) -> None:
    """A clean stop: every lease of ``me`` lapses now, and ``me`` is no longer alive."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE snmp_leases SET expires_at = now() WHERE owner = $1", me)
        await conn.execute("DELETE FROM snmp_pollers WHERE id = $1", me)
