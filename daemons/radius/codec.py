"""RADIUS packets on the wire (RFC 2865 §3, §5; RFC 2866 §3; RFC 2869 §5.14; RFC 5997).

Pure functions over bytes: no I/O, no clock, no randomness of its own (callers pass it in).
Every structural problem raises :class:`DecodeError` carrying a :class:`DropReason`; the
protocol's answer to all of them is a silent discard (RFC 2865 §3).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

HEADER = 20
MAX_PACKET = 4096  # RFC 2865 §3
MAX_ATTR_VALUE = 253
AUTH_LEN = 16


class Code(IntEnum):
    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    STATUS_CLIENT = 13
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


KNOWN_CODES = frozenset(int(c) for c in Code)


class Attr(IntEnum):
    """The attribute numbers the codec and engines need themselves (RFC 2865/2869)."""

    USER_NAME = 1
    USER_PASSWORD = 2
    CHAP_PASSWORD = 3
    NAS_IP_ADDRESS = 4
    FRAMED_IP_ADDRESS = 8
    FILTER_ID = 11
    REPLY_MESSAGE = 18
    STATE = 24
    CLASS = 25
    VENDOR_SPECIFIC = 26
    SESSION_TIMEOUT = 27
    CALLING_STATION_ID = 31
    NAS_IDENTIFIER = 32
    PROXY_STATE = 33
    CHAP_CHALLENGE = 60
    EAP_MESSAGE = 79
    MESSAGE_AUTHENTICATOR = 80


class DropReason(StrEnum):
    """Why a datagram was silently discarded; the ``reason`` label of the drop metric."""

    TRUNCATED = "truncated"
    LENGTH_MISMATCH = "length_mismatch"
    OVERSIZED = "oversized"
    BAD_ATTRIBUTE = "bad_attribute"
    UNKNOWN_CODE = "unknown_code"
    UNEXPECTED_CODE = "unexpected_code"
    UNKNOWN_NAS = "unknown_nas"
    BAD_AUTHENTICATOR = "bad_authenticator"
    BAD_MESSAGE_AUTHENTICATOR = "bad_message_authenticator"
    MISSING_MESSAGE_AUTHENTICATOR = "missing_message_authenticator"
    MALFORMED = "malformed"
    DUPLICATE_IN_PROGRESS = "duplicate_in_progress"
    OVERLOAD = "overload"
    RATE_LIMITED = "rate_limited"  # the NAS is over radius.nas_rate_limit
    STORE_ERROR = "store_error"


class DecodeError(Exception):
    """The datagram is not an acceptable RADIUS packet; it must be silently discarded."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded packet. ``attributes`` keeps wire order, values raw."""

    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[tuple[int, bytes], ...]
    raw: bytes

    def get(self, attr: int) -> bytes | None:
        for t, v in self.attributes:
            if t == attr:
                return v
        return None

    def get_all(self, attr: int) -> list[bytes]:
        return [v for t, v in self.attributes if t == attr]

    def count(self, attr: int) -> int:
        return sum(1 for t, _ in self.attributes if t == attr)

    def vsas(self, vendor: int, vtype: int) -> list[bytes]:
        """Values of one vendor's sub-attribute (RFC 2865 §5.26 format), in order."""
        out: list[bytes] = []
        for t, v in self.attributes:
            if t == Attr.VENDOR_SPECIFIC:
                for vid, st, sv in iter_vsa(v):
                    if vid == vendor and st == vtype:
                        out.append(sv)
        return out

    def vsa(self, vendor: int, vtype: int) -> bytes | None:
        found = self.vsas(vendor, vtype)
        return found[0] if found else None


