"""/snmp/metrics text: families sorted by name, each line labelled with its target, a
target's lines rendered again only after its next poll."""

from __future__ import annotations

from daemons.poller.engine import Sample
from daemons.poller.exposition import SampleStore


def _row(i: str, alias: str) -> tuple[tuple[str, str], ...]:
    return (("ifIndex", i), ("ifAlias", alias))


def test_render_orders_families_and_follows_each_poll() -> None:
    store = SampleStore()
    one = _row("1", 'a "quoted" \\ alias\nnext')
    store.put(
        "olt-b",
        [
            Sample("ifHCInOctets", one, 10.0, "counter"),
            Sample("ifHCInOctets_rate", one, 2.5, "rate"),
            Sample("mixed", (), 1.0, "gauge"),
        ],
    )
    store.put("olt-a", [Sample("mixed", (("target", "inner"),), float("nan"), "counter")])
    assert store.render() == "\n".join(
        [
            "# HELP ifHCInOctets SNMP ifHCInOctets",
            "# TYPE ifHCInOctets counter",
            'ifHCInOctets{ifAlias="a \\"quoted\\" \\\\ alias\\nnext",ifIndex="1",'
            'target="olt-b"} 10',
            "# HELP ifHCInOctets_rate SNMP ifHCInOctets_rate",
            "# TYPE ifHCInOctets_rate gauge",
            'ifHCInOctets_rate{ifAlias="a \\"quoted\\" \\\\ alias\\nnext",ifIndex="1",'
            'target="olt-b"} 2.5',
            "# HELP mixed SNMP mixed",
            "# TYPE mixed counter",  # the kind of the first target's sample
            'mixed{target="inner",target="olt-a"} NaN',
            'mixed{target="olt-b"} 1',
            "",
        ]
    )
    store.put("olt-b", [Sample("ifHCInOctets", _row("1", "x"), 11.0, "counter")])
    store.forget("olt-a")
    assert store.render() == (
        "# HELP ifHCInOctets SNMP ifHCInOctets\n# TYPE ifHCInOctets counter\n"
        'ifHCInOctets{ifAlias="x",ifIndex="1",target="olt-b"} 11\n'
    )
    store.forget("olt-b")
    assert store.render() == ""
