"""RADIUS accounting: durable records per second, time to acknowledgement, and the ledger.

Embedded PostgreSQL (fsync and synchronous_commit at their defaults: on) and Redis in a
temporary directory, schema migrated, one NAS client (127.0.0.1, vendor mikrotik).
`netd radius` runs as a real process on loopback (1 worker, then 2 sharing the port) with
the default group commit (a batch starts as soon as fewer than radius.acct_commits = 2
commits run, up to 1,024 records: batches grow with the load); an
Accounting-Response leaves only once the record's transaction has committed. The load
comes from another process, benchmarks/radius_loadgen.py --kind acct (uvloop, 32 source
sockets): sessions of Start, 3 Interim-Updates (increasing Acct-Session-Time) and Stop,
about 2,000 open at once and interleaved, every request a distinct ledger record (session
ids unique per run); a session's next record goes once the previous one is acknowledged;
a request unanswered for 1 s is retransmitted (same bytes, up to 3 times) and counted once.
Every reply's Response Authenticator is checked. Runs:
- closed loop, 64 and 256 requests in flight: maximum durable records/s, with latency;
- open loop, paced at 70% of that maximum: time to acknowledgement at a sustainable load;
- the same generator against a reflector (a plain-Python UDP responder in this module that
  answers each request with a signed Accounting-Response at once, no storage): the
  generator's own ceiling.
Latency runs from the first send of a request to its Accounting-Response. After every run
the ledger rows of that run's sessions (accounting_events; and count(DISTINCT idem_key))
are counted and compared with the records the generator saw acknowledged (warm-up and
drain included): they must be equal; a difference is flagged in the "ledger" rows.
CPU is utime+stime over the measurement window, as % of one core: netd's processes, the
PostgreSQL postmaster with all its children (backends, WAL writer, checkpointer...) and
Redis from /proc, the generator's from getrusage. Records per commit (mean = _sum/_count of
netd_radius_acct_batch_records) and commit time come from netd's /metrics, which with 2
workers shows the first worker only. The stale-session reaper is pushed out of the runs
(radius.interim_interval = 1 h: stale after 2.5 h), so it writes no synthetic Stops.
One database serves every run: the ledger grows from empty to some 0.5 M rows by the end.
Figures are medians of BENCH_RUNS runs of BENCH_DURATION seconds (after a 2 s warm-up).
The machine has 2 cores shared by netd, PostgreSQL, Redis and the generator.

Side by side with FreeRADIUS 3.2 rlm_sql, when /usr/sbin/freeradius and rlm_sql_postgresql
are installed (`apt-get install -y freeradius freeradius-postgresql`; without them one line
says these rows are skipped and the rows above still run). After the netd rows, the
benchmark starts a FreeRADIUS of its own (benchmarks/freeradius.py: generated config,
debug logging off, loopback, 16 worker threads and 16 PostgreSQL connections) writing to
the standard radacct table in a database of its own (radius_bench) on the same embedded
PostgreSQL: Start is an INSERT, Interim-Update and Stop UPDATE the session's row by
AcctUniqueId (an INSERT if none matched), the columns of FreeRADIUS's stock PostgreSQL
queries. rlm_sql runs each query in autocommit and answers once it returns, so every
Accounting-Response follows a commit (synchronous_commit = on: durable). The same
generator, windows and session mix: closed loop at 64 and 256, open loop at 80% of
FreeRADIUS's maximum, then netd (the worker count with the highest closed-loop rate above)
open loop at that same rate. CPU: the freeradius process and the PostgreSQL tree.
The ledger check for FreeRADIUS, after every run: radacct keeps one row per session, so
rows = acknowledged Starts, closed rows = acknowledged Stops, and the open rows'
Acct-Session-Time / 300 s = their acknowledged Interims; with the Interims of closed
sessions implied (the generator sends a Stop only once they are acknowledged), the records
radacct reflects must equal the records acknowledged (the "records in radacct" rows, and
the summary row counts these runs too). What each writes differs: radacct is a session
table, each Interim and the Stop overwrite the Start's row, while netd keeps every record
(accounting_events, append-only, all attributes as JSONB) and the session (radius_sessions).
The rows "netd / FreeRADIUS (accounting, FreeRADIUS sql)": max durable records/s, netd's
best / FreeRADIUS's (each at its best window; both p99s and CPU per record, each with
PostgreSQL's, in the notes), and time-to-ack p99 at the same offered load (80% of
FreeRADIUS's maximum): netd's / FreeRADIUS's, both in the notes (below 1: netd's lower).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from benchmarks import freeradius
from benchmarks.common import median, table, write
from benchmarks.radius_auth import Best, _best, _ratios, _row, _stop
from benchmarks.radius_auth import Netd as AuthNetd
from daemons import resources
from daemons.core.config import DatabaseConfig
from daemons.core.secrets import Sealer
from daemons.radius import codec
from daemons.store.embedded import EmbeddedStores
from daemons.store.pg import create_pool
from tests import stack

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DURATION = float(os.environ.get("BENCH_DURATION", "8"))
WARMUP = 2.0
WINDOWS = (64, 256)
OPEN_FRACTION = 0.7
SIDE_FRACTION = 0.8  # issue 10: p99 at 80% of FreeRADIUS's peak, both servers
SOCKETS = 32
OPEN_SESSIONS = 2000
INTERIMS = 3
RETRANSMIT = 1.0  # seconds without an answer before the generator resends
RETRIES = 3
WORKERS = tuple(int(w) for w in os.environ.get("BENCH_RADIUS_WORKERS", "1,2").split(","))
SECRET = "bench-acct-s3cret"
REPO = Path(__file__).resolve().parents[1]
LOADGEN_TIMEOUT = WARMUP + DURATION + RETRANSMIT * (RETRIES + 1) + 60
STATUS_NAMES = {1: "start", 2: "stop", 3: "interim"}


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


# --- the reflector -----------------------------------------------------------------------


def reflect(secret: bytes, seconds: float) -> None:
    """Answer every datagram at once with a signed, empty Accounting-Response, for
    ``seconds``. Prints the bound port on stdout first."""
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
            head = b"\x05" + data[1:2] + b"\x00\x14"
            send(head + md5(head + data[4:20] + secret, usedforsecurity=False).digest(), addr)
    sock.close()


@contextmanager
def reflector() -> Iterator[tuple[int, int]]:
    """The reflector as a process of its own: (its UDP port, its pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.radius_acct", "reflect", SECRET, "1800"],
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


# --- netd ----------------------------------------------------------------------------------


class Netd(AuthNetd):
    """`netd radius` as the auth benchmark runs it, with the reaper out of the way and a
    reader for its /metrics."""

    def __init__(self, cwd: Path, urls: dict[str, str], workers: int) -> None:
        # A session is stale after 2.5 intervals: keep the reaper out of the measurement.
        super().__init__(cwd, urls, workers, {"NETD_RADIUS_INTERIM_INTERVAL": "3600"})

    def metrics(self) -> dict[str, float]:
        """netd's /metrics (the first process's registry) as {series: value}."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.status_port}/metrics", timeout=5).text
        except httpx.HTTPError as exc:
            _log(f"/metrics not read: {exc!r}")
            return {}
        return parse_metrics(text)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            with suppress(ValueError):
                out[m.group(1)] = float(m.group(2))
    return out


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Records per commit, commit time, drops and spooling between two scrapes."""
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    name = "netd_radius_acct_batch_records"
    commits = d.get(f"{name}_count", 0.0)
    buckets = sorted(
        (float(re.search(r'le="([^"]+)"', k).group(1)), v)  # type: ignore[union-attr]
        for k, v in d.items()
        if k.startswith(f"{name}_bucket")
    )

    def quantile(q: float) -> float | None:
        for le, cum in buckets:
            if commits and cum >= q * commits:
                return le
        return None

    drops = {
        re.search(r'reason="([^"]+)"', k).group(1): v  # type: ignore[union-attr]
        for k, v in d.items()
        if k.startswith("netd_radius_drops_total{") and v
    }
    commit_n = d.get("netd_radius_acct_commit_seconds_count", 0.0)
    return {
        "commits": commits,
        "batch_mean": d.get(f"{name}_sum", 0.0) / commits if commits else None,
        "batch_p50_le": quantile(0.5),
        "batch_p99_le": quantile(0.99),
        "commit_ms": 1e3 * d.get("netd_radius_acct_commit_seconds_sum", 0.0) / commit_n
        if commit_n
        else None,
        "drops": drops,
        "duplicates": sum(v for k, v in d.items() if k.startswith("netd_radius_duplicates_total")),
        "spooled": d.get("netd_radius_acct_spooled_total", 0.0),
    }


def loadgen(
    port: int, watch: dict[str, list[int]], trees: dict[str, int], **opts: Any
) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "benchmarks.radius_loadgen",
        "--kind",
        "acct",
        "--port",
        str(port),
        "--secret",
        SECRET,
        "--warmup",
        str(WARMUP),
        "--duration",
        str(DURATION),
        "--sockets",
        str(SOCKETS),
        "--open-sessions",
        str(OPEN_SESSIONS),
        "--interims",
        str(INTERIMS),
        "--retransmit",
        str(RETRANSMIT),
        "--retries",
        str(RETRIES),
    ]
    for key, value in opts.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    for name, pids in watch.items():
        args += ["--watch", f"{name}={','.join(map(str, pids))}"]
    for name, pid in trees.items():
        args += ["--watch-tree", f"{name}={pid}"]
    out = subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=LOADGEN_TIMEOUT, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed ({out.returncode}):\n{out.stderr}")
    return dict(json.loads(out.stdout))


