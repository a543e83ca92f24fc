"""Store verbs for the VOLTHA daemon: the synced device tree, the ONU allow-list, disabled
serials, optics alarms and firmware jobs.

A sync's rows and events are written in one transaction (``apply``): if it fails, neither
is there, and the next sync diffs against what was really written, so an event is raised
once, never twice and never lost. Events reach the Redis stream after the commit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from daemons.store import stream
from daemons.store.cache import Cache
from daemons.voltha.inventory import DeviceRow, Diff, Event, PortRow, Snapshot
from daemons.voltha.policy import normalize_serial
from daemons.voltha.reconcile import ServiceRow

log = logging.getLogger("netd.voltha")
BINDINGS_NOTIFY = "netd_onu_bindings_changed"
FIRMWARE_NOTIFY = "netd_voltha_firmware"
_DEVICE_COLUMNS = [f.name for f in fields(DeviceRow)]
_PORT_COLUMNS = [f.name for f in fields(PortRow)]


async def load_snapshot(pool: asyncpg.Pool, stack: str) -> Snapshot:
    snap = Snapshot()
    for r in await pool.fetch(
        f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM voltha_devices WHERE stack = $1", stack
    ):
        snap.devices[r["id"]] = DeviceRow(**dict(r))
    for r in await pool.fetch(
        f"SELECT {', '.join(_PORT_COLUMNS)} FROM voltha_ports WHERE stack = $1", stack
    ):
        snap.ports[(r["device_id"], r["port_no"])] = PortRow(**dict(r))
    return snap


async def _events(conn: Any, source: str, events: Iterable[Event]) -> list[tuple[int, Event]]:
    out = []
    for e in events:
        event_id = await conn.fetchval(
            "INSERT INTO events (source, kind, severity, subject, data) "
            "VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id",
            source,
            e.kind,
            e.severity,
            e.subject,
            json.dumps(e.data, default=str),
        )
        out.append((event_id, e))
    return out


async def publish(cache: Cache | None, source: str, written: Sequence[tuple[int, Event]]) -> None:
    """The committed events on the event stream (best effort: the table is the record)."""
    if cache is None:
        return
    try:
        for event_id, e in written:
            await stream.publish(
                cache,
                e.kind,
                {
                    "id": event_id,
                    "source": source,
                    "subject": e.subject,
                    "severity": e.severity,
                    "data": json.loads(json.dumps(e.data, default=str)),
                },
            )
    except (RedisError, OSError) as exc:
        log.warning("events not published", extra={"fields": {"error": repr(exc)}})


async def apply(pool: asyncpg.Pool, stack: str, d: Diff) -> list[tuple[int, Event]]:
    """Write a sync's diff and its events in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        if d.upsert_devices:
            cols = ", ".join(_DEVICE_COLUMNS)
            marks = ", ".join(f"${i + 1}" for i in range(len(_DEVICE_COLUMNS)))
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _DEVICE_COLUMNS[2:])
            await conn.executemany(
                f"INSERT INTO voltha_devices ({cols}) VALUES ({marks}) ON CONFLICT (stack, id) "
                f"DO UPDATE SET {sets}, updated_at = now()",
                [tuple(asdict(r).values()) for r in d.upsert_devices],
            )
        if d.delete_devices:
            await conn.execute(
                "DELETE FROM voltha_devices WHERE stack = $1 AND id = ANY($2::text[])",
                stack,
                d.delete_devices,
            )
        if d.upsert_ports:
            cols = ", ".join(_PORT_COLUMNS)
            marks = ", ".join(f"${i + 1}" for i in range(len(_PORT_COLUMNS)))
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _PORT_COLUMNS[3:])
            await conn.executemany(
                f"INSERT INTO voltha_ports ({cols}) VALUES ({marks}) "
                f"ON CONFLICT (stack, device_id, port_no) DO UPDATE SET {sets}, updated_at = now()",
                [tuple(asdict(r).values()) for r in d.upsert_ports],
            )
        if d.delete_ports:
            await conn.executemany(
                "DELETE FROM voltha_ports WHERE stack = $1 AND device_id = $2 AND port_no = $3",
                [(stack, dev, no) for dev, no in d.delete_ports],
            )
        return await _events(conn, "voltha", d.events)


async def record_events(pool: asyncpg.Pool, events: Sequence[Event]) -> list[tuple[int, Event]]:
    async with pool.acquire() as conn, conn.transaction():
        return await _events(conn, "voltha", events)


# --- the allow-list ---


@dataclass(frozen=True)
class Binding:
    serial: str
    subscriber: str
    s_tag: int
    c_tag: int
    tp_id: int = 64
    uni: int = 1


