import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_EVENT_KIND_UNSPECIFIED: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_START: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_INTERIM: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_STOP: _ClassVar[SessionEventKind]

class StopReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_REASON_UNSPECIFIED: _ClassVar[StopReason]
    STOP_REASON_STOP: _ClassVar[StopReason]
    STOP_REASON_NAS_RESTART: _ClassVar[StopReason]
    STOP_REASON_STALE: _ClassVar[StopReason]

class CoaOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COA_OUTCOME_UNSPECIFIED: _ClassVar[CoaOutcome]
    COA_OUTCOME_ACK: _ClassVar[CoaOutcome]
    COA_OUTCOME_NAK: _ClassVar[CoaOutcome]
    COA_OUTCOME_TIMEOUT: _ClassVar[CoaOutcome]
SESSION_EVENT_KIND_UNSPECIFIED: SessionEventKind
SESSION_EVENT_KIND_START: SessionEventKind
SESSION_EVENT_KIND_INTERIM: SessionEventKind
SESSION_EVENT_KIND_STOP: SessionEventKind
STOP_REASON_UNSPECIFIED: StopReason
STOP_REASON_STOP: StopReason
STOP_REASON_NAS_RESTART: StopReason
STOP_REASON_STALE: StopReason
COA_OUTCOME_UNSPECIFIED: CoaOutcome
COA_OUTCOME_ACK: CoaOutcome
COA_OUTCOME_NAK: CoaOutcome
COA_OUTCOME_TIMEOUT: CoaOutcome

class ListAuthEventsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "username", "nas", "since", "until", "result")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    username: str
    nas: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    result: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., username: _Optional[str] = ..., nas: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[str] = ...) -> None: ...

class AuthEvent(_message.Message):
    __slots__ = ("id", "at", "username", "nas", "nas_port", "calling_station", "method", "result", "reason", "plan", "given", "session")
    class GivenEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAS_FIELD_NUMBER: _ClassVar[int]
    NAS_PORT_FIELD_NUMBER: _ClassVar[int]
    CALLING_STATION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    GIVEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    id: int
    at: _timestamp_pb2.Timestamp
    username: str
    nas: str
    nas_port: str
    calling_station: str
    method: str
    result: str
    reason: str
    plan: str
    given: _containers.ScalarMap[str, str]
    session: str
    def __init__(self, id: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., username: _Optional[str] = ..., nas: _Optional[str] = ..., nas_port: _Optional[str] = ..., calling_station: _Optional[str] = ..., method: _Optional[str] = ..., result: _Optional[str] = ..., reason: _Optional[str] = ..., plan: _Optional[str] = ..., given: _Optional[_Mapping[str, str]] = ..., session: _Optional[str] = ...) -> None: ...

class ListAuthEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuthEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuthEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("unique_id", "username", "nas", "nas_port", "framed_ip", "acct_session_id", "started_at", "updated_at", "input_octets", "output_octets", "framed_ipv6_address", "framed_ipv6_prefix", "delegated_ipv6_prefix")
    UNIQUE_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAS_FIELD_NUMBER: _ClassVar[int]
    NAS_PORT_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IP_FIELD_NUMBER: _ClassVar[int]
    ACCT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    INPUT_OCTETS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_OCTETS_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IPV6_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IPV6_PREFIX_FIELD_NUMBER: _ClassVar[int]
    DELEGATED_IPV6_PREFIX_FIELD_NUMBER: _ClassVar[int]
    unique_id: str
    username: str
    nas: str
    nas_port: str
    framed_ip: str
    acct_session_id: str
    started_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    input_octets: int
    output_octets: int
    framed_ipv6_address: str
    framed_ipv6_prefix: str
    delegated_ipv6_prefix: str
    def __init__(self, unique_id: _Optional[str] = ..., username: _Optional[str] = ..., nas: _Optional[str] = ..., nas_port: _Optional[str] = ..., framed_ip: _Optional[str] = ..., acct_session_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., input_octets: _Optional[int] = ..., output_octets: _Optional[int] = ..., framed_ipv6_address: _Optional[str] = ..., framed_ipv6_prefix: _Optional[str] = ..., delegated_ipv6_prefix: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "username", "nas", "ip")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAS_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    username: str
    nas: str
    ip: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., username: _Optional[str] = ..., nas: _Optional[str] = ..., ip: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchSessionsRequest(_message.Message):
    __slots__ = ("cursor", "kinds", "max_batch")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    kinds: _containers.RepeatedScalarFieldContainer[SessionEventKind]
    max_batch: int
    def __init__(self, cursor: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[SessionEventKind, str]]] = ..., max_batch: _Optional[int] = ...) -> None: ...

