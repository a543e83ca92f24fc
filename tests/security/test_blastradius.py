"""BlastRADIUS (CVE-2024-3596) mitigations are on by default, against a real `netd radius`.

The FreeRADIUS advisory's three: a client must sign its Access-Requests with
Message-Authenticator (``require_message_authenticator``, the default of a NAS made with
``netd nas add``); every reply carries Message-Authenticator as its FIRST attribute (the
forged prefix of the attack cannot then control the MD5 state before it); and a NAS that
does not sign (opted out) still gets an Access-Request with Proxy-State and no
Message-Authenticator dropped (``limit_proxy_state``). Each drop is counted.

Packets are built here from RFC 2865/3579, independently of the daemon's codec.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import socket
import struct

import pytest

from daemons.radius.codec import Attr, Code, DecodeError, check_message_authenticator, decode
from tests.security.conftest import Stack

PASSWORD = "blast-pw-7c1f2a"


def _pap(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """RFC 2865 §5.2 User-Password hiding."""
    padded = password + b"\0" * (-len(password) % 16) if password else bytes(16)
    out, prev = b"", authenticator
    for i in range(0, len(padded), 16):
        block = bytes(
            a ^ b
            for a, b in zip(padded[i : i + 16], hashlib.md5(secret + prev).digest(), strict=True)
        )
        out += block
        prev = block
    return out


def _attr(t: int, v: bytes) -> bytes:
    return bytes((t, len(v) + 2)) + v


def access_request(
    secret: bytes,
    user: str,
    password: str,
    *,
    ma: bool,
    proxy_state: bytes | None = None,
    code: int = 1,
) -> bytes:
    ident = os.urandom(1)[0]
    auth = os.urandom(16)
    attrs = b""
    if ma:
        attrs += _attr(80, bytes(16))  # first, as the advisory asks of clients too
    if code == 1:
        attrs += _attr(1, user.encode()) + _attr(2, _pap(password.encode(), secret, auth))
        attrs += _attr(4, socket.inet_aton("127.0.0.1"))
    if proxy_state is not None:
        attrs += _attr(33, proxy_state)
    pkt = bytearray(struct.pack("!BBH", code, ident, 20 + len(attrs)) + auth + attrs)
    if ma:
        pkt[22:38] = hmac.new(secret, bytes(pkt), "md5").digest()  # RFC 3579 §3.2
    return bytes(pkt)


def check_reply(reply: bytes, request: bytes, secret: bytes) -> int:
    """The reply's code, after checking its Response Authenticator (RFC 2865 §3) and that
    Message-Authenticator is its first attribute and right (RFC 3579 §3.2)."""
    code, ident, length = struct.unpack("!BBH", reply[:4])
    assert ident == request[1] and length == len(reply)
    expected = hashlib.md5(reply[:4] + request[4:20] + reply[20:] + secret).digest()
    assert hmac.compare_digest(reply[4:20], expected), "bad Response Authenticator"
    assert reply[20] == 80 and reply[21] == 18, f"first attribute is {reply[20]}, not MA"
    zeroed = reply[:4] + request[4:20] + reply[20:22] + bytes(16) + reply[38:]
    assert hmac.compare_digest(reply[22:38], hmac.new(secret, zeroed, "md5").digest())
    return code


async def exchange(source: str, port: int, packet: bytes, timeout: float = 1.0) -> bytes | None:
    """Send from ``source``; the answer, or None when none came (retransmitting once)."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.setblocking(False)
        for _ in range(2):
            sock.sendto(packet, ("127.0.0.1", port))
            try:
                return await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)
            except TimeoutError:
                continue
    return None


def test_the_codec_drops_proxy_state_without_message_authenticator() -> None:
    """limit_proxy_state in the pure check, for a NAS that does not have to sign."""
    secret = b"unit-secret"
    bare = decode(access_request(secret, "u", "p", ma=False))
    check_message_authenticator(bare, secret, required=False)  # a legacy NAS: let through
    proxied = decode(access_request(secret, "u", "p", ma=False, proxy_state=b"\x01\x02"))
    assert proxied.get(Attr.PROXY_STATE) == b"\x01\x02"
    with pytest.raises(DecodeError) as err:
        check_message_authenticator(proxied, secret, required=False)
    assert err.value.reason == "missing_message_authenticator"
    signed = decode(access_request(secret, "u", "p", ma=True, proxy_state=b"\x01\x02"))
    check_message_authenticator(signed, secret, required=False)
    check_message_authenticator(signed, secret, required=True)


