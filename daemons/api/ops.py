"""The operations behind the API, whatever the transport: the HTTP routes and the gRPC
northbound API (``daemons/nbi``) both call these, so a rule lives in one place.

Each takes the shared :class:`ApiState` and validated input (the HTTP API's pydantic
models), calls the store verbs, and raises :class:`ApiError` with the HTTP status of what
went wrong; the gRPC shell maps that status to a gRPC code. Store outages propagate as the
store's own exceptions (asyncpg, redis, OSError), which both transports answer as
"unavailable".
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import replace
from typing import Any

from daemons.acs import tasks as acs_tasks
from daemons.api import models as m
from daemons.api.errors import ApiError
from daemons.api.state import ApiState
from daemons.radius.admin import credentials
from daemons.radius.auth import normalize_mac
from daemons.radius.dictionary import ReplyAttr
from daemons.radius.policy import Policy
from daemons.radius.sessions import CoaError, CoaOutcome, act, plan_change
from daemons.store import accounting, cpe_bulk
from daemons.store import acs as acs_store
from daemons.store import radius as store
from daemons.store import voltha as voltha_store
from daemons.store.cache import unpack

BATCH_MAX = 10_000
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

# --- subscribers ---------------------------------------------------------------------------


def _apply(st: ApiState, row: store.SubscriberRow, body: m.SubscriberFields) -> store.SubscriberRow:
    """The row with the fields ``body`` sets (credentials sealed or hashed). Raises
    ApiError 422 for a bad password, MAC or address."""
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
        mac = normalize_mac(body.mac) if body.mac else None
        if mac is not None and not _MAC.match(mac):
            raise ApiError(422, f"mac {body.mac!r} is not a MAC address")
        row = replace(row, mac=mac)
    if body.framed_ip is not None:
        try:
            ip = str(ipaddress.ip_address(body.framed_ip)) if body.framed_ip else None
        except ValueError:
            raise ApiError(422, f"framed_ip {body.framed_ip!r} is not an IP address") from None
        row = replace(row, framed_ip=ip)
    return row


def _plan_known(policy: Policy, plan: str | None) -> None:
    if plan is not None and policy.plan_for(plan) is None:
        raise ApiError(422, f"no plan {plan!r}")


async def get_subscriber(st: ApiState, username: str) -> store.SubscriberRow:
    row = await store.fetch_subscriber_db(st.pool, username)
    if row is None:
        raise ApiError(404, f"no subscriber {username}")
    return row


async def list_subscribers(
    st: ApiState, after: str, limit: int, plan: str | None, state: str | None
) -> list[store.SubscriberRow]:
    return await store.list_subscribers(st.pool, after, limit, plan, state)


async def _write(st: ApiState, row: store.SubscriberRow) -> store.SubscriberRow:
    await store.upsert_subscriber(st.pool, st.cache, row)
    return await store.fetch_subscriber_db(st.pool, row.username) or row


async def create_subscriber(st: ApiState, body: m.SubscriberCreate) -> store.SubscriberRow:
    """A new subscriber; ApiError 409 if the username is taken."""
    policy = await st.policy()
    _plan_known(policy, body.plan)
    if await store.fetch_subscriber_db(st.pool, body.username) is not None:
        raise ApiError(409, f"subscriber {body.username} exists")
    return await _write(
        st, _apply(st, store.SubscriberRow(body.username, plan=policy.default_plan), body)
    )


async def update_subscriber(
    st: ApiState, username: str, body: m.SubscriberFields
) -> store.SubscriberRow:
    """Change the fields ``body`` sets; ApiError 404 if there is no such subscriber."""
    row = await get_subscriber(st, username)
    _plan_known(await st.policy(), body.plan)
    return await _write(st, _apply(st, row, body))


async def upsert_subscriber(
    st: ApiState, body: m.SubscriberCreate
) -> tuple[store.SubscriberRow, bool]:
    """Create the subscriber, or change the fields ``body`` sets; (the row, created?)."""
    policy = await st.policy()
    _plan_known(policy, body.plan)
    row = await store.fetch_subscriber_db(st.pool, body.username)
    created = row is None
    base = row or store.SubscriberRow(body.username, plan=policy.default_plan)
    return await _write(st, _apply(st, base, body)), created


def _merge_batch(
    st: ApiState,
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
            _plan_known(policy, body.plan)
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


async def upsert_subscribers(st: ApiState, bodies: list[m.SubscriberCreate]) -> tuple[int, int]:
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


async def delete_subscriber(st: ApiState, username: str) -> None:
    if not await store.remove_subscriber(st.pool, st.cache, username):
        raise ApiError(404, f"no subscriber {username}")


# --- sessions ------------------------------------------------------------------------------


def ip_filter(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise ApiError(422, f"ip {ip!r} is not an IP address") from None


async def list_live_sessions(
    st: ApiState,
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
    st: ApiState,
    actor: str,
    session_id: str,
    kind: str,
    plan: str | None = None,
    attributes: dict[str, str | int] | None = None,
    retries: int | None = None,
) -> tuple[dict[str, Any], CoaOutcome]:
    """Disconnect (``kind`` "disconnect") or change ("coa") an open session through its
    NAS (RFC 5176), audited in coa_requests; (the session, the NAS's answer). ApiError 404
    for no open session, 422 for an unknown attribute or one that cannot be encoded, 409
    when the request cannot be sent (unknown NAS or plan, no address)."""
    if kind == "coa" and not plan and not attributes:
        raise ApiError(422, "give a plan or attributes to change")
    found = await accounting.find_sessions(st.pool, unique_id=session_id, limit=1)
    if not found:
        raise ApiError(404, f"no open session {session_id}")
    session = found[0]
    policy = await st.policy()
    extra: list[ReplyAttr] = []
    nas = await store.get_nas(st.pool, str(session["nas"]))
    try:
        if plan:
            extra += plan_change(policy, plan, nas.vendor if nas else "generic")
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


async def get_cpe(st: ApiState, device_id: str) -> dict[str, Any]:
    found = await acs_store.get_device(st.pool, device_id)
    if found is None:
        raise ApiError(404, f"no CPE {device_id}")
    return found


async def list_cpes(
    st: ApiState,
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
    st: ApiState,
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
            st.pool, st.config.acs, device_id, kind, args, actor, expires_in, poke=poke
        )
    except acs_tasks.TaskError as exc:
        status = 404 if str(exc).startswith("no device") else 422
        raise ApiError(status, str(exc)) from None
    task = await acs_store.get_task(st.pool, task_id)
    assert task is not None
    return task, outcome


async def queue_cpe_bulk(
    st: ApiState,
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


async def voltha_device(st: ApiState, key: str, kind: str | None = None) -> dict[str, Any]:
    """An OLT or ONU by VOLTHA id or serial, as last synced; ApiError 404 if unknown."""
    found = await voltha_store.find_device(st.pool, key)
    if found is None or (kind and found["kind"] != kind):
        raise ApiError(404, f"no {kind or 'device'} {key} (ids and serials as last synced)")
    return found


async def list_voltha_devices(
    st: ApiState, kind: str, stack: str | None = None, olt: str | None = None
) -> list[dict[str, Any]]:
    return await voltha_store.list_devices(st.pool, kind, stack, olt)


async def onu_optics(st: ApiState, serial: str) -> dict[str, Any] | None:
    """The last optics and PON counters read for an ONU; None before the first read."""
    raw = await st.cache.client.get(st.cache.key("voltha:" + serial, "optics"))
    return unpack(raw) if isinstance(raw, bytes) else None


async def voltha_detail(
    st: ApiState, dev: dict[str, Any]
) -> tuple[list[dict[str, Any]], voltha_store.Binding | None, dict[str, Any] | None]:
    """A device's ports, and for an ONU its binding and last optics."""
    ports = await voltha_store.device_ports(st.pool, dev["stack"], dev["id"])
    if dev["kind"] != "onu" or not dev["serial"]:
        return ports, None, None
    binding = await voltha_store.binding(st.pool, dev["serial"])
    return ports, binding, await onu_optics(st, dev["serial"])
