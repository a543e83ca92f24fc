"""RADIUS proxying (issue 28): netd as the proxy against FreeRADIUS as the proxy, same home
server, same load, same run.

One FreeRADIUS 3.2 HOME server (``benchmarks/freeradius_roles.home_server``: ``files``
with 10,000 PAP subscribers ``user00000..``, accounting written by ``linelog``, replies
with a Message-Authenticator). In front of it, in turn:

- nothing: the generator talks to the home server directly (the reference for the added
  latency);
- ``netd radius`` (1 worker) with ``policies/radius/realms.toml`` proxying realm
  ``isp.example`` (stripped) to the home server over UDP;
- FreeRADIUS 3.2 as the proxy (``freeradius_roles.proxy_server``: ``suffix`` realm
  ``isp.example``, stripped, fail-over pool of the one home server).

The load is ``benchmarks/radius_loadgen.py`` (the generator of radius_auth.py), PAP users
``user00000@isp.example`` (``user00000`` when direct), Message-Authenticator in every
Access-Request, replies' Response Authenticators checked:

- auth, closed loop, window 64 (netd keeps 256 identifiers per home server, so a window
  of 64 leaves it room): throughput and p50/p99 through each path;
- auth, open loop at ``OPEN_FRACTION`` of the slower proxy's closed-loop rate: p50/p99
  at the same offered load; "added latency" rows are a proxy's p50/p99 minus the direct
  ones measured in the same run;
- accounting, closed loop, window 64 (Start, 3 interims, Stop per session): throughput
  and p50/p99 through each path.

Figures are medians of BENCH_RUNS runs of BENCH_DURATION seconds (after a warm-up). The
rows "netd / FreeRADIUS proxy" are ratios of medians (above 1: netd carries more, or has
the higher latency). Then RadSec authentication throughput against UDP to the same netd
(:func:`radsec_rows`: ``benchmarks/radius_radsec.py``'s rows, its own netd and stores).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import freeradius, radius_radsec
from benchmarks.common import median, migrated_stores
from benchmarks.freeradius_roles import home_server, proxy_server
from benchmarks.radius_auth import SECRET, Netd, _log, _row, _rows, loadgen
from daemons import resources
from daemons.core.config import DatabaseConfig
from daemons.core.secrets import Sealer
from daemons.store.pg import create_pool
from tests import stack

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WINDOW = 64
OPEN_FRACTION = 0.5
USERS = 10_000
REALM = "isp.example"

REALMS = """
[realms."{realm}"]
action = "proxy"
pool = "home"
strip = true

[home_servers.home]
address = "127.0.0.1"
auth_port = {auth}
acct_port = {acct}
secret = "{secret}"
response_window = 5.0
zombie_period = 30.0

