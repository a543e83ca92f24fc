"""The northbound gRPC API with a grpc.aio client against real `netd api` and `netd radius`
processes: every RPC, roles, error details, a 10,000-subscriber batch, and a Watch cut
twice (by the client, then by restarting the API daemon) while 10,000 accounting records
flow through the RADIUS daemon."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from benchmarks.radius_loadgen import AcctBuilder
from daemons.acs.cwmp import DeviceId, ParamValue
from daemons.nbi import convert
from daemons.nbi.gen.netd.v1 import devices_pb2 as dv
from daemons.nbi.gen.netd.v1 import sessions_pb2 as ss
from daemons.nbi.gen.netd.v1 import subscribers_pb2 as sb
from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.radius.authlog import AuthEvent
from daemons.store import accounting, stream
from daemons.store import acs as acs_store
from daemons.store import authlog as authlog_store
from daemons.store import radius as store
from daemons.store import voltha as voltha_store
from daemons.store.cache import pack
from tests.nbi.conftest import (
    NAS_SECRET,
    AcctRun,
    NbiServer,
    Stubs,
    expected_events,
    send_accounting,
)
from tests.radius.nas_sim import NasSimulator


def _tag() -> str:
    return uuid.uuid4().hex[:8]


async def _fails(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the call succeeded")


def _details(exc: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The google.rpc.Status details of a failed call, as grpcio-status reads them."""
    status = rpc_status.from_call(exc)
    assert status is not None and status.code == exc.code().value[0]
    return convert.read_details(status)


# --- health --------------------------------------------------------------------------------


async def test_health_is_served_without_a_token(nbi: NbiServer) -> None:
    s = nbi.stubs(None)
    health = health_pb2_grpc.HealthStub(s.channel)
    for service in ("", "netd.v1.SubscribersService", "netd.v1.SessionsService"):
        got = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert got.status == health_pb2.HealthCheckResponse.SERVING
    missing = await _fails(health.Check(health_pb2.HealthCheckRequest(service="nope")))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


# --- subscribers ---------------------------------------------------------------------------


async def test_subscriber_get_list_upsert_delete(nbi: NbiServer) -> None:
    t = _tag()
    s = nbi.stubs("admin")
    md = s.metadata
    name = f"sub-{t}"
    made = await s.subscribers.UpsertSubscriber(
        sb.UpsertSubscriberRequest(
            subscriber=sb.SubscriberUpsert(
                username=name, password="pw-" + t, plan="fiber-100", mac="AA-BB-CC-00-11-22"
            )
        ),
        metadata=(*md, ("x-request-id", f"req-{t}")),
    )
    assert made.created
    assert made.subscriber.mac == "aa:bb:cc:00:11:22"
    assert set(made.subscriber.credentials) == {"cleartext", "nt-hash"}
    assert made.subscriber.state == sb.SUBSCRIBER_STATE_ACTIVE
    changed = await s.subscribers.UpsertSubscriber(
        sb.UpsertSubscriberRequest(
            subscriber=sb.SubscriberUpsert(
                username=name, state=sb.SUBSCRIBER_STATE_SUSPENDED, mac=""
            )
        ),
        metadata=md,
    )
    assert not changed.created
    assert (changed.subscriber.state, changed.subscriber.mac) == (
        sb.SUBSCRIBER_STATE_SUSPENDED,
        "",
    )
    assert changed.subscriber.plan == "fiber-100"  # left out: kept
    got = await s.subscribers.GetSubscriber(sb.GetSubscriberRequest(username=name), metadata=md)
    assert got.subscriber == changed.subscriber
    # The HTTP API sees the same record: one store, one set of rules.
    async with httpx.AsyncClient(
        base_url=nbi.http_url, headers={"Authorization": f"Bearer {nbi.tokens['viewer']}"}
    ) as http:
        assert (await http.get(f"/api/v1/subscribers/{name}")).json()["state"] == "suspended"
    for i in range(3):
        await s.subscribers.UpsertSubscriber(
            sb.UpsertSubscriberRequest(
                subscriber=sb.SubscriberUpsert(username=f"page-{t}-{i}", plan="fiber-1000")
            ),
            metadata=md,
        )
    names, token = [], ""
    for _ in range(5):
        page = await s.subscribers.ListSubscribers(
            sb.ListSubscribersRequest(page_size=2, page_token=token, plan="fiber-1000"),
            metadata=md,
        )
        names += [x.username for x in page.subscribers if x.username.startswith(f"page-{t}")]
        token = page.next_page_token
        if not token:
            break
    assert names == [f"page-{t}-{i}" for i in range(3)]
    suspended = await s.subscribers.ListSubscribers(
        sb.ListSubscribersRequest(state=sb.SUBSCRIBER_STATE_SUSPENDED), metadata=md
    )
    assert [x.username for x in suspended.subscribers] == [name]
    await s.subscribers.DeleteSubscriber(sb.DeleteSubscriberRequest(username=name), metadata=md)
    gone = await _fails(
        s.subscribers.GetSubscriber(
            sb.GetSubscriberRequest(username=name),
            metadata=(*md, ("x-request-id", f"gone-{t}")),
        )
    )
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    info = _details(gone)["ErrorInfo"]
    assert (info.reason, info.domain) == ("not_found", "netd")
    assert info.metadata["request_id"] == f"gone-{t}"
    assert dict(gone.trailing_metadata())["x-request-id"] == f"gone-{t}"
    again = await _fails(
        s.subscribers.DeleteSubscriber(sb.DeleteSubscriberRequest(username=name), metadata=md)
    )
    assert again.code() == grpc.StatusCode.NOT_FOUND
    row = await nbi.pool.fetchrow("SELECT * FROM audit_log WHERE request_id = $1", f"req-{t}")
    assert row is not None
    assert (row["method"], row["action"], row["target"], row["result"]) == (
        "GRPC",
        "subscribers.upsert",
        name,
        "ok",
    )
    assert row["path"] == "/netd.v1.SubscribersService/UpsertSubscriber"
    assert row["actor"] == "api:nbi-admin"
    assert "pw-" + t not in row["details"]


