"""Process lifecycle: open the stores, start daemons, serve signals, drain, close.

One :class:`Runner` per process. ``netd up`` gives it every daemon; ``netd radius`` one.
SIGTERM/SIGINT drain: stop accepting, finish in-flight work within
``lifecycle.drain_timeout``, close the stores, exit 0 (a second signal cuts the drain short).
SIGHUP reloads ``policies/`` without stopping traffic. Under systemd the runner sends
READY=1, STOPPING=1 and WATCHDOG=1 from the event loop, so a stuck loop stops the pings.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
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
from daemons.core.config import Config, Loaded
from daemons.core.health import Health
from daemons.core.policies import PolicyError, PolicySet, load_policies
from daemons.core.secrets import Sealer, load_or_create_key
from daemons.core.systemd import Notifier
from daemons.store import migrate
from daemons.store.cache import Cache
from daemons.store.cache import connect as connect_cache
from daemons.store.embedded import EmbeddedError, EmbeddedStores
from daemons.store.events import append_event
from daemons.store.pg import StoreUnavailable, create_pool, redact

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


class StartupError(Exception):
    """Startup cannot go on; the message is for the operator. ``status`` is the exit code."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Stores:
    pool: asyncpg.Pool
    cache: Cache | None
    postgres_url: str
    redis_url: str
    embedded: EmbeddedStores | None = None

    @property
    def redis(self) -> Cache:
        if self.cache is None:
            raise RuntimeError("these stores were opened without Redis")
        return self.cache


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


@dataclass
class Context:
    """What a daemon gets from the process: config, stores, metrics, policies."""

    config: Config
    config_path: Path | None
    stores: Stores
    registry: CollectorRegistry
    health: Health
    policies: PolicySet
    instance: str
    started_at: float = field(default_factory=time.time)
    _sealer: Sealer | None = field(default=None, init=False, repr=False)

    @property
    def sealer(self) -> Sealer:
        """Seals secrets at rest. Raises ValueError for a malformed key."""
        if self._sealer is None:
            self._sealer = make_sealer(self.config, create=True)
        return self._sealer

    @property
    def pool(self) -> asyncpg.Pool:
        return self.stores.pool

    @property
    def cache(self) -> Cache:
        return self.stores.redis


class Daemon:
    """Base of every daemon. Subclasses override the hooks they need.

    ``start`` begins serving; ``drain`` stops accepting and waits for in-flight work (the
    runner bounds it by the deadline); ``close`` releases what ``start`` took.
    """

    name: ClassVar[str] = "daemon"
    heartbeat: ClassVar[bool] = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        return None

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def check_policies(self, policies: PolicySet) -> None:
        """Raise PolicyError if ``policies`` cannot be applied; change nothing."""

    def apply_policies(self, policies: PolicySet) -> None:
        """Switch to ``policies`` (already checked)."""

    def reload_tls(self) -> dict[str, bool]:
        """Read TLS certificates again (SIGHUP): listener name → whether the new pair is
        in force (False: a bad pair, the old one kept and the reason logged)."""
        return {}

    def counters(self) -> dict[str, float]:
        """Key counters for the heartbeat and the status API."""
        return {}

    def endpoints(self) -> dict[str, str]:
        """What this daemon listens on, for the startup log line (name -> address)."""
        return {}


def make_sealer(config: Config, create: bool = False) -> Sealer:
    """The sealer for ``secrets.key``, or the key kept under state_dir, generated there
    first if ``create`` (daemons and ``netd migrate``; an admin command never makes a key
    that would seal secrets no daemon can open). Raises ValueError naming the problem."""
    key = config.secrets.key.get_secret_value() if config.secrets.key else None
    if not key and not create and not (config.state_dir / "secrets.key").exists():
        raise ValueError(
            f"no secrets key in state directory {config.state_dir} (secrets.key): "
            "`netd migrate` or a daemon's first start creates it; or give secrets.key"
        )
    if key:
        return Sealer(load_or_create_key(key, config.state_dir))
    return Sealer(load_or_create_key(None, config.state_dir), config.state_dir)