# --- the database ------------------------------------------------------------------------


async def seed(dsn: str, sealer: Sealer) -> None:
    await stack.migrate_database(dsn)
    pool = await create_pool(DatabaseConfig(), dsn, "bench")
    try:
        await stack.add_nas(
            pool, sealer, "bench", "127.0.0.1/32", SECRET.encode(), "mikrotik", False
        )
    finally:
        await pool.close()


async def pg_settings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'wal_sync_method', 'server_version')"
        )
    finally:
        await conn.close()
    return {r["name"]: r["setting"] for r in rows}


async def ledger(dsn: str, prefix: str, abandoned: list[list[Any]]) -> dict[str, Any]:
    """The ledger rows of one run's sessions, by status; and how many of the records the
    generator abandoned made it in anyway."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE idem_key NOT LIKE 'reaper:%') AS n, "
            "count(DISTINCT idem_key) FILTER (WHERE idem_key NOT LIKE 'reaper:%') AS d, "
            "count(*) FILTER (WHERE idem_key LIKE 'reaper:%') AS synthetic, "
            "count(*) FILTER (WHERE status_type = 1) AS start, "
            "count(*) FILTER (WHERE status_type = 3) AS interim, "
            "count(*) FILTER (WHERE status_type = 2 AND idem_key NOT LIKE 'reaper:%') AS stop "
            "FROM accounting_events WHERE acct_session_id LIKE $1",
            prefix + "-%",
        )
        found = 0
        if abandoned:
            found = await conn.fetchval(
                "SELECT count(*) FROM accounting_events e JOIN unnest($1::text[], "
                "$2::smallint[], $3::bigint[]) AS a(sid, st, t) ON e.acct_session_id = a.sid "
                "AND e.status_type = a.st AND e.session_time = a.t "
                "WHERE e.acct_session_id LIKE $4",
                [a[0] for a in abandoned],
                [a[1] for a in abandoned],
                [a[2] for a in abandoned],
                prefix + "-%",
            )
    finally:
        await conn.close()
    assert row is not None
    return {**dict(row), "abandoned_in_ledger": int(found)}


def check_ledger(dsn: str, netd: Netd, prefix: str, r: dict[str, Any]) -> dict[str, Any]:
    """Count the run's ledger rows once the spool (if netd used it) has drained."""
    deadline = time.monotonic() + 30
    while True:
        got = asyncio.run(ledger(dsn, prefix, r["abandoned_records"]))
        spool_empty = not any(netd.spool.glob("*.seg")) if netd.spool.exists() else True
        if (got["n"] >= r["acked"] and spool_empty) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    got["equal"] = got["n"] == r["acked"] == got["d"]
    if not got["equal"]:
        detail = (
            f"!!! LEDGER MISMATCH in run {prefix}: {got['n']} rows ({got['d']} distinct idem "
            f"keys) for {r['acked']} acknowledged records; {r['abandoned']} abandoned by the "
            f"generator, {got['abandoned_in_ledger']} of them in the ledger; by status "
            f"ledger start/interim/stop {got['start']}/{got['interim']}/{got['stop']} vs acked "
            f"{r['acked_by_status']}"
        )
        print(detail, flush=True)
        _log(detail)
    return got


