"""SSH host keys: what a device offers, checked against the keys pinned for it (one per key
type). Synchronous (paramiko); the job engine calls these in its thread pool.

Key types and the algorithms that use them: an RSA key ("ssh-rsa" in known_hosts) is used
with the signature algorithms rsa-sha2-512 and rsa-sha2-256 (RFC 8332); current servers
(OpenSSH 8.8 and later) refuse ssh-rsa, its SHA-1 form. ECDSA (nistp256/384/521) and
ed25519 keys have one algorithm each.

The check (``check``): the key the device offers under paramiko's default preferences
(the same ones netmiko and ncclient negotiate with, so it is the key they will see) is
- of a pinned type: it must be that key, else ``host-key-changed``;
- of a new type: the device is asked again for the types pinned (only those allowed); if it
  still has one of them unchanged, the new key is learnt (pinned beside it); if it has none
  or a different one, ``host-key-changed``.
Nothing is pinned: the key is learnt (trust on first use).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko

from daemons.devices.errors import DeviceError

#: The host-key algorithms that use a key of each type, strongest first.
ALGORITHMS: dict[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}


def key_type(key: str) -> str:
    return key.split(maxsplit=1)[0]


def same_key(a: str, b: str) -> bool:
    return a.split()[:2] == b.split()[:2]


def offered(
    address: str, port: int, timeout: float, types: Sequence[str] | None = None
) -> str | None:
    """The host key the device offers now ("type base64"), negotiated with paramiko's
    defaults or, given ``types``, allowing only the algorithms of those key types (None:
    the device has no key of any of them)."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise DeviceError("unreachable", f"{address}:{port}: {exc.strerror or exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        if types is not None:
            allowed = [a for t in types for a in ALGORITHMS.get(t, (t,))]
            opts = transport.get_security_options()
            usable = [a for a in allowed if a in opts.key_types]
            if not usable:
                return None
            opts.key_types = usable
        try:
            transport.start_client(timeout=timeout)
        except paramiko.ssh_exception.IncompatiblePeer:
            if types is not None:
                return None
            raise
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise DeviceError("unreachable", f"{address}:{port}: no SSH: {exc}") from None
    finally:
        transport.close()


@dataclass(frozen=True)
class Checked:
    key: str  # the key the sessions will see
    learnt: bool  # a new key, to be pinned (first contact, or a new type beside a pinned one)
    first: bool  # nothing was pinned before


def check(name: str, address: str, port: int, timeout: float, pinned: Sequence[str]) -> Checked:
    """The device's key checked against ``pinned``; DeviceError host-key-changed (with the
    key offered in ``details['offered']``) when it does not hold up."""
    key = offered(address, port, timeout)
    assert key is not None
    if not pinned:
        return Checked(key, True, True)
    by_type = {key_type(k): k for k in pinned}
    mine = by_type.get(key_type(key))
    if mine is not None:
        if same_key(mine, key):
            return Checked(key, False, False)
        raise _changed(name, key)
    # A type not pinned: learnt only beside a pinned key the device still has.
    again = offered(address, port, timeout, list(by_type))
    if again is not None and any(same_key(again, k) for k in pinned):
        return Checked(key, True, False)
    raise _changed(name, key)


def _changed(name: str, key: str) -> DeviceError:
    return DeviceError(
        "host-key-changed",
        f"{name}: the SSH host key changed (now {key_type(key)}); refused until an operator "
        "accepts it",
        {"offered": key},
    )


def known_hosts_line(address: str, port: int, keys: Sequence[str]) -> str:
    host = address if port == 22 else f"[{address}]:{port}"
    return "".join(f"{host} {' '.join(k.split()[:2])}\n" for k in keys)


def matches(server_key: paramiko.PKey, keys: Sequence[str]) -> bool:
    """Whether the key a session negotiated is one of ``keys``."""
    return any(
        key_type(k) == server_key.get_name() and k.split()[1] == server_key.get_base64()
        for k in keys
    )
