"""Configuration: one TOML file, ``NETD_*`` environment overrides, secrets from ``*_file`` keys.

Where the file comes from, first match wins: ``--config PATH``, ``$NETD_CONFIG``, then for
a user other than root ``$XDG_CONFIG_HOME/netd/netd.toml`` (``~/.config/netd/netd.toml``),
then ``/etc/netd/netd.toml``; with none of them every key takes its default. Nothing depends
on the working directory: a relative path in the file is relative to the file's folder, and
one in the environment is made absolute when the config is loaded.

The state directory, when not set, is ``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``),
else ``/var/lib/netd`` for root, else ``$XDG_STATE_HOME/netd`` (``~/.local/state/netd``).

Every problem is reported as one :class:`ConfigError` naming the key, where the value came
from (the file, or the environment variable) and what was expected. The CLI turns it into a
single line on stderr and exit status 2.

This module owns finding, reading, overriding and validating the file; the section models
(the keys, defaults and bounds) are :mod:`daemons.core.config_sections`, re-exported here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from daemons.core.config_sections import (
    SYSTEM_STATE_DIR,
    AcsConfig,
    ApiConfig,
    Config,
    DatabaseConfig,
    DevicesConfig,
    EmbeddedConfig,
    LifecycleConfig,
    LogConfig,
    PoliciesConfig,
    PollerConfig,
    Port,
    RadiusConfig,
    RadsecConfig,
    RedisConfig,
    Seconds,
    SecretsConfig,
    StatusPort,
    VolthaConfig,
    VolthaStack,
    is_loopback,
)

__all__ = [
    "ENV_CONFIG",
    "ENV_PREFIX",
    "SYSTEM_CONFIG",
    "SYSTEM_STATE_DIR",
    "AcsConfig",
    "ApiConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "DevicesConfig",
    "EmbeddedConfig",
    "LifecycleConfig",
    "Loaded",
    "LogConfig",
    "PoliciesConfig",
    "PollerConfig",
    "Port",
    "RadiusConfig",
    "RadsecConfig",
    "RedisConfig",
    "Seconds",
    "SecretsConfig",
    "StatusPort",
    "VolthaConfig",
    "VolthaStack",
    "default_locations",
    "default_state_dir",
    "env_name",
    "find_config_file",
    "is_loopback",
    "load",
]

ENV_PREFIX = "NETD_"
ENV_CONFIG = "NETD_CONFIG"
SYSTEM_CONFIG = Path("/etc/netd/netd.toml")


class ConfigError(Exception):
    """A configuration value is missing, unknown or of the wrong shape."""

    def __init__(self, key: str, source: str, expected: str) -> None:
        super().__init__(key, source, expected)
        self.key = key
        self.source = source
        self.expected = expected

    def __str__(self) -> str:
        where = f"{self.key} in {self.source}" if self.key else self.source
        return f"config error: {where}: {self.expected}"


class Loaded(BaseModel):
    """A validated config and the file it came from (``None``: defaults only)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    config: Config
    path: Path | None


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _leaves(ann, (*prefix, name))
        else:
            yield (*prefix, name)
            extra = field.json_schema_extra
            if isinstance(extra, dict) and extra.get("secret"):
                yield (*prefix, f"{name}_file")


def _list_leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _list_leaves(ann, (*prefix, name))
        elif getattr(ann, "__origin__", None) is list:
            out.add((*prefix, name))
    return out


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "_".join(path).upper()


_ENV_KEYS: dict[str, tuple[str, ...]] = {env_name(p): p for p in _leaves(Config)}
_LIST_KEYS = _list_leaves(Config)


def _is_root() -> bool:
    return os.geteuid() == 0


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or Path.home())


def default_locations(environ: Mapping[str, str]) -> list[Path]:
    """Where a config file is looked for when none is named, in order."""
    found: list[Path] = []
    if not _is_root():
        base = environ.get("XDG_CONFIG_HOME") or str(_home(environ) / ".config")
        found.append(Path(base) / "netd" / "netd.toml")
    found.append(SYSTEM_CONFIG)
    return found


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """The state directory when the config does not set one (see the module docstring)."""
    if given := environ.get("STATE_DIRECTORY", "").split(":")[0]:
        return Path(given)
    if _is_root():
        return SYSTEM_STATE_DIR
    base = environ.get("XDG_STATE_HOME") or str(_home(environ) / ".local" / "state")
    return Path(base) / "netd"


