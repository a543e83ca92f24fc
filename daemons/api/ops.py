"""The operations behind the API, whatever the transport: the HTTP routes, the gRPC
northbound API (``daemons/nbi``) and the local CLI (``daemons/api/local.py``) all call
these, so a rule lives in one place.

Each takes a :class:`Stores` (the API's ``ApiState``, or the CLI's ``LocalState``) and
validated input (the HTTP API's pydantic models, whose field rules are in
``daemons.core.validate``), calls the store verbs, and raises :class:`ApiError` with the
HTTP status of what went wrong; the gRPC shell maps that status to a gRPC code and the CLI
to an exit status. Store outages propagate as the store's own exceptions (asyncpg, redis,
OSError), which every transport answers as "unavailable".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

import asyncpg

from daemons.acs import tasks as acs_tasks
from daemons.api import models as m
from daemons.api.errors import ApiError
from daemons.core import validate
from daemons.core.config import Config
from daemons.core.policies import PolicySet
from daemons.core.secrets import Sealer
from daemons.radius.credentials import credentials
from daemons.radius.dictionary import Dictionary, ReplyAttr
from daemons.radius.policy import Policy
from daemons.radius.sessions import CoaError, CoaOutcome, act, plan_change
from daemons.store import accounting, cpe_bulk, pools
from daemons.store import acs as acs_store
from daemons.store import authlog as authlog_store
from daemons.store import pools6 as pools6_store
from daemons.store import radius as store
from daemons.store import voltha as voltha_store
from daemons.store.cache import Cache, unpack

BATCH_MAX = 10_000
T = TypeVar("T")


class Stores(Protocol):
    """What an operation needs: the stores, the sealer, the RADIUS dictionary and policy."""

    @property
    def config(self) -> Config: ...
    @property
    def pool(self) -> asyncpg.Pool: ...
    @property
    def cache(self) -> Cache: ...
    @property
    def sealer(self) -> Sealer: ...
    @property
    def dictionary(self) -> Dictionary: ...
    @property
    def policies(self) -> PolicySet: ...
    async def policy(self) -> Policy: ...
    @property
    def connreq_refused(self) -> Callable[[str], None] | None: ...


def valid(check: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``check(*args)`` from daemons.core.validate; its Invalid is ApiError 422."""
    try:
        return check(*args, **kwargs)
    except validate.Invalid as exc:
        raise ApiError(422, str(exc)) from None


# --- subscribers ---------------------------------------------------------------------------


def _apply(st: Stores, row: store.SubscriberRow, body: m.SubscriberFields) -> store.SubscriberRow:
    """The row with the fields ``body`` sets (credentials sealed or hashed; the MAC and
    address are checked and normalised by the model). Raises ApiError 422 for a bad
    password."""
    if body.password is not None:
        try:
            row = credentials(row, body.password, body.hash, st.sealer)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
    if body.plan is not None:
        row = replace(row, plan=body.plan)
    if body.state is not None:
        row = replace(row, state=body.state)
    if body.mac is not None:
        row = replace(row, mac=body.mac or None)
    if body.framed_ip is not None:
        row = replace(row, framed_ip=body.framed_ip or None)
    ipv6: dict[str, Any] = {
        name: getattr(body, name) or None
        for name in store.IPV6_FIELDS
        if getattr(body, name) is not None
    }
    return replace(row, **ipv6) if ipv6 else row


def plan_known(policy: Policy, plan: str | None) -> None:
    """ApiError 422 unless ``plan`` is a plan of policies/radius or of the API's plans."""
    if plan is not None:
        valid(validate.known, plan, policy.plans, "plan", "policies/radius or the API's plans")


def vendor_known(policy: Policy, vendor: str) -> None:
    """ApiError 422 unless ``vendor`` has a [vendors.*] table (or is "generic")."""
    valid(validate.known, vendor, {*policy.vendors, "generic"}, "vendor", "policies/radius")


async def get_subscriber(st: Stores, username: str) -> store.SubscriberRow:
    row = await store.fetch_subscriber_db(st.pool, username)
    if row is None:
        raise ApiError(404, f"no subscriber {username}")
    return row


async def list_subscribers(
    st: Stores, after: str, limit: int, plan: str | None, state: str | None
) -> list[store.SubscriberRow]:
    return await store.list_subscribers(st.pool, after, limit, plan, state)


