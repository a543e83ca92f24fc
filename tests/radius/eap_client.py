"""An in-memory EAP-TLS/PEAP peer (pyOpenSSL client over memory BIOs) that drives the
engine (``auth.authenticate``) without sockets: for the engine, bad-input and property
tests. It fragments its own messages (L and M flags) and ACKs the server's fragments."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from OpenSSL import SSL

from daemons.radius import eap
from daemons.radius.auth import EngineConfig, Nas, Outcome, Subscriber, authenticate
from daemons.radius.auth_eap import ExchangeStore, SubscriberLookup
from daemons.radius.codec import Attr, Code, Packet, decode, encode_request
from daemons.radius.eap_tls import FLAG_S, Outgoing, Reassembly, parse_fragment


def client_context(
    ca: str, cert: str | None = None, key: str | None = None, tls13: bool = False
) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_max_proto_version(SSL.TLS1_3_VERSION if tls13 else SSL.TLS1_2_VERSION)
    ctx.load_verify_locations(ca)
    ctx.set_verify(SSL.VERIFY_PEER)
    if cert and key:
        ctx.use_certificate_chain_file(cert)
        ctx.use_privatekey_file(key)
    return ctx


@dataclass
class TlsPeer:
    """The peer's side of the TLS framing (RFC 5216 §2.1.5)."""

    ctx: SSL.Context
    fragment: int = 300
    conn: SSL.Connection = field(init=False)
    rx: Reassembly = field(default_factory=Reassembly)
    tx: Outgoing = field(default_factory=Outgoing)
    app: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conn = SSL.Connection(self.ctx, None)
        self.conn.set_connect_state()

    def _out(self) -> bytes:
        out = b""
        while True:
            try:
                out += self.conn.bio_read(65536)
            except SSL.WantReadError:
                return out

    def answer(self, type_data: bytes) -> bytes:
        """Our Type-Data for the server's request."""
        if self.tx.pending:
            return self.tx.next(self.fragment)
        frag = parse_fragment(type_data)
        if frag.flags & FLAG_S:
            msg = None
        else:
            got = self.rx.add(frag)
            if got is None:
                return b"\x00"
            msg = got
        if msg:
            self.conn.bio_write(msg)
        try:
            self.conn.do_handshake()
            while True:
                self.app.append(self.conn.recv(65536))
        except (SSL.WantReadError, SSL.ZeroReturnError):
            pass
        out = self._out()
        if not out:
            return b"\x00"
        self.tx.load(out)
        return self.tx.next(self.fragment)


SECRET = b"s3cret"


def request(name: bytes, packet: eap.EapPacket, state: bytes | None) -> Packet:
    attrs = [(Attr.USER_NAME, name), *eap.eap_attributes(packet)]
    if state is not None:
        attrs.append((Attr.STATE, state))
    return decode(
        encode_request(Code.ACCESS_REQUEST, 1, attrs, SECRET, os.urandom(16), message_auth=True)
    )


def run(
    peer: TlsPeer,
    eap_type: int,
    nas: Nas,
    cfg: EngineConfig,
    exchanges: ExchangeStore,
    subscribers: dict[str, Subscriber],
    now: float,
    name: bytes = b"alice",
    mutate: Callable[[int, bytes], bytes] | None = None,
    rounds: int = 60,
) -> Outcome:
    """One whole exchange: Identity, a NAK to ``eap_type`` if another is proposed, then
    the method until Accept or Reject. ``mutate(round, type_data)`` may damage what the
    peer sends. Raises DecodeError (what the server would drop) and AssertionError."""
    packet = eap.EapPacket(eap.EapCode.RESPONSE, 1, eap.EapType.IDENTITY, name)
    state: bytes | None = None
    for round_ in range(rounds):
        req = request(name, packet, state)
        out = authenticate(req, nas, None, 0, cfg, now, os.urandom, exchanges=exchanges)
        while isinstance(out, SubscriberLookup):
            sub = subscribers.get(out.name)
            out = authenticate(
                req, nas, None, 0, cfg, now, os.urandom, exchanges=exchanges, inner=(sub, 0)
            )
        assert isinstance(out, Outcome)
        if out.code != Code.ACCESS_CHALLENGE:
            return out
        raw = dict(out.raw)
        state = raw[Attr.STATE]
        got = eap.eap_from_radius(
            decode(encode_request(Code.ACCESS_REQUEST, 1, list(out.raw), SECRET, bytes(16)))
        )
        assert got is not None and got.type is not None
        if got.type != eap_type:
            packet = eap.EapPacket(
                eap.EapCode.RESPONSE, got.identifier, eap.EapType.NAK, bytes((eap_type,))
            )
            state = None
            continue
        data = peer.answer(got.data)
        if mutate is not None:
            data = mutate(round_, data)
        packet = eap.EapPacket(eap.EapCode.RESPONSE, got.identifier, eap_type, data)
    raise AssertionError("the exchange did not end")
