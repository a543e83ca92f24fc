"""snmp_exporter's scrape, answered from the pollers' latest polls. Pure.

``GET /snmp?target=T&module=M[&auth=A]`` is snmp_exporter's URL, so a Prometheus job
written for it (``metrics_path: /snmp``, ``params: {module: [if_mib]}``, the device
address relabelled into ``__param_target``) scrapes netd unchanged:

- ``target`` is a netd target's name, or its address (``10.0.0.1``, or ``10.0.0.1:1161``
  for another port), exactly once;
- ``module`` is one or more (comma-separated) profile names, ``_`` and ``-`` alike, so
  ``if_mib`` is the ``if-mib`` profile; snmp_exporter's default is ``if_mib``;
- ``auth`` is accepted and not used: netd reads each device with the credentials of its
  target (``netd snmp target add``), which snmp_exporter would take from ``auth``.

The answer is the target's last poll (every poller stores it in Redis, so any poller
answers for every target), with snmp_exporter's names, types and labels: no ``target``
label (Prometheus adds ``instance``), a table's label columns present on every row ("" when
the device has none, as snmp_exporter's lookups give), counters as counters, no rates.
A target whose last poll failed, or whose last poll is older than three intervals, is a
failed scrape (HTTP 500, the reason in the body), as snmp_exporter fails a scrape of a
device that does not answer: Prometheus marks it down and drops its series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemons.poller.exposition import _escape, _number
from daemons.poller.profiles import Profile

DEFAULT_MODULE = "if_mib"


class ScrapeError(Exception):
    """A scrape answered with an HTTP error status and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Query:
    target: str
    modules: tuple[str, ...]
    auth: str


def parse(params: Mapping[str, Sequence[str]]) -> Query:
    """The scrape's parameters (a parsed query string); ScrapeError(400) as
    snmp_exporter words it."""
    targets = params.get("target", [])
    if len(targets) != 1 or not targets[0]:
        raise ScrapeError(400, "'target' parameter must be specified once")
    modules = params.get("module", [])
    if len(modules) > 1:
        raise ScrapeError(400, "'module' parameter must only be specified once")
    names = tuple(m.strip() for m in (modules[0] if modules else DEFAULT_MODULE).split(","))
    if not all(names):
        raise ScrapeError(400, "'module' parameter has an empty name")
    auths = params.get("auth", [])
    if len(auths) > 1:
        raise ScrapeError(400, "'auth' parameter must only be specified once")
    return Query(targets[0], names, auths[0] if auths else "")


def module_profiles(names: Iterable[str], profiles: Mapping[str, Profile]) -> list[Profile]:
    """The profiles ``names`` mean (``if_mib`` is ``if-mib``); ScrapeError(400) for one
    that is not there."""
    by_key = {p.replace("_", "-"): prof for p, prof in profiles.items()}
    out = []
    for name in names:
        profile = profiles.get(name) or by_key.get(name.replace("_", "-"))
        if profile is None:
            raise ScrapeError(400, f"Unknown module '{name}'")
        out.append(profile)
    return out


def render(
    samples: Iterable[tuple[str, dict[str, str], Any, str]],
    profiles: Sequence[Profile],
    status: Mapping[str, Any],
) -> str:
    """A target's last poll (``store.read_latest``'s samples) as snmp_exporter's scrape of
    ``profiles``, and its snmp_scrape_* gauges from the poll's ``status``."""
    wanted: set[str] = set()
    fill: dict[str, tuple[str, ...]] = {}  # a table's index label -> its label columns
    for p in profiles:
        wanted |= p.metrics
        for t in p.tables:
            fill[t.index] = t.labels
    families: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for metric, labels, value, kind in samples:
        if kind == "rate" or metric not in wanted:
            continue
        named = dict(labels)
        for index, columns in fill.items():
            if index in named:
                for column in columns:
                    named.setdefault(column, "")
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(named.items()))
        family = families.setdefault(metric, ("counter" if kind == "counter" else "gauge", []))
        family[1].append((text, _number(value)))
    out: list[str] = []
    for name, (kind, rows) in sorted(families.items()):
        out += [f"# HELP {name} SNMP {name}", f"# TYPE {name} {kind}"]
        out += [
            f"{name}{{{labels}}} {value}" if labels else f"{name} {value}"
            for labels, value in sorted(rows)
        ]
    took = float(status.get("duration") or 0.0)
    for name, help_, value in (
        (
            "snmp_scrape_duration_seconds",
            "Total SNMP time scrape took (walk and processing).",
            took,
        ),
        ("snmp_scrape_walk_duration_seconds", "Time SNMP walk/bulkwalk took.", took),
        (
            "snmp_scrape_pdus_returned",
            "PDUs returned from get, bulkget, and walk.",
            status.get("varbinds", 0),
        ),
    ):
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {_number(value)}"]
    return "\n".join(out) + "\n"


def check_status(status: Mapping[str, Any] | None, now: float, interval: float) -> None:
    """ScrapeError unless the target's last poll answered and is recent."""
    if status is None:
        raise ScrapeError(503, "not polled yet")
    if status.get("state") != "up":
        raise ScrapeError(
            500, f"error scraping target: {status.get('reason')}: {status.get('message')}"
        )
    last = float(status.get("last_poll") or 0.0)
    if now - last > 3 * interval:
        raise ScrapeError(500, f"error scraping target: no poll for {now - last:.0f} s")
