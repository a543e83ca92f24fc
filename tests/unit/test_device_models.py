"""The pure parts of device configuration jobs: the platform table, IOS interface names, the
changes a job made and their undoing (CLI and NETCONF), and the redaction of secrets."""

from __future__ import annotations

from pathlib import Path

from daemons.devices import cliconf, platforms, xmlconf
from daemons.devices.redact import redact

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"


def test_every_platform_of_the_issue_is_in_the_table() -> None:
    wanted = {
        "cisco_ios",
        "cisco_xe",
        "cisco_nxos",
        "cisco_xr",
        "arista_eos",
        "juniper_junos",
        "huawei",
        "mikrotik_routeros",
        "linux",
        "netconf",
    }
    assert wanted <= set(platforms.names())
    for p in platforms.PLATFORMS.values():
        assert p.backup, p.name
        if p.jobs and not p.netconf:
            assert p.config_enter and p.config_exit, p.name
            assert p.save or p.commit, f"{p.name}: a change must persist"
    linux = platforms.PLATFORMS["linux"]
    assert not linux.jobs and "backups of one file only" in (linux.refusal("apply") or "")
    assert platforms.PLATFORMS["huawei"].refusal("dry-run")  # VRP 5: no dry-run
    assert platforms.PLATFORMS["juniper_junos"].refusal("dry-run") is None  # show | compare


def test_refusals_name_each_device(tmp_path: Path) -> None:
    (tmp_path / "t.cli.j2").write_text("x")
    got = platforms.refusals(
        tmp_path, "t", "apply", [("a", "cisco_ios"), ("b", "linux"), ("c", "netconf"), ("d", "x")]
    )
    assert got == [
        "b: linux: backups of one file only (device var backup_file); no configuration jobs",
        "c: no template t.netconf.j2 for a netconf device",
        "d: unknown platform x",
    ]


def test_ios_interface_abbreviations() -> None:
    cases = {
        "Et0/2": "Ethernet0/2",
        "e0/1": "Ethernet0/1",
        "Gi1/0/1": "GigabitEthernet1/0/1",
        "fa0/3": "FastEthernet0/3",
        "Te1/1/1": "TenGigabitEthernet1/1/1",
        "Po10": "Port-channel10",
        "Vl20": "Vlan20",
        "Lo0": "Loopback0",
        "Tu1": "Tunnel1",
        "GigabitEthernet0/1": "GigabitEthernet0/1",
    }
    assert {k: cliconf.expand_interface(k) for k in cases} == cases
    config = cliconf.apply(cliconf.parse("interface Ethernet0/2\n"), ["interface Et0/2", " shut"])
    assert cliconf.render(config) == "interface Ethernet0/2\n shut\n"


def test_cli_rollback_undoes_only_the_job() -> None:
    before = cliconf.parse("hostname sw1\ninterface GigabitEthernet0/1\n description old\n")
    after = cliconf.apply(
        before, ["vlan 20", " name voice", "exit", "interface Gi0/1", " description new"]
    )
    job = cliconf.changes(before, after)
    later = cliconf.apply(after, ["ntp server 192.0.2.1"])  # someone else's change
    assert cliconf.drift(job, later) == []
    target = cliconf.undo(later, job)
    assert cliconf.restore(later, target) == [
        "no vlan 20",
        "interface GigabitEthernet0/1",
        " description old",
        "exit",
    ]
    assert "ntp server 192.0.2.1" in cliconf.render(target)
    drifted = cliconf.apply(after, ["interface Gi0/1", " description someone"])
    (d,) = cliconf.drift(job, drifted)
    assert d == (("child", "interface GigabitEthernet0/1", "description new"), True)
    assert "+(absent) interface GigabitEthernet0/1 / description new" in cliconf.drift_text(
        [d], "sw1"
    )
    assert cliconf.translate(["no set a b", " no x"], "delete ") == ["delete a b", " delete x"]
    assert cliconf.translate(["no vlan 2"], "undo ") == ["undo vlan 2"]


def _data(body: str) -> str:
    return f'<data xmlns="{BASE}">{body}</data>'


def test_netconf_edit_changes_and_their_inverse() -> None:
    before = _data(
        '<interfaces xmlns="urn:i"><interface><name>eth0</name><description>a</description>'
        '</interface></interfaces><system xmlns="urn:s"><contact>noc</contact><ntp><server>'
        "<name>n1</name><udp><address>192.0.2.1</address></udp></server></ntp></system>"
    )
    edit = (
        f'<config xmlns="{BASE}"><interfaces xmlns="urn:i"><interface><name>eth0</name>'
        "<description>b</description></interface><interface><name>eth1</name></interface>"
        '</interfaces><system xmlns="urn:s"><ntp><server><name>n2</name></server></ntp>'
        '</system><new xmlns="urn:n"><a>1</a></new></config>'
    )
    after = xmlconf.merge_edit(before, edit)
    job = xmlconf.changes(xmlconf.parse(before), after)
    assert [xmlconf.describe(c.path) for c in job] == [
        "/interfaces/interface[name='eth0']/description",
        "/interfaces/interface[name='eth1']",
        "/system/ntp/server[name='n2']",
        "/new",
    ]
    undone = xmlconf.merge_edit(xmlconf.pretty(after), xmlconf.inverse_edit(job))
    assert xmlconf.canon(undone) == xmlconf.canon(xmlconf.parse(before))
    assert xmlconf.drift(job, after) == []
    assert len(xmlconf.drift(job, xmlconf.parse(before))) == 4


def test_a_delete_in_an_edit_and_a_container_with_a_name_leaf() -> None:
    before = _data(
        '<interfaces xmlns="urn:oc"><interface><name>e1</name><config><type>x</type>'
        "<name>e1</name></config></interface></interfaces>"
    )
    edit = (
        f'<config xmlns="{BASE}" xmlns:nc="{BASE}"><interfaces xmlns="urn:oc"><interface>'
        "<name>e1</name><config><name>e1</name><description>d</description></config>"
        '</interface></interfaces><system xmlns="urn:s" nc:operation="remove"/></config>'
    )
    after = xmlconf.pretty(xmlconf.merge_edit(before, edit))
    assert after.count("<config>") == 1 and "<description>d</description>" in after


def test_secrets_are_redacted() -> None:
    text = (
        "username ops privilege 15 secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0\n"
        "snmp-server community s3cret RO\n"
        " password 7 0822455D0A16\n"
        'set system root-authentication encrypted-password "$6$x$y"\n'
        "/user add name=x password=hunter2\n"
        "root:$6$salt$hash:19000:0:99999:7:::\n"
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r\n-----END OPENSSH PRIVATE KEY-----\n"
        "<password>abc</password><auth-key>k</auth-key>\n"
        "crypto key generate rsa\n description keyed uplink\n"
    )
    out = redact(text)
    for secret in ("$1$mERr", "s3cret", "0822455D0A16", "$6$x$y", "hunter2", "$6$salt", "b3Bl"):
        assert secret not in out, secret
    assert "<password><redacted></password>" in out and "<auth-key><redacted></auth-key>" in out
    assert "crypto key generate rsa" in out and "description keyed uplink" in out
    assert "snmp-server community <redacted> RO" in out
