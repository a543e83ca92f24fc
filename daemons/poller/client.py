"""Reading a target: GET for scalars, GETBULK walks for tables, on gufo-snmp.

gufo-snmp was measured against pysnmp on this machine (benchmarks/snmp_clients.py): about
6 µs of CPU per varbind on walks against pysnmp's 120, so it carries the GET/GETBULK hot
path; pysnmp stays for traps, for diagnosis and as the test oracle. Its limits shape this
module:
- a response must fit about 4 KB, so walks start at max-repetitions 25 and halve on a
  decode error;
- one request in flight per session, so a target's reads run one after the other;
- no retries of its own: ``retries`` attempts here, each bounded by ``wait`` seconds;
- it does not show a response's error-status: an error answer (tooBig, noSuchName,
  genErr...) reads as "nothing there". So a GET that comes back empty is asked again one
  OID at a time (an SNMPv1 agent answers noSuchName for the whole PDU when one OID is
  absent; an agent may answer tooBig), a GETBULK that comes back empty is checked with
  GETNEXT, and when a GET still finds nothing pysnmp asks the agent once more to learn its
  error-status, which becomes the ``AgentError`` the target's status shows;
- SNMPv1 has no GETBULK: v1 tables are walked with GETNEXT.

A table's rows, once walked, can be read with GET (``rows``: the instance OIDs the last
walk found, in chunks sized to fit a response, ``engine.chunks``): 6 requests for the
benchmark's agent of 38 interfaces instead of the walk's 33, which costs this process and
the device about half the CPU. A chunk that comes back empty (an error answer: tooBig, a
v1 noSuchName) or does not decode turns the read into a walk; the caller re-walks on its
own schedule to find rows that appeared.

Every failure is a ``PollError`` with a ``reason`` a status can show: ``timeout``
(unreachable, or a community the agent ignores), ``auth`` (an SNMPv3 report: unknown user,
wrong keys), ``malformed`` (a response that does not decode), ``network`` (a socket error),
or the agent's error-status name (``tooBig``, ``noSuchName``, ``genErr``...).
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
    SnmpAuthError,
    SnmpDecodeError,
    SnmpError,
    SnmpVersion,
    User,
)
from gufo.snmp.aio import SnmpSession
from gufo.snmp.user import KeyExpansion

AUTH = {
    "md5": Md5Key,
    "sha": Sha1Key,
    "sha224": Sha224Key,
    "sha256": Sha256Key,
    "sha384": Sha384Key,
    "sha512": Sha512Key,
}
# aes192/aes256 expand short localized keys the Blumenthal way (draft-blumenthal-aes-usm,
# net-snmp's); aes192c/aes256c the Reeder way Cisco devices use.
PRIV = {
    "des": DesKey,
    "aes": Aes128Key,
    "aes192": Aes192Key,
    "aes256": Aes256Key,
    "aes192c": Aes192Key,
    "aes256c": Aes256Key,
}
MAX_REPETITIONS = 25


class PollError(Exception):
    """A read that failed, with the ``reason`` a target's status shows."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Unreachable(PollError):
    """No usable answer: timeouts after every retry, an SNMPv3 refusal, a socket error."""


class AgentError(PollError):
    """The agent answered, but not with values: an error-status, or bytes that do not
    decode."""


@dataclass(frozen=True)
class Credentials:
    version: str  # "1", "2c" or "3"
    community: str = ""
    user: str = ""
    auth: str = ""  # md5 | sha | sha224 | sha256 | sha384 | sha512
    auth_key: str = ""
    priv: str = ""  # des | aes | aes192 | aes256 | aes192c | aes256c
    priv_key: str = ""


def _session(address: str, port: int, creds: Credentials, timeout: float) -> SnmpSession:
    if creds.version == "3":
        kwargs: dict[str, Any] = {}
        if creds.auth:
            kwargs["auth_key"] = AUTH[creds.auth](creds.auth_key.encode())
        if creds.priv:
            kwargs["priv_key"] = PRIV[creds.priv](creds.priv_key.encode())
            if creds.priv.endswith("c"):
                kwargs["key_expansion"] = KeyExpansion.Cisco
        return SnmpSession(address, port, user=User(creds.user, **kwargs), timeout=timeout)
    version = SnmpVersion.v1 if creds.version == "1" else SnmpVersion.v2c
    return SnmpSession(address, port, community=creds.community, version=version, timeout=timeout)


