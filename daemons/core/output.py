"""What the ``netd`` admin commands print: a table for people, JSON lines for programs.

The rule: **JSON lines when stdout is not a terminal (a pipe, a file, a script's capture)
or when ``--json`` is given; a table otherwise.** A JSON line is one object per row, keys
as the API names them, times as text; the same command piped gives the same objects every
time. A table shows the same fields, shortened for the eye (times to the second, long
values cut with …, control characters escaped), and says so when a list is empty (a pipe
gets nothing at all: no rows).

Every list command calls :func:`rows`, every show command :func:`record`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

CELL_MAX = 48
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def fail(message: str, status: int = 1) -> int:
    """Print ``netd: message`` on stderr and return ``status``: one line, whatever the
    message holds (a name with a newline, a terminal escape: shown escaped)."""
    print(f"netd: {one_line(message)}", file=sys.stderr)
    return status


def one_line(text: str) -> str:
    return _LINE_BREAKING.sub(lambda c: repr(c.group())[1:-1], text)


def add_flag(parser: argparse.ArgumentParser, default: Any = False) -> None:
    """``--json`` on ``parser``. The top-level flag has a default; a command's own flag
    has none (SUPPRESS), so that ``netd --json nas list`` and ``netd nas list --json`` both
    work (a sub-command's default would overwrite the top-level value)."""
    parser.add_argument(
        "--json",
        action="store_true",
        default=default,
        help="print JSON lines (the default when stdout is not a terminal)",
    )


def json_wanted(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    out = stream or sys.stdout
    return bool(getattr(args, "json", False)) or not _isatty(out)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a file
        return False


def dumps(item: Any) -> str:
    """One JSON line (ASCII: whatever the bytes of a value, the line prints)."""
    return json.dumps(item, default=_json_default, separators=(", ", ": "))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def rows(
    args: argparse.Namespace,
    items: Iterable[Mapping[str, Any]],
    empty: str,
    columns: Sequence[str] | None = None,
) -> int:
    """Print a list: JSON lines, or a table with ``columns`` (default: every key, in the
    order first seen), or ``empty`` on a terminal when there is nothing. Returns 0."""
    if json_wanted(args):
        for item in items:
            print(dumps(item))
        return 0
    listed = list(items)
    if not listed:
        print(empty)
        return 0
    print(table(listed, columns))
    return 0


def record(args: argparse.Namespace, item: Mapping[str, Any]) -> int:
    """Print one object: a JSON line, or ``field  value`` lines. Returns 0."""
    if json_wanted(args):
        print(dumps(item))
    else:
        print("\n".join(_vertical(item, "")))
    return 0


def table(items: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    keys = list(columns or dict.fromkeys(k for item in items for k in item))
    cells = [[cell(item.get(k)) for k in keys] for item in items]
    heads = [k.upper().replace("_", " ") for k in keys]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def cell(value: Any, limit: int = CELL_MAX) -> str:
    """A value shortened to one line of at most ``limit`` characters."""
    text = _text(value)
    first, _, rest = text.partition("\n")
    text = first + (" …" if rest else "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(_text(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return " ".join(f"{k}={_text(v)}" for k, v in value.items()) or "-"
    return _clean(str(value))


def _clean(text: str) -> str:
    """Control characters (a terminal's escape sequences among them) as visible escapes;
    newlines kept for the caller to lay out."""

    def esc(match: re.Match[str]) -> str:
        c = match.group()
        return c if c == "\n" else repr(c)[1:-1]

    return _CONTROL.sub(esc, text.encode("utf-8", "backslashreplace").decode("utf-8"))


def _vertical(item: Mapping[str, Any], indent: str) -> list[str]:
    width = max((len(str(k)) for k in item), default=0)
    out: list[str] = []
    for key, value in item.items():
        label = f"{indent}{str(key).ljust(width)}  "
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            out.append(f"{indent}{key}:")
            out += [indent + "  " + line for line in table(value).splitlines()]
        elif isinstance(value, Mapping) and value:
            out.append(f"{indent}{key}:")
            out += _vertical(value, indent + "  ")
        else:
            text = _text(value)
            if "\n" in text:
                out.append(f"{indent}{key}:")
                out += [indent + "  " + line for line in text.rstrip("\n").splitlines()]
            else:
                out.append(label + text)
    return out
