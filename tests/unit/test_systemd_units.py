"""The units in systemd/: hardened, Type=notify, and accepted by systemd-analyze."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemons import resources
from daemons.cli import build_parser

UNITS = resources.path("systemd")
DAEMON_UNITS = sorted(UNITS.glob("netd-*.service"))
LOW_PORT_UNITS = {"netd-poller.service", "netd.service"}  # SNMP traps on 162/udp


def parse(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=True, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(path)
    return cp


@pytest.mark.parametrize("path", [*DAEMON_UNITS, UNITS / "netd.service"], ids=lambda p: p.name)
def test_daemon_units_are_hardened(path: Path) -> None:
    svc = parse(path)["Service"]
    exec_args = svc["ExecStart"].split()[1:]
    build_parser().parse_args(exec_args)  # a real subcommand
    assert svc["User"] == "netd" and svc["Group"] == "netd"
    assert svc["ProtectSystem"] == "strict" and svc["NoNewPrivileges"] == "yes"
    assert "/var/lib/netd" in svc["ReadWritePaths"].split()
    if exec_args[0] == "migrate":
        assert svc["Type"] == "oneshot"
        return
    if path.name != "netd.service":  # a daemon alone starts only on a migrated schema
        assert "netd-migrate.service" in parse(path)["Unit"]["Requires"].split()
    assert svc["Type"] == "notify" and svc["NotifyAccess"] == "main"
    assert svc["WatchdogSec"] and svc["Restart"] == "on-failure"
    assert svc["ExecReload"].endswith("-HUP $MAINPID")
    if path.name in LOW_PORT_UNITS:
        assert svc["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
        assert svc["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    else:
        assert svc["CapabilityBoundingSet"] == "" and svc["AmbientCapabilities"] == ""


def test_target_wants_every_daemon_unit() -> None:
    wants = set(parse(UNITS / "netd.target")["Unit"]["Wants"].split())
    assert wants == {p.name for p in DAEMON_UNITS}


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install the Debian package 'systemd'"
    netd = Path(sys.executable).with_name("netd")
    assert netd.exists(), f"{netd} is missing: install the package (make install)"
    copies = []
    for unit in [*sorted(UNITS.glob("netd*.service")), UNITS / "netd.target"]:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/netd/bin/netd", str(netd)))
        copies.append(str(copy))
    proc = subprocess.run(
        [analyze, "verify", *copies], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    # Lines about the machine's own units (freeradius.service's MemoryLimit=, say, once the
    # Debian package is installed for the benchmarks) are not ours to fix.
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    problems = [ln for ln in lines if not ln.startswith("/") or ln.startswith(str(tmp_path))]
    assert proc.returncode == 0 and not problems, "\n".join(lines)
