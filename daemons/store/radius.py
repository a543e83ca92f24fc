"""Store verbs for RADIUS authentication: NAS clients and subscribers.

PostgreSQL is the source of truth. Subscriber records are cached in Redis (written through
on every change, secrets still sealed) so the auth hot path needs no PostgreSQL round trip.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import asyncpg

from daemons.store.cache import Cache, Ops, pack, unpack

NAS_CHANNEL = "netd_nas_changed"
_NEGATIVE = b"\xc0"  # msgpack nil: "no such subscriber", cached briefly


@dataclass(frozen=True, slots=True)
class NasRow:
    name: str
    network: str
    secret_enc: bytes
    vendor: str
    require_message_authenticator: bool
    coa_port: int
    description: str = ""
    tls_identity: str | None = None  # RadSec client certificate (migration 0020)


@dataclass(frozen=True, slots=True)
class SubscriberRow:
    username: str
    password_hash: str | None = None
    password_enc: bytes | None = None
    nt_hash_enc: bytes | None = None
    plan: str = "default"
    state: str = "active"
    mac: str | None = None
    framed_ip: str | None = None
    framed_ipv6_address: str | None = None
    framed_ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None
    framed_ipv6_pool: str | None = None
    delegated_ipv6_pool: str | None = None


# A subscriber's IPv6 fields (issue 21): cached only when set, so an older daemon that
# knows none of them still reads every IPv4-only record of a rolling upgrade.
IPV6_FIELDS = (
    "framed_ipv6_address",
    "framed_ipv6_prefix",
    "delegated_ipv6_prefix",
    "framed_ipv6_pool",
    "delegated_ipv6_pool",
)
_FIELDS = frozenset(f.name for f in fields(SubscriberRow))

_SUB_COLUMNS = (
    "username, password_hash, password_enc, nt_hash_enc, plan, state, "
    "mac::text AS mac, host(framed_ip) AS framed_ip, "
    "host(framed_ipv6_address) AS framed_ipv6_address, "
    "framed_ipv6_prefix::text AS framed_ipv6_prefix, "
    "delegated_ipv6_prefix::text AS delegated_ipv6_prefix, framed_ipv6_pool, delegated_ipv6_pool"
)


def _sub(row: asyncpg.Record) -> SubscriberRow:
    return SubscriberRow(**dict(row))


def _packed(sub: SubscriberRow) -> bytes:
    record = asdict(sub)
    for name in IPV6_FIELDS:
        if record[name] is None:
            del record[name]
    return pack(record)


def _unpacked(raw: bytes) -> SubscriberRow:
    """A cached record; keys a newer release added are ignored."""
    return SubscriberRow(**{k: v for k, v in unpack(raw).items() if k in _FIELDS})


# --- NAS clients -------------------------------------------------------------------------


async def list_nas(pool: asyncpg.Pool) -> list[NasRow]:
    rows = await pool.fetch(
        "SELECT name, network::text AS network, secret_enc, vendor, "
        "require_message_authenticator, coa_port, description, tls_identity "
        "FROM nas_clients ORDER BY name"
    )
    return [NasRow(**dict(r)) for r in rows]


async def get_nas(pool: asyncpg.Pool, name: str) -> NasRow | None:
    for row in await list_nas(pool):
        if row.name == name:
            return row
    return None


async def add_nas(pool: asyncpg.Pool, nas: NasRow) -> None:
    """Insert a NAS client and notify running daemons. Raises asyncpg.UniqueViolationError."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO nas_clients (name, network, secret_enc, vendor, "
            "require_message_authenticator, coa_port, description, tls_identity) "
            "VALUES ($1, $2::cidr, $3, $4, $5, $6, $7, $8)",
            nas.name,
            str(ipaddress.ip_network(nas.network, strict=False)),
            nas.secret_enc,
            nas.vendor,
            nas.require_message_authenticator,
            nas.coa_port,
            nas.description,
            nas.tls_identity,
        )
        await conn.execute(f"NOTIFY {NAS_CHANNEL}")


async def update_nas(pool: asyncpg.Pool, nas: NasRow) -> bool:
    """Replace a NAS client's settings; False if there is none of that name."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "UPDATE nas_clients SET network = $2::cidr, secret_enc = $3, vendor = $4, "
            "require_message_authenticator = $5, coa_port = $6, description = $7, "
            "tls_identity = $8, updated_at = now() WHERE name = $1",
            nas.name,
            str(ipaddress.ip_network(nas.network, strict=False)),
            nas.secret_enc,
            nas.vendor,
            nas.require_message_authenticator,
            nas.coa_port,
            nas.description,
            nas.tls_identity,
        )
        await conn.execute(f"NOTIFY {NAS_CHANNEL}")
    return bool(status.endswith(" 1"))


async def list_nas_page(pool: asyncpg.Pool, after: str, limit: int) -> list[NasRow]:
    rows = await pool.fetch(
        "SELECT name, network::text AS network, secret_enc, vendor, "
        "require_message_authenticator, coa_port, description, tls_identity "
        "FROM nas_clients "
        "WHERE name > $1 ORDER BY name LIMIT $2",
        after,
        limit,
    )
    return [NasRow(**dict(r)) for r in rows]


async def remove_nas(pool: asyncpg.Pool, name: str) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute("DELETE FROM nas_clients WHERE name = $1", name)
        await conn.execute(f"NOTIFY {NAS_CHANNEL}")
    return bool(status.endswith(" 1"))


# --- subscribers -------------------------------------------------------------------------


def _cache_key(cache: Cache, username: str) -> str:
    return cache.key("u:" + username, "sub")


def sessions_key(cache: Cache, username: str) -> str:
    """The set of a subscriber's live session ids (kept by accounting)."""
    return cache.key("u:" + username, "sessions")


