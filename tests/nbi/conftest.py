"""A real `netd api` (HTTP and gRPC) and a real `netd radius` on loopback, over a fresh
database and the test Redis, shared by a test module; a grpc.aio client per role.

Accounting reaches the event stream the way it does in production: Accounting-Requests to
the radius daemon, committed to the ledger, then published. `send_accounting` is a NAS
that sends a bounded number of them, several in flight, with retransmits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.radius_loadgen import AcctBuilder
from daemons.nbi.gen.netd.v1 import devices_pb2_grpc, sessions_pb2_grpc, subscribers_pb2_grpc
from daemons.store import radius as store
from daemons.store.cache import Cache
from tests.conftest import StoreUrls
from tests.stack import assert_clean_log, seeded_stores
from tests.support import NetdProcess, free_port, free_udp_port

REPO = Path(__file__).resolve().parents[2]
NAS_SECRET = "nbi-nas-secret"
ROLES = ("viewer", "operator", "admin")


@dataclass
class Stubs:
    subscribers: Any
    sessions: Any
    devices: Any
    channel: grpc.aio.Channel
    metadata: tuple[tuple[str, str], ...]


@dataclass
class NbiServer:
    grpc_port: int
    http_url: str
    acct_port: int
    tokens: dict[str, str]
    pool: asyncpg.Pool
    cache: Cache
    api: NetdProcess
    radius: NetdProcess | None
    env: dict[str, str]
    tmp: Path
    tls_ca: bytes | None = None
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def channel(self) -> grpc.aio.Channel:
        target = f"127.0.0.1:{self.grpc_port}"
        if self.tls_ca is None:
            return grpc.aio.insecure_channel(target)
        return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(self.tls_ca))

    def stubs(self, role: str | None = "admin", token: str | None = None) -> Stubs:
        channel = self.channel()
        self.channels.append(channel)
        secret = token if token is not None else (self.tokens[role] if role else None)
        metadata = (("authorization", f"Bearer {secret}"),) if secret is not None else ()
        return Stubs(
            subscribers_pb2_grpc.SubscribersServiceStub(channel),
            sessions_pb2_grpc.SessionsServiceStub(channel),
            devices_pb2_grpc.DevicesServiceStub(channel),
            channel,
            metadata,
        )

    def restart_api(self) -> float:
        """Stop `netd api` (SIGTERM: it drains) and start it again on the same ports; the
        seconds until the new one is ready."""
        self.api.stop()
        assert self.api.proc.returncode == 0, self.api.output()
        t0 = time.monotonic()
        self.api = NetdProcess(["api"], self.env, self.tmp)
        self.api.wait_http(f"{self.http_url}/health/ready")
        return time.monotonic() - t0


async def _wait_grpc(server: NbiServer, timeout: float = 30.0) -> None:
    """Until grpc.health.v1 says SERVING (over TLS, where HTTP readiness would need the CA)."""
    deadline = time.monotonic() + timeout
    async with server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if server.api.proc.poll() is not None:
                raise AssertionError(f"netd api exited:\n{server.api.output()}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                got = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if got.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the gRPC API never served:\n{server.api.output()}")


@pytest.fixture(scope="module")
async def nbi(
    store_urls: StoreUrls,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> AsyncIterator[NbiServer]:
    """A module may add to the daemons' environment with NBI_ENV, run without the radius
    daemon with NBI_RADIUS = False, and trust a TLS certificate with NBI_TLS_CA (bytes)."""
    tmp = tmp_path_factory.mktemp("nbi")
    async with seeded_stores(store_urls.postgres, store_urls.redis, "g_", "g") as st:
        # The accounting sender sends no Message-Authenticator, as NASes do.
        await st.add_nas("bng1", "127.0.0.1/32", NAS_SECRET.encode(), "mikrotik", False)
        await st.add_subscribers(
            (store.SubscriberRow(user, plan=plan), "pw-" + user, "none")
            for user, plan in (("alice", "fiber-100"), ("bob", "default"))
        )
        tokens = await st.add_tokens("nbi", ROLES)
        http_port, grpc_port = free_port(), free_port()
        acct_port, auth_port, radius_status = free_udp_port(), free_udp_port(), free_port()
        env = st.env(
            tmp,
            {
                "NETD_API_PORT": str(http_port),
                "NETD_API_GRPC_PORT": str(grpc_port),
                "NETD_API_RATE_LIMIT": "1000000",
                "NETD_API_RATE_BURST": "1000000",
                "NETD_API_COA_TIMEOUT": "0.2",
                "NETD_API_COA_RETRIES": "2",
                "NETD_API_SSE_KEEPALIVE": "1",
                "NETD_API_TOKEN_CACHE_TTL": "0.5",
                "NETD_RADIUS_AUTH_PORT": str(auth_port),
                "NETD_RADIUS_ACCT_PORT": str(acct_port),
                "NETD_RADIUS_LISTEN": "127.0.0.1",
                "NETD_RADIUS_STATUS_PORT": str(radius_status),
            },
        )
        env.update(getattr(request.module, "NBI_ENV", {}))
        with_radius = getattr(request.module, "NBI_RADIUS", True)
        radius = NetdProcess(["radius"], env, tmp) if with_radius else None
        api = NetdProcess(["api"], env, tmp)
        server = NbiServer(
            grpc_port,
            f"http://127.0.0.1:{http_port}",
            acct_port,
            tokens,
            st.pool,
            st.cache,
            api,
            radius,
            env,
            tmp,
            getattr(request.module, "NBI_TLS_CA", None),
        )
        try:
            if radius is not None:
                radius.wait_http(f"http://127.0.0.1:{radius_status}/health/ready")
            if server.tls_ca is None:
                api.wait_http(f"{server.http_url}/health/ready")
            else:
                await _wait_grpc(server)
            yield server
        finally:
            for channel in server.channels:
                await channel.close()
            server.api.stop()
            out = server.api.output()
            if radius is not None:
                radius.stop()
                out += radius.output()
    assert_clean_log(out, (*tokens.values(), NAS_SECRET, st.key.hex(), "pw-alice"), tail=5000)


# --- a NAS sending accounting --------------------------------------------------------------


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[None]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        got = self.waiting.get(data[1]) if len(data) >= 20 and data[0] == 5 else None
        if got is not None and not got.done():
            got.set_result(None)


@dataclass
class AcctRun:
    acked: int = 0
    retransmits: int = 0
    sent: list[tuple[str, int, int]] = field(default_factory=list)  # (acct id, step, time)


async def send_accounting(
    port: int,
    sessions: int,
    *,
    interims: int = 2,
    prefix: str = "nbi",
    lanes: int = 128,
    deadline: float = 60.0,
    run: AcctRun | None = None,
) -> AcctRun:
    """Sessions 0..sessions-1, each Start, ``interims`` Interim-Updates and Stop, in
    order (a record goes once the previous one is acknowledged), ``lanes`` sessions at a
    time; an unanswered request is sent again after 1 s, at most 5 times. Every record is
    acknowledged or this raises."""
    builder = AcctBuilder(NAS_SECRET.encode(), 1000, "acct{:04d}", prefix, "127.0.0.1", interims)
    run = run or AcctRun()
    loop = asyncio.get_running_loop()
    sockets = []
    lanes_per_socket = 256
    for _ in range((lanes + lanes_per_socket - 1) // lanes_per_socket):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        transport, protocol = await loop.create_datagram_endpoint(_Replies, sock=sock)
        sockets.append((transport, protocol))
    queue = iter(range(sessions))
    steps = len(builder.steps)

    async def lane(i: int) -> None:
        assert run is not None
        transport, protocol = sockets[i // lanes_per_socket]
        ident = i % lanes_per_socket
        for s in queue:
            for step in range(steps):
                packet, _auth = builder.build(s, step, ident)
                for attempt in range(6):
                    done: asyncio.Future[None] = loop.create_future()
                    protocol.waiting[ident] = done
                    transport.sendto(packet)
                    try:
                        await asyncio.wait_for(done, 1.0)
                        break
                    except TimeoutError:
                        run.retransmits += 1
                        if attempt == 5:
                            raise
                run.acked += 1
                run.sent.append((builder.session_id(s), step, builder.session_time(s, step)))

    try:
        async with asyncio.timeout(deadline):
            await asyncio.gather(*(lane(i) for i in range(lanes)))
    finally:
        for transport, _ in sockets:
            transport.close()
    return run


def expected_events(
    sent: Sequence[tuple[str, int, int]], interims: int = 2
) -> set[tuple[str, str, int]]:
    """The (Acct-Session-Id, kind, session time) of the session events those records make."""
    kinds = ["start", *["interim"] * interims, "stop"]
    return {(sid, kinds[step], t) for sid, step, t in sent}
