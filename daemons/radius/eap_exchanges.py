"""The owner of the TLS-based EAP exchanges (EAP-TLS, PEAP, EAP-TTLS) of this process.

An OpenSSL connection in the middle of a handshake cannot ride in the RADIUS State (nor
be serialised at all), so each exchange lives here, keyed by the random State it hands
the NAS, until it ends, its deadline passes, or a newer exchange needs its room:

- bounded: at most ``radius.eap_max_exchanges``; a full table evicts the oldest (a flood
  of EAP starts displaces only idle exchanges, never grows memory);
- a deadline per round trip (``radius.eap_state_ttl``) and one per exchange
  (``radius.eap_exchange_timeout``): a client that stops halfway is released at the next
  access (every ``begin``/``find`` sweeps what expired, oldest first);
- metrics: the exchanges held, and how each ended.

Pinned to its process: SO_REUSEPORT hashes a NAS's address and port to one worker, so an
exchange's round trips come back here; a State from another process (its instance tag
differs) is counted as ``other_worker`` and refused (see ARCHITECTURE.md, issue 29).

Also builds the TLS contexts from the configuration (:func:`tls_contexts`), the one
reading of the certificate files that ``netd check-config`` and the daemon's start share.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from OpenSSL import SSL, crypto

from daemons.core.config import RadiusConfig
from daemons.core.ratelog import RateLimitedLog
from daemons.radius.eap_methods import Exchange
from daemons.radius.eap_tls import TYPE_PEAP, TYPE_TLS, TYPE_TTLS, Tunnel
from daemons.radius.metrics import RadiusMetrics

_LOGGED = {"expired", "evicted", "malformed"}
MAGIC = b"\xe7T"  # a State that names an exchange here (EAP-MD5's starts with 0x01)
METHOD_NAMES = {TYPE_TLS: "eap-tls", TYPE_PEAP: "peap", TYPE_TTLS: "eap-ttls"}
_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}


class EapConfigError(Exception):
    """A certificate, key, CA or CRL that cannot be used; one line naming the file."""


@dataclass(frozen=True)
class Contexts:
    tunnel: SSL.Context | None  # PEAP and TTLS: the server certificate only
    tls: SSL.Context | None  # EAP-TLS: client certificates checked against the CA (+ CRLs)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EapConfigError(f"radius.{what}: {path}: {exc.strerror or exc}") from None


def _base(cfg: RadiusConfig, top: str, resumable: bool = True) -> SSL.Context:
    assert cfg.eap_cert is not None and cfg.eap_key is not None
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    # An idle exchange gives its record buffers back: 61 KiB -> 51 each here.
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    ctx.set_min_proto_version(_VERSIONS[cfg.eap_tls_min_version])
    ctx.set_max_proto_version(_VERSIONS[top])
    _read(cfg.eap_cert, "eap_cert")
    _read(cfg.eap_key, "eap_key")
    try:
        ctx.use_certificate_chain_file(str(cfg.eap_cert))
    except SSL.Error:
        raise EapConfigError(f"radius.eap_cert: {cfg.eap_cert}: not a PEM certificate") from None
    try:
        ctx.use_privatekey_file(str(cfg.eap_key))
        ctx.check_privatekey()
    except SSL.Error:
        raise EapConfigError(
            f"radius.eap_key: {cfg.eap_key}: not a PEM key, or not the key of eap_cert"
        ) from None
    if cfg.eap_resumption_lifetime > 0 and resumable:
        ctx.set_session_id(b"netd-eap")
        ctx.set_timeout(int(cfg.eap_resumption_lifetime))
        ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    else:
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        ctx.set_options(SSL.OP_NO_TICKET)
    return ctx


def tls_contexts(cfg: RadiusConfig) -> Contexts:
    """The contexts the configured methods need. Raises EapConfigError (one line)."""
    methods = set(cfg.eap_methods)
    if cfg.eap_cert is None or not methods & {"peap", "ttls", "tls"}:
        return Contexts(None, None)
    # PEAP and TTLS over TLS 1.3 (RFC 9427) only when asked: eap_tunnel_max_version.
    # Then their sessions are not resumed: a resumed TTLS session skips phase 2 and is
    # recalled by its session's secret, which TLS 1.3 renews at every ticket (each
    # resumption would be refused), and pyOpenSSL cannot stop TLS 1.3 tickets alone.
    top = min(cfg.eap_tunnel_max_version, cfg.eap_tls_max_version)
    tunnel = _base(cfg, top, resumable=top == "1.2") if methods & {"peap", "ttls"} else None
    tls = None
    if "tls" in methods and cfg.eap_ca is not None:  # no CA: EAP-TLS is not offered
        tls = _base(cfg, cfg.eap_tls_max_version)
        _read(cfg.eap_ca, "eap_ca")
        try:
            tls.load_verify_locations(str(cfg.eap_ca))
        except SSL.Error:
            raise EapConfigError(f"radius.eap_ca: {cfg.eap_ca}: not a PEM CA bundle") from None
        if cfg.eap_crl:
            store = tls.get_cert_store()
            assert store is not None
            for path in cfg.eap_crl:
                try:
                    store.add_crl(x509.load_pem_x509_crl(_read(path, "eap_crl")))
                except ValueError:
                    raise EapConfigError(f"radius.eap_crl: {path}: not a PEM CRL") from None
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL)
        tls.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
    return Contexts(tunnel, tls)


class EapExchanges:
    """The exchanges of this process (module docstring). Implements the engine's
    ``ExchangeStore``."""

    def __init__(
        self,
        cfg: RadiusConfig,
        contexts: Contexts,
        metrics: RadiusMetrics,
        ratelog: RateLimitedLog | None = None,
    ) -> None:
        self.cfg = cfg
        self.ratelog = ratelog
        self.contexts = contexts
        self.metrics = metrics
        self.instance = os.urandom(4)
        self._held: OrderedDict[bytes, Exchange] = OrderedDict()
        self._ends: dict[int, float] = {}  # key → the exchange's own deadline
        # TLS session → who authenticated in it, for TTLS resumption (skips phase 2)
        self._sessions: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    def remember(self, session: bytes, name: str, now: float) -> None:
        """``name`` authenticated in TLS session ``session`` (bounded like the exchanges,
        forgotten after radius.eap_resumption_lifetime)."""
        if self.cfg.eap_resumption_lifetime <= 0:
            return
        while len(self._sessions) >= self.cfg.eap_max_exchanges:
            self._sessions.popitem(last=False)
        self._sessions[session] = (name, now + self.cfg.eap_resumption_lifetime)

    def recall(self, session: bytes, now: float) -> str | None:
        got = self._sessions.get(session)
        if got is None or got[1] < now:
            return None
        return got[0]

    def available(self) -> frozenset[int]:
        out = set()
        if self.contexts.tunnel is not None:
            out |= {TYPE_PEAP, TYPE_TTLS}
        if self.contexts.tls is not None:
            out.add(TYPE_TLS)
        return frozenset(out)

    def __len__(self) -> int:
        return len(self._held)

    def begin(self, eap_type: int, nas: str, outer: bytes, now: float) -> Exchange:
        self.sweep(now)
        ctx = self.contexts.tls if eap_type == TYPE_TLS else self.contexts.tunnel
        assert ctx is not None
        while len(self._held) >= self.cfg.eap_max_exchanges:
            _, old = self._held.popitem(last=False)
            self._end(old, "evicted")
        key = MAGIC + self.instance + os.urandom(16)
        ex = Exchange(
            key,
            eap_type,
            nas,
            outer,
            Tunnel(ctx),
            self.cfg.eap_fragment_size,
            now + self.cfg.eap_state_ttl,
        )
        ex.recall = lambda session: self.recall(session, now)
        self._ends[id(ex)] = now + self.cfg.eap_exchange_timeout
        self._held[key] = ex
        self.metrics.eap_exchanges.set(len(self._held))
        return ex

    def find(self, key: bytes, nas: str, outer: bytes, now: float) -> Exchange | str:
        """The exchange ``key`` names, its round-trip deadline renewed, or why not."""
        self.sweep(now)
        if not key.startswith(MAGIC):
            return "eap_bad_state"
        ex = self._held.get(key)
        if ex is None:
            other = key[len(MAGIC) : len(MAGIC) + 4] != self.instance
            reason = "eap_other_worker" if other else "eap_bad_state"
            self.metrics.child(self.metrics.eap_ends, "unknown", reason).inc()
            return reason
        if ex.nas != nas or ex.outer != outer:
            return "eap_bad_state"
        ex.deadline = min(now + self.cfg.eap_state_ttl, self._ends[id(ex)])
        self._held.move_to_end(key)
        return ex

    def end(self, ex: Exchange, how: str, detail: str = "") -> None:
        """``ex`` ended (``ok``, or why not): released, counted; an unusual end (a TLS
        failure, bad framing) logged at most once per kind per 10 s, with the detail."""
        if self._held.pop(ex.key, None) is not None:
            self._end(ex, how, detail)

    def _end(self, ex: Exchange, how: str, detail: str = "") -> None:
        self._ends.pop(id(ex), None)
        method = METHOD_NAMES[ex.eap_type]
        self.metrics.child(self.metrics.eap_ends, method, how).inc()
        self.metrics.eap_exchanges.set(len(self._held))
        if self.ratelog is not None and (how in _LOGGED or how.startswith("tls_")):
            self.ratelog.log(
                logging.WARNING,
                f"eap-{how}",
                "EAP exchange ended without success",
                method=method,
                nas=ex.nas,
                end=how,
                detail=detail,
                phase=ex.phase.value,
            )

    def sweep(self, now: float) -> int:
        """Release the exchanges past their deadline (the least recently used come first,
        so the scan stops at the first one still alive, or after 256)."""
        gone = 0
        while self._held and gone < 256:
            key, ex = next(iter(self._held.items()))
            if ex.deadline >= now:
                break
            del self._held[key]
            self._end(ex, "expired")
            gone += 1
        return gone
