"""SNMP resources: polling targets (credentials write-only) with their status, their
latest and stored samples and their events, and the traps received."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from daemons.api import models as m
from daemons.api import ops
from daemons.api.errors import ApiError
from daemons.api.state import Admin, State, Viewer, audit
from daemons.core import validate
from daemons.core.policies import PolicyError, PolicySet
from daemons.poller.client import Credentials
from daemons.poller.profiles import load_profiles
from daemons.store import snmp as store
from daemons.store.cache import unpack
from daemons.store.events import list_events

router = APIRouter(prefix="/api/v1")
TargetName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class SnmpStatus(BaseModel):
    state: Literal["up", "down"]
    reason: str = Field(
        description="ok, or why the last poll failed: timeout (no answer: unreachable or a "
        "wrong community), auth (SNMPv3 refused), malformed, network, or the agent's "
        "error-status (tooBig, noSuchName, genErr...)"
    )
    message: str
    last_poll: float = Field(description="epoch seconds")
    last_ok: float | None = Field(description="epoch seconds of the last poll that answered")
    duration: float = Field(description="seconds the last poll took")
    lateness: float = Field(description="seconds the last poll started after its due time")
    failures: int = Field(description="polls failed in a row")
    varbinds: int
    samples: int


class SnmpTarget(BaseModel):
    name: str
    address: str
    port: int
    version: Literal["1", "2c", "3"]
    context: str = Field(default="", description="v3 contextName; empty: the default")
    profiles: list[str]
    interval: int | None
    tags: list[str]
    enabled: bool
    status: SnmpStatus | None = Field(
        default=None, description="the poller's view after its last poll; null before one"
    )


class SnmpTargetPut(m._Body):
    address: str = Field(max_length=64)
    port: int = Field(default=161, ge=1, le=65535)
    version: Literal["1", "2c", "3"] = "2c"
    community: str = Field(default="", max_length=128, description="v1/v2c; write-only")
    user: str = Field(default="", max_length=64, description="v3")
    auth: Literal["", "md5", "sha", "sha224", "sha256", "sha384", "sha512"] = ""
    auth_key: str = Field(default="", max_length=128, description="v3; write-only")
    priv: Literal["", "des", "aes", "aes192", "aes256", "aes192c", "aes256c"] = Field(
        default="", description="aes192c/aes256c: Cisco's (Reeder) key expansion"
    )
    priv_key: str = Field(default="", max_length=128, description="v3; write-only")
    context: str = Field(
        default="",
        max_length=32,
        pattern=r"^[\x21-\x7e]*$",
        description="v3 contextName (a Cisco per-VRF or per-VLAN instance); empty: the default",
    )
    profiles: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=lambda: ["system", "if-mib"], max_length=32
    )
    interval: int | None = Field(default=None, ge=10, le=86400)
    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]] = Field(
        default_factory=list, max_length=64
    )
    enabled: bool = True


class SnmpSample(BaseModel):
    metric: str
    labels: dict[str, str]
    value: int | float = Field(
        description="counters and integer gauges as exact integers (a Counter64 past 2^53 "
        "is not rounded), rates and scaled gauges as numbers"
    )
    kind: str


class SnmpLatest(BaseModel):
    target: str
    ts: float | None = Field(description="when the last poll answered (epoch seconds)")
    samples: list[SnmpSample]


class SnmpStoredSample(BaseModel):
    ts: datetime
    metric: str
    labels: dict[str, str]
    value: float


class SnmpSamples(BaseModel):
    target: str
    since: datetime
    until: datetime
    samples: list[SnmpStoredSample]
    truncated: bool = Field(description="true when limit cut the range short: narrow it")


async def _statuses(st: Any, names: list[str]) -> list[SnmpStatus | None]:
    """Each target's status from Redis (one round trip; the keys may be on several
    cluster nodes, so GETs in a pipeline rather than MGET)."""
    if not names:
        return []
    pipe = st.cache.client.pipeline(transaction=False)
    for name in names:
        pipe.get(st.cache.key("snmp:" + name, "status"))
    out: list[SnmpStatus | None] = []
    for raw in await pipe.execute():
        out.append(SnmpStatus(**unpack(raw)) if isinstance(raw, bytes) else None)
    return out


def _view(t: store.Target, status: SnmpStatus | None = None) -> SnmpTarget:
    return SnmpTarget(
        name=t.name,
        address=t.address,
        port=t.port,
        version=t.credentials.version,
        context=t.credentials.context,
        profiles=list(t.profiles),
        interval=t.interval,
        tags=list(t.tags),
        enabled=t.enabled,
        status=status,
    )


@router.get("/snmp/targets", name="snmp.targets.list", tags=["snmp"])
async def list_targets(st: State, _: Viewer) -> list[SnmpTarget]:
    """Every polling target with its status (never its community or keys)."""
    targets = await store.list_targets(st.pool, st.sealer)
    statuses = await _statuses(st, [t.name for t in targets])
    return [_view(t, s) for t, s in zip(targets, statuses, strict=True)]


@router.get("/snmp/targets/{name}", name="snmp.targets.get", tags=["snmp"])
async def get_target(name: TargetName, st: State, _: Viewer) -> SnmpTarget:
    """A target and its status: up or down, and why, after the last poll."""
    found = await store.get_target(st.pool, st.sealer, name)
    if found is None:
        raise ApiError(404, f"no SNMP target {name}")
    (status,) = await _statuses(st, [name])
    return _view(found, status)


@router.put(
    "/snmp/targets/{name}",
    name="snmp.targets.put",
    tags=["snmp"],
    responses={201: {"model": SnmpTarget, "description": "Created"}},
)
async def put_target(
    name: TargetName,
    request: Request,
    response: Response,
    st: State,
    _: Admin,
    body: SnmpTargetPut,
) -> SnmpTarget:
    """Add or replace a target; the pollers pick it up at once."""
    audit(request, name, address=body.address, version=body.version, profiles=body.profiles)
    target = target_from(name, body, st.policies)
    created = await store.put_target(st.pool, st.sealer, target)
    response.status_code = 201 if created else 200
    return _view(target)


def target_from(name: str, body: SnmpTargetPut, policies: PolicySet) -> store.Target:
    """The target ``body`` describes, checked against the profiles of ``policies`` (the
    API and ``netd snmp target add`` both build it here). Raises ApiError 422 (409 when
    the profiles themselves do not load)."""
    address = ops.valid(validate.ip_address, body.address)
    try:
        known = load_profiles(policies)
    except PolicyError as exc:
        raise ApiError(409, str(exc)) from None
    for profile in body.profiles:
        ops.valid(validate.known, profile, known, "profile", "policies/snmp")
    if body.version == "3":
        if not body.user or (body.auth and not body.auth_key) or (body.priv and not body.priv_key):
            raise ApiError(422, "SNMPv3 needs user, and auth_key/priv_key for auth/priv")
        if body.priv and not body.auth:
            raise ApiError(422, "SNMPv3 privacy needs authentication (auth)")
    elif not body.community:
        raise ApiError(422, "v1/v2c need a community")
    if body.context and body.version != "3":
        raise ApiError(422, "a context name is SNMPv3 only")
    creds = Credentials(
        body.version,
        body.community,
        body.user,
        body.auth,
        body.auth_key,
        body.priv,
        body.priv_key,
        body.context,
    )
    return store.Target(
        name,
        address,
        body.port,
        creds,
        tuple(body.profiles),
        body.interval,
        tuple(body.tags),
        body.enabled,
    )


@router.delete("/snmp/targets/{name}", name="snmp.targets.delete", tags=["snmp"], status_code=204)
async def delete_target(name: TargetName, request: Request, st: State, _: Admin) -> Response:
    audit(request, name)
    if not await store.remove_target(st.pool, name):
        raise ApiError(404, f"no SNMP target {name}")
    return Response(status_code=204)


@router.get("/snmp/targets/{name}/latest", name="snmp.targets.latest", tags=["snmp"])
async def latest(name: TargetName, st: State, _: Viewer) -> SnmpLatest:
    """The target's last poll as the poller stored it in Redis."""
    if await store.get_target(st.pool, st.sealer, name) is None:
        raise ApiError(404, f"no SNMP target {name}")
    raw = await st.cache.client.get(st.cache.key("snmp:" + name, "latest"))
    if not isinstance(raw, bytes):
        return SnmpLatest(target=name, ts=None, samples=[])
    ts, got = store.read_latest(raw)
    return SnmpLatest(
        target=name,
        ts=ts,
        samples=[SnmpSample(metric=mt, labels=lb, value=v, kind=k) for mt, lb, v, k in got],
    )


