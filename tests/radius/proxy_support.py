"""netd as a RADIUS proxy between real peers (issue 28): the stack the proxy tests share.

:func:`proxy_netd` starts a ``netd radius`` on fresh stores (the NAS clients and
subscribers of ``tests/radius/conftest.py``) with ``realms`` written as
``policies/radius/realms.toml`` before it starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from daemons.radius.codec import Attr, Code, encode_request, hide_password
from tests.radius.conftest import SECRET, RadiusServer, radius_process
from tests.stack import Seeded
from tests.support import tool

HOME_SECRET = "home-s3cret"


def run(args: list[str], stdin: str = "", timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def radtest(port: int, user: str, password: str, secret: str = SECRET.decode()) -> str:
    out = run(
        [
            tool("radtest", "freeradius-utils"),
            "-x",
            user,
            password,
            f"127.0.0.1:{port}",
            "0",
            secret,
            "0",
            "127.0.0.1",
        ]
    )
    return out.stdout + out.stderr


def radclient(
    port: int,
    kind: str,
    attrs: str,
    secret: str = SECRET.decode(),
    retries: int = 3,
    timeout: int = 3,
) -> subprocess.CompletedProcess[str]:
    return run(
        [
            tool("radclient", "freeradius-utils"),
            "-x",
            "-r",
            str(retries),
            "-t",
            str(timeout),
            f"127.0.0.1:{port}",
            kind,
            secret,
        ],
        attrs,
    )


def access_request(ident: int, user: str, password: str, secret: bytes = SECRET) -> bytes:
    auth = os.urandom(16)
    attrs = [
        (Attr.USER_NAME, user.encode()),
        (Attr.USER_PASSWORD, hide_password(password.encode(), secret, auth)),
        (Attr.NAS_IP_ADDRESS, bytes((127, 0, 0, 1))),
    ]
    return encode_request(Code.ACCESS_REQUEST, ident, attrs, secret, auth)


def accounting_request(
    ident: int, user: str, session: str, status: int = 1, secret: bytes = SECRET
) -> bytes:
    attrs = [
        (Attr.USER_NAME, user.encode()),
        (40, status.to_bytes(4, "big")),  # Acct-Status-Type
        (44, session.encode()),  # Acct-Session-Id
        (Attr.NAS_IP_ADDRESS, bytes((127, 0, 0, 1))),
    ]
    return encode_request(Code.ACCOUNTING_REQUEST, ident, attrs, secret, None, message_auth=False)


def exchange(
    port: int, packet: bytes, timeout: float = 5.0, sock: socket.socket | None = None
) -> bytes | None:
    own = sock is None
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if own:
            s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            return s.recv(4096)
        except TimeoutError:
            return None
    finally:
        if own:
            s.close()


@contextlib.asynccontextmanager
async def proxy_netd(
    postgres: str, redis: str, tmp: Path, realms: str, env: dict[str, str] | None = None
) -> AsyncIterator[RadiusServer]:
    async def write_realms(_st: Seeded) -> None:
        (tmp / "policies" / "radius" / "realms.toml").write_text(realms)

    async with radius_process(
        postgres,
        redis,
        tmp,
        {"NETD_RADIUS_LISTEN": "127.0.0.1", **(env or {})},
        ("p_", "p"),
        write_realms,
        (HOME_SECRET,),
    ) as server:
        yield server
