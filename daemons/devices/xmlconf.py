"""NETCONF configurations as trees, without the device's YANG: pretty text for diffs, an
edit-config merged into running (a dry-run without a candidate), the changes between two
configs, the edit that undoes them, and the drift of a device from what a job left. Pure.

Identity of a node among its siblings, as RFC 7950 encodes data: a list entry is named by
its key leaves, which come first in the entry (7.8.5), a leaf-list entry by its value, a
container or leaf by its name. Without the schema a list is told from a container by its
siblings (more than one element of that name: a list or leaf-list) or, for one entry, by
a first child leaf called ``name``, ``id``, ``index`` or ``key`` (the keys of
ietf-interfaces, ietf-system's NTP servers and users, OpenConfig's lists...). Elements of
the same name under one parent must all be list entries, or it is one container.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from lxml import etree

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
OP = f"{{{BASE}}}operation"
KEYS = ("name", "id", "index", "key")
PARSER = etree.XMLParser(
    remove_blank_text=True, resolve_entities=False, no_network=True, huge_tree=False
)

Ident = tuple[str, str, str]  # (tag, key tag or "" or "=" for a leaf-list, key value)
Path = tuple[Ident, ...]


def parse(data: str | bytes) -> etree._Element:
    return etree.fromstring(data.encode() if isinstance(data, str) else data, PARSER)


def pretty(data: str | bytes | etree._Element) -> str:
    """A config as stable, diffable text (parsed without entities or network, indented)."""
    root = data if isinstance(data, etree._Element) else parse(data)
    root = copy.deepcopy(root)
    for el in root.iter():
        if isinstance(el.tag, str) and len(el) == 0 and el.text is not None:
            el.text = el.text.strip()
    etree.cleanup_namespaces(root)
    return str(etree.tostring(root, pretty_print=True, encoding="unicode"))


def text_diff(before: str, after: str, name: str, what: str = "running") -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"{name} {what} (before)",
            f"{name} {what} (after)",
        )
    )


def _kids(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _is_leaf(el: etree._Element) -> bool:
    return not _kids(el)


def _listy(tag: str, groups: Sequence[Sequence[etree._Element]]) -> bool:
    firsts = []
    for kids in groups:
        same = [c for c in kids if c.tag == tag]
        if len(same) > 1:
            return True
        for c in same:
            first = _kids(c)[:1]
            firsts.append(etree.QName(first[0]).localname if first and _is_leaf(first[0]) else "")
    # one entry each: a list if every one starts with the same key-named leaf
    return bool(firsts) and firsts[0] in KEYS and all(f == firsts[0] for f in firsts)


def ident(el: etree._Element, listy: bool) -> Ident:
    tag = str(el.tag)
    if not listy:
        return (tag, "", "")
    kids = _kids(el)
    if not kids:  # a leaf-list entry
        return (tag, "=", (el.text or "").strip())
    key = kids[0]
    return (tag, str(key.tag), (key.text or "").strip())


def index(
    parent: etree._Element | None, *others: etree._Element | None
) -> dict[Ident, etree._Element]:
    """``parent``'s children by identity (list-ness judged over ``others`` too)."""
    if parent is None:
        return {}
    groups = [_kids(p) for p in (parent, *others) if p is not None]
    tags = {c.tag for g in groups for c in g}
    listy = {t: _listy(str(t), groups) for t in tags}
    return {ident(c, listy[c.tag]): c for c in _kids(parent)}


def canon(el: etree._Element | None) -> str:
    """A subtree as text that ignores the order of siblings and whitespace."""
    if el is None:
        return ""
    if _is_leaf(el):
        return f"{el.tag}={(el.text or '').strip()}"
    return f"{el.tag}{{{','.join(sorted(canon(c) for c in _kids(el)))}}}"


# --- an edit-config applied to a config (RFC 6241 7.2) ---


def _clean(el: etree._Element) -> etree._Element:
    out = copy.deepcopy(el)
    for e in list(out.iter()):
        if e is not out and e.get(OP) in ("delete", "remove"):
            parent = e.getparent()
            if parent is not None:
                parent.remove(e)
    for e in out.iter():
        if OP in e.attrib:
            del e.attrib[OP]
    return out


def _apply(parent: etree._Element, edit: etree._Element, inherited: str) -> None:
    op = edit.get(OP, inherited)
    siblings = edit.getparent()
    groups = [_kids(parent), _kids(siblings) if siblings is not None else [edit]]
    found = index(parent, siblings).get(ident(edit, _listy(str(edit.tag), groups)))
    if op in ("delete", "remove"):
        if found is not None:
            parent.remove(found)
        return
    if op in ("create", "replace") or (found is None and op == "merge"):
        if found is not None:
            parent.replace(found, _clean(edit))
        else:
            parent.append(_clean(edit))
        return
    if found is None:  # "none" on an absent node: only its children's operations count
        found = etree.SubElement(parent, edit.tag)
        for child in _kids(edit):
            _apply(found, child, op)
        if not _kids(found):
            parent.remove(found)
        return
    if _is_leaf(edit):
        if op == "merge":
            found.text = edit.text
        return
    for child in _kids(edit):
        _apply(found, child, op)


