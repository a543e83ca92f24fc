"""The CWMP codec against envelopes as real CPE stacks write them (hand-written here from
TR-069 Annex A and genieacs-sim's templates, not produced by our writer), and hostile ones."""

from __future__ import annotations

import pytest
from lxml import etree

from daemons.acs import cwmp

INFORM = b"""<?xml version="1.0" encoding="UTF-8"?>
<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:cwmp="urn:dslforum-org:cwmp-1-2">
 <soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">1804289383</cwmp:ID></soap-env:Header>
 <soap-env:Body>
  <cwmp:Inform>
   <DeviceId><Manufacturer>TP-Link</Manufacturer><OUI>1C61B4</OUI>
     <ProductClass>EX220</ProductClass><SerialNumber>2226469000523</SerialNumber></DeviceId>
   <Event soap-enc:arrayType="cwmp:EventStruct[7]">
     <EventStruct><EventCode>2 PERIODIC</EventCode><CommandKey></CommandKey></EventStruct>
   </Event>
   <MaxEnvelopes>1</MaxEnvelopes><CurrentTime>2023-05-25T20:36:00Z</CurrentTime>
   <RetryCount>0</RetryCount>
   <ParameterList soap-enc:arrayType="cwmp:ParameterValueStruct[1]">
    <ParameterValueStruct><Name>Device.DeviceInfo.SoftwareVersion</Name>
      <Value xsi:type="xsd:string">1.1.0 Build 230308</Value></ParameterValueStruct>
    <ParameterValueStruct><Name>Device.ManagementServer.PeriodicInformInterval</Name>
      <Value xsi:type="xsd:unsignedInt">300</Value></ParameterValueStruct>
   </ParameterList>
  </cwmp:Inform>
 </soap-env:Body>
</soap-env:Envelope>"""


def test_inform_is_read_by_its_elements_not_its_array_type() -> None:
    env = cwmp.parse(INFORM)
    assert (env.ns, env.cwmp_id, env.method) == (
        "urn:dslforum-org:cwmp-1-2",
        "1804289383",
        "Inform",
    )
    assert env.args["device"].key == "1C61B4-EX220-2226469000523"
    assert env.args["events"] == [("2 PERIODIC", "")]  # arrayType said 7
    assert [p.name for p in env.args["params"]] == [
        "Device.DeviceInfo.SoftwareVersion",
        "Device.ManagementServer.PeriodicInformInterval",
    ]
    assert env.args["params"][1].type == "xsd:unsignedInt"


def test_reply_uses_the_cpe_namespace_and_the_cwmp_prefix() -> None:
    out = cwmp.envelope("urn:dslforum-org:cwmp-1-2", "1804289383", cwmp.inform_response())
    root = etree.fromstring(out)
    body = root.find(f"{{{cwmp.SOAP_ENV}}}Body")
    assert body is not None
    rpc = body[0]
    assert rpc.tag == "{urn:dslforum-org:cwmp-1-2}InformResponse" and rpc.prefix == "cwmp"
    header_id = root.find(".//{urn:dslforum-org:cwmp-1-2}ID")
    assert header_id is not None and header_id.text == "1804289383"


def test_odd_namespace_with_the_cwmp_prefix_is_accepted() -> None:
    odd = INFORM.replace(b'xmlns:cwmp="urn:dslforum-org:cwmp-1-2"', b'xmlns:cwmp="urn:vendor:cwmp"')
    env = cwmp.parse(odd)
    assert env.method == "Inform" and env.ns == cwmp.DEFAULT_NS


