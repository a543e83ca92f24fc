"""One-way password hashes for PAP-only subscribers: argon2, bcrypt and crypt formats.

libpass (the maintained passlib fork) identifies the format from the hash itself. These are
deliberately slow (hundreds of ms): the service runs them in a small thread pool.
"""

from __future__ import annotations

from passlib.context import CryptContext
from passlib.exc import UnknownHashError

SCHEMES = ("argon2", "bcrypt", "sha512_crypt", "sha256_crypt", "md5_crypt")
_CONTEXT = CryptContext(schemes=list(SCHEMES), default="argon2")


def make_hash(password: str, scheme: str = "argon2") -> str:
    """Hash ``password``. Raises ValueError for an unknown scheme."""
    if scheme not in SCHEMES:
        raise ValueError(f"hash scheme must be one of {', '.join(SCHEMES)}")
    return str(_CONTEXT.handler(scheme).hash(password))


def is_supported(hashed: str) -> bool:
    return _CONTEXT.identify(hashed) is not None


def verify(hashed: str, password: bytes) -> bool:
    """True if ``password`` matches; False also for a hash in an unknown format."""
    try:
        return bool(_CONTEXT.verify(password, hashed))
    except (UnknownHashError, ValueError, TypeError):
        return False
