"""A RADIUS Access-Request load generator (PAP), run as its own process.

    python -m benchmarks.radius_loadgen --port 1812 --secret s3cret --users 10000 \\
        --mode closed --window 256 --duration 8

One uvloop event loop, several connected UDP sockets (256 identifiers each, so the number
of requests in flight is not capped at 256). Packets are built per request (a fresh random
Request Authenticator, User-Password hidden per RFC 2865 §5.2, Message-Authenticator per
RFC 3579 §3.2, first) from per-user templates, so a request costs one MD5 and one
HMAC-MD5. Replies are matched by (socket, identifier) and their Response Authenticator is
checked against the request's.

Modes: ``closed`` keeps ``--window`` requests in flight (a reply sends the next request on
the same socket and identifier): maximum throughput. ``open`` sends at ``--rate`` requests/s
whatever the replies do (paced on a 1 ms timer): latency at a given load.

After ``--warmup`` seconds the measurement window of ``--duration`` seconds starts; then
sending stops and replies are awaited for ``--timeout`` seconds. Printed on stdout as JSON:
requests sent in the window, their replies (accepts, rejects), timeouts, throughput (valid
replies received in the window per second), latency percentiles of the window's requests,
and this process's own CPU time in the window (plus that of ``--watch`` pids, from
/proc/PID/stat).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import json
import os
import resource
import socket
import struct
import sys
import time
from array import array
from collections import deque
from typing import Any

import uvloop

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3
_IDS = [bytes((i,)) for i in range(256)]
_TICK = 0.001  # open-loop pacing timer
_SWEEP = 0.05  # timeout sweep period


def _attr(atype: int, value: bytes) -> bytes:
    if len(value) > 253:
        raise ValueError(f"attribute {atype} too long")
    return bytes((atype, len(value) + 2)) + value


class Builder:
    """Access-Requests for users 0..n-1 from per-user templates."""

    def __init__(
        self, secret: bytes, users: int, user_fmt: str, password_fmt: str, nas_ip: str
    ) -> None:
        self.secret = secret
        self._md5_secret = hashlib.md5(secret, usedforsecurity=False)
        self.templates: list[tuple[bytes, bytes, bytes, int]] = []
        nas_ip_b = socket.inet_aton(nas_ip)
        for i in range(users):
            name = user_fmt.format(i).encode()
            pw = password_fmt.format(i).encode()
            if not 1 <= len(pw) <= 16:
                raise ValueError("passwords of 1..16 octets only (one hiding block)")
            mac = ":".join(f"{b:02x}" for b in (0x02, 0, *i.to_bytes(4, "big")))
            prefix = (
                _attr(80, bytes(16))  # Message-Authenticator, zero while signing
                + _attr(1, name)
                + b"\x02\x12"  # User-Password: 16 hidden octets follow
            )
            suffix = (
                _attr(4, nas_ip_b)  # NAS-IP-Address
                + _attr(5, struct.pack("!I", i))  # NAS-Port
                + _attr(61, struct.pack("!I", 15))  # NAS-Port-Type = Ethernet
                + _attr(6, struct.pack("!I", 2))  # Service-Type = Framed-User
                + _attr(7, struct.pack("!I", 1))  # Framed-Protocol = PPP
                + _attr(31, mac.encode())  # Calling-Station-Id
                + _attr(32, b"bench-bng")  # NAS-Identifier
            )
            length = 20 + len(prefix) + 16 + len(suffix)
            self.templates.append(
                (
                    struct.pack("!H", length),
                    prefix,
                    suffix,
                    int.from_bytes(pw + bytes(16 - len(pw)), "big"),
                )
            )

    def build(self, user: int, ident: int, auth: bytes) -> bytes:
        lenb, prefix, suffix, pw = self.templates[user]
        m = self._md5_secret.copy()
        m.update(auth)
        hidden = (int.from_bytes(m.digest(), "big") ^ pw).to_bytes(16, "big")
        raw = b"\x01" + _IDS[ident] + lenb + auth + prefix + hidden + suffix
        ma = hmac.digest(self.secret, raw, "md5")
        return raw[:22] + ma + raw[38:]


def _proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[float, float]:
    """Busy and steal CPU seconds of the whole machine so far (/proc/stat, all cores)."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal (guest time is within user)
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / tick, fields[7] / tick


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class _Sock(asyncio.DatagramProtocol):
    def __init__(self, gen: Generator, base: int) -> None:
        self.gen = gen
        self.base = base

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.gen.on_reply(self.base, data)

    def error_received(self, exc: Exception) -> None:
        self.gen.errors += 1


