"""The VOLTHA daemon's pure parts: inventory diffs, the allow-list, alarm hysteresis and
firmware step states, on the wheel's own message types."""

from __future__ import annotations

from voltha_protos import common_pb2, device_pb2

from daemons.voltha import inventory, policy

ADMIN, OPER, CONN = common_pb2.AdminState, common_pb2.OperStatus, common_pb2.ConnectStatus


def _olt(oper: int = OPER.ACTIVE) -> device_pb2.Device:
    return device_pb2.Device(
        id="olt-1",
        type="openolt",
        root=True,
        serial_number="EC1234",
        host_and_port="10.0.0.1:9191",
        admin_state=ADMIN.ENABLED,
        oper_status=oper,
        connect_status=CONN.REACHABLE,
    )


def _onu(serial: str, oper: int, admin: int = ADMIN.ENABLED) -> device_pb2.Device:
    d = device_pb2.Device(
        id=f"onu-{serial}",
        type="brcm_openomci_onu",
        root=False,
        parent_id="olt-1",
        parent_port_no=536870912,
        serial_number=serial,
        admin_state=admin,
        oper_status=oper,
        connect_status=CONN.REACHABLE,
        reason="initial-mib-downloaded",
    )
    d.proxy_address.onu_id = 1
    return d


def _ports() -> dict[str, list[device_pb2.Port]]:
    return {
        "olt-1": [
            device_pb2.Port(
                port_no=1048576,
                label="nni-1048576",
                type=device_pb2.Port.ETHERNET_NNI,
                admin_state=ADMIN.ENABLED,
                oper_status=OPER.ACTIVE,
            ),
            device_pb2.Port(
                port_no=536870912,
                label="pon-536870912",
                type=device_pb2.Port.PON_OLT,
                admin_state=ADMIN.ENABLED,
                oper_status=OPER.ACTIVE,
            ),
        ]
    }


def test_first_sync_adds_then_nothing_changes() -> None:
    snap = inventory.snapshot("lab", [_olt(), _onu("BRCM0001", OPER.DISCOVERED)], _ports())
    first = inventory.diff(inventory.Snapshot(), snap)
    assert [e.kind for e in first.events] == ["voltha.olt.added", "voltha.onu.discovered"]
    assert len(first.upsert_devices) == 2 and len(first.upsert_ports) == 2
    again = inventory.snapshot("lab", [_olt(), _onu("BRCM0001", OPER.DISCOVERED)], _ports())
    assert not inventory.diff(snap, again)  # nothing changed: nothing to write


def test_state_changes_and_removals() -> None:
    before = inventory.snapshot("lab", [_olt(), _onu("BRCM0001", OPER.ACTIVATING)], _ports())
    ports = _ports()
    ports["olt-1"][1].oper_status = OPER.FAILED
    after = inventory.snapshot("lab", [_olt(), _onu("BRCM0001", OPER.ACTIVE)], ports)
    d = inventory.diff(before, after)
    assert [(e.kind, e.subject) for e in d.events] == [
        ("voltha.onu.state", "BRCM0001"),
        ("voltha.port.state", "EC1234/pon-536870912"),
    ]
    assert d.events[0].data["changed"] == {"oper_status": ["ACTIVATING", "ACTIVE"]}
    gone = inventory.diff(after, inventory.snapshot("lab", [_olt()], ports))
    assert [e.kind for e in gone.events] == ["voltha.onu.removed"]
    assert gone.delete_devices == ["onu-BRCM0001"]


def test_allowlist_both_ways() -> None:
    onus = [_olt(), _onu("BRCM0001", OPER.ACTIVE), _onu("BRCM0002", OPER.ACTIVE)]
    snap = inventory.snapshot("lab", onus, _ports())
    refuse, allow = policy.allowlist(snap.devices.values(), {"BRCM0001"}, {})
    assert [(r.serial, r.olt_id, r.pon_port) for r in refuse] == [("BRCM0002", "olt-1", 536870912)]
    assert allow == []
    disabled = {"BRCM0002": ("olt-1", 536870912)}
    # Disabled by us and disabled in VOLTHA: not refused twice.
    off = [_olt(), _onu("BRCM0001", OPER.ACTIVE), _onu("BRCM0002", OPER.ACTIVE, ADMIN.DISABLED)]
    snap = inventory.snapshot("lab", off, _ports())
    assert policy.allowlist(snap.devices.values(), {"BRCM0001"}, disabled) == ([], [])
    # Once bound, enabled again (a call: its device is disabled).
    refuse, allow = policy.allowlist(snap.devices.values(), {"BRCM0001", "BRCM0002"}, disabled)
    assert refuse == [] and [(a.serial, a.call) for a in allow] == [("BRCM0002", True)]


def test_allowlist_looks_at_the_admin_state_again() -> None:
    disabled = {"BRCM0002": ("olt-1", 536870912)}
    # The OLT rebooted: the ONU is a new device, enabled. Disabled by us or not, refused.
    again = inventory.snapshot("lab", [_olt(), _onu("BRCM0002", OPER.ACTIVE)], _ports())
    refuse, _ = policy.allowlist(again.devices.values(), set(), disabled)
    assert [r.serial for r in refuse] == ["BRCM0002"]
    # Bound while its device is gone: nothing to enable yet (it would be NOT_FOUND).
    empty = inventory.snapshot("lab", [_olt()], _ports())
    assert policy.allowlist(empty.devices.values(), {"BRCM0002"}, disabled) == ([], [])
    # Bound, and found again enabled: only the record goes, no call.
    _, allow = policy.allowlist(again.devices.values(), {"BRCM0002"}, disabled)
    assert [(a.serial, a.call) for a in allow] == [("BRCM0002", False)]


