"""Store outages under mixed RADIUS load (issue 11), with real processes.

A real `netd radius`, a NAS on loopback that keeps sending Access-Requests (PAP) and
accounting (Start, Interim-Update, Stop; retransmitted until acknowledged, like a NAS), and
one store taken away in the middle:

- PostgreSQL stopped for 30 s (its connections left hanging for the first 10 s, then
  refused): authentication goes on from the Redis cache without waiting on PostgreSQL,
  accounting is acknowledged from the local spool, and once PostgreSQL is back the ledger
  holds exactly the acknowledged records;
- Redis killed (SIGKILL) and restarted empty after 10 s, then killed again just after a
  snapshot and restarted from it: authentication falls back to PostgreSQL, the live
  sessions in Redis are rebuilt (and repaired) from the sessions table, and no accounting
  record is lost.

Each test prints its figures (requests, accepts, drops, records acknowledged and in the
ledger, recovery times) for the closing note.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from redis.exceptions import RedisError

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.radius.admin import credentials
from daemons.radius.codec import Attr, Code, encode_request, hide_password
from daemons.store import accounting, migrate
from daemons.store import radius as rstore
from daemons.store.cache import Cache, connect
from daemons.store.embedded import DATABASE, PG_PORT, EmbeddedStores
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.faults.conftest import LeakWatch
from tests.support import NetdProcess, free_port, free_udp_port, netd_env

REPO = Path(__file__).resolve().parents[2]
SECRET = b"outage-radius-secret"
N_CACHED = 40  # subscribers authenticated once before the fault: in the Redis cache
N_FRESH = 80  # subscribers first seen during the load, one a second
AUTH_RATE = 20.0  # Access-Requests a second for the cached subscribers
ACCT_TICK = 0.2  # every tick: a Start, an Interim-Update 5 ticks later, a Stop 10 later
STATUS_TYPE, SESSION_ID, SESSION_TIME = 40, 44, 46
START, STOP, INTERIM = 1, 2, 3


# --- the NAS -----------------------------------------------------------------------------


@dataclass
class Request:
    kind: str  # "cached" or "fresh" (Access-Request), "acct"
    key: tuple[str, int]  # (user, n) or (Acct-Session-Id, Acct-Status-Type)
    packet: bytes
    first: float = 0.0  # monotonic time of the first send
    last: float = 0.0
    tries: int = 0
    code: int | None = None  # the answer's code
    answered: float = 0.0


class Pool:
    """Sockets a NAS sends from: request i goes out of socket i % SIZE with the identifier
    (i // SIZE) % 256, so (socket, identifier) names the request its answer is for."""

    SIZE = 64

    def __init__(self) -> None:
        self.socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(self.SIZE)]
        for s in self.socks:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)

    @staticmethod
    def ident(i: int) -> int:
        return (i // Pool.SIZE) % 256

    def close(self) -> None:
        for s in self.socks:
            s.close()


def sessions_of(tick: int) -> list[tuple[str, int]]:
    """The accounting records sent at a tick: (Acct-Session-Id, status). Every fourth session
    is never stopped: it stays live to the end."""
    out = [(f"so-{tick:05d}", START)]
    if tick >= 5:
        out.append((f"so-{tick - 5:05d}", INTERIM))
    if tick >= 10 and (tick - 10) % 4:
        out.append((f"so-{tick - 10:05d}", STOP))
    return out


class Nas(threading.Thread):
    """A bounded mixed load, run in a thread while the test stops and starts the stores.

    Access-Requests: AUTH_RATE a second for the cached subscribers (round robin) and one a
    second for a subscriber never seen before; each is tried three times, a second apart,
    then given up (a NAS moves on). Accounting: a Start, an Interim-Update and a Stop a tick,
    each retransmitted every second until acknowledged. New requests stop at ``stop_new``;
    the thread ends when every accounting record is acknowledged, or at ``deadline``."""

    def __init__(
        self,
        auth_port: int,
        acct_port: int,
        cached: list[str],
        fresh: list[str],
        password: bytes,
        deadline: float,
    ) -> None:
        super().__init__(daemon=True)
        self.auth_port, self.acct_port = auth_port, acct_port
        self.cached, self.fresh, self.password = cached, fresh, password
        self.deadline = deadline
        self.stop_new = threading.Event()
        self.auth: list[Request] = []
        self.acct: list[Request] = []
        self.lock = threading.Lock()

    def _access(self, user: str, ident: int) -> bytes:
        auth = os.urandom(16)
        return encode_request(
            Code.ACCESS_REQUEST,
            ident,
            [
                (Attr.USER_NAME, user.encode()),
                (Attr.USER_PASSWORD, hide_password(self.password, SECRET, auth)),
                (5, struct.pack("!I", len(self.auth))),  # NAS-Port
            ],
            SECRET,
            auth,
        )

    @staticmethod
    def _accounting(sid: str, status: int, ident: int) -> bytes:
        attrs = [
            (STATUS_TYPE, struct.pack("!I", status)),
            (SESSION_ID, sid.encode()),
            (Attr.USER_NAME, ("acct-" + sid).encode()),
            (SESSION_TIME, struct.pack("!I", {START: 0, INTERIM: 60, STOP: 120}[status])),
        ]
        return encode_request(Code.ACCOUNTING_REQUEST, ident, attrs, SECRET)

    def run(self) -> None:
        auth_socks, acct_socks = Pool(), Pool()
        t0 = time.monotonic()
        sent_auth = ticks = fresh_sent = 0
        try:
            while time.monotonic() < self.deadline:
                now = time.monotonic()
                if not self.stop_new.is_set():
                    while sent_auth < int((now - t0) * AUTH_RATE) + 1:
                        user = self.cached[sent_auth % len(self.cached)]
                        self._add(self.auth, "cached", (user, sent_auth), now)
                        sent_auth += 1
                    while fresh_sent < min(len(self.fresh), int(now - t0) + 1):
                        self._add(self.auth, "fresh", (self.fresh[fresh_sent], 0), now)
                        fresh_sent += 1
                    while ticks < int((now - t0) / ACCT_TICK) + 1:
                        for sid, status in sessions_of(ticks):
                            self._add(self.acct, "acct", (sid, status), now)
                        ticks += 1
                elif all(r.code is not None for r in self.acct) and all(
                    r.code is not None or r.tries >= 3 for r in self.auth
                ):
                    return
                for reqs, socks, port, tries in (
                    (self.auth, auth_socks, self.auth_port, 3),
                    (self.acct, acct_socks, self.acct_port, 1_000_000),
                ):
                    for i, r in enumerate(reqs):
                        if r.code is None and r.tries < tries and now - r.last >= 1.0:
                            with contextlib.suppress(OSError):
                                socks.socks[i % Pool.SIZE].sendto(r.packet, ("127.0.0.1", port))
                            r.first = r.first or now
                            r.last, r.tries = now, r.tries + 1
                    self._receive(reqs, socks)
                time.sleep(0.005)
        finally:
            auth_socks.close()
            acct_socks.close()

    def _add(self, reqs: list[Request], kind: str, key: tuple[str, int], now: float) -> None:
        ident = Pool.ident(len(reqs))
        if kind == "acct":
            packet = self._accounting(key[0], key[1], ident)
        else:
            packet = self._access(key[0], ident)
        with self.lock:
            reqs.append(Request(kind, key, packet))

    @staticmethod
    def _receive(reqs: list[Request], socks: Pool) -> None:
        now = time.monotonic()
        for n, s in enumerate(socks.socks):
            while True:
                try:
                    raw = s.recv(4096)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                i = raw[1] * Pool.SIZE + n  # the loads stay under 256 * SIZE requests
                if i < len(reqs) and reqs[i].code is None:
                    reqs[i].code, reqs[i].answered = raw[0], now


# --- checks ------------------------------------------------------------------------------


async def ledger(dsn: str) -> list[tuple[str, int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT acct_session_id, status_type, idem_key FROM accounting_events"
        )
    finally:
        await conn.close()
    return [(r["acct_session_id"], int(r["status_type"]), r["idem_key"]) for r in rows]


def acked(nas: Nas, before: float = float("inf")) -> set[tuple[str, int]]:
    return {r.key for r in nas.acct if r.code == Code.ACCOUNTING_RESPONSE and r.answered < before}


async def wait_ledger_holds(dsn: str, want: set[tuple[str, int]], timeout: float) -> float:
    """Seconds until every record in ``want`` is in the ledger (inf if it never is)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            if want <= {(sid, st) for sid, st, _ in await ledger(dsn)}:
                return time.monotonic() - t0
        await asyncio.sleep(0.2)
    return float("inf")


async def check_ledger_exact(dsn: str, nas: Nas) -> int:
    """The ledger is the acknowledged set: each record once, none missing, none extra."""
    rows = await ledger(dsn)
    keys = [(sid, st) for sid, st, _ in rows]
    assert len({idem for _, _, idem in rows}) == len(rows), "a record twice in the ledger"
    assert len(set(keys)) == len(keys), "a record twice in the ledger"
    want = acked(nas)
    assert len(want) == len(nas.acct), "every accounting record acknowledged in the end"
    assert set(keys) == want, (
        f"missing {sorted(want - set(keys))[:10]}, extra {sorted(set(keys) - want)[:10]}"
    )
    return len(rows)


def open_sessions(nas: Nas) -> set[str]:
    """Sessions with an acknowledged Start and no acknowledged Stop."""
    done = acked(nas)
    return {sid for sid, st in done if st == START and (sid, STOP) not in done}


async def live_in_redis(cache: Cache) -> dict[str, str]:
    """The live sessions as the API lists them (from Redis): Acct-Session-Id → unique id."""
    ids = await accounting.live_session_ids(cache, limit=100_000)
    return {
        str(v["acct_session_id"]): str(v["unique_id"])
        for v in await accounting.live_sessions(cache, ids)
    }


def no_traceback(proc: NetdProcess) -> None:
    out = proc.output()
    assert "Traceback" not in out, [line[:600] for line in out.splitlines() if "Traceback" in line]


# --- set-up ------------------------------------------------------------------------------


@dataclass
class Setup:
    key: bytes
    password: str
    cached: list[str]
    fresh: list[str]
    env: dict[str, str]
    auth_port: int
    acct_port: int
    status_port: int
    spool: Path
    procs: list[NetdProcess] = field(default_factory=list)

    def start(self, tmp: Path) -> NetdProcess:
        proc = NetdProcess(["radius"], self.env, tmp)
        self.procs.append(proc)
        proc.wait_http(f"http://127.0.0.1:{self.status_port}/health/ready", timeout=30)
        return proc


async def seed(
    dsn: str, redis_url: str, tmp: Path, leak_watch: LeakWatch, daemon_dsn: str = ""
) -> Setup:
    """The NAS and the subscribers in PostgreSQL (not in Redis: the first authentications
    cache them), and the daemon's environment (its PostgreSQL at ``daemon_dsn`` if set)."""
    key = os.urandom(32)
    password = "pw-" + os.urandom(8).hex()
    leak_watch.add(SECRET, key, password)
    sealer = Sealer(key)
    tag = uuid.uuid4().hex[:8]
    cached = [f"c{tag}-{i:03d}" for i in range(N_CACHED)]
    fresh = [f"f{tag}-{i:03d}" for i in range(N_FRESH)]
    pool = await create_pool(DatabaseConfig(), dsn, "test")
    try:
        await rstore.add_nas(
            pool,
            rstore.NasRow(
                "lo", "127.0.0.1/32", sealer.seal(SECRET, b"nas:lo"), "generic", False, 3799
            ),
        )
        rows = [
            credentials(rstore.SubscriberRow(u, plan="fiber-100"), password, "none", sealer)
            for u in cached + fresh
        ]
        await pool.executemany(
            "INSERT INTO subscribers (username, password_enc, nt_hash_enc, plan) "
            "VALUES ($1, $2, $3, $4)",
            [(r.username, r.password_enc, r.nt_hash_enc, r.plan) for r in rows],
        )
    finally:
        await pool.close()
    auth_port, acct_port, status_port = free_udp_port(), free_udp_port(), free_port()
    env = netd_env(
        {
            "NETD_DATABASE_URL": daemon_dsn or dsn,
            "NETD_REDIS_URL": redis_url,
            "NETD_REDIS_KEY_PREFIX": "o" + uuid.uuid4().hex[:10],
            "NETD_SECRETS_KEY": key.hex(),
            "NETD_RADIUS_AUTH_PORT": str(auth_port),
            "NETD_RADIUS_ACCT_PORT": str(acct_port),
            "NETD_RADIUS_STATUS_PORT": str(status_port),
            "NETD_RADIUS_LISTEN": "127.0.0.1",
            "NETD_POLICIES_DIR": str(resources.path("policies")),
            "NETD_STATE_DIR": str(tmp / "state"),
            "NETD_DATABASE_CONNECT_TIMEOUT": "2",
            "NETD_DATABASE_COMMAND_TIMEOUT": "5",
            "NETD_REDIS_CONNECT_TIMEOUT": "1",
            "NETD_REDIS_SOCKET_TIMEOUT": "2",
            "NETD_LOG_FORMAT": "json",
        }
    )
    return Setup(
        key,
        password,
        cached,
        fresh,
        env,
        auth_port,
        acct_port,
        status_port,
        tmp / "state" / "spool" / "accounting",
    )


def warm_up(setup: Setup) -> None:
    """Authenticate every cached subscriber once, so the daemon caches its record."""
    nas = Nas(
        setup.auth_port,
        setup.acct_port,
        setup.cached,
        [],
        setup.password.encode(),
        time.monotonic() + 15,
    )
    for n, user in enumerate(setup.cached):
        nas._add(nas.auth, "cached", (user, n), time.monotonic())
    nas.stop_new.set()
    nas.run()
    codes = [r.code for r in nas.auth]
    assert codes == [Code.ACCESS_ACCEPT] * len(setup.cached), codes


def auth_figures(nas: Nas, start: float, end: float) -> dict[str, int]:
    """Access-Requests first sent in [start, end): how many, and how many were accepted."""
    out = {"cached": 0, "cached_accepted": 0, "fresh": 0, "fresh_accepted": 0}
    for r in nas.auth:
        if start <= r.first < end:
            out[r.kind] += 1
            out[r.kind + "_accepted"] += r.code == Code.ACCESS_ACCEPT
    return out


# --- PostgreSQL stopped for 30 s ---------------------------------------------------------


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[EmbeddedStores]:
    """A PostgreSQL of the test's own (so it may stop it), migrated."""
    emb = EmbeddedStores(tmp_path / "pg", postgres=True, redis=False, run_as="netd", timeout=60)
    await asyncio.to_thread(emb.acquire)
    assert emb.postgres is not None
    conn = await asyncpg.connect(emb.postgres.dsn)
    await migrate.apply(conn, migrate.available())
    await conn.close()
    try:
        yield emb
    finally:
        await asyncio.to_thread(emb.postgres.start)  # in case the test left it stopped
        await asyncio.to_thread(emb.release)


class Blackhole:
    """A TCP proxy in front of PostgreSQL's unix socket that can make it unreachable rather
    than refusing: while frozen, nothing is forwarded either way, not even a close, and new
    connections are accepted and left waiting (a host gone from the network). Thawed, it
    forwards again, and a PostgreSQL that is down is refused at once."""

    def __init__(self, socket_path: Path) -> None:
        self.path = socket_path
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            await self.flowing.wait()
            try:
                up_reader, up_writer = await asyncio.open_unix_connection(str(self.path))
            except OSError:
                return  # PostgreSQL is down: refused
            self.writers.add(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            writer.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(65536)
                await self.flowing.wait()  # frozen: hold the data, or the close
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()

    async def close(self) -> None:
        self.thaw()
        if self.server is not None:
            self.server.close()
        for w in list(self.writers):
            w.close()


PG_OUTAGE = 30.0  # seconds, as the issue says
UNREACHABLE = 10.0  # of which, first, PostgreSQL's connections hang rather than fail


async def test_postgres_stopped_30s_under_mixed_load(
    own_postgres: EmbeddedStores, store_urls: StoreUrls, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    """PostgreSQL stopped for 30 s. The daemon reaches it through a proxy which, for the
    first 10 s, leaves its connections hanging (as when the database's host drops off the
    network) before they are refused: cached subscribers must not wait on the lookups of
    subscribers that are not cached."""
    postgres = own_postgres.postgres
    assert postgres is not None
    dsn = postgres.dsn
    proxy = Blackhole(postgres.sockets / f".s.PGSQL.{PG_PORT}")
    await proxy.start()
    setup = await seed(
        dsn,
        store_urls.redis,
        tmp_path,
        leak_watch,
        f"postgresql://postgres@127.0.0.1:{proxy.port}/{DATABASE}",
    )
    # A lookup that hangs is held this long; a cached subscriber must not be. An accounting
    # batch is held radius.acct_commit_timeout at most, then spooled and acknowledged.
    setup.env["NETD_DATABASE_CONNECT_TIMEOUT"] = "4"
    setup.env["NETD_DATABASE_COMMAND_TIMEOUT"] = "10"
    setup.env["NETD_RADIUS_ACCT_COMMIT_TIMEOUT"] = "2"
    proc = await asyncio.to_thread(setup.start, tmp_path)  # the proxy runs in this loop
    try:
        await asyncio.to_thread(warm_up, setup)
        nas = Nas(
            setup.auth_port,
            setup.acct_port,
            setup.cached,
            setup.fresh,
            setup.password.encode(),
            time.monotonic() + PG_OUTAGE + 60,
        )
        nas.start()
        await asyncio.sleep(3.5)
        stopping = time.monotonic()
        proxy.freeze()
        await asyncio.to_thread(postgres.stop)
        down = time.monotonic()
        await asyncio.sleep(max(0.0, down + UNREACHABLE - time.monotonic()))
        spooled = sorted(setup.spool.glob("*.seg"))
        proxy.thaw()
        await asyncio.sleep(max(0.0, down + PG_OUTAGE - time.monotonic()))
        up_at = time.monotonic()
        await asyncio.to_thread(postgres.start)
        up = time.monotonic()
        outage = up_at - down
        owed = acked(nas, up_at)  # acknowledged while PostgreSQL was down (or before)
        recovery = await wait_ledger_holds(dsn, owed, timeout=30)
        await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - up)))
        nas.stop_new.set()
        await asyncio.to_thread(nas.join, 40)
        assert not nas.is_alive()
        settle = await wait_ledger_holds(dsn, acked(nas), timeout=20)
        assert proc.proc.poll() is None, "the daemon stays up"

        # Authentication from the cache while PostgreSQL was down.
        during = auth_figures(nas, down, up_at)
        assert during["cached"] >= AUTH_RATE * (PG_OUTAGE - 5)
        assert during["cached_accepted"] == during["cached"], during
        # Before and after, fresh subscribers are accepted too (from PostgreSQL).
        outside = auth_figures(nas, 0, stopping - 3)  # all three tries before the stop
        after = auth_figures(nas, up + 2, float("inf"))
        assert outside["fresh_accepted"] == outside["fresh"] > 0, outside
        assert after["fresh_accepted"] == after["fresh"], after
        assert all(r.code == Code.ACCESS_ACCEPT for r in nas.auth if r.kind == "cached")
        waits = [
            r.answered - r.first for r in nas.auth if r.kind == "cached" and stopping <= r.first
        ]
        slowest = max(waits)
        assert slowest < 2.0, f"a cached subscriber waited {slowest:.1f}s for its Accept"

        # Accounting was acknowledged from the spool while PostgreSQL was down.
        assert spooled, "records acknowledged while PostgreSQL was down are spooled"
        sent_during = [r for r in nas.acct if down + 1 <= r.first < up_at - 2]
        assert sent_during and all(
            r.code == Code.ACCOUNTING_RESPONSE and r.answered < up_at for r in sent_during
        ), "acknowledgements continue during the outage"
        in_outage = len(acked(nas, up_at) - acked(nas, down))
        ack_wait = max(r.answered - r.first for r in nas.acct if stopping <= r.first < up_at)
        assert in_outage >= len(sent_during)
        # The commit deadline (2 s), not the command timeout (10 s), bounds the wait; the
        # NAS's retransmit is answered from the duplicate cache once the batch is durable.
        assert ack_wait < 4.5, f"an accounting record waited {ack_wait:.1f}s for its ack"

        # After recovery the ledger is the acknowledged set, exactly.
        assert recovery < 30, "the ledger never caught up with the spool"
        assert settle < 20
        total = await check_ledger_exact(dsn, nas)
        print(
            f"\npostgres outage {outage:.1f}s: Access-Requests during it {during['cached']} "
            f"for cached subscribers, {during['cached_accepted']} accepted; "
            f"{during['fresh']} for subscribers never seen, {during['fresh_accepted']} accepted "
            f"({during['fresh'] - during['fresh_accepted']} dropped); slowest Accept "
            f"{slowest * 1000:.0f} ms; accounting: "
            f"{in_outage} records acknowledged during the outage (spooled; slowest "
            f"acknowledgement {ack_wait:.1f}s, while connections hung: the 2 s commit "
            f"deadline); "
            f"{len(acked(nas))} acknowledged, {total} in the ledger; ledger complete "
            f"{recovery:.1f}s after PostgreSQL was started "
            f"({recovery + up - up_at:.1f}s after the start began)"
        )
        assert not list(setup.spool.glob("*.seg")), "the spool is emptied"
    finally:
        for p in setup.procs:
            await asyncio.to_thread(p.stop)
        await proxy.close()
    for p in setup.procs:
        no_traceback(p)


# --- Redis killed and restarted ----------------------------------------------------------


class RedisServer:
    """redis-server of the test's own on a loopback port, without persistence, so that a
    restart after SIGKILL comes back empty."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.tmp / f"redis-{time.monotonic_ns()}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.5) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP: the server holds its connections and answers nothing (a hang, not a
        refusal); SIGCONT: it goes on."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


REDIS_OUTAGE = 10.0
SNAPSHOT_OUTAGE = 3.0


async def open_in_table(dsn: str) -> dict[str, str]:
    """The sessions table's open sessions: Acct-Session-Id → unique id."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT acct_session_id, unique_id FROM radius_sessions WHERE stopped_at IS NULL"
        )
    finally:
        await conn.close()
    return {r["acct_session_id"]: r["unique_id"] for r in rows}


