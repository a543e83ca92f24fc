"""Presets: what every matching CPE should look like. Pure.

``policies/cwmp/*.toml`` hold ``[presets.NAME]`` tables. A preset matches a session when
every match key it gives matches (``events`` matches when the Inform carries any of them).
It declares parameter values, the periodic inform interval and a target firmware. Only
values that differ from the device's stored ones are sent, so a preset that is already in
force sends nothing.

    [presets.lab-wifi]
    events = ["0 BOOTSTRAP", "1 BOOT", "2 PERIODIC"]
    oui = "1C61B4"
    product_class = "EX220"
    software_version = "1.0.0"
    tags = ["lab"]
    periodic_inform_interval = 300
    parameters = { "Device.WiFi.SSID.1.SSID" = "netd-lab" }
    firmware = { version = "1.1.0", file = "ex220-1.1.0.bin" }
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daemons.acs import cwmp
from daemons.core.policies import PolicySet

_KEYS = {
    "events",
    "oui",
    "product_class",
    "software_version",
    "tags",
    "periodic_inform_interval",
    "parameters",
    "firmware",
    "precedence",
}


@dataclass(frozen=True)
class Preset:
    name: str
    events: tuple[str, ...] = ()
    oui: str | None = None
    product_class: str | None = None
    software_version: str | None = None
    tags: tuple[str, ...] = ()
    periodic_inform_interval: int | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    firmware_version: str | None = None
    firmware_file: str | None = None
    precedence: int = 0
    source: str = ""

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in _asdict(self).items() if v not in (None, ())}
        return out


def _asdict(p: Preset) -> dict[str, Any]:
    return {
        "events": list(p.events),
        "oui": p.oui,
        "product_class": p.product_class,
        "software_version": p.software_version,
        "tags": list(p.tags),
        "periodic_inform_interval": p.periodic_inform_interval,
        "parameters": dict(p.parameters),
        "firmware": {"version": p.firmware_version, "file": p.firmware_file}
        if p.firmware_version
        else None,
        "precedence": p.precedence,
    }


@dataclass(frozen=True)
class Facts:
    """What a session knows of its device when presets are matched."""

    oui: str
    product_class: str
    software_version: str
    events: tuple[str, ...]
    tags: tuple[str, ...] = field(default_factory=tuple)


def load_presets(policies: PolicySet) -> list[Preset]:
    """Every preset under ``policies/cwmp/``, by precedence then name. Raises PolicyError."""
    out: dict[str, Preset] = {}
    for path, doc in sorted(policies.under("cwmp").items()):
        where: tuple[str, ...] = ()
        try:
            unknown = set(doc) - {"presets"}
            if unknown:
                where = (sorted(unknown)[0],)
                raise ValueError(f"unknown table(s) {sorted(unknown)}")
            for name, spec in dict(doc.get("presets", {})).items():
                where = ("presets", name)
                if name in out:
                    raise ValueError(f"preset {name!r} is defined twice")
                out[name] = _preset(name, spec, path)
        except (ValueError, TypeError) as exc:
            raise policies.error(path, str(exc), where) from None
    return sorted(out.values(), key=lambda p: (p.precedence, p.name))


def _strs(spec: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = spec.get(key, [])
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} is a list of strings")
    return tuple(value)


def _preset(name: str, spec: Mapping[str, Any], path: str) -> Preset:
    unknown = set(spec) - _KEYS
    if unknown:
        raise ValueError(f"preset {name!r}: unknown key(s) {sorted(unknown)}")
    params = dict(spec.get("parameters", {}))
    for k in params:
        if not k or k.endswith(".") or not k.startswith(("Device.", "InternetGatewayDevice.")):
            raise ValueError(f"preset {name!r}: {k!r} is not a parameter path")
    interval = spec.get("periodic_inform_interval")
    if interval is not None and (not isinstance(interval, int) or interval < 1):
        raise ValueError(f"preset {name!r}: periodic_inform_interval is seconds (>= 1)")
    fw = dict(spec.get("firmware", {}))
    if fw and (set(fw) != {"version", "file"}):
        raise ValueError(f"preset {name!r}: firmware is {{ version = ..., file = ... }}")
    return Preset(
        name,
        _strs(spec, "events"),
        spec.get("oui"),
        spec.get("product_class"),
        spec.get("software_version"),
        _strs(spec, "tags"),
        interval,
        tuple((str(k), _text(v)) for k, v in sorted(params.items())),
        str(fw["version"]) if fw else None,
        str(fw["file"]) if fw else None,
        int(spec.get("precedence", 0)),
        path,
    )


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matches(p: Preset, f: Facts) -> bool:
    return (
        (not p.events or any(e in f.events for e in p.events))
        and (p.oui is None or p.oui == f.oui)
        and (p.product_class is None or p.product_class == f.product_class)
        and (p.software_version is None or p.software_version == f.software_version)
        and all(t in f.tags for t in p.tags)
    )


def desired(presets: Iterable[Preset], f: Facts, root: str) -> dict[str, str]:
    """Parameter values the matching presets declare (a later preset wins), for ``root``."""
    out: dict[str, str] = {}
    for p in presets:
        if not matches(p, f):
            continue
        if p.periodic_inform_interval is not None:
            out[root + "ManagementServer.PeriodicInformEnable"] = "true"
            out[root + "ManagementServer.PeriodicInformInterval"] = str(p.periodic_inform_interval)
        for name, value in p.parameters:
            if name.startswith(root):
                out[name] = value
    return out


def firmware(presets: Iterable[Preset], f: Facts) -> tuple[str, str] | None:
    """(version, file) the matching presets want, if the device runs something else."""
    want = None
    for p in presets:
        if matches(p, f) and p.firmware_version:
            want = (p.firmware_version, p.firmware_file or "")
    if want is None or want[0] == f.software_version:
        return None
    return want


_BOOL = {"1": "true", "0": "false", "true": "true", "false": "false"}


def _same(a: str, b: str, kind: str) -> bool:
    if kind == "xsd:boolean":
        return _BOOL.get(a.lower(), a) == _BOOL.get(b.lower(), b)
    return a == b


def diff(
    want: Mapping[str, str], stored: Mapping[str, tuple[str | None, str | None]]
) -> list[cwmp.ParamValue]:
    """What must be set: wanted values that differ from the stored (value, type)."""
    out = []
    for name, value in sorted(want.items()):
        have, kind = stored.get(name, (None, None))
        kind = kind or ("xsd:unsignedInt" if name.endswith("Interval") else "xsd:string")
        if name.endswith("Enable") and kind == "xsd:string":
            kind = "xsd:boolean"
        if have is None or not _same(have, value, kind):
            out.append(cwmp.ParamValue(name, value, kind))
    return out
