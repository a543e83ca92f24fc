"""The `netd` admin commands: `netd token` on the stores, and the same commands through the
API with --api and a token (same arguments, same output, audited as the token)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.api.conftest import ApiServer
from tests.support import netd_env


def netd(
    api: ApiServer, *args: str, token: str | None = None, stdin: str = "", tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`netd ARGS`: through the API when a token is given, else on the stores."""
    prefix: list[str] = []
    env = dict(api.env)
    if token is not None:
        assert tmp is not None
        path = tmp / "token"
        path.write_text(token + "\n")
        prefix = ["--api", api.url, "--token-file", str(path)]
        env = netd_env({})  # a NOC workstation: no database or Redis settings at all
    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", *prefix, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_token_create_on_the_stores_then_use_and_revoke(api: ApiServer) -> None:
    made = netd(api, "token", "create", "--role", "operator", "--name", "cli-made")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("netd_") and "shown only now" in made.stderr
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{api.url}/api/v1/status", headers=headers).status_code == 200
    listed = netd(api, "token", "list")
    names = [json.loads(line)["name"] for line in listed.stdout.splitlines()]
    assert "cli-made" in names and secret not in listed.stdout
    dup = netd(api, "token", "create", "--role", "viewer", "--name", "cli-made")
    assert dup.returncode == 1 and "exists" in dup.stderr
    assert netd(api, "token", "revoke", "cli-made").returncode == 0
    assert netd(api, "token", "revoke", "cli-made").returncode == 1


def test_admin_commands_through_the_api(api: ApiServer, tmp_path: Path) -> None:
    admin = api.tokens["admin"]
    add = netd(
        api,
        "nas",
        "add",
        "cli-bng",
        "--address",
        "10.55.0.1",
        "--secret-stdin",
        "--vendor",
        "cisco",
        token=admin,
        stdin="cli-nas-secret\n",
        tmp=tmp_path,
    )
    assert add.returncode == 0, add.stderr
    assert "added NAS cli-bng (10.55.0.1/32, vendor cisco)" in add.stdout
    nas = [
        json.loads(x)
        for x in netd(api, "nas", "list", token=admin, tmp=tmp_path).stdout.splitlines()
    ]
    assert {"cli-bng", "bng1"} <= {n["name"] for n in nas}
    sub = netd(
        api,
        "subscriber",
        "add",
        "cli-user",
        "--password-stdin",
        "--plan",
        "fiber-100",
        token=admin,
        stdin="cli-pw\n",
        tmp=tmp_path,
    )
    assert sub.returncode == 0, sub.stderr
    upd = netd(
        api, "subscriber", "set", "cli-user", "--state", "suspended", token=admin, tmp=tmp_path
    )
    assert upd.returncode == 0, upd.stderr
    shown = json.loads(
        netd(api, "subscriber", "show", "cli-user", token=admin, tmp=tmp_path).stdout
    )
    assert (shown["plan"], shown["state"], shown["credentials"]) == (
        "fiber-100",
        "suspended",
        ["cleartext", "nt-hash"],
    )
    sessions = netd(api, "session", "list", "--user", "cli-user", token=admin, tmp=tmp_path)
    assert sessions.returncode == 0 and sessions.stdout == ""
    missing = netd(api, "session", "disconnect", "--user", "cli-user", token=admin, tmp=tmp_path)
    assert missing.returncode == 1 and "no open session" in missing.stderr
    assert netd(api, "subscriber", "remove", "cli-user", token=admin, tmp=tmp_path).returncode == 0
    assert netd(api, "nas", "remove", "cli-bng", token=admin, tmp=tmp_path).returncode == 0
    # The calls were made as the token, and audited so.
    actors = {
        r["actor"]
        for r in httpx.get(
            f"{api.url}/api/v1/audit",
            params={"limit": 1000},
            headers=api.headers("admin"),
        ).json()["items"]
        if r["target"] in ("cli-bng", "cli-user")
    }
    assert actors == {"api:test-admin"}


def test_cli_through_the_api_reports_denials_and_bad_input(api: ApiServer, tmp_path: Path) -> None:
    denied = netd(api, "nas", "remove", "bng1", token=api.tokens["viewer"], tmp=tmp_path)
    assert denied.returncode == 1
    assert "needs the admin role" in denied.stderr and "HTTP 403" in denied.stderr
    bad = netd(
        api,
        "subscriber",
        "set",
        "alice",
        "--ip",
        "not-an-ip",
        token=api.tokens["admin"],
        tmp=tmp_path,
    )
    # Refused before it is sent, by the API's own model: the message the API would give.
    assert bad.returncode == 2 and "framed_ip 'not-an-ip' is not an IPv4 address" in bad.stderr
    # Refused by the server (it knows the plans): its message, its status.
    plan = netd(
        api, "subscriber", "set", "alice", "--plan", "nope", token=api.tokens["admin"], tmp=tmp_path
    )
    assert plan.returncode == 2 and "no plan 'nope'" in plan.stderr and "HTTP 422" in plan.stderr
    snmp = netd(api, "snmp", "target", "list", token=api.tokens["admin"], tmp=tmp_path)
    assert snmp.returncode == 2 and "only on the local stores" in snmp.stderr
    unreachable = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemons.cli",
            "--api",
            "http://127.0.0.1:9",
            "--token",
            "x",
            "nas",
            "list",
        ],
        capture_output=True,
        text=True,
        env=netd_env({}),
        timeout=30,
        check=False,
    )
    assert unreachable.returncode == 1 and "cannot reach the API" in unreachable.stderr
    assert "Traceback" not in denied.stderr + bad.stderr + plan.stderr + unreachable.stderr
