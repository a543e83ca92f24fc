"""Shared fixtures: real PostgreSQL and Redis, never mocks.

By default one embedded PostgreSQL and one embedded Redis start for the session (the same
code path ``netd`` uses). Set TEST_DATABASE_URL / TEST_REDIS_URL to run against other
servers, e.g. the machine's PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemons.core.config import RedisConfig
from daemons.store.cache import Cache, connect
from daemons.store.embedded import EmbeddedStores
from tests import stack
from tests.support import NetdProcess


@dataclass(frozen=True)
class StoreUrls:
    postgres: str
    redis: str


@pytest.fixture(scope="session")
def store_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreUrls]:
    pg = os.environ.get("TEST_DATABASE_URL", "")
    rd = os.environ.get("TEST_REDIS_URL", "")
    embedded = None
    if not pg or not rd:
        embedded = EmbeddedStores(
            tmp_path_factory.mktemp("stores") / "netd",
            postgres=not pg,
            redis=not rd,
            run_as="netd",
            timeout=60,
        )
        embedded.acquire()
        pg = pg or (embedded.postgres.dsn if embedded.postgres else "")
        rd = rd or (embedded.redis.url if embedded.redis else "")
    yield StoreUrls(pg, rd)
    if embedded is not None:
        embedded.release()


@contextlib.asynccontextmanager
async def fresh_database(
    store_urls: StoreUrls, prefix: str = "t_", migrated: bool = False
) -> AsyncIterator[str]:
    """A fresh database (with every migration applied, if ``migrated``); its DSN. Dropped
    at the end, its connections cut first (``tests.stack.fresh_database``)."""
    async with stack.fresh_database(store_urls.postgres, prefix, migrated) as dsn:
        yield dsn


@pytest.fixture
async def database(store_urls: StoreUrls) -> AsyncIterator[str]:
    """A fresh, empty database; its DSN. Dropped afterwards."""
    async with fresh_database(store_urls) as dsn:
        yield dsn


@pytest.fixture
async def migrated(database: str) -> str:
    """A fresh database with every migration applied; its DSN."""
    await stack.migrate_database(database)
    return database


@pytest.fixture
def key_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def cache(store_urls: StoreUrls, key_prefix: str) -> AsyncIterator[Cache]:
    """A Redis cache whose keys are private to this test (removed afterwards)."""
    c = await connect(RedisConfig(key_prefix=key_prefix), store_urls.redis)
    try:
        yield c
    finally:
        keys = [k async for k in c.client.scan_iter(match=f"{key_prefix}:*")]
        if keys:
            await c.client.delete(*keys)
        await c.close()


@pytest.fixture
def netd(tmp_path: Path) -> Iterator[list[NetdProcess]]:
    """Collects the netd processes a test starts and stops any still running."""
    procs: list[NetdProcess] = []
    yield procs
    for proc in procs:
        proc.stop()
