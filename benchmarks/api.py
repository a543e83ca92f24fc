"""Admin API: requests/s and latency of listing live sessions with 100,000 in Redis.

Embedded PostgreSQL and Redis in a temporary directory, schema migrated, one viewer token.
100,000 live sessions are written to Redis by the accounting path's own store verb,
accounting.update_live_sessions, from Accounting-Start records (2,000 per pipelined call):
the msgpack value per session, the per-user and per-NAS sets, the address key, the sorted
index of all ids and an event-stream entry each. They spread over 20 NAS (bng00..bng19,
5,000 sessions each) and 50,000 users (user00000..user49999, 2 sessions each).
`netd api` runs as one real process on loopback, the rate limit raised out of the way
(NETD_API_RATE_LIMIT / NETD_API_RATE_BURST = 1,000,000). Workloads, all GETs on
/api/v1/sessions with the viewer token:
- first page: ?limit=100;
- walk: ?limit=1000, then &cursor=<next_cursor> until it is null: every walk must return
  exactly 100,000 distinct ids (101 requests: the 100th page is full, so a 101st, empty,
  ends it); pages/s and sessions/s. A walker walks again and again; those running when
  the window ends finish their walk (unmeasured) so that every walk is checked;
- by NAS: ?nas=bngNN&limit=100 (5,000 candidates, 100 returned), NAS in rotation;
- by user: ?user=userNNNNN&limit=100 (2 returned), users in rotation.
The load comes from another process (this module's `gen`): uvloop, N keep-alive
HTTP/1.1 connections over asyncio streams, one request in flight per connection (closed
loop), every answer checked (status 200 and the number of sessions in it). The same
first-page load from an httpx.AsyncClient shows what that client would cost, and wrk
(C, one thread, no checks but the status) is the reference generator when installed.
CPU is utime+stime over the measurement window: netd's and Redis's from /proc/PID/stat,
the generator's from getrusage; "per request" divides it by the requests answered in the
window. Figures are medians of BENCH_RUNS runs of BENCH_DURATION seconds after a 2 s
warm-up. The machine has 2 cores shared by netd, Redis and the generator ("others" in the
notes: CPU used meanwhile by processes outside the benchmark). uvicorn parses HTTP with
httptools when it is installed, else with h11: the row "uvicorn HTTP parser" says which.
A page's latency runs from its request to the last byte of the answer; with several
walkers it also holds the generator's parsing of the other walkers' pages (about 1.4 ms
a page, see "gen us/req").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

from benchmarks.common import median, table, write
from benchmarks.common import wrk as run_wrk
from benchmarks.radius_auth import _stop, free_port
from benchmarks.radius_loadgen import _machine_cpu, _parse_watch, _proc_cpu, _self_cpu
from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.radius.acct import AcctRecord, AcctStatus, _key
from daemons.store import accounting, migrate
from daemons.store import api as api_store
from daemons.store.cache import connect
from daemons.store.embedded import EmbeddedStores
from daemons.store.pg import create_pool

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DURATION = float(os.environ.get("BENCH_DURATION", "8"))
WARMUP = 2.0
SESSIONS = 100_000
NAS_COUNT = 20
USERS = 50_000
SEED_CHUNK = 2_000
CONNS = tuple(int(c) for c in os.environ.get("BENCH_API_CONNS", "16,64").split(","))
WALKERS = tuple(int(c) for c in os.environ.get("BENCH_API_WALKERS", "1,4").split(","))
PAGE, WALK_PAGE = 100, 1000
PREFIX = "bench"
REPO = Path(__file__).resolve().parents[1]
TOKEN_ENV = "BENCH_API_TOKEN"  # the token goes to the generator by environment, not argv
WALK_DRAIN = 120.0  # seconds the walks running at the window's end get to finish

# what each workload asks for, and how many sessions a good answer holds
WORKLOADS = {
    "first": ("first page, limit=100", PAGE),
    "walk": ("walk all, limit=1000", None),
    "nas": ("by NAS, limit=100", PAGE),
    "user": ("by user, limit=100", SESSIONS // USERS),
}


def nas_name(i: int) -> str:
    return f"bng{i:02d}"


def user_name(i: int) -> str:
    return f"user{i:05d}"


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


# --- the stores ----------------------------------------------------------------------------


def _start(i: int, now: float) -> AcctRecord:
    """Session i's Accounting-Start as the decoder makes it (same unique id recipe)."""
    nas = nas_name(i % NAS_COUNT)
    sid = f"{i:08X}"
    port = str(i // NAS_COUNT)
    return AcctRecord(
        nas=nas,
        status=AcctStatus.START,
        acct_session_id=sid,
        unique_id=_key(nas, sid, port),
        idem_key=_key("start", nas, sid, port),
        event_time=now - (i % 86_400),
        username=user_name(i % USERS),
        nas_port=port,
        framed_ip=f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
        input_octets=i * 1_000,
        output_octets=i * 10_000,
        session_time=i % 86_400,
    )


async def seed(dsn: str, redis_url: str) -> dict[str, Any]:
    """Migrate, create the viewer token and write the live sessions; timings and facts."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn, migrate.available())
    finally:
        await conn.close()
    pool = await create_pool(DatabaseConfig(), dsn, "bench")
    cache = await connect(RedisConfig(key_prefix=PREFIX), redis_url)
    try:
        _, token = await api_store.create_token(pool, "bench-viewer", "viewer", "bench")
        now = time.time()
        t0 = time.perf_counter()
        for lo in range(0, SESSIONS, SEED_CHUNK):
            records = [_start(i, now) for i in range(lo, min(SESSIONS, lo + SEED_CHUNK))]
            await accounting.update_live_sessions(cache, records, [])
        seconds = time.perf_counter() - t0
        count = await accounting.live_session_count(cache)
        per_nas = len(await accounting.live_session_ids(cache, nas=nas_name(0), limit=SESSIONS))
        if count != SESSIONS or per_nas != SESSIONS // NAS_COUNT:
            raise RuntimeError(f"{count} live sessions ({per_nas} on bng00), want {SESSIONS}")
        memory = await cache.client.info("memory")
        return {
            "token": token,
            "seconds": seconds,
            "redis_mb": memory["used_memory"] / 2**20,
        }
    finally:
        await pool.close()
        await cache.close()


# --- netd ----------------------------------------------------------------------------------


class ApiProcess:
    """`netd api` (one process) on a fresh loopback port, the rate limit out of the way."""

    def __init__(self, cwd: Path, urls: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("NETD_") and k not in ("NOTIFY_SOCKET", TOKEN_ENV)
        }
        env["NETD_API_GRPC_PORT"] = "0"  # the HTTP API only, unless ``urls`` picks a port
        env.update(urls)
        env.update(
            {
                "NETD_API_PORT": str(self.port),
                "NETD_API_RATE_LIMIT": "1000000",
                "NETD_API_RATE_BURST": "1000000",
                "NETD_POLICIES_DIR": str(cwd / "policies"),
                "NETD_STATE_DIR": str(cwd / "state"),
                "NETD_LOG_LEVEL": "warning",
            }
        )
        self.log_path = cwd / "netd-api.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemons.cli", "api"],
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netd exited {self.proc.returncode}:\n{self.output()}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"netd api never became ready:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()


def http_parser(pid: int) -> str:
    """The HTTP parser uvicorn picked in process ``pid``: httptools if importable, else h11."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "unknown"
    return "httptools" if "/httptools/" in maps else "h11 (httptools not installed)"


def probe(url: str, token: str) -> None:
    """Check by hand, parsing the JSON, that each workload answers what we think."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        first = client.get("/api/v1/sessions", params={"limit": PAGE}).raise_for_status().json()
        ids = [s["unique_id"] for s in first["items"]]
        if len(ids) != PAGE or ids != sorted(ids) or not first["next_cursor"]:
            raise RuntimeError(
                f"probe: first page has {len(ids)} ids, cursor {first['next_cursor']}"
            )
        nas = client.get("/api/v1/sessions", params={"nas": "bng07", "limit": PAGE}).json()
        if len(nas["items"]) != PAGE or {s["nas"] for s in nas["items"]} != {"bng07"}:
            raise RuntimeError("probe: the NAS filter does not hold")
        user = client.get("/api/v1/sessions", params={"user": user_name(42)}).json()
        if [s["username"] for s in user["items"]] != [user_name(42)] * (SESSIONS // USERS):
            raise RuntimeError(f"probe: user filter gave {user['items']}")
        if (
            client.get("/api/v1/sessions", headers={"Authorization": "Bearer nope"}).status_code
            != 401
        ):
            raise RuntimeError("probe: a bad token was let in")


# --- the load generator (a process of its own) --------------------------------------------

_IDS = re.compile(rb'"unique_id":"([^"]*)"')
_NEXT = re.compile(rb'"next_cursor":(?:null|"([^"]*)")\}\s*$')


class HttpConn:
    """One keep-alive HTTP/1.1 connection over asyncio streams, one request at a time."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f" HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: application/json\r\n\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"GET " + path + self.head)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"no Content-Length in {head!r}")
        length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class HttpxConn:
    """The same interface over one httpx.AsyncClient (a pool of one connection)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=f"http://{host}:{port}",
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=60,
        )

    async def open(self) -> None:
        pass

    async def get(self, path: bytes) -> tuple[int, bytes]:
        resp = await self.client.get(path.decode())
        return resp.status_code, resp.content

    async def close(self) -> None:
        await self.client.aclose()


class Generator:
    def __init__(self, args: argparse.Namespace, token: str) -> None:
        self.args = args
        self.token = token
        self.phase = 0  # 0 warm-up, 1 measuring, 2 done
        self.lat: list[int] = []
        self.ok = self.bad = self.sessions = 0
        self.bad_examples: list[str] = []
        self.walks: list[tuple[int, int, int]] = []  # (requests, ids, distinct ids)
        self.counter = 0
        self.user_stride = 7919  # a prime: users in a scattered rotation

    def path(self) -> bytes:
        n = self.counter
        self.counter += 1
        kind = self.args.workload
        if kind == "nas":
            return f"/api/v1/sessions?nas={nas_name(n % NAS_COUNT)}&limit={PAGE}".encode()
        if kind == "user":
            who = user_name(n * self.user_stride % USERS)
            return f"/api/v1/sessions?user={who}&limit={PAGE}".encode()
        return f"/api/v1/sessions?limit={PAGE}".encode()

    def _record(self, t0: int, status: int, body: bytes, want: int | None) -> None:
        if self.phase != 1:
            return
        self.lat.append(time.perf_counter_ns() - t0)
        got = body.count(b'"unique_id":')
        if status == 200 and (want is None or got == want):
            self.ok += 1
            self.sessions += got
        else:
            self.bad += 1
            if len(self.bad_examples) < 3:
                self.bad_examples.append(f"{status} {got} sessions: {body[:200]!r}")

    async def _conn(self) -> HttpConn | HttpxConn:
        cls = HttpxConn if self.args.client == "httpx" else HttpConn
        conn = cls(self.args.host, self.args.port, self.token)
        await conn.open()
        return conn

    async def pages(self) -> None:
        conn = await self._conn()
        want = WORKLOADS[self.args.workload][1]
        try:
            while self.phase < 2:
                path = self.path()
                t0 = time.perf_counter_ns()
                status, body = await conn.get(path)
                self._record(t0, status, body, want)
        finally:
            await conn.close()

    async def walk(self) -> None:
        """Walk all sessions again and again; finish the walk under way at the end."""
        conn = await self._conn()
        first = f"/api/v1/sessions?limit={WALK_PAGE}".encode()
        try:
            while self.phase < 2:
                seen: set[bytes] = set()
                requests = ids = 0
                path = first
                while True:
                    t0 = time.perf_counter_ns()
                    status, body = await conn.get(path)
                    self._record(t0, status, body, None)
                    requests += 1
                    found = _IDS.findall(body)
                    ids += len(found)
                    seen.update(found)
                    nxt = _NEXT.search(body)
                    if status != 200 or nxt is None:
                        raise RuntimeError(f"walk: {status} {body[-300:]!r}")
                    if nxt.group(1) is None:
                        break
                    path = first + b"&cursor=" + nxt.group(1)
                self.walks.append((requests, ids, len(seen)))
        finally:
            await conn.close()

    async def run(self) -> dict[str, Any]:
        a = self.args
        watch = _parse_watch(a.watch)
        work = self.walk if a.workload == "walk" else self.pages
        tasks = [asyncio.create_task(work()) for _ in range(a.conns)]
        await asyncio.sleep(a.warmup)
        self.phase = 1
        cpu0, wall0, busy0 = _self_cpu(), time.perf_counter(), _machine_cpu()
        watch0 = {k: sum(_proc_cpu(p) for p in v) for k, v in watch.items()}
        done, _ = await asyncio.wait(tasks, timeout=a.duration)
        for t in done:  # a task only ends early on an error
            t.result()
        cpu1, wall1, busy1 = _self_cpu(), time.perf_counter(), _machine_cpu()
        watch1 = {k: sum(_proc_cpu(p) for p in v) for k, v in watch.items()}
        self.phase = 2
        drain = WALK_DRAIN if a.workload == "walk" else 30.0
        for t in asyncio.as_completed(tasks, timeout=drain):
            await t
        elapsed, cpu = wall1 - wall0, cpu1 - cpu0
        lat = sorted(self.lat)

        def pct(q: float) -> float | None:
            return lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6 if lat else None

        answered = self.ok + self.bad
        return {
            "workload": a.workload,
            "client": a.client,
            "conns": a.conns,
            "duration": elapsed,
            "ok": self.ok,
            "bad": self.bad,
            "bad_examples": self.bad_examples,
            "rate": self.ok / elapsed,
            "sessions_per_s": self.sessions / elapsed,
            "walks": self.walks,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": lat[-1] / 1e6 if lat else None,
            "cpu_s": cpu,
            "cpu_pct": 100 * cpu / elapsed,
            "cpu_us_per_req": 1e6 * cpu / answered if answered else None,
            "watch_cpu_s": {k: watch1[k] - watch0[k] for k in watch},
            "watch_cpu_pct": {k: 100 * (watch1[k] - watch0[k]) / elapsed for k in watch},
            "machine_cpu_pct": 100 * (busy1[0] - busy0[0]) / elapsed,
            "steal_pct": 100 * (busy1[1] - busy0[1]) / elapsed,
        }


def gen_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.api gen")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="first")
    p.add_argument("--client", choices=["raw", "httpx"], default="raw")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--warmup", type=float, default=WARMUP)
    p.add_argument("--duration", type=float, default=DURATION)
    p.add_argument("--watch", action="append", default=[], help="NAME=PID[,PID]")
    args = p.parse_args(argv)
    if not args.host.startswith("127."):
        p.error("loopback targets only")
    token = os.environ.get(TOKEN_ENV, "")
    gc.disable()  # no collector pauses in the measurement (bounded run, bounded memory)
    print(json.dumps(uvloop.run(Generator(args, token).run())))
    return 0


def loadgen(
    port: int, token: str, watch: dict[str, list[int]], workload: str, conns: int, client: str
) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.api", "gen", "--port", str(port)]
    args += ["--workload", workload, "--conns", str(conns), "--client", client]
    args += ["--warmup", str(WARMUP), "--duration", str(DURATION)]
    for name, pids in watch.items():
        args += ["--watch", f"{name}={','.join(map(str, pids))}"]
    out = subprocess.run(
        args,
        cwd=REPO,
        env={**os.environ, TOKEN_ENV: token},
        capture_output=True,
        text=True,
        timeout=WARMUP + DURATION + WALK_DRAIN + 60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed ({out.returncode}):\n{out.stderr}")
    return dict(json.loads(out.stdout))


def wrk_run(url: str, token: str, conns: int, watch: dict[str, list[int]]) -> dict[str, Any]:
    """wrk on the first page, with the CPU of netd, Redis and wrk itself around it."""
    watch0 = {k: sum(_proc_cpu(p) for p in v) for k, v in watch.items()}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = _machine_cpu()
    t0 = time.perf_counter()
    got = run_wrk(
        f"{url}/api/v1/sessions?limit={PAGE}",
        conns,
        DURATION,
        (f"Authorization: Bearer {token}",),
    )
    elapsed = time.perf_counter() - t0
    busy1 = _machine_cpu()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    watch1 = {k: sum(_proc_cpu(p) for p in v) for k, v in watch.items()}
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    requests = got["rps"] * DURATION
    return {
        "rate": got["rps"],
        "ok": requests,
        "bad": 0,
        "p50_ms": got["50%"],
        "p99_ms": got["99%"],
        "sessions_per_s": got["rps"] * PAGE,
        "duration": DURATION,
        "cpu_pct": 100 * cpu / elapsed,
        "cpu_us_per_req": 1e6 * cpu / requests if requests else None,
        "watch_cpu_s": {k: watch1[k] - watch0[k] for k in watch},
        "watch_cpu_pct": {k: 100 * (watch1[k] - watch0[k]) / elapsed for k in watch},
        "walks": [],
        "machine_cpu_pct": 100 * (busy1[0] - busy0[0]) / elapsed,
        "steal_pct": 100 * (busy1[1] - busy0[1]) / elapsed,
    }


# --- rows ----------------------------------------------------------------------------------


def _per_request(r: dict[str, Any], name: str) -> float | None:
    n = r["ok"] + r["bad"]
    return 1e6 * r["watch_cpu_s"][name] / n if n and name in r["watch_cpu_s"] else None


def _med(results: list[dict[str, Any]], get: Any) -> float | None:
    values = [v for v in (get(r) for r in results) if v is not None]
    return median(values) if values else None


COLUMNS = (
    "workload",
    "conns",
    "req/s",
    "p50 ms",
    "p99 ms",
    "sessions/s",
    "netd CPU %",
    "netd us/req",
    "redis us/req",
    "gen CPU %",
    "gen us/req",
    "notes",
)


def _others(r: dict[str, Any]) -> float:
    """CPU used in the window by processes outside this benchmark (% of one core)."""
    return max(0.0, r["machine_cpu_pct"] - r["cpu_pct"] - sum(r["watch_cpu_pct"].values()))


def _row(label: str, conns: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["rate"] for r in results]
    notes = [
        f"req/s {min(rates):,.0f}..{max(rates):,.0f}",
        f"others {median([_others(r) for r in results]):.0f}% core, "
        f"steal {median([r['steal_pct'] for r in results]):.0f}%",
    ]
    bad = sum(r["bad"] for r in results)
    if bad:
        examples = [e for r in results for e in r.get("bad_examples", [])]
        notes.append(f"!!! {bad} bad answers: {examples[:2]}")
    walks = [w for r in results for w in r["walks"]]
    if walks:
        whole = sum(1 for req, ids, distinct in walks if ids == distinct == SESSIONS)
        mark = "" if whole == len(walks) else "!!! "
        notes.append(
            f"{mark}{whole} of {len(walks)} walks returned exactly {SESSIONS:,} distinct "
            f"ids in {walks[0][0]} requests"
        )
    return {
        "workload": label,
        "conns": conns,
        "req/s": _med(results, lambda r: r["rate"]),
        "p50 ms": _med(results, lambda r: r["p50_ms"]),
        "p99 ms": _med(results, lambda r: r["p99_ms"]),
        "sessions/s": _med(results, lambda r: r["sessions_per_s"]),
        "netd CPU %": _med(results, lambda r: r["watch_cpu_pct"].get("netd")),
        "netd us/req": _med(results, lambda r: _per_request(r, "netd")),
        "redis us/req": _med(results, lambda r: _per_request(r, "redis")),
        "gen CPU %": _med(results, lambda r: r["cpu_pct"]),
        "gen us/req": _med(results, lambda r: r["cpu_us_per_req"]),
        "notes": "; ".join(notes),
    }


def _brief(r: dict[str, Any]) -> str:
    keys = ("rate", "ok", "bad", "p50_ms", "p99_ms", "cpu_pct")
    out = {k: round(r[k], 2) if isinstance(r[k], float) else r[k] for k in keys}
    out.update({f"{k}%": round(v, 1) for k, v in r["watch_cpu_pct"].items()})
    if r["walks"]:
        out["walks"] = len(r["walks"])
    return json.dumps(out)


def _measure(label: str, conns: int, once: Any, tag: str, api: ApiProcess) -> dict[str, Any]:
    results = []
    for i in range(RUNS):
        results.append(once())
        _log(f"{tag} c{conns} run {i}: {_brief(results[-1])}")
        if api.proc.poll() is not None:
            raise RuntimeError(f"netd died:\n{api.output()}")
    return _row(label, conns, results)


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="netd-bench-api-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(resources.path("policies"), tmp / "policies")
        stores = EmbeddedStores(
            tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        try:
            assert stores.postgres is not None and stores.redis is not None
            dsn, redis_url = stores.postgres.dsn, stores.redis.url
            seeded = asyncio.run(seed(dsn, redis_url))
            token = seeded["token"]
            rows.append(
                {
                    "workload": f"seed {SESSIONS:,} live sessions (update_live_sessions)",
                    "sessions/s": SESSIONS / seeded["seconds"],
                    "notes": f"{seeded['seconds']:.1f} s in calls of {SEED_CHUNK:,} Starts; "
                    f"Redis used_memory {seeded['redis_mb']:.0f} MiB after",
                }
            )
            urls = {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": redis_url,
                "NETD_REDIS_KEY_PREFIX": PREFIX,
                "NETD_SECRETS_KEY": os.urandom(32).hex(),
            }
            api = ApiProcess(tmp, urls)
            try:
                probe(api.url, token)
                watch = {"netd": [api.proc.pid]}
                redis_pid = stores.redis.pid()
                if redis_pid:
                    watch["redis"] = [redis_pid]
                parser = http_parser(api.proc.pid)
                _log(f"netd api pid {api.proc.pid} on {api.url} ({parser}), redis {redis_pid}")
                rows.append({"workload": "netd api: uvicorn HTTP parser", "notes": parser})
                rows += _bench(api, token, watch)
                if "Traceback" in api.output():
                    _log("netd log has a traceback:\n" + api.output()[-4000:])
            finally:
                api.stop()
        finally:
            stores.release()
    return [{k: row.get(k) for k in COLUMNS} for row in rows]


def _bench(api: ApiProcess, token: str, watch: dict[str, list[int]]) -> list[dict[str, Any]]:
    rows = []
    for workload in ("first", "nas", "user", "walk"):
        label = WORKLOADS[workload][0]
        for conns in WALKERS if workload == "walk" else CONNS:
            rows.append(
                _measure(
                    label,
                    conns,
                    lambda w=workload, c=conns: loadgen(api.port, token, watch, w, c, "raw"),
                    workload,
                    api,
                )
            )
    for conns in CONNS:
        rows.append(
            _measure(
                "first page, limit=100 (httpx client)",
                conns,
                lambda c=conns: loadgen(api.port, token, watch, "first", c, "httpx"),
                "httpx",
                api,
            )
        )
    if shutil.which("wrk") is None:
        _log("wrk is not installed: no reference row (apt-get install wrk)")
        rows.append({"workload": "first page, limit=100 (wrk)", "notes": "wrk not installed"})
    else:
        for conns in CONNS:
            rows.append(
                _measure(
                    "first page, limit=100 (wrk, reference)",
                    conns,
                    lambda c=conns: wrk_run(api.url, token, c, watch),
                    "wrk",
                    api,
                )
            )
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["gen"]:
        sys.exit(gen_main(sys.argv[2:]))
    result = run()
    print(table(result))
    write("api", result)
