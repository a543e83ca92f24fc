"""SADIS (netd voltha's subscriber source for ONOS) serves what ONOS needs and nothing else.

It cannot ask for credentials: ONOS's SADIS app (opencord/sadis, InformationAdapter) reads
the configured URL with ``java.net.URL.openStream()``, with no way to configure a header
or a password, so HTTP authentication would cut ONOS off. What it serves is therefore kept
to ONOS's fields (a subscriber's name and VLAN tags, bandwidth profiles, an OLT's serial,
address and uplink), never a credential, on ``voltha.sadis_host`` (127.0.0.1 by default,
the address ONOS is told to use), GET only, 404 for anything else.
"""

from __future__ import annotations

import secrets

import httpx

from tests.security.conftest import Stack

SUBSCRIBER_KEYS = {"id", "nasPortId", "circuitId", "remoteId", "uniTagList"}


async def test_sadis_serves_onos_fields_only(stack: Stack) -> None:
    password = f"sadis-pw-{secrets.token_urlsafe(9)}"
    stack.secrets.add(password)
    serial = "SECS" + secrets.token_hex(4).upper()
    async with stack.api() as api:
        resp = await api.post(
            "/api/v1/subscribers",
            json={"username": "sadis-user", "password": password, "plan": "default"},
        )
        assert resp.status_code == 201, resp.text
        resp = await api.put(
            f"/api/v1/voltha/onus/{serial}/binding",
            json={"subscriber": "sadis-user", "s_tag": 100, "c_tag": 200},
        )
        assert resp.status_code in (200, 201), resp.text
    base = f"http://127.0.0.1:{stack.sadis_port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as sadis:
        got = await sadis.get(f"/subscribers/{serial}-1")
        assert got.status_code == 200, got.text
        entry = got.json()
        assert set(entry) == SUBSCRIBER_KEYS and entry["remoteId"] == "sadis-user"
        tags = entry["uniTagList"][0]
        assert (tags["ponSTag"], tags["ponCTag"]) == (100, 200)
        assert password not in got.text and "password" not in got.text.lower()
        assert (await sadis.get("/bandwidthprofiles/Default")).status_code == 200
        for path in (
            "/",
            "/subscribers",
            "/subscribers/",
            f"/subscribers/{serial}-1/x",
            "/subscribers/sadis-user",  # by name: nothing (ONOS asks by port)
            "/nas",
            "/api/v1/subscribers",
            "/metrics",
            "/health/ready",
            "/x/" + "y" * 300,
        ):
            resp = await sadis.get(path)
            assert resp.status_code == 404, (path, resp.status_code, resp.text)
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            resp = await sadis.request(method, f"/subscribers/{serial}-1")
            assert resp.status_code == 404, (method, resp.status_code)
