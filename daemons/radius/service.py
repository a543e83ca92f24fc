"""The RADIUS authentication daemon: the asyncio shell around codec, auth and policy.

Per datagram: NAS by source address → decode → Message-Authenticator → duplicate cache →
(Status-Server answered at once) → subscriber from Redis (PostgreSQL on a miss) → engine →
signed reply. Everything that is not a valid request from a known NAS is dropped silently,
counted by reason and logged at most once per reason per 10 s.

``radius.workers = N`` runs N processes on the same port (SO_REUSEPORT): this one and N-1
children (``netd radius-worker``) that it starts, and stops on drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, TypeVar, cast

import asyncpg
from prometheus_client import Counter, Gauge, Histogram
from redis.exceptions import RedisError

from daemons.core.lifecycle import Context, Daemon, StartupError
from daemons.core.listen import reload_on_notify
from daemons.core.policies import PolicyError, PolicySet
from daemons.core.portclaim import PortClaim, PortTaken
from daemons.core.ratelimit import KeyedBuckets
from daemons.core.ratelog import RateLimitedLog
from daemons.core.secrets import Sealer, SealError
from daemons.radius import acct, hashes, pools6
from daemons.radius.auth import (
    EngineConfig,
    HashCheck,
    Method,
    Nas,
    Outcome,
    Subscriber,
    authenticate,
    method_of,
    user_name,
)
from daemons.radius.authlog_writer import AuthLogWriter
from daemons.radius.codec import (
    Attr,
    Code,
    DecodeError,
    DropReason,
    Packet,
    check_message_authenticator,
    check_request_authenticator,
    decode,
    encode_reply,
)
from daemons.radius.dictionary import Dictionary, DictionaryError, ReplyAttr
from daemons.radius.policy import Policy, load_policy
from daemons.radius.sessions import CoaError, act, plan_change
from daemons.store import accounting, pools
from daemons.store import api as api_store
from daemons.store import pools6 as pools6_store
from daemons.store import radius as store
from daemons.store.spool import Spool, SpoolError

_STATUS = {1: "start", 2: "stop", 3: "interim", 7: "accounting_on", 8: "accounting_off"}

log = logging.getLogger("netd.radius")

_LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


_CODE_NAMES = {int(c): c.name for c in Code}


class RadiusMetrics:
    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: prometheus_client checks and locks on every
        ``labels`` call, 2.2 µs here against 0.3 µs for this lookup, and a request makes
        four of them."""
        key = (id(metric), labels)
        got = self._children.get(key)
        if got is None:
            if len(self._children) > 100_000:  # NAS names come and go
                self._children.clear()
            got = self._children[key] = metric.labels(*labels)
        return got

    def __init__(self, ctx: Context) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = ctx.registry
        self.requests = Counter(
            "netd_radius_requests_total",
            "requests received from known NAS",
            ["nas", "code"],
            registry=r,
        )
        self.responses = Counter(
            "netd_radius_responses_total", "replies sent", ["nas", "code"], registry=r
        )
        self.rejects = Counter(
            "netd_radius_rejects_total", "Access-Rejects by reason", ["nas", "reason"], registry=r
        )
        self.drops = Counter(
            "netd_radius_drops_total",
            "datagrams discarded, by reason",
            ["nas", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "netd_radius_duplicates_total",
            "retransmits answered from the duplicate cache",
            ["nas"],
            registry=r,
        )
        self.latency = Histogram(
            "netd_radius_request_seconds",
            "from datagram in to reply out",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lookups = Counter(
            "netd_radius_subscriber_lookups_total",
            "subscriber lookups by where they were answered",
            ["source"],
            registry=r,
        )
        self.inflight = Gauge("netd_radius_inflight", "requests being processed", registry=r)
        self.inflight_peak = Gauge(
            "netd_radius_inflight_peak",
            "the most requests in process at once since the start (at most radius.max_inflight)",
            registry=r,
        )
        self.nas_clients = Gauge("netd_radius_nas_clients", "NAS clients loaded", registry=r)
        self.acct_records = Counter(
            "netd_radius_acct_records_total",
            "accounting records committed and acknowledged",
            ["nas", "status"],
            registry=r,
        )
        self.acct_batch = Histogram(
            "netd_radius_acct_batch_records",
            "records per commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.acct_spooled = Counter(
            "netd_radius_acct_spooled_total",
            "accounting records written to the local spool",
            registry=r,
        )
        self.acct_replayed = Counter(
            "netd_radius_acct_replayed_total", "spooled records moved into the ledger", registry=r
        )
        self.acct_quarantined = Counter(
            "netd_radius_acct_quarantined_total",
            "accounting records PostgreSQL refused for their content, kept in the quarantine",
            registry=r,
        )
        self.quota_actions = Counter(
            "netd_radius_quota_actions_total",
            "quota actions by kind and NAS answer",
            ["kind", "result"],
            registry=r,
        )
        self.reaped = Counter(
            "netd_radius_sessions_reaped_total",
            "sessions closed for missing interim updates",
            registry=r,
        )
        self.acct_commit = Histogram(
            "netd_radius_acct_commit_seconds",
            "time to commit a batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )


class NasTable:
    """NAS clients by source address: exact addresses first, then longest prefix."""

    def __init__(self, entries: Sequence[Nas]) -> None:
        self.exact: dict[str, Nas] = {}
        self.prefixes: list[Nas] = []
        for nas in entries:
            if nas.network.num_addresses == 1:
                self.exact[str(nas.network.network_address)] = nas
            else:
                self.prefixes.append(nas)
        self.prefixes.sort(key=lambda n: n.network.prefixlen, reverse=True)
        self._memo: dict[str, Nas | None] = {}

    def __len__(self) -> int:
        return len(self.exact) + len(self.prefixes)

    def lookup_name(self, name: str) -> Nas | None:
        for nas in (*self.exact.values(), *self.prefixes):
            if nas.name == name:
                return nas
        return None

    def lookup(self, host: str) -> Nas | None:
        nas = self.exact.get(host)
        if nas is not None or not self.prefixes:
            return nas
        if host in self._memo:
            return self._memo[host]
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        found = next((n for n in self.prefixes if addr in n.network), None)
        if len(self._memo) > 65536:
            self._memo.clear()
        self._memo[host] = found
        return found


_IN_PROGRESS = b""


class DuplicateCache:
    """RFC 5080 §2.2.2: (source, identifier, authenticator) → the reply sent, for a while."""

    def __init__(self, window: float, max_entries: int = 200_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, bytes]] = OrderedDict()

    def get(self, key: tuple[Any, ...], now: float) -> bytes | None:
        self._expire(now)
        hit = self._entries.get(key)
        return hit[1] if hit is not None else None

    def put(self, key: tuple[Any, ...], reply: bytes, now: float) -> None:
        self._entries[key] = (now + self.window, reply)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: tuple[Any, ...]) -> None:
        self._entries.pop(key, None)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (expires, _) = next(iter(entries.items()))
            if expires > now:
                return
            del entries[key]


def nas_from_row(row: store.NasRow, sealer: Sealer) -> Nas:
    """Raises SealError if the secret cannot be opened with this key."""
    secret = sealer.open(row.secret_enc, f"nas:{row.name}".encode())
    return Nas(
        row.name,
        ipaddress.ip_network(row.network),
        secret,
        row.vendor,
        row.require_message_authenticator,
        row.coa_port,
    )


def open_subscriber(row: store.SubscriberRow, sealer: Sealer, method: Method) -> Subscriber:
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


@dataclass(slots=True)
class _Job:
    """One Access-Request between its datagram and its reply."""

    pkt: Packet
    nas: Nas
    addr: Any
    transport: asyncio.DatagramTransport
    key: tuple[Any, ...]
    t0: float
    username: str | None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, service: RadiusService, accounting: bool) -> None:
        self.service = service
        self.accounting = accounting
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDPTransport quacks like asyncio.DatagramTransport without subclassing it.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        if self.accounting:
            self.service.received_accounting(data, addr, self.transport)
        else:
            self.service.received(data, addr, self.transport)

    def error_received(self, exc: Exception) -> None:
        self.service.ratelog.log(logging.WARNING, "socket", "socket error", error=repr(exc))


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket with SO_REUSEPORT (so workers share it) and IPv6-only for v6."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


