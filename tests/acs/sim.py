"""A CPE simulator: each simulated CPE replays a real data model from ../shared/cwmp-models/
and answers every ACS RPC. Many CPEs share one asyncio loop; each uses one keep-alive
connection per session and a minimal HTTP/1.1 client of its own (httpx would be the
bottleneck with thousands of CPEs).

Written for the tests and the benchmark; its envelopes are built with lxml-free string
templates of its own, independent of the ACS's writer, and read with lxml.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import csv
import hashlib
import hmac
import itertools
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

# Copies of ../shared/cwmp-models (MIT-licensed data of genieacs-sim; see models/README.md),
# kept here so the tests run from any clone.
MODELS = Path(__file__).resolve().parent / "models"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass
class Param:
    object: bool
    writable: bool
    value: str
    type: str


def load_model(path: Path) -> dict[str, Param]:
    tree: dict[str, Param] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            name = row["Parameter"]
            is_obj = row["Object"] == "true"
            tree[name + "." if is_obj else name] = Param(
                is_obj,
                row["Writable"] == "true",
                row["Value"] or "",
                row["Value type"] or "xsd:string",
            )
    return tree


def model_files() -> list[Path]:
    return sorted(MODELS.glob("*.csv"))


_ENTITIES = {'"': "&quot;", "\r": "&#13;"}  # a bare CR would be read back as LF


def _e(text: str) -> str:
    return escape(text, _ENTITIES)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


@dataclass
class Cpe:
    """One simulated device."""

    tree: dict[str, Param]
    serial_suffix: str = ""
    ns: str = "urn:dslforum-org:cwmp-1-0"
    username: str = ""
    password: str = ""
    preemptive_basic: bool = False
    bad_array_type: bool = True
    events: list[str] = field(default_factory=lambda: ["2 PERIODIC"])
    transfer_pending: list[str] = field(default_factory=list)  # command keys
    seen: list[str] = field(default_factory=list)  # RPC names received
    cookie: str | None = None
    last_transfer_url: str = ""
    #: names that fault 9005 in any GetParameterValues that asks for them (the whole call
    #: faults, as real stacks do for one parameter they list but cannot read)
    unreadable: set[str] = field(default_factory=set)
    unreadable_fault: int = 9005  # the fault code a GetParameterValues of them gets
    #: RPCs the CPE drops: it closes the connection instead of answering (a CPE that reboots
    #: at once, or crashes, on a Reboot)
    drop: set[str] = field(default_factory=set)
    #: False: a Download/Upload is accepted (status 1) but its TransferComplete never comes
    complete_transfers: bool = True
    #: (method, cwmp:ID sent, cwmp:ID of the ACS's answer) for every request the CPE sent
    echoes: list[tuple[str, str, str]] = field(default_factory=list)
    #: keep a copy of the tree to go back to on a factory reset (off for the benchmarks'
    #: thousands of CPEs sharing one tree)
    resettable: bool = True
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _reset: bool = False

    def __post_init__(self) -> None:
        # The dumps hold the real devices' ConnectionRequestURLs (private addresses): never
        # call them from a test. A test that wants connection requests sets its own.
        for name, p in self.tree.items():
            if name.endswith("ManagementServer.ConnectionRequestURL"):
                p.value = ""
        # what a FactoryReset goes back to
        self.factory = copy.deepcopy(self.tree) if self.resettable else self.tree

    def factory_reset(self) -> None:
        """The CPE goes back to its factory tree and bootstraps (TR-069 A.3.2.2)."""
        self.tree = copy.deepcopy(self.factory)
        self.events = ["0 BOOTSTRAP", "1 BOOT"]
        self.transfer_pending.clear()

    @property
    def root(self) -> str:
        return "InternetGatewayDevice." if "InternetGatewayDevice." in self.tree else "Device."

    def _get(self, suffix: str) -> str:
        p = self.tree.get(self.root + suffix)
        return p.value if p else ""

    @property
    def oui(self) -> str:
        return self._get("DeviceInfo.ManufacturerOUI") or "000000"

    @property
    def product_class(self) -> str:
        return self._get("DeviceInfo.ProductClass") or "SIM"

    @property
    def serial(self) -> str:
        return (self._get("DeviceInfo.SerialNumber") or "SIM") + self.serial_suffix

    @property
    def device_id(self) -> str:
        return f"{self.oui}-{self.product_class}-{self.serial}"

    def envelope(self, body: str, cwmp_id: str | None = None) -> bytes:
        cwmp_id = cwmp_id if cwmp_id is not None else str(next(self._ids))
        return (
            f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:soapenc="http://schemas.xmlsoap.org/'
            'soap/encoding/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cwmp="{self.ns}">'
            f'<soap:Header><cwmp:ID soap:mustUnderstand="1">{_e(cwmp_id)}</cwmp:ID>'
            f"</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
        ).encode()

    def _count(self, n: int) -> int:
        return n + 3 if self.bad_array_type else n  # the quirk: a wrong arrayType count

    def _values(self, names: list[str]) -> str:
        items = "".join(
            f'<ParameterValueStruct><Name>{_e(n)}</Name><Value xsi:type="{_e(self.tree[n].type)}">'
            f"{_e(self.tree[n].value)}</Value></ParameterValueStruct>"
            for n in names
        )
        n = self._count(len(names))
        return (
            f'<ParameterList soapenc:arrayType="cwmp:ParameterValueStruct[{n}]">'
            f"{items}</ParameterList>"
        )

    def inform(self) -> bytes:
        if self._reset:
            self._reset = False
            self.factory_reset()
        inform_params = [
            n
            for n in (
                self.root + "DeviceInfo.HardwareVersion",
                self.root + "DeviceInfo.SoftwareVersion",
                self.root + "ManagementServer.ConnectionRequestURL",
                self.root + "ManagementServer.ParameterKey",
                # reported when its value changed (active notification, as TR-111 asks)
                self.root + "ManagementServer.UDPConnectionRequestAddress",
            )
            if n in self.tree and (not n.endswith("RequestAddress") or self.tree[n].value)
        ]
        events = "".join(
            f"<EventStruct><EventCode>{_e(code)}</EventCode><CommandKey>{_e(key)}</CommandKey>"
            "</EventStruct>"
            for code, key in [(e, "") for e in self.events]
            + [("M Download", k) for k in self.completing]
        )
        n_events = len(self.events) + len(self.completing)
        return self.envelope(
            "<cwmp:Inform><DeviceId>"
            f"<Manufacturer>{_e(self._get('DeviceInfo.Manufacturer'))}</Manufacturer>"
            f"<OUI>{_e(self.oui)}</OUI><ProductClass>{_e(self.product_class)}</ProductClass>"
            f"<SerialNumber>{_e(self.serial)}</SerialNumber></DeviceId>"
            f'<Event soapenc:arrayType="cwmp:EventStruct[{self._count(n_events)}]">{events}</Event>'
            "<MaxEnvelopes>1</MaxEnvelopes><CurrentTime>2026-11-23T00:00:00Z</CurrentTime>"
            f"<RetryCount>0</RetryCount>{self._values(inform_params)}</cwmp:Inform>"
        )

    @property
    def completing(self) -> list[str]:
        """The transfers whose TransferComplete the next session sends."""
        return list(self.transfer_pending) if self.complete_transfers else []

    def transfer_complete(self, key: str) -> bytes:
        return self.envelope(
            f"<cwmp:TransferComplete><CommandKey>{_e(key)}</CommandKey><FaultStruct>"
            "<FaultCode>0</FaultCode><FaultString></FaultString></FaultStruct>"
            "<StartTime>2026-11-23T00:00:00Z</StartTime>"
            "<CompleteTime>2026-11-23T00:00:05Z</CompleteTime></cwmp:TransferComplete>"
        )

    def fault(self, code: int, text: str) -> bytes:
        return self.envelope(
            "<soap:Fault><faultcode>Client</faultcode><faultstring>CWMP fault</faultstring>"
            f"<detail><cwmp:Fault><FaultCode>{code}</FaultCode><FaultString>{_e(text)}"
            "</FaultString></cwmp:Fault></detail></soap:Fault>"
        )

    def answer(self, body: bytes) -> bytes | None:
        """The CPE's answer to one ACS request; None: the CPE drops the connection."""
        root = etree.fromstring(body)
        rpc = next(c for c in root.find(f"{{{SOAP}}}Body") if isinstance(c.tag, str))
        name = _local(rpc.tag)
        self.seen.append(name)
        if name in self.drop:
            return None

        def text(tag: str) -> str:
            el = next((c for c in rpc.iter() if _local(c.tag) == tag), None)
            return (el.text or "") if el is not None else ""

        def strings() -> list[str]:
            return [(c.text or "") for c in rpc.iter() if _local(c.tag) == "string"]

        if name == "GetParameterNames":
            path = text("ParameterPath") or self.root
            next_level = text("NextLevel") in ("1", "true")
            if path not in self.tree and path != "":
                return self.fault(9005, f"Invalid parameter name {path}")
            names = [
                n
                for n in self.tree
                if n.startswith(path)
                and n != path
                and (not next_level or "." not in n[len(path) :].rstrip("."))
            ]
            items = "".join(
                f"<ParameterInfoStruct><Name>{_e(n)}</Name><Writable>"
                f"{'1' if self.tree[n].writable else '0'}</Writable></ParameterInfoStruct>"
                for n in names
            )
            count = self._count(len(names))
            return self.envelope(
                "<cwmp:GetParameterNamesResponse>"
                f'<ParameterList soapenc:arrayType="cwmp:ParameterInfoStruct[{count}]">'
                f"{items}</ParameterList></cwmp:GetParameterNamesResponse>"
            )
        if name == "GetParameterValues":
            wanted: list[str] = []
            for n in strings():
                if n.endswith(".") or n == "":
                    wanted += [k for k in self.tree if k.startswith(n) and not k.endswith(".")]
                elif n in self.tree:
                    wanted.append(n)
                else:
                    return self.fault(9005, f"Invalid parameter name {n}")
            if self.unreadable.intersection(wanted):
                return self.fault(self.unreadable_fault, f"cannot read {min(self.unreadable)}")
            return self.envelope(
                f"<cwmp:GetParameterValuesResponse>{self._values(wanted)}"
                "</cwmp:GetParameterValuesResponse>"
            )
        if name == "GetParameterAttributes":
            items = "".join(
                f"<ParameterAttributeStruct><Name>{_e(n)}</Name><Notification>0</Notification>"
                '<AccessList soapenc:arrayType="xsd:string[0]"></AccessList>'
                "</ParameterAttributeStruct>"
                for n in strings()
            )
            return self.envelope(
                f"<cwmp:GetParameterAttributesResponse><ParameterList>{items}</ParameterList>"
                "</cwmp:GetParameterAttributesResponse>"
            )
        if name == "SetParameterValues":
            for struct in (c for c in rpc.iter() if _local(c.tag) == "ParameterValueStruct"):
                n = next(c.text or "" for c in struct if _local(c.tag) == "Name")
                v = next(c.text or "" for c in struct if _local(c.tag) == "Value")
                p = self.tree.get(n)
                if p is None:
                    return self.fault(9005, f"Invalid parameter name {n}")
                if not p.writable:
                    return self.fault(9008, f"{n} is not writable")
                p.value = v
            return self.envelope(
                "<cwmp:SetParameterValuesResponse><Status>0</Status>"
                "</cwmp:SetParameterValuesResponse>"
            )
        if name == "SetParameterAttributes":
            return self.envelope("<cwmp:SetParameterAttributesResponse/>")
        if name == "AddObject":
            obj = text("ObjectName")
            if obj not in self.tree:
                return self.fault(9005, f"Invalid parameter name {obj}")
            nums = [
                int(k[len(obj) :].split(".")[0])
                for k in self.tree
                if k.startswith(obj) and k[len(obj) :].split(".")[0].isdigit()
            ]
            inst = max(nums, default=0) + 1
            self.tree[f"{obj}{inst}."] = Param(True, True, "", "")
            if nums:  # a real instance has the table's parameters: those of the first one
                first = f"{obj}{min(nums)}."
                for k, p in list(self.tree.items()):
                    if k.startswith(first) and k != first:
                        self.tree[f"{obj}{inst}.{k[len(first) :]}"] = copy.copy(p)
            return self.envelope(
                f"<cwmp:AddObjectResponse><InstanceNumber>{inst}</InstanceNumber>"
                "<Status>0</Status></cwmp:AddObjectResponse>"
            )
        if name == "DeleteObject":
            obj = text("ObjectName")
            if obj not in self.tree:
                return self.fault(9005, f"Invalid parameter name {obj}")
            for k in [k for k in self.tree if k.startswith(obj)]:
                del self.tree[k]
            return self.envelope(
                "<cwmp:DeleteObjectResponse><Status>0</Status></cwmp:DeleteObjectResponse>"
            )
        if name in ("Reboot", "FactoryReset", "ScheduleInform"):
            self._reset = self._reset or name == "FactoryReset"
            return self.envelope(f"<cwmp:{name}Response/>")
        if name in ("Download", "Upload"):
            self.transfer_pending.append(text("CommandKey"))
            self.last_transfer_url = text("URL")
            return self.envelope(
                f"<cwmp:{name}Response><Status>1</Status><StartTime>0001-01-01T00:00:00Z"
                "</StartTime><CompleteTime>0001-01-01T00:00:00Z</CompleteTime>"
                f"</cwmp:{name}Response>"
            )
        return self.fault(9000, f"{name} not supported")


