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
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class SampleStore:
    """Each target's last poll, rendered on scrape (thread-safe)."""

    def __init__(self) -> None:
        self._latest: dict[str, Sequence[Sample]] = {}
        self._lock = threading.Lock()

    def put(self, target: str, samples: Sequence[Sample]) -> None:
        with self._lock:
            self._latest[target] = samples

    def forget(self, target: str) -> None:
        with self._lock:
            self._latest.pop(target, None)

    def render(self) -> str:
        with self._lock:
            latest = dict(self._latest)
        families: dict[str, tuple[str, list[str]]] = {}
        for target, samples in sorted(latest.items()):
            for s in samples:
                kind = "counter" if s.kind == "counter" else "gauge"
                labels = ",".join(
                    f'{k}="{_escape(v)}"' for k, v in sorted([("target", target), *s.labels])
                )
                line = f"{s.metric}{{{labels}}} {_number(s.value)}"
                families.setdefault(s.metric, (kind, []))[1].append(line)
        out: list[str] = []
        for name, (kind, lines) in sorted(families.items()):
            out.append(f"# HELP {name} SNMP {name}")
            out.append(f"# TYPE {name} {kind}")
            out += lines
        return "\n".join(out) + "\n" if out else ""