async def test_blastradius_mitigations_on_by_default(stack: Stack) -> None:
    strict, legacy = b"blast-strict-9d4e", b"blast-legacy-51ab"
    stack.secrets.add(strict, legacy, PASSWORD)
    # a NAS made with the CLI's defaults, and one that opted out of signing (the API)
    stack.cli(
        "nas", "add", "blast-default", "--address", "127.0.0.1", "--secret-stdin",
        stdin=strict.decode() + "\n",
    )  # fmt: skip
    async with stack.api() as api:
        resp = await api.post(
            "/api/v1/nas",
            json={
                "name": "blast-legacy",
                "network": "127.0.0.2",
                "secret": legacy.decode(),
                "require_message_authenticator": False,
            },
        )
        assert resp.status_code == 201, resp.text
        resp = await api.post(
            "/api/v1/subscribers",
            json={"username": "blast-user", "password": PASSWORD, "plan": "default"},
        )
        assert resp.status_code == 201, resp.text
        shown = (await api.get("/api/v1/nas/blast-default")).json()
        assert shown["require_message_authenticator"] is True
    port = stack.radius_port

    # The radius daemon reloads its NAS table on NOTIFY: wait for a signed request to pass.
    request = access_request(strict, "blast-user", PASSWORD, ma=True)
    reply = None
    for _ in range(40):
        reply = await exchange("127.0.0.1", port, request, timeout=0.25)
        if reply is not None:
            break
    assert reply is not None, "the default NAS's signed Access-Request was not answered"
    assert check_reply(reply, request, strict) == Code.ACCESS_ACCEPT
    wrong = access_request(strict, "blast-user", "not-the-password", ma=True)
    reply = await exchange("127.0.0.1", port, wrong)
    assert reply is not None and check_reply(reply, wrong, strict) == Code.ACCESS_REJECT

    def drops() -> float:
        return stack.metric("radius", "netd_radius_drops_total")

    before = drops()
    # 1. unsigned from the default NAS: dropped, counted
    unsigned = access_request(strict, "blast-user", PASSWORD, ma=False)
    assert await exchange("127.0.0.1", port, unsigned, 0.3) is None
    # ... with Proxy-State too
    unsigned_proxied = access_request(strict, "blast-user", PASSWORD, ma=False, proxy_state=b"x")
    assert await exchange("127.0.0.1", port, unsigned_proxied, 0.3) is None
    # a Status-Server must be signed whatever the NAS (RFC 5997 §3)
    status_server = access_request(strict, "", "", ma=False, code=12)
    assert await exchange("127.0.0.1", port, status_server, 0.3) is None
    # 2. the legacy NAS: unsigned passes (its choice), its replies still signed, MA first
    bare = access_request(legacy, "blast-user", PASSWORD, ma=False)
    reply = await exchange("127.0.0.2", port, bare)
    assert reply is not None and check_reply(reply, bare, legacy) == Code.ACCESS_ACCEPT
    # 3. ... but not with Proxy-State and no Message-Authenticator (limit_proxy_state)
    proxied = access_request(legacy, "blast-user", PASSWORD, ma=False, proxy_state=b"\x00\x01")
    assert await exchange("127.0.0.2", port, proxied, 0.3) is None
    # signed with Proxy-State is answered, Proxy-State echoed, MA first
    signed = access_request(legacy, "blast-user", PASSWORD, ma=True, proxy_state=b"\x00\x01")
    reply = await exchange("127.0.0.2", port, signed)
    assert reply is not None and check_reply(reply, signed, legacy) == Code.ACCESS_ACCEPT
    assert b"\x21\x04\x00\x01" in reply[20:]  # Proxy-State copied back (RFC 2865 §5.33)
    # every drop counted: 4 packets, each sent twice (the retransmit)
    for _ in range(20):
        if drops() - before >= 8:
            break
        await asyncio.sleep(0.1)
    assert drops() - before == 8
    out = stack.procs["radius"].output()
    assert "missing_message_authenticator" in out
