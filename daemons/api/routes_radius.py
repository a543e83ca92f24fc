"""RADIUS resources: NAS clients, subscribers, plans, live sessions and the accounting ledger.

Handlers read and write through the store verbs the CLI uses and act through
``daemons.radius.sessions`` (Disconnect, CoA): no business logic lives here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from daemons.api import models as m
from daemons.api import ops
from daemons.api.errors import ApiError
from daemons.api.state import Admin, Operator, State, Viewer, audit
from daemons.core.policies import PolicyError
from daemons.radius.policy import load_policy
from daemons.store import accounting
from daemons.store import api as api_store
from daemons.store import radius as store

router = APIRouter(prefix="/api/v1")


def _nas(row: store.NasRow) -> m.Nas:
    return m.Nas(
        name=row.name,
        network=row.network,
        vendor=row.vendor,
        require_message_authenticator=row.require_message_authenticator,
        coa_port=row.coa_port,
        description=row.description,
        tls_identity=row.tls_identity,
    )


# --- NAS clients ---------------------------------------------------------------------------


@router.get("/nas", name="nas.list", tags=["nas"])
async def list_nas(
    st: State, _: Viewer, limit: m.Limit = 100, cursor: m.Cursor = None
) -> m.Page[m.Nas]:
    rows = await store.list_nas_page(st.pool, m.decode_cursor(cursor), limit)
    return m.page([_nas(r) for r in rows], limit, lambda n: n.name)


@router.post("/nas", name="nas.create", tags=["nas"], status_code=201)
async def create_nas(request: Request, st: State, _: Admin, body: m.NasCreate) -> m.Nas:
    audit(request, body.name, network=body.network, vendor=body.vendor)
    return _nas(await ops.create_nas(st, body))


@router.get("/nas/{name}", name="nas.get", tags=["nas"])
async def get_nas(name: str, st: State, _: Viewer) -> m.Nas:
    row = await store.get_nas(st.pool, name)
    if row is None:
        raise ApiError(404, f"no NAS named {name}")
    return _nas(row)


@router.patch("/nas/{name}", name="nas.update", tags=["nas"])
async def update_nas(name: str, request: Request, st: State, _: Admin, body: m.NasUpdate) -> m.Nas:
    """Change any of a NAS client's settings: rotate its secret, change its vendor,
    network, CoA port, Message-Authenticator requirement or description."""
    changed = body.model_dump(exclude_unset=True)
    audit(request, name, fields=sorted(changed))  # the names only: never the secret
    return _nas(await ops.update_nas(st, name, body))


@router.delete("/nas/{name}", name="nas.delete", tags=["nas"], status_code=204)
async def delete_nas(name: str, request: Request, st: State, _: Admin) -> Response:
    audit(request, name)
    await ops.delete_nas(st, name)
    return Response(status_code=204)


# --- IP pools ------------------------------------------------------------------------------


@router.get("/pools", name="pools.list", tags=["pools"])
async def list_pools(st: State, _: Viewer) -> list[m.Pool]:
    """netd's IP pools: size, addresses leased now, lease time."""
    return await ops.list_pools(st)


@router.get("/pools/{name}", name="pools.get", tags=["pools"])
async def get_pool(name: str, st: State, _: Viewer) -> m.Pool:
    return await ops.get_pool(st, name)


@router.post(
    "/pools",
    name="pools.add",
    tags=["pools"],
    responses={201: {"model": m.PoolAdded, "description": "Created"}},
)
async def add_pool(
    request: Request, response: Response, st: State, _: Admin, body: m.PoolAdd
) -> m.PoolAdded:
    """Create a pool, or add addresses to one (and set its lease time). A plan whose
    framed_pool names it gets a Framed-IP-Address from it at Access-Accept."""
    audit(request, body.name, ranges=body.ranges, lease_time=body.lease_time)
    added, created = await ops.add_pool(st, body)
    response.status_code = 201 if created else 200
    return added


@router.get("/pools6", name="pools6.list", tags=["pools"])
async def list_pools6(st: State, _: Viewer) -> list[m.Pool6]:
    """netd's IPv6 pools (issue 21): per-subscriber prefixes leased at Access-Accept."""
    return await ops.list_pools6(st)


@router.put("/pools6/{name}", name="pools6.put", tags=["pools"])
async def put_pool6(request: Request, name: str, st: State, _: Admin, body: m.Pool6Add) -> m.Pool6:
    """Create an IPv6 pool (or change its lease time): ``prefix`` in ``length`` slices."""
    audit(request, name, prefix=body.prefix, length=body.length)
    return await ops.add_pool6(st, name, body)


