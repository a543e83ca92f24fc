"""IP pools: 1,000 concurrent authentications from one pool get 1,000 distinct addresses;
a user gets their address back after a Stop."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time

from daemons.core.secrets import Sealer
from daemons.radius.admin import credentials
from daemons.radius.codec import Attr, Code, decode, encode_request, hide_password
from daemons.store import pools
from daemons.store import radius as store
from tests.radius.conftest import SECRET, RadiusServer, wait_until

N = 1000
RANGE = "100.80.0.0/22"  # 1,022 usable addresses


def access_request(user: str, ident: int) -> bytes:
    auth = os.urandom(16)
    return encode_request(
        Code.ACCESS_REQUEST,
        ident,
        [(Attr.USER_NAME, user.encode()), (Attr.USER_PASSWORD, hide_password(b"pw", SECRET, auth))],
        SECRET,
        auth,
    )


def storm(port: int, users: list[str]) -> dict[str, str | None]:
    """Send every request at once from 50 sockets; collect Framed-IP-Address per user."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(50)]
    pending: dict[tuple[int, int], str] = {}
    for i, user in enumerate(users):
        s = socks[i % 50]
        pending[(i % 50, i // 50)] = user
        s.sendto(access_request(user, i // 50), ("127.0.0.1", port))
    got: dict[str, str | None] = {}
    deadline = time.monotonic() + 30
    for s in socks:
        s.setblocking(False)
    while pending and time.monotonic() < deadline:
        for n, s in enumerate(socks):
            try:
                raw = s.recv(4096)
            except BlockingIOError:
                continue
            user = pending.pop((n, raw[1]), None)
            if user is None:
                continue
            reply = decode(raw)
            ip = reply.get(Attr.FRAMED_IP_ADDRESS)
            got[user] = (
                str(ipaddress.IPv4Address(ip)) if reply.code == Code.ACCESS_ACCEPT and ip else None
            )
        time.sleep(0.001)
    for s in socks:
        s.close()
    return got


async def test_concurrent_allocations_are_distinct(radius: RadiusServer) -> None:
    sealer = Sealer(radius.key)
    users = [f"pool{i:04d}" for i in range(N)]
    await store.bulk_upsert_subscribers(
        radius.pool,
        radius.cache,
        [
            credentials(store.SubscriberRow(u, plan="fiber-100"), "pw", "none", sealer)
            for u in users
        ],
    )
    assert await pools.add_pool(radius.pool, "fiber", [RANGE], lease_time=600) == 1022
    await asyncio.sleep(1.0)  # the daemon reloads its pool list on NOTIFY

    got = await asyncio.to_thread(storm, radius.port, users)
    addresses = [a for a in got.values() if a]
    assert len(got) == N and len(addresses) == N, f"{len(got)} answered, {len(addresses)} ip"
    assert len(set(addresses)) == N, "an address was handed out twice"
    net = ipaddress.ip_network(RANGE)
    assert all(ipaddress.ip_address(a) in net for a in addresses)
    leased = await radius.pool.fetchval(
        "SELECT count(DISTINCT username) FROM ip_pool_addresses WHERE expires_at > now()"
    )
    assert leased == N

    # Released on Stop, and the same user gets the same address back.
    first = got["pool0000"]
    assert first is not None
    await pools.release(radius.pool, first, "pool0000")
    again = await asyncio.to_thread(storm, radius.port, ["pool0000"])
    assert again["pool0000"] == first
    # An exhausted pool rejects.
    assert await pools.add_pool(radius.pool, "fiber", [], lease_time=600) == 0
    more = [f"late{i}" for i in range(30)]
    await store.bulk_upsert_subscribers(
        radius.pool,
        radius.cache,
        [credentials(store.SubscriberRow(u, plan="fiber-100"), "pw", "none", sealer) for u in more],
    )
    late = await asyncio.to_thread(storm, radius.port, more)
    assert sum(1 for a in late.values() if a) == 1022 - N
    wait_until(
        lambda: (
            radius.metric("netd_radius_rejects_total", nas="lo", reason="pool_exhausted")
            >= 30 - (1022 - N)
        )
    )
