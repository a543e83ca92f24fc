"""RadSec's certificate, key and CRL are read again on SIGHUP (as issue 26's TLS listeners):
new handshakes get the new ones, an open connection carries on, a bad pair is refused
and the pair in force stays. And the instance's total connection limit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket

from cryptography.hazmat.primitives.serialization import Encoding

from daemons.radius.codec import Code, decode
from tests.radius.conftest import SECRET, wait_until
from tests.radius.radsec_stack import RadsecServer, radsec, read_packet, status_server, tls_client

__all__ = ["radsec"]

RADSEC = b"radsec"
RADSEC_ENV = {"NETD_RADIUS_RADSEC_MAX_CONNECTIONS": "3"}  # for the total limit below


def reloads(server: RadsecServer, result: str) -> float:
    return server.metric("netd_tls_reloads_total", listener="radsec", result=result)


def served(server: RadsecServer) -> bytes:
    sock = tls_client(server, server.certs.own)
    try:
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        return der
    finally:
        sock.close()


def test_sighup_reloads_the_pair_and_the_crl(radsec: RadsecServer) -> None:
    pki = radsec.certs
    kept = tls_client(radsec, pki.own)
    old = served(radsec)
    # A new pair from the same CA, put in place as an operator's tool does, then SIGHUP.
    cert, key, new = pki.ca.issue("server-b", "netd.radsec.test", dns=("netd.radsec.test",))
    os.replace(cert, pki.server[0])
    os.replace(key, pki.server[1])
    radsec.proc.signal(signal.SIGHUP)
    wait_until(lambda: reloads(radsec, "ok") == 1)
    assert served(radsec) == new.public_bytes(Encoding.DER) != old
    kept.sendall(status_server(RADSEC, 1))  # the open connection keeps its session
    assert decode(read_packet(kept)).code == Code.ACCESS_ACCEPT
    kept.close()
    # A key that is not the certificate's: refused, the pair in force stays.
    good_key = pki.server[1].read_bytes()
    _, other_key, _ = pki.ca.issue("other", "other")
    os.replace(other_key, pki.server[1])
    radsec.proc.signal(signal.SIGHUP)
    wait_until(lambda: reloads(radsec, "kept") == 1)
    assert served(radsec) == new.public_bytes(Encoding.DER)
    assert "TLS certificate not reloaded" in radsec.proc.output()
    # The CRL: a certificate refused as unmapped before is refused as revoked after.
    _, _, unmapped = pki.ca.issue("unmapped-2", "nobody2", dns=("nobody2.radsec.test",))
    cert2, key2 = pki.ca.directory / "unmapped-2.crt", pki.ca.directory / "unmapped-2.key"
    before = radsec.metric(
        "netd_radius_stream_refused_total", transport="tls", reason="bad_certificate"
    )
    pki.ca.crl([unmapped])
    pki.server[1].write_bytes(good_key)
    radsec.proc.signal(signal.SIGHUP)
    wait_until(lambda: reloads(radsec, "ok") == 2)
    try:
        sock = tls_client(radsec, (cert2, key2))
    except OSError:
        pass
    else:
        sock.sendall(status_server(RADSEC, 2))
        assert read_packet(sock) == b""
        sock.close()
    wait_until(
        lambda: (
            radsec.metric(
                "netd_radius_stream_refused_total", transport="tls", reason="bad_certificate"
            )
            == before + 1
        )
    )


def test_total_connection_limit(radsec: RadsecServer) -> None:
    """radius.radsec.max_connections is 3 here: a fourth connection, TLS or TCP, is closed
    unanswered and counted; once one closes, a new one is served."""
    before = radsec.metric(
        "netd_radius_stream_refused_total", transport="tcp", reason="limit_total"
    )
    held = [tls_client(radsec, radsec.certs.own) for _ in range(3)]
    try:
        for sock in held:
            sock.sendall(status_server(RADSEC, 1))
            assert read_packet(sock)
        extra = socket.create_connection(("127.0.0.1", radsec.tcp_port), timeout=5)
        with contextlib.suppress(OSError):
            extra.sendall(status_server(SECRET, 2))
        assert read_packet(extra) == b""
        extra.close()
        wait_until(
            lambda: (
                radsec.metric(
                    "netd_radius_stream_refused_total", transport="tcp", reason="limit_total"
                )
                == before + 1
            )
        )
    finally:
        held.pop().close()
    wait_until(lambda: radsec.metric("netd_radius_stream_connections", transport="tls") == 2)
    again = socket.create_connection(("127.0.0.1", radsec.tcp_port), timeout=5)
    again.sendall(status_server(SECRET, 3))
    assert decode(read_packet(again)).code == Code.ACCESS_ACCEPT
    again.close()
    for sock in held:
        sock.close()
