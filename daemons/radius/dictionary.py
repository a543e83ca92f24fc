"""RADIUS dictionaries: pyrad's FreeRADIUS-format parser, our typed value encoding.

``daemons/resources/dictionaries/dictionary`` ships with netd; ``radius.dictionaries`` adds files or
directories an operator already has (e.g. ``/usr/share/freeradius``).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrad.dictionary import Dictionary as PyradDictionary
from pyrad.dictionary import ParseError

from daemons import resources
from daemons.radius.codec import hide_password, salt_encrypt, vsa

SHIPPED = resources.path(*resources.DICTIONARY)
_INCLUDE = re.compile(r"^\$INCLUDE(-?)\s+(\S+)", re.MULTILINE)
log = logging.getLogger("netd.radius")


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

    def value_number(self, name: str) -> int | None:
        for n, v in self.values:
            if n == name:
                return v
        return None

    def value_name(self, number: int) -> str | None:
        for n, v in self.values:
            if v == number:
                return n
        return None


@dataclass(frozen=True, slots=True)
class ReplyAttr:
    """An attribute to send, by dictionary name. ``tag`` for RFC 2868 tagged attributes."""

    name: str
    value: Any
    tag: int | None = None


class Dictionary:
    def __init__(self, extra: Sequence[Path] = (), shipped: Path = SHIPPED) -> None:
        """Load the shipped dictionary plus ``extra`` files or directories.

        Raises DictionaryError naming the file.
        """
        self._py = PyradDictionary()
        self._read(shipped)
        for path in extra:
            self._read_extra(path / "dictionary" if path.is_dir() else path)
        self._by_name: dict[str, AttrDef] = {}
        # Attributes without encryption, encoded: a reply's come from a few plans.
        self._plain: dict[ReplyAttr, tuple[int, bytes]] = {}
        self._by_code: dict[tuple[int, int], AttrDef] = {}
        for name, attr in self._py.attributes.items():
            vendor = self._py.vendors.GetForward(attr.vendor) if attr.vendor else 0
            values = tuple(
                (str(k), int.from_bytes(v, "big") if isinstance(v, bytes) else int(v))
                for k, v in attr.values.forward.items()
            )
            code = attr.code if isinstance(attr.code, int) else attr.code[-1]
            d = AttrDef(name, code, vendor, attr.type, attr.encrypt, attr.has_tag, values)
            self._by_name[name] = d
            self._by_code.setdefault((vendor, code), d)

    def _read(self, path: Path) -> None:
        if not path.is_file():
            raise DictionaryError(f"dictionary file not found: {path}")
        try:
            self._py.ReadDictionary(str(path))
        except (ParseError, OSError, ValueError) as exc:
            raise DictionaryError(f"cannot read dictionary {path}: {exc}") from None

    def _read_extra(self, top: Path) -> None:
        """An operator's dictionary tree. If the whole tree does not parse (FreeRADIUS's own
        has files pyrad rejects), read its includes one by one and skip, with a warning,
        the files that fail."""
        try:
            self._read(top)
            return
        except DictionaryError as whole:
            includes = _INCLUDE.findall(top.read_text(errors="replace")) if top.is_file() else []
            if not includes:
                raise
            log.warning(
                "dictionary tree does not parse as a whole; reading it file by file",
                extra={"fields": {"file": str(top), "error": str(whole)}},
            )
        for optional, name in includes:
            path = top.parent / name
            if optional and not path.exists():
                continue
            try:
                self._read(path)
            except DictionaryError as exc:
                log.warning("dictionary file skipped", extra={"fields": {"error": str(exc)}})

    def __getitem__(self, name: str) -> AttrDef:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    def by_code(self, vendor: int, code: int) -> AttrDef | None:
        return self._by_code.get((vendor, code))

    @functools.cached_property
    def names(self) -> dict[tuple[int, int], tuple[str, str]]:
        """(vendor, code) -> (name, type): what decoding a received attribute needs."""
        return {key: (d.name, d.type) for key, d in self._by_code.items()}

    def vendor_id(self, name: str) -> int:
        return int(self._py.vendors.GetForward(name))

    def encode(
        self,
        attrs: Iterable[ReplyAttr],
        secret: bytes,
        authenticator: bytes,
        rand: Callable[[int], bytes],
    ) -> list[tuple[int, bytes]]:
        """Wire (type, value) pairs. ``rand`` gives salts. Raises KeyError, ValueError."""
        out: list[tuple[int, bytes]] = []
        plain = self._plain
        for a in attrs:
            try:
                wire = plain.get(a)
            except TypeError:  # a value that does not hash (a list): encoded each time
                wire = None
            if wire is not None:
                out.append(wire)
                continue
            d = self._by_name[a.name]
            raw = encode_value(d, a.value)
            if d.has_tag:
                tag = a.tag or 0
                if not 0 <= tag <= 0x1F:
                    raise ValueError(f"{a.name}: tag {tag} outside 0..31")
                if d.type == "integer":
                    raw = bytes((tag,)) + raw[1:]
                elif d.encrypt != 2 and (tag or (raw and raw[0] <= 0x1F)):
                    raw = bytes((tag,)) + raw
            if d.encrypt == 1:
                raw = hide_password(raw, secret, authenticator)
            elif d.encrypt == 2:
                raw = salt_encrypt(raw, secret, authenticator, rand(2))
                if d.has_tag:
                    raw = bytes((a.tag or 0,)) + raw
            wire = vsa(d.vendor, d.code, raw) if d.vendor else (d.code, raw)
            if not d.encrypt:  # the same bytes every time: kept (a plan's attributes)
                if len(plain) >= 10_000:
                    plain.clear()
                with contextlib.suppress(TypeError):
                    plain[a] = wire
            out.append(wire)
        return out


MAX_VALUE = 253  # RFC 2865 §5: an attribute's value is at most 253 octets


def encode_value(d: AttrDef, value: Any) -> bytes:
    """One value in ``d``'s data type. Raises ValueError on a value that does not fit."""
    t = d.type
    if isinstance(value, str) and t in ("integer", "short", "byte", "signed", "integer64"):
        number = d.value_number(value)
        if number is None:
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"{d.name}: {value!r} is no number or VALUE name") from None
        value = number
    try:
        if t in ("string", "octets", "abinary", "tlv"):
            if isinstance(value, int | float):  # a number in TOML or JSON: its text
                value = str(value)
            if isinstance(value, str):
                if t != "string" and value.startswith("0x"):
                    raw = bytes.fromhex(value[2:])
                else:
                    raw = value.encode()
            else:
                raw = bytes(value)
            if len(raw) > MAX_VALUE:
                raise ValueError(f"{d.name}: {len(raw)} octets, more than {MAX_VALUE}")
            return raw
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
        if t == "ipv6prefix":
            net = ipaddress.IPv6Network(value, strict=False)
            nbytes = (net.prefixlen + 7) // 8
            return bytes((0, net.prefixlen)) + net.network_address.packed[:nbytes]
        if t == "ifid":
            raw = bytes.fromhex(str(value).replace(":", ""))
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
        TypeError,
    ) as exc:
        raise ValueError(f"{d.name}: {value!r} does not fit type {t}: {exc}") from None
    raise ValueError(f"{d.name}: cannot encode type {t}")
