"""What the operator installs is what we test: the wheel, in a fresh venv outside the checkout.

Round two found that an installed netd died at start (no dictionaries in the wheel) and that
an admin command or a daemon run from another directory used another state. Here the wheel
is built from this checkout, installed with its dependencies into a new venv under a
temporary folder, and run only from an unrelated working directory, with a config file whose
relative paths are relative to itself:

- ``netd --version`` is the package's version; ``netd migrate`` and ``check-config`` work;
- ``netd up`` on the embedded stores is ready, a NAS and a subscriber are added with the
  installed CLI, ``radtest`` is accepted, SIGTERM stops it with exit 0, and every line it
  logged (JSON format) is JSON, warnings included;
- the README's production steps: the units, sysusers file, example config and policies
  written out by the installed ``netd files``, checked by ``systemd-analyze verify``.

Slow (pip installs every dependency: about a minute with a warm pip cache).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import config_with_free_ports, tool

REPO = Path(__file__).resolve().parents[2]
# pip installs every dependency in the module's fixture, counted in the first test's time
pytestmark = pytest.mark.timeout(900)


def run(
    args: list[str],
    cwd: Path,
    stdin: str = "",
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> str:
    proc = subprocess.run(
        args,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# What netd reads at run time: each must be in the wheel and in the sdist.
NEEDED = (
    "daemons/resources/dictionaries/dictionary",
    "daemons/resources/dictionaries/dictionary.rfc2865",
    "daemons/resources/policies/radius/plans.toml",
    "daemons/resources/policies/radius/vendors.toml",
    "daemons/resources/policies/radius/realms.toml",  # issue 28
    "daemons/resources/policies/cwmp/presets.toml",
    "daemons/resources/policies/snmp/if-mib.toml",
    "daemons/resources/netd.example.toml",
    "daemons/resources/systemd/netd.target",
    "daemons/resources/systemd/netd-radius.service",
    "daemons/store/migrations/0001_events.sql",
    "daemons/console/templates/overview.html",
    "daemons/console/static/console.js",
    "daemons/console/static/console.css",
)


def _assert_carries(names: list[str], what: str, prefix: str = "") -> None:
    for needed in NEEDED:
        assert prefix + needed in names, f"{what} lacks {needed}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ folder of a fresh venv with the wheel of this checkout installed."""
    top = tmp_path_factory.mktemp("wheel")
    dist = top / "dist"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)], top)
    wheels = list(dist.glob("dotmac_netd-*.whl"))
    assert len(wheels) == 1, wheels
    _assert_carries(zipfile.ZipFile(wheels[0]).namelist(), "the wheel")
    venv = top / "venv"
    run([sys.executable, "-m", "venv", str(venv)], top)
    run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheels[0])],
        top,
        timeout=900,
    )
    run([str(venv / "bin" / "pip"), "check"], top)
    yield venv / "bin"


def test_installed_wheel_runs_from_anywhere(installed: Path, tmp_path: Path) -> None:
    radtest = tool("radtest", "freeradius-utils")
    netd = str(installed / "netd")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "netd.toml"
    config.write_text(config_with_free_ports("../state", "json"))
    settings = tomllib.loads(config.read_text())
    api, auth = settings["api"]["port"], settings["radius"]["auth_port"]
    assert run([netd, "--version"], elsewhere).strip() == f"netd {version}"
    conf = ["--config", str(config)]
    run([netd, *conf, "migrate"], elsewhere)
    report = run([netd, *conf, "check-config"], elsewhere)
    assert f"state directory:  {tmp_path / 'state'}" in report, report
    assert str(installed.parent / "lib") in report  # the packaged policies and dictionaries
    assert not (elsewhere / "var").exists() and list(elsewhere.iterdir()) == []

    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen([netd, *conf, "up"], cwd=elsewhere, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{api}/health/ready", up, tmp_path / "up.log")
        # radtest sends no Message-Authenticator: this NAS does not require it
        run(
            [
                netd,
                *conf,
                "nas",
                "add",
                "lo",
                "--address",
                "127.0.0.1",
                "--secret-stdin",
                "--no-require-message-authenticator",
            ],
            elsewhere,
            stdin="s3cret-nas\n",
        )
        run(
            [netd, *conf, "subscriber", "add", "alice", "--password-stdin", "--plan", "fiber-100"],
            elsewhere,
            stdin="pw-alice\n",
        )
        out = run([radtest, "alice", "pw-alice", f"127.0.0.1:{auth}", "0", "s3cret-nas"], elsewhere)
        assert "Received Access-Accept" in out, out
        # The console and the offline docs, from the installed package and its dependencies.
        base = f"http://127.0.0.1:{api}"
        for path, text in (
            ("/console/login", "Sign in"),
            ("/console/static/console.js", "EventSource"),
            ("/docs", "/docs/static/swagger-ui-bundle.js"),
            ("/docs/static/swagger-ui-bundle.js", "SwaggerUIBundle"),
            ("/docs/static/redoc.standalone.js", "Redoc"),
        ):
            got = httpx.get(base + path, timeout=10)
            assert got.status_code == 200 and text in got.text, (path, got.status_code)
        assert httpx.get(base + "/", timeout=10).status_code == 303  # to the sign-in
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, (tmp_path / "up.log").read_text()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        log.close()
    lines = (tmp_path / "up.log").read_text().splitlines()
    assert lines
    for line in lines:
        json.loads(line)  # every line JSON: warnings and libraries' lines too
    assert not any("Traceback" in line for line in lines)
    assert list(elsewhere.iterdir()) == []  # nothing written where it ran


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"netd up exited {proc.returncode}:\n{log.read_text()}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never ready:\n{log.read_text()}")


