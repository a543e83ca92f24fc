"""The poller's HTTP listener for Prometheus: GET /snmp/metrics (every target this poller
polls, with a ``target`` label) and GET /snmp?target=...&module=... (one target as
snmp_exporter scrapes it, from its last poll in Redis: any poller answers for any
target; compat.py)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from daemons.core.listen import STORE_ERRORS
from daemons.poller import compat
from daemons.poller.exposition import CONTENT_TYPE
from daemons.store import snmp as store
from daemons.store.cache import unpack

if TYPE_CHECKING:
    from daemons.poller.service import PollerService


class Exporter:
    """ASGI: GET /snmp/metrics (every target this poller polls, with a ``target`` label)
    and GET /snmp?target=...&module=... (one target, snmp_exporter's scrape: compat.py)."""

    def __init__(self, service: PollerService) -> None:
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        ctype = "text/plain; charset=utf-8"
        if scope["path"] == "/snmp/metrics":
            # Rendering 500 targets takes most of a second: off the event loop (the store
            # is locked for it), so a scrape never delays a poll.
            body = (await asyncio.to_thread(self.service.samples.render)).encode()
            status, ctype = 200, CONTENT_TYPE
        elif scope["path"] == "/snmp":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            try:
                body = (await scrape(self.service, query)).encode()
                status, ctype = 200, CONTENT_TYPE
            except compat.ScrapeError as exc:
                body, status = f"{exc}\n".encode(), exc.status
        else:
            body, status = b"not found\n", 404
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def scrape(service: PollerService, query: dict[str, list[str]]) -> str:
    """snmp_exporter's scrape of one target (compat.py), from its last poll in Redis."""
    q = compat.parse(query)
    profiles = compat.module_profiles(q.modules, service.profiles)
    t = resolve(service.targets, q.target)
    if t is None:
        raise compat.ScrapeError(404, f"no SNMP target {q.target!r} in netd (netd snmp target add)")
    client, key = service.ctx.cache.client, service.ctx.cache.key
    try:
        raw_status = await client.get(key("snmp:" + t.name, "status"))
        raw = await client.get(key("snmp:" + t.name, "latest"))
    except STORE_ERRORS as exc:
        raise compat.ScrapeError(503, f"Redis: {exc!r}") from None
    status = unpack(raw_status) if isinstance(raw_status, bytes) else None
    compat.check_status(status, time.time(), service.interval_of(t))
    assert status is not None
    if not isinstance(raw, bytes):
        raise compat.ScrapeError(503, "not polled yet")
    _ts, samples = store.read_latest(raw)
    return compat.render(samples, profiles, status)


def resolve(targets: dict[str, store.Target], target: str) -> store.Target | None:
    """A target by name, or by address (``host`` on port 161, ``host:port``,
    ``[v6]:port``); ScrapeError when several targets share the address."""
    if target in targets:
        return targets[target]
    host, _, port = target.rpartition(":") if target.count(":") == 1 else (target, "", "")
    if target.startswith("[") and "]:" in target:
        host, port = target[1:].split("]:", 1)
    host = host.strip("[]")
    try:
        number = int(port) if port else 161
    except ValueError:
        return None
    found = [t for t in targets.values() if t.address == host and t.port == number]
    if len(found) > 1:
        names = ", ".join(sorted(t.name for t in found)[:5])
        raise compat.ScrapeError(
            400, f"{target} is the address of {len(found)} targets ({names}): name one"
        )
    return found[0] if found else None
