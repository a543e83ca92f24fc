"""Accounting under faults, with real processes: PostgreSQL stopped in the middle of a load,
and `kill -9` of the daemon while it spools. The ledger must end up holding exactly the
acknowledged records, once each."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from daemons import resources
from daemons.core.config import DatabaseConfig
from daemons.core.secrets import Sealer
from daemons.radius.codec import Attr, Code, encode_request
from daemons.store import migrate
from daemons.store import radius as store
from daemons.store.embedded import EmbeddedStores
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls
from tests.faults.conftest import LeakWatch
from tests.support import NetdProcess, free_port, free_udp_port, netd_env

SECRET = b"fault-secret"


@dataclass
class Stack:
    emb: EmbeddedStores
    dsn: str
    env: dict[str, str]
    tmp: Path
    acct_port: int
    status_port: int

    def start(self) -> NetdProcess:
        proc = NetdProcess(["radius"], self.env, self.tmp)
        proc.wait_http(f"http://127.0.0.1:{self.status_port}/health/live")
        return proc


@pytest.fixture
async def stack(
    store_urls: StoreUrls, tmp_path: Path, leak_watch: LeakWatch
) -> AsyncIterator[Stack]:
    """netd radius on a PostgreSQL of its own (so the test may stop it) and the shared Redis."""
    emb = EmbeddedStores(tmp_path / "pg", postgres=True, redis=False, run_as="netd", timeout=60)
    await asyncio.to_thread(emb.acquire)
    assert emb.postgres is not None
    dsn = emb.postgres.dsn
    conn = await asyncpg.connect(dsn)
    await migrate.apply(conn, migrate.available())
    await conn.close()
    key = os.urandom(32)
    leak_watch.add(SECRET, key)
    pool = await create_pool(DatabaseConfig(), dsn, "test")
    await store.add_nas(
        pool,
        store.NasRow(
            "lo", "127.0.0.1/32", Sealer(key).seal(SECRET, b"nas:lo"), "generic", False, 3799
        ),
    )
    await pool.close()
    acct_port, status_port = free_udp_port(), free_port()
    env = netd_env(
        {
            "NETD_DATABASE_URL": dsn,
            "NETD_REDIS_URL": store_urls.redis,
            "NETD_REDIS_KEY_PREFIX": "f" + uuid.uuid4().hex[:10],
            "NETD_SECRETS_KEY": key.hex(),
            "NETD_RADIUS_AUTH_PORT": str(free_udp_port()),
            "NETD_RADIUS_ACCT_PORT": str(acct_port),
            "NETD_RADIUS_STATUS_PORT": str(status_port),
            "NETD_RADIUS_LISTEN": "127.0.0.1",
            "NETD_POLICIES_DIR": str(resources.path("policies")),
            "NETD_STATE_DIR": str(tmp_path / "state"),
            "NETD_DATABASE_CONNECT_TIMEOUT": "2",
            "NETD_DATABASE_COMMAND_TIMEOUT": "5",
            "NETD_LOG_FORMAT": "json",
        }
    )
    try:
        yield Stack(emb, dsn, env, tmp_path, acct_port, status_port)
    finally:
        await asyncio.to_thread(emb.postgres.start)  # in case a test left it stopped
        await asyncio.to_thread(emb.release)


def packets(n: int) -> list[bytes]:
    """n distinct accounting records: Start, Interim, Stop for n/3 sessions."""
    out = []
    for i in range(n):
        sid = f"s{i // 3:05d}"
        status = (1, 3, 2)[i % 3]
        attrs = [
            (40, struct.pack("!I", status)),
            (44, sid.encode()),
            (Attr.USER_NAME, f"user{i // 3}".encode()),
            (46, struct.pack("!I", (i % 3) * 60)),
        ]
        out.append(encode_request(Code.ACCOUNTING_REQUEST, i % 256, attrs, SECRET))
    return out


def send_until_acked(port: int, batch: list[bytes], tries: int = 8) -> set[int]:
    """Send each packet (retransmitting like a NAS) and return the indexes acknowledged."""
    acked: set[int] = set()
    socks = []
    try:
        for _ in batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            socks.append(s)
        for _ in range(tries):
            for i in set(range(len(batch))) - acked:
                socks[i].sendto(batch[i], ("127.0.0.1", port))
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline and len(acked) < len(batch):
                for i in set(range(len(batch))) - acked:
                    try:
                        reply = socks[i].recv(4096)
                    except BlockingIOError:
                        continue
                    if reply[0] == Code.ACCOUNTING_RESPONSE and reply[1] == batch[i][1]:
                        acked.add(i)
                time.sleep(0.005)
            if len(acked) == len(batch):
                break
    finally:
        for s in socks:
            s.close()
    return acked


async def ledger_rows(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT idem_key) AS d FROM accounting_events"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["n"]), int(row["d"])


async def wait_ledger(dsn: str, expected: int, timeout: float = 40) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    rows = (0, 0)
    while time.monotonic() < deadline:
        rows = await ledger_rows(dsn)
        if rows[0] >= expected:
            return rows
        await asyncio.sleep(0.2)
    return rows


async def test_postgres_stopped_mid_load(stack: Stack) -> None:
    pkts = packets(300)
    proc = stack.start()
    try:
        acked = await asyncio.to_thread(send_until_acked, stack.acct_port, pkts[:100])
        postgres = stack.emb.postgres
        assert postgres is not None
        await asyncio.to_thread(postgres.stop)
        acked |= {
            100 + i
            for i in await asyncio.to_thread(send_until_acked, stack.acct_port, pkts[100:200])
        }
        spooled = list((stack.tmp / "state" / "spool" / "accounting").glob("*.seg"))
        assert spooled, "records acknowledged while PostgreSQL was down must be spooled"
        await asyncio.to_thread(postgres.start)
        acked |= {
            200 + i for i in await asyncio.to_thread(send_until_acked, stack.acct_port, pkts[200:])
        }
        assert len(acked) == 300, "every record is acknowledged, through the spool or not"
        total, distinct = await wait_ledger(stack.dsn, len(acked))
        assert (total, distinct) == (len(acked), len(acked)), proc.output()[-3000:]
        assert proc.proc.poll() is None
    finally:
        proc.stop()
    out = proc.output()
    assert "Traceback" not in out, [line[:600] for line in out.splitlines() if "Traceback" in line]


async def test_kill_9_while_spooling_loses_nothing(stack: Stack) -> None:
    pkts = packets(240)
    proc = stack.start()
    postgres = stack.emb.postgres
    assert postgres is not None
    try:
        acked = await asyncio.to_thread(send_until_acked, stack.acct_port, pkts[:80])
        await asyncio.to_thread(postgres.stop)
        acked |= {
            80 + i for i in await asyncio.to_thread(send_until_acked, stack.acct_port, pkts[80:160])
        }
        proc.proc.send_signal(signal.SIGKILL)  # acknowledged records sit in the spool
        proc.proc.wait(10)
    finally:
        proc.stop()
    await asyncio.to_thread(postgres.start)
    again = stack.start()  # replays the spool left behind
    try:
        acked |= {
            160 + i for i in await asyncio.to_thread(send_until_acked, stack.acct_port, pkts[160:])
        }
        total, distinct = await wait_ledger(stack.dsn, len(acked))
        assert distinct == total, "no record twice"
        assert total >= len(acked) == 240, again.output()[-3000:]
        assert total == 240
    finally:
        again.stop()


async def test_a_record_postgresql_refuses_is_quarantined_not_spooled_forever(
    stack: Stack,
) -> None:
    """A record PostgreSQL refuses for its content (here a CHECK the test adds; in the wild
    a value a codec let through) must not fail its batch for good: the others land, the bad
    one goes to the quarantine, and the daemon does not fall into spooling. The same when
    the bad record was spooled during an outage and meets the constraint at replay."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(
            "ALTER TABLE accounting_events ADD CONSTRAINT poison CHECK (acct_session_id !~ 'x$')"
        )
    finally:
        await conn.close()

    def poisoned(first: int, n: int, bad: set[int]) -> list[bytes]:
        out = []
        for i in range(first, first + n):
            sid = f"q{i:05d}" + ("x" if i in bad else "")
            attrs = [
                (40, struct.pack("!I", 1)),
                (44, sid.encode()),
                (Attr.USER_NAME, f"user{i}".encode()),
            ]
            out.append(encode_request(Code.ACCOUNTING_REQUEST, i % 256, attrs, SECRET))
        return out

    proc = stack.start()
    postgres = stack.emb.postgres
    assert postgres is not None
    quarantine = stack.tmp / "state" / "spool" / "quarantine"
    try:
        # Live path: one bad record among 60 sent at once (they share batches).
        acked = await asyncio.to_thread(send_until_acked, stack.acct_port, poisoned(0, 60, {17}))
        assert len(acked) == 60, "the bad record is acknowledged once it is in the quarantine"
        total, distinct = await wait_ledger(stack.dsn, 59)
        assert (total, distinct) == (59, 59)
        # Replay path: spooled during an outage, refused when replayed.
        await asyncio.to_thread(postgres.stop)
        acked = await asyncio.to_thread(send_until_acked, stack.acct_port, poisoned(60, 40, {75}))
        assert len(acked) == 40
        await asyncio.to_thread(postgres.start)
        total, distinct = await wait_ledger(stack.dsn, 59 + 39)
        assert (total, distinct) == (98, 98)
        spool = stack.tmp / "state" / "spool" / "accounting"
        deadline = time.monotonic() + 20
        while list(spool.glob("*.seg")) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert not list(spool.glob("*.seg")), "the spool is replayed past the bad record"
        kept = b"".join(p.read_bytes() for p in quarantine.glob("*.seg"))
        assert b"q00017x" in kept and b"q00075x" in kept
        # And the daemon is back on the ledger: a new good record lands at once.
        acked = await asyncio.to_thread(send_until_acked, stack.acct_port, poisoned(100, 5, set()))
        assert len(acked) == 5
        assert (await wait_ledger(stack.dsn, 103))[0] == 103
        url = f"http://127.0.0.1:{stack.status_port}/metrics"
        metrics = (await asyncio.to_thread(httpx.get, url)).text
        assert "netd_radius_acct_quarantined_total 2.0" in metrics
        assert proc.proc.poll() is None
    finally:
        proc.stop()
    out = proc.output()
    assert "Traceback" not in out
    assert out.count("kept in the quarantine") >= 1
