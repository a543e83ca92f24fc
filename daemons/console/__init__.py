"""The NOC console that ``netd api`` serves at ``/``: server-rendered pages of the state of
the network, one subscriber and one device, with a little vanilla JavaScript that follows
the API's event stream. Read-only; no CDN, no framework; its templates, stylesheet and
script ship in the wheel (``daemons/console/templates`` and ``static``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from daemons.console import routes

STATIC = "/console/static"


def install(app: FastAPI) -> None:
    app.mount(STATIC, StaticFiles(packages=[("daemons.console", "static")]), name="console")
    app.include_router(routes.router)
