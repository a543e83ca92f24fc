import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Cpe(_message.Message):
    __slots__ = ("id", "oui", "product_class", "serial", "manufacturer", "software_version", "root", "cwmp_ns", "ip", "connection_request_url", "last_inform", "last_events", "tags", "discovered_at", "refreshed_at", "registered_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    OUI_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_CLASS_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    CWMP_NS_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_REQUEST_URL_FIELD_NUMBER: _ClassVar[int]
    LAST_INFORM_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENTS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DISCOVERED_AT_FIELD_NUMBER: _ClassVar[int]
    REFRESHED_AT_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    oui: str
    product_class: str
    serial: str
    manufacturer: str
    software_version: str
    root: str
    cwmp_ns: str
    ip: str
    connection_request_url: str
    last_inform: _timestamp_pb2.Timestamp
    last_events: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    discovered_at: _timestamp_pb2.Timestamp
    refreshed_at: _timestamp_pb2.Timestamp
    registered_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., oui: _Optional[str] = ..., product_class: _Optional[str] = ..., serial: _Optional[str] = ..., manufacturer: _Optional[str] = ..., software_version: _Optional[str] = ..., root: _Optional[str] = ..., cwmp_ns: _Optional[str] = ..., ip: _Optional[str] = ..., connection_request_url: _Optional[str] = ..., last_inform: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_events: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., discovered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refreshed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetCpeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetCpeResponse(_message.Message):
    __slots__ = ("cpe",)
    CPE_FIELD_NUMBER: _ClassVar[int]
    cpe: Cpe
    def __init__(self, cpe: _Optional[_Union[Cpe, _Mapping]] = ...) -> None: ...

class ListCpesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "query", "tag", "product_class")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_CLASS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    query: str
    tag: str
    product_class: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., query: _Optional[str] = ..., tag: _Optional[str] = ..., product_class: _Optional[str] = ...) -> None: ...

