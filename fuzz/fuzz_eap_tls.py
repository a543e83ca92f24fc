"""Coverage-guided fuzzing (atheris) of the TLS-based EAP engine: EAP-TLS, PEAP and TTLS
framing (L/M flags, reassembly), the TLS handshake over memory BIOs, and the tunnelled
data, through ``auth.authenticate`` and the exchange owner (tests/fuzz/eap_paths.py).
Any exception but DecodeError is a crash.

    python fuzz/fuzz_eap_tls.py CORPUS_DIR fuzz/corpus/eap_tls -max_total_time=300
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["daemons"]):
    from daemons.radius import auth_eap, eap_inner, eap_methods, eap_tls  # noqa: F401

from tests.fuzz.eap_paths import eap_tls_receive


def main() -> None:
    atheris.Setup(sys.argv, eap_tls_receive)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
