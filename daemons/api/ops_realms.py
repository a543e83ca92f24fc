"""The operations on realms and home servers (issue 28), whatever the transport (the HTTP
routes today; a CLI verb or gRPC call the same functions). Realms are managed like plans:
a realm in a policy file wins and is edited there; an API-managed realm set is checked
as the radius daemons will load it (``checked_realms``) before it is stored. Home servers
and pools live in the policy files (they hold secrets)."""

from __future__ import annotations

from typing import Any

from daemons.api import models as m
from daemons.api.errors import ApiError
from daemons.api.ops import Stores
from daemons.core import validate
from daemons.core.policies import PolicyError
from daemons.radius.upstream import checked_realms
from daemons.store import api as api_store

_STATES = {1.0: "alive", 0.5: "zombie", 0.0: "dead"}


async def list_realms(st: Stores) -> list[m.Realm]:
    out = {
        name: m.Realm(name=name, source="api", spec=spec)
        for name, spec in (await api_store.list_realms(st.pool)).items()
    }
    for _path, doc in sorted(st.policies.under("radius").items()):
        for name, spec in doc.get("realms", {}).items():
            out[name] = m.Realm(name=name, source="file", spec=dict(spec))
    return [out[k] for k in sorted(out)]


async def put_realm(st: Stores, name: str, body: m.RealmSpec) -> tuple[m.Realm, bool]:
    """Create or replace an API-managed realm; the realm and whether it was created.
    Raises ApiError: 422 (a bad name, or a set that does not load), 409 (in a file)."""
    try:
        if name not in ("DEFAULT", "NULL"):
            validate.realm(name.removeprefix("*."))
    except validate.Invalid as exc:
        raise ApiError(422, str(exc)) from None
    spec: dict[str, Any] = body.model_dump(exclude_none=True)
    if any(r.name == name and r.source == "file" for r in await list_realms(st)):
        raise ApiError(409, f"realm {name!r} is defined in policies/radius; edit the file")
    managed = {**await api_store.list_realms(st.pool), name: spec}
    try:
        checked_realms(st.policies, managed)
    except PolicyError as exc:
        raise ApiError(422, exc.problem) from None
    created = await api_store.put_realm(st.pool, name, spec)
    return m.Realm(name=name, source="api", spec=spec), created


async def delete_realm(st: Stores, name: str) -> None:
    """Raises ApiError: 404 (none), 409 (in a file)."""
    if not await api_store.delete_realm(st.pool, name):
        if any(r.name == name for r in await list_realms(st)):
            raise ApiError(409, f"realm {name!r} is defined in policies/radius; edit the file")
        raise ApiError(404, f"no realm {name!r}")


async def home_servers(st: Stores) -> list[m.HomeServer]:
    """Home servers of the policy in force, with each radius instance's view of their
    state (its last heartbeat's counters). Raises ApiError 409 if the policy is bad."""
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
