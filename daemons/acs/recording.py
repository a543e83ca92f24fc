"""A live CWMP session as the ACS holds it, and writing what its steps report.

:class:`Live` is one entry of the ACS's session table (the engine's session, its id,
connection, the tasks it started); :func:`record` writes one step's effects (parameters,
task results, faults, TransferComplete) in one transaction, then the events they raise.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from daemons.acs import engine as eng
from daemons.acs.metrics import AcsMetrics
from daemons.core.config import AcsConfig
from daemons.core.lifecycle import Context
from daemons.store import acs as store
from daemons.store.events import append_event


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


async def record(
    ctx: Context, cfg: AcsConfig, metrics: AcsMetrics, live: Live, effects: list[eng.Effect]
) -> None:
    """Write one step's effects in one transaction (one commit per CPE message)."""
    if not effects:
        return
    device_id = live.session.device_id
    events: list[eng.DownloadRequested] = []
    done: list[int] = []
    async with ctx.pool.acquire() as conn, conn.transaction():
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
