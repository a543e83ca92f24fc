"""The authentication history (issue 21): every Accept and Reject recorded with who, where,
how, why and what was given; rejects on the event stream; a login linked to the session it
started; `netd auth-log USER`. On main nothing of this existed (rejects only in the log)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from daemons import resources
from daemons.radius import authlog as pure
from daemons.radius.auth import Method, Outcome
from daemons.radius.authlog_writer import AuthLogWriter
from daemons.radius.codec import Attr, Code, Packet, encode_request, hide_password
from daemons.radius.dictionary import ReplyAttr
from daemons.store import authlog, stream
from tests.radius.conftest import SECRET, RadiusServer
from tests.radius.test_service import send_raw
from tests.support import netd_env

PORT_ID = b"olt7/1/1:42"


def login(radius: RadiusServer, user: bytes, password: bytes) -> int | None:
    auth = os.urandom(16)
    raw = encode_request(
        Code.ACCESS_REQUEST,
        7,
        [
            (Attr.USER_NAME, user),
            (Attr.USER_PASSWORD, hide_password(password, SECRET, auth)),
            (87, PORT_ID),  # NAS-Port-Id
            (Attr.CALLING_STATION_ID, b"aa-bb-cc-00-00-07"),
        ],
        SECRET,
        auth,
    )
    reply = send_raw(radius, raw, wait=2)
    return reply[0] if reply else None


def start(radius: RadiusServer, user: bytes) -> None:
    raw = encode_request(
        Code.ACCOUNTING_REQUEST,
        8,
        [
            (Attr.USER_NAME, user),
            (40, (1).to_bytes(4, "big")),
            (44, b"al-1"),
            (87, PORT_ID),
        ],
        SECRET,
        message_auth=False,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(raw, ("127.0.0.1", radius.acct_port))
        assert sock.recv(4096)[0] == Code.ACCOUNTING_RESPONSE


def auth_log_cli(radius: RadiusServer, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = netd_env(
        {
            "NETD_DATABASE_URL": radius.database,
            "NETD_REDIS_URL": radius.redis_url,
            "NETD_REDIS_KEY_PREFIX": radius.prefix,
            "NETD_SECRETS_KEY": radius.key.hex(),
            "NETD_LOG_LEVEL": "warning",
            "NETD_POLICIES_DIR": str(resources.path("policies")),
            "NETD_STATE_DIR": str(tmp / "state"),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", "auth-log", *args, "--json"],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_accepts_and_rejects_are_recorded(radius: RadiusServer, tmp_path: Path) -> None:
    before = await stream.last_id(radius.cache)
    t0 = time.time()
    assert await asyncio.to_thread(login, radius, b"alice", b"wrong") == Code.ACCESS_REJECT
    assert await asyncio.to_thread(login, radius, b"alice", b"pw1") == Code.ACCESS_ACCEPT
    assert await asyncio.to_thread(login, radius, b"nobody", b"x") == Code.ACCESS_REJECT
    await asyncio.to_thread(start, radius, b"alice")

    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = await authlog.list_auth_events(radius.pool, username="alice")
        if len(rows) >= 2 and rows[0]["session"]:
            break
        await asyncio.sleep(0.2)
    accept, reject = rows[0], rows[1]
    assert (reject["result"], reject["reason"], reject["method"]) == (
        "reject",
        "bad_password",
        "pap",
    )
    assert (accept["result"], accept["reason"], accept["plan"]) == ("accept", "ok", "fiber-100")
    assert accept["nas"] == "lo" and accept["nas_port"] == PORT_ID.decode()
    assert accept["calling_station"] == "aa-bb-cc-00-00-07"
    assert accept["given"] == {"Framed-Pool": "fiber"}
    assert accept["session"] and reject["session"] is None  # login -> session
    assert accept["at"].timestamp() >= t0 - 1  # type: ignore[attr-defined]
    unknown = await authlog.list_auth_events(radius.pool, username="nobody")
    assert [r["reason"] for r in unknown] == ["unknown_user"]
    only = await authlog.list_auth_events(radius.pool, username="alice", result="reject")
    assert [r["id"] for r in only] == [reject["id"]]

    # Rejects on the event stream, for realtime consumers.
    entries = await stream.read_after(radius.cache, before, 200)
    kinds = [(kind, data.get("user"), data.get("reason")) for _, kind, data in entries]
    assert ("auth.reject", "alice", "bad_password") in kinds
    assert ("auth.reject", "nobody", "unknown_user") in kinds
    assert not any(k == "auth.accept" for k, _, _ in kinds)

    # netd auth-log USER: the same records, newest first.
    out = await asyncio.to_thread(auth_log_cli, radius, tmp_path, "alice")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["result"] for x in lines[:2]] == ["accept", "reject"]
    assert lines[0]["session"] == accept["session"]
    bad = await asyncio.to_thread(auth_log_cli, radius, tmp_path, "alice", "--since", "noon")
    assert bad.returncode == 2 and "--since 'noon' is not an ISO 8601 time" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("path", ["c", "pure"])
async def test_copied_records_are_the_rows(
    radius: RadiusServer, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's binary COPY tuples (``authlog.line``, issue 30) store exactly the row
    ``authlog.row`` makes, including text a NAS sends that PostgreSQL refuses as it is
    (NUL, invalid UTF-8), a numeric NAS-Port, a NULL plan and what an Accept gave; made by
    the C extension (where it takes them) or by the pure path, as without a compiler."""
    if path == "pure":
        monkeypatch.setattr(pure, "_fast", None)
    else:
        assert pure.compiled() is not None, "daemons.radius._authlog was not built"

    def pkt(*attrs: tuple[int, bytes]) -> Packet:
        return Packet(Code.ACCESS_REQUEST, 1, bytes(16), attrs, b"")

    accept = Outcome(
        Code.ACCESS_ACCEPT,
        Method.PAP,
        "ok",
        (ReplyAttr("Framed-IP-Address", "100.64.0.9"), ReplyAttr("Session-Timeout", 60)),
        (),
        "fiber-100",
    )
    reject = Outcome(Code.ACCESS_REJECT, Method.CHAP, "bad_password")
    cases = [
        (pkt((87, b"olt1/2\x00\x00"), (31, b"aa\xffbb")), "ünïcode", accept),
        (pkt((5, (70000).to_bytes(4, "big"))), "copy-two", reject),
        (pkt(), None, reject),
        (pkt((87, b"olt1/3"), (31, b"aa-bb"), (1, b"plain")), "plain", accept),
    ]
    now = time.time()
    nas = f"nas-é-{path}"
    rows = [pure.row(p, nas, u, o, now + i) for i, (p, u, o) in enumerate(cases)]
    lines = [pure.line(p, nas, u, o, now + i) for i, (p, u, o) in enumerate(cases)]
    await authlog.copy_auth_lines(radius.pool, lines)
    got = await radius.pool.fetch(
        f"SELECT {', '.join(pure.COLUMNS)} FROM radius_auth_log WHERE nas = $1 ORDER BY at", nas
    )
    assert len(got) == len(rows)
    for stored, want in zip(got, rows, strict=True):
        assert abs((stored["at"] - want[0]).total_seconds()) <= 1e-6
        assert (*tuple(stored)[1:9], json.loads(stored["given"])) == (
            *want[1:9],
            json.loads(want[9]),
        )


