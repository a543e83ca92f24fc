"""Sessions that stop sending interim updates are closed by the reaper."""

from __future__ import annotations

import asyncio
import uuid

from pyrad import packet
from pyrad.client import Client
from pyrad.dictionary import Dictionary

from daemons.radius.dictionary import SHIPPED
from daemons.store import radius as store
from tests.radius.conftest import SECRET, RadiusServer

# Expect an interim every 0.4 s: a session silent for 1 s is stale.
RADIUS_ENV = {"NETD_RADIUS_INTERIM_INTERVAL": "0.4", "NETD_RADIUS_REAPER_INTERVAL": "0.3"}


async def test_silent_session_is_reaped_with_a_synthetic_stop(radius: RadiusServer) -> None:
    c = Client(
        server="127.0.0.1", acctport=radius.acct_port, secret=SECRET, dict=Dictionary(str(SHIPPED))
    )
    c.timeout, c.retries = 2, 1
    sid = uuid.uuid4().hex[:12]
    req = c.CreateAcctPacket(User_Name="grace")
    req["Acct-Status-Type"] = "Start"
    req["Acct-Session-Id"] = sid
    assert c.SendPacket(req).code == packet.AccountingResponse
    key = store.sessions_key(radius.cache, "grace")
    assert await radius.cache.client.scard(key) == 1
    row = None
    for _ in range(60):
        row = await radius.pool.fetchrow(
            "SELECT close_reason, terminate_cause FROM radius_sessions "
            "WHERE acct_session_id = $1 AND stopped_at IS NOT NULL",
            sid,
        )
        if row is not None:
            break
        await asyncio.sleep(0.1)
    assert row is not None and row["close_reason"] == "stale" and row["terminate_cause"] == 3
    stops = await radius.pool.fetch(
        "SELECT attributes FROM accounting_events WHERE acct_session_id = $1 AND status_type = 2",
        sid,
    )
    assert len(stops) == 1 and "netd-synthetic-stop" in stops[0]["attributes"]
    assert await radius.cache.client.scard(key) == 0
    assert radius.metric("netd_radius_sessions_reaped_total") >= 1
