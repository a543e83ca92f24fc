"""`kill -9` of each daemon under load, then a restart (issue 11).

Each test runs the daemon as a real process over its own fresh database and the shared
Redis, puts it under a bounded load, sends it SIGKILL in the middle, starts it again and
checks what must survive: nothing acknowledged is lost, no IP address is leased twice, no
ACS task is lost or run twice, no half write, and no persistent job is left running forever.
Each test prints its figures (time from restart to ready, counts) for the closing note.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import os
import signal
import socket
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest
from lxml import etree
from voltha_protos import voltha_pb2_grpc

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.poller.client import Credentials
from daemons.radius.admin import credentials
from daemons.radius.codec import Attr, Code, decode, encode_request, hide_password
from daemons.store import acs as astore
from daemons.store import api as api_store
from daemons.store import devices as dstore
from daemons.store import pools
from daemons.store import radius as rstore
from daemons.store import snmp as sstore
from daemons.store import voltha as vstore
from daemons.store.cache import connect
from daemons.store.pg import create_pool
from tests.acs.sim import MODELS, SOAP, Cpe, Http, load_model
from tests.conftest import StoreUrls, fresh_database
from tests.devices.ios_sim import IosSim
from tests.faults.conftest import LeakWatch
from tests.poller.snmpd import COMMUNITY as SNMP_COMMUNITY
from tests.poller.snmpd import Snmpd
from tests.support import NetdProcess, free_port, free_udp_port, netd_env
from tests.voltha.fake_core import FakeVoltha
from tests.voltha.test_fakes import active_olt, active_onu

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Daemon:
    """One daemon command, started (and restarted) with the same environment."""

    args: list[str]
    env: dict[str, str]
    tmp: Path
    ready_url: str
    procs: list[NetdProcess] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> float:
        """Start it and wait for /health/ready; the seconds that took."""
        t0 = time.monotonic()
        proc = NetdProcess(self.args, self.env, self.tmp)
        self.procs.append(proc)
        proc.wait_http(self.ready_url, timeout=timeout)
        return time.monotonic() - t0

    @property
    def proc(self) -> NetdProcess:
        return self.procs[-1]

    def kill9(self) -> None:
        self.proc.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()

    def output(self) -> str:
        return "\n".join(p.output() for p in self.procs)


@pytest.fixture
async def db(store_urls: StoreUrls) -> AsyncIterator[str]:
    async with fresh_database(store_urls, "k_", migrated=True) as dsn:
        yield dsn


def base_env(dsn: str, store_urls: StoreUrls, key: bytes, tmp: Path) -> dict[str, str]:
    return netd_env(
        {
            "NETD_DATABASE_URL": dsn,
            "NETD_REDIS_URL": store_urls.redis,
            "NETD_REDIS_KEY_PREFIX": "k" + uuid.uuid4().hex[:10],
            "NETD_SECRETS_KEY": key.hex(),
            "NETD_POLICIES_DIR": str(resources.path("policies")),
            "NETD_STATE_DIR": str(tmp / "state"),
            "NETD_LOG_FORMAT": "json",
            "NETD_DATABASE_CONNECT_TIMEOUT": "2",
            "NETD_DATABASE_COMMAND_TIMEOUT": "5",
        }
    )


def no_traceback(daemon: Daemon) -> None:
    out = daemon.output()
    assert "Traceback" not in out, [line[:600] for line in out.splitlines() if "Traceback" in line]


# --- radius ------------------------------------------------------------------------------

RADIUS_SECRET = b"kill9-radius-secret"
N_USERS = 400  # Access-Requests, one per user, each gets an address from the pool
N_ACCT = 900  # Accounting-Requests: Start, Interim, Stop of 300 sessions
POOL_RANGE = "100.96.0.0/22"  # 1,022 addresses


class Nas:
    """A NAS on loopback: sends each request once at a bounded rate, retransmits what has no
    answer every 0.5 s (from the same socket and with the same bytes, like a real NAS) and
    keeps every answer. Runs in a thread so the test may kill and restart the daemon under
    it."""

    SOCKS = 64

    def __init__(self, requests: list[tuple[int, bytes]], rate: float, deadline: float) -> None:
        self.requests = requests  # (port, packet); packet i carries the identifier i // SOCKS
        self.rate = rate
        self.deadline = deadline
        self.answers: dict[int, bytes] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def ident(i: int) -> int:
        return i // Nas.SOCKS

    def start(self) -> None:
        self.thread.start()

    def answered(self) -> int:
        with self.lock:
            return len(self.answers)

    def _run(self) -> None:
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(self.SOCKS)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        sent_at: dict[int, float] = {}
        t0 = time.monotonic()
        try:
            while time.monotonic() < self.deadline and len(self.answers) < len(self.requests):
                now = time.monotonic()
                due = min(len(self.requests), int((now - t0) * self.rate) + 1)
                for i in range(len(self.requests)):
                    if i in self.answers:
                        continue
                    if i >= due:
                        break
                    if now - sent_at.get(i, -1.0) >= 0.5:
                        port, pkt = self.requests[i]
                        with contextlib.suppress(OSError):
                            socks[i % self.SOCKS].sendto(pkt, ("127.0.0.1", port))
                        sent_at[i] = now
                for n, s in enumerate(socks):
                    while True:
                        try:
                            raw = s.recv(4096)
                        except (BlockingIOError, ConnectionRefusedError):
                            break
                        i = raw[1] * self.SOCKS + n
                        if i < len(self.requests) and i not in self.answers:
                            with self.lock:
                                self.answers[i] = raw
                time.sleep(0.002)
        finally:
            for s in socks:
                s.close()


def access_request(user: str, password: bytes, ident: int) -> bytes:
    auth = os.urandom(16)
    return encode_request(
        Code.ACCESS_REQUEST,
        ident,
        [
            (Attr.USER_NAME, user.encode()),
            (Attr.USER_PASSWORD, hide_password(password, RADIUS_SECRET, auth)),
        ],
        RADIUS_SECRET,
        auth,
    )


def acct_request(i: int, ident: int) -> bytes:
    status = (1, 3, 2)[i % 3]  # Start, Interim-Update, Stop
    attrs = [
        (40, struct.pack("!I", status)),
        (44, f"k9-{i // 3:05d}".encode()),
        (Attr.USER_NAME, f"acct{i // 3}".encode()),
        (46, struct.pack("!I", (i % 3) * 60)),
    ]
    return encode_request(Code.ACCOUNTING_REQUEST, ident, attrs, RADIUS_SECRET)


async def test_radius_kill9_under_auth_and_accounting_load(
    store_urls: StoreUrls, db: str, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    """Access-Requests that each lease an address and Accounting-Requests in batched commits,
    SIGKILL in the middle, a restart under the NAS's retransmits: every acknowledged record
    is in the ledger once, and no address is held by two users."""
    key = os.urandom(32)
    password = "pw-" + os.urandom(6).hex()
    leak_watch.add(RADIUS_SECRET, key, password)
    sealer = Sealer(key)
    pool = await create_pool(DatabaseConfig(), db, "test")
    env = base_env(db, store_urls, key, tmp_path)
    cache = await connect(RedisConfig(key_prefix=env["NETD_REDIS_KEY_PREFIX"]), store_urls.redis)
    try:
        await rstore.add_nas(
            pool,
            rstore.NasRow(
                "lo", "127.0.0.1/32", sealer.seal(RADIUS_SECRET, b"nas:lo"), "generic", False, 3799
            ),
        )
        users = [f"k9u{i:04d}" for i in range(N_USERS)]
        await rstore.bulk_upsert_subscribers(
            pool,
            cache,
            [
                credentials(rstore.SubscriberRow(u, plan="fiber-100"), password, "none", sealer)
                for u in users
            ],
        )
        assert await pools.add_pool(pool, "fiber", [POOL_RANGE], lease_time=600) == 1022
        auth_port, acct_port, status_port = free_udp_port(), free_udp_port(), free_port()
        env |= {
            "NETD_RADIUS_AUTH_PORT": str(auth_port),
            "NETD_RADIUS_ACCT_PORT": str(acct_port),
            "NETD_RADIUS_STATUS_PORT": str(status_port),
            "NETD_RADIUS_LISTEN": "127.0.0.1",
        }
        daemon = Daemon(["radius"], env, tmp_path, f"http://127.0.0.1:{status_port}/health/ready")
        try:
            daemon.start()
            # Interleaved: one Access-Request to two accounting records.
            kinds: list[tuple[str, int]] = []
            a = c = 0
            while a < N_USERS or c < N_ACCT:
                if a < N_USERS:
                    kinds.append(("auth", a))
                    a += 1
                for _ in range(2):
                    if c < N_ACCT:
                        kinds.append(("acct", c))
                        c += 1
            requests = [
                (auth_port, access_request(users[n], password.encode(), Nas.ident(i)))
                if kind == "auth"
                else (acct_port, acct_request(n, Nas.ident(i)))
                for i, (kind, n) in enumerate(kinds)
            ]
            nas = Nas(requests, rate=600.0, deadline=time.monotonic() + 45)
            nas.start()
            for _ in range(1000):  # kill once about a third is answered
                if nas.answered() >= len(requests) // 3:
                    break
                await asyncio.sleep(0.01)
            daemon.kill9()
            answered_before = nas.answered()
            ready = await asyncio.to_thread(daemon.start)
            await asyncio.to_thread(nas.thread.join, 50)
            answers = dict(nas.answers)
            print(
                f"\nradius: {answered_before}/{len(requests)} answered before SIGKILL, "
                f"ready {ready:.2f}s after restart, {len(answers)} answered in all"
            )
            assert len(answers) == len(requests), "the NAS's retransmits get every answer"

            # Accounting: every acknowledged record in the ledger, once.
            acked = [n for i, (kind, n) in enumerate(kinds) if kind == "acct" and i in answers]
            assert all(
                answers[i][0] == Code.ACCOUNTING_RESPONSE
                for i, (k, _) in enumerate(kinds)
                if k == "acct"
            )
            row = await pool.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT idem_key) AS d FROM accounting_events"
            )
            assert row is not None
            assert (row["n"], row["d"]) == (len(acked), len(acked)) == (N_ACCT, N_ACCT)

            # Leases: every Accept's address unique, and durably held by that user.
            got: dict[str, str] = {}
            for i, (kind, n) in enumerate(kinds):
                if kind != "auth":
                    continue
                reply = decode(answers[i])
                assert reply.code == Code.ACCESS_ACCEPT, (users[n], reply.code)
                ip = reply.get(Attr.FRAMED_IP_ADDRESS)
                assert ip, users[n]
                got[users[n]] = str(ipaddress.IPv4Address(ip))
            assert len(set(got.values())) == len(got) == N_USERS, "an address given out twice"
            leases = {
                r["address"]: r["username"]
                for r in await pool.fetch(
                    "SELECT host(address) AS address, username FROM ip_pool_addresses "
                    "WHERE expires_at > now()"
                )
            }
            assert all(leases.get(ip) == user for user, ip in got.items()), "an Accept's lease lost"
            assert len(set(leases.values())) == len(leases) == N_USERS, "a user holds two leases"

            # More allocations after the restart: new users, none of the held addresses.
            more = [f"k9v{i:03d}" for i in range(50)]
            await rstore.bulk_upsert_subscribers(
                pool,
                cache,
                [
                    credentials(rstore.SubscriberRow(u, plan="fiber-100"), password, "none", sealer)
                    for u in more
                ],
            )
            again = Nas(
                [
                    (auth_port, access_request(u, password.encode(), Nas.ident(i)))
                    for i, u in enumerate(more)
                ],
                rate=2000.0,
                deadline=time.monotonic() + 20,
            )
            again.start()
            await asyncio.to_thread(again.thread.join, 25)
            later = [
                str(ipaddress.IPv4Address(decode(raw).get(Attr.FRAMED_IP_ADDRESS) or b""))
                for raw in again.answers.values()
            ]
            assert len(later) == len(more)
            assert not set(later) & set(got.values()), "an address leased twice after restart"
            assert len(set(later)) == len(more)
            live = await pool.fetchval(
                "SELECT count(*) FROM (SELECT username FROM ip_pool_addresses "
                "WHERE expires_at > now() GROUP BY username HAVING count(*) > 1) t"
            )
            assert live == 0
        finally:
            daemon.stop()
        no_traceback(daemon)
    finally:
        await cache.close()
        await pool.close()


# --- acs ---------------------------------------------------------------------------------

ACS_MODEL = "data_model_202BC1-BM632w-8KA8WA1151100043.csv"
IGD = "InternetGatewayDevice."
KEYED = ("SetParameterValues", "AddObject", "DeleteObject", "Reboot", "Download", "Upload")


class SpecCpe(Cpe):
    """The simulator, plus what TR-069 asks of a CPE across a lost session: it records every
    RPC it executes (with its CommandKey or ParameterKey), sets ManagementServer.ParameterKey
    when a SetParameterValues/AddObject/DeleteObject succeeds (A.3.2.1), and after a Reboot
    informs with "1 BOOT" and "M Reboot" carrying the Reboot's CommandKey (A.3.2.8)."""

    executed: list[tuple[str, str]]
    rebooted: list[str]
    pause_at: str = ""  # an RPC name: after executing it, wait before answering

    def __post_init__(self) -> None:
        super().__post_init__()
        self.executed = []
        self.rebooted = []

    def inform(self) -> bytes:
        body = super().inform()
        if not self.rebooted:
            return body
        extra = "<EventStruct><EventCode>1 BOOT</EventCode><CommandKey></CommandKey></EventStruct>"
        for key in self.rebooted:
            extra += (
                f"<EventStruct><EventCode>M Reboot</EventCode><CommandKey>{key}</CommandKey>"
                "</EventStruct>"
            )
        return body.replace(b"</Event>", extra.encode() + b"</Event>", 1)

    def answer(self, body: bytes) -> bytes:
        root = etree.fromstring(body)
        rpc = next(c for c in root.find(f"{{{SOAP}}}Body") if isinstance(c.tag, str))
        name = etree.QName(rpc.tag).localname
        key = next(
            (
                c.text or ""
                for c in rpc.iter()
                if isinstance(c.tag, str)
                and etree.QName(c.tag).localname in ("CommandKey", "ParameterKey")
            ),
            "",
        )
        out = super().answer(body)
        if b"Fault>" in out:
            return out
        self.executed.append((name, key))
        if name in ("SetParameterValues", "AddObject", "DeleteObject"):
            self.tree[self.root + "ManagementServer.ParameterKey"].value = key
        if name == "Reboot":
            self.rebooted.append(key)
        return out


