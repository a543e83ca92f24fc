"""`netd devices` and `netd api` as real processes, with our SSH CLI and NETCONF simulators
in the test's event loop: devices added with the CLI, scheduled and on-demand backups
(sealed at rest, redacted for viewers), diffs, jobs (dry-run, apply, rollback, cancel)
through the API and the CLI, ``netd device backup`` recording its events, the audit trail,
and no password in any log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from daemons import resources
from daemons.core.config import DatabaseConfig
from daemons.devices import cliconf
from daemons.store import api as api_store
from daemons.store.pg import create_pool
from tests.conftest import StoreUrls, fresh_database
from tests.devices.ios_sim import IosSim
from tests.devices.netconf_sim import NetconfSim
from tests.support import NetdProcess, free_port, netd_env

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "sim-password-7c1e"
USER_HASH = "$1$mERr$hx5rVt7rPNoS4wqbXKX7m0"
COMMUNITY = "c0mmunity-4b1d"


async def _until(check: Any, seconds: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {seconds} s: {what}")
        await asyncio.sleep(0.1)


async def _ready(url: str, proc: NetdProcess) -> None:
    async def up() -> bool:
        if proc.proc.poll() is not None:
            raise AssertionError(proc.output())
        try:
            async with httpx.AsyncClient(timeout=2) as c:
                return (await c.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    await _until(up, 30, url)


async def test_devices_daemon_end_to_end(store_urls: StoreUrls, tmp_path: Path) -> None:
    sw1, sw2 = IosSim(hostname="sw1", password=PASSWORD), IosSim(hostname="sw2", password=PASSWORD)
    sw1.running.insert(2, f"username ops privilege 15 secret 5 {USER_HASH}")
    sw1.running.insert(3, f"snmp-server community {COMMUNITY} RO")
    r1 = NetconfSim(password=PASSWORD)
    for sim in (sw1, sw2, r1):
        await sim.start()
    procs: list[NetdProcess] = []
    try:
        async with fresh_database(store_urls, "ds_", migrated=True) as dsn:
            pool = await create_pool(DatabaseConfig(), dsn, "test")
            _row, token = await api_store.create_token(pool, "devices-admin", "admin", "test")
            _row, viewer = await api_store.create_token(pool, "devices-viewer", "viewer", "test")
            api_port, status_port = free_port(), free_port()
            env = netd_env(
                {
                    "NETD_DATABASE_URL": dsn,
                    "NETD_REDIS_URL": store_urls.redis,
                    "NETD_REDIS_KEY_PREFIX": "d" + uuid.uuid4().hex[:8],
                    "NETD_SECRETS_KEY": os.urandom(32).hex(),
                    "NETD_DEVICES_STATUS_PORT": str(status_port),
                    "NETD_DEVICES_DEVICE_TIMEOUT": "10",
                    "NETD_API_PORT": str(api_port),
                    "NETD_POLICIES_DIR": str(resources.path("policies")),
                    "NETD_STATE_DIR": str(tmp_path / "state"),
                    "NETD_LOG_FORMAT": "json",
                }
            )

            def netd(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    [sys.executable, "-m", "daemons.cli", *args],
                    input=stdin,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )

            for name, sim, platform in (
                ("sw1", sw1, "cisco_ios"),
                ("sw2", sw2, "cisco_ios"),
                ("r1", r1, "netconf"),
            ):
                added = await asyncio.to_thread(
                    netd,
                    PASSWORD + "\n",
                    "device",
                    "add",
                    name,
                    "--address",
                    "127.0.0.1",
                    "--port",
                    str(sim.port),
                    "--platform",
                    platform,
                    "--user",
                    "admin",
                    "--tag",
                    "access",
                )
                assert added.returncode == 0, added.stderr
            procs.append(NetdProcess(["devices"], env, tmp_path))
            procs.append(NetdProcess(["api"], env, tmp_path))
            await _ready(f"http://127.0.0.1:{status_port}/health/ready", procs[0])
            await _ready(f"http://127.0.0.1:{api_port}/health/ready", procs[1])

            async def backed_up() -> bool:
                n = await pool.fetchval("SELECT count(DISTINCT device) FROM device_backups")
                return bool(n == 3)

            await _until(backed_up, 60, "the first scheduled backup of every device")
            keys = await pool.fetch("SELECT name, host_keys FROM devices ORDER BY name")
            assert all(r["host_keys"] for r in keys)  # learnt on first contact
            # Sealed at rest: no clear text, no secret in the table.
            rows = await pool.fetch("SELECT config, config_enc FROM device_backups")
            assert all(r["config"] is None for r in rows)
            assert not any(COMMUNITY.encode() in r["config_enc"] for r in rows)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}/api/v1",
                headers={"Authorization": f"Bearer {token}"},
                timeout=15,
            ) as c:
                sw1.running.append("ntp server 192.0.2.123")
                assert (await c.post("/devices/sw1/backup")).status_code == 202

                async def two() -> list[dict[str, Any]] | None:
                    got = (await c.get("/devices/sw1/backups")).json()
                    return got if len(got) == 2 else None

                new, old = await _until(two, 45, "the on-demand backup")
                diff = (
                    await c.get("/devices/sw1/diff", params={"from": old["id"], "to": new["id"]})
                ).text
                assert "+ntp server 192.0.2.123" in diff
                full = (await c.get(f"/devices/sw1/backups/{new['id']}")).text
                assert COMMUNITY in full and USER_HASH in full  # an admin reads it all
                shown = (
                    await c.get(
                        f"/devices/sw1/backups/{new['id']}",
                        headers={"Authorization": f"Bearer {viewer}"},
                    )
                ).text
                assert COMMUNITY not in shown and USER_HASH not in shown, shown
                assert "snmp-server community <redacted> RO" in shown
                assert "ntp server 192.0.2.123" in shown
                variables = {"vlan": 30, "vlan_name": "iptv", "ports": ["GigabitEthernet0/2"]}

                async def run(body: dict[str, Any]) -> dict[str, Any]:
                    made = await c.post("/config-jobs", json=body)
                    assert made.status_code == 202, made.text
                    job_id = made.json()["id"]

                    async def ended() -> dict[str, Any] | None:
                        job = (await c.get(f"/config-jobs/{job_id}")).json()
                        return job if job["state"] in ("done", "failed") else None

                    return await _until(ended, 60, f"job {job_id}")

                dry = await run(
                    {"template": "access-vlan", "tags": ["access"], "variables": variables}
                )
                assert dry["state"] == "done" and dry["counts"] == {"ok": 3}
                assert "vlan 30" not in sw1.running
                variables_nc = {**variables, "ports": ["ge-0/0/1"]}
                applied = await run(
                    {
                        "template": "access-vlan",
                        "devices": ["sw1", "sw2"],
                        "variables": variables,
                        "mode": "apply",
                    }
                )
                assert applied["state"] == "done", applied
                assert "vlan 30" in sw1.running and "vlan 30" in sw2.running
                nc = await run(
                    {
                        "template": "access-vlan",
                        "devices": ["r1"],
                        "variables": variables_nc,
                        "mode": "apply",
                    }
                )
                assert nc["state"] == "done" and "<vlan>30</vlan>" in nc["devices"][0]["diff"]
                back = await c.post(f"/config-jobs/{applied['id']}/rollback")
                assert back.status_code == 202
                back_id = back.json()["id"]

                async def rolled() -> dict[str, Any] | None:
                    job = (await c.get(f"/config-jobs/{back_id}")).json()
                    return job if job["state"] in ("done", "failed") else None

                rollback = await _until(rolled, 60, "the rollback job")
                assert rollback["state"] == "done", rollback["devices"]
                ended = await c.post(f"/config-jobs/{back_id}/cancel")
                assert ended.status_code == 409, ended.text
                viewer_cancel = await c.post(
                    f"/config-jobs/{back_id}/cancel",
                    headers={"Authorization": f"Bearer {viewer}"},
                )
                assert viewer_cancel.status_code == 403
                assert "vlan 30" not in sw1.running and "vlan 30" not in sw2.running
                audit = (await c.get("/audit", params={"limit": 200})).json()["items"]
                actions = {a["action"] for a in audit}
                assert {"config_job.apply.device", "config_job.rollback.end"} <= actions
            status = await asyncio.to_thread(netd, "", "config-job", "status", str(applied["id"]))
            assert status.returncode == 0 and '"state": "done"' in status.stdout
            # The CLI's own backup records its events as the daemon's do.
            sw2.running.append("ntp server 192.0.2.77")
            backed = await asyncio.to_thread(netd, "", "device", "backup", "sw2")
            assert backed.returncode == 0, backed.stderr
            kinds = await pool.fetch(
                "SELECT kind FROM events WHERE source = 'devices' AND subject = 'sw2'"
            )
            assert "device.config_changed" in [r["kind"] for r in kinds]
            # Cancel: a job the daemon has not claimed (stopped first) ends at once.
            await asyncio.to_thread(procs[0].stop)
            queued = await asyncio.to_thread(
                netd, "", "config-job", "create", "access-vlan", "--device", "sw1"
            )
            assert queued.returncode == 0, queued.stderr
            job_id = queued.stdout.split()[2]
            cancelled = await asyncio.to_thread(netd, "", "config-job", "cancel", job_id)
            assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
            again = await asyncio.to_thread(netd, "", "config-job", "cancel", job_id)
            assert again.returncode == 0
            linux = await asyncio.to_thread(
                netd,
                PASSWORD + "\n",
                "device",
                "add",
                "h1",
                "--address",
                "127.0.0.1",
                "--platform",
                "linux",
                "--user",
                "admin",
            )
            assert linux.returncode == 0, linux.stderr
            refused = await asyncio.to_thread(
                netd, "", "config-job", "create", "access-vlan", "--device", "h1", "--apply"
            )
            assert refused.returncode == 2 and "backups of one file only" in refused.stderr
            forced = await asyncio.to_thread(
                netd, "", "config-job", "rollback", str(nc["id"]), "--force"
            )
            assert forced.returncode == 0, forced.stderr
            new_id = int(forced.stdout.split()[2])
            assert await pool.fetchval("SELECT force FROM config_jobs WHERE id = $1", new_id)
            listed = await asyncio.to_thread(netd, "", "device", "backups", "sw1")
            assert listed.returncode == 0 and len(listed.stdout.splitlines()) >= 3
            assert cliconf.parse("\n".join(sw1.running))
            await pool.close()
    finally:
        for p in procs:
            await asyncio.to_thread(p.stop)
        for sim in (sw1, sw2, r1):
            await sim.stop()
    for p in procs:
        out = p.output()
        assert "Traceback" not in out, out[-3000:]
        assert PASSWORD not in out
