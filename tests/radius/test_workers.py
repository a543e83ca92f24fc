"""`radius.workers = 2`: two processes share the port (SO_REUSEPORT), both answer, both
heartbeat, and SIGTERM to the parent drains and stops both."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from daemons import resources
from daemons.radius.codec import Attr, Code, encode_request, hide_password
from tests.conftest import StoreUrls
from tests.radius.conftest import SECRET, RadiusServer
from tests.support import NetdProcess, free_port, free_udp_port, netd_env, pid_alive


def request(user: bytes, password: bytes) -> bytes:
    auth = os.urandom(16)
    return encode_request(
        Code.ACCESS_REQUEST,
        1,
        [(Attr.USER_NAME, user), (Attr.USER_PASSWORD, hide_password(password, SECRET, auth))],
        SECRET,
        auth,
    )


def second_daemon_env(
    radius: RadiusServer, port: int, status: int, tmp: Path, extra: dict[str, str]
) -> dict[str, str]:
    """Another netd radius on the module's database, Redis prefix and key."""
    return netd_env(
        {
            "NETD_DATABASE_URL": radius.database,
            "NETD_REDIS_URL": radius.redis_url,
            "NETD_REDIS_KEY_PREFIX": radius.prefix,
            "NETD_SECRETS_KEY": radius.key.hex(),
            "NETD_RADIUS_AUTH_PORT": str(port),
            "NETD_RADIUS_ACCT_PORT": str(free_udp_port()),
            "NETD_RADIUS_STATUS_PORT": str(status),
            "NETD_RADIUS_LISTEN": "127.0.0.1",
            "NETD_POLICIES_DIR": str(resources.path("policies")),
            "NETD_STATE_DIR": str(tmp / "s"),
            **extra,
        }
    )


async def test_two_workers_share_the_port(
    radius: RadiusServer, store_urls: StoreUrls, tmp_path: Path
) -> None:
    port, status = free_udp_port(), free_port()
    env = second_daemon_env(
        radius,
        port,
        status,
        tmp_path,
        {
            "NETD_RADIUS_WORKERS": "2",
            "NETD_LIFECYCLE_HEARTBEAT_INTERVAL": "0.3",
            "NETD_INSTANCE_NAME": "workers-test",
        },
    )
    proc = NetdProcess(["radius"], env, tmp_path)
    try:
        proc.wait_http(f"http://127.0.0.1:{status}/health/ready")
        # The kernel spreads sources over the sockets by a hash of the 4-tuple: use many.
        answered = 0
        socks = []
        for _ in range(64):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.settimeout(3)
            socks.append(s)
        deadline = time.monotonic() + 20
        pids: set[int] = set()
        while time.monotonic() < deadline:
            for s in socks:
                s.sendto(request(b"alice", b"pw1"), ("127.0.0.1", port))
                reply = s.recv(4096)
                answered += reply[0] == Code.ACCESS_ACCEPT
            beats = [
                b
                for b in await radius.cache.list_heartbeats()
                if b["instance"] == "workers-test" and b["daemon"] == "radius"
            ]
            pids = {b["pid"] for b in beats if b["counters"].get("handled", 0) > 0}
            if len(pids) == 2:
                break
        assert answered >= 64
        assert len(pids) == 2, f"only {pids} answered:\n{proc.output()}"
        child = next(p for p in pids if p != proc.proc.pid)
        for s in socks:
            s.close()
        proc.signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.output()
        deadline = time.monotonic() + 10
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child)
    finally:
        proc.stop()


async def test_sigterm_answers_requests_in_flight(
    radius: RadiusServer, store_urls: StoreUrls, tmp_path: Path
) -> None:
    port, status = free_udp_port(), free_port()
    env = second_daemon_env(radius, port, status, tmp_path, {})
    proc = NetdProcess(["radius"], env, tmp_path)
    try:
        proc.wait_http(f"http://127.0.0.1:{status}/health/ready")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            # bob's password is an argon2 hash: hundreds of ms of work, still in flight...
            sock.sendto(request(b"bob", b"pw2"), ("127.0.0.1", port))
            time.sleep(0.05)
            proc.signal(signal.SIGTERM)  # ...when the stop comes
            reply = sock.recv(4096)
        assert reply[0] == Code.ACCESS_ACCEPT
        assert proc.wait(20) == 0, proc.output()
    finally:
        proc.stop()


def udp_sockets_on(port: int) -> int:
    """How many UDP sockets are bound to 127.0.0.1:``port`` (/proc/net/udp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        return sum(1 for line in f.readlines()[1:] if line.split()[1] == want)


async def test_ready_only_once_every_worker_has_bound(
    radius: RadiusServer, store_urls: StoreUrls, tmp_path: Path
) -> None:
    """An instance of 2 workers reports ready once both serve the port. On main it was
    ready as soon as the first had bound, while the second was still starting: a socket
    joining the SO_REUSEPORT group then moved requests (an EAP exchange under way) to
    the other process."""
    port, status = free_udp_port(), free_port()
    env = second_daemon_env(radius, port, status, tmp_path, {"NETD_RADIUS_WORKERS": "2"})
    proc = NetdProcess(["radius"], env, tmp_path)
    try:
        proc.wait_http(f"http://127.0.0.1:{status}/health/ready")
        assert udp_sockets_on(port) == 2, proc.output()
    finally:
        proc.stop()
