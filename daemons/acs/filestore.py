"""The ACS file store's verbs: firmware images and configuration files on disk under
``root``, catalogued in the ``cpe_files`` table.

One file per distinct content, named by its SHA-256 (``root/<sha256>``). A name therefore
always points at complete content that matches its row: an upload is written to a temporary
file in ``root``, fsynced, renamed onto its blob and only then recorded; a blob no name
refers to any more is removed. Mutations serialise on a PostgreSQL advisory lock, so
several processes (the ACS, the API) may share one root; readers take no lock (a file being
replaced or deleted stays readable through the handle already open). Serving files over
HTTP is :mod:`daemons.acs.fileserve`; :mod:`daemons.acs.files` re-exports both.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg

from daemons.core.ratelog import RateLimitedLog
from daemons.store.pg import Conn

log = logging.getLogger("netd.acs.files")
ratelog = RateLimitedLog(log)  # for what requests from the network can trigger

FIRMWARE = "1 Firmware Upgrade Image"
WEB_CONTENT = "2 Web Content"
CONFIG = "3 Vendor Configuration File"
CHUNK = 256 * 1024  # bytes read from disk and sent per step

# The name in the URL and the catalogue: no leading dot or dash, so never ".", "..", a
# hidden file or one of our temporary files. The migration has the same CHECK.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# TR-069 FileType: "<digit(s)> <description>" or "X <OUI> <vendor-specific>", string(64).
FILE_TYPE = re.compile(r"(?:[1-9][0-9]? |X [0-9A-F]{6} )[^\x00-\x1f\x7f]+")
_BLOB = re.compile(r"[0-9a-f]{64}")
_TMP = ".tmp-"
_LOCK_KEY = 0x6E657466  # "netf": the advisory lock that serialises file store mutations
STORE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

Data = bytes | bytearray | memoryview | AsyncIterable[bytes]


class FileError(ValueError):
    """A file refused: bad name, FileType or metadata, or over the size limit."""


def valid_name(name: str) -> bool:
    """Whether ``name`` may name a file (and so be a path component under the root)."""
    return SAFE_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class FileInfo:
    """One catalogue row."""

    name: str
    file_type: str
    oui: str
    product_class: str
    version: str
    size: int
    sha256: str
    created_at: datetime
    created_by: str

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "file_type": self.file_type,
            "oui": self.oui,
            "product_class": self.product_class,
            "version": self.version,
            "size": self.size,
            "sha256": self.sha256,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> FileInfo:
        return cls(
            name=row["name"],
            file_type=row["file_type"],
            oui=row["oui"],
            product_class=row["product_class"],
            version=row["version"],
            size=row["size"],
            sha256=row["sha256"],
            created_at=row["created_at"],
            created_by=row["created_by"],
        )


_COLUMNS = "name, file_type, oui, product_class, version, size, sha256, created_at, created_by"


class FileStore:
    """Files on disk under ``root`` catalogued in ``cpe_files``. ``max_size`` (bytes) caps
    an upload; None for no cap."""

    def __init__(self, root: Path, max_size: int | None = None) -> None:
        self.root = Path(root)
        self.max_size = max_size

    def blob(self, sha256: str) -> Path:
        """Where the content with this digest lives."""
        if _BLOB.fullmatch(sha256) is None:
            raise FileError("not a SHA-256 hex digest")
        return self.root / sha256

    # --- writers (serialised by the advisory lock) ---

    async def put(
        self,
        pool: asyncpg.Pool,
        name: str,
        data: Data,
        *,
        file_type: str,
        oui: str = "",
        product_class: str = "",
        version: str = "",
        created_by: str = "",
    ) -> FileInfo:
        """Store ``data`` (bytes, or an async iterable of chunks, e.g. a request body) as
        ``name``, replacing any file of that name. Raises FileError for a bad name,
        FileType or metadata, or content over ``max_size``; nothing changes then."""
        _check(name, file_type, oui=oui, product_class=product_class, version=version)
        if len(created_by) > 128 or _CONTROL.search(created_by):
            raise FileError("created_by: at most 128 printable characters")
        tmp: Path | None
        tmp, size, digest = await self._spool(data)
        try:
            async with _locked(pool) as conn:
                try:
                    await asyncio.to_thread(self._install, tmp, digest)
                    tmp = None
                    async with conn.transaction():
                        old = await conn.fetchval(
                            "SELECT sha256 FROM cpe_files WHERE name = $1 FOR UPDATE", name
                        )
                        row = await conn.fetchrow(
                            "INSERT INTO cpe_files (name, file_type, oui, product_class, "
                            "version, size, sha256, created_by) "
                            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                            "ON CONFLICT (name) DO UPDATE SET file_type = EXCLUDED.file_type, "
                            "oui = EXCLUDED.oui, product_class = EXCLUDED.product_class, "
                            "version = EXCLUDED.version, size = EXCLUDED.size, "
                            "sha256 = EXCLUDED.sha256, created_by = EXCLUDED.created_by, "
                            f"created_at = now() RETURNING {_COLUMNS}",
                            name,
                            file_type,
                            oui,
                            product_class,
                            version,
                            size,
                            digest,
                            created_by,
                        )
                except BaseException:
                    if tmp is None:  # installed but maybe not recorded: drop it if orphaned
                        with contextlib.suppress(*STORE_ERRORS):
                            await self._drop_blob(conn, digest)
                    raise
                if old is not None and old != digest:
                    await self._drop_blob(conn, old)
        finally:
            if tmp is not None:
                _discard(tmp)
        assert row is not None
        return FileInfo.from_row(row)

    async def delete(self, pool: asyncpg.Pool, name: str) -> bool:
        """Remove ``name``; whether it was there."""
        if not valid_name(name):
            return False
        async with _locked(pool) as conn:
            digest = await conn.fetchval(
                "DELETE FROM cpe_files WHERE name = $1 RETURNING sha256", name
            )
            if digest is None:
                return False
            await self._drop_blob(conn, digest)
        return True

    async def sweep(self, pool: asyncpg.Pool, grace: float = 3600.0) -> int:
        """Remove what a crash left behind: blobs no name refers to, and temporary files
        older than ``grace`` seconds (younger ones may be uploads in progress). How many."""
        async with _locked(pool) as conn:
            rows = await conn.fetch("SELECT DISTINCT sha256 FROM cpe_files")
            keep = {str(r["sha256"]) for r in rows}
            return await asyncio.to_thread(self._sweep, keep, time.time() - grace)

    # --- readers ---

    async def get(self, pool: asyncpg.Pool, name: str) -> FileInfo | None:
        if not valid_name(name):
            return None
        row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM cpe_files WHERE name = $1", name)
        return FileInfo.from_row(row) if row is not None else None

    async def list(
        self, pool: asyncpg.Pool, after: str = "", limit: int = 100
    ) -> builtins.list[FileInfo]:
        """Files by name, the first ``limit`` (1..1000) after the name ``after``."""
        rows = await pool.fetch(
            f"SELECT {_COLUMNS} FROM cpe_files WHERE name > $1 ORDER BY name LIMIT $2",
            after,
            max(1, min(limit, 1000)),
        )
        return [FileInfo.from_row(r) for r in rows]

    async def find(
        self,
        pool: asyncpg.Pool,
        version: str,
        *,
        file_type: str = FIRMWARE,
        oui: str = "",
        product_class: str = "",
    ) -> FileInfo | None:
        """The file of this type and version for a device: one made for its OUI and
        product class first, then for any ('' in the row); the newest among equals."""
        row = await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM cpe_files WHERE file_type = $1 AND version = $2 "
            "AND oui IN ($3, '') AND product_class IN ($4, '') "
            "ORDER BY (oui <> '') DESC, (product_class <> '') DESC, created_at DESC, name "
            "LIMIT 1",
            file_type,
            version,
            oui,
            product_class,
        )
        return FileInfo.from_row(row) if row is not None else None

    async def open(self, pool: asyncpg.Pool, name: str) -> tuple[FileInfo, BinaryIO] | None:
        """The row and an open binary handle on its content, or None if there is no such
        file. The caller closes the handle."""
        for _ in range(2):  # a replace or delete may land between the read and the open
            info = await self.get(pool, name)
            if info is None:
                return None
            try:
                fh, real = await asyncio.to_thread(_open, self.blob(info.sha256))
            except FileNotFoundError:
                continue
            if real != info.size:
                fh.close()
                ratelog.log(
                    logging.ERROR,
                    f"files-size-{name}",
                    "file store content does not match its catalogue",
                    file=name,
                    size=info.size,
                    on_disk=real,
                )
                return None
            return info, fh
        ratelog.log(logging.ERROR, f"files-gone-{name}", "file store content missing", file=name)
        return None

    # --- disk (in worker threads) ---

    async def _spool(self, data: Data) -> tuple[Path, int, str]:
        """``data`` in a new temporary file in the root, fsynced: (path, size, sha256)."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        fd, path = await asyncio.to_thread(tempfile.mkstemp, prefix=_TMP, dir=self.root)
        digest = hashlib.sha256()
        size = 0
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                view = memoryview(data).cast("B")
                size = view.nbytes
                self._check_size(size)
                await asyncio.to_thread(_write, fd, digest, view)
            else:
                buf = bytearray()
                async for chunk in data:
                    size += len(chunk)
                    self._check_size(size)
                    buf += chunk
                    if len(buf) >= CHUNK:
                        out, buf = buf, bytearray()
                        await asyncio.to_thread(_write, fd, digest, out)
                if buf:
                    await asyncio.to_thread(_write, fd, digest, buf)
            await asyncio.to_thread(_seal, fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)  # may already be closed by _seal
            _discard(path)  # inline: this runs on cancellation too
            raise
        return Path(path), size, digest.hexdigest()

    def _check_size(self, size: int) -> None:
        if self.max_size is not None and size > self.max_size:
            raise FileError(f"file over {self.max_size} bytes")

    def _install(self, tmp: Path, digest: str) -> None:
        os.replace(tmp, self.blob(digest))
        _fsync_dir(self.root)

    async def _drop_blob(self, conn: Conn, digest: str) -> None:
        """Unlink the blob if no name refers to it. Call holding the lock."""
        used = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM cpe_files WHERE sha256 = $1)", digest
        )
        if not used:
            await asyncio.to_thread(self.blob(digest).unlink, missing_ok=True)

    def _sweep(self, keep: set[str], older: float) -> int:
        removed = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    stale_tmp = entry.name.startswith(_TMP) and entry.stat().st_mtime < older
                    orphan = _BLOB.fullmatch(entry.name) is not None and entry.name not in keep
                    if (stale_tmp or orphan) and entry.is_file(follow_symlinks=False):
                        os.unlink(entry.path)
                        removed += 1
        return removed


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check(name: str, file_type: str, **fields: str) -> None:
    if not valid_name(name):
        raise FileError("name: 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -")
    if len(file_type) > 64 or FILE_TYPE.fullmatch(file_type) is None:
        raise FileError(
            "file_type: a TR-069 FileType such as '1 Firmware Upgrade Image' "
            "or 'X 00D09E Vendor Type' (at most 64 characters)"
        )
    for key, value in fields.items():
        if len(value) > 64 or _CONTROL.search(value):
            raise FileError(f"{key}: at most 64 printable characters")


@contextlib.asynccontextmanager
async def _locked(pool: asyncpg.Pool) -> AsyncIterator[Conn]:
    """A connection holding the file store's advisory lock (session level, so it spans
    a transaction and the disk work after its commit)."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


def _write(fd: int, digest: Any, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    digest.update(view)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _seal(fd: int) -> None:
    try:
        os.fchmod(fd, 0o640)
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open(path: Path) -> tuple[BinaryIO, int]:
    fh = path.open("rb", buffering=0)
    return fh, os.fstat(fh.fileno()).st_size
