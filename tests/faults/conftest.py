"""The fault suite runs with secrets set, and every log it leaves is searched for them.

Each test registers the secrets it hands to the daemons (shared secrets, the sealing key,
passwords, API tokens) with the ``leak_watch`` fixture. After the test, every log file under
its temporary directory (the daemons' output, the embedded stores' logs) is read, and the test
fails if any secret appears in it, as text, as hex or as base64.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

#: the largest log read whole; the fault tests' logs are a few MB at most
_MAX_LOG = 256 * 1024 * 1024


class LeakWatch:
    """Secrets a test handed to the daemons; none may show in a log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.secrets: set[bytes] = set()
        self.extra_dirs: list[Path] = []

    def add(self, *secrets: bytes | str) -> None:
        for secret in secrets:
            raw = secret.encode() if isinstance(secret, str) else secret
            if len(raw) < 6:
                raise ValueError("a watched secret must be at least 6 bytes, to mean something")
            self.secrets.add(raw)

    def watch_dir(self, path: Path) -> None:
        """Logs outside the test's temporary directory, e.g. a shared store's."""
        self.extra_dirs.append(path)

    def forms(self) -> set[bytes]:
        out: set[bytes] = set()
        for raw in self.secrets:
            out |= {raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")}
        return out

    def logs(self) -> list[Path]:
        found: list[Path] = []
        for root in [self.root, *self.extra_dirs]:
            for path in root.rglob("*"):
                name = path.name.lower()
                if path.is_file() and (name.endswith((".log", ".out", ".err")) or "log" in name):
                    found.append(path)
        return found

    def check(self) -> list[str]:
        """Where a secret was found: 'file: form' lines, empty when clean."""
        leaks: list[str] = []
        forms = self.forms()
        for path in self.logs():
            try:
                if path.stat().st_size > _MAX_LOG:
                    leaks.append(f"{path}: too large to check ({path.stat().st_size} bytes)")
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            for form in forms:
                if form in data:
                    at = data.index(form)
                    leaks.append(f"{path}: a secret ({len(form)} bytes) at offset {at}")
        return leaks


@pytest.fixture(autouse=True)
def leak_watch(tmp_path: Path) -> Iterator[LeakWatch]:
    watch = LeakWatch(tmp_path)
    yield watch
    if watch.secrets:
        leaks = watch.check()
        assert not leaks, "secrets in logs:\n" + "\n".join(leaks)
