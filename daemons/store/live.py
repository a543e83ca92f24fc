"""Live RADIUS sessions in Redis: the mirror of the open sessions the API, the console,
Simultaneous-Use and CoA read, and its repair.

A hash per session (``live_session_key``), indexed by user (the Simultaneous-Use set of
``store.radius.sessions_key``), by NAS and in one index of all (sorted sets, score 0, so
they page by id with ZRANGEBYLEX), and by address. ``update_live_sessions`` mirrors each
committed accounting batch (one round trip, with the event stream entries);
``rebuild_live_sessions`` rebuilds the mirror from ``radius_sessions`` when Redis lost or
may have missed updates. ``store.accounting`` re-exports these verbs for its callers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio.cluster import RedisCluster

from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.store import stream
from daemons.store.cache import Cache, Ops, pack, unpack
from daemons.store.radius import sessions_key

NAS_REBOOT = 11  # RFC 2866 §5.10 Acct-Terminate-Cause NAS-Reboot


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _session_key(cache: Cache, unique_id: str) -> str:
    return cache.key("s:" + unique_id, "session")


def nas_sessions_key(cache: Cache, nas: str) -> str:
    """A NAS's live session ids: a sorted set (score 0, so ordered by id) that pages with
    ZRANGEBYLEX like the index of all."""
    return cache.key("nas:" + nas, "live")


def ip_session_key(cache: Cache, address: str) -> str:
    """The live session holding an address."""
    return cache.key("ip:" + address, "session")


def live_index_key(cache: Cache) -> str:
    """Every live session id, in one sorted set (score 0: ordered by id) for paging."""
    return cache.key("live", "index")


def live_session_key(cache: Cache, unique_id: str) -> str:
    return _session_key(cache, unique_id)


_STATUS_KIND: dict[int, str] = {AcctStatus.START: "start", AcctStatus.INTERIM_UPDATE: "interim"}


# IPv6 index entries (an address, a prefix) also expire: the Accounting-On/Off path closes
# sessions without knowing their prefixes, and every interim writes them again.
IPV6_INDEX_TTL = 7 * 86400
# A session row's IPv6 address and prefixes, as one text array column named ipv6.
V6_SQL = (
    "array_remove(ARRAY[host(framed_ipv6_address), framed_ipv6_prefix::text, "
    "delegated_ipv6_prefix::text], NULL) AS ipv6"
)


def ipv6_candidates(address: str) -> list[str]:
    """The index entries that may hold an IPv6 address: itself and each prefix of it."""
    addr = ipaddress.IPv6Address(address)
    return [str(addr)] + [
        str(ipaddress.IPv6Network((addr, n), strict=False)) for n in range(128, -1, -1)
    ]


def _v6_details(address: str | None, prefix: str | None, delegated: str | None) -> dict[str, str]:
    """A live session's IPv6 entries (left out when absent: an older reader knows none)."""
    out = {}
    if address:
        out["ipv6"] = address
    if prefix:
        out["ipv6_prefix"] = prefix
    if delegated:
        out["delegated_prefix"] = delegated
    return out


def _stream_data(r: AcctRecord) -> dict[str, object]:
    return {
        **_v6_details(r.framed_ipv6_address, r.framed_ipv6_prefix, r.delegated_ipv6_prefix),
        "session": r.unique_id,
        "user": r.username,
        "nas": r.nas,
        "nas_port": r.nas_port,
        "ip": r.framed_ip,
        "acct_session_id": r.acct_session_id,
        "time": r.event_time,
        "session_time": r.session_time,
        "in": r.input_octets,
        "out": r.output_octets,
        "in_packets": r.input_packets,
        "out_packets": r.output_packets,
        "terminate_cause": r.terminate_cause,
        "key": r.idem_key,  # the same for every copy of one record: consumers drop repeats
    }


def forget(
    pipe: Any,
    cache: Cache,
    unique_id: str,
    username: str,
    nas: str,
    address: str | None,
    ipv6: Sequence[str] = (),
) -> None:
    pipe.srem(sessions_key(cache, username), unique_id)
    pipe.zrem(nas_sessions_key(cache, nas), unique_id)
    pipe.zrem(live_index_key(cache), unique_id)
    pipe.delete(_session_key(cache, unique_id))
    if address:
        pipe.delete(ip_session_key(cache, address))
    for entry in ipv6:
        pipe.delete(ip_session_key(cache, entry))


