"""A VOLTHA stack for tests: our fake core and fake ONOS in the test's event loop, and a
real `netd voltha` and `netd api` in processes of their own, on one config file."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.radius.admin import credentials
from daemons.store import api as api_store
from daemons.store import radius as radius_store
from daemons.store.cache import Cache, connect
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.support import NetdProcess, free_port, netd_env
from tests.voltha.fake_core import FakeVoltha
from tests.voltha.fake_onos import FakeOnos

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    voltha: FakeVoltha
    onos: FakeOnos
    pool: asyncpg.Pool
    cache: Cache
    api: str
    token: str
    viewer: str
    sadis: str
    status: str
    daemon: NetdProcess
    env: dict[str, str]

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=15.0,
        )

    async def events(self, kind: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, kind, subject, data::text AS data FROM events WHERE source = 'voltha' "
            "AND id > $1 AND ($2::text IS NULL OR kind = $2) ORDER BY id",
            after,
            kind,
        )
        return [dict(r) for r in rows]

    async def last_event_id(self) -> int:
        return int(await self.pool.fetchval("SELECT coalesce(max(id), 0) FROM events"))

    async def metric(self, name: str, **labels: str) -> float:
        async with httpx.AsyncClient(timeout=5.0) as c:
            text = (await c.get(f"{self.status}/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


async def until(check: Callable[[], Any], seconds: float = 15.0, what: str = "") -> Any:
    """Await ``check()`` (sync or async) until it is truthy, bounded in time."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {seconds} s: {what or check}")
        await asyncio.sleep(0.05)


async def _ready(url: str, proc: NetdProcess, seconds: float = 30.0) -> None:
    async with httpx.AsyncClient(timeout=2.0) as c:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                raise AssertionError(f"netd exited:\n{proc.output()}")
            try:
                if (await c.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready:\n{proc.output()}")


@pytest.fixture(scope="module")
async def stack(
    store_urls: StoreUrls, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("voltha")
    voltha = FakeVoltha(step_seconds=0.05)
    await voltha.start()
    sadis_port = free_port()
    onos = FakeOnos(f"http://127.0.0.1:{sadis_port}", voltha=voltha)
    await onos.start()
    key = os.urandom(32)
    prefix = "v" + uuid.uuid4().hex[:10]
    api_port, status_port = free_port(), free_port()
    async with fresh_database(store_urls, "v_", migrated=True) as dsn:
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        cache = await connect(RedisConfig(key_prefix=prefix), store_urls.redis)
        sealer = Sealer(key)
        for user, plan in (("alice", "fiber-100"), ("bob", "fiber-1000")):
            row = credentials(radius_store.SubscriberRow(user, plan=plan), "pw", "none", sealer)
            await radius_store.upsert_subscriber(pool, cache, row)
        _row, token = await api_store.create_token(pool, "voltha-admin", "admin", "test")
        _row, viewer = await api_store.create_token(pool, "voltha-viewer", "viewer", "test")
        config = tmp / "netd.toml"
        config.write_text(
            f"""
[voltha]
sync_interval = 0.5
optics_interval = 0.5
firmware_poll = 0.05
firmware_step_timeout = 10.0
sadis_port = {sadis_port}

[voltha.stacks.lab]
address = "{voltha.address}"
deadline = 1.0
onos_url = "{onos.base_url}"
"""
        )
        policies = tmp / "policies"
        shutil.copytree(resources.path("policies"), policies)
        env = netd_env(
            {
                "NETD_CONFIG": str(config),
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": prefix,
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_VOLTHA_STATUS_PORT": str(status_port),
                "NETD_API_PORT": str(api_port),
                "NETD_API_RATE_LIMIT": "100000",
                "NETD_API_RATE_BURST": "100000",
                "NETD_POLICIES_DIR": str(policies),
                "NETD_STATE_DIR": str(tmp / "state"),
                "NETD_LOG_FORMAT": "json",
            }
        )
        daemon = NetdProcess(["voltha"], env, tmp)
        api = NetdProcess(["api"], env, tmp)
        try:
            await _ready(f"http://127.0.0.1:{status_port}/health/ready", daemon)
            await _ready(f"http://127.0.0.1:{api_port}/health/ready", api)
            yield Stack(
                voltha,
                onos,
                pool,
                cache,
                f"http://127.0.0.1:{api_port}",
                token,
                viewer,
                f"http://127.0.0.1:{sadis_port}",
                f"http://127.0.0.1:{status_port}",
                daemon,
                env,
            )
        finally:
            await asyncio.to_thread(api.stop)
            await asyncio.to_thread(daemon.stop)
            await onos.stop()
            await voltha.stop()
            await pool.close()
            keys = [k async for k in cache.client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await cache.client.delete(*keys)
            await cache.close()
        for proc in (daemon, api):
            out = proc.output()
            assert "Traceback" not in out, out[-3000:]
            assert "rocks" not in out  # ONOS's password is never logged
