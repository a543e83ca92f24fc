"""TLS on the ACS, the HTTP API and the gRPC API (the stack's self-signed certificate):
each talks HTTPS (HTTP/2 for gRPC), refuses plain text, and refuses TLS below 1.2."""

from __future__ import annotations

import socket
import ssl
import threading

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.acs.sim import Cpe, load_model, model_files
from tests.security.conftest import Stack


def _handshake(port: int, ctx: ssl.SSLContext) -> str:
    """The TLS version negotiated with 127.0.0.1:port. Raises ssl.SSLError / OSError."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.version())


def _tls11_client(cafile: str | None = None) -> ssl.SSLContext:
    """A client that offers TLS 1.1 and nothing newer (OpenSSL's security level lowered so
    that this side does not refuse it first)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def _tls11_works_here(stack: Stack) -> bool:
    """Whether this machine's OpenSSL can do TLS 1.1 at all: a throwaway TLS 1.1 server on
    loopback and the same client. Without it a refusal would prove nothing."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    server_ctx.load_cert_chain(stack.cert, stack.cert.with_suffix(".key"))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(5)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            return _handshake(listener.getsockname()[1], _tls11_client()) == "TLSv1.1"
        except (OSError, ssl.SSLError):
            return False
        finally:
            thread.join(5)


async def test_cwmp_inform_over_https(stack: Stack) -> None:
    cpe = Cpe(load_model(model_files()[0]), serial_suffix="-sec-tls")
    async with httpx.AsyncClient(verify=stack.ssl(), timeout=10) as client:
        resp = await client.post(f"https://127.0.0.1:{stack.acs_port}/", content=cpe.inform())
    assert resp.status_code == 200, resp.text
    assert b"InformResponse" in resp.content
    assert resp.http_version == "HTTP/1.1"


async def test_api_over_https_with_a_token(stack: Stack) -> None:
    async with stack.api("other") as client:
        resp = await client.get("/api/v1/status")
    assert resp.status_code == 200 and "instances" in resp.json()


@pytest.mark.parametrize("which", ["acs", "api"])
async def test_plain_http_to_a_tls_port_gets_nothing(stack: Stack, which: str) -> None:
    port = stack.acs_port if which == "acs" else stack.api_port
    async with httpx.AsyncClient(timeout=5) as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(f"http://127.0.0.1:{port}/health/live")


async def test_grpc_only_over_tls(stack: Stack) -> None:
    creds = grpc.ssl_channel_credentials(stack.cert.read_bytes())
    async with grpc.aio.secure_channel(f"127.0.0.1:{stack.grpc_port}", creds) as channel:
        got = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert got.status == health_pb2.HealthCheckResponse.SERVING
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.grpc_port}") as plain:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_pb2_grpc.HealthStub(plain).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_below_1_2_is_refused(stack: Stack) -> None:
    assert _tls11_works_here(stack), "this OpenSSL cannot do TLS 1.1: the check proves nothing"
    modern = ssl.create_default_context(cafile=str(stack.cert))
    modern.set_alpn_protocols(["h2", "http/1.1"])
    tls12 = ssl.create_default_context(cafile=str(stack.cert))
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.set_alpn_protocols(["h2", "http/1.1"])
    for name, port in (
        ("acs", stack.acs_port),
        ("api", stack.api_port),
        ("grpc", stack.grpc_port),
    ):
        assert _handshake(port, modern) == "TLSv1.3", name
        assert _handshake(port, tls12) == "TLSv1.2", name
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _handshake(port, _tls11_client())
