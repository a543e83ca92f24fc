"""TR-069 ACS: CWMP sessions per second, session time, memory per concurrent session.

Embedded PostgreSQL and Redis in a temporary directory, schema migrated. `netd acs` runs
as one real process on loopback (no CPE authentication). 10,000 simulated CPEs
(tests/acs/sim.py, sharing the smallest shared data model, each its own serial number)
are registered and their trees marked discovered beforehand, each with one queued
getParameterValues task (3 parameters), so each session is exactly:
Inform -> InformResponse, empty POST -> GetParameterValues, its response -> 204, on one
keep-alive TCP connection, with every effect written to PostgreSQL before the answer
(device row and Inform parameters, task start, the values, the task result).
The CPEs run in this process (uvloop, the simulator's own HTTP/1.1 client), CONCURRENCY
sessions at a time, closed loop, until all 10,000 have had a session; a run counts
sessions/s over the whole run and each session's time from its connect to the 204.
Memory: HOLD CPEs send their Inform and stop there (sessions open, waiting); the ACS
process's RSS before and with them open, divided by HOLD, is the memory per concurrent
session (the sessions are then left to time out).
CPU is utime+stime of the ACS process (/proc), of this generator (getrusage) and of the
PostgreSQL postmaster with its children (backends, WAL writer...) over a run; "machine
busy %" is the whole machine's (all cores, every process: other users' too) over the run.
Figures are medians of BENCH_RUNS runs (fresh task rows each run). There is no GenieACS
here to compare with (it needs MongoDB, which this machine does not have), so the figures
are absolute. The machine has 2 cores shared by netd, PostgreSQL and the generator.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

from benchmarks.common import median, table, write
from benchmarks.radius_auth import _stop, free_port
from benchmarks.radius_loadgen import _machine_cpu, _proc_cpu, _self_cpu, _tree_cpu
from daemons.store import migrate
from daemons.store.embedded import EmbeddedStores
from tests.acs.sim import Cpe, Http, load_model, model_files, run_session

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CPES = int(os.environ.get("BENCH_ACS_CPES", "10000"))
CONCURRENCY = int(os.environ.get("BENCH_ACS_CONCURRENCY", "100"))
HOLD = int(os.environ.get("BENCH_ACS_HOLD", "2000"))
REPO = Path(__file__).resolve().parents[1]


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _seed(dsn: str, cpes: list[Cpe], names: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM cpe_tasks")
        if not await conn.fetchval("SELECT count(*) FROM cpe_devices"):
            await conn.copy_records_to_table(
                "cpe_devices",
                records=[(c.device_id, c.oui, c.product_class, c.serial) for c in cpes],
                columns=["id", "oui", "product_class", "serial"],
            )
        await conn.execute("UPDATE cpe_devices SET discovered_at = now()")
        args = json.dumps({"names": names})
        await conn.executemany(
            "INSERT INTO cpe_tasks (device_id, kind, args) "
            "VALUES ($1, 'getParameterValues', $2::jsonb)",
            [(c.device_id, args) for c in cpes],
        )
    finally:
        await conn.close()


async def _sessions(cpes: list[Cpe], port: int) -> tuple[float, list[float], int]:
    todo = list(cpes)
    times: list[float] = []
    bad = 0

    async def worker() -> None:
        nonlocal bad
        while todo:
            cpe = todo.pop()
            t0 = time.perf_counter()
            statuses = await run_session(cpe, "127.0.0.1", port)
            times.append(time.perf_counter() - t0)
            if statuses != [200, 200, 204]:  # Inform, empty POST -> GPV, its answer -> 204
                bad += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - t0, times, bad


async def _hold(cpes: list[Cpe], port: int) -> list[Http]:
    conns = []
    for cpe in cpes:
        conn = await Http.open("127.0.0.1", port)
        status, _, _ = await conn.post("/", cpe.inform(), {})
        assert status == 200
        conns.append(conn)
    return conns


def run() -> list[dict[str, Any]]:
    model = min(model_files(), key=lambda p: p.stat().st_size)
    tree = load_model(model)
    proto = Cpe(tree)
    names = [
        proto.root + "DeviceInfo.SoftwareVersion",
        proto.root + "DeviceInfo.HardwareVersion",
        proto.root + "DeviceInfo.UpTime",
    ]
    names = [n for n in names if n in tree] or [n for n in tree if not n.endswith(".")][:3]
    cpes = [Cpe(tree, serial_suffix=f"-{i:05d}", resettable=False) for i in range(CPES)]
    results: list[dict[str, float]] = []
    memory: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="netd-bench-acs-") as tmp_name:
        tmp = Path(tmp_name)
        stores = EmbeddedStores(
            tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        try:
            assert stores.postgres is not None and stores.redis is not None
            dsn, redis_url = stores.postgres.dsn, stores.redis.url
            pg_pid = stores.postgres.pid() or 0

            async def prepare() -> None:
                conn = await asyncpg.connect(dsn)
                try:
                    await migrate.apply(conn, migrate.available())
                finally:
                    await conn.close()

            uvloop.run(prepare())
            (tmp / "no-policies").mkdir()  # no presets (a missing directory is refused)
            port, status = free_port(), free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("NETD_")}
            env.update(
                {
                    "NETD_DATABASE_URL": dsn,
                    "NETD_REDIS_URL": redis_url,
                    "NETD_ACS_PORT": str(port),
                    "NETD_ACS_STATUS_PORT": str(status),
                    "NETD_ACS_SESSION_TIMEOUT": "60",
                    "NETD_ACS_RATE_LIMIT": "0",  # every simulated CPE is 127.0.0.1
                    "NETD_STATE_DIR": str(tmp / "state"),
                    "NETD_POLICIES_DIR": str(tmp / "no-policies"),
                    "NETD_LOG_LEVEL": "warning",
                }
            )
            proc = subprocess.Popen(
                [sys.executable, "-m", "daemons.cli", "acs"],
                env=env,
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=(tmp / "acs.log").open("wb"),
            )
            try:
                for _ in range(300):
                    try:
                        if httpx.get(f"http://127.0.0.1:{status}/health/ready").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if proc.poll() is not None:
                        log = (tmp / "acs.log").read_text()[-2000:]
                        raise RuntimeError(f"netd acs exited {proc.returncode}: {log}")
                    time.sleep(0.1)
                for i in range(RUNS):
                    uvloop.run(_seed(dsn, cpes, names))
                    acs0, gen0, pg0 = _proc_cpu(proc.pid), _self_cpu(), _tree_cpu(pg_pid)
                    busy0 = _machine_cpu()[0]
                    elapsed, times, bad = uvloop.run(_sessions(cpes, port))
                    acs_cpu, gen_cpu = _proc_cpu(proc.pid) - acs0, _self_cpu() - gen0
                    pg_cpu = _tree_cpu(pg_pid) - pg0
                    busy = (_machine_cpu()[0] - busy0) / elapsed / (os.cpu_count() or 1)
                    times.sort()
                    r = {
                        "sessions/s": len(times) / elapsed,
                        "p50 ms": times[len(times) // 2] * 1000,
                        "p99 ms": times[int(len(times) * 0.99)] * 1000,
                        "acs CPU ms/session": acs_cpu / len(times) * 1000,
                        "generator CPU ms/session": gen_cpu / len(times) * 1000,
                        "postgres CPU ms/session": pg_cpu / len(times) * 1000,
                        "machine busy %": 100 * busy,
                        "failed sessions": bad,
                    }
                    results.append(r)
                    _log(f"run {i}: {r['sessions/s']:.0f} sessions/s, p99 {r['p99 ms']:.0f} ms")
                before = _rss(proc.pid)

                async def hold() -> int:
                    held = await _hold(cpes[:HOLD], port)
                    await asyncio.sleep(0.5)
                    rss = _rss(proc.pid)
                    for conn in held:
                        await conn.close()
                    return rss

                with_open = uvloop.run(hold())
                memory = {
                    "rss before MB": before / 2**20,
                    "rss with sessions MB": with_open / 2**20,
                    "bytes per session": (with_open - before) / HOLD,
                }
            finally:
                _stop(proc)
        finally:
            stores.release()
    rows: list[dict[str, Any]] = []
    for key in results[0]:
        rows.append({"measure": key, "median": median([r[key] for r in results]), "runs": RUNS})
    for key, value in memory.items():
        rows.append({"measure": f"{key} ({HOLD} open sessions)", "median": value, "runs": 1})
    rows.append({"measure": "CPEs per run", "median": CPES, "runs": RUNS})
    rows.append({"measure": "concurrent sessions", "median": CONCURRENCY, "runs": RUNS})
    return rows


if __name__ == "__main__":
    out = run()
    print(table(out))
    write("acs", out, (__doc__ or "").strip())
