"""Disconnect and CoA (RFC 5176) through `netd session`, against a NAS simulator built on
pyrad that answers ACK, NAK with Error-Cause, or nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyrad import packet
from pyrad.client import Client

from daemons import resources
from tests.radius.conftest import SECRET, RadiusServer
from tests.radius.nas_sim import DICT, NasSimulator
from tests.support import netd_env


@pytest.fixture
async def nas(radius: RadiusServer) -> Iterator[NasSimulator]:
    sim = NasSimulator()
    await radius.pool.execute("UPDATE nas_clients SET coa_port = $1 WHERE name = 'lo'", sim.port)
    yield sim
    sim.close()


def start_session(radius: RadiusServer, user: str) -> str:
    c = Client(server="127.0.0.1", acctport=radius.acct_port, secret=SECRET, dict=DICT)
    c.timeout, c.retries = 2, 1
    sid = uuid.uuid4().hex[:12]
    req = c.CreateAcctPacket(User_Name=user)
    req["Acct-Status-Type"] = "Start"
    req["Acct-Session-Id"] = sid
    req["Framed-IP-Address"] = "100.64.3.3"
    assert c.SendPacket(req).code == packet.AccountingResponse
    return sid


def session_cli(radius: RadiusServer, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
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
        [sys.executable, "-m", "daemons.cli", "session", *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_disconnect_coa_nak_and_timeout(
    radius: RadiusServer, nas: NasSimulator, tmp_path: Path
) -> None:
    sid = start_session(radius, "alice")
    listed = session_cli(radius, tmp_path, "list", "--user", "alice")
    sessions = [json.loads(line) for line in listed.stdout.splitlines()]
    assert listed.returncode == 0 and [s["acct_session_id"] for s in sessions] == [sid]
    unique_id = sessions[0]["unique_id"]

    ok = session_cli(radius, tmp_path, "disconnect", unique_id)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["result"] == "ack"
    sent = nas.seen[-1]
    assert sent["code"] == packet.DisconnectRequest
    assert sent["Acct-Session-Id"] == [sid] and sent["User-Name"] == ["alice"]
    assert sent["Framed-IP-Address"] == ["100.64.3.3"]

    nas.mode = "nak"
    nak = session_cli(radius, tmp_path, "coa", unique_id, "--plan", "fiber-1000")
    assert nak.returncode == 1
    answer = json.loads(nak.stdout)
    assert answer["result"] == "nak" and answer["error_cause"] == 503
    assert nas.seen[-1]["code"] == packet.CoARequest
    assert nas.seen[-1]["Mikrotik-Rate-Limit"] == ["500M/1G"]

    nas.mode = "silent"
    before = len(nas.seen)
    quiet = session_cli(radius, tmp_path, "disconnect", unique_id, "--retries", "2")
    assert quiet.returncode == 1 and json.loads(quiet.stdout)["result"] == "timeout"
    assert len(nas.seen) - before == 2  # retransmitted once, with backoff

    audit = await radius.pool.fetch(
        "SELECT kind, result, error_cause, attempts, actor FROM coa_requests ORDER BY id"
    )
    assert [(a["kind"], a["result"], a["error_cause"], a["attempts"]) for a in audit] == [
        ("disconnect", "ack", None, 1),
        ("coa", "nak", 503, 1),
        ("disconnect", "timeout", None, 2),
    ]
    assert all(str(a["actor"]).startswith("cli:") for a in audit)