def test_wrong_namespace_is_refused() -> None:
    bad = INFORM.replace(b"<cwmp:Inform>", b'<x:Inform xmlns:x="urn:other">').replace(
        b"</cwmp:Inform>", b"</x:Inform>"
    )
    with pytest.raises(cwmp.EnvelopeError):
        cwmp.parse(bad)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b"<lolz>&lol2;</lolz>",
        b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<foo>&xxe;</foo>",
        b"<soap-env:Envelope xmlns:soap-env='http://schemas.xmlsoap.org/soap/envelope/'>",
        b"not xml at all",
        b"<Envelope><Body/></Envelope>",
        b"\xff\xfe<bad/>",
    ],
)
def test_hostile_or_malformed_bodies_are_envelope_errors(body: bytes) -> None:
    with pytest.raises(cwmp.EnvelopeError):
        cwmp.parse(body)


def test_empty_post_and_empty_body() -> None:
    assert cwmp.parse(b"").method == ""
    empty = cwmp.parse(
        b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap-env:Body/></soap-env:Envelope>"
    )
    assert empty.method == ""


def test_cpe_fault_with_set_parameter_values_faults() -> None:
    body = b"""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
      xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap:Header><cwmp:ID>7</cwmp:ID></soap:Header>
      <soap:Body><soap:Fault><faultcode>Client</faultcode><faultstring>CWMP fault</faultstring>
      <detail><cwmp:Fault><FaultCode>9003</FaultCode><FaultString>Invalid arguments</FaultString>
      <SetParameterValuesFault><ParameterName>Device.X</ParameterName><FaultCode>9008</FaultCode>
      <FaultString>not writable</FaultString></SetParameterValuesFault></cwmp:Fault></detail>
      </soap:Fault></soap:Body></soap:Envelope>"""
    env = cwmp.parse(body)
    assert env.method == "Fault" and env.args["code"] == 9003
    assert env.args["params"] == [{"name": "Device.X", "code": 9008, "string": "not writable"}]


def test_written_requests_are_valid_xml_with_escaped_values() -> None:
    body = cwmp.set_parameter_values(
        [cwmp.ParamValue("Device.X.SSID", "a<b&\"c'", "xsd:string")], "key&1"
    )
    root = etree.fromstring(cwmp.envelope(cwmp.CWMP_NS[4], "9", body))
    value = root.find(".//Value")
    assert value is not None and value.text == "a<b&\"c'"
    assert value.get(f"{{{cwmp.XSI}}}type") == "xsd:string"
    for rpc in (
        cwmp.get_parameter_names("Device.", True),
        cwmp.get_parameter_values(["Device.A", "Device.B"]),
        cwmp.get_parameter_attributes(["Device."]),
        cwmp.set_parameter_attributes([{"name": "Device.A", "notification": 2}]),
        cwmp.add_object("Device.X.", "k"),
        cwmp.delete_object("Device.X.1.", "k"),
        cwmp.reboot("k"),
        cwmp.factory_reset(),
        cwmp.schedule_inform(5, "k"),
        cwmp.download("k", "1 Firmware Upgrade Image", "http://acs/f.bin", file_size=10),
        cwmp.upload("k", "1 Vendor Configuration File", "http://acs/up"),
        cwmp.get_rpc_methods_response(),
        cwmp.fault(8000, "Method not supported"),
    ):
        etree.fromstring(cwmp.envelope(cwmp.DEFAULT_NS, "1", rpc))


@pytest.mark.parametrize("xsi_type", ["xsd:\n", "xsd:\tint", "xsd:string\r"])
def test_a_type_with_whitespace_is_written_back_as_read(xsi_type: str) -> None:
    """Found by the fuzzers (tests/fuzz/test_cwmp_fuzz.py and fuzz/fuzz_cwmp.py, the same
    input): a CPE's xsi:type holding a newline was written back in SetParameterValues as a
    bare LF inside the attribute, which a parser reads as a space (XML 1.0 §3.3.3)."""
    body = cwmp.set_parameter_values([cwmp.ParamValue("Device.A", "v", xsi_type)], "k")
    value = etree.fromstring(cwmp.envelope(cwmp.DEFAULT_NS, "1", body)).find(".//Value")
    assert value is not None and value.get(f"{{{cwmp.XSI}}}type") == xsi_type