_T = TypeVar("_T")

#: PostgreSQL refusing a record for what it holds (SQLSTATE classes 22 and 23), as opposed to
#: PostgreSQL being unavailable: retrying cannot help, spooling would only repeat it.
_CONTENT_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


def _consume(task: asyncio.Task[Any]) -> None:
    """Retrieve an abandoned task's outcome, so asyncio does not report it as lost."""
    if not task.cancelled():
        task.exception()


async def _within(
    coro: Coroutine[Any, Any, _T], seconds: float, abandoned: set[asyncio.Task[Any]]
) -> _T:
    """``coro``'s result, or TimeoutError after ``seconds``. Past the deadline the task is
    cancelled and left to unwind on its own, not awaited: a client's cleanup of a
    cancelled call may itself wait on the store that hangs (asyncpg's does). ``abandoned``
    holds it until it has."""
    task = asyncio.get_running_loop().create_task(coro)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        _hold(task, abandoned)
        raise TimeoutError(f"no answer in {seconds}s")
    return task.result()


def _hold(task: asyncio.Task[Any], held: set[asyncio.Task[Any]]) -> None:
    """Keep a task nobody awaits referenced until it ends, its outcome retrieved."""
    held.add(task)
    task.add_done_callback(held.discard)
    task.add_done_callback(_consume)