def iter_vsa(value: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Sub-attributes of a Vendor-Specific value; a malformed one yields nothing more."""
    if len(value) < 4:
        return
    vendor = int.from_bytes(value[:4], "big")
    pos, end = 4, len(value)
    while pos + 2 <= end:
        vtype, vlen = value[pos], value[pos + 1]
        if vlen < 2 or pos + vlen > end:
            return
        yield vendor, vtype, value[pos + 2 : pos + vlen]
        pos += vlen


def decode(data: bytes) -> Packet:
    """Parse a datagram into a Packet. Raises DecodeError (silent discard)."""
    n = len(data)
    if n > MAX_PACKET:
        raise DecodeError(DropReason.OVERSIZED, f"{n} bytes")
    if n < HEADER:
        raise DecodeError(DropReason.TRUNCATED, f"{n} bytes")
    code, ident, length = struct.unpack_from("!BBH", data)
    if code not in KNOWN_CODES:
        raise DecodeError(DropReason.UNKNOWN_CODE, str(code))
    if length < HEADER or length > MAX_PACKET:
        raise DecodeError(DropReason.LENGTH_MISMATCH, f"length field {length}")
    if n < length:
        raise DecodeError(DropReason.LENGTH_MISMATCH, f"length field {length}, got {n} bytes")
    # Octets past the length field are padding and are ignored (RFC 2865 §3).
    attrs: list[tuple[int, bytes]] = []
    pos = HEADER
    while pos < length:
        if pos + 2 > length:
            raise DecodeError(DropReason.BAD_ATTRIBUTE, f"truncated attribute at {pos}")
        atype, alen = data[pos], data[pos + 1]
        if alen < 2:
            raise DecodeError(DropReason.BAD_ATTRIBUTE, f"attribute {atype} length {alen}")
        if pos + alen > length:
            raise DecodeError(DropReason.BAD_ATTRIBUTE, f"attribute {atype} runs past the end")
        attrs.append((atype, data[pos + 2 : pos + alen]))
        pos += alen
    return Packet(code, ident, data[4:HEADER], tuple(attrs), data[:length])


def hmac_md5(secret: bytes, msg: bytes | bytearray) -> bytes:
    """HMAC-MD5 (RFC 2104) from the secret's padded-key MD5 states, made once per secret:
    2 µs a packet here against 4.7 µs for hmac.digest, which sets OpenSSL's MAC up each
    call. Equal to hmac.digest(secret, msg, "md5") (tests/radius/test_codec.py)."""
    pads = _PADS.get(secret)
    if pads is None:
        if len(_PADS) >= 4096:  # secrets of NAS entries come and go: bounded
            _PADS.clear()
        key = hashlib.md5(secret, usedforsecurity=False).digest() if len(secret) > 64 else secret
        key = key.ljust(64, b"\0")
        pads = _PADS[secret] = (
            hashlib.md5(bytes(b ^ 0x36 for b in key), usedforsecurity=False),
            hashlib.md5(bytes(b ^ 0x5C for b in key), usedforsecurity=False),
        )
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(msg)
    outer.update(inner.digest())
    return outer.digest()


_PADS: dict[bytes, tuple[Any, Any]] = {}
_ZERO16 = bytes(16)
_MA_TYPE = bytes((80, 18))  # Message-Authenticator, type and length
_MA_ZERO = _MA_TYPE + _ZERO16


def _md5(*parts: bytes) -> bytes:
    h = hashlib.md5(usedforsecurity=False)
    for p in parts:
        h.update(p)
    return h.digest()


def _ma_offset(raw: bytes) -> int | None:
    """Byte offset of the first Message-Authenticator value in a valid packet, if any."""
    pos = HEADER
    while pos + 2 <= len(raw):
        if raw[pos] == Attr.MESSAGE_AUTHENTICATOR:
            return pos + 2
        pos += max(raw[pos + 1], 2)
    return None


def message_authenticator(raw: bytes, secret: bytes, authenticator: bytes | None = None) -> bytes:
    """HMAC-MD5 over ``raw`` with the Message-Authenticator zeroed (RFC 3579 §3.2).

    ``authenticator`` replaces the header's (a reply is signed with the request's).
    """
    off = _ma_offset(raw)
    if off is None and authenticator is None:
        return hmac_md5(secret, raw)
    buf = bytearray(raw)
    if off is not None:
        buf[off : off + 16] = _ZERO16
    if authenticator is not None:
        buf[4:HEADER] = authenticator
    return hmac_md5(secret, buf)


def check_message_authenticator(pkt: Packet, secret: bytes, required: bool) -> None:
    """Verify Message-Authenticator if present (and demand it if ``required``).

    A request with Proxy-State but no Message-Authenticator is refused even when it is not
    ``required``: BlastRADIUS (CVE-2024-3596) hides its MD5 chosen-prefix collision in a
    Proxy-State added to an unsigned request, which the reply echoes (FreeRADIUS's
    ``limit_proxy_state``).

    Raises DecodeError: BAD_MESSAGE_AUTHENTICATOR or MISSING_MESSAGE_AUTHENTICATOR.
    """
    values = pkt.get_all(Attr.MESSAGE_AUTHENTICATOR)
    if not values:
        if required:
            raise DecodeError(DropReason.MISSING_MESSAGE_AUTHENTICATOR)
        if pkt.get(Attr.PROXY_STATE) is not None:
            raise DecodeError(DropReason.MISSING_MESSAGE_AUTHENTICATOR, "Proxy-State without it")
        return
    if len(values) > 1 or len(values[0]) != 16:
        raise DecodeError(DropReason.BAD_MESSAGE_AUTHENTICATOR, "malformed")
    if not hmac.compare_digest(values[0], message_authenticator(pkt.raw, secret)):
        raise DecodeError(DropReason.BAD_MESSAGE_AUTHENTICATOR)


def request_authenticator(raw: bytes, secret: bytes) -> bytes:
    """The authenticator of an Accounting/CoA/Disconnect request (RFC 2866 §3, 5176 §2.3)."""
    return _md5(raw[:4], bytes(16), raw[HEADER:], secret)


def check_request_authenticator(pkt: Packet, secret: bytes) -> None:
    """Raise DecodeError(BAD_AUTHENTICATOR) if an accounting-type request's is wrong."""
    if not hmac.compare_digest(pkt.authenticator, request_authenticator(pkt.raw, secret)):
        raise DecodeError(DropReason.BAD_AUTHENTICATOR)


