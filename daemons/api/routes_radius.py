"""RADIUS resources: NAS clients, subscribers, plans, live sessions and the accounting ledger.

Handlers read and write through the store verbs the CLI uses and act through
``daemons.radius.sessions`` (Disconnect, CoA): no business logic lives here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
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
    )


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ApiError(422, f"network {text!r} is not an address or CIDR prefix") from None


async def _vendor_known(st: State, vendor: str) -> None:
    policy = await st.policy()
    if vendor not in policy.vendors and vendor != "generic":
        known = ", ".join(sorted({*policy.vendors, "generic"}))
        raise ApiError(422, f"vendor {vendor!r} is not in policies/radius (known: {known})")


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
    network = _network(body.network)
    await _vendor_known(st, body.vendor)
    row = store.NasRow(
        body.name,
        network,
        st.sealer.seal(body.secret.encode(), f"nas:{body.name}".encode()),
        body.vendor,
        body.require_message_authenticator,
        body.coa_port,
        body.description,
    )
    try:
        await store.add_nas(st.pool, row)
    except asyncpg.UniqueViolationError:
        raise ApiError(409, f"a NAS named {body.name} or with network {network} exists") from None
    return _nas(row)


@router.get("/nas/{name}", name="nas.get", tags=["nas"])
async def get_nas(name: str, st: State, _: Viewer) -> m.Nas:
    row = await store.get_nas(st.pool, name)
    if row is None:
        raise ApiError(404, f"no NAS named {name}")
    return _nas(row)


@router.patch("/nas/{name}", name="nas.update", tags=["nas"])
async def update_nas(name: str, request: Request, st: State, _: Admin, body: m.NasUpdate) -> m.Nas:
    changed = body.model_dump(exclude_unset=True)
    audit(request, name, fields=sorted(changed))  # the names only: never the secret
    row = await store.get_nas(st.pool, name)
    if row is None:
        raise ApiError(404, f"no NAS named {name}")
    if body.network is not None:
        row = replace(row, network=_network(body.network))
    if body.secret is not None:
        row = replace(row, secret_enc=st.sealer.seal(body.secret.encode(), f"nas:{name}".encode()))
    if body.vendor is not None:
        await _vendor_known(st, body.vendor)
        row = replace(row, vendor=body.vendor)
    for key in ("require_message_authenticator", "coa_port", "description"):
        value = getattr(body, key)
        if value is not None:
            row = replace(row, **{key: value})
    try:
        if not await store.update_nas(st.pool, row):
            raise ApiError(404, f"no NAS named {name}")
    except asyncpg.UniqueViolationError:
        raise ApiError(409, f"another NAS has network {row.network}") from None
    return _nas(row)


@router.delete("/nas/{name}", name="nas.delete", tags=["nas"], status_code=204)
async def delete_nas(name: str, request: Request, st: State, _: Admin) -> Response:
    audit(request, name)
    if not await store.remove_nas(st.pool, name):
        raise ApiError(404, f"no NAS named {name}")
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


async def _session_row(st: State, session_id: str) -> dict[str, Any] | None:
    found = await accounting.find_sessions(
        st.pool, unique_id=session_id, include_closed=True, limit=1
    )
    return found[0] if found else None


@router.get("/sessions/{session_id}", name="sessions.get", tags=["sessions"])
async def get_session(session_id: str, st: State, _: Viewer) -> m.SessionDetail:
    live = await accounting.live_sessions(st.cache, [session_id])
    row = await _session_row(st, session_id)
    if row is None and not live:
        raise ApiError(404, f"no session {session_id}")
    if live:
        detail: dict[str, Any] = {**live[0], "live": True}
        if row is not None:
            detail.update(session_time=row["session_time"])
        return m.SessionDetail(**detail)
    assert row is not None
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
) -> m.CoaResult:
    session, outcome = await ops.session_action(
        st, actor, session_id, kind, body.plan, body.attributes, body.retries
    )
    audit(
        request,
        session_id,
        user=session["username"],
        nas=session["nas"],
        result=outcome.result,
        coa_request=outcome.audit_id,
    )
    return m.CoaResult(
        session=session_id,
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
) -> m.CoaResult:
    """Send a Disconnect-Request (RFC 5176) to the session's NAS and wait for its answer."""
    audit(request, session_id)
    retries = body.retries if body else None
    return await _act(
        request, st, who.actor, session_id, "disconnect", m.CoaRequest(retries=retries)
    )


@router.post("/sessions/{session_id}/coa", name="sessions.coa", tags=["sessions"])
async def change_authorization(
    session_id: str, request: Request, st: State, who: Operator, body: m.CoaRequest
) -> m.CoaResult:
    """Send a CoA-Request: another plan's attributes and/or named attributes."""
    audit(request, session_id, plan=body.plan, attributes=sorted(body.attributes))
    return await _act(request, st, who.actor, session_id, "coa", body)


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
