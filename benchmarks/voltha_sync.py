"""VOLTHA inventory sync: how long `netd voltha` takes, and how much CPU it spends, to
read and diff a stack of OLTs and ONUs, against the bare gRPC reads it cannot avoid.

Embedded PostgreSQL and Redis in a temporary directory, schema migrated. Our fake VOLTHA
core (tests/voltha/fake_core.py, grpc.aio on the voltha-protos servicers) runs in this
process with BENCH_VOLTHA_OLTS OLTs (default 16), each with 4 PON ports and
BENCH_VOLTHA_ONUS ONUs (default 128, spread over the PONs), all ACTIVE and all bound to a
subscriber (so the allow-list does nothing). `netd voltha` runs as one real process with
sync_interval 1 s, no ONOS, optics every hour (out of the way).
Measured, per run:
- first sync: from the daemon's start until every device is in voltha_devices (inserts of
  every device and port, and their added/discovered events, in one transaction);
- steady sync: the daemon's own metrics over BENCH_VOLTHA_SECONDS (default 10) of syncs
  with nothing changed (ListDevices, ListDevicePorts of every device, the diff, no write):
  seconds per sync (netd_voltha_sync_seconds sum/count) and the daemon's CPU per sync
  (/proc utime+stime over the window, divided by the syncs in it);
- a change: 10% of the ONUs go UNREACHABLE in the fake; the time until all their
  voltha.onu.state events are in PostgreSQL (at most one sync interval plus the sync);
- the floor: this process reads the same tree with a bare grpc.aio client (ListDevices,
  then ListDevicePorts of every device, 8 at once, like the daemon): seconds and CPU per
  read (the fake core's own work is in this process too, so the floor's CPU includes it;
  the daemon's CPU figure does not).
There is no voltctl here (a Go binary; not on PyPI, Debian or npm), so the reference is
the bare read. Medians of BENCH_RUNS runs (default 3), each on a fresh database.
"""

from __future__ import annotations

import asyncio
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
from google.protobuf import empty_pb2
from voltha_protos import common_pb2, voltha_pb2_grpc

from benchmarks.common import median, migrated_stores, table, write
from benchmarks.radius_auth import _stop, free_port
from benchmarks.radius_loadgen import _proc_cpu, _self_cpu
from tests.voltha.fake_core import FakeVoltha, OperStatus

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
OLTS = int(os.environ.get("BENCH_VOLTHA_OLTS", "16"))
ONUS = int(os.environ.get("BENCH_VOLTHA_ONUS", "128"))
SECONDS = float(os.environ.get("BENCH_VOLTHA_SECONDS", "10"))
PONS = 4


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


async def _tree(fake: FakeVoltha) -> list[str]:
    """OLTs enabled and their ONUs discovered, all ACTIVE; the ONU serials."""
    import grpc  # noqa: PLC0415

    serials: list[str] = []
    async with grpc.aio.insecure_channel(fake.address) as ch:
        stub = voltha_pb2_grpc.VolthaServiceStub(ch)
        from voltha_protos import device_pb2  # noqa: PLC0415

        olts = []
        for i in range(OLTS):
            d = await stub.CreateDevice(
                device_pb2.Device(type="openolt", host_and_port=f"10.{i // 250}.{i % 250}.1:9191")
            )
            fake.set_pon_port_count(d.id, PONS)
            await stub.EnableDevice(common_pb2.ID(id=d.id))
            olts.append(d.id)
    for olt in olts:
        await fake.wait_for(lambda olt=olt: fake.device(olt).oper_status == OperStatus.ACTIVE, 60)
    for n, olt in enumerate(olts):
        for j in range(ONUS):
            serial = f"BNCH{n:04d}{j:04d}"
            fake.discover_onu(olt, j % PONS, serial)
            serials.append(serial)
    await fake.wait_for(
        lambda: (
            sum(1 for d in fake.devices() if not d.root and d.oper_status == OperStatus.ACTIVE)
            == len(serials)
        ),
        300,
    )
    return serials


