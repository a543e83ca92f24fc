"""`kill -9` of a proxying netd between acknowledging accounting and forwarding it (issue 28).

A realm's pool (one FreeRADIUS home server) is dead; netd acknowledges its accounting from
the proxy spool (PostgreSQL, committed before each Accounting-Response). netd is killed
with SIGKILL while the records wait, started again, and the home server comes back: every
acknowledged record reaches it, none is lost. Forwarding is at least once (a record whose
answer came but whose delete did not may be sent twice, same Acct-Session-Id and
Acct-Status-Type: RFC 2866 lets a server see a retransmit); here none is, and the count
of duplicates is printed.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg

from benchmarks.freeradius_roles import home_server, start_home
from daemons.store import radius as store
from tests.conftest import StoreUrls
from tests.faults.conftest import LeakWatch
from tests.radius.conftest import NAS, SECRET, wait_until
from tests.radius.proxy_support import HOME_SECRET, accounting_request, exchange
from tests.stack import seeded_stores
from tests.support import NetdProcess, free_port, free_udp_port

REALMS = """
[realms."solo.example"]
action = "proxy"
pool = "solo"

[home_servers.home]
address = "127.0.0.1"
auth_port = {auth}
acct_port = {acct}
secret = "{secret}"
response_window = 0.5
zombie_period = 1.0
status_interval = 0.3
answers_to_alive = 1

[home_server_pools.solo]
servers = ["home"]
"""
RECORDS = 30
_STATUS = {"Start": 1, "Stop": 2}


async def test_spooled_proxy_accounting_survives_kill9(
    store_urls: StoreUrls, tmp_path: Path, leak_watch: LeakWatch
) -> None:
    with home_server(HOME_SECRET) as home:
        home.stop()  # the pool is dead from the start
        async with seeded_stores(store_urls.postgres, store_urls.redis, "k_", "k") as st:
            leak_watch.add(SECRET, HOME_SECRET, st.key)
            for name, net, secret, vendor, strict in NAS:
                await st.add_nas(name, net, secret, vendor, strict)
            await st.add_subscribers(
                [(store.SubscriberRow("alice", plan="fiber-100"), "pw1", "none")]
            )
            port, acct_port, status_port = free_udp_port(), free_udp_port(), free_port()
            env = st.env(
                tmp_path,
                {
                    "NETD_RADIUS_AUTH_PORT": str(port),
                    "NETD_RADIUS_ACCT_PORT": str(acct_port),
                    "NETD_RADIUS_STATUS_PORT": str(status_port),
                    "NETD_RADIUS_LISTEN": "127.0.0.1",
                },
            )
            (tmp_path / "policies" / "radius" / "realms.toml").write_text(
                REALMS.format(auth=home.auth_port, acct=home.acct_port, secret=HOME_SECRET)
            )
            ready = f"http://127.0.0.1:{status_port}/health/ready"
            daemon = NetdProcess(["radius"], env, tmp_path)
            try:
                daemon.wait_http(ready)
                acked = []
                for i in range(RECORDS):  # Start, then Stop, of RECORDS / 2 sessions
                    session, status = f"k9-{i // 2}", 1 + i % 2
                    packet = accounting_request(i, "u@solo.example", session, status)
                    reply = exchange(acct_port, packet, 8)
                    if reply is not None and reply[0] == 5:
                        acked.append(f"{session}:{status}")
                conn = await asyncpg.connect(st.dsn)
                try:
                    spooled = await conn.fetchval("SELECT count(*) FROM radius_proxy_spool")
                finally:
                    await conn.close()
                daemon.signal(signal.SIGKILL)
                daemon.wait()
            finally:
                if daemon.proc.poll() is None:
                    daemon.proc.kill()
            again = NetdProcess(["radius"], env, tmp_path)
            back = None
            try:
                again.wait_http(ready)
                back = start_home(home.confdir, HOME_SECRET, home.auth_port, home.acct_port)
                wait_until(
                    lambda: {f"{r[1]}:{_STATUS[r[0]]}" for r in back.records()} >= set(acked), 30
                )
                conn = await asyncpg.connect(st.dsn)
                try:
                    for _ in range(50):  # the delete follows the home server's answers
                        left = await conn.fetchval("SELECT count(*) FROM radius_proxy_spool")
                        if not left:
                            break
                        await asyncio.sleep(0.1)
                finally:
                    await conn.close()
            finally:
                if back is not None:
                    back.stop()
                again.stop()
            records = [f"{r[1]}:{_STATUS[r[0]]}" for r in back.records()]
            print(
                f"\nproxy spool kill -9: sent {RECORDS}, acknowledged {len(acked)}, spooled at "
                f"SIGKILL {spooled}, at the home server {len(set(records))} "
                f"(duplicates {len(records) - len(set(records))}), left in the spool {left}"
            )
            assert len(acked) == RECORDS == spooled
            assert set(records) == set(acked) and left == 0
            for i in range(RECORDS // 2):  # each session's Stop after its Start
                assert records.index(f"k9-{i}:1") < records.index(f"k9-{i}:2"), records
            assert "Traceback" not in again.output()
