"""Queueing CPE tasks (API and CLI alike) and poking the CPE with a connection request.

``poke_device`` is the one place a connection request is decided and sent from (HTTP,
TR-069 §3.2.2, or UDP, Annex G), by the API, the CLI and the ACS's own dispatcher alike:
a check of where requests may go belongs there.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from daemons.acs import guard, stun
from daemons.acs.connreq import connection_request
from daemons.acs.engine import TASK_KINDS
from daemons.core.config import AcsConfig
from daemons.store import acs as store
from daemons.store import cpe_bulk
from daemons.store.events import append_event


class TaskError(ValueError):
    """The task cannot be queued: unknown device or kind, bad arguments."""


_REQUIRED = {
    "getParameterValues": ("names",),
    "getParameterAttributes": ("names",),
    "setParameterValues": ("values",),
    "setParameterAttributes": ("attributes",),
    "addObject": ("name",),
    "deleteObject": ("name",),
    "upload": ("url",),
    "runPreset": ("preset",),
}


def check(kind: str, args: dict[str, Any]) -> None:
    if kind not in TASK_KINDS:
        raise TaskError(f"kind must be one of {', '.join(TASK_KINDS)}")
    missing = [k for k in _REQUIRED.get(kind, ()) if k not in args]
    if missing:
        raise TaskError(f"{kind} needs {', '.join(missing)}")
    if kind == "download" and not (args.get("url") or args.get("file")):
        raise TaskError("download needs url, or file (a name in the ACS file store)")
    if kind == "setParameterValues":
        values = args["values"]
        if not isinstance(values, list) or not all(
            isinstance(v, list) and len(v) == 3 and all(isinstance(x, str) for x in v)
            for v in values
        ):
            raise TaskError("values is a list of [name, value, xsd type]")
    if kind == "runPreset" and not (isinstance(args["preset"], str) and args["preset"]):
        raise TaskError("runPreset needs preset, the name of a preset in force")
    if kind in ("getParameterValues", "getParameterAttributes"):
        names = args["names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TaskError("names is a list of parameter names")


async def queue(
    pool: asyncpg.Pool,
    cfg: AcsConfig,
    device_id: str,
    kind: str,
    args: dict[str, Any],
    actor: str,
    expires_in: float | None = None,
    poke: bool = True,
    refused: Refused | None = None,
) -> tuple[int, str]:
    """Queue a task; then, if the device gave a ConnectionRequestURL, ask it to call in.
    Returns the task id and the connection request's outcome (``not-sent`` without one)."""
    check(kind, args)
    device = await store.get_device(pool, device_id)
    if device is None:
        raise TaskError(f"no device {device_id}")
    expires = datetime.now(UTC) + timedelta(seconds=expires_in) if expires_in else None
    task_id = await store.queue_task(pool, device_id, kind, args, actor, expires)
    outcome = "not-sent"
    if poke and (device["connection_request_url"] or udp_address(device)):
        outcome = await poke_device(pool, cfg, device, refused=refused)
    return task_id, outcome


#: sends one datagram from the ACS's STUN socket: (host, port, data)
UdpSend = Callable[[str, int, bytes], None]
#: counts a refused connection request by reason (the caller's metric)
Refused = Callable[[str], None]
POKE_CHANNEL = "netd_acs_poke"  # NOTIFY: a device id whose UDP request the ACS sends


def udp_address(device: dict[str, Any]) -> tuple[str, int] | None:
    """The CPE's NAT binding for UDP connection requests, if it has STUN on and gave one."""
    if not device.get("stun_enabled"):
        return None
    return stun.split_address(str(device.get("udp_connection_request_address") or ""))