def remember(
    pipe: Any,
    cache: Cache,
    unique_id: str,
    username: str,
    nas: str,
    address: str | None,
    details: dict[str, object],
    ipv6: Sequence[str] = (),
) -> None:
    pipe.sadd(sessions_key(cache, username), unique_id)
    pipe.zadd(nas_sessions_key(cache, nas), {unique_id: 0})
    pipe.zadd(live_index_key(cache), {unique_id: 0})
    pipe.set(_session_key(cache, unique_id), pack(details))
    if address:
        pipe.set(ip_session_key(cache, address), unique_id.encode())
    for entry in ipv6:
        pipe.set(ip_session_key(cache, entry), unique_id.encode(), px=IPV6_INDEX_TTL * 1000)


async def update_live_sessions(
    cache: Cache, records: Sequence[AcctRecord], closed: Sequence[tuple[str, str, str | None]]
) -> None:
    """Mirror session state into Redis: a hash per session, indexed by user (the set that
    Simultaneous-Use counts), by NAS, by address and in one index of all. Stops and
    Accounting-On/Off remove sessions. Each change goes to the event stream as well. One
    round trip (``Cache.run``)."""
    pipe = Ops()
    for r in records:
        if not r.is_session_event:
            continue
        if r.status == AcctStatus.STOP:
            forget(pipe, cache, r.unique_id, r.username, r.nas, r.framed_ip, r.ipv6)
            stream.add(pipe, cache, "session.stop", {**_stream_data(r), "reason": "stop"})
            continue
        stream.add(pipe, cache, f"session.{_STATUS_KIND[r.status]}", _stream_data(r))
        remember(
            pipe,
            cache,
            r.unique_id,
            r.username,
            r.nas,
            r.framed_ip,
            {
                "user": r.username,
                "nas": r.nas,
                "nas_port": r.nas_port,
                "ip": r.framed_ip,
                "acct_session_id": r.acct_session_id,
                "start": r.event_time - r.session_time,
                "updated": r.event_time,
                "in": r.input_octets,
                "out": r.output_octets,
                **_v6_details(r.framed_ipv6_address, r.framed_ipv6_prefix, r.delegated_ipv6_prefix),
            },
            r.ipv6,
        )
    nas = next((r.nas for r in records if not r.is_session_event), "")
    for unique_id, username, address in closed:
        forget(pipe, cache, unique_id, username, nas, address)
        stream.add(
            pipe,
            cache,
            "session.stop",
            {
                "session": unique_id,
                "user": username,
                "nas": nas,
                "ip": address,
                "reason": "nas-restart",
                "terminate_cause": NAS_REBOOT,
            },
        )
    await cache.run(pipe)


def _live_marker(cache: Cache) -> str:
    # v2: the per-NAS index became a sorted set; a Redis holding the old layout is rebuilt.
    return cache.key("live", "built-v2")


async def live_sessions_present(cache: Cache) -> bool:
    """False after Redis lost its data (flush, restart without persistence)."""
    return bool(await cache.client.exists(_live_marker(cache)))


async def rebuild_live_sessions(pool: asyncpg.Pool, cache: Cache) -> tuple[int, int]:
    """Rebuild Redis's live sessions from the open sessions in the sessions table; return
    how many are live, and how many closed sessions Redis listed and no longer does.

    Also a repair for a Redis that missed updates but kept (or came back with) its data:
    unreachable for a while, or restarted from an older snapshot. Sessions it lists as
    live that the table has closed are removed. A session whose Stop commits while this
    runs is removed at the end as well: a Stop is written to the table before it is taken
    out of Redis, so the second read below sees every Stop whose removal could have come
    before this rebuild's writes, and the rebuild never brings a stopped session back.
    Sessions Redis lists that the table does not know (still in the accounting spool) are
    left alone. Raises RedisError and asyncpg errors."""
    listed = _texts(await cache.client.zrange(live_index_key(cache), 0, -1))
    rows = await pool.fetch(
        "SELECT unique_id, nas, acct_session_id, username, nas_port, host(framed_ip) AS ip, "
        "extract(epoch FROM started_at) AS start, extract(epoch FROM updated_at) AS updated, "
        "input_octets, output_octets, host(framed_ipv6_address) AS v6a, "
        f"framed_ipv6_prefix::text AS v6p, delegated_ipv6_prefix::text AS v6d, {V6_SQL} "
        "FROM radius_sessions WHERE stopped_at IS NULL"
    )
    async with cache.client.pipeline(transaction=False) as pipe:
        for r in rows:
            remember(
                pipe,
                cache,
                r["unique_id"],
                r["username"],
                r["nas"],
                r["ip"],
                {
                    "user": r["username"],
                    "nas": r["nas"],
                    "nas_port": r["nas_port"],
                    "ip": r["ip"],
                    "acct_session_id": r["acct_session_id"],
                    "start": float(r["start"]),
                    "updated": float(r["updated"]),
                    "in": r["input_octets"],
                    "out": r["output_octets"],
                    **_v6_details(r["v6a"], r["v6p"], r["v6d"]),
                },
                r["ipv6"],
            )
        pipe.set(_live_marker(cache), b"1")
        await pipe.execute()
    live = {r["unique_id"] for r in rows}
    closed = await pool.fetch(
        f"SELECT unique_id, username, nas, host(framed_ip) AS ip, {V6_SQL} FROM radius_sessions "
        "WHERE unique_id = ANY($1::text[]) AND stopped_at IS NOT NULL",
        sorted(listed | live),
    )
    if closed:
        async with cache.client.pipeline(transaction=False) as pipe:
            for r in closed:
                forget(pipe, cache, r["unique_id"], r["username"], r["nas"], r["ip"], r["ipv6"])
            await pipe.execute()
    live -= {r["unique_id"] for r in closed}
    return len(live), sum(1 for r in closed if r["unique_id"] in listed)


