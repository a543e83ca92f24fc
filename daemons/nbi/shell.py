"""The per-call shell every northbound RPC runs in: tokens and roles, audit and errors.

:class:`Call` is one RPC (who, the request id, what to audit); :class:`Nbi` is what every
servicer shares (the API's state, the metrics, the drain signal) and wraps each call:
authenticate (a bearer token, or a verified client certificate under mutual TLS), check
role and rate limit, run, audit a mutating call, turn a failure into a status code with a
``google.rpc.Status`` in the trailers. :func:`rpc` makes a servicer method such a call.
The servicers are :mod:`daemons.nbi.servicers`; the server is :mod:`daemons.nbi.service`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import asyncpg
import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError
from redis.exceptions import RedisError

from daemons.api import middleware
from daemons.api.auth import Principal, TokenRefused, bearer
from daemons.api.errors import ApiError
from daemons.api.state import ApiState
from daemons.core.ratelog import RateLimitedLog
from daemons.nbi import convert
from daemons.store import api as api_store

log = logging.getLogger("netd.nbi")
_ratelog = RateLimitedLog(log)
REQUEST_ID = "x-request-id"
_STORE_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    RedisError,
    OSError,
    TimeoutError,
)
Req = TypeVar("Req")
Resp = TypeVar("Resp")


class Call:
    """One RPC as the shell sees it: who, the request id, and what to audit."""

    __slots__ = ("details", "method", "principal", "refused", "request_id", "target")

    def __init__(self, method: str, context: Any) -> None:
        self.method = method
        given = ""
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID and isinstance(value, str):
                given = value
        self.request_id = given if middleware.REQUEST_ID.match(given) else secrets.token_hex(8)
        self.principal: Principal | None = None
        self.target = ""
        self.details: dict[str, object] = {}
        self.refused = False  # a known token refused (expired, another network)


class Nbi:
    """What every servicer shares: the API's state, the metrics, the drain signal."""

    def __init__(self, state: ApiState, registry: CollectorRegistry | None) -> None:
        self.st = state
        self.mutual = False  # mutual TLS required: a verified client certificate's CN counts
        self.draining = asyncio.Event()
        self.requests = Counter(
            "netd_grpc_requests_total",
            "gRPC calls answered, by method and status code",
            ["method", "code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "netd_grpc_request_seconds",
            "time to answer a unary gRPC call (a stream: to its end), by method",
            ["method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

    async def admit(self, call: Call, context: Any, role: str) -> None:
        """Authenticate the call's token and check its role and rate limit. Raises
        ApiError 401, 403 or 429."""
        header = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                header = value
        auth = self.st.auth
        client = _peer_address(str(context.peer() or ""))
        if not bearer(header) and self.mutual:
            names = (context.auth_context() or {}).get("x509_common_name") or []
            if names:  # verified by the handshake (mutual TLS is required on gRPC)
                call.principal = auth.certificate_principal(names[0].decode())
                await auth.authorize(call.principal, role)
                return
        try:
            call.principal = await auth.authenticate(bearer(header), client)
        except TokenRefused as exc:
            call.principal = exc.principal
            call.details = {**call.details, "reason": exc.reason, "client": client or ""}
            call.refused = True  # audited whatever the method (a stolen token in use)
            raise
        await auth.authorize(call.principal, role)

    def problem(self, call: Call, exc: Exception) -> convert.Problem:
        if isinstance(exc, ApiError):
            return convert.problem_of(exc)
        if isinstance(exc, ValidationError):
            return convert.invalid(exc)
        if isinstance(exc, asyncpg.DataError):
            return convert.BAD_VALUE
        if isinstance(exc, _STORE_ERRORS):
            _ratelog.log(
                logging.WARNING,
                "nbi-store",
                "store unavailable while answering a gRPC call",
                method=call.method,
                error=type(exc).__name__,
            )
            return convert.UNAVAILABLE
        _ratelog.log(
            logging.ERROR,
            "nbi-unhandled",
            "unhandled error in a gRPC call",
            method=call.method,
            error=type(exc).__name__,
            request_id=call.request_id,
        )
        return convert.INTERNAL

    async def abort(self, context: Any, call: Call, p: convert.Problem) -> NoReturn:
        await context.abort(
            p.code,
            p.message,
            trailing_metadata=(
                (convert.DETAILS_KEY, convert.status_details(p, call.request_id)),
                (REQUEST_ID, call.request_id),
            ),
        )
        raise AssertionError("context.abort returned")  # it raises to end the call

    async def audit(self, call: Call, action: str, status: int) -> None:
        principal = call.principal
        try:
            await api_store.append_audit(
                self.st.pool,
                actor=principal.actor if principal else "anonymous",
                role=principal.role if principal else "",
                method="GRPC",
                path=call.method[:512],
                action=action,
                target=call.target[:256],
                status=status,
                result=middleware.audit_result(status),
                request_id=call.request_id,
                details=call.details,
            )
        except Exception as exc:  # noqa: BLE001 - an answered call never turns into a crash
            _ratelog.log(
                logging.ERROR,
                "nbi-audit",
                "audit row not written",
                method=call.method,
                error=type(exc).__name__,
                request_id=call.request_id,
            )

    async def unary(
        self,
        method: str,
        role: str,
        action: str,
        impl: Callable[[Call], Awaitable[Resp]],
        context: Any,
        target: str = "",
    ) -> Resp:
        call = Call(method, context)
        call.target = target
        t0 = time.perf_counter()
        problem: convert.Problem | None = None
        try:
            await self.admit(call, context, role)
            response = await impl(call)
        except Exception as exc:  # noqa: BLE001 - the one place a call's failure ends up
            problem = self.problem(call, exc)
        if action or call.refused:
            status = problem.http_status if problem else 200
            await self.audit(call, action or "auth.refused", status)
        code = problem.code if problem else grpc.StatusCode.OK
        self.requests.labels(method, code.name).inc()
        self.seconds.labels(method).observe(time.perf_counter() - t0)
        if problem is not None:
            await self.abort(context, call, problem)
        context.set_trailing_metadata(((REQUEST_ID, call.request_id),))
        return response


Impl = Callable[[Any, Req, Call], Awaitable[Resp]]
Handler = Callable[[Any, Req, Any], Awaitable[Resp]]


def rpc(
    service: str, role: str, action: str = "", target: Callable[[Any], str] | None = None
) -> Callable[[Impl[Req, Resp]], Handler[Req, Resp]]:
    """A unary RPC needing ``role``; with ``action``, audited under that name, naming
    ``target(request)`` (even when the call is refused before it runs)."""

    def wrap(impl: Impl[Req, Resp]) -> Handler[Req, Resp]:
        method = f"/netd.v1.{service}/{impl.__name__}"

        async def handler(self: Any, request: Req, context: Any) -> Resp:
            nbi: Nbi = self.nbi
            return await nbi.unary(
                method,
                role,
                action,
                lambda c: impl(self, request, c),
                context,
                target(request)[:256] if target else "",
            )

        handler.__name__ = impl.__name__
        return handler

    return wrap


def _peer_address(peer: str) -> str | None:
    """The address of a gRPC peer (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``); None if none."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return urllib.parse.unquote(rest.rsplit(":", 1)[0].strip("[]"))
    return None
