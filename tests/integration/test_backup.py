"""netd backup / netd restore, as docs/operations.md tells an operator to use them.

A backup is taken from an instance on the embedded stores while its RADIUS daemon runs,
restored into a fresh state directory with the key kept apart, and the restored instance
authenticates the subscriber (the NAS secret and the password are sealed: they open only
with the key). Restoring over a database that has a schema, or without the key, is refused.
"""

from __future__ import annotations

import stat
from pathlib import Path

from tests.support import NetdProcess, free_port, free_udp_port, netd_env, radclient_auth
from tests.support import run_netd as netd

SECRET = "backup-nas-secret"


def instance(tmp_path: Path, name: str) -> tuple[dict[str, str], int, int]:
    auth, status = free_udp_port(), free_port()
    env = netd_env(
        {
            "NETD_STATE_DIR": str(tmp_path / name),
            "NETD_RADIUS_LISTEN": "127.0.0.1",
            "NETD_RADIUS_AUTH_PORT": str(auth),
            "NETD_RADIUS_ACCT_PORT": str(free_udp_port()),
            "NETD_RADIUS_STATUS_PORT": str(status),
            "NETD_LOG_FORMAT": "text",
        }
    )
    return env, auth, status


def login(port: int) -> str:
    return radclient_auth(port, SECRET, "alice", "alice-pw")


def test_backup_restore_into_a_fresh_state_directory(tmp_path: Path) -> None:
    first, auth_a, status_a = instance(tmp_path, "a")
    assert netd(first, tmp_path, "migrate").returncode == 0
    ok = netd(
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
    assert ok.returncode == 0, ok.stderr
    ok = netd(
        first,
        tmp_path,
        "subscriber",
        "add",
        "alice",
        "--password-stdin",
        "--plan",
        "fiber-100",
        stdin="alice-pw\n",
    )
    assert ok.returncode == 0, ok.stderr
    running = NetdProcess(["radius"], first, tmp_path)
    try:
        running.wait_http(f"http://127.0.0.1:{status_a}/health/ready", timeout=60)
        assert "Access-Accept" in login(auth_a)
        made = netd(first, tmp_path, "backup", str(tmp_path / "bk"))  # while it runs
        assert made.returncode == 0, made.stderr
        assert "the secrets key is not in the backup" in made.stderr
    finally:
        running.stop()
    files = sorted(p.name for p in (tmp_path / "bk").iterdir())
    assert files == ["manifest.json", "netd.pgdump"]
    for path in (tmp_path / "bk").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "bk").stat().st_mode) == 0o700

    second, auth_b, status_b = instance(tmp_path, "b")
    nokey = netd(second, tmp_path, "restore", str(tmp_path / "bk"))
    assert nokey.returncode == 1 and "--key-file" in nokey.stderr, nokey.stderr
    assert len(nokey.stderr.splitlines()) == 1
    key = tmp_path / "a" / "secrets.key"
    done = netd(second, tmp_path, "restore", str(tmp_path / "bk"), "--key-file", str(key))
    assert done.returncode == 0, done.stderr
    again = netd(second, tmp_path, "restore", str(tmp_path / "bk"), "--key-file", str(key))
    assert again.returncode == 1 and "already has a netd schema" in again.stderr, again.stderr
    listed = netd(second, tmp_path, "nas", "list")  # piped: JSON lines
    assert listed.returncode == 0 and '"lo"' in listed.stdout, listed.stderr
    restored = NetdProcess(["radius"], second, tmp_path)
    try:
        restored.wait_http(f"http://127.0.0.1:{status_b}/health/ready", timeout=60)
        assert "Access-Accept" in login(auth_b)
    finally:
        restored.stop()
