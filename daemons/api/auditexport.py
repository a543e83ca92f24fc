"""The audit log's retention and its export for a SIEM (run by `netd api`).

Retention: every hour, audit rows older than ``api.audit_retention_days`` are deleted, in
batches (0 keeps everything); with an export, only rows already exported.

Export: every audit row, whoever wrote it (the HTTP API, gRPC, the CLI), becomes one JSON
line, in id order, written to a file (``api.audit_export = "file"``: appended and fsynced,
reopened when logrotate moves it) or sent to syslog (``"syslog"``: RFC 5424, facility
authpriv, the JSON as the message). The position (the last id written) is kept in
``audit_export`` beside the rows, so a restart resumes without a gap or a repeat. One
exporter runs at a time for a target across API processes (an advisory lock). Rows are
taken once they are two seconds old, so a row whose transaction commits after a later id
is not skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from daemons.core.config import ApiConfig

log = logging.getLogger("netd.audit")
BATCH = 1000
TICK = 1.0  # seconds between two looks at new rows
SETTLE = 2.0  # seconds a row waits before it is exported
PRUNE_EVERY = 3600.0
PRUNE_BATCH = 10_000
_LOCK = 0x6E6164  # pg advisory lock class; with the target's hash: one exporter a target


class Sink(Protocol):
    def write(self, lines: list[str]) -> None: ...
    def close(self) -> None: ...


class FileSink:
    """JSON lines appended to a file, fsynced per batch; a file moved away (logrotate) is
    followed by a new one at the same path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None
        self._ino = -1

    def _open(self) -> Any:
        try:
            ino = self.path.stat().st_ino
        except FileNotFoundError:
            ino = -2
        if self._fh is None or ino != self._ino:
            if self._fh is not None:
                self._fh.close()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._fh = os.fdopen(fd, "a", encoding="utf-8")
            self._ino = os.fstat(fd).st_ino
        return self._fh

    def write(self, lines: list[str]) -> None:
        fh = self._open()
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class SyslogSink:
    """RFC 5424 messages (facility authpriv, severity notice) over a Unix datagram socket
    or UDP, one per audit row."""

    PRI = 10 * 8 + 5  # authpriv.notice

    def __init__(self, address: str) -> None:
        self.address = address
        self.host = socket.gethostname()
        if address.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.dest: Any = address
        else:
            host, _, port = address.rpartition(":")
            info = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)[0]
            self.sock = socket.socket(info[0], socket.SOCK_DGRAM)
            self.dest = info[4]

    def write(self, lines: list[str]) -> None:
        for line in lines:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            msg = f"<{self.PRI}>1 {stamp} {self.host} netd {os.getpid()} audit - {line}"
            self.sock.sendto(msg.encode("utf-8"), self.dest)

    def close(self) -> None:
        self.sock.close()


def line(row: asyncpg.Record) -> str:
    """One audit row as the JSON line exported."""
    out = dict(row)
    out["ts"] = row["ts"].astimezone(UTC).isoformat()
    details = out.get("details")
    out["details"] = json.loads(details) if isinstance(details, str) else details
    out["type"] = "netd.audit"
    return json.dumps(out, separators=(",", ":"), default=str)


class AuditKeeper:
    """The retention and the export, as background tasks of the API daemon."""

    def __init__(self, pool: asyncpg.Pool, cfg: ApiConfig) -> None:
        self.pool = pool
        self.cfg = cfg
        self.target = ""
        self.sink: Sink | None = None
        if cfg.audit_export == "file" and cfg.audit_export_path is not None:
            self.target = f"file:{cfg.audit_export_path}"
            self.sink = FileSink(cfg.audit_export_path)
        elif cfg.audit_export == "syslog":
            self.target = f"syslog:{cfg.audit_syslog_address}"
            self.sink = SyslogSink(cfg.audit_syslog_address)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.sink is not None:
            self._tasks.append(loop.create_task(self._export(), name="audit-export"))
        if self.cfg.audit_retention_days:
            self._tasks.append(loop.create_task(self._prune_loop(), name="audit-prune"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.sink is not None:
            self.sink.close()

    async def prune(self) -> int:
        """Delete rows past the retention; how many."""
        total = 0
        while True:
            # with an export, only rows it has written: the SIEM never misses one
            status = await self.pool.execute(
                "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE ts < now() - "
                "make_interval(days => $1) AND ($3 = '' OR id <= coalesce((SELECT last_id "
                "FROM audit_export WHERE target = $3), 0)) ORDER BY id LIMIT $2)",
                self.cfg.audit_retention_days,
                PRUNE_BATCH,
                self.target,
            )
            n = int(status.split()[-1])
            total += n
            if n < PRUNE_BATCH:
                return total

    async def _prune_loop(self) -> None:
        if self.sink is not None:
            await asyncio.sleep(SETTLE + TICK)  # the export's first pass goes before
        while True:
            try:
                n = await self.prune()
                if n:
                    log.info(
                        "audit rows past the retention deleted",
                        extra={"fields": {"rows": n, "days": self.cfg.audit_retention_days}},
                    )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("audit retention not applied", extra={"fields": {"error": repr(exc)}})
            await asyncio.sleep(PRUNE_EVERY)

    async def export_once(self, conn: asyncpg.pool.PoolConnectionProxy[Any]) -> int:
        """Write the rows after the position, up to a batch; how many."""
        assert self.sink is not None
        last = await conn.fetchval(
            "INSERT INTO audit_export (target) VALUES ($1) ON CONFLICT (target) "
            "DO UPDATE SET target = EXCLUDED.target RETURNING last_id",
            self.target,
        )
        rows = await conn.fetch(
            "SELECT id, ts, actor, role, method, path, action, target, status, result, "
            "request_id, details FROM audit_log WHERE id > $1 "
            "AND ts < now() - make_interval(secs => $2) ORDER BY id LIMIT $3",
            last,
            SETTLE,
            BATCH,
        )
        if not rows:
            return 0
        await asyncio.to_thread(self.sink.write, [line(r) for r in rows])
        await conn.execute(
            "UPDATE audit_export SET last_id = $2, updated_at = now() WHERE target = $1",
            self.target,
            rows[-1]["id"],
        )
        return len(rows)

    async def _export(self) -> None:
        while True:
            try:
                async with self.pool.acquire() as conn:
                    lock = "SELECT pg_try_advisory_lock($1, hashtext($2))"
                    if await conn.fetchval(lock, _LOCK, self.target):
                        try:
                            while await self.export_once(conn) == BATCH:
                                pass
                        finally:
                            unlock = "SELECT pg_advisory_unlock($1, hashtext($2))"
                            await conn.execute(unlock, _LOCK, self.target)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("audit rows not exported", extra={"fields": {"error": repr(exc)}})
            await asyncio.sleep(TICK)
