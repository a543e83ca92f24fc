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
/proc/PID/stat, and of ``--watch-tree`` processes with their children).

``--kind acct`` sends Accounting-Requests instead (RFC 2866; Request Authenticator computed
over the packet, no Message-Authenticator, as NASes send them):

    python -m benchmarks.radius_loadgen --kind acct --port 1813 --secret s3cret \
        --session-prefix run1 --mode closed --window 256 --duration 8

Sessions ``{prefix}-00000000``, ``-00000001``... each send Start, ``--interims``
Interim-Updates (Acct-Session-Time 300, 600, ...) and Stop: every request is a distinct
ledger record. About ``--open-sessions`` sessions are open at once and their records
interleave; a session's next record goes only once the previous one is acknowledged. A
request unanswered for ``--retransmit`` s is sent again (the same bytes) up to
``--retries`` times, then abandoned; an acknowledgement counts once, whatever the
retransmits. Latency runs from the first send to the Accounting-Response, whose Response
Authenticator is always checked. ``acked`` counts every record acknowledged in the whole
run (warm-up and drain included), for comparison with the ledger; ``abandoned_records``
lists those given up on ([session id, status, session time]): they may or may not be in it.
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
    def __init__(self, gen: Generator | AcctGenerator, base: int) -> None:
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
        watch, trees = _parse_watch(a.watch), _parse_watch(a.watch_tree)
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
                watch0 = _watch_cpu(watch, trees)
                busy0 = _machine_cpu()
                t_pace, issued = now, 0
            elif self.phase == 1 and now >= t_end:
                cpu1, wall1 = _self_cpu(), time.perf_counter()
                watch1 = _watch_cpu(watch, trees)
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
            "watch_cpu_s": {k: watch1[k] - watch0[k] for k in watch0},
            "watch_cpu_pct": {k: 100 * (watch1[k] - watch0[k]) / elapsed for k in watch0},
            # every process on the machine (all cores, % of one core), and steal
            "machine_cpu_pct": 100 * (busy1[0] - busy0[0]) / elapsed,
            "steal_pct": 100 * (busy1[1] - busy0[1]) / elapsed,
        }
        return out


# --- accounting (--kind acct) ------------------------------------------------------------

ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE = 4, 5
START, STOP, INTERIM = 1, 2, 3
_ZERO16 = bytes(16)


def _u32(atype: int, value: int) -> bytes:
    return bytes((atype, 6)) + struct.pack("!I", value & 0xFFFFFFFF)


class AcctBuilder:
    """Accounting-Requests (RFC 2866) of sessions 0, 1, 2...: Start, ``interims``
    Interim-Updates with increasing Acct-Session-Time, then Stop, so that every request is
    a distinct ledger record (a distinct idempotency key). Session ``s`` has the
    Acct-Session-Id ``{prefix}-{s:08x}``; its user is ``s % users``."""

    def __init__(
        self, secret: bytes, users: int, user_fmt: str, prefix: str, nas_ip: str, interims: int
    ) -> None:
        self.secret = secret
        self.users = users
        self.user_fmt = user_fmt
        self.prefix = prefix
        self.nas_ip = socket.inet_aton(nas_ip)
        self.steps = (START, *([INTERIM] * interims), STOP)
        self._common: dict[int, bytes] = {}

    def common(self, s: int) -> bytes:
        """The attributes every request of session ``s`` carries (cached while it is open)."""
        got = self._common.get(s)
        if got is None:
            mac = ":".join(f"{b:02x}" for b in (0x02, 0, *(s & 0xFFFFFFFF).to_bytes(4, "big")))
            got = (
                _attr(44, f"{self.prefix}-{s:08x}".encode())  # Acct-Session-Id
                + _attr(1, self.user_fmt.format(s % self.users).encode())  # User-Name
                + _attr(4, self.nas_ip)  # NAS-IP-Address
                + _u32(5, s)  # NAS-Port
                + _u32(61, 15)  # NAS-Port-Type = Ethernet
                + _u32(6, 2)  # Service-Type = Framed-User
                + _u32(7, 1)  # Framed-Protocol = PPP
                + _attr(8, struct.pack("!I", 0x64400000 + (s & 0x3FFFFF)))  # Framed-IP
                + _attr(31, mac.encode())  # Calling-Station-Id
                + _attr(32, b"bench-bng")  # NAS-Identifier
                + _u32(45, 1)  # Acct-Authentic = RADIUS
            )
            self._common[s] = got
        return got

    def session_id(self, s: int) -> str:
        return f"{self.prefix}-{s:08x}"

    def session_time(self, s: int, step: int) -> int:
        if step == 0:
            return 0
        if step == len(self.steps) - 1:
            return 300 * (step - 1) + 150 + s % 60
        return 300 * step

    def build(self, s: int, step: int, ident: int) -> tuple[bytes, bytes]:
        """(packet, its Request Authenticator): MD5(header, 16 zeros, attributes, secret)."""
        status = self.steps[step]
        body = self.common(s) + _u32(40, status) + _u32(41, 0) + _u32(55, int(time.time()))
        if status != START:
            t = self.session_time(s, step)
            octets = t * 1_000_003 * (1 + s % 7)  # past 4 GiB for long sessions: Gigawords
            body += (
                _u32(46, t)  # Acct-Session-Time
                + _u32(42, octets)  # Acct-Input-Octets
                + _u32(43, octets * 5)  # Acct-Output-Octets
                + _u32(52, octets >> 32)  # Acct-Input-Gigawords
                + _u32(53, (octets * 5) >> 32)  # Acct-Output-Gigawords
                + _u32(47, t * 900)  # Acct-Input-Packets
                + _u32(48, t * 4000)  # Acct-Output-Packets
            )
            if status == STOP:
                body += _u32(49, 1)  # Acct-Terminate-Cause = User-Request
        head = b"\x04" + _IDS[ident] + struct.pack("!H", 20 + len(body))
        auth = hashlib.md5(head + _ZERO16 + body + self.secret, usedforsecurity=False).digest()
        if status == STOP:
            self._common.pop(s, None)
        return head + auth + body, auth