async def cpe_session(
    cpe: SpecCpe, port: int, reached: asyncio.Event | None = None, go: asyncio.Event | None = None
) -> bool:
    """One CWMP session like tests/acs/sim.run_session, which can stop at ``cpe.pause_at`` (the
    RPC executed, its answer not yet sent) until ``go``. True when the ACS ended it."""
    conn = await Http.open("127.0.0.1", port)
    headers: dict[str, str] = {}
    try:
        status, got, data = await conn.post("/", cpe.inform(), headers)
        if status != 200:
            return False
        cpe.rebooted = []  # the Inform with "M Reboot" was answered: delivered
        headers["Cookie"] = got["set-cookie"].split(";", 1)[0]
        cpe.events = ["2 PERIODIC"]
        for key in list(cpe.transfer_pending):
            status, got, data = await conn.post("/", cpe.transfer_complete(key), headers)
            if status != 200:
                return False
            cpe.transfer_pending.remove(key)
        if cpe.pause_at == "Inform" and reached is not None and go is not None:
            reached.set()
            await go.wait()
        status, got, data = await conn.post("/", b"", headers)
        for _ in range(10_000):
            if status != 200 or not data:
                return status in (200, 204)
            reply = cpe.answer(data)
            if cpe.executed and cpe.executed[-1][0] == cpe.pause_at and reached and go:
                cpe.pause_at = ""
                reached.set()
                await go.wait()
            status, got, data = await conn.post("/", reply, headers)
        raise AssertionError("the ACS never ended the session")
    finally:
        await conn.close()


