"""The configuration's section models: one pydantic model a ``[table]`` of netd.toml, and
:class:`Config`, the whole file.

Each model holds its keys, their defaults and bounds, and the checks that span several keys
of one section (a TLS pair, ``acs.auth`` on a non-loopback host, lease rounds). Finding,
reading and overriding the file (``NETD_*``, ``*_file`` secrets) is :mod:`daemons.core.config`,
which re-exports every name here.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.config import JsonDict

from daemons import resources
from daemons.core import validate

SYSTEM_STATE_DIR = Path("/var/lib/netd")

# Marks a field whose value may instead be read from a file named by ``<key>_file``.
_SECRET: JsonDict = {"secret": True}

Port = Annotated[int, Field(ge=1, le=65535)]
StatusPort = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


def _check_scheme(value: SecretStr, schemes: tuple[str, ...]) -> SecretStr:
    url = value.get_secret_value()
    if url and not url.startswith(schemes):
        raise ValueError(f"a URL starting with {' or '.join(schemes)}, or empty for embedded")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "text"] = "auto"


class DatabaseConfig(_Section):
    url: SecretStr = Field(default=SecretStr(""), json_schema_extra=_SECRET)
    password: SecretStr | None = Field(default=None, json_schema_extra=_SECRET)
    pool_min_size: int = Field(default=1, ge=0, le=200)
    pool_max_size: int = Field(default=10, ge=1, le=1000)
    connect_timeout: Seconds = 5.0
    command_timeout: Seconds = 30.0
    migrate_on_start: bool = True

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        return _check_scheme(value, ("postgresql://", "postgres://"))

    @property
    def embedded(self) -> bool:
        return not self.url.get_secret_value()


class RedisConfig(_Section):
    url: SecretStr = Field(default=SecretStr(""), json_schema_extra=_SECRET)
    password: SecretStr | None = Field(default=None, json_schema_extra=_SECRET)
    connect_timeout: Seconds = 2.0
    socket_timeout: Seconds = 5.0
    key_prefix: str = Field(default="netd", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    event_stream_max_len: int = Field(default=200_000, ge=1_000, le=100_000_000)
    cluster: bool = False  # url names one node of a Redis Cluster; the client finds the rest

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: SecretStr) -> SecretStr:
        return _check_scheme(value, ("redis://", "rediss://", "unix://"))

    @property
    def embedded(self) -> bool:
        return not self.url.get_secret_value()


class EmbeddedConfig(_Section):
    run_as: str = Field(default="netd", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    start_timeout: Seconds = 60.0


class LifecycleConfig(_Section):
    drain_timeout: Seconds = 10.0
    heartbeat_interval: Seconds = 5.0


class PoliciesConfig(_Section):
    # The operator's policy directory; unset: the policies packaged with netd.
    dir: Path | None = None

    @property
    def root(self) -> Path:
        """The directory policies are read from."""
        return self.dir if self.dir is not None else resources.path(resources.POLICIES)


class ApiConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    rate_limit: float = Field(default=50.0, gt=0, le=1_000_000)
    rate_burst: int = Field(default=200, ge=1, le=10_000_000)
    token_cache_ttl: Seconds = 5.0
    sse_keepalive: Seconds = 15.0
    coa_timeout: Seconds = 1.0
    coa_retries: int = Field(default=3, ge=1, le=10)
    grpc_port: StatusPort = 9190  # the northbound gRPC API on api.host; 0 turns it off
    # Mutual TLS (HTTP and gRPC): client certificates signed by these CAs (PEM) are asked
    # for and verified; one whose subject CN is in client_cert_roles is admitted with that
    # role, without a token. tls_client_required refuses a handshake without one.
    tls_client_ca: Path | None = None
    tls_client_required: bool = False
    client_cert_roles: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@ -]{1,64}$")],
        Literal["viewer", "operator", "admin"],
    ] = Field(default_factory=dict)
    # The audit log: rows older than this many days are deleted (hourly); 0 keeps them all.
    audit_retention_days: int = Field(default=0, ge=0, le=36500)
    # Every audit row (API, gRPC, CLI) also as one JSON line, in id order, to a file a SIEM
    # follows ("file": audit_export_path, appended, reopened when rotated) or to syslog
    # ("syslog": RFC 5424 over audit_syslog_address, "/dev/log" or host:port UDP).
    audit_export: Literal["", "file", "syslog"] = ""
    audit_export_path: Path | None = None
    audit_syslog_address: str = "/dev/log"

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        if self.tls_client_required and self.tls_client_ca is None:
            raise ValueError("tls_client_required needs tls_client_ca")
        if self.client_cert_roles and self.tls_client_ca is None:
            raise ValueError("client_cert_roles needs tls_client_ca")
        if self.audit_export == "file" and self.audit_export_path is None:
            raise ValueError('audit_export = "file" needs audit_export_path')
        if self.audit_export == "syslog" and not (
            self.audit_syslog_address.startswith("/") or _host_port(self.audit_syslog_address)
        ):
            raise ValueError('audit_syslog_address is a socket path ("/dev/log") or host:port')
        return self


def _host_port(value: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` split, or None."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


class _DaemonConfig(_Section):
    status_host: str = "127.0.0.1"


class SecretsConfig(_Section):
    key: SecretStr | None = Field(default=None, json_schema_extra=_SECRET)


class RadsecConfig(_Section):
    """``[radius.radsec]``: RADIUS over TCP (RFC 6613) and over TLS (RFC 6614). Off unless a
    port is given; the instance listens (not its workers), on ``listen`` or else
    ``radius.listen``. Both ports take authentication and accounting (by packet code)."""

    tls_port: StatusPort = 0  # RadSec; RFC 6614's port is 2083. 0: off
    tcp_port: StatusPort = 0  # RADIUS/TCP with the NAS's own secret; 0: off
    listen: list[str] = Field(default_factory=list)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # client certificates must chain to it (mutual TLS)
    tls_crl: Path | None = None  # PEM CRLs of that CA, checked on every client certificate
    handshake_timeout: Seconds = 10.0
    idle_timeout: Seconds = 300.0  # a connection with no request for this long is closed
    max_connections: int = Field(default=1024, ge=1, le=100_000)
    max_connections_per_nas: int = Field(default=16, ge=1, le=10_000)
    write_buffer: int = Field(default=1024 * 1024, ge=16 * 1024, le=256 * 1024 * 1024)

    @field_validator("listen")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for host in value:
            validate.ip_address(host)
        return value

    @model_validator(mode="after")
    def _tls_files(self) -> RadsecConfig:
        if self.tls_port and (
            self.tls_cert is None or self.tls_key is None or self.tls_client_ca is None
        ):
            raise ValueError("tls_port needs tls_cert, tls_key and tls_client_ca (mutual TLS)")
        if self.tls_port and self.tls_port == self.tcp_port:
            raise ValueError("tls_port and tcp_port must differ")
        return self


class RadiusConfig(_DaemonConfig):
    status_port: StatusPort = 9181
    listen: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"], min_length=1)
    auth_port: Port = 1812
    acct_port: Port = 1813
    acct_batch_max: int = Field(default=1024, ge=1, le=10_000)
    # 0: a batch commits as soon as a commit slot is free (issue 30: batches grow with the
    # load); above 0: the old fixed window after a batch's first record.
    acct_batch_window: float = Field(default=0.0, ge=0, le=1.0)
    acct_commits: int = Field(default=2, ge=1, le=32)  # ledger commits in flight per process
    acct_commit_timeout: Seconds = 5.0  # a batch's ledger commit; past it the batch is spooled
    auth_log: bool = True  # the authentication history (every Accept and Reject, batched)
    auth_log_retention: int = Field(default=90, ge=1, le=3650)  # days
    # Seconds between the history's writes (one binary COPY each): smaller batches spread
    # PostgreSQL's work instead of a burst that competes with the request path.
    auth_log_interval: float = Field(default=0.2, ge=0.05, le=10.0)
    cache_timeout: Seconds = 1.0  # a Redis call on the request path; past it: as if Redis were down
    workers: int = Field(default=1, ge=1, le=64)
    # issue 30: a loop iteration's UDP replies in one sendmmsg (the optional C extension);
    # false, or an install without it: one sendto each.
    send_batch: bool = True
    dictionaries: list[Path] = Field(default_factory=list)
    duplicate_window: Seconds = 5.0
    max_inflight: int = Field(default=4096, ge=16, le=1_000_000)
    nas_rate_limit: float = Field(default=20_000.0, ge=0, le=10_000_000)  # req/s a NAS+port; 0 off
    nas_rate_burst: int = Field(default=40_000, ge=1, le=100_000_000)
    nas_refresh_interval: Seconds = 60.0
    negative_cache_ttl: Seconds = 30.0
    eap_state_ttl: Seconds = 30.0  # a round trip of an EAP exchange, at most
    # issue 29: EAP-TLS, PEAP, EAP-TTLS. Methods offered in this order (the first is
    # proposed, a NAK picks another); the TLS ones only with eap_cert and eap_key.
    eap_methods: list[str] = Field(default_factory=lambda: ["md5", "peap", "ttls", "tls"])
    eap_cert: Path | None = None  # the server certificate (PEM, chain after it)
    eap_key: Path | None = None
    eap_ca: Path | None = None  # EAP-TLS: the CA bundle client certificates must chain to
    eap_crl: list[Path] = Field(default_factory=list)  # EAP-TLS: CRLs (PEM), checked when given
    eap_fragment_size: int = Field(default=1020, ge=64, le=4000)  # TLS octets per EAP-Request
    eap_tls_min_version: Literal["1.2", "1.3"] = "1.2"
    eap_tls_max_version: Literal["1.2", "1.3"] = "1.3"
    # PEAP and TTLS (RFC 9427 for 1.3), within eap_tls_min/max_version
    eap_tunnel_max_version: Literal["1.2", "1.3"] = "1.2"
    eap_resumption_lifetime: float = Field(default=3600.0, ge=0, le=86400)  # 0: no resumption
    eap_max_exchanges: int = Field(default=4096, ge=16, le=1_000_000)  # ~51 KiB each at most
    eap_exchange_timeout: Seconds = 60.0  # a whole TLS-based exchange, at most
    live_sessions_check_interval: Seconds = 5.0
    interim_interval: Seconds = 300.0
    reaper_interval: Seconds = 60.0
    radsec: RadsecConfig = Field(default_factory=RadsecConfig)

    @field_validator("eap_methods")
    @classmethod
    def _eap_methods(cls, value: list[str]) -> list[str]:
        return validate.eap_methods(value)

    @model_validator(mode="after")
    def _eap_pairs(self) -> RadiusConfig:
        if (self.eap_cert is None) != (self.eap_key is None):
            raise ValueError("give both eap_cert and eap_key, or neither")
        if self.eap_tls_min_version > self.eap_tls_max_version:
            raise ValueError("eap_tls_min_version is above eap_tls_max_version")
        if self.eap_tls_min_version > self.eap_tunnel_max_version and (
            {"peap", "ttls"} & set(self.eap_methods)
        ):
            raise ValueError(
                "eap_tls_min_version is above eap_tunnel_max_version (PEAP, TTLS): "
                "raise eap_tunnel_max_version or leave peap and ttls out of eap_methods"
            )
        return self


class AcsConfig(_DaemonConfig):
    status_port: StatusPort = 9182
    host: str = "127.0.0.1"
    port: Port = 7547
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body: int = Field(default=4 * 1024 * 1024, ge=16 * 1024, le=256 * 1024 * 1024)
    rate_limit: float = Field(default=20.0, ge=0, le=1_000_000)  # requests/s a source IP; 0: off
    rate_burst: int = Field(default=100, ge=1, le=10_000_000)
    session_timeout: Seconds = 30.0
    auth: Literal["none", "basic", "digest"] = "none"
    username: str = ""
    password: SecretStr | None = Field(default=None, json_schema_extra=_SECRET)
    # auth = "none" is accepted only on a loopback acs.host, unless this is set (a lab, or
    # CPEs reaching the ACS only through a trusted network the operator vouches for).
    allow_insecure: bool = False
    auto_register: bool = True
    # Auto-registration limits: an unknown CPE registers only when it matches every list
    # given (its OUI, its ProductClass, the address its Inform comes from). Empty: any.
    auto_register_ouis: list[str] = Field(default_factory=list)
    auto_register_product_classes: list[str] = Field(default_factory=list)
    auto_register_networks: list[str] = Field(default_factory=list)
    end_with_200: bool = False
    batch: int = Field(default=100, ge=1, le=5000)
    task_max_attempts: int = Field(default=5, ge=1, le=100)
    task_backoff: Seconds = 30.0
    # How long a Download/Upload the CPE accepted may wait for its TransferComplete.
    download_deadline: float = Field(default=3600.0, gt=0, le=7 * 86400)
    upload_deadline: float = Field(default=900.0, gt=0, le=7 * 86400)
    # UDP connection requests (TR-069 Annex G) for CPEs behind NAT: the STUN server (RFC
    # 5389) CPEs keep their binding open with, on acs.host; 0: off. TR-069's port is 3478.
    stun_port: int = Field(default=0, ge=0, le=65535)
    udp_connection_request_copies: int = Field(default=3, ge=1, le=10)
    # Connection requests the ACS sends a second at most (bulk runs, retries after backoff).
    connection_request_rate: float = Field(default=50.0, gt=0, le=100_000)
    connection_request_username: str = ""
    connection_request_password: SecretStr | None = Field(default=None, json_schema_extra=_SECRET)
    connection_request_timeout: Seconds = 3.0
    # Where connection requests may go: a ConnectionRequestURL (and a UDP binding) is used
    # only when its host is an IP address in these CPE networks; empty: only the address
    # the CPE's last Inform came from. Never loopback, link-local, multicast, unspecified,
    # nor connection_request_internal (the operator's own networks: API, management).
    connection_request_networks: list[str] = Field(default_factory=list)
    connection_request_internal: list[str] = Field(default_factory=list)
    # Digest is always preferred; Basic (the password in clear) only when this is set.
    connection_request_basic: bool = False
    # Labs and tests only: CPE simulators on this host (loopback URLs) may be poked.
    connection_request_allow_loopback: bool = False
    public_url: str = ""
    files_dir: Path | None = None
    max_file_size: int = Field(default=1024**3, ge=1024, le=64 * 1024**3)

    @model_validator(mode="after")
    def _acs_pairs(self) -> AcsConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if self.auth != "none" and (not self.username or self.password is None):
            raise ValueError(f"auth = {self.auth!r} needs username and password")
        if self.auth == "none" and not self.allow_insecure and not is_loopback(self.host):
            raise ValueError(
                f'acs.auth = "none" with acs.host = "{self.host}" (not loopback): anyone '
                "reaching it could register devices and download every file; set acs.auth "
                '= "digest" with username and password, bind acs.host to 127.0.0.1, or set '
                "acs.allow_insecure = true"
            )
        return self

    @field_validator(
        "auto_register_networks", "connection_request_networks", "connection_request_internal"
    )
    @classmethod
    def _network_list(cls, value: list[str]) -> list[str]:
        return validate.networks(value)

    @field_validator("auto_register_ouis")
    @classmethod
    def _ouis(cls, value: list[str]) -> list[str]:
        return [validate.oui(v) for v in value]

    @field_validator("auto_register_product_classes")
    @classmethod
    def _classes(cls, value: list[str]) -> list[str]:
        return [validate.text(v, "product class", 64, 1) for v in value]


def is_loopback(host: str) -> bool:
    """``host`` (an acs.host, a listen address) reaches only this machine."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class VolthaStack(_Section):
    """One VOLTHA deployment: its core's northbound gRPC, and the ONOS beside it."""

    address: str = Field(pattern=r"^[A-Za-z0-9_.:\[\]-]+:[0-9]{1,5}$")  # host:port
    tls: bool = False
    ca_file: Path | None = None  # PEM roots to verify the core's certificate (tls)
    deadline: Seconds = 10.0  # every call's deadline
    onos_url: str = Field(default="", pattern=r"^(https?://[^\s]+)?$")  # e.g. http://onos:8181
    onos_user: str = "onos"
    onos_password_file: Path | None = None  # read at start; unset: ONOS's default "rocks"

    @field_validator("ca_file", "onos_password_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {value} not found")
        return value


