"""CWMP (TR-069) SOAP envelopes: read what a CPE sends, write what the ACS answers. Pure.

Reading uses lxml with a hardened parser: no DTD, no entities, no network, a size cap set
by the caller. Anything else is an ``EnvelopeError`` (the service answers it with a SOAP
fault or a 400), never an exception from deep inside lxml. SOAP ``arrayType`` counts are
never trusted: arrays are read by their elements.

Writing builds the XML as text with every value escaped: the ACS sends many small
envelopes, and string building is several times faster than a tree. Replies always use the
``cwmp`` prefix bound to the CPE's own CWMP namespace (1.0 to 1.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CWMP_NS = tuple(f"urn:dslforum-org:cwmp-1-{minor}" for minor in range(5))
DEFAULT_NS = CWMP_NS[0]

# TR-069 Annex A.5.1: ACS fault codes.
METHOD_NOT_SUPPORTED = 8000
REQUEST_DENIED = 8001
INTERNAL_ERROR = 8002
INVALID_ARGUMENTS = 8003
RESOURCES_EXCEEDED = 8004
RETRY_REQUEST = 8005

# TR-069 Annex A.5.1: CPE fault codes and their meaning.
CPE_FAULTS = {
    9000: "Method not supported",
    9001: "Request denied",
    9002: "Internal error",
    9003: "Invalid arguments",
    9004: "Resources exceeded",
    9005: "Invalid parameter name",
    9006: "Invalid parameter type",
    9007: "Invalid parameter value",
    9008: "Attempt to set a non-writable parameter",
    9009: "Notification request rejected",
    9010: "File transfer failure",
    9011: "Upload failure",
    9012: "File transfer server authentication failure",
    9013: "Unsupported protocol for file transfer",
    9014: "File transfer failure: unable to join multicast group",
    9015: "File transfer failure: unable to contact file server",
    9016: "File transfer failure: unable to access file",
    9017: "File transfer failure: unable to complete download",
    9018: "File transfer failure: file corrupted or otherwise unusable",
    9019: "File transfer failure: file authentication failure",
    9020: "File transfer failure: unable to complete download within specified time windows",
    9021: "Cancelation of file transfer not permitted in current transfer state",
    9022: "Invalid UUID format",
    9023: "Unknown Execution Environment",
    9024: "Disabled Execution Environment",
    9025: "Deployment Unit to Execution Environment mismatch",
    9026: "Duplicate Deployment Unit",
    9027: "System resources exceeded",
    9028: "Unknown Deployment Unit",
    9029: "Invalid Deployment Unit state",
    9030: "Invalid deployment unit Update: downgrade not permitted",
    9031: "Invalid deployment unit Update: version not specified",
    9032: "Invalid deployment unit Update: version already exists",
}

# Methods a CPE may call on the ACS (TR-069 A.3.2 and A.4.2) and the ACS's own methods.
CPE_TO_ACS = (
    "Inform",
    "GetRPCMethods",
    "TransferComplete",
    "AutonomousTransferComplete",
    "RequestDownload",
)
ACS_METHODS = CPE_TO_ACS  # what GetRPCMethodsResponse lists

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)
MAX_PARAMS = 100_000  # elements read from one array, whatever arrayType says


class EnvelopeError(Exception):
    """Not a CWMP envelope we accept. ``fault`` is the ACS fault code to answer with."""

    def __init__(self, message: str, fault: int = INVALID_ARGUMENTS) -> None:
        super().__init__(message)
        self.fault = fault


@dataclass(frozen=True, slots=True)
class DeviceId:
    manufacturer: str
    oui: str
    product_class: str
    serial: str

    @property
    def key(self) -> str:
        """``OUI-ProductClass-SerialNumber``, as GenieACS names devices."""
        return f"{self.oui}-{self.product_class}-{self.serial}"


@dataclass(frozen=True, slots=True)
class ParamValue:
    name: str
    value: str
    type: str = "xsd:string"


@dataclass(slots=True)
class Envelope:
    """One received envelope. ``method`` is the local name of the Body's first element
    ("" for an empty POST); ``args`` the method's arguments, read per method."""

    ns: str
    cwmp_id: str | None
    hold_requests: bool
    method: str
    args: dict[str, Any] = field(default_factory=dict)


