"""Disconnect and Change-of-Authorization (RFC 5176): requests and replies. Pure.

A session is named to the NAS by the attributes its vendor expects (a ``coa_identify`` list
in the vendor's table in policies/radius/vendors.toml; the default is Acct-Session-Id,
User-Name and, when known, Framed-IP-Address, Framed-IPv6-Prefix and NAS-IP-Address).
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass

from daemons.radius.codec import (
    Code,
    DecodeError,
    decode,
    encode_request,
    message_authenticator,
    response_authenticator,
)
from daemons.radius.dictionary import Dictionary, ReplyAttr

DEFAULT_IDENTIFY = (
    "Acct-Session-Id",
    "User-Name",
    "Framed-IP-Address",
    "Framed-IPv6-Prefix",  # RFC 5176 §3: an IPv6 session is named by its prefix
    "NAS-IP-Address",
)
ERROR_CAUSE = 101  # RFC 5176 §3.6


@dataclass(frozen=True, slots=True)
class SessionRef:
    """What we know of a live session to name it to its NAS."""

    acct_session_id: str
    username: str
    framed_ip: str | None = None
    nas_ip: str | None = None
    framed_ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class CoaResult:
    result: str  # ack | nak
    error_cause: int | None = None


def identify(ref: SessionRef, names: tuple[str, ...] = DEFAULT_IDENTIFY) -> list[ReplyAttr]:
    values = {
        "Acct-Session-Id": ref.acct_session_id,
        "User-Name": ref.username,
        "Framed-IP-Address": ref.framed_ip,
        "NAS-IP-Address": ref.nas_ip,
        "Framed-IPv6-Prefix": ref.framed_ipv6_prefix,
        "Delegated-IPv6-Prefix": ref.delegated_ipv6_prefix,
    }
    return [ReplyAttr(n, values[n]) for n in names if values.get(n)]


def build(
    kind: str,
    identifier: int,
    ref: SessionRef,
    extra: list[ReplyAttr],
    dictionary: Dictionary,
    secret: bytes,
    names: tuple[str, ...] = DEFAULT_IDENTIFY,
) -> bytes:
    """A signed Disconnect-Request or CoA-Request. Raises KeyError, ValueError."""
    code = Code.DISCONNECT_REQUEST if kind == "disconnect" else Code.COA_REQUEST
    # Hidden attributes are not sent in CoA here (their key would be the computed
    # authenticator); salts still come from the system's random source.
    attrs = dictionary.encode([*identify(ref, names), *extra], secret, bytes(16), os.urandom)
    return encode_request(code, identifier, attrs, secret)


def read_reply(raw: bytes, request: bytes, secret: bytes) -> CoaResult | None:
    """The NAS's answer to ``request``, or None if it is not a valid, signed answer to it."""
    try:
        reply = decode(raw)
    except DecodeError:
        return None
    req_code = request[0]
    expected = {
        Code.DISCONNECT_REQUEST: (Code.DISCONNECT_ACK, Code.DISCONNECT_NAK),
        Code.COA_REQUEST: (Code.COA_ACK, Code.COA_NAK),
    }.get(Code(req_code))
    if expected is None or reply.code not in expected or reply.identifier != request[1]:
        return None
    if not hmac.compare_digest(
        reply.authenticator, response_authenticator(reply.raw, request[4:20], secret)
    ):
        return None
    ma = reply.get(80)
    if ma is not None and not hmac.compare_digest(
        ma, message_authenticator(reply.raw, secret, request[4:20])
    ):
        return None
    cause = reply.get(ERROR_CAUSE)
    return CoaResult(
        "ack" if reply.code == expected[0] else "nak",
        struct.unpack("!I", cause)[0] if cause and len(cause) == 4 else None,
    )
