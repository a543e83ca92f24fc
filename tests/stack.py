"""A stack of real daemons on real stores: the one harness tests and benchmarks share.

- :func:`fresh_database`: a PostgreSQL database of its own (migrated if asked), dropped at
  the end with its connections cut.
- :func:`migrate_database`: every migration applied to a database.
- :func:`seeded_stores` gives :class:`Seeded`: a fresh migrated database, a secrets key
  and its sealer, a Redis key prefix, a pool and a cache on them. ``add_nas``,
  ``add_subscribers`` and ``add_tokens`` seed what the daemons serve; ``env`` is the
  environment of a ``netd`` process on those stores (the packaged policies copied, a state
  directory, JSON log lines). At the end the pool and cache close, the prefix's Redis keys
  and the database go.
- :func:`assert_clean_log`: a daemon's output has no traceback and no secret.

No pytest in here: ``benchmarks/`` imports it as the tests' fixtures do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg

from daemons import resources
from daemons.core.config import DatabaseConfig, RedisConfig
from daemons.core.secrets import Sealer
from daemons.radius.credentials import credentials
from daemons.store import api as api_store
from daemons.store import migrate
from daemons.store import radius as radius_store
from daemons.store.cache import Cache, connect
from daemons.store.pg import create_pool
from tests.support import netd_env, with_database

ROLES = ("viewer", "operator", "admin")


async def migrate_database(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn, migrate.available())
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(
    postgres: str, prefix: str = "t_", migrated: bool = False
) -> AsyncIterator[str]:
    """A fresh database on the server of DSN ``postgres`` (with every migration applied,
    if ``migrated``); its DSN. Dropped at the end, its connections cut first."""
    name = prefix + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(postgres)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = with_database(postgres, name)
        if migrated:
            await migrate_database(dsn)
        yield dsn
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        # WITH (FORCE): a daemon still running reconnects between the two statements.
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def add_nas(
    pool: asyncpg.Pool,
    sealer: Sealer,
    name: str,
    network: str,
    secret: bytes,
    vendor: str = "mikrotik",
    require_message_authenticator: bool = False,
    coa_port: int = 3799,
    tls_identity: str | None = None,
) -> None:
    """A NAS client, its secret sealed as the daemons expect (context ``nas:<name>``)."""
    sealed = sealer.seal(secret, f"nas:{name}".encode())
    row = radius_store.NasRow(
        name, network, sealed, vendor, require_message_authenticator, coa_port
    )
    await radius_store.add_nas(pool, replace(row, tls_identity=tls_identity))


async def add_subscribers(
    pool: asyncpg.Pool,
    cache: Cache,
    sealer: Sealer,
    rows: Iterable[tuple[radius_store.SubscriberRow, str, str]],
) -> None:
    """Each (row, password, hash scheme): its credentials set, written through the cache."""
    for row, password, scheme in rows:
        await radius_store.upsert_subscriber(
            pool, cache, credentials(row, password, scheme, sealer)
        )


async def add_tokens(
    pool: asyncpg.Pool, label: str, roles: Iterable[str] = ROLES
) -> dict[str, str]:
    """An API token of each role (named ``<label>-<role>``); role -> bearer secret."""
    tokens = {}
    for role in roles:
        _row, secret = await api_store.create_token(pool, f"{label}-{role}", role, "test")
        tokens[role] = secret
    return tokens


@dataclass
class Seeded:
    dsn: str
    redis_url: str
    prefix: str
    key: bytes
    sealer: Sealer
    pool: asyncpg.Pool
    cache: Cache

    async def add_nas(
        self,
        name: str,
        network: str,
        secret: bytes,
        vendor: str = "mikrotik",
        require_message_authenticator: bool = False,
        coa_port: int = 3799,
        tls_identity: str | None = None,
    ) -> None:
        await add_nas(
            self.pool,
            self.sealer,
            name,
            network,
            secret,
            vendor,
            require_message_authenticator,
            coa_port,
            tls_identity,
        )

    async def add_subscribers(
        self, rows: Iterable[tuple[radius_store.SubscriberRow, str, str]]
    ) -> None:
        await add_subscribers(self.pool, self.cache, self.sealer, rows)

    async def add_tokens(self, label: str, roles: Iterable[str] = ROLES) -> dict[str, str]:
        return await add_tokens(self.pool, label, roles)

    def env(self, tmp: Path, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """A ``netd`` process's environment on these stores: the packaged policies copied
        to ``tmp/policies`` (once), state in ``tmp/state``, JSON log lines."""
        policies = tmp / "policies"
        if not policies.exists():
            shutil.copytree(resources.path("policies"), policies)
        return netd_env(
            {
                "NETD_DATABASE_URL": self.dsn,
                "NETD_REDIS_URL": self.redis_url,
                "NETD_REDIS_KEY_PREFIX": self.prefix,
                "NETD_SECRETS_KEY": self.key.hex(),
                "NETD_POLICIES_DIR": str(policies),
                "NETD_STATE_DIR": str(tmp / "state"),
                "NETD_LOG_FORMAT": "json",
                **(overrides or {}),
            }
        )


@contextlib.asynccontextmanager
async def seeded_stores(
    postgres: str, redis: str, db_prefix: str = "t_", key_prefix: str = "t"
) -> AsyncIterator[Seeded]:
    """A fresh migrated database and a private Redis key prefix, with a new secrets key;
    see the module docstring for what is removed at the end."""
    async with fresh_database(postgres, db_prefix, migrated=True) as dsn:
        key = os.urandom(32)
        prefix = key_prefix + uuid.uuid4().hex[:10]
        pool = await create_pool(DatabaseConfig(), dsn, "test")
        cache = await connect(RedisConfig(key_prefix=prefix), redis)
        try:
            yield Seeded(dsn, redis, prefix, key, Sealer(key), pool, cache)
        finally:
            await pool.close()
            keys = [k async for k in cache.client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await cache.client.delete(*keys)
            await cache.close()


def assert_clean_log(out: str, secrets: Iterable[str], tail: int | None = None) -> None:
    """No traceback and none of ``secrets`` in a daemon's output (``tail``: how much of
    the output a failure shows)."""
    assert "Traceback" not in out, out[-tail:] if tail else out
    for secret in secrets:
        assert secret not in out, "a secret is in the log"
