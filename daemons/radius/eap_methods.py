"""One EAP-TLS, PEAPv0 or EAP-TTLS exchange, step by step. Pure: no I/O, no clock.

An :class:`Exchange` lives in the per-exchange owner (``eap_exchanges.py``) between the
RADIUS round trips; :func:`step` takes the peer's next EAP-Response and says what to do:

- :class:`Send`: an EAP-Request of the exchange's type with this Type-Data (a fragment of
  our TLS message, an ACK, or tunnelled data);
- :class:`Need`: the subscriber record of this name is needed (the inner identity of PEAP
  and TTLS, the certificate's identity of EAP-TLS): :func:`resume` continues with it;
- :class:`Done`: the exchange ended, with success (keys from the tunnel) or a reason.

Phases: TLS handshake (fragments both ways, RFC 5216 §2.1.5) → for PEAPv0 an inner
EAP-Request/Identity, then EAP-MSCHAPv2 (its EAP header left out, PEAPv0 §1.1), then the
Result TLV; for TTLS the peer's AVPs (PAP, CHAP, MS-CHAP-V2 or EAP-MSCHAPv2 in
EAP-Message; RFC 5281 §11); for EAP-TLS (RFC 5216, RFC 9190 for TLS 1.3) the client
certificate's identity.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from daemons.radius import eap_inner as inner
from daemons.radius import mschap
from daemons.radius.codec import DecodeError, DropReason
from daemons.radius.eap import md5_expected
from daemons.radius.eap_tls import (
    FLAG_S,
    TYPE_PEAP,
    TYPE_TLS,
    TYPE_TTLS,
    Outgoing,
    Reassembly,
    TlsError,
    Tunnel,
    certificate_identity,
    parse_fragment,
)

TTLS_CHALLENGE = b"ttls challenge"  # RFC 5281 §11.1


class Phase(Enum):
    HANDSHAKE = "handshake"
    STARTED = "started"  # tunnel up, nothing tunnelled yet
    IDENTITY = "identity"  # PEAP: inner Identity asked
    MSCHAP = "mschap"  # EAP-MSCHAPv2 Challenge sent
    MSCHAP_OK = "mschap_ok"  # Success sent, its ACK awaited
    TLV = "tlv"  # PEAP Result TLV sent
    TTLS_ACK = "ttls_ack"  # TTLS MS-CHAP2-Success sent, ACK awaited
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A subscriber's secrets for an inner method (None: not stored)."""

    password: bytes | None
    nt_hash: bytes | None


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Need:
    name: str
    method: str  # "pap", "chap", "mschapv2", "tls"


@dataclass(frozen=True, slots=True)
class Done:
    ok: bool
    reason: str
    name: str = ""


Step = Send | Need | Done


@dataclass(eq=False)
class Exchange:
    """One exchange's state between round trips (held by the owner, never in State)."""

    key: bytes  # what the RADIUS State carries
    eap_type: int
    nas: str
    outer: bytes
    tunnel: Tunnel
    fragment_size: int
    deadline: float
    ident: int = 0
    phase: Phase = Phase.HANDSHAKE
    rx: Reassembly = field(default_factory=Reassembly)
    tx: Outgoing = field(default_factory=Outgoing)
    inner_name: str = ""
    inner_method: str = ""
    challenge: bytes = b""
    ms_id: int = 0
    inner_ident: int = 0
    awaiting: tuple[str, object] | None = None
    eap_inner: bool = False  # TTLS carrying EAP-MSCHAPv2 in EAP-Message
    verified: object = None  # the engine's (subscriber, live sessions) once checked
    # who authenticated in a TLS session (by Tunnel.session_key), for a resumed one
    recall: Callable[[bytes], str | None] | None = None

    def start(self) -> bytes:
        """The Type-Data of the EAP-Request that starts the method: S flag, version 0."""
        return bytes((FLAG_S,))