def find_config_file(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """Return the config file to read (absolute), or ``None`` to run on defaults.

    Raises ConfigError when a file named by ``--config`` or ``$NETD_CONFIG`` does not exist.
    """
    for given, source in ((explicit, "--config"), (environ.get(ENV_CONFIG), ENV_CONFIG)):
        if given:
            path = Path(given)
            if not path.is_file():
                raise ConfigError("", f"{source} {given}", "file not found")
            return path.resolve()
    for candidate in default_locations(environ):
        if candidate.is_file():
            return candidate
    return None


def load(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Loaded:
    """Find, read, override and validate the configuration.

    Raises ConfigError on any problem; never anything else for bad input.
    """
    env = os.environ if environ is None else environ
    path = find_config_file(explicit, env)
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    file_label = str(path) if path else "defaults"
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("", str(path), f"cannot read file: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("", str(path), f"invalid TOML: {exc}") from None
        for leaf in _walk(data):
            origins[leaf] = str(path)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        key = _ENV_KEYS.get(name)
        if key is None:
            raise ConfigError(name, "the environment", "unknown setting (no such config key)")
        # A list from the environment is comma-separated: NETD_RADIUS_LISTEN="0.0.0.0,::"
        parsed: str | list[str] = value
        if key in _LIST_KEYS:
            parsed = [item.strip() for item in value.split(",") if item.strip()]
        _set(data, key, parsed, name)
        origins[key] = f"environment variable {name}"
    _absolute_paths(data, Config, (), origins, path)
    _resolve_secret_files(data, origins, file_label, path)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, origins, file_label) from None
    if ("state_dir",) not in origins:
        config = config.model_copy(update={"state_dir": default_state_dir(env)})
    return Loaded(config=config, path=path)


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    return any(_is_path(arg) for arg in getattr(annotation, "__args__", ()))


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return os.path.normpath(base / value)
    if isinstance(value, list):
        return [_absolute(item, base) for item in value]
    return value


def _absolute_paths(
    data: dict[str, Any],
    model: type[BaseModel],
    prefix: tuple[str, ...],
    origins: dict[tuple[str, ...], str],
    file: Path | None,
) -> None:
    """Make every relative path absolute: relative to the config file's folder when it came
    from the file, to the working directory (once, now) when it came from the environment."""
    for name, value in list(data.items()):
        field = model.model_fields.get(name)
        if field is None:
            continue
        ann = field.annotation
        key = (*prefix, name)
        if isinstance(value, dict) and isinstance(ann, type) and issubclass(ann, BaseModel):
            _absolute_paths(value, ann, key, origins, file)
        elif isinstance(value, dict) and getattr(ann, "__origin__", None) is dict:
            inner = ann.__args__[1] if ann is not None else None
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                for sub, table in value.items():
                    if isinstance(table, dict):
                        _absolute_paths(table, inner, (*key, sub), origins, file)
        elif _is_path(ann):
            from_env = origins.get(key, "").startswith("environment")
            base = Path.cwd() if from_env or file is None else file.parent
            data[name] = _absolute(value, base)


def _walk(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in data.items():
        if isinstance(value, Mapping):
            yield from _walk(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _set(data: dict[str, Any], key: tuple[str, ...], value: object, source: str) -> None:
    node = data
    for part in key[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(".".join(key[:-1]), source, "conflicts with a non-table value")
        node = child
    node[key[-1]] = value


def _resolve_secret_files(
    data: dict[str, Any],
    origins: dict[tuple[str, ...], str],
    file_label: str,
    file: Path | None = None,
) -> None:
    """Replace every ``<secret>_file`` key by the contents of the file it names."""
    for leaf in list(_walk(data)):
        if not leaf[-1].endswith("_file") or leaf not in _ENV_KEYS.values():
            continue
        node = data
        for part in leaf[:-1]:
            node = node[part]
        target = leaf[-1].removesuffix("_file")
        source = origins.get(leaf, file_label)
        dotted = ".".join(leaf)
        if target in node:
            raise ConfigError(dotted, source, f"give either {target} or {leaf[-1]}, not both")
        secret_path = Path(str(node.pop(leaf[-1])))
        if file is not None and not secret_path.is_absolute() and source == str(file):
            secret_path = file.parent / secret_path
        try:
            node[target] = secret_path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(dotted, source, f"cannot read secret file: {exc}") from None
        origins[(*leaf[:-1], target)] = f"{source} (via {dotted})"


def _first_error(
    exc: ValidationError, origins: dict[tuple[str, ...], str], file_label: str
) -> ConfigError:
    errors = exc.errors()
    err = errors[0]
    loc = tuple(str(p) for p in err["loc"])
    source = origins.get(loc, file_label)
    if err["type"] == "extra_forbidden":
        expected = "unknown key"
    else:
        msg = str(err["msg"])
        expected = msg.replace("Input should be", "expected", 1)
        value = err.get("input")
        if not isinstance(value, Mapping) and value is not None and "_file" not in loc[-1]:
            shown = "<secret>" if _is_secret(loc) else repr(value)
            expected += f", got {shown}"
    if len(errors) > 1:
        expected += f" (and {len(errors) - 1} more problem(s))"
    return ConfigError(".".join(loc), source, expected)


def _is_secret(loc: tuple[str, ...]) -> bool:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return False
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
            continue
        extra = field.json_schema_extra
        return isinstance(extra, dict) and bool(extra.get("secret"))
    return False
