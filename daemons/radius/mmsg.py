"""Batched replies (issue 30): the datagrams one loop iteration sends, in one sendmmsg(2).

:class:`BatchSender` is the UDP listeners' :class:`~daemons.radius.shared.Sender`: its
``sendto`` queues the reply, and a callback at the end of the loop iteration hands the
queue to the kernel in one system call (``daemons.radius._mmsg``, a small optional C
extension). What the kernel did not take (a full socket buffer, an unreachable
destination) goes through the event loop's transport one at a time, as without the
extension, so its buffering and ``error_received`` still apply.

Without the extension (no compiler at install time), or with ``radius.send_batch = false``
(tests/radius/test_interop_pure_send.py keeps the pure path tested against real peers),
the transport itself is the Sender.
"""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType
from typing import Any

from daemons.radius.shared import Sender

_compiled: ModuleType | None
try:
    _compiled = importlib.import_module("daemons.radius._mmsg")
except ImportError:  # built without a compiler: the pure path
    _compiled = None


def compiled() -> ModuleType | None:
    """The extension, or None when it was not built."""
    return _compiled


class BatchSender:
    """Queues replies and sends them at the end of the loop iteration, all in one call."""

    def __init__(self, transport: asyncio.DatagramTransport, ext: ModuleType) -> None:
        self.transport = transport
        self._send = ext.send
        sock = transport.get_extra_info("socket")
        self._fd: int = sock.fileno()
        self._queue: list[tuple[bytes, Any]] = []
        self._loop = asyncio.get_running_loop()
        self.calls = 0  # system calls made (tests, and the batch size it shows)

    def sendto(self, data: bytes, addr: Any, /) -> None:
        if not self._queue:
            self._loop.call_soon(self.flush)
        self._queue.append((data, addr))

    def flush(self) -> None:
        queue, self._queue = self._queue, []
        if not queue:
            return
        if self.transport.is_closing():
            sent = 0
        else:
            try:
                self.calls += 1
                sent = self._send(self._fd, queue)
            except (OSError, ValueError, TypeError):
                sent = 0  # the transport sends them and reports what fails
        for data, addr in queue[sent:]:
            self.transport.sendto(data, addr)


def sender_for(transport: asyncio.DatagramTransport, batch: bool = True) -> Sender:
    """The Sender of a UDP socket: batched when asked and the extension is there, else the
    transport."""
    ext = compiled()
    if not batch or ext is None or transport.get_extra_info("socket") is None:
        return transport
    return BatchSender(transport, ext)