async def _floor(fake: FakeVoltha, rounds: int) -> tuple[float, float]:
    """Seconds and CPU seconds per bare read of the whole tree."""
    import grpc  # noqa: PLC0415

    async with grpc.aio.insecure_channel(fake.address) as ch:
        stub = voltha_pb2_grpc.VolthaServiceStub(ch)
        gate = asyncio.Semaphore(8)

        async def ports(device_id: str) -> Any:
            async with gate:
                return await stub.ListDevicePorts(common_pb2.ID(id=device_id), timeout=30)

        async def once() -> None:
            devices = await stub.ListDevices(empty_pb2.Empty(), timeout=30)
            await asyncio.gather(*(ports(d.id) for d in devices.items))

        await once()
        t0, c0 = time.perf_counter(), _self_cpu()
        for _ in range(rounds):
            await once()
        return (time.perf_counter() - t0) / rounds, (_self_cpu() - c0) / rounds


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _one_run(tmp: Path, dsn: str, redis_url: str, run: int) -> dict[str, float]:
    fake = FakeVoltha(step_seconds=0.001, pon_ports=PONS)
    await fake.start()
    try:
        serials = await _tree(fake)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "TRUNCATE voltha_devices, voltha_ports, onu_bindings, voltha_services, events"
            )
            await conn.execute("DELETE FROM subscribers WHERE username LIKE 'bench-%'")
            await conn.executemany(
                "INSERT INTO subscribers (username, plan) VALUES ($1, 'default')",
                [(f"bench-{s}",) for s in serials],
            )
            await conn.executemany(
                "INSERT INTO onu_bindings (serial, subscriber, s_tag, c_tag) "
                "VALUES ($1, $2, $3, $4)",
                [(s, f"bench-{s}", 100 + i // 4000, 2 + i % 4000) for i, s in enumerate(serials)],
            )
            config = tmp / f"netd-{run}.toml"
            config.write_text(
                f"""
[voltha]
sync_interval = 1.0
optics_interval = 3600.0
sadis_port = 0
[voltha.stacks.bench]
address = "{fake.address}"
deadline = 30.0
"""
            )
            status = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("NETD_")}
            env.update(
                {
                    "NETD_CONFIG": str(config),
                    "NETD_DATABASE_URL": dsn,
                    "NETD_REDIS_URL": redis_url,
                    "NETD_VOLTHA_STATUS_PORT": str(status),
                    "NETD_STATE_DIR": str(tmp / "state"),
                    "NETD_POLICIES_DIR": str(tmp / "no-policies"),
                    "NETD_LOG_LEVEL": "warning",
                }
            )
            total = OLTS * (ONUS + 1)
            t0 = time.perf_counter()
            proc = subprocess.Popen(  # noqa: ASYNC220 (started once, not waited on here)
                [sys.executable, "-m", "daemons.cli", "voltha"],
                env=env,
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=(tmp / f"voltha-{run}.log").open("wb"),
            )
            try:
                while await conn.fetchval("SELECT count(*) FROM voltha_devices") < total:
                    if proc.poll() is not None:
                        raise RuntimeError((tmp / f"voltha-{run}.log").read_text()[-2000:])
                    await asyncio.sleep(0.05)
                first = time.perf_counter() - t0
                url = f"http://127.0.0.1:{status}/metrics"
                async with httpx.AsyncClient(timeout=10) as http:
                    await asyncio.sleep(2.5)  # settle: the first syncs after the insert
                    m0 = (await http.get(url)).text
                    cpu0 = _proc_cpu(proc.pid)
                    await asyncio.sleep(SECONDS)
                    m1 = (await http.get(url)).text
                    cpu1 = _proc_cpu(proc.pid)
                count = _metric(m1, "netd_voltha_sync_seconds_count") - _metric(
                    m0, "netd_voltha_sync_seconds_count"
                )
                spent = _metric(m1, "netd_voltha_sync_seconds_sum") - _metric(
                    m0, "netd_voltha_sync_seconds_sum"
                )
                mark = await conn.fetchval("SELECT coalesce(max(id), 0) FROM events")
                changed = serials[::10]
                t1 = time.perf_counter()
                for s in changed:
                    onu = fake.find_onu(s)
                    assert onu is not None
                    fake.set_onu_state(onu.id, connect=common_pb2.ConnectStatus.UNREACHABLE)
                while await conn.fetchval(  # noqa: ASYNC110 (another process writes them)
                    "SELECT count(*) FROM events WHERE id > $1 AND kind = 'voltha.onu.state'",
                    mark,
                ) < len(changed):
                    await asyncio.sleep(0.02)
                change = time.perf_counter() - t1
                extra = await conn.fetchval("SELECT count(*) FROM events WHERE id > $1", mark)
            finally:
                _stop(proc)
        finally:
            await conn.close()
        floor_s, floor_cpu = await _floor(fake, 5)
    finally:
        await fake.stop()
    r = {
        "devices": float(total),
        "first sync s": first,
        "steady sync s": spent / count if count else float("nan"),
        "daemon CPU s per steady sync": (cpu1 - cpu0) / count if count else float("nan"),
        "syncs in window": count,
        "change seen s (10% ONUs)": change,
        "events for the change": float(extra),
        "bare read s": floor_s,
        "bare read CPU s (incl. fake core)": floor_cpu,
    }
    r["steady sync / bare read"] = r["steady sync s"] / floor_s
    _log(
        f"run {run}: first {first:.2f} s, steady {r['steady sync s']:.3f} s/sync "
        f"({r['daemon CPU s per steady sync']:.3f} CPU s), change {change:.2f} s, "
        f"bare {floor_s:.3f} s"
    )
    return r


def run() -> list[dict[str, Any]]:
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="netd-bench-voltha-") as tmp_name:
        tmp = Path(tmp_name)
        with migrated_stores(tmp) as (dsn, redis_url):
            for i in range(RUNS):
                results.append(uvloop.run(_one_run(tmp, dsn, redis_url, i)))
    return [
        {
            "measure": key,
            "median": median([r[key] for r in results]),
            "runs": len(results),
            "min": min(r[key] for r in results),
            "max": max(r[key] for r in results),
        }
        for key in results[0]
    ]


if __name__ == "__main__":
    out = run()
    print(table(out))
    write("voltha_sync", out, (__doc__ or "").strip())
