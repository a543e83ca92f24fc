"""HTTP plumbing shared by the API and the per-daemon status listeners."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from daemons.core.health import Health

log = logging.getLogger("netd.http")


def hostport(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals bracketed, for URLs."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def health_router(health: Health, registry: CollectorRegistry) -> APIRouter:
    """``/health/live``, ``/health/ready``, ``/health/startup`` and ``/metrics``."""
    router = APIRouter(tags=["health"])

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        ok, checks = await health.ready()
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/health/startup")
    async def startup() -> JSONResponse:
        ok = health.started
        return JSONResponse({"status": "ok" if ok else "starting"}, status_code=200 if ok else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


class HttpServer:
    """A uvicorn server driven by our lifecycle (no signal handling of its own)."""

    def __init__(
        self,
        app: FastAPI | Any,
        host: str,
        port: int,
        drain_timeout: float,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(max(1, drain_timeout)),
            server_header=False,
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
        config.load()
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)
        self.host = host
        self.port = port

    async def start(self) -> None:
        """Bind and serve. Raises OSError if the address cannot be bound."""
        try:
            await self._server.startup()
        except SystemExit:  # uvicorn exits the process on a bind error; we report it instead
            raise OSError(f"cannot listen on {self.host}:{self.port}") from None
        if not self._server.started:
            raise OSError(f"cannot listen on {self.host}:{self.port}")

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded by the drain timeout)."""
        if self._server.started:
            self._server.should_exit = True
            await self._server.shutdown()
            self._server.started = False
