"""The console's pages, sign-in and sign-out.

Every page admits its caller with the API's own ``auth.admit`` (the ``netd_console``
cookie: the same token lookup, rate limit and roles as a bearer call); a caller who is not
signed in is sent to the sign-in page. Sign-in and sign-out are form POSTs audited like
the API's writes, checked against a CSRF token (a random value in a SameSite=Strict,
HttpOnly cookie that the form repeats) and the request's Origin. Pages are rendered on
the server; ``?part=main`` renders only their main block, which the page's script fetches
again when the event stream says something changed.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from daemons import __version__
from daemons.api.auth import COOKIE, Authenticator, Principal, admit
from daemons.api.errors import ApiError
from daemons.api.state import ApiState
from daemons.console import render, views

router = APIRouter(include_in_schema=False)
CSRF_COOKIE = "netd_csrf"
SIGN_IN = "/console/login"
SESSION_MAX_AGE = 12 * 3600  # the sign-in cookie's life (the token's own life is longer)
FORM_MAX = 4096
# A page's own script and stylesheet only; no other origin, no inline script, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _csrf(request: Request) -> tuple[str, bool]:
    """This browser's CSRF token, and whether it is new (to be set as a cookie)."""
    have = request.cookies.get(CSRF_COOKIE, "")
    if len(have) == 43 and have.isascii():
        return have, False
    return secrets.token_urlsafe(32), True


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    token, new = _csrf(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    part = request.query_params.get("part") == "main"
    html = render.page(
        template,
        part=part,
        csrf=token,
        who=principal,
        version=__version__,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=HEADERS)
    if new:
        _set_cookie(request, response, CSRF_COOKIE, token, None)
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def _to_sign_in(request: Request) -> Response:
    if request.query_params.get("part") == "main":  # the page's script: it reloads
        return Response(status_code=401, headers=HEADERS)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{SIGN_IN}?next={quote(target)}", 303, headers=HEADERS)


async def _admitted(request: Request) -> Response | None:
    """None if the caller may read (one rate-limit slot), else the answer to give."""
    try:
        await admit(request, "viewer")
    except ApiError as exc:
        if exc.status == 401:
            return _to_sign_in(request)
        page = _page(request, "error.html", exc.status, title="Refused", message=exc.message)
        page.headers.update(exc.headers or {})
        return page
    return None


def _state(request: Request) -> ApiState:
    st: ApiState = request.app.state.api
    return st


# --- pages -----------------------------------------------------------------------------------


@router.get("/")
async def overview(request: Request) -> Response:
    refused = await _admitted(request)
    if refused is not None:
        return refused
    data = await views.overview(_state(request))
    return _page(request, "overview.html", title="Network", **data)


@router.get("/console/subscribers/{username}")
async def subscriber(request: Request, username: str) -> Response:
    refused = await _admitted(request)
    if refused is not None:
        return refused
    if not 1 <= len(username) <= 253 or not username.isprintable():
        return _page(request, "error.html", 404, title="Not found", message="no such subscriber")
    data = await views.subscriber(_state(request), username)
    return _page(request, "subscriber.html", title=username, **data)


@router.get("/console/devices/{key}")
async def device(request: Request, key: str, prefix: str = Query("", max_length=512)) -> Response:
    refused = await _admitted(request)
    if refused is not None:
        return refused
    if not 1 <= len(key) <= 256 or not key.isprintable():
        return _page(request, "error.html", 404, title="Not found", message="no such device")
    data = await views.device(_state(request), key, prefix)
    return _page(request, "device.html", title=key, **data)


@router.get("/console/find")
async def find(request: Request, q: str = Query("", max_length=253)) -> Response:
    refused = await _admitted(request)
    if refused is not None:
        return refused
    q = q.strip()
    data = await views.find(_state(request), q) if q and q.isprintable() else {"q": q}
    return _page(request, "find.html", title="Find", **data)


# --- signing in and out ----------------------------------------------------------------------


def _next(target: str) -> str:
    """Where to go after signing in: a path on this site only."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not every client sends one; the CSRF token still has to match
        return True
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


async def _form(request: Request) -> dict[str, str] | None:
    """The url-encoded form (None when it is not one, or too big)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    body = await request.body()
    if kind != "application/x-www-form-urlencoded" or len(body) > FORM_MAX:
        return None
    try:
        fields = parse_qs(body.decode(), max_num_fields=8, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in fields.items()}


def _csrf_ok(request: Request, form: dict[str, str]) -> bool:
    have = request.cookies.get(CSRF_COOKIE, "")
    given = form.get("csrf", "")
    return bool(have) and hmac.compare_digest(have.encode(), given.encode())


@router.get(SIGN_IN)
async def sign_in_page(request: Request, next: str = Query("/", max_length=1024)) -> Response:
    return _page(request, "login.html", title="Sign in", next=_next(next), error="")


@router.post(SIGN_IN)
async def sign_in(request: Request) -> Response:
    form = await _form(request)
    target = _next((form or {}).get("next", "/"))
    if form is None or not _same_origin(request) or not _csrf_ok(request, form):
        return _page(
            request,
            "login.html",
            403,
            title="Sign in",
            next=target,
            error="The sign-in form expired or came from another site: try again.",
        )
    auth: Authenticator = request.app.state.auth
    token = form.get("token", "").strip()
    try:
        found = await auth.authenticate(token or None)
        request.state.principal = found
        await auth.authorize(found, "viewer")
    except ApiError as exc:
        page = _page(
            request, "login.html", exc.status, title="Sign in", next=target, error=exc.message
        )
        page.headers.update(exc.headers or {})
        return page
    request.state.audit_target = found.name
    response = RedirectResponse(target, 303, headers=HEADERS)
    _set_cookie(request, response, COOKIE, token, SESSION_MAX_AGE)
    return response


@router.post("/console/logout")
async def sign_out(request: Request) -> Response:
    form = await _form(request)
    if form is None or not _same_origin(request) or not _csrf_ok(request, form):
        return _page(
            request,
            "error.html",
            403,
            title="Refused",
            message="The sign-out form expired or came from another site.",
        )
    token = request.cookies.get(COOKIE)
    if token:
        auth: Authenticator = request.app.state.auth
        request.state.principal = await auth.principal(token) if len(token) <= 256 else None
    response = RedirectResponse(SIGN_IN, 303, headers=HEADERS)
    response.delete_cookie(
        COOKIE, path="/", secure=_secure(request), httponly=True, samesite="strict"
    )
    return response
