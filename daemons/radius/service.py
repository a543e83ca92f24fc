"""The `radius` daemon's service shell.

Until its protocol lands it runs the shared lifecycle only: it starts, writes heartbeats,
reports healthy, reloads policies and drains on SIGTERM.
"""

from __future__ import annotations

from typing import ClassVar

from daemons.core.lifecycle import Daemon


class RadiusService(Daemon):
    name: ClassVar[str] = "radius"