def _reachable(url: str, ip: str | None) -> bool:
    """The ConnectionRequestURL is on the address the CPE calls from: no NAT between."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return bool(ip) and host == ip


def cancel_note(was: dict[str, Any]) -> str:
    """What the CPE may still do after a cancel, from the task as it was."""
    if was["status"] == "queued":
        return "it had not started: the CPE receives nothing"
    result = was.get("result") or {}
    if was["kind"] in ("download", "upload") and result.get("status") == 1:
        return (
            "the CPE had accepted the transfer: it may still carry it out (CWMP cannot stop "
            "it from here); its TransferComplete will be recorded in the task's result"
        )
    return (
        "it had started: the ACS sends it no more, but if its RPC had already reached the "
        "CPE (a session in progress) the CPE may carry it out; any answer is recorded in "
        "the task's result"
    )


async def cancel(pool: asyncpg.Pool, task_id: int) -> tuple[dict[str, Any], str]:
    """Cancel a queued or running task (API and CLI alike): (its status before, the note of
    what the CPE may still do). Raises TaskError ``no task`` or ``ended``."""
    was = await store.cancel_task(pool, task_id)
    if was is None:
        task = await store.get_task(pool, task_id)
        if task is None:
            raise TaskError(f"no task {task_id}")
        raise TaskError(f"task {task_id} has ended ({task['status']}); it cannot be cancelled")
    return was, cancel_note(was)


def reach(cfg: AcsConfig) -> guard.Reach:
    """Where this config lets connection requests go."""
    return guard.Reach(
        guard.parse_networks(cfg.connection_request_networks),
        guard.parse_networks(cfg.connection_request_internal),
        cfg.connection_request_allow_loopback,
    )


async def _refuse(
    pool: asyncpg.Pool,
    device: dict[str, Any],
    why: str,
    target: str,
    refused: Refused | None,
) -> str:
    """Record a refused connection request (an event, the caller's metric); its outcome."""
    word = why.split(":", 1)[0]
    if refused is not None:
        refused(word)
    # the outcome still says so when the store is down (reported elsewhere)
    with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        await append_event(
            pool,
            "acs",
            "cpe.connection_request_refused",
            subject=str(device["id"]),
            data={"target": target[:512], "reason": why, "inform_ip": device.get("ip")},
            severity="warning",
        )
    return f"refused-{word}"


async def poke_device(
    pool: asyncpg.Pool,
    cfg: AcsConfig,
    device: dict[str, Any],
    udp: UdpSend | None = None,
    refused: Refused | None = None,
) -> str:
    """Ask the CPE to call in now. A CPE with STUN on and a UDPConnectionRequestAddress
    gets the signed UDP request (``udp-sent`` from the ACS's STUN socket; ``udp-queued``
    when another process, the API or CLI, hands it to the ACS by NOTIFY); HTTP is tried
    when there is no UDP binding, or when the ConnectionRequestURL is on the address the
    CPE calls from (reachable), and its outcome wins when ``ok``: ``ok``,
    ``unauthorized``, ``unreachable``, ``no-url``, ``http-<status>``.

    Every target is checked first (``guard``: an IP address in the CPE networks, by
    default the address of the CPE's last Inform; never loopback, link-local or the
    operator's internal networks): a refused one is not contacted, it is an event
    ``cpe.connection_request_refused`` and ``refused(reason)``, and the outcome is
    ``refused-<reason>``."""
    where = reach(cfg)
    inform_ip = device.get("ip")
    inform = str(inform_ip) if inform_ip else None
    username = cfg.connection_request_username
    if not username:
        found = await store.device_params(
            pool, str(device["id"]), f"{device['root']}.ManagementServer.ConnectionRequestUsername"
        )
        username = next((str(r["value"] or "") for r in found.values()), "")
    password = (
        cfg.connection_request_password.get_secret_value()
        if cfg.connection_request_password
        else ""
    )
    outcome = ""
    address = udp_address(device)
    if address is not None:
        why = guard.target_refused(where, address[0], inform)
        if why is not None:
            outcome = await _refuse(pool, device, why, f"udp:{address[0]}:{address[1]}", refused)
            address = None
    if address is not None and udp is not None:
        host, port = address
        message = stun.udp_connection_request(
            host,
            port,
            username,
            password,
            int(time.time()),
            secrets.randbelow(2**32),
            secrets.token_hex(8),
        )
        for _ in range(cfg.udp_connection_request_copies):  # identical copies (G.2.2.3)
            udp(host, port, message)
        outcome = "udp-sent"
    elif address is not None and cfg.stun_port:
        await pool.execute("SELECT pg_notify($1, $2)", POKE_CHANNEL, str(device["id"]))
        outcome = "udp-queued"
    url = str(device["connection_request_url"] or "")
    sent = outcome in ("udp-sent", "udp-queued")
    if not sent or (url and _reachable(url, inform)):
        if not url.startswith(("http://", "https://")):
            return outcome or "no-url"
        why = guard.url_refused(where, url, inform)
        if why is not None:
            refusal = await _refuse(pool, device, why, url, refused)
            return outcome if sent else refusal
        http = await connection_request(
            url, username, password, cfg.connection_request_timeout, cfg.connection_request_basic
        )
        if http == "refused-basic":
            why = "basic: the CPE offers only Basic and acs.connection_request_basic is off"
            http = await _refuse(pool, device, why, url, refused)
        return http if http == "ok" or not sent else outcome
    return outcome


FILTER_KEYS = ("tags", "oui", "product_class", "software_version", "parameter")
_TAG = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # as the API's tags


def check_filter(f: dict[str, Any]) -> dict[str, Any]:
    """A device filter (every key given must match): ``tags`` (all of them), ``oui``,
    ``product_class``, ``software_version``, ``parameter`` ({"name", "value"}: a stored
    parameter's value). The same check for the API, gRPC and the CLI. Returns it without
    empty keys; raises TaskError."""
    unknown = set(f) - set(FILTER_KEYS)
    if unknown:
        raise TaskError(f"unknown filter key(s) {sorted(unknown)}; known: {', '.join(FILTER_KEYS)}")
    out: dict[str, Any] = {}
    tags = f.get("tags") or []
    if (
        not isinstance(tags, list)
        or len(tags) > 64
        or not all(isinstance(t, str) and _TAG.match(t) for t in tags)
    ):
        raise TaskError("filter tags: at most 64, each 1 to 64 of A-Z a-z 0-9 _ . : -")
    if tags:
        out["tags"] = sorted(set(tags))
    for key, most in (("oui", 6), ("product_class", 128), ("software_version", 128)):
        value = f.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > most:
            raise TaskError(f"filter {key} is a string of at most {most} characters")
        out[key] = value
    param = f.get("parameter")
    if param:
        if (
            not isinstance(param, dict)
            or set(param) != {"name", "value"}
            or not all(isinstance(v, str) for v in param.values())
            or not param["name"].startswith(("Device.", "InternetGatewayDevice."))
            or len(param["name"]) > 512
            or len(param["value"]) > 4096
        ):
            raise TaskError(
                'filter parameter is {"name": "Device....", "value": "..."} (name at most '
                "512 characters, value 4096)"
            )
        out["parameter"] = dict(param)
    if not out:
        raise TaskError("a bulk run needs a filter (every device: give a tag they share)")
    return out


async def queue_bulk(
    pool: asyncpg.Pool,
    cfg: AcsConfig,
    f: dict[str, Any],
    kind: str,
    args: dict[str, Any],
    actor: str,
    rate: float | None = None,
    expires_in: float | None = None,
) -> int:
    """One task for every device ``f`` matches, their connection requests paced at
    ``rate`` a second (acs.connection_request_rate by default) by the ACS's dispatcher.
    The bulk run's id; TaskError for a bad filter, kind or arguments, or no device."""
    f = check_filter(f)
    check(kind, args)
    rate = cfg.connection_request_rate if rate is None else rate
    if not 0 < rate <= 100_000:
        raise TaskError("rate is connection requests a second, above 0 and at most 100000")
    if not await cpe_bulk.count_matching(pool, f):
        raise TaskError("no device matches the filter")
    expires = datetime.now(UTC) + timedelta(seconds=expires_in) if expires_in else None
    return await cpe_bulk.create_bulk(pool, f, kind, args, rate, actor, expires)
