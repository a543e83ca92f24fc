"""A subscriber's stored credentials, made from a password: a one-way hash, or the sealed
cleartext and NT hash (what CHAP, MS-CHAP and EAP-MD5 need)."""

from __future__ import annotations

from dataclasses import replace

from daemons.core.secrets import Sealer
from daemons.radius import hashes, mschap
from daemons.store.radius import SubscriberRow


def credentials(row: SubscriberRow, password: str, scheme: str, sealer: Sealer) -> SubscriberRow:
    """The row with new credentials: a one-way hash, or the sealed cleartext and NT hash."""
    if len(password.encode()) > 128:
        raise ValueError("RADIUS passwords are at most 128 octets (RFC 2865 §5.2)")
    ctx = f"sub:{row.username}:".encode()
    if scheme != "none":
        return replace(
            row,
            password_hash=hashes.make_hash(password, scheme),
            password_enc=None,
            nt_hash_enc=None,
        )
    return replace(
        row,
        password_hash=None,
        password_enc=sealer.seal(password.encode(), ctx + b"pw"),
        nt_hash_enc=sealer.seal(mschap.nt_password_hash(password), ctx + b"nt"),
    )


def nt_hash(row: SubscriberRow, hex_digits: str, sealer: Sealer) -> SubscriberRow:
    """The row with only an NT hash (32 hex digits): enough for MS-CHAP, nothing else."""
    try:
        nt = bytes.fromhex(hex_digits.strip())
    except ValueError:
        nt = b""
    if len(nt) != 16:
        raise ValueError("an NT hash is 16 octets (32 hex digits)")
    return replace(
        row,
        password_hash=None,
        password_enc=None,
        nt_hash_enc=sealer.seal(nt, f"sub:{row.username}:nt".encode()),
    )


class OpenedCredentials:
    """Sealed credentials already opened by this process, bounded (issue 30).

    Opening the sealed cleartext (AES-GCM) is ~3% of an authentication's CPU. The key is
    the sealed form itself with its context (the user name and which credential): a
    changed password is a new sealed form (a fresh nonce), so an entry never outlives the
    row version it was opened from, and a form that no longer opens is never served (the
    sealer keeps every key it ever held, so what opened once opens again). Only this
    process's memory holds the opened values, as it does while deciding a request; the
    sealed form stays the only one stored. Past ``limit`` entries the cache starts over.
    """

    def __init__(self, sealer: Sealer, limit: int = 100_000) -> None:
        self.sealer = sealer
        self.limit = limit
        self._opened: dict[tuple[bytes, bytes], bytes] = {}

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """``sealer.open(sealed, context)``, from memory when done before. Raises SealError."""
        key = (sealed, context)
        got = self._opened.get(key)
        if got is None:
            got = self.sealer.open(sealed, context)
            if len(self._opened) >= self.limit:
                self._opened.clear()
            self._opened[key] = got
        return got

    def __len__(self) -> int:
        return len(self._opened)
