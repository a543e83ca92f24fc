"""PEAP and EAP-TTLS over TLS 1.3 (RFC 9427), offered with
``radius.eap_tunnel_max_version = "1.3"``, against eapol_test (which keeps them at TLS 1.2
unless its phase1 says ``tls_disable_tlsv1_3=0``): every inner method, MPPE keys from the
exporter with the method's Type as context, checked by eapol_test itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.radius.conftest import RadiusServer
from tests.radius.test_eap_tls_methods import (
    CASES,
    RESUMED,
    assert_ok,
    assert_rejected,
    eapol,
    tunnelled,
)
from tests.radius.test_eap_tls_methods import RADIUS_ENV as TLS12_ENV

RADIUS_ENV = {**TLS12_ENV, "NETD_RADIUS_EAP_TUNNEL_MAX_VERSION": "1.3"}


def _tls13(network: dict[str, str]) -> dict[str, str]:
    return {**network, "phase1": (network.get("phase1", "") + " tls_disable_tlsv1_3=0").strip()}


@pytest.mark.parametrize(
    "network",
    [
        _tls13(tunnelled("PEAP", "auth=MSCHAPV2", "pw1")),
        _tls13(tunnelled("TTLS", "auth=PAP", "pw1")),
    ],
    ids=["peap", "ttls"],
)
def test_tls13_tunnel_reauthentication(
    radius: RadiusServer, tmp_path: Path, network: dict[str, str]
) -> None:
    """eapol_test -r 1 over a TLS 1.3 tunnel: both authentications succeed, the second
    a full one (with eap_tunnel_max_version = "1.3" PEAP and TTLS are not resumed: a
    resumed TLS 1.3 TTLS session skipped phase 2 and was refused)."""
    out = eapol(radius, tmp_path, network, "-r", "1")
    assert_ok(out, runs=2)
    assert RESUMED not in out.stdout
    first, _, second = out.stdout.partition("CTRL-EVENT-EAP-SUCCESS")
    assert "Using TLS version TLSv1.3" in first and "Using TLS version TLSv1.3" in second


@pytest.mark.parametrize(("eap", "phase2"), CASES)
def test_tunnelled_methods_over_tls13(
    radius: RadiusServer, tmp_path: Path, eap: str, phase2: str
) -> None:
    """RFC 9427: PEAP and TTLS over TLS 1.3, the MSK from the exporter with the method's
    Type as context (eapol_test's own MPPE comparison), inner methods as over 1.2."""
    net = _tls13(tunnelled(eap, phase2, "pw1"))
    out = eapol(radius, tmp_path, net)
    assert_ok(out)
    assert "Using TLS version TLSv1.3" in out.stdout, out.stdout[-3000:]
    net["password"] = "wrong"
    assert_rejected(eapol(radius, tmp_path, net, "-n"))