async def test_invalid_subscribers_are_refused_with_field_violations(nbi: NbiServer) -> None:
    s = nbi.stubs("admin")
    cases = {
        "subscriber.mac": sb.SubscriberUpsert(username="bad-mac", mac="not-a-mac"),
        "subscriber.plan": sb.SubscriberUpsert(username="bad-plan", plan="no-such-plan"),
        "username": sb.SubscriberUpsert(username=""),
        "password": sb.SubscriberUpsert(username="long", password="x" * 129),
    }
    for what, sub in cases.items():
        exc = await _fails(
            s.subscribers.UpsertSubscriber(
                sb.UpsertSubscriberRequest(subscriber=sub), metadata=s.metadata
            )
        )
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        details = _details(exc)
        assert details["ErrorInfo"].reason == "validation_error", what
        if what in ("username", "password"):  # the HTTP API's pydantic rules, by field
            fields = [v.field for v in details["BadRequest"].field_violations]
            assert fields == [what], (what, fields)
    assert await store.fetch_subscriber_db(nbi.pool, "bad-mac") is None


async def test_ipv6_subscriber_fields(nbi: NbiServer) -> None:
    """Issue 21: the IPv6 fields by gRPC, through the HTTP API's rules: stored, read back,
    refused alike (an IPv6 framed_ip names the IPv6 fields)."""
    s = nbi.stubs("admin")
    name = f"v6-{_tag()}"
    sub = sb.SubscriberUpsert(
        username=name,
        plan="fiber-100-dual",
        framed_ipv6_address="2001:db8:1:2::5",
        framed_ipv6_prefix="2001:db8:1:2::/64",
        delegated_ipv6_prefix="2001:db8:2:ab00::/56",
        delegated_ipv6_pool="pd6",
    )
    await s.subscribers.UpsertSubscriber(
        sb.UpsertSubscriberRequest(subscriber=sub), metadata=s.metadata
    )
    got = (
        await s.subscribers.GetSubscriber(
            sb.GetSubscriberRequest(username=name), metadata=s.metadata
        )
    ).subscriber
    assert (got.framed_ipv6_prefix, got.delegated_ipv6_prefix) == (
        "2001:db8:1:2::/64",
        "2001:db8:2:ab00::/56",
    )
    assert (got.framed_ipv6_address, got.delegated_ipv6_pool) == ("2001:db8:1:2::5", "pd6")
    for field, bad in (
        ("framed_ip", sb.SubscriberUpsert(username=name, framed_ip="2001:db8::5")),
        ("delegated_ipv6_prefix", sb.SubscriberUpsert(username=name, delegated_ipv6_prefix="::1")),
    ):
        exc = await _fails(
            s.subscribers.UpsertSubscriber(
                sb.UpsertSubscriberRequest(subscriber=bad), metadata=s.metadata
            )
        )
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in str(exc.details()), exc.details()


async def test_list_sessions_by_an_ipv6_address(nbi: NbiServer) -> None:
    """Issue 21: ListSessions(ip=) with an address inside a live session's prefix; the
    session carries its IPv6 prefixes."""
    t = _tag()
    n = int(t[:4], 16)  # a hex tag: a prefix of its own
    rec = AcctRecord(
        nas="bng1",
        status=AcctStatus.START,
        acct_session_id=f"g6-{t}",
        unique_id=f"g6-{t}",
        idem_key=f"k-g6-{t}",
        event_time=time.time(),
        username=f"g6u-{t}",
        delegated_ipv6_prefix=f"2001:db8:{n:x}:ab00::/56",
    )
    await accounting.append_accounting(nbi.pool, [rec])
    await accounting.update_live_sessions(nbi.cache, [rec], [])
    s = nbi.stubs("viewer")
    got = await s.sessions.ListSessions(
        ss.ListSessionsRequest(ip=f"2001:db8:{n:x}:abcd::1"), metadata=s.metadata
    )
    assert [x.unique_id for x in got.sessions] == [f"g6-{t}"]
    assert got.sessions[0].delegated_ipv6_prefix == f"2001:db8:{n:x}:ab00::/56"