[home_server_pools.home]
servers = ["home"]
"""


async def _seed(dsn: str, key: bytes) -> None:
    pool = await create_pool(DatabaseConfig(), dsn, "bench")
    try:
        await stack.add_nas(
            pool, Sealer(key), "bench", "127.0.0.1/32", SECRET.encode(), "mikrotik", True
        )
    finally:
        await pool.close()


def _auth(port: int, watch: dict[str, list[int]], realm: bool, **opts: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"user-format": "user{:05d}@" + REALM if realm else "user{:05d}"}
    return loadgen(port, watch, None, **args, **opts)


def _acct(port: int, watch: dict[str, list[int]], realm: bool, label: str) -> dict[str, Any]:
    args: dict[str, Any] = {
        "user-format": "user{:05d}@" + REALM if realm else "user{:05d}",
        "session-prefix": label,
    }
    return loadgen(port, watch, None, kind="acct", mode="closed", window=WINDOW, **args)


def _series(name: str, fn: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(RUNS):
        out.append(fn(i))
        _log(f"{name} run {i}: {out[-1]['rate']:.0f}/s p99 {out[-1]['p99_ms']:.2f} ms")
    return out


def radsec_rows() -> list[dict[str, Any]]:
    """RadSec authentication throughput vs UDP to the same netd: benchmarks/radius_radsec.py's
    rows (its own netd and stores, run after the proxy rows), part of this benchmark."""
    return radius_radsec.run()


def run() -> list[dict[str, Any]]:
    if not freeradius.available():
        print(freeradius.skip_message(), flush=True)
        return []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="netd-bench-proxy-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(resources.path("policies"), tmp / "policies")
        with (
            migrated_stores(tmp) as (dsn, redis_url),
            home_server(SECRET, users=USERS, workdir=tmp, threads=freeradius.THREADS) as home,
        ):
            key = os.urandom(32)
            asyncio.run(_seed(dsn, key))
            (tmp / "policies" / "radius" / "realms.toml").write_text(
                REALMS.format(realm=REALM, auth=home.auth_port, acct=home.acct_port, secret=SECRET)
            )
            urls = {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": redis_url,
                "NETD_REDIS_KEY_PREFIX": "bench",
                "NETD_SECRETS_KEY": key.hex(),
            }
            home_watch = {"home": [home.pid]}
            netd = Netd(tmp, urls, 1)
            try:
                with proxy_server(
                    SECRET,
                    SECRET,
                    home.auth_port,
                    home.acct_port,
                    REALM,
                    tmp,
                    freeradius.THREADS,
                    strip=True,
                ) as front:
                    paths = {
                        "direct to the home server": (home.auth_port, home.acct_port, False, {}),
                        "through netd": (netd.port, netd.acct_port, True, {"netd": netd.pids()}),
                        "through FreeRADIUS proxy": (
                            front.auth_port,
                            front.acct_port,
                            True,
                            {"freeradius": [front.pid]},
                        ),
                    }
                    closed: dict[str, list[dict[str, Any]]] = {}
                    for label, (auth, _acct_port, realm, watch) in paths.items():
                        w = {**home_watch, **watch}
                        closed[label] = _series(
                            f"auth closed {label}",
                            lambda _i, a=auth, w=w, r=realm: _auth(
                                a, w, r, mode="closed", window=WINDOW
                            ),
                        )
                        rows += _rows(f"auth closed w{WINDOW}, {label}", closed[label], list(w))[:3]
                    slower = min(
                        median([r["rate"] for r in closed[k]])
                        for k in ("through netd", "through FreeRADIUS proxy")
                    )
                    rate = round(slower * OPEN_FRACTION)
                    opened: dict[str, list[dict[str, Any]]] = {}
                    for label, (auth, _acct_port, realm, watch) in paths.items():
                        w = {**home_watch, **watch}
                        opened[label] = _series(
                            f"auth open {rate}/s {label}",
                            lambda _i, a=auth, w=w, r=realm: _auth(a, w, r, mode="open", rate=rate),
                        )
                        rows += _rows(f"auth open {rate}/s, {label}", opened[label], list(w))[:3]
                    acct: dict[str, list[dict[str, Any]]] = {}
                    for n, (label, (_auth_port, acct_port, realm, watch)) in enumerate(
                        paths.items()
                    ):
                        w = {**home_watch, **watch}
                        acct[label] = _series(
                            f"acct closed {label}",
                            lambda i, p=acct_port, w=w, r=realm, n=n: _acct(p, w, r, f"b{n}r{i}"),
                        )
                        rows += _acct_rows(f"acct closed w{WINDOW}, {label}", acct[label])
                    rows += _compare(closed, opened, acct)
            finally:
                netd.stop()
    return rows + radsec_rows()


def _acct_rows(label: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    notes = "; ".join(
        f"{r['abandoned']} abandoned, {r['retransmits']} retransmits"
        for r in results
        if r["abandoned"] or r["retransmits"]
    )
    return [
        _row(f"{label}: throughput", [r["rate"] for r in results], "records/s", notes),
        _row(f"{label}: latency p50", [r["p50_ms"] for r in results], "ms"),
        _row(f"{label}: latency p99", [r["p99_ms"] for r in results], "ms"),
    ]


def _med(results: list[dict[str, Any]], key: str) -> float:
    return median([r[key] for r in results])


def _compare(
    closed: dict[str, list[dict[str, Any]]],
    opened: dict[str, list[dict[str, Any]]],
    acct: dict[str, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    netd, fr, direct = "through netd", "through FreeRADIUS proxy", "direct to the home server"
    rows = []
    for what, series in (("auth", closed), ("acct", acct)):
        n, f = _med(series[netd], "rate"), _med(series[fr], "rate")
        rows.append(
            _row(
                f"{what} throughput netd / FreeRADIUS proxy",
                [n / f if f else float("nan")],
                "x",
                f"netd {n:.0f}/s, FreeRADIUS {f:.0f}/s, "
                f"direct {_med(series[direct], 'rate'):.0f}/s",
            )
        )
    for q in ("p50_ms", "p99_ms"):
        base = _med(opened[direct], q)
        added = {k: _med(opened[k], q) - base for k in (netd, fr)}
        for k, v in added.items():
            rows.append(
                _row(
                    f"auth added latency {q[:3]} at the same load, {k}",
                    [v],
                    "ms",
                    f"direct {base:.3f} ms",
                )
            )
        ratio = added[netd] / added[fr] if added[fr] > 0 else float("nan")
        rows.append(_row(f"auth added latency {q[:3]} netd / FreeRADIUS proxy", [ratio], "x"))
    return rows


if __name__ == "__main__":
    from benchmarks.common import table

    result = run()
    print(table(result))
    sys.exit(0)
