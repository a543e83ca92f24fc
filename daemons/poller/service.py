"""The SNMP poller daemon: the targets this poller holds (its share among every live
poller: sharing.py) polled on their slots (schedule.py), at most ``poller.concurrency`` at
once, so a slow device never delays the others.

A poll reads the target's profiles (``policies/snmp``) with gufo-snmp, turns the varbinds
into samples (counter rates across polls), and publishes them: the latest per target in
Redis and at ``/snmp/metrics`` and ``/snmp`` (snmp_exporter's names and URL: web.py),
gauges and rates in PostgreSQL
(daily partitions, ``poller.retention_days``). An unreachable target backs off (its
interval doubles up to ``poller.max_backoff`` times) and emits one event when it starts
failing (``snmp.unreachable``: no answer, or an SNMPv3 refusal; ``snmp.error``: an answer
that is an error-status or does not decode) and ``snmp.reachable`` when it answers again.
Each target's status (up or down, the reason, the last poll's time, duration and
lateness) is kept in Redis beside its latest samples, for the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from prometheus_client import Counter

from daemons.core.http import HttpServer
from daemons.core.lifecycle import Context, Daemon
from daemons.core.listen import STORE_ERRORS, reload_on_notify
from daemons.core.policies import PolicySet
from daemons.core.ratelog import RateLimitedLog
from daemons.poller import engine, schedule, traps
from daemons.poller.client import PollError, Unreachable
from daemons.poller.collect import poll_once
from daemons.poller.exposition import SampleStore
from daemons.poller.metrics import PollerMetrics
from daemons.poller.profiles import Profile, load_profiles
from daemons.poller.sharing import Sharing
from daemons.poller.trapv3 import V3Receiver
from daemons.poller.web import Exporter
from daemons.store import snmp as store
from daemons.store.cache import pack
from daemons.store.events import append_event

log = logging.getLogger("netd.poller")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one poll went: reason "ok", or why it failed (PollError.reason)."""

    reason: str
    message: str
    varbinds: int = 0
    samples: int = 0


