"""Issue 26: the audit log has a retention and an export a SIEM can follow.

Real `netd api` processes over a fresh database: audit rows written by the HTTP API, the
CLI and refused tokens are exported as JSON lines to a file, once each and in id order,
across a restart of the API and a logrotate of the file; the same rows reach a syslog
receiver (RFC 5424 over UDP on loopback); rows past the retention are deleted.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from daemons.store import api as api_store
from tests.conftest import StoreUrls, fresh_database
from tests.support import NetdProcess, free_port, netd_env


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _wait(check: object, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


async def test_audit_rows_exported_once_in_order_and_pruned(
    store_urls: StoreUrls, tmp_path: Path
) -> None:
    export = tmp_path / "audit.jsonl"
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.5)
    async with fresh_database(store_urls, "au_", migrated=True) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        # rows from long ago (past a 30-day retention) and recent ones
        await pool.execute(
            "INSERT INTO audit_log (ts, actor, method, path, action, status, result, request_id) "
            "SELECT now() - make_interval(days => 40), 'old', 'POST', '/x', 'old.thing', 200, "
            "'ok', 'r' || g FROM generate_series(1, 25) g"
        )
        _row, admin = await api_store.create_token(pool, "au-admin", "admin", "test")
        _row, elsewhere = await api_store.create_token(
            pool, "au-elsewhere", "viewer", "test", networks=["10.0.0.0/8"]
        )
        port = free_port()
        env = netd_env(
            {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": store_urls.redis,
                "NETD_REDIS_KEY_PREFIX": "au" + os.urandom(4).hex(),
                "NETD_SECRETS_KEY": os.urandom(32).hex(),
                "NETD_STATE_DIR": str(tmp_path / "state"),
                "NETD_LOG_FORMAT": "json",
                "NETD_API_PORT": str(port),
                "NETD_API_RATE_LIMIT": "1000",
                "NETD_API_AUDIT_RETENTION_DAYS": "30",
                "NETD_API_AUDIT_EXPORT": "file",
                "NETD_API_AUDIT_EXPORT_PATH": str(export),
            }
        )
        base = f"http://127.0.0.1:{port}"
        api = NetdProcess(["api"], env, tmp_path)
        syslog_api: NetdProcess | None = None
        try:
            api.wait_http(f"{base}/health/ready")
            # retention: the old rows go at start, once exported
            for _ in range(150):
                if not await pool.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'old'"):
                    break
                time.sleep(0.1)
            assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'old'") == 0
            # rows from the API, a refused token and the CLI
            h = {"authorization": f"Bearer {admin}"}
            for i in range(3):
                got = httpx.post(
                    f"{base}/api/v1/tokens", json={"name": f"au-{i}", "role": "viewer"}, headers=h
                )
                assert got.status_code == 201
            denied = httpx.get(
                f"{base}/api/v1/status", headers={"authorization": f"Bearer {elsewhere}"}
            )
            assert denied.status_code == 401
            cli = subprocess.run(
                [sys.executable, "-m", "daemons.cli", "token", "revoke", "au-0"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert cli.returncode == 0, cli.stderr
            ids = {r["id"] for r in await pool.fetch("SELECT id FROM audit_log")}
            _wait(lambda: ids <= {x["id"] for x in _lines(export)})
            first = _lines(export)
            # the old rows were exported before the retention deleted them
            assert sum(1 for x in first if x["actor"] == "old") == 25
            assert [x["id"] for x in first] == sorted({x["id"] for x in first})  # once, in order
            actions = [x["action"] for x in first]
            assert actions.count("tokens.create") == 3 and "tokens.revoke" in actions
            refused = next(x for x in first if x["actor"] == "api:au-elsewhere")
            assert refused["status"] == 401 and refused["details"] == {
                "reason": "network",
                "client": "127.0.0.1",
            }
            assert all(x["type"] == "netd.audit" and x["ts"] for x in first)
            # a restart resumes: nothing repeated; logrotate: a new file at the path
            api.stop()
            rotated = tmp_path / "audit.jsonl.1"
            export.rename(rotated)
            api = NetdProcess(["api"], env, tmp_path)
            api.wait_http(f"{base}/health/ready")
            got = httpx.post(
                f"{base}/api/v1/tokens", json={"name": "au-after", "role": "viewer"}, headers=h
            )
            assert got.status_code == 201
            _wait(lambda: any(x["target"] == "au-after" for x in _lines(export)))
            after = _lines(export)
            assert {x["id"] for x in after}.isdisjoint({x["id"] for x in _lines(rotated)})
            assert min(x["id"] for x in after) > max(x["id"] for x in first)
            # syslog: a second API process exports the same rows to a receiver
            syslog_env = {
                **env,
                "NETD_API_PORT": str(free_port()),
                "NETD_API_AUDIT_EXPORT": "syslog",
                "NETD_API_AUDIT_SYSLOG_ADDRESS": f"127.0.0.1:{receiver.getsockname()[1]}",
            }
            syslog_env.pop("NETD_API_AUDIT_EXPORT_PATH")
            syslog_api = NetdProcess(["api"], syslog_env, tmp_path)
            got_msgs: list[str] = []
            total = await pool.fetchval("SELECT count(*) FROM audit_log")
            deadline = time.monotonic() + 20
            while len(got_msgs) < total and time.monotonic() < deadline:
                try:
                    got_msgs.append(receiver.recv(65535).decode())
                except TimeoutError:
                    continue
            assert len(got_msgs) == total, (len(got_msgs), total)
            assert all(m.startswith("<85>1 ") and " netd " in m for m in got_msgs)
            ids = [json.loads(m.split(" audit - ", 1)[1])["id"] for m in got_msgs]
            assert ids == sorted(ids) and len(set(ids)) == total
        finally:
            api.stop()
            if syslog_api is not None:
                syslog_api.stop()
            receiver.close()
            await pool.close()
        for proc in (api, syslog_api):
            assert proc is not None and "Traceback" not in proc.output()