@router.get("/snmp/targets/{name}/samples", name="snmp.targets.samples", tags=["snmp"])
async def samples(
    name: TargetName,
    st: State,
    _: Viewer,
    since: Annotated[datetime | None, Query(description="default: an hour before until")] = None,
    until: Annotated[datetime | None, Query(description="default: now")] = None,
    metric: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_]+$")] = None,
    label: Annotated[
        list[str] | None,
        Query(max_length=8, description="name=value, all must match (e.g. ifName=ge-0/0/1)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> SnmpSamples:
    """Stored gauges and rates (raw counters are not stored) in [since, until), oldest
    first."""
    if await store.get_target(st.pool, st.sealer, name) is None:
        raise ApiError(404, f"no SNMP target {name}")
    end = _aware(until) if until else datetime.now(UTC)
    start = _aware(since) if since else end - timedelta(hours=1)
    if start >= end:
        raise ApiError(422, "since must be before until")
    labels: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep or not key or len(item) > 256:
            raise ApiError(422, f"label {item[:64]!r} is not name=value")
        labels[key] = value
    rows = await store.read_samples(st.pool, name, start, end, metric, labels, limit + 1)
    return SnmpSamples(
        target=name,
        since=start,
        until=end,
        samples=[SnmpStoredSample(**r) for r in rows[:limit]],
        truncated=len(rows) > limit,
    )


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@router.get("/snmp/targets/{name}/events", name="snmp.targets.events", tags=["snmp"])
async def target_events(
    name: TargetName, st: State, _: Viewer, limit: m.Limit = 100, cursor: m.Cursor = None
) -> m.Page[m.Event]:
    """The poller's events about a target (snmp.unreachable, snmp.error, snmp.reachable),
    newest first."""
    rows = await list_events(
        st.pool, before=m.decode_int_cursor(cursor), limit=limit, source="poller", subject=name
    )
    return m.page([m.Event(**r) for r in rows], limit, lambda e: e.id)


@router.get("/snmp/traps", name="snmp.traps.list", tags=["snmp"])
async def traps(
    st: State,
    _: Viewer,
    source: Annotated[str | None, Query(max_length=64, description="the sender's address")] = None,
    limit: m.Limit = 100,
    cursor: m.Cursor = None,
) -> m.Page[m.Event]:
    """Traps and informs received (events of kind snmp.trap), newest first."""
    rows = await list_events(
        st.pool, before=m.decode_int_cursor(cursor), limit=limit, kind="snmp.trap", subject=source
    )
    return m.page([m.Event(**r) for r in rows], limit, lambda e: e.id)
