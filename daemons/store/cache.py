"""Redis: the session cache. Values are msgpack; keys carry hash tags for Redis Cluster.

Key layout: ``<prefix>:{<tag>}:<part>:<part>``. Keys that a command touches together share
a tag, so the same code runs on one Redis and on a cluster.

On a Redis Cluster (``redis.cluster``) the client is redis-py's RedisCluster: it learns the
slot map from the node in ``redis.url``, sends each command to the primary owning its key,
follows MOVED/ASK redirections and refreshes the map after a failover. What the code keeps
to for that: a multi-key command (MGET, DEL of several keys, a MULTI block, a script's
keys) names keys of one hash tag only; a batch across tags goes as a pipeline (redis-py
splits it per node), never as one script call; nothing uses SELECT, KEYS or pub/sub.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from daemons.core.config import RedisConfig
from daemons.store.pg import StoreUnavailable, redact


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


# Runs a batch of commands (a msgpack array of [command, args...]) in one call: the
# arguments arrive as strings, and every reply comes back in one array.
_BATCH = """
local ops = cmsgpack.unpack(ARGV[1])
local out = {}
for i = 1, #ops do
  out[i] = redis.call(unpack(ops[i]))
end
return out
"""


def _arg(value: Any) -> bytes | str:
    return value if isinstance(value, bytes | str) else str(value)


class Ops:
    """Redis commands gathered for one round trip, named as redis-py's pipeline names them
    (``set``, ``sadd``, ``zadd``, ``xadd``...), run by ``Cache.run``.

    Why not a redis-py pipeline: it packs and parses each command in Python, about 13 µs
    a command here, and a RADIUS accounting record takes six (benchmarks/radius_acct.py's
    profile). Run as one script call, the batch costs its msgpack packing.
    """

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[list[bytes | str]] = []

    def __len__(self) -> int:
        return len(self.ops)

    def get(self, key: str) -> None:
        self.ops.append(["GET", key])

    def scard(self, key: str) -> None:
        self.ops.append(["SCARD", key])

    def set(self, key: str, value: bytes | str, px: int | None = None) -> None:
        self.ops.append(["SET", key, value] if px is None else ["SET", key, value, "PX", str(px)])

    def delete(self, *keys: str) -> None:
        self.ops.append(["DEL", *keys])

    def sadd(self, key: str, *members: bytes | str) -> None:
        self.ops.append(["SADD", key, *members])

    def srem(self, key: str, *members: bytes | str) -> None:
        self.ops.append(["SREM", key, *members])

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        op: list[bytes | str] = ["ZADD", key]
        for member, score in mapping.items():
            op += [_arg(score), member]
        self.ops.append(op)

    def zrem(self, key: str, *members: bytes | str) -> None:
        self.ops.append(["ZREM", key, *members])

    def xadd(
        self,
        key: str,
        fields: dict[str, Any],
        maxlen: int | None = None,
        approximate: bool = True,
    ) -> None:
        op: list[bytes | str] = ["XADD", key]
        if maxlen is not None:
            op += ["MAXLEN", "~" if approximate else "=", str(maxlen)]
        op.append("*")
        for name, value in fields.items():
            op += [name, _arg(value)]
        self.ops.append(op)


Client = aioredis.Redis | RedisCluster


class Cache:
    """A thin layer over a redis-py asyncio client (one Redis, or a Redis Cluster) with
    verb-named operations."""

    def __init__(self, client: Client, prefix: str, stream_max_len: int = 200_000) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self.prefix = prefix
        self.stream_max_len = stream_max_len  # entries kept in the event stream
        self._batch: Any = None  # the batch script, registered on first use

    def key(self, tag: str, *parts: str) -> str:
        return ":".join((self.prefix, "{" + tag + "}", *parts))

    async def run(self, ops: Ops, script: bool | None = None) -> list[Any]:
        """The replies of ``ops``, in order, from one round trip: one script call (a single
        Redis; the keys need not share a slot), or a pipeline (a Redis Cluster, whose
        scripts may touch one slot only: one round trip to each node holding a key).
        ``script`` None picks by the client; False forces the pipeline. Raises RedisError
        (on a cluster, after redis-py's retries across a failover)."""
        if not ops.ops:
            return []
        if script is False or (script is None and self.cluster):
            async with self.client.pipeline(transaction=False) as pipe:
                for op in ops.ops:
                    pipe.execute_command(*op)
                return list(await pipe.execute())
        if self._batch is None:
            self._batch = self.client.register_script(_BATCH)
        # The old msgpack "raw" format: Redis's Lua cmsgpack reads it (not the bin types).
        return list(await self._batch(args=[msgpack.packb(ops.ops, use_bin_type=False)]))

    async def ping(self) -> bool:
        """PING; on a cluster, every primary (redis-py's default there is every node, and a
        dead replica would then fail it while the cluster serves every slot)."""
        if isinstance(self.client, RedisCluster):
            return bool(await self.client.ping(target_nodes=RedisCluster.PRIMARIES))
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
    """Connect and check with PING; raise StoreUnavailable if Redis is not there. With
    ``cfg.cluster``, ``url`` names one node of a Redis Cluster and the client discovers the
    others (CLUSTER SLOTS); StoreUnavailable too if it cannot."""
    password = cfg.password.get_secret_value() if cfg.password else None
    client: Client
    if cfg.cluster:
        if url.startswith("unix://"):
            raise StoreUnavailable("a Redis Cluster is reached over TCP: redis.url is unix://")
        client = RedisCluster.from_url(
            url,
            password=password,
            socket_connect_timeout=cfg.connect_timeout,
            socket_timeout=cfg.socket_timeout,
            health_check_interval=30,
        )
    else:
        client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_connect_timeout=cfg.connect_timeout,
            socket_timeout=cfg.socket_timeout,
            health_check_interval=30,
        )
    cache = Cache(client, cfg.key_prefix, cfg.event_stream_max_len)
    try:
        if isinstance(client, RedisCluster):
            await client.initialize()
        await cache.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise StoreUnavailable(f"cannot connect to Redis at {redact(url)}: {exc}") from None
    return cache
