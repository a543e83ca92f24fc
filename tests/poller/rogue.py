"""A misbehaving SNMP agent for tests (v1/v2c, pysnmp's codec, on a loopback UDP port):
it serves a small MIB (system group, a three-row ifTable column) and misbehaves in one
chosen way:
- ``garbage``: answers every request with bytes that do not decode;
- ``toobig``: answers every request with error-status tooBig and no varbinds;
- ``toobig-bulk``: answers GETBULK with tooBig, GET and GETNEXT properly;
- ``strict-v1``: answers properly, but a GET naming one absent OID gets noSuchName for the
  whole PDU (as SNMPv1 says);
- ``generr``: answers every request with genErr;
- ``good``: answers properly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902

MIB: dict[tuple[int, ...], Any] = {
    (1, 3, 6, 1, 2, 1, 1, 3, 0): rfc1902.TimeTicks(123456),
    (1, 3, 6, 1, 2, 1, 1, 5, 0): rfc1902.OctetString(b"rogue"),
    (1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 1): rfc1902.OctetString(b"eth0"),
    (1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 2): rfc1902.OctetString(b"eth1"),
    (1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 3): rfc1902.OctetString(b"eth2"),
}
TOO_BIG, NO_SUCH_NAME, GEN_ERR = 1, 2, 5


class RogueAgent(asyncio.DatagramProtocol):
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def start(cls, mode: str) -> tuple[RogueAgent, int]:
        loop = asyncio.get_running_loop()
        transport, agent = await loop.create_datagram_endpoint(
            lambda: cls(mode), local_addr=("127.0.0.1", 0)
        )
        return agent, int(transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.requests += 1
        assert self.transport is not None
        if self.mode == "garbage":
            self.transport.sendto(b"\x30\x82\x01\x00\x02\x01\x01\x04", addr)
            return
        version = int(api.decodeMessageVersion(data))
        p = api.PROTOCOL_MODULES[version]
        msg, _ = decoder.decode(data, asn1Spec=p.Message())
        req = p.apiMessage.get_pdu(msg)
        rsp = p.apiPDU.get_response(req)
        kind = type(req).__name__
        asked = [tuple(o) for o, _ in p.apiPDU.get_varbinds(req)]
        status, index, vbs = self._answer(p, req, kind, asked)
        p.apiPDU.set_error_status(rsp, status)
        p.apiPDU.set_error_index(rsp, index)
        p.apiPDU.set_varbinds(rsp, vbs)
        p.apiMessage.set_pdu(msg, rsp)
        self.transport.sendto(encoder.encode(msg), addr)

    def _answer(
        self, p: Any, req: Any, kind: str, asked: list[tuple[int, ...]]
    ) -> tuple[int, int, list[tuple[Any, Any]]]:
        echo = [(o, p.Null("")) for o in asked]
        if self.mode == "toobig" or (self.mode == "toobig-bulk" and kind == "GetBulkRequestPDU"):
            return TOO_BIG, 0, []
        if self.mode == "generr":
            return GEN_ERR, 1, echo
        if kind == "GetRequestPDU":
            for i, o in enumerate(asked):
                v1 = self.mode == "strict-v1" or p is api.PROTOCOL_MODULES[0]
                if o not in MIB and v1:
                    return NO_SUCH_NAME, i + 1, echo
            return 0, 0, [(o, MIB.get(o, api.v2c.NoSuchObject(""))) for o in asked]
        repetitions = 1
        if kind == "GetBulkRequestPDU":
            repetitions = int(p.apiBulkPDU.get_max_repetitions(req)) or 1
        out: list[tuple[Any, Any]] = []
        for o in asked:
            cursor = o
            for _ in range(repetitions):
                after = [k for k in sorted(MIB) if k > cursor]
                if not after:
                    if p is api.PROTOCOL_MODULES[0]:
                        return NO_SUCH_NAME, 1, echo
                    out.append((cursor, api.v2c.EndOfMibView("")))
                    break
                cursor = after[0]
                out.append((cursor, MIB[cursor]))
        return 0, 0, out
