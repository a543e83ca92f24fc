"""IOS-style configuration as a model: parse a running config, apply configuration
commands to it as the device would, diff two configs, and the commands that take a device
from one config back to another. Pure.

A config is a list of top-level lines, each with the lines indented under it (``interface
GigabitEthernet0/1`` then `` description uplink``). Applying a command follows IOS:
``interface``/``vlan``/``line``/``router`` lines open a block, indented or following lines
go into it until ``exit``, ``end`` or another top-level command (a mode keyword, or a line
the block already does not take); ``no X`` removes the lines equal to X or starting with
``X ``; a line whose first words name a single-valued setting (``description``,
``hostname``, ``switchport access vlan``...) replaces the previous value.

This is how dry-run predicts the diff a device would get and how rollback computes the
commands that restore a backup. After an apply or a rollback the device's own running
config is read back and compared: the model predicts, the device decides.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

BLOCKS = (
    "interface ",
    "vlan ",
    "line ",
    "router ",
    "ip vrf ",
    "vrf definition ",
    "policy-map ",
    "class-map ",
    "route-map ",
    "controller ",
    "ip access-list ",
)
# Settings that take one value: a new line replaces the old one (first words compared).
SINGLE = (
    "hostname",
    "description",
    "switchport access vlan",
    "switchport trunk native vlan",
    "switchport mode",
    "name",
    "ip address",
    "ipv6 address",
    "mtu",
    "speed",
    "duplex",
    "bandwidth",
    "ip domain-name",
    "ip domain name",
    "banner motd",
    "enable secret",
    "service-policy input",
    "service-policy output",
)
_SKIP = re.compile(
    r"^(Building configuration|Current configuration|!|end$|version |Last configuration change"
    r"|NVRAM config last updated)"
)
# Interface types in the order IOS resolves an abbreviation (``Et0/2``, ``e0/2``,
# ``gi1/0/1``, ``Po1``): the first whose name starts with what was typed.
_IFNAME = (
    "Ethernet",
    "FastEthernet",
    "GigabitEthernet",
    "TenGigabitEthernet",
    "TwentyFiveGigE",
    "FortyGigabitEthernet",
    "HundredGigE",
    "Port-channel",
    "Vlan",
    "Loopback",
    "Tunnel",
    "Serial",
    "Management",
)


@dataclass
class Line:
    text: str
    children: list[str] = field(default_factory=list)


def parse(text: str) -> list[Line]:
    """A running config as IOS prints it (``show running-config``)."""
    out: list[Line] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or _SKIP.match(line.strip()):
            continue
        if line.startswith(" ") and out:
            out[-1].children.append(line.strip())
        elif not line.startswith(" "):
            out.append(Line(line.strip()))
    return out


def render(config: Sequence[Line]) -> str:
    lines: list[str] = []
    for top in config:
        lines.append(top.text)
        lines += [" " + c for c in top.children]
    return "\n".join(lines) + ("\n" if lines else "")


def _expand(text: str) -> str:
    """``interface Gi0/1`` as IOS stores it: ``interface GigabitEthernet0/1``."""
    if not text.startswith("interface "):
        return text
    name = text[len("interface ") :].strip()
    return f"interface {expand_interface(name)}"


def expand_interface(name: str) -> str:
    """``Et0/2`` -> ``Ethernet0/2``, ``gi1/0/1`` -> ``GigabitEthernet1/0/1`` (unchanged when
    no type starts so)."""
    m = re.match(r"^([A-Za-z-]+)\s*(\d.*)$", name.strip())
    if not m:
        return name.strip()
    short = m.group(1).lower()
    for full in _IFNAME:
        if full.lower().startswith(short):
            return f"{full}{m.group(2)}"
    return name.strip()


def _single_key(text: str) -> str | None:
    for key in SINGLE:
        if text == key or text.startswith(key + " "):
            return key
    return None


def _put(lines: list[str], text: str) -> None:
    """Add a line; a single-valued setting takes the place of its old value."""
    key = _single_key(text)
    if key is not None:
        at = next((i for i, x in enumerate(lines) if _single_key(x) == key), None)
        if at is not None:
            lines[:] = [x for i, x in enumerate(lines) if i == at or _single_key(x) != key]
            lines[at if at < len(lines) else -1] = text
            return
    if text not in lines:
        lines.append(text)


def _remove(lines: list[str], text: str) -> None:
    lines[:] = [x for x in lines if not (x == text or x.startswith(text + " "))]


def apply(config: Sequence[Line], commands: Iterable[str]) -> list[Line]:
    """The config after the device ran ``commands`` in configuration mode."""
    out = [Line(x.text, list(x.children)) for x in config]
    block: Line | None = None
    for raw in commands:
        text = raw.strip()
        if not text or text.startswith("!"):
            continue
        if text in ("exit", "end"):
            block = None
            continue
        indented = raw.startswith(" ")
        negated = text.startswith("no ")
        body = _expand(text[3:] if negated else text)
        opens = body.startswith(BLOCKS)
        if block is not None and (indented or not (opens or _top_level(body))):
            if negated:
                _remove(block.children, body)
            else:
                _put(block.children, body)
            continue
        block = None
        if opens:
            found = next((x for x in out if x.text == body), None)
            if negated:
                out = [x for x in out if x.text != body]
                continue
            if found is None:
                found = Line(body)
                out.append(found)
            block = found
            continue
        tops = [x.text for x in out]
        if negated:
            out = [x for x in out if not (x.text == body or x.text.startswith(body + " "))]
            continue
        _put(tops, body)
        kept = {x.text: x for x in out}
        out = [kept.get(t) or Line(t) for t in tops]
    return out


def _top_level(text: str) -> bool:
    """Lines IOS takes only at the top: they close an open block."""
    return text.startswith(
        (
            "hostname ",
            "ip route ",
            "snmp-server ",
            "logging ",
            "ntp ",
            "aaa ",
            "username ",
            "service ",
            "spanning-tree ",
            "ip domain",
        )
    )


def diff(old: Sequence[Line], new: Sequence[Line], name: str = "running-config") -> str:
    """A unified diff of two configs, as text ("" when they are the same)."""
    return "".join(
        difflib.unified_diff(
            render(old).splitlines(keepends=True),
            render(new).splitlines(keepends=True),
            f"{name} (before)",
            f"{name} (after)",
        )
    )


def restore(current: Sequence[Line], target: Sequence[Line]) -> list[str]:
    """Configuration commands that take a device from ``current`` to ``target``."""
    cmds: list[str] = []
    want = {x.text: x for x in target}
    have = {x.text: x for x in current}
    for x in current:
        if x.text not in want:
            if x.children or x.text.startswith(BLOCKS):
                if x.text.startswith("interface "):  # physical ones cannot go: empty them
                    cmds.append(x.text)
                    cmds += [" no " + c for c in x.children]
                    cmds.append("exit")
                else:
                    cmds.append("no " + x.text)
            elif _single_key(x.text) is None or not any(
                _single_key(t) == _single_key(x.text) for t in want
            ):
                cmds.append("no " + x.text)
    for t in target:
        old = have.get(t.text)
        if old is None:
            cmds.append(t.text)
            cmds += [" " + c for c in t.children]
            if t.children or t.text.startswith(BLOCKS):
                cmds.append("exit")
            continue
        gone = [c for c in old.children if c not in t.children]
        added = [c for c in t.children if c not in old.children]
        drop = [
            c
            for c in gone
            if _single_key(c) is None or not any(_single_key(a) == _single_key(c) for a in added)
        ]
        if drop or added:
            cmds.append(t.text)
            cmds += [" no " + c for c in drop]
            cmds += [" " + c for c in added]
            cmds.append("exit")
    return cmds


def same(a: Sequence[Line], b: Sequence[Line]) -> bool:
    """Equal as configs (block order and line order inside a block do not matter)."""
    return {x.text: sorted(x.children) for x in a} == {x.text: sorted(x.children) for x in b}


# --- the changes a job made, and their undoing (safe rollback) ---

Item = tuple[str, ...]  # ("top", line) or ("child", block header, line)


def _items(config: Sequence[Line]) -> set[Item]:
    out: set[Item] = set()
    for x in config:
        out.add(("top", x.text))
        out |= {("child", x.text, c) for c in x.children}
    return out


def changes(before: Sequence[Line], after: Sequence[Line]) -> list[tuple[Item, bool]]:
    """What a job changed: each line (top-level, or in a block) added (True) or removed
    (False) between the config before it and after it."""
    b, a = _items(before), _items(after)
    return [(i, True) for i in sorted(a - b)] + [(i, False) for i in sorted(b - a)]


def drift(job: Sequence[tuple[Item, bool]], current: Sequence[Line]) -> list[tuple[Item, bool]]:
    """The job's changes the device no longer holds as the job left them."""
    now = _items(current)
    return [(i, added) for i, added in job if (i in now) != added]