def probe(dsn: str, port: int) -> None:
    """A Start and a Stop built with daemons.radius.codec, checked by hand: acknowledged,
    signed, and in the ledger."""
    secret = SECRET.encode()
    sid = f"probe-{os.getpid()}"  # the ledger rows of "probe-*"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        for ident, status in ((1, 1), (2, 2)):
            attrs = [
                (40, status.to_bytes(4, "big")),
                (44, sid.encode()),
                (codec.Attr.USER_NAME, b"probe"),
                (46, (0 if status == 1 else 60).to_bytes(4, "big")),
            ]
            req = codec.encode_request(codec.Code.ACCOUNTING_REQUEST, ident, attrs, secret)
            sock.send(req)
            reply = sock.recv(4096)
            if not codec.check_response_authenticator(reply, req[4:20], secret):
                raise RuntimeError("probe: bad Response Authenticator")
            if reply[0] != codec.Code.ACCOUNTING_RESPONSE:
                raise RuntimeError(f"probe: code {reply[0]}, expected an Accounting-Response")
    got = asyncio.run(ledger(dsn, "probe", []))
    if got["n"] < 2:
        raise RuntimeError(f"probe: {got['n']} ledger rows, expected 2")


# --- rows --------------------------------------------------------------------------------


def _other(r: dict[str, Any]) -> float:
    """CPU used during the window by processes outside this benchmark (% of one core)."""
    ours = r["cpu_pct"] + sum(v for k, v in r["watch_cpu_pct"].items() if "#" not in k)
    return max(0.0, r["machine_cpu_pct"] - ours)


