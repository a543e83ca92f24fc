"""The local CLI refuses what the API refuses, with one line and exit 2, before anything is
written (the problems of issue 19, each reproduced on the stores first)."""

from __future__ import annotations

import pytest

from tests.cli.runner import one_line_error, run


def _add_alice(env: dict[str, str]) -> None:
    made = run(
        env, "subscriber", "add", "alice", "--password-stdin", "--plan", "fiber-100", stdin="pw\n"
    )
    assert made.status == 0, made.err


def test_unknown_plan_is_refused(cli_env: dict[str, str]) -> None:
    _add_alice(cli_env)
    bad = run(cli_env, "subscriber", "set", "alice", "--plan", "nope")
    assert one_line_error(bad) and bad.status == 2, bad
    assert "no plan 'nope'" in bad.err
    assert run(cli_env, "subscriber", "add", "bob", "--plan", "nope").status == 2
    shown = run(cli_env, "subscriber", "show", "alice", "--json")
    assert '"plan": "fiber-100"' in shown.out, shown
    assert run(cli_env, "subscriber", "show", "bob").status == 1


def test_framed_ip_is_ipv4(cli_env: dict[str, str]) -> None:
    _add_alice(cli_env)
    bad = run(cli_env, "subscriber", "set", "alice", "--ip", "2001:db8::5")
    assert one_line_error(bad) and bad.status == 2, bad
    assert "IPv4" in bad.err and "2001:db8::5" in bad.err
    assert run(cli_env, "subscriber", "set", "alice", "--ip", "100.64.0.7").status == 0


def test_ipv6_subscribers(cli_env: dict[str, str]) -> None:
    """Issue 21: an IPv6 --ip is refused pointing to the IPv6 options (on main it named no
    way to give one); those options are checked by the same rules and stored."""
    _add_alice(cli_env)
    bad = run(cli_env, "subscriber", "set", "alice", "--ip", "2001:db8::5")
    assert one_line_error(bad) and bad.status == 2, bad
    assert "--ipv6" in bad.err and "--delegated-prefix" in bad.err
    for flag, value, says in (
        ("--ipv6", "100.64.0.1", "is IPv4"),
        ("--ipv6-prefix", "2001:db8:1:2::5/64", "host bits"),
        ("--ipv6-prefix", "10.0.0.0/8", "is IPv4"),
        ("--delegated-prefix", "2001:db8:2::", "prefix length"),
        ("--delegated-pool", "bad pool", "pool"),
    ):
        refused = run(cli_env, "subscriber", "set", "alice", flag, value)
        assert one_line_error(refused) and refused.status == 2 and says in refused.err, refused
    ok = run(
        cli_env,
        "subscriber",
        "set",
        "alice",
        "--ipv6",
        "2001:DB8:1:2::5",
        "--ipv6-prefix",
        "2001:db8:1:2::/64",
        "--delegated-prefix",
        "2001:db8:2:ab00::/56",
        "--ipv6-pool",
        "wan6",
        "--delegated-pool",
        "pd6",
    )
    assert ok.status == 0, ok
    shown = run(cli_env, "subscriber", "show", "alice", "--json").out
    for text in (
        '"framed_ipv6_address": "2001:db8:1:2::5"',
        '"framed_ipv6_prefix": "2001:db8:1:2::/64"',
        '"delegated_ipv6_prefix": "2001:db8:2:ab00::/56"',
        '"framed_ipv6_pool": "wan6"',
        '"delegated_ipv6_pool": "pd6"',
    ):
        assert text in shown, shown
    assert run(cli_env, "subscriber", "set", "alice", "--delegated-prefix", "").status == 0
    assert (
        '"delegated_ipv6_prefix": null' in run(cli_env, "subscriber", "show", "alice", "--json").out
    )


