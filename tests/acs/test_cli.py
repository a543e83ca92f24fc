"""`netd cpe ...` on the stores, after a simulated CPE has called in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.acs.conftest import AcsServer
from tests.acs.sim import Cpe, load_model, model_files, run_session


def netd(acs: AcsServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", *args],
        capture_output=True,
        text=True,
        env=acs.env,
        timeout=60,
        check=False,
    )


async def test_cpe_commands(acs: AcsServer) -> None:
    cpe = Cpe(load_model(model_files()[1]), serial_suffix="-cli")
    await run_session(cpe, "127.0.0.1", acs.port)
    listed = [json.loads(x) for x in netd(acs, "cpe", "list", "--q=-cli").stdout.splitlines()]
    assert [d["id"] for d in listed] == [cpe.device_id]
    shown = json.loads(netd(acs, "cpe", "show", cpe.device_id).stdout)
    assert shown["serial"] == cpe.serial and shown["discovered_at"]
    prefix = cpe.root + "DeviceInfo."
    params = [
        json.loads(x)
        for x in netd(acs, "cpe", "params", cpe.device_id, "--prefix", prefix).stdout.splitlines()
    ]
    assert params and all(p["name"].startswith(prefix) for p in params)
    queued = netd(
        acs,
        "cpe",
        "task",
        cpe.device_id,
        "getParameterValues",
        "--args",
        json.dumps({"names": [prefix + "SoftwareVersion"]}),
    )
    assert queued.returncode == 0, queued.stderr
    task = json.loads(queued.stdout)
    assert task["connection_request"] == "not-sent"  # no ConnectionRequestURL: not poked
    second = json.loads(netd(acs, "cpe", "task", cpe.device_id, "reboot", "--no-poke").stdout)
    assert netd(acs, "cpe", "cancel", str(second["task"])).returncode == 0
    assert netd(acs, "cpe", "cancel", str(second["task"])).returncode == 1
    cpe.seen.clear()
    await run_session(cpe, "127.0.0.1", acs.port)
    assert cpe.seen == ["GetParameterValues"]
    rows = [
        json.loads(x)
        for x in netd(acs, "cpe", "tasks", "--device", cpe.device_id).stdout.splitlines()
    ]
    assert [(r["kind"], r["status"]) for r in rows] == [
        ("getParameterValues", "done"),
        ("reboot", "cancelled"),
    ]
    bad = netd(acs, "cpe", "task", cpe.device_id, "setParameterValues", "--args", "[1]")
    assert bad.returncode == 2 and "JSON object" in bad.stderr
    missing = netd(acs, "cpe", "task", cpe.device_id, "setParameterValues")
    assert missing.returncode == 2 and "needs values" in missing.stderr
    assert netd(acs, "cpe", "faults").returncode == 0
    assert netd(acs, "cpe", "presets").returncode == 0


async def test_file_commands(acs: AcsServer, tmp_path: object) -> None:
    image = os.urandom(50_000)
    path = Path(str(tmp_path)) / "fw.bin"
    path.write_bytes(image)
    put = netd(acs, "cpe", "file-put", "fw-2.0.bin", str(path), "--version", "2.0")
    assert put.returncode == 0, put.stderr
    info = json.loads(put.stdout)
    assert info["size"] == len(image) and info["version"] == "2.0"
    names = [json.loads(x)["name"] for x in netd(acs, "cpe", "files").stdout.splitlines()]
    assert "fw-2.0.bin" in names
    async with httpx.AsyncClient() as c:
        got = await c.get(f"http://127.0.0.1:{acs.port}/files/fw-2.0.bin")
    assert got.status_code == 200 and got.content == image
    assert netd(acs, "cpe", "file-remove", "fw-2.0.bin").returncode == 0
    assert netd(acs, "cpe", "file-remove", "fw-2.0.bin").returncode == 1
    bad = netd(acs, "cpe", "file-put", "../evil", str(path))
    assert bad.returncode == 2 and "name" in bad.stderr
