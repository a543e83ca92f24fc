"""The RADIUS daemon's layers at their seams, without a socket.

A transport is a list of datagrams (:class:`ListTransport`): it hands each one to a shell
as a UDP socket would, and collects the replies its ``sendto`` is given. The layers are
wired by ``service.assemble``, the daemon's own assembly, on the real embedded PostgreSQL
and Redis seeded by ``tests.stack``. Admission and the in-flight bound are also tested
alone, with no store.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from daemons import resources
from daemons.core.config import DatabaseConfig, RadiusConfig
from daemons.core.policies import load_policies
from daemons.core.ratelog import RateLimitedLog
from daemons.core.secrets import Sealer
from daemons.radius.admission import DRAINING, Admission, Admitted, Dropped, Resend
from daemons.radius.auth import Nas
from daemons.radius.codec import (
    Attr,
    Code,
    DropReason,
    check_response_authenticator,
    decode,
    encode_request,
    hide_password,
)
from daemons.radius.dictionary import Dictionary
from daemons.radius.inflight import Inflight
from daemons.radius.metrics import RadiusMetrics
from daemons.radius.service import Layers, assemble
from daemons.radius.shared import Drops, Job, Receiver
from daemons.radius.tables import NasTable, Tables
from daemons.store import radius as store
from daemons.store.cache import Cache
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls
from tests.stack import seeded_stores

SECRET = b"seam-s3cret"
NAS_ADDR = ("127.0.0.1", 40000)
STRANGER = ("192.0.2.9", 40000)
ACCT_STATUS, SESSION_ID, SESSION_TIME = 40, 44, 46
START, STOP, INTERIM = 1, 2, 3


class ListTransport:
    """A transport that is a list of datagrams: ``deliver`` hands each to its receiver,
    as a socket's protocol would; the replies sent back through it are kept in ``sent``."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any, /) -> None:
        self.sent.append((data, addr))

    def deliver(self, receiver: Receiver, datagrams: Sequence[tuple[bytes, Any]]) -> None:
        for data, addr in datagrams:
            receiver.received(data, addr, self)


def access_request(user: str, password: str, ident: int, secret: bytes = SECRET) -> bytes:
    auth = os.urandom(16)
    return encode_request(
        Code.ACCESS_REQUEST,
        ident,
        [(Attr.USER_NAME, user.encode()), (2, hide_password(password.encode(), secret, auth))],
        secret,
        authenticator=auth,
    )


def accounting_request(status: int, sid: str, ident: int, session_time: int = 0) -> bytes:
    return encode_request(
        Code.ACCOUNTING_REQUEST,
        ident,
        [
            (ACCT_STATUS, status.to_bytes(4, "big")),
            (SESSION_ID, sid.encode()),
            (Attr.USER_NAME, b"alice"),
            (SESSION_TIME, session_time.to_bytes(4, "big")),
        ],
        SECRET,
        message_auth=False,
    )


def code_of(reply: bytes, request: bytes) -> int:
    assert check_response_authenticator(reply, request[4:20], SECRET)
    return int(decode(reply).code)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


# --- admission and the in-flight bound, alone --------------------------------------------


def _admission(**cfg: Any) -> tuple[Admission, Inflight, CollectorRegistry]:
    config = RadiusConfig(**cfg)
    registry = CollectorRegistry()
    metrics = RadiusMetrics(registry)
    ratelog = RateLimitedLog(logging.getLogger("netd.radius"))
    tables = Tables(config, None, Sealer(bytes(32)), Dictionary(), metrics, ratelog)  # type: ignore[arg-type]
    tables.nas = NasTable(
        [Nas("lo", ipaddress.ip_network("127.0.0.1/32"), SECRET, "generic", False)]
    )
    inflight = Inflight(config.max_inflight, metrics, ratelog)
    return Admission(config, tables, inflight, metrics, Drops(metrics, ratelog)), inflight, registry


