"""core/secrets.Sealer following a rotation of the state directory's key files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemons.core.secrets import KEY_FILE, NEXT_KEY_FILE, Sealer, SealError


def _write(path: Path, key: bytes) -> None:
    path.write_text(key.hex() + "\n")


def test_a_sealer_follows_the_key_files(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    _write(tmp_path / KEY_FILE, old)
    daemon = Sealer(old, tmp_path)
    before = daemon.seal(b"nas secret", b"nas:a")
    assert Sealer(old).open(before, b"nas:a") == b"nas secret"
    # the rotation begins: new values are sealed under the next key at once
    _write(tmp_path / NEXT_KEY_FILE, new)
    during = daemon.seal(b"pw", b"sub:x:pw")
    assert Sealer(new).open(during, b"sub:x:pw") == b"pw"
    assert daemon.open(before, b"nas:a") == b"nas secret"  # both open
    # a value re-sealed by the rotation opens in a process that had not looked yet
    other = Sealer(old, None)
    other_dir = Sealer(old, tmp_path)
    resealed = Sealer(new).seal(b"cpe pw", b"cpe:1")
    with pytest.raises(SealError):
        other.open(resealed, b"cpe:1")  # a key from the config: no files followed
    assert other_dir.open(resealed, b"cpe:1") == b"cpe pw"
    # the rotation ends: the next key is the key, the old one is off the disk, and a
    # running process still opens what a cache held under the old key
    _write(tmp_path / KEY_FILE, new)
    (tmp_path / NEXT_KEY_FILE).unlink()
    assert daemon.sealing_key == new
    assert daemon.open(before, b"nas:a") == b"nas secret"
    assert Sealer(new, tmp_path).seal(b"x", b"c")  # a process started after: new key only
    with pytest.raises(SealError):
        Sealer(new, tmp_path).open(before, b"nas:a")
    # a context does not open another row's value, whatever the keys
    with pytest.raises(SealError):
        daemon.open(during, b"sub:y:pw")
