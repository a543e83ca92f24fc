"""SNMPv3 traps and informs: USM (authentication, privacy, time windows) by pysnmp's own
engine, fed the datagrams our trap socket receives. No asyncio here.

The engine gets a transport of ours that only collects what it wants to send (reports
for engine-ID discovery, responses to informs); the service sends those from the trap
socket. A trap is sent under the sender's engine ID, so a user's keys must be localized
for each sender: the first message from an engine names it, and the user is added for
that engine ID (keys from the same passphrases; net-snmp's snmptrapd asks the operator to
list every engine ID instead). At most ``max_engines`` pairs of engine ID and user are
learnt, so a flood of made-up engine IDs cannot grow the table without end. An inform is
sent to our own engine ID, which the sender discovers. A message that fails USM (unknown
user, wrong digest, outside the time window, wrong privacy key) is dropped and counted by
pysnmp, and ``handle`` returns nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyasn1.codec.ber import decoder
from pyasn1.error import PyAsn1Error
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.carrier.base import AbstractTransport, AbstractTransportDispatcher
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.error import PySnmpError
from pysnmp.proto import rfc1902
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from daemons.poller.client import Credentials
from daemons.poller.traps import NAMES, SNMP_TRAP_OID, SYS_UPTIME, Trap, py_value

AUTH = {
    "": config.USM_AUTH_NONE,
    "md5": config.USM_AUTH_HMAC96_MD5,
    "sha": config.USM_AUTH_HMAC96_SHA,
    "sha224": config.USM_AUTH_HMAC128_SHA224,
    "sha256": config.USM_AUTH_HMAC192_SHA256,
    "sha384": config.USM_AUTH_HMAC256_SHA384,
    "sha512": config.USM_AUTH_HMAC384_SHA512,
}
PRIV = {
    "": config.USM_PRIV_NONE,
    "des": config.USM_PRIV_CBC56_DES,
    "aes": config.USM_PRIV_CFB128_AES,
    "aes192": config.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "aes256": config.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "aes192c": config.USM_PRIV_CFB192_AES,  # Reeder key expansion, as Cisco does it
    "aes256c": config.USM_PRIV_CFB256_AES,
}


class _Outbox(AbstractTransport):  # type: ignore[misc]
    """The engine's transport: keeps what it sends for the caller to put on the wire."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def send_message(self, outgoingMessage: Any, transportAddress: Any) -> None:
        self.sent.append((bytes(outgoingMessage), transportAddress))


class _Dispatcher(AbstractTransportDispatcher):  # type: ignore[misc]
    """No loop of its own: ``handle`` feeds it one datagram at a time."""


_Outbox.PROTO_TRANSPORT_DISPATCHER = _Dispatcher


