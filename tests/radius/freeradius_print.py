"""radclient as an independent encoder and decoder (issue 21).

``exchange`` runs ``radclient -x`` against a one-shot UDP server on 127.0.0.1: the server
keeps the bytes radclient sent and answers with a reply whose attributes the test chose,
so a test can compare netd's decoding of both packets with what radclient prints for the
same bytes (its dictionaries are FreeRADIUS's own, in /usr/share/freeradius).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from daemons.radius import codec

SECRET = b"print-s3cret"
_LINE = re.compile(r"^\t(\S+) = (.*)$")


@dataclass
class Exchange:
    sent: bytes = b""
    sent_printed: list[tuple[str, str]] = field(default_factory=list)
    received_printed: list[tuple[str, str]] = field(default_factory=list)
    output: str = ""


def available() -> bool:
    return shutil.which("radclient") is not None


def exchange(
    command: str,
    request_text: str,
    reply_code: int,
    reply_attrs: Sequence[tuple[int, bytes]] = (),
    secret: bytes = SECRET,
) -> Exchange:
    """One request from radclient, one crafted reply. Bounded: 5 s."""
    out = Exchange()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]

        def serve() -> None:
            try:
                data, addr = sock.recvfrom(4096)
            except OSError:
                return
            out.sent = data
            request = codec.decode(data)
            sock.sendto(codec.encode_reply(reply_code, request, reply_attrs, secret), addr)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        proc = subprocess.run(
            [
                "radclient",
                "-x",
                "-r",
                "1",
                "-t",
                "3",
                f"127.0.0.1:{port}",
                command,
                secret.decode(),
            ],
            input=request_text.encode(),
            capture_output=True,
            timeout=10,
        )
        thread.join(5)
    out.output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    section: list[tuple[str, str]] | None = None
    for line in out.output.splitlines():
        if line.startswith("Sent "):
            section = out.sent_printed
        elif line.startswith("Received "):
            section = out.received_printed
        elif section is not None and (m := _LINE.match(line)):
            section.append((m.group(1), m.group(2)))
    return out
