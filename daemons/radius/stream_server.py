"""The RADIUS/TCP (RFC 6613) and RadSec (RFC 6614) listeners: a :class:`Transport`.

Per connection (:class:`_Connection`, an ``asyncio.Protocol``): who the peer is, then
frames (``stream.Framer``) handed to the auth or accounting shell by code
(``stream.route``) with the connection as their :class:`Sender`. Nothing else changes: a
stream request goes through the same admission (NAS, rate limit, authenticators, duplicate
cache) and shells as a datagram, so an Accounting-Response is written only once the record
is durable, exactly as over UDP.

- **TCP**: the NAS is found by source address and its own secret (RFC 6613 §2.2); an
  unknown source is refused at once.
- **TLS**: we accept, then await the handshake (``loop.connect_accepted_socket``), so every
  failure is counted by reason (unknown CA, no certificate, TLS 1.1, not TLS, timeout);
  then the verified certificate must name a NAS (``nas_clients.tls_identity``), whose
  requests are checked with the fixed secret ``radsec`` (RFC 6614 §2.3). The peer handed
  to admission is ``("tls:<NAS>", port)``.
- Limits: ``max_connections`` in all, ``max_connections_per_nas``; a connection idle
  ``idle_timeout`` is closed (a NAS's Status-Server watchdog, RFC 6614 §2.6, keeps it
  open, and is answered by the auth shell like any Status-Server); a Length out of
  [20, 4096] closes it (RFC 6613 §2.6.4). Refusals and closes are metrics by reason and
  rate-limited log lines; nothing is answered on a refused connection.
- Backpressure: a peer that does not read its replies stops being read (pause_writing);
  past ``write_buffer`` bytes unsent it is closed.
- SIGHUP (:meth:`StreamListeners.reload_tls`): certificate, key, CA and CRL are read again
  into a new context; new handshakes use it, open connections keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import time
from collections import Counter
from typing import Any, Literal, cast

from daemons.core.config import RadsecConfig
from daemons.core.lifecycle import StartupError
from daemons.core.ratelog import RateLimitedLog
from daemons.core.tlsreload import TlsError
from daemons.radius.metrics import RadiusMetrics
from daemons.radius.shared import Receiver, hold
from daemons.radius.stream import TLS_PREFIX, Framer, FramingError, identities, route, tls_refusal
from daemons.radius.stream_tls import server_context
from daemons.radius.tables import Tables

log = logging.getLogger("netd.radius")

Kind = Literal["tcp", "tls"]


class StreamListeners:
    """The RADIUS/TCP and RadSec ports on every address of ``radsec.listen`` (else
    ``radius.listen``)."""

    def __init__(
        self,
        cfg: RadsecConfig,
        listen: list[str],
        tables: Tables,
        auth: Receiver,
        acct: Receiver,
        metrics: RadiusMetrics,
        ratelog: RateLimitedLog,
    ) -> None:
        self.cfg = cfg
        self.hosts = cfg.listen or listen
        self.tables = tables
        self.auth = auth
        self.acct = acct
        self.metrics = metrics
        self.ratelog = ratelog
        self.context: ssl.SSLContext | None = None
        self.connections: set[_Connection] = set()
        self.per_nas: Counter[str] = Counter()
        self.bound: dict[Kind, list[tuple[str, int]]] = {"tcp": [], "tls": []}
        self._socks: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self.handshaking = 0  # accepted, TLS handshake not done: they count in the limit
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    def ports(self) -> list[tuple[Kind, int]]:
        out: list[tuple[Kind, int]] = []
        if self.cfg.tls_port:
            out.append(("tls", self.cfg.tls_port))
        if self.cfg.tcp_port:
            out.append(("tcp", self.cfg.tcp_port))
        return out

    # --- Transport ---

    async def open(self) -> None:
        cfg = self.cfg
        if cfg.tls_port:
            assert cfg.tls_cert and cfg.tls_key and cfg.tls_client_ca  # the config's check
            try:
                self.context = server_context(
                    cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca, cfg.tls_crl
                )
            except TlsError as exc:
                raise StartupError(f"radius.radsec: {exc}") from None
        for host in self.hosts:
            for kind, port in self.ports():
                try:
                    sock = _bind_tcp(host, port)
                except OSError as exc:
                    raise StartupError(
                        f"radius: cannot listen on [{host}]:{port}/tcp ({kind}): {exc}"
                    ) from None
                self._socks.append(sock)
                self.bound[kind].append(sock.getsockname()[:2])
                accepting = asyncio.get_running_loop().create_task(self._accept(sock, kind))
                self._accepting.append(accepting)

    async def _accept(self, listener: socket.socket, kind: Kind) -> None:
        """Accept, then set the connection up in a task of its own. The handshake is
        awaited here (``connect_accepted_socket``), so its failure comes with its reason."""
        loop = asyncio.get_running_loop()
        while not self.closing:
            try:
                conn, addr = await loop.sock_accept(listener)
            except OSError as exc:  # EMFILE and the like: wait, do not spin
                if self.closing:
                    return
                self.ratelog.log(
                    logging.ERROR, f"stream-accept:{kind}", "accept failed", error=str(exc)
                )
                await asyncio.sleep(0.1)
                continue
            if len(self.connections) + self.handshaking >= self.cfg.max_connections:
                self.refuse(kind, "limit_total", addr)
                conn.close()
                continue
            self.spawn(self._setup(conn, addr, kind))

    async def _setup(self, conn: socket.socket, addr: Any, kind: Kind) -> None:
        loop = asyncio.get_running_loop()
        factory = functools.partial(_Connection, self, kind, addr)
        self.handshaking += 1
        try:
            if kind == "tcp":
                await loop.connect_accepted_socket(factory, conn)
                return
            context = self.context
            assert context is not None
            await loop.connect_accepted_socket(
                factory, conn, ssl=context, ssl_handshake_timeout=self.cfg.handshake_timeout
            )
        except ssl.SSLError as exc:
            self.refuse(kind, tls_refusal(exc.reason), addr, str(exc.reason or exc))
        except (ConnectionError, OSError, TimeoutError) as exc:
            timeout = "taking longer" in str(exc) or isinstance(exc, TimeoutError)
            reason = "handshake_timeout" if timeout else "handshake_failed"
            self.refuse(kind, reason, addr, repr(exc))
        finally:
            self.handshaking -= 1

    def close(self) -> None:
        """No new connections; the open ones are closed (what they were sent is flushed:
        the daemon calls this after the requests in flight were answered)."""
        self.closing = True
        for accepting in self._accepting:
            accepting.cancel()
        for sock in self._socks:
            sock.close()
        for conn in list(self.connections):
            conn.finish("drain")

    def release(self) -> None:
        for task in [*self._accepting, *self._tasks]:
            task.cancel()
        for sock in self._socks:  # a start that failed half-way closed nothing yet
            sock.close()

    def endpoints(self) -> dict[str, str]:
        hosts = ",".join(self.hosts)
        out = {}
        if self.cfg.tls_port:
            out["radius_radsec"] = f"tls {hosts} port {self.cfg.tls_port} (auth+acct)"
        if self.cfg.tcp_port:
            out["radius_tcp"] = f"tcp {hosts} port {self.cfg.tcp_port} (auth+acct)"
        return out

    def reload_tls(self) -> bool | None:
        """A new context from the files (SIGHUP); None when RadSec is off, False (the old
        one kept, the reason logged) when a file does not load."""
        cfg = self.cfg
        if not cfg.tls_port or not (cfg.tls_cert and cfg.tls_key and cfg.tls_client_ca):
            return None
        try:
            self.context = server_context(cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca, cfg.tls_crl)
        except TlsError as exc:
            log.error(
                "TLS certificate not reloaded; the one in force stays",
                extra={"fields": {"listener": "radsec", "problem": str(exc)}},
            )
            return False
        log.info("TLS certificate reloaded", extra={"fields": {"listener": "radsec"}})
        return True

    # --- what connections report ---

    def refuse(self, kind: Kind, reason: str, peer: Any, detail: str = "") -> None:
        self.metrics.stream_refused.labels(kind, reason).inc()
        self.ratelog.log(
            logging.WARNING,
            f"stream-refused:{kind}:{reason}",
            "stream connection refused",
            transport=kind,
            reason=reason,
            source=str(peer[0]) if peer else None,
            detail=detail or None,
        )

    def spawn(self, coro: Any) -> None:
        hold(asyncio.get_running_loop().create_task(coro), self._tasks)


def _bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _Connection(asyncio.Protocol):
    """One NAS connection: its identity, its frames, its replies."""

    def __init__(self, owner: StreamListeners, kind: Kind, source: Any) -> None:
        self.owner = owner
        self.kind = kind
        self.transport: asyncio.Transport | None = None
        self.framer = Framer()
        self.peer: tuple[str, int] | None = None  # what admission sees; None: refused
        self.source = source
        self.nas: str | None = None  # counted in owner.per_nas
        self.closed = False
        self.reason = ""
        self.last = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None
        m = owner.metrics
        self._in = m.stream_packets.labels(kind, "in")
        self._out = m.stream_packets.labels(kind, "out")

    # --- setting up ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """TCP: at once; TLS: once the handshake verified the client's certificate."""
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        owner = self.owner
        self.transport = transport
        if owner.closing:
            self.closed = True
            transport.abort()
            return
        owner.connections.add(self)
        owner.metrics.stream_open.labels(self.kind).inc()
        self._arm_idle()
        if self.kind == "tcp":
            nas = owner.tables.nas.lookup(self.source[0])
            if nas is None:
                self.refuse("unknown_nas")
                return
            self.admit(nas.name, (self.source[0], self.source[1]))
            return
        ssl_object = transport.get_extra_info("ssl_object")
        cert = ssl_object.getpeercert() if ssl_object is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not cert or not der:  # CERT_REQUIRED makes this unreachable; never trust it
            self.refuse("no_certificate")
            return
        names = identities(cert, der)
        nas = owner.tables.nas.lookup_tls(names)
        if nas is None:
            self.refuse("unmapped_certificate", names[0])
            return
        self.admit(nas.name, (TLS_PREFIX + nas.name, self.source[1]))

    def admit(self, nas: str, peer: tuple[str, int]) -> None:
        owner = self.owner
        if owner.per_nas[nas] >= owner.cfg.max_connections_per_nas:
            self.refuse("limit_nas", nas)
            return
        owner.per_nas[nas] += 1
        self.nas = nas
        self.peer = peer

    def refuse(self, reason: str, detail: str = "") -> None:
        self.owner.refuse(self.kind, reason, self.source, detail)
        self.finish("refused", abort=True)

    # --- traffic ---

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or self.closed:  # nothing is read before the peer is known
            return
        self.last = time.monotonic()
        try:
            packets = self.framer.feed(data)
        except FramingError as exc:
            self.owner.ratelog.log(
                logging.WARNING,
                f"stream-framing:{self.kind}",
                "stream connection closed: it cannot be framed",
                transport=self.kind,
                nas=self.nas,
                source=str(self.source[0]),
                detail=str(exc),
            )
            self.finish(exc.reason)
            return
        owner = self.owner
        for packet in packets:
            self._in.inc()
            receiver = owner.acct if route(packet) == "acct" else owner.auth
            receiver.received(packet, peer, self)

    def sendto(self, data: bytes, addr: Any, /) -> None:
        """A reply, written to this connection (the Sender of its requests)."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return
        transport.write(data)
        self._out.inc()
        if transport.get_write_buffer_size() > self.owner.cfg.write_buffer:
            self.finish("write_buffer", abort=True)

    def pause_writing(self) -> None:  # the peer is not reading its replies: stop reading
        if self.transport is not None and not self.closed:
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closed:
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        self.finish("peer_closed")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish("peer_closed" if exc is None else "reset")

    # --- ending ---

    def _arm_idle(self) -> None:
        idle = self.owner.cfg.idle_timeout
        wait = self.last + idle - time.monotonic()
        loop = asyncio.get_running_loop()
        if wait <= 0:
            self.finish("idle")
        else:
            self.timer = loop.call_later(wait, self._arm_idle)

    def finish(self, reason: str, abort: bool = False) -> None:
        """Close once, counted by reason (a refusal is counted by the refusal's)."""
        if self.closed:
            return
        self.closed = True
        self.reason = reason
        owner = self.owner
        if self.timer is not None:
            self.timer.cancel()
        if self in owner.connections:
            owner.connections.discard(self)
            owner.metrics.stream_open.labels(self.kind).dec()
        if self.nas is not None:
            owner.per_nas[self.nas] -= 1
            if owner.per_nas[self.nas] <= 0:
                del owner.per_nas[self.nas]
        if reason != "refused":
            owner.metrics.stream_closed.labels(self.kind, reason).inc()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if abort:
                transport.abort()
            else:
                transport.close()
