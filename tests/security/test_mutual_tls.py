"""Issue 26: optional mutual TLS for the HTTP and gRPC APIs, client certificates mapped to
roles (api.tls_client_ca, api.client_cert_roles, api.tls_client_required).

Attacks tried against real `netd api` processes:
- a certificate from another CA with a mapped CN: the handshake fails (HTTP and gRPC);
- a certificate from the right CA whose CN is mapped to no role: 401;
- a mapped viewer/operator certificate reaching for admin operations: 403;
- a browser-made write on a certificate alone (Origin present): 403;
- with tls_client_required: no certificate, no handshake (HTTP and gRPC).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest

from tests.certs import Authority
from tests.conftest import StoreUrls, fresh_database
from tests.security.test_api_auth import _grpc_call, _grpc_methods, _request
from tests.support import NetdProcess, free_port, netd_env

#: a refused client certificate: under TLS 1.3 the client learns it only when it reads
REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError)


def _client(ca: Authority, cert: tuple[Path, Path] | None, port: int) -> httpx.Client:
    ctx = ssl.create_default_context(cadata=ca.pem.decode())
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ctx, timeout=10)


def _wait_ready(proc: NetdProcess, ca: Authority, cert: tuple[Path, Path], port: int) -> None:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + 30
    while True:
        assert proc.proc.poll() is None, proc.output()
        try:
            with _client(ca, cert, port) as c:
                if c.get("/health/ready").status_code == 200:
                    return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, proc.output()
        time.sleep(0.1)


async def _grpc(
    ca: Authority, cert: tuple[Path, Path] | None, port: int, token: str = ""
) -> grpc.StatusCode:
    chain = (cert[1].read_bytes(), cert[0].read_bytes()) if cert else (None, None)
    creds = grpc.ssl_channel_credentials(ca.pem, *chain)
    methods = _grpc_methods()
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        return await _grpc_call(
            channel,
            "/netd.v1.SubscribersService/GetSubscriber",
            _request(methods, "GetSubscriber"),
            False,
            False,
            metadata,
        )


async def test_client_certificates_map_to_roles(store_urls: StoreUrls, tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    ca, rogue = Authority(tls / "ok", "netd-clients"), Authority(tls / "rogue", "rogue")
    server = ca.issue("server", "127.0.0.1")[:2]
    bot = ca.issue("noc-bot", "noc-bot", ips=())[:2]
    watcher = ca.issue("noc-watch", "noc-watch", ips=())[:2]
    stranger = ca.issue("stranger", "stranger", ips=())[:2]
    impostor = rogue.issue("noc-bot", "noc-bot", ips=())[:2]
    ca_file = ca.path
    config = tmp_path / "netd.toml"  # a table: the config file's business, not the env's
    config.write_text('[api.client_cert_roles]\n"noc-bot" = "operator"\n"noc-watch" = "viewer"\n')
    async with fresh_database(store_urls, "mt_", migrated=True) as dsn:
        base_env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": "mt" + os.urandom(4).hex(),
                "NETD_SECRETS_KEY": os.urandom(32).hex(),
                "NETD_STATE_DIR": str(tmp_path / "state"),
                "NETD_LOG_FORMAT": "json",
                "NETD_API_TLS_CERT": str(server[0]),
                "NETD_API_TLS_KEY": str(server[1]),
                "NETD_API_TLS_CLIENT_CA": str(ca_file),
                "NETD_CONFIG": str(config),
                "NETD_API_RATE_LIMIT": "1000",
            }
        )
        port = free_port()
        optional = NetdProcess(["api"], {**base_env, "NETD_API_PORT": str(port)}, tmp_path)
        required: NetdProcess | None = None
        try:
            _wait_ready(optional, ca, bot, port)
            with _client(ca, bot, port) as c:
                assert c.get("/api/v1/status").status_code == 200  # no token: the certificate
                assert c.get("/api/v1/tokens").status_code == 403  # operator, not admin
                bulk = c.post(
                    "/api/v1/cpe-bulk", json={"filter": {"tags": ["none"]}, "kind": "reboot"}
                )
                assert bulk.status_code == 404, bulk.text  # admitted, then the filter matches none
                browser = c.post(
                    "/api/v1/cpe-bulk",
                    json={"filter": {"tags": ["none"]}, "kind": "reboot"},
                    headers={"origin": "https://evil.example"},
                )
                assert browser.status_code == 403
            with _client(ca, watcher, port) as c:
                assert c.get("/api/v1/status").status_code == 200
                assert c.post("/api/v1/cpe-bulk", json={}).status_code == 403
            with _client(ca, stranger, port) as c:
                got = c.get("/api/v1/status")
                assert got.status_code == 401 and "CN=stranger" in got.text
            with (
                pytest.raises(REFUSED),
                _client(ca, impostor, port) as c,
            ):
                c.get("/api/v1/status")
            with _client(ca, None, port) as c:  # optional: no certificate, no token
                assert c.get("/api/v1/status").status_code == 401
            conn = await asyncpg.connect(dsn)
            try:
                actors = {
                    r["actor"]
                    for r in await conn.fetch("SELECT actor FROM audit_log WHERE method = 'POST'")
                }
            finally:
                await conn.close()
            assert {"api:cert:noc-bot", "api:cert:noc-watch"} <= actors
            # required: HTTP and gRPC refuse a handshake without a certificate of the CA
            rport, gport = free_port(), free_port()
            required = NetdProcess(
                ["api"],
                {
                    **base_env,
                    "NETD_API_PORT": str(rport),
                    "NETD_API_GRPC_PORT": str(gport),
                    "NETD_API_TLS_CLIENT_REQUIRED": "true",
                },
                tmp_path,
            )
            _wait_ready(required, ca, bot, rport)
            for cert in (None, impostor):
                with (
                    pytest.raises(REFUSED),
                    _client(ca, cert, rport) as c,
                ):
                    c.get("/api/v1/status")
                assert await _grpc(ca, cert, gport) == grpc.StatusCode.UNAVAILABLE
            admitted = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}
            assert await _grpc(ca, bot, gport) in admitted
            assert await _grpc(ca, stranger, gport) == grpc.StatusCode.UNAUTHENTICATED
        finally:
            optional.stop()
            if required is not None:
                required.stop()
        for proc in (optional, required):
            assert proc is not None and "Traceback" not in proc.output()
