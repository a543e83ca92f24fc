"""netd-managed IPv6 pools (issue 21): per-subscriber delegated prefixes carved from a
larger prefix; 1,000 concurrent logins get 1,000 distinct prefixes and the rest are
rejected with a reason; a lease is sticky, released by Stop and by the reaper, never held
twice."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from daemons.core.secrets import Sealer
from daemons.radius import pools6
from daemons.radius.admin import credentials
from daemons.radius.codec import Code, decode, encode_request
from daemons.store import accounting, authlog
from daemons.store import pools6 as store6
from daemons.store import radius as store
from tests.radius.conftest import SECRET, RadiusServer
from tests.radius.test_pools import access_request

N = 1000


def test_slots_are_carved_in_order() -> None:
    assert pools6.slots("2001:db8::/40", 56) == 65536
    assert pools6.slot("2001:db8::/40", 56, 0) == "2001:db8::/56"
    assert pools6.slot("2001:db8::/40", 56, 1) == "2001:db8:0:100::/56"
    assert pools6.slot("2001:db8::/40", 64, 65537) == "2001:db8:1:1::/64"
    with pytest.raises(ValueError, match="does not fit"):
        pools6.slots("2001:db8::/56", 48)


async def test_concurrent_leases_are_distinct_and_the_rest_refused(radius: RadiusServer) -> None:
    """Store level: 1,100 users at once on a pool of 1,024 /60s."""
    assert await store6.add_pool(radius.pool, "pd-c", "2001:db8:100::/50", 60) == 1024
    users = [f"c6-{i:04d}" for i in range(1100)]
    got = await asyncio.gather(*(store6.allocate(radius.pool, "pd-c", u, "lo") for u in users))
    leased = [p for p in got if p is not None]
    assert len(leased) == 1024 and len(set(leased)) == 1024
    assert all(
        ipaddress.ip_network(p).subnet_of(ipaddress.ip_network("2001:db8:100::/50")) for p in leased
    )
    assert got.count(None) == 76
    # Sticky: the same user again gets the same prefix; nobody else while it is held.
    again = await store6.allocate(radius.pool, "pd-c", users[0], "lo")
    assert again == got[0]
    assert await store6.allocate(radius.pool, "pd-c", "newcomer", "lo") is None
    # Released (a Stop): reusable by another user, not by two.
    await store6.release(radius.pool, [(got[0], users[0])])
    taken = await asyncio.gather(
        *(store6.allocate(radius.pool, "pd-c", f"n{i}", "lo") for i in range(5))
    )
    assert taken.count(got[0]) == 1 and taken.count(None) == 4


def storm6(port: int, users: list[str]) -> dict[str, str | None]:
    """All logins at once from 50 sockets; Delegated-IPv6-Prefix per user (None: rejected)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(50)]
    for i, user in enumerate(users):
        socks[i % 50].sendto(access_request(user, i // 50), ("127.0.0.1", port))
    got: dict[str, str | None] = {}
    for s in socks:
        s.settimeout(20)
    for i in range(len(users)):
        s = socks[i % 50]
        raw = s.recv(4096)
        pkt = decode(raw)
        ident = pkt.identifier
        user = users[ident * 50 + i % 50]
        prefix = pkt.get(123)
        if pkt.code == Code.ACCESS_ACCEPT and prefix:
            net = ipaddress.IPv6Network((prefix[2:].ljust(16, b"\0"), prefix[1]))
            got[user] = str(net)
        else:
            got[user] = None
    for s in socks:
        s.close()
    return got


async def test_logins_get_distinct_prefixes_and_stop_releases(radius: RadiusServer) -> None:
    """Daemon level: 1,000 subscribers whose Access-Accept names the netd pool 'pd-login'
    (Delegated-IPv6-Prefix-Pool) log in at once: 1,000 distinct /56s from a pool of 1,024;
    then 30 more than the pool holds are rejected with the reason in the history."""
    sealer = Sealer(radius.key)
    users = [f"l6-{i:04d}" for i in range(N + 30)]
    rows = [
        credentials(
            store.SubscriberRow(u, plan="default", delegated_ipv6_pool="pd-login"),
            "pw",
            "none",
            sealer,
        )
        for u in users
    ]
    await store.bulk_upsert_subscribers(radius.pool, radius.cache, rows)
    assert await store6.add_pool(radius.pool, "pd-login", "2001:db8:200::/46", 56) == 1024
    await asyncio.sleep(1.0)  # the daemon reloads its pool list on NOTIFY
    first = await asyncio.to_thread(storm6, radius.port, users[:N])
    prefixes = [p for p in first.values() if p]
    assert len(prefixes) == N and len(set(prefixes)) == N
    # 24 left: of 30 more logins, 24 get one and 6 are refused, with the reason recorded.
    rest = await asyncio.to_thread(storm6, radius.port, users[N:])
    assert sum(1 for p in rest.values() if p) == 24
    refused = [u for u, p in rest.items() if p is None]
    assert len(refused) == 6
    for _ in range(50):
        logged = await authlog.list_auth_events(radius.pool, username=refused[0])
        if logged:
            break
        await asyncio.sleep(0.1)
    assert logged[0]["reason"] == "pool6_exhausted"

    # A Stop releases the prefix: a refused user gets it next.
    holder = users[0]
    stop = encode_request(
        Code.ACCOUNTING_REQUEST,
        1,
        [
            (1, holder.encode()),
            (40, (2).to_bytes(4, "big")),
            (44, b"p6-stop"),
            (123, bytes((0, 56)) + ipaddress.IPv6Network(first[holder]).network_address.packed[:7]),
        ],
        SECRET,
        message_auth=False,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(stop, ("127.0.0.1", radius.acct_port))
        assert s.recv(4096)[0] == Code.ACCOUNTING_RESPONSE
    late = await asyncio.to_thread(storm6, radius.port, [refused[0]])
    assert late[refused[0]] == first[holder]
    assert await accounting.live_session_ids(radius.cache, username=holder) == []
