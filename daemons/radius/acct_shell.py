"""The accounting shell: Accounting-Requests acknowledged only once durable.

Per datagram, synchronously: admission → overload check (before parsing, the dearest step
left) → ``acct.parse`` → the pending batch. A batch is committed as soon as fewer than
``radius.acct_commits`` commits are running (at the next turn of the loop, so what arrived
together goes together; else when one returns): batches grow with the load, up to
``radius.acct_batch_max`` records (or, with ``radius.acct_batch_window`` above 0, at that
fixed time after the batch's first record). A commit is one PostgreSQL transaction
(``store.accounting.append_accounting``: ledger, dedup gate, sessions), or, when
PostgreSQL is down or past ``radius.acct_commit_timeout``, one fsynced append to the local
spool, which drains into the ledger in order before new records go
there again. Records PostgreSQL refuses for their content go to the quarantine (batch
halved until each is alone). Then the live sessions in Redis, then the
Accounting-Responses, then the sinks (``after_commit``).

Owns: the pending batch, the commit, the spool and its replay, the quarantine, the
partition upkeep. Shares: admission, the in-flight bound, and :class:`LedgerState` with
its upkeep (``acct_upkeep``). A new accounting sink (an export, a usage counter) is a
callable appended to ``after_commit``: it gets each committed batch's records after the
acks, must not block, and spawns its own work (``Inflight.spawn``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from daemons.core.config import RadiusConfig
from daemons.core.ratelog import RateLimitedLog
from daemons.radius import acct
from daemons.radius.admission import Admission, Admitted, Resend
from daemons.radius.codec import Code, DecodeError, DropReason
from daemons.radius.dictionary import Dictionary
from daemons.radius.inflight import Inflight
from daemons.radius.metrics import RadiusMetrics
from daemons.radius.shared import Drops, Job, LedgerState, Router, Sender, Stores, within
from daemons.store import accounting
from daemons.store.spool import Spool, SpoolError

log = logging.getLogger("netd.radius")

_STATUS = {1: "start", 2: "stop", 3: "interim", 7: "accounting_on", 8: "accounting_off"}

#: PostgreSQL refusing a record for what it holds (SQLSTATE classes 22 and 23), as opposed to
#: PostgreSQL being unavailable: retrying cannot help, spooling would only repeat it.
_CONTENT_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)

#: What a committed batch is handed to after its acks (see the module docstring).
Sink = Callable[[list[acct.AcctRecord]], None]


class AcctShell:
    """A :class:`~daemons.radius.shared.Receiver` for the accounting port."""

    def __init__(
        self,
        cfg: RadiusConfig,
        stores: Stores,
        dictionary: Dictionary,
        admission: Admission,
        inflight: Inflight,
        metrics: RadiusMetrics,
        drops: Drops,
        ratelog: RateLimitedLog,
        state_dir: Path,
        ledger: LedgerState,
    ) -> None:
        self.cfg = cfg
        self.stores = stores
        self.dictionary = dictionary
        self.admission = admission
        self.inflight = inflight
        self.metrics = metrics
        self.drops = drops
        self.ratelog = ratelog
        self.ledger = ledger
        self.spool = Spool(state_dir / "spool" / "accounting")
        self.quarantine = Spool(state_dir / "spool" / "quarantine")
        self.after_commit: list[Sink] = []
        self.route: Router | None = None  # issue 28: realms and proxying, set by assemble
        self._pending: list[tuple[acct.AcctRecord, Job]] = []
        self._committing = 0  # records of batches handed to _commit, not yet done
        self._timer: asyncio.TimerHandle | None = None
        self._running = 0  # commits in flight (radius.acct_commits)
        self._soon = False  # a _next is scheduled
        self._partitions_until = 0.0
        self._partitions_lock = asyncio.Lock()
        # Tasks nobody awaits: store calls past their deadline (see shared.hold).
        self._abandoned: set[asyncio.Task[Any]] = set()
        inflight.register(self.held)

    def held(self) -> int:
        """Accounting-Requests waiting for their batch or in a commit."""
        return len(self._pending) + self._committing

    def start(self) -> None:
        """Replay what a previous run left in the spool, first."""
        if self.spool.pending_segments():
            self.ledger.spooling = True
            self.inflight.spawn(self._replay())

    def received(self, data: bytes, addr: Any, sender: Sender) -> None:
        t0 = time.perf_counter()
        verdict = self.admission.admit(data, addr, accounting=True)
        if not isinstance(verdict, Admitted):
            if isinstance(verdict, Resend):
                sender.sendto(verdict.reply, addr)
            return
        pkt, nas = verdict.pkt, verdict.nas
        if pkt.code == Code.STATUS_SERVER:  # RFC 5997 §4: answer with Accounting-Response
            job = Job(pkt, nas, addr, sender, verdict.key, t0, None)
            self.admission.answer(Code.ACCOUNTING_RESPONSE, job, [], "status")
            return
        if self.route is not None:  # issue 28: a realm proxied or refused
            name = pkt.get(1)  # User-Name
            user = name.decode("utf-8", "replace") if name else None
            job = Job(pkt, nas, addr, sender, verdict.key, t0, user)
            if self.route(verdict.key, verdict.now, job):
                return
        # Shed before parsing (the dearest step left): under overload a drop costs the
        # authenticator check and no more.
        load = self.inflight.load()
        if load >= self.inflight.limit:
            self.drops.drop(DropReason.OVERLOAD, nas.name, addr)
            return
        try:
            record = acct.parse(pkt, nas.name, self.dictionary, time.time())
        except DecodeError as exc:
            self.drops.drop(exc.reason, nas.name, addr, exc.detail)
            return
        self.inflight.taken(load)
        self.admission.taking(verdict.key, verdict.now)
        self._enqueue(record, Job(pkt, nas, addr, sender, verdict.key, t0, record.username))

    def take(self, job: Job) -> None:
        """A request the proxy has forwarded, for the ledger as well (issue 28, a realm's
        ``ledger``): acknowledged after its commit like any other."""
        try:
            record = acct.parse(job.pkt, job.nas.name, self.dictionary, time.time())
        except DecodeError as exc:
            self.admission.give_up(job, exc.reason, exc.detail)
            return
        self._enqueue(record, job)

    def _enqueue(self, record: acct.AcctRecord, job: Job) -> None:
        self._pending.append((record, job))
        if not self.cfg.acct_batch_window:
            if not self._soon and self._running < self.cfg.acct_commits:
                self._soon = True
                asyncio.get_running_loop().call_soon(self._next)
        elif len(self._pending) >= self.cfg.acct_batch_max:
            self.commit_now()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.cfg.acct_batch_window, self.commit_now
            )

    def _next(self) -> None:
        """Start batches (at most radius.acct_batch_max records each) while commit slots
        are free; what arrives meanwhile waits for the next free slot."""
        self._soon = False
        limit = self.cfg.acct_batch_max
        while self._pending and self._running < self.cfg.acct_commits:
            batch, self._pending = self._pending[:limit], self._pending[limit:]
            self._start(batch)

    def commit_now(self) -> None:
        """Commit everything pending now (a drain; the fixed window's end)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            self._start(batch)

    def _start(self, batch: list[tuple[acct.AcctRecord, Job]]) -> None:
        self._running += 1
        self._committing += len(batch)
        self.inflight.spawn(self._commit(batch), batch=True)

    async def _commit(self, batch: list[tuple[acct.AcctRecord, Job]]) -> None:
        """Make the batch durable (ledger, or the local spool when PostgreSQL is down);
        then, and only then, send the Accounting-Responses. The batch's requests count in
        the load (``_committing``) until they are answered."""
        try:
            await self._commit_batch(batch)
        finally:
            self._committing -= len(batch)
            self._running -= 1
            if self._pending and not self.cfg.acct_batch_window and not self._soon:
                self._next()

    async def _commit_batch(self, batch: list[tuple[acct.AcctRecord, Job]]) -> None:
        records = [r for r, _ in batch]
        t0 = time.perf_counter()
        closed: list[tuple[str, str, str | None]] = []
        if self.ledger.spooling:  # older records wait in the spool: keep the order
            durable = await self._to_spool(records)
        else:
            try:
                closed = await self._ledger_within_deadline(records)
                durable = True
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                TimeoutError,
            ) as exc:
                self.ratelog.log(
                    logging.WARNING,
                    "acct-commit",
                    "PostgreSQL unavailable; spooling accounting locally",
                    error=repr(exc),
                )
                durable = await self._to_spool(records)
        if not durable:  # not durable, so not acknowledged: the NAS retransmits
            for _, job in batch:
                self.admission.dupes.forget(job.key)
                self.metrics.drops.labels(job.nas.name, DropReason.STORE_ERROR.value).inc()
            return
        self.metrics.acct_commit.observe(time.perf_counter() - t0)
        self.metrics.acct_batch.observe(len(batch))
        # Live sessions first, so that a NAS (or Simultaneous-Use) acting on the ack sees
        # them; a Redis outage does not hold the acks back.
        try:
            await within(
                accounting.update_live_sessions(self.stores.cache, records, closed),
                self.cfg.cache_timeout,
                self._abandoned,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self.ledger.live_missed = True
            self.ratelog.log(
                logging.WARNING,
                "live-sessions",
                "live sessions not updated in Redis",
                error=repr(exc),
            )
        for record, job in batch:
            self.metrics.child(
                self.metrics.acct_records, job.nas.name, _STATUS.get(record.status, "other")
            ).inc()
            self.admission.answer(
                Code.ACCOUNTING_RESPONSE, job, [], "accounting", message_auth=False
            )
        for sink in self.after_commit:
            sink(records)

    async def _ledger_within_deadline(
        self, records: list[acct.AcctRecord]
    ) -> list[tuple[str, str, str | None]]:
        """The ledger commit, or TimeoutError after radius.acct_commit_timeout.

        A PostgreSQL that hangs rather than refuses must not hold the acks past the NAS's
        retransmissions: past the deadline the batch is spooled. If the abandoned commit
        landed after all, the spool's replay adds nothing: the ledger drops records by
        idempotency key."""
        return await within(
            self._to_ledger_sorted(records), self.cfg.acct_commit_timeout, self._abandoned
        )

    async def _to_ledger_sorted(
        self, records: list[acct.AcctRecord]
    ) -> list[tuple[str, str, str | None]]:
        """:meth:`_to_ledger`, with the records PostgreSQL refuses for their content (a data
        or constraint error, not an outage) set apart: the batch is split in halves until
        each refused record is alone, and that one goes to the quarantine spool (fsynced,
        counted, logged) instead of failing its batch for good. Without this one bad record
        would be spooled as if PostgreSQL were down, and its replay would fail forever,
        holding every later record in the spool behind it."""
        try:
            return await self._to_ledger(records)
        except _CONTENT_ERRORS as exc:
            if len(records) == 1:
                await self._to_quarantine(records[0], exc)
                return []
        half = len(records) // 2
        first = await self._to_ledger_sorted(records[:half])
        return first + await self._to_ledger_sorted(records[half:])

    async def _to_quarantine(self, record: acct.AcctRecord, exc: Exception) -> None:
        try:
            await asyncio.to_thread(self.quarantine.append, [asdict(record)])
        except SpoolError:
            raise exc from None  # not durable anywhere: not acknowledged
        self.metrics.acct_quarantined.inc()
        self.ratelog.log(
            logging.ERROR,
            "quarantine",
            "accounting record refused by PostgreSQL for its content; kept in the quarantine",
            error=f"{type(exc).__name__}: {exc}",
            nas=record.nas,
            session=record.acct_session_id,
            directory=str(self.quarantine.dir),
        )

    async def _to_ledger(self, records: list[acct.AcctRecord]) -> list[tuple[str, str, str | None]]:
        now = time.time()
        pool = self.stores.pool
        if now >= self._partitions_until:
            async with self._partitions_lock:  # one batch makes them; the others wait
                if now >= self._partitions_until:
                    await accounting.ensure_partitions(pool, now)
                    await accounting.prune_dedup(pool)
                    self._partitions_until = now + 3600
        for attempt in range(3):
            try:
                _, closed = await accounting.append_accounting(pool, records)
                return closed
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                # A conflict with a concurrent batch, not an outage: the transaction rolled
                # back whole, so running it again is safe.
                if attempt == 2:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _to_spool(self, records: list[acct.AcctRecord]) -> bool:
        """fsync the batch to the local spool; True once it is on disk."""
        try:
            await asyncio.to_thread(self.spool.append, [asdict(r) for r in records])
        except SpoolError as exc:
            self.ratelog.log(
                logging.ERROR,
                "spool",
                "accounting spool not writable; records not acknowledged",
                error=str(exc),
            )
            return False
        self.metrics.acct_spooled.inc(len(records))
        if not self.ledger.spooling:
            self.ledger.spooling = True
            self.inflight.spawn(self._replay())
        return True

    async def _replay(self) -> None:
        """Move the spool into the ledger, oldest segment first, once PostgreSQL answers.
        Replay is idempotent (the dedup gate): a crash in the middle repeats nothing."""
        backoff = 0.5
        while True:
            item = await asyncio.to_thread(self.spool.oldest)
            if item is None:
                self.ledger.spooling = False
                log.info("accounting spool replayed into the ledger")
                return
            path, rows = item
            records = [acct.AcctRecord(**row) for row in rows]
            try:
                for i in range(0, len(records), 1000):
                    await self._to_ledger_sorted(records[i : i + 1000])
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                if self.inflight.draining:
                    return  # the spool stays on disk; the next start replays it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            await asyncio.to_thread(self.spool.remove, path)
            self.metrics.acct_replayed.inc(len(records))
