"""The Redis cache layer: key shape, msgpack values, heartbeats with TTL."""

from __future__ import annotations

import asyncio

from redis.cluster import key_slot

from daemons.store.cache import Cache, pack, unpack


def test_keys_carry_hash_tags() -> None:
    c = Cache(client=None, prefix="netd")  # type: ignore[arg-type]
    a, b = c.key("hb", "i", "x"), c.key("hb", "index")
    assert a == "netd:{hb}:i:x"
    assert key_slot(a.encode()) == key_slot(b.encode())


def test_msgpack_roundtrip() -> None:
    value = {"a": 1, "b": [1.5, "x", None, True], "c": b"\x00\xff"}
    assert unpack(pack(value)) == value


async def test_heartbeats(cache: Cache) -> None:
    await cache.put_heartbeat("h1:radius:1", {"daemon": "radius", "uptime": 1.0}, ttl=0.5)
    await cache.put_heartbeat("h1:acs:1", {"daemon": "acs"}, ttl=30)
    beats = await cache.list_heartbeats()
    assert sorted(b["daemon"] for b in beats) == ["acs", "radius"]
    await asyncio.sleep(0.7)
    assert [b["daemon"] for b in await cache.list_heartbeats()] == ["acs"]
    await cache.remove_heartbeat("h1:acs:1")
    assert await cache.list_heartbeats() == []
