"""The decoders' whole receive paths as plain functions of bytes, shared by the hypothesis
tests (tests/fuzz/) and the atheris targets (fuzz/). Each step either gives its value or
raises its codec's own error, which the path swallows; anything else escapes, and so does
a broken round trip (an AssertionError): both are crashes to the fuzzers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import struct
from dataclasses import asdict
from pathlib import Path

from lxml import etree

from daemons import resources
from daemons.acs import cwmp
from daemons.acs import engine as acs_engine
from daemons.core.policies import load_policies
from daemons.poller import traps
from daemons.poller.client import Credentials
from daemons.poller.trapv3 import V3Receiver
from daemons.radius import acct, eap, mschap
from daemons.radius.auth import (
    MICROSOFT,
    EngineConfig,
    HashCheck,
    Nas,
    Outcome,
    Subscriber,
    authenticate,
    method_of,
    user_name,
)
from daemons.radius.codec import (
    Attr,
    DecodeError,
    Packet,
    check_message_authenticator,
    check_request_authenticator,
    decode,
    encode_reply,
    iter_vsa,
    salt_decrypt,
    unhide_password,
)
from daemons.radius.dictionary import Dictionary
from daemons.radius.policy import load_policy
from tests.fuzz import seeds

REPO = Path(__file__).resolve().parents[2]
DICT = Dictionary()
CFG = EngineConfig(
    DICT, load_policy(load_policies(resources.path("policies"), 1), DICT), b"k" * 32, 30
)
SECRET = seeds.SECRET
NOW = 1_800_000_000.0
NASES = (
    seeds.NAS,
    Nas("fuzz-huawei", ipaddress.ip_network("127.0.0.1/32"), SECRET, "huawei", True),
)
SUBSCRIBERS = (
    None,
    Subscriber("alice", "fiber-100", password=b"arctangent"),
    Subscriber("alice", "default", mac="aa:bb:cc:dd:ee:ff", nt_hash=mschap.md4(b"x")),
    Subscriber("alice", "fiber-1000", state="suspended", password=b"arctangent"),
    Subscriber("alice", "no-such-plan", state="disabled", password=b"arctangent"),
    Subscriber("alice", "default", password_hash="$5$rounds=1000$salt$x"),
)
# A valid EAP-MD5 State for the seeds' EAP response (identifier 2), to reach the MD5 check.
STATE = eap.make_state(CFG.eap_key, eap.Md5State(int(NOW) + 30, 2, bytes(16)), b"alice", "fuzz-nas")


def _rand(n: int) -> bytes:
    return bytes(range(n))


def radius_receive(data: bytes) -> Packet | None:
    """Everything the daemon does with a datagram, in order, the stores left out.
    Returns the packet if it decoded. Only DecodeError may escape a step."""
    try:
        pkt = decode(data)
    except DecodeError:
        return None
    # Round trip: the frame is the header and the attributes, in order, and decodes again.
    body = b"".join(bytes((t, len(v) + 2)) + v for t, v in pkt.attributes)
    assert pkt.raw == struct.pack("!BBH", pkt.code, pkt.identifier, len(pkt.raw)) + (
        pkt.authenticator + body
    )
    assert decode(pkt.raw) == pkt
    for required in (False, True):
        with contextlib.suppress(DecodeError):
            check_message_authenticator(pkt, SECRET, required)
    with contextlib.suppress(DecodeError):
        check_request_authenticator(pkt, SECRET)
    for t, value in pkt.attributes:
        if t == Attr.VENDOR_SPECIFIC:
            for vendor, vtype, sub in iter_vsa(value):
                assert vendor < 2**32 and 0 <= vtype < 256 and len(sub) <= 253 - 6
                if (vendor, vtype) in ((MICROSOFT, 16), (MICROSOFT, 17)):
                    _salted(sub)
        elif t == 69:  # Tunnel-Password: a tag, then the salt-encrypted value
            _salted(value[1:])
    _hidden(pkt)
    _eap(pkt)
    _accounting(pkt)
    _access(pkt)
    return pkt


def _salted(value: bytes) -> None:
    try:
        plain = salt_decrypt(value, SECRET, bytes(16))
    except DecodeError:
        return
    assert len(plain) <= len(value) - 3


def _hidden(pkt: Packet) -> None:
    hidden = pkt.get(Attr.USER_PASSWORD)
    if hidden is None:
        return
    try:
        password = unhide_password(hidden, SECRET, pkt.authenticator)
    except DecodeError:
        return
    assert len(password) <= len(hidden)


def _eap(pkt: Packet) -> None:
    try:
        packet = eap.eap_from_radius(pkt)
    except DecodeError:
        return
    if packet is None:
        assert pkt.get(Attr.EAP_MESSAGE) is None
        return
    joined = b"".join(pkt.get_all(Attr.EAP_MESSAGE))
    if packet.type is not None:  # Success/Failure carry no data: the rest is not kept
        assert packet.encode() == joined  # round trip
    assert b"".join(v for _, v in eap.eap_attributes(packet)) == packet.encode()
    try:
        value = eap.md5_response_value(packet)
        assert len(value) == 16
    except DecodeError:
        pass
    eap.open_state(CFG.eap_key, pkt.get(Attr.STATE) or b"", b"alice", "fuzz-nas", NOW)


def _accounting(pkt: Packet) -> None:
    try:
        record = acct.parse(pkt, "fuzz-nas", DICT, NOW)
    except DecodeError:
        return
    # What the ledger and the spool store: text PostgreSQL accepts (no NUL), JSON.
    row = asdict(record)
    for value in row.values():
        if isinstance(value, str):
            assert "\0" not in value
            value.encode("utf-8")
    doc = json.dumps(record.attributes, default=str)
    assert "\\u0000" not in doc
    json.dumps(row, default=str)
    assert 0 <= record.input_octets < 2**64 and 0 <= record.output_octets < 2**64


def _access(pkt: Packet) -> None:
    try:
        name = user_name(pkt)
    except DecodeError:
        return
    assert name is None or "\0" not in name
    method_of(pkt)
    for i, sub in enumerate(SUBSCRIBERS):
        nas = NASES[i % 2]
        try:
            outcome = authenticate(pkt, nas, sub, i % 3, CFG, NOW, _rand)
            if isinstance(outcome, HashCheck):  # the service verifies the hash, then again
                outcome = authenticate(pkt, nas, sub, 0, CFG, NOW, _rand, hash_ok=True)
        except DecodeError:
            continue
        assert isinstance(outcome, Outcome)
        _reply(pkt, nas, outcome)


def _reply(pkt: Packet, nas: Nas, outcome: Outcome) -> None:
    """What the service sends: the reply attributes encoded, the packet framed and signed.
    A reply that cannot fit is a ValueError the service counts as a drop."""
    attrs = DICT.encode(outcome.attributes, nas.secret, pkt.authenticator, _rand)
    try:
        raw = encode_reply(outcome.code, pkt, [*attrs, *outcome.raw], nas.secret)
    except ValueError:
        return
    reply = decode(raw)
    assert reply.code == outcome.code and reply.identifier == pkt.identifier


# --- CWMP ----------------------------------------------------------------------------------

INT32 = (-(2**31), 2**31 - 1)
_TASKS = {
    "GetParameterValuesResponse": ("getParameterValues", {"names": ["Device.DeviceInfo."]}),
    "GetParameterNamesResponse": ("getParameterNames", {"path": "Device.", "next_level": True}),
    "GetParameterAttributesResponse": ("getParameterAttributes", {"names": ["Device.A"]}),
    "SetParameterValuesResponse": (
        "setParameterValues",
        {"values": [["Device.A", "1", "xsd:int"]]},
    ),
    "SetParameterAttributesResponse": (
        "setParameterAttributes",
        {"attributes": [{"name": "Device.A", "notification": 2}]},
    ),
    "AddObjectResponse": ("addObject", {"name": "Device.IP.Interface."}),
    "DeleteObjectResponse": ("deleteObject", {"name": "Device.IP.Interface.2."}),
    "RebootResponse": ("reboot", {}),
    "FactoryResetResponse": ("factoryReset", {}),
    "DownloadResponse": ("download", {"url": "http://127.0.0.1/fw.bin"}),
    "UploadResponse": ("upload", {"url": "http://127.0.0.1/up"}),
    "ScheduleInformResponse": ("scheduleInform", {"delay": 5}),
}
ACS_CFG = acs_engine.EngineConfig()
_INFORM = cwmp.parse(seeds.hand.INFORM)


def _ints(value: object) -> None:
    """Every integer read from a CPE fits the store's integer columns."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        assert INT32[0] <= value <= INT32[1], value
    elif isinstance(value, dict):
        for v in value.values():
            _ints(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _ints(v)


def cwmp_receive(body: bytes) -> cwmp.Envelope | None:
    """The ACS on one POST body: parse, then the session engine (a new session for an Inform,
    else a session waiting for this very response), and the effects it would record."""
    try:
        env = cwmp.parse(body)
    except cwmp.EnvelopeError as exc:
        assert 8000 <= exc.fault <= 8005
        return None
    _ints(env.args)
    for p in env.args.get("params", []):
        if isinstance(p, cwmp.ParamValue):
            _round_trip(p)
    try:
        if env.method == "Inform":
            session = acs_engine.Session(ACS_CFG, env)
            effects = session.first(env).effects
            session.plan([acs_engine.Task(1, "reboot")], discovered=False)
            step = session.receive(cwmp.Envelope(env.ns, None, False, ""))
        else:
            session = acs_engine.Session(ACS_CFG, _INFORM)
            kind, args = _TASKS.get(env.method, ("reboot", {}))
            session.plan([acs_engine.Task(7, kind, args)], discovered=True)
            session.receive(cwmp.Envelope(env.ns, None, False, ""))  # sends the task's RPC
            step = session.receive(env)
            effects = []
    except acs_engine.SessionError:
        return env
    for e in [*effects, *step.effects]:
        json.dumps(asdict(e), default=str)
        _ints(getattr(e, "code", 0))
        _ints(getattr(e, "fault_code", 0))
    if step.body is not None:
        cwmp.parse(cwmp.envelope(env.ns, "1", step.body))  # what we answer parses
    return env


def _round_trip(p: cwmp.ParamValue) -> None:
    """A value read from a CPE and written back (SetParameterValues) reads the same."""
    xml = cwmp.envelope(cwmp.DEFAULT_NS, "1", cwmp.set_parameter_values([p], "k"))
    root = etree.fromstring(xml)
    rpc = root[1][0] if len(root) > 1 else root[0][0]
    (back,) = cwmp._param_values(rpc)
    assert back == cwmp.ParamValue(p.name.strip(), p.value, back.type)
    assert back.type == p.type or not p.type.startswith("xsd:")


# --- SNMP traps ------------------------------------------------------------------------------

_RECEIVERS: list[V3Receiver] = []


def receivers() -> list[V3Receiver]:
    """v3 receivers knowing the seeds' user, with its keys (authPriv SHA/AES) and without
    (noAuthNoPriv); made once (a passphrase is a megabyte of hashing), and learning at most
    64 sender engines so that the table's limit is reached too."""
    if not _RECEIVERS:
        user, auth_key, priv_key = seeds.SNMP_V3_USER
        _RECEIVERS.extend(
            (
                V3Receiver(
                    [
                        Credentials(
                            "3",
                            user=user,
                            auth="sha",
                            auth_key=auth_key,
                            priv="aes",
                            priv_key=priv_key,
                        )
                    ],
                    max_engines=64,
                ),
                V3Receiver([Credentials("3", user=user)], max_engines=64),
            )
        )
    return _RECEIVERS


def snmp_receive(data: bytes) -> list[traps.Trap]:
    """The trap socket's path: the message version, then v1/v2c decode (TrapError) or the
    v3 receiver (refusals are reasons, not exceptions). Returns the notifications."""
    got: list[traps.Trap] = []
    if traps.message_version(data) == 3:
        for receiver in receivers():
            notifications, replies, refused = receiver.handle(data, ("127.0.0.1", 162))
            assert refused in ("", "malformed", "user", "level", "engines", "usm")
            assert all(isinstance(r, bytes) for r in replies)
            got += notifications
    else:
        try:
            got.append(traps.decode(data))
        except traps.TrapError:
            return []
        if got[0].inform:  # the Response PDU we send back decodes as one of ours
            assert got[0].response is not None
            assert traps.message_version(got[0].response) == traps.message_version(data)
    for trap in got:
        json.dumps(asdict(trap) | {"response": None}, default=str)
        assert isinstance(trap.trap_oid, str) and isinstance(trap.community, str)
    return got
