"""The devices daemon: scheduled config backups of every device, and configuration jobs
(dry-run, apply, rollback) created through the API or CLI, run as they are created
(NOTIFY). Device exchanges run in a thread pool (``devices.concurrency`` threads), so the
event loop stays free; each is bounded by ``devices.device_timeout``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, ClassVar

from prometheus_client import Counter, Gauge, Histogram

from daemons.core.lifecycle import Context, Daemon
from daemons.core.listen import STORE_ERRORS, reload_on_notify
from daemons.core.ratelog import RateLimitedLog
from daemons.devices.errors import DeviceError
from daemons.devices.jobs import Runner, run_job
from daemons.store import devices as store
from daemons.store.events import append_event

log = logging.getLogger("netd.devices")
# ncclient logs every message it sends and receives at INFO (configs included): not ours.
for _noisy in ("ncclient", "paramiko", "netmiko"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


class DevicesService(Daemon):
    name: ClassVar[str] = "devices"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = ctx.config.devices
        self.ratelog = RateLimitedLog(log)
        self.runner: Runner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: dict[int, asyncio.Task[None]] = {}
        # The connection whose session holds the locks of the jobs this daemon runs (see
        # store.JOB_LOCK), and the lock that keeps its queries one at a time.
        self._owner: Any = None
        self._owner_lock = asyncio.Lock()
        reg = ctx.registry
        self.backups = Counter(
            "netd_device_backups_total", "backups by result", ["result"], registry=reg
        )
        self.backup_seconds = Histogram(
            "netd_device_backup_seconds",
            "one device's backup",
            registry=reg,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.running_jobs = Gauge("netd_config_jobs_running", "jobs running", registry=reg)
        self.jobs_ended = Counter(
            "netd_config_jobs_total", "jobs ended, by final state", ["state"], registry=reg
        )
        self.job_devices = Counter(
            "netd_config_job_devices_total",
            "devices' parts in jobs ended, by state and reason (locked, rejected, drift...)",
            ["mode", "state", "reason"],
            registry=reg,
        )

    async def start(self) -> None:
        self.runner = Runner(
            self.ctx.pool,
            self.ctx.sealer,
            self.ctx.config.policies.root / "config",
            self.cfg.concurrency,
            self.cfg.device_timeout,
            self.cfg.confirm_timeout,
            self.event,
            self.cfg.lock_wait,
        )
        try:
            sealed = await store.seal_clear_backups(self.ctx.pool, self.ctx.sealer)
            if sealed:
                log.info("backups stored in clear sealed", extra={"fields": {"count": sealed}})
        except STORE_ERRORS as exc:
            self.ratelog.log(logging.WARNING, "seal", "backups not sealed", error=repr(exc))
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._watch_jobs()))
        self._tasks.append(loop.create_task(self._watch_backups()))
        if self.cfg.backup_interval:
            self._tasks.append(loop.create_task(self._backup_loop()))

    async def drain(self) -> None:
        tasks = [*self._tasks, *self._jobs.values()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._owner is not None:  # its jobs' locks go with it: the next daemon resumes them
            with contextlib.suppress(Exception):
                await self.ctx.pool.release(self._owner)
            self._owner = None
        if self.runner is not None:
            self.runner.close()

    def counters(self) -> dict[str, float]:
        return {"jobs_running": len(self._jobs)}

    async def event(self, kind: str, subject: str, data: dict[str, Any], severity: Any) -> None:
        try:
            await append_event(
                self.ctx.pool,
                "devices",
                kind,
                subject=subject,
                data=data,
                severity=severity,
                cache=self.ctx.cache,
            )
        except STORE_ERRORS as exc:
            self.ratelog.log(logging.WARNING, "device-event", "event not recorded", error=repr(exc))

    async def backup_all(self, reason: str = "scheduled") -> dict[str, int]:
        """Back every device up, ``devices.concurrency`` at once; counts by result."""
        assert self.runner is not None
        gate = asyncio.Semaphore(self.cfg.concurrency)
        counts: dict[str, int] = {}

        async def one(d: store.Device) -> None:
            async with gate:
                t0 = time.monotonic()
                try:
                    _id, changed = await self.runner.backup(d, reason)  # type: ignore[union-attr]
                    result = "changed" if changed else "unchanged"
                except DeviceError as exc:
                    result = exc.reason
                    self.ratelog.log(
                        logging.WARNING,
                        f"backup-{d.name}",
                        "backup failed",
                        device=d.name,
                        reason=exc.reason,
                        error=str(exc),
                    )
                self.backup_seconds.observe(time.monotonic() - t0)
                self.backups.labels(result).inc()
                counts[result] = counts.get(result, 0) + 1

        devices = await store.list_devices(self.ctx.pool, self.ctx.sealer)
        await asyncio.gather(*(one(d) for d in devices))
        return counts

    async def _backup_loop(self) -> None:
        while True:
            try:
                counts = await self.backup_all()
                log.info("backups done", extra={"fields": counts})
            except STORE_ERRORS as exc:
                self.ratelog.log(logging.WARNING, "backups", "backups not run", error=repr(exc))
            await asyncio.sleep(self.cfg.backup_interval)

    async def _watch_backups(self) -> None:
        """Backups asked for now (``request_backup``): NOTIFY with a device name or "*"."""
        conn = await self.ctx.pool.acquire()
        asked: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)

        def heard(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                asked.put_nowait(str(payload))

        try:
            await conn.add_listener(store.BACKUP_NOTIFY, heard)
            while True:
                name = await asked.get()
                try:
                    if name == "*":
                        await self.backup_all("on-demand")
                        continue
                    d = await store.get_device(self.ctx.pool, self.ctx.sealer, name)
                    if d is not None and self.runner is not None:
                        try:
                            _id, changed = await self.runner.backup(d, "on-demand")
                            self.backups.labels("changed" if changed else "unchanged").inc()
                        except DeviceError as exc:
                            self.backups.labels(exc.reason).inc()
                            await self.event(
                                "device.backup_failed",
                                name,
                                {"reason": exc.reason, "error": str(exc)},
                                "warning",
                            )
                except STORE_ERRORS as exc:
                    self.ratelog.log(logging.WARNING, "backup", "backup not run", error=repr(exc))
        finally:
            with contextlib.suppress(Exception):
                await conn.remove_listener(store.BACKUP_NOTIFY, heard)  # or asyncpg warns
            with contextlib.suppress(Exception):
                await self.ctx.pool.release(conn)

    async def _owner_conn(self) -> Any:
        """The jobs' lock-holding connection; a new one (the running jobs locked again) if
        the old one was lost."""
        if self._owner is not None and not self._owner.is_closed():
            return self._owner
        if self._owner is not None:
            with contextlib.suppress(Exception):
                await self.ctx.pool.release(self._owner)
            self._owner = None
        conn = await self.ctx.pool.acquire()
        self._owner = conn
        for job_id in list(self._jobs):
            if not await store.lock_job(conn, job_id):
                log.warning(
                    "a running config job's lock was taken by another daemon meanwhile",
                    extra={"fields": {"job": job_id}},
                )
        return conn

    async def _watch_jobs(self) -> None:
        async def claim() -> None:
            async with self._owner_lock:
                owner = await self._owner_conn()
                jobs = await store.claim_jobs(owner)
                mine = set(self._jobs) | {j.id for j in jobs}  # locked by this session too
                orphans = await store.orphaned_jobs(owner, mine)
            for job in orphans:
                log.warning(
                    "config job resumed: it was left running by a daemon that is gone",
                    extra={"fields": {"job": job.id}},
                )
            for job in [*jobs, *orphans]:
                self._jobs[job.id] = asyncio.get_running_loop().create_task(self._run(job))
                self.running_jobs.set(len(self._jobs))

        await reload_on_notify(
            self.ctx.pool, (store.JOBS_NOTIFY,), claim, 10.0, self.ratelog, "jobs not claimed"
        )

    async def _run(self, job: store.Job) -> None:
        assert self.runner is not None
        try:
            state = await run_job(self.runner, self.ctx.pool, self.ctx.sealer, job)
            log.info("config job ended", extra={"fields": {"job": job.id, "state": state}})
            self.jobs_ended.labels(state).inc()
            for row in await store.job_devices(self.ctx.pool, job.id):
                self.job_devices.labels(job.mode, row["state"], row["reason"] or "-").inc()
        except STORE_ERRORS as exc:
            # The store is away: the job stays running and is resumed (the device read
            # first: a change already there is not pushed again).
            self.ratelog.log(
                logging.WARNING, "job", "config job interrupted", job=job.id, error=repr(exc)
            )
        except Exception as exc:  # never a job left running to be resumed over and over
            log.exception("config job failed", extra={"fields": {"job": job.id}})
            with contextlib.suppress(*STORE_ERRORS):
                await store.fail_unfinished(
                    self.ctx.pool, job.id, f"netd: {type(exc).__name__} (see the daemon's log)"
                )
        finally:
            self._jobs.pop(job.id, None)
            self.running_jobs.set(len(self._jobs))
            with contextlib.suppress(*STORE_ERRORS):
                async with self._owner_lock:
                    if self._owner is not None and not self._owner.is_closed():
                        await store.release_job(self._owner, job.id)
