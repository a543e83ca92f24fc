"""EAP authentications per second (issue 29): PEAP/EAP-MSCHAPv2 and EAP-TLS, full and
resumed, netd against FreeRADIUS 3.2 in the same run, with the same generator.

Set-up: embedded PostgreSQL and Redis, 10,000 subscribers (user00000.., sealed cleartext
passwords, plan fiber-100) as benchmarks/radius_auth.py; a test PKI (tests/radius/
eap_pki.py: P-256 CA, server certificate, one client certificate, CN user00001) shared by
both servers. netd: `netd radius`, 1 worker, EAP certificates configured, resumption off
for the "full" rows (radius.eap_resumption_lifetime = 0) and on for the "resumed" rows.
FreeRADIUS: benchmarks/freeradius_eap.py (its eap module, the same certificates, TLS 1.2,
its session cache off, then on).

The generator: wpa_supplicant's ``eapol_test`` (Debian eapoltest 2.10), CONCURRENCY
processes at once, each one doing 1 + REAUTH authentications in a row (``-r REAUTH``),
replaced as it ends, for DURATION seconds; an authentication counts when the process
ends with status 0 (every authentication of it succeeded with matching MPPE keys). With
resumption on the server, eapol_test's re-authentications resume the TLS session (its
own fast re-authentication); with it off, each is a full handshake. PEAP identities
rotate over 100 subscribers; EAP-TLS uses the one client certificate. eapol_test is a
C client doing the client half of each handshake (and printing its debug log, sent to
/dev/null): on this 2-core machine it competes with the server for the CPU, the same way
for both servers; the server's CPU per authentication is in the notes.

BENCH_EAP_BASE=<python> also runs the netd rows with that interpreter first (another
tree's virtualenv, e.g. `git archive main` made with `make install`): "netd-base" rows and
"netd / netd-base" ratios, before and after back to back in the same run.

Rows: authentications/s (median of BENCH_RUNS runs), and "netd / FreeRADIUS" ratios of
the medians for each method and mode. Run it when the machine is quiet: the load average
at the start is in the notes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from benchmarks import freeradius as fr
from benchmarks.common import median
from benchmarks.freeradius_eap import EapSetup, eap_server
from benchmarks.radius_auth import SECRET, USERS, Netd, _log, _row, password, seed, user
from daemons import resources
from daemons.core.secrets import Sealer
from daemons.store.embedded import EmbeddedStores
from tests.radius.eap_pki import Pki, make_pki

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DURATION = float(os.environ.get("BENCH_DURATION", "8"))
CONCURRENCY = int(os.environ.get("BENCH_EAP_CONCURRENCY", "8"))
REAUTH = int(os.environ.get("BENCH_EAP_REAUTH", "4"))
BASE = os.environ.get("BENCH_EAP_BASE", "")
EAPOL = shutil.which("eapol_test") or "/usr/sbin/eapol_test"
METHODS = ("peap", "tls")
MODES = ("full", "resumed")


def _conf(tmp: Path, pki: Pki, method: str, i: int) -> Path:
    path = tmp / f"eapol-{method}-{i}.conf"
    if method == "peap":
        body = (
            f'eap=PEAP\n\tidentity="{user(i % 100)}"\n\tanonymous_identity="anonymous"\n'
            f'\tpassword="{password(i % 100)}"\n\tphase1="peapver=0"\n'
            f'\tphase2="auth=MSCHAPV2"\n'
        )
    else:
        cert, key = pki.client(user(1))
        body = (
            f'eap=TLS\n\tidentity="{user(1)}"\n\tclient_cert="{cert}"\n'
            f'\tprivate_key="{key}"\n\tphase1="tls_disable_tlsv1_3=1"\n'
        )
    path.write_text(
        f'network={{\n\tkey_mgmt=IEEE8021X\n\teapol_flags=0\n\tca_cert="{pki.ca}"\n\t{body}}}\n'
    )
    return path


def _cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def drive(port: int, confs: list[Path], pids: Callable[[], list[int]]) -> dict[str, float]:
    """CONCURRENCY eapol_test processes for DURATION s: authentications/s and the server's
    CPU seconds per authentication."""
    args = ["-a", "127.0.0.1", "-p", str(port), "-s", SECRET, "-t", "10", "-r", str(REAUTH)]
    running: list[subprocess.Popen[bytes]] = []
    ok = failed = 0
    n = 0
    cpu0 = _cpu(pids())
    t0 = time.monotonic()
    end = t0 + DURATION

    def start() -> None:
        nonlocal n
        conf = confs[n % len(confs)]
        n += 1
        running.append(
            subprocess.Popen(
                [EAPOL, "-c", str(conf), *args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    while len(running) < CONCURRENCY:
        start()
    while running:
        for proc in list(running):
            if proc.poll() is None:
                continue
            running.remove(proc)  # counted even when it ends after DURATION: so is elapsed
            if proc.returncode == 0:
                ok += 1 + REAUTH
            else:
                failed += 1
            if time.monotonic() < end:
                start()
        time.sleep(0.002)
    elapsed = time.monotonic() - t0
    cpu = _cpu(pids()) - cpu0
    return {
        "rate": ok / elapsed,
        "failed": failed,
        "cpu_ms": 1e3 * cpu / ok if ok else 0.0,
    }


def _measure(
    label: str, port: int, confs: list[Path], pids: Callable[[], list[int]]
) -> list[dict[str, float]]:
    results = []
    for i in range(RUNS):
        got = drive(port, confs, pids)
        _log(f"{label} run {i}: {got['rate']:.0f} auth/s, {got['failed']:.0f} failed runs")
        results.append(got)
    return results


def _rows(label: str, results: list[dict[str, float]]) -> dict[str, Any]:
    failed = sum(r["failed"] for r in results)
    cpu = median([r["cpu_ms"] for r in results])
    notes = f"server CPU {cpu:.2f} ms an authentication"
    if cpu:
        notes += f" (one core: ~{1000 / cpu:.0f} auth/s)"
    if failed:
        notes += f"; !!! {failed:.0f} eapol_test runs failed"
    return _row(f"{label}: authentications/s", [r["rate"] for r in results], "auth/s", notes)


def _ratio(label: str, ours: float, theirs: float) -> dict[str, Any]:
    return _row(
        label,
        [ours / theirs if theirs else 0.0],
        "ratio",
        f"{ours:.0f} / {theirs:.0f} auth/s",
        ratio=ours / theirs if theirs else None,
    )


def run() -> list[dict[str, Any]]:
    if not shutil.which("eapol_test") and not Path(EAPOL).exists():
        raise RuntimeError("eapol_test is missing: apt-get install -y eapoltest")
    rows: list[dict[str, Any]] = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="netd-bench-eap-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(resources.path("policies"), tmp / "policies")
        pki = make_pki(tmp / "pki", clients=(user(1),))
        confs = {m: [_conf(tmp, pki, m, i) for i in range(100)] for m in METHODS}
        key = os.urandom(32)
        stores = EmbeddedStores(
            tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        medians: dict[tuple[str, str, str], float] = {}
        try:
            assert stores.postgres is not None and stores.redis is not None
            dsn, redis_url = stores.postgres.dsn, stores.redis.url
            asyncio.run(seed(dsn, redis_url, "bench", Sealer(key)))
            base = {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": redis_url,
                "NETD_REDIS_KEY_PREFIX": "bench",
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_RADIUS_EAP_CERT": str(pki.server_cert),
                "NETD_RADIUS_EAP_KEY": str(pki.server_key),
                "NETD_RADIUS_EAP_CA": str(pki.ca),
                "NETD_RADIUS_AUTH_LOG": "false",
            }
            servers = [("netd-base", BASE)] if BASE else []
            for mode in MODES:
                lifetime = "3600" if mode == "resumed" else "0"
                env = {**base, "NETD_RADIUS_EAP_RESUMPTION_LIFETIME": lifetime}
                for name, python in [*servers, ("netd", sys.executable)]:
                    netd = Netd(tmp, env, 1, python=python)
                    try:
                        for method in METHODS:
                            label = f"{name}, {method}, {mode}"
                            got = _measure(label, netd.port, confs[method], netd.pids)
                            rows.append(_rows(label, got))
                            medians[name, method, mode] = rows[-1]["median"]
                    finally:
                        netd.stop()
            for name, _python in servers:
                for mode in MODES:
                    for method in METHODS:
                        ours, theirs = medians["netd", method, mode], medians[name, method, mode]
                        rows.append(_ratio(f"netd / {name}, {method}, {mode}", ours, theirs))
            if fr.available():
                users = {user(i): password(i) for i in range(USERS)}
                for mode in MODES:
                    for method in METHODS:
                        server: AbstractContextManager[Any] = eap_server(
                            EapSetup(
                                SECRET,
                                pki.server_cert,
                                pki.server_key,
                                pki.ca,
                                users,
                                cache=mode == "resumed",
                                default="peap" if method == "peap" else "tls",
                            )
                        )
                        with server as fr_eap:
                            label = f"FreeRADIUS, {method}, {mode}"
                            got = _measure(
                                label, fr_eap.port, confs[method], lambda p=fr_eap.pid: [p]
                            )
                            rows.append(_rows(label, got))
                            medians["fr", method, mode] = rows[-1]["median"]
                for mode in MODES:
                    for method in METHODS:
                        ours, theirs = medians["netd", method, mode], medians["fr", method, mode]
                        rows.append(_ratio(f"netd / FreeRADIUS, {method}, {mode}", ours, theirs))
            else:
                print(fr.skip_message(), flush=True)
        finally:
            stores.release()
    for row in rows:
        row["notes"] = (row.get("notes") or "") + f"; load average at start {load:.1f}"
    return rows
