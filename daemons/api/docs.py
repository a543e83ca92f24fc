"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) that work with no internet access.

The scripts, stylesheet and favicon come from the fastapi-offline wheel (Swagger UI 5 and
ReDoc 2 as their CDNs serve them) at ``/docs/static/``; ReDoc gets no Google Fonts and
Swagger UI no online validator badge, and a Content-Security-Policy keeps every fetch on
this host. The OpenAPI document declares the bearer scheme (``auth.BEARER``), so Swagger
UI's Authorize takes a token of any role and Try it out sends it.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

STATIC = "/docs/static"
# Swagger UI and ReDoc run inline scripts and styles (their HTML is FastAPI's); ReDoc
# renders in a blob worker. Nothing is allowed from another origin.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
SWAGGER_PARAMETERS = {
    "validatorUrl": None,  # no badge image from validator.swagger.io
    "persistAuthorization": False,  # the token stays in the page, never in localStorage
    "displayRequestDuration": True,
    "tryItOutEnabled": False,
}


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets; the app is made with docs_url=None and
    redoc_url=None."""
    app.mount(STATIC, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-static")
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} API",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )
        page.headers.update(HEADERS)
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi,
            title=f"{app.title} API",
            redoc_js_url=f"{STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(HEADERS)
        return page
