"""Deadlines on slow peers, on loopback sockets in this process: an HTTP client that sends its
headers a byte at a time (or nothing), and servers that answer a byte at a time to a
connection request or an ONOS call. tests/faults/test_hangs.py runs the same in the daemons."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemons.acs.connreq import connection_request
from daemons.core.http import HttpServer
from daemons.voltha.onos import Onos, OnosError
from tests.support import free_port


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:  # the whole body, however slowly it comes: the protocol leaves it alone
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"got %d" % len(body)})


async def _closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    t = time.monotonic()
    got = await asyncio.wait_for(reader.read(), limit)
    return time.monotonic() - t, got


async def test_a_request_must_bring_its_headers_in_time() -> None:
    late: list[int] = []
    port = free_port()
    server = HttpServer(
        _app, "127.0.0.1", port, 1.0, header_timeout=0.5, on_header_timeout=lambda: late.append(1)
    )
    await server.start()
    try:
        # A connection that says nothing is closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        took, got = await _closed_after(reader, 5)
        assert got == b"" and 0.4 < took < 1.5
        writer.close()
        # Headers a byte every 0.1 s: cut at the deadline, long before they end.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100 + b"\r\n\r\n"

        async def drip() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in head:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.1)

        sender = asyncio.get_running_loop().create_task(drip())
        took, got = await _closed_after(reader, 5)
        sender.cancel()
        assert got == b"" and 0.4 < took < 1.5
        writer.close()
        assert len(late) == 2
        # Kept-alive requests with pauses between them, and a body that comes slowly once
        # the headers are in: all served.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"got 0" in await asyncio.wait_for(reader.readuntil(b"got 0"), 5)
            await asyncio.sleep(0.3)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        for byte in b"12345678":
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)
        assert b"got 8" in await asyncio.wait_for(reader.readuntil(b"got 8"), 5)
        writer.close()
        assert len(late) == 2
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def _dripping_server() -> AsyncIterator[str]:
    """Reads a request's headers, then sends a 200 a byte every 0.1 s."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_a_connection_request_answered_a_byte_at_a_time_is_cut() -> None:
    async with _dripping_server() as url:
        t = time.monotonic()
        assert await connection_request(url + "/cr", "u", "p", wait=0.5) == "unreachable"
        assert time.monotonic() - t < 1.5


async def test_an_onos_call_answered_a_byte_at_a_time_is_cut() -> None:
    async with _dripping_server() as url:
        onos = Onos(url, "onos", "not-rocks", timeout=0.5)
        try:
            t = time.monotonic()
            with pytest.raises(OnosError) as caught:
                await onos.remove("ONU-1", 100, 200, 64)
            assert caught.value.unavailable
            assert time.monotonic() - t < 1.5
        finally:
            await onos.close()
