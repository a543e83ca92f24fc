"""`Workers.ready` (radius.workers = N): the instance waits for each worker's byte on its
pipe, and a worker that exits first, or never binds, stops the start-up in one line. The
workers here are stand-ins (small scripts in place of `netd radius-worker`)."""

from __future__ import annotations

import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from daemons.core.stores import StartupError
from daemons.radius import workers

BOUND = """
import os, sys
fd = int(sys.argv[sys.argv.index("--ready-fd") + 1])
os.write(fd, b"1")
"""
EXITS = "import sys; sys.exit(3)"
HANGS = "import time; time.sleep(30)"


@asynccontextmanager
async def stand_ins(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, body: str, count: int
) -> AsyncIterator[workers.Workers]:
    """``count`` workers whose `sys.executable -m daemons.cli radius-worker ...` runs
    ``body`` instead; killed and reaped afterwards."""
    script = tmp / "python"
    script.write_text(f"#!{sys.executable}\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(workers.sys, "executable", str(script))
    pool = workers.Workers(None)
    pool.spawn(count)
    try:
        yield pool
    finally:
        pool.kill()
        await pool.wait()


async def test_ready_once_each_worker_says_it_is_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stand_ins(tmp_path, monkeypatch, BOUND, 2) as pool:
        await pool.ready(10)


async def test_a_worker_that_exits_first_stops_the_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stand_ins(tmp_path, monkeypatch, EXITS, 1) as pool:
        with pytest.raises(StartupError) as err:
            await pool.ready(10)
        pid = pool.procs[0].pid
    assert str(err.value).startswith(f"radius worker {pid} exited during start-up (status 3)")
    assert "\n" not in str(err.value)


async def test_a_worker_never_bound_stops_the_start_up_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stand_ins(tmp_path, monkeypatch, HANGS, 1) as pool:
        with pytest.raises(StartupError, match=r"not bound within 0\.5 s"):
            await pool.ready(0.5)
        assert pool._ready == []  # its pipe closed, not left to a later start
