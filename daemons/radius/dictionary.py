"""RADIUS dictionaries: FreeRADIUS-format files (``dictfile``), our typed value encoding.

``daemons/resources/dictionaries/dictionary`` ships with netd; ``radius.dictionaries`` adds files or
directories an operator already has (e.g. ``/usr/share/freeradius``). netd's own definitions
win: a loaded file that gives a number netd defines another name, or a netd name another
number, is refused whole with a warning naming it (FreeRADIUS's ``dictionary.ascend.illegal``
names 168, 169 and 241-246 ``X-Ascend-*``). Among loaded files the later definition wins, as
in FreeRADIUS.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemons import resources
from daemons.radius.codec import ascend_secret, hide_password, salt_encrypt, vsa
from daemons.radius.dictfile import LONG_EXTENDED, DictFileError, FileDefs, Key, read_tree

SHIPPED = resources.path(*resources.DICTIONARY)
log = logging.getLogger("netd.radius")

# RFC 4849 §2: NAS-Filter-Rule values are one NUL-separated list, split over attributes.
NUL_JOINED: frozenset[Key] = frozenset({(0, 0, 92)})


class DictionaryError(Exception):
    """A dictionary file is missing or cannot be parsed."""


@dataclass(frozen=True, slots=True)
class AttrDef:
    name: str
    code: int
    vendor: int  # 0: a standard attribute
    type: str
    encrypt: int = 0
    has_tag: bool = False
    values: tuple[tuple[str, int], ...] = ()
    parent: int = 0  # 241..246: an RFC 6929 extended attribute
    concat: bool = False
    by_number: dict[int, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def key(self) -> Key:
        return (self.vendor, self.parent, self.code)

    def value_number(self, name: str) -> int | None:
        for n, v in self.values:
            if n == name:
                return v
        return None

    def value_name(self, number: int) -> str | None:
        return self.by_number.get(number)


@dataclass(frozen=True, slots=True)
class ReplyAttr:
    """An attribute to send, by dictionary name. ``tag`` for RFC 2868 tagged attributes."""

    name: str
    value: Any
    tag: int | None = None


class Dictionary:
    def __init__(self, extra: Sequence[Path | str] = (), shipped: Path = SHIPPED) -> None:
        """Load the shipped dictionary plus ``extra`` files or directories.

        Raises DictionaryError naming the file.
        """
        self._vendors: dict[str, tuple[int, tuple[int, int]]] = {}
        defs: dict[str, tuple[Key, str, int, bool, bool]] = {}
        values: dict[str, dict[str, int]] = {}
        try:
            own = read_tree(Path(shipped))
        except DictFileError as exc:
            raise DictionaryError(str(exc)) from None
        for f in own:
            self._take(f, defs, values)
        own_keys = {d[0]: name for name, d in defs.items()}
        standard = {k: name for k, name in own_keys.items() if k[0] == 0}
        own_names = dict(defs)
        for given in extra:
            path = Path(given)
            top = path / "dictionary" if path.is_dir() else path
            try:
                files = read_tree(top, self._vendors)
            except DictFileError as exc:
                raise DictionaryError(str(exc)) from None
            for f in files:
                clash = _clashes(f, standard, own_names)
                if clash:
                    log.warning(
                        "dictionary file refused: %s redefines attributes netd defines",
                        f.path,
                        extra={"fields": {"file": str(f.path), "clashes": clash[:5]}},
                    )
                    continue
                self._take(f, defs, values, keep=own_names)
        self._by_name: dict[str, AttrDef] = {}
        self._by_key: dict[Key, AttrDef] = {}
        for name, (k, kind, encrypt, tag, concat) in defs.items():
            named = values.get(name, {})
            numbers: dict[int, str] = {}
            for vname, number in named.items():
                numbers.setdefault(number, vname)
            d = AttrDef(
                name, k[2], k[0], kind, encrypt, tag, tuple(named.items()), k[1], concat, numbers
            )
            self._by_name[name] = d
        for d in self._by_name.values():
            self._by_key[d.key] = d
        for k, name in own_keys.items():  # netd's names for its numbers
            self._by_key[k] = self._by_name[name]
        # Attributes without encryption, encoded: a reply's come from a few plans.
        self._plain: dict[ReplyAttr, tuple[tuple[int, bytes], ...]] = {}

    def _take(
        self,
        f: FileDefs,
        defs: dict[str, tuple[Key, str, int, bool, bool]],
        values: dict[str, dict[str, int]],
        keep: dict[str, Any] | None = None,
    ) -> None:
        for vname, vid, fmt in f.vendors:
            self._vendors[vname] = (vid, fmt)
        for a in f.attributes:
            if keep is not None and a.name in keep:
                continue
            defs[a.name] = (a.key, a.type, a.encrypt, a.has_tag, a.concat)
        for attr, vname, number in f.values:
            if attr not in defs:
                continue
            named = values.setdefault(attr, {})
            if keep is not None and attr in keep and (vname in named or number in named.values()):
                continue  # netd's value names stay
            named[vname] = number

    def __getitem__(self, name: str) -> AttrDef:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    def by_code(self, vendor: int, code: int, parent: int = 0) -> AttrDef | None:
        return self._by_key.get((vendor, parent, code))

    def lookup(self, key: Key) -> AttrDef | None:
        return self._by_key.get(key)

    @functools.cached_property
    def plain(self) -> dict[int, AttrDef]:
        """Standard attributes whose value stands alone (no tag, no encryption, not
        continued, not extended): the ledger's fast path."""
        return {
            k[2]: d
            for k, d in self._by_key.items()
            if k[0] == 0
            and not k[1]
            and k[2] not in (26, 80)  # Vendor-Specific, Message-Authenticator
            and not (d.has_tag or d.encrypt or d.concat or k in NUL_JOINED)
            and d.type not in ("extended", "long-extended", "evs", "vsa")
        }

    @functools.cached_property
    def names(self) -> dict[tuple[int, int], tuple[str, str]]:
        """(vendor, code) -> (name, type) of the attributes that are not extended ones."""
        return {(k[0], k[2]): (d.name, d.type) for k, d in self._by_key.items() if not k[1]}

    def vendor_id(self, name: str) -> int:
        """Raises KeyError for an unknown vendor."""
        return self._vendors[name][0]

    def vendor_format(self, vendor: int) -> tuple[int, int]:
        """(type octets, length octets) of a vendor's sub-attributes (RFC 2865: 1, 1)."""
        return self._formats.get(vendor, (1, 1))

    @functools.cached_property
    def _formats(self) -> dict[int, tuple[int, int]]:
        return {vid: fmt for vid, fmt in self._vendors.values() if fmt != (1, 1)}

    def encode(
        self,
        attrs: Iterable[ReplyAttr],
        secret: bytes,
        authenticator: bytes,
        rand: Callable[[int], bytes],
    ) -> list[tuple[int, bytes]]:
        """Wire (type, value) pairs. ``rand`` gives salts. Empty values are left out;
        NAS-Filter-Rule values become one NUL-joined value (RFC 4849); values over 253
        octets are split where the type allows it (``concat``, long-extended). Raises
        KeyError for an unknown name, ValueError for a value that does not fit."""
        out: list[tuple[int, bytes]] = []
        plain = self._plain
        joined: dict[str, list[bytes]] = {}
        for a in attrs:
            try:
                wire = plain.get(a)
            except TypeError:  # a value that does not hash (a list): encoded each time
                wire = None
            if wire is not None:
                out += wire
                continue
            d = self._by_name[a.name]
            raw = encode_value(
                d, a.value, split=d.concat or d.key in NUL_JOINED or d.parent in LONG_EXTENDED
            )
            if not raw:
                continue  # an empty attribute is never sent
            if d.key in NUL_JOINED:
                joined.setdefault(a.name, []).append(raw)
                continue
            if d.has_tag:
                tag = a.tag or 0
                if not 0 <= tag <= 0x1F:
                    raise ValueError(f"{a.name}: tag {tag} outside 0..31")
                if d.type == "integer":
                    if raw[0]:  # RFC 2868 §3.1: a tagged integer has 3 octets of value
                        raise ValueError(f"{a.name}: {a.value!r} does not fit 24 bits (tagged)")
                    raw = bytes((tag,)) + raw[1:]
                elif d.encrypt != 2 and (tag or raw[0] <= 0x1F):
                    raw = bytes((tag,)) + raw
            if d.encrypt == 1:
                raw = hide_password(raw, secret, authenticator)
            elif d.encrypt == 2:
                raw = salt_encrypt(raw, secret, authenticator, rand(2))
                if d.has_tag:
                    raw = bytes((a.tag or 0,)) + raw
            elif d.encrypt == 3:
                raw = ascend_secret(raw, secret, authenticator)
            wire = tuple(self._frame(d, raw))
            if not d.encrypt:  # the same bytes every time: kept (a plan's attributes)
                if len(plain) >= 10_000:
                    plain.clear()
                with contextlib.suppress(TypeError):
                    plain[a] = wire
            out += wire
        for name, parts in joined.items():
            out += self._frame(self._by_name[name], b"\0".join(parts))
        return out

    def _frame(self, d: AttrDef, raw: bytes) -> list[tuple[int, bytes]]:
        """One value as attributes: standard, vendor-specific, extended (RFC 6929 §2.1),
        long-extended (§2.2: fragments with the More flag), extended vendor-specific (§2.4)."""
        if d.parent:
            head = (
                bytes((d.code,))
                if not d.vendor
                else bytes((26,)) + d.vendor.to_bytes(4, "big") + bytes((d.code,))
            )
            if d.parent not in LONG_EXTENDED:
                if len(head) + len(raw) > MAX_VALUE:
                    raise ValueError(f"{d.name}: {len(raw)} octets, too long")
                return [(d.parent, head + raw)]
            body = (head[1:] if d.vendor else b"") + raw
            room = MAX_VALUE - 2
            chunks = [body[i : i + room] for i in range(0, len(body), room)] or [b""]
            return [
                (d.parent, bytes((head[0], 0x80 if i < len(chunks) - 1 else 0)) + c)
                for i, c in enumerate(chunks)
            ]
        room = MAX_VALUE - 6 if d.vendor else MAX_VALUE
        if len(raw) > room and not (d.concat or d.key in NUL_JOINED):
            raise ValueError(f"{d.name}: {len(raw)} octets, more than {room}")
        chunks = [raw[i : i + room] for i in range(0, len(raw), room)]
        if d.vendor:
            return [vsa(d.vendor, d.code, c) for c in chunks]
        return [(d.code, c) for c in chunks]