async def test_acs_kill9_mid_session_no_task_lost_or_run_twice(
    store_urls: StoreUrls, db: str, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    """Four CPEs in the middle of their tasks when the ACS is killed: one has applied a
    SetParameterValues, one a Reboot, one a Download, one has its tasks leased but not sent.
    After the restart each calls back and every task ends done, each keyed RPC executed once."""
    key = os.urandom(32)
    leak_watch.add(key)
    pool = await create_pool(DatabaseConfig(), db, "test")
    port, status_port = free_port(), free_port()
    env = base_env(db, store_urls, key, tmp_path) | {
        "NETD_ACS_PORT": str(port),
        "NETD_ACS_STATUS_PORT": str(status_port),
        "NETD_ACS_BATCH": "500",
        "NETD_ACS_SESSION_TIMEOUT": "5",
        "NETD_ACS_RATE_LIMIT": "0",  # one source address for every simulated CPE
    }
    daemon = Daemon(["acs"], env, tmp_path, f"http://127.0.0.1:{status_port}/health/ready")
    tree = load_model(MODELS / ACS_MODEL)
    cpes = [SpecCpe(copy.deepcopy(tree), serial_suffix=f"-k9-{i}") for i in range(4)]
    try:
        daemon.start()
        await asyncio.gather(*(cpe_session(c, port) for c in cpes))  # registered, discovered
        for c in cpes:
            c.executed.clear()
        param = IGD + "DeviceInfo.ProvisioningCode"
        url = "http://127.0.0.1:9/fw.bin"
        plans: list[list[tuple[str, dict[str, object]]]] = [
            [("setParameterValues", {}), ("getParameterValues", {"names": [param]})],
            [("reboot", {}), ("setParameterValues", {})],
            [
                ("download", {"url": url, "file_type": "1 Firmware Upgrade Image"}),
                ("setParameterValues", {}),
            ],
            [("addObject", {"name": IGD + "Layer3Forwarding.Forwarding."}), ("reboot", {})],
        ]
        pause = ["SetParameterValues", "Reboot", "Download", "Inform"]
        tasks: dict[int, tuple[int, str]] = {}  # task id: (cpe, kind)
        set_to: dict[int, str] = {}  # cpe: the param its last SetParameterValues sets
        for i, (c, plan) in enumerate(zip(cpes, plans, strict=True)):
            for n, (kind, args) in enumerate(plan):
                if kind == "setParameterValues":
                    set_to[i] = f"k9-cpe{i}-task{n}"
                    args |= {"values": [[param, set_to[i], "xsd:string"]]}
                tid = await astore.queue_task(pool, c.device_id, kind, args, "test")
                tasks[tid] = (i, kind)
            c.pause_at = pause[i]
        reached = [asyncio.Event() for _ in cpes]
        go = asyncio.Event()
        sessions = [
            asyncio.create_task(cpe_session(c, port, r, go))
            for c, r in zip(cpes, reached, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in reached)), 20)
        daemon.kill9()  # every CPE is inside its session
        go.set()
        results = await asyncio.gather(*sessions, return_exceptions=True)
        assert all(r is not True for r in results), results  # none could finish
        stuck = await pool.fetchval("SELECT count(*) FROM cpe_tasks WHERE status = 'running'")
        ready = await asyncio.to_thread(daemon.start)
        rounds = 0
        while rounds < 3:  # the CPEs call back (after a reboot, a periodic inform)
            rounds += 1
            await asyncio.gather(*(cpe_session(c, port) for c in cpes))
            rows = await pool.fetch("SELECT id, status FROM cpe_tasks")
            if all(r["status"] in ("done", "fault") for r in rows):
                break
        rows = {
            r["id"]: dict(r)
            for r in await pool.fetch("SELECT id, kind, status, attempts, result FROM cpe_tasks")
        }
        print(
            f"\nacs: {len(tasks)} tasks, {stuck} running at SIGKILL, ready {ready:.2f}s after "
            f"restart, all closed after {rounds} callback round(s); attempts "
            f"{sorted((r['kind'], r['attempts']) for r in rows.values())}"
        )
        assert {tid: r["status"] for tid, r in rows.items()} == {tid: "done" for tid in tasks}
        for tid, (i, kind) in tasks.items():
            runs = [k for n, k in cpes[i].executed if k == f"netd-task-{tid}"]
            if kind != "getParameterValues":
                assert len(runs) == 1, (tid, kind, cpes[i].executed)
        assert ("GetParameterValues", "") in cpes[0].executed
        # The value each CPE holds is the one its task set, and the ACS stored it.
        stored = {
            r["device_id"]: r["value"]
            for r in await pool.fetch(
                "SELECT device_id, value FROM cpe_parameters WHERE name = $1", param
            )
        }
        for i, value in set_to.items():
            assert cpes[i].tree[param].value == value
            assert stored[cpes[i].device_id] == value
        assert daemon.proc.proc.poll() is None
    finally:
        daemon.stop()
        await pool.close()
    no_traceback(daemon)