def _item_text(i: Item) -> str:
    return i[1] if i[0] == "top" else f"{i[1]} / {i[2]}"


def drift_text(items: Sequence[tuple[Item, bool]], name: str) -> str:
    """The drift as a diff: what the job left, against what the device has now."""
    a = [("" if added else "(absent) ") + _item_text(i) + "\n" for i, added in items]
    b = [("(absent) " if added else "") + _item_text(i) + "\n" for i, added in items]
    return "".join(difflib.unified_diff(a, b, f"{name} as the job left it", f"{name} now"))


def undo(current: Sequence[Line], job: Sequence[tuple[Item, bool]]) -> list[Line]:
    """``current`` with the job's changes undone (its other lines as they are)."""
    out = [Line(x.text, list(x.children)) for x in current]
    for i, added in sorted(job, key=lambda c: (c[0][0] != "top", c[1])):
        if i[0] == "top":
            if added:
                out = [x for x in out if x.text != i[1]]
            elif not any(x.text == i[1] for x in out):
                out.append(Line(i[1]))
            continue
        block = next((x for x in out if x.text == i[1]), None)
        if added:
            if block is not None and i[2] in block.children:
                block.children.remove(i[2])
        else:
            if block is None:
                block = Line(i[1])
                out.append(block)
            if i[2] not in block.children:
                block.children.append(i[2])
    return out


def translate(commands: Sequence[str], negate: str = "no ") -> list[str]:
    """IOS-form commands (``no X``) in a platform's own form: ``undo X`` (VRP), ``delete
    X`` for a Junos ``set X`` line."""
    if negate == "no ":
        return list(commands)
    out = []
    for c in commands:
        indent = c[: len(c) - len(c.lstrip())]
        body = c.strip()
        if body.startswith("no "):
            body = body[3:]
            if negate == "delete " and body.startswith("set "):
                body = body[4:]
            body = negate + body
        out.append(indent + body)
    return out
