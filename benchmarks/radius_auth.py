"""RADIUS authentication: PAP Access-Requests per second and their latency.

Embedded PostgreSQL and Redis in a temporary directory, schema migrated, one NAS client
(127.0.0.1, vendor mikrotik, Message-Authenticator required) and 10,000 PAP subscribers
(user00000..user09999, sealed cleartext, plan fiber-100) bulk-loaded. `netd radius` runs
as a real process on loopback (1 worker, then 2 sharing the port); the load comes from
another process, benchmarks/radius_loadgen.py (uvloop, 32 source sockets, a fresh
Request Authenticator per request, replies checked by Response Authenticator):
- closed loop, 64 and 256 requests in flight: maximum throughput, with latency;
- open loop, paced at 70% of that maximum: latency at a sustainable load;
- the same generator against a reflector (a plain-Python UDP responder in this module that
  answers each request with a signed Access-Accept at once): the generator's own ceiling,
  to show it is not what limits netd.
CPU is utime+stime over the measurement window, as % of one core: netd's processes and
Redis from /proc/PID/stat, the generator's from getrusage. Every reply must be an
Access-Accept: rejects, or timeouts over 0.1%, are flagged in the notes. Figures are
medians of BENCH_RUNS runs of BENCH_DURATION seconds (after a 2 s warm-up). The machine
has 2 cores shared by netd, Redis and the generator: netd with 2 workers competes with
the generator for CPU.

The authentication history (issue 21, radius.auth_log) first: two netd (1 worker;
BENCH_AUTH_LOG_WORKERS=2: 2 each), history on and off, loaded in turn (on, off, then off,
on, ...) closed loop at window 64 (BENCH_AUTH_LOG_WINDOW), BENCH_AUTH_LOG_RUNS pairs (at
least 9). The rows "auth log on / off" are the medians over the pairs of on/off:
throughput, and the CPU per request of netd, Redis and PostgreSQL's whole process tree (the
history's COPY, the WAL writer, autovacuum) together (BENCH_AUTH_LOG_ONLY=1 runs this part
alone).

Side by side with FreeRADIUS 3.2, when /usr/sbin/freeradius is installed (`apt-get install
-y freeradius freeradius-postgresql`; without it one line says these rows are skipped and
the rows above still run). After the netd rows, the benchmark starts a FreeRADIUS of its own
(benchmarks/freeradius.py: a generated config in the temporary directory, debug logging
off, loopback, 16 worker threads; its client requires Message-Authenticator as netd's NAS
does, and its replies carry the five attributes netd sends for fiber-100 plus a
Message-Authenticator). It is loaded with the same generator, windows, subscribers and
secret, in two modes:
- FreeRADIUS files: the 10,000 subscribers in a users file (Cleartext-Password), in memory;
- FreeRADIUS sql: rlm_sql_postgresql on the same embedded PostgreSQL, in a database of its
  own (radius_bench: radcheck, radreply, radacct), 16 connections, two queries per request
  (radcheck and radreply of the user; no group or profile queries).
Each gets closed loop at 64 and 256, then open loop at 80% of FreeRADIUS's own maximum.
Then netd (the worker count with the highest closed-loop rate above) runs open loop at the
same rates. CPU: the freeradius process (all its threads) and, for sql, the PostgreSQL
postmaster with its backends. The rows "netd / FreeRADIUS (auth, FreeRADIUS files|sql)":
- max throughput: netd's best closed-loop rate / FreeRADIUS's (each at its best window),
  with both p99s there and the CPU per request (netd + Redis, FreeRADIUS + PostgreSQL) in
  the notes;
- p99 at the same offered load (80% of FreeRADIUS's maximum): netd's p99 / FreeRADIUS's,
  both in the notes (below 1: netd's is lower). When netd cannot carry that rate its
  timeouts and unsent requests are in the notes.
FreeRADIUS logs a "conflicting packet" line when the closed loop reuses an identifier the
moment its reply arrives, before its worker thread has marked the old request done; the new
request is still answered (no timeouts), and those lines are counted in the notes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from benchmarks import freeradius
from benchmarks.common import median, table, write
from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.radius import codec
from daemons.radius.admin import credentials
from daemons.store import radius as store
from daemons.store.cache import connect
from daemons.store.embedded import EmbeddedStores
from daemons.store.pg import create_pool
from tests import stack

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DURATION = float(os.environ.get("BENCH_DURATION", "8"))
WARMUP = 2.0
USERS = 10_000
WINDOWS = (64, 256)
OPEN_FRACTION = 0.7
SIDE_FRACTION = 0.8  # issue 10: p99 at 80% of FreeRADIUS's peak, both servers
SOCKETS = 32  # source sockets of the generator (SO_REUSEPORT hashes them to workers)
WORKERS = tuple(int(w) for w in os.environ.get("BENCH_RADIUS_WORKERS", "1,2").split(","))
# Only the authentication history's on/off comparison (issue 21), not the other rows.
AUTH_LOG_ONLY = os.environ.get("BENCH_AUTH_LOG_ONLY", "") == "1"
# The history's on/off servers' worker count (1; 2 loads both cores, PostgreSQL included).
AUTH_LOG_WORKERS = int(os.environ.get("BENCH_AUTH_LOG_WORKERS", "1"))
AUTH_LOG_WINDOW = int(os.environ.get("BENCH_AUTH_LOG_WINDOW", "64"))
# Pairs of on/off runs: the history's cost is a few percent, each run's noise more.
AUTH_LOG_RUNS = int(os.environ.get("BENCH_AUTH_LOG_RUNS", str(max(RUNS, 9))))
SECRET = "bench-s3cret"
REPO = Path(__file__).resolve().parents[1]
LOADGEN_TIMEOUT = WARMUP + DURATION + 60


def user(i: int) -> str:
    return f"user{i:05d}"


def password(i: int) -> str:
    return f"pw-{i:05d}"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the reflector -----------------------------------------------------------------------


def reflect(secret: bytes, seconds: float) -> None:
    """Answer every datagram at once with a minimal signed Access-Accept, for ``seconds``.

    Prints the bound port on stdout first. Plain blocking socket: one recvfrom, one MD5
    and one sendto per request.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, opt, 1 << 22)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    print(sock.getsockname()[1], flush=True)
    deadline = time.monotonic() + seconds
    recv, send, md5 = sock.recvfrom, sock.sendto, hashlib.md5
    while time.monotonic() < deadline:
        for _ in range(4096):  # check the deadline every 4096 requests or 0.5 s idle
            try:
                data, addr = recv(4096)
            except TimeoutError:
                break
            head = b"\x02" + data[1:2] + b"\x00\x14"
            send(head + md5(head + data[4:20] + secret, usedforsecurity=False).digest(), addr)
    sock.close()


