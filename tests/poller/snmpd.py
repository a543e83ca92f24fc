"""Our own net-snmp agent for tests: snmpd in the foreground on a free loopback UDP port,
with a v2c community and a v3 authPriv user, everything it reads or writes under ``tmp``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

COMMUNITY = "netd-test"
USER, AUTH_PASS, PRIV_PASS = "netdv3", "auth-pass-123", "priv-pass-123"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Snmpd:
    def __init__(
        self, tmp: Path, view: str = "1.3.6.1.2.1", excluded: tuple[str, ...] = ()
    ) -> None:
        exe = shutil.which("snmpd") or (
            "/usr/sbin/snmpd" if Path("/usr/sbin/snmpd").exists() else None
        )
        assert exe is not None, (
            "snmpd is missing: apt-get install snmpd snmp (.ci/run installs them)"
        )
        self.port = _free_udp_port()
        self.tmp = tmp
        (tmp / "state").mkdir(exist_ok=True)
        (tmp / "mibs").mkdir(exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin:/usr/sbin"),
            "SNMP_PERSISTENT_DIR": str(tmp / "state"),
            "SNMPCONFPATH": str(tmp / "state"),
            "MIBDIRS": str(tmp / "mibs"),
            "MIBS": "",
            "HOME": str(tmp),
        }
        lines = [f"view netd included .{view}", *(f"view netd excluded .{o}" for o in excluded)]
        conf = tmp / "snmpd.conf"
        conf.write_text(
            "\n".join(
                [
                    *lines,
                    f"rocommunity {COMMUNITY} 127.0.0.1 -V netd",
                    f"createUser {USER} SHA {AUTH_PASS} AES {PRIV_PASS}",
                    f"rouser {USER} priv -V netd",
                    "sysname netd-test-agent",
                    "syslocation rack 7",
                    "",
                ]
            )
        )
        self.log = tmp / "snmpd.log"
        args = [
            exe,
            "-f",
            "-Lo",
            "-C",
            "-c",
            str(conf),
            "-x",
            f"unix:{tmp / 'agentx'}",
            f"udp:127.0.0.1:{self.port}",
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 10
        while "NET-SNMP version" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"snmpd did not start:\n{self.log.read_text(errors='replace')}"
                )
            time.sleep(0.05)

    def netsnmp(self, tool: str, *args: str) -> str:
        """A net-snmp command line tool against this agent (v2c), numeric OIDs."""
        exe = shutil.which(tool)
        assert exe is not None, f"{tool} is missing: apt-get install snmp (.ci/run installs it)"
        return subprocess.run(
            [exe, "-v2c", "-c", COMMUNITY, "-On", "-Oe", "-Ot", f"127.0.0.1:{self.port}", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
            check=True,
        ).stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
