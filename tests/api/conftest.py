"""A real `netd api` process on loopback, over a fresh database, shared by a test module.

It holds a token of each role, the NAS clients and subscribers of the RADIUS tests, and
whatever a test adds. A module may tune the daemon with a module-level API_ENV dict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from daemons.store import radius as store
from daemons.store.cache import Cache
from tests.conftest import StoreUrls
from tests.stack import assert_clean_log, seeded_stores
from tests.support import NetdProcess, free_port

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
    async with seeded_stores(store_urls.postgres, store_urls.redis, "a_", "a") as st:
        await st.add_nas("bng1", "127.0.0.1/32", NAS_SECRET.encode(), "mikrotik", True)
        await st.add_subscribers(
            (store.SubscriberRow(user, plan=plan), "pw-" + user, "none")
            for user, plan in (("alice", "fiber-100"), ("bob", "default"), ("carol", "fiber-1000"))
        )
        tokens = await st.add_tokens("test", ROLES)
        port = free_port()
        env = st.env(
            tmp,
            {
                "NETD_API_PORT": str(port),
                "NETD_API_RATE_LIMIT": "100000",
                "NETD_API_RATE_BURST": "100000",
                "NETD_API_COA_TIMEOUT": "0.2",
                "NETD_API_COA_RETRIES": "2",
            },
        )
        env.update(getattr(request.module, "API_ENV", {}))
        proc = NetdProcess(["api"], env, tmp)
        url = f"http://127.0.0.1:{port}"
        try:
            proc.wait_http(f"{url}/health/ready")
            yield ApiServer(
                url, port, tokens, st.pool, st.cache, proc, st.prefix, st.key, st.dsn, env
            )
        finally:
            proc.stop()
            out = proc.output()
    assert_clean_log(out, (*tokens.values(), NAS_SECRET, st.key.hex(), "pw-alice"))
