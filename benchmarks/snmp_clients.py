"""SNMP clients: CPU per varbind of pysnmp, gufo-snmp and net-snmp on the poller's workload.

A real net-snmp `snmpd` of our own runs in the foreground on 127.0.0.1 on a free UDP port
(`snmpd -f -Lo -C -c CONF -x unix:TMP/agentx udp:127.0.0.1:PORT`), from a config generated
in a temporary directory (which also holds its persistent state and the AgentX socket: no
system file is read or written): community `public` read-only and an SNMPv3 user made by
`createUser` (authPriv, SHA-1 auth, AES-128 priv), both limited to a view of mib-2
(1.3.6.1.2.1) without the tables that change while we read them (hrSWRun, hrSWRunPerf,
hrProcessorTable, the TCP and UDP connection and listener tables).
The workload, each done the same way by every client, one request in flight:
- walk: a GETBULK walk of that view, max-repetitions 25, until the first varbind outside
  1.3.6.1.2.1 or endOfMibView (about 5,000 varbinds on this machine; the exact count and
  the mix of types are printed; loopback has too few interfaces for IF-MIB alone);
- get: one GET of 10 scalars (sysDescr, sysObjectID, sysUpTime, sysContact, sysName,
  sysLocation, sysORLastChange, ifNumber, ipForwarding, ipDefaultTTL) in one PDU, repeated.
Clients: pysnmp 7 asyncio (`bulk_walk_cmd`, `get_cmd`, one SnmpEngine and one transport
target for everything, lookupMib=False; the row "pysnmp lookupMib" is the API's default,
lookupMib=True, v2c only); gufo-snmp (`gufo.snmp.aio.SnmpSession.getbulk` and `get_many`,
one session per protocol version for everything); net-snmp 5.9 command line
(`snmpbulkwalk -Cr25`, `snmpget`, no MIBs loaded, octet strings printed as hex), one
process per walk or GET, so its figures include process start-up (and, for v3, engine
discovery and password-to-key hashing): the walk row amortises that over ~5,000 varbinds,
the GET row shows it whole. The Python clients keep the library's own result objects
(pysnmp's pyasn1 values are not converted to Python values).
CPU: getrusage(RUSAGE_SELF) utime+stime around the loop for pysnmp and gufo-snmp (the
benchmark process does nothing else meanwhile); getrusage(RUSAGE_CHILDREN) around the
loop for net-snmp (the snmpbulkwalk/snmpget processes, waited for; the parent's reading
of their output is not counted); snmpd's own CPU from /proc/PID/schedstat. Each measurement
runs BENCH_SNMP_WALKS walks or BENCH_SNMP_GETS GETs (BENCH_SNMP_PROCS for net-snmp's
processes), stopping early after BENCH_SNMP_SECONDS (defaults 5, 500, 100 and 6 s); the
figures are medians of BENCH_RUNS (default 3) runs, clients interleaved within a run,
after one untimed warm-up of each.
Correctness, on the warm-up pass: every client's walk must return exactly the same OID
list as net-snmp's, and the same values except where a value moves between reads
(Counter32/64, Gauge32 and TimeTicks as net-snmp types them, hrSystemDate, hrStorageUsed);
the same for the GET. Any difference fails the benchmark.
The log also says whether gufo-snmp walks the view at max-repetitions 50, 100 and 200.
"x vs pysnmp" is pysnmp's CPU per varbind over the row's, same protocol and operation.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import median
from benchmarks.radius_loadgen import _self_cpu
from tests.poller.snmpd import AUTH_PASS, COMMUNITY, PRIV_PASS, USER
from tests.poller.snmpd import Snmpd as TestSnmpd

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WALKS = int(os.environ.get("BENCH_SNMP_WALKS", "5"))
GETS = int(os.environ.get("BENCH_SNMP_GETS", "500"))
PROCS = int(os.environ.get("BENCH_SNMP_PROCS", "100"))
SECONDS = float(os.environ.get("BENCH_SNMP_SECONDS", "6"))

ROOT = "1.3.6.1.2.1"
MAX_REPETITIONS = 25
TIMEOUT = 5.0
SCALARS = (
    "1.3.6.1.2.1.1.1.0",  # sysDescr
    "1.3.6.1.2.1.1.2.0",  # sysObjectID
    "1.3.6.1.2.1.1.3.0",  # sysUpTime
    "1.3.6.1.2.1.1.4.0",  # sysContact
    "1.3.6.1.2.1.1.5.0",  # sysName
    "1.3.6.1.2.1.1.6.0",  # sysLocation
    "1.3.6.1.2.1.1.8.0",  # sysORLastChange
    "1.3.6.1.2.1.2.1.0",  # ifNumber
    "1.3.6.1.2.1.4.1.0",  # ipForwarding
    "1.3.6.1.2.1.4.2.0",  # ipDefaultTTL
)
EXCLUDED = (
    "1.3.6.1.2.1.25.4",  # hrSWRunTable: our own processes come and go
    "1.3.6.1.2.1.25.5",  # hrSWRunPerfTable
    "1.3.6.1.2.1.25.3.3",  # hrProcessorTable: rows appear after snmpd's first minute
    "1.3.6.1.2.1.6.13",  # tcpConnTable
    "1.3.6.1.2.1.6.19",  # tcpConnectionTable
    "1.3.6.1.2.1.6.20",  # tcpListenerTable
    "1.3.6.1.2.1.7.5",  # udpTable: holds our client sockets
    "1.3.6.1.2.1.7.7",  # udpEndpointTable
)
MOVING_TYPES = {"Counter32", "Counter64", "Gauge32", "Timeticks"}
MOVING_OIDS = (
    "1.3.6.1.2.1.25.1.2.",  # hrSystemDate
    "1.3.6.1.2.1.25.2.3.1.6.",  # hrStorageUsed
)
WALK, GET = f"walk mib-2 (GETBULK r{MAX_REPETITIONS})", "GET 10 scalars"


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a single-threaded process: /proc/PID/schedstat's run time (ns; exact
    for a process that is asleep, as snmpd is between requests), else /proc/PID/stat
    utime+stime (clock ticks)."""
    with suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the agent ---------------------------------------------------------------------------