async def put_binding(pool: asyncpg.Pool, b: Binding) -> bool:
    """Bind an ONU serial (kept in openolt's form) to a subscriber; True if new. Raises
    asyncpg.ForeignKeyViolationError for an unknown subscriber."""
    b = Binding(normalize_serial(b.serial), b.subscriber, b.s_tag, b.c_tag, b.tp_id, b.uni)
    async with pool.acquire() as conn, conn.transaction():
        created: bool = await conn.fetchval(
            "INSERT INTO onu_bindings (serial, subscriber, uni, s_tag, c_tag, tp_id) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (serial) DO UPDATE SET "
            "subscriber = EXCLUDED.subscriber, uni = EXCLUDED.uni, s_tag = EXCLUDED.s_tag, "
            "c_tag = EXCLUDED.c_tag, tp_id = EXCLUDED.tp_id, updated_at = now() "
            "RETURNING (xmax = 0)",
            b.serial,
            b.subscriber,
            b.uni,
            b.s_tag,
            b.c_tag,
            b.tp_id,
        )
        await conn.execute(f"NOTIFY {BINDINGS_NOTIFY}")
    return created


async def remove_binding(pool: asyncpg.Pool, serial: str) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "DELETE FROM onu_bindings WHERE lower(serial) = lower($1)", serial
        )
        await conn.execute(f"NOTIFY {BINDINGS_NOTIFY}")
    return bool(status.endswith(" 1"))


async def bindings(pool: asyncpg.Pool) -> dict[str, Binding]:
    rows = await pool.fetch(
        "SELECT serial, subscriber, s_tag, c_tag, tp_id, uni FROM onu_bindings ORDER BY serial"
    )
    return {r["serial"]: Binding(**dict(r)) for r in rows}


async def binding(pool: asyncpg.Pool, serial: str) -> Binding | None:
    r = await pool.fetchrow(
        "SELECT serial, subscriber, s_tag, c_tag, tp_id, uni FROM onu_bindings "
        "WHERE lower(serial) = lower($1)",
        serial,
    )
    return Binding(**dict(r)) if r else None


@dataclass(frozen=True)
class Wanted:
    """A binding with what its service needs: the subscriber's plan, and whether the
    subscriber is active (an inactive one gets no service)."""

    binding: Binding
    plan: str
    active: bool


async def wanted(pool: asyncpg.Pool) -> dict[str, Wanted]:
    rows = await pool.fetch(
        "SELECT b.serial, b.subscriber, b.s_tag, b.c_tag, b.tp_id, b.uni, s.plan, "
        "s.state = 'active' AS active FROM onu_bindings b "
        "JOIN subscribers s ON s.username = b.subscriber ORDER BY b.serial"
    )
    return {
        r["serial"]: Wanted(
            Binding(r["serial"], r["subscriber"], r["s_tag"], r["c_tag"], r["tp_id"], r["uni"]),
            r["plan"],
            r["active"],
        )
        for r in rows
    }


async def disabled_onus(pool: asyncpg.Pool, stack: str) -> dict[str, tuple[str, int]]:
    rows = await pool.fetch(
        "SELECT serial, olt_id, pon_port FROM voltha_disabled_onus WHERE stack = $1", stack
    )
    return {r["serial"]: (r["olt_id"], r["pon_port"]) for r in rows}


async def mark_disabled(
    pool: asyncpg.Pool, stack: str, serial: str, olt_id: str, pon_port: int, event: Event
) -> list[tuple[int, Event]]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO voltha_disabled_onus (stack, serial, olt_id, pon_port) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (stack, serial) DO UPDATE SET "
            "olt_id = EXCLUDED.olt_id, pon_port = EXCLUDED.pon_port, disabled_at = now()",
            stack,
            serial,
            olt_id,
            pon_port,
        )
        return await _events(conn, "voltha", [event])


async def mark_enabled(
    pool: asyncpg.Pool, stack: str, serial: str, event: Event
) -> list[tuple[int, Event]]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM voltha_disabled_onus WHERE stack = $1 AND serial = $2", stack, serial
        )
        return await _events(conn, "voltha", [event])


# --- optics alarms ---


async def active_alarms(pool: asyncpg.Pool, stack: str) -> dict[tuple[str, str], float | None]:
    rows = await pool.fetch(
        "SELECT device_id, alarm, value FROM voltha_alarms WHERE stack = $1", stack
    )
    return {(r["device_id"], r["alarm"]): r["value"] for r in rows}


