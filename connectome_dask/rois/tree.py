"""The one parser of ROI hierarchies, in every form a store or a release holds them.

Accepted forms (``rois.json`` ``hierarchy``, a mesh folder's ``hierarchy.json``,
neuPrint's ``Meta.roiHierarchy``):

* nested ``{parent: {child: {...}}}``;
* ``{parent: [children, ...]}`` (children may be nested mappings again);
* ``{child: parent}``;
* neuPrint's ``{"name": root, "children": [{"name": ..., "children": [...]}, ...]}``
  (the root is the dataset unless it is itself an ROI name).

:class:`connectome_dask.rois.model.RoiModel` and
:func:`connectome_dask.rois.fetch_roi_hierarchy` both read hierarchies through
:func:`hierarchy_edges`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import RoiError

__all__ = ["hierarchy_edges", "nested_hierarchy"]


def hierarchy_edges(
    h: Any, names: Sequence[str] = (), *, error: type[Exception] = RoiError, where: str = "rois.json hierarchy",
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Children and parent maps of a hierarchy in any accepted form.

    Parameters
    ----------
    h
        The hierarchy (see the module docstring for the forms).
    names
        ROI names of the store: decides whether neuPrint's root node is an ROI.
    error
        Exception class raised for a malformed hierarchy.
    where
        What to name in messages.

    Returns
    -------
    children : dict
        ``{node: [child, ...]}`` in the order given (every top-level node has an entry).
    parent : dict
        ``{child: parent}``.

    Raises
    ------
    error
        Not a mapping, a node with two parents, or a cycle.

    Examples
    --------
    >>> hierarchy_edges({"name": "hemibrain", "children": [{"name": "CX", "children": [{"name": "EB"}]}]},
    ...                 ["CX", "EB"])[1]
    {'EB': 'CX'}
    >>> hierarchy_edges({"CX": ["EB", "FB"]})[0]
    {'CX': ['EB', 'FB']}
    """
    children: dict[str, list[str]] = {}
    parent: dict[str, str] = {}
    known = set(map(str, names))

    def add(p: str, child: str) -> None:
        if child in parent and parent[child] != p:
            raise error(f"{where}: ROI {child!r} has two parents ({parent[child]!r} and {p!r})")
        parent[child] = p
        children.setdefault(p, [])
        if child not in children[p]:
            children[p].append(child)

    if isinstance(h, Mapping) and "name" in h and "children" in h:
        root_is_roi = str(h["name"]) in known
        stack = [(h, True)]
        while stack:
            node, is_root = stack.pop()
            name = str(node["name"])
            kids = list(node.get("children") or [])
            for ch in kids:
                if not isinstance(ch, Mapping) or "name" not in ch:
                    raise error(f"{where}: a child of {name!r} has no 'name'")
                if not (is_root and not root_is_roi):
                    add(name, str(ch["name"]))
            stack.extend((ch, False) for ch in reversed(kids))
        return children, parent
    if not isinstance(h, Mapping):
        raise error(f"{where} must be a mapping, got {type(h).__name__}")

    stack2: list[tuple[str | None, Mapping]] = [(None, h)]
    while stack2:
        p, node = stack2.pop()
        for k, v in node.items():
            k = str(k)
            if p is not None:
                add(p, k)
            else:
                children.setdefault(k, [])
            if isinstance(v, str):  # child -> parent
                add(v, k)
            elif isinstance(v, Mapping):  # nested {name: {child: {...}}}
                stack2.append((k, v))
            elif v:  # {parent: [children]}
                for ch in v:
                    if isinstance(ch, Mapping):
                        stack2.append((k, ch))
                    else:
                        add(k, str(ch))
    children = {k: v for k, v in children.items() if v or k in parent or k in known}
    for start in parent:  # cycles would make descendant sums loop
        seen, cur = {start}, start
        while cur in parent:
            cur = parent[cur]
            if cur in seen:
                raise error(f"{where} has a cycle through {cur!r}")
            seen.add(cur)
    return children, parent


def nested_hierarchy(h: Any, names: Sequence[str] = (), *, error: type[Exception] = RoiError) -> dict:
    """Any accepted hierarchy as nested ``{root: {child: {...}}}`` (roots in first-seen order).

    Parameters
    ----------
    h
        The hierarchy.
    names
        ROI names of the store (see :func:`hierarchy_edges`).
    error
        Exception class raised for a malformed hierarchy.

    Returns
    -------
    dict

    Examples
    --------
    >>> nested_hierarchy({"name": "hemibrain", "children": [{"name": "CX", "children": [{"name": "EB"}]}]},
    ...                  ["CX", "EB"])
    {'CX': {'EB': {}}}
    """
    children, parent = hierarchy_edges(h, names, error=error)
    order = list(children) + [c for v in children.values() for c in v]
    roots = [n for n in dict.fromkeys(order) if n not in parent]

    def build(n: str) -> dict:
        return {c: build(c) for c in children.get(n, [])}

    return {r: build(r) for r in roots}
