"""A lean simulated SNMP agent for the poller benchmark: many IF-MIB devices in one process.

`python -m benchmarks.snmp_agent --agents N --community C` binds N UDP sockets on
127.0.0.1 (ports chosen by the kernel), prints them as one JSON line on stdout, and
answers SNMPv2c GET, GETNEXT and GETBULK on each until stdin closes or SIGTERM. Each
socket is one device, ``agent-NNN``, with the system group (sysDescr, sysObjectID,
sysUpTime, sysContact, sysName, sysLocation), ifNumber, and a full ifTable (columns 1-22)
and ifXTable (columns 1-19) of ``24 + (N * 7) % 25`` interfaces (24 to 48, 36 on
average; ifIndex 1..n). Counters advance with the wall clock at per-interface rates:
ifHCIn/OutOctets up to 100 Mbit/s, packets at octets/800, errors and discards slowly;
ifInOctets/ifOutOctets are the low 32 bits of the HC counters (so they wrap as a real
Counter32 does), sysUpTime counts hundredths since the agent started plus a per-device
offset. Other values are fixed per device (ifAlias ``customer N-K``, ifPhysAddress...).

Why our own: snmpsim 1.2 (pysnmp) was measured at about 590 µs of CPU per varbind served
on this machine (510 µs with no variation modules), and the poller benchmark asks 500
devices for about 290,000 varbinds a minute: some 170 s of CPU a minute, on 2 cores. A
net-snmp snmpd serves only this host's own interfaces. This agent keeps every OID
pre-encoded and builds values on demand (a few µs a varbind); the benchmark measures and
reports its CPU, and checks what it serves against net-snmp's snmpbulkwalk.

Protocol: v2c only (v1 and v3 requests are dropped, as is a wrong community); GETBULK
responses stop at 1,472 bytes of varbinds (a full Ethernet frame, as many devices do) or
when every repeater has reached endOfMibView; an absent GET gives noSuchInstance under a
known column and noSuchObject elsewhere. "stats" on stdin prints a JSON line: requests,
varbinds sent, dropped datagrams.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import sys
import time
from bisect import bisect_right
from typing import Any

MAX_VARBIND_BYTES = 1472
SYSTEM = (1, 3, 6, 1, 2, 1, 1)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
START = time.time()

# value kinds
_STATIC, _ALIAS, _MAC, _SYSNAME, _SYSDESCR, _UPTIME, _C64, _C32 = range(8)
# counter classes: (what it counts, direction)
_OCTETS_IN, _OCTETS_OUT, _PKTS_IN, _PKTS_OUT, _MCAST, _ERRORS = range(6)


def rows(agent: int) -> int:
    """How many interfaces device ``agent`` has."""
    return 24 + (agent * 7) % 25


# --- BER --------------------------------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    return bytes((0x82, n >> 8, n & 0xFF))


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def _int(tag: int, value: int) -> bytes:
    """INTEGER (signed) or an unsigned application type, minimal two's complement."""
    return _tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def encode_oid(oid: tuple[int, ...]) -> bytes:
    body = bytearray((oid[0] * 40 + oid[1],))
    for sub in oid[2:]:
        chunk = [sub & 0x7F]
        rest = sub >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def decode_oid(body: bytes) -> tuple[int, ...]:
    first = body[0]
    out = [first // 40, first % 40] if first < 80 else [2, first - 80]
    sub = 0
    for b in body[1:]:
        sub = (sub << 7) | (b & 0x7F)
        if not b & 0x80:
            out.append(sub)
            sub = 0
    return tuple(out)


def _read(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the TLV at ``pos``."""
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    return tag, pos, pos + n


# --- the devices ------------------------------------------------------------------------

Entry = tuple[tuple[int, ...], bytes, int, int, int, bytes]  # oid, oid TLV, kind, row, arg, value


class Template:
    """The OID tree of every device with ``n`` interfaces; values by device on demand."""

    def __init__(self, n: int) -> None:
        entries: list[Entry] = []

        def add(oid: tuple[int, ...], kind: int, row: int = 0, arg: int = 0, value: bytes = b""):
            entries.append((oid, encode_oid(oid), kind, row, arg, value))

        add((*SYSTEM, 1, 0), _SYSDESCR)
        add((*SYSTEM, 2, 0), _STATIC, value=encode_oid((1, 3, 6, 1, 4, 1, 5875, 800, 1)))
        add((*SYSTEM, 3, 0), _UPTIME)
        add((*SYSTEM, 4, 0), _STATIC, value=_tlv(0x04, b"noc@example.net"))
        add((*SYSTEM, 5, 0), _SYSNAME)
        add((*SYSTEM, 6, 0), _STATIC, value=_tlv(0x04, b"netd benchmark rack"))
        add(IF_NUMBER, _STATIC, value=_int(0x02, n))
        for k in range(1, n + 1):
            fast = k <= 4  # uplinks: 10G, the rest 1G
            t = (*IF_ENTRY,)
            x = (*IFX_ENTRY,)
            add((*t, 1, k), _STATIC, k, value=_int(0x02, k))
            add((*t, 2, k), _STATIC, k, value=_tlv(0x04, f"GigabitEthernet0/{k}".encode()))
            add((*t, 3, k), _STATIC, k, value=_int(0x02, 6))
            add((*t, 4, k), _STATIC, k, value=_int(0x02, 9216 if fast else 1500))
            add((*t, 5, k), _STATIC, k, value=_int(0x42, 4294967295 if fast else 1_000_000_000))
            add((*t, 6, k), _MAC, k)
            add((*t, 7, k), _STATIC, k, value=_int(0x02, 1))
            add((*t, 8, k), _STATIC, k, value=_int(0x02, 2 if k % 7 == 0 else 1))
            add((*t, 9, k), _STATIC, k, value=_int(0x43, 1200 + k))
            add((*t, 10, k), _C32, k, _OCTETS_IN)
            add((*t, 11, k), _C32, k, _PKTS_IN)
            add((*t, 12, k), _C32, k, _MCAST)
            add((*t, 13, k), _C32, k, _ERRORS)
            add((*t, 14, k), _C32, k, _ERRORS + 10)
            add((*t, 15, k), _STATIC, k, value=_int(0x41, 0))
            add((*t, 16, k), _C32, k, _OCTETS_OUT)
            add((*t, 17, k), _C32, k, _PKTS_OUT)
            add((*t, 18, k), _C32, k, _MCAST + 10)
            add((*t, 19, k), _C32, k, _ERRORS + 20)
            add((*t, 20, k), _C32, k, _ERRORS + 30)
            add((*t, 21, k), _STATIC, k, value=_int(0x42, 0))
            add((*t, 22, k), _STATIC, k, value=encode_oid((0, 0)))
            add((*x, 1, k), _STATIC, k, value=_tlv(0x04, f"Gi0/{k}".encode()))
            for col in (2, 3, 4, 5):
                add((*x, col, k), _C32, k, _MCAST + 10 * col)
            add((*x, 6, k), _C64, k, _OCTETS_IN)
            add((*x, 7, k), _C64, k, _PKTS_IN)
            add((*x, 8, k), _C64, k, _MCAST + 80)
            add((*x, 9, k), _C64, k, _MCAST + 90)
            add((*x, 10, k), _C64, k, _OCTETS_OUT)
            add((*x, 11, k), _C64, k, _PKTS_OUT)
            add((*x, 12, k), _C64, k, _MCAST + 120)
            add((*x, 13, k), _C64, k, _MCAST + 130)
            add((*x, 14, k), _STATIC, k, value=_int(0x02, 1))
            add((*x, 15, k), _STATIC, k, value=_int(0x42, 10_000 if fast else 1_000))
            add((*x, 16, k), _STATIC, k, value=_int(0x02, 2))
            add((*x, 17, k), _STATIC, k, value=_int(0x02, 1))
            add((*x, 18, k), _ALIAS, k)
            add((*x, 19, k), _STATIC, k, value=_int(0x43, 0))
        entries.sort()
        self.entries = entries
        self.oids = [e[0] for e in entries]
        self.index = {e[0]: i for i, e in enumerate(entries)}
        self.objects = {e[0][:-1] for e in entries}


def counter(agent: int, row: int, arg: int, now: float) -> int:
    """A counter's reading at ``now`` (seconds since the agent started): a fixed base plus
    a per-interface rate (bytes, packets or events per second) times the time."""
    h = (agent * 1_000_003 + row * 7_919 + arg * 104_729) % 1_000_033
    base = h * 4_294_967 * (1 + row % 3)
    kind = arg % 10
    if kind in (_OCTETS_IN, _OCTETS_OUT):
        rate = 20_000 + h % 12_500_000
    elif kind in (_PKTS_IN, _PKTS_OUT):
        rate = (20_000 + h % 12_500_000) // 800
    elif kind == _MCAST:
        rate = h % 50
    else:
        rate = (h % 7) / 100
    return base + int(rate * now)


class Device:
    __slots__ = ("agent", "mac", "template", "uptime0")

    def __init__(self, agent: int, template: Template) -> None:
        self.agent = agent
        self.template = template
        self.uptime0 = (agent * 86_400 * 7 % 31_536_000) * 100  # up for some days already
        self.mac = agent.to_bytes(3, "big")

    def value(self, entry: Entry, now: float) -> bytes:
        _oid, _tlv_oid, kind, row, arg, static = entry
        if kind == _STATIC:
            return static
        if kind == _C64:
            return _int(0x46, counter(self.agent, row, arg, now) % 2**64)
        if kind == _C32:
            return _int(0x41, counter(self.agent, row, arg, now) % 2**32)
        if kind == _UPTIME:
            return _int(0x43, (self.uptime0 + int(now * 100)) % 2**32)
        if kind == _ALIAS:
            return _tlv(0x04, f"customer {self.agent}-{row}".encode())
        if kind == _MAC:
            return _tlv(0x04, b"\x00\x16\x3e" + self.mac[1:] + bytes((row,)))
        if kind == _SYSNAME:
            return _tlv(0x04, f"agent-{self.agent:03d}".encode())
        return _tlv(
            0x04, f"netd benchmark device {self.agent} ({len(self.template.oids)} OIDs)".encode()
        )


class Agents:
    """Every device's request handling; counts what it serves."""

    def __init__(self, count: int, community: str) -> None:
        templates: dict[int, Template] = {}
        self.devices = []
        for i in range(count):
            n = rows(i)
            if n not in templates:
                templates[n] = Template(n)
            self.devices.append(Device(i, templates[n]))
        self.community = _tlv(0x04, community.encode())
        self.requests = self.varbinds = self.dropped = 0
        self._oids: dict[bytes, tuple[int, ...]] = {}

    def answer(self, device: Device, data: bytes) -> bytes | None:
        """The response to one request datagram, or None to drop it."""
        try:
            return self._answer(device, data)
        except (IndexError, ValueError):
            self.dropped += 1
            return None

    def _oid(self, raw: bytes) -> tuple[int, ...]:
        oid = self._oids.get(raw)
        if oid is None:
            if len(self._oids) > 200_000:
                self._oids.clear()
            oid = self._oids[raw] = decode_oid(raw)
        return oid

    def _answer(self, device: Device, data: bytes) -> bytes | None:
        tag, pos, end = _read(data, 0)
        if tag != 0x30:
            raise ValueError
        tag, s, e = _read(data, pos)
        if tag != 0x02 or data[s:e] != b"\x01":  # v2c only
            self.dropped += 1
            return None
        tag, s, pos = _read(data, e)
        if tag != 0x04 or data[e:pos] != self.community:
            self.dropped += 1
            return None
        pdu, pos, _ = _read(data, pos)
        tag, s, e = _read(data, pos)
        request_id = data[pos:e]
        tag, s, pos = _read(data, e)
        first = int.from_bytes(data[s:pos], "big", signed=True)
        tag, s, pos = _read(data, pos)
        second = int.from_bytes(data[s:pos], "big", signed=True)
        tag, pos, end = _read(data, pos)
        asked = []
        while pos < end:
            _, vs, ve = _read(data, pos)
            _, os_, oe = _read(data, vs)
            asked.append(self._oid(data[os_:oe]))
            pos = ve
        self.requests += 1
        now = time.time() - START
        t = device.template
        entries, oids = t.entries, t.oids
        out: list[bytes] = []
        if pdu == 0xA0:  # GET
            for oid in asked:
                i = t.index.get(oid)
                if i is None:
                    known = oid[:-1] in t.objects  # an object we have, not this instance
                    out.append(encode_oid(oid) + (b"\x81\x00" if known else b"\x80\x00"))
                else:
                    out.append(entries[i][1] + device.value(entries[i], now))
        elif pdu == 0xA1:  # GETNEXT
            for oid in asked:
                i = bisect_right(oids, oid)
                if i < len(entries):
                    out.append(entries[i][1] + device.value(entries[i], now))
                else:
                    out.append(encode_oid(oid) + b"\x82\x00")
        elif pdu == 0xA5:  # GETBULK
            non_repeaters = max(0, min(first, len(asked)))
            repetitions = max(0, second)
            size = 0
            for oid in asked[:non_repeaters]:
                i = bisect_right(oids, oid)
                vb = (
                    entries[i][1] + device.value(entries[i], now)
                    if i < len(entries)
                    else encode_oid(oid) + b"\x82\x00"
                )
                out.append(vb)
                size += len(vb) + 4
            cursors = [bisect_right(oids, oid) for oid in asked[non_repeaters:]]
            last = list(asked[non_repeaters:])
            full = False
            for _ in range(repetitions):
                if not cursors:
                    break
                row: list[bytes] = []
                for j, i in enumerate(cursors):
                    if i < len(entries):
                        vb = entries[i][1] + device.value(entries[i], now)
                        last[j] = entries[i][0]
                        cursors[j] = i + 1
                    else:
                        vb = encode_oid(last[j]) + b"\x82\x00"
                    row.append(vb)
                    size += len(vb) + 4
                if size > MAX_VARBIND_BYTES:
                    full = True
                    break
                out += row
                if all(c >= len(entries) for c in cursors):
                    break  # every repeater is at endOfMibView: more rows would say so again
            if full and not out:
                raise ValueError  # one row does not fit: not with this workload
        else:
            self.dropped += 1
            return None
        self.varbinds += len(out)
        varbinds = b"".join(_tlv(0x30, vb) for vb in out)
        body = (
            request_id
            + b"\x02\x01\x00\x02\x01\x00"
            + bytes((0x30,))
            + _len(len(varbinds))
            + varbinds
        )
        return _tlv(0x30, b"\x02\x01\x01" + self.community + _tlv(0xA2, body))


def serve(count: int, community: str) -> None:
    agents = Agents(count, community)
    socks: dict[int, tuple[socket.socket, Device]] = {}
    poller = select.epoll()
    ports = []
    for device in agents.devices:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        socks[sock.fileno()] = (sock, device)
        poller.register(sock.fileno(), select.EPOLLIN)
        ports.append(sock.getsockname()[1])
    stdin = sys.stdin.fileno()
    poller.register(stdin, select.EPOLLIN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"ports": ports}), flush=True)
    pending = b""
    while True:
        for fd, _ in poller.poll():
            if fd == stdin:
                chunk = os.read(stdin, 4096)
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip() == b"stats":
                        print(json.dumps(_stats(agents)), flush=True)
                continue
            sock, device = socks[fd]
            while True:
                try:
                    data, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                reply = agents.answer(device, data)
                if reply is not None:
                    try:
                        sock.sendto(reply, addr)
                    except OSError:
                        agents.dropped += 1


def _stats(agents: Agents) -> dict[str, Any]:
    return {"requests": agents.requests, "varbinds": agents.varbinds, "dropped": agents.dropped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--community", default="public")
    args = parser.parse_args()
    serve(args.agents, args.community)
    return 0


if __name__ == "__main__":
    sys.exit(main())
