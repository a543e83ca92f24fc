"""The RADIUS daemon's layout as ARCHITECTURE.md states it: what each module may import
(read from the source, not run), and modules that stay small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RADIUS = Path(__file__).resolve().parents[2] / "daemons" / "radius"
PURE = {
    "codec",
    "dictionary",
    "auth",
    "eap",
    "mschap",
    "policy",
    "acct",
    "coa",
    "hashes",
    "stream",
    "realms",
    "homeservers",
    "proxy",
}
PURE |= {"auth_eap", "eap_methods", "eap_tls", "eap_inner"}  # issue 29
IO = {"asyncio", "socket", "asyncpg", "redis", "daemons.store"}
#: acct.py takes socket.inet_ntoa (an address to text), no socket I/O.
IO_EXEMPT = {("acct", "socket")}

#: module -> the daemons.radius modules it may import (ARCHITECTURE.md, "RADIUS daemon layout").
MAY_IMPORT: dict[str, set[str]] = {
    "metrics": {"codec"},
    "shared": {"auth", "codec", "metrics"},
    "inflight": {"metrics"},
    "tables": {"auth", "dictionary", "metrics", "policy", "shared", "stream"},
    "admission": {"auth", "codec", "inflight", "metrics", "shared", "tables"},
    "auth_shell": {
        "admission",
        "auth",
        "auth_eap",
        "authlog_writer",
        "codec",
        "credentials",
        "dictionary",
        "hashes",
        "inflight",
        "metrics",
        "pools6",
        "shared",
        "tables",
    },
    "acct_shell": {"acct", "admission", "codec", "dictionary", "inflight", "metrics", "shared"},
    "acct_upkeep": {"acct", "inflight", "metrics", "sessions", "shared", "tables"},
    "transport": {"mmsg", "shared"},
    "mmsg": {"shared"},  # issue 30: sendmmsg batches (the optional C extension _mmsg)
    "eap_exchanges": {"eap_methods", "eap_tls", "metrics"},
    "workers": set(),
    # RADIUS over TCP and TLS (issue 28): framing pure, the listener a transport beside UDP.
    "stream": {"codec"},
    "stream_tls": set(),
    "stream_server": {"metrics", "shared", "stream", "stream_tls", "tables"},
    "stream_client": {"codec", "stream"},
    # issue 28: realms and proxying
    "realms": set(),
    "homeservers": {"realms"},
    "proxy": {"codec"},
    "upstream": {"codec", "realms", "stream_client", "stream_tls"},
    "proxy_shell": {
        "admission",
        "codec",
        "homeservers",
        "inflight",
        "metrics",
        "proxy",
        "proxy_link",
        "proxy_spool",
        "realms",
        "shared",
        "upstream",
    },
    "proxy_link": {"homeservers", "proxy", "realms", "shared", "upstream"},
    "proxy_spool": {
        "admission",
        "codec",
        "homeservers",
        "inflight",
        "metrics",
        "proxy",
        "realms",
        "shared",
    },
}


def imports(module: str) -> set[str]:
    tree = ast.parse((RADIUS / f"{module}.py").read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            if node.module == "daemons.radius":
                out |= {f"daemons.radius.{a.name}" for a in node.names}
    return out


def radius_imports(module: str) -> set[str]:
    prefix = "daemons.radius."
    return {m[len(prefix) :] for m in imports(module) if m.startswith(prefix)}


@pytest.mark.parametrize("module", sorted(MAY_IMPORT))
def test_each_layer_imports_only_what_it_may(module: str) -> None:
    assert radius_imports(module) <= MAY_IMPORT[module]


def test_the_shells_do_not_know_each_other_or_the_transport() -> None:
    shells = {"auth_shell", "acct_shell", "acct_upkeep", "proxy_shell"}
    transports = {"transport", "stream_server", "stream_client"}
    for shell in shells:
        assert not radius_imports(shell) & (shells | transports | {"service", "workers"})


def test_admission_and_the_cores_do_no_io() -> None:
    for module in PURE | {"admission", "metrics"}:
        found = {
            m
            for m in imports(module)
            for io in IO
            if (m == io or m.startswith(io + ".")) and (module, m) not in IO_EXEMPT
        }
        assert not found, f"{module} imports {found}"


def test_the_transport_knows_no_radius() -> None:
    assert radius_imports("transport") == {"mmsg", "shared"}


def test_every_module_is_small_enough_to_read() -> None:
    store = RADIUS.parent / "store"
    for path in [*RADIUS.glob("*.py"), store / "accounting.py", store / "live.py"]:
        lines = len(path.read_text().splitlines())
        assert lines <= 600, f"{path.name}: {lines} lines"