# --- reading -------------------------------------------------------------------------------


def _local(tag: object) -> str:
    """The local name of an element's tag (``{ns}local`` or ``local``); "" for a comment
    or processing instruction."""
    return tag[tag.rfind("}") + 1 :] if isinstance(tag, str) else ""


def _children(elem: Any) -> list[Any]:
    return [c for c in elem if isinstance(c.tag, str)]


def _child(elem: Any, name: str) -> Any:
    """The first child element named ``name`` in any namespace (or none), or None. (A
    loop: lxml's ``find("{*}name")`` compiles its path in Python each call, slower.)"""
    for c in elem:
        tag = c.tag
        if isinstance(tag, str) and tag[tag.rfind("}") + 1 :] == name:
            return c
    return None


def _all_text(elem: Any) -> str:
    """An element's text, that of its descendants included (mixed content)."""
    return (elem.text or "") if len(elem) == 0 else "".join(elem.itertext())


def _text(elem: Any, name: str, default: str = "") -> str:
    c = _child(elem, name)
    if c is None:
        return default
    return _all_text(c).strip()


INT_RANGE = (-(2**31), 2**31 - 1)  # xsd:int; the store's integer columns hold no more


def _int(elem: Any, name: str, default: int = 0) -> int:
    """An integer element (xsd:int or xsd:unsignedInt in TR-069). Raises EnvelopeError
    for text that is not a number, or a number outside 32 bits: a CPE's FaultCode or
    Status is written to integer columns, and one too large failed the whole session."""
    text = _text(elem, name)
    try:
        value = int(text) if text else default
    except ValueError:
        raise EnvelopeError(f"{name} is not an integer: {text[:40]!r}") from None
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise EnvelopeError(f"{name} is out of range: {text[:40]!r}")
    return value


def _array(elem: Any, name: str) -> list[Any]:
    """The items of a SOAP array (its child elements), never trusting arrayType."""
    arr = _child(elem, name)
    if arr is None:
        return []
    items = _children(arr)
    if len(items) > MAX_PARAMS:
        raise EnvelopeError(f"{name} holds more than {MAX_PARAMS} items", RESOURCES_EXCEEDED)
    return items


def _xsi_type(elem: Any) -> str:
    raw = elem.get(f"{{{XSI}}}type") or "xsd:string"
    prefix, sep, local = raw.rpartition(":")
    if sep and prefix and elem.nsmap.get(prefix) == XSD:
        return f"xsd:{local}"
    return raw if ":" in raw else f"xsd:{raw}"


def _param_values(elem: Any, name: str = "ParameterList") -> list[ParamValue]:
    out = []
    for item in _array(elem, name):
        value = _child(item, "Value")
        out.append(
            ParamValue(
                _text(item, "Name"),
                _all_text(value) if value is not None else "",
                _xsi_type(value) if value is not None else "xsd:string",
            )
        )
    return out


def _fault(elem: Any) -> dict[str, Any]:
    """A SOAP Fault with its cwmp:Fault detail (code, text, SetParameterValuesFault)."""
    detail = _child(elem, "detail")
    cwmp_fault = _child(detail, "Fault") if detail is not None else None
    if cwmp_fault is None:
        return {"code": INTERNAL_ERROR, "string": _text(elem, "faultstring"), "params": []}
    code = _int(cwmp_fault, "FaultCode", INTERNAL_ERROR)
    params = [
        {
            "name": _text(f, "ParameterName"),
            "code": _int(f, "FaultCode", INTERNAL_ERROR),
            "string": _text(f, "FaultString"),
        }
        for f in _children(cwmp_fault)
        if _local(f.tag) == "SetParameterValuesFault"
    ]
    text = _text(cwmp_fault, "FaultString") or CPE_FAULTS.get(code, "")
    return {"code": code, "string": text, "params": params}


