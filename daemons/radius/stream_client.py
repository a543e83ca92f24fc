"""A RADIUS/TCP (RFC 6613) or RadSec (RFC 6614) connection to a home server, for the proxy
(an :class:`~daemons.radius.upstream.Upstream`; ``upstream.stream_upstream`` builds it).

:class:`StreamUpstream` keeps one connection up: connect (within ``connect_timeout``),
then reconnect after a loss with exponential backoff and jitter. Requests go out with
:meth:`send` as they are (the proxy signs them: with ``radsec`` over TLS); every framed
packet that comes back goes to ``on_reply``. It never retransmits: over a stream that is
the transport's job (RFC 6613 §2.6.1), and failover is the proxy's.

The watchdog (RFC 6613 §2.6.2, RFC 6614 §2.6, with RFC 5997 Status-Server): after
``keepalive`` seconds with nothing received, a Status-Server goes out; unanswered within
``watchdog_timeout``, the connection is dropped and made again. Its answer is told from a
proxied reply of the same Identifier by its Response Authenticator (ours to check).

Writes are bounded: past ``max_buffer`` bytes unsent (the server not reading), a packet
is dropped and counted (``dropped``) instead of growing memory; while not connected,
``send`` drops too (the proxy's timeout and failover take it from there).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import ssl
from collections.abc import Callable
from typing import cast

from daemons.radius.codec import Code, check_response_authenticator, encode_request
from daemons.radius.stream import RADSEC_SECRET, Framer, FramingError

log = logging.getLogger("netd.radius.upstream")


class _Link(asyncio.Protocol):
    def __init__(self, owner: StreamUpstream) -> None:
        self.owner = owner
        self.framer = Framer()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's quacks like one

    def data_received(self, data: bytes) -> None:
        try:
            packets = self.framer.feed(data)
        except FramingError as exc:
            log.warning(
                "home server stream cannot be framed; reconnecting",
                extra={"fields": {"upstream": self.owner.name, "detail": str(exc)}},
            )
            if self.transport is not None:
                self.transport.abort()
            return
        for packet in packets:
            self.owner.received(packet)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class StreamUpstream:
    """One home server over TCP or TLS (``tls`` None: RADIUS/TCP)."""

    def __init__(
        self,
        host: str,
        port: int,
        on_reply: Callable[[bytes], None],
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        secret: bytes = RADSEC_SECRET,
        connect_timeout: float = 5.0,
        keepalive: float = 30.0,
        watchdog_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        max_buffer: int = 1024 * 1024,
    ) -> None:
        self.host, self.port = host, port
        self.name = f"{'tls' if tls else 'tcp'}://{host}:{port}"
        self.on_reply = on_reply
        self.tls = tls
        self.server_hostname = server_hostname or (host if tls is not None else None)
        self.secret = secret
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.watchdog_timeout = watchdog_timeout
        self.backoff = backoff
        self.max_buffer = max_buffer
        self.dropped = 0  # packets not written: not connected, or the buffer full
        self.connects = 0  # connections made (the first and every reconnect)
        self.last_error = ""
        self._link: _Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._closing = False
        self._last_rx = 0.0
        self._probe: tuple[int, bytes, float] | None = None  # id, authenticator, sent at
        self._probe_id = 0

    # --- the Upstream protocol ---

    @property
    def channels(self) -> int:
        return 1  # one connection: one identifier space

    @property
    def connected(self) -> bool:
        link = self._link
        return link is not None and link.transport is not None and not link.lost.done()

    async def open(self) -> None:
        """Start connecting (and keep connected); returns once connected, or after
        ``connect_timeout`` still trying in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), self.connect_timeout)

    def send(self, packet: bytes, channel: int = 0) -> None:
        link = self._link
        transport = link.transport if link is not None and self.connected else None
        if transport is None or transport.is_closing():
            self.dropped += 1
            return
        if transport.get_write_buffer_size() + len(packet) > self.max_buffer:
            self.dropped += 1
            return
        transport.write(packet)

    def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
        link = self._link
        if link is not None and link.transport is not None:
            link.transport.close()

    # --- inside ---

    def received(self, packet: bytes) -> None:
        self._last_rx = asyncio.get_running_loop().time()
        probe = self._probe
        if (
            probe is not None
            and packet[1] == probe[0]
            and check_response_authenticator(packet, probe[1], self.secret)
        ):
            self._probe = None  # the watchdog's answer, not a proxied reply
            return
        self.on_reply(packet)

    def _send_probe(self, now: float) -> None:
        """RFC 5997 Status-Server with Message-Authenticator (§3)."""
        self._probe_id = (self._probe_id + 1) & 0xFF
        authenticator = os.urandom(16)
        packet = encode_request(Code.STATUS_SERVER, self._probe_id, [], self.secret, authenticator)
        self._probe = (self._probe_id, authenticator, now)
        self.send(packet)

    def _delay(self, attempt: int) -> float:
        low, high = self.backoff
        return min(high, low * 2.0 ** min(attempt, 16)) * random.uniform(0.5, 1.0)  # noqa: S311

    async def _connect(self) -> _Link:
        loop = asyncio.get_running_loop()
        factory = functools.partial(_Link, self)
        if self.tls is None:
            coro = loop.create_connection(factory, self.host, self.port)
        else:
            coro = loop.create_connection(
                factory,
                self.host,
                self.port,
                ssl=self.tls,
                server_hostname=self.server_hostname,
                ssl_handshake_timeout=self.connect_timeout,
            )
        _, link = await asyncio.wait_for(coro, self.connect_timeout)
        return link

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._closing:
            try:
                link = await self._connect()
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                self.last_error = str(exc) or type(exc).__name__
                if attempt == 0:
                    log.warning(
                        "home server not reachable; retrying with backoff",
                        extra={"fields": {"upstream": self.name, "error": self.last_error}},
                    )
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                continue
            attempt = 0
            self.connects += 1
            self._link = link
            self._last_rx = loop.time()
            self._probe = None
            self._up.set()
            await self._watch(link)
            self._up.clear()
            if not self._closing:
                self.last_error = "connection lost"
                await asyncio.sleep(self._delay(0))

    async def _watch(self, link: _Link) -> None:
        """Until the connection is lost: Status-Server when idle, drop it when unanswered."""
        loop = asyncio.get_running_loop()
        tick = max(0.05, min(self.keepalive, self.watchdog_timeout) / 4)
        while not link.lost.done():
            now = loop.time()
            probe = self._probe
            if probe is not None and now - probe[2] > self.watchdog_timeout:
                self.last_error = "watchdog: Status-Server unanswered"
                log.warning(
                    "home server does not answer Status-Server; reconnecting",
                    extra={"fields": {"upstream": self.name}},
                )
                if link.transport is not None:
                    link.transport.abort()
                break
            if probe is None and now - self._last_rx >= self.keepalive:
                self._send_probe(now)
            await asyncio.wait([link.lost], timeout=tick)
