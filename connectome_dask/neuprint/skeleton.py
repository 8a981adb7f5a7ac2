"""neuprint-python's ``neuprint.skeleton`` on a local store.

Skeletons are DataFrames ``rowId, x, y, z, radius, link`` (``link == -1``
marks a root), with neuprint's compact dtypes (int32 ids, float32
coordinates). The pure functions give the same results as neuprint-python
0.6.4's (the tests compare them directly); :func:`fetch_skeleton` reads the
store's SWC files.

Examples
--------
>>> sk = skeleton_swc_to_df("1 0 0 0 0 1 -1\\n2 0 3 4 0 1 1\\n")
>>> calc_segment_distances(sk).tolist()
[inf, 5.0]
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SkeletonError
from ..skeletons import _skeleton_path
from .client import connectome_of, inject_client

__all__ = [
    "fetch_skeleton", "skeleton_df_to_nx", "skeleton_swc_to_df", "skeleton_df_to_swc", "heal_skeleton",
    "reorient_skeleton", "calc_segment_distances", "distances_from_root", "skeleton_segments",
    "upsample_skeleton", "attach_synapses_to_skeleton",
]

_SWC_DTYPES = {"rowId": np.int32, "node_type": np.int8, "x": np.float32, "y": np.float32,
               "z": np.float32, "radius": np.float32, "link": np.int32}


def skeleton_swc_to_df(swc: Any) -> pd.DataFrame:
    """An SWC file (path ending in ``.swc``, file object or text) as a skeleton DataFrame.

    Lines containing ``#`` are skipped; the node-type column is dropped.

    Parameters
    ----------
    swc
        A path, an open text file, or the SWC text.

    Returns
    -------
    pandas.DataFrame
        ``rowId`` / ``link`` int32, ``x, y, z, radius`` float32.

    Raises
    ------
    connectome_dask.errors.SkeletonError
        ``swc`` is neither text, a path nor a file object, or a line does
        not have seven numbers.

    Examples
    --------
    >>> skeleton_swc_to_df("# comment\\n1 0 1 2 3 4 -1\\n").dtypes.tolist()
    [dtype('int32'), dtype('float32'), dtype('float32'), dtype('float32'), dtype('float32'), dtype('int32')]
    """
    if hasattr(swc, "read"):
        text = swc.read()
    elif isinstance(swc, str | os.PathLike) and str(swc).endswith(".swc"):
        with open(swc) as f:
            text = f.read()
    elif isinstance(swc, str):
        text = swc
    else:
        raise SkeletonError(f"swc must be SWC text, a .swc path or a file object, got {type(swc).__name__}")
    body = "\n".join(line for line in text.split("\n") if "#" not in line and line.strip())
    try:
        df = pd.read_csv(io.StringIO(body), sep=" ", header=None, names=list(_SWC_DTYPES),
                         dtype=_SWC_DTYPES, engine="c")
    except (ValueError, TypeError) as e:
        raise SkeletonError(f"malformed SWC: {e}") from None
    return df.drop(columns=["node_type"])


def skeleton_df_to_swc(df: pd.DataFrame, export_path: str | os.PathLike | None = None) -> str:
    """A skeleton DataFrame as SWC text (node type 0), optionally written to ``export_path``.

    Parameters
    ----------
    df
        ``rowId, x, y, z, radius, link``.
    export_path
        Write the text there too.

    Returns
    -------
    str
        ``"# rowId node_type x y z radius link"`` then one line per node.

    Raises
    ------
    KeyError
        A skeleton column is missing.

    Examples
    --------
    >>> sk = skeleton_swc_to_df("1 0 0 0 0 1 -1\\n")
    >>> skeleton_df_to_swc(sk).splitlines()
    ['# rowId node_type x y z radius link', '1 0 0.0 0.0 0.0 1.0 -1']
    """
    out = df.assign(node_type=0)[["rowId", "node_type", "x", "y", "z", "radius", "link"]]
    text = "# " + out.to_csv(sep=" ", header=True, index=False)
    if export_path:
        with open(export_path, "w") as f:
            f.write(text)
    return text


def calc_segment_distances(df: pd.DataFrame, root_dist: float = np.inf) -> np.ndarray:
    """Euclidean length from each node to its parent; ``root_dist`` (default ``inf``) at roots.

    Parameters
    ----------
    df
        A skeleton.
    root_dist
        The value for nodes whose parent is not in the table.

    Returns
    -------
    numpy.ndarray
        float32, one per row, in row order.

    Examples
    --------
    >>> sk = skeleton_swc_to_df("1 0 0 0 0 1 -1\\n2 0 0 0 2 1 1\\n")
    >>> calc_segment_distances(sk, root_dist=0.0).tolist()
    [0.0, 2.0]
    """
    xyz = df[["x", "y", "z"]].to_numpy()  # the coordinates' own precision, as neuprint-python
    pos = pd.Index(df["rowId"]).get_indexer(df["link"])
    d = np.full(len(df), np.nan, dtype=np.float32)
    has = pos >= 0
    d[has] = np.linalg.norm(xyz[has] - xyz[pos[has]], axis=1).astype(np.float32)
    d[~has] = root_dist
    return d


def skeleton_df_to_nx(df: pd.DataFrame, with_attributes: bool = True, directed: bool = True,
                      with_distances: bool = False, virtual_roots: bool = False,
                      root_dist: float = np.inf) -> Any:
    """A skeleton as a networkx graph, edges child -> parent.

    Parameters
    ----------
    df
        A skeleton.
    with_attributes
        Store ``x, y, z, radius`` on the nodes.
    directed
        ``DiGraph`` (default) or ``Graph``.
    with_distances
        A ``distance`` edge attribute (segment length).
    virtual_roots
        Keep edges to parents not in the table (e.g. ``-1``), with ``root_dist``.
    root_dist
        Distance of those edges.

    Returns
    -------
    networkx.DiGraph or networkx.Graph

    Examples
    --------
    >>> g = skeleton_df_to_nx(skeleton_swc_to_df("1 0 0 0 0 1 -1\\n2 0 0 0 2 1 1\\n"))
    >>> [(int(a), int(b)) for a, b in g.edges()]
    [(2, 1)]
    """
    import networkx as nx

    g = nx.DiGraph() if directed else nx.Graph()
    if with_attributes:
        for r in df[["rowId", "x", "y", "z", "radius"]].itertuples(index=False):
            g.add_node(r.rowId, x=r.x, y=r.y, z=r.z, radius=r.radius)
    else:
        g.add_nodes_from(df["rowId"].sort_values())
    edges = df[["rowId", "link"]].copy()
    if with_distances:
        edges["distance"] = calc_segment_distances(df, root_dist)
    if not virtual_roots:
        edges = edges[edges["link"].isin(df["rowId"])]
    edges = edges.sort_values(["rowId", "link"])
    if with_distances:
        g.add_weighted_edges_from(edges.itertuples(index=False), "distance")
    else:
        g.add_edges_from(edges[["rowId", "link"]].to_numpy())
    return g


def distances_from_root(df: pd.DataFrame) -> pd.DataFrame:
    """The skeleton with a ``distance`` column: path length from the root(s) (link ``-1``).

    Parameters
    ----------
    df
        A skeleton.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> sk = skeleton_swc_to_df("1 0 0 0 0 1 -1\\n2 0 0 0 2 1 1\\n3 0 0 0 5 1 2\\n")
    >>> distances_from_root(sk)["distance"].tolist()
    [0.0, 2.0, 5.0]
    """
    import networkx as nx

    g = skeleton_df_to_nx(df, directed=False, with_distances=True, virtual_roots=True, root_dist=0.0)
    d = pd.Series(nx.shortest_path_length(g, -1, weight="distance"), name="distance").rename_axis("rowId")
    return df.merge(d, "left", on="rowId")


def _orient(df: pd.DataFrame, g: Any, root: int, root_parent: int = -1) -> None:
    """Set ``df.link`` from a depth-first traversal of undirected ``g`` from ``root`` (in place)."""
    import networkx as nx

    parent: dict[int, int] = {}
    for a, b in nx.dfs_edges(g, source=root):
        parent[b] = a
    for cc in nx.connected_components(g):
        if root not in cc:
            for a, b in nx.dfs_edges(g, source=next(iter(cc))):
                parent[b] = a
    df["link"] = df["rowId"].map(parent).fillna(root_parent).astype(int)


def heal_skeleton(skeleton_df: pd.DataFrame, max_distance: Any = np.inf, root_parent: int | None = None,
                  ) -> pd.DataFrame:
    """Join a fragmented skeleton into one tree (neuprint's ``heal_skeleton``).

    Every pair of fragments is linked at its closest pair of nodes; the
    minimum spanning tree of those links joins the fragments, the tree is
    rooted at the lowest ``rowId``, and links longer than ``max_distance``
    are then cut again (their child becomes a root).

    Parameters
    ----------
    skeleton_df
        A skeleton.
    max_distance
        Longest link kept (``True``: no limit; a false value: 0).
    root_parent
        The parent id of roots (default ``-1``); when given and the
        skeleton has one root, it is returned unchanged.

    Returns
    -------
    pandas.DataFrame
        Sorted by ``rowId`` with a new ``link`` column.

    Examples
    --------
    >>> sk = skeleton_swc_to_df("1 0 0 0 0 1 -1\\n2 0 1 0 0 1 1\\n3 0 5 0 0 1 -1\\n")
    >>> heal_skeleton(sk)["link"].tolist(), heal_skeleton(sk, 2.0)["link"].tolist()
    ([-1, 1, 2], [-1, 1, -1])
    """
    import networkx as nx
    from scipy.spatial import cKDTree

    if max_distance is True:
        max_distance = np.inf
    if not max_distance:
        max_distance = 0.0
    if root_parent is None:
        root_parent = -1
    elif int((skeleton_df["link"] == root_parent).sum()) == 1:
        return skeleton_df
    sk = skeleton_df.sort_values("rowId", ignore_index=True)
    g = skeleton_df_to_nx(sk, False, False)
    comps = [sorted(c) for c in nx.connected_components(g)]
    if len(comps) <= 1:
        return sk
    xyz = sk.set_index("rowId")[["x", "y", "z"]]
    comps.sort(key=len, reverse=True)
    frag = nx.Graph()
    trees = [cKDTree(xyz.loc[c].to_numpy()) for c in comps]
    for a in range(len(comps)):
        for b in range(a + 1, len(comps)):
            d, j = trees[a].query(xyz.loc[comps[b]].to_numpy())
            k = int(np.argmin(d))
            frag.add_edge(a, b, na=comps[a][j[k]], nb=comps[b][k], distance=float(d[k]))
    cut = []
    for _a, _b, e in nx.minimum_spanning_edges(frag, weight="distance", data=True):
        g.add_edge(e["na"], e["nb"])
        if e["distance"] > max_distance:
            cut += [(e["na"], e["nb"]), (e["nb"], e["na"])]
    _orient(sk, g, int(sk["rowId"].iloc[0]), root_parent)
    if cut:
        pairs = set(cut)
        drop = np.array([(int(r), int(lk)) in pairs for r, lk in zip(sk["rowId"], sk["link"], strict=False)], dtype=bool)
        sk.loc[drop, "link"] = -1
    return sk


def reorient_skeleton(skeleton_df: pd.DataFrame, rowId: int | None = None, xyz: Any = None,
                      use_max_radius: bool = False) -> None:
    """Re-root a skeleton in place: at ``rowId``, the node nearest ``xyz``, or the largest node.

    Parameters
    ----------
    skeleton_df
        A skeleton; only its ``link`` column changes.
    rowId
        The new root (never 0).
    xyz
        Choose the node closest to this point.
    use_max_radius
        Choose the node of largest radius.

    Raises
    ------
    connectome_dask.errors.SkeletonError
        ``rowId`` is 0, or not exactly one of the three choices is given
        (neuprint-python raises AssertionError).

    Examples
    --------
    >>> sk = skeleton_swc_to_df("1 0 0 0 0 1 -1\\n2 0 0 0 2 1 1\\n")
    >>> reorient_skeleton(sk, 2)
    >>> sk["link"].tolist()
    [2, -1]
    """
    if rowId == 0:
        raise SkeletonError("rowId is never 0 in NeuTu skeletons")
    if bool(rowId) + (xyz is not None) + bool(use_max_radius) != 1:
        raise SkeletonError("Select either a rowId to use as the new root, or a coordinate, "
                            "or use_max_radius=True")
    if xyz is not None:
        d = np.linalg.norm(skeleton_df[["x", "y", "z"]].to_numpy(np.float64) - np.asarray(xyz, float), axis=1)
        rowId = int(skeleton_df["rowId"].iloc[int(np.argmin(d))])
    elif use_max_radius:
        rowId = int(skeleton_df.loc[skeleton_df["radius"].idxmax(), "rowId"])
    assert rowId is not None
    _orient(skeleton_df, skeleton_df_to_nx(skeleton_df, False, False), int(rowId))


def _segments(skeleton_df: pd.DataFrame) -> pd.DataFrame:
    par = skeleton_df[["rowId", "link", "x", "y", "z", "radius"]]
    seg = skeleton_df.merge(par, "inner", left_on="link", right_on="rowId", suffixes=("", "_parent"))
    a = seg[["x", "y", "z"]].to_numpy()
    b = seg[["x_parent", "y_parent", "z_parent"]].to_numpy()
    seg["length"] = np.linalg.norm(a - b, axis=1)
    return seg


def skeleton_segments(skeleton_df: pd.DataFrame) -> pd.DataFrame:
    """One row per child -> parent segment: both points, ``length``, ``avg_radius``, ``volume``.

    Parameters
    ----------
    skeleton_df
        A skeleton.

    Returns
    -------
    pandas.DataFrame
        The child's columns, the parent's (``_parent``), ``length``,
        ``avg_radius`` and ``volume`` (a truncated cone).

    Raises
    ------
    TypeError
        ``skeleton_df`` is not a DataFrame.

    Examples
    --------
    >>> sk = skeleton_swc_to_df("1 0 0 0 0 1 -1\\n2 0 0 0 2 1 1\\n")
    >>> skeleton_segments(sk)[["rowId", "rowId_parent", "length"]].values.tolist()
    [[2.0, 1.0, 2.0]]
    """
    if not isinstance(skeleton_df, pd.DataFrame):
        raise TypeError("skeleton_df must be a DataFrame")
    seg = _segments(skeleton_df)
    r0, r1 = seg["radius"], seg["radius_parent"]
    seg["avg_radius"] = (r0 + r1) / 2
    seg["volume"] = np.pi * seg["length"] * (r1 ** 2 + r0 ** 2 + r0 * r1) / 3
    return seg


def upsample_skeleton(skeleton_df: pd.DataFrame, max_segment_length: float) -> pd.DataFrame:
    """Split segments longer than ``max_segment_length`` into equal pieces (new nodes interpolated).

    Parameters
    ----------
    skeleton_df
        A skeleton.
    max_segment_length
        The longest segment wanted.

    Returns
    -------
    pandas.DataFrame
        Old nodes keep their ``rowId`` and position; new nodes get ids above
        the old maximum; sorted by ``rowId``; the input dtypes.

    Examples
    --------
    >>> sk = skeleton_swc_to_df("1 0 0 0 0 1 -1\\n2 0 0 0 3 1 1\\n")
    >>> upsample_skeleton(sk, 1.0)[["rowId", "z", "link"]].values.tolist()
    [[1.0, 0.0, -1.0], [2.0, 3.0, 3.0], [3.0, 2.0, 4.0], [4.0, 1.0, 1.0]]
    """
    if len(skeleton_df) in (0, 1) or bool((skeleton_df["link"] == -1).all()):
        return skeleton_df
    seg = _segments(skeleton_df)
    seg = seg[seg["length"] > max_segment_length]
    if len(seg) == 0:
        return skeleton_df
    next_id = int(skeleton_df["rowId"].max()) + 1
    parts = []
    for child, parent, p0, p1, d in zip(
            seg["rowId"], seg["rowId_parent"], seg[["x", "y", "z", "radius"]].to_numpy(),
            seg[["x_parent", "y_parent", "z_parent", "radius_parent"]].to_numpy(), seg["length"], strict=False):
        n = int(np.ceil(d / max_segment_length))
        ids = [int(child), *range(next_id, next_id + n - 1)]
        next_id += n - 1
        pts = p0 + (p1 - p0) * (np.arange(n)[:, None] / n)
        parts.append(pd.DataFrame({"rowId": ids, "x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2],
                                   "radius": pts[:, 3], "link": ids[1:] + [int(parent)]}))
    dtypes = skeleton_df.dtypes
    new = pd.concat(parts, ignore_index=True).astype(dtypes.to_dict()).set_index("rowId")
    out = skeleton_df.set_index("rowId")
    out = out.reindex(np.sort(np.union1d(out.index.to_numpy(), new.index.to_numpy())))
    out.update(new)
    return out.reset_index().astype(dtypes)


def attach_synapses_to_skeleton(skeleton_df: pd.DataFrame, synapses_df: pd.DataFrame) -> pd.DataFrame:
    """Append each synapse as a node linked to its nearest skeleton node.

    Parameters
    ----------
    skeleton_df
        A skeleton.
    synapses_df
        ``x, y, z, type`` (e.g. from :func:`~connectome_dask.neuprint.fetch_synapses`).

    Returns
    -------
    pandas.DataFrame
        ``rowId, x, y, z, radius, link, structure``: the skeleton
        (``structure='neurite'``) then one node per synapse (radius 0,
        ``structure`` = its type, ids after the skeleton's maximum);
        ``structure`` categorical.

    Examples
    --------
    >>> sk = skeleton_swc_to_df("1 0 0 0 0 1 -1\\n2 0 0 0 9 1 1\\n")
    >>> syn = pd.DataFrame({"x": [0.0], "y": [0.0], "z": [8.0], "type": ["pre"]})
    >>> attach_synapses_to_skeleton(sk, syn)[["rowId", "link"]].values.tolist()
    [[1, -1], [2, 1], [3, 2]]
    """
    from scipy.spatial import cKDTree

    sk = skeleton_df.reset_index(drop=True).assign(structure="neurite")
    syn = synapses_df.reset_index(drop=True)
    _, near = cKDTree(sk[["x", "y", "z"]].to_numpy()).query(syn[["x", "y", "z"]].to_numpy())
    nodes = pd.DataFrame({
        "rowId": syn.index.to_numpy() + sk["rowId"].max() + 1,
        "x": syn["x"].to_numpy(), "y": syn["y"].to_numpy(), "z": syn["z"].to_numpy(),
        "radius": 0.0, "link": sk["rowId"].to_numpy()[near], "structure": syn["type"].to_numpy(),
    })
    cols = ["rowId", "x", "y", "z", "radius", "link", "structure"]
    out = pd.concat((sk[cols], nodes[cols]), ignore_index=True)
    out["structure"] = pd.Categorical(out["structure"])
    return out


@inject_client
def fetch_skeleton(body: Any, heal: Any = False, export_path: str | os.PathLike | None = None,
                   format: str = "pandas", with_distances: bool = False, *,  # noqa: A002
                   client: Any = None) -> Any:
    """The skeleton of a body from the store (neuprint's ``fetch_skeleton``).

    Parameters
    ----------
    body
        A body ID (anything ``int()`` takes).
    heal
        Heal fragments (:func:`heal_skeleton`); a number is the ``max_distance``.
    export_path
        Also write the SWC text there (after healing).
    format
        ``'pandas'`` (default; ``'skeleton'`` is the same), ``'swc'`` or ``'nx'``.
    with_distances
        ``pandas`` / ``nx`` only: a ``distance`` column / edge attribute
        (to the parent; ``inf`` at roots), computed after healing.
    client
        The client.

    Returns
    -------
    pandas.DataFrame, str or networkx.DiGraph

    Raises
    ------
    connectome_dask.errors.SkeletonError
        ``body`` is not an integer, an unknown ``format``, ``with_distances``
        with ``'swc'``, or the store has no skeleton for ``body``.

    Examples
    --------
    >>> s = fetch_skeleton(skeleton_body, format="pandas", with_distances=True, client=conn)
    >>> s.columns.tolist(), float(s.distance[s.link == -1].iloc[0])
    (['rowId', 'x', 'y', 'z', 'radius', 'link', 'distance'], inf)
    """
    try:
        body = int(body)
    except (TypeError, ValueError):
        raise SkeletonError(f"Please pass an integer body ID, not '{body}'") from None
    if format == "skeleton":
        format = "pandas"
    if format not in ("swc", "pandas", "nx"):
        raise SkeletonError(f"Invalid format: {format}")
    if with_distances and format not in ("pandas", "nx"):
        raise SkeletonError("The with_distances option can only be used with the 'pandas' or 'nx' "
                            f"output formats, not {format}")
    conn = connectome_of(client)
    path = _skeleton_path(body, conn, None)
    if not path.exists():
        raise SkeletonError(f"no skeleton for body {body} in {conn.path}")
    swc = path.read_text()
    df = skeleton_swc_to_df(swc)
    if heal:
        df = heal_skeleton(df, heal, -1)
        swc = skeleton_df_to_swc(df)
    if export_path:
        with open(export_path, "w") as f:
            f.write(swc)
    if format == "swc":
        return swc
    if format == "pandas":
        if with_distances:
            df["distance"] = calc_segment_distances(df)
        return df
    return skeleton_df_to_nx(df, with_distances=with_distances)
