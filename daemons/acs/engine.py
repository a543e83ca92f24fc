"""The ACS's decisions for one CWMP session. Pure: no I/O, no asyncio, no store.

The service feeds each envelope a CPE sends to ``Session.receive`` and gets back the body
to answer with (None: end the session) and the effects to record (device facts, parameter
values, task results, faults). Requests to the CPE come from a queue: the device's tasks in
order, then discovery of an unknown tree, in batches so no session grows too long.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daemons.acs import cwmp

ROOTS = ("InternetGatewayDevice.", "Device.")
#: faults about the names asked (TR-069 A.5.1): a batch that gets one is asked in halves
NAME_FAULTS = frozenset({9003, 9004, 9005})
PRESET_KEY = "netd-preset"  # the ParameterKey of values set by presets
TASK_KINDS = (
    "getParameterNames",
    "getParameterValues",
    "getParameterAttributes",
    "setParameterValues",
    "setParameterAttributes",
    "addObject",
    "deleteObject",
    "reboot",
    "factoryReset",
    "download",
    "upload",
    "scheduleInform",
    "refreshObject",
    "runPreset",
)


@dataclass(frozen=True)
class Task:
    id: int
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1  # this start included: the fencing token of the session's lease

    @property
    def command_key(self) -> str:
        return f"netd-task-{self.id}"


# --- effects: what the service records ------------------------------------------------------


@dataclass(frozen=True)
class DeviceSeen:
    device: cwmp.DeviceId
    ns: str
    events: list[tuple[str, str]]
    params: list[cwmp.ParamValue]


@dataclass(frozen=True)
class Params:
    """Values (and, from GetParameterNames, writable flags and objects) read from the CPE."""

    values: list[cwmp.ParamValue] = field(default_factory=list)
    names: list[tuple[str, bool]] = field(default_factory=list)  # (name, writable)
    discovered: bool = False  # the full tree has now been read once
    #: an object path these names are the whole of (a listing of it): stored names under
    #: it that are not among them are gone from the CPE and removed
    prune: str | None = None
    listing: bool = False  # a listing whose leaves' values are read next (unread until then)
    listed: bool = False  # the discovery's listing of the whole tree
    unreadable: list[tuple[str, int]] = field(default_factory=list)  # (name, fault code)


@dataclass(frozen=True)
class Removed:
    """An object the CPE deleted: its stored subtree goes."""

    path: str


@dataclass(frozen=True)
class TaskResult:
    task_id: int
    status: str  # done | fault | running (waits for TransferComplete)
    result: dict[str, Any]


@dataclass(frozen=True)
class Fault:
    code: int
    message: str
    task_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransferDone:
    command_key: str
    fault_code: int
    fault_string: str
    autonomous: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DownloadRequested:
    file_type: str
    args: dict[str, str]


Effect = DeviceSeen | Params | Removed | TaskResult | Fault | TransferDone | DownloadRequested


@dataclass
class Step:
    """What to answer (``body`` is the inside of soap Body; None ends the session) and
    what happened. ``reply_to`` is the cwmp:ID to echo when the body answers a request of
    the CPE's; ``task`` is set when the body is an RPC of that task (the service checks it
    was not cancelled meanwhile)."""

    body: str | None
    effects: list[Effect] = field(default_factory=list)
    http_status: int = 200
    reply_to: str | None = None
    echo: bool = False
    task: Task | None = None


@dataclass(frozen=True)
class EngineConfig:
    batch: int = 100  # parameter names per GetParameterValues
    discover: bool = True  # read an unknown tree (names, then values)


Reply = Callable[[cwmp.Envelope], list[Effect]]
OnFault = Callable[[dict[str, Any]], list[Effect]]


@dataclass
class _Rpc:
    """One queued request: its XML ("" for a task that cannot be sent: ``on_reply`` says
    why), the response expected, its task, and what its answer and a fault mean (None: the
    fault ends the task)."""

    xml: str
    expect: str
    task: Task | None
    on_reply: Reply
    on_fault: OnFault | None = None
    reading: _Reading | None = None  # the reading a GetParameterValues batch belongs to


@dataclass
class _Reading:
    """Values read in batches for a task or the discovery; done when no batch is left."""

    task: Task | None
    discovery: bool
    total: int
    left: int = 0
    unreadable: list[str] = field(default_factory=list)


class SessionError(Exception):
    """The CPE broke the session protocol (answered with a 400 and the session dropped)."""


class Session:
    """One session of one CPE, from its Inform to the ACS's empty answer."""

    def __init__(self, cfg: EngineConfig, inform: cwmp.Envelope) -> None:
        if inform.method != "Inform":
            raise SessionError("a session starts with an Inform")
        self.cfg = cfg
        self.ns = inform.ns
        self.device: cwmp.DeviceId = inform.args["device"]
        self.events = [code for code, _key in inform.args["events"]]
        self.inform_params: list[cwmp.ParamValue] = inform.args["params"]
        self.root = next(
            (r for r in ROOTS for p in self.inform_params if p.name.startswith(r)), ROOTS[1]
        )
        self.inform_events: list[tuple[str, str]] = list(inform.args["events"])
        self._queue: deque[_Rpc] = deque()
        #: effects of tasks this Inform shows the CPE already carried out; recorded before the
        #: InformResponse goes out (see ``plan``)
        self.confirmed: list[Effect] = []
        self._pending: _Rpc | None = None
        self.rpcs_sent = 0
        self.finished = False

    @property
    def device_id(self) -> str:
        return self.device.key

    def first(self, inform: cwmp.Envelope) -> Step:
        """The answer to the Inform that opened the session."""
        return Step(
            cwmp.inform_response(1),
            [DeviceSeen(self.device, self.ns, inform.args["events"], self.inform_params)],
        )

    # --- planning: tasks and discovery ---

    def plan(
        self,
        tasks: list[Task],
        discovered: bool,
        preset_values: list[cwmp.ParamValue] | None = None,
        unread: list[str] | None = None,
    ) -> None:
        """Queue the device's tasks in order, then the preset values that differ, then
        discovery if its tree is not known: the names of the whole tree, then their values;
        or, when an earlier session listed the names already, the values still ``unread``.

        A task the Inform shows the CPE has already carried out is not sent again: its
        previous session ended (the ACS died, the connection dropped) after the CPE executed
        it and before its answer was recorded. Its effects go to ``confirmed``."""
        for task in tasks:
            done = self._evidence(task)
            if done is None:
                self._queue_task(task)
            else:
                self.confirmed += done
        if preset_values:
            values = list(preset_values)
            self._queue.append(
                _Rpc(
                    cwmp.set_parameter_values(values, PRESET_KEY),
                    "SetParameterValuesResponse",
                    None,
                    lambda _env: [Params(values=values)],
                )
            )
        if self.cfg.discover and not discovered:
            if unread is None:
                self._queue_refresh(None, self.root, discovery=True)
            else:
                reading = _Reading(None, True, len(unread))
                if unread:
                    self._queue_values(reading, unread)
                else:  # every value was read: the session that read the last one ended
                    self._queue.append(_Rpc("", "", None, lambda _e: self._read(reading)))

    def _evidence(self, task: Task) -> list[Effect] | None:
        """What the Inform proves about ``task``, by its unique CommandKey/ParameterKey:
        the "M Reboot"/"M ScheduleInform" event with it (TR-069 A.3.3.1, kept by the CPE until
        an InformResponse), "M Download"/"M Upload" (its TransferComplete follows in this
        session and closes the task), or ManagementServer.ParameterKey equal to it (set by the
        CPE if and only if the SetParameterValues/AddObject/DeleteObject succeeded, A.3.2.1);
        "0 BOOTSTRAP" for a FactoryReset started before. None: no proof, the task is sent."""
        key = task.command_key
        if task.kind in ("reboot", "scheduleInform"):
            event = "M Reboot" if task.kind == "reboot" else "M ScheduleInform"
            if (event, key) in self.inform_events:
                return [TaskResult(task.id, "done", {"confirmed": event})]
        elif task.kind == "factoryReset":
            # No CommandKey: a CPE reset to its factory state informs with "0 BOOTSTRAP"
            # (A.3.3.1). Trusted only for a task an earlier session had started.
            if task.attempts > 1 and any(code == "0 BOOTSTRAP" for code, _ in self.inform_events):
                return [TaskResult(task.id, "done", {"confirmed": "0 BOOTSTRAP"})]
        elif task.kind in ("download", "upload"):
            event = "M Download" if task.kind == "download" else "M Upload"
            if (event, key) in self.inform_events:
                return [TaskResult(task.id, "running", {"status": 1, "confirmed": event})]
        elif task.kind in ("setParameterValues", "addObject", "deleteObject", "runPreset"):
            pk = next(
                (
                    p.value
                    for p in self.inform_params
                    if p.name == f"{self.root}ManagementServer.ParameterKey"
                ),
                None,
            )
            if pk == key:
                done: dict[str, Any] = {"confirmed": "ParameterKey"}
                if task.kind == "deleteObject":
                    gone = Removed(str(task.args.get("name", "")))
                    return [gone, TaskResult(task.id, "done", done)]
                if task.kind != "setParameterValues":  # read again at the next refresh
                    return [TaskResult(task.id, "done", done)]
                values = [
                    cwmp.ParamValue(str(v[0]), str(v[1]), str(v[2]))
                    for v in task.args.get("values", [])
                ]
                return [Params(values=values), TaskResult(task.id, "done", done)]
        return None

    def _queue_task(self, task: Task) -> None:
        a = task.args
        k = task.kind
        key = task.command_key
        if k == "refreshObject":
            self._queue_refresh(task, str(a.get("path", self.root)), discovery=False)
            return
        if k == "runPreset":  # the service turned the preset into values (maybe none)
            result: dict[str, Any] = {"preset": a.get("preset"), "changed": len(a["values"])}
            if "error" in a or not a["values"]:
                status = "fault" if "error" in a else "done"
                result |= {"string": a["error"]} if "error" in a else {}
                self._queue.append(
                    _Rpc("", "", task, lambda _e: [TaskResult(task.id, status, result)])
                )
                return
            values = [cwmp.ParamValue(*map(str, v)) for v in a["values"]]

            def applied(_env: cwmp.Envelope) -> list[Effect]:
                return [Params(values=values), TaskResult(task.id, "done", result)]

            xml = cwmp.set_parameter_values(values, key)
            self._queue.append(_Rpc(xml, "SetParameterValuesResponse", task, applied))
            return
        if k == "getParameterValues":
            names = [str(n) for n in a.get("names", [])]
            self._queue_values(_Reading(task, False, len(names)), names, split=False)
            return
        body: Callable[[], str] | None = {
            "getParameterNames": lambda: cwmp.get_parameter_names(
                str(a.get("path", self.root)), bool(a.get("next_level", False))
            ),
            "getParameterAttributes": lambda: cwmp.get_parameter_attributes(
                [str(n) for n in a.get("names", [])]
            ),
            "setParameterValues": lambda: cwmp.set_parameter_values(
                [cwmp.ParamValue(str(v[0]), str(v[1]), str(v[2])) for v in a.get("values", [])],
                key,
            ),
            "setParameterAttributes": lambda: cwmp.set_parameter_attributes(
                list(a.get("attributes", []))
            ),
            "addObject": lambda: cwmp.add_object(str(a["name"]), key),
            "deleteObject": lambda: cwmp.delete_object(str(a["name"]), key),
            "reboot": lambda: cwmp.reboot(key),
            "factoryReset": cwmp.factory_reset,
            "download": lambda: cwmp.download(
                key,
                str(a.get("file_type", "1 Firmware Upgrade Image")),
                str(a["url"]),
                str(a.get("username", "")),
                str(a.get("password", "")),
                int(a.get("file_size", 0)),
                str(a.get("target_file_name", "")),
                int(a.get("delay", 0)),
            ),
            "upload": lambda: cwmp.upload(
                key,
                str(a.get("file_type", "1 Vendor Configuration File")),
                str(a["url"]),
                str(a.get("username", "")),
                str(a.get("password", "")),
            ),
            "scheduleInform": lambda: cwmp.schedule_inform(int(a.get("delay", 1)), key),
        }.get(k)
        if body is None:
            why = f"unknown kind {k}"
            self._queue.append(_Rpc("", "", task, lambda _e: [_bad_task(task, why)]))
            return
        try:
            xml = body()
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            why = f"bad args: {exc!r}"
            self._queue.append(_Rpc("", "", task, lambda _e: [_bad_task(task, why)]))
            return
        method = xml[len("<cwmp:") :].split(">", 1)[0].split(" ", 1)[0].rstrip("/")
        self._queue.append(_Rpc(xml, method + "Response", task, self._task_reply(task)))

    def _task_reply(self, task: Task) -> Callable[[cwmp.Envelope], list[Effect]]:
        def handle(env: cwmp.Envelope) -> list[Effect]:
            args = env.args
            if task.kind == "getParameterNames":
                names = args["params"]
                return [
                    Params(names=names),
                    TaskResult(task.id, "done", {"names": [[n, w] for n, w in names]}),
                ]
            if task.kind == "getParameterAttributes":
                return [TaskResult(task.id, "done", {"attributes": args["params"]})]
            if task.kind in ("download", "upload"):
                later = args.get("status") == 1  # the transfer completes in a later session
                return [
                    TaskResult(task.id, "running" if later else "done", {"status": args["status"]})
                ]
            if task.kind == "setParameterValues":
                values = [
                    cwmp.ParamValue(str(v[0]), str(v[1]), str(v[2]))
                    for v in task.args.get("values", [])
                ]
                return [Params(values=values), TaskResult(task.id, "done", dict(args))]
            if task.kind == "deleteObject":
                return [Removed(str(task.args["name"])), TaskResult(task.id, "done", dict(args))]
            if task.kind == "addObject":
                # The new instance joins the stored tree: its names and values are read now.
                instance = f"{task.args['name']}{args.get('instance', 0)}."
                self._queue_refresh(None, instance, discovery=False, front=True)
                return [Params(names=[(instance, True)]), TaskResult(task.id, "done", dict(args))]
            return [TaskResult(task.id, "done", dict(args))]

        return handle

    def _queue_values(
        self, reading: _Reading, names: list[str], split: bool = True, front: bool = False
    ) -> None:
        """GetParameterValues in batches of ``cfg.batch``. With ``split``, a batch the CPE
        faults is asked again in halves, down to single names: a name that faults alone is
        unreadable (recorded, not asked again by discovery) and the rest are read."""
        size = self.cfg.batch
        batches = [names[i : i + size] for i in range(0, len(names), size)] or [[]]
        rpcs = [self._values_rpc(reading, b, split) for b in batches]
        reading.left += len(rpcs)
        if front:
            self._queue.extendleft(reversed(rpcs))
        else:
            self._queue.extend(rpcs)

    def _values_rpc(self, reading: _Reading, batch: list[str], split: bool) -> _Rpc:
        def reply(env: cwmp.Envelope) -> list[Effect]:
            reading.left -= 1
            return [Params(values=env.args["params"]), *self._read(reading)]

        def fault(f: dict[str, Any]) -> list[Effect]:
            reading.left -= 1
            code = int(f["code"])
            tid = reading.task.id if reading.task else None
            if code not in NAME_FAULTS:
                # Not about the names (9002 internal error, 9001 denied...): asking them one
                # by one would not help. The rest of this reading waits for the next session
                # (discovery resumes with the unread names; a task faults).
                self._queue = deque(q for q in self._queue if q.reading is not reading)
                out: list[Effect] = [Fault(code, str(f["string"]), tid, {"params": batch})]
                if reading.task is not None:
                    out.append(TaskResult(reading.task.id, "fault", dict(f)))
                    self._drop_task(reading.task.id)
                return out
            if len(batch) > 1:
                half = len(batch) // 2
                reading.left += 2
                self._queue.extendleft(
                    [
                        self._values_rpc(reading, batch[half:], split),
                        self._values_rpc(reading, batch[:half], split),
                    ]
                )
                return []
            reading.unreadable += batch
            return [
                Params(unreadable=[(n, code) for n in batch]),
                Fault(code, str(f["string"]), tid, {"params": batch, "read": True}),
                *self._read(reading),
            ]

        return _Rpc(
            cwmp.get_parameter_values(batch),
            "GetParameterValuesResponse",
            reading.task,
            reply,
            fault if split else None,
            reading,
        )

    def _read(self, reading: _Reading) -> list[Effect]:
        """The end of a reading, once its last batch is answered."""
        if reading.left > 0:
            return []
        out: list[Effect] = []
        if reading.discovery:
            out.append(Params(discovered=True))
        if reading.task is not None:
            result: dict[str, Any] = {"parameters": reading.total}
            if reading.unreadable:
                result["unreadable"] = reading.unreadable
            out.append(TaskResult(reading.task.id, "done", result))
        return out

    def _queue_refresh(
        self, task: Task | None, path: str, discovery: bool, front: bool = False
    ) -> None:
        """GetParameterNames of a subtree, then the values of its leaves in batches. The
        names listed are the whole subtree: stored names the CPE no longer lists go."""

        def names(env: cwmp.Envelope) -> list[Effect]:
            found: list[tuple[str, bool]] = env.args["params"]
            leaves = [n for n, _w in found if n and not n.endswith(".")]
            reading = _Reading(task, discovery, len(leaves))
            prune = path if path.endswith(".") else None
            listed = Params(names=found, prune=prune, listing=True, listed=discovery)
            if not leaves:
                return [listed, *self._read(reading)]
            # The values come next, ahead of anything queued after this refresh.
            self._queue_values(reading, leaves, front=True)
            return [listed]

        def fault(f: dict[str, Any]) -> list[Effect]:
            tid = task.id if task is not None else None
            out: list[Effect] = [Fault(int(f["code"]), str(f["string"]), tid, dict(f))]
            if int(f["code"]) == 9005 and path.endswith(".") and path != self.root:
                out.append(Removed(path))  # the object is gone from the CPE
            if task is not None:
                out.append(TaskResult(task.id, "fault", dict(f)))
                self._drop_task(task.id)
            return out

        rpc = _Rpc(
            cwmp.get_parameter_names(path, False), "GetParameterNamesResponse", task, names, fault
        )
        if front:
            self._queue.appendleft(rpc)
        else:
            self._queue.append(rpc)

    # --- the conversation ---

    def receive(self, env: cwmp.Envelope) -> Step:
        """The answer to one envelope after the Inform."""
        m = env.method
        if m == "Inform":
            raise SessionError("an Inform inside a session")  # the service starts a new one
        if m == "GetRPCMethods":
            return _answer(env, cwmp.get_rpc_methods_response())
        if m in ("TransferComplete", "AutonomousTransferComplete"):
            a = env.args
            autonomous = m == "AutonomousTransferComplete"
            done = TransferDone(
                a["command_key"], a["fault_code"], a["fault_string"], autonomous, dict(a)
            )
            return _answer(env, cwmp.transfer_complete_response(autonomous), [done])
        if m == "RequestDownload":
            asked = DownloadRequested(env.args["file_type"], env.args["args"])
            return _answer(env, cwmp.request_download_response(), [asked])
        effects: list[Effect] = []
        if m == "":
            if self._pending is not None:  # an empty POST while we wait for an answer
                raise SessionError(f"an empty POST while {self._pending.expect} was due")
        elif self._pending is not None and m in (self._pending.expect, "Fault"):
            pending, self._pending = self._pending, None
            if m == "Fault" and pending.on_fault is not None:
                effects += pending.on_fault(env.args)
            elif m == "Fault":
                f = env.args
                tid = pending.task.id if pending.task else None
                effects.append(Fault(f["code"], f["string"], tid, {"params": f["params"]}))
                if pending.task is not None:
                    effects.append(TaskResult(pending.task.id, "fault", dict(f)))
                    self._drop_task(pending.task.id)
            else:
                effects += pending.on_reply(env)
        elif m.endswith("Response"):
            raise SessionError(f"unexpected {m}")
        else:
            why = f"{m} is not supported"
            return _answer(env, cwmp.fault(cwmp.METHOD_NOT_SUPPORTED, why), effects)
        return self._next(effects)

    def withdraw(self, task_id: int) -> Step:
        """The task was cancelled before this RPC of it went out: the next request instead
        (none of its RPCs is sent any more)."""
        self._pending = None
        self._drop_task(task_id)
        return self._next([])

    def _drop_task(self, task_id: int) -> None:
        self._queue = deque(q for q in self._queue if q.task is None or q.task.id != task_id)

    def _next(self, effects: list[Effect]) -> Step:
        while self._queue:
            rpc = self._queue.popleft()
            if not rpc.xml:  # a task that cannot be sent, or a reading with nothing to read
                effects += rpc.on_reply(None)  # type: ignore[arg-type]
                continue
            self._pending = rpc
            self.rpcs_sent += 1
            return Step(rpc.xml, effects, task=rpc.task)
        self.finished = True
        return Step(None, effects)


def _answer(env: cwmp.Envelope, body: str, effects: list[Effect] | None = None) -> Step:
    """The answer to a request of the CPE's: it carries that request's cwmp:ID."""
    return Step(body, effects or [], reply_to=env.cwmp_id, echo=True)


def _bad_task(task: Task, why: str) -> TaskResult:
    return TaskResult(task.id, "fault", {"code": cwmp.INVALID_ARGUMENTS, "string": why})