class VolthaConfig(_DaemonConfig):
    status_port: StatusPort = 9183
    # [voltha.stacks.NAME] tables; NAME labels everything read from that stack.
    stacks: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")], VolthaStack] = Field(
        default_factory=dict
    )
    sync_interval: Seconds = 30.0  # inventory: ListDevices + ListDevicePorts, diffed
    allowlist: bool = True  # disable the serial of an ONU no subscriber is bound to
    # How long ONOS gets to carry out a provisioning or removal (its olt app works from a
    # queue) before the reconciliation calls the service missing or stale.
    onos_settle: Seconds = 10.0
    optics_interval: Seconds = 300.0  # optics and PON counters of every active ONU
    optics_concurrency: int = Field(default=8, ge=1, le=256)
    onu_rx_low: float = Field(default=-27.0, ge=-60, le=10)  # dBm: alarm below
    onu_rx_high: float = Field(default=-8.0, ge=-60, le=10)  # dBm: alarm above
    alarm_hysteresis: float = Field(default=1.0, ge=0, le=10)  # dB back inside to clear
    firmware_concurrency: int = Field(default=4, ge=1, le=256)
    firmware_step_timeout: Seconds = 1800.0  # download, activate or commit of one ONU
    firmware_poll: Seconds = 5.0  # GetImageStatus interval while a step runs
    sadis_host: str = "127.0.0.1"
    sadis_port: StatusPort = 9187  # SADIS for ONOS: /subscribers/ID, /bandwidthprofiles/ID
    # Who may read SADIS (ONOS's addresses); anyone else gets 403. It is unauthenticated:
    # ONOS's SADIS client sends no credentials.
    sadis_allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])

    @field_validator("sadis_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {item!r}") from None
        return value


