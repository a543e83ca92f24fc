"""SNMP traps and informs (v1 and v2c) decoded with pysnmp's codec. Pure. (v3: trapv3.py)

gufo-snmp does not receive notifications, so pysnmp's BER codec decodes them (rarely a
hot path: a trap is an event, not a poll). ``decode`` returns a ``Trap`` or raises
``TrapError``; the service answers an inform with its response PDU and turns every trap
into an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pysnmp.proto import api
from pysnmp.proto.error import ProtocolError

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
# RFC 3584 §3.1.2: a v1 generic trap as the v2 snmpTrapOID it maps to.
GENERIC = {
    0: "1.3.6.1.6.3.1.1.5.1",  # coldStart
    1: "1.3.6.1.6.3.1.1.5.2",  # warmStart
    2: "1.3.6.1.6.3.1.1.5.3",  # linkDown
    3: "1.3.6.1.6.3.1.1.5.4",  # linkUp
    4: "1.3.6.1.6.3.1.1.5.5",  # authenticationFailure
    5: "1.3.6.1.6.3.1.1.5.6",  # egpNeighborLoss
}
NAMES = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
    "1.3.6.1.6.3.1.1.5.5": "authenticationFailure",
}


# What pyasn1 raises on hostile BER besides its own PyAsn1Error: a constructed value of
# indefinite length holding more components than its type has raises IndexError from deep
# inside the decoder (tests/fuzz/test_snmp_fuzz.py holds the datagrams).
_BER_ERRORS = (PyAsn1Error, ProtocolError, TypeError, ValueError, LookupError)


class TrapError(ValueError):
    """Not an SNMP v1/v2c notification we accept."""


@dataclass
class Trap:
    version: str  # "1", "2c" or "3"
    community: str  # or, in v3, the user
    trap_oid: str
    uptime: int | None
    varbinds: dict[str, Any] = field(default_factory=dict)
    inform: bool = False
    response: bytes | None = None  # the Response PDU an inform wants back
    agent_address: str = ""  # v1: the agent-addr field (the device, behind any NAT or relay)
    enterprise: str = ""  # v1: the enterprise field, of generic traps too (RFC 3584 §3.1)
    user: str = ""  # v3: the USM user
    engine_id: str = ""  # v3: the sender's authoritative engine ID, hex
    context: str = ""  # v3: the context name

    @property
    def name(self) -> str:
        return NAMES.get(self.trap_oid, self.trap_oid)

    def event(self) -> dict[str, Any]:
        """The trap as the data of its ``snmp.trap`` event (what the version carries)."""
        data: dict[str, Any] = {
            "trap": self.name,
            "oid": self.trap_oid,
            "version": self.version,
            "uptime": self.uptime,
            "inform": self.inform,
            "varbinds": self.varbinds,
        }
        if self.version == "1":
            data |= {"agent_address": self.agent_address, "enterprise": self.enterprise}
        if self.version == "3":
            data |= {"user": self.user, "engine_id": self.engine_id, "context": self.context}
        return data


def py_value(value: Any) -> Any:
    """A pyasn1 value as plain Python."""
    cls = type(value).__name__
    if cls in ("OctetString", "Opaque", "Bits"):
        raw = bytes(value)
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return "0x" + raw.hex()
        # The NULs a C string ends with dropped; one inside: hex (PostgreSQL's jsonb
        # refuses NUL, which lost the whole trap).
        text = text.rstrip("\x00")
        return "0x" + raw.hex() if "\x00" in text else text
    if cls in ("ObjectIdentifier", "ObjectName"):
        return str(value)
    if cls in ("IpAddress",):
        return ".".join(str(b) for b in bytes(value))
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def message_version(data: bytes) -> int | None:
    """The msgVersion of an SNMP message (0 v1, 1 v2c, 3 v3), None if it is not one."""
    try:
        return int(api.decodeMessageVersion(data))
    except _BER_ERRORS:
        return None


def decode(data: bytes) -> Trap:
    """A v1 or v2c notification. Raises TrapError for anything else."""
    try:
        version = int(api.decodeMessageVersion(data))
        if version not in api.PROTOCOL_MODULES:
            raise TrapError(f"SNMP message version {version} is not v1 or v2c")
        p = api.PROTOCOL_MODULES[version]
        msg, _rest = decoder.decode(data, asn1Spec=p.Message())
        pdu = p.apiMessage.get_pdu(msg)
        community = str(p.apiMessage.get_community(msg))
        pdu_api = p.apiTrapPDU if version == api.SNMP_VERSION_1 else p.apiPDU
        varbinds = {str(o): py_value(v) for o, v in pdu_api.get_varbinds(pdu)}
    except _BER_ERRORS as exc:
        if isinstance(exc, TrapError):
            raise
        raise TrapError(f"not an SNMP message: {str(exc)[:100]}") from None
    kind = type(pdu).__name__
    if version == api.SNMP_VERSION_1:
        if kind != "TrapPDU":
            raise TrapError(f"{kind} is not a trap")
        generic = int(p.apiTrapPDU.get_generic_trap(pdu))
        enterprise = str(p.apiTrapPDU.get_enterprise(pdu))
        trap_oid = (
            GENERIC[generic]
            if generic in GENERIC
            else f"{enterprise}.0.{int(p.apiTrapPDU.get_specific_trap(pdu))}"
        )
        uptime = int(p.apiTrapPDU.get_timestamp(pdu))
        agent = ".".join(str(b) for b in p.apiTrapPDU.get_agent_address(pdu).asNumbers())
        return Trap(
            "1", community, trap_oid, uptime, varbinds, agent_address=agent, enterprise=enterprise
        )
    if kind not in ("SNMPv2TrapPDU", "InformRequestPDU"):
        raise TrapError(f"{kind} is not a notification")
    trap_oid = str(varbinds.pop(SNMP_TRAP_OID, ""))
    raw_uptime = varbinds.pop(SYS_UPTIME, None)
    trap = Trap(
        "2c", community, trap_oid, raw_uptime if isinstance(raw_uptime, int) else None, varbinds
    )
    if kind == "InformRequestPDU":
        trap.inform = True
        response = p.apiPDU.get_response(pdu)
        p.apiPDU.set_varbinds(response, p.apiPDU.get_varbinds(pdu))
        p.apiMessage.set_pdu(msg, response)
        trap.response = bytes(encoder.encode(msg))
    return trap
