"""The admin commands (``netd nas|subscriber|session|token|realm``) through the HTTP API.

``netd --api URL --token-file F nas list`` does over the API what ``netd nas list`` does on
the stores, with the same arguments and the same JSON-lines output, so a NOC workstation
needs no database access. The server's roles and audit apply to every call.
"""

from __future__ import annotations

import argparse
import itertools
import os
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from daemons.api import models as m
from daemons.api.local import problem
from daemons.core import output, validate
from daemons.core.output import fail
from daemons.radius import admin as radius_admin
from daemons.radius import admin_realms

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


# The commands this client runs through the API; the others work on the local stores only.
COMMANDS = ("nas", "subscriber", "session", "pool", "token", "cpe", "realm")


def run(args: argparse.Namespace) -> int:
    try:
        handler = {
            "nas": _nas,
            "subscriber": _subscriber,
            "session": _session,
            "pool": _pool,
            "token": _tok,
            "cpe": _cpe,
            "realm": _realm,
        }.get(args.command)
        if handler is None:
            raise CliError(f"netd {args.command} works only on the local stores, not via --api", 2)
        return handler(Api(args), args)
    except CliError as exc:
        return fail(str(exc), exc.status)
    except (ValueError, OSError) as exc:  # pydantic's ValidationError and Invalid are ValueErrors
        found = problem(exc)
        return fail(*found) if found else fail(str(exc), 2)


def _nas(api: Api, args: argparse.Namespace) -> int:
    if args.action == "add":
        body = radius_admin.nas_create(args)  # the API's model: refused here as there
        made = api.call("POST", "/nas", json=body.model_dump())
        print(f"added NAS {made['name']} ({made['network']}, vendor {made['vendor']})")
    elif args.action == "set":
        update = radius_admin.nas_update(args)
        changed = update.model_dump(exclude_unset=True)
        made = api.call("PATCH", f"/nas/{_q(args.name)}", json=changed)
        print(f"updated NAS {made['name']} ({', '.join(sorted(changed))})")
    elif args.action == "list":
        output.rows(args, api.pages("/nas", {}), "no NAS clients")
    else:
        api.call("DELETE", f"/nas/{_q(args.name)}")
        print(f"removed NAS {args.name}")
    return 0


def _realm(api: Api, args: argparse.Namespace) -> int:
    """``netd realm`` as on the local stores (``daemons/radius/admin_realms.py``)."""
    if args.action == "list":
        return output.rows(args, api.call("GET", "/realms"), "no realms")
    if args.action == "set":
        body = admin_realms.realm_spec(args)  # the API's model: refused here as there
        made = api.call("PUT", f"/realms/{_q(args.name)}", json=body.model_dump())
        return output.record(args, made)
    if args.action == "remove":
        api.call("DELETE", f"/realms/{_q(args.name)}")
        return 0
    return output.rows(args, api.call("GET", "/home-servers"), "no home servers")


def _subscriber(api: Api, args: argparse.Namespace) -> int:
    if args.action == "list":
        limit = validate.bounded(args.limit, validate.LIMIT, "--limit")
        # The API pages by cursor; --after is honoured by skipping (names are ordered).
        found = (
            item
            for item in api.pages("/subscribers", {"plan": args.plan, "state": args.state}, None)
            if item["username"] > args.after
        )
        output.rows(args, itertools.islice(found, limit), "no subscribers")
        return 0
    if args.action == "show":
        return output.record(args, api.call("GET", f"/subscribers/{_q(args.username)}"))
    if args.action == "remove":
        api.call("DELETE", f"/subscribers/{_q(args.username)}")
        print(f"removed subscriber {args.username}")
        return 0
    if args.nt_hash_stdin:
        raise CliError("--nt-hash-stdin works only on the local stores", 2)
    fields = radius_admin.subscriber_fields(args)
    if args.action == "add":
        body = m.SubscriberCreate(username=args.username, **fields)
        api.call("POST", "/subscribers", json=body.model_dump(exclude_unset=True))
        print(f"added subscriber {args.username}")
    else:
        update = m.SubscriberFields(**fields)
        path = f"/subscribers/{_q(args.username)}"
        api.call("PATCH", path, json=update.model_dump(exclude_unset=True))
        print(f"updated subscriber {args.username}")
    return 0


def _pool(api: Api, args: argparse.Namespace) -> int:
    if args.action == "add":
        body = m.PoolAdd(name=args.name, ranges=args.ranges, lease_time=args.lease)
        added = api.call("POST", "/pools", json=body.model_dump())
        taken = f", {added['taken']} already in a pool" if added["taken"] else ""
        print(
            f"pool {added['name']}: {added['added']} addresses added{taken}; "
            f"{added['size']} in all, {added['leased']} leased"
        )
    elif args.action == "remove":
        gone = api.call("GET", f"/pools/{_q(args.name)}")
        params = {"force": "true"} if args.force else {}
        api.call("DELETE", f"/pools/{_q(args.name)}", params=params)
        print(f"removed pool {args.name} ({gone['size']} addresses, {gone['leased']} were leased)")
    else:
        output.rows(args, api.call("GET", "/pools"), "no pools")
    return 0