def merge_edit(config: str, payload: str) -> etree._Element:
    """The config after ``payload`` (an ``<config>`` of edit-config, default-operation
    merge) is applied to it."""
    root = parse(config)
    edit = parse(payload)
    for top in _kids(edit):
        _apply(root, top, "merge")
    return root


# --- the changes a job made, and their undoing ---


@dataclass(frozen=True)
class Change:
    path: Path
    before: etree._Element | None  # None: the job created the node
    after: etree._Element | None  # None: the job removed it


def changes(before: etree._Element, after: etree._Element) -> list[Change]:
    """The top-most nodes that differ between two configs (a created or removed node
    counts once, with its subtree)."""
    return list(_changes(before, after, ()))


def _changes(b: etree._Element, a: etree._Element, path: Path) -> Iterator[Change]:
    bi, ai = index(b, a), index(a, b)
    for key in [*bi, *(k for k in ai if k not in bi)]:
        old, new = bi.get(key), ai.get(key)
        if old is None or new is None:
            yield Change((*path, key), old, new)
        elif _is_leaf(old) or _is_leaf(new):
            if canon(old) != canon(new):
                yield Change((*path, key), old, new)
        elif canon(old) != canon(new):
            yield from _changes(old, new, (*path, key))


def find(root: etree._Element, path: Path) -> etree._Element | None:
    node: etree._Element | None = root
    for step in path:
        if node is None:
            return None
        got = index(node).get(step)
        node = got if got is not None else _loose(node, step)
    return node


def _loose(parent: etree._Element, step: Ident) -> etree._Element | None:
    """A node whose list-ness the other tree judged otherwise (one entry, no key name)."""
    for c in _kids(parent):
        if c.tag != step[0]:
            continue
        if step[1] == "":
            return c
        kids = _kids(c)
        if step[1] == "=" and (c.text or "").strip() == step[2]:
            return c
        if kids and kids[0].tag == step[1] and (kids[0].text or "").strip() == step[2]:
            return c
    return None


def drift(job: Sequence[Change], current: etree._Element) -> list[Change]:
    """The job's changes the device no longer holds as the job left them: each as a Change
    from what the job left (``before``) to what the device has now (``after``)."""
    out = []
    for c in job:
        now = find(current, c.path)
        if canon(now) != canon(c.after):
            out.append(Change(c.path, c.after, now))
    return out


def describe(path: Path) -> str:
    parts = []
    for tag, key, value in path:
        name = etree.QName(tag).localname
        if key == "=":
            parts.append(f"{name}[.={value!r}]")
        elif key:
            parts.append(f"{name}[{etree.QName(key).localname}={value!r}]")
        else:
            parts.append(name)
    return "/" + "/".join(parts)


def changes_text(items: Sequence[Change], name: str, old: str, new: str) -> str:
    """A unified diff of the nodes named in ``items``, ``old`` and ``new`` labelling the
    two sides."""
    a: list[str] = []
    b: list[str] = []
    for c in items:
        where = describe(c.path)
        a += [f"{where}:", *(_lines(c.before))]
        b += [f"{where}:", *(_lines(c.after))]
    return "".join(
        difflib.unified_diff(
            [x + "\n" for x in a], [x + "\n" for x in b], f"{name} {old}", f"{name} {new}"
        )
    )


def _lines(el: etree._Element | None) -> list[str]:
    return ["  " + x for x in pretty(el).splitlines()] if el is not None else ["  (absent)"]


def inverse_edit(job: Sequence[Change]) -> str:
    """An edit-config ``<config>`` that undoes ``job`` on a device holding what the job
    left: what it created removed, what it removed put back, what it changed set back."""
    root = etree.Element(f"{{{BASE}}}config", nsmap={"nc": BASE})
    for c in job:
        parent = root
        for step in c.path[:-1]:
            parent = _step(parent, step)
        tag, key, value = c.path[-1]
        if c.before is None:  # created by the job: remove it
            el = etree.SubElement(parent, tag)
            if key == "=":
                el.text = value
            elif key:
                etree.SubElement(el, key).text = value
            el.set(OP, "remove")
        else:  # removed or changed: its old content back
            el = copy.deepcopy(c.before)
            el.set(OP, "replace")
            parent.append(el)
    etree.cleanup_namespaces(root)
    return str(etree.tostring(root, encoding="unicode"))


def _step(parent: etree._Element, step: Ident) -> etree._Element:
    tag, key, value = step
    for c in _kids(parent):
        if c.tag == tag and (
            not key or (_kids(c) and _kids(c)[0].tag == key and _kids(c)[0].text == value)
        ):
            return c
    el = etree.SubElement(parent, tag)
    if key and key != "=":
        etree.SubElement(el, key).text = value
    return el
