"""``netd files ...``: what an installed netd carries, put where an operator needs it.

The wheel ships the systemd units, the sysusers file, the example configuration and the
default policies (``daemons/resources``). These commands write them out, so a production
install needs nothing from a source checkout:

    netd files units /etc/systemd/system      # ExecStart= is this netd
    netd files sysusers /usr/lib/sysusers.d
    netd files example-config > /etc/netd/netd.toml
    netd files policies /etc/netd/policies    # to edit; then policies.dir in the config
    netd files path                           # where the packaged files are
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from daemons import resources
from daemons.core import output

UNIT_NETD = "/opt/netd/bin/netd"  # what the packaged units name; replaced on the way out


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    files = sub.add_parser(
        "files", help="write out the packaged systemd units, example config and policies"
    )
    fs = files.add_subparsers(dest="action", required=True, metavar="ACTION")
    fs.add_parser("path", help="print the folder of the packaged files")
    units = fs.add_parser("units", help="write the systemd units and netd.target into DIR")
    units.add_argument("dir", type=Path, metavar="DIR")
    units.add_argument(
        "--netd",
        type=Path,
        help="the netd the units run (default: this one, "
        f"{_this_netd() or 'not found: give --netd'})",
    )
    sysusers = fs.add_parser("sysusers", help="write netd.conf (the netd system user) into DIR")
    sysusers.add_argument("dir", type=Path, metavar="DIR")
    fs.add_parser("example-config", help="print the example config (every key documented)")
    pol = fs.add_parser("policies", help="copy the packaged policies into DIR (a new folder)")
    pol.add_argument("dir", type=Path, metavar="DIR")


def _this_netd() -> Path | None:
    candidate = Path(sys.executable).with_name("netd")
    return candidate if candidate.is_file() else None


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    print(f"wrote {path}")


def run(args: argparse.Namespace) -> int:
    """The command; 0, or 1 with one line on stderr."""
    try:
        return _run(args)
    except OSError as exc:
        return output.fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 1)


def _run(args: argparse.Namespace) -> int:
    if args.action == "path":
        print(resources.path())
        return 0
    if args.action == "example-config":
        sys.stdout.write(resources.path(resources.EXAMPLE_CONFIG).read_text(encoding="utf-8"))
        return 0
    if args.action == "policies":
        if args.dir.exists():
            return output.fail(f"{args.dir} exists; give a new folder", 1)
        shutil.copytree(resources.path(resources.POLICIES), args.dir)
        print(f'copied the packaged policies to {args.dir}; set policies.dir = "{args.dir}"')
        return 0
    if not args.dir.is_dir():
        return output.fail(f"{args.dir} is not a folder", 1)
    folder = resources.path(resources.SYSTEMD)
    if args.action == "sysusers":
        _write(args.dir / "netd.conf", (folder / "netd.sysusers").read_text(encoding="utf-8"))
        return 0
    netd = args.netd or _this_netd()
    if netd is None:
        return output.fail("cannot tell where this netd is installed: give --netd PATH", 1)
    for unit in sorted([*folder.glob("*.service"), *folder.glob("*.target")]):
        text = unit.read_text(encoding="utf-8").replace(UNIT_NETD, str(netd.absolute()))
        _write(args.dir / unit.name, text)
    return 0
