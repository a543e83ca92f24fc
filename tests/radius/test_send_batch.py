"""Issue 30: replies leave in one sendmmsg per loop iteration (daemons/radius/mmsg.py and
its C extension), and opened credentials are kept per sealed form (credentials.py)."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest

from daemons.core.secrets import Sealer, SealError
from daemons.radius import mmsg
from daemons.radius.credentials import OpenedCredentials


class _Errors(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors: list[Exception] = []

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


def _receiver(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((host, 0))
    sock.settimeout(2.0)
    return sock


async def _sender(host: str) -> tuple[asyncio.DatagramTransport, _Errors]:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    transport, proto = await loop.create_datagram_endpoint(
        _Errors, local_addr=(host, 0), family=family
    )
    return transport, proto


def _drain(sock: socket.socket, count: int) -> list[bytes]:
    got = []
    for _ in range(count):
        got.append(sock.recv(70_000))
    return got


def test_the_extension_is_built_here() -> None:
    # The CI machine has a compiler: the batched path is the one tested by default.
    assert mmsg.compiled() is not None, "daemons.radius._mmsg was not built (pip install -e .)"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_one_iteration_of_replies_is_one_system_call(host: str) -> None:
    receiver = _receiver(host)
    transport, _ = await _sender(host)
    try:
        sender = mmsg.sender_for(transport)
        assert isinstance(sender, mmsg.BatchSender)
        addr: Any = receiver.getsockname()
        for i in range(300):  # past the extension's 256 per call
            sender.sendto(b"reply-%03d" % i, addr)
        assert sender.calls == 0  # nothing leaves before the iteration ends
        await asyncio.sleep(0)
        assert sender.calls == 1
        got = await asyncio.to_thread(_drain, receiver, 300)
        assert got == [b"reply-%03d" % i for i in range(300)]
    finally:
        transport.close()
        receiver.close()


async def test_what_the_kernel_refuses_goes_through_the_transport() -> None:
    receiver = _receiver("127.0.0.1")
    transport, proto = await _sender("127.0.0.1")
    try:
        sender = mmsg.sender_for(transport)
        addr = receiver.getsockname()
        sender.sendto(b"first", addr)
        sender.sendto(b"x" * 66_000, addr)  # EMSGSIZE: over a UDP datagram's size
        sender.sendto(b"third", addr)
        await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        got = await asyncio.to_thread(_drain, receiver, 2)
        assert got == [b"first", b"third"]
        assert len(proto.errors) == 1 and isinstance(proto.errors[0], OSError)
    finally:
        transport.close()
        receiver.close()


async def test_without_batching_the_transport_is_the_sender() -> None:
    transport, _ = await _sender("127.0.0.1")
    try:
        assert mmsg.sender_for(transport, batch=False) is transport
    finally:
        transport.close()


async def test_a_closing_transport_takes_the_queue_itself() -> None:
    receiver = _receiver("127.0.0.1")
    transport, _ = await _sender("127.0.0.1")
    sender = mmsg.sender_for(transport)
    assert isinstance(sender, mmsg.BatchSender)
    sender.sendto(b"late", receiver.getsockname())
    transport.close()  # its fd may be reused by then: never written to directly
    await asyncio.sleep(0)
    assert sender.calls == 0
    receiver.close()


class _Counting(Sealer):
    opened = 0

    def open(self, sealed: bytes, context: bytes) -> bytes:
        self.opened += 1
        return super().open(sealed, context)


def test_opened_credentials_are_kept_per_sealed_form() -> None:
    sealer = _Counting(os.urandom(32))
    cache = OpenedCredentials(sealer, limit=3)
    v1 = sealer.seal(b"pw-1", b"sub:alice:pw")
    assert cache.open(v1, b"sub:alice:pw") == b"pw-1"
    assert cache.open(v1, b"sub:alice:pw") == b"pw-1"
    assert sealer.opened == 1
    # A new password is a new sealed form: opened again, the old one never served for it.
    v2 = sealer.seal(b"pw-2", b"sub:alice:pw")
    assert cache.open(v2, b"sub:alice:pw") == b"pw-2"
    assert sealer.opened == 2
    # The context is part of the key: another user's name never opens alice's form.
    with pytest.raises(SealError):
        cache.open(v2, b"sub:bob:pw")
    with pytest.raises(SealError):
        cache.open(b"\x01" + b"\x00" * 40, b"sub:alice:pw")
    # Bounded: past the limit it starts over.
    for i in range(5):
        cache.open(sealer.seal(b"p", b"sub:u%d:pw" % i), b"sub:u%d:pw" % i)
    assert len(cache) <= 3
