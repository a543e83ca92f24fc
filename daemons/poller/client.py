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
import socket
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

from daemons.poller.engine import GET_BUDGET, V3_GET_BUDGET

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
# A connected socket's probe after a timeout: an SNMPv3 engine-ID discovery request (RFC
# 3414 §4; noAuthNoPriv, reportable, empty user), which every agent may answer with a
# report and none counts as an authentication failure. Only the kernel's ICMP answer is
# read from it: "port unreachable" (ECONNREFUSED) tells a stopped agent from a silent one.


def _tlv(tag: int, body: bytes) -> bytes:  # BER, definite short lengths (all < 128 here)
    return bytes((tag, len(body))) + body


DISCOVERY = _tlv(
    0x30,
    _tlv(2, b"\x03")  # msgVersion 3
    + _tlv(0x30, _tlv(2, b"\x4e\x44") + _tlv(2, b"\x08\x00") + _tlv(4, b"\x04") + _tlv(2, b"\x03"))
    + _tlv(4, _tlv(0x30, _tlv(4, b"") + _tlv(2, b"\x00") * 2 + _tlv(4, b"") * 3))
    + _tlv(
        0x30,
        _tlv(4, b"") * 2
        + _tlv(0xA0, _tlv(2, b"\x4e\x44") + _tlv(2, b"\x00") * 2 + _tlv(0x30, b"")),
    ),
)


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
    context: str = ""  # v3 contextName (Cisco per-VRF or per-VLAN instances); "" default

    @property
    def get_budget(self) -> int:
        """Bytes of varbinds a GET of known rows may ask for (``engine.chunks``)."""
        return V3_GET_BUDGET if self.version == "3" else GET_BUDGET


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
    got = await read_rows(address, port, creds, gets, walks, wait, retries)
    return got.values


@dataclass
class Read:
    """What ``read_rows`` read: the values by OID; whether the tables were walked; the
    known rows' GETs as they turned out (a chunk an agent refused as too big is split in
    two, and the caller keeps the split for the next polls)."""

    values: dict[str, Any]
    walked: bool
    rows: tuple[tuple[str, ...], ...] = ()


async def read_rows(
    address: str,
    port: int,
    creds: Credentials,
    gets: Sequence[str],
    walks: Sequence[str],
    wait: float = 2.0,
    retries: int = 2,
    rows: Sequence[Sequence[str]] = (),
) -> Read:
    """``read``, with the tables read by GET of ``rows`` (instance OIDs under ``walks``
    found by an earlier walk, a GET's worth each) when there are any; the tables are
    walked when there are none, or when a GET of them comes back without values."""
    if creds.context:
        from daemons.poller import contexts  # noqa: PLC0415 (pysnmp: context names only)

        return await contexts.read_rows(address, port, creds, gets, walks, wait, retries, rows)
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
            if rows:
                split = await _get_rows(session, rows, got)
                if split is not None:
                    return Read(got, False, split)
            for root in walks:
                got.update(await _walk(session, root, creds.version == "1"))
            return Read(got, True)
        except AgentError:
            raise  # the agent's own answer: asking again gives the same
        except (TimeoutError, SnmpError, OSError) as exc:
            last = _failure(address, port, creds.version, exc)
            await asyncio.sleep(0)
    assert last is not None
    if last.reason == "timeout" and await refused(address, port, min(wait, 1.0)):
        raise Unreachable(
            "refused", f"{address}:{port}: connection refused (no SNMP agent on that port)"
        )
    raise last


async def refused(address: str, port: int, wait: float) -> bool:
    """Whether the host answers a datagram to ``port`` with ICMP port unreachable (nothing
    listens there). gufo-snmp's unconnected sockets never see that answer, so a stopped
    agent would read as a timeout; a connected socket of ours sends one discovery request
    (``DISCOVERY``) and waits up to ``wait`` seconds for the kernel's verdict."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.connect((address, port))
            sock.send(DISCOVERY)
            await asyncio.wait_for(loop.sock_recv(sock, 4096), wait)
        except ConnectionRefusedError:
            return True
        except (TimeoutError, OSError):
            return False
    return False  # an answer: something listens


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
) -> tuple[tuple[str, ...], ...] | None:
    """GET of known rows, a chunk at a time, into ``got``; the chunks as they were asked
    in the end, or None when the tables must be walked instead.

    A chunk that comes back without values (an error answer for the whole PDU: tooBig
    from net-snmp, noSuchName from a v1 agent), does not decode (a response past gufo's
    4 KB) or gets no answer at all while the agent has answered this poll (snmpsim drops
    a response larger than the request's msgMaxSize) is asked again in two halves, down
    to single OIDs; an OID that has nothing alone is a row that went away, and the walk
    finds the table as it is now."""
    out: list[tuple[str, ...]] = []
    pending = [tuple(c) for c in reversed(rows)]
    silent = 0  # requests in a row without an answer: past two, the agent is gone
    while pending:
        oids = pending.pop()
        try:
            chunk = await session.get_many(oids)
            silent = 0
        except SnmpDecodeError:
            chunk = {}
        except TimeoutError:
            silent += 1
            if silent > 2:
                raise
            chunk = {}
        found = 0
        for oid, value in chunk.items():
            if value is not None:
                got[oid] = value
                found += 1
        if found:
            out.append(oids)
            continue
        if len(oids) == 1:
            return None
        half = len(oids) // 2
        pending += [oids[half:], oids[:half]]
    return tuple(out)


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

    from daemons.poller.contexts import auth_data  # noqa: PLC0415

    engine = hl.SnmpEngine()
    try:
        target = await hl.UdpTransportTarget.create((address, port), timeout=wait, retries=0)
        auth = auth_data(creds)
        indication, status, _index, _vbs = await hl.get_cmd(
            engine,
            auth,
            target,
            hl.ContextData(contextName=creds.context.encode()),
            hl.ObjectType(hl.ObjectIdentity(oid)),
            lookupMib=False,
        )
        if indication or not status:
            return ""
        return str(status.prettyPrint())
    finally:
        engine.close_dispatcher()