# --- the wire ------------------------------------------------------------------------------


_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")


class Http:
    """One keep-alive HTTP/1.1 connection, enough for CWMP (Content-Length bodies)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Http:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        head = [f"POST {path} HTTP/1.1", "Host: acs", f"Content-Length: {len(body)}"]
        if body:
            head.append('Content-Type: text/xml; charset="utf-8"')
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        m = _STATUS.match(raw)
        if not m:
            raise ConnectionError("not an HTTP response")
        lines = raw.decode("latin-1").split("\r\n")[1:]
        got: dict[str, str] = {}
        for line in lines:
            if ":" in line:
                k, v = line.split(":", 1)
                k = k.strip().lower()
                got[k] = f"{got[k]}, {v.strip()}" if k in got else v.strip()
        length = int(got.get("content-length", "0"))
        data = await self.reader.readexactly(length) if length else b""
        return int(m.group(1)), got, data

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def _digest(cpe: Cpe, challenge: str, path: str) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    qop = "auth" if "auth" in params.get("qop", "") else ""
    ha1 = hashlib.md5(f"{cpe.username}:{realm}:{cpe.password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"POST:{path}".encode()).hexdigest()
    cnonce, nc = os.urandom(8).hex(), "00000001"
    if qop:
        resp = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()
    else:
        resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    out = (
        f'Digest username="{cpe.username}", realm="{realm}", nonce="{nonce}", uri="{path}", '
        f'response="{resp}"'
    )
    if qop:
        out += f', qop={qop}, nc={nc}, cnonce="{cnonce}"'
    if "opaque" in params:
        out += f', opaque="{params["opaque"]}"'
    return out


async def run_session(cpe: Cpe, host: str, port: int, path: str = "/") -> list[int]:
    """One session: Inform, pending TransferCompletes, then answer until the ACS ends it.
    Returns the HTTP statuses seen."""
    conn = await Http.open(host, port)
    statuses: list[int] = []
    headers: dict[str, str] = {}
    if cpe.cookie:  # the quirk: an old session's cookie echoed on the next Inform
        headers["Cookie"] = cpe.cookie
    if cpe.preemptive_basic:
        token = base64.b64encode(f"{cpe.username}:{cpe.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        body = cpe.inform()
        status, got, data = await conn.post(path, body, headers)
        statuses.append(status)
        if status == 401 and cpe.username:
            challenge = got.get("www-authenticate", "")
            if challenge.lower().startswith("digest"):
                headers["Authorization"] = _digest(cpe, challenge, path)
            else:
                token = base64.b64encode(f"{cpe.username}:{cpe.password}".encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            status, got, data = await conn.post(path, body, headers)
            statuses.append(status)
        if status != 200:
            return statuses
        if "set-cookie" in got:
            cpe.cookie = got["set-cookie"].split(";", 1)[0]
            headers["Cookie"] = cpe.cookie
        headers.pop("Authorization", None) if not cpe.preemptive_basic else None
        cpe.events = ["2 PERIODIC"]
        for key in cpe.completing:
            status, got, data = await request(cpe, conn, path, headers, cpe.transfer_complete(key))
            statuses.append(status)
            cpe.transfer_pending.remove(key)
        status, got, data = await conn.post(path, b"", headers)
        statuses.append(status)
        for _ in range(100_000):
            if status != 200 or not data:
                return statuses
            reply = cpe.answer(data)
            if reply is None:  # dropped: the connection closes with no answer
                return statuses
            status, got, data = await conn.post(path, reply, headers)
            statuses.append(status)
        raise AssertionError("the ACS never ended the session")
    finally:
        await conn.close()


def cwmp_id(body: bytes) -> str:
    """The cwmp:ID header of an envelope ("" if none)."""
    if not body:
        return ""
    found = [e for e in etree.fromstring(body).iter() if _local(e.tag) == "ID"]
    return (found[0].text or "") if found else ""


async def request(
    cpe: Cpe, conn: Http, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """A request of the CPE's own (TransferComplete, GetRPCMethods...) inside a session;
    the ID of the ACS's answer is kept in ``cpe.echoes``."""
    status, got, data = await conn.post(path, body, headers)
    rpc = next(c for c in etree.fromstring(body).find(f"{{{SOAP}}}Body") if isinstance(c.tag, str))
    cpe.echoes.append((_local(rpc.tag), cwmp_id(body), cwmp_id(data)))
    return status, got, data