def test_serials_in_openolts_form() -> None:
    assert policy.normalize_serial("ALPHE3D1CEA3") == "ALPHe3d1cea3"
    assert policy.normalize_serial("alphe3d1cea3") == "ALPHe3d1cea3"
    assert policy.normalize_serial("ALPHe3d1cea3") == "ALPHe3d1cea3"
    assert policy.normalize_serial("BRCM0001") == "BRCM0001"  # not that shape: as given
    assert policy.normalize_serial("ALPHXYZ12345") == "ALPHXYZ12345"
    onus = [_olt(), _onu("ALPHe3d1cea3", OPER.ACTIVE)]
    snap = inventory.snapshot("lab", onus, _ports())
    assert policy.allowlist(snap.devices.values(), {"ALPHE3D1CEA3"}, {}) == ([], [])
    # A vendor id openolt reports as the ONU gives it, lower case included: still matched.
    odd = inventory.snapshot("lab", [_olt(), _onu("abcd0000beef", OPER.ACTIVE)], _ports())
    assert policy.normalize_serial("abcd0000beef") == "ABCD0000beef"
    assert policy.allowlist(odd.devices.values(), {"ABCD0000beef"}, {}) == ([], [])


def test_image_urls_openonu_can_fetch() -> None:
    assert policy.image_url_problem("http://files.lab/onu.bin") is None
    assert policy.image_url_problem("HTTP://files.lab/onu.bin") is None
    for url in (
        "https://files.lab/onu.bin",
        "tftp://files.lab/onu.bin",
        "sftp://files.lab/onu.bin",
        "ftp://files.lab/onu.bin",
        "http://files.lab/redirect?to=https://x",
        "files.lab/onu.bin",
        "http:///onu.bin",
    ):
        assert policy.image_url_problem(url) is not None, url


def test_refusals_in_the_answer_and_no_answer() -> None:
    S = device_pb2.ImageState
    vendor = S(
        download_state=S.DOWNLOAD_FAILED,
        reason=S.VENDOR_DEVICE_MISMATCH,
        image_state=S.IMAGE_UNKNOWN,
    )
    assert "VENDOR_DEVICE_MISMATCH" in (policy.refused("download", vendor) or "")
    started = S(download_state=S.DOWNLOAD_STARTED, reason=S.NO_ERROR)
    assert policy.refused("download", started) is None
    aborted = S(
        download_state=S.DOWNLOAD_UNKNOWN,
        reason=S.UNKNOWN_ERROR,
        image_state=S.IMAGE_ACTIVATION_ABORTED,
    )
    assert policy.refused("activate", aborted) is not None
    activating = S(download_state=S.DOWNLOAD_SUCCEEDED, image_state=S.IMAGE_ACTIVATING)
    assert policy.refused("activate", activating) is None
    # rw_core's "the adapter did not answer": neither done nor failed, at any step.
    silent = S(
        download_state=S.DOWNLOAD_UNKNOWN, reason=S.UNKNOWN_ERROR, image_state=S.IMAGE_UNKNOWN
    )
    assert policy.no_answer(silent)
    for step in ("download", "activate", "commit"):
        got = policy.image_step(step, silent)
        assert not got.done and not got.failed, step


def test_alarm_hysteresis() -> None:
    low, high, hyst = -27.0, -8.0, 1.0
    assert policy.alarm(-26.9, False, low, high, hyst, "onu_rx_low") is None
    assert policy.alarm(-27.5, False, low, high, hyst, "onu_rx_low") == ("onu_rx_low", True)
    assert policy.alarm(-26.5, True, low, high, hyst, "onu_rx_low") is None  # inside, not by 1 dB
    assert policy.alarm(-25.9, True, low, high, hyst, "onu_rx_low") == ("onu_rx_low", False)
    assert policy.alarm(-7.0, False, low, high, hyst, "onu_rx_high") == ("onu_rx_high", True)
    assert policy.alarm(-8.5, True, low, high, hyst, "onu_rx_high") is None
    assert policy.alarm(-9.5, True, low, high, hyst, "onu_rx_high") == ("onu_rx_high", False)


def test_image_steps() -> None:
    S = device_pb2.ImageState
    started = S(download_state=S.DOWNLOAD_STARTED, image_state=S.IMAGE_INACTIVE)
    assert policy.image_step("download", started) == policy.Step(
        False, False, started and policy.image_step("download", started).detail
    )
    ok = S(download_state=S.DOWNLOAD_SUCCEEDED, image_state=S.IMAGE_INACTIVE)
    assert policy.image_step("download", ok).done
    failed = S(download_state=S.DOWNLOAD_FAILED, reason=S.INVALID_URL)
    step = policy.image_step("download", failed)
    assert step.failed and "INVALID_URL" in step.detail
    assert policy.image_step(
        "activate", S(download_state=S.DOWNLOAD_SUCCEEDED, image_state=S.IMAGE_ACTIVE)
    ).done
    assert policy.image_step(
        "commit", S(download_state=S.DOWNLOAD_SUCCEEDED, image_state=S.IMAGE_COMMITTED)
    ).done
    aborted = S(download_state=S.DOWNLOAD_SUCCEEDED, image_state=S.IMAGE_ACTIVATION_ABORTED)
    assert policy.image_step("activate", aborted).failed