class _Pending:
    """A request waiting for its Accounting-Response."""

    __slots__ = (
        "auth",
        "first_ns",
        "last_ns",
        "measured",
        "pkt",
        "port",
        "session",
        "step",
        "tries",
    )

    def __init__(
        self, pkt: bytes, auth: bytes, now: int, measured: bool, port: int, session: int, step: int
    ) -> None:
        self.pkt = pkt
        self.auth = auth
        self.first_ns = self.last_ns = now
        self.measured = measured
        self.port = port
        self.session = session
        self.step = step
        self.tries = 0


class AcctGenerator:
    """Accounting load from ``--open-sessions`` NAS ports visited round-robin: each visit
    sends the next record of the port's session (a Start when it has none; after its Stop
    the port gets a new session), skipping a port whose record is still unanswered (a NAS
    sends a session's next record only once the previous one is acknowledged). Port ``p``
    sits out its first ``p % (interims + 2)`` visits, so the sessions are out of phase and
    the mix is Start : Interim : Stop = 1 : interims : 1 from the first few rounds on,
    instead of waves of Starts then Interims then Stops. A request unanswered for
    ``--retransmit`` seconds is sent again, the same bytes, up to ``--retries`` times, then
    abandoned with its session (the port starts a new one)."""

    def __init__(self, args: argparse.Namespace, builder: AcctBuilder) -> None:
        self.args = args
        self.builder = builder
        self.secret = builder.secret
        self.nsteps = len(builder.steps)
        self.closed = args.mode == "closed"
        self.nslots = args.sockets * 256
        self.slots: list[_Pending | None] = [None] * self.nslots
        self.order = [(k % args.sockets) * 256 + k // args.sockets for k in range(self.nslots)]
        self.free: deque[int] = deque(self.order)
        self.transports: list[Any] = []
        nports = args.open_sessions
        self.nports = nports
        self.port_session = [-1] * nports  # the session on each port, -1: none yet
        self.port_step = [0] * nports  # the step of its next record
        self.port_busy = bytearray(nports)  # a record of it is unanswered
        self.port_idle = [p % self.nsteps for p in range(nports)]  # first visits skipped
        self.port_next = -1
        self.next_session = 0
        self.completed = 0
        self.phase = 0
        self.lat = array("q")
        self.sent = self.sent_total = self.acked = self.window_acks = self.measured_acks = 0
        self.acked_status = {START: 0, INTERIM: 0, STOP: 0}
        self.window_status = {START: 0, INTERIM: 0, STOP: 0}
        self.retransmits = self.window_retransmits = self.retransmitted_acked = 0
        self.stale = self.other = self.unsent = self.errors = 0
        self.abandoned: list[tuple[str, int, int]] = []
        self.inflight = 0
        self.retransmit_ns = int(args.retransmit * 1e9)

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

    def _visit(self) -> int:
        """The next port with a record to send, or -1 if every port waits for an answer."""
        p = self.port_next
        busy, idle = self.port_busy, self.port_idle
        for _ in range(2 * self.nports):
            p = p + 1 if p + 1 < self.nports else 0
            if busy[p]:
                continue
            if idle[p]:
                idle[p] -= 1
                continue
            self.port_next = p
            return p
        self.port_next = p
        return -1

    def send(self, slot: int) -> bool:
        """Send the next record of the next port on ``slot``; False if no port has one."""
        p = self._visit()
        if p < 0:
            self.free.append(slot)
            return False
        s, step = self.port_session[p], self.port_step[p]
        if s < 0:
            s = self.port_session[p] = self.next_session
            self.next_session += 1
            step = self.port_step[p] = 0
        self.port_busy[p] = 1
        pkt, auth = self.builder.build(s, step, slot & 255)
        measured = self.phase == 1
        self.slots[slot] = _Pending(pkt, auth, time.perf_counter_ns(), measured, p, s, step)
        self.inflight += 1
        self.sent_total += 1
        if measured:
            self.sent += 1
        self.transports[slot >> 8].sendto(pkt)
        return True

    def on_reply(self, base: int, data: bytes) -> None:
        if len(data) < 20:
            self.stale += 1
            return
        slot = base + data[1]
        entry = self.slots[slot]
        if entry is None:  # answered already (a reply to a retransmit) or abandoned
            self.stale += 1
            return
        expect = hashlib.md5(
            data[:4] + entry.auth + data[20:] + self.secret, usedforsecurity=False
        ).digest()
        if expect != data[4:20]:  # a late reply to an earlier request on this slot
            self.stale += 1
            return
        now = time.perf_counter_ns()
        self.slots[slot] = None
        self.inflight -= 1
        if data[0] != ACCOUNTING_RESPONSE:
            self.other += 1
            self._abandon(entry)
        else:
            status = self.builder.steps[entry.step]
            self.acked += 1
            self.acked_status[status] += 1
            if entry.tries:
                self.retransmitted_acked += 1
            if self.phase == 1:
                self.window_acks += 1
                self.window_status[status] += 1
            if entry.measured:
                self.measured_acks += 1
                self.lat.append(now - entry.first_ns)
            p = entry.port
            self.port_busy[p] = 0
            if entry.step + 1 == self.nsteps:
                self.port_session[p] = -1
                self.completed += 1
            else:
                self.port_step[p] = entry.step + 1
        self._next(slot)

    def _next(self, slot: int) -> None:
        if self.closed and self.phase < 2:
            self.send(slot)
        else:
            self.free.append(slot)

    def _abandon(self, entry: _Pending) -> None:
        """Give up on a request, and on its session: its port starts a new one."""
        self.port_busy[entry.port] = 0
        self.port_session[entry.port] = -1
        if len(self.abandoned) < self.args.max_abandoned:
            self.abandoned.append(
                (
                    self.builder.session_id(entry.session),
                    self.builder.steps[entry.step],
                    self.builder.session_time(entry.session, entry.step),
                )
            )
        else:
            self.abandoned.append(("", 0, 0))

    def sweep(self, final: bool = False) -> None:
        """Retransmit requests unanswered for --retransmit; abandon those out of retries
        (every one still unanswered if ``final``)."""
        now = time.perf_counter_ns()
        cutoff = now - self.retransmit_ns
        slots = self.slots
        for slot in range(self.nslots):
            entry = slots[slot]
            if entry is None or (entry.last_ns > cutoff and not final):
                continue
            if not final and entry.tries < self.args.retries:
                entry.tries += 1
                entry.last_ns = now
                self.retransmits += 1
                self.window_retransmits += self.phase == 1
                self.transports[slot >> 8].sendto(entry.pkt)
                continue
            slots[slot] = None
            self.inflight -= 1
            self._abandon(entry)
            if not final:
                self._next(slot)

    async def run(self) -> dict[str, Any]:
        a = self.args
        loop = asyncio.get_running_loop()
        watch, trees = _parse_watch(a.watch), _parse_watch(a.watch_tree)
        t0 = loop.time()
        t_measure, t_end = t0 + a.warmup, t0 + a.warmup + a.duration
        drain_for = a.retransmit * (a.retries + 1) + 0.5
        cpu0 = wall0 = cpu1 = wall1 = 0.0
        busy0 = busy1 = (0.0, 0.0)
        watch0: dict[str, float] = {}
        watch1: dict[str, float] = {}
        if self.closed:
            self.free = deque(self.order[a.window :])
            for k in range(a.window):
                self.send(self.order[k])
        issued = 0
        t_pace = t0
        drain_until = t_end + drain_for
        next_sweep = t0 + _SWEEP
        while True:
            now = loop.time()
            if self.phase == 0 and now >= t_measure:
                self.phase = 1
                cpu0, wall0 = _self_cpu(), time.perf_counter()
                watch0 = _watch_cpu(watch, trees)
                busy0 = _machine_cpu()
                t_pace, issued = now, 0
            elif self.phase == 1 and now >= t_end:
                cpu1, wall1 = _self_cpu(), time.perf_counter()
                watch1 = _watch_cpu(watch, trees)
                busy1 = _machine_cpu()
                self.phase = 2
                drain_until = now + drain_for
            if self.phase == 2 and (self.inflight == 0 or now >= drain_until):
                break
            if not self.closed and self.phase < 2:
                due = int((now - t_pace) * a.rate) - issued
                while due > 0:
                    due -= 1
                    issued += 1
                    if not (self.free and self.send(self.free.popleft())):
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

        valid = self.window_acks
        names = {START: "start", INTERIM: "interim", STOP: "stop"}
        return {
            "kind": "acct",
            "mode": a.mode,
            "window": a.window if self.closed else None,
            "target_rate": None if self.closed else a.rate,
            "sockets": a.sockets,
            "prefix": a.session_prefix,
            "duration": elapsed,
            "sent": self.sent,
            "sent_total": self.sent_total,
            "received": self.measured_acks,
            "acked": self.acked,  # every distinct record acknowledged, warm-up and drain too
            "acked_by_status": {names[k]: v for k, v in self.acked_status.items()},
            "window_by_status": {names[k]: v for k, v in self.window_status.items()},
            "sessions_started": self.next_session,
            "sessions_completed": self.completed,
            "sessions_open": sum(1 for x in self.port_session if x >= 0),
            "retransmits": self.retransmits,
            "window_retransmits": self.window_retransmits,
            "retransmitted_acked": self.retransmitted_acked,
            "abandoned": len(self.abandoned),
            "abandoned_records": [r for r in self.abandoned if r[0]],
            "stale": self.stale,
            "other": self.other,
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
            "watch_cpu_s": {k: watch1[k] - watch0[k] for k in watch0},
            "watch_cpu_pct": {k: 100 * (watch1[k] - watch0[k]) / elapsed for k in watch0},
            "machine_cpu_pct": 100 * (busy1[0] - busy0[0]) / elapsed,
            "steal_pct": 100 * (busy1[1] - busy0[1]) / elapsed,
        }


def _tree_cpu(root: int) -> float:
    """CPU seconds of a process and its children: its own, that of its reaped children
    (cutime + cstime) and that of its live children (e.g. a postmaster and its backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        with open(f"/proc/{root}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        total = sum(int(x) for x in fields[11:15]) / tick
        with open(f"/proc/{root}/task/{root}/children", "rb") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        return total
    return total + sum(_proc_cpu(p) for p in children)


def _watch_cpu(watch: dict[str, list[int]], trees: dict[str, list[int]]) -> dict[str, float]:
    out = {k: sum(_proc_cpu(p) for p in v) for k, v in watch.items()}
    out.update({k: sum(_tree_cpu(p) for p in v) for k, v in trees.items()})
    return out


def _parse_watch(items: list[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for item in items:
        name, _, pids = item.partition("=")
        out[name] = [int(p) for p in pids.split(",") if p]
    return out


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    gen: Generator | AcctGenerator
    if args.kind == "acct":
        gen = AcctGenerator(
            args,
            AcctBuilder(
                args.secret.encode(),
                args.users,
                args.user_format,
                args.session_prefix,
                args.nas_ip,
                args.interims,
            ),
        )
        drain = args.retransmit * (args.retries + 1)
    else:
        builder = Builder(
            args.secret.encode(), args.users, args.user_format, args.password_format, args.nas_ip
        )
        gen = Generator(args, builder)
        drain = args.timeout
    await gen.open()
    try:
        limit = args.warmup + args.duration + drain + 30
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
    p.add_argument(
        "--watch-tree",
        action="append",
        default=[],
        help="NAME=PID: CPU of this process and its children (a postmaster and its backends)",
    )
    acct = p.add_argument_group("accounting (--kind acct)")
    p.add_argument("--kind", choices=["auth", "acct"], default="auth")
    acct.add_argument("--session-prefix", default="bench", help="Acct-Session-Id prefix")
    acct.add_argument("--interims", type=int, default=3, help="Interim-Updates per session")
    acct.add_argument(
        "--open-sessions", type=int, default=2000, help="NAS ports: sessions open at once"
    )
    acct.add_argument("--retransmit", type=float, default=1.0, help="seconds before resending")
    acct.add_argument("--retries", type=int, default=3, help="resends before giving up")
    acct.add_argument("--max-abandoned", type=int, default=10_000, help="abandoned listed")
    args = p.parse_args(argv)
    if args.kind == "acct" and (
        args.no_verify
        or not 0 <= args.interims <= 100
        or not 0 <= args.retries <= 10
        or not 0.01 <= args.retransmit <= 30
        or args.open_sessions < 1
        or (args.mode == "closed" and args.open_sessions < 2 * args.window)
    ):
        p.error("bad accounting options (replies are always verified in acct mode)")
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