async def test_list_auth_events(nbi: NbiServer) -> None:
    """Issue 21: the authentication history by gRPC, as GET /api/v1/auth-log gives it."""
    s = nbi.stubs("viewer")
    user = f"ae-{_tag()}"
    now = time.time()
    await authlog_store.append_auth_events(
        nbi.pool,
        [
            AuthEvent(now - 10, user, "bng1", "p", "", "pap", "reject", "bad_password", None),
            AuthEvent(
                now - 5,
                user,
                "bng1",
                "p",
                "",
                "pap",
                "accept",
                "ok",
                "fiber-100",
                {"Delegated-IPv6-Prefix": "2001:db8:2:ab00::/56"},
            ),
        ],
    )
    first = await s.sessions.ListAuthEvents(
        ss.ListAuthEventsRequest(username=user, page_size=1), metadata=s.metadata
    )
    (accept,) = first.events
    assert (accept.result, accept.plan) == ("accept", "fiber-100")
    assert dict(accept.given) == {"Delegated-IPv6-Prefix": "2001:db8:2:ab00::/56"}
    rest = await s.sessions.ListAuthEvents(
        ss.ListAuthEventsRequest(username=user, page_size=1, page_token=first.next_page_token),
        metadata=s.metadata,
    )
    assert [e.reason for e in rest.events] == ["bad_password"]
    bad = await _fails(
        s.sessions.ListAuthEvents(
            ss.ListAuthEventsRequest(username=user, result="maybe"), metadata=s.metadata
        )
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_batch_upsert_of_10000_subscribers(nbi: NbiServer) -> None:
    t = _tag()
    s = nbi.stubs("admin")
    subs = [
        sb.SubscriberUpsert(
            username=f"b{t}-{i:05d}",
            password=f"pw{i}",
            plan="fiber-100" if i % 2 else "fiber-1000",
            framed_ip=f"100.80.{i // 250}.{i % 250 + 1}" if i % 10 == 0 else None,
        )
        for i in range(10_000)
    ]
    t0 = time.perf_counter()
    done = await s.subscribers.BatchUpsertSubscribers(
        sb.BatchUpsertSubscribersRequest(subscribers=subs), metadata=s.metadata, timeout=60
    )
    took = time.perf_counter() - t0
    assert (done.upserted, done.created) == (10_000, 10_000)
    count = await nbi.pool.fetchval(
        "SELECT count(*) FROM subscribers WHERE username LIKE $1", f"b{t}-%"
    )
    assert count == 10_000
    # Written through to the cache the RADIUS hot path reads, sealed.
    hit, row, _ = await store.cached_subscriber(nbi.cache, f"b{t}-00010")
    assert hit and row is not None
    assert (row.plan, row.framed_ip) == ("fiber-1000", "100.80.0.11")
    assert row.password_enc is not None and b"pw10" not in row.password_enc
    print(f"batch upsert of 10,000: {took:.2f} s, {10_000 / took:,.0f} subscribers/s")
    # Again: all exist now; one field changed, the rest kept.
    again = await s.subscribers.BatchUpsertSubscribers(
        sb.BatchUpsertSubscribersRequest(
            subscribers=[
                sb.SubscriberUpsert(username=x.username, state=sb.SUBSCRIBER_STATE_DISABLED)
                for x in subs[:100]
            ]
        ),
        metadata=s.metadata,
    )
    assert (again.upserted, again.created) == (100, 0)
    kept = await store.fetch_subscriber_db(nbi.pool, f"b{t}-00001")
    assert kept is not None and (kept.state, kept.plan) == ("disabled", "fiber-100")
    assert kept.password_enc is not None
    # One bad item: nothing written, the item named.
    bad = [sb.SubscriberUpsert(username=f"x{t}-{i}") for i in range(5)]
    bad[3].framed_ip = "300.1.1.1"
    exc = await _fails(
        s.subscribers.BatchUpsertSubscribers(
            sb.BatchUpsertSubscribersRequest(subscribers=bad), metadata=s.metadata
        )
    )
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = _details(exc)["BadRequest"].field_violations
    assert [v.field for v in violations] == ["subscribers[3].framed_ip"]
    dupes = [sb.SubscriberUpsert(username=f"d{t}"), sb.SubscriberUpsert(username=f"d{t}")]
    exc = await _fails(
        s.subscribers.BatchUpsertSubscribers(
            sb.BatchUpsertSubscribersRequest(subscribers=dupes), metadata=s.metadata
        )
    )
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "twice" in exc.details()
    assert not await nbi.pool.fetchval(
        "SELECT count(*) FROM subscribers WHERE username LIKE $1 OR username = $2",
        f"x{t}-%",
        f"d{t}",
    )
    empty = await _fails(
        s.subscribers.BatchUpsertSubscribers(
            sb.BatchUpsertSubscribersRequest(), metadata=s.metadata
        )
    )
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- roles ---------------------------------------------------------------------------------

Rpc = Callable[[Stubs], Awaitable[Any]]
# Every RPC, the least role it needs, and a call that the role check decides.
RBAC: list[tuple[str, str, Rpc]] = [
    (
        "GetSubscriber",
        "viewer",
        lambda s: s.subscribers.GetSubscriber(
            sb.GetSubscriberRequest(username="alice"), metadata=s.metadata
        ),
    ),
    (
        "ListSubscribers",
        "viewer",
        lambda s: s.subscribers.ListSubscribers(sb.ListSubscribersRequest(), metadata=s.metadata),
    ),
    (
        "UpsertSubscriber",
        "admin",
        lambda s: s.subscribers.UpsertSubscriber(
            sb.UpsertSubscriberRequest(subscriber=sb.SubscriberUpsert(username="rbac-u")),
            metadata=s.metadata,
        ),
    ),
    (
        "BatchUpsertSubscribers",
        "admin",
        lambda s: s.subscribers.BatchUpsertSubscribers(
            sb.BatchUpsertSubscribersRequest(subscribers=[sb.SubscriberUpsert(username="rbac-b")]),
            metadata=s.metadata,
        ),
    ),
    (
        "DeleteSubscriber",
        "admin",
        lambda s: s.subscribers.DeleteSubscriber(
            sb.DeleteSubscriberRequest(username="rbac-none"), metadata=s.metadata
        ),
    ),
    (
        "ListSessions",
        "viewer",
        lambda s: s.sessions.ListSessions(ss.ListSessionsRequest(), metadata=s.metadata),
    ),
    (
        "WatchSessions",
        "viewer",
        lambda s: _first(s.sessions.WatchSessions(ss.WatchSessionsRequest(), metadata=s.metadata)),
    ),
    (
        "DisconnectSession",
        "operator",
        lambda s: s.sessions.DisconnectSession(
            ss.DisconnectSessionRequest(session_id="rbac-none"), metadata=s.metadata
        ),
    ),
    (
        "ChangeAuthorization",
        "operator",
        lambda s: s.sessions.ChangeAuthorization(
            ss.ChangeAuthorizationRequest(session_id="rbac-none", plan="fiber-100"),
            metadata=s.metadata,
        ),
    ),
    (
        "ListAuthEvents",
        "viewer",
        lambda s: s.sessions.ListAuthEvents(ss.ListAuthEventsRequest(), metadata=s.metadata),
    ),
    (
        "GetCpe",
        "viewer",
        lambda s: s.devices.GetCpe(dv.GetCpeRequest(id="x-y-z"), metadata=s.metadata),
    ),
    ("ListCpes", "viewer", lambda s: s.devices.ListCpes(dv.ListCpesRequest(), metadata=s.metadata)),
    (
        "GetOnu",
        "viewer",
        lambda s: s.devices.GetOnu(dv.GetOnuRequest(key="NONE0000"), metadata=s.metadata),
    ),
    ("ListOnus", "viewer", lambda s: s.devices.ListOnus(dv.ListOnusRequest(), metadata=s.metadata)),
    (
        "QueueCpeTask",
        "operator",
        lambda s: s.devices.QueueCpeTask(
            dv.QueueCpeTaskRequest(device_id="x-y-z", kind="reboot"), metadata=s.metadata
        ),
    ),
    (
        "QueueCpeBulk",
        "operator",
        lambda s: s.devices.QueueCpeBulk(
            dv.QueueCpeBulkRequest(filter=dv.CpeFilter(tags=["none-such"]), kind="reboot"),
            metadata=s.metadata,
        ),
    ),
    (
        "GetCpeBulk",
        "viewer",
        lambda s: s.devices.GetCpeBulk(dv.GetCpeBulkRequest(id=2**40), metadata=s.metadata),
    ),
]
ORDER = ("viewer", "operator", "admin")


async def _first(call: Any) -> Any:
    async for response in call:
        call.cancel()
        return response
    raise AssertionError("the stream ended")


def test_rbac_table_names_every_rpc() -> None:
    methods = {
        m.name
        for file in (sb, ss, dv)
        for service in file.DESCRIPTOR.services_by_name.values()
        for m in service.methods
    }
    assert {name for name, _role, _call in RBAC} == methods


async def test_roles_unknown_and_missing_tokens(nbi: NbiServer) -> None:
    stubs = {role: nbi.stubs(role) for role in ORDER}
    anonymous, forged = nbi.stubs(None), nbi.stubs(token="not-a-token")
    for name, least, rpc in RBAC:
        for role in ORDER:
            allowed = ORDER.index(role) >= ORDER.index(least)
            try:
                await rpc(stubs[role])
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
            if allowed:
                assert code not in (
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.UNAUTHENTICATED,
                ), (name, role, code)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (name, role, code)
        for who in (anonymous, forged):
            exc = await _fails(rpc(who))
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, name
    denied = await nbi.pool.fetch(
        "SELECT actor, result, status FROM audit_log WHERE method = 'GRPC' "
        "AND action = 'subscribers.delete' AND target = 'rbac-none' ORDER BY id"
    )
    assert [(r["actor"], r["result"]) for r in denied] == [
        ("api:nbi-viewer", "denied"),
        ("api:nbi-operator", "denied"),
        ("api:nbi-admin", "invalid"),  # allowed, but there is no such subscriber: 404
        ("anonymous", "denied"),
        ("anonymous", "denied"),
    ]


# --- sessions ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def nas_sim(nbi: NbiServer) -> Any:
    sim = NasSimulator(NAS_SECRET.encode())
    await nbi.pool.execute("UPDATE nas_clients SET coa_port = $1 WHERE name = 'bng1'", sim.port)
    yield sim
    sim.close()


async def test_sessions_list_disconnect_and_coa(nbi: NbiServer, nas_sim: NasSimulator) -> None:
    t = _tag()
    # Three sessions open (a Start each, as a NAS sends it) for acct0000..acct0002 on bng1.
    builder = AcctBuilder(NAS_SECRET.encode(), 1000, "acct{:04d}", f"o{t}", "127.0.0.1", 0)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", nbi.acct_port)
    )
    for i in range(3):
        transport.sendto(builder.build(i, 0, i)[0])
    transport.close()
    s = nbi.stubs("operator")
    ids: list[str] = []
    async with asyncio.timeout(10):
        while len(ids) < 3:
            page = await s.sessions.ListSessions(
                ss.ListSessionsRequest(page_size=1000), metadata=s.metadata
            )
            ids = [x.unique_id for x in page.sessions if x.acct_session_id.startswith(f"o{t}")]
            await asyncio.sleep(0.05)
    one = await s.sessions.ListSessions(
        ss.ListSessionsRequest(username="acct0001", page_size=10), metadata=s.metadata
    )
    mine = [x for x in one.sessions if x.acct_session_id.startswith(f"o{t}")]
    assert len(mine) == 1 and mine[0].nas == "bng1" and mine[0].framed_ip.startswith("100.64.")
    by_ip = await s.sessions.ListSessions(
        ss.ListSessionsRequest(ip=mine[0].framed_ip), metadata=s.metadata
    )
    assert [x.unique_id for x in by_ip.sessions] == [mine[0].unique_id]
    paged = await s.sessions.ListSessions(ss.ListSessionsRequest(page_size=1), metadata=s.metadata)
    assert len(paged.sessions) == 1 and paged.next_page_token
    bad_ip = await _fails(
        s.sessions.ListSessions(ss.ListSessionsRequest(ip="nope"), metadata=s.metadata)
    )
    assert bad_ip.code() == grpc.StatusCode.INVALID_ARGUMENT
    target = mine[0].unique_id
    nas_sim.mode = "ack"
    ack = await s.sessions.DisconnectSession(
        ss.DisconnectSessionRequest(session_id=target), metadata=s.metadata
    )
    assert (ack.result.outcome, ack.result.nas) == (ss.COA_OUTCOME_ACK, "bng1")
    assert not ack.result.HasField("error_cause")
    nas_sim.mode = "nak"
    nak = await s.sessions.ChangeAuthorization(
        ss.ChangeAuthorizationRequest(
            session_id=target,
            plan="fiber-1000",
            attributes={"Session-Timeout": ss.AttributeValue(integer=600)},
        ),
        metadata=s.metadata,
    )
    assert nak.result.outcome == ss.COA_OUTCOME_NAK and nak.result.error_cause == 503
    sent = [x for x in nas_sim.seen if 600 in list(x.get("Session-Timeout", []))]  # type: ignore[call-overload]
    assert sent, [sorted(x.items()) for x in nas_sim.seen[-1:]]
    nothing = await _fails(
        s.sessions.ChangeAuthorization(
            ss.ChangeAuthorizationRequest(session_id=target), metadata=s.metadata
        )
    )
    assert nothing.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown_attr = await _fails(
        s.sessions.ChangeAuthorization(
            ss.ChangeAuthorizationRequest(
                session_id=target, attributes={"No-Such": ss.AttributeValue(text="x")}
            ),
            metadata=s.metadata,
        )
    )
    assert unknown_attr.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown_plan = await _fails(
        s.sessions.ChangeAuthorization(
            ss.ChangeAuthorizationRequest(session_id=target, plan="no-such-plan"),
            metadata=s.metadata,
        )
    )
    assert unknown_plan.code() == grpc.StatusCode.FAILED_PRECONDITION
    missing = await _fails(
        s.sessions.DisconnectSession(
            ss.DisconnectSessionRequest(session_id="none-such"), metadata=s.metadata
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    rows = await nbi.pool.fetch(
        "SELECT kind, result, actor FROM coa_requests WHERE unique_id = $1 ORDER BY id", target
    )
    assert [(r["kind"], r["result"], r["actor"]) for r in rows] == [
        ("disconnect", "ack", "api:nbi-operator"),
        ("coa", "nak", "api:nbi-operator"),
    ]
    audit = await nbi.pool.fetchrow(
        "SELECT details FROM audit_log WHERE method = 'GRPC' AND action = 'sessions.disconnect' "
        "AND target = $1",
        target,
    )
    assert audit is not None and json.loads(audit["details"])["result"] == "ack"


# --- devices -------------------------------------------------------------------------------


async def test_cpe_and_onu_lookups_and_a_task(nbi: NbiServer) -> None:
    t = _tag().upper()
    for i in range(3):
        await acs_store.register_device(
            nbi.pool,
            DeviceId("Acme", "00259E", f"HG{t}", f"SN{i}"),
            ns="urn:dslforum-org:cwmp-1-0",
            root="InternetGatewayDevice",
            ip="192.0.2.7",
            events=["0 BOOTSTRAP"],
            params=[ParamValue("InternetGatewayDevice.DeviceInfo.SoftwareVersion", "1.2.3")],
            auto_register=True,
        )
    cpe_id = f"00259E-HG{t}-SN1"
    s = nbi.stubs("operator")
    got = await s.devices.GetCpe(dv.GetCpeRequest(id=cpe_id), metadata=s.metadata)
    assert (got.cpe.serial, got.cpe.software_version, got.cpe.ip) == ("SN1", "1.2.3", "192.0.2.7")
    assert got.cpe.HasField("registered_at") and list(got.cpe.last_events) == ["0 BOOTSTRAP"]
    listed, token = [], ""
    for _ in range(5):
        page = await s.devices.ListCpes(
            dv.ListCpesRequest(page_size=2, page_token=token, query=f"HG{t}"), metadata=s.metadata
        )
        listed += [c.id for c in page.cpes]
        token = page.next_page_token
        if not token:
            break
    assert listed == [f"00259E-HG{t}-SN{i}" for i in range(3)]
    args = struct_pb2.Struct()
    args.update(
        {
            "values": [
                [
                    "InternetGatewayDevice.ManagementServer.PeriodicInformInterval",
                    "300",
                    "xsd:unsignedInt",
                ]
            ]
        }
    )
    queued = await s.devices.QueueCpeTask(
        dv.QueueCpeTaskRequest(
            device_id=cpe_id, kind="setParameterValues", args=args, expires_in=3600
        ),
        metadata=s.metadata,
    )
    assert queued.connection_request == "not-sent"  # it gave no ConnectionRequestURL
    assert (queued.task.status, queued.task.created_by) == ("queued", "api:nbi-operator")
    task = await acs_store.get_task(nbi.pool, queued.task.id)
    assert task is not None and task["args"]["values"][0][1] == "300"
    assert queued.task.HasField("expires_at")
    delay = struct_pb2.Struct()
    delay.update({"delay_seconds": 30})
    inform = await s.devices.QueueCpeTask(
        dv.QueueCpeTaskRequest(device_id=cpe_id, kind="scheduleInform", args=delay),
        metadata=s.metadata,
    )
    stored = await acs_store.get_task(nbi.pool, inform.task.id)
    assert stored is not None and stored["args"] == {"delay_seconds": 30}  # an int, not 30.0
    for request, code in (
        (dv.QueueCpeTaskRequest(device_id=cpe_id, kind="fly"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            dv.QueueCpeTaskRequest(device_id=cpe_id, kind="getParameterValues"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (dv.QueueCpeTaskRequest(device_id="no-such-cpe", kind="reboot"), grpc.StatusCode.NOT_FOUND),
    ):
        exc = await _fails(s.devices.QueueCpeTask(request, metadata=s.metadata))
        assert exc.code() == code, request
    missing = await _fails(s.devices.GetCpe(dv.GetCpeRequest(id="no-such"), metadata=s.metadata))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    # A bulk run for the three CPEs by product class and a parameter's value, as the HTTP API.
    bulk = await s.devices.QueueCpeBulk(
        dv.QueueCpeBulkRequest(
            filter=dv.CpeFilter(
                product_class=f"HG{t}",
                parameter_name="InternetGatewayDevice.DeviceInfo.SoftwareVersion",
                parameter_value="1.2.3",
            ),
            kind="reboot",
            rate=10,
        ),
        metadata=s.metadata,
    )
    assert (bulk.bulk.devices, bulk.bulk.status, bulk.bulk.rate) == (3, "running", 10.0)
    assert dict(bulk.bulk.counts) == {"queued": 3} and bulk.bulk.created_by == "api:nbi-operator"
    got_bulk = await s.devices.GetCpeBulk(
        dv.GetCpeBulkRequest(id=bulk.bulk.id), metadata=s.metadata
    )
    assert got_bulk.bulk.filter.product_class == f"HG{t}"
    for request, code in (
        (dv.QueueCpeBulkRequest(kind="reboot"), grpc.StatusCode.INVALID_ARGUMENT),  # no filter
        (
            dv.QueueCpeBulkRequest(filter=dv.CpeFilter(oui="00259E"), kind="fly"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            dv.QueueCpeBulkRequest(filter=dv.CpeFilter(tags=["nobody"]), kind="reboot"),
            grpc.StatusCode.NOT_FOUND,
        ),
    ):
        exc = await _fails(s.devices.QueueCpeBulk(request, metadata=s.metadata))
        assert exc.code() == code, request
    # ONUs as the VOLTHA sync leaves them, one bound to alice, with optics read.
    stack = f"lab{t.lower()}"
    for dev_id, kind, serial in (
        ("olt1", "olt", f"OLT{t}"),
        ("onu1", "onu", f"ONU{t}1"),
        ("onu2", "onu", f"ONU{t}2"),
    ):
        await nbi.pool.execute(
            "INSERT INTO voltha_devices (stack, id, kind, type, parent_id, pon_port, onu_id, "
            "serial, admin_state, oper_status, connect_status) VALUES ($1, $2, $3, 'brcm', "
            "$4, 1, 3, $5, 'ENABLED', 'ACTIVE', 'REACHABLE')",
            stack,
            dev_id,
            kind,
            "olt1" if kind == "onu" else "",
            serial,
        )
    await nbi.pool.execute(
        "INSERT INTO voltha_ports (stack, device_id, port_no, label, type, admin_state, "
        "oper_status) VALUES ($1, 'onu1', 16, 'uni-16', 'ETHERNET_UNI', 'ENABLED', 'ACTIVE')",
        stack,
    )
    await voltha_store.put_binding(nbi.pool, voltha_store.Binding(f"ONU{t}1", "alice", 100, 202))
    await nbi.cache.client.set(
        nbi.cache.key(f"voltha:ONU{t}1", "optics"), pack({"rx_dbm": -21.5, "tx_dbm": 2.1})
    )
    onu = await s.devices.GetOnu(dv.GetOnuRequest(key=f"ONU{t}1"), metadata=s.metadata)
    assert (onu.onu.id, onu.onu.parent_id, onu.onu.subscriber) == ("onu1", "olt1", "alice")
    assert [p.label for p in onu.ports] == ["uni-16"]
    assert (onu.binding.s_tag, onu.binding.c_tag, onu.binding.tp_id) == (100, 202, 64)
    assert onu.optics["rx_dbm"] == -21.5
    bare = await s.devices.GetOnu(dv.GetOnuRequest(key=f"ONU{t}2"), metadata=s.metadata)
    assert not bare.HasField("binding") and not bare.HasField("optics")
    onus = await s.devices.ListOnus(dv.ListOnusRequest(stack=stack), metadata=s.metadata)
    assert [o.serial for o in onus.onus] == [f"ONU{t}1", f"ONU{t}2"]
    olt_as_onu = await _fails(
        s.devices.GetOnu(dv.GetOnuRequest(key=f"OLT{t}"), metadata=s.metadata)
    )
    assert olt_as_onu.code() == grpc.StatusCode.NOT_FOUND


# --- Watch ---------------------------------------------------------------------------------


async def test_watch_rejects_a_bad_cursor_and_says_when_events_are_gone(nbi: NbiServer) -> None:
    s = nbi.stubs("viewer")
    bad = await _fails(
        _first(
            s.sessions.WatchSessions(
                ss.WatchSessionsRequest(cursor="yesterday"), metadata=s.metadata
            )
        )
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    await stream.publish(nbi.cache, "daemon.test", {})  # the stream holds something
    first = await _first(
        s.sessions.WatchSessions(ss.WatchSessionsRequest(cursor="1-0"), metadata=s.metadata)
    )
    assert first.HasField("gap") and first.gap.after == "1-0"
    assert stream.parse_id(first.gap.oldest) is not None
    everything = await _first(
        s.sessions.WatchSessions(ss.WatchSessionsRequest(cursor="0-0"), metadata=s.metadata)
    )
    assert not everything.HasField("gap") and everything.cursor == "0-0"
    now = await _first(s.sessions.WatchSessions(ss.WatchSessionsRequest(), metadata=s.metadata))
    assert now.cursor == await stream.last_id(nbi.cache)


class Watcher:
    """A billing client: keeps each event and the cursor of the last one it processed."""

    def __init__(self, stubs: Stubs, cursor: str) -> None:
        self.stubs = stubs
        self.cursor = cursor
        self.events: list[ss.SessionEvent] = []
        self.gaps = 0
        self.connects = 0

    async def follow(self, until: Callable[[], bool], seconds: float) -> str:
        """Watch from the cursor until ``until()`` (then cut the call: "cut"), the server
        ends the call ("ended: CODE"), or ``seconds`` pass."""
        self.connects += 1
        call = self.stubs.sessions.WatchSessions(
            ss.WatchSessionsRequest(cursor=self.cursor, max_batch=200),
            metadata=self.stubs.metadata,
        )
        try:
            async with asyncio.timeout(seconds):
                async for response in call:
                    self.gaps += response.HasField("gap")
                    for event in response.events:
                        self.events.append(event)
                        self.cursor = event.cursor
                    if until():
                        call.cancel()
                        return "cut"
        except grpc.aio.AioRpcError as exc:
            return f"ended: {exc.code().name}"
        return "stream ended"


async def test_watch_cut_and_resumed_while_10000_accounting_records_flow(
    nbi: NbiServer,
) -> None:
    sessions, interims = 2_500, 2  # Start, 2 Interims, Stop: 10,000 records
    prefix = "w" + _tag()
    watcher = Watcher(nbi.stubs("viewer"), await stream.last_id(nbi.cache))
    run = AcctRun()
    t0 = time.monotonic()
    sender = asyncio.create_task(
        send_accounting(nbi.acct_port, sessions, interims=interims, prefix=prefix, run=run)
    )
    mine = lambda: sum(1 for e in watcher.events if e.acct_session_id.startswith(prefix))  # noqa: E731
    # 1. The client goes away in the middle (its connection cut) and comes back after a while.
    assert await watcher.follow(lambda: mine() >= 2_500, 30) == "cut"
    await asyncio.sleep(0.5)
    # 2. The API daemon restarts under it: the Watch ends UNAVAILABLE (the drain), the
    #    client reconnects once the new process is up.
    follow = asyncio.create_task(watcher.follow(lambda: False, 60))
    async with asyncio.timeout(30):
        while mine() < 5_000:
            await asyncio.sleep(0.01)
    restart = asyncio.create_task(asyncio.to_thread(nbi.restart_api))
    assert await follow == "ended: UNAVAILABLE"
    restarted_in = await restart
    # 3. Resume until every record the NAS had acknowledged has come.
    await sender
    want = expected_events(run.sent, interims)
    assert len(want) == 10_000 and run.acked == 10_000

    def seen() -> set[tuple[str, str, int]]:
        kinds = {ss.SESSION_EVENT_KIND_START: "start", ss.SESSION_EVENT_KIND_INTERIM: "interim"}
        return {
            (e.acct_session_id, kinds.get(e.kind, "stop"), e.session_time)
            for e in watcher.events
            if e.acct_session_id.startswith(prefix)
        }

    assert await watcher.follow(lambda: want <= seen(), 60) == "cut"
    took = time.monotonic() - t0
    got = [e for e in watcher.events if e.acct_session_id.startswith(prefix)]
    missing = want - seen()
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:3]}"
    # At least once, and no more than that: the server never repeats an event after the
    # cursor a client resumes from (cursors only grow), and a record appears twice only as
    # two stream entries of one record (a NAS retransmit published again, same record key).
    cursors = [stream.parse_id(e.cursor) for e in watcher.events]
    assert all(a < b for a, b in itertools.pairwise(cursors))  # type: ignore[operator]
    keys = [e.record_key for e in got]
    assert all(keys)
    assert len(keys) - len(set(keys)) <= run.retransmits
    assert watcher.gaps == 0 and watcher.connects == 3
    ledger = await nbi.pool.fetchval(
        "SELECT count(*) FROM accounting_events WHERE acct_session_id LIKE $1", prefix + "-%"
    )
    assert ledger == 10_000
    stops = [e for e in got if e.kind == ss.SESSION_EVENT_KIND_STOP]
    assert all(e.reason == ss.STOP_REASON_STOP and e.terminate_cause == 1 for e in stops)
    print(
        f"10,000 records in {took:.1f} s through a cut and an API restart "
        f"({restarted_in:.1f} s), {len(got) - len(want)} repeats, {run.retransmits} retransmits"
    )
