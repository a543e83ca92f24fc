"""SNMP poller: 500 IF-MIB devices every minute, against gufo-snmp's and net-snmp's own walks.

Agents: benchmarks/snmp_agent.py in its own process, BENCH_SNMP_AGENTS (default 500) UDP
sockets on 127.0.0.1, each a device (SNMPv2c) with the system group and a full ifTable and
ifXTable of 24 to 48 interfaces (36 on average), counters advancing with the clock.
snmpsim 1.2 was tried first: it spent 590 µs of CPU per varbind served (510 µs with no
variation module), and a cycle here is some 290,000 varbinds a minute, about three cores
on this 2-core machine; net-snmp's snmpd serves only this host's own interfaces. So the
agent is our own (about 11 µs a varbind). Its CPU is reported ("agent µs/varbind": its
CPU, walk overshoot included, over the varbinds the client kept), and what it serves is
checked on the first run: net-snmp's snmpbulkwalk and gufo-snmp read the same OIDs from
every device walked, with equal values except Counter32/64 and TimeTicks, which move.
Workload: the if-mib profile (policies/snmp/if-mib.toml: snmp_exporter's if_mib) as the
poller plans it: per device a GET of sysUpTime and ifNumber and a GETBULK walk
(max-repetitions 25) of each of its 41 columns, 2 + 41 x interfaces varbinds (739,000 a
cycle for 500 devices; printed).
Each run (BENCH_RUNS, default 3) does, one after the other, nothing else running:
- gufo-snmp bare walk: gufo.snmp.aio.SnmpSession (uvloop, a session per device,
  BENCH_SNMP_CONCURRENCY devices at a time, default 8) does the same GET and walks of
  every device and only counts the varbinds. CPU: getrusage(RUSAGE_SELF) around it.
- gufo-snmp bare walk on the poller's schedule: the same, but device i starts at
  i x interval / devices (one interval, as the poller spreads its targets; up to 8 at a
  time). Spread out, each walk runs alone and the event loop wakes for every datagram, so
  the same walks cost 1.4 to 1.6 times the CPU they cost back to back: this is the
  reference for the poller, which must spread its targets.
- net-snmp: `snmpbulkwalk -v2c -Cr25` of each of the 16 columns of each device
  (BENCH_SNMP_NETSNMP_AGENTS, default all; 2 processes at a time), no GET. CPU:
  getrusage(RUSAGE_CHILDREN), so process start-up is included, and is nearly all of it
  (the notes give the CPU of a process that reads a single varbind).
- the poller: `netd poller` as a real process against embedded PostgreSQL and Redis, a
  fresh database per run (migrated; every device a target with the if-mib profile at
  BENCH_SNMP_INTERVAL, default 60 s; concurrency, timeout and retries at their defaults;
  the /snmp/metrics exporter on, not scraped). Warm-up: until every target has been
  polled once (so every later poll also computes rates). The first poll of a target
  walks its tables; the next ones read the rows it found with GET (chunks sized to fit a
  response: 95 to 125 OIDs) until poller.rediscover (default 900 s) brings the next walk,
  so the measured polls are GETs; the notes count the walks, and give the ratio with the
  default's share of walks (1 poll in 15) taken from the next subject. Then
  BENCH_SNMP_CYCLES (default 2) whole intervals are measured. CPU: the process's
  utime+stime (/proc/PID/stat, all threads) over the window: reading, samples, the
  exporter's store, Redis and PostgreSQL writes, metrics, and the benchmark's own scrapes
  of /metrics every BENCH_SNMP_SCRAPE s (default 30; the notes give their number and
  cost, measured after the window); not PostgreSQL's or Redis's, which the notes give
  (postmaster with its children, and Redis, from /proc). Lateness: each scrape reads
  netd_snmp_polls_total and netd_snmp_poll_lateness_seconds of every target; a target
  whose poll count went up since the previous scrape has started a poll, and the gauge is
  that poll's lateness (scrapes come more often than polls, so every poll is seen). A
  poll is late if it started more than BENCH_SNMP_LATE (default 1 s) after it was due; a
  missed cycle is a target with fewer polls in the window than intervals in it. Failed
  polls are counted in the notes; netd_snmp_samples_total must grow by exactly what the
  profile gives (5 gauges and 8 counters, each a total and a rate: 21 a row), or the
  benchmark fails.
- the poller with poller.rediscover = 0: every poll walks, as the gufo-snmp references
  do; one interval measured, the same way.
- snmp_exporter (Debian prometheus-snmp-exporter 0.21, the if_mib module of
  tests/poller/snmp_exporter.py: the same walks and GET): every device scraped once in one
  interval, device i at i x interval / devices, 8 at a time, as Prometheus spreads its
  targets; each scrape's snmp_scrape_pdus_returned must be the device's varbinds. CPU:
  the exporter's utime+stime from /proc (all its threads). It stores nothing (Prometheus
  parses and stores, not measured here); the notes put the poller's CPU per varbind beside
  it, alone and with its PostgreSQL and Redis writes.
- 1, 2 and 3 `netd poller` processes on this machine sharing every device as a target
  (leases in PostgreSQL) at BENCH_SNMP_MULTI_INTERVAL (default 10 s, the shortest
  interval, so that the machine rather than the schedule limits them): after a warm-up
  (every target polled, one interval more for the shares to settle) BENCH_SNMP_MULTI_CYCLES
  (default 3) intervals; the polls each target had in the window are counted in
  snmp_samples (one time per poll, the window shifted by 1 s: a poll is stored as it
  ends). Throughput: the varbinds of those polls over the window; missed and extra polls
  against one a slot; CPU of the pollers (and of the stores in the notes). The ratios to 1
  poller are from the same run: the agent, the pollers, PostgreSQL and Redis share the 2
  cores, and other work on the machine shares them too.
Figures: varbinds/s is varbinds over wall time (for the poller that is its schedule:
varbinds a cycle / interval); CPU µs/varbind and CPU s per 1,000 varbinds divide CPU by
the varbinds the client kept. "x gufo" is that over gufo-snmp's back-to-back walk in the
same run, "x gufo on schedule" over its walk on the poller's schedule. Rows per run and
their median (late polls and missed cycles: the sum over runs; lateness: the maximum).
Targets: the poller within 1.5x of gufo-snmp's CPU per varbind on the same schedule, no
late poll.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

from benchmarks.common import median, table, write
from benchmarks.radius_auth import _children, _stop, free_port
from benchmarks.radius_loadgen import _proc_cpu, _self_cpu
from benchmarks.snmp_agent import rows as interfaces
from benchmarks.snmp_clients import _netsnmp_parse
from daemons import resources
from daemons.core.config import DatabaseConfig
from daemons.core.policies import load_policies
from daemons.core.secrets import Sealer
from daemons.poller import engine
from daemons.poller.client import MAX_REPETITIONS, Credentials
from daemons.poller.profiles import INFO, Profile, load_profiles
from daemons.store import migrate
from daemons.store import snmp as store
from daemons.store.embedded import EmbeddedStores
from daemons.store.pg import create_pool
from tests.support import with_database

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
AGENTS = int(os.environ.get("BENCH_SNMP_AGENTS", "500"))
CYCLES = int(os.environ.get("BENCH_SNMP_CYCLES", "2"))
INTERVAL = int(os.environ.get("BENCH_SNMP_INTERVAL", "60"))
SCRAPE = float(os.environ.get("BENCH_SNMP_SCRAPE", "30"))
LATE = float(os.environ.get("BENCH_SNMP_LATE", "1.0"))
CONCURRENCY = int(os.environ.get("BENCH_SNMP_CONCURRENCY", "8"))
NETSNMP_PARALLEL = 2
NETSNMP_AGENTS = int(os.environ.get("BENCH_SNMP_NETSNMP_AGENTS", str(AGENTS)))
MULTI = [int(x) for x in os.environ.get("BENCH_SNMP_POLLERS", "1,2,3").split(",") if x]
MULTI_INTERVAL = int(os.environ.get("BENCH_SNMP_MULTI_INTERVAL", "10"))
MULTI_CYCLES = int(os.environ.get("BENCH_SNMP_MULTI_CYCLES", "3"))
SHIFT = 1.0
COMMUNITY = "netd-bench"
TARGET_RATIO = 1.5
REPO = Path(__file__).resolve().parents[1]
MOVING = {"Counter32", "Counter64", "Timeticks"}


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _sched_cpu(pid: int) -> float:
    """CPU seconds of a process from /proc/PID/schedstat (ns, exact), else /proc/PID/stat."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return _proc_cpu(pid)


