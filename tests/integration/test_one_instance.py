"""One instance per port (issue 19).

Reproduced in round two: a second `netd radius` (other state directory, other database),
started while the first ran, bound 1812 without error (SO_REUSEPORT) and took half the
traffic: 5 of 12 logins accepted, 7 rejected as unknown_user. And a second `netd up` while
one ran died with a traceback (port 8080 in use). Both now refuse to start with one line
naming the holder, and the first instance keeps every request.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import StoreUrls, fresh_database
from tests.support import NetdProcess, free_port, free_udp_port, netd_env, radclient_auth, run_netd

SECRET = "two-instances-secret"


@pytest.fixture
async def two_databases(store_urls: StoreUrls) -> AsyncIterator[tuple[str, str]]:
    async with (
        fresh_database(store_urls, "oi_", migrated=True) as first,
        fresh_database(store_urls, "oi_", migrated=True) as second,
    ):
        yield first, second


def cli(env: dict[str, str], cwd: Path, *args: str, stdin: str = "") -> None:
    proc = run_netd(env, cwd, *args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr


def login(port: int) -> str:
    out = radclient_auth(port, SECRET, "alice", "alice-pw")
    if "Access-Accept" in out:
        return "accept"
    return "reject" if "Access-Reject" in out else f"none: {out.strip()}"


async def test_a_second_instance_on_the_same_port_refuses_to_start(
    two_databases: tuple[str, str], store_urls: StoreUrls, tmp_path: Path
) -> None:
    auth, acct = free_udp_port(), free_udp_port()
    status_a, status_b = free_port(), free_port()

    def env_for(database: str, name: str, status: int) -> dict[str, str]:
        return netd_env(
            {
                "NETD_DATABASE_URL": database,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": f"oi{name}{os.getpid()}",
                "NETD_STATE_DIR": str(tmp_path / f"state-{name}"),
                "NETD_RADIUS_LISTEN": "127.0.0.1",
                "NETD_RADIUS_AUTH_PORT": str(auth),
                "NETD_RADIUS_ACCT_PORT": str(acct),
                "NETD_RADIUS_STATUS_PORT": str(status),
                "NETD_LOG_FORMAT": "json",
            }
        )

    first = env_for(two_databases[0], "a", status_a)
    second = env_for(two_databases[1], "b", status_b)
    cli(first, tmp_path, "migrate")
    cli(second, tmp_path, "migrate")
    cli(
        first,
        tmp_path,
        "nas",
        "add",
        "lo",
        "--address",
        "127.0.0.1",
        "--secret-stdin",
        stdin=SECRET + "\n",
    )
    cli(first, tmp_path, "subscriber", "add", "alice", "--password-stdin", stdin="alice-pw\n")
    a = NetdProcess(["radius"], first, tmp_path)
    b: NetdProcess | None = None
    try:
        a.wait_http(f"http://127.0.0.1:{status_a}/health/ready")
        b = NetdProcess(["radius"], second, tmp_path)
        assert b.wait(60.0) == 1, b.output()
        lines = [ln for ln in b.output().splitlines() if ln.strip()]
        refusal = [ln for ln in lines if "startup failed" in ln]
        assert len(refusal) == 1, lines
        assert f"udp 127.0.0.1:{auth} is already served by another netd instance" in refusal[0]
        assert f"pid {a.proc.pid}" in refusal[0] and "radius" in refusal[0]
        assert not any("Traceback" in ln for ln in lines)
        results = [login(auth) for _ in range(12)]
        assert results == ["accept"] * 12, results
    finally:
        if b is not None:
            b.stop()
        a.stop()


async def test_a_second_api_on_a_port_in_use_is_one_line(
    two_databases: tuple[str, str], store_urls: StoreUrls, tmp_path: Path
) -> None:
    port = free_port()
    env = netd_env(
        {
            "NETD_DATABASE_URL": two_databases[0],
            "NETD_REDIS_URL": store_urls.redis,
            "NETD_STATE_DIR": str(tmp_path / "state"),
            "NETD_API_PORT": str(port),
            "NETD_LOG_FORMAT": "text",
        }
    )
    first = NetdProcess(["api"], env, tmp_path)
    try:
        first.wait_http(f"http://127.0.0.1:{port}/health/ready")
        second = NetdProcess(["api"], env, tmp_path)
        assert second.wait(60.0) == 1, second.output()
        out = second.output()
        assert "Traceback" not in out, out
        failed = [ln for ln in out.splitlines() if "startup failed" in ln]
        assert len(failed) == 1, out
        assert f"tcp 127.0.0.1:{port} is already in use by pid {first.proc.pid}" in failed[0]
        second.stop()
    finally:
        first.stop()
