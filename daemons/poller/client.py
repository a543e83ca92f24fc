"""Reading a target: GET for scalars, GETBULK walks for tables, on gufo-snmp.

gufo-snmp was measured against pysnmp on this machine (benchmarks/snmp_clients.py): about
6 µs of CPU per varbind on walks against pysnmp's 120, so it carries the GET/GETBULK hot
path; pysnmp stays for traps and as the test oracle. Its limits shape this module:
- a response must fit about 4 KB, so walks start at max-repetitions 25 and halve on a
  decode error;
- one request in flight per session, so a target's reads run one after the other;
- no retries of its own: ``retries`` attempts here, each bounded by ``wait`` seconds;
- absent OIDs are left out of ``get_many``: an absent scalar is simply not in the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gufo.snmp import (
    Aes128Key,
    Aes192Key,
    Aes256Key,
    DesKey,
    Md5Key,
    Sha1Key,
    Sha224Key,
    Sha256Key,
    Sha384Key,
    Sha512Key,
    SnmpDecodeError,
    SnmpError,
    SnmpVersion,
    User,
)
from gufo.snmp.aio import SnmpSession

AUTH = {
    "md5": Md5Key,
    "sha": Sha1Key,
    "sha224": Sha224Key,
    "sha256": Sha256Key,
    "sha384": Sha384Key,
    "sha512": Sha512Key,
}
PRIV = {"des": DesKey, "aes": Aes128Key, "aes192": Aes192Key, "aes256": Aes256Key}
MAX_REPETITIONS = 25


class Unreachable(Exception):
    """The target did not answer (timeouts after every retry), or refused us (v3 auth)."""


@dataclass(frozen=True)
class Credentials:
    version: str  # "1", "2c" or "3"
    community: str = ""
    user: str = ""
    auth: str = ""  # md5 | sha | sha224 | sha256 | sha384 | sha512
    auth_key: str = ""
    priv: str = ""  # des | aes | aes192 | aes256
    priv_key: str = ""


def _session(address: str, port: int, creds: Credentials, timeout: float) -> SnmpSession:
    if creds.version == "3":
        kwargs: dict[str, Any] = {}
        if creds.auth:
            kwargs["auth_key"] = AUTH[creds.auth](creds.auth_key.encode())
        if creds.priv:
            kwargs["priv_key"] = PRIV[creds.priv](creds.priv_key.encode())
        return SnmpSession(address, port, user=User(creds.user, **kwargs), timeout=timeout)
    version = SnmpVersion.v1 if creds.version == "1" else SnmpVersion.v2c
    return SnmpSession(address, port, community=creds.community, version=version, timeout=timeout)


async def read(
    address: str,
    port: int,
    creds: Credentials,
    gets: Sequence[str],
    walks: Sequence[str],
    wait: float = 2.0,
    retries: int = 2,
) -> dict[str, Any]:
    """Every scalar of ``gets`` and every varbind under each root of ``walks``, by OID.
    Raises Unreachable."""
    last: Exception | None = None
    for _attempt in range(retries + 1):
        session = _session(address, port, creds, wait)
        try:
            if creds.version == "3":
                await session.refresh()  # engine discovery and time sync
            got: dict[str, Any] = {}
            if gets:
                got.update(await session.get_many(list(gets)))
            for root in walks:
                got.update(await _walk(session, root))
            return got
        except (TimeoutError, SnmpError, OSError) as exc:
            last = exc
            await asyncio.sleep(0)
    raise Unreachable(f"{address}:{port}: {type(last).__name__}: {last}") from None


async def _walk(session: SnmpSession, root: str) -> dict[str, Any]:
    repetitions = MAX_REPETITIONS
    while True:
        try:
            out: dict[str, Any] = {}
            async for oid, value in session.getbulk(root, max_repetitions=repetitions):
                out[oid] = value
            return out
        except SnmpDecodeError:
            if repetitions <= 1:
                raise
            repetitions //= 2  # the response did not fit: ask for fewer rows at a time