def test_ipv6_pools(cli_env: dict[str, str]) -> None:
    """Issue 21: netd's IPv6 pools, by the same rules as the API."""
    for argv, says in (
        (["2001:db8::/40", "--length", "96"], "/48 to /64"),
        (["2001:db8::1/40", "--length", "56"], "host bits"),
        (["10.0.0.0/8", "--length", "56"], "is IPv4"),
        (["2001:db8::/60", "--length", "56"], "does not fit"),
    ):
        bad = run(cli_env, "pool", "add6", "pd6", *argv)
        assert one_line_error(bad) and bad.status == 2 and says in bad.err, bad
    ok = run(cli_env, "pool", "add6", "pd6", "2001:db8::/40", "--length", "56")
    assert ok.status == 0 and "65536 prefixes" in ok.out, ok
    listed = run(cli_env, "pool", "list6", "--json").out
    assert '"prefix": "2001:db8::/40"' in listed and '"length": 56' in listed


def test_unknown_vendor_is_refused(cli_env: dict[str, str]) -> None:
    bad = run(
        cli_env,
        "nas",
        "add",
        "b1",
        "--address",
        "10.0.0.1",
        "--vendor",
        "foo",
        "--secret-stdin",
        stdin="s\n",
    )
    assert one_line_error(bad) and bad.status == 2, bad
    assert "vendor 'foo'" in bad.err and "mikrotik" in bad.err
    assert run(cli_env, "nas", "list", "--json").out == ""


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--profile", "nope"], "no profile 'nope'"),
        (["--interval", "5"], "interval"),
        (["--port", "0"], "port"),
        (["--address", "not-an-ip"], "address"),
        (["--tag", "a b"], "tag"),
    ],
)
def test_snmp_target_is_checked(cli_env: dict[str, str], extra: list[str], says: str) -> None:
    args = ["snmp", "target", "add", "t1", "--address", "10.0.0.2", "--secret-stdin", *extra]
    bad = run(cli_env, *args, stdin="public\n")
    assert one_line_error(bad) and bad.status == 2, bad
    assert says in bad.err
    assert run(cli_env, "snmp", "target", "list", "--json").out == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["subscriber", "add", "bob", "--mac", "zz:zz"],
        ["session", "list", "--ip", "999.1.1.1"],
        ["nas", "add", "bad name", "--address", "10.0.0.1", "--secret-stdin"],
        ["nas", "add", "b2", "--address", "10.0.0.1", "--coa-port", "0", "--secret-stdin"],
        ["pool", "add", "p1", "10.0.0.0/24", "--lease", "0"],
        ["pool", "add", "p1", "2001:db8::/120"],
        ["pool", "add", "p1", "10.0.0.0/8"],
        ["subscriber", "list", "--limit", "-1"],
        ["token", "create", "--name", "bad name", "--role", "viewer"],
        ["snmp", "trap-user", "add", "bad user", "--auth", "sha"],
        ["snmp", "get", "--address", "127.0.0.1", "--timeout", "inf", "--secret-stdin", "1.3.6"],
        ["snmp", "get", "--address", "127.0.0.1", "--port", "70000", "--secret-stdin", "1.3.6"],
        ["cpe", "cancel", "99999999999999999999"],
        ["cpe", "list", "--limit", "0"],
        ["cpe", "file-put", "f1", "/etc/hostname", "--type", "nope"],
        ["onu", "bind", "ALPH00000001", "--subscriber", "x", "--s-tag", "5000", "--c-tag", "1"],
        ["onu-firmware", "start", "--stack", "s", "--version", "v", "--url", "u", "x"],
        ["device", "add", "d1", "--address", "nope", "--platform", "cisco_ios", "--user", "u"],
        ["device", "add", "d1", "--address", "10.0.0.5", "--platform", "Cisco IOS", "--user", "u"],
        ["config-job", "create", "nope", "--device", "d1"],
        ["config-job", "status", "99999999999999999999"],
        ["session", "coa", "s1", "--retries", "0"],
    ],
)
def test_refused_in_one_line(cli_env: dict[str, str], argv: list[str]) -> None:
    bad = run(cli_env, *argv, stdin="secret-pass secret-pass\n")
    assert one_line_error(bad) and bad.status == 2, bad