async def _write(st: Stores, row: store.SubscriberRow) -> store.SubscriberRow:
    await store.upsert_subscriber(st.pool, st.cache, row)
    return await store.fetch_subscriber_db(st.pool, row.username) or row


Change = Callable[[store.SubscriberRow], store.SubscriberRow]


async def create_subscriber(
    st: Stores, body: m.SubscriberCreate, then: Change | None = None
) -> store.SubscriberRow:
    """A new subscriber; ApiError 409 if the username is taken. ``then`` changes the row
    further before it is written (the CLI's NT hash)."""
    policy = await st.policy()
    plan_known(policy, body.plan)
    if await store.fetch_subscriber_db(st.pool, body.username) is not None:
        raise ApiError(409, f"subscriber {body.username} exists")
    row = _apply(st, store.SubscriberRow(body.username, plan=policy.default_plan), body)
    return await _write(st, then(row) if then else row)


async def update_subscriber(
    st: Stores, username: str, body: m.SubscriberFields, then: Change | None = None
) -> store.SubscriberRow:
    """Change the fields ``body`` sets; ApiError 404 if there is no such subscriber."""
    row = await get_subscriber(st, username)
    plan_known(await st.policy(), body.plan)
    row = _apply(st, row, body)
    return await _write(st, then(row) if then else row)


async def upsert_subscriber(
    st: Stores, body: m.SubscriberCreate
) -> tuple[store.SubscriberRow, bool]:
    """Create the subscriber, or change the fields ``body`` sets; (the row, created?)."""
    policy = await st.policy()
    plan_known(policy, body.plan)
    row = await store.fetch_subscriber_db(st.pool, body.username)
    created = row is None
    base = row or store.SubscriberRow(body.username, plan=policy.default_plan)
    return await _write(st, _apply(st, base, body)), created


def _merge_batch(
    st: Stores,
    policy: Policy,
    bodies: list[m.SubscriberCreate],
    existing: dict[str, store.SubscriberRow],
) -> list[store.SubscriberRow]:
    rows: list[store.SubscriberRow] = []
    seen: set[str] = set()
    for i, body in enumerate(bodies):
        try:
            if body.username in seen:
                raise ApiError(422, f"username {body.username!r} is given twice")
            seen.add(body.username)
            plan_known(policy, body.plan)
            base = existing.get(body.username) or store.SubscriberRow(
                body.username, plan=policy.default_plan
            )
            rows.append(_apply(st, base, body))
        except ApiError as exc:
            where = f"subscribers[{i}]"
            raise ApiError(
                422,
                f"{where}: {exc.message}",
                details=[{"field": where, "message": exc.message, "type": "value_error"}],
            ) from None
    return rows


async def upsert_subscribers(st: Stores, bodies: list[m.SubscriberCreate]) -> tuple[int, int]:
    """Create or change up to BATCH_MAX subscribers in one transaction, all or none: every
    item is checked first (ApiError 422 naming ``subscribers[i]``). (written, created)."""
    if not 1 <= len(bodies) <= BATCH_MAX:
        raise ApiError(422, f"give 1 to {BATCH_MAX} subscribers (got {len(bodies)})")
    policy = await st.policy()
    existing = await store.fetch_subscribers_db(st.pool, [b.username for b in bodies])
    # Sealing (and any one-way hashing) of thousands of passwords stays off the event loop.
    rows = await asyncio.to_thread(_merge_batch, st, policy, bodies, existing)
    await store.bulk_upsert_subscribers(st.pool, st.cache, rows)
    return len(rows), len(rows) - len(existing)


async def delete_subscriber(st: Stores, username: str) -> None:
    if not await store.remove_subscriber(st.pool, st.cache, username):
        raise ApiError(404, f"no subscriber {username}")


# --- NAS clients ---------------------------------------------------------------------------


async def create_nas(st: Stores, body: m.NasCreate) -> store.NasRow:
    """A new NAS client (its secret sealed); ApiError 422 for an unknown vendor, 409 if the
    name or the network is taken."""
    vendor_known(await st.policy(), body.vendor)
    row = store.NasRow(
        body.name,
        body.network,
        st.sealer.seal(body.secret.encode(), f"nas:{body.name}".encode()),
        body.vendor,
        body.require_message_authenticator,
        body.coa_port,
        body.description,
        body.tls_identity or None,
    )
    try:
        await store.add_nas(st.pool, row)
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409,
            f"a NAS named {body.name}, with network {body.network} or with that "
            "tls_identity exists",
        ) from None
    return row


