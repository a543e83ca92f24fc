"""sd_notify over a real Unix datagram socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from daemons.core.systemd import Notifier


def test_notify_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        srv.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        assert n.enabled
        assert n.notify("READY=1", "STATUS=serving")
        assert srv.recv(256) == b"READY=1\nSTATUS=serving"
        n.close()


def test_notify_abstract_socket() -> None:
    name = f"netd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + name)
        srv.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.notify("WATCHDOG=1")
        assert srv.recv(64) == b"WATCHDOG=1"
        n.close()


def test_disabled_without_socket() -> None:
    n = Notifier({})
    assert not n.enabled and not n.notify("READY=1") and n.watchdog_interval is None


def test_watchdog_interval_is_half_the_timeout_and_for_us_only() -> None:
    assert Notifier({"WATCHDOG_USEC": "10000000"}).watchdog_interval == 5.0
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_interval == 1.0
    other = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}
    assert Notifier(other).watchdog_interval is None
