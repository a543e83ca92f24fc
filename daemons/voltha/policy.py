"""The decisions of the VOLTHA daemon, apart from any I/O. Pure.

- ONU serials in openolt's form (``normalize_serial``).
- The ONU allow-list: VOLTHA activates every ONU it discovers, so an ONU whose serial no
  subscriber is bound to has its serial disabled on its PON port whenever its device is
  enabled (an OLT reboot brings it back as a new, enabled device), and a serial we disabled
  is enabled again once it is bound and its device is there, disabled.
- Optics alarms: a level outside [low, high] raises an alarm; it clears only once the
  level is back inside by the hysteresis, so a level hovering at the threshold does not
  flap.
- Firmware: the image URLs openonu can fetch; what an ImageState says about a download,
  an activation or a commit, and whether a step's own answer already refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from voltha_protos import device_pb2

from daemons.voltha.inventory import DeviceRow

_OPENOLT_SERIAL = re.compile(r"^[A-Za-z0-9]{4}[0-9A-Fa-f]{8}$")


def normalize_serial(serial: str) -> str:
    """An ONU serial as openolt writes it and VOLTHA, ONOS and SADIS compare it (case
    matters to all three): the 4-character vendor id in upper case, the 8 hex digits of the
    vendor-specific part in lower case (voltha-openolt-adapter device_handler.go
    ``stringifySerialNumber``: the vendor id bytes, then ``%x`` of each nibble). Anything
    not of that shape is left as it is."""
    if _OPENOLT_SERIAL.match(serial):
        return serial[:4].upper() + serial[4:].lower()
    return serial


def serial_key(serial: str) -> str:
    """What two spellings of one ONU serial have in common: netd matches bindings to ONU
    devices without regard to case (an operator types a serial from a label), and speaks
    to VOLTHA and ONOS with the device's own spelling."""
    return serial.lower()


@dataclass(frozen=True)
class Refuse:
    serial: str
    olt_id: str
    pon_port: int
    device_id: str


@dataclass(frozen=True)
class Allow:
    serial: str  # as the table holds it (its key)
    olt_id: str
    pon_port: int
    call: bool  # False: the device is enabled already, only the record goes
    device_id: str = ""


def allowlist(
    onus: Iterable[DeviceRow],
    bound: Iterable[str],
    disabled: Mapping[str, tuple[str, int]],
) -> tuple[list[Refuse], list[Allow]]:
    """Serials to disable: an ONU device that is there, enabled, and whose serial no
    subscriber is bound to, whether or not we disabled that serial before (the OLT rebooted,
    and VOLTHA enabled the ONU it found again). Serials to enable again: disabled by us, now
    bound, and their ONU device there: enabled with a call if the device is disabled, only
    forgotten if it is enabled already. A bound serial whose device is not there waits (to
    enable a serial with no ONU device gives NOT_FOUND, which allows nothing)."""
    bound_set = {serial_key(b) for b in bound}
    devices = [o for o in onus if o.kind == "onu" and o.serial]
    refuse = [
        Refuse(o.serial, o.parent_id, o.pon_port, o.id)
        for o in devices
        if serial_key(o.serial) not in bound_set and o.admin_state == "ENABLED"
    ]
    present = {serial_key(o.serial): o for o in devices}
    allow = []
    for serial in disabled:
        key = serial_key(serial)
        onu = present.get(key)
        if key not in bound_set or onu is None:
            continue
        if onu.admin_state == "DISABLED":
            allow.append(Allow(serial, onu.parent_id, onu.pon_port, True, onu.id))
        elif onu.admin_state == "ENABLED":
            allow.append(Allow(serial, onu.parent_id, onu.pon_port, False, onu.id))
    return refuse, allow


def alarm(
    value: float, active: bool, low: float, high: float, hysteresis: float, name: str
) -> tuple[str, bool] | None:
    """For one level reading and whether ``name``_low/_high is active: (alarm, raise?) to
    change, or None. ``active`` covers either side: call once per side."""
    if name.endswith("_low"):
        if not active and value < low:
            return name, True
        if active and value >= low + hysteresis:
            return name, False
    elif name.endswith("_high"):
        if not active and value > high:
            return name, True
        if active and value <= high - hysteresis:
            return name, False
    return None


_DOWNLOAD = device_pb2.ImageState.ImageDownloadState
_ACTIVATION = device_pb2.ImageState.ImageActivationState
_REASON = device_pb2.ImageState.ImageFailureReason


@dataclass(frozen=True)
class Step:
    done: bool
    failed: bool
    detail: str


IMAGE_SCHEMES = ("http",)


