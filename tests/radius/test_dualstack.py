"""Dual-stack end to end (issue 21): a plan with IPv4 and IPv6; radclient logs a
subscriber in and sends Start/Interim/Stop with its prefixes; the ledger, the live session
(found by an address inside its prefixes), the session table and a Disconnect all carry
the IPv6 prefixes."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from pyrad import packet

from daemons.core.secrets import Sealer
from daemons.radius.admin import credentials
from daemons.store import accounting
from daemons.store import radius as store
from tests.radius.conftest import SECRET, RadiusServer
from tests.radius.nas_sim import NasSimulator
from tests.radius.test_coa import session_cli

pytestmark = pytest.mark.skipif(shutil.which("radclient") is None, reason="needs radclient")
USER = "dana6"
PREFIX, DELEGATED, ADDRESS = "2001:db8:1:2::/64", "2001:db8:2:ab00::/56", "2001:db8:1:2::5"


@pytest.fixture
async def nas(radius: RadiusServer) -> Iterator[NasSimulator]:
    sim = NasSimulator()
    await radius.pool.execute("UPDATE nas_clients SET coa_port = $1 WHERE name = 'lo'", sim.port)
    yield sim
    sim.close()


def radclient(radius: RadiusServer, kind: str, attrs: str) -> str:
    port = radius.port if kind == "auth" else radius.acct_port
    out = subprocess.run(
        ["radclient", "-x", "-r", "2", "-t", "2", f"127.0.0.1:{port}", kind, SECRET.decode()],
        input=attrs.encode(),
        capture_output=True,
        timeout=20,
        check=False,
    )
    return out.stdout.decode() + out.stderr.decode()


def acct(status: str, extra: str = "") -> str:
    return "\n".join(
        [
            f'User-Name = "{USER}"',
            f"Acct-Status-Type = {status}",
            'Acct-Session-Id = "ds-1"',
            'NAS-Port-Id = "olt1/1/1:100"',
            "NAS-IP-Address = 127.0.0.1",
            "Framed-IP-Address = 100.64.9.9",
            f"Framed-IPv6-Prefix = {PREFIX}",
            f"Delegated-IPv6-Prefix = {DELEGATED}",
            f"Framed-IPv6-Address = {ADDRESS}",
            "Tunnel-Type:1 = L2TP",
            'Tunnel-Server-Endpoint:1 = "10.0.0.1"',
            extra,
        ]
    )


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_dual_stack_end_to_end(
    radius: RadiusServer, nas: NasSimulator, tmp_path: Path
) -> None:
    row = credentials(
        store.SubscriberRow(
            USER,
            plan="fiber-100-dual",
            framed_ipv6_prefix=PREFIX,
            delegated_ipv6_prefix=DELEGATED,
            framed_ipv6_address=ADDRESS,
        ),
        "pw6",
        "none",
        Sealer(radius.key),
    )
    await store.upsert_subscriber(radius.pool, radius.cache, row)
    login = await asyncio.to_thread(
        radclient,
        radius,
        "auth",
        f'User-Name = "{USER}"\nUser-Password = "pw6"\nMessage-Authenticator = 0x00',
    )
    assert "Received Access-Accept" in login, login
    for line in (
        f"Framed-IPv6-Prefix = {PREFIX}",
        f"Delegated-IPv6-Prefix = {DELEGATED}",
        f"Framed-IPv6-Address = {ADDRESS}",
        'Framed-Pool = "fiber"',  # the IPv4 side of the plan
    ):
        assert line in login, login

    for status, extra in (("Start", ""), ("Interim-Update", "Acct-Session-Time = 60")):
        answer = await asyncio.to_thread(radclient, radius, "acct", acct(status, extra))
        assert "Accounting-Response" in answer, answer

    # The ledger: by type as FreeRADIUS prints it (the tag apart, prefixes as CIDR).
    events = await radius.pool.fetch(
        "SELECT attributes FROM accounting_events WHERE username = $1 ORDER BY event_time", USER
    )
    assert len(events) == 2
    first = json.loads(events[0]["attributes"])
    assert first["Tunnel-Type:1"] == "L2TP" and first["Tunnel-Server-Endpoint:1"] == "10.0.0.1"
    assert first["Framed-IPv6-Prefix"] == PREFIX and first["Delegated-IPv6-Prefix"] == DELEGATED
    assert first["Acct-Status-Type"] == "Start"

    # The session table and the live session, found by an address inside the prefixes.
    held = await radius.pool.fetchrow(
        "SELECT framed_ipv6_prefix::text AS p, delegated_ipv6_prefix::text AS d, "
        "host(framed_ipv6_address) AS a, unique_id FROM radius_sessions WHERE username = $1",
        USER,
    )
    assert held is not None
    assert (held["p"], held["d"], held["a"]) == (PREFIX, DELEGATED, ADDRESS)
    for inside in ("2001:db8:2:abcd::1", "2001:db8:1:2::1234", ADDRESS):
        ids = await accounting.live_session_ids(radius.cache, ip=inside)
        assert ids == [held["unique_id"]], inside
    assert await accounting.live_session_ids(radius.cache, ip="2001:db8:3::1") == []
    (live,) = await accounting.live_sessions(radius.cache, [held["unique_id"]])
    assert (live["framed_ipv6_prefix"], live["delegated_ipv6_prefix"]) == (PREFIX, DELEGATED)
    listed = await asyncio.to_thread(
        session_cli, radius, tmp_path, "list", "--ip", "2001:db8:2:ab00::99"
    )
    assert [json.loads(x)["unique_id"] for x in listed.stdout.splitlines()] == [
        held["unique_id"]
    ], listed.stderr

    # A Disconnect names the session by its Framed-IPv6-Prefix as well (RFC 5176 §3).
    ok = await asyncio.to_thread(session_cli, radius, tmp_path, "disconnect", held["unique_id"])
    assert ok.returncode == 0, ok.stderr
    sent = nas.seen[-1]
    assert sent["code"] == packet.DisconnectRequest
    assert sent["Framed-IPv6-Prefix"] == [PREFIX] and sent["User-Name"] == [USER]

    # Stop: the live session and its IPv6 index entries are gone.
    stop = await asyncio.to_thread(radclient, radius, "acct", acct("Stop", "Acct-Session-Time = 9"))
    assert "Accounting-Response" in stop, stop

    async def gone() -> bool:
        return await accounting.live_session_ids(radius.cache, ip="2001:db8:2:abcd::1") == []

    await wait_for(gone)
