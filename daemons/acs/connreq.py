"""Connection requests (TR-069 §3.2.2): an HTTP GET to a CPE's ConnectionRequestURL, with
Digest or Basic as the CPE challenges, so it opens a session now instead of at its next
periodic Inform. Short timeouts: a CPE behind NAT never answers, and the task simply waits
for the next Inform. The timeout bounds the whole exchange (both GETs of a Digest challenge),
not each read: a CPE that answers a byte at a time is cut like one that never answers.

Digest is always preferred; Basic (the password in clear) is answered only when the
operator allows it (acs.connection_request_basic). Redirects are never followed: a 3xx is
the outcome, so a CPE cannot bounce the request (and its credentials) elsewhere. Where the
request may go at all is decided before, by ``acs.guard`` (``acs.tasks.poke_device``)."""

from __future__ import annotations

import asyncio

import httpx


async def connection_request(
    url: str, username: str, password: str, wait: float = 3.0, basic: bool = False
) -> str:
    """``ok``, ``unauthorized``, ``unreachable``, ``no-url``, ``refused-basic`` (the CPE
    offers only Basic and ``basic`` is off) or ``http-<status>`` (a redirect included)."""
    if not url.startswith(("http://", "https://")):
        return "no-url"
    try:
        async with (
            asyncio.timeout(wait),
            httpx.AsyncClient(timeout=wait, verify=False, follow_redirects=False) as client,  # noqa: S501 - CPE self-signed certs
        ):
            resp = await client.get(url)
            if resp.status_code == 401:
                offered = [v.strip().lower() for v in resp.headers.get_list("www-authenticate")]
                auth: httpx.Auth
                if any(v.startswith("digest") for v in offered):
                    auth = httpx.DigestAuth(username, password)
                elif basic and any(v.startswith("basic") for v in offered):
                    auth = httpx.BasicAuth(username, password)
                elif any(v.startswith("basic") for v in offered):
                    return "refused-basic"
                else:
                    return "unauthorized"
                resp = await client.get(url, auth=auth)
    except (httpx.HTTPError, OSError, ValueError, TimeoutError):
        return "unreachable"
    if resp.status_code in (200, 204):
        return "ok"
    if resp.status_code == 401:
        return "unauthorized"
    return f"http-{resp.status_code}"
