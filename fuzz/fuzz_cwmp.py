"""Coverage-guided fuzzing (atheris, libFuzzer) of the CWMP (TR-069) decoder.

Each input is a POST body through what the ACS does with it (tests/fuzz/paths.py): the
hardened lxml parse, the RPC response readers, the session engine and the effects it would
record, and the write-back round trip of every parameter value read. Any exception but
``EnvelopeError`` (or the engine's ``SessionError``) is a crash; so is an integer that would
not fit the store's columns. libFuzzer's XML dictionary (fuzz/cwmp.dict) helps it build tags.

    python fuzz/fuzz_cwmp.py CORPUS_DIR fuzz/corpus/cwmp -dict=fuzz/cwmp.dict -max_total_time=300

(``make fuzz`` runs it so.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["daemons"]):
    from daemons.acs import cwmp, engine  # noqa: F401

from tests.fuzz.paths import cwmp_receive


def test_one_input(data: bytes) -> None:
    cwmp_receive(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
