"""A NETCONF server over SSH (RFC 6241/6242) for the configuration-job tests.

One ``NetconfSim`` is one device: an asyncssh server on 127.0.0.1 in the test's event loop
serving the ``netconf`` subsystem, with end-of-message framing (``]]>]]>``) until both hellos
announce base:1.1, then chunked framing.

Datastores ``running`` and ``candidate`` hold lxml trees under ``<config>`` for a small model
in the namespace ``urn:dotmac:test``::

    <system><hostname>r1</hostname><location>..</location></system>
    <interfaces><interface><name>ge-0/0/1</name><description>..</description>
        <vlan>10</vlan><enabled>true</enabled></interface></interfaces>

An edit is checked against the model at edit-config (unknown element, a value of the wrong
type, a list entry without its key); the semantic rules are checked by validate, commit and
any write to running: ``vlan`` in 1..4094, a ``description`` must not contain ``INVALID``, a
``hostname`` of 1..63 characters. Errors are ``<rpc-error>`` with error-type application and
error-tag invalid-value, and leave running unchanged.

Operations: get-config and get (subtree filter: containment, selection and content-match
nodes), edit-config (default-operation merge/replace/none; nc:operation merge, replace,
create, delete, remove; error-option stop-on-error, continue-on-error, rollback-on-error;
test-option test-then-set, set, test-only; target candidate, or running when writable),
copy-config (between running and candidate, or from an inline ``<config>``), discard-changes,
validate (running, candidate or inline), commit (plain; confirmed with confirm-timeout and
persist, a confirming commit, a revert when the timeout passes or when the session that
made a non-persist confirmed commit ends), cancel-commit, lock/unlock (lock-denied when
another session holds it or the candidate has uncommitted changes; in-use for a write to a
datastore another session locked; a session's locks go with it, a candidate lock taking the
uncommitted changes along), close-session, kill-session.

Not simulated: notifications, :startup, :url, :xpath, with-defaults, YANG library or
get-schema, multiple error reports within one element, attribute matching in filters.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncssh
from lxml import etree

from tests.devices.sshbase import SshDevice, read_chunk

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = "urn:dotmac:test"
CAP_BASE10 = "urn:ietf:params:netconf:base:1.0"
CAP_BASE11 = "urn:ietf:params:netconf:base:1.1"
CAP = "urn:ietf:params:netconf:capability:"
OP_ATTR = f"{{{BASE}}}operation"
EOM = b"]]>]]>"
MAX_MESSAGE = 8 * 1024 * 1024
DEFAULT_CONFIRM_TIMEOUT = 600

_parser = etree.XMLParser(
    resolve_entities=False, no_network=True, remove_blank_text=True, huge_tree=False
)

# The model: a container maps child names to specs, a list is ("list", key, children), a
# leaf is ("leaf", type).
LEAF_STR = ("leaf", "string")
MODEL: dict[str, object] = {
    "system": {"hostname": LEAF_STR, "location": LEAF_STR},
    "interfaces": {
        "interface": (
            "list",
            "name",
            {
                "name": LEAF_STR,
                "description": LEAF_STR,
                "vlan": ("leaf", "uint16"),
                "enabled": ("leaf", "boolean"),
            },
        )
    },
}


def q(name: str, ns: str = NS) -> str:
    return f"{{{ns}}}{name}"


def local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


class RpcError(Exception):
    """One ``<rpc-error>``."""

    def __init__(
        self,
        tag: str,
        message: str,
        *,
        type_: str = "application",
        path: str | None = None,
        info: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message
        self.type = type_
        self.path = path
        self.info = info or {}

    def element(self) -> etree._Element:
        err = etree.Element(q("rpc-error", BASE), nsmap={None: BASE})
        etree.SubElement(err, q("error-type", BASE)).text = self.type
        etree.SubElement(err, q("error-tag", BASE)).text = self.tag
        etree.SubElement(err, q("error-severity", BASE)).text = "error"
        if self.path:
            etree.SubElement(err, q("error-path", BASE)).text = self.path
        msg = etree.SubElement(err, q("error-message", BASE))
        msg.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        msg.text = self.message
        if self.info:
            info = etree.SubElement(err, q("error-info", BASE))
            for k, v in self.info.items():
                etree.SubElement(info, q(k, BASE)).text = v
        return err


class RpcErrors(Exception):
    def __init__(self, errors: list[RpcError]) -> None:
        super().__init__(errors[0].message)
        self.errors = errors


def empty_config() -> etree._Element:
    return etree.Element(q("config", BASE), nsmap={None: BASE})


def parse_config(xml: str | bytes) -> etree._Element:
    """``<config>`` (any namespace prefix) or bare top-level elements -> a ``<config>``."""
    data = xml.encode() if isinstance(xml, str) else xml
    try:
        root = etree.fromstring(data, _parser)
    except etree.XMLSyntaxError:
        root = etree.fromstring(b"<config xmlns='" + BASE.encode() + b"'>" + data + b"</config>")
    if local(root.tag) == "config":
        cfg = empty_config()
        for child in root:
            cfg.append(copy.deepcopy(child))
        return cfg
    cfg = empty_config()
    cfg.append(root)
    return cfg


# -- the model --------------------------------------------------------------------------------
def _path(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def check_schema(elem: etree._Element, spec: object, parts: list[str]) -> None:
    """Structure and types of an edit (an element of the model, with operations)."""
    name = local(elem.tag)
    here = [*parts, name]
    if not isinstance(elem.tag, str):
        return
    if etree.QName(elem).namespace != NS:
        raise RpcError(
            "unknown-namespace",
            f"unknown namespace of {name}",
            path=_path(here),
            info={"bad-element": name, "bad-namespace": etree.QName(elem).namespace or ""},
        )
    op = elem.get(OP_ATTR)
    if op is not None and op not in ("merge", "replace", "create", "delete", "remove"):
        raise RpcError(
            "bad-attribute",
            f"bad operation {op!r}",
            type_="protocol",
            path=_path(here),
            info={"bad-attribute": "operation", "bad-element": name},
        )
    if isinstance(spec, tuple) and spec[0] == "leaf":
        if len(elem):
            raise RpcError("unknown-element", f"{name} is a leaf", path=_path(here))
        if op in ("delete", "remove"):
            return
        text = (elem.text or "").strip()
        if spec[1] == "uint16" and not (text.isdigit() and int(text) <= 65535):
            raise RpcError("invalid-value", f"{name}: {text!r} is not a uint16", path=_path(here))
        if spec[1] == "boolean" and text not in ("true", "false"):
            raise RpcError("invalid-value", f"{name}: {text!r} is not a boolean", path=_path(here))
        return
    children: dict[str, object]
    if isinstance(spec, tuple) and spec[0] == "list":
        key = str(spec[1])
        children = spec[2]  # type: ignore[assignment]
        keys = [c for c in elem if local(c.tag) == key]
        if len(keys) != 1:
            raise RpcError(
                "missing-element",
                f"{name} needs one {key}",
                path=_path(here),
                info={"bad-element": key},
            )
        here[-1] = f"{name}[{key}='{(keys[0].text or '').strip()}']"
    else:
        children = spec  # type: ignore[assignment]
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        sub = children.get(local(child.tag))
        if sub is None or etree.QName(child).namespace != NS:
            raise RpcError(
                "unknown-element",
                f"unknown element {local(child.tag)} in {name}",
                path=_path(here),
                info={"bad-element": local(child.tag)},
            )
        check_schema(child, sub, here)


def check_config(cfg: etree._Element) -> None:
    for top in cfg:
        if not isinstance(top.tag, str):
            continue
        spec = MODEL.get(local(top.tag))
        if spec is None or etree.QName(top).namespace != NS:
            raise RpcError(
                "unknown-element",
                f"unknown element {local(top.tag)}",
                path=_path([local(top.tag)]),
                info={"bad-element": local(top.tag)},
            )
        check_schema(top, spec, [])


def validate(cfg: etree._Element) -> list[RpcError]:
    """The semantic rules (what validate and commit refuse)."""
    errors: list[RpcError] = []
    ns = {"t": NS}
    for host in cfg.xpath("t:system/t:hostname", namespaces=ns):
        text = (host.text or "").strip()
        if not 1 <= len(text) <= 63:
            errors.append(
                RpcError(
                    "invalid-value", "hostname must be 1..63 characters", path="/system/hostname"
                )
            )
    seen: set[str] = set()
    for itf in cfg.xpath("t:interfaces/t:interface", namespaces=ns):
        name = (itf.findtext(q("name")) or "").strip()
        where = f"/interfaces/interface[name='{name}']"
        if name in seen:
            errors.append(RpcError("data-exists", f"interface {name} twice", path=where))
        seen.add(name)
        vlan = itf.findtext(q("vlan"))
        if vlan is not None and not (vlan.strip().isdigit() and 1 <= int(vlan) <= 4094):
            errors.append(
                RpcError(
                    "invalid-value",
                    f"interface {name}: vlan {vlan.strip()} is outside 1..4094",
                    path=where + "/vlan",
                )
            )
        desc = itf.findtext(q("description"))
        if desc is not None and "INVALID" in desc:
            errors.append(
                RpcError(
                    "invalid-value",
                    f"interface {name}: description {desc!r} is refused",
                    path=where + "/description",
                )
            )
    return errors


def _spec_of(parent_spec: object, name: str) -> object:
    if isinstance(parent_spec, tuple) and parent_spec[0] == "list":
        return parent_spec[2].get(name)  # type: ignore[union-attr]
    if isinstance(parent_spec, dict):
        return parent_spec.get(name)
    return None


def _find(parent: etree._Element, edit: etree._Element, spec: object) -> etree._Element | None:
    for cand in parent:
        if cand.tag != edit.tag:
            continue
        if isinstance(spec, tuple) and spec[0] == "list":
            key = q(str(spec[1]))
            if (cand.findtext(key) or "").strip() != (edit.findtext(key) or "").strip():
                continue
        return cand
    return None


def clean(edit: etree._Element) -> etree._Element:
    """A copy without operation attributes and without what it deletes."""
    out = copy.deepcopy(edit)
    for el in list(out.iter()):
        if el.get(OP_ATTR) in ("delete", "remove") and el is not out:
            parent = el.getparent()
            if parent is not None:
                parent.remove(el)
    for el in out.iter():
        if OP_ATTR in el.attrib:
            del el.attrib[OP_ATTR]
    etree.cleanup_namespaces(out)
    return out


def apply_edit(
    parent: etree._Element, edit: etree._Element, inherited: str, spec: object, path: list[str]
) -> None:
    name = local(edit.tag)
    here = [*path, name]
    op = edit.get(OP_ATTR, inherited)
    existing = _find(parent, edit, spec)
    if op in ("delete", "remove"):
        if existing is None:
            if op == "delete":
                raise RpcError("data-missing", f"{name} does not exist", path=_path(here))
            return
        parent.remove(existing)
        return
    if op == "create":
        if existing is not None:
            raise RpcError("data-exists", f"{name} exists already", path=_path(here))
        parent.append(clean(edit))
        return
    if op == "replace":
        new = clean(edit)
        if existing is not None:
            parent.replace(existing, new)
        else:
            parent.append(new)
        return
    # merge, or none (only descend)
    if isinstance(spec, tuple) and spec[0] == "leaf":
        if op == "merge":
            if existing is None:
                parent.append(clean(edit))
            else:
                existing.text = edit.text
        return
    created = existing is None
    if existing is None:
        existing = etree.Element(edit.tag, nsmap={None: etree.QName(edit).namespace})
        if isinstance(spec, tuple) and spec[0] == "list":
            key = edit.find(q(str(spec[1])))
            if key is not None:
                etree.SubElement(existing, key.tag).text = key.text
    for child in edit:
        if isinstance(child.tag, str):
            apply_edit(existing, child, op, _spec_of(spec, local(child.tag)), here)
    if created and (op == "merge" or len(existing) > 0):
        parent.append(existing)


# -- subtree filtering (RFC 6241 section 6) ---------------------------------------------------
def _tag_matches(filter_el: etree._Element, node: etree._Element) -> bool:
    fq, nq = etree.QName(filter_el), etree.QName(node)
    return fq.localname == nq.localname and (fq.namespace is None or fq.namespace == nq.namespace)


def _is_content_match(f: etree._Element) -> bool:
    return len(f) == 0 and bool((f.text or "").strip())


def _select(node: etree._Element, f: etree._Element) -> etree._Element | None:
    if len(f) == 0 and not (f.text or "").strip():
        return copy.deepcopy(node)  # selection node
    if _is_content_match(f):
        return copy.deepcopy(node) if (node.text or "").strip() == f.text.strip() else None
    content = [c for c in f if isinstance(c.tag, str) and _is_content_match(c)]
    others = [c for c in f if isinstance(c.tag, str) and not _is_content_match(c)]
    for c in content:
        if not any(_tag_matches(c, n) and (n.text or "").strip() == c.text.strip() for n in node):
            return None
    if not others:
        return copy.deepcopy(node)
    out = etree.Element(node.tag, nsmap={None: etree.QName(node).namespace})
    for n in node:
        if any(_tag_matches(c, n) for c in content):
            out.append(copy.deepcopy(n))
            continue
        for c in others:
            if _tag_matches(c, n):
                picked = _select(n, c)
                if picked is not None:
                    out.append(picked)
                    break
    return out if len(out) else None


def subtree_filter(cfg: etree._Element, filt: etree._Element | None) -> list[etree._Element]:
    if filt is None:
        return [copy.deepcopy(c) for c in cfg]
    wanted = [f for f in filt if isinstance(f.tag, str)]
    out = []
    for node in cfg:
        for f in wanted:
            if _tag_matches(f, node):
                picked = _select(node, f)
                if picked is not None:
                    out.append(picked)
                    break
    return out


# -- framing (RFC 6242) -------------------------------------------------------------------------
class FramingError(Exception):
    pass


class Framer:
    """Splits the byte stream into messages: EOM until ``chunked`` is set, then chunks."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.chunked = False
        self._msg = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.buf += data
        if len(self.buf) > MAX_MESSAGE + 64:
            raise FramingError("message too large")
        while True:
            msg = self._next()
            if msg is None:
                return
            yield msg

    def _next(self) -> bytes | None:
        if not self.chunked:
            i = self.buf.find(EOM)
            if i < 0:
                return None
            msg = bytes(self.buf[:i])
            del self.buf[: i + len(EOM)]
            return msg
        while True:
            if len(self.buf) < 4:
                return None
            if self.buf.startswith(b"\n##\n"):
                del self.buf[:4]
                msg = bytes(self._msg)
                self._msg.clear()
                return msg
            m = re.match(rb"\n#([1-9][0-9]{0,9})\n", self.buf)
            if m is None:
                if len(self.buf) >= 13 or not re.fullmatch(rb"\n(#[0-9]*)?", self.buf):
                    raise FramingError("bad chunk header")
                return None
            size = int(m.group(1))
            if size > MAX_MESSAGE or len(self._msg) + size > MAX_MESSAGE:
                raise FramingError("message too large")
            if len(self.buf) < m.end() + size:
                return None
            self._msg += self.buf[m.end() : m.end() + size]
            del self.buf[: m.end() + size]

    def frame(self, payload: bytes) -> bytes:
        if self.chunked:
            return b"\n#%d\n" % len(payload) + payload + b"\n##\n"
        return payload + EOM


