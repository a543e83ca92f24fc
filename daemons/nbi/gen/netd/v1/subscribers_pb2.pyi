from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubscriberState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBSCRIBER_STATE_UNSPECIFIED: _ClassVar[SubscriberState]
    SUBSCRIBER_STATE_ACTIVE: _ClassVar[SubscriberState]
    SUBSCRIBER_STATE_SUSPENDED: _ClassVar[SubscriberState]
    SUBSCRIBER_STATE_DISABLED: _ClassVar[SubscriberState]

class PasswordHash(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PASSWORD_HASH_UNSPECIFIED: _ClassVar[PasswordHash]
    PASSWORD_HASH_ARGON2: _ClassVar[PasswordHash]
    PASSWORD_HASH_BCRYPT: _ClassVar[PasswordHash]
    PASSWORD_HASH_SHA512_CRYPT: _ClassVar[PasswordHash]
    PASSWORD_HASH_SHA256_CRYPT: _ClassVar[PasswordHash]
    PASSWORD_HASH_MD5_CRYPT: _ClassVar[PasswordHash]
SUBSCRIBER_STATE_UNSPECIFIED: SubscriberState
SUBSCRIBER_STATE_ACTIVE: SubscriberState
SUBSCRIBER_STATE_SUSPENDED: SubscriberState
SUBSCRIBER_STATE_DISABLED: SubscriberState
PASSWORD_HASH_UNSPECIFIED: PasswordHash
PASSWORD_HASH_ARGON2: PasswordHash
PASSWORD_HASH_BCRYPT: PasswordHash
PASSWORD_HASH_SHA512_CRYPT: PasswordHash
PASSWORD_HASH_SHA256_CRYPT: PasswordHash
PASSWORD_HASH_MD5_CRYPT: PasswordHash

class Subscriber(_message.Message):
    __slots__ = ("username", "plan", "state", "mac", "framed_ip", "credentials", "framed_ipv6_address", "framed_ipv6_prefix", "delegated_ipv6_prefix", "framed_ipv6_pool", "delegated_ipv6_pool")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IP_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IPV6_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IPV6_PREFIX_FIELD_NUMBER: _ClassVar[int]
    DELEGATED_IPV6_PREFIX_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IPV6_POOL_FIELD_NUMBER: _ClassVar[int]
    DELEGATED_IPV6_POOL_FIELD_NUMBER: _ClassVar[int]
    username: str
    plan: str
    state: SubscriberState
    mac: str
    framed_ip: str
    credentials: _containers.RepeatedScalarFieldContainer[str]
    framed_ipv6_address: str
    framed_ipv6_prefix: str
    delegated_ipv6_prefix: str
    framed_ipv6_pool: str
    delegated_ipv6_pool: str
    def __init__(self, username: _Optional[str] = ..., plan: _Optional[str] = ..., state: _Optional[_Union[SubscriberState, str]] = ..., mac: _Optional[str] = ..., framed_ip: _Optional[str] = ..., credentials: _Optional[_Iterable[str]] = ..., framed_ipv6_address: _Optional[str] = ..., framed_ipv6_prefix: _Optional[str] = ..., delegated_ipv6_prefix: _Optional[str] = ..., framed_ipv6_pool: _Optional[str] = ..., delegated_ipv6_pool: _Optional[str] = ...) -> None: ...

class SubscriberUpsert(_message.Message):
    __slots__ = ("username", "password", "hash", "plan", "state", "mac", "framed_ip", "framed_ipv6_address", "framed_ipv6_prefix", "delegated_ipv6_prefix", "framed_ipv6_pool", "delegated_ipv6_pool")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IP_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IPV6_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IPV6_PREFIX_FIELD_NUMBER: _ClassVar[int]
    DELEGATED_IPV6_PREFIX_FIELD_NUMBER: _ClassVar[int]
    FRAMED_IPV6_POOL_FIELD_NUMBER: _ClassVar[int]
    DELEGATED_IPV6_POOL_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    hash: PasswordHash
    plan: str
    state: SubscriberState
    mac: str
    framed_ip: str
    framed_ipv6_address: str
    framed_ipv6_prefix: str
    delegated_ipv6_prefix: str
    framed_ipv6_pool: str
    delegated_ipv6_pool: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ..., hash: _Optional[_Union[PasswordHash, str]] = ..., plan: _Optional[str] = ..., state: _Optional[_Union[SubscriberState, str]] = ..., mac: _Optional[str] = ..., framed_ip: _Optional[str] = ..., framed_ipv6_address: _Optional[str] = ..., framed_ipv6_prefix: _Optional[str] = ..., delegated_ipv6_prefix: _Optional[str] = ..., framed_ipv6_pool: _Optional[str] = ..., delegated_ipv6_pool: _Optional[str] = ...) -> None: ...

class GetSubscriberRequest(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class GetSubscriberResponse(_message.Message):
    __slots__ = ("subscriber",)
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    subscriber: Subscriber
    def __init__(self, subscriber: _Optional[_Union[Subscriber, _Mapping]] = ...) -> None: ...

class ListSubscribersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "plan", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    plan: str
    state: SubscriberState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., plan: _Optional[str] = ..., state: _Optional[_Union[SubscriberState, str]] = ...) -> None: ...

class ListSubscribersResponse(_message.Message):
    __slots__ = ("subscribers", "next_page_token")
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subscribers: _containers.RepeatedCompositeFieldContainer[Subscriber]
    next_page_token: str
    def __init__(self, subscribers: _Optional[_Iterable[_Union[Subscriber, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpsertSubscriberRequest(_message.Message):
    __slots__ = ("subscriber",)
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    subscriber: SubscriberUpsert
    def __init__(self, subscriber: _Optional[_Union[SubscriberUpsert, _Mapping]] = ...) -> None: ...

class UpsertSubscriberResponse(_message.Message):
    __slots__ = ("subscriber", "created")
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    subscriber: Subscriber
    created: bool
    def __init__(self, subscriber: _Optional[_Union[Subscriber, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class BatchUpsertSubscribersRequest(_message.Message):
    __slots__ = ("subscribers",)
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    subscribers: _containers.RepeatedCompositeFieldContainer[SubscriberUpsert]
    def __init__(self, subscribers: _Optional[_Iterable[_Union[SubscriberUpsert, _Mapping]]] = ...) -> None: ...

class BatchUpsertSubscribersResponse(_message.Message):
    __slots__ = ("upserted", "created")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    created: int
    def __init__(self, upserted: _Optional[int] = ..., created: _Optional[int] = ...) -> None: ...

class DeleteSubscriberRequest(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class DeleteSubscriberResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
