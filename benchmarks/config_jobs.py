"""Config backups of 200 simulated devices: devices per minute for `netd devices`, against
a bare netmiko loop with the same concurrency, and how responsive the daemon's own event
loop and the API stay while the job runs.

Devices: BENCH_CONFIG_DEVICES (default 200) of our IOS-like SSH simulators
(tests/devices/ios_sim.py, asyncssh), served by a separate process of this module
(``--serve N``) so that their SSH work is not in the measured processes; each has a
running config of about 100 lines. Embedded PostgreSQL and Redis, schema migrated; the
devices are added with their host keys already accepted.
Per run (BENCH_RUNS, default 3), in this order:
- bare netmiko: this process connects to every device with netmiko (cisco_ios, the same
  timeouts), reads ``show running-config`` and disconnects, BENCH_CONFIG_CONCURRENCY at
  once (default 8, the daemon's default) in a thread pool; wall time gives devices/min.
- netd: `netd devices` (a real process, devices.concurrency the same) is asked to back up
  every device (NOTIFY, as the API's POST /devices/{name}/backup does for one); wall time
  until every device has a backup row gives devices/min. The configs change between runs
  (a line added on every device), so each run stores 200 new backups.
  Meanwhile a probe sends GET /health/ready to the daemon's status port (served by the same
  event loop as the job) and GET /api/v1/devices to `netd api` (another process), 20
  requests/s each, and keeps their latencies: p50 and p99 during the job, and for 5 s
  before it (idle) as the baseline.
Figures are medians of the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

from benchmarks.common import median, migrated_stores, table, write
from benchmarks.radius_auth import _stop, free_port
from daemons import resources
from daemons.core.secrets import Sealer
from daemons.store import api as api_store
from daemons.store import devices as store

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DEVICES = int(os.environ.get("BENCH_CONFIG_DEVICES", "200"))
CONCURRENCY = int(os.environ.get("BENCH_CONFIG_CONCURRENCY", "8"))
PASSWORD = "bench-pass"
REPO = Path(__file__).resolve().parents[1]


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


async def _serve(n: int) -> None:
    """The simulators: ports and host keys on stdout as JSON, then serve until stdin ends;
    a line "bump" on stdin adds a config line to every device."""
    from tests.devices.ios_sim import IosSim  # noqa: PLC0415

    sims = [IosSim(hostname=f"sw{i}", password=PASSWORD) for i in range(n)]
    for i, sim in enumerate(sims):
        sim.running += [f"interface Vlan{100 + j}\n description svi {j}" for j in range(20)]
        sim.running += [f"ip route 10.{i % 250}.{j}.0 255.255.255.0 192.0.2.1" for j in range(40)]
        await sim.start()
    print(json.dumps([[s.port, s.host_key_public] for s in sims]), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    bumps = 0
    while line := await reader.readline():
        if line.strip() == b"bump":
            bumps += 1
            for sim in sims:
                sim.running.append(f"ntp server 192.0.2.{bumps % 250}")
    for sim in sims:
        await sim.stop()


def _netmiko_backup(port: int) -> int:
    from netmiko import ConnectHandler  # noqa: PLC0415

    conn = ConnectHandler(
        device_type="cisco_ios",
        host="127.0.0.1",
        port=port,
        username="admin",
        password=PASSWORD,
        use_keys=False,
        allow_agent=False,
        conn_timeout=15,
    )
    try:
        return len(conn.send_command("show running-config"))
    finally:
        conn.disconnect()


async def _probe(url: str, headers: dict[str, str], stop: asyncio.Event) -> list[float]:
    out: list[float] = []
    async with httpx.AsyncClient(timeout=10, headers=headers) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                r = await c.get(url)
                if r.status_code == 200:
                    out.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    return out


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


async def _run(
    dsn: str, status: int, api: int, token: str, devices: list[tuple[int, str]], bump: Any
) -> dict[str, float]:
    ports = [p for p, _ in devices]
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        t0 = time.perf_counter()
        sizes = await asyncio.gather(
            *(loop.run_in_executor(pool, _netmiko_backup, p) for p in ports)
        )
        bare = time.perf_counter() - t0
    assert all(sizes)
    bump()
    conn = await asyncpg.connect(dsn)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        idle_stop = asyncio.Event()
        probes = [
            asyncio.create_task(_probe(f"http://127.0.0.1:{status}/health/ready", {}, idle_stop)),
            asyncio.create_task(
                _probe(f"http://127.0.0.1:{api}/api/v1/devices", headers, idle_stop)
            ),
        ]
        await asyncio.sleep(5)
        idle_stop.set()
        idle_status, idle_api = [await p for p in probes]
        before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM device_backups")
        stop = asyncio.Event()
        probes = [
            asyncio.create_task(_probe(f"http://127.0.0.1:{status}/health/ready", {}, stop)),
            asyncio.create_task(_probe(f"http://127.0.0.1:{api}/api/v1/devices", headers, stop)),
        ]
        t0 = time.perf_counter()
        await store.request_backup(conn, "*")  # type: ignore[arg-type]
        while await conn.fetchval(  # noqa: ASYNC110 (another process writes them)
            "SELECT count(*) FROM device_backups WHERE id > $1", before
        ) < len(devices):
            await asyncio.sleep(0.1)
        took = time.perf_counter() - t0
        stop.set()
        busy_status, busy_api = [await p for p in probes]
    finally:
        await conn.close()
    r = {
        "devices": float(len(devices)),
        "netd devices/min": len(devices) / took * 60,
        "bare netmiko devices/min": len(devices) / bare * 60,
        "netd / bare": bare / took,
        "daemon status p50 ms (job running)": _pct(busy_status, 0.5),
        "daemon status p99 ms (job running)": _pct(busy_status, 0.99),
        "daemon status p99 ms (idle)": _pct(idle_status, 0.99),
        "API p50 ms (job running)": _pct(busy_api, 0.5),
        "API p99 ms (job running)": _pct(busy_api, 0.99),
        "API p99 ms (idle)": _pct(idle_api, 0.99),
    }
    _log(
        f"netd {r['netd devices/min']:.0f}/min, bare {r['bare netmiko devices/min']:.0f}/min, "
        f"status p99 {r['daemon status p99 ms (job running)']:.1f} ms, "
        f"API p99 {r['API p99 ms (job running)']:.1f} ms"
    )
    return r


def run() -> list[dict[str, Any]]:
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="netd-bench-config-") as tmp_name:
        tmp = Path(tmp_name)
        sims = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.config_jobs", "--serve", str(DEVICES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert sims.stdout is not None and sims.stdin is not None
        devices = [(int(p), str(k)) for p, k in json.loads(sims.stdout.readline())]

        def bump() -> None:
            assert sims.stdin is not None
            sims.stdin.write("bump\n")
            sims.stdin.flush()

        stack = contextlib.ExitStack()
        procs: list[subprocess.Popen[Any]] = []
        try:
            dsn, redis_url = stack.enter_context(migrated_stores(tmp))
            key = os.urandom(32)

            async def prepare() -> str:
                conn = await asyncpg.connect(dsn)
                try:
                    sealer = Sealer(key)
                    for i, (port, host_key) in enumerate(devices):
                        d = store.Device(
                            f"sw{i:03d}", "127.0.0.1", port, "cisco_ios", "admin", PASSWORD
                        )
                        await store.put_device(conn, sealer, d)  # type: ignore[arg-type]
                        await store.pin_host_key(conn, d.name, host_key)  # type: ignore[arg-type]
                    _row, token = await api_store.create_token(conn, "bench", "viewer", "bench")  # type: ignore[arg-type]
                    return token
                finally:
                    await conn.close()

            token = uvloop.run(prepare())
            status, api = free_port(), free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("NETD_")}
            env.update(
                {
                    "NETD_DATABASE_URL": dsn,
                    "NETD_REDIS_URL": redis_url,
                    "NETD_SECRETS_KEY": key.hex(),
                    "NETD_DEVICES_STATUS_PORT": str(status),
                    "NETD_DEVICES_CONCURRENCY": str(CONCURRENCY),
                    "NETD_DEVICES_BACKUP_INTERVAL": str(30 * 86400),
                    "NETD_API_PORT": str(api),
                    "NETD_API_GRPC_PORT": "0",
                    "NETD_API_RATE_LIMIT": "100000",
                    "NETD_API_RATE_BURST": "100000",
                    "NETD_STATE_DIR": str(tmp / "state"),
                    "NETD_POLICIES_DIR": str(resources.path("policies")),
                    "NETD_LOG_LEVEL": "warning",
                }
            )
            for daemon in ("devices", "api"):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "daemons.cli", daemon],
                        env=env,
                        cwd=tmp,
                        stdout=subprocess.DEVNULL,
                        stderr=(tmp / f"{daemon}.log").open("wb"),
                    )
                )
            for port in (status, api):
                for _ in range(300):
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.1)

            async def first_backups() -> None:
                conn = await asyncpg.connect(dsn)
                try:  # the daemon's start-up backup of everything: let it finish
                    while await conn.fetchval(  # noqa: ASYNC110 (the daemon writes them)
                        "SELECT count(DISTINCT device) FROM device_backups"
                    ) < len(devices):
                        await asyncio.sleep(0.2)
                finally:
                    await conn.close()

            uvloop.run(first_backups())
            for _ in range(RUNS):
                results.append(uvloop.run(_run(dsn, status, api, token, devices, bump)))
        finally:
            for p in procs:
                _stop(p)
            stack.close()
            sims.stdin.close()
            try:
                sims.wait(30)
            except subprocess.TimeoutExpired:
                sims.kill()
    return [
        {
            "measure": key,
            "median": median([r[key] for r in results]),
            "runs": len(results),
            "spread": f"{min(r[key] for r in results):.1f}..{max(r[key] for r in results):.1f}",
        }
        for key in results[0]
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        uvloop.run(_serve(int(sys.argv[2])))
    else:
        out = run()
        print(table(out))
        write("config_jobs", out, (__doc__ or "").strip())
