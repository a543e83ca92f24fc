"""The proxy's UDP upstream against FreeRADIUS 3.2 as the home server (brief f28): more than
256 requests in flight to one home server (a pool of source ports, each its own
identifiers), and Status-Server to the accounting port of a home server used only for
accounting (``status_check = "acct"``), which revives it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from benchmarks.freeradius_roles import Running, home_server
from daemons.radius.codec import check_response_authenticator, decode
from tests.conftest import StoreUrls
from tests.radius.conftest import SECRET, RadiusServer, wait_until
from tests.radius.proxy_support import HOME_SECRET, access_request, accounting_request, proxy_netd

REALMS = """
[realms."isp.example"]
action = "proxy"
pool = "isp"

[realms."slow.example"]
action = "proxy"
pool = "slow"

[realms."acct.example"]
action = "proxy"
pool = "acct-only"

[home_servers.home-a]
address = "127.0.0.1"
auth_port = {auth}
acct_port = {acct}
secret = "{secret}"
response_window = 5.0

[home_servers.home-acct]  # used only for accounting: nothing listens on its auth_port
address = "127.0.0.1"
auth_port = {closed}
acct_port = {acct_only}
secret = "{secret}"
status_check = "acct"
response_window = 0.5
zombie_period = 0.5
status_interval = 0.5
answers_to_alive = 1

[home_servers.home-slow]  # reads every request, never answers (a slow home server)
address = "127.0.0.1"
auth_port = {slow}
acct_port = {slow}
secret = "{secret}"
response_window = 30.0
zombie_period = 60.0

[home_server_pools.slow]
type = "fail-over"
servers = ["home-slow"]

[home_server_pools.isp]
type = "fail-over"
servers = ["home-a"]

[home_server_pools.acct-only]
type = "fail-over"
servers = ["home-acct"]
"""


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONCURRENT = 600  # over the 256 identifiers of one source port
SOCKETS = 3  # NAS sockets, 200 requests each (each its own 256 identifiers)


@pytest.fixture(scope="module")
def home() -> Iterator[Running]:
    with home_server(HOME_SECRET, {"bob": "bob-pw"}) as running:
        yield running


@pytest.fixture(scope="module")
def silent() -> Iterator[socket.socket]:
    """The accounting-only server's port before it comes up: reads, never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


@pytest.fixture(scope="module")
def slow() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.bind(("127.0.0.1", 0))
        yield sock


@pytest.fixture(scope="module")
def closed_port() -> int:
    return udp_port()


@pytest.fixture(scope="module")
async def netd(
    store_urls: StoreUrls,
    tmp_path_factory: pytest.TempPathFactory,
    home: Running,
    silent: socket.socket,
    slow: socket.socket,
    closed_port: int,
) -> AsyncIterator[RadiusServer]:
    tmp = tmp_path_factory.mktemp("proxy-pool")
    realms = _realms(home, closed_port, silent.getsockname()[1], slow.getsockname()[1])
    async with proxy_netd(store_urls.postgres, store_urls.redis, tmp, realms) as server:
        yield server


def _realms(home: Running, closed: int, acct_only: int, slow: int) -> str:
    return REALMS.format(
        slow=slow,
        auth=home.auth_port,
        acct=home.acct_port,
        closed=closed,
        acct_only=acct_only,
        secret=HOME_SECRET,
    )


def _nas_sockets() -> list[socket.socket]:
    socks = []
    for _ in range(SOCKETS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        socks.append(sock)
    return socks


def test_more_than_256_requests_outstanding_at_a_slow_home_server(
    netd: RadiusServer, slow: socket.socket
) -> None:
    """On main: one source port, 256 identifiers; the rest were dropped as overload."""
    socks = _nas_sockets()
    try:
        for s, sock in enumerate(socks):
            for ident in range(CONCURRENT // SOCKETS):
                user = f"u{s}-{ident}@slow.example"
                sock.sendto(access_request(ident, user, "pw"), ("127.0.0.1", netd.port))
        seen: set[tuple[int, int]] = set()  # (netd's source port, identifier)
        slow.settimeout(0.5)
        deadline = time.monotonic() + 15
        while len(seen) < CONCURRENT and time.monotonic() < deadline:
            try:
                data, addr = slow.recvfrom(4096)
            except TimeoutError:
                continue
            seen.add((addr[1], data[1]))
    finally:
        for sock in socks:
            sock.close()
    assert len(seen) == CONCURRENT, len(seen)
    assert len({port for port, _ in seen}) > 1  # more than one source port
    assert netd.metric("netd_radius_drops_total", reason="overload") == 0


def test_more_than_256_requests_in_flight_to_one_home_server(netd: RadiusServer) -> None:
    """And against FreeRADIUS: 600 sent at once, every one answered and checked."""
    socks: list[socket.socket] = []
    sent: dict[tuple[int, int], bytes] = {}
    try:
        socks = _nas_sockets()
        for s in range(SOCKETS):
            for ident in range(CONCURRENT // SOCKETS):
                packet = access_request(ident, "bob@isp.example", "bob-pw")
                sent[(s, ident)] = packet
        for (s, _ident), packet in sent.items():  # all before any answer is read
            socks[s].sendto(packet, ("127.0.0.1", netd.port))
        accepted = 0
        deadline = time.monotonic() + 20
        while accepted < CONCURRENT and time.monotonic() < deadline:
            for s, sock in enumerate(socks):
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                request = sent.pop((s, data[1]), None)
                assert request is not None, "a reply to no request"
                assert check_response_authenticator(data, request[4:20], SECRET)
                assert decode(data).code == 2
                accepted += 1
    finally:
        for sock in socks:
            sock.close()
    assert accepted == CONCURRENT, (accepted, netd.metric("netd_radius_drops_total"))
    assert (
        netd.metric("netd_radius_proxy_answers_total", server="home-a", code="ACCESS_ACCEPT")
        >= CONCURRENT
    )


def _state(netd: RadiusServer, server: str) -> str | None:
    for line in netd.metrics().splitlines():
        if line.startswith(f'netd_radius_home_server_state{{server="{server}"}}'):
            return line.rsplit(" ", 1)[1]
    return None


def test_an_accounting_only_server_is_revived_by_status_server_to_its_acct_port(
    netd: RadiusServer, silent: socket.socket
) -> None:
    """On main: probes went to auth_port only, so this server stayed dead for ever."""
    session = f"acct-only-{time.time_ns()}"
    packet = accounting_request(9, "carol@acct.example", session)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nas:
        nas.bind(("127.0.0.1", 0))
        nas.settimeout(10)
        nas.sendto(packet, ("127.0.0.1", netd.acct_port))
        reply = nas.recv(4096)  # spooled (durable) once the server is given up
    assert reply[0] == 5, reply
    wait_until(lambda: _state(netd, "home-acct") in ("0", "0.0"), 15)
    # the server comes up: FreeRADIUS on that accounting port (auth_port still closed)
    acct_port = silent.getsockname()[1]
    silent.close()
    with home_server(HOME_SECRET, ports=(udp_port(), acct_port)) as acct:
        before = netd.metric("netd_radius_proxy_answers_total", server="home-acct")
        wait_until(lambda: _state(netd, "home-acct") in ("1", "1.0"), 20)
        assert netd.metric("netd_radius_proxy_answers_total", server="home-acct") > before
        # and the spooled record reaches it
        wait_until(lambda: any(session in r for r in acct.records()), 20)
