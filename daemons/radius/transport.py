"""Transports: what receives requests and sends replies, apart from what answers them.

A transport hands each request's bytes, its peer address and a
:class:`~daemons.radius.shared.Sender` (the way back) to a
:class:`~daemons.radius.shared.Receiver`: the auth shell for the authentication port, the
accounting shell for the accounting port. It knows nothing of RADIUS beyond that.

:class:`UdpListeners` is the one transport today: a socket per address in
``radius.listen`` and port, with SO_REUSEPORT so the instance's workers share it, claimed
for the instance first (``daemons.core.portclaim``: anyone else is refused with the
holder's pid). A TCP or TLS stream transport (RFC 6613/6614) implements
:class:`Transport` the same way: it frames the stream by the RADIUS Length field, and
gives each connection a Sender whose ``sendto`` writes to that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import socket
from typing import Any, Protocol, cast

from daemons.core.lifecycle import StartupError
from daemons.core.portclaim import PortClaim, PortTaken
from daemons.core.ratelog import RateLimitedLog
from daemons.radius.mmsg import sender_for
from daemons.radius.shared import Receiver, Sender

log = logging.getLogger("netd.radius")


class Transport(Protocol):
    """A way requests come in; the daemon opens it at start and closes it at drain."""

    async def open(self) -> None:
        """Start receiving. Raises StartupError (one line) when it cannot."""

    def close(self) -> None:
        """Stop receiving; replies to requests in flight may still be sent."""

    def release(self) -> None:
        """Give back what ``open`` claimed (at the daemon's close)."""

    def endpoints(self) -> dict[str, str]:
        """What it listens on, for the start-up line."""
        ...


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


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver, ratelog: RateLimitedLog, batch: bool) -> None:
        self.received = receiver.received
        self.batch = batch
        self.ratelog = ratelog
        self.sender: Sender | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDPTransport quacks like asyncio.DatagramTransport without subclassing it.
        # issue 30: replies of one loop iteration leave in one sendmmsg (daemons/radius/mmsg).
        self.sender = sender_for(cast(asyncio.DatagramTransport, transport), self.batch)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.sender is not None
        self.received(data, addr, self.sender)

    def error_received(self, exc: Exception) -> None:
        self.ratelog.log(logging.WARNING, "socket", "socket error", error=repr(exc))


class UdpListeners:
    """The authentication and accounting ports on every address in ``listen``."""

    def __init__(
        self,
        listen: list[str],
        auth_port: int,
        acct_port: int,
        auth: Receiver,
        acct: Receiver,
        ratelog: RateLimitedLog,
        claim: bool,
        workers: int = 1,
        send_batch: bool = True,
    ) -> None:
        """``claim``: this process is the instance (it claims the ports; its workers
        share them without claiming)."""
        self.listen = listen
        self.ports = ((auth_port, auth), (acct_port, acct))
        self.auth_port, self.acct_port = auth_port, acct_port
        self.ratelog = ratelog
        self.claim = claim
        self.workers = workers
        self.send_batch = send_batch
        self._claims = PortClaim()
        self._transports: list[asyncio.DatagramTransport] = []

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for host in self.listen:
            for port, receiver in self.ports:
                try:
                    if self.claim:  # the instance claims; its workers share
                        self._claims.claim("udp", host, port)
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
                    functools.partial(_Protocol, receiver, self.ratelog, self.send_batch),
                    sock=sock,
                )
                self._transports.append(transport)
        if not self._transports:
            raise StartupError("radius: no address in radius.listen could be bound")

    def close(self) -> None:
        for transport in self._transports:
            transport.close()

    def release(self) -> None:
        self._claims.release()

    def endpoints(self) -> dict[str, str]:
        hosts = ",".join(self.listen)
        workers = f" ({self.workers} workers)" if self.workers > 1 else ""
        return {
            "radius_auth": f"udp {hosts} port {self.auth_port}{workers}",
            "radius_acct": f"udp {hosts} port {self.acct_port}{workers}",
        }
