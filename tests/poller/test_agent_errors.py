"""Agents that answer badly: each read fails with a reason a target's status can show
(or, where SNMP allows it, reads what is there), and never hangs or raises anything
else. The misbehaving agents are tests/poller/rogue.py; net-snmp's snmpd gives the wrong
community and the wrong v3 keys."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from daemons.poller.client import (
    AgentError,
    Credentials,
    PollError,
    Unreachable,
    read,
    read_rows,
)
from tests.poller.rogue import RogueAgent
from tests.poller.snmpd import AUTH_PASS, PRIV_PASS, USER, Snmpd

GETS = ["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0"]  # sysLocation absent
IFDESCR = "1.3.6.1.2.1.2.2.1.2"
ROWS = {f"{IFDESCR}.{i}": f"eth{i - 1}".encode() for i in (1, 2, 3)}


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    agent = Snmpd(tmp_path_factory.mktemp("snmpd"))
    yield agent
    agent.stop()


@pytest.mark.parametrize("version", ["1", "2c"])
@pytest.mark.parametrize(
    ("mode", "reason"),
    [("garbage", "malformed"), ("toobig", "tooBig"), ("generr", "genErr")],
)
async def test_an_agent_error_is_the_reason(mode: str, reason: str, version: str) -> None:
    agent, port = await RogueAgent.start(mode)
    try:
        t0 = time.monotonic()
        with pytest.raises(AgentError) as err:
            await read("127.0.0.1", port, Credentials(version, "x"), GETS, [IFDESCR], 0.5, 1)
        assert err.value.reason == reason
        assert time.monotonic() - t0 < 3
        assert agent.requests <= 6  # an error answer is not retried like a timeout
    finally:
        agent.close()


@pytest.mark.parametrize("version", ["1", "2c"])
@pytest.mark.parametrize("mode", ["strict-v1", "toobig-bulk", "good"])
async def test_what_is_there_is_read_around_the_errors(mode: str, version: str) -> None:
    """noSuchName for the whole GET because sysLocation is absent, or tooBig to every
    GETBULK: the scalars are asked one by one and the table walked with GETNEXT."""
    agent, port = await RogueAgent.start(mode)
    try:
        got = await read("127.0.0.1", port, Credentials(version, "x"), GETS, [IFDESCR], 0.5, 1)
    finally:
        agent.close()
    assert got == {GETS[0]: 123456, GETS[1]: b"rogue", **ROWS}


@pytest.mark.parametrize("version", ["1", "2c"])
@pytest.mark.parametrize("mode", ["strict-v1", "toobig-bulk", "good"])
async def test_known_rows_are_read_with_get_or_walked_again(mode: str, version: str) -> None:
    """The rows a walk found, read with GET: the same values, without a walk. A row that
    has gone reads as absent, or spoils the whole GET (an SNMPv1 noSuchName): then the
    table is walked, and reads what is there."""
    creds = Credentials(version, "x")
    agent, port = await RogueAgent.start(mode)
    try:
        got = await read_rows("127.0.0.1", port, creds, GETS, [IFDESCR], 0.5, 1, [list(ROWS)])
        assert not got.walked
        gone = await read_rows(
            "127.0.0.1", port, creds, GETS, [IFDESCR], 0.5, 1, [list(ROWS), [f"{IFDESCR}.9"]]
        )
        fresh = await read_rows("127.0.0.1", port, creds, GETS, [IFDESCR], 0.5, 1)
        assert fresh.walked
    finally:
        agent.close()
    assert got.values == gone.values == fresh.values == {GETS[0]: 123456, GETS[1]: b"rogue", **ROWS}


async def test_a_get_of_absent_oids_only() -> None:
    """v2c says noSuchObject per varbind: nothing there, no error. v1 says noSuchName for
    the PDU, and that is the agent's answer."""
    agent, port = await RogueAgent.start("good")
    try:
        absent = ["1.3.6.1.2.1.1.6.0"]
        assert await read("127.0.0.1", port, Credentials("2c", "x"), absent, []) == {}
        with pytest.raises(AgentError) as err:
            await read("127.0.0.1", port, Credentials("1", "x"), absent, [])
        assert err.value.reason == "noSuchName"
    finally:
        agent.close()


@pytest.mark.parametrize("version", ["1", "2c", "3"])
async def test_a_closed_port_is_refused_a_silent_one_times_out(version: str) -> None:
    """Nothing on the port: the kernel's ICMP port unreachable reads as "refused" (it
    read as a timeout before). Something on the port that never answers: a timeout."""
    agent, port = await RogueAgent.start("good")
    agent.close()  # nobody on the port
    creds = Credentials(version, "x", user="u" if version == "3" else "")
    with pytest.raises(Unreachable) as err:
        await read("127.0.0.1", port, creds, GETS, [], 0.3, 1)
    assert err.value.reason == "refused"
    assert "connection refused" in str(err.value)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with pytest.raises(Unreachable) as err:
            await read("127.0.0.1", silent.getsockname()[1], creds, GETS, [], 0.3, 1)
    assert err.value.reason == "timeout"


async def test_a_wrong_community_is_a_timeout(snmpd: Snmpd) -> None:
    t0 = time.monotonic()
    with pytest.raises(Unreachable) as err:
        await read("127.0.0.1", snmpd.port, Credentials("2c", "wrong"), GETS, [], 0.3, 1)
    assert err.value.reason == "timeout"
    assert "wrong community" in str(err.value)
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize(
    "creds",
    [
        Credentials(
            "3", user=USER, auth="sha", auth_key="wrong-pass", priv="aes", priv_key=PRIV_PASS
        ),
        Credentials(
            "3", user=USER, auth="sha", auth_key=AUTH_PASS, priv="aes", priv_key="wrong-priv"
        ),
        Credentials(
            "3", user="nobody", auth="sha", auth_key=AUTH_PASS, priv="aes", priv_key=PRIV_PASS
        ),
        Credentials("3", user=USER, auth="md5", auth_key=AUTH_PASS, priv="aes", priv_key=PRIV_PASS),
    ],
    ids=["auth-key", "priv-key", "user", "auth-protocol"],
)
async def test_wrong_v3_credentials(snmpd: Snmpd, creds: Credentials) -> None:
    t0 = time.monotonic()
    with pytest.raises(PollError) as err:
        await read("127.0.0.1", snmpd.port, creds, GETS, [], 0.5, 0)
    # net-snmp reports a wrong digest or an unknown user (usmStats*) and gufo-snmp raises;
    # a wrong privacy key decrypts to garbage that net-snmp drops without a word.
    assert err.value.reason == ("timeout" if creds.priv_key == "wrong-priv" else "auth")
    assert ("privacy key" if creds.priv_key == "wrong-priv" else "SNMPv3 refused") in str(err.value)
    assert time.monotonic() - t0 < 3