def _failure(address: str, port: int, version: str, exc: BaseException) -> PollError:
    where = f"{address}:{port}"
    if isinstance(exc, TimeoutError):
        why = "a wrong privacy key some agents ignore" if version == "3" else "a wrong community"
        return Unreachable("timeout", f"{where}: no response (unreachable, or {why})")
    if isinstance(exc, SnmpAuthError):
        return Unreachable("auth", f"{where}: SNMPv3 refused: {exc} (user, keys or protocols)")
    if isinstance(exc, SnmpDecodeError):
        return AgentError("malformed", f"{where}: a response that does not decode: {exc}")
    if isinstance(exc, OSError):
        return Unreachable("network", f"{where}: {exc.strerror or exc}")
    return AgentError("error", f"{where}: {type(exc).__name__}: {exc}")


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
    Raises PollError (Unreachable or AgentError)."""
    got, _walked = await read_rows(address, port, creds, gets, walks, wait, retries)
    return got


async def read_rows(
    address: str,
    port: int,
    creds: Credentials,
    gets: Sequence[str],
    walks: Sequence[str],
    wait: float = 2.0,
    retries: int = 2,
    rows: Sequence[Sequence[str]] = (),
) -> tuple[dict[str, Any], bool]:
    """``read``, with the tables read by GET of ``rows`` (instance OIDs under ``walks``
    found by an earlier walk, a GET's worth each) when there are any. Returns what was
    read, and whether the tables were walked (no ``rows``, or a GET of them answered with
    an error)."""
    last: PollError | None = None
    for _attempt in range(retries + 1):
        session = _session(address, port, creds, wait)
        try:
            if creds.version == "3":
                await session.refresh()  # engine discovery and time sync
            got: dict[str, Any] = {}
            if gets:
                got.update(await _get(session, list(gets)))
                if not got:
                    await _explain(address, port, creds, gets[0], wait)
            if rows and await _get_rows(session, rows, got):
                return got, False
            for root in walks:
                got.update(await _walk(session, root, creds.version == "1"))
            return got, True
        except AgentError:
            raise  # the agent's own answer: asking again gives the same
        except (TimeoutError, SnmpError, OSError) as exc:
            last = _failure(address, port, creds.version, exc)
            await asyncio.sleep(0)
    assert last is not None
    raise last


async def _get(session: SnmpSession, gets: list[str]) -> dict[str, Any]:
    got = {oid: v for oid, v in (await session.get_many(gets)).items() if v is not None}
    if got or len(gets) == 1:
        return got
    # Nothing at all: an error answer for the whole PDU (v1 noSuchName for one absent OID,
    # tooBig). One OID at a time, then.
    for oid in gets:
        value = await session.get(oid)
        if value is not None:
            got[oid] = value
    return got


async def _get_rows(
    session: SnmpSession, rows: Sequence[Sequence[str]], got: dict[str, Any]
) -> bool:
    """GET of known rows, a chunk at a time, into ``got``. False when a chunk found
    nothing (an error answer for the whole PDU) or did not decode (a response over gufo's
    4 KB): then the tables are walked."""
    for oids in rows:
        try:
            chunk = await session.get_many(oids)
        except SnmpDecodeError:
            return False
        found = 0
        for oid, value in chunk.items():
            if value is not None:
                got[oid] = value
                found += 1
        if not found:
            return False
    return True


async def _walk(session: SnmpSession, root: str, v1: bool) -> dict[str, Any]:
    if v1:
        return {oid: value async for oid, value in session.getnext(root)}
    repetitions = MAX_REPETITIONS
    while True:
        try:
            out = {
                oid: value
                async for oid, value in session.getbulk(root, max_repetitions=repetitions)
            }
        except SnmpDecodeError:
            if repetitions <= 1:
                raise
            repetitions //= 2  # the response did not fit: ask for fewer rows at a time
            continue
        if out:
            return out
        # Empty: an empty table, or an error answer to GETBULK (tooBig) that reads as
        # empty. One GETNEXT tells them apart, and walks the table if there is one.
        return {oid: value async for oid, value in session.getnext(root)}


async def _explain(address: str, port: int, creds: Credentials, oid: str, wait: float) -> None:
    """A GET found nothing: ask once more with pysnmp, which shows the error-status, and
    raise AgentError if there is one (nothing if the OIDs are simply absent)."""
    status = await diagnose(address, port, creds, oid, wait)
    if status:
        raise AgentError(status, f"{address}:{port}: the agent answers {status}")


async def diagnose(address: str, port: int, creds: Credentials, oid: str, wait: float) -> str:
    """The error-status name (tooBig, noSuchName, genErr...) the agent gives a GET of
    ``oid``, read with pysnmp; "" if it answers without one or does not answer."""
    from pysnmp.hlapi.v3arch import asyncio as hl  # noqa: PLC0415 (the error path only)

    auth_protocols = {
        "md5": hl.usmHMACMD5AuthProtocol,
        "sha": hl.usmHMACSHAAuthProtocol,
        "sha224": hl.usmHMAC128SHA224AuthProtocol,
        "sha256": hl.usmHMAC192SHA256AuthProtocol,
        "sha384": hl.usmHMAC256SHA384AuthProtocol,
        "sha512": hl.usmHMAC384SHA512AuthProtocol,
    }
    priv_protocols = {
        "des": hl.usmDESPrivProtocol,
        "aes": hl.usmAesCfb128Protocol,
        "aes192": hl.usmAesBlumenthalCfb192Protocol,
        "aes256": hl.usmAesBlumenthalCfb256Protocol,
        "aes192c": hl.usmAesCfb192Protocol,
        "aes256c": hl.usmAesCfb256Protocol,
    }
    engine = hl.SnmpEngine()
    try:
        target = await hl.UdpTransportTarget.create((address, port), timeout=wait, retries=0)
        if creds.version == "3":
            auth: Any = hl.UsmUserData(
                creds.user,
                authKey=creds.auth_key or None,
                privKey=creds.priv_key or None,
                authProtocol=auth_protocols[creds.auth] if creds.auth else hl.usmNoAuthProtocol,
                privProtocol=priv_protocols[creds.priv] if creds.priv else hl.usmNoPrivProtocol,
            )
        else:
            auth = hl.CommunityData(creds.community, mpModel=0 if creds.version == "1" else 1)
        indication, status, _index, _vbs = await hl.get_cmd(
            engine,
            auth,
            target,
            hl.ContextData(),
            hl.ObjectType(hl.ObjectIdentity(oid)),
            lookupMib=False,
        )
        if indication or not status:
            return ""
        return str(status.prettyPrint())
    finally:
        engine.close_dispatcher()
