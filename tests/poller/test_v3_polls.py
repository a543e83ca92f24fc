"""SNMPv3 authPriv polls against net-snmp's snmpd over hours of simulated time (a clock of
the test's own: ``now`` goes on by the interval each poll, every poll is a real exchange).

gufo-snmp announces msgMaxSize 2048 in every v3 request. The GETs of known rows were sized
for v2c (2,500 bytes of varbinds): snmpd answered the first GET after a walk with tooBig,
which read as "no values", and the poller walked the tables on every poll (snmpsim
dropped the reply: a timeout, and the target went down). Now v3 GETs are sized for the
2,048 bytes (engine.V3_GET_BUDGET), and a GET an agent still refuses is split in two.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from daemons import resources
from daemons.core.policies import load_policies
from daemons.poller import engine
from daemons.poller.client import Credentials, read_rows
from daemons.poller.collect import poll_once
from daemons.poller.profiles import load_profiles
from tests.poller.snmpd import AUTH_PASS, PRIV_PASS, USER, Snmpd

PROFILES = load_profiles(load_policies(resources.path("policies"), 1))
POLLED = [PROFILES["system"], PROFILES["if-mib"], PROFILES["host-resources"]]
V3 = Credentials("3", user=USER, auth="sha", auth_key=AUTH_PASS, priv="aes", priv_key=PRIV_PASS)


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    agent = Snmpd(tmp_path_factory.mktemp("snmpd-v3"))
    yield agent
    agent.stop()


async def test_four_hours_of_v3_polls_walk_only_when_due(snmpd: Snmpd) -> None:
    """240 polls a minute apart with authPriv: every one answers; the tables are walked at
    the start and every 15 minutes (16 walks), read by GET of the known rows in between,
    in several GETs that each fit a 2,048-byte response."""
    state = engine.TargetState()
    interval, rediscover, polls = 60.0, 900.0, 240
    walked_at: list[float] = []
    read_counts: list[int] = []
    for i in range(polls):
        now = 10_000.0 + i * interval
        polled = await poll_once(
            "127.0.0.1",
            snmpd.port,
            V3,
            POLLED,
            state,
            now,
            wait=1.0,
            retries=1,
            rediscover=rediscover,
        )
        if polled.walked:
            walked_at.append(now - 10_000.0)
        read_counts.append(len(polled.values))
        assert {s.metric for s in polled.samples} >= {"ifOperStatus", "hrStorageUsed"}
    assert walked_at == [k * rediscover for k in range(16)], walked_at
    assert len(state.rows) >= 2  # the known rows took several v3-sized GETs
    assert min(read_counts) == max(read_counts)  # every GET poll read every known row


async def test_a_get_too_big_for_v3_is_split_not_walked(snmpd: Snmpd) -> None:
    """A GET of every known row at once (what v2c sizing made of them): snmpd refuses it
    as tooBig, and the read splits it instead of walking."""
    gets, walks = engine.plan(POLLED)
    walked = await read_rows("127.0.0.1", snmpd.port, V3, gets, walks, 1.0, 1)
    assert walked.walked
    rows = tuple(o for o in walked.values if o not in gets)
    again = await read_rows("127.0.0.1", snmpd.port, V3, gets, walks, 1.0, 1, [rows])
    assert not again.walked
    assert len(again.rows) >= 2 and sum(len(c) for c in again.rows) == len(rows)
    assert set(again.values) == set(walked.values)
