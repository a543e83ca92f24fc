"""FreeRADIUS 3.2 in the two roles a proxy meets (issue 28): a HOME server behind netd, and
a PROXY in front of it. Both reuse ``benchmarks/freeradius.py``'s generator (``files``
mode: the users file ``user00000`` / ``pw-00000``..., the same reply items) and change
what a role needs:

- :func:`home_server`: given ports (a test stops a home server and starts it again on
  the same ports); ``extra_users`` (name → password) added to the users file; accounting
  written by ``linelog`` to ``acct.log`` in the config directory, one line a record
  (``Acct-Status-Type Acct-Session-Id User-Name Acct-Delay-Time``), so a test counts what
  reached the home server; EAP-MD5 (``eap`` module); a Message-Authenticator in every
  Access-Accept and Access-Reject (FreeRADIUS 3.2.1 adds none by itself); Status-Server
  answered (RFC 5997).
- :func:`proxy_server`: FreeRADIUS proxying the realm ``realm`` (``suffix``: ``user@realm``,
  not stripped) to one auth and one accounting home server (netd's two ports), with a
  Message-Authenticator required in the home server's replies.

Both listen on 127.0.0.1 only and run as the current user; ``stop()`` ends them.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks import freeradius as fr

_HOME_SITE = """\
server home {{
{listen}
    authorize {{
        eap {{
            ok = return
        }}
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
        Auth-Type EAP {{
            eap
        }}
    }}
    preacct {{
    }}
    accounting {{
        acctlog
    }}
    post-auth {{
        update reply {{
            &Message-Authenticator := 0x00
        }}
        Post-Auth-Type REJECT {{
            update reply {{
                &Message-Authenticator := 0x00
            }}
        }}
    }}
}}
"""

# Both roles listen on 127.0.0.1 only: Access-Requests on one port, accounting on another.
_LISTEN = """\
    listen {
        type = auth
        ipaddr = 127.0.0.1
        port = %d
    }
    listen {
        type = acct
        ipaddr = 127.0.0.1
        port = %d
    }"""

_EAP = """\
eap {
    default_eap_type = md5
    timer_expire = 60
    ignore_unknown_eap_types = no
    max_sessions = 4096
    md5 {
    }
}
"""

_FIELDS = "%{Acct-Status-Type} %{Acct-Session-Id} %{User-Name} %{%{Acct-Delay-Time}:-0}"
_LINELOG = (
    'linelog acctlog {{\n    filename = {path}\n    format = "'
    + _FIELDS.replace("{", "{{").replace("}", "}}")
    + '"\n}}\n'
)

_PROXY_SITE = """\
server front {{
{listen}
    authorize {{
        suffix
    }}
    authenticate {{
    }}
    preacct {{
        suffix
    }}
    accounting {{
    }}
    post-auth {{
    }}
}}
"""

_PROXY_CONF = """\
proxy server {{
    default_fallback = no
}}
home_server netd-auth {{
    type = auth
    ipaddr = 127.0.0.1
    port = {home_auth}
    secret = {secret}
    response_window = 20
    zombie_period = 40
    status_check = none
    require_message_authenticator = yes
}}
home_server netd-acct {{
    type = acct
    ipaddr = 127.0.0.1
    port = {home_acct}
    secret = {secret}
    response_window = 20
    zombie_period = 40
    status_check = none
}}
home_server_pool netd-auth-pool {{
    type = fail-over
    home_server = netd-auth
}}
home_server_pool netd-acct-pool {{
    type = fail-over
    home_server = netd-acct
}}
realm {realm} {{
    auth_pool = netd-auth-pool
    acct_pool = netd-acct-pool
    {strip}
}}
"""


@dataclass
class Running:
    auth_port: int
    acct_port: int
    confdir: Path
    proc: subprocess.Popen[bytes]

    @property
    def acct_log(self) -> Path:
        return self.confdir / "acct.log"

    def records(self) -> list[list[str]]:
        """The accounting lines the home server wrote (status, session, user, delay)."""
        try:
            text = self.acct_log.read_text()
        except FileNotFoundError:
            return []
        return [line.split() for line in text.splitlines() if line.strip()]

    def stop(self) -> None:
        fr._stop(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid


def _start(confdir: Path, auth_port: int, acct_port: int, ready: str, secret: str) -> Running:
    out_path = confdir / "stdout.log"
    proc = fr.launch(confdir, out_path, append=True)
    try:
        if ready == "auth":
            fr._wait_ready(
                proc,
                auth_port,
                acct_port,
                secret,
                "user{:05d}",
                "pw-{:05d}",
                confdir / "radius.log",
                out_path,
                30.0,
            )
        else:
            import time  # noqa: PLC0415

            deadline = time.monotonic() + 30
            while not (fr._bound(auth_port) and fr._bound(acct_port)):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"FreeRADIUS did not start; see {out_path}:\n{fr._tail(out_path)}"
                    )
                time.sleep(0.05)
    except BaseException:
        fr._stop(proc)
        raise
    return Running(auth_port, acct_port, confdir, proc)


def write_home(
    confdir: Path,
    secret: str,
    auth_port: int,
    acct_port: int,
    users: int = 100,
    extra_users: Mapping[str, str] | None = None,
    threads: int = 4,
) -> None:
    fr.write_config(
        confdir,
        "files",
        secret,
        auth_port,
        acct_port,
        users,
        "user{:05d}",
        "pw-{:05d}",
        None,
        threads,
    )
    reply = ",\n".join(f"\t{name} = {value}" for name, value in fr.REPLY)
    with (confdir / "users").open("a") as f:
        for name, pw in (extra_users or {}).items():
            f.write(f"\n{fr._q(name)} Cleartext-Password := {fr._q(pw)}\n{reply}\n")
    (confdir / "sites" / "bench").unlink()
    (confdir / "sites" / "home").write_text(
        _HOME_SITE.format(listen=_LISTEN % (auth_port, acct_port))
    )
    (confdir / "mods" / "eap").write_text(_EAP)
    (confdir / "mods" / "linelog").write_text(_LINELOG.format(path=confdir / "acct.log"))


def start_home(confdir: Path, secret: str, auth_port: int, acct_port: int) -> Running:
    """Start (or start again) the home server written in ``confdir``."""
    return _start(confdir, auth_port, acct_port, "auth", secret)


@contextlib.contextmanager
def home_server(
    secret: str,
    extra_users: Mapping[str, str] | None = None,
    users: int = 100,
    ports: tuple[int, int] | None = None,
    workdir: Path | None = None,
    threads: int = 4,
) -> Iterator[Running]:
    """A FreeRADIUS home server until the block ends (see the module docstring)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fr-home-")))
        auth_port, acct_port = ports or (fr._free_udp_port(set()), 0)
        if not acct_port:
            acct_port = fr._free_udp_port({auth_port})
        confdir = workdir / f"home-{auth_port}"
        write_home(confdir, secret, auth_port, acct_port, users, extra_users, threads)
        running = start_home(confdir, secret, auth_port, acct_port)
        try:
            yield running
        finally:
            running.stop()


