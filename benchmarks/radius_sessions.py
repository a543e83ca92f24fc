"""RADIUS live sessions: memory per 100,000 open sessions, in netd and in Redis.

Embedded PostgreSQL and Redis in a temporary directory, schema migrated, one NAS client
(127.0.0.1, vendor mikrotik). `netd radius` runs as a real process on loopback (1 worker).
Each run opens BENCH_SESSIONS (default 100,000) new sessions: Accounting-Starts (the load
generator's packets, benchmarks/radius_loadgen.py's AcctBuilder: NAS-Port, Framed-IP,
Calling-Station-Id...) sent from this process over 16 sockets with 256 in flight, each
acknowledged (Response Authenticator checked) before the next on its identifier goes.
Before and after, once the live-session index in Redis holds every session of the run:
- netd: the resident set (VmRSS from /proc) of the netd process and its children;
- Redis: INFO memory used_memory (what the data takes) and the server's VmRSS.
The differences, scaled to 100,000 sessions, are the figures. Sessions stay open across
runs, so run k measures going from (k-1) x N to k x N live sessions. Figures are medians of
BENCH_RUNS runs. PostgreSQL holds the ledger of every Start; its size is in the notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import uvloop

from benchmarks.common import median, table, write
from benchmarks.radius_acct import SECRET, Netd, seed
from benchmarks.radius_auth import _children
from benchmarks.radius_loadgen import AcctBuilder
from daemons import resources
from daemons.core.secrets import Sealer
from daemons.store.embedded import EmbeddedStores

REPO = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "100000"))
WINDOW = 256
SOCKETS = 16
PREFIX = "bench"
TIMEOUT = 600.0  # a run that takes longer has failed


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def _rss(pid: int) -> int:
    """VmRSS of a process, bytes (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_rss(pid: int) -> int:
    return _rss(pid) + sum(_tree_rss(c) for c in _children(pid))


async def _redis_memory(url: str) -> int:
    client = aioredis.from_url(url)
    try:
        info = await client.info("memory")
        return int(info["used_memory"])
    finally:
        await client.aclose()


async def _live(url: str) -> int:
    client = aioredis.from_url(url)
    try:
        return int(await client.zcard(f"{PREFIX}:{{live}}:index"))
    finally:
        await client.aclose()


async def _open_sessions(port: int, first: int, count: int) -> float:
    """Accounting-Starts of sessions first..first+count-1, every one acknowledged; the
    seconds it took. A request unanswered for 2 s is sent again (same bytes)."""
    builder = AcctBuilder(SECRET.encode(), 10_000, "user{:05d}", "mem", "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    next_session = first
    end = first + count
    done = asyncio.Event()
    acked = 0
    t0 = time.monotonic()

    class Sock(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.transport: asyncio.DatagramTransport | None = None
            self.pending: dict[int, tuple[bytes, float]] = {}  # identifier -> packet, sent
            self.free = list(range(WINDOW // SOCKETS))

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def send_next(self) -> None:
            nonlocal next_session
            while self.free and next_session < end:
                ident = self.free.pop()
                pkt, _auth = builder.build(next_session, 0, ident)
                next_session += 1
                self.pending[ident] = (pkt, time.monotonic())
                assert self.transport is not None
                self.transport.sendto(pkt)

        def datagram_received(self, data: bytes, addr: Any) -> None:
            nonlocal acked
            if len(data) < 20 or data[0] != 5 or data[1] not in self.pending:
                return
            pkt, _sent = self.pending.pop(data[1])
            head = data[:4]
            want = _md5(head + pkt[4:20] + data[20:] + SECRET.encode())
            if data[4:20] != want:
                raise RuntimeError("an Accounting-Response with a wrong authenticator")
            acked += 1
            self.free.append(data[1])
            if acked == count:
                done.set()
            self.send_next()

    socks = []
    for _ in range(SOCKETS):
        _t, proto = await loop.create_datagram_endpoint(
            Sock, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", port)
        )
        socks.append(proto)
    try:
        for s in socks:
            s.send_next()
        deadline = t0 + TIMEOUT
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1.0)
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"only {acked} of {count} Starts acknowledged")
            for s in socks:  # retransmit what waited over 2 s
                for ident, (pkt, sent) in list(s.pending.items()):
                    if now - sent > 2.0 and s.transport is not None:
                        s.pending[ident] = (pkt, now)
                        s.transport.sendto(pkt)
    finally:
        for s in socks:
            if s.transport is not None:
                s.transport.close()
    return time.monotonic() - t0


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


async def _wait_live(url: str, want: int, limit: float = 60.0) -> int:
    deadline = time.monotonic() + limit
    while True:
        got = await _live(url)
        if got >= want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


async def _ledger_bytes(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


def run() -> list[dict[str, Any]]:
    per: dict[str, list[float]] = {"netd": [], "redis used": [], "redis rss": []}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="netd-bench-sessions-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(resources.path("policies"), tmp / "policies")
        key = os.urandom(32)
        stores = EmbeddedStores(
            tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        try:
            assert stores.postgres is not None and stores.redis is not None
            dsn, redis_url = stores.postgres.dsn, stores.redis.url
            asyncio.run(seed(dsn, Sealer(key)))
            urls = {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": redis_url,
                "NETD_REDIS_KEY_PREFIX": PREFIX,
                "NETD_SECRETS_KEY": key.hex(),
                # no interims in this benchmark: keep the reaper from closing sessions
                "NETD_RADIUS_INTERIM_INTERVAL": "3600",
            }
            netd = Netd(tmp, urls, 1)
            redis_pid = stores.redis.pid() or 0
            try:
                for r in range(RUNS):
                    live0 = uvloop.run(_live(redis_url))
                    netd0, used0, rss0 = (
                        _tree_rss(netd.proc.pid),
                        uvloop.run(_redis_memory(redis_url)),
                        _rss(redis_pid),
                    )
                    seconds = uvloop.run(_open_sessions(netd.acct_port, r * SESSIONS, SESSIONS))
                    live = uvloop.run(_wait_live(redis_url, live0 + SESSIONS))
                    if live != live0 + SESSIONS:
                        raise RuntimeError(f"{live - live0} live sessions, want {SESSIONS}")
                    time.sleep(1.0)  # let the daemon settle (batches, GC)
                    netd1, used1, rss1 = (
                        _tree_rss(netd.proc.pid),
                        uvloop.run(_redis_memory(redis_url)),
                        _rss(redis_pid),
                    )
                    scale = 100_000 / SESSIONS
                    per["netd"].append((netd1 - netd0) * scale)
                    per["redis used"].append((used1 - used0) * scale)
                    per["redis rss"].append((rss1 - rss0) * scale)
                    ledger = uvloop.run(_ledger_bytes(dsn))
                    notes.append(
                        f"run {r + 1}: {live0} -> {live} live in {seconds:.1f} s"
                        f" ({SESSIONS / seconds:.0f} Starts/s); netd {netd1 / 2**20:.0f} MiB,"
                        f" Redis used {used1 / 2**20:.0f} MiB, database {ledger / 2**20:.0f} MiB"
                    )
                    _log(notes[-1])
            finally:
                netd.stop()
        finally:
            stores.release()
    rows = []
    for name, label in (
        ("netd", "netd radius (1 worker) RSS growth"),
        ("redis used", "Redis used_memory growth"),
        ("redis rss", "Redis RSS growth"),
    ):
        values = per[name]
        rows.append(
            {
                "measure": f"{label} per 100,000 live sessions",
                "median MiB": median(values) / 2**20,
                "min MiB": min(values) / 2**20,
                "max MiB": max(values) / 2**20,
                "bytes per session": median(values) / 100_000,
                "notes": "; ".join(notes) if name == "netd" else "",
            }
        )
    return rows


if __name__ == "__main__":
    out = run()
    print(table(out))
    write("radius_sessions", out, (__doc__ or "").strip())
