"""Fail loud on configuration (issue 19).

Reproduced in round two: `netd check-config` said "config ok" with a syntax error in
plans.toml, and without policies/ `netd radius` reported ready and rejected everyone. Now
check-config loads everything a daemon would (config, dictionaries, plans, vendors, presets,
SNMP profiles, config templates) and names the file and line of the first problem, exit 2;
a daemon refuses to start without the policies it needs; admin commands are quiet unless -v.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from daemons import resources
from tests.certs import write_self_signed
from tests.conftest import StoreUrls
from tests.support import free_port, free_udp_port, netd_env
from tests.support import run_netd as netd


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(resources.path("policies"), copy)
    return copy


def check(tmp_path: Path, policies: Path) -> subprocess.CompletedProcess[str]:
    env = netd_env({"NETD_POLICIES_DIR": str(policies), "NETD_STATE_DIR": str(tmp_path / "s")})
    return netd(env, tmp_path, "check-config")


def test_check_config_reports_what_is_in_use(tmp_path: Path, policies: Path) -> None:
    ok = check(tmp_path, policies)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == "config ok"
    for shown in (
        "config file:",
        f"state directory:  {tmp_path / 's'}",
        f"embedded PostgreSQL in {tmp_path / 's' / 'postgres'}",
        "embedded Redis in",
        f"policies:         {policies}",
        "radius plans:",
        "snmp profiles:",
        f"config templates: {len(list((policies / 'config').glob('*.j2')))}",
    ):
        assert shown in ok.stdout, (shown, ok.stdout)
    assert not (tmp_path / "s").exists()  # it looks, it does not create


@pytest.mark.parametrize(
    ("file", "text", "line", "problem"),
    [
        ("radius/plans.toml", "\n[plans.broken\nx = 1\n", "", "Expected ']'"),
        ("radius/plans.toml", "\n[plans.bad]\nnosuchkey = 1\n", "", "unknown key(s)"),
        (
            "radius/vendors.toml",
            '\n[vendors.odd]\nrate = { attribute = "No-Such-Attr", template = "x" }\n',
            "",
            "vendor 'odd'",
        ),
        ("cwmp/presets.toml", "\n[presets.p]\nbogus = 1\n", "", "preset 'p'"),
        ("snmp/if-mib.toml", "\n[profiles.z]\ninterval = 1\n", "", "profile 'z'"),
        ("config/access-vlan.cli.j2", "\n{% if %}\n", "", "config/access-vlan.cli.j2"),
    ],
)
def test_check_config_names_file_and_line(
    tmp_path: Path, policies: Path, file: str, text: str, line: str, problem: str
) -> None:
    target = policies / file
    before = target.read_text()
    target.write_text(before + text)
    # the line of the first line the test appended that starts the broken table or block
    expected_line = before.count("\n") + 2
    bad = check(tmp_path, policies)
    assert bad.returncode == 2, bad.stdout
    assert bad.stdout == ""
    lines = bad.stderr.splitlines()
    assert len(lines) == 1, lines
    assert f"{target}:{expected_line}:" in lines[0], lines[0]
    assert problem in lines[0], lines[0]


def test_check_config_names_a_broken_dictionary(tmp_path: Path, policies: Path) -> None:
    """An operator dictionary (radius.dictionaries) that does not parse: file, line, exit 2."""
    bad = tmp_path / "dictionary.site"
    bad.write_text("ATTRIBUTE\tSite-Good\t3000\tstring\nATTRIBUTE\tSite-Bad\tnope\tstring\n")
    config = tmp_path / "netd.toml"
    config.write_text('[radius]\ndictionaries = ["dictionary.site"]\n')
    env = netd_env({"NETD_POLICIES_DIR": str(policies), "NETD_STATE_DIR": str(tmp_path / "s")})
    proc = netd(env, tmp_path, "--config", str(config), "check-config")
    assert proc.returncode == 2, proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and f"{bad}:2:" in lines[0], lines
    assert "nope" in lines[0], lines


def test_a_daemon_refuses_to_start_without_its_policies(
    tmp_path: Path, store_urls: StoreUrls, migrated: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    base = {
        "NETD_DATABASE_URL": migrated,
        "NETD_REDIS_URL": store_urls.redis,
        "NETD_STATE_DIR": str(tmp_path / "state"),
        "NETD_RADIUS_AUTH_PORT": str(free_udp_port()),
        "NETD_RADIUS_ACCT_PORT": str(free_udp_port()),
        "NETD_RADIUS_STATUS_PORT": str(free_port()),
        "NETD_LOG_FORMAT": "text",
    }
    for folder, said in (
        (empty, "no plans in"),
        (tmp_path / "missing", "the policies directory does not exist"),
    ):
        proc = netd(netd_env({**base, "NETD_POLICIES_DIR": str(folder)}), tmp_path, "radius")
        assert proc.returncode == 2, proc.stderr
        assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert "ready" not in proc.stderr.split("startup failed")[0]


def test_admin_commands_are_quiet_unless_verbose(tmp_path: Path) -> None:
    """Each CLI call used to print 2-3 lines about the embedded stores starting and
    stopping; they show with -v only."""
    env = netd_env({"NETD_STATE_DIR": str(tmp_path / "state"), "NETD_LOG_FORMAT": "text"})
    made = netd(env, tmp_path, "migrate")
    assert made.returncode == 0, made.stderr
    quiet = netd(env, tmp_path, "nas", "list")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = netd(env, tmp_path, "-v", "nas", "list")
    assert loud.returncode == 0, loud.stderr
    assert "embedded PostgreSQL started" in loud.stderr, loud.stderr


def test_check_config_and_start_name_an_unusable_eap_certificate(
    tmp_path: Path, policies: Path, store_urls: StoreUrls, migrated: str
) -> None:
    """issue 29: a missing or unreadable EAP certificate, or a key that is not its key, is
    one line at check-config and at start (exit 2), naming the key and the file."""
    cert, key = write_self_signed(tmp_path / "pki", "server")
    _, other_key = write_self_signed(tmp_path / "pki", "other")
    base = {"NETD_POLICIES_DIR": str(policies), "NETD_STATE_DIR": str(tmp_path / "s")}
    good = {**base, "NETD_RADIUS_EAP_CERT": str(cert), "NETD_RADIUS_EAP_KEY": str(key)}
    ok = netd(netd_env({**good, "NETD_RADIUS_EAP_CA": str(cert)}), tmp_path, "check-config")
    assert ok.returncode == 0, ok.stderr
    assert "radius eap:" in ok.stdout and "md5, peap, ttls, tls (certificate" in ok.stdout
    assert "TLS 1.2-1.3, PEAP/TTLS up to 1.2" in ok.stdout, ok.stdout
    no_ca = netd(netd_env(good), tmp_path, "check-config")
    assert "md5, peap, ttls (not tls: no radius.eap_ca)" in no_ca.stdout, no_ca.stdout
    for env, said in (
        ({**good, "NETD_RADIUS_EAP_CERT": str(tmp_path / "nope.crt")}, "radius.eap_cert: "),
        ({**good, "NETD_RADIUS_EAP_KEY": str(other_key)}, "radius.eap_key: "),
        ({**good, "NETD_RADIUS_EAP_CA": str(tmp_path / "nope.ca")}, "radius.eap_ca: "),
        ({**good, "NETD_RADIUS_EAP_METHODS": "peap,tlsx"}, "tlsx"),
        ({**good, "NETD_RADIUS_EAP_TLS_MIN_VERSION": "1.3"}, "eap_tunnel_max_version"),
    ):
        bad = netd(netd_env(env), tmp_path, "check-config")
        assert bad.returncode == 2 and bad.stdout == "", bad.stdout
        lines = bad.stderr.splitlines()
        assert len(lines) == 1 and said in lines[0], lines
    start = netd(
        netd_env(
            {
                **good,
                "NETD_RADIUS_EAP_CERT": str(tmp_path / "nope.crt"),
                "NETD_DATABASE_URL": migrated,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_RADIUS_AUTH_PORT": str(free_udp_port()),
                "NETD_RADIUS_ACCT_PORT": str(free_udp_port()),
                "NETD_RADIUS_STATUS_PORT": str(free_port()),
                "NETD_LOG_FORMAT": "text",
            }
        ),
        tmp_path,
        "radius",
    )
    assert start.returncode == 2, start.stderr
    assert "radius.eap_cert: " in start.stderr and "Traceback" not in start.stderr
