"""Attributes as the ledger keeps them: by name and type, as FreeRADIUS prints them. Pure.

The ledger's ``attributes`` JSONB (issue 21) is what ``radclient -x`` prints for the same
packet, as JSON: a tagged attribute is ``Name:tag`` with its value apart (RFC 2868 §3),
integers with a VALUE name are that name, ipaddr/ipv6addr/combo-ip are addresses,
ipv6prefix/ipv4prefix are ``address/length``, ifid is ``0:0:0:1``, date is ISO 8601 UTC,
octets are ``0x``-hex. RFC 6929 extended attributes are named by their extended type
(``Attr-241.1`` when unknown), long-extended fragments and ``concat`` attributes are
joined, NAS-Filter-Rule values are joined and split at their NULs (RFC 4849). Empty
attributes, Message-Authenticator and encrypted values (secrets) are not kept.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from daemons.radius.dictfile import EXTENDED, LONG_EXTENDED, Key
from daemons.radius.dictionary import NUL_JOINED, AttrDef, Dictionary

MESSAGE_AUTHENTICATOR, VENDOR_SPECIFIC = 80, 26
_ABSENT = object()


def describe(attributes: Sequence[tuple[int, bytes]], d: Dictionary) -> dict[str, Any]:
    """Every attribute by name; repeated attributes become lists, in wire order."""
    out: dict[str, Any] = {}
    plain = d.plain
    run: list[tuple[int, bytes]] = []  # attributes that may continue each other
    for atype, raw in attributes:
        a = plain.get(atype)
        if a is None:
            run.append((atype, raw))
            continue
        if run:
            _describe_run(run, d, out)
            run = []
        if raw:
            value = _DECODE.get(a.type, _octets)(a, raw)
            if value is _ABSENT:
                _put(out, f"Attr-{atype}", "0x" + raw.hex())
            else:
                _put(out, a.name, value)
    if run:
        _describe_run(run, d, out)
    return out


def _describe_run(run: list[tuple[int, bytes]], d: Dictionary, out: dict[str, Any]) -> None:
    for key, raw, unknown in _joined(_flatten(run, d), d):
        if not raw:
            continue
        a = d.lookup(key)
        if a is None or a.encrypt or a.type in ("extended", "long-extended", "evs", "vsa"):
            if a is not None and a.encrypt:
                continue  # a secret: not kept, even hidden
            _put(out, unknown, "0x" + raw.hex())
            continue
        if key in NUL_JOINED:
            for rule in raw.split(b"\0"):
                if rule:
                    _put(out, a.name, _text(rule))
            continue
        name, value = _typed(a, raw, unknown)
        _put(out, name, value)


def _unknown(key: Key, vsa: bool) -> str:
    vendor, parent, code = key
    if parent:
        return f"Attr-{parent}.26.{vendor}.{code}" if vendor else f"Attr-{parent}.{code}"
    return f"Attr-26.{vendor}.{code}" if vsa else f"Attr-{code}"


def _flatten(
    attributes: Sequence[tuple[int, bytes]], d: Dictionary
) -> Iterator[tuple[Key, bytes, bool, str]]:
    """(key, value, more, unknown name) per attribute; vendor-specific and extended ones
    opened. ``more``: a long-extended fragment with the M flag (RFC 6929 §2.2)."""
    for atype, raw in attributes:
        if atype == MESSAGE_AUTHENTICATOR:
            continue
        if atype == VENDOR_SPECIFIC and len(raw) > 4:
            vendor = int.from_bytes(raw[:4], "big")
            subs = list(_vsas(raw[4:], d.vendor_format(vendor)))
            if subs is not None and all(s is not None for s in subs):
                for code, value in subs:  # type: ignore[misc]
                    key = (vendor, 0, code)
                    yield key, value, False, _unknown(key, True)
                continue
        if atype in EXTENDED and raw:
            long = atype in LONG_EXTENDED
            if long and len(raw) < 2:
                yield (0, 0, atype), raw, False, f"Attr-{atype}"
                continue
            ext, more = raw[0], long and bool(raw[1] & 0x80)
            body = raw[2:] if long else raw[1:]
            if ext == 26:  # extended vendor-specific: the vendor id and type come first
                yield (0, atype, 26), body, more, f"Attr-{atype}.26"
                continue
            key = (0, atype, ext)
            yield key, body, more, _unknown(key, False)
            continue
        key = (0, 0, atype)
        yield key, raw, False, _unknown(key, False)


def _vsas(value: bytes, fmt: tuple[int, int]) -> Iterator[tuple[int, bytes] | None]:
    """Sub-attributes in a vendor's format (t, l octets); None marks a malformed one."""
    t, ln = fmt
    pos, end = 0, len(value)
    while pos < end:
        if pos + t + ln > end:
            yield None
            return
        code = int.from_bytes(value[pos : pos + t], "big")
        if ln:
            length = int.from_bytes(value[pos + t : pos + t + ln], "big")
            if length < t + ln or pos + length > end:
                yield None
                return
        else:
            length = end - pos
        yield code, value[pos + t + ln : pos + length]
        pos += length


