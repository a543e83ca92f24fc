"""The Access-Request engine: credentials check, then policy. Pure.

The service does the I/O first (NAS by source, the subscriber record and its live session
count from Redis) and hands the results in, with ``now`` and a random source. PAP against
a slow one-way hash comes back as a :class:`HashCheck` for the service to run off the loop.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from daemons.radius import eap, mschap
from daemons.radius.codec import (
    Attr,
    Code,
    DecodeError,
    DropReason,
    Packet,
    hide_password,
    unhide_password,
    vsa,
)
from daemons.radius.dictionary import Dictionary, ReplyAttr
from daemons.radius.policy import Ipv6, Policy

if TYPE_CHECKING:
    from daemons.radius.auth_eap import ExchangeStore, SubscriberLookup

MICROSOFT = 311  # RFC 2548 vendor id
MS_CHAP_RESPONSE, MS_CHAP_ERROR, MS_CHAP_MPPE_KEYS, MS_CHAP_CHALLENGE = 1, 2, 12, 11
MS_CHAP2_RESPONSE, MS_CHAP2_SUCCESS = 25, 26

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Nas:
    name: str
    network: IPNetwork
    secret: bytes
    vendor: str = "generic"
    require_message_authenticator: bool = True
    coa_port: int = 3799
    tls_identity: str | None = None  # its RadSec client certificate (stream.identities)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A subscriber with its secrets opened for this one request."""

    username: str
    plan: str = "default"
    state: str = "active"
    mac: str | None = None
    framed_ip: str | None = None
    password: bytes | None = None
    nt_hash: bytes | None = None
    password_hash: str | None = None
    framed_ipv6_address: str | None = None
    framed_ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None
    framed_ipv6_pool: str | None = None
    delegated_ipv6_pool: str | None = None

    @property
    def ipv6(self) -> Ipv6 | None:
        if not (
            self.framed_ipv6_address
            or self.framed_ipv6_prefix
            or self.delegated_ipv6_prefix
            or self.framed_ipv6_pool
            or self.delegated_ipv6_pool
        ):
            return None
        return Ipv6(
            self.framed_ipv6_address,
            self.framed_ipv6_prefix,
            self.delegated_ipv6_prefix,
            self.framed_ipv6_pool,
            self.delegated_ipv6_pool,
        )


class Method(StrEnum):
    PAP = "pap"
    CHAP = "chap"
    MSCHAP1 = "mschapv1"
    MSCHAP2 = "mschapv2"
    EAP_MD5 = "eap-md5"
    EAP_TLS = "eap-tls"
    PEAP = "peap"
    EAP_TTLS = "eap-ttls"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Outcome:
    code: Code
    method: Method
    reason: str
    attributes: tuple[ReplyAttr, ...] = ()
    raw: tuple[tuple[int, bytes], ...] = ()
    plan: str = ""  # the plan applied (the authentication history records it)


@dataclass(frozen=True, slots=True)
class HashCheck:
    """PAP against a one-way hash: verify ``password`` against ``hash``, then call again."""

    password: bytes
    hash: str


@dataclass(frozen=True)
class EngineConfig:
    dictionary: Dictionary
    policy: Policy
    eap_key: bytes
    eap_state_ttl: float = 30.0
    eap_methods: tuple[str, ...] = ("md5",)  # in the order proposed (radius.eap_methods)


def method_of(req: Packet) -> Method:
    if req.get(Attr.EAP_MESSAGE) is not None:
        return Method.EAP_MD5
    if req.get(Attr.USER_PASSWORD) is not None:
        return Method.PAP
    if req.get(Attr.CHAP_PASSWORD) is not None:
        return Method.CHAP
    if req.vsa(MICROSOFT, MS_CHAP2_RESPONSE) is not None:
        return Method.MSCHAP2
    if req.vsa(MICROSOFT, MS_CHAP_RESPONSE) is not None:
        return Method.MSCHAP1
    return Method.NONE


