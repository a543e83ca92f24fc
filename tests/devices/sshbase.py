"""What both device simulators share: an asyncssh listener on 127.0.0.1 (a port the OS picks,
kept across restarts), password authentication only, a host key that a test can replace,
and a stop that leaves no connection or task behind.

A subclass implements ``serve(process)`` for one SSH session (a shell or a subsystem); the
process reads and writes bytes (no encoding, no asyncssh line editor: the simulator echoes
what it wants itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Coroutine
from typing import Any

import asyncssh

HOST = "127.0.0.1"
MAX_CONNECTIONS = 16
LOGIN_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0


def generate_host_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


class _Server(asyncssh.SSHServer):
    def __init__(self, owner: SshDevice) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        if len(self._owner._conns) >= MAX_CONNECTIONS:
            conn.close()
            return
        self._owner._conns.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._conns.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        user_ok = hmac.compare_digest(username.encode(), self._owner.username.encode())
        pass_ok = hmac.compare_digest(password.encode(), self._owner.password.encode())
        if user_ok and pass_ok:
            return True
        self._owner.auth_failures += 1
        return False


class SshDevice:
    """Base of the simulators: start/stop/restart, the host key, the known_hosts line."""

    def __init__(
        self, username: str, password: str, host_key: asyncssh.SSHKey | str | None
    ) -> None:
        self.username = username
        self.password = password
        if isinstance(host_key, str):
            host_key = asyncssh.import_private_key(host_key)
        self._host_key: asyncssh.SSHKey = host_key or generate_host_key()
        self.host = HOST
        self.port = 0
        self.auth_failures = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._conns: set[asyncssh.SSHServerConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- host key -------------------------------------------------------------------------
    @property
    def host_key_public(self) -> str:
        """The public host key in OpenSSH form, ``"ssh-ed25519 AAAA..."`` (no comment)."""
        algo, b64 = self._host_key.export_public_key("openssh").decode().split()[:2]
        return f"{algo} {b64}"

    @property
    def host_key_b64(self) -> str:
        """The base64 part alone (what ncclient's ``hostkey_b64`` takes)."""
        return self.host_key_public.split()[1]

    @property
    def host_key_fingerprint(self) -> str:
        """``SHA256:...`` as OpenSSH prints it."""
        return self._host_key.get_fingerprint("sha256")

    def known_hosts_line(self) -> str:
        """One known_hosts line for this listener: ``[127.0.0.1]:PORT ssh-ed25519 AAAA...``
        (the bracketed form OpenSSH and paramiko use for a port other than 22)."""
        return f"[{self.host}]:{self.port} {self.host_key_public}\n"

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> int:
        """Listen on 127.0.0.1 (the port the OS picks the first time, the same one after a
        restart); return the port."""
        if self._acceptor is not None:
            return self.port
        self._acceptor = await asyncssh.create_server(
            lambda: _Server(self),
            self.host,
            self.port,
            server_host_keys=[self._host_key],
            process_factory=self._run_process,
            encoding=None,
            line_editor=False,
            login_timeout=LOGIN_TIMEOUT,
            reuse_address=True,
        )
        self.port = self._acceptor.get_port()
        return self.port

    async def stop(self) -> None:
        """Stop listening, close every connection and end every task of this simulator."""
        if self._acceptor is not None:
            self._acceptor.close()
            with contextlib.suppress(Exception):
                await self._acceptor.wait_closed()
            self._acceptor = None
        conns = list(self._conns)
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 2.0)
        self._conns.clear()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self._tasks.clear()
        self.on_stop()

    async def restart(self, new_host_key: bool = False) -> None:
        """Stop and listen again on the same port; ``new_host_key`` generates a new host key
        (a client that knew the old one must refuse this server)."""
        await self.stop()
        if new_host_key:
            self._host_key = generate_host_key()
        await self.start()

    # -- sessions -------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task owned by the simulator (cancelled at stop)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run_process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self.serve(process)
        except (asyncssh.Error, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                process.exit(0)

    async def serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        raise NotImplementedError

    def on_stop(self) -> None:
        """Hook: called at the end of stop()."""


async def read_chunk(process: asyncssh.SSHServerProcess[bytes], size: int = 65536) -> bytes:
    """Read what the client sent; b"" at EOF or after IDLE_TIMEOUT seconds of silence (the
    session then ends). Break, signal and window-change are skipped."""
    while True:
        try:
            return await asyncio.wait_for(process.stdin.read(size), IDLE_TIMEOUT)
        except TimeoutError:
            return b""
        except (asyncssh.BreakReceived, asyncssh.SignalReceived, asyncssh.TerminalSizeChanged):
            continue
