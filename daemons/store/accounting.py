"""Store verbs for RADIUS accounting: the ledger, the sessions table, live sessions."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from redis.asyncio.cluster import RedisCluster

from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.store import pg, pools6, stream
from daemons.store.cache import Cache, Ops, pack, unpack
from daemons.store.radius import sessions_key

NAS_REBOOT = 11  # RFC 2866 §5.10 Acct-Terminate-Cause NAS-Reboot

_EVENT_COLUMNS = (
    "event_time",
    "idem_key",
    "nas",
    "status_type",
    "acct_session_id",
    "unique_id",
    "username",
    "nas_port",
    "framed_ip",
    "input_octets",
    "output_octets",
    "input_packets",
    "output_packets",
    "session_time",
    "terminate_cause",
    "delay_time",
    "attributes",
)

_INSERT_EVENTS = f"""
INSERT INTO accounting_events ({", ".join(_EVENT_COLUMNS)})
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::smallint[], $5::text[],
                     $6::text[], $7::text[], $8::text[], $9::inet[], $10::bigint[],
                     $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::int[],
                     $16::int[], $17::jsonb[])
ON CONFLICT (idem_key, event_time) DO NOTHING
"""

_GATE = """
INSERT INTO accounting_dedup (idem_key) SELECT unnest($1::text[])
ON CONFLICT (idem_key) DO NOTHING
RETURNING idem_key
"""

# Counters only grow: GREATEST keeps an out-of-order Interim from moving them back.
_UPSERT_SESSION = """
INSERT INTO radius_sessions AS s (unique_id, nas, acct_session_id, username, nas_port,
    framed_ip, started_at, updated_at, stopped_at, session_time, input_octets,
    output_octets, input_packets, output_packets, terminate_cause, close_reason,
    framed_ipv6_address, framed_ipv6_prefix, delegated_ipv6_prefix)
VALUES ($1, $2, $3, $4, $5, $6::inet, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        CASE WHEN $9::timestamptz IS NULL THEN NULL ELSE 'stop' END,
        $16::inet, $17::cidr, $18::cidr)
ON CONFLICT (unique_id) DO UPDATE SET
    updated_at = GREATEST(s.updated_at, EXCLUDED.updated_at),
    started_at = LEAST(s.started_at, EXCLUDED.started_at),
    stopped_at = COALESCE(s.stopped_at, EXCLUDED.stopped_at),
    session_time = GREATEST(s.session_time, EXCLUDED.session_time),
    input_octets = GREATEST(s.input_octets, EXCLUDED.input_octets),
    output_octets = GREATEST(s.output_octets, EXCLUDED.output_octets),
    input_packets = GREATEST(s.input_packets, EXCLUDED.input_packets),
    output_packets = GREATEST(s.output_packets, EXCLUDED.output_packets),
    terminate_cause = COALESCE(s.terminate_cause, EXCLUDED.terminate_cause),
    close_reason = COALESCE(s.close_reason, EXCLUDED.close_reason),
    framed_ip = COALESCE(EXCLUDED.framed_ip, s.framed_ip),
    framed_ipv6_address = COALESCE(EXCLUDED.framed_ipv6_address, s.framed_ipv6_address),
    framed_ipv6_prefix = COALESCE(EXCLUDED.framed_ipv6_prefix, s.framed_ipv6_prefix),
    delegated_ipv6_prefix = COALESCE(EXCLUDED.delegated_ipv6_prefix, s.delegated_ipv6_prefix),
    username = CASE WHEN s.username = '' THEN EXCLUDED.username ELSE s.username END
