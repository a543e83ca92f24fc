"""EAP over RADIUS (RFC 3748, RFC 3579) and EAP-MD5 (RFC 3748 §5.4), pure.

The RADIUS State attribute carries the whole EAP-MD5 conversation state, sealed with an
HMAC: any worker process can finish an exchange another began, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum

from daemons.radius.codec import MAX_ATTR_VALUE, Attr, DecodeError, DropReason, Packet


class EapCode(IntEnum):
    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class EapType(IntEnum):
    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    MD5_CHALLENGE = 4


@dataclass(frozen=True, slots=True)
class EapPacket:
    code: int
    identifier: int
    type: int | None  # None for Success/Failure
    data: bytes

    def encode(self) -> bytes:
        body = b"" if self.type is None else bytes((self.type,)) + self.data
        return struct.pack("!BBH", self.code, self.identifier, 4 + len(body)) + body


def eap_from_radius(pkt: Packet) -> EapPacket | None:
    """The EAP packet in a RADIUS packet's EAP-Message attributes (concatenated, RFC 3579
    §3.1), or None. Raises DecodeError(MALFORMED) for a malformed EAP packet."""
    parts = pkt.get_all(Attr.EAP_MESSAGE)
    if not parts:
        return None
    data = b"".join(parts)
    if len(data) < 4:
        raise DecodeError(DropReason.MALFORMED, "EAP packet shorter than 4 octets")
    code, ident, length = struct.unpack_from("!BBH", data)
    if length != len(data) or code not in (1, 2, 3, 4):
        raise DecodeError(DropReason.MALFORMED, "EAP length or code")
    if code in (EapCode.REQUEST, EapCode.RESPONSE):
        if length < 5:
            raise DecodeError(DropReason.MALFORMED, "EAP request/response without a type")
        return EapPacket(code, ident, data[4], data[5:length])
    return EapPacket(code, ident, None, b"")


def eap_attributes(eap: EapPacket) -> list[tuple[int, bytes]]:
    """EAP-Message attributes for ``eap``, split at 253 octets (RFC 3579 §3.1)."""
    raw = eap.encode()
    return [
        (Attr.EAP_MESSAGE, raw[i : i + MAX_ATTR_VALUE]) for i in range(0, len(raw), MAX_ATTR_VALUE)
    ]


def md5_challenge_request(identifier: int, challenge: bytes, name: bytes = b"") -> EapPacket:
    """EAP-Request/MD5-Challenge: Value-Size, Value, Name (RFC 3748 §5.4)."""
    return EapPacket(
        EapCode.REQUEST,
        identifier,
        EapType.MD5_CHALLENGE,
        bytes((len(challenge),)) + challenge + name,
    )


def md5_response_value(resp: EapPacket) -> bytes:
    """The Value of an EAP-Response/MD5-Challenge. Raises DecodeError(MALFORMED)."""
    if resp.type != EapType.MD5_CHALLENGE or not resp.data:
        raise DecodeError(DropReason.MALFORMED, "not an MD5-Challenge response")
    size = resp.data[0]
    if size != 16 or len(resp.data) < 1 + size:
        raise DecodeError(DropReason.MALFORMED, "MD5-Challenge response value size")
    return resp.data[1 : 1 + size]


def md5_expected(identifier: int, password: bytes, challenge: bytes) -> bytes:
    """RFC 1994 §4.1 as used by EAP-MD5: MD5(Identifier + secret + Challenge)."""
    return hashlib.md5(bytes((identifier,)) + password + challenge, usedforsecurity=False).digest()


# --- State tokens ------------------------------------------------------------------------

_STATE_VERSION = 1
_STATE_LEN = 1 + 4 + 1 + 16 + 16


@dataclass(frozen=True, slots=True)
class Md5State:
    expires: int
    identifier: int
    challenge: bytes


def _state_mac(key: bytes, payload: bytes, username: bytes, nas: str) -> bytes:
    msg = payload + b"\0" + username + b"\0" + nas.encode()
    return hmac.new(key, msg, hashlib.sha256).digest()[:16]


def make_state(key: bytes, st: Md5State, username: bytes, nas: str) -> bytes:
    payload = struct.pack("!BIB", _STATE_VERSION, st.expires, st.identifier) + st.challenge
    return payload + _state_mac(key, payload, username, nas)


def open_state(key: bytes, token: bytes, username: bytes, nas: str, now: float) -> Md5State | None:
    """The state in ``token`` if it is ours, for this user and NAS, and unexpired."""
    if len(token) != _STATE_LEN or token[0] != _STATE_VERSION:
        return None
    payload, mac = token[:-16], token[-16:]
    if not hmac.compare_digest(mac, _state_mac(key, payload, username, nas)):
        return None
    _, expires, ident = struct.unpack_from("!BIB", payload)
    if expires < now:
        return None
    return Md5State(expires, ident, payload[6:22])
