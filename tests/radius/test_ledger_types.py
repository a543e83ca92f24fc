"""An exact ledger (issue 21): every attribute decoded by its type as FreeRADIUS prints it.

Packets come from independent encoders (radclient with FreeRADIUS's dictionaries, pyrad)
and the same bytes are printed by radclient; netd's decoding (``acct.describe``, what the
ledger keeps in ``accounting_events.attributes``) must say the same. The codec side: what
netd sends (encrypt=3, tagged integers, NAS-Filter-Rule, empty values, long values) is
checked against radclient's reading of it.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

import pytest
from pyrad.dictionary import Dictionary as PyradDictionary
from pyrad.packet import AcctPacket

from daemons.radius import acct, codec
from daemons.radius.codec import Code
from daemons.radius.dictionary import SHIPPED, Dictionary, ReplyAttr
from tests.radius import freeradius_print as fr

FREERADIUS = Path("/usr/share/freeradius")
pytestmark = pytest.mark.skipif(not fr.available(), reason="needs radclient (freeradius-utils)")


@pytest.fixture(scope="module")
def with_fr() -> Dictionary:
    return Dictionary([FREERADIUS])


def _fr_value(text: str) -> Any:
    """radclient's printed value as the ledger keeps it: text unquoted, numbers as numbers,
    dates as ISO 8601 UTC."""
    if text.startswith('"') and text.endswith('"'):
        inner = text[1:-1]
        try:
            when = datetime.datetime.strptime(inner, "%b %d %Y %H:%M:%S UTC")
        except ValueError:
            return inner.replace('\\"', '"')
        return when.replace(tzinfo=datetime.UTC).isoformat().replace("+00:00", "Z")
    return int(text) if text.isdigit() else text


def _printed(lines: list[tuple[str, str]], skip: tuple[str, ...] = ()) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for printed_name, value in lines:
        name = printed_name
        if name == "Tunnel-Client-Endpoint":  # radclient prints what it was given when it
            name += ":0"  # sends; its decoding (the reply test) prints the tag 0
        if name not in ("Message-Authenticator", *skip):
            out.setdefault(name, []).append(_fr_value(value))
    return out


def _ours(attributes: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: v if isinstance(v, list) else [v] for k, v in attributes.items()}


def _describe(raw: bytes, d: Dictionary) -> dict[str, list[Any]]:
    return _ours(acct.describe(codec.decode(raw), d))


REQUEST = "\n".join(
    [
        'User-Name = "carol"',
        "Acct-Status-Type = Start",
        'Acct-Session-Id = "s-1"',
        'NAS-Port-Id = "olt1/1/1"',
        "NAS-Port-Type = Ethernet",
        "Tunnel-Type:1 = L2TP",
        "Tunnel-Medium-Type:1 = IPv4",
        'Tunnel-Server-Endpoint:2 = "10.0.0.1"',
        'Tunnel-Client-Endpoint = "10.0.0.9"',
        "Framed-IP-Address = 100.64.0.7",
        "Framed-IPv6-Prefix = 2001:db8:1:2::/64",
        "Delegated-IPv6-Prefix = 2001:db8:2:ab00::/56",
        "Framed-IPv6-Address = 2001:db8:1:2::5",
        "Framed-Interface-Id = 0:0:0:1",
        'Event-Timestamp = "Jan 15 2027 08:00:00 UTC"',
        "Acct-Input-Octets-64 = 12345678901234",
        "ALU-AAA-Address-0 = 2001:db8::9",
        "Response-Length = 4096",
        'NAS-Filter-Rule = "permit in ip from any to any"',
        'NAS-Filter-Rule = "deny in ip from any to 10.0.0.0/8"',
        "EAP-Message = 0x" + "ab" * 300,
        "FreeRADIUS-802.1X-Anonce = 0x" + "cd" * 300,
        "Acct-Delay-Time = 0",
    ]
)


def test_request_built_by_radclient_decodes_as_radclient_prints_it(with_fr: Dictionary) -> None:
    """Tagged values keep their tag apart (Tunnel-Type:1 = L2TP, not 16777219; no tag byte
    in a string); prefixes, interface ids, dates, integer64, combo-ip, extended and
    long-extended (fragments joined) attributes, concat attributes and NAS-Filter-Rule
    (RFC 4849: NUL-separated, joined) all read as radclient prints them."""
    ex = fr.exchange("acct", REQUEST, Code.ACCOUNTING_RESPONSE)
    assert ex.sent, ex.output
    assert _describe(ex.sent, with_fr) == _printed(ex.sent_printed)


def test_request_decodes_the_same_with_netd_dictionaries_alone() -> None:
    """Without any loaded dictionary the standard attributes read the same way."""
    ex = fr.exchange("acct", REQUEST, Code.ACCOUNTING_RESPONSE)
    ours = _describe(ex.sent, Dictionary())
    printed = _printed(ex.sent_printed)
    for name in (
        "Tunnel-Type:1",
        "Tunnel-Medium-Type:1",
        "Tunnel-Server-Endpoint:2",
        "Tunnel-Client-Endpoint:0",
        "Framed-IPv6-Prefix",
        "Delegated-IPv6-Prefix",
        "Framed-IPv6-Address",
        "Framed-Interface-Id",
        "Event-Timestamp",
        "NAS-Filter-Rule",
        "EAP-Message",
        "Acct-Status-Type",
        "NAS-Port-Type",
    ):
        assert ours[name] == printed[name], name


REPLY = [
    (64, bytes([1, 0, 0, 3])),  # Tunnel-Type:1 = L2TP
    (64, bytes([0, 0, 0, 3])),  # Tunnel-Type:0 = L2TP
    (67, b"\x0110.0.0.1"),  # Tunnel-Server-Endpoint:1
    (67, b"10.0.0.2"),  # Tunnel-Server-Endpoint without a tag byte: :0
    (97, bytes([0, 64]) + bytes.fromhex("20010db800010002")),  # prefix octets trimmed
    (123, bytes([0, 56]) + bytes.fromhex("20010db80002ab")),
    (96, bytes.fromhex("0000000000000001")),
    (55, (1_800_000_000).to_bytes(4, "big")),
    (168, bytes(15) + b"\x05"),
    (241, bytes([1]) + b"abc"),  # unknown extended: Attr-241.1
    (245, bytes([1, 0x80]) + b"x" * 10),  # long-extended, More flag: joined
    (245, bytes([1, 0]) + b"y" * 5),
    (92, b"permit in ip\0deny in ip"),  # RFC 4849: one value, NUL-separated, continued
    (92, b"x"),
    (1, b""),  # an empty attribute: neither printed nor kept
    (26, (311).to_bytes(4, "big") + bytes([7, 6]) + (1).to_bytes(4, "big")),
    (241, bytes([26]) + (9).to_bytes(4, "big") + bytes([1]) + b"evs"),
    (200, b"\x01\x02"),
    (26, (65000).to_bytes(4, "big") + bytes([250, 4]) + b"\x00\x01"),  # Attr-26.65000.250
]


def test_reply_bytes_decode_as_radclient_prints_them(with_fr: Dictionary) -> None:
    ex = fr.exchange("auth", 'User-Name = "bob"\nUser-Password = "x"', Code.ACCESS_ACCEPT, REPLY)
    assert ex.received_printed, ex.output
    reply = codec.encode_reply(Code.ACCESS_ACCEPT, codec.decode(ex.sent), REPLY, fr.SECRET)
    assert _describe(reply, with_fr) == _printed(ex.received_printed)


def test_packet_built_by_pyrad_decodes_as_radclient_prints_it(with_fr: Dictionary) -> None:
    """pyrad, a third encoder: its tagged and IPv6 attributes, relayed to radclient."""
    pkt = AcctPacket(secret=fr.SECRET, dict=PyradDictionary(str(SHIPPED)))
    pkt["User-Name"] = "dave"
    pkt["Framed-IPv6-Prefix"] = "2001:db8:7::/48"
    pkt["Delegated-IPv6-Prefix"] = "2001:db8:8:100::/56"
    pkt["Tunnel-Type:3"] = "VLAN"
    pkt["Tunnel-Private-Group-Id:3"] = "101"
    pkt["Acct-Status-Type"] = "Interim-Update"
    raw = pkt.RequestPacket()
    attrs = codec.decode(raw).attributes
    ex = fr.exchange("auth", 'User-Name = "x"', Code.ACCESS_ACCEPT, attrs)
    printed = _printed(ex.received_printed)
    reply = codec.encode_reply(Code.ACCESS_ACCEPT, codec.decode(ex.sent), attrs, fr.SECRET)
    assert _describe(reply, with_fr) == printed
    assert printed["Tunnel-Type:3"] == ["VLAN"]
    assert printed["Delegated-IPv6-Prefix"] == ["2001:db8:8:100::/56"]


def test_freeradius_tree_cannot_rename_standard_numbers(caplog: pytest.LogCaptureFixture) -> None:
    """FreeRADIUS's dictionary.ascend.illegal names standard numbers X-Ascend-*: netd's
    names win, the file is refused with a warning naming it."""
    with caplog.at_level(logging.WARNING, logger="netd.radius"):
        d = Dictionary([FREERADIUS])
    assert d.by_code(0, 168).name == "Framed-IPv6-Address"  # type: ignore[union-attr]
    assert d.by_code(0, 169).name == "DNS-Server-IPv6-Address"  # type: ignore[union-attr]
    for n in range(1, 7):
        kind = "long-extended" if n > 4 else "extended"
        ext = d.by_code(0, 240 + n)
        assert ext is not None and (ext.name, ext.type) == (f"Extended-Attribute-{n}", kind)
    assert "X-Ascend-Bridge-Address" not in d
    assert "Ascend-Send-Secret" in d  # dictionary.ascend itself loads
    refused = [r for r in caplog.records if "dictionary.ascend.illegal" in str(r.__dict__)]
    assert refused, [r.getMessage() for r in caplog.records]


def test_loaded_dictionary_cannot_move_a_netd_name(tmp_path: Path) -> None:
    """A loaded file giving a netd name another number, or a netd number another name,
    changes nothing netd decodes or encodes."""
    bad = tmp_path / "dictionary.bad"
    bad.write_text(
        "ATTRIBUTE\tFramed-IPv6-Prefix\t200\toctets\nATTRIBUTE\tMy-Name\t97\tstring\n"
        "ATTRIBUTE\tMy-Fine\t230\tstring\n"
    )
    d = Dictionary([bad])
    assert (d["Framed-IPv6-Prefix"].code, d["Framed-IPv6-Prefix"].type) == (97, "ipv6prefix")
    assert d.by_code(0, 97).name == "Framed-IPv6-Prefix"  # type: ignore[union-attr]
    assert "My-Fine" not in d  # the whole file is refused


def test_ascend_send_secret_is_encrypted_as_radclient_does(with_fr: Dictionary) -> None:
    """encrypt=3 (Ascend-Send-Secret): radclient's encoding of a request is the reference;
    netd's encoding with the same authenticator gives the same octets, never cleartext."""
    ex = fr.exchange(
        "auth", 'User-Name = "x"\nAscend-Send-Secret = "topsecret"', Code.ACCESS_REJECT
    )
    sent = codec.decode(ex.sent)
    theirs = [v for t, v in sent.attributes if t == 26 and v[:4] == (529).to_bytes(4, "big")]
    assert theirs, ex.output
    ours = with_fr.encode(
        [ReplyAttr("Ascend-Send-Secret", "topsecret")], fr.SECRET, sent.authenticator, bytes
    )
    assert ours == [(26, theirs[0])]
    assert b"topsecret" not in theirs[0]


