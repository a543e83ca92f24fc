"""RadSec (RFC 6614) and RADIUS/TCP (RFC 6613) against radsecproxy (Debian 1.9.2) as the
client in front of netd: radclient, radtest and eapol_test speak UDP to radsecproxy, which
carries their requests to netd over TLS (its certificate mapped to NAS ``rsp``) or TCP
(NAS ``lo`` by address, its own secret)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from tests.radius.conftest import SECRET, wait_until
from tests.radius.radsec_stack import (
    PROXY_NAS,
    Radsecproxy,
    RadsecServer,
    radsec,
    radsecproxy_factory,
)
from tests.radius.test_interop_peers import eapol_conf
from tests.support import free_udp_port, tool

__all__ = ["radsec", "radsecproxy_factory"]  # the fixtures this module uses

NAS_SECRET = "nas-to-proxy"
MA = "Message-Authenticator = 0x00"  # radclient then signs it (BlastRADIUS: NAS rsp needs it)


def run(args: list[str], stdin: str = "", timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def front_conf(server: RadsecServer, udp_port: int, kind: str) -> str:
    """radsecproxy taking UDP from 127.0.0.1 and forwarding everything to netd over
    ``kind`` (tls: port tls_port, secret radsec; tcp: port tcp_port, NAS lo's secret)."""
    pki = server.certs
    target = (
        f"    type tls\n    port {server.tls_port}\n    secret radsec\n    StatusServer on\n"
        if kind == "tls"
        else f"    type tcp\n    port {server.tcp_port}\n    secret {SECRET.decode()}\n"
    )
    return (
        f"ListenUDP 127.0.0.1:{udp_port}\n"
        "LogLevel 4\n"
        "tls default {\n"
        f"    CACertificateFile {pki.ca.path}\n"
        f"    CertificateFile {pki.proxy[0]}\n"
        f"    CertificateKeyFile {pki.proxy[1]}\n"
        "    TLSVersion TLS1_2:\n"
        "}\n"
        "client 127.0.0.1 {\n    type udp\n"
        f"    secret {NAS_SECRET}\n}}\n"
        f"server netd {{\n    host 127.0.0.1\n{target}}}\n"
        "realm * {\n    server netd\n    accountingServer netd\n}\n"
    )


def front(radsec: RadsecServer, started: list[Radsecproxy], kind: str) -> int:
    udp_port = free_udp_port()
    assert radsec.tmp is not None
    started.append(Radsecproxy(radsec.tmp, front_conf(radsec, udp_port, kind), (udp_port, "udp")))
    return udp_port


def radclient(port: int, kind: str, attrs: str) -> subprocess.CompletedProcess[str]:
    binary = tool("radclient", "freeradius-utils")
    return run([binary, "-x", "-r", "3", "-t", "3", f"127.0.0.1:{port}", kind, NAS_SECRET], attrs)


def test_pap_accept_and_reject_through_radsecproxy_over_tls(
    radsec: RadsecServer, radsecproxy_factory: list[Radsecproxy]
) -> None:
    port = front(radsec, radsecproxy_factory, "tls")
    before = radsec.metric("netd_radius_responses_total", nas=PROXY_NAS, code="ACCESS_ACCEPT")
    ok = radclient(port, "auth", f'User-Name = "alice", User-Password = "pw1", {MA}\n')
    assert "Access-Accept" in ok.stdout, ok.stdout + ok.stderr + radsecproxy_factory[0].output()
    assert "Mikrotik-Rate-Limit" in ok.stdout  # the plan's reply came through
    bad = radclient(port, "auth", f'User-Name = "alice", User-Password = "wrong", {MA}\n')
    assert "Access-Reject" in bad.stdout, bad.stdout + bad.stderr
    argon = radclient(port, "auth", f'User-Name = "bob", User-Password = "pw2", {MA}\n')
    assert "Access-Accept" in argon.stdout, argon.stdout  # a one-way hash, off the loop
    # Answered by netd as NAS rsp (its certificate), over TLS.
    after = radsec.metric("netd_radius_responses_total", nas=PROXY_NAS, code="ACCESS_ACCEPT")
    assert after >= before + 2
    assert radsec.metric("netd_radius_stream_connections", transport="tls") >= 1
    assert radsec.metric("netd_radius_stream_packets_total", transport="tls", direction="in") >= 3


async def test_accounting_through_radsecproxy_is_acked_and_in_the_ledger(
    radsec: RadsecServer, radsecproxy_factory: list[Radsecproxy]
) -> None:
    port = front(radsec, radsecproxy_factory, "tls")
    sid = uuid.uuid4().hex[:16]
    start = (
        f'User-Name = "carol", Acct-Session-Id = "{sid}", Acct-Status-Type = Start, '
        "NAS-IP-Address = 192.0.2.1, Framed-IP-Address = 100.64.9.9\n"
    )
    acked = radclient(port, "acct", start)
    assert "Accounting-Response" in acked.stdout, acked.stdout + acked.stderr
    rows = await radsec.pool.fetch(
        "SELECT nas, status_type FROM accounting_events WHERE acct_session_id = $1", sid
    )
    assert [(r["nas"], r["status_type"]) for r in rows] == [(PROXY_NAS, 1)]


def test_eapol_test_eap_md5_through_radsecproxy(
    radsec: RadsecServer, radsecproxy_factory: list[Radsecproxy], tmp_path: Path
) -> None:
    port = front(radsec, radsecproxy_factory, "tls")
    eapol = tool("eapol_test", "eapoltest")

    def attempt(user: str, password: str) -> subprocess.CompletedProcess[str]:
        conf = eapol_conf(tmp_path, user, password)
        args = ["-n", "-c", str(conf), "-a", "127.0.0.1", "-p", str(port), "-s", NAS_SECRET]
        return run([eapol, *args, "-t", "8"])

    ok = attempt("User", "clientPass")
    assert "CTRL-EVENT-EAP-SUCCESS" in ok.stdout, ok.stdout[-3000:]
    bad = attempt("User", "nope")
    assert "CTRL-EVENT-EAP-FAILURE" in bad.stdout, bad.stdout[-3000:]


async def test_radius_over_tcp_through_radsecproxy(
    radsec: RadsecServer, radsecproxy_factory: list[Radsecproxy]
) -> None:
    port = front(radsec, radsecproxy_factory, "tcp")
    before = radsec.metric("netd_radius_stream_packets_total", transport="tcp", direction="out")
    ok = radclient(port, "auth", f'User-Name = "grace", User-Password = "pw7", {MA}\n')
    assert "Access-Accept" in ok.stdout, ok.stdout + ok.stderr + radsecproxy_factory[0].output()
    assert "Framed-IP-Address = 100.64.0.7" in ok.stdout
    bad = radclient(port, "auth", f'User-Name = "grace", User-Password = "wrong", {MA}\n')
    assert "Access-Reject" in bad.stdout, bad.stdout
    sid = uuid.uuid4().hex[:16]
    acct = radclient(
        port, "acct", f'User-Name = "dave", Acct-Session-Id = "{sid}", Acct-Status-Type = Start\n'
    )
    assert "Accounting-Response" in acct.stdout, acct.stdout
    rows = await radsec.pool.fetch(
        "SELECT nas FROM accounting_events WHERE acct_session_id = $1", sid
    )
    assert [r["nas"] for r in rows] == ["lo"]  # by its source address, over TCP
    wait_until(
        lambda: (
            radsec.metric("netd_radius_stream_packets_total", transport="tcp", direction="out")
            >= before + 3
        )
    )
