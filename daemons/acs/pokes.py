"""The ACS's UDP side and its connection-request dispatcher (asyncio shells).

``StunServer`` answers STUN Binding Requests on ``acs.host:acs.stun_port`` (the codec is
``acs.stun``) and is the socket UDP connection requests leave from (TR-069 G.2.2.3: from
the STUN server's address and port, so the CPE's NAT lets them in).

``Dispatcher`` sends the connection requests that are due: a bulk run's paced slots and
the retries after a backoff (``cpe_tasks.poke_at``), at most ``acs.connection_request_rate``
a second, and those another process hands over by NOTIFY (a UDP request needs this
socket). Every request goes through ``acs.tasks.poke_device``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, cast

import asyncpg
from prometheus_client import Counter

from daemons.acs import stun
from daemons.acs import tasks as acs_tasks
from daemons.core.lifecycle import Context
from daemons.store import acs as store
from daemons.store import cpe_bulk

log = logging.getLogger("netd.acs")
TICK = 0.2  # seconds between two looks at the due connection requests


class StunServer(asyncio.DatagramProtocol):
    def __init__(self, registry: Any) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.counts = Counter(
            "netd_acs_stun_total",
            "STUN datagrams: answered, ignored (not a Binding Request, or a change request), "
            "udp-connection-request (datagrams sent)",
            ["what"],
            registry=registry,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            reply = stun.answer(stun.parse(data), str(addr[0]), int(addr[1]))
        except (stun.StunError, ValueError, IndexError):
            reply = None
        if reply is None or self.transport is None:
            self.counts.labels("ignored").inc()
            return
        self.transport.sendto(reply, addr)
        self.counts.labels("answered").inc()

    def send(self, host: str, port: int, data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data, (host, port))
            self.counts.labels("udp-connection-request").inc()


class Dispatcher:
    def __init__(self, ctx: Context, udp: StunServer | None) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.acs
        self.udp = udp
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None  # a pool connection held for LISTEN
        self._inflight: set[asyncio.Task[Any]] = set()
        self.sent = Counter(
            "netd_acs_connection_requests_total",
            "connection requests the ACS dispatcher sent, by outcome",
            ["outcome"],
            registry=ctx.registry,
        )
        refusals = Counter(
            "netd_acs_connection_requests_refused_total",
            "connection requests not sent: the target (loopback, link-local, internal, "
            "outside the CPE networks, not the Inform address, not an address) or Basic only",
            ["reason"],
            registry=ctx.registry,
        )
        self.refused: acs_tasks.Refused = lambda reason: refusals.labels(reason).inc()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self.udp is not None:
            listener = await self.ctx.pool.acquire()
            await listener.add_listener(acs_tasks.POKE_CHANNEL, self._notified)
            self._listener = listener

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(acs_tasks.POKE_CHANNEL, self._notified)
            await self.ctx.pool.release(self._listener)
            self._listener = None
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=self.cfg.connection_request_timeout)

    def _send(self) -> acs_tasks.UdpSend | None:
        return self.udp.send if self.udp is not None else None

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        task = asyncio.get_running_loop().create_task(self._poke_one(str(payload)))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _poke_one(self, device_id: str) -> None:
        device = await store.get_device(self.ctx.pool, device_id)
        if device is not None:
            outcome = await acs_tasks.poke_device(
                self.ctx.pool, self.cfg, device, self._send(), self.refused
            )
            self.sent.labels(outcome).inc()

    async def _run(self) -> None:
        budget = 0.0  # a token bucket: connection_request_rate a second, a second's burst
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            rate = self.cfg.connection_request_rate
            budget = min(max(1.0, rate), budget + rate * (now - last))
            last = now
            if budget < 1:
                continue
            try:
                due = await cpe_bulk.take_due_pokes(self.ctx.pool, int(budget))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("due connection requests not read", extra={"error": repr(exc)})
                continue
            budget -= len(due)
            for device in due:
                task = asyncio.get_running_loop().create_task(self._poke(device))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _poke(self, device: dict[str, Any]) -> None:
        try:
            outcome = await acs_tasks.poke_device(
                self.ctx.pool, self.cfg, device, self._send(), self.refused
            )
            self.sent.labels(outcome).inc()
            await cpe_bulk.record_pokes(self.ctx.pool, [(t, outcome) for t in device["tasks"]])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("connection request not recorded", extra={"error": repr(exc)})
