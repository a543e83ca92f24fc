"""Optics and PON counters, every ``voltha.optics_interval``, through the extension API as
voltctl reads them (``extension.Extension/GetExtValue``): ``onuOpticalInfo`` from each
active ONU, ``oltRxPower`` and ``onuPonInfo`` from its OLT, ``oltPonStats`` for each PON
port. Metrics, the latest values in Redis, and alarms on ``voltha.onu_rx_low``/``high``.

openolt reads a port label by splitting it at "-" and taking the second part without a
check, in a process with no panic recovery (voltha-openolt-adapter device_handler.go
``getPONRxPower``, ``getPonPortStats``): a label without a "-", an empty one above all,
kills the adapter. A label is sent only as VOLTHA reported it for the port, never guessed or
empty: an ONU whose PON port is not in the inventory has no OLT receive power read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
from voltha_protos import extensions_pb2

from daemons.core.ratelog import RateLimitedLog
from daemons.store import voltha as store
from daemons.store.cache import Cache, pack
from daemons.voltha import policy
from daemons.voltha.client import VolthaClient, VolthaError
from daemons.voltha.inventory import DeviceRow, Event, PortRow, Snapshot

OK = extensions_pb2.GetValueResponse.OK
_LABEL = re.compile(r"^[A-Za-z]+-[0-9]+$")


class StackView(Protocol):
    name: str
    client: VolthaClient
    snap: Snapshot
    optics_labels: set[tuple[str, ...]]


def usable_label(label: str) -> bool:
    """A port label openolt can take: ``<type>-<number>`` as it names ports (``pon-0``)."""
    return bool(_LABEL.match(label))


class Optics:
    """Reads one pass of optics and counters for a stack (``read_optics``)."""

    def __init__(
        self,
        cfg: Any,
        pool: asyncpg.Pool,
        cache: Cache,
        metrics: Any,
        published: Callable[[list[tuple[int, Event]]], Awaitable[None]],
        ratelog: RateLimitedLog,
    ) -> None:
        self.cfg = cfg
        self.pool = pool
        self.cache = cache
        self.metrics = metrics
        self._published = published
        self.ratelog = ratelog

    async def read_optics(self, st: StackView) -> None:
        """Optics and PON counters of every active ONU and every OLT PON port; alarms."""
        olts = {r.id: r for r in st.snap.devices.values() if r.kind == "olt"}
        onus = [
            r
            for r in st.snap.devices.values()
            if r.kind == "onu" and r.oper_status == "ACTIVE" and r.parent_id in olts
        ]
        active = await store.active_alarms(self.pool, st.name)
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

        async def onu(row: DeviceRow) -> None:
            async with gate:
                try:
                    await self._onu_optics(st, row, olts[row.parent_id], active, labels)
                except VolthaError as exc:
                    failed(row.serial, exc)

        async def pon(olt: DeviceRow, port: PortRow) -> None:
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
            if p.type == "PON_OLT" and p.device_id in olts and usable_label(p.label)
        ]
        await asyncio.gather(*(onu(r) for r in onus), *(pon(o, p) for o, p in pons))
        for stale in st.optics_labels - labels:
            with contextlib.suppress(KeyError):
                self.metrics.optics.remove(*stale)
        st.optics_labels = labels

    async def _onu_optics(
        self,
        st: StackView,
        row: DeviceRow,
        olt: DeviceRow,
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
        got = None
        if usable_label(pon_label):
            got = await st.client.ext_value(
                olt.id,
                extensions_pb2.GetValueRequest(
                    oltRxPower=extensions_pb2.GetOltRxPowerRequest(
                        port_label=pon_label, onu_sn=row.serial
                    )
                ),
            )
        else:
            self.metrics.optics_errors.labels(st.name).inc()
            self.ratelog.log(
                logging.INFO,
                "optics-label-" + row.serial,
                "OLT receive power not read: the ONU's PON port is not known",
                serial=row.serial,
                pon_port=row.pon_port,
            )
        if got is not None and got.status == OK:
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
        await self.cache.client.set(
            self.cache.key("voltha:" + row.serial, "optics"),
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
                    self.pool, st.name, row.id, name, row.serial, level, raised, event
                )
                await self._published(written)
