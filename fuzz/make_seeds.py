"""Write the seed corpora of the atheris targets from the fuzz tests' valid inputs
(tests/fuzz/seeds.py): fuzz/corpus/radius and fuzz/corpus/cwmp, one file per seed named by
its SHA-1, envelopes over 8 KiB left out so that the committed seeds stay small.

    python fuzz/make_seeds.py
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.fuzz import seeds  # noqa: E402

MAX_SEED = 8192


def write(name: str, items: tuple[bytes, ...]) -> int:
    out = HERE / "corpus" / name
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for data in items:
        if data and len(data) <= MAX_SEED:
            (out / hashlib.sha1(data, usedforsecurity=False).hexdigest()).write_bytes(data)
            n += 1
    return n


def main() -> None:
    for name, items in (("radius", seeds.radius_packets()), ("cwmp", seeds.cwmp_envelopes())):
        print(f"{name}: {write(name, items)} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