def user_name(req: Packet) -> str | None:
    raw = req.get(Attr.USER_NAME)
    if raw is None:
        return None
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(DropReason.MALFORMED, "User-Name is not UTF-8") from None
    # No subscriber name holds a NUL (the API refuses control characters), and PostgreSQL
    # refuses one in a query: a lookup of such a name would fail its whole batch's lookup.
    if "\0" in name:
        raise DecodeError(DropReason.MALFORMED, "User-Name holds a NUL")
    return name


_MAC_SEPARATORS = re.compile(r"[-:. ]")


def normalize_mac(text: str) -> str:
    """``AA-BB-CC-DD-EE-FF`` and friends → ``aa:bb:cc:dd:ee:ff``; other text lowercased."""
    digits = _MAC_SEPARATORS.sub("", text.strip()).lower()
    if len(digits) == 12 and all(c in "0123456789abcdef" for c in digits):
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    return text.strip().lower()


def reject(
    method: Method, reason: str, *attrs: ReplyAttr, raw: tuple[tuple[int, bytes], ...] = ()
) -> Outcome:
    return Outcome(Code.ACCESS_REJECT, method, reason, attrs, raw)


def authenticate(
    req: Packet,
    nas: Nas,
    sub: Subscriber | None,
    sessions: int,
    cfg: EngineConfig,
    now: float,
    rand: Callable[[int], bytes],
    hash_ok: bool | None = None,
    exchanges: ExchangeStore | None = None,
    inner: tuple[Subscriber | None, int] | None = None,
) -> Outcome | HashCheck | SubscriberLookup:
    """Decide an Access-Request. Raises DecodeError for malformed credentials (discard).

    EAP (``auth_eap``): the TLS-based methods keep their state in ``exchanges``; ``inner``
    is the subscriber (and live sessions) a :class:`SubscriberLookup` asked for."""
    method = method_of(req)
    if method is Method.EAP_MD5:
        from daemons.radius import auth_eap  # noqa: PLC0415 - it builds on this module

        return auth_eap.decide(req, nas, sub, sessions, cfg, now, rand, exchanges, inner)
    if method is Method.NONE:
        return reject(method, "no_credentials")
    if sub is None:
        return reject(method, "unknown_user")
    if method is Method.PAP:
        password = unhide_password(
            req.get(Attr.USER_PASSWORD) or b"", nas.secret, req.authenticator
        )
        if sub.password is not None:
            ok = hmac.compare_digest(password, sub.password)
        elif sub.password_hash is not None:
            if hash_ok is None:
                return HashCheck(password, sub.password_hash)
            ok = hash_ok
        else:
            return reject(method, "no_credentials_stored")
        if not ok:
            return reject(method, "bad_password")
        return authorize(req, nas, sub, sessions, cfg, method)
    if method is Method.CHAP:
        return _chap(req, nas, sub, sessions, cfg)
    return _mschap(req, nas, sub, sessions, cfg, method)


def _chap(req: Packet, nas: Nas, sub: Subscriber, sessions: int, cfg: EngineConfig) -> Outcome:
    chap = req.get(Attr.CHAP_PASSWORD) or b""
    if len(chap) != 17 or req.count(Attr.CHAP_PASSWORD) != 1:
        raise DecodeError(DropReason.MALFORMED, "CHAP-Password is not 17 octets")
    # RFC 2865 §2.2: without CHAP-Challenge the Request Authenticator is the challenge.
    challenge = req.get(Attr.CHAP_CHALLENGE) or req.authenticator
    if sub.password is None:
        return reject(Method.CHAP, "method_needs_cleartext")
    expected = eap.md5_expected(chap[0], sub.password, challenge)
    if not hmac.compare_digest(expected, chap[1:]):
        return reject(Method.CHAP, "bad_password")
    return authorize(req, nas, sub, sessions, cfg, Method.CHAP)


def nt_hash_of(sub: Subscriber) -> bytes | None:
    if sub.nt_hash is not None:
        return sub.nt_hash
    if sub.password is not None:
        return mschap.nt_password_hash(sub.password.decode("utf-8", "replace"))
    return None