def _check_state_dir(config: Config) -> None:
    """An admin command runs on an instance's existing stores: refuse, with one line naming
    the state directory looked at, when it holds no embedded database yet (rather than
    starting a new empty one and answering from it).

    Raises StartupError.
    """
    data = config.state_dir / "postgres" / "PG_VERSION"
    try:
        present = data.is_file()
    except PermissionError:
        raise StartupError(
            f"cannot read state directory {config.state_dir}: permission denied "
            "(run as the user the daemons run as, e.g. `sudo -u netd netd ...`)"
        ) from None
    if not present:
        raise StartupError(
            f"no database in state directory {config.state_dir}: run `netd migrate` to "
            "create one, or give the config of the instance you mean (--config, $NETD_CONFIG)"
        )


async def open_stores(config: Config, with_redis: bool = True, create: bool = False) -> Stores:
    """Connect to the configured stores, starting embedded ones for what is not configured.
    Without ``create`` (admin commands) an embedded database must exist already.

    Raises StartupError when a store cannot be reached or started, or does not exist.
    """
    embedded: EmbeddedStores | None = None
    if config.database.embedded and not create:
        _check_state_dir(config)
    pg_url = config.database.url.get_secret_value()
    redis_url = config.redis.url.get_secret_value()
    embed_redis = with_redis and config.redis.embedded
    if config.database.embedded or embed_redis:
        embedded = EmbeddedStores(
            config.state_dir,
            postgres=config.database.embedded,
            redis=embed_redis,
            run_as=config.embedded.run_as,
            timeout=config.embedded.start_timeout,
        )
        try:
            await asyncio.to_thread(embedded.acquire)
        except (EmbeddedError, OSError) as exc:
            raise StartupError(
                f"cannot start embedded stores in {config.state_dir}: {exc}"
            ) from None
        if embedded.postgres is not None:
            pg_url = embedded.postgres.dsn
        if embedded.redis is not None:
            redis_url = embedded.redis.url
    try:
        pool = await create_pool(config.database, pg_url, f"netd-{os.getpid()}")
        try:
            cache = await connect_cache(config.redis, redis_url) if with_redis else None
        except StoreUnavailable:
            await pool.close()
            raise
    except StoreUnavailable as exc:
        if embedded is not None:
            await asyncio.to_thread(embedded.release)
        raise StartupError(str(exc)) from None
    return Stores(pool, cache, pg_url, redis_url, embedded)


async def close_stores(stores: Stores) -> None:
    try:
        await asyncio.wait_for(stores.pool.close(), 5.0)
    except TimeoutError:
        stores.pool.terminate()
    if stores.cache is not None:
        with contextlib.suppress(Exception):
            await stores.cache.close()
    if stores.embedded is not None:
        await asyncio.to_thread(stores.embedded.release)


async def ensure_schema(pool: asyncpg.Pool, apply: bool, create: bool = False) -> None:
    """Apply pending migrations, or with ``apply`` False refuse to run on an old schema.
    Without ``create`` (admin commands) a database with no netd schema at all is refused
    rather than given one. Raises StartupError."""
    migrations = migrate.available()
    async with pool.acquire() as conn:
        try:
            if not create and not await migrate.has_schema(conn):
                raise StartupError(
                    "the database has no netd schema yet: run `netd migrate` first "
                    "(or give the config of the instance you mean)"
                )
            ahead = await migrate.applied_newer(conn, migrations)
            if ahead:
                log.warning(
                    "the database schema is newer than this netd (a rolling upgrade?): "
                    "running on it; upgrade this node",
                    extra={"fields": {"newer_migrations": ahead, "version": __version__}},
                )
            if apply:
                done = await migrate.apply(conn, migrations, allow_newer=True)
                for mig in done:
                    log.info("migration applied", extra={"fields": {"migration": mig.filename}})
                return
            states = await migrate.status(conn, migrations, allow_newer=True)
        except migrate.MigrationError as exc:
            raise StartupError(str(exc)) from None
    pending = [s.migration.filename for s in states if s.applied_at is None]
    if pending:
        raise StartupError(
            f"database schema is behind ({', '.join(pending)} pending): "
            "run `netd migrate` or set database.migrate_on_start = true"
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