class Snmpd(TestSnmpd):
    """The tests' own snmpd (tests/poller/snmpd.py) over the benchmark's view, with its CPU."""

    def __init__(self, tmp: Path) -> None:
        for tool in ("snmpbulkwalk", "snmpget"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is missing: apt-get install snmp (net-snmp tools)")
        super().__init__(tmp, ROOT, EXCLUDED)

    @property
    def cpu(self) -> float:
        return _proc_cpu(self.proc.pid)


# --- results as comparable Python values ---------------------------------------------------


Varbinds = list[tuple[str, Any]]


def _pysnmp_value(value: Any) -> Any:
    from pyasn1.type import univ  # noqa: PLC0415 (not a project dependency yet)
    from pysnmp.proto import rfc1902  # noqa: PLC0415 (not a project dependency yet)

    if isinstance(value, rfc1902.IpAddress):
        return value.prettyPrint()
    if isinstance(value, univ.OctetString):
        return value.asOctets()
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if hasattr(value, "getOid"):  # lookupMib=True gives an OID value as an ObjectIdentity
        return str(value.getOid())
    if isinstance(value, univ.Integer):
        return int(value)
    raise ValueError(f"pysnmp value of unexpected type {type(value).__name__}: {value!r}")


def _netsnmp_parse(text: str) -> tuple[Varbinds, dict[str, str]]:
    """`-On -Ox -Oe -OU` output: (oid, value) pairs and each OID's net-snmp type."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("."):
            lines.append(line)
        elif lines and line.strip():
            lines[-1] += " " + line.strip()  # a long Hex-STRING goes on over lines
    out: Varbinds = []
    types: dict[str, str] = {}
    for line in lines:
        oid, _, rest = line[1:].partition(" = ")
        if rest.startswith("No more variables"):
            continue  # endOfMibView
        kind, _, raw = rest.partition(": ")
        value: Any
        if rest == '""':
            kind, value = "Hex-STRING", b""
        elif kind == "Hex-STRING":
            value = bytes.fromhex(raw.replace(" ", ""))
        elif kind in ("INTEGER", "Counter32", "Counter64", "Gauge32", "UInteger32"):
            value = int(raw)
        elif kind == "Timeticks":
            value = int(raw[1 : raw.index(")")])
        elif kind == "OID":
            value = raw.lstrip(".")
        elif kind == "IpAddress":
            value = raw
        else:
            raise ValueError(f"net-snmp output not understood: {line!r}")
        out.append((oid, value))
        types[oid] = kind
    return out, types


def _moving(oid: str, types: dict[str, str]) -> bool:
    return types.get(oid) in MOVING_TYPES or oid.startswith(MOVING_OIDS)


def _compare(name: str, got: Varbinds, ref: Varbinds, types: dict[str, str]) -> int:
    """Fail unless ``got`` has exactly ``ref``'s OIDs, in order, and its values where
    they do not move between reads. Returns how many values were compared."""
    got_oids, ref_oids = [o for o, _ in got], [o for o, _ in ref]
    if got_oids != ref_oids:
        extra = sorted(set(got_oids) - set(ref_oids))[:5]
        missing = sorted(set(ref_oids) - set(got_oids))[:5]
        raise RuntimeError(
            f"{name}: OID list differs from net-snmp's ({len(got_oids)} vs {len(ref_oids)}"
            f" varbinds; extra {extra}, missing {missing})"
        )
    compared, wrong = 0, []
    for (oid, value), (_, expected) in zip(got, ref, strict=True):
        if _moving(oid, types):
            continue
        compared += 1
        if value != expected:
            wrong.append(f"{oid}: {value!r} != {expected!r}")
    if wrong:
        raise RuntimeError(f"{name}: {len(wrong)} values differ from net-snmp's: {wrong[:5]}")
    return compared


# --- the clients ---------------------------------------------------------------------------


@dataclass
class Client:
    name: str
    snmp: str
    walk: Callable[[], Awaitable[Varbinds]]  # one walk, values as Python values
    get: Callable[[], Awaitable[Varbinds]]  # one GET, values as Python values
    walk_count: Callable[[], Awaitable[int]]  # one walk as measured: how many varbinds
    get_count: Callable[[], Awaitable[int]]  # one GET as measured: how many varbinds
    children: bool = False  # CPU is the child processes'


async def _pysnmp_clients(agent: Snmpd) -> list[Client]:
    from pysnmp.hlapi.v3arch import asyncio as hl  # noqa: PLC0415 (not a project dependency yet)

    engine = hl.SnmpEngine()
    target = await hl.UdpTransportTarget.create(
        ("127.0.0.1", agent.port), timeout=TIMEOUT, retries=0
    )
    context = hl.ContextData()
    names = [hl.ObjectType(hl.ObjectIdentity(o)) for o in SCALARS]
    root = hl.ObjectType(hl.ObjectIdentity(ROOT))
    v2c = hl.CommunityData(COMMUNITY)
    v3 = hl.UsmUserData(
        USER,
        AUTH_PASS,
        PRIV_PASS,
        authProtocol=hl.USM_AUTH_HMAC96_SHA,
        privProtocol=hl.USM_PRIV_CFB128_AES,
    )

    def make(name: str, snmp: str, auth: Any, lookup: bool) -> Client:
        async def walk_raw() -> list[Any]:
            out: list[Any] = []
            async for error, status, index, vbs in hl.bulk_walk_cmd(
                engine,
                auth,
                target,
                context,
                0,
                MAX_REPETITIONS,
                root,
                lexicographicMode=False,
                lookupMib=lookup,
            ):
                if error or status:
                    raise RuntimeError(f"{name} walk: {error or status} at {index}")
                out.extend(vbs)
            return out

        async def get_raw() -> list[Any]:
            error, status, index, vbs = await hl.get_cmd(
                engine, auth, target, context, *names, lookupMib=lookup
            )
            if error or status:
                raise RuntimeError(f"{name} get: {error or status} at {index}")
            return list(vbs)

        async def walk() -> Varbinds:
            return [(str(o[0]), _pysnmp_value(o[1])) for o in await walk_raw()]

        async def get() -> Varbinds:
            return [(str(o[0]), _pysnmp_value(o[1])) for o in await get_raw()]

        async def walk_count() -> int:
            return len(await walk_raw())

        async def get_count() -> int:
            return len(await get_raw())

        return Client(name, snmp, walk, get, walk_count, get_count)

    return [
        make("pysnmp", "v2c", v2c, False),
        make("pysnmp", "v3 authPriv", v3, False),
        make("pysnmp lookupMib", "v2c", v2c, True),
    ]


async def _gufo_clients(agent: Snmpd) -> list[Client]:
    from gufo.snmp import Aes128Key, Sha1Key, User  # noqa: PLC0415 (not a project dependency yet)
    from gufo.snmp.aio import SnmpSession  # noqa: PLC0415 (not a project dependency yet)

    user = User(USER, auth_key=Sha1Key(AUTH_PASS.encode()), priv_key=Aes128Key(PRIV_PASS.encode()))
    sessions = {
        "v2c": SnmpSession("127.0.0.1", agent.port, community=COMMUNITY, timeout=TIMEOUT),
        "v3 authPriv": SnmpSession("127.0.0.1", agent.port, user=user, timeout=TIMEOUT),
    }
    clients = []
    for snmp, session in sessions.items():
        await session.refresh()  # v3: engine discovery and time sync, as `async with` does

        def make(snmp: str, session: SnmpSession) -> Client:
            async def walk() -> Varbinds:
                return [x async for x in session.getbulk(ROOT, max_repetitions=MAX_REPETITIONS)]

            async def get() -> Varbinds:
                got = await session.get_many(SCALARS)
                return [(o, got[o]) for o in SCALARS if o in got]  # PDU order

            async def walk_count() -> int:
                n = 0
                async for _ in session.getbulk(ROOT, max_repetitions=MAX_REPETITIONS):
                    n += 1
                return n

            async def get_count() -> int:
                return len(await session.get_many(SCALARS))

            return Client("gufo-snmp", snmp, walk, get, walk_count, get_count)

        clients.append(make(snmp, session))
    return clients


async def _probe_gufo_bulk(agent: Snmpd) -> None:
    """Log which larger max-repetitions gufo-snmp can walk this view with (it reads a
    response into a 4 KB buffer; net-snmp and pysnmp take any UDP datagram)."""
    from gufo.snmp.aio import SnmpSession  # noqa: PLC0415 (not a project dependency yet)

    session = SnmpSession("127.0.0.1", agent.port, community=COMMUNITY, timeout=TIMEOUT)
    for repetitions in (50, 100, 200):
        try:
            n = 0
            async for _ in session.getbulk(ROOT, max_repetitions=repetitions):
                n += 1
            _log(f"gufo-snmp getbulk max-repetitions {repetitions}: {n} varbinds, fine")
        except Exception as exc:
            _log(f"gufo-snmp getbulk max-repetitions {repetitions}: {type(exc).__name__}: {exc}")


def _netsnmp_clients(agent: Snmpd) -> tuple[list[Client], dict[str, str]]:
    common = ["-On", "-Ox", "-Oe", "-OU", "-t", str(TIMEOUT), "-r", "0"]
    auth = {
        "v2c": ["-v2c", "-c", COMMUNITY],
        "v3 authPriv": [
            *("-v3", "-l", "authPriv", "-u", USER),
            *("-a", "SHA", "-A", AUTH_PASS, "-x", "AES", "-X", PRIV_PASS),
        ],
    }
    peer = f"udp:127.0.0.1:{agent.port}"
    types: dict[str, str] = {}

    def run(args: list[str]) -> str:
        proc = subprocess.run(
            args, check=False, capture_output=True, text=True, env=agent.env, timeout=60
        )
        if proc.returncode or proc.stderr.strip():
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def make(snmp: str, flags: list[str]) -> Client:
        walk_args = ["snmpbulkwalk", *flags, *common, f"-Cr{MAX_REPETITIONS}", peer, ROOT]
        get_args = ["snmpget", *flags, *common, peer, *SCALARS]

        async def walk() -> Varbinds:
            varbinds, seen = _netsnmp_parse(run(walk_args))
            types.update(seen)
            return varbinds

        async def get() -> Varbinds:
            varbinds, seen = _netsnmp_parse(run(get_args))
            types.update(seen)
            return varbinds

        async def walk_count() -> int:
            out = run(walk_args)
            return out.count("\n.") + out.startswith(".") - out.count("No more variables")

        async def get_count() -> int:
            out = run(get_args)
            return out.count("\n.") + out.startswith(".")

        return Client("net-snmp CLI", snmp, walk, get, walk_count, get_count, children=True)

    return [make(snmp, flags) for snmp, flags in auth.items()], types


# --- measurement ---------------------------------------------------------------------------


async def _measure(
    client: Client, agent: Snmpd, op: Callable[[], Awaitable[int]], count: int
) -> dict[str, float]:
    cpu = _children_cpu if client.children else _self_cpu
    deadline = time.monotonic() + SECONDS
    ops = varbinds = 0
    agent0, cpu0, wall0 = agent.cpu, cpu(), time.perf_counter()
    for _ in range(count):
        varbinds += await op()
        ops += 1
        if time.monotonic() > deadline:
            break
    wall, used, agent_used = time.perf_counter() - wall0, cpu() - cpu0, agent.cpu - agent0
    return {"ops": ops, "varbinds": varbinds, "cpu": used, "wall": wall, "agent": agent_used}


async def _bench(tmp: Path) -> list[dict[str, Any]]:
    agent = Snmpd(tmp)
    try:
        _log(f"snmpd pid {agent.proc.pid} on udp:127.0.0.1:{agent.port}")
        netsnmp, types = _netsnmp_clients(agent)
        clients = [*netsnmp, *await _pysnmp_clients(agent), *await _gufo_clients(agent)]
        walks_per_op, gets_per_op = _check(
            clients, await _warm_up(clients), types, reference=netsnmp[0]
        )
        await _probe_gufo_bulk(agent)
        samples: dict[tuple[str, str, str], list[dict[str, float]]] = {}
        for run in range(RUNS):
            for client in clients:
                procs = client.children
                for op_name, op, count in (
                    (WALK, client.walk_count, WALKS),
                    (GET, client.get_count, PROCS if procs else GETS),
                ):
                    got = await _measure(client, agent, op, count)
                    per_op = walks_per_op if op_name == WALK else gets_per_op
                    if got["varbinds"] != per_op * got["ops"]:
                        raise RuntimeError(
                            f"{client.name} {client.snmp} {op_name}: {got['varbinds']} varbinds"
                            f" in {got['ops']} operations, want {per_op} each"
                        )
                    samples.setdefault((client.name, client.snmp, op_name), []).append(got)
            _log(f"run {run + 1}/{RUNS} done")
    finally:
        agent.stop()
    return _rows(samples)


async def _warm_up(clients: list[Client]) -> dict[tuple[str, str], tuple[Varbinds, Varbinds]]:
    """One walk and one GET by each client, back to back, as Python values."""
    results = {}
    for client in clients:
        results[(client.name, client.snmp)] = (await client.walk(), await client.get())
    return results


def _check(
    clients: list[Client],
    results: dict[tuple[str, str], tuple[Varbinds, Varbinds]],
    types: dict[str, str],
    reference: Client,
) -> tuple[int, int]:
    ref_walk, ref_get = results[(reference.name, reference.snmp)]
    kinds = Counter(types[o] for o, _ in ref_walk)
    _log(
        f"walk of {ROOT}: {len(ref_walk)} varbinds ("
        + ", ".join(f"{k} {n}" for k, n in kinds.most_common())
        + ")"
    )
    if len(ref_walk) < 1000 or len(ref_get) != len(SCALARS):
        raise RuntimeError(f"workload too small: {len(ref_walk)} walked, {len(ref_get)} got")
    for client in clients:
        if client is reference:
            continue
        walk, get = results[(client.name, client.snmp)]
        label = f"{client.name} {client.snmp}"
        n_walk = _compare(f"{label} walk", walk, ref_walk, types)
        n_get = _compare(f"{label} get", get, ref_get, types)
        _log(f"{label}: same OIDs as net-snmp, {n_walk} + {n_get} stable values equal")
    return len(ref_walk), len(ref_get)


def _rows(samples: dict[tuple[str, str, str], list[dict[str, float]]]) -> list[dict[str, Any]]:
    rows = []
    for (name, snmp, op), runs in samples.items():
        per_vb = median([r["cpu"] / r["varbinds"] * 1e6 for r in runs])
        rows.append(
            {
                "client": name,
                "snmp": snmp,
                "operation": op,
                "varbinds/op": runs[0]["varbinds"] // max(1, int(runs[0]["ops"])),
                "ops/run": median([r["ops"] for r in runs]),
                "CPU µs/varbind": per_vb,
                "CPU µs/op": median([r["cpu"] / r["ops"] * 1e6 for r in runs]),
                "varbinds/s": median([r["varbinds"] / r["wall"] for r in runs]),
                "snmpd CPU µs/varbind": median([r["agent"] / r["varbinds"] * 1e6 for r in runs]),
            }
        )
    base = {
        (r["snmp"], r["operation"]): r["CPU µs/varbind"] for r in rows if r["client"] == "pysnmp"
    }
    for row in rows:
        pysnmp = base.get((row["snmp"], row["operation"]))
        row["x vs pysnmp"] = pysnmp / row["CPU µs/varbind"] if pysnmp else None
    return rows


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-snmp-") as tmp:
        return asyncio.run(_bench(Path(tmp)))


if __name__ == "__main__":
    from benchmarks.common import table, write

    out = run()
    print(table(out))
    write("snmp_clients", out, (__doc__ or "").strip())
