"""The proxy's accounting spool: proxied accounting acknowledged while its pool is dead.

An Accounting-Request no live home server took (the pool dead, or every member timed
out) joins a batch that is committed in PostgreSQL once per loop tick
(``store.proxy_spool.spool_records``, table ``radius_proxy_spool``); only then does the
NAS get its Accounting-Response (accounting is acknowledged only when durable). When
PostgreSQL refuses, the requests are given up unanswered: the NAS retransmits.

While a pool has records spooled, its new records are spooled too, so a home server gets
each pool's records in the order they came. The forwarder (one process of the instance)
sends them, oldest first, in windows of at most ``WINDOW`` with one record per
Acct-Session-Id (so a session's records arrive in order even at a home server that works
on requests concurrently), once the pool has a live member; a record leaves the spool
when a home server has answered it. Forwarding is at least once:
a netd killed between a home server's answer and the delete sends that record again
(same Acct-Session-Id and Acct-Status-Type, Acct-Delay-Time grown), which RFC 2866
§2 allows and home servers de-duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from daemons.core.ratelog import RateLimitedLog
from daemons.radius import proxy
from daemons.radius.admission import Admission
from daemons.radius.codec import Code, DecodeError, DropReason, decode
from daemons.radius.homeservers import ServerState
from daemons.radius.inflight import Inflight
from daemons.radius.metrics import RadiusMetrics
from daemons.radius.realms import HomePool, Realm, RealmPolicy
from daemons.radius.shared import Job, Stores, within
from daemons.store import proxy_spool as store


class Held(Protocol):
    """A NAS request the proxy holds (``proxy_link.Outstanding``)."""

    job: Job | None
    pool: HomePool | None
    realm: Realm | None
    fwd: proxy.Forward | None


class Shell(Protocol):
    """What the spool needs of the proxy shell."""

    admission: Admission
    inflight: Inflight
    policy: RealmPolicy

    def finish(self, out: Any) -> None: ...

    def to_ledger(self, out: Any) -> bool: ...

    def live_server(self, pool: HomePool) -> ServerState | None: ...

    def forward_spooled(
        self, pool: HomePool, fwd: proxy.Forward, delay: int, done: Callable[[bool], None]
    ) -> bool: ...


log = logging.getLogger("netd.radius")

WINDOW = 32  # spooled records in flight to a home server at once
ACCT_SESSION_ID = 44
RESCAN = 5.0  # seconds between looks at the table for records of other runs
COMMIT_TIMEOUT = 5.0


def pack(attributes: tuple[tuple[int, bytes], ...]) -> bytes:
    return b"".join(bytes((t, len(v) + 2)) + v for t, v in attributes)


def unpack(raw: bytes) -> tuple[tuple[int, bytes], ...]:
    """Attributes stored by :func:`pack`. Raises DecodeError."""
    header = bytes((Code.ACCOUNTING_REQUEST, 0)) + (20 + len(raw)).to_bytes(2, "big")
    return decode(header + bytes(16) + raw).attributes


class ProxySpool:
    def __init__(
        self, stores: Stores, shell: Shell, metrics: RadiusMetrics, ratelog: RateLimitedLog
    ) -> None:
        self.stores = stores
        self.shell = shell
        self.metrics = metrics
        self.ratelog = ratelog
        self._batch: list[Held] = []
        self._committing = 0
        self._spooling: set[str] = set()  # pools with records in the table
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._abandoned: set[asyncio.Task[Any]] = set()

    def held(self) -> int:
        return len(self._batch) + self._committing

    def spooling(self, pool: str) -> bool:
        return pool in self._spooling

    # --- acknowledging ---

    def add(self, out: Held) -> None:
        """Spool ``out`` (its Accounting-Response follows the commit)."""
        self._batch.append(out)
        if len(self._batch) == 1:
            self.shell.inflight.spawn(self._commit(), batch=True)

    async def _commit(self) -> None:
        await asyncio.sleep(0)  # what arrives this loop tick joins the batch
        batch, self._batch = self._batch, []
        self._committing += len(batch)
        by_pool: dict[str, list[Held]] = {}
        for out in batch:
            assert out.pool is not None
            by_pool.setdefault(out.pool.name, []).append(out)
        try:
            for pool, outs in by_pool.items():
                rows = []
                for out in outs:
                    assert out.job is not None and out.fwd is not None and out.realm is not None
                    rows.append((out.realm.name, out.job.nas.name, pack(out.fwd.attributes)))
                try:
                    await within(
                        store.spool_records(self.stores.pool, pool, rows),
                        COMMIT_TIMEOUT,
                        self._abandoned,
                    )
                except (OSError, TimeoutError, Exception) as exc:  # noqa: BLE001 - any store failure
                    for out in outs:
                        assert out.job is not None
                        self.shell.finish(out)
                        self.shell.admission.give_up(out.job, DropReason.STORE_ERROR, str(exc))
                    continue
                self._spooling.add(pool)
                self._wake.set()
                self.metrics.child(self.metrics.proxy_spooled, pool).inc(len(outs))
                for out in outs:
                    assert out.job is not None
                    self.shell.finish(out)
                    if self.shell.to_ledger(out):
                        continue
                    self.shell.admission.answer(
                        Code.ACCOUNTING_RESPONSE, out.job, [], "proxy", message_auth=False
                    )
        finally:
            self._committing -= len(batch)

    # --- forwarding ---

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forwarder())

    def wake_if_ready(self) -> None:
        for name in self._spooling:
            pool = self.shell.policy.pools.get(name)
            if pool is not None and self.shell.live_server(pool) is not None:
                self._wake.set()
                return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _forwarder(self) -> None:
        while True:
            try:
                found = await store.spooled_pools(self.stores.pool)
                self._spooling |= set(found)
                for name in sorted(self._spooling):
                    await self._drain(name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the store is away: try again later
                self.ratelog.log(
                    logging.WARNING, "proxy-spool", "proxy spool not forwarded", error=repr(exc)
                )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RESCAN)

    async def _drain(self, name: str) -> None:
        """Forward pool ``name``'s records while it has a live member and they are answered."""
        pool = self.shell.policy.pools.get(name)
        if pool is None:
            return
        while self.shell.live_server(pool) is not None:
            rows = await store.next_spooled(self.stores.pool, name, WINDOW)
            if not rows:
                self._spooling.discard(name)
                return
            answered = await self._send_window(pool, rows)
            if answered:
                await store.forwarded(self.stores.pool, answered)
                self.metrics.child(self.metrics.proxy_forwarded, name).inc(len(answered))
            if len(answered) < len(rows):
                return  # something went unanswered: the pool may be dying; later

    async def _send_window(self, pool: HomePool, rows: list[store.Spooled]) -> list[int]:
        """Send ``rows`` (in order) and wait for each one's answer or timeout; the ids of
        those answered."""
        loop = asyncio.get_running_loop()
        futures: list[tuple[int, asyncio.Future[bool]]] = []
        sessions: set[bytes] = set()
        for row in rows:
            try:
                attrs = unpack(row.attributes)
            except DecodeError:
                log.error("unreadable proxy spool record skipped", extra={"fields": {"id": row.id}})
                continue
            # A session's records go one at a time (its Stop never overtakes its Start at a
            # home server that answers concurrently); different sessions go together.
            session = next((v for t, v in attrs if t == ACCT_SESSION_ID), b"")
            if session in sessions:
                break
            sessions.add(session)
            fut: asyncio.Future[bool] = loop.create_future()
            fwd = proxy.Forward(
                Code.ACCOUNTING_REQUEST, attrs, None, proxy.proxy_state_token(row.id, os.urandom(8))
            )

            def done(ok: bool, fut: asyncio.Future[bool] = fut) -> None:
                if not fut.done():
                    fut.set_result(ok)

            if not self.shell.forward_spooled(pool, fwd, int(row.age), done):
                break
            futures.append((row.id, fut))
        answered = []
        for ident, fut in futures:
            if await fut:
                answered.append(ident)
        return answered
