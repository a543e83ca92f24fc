"""The worker processes of ``radius.workers = N``: N-1 children (``netd radius-worker``)
sharing the instance's UDP ports through SO_REUSEPORT.

The first process (the instance) starts them after binding, sends them SIGTERM when it
drains (each drains its own requests), waits for them, and kills any left at close. A
worker dies with its parent (PR_SET_PDEATHSIG): see :func:`die_with_parent`.
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

log = logging.getLogger("netd.radius")


class Workers:
    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, count: int) -> None:
        args = [sys.executable, "-m", "daemons.cli"]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        for _ in range(count):
            self.procs.append(
                subprocess.Popen([*args, "radius-worker", "--parent", str(os.getpid())])
            )
        log.info("radius workers started", extra={"fields": {"pids": [w.pid for w in self.procs]}})

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


def die_with_parent(parent: int) -> None:
    """In a worker: SIGTERM when the parent dies (PR_SET_PDEATHSIG), or now if it already
    has."""
    import ctypes  # noqa: PLC0415 - Linux only, workers only

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