def _joined(
    flat: Iterator[tuple[Key, bytes, bool, str]], d: Dictionary
) -> Iterator[tuple[Key, bytes, str]]:
    """Consecutive values that continue each other, joined: long-extended fragments while
    their M flag is set, concat attributes, NAS-Filter-Rule (RFC 4849)."""
    held: tuple[Key, bytearray, str] | None = None
    open_fragment = False
    for key, value, more, unknown in flat:
        if held is not None and key == held[0]:
            a = d.lookup(key)
            if open_fragment or (a is not None and (a.concat or key in NUL_JOINED)):
                held[1].extend(value)
                open_fragment = more
                continue
        if held is not None:
            yield _evs(held[0], bytes(held[1]), held[2])
        held, open_fragment = (key, bytearray(value), unknown), more
    if held is not None:
        yield _evs(held[0], bytes(held[1]), held[2])


def _evs(key: Key, value: bytes, unknown: str) -> tuple[Key, bytes, str]:
    """An extended vendor-specific value (RFC 6929 §2.4) becomes its vendor's attribute."""
    if key[1] and key[2] == 26 and not key[0] and len(value) >= 5:
        vendor, code = int.from_bytes(value[:4], "big"), value[4]
        inner = (vendor, key[1], code)
        return inner, value[5:], _unknown(inner, False)
    return key, value, unknown


def _text(raw: bytes) -> str:
    if b"\0" in raw:
        raw = raw.rstrip(b"\0")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    return text if "\0" not in text else "0x" + raw.hex()  # JSONB refuses U+0000


def _typed(a: AttrDef, raw: bytes, unknown: str) -> tuple[str, Any]:
    """(name, value); a value that does not fit its type is kept as octets under the
    unknown name, as FreeRADIUS does."""
    name, t = a.name, a.type
    if a.has_tag:
        if t == "integer":
            if len(raw) != 4:
                return unknown, "0x" + raw.hex()
            tag, raw = raw[0], b"\0" + raw[1:]
        elif raw[0] <= 0x1F:
            tag, raw = raw[0], raw[1:]
        else:
            tag = 0
        name = f"{name}:{tag}"
    value = _DECODE.get(t, _octets)(a, raw)
    if value is _ABSENT:
        return unknown, "0x" + raw.hex()
    return name, value


def _number(size: int, signed: bool = False) -> Any:
    def decode(a: AttrDef, raw: bytes) -> Any:
        if len(raw) != size:
            return _ABSENT
        number = int.from_bytes(raw, "big", signed=signed)
        named = a.by_number.get(number) if a.by_number else None
        return named if named is not None else number

    return decode


def _date(a: AttrDef, raw: bytes) -> Any:
    if len(raw) != 4:
        return _ABSENT
    when = datetime.datetime.fromtimestamp(int.from_bytes(raw, "big"), datetime.UTC)
    return when.isoformat().replace("+00:00", "Z")


def _ipv4(a: AttrDef, raw: bytes) -> Any:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}" if len(raw) == 4 else _ABSENT


def _ipv6(a: AttrDef, raw: bytes) -> Any:
    return str(ipaddress.IPv6Address(raw)) if len(raw) == 16 else _ABSENT


def _combo(a: AttrDef, raw: bytes) -> Any:
    return _ipv4(a, raw) if len(raw) == 4 else _ipv6(a, raw)


def _ipv6prefix(a: AttrDef, raw: bytes) -> Any:
    if not 2 <= len(raw) <= 18 or raw[1] > 128:
        return _ABSENT
    return str(ipaddress.IPv6Network((raw[2:].ljust(16, b"\0"), raw[1]), strict=False))


def _ipv4prefix(a: AttrDef, raw: bytes) -> Any:
    if len(raw) != 6 or raw[1] & 0x3F > 32:
        return _ABSENT
    return str(ipaddress.IPv4Network((raw[2:], raw[1] & 0x3F), strict=False))


def _ifid(a: AttrDef, raw: bytes) -> Any:
    if len(raw) != 8:
        return _ABSENT
    return ":".join(f"{int.from_bytes(raw[i : i + 2], 'big'):x}" for i in range(0, 8, 2))


def _ether(a: AttrDef, raw: bytes) -> Any:
    return ":".join(f"{b:02x}" for b in raw) if len(raw) == 6 else _ABSENT


def _string(a: AttrDef, raw: bytes) -> Any:
    return _text(raw)


def _octets(a: AttrDef, raw: bytes) -> Any:
    return "0x" + raw.hex()


_DECODE: dict[str, Callable[[AttrDef, bytes], Any]] = {
    "string": _string,
    "integer": _number(4),
    "signed": _number(4, signed=True),
    "short": _number(2),
    "byte": _number(1),
    "integer64": _number(8),
    "date": _date,
    "ipaddr": _ipv4,
    "ipv6addr": _ipv6,
    "combo-ip": _combo,
    "ipv6prefix": _ipv6prefix,
    "ipv4prefix": _ipv4prefix,
    "ifid": _ifid,
    "ether": _ether,
}


_PREFIX_DEF = AttrDef("Framed-IPv6-Prefix", 97, 0, "ipv6prefix")


def ipv6_prefix(raw: bytes | None) -> str | None:
    """An ipv6prefix value (RFC 3162 §2.3) as CIDR, None if absent or malformed."""
    if not raw:
        return None
    value = _ipv6prefix(_PREFIX_DEF, raw)
    return None if value is _ABSENT else str(value)


def ipv6_address(raw: bytes | None) -> str | None:
    """An ipv6addr value, None if absent or malformed."""
    if not raw or len(raw) != 16:
        return None
    return str(ipaddress.IPv6Address(raw))


def _put(out: dict[str, Any], name: str, value: Any) -> None:
    prev = out.get(name, _ABSENT)
    if prev is _ABSENT:
        out[name] = value
    else:
        out[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
