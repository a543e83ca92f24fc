"""netd proxying realms to a real home server, FreeRADIUS 3.2 (issue 28), with radtest,
radclient and eapol_test as the NAS; and FreeRADIUS as a proxy in front of netd.

    radtest/radclient/eapol_test ──▶ netd (realms.toml) ──▶ FreeRADIUS (files, linelog)
    radtest ──▶ FreeRADIUS (proxy.conf realm front.example) ──▶ netd (local realm, stripped)
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from benchmarks.freeradius_roles import Running, home_server, proxy_server
from daemons.radius.codec import Attr, check_response_authenticator, decode
from tests.conftest import StoreUrls
from tests.radius.conftest import SECRET, RadiusServer, wait_until
from tests.radius.proxy_support import (
    HOME_SECRET,
    access_request,
    accounting_request,
    proxy_netd,
    radclient,
    radtest,
    run,
)
from tests.support import tool

REALMS = """
[realms."isp.example"]
action = "proxy"
pool = "isp"
strip = true

[realms."eap.example"]  # EAP: the home server checks User-Name against the EAP identity
action = "proxy"
pool = "isp"
strip = false

[realms."bill.example"]  # a wholesale partner we bill: its accounting in our ledger too
action = "proxy"
pool = "isp"
ledger = true

[realms."front.example"]
action = "local"
strip = true

[realms."gold.example"]  # local, its subscribers on the default plan get fiber-1000
action = "local"
plan = "fiber-1000"

[realms."blocked.example"]
action = "reject"
reason = "no roaming for blocked.example"

[home_servers.home-a]
address = "127.0.0.1"
auth_port = {auth}
acct_port = {acct}
secret = "{secret}"
response_window = 2.0

[home_server_pools.isp]
type = "fail-over"
servers = ["home-a"]
"""


@pytest.fixture(scope="module")
def home() -> Iterator[Running]:
    with home_server(HOME_SECRET, {"bob": "bob-pw", "bob@eap.example": "bob-pw"}) as running:
        yield running


@pytest.fixture(scope="module")
async def netd(
    store_urls: StoreUrls, tmp_path_factory: pytest.TempPathFactory, home: Running
) -> AsyncIterator[RadiusServer]:
    realms = REALMS.format(auth=home.auth_port, acct=home.acct_port, secret=HOME_SECRET)
    async with proxy_netd(
        store_urls.postgres, store_urls.redis, tmp_path_factory.mktemp("proxy"), realms
    ) as server:
        yield server


def test_bob_at_a_proxied_realm_is_answered_by_his_home_server(netd: RadiusServer) -> None:
    """The issue's reproduced problem: on main, bob@isp.example is rejected as unknown."""
    out = radtest(netd.port, "bob@isp.example", "bob-pw")
    assert "Received Access-Accept" in out, out
    assert 'Mikrotik-Rate-Limit = "20M/100M"' in out, out  # the home server's reply items
    bad = radtest(netd.port, "bob@isp.example", "wrong")
    assert "Received Access-Reject" in bad, bad
    assert (
        netd.metric("netd_radius_proxy_answers_total", server="home-a", code="ACCESS_ACCEPT") >= 1
    )


def test_a_rejecting_realm_says_why_and_a_local_realm_is_stripped(netd: RadiusServer) -> None:
    out = radtest(netd.port, "bob@blocked.example", "x")
    assert "Received Access-Reject" in out and "no roaming for blocked.example" in out, out
    local = radtest(netd.port, "alice@front.example", "pw1")  # netd's own alice
    assert "Received Access-Accept" in local, local
    gold = radtest(netd.port, "frank@gold.example", "pw6")  # frank is on "default"
    plain = radtest(netd.port, "frank", "pw6")
    assert "Received Access-Accept" in gold and "Received Access-Accept" in plain, gold + plain
    gold_class = b"plan=fiber-1000".hex()  # radtest prints Class in hex
    assert gold_class in gold and gold_class not in plain, gold + plain


