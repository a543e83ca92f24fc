"""No API endpoint answers without a token, except the probes, /metrics and the docs.

Every route of the real FastAPI app (built here from the same ``build_app`` the daemon
runs, over the stack's real stores) is called on the running `netd api` with each of its
methods, path parameters filled with dummy values, with no token, a malformed one, an
unknown one and a revoked one. Every RPC of every service of the gRPC API is called the
same way. The status listeners of the other daemons serve the probes and /metrics only.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from starlette.routing import Mount, Route

import daemons.nbi.gen.netd.v1 as nbi_gen
from daemons.api.service import build_app
from daemons.core.config import load
from daemons.core.health import Health
from daemons.core.lifecycle import Context, close_stores, open_stores
from daemons.core.policies import load_policies
from tests.security.conftest import Stack

#: answered without a token, on purpose: the probes and Prometheus (README), and FastAPI's
#: documentation of the API (the same static schema on every installation; no data)
OPEN_ROUTES = {
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/health/startup"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/console/login"),  # the console's sign-in form
}
#: static files, the same on every installation: Swagger UI and ReDoc, the console's
#: stylesheet and script
STATIC = {"/docs/static/swagger-ui-bundle.js", "/console/static/console.js"}
#: the console's pages send a browser that is not signed in to the sign-in page; its
#: sign-in and sign-out forms refuse a request without their CSRF token
CONSOLE_PAGES = {"/", "/console/subscribers/{username}", "/console/devices/{key}", "/console/find"}
CONSOLE_FORMS = {"/console/login", "/console/logout"}
_PARAM = re.compile(r"\{([^}:]+)(?::([a-z]+))?\}")


def _fill(path: str) -> str:
    """The path with each parameter replaced by a dummy value its converter accepts."""

    def one(m: re.Match[str]) -> str:
        convertor = m.group(2) or "str"
        return {"int": "1", "float": "1.5", "path": "x/y", "uuid": "0" * 32}.get(convertor, "x1")

    return _PARAM.sub(one, path)


@pytest.fixture(scope="module")
async def routes(stack: Stack) -> AsyncIterator[list[tuple[str, str]]]:
    """Every (method, path) of the API app, HEAD included where Starlette adds it."""
    cfg = load(None, stack.env).config
    stores = await open_stores(cfg)
    try:
        ctx = Context(
            cfg,
            None,
            stores,
            CollectorRegistry(),
            Health(stores.pool, stores.redis),
            load_policies(cfg.policies.dir, 1),
            "security-test",
        )
        app = build_app(ctx)
        found: list[tuple[str, str]] = []
        # FastAPI keeps included routers as such in app.routes: their routes, flattened
        for ctx_route in iter_route_contexts(app.routes):
            route = ctx_route.original_route
            if isinstance(route, Mount):  # static files
                found.append(("GET", route.path + "/{path:path}"))
                continue
            assert isinstance(route, APIRoute | Route), f"a route of an unknown kind: {route!r}"
            assert ctx_route.path and ctx_route.methods, route
            for method in sorted(ctx_route.methods):
                found.append((method, ctx_route.path))
        yield found
    finally:
        await close_stores(stores)


async def _call(client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    async with client.stream(method, _fill(path)) as resp:
        await resp.aread()
        return resp


async def test_every_route_needs_a_token(stack: Stack, routes: list[tuple[str, str]]) -> None:
    api_routes = [r for r in routes if r[1].startswith("/api/")]
    assert len(api_routes) > 50, routes  # the whole API, not a part of it
    assert set(routes) >= OPEN_ROUTES, set(routes) & OPEN_ROUTES
    credentials: dict[str, dict[str, str]] = {
        "none": {},
        "not bearer": {"Authorization": f"Basic {stack.tokens['admin']}"},
        "empty bearer": {"Authorization": "Bearer"},
        "unknown": {"Authorization": "Bearer " + "A" * 43},
        "too long": {"Authorization": "Bearer " + "A" * 5000},
        "revoked": {"Authorization": f"Bearer {stack.tokens['revoked']}"},
    }
    wrong: list[str] = []
    # No token: every method of every route. The wrong tokens (one code path, after the
    # dependency every route must have): one method of every route.
    one_each = list({path: (method, path) for method, path in routes}.values())
    async with stack.api(None) as client:
        for what, headers in credentials.items():
            client.headers.clear()
            client.headers.update(headers)
            for method, path in routes if what == "none" else one_each:
                resp = await _call(client, method, path)
                if (
                    (method, path) in OPEN_ROUTES
                    or (method == "HEAD" and ("GET", path) in OPEN_ROUTES)
                    or path.endswith("/{path:path}")
                ):
                    continue
                if path in CONSOLE_PAGES and method == "GET":
                    if resp.status_code != 303 or not resp.headers.get("location", "").startswith(
                        "/console/login?next="
                    ):
                        wrong.append(f"{what}: {method} {path} -> {resp.status_code}")
                    continue
                if path in CONSOLE_FORMS and method == "POST":
                    if resp.status_code != 403 or "expired or came from another site" not in (
                        resp.text
                    ):
                        wrong.append(f"{what}: {method} {path} -> {resp.status_code}")
                    continue
                if resp.status_code != 401:
                    wrong.append(f"{what}: {method} {path} -> {resp.status_code} {resp.text[:80]}")
                    continue
                if "www-authenticate" not in resp.headers:
                    wrong.append(f"{what}: {method} {path} -> 401 without WWW-Authenticate")
                if method != "HEAD":
                    body = resp.json()
                    assert set(body) == {"error"}, body  # the error envelope, nothing else
    assert not wrong, "\n".join(wrong)
    # The open ones do answer (a route list that missed them would prove nothing).
    async with stack.api(None) as client:
        for method, path in sorted(OPEN_ROUTES):
            assert (await client.request(method, path)).status_code == 200, path
        for path in sorted(STATIC):
            assert (await client.get(path)).status_code == 200, path
    # A path no route has is 404 with no data, token or not.
    async with stack.api(None) as client:
        resp = await client.get("/api/v1/no-such-thing")
        assert resp.status_code in (401, 404) and "subscriber" not in resp.text


def _grpc_methods() -> list[tuple[str, Any, bool, bool]]:
    """(path, request class, client streaming, server streaming) of every RPC of every
    service of our gRPC API (the generated modules under daemons/nbi/gen/netd/v1)."""
    out: list[tuple[str, Any, bool, bool]] = []
    for info in pkgutil.iter_modules(nbi_gen.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{nbi_gen.__name__}.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                request = message_factory.GetMessageClass(method.input_type)
                path = f"/{service.full_name}/{method.name}"
                out.append((path, request, method.client_streaming, method.server_streaming))
    return out


async def _grpc_call(
    channel: grpc.aio.Channel,
    path: str,
    request: Any,
    client_streaming: bool,
    server_streaming: bool,
    metadata: tuple[tuple[str, str], ...],
) -> grpc.StatusCode:
    ser = request.SerializeToString
    kwargs: dict[str, Any] = {"request_serializer": ser, "response_deserializer": bytes}
    req = request()
    try:
        if client_streaming and server_streaming:
            call = channel.stream_stream(path, **kwargs)(iter([req]), metadata=metadata, timeout=10)
            async for _ in call:
                pass
        elif client_streaming:
            await channel.stream_unary(path, **kwargs)(iter([req]), metadata=metadata, timeout=10)
        elif server_streaming:
            async for _ in channel.unary_stream(path, **kwargs)(req, metadata=metadata, timeout=10):
                pass
        else:
            await channel.unary_unary(path, **kwargs)(req, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_every_grpc_call_needs_a_token(stack: Stack) -> None:
    methods = _grpc_methods()
    services = {path.split("/")[1] for path, *_ in methods}
    assert services >= {
        "netd.v1.SubscribersService",
        "netd.v1.SessionsService",
        "netd.v1.DevicesService",
    }, services
    assert len(methods) >= 10
    creds = grpc.ssl_channel_credentials(stack.cert.read_bytes())
    metadatas: dict[str, tuple[tuple[str, str], ...]] = {
        "none": (),
        "not bearer": (("authorization", stack.tokens["admin"]),),
        "unknown": (("authorization", "Bearer " + "A" * 43),),
        "revoked": (("authorization", f"Bearer {stack.tokens['revoked']}"),),
    }
    wrong: list[str] = []
    async with grpc.aio.secure_channel(f"127.0.0.1:{stack.grpc_port}", creds) as channel:
        for what, metadata in metadatas.items():
            for path, request, cs, ss in methods:
                code = await _grpc_call(channel, path, request, cs, ss, metadata)
                if code != grpc.StatusCode.UNAUTHENTICATED:
                    wrong.append(f"{what}: {path} -> {code.name}")
        # grpc.health.v1 is open: load balancers probe it without a token.
        health = health_pb2_grpc.HealthStub(channel)
        got = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert got.status == health_pb2.HealthCheckResponse.SERVING
        # and the token that works does get through (the calls above were refused for the
        # token, not for something else)
        ok = await _grpc_call(
            channel,
            "/netd.v1.SubscribersService/GetSubscriber",
            _request(methods, "GetSubscriber"),
            False,
            False,
            (("authorization", f"Bearer {stack.tokens['admin']}"),),
        )
        assert ok in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), ok
    assert not wrong, "\n".join(wrong)


def _request(methods: list[tuple[str, Any, bool, bool]], name: str) -> Any:
    return next(req for path, req, *_ in methods if path.endswith("/" + name))


STATUS_PATHS_OPEN = ("/health/live", "/health/ready", "/health/startup", "/metrics")
STATUS_PATHS_CLOSED = (
    "/",
    "/api/v1/status",
    "/api/v1/subscribers",
    "/docs",
    "/openapi.json",
    "/redoc",
    "/health",
    "/health/../api/v1/nas",
    "/metrics/../api/v1/tokens",
    "/subscribers/x",
)


async def test_status_listeners_serve_probes_and_metrics_only(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for daemon, port in stack.status.items():
            base = f"http://127.0.0.1:{port}"
            for path in STATUS_PATHS_OPEN:
                assert (await client.get(base + path)).status_code == 200, (daemon, path)
            for path in STATUS_PATHS_CLOSED:
                resp = await client.get(base + path)
                assert resp.status_code == 404, (daemon, path, resp.status_code, resp.text)
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                resp = await client.request(method, base + "/metrics")
                assert resp.status_code == 405, (daemon, method, resp.status_code)
        # The poller's SNMP exporter: /snmp/metrics only.
        base = f"http://127.0.0.1:{stack.exporter_port}"
        assert (await client.get(base + "/snmp/metrics")).status_code == 200
        for path in STATUS_PATHS_CLOSED:
            resp = await client.get(base + path)
            assert resp.status_code == 404, ("exporter", path, resp.status_code)
