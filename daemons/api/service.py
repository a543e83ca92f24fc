"""The admin/status API daemon: FastAPI on uvicorn, on ``api.host:api.port``.

It serves the health endpoints and ``/metrics`` for its whole process.
"""

from __future__ import annotations

from typing import ClassVar

from fastapi import FastAPI

from daemons import __version__
from daemons.core.http import HttpServer, health_router
from daemons.core.http import hostport as _hostport
from daemons.core.lifecycle import Context, Daemon


def build_app(ctx: Context) -> FastAPI:
    app = FastAPI(title="dotmac-netd", version=__version__)
    app.include_router(health_router(ctx.health, ctx.registry))
    return app


class ApiService(Daemon):
    name: ClassVar[str] = "api"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        cfg = ctx.config.api
        self.server = HttpServer(
            build_app(ctx), cfg.host, cfg.port, ctx.config.lifecycle.drain_timeout
        )

    async def start(self) -> None:
        await self.server.start()

    def endpoints(self) -> dict[str, str]:
        url = f"http://{_hostport(self.server.host, self.server.port)}"
        return {"api": url, "health": f"{url}/health/ready", "metrics": f"{url}/metrics"}

    async def drain(self) -> None:
        await self.server.stop()
