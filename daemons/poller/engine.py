"""Turning one poll's varbinds into samples. Pure.

A target's poll reads each profile's scalars with GET and walks each table's columns with
GETBULK. ``Digest.add`` takes what came back; ``samples`` turns it into metric samples
(counter rates via ``rates``, gauges scaled, label columns attached to their row), keeping
the previous counter readings of the target for the next poll.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from daemons.poller import rates
from daemons.poller.enums import ENUMS
from daemons.poller.profiles import INFO, Column, Profile, Table

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
IF_HIGH_SPEED = "ifHighSpeed"  # Mbit/s: bounds a believable Counter32 wrap per interface
IF_SPEED = "ifSpeed"  # bit/s: the same, for devices without ifXTable

Value = int | float | str | bytes
# Bytes of varbinds a GET of known rows may carry. v1/v2c: gufo-snmp reads responses of up
# to 4,080 bytes. v3: gufo-snmp announces msgMaxSize 2048 in every request, so the whole
# response message must fit 2,048 bytes; the header, USM parameters (engine ID, user, a
# SHA-512 digest), the scoped PDU's context and DES padding take up to about 330 of them,
# and the budget keeps a fifth for values that grow (a counter, a longer ifAlias). An agent
# answers an oversized GET with tooBig (net-snmp) or drops it (snmpsim): client._get_rows
# splits such a GET.
GET_BUDGET = 2500
V3_GET_BUDGET = 1400


class Sample(NamedTuple):
    """One value of one poll. (A NamedTuple: immutable like a frozen dataclass, and made
    three times faster; a poll of 500 interfaces makes 10,000 of them.)"""

    metric: str
    labels: tuple[tuple[str, str], ...]
    value: int | float  # counters and unscaled integer gauges stay exact ints (Counter64)
    kind: str  # gauge | counter (the running total) | rate (per second)


@dataclass
class TargetState:
    """What a target's previous polls left: the last reading of every counter, and the
    device's sysObjectID (which profiles with ``match_sys_object_id`` fit)."""

    counters: dict[tuple[str, str], rates.Reading] = field(default_factory=dict)
    resets: int = 0
    wraps: int = 0
    sys_object_id: str | None = None
    # The tables' rows as the last walk found them (instance OIDs, in GET-sized chunks),
    # read with GET until the next walk; the columns they were walked for, and when
    # (monotonic).
    rows: tuple[tuple[str, ...], ...] = ()
    walked: tuple[str, ...] = ()
    walked_at: float = 0.0

    def walk_due(self, walks: list[str], now: float, every: float) -> bool:
        """Whether this poll walks the tables instead of reading the known rows: no rows
        yet, other columns than those walked, or ``every`` seconds since (0: always)."""
        return not self.rows or self.walked != tuple(walks) or now - self.walked_at >= every

    def after_read(
        self,
        walks: list[str],
        gets: list[str],
        got: Mapping[str, object],
        walked: bool,
        at: float,
        resets: int,
        rows: tuple[tuple[str, ...], ...] | None = None,
        budget: int = GET_BUDGET,
    ) -> None:
        """After a poll's read (and ``samples``; ``resets`` is the count before it): a walk
        leaves its rows for the GETs of the next polls. A reboot (indexes may move) or a
        known row that did not answer brings the next walk forward. ``rows``: the GETs as
        the read asked them in the end (a chunk too big for the agent, split)."""
        rows = self.rows if rows is None else rows
        if walked:
            scalars = set(gets)
            self.rows = chunks([(oid, v) for oid, v in got.items() if oid not in scalars], budget)
            self.walked, self.walked_at = tuple(walks), at
        elif self.resets != resets or len(got) - sum(g in got for g in gets) < sum(
            len(c) for c in rows
        ):
            self.rows = ()
        else:
            self.rows = rows  # as asked in the end (a chunk too big for the agent, split)


