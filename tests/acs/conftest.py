"""A real `netd acs` process on loopback over a fresh database, shared by a test module.
A module may tune it with a module-level ACS_ENV dict."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from daemons.core.config import DatabaseConfig
from daemons.store import api as api_store
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.support import NetdProcess, free_port, netd_env


@dataclass
class AcsServer:
    port: int
    status_port: int
    pool: asyncpg.Pool
    proc: NetdProcess
    env: dict[str, str]

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.status_port}/metrics", timeout=5).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                series, value = line.rsplit(" ", 1)
                got = series[len(name) :].strip("{}")
                if all(part in got.split(",") for part in want.split(",") if part):
                    total += float(value)
        return total


@pytest.fixture(scope="module")
async def acs(
    store_urls: StoreUrls,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> AsyncIterator[AcsServer]:
    tmp = tmp_path_factory.mktemp("acs")
    database = contextlib.AsyncExitStack()
    dsn = await database.enter_async_context(fresh_database(store_urls, "c_", migrated=True))
    pool = await create_pool(DatabaseConfig(), dsn, "test")
    port, status_port = free_port(), free_port()
    env = netd_env(
        {
            "NETD_DATABASE_URL": dsn,
            "NETD_REDIS_URL": store_urls.redis,
            "NETD_REDIS_KEY_PREFIX": "c" + uuid.uuid4().hex[:10],
            "NETD_SECRETS_KEY": os.urandom(32).hex(),
            "NETD_ACS_PORT": str(port),
            "NETD_ACS_STATUS_PORT": str(status_port),
            "NETD_ACS_BATCH": "200",
            "NETD_ACS_SESSION_TIMEOUT": "2",
            # every simulated CPE comes from 127.0.0.1: the per-source-IP limit is off here
            # (tests/security/test_acs_rate_limit.py tests it)
            "NETD_ACS_RATE_LIMIT": "0",
            "NETD_STATE_DIR": str(tmp / "state"),
            "NETD_LOG_FORMAT": "json",
        }
    )
    env.update(getattr(request.module, "ACS_ENV", {}))
    proc = NetdProcess(["acs"], env, tmp)
    try:
        proc.wait_http(f"http://127.0.0.1:{status_port}/health/ready")
        yield AcsServer(port, status_port, pool, proc, env)
    finally:
        proc.stop()
        out = proc.output()
        await pool.close()
        await database.aclose()
        assert "Traceback" not in out, out
        password = env.get("NETD_ACS_PASSWORD")
        assert not password or password not in out, "the CPE password is in the log"


@pytest.fixture(scope="module")
async def acs_api(
    acs: AcsServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, str]]:
    """`netd api` on the ACS's database: its base URL and an operator token."""
    tmp = tmp_path_factory.mktemp("api")
    _row, token = await api_store.create_token(
        acs.pool, f"op-{uuid.uuid4().hex[:8]}", "operator", "test"
    )
    port = free_port()
    env = {**acs.env, "NETD_API_PORT": str(port), "NETD_API_RATE_LIMIT": "100000"}
    proc = NetdProcess(["api"], env, tmp)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/health/ready")
        yield f"http://127.0.0.1:{port}", token
    finally:
        proc.stop()
        assert "Traceback" not in proc.output()
