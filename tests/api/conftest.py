"""A real `netd api` process on loopback, over a fresh database, shared by a test module.

It holds a token of each role, the NAS clients and subscribers of the RADIUS tests, and
whatever a test adds. A module may tune the daemon with a module-level API_ENV dict.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.radius.admin import credentials
from daemons.store import api as api_store
from daemons.store import radius as store
from daemons.store.cache import Cache, connect
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.support import NetdProcess, free_port, netd_env

REPO = Path(__file__).resolve().parents[2]
NAS_SECRET = "api-nas-secret"
ROLES = ("viewer", "operator", "admin")


@dataclass
class ApiServer:
    url: str
    port: int
    tokens: dict[str, str]
    pool: asyncpg.Pool
    cache: Cache
    proc: NetdProcess
    prefix: str
    key: bytes
    database: str
    env: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

    def client(self, role: str | None = "admin") -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers(role), timeout=15.0)


@pytest.fixture(scope="module")
async def api(
    store_urls: StoreUrls,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> AsyncIterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("api")
    database = contextlib.AsyncExitStack()
    dsn = await database.enter_async_context(fresh_database(store_urls, "a_", migrated=True))
    key = os.urandom(32)
    sealer = Sealer(key)
    prefix = "a" + uuid.uuid4().hex[:10]
    pool = await create_pool(DatabaseConfig(), dsn, "test")
    cache = await connect(RedisConfig(key_prefix=prefix), store_urls.redis)
    await store.add_nas(
        pool,
        store.NasRow(
            "bng1",
            "127.0.0.1/32",
            sealer.seal(NAS_SECRET.encode(), b"nas:bng1"),
            "mikrotik",
            True,
            3799,
        ),
    )
    for user, plan in (("alice", "fiber-100"), ("bob", "default"), ("carol", "fiber-1000")):
        row = credentials(store.SubscriberRow(user, plan=plan), "pw-" + user, "none", sealer)
        await store.upsert_subscriber(pool, cache, row)
    tokens = {}
    for role in ROLES:
        _row, secret = await api_store.create_token(pool, f"test-{role}", role, "test")
        tokens[role] = secret
    policies = tmp / "policies"
    shutil.copytree(resources.path("policies"), policies)
    port = free_port()
    env = netd_env(
        {
            "NETD_DATABASE_URL": dsn,
            "NETD_REDIS_URL": store_urls.redis,
            "NETD_REDIS_KEY_PREFIX": prefix,
            "NETD_SECRETS_KEY": key.hex(),
            "NETD_API_PORT": str(port),
            "NETD_API_RATE_LIMIT": "100000",
            "NETD_API_RATE_BURST": "100000",
            "NETD_API_COA_TIMEOUT": "0.2",
            "NETD_API_COA_RETRIES": "2",
            "NETD_POLICIES_DIR": str(policies),
            "NETD_STATE_DIR": str(tmp / "state"),
            "NETD_LOG_FORMAT": "json",
        }
    )
    env.update(getattr(request.module, "API_ENV", {}))
    proc = NetdProcess(["api"], env, tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{url}/health/ready")
        yield ApiServer(url, port, tokens, pool, cache, proc, prefix, key, dsn, env)
    finally:
        proc.stop()
        out = proc.output()
        await pool.close()
        keys = [k async for k in cache.client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await cache.client.delete(*keys)
        await cache.close()
        await database.aclose()
        assert "Traceback" not in out, out
        for secret in (*tokens.values(), NAS_SECRET, key.hex(), "pw-alice"):
            assert secret not in out, "a secret is in the log"