def _read_args(method: str, rpc: Any) -> dict[str, Any]:
    if method == "Inform":
        dev = _child(rpc, "DeviceId")
        if dev is None:
            raise EnvelopeError("Inform without DeviceId")
        device = DeviceId(
            _text(dev, "Manufacturer"),
            _text(dev, "OUI"),
            _text(dev, "ProductClass"),
            _text(dev, "SerialNumber"),
        )
        if not device.oui or not device.serial:
            raise EnvelopeError("Inform DeviceId lacks OUI or SerialNumber")
        events = [(_text(e, "EventCode"), _text(e, "CommandKey")) for e in _array(rpc, "Event")]
        return {
            "device": device,
            "events": events,
            "max_envelopes": _int(rpc, "MaxEnvelopes", 1),
            "current_time": _text(rpc, "CurrentTime"),
            "retry_count": _int(rpc, "RetryCount", 0),
            "params": _param_values(rpc),
        }
    if method == "GetParameterValuesResponse":
        return {"params": _param_values(rpc)}
    if method == "GetParameterNamesResponse":
        return {
            "params": [
                (_text(i, "Name"), _text(i, "Writable") in ("1", "true"))
                for i in _array(rpc, "ParameterList")
            ]
        }
    if method == "GetParameterAttributesResponse":
        return {
            "params": [
                {
                    "name": _text(i, "Name"),
                    "notification": _int(i, "Notification", 0),
                    "access_list": ["".join(a.itertext()).strip() for a in _array(i, "AccessList")],
                }
                for i in _array(rpc, "ParameterList")
            ]
        }
    if method in ("TransferComplete", "AutonomousTransferComplete"):
        fault = _child(rpc, "FaultStruct")
        args: dict[str, Any] = {
            "command_key": _text(rpc, "CommandKey"),
            "fault_code": _int(fault, "FaultCode", 0) if fault is not None else 0,
            "fault_string": _text(fault, "FaultString") if fault is not None else "",
            "start_time": _text(rpc, "StartTime"),
            "complete_time": _text(rpc, "CompleteTime"),
        }
        if method == "AutonomousTransferComplete":
            args.update(
                announce_url=_text(rpc, "AnnounceURL"),
                transfer_url=_text(rpc, "TransferURL"),
                is_download=_text(rpc, "IsDownload") in ("1", "true"),
                file_type=_text(rpc, "FileType"),
                file_size=_int(rpc, "FileSize", 0),
                target_file_name=_text(rpc, "TargetFileName"),
            )
        return args
    if method == "RequestDownload":
        return {
            "file_type": _text(rpc, "FileType"),
            "args": {_text(a, "Name"): _text(a, "Value") for a in _array(rpc, "FileTypeArg")},
        }
    if method in ("SetParameterValuesResponse", "AddObjectResponse", "DeleteObjectResponse"):
        args = {"status": _int(rpc, "Status", 0)}
        if method == "AddObjectResponse":
            args["instance"] = _int(rpc, "InstanceNumber", 0)
        return args
    if method in ("DownloadResponse", "UploadResponse"):
        return {
            "status": _int(rpc, "Status", 0),
            "start_time": _text(rpc, "StartTime"),
            "complete_time": _text(rpc, "CompleteTime"),
        }
    if method == "GetRPCMethodsResponse":
        return {"methods": ["".join(m.itertext()).strip() for m in _array(rpc, "MethodList")]}
    if method == "Fault":
        return _fault(rpc)
    return {}


