"""``netd secrets rotate``: every sealed value re-sealed under a new key, daemons running.

The key kept in the state directory (``secrets.key``) is rotated in three steps, each one
safe to interrupt and run again (a second run resumes where the first stopped):

1. the next key is written beside it (``secrets.key.next``, 0600, fsynced), or the one a
   run before left there is taken up again. From then on every ``Sealer`` made from the
   state directory (each daemon, each admin command) seals under the next key and opens
   under both (``core/secrets.py``);
2. every sealed column is read in batches by primary key; a value already under the next
   key is skipped, any other is opened and sealed again and written back only if the row
   still holds what was read (a concurrent change wins). Passes repeat until one finds
   nothing left under the old key (a daemon that sealed just before it saw the next key).
   Subscribers re-sealed have their cached records dropped from Redis, so nothing read
   later comes from a copy under the old key;
3. the next key replaces ``secrets.key`` (written, fsynced, renamed) and the next-key file
   is removed: the old key is no longer on disk. Running daemons keep it in memory until
   they stop (a value a cache held); a daemon started later never has it.

A key given in the config (``secrets.key`` or ``secrets.key_file``) is the operator's to
rotate: the command refuses it in one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from daemons.core import output
from daemons.core.config import Loaded
from daemons.core.lifecycle import StartupError, close_stores, ensure_schema, open_stores
from daemons.core.secrets import (
    KEY_BYTES,
    KEY_FILE,
    NEXT_KEY_FILE,
    Sealer,
    SealError,
    parse_key,
)
from daemons.store import radius as radius_store
from daemons.store.cache import Cache

BATCH = 500
MAX_PASSES = 5


@dataclass(frozen=True)
class Sealed:
    """One sealed column: its table, the row's key, and the context it is sealed with."""

    table: str
    key: str
    column: str
    names: str  # the columns the context is made of, selected beside the key
    context: Callable[[asyncpg.Record], bytes]


COLUMNS = (
    Sealed("nas_clients", "id", "secret_enc", "name", lambda r: f"nas:{r['name']}".encode()),
    Sealed(
        "subscribers",
        "id",
        "password_enc",
        "username",
        lambda r: f"sub:{r['username']}:pw".encode(),
    ),
    Sealed(
        "subscribers",
        "id",
        "nt_hash_enc",
        "username",
        lambda r: f"sub:{r['username']}:nt".encode(),
    ),
    Sealed(
        "cpe_credentials",
        "device_id",
        "password_enc",
        "device_id",
        lambda r: f"cpe:{r['device_id']}".encode(),
    ),
    Sealed(
        "snmp_targets", "name", "credentials_enc", "name", lambda r: f"snmp:{r['name']}".encode()
    ),
    Sealed(
        "snmp_trap_users",
        "name",
        "credentials_enc",
        "name",
        lambda r: f"snmp-trap-user:{r['name']}".encode(),
    ),
    Sealed("devices", "name", "credentials_enc", "name", lambda r: f"device:{r['name']}".encode()),
    Sealed(
        "device_backups", "id", "config_enc", "device", lambda r: f"backup:{r['device']}".encode()
    ),
)


class RotateError(Exception):
    """The rotation cannot start or finish; the message says why and what to do."""


@dataclass
class Tally:
    resealed: int = 0
    already: int = 0
    unreadable: int = 0