async def set_alarm(
    pool: asyncpg.Pool,
    stack: str,
    device_id: str,
    alarm: str,
    serial: str,
    value: float | None,
    raised: bool,
    event: Event,
) -> list[tuple[int, Event]]:
    """Raise (insert) or clear (delete) an alarm with its event, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        if raised:
            await conn.execute(
                "INSERT INTO voltha_alarms (stack, device_id, alarm, serial, value) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                stack,
                device_id,
                alarm,
                serial,
                value,
            )
        else:
            await conn.execute(
                "DELETE FROM voltha_alarms WHERE stack = $1 AND device_id = $2 AND alarm = $3",
                stack,
                device_id,
                alarm,
            )
        return await _events(conn, "voltha", [event])


# --- reads for the API ---


async def list_devices(
    pool: asyncpg.Pool, kind: str, stack: str | None = None, parent_id: str | None = None
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT d.*, b.subscriber FROM voltha_devices d "
        "LEFT JOIN onu_bindings b ON lower(b.serial) = lower(d.serial) AND d.kind = 'onu' "
        "WHERE d.kind = $1 AND ($2::text IS NULL OR d.stack = $2) "
        "AND ($3::text IS NULL OR d.parent_id = $3) ORDER BY d.stack, d.serial, d.id",
        kind,
        stack,
        parent_id,
    )
    return [dict(r) for r in rows]


async def find_device(pool: asyncpg.Pool, key: str) -> dict[str, Any] | None:
    """A device by VOLTHA id or serial number."""
    r = await pool.fetchrow(
        "SELECT d.*, b.subscriber FROM voltha_devices d "
        "LEFT JOIN onu_bindings b ON lower(b.serial) = lower(d.serial) AND d.kind = 'onu' "
        "WHERE d.id = $1 OR lower(d.serial) = lower($1) "
        "ORDER BY (d.id = $1) DESC, (d.serial = $1) DESC LIMIT 1",
        key,
    )
    return dict(r) if r else None


async def device_ports(pool: asyncpg.Pool, stack: str, device_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT port_no, label, type, admin_state, oper_status, updated_at FROM voltha_ports "
        "WHERE stack = $1 AND device_id = $2 ORDER BY port_no",
        stack,
        device_id,
    )
    return [dict(r) for r in rows]


# --- ONOS services ---


async def services(pool: asyncpg.Pool, stack: str) -> list[ServiceRow]:
    rows = await pool.fetch(
        "SELECT serial, uni, subscriber, plan, s_tag, c_tag, tp_id, tag_info::text AS tag_info, "
        "location, extract(epoch FROM now() - provisioned_at)::float8 AS age "
        "FROM voltha_onos_services WHERE stack = $1 ORDER BY serial, uni, provisioned_at",
        stack,
    )
    return [ServiceRow(**{**dict(r), "tag_info": json.loads(r["tag_info"])}) for r in rows]


async def record_service(
    pool: asyncpg.Pool,
    stack: str,
    row: ServiceRow,
    events: Sequence[Event] = (),
) -> list[tuple[int, Event]]:
    """Record a service ONOS holds (provisioned by netd, or found there), with its events."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO voltha_onos_services (stack, serial, uni, subscriber, plan, s_tag, c_tag, "
            "tp_id, tag_info, location) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10) "
            "ON CONFLICT (stack, serial, uni, s_tag, c_tag, tp_id) DO UPDATE SET "
            "subscriber = EXCLUDED.subscriber, plan = EXCLUDED.plan, "
            "tag_info = EXCLUDED.tag_info, location = EXCLUDED.location, provisioned_at = now()",
            stack,
            row.serial,
            row.uni,
            row.subscriber,
            row.plan,
            row.s_tag,
            row.c_tag,
            row.tp_id,
            json.dumps(row.tag_info),
            row.location,
        )
        return await _events(conn, "voltha", events)