async def update_nas(st: Stores, name: str, body: m.NasUpdate) -> store.NasRow:
    """Change the fields ``body`` sets (a new secret is sealed); ApiError 404 if there is no
    such NAS, 422 for an unknown vendor, 409 if another NAS has the network."""
    row = await store.get_nas(st.pool, name)
    if row is None:
        raise ApiError(404, f"no NAS named {name}")
    if body.vendor is not None:
        vendor_known(await st.policy(), body.vendor)
        row = replace(row, vendor=body.vendor)
    if body.network is not None:
        row = replace(row, network=body.network)
    if body.secret is not None:
        row = replace(row, secret_enc=st.sealer.seal(body.secret.encode(), f"nas:{name}".encode()))
    if body.require_message_authenticator is not None:
        row = replace(row, require_message_authenticator=body.require_message_authenticator)
    if body.coa_port is not None:
        row = replace(row, coa_port=body.coa_port)
    if body.description is not None:
        row = replace(row, description=body.description)
    if body.tls_identity is not None:
        row = replace(row, tls_identity=body.tls_identity or None)
    try:
        if not await store.update_nas(st.pool, row):
            raise ApiError(404, f"no NAS named {name}")
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, f"another NAS has network {row.network} or tls_identity {row.tls_identity}"
        ) from None
    return row


async def delete_nas(st: Stores, name: str) -> None:
    if not await store.remove_nas(st.pool, name):
        raise ApiError(404, f"no NAS named {name}")


# --- IP pools ------------------------------------------------------------------------------


async def list_pools(st: Stores) -> list[m.Pool]:
    return [m.Pool(**row) for row in await pools.usage(st.pool)]


async def get_pool(st: Stores, name: str) -> m.Pool:
    for found in await list_pools(st):
        if found.name == name:
            return found
    raise ApiError(404, f"no pool {name}")


async def add_pool(st: Stores, body: m.PoolAdd) -> tuple[m.PoolAdded, bool]:
    """Create a pool, or add the addresses of ``body.ranges`` to it (and set its lease
    time); (the pool, created?). Addresses already in a pool stay where they are."""
    existed = body.name in await pools.pool_names(st.pool)
    added = await pools.add_pool(st.pool, body.name, body.ranges, body.lease_time)
    total = sum(sum(1 for _ in pools.usable_hosts(r)) for r in body.ranges)
    now = await get_pool(st, body.name)
    return m.PoolAdded(**now.model_dump(), added=added, taken=total - added), not existed


async def add_pool6(st: Stores, name: str, body: m.Pool6Add) -> m.Pool6:
    """Create a netd IPv6 pool (or change its lease time). ApiError 422 for a name taken
    by an IPv4 pool, 409 for an existing pool given another prefix or length."""
    valid(validate.name, name, "pool")
    if name in await pools.pool_names(st.pool):
        raise ApiError(422, f"pool {name} is an IPv4 pool")
    try:
        await pools6_store.add_pool(st.pool, name, body.prefix, body.length, body.lease_time)
    except ValueError as exc:
        raise ApiError(409, str(exc)) from None
    return next(p for p in await list_pools6(st) if p.name == name)


async def list_pools6(st: Stores) -> list[m.Pool6]:
    return [m.Pool6(**r) for r in await pools6_store.list_pools(st.pool)]


async def remove_pool(st: Stores, name: str, force: bool = False) -> m.Pool:
    """Remove a pool and its addresses. ApiError 404 if unknown; 409 while a plan allocates
    from it (edit the plan first), or, without ``force``, while addresses are leased."""
    found = await get_pool(st, name)
    users = sorted(p.name for p in (await st.policy()).plans.values() if p.framed_pool == name)
    if users:
        raise ApiError(409, f"pool {name} is the framed_pool of plan(s) {', '.join(users)}")
    if found.leased and not force:
        raise ApiError(
            409, f"pool {name} has {found.leased} addresses leased (force removes it anyway)"
        )
    if not await pools.remove_pool(st.pool, name, force):
        raise ApiError(409, f"pool {name} has addresses leased (force removes it anyway)")
    return found


# --- sessions ------------------------------------------------------------------------------


def ip_filter(ip: str | None) -> str | None:
    return None if ip is None else valid(validate.ip_address, ip, "ip")


