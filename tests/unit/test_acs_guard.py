"""acs/guard.py: where connection requests may go and who may auto-register (pure)."""

from __future__ import annotations

import pytest

from daemons.acs import guard

DEFAULT = guard.Reach(internal=guard.parse_networks(["10.0.0.0/8", "fd00::/8"]))
NETWORKS = guard.Reach(
    cpe_networks=guard.parse_networks(["100.64.0.0/10", "2001:db8::/32"]),
    internal=guard.parse_networks(["100.64.99.0/24"]),
)
LAB = guard.Reach(allow_loopback=True)


@pytest.mark.parametrize(
    ("reach", "url", "inform", "word"),
    [
        (DEFAULT, "http://198.51.100.7:7547/cr", "198.51.100.7", None),
        (DEFAULT, "http://[2001:db8::7]:7547/", "2001:db8::7", None),
        (DEFAULT, "http://198.51.100.7:7547/", "::ffff:198.51.100.7", None),  # mapped
        (DEFAULT, "http://198.51.100.8:7547/", "198.51.100.7", "not-inform-address"),
        (DEFAULT, "http://198.51.100.7:7547/", None, "not-inform-address"),
        (DEFAULT, "http://127.0.0.1:8080/", "127.0.0.1", "loopback"),
        (DEFAULT, "http://[::1]:8080/", "::1", "loopback"),
        (DEFAULT, "http://[::ffff:127.0.0.1]:8080/", "127.0.0.1", "loopback"),
        (DEFAULT, "http://169.254.169.254/latest/", "169.254.169.254", "link-local"),
        (DEFAULT, "http://[fe80::1%25eth0]/", "fe80::1", "link-local"),
        (DEFAULT, "http://0.0.0.0:8080/", "0.0.0.0", "reserved"),
        (DEFAULT, "http://224.0.0.1/", "224.0.0.1", "reserved"),
        (DEFAULT, "http://240.0.0.1/", "240.0.0.1", "reserved"),
        (DEFAULT, "http://10.1.2.3/", "10.1.2.3", "internal"),
        (DEFAULT, "http://[fd00::5]/", "fd00::5", "internal"),
        (DEFAULT, "http://localhost:8080/", "127.0.0.1", "not-an-address"),
        (DEFAULT, "http://2130706433/", "127.0.0.1", "not-an-address"),  # 127.0.0.1 as a number
        (DEFAULT, "http://cpe.example/", "198.51.100.7", "not-an-address"),
        (DEFAULT, "http://u:p@198.51.100.7/", "198.51.100.7", "bad-url"),
        (DEFAULT, "ftp://198.51.100.7/", "198.51.100.7", "bad-url"),
        (DEFAULT, "http://198.51.100.7:99999/", "198.51.100.7", "bad-url"),
        (NETWORKS, "http://100.64.1.2/", "203.0.113.1", None),  # behind CGNAT: any in the nets
        (NETWORKS, "http://[2001:db8::9]/", None, None),
        (NETWORKS, "http://100.64.99.5/", "100.64.99.5", "internal"),
        (NETWORKS, "http://198.51.100.7/", "198.51.100.7", "not-cpe-network"),
        (LAB, "http://127.0.0.1:9/", "127.0.0.1", None),
        (LAB, "http://127.0.0.2:9/", "127.0.0.1", "not-inform-address"),
    ],
)
def test_connection_request_targets(
    reach: guard.Reach, url: str, inform: str | None, word: str | None
) -> None:
    why = guard.url_refused(reach, url, inform)
    if word is None:
        assert why is None
    else:
        assert why is not None and why.split(":", 1)[0] == word, why


def test_auto_registration_limits() -> None:
    open_ = guard.Limits()
    assert guard.may_register(open_, "A1B2C3", "X", None) is None
    limits = guard.Limits(
        frozenset({"00259E"}), frozenset({"HG8245"}), guard.parse_networks(["100.64.0.0/10"])
    )
    assert guard.may_register(limits, "00259e", "HG8245", "100.64.3.4") is None
    assert "auto_register_ouis" in str(guard.may_register(limits, "A1B2C3", "HG8245", "100.64.3.4"))
    assert "product_classes" in str(guard.may_register(limits, "00259E", "Rogue", "100.64.3.4"))
    assert "networks" in str(guard.may_register(limits, "00259E", "HG8245", "198.51.100.1"))
    assert "networks" in str(guard.may_register(limits, "00259E", "HG8245", None))