def _ber_size(oid: str, value: object) -> int:
    """About what a varbind of ``oid`` with ``value`` takes in a response (BER): the OID's
    arcs in base 128, the value's bytes, tags and lengths."""
    arcs = oid.split(".")
    size = 1 + sum((int(a).bit_length() + 6) // 7 or 1 for a in arcs[2:])
    if isinstance(value, bytes | str):
        size += len(value) + (len(value) // 4 if isinstance(value, str) else 0)
    elif isinstance(value, int):
        size += value.bit_length() // 8 + 1
    else:
        size += 16
    return size + 8  # varbind SEQUENCE, OID and value tags and lengths


def chunks(
    found: list[tuple[str, object]], budget: int = GET_BUDGET
) -> tuple[tuple[str, ...], ...]:
    """Instance OIDs in GETs whose responses stay within ``budget`` bytes of varbinds
    (95 to 125 IF-MIB values a request for the benchmark's agents), going by the values a
    walk found, with room for them to grow."""
    out: list[tuple[str, ...]] = []
    chunk: list[str] = []
    used = 0
    for oid, value in found:
        size = _ber_size(oid, value)
        if chunk and used + size > budget:
            out.append(tuple(chunk))
            chunk, used = [], 0
        chunk.append(oid)
        used += size
    if chunk:
        out.append(tuple(chunk))
    return tuple(out)


def applicable(profiles: Iterable[Profile], state: TargetState) -> list[Profile]:
    """The profiles that fit the device: those without ``match_sys_object_id``, and those
    whose prefixes its sysObjectID starts with (known after its first poll)."""
    return [p for p in profiles if p.fits(state.sys_object_id)]


def plan(
    profiles: Iterable[Profile], state: TargetState | None = None
) -> tuple[list[str], list[str]]:
    """The OIDs to GET (scalars, with sysUpTime for reset detection, and sysObjectID when a
    profile is for some devices only) and the column OIDs to walk (tables), of the profiles
    that fit the device."""
    profiles = list(profiles)
    gets = [SYS_UPTIME]
    if any(p.match_sys_object_id for p in profiles):
        gets.append(SYS_OBJECT_ID)
    walks: list[str] = []
    for p in applicable(profiles, state or TargetState()):
        gets += [c.oid for c in p.scalars if c.oid not in gets]
        for t in p.tables:
            walks += [c.oid for c in t.columns if c.oid not in walks]
    return gets, walks


def _number(value: Value) -> int | float | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    return None


def _text(value: Value) -> str:
    """Text as a label or an info value: UTF-8 (bytes that are not replaced by U+FFFD);
    the NUL bytes C strings end with are dropped, one inside becomes U+FFFD (PostgreSQL
    refuses NUL in text and jsonb: it lost every sample of the device)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if "\x00" in text:
        text = text.rstrip("\x00").replace("\x00", "\ufffd")
    return text


def info_text(kind: str, value: Value, enum: Mapping[int, str] | None = None) -> str:
    """The label value of an info column, as snmp_exporter renders its types: ``octets``
    as 0x and upper-case hex ("" when empty; an OID as text), ``physaddress`` as six
    upper-case hex bytes with colons (padded with zeros, as it does), ``enum`` by name
    (the number if the name is unknown)."""
    if kind == "enum":
        number = int(value) if isinstance(value, int | float) else 0
        return (enum or {}).get(number, str(number))
    if kind == "physaddress":
        raw = value if isinstance(value, bytes) else _text(value).encode()
        return ":".join(f"{b:02X}" for b in (raw + bytes(6))[:6])
    if isinstance(value, bytes):
        return "0x" + value.hex().upper() if value else ""
    return _text(value)


@dataclass(frozen=True)
class _TablePlan:
    """What ``samples`` needs of a table, worked out once per table (not once per poll)."""

    by_oid: dict[str, tuple[str, ...]]  # column OID -> the names of the columns with it
    prefixes: tuple[tuple[str, tuple[str, ...]], ...]  # column OID + "." -> names
    nested: bool  # a column's OID is inside another's
    root: str  # what every column's OID starts with ("" if nothing)
    # each numeric column: name, is a gauge, scale, bits if a counter, bounded by the
    # speed, the name of its rate
    numeric: tuple[tuple[str, bool, float, int, bool, str], ...]
    # each info column: name, type, metric name, enum names
    infos: tuple[tuple[str, str, str, Mapping[int, str] | None], ...] = ()


_plans: dict[int, tuple[Table, _TablePlan]] = {}


def _plan(t: Table) -> _TablePlan:
    cached = _plans.get(id(t))
    if cached is not None and cached[0] is t:
        return cached[1]
    names: dict[str, list[str]] = {}
    for c in t.columns:
        names.setdefault(c.oid, []).append(c.name)
    prefixes = tuple((oid + ".", tuple(n)) for oid, n in names.items())
    plan = _TablePlan(
        {oid: tuple(n) for oid, n in names.items()},
        prefixes,
        any(a != b and b.startswith(a) for a, _ in prefixes for b, _ in prefixes),
        t.root + "." if t.root else "",
        tuple(
            (
                c.name,
                c.type == "gauge",
                c.scale,
                32 if c.type == "counter32" else 64,
                "Octets" in c.name,
                c.name + "_rate",
            )
            for c in t.columns
            if c.type in ("counter32", "counter64", "gauge")
        ),
        tuple((c.name, c.type, c.metric, ENUMS.get(c.enum)) for c in t.columns if c.type in INFO),
    )
    if len(_plans) > 1000:  # tables of profiles reloaded many times over
        _plans.clear()
    _plans[id(t)] = (t, plan)
    return plan


def _rows(t: Table, plan: _TablePlan, got: Mapping[str, Value]) -> dict[str, dict[str, Value]]:
    """The table's rows in ``got``: each index with its columns' values by name. An OID
    belongs to a column when it starts with the column's OID and a dot; the rest is the
    row index."""
    rows: dict[str, dict[str, Value]] = {}
    if plan.nested:  # an OID may belong to two columns: every column, every OID
        for col in t.columns:
            prefix = col.oid + "."
            for oid, value in got.items():
                if oid.startswith(prefix):
                    rows.setdefault(oid[len(prefix) :], {})[col.name] = value
        return rows
    by_oid, root = plan.by_oid, plan.root
    for oid, value in got.items():
        if not oid.startswith(root):
            continue
        head, _, index = oid.rpartition(".")
        columns = by_oid.get(head)  # the usual one-number index (ifIndex)
        if columns is None:
            for prefix, named in plan.prefixes:  # a longer index (or not a column at all)
                if oid.startswith(prefix):
                    columns, index = named, oid[len(prefix) :]
                    break
            else:
                continue
        row = rows.get(index)
        if row is None:
            row = rows[index] = {}
        for name in columns:
            row[name] = value
    return rows


def samples(
    profiles: Iterable[Profile],
    got: Mapping[str, Value],
    state: TargetState,
    now: float,
) -> list[Sample]:
    """Samples of one poll. ``got`` maps each OID read (scalars and walked rows) to its
    value; counters also update ``state``. Profiles that do not fit the device's
    sysObjectID give nothing."""
    object_id = got.get(SYS_OBJECT_ID)
    if object_id is not None:
        state.sys_object_id = _text(object_id).lstrip(".")
    profiles = applicable(profiles, state)
    uptime_raw = got.get(SYS_UPTIME)
    uptime = int(uptime_raw) if isinstance(uptime_raw, int | float) else None
    out: list[Sample] = []
    seen: set[str] = set()  # a scalar two profiles both read (sysUpTime) gives one sample
    for p in profiles:
        for col in p.scalars:
            if col.oid not in got or col.metric in seen:
                continue
            seen.add(col.metric)
            if col.type == "label":  # text: an info metric, as snmp_exporter shows strings
                out.append(Sample(col.name, ((col.name, _text(got[col.oid])),), 1, "gauge"))
            elif col.type in INFO:
                text = info_text(col.type, got[col.oid], ENUMS.get(col.enum))
                out.append(Sample(col.metric, ((col.name, text),), 1, "gauge"))
            else:
                out += _one(col, got[col.oid], (), "", state, now, uptime, None)
        for t in p.tables:
            _table(t, got, state, now, uptime, out)
    return out


def _table(
    t: Table,
    got: Mapping[str, Value],
    state: TargetState,
    now: float,
    uptime: int | None,
    out: list[Sample],
) -> None:
    """A table's samples, row by row, onto ``out``."""
    counters = state.counters
    rate, reading_of, outcome = rates.rate, rates.Reading, rates.Outcome
    new = tuple.__new__  # Sample(...) and Reading(...) without their __new__: half the time
    plan = _plan(t)
    rows = _rows(t, plan, got)
    numeric = plan.numeric
    for index, row in sorted(rows.items()):
        named = [(name, _text(row[name])) for name in t.labels if name in row]
        labels = ((t.index, index), *named)
        limit = _octets_limit(row)
        for name, gauge, scale, bits, octets, rate_name in numeric:
            if name not in row:
                continue
            value = row[name]
            kind = type(value)
            # the usual case (an int) without a call
            number = cast(
                "int | float | None", value if kind is int or kind is float else _number(value)
            )
            if number is None:
                continue
            if gauge:
                out.append(
                    new(Sample, (name, labels, number * scale if scale != 1 else number, "gauge"))
                )
                continue
            key = (name, index)
            reading = new(reading_of, (int(number), now, uptime))
            prev = counters.get(key)
            counters[key] = reading
            out.append(new(Sample, (name, labels, reading[0], "counter")))
            if prev is None:
                continue
            # The usual case inline (time went on, the counter did not go back, no
            # reboot): rates.rate's answer without the call.
            dt, delta, was = now - prev[1], reading[0] - prev[0], prev[2]
            if dt > 0 and delta >= 0 and (was is None or uptime is None or uptime >= was):
                out.append(new(Sample, (rate_name, labels, delta / dt, "rate")))
                continue
            r = rate(prev, reading, bits, limit if octets else None)
            if r.outcome is outcome.RESET:
                state.resets += 1
            elif r.outcome is outcome.WRAP:
                state.wraps += 1
            if r.per_second is not None:
                out.append(new(Sample, (rate_name, labels, r.per_second, "rate")))
        for name, kind_, metric, enum in plan.infos:
            if name in row:
                info = ((*labels, (name, info_text(kind_, row[name], enum))),)
                out.append(new(Sample, (metric, info[0], 1, "gauge")))


def _octets_limit(row: Mapping[str, Value]) -> float | None:
    """The most octets/s the row's interface can count: ifHighSpeed (Mbit/s), or ifSpeed
    (bit/s) on a device without ifXTable; None when neither is known."""
    high = _number(row[IF_HIGH_SPEED]) if IF_HIGH_SPEED in row else None
    if high:
        return rates.octets_limit(int(high * 1_000_000))
    speed = _number(row[IF_SPEED]) if IF_SPEED in row else None
    return rates.octets_limit(int(speed)) if speed else None


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
        return [Sample(col.name, labels, number * col.scale if col.scale != 1 else number, "gauge")]
    key = (col.name, index)
    reading = rates.Reading(int(number), now, uptime)
    prev = state.counters.get(key)
    state.counters[key] = reading
    out = [Sample(col.name, labels, reading.value, "counter")]
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
