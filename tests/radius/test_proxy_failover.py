"""A home server that is stopped, then hangs (a socket that reads and never answers), then
comes back (issue 28), with FreeRADIUS as the home servers behind netd:

- realm ``isp.example`` → pool ``isp`` (fail-over: home-a, then home-b): Access-Requests
  fail over to home-b while home-a is away, and go back to home-a once Status-Server
  (RFC 5997) has found it alive again;
- realm ``solo.example`` → pool ``solo`` (home-a alone): while home-a is away the pool is
  dead, its accounting is acknowledged from the proxy spool (PostgreSQL) and reaches
  home-a when it is back (a session's records in order: tests/faults/test_proxy_spool_kill9).

Counted and compared: requests sent, answered, acknowledged, and the records the home
servers wrote. The numbers are printed (``pytest -s``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from benchmarks.freeradius_roles import Running, home_server, start_home
from tests.conftest import StoreUrls
from tests.radius.conftest import RadiusServer, wait_until
from tests.radius.proxy_support import (
    HOME_SECRET,
    access_request,
    accounting_request,
    exchange,
    proxy_netd,
)

REALMS = """
[realms."isp.example"]
action = "proxy"
pool = "isp"

[realms."solo.example"]
action = "proxy"
pool = "solo"

[home_servers.home-a]
address = "127.0.0.1"
auth_port = {a_auth}
acct_port = {a_acct}
secret = "{secret}"
response_window = 1.0
zombie_period = 2.0
status_interval = 0.5
answers_to_alive = 2

[home_servers.home-b]
address = "127.0.0.1"
auth_port = {b_auth}
acct_port = {b_acct}
secret = "{secret}"
response_window = 1.0

[home_server_pools.isp]
type = "fail-over"
servers = ["home-a", "home-b"]

[home_server_pools.solo]
type = "fail-over"
servers = ["home-a"]
"""


@dataclass
class Tally:
    auth_sent: int = 0
    auth_accepted: int = 0
    acct_sent: int = 0
    acct_acked: int = 0
    sessions: list[str] = field(default_factory=list)

    def auth(self, port: int, n: int) -> None:
        for i in range(n):
            self.auth_sent += 1
            reply = exchange(port, access_request(i % 256, "user00001@isp.example", "pw-00001"), 8)
            self.auth_accepted += reply is not None and reply[0] == 2

    def acct(self, port: int, n: int, label: str) -> None:
        for i in range(n):
            session = f"{label}-{i}"
            self.acct_sent += 1
            reply = exchange(
                port, accounting_request(i % 256, "user00002@solo.example", session), 8
            )
            if reply is not None and reply[0] == 5:
                self.acct_acked += 1
                self.sessions.append(session)


class Hang:
    """A socket on a home server's ports that reads every request and never answers."""

    def __init__(self, ports: tuple[int, int]) -> None:
        self.socks = []
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", port))
            sock.settimeout(0.2)
            self.socks.append(sock)
        self.read = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for sock in self.socks:
                try:
                    sock.recv(4096)
                    self.read += 1
                except TimeoutError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.close()


@pytest.fixture(scope="module")
def homes() -> Iterator[tuple[Running, Running]]:
    with home_server(HOME_SECRET) as a, home_server(HOME_SECRET) as b:
        yield a, b


@pytest.fixture(scope="module")
async def netd(
    store_urls: StoreUrls, tmp_path_factory: pytest.TempPathFactory, homes: tuple[Running, Running]
) -> AsyncIterator[RadiusServer]:
    a, b = homes
    realms = REALMS.format(
        a_auth=a.auth_port,
        a_acct=a.acct_port,
        b_auth=b.auth_port,
        b_acct=b.acct_port,
        secret=HOME_SECRET,
    )
    async with proxy_netd(
        store_urls.postgres, store_urls.redis, tmp_path_factory.mktemp("failover"), realms
    ) as server:
        yield server


def test_stopped_then_hanging_then_back(netd: RadiusServer, homes: tuple[Running, Running]) -> None:
    a, b = homes
    tally = Tally()
    accepted = lambda server: netd.metric(  # noqa: E731
        "netd_radius_proxy_answers_total", server=server, code="ACCESS_ACCEPT"
    )

    # 1. Both up: home-a answers.
    tally.auth(netd.port, 5)
    tally.acct(netd.acct_port, 5, "up")
    assert accepted("home-a") == 5 and accepted("home-b") == 0

    # 2. home-a stopped: logins fail over to home-b, solo's accounting is spooled.
    a.stop()
    tally.auth(netd.port, 5)
    tally.acct(netd.acct_port, 5, "stopped")
    assert accepted("home-b") == 5
    wait_until(lambda: netd.metric("netd_radius_home_server_state", server="home-a") == 0, 10)

    # 3. home-a hangs: reads, never answers; Status-Server probes go unanswered.
    hang = Hang((a.auth_port, a.acct_port))
    try:
        time.sleep(1.5)
        tally.auth(netd.port, 5)
        tally.acct(netd.acct_port, 5, "hanging")
        assert accepted("home-b") == 10
        assert hang.read >= 1  # probes reached the hanging socket
    finally:
        hang.close()
    assert netd.metric("netd_radius_home_server_state", server="home-a") == 0

    # 4. home-a back on its ports: Status-Server marks it alive, the spool reaches it.
    back = start_home(a.confdir, HOME_SECRET, a.auth_port, a.acct_port)
    try:
        wait_until(lambda: netd.metric("netd_radius_home_server_state", server="home-a") == 1, 15)
        tally.auth(netd.port, 5)
        assert accepted("home-a") == 10  # logins are home-a's again
        tally.acct(netd.acct_port, 5, "back")
        wait_until(lambda: {r[1] for r in back.records()} >= set(tally.sessions), 20)
    finally:
        back.stop()
    spooled = netd.metric("netd_radius_proxy_spooled_total", pool="solo")
    forwarded = netd.metric("netd_radius_proxy_spool_forwarded_total", pool="solo")
    home_records = [r[1] for r in back.records()]
    print(
        f"\nfailover: auth sent {tally.auth_sent}, accepted {tally.auth_accepted} "
        f"(home-a {accepted('home-a'):g}, home-b {accepted('home-b'):g}); "
        f"acct sent {tally.acct_sent}, acknowledged {tally.acct_acked}, spooled {spooled:g}, "
        f"forwarded from the spool {forwarded:g}, in home-a's records {len(set(home_records))} "
        f"({len(home_records)} lines); home-b's records {len(b.records())}"
    )
    assert tally.auth_accepted == tally.auth_sent == 20
    assert tally.acct_acked == tally.acct_sent == 20
    assert spooled == forwarded >= 10  # the stopped and hanging phases' records (at least)
    assert set(home_records) == set(tally.sessions)
