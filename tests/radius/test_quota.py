"""Quotas: a monthly data cap reached on an Interim-Update moves the session to the
throttled plan by CoA, once, audited."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator

import pytest
from pyrad import packet
from pyrad.client import Client

from daemons.core.secrets import Sealer
from daemons.radius.admin import credentials
from daemons.store import radius as store
from tests.radius.conftest import SECRET, RadiusServer
from tests.radius.nas_sim import DICT, NasSimulator


@pytest.fixture
async def nas(radius: RadiusServer) -> Iterator[NasSimulator]:
    sim = NasSimulator()
    await radius.pool.execute("UPDATE nas_clients SET coa_port = $1 WHERE name = 'lo'", sim.port)
    yield sim
    sim.close()


def send(radius: RadiusServer, status: str, sid: str, **attrs: object) -> None:
    c = Client(server="127.0.0.1", acctport=radius.acct_port, secret=SECRET, dict=DICT)
    c.timeout, c.retries = 2, 1
    req = c.CreateAcctPacket(User_Name="capped")
    req["Acct-Status-Type"] = status
    req["Acct-Session-Id"] = sid
    for name, value in attrs.items():
        req[name.replace("_", "-")] = value
    assert c.SendPacket(req).code == packet.AccountingResponse


async def test_data_cap_throttles_by_coa_once(radius: RadiusServer, nas: NasSimulator) -> None:
    await store.upsert_subscriber(
        radius.pool,
        radius.cache,
        credentials(
            store.SubscriberRow("capped", plan="fiber-100-capped"), "pw", "none", Sealer(radius.key)
        ),
    )
    sid = uuid.uuid4().hex[:12]
    send(radius, "Start", sid)
    send(radius, "Interim-Update", sid, Acct_Session_Time=300, Acct_Input_Octets=5)
    await asyncio.sleep(0.5)
    assert nas.seen == []  # under the cap: nothing happens
    # 30 Gigawords = 128.8 GB this month, over the 100G cap.
    send(radius, "Interim-Update", sid, Acct_Session_Time=600, Acct_Input_Gigawords=30)
    for _ in range(50):
        if nas.seen:
            break
        await asyncio.sleep(0.1)
    assert len(nas.seen) == 1
    coa = nas.seen[0]
    assert coa["code"] == packet.CoARequest and coa["Mikrotik-Rate-Limit"] == ["1M/1M"]
    assert coa["Acct-Session-Id"] == [sid]
    send(radius, "Interim-Update", sid, Acct_Session_Time=900, Acct_Input_Gigawords=31)
    await asyncio.sleep(0.5)
    assert len(nas.seen) == 1, "the action runs once per session"
    audit = await radius.pool.fetch("SELECT actor, kind, result FROM coa_requests")
    assert [(a["actor"], a["kind"], a["result"]) for a in audit] == [("quota", "coa", "ack")]
    assert radius.metric("netd_radius_quota_actions_total", kind="coa", result="ack") == 1


async def test_time_limit_disconnects(radius: RadiusServer, nas: NasSimulator) -> None:
    plans = radius.proc.log_path.parent / "policies" / "radius" / "plans.toml"
    original = plans.read_text()
    plans.write_text(
        original + '\n[plans.hourly]\ntime_limit = 3600\nquota_action = "disconnect"\n'
    )
    try:
        radius.proc.signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        await store.upsert_subscriber(
            radius.pool,
            radius.cache,
            credentials(
                store.SubscriberRow("capped", plan="hourly"), "pw", "none", Sealer(radius.key)
            ),
        )
        sid = uuid.uuid4().hex[:12]
        send(radius, "Start", sid)
        send(radius, "Interim-Update", sid, Acct_Session_Time=3700)  # over one hour
        for _ in range(50):
            if nas.seen:
                break
            await asyncio.sleep(0.1)
        assert [s["code"] for s in nas.seen] == [packet.DisconnectRequest]
        assert nas.seen[0]["Acct-Session-Id"] == [sid]
    finally:
        plans.write_text(original)
        radius.proc.signal(signal.SIGHUP)