async def find_session(
    st: Stores, key: str, nas: str | None = None, open_only: bool = False
) -> dict[str, Any]:
    """The session named by netd's id (Acct-Unique-Session-Id), or else by the NAS's
    Acct-Session-Id (on ``nas`` when given). ApiError 404 if none, 409 if the
    Acct-Session-Id names sessions on several NASes."""
    found = await accounting.find_sessions(
        st.pool, unique_id=key, nas=nas, include_closed=not open_only, limit=1
    )
    if not found:
        found = await accounting.find_sessions(
            st.pool, acct_session_id=key, nas=nas, include_closed=not open_only, limit=50
        )
    if not found:
        raise ApiError(404, f"no {'open ' if open_only else ''}session {key}")
    on = sorted({str(s["nas"]) for s in found})
    if len(on) > 1:
        raise ApiError(
            409, f"Acct-Session-Id {key} is a session on each of {', '.join(on)}: name the NAS"
        )
    return found[0]


async def clear_session(st: Stores, key: str, nas: str | None, actor: str) -> dict[str, Any]:
    """Close a session its NAS will never stop (what radzap does for FreeRADIUS): a
    synthetic Stop with Acct-Terminate-Cause Admin-Reset in the ledger, its pool lease
    released, Redis's live index and the user's Simultaneous-Use count cleaned, a
    session.stop on the event stream. Sends nothing to the NAS (that is disconnect).
    ApiError 404 if there is no such session, 409 if it is closed already."""
    session = await find_session(st, key, nas)
    if session["stopped_at"] is not None:
        raise ApiError(409, f"session {session['unique_id']} is closed ({session['close_reason']})")
    closed = await accounting.close_sessions(
        st.pool,
        st.cache,
        cause=accounting.ADMIN_RESET,
        reason="cleared",
        note=f"cleared by {actor}",
        gate="clear",
        unique_ids=[str(session["unique_id"])],
    )
    if not closed:
        raise ApiError(409, f"session {session['unique_id']} was closed meanwhile")
    return closed[0]


