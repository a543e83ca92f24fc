"""Subscriber services through ONOS's olt app, reconciled every sync: what netd wants for
each bound ONU's UNI ports, what it recorded (``voltha_onos_services``, which SADIS serves while
ONOS holds it) and what ONOS's ``programmed-subscribers`` shows (``reconcile.plan`` decides;
this carries it out).

ONOS's answers prove little (opencord/olt ``OltWebResource``): 200 is "taken in", 204 is
"did nothing" both when the service is there already and when SADIS describes no such
service. So a 204 is checked against ``programmed-subscribers`` at the port's location: a
removal ONOS answered 204 while it still shows the service failed (SADIS and ONOS disagree on
the entry), a provisioning ONOS answered 204 that it does not show failed. Whatever is still
wrong is found and tried again at the next sync; each correction of ONOS's state (a service
missing after an OLT reboot provisioned again, a stale one removed) raises
``voltha.service.corrected``.

When ONOS does not answer, the rest of that sync's ONOS work waits for the next sync: a hung
ONOS holds a stack's sync for one deadline, never the other stacks.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
from prometheus_client import Counter

from daemons.core.policies import PolicySet
from daemons.core.ratelog import RateLimitedLog
from daemons.store import api as api_store
from daemons.store import voltha as store
from daemons.voltha import reconcile
from daemons.voltha.entries import TagKey, plan_rates, service_entry, tag_key
from daemons.voltha.inventory import Event, Snapshot
from daemons.voltha.onos import Onos, OnosError
from daemons.voltha.policy import serial_key

log = logging.getLogger("netd.voltha")
Published = Callable[[list[tuple[int, Event]]], Awaitable[None]]


class _Stop(Exception):
    """ONOS did not answer: the rest waits for the next sync."""


class Provisioner:
    """One stack's services in its ONOS."""

    def __init__(
        self,
        stack: str,
        onos: Onos,
        pool: asyncpg.Pool,
        settle: float,
        calls: Counter,
        corrections: Counter,
        published: Published,
        ratelog: RateLimitedLog,
    ) -> None:
        self.stack = stack
        self.onos = onos
        self.pool = pool
        self.settle = settle
        self.calls = calls
        self.corrections = corrections
        self.published = published
        self.ratelog = ratelog
        self._removed: dict[tuple[str, TagKey], float] = {}  # (location, key) -> when

    def _settling(self, location: str, key: TagKey) -> bool:
        when = self._removed.get((location, key))
        return when is not None and time.monotonic() - when < self.settle

    async def run(self, snap: Snapshot, policies: PolicySet) -> None:
        """One reconciliation pass over every bound ONU's UNI ports."""
        now = time.monotonic()
        self._removed = {k: t for k, t in self._removed.items() if now - t < self.settle}
        wanted = await store.wanted(self.pool)
        rates = plan_rates(policies, await api_store.list_plans(self.pool))
        wants: dict[reconcile.Key, reconcile.Want] = {}
        for serial, w in wanted.items():
            if not w.active:
                continue
            b = w.binding
            if w.plan not in rates:
                self.ratelog.log(
                    logging.WARNING,
                    f"plan-{w.plan}",
                    "subscriber's plan has no rates; its ONU gets the Default profile",
                    subscriber=b.subscriber,
                    plan=w.plan,
                )
            entry = service_entry(
                b.s_tag, b.c_tag, b.tp_id, w.plan, rates.get(w.plan, (None, None))
            )
            wants[(serial_key(serial), b.uni)] = reconcile.Want(b.subscriber, w.plan, entry)
        rows = await store.services(self.pool, self.stack)
        try:
            programmed = await self.onos.programmed()
        except OnosError as exc:
            with contextlib.suppress(_Stop):
                self._failed("programmed", exc)
            return
        self.calls.labels(self.stack, "programmed", "ok").inc()
        present = [
            serial_key(r.serial) for r in snap.devices.values() if r.kind == "onu" and r.serial
        ]
        plans = reconcile.plan(
            self.stack,
            reconcile.ports(snap),
            present,
            wants,
            rows,
            programmed,
            self.settle,
            self._settling,
        )
        try:
            for p in plans:
                await self._port(p)
        except _Stop:
            return

    def _failed(self, action: str, exc: OnosError, **fields: Any) -> None:
        result = "unavailable" if exc.unavailable else "error"
        self.calls.labels(self.stack, action, result).inc()
        self.ratelog.log(
            logging.WARNING, f"onos-{action}", f"ONOS {action} failed", error=str(exc), **fields
        )
        if exc.unavailable:
            raise _Stop from None

    async def _port(self, p: reconcile.PortPlan) -> None:
        ok = True
        for step in p.steps:
            if step.kind == "provision" and not ok:
                return  # SADIS still serves what could not be removed: not the new one yet
            if step.kind == "record":
                await self._written(store.record_service(self.pool, self.stack, step.row))
                if step.event is not None:
                    await self._event_done(step.event)
            elif step.kind == "forget":
                await self._forgotten(step.row, step.event)
            elif step.kind == "remove":
                ok = await self._remove(p, step) and ok
            else:
                await self._provision(p, step)

    async def _written(self, done: Awaitable[list[tuple[int, Event]]]) -> None:
        await self.published(await done)

    async def _event_done(self, event: Event) -> None:
        if event.kind == "voltha.service.corrected":
            self.corrections.labels(self.stack, event.data.get("action", "")).inc()
        await self._written(store.record_events(self.pool, [event]))

    async def _forgotten(self, row: reconcile.ServiceRow, event: Event | None) -> None:
        events = [event] if event is not None else []
        if event is not None and event.kind == "voltha.service.corrected":
            self.corrections.labels(self.stack, event.data.get("action", "")).inc()
        await self._written(store.forget_service(self.pool, self.stack, row, events))

    async def _shows(self, location: str, key: TagKey) -> bool | None:
        """Whether ONOS shows the service programmed at ``location``; None if it would not
        say (an error answer: the caller counts the step as failed)."""
        try:
            got = await self.onos.programmed(location)
        except OnosError as exc:
            self._failed("programmed", exc, location=location)
            return None
        self.calls.labels(self.stack, "programmed", "ok").inc()
        return any(tag_key(tag) == key and loc == location for loc, tag in got)

    async def _remove(self, p: reconcile.PortPlan, step: reconcile.Step) -> bool:
        row = step.row
        port = p.port
        assert port is not None
        key = tag_key(row.tag_info)
        try:
            status = await self.onos.remove(port.name, row.s_tag, row.c_tag, row.tp_id)
        except OnosError as exc:
            if exc.no_port:  # ONOS has no such port any more: nothing left to remove
                self.calls.labels(self.stack, "remove", "ok").inc()
                await self._forgotten(row, step.event)
                return True
            self._failed("remove", exc, port=port.name)
            return False
        if status == 204 and port.location and await self._shows(port.location, key) is not False:
            self.calls.labels(self.stack, "remove", "error").inc()
            self.ratelog.log(
                logging.WARNING,
                "onos-remove-204",
                "ONOS did not remove the service it holds (answered 204: SADIS and ONOS "
                "disagree on its entry); trying again next sync",
                port=port.name,
                s_tag=row.s_tag,
                c_tag=row.c_tag,
            )
            return False
        self.calls.labels(self.stack, "remove", "ok").inc()
        if port.location:
            self._removed[(port.location, key)] = time.monotonic()
        await self._forgotten(row, step.event)
        return True

    async def _provision(self, p: reconcile.PortPlan, step: reconcile.Step) -> None:
        row = step.row
        port = p.port
        assert port is not None
        try:
            status = await self.onos.provision(port.name, row.s_tag, row.c_tag, row.tp_id)
        except OnosError as exc:
            self._failed("provision", exc, port=port.name)
            return
        if status == 204 and await self._shows(port.location, tag_key(row.tag_info)) is not True:
            self.calls.labels(self.stack, "provision", "error").inc()
            self.ratelog.log(
                logging.WARNING,
                "onos-provision-204",
                "ONOS took nothing in (answered 204 and does not show the service): SADIS "
                "has no such service for it, or ONOS holds it as another; trying again",
                port=port.name,
                s_tag=row.s_tag,
                c_tag=row.c_tag,
            )
            return
        self.calls.labels(self.stack, "provision", "ok").inc()
        events = [step.event] if step.event is not None else []
        if step.event is not None and step.event.kind == "voltha.service.corrected":
            self.corrections.labels(self.stack, step.event.data.get("action", "")).inc()
        done = store.record_service(self.pool, self.stack, replace(row, age=0.0), events)
        await self._written(done)
