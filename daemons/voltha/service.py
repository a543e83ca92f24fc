"""The VOLTHA daemon: for each configured stack, a northbound client of its core.

- **Inventory**: every ``voltha.sync_interval`` it reads ListDevices and each device's
  ListDevicePorts, diffs them against what PostgreSQL holds, and writes only what changed,
  with the state-change events, in one transaction (a sync cut short by the core going away
  writes nothing; the next one diffs against what was really written, so no event is raised
  twice or lost). It never consumes ReceiveChangeEvents: voltha-go allows one consumer per
  stream, and that is ONOS's.
  An ONU device deleted between ListDevices and its ListDevicePorts (voltha-go deletes them
  one at a time after an OLT reboot) is taken as gone, not as a failed sync.
- **Allow-list** (``voltha.allowlist``): an enabled ONU whose serial no subscriber is bound
  to has its serial disabled on its PON port (VOLTHA activates everything it discovers, and
  an OLT reboot brings ONUs back as new, enabled devices), and a serial we disabled is
  enabled again once bound and its device is there (``policy.allowlist``).
- **Subscriber service** (``provision.py``): reconciled with ONOS's olt app every sync (the
  stack's ``onos_url``); ONOS reads the details from our SADIS (``voltha.sadis_port``).
- **Optics and PON counters** every ``voltha.optics_interval`` (``optics.py``).
- **Firmware jobs** created through the API or CLI run here (``firmware.py``).
A core that is away is retried with backoff (1 s doubling up to the sync interval);
``voltha.unreachable`` is raised once, ``voltha.reachable`` when it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from prometheus_client import Counter, Gauge, Histogram

from daemons.core.http import HttpServer
from daemons.core.lifecycle import Context, Daemon
from daemons.core.listen import STORE_ERRORS, reload_on_notify
from daemons.core.policies import PolicySet
from daemons.core.ratelog import RateLimitedLog
from daemons.store import voltha as store
from daemons.voltha import firmware, inventory, policy
from daemons.voltha.client import VolthaClient, VolthaError
from daemons.voltha.inventory import Event, Snapshot
from daemons.voltha.onos import Onos
from daemons.voltha.optics import Optics
from daemons.voltha.provision import Provisioner
from daemons.voltha.sadis import Sadis

log = logging.getLogger("netd.voltha")


@dataclass
class _Stack:
    name: str
    client: VolthaClient
    onos: Onos | None
    services: Provisioner | None = None
    snap: Snapshot = field(default_factory=Snapshot)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    up: bool | None = None
    optics_labels: set[tuple[str, ...]] = field(default_factory=set)
    device_labels: set[tuple[str, str]] = field(default_factory=set)


class _Metrics:
    def __init__(self, registry: Any) -> None:
        self.syncs = Counter(
            "netd_voltha_syncs_total", "inventory syncs", ["stack", "result"], registry=registry
        )
        self.sync_seconds = Histogram(
            "netd_voltha_sync_seconds", "time one sync took", ["stack"], registry=registry
        )
        self.up = Gauge(
            "netd_voltha_up", "1 if the core answered the last sync", ["stack"], registry=registry
        )
        self.devices = Gauge(
            "netd_voltha_devices",
            "devices by kind and oper status",
            ["stack", "kind", "oper_status"],
            registry=registry,
        )
        self.optics = Gauge(
            "netd_voltha_onu_optics",
            "ONU optics: rx_dbm, tx_dbm, temperature_c, voltage_v, bias_ma",
            ["stack", "serial", "olt", "pon", "value"],
            registry=registry,
        )
        self.olt_rx = Gauge(
            "netd_voltha_olt_rx_power_dbm",
            "receive power at the OLT from an ONU",
            ["stack", "serial", "olt", "pon"],
            registry=registry,
        )
        self.onu_counters = Gauge(
            "netd_voltha_onu_pon_counter",
            "an ONU's PON counters as the OLT reports them",
            ["stack", "serial", "counter"],
            registry=registry,
        )
        self.pon_stats = Gauge(
            "netd_voltha_pon_port_stat",
            "an OLT PON port's statistics",
            ["stack", "olt", "port", "stat"],
            registry=registry,
        )
        self.optics_errors = Counter(
            "netd_voltha_optics_errors_total",
            "optics and counter reads refused by the core or the adapter",
            ["stack"],
            registry=registry,
        )
        self.alarms = Counter(
            "netd_voltha_alarms_total",
            "optics alarms raised",
            ["stack", "alarm"],
            registry=registry,
        )
        self.allowlist = Counter(
            "netd_voltha_allowlist_total",
            "serials disabled (refused) and enabled (allowed)",
            ["stack", "action"],
            registry=registry,
        )
        self.services = Counter(
            "netd_voltha_onos_calls_total",
            "ONOS olt app calls by action (provision, remove, programmed) and result",
            ["stack", "action", "result"],
            registry=registry,
        )
        self.corrections = Counter(
            "netd_voltha_service_corrections_total",
            "services ONOS had lost provisioned again, stale ones removed, found ones recorded",
            ["stack", "action"],
            registry=registry,
        )


class VolthaService(Daemon):
    name: ClassVar[str] = "voltha"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = ctx.config.voltha
        self.metrics = _Metrics(ctx.registry)
        self.ratelog = RateLimitedLog(log)
        self.policies: PolicySet = ctx.policies
        self.stacks: dict[str, _Stack] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: dict[int, asyncio.Task[None]] = {}
        self.sadis: HttpServer | None = None
        self.optics = Optics(
            self.cfg, ctx.pool, ctx.cache, self.metrics, self._published, self.ratelog
        )
        self._resumed = False
        self._onos_passwords: dict[str, str] = {}
        for name, cfg in self.cfg.stacks.items():
            password = "rocks"  # noqa: S105 (ONOS's own default, used when none is given)
            if cfg.onos_password_file:
                password = Path(cfg.onos_password_file).read_text().strip()
            self._onos_passwords[name] = password
        if self.cfg.sadis_port:
            self.sadis = HttpServer(
                Sadis(ctx.pool, lambda: self.policies, self.cfg.sadis_allow),
                self.cfg.sadis_host,
                self.cfg.sadis_port,
                ctx.config.lifecycle.drain_timeout,
            )

    def apply_policies(self, policies: PolicySet) -> None:
        self.policies = policies

    # --- lifecycle ---

    async def start(self) -> None:
        if self.sadis is not None:
            await self.sadis.start()
        loop = asyncio.get_running_loop()
        for name, cfg in self.cfg.stacks.items():
            onos = None
            if cfg.onos_url:
                onos = Onos(cfg.onos_url, cfg.onos_user, self._onos_passwords[name], cfg.deadline)
            st = _Stack(name, VolthaClient(name, cfg), onos)
            if onos is not None:
                st.services = Provisioner(
                    name,
                    onos,
                    self.ctx.pool,
                    self.cfg.onos_settle,
                    self.metrics.services,
                    self.metrics.corrections,
                    self._published,
                    self.ratelog,
                )
            st.snap = await store.load_snapshot(self.ctx.pool, name)
            self.stacks[name] = st
            self._tasks.append(loop.create_task(self._sync_loop(st)))
            self._tasks.append(loop.create_task(self._optics_loop(st)))
        if self.stacks:
            self._tasks.append(loop.create_task(self._watch()))

    async def drain(self) -> None:
        tasks = [*self._tasks, *self._jobs.values()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for st in self.stacks.values():
            await st.client.close()
            if st.onos is not None:
                await st.onos.close()
        if self.sadis is not None:
            await self.sadis.stop()

    def endpoints(self) -> dict[str, str]:
        if self.sadis is None:
            return {}
        return {"sadis": f"http://{self.cfg.sadis_host}:{self.cfg.sadis_port}/subscribers/"}

    def counters(self) -> dict[str, float]:
        return {
            "stacks": len(self.stacks),
            "stacks_up": sum(1 for s in self.stacks.values() if s.up),
            "devices": sum(len(s.snap.devices) for s in self.stacks.values()),
            "firmware_jobs": len(self._jobs),
        }

    async def _published(self, written: list[tuple[int, Event]]) -> None:
        await store.publish(self.ctx.cache, "voltha", written)

    async def _event(self, e: Event) -> None:
        try:
            await self._published(await store.record_events(self.ctx.pool, [e]))
        except STORE_ERRORS as exc:
            self.ratelog.log(logging.WARNING, "voltha-event", "event not recorded", error=repr(exc))

    # --- inventory ---

    async def _sync_loop(self, st: _Stack) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await self.sync(st)
                result = "ok"
                failures = 0
                if st.up is False:
                    await self._event(Event("voltha.reachable", st.name, {"stack": st.name}))
                    log.info("VOLTHA core answers again", extra={"fields": {"stack": st.name}})
                st.up = True
            except VolthaError as exc:
                result = "unavailable" if exc.unavailable else "error"
                failures += 1
                if st.up is not False:
                    st.up = False
                    await self._event(
                        Event(
                            "voltha.unreachable",
                            st.name,
                            {"stack": st.name, "code": exc.code, "error": exc.details},
                            "warning",
                        )
                    )
                    log.warning(
                        "VOLTHA core unreachable",
                        extra={"fields": {"stack": st.name, "code": exc.code}},
                    )
            except STORE_ERRORS as exc:
                result = "store"
                self.ratelog.log(
                    logging.WARNING, "voltha-sync", "sync not written", error=repr(exc)
                )
            self.metrics.syncs.labels(st.name, result).inc()
            self.metrics.sync_seconds.labels(st.name).observe(time.monotonic() - started)
            self.metrics.up.labels(st.name).set(1 if st.up else 0)
            delay = self.cfg.sync_interval
            if failures:
                delay = min(delay, 0.5 * 2**failures)
            st.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(st.wake.wait(), delay)

    async def sync(self, st: _Stack) -> None:
        """One inventory sync of a stack, then the allow-list and services. Raises
        VolthaError (nothing written) or a store error."""
        devices = await st.client.devices()
        gate = asyncio.Semaphore(8)

        async def ports(device_id: str) -> tuple[str, list[Any] | None]:
            async with gate:
                try:
                    return device_id, await st.client.ports(device_id)
                except VolthaError as exc:
                    if exc.code != "NOT_FOUND":
                        raise
                    # Deleted since ListDevices (voltha-go manager_nbi.go ListDevicePorts:
                    # NotFound "device-<id>"): it is gone, the rest of the tree is not.
                    return device_id, None

        got = dict(await asyncio.gather(*(ports(d.id) for d in devices)))
        devices = [d for d in devices if got.get(d.id) is not None]
        snap = inventory.snapshot(st.name, devices, {k: v for k, v in got.items() if v})
        changes = inventory.diff(st.snap, snap)
        if changes:
            written = await store.apply(self.ctx.pool, st.name, changes)
            st.snap = snap
            await self._published(written)
        counts: dict[tuple[str, str], int] = {}
        for row in snap.devices.values():
            counts[(row.kind, row.oper_status)] = counts.get((row.kind, row.oper_status), 0) + 1
        for kind, oper in st.device_labels - counts.keys():  # this stack's only
            with contextlib.suppress(KeyError):
                self.metrics.devices.remove(st.name, kind, oper)
        for (kind, oper), n in counts.items():
            self.metrics.devices.labels(st.name, kind, oper).set(n)
        st.device_labels = set(counts)
        if self.cfg.allowlist:
            await self._allowlist(st)
        if st.services is not None:
            await st.services.run(st.snap, self.policies)

    async def _watch(self) -> None:
        """A binding changed, or a firmware job was created: act now, not at the next tick."""

        async def changed() -> None:
            for st in self.stacks.values():
                st.wake.set()
            await self._claim_jobs()

        await reload_on_notify(
            self.ctx.pool,
            (store.BINDINGS_NOTIFY, store.FIRMWARE_NOTIFY),
            changed,
            30.0,
            self.ratelog,
            "bindings and jobs not reloaded",
        )

    # --- allow-list ---

    async def _allowlist(self, st: _Stack) -> None:
        bound = await store.bindings(self.ctx.pool)
        disabled = await store.disabled_onus(self.ctx.pool, st.name)
        refuse, allow = policy.allowlist(st.snap.devices.values(), bound, disabled)
        for r in refuse:
            try:
                await st.client.onu_serial(False, r.olt_id, r.pon_port, r.serial)
            except VolthaError as exc:
                if exc.unavailable:
                    raise
                self.ratelog.log(
                    logging.WARNING,
                    "refuse",
                    "ONU serial not disabled",
                    serial=r.serial,
                    error=str(exc),
                )
                continue
            self.metrics.allowlist.labels(st.name, "refused").inc()
            event = Event(
                "voltha.onu.refused",
                r.serial,
                {
                    "stack": st.name,
                    "olt_id": r.olt_id,
                    "pon_port": r.pon_port,
                    "device_id": r.device_id,
                    "why": "no subscriber is bound to this serial",
                },
                "warning",
            )
            await self._published(
                await store.mark_disabled(
                    self.ctx.pool, st.name, r.serial, r.olt_id, r.pon_port, event
                )
            )
        for a in allow:
            if a.call:
                try:
                    await st.client.onu_serial(True, a.olt_id, a.pon_port, a.serial)
                except VolthaError as exc:
                    if exc.unavailable:
                        raise
                    # NOT_FOUND: the device went since the sync read it. Nothing is enabled
                    # by that: the record stays, and the next sync looks again.
                    self.ratelog.log(
                        logging.WARNING,
                        "allow",
                        "ONU serial not enabled",
                        serial=a.serial,
                        error=str(exc),
                    )
                    continue
            self.metrics.allowlist.labels(st.name, "allowed").inc()
            key = policy.serial_key(a.serial)
            event = Event(
                "voltha.onu.allowed",
                a.serial,
                {
                    "stack": st.name,
                    "olt_id": a.olt_id,
                    "pon_port": a.pon_port,
                    "device_id": a.device_id,
                    "subscriber": next(
                        (b.subscriber for s, b in bound.items() if policy.serial_key(s) == key),
                        "",
                    ),
                    "enabled": "by netd" if a.call else "already (a new device)",
                },
            )
            await self._published(await store.mark_enabled(self.ctx.pool, st.name, a.serial, event))

    # --- optics ---

    async def _optics_loop(self, st: _Stack) -> None:
        while True:
            await asyncio.sleep(self.cfg.optics_interval)
            if not st.up:
                continue
            try:
                await self.optics.read_optics(st)
            except VolthaError as exc:
                self.ratelog.log(
                    logging.WARNING, "optics", "optics not read", stack=st.name, error=str(exc)
                )
            except STORE_ERRORS as exc:
                self.ratelog.log(
                    logging.WARNING, "optics-store", "optics not stored", error=repr(exc)
                )

    # --- firmware ---

    async def _claim_jobs(self) -> None:
        stacks = list(self.stacks)
        jobs = await store.claim_jobs(self.ctx.pool, stacks)
        if not self._resumed:
            self._resumed = True
            jobs += [
                j
                for j in await store.running_jobs(self.ctx.pool, stacks)
                if j.id not in {x.id for x in jobs}
            ]
        for job in jobs:
            if job.id in self._jobs or job.stack not in self.stacks:
                continue
            self._jobs[job.id] = asyncio.get_running_loop().create_task(self._run_job(job))

    async def _run_job(self, job: store.FirmwareJob) -> None:
        try:
            state = await firmware.run_job(
                self.stacks[job.stack].client,
                self.ctx.pool,
                job,
                self.cfg.firmware_step_timeout,
                self.cfg.firmware_poll,
                self._published,
            )
            log.info("firmware job ended", extra={"fields": {"job": job.id, "state": state}})
        except STORE_ERRORS as exc:
            self.ratelog.log(
                logging.WARNING, "firmware", "firmware job interrupted", job=job.id, error=repr(exc)
            )
        finally:
            self._jobs.pop(job.id, None)