async def test_the_history_is_read_through_its_cheap_index(radius: RadiusServer) -> None:
    """Migration 0022: one BRIN index (a bloom filter of the names and the range of times
    per 16 pages), the cheapest to keep up at the rate of logins. Once summarized (the
    writer asks every few seconds), a user's history is read from the few ranges that hold
    the name, not by reading every record; a purge resets the ranges it emptied, so the
    names of deleted records stop costing lookups."""
    kinds: dict[str, str] = {
        r["relname"]: r["amname"]
        for r in await radius.pool.fetch(
            "SELECT c.relname, a.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am a ON a.oid = c.relam "
            "WHERE i.indrelid = 'radius_auth_log'::regclass"
        )
    }
    assert kinds == {"radius_auth_log_pkey": "btree", "radius_auth_log_brin": "brin"}
    reject = Outcome(Code.ACCESS_REJECT, Method.PAP, "bad_password")
    old = time.time() - 10 * 86400

    def records(prefix: str, start: float) -> list[bytes]:
        return [
            pure.line(
                Packet(Code.ACCESS_REQUEST, 1, bytes(16), ((87, b"olt1/1/1:%d" % i),), b""),
                "nas-plan",
                f"{prefix}-{i % 2000}",
                reject,
                start + i / 1000,
            )
            for i in range(30_000)
        ]

    await authlog.copy_auth_lines(radius.pool, records("old-user", old))
    await authlog.copy_auth_lines(radius.pool, records("plan-user", time.time() - 60))
    ranges, blocks = await authlog.summarize_auth_log(radius.pool, 0)
    assert ranges >= blocks // authlog.PAGES_PER_RANGE > 20
    assert await authlog.summarize_auth_log(radius.pool, authlog.next_start(blocks)) == (
        0,
        blocks,
    )
    await radius.pool.execute("ANALYZE radius_auth_log")

    async def read(user: str) -> tuple[str, int]:
        """The plan of the user's lookup (the API's query) and the heap blocks it read."""
        plan = "\n".join(
            r[0]
            for r in await radius.pool.fetch(
                "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) " + authlog._LIST,
                user,
                None,
                None,
                None,
                None,
                None,
                100,
            )
        )
        lossy = [ln for ln in plan.splitlines() if "Heap Blocks:" in ln]
        return plan, sum(int(w.split("=")[1]) for ln in lossy for w in ln.split() if "=" in w)

    plan, read_blocks = await read("plan-user-7")
    assert "radius_auth_log_brin" in plan, plan
    # The user's 15 records are in at most 15 ranges (16 pages each), and false positives
    # are rare: a small part of the table's pages.
    assert read_blocks <= 20 * authlog.PAGES_PER_RANGE < blocks / 2, plan
    rows = await authlog.list_auth_events(radius.pool, username="plan-user-7", limit=5)
    ids = [r["id"] for r in rows]
    assert len(rows) == 5 and ids == sorted(ids, reverse=True)
    assert {r["username"] for r in rows} == {"plan-user-7"}

    # The purge: the old records go, and their ranges no longer send lookups to them.
    _, before_purge = await read("old-user-7")
    assert before_purge > 0
    n, emptied = await authlog.purge_auth_events(radius.pool, time.time() - 86400)
    assert n == 30_000 and emptied and all(b % authlog.PAGES_PER_RANGE == 0 for b in emptied)
    await authlog.reset_ranges(radius.pool, emptied)
    plan, after_purge = await read("old-user-7")
    assert re.search(r"actual rows=0(\.00)? loops=1\)", plan.splitlines()[0]), plan
    assert after_purge < before_purge / 2, plan


