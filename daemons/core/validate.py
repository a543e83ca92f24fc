"""The rules every operator input follows, whatever the path it comes by: the CLI on the
stores, the HTTP API, the gRPC API (through the API's models), the CLI through the API.

Each rule is a function that returns the value as stored (normalised: a MAC in
``aa:bb:cc:dd:ee:ff``, a prefix in CIDR form) or raises :class:`Invalid` with one line that
names the input and says what is allowed. The API's pydantic models call the same functions
(:func:`rule` turns one into a pydantic validator whose message is the rule's own), and the
bounds are those of the database's CHECK constraints, so no path stores what another
refuses, and every path refuses with the same message.

Rules that need to know what exists (plans, vendors, SNMP profiles) take the names known
(:func:`known`); the callers load them the way the daemons do.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

T = TypeVar("T")

# Names of things (NAS clients, plans, SNMP targets, devices, pools, tags): as the CHECK
# constraints of nas_clients, radius_plans, snmp_targets and devices say.
NAME = r"^[A-Za-z0-9_.:-]{1,64}$"
NAME_RULE = "1 to 64 of A-Z a-z 0-9 _ . : -"
TOKEN_NAME = r"^[A-Za-z0-9_.@-]{1,64}$"  # noqa: S105 - a pattern, not a token
TOKEN_NAME_RULE = "1 to 64 of A-Z a-z 0-9 _ . @ -"  # noqa: S105
TRAP_USER = r"^[A-Za-z0-9_.:@-]{1,32}$"
TRAP_USER_RULE = "1 to 32 of A-Z a-z 0-9 _ . : @ -"
SERIAL = r"^[A-Za-z0-9]{4,32}$"
PLATFORM = r"^[a-z0-9_]{1,64}$"
TEMPLATE = r"^[A-Za-z0-9_.-]{1,64}$"
USERNAME_MAX = 253  # RFC 2865 §5.1: User-Name is at most 253 octets
SECRET_MAX = 128  # RFC 2865 §5.2: User-Password (and so the shared secrets we accept)
DESCRIPTION_MAX = 512
PORT = (1, 65535)
SNMP_INTERVAL = (10, 86400)  # snmp_targets.interval CHECK
LEASE_TIME = (1, 2**31 - 1)  # ip_pools.lease_time CHECK (> 0, an integer)
VLAN = (1, 4094)  # onu_bindings s_tag, c_tag
TP_ID = (64, 255)
UNI = (1, 16)
CONCURRENCY = (1, 256)  # config_jobs and voltha_firmware_jobs CHECK
COA_RETRIES = (1, 5)
ID = (1, 2**62)  # task, job and backup ids (bigint)
LIMIT = (1, 1_000_000)  # rows a CLI list prints
SNMP_TIMEOUT = (0.05, 60.0)
# The addresses one `pool add` may bring: a /14 of IPv4. More is a typo (10.0.0.0/8 is 16 M
# rows) or a job for several calls.
POOL_ADD_MAX = 2**18

_MAC = re.compile(r"^[0-9a-f]{12}$")
_MAC_SEPARATORS = re.compile(r"[-:.]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


EAP_METHODS = ("md5", "peap", "ttls", "tls")  # radius.eap_methods and the policy's


class Invalid(ValueError):
    """An input that breaks a rule. The message names the input and the rule."""


def show(value: object, limit: int = 64) -> str:
    """``value`` quoted for a one-line message: escaped (no newline, no control character
    reaches a terminal) and cut to ``limit`` characters."""
    if not isinstance(value, str):
        return repr(value)[:limit]
    text = value
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def pattern(value: str, regex: str, what: str, rule_text: str) -> str:
    if not isinstance(value, str) or re.match(regex, value) is None or value.endswith("\n"):
        raise Invalid(f"{what} {show(value)} must be {rule_text}")
    return value


def name(value: str, what: str = "name") -> str:
    """A name of a NAS client, plan, SNMP target, device, pool or tag."""
    return pattern(value, NAME, what, NAME_RULE)


def token_name(value: str) -> str:
    return pattern(value, TOKEN_NAME, "token name", TOKEN_NAME_RULE)


def trap_user(value: str) -> str:
    return pattern(value, TRAP_USER, "SNMPv3 user", TRAP_USER_RULE)


def text(value: str, what: str, most: int, least: int = 0) -> str:
    """Printable text of ``least`` to ``most`` characters."""
    if not least <= len(value) <= most:
        raise Invalid(f"{what} must be {least} to {most} characters (got {len(value)})")
    if _CONTROL.search(value):
        raise Invalid(f"{what} {show(value)} holds a control character")
    return value


def username(value: str) -> str:
    """A RADIUS User-Name: 1 to 253 characters, no control characters."""
    if not 1 <= len(value) <= USERNAME_MAX:
        raise Invalid(f"username must be 1 to {USERNAME_MAX} characters (got {len(value)})")
    if _CONTROL.search(value):
        raise Invalid(f"username {show(value)} holds a control character")
    return value


def secret(value: str, what: str = "secret", most: int = SECRET_MAX) -> str:
    """A password or shared secret: 1 to ``most`` octets (its value is never echoed)."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= most:
        raise Invalid(f"the {what} must be 1 to {most} octets (got {size})")
    return value


