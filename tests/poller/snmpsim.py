"""snmpsim (PyPI ``snmpsim``) for tests: ``snmpsim-command-responder`` on a loopback UDP port
it picks itself (found in /proc: Linux), serving real device dumps of the PyPI package
``snmpsim-data`` over v2c and v3.

How snmpsim picks the dump a request reads:
- v2c: the community is the dump's file stem (``cisco-c3750``);
- v3: the context name would be the stem too, but gufo-snmp (our client) always sends an
  empty context name. snmpsim serves the empty context from a data file named
  ``self.snmprec`` (its name after the ``self`` label is empty), so the v3 dump is also
  written under that name. It is a second copy, not a symlink: snmpsim resolves a symlink
  and names the dump after its target, which then clashes with the original.

The dumps are decompressed from the installed package into ``cache``, never copied into the
repository. snmpsim indexes each data file on start (a ``dbm.dumb`` index here: about 80 µs
a record, 7 s for the Juniper dump); the index is kept in ``cache`` too, so when ``cache``
is persistent (the pytest cache directory) it is built once, not on every run.
"""

from __future__ import annotations

import bz2
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path

from gufo.snmp.sync.client import SnmpSession

from daemons.poller.client import Credentials

# Our client's protocol names -> snmpsim's. gufo-snmp localizes AES-192/256 keys the
# Blumenthal way (its default, which daemons/poller/client.py keeps): snmpsim's *BLMT.
AUTH = {
    "md5": "MD5",
    "sha": "SHA",
    "sha224": "SHA224",
    "sha256": "SHA256",
    "sha384": "SHA384",
    "sha512": "SHA512",
}
PRIV = {
    "des": "DES",
    "aes": "AES",
    "aes192": "AES192BLMT",
    "aes256": "AES256BLMT",
    "aes192c": "AES192",  # snmpsim's plain AES192/256 expand keys the Cisco (Reeder) way
    "aes256c": "AES256",
}
EXE = Path(sys.executable).with_name("snmpsim-command-responder")
MISSING = (
    "snmpsim is missing: pip install -e '.[dev]' (make install) installs snmpsim and snmpsim-data"
)
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"


def dump_file(rel: str) -> Path:
    """A dump of the installed snmpsim-data, by its path under ``snmpsim_data/data``."""
    try:
        root = resources.files("snmpsim_data")
    except ModuleNotFoundError:
        raise AssertionError(MISSING) from None
    path = Path(str(root)) / "data" / rel
    assert path.is_file(), f"{rel} is not in snmpsim-data ({path})"
    return path


def community(rel: str) -> str:
    """The v2c community that selects a dump: its file stem."""
    return Path(rel).name.removesuffix(".bz2").removesuffix(".snmprec")


def _udp_ports(pid: int) -> list[int]:
    """The loopback UDP ports process ``pid`` has bound (Linux: /proc)."""
    sockets = set()
    with contextlib.suppress(FileNotFoundError):  # a descriptor closed while we look
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):
                sockets.add(os.readlink(fd))
    loopback = f"{struct.unpack('=I', socket.inet_aton('127.0.0.1'))[0]:08X}"  # host order
    ports = []
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        address, port = fields[1].split(":")
        if address == loopback and f"socket:[{fields[9]}]" in sockets:
            ports.append(int(port, 16))
    return ports


def _decompress(src: Path, dst: Path) -> None:
    """``dst`` is ``src`` decompressed, rewritten only when ``src`` is newer (an unchanged
    data file keeps snmpsim's index of it valid)."""
    if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
        return
    part = dst.with_name(f"{dst.name}.{os.getpid()}.part")
    opener = bz2.open if src.suffix == ".bz2" else open
    with opener(src, "rb") as fin, part.open("wb") as fout:
        shutil.copyfileobj(fin, fout)
    os.replace(part, dst)


@contextlib.contextmanager
def _locked(path: Path, deadline: float) -> Iterator[None]:
    """One test run at a time writes the shared cache and has snmpsim index it."""
    with path.open("a") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{path} stayed locked (another run starting snmpsim?)"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Snmpsim:
    """snmpsim serving ``dumps`` (paths under ``snmpsim_data/data``) by community, and
    ``v3_dump`` (one of them) to v3 ``users`` (Credentials of version 3); ``records``:
    devices of the test's own (community -> snmprec text), served beside them."""

    def __init__(
        self,
        tmp: Path,
        dumps: Sequence[str],
        v3_dump: str,
        users: Sequence[Credentials],
        cache: Path | None = None,
        start_within: float = 60.0,
        records: Mapping[str, str] | None = None,
    ) -> None:
        assert EXE.exists(), f"{MISSING} ({EXE} not found)"
        assert v3_dump in dumps, "the v3 dump is one of the dumps"
        self.tmp = tmp
        self.dumps = tuple(dumps)
        self.communities = {rel: community(rel) for rel in dumps}
        v3: list[str] = []
        for u in users:
            assert u.version == "3" and u.user, "v3 users only"
            v3.append(f"--v3-user={u.user}")
            if u.auth:
                v3 += [f"--v3-auth-proto={AUTH[u.auth]}", f"--v3-auth-key={u.auth_key}"]
            if u.priv:
                v3 += [f"--v3-priv-proto={PRIV[u.priv]}", f"--v3-priv-key={u.priv_key}"]
        self.log = tmp / "snmpsim.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp),  # no ~/.snmpsim of whoever runs the tests
            "SNMPSIM_ALLOW_ROOT": "true",  # as root it would insist on a --process-user
        }
        cache = cache or tmp
        cache.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + start_within
        with _locked(cache / "lock", deadline):  # until snmpsim has indexed the data
            data, index = cache / "data", cache / "index"
            data.mkdir(exist_ok=True)
            index.mkdir(exist_ok=True)
            wanted = {f"{self.communities[rel]}.snmprec": dump_file(rel) for rel in dumps}
            wanted["self.snmprec"] = dump_file(v3_dump)
            for name, src in wanted.items():
                _decompress(src, data / name)
            own = {f"{c}.snmprec": text for c, text in (records or {}).items()}
            for name, text in own.items():
                if not (data / name).is_file() or (data / name).read_text() != text:
                    (data / name).write_text(text)
            self.communities.update({c: c for c in records or {}})
            for stale in data.iterdir():
                if stale.name not in wanted and stale.name not in own:
                    stale.unlink()
            self.args = [
                str(EXE),
                f"--data-dir={data}",
                f"--cache-dir={index}",
                "--agent-udpv4-endpoint=127.0.0.1:0",  # a free port, which it picks
                "--logging-method=stderr",
                "--log-level=error",
                *v3,
            ]
            self.port = self._start(deadline, start_within)

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _start(self, deadline: float, within: float) -> int:
        """The port it listens on, once it answers a v2c GET there. Raises if it does not."""
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.tmp
            )
        probe = None
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"snmpsim exited ({self.proc.returncode}):\n{' '.join(self.args)}\n"
                    f"{self._log_text()}"
                )
            if probe is None:  # it binds once its data files are indexed
                ports = _udp_ports(self.proc.pid)
                if ports:
                    community = self.communities[self.dumps[0]]
                    probe = SnmpSession("127.0.0.1", ports[0], community=community, timeout=0.2)
            if probe is not None:
                try:
                    probe.get(SYS_UPTIME)
                    return ports[0]
                except TimeoutError:
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"snmpsim did not answer within {within:.0f} s:\n{self._log_text()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
