"""The status listener of a daemon that runs without the API in its process.

It serves the health endpoints and ``/metrics`` on ``<daemon>.status_host:status_port``
(``status_port = 0`` turns it off). Under ``netd up`` the API serves them instead.
"""

from __future__ import annotations

from typing import ClassVar

from fastapi import FastAPI

from daemons.core.http import HttpServer, health_router, hostport
from daemons.core.lifecycle import Context, Daemon


class StatusListener(Daemon):
    name: ClassVar[str] = "status"
    heartbeat: ClassVar[bool] = False

    def __init__(self, ctx: Context, host: str, port: int) -> None:
        super().__init__(ctx)
        self.server: HttpServer | None = None
        if port:
            app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
            app.include_router(health_router(ctx.health, ctx.registry))
            self.server = HttpServer(app, host, port, ctx.config.lifecycle.drain_timeout)

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()

    def endpoints(self) -> dict[str, str]:
        if self.server is None:
            return {}
        url = f"http://{hostport(self.server.host, self.server.port)}"
        return {"health": f"{url}/health/ready", "metrics": f"{url}/metrics"}

    async def drain(self) -> None:
        if self.server is not None:
            await self.server.stop()


def status_listener_for(daemon: str) -> type[StatusListener]:
    """A StatusListener bound to ``[<daemon>] status_host/status_port``."""

    class Bound(StatusListener):
        def __init__(self, ctx: Context) -> None:
            section = getattr(ctx.config, daemon)
            super().__init__(ctx, section.status_host, section.status_port)

    Bound.__name__ = f"{daemon.capitalize()}StatusListener"
    return Bound
