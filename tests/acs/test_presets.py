"""Presets from policies/cwmp and connection requests, against a real `netd acs`."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import httpx

from daemons.acs import tasks
from daemons.acs.files import FIRMWARE, FileStore
from daemons.core.config import AcsConfig
from daemons.store import acs as store
from tests.acs.conftest import AcsServer
from tests.acs.sim import ConnectionRequests, Cpe, load_model, model_files, run_session

POLICIES = Path(tempfile.mkdtemp(prefix="netd-presets-"))
(POLICIES / "cwmp").mkdir()
(POLICIES / "cwmp" / "presets.toml").write_text(
    """
[presets.interval]
events = ["1 BOOT"]
periodic_inform_interval = 120

[presets.lab-ssid]
tags = ["lab"]
parameters = { "Device.WiFi.SSID.1.SSID" = "netd-lab" }

[presets.fw]
product_class = "Device2"
firmware = { version = "9.9.9", file = "ex220-9.9.9.bin" }
"""
)
ACS_ENV = {"NETD_POLICIES_DIR": str(POLICIES)}
TR181 = next(p for p in model_files() if "EX220" in p.name)


async def test_presets_send_only_what_differs_and_queue_firmware_once(acs: AcsServer) -> None:
    image = os.urandom(300_000)
    fs = FileStore(Path(acs.env["NETD_STATE_DIR"]) / "acs-files")
    await fs.put(acs.pool, "ex220-9.9.9.bin", image, file_type=FIRMWARE, version="9.9.9")
    cpe = Cpe(load_model(TR181), serial_suffix="-preset", events=["1 BOOT"])
    await run_session(cpe, "127.0.0.1", acs.port)  # discovery (the preset values, too)
    # The Download points at the ACS's file store, and the file comes whole, with Range.
    assert cpe.last_transfer_url.endswith("/files/ex220-9.9.9.bin")
    async with httpx.AsyncClient() as c:
        got = await c.get(cpe.last_transfer_url)
        part = await c.get(cpe.last_transfer_url, headers={"Range": "bytes=100-199"})
    assert got.content == image and got.headers["etag"]
    assert part.status_code == 206 and part.content == image[100:200]
    interval = "Device.ManagementServer.PeriodicInformInterval"
    assert cpe.tree[interval].value == "120"
    fw = await store.list_tasks(
        acs.pool, device_id=cpe.device_id, status=None, after=None, limit=10
    )
    assert [(t["kind"], t["args"]["version"], t["created_by"]) for t in fw] == [
        ("download", "9.9.9", "preset")
    ]
    # Queued by file name: the URL, type and size come from the file store when it is sent.
    assert fw[0]["args"] == {"file": "ex220-9.9.9.bin", "version": "9.9.9"}
    assert cpe.last_transfer_url.endswith("/files/ex220-9.9.9.bin")
    # Tagged now: the next BOOT session sets only the SSID; the interval is in force already,
    # and no second firmware Download is queued while the first is in flight.
    await store.set_tags(acs.pool, cpe.device_id, ["lab"])
    cpe.events = ["1 BOOT"]
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    assert cpe.seen == ["SetParameterValues"]
    assert cpe.tree["Device.WiFi.SSID.1.SSID"].value == "netd-lab"
    again = await store.list_tasks(
        acs.pool, device_id=cpe.device_id, status=None, after=None, limit=10
    )
    assert len(again) == 1
    cpe.events = ["1 BOOT"]
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    assert cpe.seen == []  # everything in force: nothing to send


async def test_a_queued_task_makes_an_online_cpe_call_in(acs: AcsServer) -> None:
    listener = ConnectionRequests("cr-user", "cr-pass")
    url = await listener.start()
    cpe = Cpe(load_model(TR181), serial_suffix="-cr")
    cpe.tree["Device.ManagementServer.ConnectionRequestURL"].value = url
    cpe.tree["Device.ManagementServer.ConnectionRequestUsername"].value = "cr-user"
    try:
        await run_session(cpe, "127.0.0.1", acs.port)
        cfg = AcsConfig(  # type: ignore[arg-type]
            connection_request_password="cr-pass", connection_request_allow_loopback=True
        )
        task_id, outcome = await tasks.queue(acs.pool, cfg, cpe.device_id, "reboot", {}, "test")
        assert outcome == "ok" and listener.accepted == 1
        await asyncio.wait_for(listener.called.wait(), 5)
        cpe.seen.clear()
        await run_session(cpe, "127.0.0.1", acs.port)  # what the CPE does when poked
        assert cpe.seen == ["Reboot"]
        task = await store.get_task(acs.pool, task_id)
        assert task is not None and task["status"] == "done"
        bad = AcsConfig(  # type: ignore[arg-type]
            connection_request_password="wrong", connection_request_allow_loopback=True
        )
        _, refused = await tasks.queue(acs.pool, bad, cpe.device_id, "reboot", {}, "test")
        assert refused == "unauthorized"
        await listener.close()
        _, gone = await tasks.queue(acs.pool, cfg, cpe.device_id, "reboot", {}, "test")
        assert gone == "unreachable"
    finally:
        await listener.close()


async def test_connection_request_with_basic(acs: AcsServer) -> None:
    listener = ConnectionRequests("cr-basic", "cr-pass", scheme="basic")
    url = await listener.start()
    cpe = Cpe(load_model(TR181), serial_suffix="-crb")
    cpe.tree["Device.ManagementServer.ConnectionRequestURL"].value = url
    try:
        await run_session(cpe, "127.0.0.1", acs.port)
        cfg = AcsConfig(  # type: ignore[arg-type]
            connection_request_username="cr-basic",
            connection_request_password="cr-pass",
            connection_request_allow_loopback=True,
            connection_request_basic=True,  # Basic only when configured (issue 26)
        )
        _, outcome = await tasks.queue(acs.pool, cfg, cpe.device_id, "reboot", {}, "test")
        assert outcome == "ok" and listener.accepted == 1
    finally:
        await listener.close()
