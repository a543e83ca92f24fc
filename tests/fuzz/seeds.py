"""Valid inputs for the decoders, to mutate: random bytes alone rarely pass a header check.

RADIUS: the RFC 2865 §7 example packets and the radtest captures of tests/radius/vectors.py,
plus requests built here with every attribute shape the engines read (PAP, CHAP,
MS-CHAPv1/v2 VSAs, EAP-Message split over attributes, tagged and salt-encrypted values,
accounting with Gigawords). CWMP: envelopes from the simulated CPEs of tests/acs/sim.py
over the real CPE data models (tests/acs/models), and the hand-written ones of
tests/acs/test_cwmp_codec.py. SNMP: datagrams net-snmp 5.9's snmptrap and snmpinform sent
to a loopback socket here (v1, v2c, an inform, v3 noAuthNoPriv and authPriv SHA/AES).

``fuzz/make_seeds.py`` writes these to the atheris corpus directories.
"""

from __future__ import annotations

import functools
import ipaddress
import struct

from daemons.acs import cwmp
from daemons.radius import eap
from daemons.radius.auth import (
    MICROSOFT,
    MS_CHAP2_RESPONSE,
    MS_CHAP_CHALLENGE,
    MS_CHAP_RESPONSE,
    Nas,
)
from daemons.radius.codec import (
    Attr,
    Code,
    encode_request,
    hide_password,
    salt_encrypt,
    vsa,
)
from tests.acs import test_cwmp_codec as hand
from tests.acs.sim import Cpe, load_model, model_files
from tests.radius import vectors as v

SECRET = b"fuzz-secret-1"
AUTH = bytes(range(16))
NAS = Nas("fuzz-nas", ipaddress.ip_network("127.0.0.1/32"), SECRET, "mikrotik", False)


def _req(*attrs: tuple[int, bytes], code: int = Code.ACCESS_REQUEST, ma: bool = True) -> bytes:
    auth = AUTH if code in (Code.ACCESS_REQUEST, Code.STATUS_SERVER) else None
    return encode_request(code, 7, list(attrs), SECRET, auth, message_auth=ma)


def _acct(status: int, *extra: tuple[int, bytes]) -> bytes:
    return _req(
        (40, struct.pack("!I", status)),
        (44, b"sess-0001"),
        (Attr.USER_NAME, b"alice"),
        (Attr.NAS_IP_ADDRESS, bytes((192, 0, 2, 1))),
        (5, struct.pack("!I", 12)),
        (Attr.FRAMED_IP_ADDRESS, bytes((100, 64, 0, 7))),
        *extra,
        code=Code.ACCOUNTING_REQUEST,
        ma=False,
    )


@functools.cache
def radius_packets() -> tuple[bytes, ...]:
    """Valid datagrams of every kind the daemon receives (and a few it sends)."""
    user = (Attr.USER_NAME, b"alice")
    eap_identity = eap.EapPacket(eap.EapCode.RESPONSE, 1, eap.EapType.IDENTITY, b"alice")
    eap_md5 = eap.EapPacket(eap.EapCode.RESPONSE, 2, eap.EapType.MD5_CHALLENGE, b"\x10" * 17)
    eap_long = eap.EapPacket(eap.EapCode.RESPONSE, 3, 25, bytes(range(256)) * 2)  # PEAP-sized
    built = (
        _req(user, (Attr.USER_PASSWORD, hide_password(b"arctangent", SECRET, AUTH))),
        _req(user, (Attr.CHAP_PASSWORD, b"\x01" + bytes(16)), (Attr.CHAP_CHALLENGE, AUTH)),
        _req(
            user,
            vsa(MICROSOFT, MS_CHAP_CHALLENGE, v.RFC2759_AUTHENTICATOR_CHALLENGE),
            vsa(
                MICROSOFT,
                MS_CHAP2_RESPONSE,
                b"\x01\x00" + v.RFC2759_PEER_CHALLENGE + bytes(8) + v.RFC2759_NT_RESPONSE,
            ),
            (Attr.CALLING_STATION_ID, b"AA-BB-CC-DD-EE-FF"),
        ),
        _req(
            user,
            vsa(MICROSOFT, MS_CHAP_CHALLENGE, v.RFC2433_CHALLENGE),
            vsa(MICROSOFT, MS_CHAP_RESPONSE, b"\x01\x01" + bytes(24) + bytes(24)),
        ),
        _req(user, *eap.eap_attributes(eap_identity)),
        _req(user, *eap.eap_attributes(eap_md5), (Attr.STATE, bytes(38))),
        _req(user, *eap.eap_attributes(eap_long)),
        _req(
            user,
            # Tunnel-Type (64, tagged integer), Tunnel-Password (69, tagged, salt-encrypted),
            # an MS-MPPE-Send-Key (salt-encrypted VSA), a Mikrotik-Rate-Limit VSA, Proxy-State.
            (64, b"\x01\x00\x00\x0d"),
            (69, b"\x01" + salt_encrypt(b"tunnel-pw", SECRET, AUTH, b"\x81\x02")),
            vsa(MICROSOFT, 16, salt_encrypt(bytes(32), SECRET, AUTH, b"\x80\x01")),
            vsa(14988, 8, b"100M/100M"),
            (Attr.PROXY_STATE, b"proxy-1"),
            code=Code.ACCESS_REQUEST,
        ),
        _req((Attr.NAS_IDENTIFIER, b"bng1"), code=Code.STATUS_SERVER),
        _acct(1),
        _acct(
            3,
            (46, struct.pack("!I", 600)),
            (42, struct.pack("!I", 123456)),
            (52, struct.pack("!I", 2)),
            (43, struct.pack("!I", 654321)),
            (53, struct.pack("!I", 1)),
            (55, struct.pack("!I", 1_800_000_000)),
            (87, b"ge-0/0/3.100"),
            vsa(9, 1, b"subscriber:accounting-list=acct"),
        ),
        _acct(2, (49, struct.pack("!I", 1)), (41, struct.pack("!I", 5))),
        _req((40, struct.pack("!I", 7)), code=Code.ACCOUNTING_REQUEST, ma=False),
        _req(
            user,
            (44, b"sess-0001"),
            (Attr.FRAMED_IP_ADDRESS, bytes((100, 64, 0, 7))),
            code=Code.DISCONNECT_REQUEST,
        ),
    )
    captured = (
        v.RFC2865_7_1_ACCESS_REQUEST,
        v.RFC2865_7_1_ACCESS_ACCEPT,
        v.RFC2865_7_2_ACCESS_REQUEST,
        v.RFC2865_7_2_ACCESS_ACCEPT,
        v.RFC2865_7_3_ACCESS_REQUEST_1,
        v.RFC2865_7_3_ACCESS_CHALLENGE,
        v.RFC2865_7_3_ACCESS_REJECT,
        v.RADTEST_PAP_ACCESS_REQUEST,
        v.RADTEST_PAP_ACCESS_ACCEPT,
        v.RADTEST_CHAP_ACCESS_REQUEST,
        v.RADTEST_CHAP_ACCESS_ACCEPT,
        v.RADTEST_MSCHAP_ACCESS_REQUEST,
        v.RADTEST_MSCHAP_ACCESS_ACCEPT,
    )
    return built + captured


