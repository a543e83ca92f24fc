"""Store verbs for the TR-069 ACS: devices, parameter trees, tasks and faults."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from daemons.acs import cwmp
from daemons.acs.engine import Task
from daemons.core.secrets import Sealer
from daemons.store import acs_session as session
from daemons.store.pg import Conn

TASK_PREFIX = "netd-task-"
Db = asyncpg.Pool | Conn  # a pool, or a connection (inside the caller's transaction)


async def register_device(
    pool: Db,
    device: cwmp.DeviceId,
    *,
    ns: str,
    root: str,
    ip: str | None,
    events: Sequence[str],
    params: Sequence[cwmp.ParamValue],
    auto_register: bool,
) -> tuple[bool, bool, bool] | None:
    """Record an Inform: (known before?, tree discovered?, its names listed?), or None for
    an unknown device when ``auto_register`` is off (nothing is written then). A BOOTSTRAP
    (a factory reset, or a new ACS URL) makes the tree unknown again: it is read anew.
    One statement (``acs_session.inform`` without starting tasks)."""
    got = await session.inform(
        pool,
        device,
        ns=ns,
        root=root,
        ip=ip,
        events=events,
        params=params,
        auto_register=auto_register,
        max_attempts=0,
        start=False,
        trusted=True,
    )
    return (got.known, got.discovered, got.listed) if got.written else None


async def _put_values(conn: Any, device_id: str, params: Sequence[cwmp.ParamValue]) -> None:
    await conn.execute(session.VALUES_UPSERT, device_id, *session.value_columns(params))
    udp, stun = session.management(params)
    if udp is not None or stun is not None:
        await conn.execute(
            "UPDATE cpe_devices SET udp_connection_request_address = coalesce($2, "
            "udp_connection_request_address), stun_enabled = coalesce($3, stun_enabled) "
            "WHERE id = $1",
            device_id,
            udp,
            stun,
        )


async def put_params(
    conn: Db,
    device_id: str,
    values: Sequence[cwmp.ParamValue],
    names: Sequence[tuple[str, bool]],
    discovered: bool,
    *,
    prune: str | None = None,
    listing: bool = False,
    listed: bool = False,
    unreadable: Sequence[tuple[str, int]] = (),
) -> None:
    """Values read, and names with their writable flag (objects end in a dot). Give a
    connection in a transaction to write them with other effects at once.

    ``prune``: the names are the whole of this object: stored names under it that are not
    among them are removed. ``listing``: the leaves' values are read next (``unread`` until
    then). ``listed``: the discovery's listing of the whole tree is done. ``unreadable``:
    names the CPE faults on when asked alone (with the fault code)."""
    if names:
        names = list(dict(names).items())  # one row per name, as for values
        await conn.execute(
            "INSERT INTO cpe_parameters (device_id, name, object, writable, unread) "
            "SELECT $1, n, n LIKE '%.', w, $4 AND n NOT LIKE '%.' "
            "FROM unnest($2::text[], $3::boolean[]) AS x(n, w) "
            "ON CONFLICT (device_id, name) DO UPDATE SET writable = EXCLUDED.writable, "
            "object = EXCLUDED.object, unread = EXCLUDED.unread OR (cpe_parameters.unread "
            "AND NOT $4), updated_at = now()",
            device_id,
            [n for n, _ in names],
            [w for _, w in names],
            listing,
        )
    if prune is not None:
        await conn.execute(
            "DELETE FROM cpe_parameters WHERE device_id = $1 AND starts_with(name, $2) "
            "AND name <> $2 AND NOT (name = ANY($3::text[]))",
            device_id,
            prune,
            [n for n, _ in names],
        )
    if values:
        await _put_values(conn, device_id, values)
    if unreadable:
        await conn.execute(
            "UPDATE cpe_parameters p SET unread = false, fault = u.code, updated_at = now() "
            "FROM unnest($2::text[], $3::int[]) AS u(name, code) "
            "WHERE p.device_id = $1 AND p.name = u.name",
            device_id,
            [n for n, _ in unreadable],
            [c for _, c in unreadable],
        )
    if listed:
        await conn.execute("UPDATE cpe_devices SET listed_at = now() WHERE id = $1", device_id)
    if discovered:
        await conn.execute(
            "UPDATE cpe_devices SET discovered_at = coalesce(discovered_at, now()), "
            "refreshed_at = now() WHERE id = $1",
            device_id,
        )


async def remove_subtree(db: Db, device_id: str, path: str) -> None:
    """An object the CPE deleted: its stored names go (the object row too)."""
    await db.execute(
        "DELETE FROM cpe_parameters WHERE device_id = $1 AND starts_with(name, $2)",
        device_id,
        path,
    )


async def unread_names(pool: Db, device_id: str) -> list[str]:
    """The leaves a discovery listed but has not read the value of yet, in name order."""
    rows = await pool.fetch(
        "SELECT name FROM cpe_parameters WHERE device_id = $1 AND unread ORDER BY name",
        device_id,
    )
    return [r["name"] for r in rows]


async def start_tasks(pool: Db, device_id: str, max_attempts: int = 1000) -> list[Task]:
    """The device's due tasks, in order, now marked running (one more attempt each). Tasks
    past their expiry are marked expired instead.

    A task still running with no answer recorded is started again at once: a CPE holds one
    CWMP session with its ACS at a time, so its new Inform means the session that started the
    task is over (its ACS was killed, or the connection was lost). The attempt count returned
    with each task fences that old session's late requeue (``requeue_unfinished``). Whether
    the CPE had already executed it is decided from the Inform (``engine.Session.plan``).
    Such a restart is an attempt like any other: one that has had ``max_attempts`` fails.
    Rows are locked in id order and waited for (the dispatcher records a connection
    request's outcome on a task while the session it caused starts it). One statement
    (``acs_session.TASKS_START``)."""
    return await session.start_tasks(pool, device_id, max_attempts)


async def finish_task(
    db: Db, task_id: int, status: str, result: dict[str, Any], deadline: float | None = None
) -> None:
    """``done``/``fault`` end a task; ``running`` keeps it open (a transfer in progress)
    until ``deadline`` seconds from now. A cancelled task keeps its status: the CPE's answer
    is recorded in its result."""
    if status == "running" and deadline is not None:
        result = {**result, "deadline_s": f"{deadline:g}"}
    await db.execute(
        "UPDATE cpe_tasks SET status = CASE WHEN status = 'cancelled' THEN status ELSE $2 END, "
        "result = $3::jsonb, finished_at = CASE WHEN status = 'cancelled' THEN finished_at "
        "WHEN $2 IN ('done', 'fault') THEN now() END, "
        "deadline_at = CASE WHEN $2 = 'running' THEN now() + make_interval(secs => $4) END "
        "WHERE id = $1",
        task_id,
        status,
        json.dumps(result, default=str),
        deadline,
    )


async def expire_waiting(pool: asyncpg.Pool) -> int:
    """Tasks waiting on the CPE (a transfer's TransferComplete) past their deadline end
    as ``fault``; how many. A TransferComplete that comes later is still recorded."""
    status = await pool.execute(
        "UPDATE cpe_tasks SET status = 'fault', finished_at = now(), deadline_at = NULL, "
        "result = result || jsonb_build_object('string', format('no TransferComplete within "
        "%s s', result->>'deadline_s')) "
        "WHERE deadline_at < now() AND status = 'running'"
    )
    return int(status.rsplit(" ", 1)[1])


async def requeue_unfinished(
    pool: asyncpg.Pool, leases: Sequence[tuple[int, int]], max_attempts: int, backoff: float
) -> None:
    """Tasks a session started but did not finish (the CPE vanished): queued again after an
    exponential backoff, or failed after ``max_attempts``. ``leases`` are (task id, attempts
    when this session started it): a task a later session has started again is not touched."""
    await pool.execute(
        "UPDATE cpe_tasks t SET "
        "status = CASE WHEN t.attempts >= $3 THEN 'fault' ELSE 'queued' END, "
        "not_before = now() + make_interval(secs => $4 * power(2, t.attempts - 1)), "
        "poke_at = CASE WHEN t.attempts < $3 "
        "THEN now() + make_interval(secs => $4 * power(2, t.attempts - 1)) END, "
        "result = CASE WHEN t.attempts >= $3 THEN jsonb_build_object('string', format("
        "'no answer after %s attempts: the CPE ended each session without answering', "
        "t.attempts)) ELSE t.result END, "
        "finished_at = CASE WHEN t.attempts >= $3 THEN now() END "
        "FROM unnest($1::bigint[], $2::int[]) AS l(id, attempts) "
        "WHERE t.id = l.id AND t.attempts = l.attempts AND t.status = 'running' "
        "AND t.result IS NULL",
        [i for i, _ in leases],
        [a for _, a in leases],
        max_attempts,
        backoff,
    )


async def transfer_complete(
    db: Db, device_id: str, command_key: str, fault_code: int, detail: dict[str, Any]
) -> int | None:
    """Close the Download/Upload task a TransferComplete names; its id."""
    if not command_key.startswith(TASK_PREFIX) or not command_key[len(TASK_PREFIX) :].isdigit():
        return None
    task_id = int(command_key[len(TASK_PREFIX) :])
    status = "done" if fault_code == 0 else "fault"
    row = await db.fetchval(
        "UPDATE cpe_tasks SET status = CASE WHEN status = 'cancelled' THEN status ELSE $3 END, "
        "result = coalesce(result, '{}'::jsonb) || $4::jsonb, deadline_at = NULL, "
        "finished_at = now() WHERE id = $1 AND device_id = $2 RETURNING id",
        task_id,
        device_id,
        status,
        json.dumps({"transfer": detail}, default=str),
    )
    return int(row) if row is not None else None


async def record_fault(
    db: Db,
    device_id: str,
    task_id: int | None,
    code: int,
    message: str,
    detail: dict[str, Any],
) -> None:
    await db.execute(
        "INSERT INTO cpe_faults (device_id, task_id, code, message, detail) "
        "VALUES ($1, $2, $3, $4, $5::jsonb)",
        device_id,
        task_id,
        code,
        message or cwmp.CPE_FAULTS.get(code, ""),
        json.dumps(detail, default=str),
    )


async def queue_task(
    pool: asyncpg.Pool,
    device_id: str,
    kind: str,
    args: dict[str, Any],
    created_by: str,
    expires_at: datetime | None = None,
) -> int:
    task_id: int = await pool.fetchval(
        "INSERT INTO cpe_tasks (device_id, kind, args, created_by, expires_at) "
        "VALUES ($1, $2, $3::jsonb, $4, $5) RETURNING id",
        device_id,
        kind,
        json.dumps(args),
        created_by,
        expires_at,
    )
    return task_id


async def cancel_task(pool: asyncpg.Pool, task_id: int) -> dict[str, Any] | None:
    """Cancel a queued or running task: its kind, status and result before the cancel, or
    None when it had ended (or does not exist). A running task's session sends it no
    more (``is_cancelled``)."""
    row = await pool.fetchrow(
        "WITH old AS (SELECT id, kind, status, result FROM cpe_tasks WHERE id = $1 FOR UPDATE) "
        "UPDATE cpe_tasks t SET status = 'cancelled', finished_at = now(), poke_at = NULL, "
        "deadline_at = NULL FROM old WHERE t.id = old.id AND old.status IN ('queued', 'running') "
        "RETURNING old.kind, old.status, old.result",
        task_id,
    )
    if row is None:
        return None
    result = json.loads(row["result"]) if row["result"] is not None else None
    return {"kind": row["kind"], "status": row["status"], "result": result}


async def is_cancelled(db: Db, task_id: int) -> bool:
    return bool(
        await db.fetchval("SELECT status = 'cancelled' FROM cpe_tasks WHERE id = $1", task_id)
    )


_TASK_COLUMNS = (
    "id, device_id, kind, args, status, attempts, not_before, expires_at, created_at, "
    "created_by, finished_at, result, bulk_id, poke, deadline_at"
)


async def get_task(pool: asyncpg.Pool, task_id: int) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"SELECT {_TASK_COLUMNS} FROM cpe_tasks WHERE id = $1", task_id)
    if row is None:
        return None
    out = dict(row)
    out["args"] = json.loads(row["args"])
    out["result"] = json.loads(row["result"]) if row["result"] is not None else None
    return out


async def device_params(pool: asyncpg.Pool, device_id: str, prefix: str = "") -> dict[str, Any]:
    rows = await pool.fetch(
        "SELECT name, object, writable, value, type, fault, updated_at FROM cpe_parameters "
        "WHERE device_id = $1 AND starts_with(name, $2) ORDER BY name",
        device_id,
        prefix,
    )
    return {r["name"]: dict(r) for r in rows}


DEVICE_COLUMNS = (
    "id, oui, product_class, serial, manufacturer, software_version, root, cwmp_ns, "
    "host(ip) AS ip, connection_request_url, udp_connection_request_address, stun_enabled, "
    "last_inform, last_events, tags, discovered_at, refreshed_at, registered_at"
)


async def get_device(pool: asyncpg.Pool, device_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"SELECT {DEVICE_COLUMNS} FROM cpe_devices WHERE id = $1", device_id)
    return dict(row) if row else None


async def list_devices(
    pool: asyncpg.Pool,
    *,
    after: str,
    limit: int,
    q: str | None = None,
    tag: str | None = None,
    product_class: str | None = None,
) -> list[dict[str, Any]]:
    """Devices in id order; ``q`` finds a part of the id (OUI, product class, serial)."""
    rows = await pool.fetch(
        f"SELECT {DEVICE_COLUMNS} FROM cpe_devices WHERE id > $1 "
        "AND ($2::text IS NULL OR strpos(id, $2) > 0) AND ($3::text IS NULL OR $3 = ANY(tags)) "
        "AND ($4::text IS NULL OR product_class = $4) ORDER BY id LIMIT $5",
        after,
        q,
        tag,
        product_class,
        limit,
    )
    return [dict(r) for r in rows]


async def set_tags(pool: asyncpg.Pool, device_id: str, tags: Sequence[str]) -> bool:
    status = await pool.execute(
        "UPDATE cpe_devices SET tags = $2 WHERE id = $1", device_id, sorted(set(tags))
    )
    return bool(status.endswith(" 1"))


async def stored_values(
    pool: asyncpg.Pool, device_id: str, names: Sequence[str]
) -> dict[str, tuple[str | None, str | None]]:
    rows = await pool.fetch(
        "SELECT name, value, type FROM cpe_parameters WHERE device_id = $1 "
        "AND name = ANY($2::text[])",
        device_id,
        list(names),
    )
    return {r["name"]: (r["value"], r["type"]) for r in rows}


async def list_tasks(
    pool: asyncpg.Pool,
    *,
    device_id: str | None,
    status: str | None,
    after: int | None,
    limit: int,
    bulk_id: int | None = None,
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {_TASK_COLUMNS} FROM cpe_tasks "
        "WHERE ($1::text IS NULL OR device_id = $1) AND ($2::text IS NULL OR status = $2) "
        "AND ($3::bigint IS NULL OR id > $3) AND ($5::bigint IS NULL OR bulk_id = $5) "
        "ORDER BY id LIMIT $4",
        device_id,
        status,
        after,
        limit,
        bulk_id,
    )
    out = []
    for r in rows:
        d = dict(r)
        d["args"] = json.loads(r["args"])
        d["result"] = json.loads(r["result"]) if r["result"] is not None else None
        out.append(d)
    return out


async def list_faults(
    pool: asyncpg.Pool, *, device_id: str | None, before: int | None, limit: int
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, ts, device_id, task_id, code, message, detail FROM cpe_faults "
        "WHERE ($1::text IS NULL OR device_id = $1) AND ($2::bigint IS NULL OR id < $2) "
        "ORDER BY id DESC LIMIT $3",
        device_id,
        before,
        limit,
    )
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


async def firmware_in_flight(pool: asyncpg.Pool, device_id: str, version: str) -> bool:
    """A Download of this firmware version is queued, running or done. Done counts: a
    device that took the file but still reports its old version is not sent it again and
    again (a failed Download, a fault, is retried)."""
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM cpe_tasks WHERE device_id = $1 AND kind = 'download' "
            "AND status IN ('queued', 'running', 'done') AND args->>'version' = $2)",
            device_id,
            version,
        )
    )


async def device_params_page(
    pool: asyncpg.Pool, device_id: str, prefix: str, after: str, limit: int
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT name, object, writable, value, type, fault, updated_at FROM cpe_parameters "
        "WHERE device_id = $1 AND starts_with(name, $2) AND name > $3 ORDER BY name LIMIT $4",
        device_id,
        prefix,
        after,
        limit,
    )
    return [dict(r) for r in rows]


async def set_credentials(
    pool: asyncpg.Pool, sealer: Sealer, device_id: str, username: str, password: str
) -> None:
    await pool.execute(
        "INSERT INTO cpe_credentials (device_id, username, password_enc) VALUES ($1, $2, $3) "
        "ON CONFLICT (device_id) DO UPDATE SET username = EXCLUDED.username, "
        "password_enc = EXCLUDED.password_enc, updated_at = now()",
        device_id,
        username,
        sealer.seal(password.encode(), f"cpe:{device_id}".encode()),
    )


async def get_credentials(pool: Db, sealer: Sealer, device_id: str) -> tuple[str, str] | None:
    row = await pool.fetchrow(
        "SELECT username, password_enc FROM cpe_credentials WHERE device_id = $1", device_id
    )
    if row is None:
        return None
    return open_credentials(sealer, device_id, row["username"], row["password_enc"])


def open_credentials(
    sealer: Sealer, device_id: str, username: str, sealed: bytes
) -> tuple[str, str]:
    """A device's own credentials as stored (its password sealed), opened."""
    return str(username), sealer.open(sealed, f"cpe:{device_id}".encode()).decode()


#: at most this many devices sharing one username are tried for a /files/ request
CREDENTIALS_PER_USERNAME = 8


async def credentials_for_username(
    pool: asyncpg.Pool, sealer: Sealer, username: str
) -> list[tuple[str, str]]:
    """The per-device credentials carrying ``username`` (at most CREDENTIALS_PER_USERNAME),
    opened: (username, password) each, for a /files/ request that names only its user."""
    rows = await pool.fetch(
        "SELECT device_id, password_enc FROM cpe_credentials WHERE username = $1 "
        "ORDER BY device_id LIMIT $2",
        username,
        CREDENTIALS_PER_USERNAME,
    )
    return [
        (username, sealer.open(r["password_enc"], f"cpe:{r['device_id']}".encode()).decode())
        for r in rows
    ]


async def delete_credentials(pool: asyncpg.Pool, device_id: str) -> bool:
    status = await pool.execute("DELETE FROM cpe_credentials WHERE device_id = $1", device_id)
    return bool(status.endswith(" 1"))


async def devices_at(pool: asyncpg.Pool, addresses: Sequence[str]) -> list[dict[str, Any]]:
    """CPEs whose last Inform came from one of these addresses (a subscriber's session
    addresses: its CPE), at most 20."""
    if not addresses:
        return []
    rows = await pool.fetch(
        f"SELECT {DEVICE_COLUMNS} FROM cpe_devices WHERE ip = ANY($1::inet[]) "
        "ORDER BY last_inform DESC NULLS LAST LIMIT 20",
        list(addresses),
    )
    return [dict(r) for r in rows]
