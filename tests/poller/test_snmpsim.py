"""Interop: the poller reads snmpsim (PyPI snmpsim) serving real device dumps of the PyPI
package snmpsim-data, over v2c and v3 (authPriv with every auth and privacy protocol our
client offers, authNoPriv, noAuthNoPriv).

The dumps: a Juniper MX960 router (JUNOS 13.3R9, 61 interfaces, 64-bit counters past 2^50)
and a Cisco Catalyst 3750 switch (IOS 12.2, interface aliases, stack ports with no 64-bit
counters). What the poller reads with the shipped ``system`` and ``if-mib`` profiles is
checked against the dump file, parsed here on its own: every scalar and every row under
every walked column, same OIDs and same values. Then engine.samples over it.
"""

from __future__ import annotations

import bz2
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from daemons import resources
from daemons.core.policies import load_policies
from daemons.poller import engine
from daemons.poller.client import Credentials, Unreachable, read
from daemons.poller.collect import poll_once
from daemons.poller.profiles import load_profiles
from tests.poller.snmpsim import Snmpsim, community, dump_file

REPO = Path(__file__).resolve().parents[2]
PROFILES = load_profiles(load_policies(resources.path("policies"), 1))
POLLED = [PROFILES["system"], PROFILES["if-mib"]]
JUNIPER = "network/router/juniper-mx960-13-3r9-13.snmprec.bz2"
CISCO = "network/switch/cisco-c3750.snmprec.bz2"
V3_DUMP = CISCO  # gufo-snmp sends no context name: snmpsim serves one dump to v3
AUTH_KEY, PRIV_KEY = "auth-pass-123", "priv-pass-123"
USERS = [
    Credentials(
        "3",
        user=f"{auth or 'noauth'}-{priv or 'nopriv'}",
        auth=auth,
        auth_key=AUTH_KEY if auth else "",
        priv=priv,
        priv_key=PRIV_KEY if priv else "",
    )
    for auth, priv in [
        ("sha", "aes"),
        ("md5", "des"),
        ("sha224", "aes192"),
        ("sha256", "aes256"),
        ("sha384", "aes"),
        ("sha512", "aes256"),
        ("sha", "aes192c"),
        ("md5", "aes256c"),
        ("sha", ""),
        ("", ""),
    ]
]
IF_NAME, IF_ALIAS, IF_DESCR = (
    "1.3.6.1.2.1.31.1.1.1.1",
    "1.3.6.1.2.1.31.1.1.1.18",
    "1.3.6.1.2.1.2.2.1.2",
)
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"


def snmprec(rel: str) -> dict[str, tuple[str, str]]:
    """A dump's records, ``oid|tag|value`` a line: tag and raw value by OID."""
    out: dict[str, tuple[str, str]] = {}
    with bz2.open(dump_file(rel), "rt", encoding="iso-8859-1", newline="\n") as lines:
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue  # blank lines and comments, as snmpsim skips them
            oid, tag, raw = line.rstrip("\n").split("|", 2)
            out[oid] = (tag, raw)
    return out


def value(oid: str, tag: str, raw: str) -> Any:
    """A record's value as the poller's client gives it: ints, bytes, OIDs as text."""
    if tag in ("2", "65", "66", "67", "70"):  # Integer, Counter32, Gauge32, TimeTicks, C64
        return int(raw)
    if tag == "4":
        return raw.encode("iso-8859-1")
    if tag == "4x":
        return bytes.fromhex(raw)
    if tag == "6":
        return raw
    raise AssertionError(f"{oid}: record tag {tag!r} ({raw!r}) is not one these tests compare")


def expected(rel: str, gets: list[str], walks: list[str]) -> dict[str, Any]:
    """What reading ``gets`` and walking ``walks`` should give, from the dump file."""
    records = snmprec(rel)
    prefixes = tuple(w + "." for w in walks)
    wanted = [o for o in gets if o in records] + [o for o in records if o.startswith(prefixes)]
    return {o: value(o, *records[o]) for o in wanted}


