"""The admin commands (``netd nas|subscriber|session|token``) through the HTTP API.

``netd --api URL --token-file F nas list`` does over the API what ``netd nas list`` does on
the stores, with the same arguments and the same JSON-lines output, so a NOC workstation
needs no database access. The server's roles and audit apply to every call.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from daemons.radius.admin import _read_secret

TOKEN_ENV = "DOTMAC_NETD_TOKEN"  # noqa: S105 - a variable name; not NETD_*: those are config keys


class CliError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("through the API (instead of the local stores)")
    group.add_argument(
        "--api",
        metavar="URL",
        help="run nas, subscriber, session and token commands against this API, "
        "e.g. https://netd.example.net:8080",
    )
    group.add_argument(
        "--token",
        help=f"the bearer token (visible in ps: prefer --token-file or ${TOKEN_ENV})",
    )
    group.add_argument("--token-file", type=Path, help="read the bearer token from this file")
    group.add_argument(
        "--ca-file", type=Path, help="CA bundle to verify an https API (default: system CAs)"
    )


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        path: Path = args.token_file
        return path.read_text(encoding="utf-8").strip()
    token: str = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise CliError(f"--api needs a token: --token-file, --token or ${TOKEN_ENV}", 2)
    return token


class Api:
    def __init__(self, args: argparse.Namespace) -> None:
        self.client = httpx.Client(
            base_url=args.api.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {_token(args)}"},
            timeout=30.0,
            verify=ssl.create_default_context(cafile=str(args.ca_file)) if args.ca_file else True,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the API: {exc}") from None
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                message = err["message"]
                for detail in err.get("details", []):
                    message += f"; {detail['field']}: {detail['message']}"
            except (ValueError, KeyError, TypeError):
                message = resp.reason_phrase
            raise CliError(
                f"{message} (HTTP {resp.status_code})",
                2 if resp.status_code in (400, 422) else 1,
            )
        return resp.json() if resp.content else None

    def pages(self, path: str, params: dict[str, Any], limit: int | None = None) -> Iterator[Any]:
        """Every item of a paged list (at most ``limit``)."""
        cursor = None
        given = 0
        while True:
            query = {k: v for k, v in params.items() if v is not None}
            query["limit"] = min(1000, limit - given) if limit else 1000
            if cursor:
                query["cursor"] = cursor
            body = self.call("GET", path, params=query)
            for item in body["items"]:
                yield item
                given += 1
            cursor = body["next_cursor"]
            if cursor is None or (limit and given >= limit):
                return


def _q(text: str) -> str:
    return quote(text, safe="")


def _print(item: Any) -> None:
    print(json.dumps(item))


def run(args: argparse.Namespace) -> int:
    try:
        api = Api(args)
        handler = {
            "nas": _nas,
            "subscriber": _subscriber,
            "session": _session,
            "token": _tok,
            "cpe": _cpe,
        }
        if args.command not in handler:
            raise CliError(f"netd {args.command} works only on the local stores, not via --api", 2)
        return handler[args.command](api, args)
    except CliError as exc:
        print(f"netd: {exc}", file=sys.stderr)
        return exc.status
    except (OSError, ValueError) as exc:
        print(f"netd: {exc}", file=sys.stderr)
        return 2


def _nas(api: Api, args: argparse.Namespace) -> int:
    if args.action == "add":
        secret = _read_secret(args.secret_stdin, args.secret_file, "shared secret")
        made = api.call(
            "POST",
            "/nas",
            json={
                "name": args.name,
                "network": args.address,
                "secret": secret,
                "vendor": args.vendor,
                "require_message_authenticator": not args.no_require_message_authenticator,
                "coa_port": args.coa_port,
                "description": args.description,
            },
        )
        print(f"added NAS {made['name']} ({made['network']}, vendor {made['vendor']})")
    elif args.action == "list":
        for item in api.pages("/nas", {}):
            _print(item)
    else:
        api.call("DELETE", f"/nas/{_q(args.name)}")
        print(f"removed NAS {args.name}")
    return 0


def _subscriber(api: Api, args: argparse.Namespace) -> int:
    if args.action == "list":
        # The API pages by cursor; --after is honoured by skipping (names are ordered).
        for item in api.pages("/subscribers", {"plan": args.plan}, None):
            if item["username"] > args.after:
                _print(item)
                args.limit -= 1
                if args.limit <= 0:
                    break
        return 0
    if args.action == "show":
        print(json.dumps(api.call("GET", f"/subscribers/{_q(args.username)}"), indent=2))
        return 0
    if args.action == "remove":
        api.call("DELETE", f"/subscribers/{_q(args.username)}")
        print(f"removed subscriber {args.username}")
        return 0
    if args.nt_hash_stdin:
        raise CliError("--nt-hash-stdin works only on the local stores", 2)
    body: dict[str, Any] = {}
    password = _read_secret(args.password_stdin, args.password_file, "password")
    if password is not None:
        body["password"] = password
        body["hash"] = args.hash
    for key, value in (
        ("plan", args.plan),
        ("state", args.state),
        ("mac", args.mac),
        ("framed_ip", args.ip),
    ):
        if value is not None:
            body[key] = value
    if args.action == "add":
        api.call("POST", "/subscribers", json={"username": args.username, **body})
        print(f"added subscriber {args.username}")
    else:
        api.call("PATCH", f"/subscribers/{_q(args.username)}", json=body)
        print(f"updated subscriber {args.username}")
    return 0


def _session(api: Api, args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.closed:
            raise CliError("--closed works only on the local stores (the API lists live ones)", 2)
        params = {"user": args.user, "nas": args.nas, "ip": args.ip}
        for item in api.pages("/sessions", params, args.limit):
            _print(item)
        return 0
    if args.action == "show":
        print(json.dumps(api.call("GET", f"/sessions/{_q(args.session_id)}"), indent=2))
        return 0
    if args.session_id:
        targets = [args.session_id]
    else:
        targets = [s["unique_id"] for s in api.pages("/sessions", {"user": args.user})]
    if not targets:
        raise CliError("no open session matches")
    body: dict[str, Any] = {"retries": args.retries}
    if args.action == "coa":
        if args.plan:
            body["plan"] = args.plan
        attrs = {}
        for item in args.attr:
            name, sep, value = item.partition("=")
            if not sep:
                raise CliError(f"--attr {item!r} is not NAME=VALUE", 2)
            attrs[name] = value
        body["attributes"] = attrs
    worst = 0
    for session_id in targets:
        out = api.call("POST", f"/sessions/{_q(session_id)}/{args.action}", json=body)
        _print(
            {
                "session": out["session"],
                "nas": out["nas"],
                "result": out["result"],
                "error_cause": out["error_cause"],
                "attempts": out["attempts"],
            }
        )
        worst = max(worst, 0 if out["result"] == "ack" else 1)
    return worst


def _tok(api: Api, args: argparse.Namespace) -> int:
    if args.action == "create":
        made = api.call("POST", "/tokens", json={"name": args.name, "role": args.role})
        print(made["token"])
        print(
            f"created token {made['name']} (id {made['id']}, role {made['role']}); the secret "
            "above is shown only now",
            file=sys.stderr,
        )
    elif args.action == "list":
        for item in api.pages("/tokens", {"revoked": "true" if args.revoked else None}):
            _print(item)
    else:
        api.call("DELETE", f"/tokens/{_q(args.name)}")
        print(f"revoked token {args.name}")
    return 0


def _cpe_bulk(api: Api, args: argparse.Namespace) -> int:
    from daemons.acs.admin import bulk_filter, task_args  # noqa: PLC0415 - the CLI's parser

    if args.action == "bulk":
        body = {"filter": bulk_filter(args), "kind": args.kind, "args": task_args(args.args)}
        if args.rate:
            body["rate"] = args.rate
        _print(api.call("POST", "/cpe-bulk", json=body))
    elif args.action == "bulk-cancel":
        out = api.call("DELETE", f"/cpe-bulk/{args.bulk_id}")
        print(f"cancelled bulk run {args.bulk_id}: {out['cancelled']} tasks")
    else:
        _print(api.call("GET", f"/cpe-bulk/{args.bulk_id}"))
        if args.tasks:
            for item in api.pages("/cpe-tasks", {"bulk": args.bulk_id}):
                _print(item)
    return 0


def _cpe(api: Api, args: argparse.Namespace) -> int:
    a = args.action
    if a == "list":
        for item in api.pages("/cpes", {"q": args.q, "tag": args.tag}, args.limit):
            _print(item)
    elif a == "show":
        print(json.dumps(api.call("GET", f"/cpes/{_q(args.device_id)}"), indent=2))
    elif a == "params":
        path = f"/cpes/{_q(args.device_id)}/parameters"
        for item in api.pages(path, {"prefix": args.prefix}):
            _print(item)
    elif a == "task":
        from daemons.acs.admin import task_args  # noqa: PLC0415 - the CLI's own parser

        out = api.call(
            "POST",
            f"/cpes/{_q(args.device_id)}/tasks",
            json={
                "kind": args.kind,
                "args": task_args(args.args),
                "connection_request": not args.no_poke,
            },
        )
        _print({"task": out["task"]["id"], "connection_request": out["connection_request"]})
    elif a == "tasks":
        params = {"device": args.device, "status": args.status}
        for item in api.pages("/cpe-tasks", params, args.limit):
            _print(item)
    elif a == "cancel":
        out = api.call("DELETE", f"/cpe-tasks/{args.task_id}")
        print(f"cancelled task {args.task_id} (was {out['was']}): {out['note']}")
    elif a in ("bulk", "bulk-show", "bulk-cancel"):
        return _cpe_bulk(api, args)
    elif a == "connreq":
        out = api.call("POST", f"/cpes/{_q(args.device_id)}/connection-request")
        _print(out)
        return 0 if out["outcome"] in ("ok", "udp-sent", "udp-queued") else 1
    elif a == "faults":
        for item in api.pages("/cpe-faults", {"device": args.device}, args.limit):
            _print(item)
    elif a == "files":
        for item in api.pages("/files", {}, args.limit):
            _print(item)
    elif a == "file-put":
        params = {
            "file_type": args.type,
            "version": args.version,
            "oui": args.oui,
            "product_class": args.product_class,
        }
        _print(
            api.call(
                "PUT",
                f"/files/{_q(args.name)}",
                params=params,
                content=args.path.read_bytes(),
                headers={"Content-Type": "application/octet-stream"},
            )
        )
    elif a == "file-remove":
        api.call("DELETE", f"/files/{_q(args.name)}")
        print(f"removed file {args.name}")
    else:
        for item in api.call("GET", "/presets"):
            _print(item)
    return 0