def parse(body: bytes) -> Envelope:
    """Read one envelope. An empty body is the empty POST (``method == ""``).
    Raises EnvelopeError for anything that is not a well-formed, DTD-free SOAP envelope."""
    if not body.strip():
        return Envelope(DEFAULT_NS, None, False, "")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise EnvelopeError("a DTD or entity declaration is not accepted", REQUEST_DENIED)
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise EnvelopeError(f"malformed XML: {str(exc)[:120]}") from None
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise EnvelopeError("not a SOAP 1.1 Envelope")
    header = _child(root, "Header")
    soap_body = _child(root, "Body")
    if soap_body is None:
        raise EnvelopeError("SOAP Envelope without Body")
    ns: str | None = None
    cwmp_id: str | None = None
    hold = False
    if header is not None:
        for h in _children(header):
            local = _local(h.tag)
            h_ns = etree.QName(h.tag).namespace
            if h_ns in CWMP_NS:
                ns = h_ns
            if local == "ID":
                cwmp_id = "".join(h.itertext()).strip()[:256]
            elif local == "HoldRequests":
                hold = "".join(h.itertext()).strip() in ("1", "true")
    items = _children(soap_body)
    if not items:
        return Envelope(ns or DEFAULT_NS, cwmp_id, hold, "")
    rpc = items[0]
    rpc_ns = etree.QName(rpc.tag).namespace
    method = _local(rpc.tag)
    if rpc_ns in CWMP_NS:
        ns = rpc_ns
    elif method == "Fault" and rpc_ns == SOAP_ENV:
        pass
    elif rpc.prefix != "cwmp":  # some stacks bind cwmp: to an odd URI; the prefix decides
        raise EnvelopeError(f"{method} is not in a CWMP namespace ({rpc_ns})")
    return Envelope(ns or DEFAULT_NS, cwmp_id, hold, method, _read_args(method, rpc))


# --- writing -------------------------------------------------------------------------------


_ENTITIES = {'"': "&quot;", "\r": "&#13;"}  # a bare CR would be read back as LF
# In an attribute a parser reads a bare LF or tab back as a space (XML 1.0 §3.3.3).
_ATTR_ENTITIES = {**_ENTITIES, "\n": "&#10;", "\t": "&#9;"}


def _e(value: object) -> str:
    return escape(str(value), _ENTITIES)


def _attr(value: object) -> str:
    """An attribute's value, read back as written whatever whitespace it holds."""
    return escape(str(value), _ATTR_ENTITIES)


def envelope(ns: str, cwmp_id: str | None, body: str) -> bytes:
    """A complete envelope around ``body`` (already XML), the ``cwmp`` prefix bound to ``ns``."""
    header = (
        f'<soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">{_e(cwmp_id)}</cwmp:ID>'
        "</soap-env:Header>"
        if cwmp_id is not None
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soap-env:Envelope xmlns:soap-env="{SOAP_ENV}" xmlns:soap-enc="{SOAP_ENC}" '
        f'xmlns:xsd="{XSD}" xmlns:xsi="{XSI}" xmlns:cwmp="{ns}">'
        f"{header}<soap-env:Body>{body}</soap-env:Body></soap-env:Envelope>"
    ).encode()


def _strings(tag: str, names: list[str]) -> str:
    items = "".join(f"<string>{_e(n)}</string>" for n in names)
    return f'<{tag} soap-enc:arrayType="xsd:string[{len(names)}]">{items}</{tag}>'


def inform_response(max_envelopes: int = 1) -> str:
    return (
        f"<cwmp:InformResponse><MaxEnvelopes>{max_envelopes}</MaxEnvelopes></cwmp:InformResponse>"
    )


def get_rpc_methods_response() -> str:
    methods = _strings("MethodList", list(ACS_METHODS))
    return f"<cwmp:GetRPCMethodsResponse>{methods}</cwmp:GetRPCMethodsResponse>"


def transfer_complete_response(autonomous: bool = False) -> str:
    name = "AutonomousTransferCompleteResponse" if autonomous else "TransferCompleteResponse"
    return f"<cwmp:{name}/>"


def request_download_response() -> str:
    return "<cwmp:RequestDownloadResponse/>"


def fault(code: int, message: str) -> str:
    """A SOAP Fault carrying a cwmp:Fault (TR-069 A.5.1)."""
    return (
        "<soap-env:Fault><faultcode>Client</faultcode><faultstring>CWMP fault</faultstring>"
        f"<detail><cwmp:Fault><FaultCode>{code}</FaultCode>"
        f"<FaultString>{_e(message)}</FaultString></cwmp:Fault></detail></soap-env:Fault>"
    )


def get_parameter_names(path: str, next_level: bool) -> str:
    return (
        f"<cwmp:GetParameterNames><ParameterPath>{_e(path)}</ParameterPath>"
        f"<NextLevel>{'true' if next_level else 'false'}</NextLevel></cwmp:GetParameterNames>"
    )


