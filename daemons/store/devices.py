"""Store verbs for configuration jobs: devices (credentials sealed, host keys pinned, one
per key type), versioned backups (sealed, stored only when the config changed), jobs and
their per-device results."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from daemons.core.secrets import Sealer
from daemons.store.pg import Conn

JOBS_NOTIFY = "netd_config_jobs"
BACKUP_NOTIFY = "netd_device_backup"  # payload: a device name, or "*" for all


@dataclass(frozen=True)
class Device:
    name: str
    address: str
    port: int
    platform: str
    username: str
    password: str
    secret: str = ""
    host_keys: tuple[str, ...] = ()  # pinned, one per key type: "ssh-ed25519 AAAA..."
    offered_host_key: str | None = None
    tags: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict)
    snmp_target: str | None = None


def _context(name: str) -> bytes:
    return f"device:{name}".encode()


_COLUMNS = (
    "name, host(address) AS address, port, platform, credentials_enc, host_keys, "
    "offered_host_key, tags, vars, snmp_target"
)


def _device(sealer: Sealer, r: asyncpg.Record) -> Device:
    creds = json.loads(sealer.open(r["credentials_enc"], _context(r["name"])))
    return Device(
        r["name"],
        r["address"],
        r["port"],
        r["platform"],
        creds.get("username", ""),
        creds.get("password", ""),
        creds.get("secret", ""),
        tuple(r["host_keys"]),
        r["offered_host_key"],
        tuple(r["tags"]),
        json.loads(r["vars"]),
        r["snmp_target"],
    )


async def put_device(pool: asyncpg.Pool, sealer: Sealer, d: Device) -> bool:
    """Add or replace a device (its pinned host key is kept); True if it was new."""
    creds = {"username": d.username, "password": d.password, "secret": d.secret}
    created: bool = await pool.fetchval(
        "INSERT INTO devices (name, address, port, platform, credentials_enc, tags, vars, "
        "snmp_target) VALUES ($1, $2::inet, $3, $4, $5, $6, $7::jsonb, $8) "
        "ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, port = EXCLUDED.port, "
        "platform = EXCLUDED.platform, credentials_enc = EXCLUDED.credentials_enc, "
        "tags = EXCLUDED.tags, vars = EXCLUDED.vars, snmp_target = EXCLUDED.snmp_target, "
        "updated_at = now() RETURNING (xmax = 0)",
        d.name,
        d.address,
        d.port,
        d.platform,
        sealer.seal(json.dumps(creds).encode(), _context(d.name)),
        list(d.tags),
        json.dumps(d.vars),
        d.snmp_target,
    )
    return created


async def remove_device(pool: asyncpg.Pool, name: str) -> bool:
    status = await pool.execute("DELETE FROM devices WHERE name = $1", name)
    return bool(status.endswith(" 1"))


async def get_device(pool: asyncpg.Pool, sealer: Sealer, name: str) -> Device | None:
    r = await pool.fetchrow(f"SELECT {_COLUMNS} FROM devices WHERE name = $1", name)
    return _device(sealer, r) if r else None


async def list_devices(
    pool: asyncpg.Pool, sealer: Sealer, names: Sequence[str] = (), tags: Sequence[str] = ()
) -> list[Device]:
    """Every device, or those named, or those carrying all of ``tags``."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM devices WHERE (cardinality($1::text[]) = 0 OR name = ANY($1)) "
        "AND tags @> $2::text[] ORDER BY name",
        list(names),
        list(tags),
    )
    return [_device(sealer, r) for r in rows]


async def pin_host_key(pool: asyncpg.Pool, name: str, key: str) -> bool:
    """Pin ``key`` ("type base64"): the first key seen (trust on first use), or a key of a
    new type the device offers beside an unchanged pinned one. A pinned key of the same
    type is replaced only by ``accept_host_key``. Whether it was added."""
    status = await pool.execute(
        "UPDATE devices SET host_keys = array_append(host_keys, $2), "
        "host_key = coalesce(host_key, $2) WHERE name = $1 "
        "AND NOT EXISTS (SELECT 1 FROM unnest(host_keys) k WHERE split_part(k, ' ', 1) = "
        "split_part($2, ' ', 1))",
        name,
        key,
    )
    return bool(status.endswith(" 1"))


async def offer_host_key(pool: asyncpg.Pool, name: str, key: str) -> None:
    await pool.execute("UPDATE devices SET offered_host_key = $2 WHERE name = $1", name, key)


