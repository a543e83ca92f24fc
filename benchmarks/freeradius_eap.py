"""A FreeRADIUS 3.2 with its ``eap`` module, for the EAP side-by-side rows (issue 29).

Extends benchmarks/freeradius.py (same radiusd.conf: loopback, 16 threads, debug off):
- ``mods/eap``: PEAP (EAP-MSCHAPv2 inside, virtual server ``inner``) and EAP-TLS, one
  ``tls-config`` with the benchmark's certificates (server certificate and key, the
  clients' CA), TLS 1.2 (netd's PEAP is TLS 1.2; EAP-TLS is measured at 1.2 on both),
  prime256v1, fragment size 1020 as netd's default; the session ``cache`` on (lifetime
  1 h) only for the resumption rows;
- ``mods/mschap``, ``mods/files`` (the subscribers' Cleartext-Password), ``mods/pap``;
- server ``bench``: authorize ``eap`` (then ``files``), authenticate ``Auth-Type EAP``,
  a Message-Authenticator in every reply as netd sends; server ``inner``: ``eap``,
  ``files``, ``mschap``.
Its client requires Message-Authenticator, as netd's NAS does.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks import freeradius as fr

_EAP = """\
eap {{
    default_eap_type = {default}
    timer_expire = 60
    ignore_unknown_eap_types = no
    max_sessions = 16384
    tls-config tls-common {{
        private_key_file = {key}
        certificate_file = {cert}
        ca_file = {ca}
        cipher_list = "DEFAULT"
        tls_min_version = "1.2"
        tls_max_version = "1.2"
        ecdh_curve = "prime256v1"
        fragment_size = 1020
        include_length = yes
        cache {{
            enable = {cache}
            lifetime = 1
            max_entries = 16384
        }}
        verify {{
        }}
    }}
    tls {{
        tls = tls-common
    }}
    peap {{
        tls = tls-common
        default_eap_type = mschapv2
        copy_request_to_tunnel = no
        use_tunneled_reply = no
        virtual_server = "inner"
    }}
    mschapv2 {{
    }}
}}
"""

_SITES = """\
server bench {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {port}
        recv_buff = 4194304
    }}
    authorize {{
        eap {{
            ok = return
        }}
        files
    }}
    authenticate {{
        Auth-Type EAP {{
            eap
        }}
    }}
    post-auth {{
        update reply {{
            &Message-Authenticator := 0x00
        }}
    }}
}}

server inner {{
    authorize {{
        eap {{
            ok = return
        }}
        files
        mschap
    }}
    authenticate {{
        Auth-Type EAP {{
            eap
        }}
        Auth-Type MSCHAP {{
            mschap
        }}
    }}
}}
"""


@dataclass(frozen=True)
class EapSetup:
    """What the generated configuration is made of."""

    secret: str
    cert: Path
    key: Path
    ca: Path
    users: dict[str, str]
    cache: bool  # the TLS session cache (resumption)
    default: str = "peap"  # default_eap_type


@dataclass
class EapServer:
    port: int
    pid: int
    confdir: Path
    log: Path


def write_config(confdir: Path, port: int, setup: EapSetup) -> None:
    secret, users = setup.secret, setup.users
    (confdir / "mods").mkdir(parents=True)
    (confdir / "sites").mkdir()
    radiusd = fr._RADIUSD.format(confdir=confdir, threads=fr.THREADS)
    (confdir / "radiusd.conf").write_text(radiusd)
    (confdir / "dictionary").write_text(f"$INCLUDE {fr.DICTIONARY}\n")
    (confdir / "clients.conf").write_text(
        "client bench {\n    ipaddr = 127.0.0.1\n"
        f"    secret = {fr._q(secret)}\n"
        "    require_message_authenticator = yes\n    nas_type = other\n}\n"
    )
    (confdir / "sites" / "bench").write_text(_SITES.format(port=port))
    mods = confdir / "mods"
    (mods / "eap").write_text(
        _EAP.format(
            default=setup.default,
            key=setup.key,
            cert=setup.cert,
            ca=setup.ca,
            cache="yes" if setup.cache else "no",
        )
    )
    (mods / "mschap").write_text("mschap {\n}\n")
    (mods / "pap").write_text("pap {\n    normalise = yes\n}\n")
    (mods / "always").write_text("always ok {\n    rcode = ok\n}\n")
    (confdir / "users").write_text(
        "\n".join(f"{fr._q(n)} Cleartext-Password := {fr._q(p)}" for n, p in users.items()) + "\n"
    )
    (mods / "files").write_text(f"files {{\n    filename = {confdir}/users\n}}\n")


@contextlib.contextmanager
def eap_server(setup: EapSetup, start_timeout: float = 30.0) -> Iterator[EapServer]:
    """FreeRADIUS with the eap module until the block ends. Raises RuntimeError naming its
    log when it does not start."""
    if not fr.available():
        raise RuntimeError(fr.skip_message())
    with tempfile.TemporaryDirectory(prefix="freeradius-eap-") as tmp:
        confdir = Path(tmp) / "raddb"
        port = fr._free_udp_port(set())
        write_config(confdir, port, setup)
        log = confdir / "radius.log"
        out_path = confdir / "stdout.log"
        proc = fr.launch(confdir, out_path)
        try:
            deadline = time.monotonic() + start_timeout
            while not fr._bound(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"FreeRADIUS (eap) did not start; see {log}:\n{fr._tail(out_path)}"
                        f"\n{fr._tail(log)}"
                    )
                time.sleep(0.05)
            yield EapServer(port, proc.pid, confdir, log)
        finally:
            fr._stop(proc)
