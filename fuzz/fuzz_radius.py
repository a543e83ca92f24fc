"""Coverage-guided fuzzing (atheris, libFuzzer) of the RADIUS receive path.

Each input goes through what the daemon does with a datagram (tests/fuzz/paths.py): decode
and its round trip, the Message-/Request-Authenticator checks, VSAs, hidden and
salt-encrypted values, EAP, the accounting parse, the auth engine and the signed reply;
then again with its length field fixed and its signatures recomputed, so that mutations
get past the checks to the parsers behind them; and as the NAS's answer to a CoA-Request.
Any exception but the codec's own DecodeError is a crash.

    python fuzz/fuzz_radius.py CORPUS_DIR fuzz/corpus/radius -max_total_time=300

(``make fuzz`` runs it so.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["daemons"]):
    from daemons.radius import acct, auth, coa, codec, dictionary, eap  # noqa: F401

from daemons.radius.codec import Code, encode_request
from tests.fuzz.paths import SECRET, radius_receive
from tests.fuzz.strategies import fix_length, resign

COA_REQUEST = encode_request(Code.COA_REQUEST, 7, [(1, b"alice")], SECRET)


def test_one_input(data: bytes) -> None:
    radius_receive(data)
    if len(data) < codec.HEADER:
        return
    signed = resign(fix_length(data), SECRET)
    radius_receive(signed)
    reply = resign(data[:1] + COA_REQUEST[1:2] + fix_length(data)[2:], SECRET, COA_REQUEST[4:20])
    coa.read_reply(reply, COA_REQUEST, SECRET)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
