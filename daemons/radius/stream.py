"""RADIUS over a byte stream: RADIUS/TCP (RFC 6613) and RADIUS/TLS (RadSec, RFC 6614).

Pure: no socket, no asyncio. What a stream transport (``stream_server.py``, the listener;
``stream_client.py``, the proxy's client) needs beside its sockets:

- :class:`Framer` cuts a stream into packets by the RADIUS Length field (RFC 6613 §2.6.4:
  a packet whose Length is under 20 or over 4096 cannot be framed, and the connection is
  closed: there is no way to find the next packet). Its buffer never holds more than one
  packet's worth of bytes.
- :func:`route` says which shell a request goes to on a single stream port: Access-Request
  and Status-Server to authentication, Accounting-Request to accounting (RFC 6614 §2.1,
  one port for both), anything else is not a request this server takes.
- :func:`identities` are the names a verified client certificate can be mapped to a NAS
  by (``nas_clients.tls_identity``): ``sha256:<hex>`` of the certificate, its
  subjectAltName DNS names, else its subject CN (RFC 6614 §2.4, RFC 6125 §6.4.4).
- ``RADSEC_SECRET``: RFC 6614 §2.3, the shared secret over TLS is the string "radsec".
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from daemons.radius.codec import HEADER, MAX_PACKET, Code

RADSEC_SECRET = b"radsec"  # RFC 6614 §2.3
TLS_PREFIX = "tls:"  # a TLS connection's peer host: "tls:<NAS name>", never an IP address

Route = Literal["auth", "acct"]
_ROUTES: dict[int, Route] = {
    int(Code.ACCESS_REQUEST): "auth",
    int(Code.STATUS_SERVER): "auth",  # RFC 5997 §4.3 over a stream: the watchdog
    int(Code.ACCOUNTING_REQUEST): "acct",
}


class FramingError(Exception):
    """The stream cannot be framed any more (RFC 6613 §2.6.4): the connection closes.
    ``reason`` is the metric's label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Framer:
    """Bytes in, whole packets out, in order."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The packets ``data`` completes. Raises FramingError on a Length out of
        [20, 4096] (the bytes after it are garbage to us)."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        start = 0
        end = len(buf)
        while end - start >= 4:
            length = (buf[start + 2] << 8) | buf[start + 3]
            if length < HEADER or length > MAX_PACKET:
                self._buf = bytearray()
                raise FramingError("bad_length", f"length field {length}")
            if end - start < length:
                break
            out.append(bytes(buf[start : start + length]))
            start += length
        if start:
            del buf[:start]
        return out

    @property
    def pending(self) -> int:
        """Bytes of a packet not yet complete."""
        return len(self._buf)


def route(packet: bytes) -> Route | None:
    """The shell a framed request goes to, by its code; None: not a request we take."""
    return _ROUTES.get(packet[0])


def fingerprint(der: bytes) -> str:
    """``sha256:<lowercase hex>`` of a DER certificate."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def identities(peercert: dict[str, Any], der: bytes) -> list[str]:
    """The names a verified certificate answers to, lowercase, best first: its SHA-256
    fingerprint, its subjectAltName DNS names, else (no DNS name) its subject CN.
    ``peercert`` is ``SSLObject.getpeercert()``'s dictionary."""
    out = [fingerprint(der)]
    dns = [value.lower() for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"]
    if dns:
        out += dns
    else:
        for rdn in peercert.get("subject", ()):
            out += [value.lower() for key, value in rdn if key == "commonName"]
    return out


# OpenSSL's reason for a failed server handshake → the refusal metric's label.
_TLS_REFUSALS = {
    "CERTIFICATE_VERIFY_FAILED": "bad_certificate",  # unknown CA, expired, revoked
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no_certificate",
    "UNSUPPORTED_PROTOCOL": "protocol_version",  # TLS 1.1 or older
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol_version",
    "WRONG_VERSION_NUMBER": "not_tls",
    "HTTP_REQUEST": "not_tls",
    "UNKNOWN_PROTOCOL": "not_tls",
    "RECORD_LAYER_FAILURE": "not_tls",
    "PACKET_LENGTH_TOO_LONG": "not_tls",
}


def tls_refusal(reason: str | None) -> str:
    """The label for a handshake that failed with OpenSSL ``reason`` (an SSLError's)."""
    if reason is None:
        return "handshake_failed"
    if reason.startswith("TLSV1_ALERT_") or reason.startswith("SSLV3_ALERT_"):
        return _TLS_REFUSALS.get(reason, "peer_alert")
    return _TLS_REFUSALS.get(reason, "handshake_failed")
