"""Opening and closing a process's stores, and the schema check before anything runs.

:func:`open_stores` connects to the configured PostgreSQL and Redis, starting embedded ones
for what is not configured; :func:`close_stores` releases them; :func:`ensure_schema` applies
pending migrations or refuses an old (or, for admin commands, missing) schema. Every problem
is one :class:`StartupError` for the operator. The daemons' runner and the admin commands
share these; :mod:`daemons.core.lifecycle` re-exports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass

import asyncpg

from daemons import __version__
from daemons.core.config import Config
from daemons.store import migrate
from daemons.store.cache import Cache
from daemons.store.cache import connect as connect_cache
from daemons.store.embedded import EmbeddedError, EmbeddedStores
from daemons.store.pg import StoreUnavailable, create_pool

log = logging.getLogger("netd.lifecycle")


class StartupError(Exception):
    """Startup cannot go on; the message is for the operator. ``status`` is the exit code."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Stores:
    pool: asyncpg.Pool
    cache: Cache | None
    postgres_url: str
    redis_url: str
    embedded: EmbeddedStores | None = None

    @property
    def redis(self) -> Cache:
        if self.cache is None:
            raise RuntimeError("these stores were opened without Redis")
        return self.cache


def _check_state_dir(config: Config) -> None:
    """An admin command runs on an instance's existing stores: refuse, with one line naming
    the state directory looked at, when it holds no embedded database yet (rather than
    starting a new empty one and answering from it).

    Raises StartupError.
    """
    data = config.state_dir / "postgres" / "PG_VERSION"
    try:
        present = data.is_file()
    except PermissionError:
        raise StartupError(
            f"cannot read state directory {config.state_dir}: permission denied "
            "(run as the user the daemons run as, e.g. `sudo -u netd netd ...`)"
        ) from None
    if not present:
        raise StartupError(
            f"no database in state directory {config.state_dir}: run `netd migrate` to "
            "create one, or give the config of the instance you mean (--config, $NETD_CONFIG)"
        )


async def open_stores(config: Config, with_redis: bool = True, create: bool = False) -> Stores:
    """Connect to the configured stores, starting embedded ones for what is not configured.
    Without ``create`` (admin commands) an embedded database must exist already.

    Raises StartupError when a store cannot be reached or started, or does not exist.
    """
    embedded: EmbeddedStores | None = None
    if config.database.embedded and not create:
        _check_state_dir(config)
    pg_url = config.database.url.get_secret_value()
    redis_url = config.redis.url.get_secret_value()
    embed_redis = with_redis and config.redis.embedded
    if config.database.embedded or embed_redis:
        embedded = EmbeddedStores(
            config.state_dir,
            postgres=config.database.embedded,
            redis=embed_redis,
            run_as=config.embedded.run_as,
            timeout=config.embedded.start_timeout,
        )
        try:
            await asyncio.to_thread(embedded.acquire)
        except (EmbeddedError, OSError) as exc:
            raise StartupError(
                f"cannot start embedded stores in {config.state_dir}: {exc}"
            ) from None
        if embedded.postgres is not None:
            pg_url = embedded.postgres.dsn
        if embedded.redis is not None:
            redis_url = embedded.redis.url
    try:
        pool = await create_pool(config.database, pg_url, f"netd-{os.getpid()}")
        try:
            cache = await connect_cache(config.redis, redis_url) if with_redis else None
        except StoreUnavailable:
            await pool.close()
            raise
    except StoreUnavailable as exc:
        if embedded is not None:
            await asyncio.to_thread(embedded.release)
        raise StartupError(str(exc)) from None
    return Stores(pool, cache, pg_url, redis_url, embedded)


async def close_stores(stores: Stores) -> None:
    try:
        await asyncio.wait_for(stores.pool.close(), 5.0)
    except TimeoutError:
        stores.pool.terminate()
    if stores.cache is not None:
        with contextlib.suppress(Exception):
            await stores.cache.close()
    if stores.embedded is not None:
        await asyncio.to_thread(stores.embedded.release)


async def ensure_schema(pool: asyncpg.Pool, apply: bool, create: bool = False) -> None:
    """Apply pending migrations, or with ``apply`` False refuse to run on an old schema.
    Without ``create`` (admin commands) a database with no netd schema at all is refused
    rather than given one. Raises StartupError."""
    migrations = migrate.available()
    async with pool.acquire() as conn:
        try:
            if not create and not await migrate.has_schema(conn):
                raise StartupError(
                    "the database has no netd schema yet: run `netd migrate` first "
                    "(or give the config of the instance you mean)"
                )
            ahead = await migrate.applied_newer(conn, migrations)
            if ahead:
                log.warning(
                    "the database schema is newer than this netd (a rolling upgrade?): "
                    "running on it; upgrade this node",
                    extra={"fields": {"newer_migrations": ahead, "version": __version__}},
                )
            if apply:
                done = await migrate.apply(conn, migrations, allow_newer=True)
                for mig in done:
                    log.info("migration applied", extra={"fields": {"migration": mig.filename}})
                return
            states = await migrate.status(conn, migrations, allow_newer=True)
        except migrate.MigrationError as exc:
            raise StartupError(str(exc)) from None
    pending = [s.migration.filename for s in states if s.applied_at is None]
    if pending:
        raise StartupError(
            f"database schema is behind ({', '.join(pending)} pending): "
            "run `netd migrate` or set database.migrate_on_start = true"
        )
