"""Store verbs of a CWMP session's hot path: one statement per CPE message.

A session of a CPE with queued work is an Inform, an empty POST and an answer per RPC.
Each message's writes are one SQL statement here (data-modifying CTEs: one round trip to
PostgreSQL and one commit, atomic as a transaction), where :mod:`daemons.store.acs`'s
general verbs take a transaction of several statements:

- :func:`inform`: the device row (registered, or updated; a BOOTSTRAP forgets the tree),
  the Inform's parameters, and the device's due tasks started, in task-id order;
- :func:`record_steps`: the values RPCs read and the task results they gave, and whether
  the task of each session's next RPC has been cancelled meanwhile (``is_cancelled``), for
  the messages of many sessions at once (``daemons.core.batch``).

These run on the ACS's session pool (:func:`open_session_pool`): its connections carry
no session state (no LISTEN, no session-level advisory lock, no SET), so a release only
rolls back an open transaction instead of asyncpg's reset query, one round trip saved per
message. The ledger of what is decided stays the same: the combined statements do what
``register_device`` + ``start_tasks`` and ``put_params`` + ``finish_task`` +
``is_cancelled`` do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from daemons.acs import cwmp
from daemons.acs.engine import Task
from daemons.core.config import DatabaseConfig
from daemons.store.pg import Conn, create_pool

Db = asyncpg.Pool | Conn

_UDP_ADDRESS = "ManagementServer.UDPConnectionRequestAddress"
_STUN_ENABLE = "ManagementServer.STUNEnable"

#: a parameter value read: the row's value and type, and it is no longer unread or faulty
VALUES_CONFLICT = (
    "ON CONFLICT (device_id, name) DO UPDATE SET value = EXCLUDED.value, "
    "type = EXCLUDED.type, unread = false, fault = NULL, updated_at = now()"
)
#: the upsert of a device's parameter values from unnest($2, $3, $4) (name, value, type)
VALUES_UPSERT = (
    "INSERT INTO cpe_parameters (device_id, name, value, type) "
    "SELECT $1, n, v, t FROM unnest($2::text[], $3::text[], $4::text[]) AS x(n, v, t) "
    + VALUES_CONFLICT
)

#: The device $1's due tasks started (one more attempt each), those past their expiry
#: expired, and those still running unanswered after $max attempts failed: one UPDATE
#: whose rows are locked in id order (as ``cpe_bulk.record_pokes`` locks them). A task
#: still running with no answer is started again: a CPE holds one session at a time, so
#: its new Inform means the session that started it is over. ``{devices}`` chooses the
#: devices, ``{max}`` is the parameter of the attempts.
TASKS_START = (
    "UPDATE cpe_tasks t SET status = f.fate, "
    "attempts = t.attempts + (f.fate = 'running')::int, poke_at = NULL, "
    "finished_at = CASE WHEN f.fate = 'running' THEN t.finished_at ELSE now() END, "
    "result = CASE WHEN f.fate = 'fault' THEN jsonb_build_object('string', format("
    "'no answer after %s attempts: the CPE ended each session without answering', "
    "t.attempts)) ELSE t.result END "
    "FROM (SELECT id, CASE WHEN expires_at < now() THEN 'expired' "
    "WHEN status = 'running' AND result IS NULL AND attempts >= {max} THEN 'fault' "
    "ELSE 'running' END AS fate FROM cpe_tasks WHERE {devices} "
    "AND ((status IN ('queued', 'running') AND expires_at < now()) "
    "OR (status = 'queued' AND not_before <= now()) "
    "OR (status = 'running' AND result IS NULL)) ORDER BY id FOR UPDATE) f "
    "WHERE t.id = f.id "
    "RETURNING t.device_id, t.id, t.kind, t.args, t.attempts, f.fate"
)

_INFORMS = (
    "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
    "$12::text[], $13::boolean[], $14::boolean[], $15::boolean[], $16::boolean[], "
    "$17::boolean[]) AS i(id, oui, product_class, serial, manufacturer, software, root, ns, "
    "ip, cr_url, events, udp, stun, auto, boot, admitted, trusted)), "
    "old AS (SELECT id, discovered_at IS NOT NULL AS discovered, "
    "listed_at IS NOT NULL AS listed FROM cpe_devices WHERE id = ANY($1::text[]) "
    "ORDER BY id FOR UPDATE), "
    "own AS (SELECT device_id, username, password_enc FROM cpe_credentials "
    "WHERE device_id = ANY($1::text[])), "
    "dev AS (INSERT INTO cpe_devices AS d (id, oui, product_class, serial, manufacturer, "
    "software_version, root, cwmp_ns, ip, connection_request_url, last_inform, last_events, "
    "udp_connection_request_address, stun_enabled) "
    "SELECT i.id, i.oui, i.product_class, i.serial, i.manufacturer, i.software, i.root, "
    "i.ns, i.ip::inet, i.cr_url, now(), "
    "ARRAY(SELECT jsonb_array_elements_text(i.events::jsonb)), "
    "coalesce(i.udp, ''), coalesce(i.stun, false) FROM i "
    "WHERE (i.auto OR i.id IN (SELECT id FROM old)) "
    "AND (i.admitted AND i.id NOT IN (SELECT device_id FROM own) OR i.trusted) ORDER BY i.id "
    "ON CONFLICT (id) DO UPDATE SET manufacturer = EXCLUDED.manufacturer, "
    "software_version = CASE WHEN EXCLUDED.software_version = '' "
    "THEN d.software_version ELSE EXCLUDED.software_version END, "
    "root = EXCLUDED.root, cwmp_ns = EXCLUDED.cwmp_ns, ip = EXCLUDED.ip, "
    "connection_request_url = CASE WHEN EXCLUDED.connection_request_url = '' "
    "THEN d.connection_request_url ELSE EXCLUDED.connection_request_url END, "
    "last_inform = now(), last_events = EXCLUDED.last_events, "
    "discovered_at = CASE WHEN (SELECT boot FROM i WHERE i.id = d.id) "
    "THEN NULL ELSE d.discovered_at END, "
    "listed_at = CASE WHEN (SELECT boot FROM i WHERE i.id = d.id) "
    "THEN NULL ELSE d.listed_at END, "
    "udp_connection_request_address = "
    "coalesce((SELECT udp FROM i WHERE i.id = d.id), d.udp_connection_request_address), "
    "stun_enabled = coalesce((SELECT stun FROM i WHERE i.id = d.id), d.stun_enabled) "
    "RETURNING d.id), "
    "vals AS (INSERT INTO cpe_parameters (device_id, name, value, type) "
    "SELECT d, n, v, t FROM unnest($18::text[], $19::text[], $20::text[], $21::text[]) "
    f"AS x(d, n, v, t) WHERE d IN (SELECT id FROM dev) {VALUES_CONFLICT}), "
    "tasks AS ("
    + TASKS_START.format(devices="device_id IN (SELECT id FROM dev) AND $23", max="$22")
    + ") SELECT i.id AS device, i.id IN (SELECT id FROM dev) AS written, o.discovered, "
    "o.listed, c.username, c.password_enc, t.id, t.kind, t.args, t.attempts, t.fate "
    "FROM i LEFT JOIN old o ON o.id = i.id LEFT JOIN own c ON c.device_id = i.id "
    "LEFT JOIN tasks t ON t.device_id = i.id"
)


@dataclass(frozen=True)
class InformWrite:
    """One Inform to record: the device, its namespace and root object, the address it
    came from, its events and parameters; ``auto_register``: an unknown device may be
    registered; ``admitted``/``trusted``: what the CPE proved (see :func:`inform`)."""

    device: cwmp.DeviceId
    ns: str
    root: str
    ip: str | None
    events: Sequence[str]
    params: Sequence[cwmp.ParamValue]
    auto_register: bool
    admitted: bool = True
    trusted: bool = False


@dataclass(frozen=True)
class Informed:
    """What an Inform found: whether it was written, the device was known before, its
    tree is discovered, its names are listed (both False after a BOOTSTRAP), the tasks
    started (in id order), and the device's own CWMP credentials (username, sealed
    password) if it has them."""

    written: bool
    known: bool
    discovered: bool
    listed: bool
    tasks: list[Task]
    own: tuple[str, bytes] | None = None


async def open_session_pool(cfg: DatabaseConfig, dsn: str, application: str) -> asyncpg.Pool:
    """The pool of the session verbs: a release rolls back an open transaction and runs no
    reset query (what runs on it keeps no session state). Its statements are planned once
    per connection (generic plans): each is keyed on a device id or an id, the same plan
    for every argument, and the Inform's CTE cost more to plan than to run, every time,
    under PostgreSQL's default of planning the first five executions and any whose generic
    plan looks dearer. Raises StoreUnavailable."""
    return await create_pool(
        cfg,
        dsn,
        application,
        reset=_rollback_only,
        settings={"plan_cache_mode": "force_generic_plan"},
    )


async def _rollback_only(conn: asyncpg.Connection) -> None:
    """asyncpg has already rolled back an open transaction: nothing more to undo."""


def management(params: Sequence[cwmp.ParamValue]) -> tuple[str | None, bool | None]:
    """The UDP connection request address and STUNEnable among values (None: absent)."""
    udp = next((p.value for p in params if p.name.endswith(_UDP_ADDRESS)), None)
    stun = next((p.value for p in params if p.name.endswith(_STUN_ENABLE)), None)
    return (
        udp.strip() if udp is not None else None,
        stun.strip().lower() in ("1", "true") if stun is not None else None,
    )


def value_columns(params: Sequence[cwmp.ParamValue]) -> tuple[list[str], list[str], list[str]]:
    """Names, values (no NUL) and types, one row per name (the last value counts): an
    upsert touching a row twice is refused whole by PostgreSQL (CardinalityViolation)."""
    rows = list({p.name: p for p in params}.values())
    return (
        [p.name for p in rows],
        [p.value.replace("\x00", "") for p in rows],
        [p.type for p in rows],
    )


def _task(r: asyncpg.Record) -> Task:
    return Task(r["id"], r["kind"], json.loads(r["args"]), r["attempts"])


async def inform(
    db: Db,
    device: cwmp.DeviceId,
    *,
    ns: str,
    root: str,
    ip: str | None,
    events: Sequence[str],
    params: Sequence[cwmp.ParamValue],
    auto_register: bool,
    max_attempts: int,
    start: bool = True,
    admitted: bool = True,
    trusted: bool = False,
) -> Informed:
    """Record an Inform and, with ``start``, start the device's due tasks, in one
    statement, and read the device's own credentials.

    Nothing is written for an unknown device when ``auto_register`` is off, nor unless
    the CPE has proved who it is: ``trusted`` (its own credentials, checked), or
    ``admitted`` (the global ones, or none needed) and the device has no credentials of
    its own, which then are returned for the caller to check and call again with
    ``trusted``. Raises asyncpg errors."""
    write = InformWrite(device, ns, root, ip, events, params, auto_register, admitted, trusted)
    return (await informs(db, [write], max_attempts, start))[0]


async def informs(
    db: Db, writes: Sequence[InformWrite], max_attempts: int, start: bool = True
) -> list[Informed]:
    """Several Informs (of different devices) as :func:`inform` records one, in one
    statement; what each found, in order. Two of one device in a batch are refused
    (CardinalityViolation: the caller runs them apart). Raises asyncpg errors."""
    values: dict[tuple[str, str], cwmp.ParamValue] = {}
    columns: list[list[Any]] = [[] for _ in range(17)]
    for w in writes:
        by_name = {p.name: p.value for p in w.params}
        software = next(
            (v for k, v in by_name.items() if k.endswith("DeviceInfo.SoftwareVersion")), ""
        )
        cr_url = next(
            (v for k, v in by_name.items() if k.endswith("ManagementServer.ConnectionRequestURL")),
            "",
        )
        udp, stun = management(w.params)
        d = w.device
        row: tuple[Any, ...] = (d.key, d.oui, d.product_class, d.serial, d.manufacturer)
        row += (software, w.root.rstrip("."), w.ns, w.ip, cr_url, json.dumps(list(w.events)))
        row += (udp, stun, w.auto_register, "0 BOOTSTRAP" in w.events, w.admitted, w.trusted)
        for column, value in zip(columns, row, strict=True):
            column.append(value)
        for p in w.params:
            values[(d.key, p.name)] = p
    rows = await db.fetch(
        _INFORMS,
        *columns,
        [d for d, _ in values],
        [n for _, n in values],
        [p.value.replace("\x00", "") for p in values.values()],
        [p.type for p in values.values()],
        max_attempts,
        start,
    )
    by_device: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        by_device.setdefault(r["device"], []).append(r)
    out = []
    for w in writes:
        found = by_device[w.device.key]
        first = found[0]
        known = first["discovered"] is not None
        fresh = known and "0 BOOTSTRAP" not in w.events
        own = (first["username"], first["password_enc"]) if first["username"] is not None else None
        tasks = sorted((_task(r) for r in found if r["fate"] == "running"), key=lambda t: t.id)
        out.append(
            Informed(
                bool(first["written"]),
                known,
                fresh and first["discovered"],
                fresh and first["listed"],
                tasks,
                own,
            )
        )
    return out


async def start_tasks(db: Db, device_id: str, max_attempts: int) -> list[Task]:
    """The device's due tasks, in id order, now running (see :data:`TASKS_START`)."""
    rows = await db.fetch(
        TASKS_START.format(devices="device_id = $1", max="$2"), device_id, max_attempts
    )
    return sorted((_task(r) for r in rows if r["fate"] == "running"), key=lambda t: t.id)