@contextmanager
def reflector() -> Iterator[tuple[int, int]]:
    """The reflector as a process of its own: (its UDP port, its pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.radius_auth", "reflect", SECRET, "1800"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield port, proc.pid
    finally:
        _stop(proc)


# --- processes ---------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _udp_listeners(port: int) -> int:
    """How many sockets are bound to 127.0.0.1:port (SO_REUSEPORT workers)."""
    want = f"0100007F:{port:04X}"
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == want)


class Netd:
    """`netd radius` with ``workers`` processes, on fresh auth and accounting UDP ports."""

    def __init__(
        self,
        cwd: Path,
        urls: dict[str, str],
        workers: int,
        extra_env: dict[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.acct_port = free_port(socket.SOCK_DGRAM)
        self.status_port = free_port()
        self.spool = cwd / f"state-w{workers}" / "spool" / "accounting"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("NETD_") and k != "NOTIFY_SOCKET"
        }
        env.update(urls)
        env.update(
            {
                "NETD_RADIUS_AUTH_PORT": str(self.port),
                "NETD_RADIUS_ACCT_PORT": str(self.acct_port),
                "NETD_RADIUS_STATUS_PORT": str(self.status_port),
                "NETD_RADIUS_LISTEN": "127.0.0.1",
                "NETD_RADIUS_WORKERS": str(workers),
                "NETD_POLICIES_DIR": str(cwd / "policies"),
                "NETD_STATE_DIR": str(cwd / f"state-w{workers}"),
                "NETD_LOG_LEVEL": "warning",
                **(extra_env or {}),
            }
        )
        self.log_path = cwd / f"netd-w{workers}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [python, "-m", "daemons.cli", "radius"],  # python: another tree's, to compare
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.workers = workers
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        url = f"http://127.0.0.1:{self.status_port}/health/ready"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netd exited {self.proc.returncode}:\n{self.output()}")
            with suppress(httpx.HTTPError):
                ready = httpx.get(url, timeout=1).status_code == 200
                if ready and _udp_listeners(self.port) >= self.workers:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"netd never became ready:\n{self.output()}")

    def pids(self) -> list[int]:
        return [self.proc.pid, *_children(self.proc.pid)]

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()


def loadgen(
    port: int, watch: dict[str, list[int]], trees: dict[str, int] | None = None, **opts: Any
) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "benchmarks.radius_loadgen",
        "--port",
        str(port),
        "--secret",
        SECRET,
        "--users",
        str(USERS),
        "--warmup",
        str(WARMUP),
        "--duration",
        str(DURATION),
        "--sockets",
        str(SOCKETS),
    ]
    for key, value in opts.items():
        args += [f"--{key}", str(value)]
    for name, pids in watch.items():
        args += ["--watch", f"{name}={','.join(map(str, pids))}"]
    for name, pid in (trees or {}).items():
        args += ["--watch-tree", f"{name}={pid}"]
    out = subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=LOADGEN_TIMEOUT, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed ({out.returncode}):\n{out.stderr}")
    return dict(json.loads(out.stdout))


# --- the database ------------------------------------------------------------------------


async def seed(dsn: str, redis_url: str, prefix: str, sealer: Sealer) -> dict[str, float]:
    await stack.migrate_database(dsn)
    pool = await create_pool(DatabaseConfig(), dsn, "bench")
    cache = await connect(RedisConfig(key_prefix=prefix), redis_url)
    try:
        await stack.add_nas(
            pool, sealer, "bench", "127.0.0.1/32", SECRET.encode(), "mikrotik", True
        )
        t0 = time.perf_counter()
        rows = [
            credentials(store.SubscriberRow(user(i), plan="fiber-100"), password(i), "none", sealer)
            for i in range(USERS)
        ]
        t1 = time.perf_counter()
        await store.bulk_upsert_subscribers(pool, cache, rows)
        t2 = time.perf_counter()
        count = await pool.fetchval("SELECT count(*) FROM subscribers")
        cached, _, _ = await store.cached_subscriber(cache, user(USERS - 1))
        if count != USERS or not cached:
            raise RuntimeError(f"{count} subscribers loaded (cached: {cached}), expected {USERS}")
        return {"seal": t1 - t0, "load": t2 - t1}
    finally:
        await pool.close()
        await cache.close()


def probe(port: int) -> None:
    """One good and one bad PAP request, checked by hand: the set-up is what we think."""
    secret = SECRET.encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        for ident, pw, want in ((1, password(42), codec.Code.ACCESS_ACCEPT), (2, "nope", 3)):
            auth = os.urandom(16)
            req = codec.encode_request(
                codec.Code.ACCESS_REQUEST,
                ident,
                [
                    (codec.Attr.USER_NAME, user(42).encode()),
                    (codec.Attr.USER_PASSWORD, codec.hide_password(pw.encode(), secret, auth)),
                ],
                secret,
                auth,
            )
            sock.send(req)
            reply = sock.recv(4096)
            if not codec.check_response_authenticator(reply, auth, secret):
                raise RuntimeError("probe: bad Response Authenticator")
            if reply[0] != want:
                raise RuntimeError(f"probe: {pw!r} got code {reply[0]}, expected {int(want)}")


# --- the runs ----------------------------------------------------------------------------


def _other(r: dict[str, Any]) -> float:
    """CPU used during the window by processes outside this benchmark (% of one core)."""
    ours = r["cpu_pct"] + sum(v for k, v in r["watch_cpu_pct"].items() if "#" not in k)
    return max(0.0, r["machine_cpu_pct"] - ours)


def _flags(results: list[dict[str, Any]]) -> str:
    notes = []
    for r in results:
        lost = r["timeouts"] / r["sent"] if r["sent"] else 1.0
        if r["rejects"] or r["other"]:
            notes.append(f"{r['rejects']} rejects, {r['other']} other")
        if lost > 0.001:
            notes.append(f"{r['timeouts']}/{r['sent']} timeouts")
        if r["unsent"]:
            notes.append(f"{r['unsent']} not sent (ids exhausted)")
        if r["errors"]:
            notes.append(f"{r['errors']} socket errors")
        if r["target_rate"] and r["send_rate"] < 0.98 * r["target_rate"]:
            notes.append(f"sent {r['send_rate']:.0f}/s of {r['target_rate']:.0f}/s")
        if _other(r) > 25 or r["steal_pct"] > 10:
            notes.append(
                f"noisy: {_other(r):.0f}% core used by others, {r['steal_pct']:.0f}% stolen"
            )
    return "; ".join(dict.fromkeys(notes))


def _row(
    measure: str, values: list[float], unit: str, notes: str = "", ratio: float | None = None
) -> dict[str, Any]:
    clean = [v for v in values if v is not None]
    return {
        "measure": measure,
        "median": median(clean),
        "unit": unit,
        "min": min(clean) if clean else None,
        "max": max(clean) if clean else None,
        "ratio": ratio,
        "notes": notes,
    }


def _rows(label: str, results: list[dict[str, Any]], watch: list[str]) -> list[dict[str, Any]]:
    """Throughput, latency and CPU rows for one setting (medians over runs).

    ``watch`` names with a ``#`` are the processes of a group (netd#1, netd#2): their
    shares go into the notes of the group's row."""
    flags = _flags(results)
    rows = [
        _row(f"{label}: throughput", [r["rate"] for r in results], "req/s", flags),
        _row(f"{label}: latency p50", [r["p50_ms"] for r in results], "ms"),
        _row(f"{label}: latency p99", [r["p99_ms"] for r in results], "ms"),
        _row(f"{label}: latency p99.9", [r["p999_ms"] for r in results], "ms"),
        _row(
            f"{label}: generator CPU",
            [r["cpu_pct"] for r in results],
            "% core",
            f"{median([r['cpu_us_per_req'] for r in results]):.0f} us per request",
        ),
    ]
    for name in watch:
        if "#" in name:
            continue
        pct = [r["watch_cpu_pct"][name] for r in results]
        parts = sorted(k for k in watch if k.startswith(name + "#"))
        notes = (
            "per process: "
            + " / ".join(f"{median([r['watch_cpu_pct'][k] for r in results]):.0f}%" for k in parts)
            if parts
            else ""
        )
        rows.append(_row(f"{label}: {name} CPU", pct, "% core", notes))
        if name in ("netd", "freeradius", "postgres"):
            rows.append(_row(f"{label}: {name} CPU per request", _per_request(results, name), "us"))
    rows.append(
        _row(
            f"{label}: CPU of other processes",
            [_other(r) for r in results],
            "% core",
            f"steal {median([r['steal_pct'] for r in results]):.0f}%",
        )
    )
    return rows