def test_tagged_integer_keeps_its_value_or_is_refused() -> None:
    d = Dictionary()
    ok = d.encode([ReplyAttr("Tunnel-Type", 0xFFFFFF, tag=2)], b"s", bytes(16), bytes)
    assert ok == [(64, bytes([2, 0xFF, 0xFF, 0xFF]))]
    with pytest.raises(ValueError, match="Tunnel-Type"):
        d.encode([ReplyAttr("Tunnel-Type", 0x1000003, tag=1)], b"s", bytes(16), bytes)


def test_nas_filter_rules_are_one_nul_joined_value(with_fr: Dictionary) -> None:
    """RFC 4849 §2: several rules are one value, NUL-separated, split over attributes."""
    rules = [f"permit in ip from any to 10.{i}.0.0/16" for i in range(12)]
    wire = Dictionary().encode(
        [ReplyAttr("NAS-Filter-Rule", r) for r in rules], b"s", bytes(16), bytes
    )
    assert [t for t, _ in wire] == [92, 92]
    assert b"".join(v for _, v in wire) == "\0".join(rules).encode()
    ex = fr.exchange("auth", 'User-Name = "x"', Code.ACCESS_ACCEPT, wire)
    assert _printed(ex.received_printed)["NAS-Filter-Rule"] == rules


