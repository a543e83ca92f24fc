"""The shipped SNMP profiles load; a broken one names its file and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemons import resources
from daemons.core.policies import PolicyError, load_policies
from daemons.poller.profiles import load_profiles

REPO = Path(__file__).resolve().parents[2]


def test_shipped_profiles() -> None:
    profiles = load_profiles(load_policies(resources.path("policies"), 1))
    assert set(profiles) == {
        "if-mib",
        "system",
        "host-resources",
        "entity-sensor",
        "fiberhome-olt-optics",
    }
    ifmib = profiles["if-mib"]
    (table,) = ifmib.tables
    kinds = {c.name: c.type for c in table.columns}
    assert kinds["ifHCInOctets"] == "counter64" and kinds["ifInErrors"] == "counter32"
    assert table.labels == ("ifName", "ifAlias", "ifDescr")
    assert table.root == "1.3.6.1.2.1"
    fh = profiles["fiberhome-olt-optics"]
    assert fh.fits("1.3.6.1.4.1.5875.1.2") and not fh.fits("1.3.6.1.4.1.9.1.1")
    assert profiles["system"].fits(None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[profiles.x]\ninterval = 5\nscalars.a = { oid = '1.3.6.1', type = 'gauge' }", "interval"),
        ("[profiles.x]\nscalars.a = { oid = 'iso.3', type = 'gauge' }", "numeric OID"),
        ("[profiles.x]\nscalars.a = { oid = '1.3.6.1', type = 'float' }", "type is one of"),
        ("[profiles.x]\ndescription = 'nothing'", "polls nothing"),
        (
            "[profiles.x]\ntables.t.labels = ['n']\n"
            "tables.t.columns.v = { oid = '1.3.6', type = 'gauge' }",
            "not label columns",
        ),
        ("interval = 60", "unknown table"),
    ],
)
def test_broken_profiles_name_the_file(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "snmp").mkdir()
    (tmp_path / "snmp" / "bad.toml").write_text(text)
    with pytest.raises(PolicyError) as err:
        load_profiles(load_policies(tmp_path, 1))
    assert err.value.path == "snmp/bad.toml" and problem in str(err.value)
