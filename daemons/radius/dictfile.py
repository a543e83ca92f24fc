"""FreeRADIUS-format dictionary files, read file by file (issue 21).

pyrad's reader skips what an exact ledger needs (RFC 6929 extended and long-extended
attributes, extended vendor-specific blocks, ``combo-ip``, the ``concat`` flag, vendors
whose format is not 1,1) and merges a whole tree into one table, so nobody can say which
file defined what. This reader keeps each file's definitions apart, in include order, so
that :class:`daemons.radius.dictionary.Dictionary` can refuse a file that renames a number
netd defines itself (FreeRADIUS's ``dictionary.ascend.illegal``) and name it.

Supported: ``ATTRIBUTE``, ``VALUE``, ``VENDOR`` (``format=t,l[,c]``), ``BEGIN-VENDOR``
(``format=Extended-Vendor-Specific-N``), ``END-VENDOR``, ``BEGIN-TLV``/``END-TLV``,
``$INCLUDE`` and ``$INCLUDE-``. Other keywords are ignored. TLV sub-attributes are
parsed and not kept: a TLV is recorded as one value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Key of an attribute: (vendor, parent, code). parent is 0 for a top-level attribute
# (vendor 0) or a vendor-specific one, or 241..246 for an RFC 6929 extended attribute
# (with vendor != 0: an extended vendor-specific one, RFC 6929 §2.4).
Key = tuple[int, int, int]
EXTENDED = range(241, 247)
LONG_EXTENDED = (245, 246)
MAX_DEPTH = 32  # includes


class DictFileError(Exception):
    """A dictionary file is missing or cannot be parsed; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    key: Key
    type: str
    encrypt: int = 0
    has_tag: bool = False
    concat: bool = False


@dataclass
class FileDefs:
    """What one file defines, in order."""

    path: Path
    attributes: list[Definition] = field(default_factory=list)
    values: list[tuple[str, str, int]] = field(default_factory=list)  # attribute, name, number
    vendors: list[tuple[str, int, tuple[int, int]]] = field(default_factory=list)


@dataclass
class _State:
    vendors: dict[str, tuple[int, tuple[int, int]]]
    seen: set[Path]
    out: list[FileDefs]


_FLAGS = frozenset(("has_tag", "encrypt", "array", "concat", "virtual", "secret", "abinary"))


def _int(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text, 10)


def read_tree(
    top: Path, known_vendors: dict[str, tuple[int, tuple[int, int]]] | None = None
) -> list[FileDefs]:
    """Every file of the tree rooted at ``top``, depth first in include order. A file
    included twice is read once. Raises DictFileError naming the file and line."""
    state = _State(dict(known_vendors or {}), set(), [])
    _read(top, state, 0)
    return state.out


def _read(path: Path, state: _State, depth: int) -> None:
    path = path.resolve()
    if path in state.seen:
        return
    if depth > MAX_DEPTH:
        raise DictFileError(f"{path}: includes nested deeper than {MAX_DEPTH}")
    state.seen.add(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DictFileError(f"dictionary file not found: {path} ({exc.strerror})") from None
    defs = FileDefs(path)
    state.out.append(defs)
    ctx = _FileCtx(path, defs)
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        where = f"{path}:{lineno}"
        try:
            _line(tokens, ctx, state, depth, where)
        except (ValueError, IndexError, KeyError):
            raise DictFileError(f"{where}: cannot parse {line.strip()!r}") from None


@dataclass
class _FileCtx:
    path: Path
    defs: FileDefs
    vendor: int = 0
    ext_parent: int = 0
    tlvs: list[str] = field(default_factory=list)


def _line(tokens: list[str], ctx: _FileCtx, state: _State, depth: int, where: str) -> None:
    word = tokens[0]
    if word in ("$INCLUDE", "$INCLUDE-"):
        if len(tokens) < 2:
            raise DictFileError(f"{where}: $INCLUDE without a file")
        child = ctx.path.parent / tokens[1]
        if word == "$INCLUDE" or child.exists():
            _read(child, state, depth + 1)
    elif word == "VENDOR":
        fmt = (1, 1)
        if len(tokens) > 3 and tokens[3].startswith("format="):
            parts = tokens[3].removeprefix("format=").split(",")
            fmt = (int(parts[0]), int(parts[1]))
        vid = _int(tokens[2])
        state.vendors[tokens[1]] = (vid, fmt)
        ctx.defs.vendors.append((tokens[1], vid, fmt))
    elif word == "BEGIN-VENDOR":
        if tokens[1] not in state.vendors:
            raise DictFileError(f"{where}: unknown vendor {tokens[1]}")
        ctx.vendor, ctx.ext_parent = state.vendors[tokens[1]][0], 0
        if len(tokens) > 2 and tokens[2].startswith("format=Extended-Vendor-Specific-"):
            ctx.ext_parent = 240 + int(tokens[2].rsplit("-", 1)[1])
    elif word == "END-VENDOR":
        ctx.vendor, ctx.ext_parent = 0, 0
    elif word == "BEGIN-TLV":
        ctx.tlvs.append(tokens[1])
    elif word == "END-TLV" and ctx.tlvs:
        ctx.tlvs.pop()
    elif word == "ATTRIBUTE" and not ctx.tlvs:  # a TLV's sub-attributes: the TLV is kept whole
        d = _attribute(tokens, ctx.vendor, ctx.ext_parent, state, where)
        if d is not None:
            ctx.defs.attributes.append(d)
    elif word == "VALUE":
        if len(tokens) != 4:
            raise DictFileError(f"{where}: VALUE needs attribute, name and number")
        ctx.defs.values.append((tokens[1], tokens[2], _int(tokens[3])))


def _attribute(
    tokens: list[str], vendor: int, ext_parent: int, state: _State, where: str
) -> Definition | None:
    if len(tokens) < 4:
        raise DictFileError(f"{where}: ATTRIBUTE needs name, number and type")
    name, oid, kind = tokens[1], tokens[2], tokens[3].split("[", 1)[0].lower()
    encrypt, has_tag, concat, array = 0, False, False, False
    if len(tokens) > 4:
        options = tokens[4].split(",")
        if options[0].split("=", 1)[0] not in _FLAGS and options[0] in state.vendors:
            vendor = state.vendors[options[0]][0]  # old format: the vendor's name
        else:
            for opt in options:
                key, _, val = opt.partition("=")
                if key == "has_tag":
                    has_tag = True
                elif key == "encrypt":
                    encrypt = int(val)
                elif key == "concat":
                    concat = True
                elif key == "array":
                    array = True
    parts = [_int(p) for p in oid.split(".")]
    if array:
        kind = "octets"  # a list of values in one attribute: kept as octets
    if len(parts) == 1:
        return Definition(name, (vendor, ext_parent, parts[0]), kind, encrypt, has_tag, concat)
    if vendor == 0 and len(parts) == 2 and parts[0] in EXTENDED and parts[1] != 26:
        return Definition(name, (0, parts[0], parts[1]), kind, encrypt, has_tag, concat)
    return None  # TLV sub-attributes, the EVS markers (241.26): not kept