def _flags(results: list[dict[str, Any]]) -> str:
    notes = []
    for r in results:
        if r["other"]:
            notes.append(f"{r['other']} replies not Accounting-Response")
        if r["abandoned"]:
            notes.append(f"{r['abandoned']} requests abandoned after {RETRIES} retransmits")
        if r["retransmits"]:
            notes.append(f"{r['retransmits']} retransmits ({r['retransmitted_acked']} acked)")
        if r["unsent"]:
            notes.append(f"{r['unsent']} not sent (ids exhausted)")
        if r["errors"]:
            notes.append(f"{r['errors']} socket errors")
        if r["target_rate"] and r["send_rate"] < 0.98 * r["target_rate"]:
            notes.append(f"sent {r['send_rate']:.0f}/s of {r['target_rate']:.0f}/s")
        m = r.get("metrics") or {}
        if m.get("spooled"):
            notes.append(f"{m['spooled']:.0f} records spooled (PostgreSQL errors)")
        for reason, n in (m.get("drops") or {}).items():
            notes.append(f"{n:.0f} dropped ({reason})")
        if _other(r) > 25 or r["steal_pct"] > 10:
            notes.append(
                f"noisy: {_other(r):.0f}% core used by others, {r['steal_pct']:.0f}% stolen"
            )
    return "; ".join(dict.fromkeys(notes))


def _mix(results: list[dict[str, Any]]) -> str:
    s = sum(r["window_by_status"]["start"] for r in results)
    i = sum(r["window_by_status"]["interim"] for r in results)
    p = sum(r["window_by_status"]["stop"] for r in results)
    return f"mix Start:Interim:Stop = 1:{i / s:.2f}:{p / s:.2f}" if s else ""


