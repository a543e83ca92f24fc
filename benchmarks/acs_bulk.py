"""TR-069 ACS bulk run: one task queued for 10,000 CPEs by a filter, its pacing and
completion time.

Embedded PostgreSQL and Redis in a temporary directory, schema migrated, one real
`netd acs` process on loopback with acs.connection_request_rate = RATE. BULK_DEVICES
simulated CPEs (tests/acs/sim.py, the smallest shared data model) are registered with
discovered trees, a tag, and a ConnectionRequestURL on one loopback listener of this
process (no connection request authentication); as many again carry another tag and must
not be touched. The run is queued with `acs.tasks.queue_bulk` (what the API, gRPC and CLI
call) for the tag, a getParameterValues of 3 parameters, at RATE connection requests a
second. Each CPE that gets its connection request opens a session (Inform, the
GetParameterValues, 204), as a real CPE does. Measured: the time to queue the run (one
transaction of BULK_DEVICES tasks), connection requests per wall-clock second (the most in
any one second, the median second), the time from queueing to the last connection request
and to the last task done, and tasks left unfinished. One run: it takes BULK_DEVICES/RATE
seconds by design.
"""

from __future__ import annotations

import asyncio
import collections
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

from benchmarks.acs import _log
from benchmarks.common import median, table, write
from benchmarks.radius_auth import _stop, free_port
from daemons.acs import tasks as acs_tasks
from daemons.core.config import AcsConfig
from daemons.store import cpe_bulk, migrate
from daemons.store.embedded import EmbeddedStores
from tests.acs.sim import Cpe, load_model, model_files, run_session

DEVICES = int(os.environ.get("BENCH_BULK_DEVICES", "10000"))
RATE = float(os.environ.get("BENCH_BULK_RATE", "200"))


async def _bulk(dsn: str, acs_port: int, cpes: list[Cpe], names: list[str]) -> dict[str, Any]:
    pokes: list[float] = []
    sessions: set[asyncio.Task[Any]] = set()
    by_index = {c.serial.rsplit("-", 1)[1]: c for c in cpes}
    failed = 0

    async def session(cpe: Cpe) -> None:
        nonlocal failed
        try:
            await run_session(cpe, "127.0.0.1", acs_port)
        except (OSError, asyncio.IncompleteReadError):
            failed += 1

    async def listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
        pokes.append(time.monotonic())
        cpe = by_index.get(head.split(" ", 2)[1].rsplit("/", 1)[-1])
        if cpe is not None:
            task = asyncio.get_running_loop().create_task(session(cpe))
            sessions.add(task)
            task.add_done_callback(sessions.discard)

    server = await asyncio.start_server(listener, "127.0.0.1", 0)
    cr_port = server.sockets[0].getsockname()[1]
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM cpe_tasks")
            await conn.execute("DELETE FROM cpe_bulk")
            await conn.execute(
                "UPDATE cpe_devices SET connection_request_url = "
                "format('http://127.0.0.1:%s/cr/%s', $1::int, "
                "reverse(split_part(reverse(serial), '-', 1)))",
                cr_port,
            )
        cfg = AcsConfig(connection_request_rate=RATE)
        t0 = time.monotonic()
        bulk_id = await acs_tasks.queue_bulk(
            pool, cfg, {"tags": ["bulk"]}, "getParameterValues", {"names": names}, "bench", RATE
        )
        queued = time.monotonic() - t0
        deadline = t0 + DEVICES / RATE * 3 + 120
        done_at = None
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            found = await cpe_bulk.get_bulk(pool, bulk_id)
            assert found is not None
            if found["status"] == "done":
                done_at = time.monotonic()
                break
        found = await cpe_bulk.get_bulk(pool, bulk_id)
        assert found is not None
        others = await pool.fetchval("SELECT count(*) FROM cpe_tasks WHERE bulk_id IS NULL")
    finally:
        await pool.close()
        server.close()
        if sessions:
            await asyncio.wait(set(sessions), timeout=10)
    per_second = collections.Counter(int(t - t0) for t in pokes)
    counts = found["counts"]
    return {
        "queue the run (s)": queued,
        "tasks queued": found["devices"],
        "connection requests sent": len(pokes),
        "most connection requests in one second": max(per_second.values(), default=0),
        "median connection requests a second": median(list(per_second.values()) or [0]),
        "first to last connection request (s)": (max(pokes) - min(pokes)) if pokes else 0,
        "queued to last task done (s)": (done_at - t0) if done_at else float("nan"),
        "tasks done": counts.get("done", 0),
        "tasks not done": sum(v for k, v in counts.items() if k != "done"),
        "devices outside the filter given a task": others,
        "failed sessions": failed,
    }


def run() -> list[dict[str, Any]]:
    model = min(model_files(), key=lambda p: p.stat().st_size)
    tree = load_model(model)
    proto = Cpe(tree)
    names = [n for n in tree if not n.endswith(".")][:3]
    cpes = [Cpe(tree, serial_suffix=f"-{i:05d}", resettable=False) for i in range(DEVICES)]
    outsiders = [Cpe(tree, serial_suffix=f"-x{i:05d}", resettable=False) for i in range(DEVICES)]
    with tempfile.TemporaryDirectory(prefix="netd-bench-bulk-") as tmp_name:
        tmp = Path(tmp_name)
        stores = EmbeddedStores(
            tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        try:
            assert stores.postgres is not None and stores.redis is not None
            dsn, redis_url = stores.postgres.dsn, stores.redis.url

            async def prepare() -> None:
                conn = await asyncpg.connect(dsn)
                try:
                    await migrate.apply(conn, migrate.available())
                    await conn.copy_records_to_table(
                        "cpe_devices",
                        records=[
                            (c.device_id, c.oui, c.product_class, c.serial, [tag], proto.root[:-1])
                            for group, tag in ((cpes, "bulk"), (outsiders, "other"))
                            for c in group
                        ],
                        columns=["id", "oui", "product_class", "serial", "tags", "root"],
                    )
                    await conn.execute("UPDATE cpe_devices SET discovered_at = now()")
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
                    "NETD_ACS_RATE_LIMIT": "0",
                    "NETD_ACS_CONNECTION_REQUEST_RATE": str(RATE),
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
                result = uvloop.run(_bulk(dsn, port, cpes, names))
                _log(f"bulk: {result}")
                if not result["connection requests sent"] or result["failed sessions"]:
                    _log((tmp / "acs.log").read_text()[-3000:])
            finally:
                _stop(proc)
        finally:
            stores.release()
    rows: list[dict[str, Any]] = [{"measure": k, "value": v} for k, v in result.items()]
    rows.append({"measure": "devices matching the filter", "value": DEVICES})
    rows.append({"measure": "rate asked (connection requests/s)", "value": RATE})
    return rows


if __name__ == "__main__":
    out = run()
    print(table(out))
    write("acs_bulk", out, (__doc__ or "").strip())
