"""A `netd radius` with RADIUS/TCP and RadSec on, its certificates (a test CA), and
radsecproxy (Debian 1.9.2) run as a peer: the shared fixtures of the RadSec tests."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from daemons.radius.codec import Code, encode_request, hide_password
from daemons.radius.stream import fingerprint
from daemons.store import radius as store
from tests.certs import Authority
from tests.conftest import StoreUrls
from tests.radius.conftest import NAS, SUBSCRIBERS, RadiusServer, running
from tests.stack import assert_clean_log, seeded_stores
from tests.support import free_port, free_udp_port, tool

PROXY_NAS = "rsp"  # radsecproxy's certificate (SAN DNS name) maps to it
OWN_NAS = "own"  # our StreamUpstream's certificate (by fingerprint)
PROXY_NAME = "proxy.radsec.test"


@dataclass
class Pki:
    ca: Authority
    server: tuple[Path, Path]
    proxy: tuple[Path, Path]  # radsecproxy's client certificate (mapped by DNS name)
    own: tuple[Path, Path]  # our client's (mapped by fingerprint)
    unmapped: tuple[Path, Path]  # signed by the CA, names no NAS
    stranger_ca: Authority
    stranger: tuple[Path, Path]  # signed by another CA
    own_fingerprint: str
    crl: Path  # revokes nothing at first


@dataclass
class RadsecServer(RadiusServer):
    tls_port: int = 0
    tcp_port: int = 0
    pki: Pki | None = None
    tmp: Path | None = None

    @property
    def certs(self) -> Pki:
        assert self.pki is not None
        return self.pki


def make_pki(tmp: Path) -> Pki:
    ca = Authority(tmp / "pki")
    server = ca.issue("server", "netd.radsec.test", dns=("netd.radsec.test",))
    proxy = ca.issue("proxy", "ignored-cn", dns=(PROXY_NAME,))
    own = ca.issue("own", "own.radsec.test")
    unmapped = ca.issue("unmapped", "nobody.radsec.test", dns=("nobody.radsec.test",))
    stranger_ca = Authority(tmp / "stranger", "stranger CA")
    stranger = stranger_ca.issue("stranger", PROXY_NAME, dns=(PROXY_NAME,))
    return Pki(
        ca,
        server[:2],
        proxy[:2],
        own[:2],
        unmapped[:2],
        stranger_ca,
        stranger[:2],
        fingerprint(own[2].public_bytes(Encoding.DER)),
        ca.crl([]),
    )


@pytest.fixture(scope="module")
async def radsec(
    store_urls: StoreUrls,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> AsyncIterator[RadsecServer]:
    """netd with UDP, RADIUS/TCP and RadSec on loopback; NAS ``rsp`` and ``own`` known by
    their certificates, ``lo`` (127.0.0.1) by address. A test module may tune the daemon
    with a module-level RADSEC_ENV dict."""
    tmp = tmp_path_factory.mktemp("radsec")
    pki = make_pki(tmp)
    async with seeded_stores(store_urls.postgres, store_urls.redis, "rs_", "rs") as st:
        for nas_name, net, secret, vendor, strict in NAS:
            await st.add_nas(nas_name, net, secret, vendor, strict)
        await st.add_nas(
            PROXY_NAS, "192.0.2.1/32", b"unused-udp-1", "mikrotik", True, 3799, PROXY_NAME
        )
        await st.add_nas(
            OWN_NAS, "192.0.2.2/32", b"unused-udp-2", "mikrotik", True, 3799, pki.own_fingerprint
        )
        await st.add_subscribers(
            (store.SubscriberRow(user, plan=plan, state=state, mac=mac, framed_ip=ip), pw, scheme)
            for user, pw, scheme, plan, state, mac, ip in SUBSCRIBERS
        )
        port, acct_port, status_port = free_udp_port(), free_udp_port(), free_port()
        tls_port, tcp_port = free_port(), free_port()
        env = st.env(
            tmp,
            {
                "NETD_RADIUS_AUTH_PORT": str(port),
                "NETD_RADIUS_ACCT_PORT": str(acct_port),
                "NETD_RADIUS_STATUS_PORT": str(status_port),
                "NETD_RADIUS_LISTEN": "127.0.0.1",
                "NETD_RADIUS_RADSEC_TLS_PORT": str(tls_port),
                "NETD_RADIUS_RADSEC_TCP_PORT": str(tcp_port),
                "NETD_RADIUS_RADSEC_TLS_CERT": str(pki.server[0]),
                "NETD_RADIUS_RADSEC_TLS_KEY": str(pki.server[1]),
                "NETD_RADIUS_RADSEC_TLS_CLIENT_CA": str(pki.ca.path),
                "NETD_RADIUS_RADSEC_TLS_CRL": str(pki.crl),
                "NETD_RADIUS_RADSEC_HANDSHAKE_TIMEOUT": "2",
                "NETD_RADIUS_RADSEC_IDLE_TIMEOUT": "3",
                "NETD_RADIUS_RADSEC_MAX_CONNECTIONS_PER_NAS": "4",
            },
        )
        env.update(getattr(request.module, "RADSEC_ENV", {}))
        ports = (port, acct_port, status_port)
        extra = {"tls_port": tls_port, "tcp_port": tcp_port, "pki": pki, "tmp": tmp}
        with running(st, tmp, env, ports, RadsecServer, **extra) as server:
            yield server
        out = server.proc.output()
    assert_clean_log(out, ("pw1", "pw2", "s3cret-lo"))


def listening(port: int, proto: str) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (``proto``: tcp or udp)."""
    want = f":{port:04X}"
    for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
        local = line.split()[1]
        if local.endswith(want) and (proto == "udp" or line.split()[3] == "0A"):
            return True
    return False