def test_accounting_is_relayed_once_the_home_server_has_it(
    netd: RadiusServer, home: Running
) -> None:
    session = f"acct-{time.time_ns()}"
    out = radclient(
        netd.acct_port,
        "acct",
        f'User-Name = "bob@isp.example", Acct-Status-Type = Start, Acct-Session-Id = "{session}"\n',
    )
    assert out.returncode == 0 and "Accounting-Response" in out.stdout, out.stdout + out.stderr
    assert ["Start", session, "bob", "0"] in home.records()


def test_a_retransmit_is_answered_without_a_second_request_upstream(netd: RadiusServer) -> None:
    before = netd.metric("netd_radius_proxy_requests_total", server="home-a", code="ACCESS_REQUEST")
    packet = access_request(77, "bob@isp.example", "bob-pw")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        for _ in range(3):  # the NAS retransmits before and after the answer
            sock.sendto(packet, ("127.0.0.1", netd.port))
        replies = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                replies.add(sock.recv(4096))
            except TimeoutError:
                break
            sock.sendto(packet, ("127.0.0.1", netd.port))  # after the answer: from the cache
            if len(replies) >= 1 and netd.metric("netd_radius_duplicates_total", nas="lo") >= 1:
                break
    assert len(replies) == 1, replies  # the same reply every time
    reply = decode(replies.pop())
    assert reply.code == 2 and reply.get(Attr.MESSAGE_AUTHENTICATOR) is not None
    assert check_response_authenticator(reply.raw, packet[4:20], SECRET)
    after = netd.metric("netd_radius_proxy_requests_total", server="home-a", code="ACCESS_REQUEST")
    assert after - before == 1


def test_eap_md5_through_netd_to_the_home_server(netd: RadiusServer, tmp_path: Path) -> None:
    eapol = tool("eapol_test", "eapoltest")
    conf = tmp_path / "eap.conf"

    def attempt(password: str) -> str:
        conf.write_text(
            "network={\n\tkey_mgmt=IEEE8021X\n\teap=MD5\n"
            f'\tidentity="bob@eap.example"\n\tpassword="{password}"\n\teapol_flags=0\n}}\n'
        )
        out = run(
            [
                eapol,
                "-n",
                "-c",
                str(conf),
                "-a",
                "127.0.0.1",
                "-p",
                str(netd.port),
                "-s",
                SECRET.decode(),
                "-t",
                "8",
            ]
        )
        return out.stdout

    ok = attempt("bob-pw")
    assert "CTRL-EVENT-EAP-SUCCESS" in ok, ok[-3000:]
    bad = attempt("nope")
    assert "CTRL-EVENT-EAP-FAILURE" in bad, bad[-3000:]


def test_freeradius_as_a_proxy_in_front_of_netd(netd: RadiusServer) -> None:
    with proxy_server(
        "front-s3cret", SECRET.decode(), netd.port, netd.acct_port, "front.example"
    ) as front:
        out = radtest(front.auth_port, "alice@front.example", "pw1", "front-s3cret")
        assert "Received Access-Accept" in out, out
        bad = radtest(front.auth_port, "alice@front.example", "nope", "front-s3cret")
        assert "Received Access-Reject" in bad, bad
        acct = radclient(
            front.acct_port,
            "acct",
            'User-Name = "alice@front.example", Acct-Status-Type = Start, '
            'Acct-Session-Id = "front-1", NAS-IP-Address = 127.0.0.1\n',
            "front-s3cret",
        )
        assert acct.returncode == 0 and "Accounting-Response" in acct.stdout, (
            acct.stdout + acct.stderr
        )


def test_accounting_packet_helper_is_accepted(netd: RadiusServer, home: Running) -> None:
    from tests.radius.proxy_support import exchange  # noqa: PLC0415

    reply = exchange(netd.acct_port, accounting_request(9, "bob@isp.example", "helper-1"))
    assert reply is not None and reply[0] == 5
    wait_until(lambda: ["Start", "helper-1", "bob", "0"] in home.records())


