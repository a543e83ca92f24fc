"""A Cisco IOS-like switch CLI over SSH, enough for netmiko's ``cisco_ios`` driver.

One ``IosSim`` is one device: an asyncssh server on 127.0.0.1 in the test's event loop. The
running configuration is ``running`` (lines as ``show running-config`` lists them, sub-lines
indented by one space under ``interface``/``vlan``/``line`` headers, without the ``!``
separators); ``saved`` is the startup configuration. Tests read and edit both directly.

Simulated: user (``sw1>``) and privileged (``sw1#``) exec, ``enable`` with a secret,
``disable``, ``terminal length|width``, ``show running-config [interface X] [| include|
exclude|begin|section RE]``, ``show startup-config``, ``show version`` (parses with
ntc-templates' cisco_ios_show_version), ``show privilege``, ``write [memory]``, ``copy
running-config startup-config`` (asks for the destination), ``configure terminal``,
``configure replace nvram:startup-config [force]`` (asks unless ``force``), ``exit``/
``logout``; in configuration mode ``interface``/``vlan``/``line`` sub-modes, commands of a
parent mode typed in a sub-mode (which leave the sub-mode, as IOS does), ``no <line>``,
``do <exec command>``, ``exit``, ``end``, Ctrl-Z; keywords abbreviated to any unique prefix
(``conf t``, ``sh run``, ``wr mem``); interface names expanded (``Gi0/1`` ->
``GigabitEthernet0/1``). An SSH ``exec`` request runs one exec command.

Not simulated: help (``?``), tab completion, history, ``banner`` (multi-line), ``router``
modes, ``copy`` other than running to startup, files (``dir``), ``reload``, syslog messages,
per-command argument grammars beyond the few validated below (other keywords of a mode take
any arguments).
"""

from __future__ import annotations

import asyncio
import codecs
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

import asyncssh

from tests.devices.sshbase import SshDevice, read_chunk

INVALID = "% Invalid input detected at '^' marker."
INCOMPLETE = "% Incomplete command."
ENTER_CONFIG = "Enter configuration commands, one per line.  End with CNTL/Z."
MAX_LINE = 4096

IF_TYPES = (
    "GigabitEthernet",
    "FastEthernet",
    "TenGigabitEthernet",
    "TwentyFiveGigE",
    "Ethernet",
    "Vlan",
    "Loopback",
    "Port-channel",
    "Tunnel",
)
PHYSICAL = {"GigabitEthernet", "FastEthernet", "TenGigabitEthernet", "TwentyFiveGigE", "Ethernet"}
BLOCK_ORDER = ("vlan", "interface", "line")

USER_EXEC = ("show", "terminal", "enable", "exit", "logout", "quit")
PRIV_EXEC = (*USER_EXEC, "disable", "configure", "write", "copy")
USER_SHOW = ("version", "privilege")
PRIV_SHOW = (*USER_SHOW, "running-config", "startup-config")

GLOBAL_KW = (
    "hostname",
    "interface",
    "vlan",
    "line",
    "ip",
    "ipv6",
    "service",
    "logging",
    "ntp",
    "snmp-server",
    "username",
    "enable",
    "spanning-tree",
    "aaa",
    "cdp",
    "lldp",
    "vtp",
    "clock",
    "boot",
    "access-list",
    "errdisable",
    "mac",
    "udld",
)
MODE_KW: dict[str, tuple[str, ...]] = {
    "config": GLOBAL_KW,
    "config-if": (
        "description",
        "switchport",
        "shutdown",
        "ip",
        "ipv6",
        "speed",
        "duplex",
        "mtu",
        "spanning-tree",
        "channel-group",
        "storm-control",
        "power",
        "cdp",
        "lldp",
        "service-policy",
        "load-interval",
        "bandwidth",
        "encapsulation",
        "negotiation",
        "udld",
    ),
    "config-vlan": ("name", "state", "shutdown"),
    "config-line": (
        "login",
        "password",
        "transport",
        "exec-timeout",
        "logging",
        "privilege",
        "access-class",
        "length",
        "width",
        "session-timeout",
        "history",
    ),
}
NAV_KW = ("end", "exit", "do", "no")
BARE_OK = {"shutdown", "login", "switchport"}
BARE_ONLY = {"shutdown"}