def get_parameter_values(names: list[str]) -> str:
    return f"<cwmp:GetParameterValues>{_strings('ParameterNames', names)}</cwmp:GetParameterValues>"


def get_parameter_attributes(names: list[str]) -> str:
    return (
        f"<cwmp:GetParameterAttributes>{_strings('ParameterNames', names)}"
        "</cwmp:GetParameterAttributes>"
    )


def set_parameter_values(params: list[ParamValue], key: str) -> str:
    items = "".join(
        f"<ParameterValueStruct><Name>{_e(p.name)}</Name>"
        f'<Value xsi:type="{_attr(p.type)}">{_e(p.value)}</Value></ParameterValueStruct>'
        for p in params
    )
    return (
        "<cwmp:SetParameterValues>"
        f'<ParameterList soap-enc:arrayType="cwmp:ParameterValueStruct[{len(params)}]">'
        f"{items}</ParameterList><ParameterKey>{_e(key)}</ParameterKey>"
        "</cwmp:SetParameterValues>"
    )


def set_parameter_attributes(attrs: list[dict[str, Any]]) -> str:
    items = "".join(
        f"<SetParameterAttributesStruct><Name>{_e(a['name'])}</Name>"
        f"<NotificationChange>{'true' if 'notification' in a else 'false'}</NotificationChange>"
        f"<Notification>{int(a.get('notification', 0))}</Notification>"
        f"<AccessListChange>{'true' if 'access_list' in a else 'false'}</AccessListChange>"
        f"{_strings('AccessList', list(a.get('access_list', [])))}"
        "</SetParameterAttributesStruct>"
        for a in attrs
    )
    return (
        "<cwmp:SetParameterAttributes>"
        f'<ParameterList soap-enc:arrayType="cwmp:SetParameterAttributesStruct[{len(attrs)}]">'
        f"{items}</ParameterList></cwmp:SetParameterAttributes>"
    )


def add_object(name: str, key: str) -> str:
    return (
        f"<cwmp:AddObject><ObjectName>{_e(name)}</ObjectName>"
        f"<ParameterKey>{_e(key)}</ParameterKey></cwmp:AddObject>"
    )


def delete_object(name: str, key: str) -> str:
    return (
        f"<cwmp:DeleteObject><ObjectName>{_e(name)}</ObjectName>"
        f"<ParameterKey>{_e(key)}</ParameterKey></cwmp:DeleteObject>"
    )


def reboot(command_key: str) -> str:
    return f"<cwmp:Reboot><CommandKey>{_e(command_key)}</CommandKey></cwmp:Reboot>"


def factory_reset() -> str:
    return "<cwmp:FactoryReset/>"


def schedule_inform(delay: int, command_key: str) -> str:
    return (
        f"<cwmp:ScheduleInform><DelaySeconds>{int(delay)}</DelaySeconds>"
        f"<CommandKey>{_e(command_key)}</CommandKey></cwmp:ScheduleInform>"
    )


def download(
    command_key: str,
    file_type: str,
    url: str,
    username: str = "",
    password: str = "",
    file_size: int = 0,
    target_file_name: str = "",
    delay: int = 0,
) -> str:
    return (
        f"<cwmp:Download><CommandKey>{_e(command_key)}</CommandKey>"
        f"<FileType>{_e(file_type)}</FileType><URL>{_e(url)}</URL>"
        f"<Username>{_e(username)}</Username><Password>{_e(password)}</Password>"
        f"<FileSize>{int(file_size)}</FileSize>"
        f"<TargetFileName>{_e(target_file_name)}</TargetFileName>"
        f"<DelaySeconds>{int(delay)}</DelaySeconds><SuccessURL></SuccessURL>"
        "<FailureURL></FailureURL></cwmp:Download>"
    )


def upload(
    command_key: str, file_type: str, url: str, username: str = "", password: str = ""
) -> str:
    return (
        f"<cwmp:Upload><CommandKey>{_e(command_key)}</CommandKey>"
        f"<FileType>{_e(file_type)}</FileType><URL>{_e(url)}</URL>"
        f"<Username>{_e(username)}</Username><Password>{_e(password)}</Password>"
        "<DelaySeconds>0</DelaySeconds></cwmp:Upload>"
    )
