"""The proxy shell: requests of proxied realms, from admission to a home server and back.

The auth and accounting shells call :meth:`ProxyShell.route` right after admission (and
after answering Status-Server); it returns True when the request is the proxy's:

- a realm with ``action = "reject"``: an Access-Reject with the realm's reason (an
  Accounting-Request of that realm is dropped, counted);
- a realm with ``action = "local"`` and ``strip``: the job's user name is the stripped
  one, and the shell goes on (False);
- ``action = "proxy"``: forwarded to a live member of the realm's pool
  (``homeservers.choose``), with an identifier of that server's upstream connection
  (``homeservers.Ids``), re-signed (``proxy.upstream_request``). The request is marked
  in progress in the duplicate cache, so the NAS's retransmits are not sent upstream
  again (RFC 5080 §2.2.2); the reply, checked and re-signed (``proxy.downstream_reply``),
  is answered through admission, which caches it for later retransmits. A request left
  unanswered for the server's ``response_window`` fails over to the next live member;
  when none is left, an Access-Request is rejected and an Accounting-Request goes to the
  proxy spool (``proxy_spool.py``): acknowledged once committed in PostgreSQL, forwarded
  in order when the pool is back.

Liveness (``homeservers.ServerState``) is driven from here: answers, timeouts, and a tick
every ``TICK`` seconds that moves zombies to dead and sends Status-Server probes.

Owns: the realm policy in force, the upstream connections and what is outstanding on
them. Shares: admission, the in-flight bound, metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

from daemons.core.config import RadiusConfig
from daemons.core.listen import reload_on_notify
from daemons.core.policies import PolicyError, PolicySet
from daemons.core.ratelog import RateLimitedLog
from daemons.radius import proxy
from daemons.radius.admission import Admission
from daemons.radius.codec import Attr, Code, DecodeError, DropReason
from daemons.radius.homeservers import STATE_VALUE, ServerState, State, choose
from daemons.radius.inflight import Inflight
from daemons.radius.metrics import CODE_NAMES, RadiusMetrics
from daemons.radius.proxy_link import Link, Outstanding
from daemons.radius.proxy_spool import ProxySpool
from daemons.radius.realms import Action, HomePool, RealmPolicy
from daemons.radius.shared import Drops, Job, Stores
from daemons.radius.upstream import checked_realms
from daemons.store import api as api_store

log = logging.getLogger("netd.radius")

TICK = 0.25  # seconds between liveness checks and probes
SWEEP = 0.05  # seconds between checks for requests past their response_window


class RandomBytes:
    """os.urandom read 4 KiB at a time: a proxied request takes 26 random bytes (its
    Request Authenticator, Proxy-State, salts) and a getrandom call each cost more than
    the slicing. The bytes are the kernel's CSPRNG's, each handed out once."""

    def __init__(self, chunk: int = 4096) -> None:
        self._chunk = chunk
        self._buf = b""
        self._at = 0

    def __call__(self, n: int) -> bytes:
        if self._at + n > len(self._buf):
            self._buf, self._at = os.urandom(max(self._chunk, n)), 0
        at = self._at
        self._at = at + n
        return self._buf[at : at + n]


class ProxyShell:
    def __init__(
        self,
        cfg: RadiusConfig,
        stores: Stores,
        admission: Admission,
        inflight: Inflight,
        metrics: RadiusMetrics,
        drops: Drops,
        ratelog: RateLimitedLog,
    ) -> None:
        self.cfg = cfg
        self.stores = stores
        self.admission = admission
        self.inflight = inflight
        self.metrics = metrics
        self.drops = drops
        self.ratelog = ratelog
        self.policy = RealmPolicy()
        self.links: dict[str, Link] = {}
        self.states: dict[str, ServerState] = {}
        self.spool = ProxySpool(stores, self, metrics, ratelog)
        self._pending_policy: RealmPolicy | None = None
        self._policy_set: PolicySet | None = None
        self._managed: dict[str, dict[str, Any]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._held = 0  # NAS requests outstanding upstream
        self._counter = 0
        self._ticker: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._retiring: list[Link] = []  # replaced links, swept until nothing is outstanding
        self._started = False
        self._nas_id = os.uname().nodename.encode()[:64] or b"netd"
        self._random = RandomBytes()
        # issue 28: proxied accounting of a realm with ``ledger`` goes on to the accounting
        # shell (``AcctShell.take``), set by assemble
        self.ledger: Callable[[Job], None] | None = None
        inflight.register(lambda: self._held)  # the spool's records are in _held until acked

    # --- policies ---

    def check_policies(self, policies: PolicySet) -> None:
        self._pending_policy = checked_realms(policies, self._managed)

    def apply_policies(self, policies: PolicySet) -> None:
        policy = self._pending_policy or checked_realms(policies, self._managed)
        self._pending_policy = None
        self._policy_set = policies
        self._install(policy)

    async def reload_managed(self) -> None:
        """Realms managed through the API (``radius_realms``): the policy rebuilt when
        they changed. A set that does not load keeps the policy in force."""
        managed = await api_store.list_realms(self.stores.pool)
        if managed == self._managed or self._policy_set is None:
            return
        try:
            policy = checked_realms(self._policy_set, managed)
        except PolicyError as exc:
            self.ratelog.log(
                logging.ERROR, "managed-realms", "API-managed realms not applied", error=str(exc)
            )
            return
        self._managed = managed
        self._install(policy)

    def _install(self, policy: RealmPolicy) -> None:
        self.policy = policy
        for name, server in policy.home_servers.items():
            link = self.links.get(name)
            if link is not None and link.server == server:
                continue
            if link is not None:
                self._retire(link)
            self.links[name] = Link(server, self._reply)
            old = self.states.get(name)
            self.states[name] = ServerState(server, last_answer=time.monotonic())
            if old is not None:
                self.states[name].state = old.state
        for name in set(self.links) - set(policy.home_servers):
            self._retire(self.links.pop(name))
            self.states.pop(name, None)
        if self._started:
            self.inflight.spawn(self._open_links())
        log.info(
            "realms applied",
            extra={
                "fields": {
                    "realms": len(policy.realms),
                    "home_servers": len(policy.home_servers),
                    "pools": len(policy.pools),
                }
            },
        )

    def _retire(self, link: Link) -> None:
        """A link whose server changed or left: what is outstanding times out on its own."""
        if self._started:
            self._retiring.append(link)
            asyncio.get_running_loop().call_later(
                link.server.response_window + 1, link.upstream.close
            )
        else:
            link.upstream.close()

    async def _open_links(self) -> None:
        for link in list(self.links.values()):
            if not link.upstream.connected:
                try:
                    await link.upstream.open()
                except OSError as exc:
                    self.ratelog.log(
                        logging.ERROR,
                        f"upstream:{link.server.name}",
                        "home server connection not opened",
                        server=link.server.name,
                        error=str(exc),
                    )

    # --- lifecycle ---

    async def start(self, forwarder: bool) -> None:
        """Open the links, start the liveness tick, and (``forwarder``: one process of the
        instance) the spool's forwarding."""
        self._started = True
        await self._open_links()
        loop = asyncio.get_running_loop()
        self._ticker = loop.create_task(self._tick())
        self._sweeper = loop.create_task(self._sweep())
        self._watch = loop.create_task(
            reload_on_notify(
                self.stores.pool,
                (api_store.REALMS_CHANNEL,),
                self.reload_managed,
                self.cfg.nas_refresh_interval,
                self.ratelog,
                "API-managed realms not reloaded; keeping the realms in force",
            )
        )
        if forwarder:
            self.spool.start()

    async def wait(self, limit: float) -> None:
        """Until nothing is outstanding for a NAS (a drain), at most ``limit`` s: each
        request ends by an answer, a timeout or the spool."""
        deadline = time.monotonic() + limit
        while (self._held or self.spool.held()) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in (self._ticker, self._sweeper, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.spool.close()
        for link in self.links.values():
            link.deadlines.clear()
            link.upstream.close()

    def counters(self) -> dict[str, float]:
        """Each home server's state (1 alive, 0.5 zombie, 0 dead) and requests outstanding,
        for the heartbeat and so the status API (``GET /status``)."""
        out: dict[str, float] = {}
        for name, st in self.states.items():
            out[f"home_server:{name}:state"] = STATE_VALUE[st.state]
            out[f"home_server:{name}:outstanding"] = st.outstanding
        return out

    # --- routing ---

    def route(self, key: tuple[Any, ...], now: float, job: Job) -> bool:
        """True when the request is the proxy's (answered, forwarded or refused here).
        A local realm that strips leaves the stripped name in ``job.username``."""
        if not self.policy.realms or job.username is None:
            return False
        decision = self.policy.decide(job.username, job.nas.name)
        realm = decision.realm
        self.metrics.child(
            self.metrics.realm_requests, decision.realm_name or "", realm.action.value
        ).inc()
        if realm.action is Action.LOCAL:
            job.username = decision.user
            job.plan = realm.plan
            return False
        accounting = job.pkt.code == Code.ACCOUNTING_REQUEST
        if realm.action is Action.REJECT:
            if accounting:
                self.drops.drop(DropReason.UNEXPECTED_CODE, job.nas.name, job.addr, "realm rejects")
            else:
                self.admission.answer(
                    Code.ACCESS_REJECT, job, [(Attr.REPLY_MESSAGE, realm.reason.encode())], "realm"
                )
            return True
        load = self.inflight.load()
        if load >= self.inflight.limit:
            self.drops.drop(DropReason.OVERLOAD, job.nas.name, job.addr)
            return True
        assert realm.pool is not None
        pool = self.policy.pools[realm.pool]
        self._counter += 1
        try:
            fwd = proxy.forward_of(
                job.pkt,
                job.nas.secret,
                decision.user if realm.strip else None,
                proxy.proxy_state_token(self._counter, self._random(8)),
            )
        except DecodeError as exc:
            self.drops.drop(exc.reason, job.nas.name, job.addr, exc.detail)
            return True
        self.inflight.taken(load)
        self.admission.taking(key, now)
        self._held += 1
        out = Outstanding("request", fwd, b"", 0.0, job, pool, realm)
        if accounting and self.spool.spooling(pool.name):  # keep the pool's records in order
            self._dead_pool(out)
        else:
            self._send(out)
        return True

    def _key(self, out: Outstanding) -> int | None:
        if out.job is None or out.job.pkt.code != Code.ACCOUNTING_REQUEST:
            return None
        session = out.job.pkt.get(44) or b""  # Acct-Session-Id: a session stays on a server
        return zlib.crc32(session)

    def _send(self, out: Outstanding) -> None:
        """To the next live member not tried yet; none left: the dead-pool answer. A member
        with all its identifiers (256 per channel) outstanding is skipped; when that is why
        none took it, the request is dropped as overload (the NAS retransmits), not refused."""
        assert out.pool is not None and out.fwd is not None
        busy: list[str] = []
        while True:
            state = choose(out.pool, self.states, [*out.tried, *busy], self._key(out))
            if state is None:
                break
            if self.send_on(self.links[state.server.name], out):
                out.tried.append(state.server.name)
                return
            busy.append(state.server.name)
        if busy and out.job is not None:
            self._give_up(out, DropReason.OVERLOAD, "home servers' identifiers all in use")
        else:
            self._dead_pool(out)

    def send_on(self, link: Link, out: Outstanding, delay: int = 0) -> bool:
        """Send ``out`` on ``link`` with a fresh identifier; False when the link has none
        free or is not open."""
        key = link.ids.take() if link.upstream.connected else None
        if key is None:
            return False
        server = link.server
        assert out.fwd is not None
        try:
            raw, auth = proxy.upstream_request(
                out.fwd, key & 0xFF, server.secret, self._random(16), delay
            )
        except ValueError as exc:
            link.ids.release(key)
            if out.job is not None:
                self._give_up(out, DropReason.MALFORMED, str(exc))
            elif out.done is not None:
                out.done(False)
            return True
        now = time.monotonic()
        out.authenticator, out.sent_at = auth, now
        link.sent(key, out, now + server.response_window)
        self.states[server.name].outstanding += 1
        link.upstream.send(raw, key >> 8)
        self.metrics.child(self.metrics.proxy_requests, server.name, CODE_NAMES[raw[0]]).inc()
        return True

    def _dead_pool(self, out: Outstanding) -> None:
        """No live member left: reject an Access-Request, spool an Accounting-Request."""
        assert out.job is not None and out.pool is not None
        if out.job.pkt.code == Code.ACCOUNTING_REQUEST:
            self.spool.add(out)  # answered, or given up, by the spool
            return
        self._held -= 1
        self.admission.answer(
            Code.ACCESS_REJECT,
            out.job,
            [(Attr.REPLY_MESSAGE, b"home servers unavailable")],
            "proxy",
        )
        self.ratelog.log(
            logging.WARNING,
            f"pool-dead:{out.pool.name}",
            "no home server of the pool answers; request rejected",
            pool=out.pool.name,
            tried=",".join(out.tried) or None,
        )

    def finish(self, out: Outstanding) -> None:
        """A NAS request answered or given up by the spool."""
        self._held -= 1

    def to_ledger(self, out: Outstanding) -> bool:
        """An Accounting-Request of a realm with ``ledger``, now with a home server or in
        the spool: to the accounting shell, which answers it once in the ledger too."""
        if self.ledger is None or out.realm is None or not out.realm.ledger or out.job is None:
            return False
        if out.job.pkt.code != Code.ACCOUNTING_REQUEST:
            return False
        self.ledger(out.job)
        return True

    def _give_up(self, out: Outstanding, reason: DropReason, detail: str = "") -> None:
        assert out.job is not None
        self._held -= 1
        self.admission.give_up(out.job, reason, detail)

    def _expired(self, link: Link, key: int, out: Outstanding) -> None:
        if link.outstanding.get(key) is not out:
            return
        del link.outstanding[key]
        link.ids.release(key)
        now = time.monotonic()
        state = self.states.get(link.server.name)
        self.metrics.child(self.metrics.proxy_timeouts, link.server.name).inc()
        if state is not None:
            state.outstanding -= 1
            if out.kind == "probe":
                state.probe_lost(now)
            else:
                state.timed_out(now)
            self._publish(state)
        if out.kind == "probe":
            return
        if out.kind == "spool":
            assert out.done is not None
            out.done(False)
            return
        self._send(out)  # fail over to the next live member, or the dead-pool answer

    # --- replies ---

    def _reply(self, link: Link, data: bytes, channel: int) -> None:
        server = link.server
        if len(data) < 20:
            self.metrics.child(self.metrics.proxy_bad_replies, server.name).inc()
            return
        key = channel << 8 | data[1]
        out = link.outstanding.get(key)
        if out is None:
            self.metrics.child(self.metrics.proxy_bad_replies, server.name).inc()
            return
        try:
            signed = out.kind == "request" and server.require_message_authenticator
            pkt = proxy.check_reply(data, out.authenticator, server.secret, signed)
            attrs: list[tuple[int, bytes]] = []
            if out.kind == "request":
                assert out.job is not None and out.fwd is not None
                attrs = proxy.downstream_reply(
                    pkt,
                    out.fwd.proxy_state,
                    server.secret,
                    out.authenticator,
                    out.job.nas.secret,
                    out.job.pkt.authenticator,
                    lambda: self._random(2),
                )
        except DecodeError as exc:
            self.metrics.child(self.metrics.proxy_bad_replies, server.name).inc()
            self.ratelog.log(
                logging.WARNING,
                f"bad-reply:{server.name}",
                "reply from home server dropped",
                server=server.name,
                reason=str(exc),
            )
            return
        del link.outstanding[key]
        link.ids.release(key)
        now = time.monotonic()
        state = self.states.get(server.name)
        if state is not None:
            state.outstanding -= 1
            state.answered(now, probe=out.kind == "probe")
            if state.changes:  # the gauge is set every tick anyway
                self._publish(state)
        code = "STATUS_SERVER" if out.kind == "probe" else CODE_NAMES[pkt.code]  # the probe's
        self.metrics.child(self.metrics.proxy_answers, server.name, code).inc()
        if out.kind == "spool":
            assert out.done is not None
            out.done(True)
            return
        if out.kind != "request":
            return
        assert out.job is not None
        self._held -= 1
        if self.to_ledger(out):
            return
        # An Accounting-Response carries no Message-Authenticator (RFC 2866; as the acct
        # shell answers): radclient checks one against the Request Authenticator wrongly.
        signed = pkt.code != Code.ACCOUNTING_RESPONSE
        self.admission.answer(pkt.code, out.job, attrs, "proxy", message_auth=signed)

    # --- liveness ---

    def _publish(self, state: ServerState) -> None:
        for before, after in state.changes:
            level = logging.INFO if after is State.ALIVE else logging.WARNING
            log.log(
                level,
                "home server state changed",
                extra={
                    "fields": {"server": state.server.name, "from": before.value, "to": after.value}
                },
            )
        state.changes.clear()
        self.metrics.child(self.metrics.home_server_state, state.server.name).set(
            STATE_VALUE[state.state]
        )

    async def _tick(self) -> None:
        while True:
            now = time.monotonic()
            for name, state in list(self.states.items()):
                state.tick(now)
                self._publish(state)
                link = self.links.get(name)
                if link is not None and state.probe_due(now):
                    self._probe(link)
            self.spool.wake_if_ready()
            await asyncio.sleep(TICK)

    async def _sweep(self) -> None:
        """Every SWEEP s: requests past their server's response_window time out (fail
        over, or the dead-pool answer), on live and on replaced links."""
        while True:
            now = time.monotonic()
            for link in [*self.links.values(), *self._retiring]:
                for key, out in link.expired(now):
                    self._expired(link, key, out)
            self._retiring = [link for link in self._retiring if link.deadlines]
            await asyncio.sleep(SWEEP)

    def _probe(self, link: Link) -> None:
        """RFC 5997 §3: Status-Server, to the port the server answers requests on (the
        server's ``status_check``: auth_port, or acct_port for an accounting server)."""
        key = link.ids.take() if link.upstream.connected else None
        if key is None:
            return
        auth = self._random(16)
        raw = proxy.status_server(key & 0xFF, link.server.secret, auth, self._nas_id)
        now = time.monotonic()
        out = Outstanding("probe", None, auth, now)
        link.sent(key, out, now + link.server.response_window)
        self.states[link.server.name].outstanding += 1
        link.upstream.send(raw, key >> 8)
        self.metrics.child(self.metrics.proxy_requests, link.server.name, "STATUS_SERVER").inc()

    def live_server(self, pool: HomePool) -> ServerState | None:
        return choose(pool, self.states)

    def forward_spooled(
        self, pool: HomePool, fwd: proxy.Forward, delay: int, done: Callable[[bool], None]
    ) -> bool:
        """Send a spooled record to a live member of ``pool``; ``done`` is told whether it
        was answered. False when no member can take it now."""
        state = self.live_server(pool)
        if state is None:
            return False
        out = Outstanding("spool", fwd, b"", 0.0, pool=pool, done=done)
        return self.send_on(self.links[state.server.name], out, delay)


__all__ = ["Link", "Outstanding", "ProxyShell"]