async def accept_host_key(pool: asyncpg.Pool, name: str) -> str | None:
    """The operator accepts the key the device offered: it replaces the pinned key of its
    type (the others stay); it, or None if none was offered."""
    key: str | None = await pool.fetchval(
        "UPDATE devices SET host_keys = array_append(ARRAY(SELECT k FROM unnest(host_keys) k "
        "WHERE split_part(k, ' ', 1) <> split_part(offered_host_key, ' ', 1)), "
        "offered_host_key), offered_host_key = NULL, host_key = CASE WHEN host_key IS NULL "
        "OR split_part(host_key, ' ', 1) = split_part(offered_host_key, ' ', 1) "
        "THEN offered_host_key ELSE host_key END "
        "WHERE name = $1 AND offered_host_key IS NOT NULL "
        "RETURNING host_keys[cardinality(host_keys)]",
        name,
    )
    return key


# --- backups ---


def _backup_context(device: str) -> bytes:
    return f"backup:{device}".encode()


def backup_digest(sealer: Sealer, config: str) -> str:
    """A keyed digest of a config (equal digests, same config): HMAC-SHA256 under a key
    derived from the secrets key, so that it confirms no guess about the text."""
    key = sealer.derive(b"device-backup-digest")
    return hmac.new(key, config.encode(), hashlib.sha256).hexdigest()


async def save_backup(
    pool: asyncpg.Pool, sealer: Sealer, device: str, config: str, reason: str
) -> tuple[int, bool]:
    """Store a config (sealed) unless it is the same as the latest: (the id of the backup
    that holds it, whether a new one was written)."""
    digest = backup_digest(sealer, config)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('backup:' || $1))", device)
        latest = await conn.fetchrow(
            "SELECT id, sha256 FROM device_backups WHERE device = $1 ORDER BY id DESC LIMIT 1",
            device,
        )
        if latest is not None and latest["sha256"] == digest:
            return int(latest["id"]), False
        new_id: int = await conn.fetchval(
            "INSERT INTO device_backups (device, sha256, config_enc, size, reason) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            device,
            digest,
            sealer.seal(config.encode(), _backup_context(device)),
            len(config),
            reason,
        )
        return new_id, True


async def seal_clear_backups(pool: asyncpg.Pool, sealer: Sealer, batch: int = 500) -> int:
    """Seal the backups stored in clear before migration 0017 (device_jobs); how many were."""
    done = 0
    while True:
        rows = await pool.fetch(
            "SELECT id, device, config FROM device_backups WHERE config IS NOT NULL "
            "ORDER BY id LIMIT $1",
            batch,
        )
        if not rows:
            return done
        await pool.executemany(
            "UPDATE device_backups SET config_enc = $2, sha256 = $3, size = length($4::text), "
            "config = NULL WHERE id = $1",
            [
                (
                    r["id"],
                    sealer.seal(r["config"].encode(), _backup_context(r["device"])),
                    backup_digest(sealer, r["config"]),
                    r["config"],
                )
                for r in rows
            ],
        )
        done += len(rows)


async def list_backups(pool: asyncpg.Pool, device: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, ts, sha256, reason, coalesce(size, length(config), 0) AS size "
        "FROM device_backups WHERE device = $1 ORDER BY id DESC LIMIT $2",
        device,
        limit,
    )
    return [dict(r) for r in rows]


async def get_backup(pool: asyncpg.Pool, sealer: Sealer, backup_id: int) -> dict[str, Any] | None:
    """One backup with its config opened (the full text: callers redact for non-admins)."""
    r = await pool.fetchrow(
        "SELECT id, device, ts, sha256, reason, config, config_enc FROM device_backups "
        "WHERE id = $1",
        backup_id,
    )
    if r is None:
        return None
    out = {k: r[k] for k in ("id", "device", "ts", "sha256", "reason")}
    if r["config_enc"] is not None:
        out["config"] = sealer.open(r["config_enc"], _backup_context(r["device"])).decode()
    else:
        out["config"] = r["config"]
    return out


# --- jobs ---


@dataclass(frozen=True)
class Job:
    id: int
    template: str
    variables: dict[str, Any]
    mode: str
    stop_on_failure: bool
    concurrency: int
    rollback_of: int | None
    force: bool = False
    deadline: datetime | None = None


async def create_job(
    pool: asyncpg.Pool,
    template: str,
    variables: dict[str, Any],
    mode: str,
    devices: Sequence[str],
    *,
    stop_on_failure: bool = False,
    concurrency: int = 8,
    rollback_of: int | None = None,
    created_by: str = "",
    force: bool = False,
    lifetime: float = 3600.0,
) -> int:
    """Queue a job; it must end within ``lifetime`` seconds of its creation (past that its
    devices not yet changed end ``cancelled`` with reason ``deadline``)."""
    async with pool.acquire() as conn, conn.transaction():
        job_id: int = await conn.fetchval(
            "INSERT INTO config_jobs (template, variables, mode, stop_on_failure, concurrency, "
            "rollback_of, created_by, force, deadline) VALUES ($1, $2::jsonb, $3, $4, $5, $6, "
            "$7, $8, now() + make_interval(secs => $9)) RETURNING id",
            template,
            json.dumps(variables),
            mode,
            stop_on_failure,
            concurrency,
            rollback_of,
            created_by,
            force,
            lifetime,
        )
        await conn.executemany(
            "INSERT INTO config_job_devices (job_id, device) VALUES ($1, $2)",
            [(job_id, d) for d in devices],
        )
        await conn.execute(f"NOTIFY {JOBS_NOTIFY}")
    return job_id


