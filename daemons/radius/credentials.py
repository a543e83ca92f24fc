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
