"""`make run` on a terminal: Ctrl-C stops netd cleanly and make exits 0 (issue 19).

Before, Ctrl-C reached make as well as netd: netd drained and exited 0, but make, itself
interrupted, reported "Interrupt" and exited 2. Now `netd up --take-terminal` makes netd
the terminal's foreground process group, so the Ctrl-C typed here (a 0x03 on a real
pseudo-terminal, turned into SIGINT by the line discipline) reaches netd alone.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import time
from pathlib import Path

from tests.support import config_with_free_ports

REPO = Path(__file__).resolve().parents[2]


def read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_ctrl_c_stops_make_run_with_status_0(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make, "make is missing: apt-get install make"
    config = tmp_path / "dev.toml"
    config.write_text(config_with_free_ports("state"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETD_", "MAKE"))}
    env["TERM"] = "dumb"
    pid, fd = pty.fork()
    if pid == 0:  # the child: make, on the pseudo-terminal as its controlling terminal
        os.chdir(REPO)
        os.execvpe(make, [make, "--no-print-directory", "run", f"DEV_CONFIG={config}"], env)
    try:
        out = read_until(fd, b"netd.lifecycle: ready", 300)  # a first make run installs
        assert b"netd.lifecycle: ready" in out, out.decode(errors="replace")
        time.sleep(0.5)
        os.write(fd, b"\x03")  # Ctrl-C
        out += read_until(fd, b"\x00never", 60)
        _, status = os.waitpid(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        os.close(fd)
    text = out.decode(errors="replace")
    assert os.WIFEXITED(status), (status, text)
    assert os.WEXITSTATUS(status) == 0, text
    assert "stopped" in text and "Interrupt" not in text, text
