"""One poll's varbinds to samples: labels per row, gauges scaled, counter rates across
polls, an agent restart (sysUpTime down) giving no false rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from daemons import resources
from daemons.core.policies import load_policies
from daemons.poller import engine
from daemons.poller.exposition import SampleStore
from daemons.poller.profiles import Column, Table, load_profiles

REPO = Path(__file__).resolve().parents[2]
PROFILES = load_profiles(load_policies(resources.path("policies"), 1))
IFX = "1.3.6.1.2.1.31.1.1.1"


def _poll(uptime: int, in_octets: int, errors: int) -> dict[str, engine.Value]:
    return {
        engine.SYS_UPTIME: uptime,
        f"{IFX}.1.2": b"ge-0/0/1",
        f"{IFX}.18.2": b"uplink to core",
        f"{IFX}.6.2": in_octets,
        f"{IFX}.15.2": 1000,
        "1.3.6.1.2.1.2.2.1.14.2": errors,
        "1.3.6.1.2.1.2.2.1.8.2": 1,
    }


def test_rows_labels_and_rates() -> None:
    profiles = [PROFILES["if-mib"]]
    gets, walks = engine.plan(profiles)
    assert gets == [engine.SYS_UPTIME, "1.3.6.1.2.1.2.1.0"] and f"{IFX}.6" in walks
    state = engine.TargetState()
    first = engine.samples(profiles, _poll(100_000, 10**9, 5), state, 0.0)
    by = {s.metric: s for s in first}
    assert dict(by["ifHCInOctets"].labels) == {
        "ifIndex": "2",
        "ifName": "ge-0/0/1",
        "ifAlias": "uplink to core",
    }
    assert by["ifHCInOctets"].kind == "counter" and "ifHCInOctets_rate" not in by
    assert by["ifOperStatus"].value == 1.0 and by["ifOperStatus"].kind == "gauge"
    second = engine.samples(profiles, _poll(106_000, 10**9 + 6_000_000, 7), state, 60.0)
    rate = {s.metric: s.value for s in second if s.kind == "rate"}
    assert rate["ifHCInOctets_rate"] == 100_000 and rate["ifInErrors_rate"] == 2 / 60
    # The agent restarted: counters are small again, sysUpTime went down. No false rate.
    third = engine.samples(profiles, _poll(500, 1_000, 0), state, 120.0)
    assert not [s for s in third if s.kind == "rate"] and state.resets == 2


def test_scaled_gauges_for_vendor_optics() -> None:
    profile = PROFILES["fiberhome-olt-optics"]
    got = {
        "1.3.6.1.2.1.1.2.0": profile.match_sys_object_id[0] + "1",  # a FiberHome OLT
        "1.3.6.1.4.1.5875.800.3.9.3.3.1.6.16777472": -2150,
    }
    (sample,) = engine.samples([profile], got, engine.TargetState(), 0.0)
    assert sample.metric == "onuPonRxOpticalPower" and sample.value == -21.5
    assert sample.labels == (("onuIndex", "16777472"),)


def test_exposition_as_snmp_exporter_names_it() -> None:
    profiles = [PROFILES["if-mib"]]
    state = engine.TargetState()
    engine.samples(profiles, _poll(100_000, 10**9, 5), state, 0.0)
    polled = engine.samples(profiles, _poll(106_000, 10**9 + 6_000_000, 7), state, 60.0)
    store = SampleStore()
    store.put("olt-1", polled)
    text = store.render()
    assert "# TYPE ifHCInOctets counter" in text
    assert (
        'ifHCInOctets{ifAlias="uplink to core",ifIndex="2",ifName="ge-0/0/1",'
        'target="olt-1"} 1006000000' in text
    )
    assert "# TYPE ifOperStatus gauge" in text
    assert 'ifHCInOctets_rate{ifAlias="uplink to core"' in text
    # Prometheus's own parser reads it back.
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["ifHCInOctets"].type == "counter"
    assert families["ifHCInOctets_rate"].samples[0].value == 100_000


def _rows_by_scanning(table: Table, got: dict[str, engine.Value]) -> dict[str, dict[str, Any]]:
    """The plain definition: for each column, every OID that starts with its OID and a dot."""
    rows: dict[str, dict[str, Any]] = {}
    for col in table.columns:
        prefix = col.oid + "."
        for oid, value in got.items():
            if oid.startswith(prefix):
                rows.setdefault(oid[len(prefix) :], {})[col.name] = value
    return rows


_COLUMN_OIDS = st.sampled_from(
    ["1.3.6.1.9.1.1", "1.3.6.1.9.1.2", "1.3.6.1.9.1.10", "1.3.6.1.9.1", "1.3.6.1.8.5"]
)


@settings(max_examples=300, deadline=None)
@given(
    oids=st.lists(_COLUMN_OIDS, min_size=1, max_size=4),
    got=st.dictionaries(
        st.builds(
            lambda base, index: f"{base}.{index}",
            st.sampled_from(["1.3.6.1.9.1.1", "1.3.6.1.9.1.2", "1.3.6.1.9.1.10", "1.3.6.1.9"]),
            st.sampled_from(["1", "2", "10", "7.3", "1.2.3", "5.0"]),
        ),
        st.integers(0, 10),
        max_size=30,
    ),
)
def test_rows_are_grouped_as_the_plain_definition_says(
    oids: list[str], got: dict[str, engine.Value]
) -> None:
    # One-number and longer indexes, a column inside another, two columns with one OID.
    columns = tuple(Column(f"c{i}", oid, "gauge") for i, oid in enumerate(oids))
    table = Table("t", "index", columns)
    assert engine._rows(table, engine._plan(table), got) == _rows_by_scanning(table, got)


def test_text_scalars_are_info_metrics() -> None:
    system = PROFILES["system"]
    got = {
        "1.3.6.1.2.1.1.3.0": 12345,
        "1.3.6.1.2.1.1.5.0": b"olt-7",
        "1.3.6.1.2.1.1.2.0": "1.3.6.1.4.1.5875.800.1",
    }
    out = engine.samples([system], got, engine.TargetState(), 0.0)
    assert engine.Sample("sysName", (("sysName", "olt-7"),), 1.0, "gauge") in out
    assert engine.Sample("sysUpTime", (), 12345.0, "gauge") in out


def test_a_vendor_profile_applies_only_to_its_devices() -> None:
    vendor = PROFILES["fiberhome-olt-optics"]
    assert vendor.match_sys_object_id
    state = engine.TargetState()
    gets, walks = engine.plan([PROFILES["system"], vendor], state)
    assert "1.3.6.1.2.1.1.2.0" in gets  # sysObjectID asked, to learn the device class
    assert not any(w.startswith(vendor.tables[0].columns[0].oid) for w in walks)
    engine.samples([vendor], {"1.3.6.1.2.1.1.2.0": "1.3.6.1.4.1.9.1.1"}, state, 0.0)
    assert engine.plan([vendor], state)[1] == []  # a Cisco box: not polled with it
    other = engine.TargetState()
    engine.samples([vendor], {"1.3.6.1.2.1.1.2.0": vendor.match_sys_object_id[0] + "1"}, other, 0.0)
    assert engine.plan([vendor], other)[1]  # a FiberHome one: its tables are walked


def test_tables_are_walked_then_read_by_row_until_the_next_walk_is_due() -> None:
    state = engine.TargetState()
    gets, walks = ["1.3.6.1.2.1.1.3.0"], ["1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.8"]
    rows = {f"{col}.{i}": 1 for col in walks for i in (1, 2)}
    got = {gets[0]: 100, **rows}
    assert state.walk_due(walks, 0.0, 900)  # nothing known yet
    state.after_read(walks, gets, got, True, 0.0, state.resets)
    assert {o for c in state.rows for o in c} == set(rows)
    assert not state.walk_due(walks, 899.0, 900)
    assert state.walk_due(walks, 900.0, 900)  # rediscovery: new interfaces show
    assert state.walk_due(walks[:1], 10.0, 900)  # the profile changed its columns
    assert state.walk_due(walks, 10.0, 0)  # rediscover = 0: every poll walks
    state.after_read(walks, gets, got, False, 60.0, state.resets)  # every row answered
    assert state.rows and not state.walk_due(walks, 60.0, 900)
    state.after_read(walks, gets, {gets[0]: 100, **dict(list(rows.items())[1:])}, False, 60, 0)
    assert state.walk_due(walks, 61.0, 900)  # a row went: walk at the next poll
    state.after_read(walks, gets, got, True, 120.0, state.resets)
    state.resets += 1  # samples() saw sysUpTime go back: a reboot may renumber ifIndex
    state.after_read(walks, gets, got, False, 180.0, state.resets - 1)
    assert state.walk_due(walks, 181.0, 900)
    absent = {k: v for k, v in got.items() if k != gets[0]}  # sysUpTime unanswered: no walk
    state.after_read(walks, gets, got, True, 240.0, state.resets)
    state.after_read(walks, gets, absent, False, 300.0, state.resets)
    assert not state.walk_due(walks, 301.0, 900)


def test_known_rows_are_chunked_to_fit_a_response() -> None:
    """gufo-snmp reads responses of up to 4 KB: the GETs of known rows are sized by the
    values the walk found, long strings making smaller chunks."""
    col = "1.3.6.1.2.1.31.1.1.1"
    counters = [(f"{col}.6.{i}", 2**63 + i) for i in range(1, 301)]
    aliases = [(f"{col}.18.{i}", b"x" * 64) for i in range(1, 301)]
    for found in (counters, aliases, counters + aliases):
        got = engine.chunks(found)
        assert [o for c in got for o in c] == [o for o, _ in found]  # all, in order
        for c in got:
            values = dict(found)
            assert sum(engine._ber_size(o, values[o]) for o in c) <= engine.GET_BUDGET
    assert len(engine.chunks(counters)) < len(engine.chunks(aliases))
    assert engine.chunks([]) == ()