def step(ex: Exchange, type_data: bytes, rand: Callable[[int], bytes]) -> Step:
    """The peer's next Response (its Type-Data). Raises DecodeError (malformed framing)
    and TlsError (the handshake or a record failed, fragments that do not add up)."""
    frag = parse_fragment(type_data)
    if ex.tx.pending:  # RFC 5216 §2.1.5: each of our fragments is ACKed, empty
        if frag.data or frag.total is not None:
            raise TlsError("fragments", "data while our fragments were being ACKed")
        return Send(ex.tx.next(ex.fragment_size))
    msg = ex.rx.add(frag)
    if msg is None:
        return Send(b"\x00")  # our ACK of the peer's fragment
    was_up = ex.tunnel.established
    if not was_up:
        ex.tunnel.feed(msg)
        out = ex.tunnel.pending_out()
        if ex.tunnel.established and ex.eap_type == TYPE_TLS and ex.tunnel.tls13:
            # RFC 9190 §2.5: one octet of 0x00 application data, the protected success
            # indication, after the handshake (with any tickets) in the last flight.
            ex.tunnel.write(b"\x00")
            out += ex.tunnel.pending_out()
        if out:
            return _send_tls(ex, out)
        if not ex.tunnel.established:
            raise TlsError("truncated", "a TLS message that does not complete a record")
        plain = b""
    else:
        if msg:
            ex.tunnel.feed(msg)
        plain = ex.tunnel.read()
    if ex.phase is Phase.HANDSHAKE:
        ex.phase = Phase.STARTED
    if ex.eap_type == TYPE_TLS:
        return _tls_done(ex)
    if ex.eap_type == TYPE_PEAP:
        return _peap(ex, plain, rand)
    return _ttls(ex, plain, rand)


def resume(ex: Exchange, creds: Credentials | None, rand: Callable[[int], bytes]) -> Step:
    """Continue after a :class:`Need`, with the named subscriber's secrets (None: no such
    subscriber)."""
    awaiting, ex.awaiting = ex.awaiting, None
    if awaiting is None:
        return Done(False, "eap_bad_state")
    kind, data = awaiting
    if kind in ("tls", "resumed"):
        return (
            Done(True, "ok", ex.inner_name) if creds else Done(False, "unknown_user", ex.inner_name)
        )
    if creds is None:
        return Done(False, "unknown_user", ex.inner_name)
    if kind == "resumed-peap":
        ex.phase = Phase.TLV
        ex.inner_ident = (ex.ident + 1) & 0xFF
        return _send_app(ex, inner.result_tlv(ex.inner_ident, True))
    if kind == "pap":
        assert isinstance(data, bytes)
        if creds.password is None:
            return Done(False, "method_needs_cleartext", ex.inner_name)
        ok = hmac.compare_digest(data.rstrip(b"\0"), creds.password)
        return Done(ok, "ok" if ok else "bad_password", ex.inner_name)
    if kind == "chap":
        assert isinstance(data, bytes)
        if creds.password is None:
            return Done(False, "method_needs_cleartext", ex.inner_name)
        ok = hmac.compare_digest(md5_expected(data[0], creds.password, ex.challenge), data[1:])
        return Done(ok, "ok" if ok else "bad_password", ex.inner_name)
    assert isinstance(data, inner.MsChapV2Response)
    pw_hash = creds.nt_hash
    if pw_hash is None and creds.password is not None:
        pw_hash = mschap.nt_password_hash(creds.password.decode("utf-8", "replace"))
    if pw_hash is None:
        return Done(False, "method_needs_cleartext", ex.inner_name)
    ok = mschap.v2_verify(ex.challenge, data.peer_challenge, data.name, pw_hash, data.nt_response)
    if not ok:
        return Done(False, "bad_password", ex.inner_name)
    success = mschap.v2_authenticator_response(
        pw_hash, data.nt_response, data.peer_challenge, ex.challenge, data.name
    )
    if kind == "ttls-mschapv2":  # RFC 5281 §11.2.4: MS-CHAP2-Success, then the peer's ACK
        ex.phase = Phase.TTLS_ACK
        avp = inner.encode_avp(
            inner.MS_CHAP2_SUCCESS, bytes((ex.ms_id,)) + success, inner.MICROSOFT
        )
        return _send_app(ex, avp)
    ex.phase = Phase.MSCHAP_OK
    payload = bytes((inner.TYPE_MSCHAPV2,)) + inner.mschapv2_success(data.ms_id, success)
    return _send_inner_eap(ex, payload)


# --- the methods ------------------------------------------------------------------------


def _tls_done(ex: Exchange) -> Step:
    cert = ex.tunnel.peer_certificate()
    name = certificate_identity(cert) if cert is not None else None
    if not name:
        return Done(False, "eap_tls_no_identity")
    ex.inner_name, ex.inner_method = name, "tls"
    ex.awaiting = ("tls", None)
    ex.phase = Phase.DONE
    return Need(name, "tls")