async def fetch_subscriber_db(pool: asyncpg.Pool, username: str) -> SubscriberRow | None:
    row = await pool.fetchrow(
        f"SELECT {_SUB_COLUMNS} FROM subscribers WHERE username = $1", username
    )
    return _sub(row) if row else None


async def fetch_subscribers_db(
    pool: asyncpg.Pool, usernames: Sequence[str]
) -> dict[str, SubscriberRow]:
    """Many subscribers in one query; absent names are absent from the result."""
    rows = await pool.fetch(
        f"SELECT {_SUB_COLUMNS} FROM subscribers WHERE username = ANY($1::text[])", list(usernames)
    )
    return {r["username"]: _sub(r) for r in rows}


async def cached_subscribers(
    cache: Cache, usernames: Sequence[str]
) -> dict[str, tuple[bool, SubscriberRow | None, int]]:
    """One Redis round trip for many users: name → (cache hit?, record, live sessions)."""
    ops = Ops()
    for name in usernames:
        ops.get(_cache_key(cache, name))
        ops.scard(sessions_key(cache, name))
    replies = await cache.run(ops)
    out: dict[str, tuple[bool, SubscriberRow | None, int]] = {}
    for i, name in enumerate(usernames):
        raw, sessions = replies[2 * i], int(replies[2 * i + 1])
        if raw is None:
            out[name] = (False, None, sessions)
        elif raw == _NEGATIVE:
            out[name] = (True, None, sessions)
        else:
            out[name] = (True, _unpacked(raw), sessions)
    return out


async def cached_subscriber(cache: Cache, username: str) -> tuple[bool, SubscriberRow | None, int]:
    """One user: (cache hit?, record, live session count)."""
    return (await cached_subscribers(cache, [username]))[username]


async def cache_subscribers(
    cache: Cache, rows: dict[str, SubscriberRow | None], negative_ttl: float
) -> None:
    """A reader's fill after a miss: records read from PostgreSQL (None: "no such user",
    kept ``negative_ttl`` seconds), in one round trip. Each is written only where there is no
    entry (SET NX): a record read just before a write committed never replaces the one the
    writer put there after its commit (see ``upsert_subscriber``)."""
    async with cache.client.pipeline(transaction=False) as pipe:
        for name, row in rows.items():
            key = _cache_key(cache, name)
            if row is None:
                pipe.set(key, _NEGATIVE, px=max(1, int(negative_ttl * 1000)), nx=True)
            else:
                pipe.set(key, _packed(row), nx=True)
        await pipe.execute()


async def cache_subscriber(
    cache: Cache, username: str, row: SubscriberRow | None, negative_ttl: float
) -> None:
    await cache_subscribers(cache, {username: row}, negative_ttl)


async def _uncache(cache: Cache, usernames: Sequence[str]) -> None:
    async with cache.client.pipeline(transaction=False) as pipe:
        for name in usernames:
            pipe.delete(_cache_key(cache, name))
        await pipe.execute()


_UPDATE = (
    "password_hash = EXCLUDED.password_hash, password_enc = EXCLUDED.password_enc, "
    "nt_hash_enc = EXCLUDED.nt_hash_enc, plan = EXCLUDED.plan, state = EXCLUDED.state, "
    "mac = EXCLUDED.mac, framed_ip = EXCLUDED.framed_ip, "
    "framed_ipv6_address = EXCLUDED.framed_ipv6_address, "
    "framed_ipv6_prefix = EXCLUDED.framed_ipv6_prefix, "
    "delegated_ipv6_prefix = EXCLUDED.delegated_ipv6_prefix, "
    "framed_ipv6_pool = EXCLUDED.framed_ipv6_pool, "
    "delegated_ipv6_pool = EXCLUDED.delegated_ipv6_pool, updated_at = now()"
)


async def uncache_subscribers(cache: Cache, usernames: Sequence[str]) -> None:
    """Drop these subscribers' cached records (the next read takes PostgreSQL's)."""
    await _uncache(cache, usernames)


