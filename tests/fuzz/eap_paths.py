"""The EAP-TLS/PEAP/TTLS engine's receive path for the fuzzers (hypothesis and atheris):
an exchange begun, then the peer's Type-Data, round after round, through
``auth.authenticate`` and the exchange owner. Only DecodeError may escape; an exchange
that ended is released; the table stays within its bound."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from OpenSSL import SSL
from prometheus_client import CollectorRegistry

from daemons.core.config import RadiusConfig
from daemons.core.ratelog import RateLimitedLog
from daemons.radius import eap
from daemons.radius.auth import Outcome, Subscriber, authenticate
from daemons.radius.auth_eap import SubscriberLookup
from daemons.radius.codec import Attr, Code, DecodeError, Packet, decode, encode_request
from daemons.radius.eap_exchanges import EapExchanges, tls_contexts
from daemons.radius.eap_tls import TYPE_PEAP, TYPE_TLS, TYPE_TTLS, encode_fragment
from daemons.radius.metrics import RadiusMetrics
from tests.certs import write_self_signed
from tests.fuzz.paths import CFG, NASES, NOW, SECRET

_DIR = Path(tempfile.mkdtemp(prefix="netd-fuzz-eap-"))
_CERT, _KEY = write_self_signed(_DIR, "server")
RADIUS = RadiusConfig(
    eap_cert=_CERT, eap_key=_KEY, eap_ca=_CERT, eap_fragment_size=200, eap_max_exchanges=16
)
CONTEXTS = tls_contexts(RADIUS)
EXCHANGES = EapExchanges(
    RADIUS, CONTEXTS, RadiusMetrics(CollectorRegistry()), RateLimitedLog(logging.getLogger("fuzz"))
)
TYPES = (TYPE_TLS, TYPE_PEAP, TYPE_TTLS)
ALICE = Subscriber("alice", "fiber-100", password=b"arctangent")
ENGINE = type(CFG)(CFG.dictionary, CFG.policy, CFG.eap_key, 30.0, ("tls", "peap", "ttls", "md5"))


def client_hello() -> bytes:
    """A real ClientHello (the seed the fuzzers start from)."""
    conn = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    conn.set_connect_state()
    with contextlib.suppress(SSL.WantReadError):
        conn.do_handshake()
    return bytes(conn.bio_read(65536))


def seed() -> bytes:
    return bytes((0, 2)) + encode_fragment(0, client_hello())


def _request(packet: eap.EapPacket, state: bytes | None) -> Packet:
    attrs = [(Attr.USER_NAME, b"alice"), *eap.eap_attributes(packet)]
    if state is not None:
        attrs.append((Attr.STATE, state))
    raw = encode_request(Code.ACCESS_REQUEST, 1, attrs, SECRET, bytes(16), message_auth=True)
    return decode(raw)


def eap_tls_receive(data: bytes) -> None:
    """``data``: the method (first octet), how many rounds (second), then Type-Data for
    each round, cut in equal parts."""
    if len(data) < 2:
        return
    kind = TYPES[data[0] % 3]
    rounds = 1 + data[1] % 4
    body = data[2:]
    nas = NASES[0]
    start = eap.EapPacket(eap.EapCode.RESPONSE, 1, eap.EapType.NAK, bytes((kind,)))
    out = authenticate(
        _request(start, None), nas, None, 0, ENGINE, NOW, os.urandom, exchanges=EXCHANGES
    )
    assert isinstance(out, Outcome) and out.code == Code.ACCESS_CHALLENGE
    state = dict(out.raw)[Attr.STATE]
    ident = 2
    size = max(1, -(-len(body) // rounds))
    for i in range(rounds):
        chunk = body[i * size : (i + 1) * size]
        packet = eap.EapPacket(eap.EapCode.RESPONSE, ident, kind, chunk)
        req = _request(packet, state)
        try:
            out2 = authenticate(req, nas, None, 0, ENGINE, NOW, os.urandom, exchanges=EXCHANGES)
            if isinstance(out2, SubscriberLookup):
                out2 = authenticate(
                    req,
                    nas,
                    None,
                    0,
                    ENGINE,
                    NOW,
                    os.urandom,
                    exchanges=EXCHANGES,
                    inner=(ALICE, 0),
                )
        except DecodeError:
            assert state not in EXCHANGES._held
            return
        assert isinstance(out2, Outcome)
        if out2.code != Code.ACCESS_CHALLENGE:
            assert state not in EXCHANGES._held
            return
        ident = (ident + 1) & 0xFF
    assert len(EXCHANGES) <= 16