@dataclass(frozen=True)
class Finish:
    """A task's result as ``finish_task`` writes it (``deadline``: seconds a running
    transfer may wait for its TransferComplete)."""

    task_id: int
    status: str
    result: dict[str, Any]
    deadline: float | None = None

    def result_json(self) -> str:
        result = self.result
        if self.status == "running" and self.deadline is not None:
            result = {**result, "deadline_s": f"{self.deadline:g}"}
        return json.dumps(result, default=str)


@dataclass(frozen=True)
class StepWrite:
    """One CPE message's writes: values read (and the tree now discovered: ``discovered``)
    and tasks finished, each once; ``next_task``: the task of the RPC to send next."""

    device_id: str
    values: Sequence[cwmp.ParamValue] = ()
    discovered: bool = False
    finished: Sequence[Finish] = ()
    next_task: int | None = None


_STEPS = (
    "WITH vals AS (INSERT INTO cpe_parameters (device_id, name, value, type) "
    "SELECT d, n, v, t FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
    f"AS x(d, n, v, t) {VALUES_CONFLICT}), "
    "dev AS (UPDATE cpe_devices c SET "
    "udp_connection_request_address = coalesce(m.udp, c.udp_connection_request_address), "
    "stun_enabled = coalesce(m.stun, c.stun_enabled), "
    "discovered_at = CASE WHEN m.disc THEN coalesce(c.discovered_at, now()) "
    "ELSE c.discovered_at END, "
    "refreshed_at = CASE WHEN m.disc THEN now() ELSE c.refreshed_at END "
    "FROM unnest($5::text[], $6::text[], $7::boolean[], $8::boolean[]) AS m(d, udp, stun, disc) "
    "WHERE c.id = m.d), "
    "fin AS (UPDATE cpe_tasks t SET "
    "status = CASE WHEN t.status = 'cancelled' THEN t.status ELSE r.status END, "
    "result = r.result::jsonb, finished_at = CASE WHEN t.status = 'cancelled' "
    "THEN t.finished_at WHEN r.status IN ('done', 'fault') THEN now() END, "
    "deadline_at = CASE WHEN r.status = 'running' "
    "THEN now() + make_interval(secs => r.deadline) END "
    "FROM unnest($9::bigint[], $10::text[], $11::text[], $12::float8[]) "
    "AS r(id, status, result, deadline) WHERE t.id = r.id) "
    "SELECT id FROM cpe_tasks WHERE id = ANY($13::bigint[]) AND status = 'cancelled'"
)


