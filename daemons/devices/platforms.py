"""Platforms as data: for each device platform, the commands for a backup, entering and
leaving configuration mode, commit (and commit confirmed), save, and what it supports.

``netconf`` is the NETCONF platform (ncclient); every other one is an SSH CLI driven by the
netmiko device_type of the same name. A job that asks a platform for what it cannot do is
refused when it is created, with the reason (``refusal``).

Sources of the commands: each vendor's CLI reference (IOS/IOS-XE, NX-OS, IOS-XR, EOS,
Junos, VRP, RouterOS); netmiko's own drivers for the prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Platform:
    name: str
    title: str
    backup: str  # the command that prints the configuration ({file}: a device var)
    config_enter: str = ""  # "" : no configuration jobs
    config_exit: str = ""
    # "commit" platforms keep changes in a candidate until committed; {seconds}/{minutes}
    commit: str = ""
    commit_confirmed: str = ""
    confirm: str = ""  # what confirms a confirmed commit
    discard: str = ""  # drop the uncommitted changes (a dry-run, a refused change)
    compare: str = ""  # the device's own diff of the uncommitted changes (dry-run)
    save: str = ""  # running to startup; "" when a commit persists the change
    save_confirm: str = ""  # the answer a save question wants ("" : none asked)
    negate: str = "no "  # what undoes a line: "no " (IOS family), "delete " (Junos set form)
    # A dry-run: "model" (our IOS-style model predicts the diff from the running config),
    # "compare" (the change loaded, the device's own diff, then discarded), "" (none).
    dry_run: str = ""
    # Output that means the device refused a command (a regular expression, MULTILINE).
    error: str = r"^% ?(Invalid input|Incomplete command|Ambiguous command|Unknown command)"
    # Output that means another session holds the configuration (transient: retried).
    busy: str = r"(?i)(configuration (mode )?(is )?locked|exclusive|another session|try again)"
    vars_needed: tuple[str, ...] = ()
    notes: str = ""
    netconf: bool = False
    jobs: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs", self.netconf or bool(self.config_enter))

    def refusal(self, mode: str) -> str | None:
        """Why a job in ``mode`` (dry-run, apply, rollback) cannot run here; None if it can."""
        if not self.jobs:
            return f"{self.name}: {self.notes or 'no configuration jobs on this platform'}"
        if mode == "dry-run" and not self.netconf and not self.dry_run:
            return f"{self.name}: no dry-run (the device offers no diff of a pending change)"
        return None


_IOS_ERR = r"^% ?(Invalid input|Incomplete command|Ambiguous command|Unknown command)"
_JUNOS_ERR = r"(?i)^\s*(unknown command|syntax error|error:|missing argument|invalid value)"

PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            "netconf",
            "NETCONF (RFC 6241) over SSH",
            backup="<get-config source=running>",
            netconf=True,
            notes="candidate and confirmed commit where the device has them, else running",
        ),
        Platform(
            "cisco_ios",
            "Cisco IOS",
            backup="show running-config",
            config_enter="configure terminal",
            config_exit="end",
            save="copy running-config startup-config",
            save_confirm="",
            dry_run="model",
            error=_IOS_ERR,
        ),
        Platform(
            "cisco_xe",
            "Cisco IOS-XE",
            backup="show running-config",
            config_enter="configure terminal",
            config_exit="end",
            save="copy running-config startup-config",
            dry_run="model",
            error=_IOS_ERR,
        ),
        Platform(
            "cisco_nxos",
            "Cisco NX-OS",
            backup="show running-config",
            config_enter="configure terminal",
            config_exit="end",
            save="copy running-config startup-config",
            dry_run="model",
            error=_IOS_ERR + r"|^% ?(Invalid command|Permission denied)",
        ),
        Platform(
            "cisco_xr",
            "Cisco IOS-XR",
            backup="show running-config",
            config_enter="configure terminal",
            config_exit="end",
            commit="commit",
            commit_confirmed="commit confirmed {seconds}",
            confirm="commit",
            discard="abort",
            compare="show commit changes diff",
            dry_run="compare",
            error=_IOS_ERR + r"|^% ?Failed to commit|^!!% ",
        ),
        Platform(
            "arista_eos",
            "Arista EOS",
            backup="show running-config",
            config_enter="configure terminal",
            config_exit="end",
            save="write memory",
            dry_run="model",
            error=_IOS_ERR,
        ),
        Platform(
            "juniper_junos",
            "Juniper Junos",
            backup="show configuration | display set",
            config_enter="configure exclusive",
            config_exit="exit configuration-mode",
            commit="commit",
            commit_confirmed="commit confirmed {minutes}",
            confirm="commit check",
            discard="rollback 0",
            compare="show | compare",
            dry_run="compare",
            error=_JUNOS_ERR,
            busy=r"(?i)(configuration database (is )?locked|users currently editing)",
            negate="delete ",
        ),
        Platform(
            "huawei",
            "Huawei VRP",
            backup="display current-configuration",
            config_enter="system-view",
            config_exit="return",
            save="save",
            save_confirm="y",
            negate="undo ",
            error=r"^\s*Error: |^\s*(Unrecognized command|Incomplete command|Wrong parameter)",
            notes="no dry-run: VRP 5 applies each command as it is typed",
        ),
        Platform(
            "mikrotik_routeros",
            "MikroTik RouterOS",
            backup="/export",
            config_enter="",
            notes="backups only: RouterOS has no configuration mode to push a change in "
            "(each command applies at once), so a change cannot be verified or undone",
            error=r"(bad command name|syntax error|expected end of command|no such item)",
        ),
        Platform(
            "linux",
            "Linux (OpenSSH)",
            backup="cat -- {file}",
            notes="backups of one file only (device var backup_file); no configuration jobs",
            error=r"(No such file or directory|Permission denied|command not found|"
            r"Is a directory)",
            vars_needed=("backup_file",),
        ),
    )
}


def get(name: str) -> Platform | None:
    return PLATFORMS.get(name)


def names() -> list[str]:
    return sorted(PLATFORMS)


def refusals(
    templates: Path, template: str, mode: str, devices: Sequence[tuple[str, str]]
) -> list[str]:
    """Why a job cannot run on some of ``devices`` (name, platform): the platform cannot do
    ``mode``, or there is no template of its kind. One line each, [] if none. The CLI and
    the API refuse a job with these same lines."""
    out = []
    for name, platform in devices:
        p = PLATFORMS.get(platform)
        if p is None:
            out.append(f"{name}: unknown platform {platform}")
            continue
        why = p.refusal(mode)
        if why:
            out.append(f"{name}: {why}")
            continue
        kind = "netconf" if p.netconf else "cli"
        if mode != "rollback" and not (templates / f"{template}.{kind}.j2").is_file():
            out.append(f"{name}: no template {template}.{kind}.j2 for a {platform} device")
    return out
