"""The authentication shell: Access-Requests from admission to their reply.

Per datagram, synchronously: admission → User-Name → (Status-Server answered at once,
RFC 5997 §4.1) → overload check → the pending batch. Once per loop tick the batch's
subscribers are looked up in one Redis pipeline (the misses in one PostgreSQL query, then
cached in the background), then each request is decided by the pure engine
(``auth.authenticate``: PAP, CHAP, MS-CHAP, EAP with its state sealed in the State
attribute, policy) and answered synchronously. Only PAP against a one-way hash leaves the
loop (a small thread pool), and an Accept whose plan names one of our IP pools waits for
its address (``store.pools.allocate``).

Owns: the pending batch, the requests being decided, the hash pool. Shares: admission
(and through it the duplicate cache), the tables (NAS, pools, engine), the in-flight
bound. A new EAP method is the engine's (``radius/eap.py``, ``radius/auth.py``): this
shell only carries its State attribute and its replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from daemons.core.config import RadiusConfig
from daemons.core.ratelog import RateLimitedLog
from daemons.core.secrets import Sealer, SealError
from daemons.radius import hashes, pools6
from daemons.radius.admission import Admission, Admitted, Resend
from daemons.radius.auth import (
    HashCheck,
    Method,
    Outcome,
    Subscriber,
    authenticate,
    method_of,
    user_name,
)
from daemons.radius.auth_eap import ExchangeStore, SubscriberLookup, needs_subscriber
from daemons.radius.authlog_writer import AuthLogWriter
from daemons.radius.codec import Attr, Code, DecodeError, DropReason, Packet
from daemons.radius.credentials import OpenedCredentials
from daemons.radius.dictionary import ReplyAttr
from daemons.radius.inflight import Inflight
from daemons.radius.metrics import RadiusMetrics
from daemons.radius.shared import Drops, Job, Router, Sender, Stores, hold, within
from daemons.radius.tables import Tables
from daemons.store import pools
from daemons.store import pools6 as pools6_store
from daemons.store import radius as store

log = logging.getLogger("netd.radius")


def open_subscriber(
    row: store.SubscriberRow, sealer: Sealer | OpenedCredentials, method: Method
) -> Subscriber:
    """The subscriber with the one credential ``method`` needs opened (MS-CHAP: the NT hash
    if stored, else the cleartext). Raises SealError if it cannot be opened."""
    ctx = f"sub:{row.username}:".encode()
    password = nt_hash = None
    wants_nt = method in (Method.MSCHAP1, Method.MSCHAP2)
    if wants_nt and row.nt_hash_enc is not None:
        nt_hash = sealer.open(row.nt_hash_enc, ctx + b"nt")
    elif row.password_enc is not None:
        password = sealer.open(row.password_enc, ctx + b"pw")
    return Subscriber(
        row.username,
        row.plan,
        row.state,
        row.mac,
        row.framed_ip,
        password,
        nt_hash,
        row.password_hash,
        **{name: getattr(row, name) for name in store.IPV6_FIELDS},
    )


def _calling(pkt: Packet) -> str | None:
    raw = pkt.get(Attr.CALLING_STATION_ID)
    return raw.decode("utf-8", "replace") if raw is not None else None


class AuthShell:
    """A :class:`~daemons.radius.shared.Receiver` for the authentication port."""

    def __init__(
        self,
        cfg: RadiusConfig,
        stores: Stores,
        sealer: Sealer,
        tables: Tables,
        admission: Admission,
        inflight: Inflight,
        metrics: RadiusMetrics,
        drops: Drops,
        ratelog: RateLimitedLog,
        exchanges: ExchangeStore | None = None,
    ) -> None:
        self.cfg = cfg
        self.exchanges = exchanges  # issue 29: the TLS-based EAP exchanges (eap_exchanges.py)
        self.stores = stores
        self.sealer = sealer
        self.opened = OpenedCredentials(sealer)  # issue 30: AES-GCM once per row version
        self.tables = tables
        self.admission = admission
        self.inflight = inflight
        self.metrics = metrics
        self.drops = drops
        self.ratelog = ratelog
        self._pending: list[Job] = []
        self._flush_scheduled = False
        self._in_progress = 0
        # Tasks nobody awaits: store calls past their deadline, cache fills (see hold).
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._hash_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pap-hash")
        # issue 21: the authentication history (radius.auth_log), made by the daemon's start
        self.authlog: AuthLogWriter | None = None
        self.route: Router | None = None  # issue 28: realms and proxying, set by assemble
        inflight.register(self.held)

    def held(self) -> int:
        """Access-Requests waiting for their batch's lookup or being decided."""
        return len(self._pending) + self._in_progress

    def close(self) -> None:
        self._hash_pool.shutdown(wait=False, cancel_futures=True)

    def received(self, data: bytes, addr: Any, sender: Sender) -> None:
        t0 = time.perf_counter()
        verdict = self.admission.admit(data, addr, accounting=False)
        if not isinstance(verdict, Admitted):
            if isinstance(verdict, Resend):
                sender.sendto(verdict.reply, addr)
            return
        pkt, nas = verdict.pkt, verdict.nas
        try:
            username = user_name(pkt)
        except DecodeError as exc:
            self.drops.drop(exc.reason, nas.name, addr, exc.detail)
            return
        job = Job(pkt, nas, addr, sender, verdict.key, t0, username)
        if pkt.code == Code.STATUS_SERVER:  # RFC 5997 §4.1: answer with Access-Accept
            self.admission.answer(Code.ACCESS_ACCEPT, job, [], "status")
            return
        if self.route is not None and self.route(verdict.key, verdict.now, job):
            return  # issue 28: a realm proxied or refused
        load = self.inflight.load()
        if load >= self.inflight.limit or self.tables.engine is None:
            self.drops.drop(DropReason.OVERLOAD, nas.name, addr)
            return
        self.inflight.taken(load)
        self.admission.taking(verdict.key, verdict.now)
        self._pending.append(job)
        if not self._flush_scheduled:
            # Everything that arrives before the loop comes round joins this batch: one
            # Redis round trip for all of them instead of one each.
            self._flush_scheduled = True
            self.inflight.spawn(self._flush(), batch=True)

    async def _flush(self) -> None:
        self._flush_scheduled = False
        jobs, self._pending = self._pending, []
        self._in_progress += len(jobs)
        self.metrics.inflight.set(self.inflight.load())
        decided = 0
        try:
            # An EAP round that needs no record of its User-Name (the TLS-based methods
            # look their inner identity up once, at the end) is not looked up at all.
            wanted = [j.username is not None and needs_subscriber(j.pkt) for j in jobs]
            names = list(
                {
                    j.username
                    for j, w in zip(jobs, wanted, strict=True)
                    if w and j.username is not None
                }
            )
            hits, misses = await self._cached(names) if names else ({}, {})
            # The cache's hits are decided now: a PostgreSQL that is slow or unreachable
            # (a lookup held for its connect or command timeout) holds only the misses,
            # never the cached subscribers of the same batch.
            for job, want in zip(jobs, wanted, strict=True):
                if want and job.username in misses:
                    continue
                # Counted out before its decision: one that spawns a task is counted there.
                decided += 1
                self._in_progress -= 1
                row, sessions = hits.get(job.username or "", (None, 0)) if want else (None, 0)
                self._decide(job, row, sessions)
            if not misses:
                return
            found, failed = await self._fetch(misses)
            for job, want in zip(jobs, wanted, strict=True):
                if not want or job.username not in misses:
                    continue
                decided += 1
                self._in_progress -= 1
                if job.username in failed:
                    self.admission.give_up(job, DropReason.STORE_ERROR)
                    continue
                row, sessions = found.get(job.username or "", (None, 0))
                self._decide(job, row, sessions)
        finally:
            self._in_progress -= len(jobs) - decided

    async def _cached(
        self, names: list[str]
    ) -> tuple[dict[str, tuple[store.SubscriberRow | None, int]], dict[str, int]]:
        """Records and live session counts from Redis, and the misses (with their live
        session counts): every name a miss while Redis is unreachable."""
        out: dict[str, tuple[store.SubscriberRow | None, int]] = {}
        try:
            cached = await within(
                store.cached_subscribers(self.stores.cache, names),
                self.cfg.cache_timeout,
                self._abandoned,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self.ratelog.log(
                logging.WARNING,
                "redis",
                "Redis unavailable; reading subscribers from PostgreSQL",
                error=repr(exc),
            )
            cached = {n: (False, None, 0) for n in names}
        misses: dict[str, int] = {}
        negative = 0
        for name, (hit, row, sessions) in cached.items():
            if hit:
                negative += row is None
                out[name] = (row, sessions)
            else:
                misses[name] = sessions
        # Counted once per batch (issue 30): a counter's inc takes its lock each time.
        if len(out) > negative:
            self.metrics.child(self.metrics.lookups, "redis").inc(len(out) - negative)
        if negative:
            self.metrics.child(self.metrics.lookups, "redis_negative").inc(negative)
        return out, misses

    async def _fetch(
        self, misses: dict[str, int]
    ) -> tuple[dict[str, tuple[store.SubscriberRow | None, int]], set[str]]:
        """The cache's misses from PostgreSQL (then cached), with their live session counts;
        also the names that could not be looked up (PostgreSQL failing too)."""
        names = list(misses)
        self.metrics.lookups.labels("postgres").inc(len(names))
        try:
            found = await store.fetch_subscribers_db(self.stores.pool, names)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.ratelog.log(
                logging.WARNING,
                "postgres",
                "PostgreSQL unavailable for a subscriber lookup",
                error=repr(exc),
            )
            return {}, set(names)
        # Filling the cache is not on the request's path: the replies go out without it.
        # (In the background, nobody waits on it: redis.socket_timeout bounds it.)
        rows = {n: found.get(n) for n in names}
        hold(asyncio.get_running_loop().create_task(self._fill_cache(rows)), self._abandoned)
        return {n: (found.get(n), misses[n]) for n in names}, set()

    async def _fill_cache(self, rows: dict[str, store.SubscriberRow | None]) -> None:
        with contextlib.suppress(RedisError, OSError):
            await store.cache_subscribers(self.stores.cache, rows, self.cfg.negative_cache_ttl)

    def _open(
        self, row: store.SubscriberRow | None, method: Method, name: str | None
    ) -> Subscriber | None:
        if row is None:
            return None
        try:
            return open_subscriber(row, self.opened, method)
        except SealError:
            log.error(
                "subscriber credentials cannot be opened with this key",
                extra={"fields": {"user": name}},
            )
            return None

    def _decide(
        self,
        job: Job,
        row: store.SubscriberRow | None,
        sessions: int,
        inner: tuple[Subscriber | None, int] | None = None,
    ) -> None:
        engine = self.tables.engine
        assert engine is not None
        sub: Subscriber | None = None
        if row is not None and job.plan is not None and row.plan == "default":
            row = dataclasses.replace(row, plan=job.plan)  # the realm's plan (issue 28)
        try:
            if inner is None:
                sub = self._open(row, method_of(job.pkt), job.username)
            outcome = authenticate(
                job.pkt, job.nas, sub, sessions, engine, time.time(), os.urandom,
                exchanges=self.exchanges, inner=inner,
            )  # fmt: skip
        except DecodeError as exc:
            self.admission.give_up(job, exc.reason, exc.detail)
            return
        if isinstance(outcome, HashCheck):
            self.inflight.spawn(self._check_hash(job, sub, sessions, outcome))
            return
        if isinstance(outcome, SubscriberLookup):
            self.inflight.spawn(self._lookup_inner(job, outcome))
            return
        self._finish(outcome, job)

    async def _lookup_inner(self, job: Job, want: SubscriberLookup) -> None:
        """EAP's inner identity (PEAP, TTLS) or certificate identity (EAP-TLS): its record
        and live sessions, as the batch looks names up; then the engine goes on."""
        hits, misses = await self._cached([want.name])
        if misses:
            found, failed = await self._fetch(misses)
            if failed:
                self.admission.give_up(job, DropReason.STORE_ERROR)
                return
            hits.update(found)
        row, sessions = hits.get(want.name, (None, 0))
        sub = self._open(row, want.method, want.name)
        self._decide(job, None, 0, (sub, sessions))

    def _finish(self, outcome: Outcome, job: Job) -> None:
        """Reply, after allocating an address when the plan names one of our pools."""
        if outcome.code == Code.ACCESS_ACCEPT and pools6.wanted(outcome, self.tables.pools6):
            self.inflight.spawn(self._allocate6(outcome, job))  # IPv6 prefixes first
            return
        our_pools = self.tables.pools
        if outcome.code == Code.ACCESS_ACCEPT and our_pools:
            pool = next(
                (
                    a.value
                    for a in outcome.attributes
                    if a.name == "Framed-Pool" and a.value in our_pools
                ),
                None,
            )
            if pool is not None:
                self.inflight.spawn(self._allocate(outcome, job, str(pool)))
                return
        self._reply(outcome, job)

    async def _allocate6(self, outcome: Outcome, job: Job) -> None:
        """A prefix from each netd IPv6 pool the Accept names, then on as before."""
        given: dict[str, str] = {}
        try:
            for attr, name in pools6.wanted(outcome, self.tables.pools6):
                prefix = await pools6_store.allocate(
                    self.stores.pool, name, job.username or "", job.nas.name
                )
                if prefix is None:
                    self._reply(Outcome(Code.ACCESS_REJECT, outcome.method, "pool6_exhausted"), job)
                    return
                given[attr] = prefix
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.admission.give_up(job, DropReason.STORE_ERROR, repr(exc))
            return
        self._finish(pools6.with_prefixes(outcome, given), job)

    async def _allocate(self, outcome: Outcome, job: Job, pool: str) -> None:
        try:
            address = await pools.allocate(self.stores.pool, pool, job.username or "", job.nas.name)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.admission.give_up(job, DropReason.STORE_ERROR, repr(exc))
            return
        if address is None:
            self._reply(Outcome(Code.ACCESS_REJECT, outcome.method, "pool_exhausted"), job)
            return
        attrs = tuple(
            ReplyAttr("Framed-IP-Address", address) if a.name == "Framed-Pool" else a
            for a in outcome.attributes
        )
        self._reply(dataclasses.replace(outcome, attributes=attrs), job)

    async def _check_hash(
        self, job: Job, sub: Subscriber | None, sessions: int, check: HashCheck
    ) -> None:
        """PAP against a one-way hash: hundreds of ms of CPU, off the event loop."""
        engine = self.tables.engine
        assert engine is not None
        ok = await asyncio.get_running_loop().run_in_executor(
            self._hash_pool, hashes.verify, check.hash, check.password
        )
        outcome = authenticate(job.pkt, job.nas, sub, sessions, engine, time.time(), os.urandom, ok)
        assert isinstance(outcome, Outcome)
        self._finish(outcome, job)

    def _reply(self, outcome: Outcome, job: Job) -> None:
        try:
            attrs = self.tables.dictionary.encode(
                outcome.attributes, job.nas.secret, job.pkt.authenticator, os.urandom
            )
        except (KeyError, ValueError) as exc:
            log.error(
                "reply attributes not encodable; check the plan",
                extra={"fields": {"user": job.username, "error": str(exc)}},
            )
            attrs = []
            outcome = Outcome(Code.ACCESS_REJECT, outcome.method, "policy_error")
        if outcome.code == Code.ACCESS_REJECT:
            self.metrics.rejects.labels(job.nas.name, outcome.reason).inc()
            log.info(
                "access rejected",
                extra={
                    "fields": {
                        "user": job.username,
                        "nas": job.nas.name,
                        "method": outcome.method.value,
                        "reason": outcome.reason,
                        "calling_station": _calling(job.pkt),
                    }
                },
            )
        self.admission.answer(outcome.code, job, [*attrs, *outcome.raw], outcome.method.value)
        if self.authlog is not None:  # issue 21: recorded, never waited for
            self.authlog.add(job.pkt, job.nas.name, job.username, outcome, time.time())
