"""The authentication history (issue 21): every Accept and Reject recorded with who, where,
how, why and what was given; rejects on the event stream; a login linked to the session it
started; `netd auth-log USER`. On main nothing of this existed (rejects only in the log)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemons import resources
from daemons.radius import authlog as pure
from daemons.radius.auth import Method, Outcome
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


async def test_the_history_is_read_through_its_cheap_indexes(radius: RadiusServer) -> None:
    """Migration 0022: the history's indexes are the ones cheapest to keep up at the rate of
    logins (a hash index by user, BRIN by time), and a user's history is still read through
    the index, not by a scan of every record."""
    kinds: dict[str, str] = {
        r["relname"]: r["amname"]
        for r in await radius.pool.fetch(
            "SELECT c.relname, a.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am a ON a.oid = c.relam "
            "WHERE i.indrelid = 'radius_auth_log'::regclass"
        )
    }
    assert kinds == {
        "radius_auth_log_pkey": "btree",
        "radius_auth_log_user_idx": "hash",
        "radius_auth_log_at_idx": "brin",
    }
    reject = Outcome(Code.ACCESS_REJECT, Method.PAP, "bad_password")
    now = time.time() - 3600
    lines = [
        pure.line(
            Packet(Code.ACCESS_REQUEST, 1, bytes(16), (), b""),
            "nas-plan",
            f"plan-user-{i % 2000}",
            reject,
            now + i / 1000,
        )
        for i in range(20_000)
    ]
    await authlog.copy_auth_lines(radius.pool, lines)
    await radius.pool.execute("ANALYZE radius_auth_log")
    plan = "\n".join(
        r[0]
        for r in await radius.pool.fetch(
            "EXPLAIN " + authlog._LIST, "plan-user-7", None, None, None, None, None, 100
        )
    )
    assert "radius_auth_log_user_idx" in plan, plan
    rows = await authlog.list_auth_events(radius.pool, username="plan-user-7", limit=5)
    ids = [r["id"] for r in rows]
    assert len(rows) == 5 and ids == sorted(ids, reverse=True)