class PollerConfig(_DaemonConfig):
    status_port: StatusPort = 9184
    exporter_host: str = "127.0.0.1"
    # snmp_exporter's own port is 9116: both can run side by side while moving over
    exporter_port: StatusPort = 9186
    concurrency: int = Field(default=64, ge=1, le=10_000)
    timeout: Seconds = 2.0
    retries: int = Field(default=2, ge=0, le=10)
    retention_days: int = Field(default=30, ge=1, le=3650)
    max_backoff: int = Field(default=10, ge=1, le=100)
    # Tables are walked at most this often (seconds; 0: every poll); between walks a
    # target's known rows are read with GET. A new interface shows at the next walk; a
    # reboot or a vanished row brings the walk forward.
    rediscover: float = Field(default=900.0, ge=0, le=86400)
    # Several pollers share the targets under leases in PostgreSQL: a lease lapses
    # lease_ttl seconds after its last renewal (every sync_interval), so a dead poller's
    # targets are polled again within lease_ttl + sync_interval + one interval. Keep
    # lease_ttl + sync_interval under the shortest polling interval (10 s at least).
    lease_ttl: Seconds = Field(default=8.0, ge=1.0, le=600.0)
    sync_interval: Seconds = Field(default=2.0, ge=0.2, le=60.0)

    @model_validator(mode="after")
    def _lease_rounds(self) -> PollerConfig:
        if self.sync_interval * 2 > self.lease_ttl:
            raise ValueError("lease_ttl must be at least twice sync_interval (renewals)")
        return self

    trap_host: str = "127.0.0.1"
    trap_port: StatusPort = 162
    trap_communities: list[str] = Field(default_factory=list)
    trap_v3_engines: int = Field(default=4096, ge=1, le=1_000_000)
    trap_rate: float = Field(default=1000.0, gt=0, le=1_000_000)


