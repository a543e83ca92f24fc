"""The shipped migration files are well formed, and the socket path fallback works."""

from __future__ import annotations

from pathlib import Path

from daemons.store import migrate
from daemons.store.embedded import socket_dir


def test_migrations_are_numbered_without_gaps() -> None:
    migs = migrate.available()
    assert migs, "no migrations shipped"
    assert [m.version for m in migs] == list(range(1, len(migs) + 1))
    for m in migs:
        assert m.sql.strip() and len(m.checksum) == 64


def test_socket_dir_falls_back_when_path_is_too_long() -> None:
    short = Path("/var/lib/netd")
    assert socket_dir(short) == short / "run"
    deep = Path("/tmp/" + "x" * 120)
    fallback = socket_dir(deep)
    assert str(fallback).startswith("/tmp/netd-") and len(str(fallback)) < 40
    assert socket_dir(deep) == fallback  # stable for the same state dir