async def test_the_writer_summarizes_what_it_wrote(
    radius: RadiusServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer summarizes the index ranges its records filled (so lookups need not read
    them whole); under a role that does not own the index it says so once, in one line,
    and goes on writing."""
    reject = Outcome(Code.ACCESS_REJECT, Method.PAP, "bad_password")
    pkt = Packet(Code.ACCESS_REQUEST, 1, bytes(16), ((87, b"olt2/1/1:1"),), b"")
    writer = AuthLogWriter(radius.pool, radius.cache, retention_days=90, interval=60)
    for i in range(6000):
        writer.add(pkt, "nas-summary", f"summary-{i}", reject, time.time())
    await writer.flush()
    await writer.summarize()
    assert writer.written == 6000
    left = await radius.pool.fetchval("SELECT brin_summarize_new_values('radius_auth_log_brin')")
    assert left == 0

    await radius.pool.execute(
        "DO $$ BEGIN CREATE ROLE netd_not_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    await radius.pool.execute("GRANT SELECT, INSERT ON radius_auth_log TO netd_not_owner")
    pool = await asyncpg.create_pool(
        radius.database, min_size=1, max_size=2, server_settings={"role": "netd_not_owner"}
    )
    assert pool is not None
    other = AuthLogWriter(pool, radius.cache, retention_days=90, interval=60)
    try:
        for round_ in range(2):
            other.add(pkt, "nas-summary", f"not-owner-{round_}", reject, time.time())
            await other.flush()
            with caplog.at_level(logging.WARNING, logger="netd.radius"):
                await other.summarize()
        assert other.written == 2
        said = [r.getMessage() for r in caplog.records if "not summarized" in r.getMessage()]
        assert len(said) == 1 and "does not own it" in said[0]
    finally:
        await other.close()
        await writer.close()
        await pool.close()