def _write_key(path: Path, key: bytes) -> None:
    """Write a key file (0600) and make it durable, through a temporary file and rename."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def begin(state_dir: Path) -> tuple[Sealer, bool]:
    """Step 1: the next key, new or left by an interrupted run; the sealer holding both
    (sealing under the next) and whether this run resumes. Raises RotateError."""
    current = state_dir / KEY_FILE
    nxt = state_dir / NEXT_KEY_FILE
    try:
        key = parse_key(current.read_text())
    except FileNotFoundError:
        raise RotateError(
            f"no secrets key in state directory {state_dir} ({KEY_FILE}): nothing to rotate"
        ) from None
    except (OSError, ValueError) as exc:
        raise RotateError(f"{current}: {exc}") from None
    resumed = nxt.exists()
    if not resumed:
        _write_key(nxt, os.urandom(KEY_BYTES))
    try:
        sealer = Sealer(key, state_dir)
    except ValueError as exc:
        raise RotateError(f"{nxt}: {exc}") from None
    return sealer, resumed


async def reseal_column(
    pool: asyncpg.Pool, cache: Cache | None, sealer: Sealer, col: Sealed
) -> Tally:
    """Step 2 for one column, one pass."""
    tally = Tally()
    after: object = None
    while True:
        rows = await pool.fetch(
            f"SELECT {col.key} AS k, {col.names}, {col.column} AS enc FROM {col.table} "
            f"WHERE {col.column} IS NOT NULL AND ($1::text IS NULL OR {col.key}::text > $1) "
            f"ORDER BY {col.key}::text LIMIT {BATCH}",
            None if after is None else str(after),
        )
        if not rows:
            return tally
        after = rows[-1]["k"]
        touched: list[str] = []
        for row in rows:
            enc, context = bytes(row["enc"]), col.context(row)
            if sealer.opens_with_sealing_key(enc, context):
                tally.already += 1
                continue
            try:
                plain = sealer.open(enc, context)
            except SealError:
                tally.unreadable += 1
                continue
            status = await pool.execute(
                f"UPDATE {col.table} SET {col.column} = $1 WHERE {col.key} = $2 "
                f"AND {col.column} = $3",
                sealer.seal(plain, context),
                row["k"],
                enc,
            )
            if status.endswith(" 1"):
                tally.resealed += 1
                if col.table == "subscribers":
                    touched.append(str(row["username"]))
        if touched and cache is not None:
            await radius_store.uncache_subscribers(cache, touched)


def finish(state_dir: Path, sealer: Sealer) -> None:
    """Step 3: the next key becomes the key; the old one is gone from disk."""
    _write_key(state_dir / KEY_FILE, sealer.sealing_key)
    (state_dir / NEXT_KEY_FILE).unlink(missing_ok=True)
    _sync_dir(state_dir)


async def rotate(loaded: Loaded, say: Callable[[str], None]) -> int:
    """The command: 0 when every value is under the new key and the old key is removed.
    Raises RotateError, StartupError."""
    config = loaded.config
    if config.secrets.key is not None:
        raise RotateError(
            "the secrets key is given in the config (secrets.key or secrets.key_file): "
            "rotate it there (re-sealing needs both keys); `netd secrets rotate` rotates "
            "the key kept in the state directory"
        )
    state_dir = config.state_dir
    sealer, resumed = begin(state_dir)
    say(
        f"{'resuming the' if resumed else 'started a'} rotation: new key in "
        f"{state_dir / NEXT_KEY_FILE}; daemons seal under it from now on"
    )
    stores = await open_stores(config, with_redis=True)
    try:
        await ensure_schema(stores.pool, config.database.migrate_on_start)
        total: dict[str, Tally] = {}
        for number in range(1, MAX_PASSES + 1):
            moved = 0
            for col in COLUMNS:
                tally = await reseal_column(stores.pool, stores.cache, sealer, col)
                name = f"{col.table}.{col.column}"
                seen = total.setdefault(name, Tally())
                seen.resealed += tally.resealed
                seen.unreadable = tally.unreadable
                seen.already = tally.already
                moved += tally.resealed
            if moved == 0:
                break
            say(f"pass {number}: {moved} values re-sealed")
        else:
            raise RotateError(
                f"values were still sealed under the old key after {MAX_PASSES} passes "
                "(something keeps sealing under it); run the command again"
            )
        # the subscribers' cached records once more: a reader that took a row before its
        # re-seal may have cached it since
        users = [r["username"] for r in await stores.pool.fetch("SELECT username FROM subscribers")]
        cache = stores.cache
        for i in range(0, len(users) if cache is not None else 0, BATCH):
            await radius_store.uncache_subscribers(cache, users[i : i + BATCH])  # type: ignore[arg-type]
    finally:
        await close_stores(stores)
    unreadable = sum(t.unreadable for t in total.values())
    finish(state_dir, sealer)
    for name, t in total.items():
        if t.resealed or t.already or t.unreadable:
            say(f"{name}: {t.resealed} re-sealed, {t.unreadable} unreadable under either key")
    left = f"; {unreadable} opened under neither key, left as they were" if unreadable else ""
    say(
        f"rotated: every readable sealed value is under the new key, {state_dir / KEY_FILE}; "
        "the old key is removed (backups made before hold it: keep them as you keep a key)" + left
    )
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sec = sub.add_parser("secrets", help="the secrets key: rotate")
    ss = sec.add_subparsers(dest="action", required=True, metavar="ACTION")
    ss.add_parser(
        "rotate",
        help="re-seal every sealed value under a new key while the daemons run, then "
        "remove the old key (resumes an interrupted rotation)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    del args  # one action
    try:
        return await rotate(loaded, lambda line: print(line, file=sys.stdout, flush=True))
    except RotateError as exc:
        return output.fail(str(exc), 2)
    except StartupError as exc:
        return output.fail(str(exc), exc.status)
