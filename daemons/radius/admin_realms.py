"""``netd realm list|set|remove|home-servers``: realms managed through the API, on the local
stores, by the same operations as the HTTP API (``daemons/api/ops_realms.py``); with
``--api`` through that API (``daemons/api/client.py``), same arguments and output. A realm in
a policy file wins and is edited there; home servers and pools are file-only."""

from __future__ import annotations

import argparse

from daemons.api import models as m
from daemons.api import ops_realms
from daemons.api.local import LocalState
from daemons.core import output

AUDITED = {("realm", "set"): "realms.put", ("realm", "remove"): "realms.delete"}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    realm = sub.add_parser("realm", help="RADIUS realms (issue 28): list, set, remove")
    rs = realm.add_subparsers(dest="action", required=True, metavar="ACTION")
    rs.add_parser("list", help="realms of the policy files and of the API")
    st = rs.add_parser("set", help="create or replace an API-managed realm")
    st.add_argument("name", help='a realm ("isp.example", "*.example", DEFAULT, NULL)')
    st.add_argument(
        "--realm-action", dest="realm_action", required=True, choices=("local", "proxy", "reject")
    )
    st.add_argument("--pool", help="proxy: the home-server pool")
    st.add_argument("--strip", action=argparse.BooleanOptionalAction, default=None)
    st.add_argument("--plan", help="local: the plan of its subscribers on 'default'")
    st.add_argument("--reason", help="reject: the Reply-Message")
    st.add_argument("--ledger", action=argparse.BooleanOptionalAction, default=None)
    rm = rs.add_parser("remove", help="remove an API-managed realm")
    rm.add_argument("name")
    rs.add_parser("home-servers", help="home servers, their pools and state per instance")


def realm_spec(args: argparse.Namespace) -> m.RealmSpec:
    """``netd realm set``'s arguments as the API's body (checked as the API checks it)."""
    return m.RealmSpec(
        action=args.realm_action,
        pool=args.pool,
        strip=args.strip,
        plan=args.plan,
        reason=args.reason,
        ledger=args.ledger,
    )


async def dispatch(st: LocalState, args: argparse.Namespace) -> int:
    if args.action == "list":
        realms = await ops_realms.list_realms(st)
        return output.rows(args, [r.model_dump() for r in realms], "no realms")
    if args.action == "set":
        realm, _created = await ops_realms.put_realm(st, args.name, realm_spec(args))
        return output.record(args, realm.model_dump())
    if args.action == "remove":
        await ops_realms.delete_realm(st, args.name)
        return 0
    servers = await ops_realms.home_servers(st)
    return output.rows(args, [s.model_dump() for s in servers], "no home servers")
