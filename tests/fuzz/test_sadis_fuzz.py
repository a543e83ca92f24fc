"""Hostile SADIS requests: ONOS (or anyone who reaches the port) asks for any path.

The SADIS server decodes one thing from its input, the URL path (``/subscribers/<serial>-<uni>``,
``/bandwidthprofiles/<plan>-<dir>``). The property: every path is answered 200 or 404 with
JSON, never a 5xx or an exception, against the real PostgreSQL of a migrated database.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from daemons import resources
from daemons.core.config import DatabaseConfig
from daemons.core.policies import load_policies
from daemons.store.pg import create_pool
from daemons.voltha.sadis import Sadis
from tests.fuzz.strategies import budget

REPO = Path(__file__).resolve().parents[2]
KEYS = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda serial, uni: f"{serial}-{uni}",
        st.sampled_from(["ALPHe3d1cf3d", "", "BBSM0001", "a\x00b"]),
        st.one_of(
            st.sampled_from(["1", "0", "16", "²", "\u0661", "9" * 12, "-1", "1\x00"]),
            st.integers(-(2**40), 2**70).map(str),
        ),
    ),
    st.sampled_from(["Default", "fiber-100-down", "fiber-100-up", "fiber-100-sideways", "-down"]),
)
PATHS = st.one_of(
    st.builds(
        lambda kind, key: f"/{kind}/{key}",
        st.sampled_from(["subscribers", "bandwidthprofiles", "other"]),
        KEYS,
    ),
    st.text(max_size=60).map(lambda t: "/" + t),
)


async def _call(app: Sadis, path: str, method: str = "GET") -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [],
        "client": ("127.0.0.1", 40000),
    }
    await app(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


async def test_any_path_is_answered_200_or_404(migrated: str) -> None:
    policies = load_policies(resources.path("policies"), 1)
    pool = await create_pool(DatabaseConfig(), migrated, "fuzz")
    app = Sadis(pool, lambda: policies)
    loop = asyncio.get_running_loop()
    seen: dict[int, int] = {}

    @budget(200)
    @given(PATHS, st.sampled_from(["GET", "GET", "POST"]))
    @example("/subscribers/ONU-\u00b2", "GET")  # "²".isdigit(), int("²") raised: a 500
    @example("/subscribers/ONU-" + "9" * 12, "GET")  # past int32: asyncpg raised
    @example("/subscribers/ONU\x00-1", "GET")  # a NUL: PostgreSQL refused, 503
    @example("/bandwidthprofiles/fiber-100-down", "GET")
    def ask(path: str, method: str) -> None:
        status, body = asyncio.run_coroutine_threadsafe(_call(app, path, method), loop).result(30)
        assert status in (200, 404), (path, status, body)
        seen[status] = seen.get(status, 0) + 1

    try:
        await asyncio.to_thread(ask)
    finally:
        await pool.close()
    assert seen.get(200, 0) >= 1 and seen.get(404, 0) >= 1