class RadiusService(Daemon):
    name: ClassVar[str] = "radius"
    spawns_workers: ClassVar[bool] = True

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = ctx.config.radius
        try:
            self.dictionary = Dictionary(self.cfg.dictionaries)
            self.sealer = ctx.sealer
        except (DictionaryError, ValueError) as exc:
            raise StartupError(f"radius: {exc}", status=2) from None
        self.metrics = RadiusMetrics(ctx)
        self.ratelog = RateLimitedLog(log)
        self.nas = NasTable([])
        self.dupes = DuplicateCache(self.cfg.duplicate_window)
        # One bucket per NAS and port (see _admit); None when the limit is off.
        self._nas_buckets: KeyedBuckets[tuple[str, bool]] | None = (
            KeyedBuckets(self.cfg.nas_rate_limit, self.cfg.nas_rate_burst)
            if self.cfg.nas_rate_limit > 0
            else None
        )
        self._peak = 0
        self.engine: EngineConfig | None = None
        self._pending_policy: Policy | None = None
        self._policy_set: PolicySet | None = None
        self._managed_plans: dict[str, dict[str, Any]] = {}
        self._transports: list[asyncio.DatagramTransport] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Tasks nobody awaits: store calls past their deadline, cache fills (see _hold).
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._batch_tasks = 0  # of _tasks, those whose requests the load counts already
        self._pending: list[_Job] = []
        self._flush_scheduled = False
        self._in_progress = 0
        self._draining = False
        self._acct_pending: list[tuple[acct.AcctRecord, _Job]] = []
        self._acct_committing = 0  # records of batches handed to _commit, not yet done
        self._acct_timer: asyncio.TimerHandle | None = None
        self._partitions_until = 0.0
        self._partitions_lock = asyncio.Lock()
        self.spool = Spool(ctx.config.state_dir / "spool" / "accounting")
        self.quarantine = Spool(ctx.config.state_dir / "spool" / "quarantine")
        self._spooling = False
        self._nas_task: asyncio.Task[None] | None = None
        self._live_task: asyncio.Task[None] | None = None
        self._live_missed = False  # a live-session update failed: Redis may be behind
        self._pools: set[str] = set()
        self._reaper_task: asyncio.Task[None] | None = None
        self._hash_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pap-hash")
        self._workers: list[subprocess.Popen[bytes]] = []
        self._ports = PortClaim()
        self._handled = 0
        self.authlog: AuthLogWriter | None = None  # issue 21: made in start()
        self._pools6: set[str] = set()  # issue 21: netd-managed IPv6 pools

    # --- policies ---

    def check_policies(self, policies: PolicySet) -> None:
        self._pending_policy = load_policy(policies, self.dictionary, self._managed_plans)

    def apply_policies(self, policies: PolicySet) -> None:
        policy = self._pending_policy or load_policy(policies, self.dictionary, self._managed_plans)
        self._policy_set = policies
        self.engine = EngineConfig(
            self.dictionary, policy, self.sealer.derive(b"eap-state"), self.cfg.eap_state_ttl
        )
        self._pending_policy = None

    async def reload_managed_plans(self) -> None:
        """Plans created through the API: rebuild the policy when they changed. A set that
        does not load (a plan naming an attribute no longer in the dictionaries) leaves the
        current policy in force."""
        managed = await api_store.list_plans(self.ctx.pool)
        if managed == self._managed_plans or self._policy_set is None:
            return
        try:
            policy = load_policy(self._policy_set, self.dictionary, managed)
        except PolicyError as exc:
            self.ratelog.log(
                logging.ERROR, "managed-plans", "API-managed plans not applied", error=str(exc)
            )
            return
        self._managed_plans = managed
        self.engine = EngineConfig(
            self.dictionary, policy, self.sealer.derive(b"eap-state"), self.cfg.eap_state_ttl
        )
        log.info("API-managed plans applied", extra={"fields": {"plans": len(managed)}})

    # --- NAS clients ---

    async def reload_nas(self) -> None:
        rows = await store.list_nas(self.ctx.pool)
        entries = []
        for row in rows:
            try:
                entries.append(nas_from_row(row, self.sealer))
            except SealError:
                log.error(
                    "NAS secret cannot be opened with this secrets key; NAS ignored",
                    extra={"fields": {"nas": row.name}},
                )
        self.nas = NasTable(entries)
        self.metrics.nas_clients.set(len(self.nas))
        self._pools = await pools.pool_names(self.ctx.pool)
        self._pools6 = await pools6_store.pool_names(self.ctx.pool)  # issue 21

    async def _watch_nas(self) -> None:
        """Reload NAS clients, pools and API-managed plans on NOTIFY, and every
        nas_refresh_interval anyway."""

        async def reload() -> None:
            await self.reload_nas()
            await self.reload_managed_plans()

        await reload_on_notify(
            self.ctx.pool,
            (store.NAS_CHANNEL, api_store.PLANS_CHANNEL),
            reload,
            self.cfg.nas_refresh_interval,
            self.ratelog,
            "NAS clients not reloaded; keeping the current table",
        )

    # --- lifecycle ---

    async def start(self) -> None:
        if self.cfg.auth_log:  # issue 21: the authentication history, batched off the hot path
            self.authlog = AuthLogWriter(self.ctx.pool, self.ctx.cache, self.cfg.auth_log_retention)
        await self.reload_nas()
        await self.reload_managed_plans()
        loop = asyncio.get_running_loop()
        for host in self.cfg.listen:
            for port, is_acct in ((self.cfg.auth_port, False), (self.cfg.acct_port, True)):
                try:
                    if self.spawns_workers:  # the instance claims; its workers share
                        self._ports.claim("udp", host, port)
                    sock = bind_udp(host, port)
                except OSError as exc:
                    if ":" in host and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                        # A host without IPv6 (or without this address) still serves IPv4.
                        log.warning(
                            "IPv6 address not available; not listening on it",
                            extra={"fields": {"address": host, "error": str(exc)}},
                        )
                        break
                    raise StartupError(f"radius: cannot listen on [{host}]:{port}: {exc}") from None
                except PortTaken as exc:
                    raise StartupError(f"radius: {exc}") from None
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_Protocol, self, is_acct), sock=sock
                )
                self._transports.append(transport)
        if not self._transports:
            raise StartupError("radius: no address in radius.listen could be bound")
        self._nas_task = loop.create_task(self._watch_nas())
        if self.spawns_workers:  # one process per instance keeps the live sessions whole
            self._live_task = loop.create_task(self._watch_live())
            self._reaper_task = loop.create_task(self._reap())
        if self.spool.pending_segments():  # left by a previous run: replay it first
            self._spooling = True
            self._spawn(self._replay())
        if self.spawns_workers and self.cfg.workers > 1:
            self._spawn_workers(self.cfg.workers - 1)

    def endpoints(self) -> dict[str, str]:
        hosts = ",".join(self.cfg.listen)
        workers = f" ({self.cfg.workers} workers)" if self.cfg.workers > 1 else ""
        return {
            "radius_auth": f"udp {hosts} port {self.cfg.auth_port}{workers}",
            "radius_acct": f"udp {hosts} port {self.cfg.acct_port}{workers}",
        }

    def counters(self) -> dict[str, float]:
        return {"handled": self._handled, "inflight": self._load(), "nas": len(self.nas)}

    def _spawn_workers(self, count: int) -> None:
        args = [sys.executable, "-m", "daemons.cli"]
        if self.ctx.config_path is not None:
            args += ["--config", str(self.ctx.config_path)]
        for _ in range(count):
            self._workers.append(
                subprocess.Popen([*args, "radius-worker", "--parent", str(os.getpid())])
            )
        log.info(
            "radius workers started", extra={"fields": {"pids": [w.pid for w in self._workers]}}
        )

    async def drain(self) -> None:
        """Take no new requests, answer those in flight, then close the sockets."""
        self._draining = True
        self._commit_now()
        for worker in self._workers:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for transport in self._transports:
            transport.close()
        for worker in self._workers:
            await asyncio.to_thread(worker.wait)

    async def _watch_live(self) -> None:
        """Rebuild Redis's live sessions from the sessions table when Redis has lost them
        (restarted empty), or may have missed updates (unreachable for a while: it may be
        back with its old data, after a partition or from a snapshot). Not while the spool
        holds records the table has not got yet: the rebuild would leave their sessions out."""
        while True:
            try:
                lost = not await accounting.live_sessions_present(self.ctx.cache)
                if (lost or self._live_missed) and not self._spooling:
                    self._live_missed = False
                    live, removed = await accounting.rebuild_live_sessions(
                        self.ctx.pool, self.ctx.cache
                    )
                    log.info(
                        "live sessions rebuilt from the ledger",
                        extra={
                            "fields": {
                                "sessions": live,
                                "closed_removed": removed,
                                "reason": "lost" if lost else "missed updates",
                            }
                        },
                    )
            except (
                RedisError,
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                TimeoutError,
            ) as exc:
                self._live_missed = True
                self.ratelog.log(
                    logging.WARNING, "live-rebuild", "live sessions not checked", error=repr(exc)
                )
            await asyncio.sleep(self.cfg.live_sessions_check_interval)

    async def _reap(self) -> None:
        """Close sessions that missed their interim updates for 2.5 intervals."""
        while True:
            await asyncio.sleep(self.cfg.reaper_interval)
            try:
                n = await accounting.reap_stale_sessions(
                    self.ctx.pool, self.ctx.cache, 2.5 * self.cfg.interim_interval, time.time()
                )
            except (
                RedisError,
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                TimeoutError,
            ) as exc:
                self.ratelog.log(
                    logging.WARNING, "reaper", "stale sessions not reaped", error=repr(exc)
                )
                continue
            if n:
                self.metrics.reaped.inc(n)
                log.info("stale sessions closed", extra={"fields": {"sessions": n}})

    async def close(self) -> None:
        for task in (self._live_task, self._reaper_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._nas_task is not None:
            self._nas_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._nas_task
        for worker in self._workers:
            if worker.poll() is None:
                worker.kill()
        self._ports.release()
        self._hash_pool.shutdown(wait=False, cancel_futures=True)
        if self.authlog is not None:  # issue 21: what is buffered is written
            await self.authlog.close()

    # --- the hot path ---

    def _drop(self, reason: DropReason, nas: str, addr: Any, detail: str = "") -> None:
        self.metrics.drops.labels(nas, reason.value).inc()
        self.ratelog.log(
            logging.INFO,
            reason.value,
            "request dropped",
            reason=reason.value,
            nas=nas or None,
            source=addr[0],
            detail=detail or None,
        )

    def _rate_limited(self, nas: Nas, addr: Any) -> None:
        """Over the NAS's rate: counted, and logged at most once per NAS per 10 s."""
        self.metrics.child(self.metrics.drops, nas.name, DropReason.RATE_LIMITED.value).inc()
        self.ratelog.log(
            logging.WARNING,
            f"rate_limited:{nas.name}",
            "NAS over its rate limit; requests dropped",
            reason=DropReason.RATE_LIMITED.value,
            nas=nas.name,
            source=addr[0],
            limit=self.cfg.nas_rate_limit,
            burst=self.cfg.nas_rate_burst,
        )

    def _admit(
        self, data: bytes, addr: Any, transport: asyncio.DatagramTransport, accounting: bool
    ) -> tuple[Packet, Nas, tuple[Any, ...], float] | None:
        """What both ports do first: NAS by source, decode, the port's authenticator check,
        the duplicate cache. None when the datagram was dropped or answered from the cache."""
        if self._draining:  # the NAS retries another server; in-flight work still finishes
            return None
        nas = self.nas.lookup(addr[0])
        if nas is None:
            self._drop(DropReason.UNKNOWN_NAS, "", addr)
            return None
        now = time.monotonic()
        # The per-NAS limit comes before any work (decode, MD5), so what one NAS sends
        # cannot starve the others. One bucket per NAS and port: with one for both, the
        # port the event loop reads first took the tokens (measured: 414 Access-Requests
        # against 33 Accounting-Requests answered from a NAS sending both alike), and a
        # rebooting BNG's logins would starve its accounting, which must not be lost.
        buckets = self._nas_buckets
        if buckets is not None and not buckets.take((nas.name, accounting), now):
            self._rate_limited(nas, addr)
            return None
        try:
            pkt = decode(data)
            if accounting and pkt.code == Code.STATUS_SERVER:  # RFC 5997 §3, §4
                check_message_authenticator(pkt, nas.secret, True)
            elif accounting:
                if pkt.code != Code.ACCOUNTING_REQUEST:
                    raise DecodeError(DropReason.UNEXPECTED_CODE, str(pkt.code))
                # RFC 2866 §3: the Request Authenticator is an MD5 keyed over the packet.
                check_request_authenticator(pkt, nas.secret)
            else:
                if pkt.code not in (Code.ACCESS_REQUEST, Code.STATUS_SERVER):
                    raise DecodeError(DropReason.UNEXPECTED_CODE, str(pkt.code))
                check_message_authenticator(
                    pkt,
                    nas.secret,
                    nas.require_message_authenticator or pkt.code == Code.STATUS_SERVER,
                )
        except DecodeError as exc:
            self._drop(exc.reason, nas.name, addr, exc.detail)
            return None
        self.metrics.child(self.metrics.requests, nas.name, _CODE_NAMES[pkt.code]).inc()
        key = (addr[0], addr[1], pkt.identifier, pkt.authenticator)
        cached = self.dupes.get(key, now)
        if cached is not None:
            if not cached:  # _IN_PROGRESS
                self._drop(DropReason.DUPLICATE_IN_PROGRESS, nas.name, addr)
            else:
                self.metrics.duplicates.labels(nas.name).inc()
                transport.sendto(cached, addr)
            return None
        return pkt, nas, key, now

    def received(self, data: bytes, addr: Any, transport: asyncio.DatagramTransport) -> None:
        t0 = time.perf_counter()
        admitted = self._admit(data, addr, transport, accounting=False)
        if admitted is None:
            return
        pkt, nas, key, now = admitted
        try:
            username = user_name(pkt)
        except DecodeError as exc:
            self._drop(exc.reason, nas.name, addr, exc.detail)
            return
        job = _Job(pkt, nas, addr, transport, key, t0, username)
        if pkt.code == Code.STATUS_SERVER:  # RFC 5997 §4.1: answer with Access-Accept
            self._send(Code.ACCESS_ACCEPT, job, [], "status")
            return
        load = self._load()
        if load >= self.cfg.max_inflight or self.engine is None:
            self._drop(DropReason.OVERLOAD, nas.name, addr)
            return
        if load >= self._peak:
            self._peak = load + 1
            self.metrics.inflight_peak.set(self._peak)
        self.dupes.put(key, _IN_PROGRESS, now)
        self._pending.append(job)
        if not self._flush_scheduled:
            # Everything that arrives before the loop comes round joins this batch: one
            # Redis round trip for all of them instead of one each.
            self._flush_scheduled = True
            self._spawn(self._flush(), batch=True)

    def _load(self) -> int:
        """Requests held, which radius.max_inflight bounds: Access-Requests waiting for
        their batch's lookup or being decided, Accounting-Requests waiting for their batch or
        in a commit, plus the tasks that hold no batch (a hash check, an allocation, lease
        and quota updates). A batch task is not counted again: its requests are."""
        return (
            len(self._pending)
            + self._in_progress
            + len(self._acct_pending)
            + self._acct_committing
            + len(self._tasks)
            - self._batch_tasks
        )

    def _spawn(self, coro: Any, batch: bool = False) -> None:
        """Run ``coro`` as a tracked task; ``batch`` for one whose requests are counted in
        the load already (a lookup batch, a commit)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        if batch:
            self._batch_tasks += 1
            task.add_done_callback(self._batch_done)
        task.add_done_callback(self._done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batch_tasks -= 1

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.metrics.inflight.set(self._load())
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.ratelog.log(logging.ERROR, "internal", "request failed", error=repr(exc))

    def _send(
        self,
        code: int,
        job: _Job,
        attrs: list[tuple[int, bytes]],
        method: str,
        message_auth: bool = True,
    ) -> None:
        try:
            reply = encode_reply(code, job.pkt, attrs, job.nas.secret, message_auth)
        except ValueError as exc:
            self.dupes.forget(job.key)
            self._drop(DropReason.MALFORMED, job.nas.name, job.addr, f"reply not encodable: {exc}")
            return
        job.transport.sendto(reply, job.addr)
        self.dupes.put(job.key, reply, time.monotonic())
        self._handled += 1
        self.metrics.child(self.metrics.responses, job.nas.name, _CODE_NAMES[code]).inc()
        self.metrics.child(self.metrics.latency, method).observe(time.perf_counter() - job.t0)

    async def _flush(self) -> None:
        self._flush_scheduled = False
        jobs, self._pending = self._pending, []
        self._in_progress += len(jobs)
        self.metrics.inflight.set(self._load())
        decided = 0
        try:
            names = list({j.username for j in jobs if j.username is not None})
            hits, misses = await self._cached(names) if names else ({}, {})
            # The cache's hits are decided now: a PostgreSQL that is slow or unreachable
            # (a lookup held for its connect or command timeout) holds only the misses,
            # never the cached subscribers of the same batch.
            for job in jobs:
                if job.username in misses:
                    continue
                # Counted out before its decision: one that spawns a task is counted there.
                decided += 1
                self._in_progress -= 1
                row, sessions = hits.get(job.username or "", (None, 0))
                self._decide(job, row, sessions)
            if not misses:
                return
            found, failed = await self._fetch(misses)
            for job in jobs:
                if job.username not in misses:
                    continue
                decided += 1
                self._in_progress -= 1
                if job.username in failed:
                    self.dupes.forget(job.key)
                    self._drop(DropReason.STORE_ERROR, job.nas.name, job.addr)
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
            cached = await _within(
                store.cached_subscribers(self.ctx.cache, names),
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
        for name, (hit, row, sessions) in cached.items():
            if hit:
                self.metrics.child(self.metrics.lookups, "redis" if row else "redis_negative").inc()
                out[name] = (row, sessions)
            else:
                misses[name] = sessions
        return out, misses

    async def _fetch(
        self, misses: dict[str, int]
    ) -> tuple[dict[str, tuple[store.SubscriberRow | None, int]], set[str]]:
        """The cache's misses from PostgreSQL (then cached), with their live session counts;
        also the names that could not be looked up (PostgreSQL failing too)."""
        names = list(misses)
        self.metrics.lookups.labels("postgres").inc(len(names))
        try:
            found = await store.fetch_subscribers_db(self.ctx.pool, names)
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
        _hold(asyncio.get_running_loop().create_task(self._fill_cache(rows)), self._abandoned)
        return {n: (found.get(n), misses[n]) for n in names}, set()

    async def _fill_cache(self, rows: dict[str, store.SubscriberRow | None]) -> None:
        with contextlib.suppress(RedisError, OSError):
            await store.cache_subscribers(self.ctx.cache, rows, self.cfg.negative_cache_ttl)

    def _decide(self, job: _Job, row: store.SubscriberRow | None, sessions: int) -> None:
        engine = self.engine
        assert engine is not None
        sub: Subscriber | None = None
        try:
            if row is not None:
                try:
                    sub = open_subscriber(row, self.sealer, method_of(job.pkt))
                except SealError:
                    log.error(
                        "subscriber credentials cannot be opened with this key",
                        extra={"fields": {"user": job.username}},
                    )
            outcome = authenticate(job.pkt, job.nas, sub, sessions, engine, time.time(), os.urandom)
        except DecodeError as exc:
            self.dupes.forget(job.key)
            self._drop(exc.reason, job.nas.name, job.addr, exc.detail)
            return
        if isinstance(outcome, HashCheck):
            self._spawn(self._check_hash(job, sub, sessions, outcome))
            return
        self._finish(outcome, job)

    def _finish(self, outcome: Outcome, job: _Job) -> None:
        """Reply, after allocating an address when the plan names one of our pools."""
        if outcome.code == Code.ACCESS_ACCEPT and pools6.wanted(outcome, self._pools6):
            self._spawn(self._allocate6(outcome, job))  # issue 21: IPv6 prefixes first
            return
        if outcome.code == Code.ACCESS_ACCEPT and self._pools:
            pool = next(
                (
                    a.value
                    for a in outcome.attributes
                    if a.name == "Framed-Pool" and a.value in self._pools
                ),
                None,
            )
            if pool is not None:
                self._spawn(self._allocate(outcome, job, str(pool)))
                return
        self._reply(outcome, job)

    async def _allocate6(self, outcome: Outcome, job: _Job) -> None:
        """Issue 21: a prefix from each netd IPv6 pool the Accept names, then on as before."""
        given: dict[str, str] = {}
        try:
            for attr, name in pools6.wanted(outcome, self._pools6):
                prefix = await pools6_store.allocate(
                    self.ctx.pool, name, job.username or "", job.nas.name
                )
                if prefix is None:
                    self._reply(Outcome(Code.ACCESS_REJECT, outcome.method, "pool6_exhausted"), job)
                    return
                given[attr] = prefix
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.dupes.forget(job.key)
            self._drop(DropReason.STORE_ERROR, job.nas.name, job.addr, repr(exc))
            return
        self._finish(pools6.with_prefixes(outcome, given), job)

    async def _allocate(self, outcome: Outcome, job: _Job, pool: str) -> None:
        try:
            address = await pools.allocate(self.ctx.pool, pool, job.username or "", job.nas.name)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.dupes.forget(job.key)
            self._drop(DropReason.STORE_ERROR, job.nas.name, job.addr, repr(exc))
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
        self, job: _Job, sub: Subscriber | None, sessions: int, check: HashCheck
    ) -> None:
        """PAP against a one-way hash: hundreds of ms of CPU, off the event loop."""
        engine = self.engine
        assert engine is not None
        ok = await asyncio.get_running_loop().run_in_executor(
            self._hash_pool, hashes.verify, check.hash, check.password
        )
        outcome = authenticate(job.pkt, job.nas, sub, sessions, engine, time.time(), os.urandom, ok)
        assert not isinstance(outcome, HashCheck)
        self._finish(outcome, job)

    def _reply(self, outcome: Outcome, job: _Job) -> None:
        try:
            attrs = self.dictionary.encode(
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
        self._send(outcome.code, job, [*attrs, *outcome.raw], outcome.method.value)
        if self.authlog is not None:  # issue 21: recorded, never waited for
            self.authlog.add(job.pkt, job.nas.name, job.username, outcome, time.time())

    # --- accounting: acknowledged only once durable ---

    def received_accounting(
        self, data: bytes, addr: Any, transport: asyncio.DatagramTransport
    ) -> None:
        t0 = time.perf_counter()
        admitted = self._admit(data, addr, transport, accounting=True)
        if admitted is None:
            return
        pkt, nas, key, now = admitted
        if pkt.code == Code.STATUS_SERVER:  # RFC 5997 §4: answer with Accounting-Response
            job = _Job(pkt, nas, addr, transport, key, t0, None)
            self._send(Code.ACCOUNTING_RESPONSE, job, [], "status")
            return
        # Shed before parsing (the dearest step left): under overload a drop costs the
        # authenticator check and no more.
        load = self._load()
        if load >= self.cfg.max_inflight:
            self._drop(DropReason.OVERLOAD, nas.name, addr)
            return
        try:
            record = acct.parse(pkt, nas.name, self.dictionary, time.time())
        except DecodeError as exc:
            self._drop(exc.reason, nas.name, addr, exc.detail)
            return
        if load >= self._peak:
            self._peak = load + 1
            self.metrics.inflight_peak.set(self._peak)
        self.dupes.put(key, _IN_PROGRESS, now)
        self._acct_pending.append(
            (record, _Job(pkt, nas, addr, transport, key, t0, record.username))
        )
        if len(self._acct_pending) >= self.cfg.acct_batch_max:
            self._commit_now()
        elif self._acct_timer is None:
            self._acct_timer = asyncio.get_running_loop().call_later(
                self.cfg.acct_batch_window, self._commit_now
            )

    def _commit_now(self) -> None:
        if self._acct_timer is not None:
            self._acct_timer.cancel()
            self._acct_timer = None
        batch, self._acct_pending = self._acct_pending, []
        if batch:
            self._acct_committing += len(batch)
            self._spawn(self._commit(batch), batch=True)

    async def _commit(self, batch: list[tuple[acct.AcctRecord, _Job]]) -> None:
        """Make the batch durable (ledger, or the local spool when PostgreSQL is down);
        then, and only then, send the Accounting-Responses. The batch's requests count in
        the load (``_acct_committing``) until they are answered."""
        try:
            await self._commit_batch(batch)
        finally:
            self._acct_committing -= len(batch)

    async def _commit_batch(self, batch: list[tuple[acct.AcctRecord, _Job]]) -> None:
        records = [r for r, _ in batch]
        t0 = time.perf_counter()
        closed: list[tuple[str, str, str | None]] = []
        if self._spooling:  # older records wait in the spool: keep the order
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
                self.dupes.forget(job.key)
                self.metrics.drops.labels(job.nas.name, DropReason.STORE_ERROR.value).inc()
            return
        self.metrics.acct_commit.observe(time.perf_counter() - t0)
        self.metrics.acct_batch.observe(len(batch))
        # Live sessions first, so that a NAS (or Simultaneous-Use) acting on the ack sees
        # them; a Redis outage does not hold the acks back.
        try:
            await _within(
                accounting.update_live_sessions(self.ctx.cache, records, closed),
                self.cfg.cache_timeout,
                self._abandoned,
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._live_missed = True
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
            self._send(Code.ACCOUNTING_RESPONSE, job, [], "accounting", message_auth=False)
        if self._pools:
            self._spawn(self._leases(records))
        if any(r.status == acct.AcctStatus.INTERIM_UPDATE for r in records):
            self._spawn(self._quotas(records))

    async def _quotas(self, records: list[acct.AcctRecord]) -> None:
        """On Interim-Update: a plan's monthly data cap or time limit, once exceeded, runs
        its action (CoA to another plan, or Disconnect) once per session, audited."""
        engine = self.engine
        interims = {
            r.unique_id: r
            for r in records
            if r.status == acct.AcctStatus.INTERIM_UPDATE and r.username
        }
        if (
            engine is None
            or not interims
            or not any(p.has_quota for p in engine.policy.plans.values())
        ):
            return
        policy = engine.policy
        try:
            names = list({r.username for r in interims.values()})
            found = await store.fetch_subscribers_db(self.ctx.pool, names)
            for r in interims.values():
                sub = found.get(r.username)
                plan = policy.plan_for(sub.plan) if sub and sub.state == "active" else None
                if plan is None or not plan.has_quota or plan.quota_action is None:
                    continue
                octets, seconds = await accounting.month_usage(
                    self.ctx.pool, r.username, time.time()
                )
                over = (plan.data_cap is not None and octets >= plan.data_cap) or (
                    plan.time_limit is not None and seconds >= plan.time_limit
                )
                if not over or not await accounting.claim_quota_action(self.ctx.pool, r.unique_id):
                    continue
                found_sessions = await accounting.find_sessions(
                    self.ctx.pool, unique_id=r.unique_id
                )
                if not found_sessions:
                    continue
                nas = self.nas.lookup_name(r.nas)
                if plan.quota_action == "disconnect":
                    kind, extra = "disconnect", []
                else:
                    kind = "coa"
                    extra = plan_change(
                        policy,
                        plan.quota_action.removeprefix("coa:"),
                        nas.vendor if nas else "generic",
                    )
                outcome = await act(
                    self.ctx.pool,
                    self.sealer,
                    self.dictionary,
                    policy,
                    found_sessions[0],
                    kind,
                    extra,
                    actor="quota",
                )
                self.metrics.quota_actions.labels(kind, outcome.result).inc()
                log.info(
                    "quota exceeded: action taken",
                    extra={
                        "fields": {
                            "user": r.username,
                            "plan": plan.name,
                            "octets": octets,
                            "seconds": seconds,
                            "action": plan.quota_action,
                            "result": outcome.result,
                        }
                    },
                )
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            TimeoutError,
            CoaError,
            SealError,
            KeyError,
            ValueError,
        ) as exc:
            self.ratelog.log(logging.WARNING, "quota", "quota check failed", error=repr(exc))

    async def _leases(self, records: list[acct.AcctRecord]) -> None:
        """Interim refreshes an address lease, Stop releases it (best effort: a lease left
        behind expires by itself)."""
        refresh = [
            (r.framed_ip, r.username)
            for r in records
            if r.framed_ip and r.status in (acct.AcctStatus.START, acct.AcctStatus.INTERIM_UPDATE)
        ]
        release = [
            (r.framed_ip, r.username)
            for r in records
            if r.framed_ip and r.status == acct.AcctStatus.STOP
        ]
        try:
            await pools.refresh_many(self.ctx.pool, refresh)
            await pools.release_many(self.ctx.pool, release)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.ratelog.log(
                logging.WARNING, "leases", "address leases not updated", error=repr(exc)
            )

    async def _ledger_within_deadline(
        self, records: list[acct.AcctRecord]
    ) -> list[tuple[str, str, str | None]]:
        """The ledger commit, or TimeoutError after radius.acct_commit_timeout.

        A PostgreSQL that hangs rather than refuses must not hold the acks past the NAS's
        retransmissions: past the deadline the batch is spooled. If the abandoned commit
        landed after all, the spool's replay adds nothing: the ledger drops records by
        idempotency key."""
        return await _within(
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
        if now >= self._partitions_until:
            async with self._partitions_lock:  # one batch makes them; the others wait
                if now >= self._partitions_until:
                    await accounting.ensure_partitions(self.ctx.pool, now)
                    await accounting.prune_dedup(self.ctx.pool)
                    self._partitions_until = now + 3600
        for attempt in range(3):
            try:
                _, closed = await accounting.append_accounting(self.ctx.pool, records)
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
        if not self._spooling:
            self._spooling = True
            self._spawn(self._replay())
        return True

    async def _replay(self) -> None:
        """Move the spool into the ledger, oldest segment first, once PostgreSQL answers.
        Replay is idempotent (the dedup gate): a crash in the middle repeats nothing."""
        backoff = 0.5
        while True:
            item = await asyncio.to_thread(self.spool.oldest)
            if item is None:
                self._spooling = False
                log.info("accounting spool replayed into the ledger")
                return
            path, rows = item
            records = [acct.AcctRecord(**row) for row in rows]
            try:
                for i in range(0, len(records), 1000):
                    await self._to_ledger_sorted(records[i : i + 1000])
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                if self._draining:
                    return  # the spool stays on disk; the next start replays it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            await asyncio.to_thread(self.spool.remove, path)
            self.metrics.acct_replayed.inc(len(records))


def _calling(pkt: Packet) -> str | None:
    raw = pkt.get(Attr.CALLING_STATION_ID)
    return raw.decode("utf-8", "replace") if raw is not None else None


def die_with_parent(parent: int) -> None:
    """In a worker: SIGTERM when the parent dies (PR_SET_PDEATHSIG), or now if it already
    has."""
    import ctypes  # noqa: PLC0415 - Linux only, workers only

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


class RadiusWorker(RadiusService):
    """A worker process: the same service, without children of its own."""

    spawns_workers: ClassVar[bool] = False


__all__ = ["NasTable", "RadiusService", "RadiusWorker", "die_with_parent"]