# --- api ---------------------------------------------------------------------------------

API_WRITERS = 6
API_BATCH = 20
API_WRITES = 600  # a writer's writes at most (the kill comes after about 25 each)


@dataclass
class Write:
    """One API write and what came of it: the HTTP status, or 0 for no answer."""

    kind: str  # create | patch | batch
    users: list[str]
    status: int = 0


async def api_writer(
    client: httpx.AsyncClient, n: int, stop: asyncio.Event, log: list[Write], password: str
) -> None:
    """Creates, updates (suspend and move to fiber-1000: two fields, one write) and batches,
    in turn, until ``stop``; every write names users of its own."""
    for i in range(API_WRITES):
        if stop.is_set():
            return
        kind = ("create", "patch", "batch")[i % 3]
        if kind == "create":
            w = Write(kind, [f"w{n}c{i}"])
            req = client.post(
                "/api/v1/subscribers",
                json={"username": w.users[0], "password": password, "plan": "fiber-100"},
            )
        elif kind == "patch":
            w = Write(kind, [f"base{n}-{i}"])
            req = client.patch(
                f"/api/v1/subscribers/{w.users[0]}",
                json={"state": "suspended", "plan": "fiber-1000", "password": password + "x"},
            )
        else:
            w = Write(kind, [f"w{n}b{i}-{k}" for k in range(API_BATCH)])
            req = client.post(
                "/api/v1/subscribers/batch",
                json={
                    "subscribers": [
                        {"username": u, "password": password, "plan": "fiber-100"} for u in w.users
                    ]
                },
            )
        log.append(w)
        try:
            w.status = (await req).status_code
        except httpx.HTTPError:
            return  # the API is gone: this writer stops, like a client seeing errors


