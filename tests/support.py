"""Helpers for tests that run ``netd`` as a real process on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free a moment ago on ``host``."""
    with socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM
    ) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def netd_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without any NETD_* variable (the gRPC API off),
    plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETD_")}
    env.pop("NOTIFY_SOCKET", None)
    # The gRPC API's default port (9190) is the same for every `netd api`: off unless a test
    # picks a free port for it (tests/nbi), so that processes started side by side agree.
    env["NETD_API_GRPC_PORT"] = "0"
    # Every simulated CPE listens on loopback, where connection requests never go by default
    # (acs.guard); tests/security/test_connreq_targets.py turns this off to show that.
    env["NETD_ACS_CONNECTION_REQUEST_ALLOW_LOOPBACK"] = "true"
    env.update(overrides)
    return env


class NetdProcess:
    """``python -m daemons.cli ARGS`` with its output in a file, stopped at the end."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path) -> None:
        self.log_path = cwd / f"netd-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemons.cli", *args],
            env=dict(env),
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, status: int = 200, timeout: float = 20.0) -> httpx.Response:
        """Poll ``url`` until it answers ``status``; fail with the process output if not."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"netd exited {self.proc.returncode}:\n{self.output()}")
            try:
                resp = httpx.get(url, timeout=2.0)
                if resp.status_code == status:
                    return resp
                last = resp.status_code
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise AssertionError(f"{url} never answered {status} (last: {last}):\n{self.output()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"netd did not exit in {timeout}s:\n{self.output()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(OSError):
            self._log.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def tool(name: str, package: str) -> str:
    """The path of a peer program; fails (never skips) naming the Debian package."""
    path = shutil.which(name)
    assert path, f"{name} is missing: apt-get install {package} (.ci/run installs it)"
    return path


def run_netd(
    env: Mapping[str, str], cwd: Path, *args: str, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m daemons.cli ARGS`` run to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", *args],
        input=stdin,
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def radclient_auth(port: int, secret: str, user: str, password: str) -> str:
    """One PAP Access-Request with Message-Authenticator by FreeRADIUS's radclient; what it
    printed ("Access-Accept", "Access-Reject" or a timeout)."""
    proc = subprocess.run(
        [
            tool("radclient", "freeradius-utils"),
            "-r",
            "2",
            "-t",
            "3",
            f"127.0.0.1:{port}",
            "auth",
            secret,
        ],
        input=f'User-Name = "{user}"\nUser-Password = "{password}"\nMessage-Authenticator = 0x00\n',
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.stdout + proc.stderr


def config_with_free_ports(state_dir: str, log_format: str = "text") -> str:
    """A netd.toml for `netd up` with every listener on a free loopback port (gRPC and
    traps off) and ``state_dir`` (relative paths are relative to the file)."""
    return f"""state_dir = "{state_dir}"
[log]
format = "{log_format}"
[api]
port = {free_port()}
grpc_port = 0
[radius]
auth_port = {free_udp_port()}
acct_port = {free_udp_port()}
[acs]
port = {free_port()}
[poller]
exporter_port = {free_port()}
trap_port = 0
[voltha]
sadis_port = {free_port()}
"""
