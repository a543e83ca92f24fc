"""CPEs behind NAT (issue 24): the ACS's STUN server answers STUN clients nobody here wrote
(coturn's turnutils_stunclient, RFC 5389; Vovida's `stun`, the classic RFC 3489 TR-111
CPEs speak), and a simulated CPE behind a NAT port mapping with address-dependent
filtering learns its binding, reports it, and is woken by the signed UDP connection
request when a task is queued (from the API's process, handed to the ACS by NOTIFY)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from daemons.acs import tasks as acs_tasks
from daemons.core.config import AcsConfig
from daemons.store import acs as store
from tests.acs.conftest import AcsServer
from tests.acs.sim import Cpe, UdpCpe, load_model, model_files, run_session
from tests.support import free_port, free_udp_port

STUN_PORT = free_udp_port()
ACS_ENV = {
    "NETD_ACS_STUN_PORT": str(STUN_PORT),
    "NETD_ACS_CONNECTION_REQUEST_USERNAME": "cr-user",
    "NETD_ACS_CONNECTION_REQUEST_PASSWORD": "cr-secret",
}
MODEL = {p.stem: p for p in model_files()}["device-1C61B4-EX220-2226469000523"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed (Debian: coturn for turnutils_stunclient, "
            "stun-client for stun); .ci/run installs them"
        )
    return path


def test_turnutils_stunclient_gets_its_reflexive_address(acs: AcsServer) -> None:
    out = subprocess.run(
        [_tool("turnutils_stunclient"), "-p", str(STUN_PORT), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "UDP reflexive addr: 127.0.0.1:" in out.stdout, out.stdout


def test_classic_rfc3489_client_gets_a_binding(acs: AcsServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        src = s.getsockname()[1]
    out = subprocess.run(
        [_tool("stun"), f"127.0.0.1:{STUN_PORT}", "-v", "-p", str(src)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    text = out.stdout + out.stderr
    # Test I (a plain Binding) is answered with the client's own address; the tests that
    # ask for an answer from another address go unanswered: this server has one address.
    assert "test I = 1" in text and "mapped IP same = 1" in text, text
    assert acs.metric("netd_acs_stun_total", what="answered") >= 1


async def test_a_cpe_behind_nat_is_woken_by_a_udp_connection_request(acs: AcsServer) -> None:
    cpe = Cpe(load_model(MODEL), serial_suffix="-nat")
    # Its HTTP URL is a private address nobody can reach: only UDP can wake it.
    cpe.tree["Device.ManagementServer.ConnectionRequestURL"].value = "http://127.0.0.2:9/cr"
    udp = UdpCpe(cpe, "cr-user", "cr-secret")
    mapped = await udp.bind("127.0.0.1", STUN_PORT)
    assert mapped.startswith("127.0.0.1:")
    await run_session(cpe, "127.0.0.1", acs.port)  # registers, discovers: learns the binding
    device = await store.get_device(acs.pool, cpe.device_id)
    assert device is not None
    assert (device["udp_connection_request_address"], device["stun_enabled"]) == (mapped, True)
    # A task queued from another process (here the test, as the API would): the ACS's
    # STUN socket sends the request, which the NAT lets in.
    cfg = AcsConfig(
        stun_port=STUN_PORT,
        connection_request_allow_loopback=True,
        connection_request_username="cr-user",
        connection_request_password="cr-secret",  # type: ignore[arg-type]
    )
    tid, outcome = await acs_tasks.queue(
        acs.pool,
        cfg,
        cpe.device_id,
        "getParameterValues",
        {"names": ["Device.DeviceInfo.UpTime"]},
        "test",
    )
    assert outcome == "udp-queued"
    await asyncio.wait_for(udp.called.wait(), 5)
    assert udp.accepted == 1 and udp.refused == []
    await run_session(cpe, "127.0.0.1", acs.port)  # what a woken CPE does
    task = await store.get_task(acs.pool, tid)
    assert task is not None and task["status"] == "done"
    assert acs.metric("netd_acs_stun_total", what="udp-connection-request") >= 3  # copies
    # A request from anywhere but the STUN server's address does not get through the NAT.
    assert udp.nat.transport is not None
    public = udp.nat.transport.get_extra_info("sockname")[:2]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"GET http://x?ts=1 HTTP/1.1\r\n\r\n", public)
    await asyncio.sleep(0.2)
    assert udp.nat.dropped == 1 and udp.accepted == 1
    udp.nat.close()


def test_a_stun_port_in_use_stops_the_acs_with_one_line(tmp_path: Path, acs: AcsServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        env = {
            **acs.env,
            "NETD_ACS_PORT": str(free_port()),
            "NETD_ACS_STATUS_PORT": str(free_port()),
            "NETD_ACS_STUN_PORT": str(taken.getsockname()[1]),
            "NETD_STATE_DIR": str(tmp_path / "state"),
        }
        out = subprocess.run(
            [sys.executable, "-m", "daemons.cli", "acs"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    assert "acs.stun_port" in out.stderr + out.stdout, out.stderr + out.stdout
