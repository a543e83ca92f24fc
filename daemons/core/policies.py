"""Declarative policy files under ``policies/``, reloaded on SIGHUP.

A reload reads every ``*.toml`` file below the directory. If any file fails to parse, or a
daemon rejects the new set, the old set stays in force and the error names the file.
"""

from __future__ import annotations

import hashlib
import re
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_POLICY_FILE = 4 * 1024 * 1024


class PolicyError(Exception):
    """A policy file is unreadable or invalid. ``path`` names it (relative to the root),
    ``line`` the line of the table or key at fault when it is known."""

    def __init__(self, path: str, problem: str, line: int | None = None) -> None:
        super().__init__(path, problem, line)
        self.path = path
        self.problem = problem
        self.line = line

    def __str__(self) -> str:
        at = f" line {self.line}" if self.line else ""
        return f"policy {self.path}{at}: {self.problem}"


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_.\"' -]+?)\s*=")


def _dotted(text: str) -> tuple[str, ...]:
    """``a."b.c".d`` -> ("a", "b.c", "d") (TOML dotted keys, bare or quoted parts)."""
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', text)
    return tuple(next(p for p in groups if p) if any(groups) else "" for groups in parts)


def line_of(text: str, keys: tuple[str, ...]) -> int | None:
    """The first line (1-based) of TOML ``text`` that defines ``keys`` or a key below it:
    a table header ``[plans.x]`` or an assignment ``x = ...`` under ``[plans]``."""
    table: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), 1):
        header = _HEADER.match(raw)
        if header:
            table = _dotted(header.group(1))
            if table[: len(keys)] == keys:
                return number
            continue
        assign = _ASSIGN.match(raw)
        if assign and (*table, *_dotted(assign.group(1)))[: len(keys)] == keys:
            return number
    return None


@dataclass(frozen=True)
class PolicySet:
    root: Path
    generation: int
    documents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    digest: str = ""
    loaded_at: float = 0.0

    def under(self, folder: str) -> dict[str, Mapping[str, Any]]:
        """The documents in one sub-folder, e.g. ``under("radius")``."""
        prefix = folder.rstrip("/") + "/"
        return {k: v for k, v in self.documents.items() if k.startswith(prefix)}

    def error(self, path: str, problem: str, keys: tuple[str, ...] = ()) -> PolicyError:
        """A PolicyError for document ``path``, with the line of table ``keys`` in it."""
        line = None
        if keys and path in self.documents:
            try:
                line = line_of((self.root / path).read_text(encoding="utf-8"), keys)
            except (OSError, UnicodeDecodeError):
                line = None
        return PolicyError(path, problem, line)


def load_policies(root: Path, generation: int) -> PolicySet:
    """Read every policy file below ``root``.

    Raises PolicyError when ``root`` is not a directory, and for the first file that cannot
    be read or parsed (a TOML syntax error names its line).
    """
    docs: dict[str, Mapping[str, Any]] = {}
    digest = hashlib.sha256()
    if not root.is_dir():
        raise PolicyError(str(root), "the policies directory does not exist (policies.dir)")
    for path in sorted(root.rglob("*.toml")):
        rel = path.relative_to(root).as_posix()
        try:
            raw = path.read_bytes()
            docs[rel] = tomllib.loads(raw.decode("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
            problem = str(exc).split(" (at line")[0]
            raise PolicyError(rel, problem, int(found.group(1)) if found else None) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(rel, str(exc)) from None
        if len(raw) > MAX_POLICY_FILE:
            raise PolicyError(rel, f"larger than {MAX_POLICY_FILE} bytes")
        digest.update(rel.encode() + b"\0" + raw + b"\0")
    return PolicySet(root, generation, docs, digest.hexdigest(), time.time())
