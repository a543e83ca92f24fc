"""The connection to one home server, behind a small protocol (the proxy's seam).

:class:`Upstream` is what the proxy shell sends whole RADIUS packets through and gets
replies back from (``on_reply``, given at construction). :func:`make_upstream` builds
the one a home server's ``transport`` names. UDP is here: ``sockets`` unconnected
sockets (source ports, "channels") per home server, Access-Requests to its ``auth_port``,
Accounting-Requests to its ``acct_port``, Status-Server to the one ``status_check`` names;
replies are accepted only from the server's address and those two ports. Each channel is
its own identifier space of 256 (RFC 2865 §3); the proxy shell keeps their keys
(:class:`~daemons.radius.homeservers.Ids`, ``channel << 8 | identifier``) per upstream.
A stream upstream (RADIUS over TCP, RFC 6613; over TLS, RFC 6614) implements the same
protocol with one channel: both kinds of request over one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from daemons.core.config import ConfigError
from daemons.core.policies import PolicySet
from daemons.core.tlsreload import TlsError
from daemons.radius.codec import Code
from daemons.radius.realms import HomeServer, RealmPolicy, load_realms
from daemons.radius.stream_client import StreamUpstream
from daemons.radius.stream_tls import client_context

log = logging.getLogger("netd.radius")

OnReply = Callable[[bytes, int], None]  # a reply and the channel it came on


class Upstream(Protocol):
    @property
    def channels(self) -> int:
        """Identifier spaces of 256 (UDP: source ports)."""

    async def open(self) -> None:
        """Be ready to send. Raises OSError when it cannot (the server counts as down)."""

    def send(self, packet: bytes, channel: int = 0) -> None:
        """Send one whole RADIUS packet on ``channel``; never raises (a lost packet is a
        timeout)."""

    def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpUpstream, channel: int) -> None:
        self.owner = owner
        self.channel = channel

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.received(data, addr, self.channel)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: a timeout follows
        log.debug("home server socket error", extra={"fields": {"error": str(exc)}})


def _protocol(owner: UdpUpstream, channel: int) -> Callable[[], _Datagrams]:
    return lambda: _Datagrams(owner, channel)


class UdpUpstream:
    """RADIUS over UDP to one home server (RFC 2865 §3, RFC 2866 §3)."""

    def __init__(self, server: HomeServer, on_reply: OnReply) -> None:
        self.server = server
        self.on_reply = on_reply
        self._transports: list[asyncio.DatagramTransport] = []
        host = server.address
        self._auth = (host, server.auth_port)
        self._acct = (host, server.acct_port)
        self._status = self._acct if server.status_check == "acct" else self._auth
        self._sources = {server.auth_port, server.acct_port}

    @property
    def channels(self) -> int:
        return self.server.sockets

    async def open(self) -> None:
        family = socket.AF_INET6 if ":" in self.server.address else socket.AF_INET
        local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
        if self.server.address in ("127.0.0.1", "::1"):
            local = (self.server.address, 0)
        loop = asyncio.get_running_loop()
        transports: list[asyncio.DatagramTransport] = []
        try:
            for channel in range(self.server.sockets):
                sock = socket.socket(family, socket.SOCK_DGRAM)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                try:
                    sock.bind(local)
                    sock.setblocking(False)
                except OSError:
                    sock.close()
                    raise
                transport, _ = await loop.create_datagram_endpoint(
                    _protocol(self, channel), sock=sock
                )
                transports.append(transport)
        except OSError:
            for transport in transports:
                transport.close()
            raise
        self._transports = transports

    @property
    def connected(self) -> bool:
        return bool(self._transports) and not self._transports[0].is_closing()

    def send(self, packet: bytes, channel: int = 0) -> None:
        if not self.connected:
            return
        code = packet[0]
        if code == Code.ACCOUNTING_REQUEST:
            dest = self._acct
        elif code == Code.STATUS_SERVER:
            dest = self._status
        else:
            dest = self._auth
        self._transports[channel].sendto(packet, dest)

    def received(self, data: bytes, addr: Any, channel: int = 0) -> None:
        # RFC 2865 §3: a reply must come from where the request went.
        host = addr[0].removeprefix("::ffff:")
        if host != self.server.address or addr[1] not in self._sources:
            return
        self.on_reply(data, channel)

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
        self._transports = []


def stream_upstream(server: HomeServer, on_reply: OnReply) -> Upstream:
    """RADIUS/TCP (RFC 6613) or RadSec (RFC 6614) to ``server``: one connection to its
    ``auth_port`` carries both kinds of request; over TLS the server's certificate is
    verified against ``tls_ca`` (not its name: home servers are named by address) and
    ours (``tls_cert``/``tls_key``) presented. Raises ConfigError."""
    context = None
    if server.transport == "tls":
        if server.tls_ca is None:
            raise ConfigError(
                f"home_servers.{server.name}.tls_ca", "policies/radius/realms.toml", "a CA file"
            )
        cert = Path(server.tls_cert) if server.tls_cert else None
        key = Path(server.tls_key) if server.tls_key else None
        try:
            context = client_context(Path(server.tls_ca), cert, key, check_hostname=False)
        except TlsError as exc:
            raise ConfigError(
                f"home_servers.{server.name}.tls", "policies/radius/realms.toml", str(exc)
            ) from None
    return StreamUpstream(
        server.address,
        server.auth_port,
        lambda data: on_reply(data, 0),
        tls=context,
        secret=server.secret,
    )


#: The transports this build can open.
FACTORIES: dict[str, Callable[[HomeServer, OnReply], Upstream]] = {
    "udp": UdpUpstream,
    "tcp": stream_upstream,
    "tls": stream_upstream,
}


def check_transport(server: HomeServer) -> None:
    """Raises ConfigError when no upstream can be made for ``server``'s transport."""
    if server.transport not in FACTORIES:
        raise ConfigError(
            f"home_servers.{server.name}.transport",
            "policies/radius/realms.toml",
            f"one of {', '.join(sorted(FACTORIES))}",
        )


def make_upstream(server: HomeServer, on_reply: OnReply) -> Upstream:
    """The connection to ``server`` by its transport. Raises ConfigError."""
    check_transport(server)
    return FACTORIES[server.transport](server, on_reply)


def checked_realms(
    policies: PolicySet, managed: Mapping[str, Mapping[str, Any]] | None = None
) -> RealmPolicy:
    """The realm policy (files and API-managed realms), every home server's transport one
    this build can open. Raises PolicyError naming the file, the home server, the line."""
    policy = load_realms(policies, managed)
    for server in policy.home_servers.values():
        try:
            check_transport(server)
        except ConfigError as exc:
            where = next(
                (
                    p
                    for p, d in policies.under("radius").items()
                    if server.name in d.get("home_servers", {})
                ),
                "radius/realms.toml",
            )
            raise policies.error(
                where, f"{exc.key}: {exc.expected}", ("home_servers", server.name)
            ) from None
    return policy