#: The advisory lock class of config jobs: ``pg_advisory_lock(JOB_LOCK, job id)`` is held by
#: the database session of the devices daemon running the job. A job left 'running' whose
#: lock is free has lost its daemon (kill -9, a crash, a lost host): another takes it over.
JOB_LOCK = 0x6A6F62  # "job"
_JOB_COLUMNS = (
    "id, template, variables, mode, stop_on_failure, concurrency, rollback_of, force, deadline"
)


def _job(r: asyncpg.Record) -> Job:
    return Job(
        r["id"],
        r["template"],
        json.loads(r["variables"]),
        r["mode"],
        r["stop_on_failure"],
        r["concurrency"],
        r["rollback_of"],
        r["force"],
        r["deadline"],
    )


def _lock_key(job_id: int) -> int:
    return job_id & 0x7FFFFFFF


async def claim_jobs(db: asyncpg.Pool | Conn) -> list[Job]:
    """Pending jobs, now running. On a connection (the runner's, held while it lives) each
    is also locked (``JOB_LOCK``) by the same statement, before the state change commits,
    so no other daemon ever sees it running and unlocked."""
    rows = await db.fetch(
        "UPDATE config_jobs SET state = 'running', started_at = now() WHERE id IN "
        "(SELECT id FROM config_jobs WHERE state = 'pending' ORDER BY id "
        f"FOR UPDATE SKIP LOCKED) RETURNING {_JOB_COLUMNS}, "
        "pg_advisory_lock($1, (id & 2147483647)::int)",
        JOB_LOCK,
    )
    return [_job(r) for r in rows]


async def orphaned_jobs(conn: Conn, mine: set[int]) -> list[Job]:
    """Running jobs no daemon holds (their lock is free; ``mine`` are this runner's own),
    now locked by ``conn``: the caller resumes them (``run_job`` runs the devices not yet
    finished)."""
    out: list[Job] = []
    for r in await conn.fetch("SELECT id FROM config_jobs WHERE state = 'running' ORDER BY id"):
        job_id = int(r["id"])
        if job_id in mine:
            continue
        if not await conn.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", JOB_LOCK, _lock_key(job_id)
        ):
            continue  # another daemon is running it
        row = await conn.fetchrow(
            f"SELECT {_JOB_COLUMNS} FROM config_jobs WHERE id = $1 AND state = 'running'", job_id
        )
        if row is None:  # it ended meanwhile
            await release_job(conn, job_id)
            continue
        out.append(_job(row))
    return out


async def lock_job(conn: Conn, job_id: int) -> bool:
    """Take a job's lock again (a new connection after the old one was lost)."""
    return bool(
        await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", JOB_LOCK, _lock_key(job_id))
    )


async def release_job(conn: Conn, job_id: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1, $2)", JOB_LOCK, _lock_key(job_id))


async def job_devices(pool: asyncpg.Pool, job_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT device, state, reason, diff, error, error_details, attempts, backup_before, "
        "backup_after, updated_at FROM config_job_devices WHERE job_id = $1 ORDER BY device",
        job_id,
    )
    return [{**dict(r), "error_details": json.loads(r["error_details"])} for r in rows]


#: Once noted, a device's pre-change backup is never replaced (nor cleared) by a later
#: attempt: it is the job's rollback point.
_KEEP_FIRST = {"backup_before"}


async def set_job_device(pool: asyncpg.Pool, job_id: int, device: str, **values: Any) -> None:
    if "error_details" in values:
        values["error_details"] = json.dumps(values["error_details"])
    cols = sorted(values)
    sets = ", ".join(
        f"{c} = coalesce({c}, ${i + 3})"
        if c in _KEEP_FIRST
        else (f"{c} = ${i + 3}::jsonb" if c == "error_details" else f"{c} = ${i + 3}")
        for i, c in enumerate(cols)
    )
    await pool.execute(
        f"UPDATE config_job_devices SET {sets}, updated_at = now() "
        "WHERE job_id = $1 AND device = $2",
        job_id,
        device,
        *[values[c] for c in cols],
    )