# -- the device ---------------------------------------------------------------------------------
@dataclass
class _Pending:
    """A confirmed commit waiting for its confirming commit."""

    before: etree._Element
    session: int
    persist: str | None
    timer: asyncio.Task[None] | None = None


@dataclass
class _Session:
    id: int
    process: asyncssh.SSHServerProcess[bytes]
    framer: Framer = field(default_factory=Framer)
    closing: bool = False


class NetconfSim(SshDevice):
    """A NETCONF device over SSH on 127.0.0.1 (see the module docstring).

    ``writable_running``: advertise :writable-running and accept edit-config/copy-config
    with target running. ``confirmed_commit``: advertise :confirmed-commit:1.1 and accept
    confirmed commits. ``base11``: advertise base:1.1 (chunked framing); off, sessions stay
    on end-of-message framing. ``slow``: seconds before each reply.
    """

    def __init__(
        self,
        username: str = "admin",
        password: str = "secret",
        host_key: asyncssh.SSHKey | str | None = None,
        writable_running: bool = True,
        confirmed_commit: bool = True,
        base11: bool = True,
        slow: float = 0.0,
    ) -> None:
        super().__init__(username, password, host_key)
        self.writable_running = writable_running
        self.confirmed_commit = confirmed_commit
        self.base11 = base11
        self.slow = slow
        self.rpcs: list[str] = []
        self.commits = 0
        self.reverts = 0
        self._running = parse_config(
            f'<config xmlns="{BASE}"><system xmlns="{NS}"><hostname>r1</hostname></system>'
            f'<interfaces xmlns="{NS}"><interface><name>ge-0/0/1</name><enabled>true</enabled>'
            "</interface></interfaces></config>"
        )
        self._candidate = copy.deepcopy(self._running)
        self.candidate_dirty = False
        self.locks: dict[str, int | None] = {"running": None, "candidate": None}
        self._pending: _Pending | None = None
        self._sessions: dict[int, _Session] = {}
        self._ids = itertools.count(1)

    # -- test controls -----------------------------------------------------------------------
    @property
    def capabilities(self) -> list[str]:
        caps = [CAP_BASE10]
        if self.base11:
            caps.append(CAP_BASE11)
        caps += [CAP + "candidate:1.0", CAP + "validate:1.0", CAP + "validate:1.1"]
        if self.confirmed_commit:
            caps += [CAP + "confirmed-commit:1.0", CAP + "confirmed-commit:1.1"]
        caps.append(CAP + "rollback-on-error:1.0")
        if self.writable_running:
            caps.append(CAP + "writable-running:1.0")
        caps.append(f"{NS}?module=dotmac-test&revision=2024-01-01")
        return caps

    def running_xml(self) -> str:
        return etree.tostring(self._running, pretty_print=True).decode()

    def candidate_xml(self) -> str:
        return etree.tostring(self._candidate, pretty_print=True).decode()

    def set_running(self, xml: str) -> None:
        """Replace running (and candidate) with ``<config>...</config>`` or bare top-level
        elements; a pending confirmed commit is forgotten."""
        cfg = parse_config(xml)
        self._running = cfg
        self._candidate = copy.deepcopy(cfg)
        self.candidate_dirty = False
        self._cancel_pending()

    def running_value(self, xpath: str) -> list[str]:
        """Texts of ``xpath`` in running, prefix ``t`` = the model namespace, e.g.
        ``t:interfaces/t:interface[t:name='ge-0/0/1']/t:vlan``."""
        return [str(x) for x in self._running.xpath(xpath + "/text()", namespaces={"t": NS})]

    @property
    def confirmed_pending(self) -> bool:
        return self._pending is not None

    @property
    def sessions(self) -> list[int]:
        return sorted(self._sessions)

    def on_stop(self) -> None:
        self._sessions.clear()
        self.locks = dict.fromkeys(self.locks)
        if self._pending is not None and self._pending.timer is not None:
            self._pending.timer.cancel()
            self._pending.timer = None

    # -- sessions ---------------------------------------------------------------------------
    async def serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        if process.subsystem != "netconf":
            process.stdout.write(b"only the netconf subsystem is served\n")
            process.exit(1)
            return
        sess = _Session(next(self._ids), process)
        self._sessions[sess.id] = sess
        try:
            await self._session(sess)
        finally:
            self._end_session(sess)

    async def _send(self, sess: _Session, elem: etree._Element) -> None:
        payload = etree.tostring(elem, xml_declaration=True, encoding="UTF-8")
        sess.process.stdout.write(sess.framer.frame(payload))
        await sess.process.stdout.drain()

    async def _session(self, sess: _Session) -> None:
        hello = etree.Element(q("hello", BASE), nsmap={None: BASE})
        caps = etree.SubElement(hello, q("capabilities", BASE))
        for cap in self.capabilities:
            etree.SubElement(caps, q("capability", BASE)).text = cap
        etree.SubElement(hello, q("session-id", BASE)).text = str(sess.id)
        await self._send(sess, hello)
        got_hello = False
        while not sess.closing:
            data = await read_chunk(sess.process)
            if not data:
                return
            try:
                messages = list(sess.framer.feed(data))
            except FramingError:
                return
            for raw in messages:
                if not got_hello:
                    if not self._client_hello(sess, raw):
                        return
                    got_hello = True
                    continue
                reply = await self._rpc(sess, raw)
                if reply is not None:
                    if self.slow:
                        await asyncio.sleep(self.slow)
                    await self._send(sess, reply)
                if sess.closing:
                    break
        sess.process.exit(0)

    def _client_hello(self, sess: _Session, raw: bytes) -> bool:
        try:
            root = etree.fromstring(raw, _parser)
        except etree.XMLSyntaxError:
            return False
        if root.tag != q("hello", BASE) or root.find(q("session-id", BASE)) is not None:
            return False
        caps = {(c.text or "").strip() for c in root.iter(q("capability", BASE))}
        if self.base11 and CAP_BASE11 in caps:
            sess.framer.chunked = True
        elif CAP_BASE10 not in caps:
            return False
        return True

    def _end_session(self, sess: _Session) -> None:
        self._sessions.pop(sess.id, None)
        for store, holder in self.locks.items():
            if holder == sess.id:
                self.locks[store] = None
                if store == "candidate":
                    self._candidate = copy.deepcopy(self._running)
                    self.candidate_dirty = False
        pending = self._pending
        if pending is not None and pending.session == sess.id and pending.persist is None:
            self._revert()

    # -- rpc dispatch -----------------------------------------------------------------------
    async def _rpc(self, sess: _Session, raw: bytes) -> etree._Element | None:
        reply = etree.Element(q("rpc-reply", BASE), nsmap={None: BASE})
        try:
            root = etree.fromstring(raw, _parser)
        except etree.XMLSyntaxError as exc:
            self.rpcs.append("?")
            reply.append(RpcError("malformed-message", f"not XML: {exc}", type_="rpc").element())
            return reply
        for k, v in root.attrib.items():
            reply.set(k, v)
        ops = [c for c in root if isinstance(c.tag, str)]
        if root.tag != q("rpc", BASE) or len(ops) != 1:
            self.rpcs.append("?")
            reply.append(
                RpcError(
                    "unknown-element" if root.tag != q("rpc", BASE) else "missing-element",
                    "expected one operation in <rpc>",
                    type_="rpc",
                ).element()
            )
            return reply
        if root.get("message-id") is None:
            self.rpcs.append(local(ops[0].tag))
            reply.append(
                RpcError(
                    "missing-attribute",
                    "message-id missing",
                    type_="rpc",
                    info={"bad-attribute": "message-id", "bad-element": "rpc"},
                ).element()
            )
            return reply
        op = ops[0]
        name = local(op.tag)
        self.rpcs.append(name)
        handler = getattr(self, "_op_" + name.replace("-", "_"), None)
        try:
            if etree.QName(op).namespace != BASE or handler is None:
                raise RpcError(
                    "operation-not-supported", f"{name} is not supported", type_="protocol"
                )
            result = handler(sess, op)
        except RpcError as err:
            reply.append(err.element())
            return reply
        except RpcErrors as errs:
            for one in errs.errors:
                reply.append(one.element())
            return reply
        if result is None:
            etree.SubElement(reply, q("ok", BASE))
        else:
            reply.append(result)
        return reply

    # -- helpers ------------------------------------------------------------------------------
    def _store_name(self, op: etree._Element, which: str, allow_config: bool = False) -> str:
        holder = op.find(q(which, BASE))
        if holder is None or not len(holder):
            raise RpcError(
                "missing-element", f"{which} missing", type_="protocol", info={"bad-element": which}
            )
        name = local(holder[0].tag)
        allowed = {"running", "candidate"} | ({"config"} if allow_config else set())
        if name not in allowed:
            raise RpcError(
                "operation-not-supported" if name in ("startup", "url") else "invalid-value",
                f"datastore {name} is not supported",
                type_="protocol",
                info={"bad-element": which},
            )
        return name

    def _store(self, name: str) -> etree._Element:
        return self._running if name == "running" else self._candidate

    def _check_lock(self, sess: _Session, name: str) -> None:
        holder = self.locks.get(name)
        if holder is not None and holder != sess.id:
            raise RpcError(
                "in-use",
                f"{name} is locked by session {holder}",
                type_="protocol",
                info={"session-id": str(holder)},
            )

    def _write_running_allowed(self) -> None:
        if not self.writable_running:
            raise RpcError("operation-not-supported", "running is not writable", type_="protocol")

    # -- operations ---------------------------------------------------------------------------
    def _op_get_config(self, sess: _Session, op: etree._Element) -> etree._Element:
        store = self._store(self._store_name(op, "source"))
        return self._data(store, op)

    def _op_get(self, sess: _Session, op: etree._Element) -> etree._Element:
        return self._data(self._running, op)

    def _data(self, store: etree._Element, op: etree._Element) -> etree._Element:
        filt = op.find(q("filter", BASE))
        if filt is not None and filt.get("type", "subtree") != "subtree":
            raise RpcError("operation-not-supported", "only subtree filters", type_="protocol")
        data = etree.Element(q("data", BASE), nsmap={None: BASE})
        for el in subtree_filter(store, filt):
            data.append(el)
        return data

    def _op_edit_config(self, sess: _Session, op: etree._Element) -> None:
        target_name = self._store_name(op, "target")
        if target_name == "running":
            self._write_running_allowed()
        self._check_lock(sess, target_name)
        default_op = (op.findtext(q("default-operation", BASE)) or "merge").strip()
        error_opt = (op.findtext(q("error-option", BASE)) or "stop-on-error").strip()
        test_opt = (op.findtext(q("test-option", BASE)) or "test-then-set").strip()
        if default_op not in ("merge", "replace", "none"):
            raise RpcError("invalid-value", f"default-operation {default_op}", type_="protocol")
        if error_opt not in ("stop-on-error", "continue-on-error", "rollback-on-error"):
            raise RpcError("invalid-value", f"error-option {error_opt}", type_="protocol")
        if test_opt not in ("test-then-set", "set", "test-only"):
            raise RpcError("invalid-value", f"test-option {test_opt}", type_="protocol")
        config = op.find(q("config", BASE))
        if config is None:
            raise RpcError(
                "missing-element",
                "config missing (url is not supported)",
                type_="protocol",
                info={"bad-element": "config"},
            )
        check_config(config)
        store = self._store(target_name)
        work = copy.deepcopy(store)
        errors: list[RpcError] = []
        if default_op == "replace":
            work = empty_config()
            for top in clean(config):
                work.append(top)
        else:
            for top in config:
                if not isinstance(top.tag, str):
                    continue
                try:
                    apply_edit(work, top, default_op, MODEL[local(top.tag)], [])
                except RpcError as err:
                    errors.append(err)
                    if error_opt != "continue-on-error":
                        break
        if errors and error_opt == "rollback-on-error":
            raise RpcErrors(errors)
        # Semantic validation happens here only for running (test-then-set); a candidate is
        # validated by validate and commit.
        if target_name == "running" and test_opt != "set":
            problems = validate(work)
            if problems:
                raise RpcErrors(problems)
        if test_opt == "test-only":
            if errors:
                raise RpcErrors(errors)
            return
        if target_name == "running":
            self._running = work
            if not self.candidate_dirty:
                self._candidate = copy.deepcopy(work)
        else:
            self._candidate = work
            self.candidate_dirty = True
        if errors:
            raise RpcErrors(errors)

    def _op_copy_config(self, sess: _Session, op: etree._Element) -> None:
        target = self._store_name(op, "target")
        source = self._store_name(op, "source", allow_config=True)
        if source == "config":
            src_el = op.find(q("source", BASE))
            assert src_el is not None
            cfg = parse_config(etree.tostring(src_el[0]))
            check_config(cfg)
        else:
            cfg = copy.deepcopy(self._store(source))
        if target == source:
            raise RpcError("invalid-value", "source and target are the same", type_="protocol")
        self._check_lock(sess, target)
        if target == "running":
            self._write_running_allowed()
            problems = validate(cfg)
            if problems:
                raise RpcErrors(problems)
            self._running = cfg
        else:
            self._candidate = cfg
            self.candidate_dirty = True

    def _op_discard_changes(self, sess: _Session, op: etree._Element) -> None:
        self._check_lock(sess, "candidate")
        self._candidate = copy.deepcopy(self._running)
        self.candidate_dirty = False

    def _op_validate(self, sess: _Session, op: etree._Element) -> None:
        source = self._store_name(op, "source", allow_config=True)
        if source == "config":
            src_el = op.find(q("source", BASE))
            assert src_el is not None
            cfg = parse_config(etree.tostring(src_el[0]))
            check_config(cfg)
        else:
            cfg = self._store(source)
        problems = validate(cfg)
        if problems:
            raise RpcErrors(problems)

    def _op_commit(self, sess: _Session, op: etree._Element) -> None:
        confirmed = op.find(q("confirmed", BASE)) is not None
        persist = op.findtext(q("persist", BASE))
        persist_id = op.findtext(q("persist-id", BASE))
        timeout_text = op.findtext(q("confirm-timeout", BASE))
        if (confirmed or persist is not None or timeout_text) and not self.confirmed_commit:
            raise RpcError(
                "operation-not-supported", "confirmed commit is not supported", type_="protocol"
            )
        timeout = DEFAULT_CONFIRM_TIMEOUT
        if timeout_text is not None:
            if not timeout_text.strip().isdigit() or int(timeout_text) < 1:
                raise RpcError("invalid-value", f"confirm-timeout {timeout_text}", type_="protocol")
            timeout = int(timeout_text)
        pending = self._pending
        if pending is not None:
            if pending.persist is not None:
                if persist_id != pending.persist:
                    raise RpcError("invalid-value", "persist-id does not match", type_="protocol")
            elif pending.session != sess.id:
                raise RpcError(
                    "in-use",
                    f"a confirmed commit of session {pending.session} is pending",
                    type_="protocol",
                )
        self._check_lock(sess, "running")
        problems = validate(self._candidate)
        if problems:
            raise RpcErrors(problems)
        before = copy.deepcopy(self._running)
        self._running = copy.deepcopy(self._candidate)
        self.candidate_dirty = False
        self.commits += 1
        if not confirmed:
            self._cancel_pending()  # a confirming commit (or a plain one)
            return
        if pending is None:
            pending = self._pending = _Pending(before, sess.id, persist)
        else:
            pending.persist = persist if persist is not None else pending.persist
        if pending.timer is not None:
            pending.timer.cancel()
        pending.timer = self.spawn(self._revert_after(pending, timeout))

    async def _revert_after(self, pending: _Pending, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self._pending is pending:
            pending.timer = None
            self._revert()

    def _revert(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if pending.timer is not None and pending.timer is not asyncio.current_task():
            pending.timer.cancel()
        self._running = pending.before
        self._candidate = copy.deepcopy(pending.before)
        self.candidate_dirty = False
        self.reverts += 1

    def _cancel_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()

    def _op_cancel_commit(self, sess: _Session, op: etree._Element) -> None:
        if not self.confirmed_commit:
            raise RpcError("operation-not-supported", "cancel-commit", type_="protocol")
        pending = self._pending
        if pending is None:
            raise RpcError("operation-failed", "no confirmed commit is pending")
        persist_id = op.findtext(q("persist-id", BASE))
        if pending.persist is not None and persist_id != pending.persist:
            raise RpcError("invalid-value", "persist-id does not match", type_="protocol")
        if pending.persist is None and pending.session != sess.id:
            raise RpcError("in-use", "the confirmed commit is another session's", type_="protocol")
        self._revert()

    def _op_lock(self, sess: _Session, op: etree._Element) -> None:
        name = self._store_name(op, "target")
        holder = self.locks[name]
        if holder is not None:
            raise RpcError(
                "lock-denied",
                f"{name} is locked by session {holder}",
                type_="protocol",
                info={"session-id": str(holder)},
            )
        if name == "candidate" and self.candidate_dirty:
            raise RpcError(
                "lock-denied",
                "the candidate has uncommitted changes",
                type_="protocol",
                info={"session-id": "0"},
            )
        self.locks[name] = sess.id

    def _op_unlock(self, sess: _Session, op: etree._Element) -> None:
        name = self._store_name(op, "target")
        if self.locks[name] != sess.id:
            raise RpcError("operation-failed", f"{name} is not locked by this session")
        self.locks[name] = None

    def _op_close_session(self, sess: _Session, op: etree._Element) -> None:
        sess.closing = True

    def _op_kill_session(self, sess: _Session, op: etree._Element) -> None:
        text = (op.findtext(q("session-id", BASE)) or "").strip()
        if not text.isdigit():
            raise RpcError("missing-element", "session-id", type_="protocol")
        victim = self._sessions.get(int(text))
        if victim is None or victim.id == sess.id:
            raise RpcError("invalid-value", f"session-id {text}", type_="protocol")
        victim.closing = True
        self._end_session(victim)
        victim.process.exit(0)
