"""What the admin commands print: a table on a terminal, JSON lines in a pipe or with
--json (daemons/core/output.py), the same objects either way."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import asyncpg

from daemons.core import output
from tests.cli.runner import run


def test_a_list_on_a_terminal_and_in_a_pipe(cli_env: dict[str, str]) -> None:
    empty = run(cli_env, "nas", "list", tty=True)
    assert (empty.status, empty.out) == (0, "no NAS clients\n")
    assert run(cli_env, "nas", "list").out == ""  # a pipe: no rows, nothing
    for name, address in (("bng1", "192.0.2.1"), ("bng-long-name", "198.51.100.0/24")):
        added = run(
            cli_env,
            "nas",
            "add",
            name,
            "--address",
            address,
            "--vendor",
            "cisco",
            "--secret-stdin",
            stdin="s\n",
        )
        assert added.status == 0, added
    table = run(cli_env, "nas", "list", tty=True).lines
    assert table[0].split() == [
        "NAME",
        "NETWORK",
        "VENDOR",
        "REQUIRE",
        "MESSAGE",
        "AUTHENTICATOR",
        "COA",
        "PORT",
        "DESCRIPTION",
        "TLS",
        "IDENTITY",
    ]
    assert table[1].split() == [
        "bng-long-name",
        "198.51.100.0/24",
        "cisco",
        "yes",
        "3799",
        "-",
        "-",
    ]
    assert table[2].split() == ["bng1", "192.0.2.1/32", "cisco", "yes", "3799", "-", "-"]
    assert table[1].index("198.51") == table[2].index("192.0.2.1")  # aligned columns
    piped = [json.loads(line) for line in run(cli_env, "nas", "list").lines]
    forced = [json.loads(line) for line in run(cli_env, "nas", "list", "--json", tty=True).lines]
    first = [json.loads(line) for line in run(cli_env, "--json", "nas", "list", tty=True).lines]
    assert piped == forced == first
    assert piped[1] == {
        "name": "bng1",
        "network": "192.0.2.1/32",
        "vendor": "cisco",
        "require_message_authenticator": True,
        "coa_port": 3799,
        "description": "",
        "tls_identity": None,
    }


def test_show_on_a_terminal_and_in_a_pipe(cli_env: dict[str, str]) -> None:
    made = run(
        cli_env,
        "subscriber",
        "add",
        "alice",
        "--password-stdin",
        "--mac",
        "AA-BB-CC-00-11-22",
        stdin="pw\n",
    )
    assert made.status == 0, made
    shown = run(cli_env, "subscriber", "show", "alice", tty=True).lines
    assert shown == [
        "username               alice",
        "plan                   default",
        "state                  active",
        "mac                    aa:bb:cc:00:11:22",
        "framed_ip              -",
        "framed_ipv6_address    -",  # issue 21: the IPv6 fields, unset
        "framed_ipv6_prefix     -",
        "delegated_ipv6_prefix  -",
        "framed_ipv6_pool       -",
        "delegated_ipv6_pool    -",
        "credentials            cleartext,nt-hash",
    ]
    assert json.loads(run(cli_env, "subscriber", "show", "alice").out)["mac"] == "aa:bb:cc:00:11:22"
    assert run(cli_env, "subscriber", "list", "--plan", "nope", tty=True).out == "no subscribers\n"


def test_a_terminal_never_gets_raw_control_characters(cli_env: dict[str, str]) -> None:
    """Data written before the rules (or by hand) is shown escaped: no escape sequence of a
    stored value reaches the operator's terminal."""

    async def plant() -> None:
        conn = await asyncpg.connect(cli_env["NETD_DATABASE_URL"])
        try:
            await conn.execute(
                "INSERT INTO nas_clients (name, network, secret_enc, vendor, description) "
                "VALUES ('x', '192.0.2.9/32', '\\x00', 'generic', $1)",
                "\x1b[2J\x1b]0;owned\x07 line\nbreak",
            )
        finally:
            await conn.close()

    asyncio.run(plant())
    table = run(cli_env, "nas", "list", tty=True).out
    assert "\x1b" not in table and "\x07" not in table
    assert "\\x1b[2J\\x1b]0;owned\\x07 line …" in table


def test_cells() -> None:
    assert output.cell(None) == "-"
    assert output.cell(["a", "b"]) == "a,b"
    assert output.cell({"k": 1}) == "k=1"
    assert (
        output.cell(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)) == "2026-01-02 03:04:05+00:00"
    )
    assert output.cell("x" * 100) == "x" * 47 + "…"
    assert output.cell("one\ntwo") == "one …"
    assert output.dumps({"at": datetime(2026, 1, 2, tzinfo=UTC), "b": b"\x01"}) == (
        '{"at": "2026-01-02 00:00:00+00:00", "b": "01"}'
    )
