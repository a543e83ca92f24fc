"""Jinja2 templates of the console (``daemons/console/templates``, in the wheel), escaped
by default, and the filters that turn numbers into what a NOC reads."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def ago(ts: float | datetime | None) -> str:
    """How long ago, in the largest unit that fits: "12 s ago", "3 min ago"."""
    if ts is None:
        return "never"
    seconds = time.time() - (ts.timestamp() if isinstance(ts, datetime) else float(ts))
    if seconds < 0:
        return "now"
    return duration(seconds) + " ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def octets(n: float | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"


def bits(n: float | None) -> str:
    """A rate in octets per second, as bits per second."""
    if n is None:
        return ""
    value = float(n) * 8
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"):
        if abs(value) < 1000 or unit == "Gbit/s":
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} Tbit/s"


def when(ts: float | datetime | None) -> str:
    if ts is None:
        return ""
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(float(ts), UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(n: float | None, digits: int = 1) -> str:
    if n is None:
        return ""
    return f"{float(n):.{digits}f}"


_env = Environment(
    loader=PackageLoader("daemons.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(ago=ago, duration=duration, octets=octets, bits=bits, when=when, number=number)


def page(template: str, part: bool = False, **context: Any) -> str:
    """A whole page, or (``part``) only its ``main`` block."""
    tpl = _env.get_template(template)
    if not part:
        return tpl.render(**context)
    return "".join(tpl.blocks["main"](tpl.new_context(context)))