class _TrapProtocol(asyncio.DatagramProtocol):
    def __init__(self, service: PollerService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's UDPTransport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.service.on_trap(data, addr, self.transport)


class PollerService(Daemon):
    name: ClassVar[str] = "poller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = ctx.config.poller
        self.profiles: dict[str, Profile] = {}
        self._pending: dict[str, Profile] | None = None
        self.samples = SampleStore()
        self.metrics = PollerMetrics(ctx.registry)
        self.ratelog = RateLimitedLog(log)
        self._gate = asyncio.Semaphore(self.cfg.concurrency)
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._targets: dict[str, store.Target] = {}
        self._state: dict[str, engine.TargetState] = {}
        self._down: set[str] = set()
        self.status: dict[str, dict[str, Any]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._sharer: asyncio.Task[None] | None = None
        self._stopping = False
        self.sharing = Sharing(
            lambda: ctx.pool, ctx.config.instance, self.cfg.lease_ttl, self.cfg.sync_interval
        )
        self._polls = 0
        self._results: dict[str, set[str]] = {}  # poll results seen, by target (/metrics)
        self.exporter: HttpServer | None = None
        self.traps = Counter(
            "netd_snmp_traps_total",
            "notifications received, by result",
            ["result"],
            registry=ctx.registry,
        )
        self._trap_queue: asyncio.Queue[tuple[str, traps.Trap]] = asyncio.Queue(maxsize=10_000)
        self._trap_transport: asyncio.DatagramTransport | None = None
        self._trap_task: asyncio.Task[None] | None = None
        self._v3: V3Receiver | None = None
        self._v3_users: list[Any] = []
        self._engine_id: bytes | None = None
        self._trap_tokens = self.cfg.trap_rate
        self._trap_at = time.monotonic()
        if self.cfg.exporter_port:
            self.exporter = HttpServer(
                Exporter(self),
                self.cfg.exporter_host,
                self.cfg.exporter_port,
                ctx.config.lifecycle.drain_timeout,
            )

    # --- policies ---

    def check_policies(self, policies: PolicySet) -> None:
        """A broken policies/snmp file stops a start, and keeps the old set on SIGHUP."""
        self._pending = load_profiles(policies)

    def apply_policies(self, policies: PolicySet) -> None:
        self.profiles = self._pending if self._pending is not None else load_profiles(policies)
        self._pending = None

    # --- lifecycle ---

    async def start(self) -> None:
        if self.exporter is not None:
            await self.exporter.start()
        await store.ensure_partitions(self.ctx.pool, datetime.now(UTC), self.cfg.retention_days)
        await self.reload()
        await self._load_trap_users()
        loop = asyncio.get_running_loop()
        self._watch = loop.create_task(self._watch_targets())
        self._sharer = loop.create_task(self._share())
        if self.cfg.trap_port:
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _TrapProtocol(self), local_addr=(self.cfg.trap_host, self.cfg.trap_port)
                )
                self._trap_transport = transport
                self._trap_task = loop.create_task(self._record_traps())
            except OSError as exc:
                log.warning(
                    "SNMP trap port not bound; running without traps",
                    extra={"fields": {"port": self.cfg.trap_port, "error": str(exc)}},
                )

    def endpoints(self) -> dict[str, str]:
        if self.exporter is None:
            return {}
        return {
            "snmp_metrics": f"http://{self.cfg.exporter_host}:{self.cfg.exporter_port}/snmp/metrics"
        }

    def counters(self) -> dict[str, float]:
        return {
            "targets": len(self.sharing.held),
            "polls": self._polls,
            "down": len(self._down),
            "pollers": len(self.sharing.live),
        }

    def on_trap(self, data: bytes, addr: Any, transport: asyncio.DatagramTransport | None) -> None:
        """A datagram on the trap port: decoded, an inform acknowledged, queued for the
        events table (bounded: a flood is dropped and counted, never buffered without end)."""
        now = time.monotonic()
        self._trap_tokens = min(
            self.cfg.trap_rate, self._trap_tokens + (now - self._trap_at) * self.cfg.trap_rate
        )
        self._trap_at = now
        if self._trap_tokens < 1:
            self.traps.labels("rate").inc()
            return
        self._trap_tokens -= 1
        if traps.message_version(data) == 3:
            self._on_v3(data, addr, transport)
            return
        try:
            trap = traps.decode(data)
        except traps.TrapError as exc:
            self.traps.labels("malformed").inc()
            self.ratelog.log(
                logging.INFO, "trap-bad", "SNMP trap discarded", source=addr[0], reason=str(exc)
            )
            return
        if self.cfg.trap_communities and trap.community not in self.cfg.trap_communities:
            self.traps.labels("community").inc()
            self.ratelog.log(
                logging.INFO,
                "trap-community",
                "SNMP trap with an unknown community discarded",
                source=addr[0],
            )
            return
        if trap.response is not None and transport is not None:
            transport.sendto(trap.response, addr)
        self._queue_trap(str(addr[0]), trap)

    def _queue_trap(self, source: str, trap: traps.Trap) -> None:
        try:
            self._trap_queue.put_nowait((source, trap))
            self.traps.labels("accepted").inc()
        except asyncio.QueueFull:
            self.traps.labels("dropped").inc()

    def _on_v3(self, data: bytes, addr: Any, transport: asyncio.DatagramTransport | None) -> None:
        """SNMPv3: USM by pysnmp's engine, for the users of ``netd snmp trap-user``."""
        if self._v3 is None:
            refused = "user"
        else:
            got, replies, refused = self._v3.handle(data, (str(addr[0]), int(addr[1])))
            if transport is not None:
                for reply in replies:
                    transport.sendto(reply, addr)
            for trap in got:
                self._queue_trap(str(addr[0]), trap)
        if refused:
            self.traps.labels(f"v3-{refused}").inc()
            self.ratelog.log(
                logging.INFO,
                f"trap-v3-{refused}",
                "SNMPv3 trap discarded",
                source=addr[0],
                reason={
                    "user": "unknown user",
                    "level": "below the user's security level",
                    "usm": "authentication, privacy or time window failed",
                    "engines": "too many sender engine IDs",
                    "malformed": "not an SNMPv3 message",
                }.get(refused, refused),
            )

    async def _load_trap_users(self) -> None:
        users = await store.list_trap_users(self.ctx.pool, self.ctx.sealer)
        if users == self._v3_users and (self._v3 is not None or not users):
            return
        self._v3_users = users
        self._v3 = V3Receiver(users, self._engine_id, self.cfg.trap_v3_engines) if users else None
        if self._v3 is not None:
            self._engine_id = self._v3.engine_id  # informs keep finding us after a reload

    async def _record_traps(self) -> None:
        while True:
            source, trap = await self._trap_queue.get()
            try:
                await append_event(
                    self.ctx.pool,
                    "poller",
                    "snmp.trap",
                    subject=source,
                    data=trap.event(),
                    cache=self.ctx.cache,
                )
            except STORE_ERRORS as exc:
                self.ratelog.log(
                    logging.WARNING, "trap-store", "trap not recorded", error=repr(exc)
                )

    async def drain(self) -> None:
        if self._trap_transport is not None:
            self._trap_transport.close()
        tasks = [
            t
            for t in (self._watch, self._sharer, self._trap_task, *self._loops.values())
            if t is not None
        ]
        self._stopping = True
        # Cancelled again until done: on Python 3.11 asyncio.wait_for (gufo-snmp's receive
        # path) can swallow a cancellation that lands as its answer arrives, and a loop
        # that swallowed it polled on while drain awaited it (a SIGTERM with 500 targets
        # hung past the drain timeout).
        pending = set(tasks)
        for _ in range(100):
            for t in pending:
                t.cancel()
            _done, pending = await asyncio.wait(pending, timeout=0.1)
            if not pending:
                break
        if pending:
            log.warning("poll tasks still running at stop", extra={"fields": {"n": len(pending)}})
        try:  # the others take this poller's targets at their next sync
            await self.sharing.leave()
        except STORE_ERRORS as exc:
            log.warning("leases not released", extra={"fields": {"error": repr(exc)}})
        if self.exporter is not None:
            await self.exporter.stop()

    @property
    def targets(self) -> dict[str, store.Target]:
        """Every enabled target (those this poller holds among them)."""
        return self._targets

    def interval_of(self, t: store.Target) -> float:
        profiles = self._profiles_of(t)
        return float(t.interval or min((p.interval for p in profiles), default=60))

    # --- targets ---

    async def reload(self) -> None:
        """Every enabled target from PostgreSQL. A removed one stops here (its Redis keys
        go); a changed one held here starts again with its new settings."""
        targets = {
            t.name: t for t in await store.list_targets(self.ctx.pool, self.ctx.sealer) if t.enabled
        }
        for name in set(self._targets) - set(targets):
            self._drop(name)
            self.sharing.held.pop(name, None)
            with contextlib.suppress(*STORE_ERRORS):
                await self.ctx.cache.client.delete(
                    self.ctx.cache.key("snmp:" + name, "latest"),
                    self.ctx.cache.key("snmp:" + name, "status"),
                )
        for name, t in targets.items():
            if self._targets.get(name) not in (None, t) and name in self._loops:
                self._loops.pop(name).cancel()
                self._start(t, None)
        self._targets = targets

    async def _share(self) -> None:
        """Every poller.sync_interval: this poller's share of the targets (sharing.py);
        polls start for the targets claimed and stop for those lost."""
        while not self._stopping:
            try:
                claimed, lost = await self.sharing.sync(self._targets)
            except STORE_ERRORS as exc:
                self.ratelog.log(logging.WARNING, "leases", "leases not renewed", error=repr(exc))
            else:
                for name in lost:
                    self._drop(name)
                self.metrics.lost.inc(len(lost))
                for name, polled_at in claimed.items():
                    t = self._targets.get(name)
                    if t is not None and name not in self._loops:
                        self._start(t, polled_at)
                for name in set(self.sharing.held) - set(self._loops):  # none held idle
                    if name in self._targets:
                        self._start(self._targets[name], None)
                self.metrics.targets.set(len(self.sharing.held))
                self.metrics.pollers.set(len(self.sharing.live))
            await asyncio.sleep(self.cfg.sync_interval)

    def _start(self, t: store.Target, polled_at: datetime | None) -> None:
        self._state.setdefault(t.name, engine.TargetState())
        after = polled_at.timestamp() if polled_at is not None else 0.0
        self._loops[t.name] = asyncio.get_running_loop().create_task(self._loop(t, after))

    def _drop(self, name: str) -> None:
        """Stop polling a target (removed, disabled, or handed to another poller): its
        loop, state and every series of it here, on /snmp/metrics and /metrics."""
        loop = self._loops.pop(name, None)
        if loop is not None:
            loop.cancel()
        self.samples.forget(name)
        self._state.pop(name, None)
        self.status.pop(name, None)
        self._down.discard(name)
        for gauge in (
            self.metrics.up,
            self.metrics.duration,
            self.metrics.lateness,
            self.metrics.samples,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(name)
        for result in self._results.pop(name, set()):
            with contextlib.suppress(KeyError):
                self.metrics.polls.remove(name, result)

    async def _watch_targets(self) -> None:
        async def reload() -> None:
            await self.reload()
            await self._load_trap_users()
            await store.ensure_partitions(self.ctx.pool, datetime.now(UTC), self.cfg.retention_days)

        await reload_on_notify(
            self.ctx.pool,
            (store.NOTIFY, store.TRAP_USERS_NOTIFY),
            reload,
            60.0,
            self.ratelog,
            "targets not reloaded",
        )

    def _profiles_of(self, t: store.Target) -> list[Profile]:
        return [self.profiles[p] for p in t.profiles if p in self.profiles]

    async def _loop(self, t: store.Target, polled_at: float) -> None:
        """Poll one target while this poller holds it: at its slots (schedule.py: a fixed
        offset in its interval, whichever poller holds it), the first one after half an
        interval since the previous owner's last poll, backing off while it is down; a
        target handed over is released right after its poll."""
        interval = self.interval_of(t)
        due = schedule.next_slot(t.name, interval, max(time.time(), polled_at + interval / 2))
        failures = 0
        while not self._stopping:
            await asyncio.sleep(max(0.0, due - time.time()))
            if not self.sharing.valid(t.name):
                # The lease is not renewed (yet: a round late on a loaded machine, or
                # PostgreSQL out of reach): poll later in the slot if it is, else the next.
                if time.time() < due + interval / 2:
                    await asyncio.sleep(self.cfg.sync_interval / 2)
                else:
                    self.metrics.skipped.inc()
                    due = schedule.next_slot(t.name, interval, time.time())
                continue
            async with self._gate:
                started = time.time()
                late = max(0.0, started - due)
                self.metrics.lateness.labels(t.name).set(late)
                outcome = await self.poll(t, self._profiles_of(t))
                took = time.time() - started
                self.metrics.seconds.observe(took)
                self.metrics.duration.labels(t.name).set(took)
            ok = outcome.reason == "ok"
            failures = 0 if ok else failures + 1
            await self._set_status(t, outcome, took, late, failures)
            if t.name in self.sharing.handover:
                await self._hand_over(t.name, started)
                return
            backoff = min(2**failures, self.cfg.max_backoff) if failures else 1
            # the next slot, or later while it is down; never a burst of catch-ups
            due = schedule.next_slot(
                t.name, interval, max(due, time.time()) + interval * (backoff - 1)
            )

    async def _hand_over(self, name: str, polled: float) -> None:
        """Release a target another poller should hold, right after its poll."""
        try:
            await self.sharing.release(name, datetime.fromtimestamp(polled, UTC))
        except STORE_ERRORS as exc:  # the lease lapses on its own
            self.sharing.held.pop(name, None)
            self.ratelog.log(logging.WARNING, "release", "lease not released", error=repr(exc))
        self._loops.pop(name, None)  # this task ends here: nothing to cancel
        self._drop(name)
        self.metrics.handovers.inc()

    async def poll(self, t: store.Target, profiles: list[Profile]) -> Outcome:
        """One poll of one target."""
        self._polls += 1
        state = self._state.setdefault(t.name, engine.TargetState())
        try:
            polled = await poll_once(
                t.address,
                t.port,
                t.credentials,
                profiles,
                state,
                time.monotonic(),
                wait=self.cfg.timeout,
                retries=self.cfg.retries,
                rediscover=self.cfg.rediscover,
            )
        except PollError as exc:
            self.metrics.polls.labels(t.name, exc.reason).inc()
            self._results.setdefault(t.name, set()).add(exc.reason)
            # Its series leave /snmp/metrics (Prometheus marks them stale), as a failed
            # snmp_exporter scrape drops them: no last values that look current.
            self.samples.forget(t.name)
            if t.name not in self._down:
                self._down.add(t.name)
                kind = "snmp.unreachable" if isinstance(exc, Unreachable) else "snmp.error"
                await self._event(t, kind, "warning", {"reason": exc.reason, "error": str(exc)})
            return Outcome(exc.reason, str(exc))
        if t.name in self._down:
            self._down.discard(t.name)
            await self._event(t, "snmp.reachable", "info", {})
        got, samples = polled.values, polled.samples
        if polled.walked:
            self.metrics.walks.inc()
        self.samples.put(t.name, samples)
        self.metrics.polls.labels(t.name, "ok").inc()
        self._results.setdefault(t.name, set()).add("ok")
        self.metrics.samples.labels(t.name).inc(len(samples))
        now = datetime.now(UTC)
        try:
            await self.ctx.cache.client.set(
                self.ctx.cache.key("snmp:" + t.name, "latest"),
                store.latest_record(now.timestamp(), samples),
            )
            await store.write_poll(self.ctx.pool, now, t.name, samples)
        except STORE_ERRORS as exc:
            self.ratelog.log(
                logging.WARNING, "samples", "samples not stored", target=t.name, error=repr(exc)
            )
        return Outcome("ok", "", len(got), len(samples))

    async def _set_status(
        self, t: store.Target, outcome: Outcome, took: float, late: float, failures: int
    ) -> None:
        """The target's status, here (heartbeat counters) and in Redis (the API)."""
        now = time.time()
        previous = self.status.get(t.name, {})
        status = {
            "state": "up" if outcome.reason == "ok" else "down",
            "reason": outcome.reason,
            "message": outcome.message,
            "last_poll": now,
            "last_ok": now if outcome.reason == "ok" else previous.get("last_ok"),
            "duration": round(took, 6),
            "lateness": round(late, 6),
            "failures": failures,
            "varbinds": outcome.varbinds,
            "samples": outcome.samples,
        }
        self.status[t.name] = status
        self.metrics.up.labels(t.name).set(1 if outcome.reason == "ok" else 0)
        try:
            await self.ctx.cache.client.set(
                self.ctx.cache.key("snmp:" + t.name, "status"), pack(status)
            )
        except STORE_ERRORS as exc:
            self.ratelog.log(logging.WARNING, "status", "status not stored", error=repr(exc))

    async def _event(self, t: store.Target, kind: str, severity: Any, data: dict[str, Any]) -> None:
        try:
            await append_event(
                self.ctx.pool,
                "poller",
                kind,
                subject=t.name,
                severity=severity,
                data={"address": t.address, **data},
                cache=self.ctx.cache,
            )
        except STORE_ERRORS as exc:
            self.ratelog.log(logging.WARNING, "snmp-event", "event not recorded", error=repr(exc))
        log.log(
            logging.WARNING if kind == "snmp.unreachable" else logging.INFO,
            "target unreachable" if kind == "snmp.unreachable" else "target reachable again",
            extra={"fields": {"target": t.name, "address": t.address}},
        )
