"""TLS certificates read again on SIGHUP, for every TLS listener, without a restart.

``check_pair`` loads a certificate chain and its key into a throw-away context first: a
file that is missing, not PEM, a key that does not match, or a certificate that has
expired (or is not valid yet) is refused with the reason, and the listener keeps the pair
it serves. A good pair goes into the listener's live ``ssl.SSLContext`` (HTTP: uvicorn's,
used for every new handshake) or is handed to gRPC's certificate fetcher (asked at every
new handshake). Connections already open keep their session: nothing is dropped.
"""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

log = logging.getLogger("netd.tls")


class TlsError(Exception):
    """A certificate or key that cannot be served; the message says why."""


def check_pair(cert: Path, key: Path, now: datetime | None = None) -> tuple[bytes, bytes]:
    """The PEM bytes of ``cert`` (the chain) and ``key`` if they can be served now.
    Raises TlsError naming the file and the problem."""
    try:
        cert_pem, key_pem = cert.read_bytes(), key.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise TlsError(f"{cert}: not a PEM certificate") from None
    when = now or datetime.now(UTC)
    if leaf.not_valid_after_utc <= when:
        raise TlsError(f"{cert}: expired on {leaf.not_valid_after_utc.isoformat()}")
    if leaf.not_valid_before_utc > when:
        raise TlsError(f"{cert}: not valid before {leaf.not_valid_before_utc.isoformat()}")
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        probe.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        raise TlsError(f"{cert} and {key}: {exc.reason or exc}") from None
    except OSError as exc:
        raise TlsError(f"{cert} and {key}: {exc.strerror or exc}") from None
    return cert_pem, key_pem


def reload_context(context: ssl.SSLContext, cert: Path, key: Path, listener: str) -> bool:
    """Load a checked pair into ``context`` (new handshakes use it); on a bad pair keep
    the one in force and log why. Whether the new pair is in force."""
    try:
        check_pair(cert, key)
        context.load_cert_chain(str(cert), str(key))
    except (TlsError, ssl.SSLError, OSError) as exc:
        log.error(
            "TLS certificate not reloaded; the one in force stays",
            extra={"fields": {"listener": listener, "problem": str(exc)}},
        )
        return False
    log.info(
        "TLS certificate reloaded",
        extra={"fields": {"listener": listener, "cert": str(cert)}},
    )
    return True
