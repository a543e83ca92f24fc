"""PostgreSQL: the asyncpg pool every daemon shares."""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from daemons.core.config import DatabaseConfig

# A connection of its own or one borrowed from the pool: both run queries alike.
Conn = asyncpg.Connection | PoolConnectionProxy


class StoreUnavailable(Exception):
    """A store could not be reached within its timeout."""


def redact(url: str) -> str:
    """Return ``url`` with any password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


async def create_pool(cfg: DatabaseConfig, dsn: str, application: str) -> asyncpg.Pool:
    """Open the pool; raise StoreUnavailable (with the URL redacted) if PostgreSQL is not there."""
    password = cfg.password.get_secret_value() if cfg.password else None
    try:
        return await asyncpg.create_pool(
            dsn,
            password=password,
            min_size=cfg.pool_min_size,
            max_size=cfg.pool_max_size,
            timeout=cfg.connect_timeout,
            command_timeout=cfg.command_timeout,
            server_settings={"application_name": application},
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact(dsn)}: {exc}") from None


async def create_partition(pool: asyncpg.Pool | Conn, ddl: str) -> None:
    """Run a CREATE TABLE IF NOT EXISTS ... PARTITION OF. IF NOT EXISTS does not hold
    against a concurrent creator: the loser gets DuplicateTableError (or a unique violation
    on pg_type), which means the partition is there. Seen under load: a worker's first two
    batches both creating this month's partition, the second taken for an outage and
    spooled, and the worker then spooling and replaying every record."""
    with contextlib.suppress(asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
        await pool.execute(ddl)
