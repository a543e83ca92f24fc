"""Declarative policy files under ``policies/``, reloaded on SIGHUP.

A reload reads every ``*.toml`` file below the directory. If any file fails to parse, or a
daemon rejects the new set, the old set stays in force and the error names the file.
"""

from __future__ import annotations

import hashlib
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_POLICY_FILE = 4 * 1024 * 1024


class PolicyError(Exception):
    """A policy file is unreadable or invalid. ``path`` names it (relative to the root)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        return f"policy {self.path}: {self.problem}"


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


def load_policies(root: Path, generation: int) -> PolicySet:
    """Read every policy file below ``root``. A missing root gives an empty set.

    Raises PolicyError for the first file that cannot be read or parsed.
    """
    docs: dict[str, Mapping[str, Any]] = {}
    digest = hashlib.sha256()
    if root.is_dir():
        for path in sorted(root.rglob("*.toml")):
            rel = path.relative_to(root).as_posix()
            try:
                raw = path.read_bytes()
                docs[rel] = tomllib.loads(raw.decode("utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise PolicyError(rel, str(exc)) from None
            if len(raw) > MAX_POLICY_FILE:
                raise PolicyError(rel, f"larger than {MAX_POLICY_FILE} bytes")
            digest.update(rel.encode() + b"\0" + raw + b"\0")
    return PolicySet(root, generation, docs, digest.hexdigest(), time.time())