def test_empty_attributes_are_neither_sent_nor_kept() -> None:
    d = Dictionary()
    assert (
        d.encode([ReplyAttr("Filter-Id", ""), ReplyAttr("Class", b"")], b"s", bytes(16), bytes)
        == []
    )
    raw = codec.encode_request(Code.ACCOUNTING_REQUEST, 1, [(1, b""), (40, bytes(4))], b"s")
    assert "User-Name" not in acct.describe(codec.decode(raw), d)


def test_long_values_are_split_where_the_type_allows(with_fr: Dictionary) -> None:
    """concat attributes (EAP-Message) split over several; other types still refused."""
    d = Dictionary()
    wire = d.encode([ReplyAttr("EAP-Message", b"\xab" * 600)], b"s", bytes(16), bytes)
    assert [len(v) for _, v in wire] == [253, 253, 94]
    with pytest.raises(ValueError, match="253"):
        d.encode([ReplyAttr("Reply-Message", "x" * 300)], b"s", bytes(16), bytes)
    ex = fr.exchange("auth", 'User-Name = "x"', Code.ACCESS_ACCEPT, wire)
    (printed,) = _printed(ex.received_printed)["EAP-Message"]
    # radclient cuts a printed line near 1 KiB: joined past what two attributes hold
    assert len(printed) > 2 + 2 * 253 and ("0x" + "ab" * 600).startswith(printed)
