"""STUN Binding (RFC 5389, and the classic RFC 3489 its TR-111 CPEs speak) and the UDP
connection request of TR-069 Annex G. Pure: bytes in, bytes out.

A CPE behind NAT keeps a UDP binding open by sending Binding Requests to the ACS's STUN
server; the answer tells it the binding's public address, which it reports as
ManagementServer.UDPConnectionRequestAddress. The ACS later sends a UDP connection request
to that address from the STUN server's own address and port (TR-069 G.2.2.3), so that a NAT
that filters by remote address lets it in.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import zlib
from dataclasses import dataclass
from urllib.parse import quote

MAGIC = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
MAPPED_ADDRESS = 0x0001
CHANGE_REQUEST = 0x0003  # RFC 3489: answer from another address (we have none)
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
XOR_MAPPED_ADDRESS = 0x0020
SOFTWARE = 0x8022
FINGERPRINT = 0x8028
CONNECTION_REQUEST_BINDING = 0xC001  # TR-111: "dslforum.org/TR-111 "
BINDING_CHANGE = 0xC002  # TR-111
_FINGERPRINT_XOR = 0x5354554E
_UNDERSTOOD = {MAPPED_ADDRESS, CHANGE_REQUEST, 0x0006, 0x0008}  # USERNAME, MESSAGE-INTEGRITY


class StunError(ValueError):
    """Not a STUN Binding Request: dropped without an answer."""


@dataclass(frozen=True, slots=True)
class Request:
    transaction: bytes  # 12 bytes after the cookie (RFC 5389) or 16 (RFC 3489)
    classic: bool  # RFC 3489: no magic cookie
    attributes: tuple[tuple[int, bytes], ...]

    def get(self, kind: int) -> bytes | None:
        return next((v for k, v in self.attributes if k == kind), None)


def parse(data: bytes) -> Request:
    """A Binding Request, or StunError (anything else is not answered)."""
    if len(data) < 20 or data[0] & 0xC0:
        raise StunError("not STUN")
    kind, length, cookie = struct.unpack_from("!HHI", data)
    if kind != BINDING_REQUEST:
        raise StunError(f"not a Binding Request (0x{kind:04x})")
    if length % 4 or 20 + length != len(data):
        raise StunError("bad length")
    classic = cookie != MAGIC
    transaction = data[4:20] if classic else data[8:20]
    attributes = []
    pos = 20
    while pos < len(data):
        if pos + 4 > len(data):
            raise StunError("truncated attribute")
        a_kind, a_len = struct.unpack_from("!HH", data, pos)
        value = data[pos + 4 : pos + 4 + a_len]
        if len(value) != a_len:
            raise StunError("truncated attribute")
        attributes.append((a_kind, value))
        pos += 4 + a_len + (-a_len % 4)
    return Request(transaction, classic, tuple(attributes))


def _address(kind: int, host: str, port: int, xor: bytes | None) -> bytes:
    ip = ipaddress.ip_address(host)
    raw = ip.packed
    family = 1 if ip.version == 4 else 2
    if xor is not None:
        port ^= MAGIC >> 16
        raw = bytes(a ^ b for a, b in zip(raw, xor, strict=False))
    value = struct.pack("!BBH", 0, family, port) + raw
    return struct.pack("!HH", kind, len(value)) + value


def _message(kind: int, req: Request, body: bytes, fingerprint: bool) -> bytes:
    head = req.transaction if req.classic else struct.pack("!I", MAGIC) + req.transaction
    if fingerprint:
        out = struct.pack("!HH", kind, len(body) + 8) + head + body
        crc = (zlib.crc32(out) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
        return out + struct.pack("!HHI", FINGERPRINT, 4, crc)
    return struct.pack("!HH", kind, len(body)) + head + body


def answer(req: Request, host: str, port: int, software: str = "netd-acs") -> bytes | None:
    """The answer to a Binding Request from ``host:port`` (the address the datagram came
    from: the CPE's NAT binding). None: not answered (an RFC 3489 CHANGE-REQUEST asking for
    another address or port, which this single-address server cannot send from; the client
    reads the silence as "no answer from the other address", as RFC 3489 intends)."""
    unknown = [k for k, _ in req.attributes if k < 0x8000 and k not in _UNDERSTOOD]
    if unknown:
        body = _error(420, "Unknown Attribute")
        body += struct.pack("!HH", UNKNOWN_ATTRIBUTES, 2 * len(unknown))
        body += b"".join(struct.pack("!H", k) for k in unknown)
        body += b"\0\0" * (len(unknown) % 2)
        return _message(BINDING_ERROR, req, body, req.get(FINGERPRINT) is not None)
    change = req.get(CHANGE_REQUEST)
    if change is not None and len(change) == 4 and struct.unpack("!I", change)[0] & 0x6:
        return None
    body = _address(MAPPED_ADDRESS, host, port, None)
    if not req.classic:
        xor = struct.pack("!I", MAGIC) + req.transaction
        body = _address(XOR_MAPPED_ADDRESS, host, port, xor) + body
    name = software.encode()[:128]
    body += struct.pack("!HH", SOFTWARE, len(name)) + name + b"\0" * (-len(name) % 4)
    return _message(BINDING_SUCCESS, req, body, req.get(FINGERPRINT) is not None)


def _error(code: int, reason: str) -> bytes:
    text = reason.encode()
    value = struct.pack("!HBB", 0, code // 100, code % 100) + text
    return struct.pack("!HH", ERROR_CODE, len(value)) + value + b"\0" * (-len(value) % 4)


def udp_connection_request(
    host: str, port: int, username: str, password: str, ts: int, msg_id: int, cnonce: str
) -> bytes:
    """TR-069 G.2.2.3: an HTTP GET in one datagram, its query ts (seconds since the epoch),
    id (the same in every copy), un, cn and sig, the HMAC-SHA1 of ts, id, un and cn
    concatenated, keyed with the connection request password, in hex."""
    text = f"{ts}{msg_id}{username}{cnonce}".encode()
    sig = hmac.new(password.encode(), text, hashlib.sha1).hexdigest()
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    query = f"ts={ts}&id={msg_id}&un={quote(username, safe='')}&cn={cnonce}&sig={sig}"
    return f"GET http://{authority}?{query} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()


def split_address(value: str) -> tuple[str, int] | None:
    """A UDPConnectionRequestAddress (host:port, [v6]:port, or host for port 80)."""
    value = value.strip()
    if not value:
        return None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "80"
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, "80"
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        return None
    return host, int(port)