def _rows(label: str, results: list[dict[str, Any]], watch: list[str]) -> list[dict[str, Any]]:
    """Throughput, latency, ledger and CPU rows for one setting (medians over runs)."""
    flags = "; ".join(n for n in (_mix(results), _flags(results)) if n)
    rows = [
        _row(f"{label}: durable records/s", [r["rate"] for r in results], "rec/s", flags),
        _row(f"{label}: time to ack p50", [r["p50_ms"] for r in results], "ms"),
        _row(f"{label}: time to ack p99", [r["p99_ms"] for r in results], "ms"),
        _row(f"{label}: time to ack p99.9", [r["p999_ms"] for r in results], "ms"),
    ]
    if all("radacct" in r.get("ledger", {}) for r in results):
        rows += _radacct_rows(label, results)
    elif all("ledger" in r for r in results):
        per_run = ", ".join(f"{r['ledger']['n']}/{r['acked']}" for r in results)
        bad = [r for r in results if not r["ledger"]["equal"]]
        verdict = (
            "equal in every run"
            if not bad
            else f"!!! MISMATCH in {len(bad)} of {len(results)} runs "
            + "; ".join(
                f"{r['prefix']}: {r['ledger']['n']} rows, {r['ledger']['d']} distinct keys, "
                f"{r['acked']} acked, {r['abandoned']} abandoned "
                f"({r['ledger']['abandoned_in_ledger']} of those in the ledger)"
                for r in bad
            )
        )
        rows.append(
            _row(
                f"{label}: acknowledged records per run",
                [r["acked"] for r in results],
                "records",
                "warm-up + window + drain",
            )
        )
        rows.append(
            _row(
                f"{label}: ledger rows after the run",
                [r["ledger"]["n"] for r in results],
                "rows",
                f"ledger/acked per run: {per_run}: {verdict}",
            )
        )
    rows.append(
        _row(
            f"{label}: retransmits per run",
            [r["retransmits"] for r in results],
            "requests",
            f"after {RETRANSMIT:g} s without an answer; per run: abandoned "
            + ", ".join(str(r["abandoned"]) for r in results)
            + "; late or duplicate replies "
            + ", ".join(str(r["stale"]) for r in results),
        )
    )
    rows.append(
        _row(
            f"{label}: generator CPU",
            [r["cpu_pct"] for r in results],
            "% core",
            f"{median([r['cpu_us_per_req'] for r in results]):.0f} us per record",
        )
    )
    for name in watch:
        if "#" in name or name not in results[0]["watch_cpu_pct"]:
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
        if name in ("netd", "postgres", "freeradius"):
            per = [1e6 * r["watch_cpu_s"][name] / (r["rate"] * r["duration"]) for r in results]
            rows.append(_row(f"{label}: {name} CPU per record", per, "us"))
    if all(r.get("metrics") for r in results):
        ms = [r["metrics"] for r in results]
        p50 = [m["batch_p50_le"] for m in ms if m["batch_p50_le"] is not None]
        p99 = [m["batch_p99_le"] for m in ms if m["batch_p99_le"] is not None]
        rows.append(
            _row(
                f"{label}: records per commit (mean)",
                [m["batch_mean"] for m in ms],
                "records",
                f"histogram p50 <= {median(p50):.0f}, p99 <= {median(p99):.0f}; whole run "
                "incl. warm-up and drain" + (", first worker only" if "netd#2" in watch else ""),
            )
        )
        rows.append(_row(f"{label}: commit time (mean)", [m["commit_ms"] for m in ms], "ms"))
    rows.append(
        _row(
            f"{label}: CPU of other processes",
            [_other(r) for r in results],
            "% core",
            f"steal {median([r['steal_pct'] for r in results]):.0f}%",
        )
    )
    return rows


