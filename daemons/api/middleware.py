"""The API's one middleware (plain ASGI, no per-request task): request ids, the audit row of
every mutating call, and the last line of defence against an unhandled exception.

The audit row is written when the handler starts its response and before the response
goes out, so a client that sees the answer can find the row. A denied or invalid call is
audited too: who tried what matters as much as who did it.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import traceback
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daemons.api.errors import envelope
from daemons.core.ratelog import RateLimitedLog
from daemons.store import api as api_store

log = logging.getLogger("netd.api")
_ratelog = RateLimitedLog(log)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # a request id a client may choose


def audit_result(status: int) -> str:
    """The audit row's result for an answer with this HTTP status."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    if status < 500:
        return "invalid"
    return "error"


class ApiMiddleware:
    def __init__(self, app: ASGIApp, registry: CollectorRegistry | None = None) -> None:
        self.app = app
        self.requests = Counter(
            "netd_api_requests_total",
            "API requests answered, by operation and status",
            ["operation", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "netd_api_request_seconds",
            "time to the start of the response, by operation",
            ["operation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if REQUEST_ID.match(given) else secrets.token_hex(8)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        audited = scope["method"] in MUTATING and scope["path"].startswith(("/api/", "/console/"))
        started = False
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
                if audited or state.get("audit_refusal"):
                    await self._audit(scope, int(message["status"]))
                route = scope.get("route")
                operation = getattr(route, "name", None) or "unrouted"
                self.requests.labels(operation, str(message["status"])).inc()
                self.seconds.labels(operation).observe(time.perf_counter() - t0)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # noqa: BLE001 - the one place a stray exception ends up
            _ratelog.log(
                logging.ERROR,
                "api-unhandled",
                "unhandled error in an API request",
                path=scope.get("path", ""),
                error=type(exc).__name__,
                detail=str(exc)[:300],
                where=_where(exc),
                request_id=request_id,
            )
            if started:
                return  # the response is under way: the connection is closed as it is
            response = envelope(500, "internal", "internal error", request_id)
            await response(scope, receive, send_wrapper)

    async def _audit(self, scope: Scope, status: int) -> None:
        app: Any = scope.get("app")
        state: dict[str, Any] = scope.get("state", {})
        route = scope.get("route")
        principal = state.get("principal")
        params: dict[str, Any] = scope.get("path_params", {})
        try:
            await api_store.append_audit(
                app.state.pool,
                actor=principal.actor if principal else "anonymous",
                role=principal.role if principal else "",
                method=scope["method"],
                path=scope["path"][:512],
                action=getattr(route, "name", None) or "unrouted",
                target=str(state.get("audit_target") or "/".join(map(str, params.values())))[:256],
                status=status,
                result=audit_result(status),
                request_id=state["request_id"],
                details=state.get("audit_details") or {},
            )
        except Exception as exc:  # noqa: BLE001 - never turn an answered call into a crash
            _ratelog.log(
                logging.ERROR,
                "api-audit",
                "audit row not written",
                path=scope.get("path", ""),
                error=type(exc).__name__,
                request_id=state.get("request_id", ""),
            )


def _where(exc: BaseException) -> str:
    """The innermost frame of a stray exception, ``file:line in function``: where a bug
    is, in the one log line (no traceback)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/daemons/', 1)[-1]}:{last.lineno} in {last.name}"
