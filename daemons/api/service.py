"""The admin/status API daemon: FastAPI on uvicorn, on ``api.host:api.port``.

``/api/v1`` for NOC staff and the platform (bearer tokens, roles, an audit row for every
mutating call), ``/docs``, ``/redoc`` and ``/openapi.json`` (offline), the NOC console at
``/`` (``daemons.console``), and the health endpoints and ``/metrics`` for its whole
process.
"""

from __future__ import annotations

from typing import ClassVar

from fastapi import FastAPI
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from daemons import __version__, console
from daemons.acs.service import file_store
from daemons.api import (
    docs,
    errors,
    routes_acs,
    routes_core,
    routes_cpe_bulk,
    routes_devices,
    routes_radius,
    routes_realms,
    routes_snmp,
    routes_voltha,
)
from daemons.api.auditexport import AuditKeeper
from daemons.api.auth import Authenticator
from daemons.api.middleware import ApiMiddleware
from daemons.api.state import ApiState
from daemons.core.http import HttpServer, health_router
from daemons.core.http import hostport as _hostport
from daemons.core.lifecycle import Context, Daemon
from daemons.core.policies import PolicySet
from daemons.nbi.service import GrpcServer
from daemons.radius.dictionary import Dictionary
from daemons.radius.policy import load_policy
from daemons.store import accounting
from daemons.voltha.client import VolthaClient

DESCRIPTION = """\
The admin and status API of dotmac-netd.

Authenticate with `Authorization: Bearer <token>` (create one with
`netd token create --role viewer|operator|admin --name NAME`). Viewers read; operators
also act on sessions and devices; admins also manage NAS clients, subscribers, plans and
tokens. Lists are paged with `?limit=` and the `next_cursor` of the previous page. Every
error is `{"error": {"code", "message", "details", "request_id"}}`.
"""


def build_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="dotmac-netd",
        version=__version__,
        description=DESCRIPTION,
        responses=errors.ERROR_RESPONSES,
        docs_url=None,  # docs.install: served from the wheel, not a CDN
        redoc_url=None,
    )
    dictionary = Dictionary(ctx.config.radius.dictionaries)
    auth = Authenticator(
        ctx.pool,
        ctx.cache,
        ctx.config.api.token_cache_ttl,
        ctx.config.api.rate_limit,
        ctx.config.api.rate_burst,
    )
    app.state.pool = ctx.pool
    app.state.auth = auth
    app.state.api = ApiState(
        ctx.config,
        ctx.pool,
        ctx.cache,
        ctx.sealer,
        ctx.health,
        dictionary,
        ctx.policies,
        auth,
        files=file_store(ctx.config),
    )
    refusals = Counter(
        "netd_api_connection_requests_refused_total",
        "connection requests (API, gRPC) not sent: the target's check refused it, by reason",
        ["reason"],
        registry=ctx.registry,
    )
    app.state.api.connreq_refused = lambda reason: refusals.labels(reason).inc()
    errors.install(app)
    # Probes and Prometheus, not API clients: kept out of the API's OpenAPI document, whose
    # every operation answers with the error envelope (the status listeners serve no schema).
    live = Gauge(
        "netd_sessions_live",
        "live RADIUS sessions (Redis), read at the scrape",
        registry=ctx.registry,
    )

    async def collect() -> None:
        try:
            live.set(await accounting.live_session_count(ctx.cache))
        except (RedisError, OSError):
            live.set(float("nan"))  # no answer: no value, rather than a false 0

    app.include_router(health_router(ctx.health, ctx.registry, collect), include_in_schema=False)
    app.include_router(routes_core.router)
    app.include_router(routes_radius.router)
    app.include_router(routes_realms.router)
    app.include_router(routes_acs.router)
    app.include_router(routes_cpe_bulk.router)
    app.include_router(routes_snmp.router)
    app.include_router(routes_voltha.router)
    app.include_router(routes_devices.router)
    docs.install(app)
    console.install(app)
    app.add_middleware(ApiMiddleware, registry=ctx.registry)
    return app


class ApiService(Daemon):
    name: ClassVar[str] = "api"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        cfg = ctx.config.api
        self.app = build_app(ctx)
        tls = (cfg.tls_cert, cfg.tls_key) if cfg.tls_cert and cfg.tls_key else None
        self.server = HttpServer(
            self.app,
            cfg.host,
            cfg.port,
            ctx.config.lifecycle.drain_timeout,
            tls=tls,
            client_ca=cfg.tls_client_ca,
            client_required=cfg.tls_client_required,
        )
        auth: Authenticator = self.app.state.auth
        auth.peer_certs = self.server.peers  # mutual TLS: certificates mapped to roles
        auth.cert_roles = dict(cfg.client_cert_roles)
        self.audit = AuditKeeper(ctx.pool, cfg)  # retention and export of the audit log
        # The northbound gRPC API: the same state, tokens and operations as the HTTP API.
        self.grpc = (
            GrpcServer(
                self.app.state.api,
                ctx.registry,
                cfg.host,
                cfg.grpc_port,
                ctx.config.lifecycle.drain_timeout,
                tls=tls,
                client_ca=cfg.tls_client_ca if cfg.tls_client_required else None,
            )
            if cfg.grpc_port
            else None
        )

    def reload_tls(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        http = self.server.reload_tls("api")
        if http is not None:
            out["api"] = http
        grpc_ok = self.grpc.reload_tls() if self.grpc is not None else None
        if grpc_ok is not None:
            out["grpc"] = grpc_ok
        return out

    def check_policies(self, policies: PolicySet) -> None:
        state: ApiState = self.app.state.api
        load_policy(policies, state.dictionary)

    def apply_policies(self, policies: PolicySet) -> None:
        self.app.state.api.policies = policies

    async def start(self) -> None:
        await self.server.start()
        if self.grpc is not None:
            try:
                await self.grpc.start()
            except BaseException:
                await self.server.stop()
                raise
        self.audit.start()

    def endpoints(self) -> dict[str, str]:
        scheme = "https" if self.ctx.config.api.tls_cert else "http"
        url = f"{scheme}://{_hostport(self.server.host, self.server.port)}"
        return {
            "api": f"{url}/api/v1",
            "console": f"{url}/",
            "docs": f"{url}/docs",
            "health": f"{url}/health/ready",
            "metrics": f"{url}/metrics",
            **({"grpc": _hostport(self.server.host, self.grpc.port)} if self.grpc else {}),
        }

    async def drain(self) -> None:
        await self.audit.stop()
        if self.grpc is not None:
            await self.grpc.stop()
        await self.server.stop()
        clients: dict[str, VolthaClient] = self.app.state.api.extra.get("voltha", {})
        for client in clients.values():
            await client.close()
