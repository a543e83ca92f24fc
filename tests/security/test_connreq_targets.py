"""Issue 26: connection requests cannot be turned against the operator.

A hostile CPE reports a ConnectionRequestURL (or a UDP binding) that points at the
operator's own side; the ACS and the API (real `netd acs` and `netd api`) must not send it
anything, nor answer a challenge with the connection-request credentials. Attacks tried:
- a loopback URL (the API, a local admin port), a link-local one (169.254.169.254, the
  cloud metadata service; fe80::), an address in the operator's internal networks, an
  address other than the one the CPE informs from, a host name (DNS rebinding);
- a UDP binding on a link-local address;
- a real CPE listener that redirects the request elsewhere (not followed);
- a listener offering only Basic (the password in clear): refused unless configured.
Each refusal: no packet to the target, an event, a metric, the outcome ``refused-<why>``.
"""

# ruff: noqa: F811 - the ACS fixtures are imported from tests/acs and used by name
from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest

from daemons.acs import tasks as acs_tasks
from daemons.core.config import AcsConfig
from daemons.store import acs as store
from tests.acs.conftest import AcsServer, acs, acs_api  # noqa: F401 - fixtures: a process each
from tests.acs.sim import ConnectionRequests, Cpe, load_model, model_files, run_session

CR_PASSWORD = "cr-secret-26-never-sent"
ACS_ENV = {
    "NETD_ACS_CONNECTION_REQUEST_ALLOW_LOOPBACK": "false",  # the default (tests turn it on)
    "NETD_ACS_CONNECTION_REQUEST_INTERNAL": "10.0.0.0/8,fd00:aaaa::/32",
    "NETD_ACS_CONNECTION_REQUEST_USERNAME": "cr-user",
    "NETD_ACS_CONNECTION_REQUEST_PASSWORD": CR_PASSWORD,
    "NETD_ACS_CONNECTION_REQUEST_TIMEOUT": "1",
}


class Trap:
    """A TCP listener on loopback standing for an operator's service: records every
    connection and what was sent on it, answers 401 Basic (a credential harvester)."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.location = ""  # when set: answer 302 to it instead

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}/"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(3):
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                if self.location:
                    answer = f"HTTP/1.1 302 Found\r\nLocation: {self.location}\r\n"
                else:
                    answer = 'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="x"\r\n'
                writer.write((answer + "Content-Length: 0\r\n\r\n").encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    t = Trap()
    await t.start()
    yield t
    await t.close()


def _metric(url: str, name: str, reason: str) -> float:
    text = httpx.get(url, timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _cpe_reporting(acs: AcsServer, url: str, suffix: str) -> Cpe:
    cpe = Cpe(load_model(model_files()[0]), serial_suffix=suffix)
    cpe.tree[f"{cpe.root}ManagementServer.ConnectionRequestURL"].value = url
    statuses = await run_session(cpe, "127.0.0.1", acs.port)
    assert statuses[-1] == 204, statuses
    device = await store.get_device(acs.pool, cpe.device_id)
    assert device is not None and device["connection_request_url"] == url
    return cpe


HOSTILE = [
    ("loopback", None),  # the trap's own URL: a local service
    ("link-local", "http://169.254.169.254/latest/meta-data/"),
    ("link-local", "http://[fe80::1%25eth0]:7547/"),
    ("internal", "http://10.20.30.40:8080/admin"),
    ("internal", "http://[fd00:aaaa::5]/"),
    ("not-inform-address", "http://192.0.2.10:7547/"),
    ("not-an-address", "http://metadata.google.internal/computeMetadata/v1/"),
    ("bad-url", "http://user:pw@203.0.113.9/"),
]


@pytest.mark.parametrize(("reason", "url"), HOSTILE)
async def test_a_hostile_connection_request_url_is_refused(
    acs: AcsServer, acs_api: tuple[str, str], trap: Trap, reason: str, url: str | None
) -> None:
    base, token = acs_api
    target = url or f"http://127.0.0.1:{trap.port}/"
    cpe = await _cpe_reporting(acs, target, f"-h{zlib.crc32(target.encode())}")
    metrics = f"{base}/metrics"
    before = _metric(metrics, "netd_api_connection_requests_refused_total", reason)
    async with httpx.AsyncClient(timeout=10, headers={"authorization": f"Bearer {token}"}) as c:
        resp = await c.post(f"{base}/api/v1/cpes/{cpe.device_id}/connection-request")
        assert resp.status_code == 200, resp.text
        assert resp.json()["outcome"] == f"refused-{reason}"
        queued = await c.post(
            f"{base}/api/v1/cpes/{cpe.device_id}/tasks", json={"kind": "reboot", "args": {}}
        )
        assert queued.status_code == 201, queued.text
        assert queued.json()["connection_request"] == f"refused-{reason}"
    await asyncio.sleep(0.2)
    assert trap.requests == []  # nothing reached the target
    after = _metric(metrics, "netd_api_connection_requests_refused_total", reason)
    assert after == before + 2
    rows = await acs.pool.fetch(
        "SELECT data FROM events WHERE kind = 'cpe.connection_request_refused' AND subject = $1",
        cpe.device_id,
    )
    assert len(rows) == 2
    data = json.loads(rows[0]["data"]) if isinstance(rows[0]["data"], str) else rows[0]["data"]
    assert data["reason"].startswith(reason) and data["inform_ip"] == "127.0.0.1"


async def test_the_acs_dispatcher_refuses_too(acs: AcsServer, acs_api: tuple[str, str]) -> None:
    """A bulk run's connection requests leave from the ACS: the same check, its metric."""
    base, token = acs_api
    cpe = await _cpe_reporting(acs, "http://169.254.169.254/", "-bulk26")
    await acs.pool.execute(
        "UPDATE cpe_devices SET tags = ARRAY['cr26'] WHERE id = $1", cpe.device_id
    )
    status = f"http://127.0.0.1:{acs.status_port}/metrics"
    before = _metric(status, "netd_acs_connection_requests_refused_total", "link-local")
    async with httpx.AsyncClient(timeout=10, headers={"authorization": f"Bearer {token}"}) as c:
        resp = await c.post(
            f"{base}/api/v1/cpe-bulk", json={"filter": {"tags": ["cr26"]}, "kind": "reboot"}
        )
        assert resp.status_code == 201, resp.text
    for _ in range(50):
        if _metric(status, "netd_acs_connection_requests_refused_total", "link-local") > before:
            break
        await asyncio.sleep(0.1)
    assert _metric(status, "netd_acs_connection_requests_refused_total", "link-local") == before + 1
    assert acs.metric("netd_acs_connection_requests_total", outcome="refused-link-local") >= 1