def assert_same(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = [(o, got[o], want[o]) for o in sorted(set(got) & set(want)) if got[o] != want[o]]
    assert not (missing or extra or differ), (
        f"{len(missing)} missing {missing[:10]}, {len(extra)} extra {extra[:10]}, "
        f"{len(differ)} differ (oid, read, dump) {differ[:10]}"
    )


def text(records: Mapping[str, tuple[str, str]], oid: str) -> str:
    tag, raw = records[oid]
    return value(oid, tag, raw).decode()


@pytest.fixture(scope="module")
def sim(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Snmpsim]:
    # The decompressed dumps and snmpsim's indexes of them (7 s to build for the Juniper
    # dump) are kept in the pytest cache, so only a first run pays for the indexing.
    cache = getattr(request.config, "cache", None)
    agent = Snmpsim(
        tmp_path_factory.mktemp("snmpsim"),
        [JUNIPER, CISCO],
        V3_DUMP,
        USERS,
        cache=cache.mkdir("snmpsim") if cache is not None else None,
    )
    yield agent
    agent.stop()


@pytest.mark.parametrize("dump", [JUNIPER, CISCO], ids=["juniper-mx960", "cisco-c3750"])
async def test_v2c_reads_every_scalar_and_row_of_the_dump(sim: Snmpsim, dump: str) -> None:
    gets, walks = engine.plan(POLLED)
    got = await read(
        "127.0.0.1", sim.port, Credentials("2c", community=community(dump)), gets, walks
    )
    want = expected(dump, gets, walks)
    assert len([o for o in want if o.startswith(IF_HC_IN_OCTETS + ".")]) >= 15
    assert_same(got, want)


@pytest.mark.parametrize("creds", USERS, ids=[u.user for u in USERS])
async def test_v3_reads_every_scalar_and_row_of_the_dump(sim: Snmpsim, creds: Credentials) -> None:
    gets, walks = engine.plan(POLLED)
    got = await read("127.0.0.1", sim.port, creds, gets, walks)
    assert_same(got, expected(V3_DUMP, gets, walks))


@pytest.mark.parametrize("dump", [JUNIPER, CISCO], ids=["juniper-mx960", "cisco-c3750"])
async def test_samples_carry_the_dumps_names_and_counters(sim: Snmpsim, dump: str) -> None:
    records = snmprec(dump)
    gets, walks = engine.plan(POLLED)
    creds = Credentials("2c", community=community(dump))
    state = engine.TargetState()
    first = engine.samples(
        POLLED, await read("127.0.0.1", sim.port, creds, gets, walks), state, 1000.0
    )
    counters = {dict(s.labels)["ifIndex"]: s for s in first if s.metric == "ifHCInOctets"}
    rows = {o[len(IF_HC_IN_OCTETS) + 1 :] for o in records if o.startswith(IF_HC_IN_OCTETS + ".")}
    assert set(counters) == rows
    for index, s in counters.items():
        assert s.kind == "counter"
        assert s.value == int(records[f"{IF_HC_IN_OCTETS}.{index}"][1])
        assert s.labels == (
            ("ifIndex", index),
            ("ifName", text(records, f"{IF_NAME}.{index}")),
            ("ifAlias", text(records, f"{IF_ALIAS}.{index}")),
            ("ifDescr", text(records, f"{IF_DESCR}.{index}")),
        )
    uptime = [s for s in first if s.metric == "sysUpTime"]
    assert [s.value for s in uptime] == [float(records["1.3.6.1.2.1.1.3.0"][1])]

    if dump == JUNIPER:
        xe = dict(counters["628"].labels)
        assert xe["ifName"] == "xe-1/2/0"
        assert xe["ifAlias"] == "Connect to SNNU-YT-CORE-1::xe-1/2/0"
        assert counters["628"].value == 2_309_888_188_881_170.0  # past 2^50: a Counter64
    else:
        gi = dict(counters["10106"].labels)
        assert (gi["ifName"], gi["ifAlias"]) == ("Gi1/0/6", "link-wensilou")
        assert counters["10106"].value == 356_892_003_718_487.0
        # A stack port: named and with a status, but no 64-bit counters in the dump.
        stack = [s for s in first if dict(s.labels).get("ifName") == "StackPort1"]
        assert {s.metric for s in stack} >= {"ifOperStatus", "ifMtu"}
        assert "ifHCInOctets" not in {s.metric for s in stack}

    # A second poll of a recording: nothing moved, so every rate is zero, no reset, no wrap.
    again = await read("127.0.0.1", sim.port, creds, gets, walks)
    second = engine.samples(POLLED, again, state, 1060.0)
    rates = [s for s in second if s.metric == "ifHCInOctets_rate"]
    assert len(rates) == len(counters) and all(s.value == 0.0 for s in rates)
    assert (state.resets, state.wraps) == (0, 0)


async def test_a_wrong_community_is_unreachable(sim: Snmpsim) -> None:
    t0 = time.monotonic()
    with pytest.raises(Unreachable) as err:
        await read(
            "127.0.0.1",
            sim.port,
            Credentials("2c", community="no-such-dump"),
            ["1.3.6.1.2.1.1.5.0"],
            [],
            wait=0.5,
            retries=1,
        )
    assert err.value.reason == "timeout"
    assert time.monotonic() - t0 < 3


def v3(**wrong: str) -> Credentials:
    """The sha-aes user's credentials, with something wrong."""
    right = {"user": "sha-aes", "auth": "sha", "auth_key": AUTH_KEY, "priv": "aes"}
    return Credentials("3", **{**right, "priv_key": PRIV_KEY, **wrong})


# A wrong privacy key is refused too: snmpsim reports the decryption error (usmStats).
@pytest.mark.parametrize(
    "wrong",
    [v3(auth_key="not-the-key"), v3(priv_key="not-the-key"), v3(auth="md5"), v3(user="nobody")],
    ids=["wrong-auth-key", "wrong-priv-key", "wrong-auth-protocol", "unknown-user"],
)
async def test_wrong_v3_keys_are_refused(sim: Snmpsim, wrong: Credentials) -> None:
    t0 = time.monotonic()
    with pytest.raises(Unreachable) as err:
        await read("127.0.0.1", sim.port, wrong, ["1.3.6.1.2.1.1.5.0"], [], wait=0.5, retries=1)
    assert err.value.reason == "auth", err.value
    assert time.monotonic() - t0 < 3


async def test_hours_of_v3_authpriv_polls_of_a_real_dump(sim: Snmpsim) -> None:
    """Four simulated hours of authPriv polls (every 10 minutes, a walk every 30) of the
    Cisco dump: snmpsim drops a response larger than the request's msgMaxSize (2,048 for
    gufo-snmp), which made the first GET of known rows time out and the target go down.
    Every poll answers now; only the due ones walk; the others read every known row."""
    creds = next(u for u in USERS if u.user == "sha-aes")
    state = engine.TargetState()
    walked_at: list[float] = []
    counts = set()
    for i in range(24):
        now = i * 600.0
        polled = await poll_once(
            "127.0.0.1",
            sim.port,
            creds,
            POLLED,
            state,
            now,
            wait=1.0,
            retries=0,
            rediscover=1800.0,
        )
        if polled.walked:
            walked_at.append(now)
        counts.add(len(polled.values))
    assert walked_at == [k * 1800.0 for k in range(8)]
    assert len(counts) == 1 and len(state.rows) >= 3


async def test_a_v3_context_name_selects_the_instance(sim: Snmpsim) -> None:
    """snmpsim serves the dump a v3 context name names (as a Cisco agent serves a VRF's
    instance under its context): with the Juniper dump's name as context the poller reads
    the Juniper router, with none the default (Cisco) one. gufo-snmp sends no context:
    such targets are read with pysnmp (contexts.py), GET of known rows included."""
    creds = next(u for u in USERS if u.user == "sha-aes")
    juniper = Credentials(**{**creds.__dict__, "context": community(JUNIPER)})
    gets, walks = engine.plan(POLLED)
    assert_same(
        await read("127.0.0.1", sim.port, juniper, gets, walks), expected(JUNIPER, gets, walks)
    )
    assert_same(
        await read("127.0.0.1", sim.port, creds, gets, walks), expected(V3_DUMP, gets, walks)
    )
    state = engine.TargetState()
    first = await poll_once("127.0.0.1", sim.port, juniper, POLLED, state, 0.0, wait=1.0)
    second = await poll_once("127.0.0.1", sim.port, juniper, POLLED, state, 60.0, wait=1.0)
    assert first.walked and not second.walked and first.values == second.values
