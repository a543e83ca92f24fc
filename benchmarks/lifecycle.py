"""Foundation: how fast `netd up` becomes ready and stops, and what /health/ready serves.

Runs `netd up` as a real process on loopback:
- cold start: empty state directory (initdb of the embedded PostgreSQL) until /health/ready
  answers 200; warm start: the same directory again (servers stopped); stop: SIGTERM until
  the process has exited and stopped the embedded servers;
- external stores: ready time when PostgreSQL and Redis already run (URLs configured);
- /health/live and /health/ready under load from wrk (32 connections, one thread, DURATION
  seconds): requests/s and latency percentiles. ready runs `SELECT 1` on PostgreSQL and
  `PING` on Redis per request; live touches no store. (httpx as a client tops out near
  260 req/s here, so the load comes from wrk.)
There is no reference tool for these; figures are absolute, medians of RUNS runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import median, table, write
from benchmarks.common import wrk as common_wrk
from daemons.store.embedded import EmbeddedStores

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
CONCURRENCY = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NETD_")}
    base.update({"NETD_LOG_LEVEL": "warning", **extra})
    return base


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(cwd: Path, extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemons.cli", "up"],
        cwd=cwd,
        env=env(
            {
                "NETD_API_PORT": str(port),
                "NETD_API_GRPC_PORT": str(free_port()),
                "NETD_RADIUS_AUTH_PORT": str(free_udp_port()),
                "NETD_RADIUS_ACCT_PORT": str(free_udp_port()),
                "NETD_ACS_PORT": str(free_port()),
                "NETD_POLLER_EXPORTER_PORT": str(free_port()),
                "NETD_POLLER_TRAP_PORT": "0",
                **extra,
            }
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"netd exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return proc, url, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("netd never became ready")


def stop(proc: subprocess.Popen[bytes]) -> float:
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    if code != 0:
        raise RuntimeError(f"netd exited with {code} on SIGTERM")
    return time.perf_counter() - t0


def wrk(url: str) -> dict[str, float]:
    """Load ``url`` with wrk (32 connections, one thread): requests/s, latency in ms."""
    return common_wrk(url, CONCURRENCY, DURATION)


def run() -> list[dict[str, Any]]:
    cold, warm, stops, external = [], [], [], []
    live: list[dict[str, float]] = []
    ready: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="netd-bench-") as tmp:
        for i in range(RUNS):
            cwd = Path(tmp) / f"run{i}"
            cwd.mkdir()
            proc, _, t = start(cwd, {})
            cold.append(t)
            stops.append(stop(proc))
            proc, _, t = start(cwd, {})
            warm.append(t)
            stops.append(stop(proc))
        stores = EmbeddedStores(
            Path(tmp) / "shared", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        try:
            assert stores.postgres is not None and stores.redis is not None
            urls = {"NETD_DATABASE_URL": stores.postgres.dsn, "NETD_REDIS_URL": stores.redis.url}
            for i in range(RUNS):
                cwd = Path(tmp) / f"ext{i}"
                cwd.mkdir()
                proc, url, t = start(cwd, urls)
                external.append(t)
                for path, sink in (("/health/live", live), ("/health/ready", ready)):
                    sink.append(wrk(url + path))
                stop(proc)
        finally:
            stores.release()
    return [
        {"measure": "cold start to ready (initdb)", "median": median(cold), "unit": "s"},
        {"measure": "warm start to ready (embedded)", "median": median(warm), "unit": "s"},
        {"measure": "start to ready (external stores)", "median": median(external), "unit": "s"},
        {"measure": "SIGTERM to exit (embedded stop)", "median": median(stops), "unit": "s"},
    ] + [
        {
            "measure": f"{path} {key}",
            "median": median([r[key] for r in rows]),
            "unit": "req/s" if key == "rps" else "ms",
        }
        for path, rows in (("/health/live", live), ("/health/ready", ready))
        for key in ("rps", "50%", "99%")
    ]


if __name__ == "__main__":
    rows = run()
    print(table(rows))
    write("lifecycle", rows)
