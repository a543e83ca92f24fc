"""Acting on live sessions: Disconnect and CoA to the NAS (RFC 5176), audited.

Shared by ``netd session`` and, later, the admin API. The NAS is reached at its address
(a single-host NAS entry, or the NAS-IP-Address it reported) on its CoA port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Any

import asyncpg

from daemons.core.secrets import Sealer
from daemons.radius import coa
from daemons.radius.dictionary import Dictionary, ReplyAttr
from daemons.radius.policy import Policy
from daemons.store import accounting
from daemons.store import radius as store

log = logging.getLogger("netd.radius.coa")


class CoaError(Exception):
    """The request could not be sent (unknown session or NAS, no address for it)."""


@dataclass(frozen=True)
class CoaOutcome:
    result: str  # ack | nak | timeout
    error_cause: int | None
    attempts: int
    audit_id: int


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.replies.full():
            self.replies.put_nowait(data)


async def exchange(
    host: str, port: int, request: bytes, secret: bytes, first_wait: float = 1.0, retries: int = 3
) -> tuple[coa.CoaResult | None, int]:
    """Send, retransmitting with exponential backoff; the valid reply and attempts made."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Collector, remote_addr=(host, port))
    try:
        for attempt in range(1, retries + 1):
            transport.sendto(request)
            deadline = loop.time() + first_wait * 2 ** (attempt - 1)
            while (left := deadline - loop.time()) > 0:
                try:
                    raw = await asyncio.wait_for(proto.replies.get(), left)
                except TimeoutError:
                    break
                answer = coa.read_reply(raw, request, secret)
                if answer is not None:
                    return answer, attempt
        return None, retries
    finally:
        transport.close()


async def act(
    pool: asyncpg.Pool,
    sealer: Sealer,
    dictionary: Dictionary,
    policy: Policy,
    session: dict[str, Any],
    kind: str,
    extra: list[ReplyAttr],
    actor: str,
    first_wait: float = 1.0,
    retries: int = 3,
) -> CoaOutcome:
    """Disconnect or change a session and audit it. Raises CoaError before sending."""
    nas = await store.get_nas(pool, str(session["nas"]))
    if nas is None:
        raise CoaError(f"NAS {session['nas']} is not configured")
    network = ipaddress.ip_network(nas.network)
    reported = await accounting.session_nas_ip(pool, str(session["unique_id"]))
    host = str(network.network_address) if network.num_addresses == 1 else reported
    if host is None:
        raise CoaError(f"NAS {nas.name} is a prefix and the session has no NAS-IP-Address")
    secret = sealer.open(nas.secret_enc, f"nas:{nas.name}".encode())
    vendor = policy.vendors.get(nas.vendor)
    names = vendor.coa_identify if vendor and vendor.coa_identify else coa.DEFAULT_IDENTIFY
    ref = coa.SessionRef(
        str(session["acct_session_id"]),
        str(session["username"]),
        session.get("framed_ip"),
        reported,
        session.get("framed_ipv6_prefix"),
        session.get("delegated_ipv6_prefix"),
    )
    request = coa.build(
        kind, int.from_bytes(os.urandom(1), "big"), ref, extra, dictionary, secret, names
    )
    audit_id = await accounting.audit_coa(
        pool,
        actor=actor,
        kind=kind,
        nas=nas.name,
        unique_id=str(session["unique_id"]),
        username=str(session["username"]),
        attributes={a.name: a.value for a in extra},
    )
    answer, attempts = await exchange(host, nas.coa_port, request, secret, first_wait, retries)
    result = answer.result if answer else "timeout"
    cause = answer.error_cause if answer else None
    await accounting.finish_coa(pool, audit_id, result, cause, attempts)
    log.info(
        "session request answered",
        extra={
            "fields": {
                "kind": kind,
                "nas": nas.name,
                "user": session["username"],
                "result": result,
                "error_cause": cause,
                "attempts": attempts,
            }
        },
    )
    return CoaOutcome(result, cause, attempts, audit_id)


def plan_change(policy: Policy, plan_name: str, vendor: str) -> list[ReplyAttr]:
    """The attributes that move a live session to another plan (no address changes)."""
    plan = policy.plan_for(plan_name)
    if plan is None:
        raise CoaError(f"no plan {plan_name!r}")
    return [
        a
        for a in policy.reply(plan, vendor, None)
        if a.name not in ("Framed-Pool", "Framed-IP-Address")
    ]
