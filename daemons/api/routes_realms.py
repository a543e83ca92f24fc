"""Realms and home servers (issue 28): realms are managed here like plans (a realm in a
policy file wins, and is edited there); home servers and their pools live in the policy
files (they hold secrets) and are shown with each radius instance's view of their state."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from daemons.api import models as m
from daemons.api.errors import ApiError
from daemons.api.state import Admin, ApiState, State, Viewer, audit
from daemons.core import validate
from daemons.core.policies import PolicyError
from daemons.radius.upstream import checked_realms
from daemons.store import api as api_store

router = APIRouter(prefix="/api/v1")
_STATES = {1.0: "alive", 0.5: "zombie", 0.0: "dead"}


async def _realms(st: ApiState) -> list[m.Realm]:
    out = {
        name: m.Realm(name=name, source="api", spec=spec)
        for name, spec in (await api_store.list_realms(st.pool)).items()
    }
    for _path, doc in sorted(st.policies.under("radius").items()):
        for name, spec in doc.get("realms", {}).items():
            out[name] = m.Realm(name=name, source="file", spec=dict(spec))
    return [out[k] for k in sorted(out)]


@router.get("/realms", name="realms.list", tags=["realms"])
async def list_realms(st: State, _: Viewer) -> list[m.Realm]:
    return await _realms(st)


@router.put(
    "/realms/{name}",
    name="realms.put",
    tags=["realms"],
    responses={201: {"model": m.Realm, "description": "Created"}},
)
async def put_realm(
    name: str, request: Request, response: Response, st: State, _: Admin, body: m.RealmSpec
) -> m.Realm:
    audit(request, name)
    try:
        if name not in ("DEFAULT", "NULL"):
            validate.realm(name.removeprefix("*."))
    except validate.Invalid as exc:
        raise ApiError(422, str(exc)) from None
    spec = body.model_dump(exclude_none=True)
    if any(r.name == name and r.source == "file" for r in await _realms(st)):
        raise ApiError(409, f"realm {name!r} is defined in policies/radius; edit the file")
    managed = {**await api_store.list_realms(st.pool), name: spec}
    try:
        checked_realms(st.policies, managed)
    except PolicyError as exc:
        raise ApiError(422, exc.problem) from None
    created = await api_store.put_realm(st.pool, name, spec)
    response.status_code = 201 if created else 200
    return m.Realm(name=name, source="api", spec=spec)


@router.delete("/realms/{name}", name="realms.delete", tags=["realms"], status_code=204)
async def delete_realm(name: str, request: Request, st: State, _: Admin) -> Response:
    audit(request, name)
    if not await api_store.delete_realm(st.pool, name):
        if any(r.name == name for r in await _realms(st)):
            raise ApiError(409, f"realm {name!r} is defined in policies/radius; edit the file")
        raise ApiError(404, f"no realm {name!r}")
    return Response(status_code=204)


@router.get("/home-servers", name="home_servers.list", tags=["realms"])
async def list_home_servers(st: State, _: Viewer) -> list[m.HomeServer]:
    try:
        policy = checked_realms(st.policies, await api_store.list_realms(st.pool))
    except PolicyError as exc:
        raise ApiError(409, str(exc)) from None
    beats = [b for b in await st.cache.list_heartbeats() if b.get("daemon") == "radius"]
    out = []
    for name, server in sorted(policy.home_servers.items()):
        states = {}
        for beat in beats:
            value = dict(beat.get("counters", {})).get(f"home_server:{name}:state")
            if value is not None:
                states[str(beat.get("instance_id", ""))] = _STATES.get(float(value), "?")
        out.append(
            m.HomeServer(
                name=name,
                address=server.address,
                auth_port=server.auth_port,
                acct_port=server.acct_port,
                transport=server.transport,
                pools=sorted(p.name for p in policy.pools.values() if name in p.servers),
                states=states,
            )
        )
    return out