async def test_a_udp_binding_on_a_link_local_address_is_refused(acs: AcsServer) -> None:
    cpe = await _cpe_reporting(acs, "", "-udp26")
    await acs.pool.execute(
        "UPDATE cpe_devices SET stun_enabled = true, "
        "udp_connection_request_address = '169.254.10.10:5000' WHERE id = $1",
        cpe.device_id,
    )
    device = await store.get_device(acs.pool, cpe.device_id)
    assert device is not None
    sent: list[tuple[str, int, bytes]] = []
    counted: list[str] = []
    cfg = AcsConfig(stun_port=3478)
    outcome = await acs_tasks.poke_device(
        acs.pool, cfg, device, lambda h, p, d: sent.append((h, p, d)), counted.append
    )
    assert outcome == "refused-link-local" and sent == [] and counted == ["link-local"]


async def test_redirects_are_not_followed_and_basic_only_when_configured(
    acs: AcsServer, trap: Trap
) -> None:
    """A CPE on loopback (a lab: connection_request_allow_loopback) whose listener
    redirects to another service, then one that asks for Basic."""
    lab = AcsConfig(  # type: ignore[arg-type]
        connection_request_allow_loopback=True,
        connection_request_username="cr-user",
        connection_request_password=CR_PASSWORD,
        connection_request_timeout=2,
    )
    elsewhere = Trap()
    await elsewhere.start()
    try:
        trap.location = f"http://127.0.0.1:{elsewhere.port}/steal"
        cpe = await _cpe_reporting(acs, f"http://127.0.0.1:{trap.port}/cr", "-redir26")
        device = await store.get_device(acs.pool, cpe.device_id)
        assert device is not None
        assert await acs_tasks.poke_device(acs.pool, lab, device) == "http-302"
        assert len(trap.requests) == 1 and elsewhere.requests == []
        assert b"authorization" not in trap.requests[0].lower()
        # Basic only: refused (no credentials sent) unless configured, then answered
        trap.location, trap.requests = "", []
        counted: list[str] = []
        outcome = await acs_tasks.poke_device(acs.pool, lab, device, refused=counted.append)
        assert outcome == "refused-basic" and counted == ["basic"]
        assert len(trap.requests) == 1 and b"authorization" not in trap.requests[0].lower()
    finally:
        await elsewhere.close()
    basic = ConnectionRequests("cr-user", CR_PASSWORD, scheme="basic")
    url = await basic.start()
    try:
        cpe = await _cpe_reporting(acs, url, "-basic26")
        device = await store.get_device(acs.pool, cpe.device_id)
        assert device is not None
        allowed = lab.model_copy(update={"connection_request_basic": True})
        assert await acs_tasks.poke_device(acs.pool, allowed, device) == "ok"
        assert basic.accepted == 1
    finally:
        await basic.close()
    assert CR_PASSWORD not in acs.proc.output()
