"""RadSec (RADIUS over TLS, RFC 6614) authentication against UDP, to the same netd.

Embedded PostgreSQL and Redis, 10,000 PAP subscribers (as benchmarks/radius_auth.py), and
one `netd radius` (1 worker) with UDP and RadSec on loopback: NAS ``bench`` is both
127.0.0.1 (UDP, its secret) and the client certificate the generator presents (its SHA-256
fingerprint as tls_identity; secret ``radsec``). Certificates: a P-256 test CA
(tests/certs.py), TLS 1.3 as Python's OpenSSL negotiates it.

The load is benchmarks/radius_loadgen.py's generator in a process of its own (uvloop, PAP
requests with Message-Authenticator, replies checked by Response Authenticator), over
``CONNECTIONS`` UDP sockets or ``CONNECTIONS`` TLS connections, each with up to 256
identifiers outstanding (pipelined on the connection: a reply frees its id at once).
Closed loop at windows 64 and 256 (total in flight), the UDP run and the TLS run of the
same window one after the other, BENCH_RUNS times: figures are medians of the runs and
the "TLS / UDP" rows are ratios of the medians taken in the same run. CPU is netd's
(utime+stime of its process over the window) per answered request.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from cryptography.hazmat.primitives.serialization import Encoding

from benchmarks import radius_loadgen as lg
from benchmarks.common import median
from benchmarks.radius_auth import (
    DURATION,
    LOADGEN_TIMEOUT,
    REPO,
    RUNS,
    SECRET,
    USERS,
    WARMUP,
    Netd,
    _brief,
    _log,
    _row,
    _rows,
    free_port,
    probe,
    seed,
)
from daemons import resources
from daemons.core.secrets import Sealer
from daemons.radius.stream import Framer, fingerprint
from daemons.store.embedded import EmbeddedStores
from tests.certs import Authority

CONNECTIONS = int(os.environ.get("BENCH_RADSEC_CONNECTIONS", "8"))
WINDOWS = (64, 256)


# --- the generator over TLS (run as `python -m benchmarks.radius_radsec loadgen ...`) -----


class _Link(asyncio.Protocol):
    """One TLS connection standing in for one of the generator's UDP sockets."""

    def __init__(self, gen: lg.Generator, base: int) -> None:
        self.gen = gen
        self.base = base
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for packet in self.framer.feed(data):
            self.gen.on_reply(self.base, packet)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.errors += 1

    def sendto(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TlsGenerator(lg.Generator):
    """The UDP generator's closed/open loops and measurement, over TLS connections."""

    def __init__(self, args: argparse.Namespace, builder: lg.Builder, context: ssl.SSLContext):
        super().__init__(args, builder)
        self.context = context

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for i in range(self.args.sockets):
            _, link = await loop.create_connection(
                functools.partial(_Link, self, i * 256),
                self.args.host,
                self.args.port,
                ssl=self.context,
                server_hostname="127.0.0.1",
            )
            self.transports.append(link)


async def _tls_main(args: argparse.Namespace) -> dict[str, Any]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=args.tls_ca)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    builder = lg.Builder(
        args.secret.encode(), args.users, args.user_format, args.password_format, args.nas_ip
    )
    gen = TlsGenerator(args, builder, context)
    await gen.open()
    try:
        return await asyncio.wait_for(gen.run(), args.warmup + args.duration + args.timeout + 30)
    finally:
        for link in gen.transports:
            link.close()


def loadgen_main(argv: list[str]) -> int:
    extra = argparse.ArgumentParser(add_help=False)
    for name in ("--tls-ca", "--tls-cert", "--tls-key"):
        extra.add_argument(name, required=True)
    tls, rest = extra.parse_known_args(argv)
    args = lg.parse(rest)
    args.tls_ca, args.tls_cert, args.tls_key = tls.tls_ca, tls.tls_cert, tls.tls_key
    gc.disable()
    print(json.dumps(uvloop.run(_tls_main(args))))
    return 0


# --- the benchmark -------------------------------------------------------------------------


