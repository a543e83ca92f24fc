"""Process lifecycle: open the stores, start daemons, serve signals, drain, close.

One :class:`Runner` per process. ``netd up`` gives it every daemon; ``netd radius`` one.
SIGTERM/SIGINT drain: stop accepting, finish in-flight work within
``lifecycle.drain_timeout``, close the stores, exit 0 (a second signal cuts the drain short).
SIGHUP reloads ``policies/`` without stopping traffic. Under systemd the runner sends
READY=1, STOPPING=1 and WATCHDOG=1 from the event loop, so a stuck loop stops the pings.

This module owns the runner (signals, start-up, heartbeats, drain, shutdown) and its
metrics. The daemon base and its context are :mod:`daemons.core.daemon`; opening the stores
and the schema check are :mod:`daemons.core.stores`; both are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from daemons import __version__
from daemons.core.config import Loaded
from daemons.core.daemon import Context, Daemon, make_sealer
from daemons.core.health import Health
from daemons.core.policies import PolicyError, load_policies
from daemons.core.stores import (
    StartupError,
    Stores,
    close_stores,
    ensure_schema,
    open_stores,
)
from daemons.core.systemd import Notifier
from daemons.store.events import append_event
from daemons.store.pg import redact

__all__ = [
    "GC_THRESHOLD",
    "Context",
    "Daemon",
    "Runner",
    "RunnerMetrics",
    "StartupError",
    "Stores",
    "close_stores",
    "ensure_schema",
    "make_sealer",
    "open_stores",
    "tune_gc",
]

log = logging.getLogger("netd.lifecycle")

GC_THRESHOLD = (20_000, 20, 20)


def tune_gc() -> None:
    """Once started: what start-up made (modules, policies, stores' clients) moves to the
    permanent generation, and the young generation is collected every 20,000 allocations
    instead of 700. A long-lived daemon's heap is mostly such objects, which every full
    collection would otherwise walk again. Measured on the poller's per-poll work (500
    targets' counter state in memory): 5.3 µs a varbind with the defaults, 3.0 µs with
    this. (netd_gc_frozen_objects shows it applied; tests/integration/test_lifecycle.py.)"""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


class RunnerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.build = Info("netd_build", "netd version", registry=registry)
        self.build.info({"version": __version__})
        self.up = Gauge("netd_daemon_up", "1 while a daemon runs", ["daemon"], registry=registry)
        self.draining = Gauge("netd_draining", "1 while the process drains", registry=registry)
        self.startup_seconds = Gauge(
            "netd_startup_seconds", "time to become ready", registry=registry
        )
        self.gc_frozen = Gauge(
            "netd_gc_frozen_objects",
            "objects made at start-up and moved out of the garbage collector's way",
            registry=registry,
        )
        self.heartbeat_failures = Counter(
            "netd_heartbeat_failures_total", "heartbeats not written to Redis", registry=registry
        )
        self.policy_generation = Gauge(
            "netd_policy_generation", "generation of the policy set in force", registry=registry
        )
        self.policy_files = Gauge("netd_policy_files", "policy files in force", registry=registry)
        self.policy_reloads = Counter(
            "netd_policy_reloads_total", "policy reloads by result", ["result"], registry=registry
        )
        self.tls_reloads = Counter(
            "netd_tls_reloads_total",
            "TLS certificate reloads (SIGHUP) by listener and result (ok, kept: a bad pair)",
            ["listener", "result"],
            registry=registry,
        )
        self.drain_overruns = Counter(
            "netd_drain_overruns_total",
            "drains cut short by the deadline or a second signal",
            registry=registry,
        )


class Runner:
    def __init__(
        self, loaded: Loaded, daemons: list[type[Daemon]], environ: Mapping[str, str] | None = None
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.daemon_types = daemons
        self.notifier = Notifier(environ)
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.startup_seconds = 0.0
        self.metrics = RunnerMetrics(self.registry)
        self.daemons: list[Daemon] = []
        self.ctx: Context | None = None
        self._stop = asyncio.Event()
        self._signals = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._drain_task: asyncio.Task[None] | None = None

    def _instance_id(self, daemon: Daemon) -> str:
        return f"{self.config.instance}:{daemon.name}:{os.getpid()}"

    # --- signals ---

    def _on_stop_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("stop requested, draining", extra={"fields": {"signal": signum}})
            self._stop.set()
        elif self._drain_task is not None and not self._drain_task.done():
            log.warning("second stop signal: cutting the drain short")
            self.metrics.drain_overruns.inc()
            self._drain_task.cancel()

    def _on_hup(self) -> None:
        self._spawn(self.reload_policies())
        for daemon in self.daemons:
            try:
                results = daemon.reload_tls()
            except Exception as exc:  # noqa: BLE001 - a reload never takes the daemon down
                log.error("TLS reload failed", extra={"fields": {"error": repr(exc)}})
                continue
            for listener, ok in results.items():
                self.metrics.tls_reloads.labels(listener, "ok" if ok else "kept").inc()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- policies ---

    async def reload_policies(self) -> bool:
        """Load ``policies/`` anew; on any error keep the set in force. Return success."""
        ctx = self.ctx
        if ctx is None:
            return False
        try:
            new = await asyncio.to_thread(
                load_policies, self.config.policies.root, ctx.policies.generation + 1
            )
            for daemon in self.daemons:
                daemon.check_policies(new)
        except PolicyError as exc:
            self.metrics.policy_reloads.labels("error").inc()
            log.error(
                "policy reload rejected; the previous policies stay in force",
                extra={"fields": {"file": exc.path, "problem": exc.problem}},
            )
            return False
        for daemon in self.daemons:
            daemon.apply_policies(new)
        ctx.policies = new
        self.metrics.policy_reloads.labels("ok").inc()
        self.metrics.policy_generation.set(new.generation)
        self.metrics.policy_files.set(len(new.documents))
        log.info(
            "policies reloaded",
            extra={
                "fields": {
                    "generation": new.generation,
                    "files": len(new.documents),
                    "digest": new.digest[:12],
                }
            },
        )
        return True

    # --- periodic tasks ---

    async def _heartbeats(self, status: str = "running") -> None:
        ctx = self.ctx
        assert ctx is not None
        ttl = self.config.lifecycle.heartbeat_interval * 3
        now = time.time()
        for daemon in self.daemons:
            if not daemon.heartbeat:
                continue
            instance_id = self._instance_id(daemon)
            beat = {
                "instance_id": instance_id,
                "daemon": daemon.name,
                "instance": ctx.instance,
                "pid": os.getpid(),
                "version": __version__,
                "started_at": ctx.started_at,
                "uptime": now - ctx.started_at,
                "ts": now,
                "status": status,
                "counters": daemon.counters(),
            }
            await ctx.cache.put_heartbeat(instance_id, beat, ttl)

    async def _heartbeat_loop(self) -> None:
        failing = False
        while True:
            try:
                await self._heartbeats()
                if failing:
                    log.info("heartbeats written again")
                failing = False
            except Exception as exc:  # noqa: BLE001 - a cache outage must never stop the daemon
                self.metrics.heartbeat_failures.inc()
                if not failing:  # one line per outage, not one per beat
                    log.warning("heartbeat not written", extra={"fields": {"error": repr(exc)}})
                failing = True
            await asyncio.sleep(self.config.lifecycle.heartbeat_interval)

    async def _watchdog_loop(self, interval: float) -> None:
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    # --- the whole life ---

    async def _startup(self) -> None:
        t0 = time.monotonic()
        stores = await open_stores(self.config, create=True)
        try:
            await ensure_schema(stores.pool, self.config.database.migrate_on_start, create=True)
            try:
                policies = await asyncio.to_thread(load_policies, self.config.policies.root, 1)
            except PolicyError as exc:
                raise StartupError(str(exc), status=2) from None
            health = Health(stores.pool, stores.redis)
            self.ctx = Context(
                self.config,
                self.loaded.path,
                stores,
                self.registry,
                health,
                policies,
                self.config.instance,
            )
            self.daemons = [cls(self.ctx) for cls in self.daemon_types]
            for daemon in self.daemons:
                daemon.check_policies(policies)
                daemon.apply_policies(policies)
            for daemon in self.daemons:
                try:
                    await daemon.start()
                except OSError as exc:  # a port in use, an address not available
                    raise StartupError(f"{daemon.name}: {exc.strerror or exc}") from None
                self.metrics.up.labels(daemon.name).set(1)
        except BaseException:
            for daemon in reversed(self.daemons):
                with contextlib.suppress(Exception):
                    await daemon.close()
            await close_stores(stores)
            raise
        self.metrics.policy_generation.set(policies.generation)
        self.metrics.policy_files.set(len(policies.documents))
        health.started = True
        tune_gc()
        self.metrics.gc_frozen.set(gc.get_freeze_count())
        self.startup_seconds = time.monotonic() - t0
        self.metrics.startup_seconds.set(self.startup_seconds)

    async def run(self) -> int:
        """Run until a stop signal; return the process exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        try:
            await self._startup()
        except PolicyError as exc:
            log.error("startup failed: %s", exc)
            return 2
        except StartupError as exc:
            log.error("startup failed: %s", exc)
            return exc.status
        ctx = self.ctx
        assert ctx is not None
        self._spawn(self._heartbeat_loop())
        if self.notifier.watchdog_interval:
            self._spawn(self._watchdog_loop(self.notifier.watchdog_interval))
        names = ",".join(d.name for d in self.daemons if d.heartbeat)
        self.notifier.notify("READY=1", f"STATUS=serving {names}", f"MAINPID={os.getpid()}")
        endpoints: dict[str, str] = {}
        for daemon in self.daemons:
            endpoints.update(daemon.endpoints())
        log.info(
            "ready",
            extra={
                "fields": {
                    "daemons": names,
                    **endpoints,
                    "postgres": redact(ctx.stores.postgres_url),
                    "redis": ctx.stores.redis_url,
                    "embedded": ctx.stores.embedded is not None,
                    "startup_seconds": round(self.startup_seconds, 3),
                }
            },
        )
        await self._event("daemon.started")
        await self._stop.wait()
        try:
            return await self._shutdown()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _event(self, kind: str) -> None:
        ctx = self.ctx
        assert ctx is not None
        for daemon in self.daemons:
            if not daemon.heartbeat:
                continue
            try:
                async with asyncio.timeout(2.0):
                    await append_event(
                        ctx.pool,
                        daemon.name,
                        kind,
                        subject=self._instance_id(daemon),
                        data={"version": __version__, "pid": os.getpid()},
                        cache=ctx.cache,
                    )
            except Exception as exc:  # noqa: BLE001 - best effort: the store may be why we stop
                log.warning(
                    "event not recorded", extra={"fields": {"kind": kind, "error": repr(exc)}}
                )

    async def _drain(self) -> None:
        # The first daemon (api or status listener) serves health: it drains last, so
        # /health/ready answers 503 while the others finish their in-flight work.
        first, rest = self.daemons[0], self.daemons[1:]
        await asyncio.gather(*(d.drain() for d in rest))
        await first.drain()

    async def _shutdown(self) -> int:
        ctx = self.ctx
        assert ctx is not None
        t0 = time.monotonic()
        self.notifier.notify("STOPPING=1", "STATUS=draining")
        ctx.health.draining = True
        self.metrics.draining.set(1)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._heartbeats("draining"), 2.0)
        self._drain_task = asyncio.get_running_loop().create_task(self._drain())
        try:
            await asyncio.wait_for(self._drain_task, self.config.lifecycle.drain_timeout)
        except (TimeoutError, asyncio.CancelledError):
            self.metrics.drain_overruns.inc()
            log.warning(
                "drain did not finish in time; in-flight work was cut off",
                extra={"fields": {"drain_timeout": self.config.lifecycle.drain_timeout}},
            )
        for daemon in reversed(self.daemons):
            try:
                await asyncio.wait_for(daemon.close(), 5.0)
            except Exception as exc:  # noqa: BLE001 - one daemon must not stop the others closing
                log.warning(
                    "daemon did not close cleanly",
                    extra={"fields": {"daemon": daemon.name, "error": repr(exc)}},
                )
            self.metrics.up.labels(daemon.name).set(0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._event("daemon.stopped")
        for daemon in self.daemons:
            if daemon.heartbeat:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        ctx.cache.remove_heartbeat(self._instance_id(daemon)), 2.0
                    )
        await close_stores(ctx.stores)
        self.notifier.close()
        log.info("stopped", extra={"fields": {"drain_seconds": round(time.monotonic() - t0, 3)}})
        return 0
