"""VOLTHA inventory sync: how long `netd voltha` takes, and how much CPU it spends, to
read and diff a stack of OLTs and ONUs, against the bare gRPC reads it cannot avoid; and
the same with the reconciliation with ONOS on (issue 25).

Embedded PostgreSQL and Redis in a temporary directory, schema migrated. Our fake VOLTHA
core (tests/voltha/fake_core.py, grpc.aio on the voltha-protos servicers) runs in this
process with BENCH_VOLTHA_OLTS OLTs (default 16), each with 4 PON ports and
BENCH_VOLTHA_ONUS ONUs (default 128, spread over the PONs), all ACTIVE and all bound to a
subscriber (so the allow-list does nothing). `netd voltha` runs as one real process with
sync_interval 1 s, optics every hour (out of the way), twice per run on the same tree:
- "no ONOS": no onos_url, as the previous figures were taken;
- "reconciling": onos_url pointing at our fake ONOS (tests/voltha/fake_onos.py, in this
  process, reading netd's SADIS), so every sync also reads programmed-subscribers (2,048
  services) and compares each bound ONU's UNI port.
Measured, per run and mode:
- first sync: from the daemon's start until every device is in voltha_devices (inserts of
  every device and port, and their added/discovered events, in one transaction);
- reconciling only: all services provisioned: from the start until every bound ONU's service
  is recorded as provisioned (2,048 POSTs through the fake ONOS, each reading SADIS);
- steady sync: once a whole sync went by without a write, the daemon's own metrics over
  BENCH_VOLTHA_SECONDS (default 10) of syncs with nothing changed (ListDevices,
  ListDevicePorts of every device, the diff; reconciling: programmed-subscribers and the
  comparison; no write): seconds per sync
  (netd_voltha_sync_seconds sum/count) and the daemon's CPU per sync (/proc utime+stime
  over the window, divided by the syncs in it); rows written and events raised in the window
  (xmin/ctid of every row of voltha_devices, voltha_ports, voltha_onos_services compared
  before and after: must be 0);
- a change: 10% of the ONUs go UNREACHABLE in the fake; the time until all their
  voltha.onu.state events are in PostgreSQL (at most one sync interval plus the sync);
- reconciling only: an OLT reboot (its 128 ONU devices deleted one at a time and found
  again on new UNI ports, the fake ONOS purging the OLT): the time until all its services
  are programmed again at their new ports, and the voltha.service.corrected events raised;
- the floor: this process reads the same tree with a bare grpc.aio client (ListDevices,
  then ListDevicePorts of every device, 8 at once, like the daemon): seconds and CPU per
  read (the fake core's own work is in this process too, so the floor's CPU includes it;
  the daemon's CPU figure does not).
There is no voltctl here (a Go binary; not on PyPI, Debian or npm), so the reference is
the bare read. Medians of BENCH_RUNS runs (default 3), each on a fresh database.

The previous figures (2026-11-23, no ONOS, before issue 25): first sync 5.098 s, steady
sync 1.770 s, daemon CPU 0.910 s per steady sync, change seen 4.309 s, bare read 2.038 s,
steady sync / bare read 0.962.
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
from voltha_protos import common_pb2, device_pb2, voltha_pb2_grpc

from benchmarks.common import median, migrated_stores, table, write
from benchmarks.radius_auth import _stop, free_port
from benchmarks.radius_loadgen import _proc_cpu, _self_cpu
from tests.voltha.fake_core import FakeVoltha, OperStatus
from tests.voltha.fake_onos import FakeOnos

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
OLTS = int(os.environ.get("BENCH_VOLTHA_OLTS", "16"))
ONUS = int(os.environ.get("BENCH_VOLTHA_ONUS", "128"))
SECONDS = float(os.environ.get("BENCH_VOLTHA_SECONDS", "10"))
PONS = 4
TABLES = ("voltha_devices", "voltha_ports", "voltha_onos_services")


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


async def _tree(fake: FakeVoltha) -> tuple[list[str], list[str]]:
    """OLTs enabled and their ONUs discovered, all ACTIVE; the OLT ids and ONU serials."""
    import grpc  # noqa: PLC0415

    serials: list[str] = []
    async with grpc.aio.insecure_channel(fake.address) as ch:
        stub = voltha_pb2_grpc.VolthaServiceStub(ch)
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
    await _all_active(fake, len(serials))
    return olts, serials


async def _all_active(fake: FakeVoltha, n: int) -> None:
    await fake.wait_for(
        lambda: (
            sum(1 for d in fake.devices() if not d.root and d.oper_status == OperStatus.ACTIVE) == n
        ),
        300,
    )


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


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith(name)
            and not line.startswith("#")
            and all(f'{k}="{v}"' in line for k, v in labels.items())
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _rows(conn: asyncpg.Connection) -> dict[str, str]:
    """A fingerprint of every row version of the VOLTHA tables, and the last event id."""
    out = {}
    for t in TABLES:
        out[t] = await conn.fetchval(
            f"SELECT coalesce(md5(string_agg(xmin::text || ctid::text, ',' ORDER BY ctid)), '') "
            f"FROM {t}"
        )
    out["events"] = str(await conn.fetchval("SELECT coalesce(max(id), 0) FROM events"))
    return out


def _config(tmp: Path, run: int, mode: str, fake: FakeVoltha, onos: FakeOnos | None) -> Path:
    config = tmp / f"netd-{run}-{mode}.toml"
    text = f"""