class ConnectionRequests:
    """A CPE's connection request listener (TR-069 §3.2.2): answers GET with a Digest
    challenge, then 200 to the right credentials, and counts the requests it accepted."""

    def __init__(self, username: str, password: str, scheme: str = "digest") -> None:
        self.username, self.password = username, password
        self.scheme = scheme
        self.accepted = 0
        self.times: list[float] = []  # time.monotonic() of each request accepted
        self.called = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}/cr"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonce = os.urandom(8).hex()
        try:
            for _ in range(3):
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                auth = next(
                    (
                        line.split(":", 1)[1].strip()
                        for line in head.split("\r\n")
                        if line.lower().startswith("authorization:")
                    ),
                    "",
                )
                if self._valid(auth, nonce):
                    self.accepted += 1
                    self.times.append(time.monotonic())
                    self.called.set()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                elif self.scheme == "basic":
                    writer.write(
                        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                        b'WWW-Authenticate: Basic realm="cpe"\r\n\r\n'
                    )
                else:
                    writer.write(
                        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                        b'WWW-Authenticate: Digest realm="cpe", qop="auth", nonce="'
                        + nonce.encode()
                        + b'"\r\n\r\n'
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _valid(self, header: str, nonce: str) -> bool:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return header == f"Basic {token}"
        if not header.lower().startswith("digest "):
            return False
        p = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', header)}
        if p.get("nonce") != nonce or p.get("username") != self.username:
            return False
        ha1 = hashlib.md5(f"{self.username}:cpe:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"GET:{p.get('uri', '')}".encode()).hexdigest()
        nc, cnonce, qop = p.get("nc", ""), p.get("cnonce", ""), p.get("qop", "")
        want = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()
        return want == p.get("response")


# --- behind a NAT: STUN and UDP connection requests (TR-069 Annex G, TR-111) ---------------


class NatMapping(asyncio.DatagramProtocol):
    """One NAT port mapping of a CPE: the public side is a loopback UDP port. What the CPE
    sends goes out from it; what comes in is passed to the CPE only from an address and
    port the CPE has sent to (address- and port-dependent filtering, RFC 4787), else
    dropped and counted."""

    def __init__(self, deliver: Any) -> None:
        self.deliver = deliver
        self.allowed: set[tuple[str, int]] = set()
        self.dropped = 0
        self.transport: asyncio.DatagramTransport | None = None

    async def open(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        assert self.transport is not None
        self.allowed.add(dest)
        self.transport.sendto(data, dest)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if (addr[0], addr[1]) in self.allowed:
            self.deliver(data, addr)
        else:
            self.dropped += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UdpCpe:
    """The CPE's STUN client and UDP connection request listener, behind a NatMapping:
    it learns its binding from the ACS's STUN server, reports it in
    ManagementServer.UDPConnectionRequestAddress, and accepts a signed request (ts, id,
    un, cn, sig, TR-069 G.2.2.3) once per id."""

    def __init__(self, cpe: Cpe, username: str, password: str) -> None:
        self.cpe, self.username, self.password = cpe, username, password
        self.nat = NatMapping(self._inbound)
        self.accepted = 0
        self.refused: list[str] = []
        self.called = asyncio.Event()
        self._ids: set[str] = set()
        self._answer: asyncio.Future[bytes] | None = None

    async def bind(self, stun_host: str, stun_port: int) -> str:
        """A Binding Request through the NAT (classic STUN with TR-111's
        CONNECTION-REQUEST-BINDING); the mapped address becomes the CPE's
        UDPConnectionRequestAddress, with STUNEnable true."""
        await self.nat.open()
        tid = os.urandom(16)
        crb = b"dslforum.org/TR-111 "
        msg = (0x0001).to_bytes(2, "big") + (4 + len(crb)).to_bytes(2, "big") + tid
        msg += (0xC001).to_bytes(2, "big") + len(crb).to_bytes(2, "big") + crb
        self._answer = asyncio.get_running_loop().create_future()
        self.nat.send(msg, (stun_host, stun_port))
        reply = await asyncio.wait_for(self._answer, 5)
        assert reply[:2] == b"\x01\x01" and reply[4:20] == tid, reply[:20].hex()
        pos, mapped = 20, ""
        while pos < len(reply):
            kind = int.from_bytes(reply[pos : pos + 2], "big")
            size = int.from_bytes(reply[pos + 2 : pos + 4], "big")
            value = reply[pos + 4 : pos + 4 + size]
            if kind == 0x0001:  # MAPPED-ADDRESS
                port = int.from_bytes(value[2:4], "big")
                mapped = f"{'.'.join(str(b) for b in value[4:8])}:{port}"
            pos += 4 + size + (-size % 4)
        root = self.cpe.root
        self.cpe.tree[root + "ManagementServer.UDPConnectionRequestAddress"].value = mapped
        self.cpe.tree[root + "ManagementServer.STUNEnable"].value = "true"
        return mapped

    def _inbound(self, data: bytes, _addr: tuple[Any, ...]) -> None:
        if self._answer is not None and not self._answer.done() and data[:2] == b"\x01\x01":
            self._answer.set_result(data)
            return
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        m = re.match(r"GET http://[^?]+\?(\S+) HTTP/1\.1$", line)
        if not m:
            self.refused.append("not a UDP connection request")
            return
        q = dict(p.split("=", 1) for p in m.group(1).split("&"))
        text = f"{q.get('ts')}{q.get('id')}{q.get('un')}{q.get('cn')}".encode()
        want = hmac.new(self.password.encode(), text, hashlib.sha1).hexdigest()
        if q.get("un") != self.username or not hmac.compare_digest(want, q.get("sig", "")):
            self.refused.append("bad signature")
        elif abs(time.time() - int(q.get("ts", "0"))) > 60:
            self.refused.append("stale ts")
        elif q["id"] in self._ids:
            pass  # a copy of one already taken (the ACS sends each request several times)
        else:
            self._ids.add(q["id"])
            self.accepted += 1
            self.called.set()