class DevicesConfig(_DaemonConfig):
    status_port: StatusPort = 9185
    concurrency: int = Field(default=8, ge=1, le=256)  # device exchanges at once (threads)
    device_timeout: Seconds = 60.0  # one exchange with one device
    confirm_timeout: int = Field(default=120, ge=0, le=3600)  # confirmed commit (NETCONF, CLI)
    # A held configuration lock or mode is retried with backoff this long, then the device
    # ends "failed: locked".
    lock_wait: Seconds = 120.0
    job_timeout: Seconds = 3600.0  # a job's deadline, from its creation
    backup_interval: float = Field(default=86400.0, ge=60, le=30 * 86400)  # 0: on demand


class Config(_Section):
    state_dir: Path = SYSTEM_STATE_DIR  # replaced by default_state_dir() when not set
    instance_name: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]{0,64}$")
    log: LogConfig = LogConfig()
    database: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    embedded: EmbeddedConfig = EmbeddedConfig()
    secrets: SecretsConfig = SecretsConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    policies: PoliciesConfig = PoliciesConfig()
    api: ApiConfig = ApiConfig()
    radius: RadiusConfig = RadiusConfig()
    acs: AcsConfig = AcsConfig()
    voltha: VolthaConfig = VolthaConfig()
    poller: PollerConfig = PollerConfig()
    devices: DevicesConfig = DevicesConfig()

    @property
    def instance(self) -> str:
        return self.instance_name or socket.gethostname()
