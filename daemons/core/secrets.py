"""Secrets at rest: AES-256-GCM with a key from config (``secrets.key`` or ``key_file``).

OpenSSL's AES-GCM through ``cryptography``: opening a sealed value costs about 1 µs here,
against 81 µs with pycryptodome, and the RADIUS hot path opens one per request.

Sealed values carry a version octet, a 96-bit random nonce and the GCM tag. A context
string (e.g. ``b"nas:bng1"``) is bound as associated data, so a sealed value copied into
another row does not open there.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("netd.secrets")

_VERSION = b"\x01"
KEY_BYTES = 32


class SealError(Exception):
    """A sealed value is corrupt, or was sealed with another key or context."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the secrets key must be {KEY_BYTES} bytes")
        self._key = key
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Version octet, 96-bit nonce, then ciphertext with its 16-octet tag."""
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """Raises SealError if the value was tampered with or belongs elsewhere."""
        if len(sealed) < 29 or sealed[:1] != _VERSION:
            raise SealError("not a sealed value")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], context)
        except InvalidTag:
            raise SealError("sealed value does not verify (wrong key or context)") from None

    def derive(self, label: bytes) -> bytes:
        """A separate key for another purpose (e.g. EAP State tokens)."""
        import hashlib  # noqa: PLC0415 - only used here
        import hmac  # noqa: PLC0415

        return hmac.new(self._key, b"netd-derive:" + label, hashlib.sha256).digest()


def parse_key(text: str) -> bytes:
    """A key as 64 hex digits or base64 of 32 bytes. Raises ValueError."""
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("expected 64 hex digits or base64 of 32 bytes") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"expected {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def load_or_create_key(configured: str | None, state_dir: Path) -> bytes:
    """The configured key, or one generated once under ``state_dir`` (0600).

    Raises ValueError for a malformed configured or stored key.
    """
    if configured:
        return parse_key(configured)
    path = state_dir / "secrets.key"
    if path.exists():
        return parse_key(path.read_text())
    state_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of the instance made it first
        return parse_key(path.read_text())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    log.warning(
        "generated a secrets key; back it up, sealed secrets are lost without it",
        extra={"fields": {"path": str(path)}},
    )
    return key
