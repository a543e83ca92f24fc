"""Serving the ACS file store over HTTP: GET and HEAD ``/files/<name>``.

ETag (the quoted SHA-256), If-None-Match, If-Modified-Since, If-Match, If-Range, one byte
range (``a-b``, ``a-``, ``-n``), the content streamed from disk in worker threads, CPE
authentication left to the caller. The store itself is :mod:`daemons.acs.filestore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, BinaryIO

import asyncpg

from daemons.acs.filestore import CHUNK, STORE_ERRORS, FileInfo, FileStore
from daemons.acs.filestore import ratelog as _ratelog

_RANGE = re.compile(r"(\d{0,19})\s*-\s*(\d{0,19})")

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Headers = Sequence[tuple[bytes, bytes]]


class RangeNotSatisfiable(ValueError):
    """The Range asks for bytes the file does not have (answer 416)."""


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """The byte range a Range header asks of ``size`` bytes, as (first, last) inclusive;
    None when the header is to be ignored (another unit, several ranges, malformed).
    Raises RangeNotSatisfiable."""
    unit, eq, spec = value.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    m = _RANGE.fullmatch(spec.strip())
    if m is None or not (m[1] or m[2]):
        return None
    if not m[1]:  # suffix: the last n bytes
        n = int(m[2])
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(value)
        return max(0, size - n), size - 1
    first = int(m[1])
    last = int(m[2]) if m[2] else None
    if last is not None and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable(value)
    return first, size - 1 if last is None else min(last, size - 1)


async def serve(
    store: FileStore,
    pool: asyncpg.Pool,
    scope: Scope,
    receive: Receive,
    send: Send,
    check_auth: Callable[[Scope], bool],
    challenge: Headers | Callable[[], Headers] = (),
    *,
    prefix: str = "/files/",
) -> int:
    """Answer a GET or HEAD of ``<prefix><name>``; the status sent.

    ``check_auth(scope)`` decides whether the client may download (the CPE's Basic or
    Digest credentials); when it says no the answer is 401 with ``challenge`` (headers,
    or a callable making them, e.g. a fresh Digest nonce). A name that is not a safe
    name is simply not found: no path reaches outside the store."""
    method = scope.get("method", "")
    if method not in ("GET", "HEAD"):
        return await _empty(send, 405, [(b"allow", b"GET, HEAD")])
    if not check_auth(scope):
        return await _empty(send, 401, challenge() if callable(challenge) else challenge)
    path = str(scope.get("path", ""))
    name = path[len(prefix) :] if path.startswith(prefix) else ""
    try:
        opened = await store.open(pool, name)
    except STORE_ERRORS as exc:
        _ratelog.log(logging.WARNING, "files-store", "file store unavailable", error=repr(exc))
        return await _empty(send, 503, [(b"retry-after", b"30")])
    if opened is None:
        return await _empty(send, 404)
    info, fh = opened
    try:
        return await _answer(info, fh, method, scope, receive, send)
    finally:
        fh.close()


async def _answer(
    info: FileInfo, fh: BinaryIO, method: str, scope: Scope, receive: Receive, send: Send
) -> int:
    etag = info.etag
    modified = info.created_at.astimezone(UTC).replace(microsecond=0)
    headers = [
        (b"etag", etag.encode()),
        (b"last-modified", format_datetime(modified, usegmt=True).encode()),
    ]
    if_match = header(scope, b"if-match")
    if if_match and not _etag_in(if_match, etag, weak=False):
        return await _empty(send, 412, headers)
    if_none_match = header(scope, b"if-none-match")
    if if_none_match:
        if _etag_in(if_none_match, etag, weak=True):
            return await _empty(send, 304, headers, length=False)
    else:
        since = _date(header(scope, b"if-modified-since"))
        if since is not None and modified <= since:
            return await _empty(send, 304, headers, length=False)

    size = info.size
    status, first, last = 200, 0, size - 1
    value = header(scope, b"range") if method == "GET" else ""  # HEAD ignores Range
    if value and header(scope, b"if-range") not in ("", etag):
        value = ""  # If-Range names other content (or a date): send it all
    if value:
        try:
            asked = parse_range(value, size)
        except RangeNotSatisfiable:
            return await _empty(
                send, 416, [*headers, (b"content-range", f"bytes */{size}".encode())]
            )
        if asked is not None:
            status, (first, last) = 206, asked
            headers.append((b"content-range", f"bytes {first}-{last}/{size}".encode()))
    length = last - first + 1
    headers += [
        (b"accept-ranges", b"bytes"),
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(length).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if method == "HEAD" or length == 0:
        await send({"type": "http.response.body", "body": b""})
        return status
    gone = asyncio.ensure_future(_disconnect(receive))
    try:
        fd, pos, left = fh.fileno(), first, length
        while left > 0:
            if gone.done():
                return status  # the client went away: stop reading
            try:
                chunk = await asyncio.to_thread(os.pread, fd, min(CHUNK, left), pos)
            except OSError as exc:
                _ratelog.log(
                    logging.WARNING,
                    "files-read",
                    "file read failed",
                    file=info.name,
                    error=repr(exc),
                )
                return status
            if not chunk:
                _ratelog.log(logging.ERROR, "files-shrank", "file content shrank", file=info.name)
                return status
            pos += len(chunk)
            left -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
    return status


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _empty(send: Send, status: int, headers: Headers = (), *, length: bool = True) -> int:
    out = list(headers)
    if length:
        out.append((b"content-length", b"0"))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": b""})
    return status


def header(scope: Scope, name: bytes) -> str:
    """A request header's value (repeated ones joined with ", "); "" if absent."""
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]
    return ", ".join(values).strip()


def _etag_in(value: str, etag: str, *, weak: bool) -> bool:
    """Whether an If-Match / If-None-Match list names ``etag`` (or is ``*``)."""
    if value == "*":
        return True
    for item in value.split(","):
        tag = item.strip()
        if tag.startswith("W/"):
            if not weak:
                continue
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