# --- the agents ---------------------------------------------------------------------------


class Agents:
    """benchmarks/snmp_agent.py as a process: the devices' ports, its CPU and counts."""

    def __init__(self, count: int) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.snmp_agent",
                "--agents",
                str(count),
                "--community",
                COMMUNITY,
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulated agents did not start")
        self.ports: list[int] = json.loads(line)["ports"]

    @property
    def cpu(self) -> float:
        return _sched_cpu(self.proc.pid)

    def stats(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Measure:
    """One subject in one run."""

    varbinds: int
    cpu: float
    wall: float
    agent_cpu: float
    agent_varbinds: int
    extra: dict[str, Any] = field(default_factory=dict)


class Watch:
    """Agent CPU and counts around a measurement."""

    def __init__(self, agents: Agents) -> None:
        self.agents = agents
        self.cpu0 = agents.cpu
        self.sent0 = agents.stats()["varbinds"]

    def done(self) -> tuple[float, int]:
        return self.agents.cpu - self.cpu0, self.agents.stats()["varbinds"] - self.sent0


# --- the workload ---------------------------------------------------------------------------


def _profile() -> Profile:
    return load_profiles(load_policies(resources.path("policies"), 0))["if-mib"]


@dataclass(frozen=True)
class Workload:
    gets: list[str]
    walks: list[str]
    per_poll: list[int]  # varbinds read from each device (GETs + walked rows)
    samples_per_row: int  # samples a steady-state poll gives per interface
    samples_per_poll: int = 0  # and per poll (the scalars: sysUpTime, ifNumber)

    @property
    def varbinds(self) -> int:
        return sum(self.per_poll)


def _workload(profile: Profile, count: int) -> Workload:
    gets, walks = engine.plan([profile])
    columns = [c for t in profile.tables for c in t.columns]
    gauges = sum(c.type == "gauge" for c in columns)
    counters = sum(c.type in ("counter32", "counter64") for c in columns)
    infos = sum(c.type in INFO for c in columns)  # one info sample each (ifType_info...)
    per_poll = [len(gets) + len(walks) * interfaces(i) for i in range(count)]
    return Workload(gets, walks, per_poll, gauges + 2 * counters + infos, len(profile.scalars))


# --- gufo-snmp ------------------------------------------------------------------------------


async def _gufo_walk(
    ports: list[int], work: Workload, keep: bool, pace: float = 0.0
) -> tuple[int, dict[int, list[tuple[str, Any]]]]:
    from gufo.snmp.aio import SnmpSession  # noqa: PLC0415 (the poller's client library)

    gate = asyncio.Semaphore(CONCURRENCY)
    kept: dict[int, list[tuple[str, Any]]] = {}
    total = 0

    async def device(i: int, port: int) -> None:
        nonlocal total
        if pace:
            await asyncio.sleep(i * pace)  # the poller's schedule: spread over the interval
        async with gate:
            session = SnmpSession("127.0.0.1", port, community=COMMUNITY, timeout=5)
            got = await session.get_many(work.gets)
            n = len(got)
            if keep:
                out = list(got.items())
                for root in work.walks:
                    out += [x async for x in session.getbulk(root, max_repetitions=MAX_REPETITIONS)]
                kept[i] = out
                n = len(out)
            else:
                for root in work.walks:
                    async for _ in session.getbulk(root, max_repetitions=MAX_REPETITIONS):
                        n += 1
            if n != work.per_poll[i]:
                raise RuntimeError(
                    f"gufo-snmp read {n} varbinds of agent {i}, want {work.per_poll[i]}"
                )
            total += n

    await asyncio.gather(*(device(i, p) for i, p in enumerate(ports)))
    return total, kept


def _gufo(agents: Agents, work: Workload, pace: float = 0.0) -> Measure:
    watch = Watch(agents)
    cpu0, wall0 = _self_cpu(), time.perf_counter()
    total, _ = uvloop.run(_gufo_walk(agents.ports, work, keep=False, pace=pace))
    wall, cpu = time.perf_counter() - wall0, _self_cpu() - cpu0
    agent_cpu, sent = watch.done()
    return Measure(total, cpu, wall, agent_cpu, sent)


# --- net-snmp -------------------------------------------------------------------------------


def _netsnmp_env(tmp: Path) -> dict[str, str]:
    (tmp / "netsnmp" / "cert_indexes").mkdir(parents=True, exist_ok=True)  # or it says so
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SNMP_PERSISTENT_DIR": str(tmp / "netsnmp"),
        "SNMPCONFPATH": str(tmp / "netsnmp"),
        "MIBDIRS": str(tmp / "netsnmp"),
        "MIBS": "",
        "HOME": str(tmp),
    }


