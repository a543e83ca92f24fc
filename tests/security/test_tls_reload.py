"""Issue 26: TLS certificates reload on SIGHUP for every TLS listener.

Real `netd api` (HTTPS and gRPC over TLS) and `netd acs` (HTTPS) start with certificate A.
A connection is opened to each. The files are replaced by certificate B and the daemons
get SIGHUP: the open connections carry on (another request on the same TLS session), new
connections are served B. Then bad pairs (an expired certificate, a key of another
certificate, a file that is not PEM): each is refused with the reason in the log, and new
connections are still served B.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from pathlib import Path

import grpc
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.certs import self_signed_pem
from tests.conftest import StoreUrls, fresh_database
from tests.support import NetdProcess, free_port, netd_env


def make_pair(folder: Path, days: float = 1.0, start: float = -0.01) -> tuple[bytes, bytes]:
    """A self-signed pair for 127.0.0.1 valid from now+start to now+days (days), PEM."""
    folder.mkdir(parents=True, exist_ok=True)
    return self_signed_pem(days, start)


def install(cert_path: Path, key_path: Path, pair: tuple[bytes, bytes]) -> None:
    """Replace the files as an operator's tool does: write aside, rename over."""
    for path, data in ((cert_path, pair[0]), (key_path, pair[1])):
        tmp = path.with_suffix(".new")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def served(port: int) -> bytes:
    """The certificate a new TLS connection to 127.0.0.1:port is served, DER."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


class KeptConnection:
    """One TLS connection with HTTP/1.1 keep-alive: requests one after another on it."""

    def __init__(self, port: int, trust: bytes) -> None:
        ctx = ssl.create_default_context(cadata=trust.decode())
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.first = self.tls.getpeercert(binary_form=True)

    def get(self, path: str) -> int:
        self.tls.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.tls.recv(4096)
            assert chunk, "the connection was closed"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += self.tls.recv(4096)
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        self.tls.close()


def _wait_https(proc: NetdProcess, url: str, trust: bytes, limit: float = 30.0) -> None:
    verify = ssl.create_default_context(cadata=trust.decode())
    deadline = time.monotonic() + limit
    while True:
        assert proc.proc.poll() is None, proc.output()
        try:
            if httpx.get(url, verify=verify, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, proc.output()
        time.sleep(0.1)


def _wait_log(proc: NetdProcess, text: str, count: int, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while proc.output().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} x{count} not logged:\n{proc.output()}"
        time.sleep(0.05)


async def _grpc_health(port: int, trust: bytes, channel: grpc.aio.Channel | None = None) -> int:
    """A gRPC health check over a channel (a new one trusting ``trust`` if none given)."""
    if channel is None:
        creds = grpc.ssl_channel_credentials(trust)
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as fresh:
            got = await health_pb2_grpc.HealthStub(fresh).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            return int(got.status)
    got = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    return int(got.status)


async def test_certificates_reload_on_sighup_without_dropping(
    store_urls: StoreUrls, tmp_path: Path
) -> None:
    certs = tmp_path / "tls"
    certs.mkdir()
    cert_path, key_path = certs / "netd.crt", certs / "netd.key"
    a, b = make_pair(tmp_path / "a"), make_pair(tmp_path / "b")
    install(cert_path, key_path, a)
    api_port, grpc_port, acs_port = free_port(), free_port(), free_port()
    acs_status = free_port()
    async with fresh_database(store_urls, "tls_", migrated=True) as dsn:
        env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": "tls" + os.urandom(4).hex(),
                "NETD_SECRETS_KEY": os.urandom(32).hex(),
                "NETD_STATE_DIR": str(tmp_path / "state"),
                "NETD_LOG_FORMAT": "json",
                "NETD_API_PORT": str(api_port),
                "NETD_API_GRPC_PORT": str(grpc_port),
                "NETD_API_TLS_CERT": str(cert_path),
                "NETD_API_TLS_KEY": str(key_path),
                "NETD_ACS_PORT": str(acs_port),
                "NETD_ACS_STATUS_PORT": str(acs_status),
                "NETD_ACS_TLS_CERT": str(cert_path),
                "NETD_ACS_TLS_KEY": str(key_path),
            }
        )
        api = NetdProcess(["api"], env, tmp_path)
        acs = NetdProcess(["acs"], env, tmp_path)
        kept: list[KeptConnection] = []
        try:
            _wait_https(api, f"https://127.0.0.1:{api_port}/health/ready", a[0])
            acs.wait_http(f"http://127.0.0.1:{acs_status}/health/ready")
            assert served(api_port) == served(acs_port) == der(a[0])
            kept = [KeptConnection(api_port, a[0]), KeptConnection(acs_port, a[0])]
            assert kept[0].get("/health/live") == 200
            assert kept[1].get("/files/none") in (401, 404)
            creds = grpc.ssl_channel_credentials(a[0])
            async with grpc.aio.secure_channel(f"127.0.0.1:{grpc_port}", creds) as old_channel:
                assert await _grpc_health(grpc_port, a[0], old_channel) == 1  # SERVING
                install(cert_path, key_path, b)
                for proc in (api, acs):
                    proc.signal(signal.SIGHUP)
                _wait_log(api, "TLS certificate reloaded", 2)  # HTTPS and gRPC
                _wait_log(acs, "TLS certificate reloaded", 1)
                # new connections: B, on every listener
                assert served(api_port) == served(acs_port) == served(grpc_port) == der(b[0])
                assert await _grpc_health(grpc_port, b[0]) == 1
                # the connections open before: still up, still on A
                assert kept[0].get("/health/live") == 200 and kept[0].first == der(a[0])
                assert kept[1].get("/files/none") in (401, 404)
                assert await _grpc_health(grpc_port, a[0], old_channel) == 1
                # bad pairs: refused with the reason, B stays
                c = make_pair(tmp_path / "c")
                bad = {
                    "expired": make_pair(tmp_path / "old", days=-1, start=-2),
                    "mismatch": (c[0], b[1]),
                    "not PEM": (b"not a certificate\n", b[1]),
                }
                for n, (what, pair) in enumerate(bad.items(), start=1):
                    install(cert_path, key_path, pair)
                    for proc in (api, acs):
                        proc.signal(signal.SIGHUP)
                    _wait_log(api, "TLS certificate not reloaded", 2 * n)
                    _wait_log(acs, "TLS certificate not reloaded", n)
                    assert served(api_port) == served(acs_port) == served(grpc_port) == der(b[0])
                    assert await _grpc_health(grpc_port, b[0]) == 1, what
                out = api.output()
                assert "expired on" in out and "not a PEM certificate" in out, out
                assert kept[0].get("/health/live") == 200
                text = httpx.get(
                    f"https://127.0.0.1:{api_port}/metrics",
                    verify=ssl.create_default_context(cadata=b[0].decode()),
                    timeout=5,
                ).text
                assert 'netd_tls_reloads_total{listener="grpc",result="kept"} 3.0' in text
                assert 'netd_tls_reloads_total{listener="api",result="ok"} 1.0' in text
        finally:
            for conn in kept:
                conn.close()
            for proc in (api, acs):
                proc.stop()
        for proc in (api, acs):
            assert "Traceback" not in proc.output()