[voltha]
sync_interval = 1.0
optics_interval = 3600.0
sadis_port = {onos.sadis_url.rsplit(":", 1)[1] if onos else 0}
[voltha.stacks.bench]
address = "{fake.address}"
deadline = 30.0
"""
    if onos is not None:
        text += f'onos_url = "{onos.base_url}"\n'
    config.write_text(text)
    return config


async def _mode(
    tmp: Path,
    dsn: str,
    redis_url: str,
    run: int,
    fake: FakeVoltha,
    olts: list[str],
    serials: list[str],
    onos: FakeOnos | None,
) -> dict[str, float]:
    mode = "reconciling" if onos else "no ONOS"
    conn = await asyncpg.connect(dsn)
    r: dict[str, float] = {}
    try:
        await conn.execute(
            "TRUNCATE voltha_devices, voltha_ports, voltha_onos_services, voltha_disabled_onus, "
            "events"
        )
        status = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NETD_")}
        env.update(
            {
                "NETD_CONFIG": str(_config(tmp, run, "onos" if onos else "plain", fake, onos)),
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": redis_url,
                "NETD_VOLTHA_STATUS_PORT": str(status),
                "NETD_STATE_DIR": str(tmp / "state"),
                "NETD_POLICIES_DIR": str(tmp / "policies"),
                "NETD_LOG_LEVEL": "warning",
            }
        )
        total = OLTS * (ONUS + 1)
        log = tmp / f"voltha-{run}-{'onos' if onos else 'plain'}.log"
        t0 = time.perf_counter()
        proc = subprocess.Popen(  # noqa: ASYNC220 (started once, not waited on here)
            [sys.executable, "-m", "daemons.cli", "voltha"],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )

        async def until(query: str, n: int, what: str, *args: Any) -> None:
            deadline = time.monotonic() + 600
            while await conn.fetchval(query, *args) < n:
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text()[-2000:])
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: not in 600 s\n{log.read_text()[-2000:]}")
                await asyncio.sleep(0.05)

        try:
            await until("SELECT count(*) FROM voltha_devices", total, "first sync")
            r[f"first sync s ({mode})"] = time.perf_counter() - t0
            if onos is not None:
                await until("SELECT count(*) FROM voltha_onos_services", len(serials), "services")
                r["all services provisioned s (reconciling)"] = time.perf_counter() - t0
                assert len(onos.services) == len(serials), len(onos.services)
            url = f"http://127.0.0.1:{status}/metrics"
            async with httpx.AsyncClient(timeout=10) as http:
                # Settled: a whole sync (the reasons ONOS's flows moved, written by the sync
                # after the one that provisioned) went by without a write.
                deadline = time.monotonic() + 120
                while True:
                    before = await _rows(conn)
                    n = _metric((await http.get(url)).text, "netd_voltha_sync_seconds_count")
                    while (  # noqa: ASYNC110 (another process's counter)
                        _metric((await http.get(url)).text, "netd_voltha_sync_seconds_count")
                        < n + 2
                    ):
                        await asyncio.sleep(0.1)
                    if await _rows(conn) == before or time.monotonic() > deadline:
                        break
                m0 = (await http.get(url)).text
                rows0 = await _rows(conn)
                cpu0 = _proc_cpu(proc.pid)
                await asyncio.sleep(SECONDS)
                m1 = (await http.get(url)).text
                cpu1 = _proc_cpu(proc.pid)
                rows1 = await _rows(conn)
            count = _metric(m1, "netd_voltha_sync_seconds_count") - _metric(
                m0, "netd_voltha_sync_seconds_count"
            )
            spent = _metric(m1, "netd_voltha_sync_seconds_sum") - _metric(
                m0, "netd_voltha_sync_seconds_sum"
            )
            r[f"steady sync s ({mode})"] = spent / count if count else float("nan")
            r[f"daemon CPU s per steady sync ({mode})"] = (
                (cpu1 - cpu0) / count if count else float("nan")
            )
            r[f"syncs in window ({mode})"] = count
            written = [k for k in rows0 if rows0[k] != rows1[k]]
            r[f"tables or events written in window ({mode})"] = float(len(written))
            if written:
                _log(f"run {run} ({mode}): written in the steady window: {written}")
            if onos is not None:
                calls = _metric(m1, "netd_voltha_onos_calls_total") - _metric(
                    m0, "netd_voltha_onos_calls_total"
                )
                r["ONOS calls per steady sync (reconciling)"] = calls / count if count else 0.0
            mark = await conn.fetchval("SELECT coalesce(max(id), 0) FROM events")
            changed = serials[::10]
            t1 = time.perf_counter()
            for s in changed:
                onu = fake.find_onu(s)
                assert onu is not None
                fake.set_onu_state(onu.id, connect=common_pb2.ConnectStatus.UNREACHABLE)
            await until(
                "SELECT count(*) FROM events WHERE id > $1 AND kind = 'voltha.onu.state'",
                len(changed),
                "the change",
                mark,
            )
            r[f"change seen s (10% ONUs) ({mode})"] = time.perf_counter() - t1
            for s in changed:
                onu = fake.find_onu(s)
                assert onu is not None
                fake.set_onu_state(onu.id, connect=common_pb2.ConnectStatus.REACHABLE)
            if onos is not None:
                r.update(await _reboot(conn, fake, onos, olts[0], until))
        finally:
            _stop(proc)
    finally:
        await conn.close()
    return r


async def _reboot(
    conn: asyncpg.Connection, fake: FakeVoltha, onos: FakeOnos, olt: str, until: Any
) -> dict[str, float]:
    """Reboot one OLT; the time until every one of its services is programmed again at its
    ONU's new UNI port."""
    import grpc  # noqa: PLC0415

    device = fake.onos_device_id(olt)
    mark = await conn.fetchval("SELECT coalesce(max(id), 0) FROM events")
    old = {d.serial_number: d.id for d in fake.onus(olt)}
    t0 = time.perf_counter()
    async with grpc.aio.insecure_channel(fake.address) as ch:
        await voltha_pb2_grpc.VolthaServiceStub(ch).RebootDevice(common_pb2.ID(id=olt))

    def back() -> bool:
        onus = {d.serial_number: d for d in fake.onus(olt)}
        if len(onus) != len(old) or any(d.id == old[s] for s, d in onus.items()):
            return False
        unis = {
            p.port_no
            for d in onus.values()
            for p in fake.ports(d.id)
            if p.type == device_pb2.Port.ETHERNET_UNI
        }
        here = {s.port_no for s in onos.services.values() if s.device_id == device}
        return here == unis

    deadline = time.monotonic() + 300
    while not back():
        if time.monotonic() > deadline:
            raise RuntimeError("the rebooted OLT's services did not come back in 300 s")
        await asyncio.sleep(0.05)
    took = time.perf_counter() - t0
    await until(
        "SELECT count(*) FROM events WHERE id > $1 AND kind = 'voltha.service.corrected'",
        len(old),
        "the corrections",
        mark,
    )
    corrected = await conn.fetchval(
        "SELECT count(*) FROM events WHERE id > $1 AND kind = 'voltha.service.corrected'", mark
    )
    unreachable = await conn.fetchval(
        "SELECT count(*) FROM events WHERE id > $1 AND kind = 'voltha.unreachable'", mark
    )
    return {
        f"OLT reboot: {len(old)} services back s (reconciling)": took,
        "voltha.service.corrected events for the reboot (reconciling)": float(corrected),
        "voltha.unreachable events during the reboot (reconciling)": float(unreachable),
    }


