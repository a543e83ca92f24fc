"""The VOLTHA daemon: for each configured stack, a northbound client of its core.

- **Inventory**: every ``voltha.sync_interval`` it reads ListDevices and each device's
  ListDevicePorts, diffs them against what PostgreSQL holds, and writes only what changed,
  with the state-change events, in one transaction (a sync cut short by the core going away
  writes nothing; the next one diffs against what was really written, so no event is raised
  twice or lost). It never consumes ReceiveChangeEvents: voltha-go allows one consumer per
  stream, and that is ONOS's.
- **Allow-list** (``voltha.allowlist``): an ONU whose serial no subscriber is bound to has
  its serial disabled on its PON port (VOLTHA auto-activates everything it discovers), and
  is enabled again once bound.
- **Subscriber service**: a bound ONU that is active gets its service provisioned through
  ONOS's olt app (the stack's ``onos_url``); ONOS reads the details from our SADIS
  (``voltha.sadis_port``). An unbound or deleted ONU's service is removed.
- **Optics and PON counters** every ``voltha.optics_interval`` through the extension API:
  metrics, the latest values in Redis, and alarms on ``voltha.onu_rx_low``/``onu_rx_high``.
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
from voltha_protos import extensions_pb2

from daemons.core.http import HttpServer
from daemons.core.lifecycle import Context, Daemon
from daemons.core.listen import STORE_ERRORS, reload_on_notify
from daemons.core.policies import PolicySet
from daemons.core.ratelog import RateLimitedLog
from daemons.store import voltha as store
from daemons.store.cache import pack
from daemons.voltha import firmware, inventory, policy
from daemons.voltha.client import VolthaClient, VolthaError
from daemons.voltha.inventory import Event, Snapshot
from daemons.voltha.onos import Onos, OnosError
from daemons.voltha.sadis import Sadis

log = logging.getLogger("netd.voltha")
OK = extensions_pb2.GetValueResponse.OK


@dataclass
class _Stack:
    name: str
    client: VolthaClient
    onos: Onos | None
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
            "ONOS olt app calls by result",
            ["stack", "action", "result"],
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

        async def ports(device_id: str) -> tuple[str, list[Any]]:
            async with gate:
                return device_id, await st.client.ports(device_id)

        got = dict(await asyncio.gather(*(ports(d.id) for d in devices)))
        snap = inventory.snapshot(st.name, devices, got)
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
        if st.onos is not None:
            await self._services(st)

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
            try:
                await st.client.onu_serial(True, a.olt_id, a.pon_port, a.serial)
            except VolthaError as exc:
                if exc.unavailable:
                    raise
                if exc.code == "NOT_FOUND":  # the ONU or its OLT is gone: nothing to enable
                    gone = Event(
                        "voltha.onu.allowed",
                        a.serial,
                        {"stack": st.name, "olt_id": a.olt_id, "device": "absent"},
                    )
                    await self._published(
                        await store.mark_enabled(self.ctx.pool, st.name, a.serial, gone)
                    )
                    continue
                self.ratelog.log(
                    logging.WARNING,
                    "allow",
                    "ONU serial not enabled",
                    serial=a.serial,
                    error=str(exc),
                )
                continue
            self.metrics.allowlist.labels(st.name, "allowed").inc()
            event = Event(
                "voltha.onu.allowed",
                a.serial,
                {
                    "stack": st.name,
                    "olt_id": a.olt_id,
                    "pon_port": a.pon_port,
                    "subscriber": bound[a.serial].subscriber,
                },
            )
            await self._published(await store.mark_enabled(self.ctx.pool, st.name, a.serial, event))

    # --- subscriber service through ONOS ---

    async def _services(self, st: _Stack) -> None:
        assert st.onos is not None
        bound = await store.bindings(self.ctx.pool)
        have = await store.services(self.ctx.pool, st.name)
        onus = {r.serial: r for r in st.snap.devices.values() if r.kind == "onu" and r.serial}
        want = {
            (s, b.uni): (b.s_tag, b.c_tag, b.tp_id)
            for s, b in bound.items()
            if s in onus and onus[s].admin_state == "ENABLED" and onus[s].oper_status == "ACTIVE"
        }
        keep = {(s, b.uni): (b.s_tag, b.c_tag, b.tp_id) for s, b in bound.items() if s in onus}
        calls = [
            ("remove", serial, uni, tags)
            for (serial, uni), tags in have.items()
            if keep.get((serial, uni)) != tags
        ] + [
            ("provision", serial, uni, tags)
            for (serial, uni), tags in want.items()
            if have.get((serial, uni)) != tags
        ]
        for action, serial, uni, tags in calls:
            if not await self._onos(st, action, serial, uni, tags):
                # ONOS does not answer: the rest wait for the next sync, so that a hung ONOS
                # holds this stack's sync for one deadline, not one per pending service.
                return

    async def _onos(
        self, st: _Stack, action: str, serial: str, uni: int, tags: tuple[int, int, int]
    ) -> bool:
        """One provision or removal; False if ONOS did not answer (refused, timed out)."""
        assert st.onos is not None
        port = f"{serial}-{uni}"
        call = st.onos.provision if action == "provision" else st.onos.remove
        try:
            await call(port, *tags)
        except OnosError as exc:
            result = "unavailable" if exc.unavailable else "error"
            self.metrics.services.labels(st.name, action, result).inc()
            self.ratelog.log(
                logging.WARNING,
                f"onos-{action}",
                f"ONOS {action} failed",
                port=port,
                error=str(exc),
            )
            return not exc.unavailable
        self.metrics.services.labels(st.name, action, "ok").inc()
        data = {
            "stack": st.name,
            "port": port,
            "s_tag": tags[0],
            "c_tag": tags[1],
            "tp_id": tags[2],
        }
        kind = "voltha.service.provisioned" if action == "provision" else "voltha.service.removed"
        written = await store.set_service(
            self.ctx.pool,
            st.name,
            serial,
            uni,
            tags if action == "provision" else None,
            Event(kind, port, data),
        )
        await self._published(written)
        return True

    # --- optics ---

    async def _optics_loop(self, st: _Stack) -> None:
        while True:
            await asyncio.sleep(self.cfg.optics_interval)
            if not st.up:
                continue
            try:
                await self.read_optics(st)
            except VolthaError as exc:
                self.ratelog.log(
                    logging.WARNING, "optics", "optics not read", stack=st.name, error=str(exc)
                )
            except STORE_ERRORS as exc:
                self.ratelog.log(
                    logging.WARNING, "optics-store", "optics not stored", error=repr(exc)
                )

    async def read_optics(self, st: _Stack) -> None:
        """Optics and PON counters of every active ONU and every OLT PON port; alarms."""
        olts = {r.id: r for r in st.snap.devices.values() if r.kind == "olt"}
        onus = [
            r
            for r in st.snap.devices.values()
            if r.kind == "onu" and r.oper_status == "ACTIVE" and r.parent_id in olts
        ]
        active = await store.active_alarms(self.ctx.pool, st.name)
        gate = asyncio.Semaphore(self.cfg.optics_concurrency)
        labels: set[tuple[str, ...]] = set()

        def failed(what: str, exc: VolthaError) -> None:
            """One device's read failed: the others go on (a core that is away stops
            the pass)."""
            if exc.unavailable:
                raise exc
            self.metrics.optics_errors.labels(st.name).inc()
            self.ratelog.log(
                logging.INFO, "optics-" + what, "optics not read", device=what, error=str(exc)
            )

        async def onu(row: inventory.DeviceRow) -> None:
            async with gate:
                try:
                    await self._onu_optics(st, row, olts[row.parent_id], active, labels)
                except VolthaError as exc:
                    failed(row.serial, exc)

        async def pon(olt: inventory.DeviceRow, port: inventory.PortRow) -> None:
            async with gate:
                try:
                    got = await st.client.ext_value(
                        olt.id,
                        extensions_pb2.GetValueRequest(
                            # portInfo is a oneof: the label ("pon-0"), as voltctl sends
                            oltPonStats=extensions_pb2.GetPonStatsRequest(portLabel=port.label)
                        ),
                    )
                except VolthaError as exc:
                    failed(f"{olt.serial}/{port.label}", exc)
                    return
                if got.status != OK:
                    self.metrics.optics_errors.labels(st.name).inc()
                    return
                for fd, value in got.oltPonStatsResponse.portStatistics.ListFields():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        self.metrics.pon_stats.labels(st.name, olt.serial, port.label, fd.name).set(
                            value
                        )

        pons = [
            (olts[p.device_id], p)
            for p in st.snap.ports.values()
            if p.type == "PON_OLT" and p.device_id in olts
        ]
        await asyncio.gather(*(onu(r) for r in onus), *(pon(o, p) for o, p in pons))
        for stale in st.optics_labels - labels:
            with contextlib.suppress(KeyError):
                self.metrics.optics.remove(*stale)
        st.optics_labels = labels

    async def _onu_optics(
        self,
        st: _Stack,
        row: inventory.DeviceRow,
        olt: inventory.DeviceRow,
        active: dict[tuple[str, str], float | None],
        labels: set[tuple[str, ...]],
    ) -> None:
        values: dict[str, float] = {}
        pon_port = st.snap.ports.get((olt.id, row.pon_port))
        pon_label = pon_port.label if pon_port else ""
        got = await st.client.ext_value(
            row.id,
            extensions_pb2.GetValueRequest(onuOpticalInfo=extensions_pb2.GetOnuPonOpticalInfo()),
        )
        if got.status == OK:
            info = got.onuOpticalInfo
            values.update(
                rx_dbm=info.receivedOpticalPower,
                tx_dbm=info.meanOpticalLaunchPower,
                temperature_c=info.temperature,
                voltage_v=info.powerFeedVoltage,
                bias_ma=info.laserBiasCurrent,
            )
        got = await st.client.ext_value(
            olt.id,
            extensions_pb2.GetValueRequest(
                oltRxPower=extensions_pb2.GetOltRxPowerRequest(
                    port_label=pon_label, onu_sn=row.serial
                )
            ),
        )
        if got.status == OK:
            for rx in got.oltRxPower.rx_power:
                failed = rx.status.lower() == "fail" or rx.fail_reason not in (
                    "",
                    "FAIL_REASON_NONE",
                )
                if rx.onu_sn == row.serial and not failed:
                    values["olt_rx_dbm"] = rx.rx_power
        got = await st.client.ext_value(
            olt.id,
            extensions_pb2.GetValueRequest(
                onuPonInfo=extensions_pb2.GetOnuCountersRequest(
                    intf_id=row.pon_port & 0x0FFFFFFF, onu_id=row.onu_id
                )
            ),
        )
        counters: dict[str, int] = {}
        if got.status == OK:
            for fd, value in got.onuPonCounters.ListFields():
                if fd.name not in ("intf_id", "onu_id", "timestamp") and isinstance(value, int):
                    counters[fd.name] = value
                    self.metrics.onu_counters.labels(st.name, row.serial, fd.name).set(value)
        pon = str(row.pon_port)
        for name, value in values.items():
            if name == "olt_rx_dbm":
                self.metrics.olt_rx.labels(st.name, row.serial, olt.serial, pon).set(value)
            else:
                key = (st.name, row.serial, olt.serial, pon, name)
                self.metrics.optics.labels(*key).set(value)
                labels.add(key)
        await self.ctx.cache.client.set(
            self.ctx.cache.key("voltha:" + row.serial, "optics"),
            pack(
                {
                    "ts": time.time(),
                    "stack": st.name,
                    "device_id": row.id,
                    "values": values,
                    "counters": counters,
                }
            ),
        )
        for source, level in (
            ("onu_rx", values.get("rx_dbm")),
            ("olt_rx", values.get("olt_rx_dbm")),
        ):
            if level is None:
                continue
            for side in ("low", "high"):
                name = f"{source}_{side}"
                change = policy.alarm(
                    level,
                    (row.id, name) in active,
                    self.cfg.onu_rx_low,
                    self.cfg.onu_rx_high,
                    self.cfg.alarm_hysteresis,
                    name,
                )
                if change is None:
                    continue
                _, raised = change
                threshold = self.cfg.onu_rx_low if side == "low" else self.cfg.onu_rx_high
                event = Event(
                    "voltha.alarm.raised" if raised else "voltha.alarm.cleared",
                    row.serial,
                    {
                        "stack": st.name,
                        "device_id": row.id,
                        "alarm": name,
                        "dbm": level,
                        "threshold": threshold,
                        "olt": olt.serial,
                        "pon_port": row.pon_port,
                    },
                    "warning" if raised else "info",
                )
                if raised:
                    self.metrics.alarms.labels(st.name, name).inc()
                written = await store.set_alarm(
                    self.ctx.pool, st.name, row.id, name, row.serial, level, raised, event
                )
                await self._published(written)

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
