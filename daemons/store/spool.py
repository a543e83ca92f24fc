"""A local, fsynced, append-only spool for records that cannot reach PostgreSQL yet.

Segments ``NNNNNNNNNNNN.seg`` in one directory, oldest first. Each record is a length, a
msgpack payload and a CRC-32. ``append`` returns only after the data and (for a new
segment) the directory entry are on disk, so what it accepted survives ``kill -9`` and
power loss. A torn tail (a write cut short before its fsync returned, so never accepted)
is ignored on reading. Blocking: call from a worker thread.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemons.store.cache import pack, unpack

_HEADER = struct.Struct("!I")
MAX_RECORD = 1 << 20
SEGMENT_BYTES = 16 << 20


class SpoolError(Exception):
    """The spool cannot be written (disk full, permissions)."""


class Spool:
    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = directory
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._active: Path | None = None
        self._size = 0

    def _segments(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if p.suffix == ".seg")

    def pending_segments(self) -> int:
        with self._lock:
            return len(self._segments())

    def _open_new(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = self._segments()
        number = int(existing[-1].stem) + 1 if existing else 1
        path = self.dir / f"{number:012d}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name must survive a crash too
        finally:
            os.close(dir_fd)
        self._active, self._size = path, 0

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._active, self._size = None, None, 0

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        """Write and fsync ``records``. Raises SpoolError; then none of them is accepted."""
        data = bytearray()
        for rec in records:
            payload = pack(rec)
            if len(payload) > MAX_RECORD:
                raise SpoolError("record too large for the spool")
            data += _HEADER.pack(len(payload)) + payload + _HEADER.pack(zlib.crc32(payload))
        with self._lock:
            try:
                if self._fd is None or self._size >= self.segment_bytes:
                    self._close_active()
                    self._open_new()
                assert self._fd is not None
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                os.fsync(self._fd)
                self._size += len(data)
            except OSError as exc:
                self._close_active()  # a partial write stays a torn, unaccepted tail
                raise SpoolError(f"spool write failed: {exc}") from None

    def oldest(self) -> tuple[Path, list[dict[str, Any]]] | None:
        """The oldest segment and its records (sealing it if it is the one being written)."""
        with self._lock:
            segments = self._segments()
            if not segments:
                return None
            if segments[0] == self._active:
                self._close_active()
            path = segments[0]
        return path, read_segment(path)

    def remove(self, path: Path) -> None:
        """Forget a segment once its records are durable elsewhere."""
        with self._lock:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._close_active()


def read_segment(path: Path) -> list[dict[str, Any]]:
    """Every whole record of a segment, stopping at a torn or corrupt tail."""
    data = path.read_bytes()
    out: list[dict[str, Any]] = []
    pos = 0
    while pos + 4 <= len(data):
        (length,) = _HEADER.unpack_from(data, pos)
        end = pos + 4 + length + 4
        if length > MAX_RECORD or end > len(data):
            break
        payload = data[pos + 4 : pos + 4 + length]
        (crc,) = _HEADER.unpack_from(data, pos + 4 + length)
        if zlib.crc32(payload) != crc:
            break
        out.append(unpack(payload))
        pos = end
    return out
