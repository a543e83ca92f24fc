"""The RADIUS dictionaries in config/dictionaries.

They must load in pyrad without skipped attributes, define the attributes the daemons rely
on with the right numbers, types and flags, contain no duplicate codes, and agree with
FreeRADIUS's dictionaries (an independent source) wherever both define an attribute.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyrad import packet
from pyrad.dictionary import Dictionary, ParseError

from daemons import resources

REPO_ROOT = Path(__file__).resolve().parents[2]
DICT_DIR = resources.path("dictionaries")
TOP = DICT_DIR / "dictionary"
FREERADIUS_DIR = Path("/usr/share/freeradius")

VENDORS = {
    "Microsoft": 311,
    "Cisco": 9,
    "Juniper": 2636,
    "ERX": 4874,
    "Mikrotik": 14988,
    "Huawei": 2011,
    "Alcatel-Lucent-AAA": 6527,
    "Redback": 2352,
    "WISPr": 14122,
}

# The attributes the daemons use: name -> (vendor name, code, type).
EXPECTED = {
    "User-Name": ("", 1, "string"),
    "User-Password": ("", 2, "string"),
    "CHAP-Password": ("", 3, "octets"),
    "NAS-IP-Address": ("", 4, "ipaddr"),
    "NAS-Port": ("", 5, "integer"),
    "Service-Type": ("", 6, "integer"),
    "Framed-Protocol": ("", 7, "integer"),
    "Framed-IP-Address": ("", 8, "ipaddr"),
    "Filter-Id": ("", 11, "string"),
    "Reply-Message": ("", 18, "string"),
    "State": ("", 24, "octets"),
    "Class": ("", 25, "octets"),
    "Session-Timeout": ("", 27, "integer"),
    "Idle-Timeout": ("", 28, "integer"),
    "Called-Station-Id": ("", 30, "string"),
    "Calling-Station-Id": ("", 31, "string"),
    "NAS-Identifier": ("", 32, "string"),
    "Proxy-State": ("", 33, "octets"),
    "Acct-Status-Type": ("", 40, "integer"),
    "Acct-Delay-Time": ("", 41, "integer"),
    "Acct-Input-Octets": ("", 42, "integer"),
    "Acct-Output-Octets": ("", 43, "integer"),
    "Acct-Session-Id": ("", 44, "string"),
    "Acct-Session-Time": ("", 46, "integer"),
    "Acct-Input-Packets": ("", 47, "integer"),
    "Acct-Output-Packets": ("", 48, "integer"),
    "Acct-Terminate-Cause": ("", 49, "integer"),
    "Acct-Input-Gigawords": ("", 52, "integer"),
    "Acct-Output-Gigawords": ("", 53, "integer"),
    "Event-Timestamp": ("", 55, "date"),
    "CHAP-Challenge": ("", 60, "octets"),
    "NAS-Port-Type": ("", 61, "integer"),
    "Tunnel-Type": ("", 64, "integer"),
    "Tunnel-Password": ("", 69, "string"),
    "EAP-Message": ("", 79, "octets"),
    "Message-Authenticator": ("", 80, "octets"),
    "Acct-Interim-Interval": ("", 85, "integer"),
    "NAS-Port-Id": ("", 87, "string"),
    "Framed-Pool": ("", 88, "string"),
    "NAS-IPv6-Address": ("", 95, "ipv6addr"),
    "Framed-IPv6-Prefix": ("", 97, "ipv6prefix"),
    "Error-Cause": ("", 101, "integer"),
    "Delegated-IPv6-Prefix": ("", 123, "ipv6prefix"),
    "MS-CHAP-Response": ("Microsoft", 1, "octets"),
    "MS-CHAP-Error": ("Microsoft", 2, "string"),
    "MS-MPPE-Encryption-Policy": ("Microsoft", 7, "integer"),
    "MS-MPPE-Encryption-Types": ("Microsoft", 8, "integer"),
    "MS-CHAP-Challenge": ("Microsoft", 11, "octets"),
    "MS-CHAP-MPPE-Keys": ("Microsoft", 12, "octets"),
    "MS-MPPE-Send-Key": ("Microsoft", 16, "octets"),
    "MS-MPPE-Recv-Key": ("Microsoft", 17, "octets"),
    "MS-CHAP2-Response": ("Microsoft", 25, "octets"),
    "MS-CHAP2-Success": ("Microsoft", 26, "octets"),
    "Cisco-AVPair": ("Cisco", 1, "string"),
    "ERX-Address-Pool-Name": ("ERX", 2, "string"),
    "ERX-Qos-Profile-Name": ("ERX", 26, "string"),
    "Mikrotik-Rate-Limit": ("Mikrotik", 8, "string"),
    "Huawei-Input-Average-Rate": ("Huawei", 2, "integer"),
    "Huawei-Output-Average-Rate": ("Huawei", 5, "integer"),
    "Alc-Subsc-Prof-Str": ("Alcatel-Lucent-AAA", 12, "string"),
    "Alc-SLA-Prof-Str": ("Alcatel-Lucent-AAA", 13, "string"),
    "WISPr-Bandwidth-Max-Up": ("WISPr", 7, "integer"),
    "WISPr-Bandwidth-Max-Down": ("WISPr", 8, "integer"),
}

# (encrypt, has_tag) where it is not (0, False).
FLAGS = {
    "User-Password": (1, False),
    "Tunnel-Type": (0, True),
    "Tunnel-Password": (2, True),
    "MS-CHAP-MPPE-Keys": (1, False),
    "MS-MPPE-Send-Key": (2, False),
    "MS-MPPE-Recv-Key": (2, False),
}

# Numbers worth pinning down on their own: name -> (vendor ID, code).
WELL_KNOWN_CODES = {
    "Vendor-Specific": (0, 26),
    "CHAP-Challenge": (0, 60),
    "Tunnel-Medium-Type": (0, 65),
    "Tunnel-Private-Group-Id": (0, 81),
    "Acct-Tunnel-Connection": (0, 68),
    "EAP-Message": (0, 79),
    "Message-Authenticator": (0, 80),
    "Acct-Interim-Interval": (0, 85),
    "Framed-Interface-Id": (0, 96),
    "Error-Cause": (0, 101),
    "Delegated-IPv6-Prefix": (0, 123),
    "Operator-Name": (0, 126),
    "Requested-Location-Info": (0, 132),
    "MS-CHAP2-Success": (311, 26),
    "MS-Primary-DNS-Server": (311, 28),
    "Cisco-AVPair": (9, 1),
    "Cisco-Disconnect-Cause": (9, 195),
    "Cisco-Account-Info": (9, 250),
    "Cisco-Command-Code": (9, 252),
    "Juniper-Local-User-Name": (2636, 1),
    "ERX-Qos-Profile-Name": (4874, 26),
    "ERX-Service-Activate": (4874, 65),
    "ERX-Service-Statistics": (4874, 69),
    "Mikrotik-Rate-Limit": (14988, 8),
    "Mikrotik-Address-List": (14988, 19),
    "Huawei-Input-Average-Rate": (2011, 2),
    "Huawei-Output-Peak-Rate": (2011, 6),
    "Alc-Subsc-ID-Str": (6527, 11),
    "Alc-SLA-Prof-Str": (6527, 13),
    "Timetra-Profile": (6527, 4),
    "Context-Name": (2352, 4),
    "Qos-Policing-Profile-Name": (2352, 87),
    "WISPr-Location-ID": (14122, 1),
    "WISPr-Bandwidth-Max-Down": (14122, 8),
    "WISPr-Billing-Class-Of-Service": (14122, 11),
}

# Named values worth pinning down: (attribute, value name) -> number.
WELL_KNOWN_VALUES = {
    ("Service-Type", "Framed-User"): 2,
    ("Service-Type", "Authorize-Only"): 17,
    ("Framed-Protocol", "PPP"): 1,
    ("NAS-Port-Type", "Virtual"): 5,
    ("NAS-Port-Type", "Ethernet"): 15,
    ("NAS-Port-Type", "Wireless-802.11"): 19,
    ("NAS-Port-Type", "PPPoEoVLAN"): 33,
    ("Acct-Status-Type", "Start"): 1,
    ("Acct-Status-Type", "Stop"): 2,
    ("Acct-Status-Type", "Interim-Update"): 3,
    ("Acct-Status-Type", "Accounting-On"): 7,
    ("Acct-Status-Type", "Accounting-Off"): 8,
    ("Acct-Status-Type", "Tunnel-Link-Reject"): 14,
    ("Acct-Terminate-Cause", "User-Request"): 1,
    ("Acct-Terminate-Cause", "Idle-Timeout"): 4,
    ("Acct-Terminate-Cause", "Session-Timeout"): 5,
    ("Acct-Terminate-Cause", "Admin-Reset"): 6,
    ("Acct-Terminate-Cause", "NAS-Request"): 10,
    ("Acct-Terminate-Cause", "Host-Request"): 18,
    ("Tunnel-Type", "L2TP"): 3,
    ("Tunnel-Type", "VLAN"): 13,
    ("Tunnel-Medium-Type", "IEEE-802"): 6,
    ("Error-Cause", "Residual-Session-Context-Removed"): 201,
    ("Error-Cause", "Unsupported-Attribute"): 401,
    ("Error-Cause", "Invalid-Request"): 404,
    ("Error-Cause", "Session-Context-Not-Found"): 503,
    ("Error-Cause", "Session-Context-Not-Removable"): 504,
    ("MS-MPPE-Encryption-Policy", "Encryption-Required"): 2,
    ("MS-MPPE-Encryption-Types", "RC4-128bit-Allowed"): 4,
}

# Deliberate departures from FreeRADIUS's dictionaries, with the reason.
KNOWN_TYPE_DIFFERENCES = {
    # RFC 2865 section 5.23: a 4-octet IPX network number, not an IPv4 address.
    "Framed-IPX-Network",
}
KNOWN_FLAG_DIFFERENCES = {
    # FreeRADIUS tags this Redback integer; the SmartEdge documentation does not.
    "Tunnel-Hello-Timer",
}
KNOWN_VALUE_DIFFERENCES = {
    # RFC 2548 section 2.4.5: bit 0x2 allows 40-bit and bit 0x4 128-bit RC4 keys.
    ("MS-MPPE-Encryption-Types", "RC4-40bit-Allowed"),
    ("MS-MPPE-Encryption-Types", "RC4-128bit-Allowed"),
}


def load_ours() -> Dictionary:
    return Dictionary(str(TOP))


def vendor_id(d: Dictionary, name: str) -> int:
    return d.vendors.GetForward(name)


def key(d: Dictionary, name: str) -> tuple[int, int]:
    attr = d[name]
    return (vendor_id(d, attr.vendor), attr.code)


def value_of(d: Dictionary, attribute: str, value_name: str) -> int:
    return int.from_bytes(d[attribute].values.GetForward(value_name), "big")


@dataclass(frozen=True)
class Definition:
    file: str
    line: int
    kind: str  # "ATTRIBUTE" or "VALUE"
    vendor: int
    tokens: tuple[str, ...]


def scan(path: Path, vendors: dict[str, int], out: list[Definition]) -> list[Path]:
    """Read path and its $INCLUDEs as text; collect the definitions, return the files read."""
    files = [path]
    current = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        tokens = raw.split("#", 1)[0].split()
        if not tokens:
            continue
        keyword = tokens[0].upper()
        if keyword == "$INCLUDE":
            files += scan(path.parent / tokens[1], vendors, out)
        elif keyword == "VENDOR":
            vendors[tokens[1]] = int(tokens[2], 0)
        elif keyword == "BEGIN-VENDOR":
            current = vendors[tokens[1]]
        elif keyword == "END-VENDOR":
            current = 0
        elif keyword in ("ATTRIBUTE", "VALUE"):
            vendor = current
            if keyword == "ATTRIBUTE" and len(tokens) == 5 and tokens[4] in vendors:
                vendor = vendors[tokens[4]]
            out.append(Definition(path.name, number, keyword, vendor, tuple(tokens[1:])))
        else:
            pytest.fail(f"{path.name}:{number}: unexpected keyword {tokens[0]}")
    return files


def scan_ours() -> tuple[list[Definition], list[Path]]:
    definitions: list[Definition] = []
    files = scan(TOP, {}, definitions)
    return definitions, files


# --- our dictionaries on their own ---


def test_loads_without_skipped_attributes_or_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pyrad")
    d = load_ours()
    # pyrad cannot read RFC 6929's extended types; netd's own reader (dictfile.py) does
    extended = {f"Extended-Attribute-{n}" for n in range(1, 7)}
    assert d.skipped_attributes == extended
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [w for w in warnings if "extended" not in w] == []
    assert len(d) > 300


def test_vendors() -> None:
    d = load_ours()
    for name, number in VENDORS.items():
        assert vendor_id(d, name) == number, name
    assert set(d.vendors.forward) == {"", *VENDORS}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_attribute_used_by_the_daemons(name: str) -> None:
    d = load_ours()
    vendor, code, datatype = EXPECTED[name]
    assert name in d, f"{name} is not defined"
    attr = d[name]
    assert (attr.vendor, attr.code, attr.type) == (vendor, code, datatype)
    assert (attr.encrypt, attr.has_tag) == FLAGS.get(name, (0, False))
    assert not attr.is_sub_attribute
    expected_key = (VENDORS[vendor], code) if vendor else code
    assert d.attrindex.GetForward(name) == expected_key
    assert d.attrindex.GetBackward(expected_key) == name


def test_well_known_codes() -> None:
    d = load_ours()
    actual = {name: key(d, name) for name in WELL_KNOWN_CODES}
    assert actual == WELL_KNOWN_CODES


def test_well_known_values() -> None:
    d = load_ours()
    actual = {(attr, name): value_of(d, attr, name) for attr, name in WELL_KNOWN_VALUES}
    assert actual == WELL_KNOWN_VALUES


def test_rfc_ranges_are_complete() -> None:
    d = load_ours()
    standard = {attr.code for attr in d.attributes.values() if not attr.vendor}
    # RFC 2865: 1-39 (17 and 21 are unassigned) and 60-63; RFC 2866: 40-51; RFC 2867,
    # RFC 2868 and RFC 2869: 52, 53, 55, 64-88, 90, 91; RFC 3162: 95-100; RFC 5176: 101;
    # RFC 4818: 123; RFC 5580: 126-132.
    assert set(range(1, 40)) - {17, 21} <= standard
    assert set(range(40, 54)) | {55} | (set(range(60, 92)) - {89}) <= standard
    assert set(range(95, 102)) | {123} | set(range(126, 133)) <= standard
    assert {attr.code for name, attr in d.attributes.items() if name.startswith("WISPr-")} == set(
        range(1, 12)
    )
    microsoft = {attr.code for attr in d.attributes.values() if attr.vendor == "Microsoft"}
    assert set(range(1, 32)) | {33} == microsoft


def test_acct_terminate_cause_values() -> None:
    d = load_ours()
    numbers = sorted(
        value_of(d, "Acct-Terminate-Cause", n) for n in d["Acct-Terminate-Cause"].values.forward
    )
    assert numbers == list(range(1, 19))


def test_error_cause_values() -> None:
    d = load_ours()
    numbers = {value_of(d, "Error-Cause", n) for n in d["Error-Cause"].values.forward}
    assert numbers == {201, 202, *range(401, 408), *range(501, 509)}


def test_no_duplicate_codes_names_or_values() -> None:
    definitions, _ = scan_ours()
    attributes = [x for x in definitions if x.kind == "ATTRIBUTE"]

    by_code: dict[tuple[int, str], list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for x in attributes:
        name, code = x.tokens[0], x.tokens[1]
        by_code.setdefault((x.vendor, code), []).append(f"{name} ({x.file}:{x.line})")
        by_name.setdefault(name, []).append(f"{x.file}:{x.line}")
    assert {k: v for k, v in by_code.items() if len(v) > 1} == {}
    assert {k: v for k, v in by_name.items() if len(v) > 1} == {}

    value_names: dict[tuple[str, str], list[str]] = {}
    value_numbers: dict[tuple[str, int], list[str]] = {}
    for x in definitions:
        if x.kind != "VALUE":
            continue
        attribute, name, number = x.tokens
        assert attribute in by_name, f"{x.file}:{x.line}: VALUE of undefined {attribute}"
        value_names.setdefault((attribute, name), []).append(f"{x.file}:{x.line}")
        value_numbers.setdefault((attribute, int(number, 0)), []).append(name)
    assert {k: v for k, v in value_names.items() if len(v) > 1} == {}
    assert {k: v for k, v in value_numbers.items() if len(v) > 1} == {}


def test_files_name_their_source_and_are_all_included() -> None:
    _, files = scan_ours()
    included = files[1:]
    assert len(included) == len(set(included))
    assert {f.name for f in included} == {p.name for p in DICT_DIR.glob("dictionary.*")}
    for path in included:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# Source: "), f"{path.name} does not start with its source"


def test_vendor_attributes_round_trip_through_a_packet() -> None:
    d = load_ours()
    secret = b"testing123"
    request = packet.AuthPacket(secret=secret, dict=d, id=7)
    request["User-Name"] = "alice@example.net"
    request["NAS-IP-Address"] = "192.0.2.1"
    request["NAS-Port-Type"] = "Ethernet"
    request["Framed-IPv6-Prefix"] = "2001:db8:1::/64"
    request["Delegated-IPv6-Prefix"] = "2001:db8:100::/56"
    request["Mikrotik-Rate-Limit"] = "10M/20M"
    request["Huawei-Input-Average-Rate"] = 10_000_000
    request["WISPr-Bandwidth-Max-Down"] = 20_000_000
    request["Alc-SLA-Prof-Str"] = "gold"
    request["ERX-Qos-Profile-Name"] = "qos-100m"
    request["Cisco-AVPair"] = ["ip:addr-pool=pool1", "subscriber:accounting-list=acct"]
    raw = request.RequestPacket()

    decoded = packet.AuthPacket(secret=secret, dict=d, packet=raw)
    assert decoded["User-Name"] == ["alice@example.net"]
    assert decoded["NAS-IP-Address"] == ["192.0.2.1"]
    assert decoded["NAS-Port-Type"] == ["Ethernet"]
    assert decoded["Framed-IPv6-Prefix"] == ["2001:db8:1::/64"]
    assert decoded["Delegated-IPv6-Prefix"] == ["2001:db8:100::/56"]
    assert decoded["Mikrotik-Rate-Limit"] == ["10M/20M"]
    assert decoded["Huawei-Input-Average-Rate"] == [10_000_000]
    assert decoded["WISPr-Bandwidth-Max-Down"] == [20_000_000]
    assert decoded["Alc-SLA-Prof-Str"] == ["gold"]
    assert decoded["ERX-Qos-Profile-Name"] == ["qos-100m"]
    assert decoded["Cisco-AVPair"] == ["ip:addr-pool=pool1", "subscriber:accounting-list=acct"]
    # On the wire: Vendor-Specific (26), Mikrotik's vendor ID, type 8, then the value.
    assert bytes([26, 15, 0, 0, 0x3A, 0x8C, 8, 9]) + b"10M/20M" in raw


# --- cross-check against FreeRADIUS's dictionaries ---


@pytest.fixture(scope="module")
def freeradius_files() -> list[Path]:
    top = FREERADIUS_DIR / "dictionary"
    assert top.is_file(), (
        f"FreeRADIUS dictionaries not installed ({top} is missing): install the Debian "
        "package freeradius-utils (it brings freeradius-common), as .ci/run does"
    )
    names = re.findall(r"^\$INCLUDE-?\s+(\S+)", top.read_text(), re.MULTILINE)
    return [FREERADIUS_DIR / name for name in names]


def read_each(d: Dictionary, files: list[Path]) -> dict[str, set[str]]:
    """Read the files one by one into d. Return, for each file pyrad cannot parse, the
    names of the attributes it defined before the error."""
    failed: dict[str, set[str]] = {}
    for path in files:
        before = set(d.attributes)
        try:
            d.ReadDictionary(str(path))
        except ParseError:
            failed[path.name] = set(d.attributes) - before
    return failed


def test_loads_alongside_freeradius(
    freeradius_files: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="pyrad")

    # As one top-level include: any parse error must be FreeRADIUS's own (pyrad 2.6 cannot
    # read a few of its files), the same without our dictionary.
    try:
        Dictionary(str(TOP), str(FREERADIUS_DIR / "dictionary"))
    except ParseError as exc:
        with pytest.raises(ParseError) as alone:
            Dictionary(str(FREERADIUS_DIR / "dictionary"))
        assert str(alone.value) == str(exc)

    # File by file after ours: no file fails that does not fail on its own.
    failed_alone = read_each(Dictionary(), freeradius_files)
    combined = load_ours()
    failed_combined = read_each(combined, freeradius_files)
    assert set(failed_combined) == set(failed_alone)
    assert len(failed_alone) < len(freeradius_files) / 10

    # Our attributes keep their numbers in the combined dictionary.
    ours = load_ours()
    for name in ours.attributes:
        assert key(combined, name) == key(ours, name), name


def test_numbers_agree_with_freeradius(
    freeradius_files: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="pyrad")
    fr = Dictionary()
    failed = read_each(fr, freeradius_files)
    # Attributes of a file that failed half-way are left out of the comparison.
    partial = set().union(*failed.values())
    ours = load_ours()

    for name, number in VENDORS.items():
        if name in fr.vendors.forward:
            assert vendor_id(fr, name) == number, name

    shared = sorted(n for n in ours.attributes if n in fr.attributes and n not in partial)
    assert set(EXPECTED) <= set(shared)
    assert len(shared) > 300

    codes = {n: (key(ours, n), key(fr, n)) for n in shared if key(ours, n) != key(fr, n)}
    assert codes == {}

    types = {n for n in shared if ours[n].type != fr[n].type}
    assert types <= KNOWN_TYPE_DIFFERENCES
    flags = {
        n for n in shared if (ours[n].encrypt, ours[n].has_tag) != (fr[n].encrypt, fr[n].has_tag)
    }
    assert flags <= KNOWN_FLAG_DIFFERENCES

    values = set()
    for n in shared:
        theirs = fr[n].values.forward
        for value_name, encoded in ours[n].values.forward.items():
            if value_name in theirs and theirs[value_name] != encoded:
                values.add((n, value_name))
    assert values <= KNOWN_VALUE_DIFFERENCES
