"""Connection requests (TR-069 §3.2.2): an HTTP GET to a CPE's ConnectionRequestURL, with
Digest or Basic as the CPE challenges, so it opens a session now instead of at its next
periodic Inform. Short timeouts: a CPE behind NAT never answers, and the task simply waits
for the next Inform. The timeout bounds the whole exchange (both GETs of a Digest challenge),
not each read: a CPE that answers a byte at a time is cut like one that never answers."""

from __future__ import annotations

import asyncio

import httpx


async def connection_request(url: str, username: str, password: str, wait: float = 3.0) -> str:
    """``ok``, ``unauthorized``, ``unreachable``, ``no-url`` or ``http-<status>``."""
    if not url.startswith(("http://", "https://")):
        return "no-url"
    try:
        async with (
            asyncio.timeout(wait),
            httpx.AsyncClient(timeout=wait, verify=False) as client,  # noqa: S501 - CPE self-signed certs
        ):
            resp = await client.get(url)
            if resp.status_code == 401:
                challenge = resp.headers.get("www-authenticate", "").lower()
                auth: httpx.Auth = (
                    httpx.DigestAuth(username, password)
                    if challenge.startswith("digest")
                    else httpx.BasicAuth(username, password)
                )
                resp = await client.get(url, auth=auth)
    except (httpx.HTTPError, OSError, ValueError, TimeoutError):
        return "unreachable"
    if resp.status_code in (200, 204):
        return "ok"
    if resp.status_code == 401:
        return "unauthorized"
    return f"http-{resp.status_code}"
