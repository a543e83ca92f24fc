"""The Redis cache layer: key shape, msgpack values, heartbeats with TTL."""

from __future__ import annotations

import asyncio
import functools

from redis.cluster import key_slot

from daemons.store.cache import Cache, Ops, pack, unpack


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


async def every_verb(cache: Cache, tag: str, script: bool | None) -> tuple[object, ...]:
    """Every verb of Ops in one Cache.run (keys of hash tag ``tag``), then the data read
    back: what the run answered and left, for comparing two ways of running it."""
    k = functools.partial(cache.key, tag)
    ops = Ops()
    ops.set(k("a"), pack({"n": 2**62, "s": "é"}))
    ops.set(k("ttl"), b"x", px=60_000)
    ops.sadd(k("set"), "u1", "u2")
    ops.srem(k("set"), "u2")
    ops.zadd(k("z"), {"s1": 0, "s2": 0})
    ops.zrem(k("z"), "s2")
    ops.xadd(k("stream"), {"k": "kind", "d": pack([1, 2]), "n": 7}, maxlen=100)
    ops.set(k("gone"), b"1")
    ops.delete(k("gone"))
    ops.get(k("a"))
    ops.get(k("absent"))
    ops.scard(k("set"))
    replies = await cache.run(ops, script=script)
    assert len(replies) == len(ops)
    assert unpack(replies[-3]) == {"n": 2**62, "s": "é"}
    assert replies[-2] is None and replies[-1] == 1
    assert await cache.client.smembers(k("set")) == {b"u1"}
    assert await cache.client.zrange(k("z"), 0, -1) == [b"s1"]
    assert 0 < await cache.client.pttl(k("ttl")) <= 60_000
    assert not await cache.client.exists(k("gone"))
    ((_id, fields),) = await cache.client.xrange(k("stream"))
    return fields, replies[-3:]


async def test_a_batch_is_the_same_as_a_script_or_a_pipeline(cache: Cache) -> None:
    """Cache.run: every verb of Ops, run as one script call and as a pipeline, leaves the
    same data and answers the reads the same (tests/integration/test_redis_cluster.py runs
    it on a Redis Cluster as well)."""
    results = [await every_verb(cache, f"batch{int(script)}", script) for script in (True, False)]
    assert results[0] == results[1]
    assert await every_verb(cache, "batch-default", None) == results[0]  # one Redis: script
    assert await cache.run(Ops()) == []
