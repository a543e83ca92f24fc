"""The session cache code on a real Redis Cluster: 3 primaries and 3 replicas started by the
test on loopback ports, then a failover of one primary (kill -9) under writes and reads.

What it shows: the same verbs (live sessions from accounting batches, the subscriber lookups
of auth, heartbeats, the event stream and a follower) leave the same data on a cluster as on
one Redis, the keys spread over every primary; and across a primary's death the client
finds the promoted replica, writes acknowledged after it are readable, and it prints what
the failover lost (Redis replicates asynchronously) and how long writes failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.radius.acct import AcctRecord, AcctStatus
from daemons.radius.admin import credentials
from daemons.radius.codec import Attr, Code, decode, encode_request, hide_password
from daemons.store import accounting, stream
from daemons.store import radius as rstore
from daemons.store.cache import Cache, connect
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.integration.test_cache import every_verb
from tests.support import NetdProcess, free_port, free_udp_port, netd_env

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="needs redis-server and redis-cli",
)


class Cluster:
    """Six redis-server processes (3 primaries, 3 replicas) on loopback, in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, timeout: float = 20.0) -> None:
        ports = [free_port() for _ in range(6)]
        for port in ports:
            d = self.root / str(port)
            d.mkdir(parents=True)
            self.procs[port] = subprocess.Popen(
                [
                    "redis-server",
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-port", str(free_port()),  # port + 10000 may be out of range
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "1000",
                    "--dir", str(d),
                    "--save", "",
                    "--appendonly", "no",
                    "--logfile", "redis.log",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        for port in ports:
            while True:
                with contextlib.suppress(redis.RedisError):
                    if redis.Redis(port=port, socket_timeout=1).ping():
                        break
                assert time.monotonic() < deadline, f"redis-server on {port} did not start"
                time.sleep(0.05)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        while not self.healthy():
            assert time.monotonic() < deadline, "the cluster never reached cluster_state:ok"
            time.sleep(0.1)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)

    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def healthy(self) -> bool:
        """Every live node says ok, there are 3 primaries, and each has a synced replica."""
        try:
            for port in self.alive():
                if self.node(port).cluster("info")["cluster_state"] != "ok":
                    return False
            roles = [self.node(p).info("replication") for p in self.alive()]
        except redis.RedisError:
            return False
        primaries = [r for r in roles if r["role"] == "master"]
        synced = [r for r in roles if r["role"] == "slave" and r["master_link_status"] == "up"]
        return len(primaries) == 3 and len(synced) == len(self.alive()) - 3

    def owner(self, key: str) -> int:
        """The port of the primary serving ``key``, as the live nodes see it."""
        slot = int(self.node(self.alive()[0]).execute_command("CLUSTER KEYSLOT", key))
        for start, end, primary, *_ in self.node(self.alive()[0]).execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise AssertionError(f"slot {slot} not covered")

    def replica_of(self, port: int) -> int:
        for p in self.alive():
            info = self.node(p).info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == port:
                return p
        raise AssertionError(f"no replica of {port}")

    def kill9(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@contextlib.asynccontextmanager
async def cluster_cache(cluster: Cluster, prefix: str) -> AsyncIterator[Cache]:
    port = next(iter(cluster.alive()))
    c = await connect(RedisConfig(key_prefix=prefix, cluster=True), f"redis://127.0.0.1:{port}")
    try:
        yield c
    finally:
        await c.close()


def record(i: int, status: int, t: float) -> AcctRecord:
    return AcctRecord(
        nas="nas" + str(i % 3),
        status=status,
        acct_session_id=f"as{i}",
        unique_id=f"s{i:05d}",
        idem_key=f"k{i}-{status}",
        event_time=t,
        username=f"user{i % 40}",
        nas_port=str(i),
        framed_ip=f"100.64.{i // 250}.{i % 250 + 1}",
        input_octets=i * 10,
        output_octets=i * 20,
        session_time=0 if status == AcctStatus.START else 60,
    )


async def exercise(cache: Cache) -> dict[str, Any]:
    """The cache verbs the daemons use, in a fixed order; what they answered."""
    t = 1_700_000_000.0
    out: dict[str, Any] = {}
    out["batch"] = await every_verb(cache, "batch", None)
    for lo in range(0, 120, 30):  # accounting batches: starts, interims, stops
        recs = [record(i, AcctStatus.START, t + i) for i in range(lo, lo + 30)]
        recs += [record(i, AcctStatus.INTERIM_UPDATE, t + 60 + i) for i in range(lo, lo + 30, 2)]
        recs += [record(i, AcctStatus.STOP, t + 90 + i) for i in range(lo, lo + 30, 5)]
        await accounting.update_live_sessions(cache, recs, [])
    await accounting.update_live_sessions(
        cache,
        [AcctRecord("nas2", AcctStatus.ACCOUNTING_ON, "", "", "on", t + 500)],
        [(f"s{i:05d}", f"user{i % 40}", f"100.64.0.{i % 250 + 1}") for i in range(2, 30, 3)],
    )
    out["count"] = await accounting.live_session_count(cache)
    ids = await accounting.live_session_ids(cache, limit=1000)
    out["ids"] = ids
    out["sessions"] = await accounting.live_sessions(cache, ids)
    out["by_nas"] = await accounting.live_session_ids(cache, nas="nas1", limit=1000)
    out["by_user"] = await accounting.live_session_ids(cache, username="user7", limit=1000)
    out["by_ip"] = await accounting.live_session_ids(cache, ip="100.64.0.50")
    names = [f"user{i}" for i in range(45)]
    await rstore.cache_subscribers(
        cache,
        {n: (rstore.SubscriberRow(n, plan="p") if i % 4 else None) for i, n in enumerate(names)},
        60,
    )
    out["subs"] = await rstore.cached_subscribers(cache, [*names, "nobody"])
    await cache.put_heartbeat("h:radius:1", {"daemon": "radius"}, 30)
    await cache.put_heartbeat("h:acs:1", {"daemon": "acs"}, 30)
    await cache.remove_heartbeat("h:acs:1")
    out["beats"] = await cache.list_heartbeats()
    entries = await stream.read_after(cache, "0-0", 10_000)
    out["stream"] = [(kind, data) for _id, kind, data in entries]
    follower = stream.follow(cache, entries[-1][0], 100, 2000)
    waiting = asyncio.ensure_future(follower.__anext__())
    await asyncio.sleep(0.1)
    await stream.publish(cache, "daemon.test", {"x": 1})
    out["followed"] = [(k, d) for _i, k, d in await asyncio.wait_for(waiting, 5)]
    await follower.aclose()
    return out


async def test_session_cache_on_a_cluster_as_on_one_redis(
    cluster: Cluster, cache: Cache, key_prefix: str
) -> None:
    """Every verb answers the same and leaves the same data on the cluster as on one Redis,
    and the keys spread over all three primaries."""
    single = await exercise(cache)
    async with cluster_cache(cluster, key_prefix) as cc:
        assert cc.cluster and isinstance(cc.client, RedisCluster)
        on_cluster = await exercise(cc)
        assert on_cluster == single
        assert on_cluster["count"] > 50 and len(on_cluster["subs"]) == 46
        # SCAN on every primary: the same keys as the single Redis holds, on 3 primaries.
        keys = {k async for k in cc.client.scan_iter(match=f"{key_prefix}:*", count=1000)}
        one = {k async for k in cache.client.scan_iter(match=f"{key_prefix}:*", count=1000)}
        assert keys == one
        holders = {cluster.owner(k.decode()) for k in keys}
        assert len(holders) == 3, holders
        await cc.client.delete(*keys)
    print(f"\ncluster: {len(keys)} keys on {len(holders)} primaries, same data as one Redis")


SECRET = b"cluster-radius-secret"


def exchange(port: int, packets: list[bytes], timeout: float = 20.0) -> list[bytes]:
    """Send each packet (retransmitted every 0.5 s until answered, at most ``timeout`` s in
    all) from one socket, one at a time; the answers in order."""
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        for pkt in packets:
            while True:
                assert time.monotonic() < deadline, f"no answer after {len(out)} requests"
                sock.sendto(pkt, ("127.0.0.1", port))
                try:
                    raw = sock.recv(4096)
                except TimeoutError:
                    continue
                if raw[1] == pkt[1]:
                    out.append(raw)
                    break
    return out


async def test_netd_radius_on_the_cluster(
    cluster: Cluster, store_urls: StoreUrls, tmp_path: Path, netd: list[NetdProcess]
) -> None:
    """A real `netd radius` with NETD_REDIS_CLUSTER=true: Access-Requests and accounting
    answered, the live sessions and its heartbeat on the cluster."""
    key = os.urandom(32)
    password = "pw-" + os.urandom(6).hex()
    prefix = "c" + uuid.uuid4().hex[:10]
    node = f"redis://127.0.0.1:{cluster.alive()[0]}"
    async with fresh_database(store_urls, "rc_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        async with cluster_cache(cluster, prefix) as cc:
            try:
                sealer = Sealer(key)
                await rstore.add_nas(
                    pool,
                    rstore.NasRow(
                        "lo", "127.0.0.1/32", sealer.seal(SECRET, b"nas:lo"), "generic", False, 3799
                    ),
                )
                users = [f"rc{i:03d}" for i in range(60)]
                await rstore.bulk_upsert_subscribers(
                    pool,
                    cc,
                    [
                        credentials(
                            rstore.SubscriberRow(u, plan="fiber-100"), password, "none", sealer
                        )
                        for u in users
                    ],
                )
                auth_port, acct_port, status_port = free_udp_port(), free_udp_port(), free_port()
                env = netd_env(
                    {
                        "NETD_DATABASE_URL": dsn,
                        "NETD_REDIS_URL": node,
                        "NETD_REDIS_CLUSTER": "true",
                        "NETD_REDIS_KEY_PREFIX": prefix,
                        "NETD_SECRETS_KEY": key.hex(),
                        "NETD_POLICIES_DIR": str(resources.path("policies")),
                        "NETD_STATE_DIR": str(tmp_path / "state"),
                        "NETD_RADIUS_AUTH_PORT": str(auth_port),
                        "NETD_RADIUS_ACCT_PORT": str(acct_port),
                        "NETD_RADIUS_STATUS_PORT": str(status_port),
                        "NETD_RADIUS_LISTEN": "127.0.0.1",
                    }
                )
                proc = NetdProcess(["radius"], env, tmp_path)
                netd.append(proc)
                t0 = time.monotonic()
                proc.wait_http(f"http://127.0.0.1:{status_port}/health/ready", timeout=30)
                ready = time.monotonic() - t0
                auths = []
                for i, u in enumerate(users):
                    a = os.urandom(16)
                    auths.append(
                        encode_request(
                            Code.ACCESS_REQUEST,
                            i % 256,
                            [
                                (Attr.USER_NAME, u.encode()),
                                (Attr.USER_PASSWORD, hide_password(password.encode(), SECRET, a)),
                            ],
                            SECRET,
                            a,
                        )
                    )
                accts = []
                for i in range(90):  # Start of 60 sessions, Stop of the first 30
                    n, status = (i, 1) if i < 60 else (i - 60, 2)
                    attrs = [
                        (40, struct.pack("!I", status)),
                        (44, f"rc-{n:03d}".encode()),
                        (Attr.USER_NAME, users[n].encode()),
                    ]
                    accts.append(encode_request(Code.ACCOUNTING_REQUEST, i % 256, attrs, SECRET))
                t0 = time.monotonic()
                auth_answers = await asyncio.to_thread(exchange, auth_port, auths)
                acct_answers = await asyncio.to_thread(exchange, acct_port, accts)
                took = time.monotonic() - t0
                assert [decode(r).code for r in auth_answers] == [Code.ACCESS_ACCEPT] * 60
                assert all(decode(r).code == Code.ACCOUNTING_RESPONSE for r in acct_answers)
                assert await pool.fetchval("SELECT count(*) FROM accounting_events") == 90
                assert await accounting.live_session_count(cc) == 30
                sessions = await rstore.cached_subscribers(cc, users)
                assert [sessions[u][2] for u in users] == [0] * 30 + [1] * 30
                beats = await cc.list_heartbeats()
                assert any(b.get("daemon") == "radius" for b in beats), beats
                proc.stop()
                assert "Traceback" not in proc.output()
                print(
                    f"\nnetd radius on the cluster: ready in {ready:.2f}s, 60 Accepts and 90 "
                    f"accounting answers in {took:.2f}s, 30 live sessions on the cluster"
                )
            finally:
                keys = {k async for k in cc.client.scan_iter(match=f"{prefix}:*", count=1000)}
                if keys:
                    await cc.client.delete(*keys)
                await pool.close()


async def test_failover_of_a_primary_under_writes_and_reads(
    cluster: Cluster, key_prefix: str
) -> None:
    """kill -9 of the primary holding the live-session index, while accounting batches,
    subscriber lookups and a stream follower run; the client finds the promoted replica,
    and what is acknowledged after the failover is readable."""
    async with cluster_cache(cluster, key_prefix) as cc:
        victim = cluster.owner(accounting.live_index_key(cc))
        heir = cluster.replica_of(victim)
        acked: list[int] = []
        acked_at: list[float] = []
        failed: list[float] = []
        slowest = 0.0  # the longest a write took (redis-py retries across the failover)
        lookups_ok = lookups_failed = 0
        stop = asyncio.Event()
        killed_at = 0.0

        async def writer() -> None:
            nonlocal slowest
            i = 0
            deadline = time.monotonic() + 25
            while not stop.is_set() and time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    await accounting.update_live_sessions(
                        cc, [record(i, AcctStatus.START, time.time())], []
                    )
                    acked.append(i)
                    acked_at.append(time.monotonic())
                    slowest = max(slowest, acked_at[-1] - t0)
                    i += 1
                except (RedisError, OSError):
                    failed.append(time.monotonic())
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.005)

        async def reader() -> None:
            nonlocal lookups_ok, lookups_failed
            while not stop.is_set():
                try:
                    await rstore.cached_subscribers(cc, [f"user{j}" for j in range(40)])
                    lookups_ok += 1
                except (RedisError, OSError):
                    lookups_failed += 1
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.01)

        seen: list[str] = []

        async def follower() -> None:
            cursor = "0-0"
            while not stop.is_set():
                try:
                    for entry_id, _kind, data in await stream.read_after(cc, cursor, 500, 500):
                        cursor = entry_id
                        seen.append(data["session"])
                except (RedisError, OSError):
                    await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(f()) for f in (writer, reader, follower)]
        try:
            for _ in range(500):  # about 1 s of writes before the kill
                if len(acked) >= 100:
                    break
                await asyncio.sleep(0.01)
            before = len(acked)
            await asyncio.to_thread(cluster.kill9, victim)
            killed_at = time.monotonic()
            promoted = 0.0
            for _ in range(300):  # the replica takes over: node timeout 1 s, then election
                if not promoted and cluster.owner(accounting.live_index_key(cc)) == heir:
                    promoted = time.monotonic() - killed_at
                if promoted and len(acked) >= before + 200:
                    break
                await asyncio.sleep(0.05)
            assert promoted, "the replica was not promoted"
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert len(acked) >= before + 200, "writes did not resume after the failover"
        recovered = max(failed) - killed_at if failed else 0.0
        # The client talks to the promoted replica now.
        assert isinstance(cc.client, RedisCluster)
        node = cc.client.get_node_from_key(accounting.live_index_key(cc))
        assert node is not None and node.port == heir
        # Every write acknowledged after the promotion is readable; earlier ones may be lost
        # (acknowledged by the dead primary, not yet replicated).
        index = set(await accounting.live_session_ids(cc, limit=100_000))
        after = [i for i, t in zip(acked, acked_at, strict=True) if t > killed_at + promoted]
        assert len(after) >= 100
        assert all(f"s{i:05d}" in index for i in after)
        lost = [i for i in acked if f"s{i:05d}" not in index]
        details = await accounting.live_sessions(cc, [f"s{i:05d}" for i in acked])
        assert len(seen) >= len(after)
        print(
            f"\nfailover: primary {victim} killed, replica {heir} promoted after {promoted:.2f}s;"
            f" writes failing for {recovered:.2f}s ({len(failed)} failed batches), the slowest "
            f"write {slowest:.2f}s, "
            f"{len(acked)} acknowledged ({before} before the kill), {len(lost)} of them lost "
            f"from the index, {len(acked) - len(details)} session records lost; lookups "
            f"{lookups_ok} ok / {lookups_failed} failed; follower saw {len(seen)} entries"
        )
        keys = {k async for k in cc.client.scan_iter(match=f"{key_prefix}:*", count=1000)}
        if keys:
            await cc.client.delete(*keys)
