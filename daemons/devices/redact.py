"""Secrets taken out of a device config (or a diff of one) for readers who are not admins:
passwords and their hashes, keys, SNMP communities, private keys. Pure.

What is replaced, by ``<redacted>`` (the rest of the line kept, so the config still reads):
- PEM blocks (``-----BEGIN ... PRIVATE KEY-----`` to its END line), whole;
- CLI: the value after ``password``, ``secret``, ``key``, ``key-string``,
  ``pre-shared-key``, ``community``, ``authentication-key``, ``md5``, ``encrypted-password``,
  ``auth-password``, ``priv-password``, ``snmp-server community``, ``cipher``, ``hash`` (IOS,
  NX-OS, XR, EOS, Junos set-form and curly form, VRP, RouterOS ``password=``/``secret=``);
  a type digit before the value (``secret 5 $1$...``, ``password 7 0822...``) is kept;
- crypt hashes anywhere (``$1$``, ``$5$``, ``$6$``, ``$y$``, ``$2b$`` ...), such as a
  shadow file's or a Linux user's;
- NETCONF: the text of elements whose name says secret (``password``, ``secret``, ``key``,
  ``*-key``, ``*-password``, ``community``, ``private-key``, ``psk``, ``shared-secret``).
"""

from __future__ import annotations

import re

MARK = "<redacted>"

_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----",
    re.S,
)
_WORDS = (
    r"password|passwd|secret|key-string|pre-shared-key|authentication-key|md5|"
    r"encrypted-password|auth-password|priv-password|community|shared-secret|psk|"
    r"key|cipher|hash|auth-key|priv-key"
)
# "password 7 0822455D0A16", "secret 5 $1$...", 'encrypted-password "$6$..."', "key radius"
_CLI = re.compile(
    rf"(?P<lead>(?:^|[\s{{;]))(?P<word>{_WORDS})(?P<sep>[ \t]+|=)(?P<type>[0-9]{{1,2}}[ \t]+)?"
    r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s;\"']+)",
    re.I | re.M,
)
_CRYPT = re.compile(r"\$(?:1|2[abxy]?|5|6|y|gy|7|sha1|md5)\$[^\s:\"'<]+")
_XML = re.compile(
    r"(<(?P<tag>(?:[\w.-]+:)?(?:[\w.-]*-)?(?:password|secret|key|community|private-key|psk|"
    r"shared-secret|passphrase|hash))(?:\s[^>]*)?>)(?P<value>[^<]+)(</(?P=tag)>)",
    re.I,
)


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``<redacted>``."""
    out = _PEM.sub(f"-----BEGIN PRIVATE KEY----- {MARK} -----END PRIVATE KEY-----", text)
    out = _XML.sub(lambda m: f"{m.group(1)}{MARK}{m.group(4)}", out)
    out = _CLI.sub(_cli_value, out)
    return _CRYPT.sub(MARK, out)


_NOT_SECRET = frozenset(
    (
        "chain",
        "exchange",
        "config-key",
        "encryption",
        "generate",
        "zeroize",
        "import",
        "export",
        "pubkey-chain",
        "rsa",
        "ec",
        "ecdsa",
        "ed25519",
        "none",
        "timeout",
    )
)


def _cli_value(m: re.Match[str]) -> str:
    value = m.group("value")
    if value == MARK or value.lower() in _NOT_SECRET:
        return m.group(0)
    kept = m.group("type") or ""
    return f"{m.group('lead')}{m.group('word')}{m.group('sep')}{kept}{MARK}"