class WatchSessionsResponse(_message.Message):
    __slots__ = ("cursor", "events", "gap")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    events: _containers.RepeatedCompositeFieldContainer[SessionEvent]
    gap: Gap
    def __init__(self, cursor: _Optional[str] = ..., events: _Optional[_Iterable[_Union[SessionEvent, _Mapping]]] = ..., gap: _Optional[_Union[Gap, _Mapping]] = ...) -> None: ...

class Gap(_message.Message):
    __slots__ = ("after", "oldest")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    OLDEST_FIELD_NUMBER: _ClassVar[int]
    after: str
    oldest: str
    def __init__(self, after: _Optional[str] = ..., oldest: _Optional[str] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("cursor", "kind", "session", "username", "nas", "nas_port", "framed_ip", "acct_session_id", "time", "session_time", "input_octets", "output_octets", "input_packets", "output_packets", "terminate_cause", "reason", "record_key")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAS_FIELD_NUMBER: _ClassVar[int]
    NAS_PORT_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IP_FIELD_NUMBER: _ClassVar[int]
    ACCT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_TIME_FIELD_NUMBER: _ClassVar[int]
    INPUT_OCTETS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_OCTETS_FIELD_NUMBER: _ClassVar[int]
    INPUT_PACKETS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PACKETS_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_CAUSE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECORD_KEY_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    kind: SessionEventKind
    session: str
    username: str
    nas: str
    nas_port: str
    framed_ip: str
    acct_session_id: str
    time: _timestamp_pb2.Timestamp
    session_time: int
    input_octets: int
    output_octets: int
    input_packets: int
    output_packets: int
    terminate_cause: int
    reason: StopReason
    record_key: str
    def __init__(self, cursor: _Optional[str] = ..., kind: _Optional[_Union[SessionEventKind, str]] = ..., session: _Optional[str] = ..., username: _Optional[str] = ..., nas: _Optional[str] = ..., nas_port: _Optional[str] = ..., framed_ip: _Optional[str] = ..., acct_session_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session_time: _Optional[int] = ..., input_octets: _Optional[int] = ..., output_octets: _Optional[int] = ..., input_packets: _Optional[int] = ..., output_packets: _Optional[int] = ..., terminate_cause: _Optional[int] = ..., reason: _Optional[_Union[StopReason, str]] = ..., record_key: _Optional[str] = ...) -> None: ...

class CoaResult(_message.Message):
    __slots__ = ("session", "nas", "outcome", "error_cause", "attempts", "audit_id")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NAS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_CAUSE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ID_FIELD_NUMBER: _ClassVar[int]
    session: str
    nas: str
    outcome: CoaOutcome
    error_cause: int
    attempts: int
    audit_id: int
    def __init__(self, session: _Optional[str] = ..., nas: _Optional[str] = ..., outcome: _Optional[_Union[CoaOutcome, str]] = ..., error_cause: _Optional[int] = ..., attempts: _Optional[int] = ..., audit_id: _Optional[int] = ...) -> None: ...

class DisconnectSessionRequest(_message.Message):
    __slots__ = ("session_id", "retries")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    retries: int
    def __init__(self, session_id: _Optional[str] = ..., retries: _Optional[int] = ...) -> None: ...

class DisconnectSessionResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: CoaResult
    def __init__(self, result: _Optional[_Union[CoaResult, _Mapping]] = ...) -> None: ...

class AttributeValue(_message.Message):
    __slots__ = ("text", "integer")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    text: str
    integer: int
    def __init__(self, text: _Optional[str] = ..., integer: _Optional[int] = ...) -> None: ...

class ChangeAuthorizationRequest(_message.Message):
    __slots__ = ("session_id", "plan", "attributes", "retries")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttributeValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttributeValue, _Mapping]] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    plan: str
    attributes: _containers.MessageMap[str, AttributeValue]
    retries: int
    def __init__(self, session_id: _Optional[str] = ..., plan: _Optional[str] = ..., attributes: _Optional[_Mapping[str, AttributeValue]] = ..., retries: _Optional[int] = ...) -> None: ...

class ChangeAuthorizationResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: CoaResult
    def __init__(self, result: _Optional[_Union[CoaResult, _Mapping]] = ...) -> None: ...