async def test_api_kill9_during_subscriber_writes(
    store_urls: StoreUrls, db: str, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    """Six clients write subscribers (create, update, batch of 20); SIGKILL in the middle.
    After the restart every write answered 2xx is there in full, a write with no answer is
    there in full or not at all, and the Redis copy of a subscriber is absent or the same as
    PostgreSQL's (what RADIUS authenticates against)."""
    key = os.urandom(32)
    password = "sub-" + os.urandom(6).hex()
    pool = await create_pool(DatabaseConfig(), db, "test")
    _row, token = await api_store.create_token(pool, "kill9-admin", "admin", "test")
    leak_watch.add(key, password, token)
    env = base_env(db, store_urls, key, tmp_path)
    cache = await connect(RedisConfig(key_prefix=env["NETD_REDIS_KEY_PREFIX"]), store_urls.redis)
    sealer = Sealer(key)
    base = [f"base{n}-{i}" for n in range(API_WRITERS) for i in range(1, API_WRITES, 3)]
    await rstore.bulk_upsert_subscribers(
        pool,
        cache,
        [
            credentials(rstore.SubscriberRow(u, plan="fiber-100"), password, "none", sealer)
            for u in base
        ],
    )
    port = free_port()
    env |= {
        "NETD_API_PORT": str(port),
        "NETD_API_RATE_LIMIT": "100000",
        "NETD_API_RATE_BURST": "100000",
    }
    url = f"http://127.0.0.1:{port}"
    daemon = Daemon(["api"], env, tmp_path, f"{url}/health/ready")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        daemon.start()
        log: list[Write] = []
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10.0) as client:
            writers = [
                asyncio.create_task(api_writer(client, n, stop, log, password))
                for n in range(API_WRITERS)
            ]
            for _ in range(2000):  # kill once 150 writes are answered
                if sum(1 for w in log if w.status) >= 150:
                    break
                await asyncio.sleep(0.01)
            daemon.kill9()
            stop.set()
            await asyncio.wait_for(asyncio.gather(*writers), 20)
        ready = await asyncio.to_thread(daemon.start)
        ok = [w for w in log if 200 <= w.status < 300]
        lost = [w for w in log if w.status == 0]
        assert not [w for w in log if w.status and not 200 <= w.status < 300], "all writes valid"
        names = [u for w in log for u in w.users]
        rows = await rstore.fetch_subscribers_db(pool, names)
        written = 0
        for w in log:
            got = [rows.get(u) for u in w.users]
            if w.kind == "patch":
                row = got[0]
                assert row is not None
                new = (row.plan, row.state) == ("fiber-1000", "suspended")
                old = (row.plan, row.state) == ("fiber-100", "active")
                assert new or (old and w in lost), (w, row)
                written += new and w in lost
            else:
                there = [r for r in got if r is not None]
                assert len(there) in ((len(w.users),) if w in ok else (0, len(w.users))), w
                assert all(r.plan == "fiber-100" and r.password_enc for r in there), w
                written += bool(there) and w in lost
        # Redis: what the auth path reads first is absent or PostgreSQL's record.
        cached = await rstore.cached_subscribers(cache, names)
        stale = [
            u
            for u, (hit, row, _n) in cached.items()
            if hit
            and (
                row is None
                or rows.get(u) is None
                or (row.plan, row.state, row.password_enc)
                != (rows[u].plan, rows[u].state, rows[u].password_enc)
            )
        ]
        assert not stale, f"Redis disagrees with PostgreSQL for {stale[:5]}"
        # Writes go on after the restart.
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10.0) as client:
            after = await client.post(
                "/api/v1/subscribers",
                json={"username": "after-restart", "password": password, "plan": "fiber-100"},
            )
            assert after.status_code == 201, after.text
            assert (await client.get("/api/v1/subscribers/after-restart")).status_code == 200
        print(
            f"\napi: {len(log)} writes, {len(ok)} answered 2xx before SIGKILL, "
            f"{len(lost)} unanswered ({written} of them written in full, the others not at "
            f"all), ready {ready:.2f}s after restart"
        )
    finally:
        daemon.stop()
        await cache.close()
        await pool.close()
    no_traceback(daemon)


