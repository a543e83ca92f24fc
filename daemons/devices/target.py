"""What a session needs to reach one device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    port: int
    platform: str  # a platforms.PLATFORMS name: a netmiko device_type, or "netconf"
    username: str
    password: str
    secret: str = ""  # enable secret
    timeout: float = 30.0
    vars: dict[str, Any] = field(default_factory=dict)
