"""Prometheus's snmp_exporter (Debian ``prometheus-snmp-exporter`` 0.21) for tests: run on a
loopback port with an ``if_mib`` module written here, and a parser of the text both it and
netd serve.

Debian ships no snmp.yml, no generator and no IF-MIB file, so the module is written with
numeric OIDs: what snmp_exporter's own generator makes of IF-MIB for its ``if_mib`` module
(walk ifTable's 1.3.6.1.2.1.2 and ifXTable's 1.3.6.1.2.1.31.1.1, get sysUpTime; 40 metrics
with their types; ifIndex as the index; ifAlias, ifDescr and ifName as lookups). 0.21 takes
the credentials from the module, so there is one module per community.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from daemons.poller.enums import IANA_IF_TYPE

IF, IFX = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
# name, OID, snmp_exporter type: IF-MIB's objects under ifTable and ifXTable
IF_MIB = [
    ("ifIndex", f"{IF}.1", "gauge"),
    ("ifType", f"{IF}.3", "EnumAsInfo"),
    ("ifMtu", f"{IF}.4", "gauge"),
    ("ifSpeed", f"{IF}.5", "gauge"),
    ("ifPhysAddress", f"{IF}.6", "PhysAddress48"),
    ("ifAdminStatus", f"{IF}.7", "gauge"),
    ("ifOperStatus", f"{IF}.8", "gauge"),
    ("ifLastChange", f"{IF}.9", "gauge"),
    ("ifInOctets", f"{IF}.10", "counter"),
    ("ifInUcastPkts", f"{IF}.11", "counter"),
    ("ifInNUcastPkts", f"{IF}.12", "counter"),
    ("ifInDiscards", f"{IF}.13", "counter"),
    ("ifInErrors", f"{IF}.14", "counter"),
    ("ifInUnknownProtos", f"{IF}.15", "counter"),
    ("ifOutOctets", f"{IF}.16", "counter"),
    ("ifOutUcastPkts", f"{IF}.17", "counter"),
    ("ifOutNUcastPkts", f"{IF}.18", "counter"),
    ("ifOutDiscards", f"{IF}.19", "counter"),
    ("ifOutErrors", f"{IF}.20", "counter"),
    ("ifOutQLen", f"{IF}.21", "gauge"),
    ("ifSpecific", f"{IF}.22", "OctetString"),
    ("ifInMulticastPkts", f"{IFX}.2", "counter"),
    ("ifInBroadcastPkts", f"{IFX}.3", "counter"),
    ("ifOutMulticastPkts", f"{IFX}.4", "counter"),
    ("ifOutBroadcastPkts", f"{IFX}.5", "counter"),
    ("ifHCInOctets", f"{IFX}.6", "counter"),
    ("ifHCInUcastPkts", f"{IFX}.7", "counter"),
    ("ifHCInMulticastPkts", f"{IFX}.8", "counter"),
    ("ifHCInBroadcastPkts", f"{IFX}.9", "counter"),
    ("ifHCOutOctets", f"{IFX}.10", "counter"),
    ("ifHCOutUcastPkts", f"{IFX}.11", "counter"),
    ("ifHCOutMulticastPkts", f"{IFX}.12", "counter"),
    ("ifHCOutBroadcastPkts", f"{IFX}.13", "counter"),
    ("ifLinkUpDownTrapEnable", f"{IFX}.14", "gauge"),
    ("ifHighSpeed", f"{IFX}.15", "gauge"),
    ("ifPromiscuousMode", f"{IFX}.16", "gauge"),
    ("ifConnectorPresent", f"{IFX}.17", "gauge"),
    ("ifCounterDiscontinuityTime", f"{IFX}.19", "gauge"),
]
LOOKUPS = [("ifAlias", f"{IFX}.18"), ("ifDescr", f"{IF}.2"), ("ifName", f"{IFX}.1")]


def module(name: str, community: str) -> str:
    """The if_mib module (YAML) reading with ``community`` over v2c."""
    lines = [
        f"{name}:",
        "  version: 2",
        "  auth:",
        f"    community: {community}",
        "  retries: 0",
        "  timeout: 5s",
        "  walk: [1.3.6.1.2.1.2, 1.3.6.1.2.1.31.1.1]",
        "  get: [1.3.6.1.2.1.1.3.0]",
        "  metrics:",
        "  - {name: sysUpTime, oid: 1.3.6.1.2.1.1.3, type: gauge}",
        "  - {name: ifNumber, oid: 1.3.6.1.2.1.2.1, type: gauge}",
    ]
    for metric, oid, kind in IF_MIB:
        lines += [
            f"  - name: {metric}",
            f"    oid: {oid}",
            f"    type: {kind}",
            "    indexes: [{labelname: ifIndex, type: gauge}]",
            "    lookups:",
            *(
                f"    - {{labels: [ifIndex], labelname: {label}, oid: {loid}, type: DisplayString}}"
                for label, loid in LOOKUPS
            ),
        ]
        if kind == "EnumAsInfo":
            lines.append("    enum_values:")
            lines += [f"      {n}: {text}" for n, text in sorted(IANA_IF_TYPE.items())]
    return "\n".join(lines) + "\n"


class SnmpExporter:
    def __init__(self, tmp: Path, modules: Iterable[tuple[str, str]], port: int) -> None:
        exe = shutil.which("prometheus-snmp-exporter")
        assert exe is not None, (
            "prometheus-snmp-exporter is missing: apt-get install prometheus-snmp-exporter "
            "(.ci/run installs it)"
        )
        self.config = tmp / "snmp.yml"
        self.config.write_text("".join(module(n, c) for n, c in modules))
        self.url = f"http://127.0.0.1:{port}"
        self.log = tmp / "snmp_exporter.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    exe,
                    f"--config.file={self.config}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"snmp_exporter did not start:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)

    def scrape(self, target: str, module_name: str) -> httpx.Response:
        return httpx.get(
            self.url + "/snmp", params={"target": target, "module": module_name}, timeout=30
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)",?')

Series = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> tuple[dict[str, str], dict[Series, str]]:
    """Prometheus text (0.0.4): the type of each family, and each series' value as written
    (so an exact integer stays one)."""
    types: dict[str, str] = {}
    series: dict[Series, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(
            (k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
            for k, v in _LABEL.findall(m.group(2) or "")
        )
        series[(m.group(1), labels)] = m.group(3)
    return types, series