class V3Receiver:
    def __init__(
        self, users: Iterable[Credentials], engine_id: bytes | None = None, max_engines: int = 4096
    ) -> None:
        self.users = {u.user: u for u in users}
        self.max_engines = max_engines
        self.engine = engine.SnmpEngine(
            snmpEngineID=rfc1902.OctetString(engine_id) if engine_id else None
        )
        self.outbox = _Outbox()
        config.add_transport(self.engine, udp.DOMAIN_NAME, self.outbox)
        self.learnt: set[tuple[bytes, str]] = set()
        self._masters: dict[str, tuple[Any, Any]] = {}
        for u in self.users.values():
            self._add(u, None)  # for informs: under our own engine ID
        self._got: list[Trap] = []
        self._sender = b""  # the authoritative engine ID of the message being handled
        ntfrcv.NotificationReceiver(self.engine, self._received)

    @property
    def engine_id(self) -> bytes:
        return bytes(self.engine.snmpEngineID)

    def _add(self, u: Credentials, engine_id: bytes | None) -> None:
        """The user, under ``engine_id`` (None: ours). The passphrases are hashed into
        master keys once per user (a megabyte of hashing each); localizing a master key
        for one more engine ID is a single hash."""
        if u.user not in self._masters:
            auth, priv = AUTH[u.auth], PRIV[u.priv]
            self._masters[u.user] = (
                config.AUTH_SERVICES[auth].hash_passphrase(u.auth_key.encode()) if u.auth else None,
                config.PRIV_SERVICES[priv].hash_passphrase(auth, u.priv_key.encode())
                if u.priv
                else None,
            )
        auth_master, priv_master = self._masters[u.user]
        config.add_v3_user(
            self.engine,
            u.user,
            AUTH[u.auth],
            auth_master,
            PRIV[u.priv],
            priv_master,
            securityEngineId=rfc1902.OctetString(engine_id) if engine_id else None,
            authKeyType=config.USM_KEY_TYPE_MASTER,
            privKeyType=config.USM_KEY_TYPE_MASTER,
        )

    def _learn(self, data: bytes) -> tuple[str, tuple[bytes, str] | None]:
        """Add the user for the sender's engine ID if this is a trap from an engine not
        seen yet: why the message is refused before USM ("" if it is not), and the pair
        learnt now, if one was."""
        try:
            msg, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
            params, _ = decoder.decode(
                bytes(msg["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters()
            )
        except (PyAsn1Error, PySnmpError, TypeError, ValueError, LookupError):
            return "malformed", None  # LookupError: pyasn1 on some indefinite lengths
        engine_id = bytes(params["msgAuthoritativeEngineId"])
        self._sender = engine_id
        user = bytes(params["msgUserName"]).decode("utf-8", "replace")
        if user in self.users and not self._level_ok(self.users[user], msg):
            return "level", None
        if not engine_id or engine_id == self.engine_id or (engine_id, user) in self.learnt:
            return "", None  # discovery, an inform to us, or known
        if user not in self.users:
            return "user", None
        if len(self.learnt) >= self.max_engines:
            return "engines", None
        self._add(self.users[user], engine_id)
        self.learnt.add((engine_id, user))
        return "", (engine_id, user)

    @staticmethod
    def _level_ok(u: Credentials, msg: Any) -> bool:
        """The message is at the user's security level. USM (RFC 3414) accepts a message
        below it, a noAuthNoPriv one from a user who has keys, and leaves the refusal to
        access control (RFC 3415), which this receiver does not run: without this check
        anyone who knew a user name (sent in clear) could send traps as that user."""
        flags = bytes(msg["msgGlobalData"]["msgFlags"])
        level = flags[0] & 0x03 if flags else 0
        return not ((u.auth and not level & 0x01) or (u.priv and not level & 0x02))

    def handle(self, data: bytes, addr: tuple[str, int]) -> tuple[list[Trap], list[bytes], str]:
        """One SNMPv3 datagram: the notifications it held, what to send back to ``addr``
        (a report or an inform's response), and why it was refused ("" if it was not:
        "malformed", "user", "level" (below the user's security level), "engines", or
        "usm" when pysnmp dropped it)."""
        refused, learnt = self._learn(data)
        if refused:
            return [], [], refused
        self._got, self.outbox.sent = [], []
        callback = self.outbox._callback_function  # the dispatcher's receive path
        assert callback is not None
        try:
            callback(self.outbox, udp.UdpTransportAddress(addr), data)
        except (PyAsn1Error, PySnmpError, TypeError, ValueError, KeyError, IndexError):
            return [], [], "malformed"
        replies = [m for m, _to in self.outbox.sent]
        if not self._got and not replies:
            if learnt is not None:  # a failed message does not keep a slot
                self.learnt.discard(learnt)
                config.delete_v3_user(
                    self.engine, learnt[1], securityEngineId=rfc1902.OctetString(learnt[0])
                )
            return [], [], "usm"
        return self._got, replies, ""

    def _received(
        self,
        snmp_engine: Any,
        state_reference: Any,
        context_engine_id: Any,
        context_name: Any,
        var_binds: Any,
        cb_ctx: Any,
    ) -> None:
        ctx = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        varbinds = {str(o): py_value(v) for o, v in var_binds}
        trap_oid = str(varbinds.pop(SNMP_TRAP_OID, ""))
        uptime = varbinds.pop(SYS_UPTIME, None)
        pdu = ctx.get("pdu")
        user = str(ctx.get("securityName", ""))
        self._got.append(
            Trap(
                "3",
                user,
                trap_oid,
                uptime if isinstance(uptime, int) else None,
                varbinds,
                inform=type(pdu).__name__ == "InformRequestPDU",
                user=user,
                # a trap's authoritative engine is its sender; an inform's is ours, and
                # the sender's is its contextEngineID
                engine_id=(
                    self._sender if self._sender != self.engine_id else bytes(context_engine_id)
                ).hex(),
                context=bytes(context_name).decode("utf-8", "replace"),
            )
        )


__all__ = ["NAMES", "V3Receiver"]