# Commands that hold one value: a new one replaces the old line ("*" matches any word).
SINGLE_VALUED: tuple[tuple[str, ...], ...] = tuple(
    sorted(
        (
            ("hostname",),
            ("description",),
            ("name",),
            ("state",),
            ("mtu",),
            ("speed",),
            ("duplex",),
            ("bandwidth",),
            ("load-interval",),
            ("channel-group",),
            ("password",),
            ("exec-timeout",),
            ("switchport", "mode"),
            ("switchport", "access", "vlan"),
            ("switchport", "voice", "vlan"),
            ("switchport", "trunk", "native", "vlan"),
            ("switchport", "trunk", "allowed", "vlan"),
            ("ip", "address"),
            ("ip", "domain-name"),
            ("ip", "domain", "name"),
            ("ip", "default-gateway"),
            ("transport", "input"),
            ("logging", "buffered"),
            ("spanning-tree", "mode"),
            ("enable", "secret"),
            ("clock", "timezone"),
            ("snmp-server", "location"),
            ("snmp-server", "contact"),
            ("snmp-server", "community", "*"),
            ("username", "*"),
            ("ntp", "server", "*"),
            ("logging", "host", "*"),
        ),
        key=len,
        reverse=True,
    )
)


class CliError(Exception):
    """An error answer: the lines to print (``caret`` = column of the ``^`` marker in the
    command, or None for a message without marker)."""

    def __init__(self, lines: Sequence[str], caret: int | None = None) -> None:
        super().__init__(lines[0] if lines else "")
        self.lines = list(lines)
        self.caret = caret

    @classmethod
    def invalid(cls, pos: int) -> CliError:
        return cls([INVALID, ""], caret=pos)

    @classmethod
    def incomplete(cls) -> CliError:
        return cls([INCOMPLETE, ""])


class Tok(NamedTuple):
    text: str
    pos: int


def tokens(line: str, offset: int = 0) -> list[Tok]:
    return [Tok(m.group(), m.start() + offset) for m in re.finditer(r"\S+", line)]


