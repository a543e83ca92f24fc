"""What the ACS's HTTP side does to a CWMP request before the engine sees it.

The per-source rate-limit key (:func:`rate_key`), reading the body within its size cap and
decoding gzip/deflate (:func:`read_body`), the session cookie, the CWMP methods counted by
name, and :class:`Reject`, a refusal carrying the HTTP status to answer. The shell that
uses them is :mod:`daemons.acs.service`.
"""

from __future__ import annotations

import gzip
import ipaddress
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from daemons.acs import cwmp, files

COOKIE = "netd_acs"
#: source addresses tracked by the per-IP rate limit at most (a spoofed-source flood makes
#: one entry per address: the least recently seen go first)
RATE_TABLE_MAX = 65_536
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def rate_key(ip: str) -> str:
    """The rate-limit key of a source address: an IPv4 address (an IPv4-mapped IPv6 one
    too), or an IPv6 address's /64, since one subscriber line gets a whole /64 (RFC 6177)
    and could otherwise take a fresh address, and a fresh bucket, for every request."""
    if ":" not in ip:
        return ip
    try:
        addr = ipaddress.IPv6Address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))


class Reject(Exception):
    """A request refused: ``status``, the reason (the message) and extra headers."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or []


async def read_body(scope: dict[str, Any], receive: Receive, cap: int) -> bytes:
    """The request body, whole: at most ``cap`` bytes, before and after decoding (gzip,
    deflate); anything else is a :class:`Reject` with the status to answer."""
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise Reject(400, "client went away")
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise Reject(413, f"body over {cap} bytes")
        chunks.append(chunk)
        if not msg.get("more_body"):
            break
    body = b"".join(chunks)
    encoding = files.header(scope, b"content-encoding").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            d = zlib.decompressobj(wbits=47 if "gzip" in encoding else 15)
            body = d.decompress(body, cap + 1)
            if len(body) > cap or d.unconsumed_tail:
                raise Reject(413, f"decoded body over {cap} bytes")
            if not d.eof:  # cut short: the gzip CRC and length were never checked
                raise Reject(400, "truncated gzip body")
        except (zlib.error, gzip.BadGzipFile):
            raise Reject(400, "bad gzip body") from None
    elif encoding not in ("", "identity"):
        raise Reject(415, f"content-encoding {encoding[:20]}")
    return body


KNOWN_METHODS = frozenset(
    {*cwmp.CPE_TO_ACS, "", "Fault"}
    | {
        f"{m}Response"
        for m in (
            "GetParameterNames",
            "GetParameterValues",
            "GetParameterAttributes",
            "SetParameterValues",
            "SetParameterAttributes",
            "AddObject",
            "DeleteObject",
            "Reboot",
            "FactoryReset",
            "Download",
            "Upload",
            "ScheduleInform",
            "GetRPCMethods",
        )
    }
)


def session_cookie(scope: dict[str, Any]) -> str:
    for part in files.header(scope, b"cookie").split(";"):
        k, _, v = part.strip().partition("=")
        if k == COOKIE:
            return v
    return ""