class Generator:
    def __init__(self, args: argparse.Namespace, builder: Builder) -> None:
        self.args = args
        self.builder = builder
        self.secret = builder.secret
        self.users = len(builder.templates)
        self.closed = args.mode == "closed"
        self.nslots = args.sockets * 256
        self.slots: list[tuple[int, bytes, bool] | None] = [None] * self.nslots
        # consecutive sends rotate over the sockets (slot k → socket k % S, id k // S), so
        # that SO_REUSEPORT spreads them over the server's workers
        self.order = [(k % args.sockets) * 256 + k // args.sockets for k in range(self.nslots)]
        self.free: deque[int] = deque(self.order)
        self.transports: list[Any] = []
        self.next_user = 0
        self.phase = 0  # 0 warm-up, 1 measuring, 2 draining
        self.lat = array("q")
        self.sent = self.received = self.accepts = self.rejects = self.other = 0
        self.timeouts = self.stale = self.unsent = self.errors = 0
        self.window_replies = 0
        self.inflight = 0
        self.timeout_ns = int(args.timeout * 1e9)
        self.verify = not args.no_verify

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for i in range(self.args.sockets):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, 1 << 21)
            sock.bind(("127.0.0.1", 0))
            sock.connect((self.args.host, self.args.port))
            sock.setblocking(False)
            transport, _ = await loop.create_datagram_endpoint(
                lambda i=i: _Sock(self, i * 256), sock=sock
            )
            self.transports.append(transport)

    def send(self, slot: int) -> None:
        user = self.next_user
        self.next_user = (user + 1) % self.users
        auth = os.urandom(16)
        pkt = self.builder.build(user, slot & 255, auth)
        measured = self.phase == 1
        self.slots[slot] = (time.perf_counter_ns(), auth, measured)
        self.inflight += 1
        if measured:
            self.sent += 1
        self.transports[slot >> 8].sendto(pkt)

    def on_reply(self, base: int, data: bytes) -> None:
        if len(data) < 20:
            self.stale += 1
            return
        slot = base + data[1]
        entry = self.slots[slot]
        if entry is None:
            self.stale += 1
            return
        t_ns, auth, measured = entry
        if self.verify:
            expect = hashlib.md5(
                data[:4] + auth + data[20:] + self.secret, usedforsecurity=False
            ).digest()
            if expect != data[4:20]:  # a late reply to an earlier request on this slot
                self.stale += 1
                return
        now = time.perf_counter_ns()
        self.slots[slot] = None
        self.inflight -= 1
        code = data[0]
        if self.phase == 1:
            self.window_replies += 1
        if measured:
            self.received += 1
            self.lat.append(now - t_ns)
            if code == ACCESS_ACCEPT:
                self.accepts += 1
            elif code == ACCESS_REJECT:
                self.rejects += 1
            else:
                self.other += 1
        if self.closed and self.phase < 2:
            self.send(slot)
        else:
            self.free.append(slot)

    def sweep(self, final: bool = False) -> None:
        """Expire requests unanswered for --timeout (all of them if ``final``)."""
        cutoff = time.perf_counter_ns() - (0 if final else self.timeout_ns)
        slots = self.slots
        for slot in range(self.nslots):
            entry = slots[slot]
            if entry is not None and entry[0] <= cutoff:
                slots[slot] = None
                self.inflight -= 1
                if entry[2]:
                    self.timeouts += 1
                if self.closed and self.phase < 2 and not final:
                    self.send(slot)
                else:
                    self.free.append(slot)

    async def run(self) -> dict[str, Any]:
        a = self.args
        loop = asyncio.get_running_loop()
        watch = _parse_watch(a.watch)
        t0 = loop.time()
        t_measure, t_end = t0 + a.warmup, t0 + a.warmup + a.duration
        cpu0 = wall0 = 0.0
        busy0 = busy1 = (0.0, 0.0)
        watch0: dict[str, float] = {}
        if self.closed:
            for k in range(a.window):
                self.send(self.order[k])
        issued = 0
        t_pace = t0
        next_sweep = t0 + _SWEEP
        while True:
            now = loop.time()
            if self.phase == 0 and now >= t_measure:
                self.phase = 1
                cpu0, wall0 = _self_cpu(), time.perf_counter()
                watch0 = {k: sum(_proc_cpu(p) for p in v) for k, v in watch.items()}
                busy0 = _machine_cpu()
                t_pace, issued = now, 0
            elif self.phase == 1 and now >= t_end:
                cpu1, wall1 = _self_cpu(), time.perf_counter()
                watch1 = {k: sum(_proc_cpu(p) for p in v) for k, v in watch.items()}
                busy1 = _machine_cpu()
                self.phase = 2
                drain_until = now + a.timeout
            if self.phase == 2 and (self.inflight == 0 or now >= drain_until):
                break
            if not self.closed and self.phase < 2:
                due = int((now - t_pace) * a.rate) - issued
                while due > 0:
                    due -= 1
                    issued += 1
                    if self.free:
                        self.send(self.free.popleft())
                    else:
                        self.unsent += self.phase == 1
            if now >= next_sweep:
                self.sweep()
                next_sweep = now + _SWEEP
            await asyncio.sleep(_TICK if not self.closed else _SWEEP / 2)
        self.sweep(final=True)
        elapsed = wall1 - wall0
        cpu = cpu1 - cpu0
        lat = sorted(self.lat)

        def pct(q: float) -> float | None:
            if not lat:
                return None
            return lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6

        valid = self.window_replies
        out: dict[str, Any] = {
            "mode": a.mode,
            "window": a.window if self.closed else None,
            "target_rate": None if self.closed else a.rate,
            "sockets": a.sockets,
            "duration": elapsed,
            "sent": self.sent,
            "received": self.received,
            "accepts": self.accepts,
            "rejects": self.rejects,
            "other": self.other,
            "timeouts": self.timeouts,
            "stale": self.stale,
            "unsent": self.unsent,
            "errors": self.errors,
            "rate": valid / elapsed,
            "send_rate": self.sent / elapsed,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "p999_ms": pct(0.999),
            "max_ms": lat[-1] / 1e6 if lat else None,
            "cpu_s": cpu,
            "cpu_pct": 100 * cpu / elapsed,
            "cpu_us_per_req": 1e6 * cpu / valid if valid else None,
            "watch_cpu_s": {k: watch1[k] - watch0[k] for k in watch},
            "watch_cpu_pct": {k: 100 * (watch1[k] - watch0[k]) / elapsed for k in watch},
            # every process on the machine (all cores, % of one core), and steal
            "machine_cpu_pct": 100 * (busy1[0] - busy0[0]) / elapsed,
            "steal_pct": 100 * (busy1[1] - busy0[1]) / elapsed,
        }
        return out


