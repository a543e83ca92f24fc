"""One stack of real daemons for the security checks, shared by the package.

`netd api` (HTTPS and gRPC over TLS, a low per-token rate limit), `netd acs` (HTTPS, a low
per-source-IP rate limit), `netd radius`, `netd poller`, `netd devices` and `netd voltha`
(SADIS on), each a process of its own on loopback ports picked here, over a fresh database
and a private Redis key prefix, each under memory-deny-write-execute (as the units run
them). Tokens are made with the real CLI (`netd token create`).

Every secret the stack is given is registered in ``Stack.secrets``; at the end every log
the stack left (the daemons' output) is searched for them, as text, hex and base64.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from daemons import resources
from tests.certs import write_self_signed
from tests.conftest import StoreUrls, fresh_database
from tests.faults.conftest import LeakWatch
from tests.support import NetdProcess, free_port, free_udp_port, netd_env

REPO = Path(__file__).resolve().parents[2]
API_RATE = 1  # requests/s per API token: slow, so no token comes back during a check
API_BURST = 20
ACS_RATE = 2  # requests/s per source address
ACS_BURST = 5


#: runs its arguments with Linux's memory-deny-write-execute (prctl PR_SET_MDWE, 6.3+): no
#: mapping may become writable and executable, inherited by children and across exec. It is
#: what the units' MemoryDenyWriteExecute=yes asks of systemd, so the stack shows the
#: daemons (TLS, gRPC, cryptography's cffi, uvloop) work under it.
MDWE_EXEC = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) == 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print(MDWE_ON, file=sys.stderr, flush=True)
elif ctypes.get_errno() != errno.EINVAL:  # EINVAL: a kernel before 6.3, without it
    raise SystemExit("PR_SET_MDWE: " + os.strerror(ctypes.get_errno()))
os.execv(sys.executable, [sys.executable, "-m", "daemons.cli", *sys.argv[1:]])
"""
MDWE_ON = "netd-test: memory-deny-write-execute on"
MDWE_EXEC = f"MDWE_ON = {MDWE_ON!r}\n" + MDWE_EXEC


class MdweNetd(NetdProcess):
    """``netd ARGS`` as NetdProcess runs it, under memory-deny-write-execute."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path) -> None:
        self.log_path = cwd / f"netd-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MDWE_EXEC, *args],
            env=dict(env),
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A P-256 certificate for 127.0.0.1 and its key, written under ``directory``."""
    return write_self_signed(directory, "netd")


