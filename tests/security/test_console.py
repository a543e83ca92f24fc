"""The NOC console over HTTPS: its cookies are Secure, HttpOnly and SameSite=Strict; its
forms refuse a missing or foreign CSRF token and another site's Origin; a signed-in
browser only reads (a write with the cookie is refused, whatever the role, and audited);
its pages spend the token's own rate limit, shared with the API."""

from __future__ import annotations

import re

import httpx

from tests.security.conftest import API_BURST, Stack

COOKIE = "netd_console"  # the console's sign-in cookie (README)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _cookie_attributes(resp: httpx.Response, name: str) -> set[str]:
    for header in resp.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return {part.strip().lower() for part in header.split(";")[1:]}
    raise AssertionError(f"no {name} cookie in {resp.headers.get_list('set-cookie')}")


async def _signed_in(stack: Stack, client: httpx.AsyncClient, role: str, name: str) -> str:
    """A fresh token of ``role`` signed in on ``client``; its secret."""
    async with stack.api() as admin:
        made = await admin.post("/api/v1/tokens", json={"name": name, "role": role})
        assert made.status_code == 201, made.text
        token = str(made.json()["token"])
    form = await client.get("/console/login")
    assert form.status_code == 200
    attrs = _cookie_attributes(form, "netd_csrf")
    assert {"secure", "httponly", "samesite=strict"} <= attrs, attrs
    csrf = CSRF.search(form.text)
    assert csrf is not None
    done = await client.post(
        "/console/login", data={"csrf": csrf.group(1), "token": token, "next": "/"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/", done.text
    attrs = _cookie_attributes(done, COOKIE)
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= attrs, attrs
    return token


async def test_console_over_tls(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, verify=stack.ssl(), timeout=15) as c:
        await _signed_in(stack, c, "operator", "sec-console-op")
        page = await c.get("/")
        assert page.status_code == 200 and "State of the network" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        csrf = CSRF.search(page.text)
        assert csrf is not None
        # A write with the cookie alone: refused although the token is an operator's.
        write = await c.post("/api/v1/sessions/no-such/disconnect", json={})
        assert write.status_code == 403 and "only reads" in write.json()["error"]["message"]
        # Another site's form (its Origin), or no CSRF token, or a wrong one: refused.
        foreign = {"Origin": "https://evil.example"}
        for data, headers in (
            ({"csrf": csrf.group(1)}, foreign),
            ({}, {}),
            ({"csrf": "x" * 43}, {}),
        ):
            out = await c.post("/console/logout", data=data, headers=headers)
            assert out.status_code == 403, (data, headers, out.status_code)
        assert (await c.get("/")).status_code == 200  # still signed in
        # The right form signs out: the cookie is cleared, the console closed.
        out = await c.post("/console/logout", data={"csrf": csrf.group(1)})
        assert out.status_code == 303 and out.headers["location"] == "/console/login"
        assert (await c.get("/")).status_code == 303
    async with stack.api() as admin:
        rows = (await admin.get("/api/v1/audit", params={"actor": "api:sec-console-op"})).json()
    actions = [(r["action"], r["result"], r["status"]) for r in rows["items"]]
    assert ("sessions.disconnect", "denied", 403) in actions
    assert ("sign_in", "ok", 303) in actions and ("sign_out", "ok", 303) in actions


async def test_console_spends_the_tokens_rate_limit(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, verify=stack.ssl(), timeout=15) as c:
        token = await _signed_in(stack, c, "viewer", "sec-console-viewer")
        statuses = [(await c.get("/console/find")).status_code for _ in range(API_BURST * 2)]
        assert statuses[: API_BURST - 2].count(200) == API_BURST - 2, statuses
        assert 429 in statuses, statuses
        limited = await c.get("/console/find")
        assert limited.status_code == 429 and "rate limit" in limited.text
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        # The same token over the API, at the same moment: the same bucket.
        api = await c.get("/api/v1/nas", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 429