async def _one_run(tmp: Path, dsn: str, redis_url: str, run: int) -> dict[str, float]:
    fake = FakeVoltha(step_seconds=0.001, pon_ports=PONS)
    await fake.start()
    try:
        olts, serials = await _tree(fake)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("TRUNCATE onu_bindings, events")
            await conn.execute("DELETE FROM subscribers WHERE username LIKE 'bench-%'")
            await conn.executemany(
                "INSERT INTO subscribers (username, plan) VALUES ($1, 'bench')",
                [(f"bench-{s}",) for s in serials],
            )
            await conn.executemany(
                "INSERT INTO onu_bindings (serial, subscriber, s_tag, c_tag) "
                "VALUES ($1, $2, $3, $4)",
                [(s, f"bench-{s}", 100 + i // 4000, 2 + i % 4000) for i, s in enumerate(serials)],
            )
        finally:
            await conn.close()
        (tmp / "policies" / "radius").mkdir(parents=True, exist_ok=True)
        (tmp / "policies" / "radius" / "plans.toml").write_text(
            '[plans.bench]\ndownload = "100M"\nupload = "20M"\n'
        )
        r = await _mode(tmp, dsn, redis_url, run, fake, olts, serials, None)
        onos = FakeOnos(f"http://127.0.0.1:{free_port()}", voltha=fake)
        await onos.start()
        try:
            r.update(await _mode(tmp, dsn, redis_url, run, fake, olts, serials, onos))
        finally:
            await onos.stop()
        await _all_active(fake, len(serials))
        floor_s, floor_cpu = await _floor(fake, 5)
    finally:
        await fake.stop()
    r["devices"] = float(OLTS * (ONUS + 1))
    r["bare read s"] = floor_s
    r["bare read CPU s (incl. fake core)"] = floor_cpu
    for mode in ("no ONOS", "reconciling"):
        r[f"steady sync / bare read ({mode})"] = r[f"steady sync s ({mode})"] / floor_s
    r["steady sync reconciling / no ONOS"] = (
        r["steady sync s (reconciling)"] / r["steady sync s (no ONOS)"]
    )
    r["daemon CPU reconciling / no ONOS"] = (
        r["daemon CPU s per steady sync (reconciling)"]
        / r["daemon CPU s per steady sync (no ONOS)"]
    )
    _log(
        f"run {run}: steady {r['steady sync s (no ONOS)']:.3f} -> "
        f"{r['steady sync s (reconciling)']:.3f} s/sync, CPU "
        f"{r['daemon CPU s per steady sync (no ONOS)']:.3f} -> "
        f"{r['daemon CPU s per steady sync (reconciling)']:.3f} s, reboot back in "
        f"{next(v for k, v in r.items() if k.startswith('OLT reboot')):.2f} s, bare {floor_s:.3f} s"
    )
    return r


def run() -> list[dict[str, Any]]:
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="netd-bench-voltha-") as tmp_name:
        tmp = Path(tmp_name)
        with migrated_stores(tmp) as (dsn, redis_url):
            for i in range(RUNS):
                results.append(uvloop.run(_one_run(tmp, dsn, redis_url, i)))
    keys = sorted(results[0], key=lambda k: (k.endswith("(reconciling)"), k))
    return [
        {
            "measure": key,
            "median": median([r[key] for r in results]),
            "runs": len(results),
            "min": min(r[key] for r in results),
            "max": max(r[key] for r in results),
        }
        for key in keys
    ]


if __name__ == "__main__":
    out = run()
    print(table(out))
    write("voltha_sync", out, (__doc__ or "").strip())