async def upsert_subscriber(pool: asyncpg.Pool, cache: Cache, sub: SubscriberRow) -> None:
    """Insert or replace a subscriber in PostgreSQL, then write the cache through.

    The cached record is removed first: a writer killed between its commit and the cache
    write (kill -9, a lost Redis connection) leaves no entry, so the next lookup reads the
    committed row, instead of the old record staying in Redis (it has no expiry)."""
    await _uncache(cache, [sub.username])
    await pool.execute(
        "INSERT INTO subscribers (username, password_hash, password_enc, nt_hash_enc, plan, "
        "state, mac, framed_ip, framed_ipv6_address, framed_ipv6_prefix, delegated_ipv6_prefix, "
        "framed_ipv6_pool, delegated_ipv6_pool) VALUES ($1, $2, $3, $4, $5, $6, $7::macaddr, "
        "$8::inet, $9::inet, $10::cidr, $11::cidr, $12, $13) "
        f"ON CONFLICT (username) DO UPDATE SET {_UPDATE}",
        sub.username,
        sub.password_hash,
        sub.password_enc,
        sub.nt_hash_enc,
        sub.plan,
        sub.state,
        sub.mac,
        sub.framed_ip,
        *(getattr(sub, name) for name in IPV6_FIELDS),
    )
    fresh = await fetch_subscriber_db(pool, sub.username)  # normalised mac/ip, as stored
    key = _cache_key(cache, sub.username)
    if fresh is None:  # removed meanwhile
        await cache.client.delete(key)
    else:
        await cache.client.set(key, _packed(fresh))


async def bulk_upsert_subscribers(
    pool: asyncpg.Pool, cache: Cache, subs: Sequence[SubscriberRow]
) -> None:
    """Many subscribers in one transaction (COPY into a temp table), cache written through
    (their cached records removed first, as in ``upsert_subscriber``)."""
    await _uncache(cache, [s.username for s in subs])
    async with pool.acquire() as conn, conn.transaction():
        # mac and framed_ip travel as text: asyncpg's binary COPY has no macaddr encoder.
        await conn.execute(
            "CREATE TEMP TABLE sub_load (username text, password_hash text, password_enc bytea, "
            "nt_hash_enc bytea, plan text, state text, mac text, framed_ip text, "
            "framed_ipv6_address text, framed_ipv6_prefix text, delegated_ipv6_prefix text, "
            "framed_ipv6_pool text, delegated_ipv6_pool text) ON COMMIT DROP"
        )
        await conn.copy_records_to_table(
            "sub_load",
            records=[
                (
                    s.username,
                    s.password_hash,
                    s.password_enc,
                    s.nt_hash_enc,
                    s.plan,
                    s.state,
                    s.mac,
                    s.framed_ip,
                    *(getattr(s, name) for name in IPV6_FIELDS),
                )
                for s in subs
            ],
            columns=[
                "username",
                "password_hash",
                "password_enc",
                "nt_hash_enc",
                "plan",
                "state",
                "mac",
                "framed_ip",
                *IPV6_FIELDS,
            ],
        )
        await conn.execute(
            "INSERT INTO subscribers (username, password_hash, password_enc, nt_hash_enc, "
            "plan, state, mac, framed_ip, framed_ipv6_address, framed_ipv6_prefix, "
            "delegated_ipv6_prefix, framed_ipv6_pool, delegated_ipv6_pool) SELECT username, "
            "password_hash, password_enc, nt_hash_enc, plan, state, mac::macaddr, "
            "framed_ip::inet, framed_ipv6_address::inet, framed_ipv6_prefix::cidr, "
            "delegated_ipv6_prefix::cidr, framed_ipv6_pool, delegated_ipv6_pool FROM sub_load "
            f"ON CONFLICT (username) DO UPDATE SET {_UPDATE}"
        )
    async with cache.client.pipeline(transaction=False) as pipe:
        for s in subs:
            pipe.set(_cache_key(cache, s.username), _packed(s))
        await pipe.execute()


async def remove_subscriber(pool: asyncpg.Pool, cache: Cache, username: str) -> bool:
    """Delete a subscriber; its cached record goes before and after (so neither a writer
    killed after the commit nor a lookup racing it leaves the record in Redis)."""
    await cache.client.delete(_cache_key(cache, username))
    status = await pool.execute("DELETE FROM subscribers WHERE username = $1", username)
    await cache.client.delete(_cache_key(cache, username))
    return bool(status.endswith(" 1"))


async def list_subscribers(
    pool: asyncpg.Pool,
    after: str = "",
    limit: int = 100,
    plan: str | None = None,
    state: str | None = None,
) -> list[SubscriberRow]:
    rows = await pool.fetch(
        f"SELECT {_SUB_COLUMNS} FROM subscribers WHERE username > $1 "
        "AND ($2::text IS NULL OR plan = $2) AND ($4::text IS NULL OR state = $4) "
        "ORDER BY username LIMIT $3",
        after,
        plan,
        limit,
        state,
    )
    return [_sub(r) for r in rows]


def public_view(sub: SubscriberRow) -> dict[str, Any]:
    """A subscriber for display: which credentials exist, never their values."""
    return {
        "username": sub.username,
        "plan": sub.plan,
        "state": sub.state,
        "mac": sub.mac,
        "framed_ip": sub.framed_ip,
        **{name: getattr(sub, name) for name in IPV6_FIELDS},
        "credentials": [
            name
            for name, present in (
                ("cleartext", sub.password_enc),
                ("nt-hash", sub.nt_hash_enc),
                ("hash", sub.password_hash),
            )
            if present
        ],
    }
