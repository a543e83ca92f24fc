"""The atheris targets (fuzz/) run briefly in the suite: a crash fails it.

The targets run at once, ``NETD_ATHERIS_TIME`` seconds each (10 by default; ``make fuzz``
runs them for minutes), from the committed seeds into a scratch corpus. A crash makes
libFuzzer stop with a non-zero status and leave the input as ``crash-*`` under tmp_path:
the failure message names it, and ``python fuzz/fuzz_radius.py FILE`` replays it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("NETD_ATHERIS_TIME", "10"))
TARGETS = {
    "radius": ["-max_len=4096"],
    "eap_tls": ["-max_len=4096"],  # issue 29: EAP-TLS, PEAP, TTLS
    "cwmp": ["-max_len=16384", f"-dict={REPO / 'fuzz' / 'cwmp.dict'}"],
}


def test_atheris_targets_find_no_crash(tmp_path: Path) -> None:
    assert atheris.Fuzz  # a dev dependency: its absence is a failure, not a skip
    procs = {}
    for name, extra in TARGETS.items():
        corpus = tmp_path / name
        corpus.mkdir()
        procs[name] = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "fuzz" / f"fuzz_{name}.py"),
                str(corpus),
                str(REPO / "fuzz" / "corpus" / name),
                f"-max_total_time={SECONDS}",
                "-timeout=20",
                "-rss_limit_mb=1024",
                "-print_final_stats=1",
                f"-artifact_prefix={tmp_path}/{name}-",
                *extra,
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    failures = []
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=SECONDS + 120)
        runs = re.search(r"stat::number_of_executed_units:\s+(\d+)", out)
        crashes = sorted(p.name for p in tmp_path.glob(f"{name}-*"))
        print(
            f"{name}: {runs.group(1) if runs else '?'} inputs in {SECONDS} s, rc {proc.returncode}"
        )
        if proc.returncode != 0 or crashes or not runs:
            failures.append(f"{name}: rc {proc.returncode}, {crashes}\n{out[-4000:]}")
    assert not failures, "\n\n".join(failures)
