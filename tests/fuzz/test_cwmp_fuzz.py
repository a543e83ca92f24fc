"""Hostile CWMP input: any POST body, through the hardened parse, every RPC response reader
and the session engine; then the real ACS over HTTP with hostile bodies, gzip included.

The property: a body is either an envelope or an ``EnvelopeError`` carrying an ACS fault
code (8000-8005); the engine answers it or raises ``SessionError``; every integer read
fits the store's integer columns, every effect serializes, what the ACS answers parses, and
a value read from a CPE writes back (SetParameterValues) to the same value. Inputs are the
simulated CPEs' envelopes over the real data models, mutated as bytes and as XML trees.
"""

from __future__ import annotations

import gzip
import re
import socket
import zlib

import httpx
from hypothesis import example, given
from hypothesis import strategies as st
from lxml import etree

from daemons.acs import cwmp
from tests.acs.conftest import AcsServer
from tests.fuzz import seeds
from tests.fuzz.paths import cwmp_receive
from tests.fuzz.strategies import budget, mutated

SEEDS = seeds.cwmp_envelopes()
_TEXTS = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1",
            "true",
            "2147483647",
            "2147483648",
            "4294967296",
            "-2147483649",
            "9" * 30,
            "9" * 5000,
            " 12 ",
            "1_000",
            "\u0661\u0662",  # Arabic-Indic digits: int() reads them
            "0x10",
            "Device.",
            "InternetGatewayDevice.DeviceInfo.SoftwareVersion",
            "xsd:unsignedInt",
            "cwmp:ParameterValueStruct[99999999]",
        ]
    ),
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
    ).filter(lambda s: all(c in "\t\n\r" or ord(c) >= 0x20 for c in s)),
)
_TAGS = (
    "FaultCode",
    "Status",
    "InstanceNumber",
    "MaxEnvelopes",
    "RetryCount",
    "Notification",
    "FileSize",
    "Name",
    "Value",
    "ParameterList",
    "DeviceId",
    "OUI",
    "SerialNumber",
    "Fault",
    "detail",
    "SetParameterValuesFault",
    "HoldRequests",
    "ID",
)
_SCRATCH_NS = "urn:dslforum-org:cwmp-1-0"


@st.composite
def tree_mutated(draw: st.DrawFn) -> bytes:
    """A seed envelope with its tree changed: texts (integers at their edges), elements
    removed, duplicated, renamed, moved into the CWMP namespace or out, xsi:type set."""
    seed = draw(st.sampled_from([s for s in SEEDS if s.strip()]))
    root = etree.fromstring(seed)
    for _ in range(draw(st.integers(1, 5))):
        elems = [e for e in root.iter() if isinstance(e.tag, str)]
        elem = draw(st.sampled_from(elems))
        op = draw(st.integers(0, 6))
        if op == 0:
            elem.text = draw(_TEXTS)
        elif op == 1 and elem.getparent() is not None:
            elem.getparent().remove(elem)
        elif op == 2 and elem.getparent() is not None:
            for _ in range(draw(st.integers(1, 3))):
                elem.addnext(etree.fromstring(etree.tostring(elem)))
        elif op == 3:
            elem.tag = draw(st.sampled_from(_TAGS))
        elif op == 4:
            ns = draw(st.sampled_from([*cwmp.CWMP_NS, cwmp.SOAP_ENV, "urn:x"]))
            elem.tag = etree.QName(ns, etree.QName(elem).localname).text
        elif op == 5:
            elem.set(f"{{{cwmp.XSI}}}type", draw(_TEXTS))
        elif op == 6:
            child = etree.SubElement(elem, draw(st.sampled_from(_TAGS)))
            child.text = draw(_TEXTS)
    return bytes(etree.tostring(root))


@budget(300)
@given(st.binary(max_size=400))
def test_random_bytes(body: bytes) -> None:
    cwmp_receive(body)


@budget(700)
@given(mutated(SEEDS, max_ops=4))
@example(SEEDS[1])
def test_mutated_bytes(body: bytes) -> None:
    cwmp_receive(body)


