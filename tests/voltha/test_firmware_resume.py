"""Where an ONU's upgrade picks up when its firmware job is resumed after its daemon died:
a step the ONU has under way is waited for, not asked again; a failure starts over."""

from __future__ import annotations

import pytest
from voltha_protos import device_pb2

from daemons.voltha.policy import resume_point

S = device_pb2.ImageState


def state(download: int, image: int, reason: int = S.NO_ERROR) -> device_pb2.ImageState:
    return S(download_state=download, image_state=image, reason=reason)


@pytest.mark.parametrize(
    ("download", "image", "activate", "commit", "want"),
    [
        (S.DOWNLOAD_UNKNOWN, S.IMAGE_UNKNOWN, True, True, ("download", False)),
        (S.DOWNLOAD_STARTED, S.IMAGE_UNKNOWN, True, True, ("download", True)),
        (S.DOWNLOAD_STARTED, S.IMAGE_DOWNLOADING, True, True, ("download", True)),
        (S.DOWNLOAD_FAILED, S.IMAGE_DOWNLOADING_ABORTED, True, True, ("download", False)),
        (S.DOWNLOAD_SUCCEEDED, S.IMAGE_INACTIVE, True, True, ("activate", False)),
        (S.DOWNLOAD_SUCCEEDED, S.IMAGE_INACTIVE, False, True, ("commit", False)),
        (S.DOWNLOAD_SUCCEEDED, S.IMAGE_INACTIVE, False, False, ("done", True)),
        (S.DOWNLOAD_SUCCEEDED, S.IMAGE_ACTIVATING, True, True, ("activate", True)),
        (S.DOWNLOAD_SUCCEEDED, S.IMAGE_ACTIVE, True, True, ("commit", False)),
        (S.DOWNLOAD_SUCCEEDED, S.IMAGE_ACTIVE, True, False, ("done", True)),
        (S.DOWNLOAD_SUCCEEDED, S.IMAGE_COMMITTING, True, True, ("commit", True)),
        (S.DOWNLOAD_SUCCEEDED, S.IMAGE_COMMITTED, True, True, ("done", True)),
        (S.DOWNLOAD_SUCCEEDED, S.IMAGE_ACTIVATION_ABORTED, True, True, ("download", False)),
    ],
)
def test_resume_point(
    download: int, image: int, activate: bool, commit: bool, want: tuple[str, bool]
) -> None:
    assert resume_point(state(download, image), activate, commit) == want