def _peap(ex: Exchange, plain: bytes, rand: Callable[[int], bytes]) -> Step:
    if ex.phase is Phase.STARTED and ex.tunnel.resumed and ex.recall is not None:
        # A resumed session of a known subscriber skips the inner method: straight to the
        # protected Result TLV, as FreeRADIUS does (PEAP fast reconnect).
        who = ex.recall(ex.tunnel.session_key())
        if who:
            ex.inner_name, ex.awaiting = who, ("resumed-peap", None)
            return Need(who, "resumed")
    if ex.phase is Phase.STARTED:  # ask the inner identity (PEAPv0: no EAP header)
        ex.phase = Phase.IDENTITY
        return _send_app(ex, bytes((inner.TYPE_IDENTITY,)))
    data = _strip_header(plain)
    if not data:
        return Done(False, "eap_inner_malformed", ex.inner_name)
    started = _inner_mschapv2(ex, data, rand, Phase.IDENTITY)
    if started is not None:
        return started
    if ex.phase is Phase.MSCHAP_OK:
        if data[0] != inner.TYPE_MSCHAPV2 or inner.mschapv2_opcode(data[1:]) != inner.OP_SUCCESS:
            return Done(False, "eap_inner_malformed", ex.inner_name)
        ex.phase = Phase.TLV
        ex.inner_ident = (ex.ident + 1) & 0xFF
        return _send_app(ex, inner.result_tlv(ex.inner_ident, True))
    if ex.phase is Phase.TLV:
        if data[0] != inner.TYPE_TLV:
            return Done(False, "eap_inner_malformed", ex.inner_name)
        result = inner.parse_result_tlv(data[1:])
        ok = result == inner.RESULT_SUCCESS
        ex.phase = Phase.DONE
        return Done(ok, "ok" if ok else "eap_peap_result_failure", ex.inner_name)
    return Done(False, "eap_bad_state", ex.inner_name)


def _ttls(ex: Exchange, plain: bytes, rand: Callable[[int], bytes]) -> Step:
    if ex.phase is Phase.TTLS_ACK:
        ex.phase = Phase.DONE
        return Done(True, "ok", ex.inner_name)
    if not plain:
        if ex.phase is Phase.STARTED and ex.tunnel.resumed:
            # RFC 5281 §7.1 (session resumption): phase 2 may be skipped, and a peer that
            # resumed expects it to be; the subscriber is who authenticated in the session.
            who = ex.recall(ex.tunnel.session_key()) if ex.recall else None
            if not who:
                return Done(False, "eap_resumed_unknown")
            ex.inner_name, ex.awaiting = who, ("resumed", None)
            return Need(who, "resumed")
        if ex.phase is Phase.STARTED:  # the peer ACKed our Finished: ask for its AVPs
            return _send_app(ex, b"")
        return Done(False, "eap_inner_malformed", ex.inner_name)
    avps = inner.parse_avps(plain)
    if ex.eap_inner or (ex.phase is Phase.STARTED and inner.find_avp(avps, inner.AVP_EAP_MESSAGE)):
        return _ttls_eap(ex, avps, rand)
    name = inner.find_avp(avps, inner.AVP_USER_NAME)
    if name is None:
        return Done(False, "ttls_no_user_name")
    ex.inner_name = _name(name)
    password = inner.find_avp(avps, inner.AVP_USER_PASSWORD)
    if password is not None:
        ex.awaiting = ("pap", password)
        return Need(ex.inner_name, "pap")
    expected = ex.tunnel.challenge(TTLS_CHALLENGE, 17)
    chap = inner.find_avp(avps, inner.AVP_CHAP_PASSWORD)
    if chap is not None:
        challenge = inner.find_avp(avps, inner.AVP_CHAP_CHALLENGE)
        if challenge is None or len(chap) != 17 or challenge != expected[:16]:
            return Done(False, "ttls_bad_challenge", ex.inner_name)
        if chap[0] != expected[16]:
            return Done(False, "ttls_bad_challenge", ex.inner_name)
        ex.challenge = challenge
        ex.awaiting = ("chap", chap)
        return Need(ex.inner_name, "chap")
    ms_chal = inner.find_avp(avps, inner.MS_CHAP_CHALLENGE, inner.MICROSOFT)
    ms_resp = inner.find_avp(avps, inner.MS_CHAP2_RESPONSE, inner.MICROSOFT)
    if ms_chal is not None and ms_resp is not None:
        if ms_chal != expected[:16] or len(ms_resp) != 50 or ms_resp[0] != expected[16]:
            return Done(False, "ttls_bad_challenge", ex.inner_name)
        ex.challenge, ex.ms_id = ms_chal, ms_resp[0]
        resp = inner.MsChapV2Response(ms_resp[0], ms_resp[2:18], ms_resp[26:50], name)
        ex.awaiting = ("ttls-mschapv2", resp)
        return Need(ex.inner_name, "mschapv2")
    return Done(False, "ttls_no_credentials", ex.inner_name)


