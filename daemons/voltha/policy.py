"""The decisions of the VOLTHA daemon, apart from any I/O. Pure.

- The ONU allow-list: VOLTHA activates every ONU it discovers, so an ONU whose serial no
  subscriber is bound to has its serial disabled on its PON port, and a serial we disabled
  is enabled again once it is bound.
- Optics alarms: a level outside [low, high] raises an alarm; it clears only once the
  level is back inside by the hysteresis, so a level hovering at the threshold does not
  flap.
- Firmware steps: what an ImageState says about a download, an activation or a commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from voltha_protos import device_pb2

from daemons.voltha.inventory import DeviceRow


@dataclass(frozen=True)
class Refuse:
    serial: str
    olt_id: str
    pon_port: int
    device_id: str


@dataclass(frozen=True)
class Allow:
    serial: str
    olt_id: str
    pon_port: int


def allowlist(
    onus: Iterable[DeviceRow],
    bound: Iterable[str],
    disabled: Mapping[str, tuple[str, int]],
) -> tuple[list[Refuse], list[Allow]]:
    """Serials to disable (present, unbound, not disabled by us yet) and to enable again
    (disabled by us, now bound)."""
    bound_set = set(bound)
    refuse = [
        Refuse(o.serial, o.parent_id, o.pon_port, o.id)
        for o in onus
        if o.kind == "onu" and o.serial and o.serial not in bound_set and o.serial not in disabled
    ]
    allow = [Allow(s, olt, pon) for s, (olt, pon) in disabled.items() if s in bound_set]
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


def image_step(step: str, state: Any) -> Step:
    """How far ``step`` (download, activate, commit) got, from one device's ImageState."""
    download = _DOWNLOAD.Name(state.download_state)
    image = _ACTIVATION.Name(state.image_state)
    reason = _REASON.Name(state.reason)
    detail = f"{download} {image} {reason}"
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