async def forget_service(
    pool: asyncpg.Pool, stack: str, row: ServiceRow, events: Sequence[Event] = ()
) -> list[tuple[int, Event]]:
    """Delete a service's record (ONOS no longer holds it), with its events."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM voltha_onos_services WHERE stack = $1 AND serial = $2 AND uni = $3 "
            "AND s_tag = $4 AND c_tag = $5 AND tp_id = $6",
            stack,
            row.serial,
            row.uni,
            row.s_tag,
            row.c_tag,
            row.tp_id,
        )
        return await _events(conn, "voltha", events)


# --- firmware jobs ---


@dataclass(frozen=True)
class FirmwareJob:
    id: int
    stack: str
    version: str
    url: str
    vendor: str
    crc32: int
    activate: bool
    commit: bool
    concurrency: int
    state: str


_JOB_COLUMNS = "id, stack, version, url, vendor, crc32, activate, commit, concurrency, state"


async def create_job(
    pool: asyncpg.Pool,
    stack: str,
    version: str,
    url: str,
    devices: Sequence[tuple[str, str]],
    *,
    vendor: str = "",
    crc32: int = 0,
    activate: bool = True,
    commit: bool = True,
    concurrency: int = 4,
    created_by: str = "",
) -> int:
    """A pending job over ``devices`` ((device id, serial) pairs); the daemon picks it up."""
    async with pool.acquire() as conn, conn.transaction():
        job_id: int = await conn.fetchval(
            "INSERT INTO voltha_firmware_jobs (stack, version, url, vendor, crc32, activate, "
            "commit, concurrency, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "RETURNING id",
            stack,
            version,
            url,
            vendor,
            crc32,
            activate,
            commit,
            concurrency,
            created_by,
        )
        await conn.executemany(
            "INSERT INTO voltha_firmware_devices (job_id, device_id, serial) VALUES ($1, $2, $3)",
            [(job_id, d, s) for d, s in devices],
        )
        await conn.execute(f"NOTIFY {FIRMWARE_NOTIFY}")
    return job_id


async def claim_jobs(pool: asyncpg.Pool, stacks: Sequence[str]) -> list[FirmwareJob]:
    """Pending jobs of these stacks, now running (one daemon per deployment runs them)."""
    rows = await pool.fetch(
        "UPDATE voltha_firmware_jobs SET state = 'running', started_at = now() "
        "WHERE id IN (SELECT id FROM voltha_firmware_jobs WHERE state = 'pending' "
        "AND stack = ANY($1::text[]) ORDER BY id FOR UPDATE SKIP LOCKED) "
        f"RETURNING {_JOB_COLUMNS}",
        list(stacks),
    )
    return [FirmwareJob(**dict(r)) for r in rows]


async def running_jobs(pool: asyncpg.Pool, stacks: Sequence[str]) -> list[FirmwareJob]:
    rows = await pool.fetch(
        f"SELECT {_JOB_COLUMNS} FROM voltha_firmware_jobs WHERE state = 'running' "
        "AND stack = ANY($1::text[]) ORDER BY id",
        list(stacks),
    )
    return [FirmwareJob(**dict(r)) for r in rows]


async def job_devices(pool: asyncpg.Pool, job_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT device_id, serial, state, reason, updated_at FROM voltha_firmware_devices "
        "WHERE job_id = $1 ORDER BY serial, device_id",
        job_id,
    )
    return [dict(r) for r in rows]


async def set_job_device(
    pool: asyncpg.Pool, job_id: int, device_id: str, state: str, reason: str = ""
) -> None:
    await pool.execute(
        "UPDATE voltha_firmware_devices SET state = $3, reason = $4, updated_at = now() "
        "WHERE job_id = $1 AND device_id = $2",
        job_id,
        device_id,
        state,
        reason,
    )


async def finish_job(
    pool: asyncpg.Pool, job_id: int, state: str, event: Event
) -> list[tuple[int, Event]]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE voltha_firmware_jobs SET state = $2, finished_at = now() WHERE id = $1",
            job_id,
            state,
        )
        return await _events(conn, "voltha", [event])


async def get_job(pool: asyncpg.Pool, job_id: int) -> dict[str, Any] | None:
    r = await pool.fetchrow(
        f"SELECT {_JOB_COLUMNS}, created_by, created_at, started_at, finished_at "
        "FROM voltha_firmware_jobs WHERE id = $1",
        job_id,
    )
    if r is None:
        return None
    devices = await job_devices(pool, job_id)
    counts: dict[str, int] = {}
    for d in devices:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    return {**dict(r), "devices": devices, "counts": counts}


async def list_jobs(pool: asyncpg.Pool, limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {_JOB_COLUMNS}, created_by, created_at, started_at, finished_at "
        "FROM voltha_firmware_jobs ORDER BY id DESC LIMIT $1",
        limit,
    )
    return [dict(r) for r in rows]


async def onus_of(pool: asyncpg.Pool, subscriber: str) -> list[dict[str, Any]]:
    """The ONU serials bound to a subscriber, with the device as last synced (None for a
    serial not seen yet): [{"binding": Binding, "device": dict | None}]."""
    rows = await pool.fetch(
        "SELECT serial, subscriber, s_tag, c_tag, tp_id, uni FROM onu_bindings "
        "WHERE subscriber = $1 ORDER BY serial LIMIT 20",
        subscriber,
    )
    return [
        {"binding": Binding(**dict(r)), "device": await find_device(pool, r["serial"])}
        for r in rows
    ]


async def device_counts(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Devices by stack, kind and oper status, with how many are connected (the console's
    VOLTHA summary)."""
    rows = await pool.fetch(
        "SELECT stack, kind, oper_status, count(*) AS n, "
        "count(*) FILTER (WHERE connect_status = 'REACHABLE') AS reachable "
        "FROM voltha_devices GROUP BY stack, kind, oper_status ORDER BY stack, kind, oper_status"
    )
    return [dict(r) for r in rows]