def _ttls_eap(ex: Exchange, avps: list[inner.Avp], rand: Callable[[int], bytes]) -> Step:
    """EAP inside TTLS (RFC 5281 §11.2.5): whole EAP packets in EAP-Message AVPs."""
    ex.eap_inner = True
    raw = b"".join(a.data for a in avps if a.code == inner.AVP_EAP_MESSAGE and a.vendor == 0)
    if len(raw) < 5 or raw[0] != 2 or struct.unpack_from("!H", raw, 2)[0] != len(raw):
        return Done(False, "eap_inner_malformed", ex.inner_name)
    ex.inner_ident = raw[1]
    data = raw[4:]
    started = _inner_mschapv2(ex, data, rand, Phase.STARTED)
    if started is not None:
        return started
    if ex.phase is Phase.MSCHAP_OK:
        ok = data[0] == inner.TYPE_MSCHAPV2 and data[1:2] == bytes((inner.OP_SUCCESS,))
        ex.phase = Phase.DONE
        return Done(ok, "ok" if ok else "eap_inner_malformed", ex.inner_name)
    return Done(False, "eap_bad_state", ex.inner_name)


def _inner_mschapv2(
    ex: Exchange, data: bytes, rand: Callable[[int], bytes], asked: Phase
) -> Step | None:
    """Inner EAP-MSCHAPv2, as PEAP and TTLS share it: the inner Identity (in phase
    ``asked``) → our Challenge → the peer's Response; None past those phases."""
    if ex.phase is asked:
        if data[0] != inner.TYPE_IDENTITY:
            return Done(False, "eap_inner_malformed")
        ex.inner_name = _name(data[1:])
        return _mschap_challenge(ex, rand, compressed=ex.eap_type == TYPE_PEAP)
    if ex.phase is Phase.MSCHAP:
        return _mschap_response(ex, data, "mschapv2")
    return None


def _mschap_challenge(ex: Exchange, rand: Callable[[int], bytes], compressed: bool) -> Step:
    ex.challenge = rand(16)
    ex.ms_id = rand(1)[0]
    ex.phase = Phase.MSCHAP
    ex.inner_method = "eap-mschapv2"
    payload = bytes((inner.TYPE_MSCHAPV2,)) + inner.mschapv2_challenge(ex.ms_id, ex.challenge)
    return _send_inner_eap(ex, payload) if not compressed else _send_app(ex, payload)


def _mschap_response(ex: Exchange, data: bytes, kind: str) -> Step:
    if data[0] == inner.TYPE_NAK:
        return Done(False, "eap_inner_nak", ex.inner_name)
    if data[0] != inner.TYPE_MSCHAPV2:
        return Done(False, "eap_inner_malformed", ex.inner_name)
    resp = inner.parse_mschapv2_response(data[1:])
    if resp.ms_id != ex.ms_id:
        return Done(False, "eap_inner_malformed", ex.inner_name)
    ex.awaiting = (kind, resp)
    return Need(ex.inner_name, "mschapv2")


def _send_inner_eap(ex: Exchange, payload: bytes) -> Step:
    """An inner EAP-Request: PEAPv0 without its header, TTLS whole in an EAP-Message AVP."""
    if ex.eap_type == TYPE_PEAP:
        return _send_app(ex, payload)
    ex.inner_ident = (ex.inner_ident + 1) & 0xFF
    packet = struct.pack("!BBH", 1, ex.inner_ident, 4 + len(payload)) + payload
    return _send_app(ex, inner.encode_avp(inner.AVP_EAP_MESSAGE, packet))


def _send_app(ex: Exchange, data: bytes) -> Step:
    if data:
        ex.tunnel.write(data)
    return _send_tls(ex, ex.tunnel.pending_out())


def _send_tls(ex: Exchange, out: bytes) -> Step:
    ex.tx.load(out)
    return Send(ex.tx.next(ex.fragment_size))


def _strip_header(plain: bytes) -> bytes:
    """PEAPv0 phase-2 data without a whole EAP header, as the peer may send either."""
    if len(plain) >= 5 and plain[0] == 2 and struct.unpack_from("!H", plain, 2)[0] == len(plain):
        return plain[4:]
    return plain


def _name(raw: bytes) -> str:
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(DropReason.MALFORMED, "inner identity is not UTF-8") from None
    return name.replace("\0", "")


__all__ = ["TYPE_PEAP", "TYPE_TLS", "TYPE_TTLS", "TlsError"]
