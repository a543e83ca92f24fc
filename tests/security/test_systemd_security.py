"""`systemd-analyze security` scores every unit in systemd/ "OK" or better.

systemd's levels by overall exposure (src/analyze/analyze-security.c): PERFECT 0.0, SAFE
0.1-0.9, OK 1.0-4.9, MEDIUM 5.0-7.4, EXPOSED 7.5-8.9, UNSAFE 9.0-9.9, DANGEROUS 10. The
offline mode (systemd >= 252) reads the unit file as given. `systemd-analyze verify` of
the same units is tests/unit/test_systemd_units.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemons import resources
from tests.security.conftest import MDWE_ON, Stack

UNITS = sorted((resources.path("systemd")).glob("*.service"))
GOOD = {"PERFECT", "SAFE", "OK"}
_OVERALL = re.compile(r"Overall exposure level for (\S+): (\d+\.\d) (\w+)")


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: install Debian's 'systemd' package (>= 252)"
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.split()[1])
    assert major >= 252, f"systemd {major}: --offline needs 252 or later"
    return found


def test_the_units_are_all_there() -> None:
    names = {p.name for p in UNITS}
    assert {"netd.service", "netd-migrate.service"} <= names and len(names) >= 8, names


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_security_exposure_is_ok_or_better(unit: Path) -> None:
    proc = subprocess.run(
        [_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = proc.stdout + proc.stderr
    found = _OVERALL.search(out)
    assert found, f"no overall exposure for {unit.name}:\n{out}"
    exposure, level = float(found.group(2)), found.group(3)
    print(f"{unit.name}: {exposure} {level}")  # the scores, with -s
    assert level in GOOD and exposure < 5.0, f"{unit.name}: {exposure} {level}\n{out}"
    # MemoryDenyWriteExecute is on: tests/security runs the daemons under PR_SET_MDWE
    assert "Service cannot create writable executable memory mappings" in out, out


def test_the_daemons_run_under_memory_deny_write_execute(stack: Stack) -> None:
    """MemoryDenyWriteExecute=yes does not break them: every daemon of the stack (HTTPS,
    gRPC over TLS, RADIUS, SNMP, SSH/NETCONF libraries, SADIS) started under PR_SET_MDWE and
    served the other tests. A kernel before 6.3 has no PR_SET_MDWE: skipped there."""
    probe = subprocess.run(
        [sys.executable, "-c", "import ctypes; print(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0))"],
        capture_output=True,
        text=True,
        check=True,
    )
    if probe.stdout.strip() == "-1":
        pytest.skip("this kernel has no PR_SET_MDWE (Linux >= 6.3)")
    for daemon, proc in stack.procs.items():
        assert MDWE_ON in proc.output(), daemon
        assert proc.proc.poll() is None, f"netd {daemon} died:\n{proc.output()}"
