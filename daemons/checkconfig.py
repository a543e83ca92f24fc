"""``netd check-config``: load and validate everything a daemon would, without starting one.

The config file (and the environment), the RADIUS dictionaries, every policy file (the
RADIUS plans and vendor tables, the CWMP presets, the SNMP profiles and the configuration
templates) and RadSec's certificates, each through the same loader the daemon uses. Then it
says where everything is: the config file read, the state directory, the stores, the
policies and the dictionaries.
No store is opened. Any problem is one line naming the file and line; exit status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from daemons import resources
from daemons.acs.presets import load_presets
from daemons.core import output
from daemons.core.config import Config, Loaded, default_locations, is_loopback
from daemons.core.policies import PolicyError, PolicySet, load_policies
from daemons.core.tlsreload import TlsError
from daemons.poller.profiles import load_profiles
from daemons.radius.dictionary import Dictionary, DictionaryError
from daemons.radius.eap_exchanges import Contexts, EapConfigError, tls_contexts
from daemons.radius.policy import load_policy
from daemons.radius.stream_tls import server_context
from daemons.radius.upstream import checked_realms
from daemons.store.pg import redact


class CheckError(Exception):
    """What a daemon would refuse to start with, as one line naming the file."""


def check_templates(root: Path) -> int:
    """Parse every ``config/*.j2`` template below ``root``; the number checked.

    Raises PolicyError naming the template and the line of a syntax error.
    """
    env = SandboxedEnvironment()
    count = 0
    folder = root / "config"
    for path in sorted(folder.glob("*.j2")) if folder.is_dir() else []:
        rel = path.relative_to(root).as_posix()
        try:
            env.parse(path.read_text(encoding="utf-8"))
        except TemplateSyntaxError as exc:
            raise PolicyError(rel, exc.message or "syntax error", exc.lineno) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(rel, str(exc)) from None
        count += 1
    return count


def check(config: Config) -> dict[str, str]:
    """Everything a daemon loads at start, validated; what was found, for the report.

    Raises CheckError with one line naming the file (and line) at fault.
    """
    root = config.policies.root
    found: dict[str, str] = {}
    try:
        dictionary = Dictionary(config.radius.dictionaries)
    except DictionaryError as exc:
        raise CheckError(f"dictionaries: {exc}") from None
    extra = ", ".join(str(p) for p in config.radius.dictionaries)
    found["dictionaries"] = str(resources.path("dictionaries")) + (f" + {extra}" if extra else "")
    try:
        policies = load_policies(root, 1)
        policy = load_policy(policies, dictionary)
        realms = checked_realms(policies)
        presets = load_presets(policies)
        profiles = load_profiles(policies)
        templates = check_templates(root)
    except PolicyError as exc:
        raise CheckError(_where(root, exc)) from None
    try:  # issue 29: the EAP certificates, key, CA and CRLs, read as the daemon reads them
        contexts = tls_contexts(config.radius)
    except EapConfigError as exc:
        raise CheckError(str(exc)) from None
    found["radius eap"] = _eap(config, contexts)
    packaged = " (packaged with netd)" if config.policies.dir is None else ""
    found["policies"] = f"{root}{packaged}: {_count(policies)} files"
    found["radius plans"] = f"{len(policy.plans)}, vendor tables {len(policy.vendors)}"
    found["radius realms"] = (
        f"{len(realms.realms)}, home servers {len(realms.home_servers)}, pools {len(realms.pools)}"
    )
    found["cwmp presets"] = str(len(presets))
    found["snmp profiles"] = ", ".join(sorted(profiles)) or "none"
    found["config templates"] = str(templates)
    found["radius streams"] = _streams(config)
    return found


def _streams(config: Config) -> str:
    """RadSec and RADIUS/TCP as the daemon would open them; its TLS files loaded as the
    listener loads them. Raises CheckError naming the file."""
    rs = config.radius.radsec
    hosts = ",".join(rs.listen or config.radius.listen)
    parts = []
    if rs.tls_port:
        assert rs.tls_cert and rs.tls_key and rs.tls_client_ca  # the config's own check
        try:
            server_context(rs.tls_cert, rs.tls_key, rs.tls_client_ca, rs.tls_crl)
        except TlsError as exc:
            raise CheckError(f"radius.radsec: {exc}") from None
        crl = ", CRL checked" if rs.tls_crl else ""
        parts.append(f"RadSec tls {hosts} port {rs.tls_port} (mutual TLS{crl})")
    if rs.tcp_port:
        parts.append(f"RADIUS/TCP {hosts} port {rs.tcp_port}")
    return "; ".join(parts) or "off"


def exposure(config: Config) -> dict[str, str]:
    """What the edges expose, for the report (the refusals themselves are the config's:
    an ACS without authentication off loopback never loads)."""
    acs = config.acs
    if acs.auth == "none":
        where = "loopback only" if is_loopback(acs.host) else "INSECURE: acs.allow_insecure"
        auth = f"none on {acs.host} ({where}); /files/ without credentials"
    else:
        auth = f"{acs.auth} (global and per-device credentials, /files/ too)"
    limits = [
        f"{name} {', '.join(values)}"
        for name, values in (
            ("OUIs", acs.auto_register_ouis),
            ("product classes", acs.auto_register_product_classes),
            ("networks", acs.auto_register_networks),
        )
        if values
    ]
    register = "off" if not acs.auto_register else ("; ".join(limits) or "any CPE")
    reach = ", ".join(acs.connection_request_networks) or "the CPE's last Inform address"
    internal = ", ".join(acs.connection_request_internal) or "none listed"
    extra = "; loopback allowed (lab)" if acs.connection_request_allow_loopback else ""
    scheme = "Digest or Basic" if acs.connection_request_basic else "Digest only"
    api = config.api
    mtls = "off"
    if api.tls_client_ca is not None:
        mtls = ("required" if api.tls_client_required else "optional") + (
            f", {len(api.client_cert_roles)} certificate(s) mapped to roles"
        )
    return {
        "acs authentication": auth,
        "acs auto-registration": register,
        "connection requests": f"to {reach}; internal {internal}; {scheme}{extra}",
        "api mutual tls": mtls,
    }


def _eap(config: Config, contexts: Contexts) -> str:
    r = config.radius
    offered = [
        m
        for m in r.eap_methods
        if m == "md5"
        or (m in ("peap", "ttls") and contexts.tunnel is not None)
        or (m == "tls" and contexts.tls is not None)
    ]
    text = ", ".join(offered) or "none"
    if "tls" in r.eap_methods and contexts.tls is None and contexts.tunnel is not None:
        text += " (not tls: no radius.eap_ca)"
    if contexts.tunnel is not None or contexts.tls is not None:
        text += f" (certificate {r.eap_cert}; TLS {r.eap_tls_min_version}-{r.eap_tls_max_version}"
        if contexts.tunnel is not None:
            top = min(r.eap_tunnel_max_version, r.eap_tls_max_version)
            text += f", PEAP/TTLS up to {top}"
        text += f"; CRLs {len(r.eap_crl)})" if contexts.tls is not None else ")"
    return text


def _count(policies: PolicySet) -> int:
    return len(policies.documents)


def _where(root: Path, exc: PolicyError) -> str:
    path = Path(exc.path)
    shown = path if path.is_absolute() else root / path
    line = f":{exc.line}" if exc.line else ""
    return f"policy error: {shown}{line}: {exc.problem}"


def _stores(config: Config) -> dict[str, str]:
    state = config.state_dir
    pg = config.database.url.get_secret_value()
    rd = config.redis.url.get_secret_value()
    exists = (state / "postgres" / "PG_VERSION").is_file()
    return {
        "database": redact(pg)
        if pg
        else f"embedded PostgreSQL in {state / 'postgres'}"
        + ("" if exists else " (not created yet: `netd migrate` creates it)"),
        "redis": redact(rd) if rd else f"embedded Redis in {state / 'redis'}",
    }


def run(loaded: Loaded, out: TextIO = sys.stdout) -> int:
    """The command: 0 and a report, or 2 and one line on stderr."""
    config = loaded.config
    try:
        found = check(config)
    except CheckError as exc:
        return output.fail(f"{exc}", 2)
    if loaded.path is not None:
        source = str(loaded.path)
    else:
        looked = ", ".join(str(p) for p in default_locations(os.environ))
        source = f"none (defaults and the environment; looked for {looked})"
    rows = {"config file": source, "state directory": str(config.state_dir)}
    rows |= _stores(config)
    rows |= found
    for block in (rows, exposure(config)):
        width = max(len(k) for k in block)
        for key, value in block.items():
            print(f"{key + ':':{width + 1}} {value}", file=out)
    print("config ok", file=out)
    return 0
