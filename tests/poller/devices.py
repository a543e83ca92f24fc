"""Small devices of the tests' own, as snmpsim data (snmprec: ``OID|tag|value`` a line,
tags as snmpsim reads them: 2 INTEGER, 4 OCTET STRING, 4x the same in hex, 6 OID,
65 Counter32, 66 Gauge32, 67 TimeTicks, 70 Counter64), served by snmpsim beside the real
dumps (tests/poller/snmpsim.py ``records``)."""

from __future__ import annotations

IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
BIG = 18446744073709551000  # a Counter64 past 2^53 (a float would make it ...616)


def _sorted(records: dict[str, tuple[str, object]]) -> str:
    def key(oid: str) -> tuple[int, ...]:
        return tuple(int(a) for a in oid.split("."))

    return "".join(f"{o}|{records[o][0]}|{records[o][1]}\n" for o in sorted(records, key=key))


def device(name: str, ifx: bool, names: dict[int, bytes] | None = None) -> str:
    """A two-port switch: the system group, ifTable, and ifXTable when ``ifx`` (names
    from ``names``, raw bytes)."""
    r: dict[str, tuple[str, object]] = {
        "1.3.6.1.2.1.1.1.0": ("4", f"netd test device {name}"),
        "1.3.6.1.2.1.1.2.0": ("6", "1.3.6.1.4.1.8072.3.2.10"),
        "1.3.6.1.2.1.1.3.0": ("67", 123456),
        "1.3.6.1.2.1.1.5.0": ("4", name),
        "1.3.6.1.2.1.2.1.0": ("2", 2),
    }
    for i in (1, 2):
        r |= {
            f"{IF}.1.{i}": ("2", i),
            f"{IF}.2.{i}": ("4", f"port {i}"),
            f"{IF}.3.{i}": ("2", 6),
            f"{IF}.4.{i}": ("2", 1500),
            f"{IF}.5.{i}": ("66", 100_000_000),
            f"{IF}.6.{i}": ("4x", f"001a2b3c4d{i:02x}"),
            f"{IF}.7.{i}": ("2", 1),
            f"{IF}.8.{i}": ("2", i),
            f"{IF}.9.{i}": ("67", 100 * i),
            f"{IF}.10.{i}": ("65", 4_000_000_000 + i),
            f"{IF}.11.{i}": ("65", 1000 * i),
            f"{IF}.13.{i}": ("65", 0),
            f"{IF}.14.{i}": ("65", 3),
            f"{IF}.16.{i}": ("65", 2_000_000_000 + i),
            f"{IF}.17.{i}": ("65", 500 * i),
            f"{IF}.19.{i}": ("65", 0),
            f"{IF}.20.{i}": ("65", 0),
            f"{IF}.21.{i}": ("66", 0),
            f"{IF}.22.{i}": ("6", "0.0"),
        }
        if ifx:
            raw = (names or {}).get(i, f"Gi0/{i}".encode())
            r |= {
                f"{IFX}.1.{i}": ("4x", raw.hex()),
                f"{IFX}.6.{i}": ("70", BIG if i == 1 else 123),
                f"{IFX}.10.{i}": ("70", 456),
                f"{IFX}.15.{i}": ("66", 100),
                f"{IFX}.18.{i}": ("4", f"uplink {i}"),
            }
    return _sorted(r)