def bounded(value: int, bounds: tuple[int, int], what: str, unit: str = "") -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(f"{what} must be {low} to {high}{unit} (got {show(value, 24)})")
    return value


def seconds(value: float, bounds: tuple[float, float], what: str) -> float:
    low, high = bounds
    if not math.isfinite(value) or not low <= value <= high:
        raise Invalid(f"{what} must be {low:g} to {high:g} seconds (got {value!r})")
    return value


def port(value: int, what: str = "port") -> int:
    return bounded(value, PORT, what)


def mac(value: str) -> str:
    """A MAC address in any common spelling → ``aa:bb:cc:dd:ee:ff``."""
    digits = _MAC_SEPARATORS.sub("", value.strip()).lower()
    if not _MAC.match(digits):
        raise Invalid(f"mac {show(value)} is not a MAC address (12 hex digits: aa:bb:cc:dd:ee:ff)")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def ip_address(value: str, what: str = "address") -> str:
    """An IPv4 or IPv6 address, in its canonical spelling."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise Invalid(f"{what} {show(value)} is not an IP address") from None


TLS_IDENTITY = r"^[a-z0-9]([a-z0-9_.-]{0,252})$"
TLS_IDENTITY_RULE = (
    "sha256:<64 hex digits> (the certificate's fingerprint) or a DNS name / subject CN "
    "(1 to 253 of a-z 0-9 _ . -)"
)


def tls_identity(value: str) -> str:
    """A NAS's RadSec client certificate (RFC 6614 §2.4): its SHA-256 fingerprint
    (``sha256:`` and 64 hex digits, colons allowed) or a subjectAltName DNS name / subject
    CN; lowercase. "" is none (an update clearing it)."""
    lowered = value.strip().lower() if isinstance(value, str) else value
    if lowered == "":
        return ""
    if isinstance(lowered, str) and lowered.startswith("sha256:"):
        digits = lowered[7:].replace(":", "")
        if re.fullmatch(r"[0-9a-f]{64}", digits) is None:
            raise Invalid(f"tls_identity {show(value)} must be {TLS_IDENTITY_RULE}")
        return "sha256:" + digits
    if isinstance(lowered, str) and "*" in lowered:
        raise Invalid(f"tls_identity {show(value)}: no wildcards, one certificate a NAS")
    return pattern(lowered, TLS_IDENTITY, "tls_identity", TLS_IDENTITY_RULE)


def framed_ip(value: str) -> str:
    """A subscriber's static Framed-IP-Address (RFC 2865 §5.8): IPv4 only."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise Invalid(f"framed_ip {show(value)} is not an IPv4 address") from None
    if address.version != 4:
        raise Invalid(
            f"framed_ip {show(value)} is IPv6: Framed-IP-Address is an IPv4 address; an IPv6 "
            "subscriber takes framed_ipv6_address (--ipv6), framed_ipv6_prefix "
            "(--ipv6-prefix), delegated_ipv6_prefix (--delegated-prefix) or the pools "
            "framed_ipv6_pool (--ipv6-pool) and delegated_ipv6_pool (--delegated-pool)"
        )
    return str(address)


