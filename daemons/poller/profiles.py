"""SNMP polling profiles from ``policies/snmp/*.toml``: what to poll per device class. Pure.

    [profiles.NAME]
    description = "..."
    interval = 60                         # seconds between polls (>= 10)
    match_sys_object_id = ["1.3.6.1.4.1.5875."]   # optional: device classes it fits
    [profiles.NAME.scalars]
    sysUpTime = { oid = "1.3.6.1.2.1.1.3.0", type = "gauge" }
    [profiles.NAME.tables.TABLE]
    index = "ifIndex"                     # the label the row index becomes
    labels = ["ifName", "ifAlias"]        # label columns attached to every metric of a row
    columns.ifHCInOctets = { oid = "1.3.6.1.2.1.31.1.1.1.6", type = "counter64" }

Types: ``counter32`` and ``counter64`` (turned into rates), ``gauge`` (numbers as read,
times ``scale``), ``label`` (text: a table's label, or a scalar's info metric). Info
metrics, as snmp_exporter shows them (value 1, the text in a label named after the
column): ``octets`` (an OCTET STRING as ``0x`` and hex, an OID as text), ``physaddress``
(``00:1A:2B:3C:4D:5E``), ``enum`` (``NAME_info{NAME="ethernetCsmacd"}``, the names from
``enum = "IANAifType"``, daemons/poller/enums.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemons.core.policies import PolicySet
from daemons.poller.enums import ENUMS

TYPES = ("counter32", "counter64", "gauge", "label", "octets", "physaddress", "enum")
INFO = ("octets", "physaddress", "enum")  # one info metric a row, the value as a label
_OID = re.compile(r"^1(\.(0|[1-9][0-9]{0,9})){2,127}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PROFILE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Column:
    name: str
    oid: str
    type: str
    scale: float = 1.0
    enum: str = ""  # the ENUMS table of an ``enum`` column

    @property
    def metric(self) -> str:
        """The metric's name: an ``enum`` column's info metric is NAME_info."""
        return self.name + "_info" if self.type == "enum" else self.name


@dataclass(frozen=True)
class Table:
    name: str
    index: str
    columns: tuple[Column, ...]
    labels: tuple[str, ...] = ()

    @property
    def root(self) -> str:
        """The longest OID prefix all columns share (what one GETBULK walk covers)."""
        parts = [c.oid.split(".") for c in self.columns]
        common: list[str] = []
        for group in zip(*parts, strict=False):
            if len(set(group)) != 1:
                break
            common.append(group[0])
        return ".".join(common)


@dataclass(frozen=True)
class Profile:
    name: str
    interval: int
    description: str = ""
    scalars: tuple[Column, ...] = ()
    tables: tuple[Table, ...] = ()
    match_sys_object_id: tuple[str, ...] = ()
    source: str = ""

    @property
    def metrics(self) -> frozenset[str]:
        """The names of the metrics the profile gives (its rates aside)."""
        names = {c.metric for c in self.scalars}
        names |= {c.metric for t in self.tables for c in t.columns if c.type != "label"}
        return frozenset(names)

    def fits(self, sys_object_id: str | None) -> bool:
        if not self.match_sys_object_id:
            return True
        return sys_object_id is not None and sys_object_id.startswith(self.match_sys_object_id)


def _column(profile: str, name: str, spec: Any) -> Column:
    if not _NAME.match(name):
        raise ValueError(f"profile {profile!r}: {name!r} is not a metric name")
    if not isinstance(spec, Mapping) or set(spec) - {"oid", "type", "scale", "enum"}:
        raise ValueError(f"profile {profile!r}: {name} is {{ oid = ..., type = ... }}")
    oid = str(spec.get("oid", "")).lstrip(".")
    if not _OID.match(oid):
        raise ValueError(f"profile {profile!r}: {name}: {oid!r} is not a numeric OID")
    kind = spec.get("type", "gauge")
    if kind not in TYPES:
        raise ValueError(f"profile {profile!r}: {name}: type is one of {', '.join(TYPES)}")
    scale = spec.get("scale", 1.0)
    if not isinstance(scale, int | float) or isinstance(scale, bool) or scale == 0:
        raise ValueError(f"profile {profile!r}: {name}: scale is a non-zero number")
    enum = str(spec.get("enum", ""))
    if (kind == "enum") != bool(enum) or (enum and enum not in ENUMS):
        raise ValueError(
            f"profile {profile!r}: {name}: type enum goes with enum = one of {sorted(ENUMS)}"
        )
    return Column(name, oid, kind, float(scale), enum)


def _profile(name: str, spec: Mapping[str, Any], source: str) -> Profile:
    if not _PROFILE.match(name):
        raise ValueError(f"{name!r} is not a profile name (a-z 0-9 _ . -)")
    unknown = set(spec) - {"description", "interval", "scalars", "tables", "match_sys_object_id"}
    if unknown:
        raise ValueError(f"profile {name!r}: unknown key(s) {sorted(unknown)}")
    interval = spec.get("interval", 60)
    if not isinstance(interval, int) or not 10 <= interval <= 86_400:
        raise ValueError(f"profile {name!r}: interval is whole seconds, 10 to 86400")
    scalars = tuple(_column(name, k, v) for k, v in dict(spec.get("scalars", {})).items())
    tables = []
    for tname, tspec in dict(spec.get("tables", {})).items():
        if set(tspec) - {"index", "labels", "columns"}:
            raise ValueError(f"profile {name!r}: table {tname}: index, labels, columns only")
        cols = tuple(_column(name, k, v) for k, v in dict(tspec.get("columns", {})).items())
        if not cols:
            raise ValueError(f"profile {name!r}: table {tname} has no columns")
        labels = tuple(str(x) for x in tspec.get("labels", []))
        named = {c.name for c in cols if c.type == "label"}
        missing = [x for x in labels if x not in named]
        if missing:
            raise ValueError(
                f"profile {name!r}: table {tname}: labels {missing} are not label columns"
            )
        tables.append(Table(tname, str(tspec.get("index", "index")), cols, labels))
    if not scalars and not tables:
        raise ValueError(f"profile {name!r} polls nothing")
    seen: set[str] = set()
    for col in [*scalars, *(c for t in tables for c in t.columns)]:
        if col.metric in seen:
            raise ValueError(f"profile {name!r}: {col.metric} appears twice")
        seen.add(col.metric)
    matches = tuple(str(x).lstrip(".") for x in spec.get("match_sys_object_id", []))
    return Profile(
        name,
        interval,
        str(spec.get("description", "")),
        scalars,
        tuple(tables),
        matches,
        source,
    )


def load_profiles(policies: PolicySet) -> dict[str, Profile]:
    """Every profile under ``policies/snmp/``. Raises PolicyError naming the file."""
    out: dict[str, Profile] = {}
    for path, doc in sorted(policies.under("snmp").items()):
        where: tuple[str, ...] = ()
        try:
            if set(doc) - {"profiles"}:
                where = (sorted(set(doc) - {"profiles"})[0],)
                raise ValueError(f"unknown table(s) {sorted(set(doc) - {'profiles'})}")
            for name, spec in dict(doc.get("profiles", {})).items():
                where = ("profiles", name)
                if name in out:
                    raise ValueError(f"profile {name!r} is defined twice")
                out[name] = _profile(name, spec, path)
        except (ValueError, TypeError) as exc:
            raise policies.error(path, str(exc), where) from None
    return out
