"""EAP in the Access-Request engine (RFC 3579), pure: which method, and its decision.

- The method: the first of those allowed (``radius.eap_methods``, narrowed per NAS by the
  policy's ``[eap]`` table) is proposed after the Identity; a NAK (RFC 3748 §5.3.1)
  picks the first of the peer's wishes we allow.
- EAP-MD5 keeps its whole state in the sealed State attribute (``eap.py``).
- EAP-TLS, PEAP and EAP-TTLS keep theirs in an :class:`ExchangeStore` (the process's
  ``EapExchanges``), named by the State; each round is ``eap_methods.step``. When the
  exchange needs a subscriber (the inner identity, the certificate's identity) the
  answer is a :class:`SubscriberLookup`: the shell looks the name up and calls again
  with ``inner`` = (subscriber, live sessions). The plan comes from that subscriber.
- Success: EAP-Success, MS-MPPE-Recv-Key (MSK octets 0-31) and MS-MPPE-Send-Key
  (32-63), RFC 2548 §2.4.2-3 salt-encrypted by the dictionary; User-Name the inner
  identity when it differs from the outer one (accounting then names the subscriber).
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from daemons.radius import eap
from daemons.radius.auth import (
    EngineConfig,
    Method,
    Nas,
    Outcome,
    Subscriber,
    authorize,
    nt_hash_of,
    reject,
)
from daemons.radius.codec import Attr, Code, DecodeError, DropReason, Packet
from daemons.radius.dictionary import ReplyAttr
from daemons.radius.eap_methods import Credentials, Done, Exchange, Need, Send, resume, step
from daemons.radius.eap_tls import TYPE_PEAP, TYPE_TLS, TYPE_TTLS, TlsError

TYPES = {"md5": int(eap.EapType.MD5_CHALLENGE), "peap": TYPE_PEAP, "ttls": TYPE_TTLS}
TYPES["tls"] = TYPE_TLS
METHODS = {
    int(eap.EapType.MD5_CHALLENGE): Method.EAP_MD5,
    TYPE_TLS: Method.EAP_TLS,
    TYPE_PEAP: Method.PEAP,
    TYPE_TTLS: Method.EAP_TTLS,
}
INNER_METHODS = {"mschapv2": Method.MSCHAP2, "pap": Method.PAP, "chap": Method.CHAP}


def needs_subscriber(req: Packet) -> bool:
    """Whether deciding ``req`` needs the outer User-Name's subscriber record: not for an
    EAP Identity, NAK or TLS-based round (about ten an authentication, more with
    fragments), whose subscriber is the inner or certificate identity, looked up once
    through :class:`SubscriberLookup`; only for an EAP-MD5 response or a non-EAP request.
    A malformed EAP-Message is looked up as before: the decision discards it."""
    first = req.get(Attr.EAP_MESSAGE)
    if first is None or len(first) < 5 or first[0] != eap.EapCode.RESPONSE:
        return True
    return first[4] == eap.EapType.MD5_CHALLENGE


class ExchangeStore(Protocol):
    """The owner of the TLS-based exchanges (``eap_exchanges.EapExchanges``)."""

    def available(self) -> frozenset[int]: ...

    def begin(self, eap_type: int, nas: str, outer: bytes, now: float) -> Exchange: ...

    def find(self, key: bytes, nas: str, outer: bytes, now: float) -> Exchange | str: ...

    def end(self, ex: Exchange, how: str, detail: str = "") -> None: ...

    def remember(self, session: bytes, name: str, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class SubscriberLookup:
    """Look ``name`` up (its ``method``'s credential opened), then call again."""

    name: str
    method: Method


def allowed(cfg: EngineConfig, nas: Nas, exchanges: ExchangeStore | None) -> list[int]:
    """The EAP types this NAS may use, in the order they are proposed."""
    names = cfg.policy.eap_nas_methods.get(nas.name, cfg.eap_methods)
    have = exchanges.available() if exchanges is not None else frozenset()
    return [TYPES[n] for n in names if n == "md5" or TYPES[n] in have]


def decide(
    req: Packet,
    nas: Nas,
    sub: Subscriber | None,
    sessions: int,
    cfg: EngineConfig,
    now: float,
    rand: Callable[[int], bytes],
    exchanges: ExchangeStore | None,
    inner: tuple[Subscriber | None, int] | None,
) -> Outcome | SubscriberLookup:
    """Raises DecodeError for what is discarded silently (RFC 3579 §3.3)."""
    if req.get(Attr.MESSAGE_AUTHENTICATOR) is None:
        raise DecodeError(DropReason.MISSING_MESSAGE_AUTHENTICATOR, "EAP without it")
    packet = eap.eap_from_radius(req)
    if packet is None or packet.code != eap.EapCode.RESPONSE:
        raise DecodeError(DropReason.MALFORMED, "EAP-Message is not a Response")
    failure = tuple(
        eap.eap_attributes(eap.EapPacket(eap.EapCode.FAILURE, packet.identifier, None, b""))
    )
    types = allowed(cfg, nas, exchanges)
    kind = packet.type
    if kind == eap.EapType.IDENTITY:
        if not types:
            return reject(Method.EAP_MD5, "eap_method_refused", raw=failure)
        return _start(types[0], req, packet, nas, cfg, now, rand, exchanges)
    if kind == eap.EapType.NAK:
        wanted = [t for t in packet.data if t in types]
        if not wanted:
            return reject(Method.EAP_MD5, "eap_method_unsupported", raw=failure)
        return _start(wanted[0], req, packet, nas, cfg, now, rand, exchanges)
    assert kind is not None
    method = METHODS.get(kind)
    if method is None or kind not in types:
        return reject(method or Method.EAP_MD5, "eap_method_unsupported", raw=failure)
    if method is Method.EAP_MD5:
        return _md5(req, packet, nas, sub, sessions, cfg, now, failure)
    assert exchanges is not None
    name = req.get(Attr.USER_NAME) or b""
    ex = exchanges.find(req.get(Attr.STATE) or b"", nas.name, name, now)
    if isinstance(ex, str):
        return reject(method, ex, raw=failure)
    if packet.identifier != ex.ident:
        exchanges.end(ex, "eap_bad_state")
        return reject(method, "eap_bad_state", raw=failure)
    try:
        if inner is not None:
            isub, isessions = inner
            creds = Credentials(isub.password, nt_hash_of(isub)) if isub else None
            if isub is not None:  # kept for the final round, without its secrets
                ex.verified = (dataclasses.replace(isub, password=None, nt_hash=None), isessions)
            result = resume(ex, creds, rand)
        else:
            result = step(ex, packet.data, rand)
    except TlsError as exc:
        exchanges.end(ex, f"tls_{exc.reason}", exc.detail)
        return reject(method, f"eap_tls_{exc.reason}", raw=failure)
    except DecodeError as exc:
        exchanges.end(ex, "malformed", exc.detail)
        raise
    if isinstance(result, Send):
        ex.ident = (packet.identifier + 1) & 0xFF
        request = eap.EapPacket(eap.EapCode.REQUEST, ex.ident, ex.eap_type, result.data)
        return Outcome(
            Code.ACCESS_CHALLENGE,
            method,
            "challenge",
            raw=(*eap.eap_attributes(request), (Attr.STATE, ex.key)),
        )
    if isinstance(result, Need):
        return SubscriberLookup(result.name, INNER_METHODS.get(result.method, method))
    return _done(req, nas, cfg, ex, result, method, packet.identifier, failure, exchanges, now)


def _done(
    req: Packet,
    nas: Nas,
    cfg: EngineConfig,
    ex: Exchange,
    result: Done,
    method: Method,
    identifier: int,
    failure: tuple[tuple[int, bytes], ...],
    exchanges: ExchangeStore,
    now: float,
) -> Outcome:
    if not result.ok or not isinstance(ex.verified, tuple):
        exchanges.end(ex, result.reason if not result.ok else "eap_bad_state")
        return reject(method, result.reason if not result.ok else "eap_bad_state", raw=failure)
    msk, _emsk = ex.tunnel.msk(ex.eap_type)
    ex.tunnel.keep()
    if not ex.tunnel.tls13:
        exchanges.remember(ex.tunnel.session_key(), ex.inner_name, now)
    exchanges.end(ex, "ok")
    isub, isessions = ex.verified
    assert isinstance(isub, Subscriber)
    success = eap.eap_attributes(eap.EapPacket(eap.EapCode.SUCCESS, identifier, None, b""))
    outcome = authorize(req, nas, isub, isessions, cfg, method, tuple(success))
    if outcome.code != Code.ACCESS_ACCEPT:
        return dataclasses.replace(outcome, raw=failure)
    extra = [ReplyAttr("MS-MPPE-Recv-Key", msk[:32]), ReplyAttr("MS-MPPE-Send-Key", msk[32:64])]
    if isub.username.encode() != (req.get(Attr.USER_NAME) or b""):
        extra.append(ReplyAttr("User-Name", isub.username))
    return dataclasses.replace(outcome, attributes=outcome.attributes + tuple(extra))


def _start(
    kind: int,
    req: Packet,
    packet: eap.EapPacket,
    nas: Nas,
    cfg: EngineConfig,
    now: float,
    rand: Callable[[int], bytes],
    exchanges: ExchangeStore | None,
) -> Outcome:
    ident = (packet.identifier + 1) & 0xFF
    name = req.get(Attr.USER_NAME) or b""
    if kind == eap.EapType.MD5_CHALLENGE:
        challenge = rand(16)
        state = eap.make_state(
            cfg.eap_key,
            eap.Md5State(int(now + cfg.eap_state_ttl), ident, challenge),
            name,
            nas.name,
        )
        request = eap.md5_challenge_request(ident, challenge)
        return Outcome(
            Code.ACCESS_CHALLENGE,
            Method.EAP_MD5,
            "challenge",
            raw=(*eap.eap_attributes(request), (Attr.STATE, state)),
        )
    assert exchanges is not None
    ex = exchanges.begin(kind, nas.name, name, now)
    ex.ident = ident
    request = eap.EapPacket(eap.EapCode.REQUEST, ident, kind, ex.start())
    return Outcome(
        Code.ACCESS_CHALLENGE,
        METHODS[kind],
        "challenge",
        raw=(*eap.eap_attributes(request), (Attr.STATE, ex.key)),
    )


def _md5(
    req: Packet,
    packet: eap.EapPacket,
    nas: Nas,
    sub: Subscriber | None,
    sessions: int,
    cfg: EngineConfig,
    now: float,
    failure: tuple[tuple[int, bytes], ...],
) -> Outcome:
    method = Method.EAP_MD5
    name = req.get(Attr.USER_NAME) or b""
    st = eap.open_state(cfg.eap_key, req.get(Attr.STATE) or b"", name, nas.name, now)
    if st is None or st.identifier != packet.identifier:
        return reject(method, "eap_bad_state", raw=failure)
    value = eap.md5_response_value(packet)
    if sub is None:
        return reject(method, "unknown_user", raw=failure)
    if sub.password is None:
        return reject(method, "method_needs_cleartext", raw=failure)
    if not hmac.compare_digest(eap.md5_expected(st.identifier, sub.password, st.challenge), value):
        return reject(method, "bad_password", raw=failure)
    success = eap.eap_attributes(eap.EapPacket(eap.EapCode.SUCCESS, packet.identifier, None, b""))
    outcome = authorize(req, nas, sub, sessions, cfg, method, tuple(success))
    if outcome.code != Code.ACCESS_ACCEPT:
        return dataclasses.replace(outcome, raw=failure)
    return outcome
