"""SNMP resources: polling targets (credentials write-only) and their latest samples."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from daemons.api import models as m
from daemons.api.errors import ApiError
from daemons.api.state import Admin, State, Viewer, audit
from daemons.core.policies import PolicyError
from daemons.poller.client import Credentials
from daemons.poller.profiles import load_profiles
from daemons.store import snmp as store
from daemons.store.cache import unpack

router = APIRouter(prefix="/api/v1")
TargetName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class SnmpTarget(BaseModel):
    name: str
    address: str
    port: int
    version: Literal["1", "2c", "3"]
    profiles: list[str]
    interval: int | None
    tags: list[str]
    enabled: bool


class SnmpTargetPut(m._Body):
    address: str = Field(max_length=64)
    port: int = Field(default=161, ge=1, le=65535)
    version: Literal["1", "2c", "3"] = "2c"
    community: str = Field(default="", max_length=128, description="v1/v2c; write-only")
    user: str = Field(default="", max_length=64, description="v3")
    auth: Literal["", "md5", "sha", "sha224", "sha256", "sha384", "sha512"] = ""
    auth_key: str = Field(default="", max_length=128, description="v3; write-only")
    priv: Literal["", "des", "aes", "aes192", "aes256"] = ""
    priv_key: str = Field(default="", max_length=128, description="v3; write-only")
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
    value: float
    kind: str


class SnmpLatest(BaseModel):
    target: str
    ts: float | None = Field(description="when the last poll answered (epoch seconds)")
    samples: list[SnmpSample]


def _view(t: store.Target) -> SnmpTarget:
    return SnmpTarget(
        name=t.name,
        address=t.address,
        port=t.port,
        version=t.credentials.version,
        profiles=list(t.profiles),
        interval=t.interval,
        tags=list(t.tags),
        enabled=t.enabled,
    )


@router.get("/snmp/targets", name="snmp.targets.list", tags=["snmp"])
async def list_targets(st: State, _: Viewer) -> list[SnmpTarget]:
    """Every polling target (never its community or keys)."""
    return [_view(t) for t in await store.list_targets(st.pool, st.sealer)]


@router.get("/snmp/targets/{name}", name="snmp.targets.get", tags=["snmp"])
async def get_target(name: TargetName, st: State, _: Viewer) -> SnmpTarget:
    found = await store.get_target(st.pool, st.sealer, name)
    if found is None:
        raise ApiError(404, f"no SNMP target {name}")
    return _view(found)


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
    try:
        address = str(ipaddress.ip_address(body.address))
    except ValueError:
        raise ApiError(422, f"address {body.address!r} is not an IP address") from None
    try:
        known = load_profiles(st.policies)
    except PolicyError as exc:
        raise ApiError(409, str(exc)) from None
    unknown = [p for p in body.profiles if p not in known]
    if unknown:
        raise ApiError(422, f"no profile {', '.join(unknown)} in policies/snmp")
    if body.version == "3":
        if not body.user or (body.auth and not body.auth_key) or (body.priv and not body.priv_key):
            raise ApiError(422, "SNMPv3 needs user, and auth_key/priv_key for auth/priv")
        if body.priv and not body.auth:
            raise ApiError(422, "SNMPv3 privacy needs authentication (auth)")
    elif not body.community:
        raise ApiError(422, "v1/v2c need a community")
    creds = Credentials(
        body.version,
        body.community,
        body.user,
        body.auth,
        body.auth_key,
        body.priv,
        body.priv_key,
    )
    target = store.Target(
        name,
        address,
        body.port,
        creds,
        tuple(body.profiles),
        body.interval,
        tuple(body.tags),
        body.enabled,
    )
    created = await store.put_target(st.pool, st.sealer, target)
    response.status_code = 201 if created else 200
    return _view(target)


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
    got: dict[str, Any] = unpack(raw)
    return SnmpLatest(
        target=name,
        ts=got.get("ts"),
        samples=[
            SnmpSample(metric=mt, labels={str(k): str(v) for k, v in lb.items()}, value=v, kind=k)
            for mt, lb, v, k in got.get("samples", [])
        ],
    )