async def list_live_sessions(
    st: Stores,
    after: str,
    limit: int,
    user: str | None = None,
    nas: str | None = None,
    ip: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Live sessions from Redis in session-id order, and the key the next page starts after
    (None on the last page). A session that ended between the two reads is left out; the
    cursor follows the ids."""
    ids = await accounting.live_session_ids(
        st.cache, after=after, limit=limit, username=user, nas=nas, ip=ip_filter(ip)
    )
    found = await accounting.live_sessions(st.cache, ids)
    return found, ids[-1] if len(ids) == limit else None


async def session_action(
    st: Stores,
    actor: str,
    session_id: str,
    kind: str,
    plan: str | None = None,
    attributes: dict[str, str | int] | None = None,
    retries: int | None = None,
    nas: str | None = None,
) -> tuple[dict[str, Any], CoaOutcome]:
    """Disconnect (``kind`` "disconnect") or change ("coa") an open session through its
    NAS (RFC 5176), audited in coa_requests; (the session, the NAS's answer). ApiError 404
    for no open session, 422 for an unknown attribute or one that cannot be encoded, 409
    when the request cannot be sent (unknown NAS or plan, no address)."""
    if kind == "coa" and not plan and not attributes:
        raise ApiError(422, "give a plan or attributes to change")
    session = await find_session(st, session_id, nas, open_only=True)
    policy = await st.policy()
    extra: list[ReplyAttr] = []
    client = await store.get_nas(st.pool, str(session["nas"]))
    try:
        if plan:
            extra += plan_change(policy, plan, client.vendor if client else "generic")
        for name, value in (attributes or {}).items():
            if name not in st.dictionary:
                raise ApiError(422, f"no attribute {name!r} in the dictionaries")
            extra.append(ReplyAttr(name, value))
        outcome = await act(
            st.pool,
            st.sealer,
            st.dictionary,
            policy,
            session,
            kind,
            extra,
            actor=actor,
            first_wait=st.config.api.coa_timeout,
            retries=retries or st.config.api.coa_retries,
        )
    except CoaError as exc:
        raise ApiError(409, str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise ApiError(422, f"an attribute cannot be encoded: {exc}") from None
    return session, outcome


# --- CPEs (TR-069) -------------------------------------------------------------------------


async def get_cpe(st: Stores, device_id: str) -> dict[str, Any]:
    found = await acs_store.get_device(st.pool, device_id)
    if found is None:
        raise ApiError(404, f"no CPE {device_id}")
    return found


async def list_cpes(
    st: Stores,
    after: str,
    limit: int,
    q: str | None = None,
    tag: str | None = None,
    product_class: str | None = None,
) -> list[dict[str, Any]]:
    return await acs_store.list_devices(
        st.pool, after=after, limit=limit, q=q, tag=tag, product_class=product_class
    )


async def queue_cpe_task(
    st: Stores,
    actor: str,
    device_id: str,
    kind: str,
    args: dict[str, Any],
    expires_in: float | None,
    poke: bool,
) -> tuple[dict[str, Any], str]:
    """Queue a task for the CPE's next session and poke the CPE; (the task, the
    connection request's outcome). ApiError 404 for an unknown CPE, 422 for a bad task."""
    try:
        task_id, outcome = await acs_tasks.queue(
            st.pool,
            st.config.acs,
            device_id,
            kind,
            args,
            actor,
            expires_in,
            poke=poke,
            refused=st.connreq_refused,
        )
    except acs_tasks.TaskError as exc:
        status = 404 if str(exc).startswith("no device") else 422
        raise ApiError(status, str(exc)) from None
    task = await acs_store.get_task(st.pool, task_id)
    assert task is not None
    return task, outcome


async def queue_cpe_bulk(
    st: Stores,
    actor: str,
    f: dict[str, Any],
    kind: str,
    args: dict[str, Any],
    rate: float | None,
    expires_in: float | None,
) -> dict[str, Any]:
    """A bulk run (``acs.tasks.queue_bulk``) with its progress; ApiError 422 for a bad
    filter, kind or arguments, 404 when no device matches."""
    try:
        bulk_id = await acs_tasks.queue_bulk(
            st.pool, st.config.acs, f, kind, args, actor, rate, expires_in
        )
    except acs_tasks.TaskError as exc:
        raise ApiError(404 if str(exc).startswith("no device") else 422, str(exc)) from None
    found = await cpe_bulk.get_bulk(st.pool, bulk_id)
    assert found is not None
    return found


# --- VOLTHA devices ------------------------------------------------------------------------


async def voltha_device(st: Stores, key: str, kind: str | None = None) -> dict[str, Any]:
    """An OLT or ONU by VOLTHA id or serial, as last synced; ApiError 404 if unknown."""
    found = await voltha_store.find_device(st.pool, key)
    if found is None or (kind and found["kind"] != kind):
        raise ApiError(404, f"no {kind or 'device'} {key} (ids and serials as last synced)")
    return found


async def list_voltha_devices(
    st: Stores, kind: str, stack: str | None = None, olt: str | None = None
) -> list[dict[str, Any]]:
    return await voltha_store.list_devices(st.pool, kind, stack, olt)


async def onu_optics(st: Stores, serial: str) -> dict[str, Any] | None:
    """The last optics and PON counters read for an ONU; None before the first read."""
    raw = await st.cache.client.get(st.cache.key("voltha:" + serial, "optics"))
    return unpack(raw) if isinstance(raw, bytes) else None


async def voltha_detail(
    st: Stores, dev: dict[str, Any]
) -> tuple[list[dict[str, Any]], voltha_store.Binding | None, dict[str, Any] | None]:
    """A device's ports, and for an ONU its binding and last optics."""
    ports = await voltha_store.device_ports(st.pool, dev["stack"], dev["id"])
    if dev["kind"] != "onu" or not dev["serial"]:
        return ports, None, None
    binding = await voltha_store.binding(st.pool, dev["serial"])
    return ports, binding, await onu_optics(st, dev["serial"])


# --- the authentication history (issue 21) -------------------------------------------------


async def list_auth_log(
    st: Stores,
    *,
    user: str | None,
    nas: str | None,
    since: datetime | None,
    until: datetime | None,
    result: str | None,
    before_id: int | None,
    limit: int,
) -> list[m.AuthLogEntry]:
    """Accepts and rejects, newest first. ApiError 422 for a result other than accept or
    reject, or a period that ends before it starts."""
    if result is not None and result not in ("accept", "reject"):
        raise ApiError(422, f"result {result!r} is accept or reject")
    if since is not None and until is not None and since >= until:
        raise ApiError(422, "since must be before until")
    rows = await authlog_store.list_auth_events(
        st.pool,
        username=user,
        nas=nas,
        since=since,
        until=until,
        result=result,
        before_id=before_id,
        limit=limit,
    )
    return [m.AuthLogEntry(**r) for r in rows]