def _netsnmp_walk(
    ports: list[int], work: Workload, env: dict[str, str]
) -> dict[int, list[tuple[str, Any, str]]]:
    """snmpbulkwalk of each column of each device, NETSNMP_PARALLEL at a time; the
    varbinds of each device in walk order, with net-snmp's type of each."""
    common = ["-v2c", "-c", COMMUNITY, "-On", "-Ox", "-Oe", "-OU", "-t", "5", "-r", "1"]

    def column(job: tuple[int, int, str]) -> tuple[int, str, str]:
        i, port, root = job
        proc = subprocess.run(
            ["snmpbulkwalk", *common, f"-Cr{MAX_REPETITIONS}", f"127.0.0.1:{port}", root],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        if proc.returncode or proc.stderr.strip():
            raise RuntimeError(f"snmpbulkwalk {port} {root}: {proc.stderr.strip()}")
        return i, root, proc.stdout

    jobs = [(i, p, root) for i, p in enumerate(ports) for root in work.walks]
    with ThreadPoolExecutor(NETSNMP_PARALLEL) as pool:
        results = list(pool.map(column, jobs))
    texts: dict[int, dict[str, str]] = {}
    for i, root, text in results:
        texts.setdefault(i, {})[root] = text
    out: dict[int, list[tuple[str, Any, str]]] = {}
    for i, by_root in texts.items():
        rows: list[tuple[str, Any, str]] = []
        for root in work.walks:
            varbinds, types = _netsnmp_parse(by_root[root])
            rows += [(o, v, types[o]) for o, v in varbinds]
        out[i] = rows
    return out


def _netsnmp_startup(port: int, env: dict[str, str], count: int = 100) -> float:
    """CPU seconds of one snmpbulkwalk process that reads a single varbind (sysUpTime):
    its start-up and exit, nearly all of it."""
    args = ["snmpbulkwalk", "-v2c", "-c", COMMUNITY, "-On", f"-Cr{MAX_REPETITIONS}"]
    cpu0 = _children_cpu()
    for _ in range(count):
        subprocess.run(
            [*args, f"127.0.0.1:{port}", engine.SYS_UPTIME[:-2]],
            capture_output=True,
            env=env,
            check=True,
            timeout=60,
        )
    return (_children_cpu() - cpu0) / count


def _netsnmp(
    agents: Agents, work: Workload, env: dict[str, str], reference: dict[int, list[tuple[str, Any]]]
) -> Measure:
    ports = agents.ports[:NETSNMP_AGENTS]
    startup = _netsnmp_startup(ports[0], env)
    watch = Watch(agents)
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    walked = _netsnmp_walk(ports, work, env)
    wall, cpu = time.perf_counter() - wall0, _children_cpu() - cpu0
    agent_cpu, sent = watch.done()
    total = compared = 0
    for i, rows in walked.items():
        want = work.per_poll[i] - len(work.gets)
        if len(rows) != want:
            raise RuntimeError(f"snmpbulkwalk read {len(rows)} varbinds of agent {i}, want {want}")
        total += len(rows)
        ref = reference.get(i)
        if ref is None:
            continue
        ref_walked = ref[len(work.gets) :]
        if [o for o, _, _ in rows] != [o for o, _ in ref_walked]:
            raise RuntimeError(f"agent {i}: net-snmp and gufo-snmp walked different OIDs")
        for (oid, value, kind), (_, theirs) in zip(rows, ref_walked, strict=True):
            if kind in MOVING:
                continue
            compared += 1
            if value != theirs:
                raise RuntimeError(f"agent {i} {oid}: net-snmp {value!r}, gufo-snmp {theirs!r}")
    procs = len(ports) * len(work.walks)
    extra = {"values compared": compared, "processes": procs, "startup cpu s": startup}
    return Measure(total, cpu, wall, agent_cpu, sent, extra)


# --- the poller -----------------------------------------------------------------------------

_LINE = re.compile(r"^(\w+)(?:\{([^}]*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The netd_snmp_* series of /metrics, by name and labels."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for line in httpx.get(url, timeout=10).text.splitlines():
        if not line.startswith("netd_snmp_"):
            continue
        m = _LINE.match(line)
        if m:
            labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
            out.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return out


def _by_target(
    series: dict[str, dict[tuple[tuple[str, str], ...], float]],
    name: str,
    where: Callable[[dict[str, str]], bool] = lambda _: True,
) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in series.get(name, {}).items():
        d = dict(labels)
        if "target" in d and where(d):
            out[d["target"]] = out.get(d["target"], 0.0) + value
    return out


def _polls(series: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> dict[str, float]:
    return _by_target(series, "netd_snmp_polls_total")


async def _database(
    admin_dsn: str, name: str, key: bytes, ports: list[int], interval: int = INTERVAL
) -> str:
    """A fresh database ``name``, migrated, with every device as a target; its DSN. (One
    per run: each run's poller starts from the same empty tables.)"""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = with_database(admin_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn, migrate.available())
    finally:
        await conn.close()
    pool = await create_pool(DatabaseConfig(), dsn, "bench")
    try:
        sealer = Sealer(key)
        creds = Credentials("2c", community=COMMUNITY)
        for i, port in enumerate(ports):
            await store.put_target(
                pool,
                sealer,
                store.Target(f"agent-{i:03d}", "127.0.0.1", port, creds, ("if-mib",), interval),
            )
    finally:
        await pool.close()
    return dsn


def _stores_cpu(pids: list[int]) -> float:
    """CPU seconds of the stores: each pid (PostgreSQL's postmaster, Redis) and its children
    (PostgreSQL's backends and workers)."""
    return sum(_proc_cpu(p) + sum(_proc_cpu(c) for c in _children(p)) for p in pids)


def _poller(
    agents: Agents,
    work: Workload,
    env: dict[str, str],
    tmp: Path,
    stores: list[int],
    cycles: int = CYCLES,
) -> Measure:
    status = int(env["NETD_POLLER_STATUS_PORT"])
    url = f"http://127.0.0.1:{status}/metrics"
    log = (tmp / "poller.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemons.cli", "poller"],
        env=env,
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    names = [f"agent-{i:03d}" for i in range(len(agents.ports))]
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"netd poller exited: {(tmp / 'poller.log').read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{status}/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("netd poller not ready in 30 s")
            time.sleep(0.2)
        started = time.monotonic()
        deadline = started + INTERVAL * 1.1 + 60
        while True:  # warm-up: every target polled once
            polls = _polls(_scrape(url))
            if all(polls.get(n, 0) >= 1 for n in names):
                break
            if time.monotonic() > deadline:
                missing = [n for n in names if polls.get(n, 0) < 1]
                raise RuntimeError(f"{len(missing)} targets never polled: {missing[:5]}")
            time.sleep(1)
        _log(f"poller warm: every target polled once, {time.monotonic() - started:.0f} s")
        watch = Watch(agents)
        first = _scrape(url)
        t0, cpu0, stores0 = time.monotonic(), _proc_cpu(proc.pid), _stores_cpu(stores)
        seen = dict(_polls(first))
        lateness: list[float] = []
        doubles = 0
        end = t0 + cycles * INTERVAL
        scrapes = 1
        while True:
            now = time.monotonic()
            if now >= end:
                break
            time.sleep(min(SCRAPE, end - now))
            series = _scrape(url) if time.monotonic() < end else None
            if series is None:
                break
            scrapes += 1
            polls = _polls(series)
            late = _by_target(series, "netd_snmp_poll_lateness_seconds")
            for n in names:
                new = polls.get(n, 0) - seen.get(n, 0)
                if new >= 1:
                    lateness.append(late.get(n, 0.0))
                    doubles += new > 1
                seen[n] = polls.get(n, 0)
        cpu1, t1, stores1 = _proc_cpu(proc.pid), time.monotonic(), _stores_cpu(stores)
        last = _scrape(url)
        scrapes += 1
        agent_cpu, sent = watch.done()
        polls = _polls(last)
        for n in names:
            new = polls.get(n, 0) - seen.get(n, 0)
            if new >= 1:
                lateness.append(_by_target(last, "netd_snmp_poll_lateness_seconds").get(n, 0.0))
                doubles += new > 1
        before, after = _polls(first), polls
        done = {n: after.get(n, 0) - before.get(n, 0) for n in names}
        missed = sum(max(0, cycles - int(d)) for d in done.values())
        unreachable = sum(
            _by_target(last, "netd_snmp_polls_total", lambda d: d["result"] != "ok").values()
        ) - sum(_by_target(first, "netd_snmp_polls_total", lambda d: d["result"] != "ok").values())
        samples = sum(_by_target(last, "netd_snmp_samples_total").values()) - sum(
            _by_target(first, "netd_snmp_samples_total").values()
        )
        seconds = sum(last.get("netd_snmp_poll_seconds_sum", {}).values()) - sum(
            first.get("netd_snmp_poll_seconds_sum", {}).values()
        )
        total_polls = sum(done.values())
        walks = sum(last.get("netd_snmp_table_walks_total", {}).values()) - sum(
            first.get("netd_snmp_table_walks_total", {}).values()
        )
        varbinds = sum(
            work.per_poll[i] * int(done[n]) for i, n in enumerate(names)
        )  # what each poll read
        expected_samples = sum(
            (work.samples_per_row * interfaces(i) + work.samples_per_poll) * int(done[n])
            for i, n in enumerate(names)
        )
        # the cost of one /metrics scrape, measured apart: 5 back to back
        c0, w0 = _proc_cpu(proc.pid), time.perf_counter()
        for _ in range(5):
            _scrape(url)
        scrape_cpu = (_proc_cpu(proc.pid) - c0) / 5
        scrape_wall = (time.perf_counter() - w0) / 5
        extra = {
            "polls": total_polls,
            "walks": walks,
            "late polls": sum(x > LATE for x in lateness),
            "missed cycles": missed,
            "unreachable": unreachable,
            "lateness max s": max(lateness, default=0.0),
            "lateness p99 s": sorted(lateness)[int(len(lateness) * 0.99)] if lateness else 0.0,
            "polls seen": len(lateness),
            "two polls between scrapes": doubles,
            "poll s mean": seconds / max(1, total_polls),
            "samples": samples,
            "samples expected": expected_samples,
            "scrapes": scrapes,
            "scrape cpu s": scrape_cpu,
            "scrape wall s": scrape_wall,
            "stores cpu s": stores1 - stores0,
        }
        return Measure(varbinds, cpu1 - cpu0, t1 - t0, agent_cpu, sent, extra)
    finally:
        _stop(proc)
        log.close()
        text = (tmp / "poller.log").read_text(errors="replace")
        if "Traceback" in text:
            _log("poller log has a traceback:\n" + text[-3000:])


# --- snmp_exporter --------------------------------------------------------------------------


def _exporter(agents: Agents, work: Workload, tmp: Path) -> Measure:
    """Prometheus's snmp_exporter (Debian 0.21) with the if_mib module (the test's,
    tests/poller/snmp_exporter.py: the same 41 columns and 2 scalars the poller reads),
    each device scraped once in one interval, device i at i x interval / devices, up to
    CONCURRENCY at a time, as Prometheus spreads its targets. Its CPU from /proc; the
    scrapes' parsing here (Prometheus's work) is not in it, and it stores nothing."""
    from tests.poller.snmp_exporter import SnmpExporter  # noqa: PLC0415

    (tmp / "exporter").mkdir(exist_ok=True)
    exporter = SnmpExporter(tmp / "exporter", [("if_mib", COMMUNITY)], free_port())
    pdus = re.compile(r"^snmp_scrape_pdus_returned (\S+)$", re.M)

    async def scrapes(pace: float) -> int:
        gate = asyncio.Semaphore(CONCURRENCY)
        total = 0
        async with httpx.AsyncClient(timeout=30) as client:

            async def one(i: int, port: int) -> None:
                nonlocal total
                await asyncio.sleep(i * pace)
                async with gate:
                    r = await client.get(
                        exporter.url + "/snmp",
                        params={"target": f"127.0.0.1:{port}", "module": "if_mib"},
                    )
                m = pdus.search(r.text)
                if r.status_code != 200 or m is None:
                    raise RuntimeError(f"snmp_exporter: {r.status_code} {r.text[:200]}")
                n = int(float(m.group(1)))
                if n != work.per_poll[i]:
                    raise RuntimeError(f"snmp_exporter read {n} varbinds of agent {i}")
                total += n

            await asyncio.gather(*(one(i, p) for i, p in enumerate(agents.ports)))
        return total

    try:
        uvloop.run(scrapes(0.0))  # warm-up: every device once, back to back
        watch = Watch(agents)
        # /proc/PID/stat: every thread (Go's work is not on the main thread, which is all
        # /proc/PID/schedstat counts)
        cpu0, wall0 = _proc_cpu(exporter.proc.pid), time.perf_counter()
        total = uvloop.run(scrapes(INTERVAL / len(agents.ports)))
        wall, cpu = time.perf_counter() - wall0, _proc_cpu(exporter.proc.pid) - cpu0
        agent_cpu, sent = watch.done()
    finally:
        exporter.stop()
    return Measure(total, cpu, wall, agent_cpu, sent, {"scrapes": len(agents.ports)})


# --- several pollers -----------------------------------------------------------------------


def _pollers(
    agents: Agents,
    work: Workload,
    env: dict[str, str],
    tmp: Path,
    stores: list[int],
    dsn: str,
    count: int,
) -> Measure:
    """``count`` `netd poller` processes on this machine sharing every device as a target
    at MULTI_INTERVAL (leases in PostgreSQL). After a warm-up (every target polled, one
    more interval for the shares to settle), MULTI_CYCLES intervals: the polls each target
    had (from snmp_samples, one time per poll), the varbinds they read, the pollers' CPU
    and the stores'. Throughput is varbinds read over wall time."""
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        statuses = []
        for k in range(count):
            status = free_port()
            statuses.append(status)
            log = (tmp / f"pollers-{count}-{k}.log").open("wb")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "daemons.cli", "poller"],
                    env={
                        **env,
                        "NETD_DATABASE_URL": dsn,
                        "NETD_INSTANCE_NAME": f"bench-{count}-{k}",
                        "NETD_POLLER_STATUS_PORT": str(status),
                        "NETD_POLLER_EXPORTER_PORT": str(free_port()),
                        "NETD_REDIS_KEY_PREFIX": f"bench{count}",
                    },
                    cwd=tmp,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for status in statuses:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{status}/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{count} pollers: one not ready in 60 s")
                time.sleep(0.2)

        async def polls(since: float, until: float) -> dict[str, int]:
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch(
                    "SELECT target, count(DISTINCT ts) AS n FROM snmp_samples "
                    "WHERE ts >= to_timestamp($1) AND ts < to_timestamp($2) GROUP BY target",
                    since,
                    until,
                )
            finally:
                await conn.close()
            return {r["target"]: int(r["n"]) for r in rows}

        start = time.time()
        deadline = time.monotonic() + MULTI_INTERVAL * 3 + 120
        while len(uvloop.run(polls(start, time.time() + 1))) < len(agents.ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} pollers: not every target polled")
            time.sleep(1)
        time.sleep(MULTI_INTERVAL)  # the shares settle (pollers started one after another)
        watch = Watch(agents)
        t0, cpu0 = time.time(), sum(_proc_cpu(p.pid) for p in procs)
        stores0 = _stores_cpu(stores)
        time.sleep(MULTI_CYCLES * MULTI_INTERVAL)
        t1, cpu1 = time.time(), sum(_proc_cpu(p.pid) for p in procs)
        stores1 = _stores_cpu(stores)
        agent_cpu, sent = watch.done()
        time.sleep(min(5.0, MULTI_INTERVAL / 2))  # the last polls of the window stored
        # a poll is stored when it ends: the window, shifted by a poll's usual duration
        done = uvloop.run(polls(t0 + SHIFT, t1 + SHIFT))
        names = [f"agent-{i:03d}" for i in range(len(agents.ports))]
        varbinds = sum(work.per_poll[i] * done.get(n, 0) for i, n in enumerate(names))
        extra = {
            "pollers": count,
            "polls": sum(done.values()),
            "missed cycles": sum(max(0, MULTI_CYCLES - done.get(n, 0)) for n in names),
            "extra polls": sum(max(0, done.get(n, 0) - MULTI_CYCLES) for n in names),
            "stores cpu s": stores1 - stores0,
        }
        return Measure(varbinds, cpu1 - cpu0, t1 - t0, agent_cpu, sent, extra)
    finally:
        for proc in procs:
            _stop(proc)
        for log in logs:
            log.close()


# --- the run --------------------------------------------------------------------------------


def _row(
    subject: str, run: str, m: Measure, gufo: Measure | None, paced: Measure | None = None
) -> dict[str, Any]:
    per_vb = m.cpu / m.varbinds * 1e6 if m.varbinds else float("nan")
    ratio = paced_ratio = None
    if gufo is not None and gufo.varbinds:
        ratio = per_vb / (gufo.cpu / gufo.varbinds * 1e6)
    if paced is not None and paced.varbinds:
        paced_ratio = per_vb / (paced.cpu / paced.varbinds * 1e6)
    e = m.extra
    return {
        "subject": subject,
        "run": run,
        "varbinds": m.varbinds,
        "varbinds/s": m.varbinds / m.wall if m.wall else None,
        "CPU s": m.cpu,
        "CPU µs/varbind": per_vb,
        "CPU s per 1,000 varbinds": f"{per_vb / 1000:.5f}",
        "x gufo": ratio,
        "x gufo on schedule": paced_ratio,
        "agent µs/varbind": m.agent_cpu / m.varbinds * 1e6 if m.varbinds else None,
        "late polls": e.get("late polls"),
        "missed cycles": e.get("missed cycles"),
        "lateness max s": e.get("lateness max s"),
        "notes": _notes(m),
    }


def _notes(m: Measure) -> str:
    e = m.extra
    if "pollers" in e:
        return (
            f"{e['polls']:.0f} polls, {e['missed cycles']:.0f} missed, {e['extra polls']:.0f}"
            f" extra; PostgreSQL and Redis: {e['stores cpu s'] / max(1, m.varbinds) * 1e6:.1f}"
            " µs/varbind"
        )
    if "polls" in e:
        return (
            f"{e['polls']:.0f} polls ({e['polls seen']} seen by a scrape),"
            f" {e['walks']:.0f} of them walks,"
            f" {e['unreachable']:.0f} failed;"
            f" lateness p99 {e['lateness p99 s']:.3f} s; poll {e['poll s mean'] * 1000:.0f} ms"
            f" mean; {e['samples']:.0f} samples as expected; CPU includes {e['scrapes'] - 2}"
            f" scrapes of /metrics at {e['scrape cpu s'] * 1000:.0f} ms each; PostgreSQL and"
            f" Redis meanwhile: {e['stores cpu s'] / m.varbinds * 1e6:.1f} µs/varbind"
        )
    if "processes" in e:
        each = m.cpu / e["processes"]
        return (
            f"{e['processes']} processes, {NETSNMP_PARALLEL} at a time, {each * 1000:.1f} ms CPU"
            f" each ({m.varbinds / e['processes']:.0f} varbinds); one that reads 1 varbind"
            f" costs {e['startup cpu s'] * 1000:.1f} ms: start-up is nearly all of it"
        )
    if m.wall > INTERVAL / 2:
        return (
            f"each device once, device i starting at i x {INTERVAL}/{AGENTS} s"
            f" as the poller spreads them, up to {CONCURRENCY} at a time"
        )
    return f"{CONCURRENCY} devices at a time, one session each"


def _median_row(subject: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"subject": subject, "run": "median"}
    for key in rows[0]:
        if key in ("subject", "run"):
            continue
        values = [r[key] for r in rows if r[key] is not None]
        if key == "notes":
            out[key] = ""
        elif key == "CPU s per 1,000 varbinds":
            out[key] = f"{median([float(v) for v in values]):.5f}"
        elif key in ("late polls", "missed cycles") and values:
            out[key] = sum(values)  # over all runs: the target is zero
        elif key == "lateness max s" and values:
            out[key] = max(values)
        else:
            out[key] = median([float(v) for v in values]) if values else None
    return out


def run() -> list[dict[str, Any]]:
    if shutil.which("snmpbulkwalk") is None:
        raise RuntimeError("snmpbulkwalk is missing: apt-get install snmp (net-snmp tools)")
    profile = _profile()
    work = _workload(profile, AGENTS)
    interfaces_total = sum(interfaces(i) for i in range(AGENTS))
    _log(
        f"{AGENTS} agents, {interfaces_total} interfaces; a cycle reads {work.varbinds} varbinds"
        f" ({len(work.gets)} GET + {len(work.walks)} columns walked per device),"
        f" {work.samples_per_row * interfaces_total} samples"
    )
    results: dict[str, list[Measure]] = {
        "gufo": [],
        "paced": [],
        "netsnmp": [],
        "poller": [],
        "walker": [],
        "exporter": [],
        **{f"pollers{n}": [] for n in MULTI},
    }
    with tempfile.TemporaryDirectory(prefix="netd-bench-snmp-") as tmp_name:
        tmp = Path(tmp_name)
        agents = Agents(AGENTS)
        stores = EmbeddedStores(
            tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        try:
            assert stores.postgres is not None and stores.redis is not None
            key = os.urandom(32)
            env = {k: v for k, v in os.environ.items() if not k.startswith("NETD_")}
            env.pop("NOTIFY_SOCKET", None)
            env.update(
                {
                    "NETD_REDIS_URL": stores.redis.url,
                    "NETD_SECRETS_KEY": key.hex(),
                    "NETD_POLLER_STATUS_PORT": str(free_port()),
                    "NETD_POLLER_EXPORTER_PORT": str(free_port()),
                    "NETD_POLLER_TRAP_PORT": "0",
                    "NETD_POLICIES_DIR": str(resources.path("policies")),
                    "NETD_STATE_DIR": str(tmp / "state"),
                    "NETD_LOG_LEVEL": "warning",
                }
            )
            netsnmp_env = _netsnmp_env(tmp)
            _, reference = uvloop.run(_gufo_walk(agents.ports, work, keep=True))  # warm-up
            for r in range(RUNS):
                g = _gufo(agents, work)
                results["gufo"].append(g)
                _log(
                    f"run {r + 1}: gufo-snmp {g.varbinds} varbinds,"
                    f" {g.cpu:.2f} s CPU, {g.wall:.1f} s"
                )
                g = _gufo(agents, work, pace=INTERVAL / AGENTS)
                results["paced"].append(g)
                _log(
                    f"run {r + 1}: gufo-snmp on the poller's schedule {g.varbinds} varbinds,"
                    f" {g.cpu:.2f} s CPU, {g.wall:.1f} s"
                )
                n = _netsnmp(agents, work, netsnmp_env, reference if r == 0 else {})
                results["netsnmp"].append(n)
                _log(
                    f"run {r + 1}: net-snmp {n.varbinds} varbinds,"
                    f" {n.cpu:.2f} s CPU, {n.wall:.1f} s"
                    + (f", {n.extra['values compared']} values equal gufo-snmp's" if r == 0 else "")
                )
                dsn = uvloop.run(_database(stores.postgres.dsn, f"snmp_run{r}", key, agents.ports))
                pids = [p for p in (stores.postgres.pid(), stores.redis.pid()) if p]
                p = _poller(agents, work, {**env, "NETD_DATABASE_URL": dsn}, tmp, pids)
                results["poller"].append(p)
                _log(
                    f"run {r + 1}: poller {p.varbinds} varbinds, {p.cpu:.2f} s CPU over"
                    f" {p.wall:.0f} s; " + ", ".join(f"{k} {v:.4g}" for k, v in p.extra.items())
                )
                dsn = uvloop.run(_database(stores.postgres.dsn, f"snmp_walk{r}", key, agents.ports))
                w = _poller(
                    agents,
                    work,
                    {**env, "NETD_DATABASE_URL": dsn, "NETD_POLLER_REDISCOVER": "0"},
                    tmp,
                    pids,
                    cycles=1,
                )
                results["walker"].append(w)
                _log(f"run {r + 1}: poller walking every poll {w.varbinds} varbinds, {w.cpu:.2f} s")
                for m in (p, w):
                    if m.extra["samples"] != m.extra["samples expected"]:
                        raise RuntimeError(
                            f"samples {m.extra['samples']} != {m.extra['samples expected']}"
                        )
                if shutil.which("prometheus-snmp-exporter"):
                    x = _exporter(agents, work, tmp)
                    results["exporter"].append(x)
                    _log(f"run {r + 1}: snmp_exporter {x.varbinds} varbinds, {x.cpu:.2f} s CPU")
                else:
                    _log("prometheus-snmp-exporter is missing: apt-get install it; not compared")
                for count in MULTI:
                    dsn = uvloop.run(
                        _database(
                            stores.postgres.dsn,
                            f"snmp_multi{r}_{count}",
                            key,
                            agents.ports,
                            MULTI_INTERVAL,
                        )
                    )
                    m = _pollers(agents, work, env, tmp, pids, dsn, count)
                    results[f"pollers{count}"].append(m)
                    _log(
                        f"run {r + 1}: {count} pollers {m.varbinds / m.wall:.0f} varbinds/s,"
                        f" {m.cpu:.2f} s CPU; "
                        + ", ".join(f"{k} {v:.4g}" for k, v in m.extra.items())
                    )
        finally:
            stores.release()
            agents.stop()
    return _rows(results, work, interfaces_total)


def _rows(
    results: dict[str, list[Measure]], work: Workload, interfaces_total: int
) -> list[dict[str, Any]]:
    subjects = {
        "poller": f"netd poller, if-mib every {INTERVAL} s",
        "walker": f"netd poller, if-mib every {INTERVAL} s, rediscover 0 (walks every poll)",
        "gufo": "gufo-snmp bare walk",
        "paced": f"gufo-snmp bare walk on the poller's schedule ({INTERVAL} s)",
        "netsnmp": "net-snmp snmpbulkwalk -Cr25 (per column)",
        "exporter": f"snmp_exporter 0.21 if_mib, every device once in {INTERVAL} s",
        **{
            f"pollers{n}": f"{n} netd poller{'s' if n > 1 else ''} sharing the targets,"
            f" every {MULTI_INTERVAL} s"
            for n in MULTI
        },
    }
    out: list[dict[str, Any]] = []
    for key, subject in subjects.items():
        if not results.get(key):
            continue
        rows = [
            _row(
                subject,
                str(i + 1),
                m,
                results["gufo"][i] if key != "gufo" else m,
                results["paced"][i] if key in ("poller", "walker", "paced") else None,
            )
            for i, m in enumerate(results[key])
        ]
        med = _median_row(subject, rows)
        if key == "poller":
            late = (med["late polls"] or 0) + (med["missed cycles"] or 0)
            ratio, burst = med["x gufo on schedule"], med["x gufo"]
            spread = ", ".join(f"{r['x gufo on schedule']:.2f}" for r in rows)
            med["notes"] = (
                f"targets: CPU/varbind within {TARGET_RATIO}x of gufo-snmp's bare walk on the"
                " same schedule:"
                f" {'met' if ratio is not None and ratio <= TARGET_RATIO else 'NOT met'}"
                f" ({ratio:.2f}x; runs {spread}; {burst:.2f}x the walk of 8 devices at a"
                " time back to back);"
                f" zero late (> {LATE:g} s) or missed polls of {len(work.per_poll)} targets:"
                f" {'met' if late == 0 else 'NOT met'}"
            )
            if results["walker"]:
                # poller.rediscover's default (900 s) walks 1 poll in 900 / INTERVAL: its share
                share = INTERVAL / 900
                per_walk = median([m.cpu / m.varbinds for m in results["walker"]])
                per_get = median([m.cpu / m.varbinds for m in results["poller"]])
                paced = median([m.cpu / m.varbinds for m in results["paced"]])
                amortized = (share * per_walk + (1 - share) * per_get) / paced
                med["notes"] += (
                    f"; with the default rediscovery walk (1 poll in {1 / share:.0f}) counted:"
                    f" {amortized:.2f}x"
                )
        elif key == "netsnmp":
            med["notes"] = f"{min(NETSNMP_AGENTS, len(work.per_poll))} devices"
        elif key == "exporter":
            med["notes"] = _versus_exporter(results)
        elif key.startswith("pollers"):
            med["notes"] = _versus_one_poller(results, key)
        out.append(med)
        out += rows
    return out


def _per_vb(ms: list[Measure], stores: bool = False) -> float:
    """Median CPU µs per varbind (with the stores' CPU when ``stores``), run by run."""
    return median(
        [
            (m.cpu + (m.extra.get("stores cpu s", 0.0) if stores else 0.0)) / m.varbinds * 1e6
            for m in ms
        ]
    )


def _versus_exporter(results: dict[str, list[Measure]]) -> str:
    x = _per_vb(results["exporter"])
    if not x:
        return "snmp_exporter's CPU was not measured"
    out = f"snmp_exporter {x:.2f} µs/varbind (walks every scrape, stores nothing)"
    for key, what in (("poller", "netd poller (GETs between walks)"), ("walker", "netd walking")):
        if results.get(key):
            own, full = _per_vb(results[key]), _per_vb(results[key], stores=True)
            out += (
                f"; {what} {own:.2f} µs/varbind ({own / x:.2f}x), with its PostgreSQL and"
                f" Redis writes {full:.2f} ({full / x:.2f}x)"
            )
    return out


def _versus_one_poller(results: dict[str, list[Measure]], key: str) -> str:
    ms = results[key]
    rate = median([m.varbinds / m.wall for m in ms])
    e = ms[-1].extra
    out = (
        f"{rate:.0f} varbinds/s; {e['polls']:.0f} polls, {e['missed cycles']:.0f} missed,"
        f" {e['extra polls']:.0f} extra; with the stores"
        f" {_per_vb(ms, stores=True):.2f} µs/varbind"
    )
    one = results.get("pollers1")
    if one and key != "pollers1":
        ratios = [
            (m.varbinds / m.wall) / (b.varbinds / b.wall) for m, b in zip(ms, one, strict=False)
        ]
        out += "; throughput over 1 poller's in the same run: " + ", ".join(
            f"{r:.2f}x" for r in ratios
        )
    return out


if __name__ == "__main__":
    out = run()
    print(table(out))
    write("snmp_poll", out, (__doc__ or "").strip())