# --- the runs ----------------------------------------------------------------------------


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    reflector_max: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="netd-bench-acct-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(resources.path("policies"), tmp / "policies")
        key = os.urandom(32)
        sealer = Sealer(key)
        with reflector() as (port, pid):
            for window in WINDOWS:
                results = []
                for i in range(RUNS):
                    results.append(
                        loadgen(
                            port,
                            {"reflector": [pid]},
                            {},
                            mode="closed",
                            window=window,
                            session_prefix=f"ref{window}r{i}",
                        )
                    )
                    _log(f"reflector w{window} run {i}: {results[-1]['rate']:.0f} rec/s")
                reflector_max[window] = median([r["rate"] for r in results])
                got = _rows(f"reflector, closed loop, window {window}", results, ["reflector"])
                keep = ("records/s", "ack p50", "generator CPU", "reflector CPU")
                rows += [g for g in got if g["measure"].endswith(keep)]
        stores = EmbeddedStores(
            tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        try:
            assert stores.postgres is not None and stores.redis is not None
            dsn, redis_url = stores.postgres.dsn, stores.redis.url
            asyncio.run(seed(dsn, sealer))
            settings = asyncio.run(pg_settings(dsn))
            _SETTINGS.update(settings)
            _log(f"PostgreSQL settings: {settings}")
            urls = {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": redis_url,
                "NETD_REDIS_KEY_PREFIX": "bench",
                "NETD_SECRETS_KEY": key.hex(),
            }
            pg_pid = stores.postgres.pid()
            redis_pid = stores.redis.pid()
            best: dict[int, Best] = {}
            for workers in WORKERS:
                rows += _bench_netd(tmp, dsn, urls, workers, pg_pid, redis_pid, reflector_max, best)
            if not freeradius.available():
                print(freeradius.skip_message(), flush=True)
            elif not freeradius.has_postgresql_driver():
                print(
                    "FreeRADIUS accounting rows skipped: rlm_sql_postgresql is missing "
                    "(`apt-get install -y freeradius-postgresql` is needed)",
                    flush=True,
                )
            else:
                rows += _bench_freeradius(tmp, dsn, urls, pg_pid, redis_pid, best)
        finally:
            stores.release()
    rows.append(_summary(rows))
    return rows


_CHECKS: list[tuple[str, bool]] = []
_SETTINGS: dict[str, str] = {}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    bad = [p for p, ok in _CHECKS if not ok]
    pg = ", ".join(f"{k}={v}" for k, v in sorted(_SETTINGS.items()))
    durable = _SETTINGS.get("fsync") == "on" and _SETTINGS.get("synchronous_commit") == "on"
    return _row(
        "ledger check: runs with ledger rows == acknowledged records",
        [sum(ok for _, ok in _CHECKS)],
        f"of {len(_CHECKS)} runs",
        ("all equal" if not bad else "!!! MISMATCH in " + ", ".join(bad))
        + f"; PostgreSQL {pg}"
        + ("" if durable else " !!! commits are not durable"),
    )


def _one(
    netd: Netd,
    dsn: str,
    watch: dict[str, list[int]],
    trees: dict[str, int],
    prefix: str,
    **opts: Any,
) -> dict[str, Any]:
    before = netd.metrics()
    r = loadgen(netd.acct_port, watch, trees, session_prefix=prefix, **opts)
    r["metrics"] = metrics_delta(before, netd.metrics()) if before else None
    r["ledger"] = check_ledger(dsn, netd, prefix, r)
    _CHECKS.append((prefix, r["ledger"]["equal"]))
    if netd.proc.poll() is not None:
        raise RuntimeError(f"netd died:\n{netd.output()}")
    return r


def _bench_netd(
    tmp: Path,
    dsn: str,
    urls: dict[str, str],
    workers: int,
    pg_pid: int | None,
    redis_pid: int | None,
    ref: dict[int, float],
    best_of: dict[int, Best],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    netd = Netd(tmp, urls, workers)
    try:
        probe(dsn, netd.acct_port)
        pids = netd.pids()
        watch = {"netd": pids}
        if len(pids) > 1:
            watch.update({f"netd#{i + 1}": [pid] for i, pid in enumerate(pids)})
        if redis_pid:
            watch["redis"] = [redis_pid]
        trees = {"postgres": pg_pid} if pg_pid else {}
        _log(f"netd pids {pids}, udp port {netd.acct_port}, postmaster {pg_pid}")
        names = [*watch, *trees]
        tag = f"netd {workers} worker{'s' if workers > 1 else ''}"
        best = 0.0
        for window in WINDOWS:
            results = []
            for i in range(RUNS):
                prefix = f"w{workers}c{window}r{i}"
                results.append(_one(netd, dsn, watch, trees, prefix, mode="closed", window=window))
                _log(f"{tag} w{window} run {i}: {json.dumps(_brief(results[-1]))}")
            got = _rows(f"{tag}, closed loop, window {window}", results, names)
            rate = got[0]["median"]
            got[0]["ratio"] = ref[window] / rate if rate else None
            got[0]["notes"] = "; ".join(
                n for n in (got[0]["notes"], "ratio = reflector rate / this") if n
            )
            rows += got
            best = max(best, rate)
            if rate and (workers not in best_of or rate > best_of[workers].rate):
                best_of[workers] = _best(tag, window, results, ["netd", "postgres"])
        target = round(best * OPEN_FRACTION)
        results = []
        for i in range(RUNS):
            prefix = f"w{workers}o{target}r{i}"
            results.append(_one(netd, dsn, watch, trees, prefix, mode="open", rate=target))
            _log(f"{tag} open {target}/s run {i}: {json.dumps(_brief(results[-1]))}")
        rows += _rows(f"{tag}, open loop at {target} rec/s (70% of max)", results, names)
        out = netd.output()
        if "Traceback" in out:
            _log("netd log has a traceback:\n" + out[-4000:])
    finally:
        netd.stop()
    return rows


# --- FreeRADIUS ----------------------------------------------------------------------------


def fr_ledger(server: freeradius.FreeRadius, prefix: str, r: dict[str, Any]) -> dict[str, Any]:
    """radacct after one FreeRADIUS run, against what the generator saw acknowledged.

    radacct keeps one row per session (the Start's INSERT; Interims and the Stop UPDATE
    it), so the check is: rows = acknowledged Starts, closed rows = acknowledged Stops, and
    the open rows' Acct-Session-Time = 300 s x their acknowledged Interims; together, the
    records radacct reflects = every record acknowledged."""
    assert server.radius_dsn is not None
    got: dict[str, Any] = dict(
        asyncio.run(freeradius.radacct_counts(server.radius_dsn, prefix, INTERIMS))
    )
    acked = r["acked_by_status"]
    got["n"] = got["records"]
    got["d"] = got["distinct_ids"]
    got["radacct"] = True
    got["equal"] = (
        got["records"] == r["acked"]
        and got["rows"] == acked["start"] == got["distinct_ids"]
        and got["stopped"] == acked["stop"]
    )
    if not got["equal"]:
        detail = (
            f"!!! RADACCT MISMATCH in run {prefix}: {got['rows']} rows ({got['distinct_ids']} "
            f"distinct AcctUniqueId), {got['stopped']} closed, {got['open_interims']} Interims "
            f"on open rows: {got['records']} records for {r['acked']} acknowledged "
            f"{acked}; {r['abandoned']} abandoned by the generator"
        )
        print(detail, flush=True)
        _log(detail)
    return got


def _radacct_rows(label: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    per_run = ", ".join(
        f"{r['ledger']['records']}/{r['acked']} ({r['ledger']['rows']} rows/"
        f"{r['acked_by_status']['start']} Starts, {r['ledger']['stopped']} closed/"
        f"{r['acked_by_status']['stop']} Stops)"
        for r in results
    )
    bad = sum(1 for r in results if not r["ledger"]["equal"])
    verdict = "equal in every run" if not bad else f"!!! MISMATCH in {bad} of {len(results)} runs"
    return [
        _row(
            f"{label}: acknowledged records per run",
            [r["acked"] for r in results],
            "records",
            "warm-up + window + drain",
        ),
        _row(
            f"{label}: records in radacct after the run",
            [r["ledger"]["records"] for r in results],
            "records",
            f"radacct/acked per run: {per_run}: {verdict}",
        ),
    ]


def _one_fr(
    server: freeradius.FreeRadius,
    watch: dict[str, list[int]],
    trees: dict[str, int],
    prefix: str,
    **opts: Any,
) -> dict[str, Any]:
    r = loadgen(server.acct_port, watch, trees, session_prefix=prefix, **opts)
    r["metrics"] = None
    r["ledger"] = fr_ledger(server, prefix, r)
    _CHECKS.append((prefix, r["ledger"]["equal"]))
    return r


def _fr_probe(server: freeradius.FreeRadius) -> None:
    """probe()'s Start and Stop against FreeRADIUS: acknowledged, signed, one radacct row
    closed by the Stop."""
    secret = SECRET.encode()
    sid = f"probe-{os.getpid()}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", server.acct_port))
        for ident, status in ((1, 1), (2, 2)):
            attrs = [
                (40, status.to_bytes(4, "big")),
                (44, sid.encode()),
                (codec.Attr.USER_NAME, b"probe"),
                (4, socket.inet_aton("127.0.0.1")),
                (46, (0 if status == 1 else 60).to_bytes(4, "big")),
            ]
            req = codec.encode_request(codec.Code.ACCOUNTING_REQUEST, ident, attrs, secret)
            sock.send(req)
            reply = sock.recv(4096)
            if not codec.check_response_authenticator(reply, req[4:20], secret):
                raise RuntimeError("FreeRADIUS probe: bad Response Authenticator")
            if reply[0] != codec.Code.ACCOUNTING_RESPONSE:
                raise RuntimeError(f"FreeRADIUS probe: code {reply[0]}")
    assert server.radius_dsn is not None
    got = asyncio.run(freeradius.radacct_counts(server.radius_dsn, "probe", INTERIMS))
    if got["rows"] != 1 or got["stopped"] != 1:
        raise RuntimeError(f"FreeRADIUS probe: radacct holds {got}, expected 1 closed row")


def _bench_freeradius(
    tmp: Path,
    dsn: str,
    urls: dict[str, str],
    pg_pid: int | None,
    redis_pid: int | None,
    netd_best: dict[int, Best],
) -> list[dict[str, Any]]:
    """FreeRADIUS rlm_sql accounting with the same generator, windows and sessions; then
    netd (its best worker count) open loop at FreeRADIUS's 80% rate, for the p99s."""
    rows: list[dict[str, Any]] = []
    tag = "FreeRADIUS sql"
    with freeradius.freeradius_server("sql", SECRET, dsn=dsn, workdir=tmp) as server:
        _fr_probe(server)
        watch = {"freeradius": [server.pid]}
        trees = {"postgres": pg_pid} if pg_pid else {}
        names = [*watch, *trees]
        _log(f"{tag}: pid {server.pid}, udp port {server.acct_port}, log {server.log}")
        fr_best: Best | None = None
        for window in WINDOWS:
            results = []
            for i in range(RUNS):
                prefix = f"frc{window}r{i}"
                results.append(_one_fr(server, watch, trees, prefix, mode="closed", window=window))
                _log(f"{tag} w{window} run {i}: {json.dumps(_brief(results[-1]))}")
            got = _rows(f"{tag}, closed loop, window {window}", results, names)
            rows += got
            if fr_best is None or got[0]["median"] > fr_best.rate:
                fr_best = _best(tag, window, results, names)
        assert fr_best is not None
        target = round(fr_best.rate * SIDE_FRACTION)
        fr_open = []
        for i in range(RUNS):
            prefix = f"fro{target}r{i}"
            fr_open.append(_one_fr(server, watch, trees, prefix, mode="open", rate=target))
            _log(f"{tag} open {target}/s run {i}: {json.dumps(_brief(fr_open[-1]))}")
        got = _rows(f"{tag}, open loop at {target} rec/s (80% of max)", fr_open, names)
        note = freeradius.log_note(server.log)
        if note:
            _log(f"{tag}: {note}")
            got[0]["notes"] = "; ".join(n for n in (got[0]["notes"], note) if n)
        rows += got
    workers = max(netd_best, key=lambda w: netd_best[w].rate)
    ntag = f"netd {workers} worker{'s' if workers > 1 else ''}"
    netd = Netd(tmp, urls, workers)
    try:
        probe(dsn, netd.acct_port)
        pids = netd.pids()
        nwatch = {"netd": pids}
        if len(pids) > 1:
            nwatch.update({f"netd#{i + 1}": [pid] for i, pid in enumerate(pids)})
        if redis_pid:
            nwatch["redis"] = [redis_pid]
        results = []
        for i in range(RUNS):
            prefix = f"w{workers}fr{target}r{i}"
            results.append(_one(netd, dsn, nwatch, trees, prefix, mode="open", rate=target))
            _log(f"{ntag} open {target}/s run {i}: {json.dumps(_brief(results[-1]))}")
        rows += _rows(
            f"{ntag}, open loop at {target} rec/s (80% of FreeRADIUS sql's max)",
            results,
            [*nwatch, *trees],
        )
        rows += _ratios(
            "accounting, FreeRADIUS sql",
            netd_best[workers],
            fr_best,
            f"{target} rec/s (80% of FreeRADIUS's max)",
            results,
            fr_open,
            "rec/s",
            _flags,
        )
    finally:
        netd.stop()
    return rows


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("rate", "acked", "retransmits", "abandoned", "stale", "p50_ms", "p99_ms")
    out = {k: round(r[k], 3) if isinstance(r[k], float) else r[k] for k in keys}
    out["ledger"] = r["ledger"]["n"]
    out["equal"] = r["ledger"]["equal"]
    m = r.get("metrics") or {}
    if m.get("batch_mean"):
        out["batch"] = round(m["batch_mean"], 1)
        out["commit_ms"] = round(m["commit_ms"], 2)
    if m.get("drops"):
        out["drops"] = m["drops"]
    out["cpu%"] = round(r["cpu_pct"], 1)
    out.update({f"{k}%": round(v, 1) for k, v in r["watch_cpu_pct"].items()})
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["reflect"]:
        reflect(sys.argv[2].encode(), float(sys.argv[3]))
        sys.exit(0)
    rows = run()
    print(table(rows))
    write("radius_acct", rows)
