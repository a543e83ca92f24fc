"""The alert rules and Grafana dashboards of contrib/, against Debian's Prometheus.

`promtool check rules` and `promtool test rules` pass for contrib/prometheus/alerts.yml;
the dashboards are what contrib/grafana/generate.py writes; and a real Prometheus, started
here on a loopback port with a config of the test's own, scrapes the stack's `netd up`
(its /metrics and the poller's /snmp/metrics) and loads the rules: after a short load of
RADIUS, accounting, ACS, SNMP and VOLTHA traffic, every query of every dashboard (its
variables given their "All" values) returns at least one finite sample, and every rule
evaluates without error.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.radius_loadgen import AcctBuilder
from tests.noc.conftest import NAS_SECRET, REPO, Noc, cpe_session, until
from tests.support import free_port, tool

pytestmark = pytest.mark.timeout(300)
CONTRIB = REPO / "contrib"
RULES = CONTRIB / "prometheus" / "alerts.yml"
DASHBOARDS = CONTRIB / "grafana" / "dashboards"
# The dashboards' variables at their "All" values; $__rate_interval at 4 scrapes of 1 s
# and then some (Grafana makes it at least 4 scrape intervals).
VARIABLES = {
    "$__rate_interval": "30s",
    "$job": ".*",
    "$by": "target",
    "$device": ".*",
    "$interface": ".*",
    "$stack": ".*",
}


def test_alert_rules_pass_promtool() -> None:
    promtool = tool("promtool", "prometheus")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 18 rules found" in checked.stdout, checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    example = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert example.returncode == 0, example.stdout + example.stderr


def test_dashboards_are_generated(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(CONTRIB / "grafana" / "generate.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    made = sorted(p.name for p in tmp_path.glob("*.json"))
    assert made == sorted(p.name for p in DASHBOARDS.glob("*.json")), made
    for name in made:
        assert (tmp_path / name).read_text() == (DASHBOARDS / name).read_text(), (
            f"{name} differs from what generate.py writes: run python contrib/grafana/generate.py"
        )


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL with the variables substituted) of every target."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name in sorted(VARIABLES, key=len, reverse=True):
                    expr = expr.replace(name, VARIABLES[name])
                assert "$" not in expr, (path.name, expr)
                yield path.stem, panel["title"], expr
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]
                for name in sorted(VARIABLES, key=len, reverse=True):
                    query = query.replace(name, VARIABLES[name])
                metric, _, label = query.removeprefix("label_values(").rstrip(")").rpartition(",")
                yield (
                    path.stem,
                    f"variable {variable['name']}",
                    f"count by ({label.strip()}) ({metric})",
                )


class Prometheus:
    def __init__(self, noc: Noc, tmp: Path) -> None:
        self.port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(
            f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: netd
    static_configs: [{{targets: ["127.0.0.1:{noc.metrics_port}"]}}]
  - job_name: netd-snmp
    metrics_path: /snmp/metrics
    static_configs: [{{targets: ["127.0.0.1:{noc.exporter_port}"]}}]
"""
        )
        self.log = tmp / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    tool("prometheus", "prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.console.templates=/nonexistent",
                    "--web.console.libraries=/nonexistent",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
async def prometheus(stocked: Noc, tmp_path: Path) -> AsyncIterator[Prometheus]:
    prom = Prometheus(stocked, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=prom.url, timeout=5) as c:

            async def ready() -> bool:
                assert prom.proc.poll() is None, prom.log.read_text()
                try:
                    return (await c.get("/-/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            await until(ready, 30, what="prometheus ready")
        yield prom
    finally:
        prom.stop()


async def _load(noc: Noc, round_: int, acct: AcctBuilder) -> None:
    """One round of traffic: logins accepted and rejected, accounting (one request sent
    twice: a retransmit; one signed with the wrong secret: a drop), a CWMP session, a
    trap, and an ONU whose receive power goes out of range."""
    user = ("bob", "carol")[round_ % 2]
    accept = {"User-Name": user, "User-Password": f"pw-{user}"}
    assert "Access-Accept" in await asyncio.to_thread(noc.radclient, "auth", accept)
    reject = {"User-Name": user, "User-Password": "wrong"}
    assert "Access-Reject" in await asyncio.to_thread(noc.radclient, "auth", reject)
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", noc.acct_port))
        for step in range(len(acct.steps)):
            packet, _auth = acct.build(round_, step, (round_ * 8 + step) % 256)
            for _copy in range(2):  # the second is a retransmit: answered from the cache
                await loop.sock_sendall(sock, packet)
                await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        bad = AcctBuilder(b"not-the-secret", 10, "nobody{}", "bad", "127.0.0.1", 0)
        await loop.sock_sendall(sock, bad.build(round_, 0, 200)[0])  # dropped: no answer
    await cpe_session(noc, noc.shared["cpe_sim"])
    async with httpx.AsyncClient(timeout=5) as c:  # not CWMP: refused and counted
        await c.post(f"http://127.0.0.1:{noc.acs_port}/", content=b"<not-soap/>")
    subprocess.run(
        [
            tool("snmptrap", "snmp"),
            "-v2c",
            "-c",
            "public",
            f"127.0.0.1:{noc.trap_port}",
            "",
            "1.3.6.1.6.3.1.1.5.4",
            "1.3.6.1.2.1.2.2.1.1.2",
            "i",
            "2",
        ],
        capture_output=True,
        timeout=10,
        check=True,
    )
    noc.voltha.set_onu_optics(noc.shared["onu"], rx_dbm=-29.5 if round_ else -21.5, tx_dbm=2.25)


async def _query(c: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    got = (await c.get("/api/v1/query", params={"query": expr})).json()
    assert got["status"] == "success", (expr, got)
    result: list[dict[str, Any]] = got["data"]["result"]
    return result


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


async def test_every_dashboard_query_returns_data(stocked: Noc, prometheus: Prometheus) -> None:
    noc = stocked
    queries = list(dashboard_queries())
    assert len(queries) > 90, len(queries)
    acct = AcctBuilder(NAS_SECRET.encode(), 3, "user{}", f"prom{time.time_ns()}", "127.0.0.1", 1)
    noc.proc.signal(signal.SIGHUP)  # a policy reload: netd_policy_reloads_total
    missing: list[str] = []
    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=prometheus.url, timeout=10) as c:
        for round_ in range(12):
            await _load(noc, round_, acct)
            missing = []
            for board, title, expr in queries:
                if not _finite(await _query(c, expr)):
                    missing.append(f"{board} / {title}: {expr}")
            if not missing and round_ >= 1:
                break
            await asyncio.sleep(3)
        assert not missing, "queries without data:\n" + "\n".join(missing)
        elapsed = time.monotonic() - t0
        print(f"{len(queries)} dashboard queries answered with data after {elapsed:.0f} s of load")
        # The rules load and evaluate against the real series without error.
        groups = (await c.get("/api/v1/rules")).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 18, [r["name"] for r in rules]
        assert all(r["health"] == "ok" for r in rules), [
            (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
        ]
        targets = (await c.get("/api/v1/targets")).json()["data"]["activeTargets"]
        assert {t["labels"]["job"]: t["health"] for t in targets} == {
            "netd": "up",
            "netd-snmp": "up",
        }
        # The out-of-range ONU is pending or firing (10 min "for": pending here).
        alerts = (await c.get("/api/v1/alerts")).json()["data"]["alerts"]
        low = [a for a in alerts if a["labels"]["alertname"] == "OnuRxPowerLow"]
        assert low and low[0]["labels"]["serial"] == "BRCM00000001", alerts