@budget(700)
@given(tree_mutated())
def test_mutated_trees(body: bytes) -> None:
    cwmp_receive(body)


# --- regressions -------------------------------------------------------------------------

FAULT = b"""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap:Body><soap:Fault><faultcode>Client</faultcode>
<faultstring>CWMP fault</faultstring><detail><cwmp:Fault><FaultCode>%s</FaultCode>
<FaultString>x</FaultString></cwmp:Fault></detail></soap:Fault></soap:Body></soap:Envelope>"""


def test_integers_beyond_the_store_are_refused() -> None:
    """A FaultCode (or Status, InstanceNumber, ...) past 32 bits was read as a Python int,
    and writing it to cpe_faults.code (integer) failed the session's transaction: the ACS
    answered 503 and logged "store unavailable" for a CPE's bad message."""
    assert cwmp.parse(FAULT % b"9005").args["code"] == 9005
    assert cwmp.parse(FAULT % b"2147483647").args["code"] == 2**31 - 1
    for bad in (b"2147483648", b"4294967296", b"-2147483649", b"9" * 30):
        try:
            cwmp.parse(FAULT % bad)
        except cwmp.EnvelopeError as exc:
            assert exc.fault == cwmp.INVALID_ARGUMENTS
        else:
            raise AssertionError(f"FaultCode {bad!r} was accepted")


# --- the real ACS --------------------------------------------------------------------------


def _post(client: httpx.Client, body: bytes, encoding: str | None = None) -> int:
    headers = {"content-type": 'text/xml; charset="utf-8"'}
    if encoding:
        headers["content-encoding"] = encoding
    return client.post("/", content=body, headers=headers).status_code


def test_the_acs_answers_hostile_bodies_with_4xx(acs: AcsServer) -> None:
    """Mutated envelopes, plain and gzipped, a gzip bomb, broken gzip, an unknown encoding
    and a broken chunked body: every answer is a 2xx or a 4xx, never a 5xx, and the ACS
    still runs a CPE's session afterwards."""
    url = f"http://127.0.0.1:{acs.port}"
    statuses: list[int] = []

    @budget(60)
    @given(st.one_of(mutated(SEEDS, max_ops=3), tree_mutated()), st.booleans())
    def post(body: bytes, gzipped: bool) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            status = _post(client, gzip.compress(body) if gzipped else body, "gzip" * gzipped)
            statuses.append(status)
            assert status < 500, status

    post()
    bomb = zlib.compress(bytes(64 * 1024 * 1024), 9)  # 64 MiB of zeros in ~64 KiB
    with httpx.Client(base_url=url, timeout=10) as client:
        assert _post(client, bomb, "deflate") == 413
        # Its trailer cut off, the CRC was never checked and the body was taken (200).
        assert _post(client, gzip.compress(SEEDS[1])[:-9], "gzip") == 400
        assert _post(client, b"\x1f\x8b" + bytes(30), "gzip") == 400
        assert _post(client, SEEDS[1], "br") == 415
    with socket.create_connection(("127.0.0.1", acs.port), timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n<soap:Envelope/>\r\n0\r\n\r\n"
        )
        answer = sock.recv(4096)
        assert not answer or answer.startswith(b"HTTP/1.1 4"), answer[:40]
    with httpx.Client(base_url=url, timeout=10) as client:
        assert _post(client, SEEDS[1]) == 200  # an Inform: the session starts
    # A parameter listed twice made the upsert touch its row twice: PostgreSQL refused the
    # statement (CardinalityViolationError) and the ACS answered the Inform with 503.
    first = re.search(rb"<ParameterValueStruct>.*?</ParameterValueStruct>", SEEDS[1])
    assert first is not None
    twice = SEEDS[1][: first.end()] + first.group(0) + SEEDS[1][first.end() :]
    assert len(cwmp.parse(twice).args["params"]) == len(cwmp.parse(SEEDS[1]).args["params"]) + 1
    with httpx.Client(base_url=url, timeout=10) as client:
        assert _post(client, twice) == 200
    assert acs.metric("netd_acs_rejects_total") >= 4
    assert "unhandled error" not in acs.proc.output()
    assert len(statuses) >= 30