@router.delete("/pools/{name}", name="pools.delete", tags=["pools"], status_code=204)
async def delete_pool(
    name: str,
    request: Request,
    st: State,
    _: Admin,
    force: Annotated[bool, Query(description="remove it though addresses are leased")] = False,
) -> Response:
    """Remove a pool and its addresses: refused while a plan allocates from it, and,
    without force, while any address is leased."""
    audit(request, name, force=force)
    await ops.remove_pool(st, name, force)
    return Response(status_code=204)


# --- subscribers ---------------------------------------------------------------------------


def _subscriber(row: store.SubscriberRow) -> m.Subscriber:
    return m.Subscriber(**store.public_view(row))


@router.get("/subscribers", name="subscribers.list", tags=["subscribers"])
async def list_subscribers(
    st: State,
    _: Viewer,
    plan: Annotated[str | None, Query(max_length=64)] = None,
    state: m.SubscriberState | None = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[m.Subscriber]:
    rows = await ops.list_subscribers(st, m.decode_cursor(cursor), limit, plan, state)
    return m.page([_subscriber(r) for r in rows], limit, lambda s: s.username)


@router.post("/subscribers", name="subscribers.create", tags=["subscribers"], status_code=201)
async def create_subscriber(
    request: Request, st: State, _: Admin, body: m.SubscriberCreate
) -> m.Subscriber:
    audit(request, body.username, plan=body.plan, state=body.state, hash=body.hash)
    return _subscriber(await ops.create_subscriber(st, body))


@router.post("/subscribers/batch", name="subscribers.batch", tags=["subscribers"])
async def upsert_subscribers(
    request: Request, st: State, _: Admin, body: m.SubscriberBatch
) -> m.BatchResult:
    """Create or change up to 10,000 subscribers in one transaction, all or none: each item
    creates the subscriber, or changes the fields it gives of an existing one. Every item
    is checked before anything is written; a bad one is named as subscribers[i]."""
    audit(request, f"{len(body.subscribers)} subscribers")
    upserted, created = await ops.upsert_subscribers(st, body.subscribers)
    audit(request, f"{len(body.subscribers)} subscribers", upserted=upserted, created=created)
    return m.BatchResult(upserted=upserted, created=created)


@router.get("/subscribers/{username}", name="subscribers.get", tags=["subscribers"])
async def get_subscriber(username: str, st: State, _: Viewer) -> m.Subscriber:
    return _subscriber(await ops.get_subscriber(st, username))


@router.patch("/subscribers/{username}", name="subscribers.update", tags=["subscribers"])
async def update_subscriber(
    username: str, request: Request, st: State, _: Admin, body: m.SubscriberFields
) -> m.Subscriber:
    changed = body.model_dump(exclude_unset=True)
    audit(request, username, fields=sorted(changed), plan=body.plan, state=body.state)
    return _subscriber(await ops.update_subscriber(st, username, body))


@router.delete(
    "/subscribers/{username}", name="subscribers.delete", tags=["subscribers"], status_code=204
)
async def delete_subscriber(username: str, request: Request, st: State, _: Admin) -> Response:
    audit(request, username)
    await ops.delete_subscriber(st, username)
    return Response(status_code=204)


# --- plans -------------------------------------------------------------------------------


async def _plans(st: State) -> list[m.Plan]:
    out: dict[str, m.Plan] = {}
    for name, spec in (await api_store.list_plans(st.pool)).items():
        out[name] = m.Plan(name=name, source="api", spec=spec)
    for _path, doc in sorted(st.policies.under("radius").items()):
        for name, spec in doc.get("plans", {}).items():
            out[name] = m.Plan(name=name, source="file", spec=dict(spec))
    return [out[k] for k in sorted(out)]


@router.get("/plans", name="plans.list", tags=["plans"])
async def list_plans(st: State, _: Viewer) -> list[m.Plan]:
    return await _plans(st)


@router.get("/plans/{name}", name="plans.get", tags=["plans"])
async def get_plan(name: str, st: State, _: Viewer) -> m.Plan:
    for plan in await _plans(st):
        if plan.name == name:
            return plan
    raise ApiError(404, f"no plan {name!r}")


@router.put(
    "/plans/{name}",
    name="plans.put",
    tags=["plans"],
    responses={201: {"model": m.Plan, "description": "Created"}},
)
async def put_plan(
    name: str, request: Request, response: Response, st: State, _: Admin, body: m.PlanSpec
) -> m.Plan:
    audit(request, name)
    if not m.re_name(name):
        raise ApiError(422, f"a plan name is 1 to 64 of A-Z a-z 0-9 _ . : - (got {name!r})")
    spec = body.model_dump(exclude_none=True, by_alias=True)
    if any(p.name == name and p.source == "file" for p in await _plans(st)):
        raise ApiError(409, f"plan {name!r} is defined in policies/radius; edit the file")
    managed = {**await api_store.list_plans(st.pool), name: spec}
    try:
        load_policy(st.policies, st.dictionary, managed)
    except PolicyError as exc:
        raise ApiError(422, exc.problem) from None
    created = await api_store.put_plan(st.pool, name, spec)
    response.status_code = 201 if created else 200
    return m.Plan(name=name, source="api", spec=spec)


@router.delete("/plans/{name}", name="plans.delete", tags=["plans"], status_code=204)
async def delete_plan(name: str, request: Request, st: State, _: Admin) -> Response:
    audit(request, name)
    managed = await api_store.list_plans(st.pool)
    if name not in managed:
        if any(p.name == name for p in await _plans(st)):
            raise ApiError(409, f"plan {name!r} is defined in policies/radius; edit the file")
        raise ApiError(404, f"no plan {name!r}")
    rest = {k: v for k, v in managed.items() if k != name}
    try:
        load_policy(st.policies, st.dictionary, rest)
    except PolicyError as exc:
        raise ApiError(409, f"plan {name!r} is still needed: {exc.problem}") from None
    await api_store.delete_plan(st.pool, name)
    return Response(status_code=204)


# --- sessions ------------------------------------------------------------------------------


@router.get("/sessions", name="sessions.list", tags=["sessions"])
async def list_sessions(
    st: State,
    _: Viewer,
    user: Annotated[str | None, Query(max_length=253)] = None,
    nas: Annotated[str | None, Query(max_length=64)] = None,
    ip: Annotated[str | None, Query(max_length=64)] = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[m.Session]:
    """Live sessions from Redis, in session-id order (stable while sessions come and go)."""
    found, nxt = await ops.list_live_sessions(st, m.decode_cursor(cursor), limit, user, nas, ip)
    items = [m.Session(**s) for s in found]
    return m.Page[m.Session](items=items, next_cursor=m.encode_cursor(nxt) if nxt else None)


SessionNas = Annotated[
    str | None,
    Query(max_length=64, description="the NAS, when an Acct-Session-Id names sessions on several"),
]


@router.get("/sessions/{session_id}", name="sessions.get", tags=["sessions"])
async def get_session(
    session_id: str, st: State, _: Viewer, nas: SessionNas = None
) -> m.SessionDetail:
    """A session, open or closed, by netd's id (Acct-Unique-Session-Id) or by the NAS's
    Acct-Session-Id."""
    live = await accounting.live_sessions(st.cache, [session_id]) if nas is None else []
    if live:
        found = await accounting.find_sessions(
            st.pool, unique_id=session_id, include_closed=True, limit=1
        )
        detail: dict[str, Any] = {**live[0], "live": True}
        if found:
            detail.update(session_time=found[0]["session_time"])
        return m.SessionDetail(**detail)
    row = await ops.find_session(st, session_id, nas)
    return m.SessionDetail(
        **{k: row[k] for k in m.SessionDetail.model_fields if k in row and k != "live"},
        live=row["stopped_at"] is None,
    )


async def _act(
    request: Request,
    st: State,
    actor: str,
    session_id: str,
    kind: str,
    body: m.CoaRequest,
    nas: str | None,
) -> m.CoaResult:
    session, outcome = await ops.session_action(
        st, actor, session_id, kind, body.plan, body.attributes, body.retries, nas
    )
    audit(
        request,
        str(session["unique_id"]),
        user=session["username"],
        nas=session["nas"],
        result=outcome.result,
        coa_request=outcome.audit_id,
    )
    return m.CoaResult(
        session=str(session["unique_id"]),
        nas=str(session["nas"]),
        result=outcome.result,
        error_cause=outcome.error_cause,
        attempts=outcome.attempts,
        audit_id=outcome.audit_id,
    )


@router.post("/sessions/{session_id}/disconnect", name="sessions.disconnect", tags=["sessions"])
async def disconnect(
    session_id: str,
    request: Request,
    st: State,
    who: Operator,
    body: m.DisconnectRequest | None = None,
    nas: SessionNas = None,
) -> m.CoaResult:
    """Send a Disconnect-Request (RFC 5176) to the session's NAS and wait for its answer.
    The session is named by netd's id or by its Acct-Session-Id."""
    audit(request, session_id)
    retries = body.retries if body else None
    return await _act(
        request, st, who.actor, session_id, "disconnect", m.CoaRequest(retries=retries), nas
    )


@router.post("/sessions/{session_id}/coa", name="sessions.coa", tags=["sessions"])
async def change_authorization(
    session_id: str,
    request: Request,
    st: State,
    who: Operator,
    body: m.CoaRequest,
    nas: SessionNas = None,
) -> m.CoaResult:
    """Send a CoA-Request: another plan's attributes and/or named attributes."""
    audit(request, session_id, plan=body.plan, attributes=sorted(body.attributes))
    return await _act(request, st, who.actor, session_id, "coa", body, nas)


@router.post("/sessions/{session_id}/clear", name="sessions.clear", tags=["sessions"])
async def clear(
    session_id: str, request: Request, st: State, who: Operator, nas: SessionNas = None
) -> m.Cleared:
    """Close a session its NAS will never stop (it rebooted without Accounting-On, the
    Stop was lost): a synthetic Stop (Acct-Terminate-Cause Admin-Reset) in the ledger at
    its last update, its pool lease released, its live entry and Simultaneous-Use count
    removed. Nothing is sent to the NAS: for a session still up there, disconnect it."""
    audit(request, session_id)
    row = await ops.clear_session(st, session_id, nas, who.actor)
    audit(request, str(row["unique_id"]), user=row["username"], nas=row["nas"])
    return cleared(row)


def cleared(row: dict[str, Any]) -> m.Cleared:
    return m.Cleared(
        session=row["unique_id"],
        acct_session_id=row["acct_session_id"],
        username=row["username"],
        nas=row["nas"],
        framed_ip=row["ip"],
        terminate_cause=accounting.ADMIN_RESET,
        stopped_at=row["updated_at"],
    )


# --- the accounting ledger -----------------------------------------------------------------


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    end = until or datetime.now(UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    try:
        start = since or end - timedelta(days=30)
    except OverflowError:
        raise ApiError(422, "until is too early; give since as well") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if start >= end:
        raise ApiError(422, "since must be before until")
    return start, end


Since = Annotated[datetime | None, Query(description="period start (default: until - 30 days)")]
Until = Annotated[datetime | None, Query(description="period end, exclusive (default: now)")]
User = Annotated[str, Query(min_length=1, max_length=253)]


@router.get("/accounting/records", name="accounting.records", tags=["accounting"])
async def ledger_records(
    st: State,
    _: Viewer,
    user: User,
    since: Since = None,
    until: Until = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[m.AccountingRecord]:
    """A subscriber's accounting records in a period, oldest first (in ledger order)."""
    start, end = _period(since, until)
    rows = await accounting.ledger_records(
        st.pool, user, start, end, m.decode_int_cursor(cursor), limit
    )
    return m.page([m.AccountingRecord(**r) for r in rows], limit, lambda r: r.id)


@router.get("/accounting/usage", name="accounting.usage", tags=["accounting"])
async def ledger_usage(
    st: State, _: Viewer, user: User, since: Since = None, until: Until = None
) -> m.Usage:
    """Totals for a subscriber over a period. Octets and time are the session counters
    their last record in the period reported (a session that began before the period
    counts whole)."""
    start, end = _period(since, until)
    totals = await accounting.ledger_usage(st.pool, user, start, end)
    return m.Usage(username=user, since=start, until=end, **totals)


# --- the authentication history (issue 21) -------------------------------------------------


@router.get("/auth-log", name="auth_log.list", tags=["accounting"])
async def auth_log(
    st: State,
    _: Viewer,
    user: Annotated[str | None, Query(min_length=1, max_length=253)] = None,
    nas: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="from (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="to (exclusive)")] = None,
    result: Annotated[Literal["accept", "reject"] | None, Query()] = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[m.AuthLogEntry]:
    """Every Access-Accept and Access-Reject (``radius.auth_log``), newest first, with the
    session each login started: why could a customer not log in at 09:00."""
    rows = await ops.list_auth_log(
        st,
        user=user,
        nas=nas,
        since=since,
        until=until,
        result=result,
        before_id=m.decode_int_cursor(cursor),
        limit=limit,
    )
    return m.page(rows, limit, lambda r: r.id)
