"""SADIS answers only the addresses in voltha.sadis_allow (it has no authentication:
ONOS's SADIS client sends none)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daemons.core.config import ConfigError, load
from daemons.voltha.sadis import Sadis


async def _get(app: Sadis, client: Any, path: str = "/subscribers/ALPHe3d1cea3-1") -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "client": client}
    await app(scope, receive, send)
    if len(sent) > 1 and sent[0]["status"] == 403:
        assert json.loads(sent[1]["body"]) == {"error": "forbidden"}
    return int(sent[0]["status"])


async def test_addresses_outside_the_allow_list_get_403_before_any_lookup() -> None:
    # No pool: a refused request must not reach the database.
    app = Sadis(None, lambda: None, ["10.20.0.0/24", "2001:db8::11"])  # type: ignore[arg-type]
    assert await _get(app, ("192.0.2.1", 40000)) == 403
    assert await _get(app, ("127.0.0.1", 40000)) == 403
    assert await _get(app, None) == 403  # no peer address (a Unix socket): not ONOS
    assert await _get(app, ("not an address", 1)) == 403
    assert await _get(app, ("2001:db8::12", 1)) == 403
    assert app.refused == 5
    assert app.allowed(("10.20.0.7", 1))
    assert app.allowed(("::ffff:10.20.0.7", 1))  # IPv4-mapped, from a dual-stack socket
    assert app.allowed(("2001:db8::11", 1))
    assert app.allowed(("fe80::1%eth0", 1)) is False


def test_the_default_is_loopback_and_a_bad_network_names_the_key() -> None:
    app = Sadis(None, lambda: None)  # type: ignore[arg-type]
    assert app.allowed(("127.0.0.1", 1)) and app.allowed(("::1", 1))
    assert not app.allowed(("192.0.2.1", 1))
    assert load(None, {}).config.voltha.sadis_allow == ["127.0.0.0/8", "::1/128"]
    with pytest.raises(ConfigError, match="sadis_allow"):
        load(None, {"NETD_VOLTHA_SADIS_ALLOW": '["10.0.0.300/24"]'})