class Radsecproxy:
    """``radsecproxy -f -c CONF``: started, waited for, stopped; its log kept."""

    def __init__(self, tmp: Path, conf: str, ready: tuple[int, str]) -> None:
        binary = tool("radsecproxy", "radsecproxy")
        self.conf = tmp / f"radsecproxy-{time.monotonic_ns()}.conf"
        self.conf.write_text(conf)
        self.log_path = self.conf.with_suffix(".log")
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [binary, "-f", "-d", "4", "-c", str(self.conf)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not listening(*ready):
            assert self.proc.poll() is None, f"radsecproxy exited: {self.output()}"
            assert time.monotonic() < deadline, f"radsecproxy not listening: {self.output()}"
            time.sleep(0.05)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def radsecproxy_factory(tmp_path: Path) -> Iterator[list[Radsecproxy]]:
    started: list[Radsecproxy] = []
    yield started
    for proxy in started:
        proxy.stop()


# --- a plain client, for what a peer cannot be made to do (no certificate, TLS 1.1...) ---


def tls_client(
    server: RadsecServer,
    pair: tuple[Path, Path] | None,
    tls11: bool = False,
    ca: Path | None = None,
) -> ssl.SSLSocket:
    """A TLS connection to netd's RadSec port, with ``pair`` as the client certificate.
    Raises ssl.SSLError / OSError when the handshake fails on our side."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(ca or server.certs.ca.path))
    if pair is not None:
        context.load_cert_chain(str(pair[0]), str(pair[1]))
    if tls11:  # OpenSSL 3 keeps TLS 1.1 only at security level 0
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
    sock = socket.create_connection(("127.0.0.1", server.tls_port), timeout=5)
    try:
        return context.wrap_socket(sock)
    except BaseException:
        sock.close()
        raise


def access_request(user: str, password: str, secret: bytes, ident: int = 1) -> bytes:
    auth = os.urandom(16)
    hidden = hide_password(password.encode(), secret, auth)
    return encode_request(
        Code.ACCESS_REQUEST, ident, [(1, user.encode()), (2, hidden)], secret, auth
    )


def accounting_start(user: str, sid: str, secret: bytes, ident: int = 1) -> bytes:
    attrs = [(1, user.encode()), (40, (1).to_bytes(4, "big")), (44, sid.encode())]
    return encode_request(Code.ACCOUNTING_REQUEST, ident, attrs, secret, None, message_auth=False)


def status_server(secret: bytes, ident: int = 1) -> bytes:
    return encode_request(Code.STATUS_SERVER, ident, [], secret, os.urandom(16))


def read_packet(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One framed packet; b"" when the peer closed (or reset) first. Raises TimeoutError."""
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < 4 or len(data) < int.from_bytes(data[2:4], "big"):
            chunk = sock.recv(4096)
            if not chunk:
                return b""
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        return b""
    return data
