"""What the console's pages show, read through the same store verbs and operations as the
API (no SQL here). Each part of a page is read on its own: a store that does not answer
blanks the parts that need it, with the reason, and the rest of the page still shows.

A subscriber's recent authentications are its rows of the authentication history
(``radius.auth_log``: every Accept and Reject), through the same operation as
``GET /api/v1/auth-log``; the overview's recent rejects are the ``auth.reject`` entries of
the event stream.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from daemons.api import ops
from daemons.api.errors import ApiError
from daemons.api.routes_snmp import _statuses as snmp_statuses
from daemons.api.state import ApiState
from daemons.console.render import duration
from daemons.store import accounting, stream
from daemons.store import acs as acs_store
from daemons.store import devices as devices_store
from daemons.store import radius as radius_store
from daemons.store import snmp as snmp_store
from daemons.store import voltha as voltha_store
from daemons.store.events import list_events

DAEMONS = ("radius", "acs", "voltha", "poller", "devices", "api")
RECENT = 1000  # stream entries read for the rates and the recent events
RATE_WINDOW = 60.0  # seconds
# Reject events on the stream (auth.reject, and any other kind that says reject).
REJECT_WORDS = ("reject", "refused")
AUTH_HISTORY_NOTE = (
    "From the authentication history (radius.auth_log: every Access-Accept and Access-Reject, "
    "kept radius.auth_log_retention days); all of it: GET /api/v1/auth-log or netd auth-log."
)
STORE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, RedisError, TimeoutError)


@dataclass
class Part:
    """One part of a page: its data, or why it could not be read."""

    data: Any = None
    error: str = ""


async def part(read: Awaitable[Any]) -> Part:
    try:
        return Part(await read)
    except STORE_ERRORS as exc:
        return Part(error=f"unavailable: {type(exc).__name__}")
    except ApiError as exc:
        return Part(error=str(exc))


def _ms(entry_id: str) -> float:
    return float(entry_id.partition("-")[0]) / 1000.0


# --- the state of the network ----------------------------------------------------------------


async def _daemons(st: ApiState) -> dict[str, Any]:
    beats = await st.cache.list_heartbeats()
    now = time.time()
    stale = 2.5 * st.config.lifecycle.heartbeat_interval
    rows = []
    for b in sorted(beats, key=lambda b: (str(b.get("daemon")), str(b.get("instance_id")))):
        age = now - float(b.get("ts", 0))
        rows.append(
            {
                "daemon": str(b.get("daemon", "")),
                "instance": str(b.get("instance", "")),
                "pid": int(b.get("pid", 0)),
                "version": str(b.get("version", "")),
                "status": str(b.get("status", "")),
                "uptime": float(b.get("uptime", 0)),
                "age": age,
                "stale": age > stale,
                "counters": dict(b.get("counters", {})),
            }
        )
    seen = {r["daemon"] for r in rows}
    return {"rows": rows, "silent": [d for d in DAEMONS if d not in seen]}


async def _stores(st: ApiState) -> dict[str, str]:
    _ok, checks = await st.health.ready()
    return {"PostgreSQL": checks["postgres"], "Redis": checks["redis"]}


def _is_reject(kind: str) -> bool:
    return any(word in kind for word in REJECT_WORDS)


async def _traffic(st: ApiState) -> dict[str, Any]:
    """Live sessions, and rates from the newest stream entries: every accounting record
    that reaches the ledger is one session.* entry."""
    live = await accounting.live_session_count(st.cache)
    entries = await stream.recent(st.cache, RECENT)
    now = time.time()
    window = [e for e in entries if now - _ms(e[0]) <= RATE_WINDOW]
    # All RECENT entries inside the window: the stream is busier than RECENT a minute, so
    # the rate is over the span they cover.
    span = RATE_WINDOW
    if window and len(window) == len(entries) == RECENT:
        span = max(now - _ms(window[-1][0]), 1.0)
    kinds = Counter(kind for _id, kind, _data in window)
    records = sum(n for kind, n in kinds.items() if kind.startswith("session."))
    others = [
        {"id": i, "ts": _ms(i), "kind": k, **d}
        for i, k, d in entries
        if not k.startswith("session.")
    ]
    return {
        "live": live,
        "span": span,
        "starts_per_min": kinds["session.start"] * 60.0 / span,
        "stops_per_min": kinds["session.stop"] * 60.0 / span,
        "records_per_s": records / span,
        "approximate": span < RATE_WINDOW,
        "events": others[:15],
        "rejects": [e for e in others if _is_reject(e["kind"])][:15],
    }


async def _snmp(st: ApiState) -> dict[str, Any]:
    targets = await snmp_store.list_targets(st.pool, st.sealer)
    statuses = await snmp_statuses(st, [t.name for t in targets])
    down, up, unpolled, disabled = [], 0, 0, 0
    for t, s in zip(targets, statuses, strict=True):
        if not t.enabled:
            disabled += 1
        elif s is None:
            unpolled += 1
        elif s.state == "down":
            down.append({"name": t.name, "address": t.address, **s.model_dump()})
        else:
            up += 1
    return {
        "total": len(targets),
        "up": up,
        "down": down,
        "unpolled": unpolled,
        "disabled": disabled,
    }


async def _voltha(st: ApiState) -> dict[str, Any]:
    counts = await voltha_store.device_counts(st.pool)
    stacks = []
    for name in sorted(st.config.voltha.stacks):
        down = await list_events(
            st.pool, before=None, limit=1, kind="voltha.unreachable", subject=name
        )
        back = await list_events(
            st.pool, before=None, limit=1, kind="voltha.reachable", subject=name
        )
        unreachable = bool(down) and (not back or back[0]["id"] < down[0]["id"])
        mine = [c for c in counts if c["stack"] == name]
        alarms = await voltha_store.active_alarms(st.pool, name)
        stacks.append(
            {
                "name": name,
                "unreachable": unreachable,
                "since": down[0]["ts"] if unreachable else None,
                "olts": sum(c["n"] for c in mine if c["kind"] == "olt"),
                "onus": sum(c["n"] for c in mine if c["kind"] == "onu"),
                "onu_status": {c["oper_status"]: c["n"] for c in mine if c["kind"] == "onu"},
                "alarms": sorted(
                    ({"device": d, "alarm": a, "value": v} for (d, a), v in alarms.items()),
                    key=lambda a: (a["device"], a["alarm"]),
                ),
            }
        )
    return {"stacks": stacks}


async def _acs(st: ApiState, beats: list[dict[str, Any]]) -> dict[str, Any]:
    faults = await acs_store.list_faults(st.pool, device_id=None, before=None, limit=10)
    running = await acs_store.list_tasks(
        st.pool, device_id=None, status="running", after=None, limit=100
    )
    queued = await acs_store.list_tasks(
        st.pool, device_id=None, status="queued", after=None, limit=100
    )
    acs = [b for b in beats if b["daemon"] == "acs"]
    return {
        "instances": len(acs),
        "sessions": sum(int(b["counters"].get("sessions", 0)) for b in acs),
        "faults": faults,
        "running": len(running),
        "queued": len(queued),
    }


async def _jobs(st: ApiState) -> dict[str, Any]:
    config = [j for j in await devices_store.list_jobs(st.pool, 100) if j["finished_at"] is None]
    firmware = [j for j in await voltha_store.list_jobs(st.pool, 100) if j["finished_at"] is None]
    return {"config": config, "firmware": firmware}


async def overview(st: ApiState) -> dict[str, Any]:
    daemons, stores, traffic, snmp, voltha, jobs = await asyncio.gather(
        part(_daemons(st)),
        part(_stores(st)),
        part(_traffic(st)),
        part(_snmp(st)),
        part(_voltha(st)),
        part(_jobs(st)),
    )
    beats = daemons.data["rows"] if daemons.data else []
    return {
        "daemons": daemons,
        "stores": stores,
        "traffic": traffic,
        "snmp": snmp,
        "voltha": voltha,
        "acs": await part(_acs(st, beats)),
        "jobs": jobs,
        "auth_history_note": AUTH_HISTORY_NOTE,
    }


# --- one subscriber --------------------------------------------------------------------------


async def _usage(st: ApiState, username: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "month": await accounting.ledger_usage(st.pool, username, month, now),
        "days30": await accounting.ledger_usage(st.pool, username, now - timedelta(days=30), now),
    }


async def _onus(st: ApiState, username: str) -> list[dict[str, Any]]:
    found = await voltha_store.onus_of(st.pool, username)
    for onu in found:
        onu["optics"] = await ops.onu_optics(st, onu["binding"].serial)
    return found


async def _auth_events(st: ApiState, username: str) -> list[Any]:
    return await ops.list_auth_log(
        st, user=username, nas=None, since=None, until=None, result=None, before_id=None, limit=20
    )


async def subscriber(st: ApiState, username: str) -> dict[str, Any]:
    record = await part(radius_store.fetch_subscriber_db(st.pool, username))
    live = await part(ops.list_live_sessions(st, "", 50, user=username))
    sessions = await part(
        accounting.find_sessions(st.pool, username=username, include_closed=True, limit=20)
    )
    # Its CPE informs from the address of one of its sessions, live or recent.
    recent = [*(live.data or ([], None))[0], *(sessions.data or [])]
    addresses = list(dict.fromkeys(str(s["framed_ip"]) for s in recent if s["framed_ip"]))[:10]
    return {
        "username": username,
        "record": record,
        "live": Part(live.data[0] if live.data else None, live.error),
        "sessions": sessions,
        "usage": await part(_usage(st, username)),
        "auth": await part(_auth_events(st, username)),
        "auth_history_note": AUTH_HISTORY_NOTE,
        "addresses": addresses,
        "cpes": await part(acs_store.devices_at(st.pool, addresses)),
        "onus": await part(_onus(st, username)),
    }


# --- one device ------------------------------------------------------------------------------


def _interfaces(samples: list[tuple[str, dict[str, str], float, str]]) -> list[dict[str, Any]]:
    """IF-MIB rows by ifIndex from a poll's samples (snmp_exporter's names)."""
    rows: dict[str, dict[str, Any]] = {}
    for metric, labels, value, _kind in samples:
        index = labels.get("ifIndex")
        if index is None:
            continue
        row = rows.setdefault(index, {"ifIndex": index})
        for name in ("ifName", "ifDescr", "ifAlias"):
            if labels.get(name):
                row[name] = labels[name]
        if metric != "ifIndex":  # snmp_exporter's if_mib also has ifIndex as a metric
            row[metric] = value
    return sorted(rows.values(), key=lambda r: int(r["ifIndex"]) if r["ifIndex"].isdigit() else 0)


async def _snmp_target(st: ApiState, name: str) -> dict[str, Any] | None:
    target = await snmp_store.get_target(st.pool, st.sealer, name)
    if target is None:
        return None
    (status,) = await snmp_statuses(st, [name])
    raw = await st.cache.client.get(st.cache.key("snmp:" + name, "latest"))
    ts, samples = snmp_store.read_latest(raw) if isinstance(raw, bytes) else (None, [])
    system = {
        m: " ".join(lb.values()) if lb else (duration(v / 100) if m == "sysUpTime" else str(v))
        for m, lb, v, _k in samples
        if m.startswith("sys")
    }
    return {
        "target": target,
        "status": status,
        "ts": ts,
        "interfaces": _interfaces(samples),
        "system": system,
        "others": [s for s in samples if "ifIndex" not in s[1] and not s[0].startswith("sys")][:50],
    }


CPE_SUMMARY = (
    "DeviceInfo.Manufacturer",
    "DeviceInfo.ModelName",
    "DeviceInfo.SoftwareVersion",
    "DeviceInfo.HardwareVersion",
    "DeviceInfo.UpTime",
    "ManagementServer.PeriodicInformInterval",
)


async def _cpe(st: ApiState, device_id: str, prefix: str) -> dict[str, Any] | None:
    cpe = await acs_store.get_device(st.pool, device_id)
    if cpe is None:
        return None
    root = cpe["root"].rstrip(".") + "."
    summary = await acs_store.stored_values(st.pool, device_id, [root + n for n in CPE_SUMMARY])
    prefix = prefix or root + "DeviceInfo."
    params = await acs_store.device_params_page(st.pool, device_id, prefix, "", 200)
    tasks = await acs_store.list_tasks(
        st.pool, device_id=device_id, status=None, after=None, limit=20
    )
    faults = await acs_store.list_faults(st.pool, device_id=device_id, before=None, limit=10)
    users: list[str] = []
    if cpe["ip"]:  # the subscribers whose sessions had its address, the live one first
        rows = await accounting.find_sessions(st.pool, ip=cpe["ip"], include_closed=True, limit=5)
        users = list(dict.fromkeys(str(r["username"]) for r in rows))
    return {
        "cpe": cpe,
        "summary": [(n, summary[root + n][0]) for n in CPE_SUMMARY if root + n in summary],
        "params": params,
        "prefix": prefix,
        "tasks": tasks,
        "faults": faults,
        "subscribers": users,
    }


async def _pon(st: ApiState, key: str) -> dict[str, Any] | None:
    dev = await voltha_store.find_device(st.pool, key)
    if dev is None:
        return None
    ports, binding, optics = await ops.voltha_detail(st, dev)
    onus = (
        await voltha_store.list_devices(st.pool, "onu", dev["stack"], dev["id"])
        if dev["kind"] == "olt"
        else []
    )
    return {"device": dev, "ports": ports, "binding": binding, "optics": optics, "onus": onus}


async def device(st: ApiState, key: str, prefix: str = "") -> dict[str, Any]:
    snmp, cpe, pon = await asyncio.gather(
        part(_snmp_target(st, key)), part(_cpe(st, key, prefix)), part(_pon(st, key))
    )
    return {"key": key, "snmp": snmp, "cpe": cpe, "pon": pon}


# --- finding one -----------------------------------------------------------------------------


async def find(st: ApiState, q: str) -> dict[str, Any]:
    subscribers = [s.username for s in await radius_store.list_subscribers(st.pool, q, 20)]
    exact = await radius_store.fetch_subscriber_db(st.pool, q)
    names = ([q] if exact else []) + [u for u in subscribers if u.startswith(q)]
    sessions: list[dict[str, Any]] = []
    addresses: list[str] = []
    try:
        addresses = [str(ipaddress.ip_address(q))]
    except ValueError:
        pass
    else:
        sessions, _next = await ops.list_live_sessions(st, "", 20, ip=q)
    targets = [
        t
        for t in await snmp_store.list_targets(st.pool, st.sealer)
        if q in t.name or q == t.address
    ][:20]
    cpes = await acs_store.list_devices(st.pool, after="", limit=20, q=q)
    cpes += [c for c in await acs_store.devices_at(st.pool, addresses) if c not in cpes]
    pon = await voltha_store.find_device(st.pool, q)
    return {
        "q": q,
        "subscribers": names,
        "sessions": sessions,
        "targets": targets,
        "cpes": cpes,
        "pon": [pon] if pon else [],
    }
