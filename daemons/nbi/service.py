"""The grpc.aio shell of the northbound API: tokens and roles, audit and errors around each
call, the servicers, and the server the API daemon starts on ``api.host:api.grpc_port``.

Every RPC takes ``authorization: Bearer <token>`` metadata: the HTTP API's tokens, roles
and per-token rate limit, through the same :class:`Authenticator`. A servicer method does
what the HTTP route does, by calling the same ``daemons.api.ops`` function; a mutating
call writes an ``audit_log`` row (method ``GRPC``, path ``/netd.v1.Service/Method``),
allowed or not. Failures end the call with a status code and a ``google.rpc.Status`` in
the trailers (see ``convert``), and ``x-request-id`` (the client's, or a new one) comes
back in the trailers of every call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError
from redis.exceptions import RedisError

from daemons.api import middleware, ops
from daemons.api.auth import Principal, TokenRefused, bearer
from daemons.api.errors import ApiError
from daemons.api.state import ApiState
from daemons.core.http import hostport
from daemons.core.ratelog import RateLimitedLog
from daemons.core.tlsreload import TlsError, check_pair
from daemons.nbi import convert
from daemons.nbi.gen.netd.v1 import devices_pb2 as dv
from daemons.nbi.gen.netd.v1 import devices_pb2_grpc as dv_grpc
from daemons.nbi.gen.netd.v1 import sessions_pb2 as ss
from daemons.nbi.gen.netd.v1 import sessions_pb2_grpc as ss_grpc
from daemons.nbi.gen.netd.v1 import subscribers_pb2 as sb
from daemons.nbi.gen.netd.v1 import subscribers_pb2_grpc as sb_grpc
from daemons.store import api as api_store
from daemons.store import cpe_bulk, stream

log = logging.getLogger("netd.nbi")
_ratelog = RateLimitedLog(log)
REQUEST_ID = "x-request-id"
SERVICES = (
    "netd.v1.SubscribersService",
    "netd.v1.SessionsService",
    "netd.v1.DevicesService",
)
_STORE_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    RedisError,
    OSError,
    TimeoutError,
)
_HEALTH_EVERY = 5.0  # seconds between readiness checks behind grpc.health.v1
_MAX_MESSAGE = 16 * 2**20  # a batch of 10,000 subscribers fits with room to spare

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


# --- the servicers -------------------------------------------------------------------------


class Subscribers:
    def __init__(self, nbi: Nbi) -> None:
        self.nbi = nbi
        self.st = nbi.st

    @rpc("SubscribersService", "viewer")
    async def GetSubscriber(
        self, request: sb.GetSubscriberRequest, call: Call
    ) -> sb.GetSubscriberResponse:
        row = await ops.get_subscriber(self.st, request.username)
        return sb.GetSubscriberResponse(subscriber=convert.subscriber(row))

    @rpc("SubscribersService", "viewer")
    async def ListSubscribers(
        self, request: sb.ListSubscribersRequest, call: Call
    ) -> sb.ListSubscribersResponse:
        size = convert.page_size(request.page_size)
        rows = await ops.list_subscribers(
            self.st,
            convert.page_after(request.page_token),
            size,
            request.plan or None,
            convert.state_name(request.state),
        )
        return sb.ListSubscribersResponse(
            subscribers=[convert.subscriber(r) for r in rows],
            next_page_token=convert.next_token(rows[-1].username if len(rows) == size else None),
        )

    @rpc("SubscribersService", "admin", "subscribers.upsert", lambda r: r.subscriber.username)
    async def UpsertSubscriber(
        self, request: sb.UpsertSubscriberRequest, call: Call
    ) -> sb.UpsertSubscriberResponse:
        body = convert.subscriber_upsert(request.subscriber)
        call.details = {"plan": body.plan, "state": body.state, "hash": body.hash}
        row, created = await ops.upsert_subscriber(self.st, body)
        call.details["created"] = created
        return sb.UpsertSubscriberResponse(subscriber=convert.subscriber(row), created=created)

    @rpc(
        "SubscribersService",
        "admin",
        "subscribers.batch",
        lambda r: f"{len(r.subscribers)} subscribers",
    )
    async def BatchUpsertSubscribers(
        self, request: sb.BatchUpsertSubscribersRequest, call: Call
    ) -> sb.BatchUpsertSubscribersResponse:
        bodies = convert.subscriber_batch(request.subscribers)
        upserted, created = await ops.upsert_subscribers(self.st, bodies)
        call.details = {"upserted": upserted, "created": created}
        return sb.BatchUpsertSubscribersResponse(upserted=upserted, created=created)

    @rpc("SubscribersService", "admin", "subscribers.delete", lambda r: r.username)
    async def DeleteSubscriber(
        self, request: sb.DeleteSubscriberRequest, call: Call
    ) -> sb.DeleteSubscriberResponse:
        await ops.delete_subscriber(self.st, request.username)
        return sb.DeleteSubscriberResponse()


class Sessions:
    def __init__(self, nbi: Nbi) -> None:
        self.nbi = nbi
        self.st = nbi.st

    @rpc("SessionsService", "viewer")
    async def ListSessions(
        self, request: ss.ListSessionsRequest, call: Call
    ) -> ss.ListSessionsResponse:
        found, nxt = await ops.list_live_sessions(
            self.st,
            convert.page_after(request.page_token),
            convert.page_size(request.page_size),
            request.username or None,
            request.nas or None,
            request.ip or None,
        )
        return ss.ListSessionsResponse(
            sessions=[convert.session(s) for s in found], next_page_token=convert.next_token(nxt)
        )

    @rpc("SessionsService", "viewer")
    async def ListAuthEvents(
        self, request: ss.ListAuthEventsRequest, call: Call
    ) -> ss.ListAuthEventsResponse:
        limit = convert.page_size(request.page_size)
        after = convert.page_after(request.page_token)
        if after and (not after.isdigit() or len(after) > 19):
            raise ApiError(400, "the page token is not one this API gave out")
        rows = await ops.list_auth_log(
            self.st,
            user=request.username or None,
            nas=request.nas or None,
            since=convert.opt_time(request, "since"),
            until=convert.opt_time(request, "until"),
            result=request.result or None,
            before_id=int(after) if after else None,
            limit=limit,
        )
        nxt = str(rows[-1].id) if len(rows) == limit and rows else None
        return ss.ListAuthEventsResponse(
            events=[convert.auth_event(r) for r in rows], next_page_token=convert.next_token(nxt)
        )

    async def _act(self, call: Call, session_id: str, kind: str, body: Any) -> ss.CoaResult:
        principal = call.principal
        assert principal is not None
        session, outcome = await ops.session_action(
            self.st,
            principal.actor,
            session_id,
            kind,
            getattr(body, "plan", None),
            getattr(body, "attributes", None),
            body.retries,
        )
        call.details = {
            "user": session["username"],
            "nas": session["nas"],
            "result": outcome.result,
            "coa_request": outcome.audit_id,
        }
        return convert.coa_result(session_id, str(session["nas"]), outcome)

    @rpc("SessionsService", "operator", "sessions.disconnect", lambda r: r.session_id)
    async def DisconnectSession(
        self, request: ss.DisconnectSessionRequest, call: Call
    ) -> ss.DisconnectSessionResponse:
        body = convert.disconnect_request(request)
        result = await self._act(call, request.session_id, "disconnect", body)
        return ss.DisconnectSessionResponse(result=result)

    @rpc("SessionsService", "operator", "sessions.coa", lambda r: r.session_id)
    async def ChangeAuthorization(
        self, request: ss.ChangeAuthorizationRequest, call: Call
    ) -> ss.ChangeAuthorizationResponse:
        body = convert.coa_request(request)
        call.details = {"plan": body.plan, "attributes": sorted(body.attributes)}
        result = await self._act(call, request.session_id, "coa", body)
        return ss.ChangeAuthorizationResponse(result=result)

    async def WatchSessions(
        self, request: ss.WatchSessionsRequest, context: Any
    ) -> AsyncIterator[ss.WatchSessionsResponse]:
        """The event stream from the cursor on, a batch per answer (see sessions.proto)."""
        nbi = self.nbi
        method = "/netd.v1.SessionsService/WatchSessions"
        call = Call(method, context)
        t0 = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            try:
                await nbi.admit(call, context, "viewer")
                kinds = convert.watch_kinds(request.kinds)
                batch = convert.watch_batch(request.max_batch)
                try:
                    after, gap = await stream.resume_point(self.st.cache, request.cursor or None)
                except ValueError:
                    raise ApiError(400, "cursor is not a cursor of this stream") from None
            except Exception as exc:  # noqa: BLE001 - answered as the call's status
                problem = nbi.problem(call, exc)
                code = problem.code
                if call.refused:
                    await nbi.audit(call, "auth.refused", problem.http_status)
                await nbi.abort(context, call, problem)
            first = ss.WatchSessionsResponse(cursor=after)
            if gap is not None:
                first.gap.CopyFrom(ss.Gap(after=gap.after, oldest=gap.oldest))
            yield first
            async for response in self._follow(call, context, after, kinds, batch):
                yield response
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            if code == grpc.StatusCode.OK:
                code = grpc.StatusCode.UNAVAILABLE
            raise
        finally:
            nbi.requests.labels(method, code.name).inc()
            nbi.seconds.labels(method).observe(time.perf_counter() - t0)

    async def _follow(
        self, call: Call, context: Any, after: str, kinds: frozenset[str], batch: int
    ) -> AsyncIterator[ss.WatchSessionsResponse]:
        """Answers from the stream until the client goes, a store fails (UNAVAILABLE) or
        the server drains (UNAVAILABLE: come back with your cursor)."""
        nbi = self.nbi
        cfg = self.st.config
        wait = stream.block_ms(cfg.api.sse_keepalive, cfg.redis.socket_timeout)
        draining = asyncio.ensure_future(nbi.draining.wait())
        cursor = after
        pending: asyncio.Future[list[stream.Entry]] | None = None
        try:
            while True:
                pending = asyncio.ensure_future(
                    stream.read_after(self.st.cache, cursor, batch, wait)
                )
                await asyncio.wait((pending, draining), return_when=asyncio.FIRST_COMPLETED)
                if not pending.done():
                    await nbi.abort(
                        context,
                        call,
                        convert.Problem(
                            grpc.StatusCode.UNAVAILABLE,
                            f"the server is draining; resume after cursor {cursor}",
                            "unavailable",
                            503,
                            retry_after=1.0,
                        ),
                    )
                try:
                    entries = pending.result()
                except Exception as exc:  # noqa: BLE001 - answered as the call's status
                    await nbi.abort(context, call, nbi.problem(call, exc))
                pending = None
                response = convert.watch_response(cursor, entries, kinds)
                cursor = response.cursor
                yield response
        finally:
            draining.cancel()
            if pending is not None:
                pending.cancel()


class Devices:
    def __init__(self, nbi: Nbi) -> None:
        self.nbi = nbi
        self.st = nbi.st

    @rpc("DevicesService", "viewer")
    async def GetCpe(self, request: dv.GetCpeRequest, call: Call) -> dv.GetCpeResponse:
        return dv.GetCpeResponse(cpe=convert.cpe(await ops.get_cpe(self.st, request.id)))

    @rpc("DevicesService", "viewer")
    async def ListCpes(self, request: dv.ListCpesRequest, call: Call) -> dv.ListCpesResponse:
        size = convert.page_size(request.page_size)
        rows = await ops.list_cpes(
            self.st,
            convert.page_after(request.page_token),
            size,
            request.query or None,
            request.tag or None,
            request.product_class or None,
        )
        return dv.ListCpesResponse(
            cpes=[convert.cpe(r) for r in rows],
            next_page_token=convert.next_token(rows[-1]["id"] if len(rows) == size else None),
        )

    @rpc("DevicesService", "viewer")
    async def GetOnu(self, request: dv.GetOnuRequest, call: Call) -> dv.GetOnuResponse:
        dev = await ops.voltha_device(self.st, request.key, "onu")
        ports, binding, optics = await ops.voltha_detail(self.st, dev)
        return convert.onu_detail(dev, ports, binding, optics)

    @rpc("DevicesService", "viewer")
    async def ListOnus(self, request: dv.ListOnusRequest, call: Call) -> dv.ListOnusResponse:
        rows = await ops.list_voltha_devices(
            self.st, "onu", request.stack or None, request.olt or None
        )
        return dv.ListOnusResponse(onus=[convert.onu(r) for r in rows])

    @rpc("DevicesService", "operator", "cpes.tasks.create", lambda r: r.device_id)
    async def QueueCpeTask(
        self, request: dv.QueueCpeTaskRequest, call: Call
    ) -> dv.QueueCpeTaskResponse:
        kind, args, expires_in = convert.task_request(request)
        call.details = {"kind": kind}
        principal = call.principal
        assert principal is not None
        task, outcome = await ops.queue_cpe_task(
            self.st,
            principal.actor,
            request.device_id,
            kind,
            args,
            expires_in,
            poke=not request.no_connection_request,
        )
        call.details.update(task=task["id"], connection_request=outcome)
        return dv.QueueCpeTaskResponse(task=convert.cpe_task(task), connection_request=outcome)

    @rpc("DevicesService", "operator", "cpe_bulk.create", lambda r: r.kind)
    async def QueueCpeBulk(
        self, request: dv.QueueCpeBulkRequest, call: Call
    ) -> dv.QueueCpeBulkResponse:
        body = convert.bulk_request(request)
        f = body.filter.model_dump(exclude_none=True)
        call.details = {"kind": body.kind, "filter": f}
        principal = call.principal
        assert principal is not None
        bulk = await ops.queue_cpe_bulk(
            self.st, principal.actor, f, body.kind, body.args, body.rate, body.expires_in
        )
        call.details.update(bulk=bulk["id"], devices=bulk["devices"])
        return dv.QueueCpeBulkResponse(bulk=convert.cpe_bulk(bulk))

    @rpc("DevicesService", "viewer")
    async def GetCpeBulk(self, request: dv.GetCpeBulkRequest, call: Call) -> dv.GetCpeBulkResponse:
        found = await cpe_bulk.get_bulk(self.st.pool, request.id) if request.id > 0 else None
        if found is None:
            raise ApiError(404, f"no bulk run {request.id}")
        return dv.GetCpeBulkResponse(bulk=convert.cpe_bulk(found))


# --- the server ----------------------------------------------------------------------------


class GrpcServer:
    """grpc.aio on ``host:port`` (TLS with ``tls`` = (cert, key)), with grpc.health.v1
    following the daemon's readiness."""

    def __init__(
        self,
        state: ApiState,
        registry: CollectorRegistry | None,
        host: str,
        port: int,
        drain_timeout: float,
        tls: tuple[Path, Path] | None = None,
        client_ca: Path | None = None,
    ) -> None:
        """``client_ca``: mutual TLS, a client certificate signed by these CAs is required
        (gRPC verifies a client certificate only when it requires one) and its subject CN
        maps to a role (api.client_cert_roles) for a call without a token."""
        self.nbi = Nbi(state, registry)
        self.client_ca = client_ca.read_bytes() if client_ca is not None else None
        self.nbi.mutual = self.client_ca is not None
        self.host = host
        self.port = port
        self.tls = tls
        self._next_tls: Any = None  # a checked pair for gRPC's fetcher, taken once
        self.drain_timeout = drain_timeout
        self.health = health_aio.HealthServicer()
        self._server: Any = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and serve. Raises OSError if the address cannot be bound."""
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),  # a port in use is an error, as for HTTP
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.keepalive_time_ms", 60_000),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            ]
        )
        sb_grpc.add_SubscribersServiceServicer_to_server(Subscribers(self.nbi), server)
        ss_grpc.add_SessionsServiceServicer_to_server(Sessions(self.nbi), server)
        dv_grpc.add_DevicesServiceServicer_to_server(Devices(self.nbi), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = hostport(self.host, self.port)
        try:
            if self.tls is not None:
                try:
                    cert, key = check_pair(*self.tls)
                except TlsError as exc:
                    raise OSError(f"gRPC TLS: {exc}") from None
                # asked at every new handshake: a reloaded pair (SIGHUP) reaches new
                # connections, open ones keep theirs
                creds = grpc.dynamic_ssl_server_credentials(
                    grpc.ssl_server_certificate_configuration([(key, cert)], self.client_ca),
                    self._fetch_tls,
                    require_client_authentication=self.client_ca is not None,
                )
                bound = server.add_secure_port(address, creds)
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise OSError(f"cannot listen on {address} (gRPC)")
        self.port = int(bound)
        await server.start()
        self._server = server
        await self._set_health(True)
        self._watch = asyncio.create_task(self._follow_readiness(), name="nbi-health")

    def _fetch_tls(self) -> Any:
        """gRPC's certificate fetcher: a reloaded configuration once, else None (keep)."""
        pending, self._next_tls = self._next_tls, None
        return pending

    def reload_tls(self) -> bool | None:
        """Read the certificate and key again (SIGHUP); a bad pair keeps the one in force
        and is logged. None without TLS, else whether the new pair is in force."""
        if self.tls is None:
            return None
        try:
            cert, key = check_pair(*self.tls)
        except TlsError as exc:
            log.error(
                "TLS certificate not reloaded; the one in force stays",
                extra={"fields": {"listener": "grpc", "problem": str(exc)}},
            )
            return False
        self._next_tls = grpc.ssl_server_certificate_configuration([(key, cert)], self.client_ca)
        log.info("TLS certificate reloaded", extra={"fields": {"listener": "grpc"}})
        return True

    async def _set_health(self, ok: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICES):
            await self.health.set(name, status)

    async def _follow_readiness(self) -> None:
        """grpc.health.v1 says SERVING while /health/ready would say 200."""
        while True:
            await asyncio.sleep(_HEALTH_EVERY)
            ok, _checks = await self.nbi.st.health.ready()
            await self._set_health(ok)

    async def stop(self) -> None:
        """NOT_SERVING, end the Watch streams (their clients resume with their cursor),
        let unary calls finish within the drain timeout."""
        if self._watch is not None:
            self._watch.cancel()
        if self._server is None:
            return
        self.nbi.draining.set()
        await self.health.enter_graceful_shutdown()
        await self._server.stop(self.drain_timeout)
        self._server = None


def _peer_address(peer: str) -> str | None:
    """The address of a gRPC peer (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``); None if none."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return urllib.parse.unquote(rest.rsplit(":", 1)[0].strip("[]"))
    return None
