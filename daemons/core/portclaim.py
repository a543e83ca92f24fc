"""One instance per port: a UDP port served with SO_REUSEPORT is shared by the workers of one
netd instance only.

Linux lets any socket of the same user join a SO_REUSEPORT group, and then splits the
traffic between them: a second ``netd radius`` (another state directory, another NAS table)
started on the same port would silently take half the requests. Before it binds, an
instance therefore claims the port: it binds an abstract Unix socket named after the
protocol, address and port (``@netd-port:udp:127.0.0.1:1812``). Abstract names live per
network namespace, like ports, and vanish with the process that holds them, so a crash
never leaves a stale claim. A second instance finds the name taken and refuses to start,
naming the holder. The claim is followed by an exclusive probe bind (no SO_REUSEPORT), which
finds any other program on the port, netd or not.

Linux only (abstract Unix sockets and ``/proc``), as SO_REUSEPORT's sharing rule is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

PREFIX = "netd-port"


class PortTaken(Exception):
    """The port is already served by another instance or program (the message names it)."""


def _describe(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"pid {pid}"
    cmd = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return f"pid {pid} ({cmd[:200]})" if cmd else f"pid {pid}"


def _holders(inodes: set[int]) -> list[int]:
    """The processes holding a socket with one of ``inodes`` (those we may look at)."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        found.append(int(entry.name))
                        break
    return found


def _unix_inodes(name: str) -> set[int]:
    out: set[int] = set()
    with contextlib.suppress(OSError), open("/proc/net/unix", encoding="ascii") as fh:
        next(fh, None)
        for line in fh:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == "@" + name:
                out.add(int(parts[6]))
    return out


def _inet_inodes(kind: str, port: int) -> set[int]:
    out: set[int] = set()
    for table in (kind, kind + "6"):
        with contextlib.suppress(OSError), open(f"/proc/net/{table}", encoding="ascii") as fh:
            next(fh, None)
            for line in fh:
                parts = line.split()
                if len(parts) >= 10 and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    out.add(int(parts[9]))
    return out


def _who(inodes: set[int], fallback: str) -> str:
    pids = [p for p in _holders(inodes) if p != os.getpid()]
    return ", ".join(_describe(p) for p in pids[:3]) if pids else fallback


class PortClaim:
    """The claims of one instance: held until :meth:`release` or the process ends."""

    def __init__(self) -> None:
        self._held: dict[str, socket.socket] = {}

    def claim(self, kind: str, host: str, port: int) -> None:
        """Claim ``kind`` (``udp``/``tcp``) ``host:port`` for this instance, then check that
        no other program serves it.

        Raises PortTaken naming the holder.
        """
        name = f"{PREFIX}:{kind}:{host}:{port}"
        if name in self._held:
            return
        marker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            marker.bind("\0" + name)
        except OSError as exc:
            marker.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            who = _who(_unix_inodes(name), "another process")
            raise PortTaken(
                f"{kind} {_hostport(host, port)} is already served by another netd instance: "
                f"{who}; stop it or give this one other ports"
            ) from None
        marker.set_inheritable(False)
        try:
            probe(kind, host, port)
        except BaseException:
            marker.close()
            raise
        self._held[name] = marker

    def release(self) -> None:
        for marker in self._held.values():
            marker.close()
        self._held.clear()


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe(kind: str, host: str, port: int) -> None:
    """Bind the port exclusively for a moment: EADDRINUSE means another program has it
    (with or without SO_REUSEPORT). Other errors (no such address) are left to the real
    bind, which reports them as it always has."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            who = _who(_inet_inodes(kind, port), "another program")
            raise PortTaken(f"{kind} {_hostport(host, port)} is already in use by {who}") from None
    finally:
        sock.close()
