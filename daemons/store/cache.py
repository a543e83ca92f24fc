"""Redis: the session cache. Values are msgpack; keys carry hash tags for Redis Cluster.

Key layout: ``<prefix>:{<tag>}:<part>:<part>``. Keys that a command touches together share
a tag, so the same code runs on one Redis and on a cluster.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from daemons.core.config import RedisConfig
from daemons.store.pg import StoreUnavailable, redact


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


class Cache:
    """A thin layer over a redis-py asyncio client with verb-named operations."""

    def __init__(self, client: aioredis.Redis, prefix: str, stream_max_len: int = 200_000) -> None:
        self.client = client
        self.prefix = prefix
        self.stream_max_len = stream_max_len  # entries kept in the event stream

    def key(self, tag: str, *parts: str) -> str:
        return ":".join((self.prefix, "{" + tag + "}", *parts))

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()

    # --- heartbeats: one key per daemon instance (with a TTL) plus an index by last beat ---

    async def put_heartbeat(self, instance_id: str, beat: dict[str, Any], ttl: float) -> None:
        now = time.time()
        index = self.key("hb", "index")
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key("hb", "i", instance_id), pack(beat), px=int(ttl * 1000))
            pipe.zadd(index, {instance_id: now})
            pipe.zremrangebyscore(index, "-inf", now - 24 * 3600)
            await pipe.execute()

    async def remove_heartbeat(self, instance_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.key("hb", "i", instance_id))
            pipe.zrem(self.key("hb", "index"), instance_id)
            await pipe.execute()

    async def list_heartbeats(self) -> list[dict[str, Any]]:
        """Every live instance's last heartbeat (expired ones are left out)."""
        ids = await self.client.zrange(self.key("hb", "index"), 0, -1)
        if not ids:
            return []
        keys = [self.key("hb", "i", i.decode() if isinstance(i, bytes) else str(i)) for i in ids]
        values = await self.client.mget(keys)
        return [unpack(v) for v in values if isinstance(v, bytes)]


async def connect(cfg: RedisConfig, url: str) -> Cache:
    """Connect and check with PING; raise StoreUnavailable if Redis is not there."""
    password = cfg.password.get_secret_value() if cfg.password else None
    client = aioredis.Redis.from_url(
        url,
        password=password,
        socket_connect_timeout=cfg.connect_timeout,
        socket_timeout=cfg.socket_timeout,
        health_check_interval=30,
    )
    cache = Cache(client, cfg.key_prefix, cfg.event_stream_max_len)
    try:
        await cache.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise StoreUnavailable(f"cannot connect to Redis at {redact(url)}: {exc}") from None
    return cache
