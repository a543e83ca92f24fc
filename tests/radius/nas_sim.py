"""A NAS that answers Disconnect-/CoA-Requests (RFC 5176), built on pyrad and hashlib."""

from __future__ import annotations

import hashlib
import socket
import threading

from pyrad import packet
from pyrad.dictionary import Dictionary

from daemons.radius.dictionary import SHIPPED
from tests.radius.conftest import SECRET

DICT = Dictionary(str(SHIPPED))


class NasSimulator:
    """Answers Disconnect-/CoA-Requests on loopback the way `mode` says."""

    def __init__(self, secret: bytes = SECRET) -> None:
        self.secret = secret
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.mode = "ack"
        self.seen: list[dict[str, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            # RFC 5176 §2.3: the Request Authenticator, checked here with hashlib alone.
            expected = hashlib.md5(data[:4] + bytes(16) + data[20:] + self.secret).digest()
            if data[4:20] != expected:
                continue
            req = packet.Packet(packet=data, secret=self.secret, dict=DICT)
            names = req.keys()  # pyrad: attribute names (iterating gives codes)
            self.seen.append({"code": req.code, **{k: req[k] for k in names}})
            if self.mode == "silent":
                continue
            reply = req.CreateReply()
            nak = self.mode == "nak"
            reply.code = {
                packet.DisconnectRequest: (packet.DisconnectACK, packet.DisconnectNAK),
                packet.CoARequest: (packet.CoAACK, packet.CoANAK),
            }[req.code][nak]
            if nak:
                reply["Error-Cause"] = 503  # Session-Context-Not-Found
            self.sock.sendto(reply.ReplyPacket(), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
