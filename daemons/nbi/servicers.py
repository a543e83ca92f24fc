"""The servicers of the northbound API: SubscribersService, SessionsService (with the
WatchSessions stream) and DevicesService.

Each unary method does what its HTTP route does, by calling the same ``daemons.api.ops``
function inside the shell's :func:`~daemons.nbi.shell.rpc` (auth, audit, errors); no
business logic lives here. WatchSessions follows the event stream from the client's cursor
until the client goes, a store fails or the server drains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from daemons.api import ops
from daemons.api.errors import ApiError
from daemons.nbi import convert
from daemons.nbi.gen.netd.v1 import devices_pb2 as dv
from daemons.nbi.gen.netd.v1 import sessions_pb2 as ss
from daemons.nbi.gen.netd.v1 import subscribers_pb2 as sb
from daemons.nbi.shell import Call, Nbi, rpc
from daemons.store import cpe_bulk, stream


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