def _live_view(unique_id: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "unique_id": unique_id,
        "username": details.get("user", ""),
        "nas": details.get("nas", ""),
        "nas_port": details.get("nas_port", ""),
        "framed_ip": details.get("ip"),
        "acct_session_id": details.get("acct_session_id", ""),
        "started_at": _ts(float(details.get("start", 0))),
        "updated_at": _ts(float(details.get("updated", 0))),
        "input_octets": int(details.get("in", 0)),
        "output_octets": int(details.get("out", 0)),
        "framed_ipv6_address": details.get("ipv6"),
        "framed_ipv6_prefix": details.get("ipv6_prefix"),
        "delegated_ipv6_prefix": details.get("delegated_prefix"),
    }


def _texts(values: Any) -> set[str]:
    return {v.decode() if isinstance(v, bytes) else str(v) for v in values}


async def live_session_ids(
    cache: Cache,
    *,
    after: str = "",
    limit: int = 100,
    username: str | None = None,
    nas: str | None = None,
    ip: str | None = None,
) -> list[str]:
    """Live session ids in id order after ``after``: a stable order, so paging while
    sessions come and go neither repeats nor skips a session that stays up throughout."""
    client = cache.client
    start = "(" + after if after else "-"
    if username is None and ip is None:  # the whole index, or one NAS's: a range read
        key = live_index_key(cache) if nas is None else nas_sessions_key(cache, nas)
        raw = await client.zrangebylex(key, start, "+", 0, limit)
        return [x.decode() if isinstance(x, bytes) else str(x) for x in raw]
    # An address names one session and a user a few: read those, then check the rest.
    if ip is not None and ":" in ip:  # IPv6: the session whose address or prefix holds it
        keys = [ip_session_key(cache, entry) for entry in ipv6_candidates(ip)]
        candidates = _texts(x for x in await _get_many(cache, keys) if x)
        if username is not None and candidates:
            members = await client.smembers(sessions_key(cache, username))
            candidates &= _texts(members)
    elif ip is not None:
        held = await client.get(ip_session_key(cache, ip))
        candidates = _texts([held] if held else [])
        if username is not None and candidates:
            member = await client.sismember(sessions_key(cache, username), next(iter(candidates)))
            candidates = candidates if member else set()
    else:
        assert username is not None
        candidates = _texts(await client.smembers(sessions_key(cache, username)))
    ordered = sorted(i for i in candidates if i > after)
    if nas is not None and ordered:
        scores = await client.zmscore(nas_sessions_key(cache, nas), ordered)
        ordered = [i for i, sc in zip(ordered, scores, strict=True) if sc is not None]
    return ordered[:limit]


async def _get_many(cache: Cache, keys: list[str]) -> list[Any]:
    """GET of many keys: one MGET on a single Redis (about 3x cheaper than a pipeline of
    GETs); a pipeline on a cluster, where keys of different hash tags cannot share a
    command."""
    if isinstance(cache.client, RedisCluster):
        async with cache.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
            return list(await pipe.execute())
    return list(await cache.client.mget(keys))


async def live_sessions(cache: Cache, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The live sessions with these ids, in the same order (ended ones are left out)."""
    if not ids:
        return []
    values = await _get_many(cache, [_session_key(cache, i) for i in ids])
    return [
        _live_view(unique_id, unpack(raw))
        for unique_id, raw in zip(ids, values, strict=True)
        if isinstance(raw, bytes)
    ]


async def live_session_count(cache: Cache) -> int:
    return int(await cache.client.zcard(live_index_key(cache)))