def keyword(toks: Sequence[Tok], i: int, options: Sequence[str]) -> str:
    """The option the i-th word abbreviates (a unique prefix, case-insensitive)."""
    if i >= len(toks):
        raise CliError.incomplete()
    word = toks[i].text.lower()
    if word in options:
        return word
    hits = [o for o in options if o.startswith(word)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise CliError([f'% Ambiguous command:  "{" ".join(t.text for t in toks[: i + 1])}"', ""])
    raise CliError.invalid(toks[i].pos)


def no_more(toks: Sequence[Tok], i: int) -> None:
    if len(toks) > i:
        raise CliError.invalid(toks[i].pos)


def number(toks: Sequence[Tok], i: int, lo: int, hi: int) -> int:
    if i >= len(toks):
        raise CliError.incomplete()
    text = toks[i].text
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise CliError.invalid(toks[i].pos)
    return int(text)


def interface_name(toks: Sequence[Tok], i: int) -> str:
    """``Gi0/1``, ``gi 0/1``, ``GigabitEthernet0/1`` -> ``GigabitEthernet0/1``."""
    if i >= len(toks):
        raise CliError.incomplete()
    text = "".join(t.text for t in toks[i:])
    m = re.fullmatch(r"([A-Za-z-]+)(\d+(?:/\d+)*(?:\.\d+)?)?", text)
    if not m:
        raise CliError.invalid(toks[i].pos)
    word = m.group(1).lower()
    hits = [t for t in IF_TYPES if t.lower() == word] or [
        t for t in IF_TYPES if t.lower().startswith(word)
    ]
    if len(hits) > 1:
        raise CliError([f'% Ambiguous command:  "interface {toks[i].text}"', ""])
    if not hits:
        raise CliError.invalid(toks[i].pos)
    if not m.group(2):
        raise CliError.incomplete()
    if hits[0] == "Vlan" and not 1 <= int(m.group(2).split(".")[0]) <= 4094:
        raise CliError.invalid(toks[i].pos)
    return hits[0] + m.group(2)


# -- the configuration model ------------------------------------------------------------------
def is_header(line: str) -> bool:
    words = line.split()
    if not words or line.startswith(" "):
        return False
    if words[0] == "vlan":
        return len(words) == 2 and words[1].isdigit()
    return words[0] in ("interface", "line")


def block_span(cfg: Sequence[str], header: str) -> tuple[int, int] | None:
    """(index of the header, index after its last sub-line)."""
    for i, line in enumerate(cfg):
        if line == header:
            j = i + 1
            while j < len(cfg) and cfg[j].startswith(" "):
                j += 1
            return i, j
    return None


def ensure_block(cfg: list[str], header: str) -> None:
    if block_span(cfg, header) is not None:
        return
    kind = header.split(maxsplit=1)[0]
    rank = BLOCK_ORDER.index(kind)
    insert_at = len(cfg)
    last_same = None
    first_later = None
    for i, line in enumerate(cfg):
        if not is_header(line):
            continue
        other = BLOCK_ORDER.index(line.split()[0])
        if other == rank:
            last_same = i
        elif other > rank and first_later is None:
            first_later = i
    if last_same is not None:
        span = block_span(cfg, cfg[last_same])
        assert span is not None
        insert_at = span[1]
    elif first_later is not None:
        insert_at = first_later
    cfg.insert(insert_at, header)


def remove_block(cfg: list[str], header: str) -> bool:
    span = block_span(cfg, header)
    if span is None:
        return False
    del cfg[span[0] : span[1]]
    return True


def _scope(cfg: list[str], header: str | None) -> tuple[list[int], int, str]:
    """Indices of the lines in scope, where a new line goes, and the indent."""
    if header is None:
        idx = [i for i, line in enumerate(cfg) if not line.startswith(" ") and not is_header(line)]
        return idx, (idx[-1] + 1 if idx else 0), ""
    ensure_block(cfg, header)
    span = block_span(cfg, header)
    assert span is not None
    return list(range(span[0] + 1, span[1])), span[1], " "


def single_key(line: str) -> tuple[str, ...] | None:
    words = line.split()
    for pattern in SINGLE_VALUED:
        if len(words) > len(pattern) and all(
            p in ("*", w) for p, w in zip(pattern, words, strict=False)
        ):
            if pattern == ("ip", "address") and "secondary" in words:
                return None
            return tuple(words[: len(pattern)])
    return None


def set_line(cfg: list[str], header: str | None, line: str) -> None:
    """Add a line to the top level or a block, replacing the line it supersedes."""
    idx, insert_at, indent = _scope(cfg, header)
    key = single_key(line)
    for i in idx:
        existing = cfg[i].strip()
        if existing == line:
            return
        if key is not None and tuple(existing.split()[: len(key)]) == key:
            cfg[i] = indent + line
            return
    cfg.insert(insert_at, indent + line)


def remove_lines(cfg: list[str], header: str | None, line: str) -> int:
    """``no <line>``: drop the lines equal to it or that it is a prefix of (by words)."""
    if header is not None and block_span(cfg, header) is None:
        return 0
    idx, _, _ = _scope(cfg, header)
    gone = [i for i in idx if cfg[i].strip() == line or cfg[i].strip().startswith(line + " ")]
    for i in reversed(gone):
        del cfg[i]
    return len(gone)


def hostname_of(cfg: Sequence[str]) -> str:
    for line in cfg:
        if line.startswith("hostname "):
            return line.split()[1]
    return "Switch"


def render(cfg: Sequence[str]) -> list[str]:
    """IOS layout: ``!`` around blocks, ``end`` last."""
    out = ["!"]
    i = 0
    while i < len(cfg):
        line = cfg[i]
        if is_header(line):
            if out[-1] != "!":
                out.append("!")
            out.append(line)
            i += 1
            while i < len(cfg) and cfg[i].startswith(" "):
                out.append(cfg[i])
                i += 1
            out.append("!")
            continue
        if not line.startswith(" "):
            out.append(line)
        i += 1
    if out[-1] != "!":
        out.append("!")
    out.append("end")
    return out


def show_config(cfg: Sequence[str], heading: str, section: bool = False) -> list[str]:
    """``show running-config`` (``section``: of one block, without ``!`` around it) or
    ``show startup-config``."""
    body = ["!", *cfg, "end"] if section else render(cfg)
    size = sum(len(line) + 1 for line in body)
    if heading == "startup":
        return [f"Using {size} out of 524288 bytes", *body]
    return ["Building configuration...", "", f"Current configuration : {size} bytes", *body]


def default_config(hostname: str) -> list[str]:
    return [
        "version 15.2",
        "service timestamps debug datetime msec",
        "service timestamps log datetime msec",
        f"hostname {hostname}",
        "spanning-tree mode rapid-pvst",
        "interface GigabitEthernet0/1",
        "interface GigabitEthernet0/2",
        "interface GigabitEthernet0/3",
        "interface GigabitEthernet0/4",
        "interface Vlan1",
        "line con 0",
        "line vty 0 4",
        " login local",
        " transport input ssh",
    ]


def _uptime(seconds: float) -> str:
    minutes = int(seconds // 60)
    weeks, minutes = divmod(minutes, 7 * 24 * 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)

    def unit(n: int, name: str) -> str:
        return f"{n} {name}" + ("" if n == 1 else "s")

    parts = [unit(n, name) for n, name in ((weeks, "week"), (days, "day"), (hours, "hour")) if n]
    return ", ".join([*parts, unit(minutes, "minute")])


# -- the device ---------------------------------------------------------------------------------
class IosSim(SshDevice):
    """An IOS-like switch over SSH on 127.0.0.1.

    ``enable_secret=None``: sessions start privileged (``sw1#``, a privilege-15 user);
    otherwise they start in user exec (``sw1>``) and ``enable`` asks for the secret.
    ``reject``: a regular expression; a configuration command that matches it (re.search on
    the stripped line) is answered ``% Invalid input detected at '^' marker.`` and not
    applied. ``slow``: seconds of delay before each non-empty command line is answered (read
    at every command: a test may change it once connected).

    ``commands`` lists every line received (the empty ones netmiko sends to find the prompt
    too), except answers to a ``Password:`` or confirmation question. ``logins`` counts
    authenticated sessions, ``sessions`` the open shells, ``auth_failures`` the refused
    passwords.
    """

    model = "WS-C2960X-24TS-L"
    image_version = "15.2(7)E8"
    serial = "FOC2042X0SM"
    mac = "02:00:5e:10:00:01"

    def __init__(
        self,
        hostname: str = "sw1",
        username: str = "admin",
        password: str = "secret",
        enable_secret: str | None = None,
        host_key: asyncssh.SSHKey | str | None = None,
        reject: str | re.Pattern[str] | None = None,
        slow: float = 0.0,
    ) -> None:
        super().__init__(username, password, host_key)
        self.enable_secret = enable_secret
        self.reject = re.compile(reject) if isinstance(reject, str) else reject
        self.slow = slow
        self.running: list[str] = default_config(hostname)
        self.saved: list[str] = list(self.running)
        self.commands: list[str] = []
        self.sessions = 0
        self.logins = 0
        self.booted = time.monotonic()

    @property
    def hostname(self) -> str:
        return hostname_of(self.running)

    def show_running(self) -> str:
        """What ``show running-config`` prints (newline-separated)."""
        return "\n".join(show_config(self.running, "running"))

    def reload(self) -> None:
        """Power-cycle: the running configuration becomes the startup one."""
        if self.saved:
            self.running[:] = self.saved
        self.booted = time.monotonic()

    async def restart(self, new_host_key: bool = False, reload: bool = False) -> None:
        """Stop and listen again on the same port; ``new_host_key``: with a new host key;
        ``reload``: unsaved changes are lost as in a reboot."""
        await super().restart(new_host_key=new_host_key)
        if reload:
            self.reload()

    def version_lines(self) -> list[str]:
        image = "c2960x-universalk9-mz.152-7.E8.bin"
        return [
            "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), "
            f"Version {self.image_version}, RELEASE SOFTWARE (fc1)",
            "ROM: Bootstrap program is C2960X boot loader",
            "",
            f"{self.hostname} uptime is {_uptime(time.monotonic() - self.booted)}",
            "System returned to ROM by power-on",
            f'System image file is "flash:{image}"',
            "",
            f"cisco {self.model} (APM86XXX) processor (revision B0) with 524288K bytes of memory.",
            f"Processor board ID {self.serial}",
            "Last reset from power-on",
            "24 Gigabit Ethernet interfaces",
            f"Base ethernet MAC Address       : {self.mac}",
            f"Model number                    : {self.model}",
            f"System serial number            : {self.serial}",
            "",
            "Configuration register is 0xF",
        ]

    async def serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        if process.subsystem:
            process.stdout.write(b"subsystem not supported\r\n")
            process.exit(1)
            return
        self.logins += 1
        session = _Session(self, process)
        if process.command is not None:
            await session.exec_once(process.command)
            return
        self.sessions += 1
        try:
            await session.run()
        finally:
            self.sessions -= 1


class _Session:
    """One vty session: the line being typed, the mode, and what the next line answers."""

    def __init__(self, sim: IosSim, process: asyncssh.SSHServerProcess[bytes]) -> None:
        self.sim = sim
        self.proc = process
        self.privileged = sim.enable_secret is None
        self.mode = "exec"
        self.block: str | None = None
        self.pending: Callable[[str], Awaitable[list[str]]] | None = None
        self.pending_prompt = ""
        self.closing = False
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.typed: list[str] = []
        self.out: list[str] = []
        self.last_cr = False

    # -- terminal ---------------------------------------------------------------------------
    def prompt(self) -> str:
        host = self.sim.hostname
        if self.mode == "exec":
            return host + ("#" if self.privileged else ">")
        return f"{host}({self.mode})#"

    async def flush(self) -> None:
        if self.out:
            data = "".join(self.out)
            self.out.clear()
            self.proc.stdout.write(data.encode())
            await self.proc.stdout.drain()

    async def run(self) -> None:
        self.out.append("\r\n" + self.prompt())
        await self.flush()
        while not self.closing:
            data = await read_chunk(self.proc, 4096)
            if not data:
                return
            for ch in self.decoder.decode(data):
                await self.key(ch)
                if self.closing:
                    break
            await self.flush()
        await self.flush()
        self.proc.exit(0)

    async def exec_once(self, command: str) -> None:
        self.sim.commands.append(command)
        try:
            lines = await self.exec(command)
        except CliError as exc:
            lines = exc.lines
        self.proc.stdout.write(("\r\n".join(lines) + "\r\n").encode())
        await self.proc.stdout.drain()
        self.proc.exit(0)

    async def key(self, ch: str) -> None:
        if ch == "\n" and self.last_cr:
            self.last_cr = False
            return
        self.last_cr = ch == "\r"
        if ch in "\r\n":
            line = "".join(self.typed)
            self.typed.clear()
            self.out.append("\r\n")
            await self.flush()
            await self.enter(line)
        elif ch in "\x08\x7f":
            if self.typed:
                self.typed.pop()
                if self.pending is None:
                    self.out.append("\b \b")
        elif ch in "\x1a\x03":  # Ctrl-Z / Ctrl-C
            self.typed.clear()
            if self.pending is not None:
                self.pending = None
            elif self.mode != "exec":
                self.mode, self.block = "exec", None
            self.out.append("^Z\r\n" if ch == "\x1a" else "^C\r\n")
            self.out.append(self.prompt())
        elif (ch == "\t" or ch >= " ") and len(self.typed) < MAX_LINE:
            self.typed.append(ch)
            if self.pending is None or not self.pending_prompt.endswith("Password: "):
                self.out.append(ch)

    async def enter(self, line: str) -> None:
        prompt_len = len(self.prompt())
        if self.pending is not None:
            handler, self.pending = self.pending, None
            lines = await handler(line)
        else:
            self.sim.commands.append(line)
            if self.sim.slow and line.strip():
                await asyncio.sleep(self.sim.slow)
            try:
                lines = await (self.exec(line) if self.mode == "exec" else self.config(line))
            except CliError as exc:
                lines = exc.lines
                if exc.caret is not None:
                    lines = [" " * (prompt_len + exc.caret) + "^", *lines]
        if self.closing:
            return
        for text in lines:
            self.out.append(text + "\r\n")
        self.out.append(self.pending_prompt if self.pending is not None else self.prompt())

    def ask(self, question: str, handler: Callable[[str], Awaitable[list[str]]]) -> list[str]:
        self.pending, self.pending_prompt = handler, question
        return []

    # -- exec mode --------------------------------------------------------------------------
    async def exec(self, line: str) -> list[str]:
        cmd, bar, pipe = line.partition("|")
        toks = tokens(cmd)
        if not toks:
            if bar:
                raise CliError.invalid(len(cmd))
            return []
        word = keyword(toks, 0, PRIV_EXEC if self.privileged else USER_EXEC)
        if word == "show":
            out = self.show(toks)
            return filter_output(out, pipe, len(cmd) + 1) if bar else out
        if bar:
            raise CliError.invalid(len(cmd))
        if word == "terminal":
            sub = keyword(toks, 1, ("length", "width", "monitor"))
            if sub != "monitor":
                number(toks, 2, 0, 512)
                no_more(toks, 3)
            return []
        if word == "enable":
            return self.enable()
        if word == "disable":
            self.privileged = False
            return []
        if word in ("exit", "logout", "quit"):
            self.closing = True
            return []
        if word == "configure":
            return self.configure(toks)
        if word == "write":
            sub = keyword(toks, 1, ("memory", "terminal")) if len(toks) > 1 else "memory"
            no_more(toks, 2)
            if sub == "terminal":
                return show_config(self.sim.running, "running")
            return self.save()
        if word == "copy":
            keyword(toks, 1, ("running-config",))
            keyword(toks, 2, ("startup-config",))
            no_more(toks, 3)

            async def destination(answer: str) -> list[str]:
                if answer.strip() not in ("", "startup-config"):
                    return [f"%Error opening {answer.strip()} (Permission denied)"]
                return self.save()

            return self.ask("Destination filename [startup-config]? ", destination)
        raise CliError.invalid(toks[0].pos)

    def enable(self) -> list[str]:
        if self.privileged:
            return []
        if self.sim.enable_secret is None:
            self.privileged = True
            return []

        async def secret(answer: str) -> list[str]:
            if answer == self.sim.enable_secret:
                self.privileged = True
                return []
            return ["% Access denied", ""]

        return self.ask("Password: ", secret)

    def save(self) -> list[str]:
        self.sim.saved[:] = self.sim.running
        return ["Building configuration...", "[OK]"]

    def configure(self, toks: Sequence[Tok]) -> list[str]:
        sub = keyword(toks, 1, ("terminal", "replace"))
        if sub == "terminal":
            no_more(toks, 2)
            self.mode, self.block = "config", None
            return [ENTER_CONFIG]
        if len(toks) < 3:
            raise CliError.incomplete()
        source = toks[2].text
        force = len(toks) > 3 and keyword(toks, 3, ("force",)) == "force"
        no_more(toks, 4)
        if source.lower() != "nvram:startup-config" or not self.sim.saved:
            return [f"%Error opening {source} (No such file or directory)", ""]

        def replace() -> list[str]:
            self.sim.running[:] = self.sim.saved
            return ["Total number of passes: 1", "Rollback Done", ""]

        if force:
            return replace()

        async def confirm(answer: str) -> list[str]:
            if answer.strip().lower() in ("y", "yes"):
                return replace()
            return ["% Configuration replace aborted", ""]

        return self.ask(
            "This will apply all necessary additions and deletions\r\n"
            "to replace the current running configuration with the\r\n"
            "contents of the specified configuration file, which is\r\n"
            "assumed to be a complete configuration, not a partial\r\n"
            "configuration. Enter Y if you are sure you want to proceed. ? [no]: ",
            confirm,
        )

    def show(self, toks: Sequence[Tok]) -> list[str]:
        what = keyword(toks, 1, PRIV_SHOW if self.privileged else USER_SHOW)
        if what == "version":
            no_more(toks, 2)
            return self.sim.version_lines()
        if what == "privilege":
            no_more(toks, 2)
            return [f"Current privilege level is {15 if self.privileged else 1}"]
        if what == "startup-config":
            no_more(toks, 2)
            if not self.sim.saved:
                return ["startup-config is not present"]
            return show_config(self.sim.saved, "startup")
        if len(toks) > 2:
            keyword(toks, 2, ("interface",))
            name = interface_name(toks, 3)
            span = block_span(self.sim.running, f"interface {name}")
            if span is None:
                raise CliError.invalid(toks[3].pos)
            return show_config(self.sim.running[span[0] : span[1]], "running", section=True)
        return show_config(self.sim.running, "running")

    # -- configuration mode -----------------------------------------------------------------
    async def config(self, line: str) -> list[str]:
        toks = tokens(line)
        if not toks:
            return []
        own = MODE_KW[self.mode]
        try:
            word = keyword(toks, 0, (*NAV_KW, *own))
        except CliError:
            if self.mode == "config":
                raise
            word = keyword(toks, 0, (*NAV_KW, *GLOBAL_KW))
        if word == "end":
            no_more(toks, 1)
            self.mode, self.block = "exec", None
            return []
        if word == "exit":
            no_more(toks, 1)
            if self.mode == "config":
                self.mode = "exec"
            else:
                self.mode, self.block = "config", None
            return []
        if word == "do":
            rest = line[toks[1].pos :] if len(toks) > 1 else ""
            if not rest:
                raise CliError.incomplete()
            saved_mode, self.mode = self.mode, "exec"
            try:
                return await self.exec(rest)
            finally:
                self.mode = saved_mode
        if self.sim.reject is not None and self.sim.reject.search(line.strip()):
            raise CliError.invalid(toks[0].pos)
        negate = word == "no"
        body = toks[1:] if negate else toks
        if not body:
            raise CliError.incomplete()
        # A keyword of this mode, else (in a sub-mode) of global configuration mode.
        try:
            kw = keyword(body, 0, own)
            mode = self.mode
        except CliError:
            if self.mode == "config":
                raise
            kw = keyword(body, 0, GLOBAL_KW)
            mode = "config"
        if mode == "config" and self.mode != "config":
            self.mode, self.block = "config", None
        if mode == "config":
            return self.global_command(kw, body, line, negate)
        return self.sub_command(kw, body, line, negate)

    def _text(self, kw: str, body: Sequence[Tok], line: str) -> str:
        """The canonical line: the keyword in full, the rest as typed (spaces collapsed)."""
        if len(body) == 1:
            if kw not in BARE_OK:
                raise CliError.incomplete()
            return kw
        if kw in BARE_ONLY:
            raise CliError.invalid(body[1].pos)
        return " ".join([kw, *(t.text for t in body[1:])])

    def global_command(self, kw: str, body: Sequence[Tok], line: str, negate: bool) -> list[str]:
        cfg = self.sim.running
        if kw == "interface":
            name = interface_name(body, 1)
            header = f"interface {name}"
            if negate:
                if name.rstrip("0123456789/.") in PHYSICAL:
                    return ["% Physical interfaces cannot be removed.", ""]
                remove_block(cfg, header)
                return []
            ensure_block(cfg, header)
            self.mode, self.block = "config-if", header
            return []
        if kw == "vlan":
            vid = number(body, 1, 1, 4094)
            no_more(body, 2)
            header = f"vlan {vid}"
            if negate:
                if vid == 1:
                    return ["%Default VLAN 1 may not be deleted.", ""]
                remove_block(cfg, header)
                return []
            ensure_block(cfg, header)
            self.mode, self.block = "config-vlan", header
            return []
        if kw == "line":
            kind = keyword(body, 1, ("console", "vty", "aux"))
            first = number(body, 2, 0, 98)
            last = number(body, 3, first, 98) if len(body) > 3 else None
            no_more(body, 4)
            header = " ".join(
                ["line", "con" if kind == "console" else kind, str(first)]
                + ([str(last)] if last is not None else [])
            )
            if negate:
                return ["% Lines cannot be removed.", ""]
            ensure_block(cfg, header)
            self.mode, self.block = "config-line", header
            return []
        if kw == "hostname" and not negate:
            if len(body) < 2:
                raise CliError.incomplete()
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,62}", body[1].text):
                raise CliError.invalid(body[1].pos)
            no_more(body, 2)
        text = self._text(kw, body, line) if not (negate and len(body) == 1) else kw
        if negate:
            remove_lines(cfg, None, text)
        else:
            set_line(cfg, None, text)
        return []

    def sub_command(self, kw: str, body: Sequence[Tok], line: str, negate: bool) -> list[str]:
        cfg = self.sim.running
        assert self.block is not None
        if kw == "description" and not negate:
            if len(body) < 2:
                raise CliError.incomplete()
            text = "description " + line[body[1].pos :].rstrip()
            if len(text) > len("description ") + 240:
                raise CliError.invalid(body[1].pos + 240)
        elif kw == "name" and not negate:
            if len(body) < 2:
                raise CliError.incomplete()
            if len(body[1].text) > 32:
                raise CliError.invalid(body[1].pos)
            no_more(body, 2)
            text = f"name {body[1].text}"
        elif kw == "state" and not negate:
            text = "state " + keyword(body, 1, ("active", "suspend"))
            no_more(body, 2)
        elif kw == "switchport" and not negate and len(body) > 1:
            text = self._switchport(body)
        elif negate and len(body) == 1:
            text = kw
        else:
            text = self._text(kw, body, line)
        if negate:
            remove_lines(cfg, self.block, text)
        else:
            set_line(cfg, self.block, text)
        return []

    def _switchport(self, body: Sequence[Tok]) -> str:
        sub = keyword(body, 1, ("access", "mode", "trunk", "voice", "nonegotiate", "port-security"))
        if sub in ("access", "voice"):
            keyword(body, 2, ("vlan",))
            vid = number(body, 3, 1, 4094)
            no_more(body, 4)
            return f"switchport {sub} vlan {vid}"
        if sub == "mode":
            mode = keyword(body, 2, ("access", "trunk", "dynamic", "private-vlan"))
            rest = [t.text for t in body[3:]]
            if mode == "dynamic" and not rest:
                raise CliError.incomplete()
            return " ".join(["switchport", "mode", mode, *rest])
        if sub == "trunk":
            what = keyword(body, 2, ("allowed", "native", "encapsulation"))
            if what == "native":
                keyword(body, 3, ("vlan",))
                vid = number(body, 4, 1, 4094)
                no_more(body, 5)
                return f"switchport trunk native vlan {vid}"
            if what == "allowed":
                keyword(body, 3, ("vlan",))
                if len(body) < 5:
                    raise CliError.incomplete()
                return "switchport trunk allowed vlan " + " ".join(t.text for t in body[4:])
            return "switchport trunk encapsulation " + " ".join(t.text for t in body[3:])
        return " ".join(["switchport", sub, *(t.text for t in body[2:])])


def filter_output(lines: list[str], pipe: str, offset: int) -> list[str]:
    """``| include|exclude|begin|section REGEX``."""
    toks = tokens(pipe, offset)
    how = keyword(toks, 0, ("include", "exclude", "begin", "section"))
    if len(toks) < 2:
        raise CliError.incomplete()
    try:
        rx = re.compile(pipe[toks[1].pos - offset :].strip())
    except re.error:
        raise CliError.invalid(toks[1].pos) from None
    if how == "include":
        return [line for line in lines if rx.search(line)]
    if how == "exclude":
        return [line for line in lines if not rx.search(line)]
    if how == "begin":
        for i, line in enumerate(lines):
            if rx.search(line):
                return lines[i:]
        return []
    out: list[str] = []
    keep = False
    for line in lines:
        if not line.startswith(" "):
            keep = bool(rx.search(line))
            if keep:
                out.append(line)
        elif keep or rx.search(line):
            out.append(line)
    return out


__all__ = ["CliError", "IosSim", "render", "show_config"]