def ipv6_address(value: str, what: str = "framed_ipv6_address") -> str:
    """A static Framed-IPv6-Address (RFC 6911 §3.1): IPv6 only, canonical spelling."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise Invalid(f"{what} {show(value)} is not an IPv6 address") from None
    if address.version != 6:
        raise Invalid(f"{what} {show(value)} is IPv4: give it as framed_ip (--ip)")
    return str(address)


IPV6_PREFIX = (1, 128)  # RFC 3162 §2.3, RFC 4818 §3: a prefix length of at most 128


def ipv6_prefix(value: str, what: str = "framed_ipv6_prefix") -> str:
    """An IPv6 prefix (Framed-IPv6-Prefix, RFC 3162 §2.3; Delegated-IPv6-Prefix, RFC 4818):
    CIDR with its length; host bits are refused (a typo more often than an intent)."""
    if "/" not in value:
        raise Invalid(f"{what} {show(value)} needs a prefix length, e.g. 2001:db8:1:2::/64")
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise Invalid(f"{what} {show(value)} is not an IPv6 prefix (2001:db8:1:2::/64)") from None
    if net.version != 6:
        raise Invalid(f"{what} {show(value)} is IPv4: {what} is an IPv6 prefix")
    if not IPV6_PREFIX[0] <= net.prefixlen <= IPV6_PREFIX[1]:
        raise Invalid(f"{what} {show(value)}: the length is 1 to 128")
    if ipaddress.ip_interface(value).ip != net.network_address:
        raise Invalid(f"{what} {show(value)} has host bits set: the prefix is {net}")
    return str(net)


def network(value: str, what: str = "network") -> str:
    """An address or a prefix (CIDR; host bits are dropped), in CIDR form."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise Invalid(f"{what} {show(value)} is not an address or CIDR prefix") from None


def networks(values: Iterable[str], what: str = "network") -> list[str]:
    """A list of addresses or prefixes, each in CIDR form (``network``)."""
    return [network(v, what) for v in values]


_OUI = re.compile(r"^[0-9A-F]{6}$")


def oui(value: str) -> str:
    """An IEEE OUI as CWMP's DeviceId carries it: six hex digits, upper case."""
    digits = value.strip().upper()
    if not _OUI.match(digits):
        raise Invalid(f"oui {show(value)} is not an OUI (6 hex digits, e.g. 00259E)")
    return digits


def pool_ranges(ranges: Iterable[str]) -> list[str]:
    """IPv4 ranges (CIDR) for an IP pool: netd pools hand out Framed-IP-Address, which is
    IPv4; at most POOL_ADD_MAX addresses in all."""
    out: list[str] = []
    total = 0
    for item in ranges:
        net = ipaddress.ip_network(network(item, "range"), strict=False)
        if net.version != 4:
            raise Invalid(
                f"range {show(item)} is IPv6: pools hand out Framed-IP-Address, an IPv4 address"
            )
        total += net.num_addresses
        out.append(str(net))
    if not out:
        raise Invalid("give at least one range")
    if total > POOL_ADD_MAX:
        raise Invalid(
            f"the ranges hold {total} addresses: at most {POOL_ADD_MAX} at a time (a /14)"
        )
    return out


IPV6_POOL_LENGTHS = (48, 64)  # per-subscriber prefixes: /48 to /64 (/56, /60 delegated; /64 WAN)