def _mschap(
    req: Packet, nas: Nas, sub: Subscriber, sessions: int, cfg: EngineConfig, method: Method
) -> Outcome:
    challenge = req.vsa(MICROSOFT, MS_CHAP_CHALLENGE)
    v2 = method is Method.MSCHAP2
    resp = req.vsa(MICROSOFT, MS_CHAP2_RESPONSE if v2 else MS_CHAP_RESPONSE)
    if challenge is None or resp is None or len(resp) != 50 or len(challenge) != (16 if v2 else 8):
        raise DecodeError(DropReason.MALFORMED, "MS-CHAP challenge or response size")
    ident = resp[0]
    pw_hash = nt_hash_of(sub)
    if pw_hash is None:
        return reject(method, "method_needs_cleartext")
    if v2:
        peer, nt_resp = resp[2:18], resp[26:50]
        name = req.get(Attr.USER_NAME) or b""
        ok = mschap.v2_verify(challenge, peer, name, pw_hash, nt_resp)
    else:
        if not resp[1] & 1:
            return reject(method, "lm_response_unsupported")
        nt_resp = resp[26:50]
        ok = mschap.v1_verify(challenge, pw_hash, nt_resp)
    if not ok:
        error = b"E=691 R=0"
        if v2:
            error += b" C=" + challenge.hex().upper().encode() + b" V=3 M=Authentication failed"
        return reject(
            method, "bad_password", raw=(vsa(MICROSOFT, MS_CHAP_ERROR, bytes((ident,)) + error),)
        )
    outcome = authorize(req, nas, sub, sessions, cfg, method)
    if outcome.code != Code.ACCESS_ACCEPT:
        return outcome
    mppe = [ReplyAttr("MS-MPPE-Encryption-Policy", 1), ReplyAttr("MS-MPPE-Encryption-Types", 6)]
    if v2:
        name = req.get(Attr.USER_NAME) or b""
        success = mschap.v2_authenticator_response(pw_hash, nt_resp, resp[2:18], challenge, name)
        send, recv = mschap.v2_server_keys(pw_hash, nt_resp)
        mppe += [
            ReplyAttr("MS-CHAP2-Success", bytes((ident,)) + success),
            ReplyAttr("MS-MPPE-Send-Key", send),
            ReplyAttr("MS-MPPE-Recv-Key", recv),
        ]
        raw = outcome.raw
    else:
        keys = hide_password(mschap.v1_mppe_keys(pw_hash), nas.secret, req.authenticator)
        raw = (*outcome.raw, vsa(MICROSOFT, MS_CHAP_MPPE_KEYS, keys))
    return Outcome(
        outcome.code, method, outcome.reason, outcome.attributes + tuple(mppe), raw, outcome.plan
    )


def authorize(
    req: Packet,
    nas: Nas,
    sub: Subscriber,
    sessions: int,
    cfg: EngineConfig,
    method: Method,
    raw: tuple[tuple[int, bytes], ...] = (),
) -> Outcome:
    """Credentials are good: apply state, MAC binding, Simultaneous-Use and the plan."""
    policy = cfg.policy
    if sub.state == "disabled":
        return reject(method, "disabled", ReplyAttr("Reply-Message", policy.disabled_message))
    if sub.mac:
        calling = req.get(Attr.CALLING_STATION_ID)
        if calling is None or normalize_mac(calling.decode("utf-8", "replace")) != normalize_mac(
            sub.mac
        ):
            return reject(method, "mac_mismatch")
    plan_name = sub.plan
    if sub.state == "suspended":
        if policy.walled_garden_plan is None:
            return reject(method, "suspended", ReplyAttr("Reply-Message", policy.disabled_message))
        plan_name = policy.walled_garden_plan
    plan = policy.plan_for(plan_name)
    if plan is None:
        return reject(method, "unknown_plan")
    if plan.simultaneous_use is not None and sessions >= plan.simultaneous_use:
        return reject(
            method, "simultaneous_use", ReplyAttr("Reply-Message", "Simultaneous-Use limit reached")
        )
    attrs = policy.reply(plan, nas.vendor, sub.framed_ip, sub.ipv6)
    if plan.reply_message:
        attrs.append(ReplyAttr("Reply-Message", plan.reply_message))
    return Outcome(Code.ACCESS_ACCEPT, method, "ok", tuple(attrs), raw, plan.name)
