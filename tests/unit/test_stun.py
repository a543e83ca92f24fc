"""The STUN codec against RFC 5769's test vectors, and the UDP connection request message
of TR-069 Annex G."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import zlib

import pytest

from daemons.acs import stun

TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
# RFC 5769 §2.1 (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT)
SAMPLE_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf"
)


def _attributes(message: bytes) -> dict[int, bytes]:
    out, pos = {}, 20
    while pos < len(message):
        kind, size = struct.unpack_from("!HH", message, pos)
        out[kind] = message[pos + 4 : pos + 4 + size]
        pos += 4 + size + (-size % 4)
    return out


def _fingerprint_ok(message: bytes) -> bool:
    want = (zlib.crc32(message[:-8]) ^ 0x5354554E) & 0xFFFFFFFF
    return message[-8:] == struct.pack("!HHI", 0x8028, 4, want)


def test_the_rfc5769_request_parses_and_its_ice_attribute_is_refused() -> None:
    assert _fingerprint_ok(SAMPLE_REQUEST)  # the vector as typed here is the RFC's
    req = stun.parse(SAMPLE_REQUEST)
    assert req.transaction == TXID and not req.classic
    assert req.get(0x0006) == b"evtj:h6vY"
    # PRIORITY (0x0024) is comprehension-required and this server does not know it (ICE):
    # 420 Unknown Attribute naming it, with a FINGERPRINT since the request had one.
    reply = stun.answer(req, "192.0.2.1", 32853)
    assert reply is not None and reply[:2] == b"\x01\x11" and reply[8:20] == TXID
    attrs = _attributes(reply)
    assert attrs[0x0009][2:4] == bytes([4, 20]) and attrs[0x000A] == b"\x00\x24"
    assert _fingerprint_ok(reply)


@pytest.mark.parametrize(
    ("host", "xor_mapped"),
    [
        ("192.0.2.1", "0001a147e112a643"),  # RFC 5769 §2.2
        (
            "2001:db8:1234:5678:11:2233:4455:6677",  # RFC 5769 §2.3
            "0002a1470113a9faa5d3f179bc25f4b5bed2b9d9",
        ),
    ],
)
def test_xor_mapped_address_matches_rfc5769(host: str, xor_mapped: str) -> None:
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + TXID
    reply = stun.answer(stun.parse(request), host, 32853)
    assert reply is not None and reply[:2] == b"\x01\x01"
    assert struct.unpack("!H", reply[2:4])[0] == len(reply) - 20
    attrs = _attributes(reply)
    assert attrs[0x0020] == bytes.fromhex(xor_mapped)
    assert attrs[0x0001][4:] == ipaddress.ip_address(host).packed
    assert 0x8028 not in attrs  # no FINGERPRINT asked for


def test_a_classic_rfc3489_request() -> None:
    tid = bytes(range(16))
    crb = b"dslforum.org/TR-111 "  # TR-111's CONNECTION-REQUEST-BINDING (optional)
    request = struct.pack("!HH", 0x0001, 4 + len(crb)) + tid + struct.pack("!HH", 0xC001, 20) + crb
    reply = stun.answer(stun.parse(request), "198.51.100.7", 40000)
    assert reply is not None and reply[4:20] == tid
    attrs = _attributes(reply)
    assert attrs[0x0001] == bytes.fromhex("00019c40c6336407") and 0x0020 not in attrs
    change = struct.pack("!HH", 0x0001, 8) + tid + struct.pack("!HHI", 0x0003, 4, 6)
    assert stun.answer(stun.parse(change), "198.51.100.7", 40000) is None


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 19, b"\x01\x01" + b"\x00" * 18, b"\x00\x01\x00\x04" + b"\x00" * 16 + b"\x00"],
)
def test_not_a_binding_request(data: bytes) -> None:
    with pytest.raises(stun.StunError):
        stun.parse(data)


def test_udp_connection_request_is_signed_as_annex_g_says() -> None:
    msg = stun.udp_connection_request("203.0.113.5", 7547, "cpe user", "pw", 1700000000, 42, "ab12")
    line, _, rest = msg.decode().partition("\r\n")
    assert line.startswith(
        "GET http://203.0.113.5:7547?ts=1700000000&id=42&un=cpe%20user&cn=ab12&sig="
    )
    assert line.endswith(" HTTP/1.1") and rest == "Host: 203.0.113.5:7547\r\n\r\n"
    sig = line.split("sig=", 1)[1].split(" ", 1)[0]
    text = b"1700000000" + b"42" + b"cpe user" + b"ab12"
    assert sig == hmac.new(b"pw", text, hashlib.sha1).hexdigest()
    assert stun.split_address("203.0.113.5:3479") == ("203.0.113.5", 3479)
    assert stun.split_address("[2001:db8::1]:3479") == ("2001:db8::1", 3479)
    assert stun.split_address("cpe.example.net") == ("cpe.example.net", 80)
    assert stun.split_address("x:99999") is None and stun.split_address("") is None