def _session(api: Api, args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.closed:
            raise CliError("--closed works only on the local stores (the API lists live ones)", 2)
        if args.ip is not None:
            validate.ip_address(args.ip, "ip")
        limit = validate.bounded(args.limit, validate.LIMIT, "--limit")
        params = {"user": args.user, "nas": args.nas, "ip": args.ip}
        output.rows(args, api.pages("/sessions", params, limit), "no open sessions")
        return 0
    nas = {"nas": args.nas} if args.nas else {}
    if args.action == "show":
        return output.record(args, api.call("GET", f"/sessions/{_q(args.session_id)}", params=nas))
    if args.session_id:
        targets = [args.session_id]
    else:
        targets = [s["unique_id"] for s in api.pages("/sessions", {"user": args.user, **nas})]
        nas = {}
    if not targets:
        raise CliError(f"no open session of {args.user}")
    if args.action == "clear":
        for key in targets:
            out = api.call("POST", f"/sessions/{_q(key)}/clear", params=nas)
            print(
                f"cleared session {out['session']} of {out['username'] or '-'} on {out['nas']}: "
                f"Stop (Admin-Reset) at {out['stopped_at']}"
            )
        return 0
    body: dict[str, Any] = {}
    if args.retries is not None:
        body["retries"] = m.DisconnectRequest(retries=args.retries).retries
    if args.action == "coa":
        attrs: dict[str, str | int] = {}
        for item in args.attr:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise CliError(f"--attr {validate.show(item)} is not NAME=VALUE", 2)
            attrs[name] = value
        body.update(m.CoaRequest(plan=args.plan, attributes=attrs).model_dump(exclude_none=True))
    results = []
    for session_id in targets:
        path = f"/sessions/{_q(session_id)}/{args.action}"
        out = api.call("POST", path, json=body, params=nas)
        results.append(
            {
                "session": out["session"],
                "nas": out["nas"],
                "result": out["result"],
                "error_cause": out["error_cause"],
                "attempts": out["attempts"],
            }
        )
    output.rows(args, results, "no sessions")
    failed = sum(1 for r in results if r["result"] != "ack")
    if failed:
        return fail(f"{failed} of {len(results)} sessions not acknowledged by the NAS", 1)
    return 0


def _tok(api: Api, args: argparse.Namespace) -> int:
    if args.action == "create":
        body = m.TokenCreate(
            name=args.name, role=args.role, expires_in=args.expires_in, networks=args.network
        )
        made = api.call("POST", "/tokens", json=body.model_dump())
        print(made["token"])
        print(
            f"created token {made['name']} (id {made['id']}, role {made['role']}); the secret "
            "above is shown only now",
            file=sys.stderr,
        )
    elif args.action == "list":
        found = api.pages("/tokens", {"revoked": "true" if args.revoked else None})
        output.rows(args, found, "no tokens")
    elif args.action == "rotate":
        made = api.call("POST", f"/tokens/{_q(args.name)}/rotate")
        print(made["token"])
        print(
            f"rotated token {made['name']} (id {made['id']}); the old secret no longer works, "
            "the new one above is shown only now",
            file=sys.stderr,
        )
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
        return output.record(args, api.call("POST", "/cpe-bulk", json=body))
    bulk_id = validate.bounded(args.bulk_id, validate.ID, "bulk run id")
    if args.action == "bulk-cancel":
        out = api.call("DELETE", f"/cpe-bulk/{bulk_id}")
        print(f"cancelled bulk run {bulk_id}: {out['cancelled']} tasks")
        return 0
    output.record(args, api.call("GET", f"/cpe-bulk/{bulk_id}"))
    if args.tasks:
        return output.rows(args, api.pages("/cpe-tasks", {"bulk": bulk_id}), "no tasks")
    return 0


def _limit(args: argparse.Namespace) -> int:
    return validate.bounded(args.limit, validate.LIMIT, "--limit")


def _cpe(api: Api, args: argparse.Namespace) -> int:
    a = args.action
    if a == "list":
        found = api.pages("/cpes", {"q": args.q, "tag": args.tag}, _limit(args))
        return output.rows(args, found, "no CPEs")
    if a == "show":
        return output.record(args, api.call("GET", f"/cpes/{_q(args.device_id)}"))
    if a == "params":
        path = f"/cpes/{_q(args.device_id)}/parameters"
        return output.rows(args, api.pages(path, {"prefix": args.prefix}), "no parameters")
    if a == "task":
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
        made = {"task": out["task"]["id"], "connection_request": out["connection_request"]}
        return output.record(args, made)
    if a == "tasks":
        params = {"device": args.device, "status": args.status}
        return output.rows(args, api.pages("/cpe-tasks", params, _limit(args)), "no tasks")
    if a == "cancel":
        task_id = validate.bounded(args.task_id, validate.ID, "task id")
        out = api.call("DELETE", f"/cpe-tasks/{task_id}")
        print(f"cancelled task {task_id} (was {out['was']}): {out['note']}")
        return 0
    if a in ("bulk", "bulk-show", "bulk-cancel"):
        return _cpe_bulk(api, args)
    if a == "connreq":
        out = api.call("POST", f"/cpes/{_q(args.device_id)}/connection-request")
        output.record(args, out)
        if out["outcome"] in ("ok", "udp-sent", "udp-queued"):
            return 0
        return fail(f"connection request: {out['outcome']}", 1)
    if a == "faults":
        found = api.pages("/cpe-faults", {"device": args.device}, _limit(args))
        return output.rows(args, found, "no faults")
    if a == "files":
        return output.rows(args, api.pages("/files", {}, _limit(args)), "no files")
    if a == "file-put":
        params = {
            "file_type": args.type,
            "version": args.version,
            "oui": args.oui,
            "product_class": args.product_class,
        }
        stored = api.call(
            "PUT",
            f"/files/{_q(args.name)}",
            params=params,
            content=args.path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        return output.record(args, stored)
    if a == "file-remove":
        api.call("DELETE", f"/files/{_q(args.name)}")
        print(f"removed file {args.name}")
        return 0
    return output.rows(args, api.call("GET", "/presets"), "no presets")
