"""SNMPv3 reads in a named context (Cisco per-VRF and per-VLAN instances, RFC 3411
contextName), with pysnmp.

gufo-snmp 0.13, which reads every other target, always sends an empty contextName, so a
target with ``Credentials.context`` is read here instead: the same answer as
``client.read_rows`` (scalars, known rows by GET, tables by GETBULK), at pysnmp's cost
(about 100 µs of CPU a varbind against gufo's 5: PEERS.md). pysnmp shows the error-status,
so a tooBig answer to a GET of known rows splits the GET in two at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyasn1.type import univ
from pysnmp.hlapi.v3arch import asyncio as hl
from pysnmp.proto import rfc1902, rfc1905

from daemons.poller.client import (
    MAX_REPETITIONS,
    AgentError,
    Credentials,
    PollError,
    Read,
    Unreachable,
    refused,
)

AUTH = {
    "md5": hl.usmHMACMD5AuthProtocol,
    "sha": hl.usmHMACSHAAuthProtocol,
    "sha224": hl.usmHMAC128SHA224AuthProtocol,
    "sha256": hl.usmHMAC192SHA256AuthProtocol,
    "sha384": hl.usmHMAC256SHA384AuthProtocol,
    "sha512": hl.usmHMAC384SHA512AuthProtocol,
}
PRIV = {
    "des": hl.usmDESPrivProtocol,
    "aes": hl.usmAesCfb128Protocol,
    "aes192": hl.usmAesBlumenthalCfb192Protocol,
    "aes256": hl.usmAesBlumenthalCfb256Protocol,
    "aes192c": hl.usmAesCfb192Protocol,
    "aes256c": hl.usmAesCfb256Protocol,
}
_ABSENT = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)


def auth_data(creds: Credentials) -> Any:
    """pysnmp's authentication data for ``creds``."""
    if creds.version != "3":
        return hl.CommunityData(creds.community, mpModel=0 if creds.version == "1" else 1)
    return hl.UsmUserData(
        creds.user,
        authKey=creds.auth_key or None,
        privKey=creds.priv_key or None,
        authProtocol=AUTH[creds.auth] if creds.auth else hl.usmNoAuthProtocol,
        privProtocol=PRIV[creds.priv] if creds.priv else hl.usmNoPrivProtocol,
    )


def value(v: Any) -> Any:
    """A pysnmp value as gufo-snmp gives it: ints, bytes, OIDs and addresses as text."""
    if isinstance(v, rfc1902.IpAddress):
        return ".".join(str(b) for b in bytes(v))
    if isinstance(v, univ.OctetString):  # also Opaque, Bits
        return bytes(v)
    if isinstance(v, univ.ObjectIdentifier):
        return str(v)
    return int(v)


class _Reader:
    def __init__(self, address: str, port: int, creds: Credentials) -> None:
        self.where = f"{address}:{port}"
        self.engine = hl.SnmpEngine()
        self.auth = auth_data(creds)
        self.context = hl.ContextData(contextName=creds.context.encode())
        self.target: Any = None

    def _check(self, indication: Any, status: Any) -> None:
        if indication:
            text = str(indication)
            if "timeout" in text.lower() or "no snmp response" in text.lower():
                raise Unreachable("timeout", f"{self.where}: no response ({text})")
            raise Unreachable("auth", f"{self.where}: SNMPv3 refused: {text}")
        if status and str(status.prettyPrint()) != "tooBig":
            name = str(status.prettyPrint())
            raise AgentError(name, f"{self.where}: the agent answers {name}")

    async def get(self, oids: Sequence[str]) -> tuple[dict[str, Any], bool]:
        """Values by OID, and whether the agent answered tooBig."""
        indication, status, _index, vbs = await hl.get_cmd(
            self.engine,
            self.auth,
            self.target,
            self.context,
            *[hl.ObjectType(hl.ObjectIdentity(o)) for o in oids],
            lookupMib=False,
        )
        self._check(indication, status)
        if status:
            return {}, True
        return {str(o): value(v) for o, v in vbs if not isinstance(v, _ABSENT)}, False

    async def split_get(self, oids: Sequence[str], out: dict[str, Any]) -> list[tuple[str, ...]]:
        """GET of ``oids`` into ``out``, halved while the agent answers tooBig; the GETs
        as asked in the end."""
        got, too_big = await self.get(oids)
        if not too_big:
            out.update(got)
            return [tuple(oids)]
        if len(oids) == 1:
            raise AgentError("tooBig", f"{self.where}: tooBig for a single OID ({oids[0]})")
        half = len(oids) // 2
        return await self.split_get(oids[:half], out) + await self.split_get(oids[half:], out)

    async def walk(self, root: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async for indication, status, _index, vbs in hl.bulk_walk_cmd(
            self.engine,
            self.auth,
            self.target,
            self.context,
            0,
            MAX_REPETITIONS,
            hl.ObjectType(hl.ObjectIdentity(root)),
            lexicographicMode=False,
            lookupMib=False,
        ):
            self._check(indication, status)
            for o, v in vbs:
                if not isinstance(v, _ABSENT):
                    out[str(o)] = value(v)
        return out


async def read_rows(
    address: str,
    port: int,
    creds: Credentials,
    gets: Sequence[str],
    walks: Sequence[str],
    wait: float,
    retries: int,
    rows: Sequence[Sequence[str]],
) -> Read:
    """``client.read_rows`` for a target with a context name."""
    reader = _Reader(address, port, creds)
    try:
        reader.target = await hl.UdpTransportTarget.create(
            (address, port), timeout=wait, retries=retries
        )
        got: dict[str, Any] = {}
        if gets:
            await reader.split_get(list(gets), got)
        if rows:
            asked: list[tuple[str, ...]] = []
            before = len(got)
            for chunk in rows:
                asked += await reader.split_get(chunk, got)
            if len(got) - before == sum(len(c) for c in rows):
                return Read(got, False, tuple(asked))
        for root in walks:
            got.update(await reader.walk(root))
        return Read(got, True)
    except PollError as exc:
        if exc.reason == "timeout" and await refused(address, port, min(wait, 1.0)):
            raise Unreachable(
                "refused", f"{address}:{port}: connection refused (no SNMP agent on that port)"
            ) from None
        raise
    finally:
        reader.engine.close_dispatcher()
