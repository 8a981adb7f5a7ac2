"""neuPrint's ROI hierarchy of a store or RoiSet (:func:`fetch_roi_hierarchy`) and its tree text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import RoiError
from ..store import Connectome, default_connectome
from .meshes import _hierarchy_names
from .roiset import RoiSet
from .tree import nested_hierarchy

__all__ = ["fetch_roi_hierarchy"]


def _tree_text(d: Mapping[str, Mapping]) -> str:
    """Render ``{root: {child: {...}}}`` like asciitree's LeftAligned with light box style."""
    (root, children), = d.items()
    lines = [root]

    def walk(node: Mapping, prefix: str) -> None:
        items = list(node.items())
        for i, (k, v) in enumerate(items):
            last = i == len(items) - 1
            lines.append(f"{prefix} {'└' if last else '├'}── {k}")
            walk(v, prefix + ("    " if last else " │  "))

    walk(children, "")
    return "\n".join(lines)


def fetch_roi_hierarchy(include_subprimary: bool = True, mark_primary: bool = True,
                        format: str = "dict", *, client: Any = None) -> Any:  # noqa: A002 - neuprint's name
    """The ROI hierarchy as neuprint-python returns it: dict, text tree or networkx graph.

    Parameters
    ----------
    include_subprimary
        Include ROIs nested below primary ROIs (else stop at primary ROIs).
    mark_primary
        Append ``*`` to primary ROI names.
    format
        ``"dict"`` (``{dataset: {roi: {...}}}``), ``"text"`` (a printable
        tree) or ``"nx"`` (``networkx.DiGraph`` rooted at the dataset name).
    client
        A :class:`~connectome_dask.Connectome` (default: the default
        connectome) or a :class:`RoiSet`.

    Returns
    -------
    dict, str or networkx.DiGraph
        As chosen by ``format``.

    Raises
    ------
    ValueError
        Unknown ``format``.
    TypeError
        ``client`` is neither a Connectome nor a RoiSet.
    RoiError
        The store has no ROI set.

    Examples
    --------
    >>> import trimesh
    >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere(radius=0.3)},
    ...                         hierarchy={"G": {"A": {}, "B": {}}}, primary=["A"], name="demo")
    >>> print(fetch_roi_hierarchy(format="text", client=rs))
    demo
     └── G
         ├── A*
         └── B
    """
    if format not in ("dict", "text", "nx"):
        raise ValueError(f"format must be 'dict', 'text' or 'nx', got {format!r}")
    if client is None:
        client = default_connectome()
    if isinstance(client, RoiSet):
        names, primary, hier, dataset = client.names, client.primary, client.hierarchy, client.name
    elif isinstance(client, Connectome):
        info = client.roi_info
        if not info:
            raise RoiError(f"{client.path}: the store has no ROI set; run assign_rois first")
        names, primary = info["names"], info.get("primary", [])
        # any form the store may hold (nested dict, parent lists, child -> parent, neuPrint's
        # {"name", "children"}) through the one parser
        hier = nested_hierarchy(info.get("hierarchy") or {}, names)
        dataset = str(client.meta.get("name") or client.path.name)
    else:
        raise TypeError(f"client must be a Connectome or RoiSet, got {type(client).__name__}")
    prim = set(primary)
    seen = {n for n, _ in _hierarchy_names(hier, "hierarchy")}
    top = dict(hier)
    for n in names:
        if n not in seen:
            top[n] = {}

    def insert(tree: Mapping, out: dict) -> None:
        for k in sorted(tree):
            is_p = k in prim
            label = f"{k}*" if (mark_primary and is_p) else k
            out[label] = {}
            if is_p and not include_subprimary:
                continue
            insert(tree[k] or {}, out[label])

    d: dict = {dataset: {}}
    insert(top, d[dataset])
    if format == "dict":
        return d
    if format == "text":
        return _tree_text(d)
    import networkx as nx

    g = nx.DiGraph()
    g.add_node(dataset)

    def add(parent: str, node: Mapping) -> None:
        for k, v in node.items():
            g.add_edge(parent, k)
            add(k, v)

    add(dataset, d[dataset])
    return g
