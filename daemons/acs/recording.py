"""A live CWMP session as the ACS holds it, and writing what its steps report.

:class:`Live` is one entry of the ACS's session table (the engine's session, its id,
connection, the tasks it started); :func:`record` writes one step's effects (parameters,
task results, faults, TransferComplete) atomically, then the events they raise: the usual
step as one statement (``store.acs_session.record_step``), anything else in a transaction.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from daemons.acs import cwmp
from daemons.acs import engine as eng
from daemons.acs.metrics import AcsMetrics
from daemons.core.config import AcsConfig
from daemons.core.lifecycle import Context
from daemons.store import acs as store
from daemons.store import acs_session as session
from daemons.store.events import append_event
from daemons.store.pg import Conn


@dataclass
class Live:
    session: eng.Session
    sid: str
    conn: tuple[Any, ...]
    ip: str | None
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)
    tasks: dict[int, int] = field(default_factory=dict)  # started: id -> attempts (fence)
    kinds: list[eng.Task] = field(default_factory=list)  # the tasks this session started
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def task_deadline(cfg: AcsConfig, task_id: int, live: Live) -> float:
    """How long a task may wait on the CPE (a transfer's TransferComplete), by kind."""
    kind = next((t.kind for t in live.kinds if t.id == task_id), "download")
    return cfg.upload_deadline if kind == "upload" else cfg.download_deadline


def _one_statement(
    cfg: AcsConfig, live: Live, effects: list[eng.Effect]
) -> tuple[list[cwmp.ParamValue], bool, list[session.Finish]] | None:
    """The effects as one ``record_step`` statement (values read, the tree discovered,
    tasks finished, each once), or None when they need the general transaction."""
    values: list[cwmp.ParamValue] = []
    discovered = False
    finished: dict[int, session.Finish] = {}
    for e in effects:
        if isinstance(e, eng.Params):
            if e.names or e.prune is not None or e.listing or e.listed or e.unreadable:
                return None
            values += e.values
            discovered = discovered or e.discovered
        elif isinstance(e, eng.TaskResult) and e.task_id not in finished:
            deadline = task_deadline(cfg, e.task_id, live) if e.status == "running" else None
            finished[e.task_id] = session.Finish(e.task_id, e.status, e.result, deadline)
        else:
            return None
    return values, discovered, list(finished.values())


async def record(
    ctx: Context,
    cfg: AcsConfig,
    metrics: AcsMetrics,
    live: Live,
    effects: list[eng.Effect],
    db: asyncpg.Pool,
    next_task: int | None = None,
) -> bool:
    """Write one step's effects atomically (one commit per CPE message); whether
    ``next_task``, the task of the RPC to send next, has been cancelled meanwhile.

    The usual step (values read, tasks finished) is one statement on ``db``, the ACS's
    session pool, cancel check included; anything else one transaction, then the check."""
    if not effects and next_task is None:
        return False
    device_id = live.session.device_id
    events: list[eng.DownloadRequested] = []
    done: list[int] = []
    simple = _one_statement(cfg, live, effects) if effects else None
    if simple is not None:
        values, discovered, finished = simple
        cancelled = await session.record_step(
            db, device_id, values, discovered, finished, next_task
        )
        done = [f.task_id for f in finished]
    else:
        async with db.acquire() as conn:
            if effects:
                async with conn.transaction():
                    done, events = await _write(conn, cfg, metrics, live, effects)
            cancelled = next_task is not None and await store.is_cancelled(conn, next_task)
    live.tasks = {t: a for t, a in live.tasks.items() if t not in done}
    for e in events:
        await append_event(
            ctx.pool,
            "acs",
            "cpe.download_requested",
            subject=device_id,
            data={"file_type": e.file_type, "args": e.args},
            cache=ctx.cache,
        )
    return cancelled


async def _write(
    conn: Conn, cfg: AcsConfig, metrics: AcsMetrics, live: Live, effects: list[eng.Effect]
) -> tuple[list[int], list[eng.DownloadRequested]]:
    """Each effect in the caller's transaction: the tasks finished, the events to raise."""
    device_id = live.session.device_id
    events: list[eng.DownloadRequested] = []
    done: list[int] = []
    for e in effects:
        if isinstance(e, eng.Params):
            await store.put_params(
                conn,
                device_id,
                e.values,
                e.names,
                e.discovered,
                prune=e.prune,
                listing=e.listing,
                listed=e.listed,
                unreadable=e.unreadable,
            )
        elif isinstance(e, eng.Removed):
            await store.remove_subtree(conn, device_id, e.path)
        elif isinstance(e, eng.TaskResult):
            deadline = task_deadline(cfg, e.task_id, live) if e.status == "running" else None
            await store.finish_task(conn, e.task_id, e.status, e.result, deadline)
            done.append(e.task_id)
        elif isinstance(e, eng.Fault):
            metrics.faults.labels(str(e.code)).inc()
            await store.record_fault(conn, device_id, e.task_id, e.code, e.message, e.detail)
        elif isinstance(e, eng.TransferDone):
            task_id = await store.transfer_complete(
                conn, device_id, e.command_key, e.fault_code, e.detail
            )
            if e.fault_code:
                await store.record_fault(
                    conn, device_id, task_id, e.fault_code, e.fault_string, e.detail
                )
        elif isinstance(e, eng.DownloadRequested):
            events.append(e)
    return done, events