def _clashes(f: FileDefs, standard: dict[Key, str], own: dict[str, Any]) -> list[str]:
    """A loaded file's definitions that would rename a netd number or move a netd name."""
    out: list[str] = []
    for a in f.attributes:
        if a.key[0]:
            continue
        if a.key in standard and standard[a.key] != a.name:
            out.append(f"{a.name} = {_oid(a.key)} (netd: {standard[a.key]})")
        elif a.name in own and own[a.name][0] != a.key:
            out.append(f"{a.name} = {_oid(a.key)} (netd: {_oid(own[a.name][0])})")
    return out


def _oid(k: Key) -> str:
    return f"{k[1]}.{k[2]}" if k[1] else str(k[2])


MAX_VALUE = 253  # RFC 2865 §5: an attribute's value is at most 253 octets


def _text_value(value: Any, hex_ok: bool) -> bytes:
    if isinstance(value, int | float):  # a number in TOML or JSON: its text
        value = str(value)
    if isinstance(value, str):
        return bytes.fromhex(value[2:]) if hex_ok and value.startswith("0x") else value.encode()
    return bytes(value)


def encode_value(d: AttrDef, value: Any, split: bool = False) -> bytes:
    """One value in ``d``'s data type. Raises ValueError on a value that does not fit
    (text over 253 octets unless ``split``: the caller splits it over attributes)."""
    t = d.type
    if isinstance(value, str) and t in ("integer", "short", "byte", "signed", "integer64"):
        number = d.value_number(value)
        if number is None:
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"{d.name}: {value!r} is no number or VALUE name") from None
        value = number
    if t in ("string", "octets", "abinary", "tlv"):
        raw = _text_value(value, t != "string")
        if len(raw) > MAX_VALUE and not split:
            raise ValueError(f"{d.name}: {len(raw)} octets, more than {MAX_VALUE}")
        return raw
    try:
        if t in ("integer", "date"):
            return struct.pack("!I", int(value))
        if t == "signed":
            return struct.pack("!i", int(value))
        if t == "short":
            return struct.pack("!H", int(value))
        if t == "byte":
            return struct.pack("!B", int(value))
        if t == "integer64":
            return struct.pack("!Q", int(value))
        if t == "ipaddr":
            return ipaddress.IPv4Address(value).packed
        if t == "ipv6addr":
            return ipaddress.IPv6Address(value).packed
        if t == "combo-ip":
            return ipaddress.ip_address(value).packed
        if t == "ipv6prefix":
            net = ipaddress.IPv6Network(value, strict=False)
            nbytes = (net.prefixlen + 7) // 8
            return bytes((0, net.prefixlen)) + net.network_address.packed[:nbytes]
        if t == "ipv4prefix":
            net4 = ipaddress.IPv4Network(value, strict=False)
            return bytes((0, net4.prefixlen)) + net4.network_address.packed
        if t == "ifid":
            text = str(value)
            if text.count(":") == 3:  # FreeRADIUS's 0:0:0:1
                raw = b"".join(int(g or "0", 16).to_bytes(2, "big") for g in text.split(":"))
            else:
                raw = bytes.fromhex(text.replace(":", ""))
            if len(raw) != 8:
                raise ValueError("an interface id is 8 octets")
            return raw
        if t == "ether":
            raw = bytes.fromhex(str(value).replace(":", "").replace("-", ""))
            if len(raw) != 6:
                raise ValueError("a MAC address is 6 octets")
            return raw
    except (
        struct.error,
        ipaddress.AddressValueError,
        ipaddress.NetmaskValueError,
        OverflowError,
        TypeError,
    ) as exc:
        raise ValueError(f"{d.name}: {value!r} does not fit type {t}: {exc}") from None
    raise ValueError(f"{d.name}: cannot encode type {t}")
