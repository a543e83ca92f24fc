"""PostgreSQL: the asyncpg pool every daemon shares."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
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


async def create_pool(
    cfg: DatabaseConfig,
    dsn: str,
    application: str,
    reset: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """Open the pool; raise StoreUnavailable (with the URL redacted) if PostgreSQL is not there.

    ``reset`` replaces asyncpg's reset query on release (an open transaction is rolled back
    either way): only for a pool whose users keep no session state. ``settings``: more
    server settings of its connections."""
    password = cfg.password.get_secret_value() if cfg.password else None
    try:
        return await asyncpg.create_pool(
            dsn,
            password=password,
            min_size=cfg.pool_min_size,
            max_size=cfg.pool_max_size,
            timeout=cfg.connect_timeout,
            command_timeout=cfg.command_timeout,
            server_settings={"application_name": application, **(settings or {})},
            reset=reset,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact(dsn)}: {exc}") from None


async def create_partition(
    pool: asyncpg.Pool, parent: str, name: str, column: str, low: str, high: str
) -> None:
    """Make ``name``, the partition of ``parent`` for ``column`` in [low, high).

    IF NOT EXISTS does not hold against a concurrent creator: the loser gets
    DuplicateTableError (or a unique violation on pg_type), which means the partition is
    there. Seen under load: a worker's first two batches both creating this month's
    partition, the second taken for an outage and spooled, and the worker then spooling and
    replaying every record.

    Rows of that range already in the parent's default partition (``<parent>_default``:
    written before the partition existed, e.g. a session closed by the API on a fresh
    install before the first accounting commit) make PostgreSQL refuse the partition
    (CheckViolationError), every time after. Then they are moved into it, in one
    transaction with its creation: seen as every later accounting record quarantined."""
    bounds = f"FOR VALUES FROM ('{low}') TO ('{high}')"
    with contextlib.suppress(asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
        try:
            await pool.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {parent} {bounds}")
        except asyncpg.CheckViolationError:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                )
                await conn.execute(
                    f"WITH moved AS (DELETE FROM {parent}_default WHERE {column} >= '{low}' "
                    f"AND {column} < '{high}' RETURNING *) INSERT INTO {name} SELECT * FROM moved"
                )
                await conn.execute(f"ALTER TABLE {parent} ATTACH PARTITION {name} {bounds}")