async def test_a_ledger_realm_is_in_the_home_servers_records_and_ours(
    netd: RadiusServer, home: Running
) -> None:
    session = f"bill-{time.time_ns()}"
    out = radclient(
        netd.acct_port,
        "acct",
        f'User-Name = "carol@bill.example", Acct-Status-Type = Start, '
        f'Acct-Session-Id = "{session}"\n',
    )
    assert out.returncode == 0 and "Accounting-Response" in out.stdout, out.stdout + out.stderr
    assert ["Start", session, "carol", "0"] in home.records()
    rows = await netd.pool.fetch(
        "SELECT username, status_type FROM accounting_events WHERE acct_session_id = $1", session
    )
    assert [(r["username"], r["status_type"]) for r in rows] == [("carol@bill.example", 1)]


async def test_a_realm_managed_through_the_api_applies_without_a_reload(
    netd: RadiusServer,
) -> None:
    from daemons.store import api as api_store  # noqa: PLC0415

    await api_store.put_realm(
        netd.pool, "api.example", {"action": "reject", "reason": "managed through the API"}
    )
    deadline = time.monotonic() + 10
    out = ""
    while time.monotonic() < deadline:  # NOTIFY, then the proxy shell rebuilds its policy
        out = radtest(netd.port, "bob@api.example", "x")
        if "managed through the API" in out:
            break
        await asyncio.sleep(0.2)
    assert "Received Access-Reject" in out and "managed through the API" in out, out
    await api_store.delete_realm(netd.pool, "api.example")


def test_realm_commands_on_the_local_stores(netd: RadiusServer) -> None:
    import json  # noqa: PLC0415

    from tests.support import netd_env, run_netd  # noqa: PLC0415

    tmp = netd.proc.log_path.parent
    env = netd_env(
        {
            "NETD_DATABASE_URL": netd.database,
            "NETD_REDIS_URL": netd.redis_url,
            "NETD_REDIS_KEY_PREFIX": netd.prefix,
            "NETD_SECRETS_KEY": netd.key.hex(),
            "NETD_POLICIES_DIR": str(tmp / "policies"),
            "NETD_STATE_DIR": str(tmp / "state"),
        }
    )

    def netd_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_netd(env, tmp, *args)

    made = netd_cli("realm", "set", "cli.example", "--realm-action", "reject", "--reason", "CLI")
    assert made.returncode == 0, made.stdout + made.stderr
    listed = [json.loads(line) for line in netd_cli("realm", "list", "--json").stdout.splitlines()]
    assert {
        "name": "cli.example",
        "source": "api",
        "spec": {"action": "reject", "reason": "CLI"},
    } in listed
    assert {r["name"] for r in listed if r["source"] == "file"} >= {"isp.example", "eap.example"}
    filed = netd_cli("realm", "set", "isp.example", "--realm-action", "local")
    assert filed.returncode == 1 and "edit the file" in filed.stderr, filed.stderr
    nopool = netd_cli("realm", "set", "x.example", "--realm-action", "proxy", "--pool", "nope")
    assert nopool.returncode == 2 and len(nopool.stderr.strip().splitlines()) == 1, nopool.stderr
    servers = [
        json.loads(x) for x in netd_cli("realm", "home-servers", "--json").stdout.splitlines()
    ]
    assert [(s["name"], s["pools"]) for s in servers] == [("home-a", ["isp"])]
    deadline = time.monotonic() + 10
    out = ""
    while time.monotonic() < deadline and "CLI" not in out:
        out = radtest(netd.port, "bob@cli.example", "x")
    assert "Received Access-Reject" in out and "CLI" in out, out
    assert netd_cli("realm", "remove", "cli.example").returncode == 0