def test_admission_gives_a_verdict_for_bytes_and_a_peer() -> None:
    admission, _, registry = _admission()
    good = access_request("alice", "pw", 1)
    verdict = admission.admit(good, NAS_ADDR, accounting=False)
    assert isinstance(verdict, Admitted) and verdict.nas.name == "lo"
    assert admission.admit(good, STRANGER, accounting=False) == Dropped(DropReason.UNKNOWN_NAS)
    forged = access_request("alice", "pw", 2, secret=b"not-the-secret")
    assert admission.admit(forged, NAS_ADDR, accounting=False) == Dropped(
        DropReason.BAD_MESSAGE_AUTHENTICATOR
    )
    # Each port takes its own codes only.
    assert admission.admit(good, NAS_ADDR, accounting=True) == Dropped(DropReason.UNEXPECTED_CODE)
    acct = accounting_request(START, "s1", 3)
    assert admission.admit(acct, NAS_ADDR, accounting=False) == Dropped(DropReason.UNEXPECTED_CODE)
    assert isinstance(admission.admit(acct, NAS_ADDR, accounting=True), Admitted)
    assert admission.admit(b"\x01\x00", NAS_ADDR, accounting=False) == Dropped(DropReason.TRUNCATED)
    assert sample(registry, "netd_radius_drops_total", nas="", reason="unknown_nas") == 1
    assert sample(registry, "netd_radius_drops_total", nas="lo", reason="unexpected_code") == 2


def test_a_retransmit_is_dropped_while_decided_then_answered_from_the_cache() -> None:
    admission, _, registry = _admission()
    request = access_request("alice", "pw", 7)
    verdict = admission.admit(request, NAS_ADDR, accounting=False)
    assert isinstance(verdict, Admitted)
    admission.taking(verdict.key, verdict.now)
    assert admission.admit(request, NAS_ADDR, accounting=False) == Dropped(
        DropReason.DUPLICATE_IN_PROGRESS
    )
    back = ListTransport()
    job = Job(verdict.pkt, verdict.nas, NAS_ADDR, back, verdict.key, time.perf_counter(), "alice")
    admission.answer(Code.ACCESS_REJECT, job, [], "pap")
    [(reply, to)] = back.sent
    assert to == NAS_ADDR and code_of(reply, request) == Code.ACCESS_REJECT
    assert admission.admit(request, NAS_ADDR, accounting=False) == Resend(reply)
    assert admission.handled == 1
    assert sample(registry, "netd_radius_duplicates_total", nas="lo") == 1


def test_draining_admits_nothing_and_counts_nothing() -> None:
    admission, inflight, registry = _admission()
    inflight.draining = True
    assert admission.admit(access_request("a", "b", 1), NAS_ADDR, accounting=False) is DRAINING
    assert sample(registry, "netd_radius_drops_total", nas="lo", reason="unknown_nas") == 0


def test_the_rate_limit_is_per_nas_and_port() -> None:
    admission, _, registry = _admission(nas_rate_limit=0.001, nas_rate_burst=2)
    verdicts = [
        admission.admit(access_request("a", "b", i), NAS_ADDR, accounting=False) for i in range(3)
    ]
    assert [type(v) for v in verdicts] == [Admitted, Admitted, Dropped]
    assert verdicts[2] == Dropped(DropReason.RATE_LIMITED)
    # The accounting port has a bucket of its own: logins do not starve accounting.
    acct = accounting_request(START, "s1", 1)
    assert isinstance(admission.admit(acct, NAS_ADDR, accounting=True), Admitted)
    assert sample(registry, "netd_radius_drops_total", nas="lo", reason="rate_limited") == 1


async def test_inflight_counts_held_requests_and_tasks_once() -> None:
    registry = CollectorRegistry()
    metrics = RadiusMetrics(registry)
    inflight = Inflight(16, metrics, RateLimitedLog(logging.getLogger("netd.radius")))
    held = [3]
    inflight.register(lambda: held[0])
    gate = asyncio.Event()
    ran: list[str] = []

    async def work(name: str) -> None:
        await gate.wait()
        ran.append(name)
        if name == "batch":
            inflight.spawn(work("late"))  # spawned from a task: wait() waits for it too

    inflight.spawn(work("batch"), batch=True)  # its requests are counted in held already
    inflight.spawn(work("lease"))
    assert inflight.load() == 3 + 1
    gate.set()
    await asyncio.wait_for(inflight.wait(), 5)
    assert sorted(ran) == ["batch", "late", "lease"] and inflight.load() == 3


# --- the shells on real stores, driven by a list of datagrams ------------------------------


@dataclass
class Handles:
    """What the shells reach the stores through (``shared.Stores``); swappable."""

    pool: asyncpg.Pool
    cache: Cache


