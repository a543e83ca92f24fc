"""Schemathesis against the daemon's own OpenAPI document: every operation, every role.

The schema is the one the running ``netd api`` serves at ``/openapi.json``. For each
operation and each of viewer, operator, admin and no token at all, Hypothesis generates
requests from it (valid ones, invalid ones the API must reject, and valid ones aimed at
resources that exist), sends them to the daemon and checks every answer: no 5xx, a status
code and content type the schema documents for the operation, headers and a body that
match the schema of that status.

A failure fails the test with every falsifying request as a curl command; ``pytest
--hypothesis-seed=N`` replays a run.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as hst
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from daemons.core.secrets import Sealer
from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.radius.admin import credentials
from daemons.store import accounting, pools
from daemons.store import api as api_store
from daemons.store import radius as store
from daemons.store.events import append_event
from tests.api.conftest import NAS_SECRET, ROLES, ApiServer
from tests.radius.nas_sim import NasSimulator

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Per operation: the admin, who gets past authorization and validation, gets the most; the
# other callers are mostly refused (403, or 401 without a token: tests/security also calls
# every route and method without one), so fewer examples find the same: about 50 s in all.
MAX_EXAMPLES = 25
EXAMPLES = {"admin": MAX_EXAMPLES, "operator": 10, "viewer": 10, None: 8}
# A Disconnect or CoA waits for the NAS (which answers here at once); far past this is a hang.
DEADLINE = timedelta(seconds=5)
# An infinite Server-Sent Events stream: a generated call would never end. It is checked
# by test_event_stream below instead.
STREAM = "GET /api/v1/events/stream"
CALLERS = (*ROLES, None)
# RADIUS attributes of every kind of value (the schema only says "a name: a string or an
# integer"), so that plan and CoA bodies reach the encoder.
ATTRIBUTES = (
    "Session-Timeout",  # integer
    "Service-Type",  # integer with named values
    "Event-Timestamp",  # date
    "Framed-IP-Address",  # ipaddr
    "Delegated-IPv6-Prefix",  # ipv6prefix
    "Framed-Interface-Id",  # ifid
    "Reply-Message",  # string
    "Class",  # octets
    "Tunnel-Type",  # tagged integer
    "Tunnel-Password",  # tagged, salt-encrypted
    "Mikrotik-Rate-Limit",  # vendor-specific string
    "Huawei-Input-Average-Rate",  # vendor-specific integer
)
_values = hst.one_of(
    hst.integers(), hst.text(max_size=300), hst.sampled_from(["1", "L2TP", "::/64"])
)
_attributes = hst.dictionaries(hst.sampled_from(ATTRIBUTES), _values, min_size=1, max_size=3)
BODIES = {
    "PUT /api/v1/plans/{name}": hst.fixed_dictionaries({"attributes": _attributes}),
    "POST /api/v1/sessions/{session_id}/coa": hst.fixed_dictionaries(
        {"attributes": _attributes},
        optional={"plan": hst.sampled_from(["fiber-100", "api-plan", "none-such"])},
    ),
}
LIVE = ("s-alice-1", "s-bob-1")
CLOSED = "s-carol-1"
CLEARED = "s-dave-1"  # what POST .../clear may close: the others stay live for the rest


@dataclass
class World:
    """Resources that exist, by the path parameter that names them, so that generated
    calls also reach handlers past their 404. Whatever a DELETE may remove is its own."""

    names: dict[str, list[str]]
    doomed: dict[str, list[str]]
    own_tokens: tuple[set[str], set[int]]


def _record(uid: str, user: str, status: AcctStatus, ip: str | None, now: float) -> AcctRecord:
    return AcctRecord(
        nas="bng1",
        status=status,
        acct_session_id="a-" + uid,
        unique_id=uid,
        idem_key=f"k-{uid}-{int(status)}",
        event_time=now,
        username=user,
        framed_ip=ip,
        session_time=0 if status == AcctStatus.START else 30,
        input_octets=0 if status == AcctStatus.START else 1234,
        output_octets=0 if status == AcctStatus.START else 5678,
        attributes={"NAS-IP-Address": "127.0.0.1"},
    )


@pytest.fixture(scope="module")
async def world(api: ApiServer) -> AsyncIterator[World]:
    # bng1 answers Disconnect and CoA at once, on loopback. Generated calls never change or
    # remove bng1 (see _spared), so no request of this test leaves 127.0.0.1.
    nas = NasSimulator(NAS_SECRET.encode())
    try:
        await api.pool.execute("UPDATE nas_clients SET coa_port = $1 WHERE name = 'bng1'", nas.port)
        sealer = Sealer(api.key)
        for name, network in (("bng-spare", "127.0.0.2/32"), ("bng-doomed", "127.0.0.3/32")):
            secret = sealer.seal(b"spare-secret", f"nas:{name}".encode())
            await store.add_nas(
                api.pool, store.NasRow(name, network, secret, "generic", True, 3799)
            )
        for user in ("dave", "erin"):
            row = credentials(store.SubscriberRow(user, plan="default"), "pw", "none", sealer)
            await store.upsert_subscriber(api.pool, api.cache, row)
        for plan in ("api-plan", "api-doomed"):
            await api_store.put_plan(api.pool, plan, {"download": "50M", "upload": "10M"})
        for i, name in enumerate(("fiber-100", "api-doomed")):  # pools of the same names
            await pools.add_pool(api.pool, name, [f"100.65.{i}.0/29"])
        await api_store.create_token(api.pool, "doomed-token", "viewer", "test")
        now = time.time()
        started = [
            _record(LIVE[0], "alice", AcctStatus.START, "100.64.0.10", now - 60),
            _record(LIVE[1], "bob", AcctStatus.START, None, now - 60),
            _record(CLOSED, "carol", AcctStatus.START, "100.64.0.12", now - 120),
            _record(CLEARED, "dave", AcctStatus.START, "100.64.0.13", now - 60),
        ]
        stopped = [_record(CLOSED, "carol", AcctStatus.STOP, "100.64.0.12", now - 90)]
        await accounting.ensure_partitions(api.pool, now)
        for batch in (started, stopped):
            _new, closed = await accounting.append_accounting(api.pool, batch)
            await accounting.update_live_sessions(api.cache, batch, closed)
        for i in range(3):
            await append_event(
                api.pool, "radius", "session.start", subject="alice", data={"n": i}, cache=api.cache
            )
        tokens = await api_store.list_tokens(api.pool, 0, 100)
        own = {t.name for t in tokens if t.name.startswith("test-")}
        yield World(
            names={
                "name": ["bng1", "bng-spare", "fiber-100", "default", "api-plan"],
                "username": ["alice", "bob", "carol"],
                "session_id": [*LIVE, CLOSED],
            },
            doomed={
                "name": ["bng-doomed", "api-doomed", "fiber-100", "doomed-token"],
                "username": ["dave", "erin"],
                "session_id": [CLEARED],
            },
            own_tokens=(own, {t.id for t in tokens if t.name in own}),
        )
    finally:
        nas.close()


@pytest.fixture(scope="module")
def schema(api: ApiServer) -> schemathesis.BaseSchema:
    # An explicit Config: a schemathesis.toml lying around must not change what CI checks.
    return schemathesis.openapi.from_url(
        f"{api.url}/openapi.json", config=schemathesis.Config(), timeout=10
    )


@dataclass
class Run:
    operations: int = 0
    calls: int = 0
    statuses: dict[str, set[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _operations(schema: schemathesis.BaseSchema) -> Iterator[APIOperation]:
    for result in schema.get_all_operations():
        yield result.ok()  # an operation the loader cannot read is itself a failure


def _names(operation: APIOperation, world: World) -> list[dict[str, str]]:
    """Path parameters naming resources that exist."""
    params = [p.name for p in operation.path_parameters]
    if len(params) != 1:
        return []
    doomed = operation.method.upper() == "DELETE" or operation.label.endswith("/clear")
    pool = world.doomed if doomed else world.names
    found = pool.get(params[0], [])
    return [{params[0]: n} for n in found if _spared(operation.label, n, world)]


def _spared(label: str, name: str, world: World) -> bool:
    """False for the calls a run must not make (whatever their answer would be)."""
    if label in ("DELETE /api/v1/tokens/{name}", "POST /api/v1/tokens/{name}/rotate"):
        # Revoking or rotating the token a run calls with turns every later call into a 401
        # (a rotation once the token cache's TTL has passed: a flake by timing): still
        # conforming, but it would test nothing more. Same name-or-id rule as the store's.
        names, ids = world.own_tokens
        return not (name in names or (name.isdigit() and len(name) < 10 and int(name) in ids))
    if label in ("PATCH /api/v1/nas/{name}", "DELETE /api/v1/nas/{name}"):
        # bng1 is where CoA and Disconnect go: it stays the simulator on loopback.
        return name != "bng1"
    return True


def _describe(exc: BaseException) -> str:
    """The failure as text with its notes (the falsifying example, the curl command)."""
    if isinstance(exc, BaseExceptionGroup) and not isinstance(exc, FailureGroup):
        return "\n".join(_describe(e) for e in exc.exceptions)  # Hypothesis: several bugs
    return "".join(traceback.format_exception_only(exc))


def _fuzz(
    operation: APIOperation,
    base_url: str,
    headers: dict[str, str],
    session: requests.Session,
    world: World,
    run: Run,
    examples: int,
) -> None:
    known = _names(operation, world)
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        *(operation.as_strategy(path_parameters=names) for names in known),
    ]
    if operation.label in BODIES:
        strategies.append(
            hst.tuples(hst.sampled_from(known or [{}]), BODIES[operation.label]).flatmap(
                lambda pb: operation.as_strategy(path_parameters=pb[0] or None, body=pb[1])
            )
        )
    strategy = hst.one_of(strategies).filter(
        lambda case: _spared(
            operation.label, str((case.path_parameters or {}).get("name", "")), world
        )
    )
    seen = run.statuses.setdefault(operation.label, set())

    # Generation-quality health checks (slow or filtered data) say nothing about the API.
    @settings(
        max_examples=examples,
        deadline=DEADLINE,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
    )
    @given(case=strategy)
    def check(case: Case) -> None:
        run.calls += 1
        answer = case.call_and_validate(
            base_url=base_url, session=session, headers=headers, checks=CHECKS, timeout=10
        )
        seen.add(answer.status_code)

    try:
        check()
    # Schemathesis's FailureGroup is a BaseExceptionGroup, not an Exception.
    except (Exception, BaseExceptionGroup) as exc:  # reported together below
        run.failures.append(f"=== {operation.label}\n{_describe(exc)}")


@pytest.mark.timeout(170)
@pytest.mark.parametrize("role", CALLERS, ids=[r or "anonymous" for r in CALLERS])
def test_every_operation(
    api: ApiServer, world: World, schema: schemathesis.BaseSchema, role: str | None
) -> None:
    run = Run()
    started = time.monotonic()
    logged = len(api.proc.output())
    with requests.Session() as session:
        for operation in _operations(schema):
            if operation.label == STREAM:
                continue
            run.operations += 1
            _fuzz(operation, api.url, api.headers(role), session, world, run, EXAMPLES[role])
    took = time.monotonic() - started
    print(f"\n{role or 'anonymous'}: {run.operations} operations, {run.calls} calls, {took:.1f} s")
    for label, statuses in run.statuses.items():
        print(f"  {label}: {sorted(statuses)}")
    # What the daemon logged as an error while answering: an unhandled exception (the
    # middleware's 500) or an audit row it could not write.
    errors = [
        line
        for line in api.proc.output()[logged:].splitlines()
        if line.startswith("{") and json.loads(line).get("level") in ("error", "critical")
    ]
    if errors:
        run.failures.append("=== the daemon logged errors\n" + "\n".join(errors[:20]))
    if run.failures:
        pytest.fail("\n\n".join(run.failures), pytrace=False)
    assert run.operations >= 25, "the schema lost operations"
    assert run.calls >= run.operations * EXAMPLES[role] // 2, "too few requests were generated"
    if role is None:
        assert not any(s < 400 for v in run.statuses.values() for s in v), run.statuses
    if role == "admin":  # the generated calls got past validation and the 404s
        assert sum(any(200 <= s < 300 for s in v) for v in run.statuses.values()) >= 20


@pytest.mark.parametrize("role", CALLERS, ids=[r or "anonymous" for r in CALLERS])
async def test_event_stream(api: ApiServer, role: str | None) -> None:
    """The one operation left out above: its first bytes, or the envelope for no token."""
    async with (
        api.client(role) as client,
        client.stream("GET", "/api/v1/events/stream", params={"kinds": "session."}) as answer,
    ):
        if role is None:
            assert answer.status_code == 401
            error = json.loads(await answer.aread())["error"]
            assert error["code"] == "unauthorized"
            assert error["request_id"] == answer.headers["x-request-id"]
            return
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        first = await anext(answer.aiter_text())
        assert first.startswith("retry: 2000\n")