# --- devices -----------------------------------------------------------------------------

VLAN_JOB = {"vlan": 20, "vlan_name": "voice", "ports": ["GigabitEthernet0/1"]}


async def test_devices_kill9_mid_config_job_resumes_it(
    store_urls: StoreUrls, db: str, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    """An apply job over four switches, one at a time; SIGKILL while the second is being
    changed. The restarted daemon takes the job over (its lock died with the old daemon's
    session): the interrupted switch is changed again, keeping its first pre-change backup,
    the others run, the finished one is not touched again, and the job ends done."""
    key = os.urandom(32)
    password = "sw-" + os.urandom(6).hex()
    leak_watch.add(key, password)
    sims = [IosSim(hostname=f"sw{i}", password=password, slow=0.04) for i in range(4)]
    for sim in sims:
        await sim.start()
    pool = await create_pool(DatabaseConfig(), db, "test")
    status_port = free_port()
    env = base_env(db, store_urls, key, tmp_path) | {
        "NETD_DEVICES_STATUS_PORT": str(status_port),
        "NETD_DEVICES_DEVICE_TIMEOUT": "20",
    }
    daemon = Daemon(["devices"], env, tmp_path, f"http://127.0.0.1:{status_port}/health/ready")
    try:
        sealer = Sealer(key)
        for i, sim in enumerate(sims):
            await dstore.put_device(
                pool,
                sealer,
                dstore.Device(f"sw{i}", "127.0.0.1", sim.port, "cisco_ios", "admin", password),
            )
        first_start = await asyncio.to_thread(daemon.start)
        job_id = await dstore.create_job(
            pool, "access-vlan", VLAN_JOB, "apply", [f"sw{i}" for i in range(4)], concurrency=1
        )

        async def states() -> dict[str, str]:
            return {r["device"]: r["state"] for r in await dstore.job_devices(pool, job_id)}

        for _ in range(1000):  # the first switch done, the second half way through its change
            seen = await states()
            pushing = [
                d
                for d, st in seen.items()
                if st == "running" and "vlan 20" in sims[int(d[2:])].commands
            ]
            if pushing and any(st in ("ok", "unchanged") for st in seen.values()):
                break
            await asyncio.sleep(0.01)
        daemon.kill9()
        at_kill = await states()
        assert "running" in at_kill.values(), at_kill
        interrupted = next(d for d, s in at_kill.items() if s == "running")
        finished = [d for d, s in at_kill.items() if s in ("ok", "unchanged")]
        pushes_before = {d: _config_sessions(sims[int(d[2:])]) for d in finished}
        t0 = time.monotonic()
        ready = await asyncio.to_thread(daemon.start)
        job: dict[str, object] | None = None
        for _ in range(600):
            job = await dstore.get_job(pool, job_id)
            if job is not None and job["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        took = time.monotonic() - t0
        assert job is not None and job["state"] == "done", job
        final = await states()
        assert all(s in ("ok", "unchanged") for s in final.values()), final
        for sim in sims:
            assert " switchport access vlan 20" in sim.running, sim.hostname
        for d in finished:  # not changed twice
            assert _config_sessions(sims[int(d[2:])]) == pushes_before[d]
        for d, st in at_kill.items():  # the others changed once, by the new daemon alone
            if st == "pending":
                assert _config_sessions(sims[int(d[2:])]) == 1, d
        row = next(r for r in await dstore.job_devices(pool, job_id) if r["device"] == interrupted)
        # Its rollback point is the config from before the first attempt, not the half
        # changed one the second attempt found.
        original = await dstore.get_backup(pool, sealer, int(row["backup_before"]))
        assert original is not None and "vlan 20" not in original["config"]
        print(
            f"\ndevices: first start {first_start:.2f}s; SIGKILL with {at_kill}; ready "
            f"{ready:.2f}s after restart, job done {took:.2f}s after restart: {final}"
        )
    finally:
        daemon.stop()
        await pool.close()
        for sim in sims:
            await sim.stop()
    no_traceback(daemon)


def _config_sessions(sim: IosSim) -> int:
    return sum(1 for c in sim.commands if c.strip().startswith(("configure", "conf t")))


# --- voltha ------------------------------------------------------------------------------

FW = "v9.9.9"


async def test_voltha_kill9_mid_firmware_job_resumes_without_repeating_steps(
    store_urls: StoreUrls, db: str, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    """A firmware job (download, activate, commit) on three ONUs of the fake VOLTHA core;
    SIGKILL once an ONU is past its download. The restarted daemon resumes the job from what
    each ONU reports: no step an ONU already has under way or done is asked for again, every
    ONU ends committed, the job done."""
    key = os.urandom(32)
    leak_watch.add(key)
    core = FakeVoltha(step_seconds=0.25)
    await core.start()
    channel = grpc.aio.insecure_channel(core.address)
    stub = voltha_pb2_grpc.VolthaServiceStub(channel)
    pool = await create_pool(DatabaseConfig(), db, "test")
    status_port = free_port()
    config = tmp_path / "netd.toml"
    config.write_text(
        f"[voltha]\nsync_interval = 1.0\nfirmware_poll = 0.05\nfirmware_step_timeout = 20.0\n"
        f'[voltha.stacks.lab]\naddress = "{core.address}"\ndeadline = 2.0\n'
    )
    env = base_env(db, store_urls, key, tmp_path) | {
        "NETD_CONFIG": str(config),
        "NETD_VOLTHA_STATUS_PORT": str(status_port),
        "NETD_VOLTHA_SADIS_PORT": str(free_port()),
        "NETD_VOLTHA_ALLOWLIST": "false",  # no subscribers bound here: keep the ONUs enabled
    }
    daemon = Daemon(["voltha"], env, tmp_path, f"http://127.0.0.1:{status_port}/health/ready")
    try:
        olt = await active_olt(core, stub)
        serials = [f"KILL0000000{i}" for i in range(3)]
        onus = await asyncio.gather(*(active_onu(core, olt, 0, s) for s in serials))
        daemon.start()
        job_id = await vstore.create_job(
            pool,
            "lab",
            FW,
            "http://files.lab/fw.bin",
            list(zip(onus, serials, strict=True)),
            concurrency=3,
        )

        async def states() -> dict[str, str]:
            rows = await pool.fetch(
                "SELECT device_id, state FROM voltha_firmware_devices WHERE job_id = $1", job_id
            )
            return {r["device_id"]: r["state"] for r in rows}

        at_kill: dict[str, str] = {}
        for _ in range(1000):  # an ONU past its download, none finished
            at_kill = await states()
            if "activating" in at_kill.values() or "committing" in at_kill.values():
                break
            await asyncio.sleep(0.01)
        daemon.kill9()
        t0 = time.monotonic()
        ready = await asyncio.to_thread(daemon.start)
        job: asyncpg.Record | None = None
        for _ in range(600):
            job = await pool.fetchrow(
                "SELECT state FROM voltha_firmware_jobs WHERE id = $1", job_id
            )
            if job is not None and job["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        took = time.monotonic() - t0
        final = await states()
        assert job is not None and job["state"] == "done", final
        for onu in onus:
            image = core.image_state(onu, FW)
            assert image is not None and image.image_state == image.IMAGE_COMMITTED
            assert core.device(onu).firmware_version == FW
        asked = {
            name: sorted(i.id for _n, req in core.calls if _n == name for i in req.device_id)
            for name in ("DownloadImageToDevice", "ActivateImage", "CommitImage")
        }
        assert asked == {name: sorted(onus) for name in asked}, (at_kill, asked)
        print(
            f"\nvoltha: SIGKILL with {sorted(at_kill.values())}; ready {ready:.2f}s after "
            f"restart, job done {took:.2f}s after restart; each ONU asked once per step"
        )
    finally:
        daemon.stop()
        await pool.close()
        await channel.close()
        await core.stop()
    no_traceback(daemon)


# --- poller ------------------------------------------------------------------------------

N_TARGETS = 20


async def test_poller_kill9_resumes_polling(
    store_urls: StoreUrls, db: str, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    """Twenty targets on a real snmpd (system and IF-MIB, 10 s interval, spread over it);
    SIGKILL once polls have been stored. The restarted poller is ready, polls the targets
    again on their schedule (half of them within half an interval), and stores nothing odd
    across the gap (every rate finite and
    not negative: its counter state starts afresh, no rate spans the restart)."""
    key = os.urandom(32)
    leak_watch.add(key, SNMP_COMMUNITY)
    (tmp_path / "agent").mkdir()
    agent = Snmpd(tmp_path / "agent")
    pool = await create_pool(DatabaseConfig(), db, "test")
    status_port = free_port()
    env = base_env(db, store_urls, key, tmp_path) | {
        "NETD_POLLER_EXPORTER_PORT": "0",
        "NETD_POLLER_TRAP_PORT": "0",
        "NETD_POLLER_STATUS_PORT": str(status_port),
        "NETD_POLLER_TIMEOUT": "2",
        "NETD_POLLER_RETRIES": "1",
    }
    daemon = Daemon(["poller"], env, tmp_path, f"http://127.0.0.1:{status_port}/health/ready")
    try:
        sealer = Sealer(key)
        creds = Credentials("2c", community=SNMP_COMMUNITY)
        for i in range(N_TARGETS):
            await sstore.put_target(
                pool,
                sealer,
                sstore.Target(
                    f"t{i:02d}", "127.0.0.1", agent.port, creds, ("system", "if-mib"), 10
                ),
            )

        async def polled_since(ts: object) -> set[str]:
            rows = await pool.fetch("SELECT DISTINCT target FROM snmp_samples WHERE ts > $1", ts)
            return {r["target"] for r in rows}

        start = await pool.fetchval("SELECT now()")
        daemon.start()
        for _ in range(1000):  # a third of the targets polled and stored
            if len(await polled_since(start)) >= N_TARGETS // 3:
                break
            await asyncio.sleep(0.02)
        daemon.kill9()
        before = len(await polled_since(start))
        t0 = time.monotonic()
        restart = await pool.fetchval("SELECT now()")
        ready = await asyncio.to_thread(daemon.start)
        again: set[str] = set()
        for _ in range(300):  # half the targets: half their interval (10 s), and a margin
            again = await polled_since(restart)
            if len(again) >= N_TARGETS // 2:
                break
            await asyncio.sleep(0.1)
        took = time.monotonic() - t0
        assert len(again) >= N_TARGETS // 2, sorted(again)
        bad = await pool.fetchval(
            "SELECT count(*) FROM snmp_samples WHERE value = 'NaN'::float8 OR value < 0 "
            "OR value = 'Infinity'::float8"
        )
        assert bad == 0
        print(
            f"\npoller: {before}/{N_TARGETS} targets polled before SIGKILL; ready {ready:.2f}s "
            f"after restart, {len(again)} polled again {took:.2f}s after restart"
        )
    finally:
        daemon.stop()
        await pool.close()
        agent.stop()
    no_traceback(daemon)