@dataclass
class Stack:
    layers: Layers
    stores: Handles
    registry: CollectorRegistry
    state_dir: Path
    dsn: str


@pytest.fixture
async def stack(store_urls: StoreUrls, tmp_path: Path) -> AsyncIterator[Stack]:
    async with seeded_stores(store_urls.postgres, store_urls.redis, "s_", "s") as st:
        await st.add_nas("lo", "127.0.0.1/32", SECRET)
        await st.add_subscribers(
            (store.SubscriberRow(user, plan=plan), pw, "none")
            for user, pw, plan in (("alice", "pw1", "fiber-100"), ("frank", "pw6", "default"))
        )
        handles = Handles(st.pool, st.cache)
        registry = CollectorRegistry()
        config = RadiusConfig(max_inflight=16, acct_batch_max=1000, acct_batch_window=1.0)
        layers = assemble(config, handles, st.sealer, Dictionary(), registry, tmp_path / "state")
        policies = load_policies(resources.path("policies"), 1)
        layers.tables.check_policies(policies)
        layers.tables.apply_policies(policies)
        await layers.tables.start()
        try:
            yield Stack(layers, handles, registry, tmp_path / "state", st.dsn)
        finally:
            layers.inflight.draining = True
            await asyncio.wait_for(layers.inflight.wait(), 10)
            layers.auth.close()


async def settle(stack: Stack) -> None:
    """Commit what accounting holds, and wait for every task the datagrams started."""
    stack.layers.acct.commit_now()
    await asyncio.wait_for(stack.layers.inflight.wait(), 10)


async def test_auth_shell_answers_a_list_of_datagrams(stack: Stack) -> None:
    wire = ListTransport()
    ok = access_request("alice", "pw1", 1)
    wrong = access_request("alice", "nope", 2)
    nobody = access_request("nobody", "x", 3)
    status = encode_request(Code.STATUS_SERVER, 4, [], SECRET, authenticator=os.urandom(16))
    wire.deliver(
        stack.layers.auth, [(ok, NAS_ADDR), (wrong, NAS_ADDR), (nobody, NAS_ADDR), (ok, STRANGER)]
    )
    wire.deliver(stack.layers.auth, [(status, NAS_ADDR)])  # answered at once, no lookup
    assert len(wire.sent) == 1 and code_of(wire.sent[0][0], status) == Code.ACCESS_ACCEPT
    await settle(stack)
    replies = {decode(r).identifier: r for r, _ in wire.sent}
    assert sorted(replies) == [1, 2, 3, 4]  # the stranger's datagram got nothing
    assert code_of(replies[1], ok) == Code.ACCESS_ACCEPT
    assert code_of(replies[2], wrong) == Code.ACCESS_REJECT
    assert code_of(replies[3], nobody) == Code.ACCESS_REJECT
    # A retransmit is answered from the duplicate cache, the same bytes, not decided again.
    wire.deliver(stack.layers.auth, [(ok, NAS_ADDR)])
    assert wire.sent[-1][0] == replies[1]
    assert sample(stack.registry, "netd_radius_duplicates_total", nas="lo") == 1
    assert sample(stack.registry, "netd_radius_drops_total", nas="", reason="unknown_nas") == 1
    assert sample(stack.registry, "netd_radius_rejects_total", nas="lo", reason="bad_password")


async def test_acct_shell_acknowledges_only_what_the_ledger_holds(stack: Stack) -> None:
    wire = ListTransport()
    sid = "seam-" + os.urandom(4).hex()
    records = [
        accounting_request(START, sid, 1),
        accounting_request(INTERIM, sid, 2, 60),
        accounting_request(STOP, sid, 3, 120),
    ]
    wire.deliver(stack.layers.acct, [(r, NAS_ADDR) for r in records])
    assert wire.sent == []  # nothing is acknowledged before the commit
    await settle(stack)
    assert sorted(decode(r).identifier for r, _ in wire.sent) == [1, 2, 3]
    assert all(decode(r).code == Code.ACCOUNTING_RESPONSE for r, _ in wire.sent)
    pool = stack.stores.pool
    count = "SELECT count(*) FROM accounting_events WHERE acct_session_id = $1"
    assert await pool.fetchval(count, sid) == 3
    assert await pool.fetchval(
        "SELECT stopped_at IS NOT NULL FROM radius_sessions WHERE acct_session_id = $1", sid
    )
    # The Stop again: the same Accounting-Response from the cache, no second ledger row.
    wire.deliver(stack.layers.acct, [(records[2], NAS_ADDR)])
    await settle(stack)
    stop_reply = next(r for r, _ in wire.sent if decode(r).identifier == 3)
    assert len(wire.sent) == 4 and wire.sent[3][0] == stop_reply
    assert await pool.fetchval(count, sid) == 3
    assert sample(stack.registry, "netd_radius_acct_records_total", nas="lo", status="stop") == 1