@contextlib.contextmanager
def proxy_server(
    secret: str,
    home_secret: str,
    home_auth: int,
    home_acct: int,
    realm: str,
    workdir: Path | None = None,
    threads: int = 4,
    strip: bool = False,
) -> Iterator[Running]:
    """FreeRADIUS proxying ``realm`` to a home server (netd, or another FreeRADIUS) on
    127.0.0.1; ``strip``: the realm is taken off the User-Name."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fr-proxy-")))
        auth_port = fr._free_udp_port({home_auth, home_acct})
        acct_port = fr._free_udp_port({home_auth, home_acct, auth_port})
        confdir = workdir / f"proxy-{auth_port}"
        fr.write_config(
            confdir,
            "files",
            secret,
            auth_port,
            acct_port,
            1,
            "user{:05d}",
            "pw-{:05d}",
            None,
            threads,
        )
        radiusd = confdir / "radiusd.conf"
        radiusd.write_text(
            radiusd.read_text().replace(
                "proxy_requests = no", "proxy_requests = yes\n$INCLUDE proxy.conf"
            )
        )
        (confdir / "proxy.conf").write_text(
            _PROXY_CONF.format(
                home_auth=home_auth,
                home_acct=home_acct,
                secret=fr._q(home_secret),
                realm=realm,
                strip="" if strip else "nostrip",
            )
        )
        (confdir / "sites" / "bench").unlink()
        (confdir / "sites" / "front").write_text(
            _PROXY_SITE.format(listen=_LISTEN % (auth_port, acct_port))
        )
        (confdir / "mods" / "realm").write_text(
            'realm suffix {\n    format = suffix\n    delimiter = "@"\n}\n'
        )
        running = _start(confdir, auth_port, acct_port, "bound", secret)
        try:
            yield running
        finally:
            running.stop()