"""


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
            pool,
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF accounting_events "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{nxt.isoformat()}')",
        )
        day = nxt


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
    async with pool.acquire() as conn, conn.transaction():
        new = {row["idem_key"] for row in await conn.fetch(_GATE, sorted(unique))}
        fresh = [r for k, r in unique.items() if k in new]
        if fresh:
            await conn.execute(_INSERT_EVENTS, *_columns(fresh))
        # Sessions in one pipelined round trip, in arrival order (Start, Interim, Stop).
        await conn.executemany(
            _UPSERT_SESSION,
            [
                (
                    r.unique_id,
                    r.nas,
                    r.acct_session_id,
                    r.username,
                    r.nas_port,
                    r.framed_ip,
                    _ts(r.event_time - r.session_time),
                    _ts(r.event_time),
                    _ts(r.event_time) if r.status == AcctStatus.STOP else None,
                    r.session_time,
                    r.input_octets,
                    r.output_octets,
                    r.input_packets,
                    r.output_packets,
                    r.terminate_cause if r.status == AcctStatus.STOP else None,
                    r.framed_ipv6_address,
                    r.framed_ipv6_prefix,
                    r.delegated_ipv6_prefix,
                )
                for r in fresh
                if r.is_session_event
            ],
        )
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


def _prefixes(r: AcctRecord) -> list[str]:
    return [p for p in (r.framed_ipv6_prefix, r.delegated_ipv6_prefix) if p]


def _columns(records: Sequence[AcctRecord]) -> list[list[object]]:
    cols: list[list[object]] = [[] for _ in _EVENT_COLUMNS]
    for r in records:
        row = (
            _ts(r.event_time),
            r.idem_key,
            r.nas,
            r.status,
            r.acct_session_id,
            r.unique_id,
            r.username,
            r.nas_port,
            r.framed_ip,
            r.input_octets,
            r.output_octets,
            r.input_packets,
            r.output_packets,
            r.session_time,
            r.terminate_cause,
            r.delay_time,
            json.dumps(r.attributes, default=str),
        )
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    return cols


async def prune_dedup(pool: asyncpg.Pool, days: int = 7) -> None:
    await pool.execute(
        "DELETE FROM accounting_dedup WHERE created_at < now() - $1::interval", timedelta(days=days)
    )


def _session_key(cache: Cache, unique_id: str) -> str:
    return cache.key("s:" + unique_id, "session")


def nas_sessions_key(cache: Cache, nas: str) -> str:
    """A NAS's live session ids: a sorted set (score 0, so ordered by id) that pages with
    ZRANGEBYLEX like the index of all."""
    return cache.key("nas:" + nas, "live")


def ip_session_key(cache: Cache, address: str) -> str:
    """The live session holding an address."""
    return cache.key("ip:" + address, "session")


# IPv6 index entries (an address, a prefix) also expire: the Accounting-On/Off path closes
# sessions without knowing their prefixes, and every interim writes them again.
IPV6_INDEX_TTL = 7 * 86400
_V6_SQL = (
    "array_remove(ARRAY[host(framed_ipv6_address), framed_ipv6_prefix::text, "
    "delegated_ipv6_prefix::text], NULL) AS ipv6"
)


def ipv6_candidates(address: str) -> list[str]:
    """The index entries that may hold an IPv6 address: itself and each prefix of it."""
    addr = ipaddress.IPv6Address(address)
    return [str(addr)] + [
        str(ipaddress.IPv6Network((addr, n), strict=False)) for n in range(128, -1, -1)
    ]


def live_index_key(cache: Cache) -> str:
    """Every live session id, in one sorted set (score 0: ordered by id) for paging."""
    return cache.key("live", "index")


def live_session_key(cache: Cache, unique_id: str) -> str:
    return _session_key(cache, unique_id)


_STATUS_KIND: dict[int, str] = {AcctStatus.START: "start", AcctStatus.INTERIM_UPDATE: "interim"}


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


def _forget(
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


def _remember(
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
            _forget(pipe, cache, r.unique_id, r.username, r.nas, r.framed_ip, r.ipv6)
            stream.add(pipe, cache, "session.stop", {**_stream_data(r), "reason": "stop"})
            continue
        stream.add(pipe, cache, f"session.{_STATUS_KIND[r.status]}", _stream_data(r))
        _remember(
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
        _forget(pipe, cache, unique_id, username, nas, address)
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
        f"framed_ipv6_prefix::text AS v6p, delegated_ipv6_prefix::text AS v6d, {_V6_SQL} "
        "FROM radius_sessions WHERE stopped_at IS NULL"
    )
    async with cache.client.pipeline(transaction=False) as pipe:
        for r in rows:
            _remember(
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
        f"SELECT unique_id, username, nas, host(framed_ip) AS ip, {_V6_SQL} FROM radius_sessions "
        "WHERE unique_id = ANY($1::text[]) AND stopped_at IS NOT NULL",
        sorted(listed | live),
    )
    if closed:
        async with cache.client.pipeline(transaction=False) as pipe:
            for r in closed:
                _forget(pipe, cache, r["unique_id"], r["username"], r["nas"], r["ip"], r["ipv6"])
            await pipe.execute()
    live -= {r["unique_id"] for r in closed}
    return len(live), sum(1 for r in closed if r["unique_id"] in listed)


LOST_SERVICE = 3  # RFC 2866 §5.10 Acct-Terminate-Cause Lost-Service
ADMIN_RESET = 6  # RFC 2866 §5.10 Acct-Terminate-Cause Admin-Reset

_CLOSE = (
    "UPDATE radius_sessions SET stopped_at = updated_at, terminate_cause = $2, "
    "close_reason = $3 WHERE stopped_at IS NULL AND {which} "
    "RETURNING unique_id, nas, acct_session_id, username, nas_port, "
    "host(framed_ip) AS ip, extract(epoch FROM updated_at) AS at, updated_at, session_time, "
    f"input_octets, output_octets, input_packets, output_packets, {_V6_SQL}"
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
        new = {x["idem_key"] for x in await conn.fetch(_GATE, keys)}
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
            await conn.execute(_INSERT_EVENTS, *_columns(synthetic))
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
            _forget(pipe, cache, r["unique_id"], r["username"], r["nas"], r["ip"], r["ipv6"])
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