def _parse_watch(items: list[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for item in items:
        name, _, pids = item.partition("=")
        out[name] = [int(p) for p in pids.split(",") if p]
    return out


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    builder = Builder(
        args.secret.encode(), args.users, args.user_format, args.password_format, args.nas_ip
    )
    gen = Generator(args, builder)
    await gen.open()
    try:
        limit = args.warmup + args.duration + args.timeout + 30
        return await asyncio.wait_for(gen.run(), limit)
    finally:
        for t in gen.transports:
            t.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.radius_loadgen")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--nas-ip", default="127.0.0.1")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--user-format", default="user{:05d}")
    p.add_argument("--password-format", default="pw-{:05d}")
    p.add_argument("--mode", choices=["closed", "open"], default="closed")
    p.add_argument("--window", type=int, default=64, help="closed: requests in flight")
    p.add_argument("--rate", type=float, default=1000.0, help="open: requests per second")
    p.add_argument("--sockets", type=int, default=16, help="source sockets (256 ids each)")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--timeout", type=float, default=2.0, help="seconds before a timeout")
    p.add_argument("--no-verify", action="store_true", help="skip Response Authenticators")
    p.add_argument(
        "--watch", action="append", default=[], help="NAME=PID[,PID]: CPU of these in the window"
    )
    args = p.parse_args(argv)
    if not 1 <= args.sockets <= 256:
        p.error("--sockets must be 1..256")
    if args.mode == "closed" and not 1 <= args.window <= args.sockets * 256:
        p.error("--window must be 1..256 x --sockets")
    if args.duration <= 0 or args.warmup < 0 or args.rate <= 0 or args.duration > 3600:
        p.error("bad --duration, --warmup or --rate")
    host = args.host
    if not host.startswith("127."):
        p.error("loopback targets only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    gc.disable()  # no collector pauses in the measurement (bounded run, bounded memory)
    result = uvloop.run(_main(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
