"""What travels inside the PEAP and EAP-TTLS tunnels, pure.

- EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2-02 §2): Challenge, Response, Success,
  Failure, each OpCode, MS-CHAPv2-ID, MS-Length, then its data.
- EAP-TTLS AVPs (RFC 5281 §10): Code (4), Flags (V 0x80, M 0x40), Length (3, header
  included), Vendor-ID when V, data padded to 4 octets.
- PEAP's Result TLV (draft-josefsson-pppext-eap-tls-eap-10 §4.2, type 33 "EAP-TLV").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from daemons.radius.codec import DecodeError, DropReason

TYPE_IDENTITY, TYPE_NAK, TYPE_MSCHAPV2, TYPE_TLV = 1, 3, 26, 33
OP_CHALLENGE, OP_RESPONSE, OP_SUCCESS, OP_FAILURE = 1, 2, 3, 4

# RFC 5281 §10 and RFC 2865/2548 numbers carried as AVPs
AVP_USER_NAME, AVP_USER_PASSWORD, AVP_CHAP_PASSWORD = 1, 2, 3
AVP_CHAP_CHALLENGE, AVP_EAP_MESSAGE, AVP_REPLY_MESSAGE = 60, 79, 18
MICROSOFT = 311
MS_CHAP_CHALLENGE, MS_CHAP2_RESPONSE, MS_CHAP2_SUCCESS, MS_CHAP_ERROR = 11, 25, 26, 2
AVP_V, AVP_M = 0x80, 0x40
MAX_AVPS = 64

TLV_RESULT = 3
TLV_MANDATORY = 0x8000
RESULT_SUCCESS, RESULT_FAILURE = 1, 2


# --- EAP-MSCHAPv2 --------------------------------------------------------------------


def mschapv2_challenge(ms_id: int, challenge: bytes, name: bytes = b"netd") -> bytes:
    """Type-Data of an EAP-MSCHAPv2 Challenge (the EAP type octet not included)."""
    body = bytes((16,)) + challenge + name
    return struct.pack("!BBH", OP_CHALLENGE, ms_id, 4 + len(body)) + body


def mschapv2_success(ms_id: int, authenticator_response: bytes) -> bytes:
    body = authenticator_response + b" M=OK"
    return struct.pack("!BBH", OP_SUCCESS, ms_id, 4 + len(body)) + body


def mschapv2_failure(ms_id: int, challenge: bytes) -> bytes:
    body = b"E=691 R=0 C=" + challenge.hex().upper().encode() + b" V=3 M=Authentication failed"
    return struct.pack("!BBH", OP_FAILURE, ms_id, 4 + len(body)) + body


@dataclass(frozen=True, slots=True)
class MsChapV2Response:
    ms_id: int
    peer_challenge: bytes
    nt_response: bytes
    name: bytes


def mschapv2_opcode(data: bytes) -> int:
    if not data:
        raise DecodeError(DropReason.MALFORMED, "EAP-MSCHAPv2 without an OpCode")
    return data[0]


def parse_mschapv2_response(data: bytes) -> MsChapV2Response:
    """Raises DecodeError(MALFORMED)."""
    if len(data) < 5 + 49 or data[0] != OP_RESPONSE or data[4] != 49:
        raise DecodeError(DropReason.MALFORMED, "EAP-MSCHAPv2 Response size")
    value = data[5:54]
    return MsChapV2Response(data[1], value[:16], value[24:48], data[54:])


# --- EAP-TTLS AVPs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Avp:
    code: int
    vendor: int
    data: bytes


def parse_avps(data: bytes) -> list[Avp]:
    """Raises DecodeError(MALFORMED) for an AVP that runs past the data."""
    out: list[Avp] = []
    pos = 0
    while pos < len(data):
        if len(out) >= MAX_AVPS or len(data) - pos < 8:
            raise DecodeError(DropReason.MALFORMED, "EAP-TTLS AVPs truncated or too many")
        code, flags_len = struct.unpack_from("!II", data, pos)
        flags, length = flags_len >> 24, flags_len & 0xFFFFFF
        header = 12 if flags & AVP_V else 8
        if length < header or pos + length > len(data):
            raise DecodeError(DropReason.MALFORMED, "EAP-TTLS AVP length")
        vendor = struct.unpack_from("!I", data, pos + 8)[0] if flags & AVP_V else 0
        out.append(Avp(code, vendor, data[pos + header : pos + length]))
        pos += (length + 3) & ~3
    return out


def encode_avp(code: int, data: bytes, vendor: int = 0) -> bytes:
    flags = AVP_M | (AVP_V if vendor else 0)
    header = 12 if vendor else 8
    raw = struct.pack("!II", code, (flags << 24) | (header + len(data)))
    if vendor:
        raw += struct.pack("!I", vendor)
    raw += data
    return raw + bytes(-len(raw) % 4)


def find_avp(avps: list[Avp], code: int, vendor: int = 0) -> bytes | None:
    return next((a.data for a in avps if a.code == code and a.vendor == vendor), None)


# --- PEAP Result TLV --------------------------------------------------------------------


def result_tlv(identifier: int, success: bool) -> bytes:
    """A whole EAP-Request/TLV with the Result TLV (PEAPv0 keeps the header for TLVs)."""
    tlv = struct.pack(
        "!HHH", TLV_MANDATORY | TLV_RESULT, 2, RESULT_SUCCESS if success else RESULT_FAILURE
    )
    return struct.pack("!BBHB", 1, identifier, 5 + len(tlv), TYPE_TLV) + tlv


def parse_result_tlv(data: bytes) -> int | None:
    """The Result TLV's status in TLV Type-Data, or None."""
    pos = 0
    while pos + 4 <= len(data):
        kind, length = struct.unpack_from("!HH", data, pos)
        if kind & 0x3FFF == TLV_RESULT and length == 2 and pos + 6 <= len(data):
            return int(struct.unpack_from("!H", data, pos + 4)[0])
        pos += 4 + length
    return None
