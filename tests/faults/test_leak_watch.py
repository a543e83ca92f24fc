"""The log search the fault suite relies on finds a secret in each form it looks for."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.faults.conftest import LeakWatch


def test_a_secret_is_found_as_text_hex_and_base64_in_any_log(tmp_path: Path) -> None:
    watch = LeakWatch(tmp_path)
    secret = b"s3cr3t-\x00\xff-value"
    watch.add(secret)
    (tmp_path / "clean.log").write_bytes(b"nothing to see\n")
    assert watch.check() == []
    for i, form in enumerate(
        [secret, secret.hex().encode(), base64.b64encode(secret).rstrip(b"=")]
    ):
        sub = tmp_path / f"d{i}"
        sub.mkdir()
        (sub / "postgres.log").write_bytes(b"line 1\nleaked " + form + b" here\n")
    leaks = watch.check()
    assert len(leaks) == 3, leaks
    assert all("a secret" in line and secret.decode("latin-1") not in line for line in leaks)