def _load(port: int, watch: dict[str, list[int]], tls: list[str], window: int) -> dict[str, Any]:
    module = "benchmarks.radius_radsec" if tls else "benchmarks.radius_loadgen"
    args = [sys.executable, "-m", module, *(["loadgen", *tls] if tls else [])]
    args += ["--port", str(port), "--secret", "radsec" if tls else SECRET]
    args += ["--users", str(USERS), "--warmup", str(WARMUP), "--duration", str(DURATION)]
    args += ["--sockets", str(CONNECTIONS), "--mode", "closed", "--window", str(window)]
    for name, pids in watch.items():
        args += ["--watch", f"{name}={','.join(map(str, pids))}"]
    out = subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=LOADGEN_TIMEOUT, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed ({out.returncode}):\n{out.stderr}")
    return dict(json.loads(out.stdout))


async def _map_certificate(dsn: str, identity: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE nas_clients SET tls_identity = $1 WHERE name = 'bench'", identity
        )
    finally:
        await conn.close()


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="netd-bench-radsec-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(resources.path("policies"), tmp / "policies")
        ca = Authority(tmp / "pki")
        server_cert, server_key, _ = ca.issue("server", "127.0.0.1")
        client_cert, client_key, client = ca.issue("client", "bench-bng")
        key = os.urandom(32)
        stores = EmbeddedStores(
            tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60
        )
        stores.acquire()
        try:
            assert stores.postgres is not None and stores.redis is not None
            dsn, redis_url = stores.postgres.dsn, stores.redis.url
            asyncio.run(seed(dsn, redis_url, "bench", Sealer(key)))
            asyncio.run(_map_certificate(dsn, fingerprint(client.public_bytes(Encoding.DER))))
            tls_port = free_port()
            urls = {
                "NETD_DATABASE_URL": dsn,
                "NETD_REDIS_URL": redis_url,
                "NETD_REDIS_KEY_PREFIX": "bench",
                "NETD_SECRETS_KEY": key.hex(),
                "NETD_RADIUS_RADSEC_TLS_PORT": str(tls_port),
                "NETD_RADIUS_RADSEC_TLS_CERT": str(server_cert),
                "NETD_RADIUS_RADSEC_TLS_KEY": str(server_key),
                "NETD_RADIUS_RADSEC_TLS_CLIENT_CA": str(ca.path),
                "NETD_RADIUS_RADSEC_MAX_CONNECTIONS_PER_NAS": str(max(16, CONNECTIONS)),
                "NETD_RADIUS_NAS_RATE_LIMIT": "0",
            }
            netd = Netd(tmp, urls, 1)
            try:
                probe(netd.port)
                tls = ["--tls-ca", str(ca.path), "--tls-cert", str(client_cert)]
                tls += ["--tls-key", str(client_key)]
                watch = {"netd": netd.pids()}
                for window in WINDOWS:
                    got: dict[str, list[dict[str, Any]]] = {"udp": [], "tls": []}
                    for i in range(RUNS):
                        for kind in ("udp", "tls"):
                            port = tls_port if kind == "tls" else netd.port
                            got[kind].append(
                                _load(port, watch, tls if kind == "tls" else [], window)
                            )
                            _log(f"{kind} w{window} run {i}: {json.dumps(_brief(got[kind][-1]))}")
                    for kind, label in (("udp", "UDP"), ("tls", "RadSec (TLS)")):
                        block = _rows(
                            f"netd 1 worker, {label}, {CONNECTIONS} "
                            f"{'connections' if kind == 'tls' else 'sockets'}, window {window}",
                            got[kind],
                            ["netd"],
                        )
                        rows += [block[0], block[1], block[2], block[5], block[6]]
                    rows += _ratios(window, got)
                if netd.proc.poll() is not None:
                    raise RuntimeError(f"netd died:\n{netd.output()}")
            finally:
                netd.stop()
        finally:
            stores.release()
    return rows


def _ratios(window: int, got: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    def med(kind: str, key: str) -> float:
        return median([r[key] for r in got[kind] if r[key] is not None])

    rate = med("tls", "rate") / med("udp", "rate")
    p99 = med("tls", "p99_ms") / med("udp", "p99_ms")
    return [
        _row(f"TLS / UDP, window {window}: throughput", [rate], "ratio"),
        _row(f"TLS / UDP, window {window}: latency p99", [p99], "ratio", "below 1: TLS lower"),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["loadgen"]:
        sys.exit(loadgen_main(sys.argv[2:]))
    from benchmarks.common import table, write

    result = run()
    print(table(result))
    write("radius_radsec", result, (__doc__ or "").strip())