def _per_request(results: list[dict[str, Any]], name: str) -> list[float]:
    """CPU microseconds of ``name`` per answered request in the window, per run."""
    return [
        1e6 * r["watch_cpu_s"][name] / (r["rate"] * r["duration"]) if r["rate"] else float("nan")
        for r in results
    ]


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    reflector_max: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="netd-bench-radius-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(resources.path("policies"), tmp / "policies")
        key = os.urandom(32)
        sealer = Sealer(key)
        prefix = "bench"
        # The generator's ceiling first: against the reflector, same settings.
        with reflector() as (port, pid):
            for window in () if AUTH_LOG_ONLY else WINDOWS:
                results = []
                for i in range(RUNS):
                    results.append(
                        loadgen(port, {"reflector": [pid]}, mode="closed", window=window)
                    )
                    _log(f"reflector w{window} run {i}: {results[-1]['rate']:.0f} req/s")
                reflector_max[window] = median([r["rate"] for r in results])
                got = _rows(f"reflector, closed loop, window {window}", results, ["reflector"])
                rows += [got[0], got[1], got[4], got[5]]  # rate, p50, generator, reflector CPU
        stores = EmbeddedStores(
            tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        try:
            assert stores.postgres is not None and stores.redis is not None
            dsn, redis_url = stores.postgres.dsn, stores.redis.url
            times = asyncio.run(seed(dsn, redis_url, prefix, sealer))
            rows.append(_row("seal 10,000 PAP credentials (AES-GCM)", [times["seal"]], "s"))
            rows.append(
                _row(
                    "bulk-load 10,000 subscribers (COPY + Redis)",
                    [times["load"]],
                    "s",
                )
            )
            urls = {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": redis_url,
                "NETD_REDIS_KEY_PREFIX": prefix,
                "NETD_SECRETS_KEY": key.hex(),
            }
            redis_pid = stores.redis.pid()
            best: dict[int, Best] = {}
            rows += _bench_auth_log(tmp, urls, redis_pid, dsn, stores.postgres.pid())
            if AUTH_LOG_ONLY:
                return rows
            for workers in WORKERS:
                rows += _bench_netd(tmp, urls, workers, redis_pid, reflector_max, best)
            if freeradius.available():
                rows += _bench_freeradius(tmp, dsn, urls, stores.postgres.pid(), redis_pid, best)
            else:
                print(freeradius.skip_message(), flush=True)
        finally:
            stores.release()
    return rows


@dataclass
class Best:
    """A server's best closed-loop setting: rate, window and what it cost (medians)."""

    label: str
    rate: float
    window: int
    p99_ms: float
    cpu_us: float  # the server's CPU per request
    store: str | None = None  # the store it waits on: redis, postgres
    store_cpu_us: float | None = None  # the store's CPU per request


def _best(label: str, window: int, results: list[dict[str, Any]], names: list[str]) -> Best:
    """``names``: the server's watch name, then (optionally) its store's."""
    store = names[1] if len(names) > 1 and names[1] in results[0]["watch_cpu_s"] else None
    return Best(
        label,
        median([r["rate"] for r in results]),
        window,
        median([r["p99_ms"] for r in results]),
        median(_per_request(results, names[0])),
        store,
        median(_per_request(results, store)) if store else None,
    )


def _bench_netd(
    tmp: Path,
    urls: dict[str, str],
    workers: int,
    redis_pid: int | None,
    ref: dict[int, float],
    best_of: dict[int, Best],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    netd = Netd(tmp, urls, workers)
    try:
        probe(netd.port)
        watch = _netd_watch(netd, redis_pid)
        _log(f"netd pids {watch['netd']}, udp port {netd.port}")
        tag = f"netd {workers} worker{'s' if workers > 1 else ''}"
        best = 0.0
        for window in WINDOWS:
            results = []
            for i in range(RUNS):
                results.append(loadgen(netd.port, watch, mode="closed", window=window))
                _log(f"{tag} w{window} run {i}: {json.dumps(_brief(results[-1]))}")
            got = _rows(f"{tag}, closed loop, window {window}", results, list(watch))
            rate = got[0]["median"]
            got[0]["ratio"] = ref[window] / rate if rate else None
            got[0]["notes"] = "; ".join(
                n for n in (got[0]["notes"], "ratio = reflector rate / this") if n
            )
            rows += got
            best = max(best, rate)
            if rate and (workers not in best_of or rate > best_of[workers].rate):
                best_of[workers] = _best(tag, window, results, ["netd", "redis"])
        target = round(best * OPEN_FRACTION)
        results = []
        for i in range(RUNS):
            results.append(loadgen(netd.port, watch, mode="open", rate=target))
            _log(f"{tag} open {target}/s run {i}: {json.dumps(_brief(results[-1]))}")
        rows += _rows(f"{tag}, open loop at {target} req/s (70% of max)", results, list(watch))
        if netd.proc.poll() is not None:
            raise RuntimeError(f"netd died:\n{netd.output()}")
        out = netd.output()
        if "Traceback" in out:
            _log("netd log has a traceback:\n" + out[-4000:])
    finally:
        netd.stop()
    return rows


def _bench_auth_log(
    tmp: Path, urls: dict[str, str], redis_pid: int | None, dsn: str, pg_pid: int | None
) -> list[dict[str, Any]]:
    """The authentication history's cost (issue 21): two `netd radius` (1 worker, or
    BENCH_AUTH_LOG_WORKERS), one with radius.auth_log on (the default) and one with it off,
    loaded in turn (on, off, off, on, on, off...) closed loop at window 64 (or
    BENCH_AUTH_LOG_WINDOW), so drift on the shared machine falls on both alike. Besides the
    rates, the CPU per request of netd, Redis and PostgreSQL (the postmaster and all its
    children: the history's COPY, WAL writer, autovacuum) together: what the history costs
    the machine whatever else slows the closed loop down."""
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    servers = {
        mode: Netd(
            tmp,
            urls,
            AUTH_LOG_WORKERS,
            {
                "NETD_RADIUS_AUTH_LOG": "true" if mode == "on" else "false",
                "NETD_STATE_DIR": str(tmp / f"state-authlog-{mode}"),
            },
        )
        for mode in ("on", "off")
    }
    try:
        for netd in servers.values():
            probe(netd.port)
        for i in range(AUTH_LOG_RUNS):
            # on, off, then off, on: what one run leaves behind (PostgreSQL's autovacuum of
            # the history's rows, a checkpoint) falls as often on either.
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for mode in order:
                netd = servers[mode]
                watch = _netd_watch(netd, redis_pid)
                trees = {"postgres": pg_pid} if pg_pid else {}
                runs[mode].append(
                    loadgen(netd.port, watch, trees, mode="closed", window=AUTH_LOG_WINDOW)
                )
                _log(f"auth log {mode} run {i}: {json.dumps(_brief(runs[mode][-1]))}")
        time.sleep(1.5)  # the last batch of the history is written
        recorded = asyncio.run(_count_auth_log(dsn))
    finally:
        for netd in servers.values():
            netd.stop()
    rows: list[dict[str, Any]] = []
    cpu = {mode: [_stores_cpu_per_request(r) for r in runs[mode]] for mode in runs}
    who = f"netd {AUTH_LOG_WORKERS} worker{'s' if AUTH_LOG_WORKERS > 1 else ''}"
    for mode in ("on", "off"):
        label = f"{who}, auth log {mode}, closed loop, window {AUTH_LOG_WINDOW}"
        got = _rows(label, runs[mode], ["netd"])
        rows += [got[0], got[2]]  # throughput, p99
        if pg_pid:
            rows.append(
                _row(
                    f"{who}, auth log {mode}: netd + Redis + PostgreSQL CPU per request",
                    cpu[mode],
                    "us",
                )
            )
    # Each ratio is the median of the runs' pairs (run i on / run i off, loaded one after the
    # other): the machine's speed drifts by more than the history costs, and a pair sees
    # nearly the same machine; min and max are the pairs' extremes.
    pairs = list(zip(runs["on"], runs["off"], strict=True))
    if pg_pid:
        rows.append(
            _row(
                "auth log on / off: netd + Redis + PostgreSQL CPU per request",
                [a / b for a, b in zip(cpu["on"], cpu["off"], strict=True)],
                "ratio",
                f"{median(cpu['on']) - median(cpu['off']):.1f} us more per request with the "
                "history on (medians of the runs)",
            )
        )
    rows.append(
        _row(
            "auth log on / off: throughput",
            [a["rate"] / b["rate"] if b["rate"] else float("nan") for a, b in pairs],
            "ratio",
            f"{recorded:,} authentications recorded by the 'on' server (radius_auth_log)",
        )
    )
    return rows


def _stores_cpu_per_request(r: dict[str, Any]) -> float:
    """CPU µs per answered request of netd, Redis and PostgreSQL's process tree."""
    cpu = sum(r["watch_cpu_s"].get(k, 0.0) for k in ("netd", "redis", "postgres"))
    return 1e6 * cpu / (r["rate"] * r["duration"]) if r["rate"] else float("nan")


async def _count_auth_log(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM radius_auth_log"))
    finally:
        await conn.close()


def _netd_watch(netd: Netd, redis_pid: int | None) -> dict[str, list[int]]:
    pids = netd.pids()
    watch = {"netd": pids}
    if len(pids) > 1:
        watch.update({f"netd#{i + 1}": [pid] for i, pid in enumerate(pids)})
    if redis_pid:
        watch["redis"] = [redis_pid]
    return watch


def _bench_freeradius(
    tmp: Path,
    dsn: str,
    urls: dict[str, str],
    pg_pid: int | None,
    redis_pid: int | None,
    netd_best: dict[int, Best],
) -> list[dict[str, Any]]:
    """FreeRADIUS files and sql with the same generator, windows and subscribers; then
    netd (its best worker count) open loop at FreeRADIUS's 80% rates, for the p99s."""
    rows: list[dict[str, Any]] = []
    modes: list[freeradius.Mode] = ["files"]
    if freeradius.has_postgresql_driver():
        modes.append("sql")
    else:
        print(
            "FreeRADIUS sql rows skipped: rlm_sql_postgresql is missing "
            "(`apt-get install -y freeradius-postgresql` is needed)",
            flush=True,
        )
    fr_best: dict[str, Best] = {}
    fr_open: dict[str, list[dict[str, Any]]] = {}
    targets: dict[str, int] = {}
    for mode in modes:
        with freeradius.freeradius_server(mode, SECRET, USERS, dsn=dsn, workdir=tmp) as server:
            probe(server.auth_port)
            watch = {"freeradius": [server.pid]}
            trees = {"postgres": pg_pid} if mode == "sql" and pg_pid else {}
            names = [*watch, *trees]
            tag = f"FreeRADIUS {mode}"
            _log(f"{tag}: pid {server.pid}, udp port {server.auth_port}, log {server.log}")
            for window in WINDOWS:
                results = []
                for i in range(RUNS):
                    results.append(
                        loadgen(server.auth_port, watch, trees, mode="closed", window=window)
                    )
                    _log(f"{tag} w{window} run {i}: {json.dumps(_brief(results[-1]))}")
                got = _rows(f"{tag}, closed loop, window {window}", results, names)
                rows += got
                if mode not in fr_best or got[0]["median"] > fr_best[mode].rate:
                    fr_best[mode] = _best(tag, window, results, names)
            target = targets[mode] = round(fr_best[mode].rate * SIDE_FRACTION)
            results = []
            for i in range(RUNS):
                results.append(loadgen(server.auth_port, watch, trees, mode="open", rate=target))
                _log(f"{tag} open {target}/s run {i}: {json.dumps(_brief(results[-1]))}")
            got = _rows(f"{tag}, open loop at {target} req/s (80% of max)", results, names)
            note = freeradius.log_note(server.log)
            if note:
                _log(f"{tag}: {note}")
                got[0]["notes"] = "; ".join(n for n in (got[0]["notes"], note) if n)
            rows += got
            fr_open[mode] = results
    workers = max(netd_best, key=lambda w: netd_best[w].rate)
    tag = f"netd {workers} worker{'s' if workers > 1 else ''}"
    netd = Netd(tmp, urls, workers)
    try:
        probe(netd.port)
        watch = _netd_watch(netd, redis_pid)
        for mode in modes:
            target = targets[mode]
            results = []
            for i in range(RUNS):
                results.append(loadgen(netd.port, watch, mode="open", rate=target))
                _log(f"{tag} open {target}/s run {i}: {json.dumps(_brief(results[-1]))}")
            rows += _rows(
                f"{tag}, open loop at {target} req/s (80% of FreeRADIUS {mode}'s max)",
                results,
                list(watch),
            )
            rows += _ratios(
                f"auth, FreeRADIUS {mode}",
                netd_best[workers],
                fr_best[mode],
                f"{target} req/s (80% of FreeRADIUS's max)",
                results,
                fr_open[mode],
                "req/s",
            )
        if netd.proc.poll() is not None:
            raise RuntimeError(f"netd died:\n{netd.output()}")
    finally:
        netd.stop()
    return rows


def _ratios(
    workload: str,
    netd: Best,
    fr: Best,
    load: str,
    netd_open: list[dict[str, Any]],
    fr_open: list[dict[str, Any]],
    unit: str,
    flagger: Callable[[list[dict[str, Any]]], str] | None = None,
) -> list[dict[str, Any]]:
    """netd / FreeRADIUS: maximum throughput (each at its best window, closed loop) and
    p99 at the same offered load (80% of FreeRADIUS's maximum, open loop)."""
    what = "request" if unit == "req/s" else "record"
    cpu = f"CPU per {what}: netd {netd.cpu_us:.0f} us"
    if netd.store_cpu_us is not None:
        cpu += f" + {netd.store} {netd.store_cpu_us:.0f} us"
    cpu += f", FreeRADIUS {fr.cpu_us:.0f} us"
    if fr.store_cpu_us is not None:
        cpu += f" + {fr.store} {fr.store_cpu_us:.0f} us"
    n99 = median([r["p99_ms"] for r in netd_open if r["p99_ms"] is not None])
    f99 = median([r["p99_ms"] for r in fr_open if r["p99_ms"] is not None])
    n50 = median([r["p50_ms"] for r in netd_open if r["p50_ms"] is not None])
    f50 = median([r["p50_ms"] for r in fr_open if r["p50_ms"] is not None])
    flag = flagger or _flags
    flags = "; ".join(
        f"{who}: {text}"
        for who, text in (("netd", flag(netd_open)), ("FreeRADIUS", flag(fr_open)))
        if text
    )
    return [
        _row(
            f"netd / FreeRADIUS ({workload}): max throughput",
            [netd.rate / fr.rate if fr.rate else float("nan")],
            "x",
            f"{netd.label} {netd.rate:,.0f} {unit} (window {netd.window}) vs {fr.label} "
            f"{fr.rate:,.0f} {unit} (window {fr.window}), closed loop, best window each; "
            f"p99 there {netd.p99_ms:.1f} vs {fr.p99_ms:.1f} ms; {cpu}",
        ),
        _row(
            f"netd / FreeRADIUS ({workload}): p99 at {load}",
            [n99 / f99 if f99 else float("nan")],
            "x",
            f"p99 netd {n99:.2f} ms vs FreeRADIUS {f99:.2f} ms (p50 {n50:.2f} vs {f50:.2f} ms), "
            "open loop, the same offered load; below 1: netd's p99 is lower"
            + (f"; {flags}" if flags else ""),
        ),
    ]


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("rate", "sent", "accepts", "rejects", "timeouts", "stale", "p50_ms", "p99_ms")
    out = {k: round(r[k], 3) if isinstance(r[k], float) else r[k] for k in keys}
    out["cpu%"] = round(r["cpu_pct"], 1)
    out.update({f"{k}%": round(v, 1) for k, v in r["watch_cpu_pct"].items()})
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["reflect"]:
        reflect(sys.argv[2].encode(), float(sys.argv[3]))
        sys.exit(0)
    rows = run()
    print(table(rows))
    write("radius_auth", rows)
