"""The TLS layer shared by EAP-TLS, PEAP and EAP-TTLS, pure: no sockets, no clock.

- Framing (RFC 5216 §3.1, RFC 5281 §9.1, PEAP §3.1): a Flags octet (L = length included,
  M = more fragments, S = start; PEAP and TTLS keep their version in the low bits), then
  the 4-octet TLS Message Length when L is set, then TLS records. :class:`Reassembly`
  takes fragments in, :class:`Outgoing` hands ours out ``fragment_size`` at a time, each
  fragment but the last answered by the peer with an empty ACK.
- :class:`Tunnel` is one server side of a TLS connection over memory BIOs (pyOpenSSL:
  Python's ``ssl`` has no keying-material exporter, which every method's keys need).
- Keys (:func:`msk`): TLS 1.2 - PRF(master, label, client.random + server.random), which is
  the RFC 5705 exporter without a context: "client EAP encryption" (EAP-TLS, RFC 5216 §2.3;
  PEAPv0), "ttls keying material" (RFC 5281 §8). TLS 1.3 - the exporter with label
  "EXPORTER_EAP_TLS_Key_Material" and the method's Type as context (RFC 9190 §2.3,
  RFC 9427 §2.1). MSK is the first 64 octets, EMSK the next 64.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL._util import lib as _lib

from daemons.radius.codec import DecodeError, DropReason

FLAG_L, FLAG_M, FLAG_S = 0x80, 0x40, 0x20
VERSION_MASK = 0x07
MAX_MESSAGE = 64 * 1024  # a TLS message we reassemble, at most (RFC 5216 leaves it to us)
TYPE_TLS, TYPE_TTLS, TYPE_PEAP = 13, 21, 25

LABEL_TLS12 = {TYPE_TLS: b"client EAP encryption", TYPE_PEAP: b"client EAP encryption"}
LABEL_TLS12[TYPE_TTLS] = b"ttls keying material"
LABEL_TLS13 = b"EXPORTER_EAP_TLS_Key_Material"


class TlsError(Exception):
    """The TLS handshake or a record failed (the peer's certificate, a bad record)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Fragment:
    flags: int
    total: int | None  # the TLS Message Length when L is set
    data: bytes

    @property
    def more(self) -> bool:
        return bool(self.flags & FLAG_M)


def parse_fragment(body: bytes) -> Fragment:
    """The EAP-TLS/PEAP/TTLS Type-Data. Raises DecodeError(MALFORMED)."""
    if not body:
        raise DecodeError(DropReason.MALFORMED, "EAP-TLS data without flags")
    flags = body[0]
    if flags & FLAG_L:
        if len(body) < 5:
            raise DecodeError(DropReason.MALFORMED, "EAP-TLS L flag without a length")
        (total,) = struct.unpack_from("!I", body, 1)
        return Fragment(flags, total, body[5:])
    return Fragment(flags, None, body[1:])


def encode_fragment(flags: int, data: bytes, total: int | None = None) -> bytes:
    if total is not None:
        return bytes((flags | FLAG_L,)) + struct.pack("!I", total) + data
    return bytes((flags,)) + data


@dataclass(slots=True)
class Reassembly:
    """A peer's TLS message arriving in fragments (RFC 5216 §2.1.5)."""

    expected: int | None = None
    parts: list[bytes] = field(default_factory=list)
    size: int = 0

    @property
    def active(self) -> bool:
        return self.expected is not None

    def add(self, frag: Fragment) -> bytes | None:
        """The whole message once its last fragment is in, else None (ACK it).
        Raises TlsError('fragments') for fragments that do not add up."""
        if self.expected is None:
            if frag.more and frag.total is None:
                raise TlsError("fragments", "first fragment without its length")
            if not frag.more:
                if frag.total is not None and frag.total != len(frag.data):
                    raise TlsError("fragments", "length does not match the data")
                return frag.data
            assert frag.total is not None
            if frag.total > MAX_MESSAGE or frag.total < len(frag.data):
                raise TlsError("fragments", "message length out of bounds")
            self.expected = frag.total
        elif frag.total is not None and frag.total != self.expected:
            raise TlsError("fragments", "length changed between fragments")
        self.parts.append(frag.data)
        self.size += len(frag.data)
        if self.size > self.expected:
            raise TlsError("fragments", "more data than the length announced")
        if frag.more:
            return None
        if self.size != self.expected:
            raise TlsError("fragments", "less data than the length announced")
        whole = b"".join(self.parts)
        self.expected, self.parts, self.size = None, [], 0
        return whole


@dataclass(slots=True)
class Outgoing:
    """Our TLS message going out ``size`` octets a request (RFC 5216 §2.1.5)."""

    data: bytes = b""
    sent: int = 0

    @property
    def pending(self) -> bool:
        return self.sent < len(self.data)

    def load(self, data: bytes) -> None:
        self.data, self.sent = data, 0

    def next(self, size: int, version: int = 0) -> bytes:
        """The next fragment's Type-Data (flags, length on the first of several, data)."""
        chunk = self.data[self.sent : self.sent + size]
        first = self.sent == 0
        self.sent += len(chunk)
        more = FLAG_M if self.pending else 0
        total = len(self.data) if first and more else None
        return encode_fragment(version | more, chunk, total)


class Tunnel:
    """The server side of one TLS connection, over memory BIOs."""

    def __init__(self, ctx: SSL.Context) -> None:
        self.conn = SSL.Connection(ctx, None)
        self.conn.set_accept_state()
        self.established = False

    def feed(self, data: bytes) -> None:
        """Records from the peer; the handshake moves on. Raises TlsError."""
        if data:
            self.conn.bio_write(data)
        if not self.established:
            try:
                self.conn.do_handshake()
                self.established = True
            except SSL.WantReadError:
                return
            except SSL.Error as exc:
                raise TlsError("handshake", _ssl_reason(exc)) from None

    def read(self) -> bytes:
        """Application data the peer sent (decrypted). Raises TlsError."""
        out = []
        while True:
            try:
                out.append(self.conn.recv(16384))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                raise TlsError("closed", "peer closed the TLS connection") from None
            except SSL.Error as exc:
                raise TlsError("record", _ssl_reason(exc)) from None
        return b"".join(out)

    def keep(self) -> None:
        """The exchange succeeded: mark the connection shut down cleanly so OpenSSL keeps
        its session for resumption (freeing one that was not drops it from the cache)."""
        self.conn.set_shutdown(SSL.SENT_SHUTDOWN | SSL.RECEIVED_SHUTDOWN)

    def write(self, data: bytes) -> None:
        """Application data for the peer. Raises TlsError."""
        try:
            self.conn.sendall(data)
        except SSL.Error as exc:
            raise TlsError("record", _ssl_reason(exc)) from None

    def pending_out(self) -> bytes:
        """Everything the TLS layer has for the peer."""
        out = []
        while True:
            try:
                out.append(self.conn.bio_read(65536))
            except SSL.WantReadError:
                break
        return b"".join(out)

    @property
    def version(self) -> str:
        return str(self.conn.get_protocol_version_name())

    @property
    def tls13(self) -> bool:
        return self.version == "TLSv1.3"

    @property
    def resumed(self) -> bool:
        # pyOpenSSL has no wrapper for it; its binding has the OpenSSL call.
        return bool(_lib.SSL_session_reused(self.conn._ssl))

    def session_key(self) -> bytes:
        """A name for the TLS session, the same when it is resumed (TLS 1.2: a digest of
        the master secret; never the secret itself)."""
        secret = self.conn.master_key() or b""
        return hashlib.sha256(b"netd-eap-session" + secret).digest()[:16]

    def peer_certificate(self) -> x509.Certificate | None:
        return self.conn.get_peer_certificate(as_cryptography=True)

    def msk(self, eap_type: int) -> tuple[bytes, bytes]:
        """(MSK, EMSK) for ``eap_type`` (module docstring)."""
        if self.tls13:
            km = self.conn.export_keying_material(LABEL_TLS13, 128, bytes((eap_type,)))
        else:
            km = self.conn.export_keying_material(LABEL_TLS12[eap_type], 128)
        return km[:64], km[64:]

    def challenge(self, label: bytes, size: int) -> bytes:
        """Keying material for an inner challenge (RFC 5281 §11.1: "ttls challenge")."""
        return bytes(self.conn.export_keying_material(label, size))


def _ssl_reason(exc: SSL.Error) -> str:
    try:
        parts = exc.args[0]
        return "; ".join(str(p[2]) for p in parts) or str(exc)
    except (IndexError, TypeError):
        return str(exc)


def certificate_identity(cert: x509.Certificate) -> str | None:
    """The subscriber a client certificate names: its subject CN (RFC 5216 §5.2 leaves
    the choice to the server)."""
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attr.value
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None