def image_url_problem(url: str) -> str | None:
    """Why openonu cannot download an image from ``url``, or None. openonu's
    ``DownloadOnuImage`` refuses any URL containing "https:"; its file download manager
    fetches with Go's HTTP client after a HEAD, so tftp, sftp or ftp never work."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme.lower() not in IMAGE_SCHEMES or "https:" in url:
        return (
            "only http:// URLs: openonu downloads ONU images over plain HTTP and refuses "
            "https, tftp, sftp and any other scheme"
        )
    if not parts.hostname:
        return "no host in the URL"
    return None


def _name(enum: Any, value: int) -> str:
    try:
        return str(enum.Name(value))
    except ValueError:
        return f"UNKNOWN_{int(value)}"


def _detail(state: Any) -> tuple[str, str, str]:
    return (
        _name(_DOWNLOAD, state.download_state),
        _name(_ACTIVATION, state.image_state),
        _name(_REASON, state.reason),
    )


def no_answer(state: Any) -> bool:
    """The state rw_core gives when it got no answer from the ONU adapter (its call timed
    out, or the adapter knows no handler for the device right now, as while the ONU reboots
    to activate an image): DOWNLOAD_UNKNOWN / UNKNOWN_ERROR / IMAGE_UNKNOWN (voltha-go
    manager_nbi.go GetImageStatus). It says nothing about the step: ask again."""
    return _detail(state) == ("DOWNLOAD_UNKNOWN", "IMAGE_UNKNOWN", "UNKNOWN_ERROR")


def refused(step: str, state: Any) -> str | None:
    """Whether the answer to the step's own request (DownloadImageToDevice, ActivateImage,
    CommitImage) already refuses it: openonu and rw_core put their refusals in the answer,
    not in an error (a https or unreachable URL, a vendor mismatch, an ONU with no handler
    in the adapter). The detail, or None."""
    download, image, reason = _detail(state)
    detail = f"{download} {image} {reason}"
    if download == "DOWNLOAD_FAILED" or image.endswith("_ABORTED"):
        return detail
    if reason not in ("NO_ERROR", "UNKNOWN_0") and step == "download":
        return detail
    return None


def image_step(step: str, state: Any) -> Step:
    """How far ``step`` (download, activate, commit) got, from one device's ImageState."""
    download, image, reason = _detail(state)
    detail = f"{download} {image} {reason}"
    if no_answer(state):
        return Step(False, False, detail + " (no answer from the ONU adapter)")
    failed_download = download in ("DOWNLOAD_FAILED", "DOWNLOAD_UNSUPPORTED", "DOWNLOAD_CANCELLED")
    if step == "download":
        return Step(download == "DOWNLOAD_SUCCEEDED", failed_download, detail)
    if step == "activate":
        return Step(
            image in ("IMAGE_ACTIVE", "IMAGE_COMMITTING", "IMAGE_COMMITTED"),
            image in ("IMAGE_ACTIVATION_ABORTED", "IMAGE_ACTIVATION_ABORTING")
            or (reason not in ("NO_ERROR",) and image not in ("IMAGE_ACTIVATING",)),
            detail,
        )
    return Step(
        image == "IMAGE_COMMITTED",
        image in ("IMAGE_COMMIT_ABORTED", "IMAGE_COMMIT_ABORTING")
        or (reason not in ("NO_ERROR",) and image not in ("IMAGE_COMMITTING",)),
        detail,
    )


def resume_point(state: Any, activate: bool, commit: bool) -> tuple[str, bool]:
    """Where an ONU's upgrade picks up when its job is resumed (the daemon running it was
    killed), from the ONU's ImageState for the job's version: (step, under way). ``step`` is
    download, activate, commit or done; ``under way``: the ONU is carrying the step out
    already, so it is waited for, not asked for again (a second DownloadImageToDevice would
    restart the transfer, a second activation reboot the ONU once more). Anything else (no
    state for the version, a failure, an abort) starts again from the download."""
    download = _DOWNLOAD.Name(state.download_state)
    image = _ACTIVATION.Name(state.image_state)
    if download == "DOWNLOAD_STARTED" or image == "IMAGE_DOWNLOADING":
        return "download", True
    if download != "DOWNLOAD_SUCCEEDED":
        return "download", False
    after_download = "activate" if activate else "commit" if commit else "done"
    return {
        "IMAGE_INACTIVE": (after_download, after_download == "done"),
        "IMAGE_ACTIVATING": ("activate", True),
        "IMAGE_ACTIVE": ("commit", False) if commit else ("done", True),
        "IMAGE_COMMITTING": ("commit", True),
        "IMAGE_COMMITTED": ("done", True),
    }.get(image, ("download", False))
