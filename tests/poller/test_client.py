"""The poller's SNMP reads against a real snmpd, checked against net-snmp's own tools, in
v2c and v3 authPriv; a silent target is Unreachable after its retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemons import resources
from daemons.core.policies import load_policies
from daemons.poller import engine
from daemons.poller.client import Credentials, Unreachable, read
from daemons.poller.profiles import load_profiles
from tests.poller.snmpd import AUTH_PASS, COMMUNITY, PRIV_PASS, USER, Snmpd

REPO = Path(__file__).resolve().parents[2]
PROFILES = load_profiles(load_policies(resources.path("policies"), 1))
V2C = Credentials("2c", community=COMMUNITY)
V3 = Credentials("3", user=USER, auth="sha", auth_key=AUTH_PASS, priv="aes", priv_key=PRIV_PASS)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    snmpd = Snmpd(tmp_path_factory.mktemp("snmpd"))
    yield snmpd
    snmpd.stop()


@pytest.mark.parametrize("creds", [V2C, V3], ids=["v2c", "v3-authpriv"])
async def test_profiles_read_like_net_snmp_reads_them(agent: Snmpd, creds: Credentials) -> None:
    profiles = [PROFILES["system"], PROFILES["if-mib"]]
    gets, walks = engine.plan(profiles)
    got = await read("127.0.0.1", agent.port, creds, gets, walks)
    assert got["1.3.6.1.2.1.1.5.0"] == b"netd-test-agent"
    assert got["1.3.6.1.2.1.1.6.0"] == b"rack 7"
    # net-snmp's own walk of one column gives the same rows.
    oracle = agent.netsnmp("snmpbulkwalk", "1.3.6.1.2.1.2.2.1.2")
    rows = {line.split(" = ", 1)[0].lstrip(".") for line in oracle.splitlines() if " = " in line}
    assert rows and rows == {o for o in got if o.startswith("1.3.6.1.2.1.2.2.1.2.")}
    samples = engine.samples(profiles, got, engine.TargetState(), time.monotonic())
    lo = [s for s in samples if s.metric == "ifOperStatus" and ("ifDescr", "lo") in s.labels]
    assert lo and lo[0].value == 1.0


async def test_a_silent_target_is_unreachable_within_its_retries() -> None:
    t0 = time.monotonic()
    with pytest.raises(Unreachable):
        await read("127.0.0.1", 9, V2C, ["1.3.6.1.2.1.1.5.0"], [], wait=0.3, retries=1)
    assert time.monotonic() - t0 < 3


async def test_wrong_v3_password_is_unreachable(agent: Snmpd) -> None:
    wrong = Credentials(
        "3", user=USER, auth="sha", auth_key="not-the-pass", priv="aes", priv_key=PRIV_PASS
    )
    with pytest.raises(Unreachable):
        await read("127.0.0.1", agent.port, wrong, ["1.3.6.1.2.1.1.5.0"], [], wait=0.5, retries=0)
