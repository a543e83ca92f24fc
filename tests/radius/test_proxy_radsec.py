"""netd proxying a realm over RadSec (RFC 6614) and RADIUS/TCP (RFC 6613) to a home
server (issue 28): the proxy's `transport = "tls"` / `"tcp"` home servers go through
`StreamUpstream`. The home server is a second netd with its RadSec listener (its NAS
`own` is our client certificate, by fingerprint; over TCP, `lo` by address).

    radtest ──UDP──▶ netd (realms.toml) ──TLS/TCP──▶ netd (RadSec/TCP listener)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from daemons.radius.codec import Code, decode
from tests.conftest import StoreUrls
from tests.radius.conftest import SECRET, RadiusServer
from tests.radius.proxy_support import accounting_request, exchange, proxy_netd, radtest
from tests.radius.radsec_stack import OWN_NAS, RadsecServer, radsec

__all__ = ["radsec"]


def realms(home: RadsecServer) -> str:
    pki = home.certs
    return f"""
[realms."tls.example"]
action = "proxy"
pool = "over-tls"

[realms."tcp.example"]
action = "proxy"
pool = "over-tcp"

[home_servers.home-tls]
address = "127.0.0.1"
transport = "tls"
auth_port = {home.tls_port}
tls_ca = "{pki.ca.path}"
tls_cert = "{pki.own[0]}"
tls_key = "{pki.own[1]}"

[home_servers.home-tcp]
address = "127.0.0.1"
transport = "tcp"
auth_port = {home.tcp_port}
secret = "{SECRET.decode()}"

[home_server_pools.over-tls]
type = "fail-over"
servers = ["home-tls"]

[home_server_pools.over-tcp]
type = "fail-over"
servers = ["home-tcp"]
"""


@pytest.fixture(scope="module")
async def front(
    store_urls: StoreUrls, radsec: RadsecServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RadiusServer]:
    tmp = tmp_path_factory.mktemp("front")
    async with proxy_netd(store_urls.postgres, store_urls.redis, tmp, realms(radsec)) as server:
        yield server


@pytest.mark.parametrize("realm", ["tls.example", "tcp.example"])
def test_a_realm_proxied_over_a_stream_is_answered(front: RadiusServer, realm: str) -> None:
    ok = radtest(front.port, f"alice@{realm}", "pw1")  # the home netd's alice
    assert "Received Access-Accept" in ok, ok
    bad = radtest(front.port, f"alice@{realm}", "wrong")
    assert "Received Access-Reject" in bad, bad
    server = "home-tls" if realm == "tls.example" else "home-tcp"
    assert front.metric("netd_radius_proxy_answers_total", server=server, code="ACCESS_ACCEPT") >= 1


async def test_accounting_proxied_over_radsec_reaches_the_home_ledger(
    front: RadiusServer, radsec: RadsecServer
) -> None:
    """Acknowledged to the NAS once the home netd has answered over TLS, i.e. after its
    ledger commit: the row is there, under the NAS its certificate names."""
    session = f"rs-{time.time_ns()}"
    reply = exchange(front.acct_port, accounting_request(7, "alice@tls.example", session))
    assert reply is not None and decode(reply).code == Code.ACCOUNTING_RESPONSE
    rows = await radsec.pool.fetch(
        "SELECT nas, status_type FROM accounting_events WHERE acct_session_id = $1", session
    )
    assert [(r["nas"], r["status_type"]) for r in rows] == [(OWN_NAS, 1)]
