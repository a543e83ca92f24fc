"""Accounting against the running daemon: each status type from pyrad and radclient,
acknowledged only once committed, idempotent, 64-bit counters, sessions and live sessions."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from pyrad import packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

from daemons.radius.codec import Attr, Code, encode_request
from daemons.radius.dictionary import SHIPPED
from daemons.store import accounting
from daemons.store import radius as store
from tests.radius.conftest import SECRET, RadiusServer, wait_until

DICT = Dictionary(str(SHIPPED))
BAD_ACCT = {
    "truncated": b"\x04\x02\x00",
    "length_mismatch": b"\x04\x02\x00\x40" + bytes(16),
    "bad_attribute": b"\x04\x02\x00\x16" + bytes(16) + b"\x01\x00",
    "oversized": b"\x04\x02\x10\x01" + bytes(4200),
    "unknown_code": b"\x63\x02\x00\x14" + bytes(16),
    "unexpected_code": encode_request(
        Code.ACCESS_REQUEST, 3, [(Attr.USER_NAME, b"x")], SECRET, bytes(16)
    ),
    "bad_authenticator": encode_request(
        Code.ACCOUNTING_REQUEST, 3, [(40, b"\0\0\0\1"), (44, b"s")], b"not-the-secret"
    ),
    "malformed": encode_request(
        Code.ACCOUNTING_REQUEST, 4, [(Attr.USER_NAME, b"no-status")], SECRET
    ),
}


def client(radius: RadiusServer, secret: bytes = SECRET) -> Client:
    c = Client(server="127.0.0.1", acctport=radius.acct_port, secret=secret, dict=DICT)
    c.timeout, c.retries = 2, 1
    return c


def acct(c: Client, status: str, sid: str, user: str = "", **attrs: object) -> packet.Packet:
    req = c.CreateAcctPacket(User_Name=user) if user else c.CreateAcctPacket()
    req["Acct-Status-Type"] = status
    if sid:
        req["Acct-Session-Id"] = sid
    req["NAS-Port"] = 7
    for name, value in attrs.items():
        req[name.replace("_", "-")] = value
    reply = c.SendPacket(req)  # pyrad verifies the Response Authenticator
    assert reply.code == packet.AccountingResponse
    return reply


async def ledger(radius: RadiusServer, sid: str) -> list[dict[str, object]]:
    rows = await radius.pool.fetch(
        "SELECT status_type, username, input_octets, output_octets, session_time, "
        "terminate_cause, attributes FROM accounting_events WHERE acct_session_id = $1 "
        "ORDER BY id",
        sid,
    )
    return [dict(r) for r in rows]


async def test_start_interim_stop(radius: RadiusServer) -> None:
    c = client(radius)
    sid = uuid.uuid4().hex[:12]
    acct(c, "Start", sid, "grace", Framed_IP_Address="100.64.0.7")
    acct(
        c,
        "Interim-Update",
        sid,
        "grace",
        Acct_Session_Time=300,
        Acct_Input_Octets=1000,
        Acct_Output_Octets=5,
        Acct_Input_Gigawords=2,
    )
    acct(
        c,
        "Stop",
        sid,
        "grace",
        Acct_Session_Time=600,
        Acct_Input_Octets=2000,
        Acct_Output_Octets=10,
        Acct_Input_Gigawords=2,
        Acct_Terminate_Cause="User-Request",
    )
    rows = await ledger(radius, sid)
    assert [r["status_type"] for r in rows] == [1, 3, 2]
    assert rows[1]["input_octets"] == (2 << 32) + 1000  # RFC 2869 Gigawords
    assert rows[2]["terminate_cause"] == 1
    assert '"Framed-IP-Address": "100.64.0.7"' in str(rows[0]["attributes"])
    session = await radius.pool.fetchrow(
        "SELECT stopped_at IS NOT NULL AS closed, session_time, input_octets, host(framed_ip) "
        "AS ip, terminate_cause FROM radius_sessions WHERE acct_session_id = $1",
        sid,
    )
    assert session is not None and session["closed"] and session["session_time"] == 600
    assert session["input_octets"] == (2 << 32) + 2000 and session["ip"] == "100.64.0.7"


async def test_retransmits_are_recorded_once(radius: RadiusServer) -> None:
    c = client(radius)
    sid = uuid.uuid4().hex[:12]
    for delay in (0, 3, 7):  # a NAS retransmits with a new id and a larger Acct-Delay-Time
        acct(c, "Start", sid, "alice", Acct_Delay_Time=delay)
    acct(c, "Interim-Update", sid, "alice", Acct_Session_Time=60)
    acct(c, "Interim-Update", sid, "alice", Acct_Session_Time=60, Acct_Delay_Time=4)
    assert [r["status_type"] for r in await ledger(radius, sid)] == [1, 3]
    acct(c, "Stop", sid, "alice", Acct_Session_Time=90)


async def test_out_of_order_interim_and_stop_for_unknown_session(radius: RadiusServer) -> None:
    c = client(radius)
    sid = uuid.uuid4().hex[:12]
    acct(c, "Interim-Update", sid, "dave", Acct_Session_Time=600, Acct_Input_Octets=900)
    acct(c, "Interim-Update", sid, "dave", Acct_Session_Time=300, Acct_Input_Octets=400)
    row = await radius.pool.fetchrow(
        "SELECT session_time, input_octets FROM radius_sessions WHERE acct_session_id = $1", sid
    )
    assert row is not None and (row["session_time"], row["input_octets"]) == (600, 900)
    ghost = uuid.uuid4().hex[:12]
    acct(c, "Stop", ghost, "dave", Acct_Session_Time=5)  # never started: still recorded
    assert [r["status_type"] for r in await ledger(radius, ghost)] == [2]
    assert radius.alive()


async def test_live_sessions_drive_simultaneous_use(radius: RadiusServer) -> None:
    def auth() -> int:
        c = Client(server="127.0.0.1", authport=radius.port, secret=SECRET, dict=DICT)
        c.timeout, c.retries = 2, 1
        req = c.CreateAuthPacket(code=packet.AccessRequest, User_Name="alice")
        req["User-Password"] = req.PwCrypt("pw1")
        return int(c.SendPacket(req).code)

    assert auth() == packet.AccessAccept
    c = client(radius)
    sid = uuid.uuid4().hex[:12]
    acct(c, "Start", sid, "alice")
    assert await radius.cache.client.scard(store.sessions_key(radius.cache, "alice")) == 1
    assert auth() == packet.AccessReject  # fiber-100 allows one session
    acct(c, "Stop", sid, "alice", Acct_Session_Time=10)
    assert auth() == packet.AccessAccept


async def test_accounting_on_closes_the_nas_sessions(radius: RadiusServer) -> None:
    c = client(radius)
    sids = [uuid.uuid4().hex[:12] for _ in range(3)]
    for sid in sids:
        acct(c, "Start", sid, "erin")
    acct(c, "Accounting-On", "")
    open_rows = await radius.pool.fetchval(
        "SELECT count(*) FROM radius_sessions WHERE acct_session_id = ANY($1) "
        "AND stopped_at IS NULL",
        sids,
    )
    assert open_rows == 0
    assert await radius.cache.client.scard(store.sessions_key(radius.cache, "erin")) == 0
    acct(c, "Accounting-Off", "")


def test_bad_authenticator_is_not_acknowledged(radius: RadiusServer) -> None:
    before = radius.metric("netd_radius_drops_total", reason="bad_authenticator")
    with pytest.raises(Timeout):
        acct(client(radius, secret=b"wrong"), "Start", "x1", "alice")
    assert radius.metric("netd_radius_drops_total", reason="bad_authenticator") > before


async def test_radclient_accounting_file(radius: RadiusServer, tmp_path: Path) -> None:
    radclient = shutil.which("radclient")
    assert radclient, "radclient is missing: apt-get install freeradius-utils"
    sid = uuid.uuid4().hex[:12]
    records = tmp_path / "acct.txt"
    records.write_text(
        f'User-Name = "frank", Acct-Status-Type = Start, Acct-Session-Id = "{sid}", '
        "NAS-Port = 3, Framed-IP-Address = 100.64.9.9\n\n"
        f'User-Name = "frank", Acct-Status-Type = Interim-Update, Acct-Session-Id = "{sid}", '
        "NAS-Port = 3, Acct-Session-Time = 60, Acct-Output-Octets = 12345\n\n"
        f'User-Name = "frank", Acct-Status-Type = Stop, Acct-Session-Id = "{sid}", '
        "NAS-Port = 3, Acct-Session-Time = 120, Acct-Terminate-Cause = Idle-Timeout\n"
    )
    proc = subprocess.run(
        [
            radclient,
            "-x",
            "-r",
            "2",
            "-t",
            "2",
            "-f",
            str(records),
            f"127.0.0.1:{radius.acct_port}",
            "acct",
            SECRET.decode(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("Received Accounting-Response") == 3
    rows = await ledger(radius, sid)
    assert [r["status_type"] for r in rows] == [1, 3, 2]
    assert rows[1]["output_octets"] == 12345 and rows[2]["terminate_cause"] == 4


async def test_live_sessions_come_back_after_redis_loses_them(radius: RadiusServer) -> None:
    c = client(radius)
    sid = uuid.uuid4().hex[:12]
    acct(c, "Start", sid, "grace")
    key = store.sessions_key(radius.cache, "grace")
    assert await radius.cache.client.scard(key) == 1
    lost = [k async for k in radius.cache.client.scan_iter(match=f"{radius.prefix}:*")]
    await radius.cache.client.delete(*lost)  # what a FLUSHALL does to this suite's keys
    for _ in range(50):
        if await radius.cache.client.scard(key) == 1:
            break
        await asyncio.sleep(0.1)
    assert await radius.cache.client.scard(key) == 1
    acct(c, "Stop", sid, "grace", Acct_Session_Time=1)


async def test_live_sessions_are_indexed_by_user_nas_and_address(radius: RadiusServer) -> None:
    c = client(radius)
    sid = uuid.uuid4().hex[:12]
    acct(c, "Start", sid, "grace", Framed_IP_Address="100.64.7.7")
    cache = radius.cache
    row = await radius.pool.fetchrow(
        "SELECT unique_id FROM radius_sessions WHERE acct_session_id = $1", sid
    )
    assert row is not None
    uid = row["unique_id"]
    assert await cache.client.zscore(accounting.nas_sessions_key(cache, "lo"), uid) is not None
    assert await cache.client.get(accounting.ip_session_key(cache, "100.64.7.7")) == uid.encode()
    acct(c, "Stop", sid, "grace", Acct_Session_Time=3, Framed_IP_Address="100.64.7.7")
    assert await cache.client.zscore(accounting.nas_sessions_key(cache, "lo"), uid) is None
    assert await cache.client.get(accounting.ip_session_key(cache, "100.64.7.7")) is None


@pytest.mark.parametrize("reason", sorted(BAD_ACCT))
def test_bad_accounting_input_is_discarded(radius: RadiusServer, reason: str) -> None:
    before = radius.metric("netd_radius_drops_total", reason=reason)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.4)
        sock.sendto(BAD_ACCT[reason], ("127.0.0.1", radius.acct_port))
        with pytest.raises(TimeoutError):
            sock.recv(4096)
    wait_until(lambda: radius.metric("netd_radius_drops_total", reason=reason) > before)
    acct(client(radius), "Accounting-On", "")  # still answering
