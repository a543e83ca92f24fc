"""A live CWMP session as the ACS holds it, and writing what its steps report.

:class:`Live` is one entry of the ACS's session table (the engine's session, its id,
connection, the tasks it started); :class:`Recorder` writes one step's effects (parameters,
task results, faults, TransferComplete) atomically, then the events they raise: the usual
step in one statement with other sessions' (``store.acs_session.record_steps``), anything
else in a transaction of its own.
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
from daemons.core.batch import Batcher
from daemons.core.config import AcsConfig
from daemons.core.lifecycle import Context
from daemons.store import acs as store
from daemons.store import acs_session as session
from daemons.store.events import append_event
from daemons.store.pg import Conn

#: CPE messages written in one statement at most
STEP_BATCH = 256


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
    cfg: AcsConfig, live: Live, effects: list[eng.Effect], next_task: int | None
) -> session.StepWrite | None:
    """The effects as one ``record_steps`` write (values read, the tree discovered, tasks
    finished, each once), or None when they need the general transaction."""
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
    device_id = live.session.device_id
    return session.StepWrite(device_id, values, discovered, list(finished.values()), next_task)


class Recorder:
    """Writes what sessions' steps report. The usual step (values read, tasks finished,
    the cancel check of the next RPC's task) goes into one statement with the steps of
    other sessions that come while the previous one runs (``core.batch.Batcher``: one
    round trip and one commit for them all); anything else is a transaction of its own."""

    def __init__(self, ctx: Context, cfg: AcsConfig, metrics: AcsMetrics) -> None:
        self.ctx, self.cfg, self.metrics = ctx, cfg, metrics
        #: the ACS's session pool once the service has opened it
        self.db: asyncpg.Pool = ctx.pool
        self.steps: Batcher[session.StepWrite, bool] = Batcher(
            lambda batch: session.record_steps(self.db, batch), max_batch=STEP_BATCH
        )

    async def record(
        self, live: Live, effects: list[eng.Effect], next_task: int | None = None
    ) -> bool:
        """Write one step's effects atomically, before the answer; whether ``next_task``,
        the task of the RPC to send next, has been cancelled meanwhile."""
        if not effects and next_task is None:
            return False
        events: list[eng.DownloadRequested] = []
        done: list[int] = []
        simple = _one_statement(self.cfg, live, effects, next_task)
        if simple is not None:
            cancelled = await self.steps.submit(simple)
            done = [f.task_id for f in simple.finished]
        else:
            async with self.db.acquire() as conn:
                async with conn.transaction():
                    done, events = await _write(conn, self.cfg, self.metrics, live, effects)
                cancelled = next_task is not None and await store.is_cancelled(conn, next_task)
        live.tasks = {t: a for t, a in live.tasks.items() if t not in done}
        for e in events:
            await append_event(
                self.ctx.pool,
                "acs",
                "cpe.download_requested",
                subject=live.session.device_id,
                data={"file_type": e.file_type, "args": e.args},
                cache=self.ctx.cache,
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
