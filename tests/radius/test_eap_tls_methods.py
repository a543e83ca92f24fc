"""EAP-TLS, PEAPv0/EAP-MSCHAPv2 and EAP-TTLS (PAP, CHAP, MS-CHAPv2, EAP-MSCHAPv2) against
wpa_supplicant's eapol_test (issue 29): every method authenticates with the MPPE keys
eapol_test derives itself (``MPPE keys OK: 1 mismatch: 0``), wrong passwords and bad
client certificates are refused."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.radius.conftest import SECRET, RadiusServer
from tests.radius.eap_pki import make_pki
from tests.radius.test_workers import second_daemon_env
from tests.support import NetdProcess, free_port, free_udp_port, tool

_root = Path(os.environ.get("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir()))
_root.mkdir(parents=True, exist_ok=True)
PKI = make_pki(Path(tempfile.mkdtemp(prefix="eap-pki-", dir=_root)))
RADIUS_ENV = {
    "NETD_RADIUS_EAP_CERT": str(PKI.server_cert),
    "NETD_RADIUS_EAP_KEY": str(PKI.server_key),
    "NETD_RADIUS_EAP_CA": str(PKI.ca),
    "NETD_RADIUS_EAP_CRL": str(PKI.crl),
    "NETD_RADIUS_EAP_FRAGMENT_SIZE": "400",  # several fragments each way
}
ANON = "anonymous@example.net"


def eapol(
    radius: RadiusServer, tmp: Path, network: dict[str, str], *extra: str, name: str = "eap"
) -> subprocess.CompletedProcess[str]:
    body = "".join(
        f"\t{k}={v}\n"
        if k in ("eapol_flags", "key_mgmt", "eap", "fragment_size")
        else f'\t{k}="{v}"\n'
        for k, v in network.items()
    )
    conf = tmp / f"{name}.conf"
    conf.write_text("network={\n\tkey_mgmt=IEEE8021X\n\teapol_flags=0\n" + body + "}\n")
    args = [tool("eapol_test", "eapoltest"), "-c", str(conf), "-a", "127.0.0.1"]
    args += ["-p", str(radius.port), "-s", SECRET.decode(), "-t", "10", *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def assert_ok(out: subprocess.CompletedProcess[str], runs: int = 1) -> None:
    assert out.returncode == 0, out.stdout[-4000:]
    assert out.stdout.count("CTRL-EVENT-EAP-SUCCESS") == runs
    assert f"MPPE keys OK: {runs}  mismatch: 0" in out.stdout, out.stdout[-2000:]


def assert_rejected(out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode != 0, out.stdout[-3000:]
    assert "CTRL-EVENT-EAP-SUCCESS" not in out.stdout
    assert "Access-Reject" in out.stdout or "EAP-FAILURE" in out.stdout, out.stdout[-3000:]


def tunnelled(eap: str, phase2: str, password: str, user: str = "alice") -> dict[str, str]:
    net = {
        "eap": eap,
        "identity": user,
        "anonymous_identity": ANON,
        "password": password,
        "ca_cert": str(PKI.ca),
        "phase2": phase2,
    }
    if eap == "PEAP":
        net["phase1"] = "peapver=0"
    return net


CASES = [
    ("PEAP", "auth=MSCHAPV2"),
    ("TTLS", "auth=PAP"),
    ("TTLS", "auth=CHAP"),
    ("TTLS", "auth=MSCHAPV2"),
    ("TTLS", "autheap=MSCHAPV2"),
]


@pytest.mark.parametrize(("eap", "phase2"), CASES)
def test_tunnelled_methods(radius: RadiusServer, tmp_path: Path, eap: str, phase2: str) -> None:
    assert_ok(eapol(radius, tmp_path, tunnelled(eap, phase2, "pw1")))
    assert_rejected(eapol(radius, tmp_path, tunnelled(eap, phase2, "wrong"), "-n"))


def tls(stem: str, tls13: bool = False) -> dict[str, str]:
    cert, key = PKI.client(stem)
    net = {
        "eap": "TLS",
        "identity": "alice",
        "ca_cert": str(PKI.ca),
        "client_cert": str(cert),
        "private_key": str(key),
    }
    net["phase1"] = "tls_disable_tlsv1_3=0" if tls13 else "tls_disable_tlsv1_3=1"
    return net


@pytest.mark.parametrize("tls13", [False, True], ids=["tls1.2", "tls1.3"])
def test_eap_tls(radius: RadiusServer, tmp_path: Path, tls13: bool) -> None:
    out = eapol(radius, tmp_path, tls("alice", tls13))
    assert_ok(out)
    assert ("Using TLS version TLSv1.3" in out.stdout) == tls13


@pytest.mark.parametrize("stem", ["expired", "revoked", "stranger"])
def test_eap_tls_refuses_bad_client_certificates(
    radius: RadiusServer, tmp_path: Path, stem: str
) -> None:
    assert_rejected(eapol(radius, tmp_path, tls(stem), "-n"))


RESUMED = "Handshake finished - resumed=1"


@pytest.mark.parametrize(
    "network",
    [
        tunnelled("PEAP", "auth=MSCHAPV2", "pw1"),
        tunnelled("TTLS", "auth=PAP", "pw1"),
        tls("alice"),
        tls("alice", tls13=True),
    ],
    ids=["peap", "ttls", "tls1.2", "tls1.3"],
)
def test_second_authentication_resumes(
    radius: RadiusServer, tmp_path: Path, network: dict[str, str]
) -> None:
    """eapol_test -r 1 authenticates twice in one run; the second resumes the TLS session
    (tickets or the session cache, within radius.eap_resumption_lifetime)."""
    out = eapol(radius, tmp_path, network, "-r", "1")
    assert_ok(out, runs=2)
    first, _, second = out.stdout.partition("CTRL-EVENT-EAP-SUCCESS")
    assert RESUMED not in first and RESUMED in second, out.stdout[-3000:]
    if network["eap"] in ("PEAP", "TTLS"):  # the inner method is skipped on resumption
        assert "EAP-MSCHAPV2" in first or "Phase 2" in first
        assert "EAP-MSCHAPV2" not in second and "phase2 - auth" not in second.lower()


async def test_each_method_through_two_workers(radius: RadiusServer, tmp_path: Path) -> None:
    """``radius.workers = 2``: the exchanges are pinned to the worker that began them
    (SO_REUSEPORT hashes the NAS's address and port); eapol_test runs, each from its own
    port, spread over both workers and every one authenticates."""
    port, status = free_udp_port(), free_port()
    env = second_daemon_env(
        radius,
        port,
        status,
        tmp_path,
        {
            **RADIUS_ENV,
            "NETD_RADIUS_WORKERS": "2",
            "NETD_INSTANCE_NAME": "eap-workers",
            "NETD_LIFECYCLE_HEARTBEAT_INTERVAL": "0.3",
        },
    )
    proc = NetdProcess(["radius"], env, tmp_path)
    try:
        proc.wait_http(f"http://127.0.0.1:{status}/health/ready")
        # The instance is ready once it has bound; its worker binds after. A socket joining
        # the SO_REUSEPORT group re-maps the hash, so an exchange begun before it would move
        # (eap_other_worker, the supplicant starts again): begin once both have beaten.
        deadline = time.monotonic() + 30
        while True:
            beats = await radius.cache.list_heartbeats()
            if len({b["pid"] for b in beats if b["instance"] == "eap-workers"}) >= 2:
                break
            assert time.monotonic() < deadline, "the second worker never beat"
            await asyncio.sleep(0.2)
        two = dataclasses.replace(radius, port=port)
        networks = [
            *(tunnelled(eap, phase2, "pw1") for eap, phase2 in CASES),
            tls("alice"),
            tls("alice", tls13=True),
        ]
        pids: set[int] = set()
        for round_ in range(6):
            with ThreadPoolExecutor(4) as pool:
                runs = pool.map(
                    lambda i_net: eapol(two, tmp_path, i_net[1], name=i_net[0]),
                    ((f"w{round_}-{i}", net) for i, net in enumerate(networks)),
                )
                for out in runs:
                    assert_ok(out)
            time.sleep(0.7)  # a heartbeat or two
            beats = await radius.cache.list_heartbeats()
            pids = {
                b["pid"]
                for b in beats
                if b["instance"] == "eap-workers" and b["counters"].get("handled", 0) > 0
            }
            if len(pids) == 2:
                break
        assert len(pids) == 2, f"only {pids} answered"
    finally:
        proc.stop()


def _lookups(radius: RadiusServer) -> float:
    return sum(
        radius.metric("netd_radius_subscriber_lookups_total", source=source)
        for source in ("redis", "redis_negative", "postgres")
    )


@pytest.mark.parametrize(
    "network",
    [tunnelled("PEAP", "auth=MSCHAPV2", "pw1"), tunnelled("TTLS", "auth=PAP", "pw1"), tls("alice")],
    ids=["peap", "ttls", "tls"],
)
def test_one_subscriber_lookup_an_authentication(
    radius: RadiusServer, tmp_path: Path, network: dict[str, str]
) -> None:
    """A TLS-based exchange's round trips (about ten, more with fragments) need no
    subscriber record: only the inner or certificate identity is looked up, once (the
    outer identity, here anonymous@example.net, is never looked up)."""
    before = _lookups(radius)
    assert_ok(eapol(radius, tmp_path, network))
    assert _lookups(radius) - before == 1


def test_tunnel_stays_at_tls12_by_default(radius: RadiusServer, tmp_path: Path) -> None:
    """Without radius.eap_tunnel_max_version, a supplicant that offers TLS 1.3 for PEAP
    gets TLS 1.2 (test_eap_tunnel_tls13.py: with it)."""
    net = {**tunnelled("PEAP", "auth=MSCHAPV2", "pw1"), "phase1": "tls_disable_tlsv1_3=0"}
    out = eapol(radius, tmp_path, net)
    assert_ok(out)
    assert "Using TLS version TLSv1.2" in out.stdout, out.stdout[-3000:]