async def wait_live(cache: Cache, want: Callable[[set[str]], bool], timeout: float) -> float:
    """Seconds until Redis's live sessions (by Acct-Session-Id) satisfy ``want``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(RedisError, OSError):
            if want(set(await live_in_redis(cache))):
                return time.monotonic() - t0
        await asyncio.sleep(0.1)
    return float("inf")


async def test_redis_killed_and_restarted_under_mixed_load(
    own_redis: RedisServer, store_urls: StoreUrls, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    """Redis killed for 10 s and restarted empty; then killed again just after a snapshot
    and restarted from it (its data a few seconds behind: stopped sessions still listed,
    newer ones missing), which only a repair after missed updates puts right."""
    async with fresh_database(store_urls, "so_", migrated=True) as dsn:
        setup = await seed(dsn, own_redis.url, tmp_path, leak_watch)
        # Redis is checked for lost live sessions every second (5 s by default).
        setup.env["NETD_RADIUS_LIVE_SESSIONS_CHECK_INTERVAL"] = "1"
        proc = setup.start(tmp_path)
        config = RedisConfig(key_prefix=setup.env["NETD_REDIS_KEY_PREFIX"])
        try:
            await asyncio.to_thread(warm_up, setup)
            nas = Nas(
                setup.auth_port,
                setup.acct_port,
                setup.cached,
                setup.fresh,
                setup.password.encode(),
                time.monotonic() + REDIS_OUTAGE + 50,
            )
            nas.start()
            await asyncio.sleep(3.5)
            live_before = open_sessions(nas)
            await asyncio.to_thread(own_redis.kill9)
            down = time.monotonic()
            await asyncio.sleep(REDIS_OUTAGE)
            await asyncio.to_thread(own_redis.start)
            up = time.monotonic()
            cache = await connect(config, own_redis.url)
            # Rebuilt: the sessions open before the kill and still open are back.
            rebuilt = await wait_live(
                cache, lambda ids: live_before & open_sessions(nas) <= ids, 20
            )
            assert rebuilt < 20, "the live sessions were never rebuilt"
            during = auth_figures(nas, down, up)

            # Killed again, just after a snapshot, and restarted from it.
            await cache.client.save()
            await cache.close()
            await asyncio.to_thread(own_redis.kill9)
            down2 = time.monotonic()
            await asyncio.sleep(SNAPSHOT_OUTAGE)
            await asyncio.to_thread(own_redis.start)
            up2 = time.monotonic()
            cache = await connect(config, own_redis.url)
            try:
                restored = set(await live_in_redis(cache))
                stale = len(restored - open_sessions(nas))
                repaired = await wait_live(cache, lambda ids: ids == open_sessions(nas), 20)
                assert repaired < 20, "Redis's live sessions never caught up after the snapshot"
                await asyncio.sleep(2)
                nas.stop_new.set()
                await asyncio.to_thread(nas.join, 40)
                assert not nas.is_alive()
                assert proc.proc.poll() is None, "the daemon stays up"

                # Authentication fell back to PostgreSQL while Redis was down.
                assert during["cached"] >= AUTH_RATE * (REDIS_OUTAGE - 2)
                assert during["cached_accepted"] == during["cached"], during
                assert during["fresh_accepted"] == during["fresh"] > 0, during
                assert all(r.code == Code.ACCESS_ACCEPT for r in nas.auth), "every Accept"

                # No accounting record lost.
                settle = await wait_ledger_holds(dsn, acked(nas), timeout=20)
                assert settle < 20
                total = await check_ledger_exact(dsn, nas)

                # Live sessions: Redis's index is the open sessions, as the sessions
                # table has them (the API's session list reads Redis).
                want = open_sessions(nas)
                table = await open_in_table(dsn)
                assert set(table) == want
                ids = set(await accounting.live_session_ids(cache, limit=100_000))
                assert ids == set(table.values()), (
                    f"missing {len(set(table.values()) - ids)}, "
                    f"extra {len(ids - set(table.values()))}"
                )
                assert await live_in_redis(cache) == table
                print(
                    f"\nredis killed for {up - down:.1f}s: Access-Requests during it "
                    f"{during['cached'] + during['fresh']}, accepted "
                    f"{during['cached_accepted'] + during['fresh_accepted']} (from PostgreSQL); "
                    f"{len(live_before)} sessions live before the kill, rebuilt "
                    f"{rebuilt:.1f}s after Redis was back. Killed after a snapshot for "
                    f"{up2 - down2:.1f}s: {stale} stopped sessions listed live at the restart, "
                    f"put right {repaired:.1f}s after it. {len(want)} live at the end, "
                    f"{len(ids)} in Redis; accounting {len(acked(nas))} acknowledged, "
                    f"{total} in the ledger"
                )
            finally:
                await cache.close()
        finally:
            for p in setup.procs:
                p.stop()
        for p in setup.procs:
            no_traceback(p)


REDIS_HANG = 8.0


async def test_redis_hanging_under_mixed_load(
    own_redis: RedisServer, store_urls: StoreUrls, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    """Redis stopped (SIGSTOP) for 8 s: connections open, nothing answered. Requests must
    not wait out redis.socket_timeout (5 s): past radius.cache_timeout lookups go to
    PostgreSQL and acks go out; the live sessions are repaired once Redis answers."""
    async with fresh_database(store_urls, "sh_", migrated=True) as dsn:
        setup = await seed(dsn, own_redis.url, tmp_path, leak_watch)
        setup.env["NETD_RADIUS_LIVE_SESSIONS_CHECK_INTERVAL"] = "1"
        setup.env["NETD_RADIUS_CACHE_TIMEOUT"] = "0.5"
        proc = setup.start(tmp_path)
        config = RedisConfig(key_prefix=setup.env["NETD_REDIS_KEY_PREFIX"])
        try:
            await asyncio.to_thread(warm_up, setup)
            nas = Nas(
                setup.auth_port,
                setup.acct_port,
                setup.cached,
                setup.fresh,
                setup.password.encode(),
                time.monotonic() + REDIS_HANG + 40,
            )
            nas.start()
            await asyncio.sleep(3.0)
            own_redis.freeze(True)
            down = time.monotonic()
            try:
                await asyncio.sleep(REDIS_HANG)
            finally:
                own_redis.freeze(False)
            up = time.monotonic()
            cache = await connect(config, own_redis.url)
            try:
                repaired = await wait_live(cache, lambda ids: ids == open_sessions(nas), 20)
                assert repaired < 20, "Redis's live sessions never caught up after the hang"
                nas.stop_new.set()
                await asyncio.to_thread(nas.join, 40)
                assert not nas.is_alive()
                assert proc.proc.poll() is None, "the daemon stays up"

                during = auth_figures(nas, down, up)
                assert during["cached"] >= AUTH_RATE * (REDIS_HANG - 2)
                assert during["cached_accepted"] == during["cached"], during
                assert all(r.code == Code.ACCESS_ACCEPT for r in nas.auth), "every Accept"
                auth_wait = max(r.answered - r.first for r in nas.auth if down <= r.first < up)
                acct_wait = max(r.answered - r.first for r in nas.acct if down <= r.first < up)
                # The 0.5 s deadline, not the 5 s socket timeout, bounds every wait.
                assert auth_wait < 2.0, f"an Access-Request waited {auth_wait:.1f}s"
                assert acct_wait < 2.0, f"an accounting record waited {acct_wait:.1f}s"

                settle = await wait_ledger_holds(dsn, acked(nas), timeout=20)
                assert settle < 20
                total = await check_ledger_exact(dsn, nas)
                table = await open_in_table(dsn)
                assert await live_in_redis(cache) == table
                print(
                    f"\nredis hanging for {up - down:.1f}s: Access-Requests during it "
                    f"{during['cached'] + during['fresh']}, accepted "
                    f"{during['cached_accepted'] + during['fresh_accepted']}, slowest "
                    f"{auth_wait * 1000:.0f} ms; slowest accounting ack {acct_wait * 1000:.0f} ms; "
                    f"live sessions repaired {repaired:.1f}s after it answered; accounting "
                    f"{len(acked(nas))} acknowledged, {total} in the ledger"
                )
            finally:
                await cache.close()
        finally:
            own_redis.freeze(False)
            for p in setup.procs:
                p.stop()
        for p in setup.procs:
            no_traceback(p)
