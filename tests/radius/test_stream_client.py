"""StreamUpstream, the proxy's RadSec/RADIUS-TCP client, against radsecproxy (Debian 1.9.2)
as the home server (it carries our requests to netd over UDP) and against netd's own
RadSec listener: replies, the Status-Server watchdog, reconnects, certificate checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from daemons.radius.codec import Code, check_response_authenticator, decode
from daemons.radius.stream_client import StreamUpstream
from daemons.radius.stream_tls import client_context
from tests.radius.conftest import SECRET
from tests.radius.radsec_stack import (
    OWN_NAS,
    Radsecproxy,
    RadsecServer,
    access_request,
    radsec,
    radsecproxy_factory,
)
from tests.support import free_port

__all__ = ["radsec", "radsecproxy_factory"]

RADSEC = b"radsec"
TCP_SECRET = "tcp-home-secret"


def home_conf(server: RadsecServer, tls_port: int, tcp_port: int) -> str:
    """radsecproxy as a home server on TLS and TCP, forwarding to netd's UDP port."""
    pki = server.certs
    return (
        f"ListenTLS 127.0.0.1:{tls_port}\n"
        f"ListenTCP 127.0.0.1:{tcp_port}\n"
        "LogLevel 4\n"
        "tls default {\n"
        f"    CACertificateFile {pki.ca.path}\n"
        f"    CertificateFile {pki.server[0]}\n"
        f"    CertificateKeyFile {pki.server[1]}\n"
        "    TLSVersion TLS1_2:\n"
        "}\n"
        "client ourtls {\n    host 127.0.0.1\n    type tls\n}\n"
        f"client ourtcp {{\n    host 127.0.0.1\n    type tcp\n    secret {TCP_SECRET}\n}}\n"
        f"server netd {{\n    host 127.0.0.1\n    port {server.port}\n    type udp\n"
        f"    secret {SECRET.decode()}\n}}\n"
        "realm * {\n    server netd\n    accountingServer netd\n}\n"
    )


class Replies:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def __call__(self, packet: bytes) -> None:
        self.got.append(packet)

    async def wait(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count:
            assert time.monotonic() < deadline, f"{len(self.got)} replies of {count}"
            await asyncio.sleep(0.02)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def tls_upstream(
    server: RadsecServer, port: int, replies: Replies, name: str = "netd.radsec.test", **kw: float
) -> StreamUpstream:
    pki = server.certs
    context = client_context(pki.ca.path, pki.own[0], pki.own[1], check_hostname=True)
    return StreamUpstream(
        "127.0.0.1", port, replies, tls=context, server_hostname=name, connect_timeout=3, **kw
    )


async def exchange(up: StreamUpstream, replies: Replies, secret: bytes, ident: int) -> int:
    request = access_request("alice", "pw1", secret, ident)
    up.send(request)
    await replies.wait(len(replies.got) + 1)
    reply = replies.got[-1]
    assert check_response_authenticator(reply, request[4:20], secret)
    assert decode(reply).identifier == ident
    return decode(reply).code


async def test_against_radsecproxy_over_tls_and_tcp(
    radsec: RadsecServer, radsecproxy_factory: list[Radsecproxy]
) -> None:
    tls_port, tcp_port = free_port(), free_port()
    assert radsec.tmp is not None
    home = Radsecproxy(radsec.tmp, home_conf(radsec, tls_port, tcp_port), (tls_port, "tcp"))
    radsecproxy_factory.append(home)
    replies = Replies()
    up = tls_upstream(radsec, tls_port, replies)
    await up.open()
    try:
        assert up.connected, up.last_error + home.output()
        assert await exchange(up, replies, RADSEC, 11) == Code.ACCESS_ACCEPT
    finally:
        up.close()
    tcp_replies = Replies()
    tcp = StreamUpstream(
        "127.0.0.1", tcp_port, tcp_replies, secret=TCP_SECRET.encode(), connect_timeout=3
    )
    await tcp.open()
    try:
        assert tcp.connected, tcp.last_error
        assert await exchange(tcp, tcp_replies, TCP_SECRET.encode(), 12) == Code.ACCESS_ACCEPT
    finally:
        tcp.close()


async def test_reconnects_after_the_home_server_restarts(
    radsec: RadsecServer, radsecproxy_factory: list[Radsecproxy]
) -> None:
    tls_port, tcp_port = free_port(), free_port()
    assert radsec.tmp is not None
    conf = home_conf(radsec, tls_port, tcp_port)
    first = Radsecproxy(radsec.tmp, conf, (tls_port, "tcp"))
    radsecproxy_factory.append(first)
    replies = Replies()
    up = tls_upstream(radsec, tls_port, replies, backoff=(0.1, 0.5))
    await up.open()
    try:
        assert up.connected
        first.stop()
        await until(lambda: not up.connected)
        up.send(access_request("alice", "pw1", RADSEC, 3))  # nowhere to go: dropped, counted
        assert up.dropped == 1
        radsecproxy_factory.append(Radsecproxy(radsec.tmp, conf, (tls_port, "tcp")))
        await until(lambda: up.connected)
        assert up.connects == 2
        assert await exchange(up, replies, RADSEC, 4) == Code.ACCESS_ACCEPT
    finally:
        up.close()


async def test_against_netd_with_the_watchdog_keeping_it_open(radsec: RadsecServer) -> None:
    """netd closes a connection idle 3 s; Status-Server every 0.3 s keeps ours."""
    before = radsec.metric("netd_radius_requests_total", nas=OWN_NAS, code="STATUS_SERVER")
    replies = Replies()
    up = tls_upstream(radsec, radsec.tls_port, replies, keepalive=0.3, watchdog_timeout=2)
    await up.open()
    try:
        assert up.connected, up.last_error
        assert await exchange(up, replies, RADSEC, 21) == Code.ACCESS_ACCEPT
        await asyncio.sleep(4.0)
        assert up.connected and up.connects == 1
        assert len(replies.got) == 1  # the watchdog's answers are not handed on
        assert await exchange(up, replies, RADSEC, 22) == Code.ACCESS_ACCEPT
    finally:
        up.close()
    after = radsec.metric("netd_radius_requests_total", nas=OWN_NAS, code="STATUS_SERVER")
    assert after >= before + 5


async def test_server_name_is_checked(radsec: RadsecServer) -> None:
    replies = Replies()
    up = tls_upstream(radsec, radsec.tls_port, replies, name="other.radsec.test")
    await up.open()
    try:
        assert not up.connected
        assert "certificate verify failed" in up.last_error, up.last_error
    finally:
        up.close()
