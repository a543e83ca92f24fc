"""TLS contexts for RadSec (RFC 6614 §2.3): TLS 1.2 or later, mutual certificates.

The server's context asks every client for a certificate and verifies it against
``radius.radsec.tls_client_ca`` (and its CRLs when ``tls_crl`` is given); the client's
(the proxy's, ``stream_client.py``) verifies the home server against a CA, optionally its
name, and presents its own certificate. Both are built whole from the files: a SIGHUP
builds a new one and swaps it only when every file loads (``daemons.core.tlsreload``'s
``check_pair`` first), so a bad file keeps the context in force.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from daemons.core.tlsreload import TlsError, check_pair


def _base(context: ssl.SSLContext, cert: Path | None, key: Path | None, ca: Path) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 6614 §2.3 (TLS 1.1 and older: no)
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"{ca}: {getattr(exc, 'reason', None) or exc}") from None
    if cert is not None and key is not None:
        check_pair(cert, key)
        try:
            context.load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, OSError) as exc:
            raise TlsError(f"{cert} and {key}: {exc}") from None


def server_context(cert: Path, key: Path, client_ca: Path, crl: Path | None) -> ssl.SSLContext:
    """The RadSec listener's context. Raises TlsError naming the file at fault."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _base(context, cert, key, client_ca)
    if crl is not None:
        try:
            context.load_verify_locations(cafile=str(crl))
        except (ssl.SSLError, OSError) as exc:
            raise TlsError(f"{crl}: {getattr(exc, 'reason', None) or exc}") from None
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def client_context(
    ca: Path, cert: Path | None, key: Path | None, check_hostname: bool
) -> ssl.SSLContext:
    """A RadSec client's context: the server verified against ``ca`` (its name too when
    ``check_hostname``), our certificate presented. Raises TlsError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # set after verify_mode (ssl refuses the other order)
    _base(context, cert, key, ca)
    context.check_hostname = check_hostname
    return context
