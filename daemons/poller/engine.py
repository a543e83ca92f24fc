"""Turning one poll's varbinds into samples. Pure.

A target's poll reads each profile's scalars with GET and walks each table's columns with
GETBULK. ``Digest.add`` takes what came back; ``samples`` turns it into metric samples
(counter rates via ``rates``, gauges scaled, label columns attached to their row), keeping
the previous counter readings of the target for the next poll.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from daemons.poller import rates
from daemons.poller.profiles import Column, Profile

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_HIGH_SPEED = "ifHighSpeed"  # Mbit/s: bounds a believable Counter32 wrap per interface

Value = int | float | str | bytes


@dataclass(frozen=True, slots=True)
class Sample:
    metric: str
    labels: tuple[tuple[str, str], ...]
    value: float
    kind: str  # gauge | counter (the running total) | rate (per second)


@dataclass
class TargetState:
    """What a target's previous polls left: the last reading of every counter."""

    counters: dict[tuple[str, str], rates.Reading] = field(default_factory=dict)
    resets: int = 0
    wraps: int = 0


def plan(profiles: Iterable[Profile]) -> tuple[list[str], list[str]]:
    """The OIDs to GET (scalars, with sysUpTime for reset detection) and the column OIDs to
    walk (tables)."""
    gets = [SYS_UPTIME]
    walks: list[str] = []
    for p in profiles:
        gets += [c.oid for c in p.scalars if c.oid not in gets]
        for t in p.tables:
            walks += [c.oid for c in t.columns if c.oid not in walks]
    return gets, walks


def _number(value: Value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _text(value: Value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def samples(
    profiles: Iterable[Profile],
    got: Mapping[str, Value],
    state: TargetState,
    now: float,
) -> list[Sample]:
    """Samples of one poll. ``got`` maps each OID read (scalars and walked rows) to its
    value; counters also update ``state``."""
    uptime_raw = got.get(SYS_UPTIME)
    uptime = int(uptime_raw) if isinstance(uptime_raw, int | float) else None
    out: list[Sample] = []
    for p in profiles:
        for col in p.scalars:
            if col.oid in got:
                out += _one(col, got[col.oid], (), "", state, now, uptime, None)
        for t in p.tables:
            rows: dict[str, dict[str, Value]] = {}
            for col in t.columns:
                prefix = col.oid + "."
                for oid, value in got.items():
                    if oid.startswith(prefix):
                        rows.setdefault(oid[len(prefix) :], {})[col.name] = value
            for index, row in sorted(rows.items()):
                named = [(name, _text(row[name])) for name in t.labels if name in row]
                labels = ((t.index, index), *named)
                speed = _number(row[IF_HIGH_SPEED]) if IF_HIGH_SPEED in row else None
                limit = rates.octets_limit(int(speed * 1_000_000)) if speed else None
                for col in t.columns:
                    if col.type != "label" and col.name in row:
                        out += _one(col, row[col.name], labels, index, state, now, uptime, limit)
    return out


def _one(
    col: Column,
    value: Value,
    labels: tuple[tuple[str, str], ...],
    index: str,
    state: TargetState,
    now: float,
    uptime: int | None,
    limit: float | None,
) -> list[Sample]:
    number = _number(value)
    if number is None or col.type == "label":
        return []
    if col.type == "gauge":
        return [Sample(col.name, labels, number * col.scale, "gauge")]
    key = (col.name, index)
    reading = rates.Reading(int(number), now, uptime)
    prev = state.counters.get(key)
    state.counters[key] = reading
    out = [Sample(col.name, labels, number, "counter")]
    if prev is not None:
        bits = 32 if col.type == "counter32" else 64
        got = rates.rate(prev, reading, bits, limit if "Octets" in col.name else None)
        if got.outcome is rates.Outcome.RESET:
            state.resets += 1
        elif got.outcome is rates.Outcome.WRAP:
            state.wraps += 1
        if got.per_second is not None:
            out.append(Sample(col.name + "_rate", labels, got.per_second, "rate"))
    return out