class ListCpesResponse(_message.Message):
    __slots__ = ("cpes", "next_page_token")
    CPES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    cpes: _containers.RepeatedCompositeFieldContainer[Cpe]
    next_page_token: str
    def __init__(self, cpes: _Optional[_Iterable[_Union[Cpe, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class OnuBinding(_message.Message):
    __slots__ = ("subscriber", "s_tag", "c_tag", "tp_id", "uni")
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    S_TAG_FIELD_NUMBER: _ClassVar[int]
    C_TAG_FIELD_NUMBER: _ClassVar[int]
    TP_ID_FIELD_NUMBER: _ClassVar[int]
    UNI_FIELD_NUMBER: _ClassVar[int]
    subscriber: str
    s_tag: int
    c_tag: int
    tp_id: int
    uni: int
    def __init__(self, subscriber: _Optional[str] = ..., s_tag: _Optional[int] = ..., c_tag: _Optional[int] = ..., tp_id: _Optional[int] = ..., uni: _Optional[int] = ...) -> None: ...

class OnuPort(_message.Message):
    __slots__ = ("port_no", "label", "type", "admin_state", "oper_status", "updated_at")
    PORT_NO_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ADMIN_STATE_FIELD_NUMBER: _ClassVar[int]
    OPER_STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    port_no: int
    label: str
    type: str
    admin_state: str
    oper_status: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, port_no: _Optional[int] = ..., label: _Optional[str] = ..., type: _Optional[str] = ..., admin_state: _Optional[str] = ..., oper_status: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Onu(_message.Message):
    __slots__ = ("stack", "id", "type", "parent_id", "pon_port", "onu_id", "serial", "vendor", "model", "firmware", "admin_state", "oper_status", "connect_status", "reason", "updated_at", "subscriber")
    STACK_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    PON_PORT_FIELD_NUMBER: _ClassVar[int]
    ONU_ID_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    ADMIN_STATE_FIELD_NUMBER: _ClassVar[int]
    OPER_STATUS_FIELD_NUMBER: _ClassVar[int]
    CONNECT_STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    stack: str
    id: str
    type: str
    parent_id: str
    pon_port: int
    onu_id: int
    serial: str
    vendor: str
    model: str
    firmware: str
    admin_state: str
    oper_status: str
    connect_status: str
    reason: str
    updated_at: _timestamp_pb2.Timestamp
    subscriber: str
    def __init__(self, stack: _Optional[str] = ..., id: _Optional[str] = ..., type: _Optional[str] = ..., parent_id: _Optional[str] = ..., pon_port: _Optional[int] = ..., onu_id: _Optional[int] = ..., serial: _Optional[str] = ..., vendor: _Optional[str] = ..., model: _Optional[str] = ..., firmware: _Optional[str] = ..., admin_state: _Optional[str] = ..., oper_status: _Optional[str] = ..., connect_status: _Optional[str] = ..., reason: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., subscriber: _Optional[str] = ...) -> None: ...

class GetOnuRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class GetOnuResponse(_message.Message):
    __slots__ = ("onu", "ports", "binding", "optics")
    ONU_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    OPTICS_FIELD_NUMBER: _ClassVar[int]
    onu: Onu
    ports: _containers.RepeatedCompositeFieldContainer[OnuPort]
    binding: OnuBinding
    optics: _struct_pb2.Struct
    def __init__(self, onu: _Optional[_Union[Onu, _Mapping]] = ..., ports: _Optional[_Iterable[_Union[OnuPort, _Mapping]]] = ..., binding: _Optional[_Union[OnuBinding, _Mapping]] = ..., optics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListOnusRequest(_message.Message):
    __slots__ = ("stack", "olt")
    STACK_FIELD_NUMBER: _ClassVar[int]
    OLT_FIELD_NUMBER: _ClassVar[int]
    stack: str
    olt: str
    def __init__(self, stack: _Optional[str] = ..., olt: _Optional[str] = ...) -> None: ...

class ListOnusResponse(_message.Message):
    __slots__ = ("onus",)
    ONUS_FIELD_NUMBER: _ClassVar[int]
    onus: _containers.RepeatedCompositeFieldContainer[Onu]
    def __init__(self, onus: _Optional[_Iterable[_Union[Onu, _Mapping]]] = ...) -> None: ...

class CpeTask(_message.Message):
    __slots__ = ("id", "device_id", "kind", "args", "status", "attempts", "not_before", "expires_at", "created_at", "created_by", "finished_at", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: int
    device_id: str
    kind: str
    args: _struct_pb2.Struct
    status: str
    attempts: int
    not_before: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    finished_at: _timestamp_pb2.Timestamp
    result: _struct_pb2.Struct
    def __init__(self, id: _Optional[int] = ..., device_id: _Optional[str] = ..., kind: _Optional[str] = ..., args: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[str] = ..., attempts: _Optional[int] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class QueueCpeTaskRequest(_message.Message):
    __slots__ = ("device_id", "kind", "args", "expires_in", "no_connection_request")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    NO_CONNECTION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    kind: str
    args: _struct_pb2.Struct
    expires_in: float
    no_connection_request: bool
    def __init__(self, device_id: _Optional[str] = ..., kind: _Optional[str] = ..., args: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., expires_in: _Optional[float] = ..., no_connection_request: _Optional[bool] = ...) -> None: ...

class QueueCpeTaskResponse(_message.Message):
    __slots__ = ("task", "connection_request")
    TASK_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    task: CpeTask
    connection_request: str
    def __init__(self, task: _Optional[_Union[CpeTask, _Mapping]] = ..., connection_request: _Optional[str] = ...) -> None: ...

class CpeFilter(_message.Message):
    __slots__ = ("tags", "oui", "product_class", "software_version", "parameter_name", "parameter_value")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    OUI_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_CLASS_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_VALUE_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    oui: str
    product_class: str
    software_version: str
    parameter_name: str
    parameter_value: str
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., oui: _Optional[str] = ..., product_class: _Optional[str] = ..., software_version: _Optional[str] = ..., parameter_name: _Optional[str] = ..., parameter_value: _Optional[str] = ...) -> None: ...

class CpeBulk(_message.Message):
    __slots__ = ("id", "filter", "kind", "args", "rate", "devices", "status", "counts", "poked", "last_slot", "created_at", "created_by", "finished_at")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    POKED_FIELD_NUMBER: _ClassVar[int]
    LAST_SLOT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    filter: CpeFilter
    kind: str
    args: _struct_pb2.Struct
    rate: float
    devices: int
    status: str
    counts: _containers.ScalarMap[str, int]
    poked: int
    last_slot: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    finished_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., filter: _Optional[_Union[CpeFilter, _Mapping]] = ..., kind: _Optional[str] = ..., args: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., rate: _Optional[float] = ..., devices: _Optional[int] = ..., status: _Optional[str] = ..., counts: _Optional[_Mapping[str, int]] = ..., poked: _Optional[int] = ..., last_slot: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueueCpeBulkRequest(_message.Message):
    __slots__ = ("filter", "kind", "args", "rate", "expires_in")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    filter: CpeFilter
    kind: str
    args: _struct_pb2.Struct
    rate: float
    expires_in: float
    def __init__(self, filter: _Optional[_Union[CpeFilter, _Mapping]] = ..., kind: _Optional[str] = ..., args: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., rate: _Optional[float] = ..., expires_in: _Optional[float] = ...) -> None: ...

class QueueCpeBulkResponse(_message.Message):
    __slots__ = ("bulk",)
    BULK_FIELD_NUMBER: _ClassVar[int]
    bulk: CpeBulk
    def __init__(self, bulk: _Optional[_Union[CpeBulk, _Mapping]] = ...) -> None: ...

class GetCpeBulkRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class GetCpeBulkResponse(_message.Message):
    __slots__ = ("bulk",)
    BULK_FIELD_NUMBER: _ClassVar[int]
    bulk: CpeBulk
    def __init__(self, bulk: _Optional[_Union[CpeBulk, _Mapping]] = ...) -> None: ...
