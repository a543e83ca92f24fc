"""Suite-wide resources: status, events (list and live stream), the audit log, tokens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from daemons import __version__
from daemons.api import models as m
from daemons.api.errors import ApiError
from daemons.api.state import Admin, State, Viewer, audit
from daemons.store import accounting, stream
from daemons.store import api as api_store
from daemons.store.events import list_events

router = APIRouter(prefix="/api/v1")
_STREAM_BATCH = 200


def _ts(value: object) -> datetime:
    return datetime.fromtimestamp(float(value or 0), UTC)  # type: ignore[arg-type]


@router.get("/status", name="status.get", tags=["status"])
async def status(st: State, _: Viewer) -> m.Status:
    """Every daemon instance's last heartbeat, the stores, and the live session count."""
    _ok, checks = await st.health.ready()
    beats = await st.cache.list_heartbeats()
    instances = [
        m.Instance(
            instance_id=str(b.get("instance_id", "")),
            daemon=str(b.get("daemon", "")),
            instance=str(b.get("instance", "")),
            pid=int(b.get("pid", 0)),
            version=str(b.get("version", "")),
            started_at=_ts(b.get("started_at")),
            uptime=float(b.get("uptime", 0)),
            last_beat=_ts(b.get("ts")),
            status=str(b.get("status", "")),
            counters={str(k): float(v) for k, v in dict(b.get("counters", {})).items()},
        )
        for b in beats
    ]
    instances.sort(key=lambda i: i.instance_id)
    return m.Status(
        version=__version__,
        stores={"postgres": checks["postgres"], "redis": checks["redis"]},
        live_sessions=await accounting.live_session_count(st.cache),
        instances=instances,
    )


# --- events --------------------------------------------------------------------------------

Filter = Annotated[str | None, Query(max_length=128)]


@router.get("/events", name="events.list", tags=["events"])
async def events(
    st: State,
    _: Viewer,
    kind: Filter = None,
    source: Filter = None,
    subject: Filter = None,
    severity: Annotated[
        Literal["debug", "info", "warning", "error", "critical"] | None, Query()
    ] = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[m.Event]:
    """The events table, newest first."""
    rows = await list_events(
        st.pool,
        before=m.decode_int_cursor(cursor),
        limit=limit,
        kind=kind,
        source=source,
        subject=subject,
        severity=severity,
    )
    return m.page([m.Event(**r) for r in rows], limit, lambda e: e.id)


def _sse(entry_id: str, kind: str, data: object) -> str:
    return f"id: {entry_id}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


@router.get(
    "/events/stream",
    name="events.stream",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def event_stream(
    st: State,
    _: Viewer,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=48, include_in_schema=False)
    ] = None,
    since: Annotated[
        str | None,
        Query(max_length=48, description="resume after this event id (as Last-Event-ID)"),
    ] = None,
    kinds: Annotated[
        str | None,
        Query(max_length=512, description="comma-separated kind prefixes: session.,daemon."),
    ] = None,
) -> StreamingResponse:
    """Live events as Server-Sent Events: session.start, session.interim, session.stop and
    the daemons' events. Each has an id; reconnect with Last-Event-ID (or ?since=) to get
    everything after it. An ``event: gap`` first means the stream no longer holds
    everything after that id (it keeps redis.event_stream_max_len entries)."""
    resume = last_event_id or since
    prefixes = tuple(p for p in (kinds or "").split(",") if p)
    cache = st.cache
    try:
        after, gap = await stream.resume_point(cache, resume)
    except ValueError:
        raise ApiError(400, "Last-Event-ID is not an event id of this stream") from None
    wait = stream.block_ms(st.config.api.sse_keepalive, st.config.redis.socket_timeout)

    async def body() -> AsyncIterator[str]:
        yield f"retry: 2000\n: resuming after {after}\n\n"
        if gap is not None:
            yield _sse(after, "gap", {"oldest": gap.oldest, "after": gap.after})
        async for entries in stream.follow(cache, after, _STREAM_BATCH, wait):
            if not entries:
                yield ": keepalive\n\n"
                continue
            for entry_id, kind, data in entries:
                if prefixes and not kind.startswith(prefixes):
                    continue
                yield _sse(entry_id, kind, data)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- audit ---------------------------------------------------------------------------------


@router.get("/audit", name="audit.list", tags=["audit"])
async def audit_log(
    st: State,
    _: Admin,
    actor: Filter = None,
    action: Filter = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[m.AuditEntry]:
    """Every mutating call, newest first."""
    rows = await api_store.list_audit(
        st.pool, before=m.decode_int_cursor(cursor), limit=limit, actor=actor, action=action
    )
    return m.page([m.AuditEntry(**r) for r in rows], limit, lambda a: a.id)


# --- tokens ------------------------------------------------------------------------------


def _token(t: api_store.Token) -> m.Token:
    return m.Token(
        id=t.id,
        name=t.name,
        role=t.role,
        created_at=t.created_at,
        created_by=t.created_by,
        last_used_at=t.last_used_at,
        revoked_at=t.revoked_at,
        expires_at=t.expires_at,
        networks=list(t.networks),
        rotated_at=t.rotated_at,
    )


@router.get("/tokens", name="tokens.list", tags=["tokens"])
async def list_tokens(
    st: State,
    _: Admin,
    revoked: bool = False,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[m.Token]:
    """Tokens (never their secrets); with revoked=true, revoked ones too."""
    rows = await api_store.list_tokens(
        st.pool, m.decode_int_cursor(cursor) or 0, limit, include_revoked=revoked
    )
    return m.page([_token(t) for t in rows], limit, lambda t: t.id)


@router.post("/tokens", name="tokens.create", tags=["tokens"], status_code=201)
async def create_token(
    request: Request, st: State, who: Admin, body: m.TokenCreate
) -> m.TokenCreated:
    """A new token. Its secret is in this answer only."""
    audit(request, body.name, role=body.role, expires_in=body.expires_in, networks=body.networks)
    try:
        row, secret = await api_store.create_token(
            st.pool, body.name, body.role, who.actor, m.token_expiry(body), body.networks
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(409, f"a token named {body.name} exists") from None
    return m.TokenCreated(**_token(row).model_dump(), token=secret)


@router.post("/tokens/{name}/rotate", name="tokens.rotate", tags=["tokens"], status_code=201)
async def rotate_token(name: str, request: Request, st: State, _: Admin) -> m.TokenCreated:
    """A new secret for a live token (by name or id): same role, expiry and networks. The
    old secret stops at once on this API process and within api.token_cache_ttl seconds
    on the others. The new secret is in this answer only."""
    audit(request, name)
    rotated = await api_store.rotate_token(st.pool, name)
    if rotated is None:
        raise ApiError(404, f"no live token {name}")
    st.auth.forget()
    row, secret = rotated
    return m.TokenCreated(**_token(row).model_dump(), token=secret)


@router.delete("/tokens/{name}", name="tokens.revoke", tags=["tokens"], status_code=204)
async def revoke_token(name: str, request: Request, st: State, _: Admin) -> Response:
    """Revoke a token by name (or id). It stops working at once on this API process and
    within api.token_cache_ttl seconds on the others."""
    audit(request, name)
    if await api_store.revoke_token(st.pool, name) is None:
        raise ApiError(404, f"no live token {name}")
    st.auth.forget()
    return Response(status_code=204)