async def test_acct_shell_spools_while_postgres_is_away_then_replays(stack: Stack) -> None:
    working = stack.stores.pool
    gone = await create_pool(DatabaseConfig(), stack.dsn, "test")
    await gone.close()  # every call on it fails as PostgreSQL being away does
    stack.stores.pool = gone
    wire = ListTransport()
    sid = "spool-" + os.urandom(4).hex()
    wire.deliver(stack.layers.acct, [(accounting_request(START, sid, 9), NAS_ADDR)])
    stack.layers.acct.commit_now()
    deadline = time.monotonic() + 10
    while not wire.sent and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(wire.sent) == 1  # acknowledged: fsynced in the spool
    assert list((stack.state_dir / "spool" / "accounting").iterdir())
    assert sample(stack.registry, "netd_radius_acct_spooled_total") == 1
    count = "SELECT count(*) FROM accounting_events WHERE acct_session_id = $1"
    assert await working.fetchval(count, sid) == 0
    stack.stores.pool = working  # PostgreSQL is back: the replay moves the record in
    await asyncio.wait_for(stack.layers.inflight.wait(), 15)
    assert await working.fetchval(count, sid) == 1
    assert sample(stack.registry, "netd_radius_acct_replayed_total") == 1


async def test_overload_is_shed_across_both_shells(stack: Stack) -> None:
    wire = ListTransport()
    # max_inflight 16: accounting holds 12 (one batch, uncommitted), auth gets 4 more.
    wire.deliver(
        stack.layers.acct,
        [(accounting_request(START, f"ov-{i}", i), NAS_ADDR) for i in range(12)],
    )
    wire.deliver(
        stack.layers.auth, [(access_request("alice", "pw1", 100 + i), NAS_ADDR) for i in range(6)]
    )
    assert stack.layers.inflight.load() == 16
    assert sample(stack.registry, "netd_radius_drops_total", nas="lo", reason="overload") == 2
    await settle(stack)
    assert len(wire.sent) == 16
    assert sample(stack.registry, "netd_radius_inflight_peak") == 16


async def test_acct_batches_start_when_a_commit_slot_is_free(stack: Stack) -> None:
    """Issue 30: no fixed window. By default (radius.acct_batch_window 0), with one commit
    slot, what arrives together commits at the next turn of the loop, and what arrives
    during that commit goes as one batch when it returns (batches grow with the load). On
    main a batch
    waited for its window (3 ms by default; here 1 s) or acct_batch_max records."""
    acct = stack.layers.acct
    default = RadiusConfig().acct_batch_window  # 0 now; 0.003 on main
    acct.cfg = acct.cfg.model_copy(update={"acct_batch_window": default, "acct_commits": 1})
    wire = ListTransport()
    sid = "slot-" + os.urandom(4).hex()
    first = [accounting_request(START, f"{sid}-{i}", i) for i in range(3)]
    later = [accounting_request(START, f"{sid}-{i}", i) for i in range(3, 8)]
    t0 = time.monotonic()
    wire.deliver(acct, [(r, NAS_ADDR) for r in first])
    await asyncio.sleep(0)  # the loop turns: the first batch's commit starts
    assert acct.held() == 3 and not acct._pending
    wire.deliver(acct, [(r, NAS_ADDR) for r in later])  # while it runs: they wait
    await asyncio.sleep(0)
    assert len(acct._pending) == 5
    deadline = time.monotonic() + 10
    while len(wire.sent) < 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert len(wire.sent) == 8
    assert time.monotonic() - t0 < 0.9  # neither batch waited for the 1 s window
    assert sample(stack.registry, "netd_radius_acct_batch_records_count") == 2
    assert sample(stack.registry, "netd_radius_acct_batch_records_sum") == 8