async def note_backup_before(pool: asyncpg.Pool, job_id: int, device: str, backup: int) -> None:
    """The config backed up before a job's change is pushed, noted at once (the first one
    only): a change interrupted halfway and run again keeps the original for its rollback."""
    await pool.execute(
        "UPDATE config_job_devices SET backup_before = coalesce(backup_before, $3), "
        "updated_at = now() WHERE job_id = $1 AND device = $2",
        job_id,
        device,
        backup,
    )


async def finish_job(pool: asyncpg.Pool, job_id: int, state: str) -> None:
    await pool.execute(
        "UPDATE config_jobs SET state = $2, finished_at = now() WHERE id = $1", job_id, state
    )


async def fail_unfinished(pool: asyncpg.Pool, job_id: int, error: str) -> None:
    """A job that cannot go on (a failure of netd itself): its devices not yet ended end
    failed with reason error, and the job failed. Nothing is left running."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE config_job_devices SET state = 'failed', reason = 'error', error = $2, "
            "updated_at = now() WHERE job_id = $1 AND state IN ('pending', 'running')",
            job_id,
            error,
        )
        await conn.execute(
            "UPDATE config_jobs SET state = 'failed', finished_at = now() WHERE id = $1 "
            "AND state IN ('pending', 'running')",
            job_id,
        )


async def cancel_job(pool: asyncpg.Pool, job_id: int, actor: str) -> str | None:
    """Cancel a job: a pending one ends at once (``cancelled``, its devices too); a running
    one is marked, and its daemon stops it between two steps (a device being changed ends
    its change, with its backup, verify and rollback; the devices not begun end
    ``cancelled``). The job's state after the request, or None if there is no such job."""
    async with pool.acquire() as conn, conn.transaction():
        state: str | None = await conn.fetchval(
            "SELECT state FROM config_jobs WHERE id = $1 FOR UPDATE", job_id
        )
        if state is None or state in ("done", "failed", "cancelled"):
            return state
        if state == "pending":
            await conn.execute(
                "UPDATE config_jobs SET state = 'cancelled', cancel_requested_by = $2, "
                "finished_at = now() WHERE id = $1",
                job_id,
                actor,
            )
            await conn.execute(
                "UPDATE config_job_devices SET state = 'cancelled', reason = 'cancelled', "
                "error = $2, updated_at = now() WHERE job_id = $1 AND state = 'pending'",
                job_id,
                f"cancelled by {actor}" if actor else "cancelled",
            )
            return "cancelled"
        await conn.execute(
            "UPDATE config_jobs SET cancel_requested_by = $2 WHERE id = $1", job_id, actor
        )
        await conn.execute(f"NOTIFY {JOBS_NOTIFY}")
        return state


async def cancel_requested(pool: asyncpg.Pool, job_id: int) -> str | None:
    """Who asked to cancel a running job (None: nobody)."""
    who: str | None = await pool.fetchval(
        "SELECT cancel_requested_by FROM config_jobs WHERE id = $1", job_id
    )
    return who


async def get_job(pool: asyncpg.Pool, job_id: int) -> dict[str, Any] | None:
    r = await pool.fetchrow(
        "SELECT id, template, variables, mode, stop_on_failure, concurrency, state, "
        "rollback_of, force, deadline, cancel_requested_by, created_by, created_at, "
        "started_at, finished_at FROM config_jobs WHERE id = $1",
        job_id,
    )
    if r is None:
        return None
    devices = await job_devices(pool, job_id)
    counts: dict[str, int] = {}
    for d in devices:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    return {
        **dict(r),
        "variables": json.loads(r["variables"]),
        "devices": devices,
        "counts": counts,
    }


async def audit(
    pool: asyncpg.Pool, actor: str, action: str, target: str, result: str, details: dict[str, Any]
) -> None:
    """A row in the API's audit log, for a job or one device's part in it."""
    await pool.execute(
        "INSERT INTO audit_log (actor, role, method, path, action, target, status, result, "
        "request_id, details) VALUES ($1, 'system', 'JOB', $2, $3, $4, 0, $5, '', $6::jsonb)",
        actor or "netd:devices",
        f"config_jobs/{target}",
        action,
        target,
        result,
        json.dumps(details, default=str),
    )


async def request_backup(pool: asyncpg.Pool, name: str) -> None:
    """Ask the devices daemon for a backup now (of ``name``, or "*" for every device)."""
    await pool.execute("SELECT pg_notify($1, $2)", BACKUP_NOTIFY, name)


async def list_jobs(pool: asyncpg.Pool, limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT j.id, j.template, j.mode, j.state, j.rollback_of, j.created_by, j.created_at, "
        "j.started_at, j.finished_at, count(d.*) AS devices FROM config_jobs j "
        "LEFT JOIN config_job_devices d ON d.job_id = j.id GROUP BY j.id ORDER BY j.id DESC "
        "LIMIT $1",
        limit,
    )
    return [dict(r) for r in rows]
