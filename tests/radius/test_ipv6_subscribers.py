"""IPv6 subscribers (issue 21; RFC 3162, 4818, 6911): what the engine answers, per plan
stack and vendor dialect, and what the wire carries (radclient reads it back)."""

from __future__ import annotations

import ipaddress
import os

from daemons import resources
from daemons.core.policies import load_policies
from daemons.radius import codec
from daemons.radius.auth import EngineConfig, Nas, Outcome, Subscriber, authenticate
from daemons.radius.codec import Attr, Code, decode, encode_request, hide_password
from daemons.radius.dictionary import Dictionary
from daemons.radius.policy import load_policy
from tests.radius import freeradius_print as fr

DICT = Dictionary()
POLICY = load_policy(load_policies(resources.path("policies"), 1), DICT)
CFG = EngineConfig(DICT, POLICY, eap_key=b"k" * 32)
SECRET = fr.SECRET
AUTH = bytes(range(16))
NET = ipaddress.ip_network("127.0.0.1/32")
GENERIC = Nas("olt-bng", NET, SECRET, "generic", False)
JUNIPER = Nas("mx", NET, SECRET, "juniper", False)
HUAWEI = Nas("me60", NET, SECRET, "huawei", False)
MIKROTIK = Nas("ccr", NET, SECRET, "mikrotik", False)

CAROL = Subscriber(
    "carol",
    plan="fiber-100-dual",
    password=b"pw",
    framed_ip="100.64.0.7",
    framed_ipv6_address="2001:db8:1:2::5",
    framed_ipv6_prefix="2001:db8:1:2::/64",
    delegated_ipv6_prefix="2001:db8:2:ab00::/56",
)


def _accept(sub: Subscriber, nas: Nas = GENERIC) -> Outcome:
    req = decode(
        encode_request(
            Code.ACCESS_REQUEST,
            1,
            [
                (Attr.USER_NAME, sub.username.encode()),
                (Attr.USER_PASSWORD, hide_password(b"pw", SECRET, AUTH)),
            ],
            SECRET,
            AUTH,
            message_auth=False,
        )
    )
    out = authenticate(req, nas, sub, 0, CFG, 0.0, os.urandom)
    assert isinstance(out, Outcome) and out.code == Code.ACCESS_ACCEPT, out
    return out


def _attrs(out: Outcome) -> dict[str, object]:
    return {a.name: a.value for a in out.attributes}


def test_static_ipv6_addressing_wins_over_the_plan_pools() -> None:
    attrs = _attrs(_accept(CAROL))
    assert attrs["Framed-IP-Address"] == "100.64.0.7" and "Framed-Pool" not in attrs
    assert attrs["Framed-IPv6-Address"] == "2001:db8:1:2::5"
    assert attrs["Framed-IPv6-Prefix"] == "2001:db8:1:2::/64"
    assert attrs["Delegated-IPv6-Prefix"] == "2001:db8:2:ab00::/56"
    assert "Framed-IPv6-Pool" not in attrs and "Delegated-IPv6-Prefix-Pool" not in attrs


def test_plans_give_ipv4_ipv6_or_both() -> None:
    pools = Subscriber("d", plan="fiber-100-dual", password=b"pw")
    dual = _attrs(_accept(pools))
    assert dual["Framed-Pool"] == "fiber"
    assert dual["Framed-IPv6-Pool"] == "fiber-wan6"
    assert dual["Delegated-IPv6-Prefix-Pool"] == "fiber-pd6"
    v6 = _attrs(
        _accept(Subscriber("e", plan="fiber-100-v6", password=b"pw", framed_ip="100.64.0.8"))
    )
    assert "Framed-IP-Address" not in v6 and "Framed-Pool" not in v6
    assert v6["Delegated-IPv6-Prefix-Pool"] == "fiber-pd6"
    v4 = _attrs(_accept(Subscriber("f", plan="fiber-100", password=b"pw", delegated_ipv6_pool="x")))
    assert v4["Framed-Pool"] == "fiber" and v4["Delegated-IPv6-Prefix-Pool"] == "x"


def test_vendor_dialects_spell_ipv6_their_way() -> None:
    pools = Subscriber("d", plan="fiber-100-dual", password=b"pw")
    junos = _attrs(_accept(pools, JUNIPER))
    assert junos["ERX-IPv6-NdRa-Pool-Name"] == "fiber-wan6"
    assert junos["ERX-IPv6-Delegated-Pool-Name"] == "fiber-pd6"
    assert "Delegated-IPv6-Prefix-Pool" not in junos
    assert _attrs(_accept(pools, MIKROTIK))["Mikrotik-Delegated-IPv6-Pool"] == "fiber-pd6"
    huawei = _attrs(_accept(CAROL, HUAWEI))
    assert huawei["Huawei-Framed-IPv6-Address"] == "2001:db8:1:2::5"
    assert huawei["Framed-IPv6-Prefix"] == "2001:db8:1:2::/64"  # standard where it has none


def test_the_reply_reads_back_in_radclient() -> None:
    """The encoded Access-Accept, read by radclient (FreeRADIUS's dictionaries)."""
    out = _accept(CAROL)
    ex = fr.exchange("auth", 'User-Name = "carol"', Code.ACCESS_ACCEPT, [])
    wire = DICT.encode(out.attributes, SECRET, codec.decode(ex.sent).authenticator, os.urandom)
    ex = fr.exchange("auth", 'User-Name = "carol"', Code.ACCESS_ACCEPT, wire)
    printed = dict(ex.received_printed)
    assert printed["Framed-IPv6-Prefix"] == "2001:db8:1:2::/64", ex.output
    assert printed["Delegated-IPv6-Prefix"] == "2001:db8:2:ab00::/56"
    assert printed["Framed-IPv6-Address"] == "2001:db8:1:2::5"
    assert printed["Framed-IP-Address"] == "100.64.0.7"
