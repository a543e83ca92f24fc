"""The latest SNMP samples as Prometheus text, named the way snmp_exporter users expect.

``ifHCInOctets`` is a counter named ``ifHCInOctets`` (not ``ifHCInOctets_total``, which is
what prometheus_client would make of it), gauges keep their MIB names, and the labels are
the row's index and label columns (``ifIndex``, ``ifName``, ``ifAlias``) plus ``target``:
``rate(ifHCInOctets[5m])`` dashboards written for snmp_exporter work unchanged. The rates
the poller computes itself come as ``<name>_rate`` gauges. Served on the poller's own
``/snmp/metrics`` (text format 0.0.4), apart from the daemon's ``/metrics``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from daemons.poller.engine import Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    """A sample's value as text: an int exactly (a Counter64 past 2^53 is not rounded
    to a float), a float as Python writes it back."""
    if type(value) is int:
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class SampleStore:
    """Each target's last poll, rendered on scrape (thread-safe). A target's lines are
    rendered once per poll, on the first scrape after it, and kept until its next poll: a
    scrape re-renders only the targets polled since the one before (500 IF-MIB targets
    are some 380,000 lines, and a scrape runs on the poller's event loop)."""

    def __init__(self) -> None:
        self._latest: dict[str, Sequence[Sample]] = {}
        self._lines: dict[str, dict[str, tuple[str, list[str]]]] = {}  # by target, metric
        self._lock = threading.Lock()

    def put(self, target: str, samples: Sequence[Sample]) -> None:
        with self._lock:
            self._latest[target] = samples
            self._lines.pop(target, None)

    def forget(self, target: str) -> None:
        with self._lock:
            self._latest.pop(target, None)
            self._lines.pop(target, None)

    def render(self) -> str:
        with self._lock:
            latest = dict(self._latest)
            rendered = dict(self._lines)
        families: dict[str, tuple[str, list[str]]] = {}
        for target, samples in sorted(latest.items()):
            lines = rendered.get(target)
            if lines is None:
                lines = _lines(target, samples)
                with self._lock:
                    if self._latest.get(target) is samples:  # not polled again meanwhile
                        self._lines[target] = lines
            for metric, (kind, text) in lines.items():
                family = families.get(metric)
                if family is None:
                    family = families[metric] = (kind, [])
                family[1].extend(text)
        out: list[str] = []
        for name, (kind, lines_of) in sorted(families.items()):
            out.append(f"# HELP {name} SNMP {name}")
            out.append(f"# TYPE {name} {kind}")
            out += lines_of
        return "\n".join(out) + "\n" if out else ""


def _lines(target: str, samples: Sequence[Sample]) -> dict[str, tuple[str, list[str]]]:
    """A target's samples as text lines, by metric (with the kind of its first sample), in
    order. The samples of an interface share one labels tuple: its text is made once."""
    out: dict[str, tuple[str, list[str]]] = {}
    texts: dict[int, str] = {}
    for s in samples:
        text = texts.get(id(s.labels))
        if text is None:
            text = texts[id(s.labels)] = ",".join(
                f'{k}="{_escape(v)}"' for k, v in sorted([("target", target), *s.labels])
            )
        family = out.get(s.metric)
        if family is None:
            family = out[s.metric] = ("counter" if s.kind == "counter" else "gauge", [])
        family[1].append(f"{s.metric}{{{text}}} {_number(s.value)}")
    return out