async def record_steps(db: Db, steps: Sequence[StepWrite]) -> list[bool]:
    """Several messages' writes (of one CPE or many) in one statement; for each, whether
    its ``next_task`` is cancelled (read before these writes: a cancel keeps its status).
    A name written twice, or a task finished twice, counts once: the last. Raises asyncpg
    errors."""
    values: dict[tuple[str, str], cwmp.ParamValue] = {}
    devices: dict[str, tuple[str | None, bool | None, bool]] = {}
    finished: dict[int, Finish] = {}
    for step in steps:
        for p in step.values:
            values[(step.device_id, p.name)] = p
        udp, stun = management(step.values)
        if udp is not None or stun is not None or step.discovered:
            was = devices.get(step.device_id, (None, None, False))
            devices[step.device_id] = (
                udp if udp is not None else was[0],
                stun if stun is not None else was[1],
                step.discovered or was[2],
            )
        finished.update((f.task_id, f) for f in step.finished)
    asked = [s.next_task for s in steps if s.next_task is not None]
    cancelled = {
        r["id"]
        for r in await db.fetch(
            _STEPS,
            [d for d, _ in values],
            [n for _, n in values],
            [p.value.replace("\x00", "") for p in values.values()],
            [p.type for p in values.values()],
            list(devices),
            [u for u, _, _ in devices.values()],
            [s for _, s, _ in devices.values()],
            [d for _, _, d in devices.values()],
            list(finished),
            [f.status for f in finished.values()],
            [f.result_json() for f in finished.values()],
            [f.deadline for f in finished.values()],
            asked,
        )
    }
    return [s.next_task in cancelled for s in steps]
