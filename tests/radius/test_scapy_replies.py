"""Every reply we build decodes cleanly in scapy's RADIUS layer (an independent decoder),
for hypothesis-generated subscribers, plans and NAS vendors."""

from __future__ import annotations

import ipaddress
import os
import struct
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scapy.layers.radius import Radius

from daemons import resources
from daemons.core.policies import PolicyError, PolicySet
from daemons.radius.auth import EngineConfig, Nas, Outcome, Subscriber, authenticate
from daemons.radius.codec import (
    Attr,
    Code,
    check_response_authenticator,
    decode,
    encode_reply,
    encode_request,
    hide_password,
    iter_vsa,
)
from daemons.radius.dictionary import Dictionary
from daemons.radius.policy import load_policy

DICT = Dictionary()
VENDORS = ["mikrotik", "cisco", "juniper", "huawei", "nokia", "ericsson", "wispr", "generic"]
SECRET = b"scapy-secret"

rates = st.sampled_from(["512k", "1M", "20M", "100M", "1G", "2.5G"])
names = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
plans = st.fixed_dictionaries(
    {"download": rates, "upload": rates},
    optional={
        "session_timeout": st.integers(1, 2**31),
        "idle_timeout": st.integers(1, 86400),
        "interim_interval": st.integers(60, 3600),
        "framed_pool": names,
        "filter_id": names,
        "class": names,
        "reply_message": st.text(min_size=1, max_size=120),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=plans,
    vendor=st.sampled_from(VENDORS),
    user=names,
    password=st.binary(min_size=1, max_size=128).filter(lambda b: not b.endswith(b"\0")),
    ident=st.integers(0, 255),
    static_ip=st.none() | st.ip_addresses(v=4).map(str),
    state=st.sampled_from(["active", "disabled"]),
)
def test_replies_decode_in_scapy(
    plan: dict[str, object],
    vendor: str,
    user: str,
    password: bytes,
    ident: int,
    static_ip: str | None,
    state: str,
) -> None:
    try:
        policy = load_policy(
            PolicySet(
                Path("."), 1, {"radius/p.toml": {"plans": {"p": plan}, "vendors": _vendor_tables()}}
            ),
            DICT,
        )
    except PolicyError:
        # a value its attribute cannot carry (a Class "0x..." that is not whole hex) is refused
        # at load (test_engine.py); no reply to check
        assume(False)
        return
    cfg = EngineConfig(DICT, policy, b"k" * 32)
    nas = Nas("n", ipaddress.ip_network("127.0.0.1/32"), SECRET, vendor, False)
    auth = os.urandom(16)
    req = decode(
        encode_request(
            Code.ACCESS_REQUEST,
            ident,
            [
                (Attr.USER_NAME, user.encode()),
                (Attr.USER_PASSWORD, hide_password(password, SECRET, auth)),
                (Attr.PROXY_STATE, b"proxy-1"),
            ],
            SECRET,
            auth,
        )
    )
    sub = Subscriber(user, plan="p", state=state, password=password, framed_ip=static_ip)
    out = authenticate(req, nas, sub, 0, cfg, 0.0, os.urandom)
    assert isinstance(out, Outcome)
    wire = DICT.encode(out.attributes, SECRET, auth, os.urandom) + list(out.raw)
    raw = encode_reply(out.code, req, wire, SECRET)

    pkt = Radius(raw)
    assert pkt.code == out.code and pkt.id == ident and pkt.len == len(raw)
    assert bytes(pkt.authenticator) == raw[4:20]
    assert check_response_authenticator(raw, auth, SECRET)
    assert pkt.payload.__class__.__name__ == "NoPayload"  # nothing left over
    ours = decode(raw).attributes
    theirs = pkt.attributes
    assert len(theirs) == len(ours)
    assert theirs[0].type == Attr.MESSAGE_AUTHENTICATOR
    for (atype, value), attr in zip(ours, theirs, strict=True):
        assert attr.type == atype and attr.len == len(value) + 2
        if atype == Attr.VENDOR_SPECIFIC:
            vendor_id, vtype, vvalue = next(iter_vsa(value))
            assert (attr.vendor_id, attr.vendor_type, attr.value) == (vendor_id, vtype, vvalue)
        elif atype in (Attr.SESSION_TIMEOUT, 28, 85):
            assert attr.value == struct.unpack("!I", value)[0]
        elif atype == Attr.FRAMED_IP_ADDRESS:
            assert attr.value == static_ip
        else:
            assert bytes(attr.value) == value
    if out.code == Code.ACCESS_ACCEPT:
        assert state == "active"
    else:
        assert out.reason == "disabled"


def _vendor_tables() -> dict[str, object]:
    path = resources.path("policies") / "radius" / "vendors.toml"
    return dict(tomllib.loads(path.read_text())["vendors"])