@dataclass
class Stack:
    tmp: Path
    dsn: str
    redis_url: str
    prefix: str
    key: bytes
    env: dict[str, str]
    cert: Path
    api_port: int
    grpc_port: int
    acs_port: int
    radius_port: int
    sadis_port: int
    status: dict[str, int]  # daemon -> status port
    exporter_port: int
    tokens: dict[str, str]  # name -> secret (the "revoked" one is revoked)
    procs: dict[str, NetdProcess]
    secrets: LeakWatch
    extra: dict[str, str] = field(default_factory=dict)

    def ssl(self) -> ssl.SSLContext:
        """A client context trusting the stack's certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def api(self, token: str | None = "admin") -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.AsyncClient(
            base_url=self.api_url, headers=headers, verify=self.ssl(), timeout=15.0
        )

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``netd ARGS`` against the stack's stores; fails the test on a non-zero exit."""
        done = subprocess.run(
            [sys.executable, "-m", "daemons.cli", *args],
            env=self.env,
            cwd=self.tmp,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"netd {' '.join(args)}: {done.stderr}"
        return done

    def metrics_text(self, daemon: str) -> str:
        """A daemon's /metrics (on its status port; the API's on its own)."""
        if daemon == "api":
            url = f"{self.api_url}/metrics"
        else:
            url = f"http://127.0.0.1:{self.status[daemon]}/metrics"
        return httpx.get(url, verify=self.ssl(), timeout=5).text

    def metric(self, daemon: str, name: str) -> float:
        """The sum of a metric's samples on a daemon's status port (the API: its own)."""
        text = self.metrics_text(daemon)
        total = 0.0
        for line in text.splitlines():
            if line.startswith((name + "{", name + " ")):
                total += float(line.rsplit(" ", 1)[1])
        return total


def _wait_ready(proc: NetdProcess, url: str, cert: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise AssertionError(f"netd exited {proc.proc.returncode}:\n{proc.output()}")
        try:
            resp = httpx.get(url, verify=ssl.create_default_context(cafile=str(cert)), timeout=2.0)
            if resp.status_code == 200:
                return
            last = resp.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} never ready (last: {last}):\n{proc.output()}")


@pytest.fixture(scope="package")
async def stack(
    store_urls: StoreUrls, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("security")
    cert, key_file = self_signed(tmp)
    watch = LeakWatch(tmp)
    key = os.urandom(32)
    watch.add(key)
    prefix = "s" + uuid.uuid4().hex[:10]
    status = {d: free_port() for d in ("radius", "acs", "poller", "devices", "voltha")}
    ports = {
        "api": free_port(),
        "grpc": free_port(),
        "acs": free_port(),
        "radius": free_udp_port(),
        "acct": free_udp_port(),
        "sadis": free_port(),
        "exporter": free_port(),
    }
    async with fresh_database(store_urls, "s_", migrated=True) as dsn:
        env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": prefix,
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_STATE_DIR": str(tmp / "state"),
                "NETD_POLICIES_DIR": str(resources.path("policies")),
                "NETD_LOG_FORMAT": "json",
                "NETD_API_PORT": str(ports["api"]),
                "NETD_API_GRPC_PORT": str(ports["grpc"]),
                "NETD_API_TLS_CERT": str(cert),
                "NETD_API_TLS_KEY": str(key_file),
                "NETD_API_RATE_LIMIT": str(API_RATE),
                "NETD_API_RATE_BURST": str(API_BURST),
                "NETD_ACS_PORT": str(ports["acs"]),
                "NETD_ACS_TLS_CERT": str(cert),
                "NETD_ACS_TLS_KEY": str(key_file),
                "NETD_ACS_RATE_LIMIT": str(ACS_RATE),
                "NETD_ACS_RATE_BURST": str(ACS_BURST),
                "NETD_RADIUS_LISTEN": "127.0.0.1",
                "NETD_RADIUS_AUTH_PORT": str(ports["radius"]),
                "NETD_RADIUS_ACCT_PORT": str(ports["acct"]),
                "NETD_POLLER_EXPORTER_PORT": str(ports["exporter"]),
                "NETD_POLLER_TRAP_PORT": "0",
                "NETD_VOLTHA_SADIS_PORT": str(ports["sadis"]),
                **{f"NETD_{d.upper()}_STATUS_PORT": str(p) for d, p in status.items()},
            }
        )
        s = Stack(
            tmp,
            dsn,
            store_urls.redis,
            prefix,
            key,
            env,
            cert,
            ports["api"],
            ports["grpc"],
            ports["acs"],
            ports["radius"],
            ports["sadis"],
            status,
            ports["exporter"],
            {},
            {},
            watch,
        )
        try:
            for daemon in ("api", "acs", "radius", "poller", "devices", "voltha"):
                s.procs[daemon] = MdweNetd([daemon], env, tmp)
            # The first admin token is made the way an operator makes it, with the CLI
            # (while the daemons start); the others through the API with it.
            out = await asyncio.to_thread(
                s.cli, "token", "create", "--role", "admin", "--name", "sec-admin"
            )
            s.tokens["admin"] = out.stdout.splitlines()[0].strip()
            watch.add(s.tokens["admin"])
            await asyncio.to_thread(_wait_ready, s.procs["api"], f"{s.api_url}/health/ready", cert)
            async with s.api() as client:
                for name, role in (("viewer", "viewer"), ("other", "viewer"), ("revoked", "admin")):
                    resp = await client.post(
                        "/api/v1/tokens", json={"name": f"sec-{name}", "role": role}
                    )
                    assert resp.status_code == 201, resp.text
                    s.tokens[name] = resp.json()["token"]
                    watch.add(s.tokens[name])
                resp = await client.delete("/api/v1/tokens/sec-revoked")
                assert resp.status_code == 204, resp.text
            for daemon, port in status.items():
                url = f"http://127.0.0.1:{port}/health/ready"
                await asyncio.to_thread(_wait_ready, s.procs[daemon], url, cert)
            yield s
        finally:
            for proc in s.procs.values():
                proc.stop()
            outputs = {d: p.output() for d, p in s.procs.items()}
            for daemon, out in outputs.items():
                assert "Traceback" not in out, f"netd {daemon}:\n{out}"
            leaks = watch.check()
            assert not leaks, "secrets in logs:\n" + "\n".join(leaks)
            client = aioredis.from_url(store_urls.redis)
            with contextlib.suppress(RedisError):
                keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
                if keys:
                    await client.delete(*keys)
            await client.aclose()