def test_production_steps_from_the_readme(installed: Path, tmp_path: Path) -> None:
    """The README's production section, with a temporary root for /etc and /usr/lib."""
    analyze = tool("systemd-analyze", "systemd")
    netd = str(installed / "netd")
    units = tmp_path / "etc" / "systemd" / "system"
    sysusers = tmp_path / "usr" / "lib" / "sysusers.d"
    etc_netd = tmp_path / "etc" / "netd"
    for folder in (units, sysusers, etc_netd):
        folder.mkdir(parents=True)
    run([netd, "files", "units", str(units)], tmp_path)
    run([netd, "files", "sysusers", str(sysusers)], tmp_path)
    (etc_netd / "netd.toml").write_text(run([netd, "files", "example-config"], tmp_path))
    run([netd, "files", "policies", str(etc_netd / "policies")], tmp_path)
    written = sorted(p.name for p in units.iterdir())
    assert "netd.target" in written and "netd-radius.service" in written
    for unit in units.glob("*.service"):
        assert f"ExecStart={netd} " in unit.read_text(), unit.name
    assert (sysusers / "netd.conf").read_text().startswith("#")
    assert (etc_netd / "policies" / "radius" / "plans.toml").is_file()
    # the example config, pointed at the copied policies, passes the same checks a daemon does
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETD_")}
    env["NETD_POLICIES_DIR"] = str(etc_netd / "policies")
    proc = subprocess.run(
        [netd, "--config", str(etc_netd / "netd.toml"), "check-config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and "config ok" in proc.stdout, proc.stderr
    verify = subprocess.run(
        [analyze, "verify", *sorted(str(p) for p in units.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    lines = [ln for ln in (verify.stdout + verify.stderr).splitlines() if ln.strip()]
    ours = [ln for ln in lines if not ln.startswith("/") or ln.startswith(str(tmp_path))]
    assert verify.returncode == 0 and not ours, "\n".join(lines)


def test_the_sdist_carries_what_netd_reads(tmp_path: Path) -> None:
    """The sdist (built from the tracked files, as a release would be) holds every run-time
    file, and a wheel built from that sdist alone still does: nothing comes from the checkout."""
    tree = _tracked_tree(tmp_path)
    dist = tmp_path / "dist"
    built = run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
            str(dist),
        ],
        tree,
    ).split()[-1]
    sdist = dist / built
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        _assert_carries(tar.getnames(), "the sdist", prefix=top + "/")
    wheel = _wheel_of(sdist, tmp_path)
    _assert_carries(zipfile.ZipFile(wheel).namelist(), "the wheel built from the sdist")


def _tracked_tree(tmp_path: Path) -> Path:
    """A copy of the checkout's tracked files (no build/ directory, no in-place builds)."""
    tree = tmp_path / "src"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    return tree


def _wheel_of(source: Path, tmp_path: Path, env: dict[str, str] | None = None) -> Path:
    """The wheel pip builds of ``source`` (a tree or an sdist), with the build tools here."""
    wheels = tmp_path / "wheels"
    args = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    run([*args, "-w", str(wheels), str(source)], tmp_path, timeout=300, env=env)
    (wheel,) = wheels.glob("dotmac_netd-*.whl")
    return wheel


def test_a_wheel_builds_without_a_compiler(tmp_path: Path) -> None:
    """Issue 30: the sendmmsg extension is optional, and so is issue 21's authentication
    history record. With no C compiler (CC=false) the wheel still builds, without them;
    netd then sends one datagram at a time (the pure path, tests/radius/
    test_interop_pure_send.py) and builds the record in Python (tests/radius/
    test_auth_log_line.py). With the compiler the wheel carries both."""
    wheel = _wheel_of(_tracked_tree(tmp_path), tmp_path, {**os.environ, "CC": "false"})
    names = zipfile.ZipFile(wheel).namelist()
    assert "daemons/radius/mmsg.py" in names and "daemons/radius/authlog.py" in names
    for ext in ("_mmsg", "_authlog"):
        assert not [n for n in names if n.startswith(f"daemons/radius/{ext}") and n.endswith(".so")]


def test_the_wheel_carries_the_c_extensions(installed: Path) -> None:
    python = str(installed / "python")
    out = subprocess.run(
        [
            python,
            "-c",
            "from daemons.radius import authlog, mmsg; "
            "print(mmsg.compiled() is not None and authlog.compiled() is not None)",
        ],
        cwd=installed,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.stdout.strip() == "True", out.stdout + out.stderr