def ipv6_pool(prefix: str, length: int) -> tuple[str, int]:
    """A netd IPv6 pool: an IPv6 prefix cut into per-subscriber prefixes of ``length``
    (longer than the pool's, /48 to /64)."""
    net = ipaddress.ip_network(ipv6_prefix(prefix, "prefix"))
    if not IPV6_POOL_LENGTHS[0] <= length <= IPV6_POOL_LENGTHS[1]:
        raise Invalid(f"length {length}: a subscriber's prefix is /48 to /64 (/56, /60, /64)")
    if length <= net.prefixlen:
        raise Invalid(f"length {length}: a /{length} does not fit in {net} more than once")
    return str(net), length


_OID = re.compile(r"^\.?(0|[1-9][0-9]{0,9})(\.(0|[1-9][0-9]{0,9})){1,127}$")


def oid(value: str) -> str:
    """A numeric object identifier (1.3.6.1.2.1.1.5.0), without a leading dot."""
    if _OID.match(value) is None or any(int(arc) >= 2**32 for arc in value.strip(".").split(".")):
        raise Invalid(f"OID {show(value)} must be numeric: 1.3.6.1.2.1.1.5.0")
    return value.lstrip(".")


REALM = r"^(?=.{1,253}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
REALM_RULE = "a domain-like name: labels of A-Z a-z 0-9 _ - joined by dots, at most 253"
REALM_DELIMITERS = ("@", "\\", "/", "%", "!")


def realm(value: str) -> str:
    """A RADIUS realm (``isp.example``), lower-cased: realms match case-insensitively."""
    return pattern(value, REALM, "realm", REALM_RULE).lower()


def realm_delimiter(value: str) -> str:
    """A realm delimiter: ``@`` (``user@realm``), ``\\`` (``realm\\user``), ``/``, ``%``, ``!``."""
    if value not in REALM_DELIMITERS:
        raise Invalid(f"realm delimiter {show(value)} is not one of {' '.join(REALM_DELIMITERS)}")
    return value


def known(value: str, names: Iterable[str], what: str, where: str) -> str:
    """``value`` if it is one of ``names``, else Invalid listing them."""
    choices = sorted(set(names))
    if value not in choices:
        listed = ", ".join(choices[:20]) + (", …" if len(choices) > 20 else "")
        raise Invalid(f"no {what} {show(value)} in {where} (known: {listed or 'none'})")
    return value


def json_object(value: str, what: str) -> dict[str, Any]:
    import json  # noqa: PLC0415 - rarely needed

    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise Invalid(f"{what} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise Invalid(f"{what} is a JSON object ({{...}})")
    return parsed


# --- the same rules as pydantic validators (for the API's models) ---------------------------


def rule(check: Callable[[Any], Any]) -> AfterValidator:
    """A pydantic validator running ``check``: its Invalid becomes the field's error with
    the rule's own message (no "Value error, " prefix), so the API says what the CLI says."""

    def run(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except Invalid as exc:
            raise PydanticCustomError("invalid", "{message}", {"message": str(exc)}) from None

    return AfterValidator(run)


def int_schema(bounds: tuple[int, int]) -> WithJsonSchema:
    return WithJsonSchema({"type": "integer", "minimum": bounds[0], "maximum": bounds[1]})


def str_schema(regex: str | None = None, most: int | None = None) -> WithJsonSchema:
    schema: dict[str, Any] = {"type": "string"}
    if regex:
        schema["pattern"] = regex
    if most:
        schema["maxLength"] = most
    return WithJsonSchema(schema)


def eap_methods(values: Iterable[str], what: str = "eap_methods") -> list[str]:
    """EAP method names, each once, in the order given (the first is proposed first)."""
    out: list[str] = []
    for value in values:
        method = str(value).strip().lower()
        if method not in EAP_METHODS:
            raise Invalid(f"{what}: {show(value)} is not one of {', '.join(EAP_METHODS)}")
        if method not in out:
            out.append(method)
    if not out:
        raise Invalid(f"{what}: name at least one of {', '.join(EAP_METHODS)}")
    return out