def response_authenticator(raw: bytes, request_auth: bytes, secret: bytes) -> bytes:
    """RFC 2865 §3: MD5(Code+ID+Length+RequestAuth+Attributes+Secret)."""
    return _md5(raw[:4], request_auth, raw[HEADER:], secret)


def check_response_authenticator(raw: bytes, request_auth: bytes, secret: bytes) -> bool:
    return hmac.compare_digest(raw[4:HEADER], response_authenticator(raw, request_auth, secret))


def _pack_attrs(attributes: Iterable[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for atype, value in attributes:
        if len(value) > MAX_ATTR_VALUE:
            raise ValueError(f"attribute {atype} value is {len(value)} bytes (max 253)")
        out += bytes((atype, len(value) + 2)) + value
    return bytes(out)


def _frame(
    code: int,
    identifier: int,
    authenticator: bytes,
    attributes: Sequence[tuple[int, bytes]],
    message_auth: bool,
) -> bytearray:
    """Header and attributes, with a zeroed Message-Authenticator first when asked for.
    Raises ValueError past 4096 octets or 253 per attribute."""
    first = [(Attr.MESSAGE_AUTHENTICATOR, bytes(16))] if message_auth else []
    body = _pack_attrs(first + list(attributes))
    length = HEADER + len(body)
    if length > MAX_PACKET:
        raise ValueError(f"packet of {length} bytes exceeds {MAX_PACKET}")
    return bytearray(struct.pack("!BBH", code, identifier, length) + authenticator + body)


def encode_reply(
    code: int,
    request: Packet,
    attributes: Sequence[tuple[int, bytes]],
    secret: bytes,
    message_auth: bool = True,
) -> bytes:
    """Build a signed reply to ``request``.

    Message-Authenticator comes first (the BlastRADIUS / CVE-2024-3596 mitigation), the
    request's Proxy-State attributes are copied last (RFC 2865 §5.33). Raises ValueError
    if the reply would exceed 4096 octets or an attribute 253.
    """
    attrs = [
        (t, v) for t, v in attributes if t not in (Attr.MESSAGE_AUTHENTICATOR, Attr.PROXY_STATE)
    ]
    attrs += [(Attr.PROXY_STATE, v) for v in request.get_all(Attr.PROXY_STATE)]
    body = _pack_attrs(attrs)
    length = HEADER + len(body) + (18 if message_auth else 0)
    if length > MAX_PACKET:
        raise ValueError(f"packet of {length} bytes exceeds {MAX_PACKET}")
    head = struct.pack("!BBH", code, request.identifier, length)
    if message_auth:  # HMAC over the reply with the request's authenticator, MA zeroed
        zeroed = head + request.authenticator + _MA_ZERO + body
        body = _MA_TYPE + hmac_md5(secret, zeroed) + body
    response = hashlib.md5(head + request.authenticator + body + secret, usedforsecurity=False)
    return head + response.digest() + body


def encode_request(
    code: int,
    identifier: int,
    attributes: Sequence[tuple[int, bytes]],
    secret: bytes,
    authenticator: bytes | None = None,
    message_auth: bool = True,
) -> bytes:
    """Build a request. Access-Request/Status-Server take a random ``authenticator``;
    accounting, CoA and Disconnect requests compute theirs (pass None). Raises ValueError."""
    if authenticator is not None and len(authenticator) != AUTH_LEN:
        raise ValueError("the request authenticator is 16 octets")
    attrs = [(t, v) for t, v in attributes if t != Attr.MESSAGE_AUTHENTICATOR]
    raw = _frame(code, identifier, authenticator or bytes(16), attrs, message_auth)
    # RFC 5176 §3.1: a computed authenticator is taken over a signed packet whose
    # authenticator field is still zero; a random one is in place before signing.
    if message_auth:
        raw[HEADER + 2 : HEADER + 18] = message_authenticator(bytes(raw), secret)
    if authenticator is None:
        raw[4:HEADER] = request_authenticator(bytes(raw), secret)
    return bytes(raw)


# --- hidden values ---------------------------------------------------------------------


def _xor(a: bytes, b: bytes) -> bytes:
    """XOR of two equal-length blocks, as integers (a byte-by-byte loop costs 4x more)."""
    n = len(a)
    if len(b) != n:
        raise ValueError("blocks differ in length")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(n, "big")


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password hiding (RFC 2865 §5.2). Raises ValueError past 128 octets."""
    if len(password) > 128:
        raise ValueError("User-Password is at most 128 octets")
    padded = password + bytes(-len(password) % 16 or (16 if not password else 0))
    out, prev = bytearray(), authenticator
    for i in range(0, len(padded), 16):
        block = _xor(padded[i : i + 16], _md5(secret, prev))
        out += block
        prev = block
    return bytes(out)


def unhide_password(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Recover a User-Password (RFC 2865 §5.2). Raises DecodeError(MALFORMED)."""
    if not hidden or len(hidden) % 16 or len(hidden) > 128:
        raise DecodeError(DropReason.MALFORMED, f"User-Password of {len(hidden)} octets")
    out, prev = bytearray(), authenticator
    for i in range(0, len(hidden), 16):
        block = hidden[i : i + 16]
        out += _xor(block, _md5(secret, prev))
        prev = block
    return bytes(out).rstrip(b"\0")


def salt_encrypt(plain: bytes, secret: bytes, authenticator: bytes, salt: bytes) -> bytes:
    """Salt-encryption (RFC 2868 §3.5, RFC 2548 §2.4.2): Tunnel-Password, MS-MPPE keys.

    ``salt`` is two random octets (its high bit is forced on). Raises ValueError.
    """
    if len(salt) != 2:
        raise ValueError("salt is 2 octets")
    if len(plain) > 239:
        raise ValueError("salt-encrypted value too long")
    salt = bytes((salt[0] | 0x80, salt[1]))
    data = bytes((len(plain),)) + plain
    data += bytes(-len(data) % 16)
    out, prev = bytearray(), authenticator + salt
    for i in range(0, len(data), 16):
        block = _xor(data[i : i + 16], _md5(secret, prev))
        out += block
        prev = block
    return salt + bytes(out)


def salt_decrypt(value: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Inverse of :func:`salt_encrypt`. Raises DecodeError(MALFORMED)."""
    if len(value) < 18 or (len(value) - 2) % 16:
        raise DecodeError(DropReason.MALFORMED, "salt-encrypted value length")
    salt, body = value[:2], value[2:]
    out, prev = bytearray(), authenticator + salt
    for i in range(0, len(body), 16):
        block = body[i : i + 16]
        out += _xor(block, _md5(secret, prev))
        prev = block
    n = out[0]
    if n > len(out) - 1:
        raise DecodeError(DropReason.MALFORMED, "salt-encrypted length byte")
    return bytes(out[1 : 1 + n])


def ascend_secret(plain: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """encrypt=3 (Ascend-Send-Secret, Ascend-Receive-Secret): the value, zero-padded or cut
    to 16 octets, XORed with MD5(authenticator + secret). Not reversible by FreeRADIUS, which
    prints the octets as they came."""
    return _xor(plain[:AUTH_LEN].ljust(AUTH_LEN, b"\0"), _md5(authenticator, secret))


def vsa(vendor: int, vtype: int, value: bytes) -> tuple[int, bytes]:
    """One Vendor-Specific attribute holding one sub-attribute (RFC 2865 §5.26)."""
    if len(value) > MAX_ATTR_VALUE - 6:
        raise ValueError(f"vendor {vendor} attribute {vtype} value too long")
    return Attr.VENDOR_SPECIFIC, vendor.to_bytes(4, "big") + bytes((vtype, len(value) + 2)) + value
