"""The `netd` admin commands: `netd token` on the stores, and the same commands through the
API with --api and a token (same arguments, same output, audited as the token)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from daemons.core.secrets import Sealer
from daemons.store import radius as store
from tests.api.conftest import ApiServer
from tests.api.test_api import start_session
from tests.cli.runner import one_line_error, run
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


# The same refusal by every path: the local CLI's one line holds the API's own message.
PARITY = [
    (
        ["subscriber", "set", "alice", "--plan", "nope"],
        ("PATCH", "/subscribers/alice", {"plan": "nope"}),
    ),
    (
        ["subscriber", "set", "alice", "--ip", "2001:db8::5"],
        ("PATCH", "/subscribers/alice", {"framed_ip": "2001:db8::5"}),
    ),
    (
        ["subscriber", "set", "alice", "--ipv6-prefix", "10.0.0.0/8"],
        ("PATCH", "/subscribers/alice", {"framed_ipv6_prefix": "10.0.0.0/8"}),
    ),
    (
        ["subscriber", "set", "alice", "--delegated-prefix", "2001:db8:2::1/56"],
        ("PATCH", "/subscribers/alice", {"delegated_ipv6_prefix": "2001:db8:2::1/56"}),
    ),
    (
        ["subscriber", "add", "zed", "--mac", "zz:zz"],
        ("POST", "/subscribers", {"username": "zed", "mac": "zz:zz"}),
    ),
    (
        ["nas", "add", "p1", "--address", "10.9.0.1", "--vendor", "foo", "--secret-stdin"],
        ("POST", "/nas", {"name": "p1", "network": "10.9.0.1", "secret": "s", "vendor": "foo"}),
    ),
    (
        ["nas", "add", "p1", "--address", "nope", "--secret-stdin"],
        ("POST", "/nas", {"name": "p1", "network": "nope", "secret": "s"}),
    ),
    (["nas", "set", "bng1", "--coa-port", "0"], ("PATCH", "/nas/bng1", {"coa_port": 0})),
    (
        ["nas", "set", "bng1", "--tls-identity", "*.example.net"],
        ("PATCH", "/nas/bng1", {"tls_identity": "*.example.net"}),
    ),
    (
        ["nas", "set", "bng1", "--tls-identity", "sha256:12ab"],
        ("PATCH", "/nas/bng1", {"tls_identity": "sha256:12ab"}),
    ),
    (
        [
            "snmp",
            "target",
            "add",
            "t1",
            "--address",
            "10.0.0.2",
            "--secret-stdin",
            "--profile",
            "nope",
        ],
        (
            "PUT",
            "/snmp/targets/t1",
            {"address": "10.0.0.2", "community": "s", "profiles": ["nope"]},
        ),
    ),
    (
        [
            "snmp",
            "target",
            "add",
            "t1",
            "--address",
            "10.0.0.2",
            "--secret-stdin",
            "--interval",
            "5",
        ],
        ("PUT", "/snmp/targets/t1", {"address": "10.0.0.2", "community": "s", "interval": 5}),
    ),
    (
        ["pool", "add", "p6", "2001:db8::/120"],
        ("POST", "/pools", {"name": "p6", "ranges": ["2001:db8::/120"]}),
    ),
    (["session", "list", "--ip", "999.1.1.1"], ("GET", "/sessions?ip=999.1.1.1", None)),
    (
        ["token", "create", "--name", "a b", "--role", "viewer"],
        ("POST", "/tokens", {"name": "a b", "role": "viewer"}),
    ),
]


@pytest.mark.parametrize(
    ("argv", "call"), PARITY, ids=lambda x: " ".join(x) if isinstance(x, list) else ""
)
def test_the_cli_refuses_what_the_api_refuses(
    api: ApiServer, argv: list[str], call: tuple[str, str, dict[str, object] | None]
) -> None:
    method, path, body = call
    answer = httpx.request(
        method, f"{api.url}/api/v1{path}", json=body, headers=api.headers("admin"), timeout=15
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    said = error["details"][0]["message"] if error["details"] else error["message"]
    local = run(api.env, *argv, stdin="s\n")
    assert one_line_error(local) and local.status == 2, local
    assert said in local.err, (said, local.err)


async def test_new_verbs_through_the_api(api: ApiServer, tmp_path: Path) -> None:
    """nas set, pool add|list|remove, session show (by Acct-Session-Id) and session clear
    with --api: the API's answers, its audit rows (as the token)."""
    admin, operator = api.tokens["admin"], api.tokens["operator"]

    async def netd(
        _api: ApiServer, *argv: str, token: str, stdin: str = "", tmp: Path
    ) -> subprocess.CompletedProcess[str]:
        """In this process (in a thread: this test's loop holds the fixtures), as a NOC
        workstation: no store settings at all, only --api and a token."""
        path = tmp / "token"
        path.write_text(token + "\n")
        argv = ("--api", api.url, "--token-file", str(path), *argv)
        got = await asyncio.to_thread(run, {}, *argv, stdin=stdin)
        return subprocess.CompletedProcess(argv, got.status, got.out, got.err)

    add = await netd(
        api,
        "nas",
        "add",
        "v-bng",
        "--address",
        "10.66.0.1",
        "--secret-stdin",
        token=admin,
        stdin="one\n",
        tmp=tmp_path,
    )
    assert add.returncode == 0, add.stderr
    rotated = await netd(
        api,
        "nas",
        "set",
        "v-bng",
        "--secret-stdin",
        "--vendor",
        "huawei",
        "--no-require-message-authenticator",
        token=admin,
        stdin="two\n",
        tmp=tmp_path,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout == ("updated NAS v-bng (require_message_authenticator, secret, vendor)\n")
    row = await store.get_nas(api.pool, "v-bng")
    assert row is not None and (row.vendor, row.require_message_authenticator) == ("huawei", False)
    assert Sealer(api.key).open(row.secret_enc, b"nas:v-bng") == b"two"
    made = await netd(api, "pool", "add", "v-pool", "100.66.0.0/30", token=admin, tmp=tmp_path)
    assert made.returncode == 0 and "2 addresses added" in made.stdout, made.stderr
    pools = await netd(api, "pool", "list", token=admin, tmp=tmp_path)
    listed = [json.loads(x) for x in pools.stdout.splitlines()]
    assert {"name": "v-pool", "lease_time": 900, "size": 2, "leased": 0} in listed
    await start_session(api, "v-s1", "bob", "100.66.0.1")
    shown = await netd(api, "session", "show", "a-v-s1", token=operator, tmp=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["unique_id"] == "v-s1"
    cleared = await netd(api, "session", "clear", "a-v-s1", token=operator, tmp=tmp_path)
    assert cleared.returncode == 0 and "cleared session v-s1 of bob on bng1" in cleared.stdout
    again = await netd(api, "session", "clear", "v-s1", token=operator, tmp=tmp_path)
    assert (
        again.returncode == 1
        and "is closed (cleared)" in again.stderr
        and "HTTP 409" in again.stderr
    )
    viewer = await netd(api, "session", "clear", "v-s1", token=api.tokens["viewer"], tmp=tmp_path)
    assert viewer.returncode == 1 and "HTTP 403" in viewer.stderr
    gone = await netd(api, "pool", "remove", "v-pool", token=admin, tmp=tmp_path)
    assert gone.returncode == 0, gone.stderr
    removed = await netd(api, "nas", "remove", "v-bng", token=admin, tmp=tmp_path)
    assert removed.returncode == 0, removed.stderr
    audit = await api.pool.fetch(
        "SELECT action, actor, status FROM audit_log WHERE target IN ('v-bng', 'v-pool', 'v-s1') "
        "ORDER BY id"
    )
    assert [(a["action"], a["actor"], a["status"]) for a in audit] == [
        ("nas.create", "api:test-admin", 201),
        ("nas.update", "api:test-admin", 200),
        ("pools.add", "api:test-admin", 201),
        ("sessions.clear", "api:test-operator", 200),
        ("sessions.clear", "api:test-operator", 409),
        ("sessions.clear", "api:test-viewer", 403),
        ("pools.delete", "api:test-admin", 204),
        ("nas.delete", "api:test-admin", 204),
    ]


def test_realm_verbs_through_the_api(api: ApiServer, tmp_path: Path) -> None:
    """netd realm set|list|remove|home-servers with --api (on main: refused, "works only
    on the local stores"): the API's answers and refusals, its roles."""
    admin, viewer = api.tokens["admin"], api.tokens["viewer"]
    made = netd(
        api, "realm", "set", "api-cli.example", "--realm-action", "reject", "--reason", "via API",
        token=admin, tmp=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["spec"] == {"action": "reject", "reason": "via API"}
    listed = netd(api, "realm", "list", "--json", token=viewer, tmp=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {
        "name": "api-cli.example",
        "source": "api",
        "spec": {"action": "reject", "reason": "via API"},
    } in rows
    nopool = netd(
        api, "realm", "set", "x.example", "--realm-action", "proxy", "--pool", "nope",
        token=admin, tmp=tmp_path,
    )  # fmt: skip
    assert nopool.returncode == 2 and "HTTP 4" in nopool.stderr, nopool.stderr
    assert len(nopool.stderr.strip().splitlines()) == 1, nopool.stderr
    refused = netd(api, "realm", "remove", "api-cli.example", token=viewer, tmp=tmp_path)
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr, refused.stderr
    servers = netd(api, "realm", "home-servers", token=viewer, tmp=tmp_path)
    assert servers.returncode == 0, servers.stderr
    gone = netd(api, "realm", "remove", "api-cli.example", token=admin, tmp=tmp_path)
    assert gone.returncode == 0, gone.stderr
    after = netd(api, "realm", "list", "--json", token=viewer, tmp=tmp_path)
    assert "api-cli.example" not in after.stdout
