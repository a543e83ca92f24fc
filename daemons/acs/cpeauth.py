"""CPE authentication (TR-069 §3.4.4): HTTP Basic or Digest (RFC 2617, MD5, qop=auth)
with the global credentials (acs.username, acs.password) or a device's own, for CWMP
sessions and for the file store (/files/) alike.

Digest nonces are ``<unix time>.<HMAC of it>`` under a key of this process, valid five
minutes: nothing is stored per challenge. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import asyncpg

from daemons.acs import files
from daemons.core.secrets import Sealer
from daemons.store import acs as store

_DIGEST_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')
REALM = "netd-acs"
NONCE_LIFETIME = 300  # seconds


def header_username(header: str) -> str | None:
    """The username an Authorization header (Basic or Digest) names; None without one."""
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(rest.strip(), validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    if scheme.lower() == "digest":
        p = {m[0]: m[1] or m[2] for m in _DIGEST_PARAM.findall(rest)}
        return str(p.get("username", ""))
    return None


class CpeAuth:
    def __init__(
        self, pool: asyncpg.Pool, sealer: Sealer, mode: str, global_creds: tuple[str, str]
    ) -> None:
        self.pool = pool
        self.sealer = sealer
        self.mode = mode  # acs.auth: none, basic, digest
        self.global_creds = global_creds
        self._nonce_key = secrets.token_bytes(32)

    async def file_request(self, scope: dict[str, Any]) -> bool:
        """May this /files/ request download: its Basic or Digest credentials are the
        global ones (acs.auth) or a device's own (Digest unless acs.auth is basic), as for
        CWMP. Without credentials only when acs.auth is "none", which the config accepts
        on loopback or with acs.allow_insecure. Raises asyncpg errors."""
        username = header_username(files.header(scope, b"authorization"))
        if username is None:
            return self.mode == "none"
        if (
            self.mode != "none"
            and username == self.global_creds[0]
            and self.verify(scope, self.mode, self.global_creds)
        ):
            return True
        mode = "basic" if self.mode == "basic" else "digest"
        own = await store.credentials_for_username(self.pool, self.sealer, username)
        return any(self.verify(scope, mode, creds) for creds in own)

    def challenge(self, mode: str) -> list[tuple[bytes, bytes]]:
        """The WWW-Authenticate header of a 401 under ``mode``."""
        if mode == "basic":
            return [(b"www-authenticate", f'Basic realm="{REALM}"'.encode())]
        stamp = str(int(time.time()))
        mac = hmac.new(self._nonce_key, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        nonce = f"{stamp}.{mac}"
        value = f'Digest realm="{REALM}", qop="auth", nonce="{nonce}", algorithm=MD5'
        return [(b"www-authenticate", value.encode())]

    def verify(self, scope: dict[str, Any], mode: str, creds: tuple[str, str]) -> bool:
        """Whether the request's Authorization proves ``creds`` under ``mode``."""
        username, password = creds
        header = files.header(scope, b"authorization")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic":  # preemptive Basic, accepted when the mode is Basic
            basic = base64.b64encode(f"{username}:{password}".encode()).decode()
            return mode == "basic" and hmac.compare_digest(rest.strip(), basic)
        if scheme.lower() != "digest" or mode != "digest":
            return False
        p = {m[0]: m[1] or m[2] for m in _DIGEST_PARAM.findall(rest)}
        nonce = p.get("nonce", "")
        stamp, _, mac = nonce.partition(".")
        good = hmac.new(self._nonce_key, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        if not stamp.isdigit() or not hmac.compare_digest(mac, good):
            return False
        if time.time() - int(stamp) > NONCE_LIFETIME or p.get("username") != username:
            return False
        ha1 = hashlib.md5(  # noqa: S324 - RFC 2617 Digest is MD5 by definition
            f"{username}:{REALM}:{password}".encode()
        ).hexdigest()
        ha2 = hashlib.md5(f"{scope['method']}:{p.get('uri', '')}".encode()).hexdigest()  # noqa: S324
        if p.get("qop"):
            raw = f"{ha1}:{nonce}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p['qop']}:{ha2}"
        else:
            raw = f"{ha1}:{nonce}:{ha2}"
        expected = hashlib.md5(raw.encode()).hexdigest()  # noqa: S324
        return hmac.compare_digest(expected, p.get("response", ""))
