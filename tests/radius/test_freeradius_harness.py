"""The benchmarks' FreeRADIUS harness (benchmarks/freeradius.py) starts a working
FreeRADIUS 3.2: in files mode with 10 subscribers, FreeRADIUS's own radclient gets an
Access-Accept (with the reply items) for a good password, an Access-Reject for a bad one,
and no answer without a Message-Authenticator (the client requires one, as netd does)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from benchmarks import freeradius as fr
from tests.support import tool

SECRET = "harness-s3cret"


def radclient(port: int, attrs: str) -> subprocess.CompletedProcess[str]:
    exe = tool("radclient", "freeradius-utils")
    return subprocess.run(
        [exe, "-x", "-r", "1", "-t", "1", f"127.0.0.1:{port}", "auth", SECRET],
        input=attrs,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_files_mode_accepts_a_subscriber(tmp_path: Path) -> None:
    assert fr.available(), (
        f"{fr.FREERADIUS} is missing: {fr.INSTALL} (.ci/run installs it; the RADIUS "
        "benchmarks' side-by-side rows need it)"
    )
    with fr.freeradius_server("files", SECRET, users=10, workdir=tmp_path) as server:
        assert server.auth_port != server.acct_port
        assert Path(f"/proc/{server.pid}").exists()
        ma = "Message-Authenticator = 0x00\n"
        ok = radclient(
            server.auth_port, f'User-Name = "user00007"\nUser-Password = "pw-00007"\n{ma}'
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "Received Access-Accept" in ok.stdout, ok.stdout
        assert 'Mikrotik-Rate-Limit = "20M/100M"' in ok.stdout, ok.stdout
        bad = radclient(server.auth_port, f'User-Name = "user00007"\nUser-Password = "nope"\n{ma}')
        assert "Received Access-Reject" in bad.stdout, bad.stdout + bad.stderr
        unsigned = radclient(
            server.auth_port, 'User-Name = "user00007"\nUser-Password = "pw-00007"\n'
        )
        assert "Received" not in unsigned.stdout, unsigned.stdout
        assert "No reply" in unsigned.stdout + unsigned.stderr
        pid = server.pid
    assert not Path(f"/proc/{pid}").exists(), "FreeRADIUS still running after the block"
    assert "Exiting normally" in (tmp_path / "raddb-files" / "radius.log").read_text()


def test_missing_binary_is_named() -> None:
    """Without FreeRADIUS the harness says what to install (the benchmarks print it)."""
    assert fr.INSTALL in fr.skip_message()
    assert os.fspath(fr.FREERADIUS) in fr.skip_message()
