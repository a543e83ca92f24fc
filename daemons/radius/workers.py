"""The worker processes of ``radius.workers = N``: N-1 children (``netd radius-worker``)
sharing the instance's UDP ports through SO_REUSEPORT.

The first process (the instance) starts them after binding and reports ready only once
each has bound too (:meth:`Workers.ready`: a byte on a pipe per worker), so nothing begins
on the port while a worker joining it would move requests from one process to the other.
It sends them SIGTERM when it drains (each drains its own requests), waits for them, and
kills any left at close. A worker dies with its parent (PR_SET_PDEATHSIG): see
:func:`die_with_parent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from daemons.core.stores import StartupError

log = logging.getLogger("netd.radius")
# A worker imports netd and binds in about a second; one not bound in this long is stuck.
READY_TIMEOUT = 60.0


class Workers:
    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self.procs: list[subprocess.Popen[bytes]] = []
        self._ready: list[int] = []  # per worker, the read end of its ready pipe

    def spawn(self, count: int) -> None:
        args = [sys.executable, "-m", "daemons.cli"]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        parent = str(os.getpid())
        for _ in range(count):
            read, write = os.pipe()
            try:
                argv = [*args, "radius-worker", "--parent", parent, "--ready-fd", str(write)]
                self.procs.append(subprocess.Popen(argv, pass_fds=(write,)))
            except OSError:
                os.close(read)
                raise
            finally:
                os.close(write)  # the worker's copy stays: its exit is our end of file
            self._ready.append(read)
        log.info("radius workers started", extra={"fields": {"pids": [w.pid for w in self.procs]}})

    async def ready(self, limit: float = READY_TIMEOUT) -> None:
        """Until every worker has bound its sockets (a byte on its pipe). Raises
        StartupError, in one line, when one exits first or ``limit`` seconds pass."""
        loop = asyncio.get_running_loop()
        waits: list[tuple[subprocess.Popen[bytes], int, asyncio.Future[bytes]]] = []
        for proc, fd in zip(self.procs, self._ready, strict=True):
            got: asyncio.Future[bytes] = loop.create_future()
            loop.add_reader(fd, _read_one, fd, got)
            waits.append((proc, fd, got))
        try:
            async with asyncio.timeout(limit):
                for proc, _, got in waits:
                    if await got != b"1":
                        status = await asyncio.to_thread(proc.wait, limit)
                        raise StartupError(
                            f"radius worker {proc.pid} exited during start-up (status {status}); "
                            "its log lines above say why"
                        )
        except TimeoutError:
            raise StartupError(
                f"radius workers not bound within {limit:g} s of their start"
            ) from None
        finally:
            for _, fd, _ in waits:
                loop.remove_reader(fd)
                os.close(fd)
            self._ready = []
        log.info("radius workers bound", extra={"fields": {"pids": [w.pid for w in self.procs]}})

    def stop(self) -> None:
        """Ask each to drain (SIGTERM)."""
        for worker in self.procs:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)

    async def wait(self) -> None:
        for worker in self.procs:
            await asyncio.to_thread(worker.wait)

    def kill(self) -> None:
        """Those still running (a drain past its deadline)."""
        for worker in self.procs:
            if worker.poll() is None:
                worker.kill()


def _read_one(fd: int, got: asyncio.Future[bytes]) -> None:
    if not got.done():
        try:
            got.set_result(os.read(fd, 1))
        except OSError:
            got.set_result(b"")


def report_bound(fd: int) -> None:
    """In a worker, once its sockets are bound: the byte :meth:`Workers.ready` waits for."""
    with contextlib.suppress(OSError):  # the parent gone: PR_SET_PDEATHSIG stops us anyway
        os.write(fd, b"1")
    os.close(fd)


def die_with_parent(parent: int) -> None:
    """In a worker: SIGTERM when the parent dies (PR_SET_PDEATHSIG), or now if it already
    has."""
    import ctypes  # noqa: PLC0415 - Linux only, workers only

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
