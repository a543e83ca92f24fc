"""What a RadSec or RADIUS/TCP listener refuses, and what it keeps: every refusal is a
connection closed with nothing answered and a metric by reason; a stream that cannot be
framed is closed; a silent one is closed after the idle timeout; Status-Server keeps a
connection useful (RFC 5997 over RFC 6614 §2.6); accounting over RadSec is acknowledged
only once the ledger holds it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import uuid

import pytest

from daemons.radius.codec import Code, decode
from tests.radius.conftest import SECRET, wait_until
from tests.radius.radsec_stack import (
    OWN_NAS,
    PROXY_NAS,
    Radsecproxy,
    RadsecServer,
    access_request,
    accounting_start,
    radsec,
    radsecproxy_factory,
    read_packet,
    status_server,
    tls_client,
)
from tests.radius.test_radsec_peers import MA, front_conf, radclient
from tests.support import free_udp_port

__all__ = ["radsec", "radsecproxy_factory"]

RADSEC = b"radsec"


def refused(server: RadsecServer, reason: str, transport: str = "tls") -> float:
    return server.metric("netd_radius_stream_refused_total", transport=transport, reason=reason)


def assert_refused_and_silent(sock: ssl.SSLSocket | socket.socket, packet: bytes) -> None:
    """The connection answers nothing: closed (or reset) before any reply."""
    with contextlib.suppress(OSError):
        sock.sendall(packet)
    assert read_packet(sock) == b""
    sock.close()


def test_no_client_certificate_is_refused(radsec: RadsecServer) -> None:
    before = refused(radsec, "no_certificate")
    try:  # TLS 1.3: the client sees the handshake done, the server's alert comes after
        sock = tls_client(radsec, None)
    except (ssl.SSLError, OSError):
        pass
    else:
        assert_refused_and_silent(sock, access_request("alice", "pw1", RADSEC))
    wait_until(lambda: refused(radsec, "no_certificate") == before + 1)


def test_tls_1_1_is_refused(radsec: RadsecServer) -> None:
    before = refused(radsec, "protocol_version")
    with pytest.raises((ssl.SSLError, OSError)):
        tls_client(radsec, radsec.certs.own, tls11=True).close()
    wait_until(lambda: refused(radsec, "protocol_version") == before + 1)


def test_plain_radius_on_the_tls_port_is_refused(radsec: RadsecServer) -> None:
    before = refused(radsec, "not_tls")
    sock = socket.create_connection(("127.0.0.1", radsec.tls_port), timeout=5)
    assert_refused_and_silent(sock, access_request("alice", "pw1", RADSEC))
    wait_until(lambda: refused(radsec, "not_tls") == before + 1)


@pytest.mark.parametrize(
    ("which", "reason"),
    [("stranger", "bad_certificate"), ("unmapped", "unmapped_certificate")],
)
def test_radsecproxy_with_a_certificate_we_refuse(
    radsec: RadsecServer, radsecproxy_factory: list[Radsecproxy], which: str, reason: str
) -> None:
    """radsecproxy presenting a certificate of another CA (with the right name), or one of
    our CA that names no NAS: refused, counted, nothing answered."""
    pki = radsec.certs
    pair = getattr(pki, which)
    udp = free_udp_port()
    conf = front_conf(radsec, udp, "tls").replace(str(pki.proxy[0]), str(pair[0]))
    conf = conf.replace(str(pki.proxy[1]), str(pair[1]))
    assert radsec.tmp is not None
    before = refused(radsec, reason)
    answered = radsec.metric("netd_radius_responses_total", nas=PROXY_NAS, code="ACCESS_ACCEPT")
    radsecproxy_factory.append(Radsecproxy(radsec.tmp, conf, (udp, "udp")))
    out = radclient(udp, "auth", f'User-Name = "alice", User-Password = "pw1", {MA}\n')
    assert "Access-Accept" not in out.stdout and "Access-Reject" not in out.stdout
    assert refused(radsec, reason) >= before + 1
    after = radsec.metric("netd_radius_responses_total", nas=PROXY_NAS, code="ACCESS_ACCEPT")
    assert after == answered


def test_status_server_and_access_over_radsec_with_our_own_client(radsec: RadsecServer) -> None:
    sock = tls_client(radsec, radsec.certs.own)
    try:
        sock.sendall(status_server(RADSEC, 7))
        alive = decode(read_packet(sock))
        assert (alive.code, alive.identifier) == (Code.ACCESS_ACCEPT, 7)
        # two requests in one write: framed apart, both answered on this connection
        sock.sendall(
            access_request("alice", "pw1", RADSEC, 8) + access_request("x", "y", RADSEC, 9)
        )
        answers = {decode(read_packet(sock)).identifier for _ in range(2)}
        assert answers == {8, 9}
    finally:
        sock.close()
    assert radsec.metric("netd_radius_requests_total", nas=OWN_NAS, code="STATUS_SERVER") >= 1


def test_per_nas_connection_limit(radsec: RadsecServer) -> None:
    before = refused(radsec, "limit_nas")
    held = [tls_client(radsec, radsec.certs.own) for _ in range(4)]
    try:
        for sock in held:  # each set up (mapped) before the next
            sock.sendall(status_server(RADSEC, 1))
            assert read_packet(sock)
        extra = tls_client(radsec, radsec.certs.own)
        assert_refused_and_silent(extra, status_server(RADSEC, 2))
        wait_until(lambda: refused(radsec, "limit_nas") == before + 1)
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("length", [10, 5000])
def test_bad_framing_closes_a_tcp_connection(radsec: RadsecServer, length: int) -> None:
    before = radsec.metric("netd_radius_stream_closed_total", transport="tcp", reason="bad_length")
    sock = socket.create_connection(("127.0.0.1", radsec.tcp_port), timeout=5)
    sock.sendall(status_server(SECRET, 3))  # the NAS lo by address: answered
    assert decode(read_packet(sock)).code == Code.ACCESS_ACCEPT
    sock.sendall(bytes((1, 4)) + length.to_bytes(2, "big") + bytes(16))
    assert read_packet(sock) == b""
    sock.close()
    wait_until(
        lambda: (
            radsec.metric("netd_radius_stream_closed_total", transport="tcp", reason="bad_length")
            == before + 1
        )
    )


def test_unknown_source_on_the_tcp_port_is_refused(radsec: RadsecServer) -> None:
    before = refused(radsec, "unknown_nas", "tcp")
    sock = socket.create_connection(  # from 127.0.0.9: not a NAS
        ("127.0.0.1", radsec.tcp_port), timeout=5, source_address=("127.0.0.9", 0)
    )
    assert_refused_and_silent(sock, status_server(SECRET, 3))
    wait_until(lambda: refused(radsec, "unknown_nas", "tcp") == before + 1)


def test_idle_connection_is_closed(radsec: RadsecServer) -> None:
    before = radsec.metric("netd_radius_stream_closed_total", transport="tls", reason="idle")
    sock = tls_client(radsec, radsec.certs.own)
    sock.sendall(status_server(RADSEC, 1))
    assert read_packet(sock)
    started = time.monotonic()
    assert read_packet(sock, timeout=10) == b""  # idle_timeout is 3 s in this stack
    assert 2.5 <= time.monotonic() - started <= 6
    sock.close()
    wait_until(
        lambda: (
            radsec.metric("netd_radius_stream_closed_total", transport="tls", reason="idle")
            == before + 1
        )
    )


async def test_radsec_accounting_is_acked_only_after_the_ledger_commit(
    radsec: RadsecServer,
) -> None:
    """The ledger locked (its inserts wait, as with PostgreSQL paused): no
    Accounting-Response on the RadSec connection; unlocked: the reply, and the row."""
    sid = uuid.uuid4().hex[:16]
    count = "SELECT count(*) FROM accounting_events WHERE acct_session_id = $1"
    sock = tls_client(radsec, radsec.certs.own)
    async with radsec.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("LOCK TABLE accounting_events IN EXCLUSIVE MODE")
        try:
            sock.sendall(accounting_start("carol", sid, RADSEC, 5))
            with pytest.raises(TimeoutError):
                read_packet(sock, timeout=2.0)  # under radius.acct_commit_timeout (5 s)
        finally:
            await tx.rollback()
    reply = await asyncio.to_thread(read_packet, sock, 5.0)
    sock.close()
    assert decode(reply).code == Code.ACCOUNTING_RESPONSE
    assert await radsec.pool.fetchval(count, sid) == 1


def test_a_silent_client_is_refused_after_the_handshake_timeout(radsec: RadsecServer) -> None:
    """Connects to the RadSec port and says nothing: refused after handshake_timeout (2 s
    in this stack), so a connection cannot be held open without TLS."""
    before = refused(radsec, "handshake_timeout")
    sock = socket.create_connection(("127.0.0.1", radsec.tls_port), timeout=5)
    started = time.monotonic()
    assert read_packet(sock, timeout=8) == b""
    assert 1.5 <= time.monotonic() - started <= 6
    sock.close()
    wait_until(lambda: refused(radsec, "handshake_timeout") == before + 1)