@functools.cache
def cwmp_envelopes() -> tuple[bytes, ...]:
    """What CPEs send: an Inform and an answer to each ACS RPC from every data model's
    simulated CPE, faults, transfers, and the codec tests' hand-written envelopes."""
    out: list[bytes] = [b""]
    for path in model_files():
        cpe = Cpe(load_model(path), transfer_pending=["k1"])
        names = [n for n in cpe.tree if not n.endswith(".")][:6]
        obj = next((n for n in cpe.tree if n.endswith(".") and n.count(".") == 3), cpe.root)
        requests = (
            cwmp.get_parameter_values(names),
            cwmp.get_parameter_names(cpe.root + "DeviceInfo.", True),
            cwmp.get_parameter_attributes(names[:2]),
            cwmp.set_parameter_values([cwmp.ParamValue(names[0], "x")], "key"),
            cwmp.add_object(obj, "key"),
            cwmp.download("k2", "1 Firmware Upgrade Image", "http://127.0.0.1/fw.bin"),
            cwmp.reboot("r1"),
        )
        out.append(cpe.inform())
        out.append(cpe.transfer_complete("k1"))
        for body in requests:
            answer = cpe.answer(cwmp.envelope(cpe.ns, "1", body))
            if len(answer) <= 16_384:  # the seeds stay small
                out.append(answer)
    out += [
        getattr(hand, n) for n in dir(hand) if n.isupper() and isinstance(getattr(hand, n), bytes)
    ]
    return tuple(dict.fromkeys(out))


SNMP_V1_TRAP = bytes.fromhex(
    "303a02010004067075626c6963a42d06072b06010401ad734004c0000202020106020111430301004c3011"
    "300f060a2b060102010202010103020103"
)
SNMP_V2C_TRAP = bytes.fromhex(
    "30818502010104067075626c6963a77802044764c042020100020100306a300f06082b0601020101030043"
    "0301004f3017060a2b06010603010104010006092b0601060301010503300f060a2b060102010202010103"
    "0201033016060a2b060102010202010203040867652d302f302f333015060d2b06010201041401010a0000"
    "0140040a000001"
)
SNMP_V2C_INFORM = bytes.fromhex(
    "304502010104067075626c6963a638020459dc30fa020100020100302a300f06082b060102010103004303"
    "0100593017060a2b06010603010104010006092b0601060301010504"
)
SNMP_V3_NOAUTH = bytes.fromhex(
    "30819d020103301102045afff2cc020300ffe304010002010304223020040980001f8880aabbccdd020101"
    "0203010056040774726170706572040004003061041180001f8880f2532f5073a1046b000000000400a74a"
    "0204181fa611020100020100303c300f06082b0601020101030043030100563017060a2b06010603010104"
    "010006092b0601060301010501301006082b0601020101050004046f6c7431"
)
# snmptrap -v3 -u trapper -a SHA -A authpass123 -l authPriv -x AES -X privpass123
#   -e 0x80001f8880aabbccdd ... 1.3.6.1.6.3.1.1.5.5
SNMP_V3_AUTHPRIV = bytes.fromhex(
    "3081a1020103301102041b79afc5020300ffe304010302010304363034040980001f8880aabbccdd020101"
    "0203010053040774726170706572040c5fb3640c1c9fcc504cfcc9c504086008ac5328406c640451bfadbe"
    "5e7ac7059cfa1469ce6311f482bd9d4111b9d40949a7d25136e2e9c950e8f50d97d48f5cf180ccea52038e"
    "335959505e4db69d02555bd2dffeac1b9193fc8c4481ac9a321193163c6bebe964ff2f"
)
SNMP_V3_USER = ("trapper", "authpass123", "privpass123")


def snmp_datagrams() -> tuple[bytes, ...]:
    return (SNMP_V1_TRAP, SNMP_V2C_TRAP, SNMP_V2C_INFORM, SNMP_V3_NOAUTH, SNMP_V3_AUTHPRIV)
