"""The ACS daemon: CWMP over HTTP(S) on ``acs.host:acs.port`` (7547).

A plain ASGI app on uvicorn. A session is found by its TCP connection (uvicorn keeps one
``client`` address per connection) and, failing that, by the ``netd_acs`` cookie; an Inform
always starts a new session, whatever cookie it carries. The session's decisions are
``daemons.acs.engine``; this shell reads bodies (gzip, size cap), authenticates CPEs, and
records what the engine reports in PostgreSQL before it answers.

This module owns the HTTP/session shell (the session table, Inform and the steps after it,
file requests handed to :mod:`daemons.acs.files`) and the daemon (STUN, connection-request
dispatcher, sweeps, drain). What a request goes through before the engine (rate-limit key,
body reading, cookie) is :mod:`daemons.acs.intake`; a live session and writing its effects
:mod:`daemons.acs.recording`; the metrics :mod:`daemons.acs.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import time
from typing import Any, ClassVar

import asyncpg
from prometheus_client import Counter

from daemons.acs import cwmp, files, guard, planning, pokes, presets
from daemons.acs import engine as eng
from daemons.acs.cpeauth import CpeAuth
from daemons.acs.intake import (
    COOKIE,
    KNOWN_METHODS,
    RATE_TABLE_MAX,
    Receive,
    Reject,
    Send,
    rate_key,
    read_body,
    session_cookie,
)
from daemons.acs.metrics import AcsMetrics
from daemons.acs.recording import Live, Recorder
from daemons.core.batch import Batcher
from daemons.core.config import is_loopback
from daemons.core.http import HttpServer
from daemons.core.http import hostport as _hostport
from daemons.core.lifecycle import Context, Daemon
from daemons.core.policies import PolicySet
from daemons.core.portclaim import PortTaken, probe
from daemons.core.ratelimit import KeyedBuckets
from daemons.core.ratelog import RateLimitedLog
from daemons.store import acs as store
from daemons.store import acs_session as session_store
from daemons.store.events import append_event

log = logging.getLogger("netd.acs")
#: Informs written in one statement at most
INFORM_BATCH = 128


class AcsApp:
    """The CWMP endpoint (any path, POST)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.acs
        self.engine_cfg = eng.EngineConfig(batch=self.cfg.batch)
        self.by_conn: dict[tuple[Any, ...], Live] = {}
        self.by_sid: dict[str, Live] = {}
        self.by_device: dict[str, Live] = {}
        self.metrics = AcsMetrics(ctx.registry)
        self._children: dict[tuple[int, str], Counter] = {}  # bounded: fixed label sets
        self.recorder = Recorder(ctx, self.cfg, self.metrics)
        #: Informs that come while one is written go together in the next statement
        self.informs: Batcher[session_store.InformWrite, session_store.Informed] = Batcher(
            lambda batch: session_store.informs(self.db, batch, self.cfg.task_max_attempts),
            max_batch=INFORM_BATCH,
        )
        self.ratelog = RateLimitedLog(log)
        self._background: set[asyncio.Task[None]] = set()
        password = self.cfg.password.get_secret_value() if self.cfg.password else ""
        self._global = (self.cfg.username, password)
        self.auth = CpeAuth(ctx.pool, ctx.sealer, self.cfg.auth, self._global)
        self.files = file_store(ctx.config)
        self.limits = guard.Limits(
            frozenset(self.cfg.auto_register_ouis),
            frozenset(self.cfg.auto_register_product_classes),
            guard.parse_networks(self.cfg.auto_register_networks),
        )
        self.planner = planning.Planner(
            ctx.pool, self.cfg, self.files, self._global, self.ratelog, ctx.sealer
        )
        self.limiter: KeyedBuckets[str] | None = None
        if self.cfg.rate_limit > 0:
            self.limiter = KeyedBuckets(self.cfg.rate_limit, self.cfg.rate_burst, RATE_TABLE_MAX)
        self.metrics.rate_table.set_function(lambda: len(self.limiter or ()))

    def _count(self, counter: Counter, label: str) -> None:
        """``counter{label}`` + 1, its child looked up once (prometheus_client's
        ``labels`` validates and locks on every call: it showed in the per-message profile)."""
        child = self._children.get((id(counter), label))
        if child is None:
            child = self._children[(id(counter), label)] = counter.labels(label)
        child.inc()

    def _over_limit(self, scope: dict[str, Any]) -> list[tuple[bytes, bytes]] | None:
        """One token from the request's source address (acs.rate_limit per second, a burst
        of acs.rate_burst); None if taken, else the Retry-After header of the refusal.

        Every HTTP request counts, whatever it is: a CPE's session is a few dozen messages,
        well inside the burst, while CPE-initiated requests inside a session (GetRPCMethods,
        TransferComplete, an unsupported method) are not bounded by the engine.
        """
        if self.limiter is None:
            return None
        client = scope.get("client")
        ip = rate_key(str(client[0])) if client else ""
        now = time.monotonic()
        if self.limiter.take(ip, now):
            return None
        wait = max(1, math.ceil(self.limiter.retry_after(ip, now)))
        self.metrics.rate_limited.inc()
        self.ratelog.log(
            logging.WARNING,
            "rate-limited",
            "CWMP requests over the per-source-IP rate limit refused (503)",
            client=ip,
            rate_limit=self.cfg.rate_limit,
            rate_burst=self.cfg.rate_burst,
        )
        return [(b"retry-after", str(wait).encode())]

    # --- ASGI ---

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status, body = 500, b""
        headers: list[tuple[bytes, bytes]] = []
        refused = self._over_limit(scope)
        if refused is not None:
            # A busy ACS refuses a session with 503 and Retry-After (TR-069, RFC 9110 15.6.4);
            # the body is not read, and the connection is closed after the answer.
            refused += [(b"content-length", b"0"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 503, "headers": refused})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["method"] in ("GET", "HEAD") and scope["path"].startswith("/files/"):
            try:
                allowed = await self.auth.file_request(scope)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                self.ratelog.log(logging.WARNING, "acs-store", "store unavailable", error=repr(exc))
                allowed = False
            mode = "basic" if self.cfg.auth == "basic" else "digest"
            await files.serve(
                self.files,
                self.ctx.pool,
                scope,
                receive,
                send,
                lambda _sc: allowed,
                lambda: self.auth.challenge(mode),
            )
            return
        try:
            status, headers, body = await self._handle(scope, receive)
        except Reject as exc:
            self.metrics.rejects.labels(exc.args[0].split(":")[0][:40]).inc()
            self.ratelog.log(
                logging.INFO,
                f"reject-{exc.status}",
                "CWMP request refused",
                status=exc.status,
                reason=str(exc),
                client=str(scope.get("client")),
            )
            status, headers, body = exc.status, exc.headers, b""
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.ratelog.log(logging.WARNING, "acs-store", "store unavailable", error=repr(exc))
            self._drop(scope)
            status, headers, body = 503, [(b"retry-after", b"30")], b""
        except Exception as exc:  # noqa: BLE001 - a CPE must never take the daemon down
            self.ratelog.log(logging.ERROR, "acs-bug", "unhandled error", error=repr(exc))
            self._drop(scope)
            status, headers, body = 500, [], b""
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        if body:
            headers.append((b"content-type", b'text/xml; charset="utf-8"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _read(self, scope: dict[str, Any], receive: Receive) -> bytes:
        """The request body, whole, within ``acs.session_timeout``: a CPE that sends its
        body a few bytes at a time (or stops half way) is dropped like an idle session, the
        tasks its session had started go back to the queue, and it gets a 408."""
        try:
            async with asyncio.timeout(self.cfg.session_timeout):
                return await read_body(scope, receive, self.cfg.max_body)
        except TimeoutError:
            self._drop(scope, "read-timeout")
            raise Reject(
                408,
                f"body-timeout: not received in {self.cfg.session_timeout:g} s",
                [(b"connection", b"close")],
            ) from None

    # --- sessions ---

    def _conn(self, scope: dict[str, Any]) -> tuple[Any, ...]:
        return (tuple(scope.get("client") or ()), tuple(scope.get("server") or ()))

    def _find(self, scope: dict[str, Any]) -> Live | None:
        live = self.by_conn.get(self._conn(scope))
        if live is None:
            cookie = session_cookie(scope)
            live = self.by_sid.get(cookie) if cookie else None
            if live is not None:  # the CPE reconnected: follow it
                self.by_conn.pop(live.conn, None)
                live.conn = self._conn(scope)
                self.by_conn[live.conn] = live
        return live

    def _drop(self, scope: dict[str, Any], outcome: str = "error") -> None:
        live = self.by_conn.get(self._conn(scope))
        if live is not None:
            self._forget(live, outcome)

    def _forget(self, live: Live, outcome: str, later: bool = True) -> list[tuple[int, int]]:
        """Drop a session; its started, unanswered tasks go back to the queue, in the
        background unless ``later`` is False: then the caller awaits ``_requeue`` of the
        leases returned."""
        if self.by_conn.get(live.conn) is live:
            del self.by_conn[live.conn]
        if self.by_sid.get(live.sid) is live:
            del self.by_sid[live.sid]
        if self.by_device.get(live.session.device_id) is live:
            del self.by_device[live.session.device_id]
        self._count(self.metrics.sessions, outcome)
        self.metrics.seconds.observe(time.monotonic() - live.started)
        self.metrics.live.set(len(self.by_sid))
        unfinished = list(live.tasks.items())
        live.tasks = {}
        if unfinished and later:
            task = asyncio.get_running_loop().create_task(self._requeue(unfinished))
            self._background.add(task)  # held until done: the loop keeps weak references
            task.add_done_callback(self._background.discard)
        return unfinished

    async def _requeue(self, leases: list[tuple[int, int]]) -> None:
        if not leases:
            return
        try:
            await store.requeue_unfinished(
                self.ctx.pool, leases, self.cfg.task_max_attempts, self.cfg.task_backoff
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self.ratelog.log(logging.WARNING, "acs-requeue", "tasks not requeued", error=repr(exc))

    def sweep(self) -> int:
        """Drop sessions idle longer than session_timeout; how many."""
        limit = time.monotonic() - self.cfg.session_timeout
        stale = [s for s in list(self.by_sid.values()) if s.last < limit]
        for live in stale:
            self._forget(live, "timeout")
        if self.limiter is not None:
            self.limiter.prune(time.monotonic())  # idle sources: their memory back
        return len(stale)

    async def _handle(
        self, scope: dict[str, Any], receive: Receive
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if scope["method"] != "POST":
            raise Reject(405, "method: CWMP is POST", [(b"allow", b"POST")])
        body = await self._read(scope, receive)
        live = self._find(scope)
        try:
            env = cwmp.parse(body)
        except cwmp.EnvelopeError as exc:
            if live is not None:
                self._forget(live, "bad-envelope")
            raise Reject(400, f"envelope: {exc}") from None
        self._count(
            self.metrics.rpcs, env.method or "empty" if env.method in KNOWN_METHODS else "other"
        )
        if env.method == "Inform":
            # The CPE left its earlier session (it dropped the connection, rebooted): the
            # tasks that session started go back to the queue, with backoff, before this
            # session picks its tasks, so they are not restarted at once.
            earlier = self.by_device.get(env.args["device"].key)
            for old in {id(x): x for x in (live, earlier) if x is not None}.values():
                await self._requeue(self._forget(old, "replaced", later=False))
            return await self._inform(scope, env)
        if live is None:
            raise Reject(400, "no session: a session starts with an Inform")
        async with live.lock:
            live.last = time.monotonic()
            try:
                step = live.session.receive(env)
            except eng.SessionError as exc:
                self._forget(live, "protocol")
                raise Reject(400, f"protocol: {exc}") from None
            cancelled = await self._record(live, step)
            while step.task is not None and cancelled:
                live.tasks.pop(step.task.id, None)  # cancelled before its RPC went out
                step = live.session.withdraw(step.task.id)
                cancelled = await self._record(live, step)
            if step.body is None:
                live.tasks = {}  # every started task has answered
                self._forget(live, "ok")
                return (200 if self.cfg.end_with_200 else 204), [], b""
            cwmp_id = step.reply_to if step.echo else secrets.token_hex(4)
            return 200, [], cwmp.envelope(live.session.ns, cwmp_id, step.body)

    @property
    def db(self) -> asyncpg.Pool:
        """The session verbs' pool (``store.acs_session.open_session_pool``), opened by
        the service's start; the shared pool until then."""
        return self.recorder.db

    async def _record(self, live: Live, step: eng.Step) -> bool:
        """Record a step's effects; whether the task of its RPC was cancelled meanwhile."""
        task = step.task.id if step.task is not None else None
        return await self.recorder.record(live, step.effects, task)

    async def _inform(
        self, scope: dict[str, Any], env: cwmp.Envelope
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        session = eng.Session(self.engine_cfg, env)
        client = scope.get("client")
        ip = str(client[0]) if client else None
        dev = session.device
        refused = guard.may_register(self.limits, dev.oui, dev.product_class, ip)
        # Presets read the device as this Inform left it and may queue a firmware Download
        # that this session starts: then the tasks start after them, else in one statement.
        at_once = not self.planner.presets

        async def write(admitted: bool, trusted: bool) -> session_store.Informed:
            one = session_store.InformWrite(
                session.device,
                session.ns,
                session.root,
                ip,
                session.events,
                session.inform_params,
                self.cfg.auto_register and refused is None,
                admitted,
                trusted,
            )
            if at_once:  # with the Informs of other sessions, in one statement
                return await self.informs.submit(one)
            got = await session_store.informs(self.db, [one], self.cfg.task_max_attempts, False)
            return got[0]

        # The CPE proves the global credentials (acs.auth), or its own: the statement
        # writes nothing for a device that has its own, and returns them to check first.
        mode = self.cfg.auth
        admitted = mode == "none" or self.auth.verify(scope, mode, self._global)
        informed = await write(admitted, False)
        if informed.own is not None:
            mode = "basic" if mode == "basic" else "digest"
            own = store.open_credentials(self.ctx.sealer, session.device_id, *informed.own)
            if not self.auth.verify(scope, mode, own):
                raise Reject(401, "auth: credentials missing or wrong", self.auth.challenge(mode))
            informed = await write(admitted, True)
        elif not admitted:
            raise Reject(401, "auth: credentials missing or wrong", self.auth.challenge(mode))
        if not informed.written:
            why = refused if self.cfg.auto_register and refused else "acs.auto_register is off"
            raise Reject(403, f"unknown device: {why}")
        discovered, listed = informed.discovered, informed.listed
        if not informed.known:
            with contextlib.suppress(Exception):
                await append_event(
                    self.ctx.pool,
                    "acs",
                    "cpe.registered",
                    subject=session.device_id,
                    data={"ip": ip, "events": session.events},
                    cache=self.ctx.cache,
                )
        preset_values = await self.planner.preset_values(session)
        started = informed.tasks
        if not at_once:
            started = await session_store.start_tasks(
                self.db, session.device_id, self.cfg.task_max_attempts
            )
        tasks = [await self.planner.prepare(t, session.device_id) for t in started]
        unread = None
        if listed and not discovered:  # an earlier session listed the tree: resume
            unread = await store.unread_names(self.db, session.device_id)
        session.plan(tasks, discovered, preset_values, unread)
        sid = secrets.token_urlsafe(18)
        live = Live(
            session,
            sid,
            self._conn(scope),
            ip,
            tasks={t.id: t.attempts for t in tasks},
            kinds=tasks,
        )
        if session.confirmed:  # carried out before the ACS could record it: closed, not resent
            await self.recorder.record(live, session.confirmed)
        self.by_conn[live.conn] = live
        self.by_sid[sid] = live
        self.by_device[session.device_id] = live
        self.metrics.live.set(len(self.by_sid))
        step = session.first(env)
        cookie = f"{COOKIE}={sid}; Path=/; HttpOnly".encode()
        return (
            200,
            [(b"set-cookie", cookie)],
            cwmp.envelope(session.ns, env.cwmp_id, step.body or ""),
        )


class AcsService(Daemon):
    name: ClassVar[str] = "acs"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        cfg = ctx.config.acs
        self.app = AcsApp(ctx)
        self.server = HttpServer(
            self.app,
            cfg.host,
            cfg.port,
            ctx.config.lifecycle.drain_timeout,
            tls=(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert and cfg.tls_key else None,
            # a CPE's request line and headers come within the session timeout, or it is cut
            header_timeout=cfg.session_timeout,
            on_header_timeout=self.app.metrics.rejects.labels("headers-timeout").inc,
            coalesce=True,  # a CWMP answer is small: its head and body in one send
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._pending: list[presets.Preset] | None = None
        self.stun: pokes.StunServer | None = None
        self._stun_transport: asyncio.DatagramTransport | None = None
        self.dispatcher: pokes.Dispatcher | None = None

    def reload_tls(self) -> dict[str, bool]:
        ok = self.server.reload_tls("acs")
        return {} if ok is None else {"acs": ok}

    def check_policies(self, policies: PolicySet) -> None:
        self._pending = presets.load_presets(policies)

    def apply_policies(self, policies: PolicySet) -> None:
        self.app.planner.presets = (
            self._pending if self._pending is not None else presets.load_presets(policies)
        )
        self._pending = None

    async def start(self) -> None:
        stores = self.ctx.stores
        self.app.recorder.db = await session_store.open_session_pool(
            self.ctx.config.database, stores.postgres_url, f"netd-acs-{os.getpid()}"
        )
        with contextlib.suppress(OSError):
            await self.app.files.sweep(self.ctx.pool)  # temp and orphan files of a crash
        acs = self.ctx.config.acs
        if acs.auth == "none" and not is_loopback(acs.host):  # config allowed it: allow_insecure
            log.warning(
                'INSECURE: CPE authentication is off (acs.auth = "none") on a non-loopback '
                "address because acs.allow_insecure = true: anyone reaching %s may register "
                "devices and download files",
                _hostport(acs.host, acs.port),
            )
        elif acs.auth == "none":
            log.warning('CPE authentication is off (acs.auth = "none"), loopback only')
        if acs.connection_request_allow_loopback:
            log.warning(
                "connection requests may go to loopback URLs "
                "(acs.connection_request_allow_loopback = true: labs and tests only)"
            )
        await self.server.start()
        cfg = self.ctx.config.acs
        loop = asyncio.get_running_loop()
        if cfg.stun_port:
            stun_server = pokes.StunServer(self.ctx.registry)
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: stun_server, local_addr=(cfg.host, cfg.stun_port)
                )
            except OSError as exc:
                where = _hostport(cfg.host, cfg.stun_port)
                try:
                    probe("udp", cfg.host, cfg.stun_port)
                except PortTaken as taken:
                    raise OSError(f"STUN (acs.stun_port) cannot listen: {taken}") from None
                raise OSError(f"STUN (acs.stun_port) cannot listen on {where}: {exc}") from None
            self.stun, self._stun_transport = stun_server, transport
        self.dispatcher = pokes.Dispatcher(self.ctx, self.stun)
        await self.dispatcher.start()
        self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        cfg = self.ctx.config.acs
        every = max(0.2, cfg.session_timeout / 4)
        # Tasks waiting on the CPE are checked against their deadline a few times within it.
        waits = min(30.0, max(0.2, min(cfg.download_deadline, cfg.upload_deadline) / 4))
        checked = time.monotonic()
        while True:
            await asyncio.sleep(min(every, waits))
            self.app.sweep()
            if time.monotonic() - checked >= waits:
                checked = time.monotonic()
                try:
                    expired = await store.expire_waiting(self.ctx.pool)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    self.app.ratelog.log(
                        logging.WARNING, "acs-deadline", "deadlines not checked", error=repr(exc)
                    )
                    continue
                if expired:
                    log.info("tasks past their deadline failed", extra={"count": expired})

    def endpoints(self) -> dict[str, str]:
        scheme = "https" if self.ctx.config.acs.tls_cert else "http"
        out = {"cwmp": f"{scheme}://{_hostport(self.server.host, self.server.port)}/"}
        if self._stun_transport is not None:
            host, port = self._stun_transport.get_extra_info("sockname")[:2]
            out["stun"] = f"stun:{_hostport(host, port)}"
        return out

    def counters(self) -> dict[str, float]:
        return {"sessions": len(self.app.by_sid)}

    async def drain(self) -> None:
        await self.server.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self._stun_transport is not None:
            self._stun_transport.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        # Sessions cut by the stop give their started tasks back to the queue now.
        for live in list(self.app.by_sid.values()):
            self.app._forget(live, "shutdown")
        if self.app._background:
            await asyncio.wait(set(self.app._background), timeout=5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.app.informs.wait(), 5.0)
            await asyncio.wait_for(self.app.recorder.steps.wait(), 5.0)
        if self.app.db is not self.ctx.pool:
            try:
                await asyncio.wait_for(self.app.db.close(), 5.0)
            except TimeoutError:
                self.app.db.terminate()


__all__ = ["AcsApp", "AcsService", "file_store", "rate_key"]


def file_store(config: Any) -> files.FileStore:
    """The ACS file store of this config (shared by the ACS and the API)."""
    root = config.acs.files_dir or config.state_dir / "acs-files"
    root.mkdir(parents=True, exist_ok=True)
    return files.FileStore(root, config.acs.max_file_size)
