"""Skeletons: SWC I/O, healing of fragmented skeletons, synapse attachment, navis interop.

SWC files live in the store (``conn.skeleton_dir / "<bodyId>.swc"``) or in any
folder. Skeletons are pandas DataFrames with neuPrint's columns
``rowId, x, y, z, radius, link`` (``link == -1`` marks a root), as returned by
neuprint-python's ``fetch_skeleton``.

navis is optional: :func:`to_navis` / :func:`from_navis` import it lazily.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._fsutil import atomic_file
from .errors import SkeletonError

if TYPE_CHECKING:
    from .store import Connectome

__all__ = [
    "read_swc",
    "write_swc",
    "fetch_skeleton",
    "heal_skeleton",
    "skeleton_to_networkx",
    "attach_synapses",
    "to_navis",
    "from_navis",
    "SkeletonError",
]

SKELETON_COLUMNS = ["rowId", "x", "y", "z", "radius", "link"]




def read_swc(source: str | os.PathLike | io.TextIOBase) -> pd.DataFrame:
    """Read an SWC file (path, text or file object) into ``rowId, x, y, z, radius, link``.

    The SWC structure-type column is dropped (as neuprint does). Comment lines
    (``#``) and blank lines are skipped.

    Parameters
    ----------
    source
        A path (``str`` or path-like), SWC text (a ``str`` containing a
        newline) or an open text file object.

    Returns
    -------
    pandas.DataFrame
        ``rowId`` and ``link`` int64, ``x, y, z, radius`` float32, in file order.

    Raises
    ------
    SkeletonError
        The file does not exist, a line has fewer than 7 fields or is not
        numeric, or the nodes do not form a valid table (a repeated node id,
        a link to a missing parent).

    Examples
    --------
    >>> read_swc("1 0 0 0 0 1 -1\\n2 0 1 0 0 1 1\\n")["link"].tolist()
    [-1, 1]
    """
    if isinstance(source, io.TextIOBase):
        text, name = source.read(), "<stream>"
    elif isinstance(source, str) and "\n" in source:
        text, name = source, "<text>"
    else:
        p = Path(source)
        if not p.exists():
            raise SkeletonError(f"SWC file {p} does not exist")
        text, name = p.read_text(), str(p)
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 7:
            raise SkeletonError(f"{name}: line {lineno} has {len(parts)} fields, SWC needs 7: {line!r}")
        try:
            rows.append((int(parts[0]), float(parts[2]), float(parts[3]), float(parts[4]),
                         float(parts[5]), int(float(parts[6]))))
        except ValueError:
            raise SkeletonError(f"{name}: line {lineno} is not numeric SWC: {line!r}") from None
    df = pd.DataFrame(rows, columns=SKELETON_COLUMNS)
    df = df.astype({"rowId": np.int64, "link": np.int64, "x": np.float32, "y": np.float32,
                    "z": np.float32, "radius": np.float32})
    _validate(df, name)
    return df


def _validate(df: pd.DataFrame, name: str = "skeleton") -> None:
    missing = [c for c in SKELETON_COLUMNS if c not in df.columns]
    if missing:
        raise SkeletonError(f"{name}: missing columns {missing}")
    if df["rowId"].duplicated().any():
        raise SkeletonError(f"{name}: duplicate node id {int(df.loc[df['rowId'].duplicated(), 'rowId'].iloc[0])}")
    known = set(df["rowId"].tolist())
    bad = df[(df["link"] != -1) & ~df["link"].isin(known)]
    if len(bad):
        r = bad.iloc[0]
        raise SkeletonError(f"{name}: node {int(r['rowId'])} links to missing parent {int(r['link'])}")


def write_swc(skeleton: pd.DataFrame, path: str | os.PathLike | None = None, *, header: str | None = None) -> str:
    """Write a skeleton table as SWC (structure type 0); return the text.

    Parameters
    ----------
    skeleton
        ``rowId, x, y, z, radius, link`` table (other columns are ignored).
    path
        Also write the text to this file (atomically: a temporary file
        renamed into place); ``None``: only return it.
    header
        Text written first as ``#`` comment lines, one per line of ``header``.

    Returns
    -------
    str
        The SWC text (numbers with 6 significant digits).

    Raises
    ------
    SkeletonError
        The table lacks a skeleton column, repeats a node id, or links a
        node to a parent that is not in it.

    Examples
    --------
    >>> sk = read_swc("1 0 0 0 0 1 -1\\n2 0 1 0 0 1 1\\n")
    >>> write_swc(sk).splitlines()[-1]
    '2 0 1 0 0 1 1'
    """
    _validate(skeleton)
    lines = [f"# {h}" for h in (header or "").splitlines()]

    def num(v: float) -> str:
        return f"{float(v):.6g}"

    for r in skeleton[SKELETON_COLUMNS].itertuples(index=False):
        lines.append(f"{int(r.rowId)} 0 {num(r.x)} {num(r.y)} {num(r.z)} {num(r.radius)} {int(r.link)}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        with atomic_file(path) as tmp:
            tmp.write_text(text)
    return text


def heal_skeleton(skeleton: pd.DataFrame, max_distance: float = np.inf, root: int | None = None) -> pd.DataFrame:
    """Join disconnected fragments into one tree (neuprint's ``heal_skeleton``).

    Builds the minimum spanning tree of the graph made of the existing edges
    (weight 0) plus all node-to-node distances between fragments (scipy), so
    each fragment is attached by its shortest possible link; links longer
    than ``max_distance`` are not added. The tree is then re-rooted at
    ``root`` (default: the first root of the input) so every ``link`` points
    towards it.

    Parameters
    ----------
    skeleton
        ``rowId, x, y, z, radius, link`` table.
    max_distance
        Longest link added between fragments (default: no limit); fragments
        farther apart stay separate trees.
    root
        ``rowId`` of the node the result is rooted at (default: the first
        root of the input).

    Returns
    -------
    pandas.DataFrame
        A copy with a new ``link`` column (index reset).

    Raises
    ------
    SkeletonError
        The table lacks a skeleton column, repeats a node id, or links a
        node to a parent that is not in it.
    KeyError
        ``root`` is not a ``rowId`` of the skeleton.

    Examples
    --------
    >>> sk = read_swc("1 0 0 0 0 1 -1\\n2 0 1 0 0 1 1\\n3 0 5 0 0 1 -1\\n")
    >>> heal_skeleton(sk)["link"].tolist()
    [-1, 1, 2]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

    _validate(skeleton)
    sk = skeleton.reset_index(drop=True).copy()
    n = len(sk)
    if n == 0:
        return sk
    ids = sk["rowId"].to_numpy()
    pos = pd.Index(ids)
    xyz = sk[["x", "y", "z"]].to_numpy(np.float64)
    child = np.flatnonzero(sk["link"].to_numpy() != -1)
    parent = pos.get_indexer(sk["link"].to_numpy()[child])
    g = coo_matrix((np.ones(len(child)), (child, parent)), shape=(n, n))
    ncomp, label = connected_components(g, directed=False)
    rows, cols, w = [child], [parent], [np.full(len(child), 1e-12)]  # existing edges: ~zero weight
    if ncomp > 1:
        from scipy.spatial import cKDTree

        # between each pair of fragments, the closest node pair (KD-tree per fragment)
        comps = [np.flatnonzero(label == c) for c in range(ncomp)]
        for a in range(ncomp):
            tree = cKDTree(xyz[comps[a]])
            for b in range(a + 1, ncomp):
                d, j = tree.query(xyz[comps[b]])
                k = int(np.argmin(d))
                if d[k] <= max_distance:
                    rows.append(np.array([comps[b][k]]))
                    cols.append(np.array([comps[a][j[k]]]))
                    w.append(np.array([max(float(d[k]), 1e-9)]))
    m = coo_matrix((np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
    mst = minimum_spanning_tree(m + m.T)
    mst = (mst + mst.T).tocsr()
    roots = np.flatnonzero(sk["link"].to_numpy() == -1)
    start = int(pos.get_loc(root)) if root is not None else (int(roots[0]) if len(roots) else 0)
    from scipy.sparse.csgraph import breadth_first_order

    link = np.full(n, -1, dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    for s in [start, *roots.tolist(), *range(n)]:
        if seen[s]:
            continue
        order, pred = breadth_first_order(mst, s, directed=False, return_predecessors=True)
        seen[order] = True
        has = pred[order] >= 0
        link[order[has]] = ids[pred[order[has]]]
    sk["link"] = link
    return sk


def skeleton_to_networkx(skeleton: pd.DataFrame):
    """A directed ``networkx.DiGraph`` child -> parent with node positions and edge lengths.

    Parameters
    ----------
    skeleton
        ``rowId, x, y, z, radius, link`` table.

    Returns
    -------
    networkx.DiGraph
        Nodes are ``rowId`` with ``x, y, z, radius`` attributes; each edge
        runs child -> parent with its Euclidean ``distance``.

    Raises
    ------
    SkeletonError
        The table lacks a skeleton column, repeats a node id, or links a
        node to a parent that is not in it.

    Examples
    --------
    >>> g = skeleton_to_networkx(read_swc("1 0 0 0 0 1 -1\\n2 0 3 4 0 1 1\\n"))
    >>> list(g.edges(data="distance")), g.nodes[2]["y"]
    ([(2, 1, 5.0)], 4.0)
    """
    import networkx as nx

    _validate(skeleton)
    g = nx.DiGraph()
    for r in skeleton.itertuples(index=False):
        g.add_node(int(r.rowId), x=float(r.x), y=float(r.y), z=float(r.z), radius=float(r.radius))
    xyz = skeleton.set_index("rowId")[["x", "y", "z"]]
    e = skeleton[skeleton["link"] != -1]
    for c, p in zip(e["rowId"].tolist(), e["link"].tolist(), strict=True):
        g.add_edge(int(c), int(p), distance=float(np.linalg.norm(xyz.loc[c].to_numpy() - xyz.loc[p].to_numpy())))
    return g


def _skeleton_path(body_id: int, conn: Connectome | None, folder: str | os.PathLike | None) -> Path:
    if folder is not None:
        d = Path(folder)
    else:
        if conn is None:
            from .store import default_connectome

            conn = default_connectome()
        if conn.skeleton_dir is None:
            raise SkeletonError(f"{conn.path} has no skeletons folder; pass folder=")
        # the store's own rule: a regular file inside the store, never through a symlink
        sp = conn.skeleton_file(int(body_id))
        if sp is None:
            raise SkeletonError(
                f"no skeleton for body {int(body_id)}: {conn.skeleton_dir / f'{int(body_id)}.swc'} does not exist")
        return sp
    p = d / f"{int(body_id)}.swc"
    if not p.exists():
        raise SkeletonError(f"no skeleton for body {int(body_id)}: {p} does not exist")
    return p


def fetch_skeleton(
    bodyId: int,
    format: str = "pandas",  # noqa: A002 - neuprint's name
    heal: bool = False,
    *,
    client: Connectome | None = None,
    folder: str | os.PathLike | None = None,
    with_distances: bool = False,
) -> Any:
    """Load a body's skeleton from the store (or ``folder``), like neuprint's ``fetch_skeleton``.

    Parameters
    ----------
    bodyId
        Body ID; the file is ``<bodyId>.swc``.
    format
        ``"pandas"`` (``rowId, x, y, z, radius, link``), ``"swc"`` (text) or
        ``"nx"`` (``networkx.DiGraph`` child -> parent).
    heal
        Join disconnected fragments with :func:`heal_skeleton`.
    client
        The :class:`~connectome_dask.store.Connectome` whose skeletons folder
        is read (default: :func:`connectome_dask.default_connectome`); not
        used when ``folder`` is given.
    folder
        Read ``<folder>/<bodyId>.swc`` instead of the store's skeleton.
    with_distances
        Add a ``distance`` column (to the parent node; NaN at roots), pandas only.

    Returns
    -------
    pandas.DataFrame, str or networkx.DiGraph
        As ``format`` says.

    Raises
    ------
    SkeletonError
        ``format`` is not one of the three, ``bodyId`` is not an integer, the
        store has no skeletons folder, the body has no skeleton file, or the
        file is not valid SWC (see :func:`read_swc`).
    connectome_dask.errors.StoreError
        Neither ``client`` nor ``folder`` is given and no connectome is open.

    Examples
    --------
    >>> sk = fetch_skeleton(skeleton_body, client=conn)
    >>> sk.columns.tolist(), int((sk.link == -1).sum())  # one root
    (['rowId', 'x', 'y', 'z', 'radius', 'link'], 1)
    >>> g = fetch_skeleton(skeleton_body, format="nx", client=conn)
    >>> g.number_of_nodes() == len(sk), g.number_of_edges() == len(sk) - 1
    (True, True)
    >>> fetch_skeleton(skeleton_body, format="swc").splitlines()[0] == f"# bodyId {skeleton_body}"
    True
    """
    if format not in ("pandas", "swc", "nx"):
        raise SkeletonError(f"format must be 'pandas', 'swc' or 'nx', got {format!r}")
    if isinstance(bodyId, bool) or not isinstance(bodyId, int | np.integer):
        raise SkeletonError(f"bodyId must be an integer, got {bodyId!r}")
    p = _skeleton_path(int(bodyId), client, folder)
    sk = read_swc(p)
    if heal:
        sk = heal_skeleton(sk)
    if format == "swc":
        return write_swc(sk, header=f"bodyId {int(bodyId)}")
    if format == "nx":
        return skeleton_to_networkx(sk)
    if with_distances:
        par = sk.set_index("rowId")[["x", "y", "z"]].reindex(sk["link"]).to_numpy()
        sk["distance"] = np.linalg.norm(sk[["x", "y", "z"]].to_numpy() - par, axis=1)
    return sk


def attach_synapses(
    skeleton: pd.DataFrame,
    synapses: pd.DataFrame,
    max_distance: float = np.inf,
    *,
    type_col: str = "type",
) -> pd.DataFrame:
    """Map synapses to their nearest skeleton node (scipy ``cKDTree``).

    Parameters
    ----------
    skeleton
        ``rowId, x, y, z, ...`` table.
    synapses
        Rows with ``x, y, z`` (e.g. from :func:`connectome_dask.fetch_synapses`)
        and optionally a ``type`` column (``"pre"``/``"post"``).
    max_distance
        Synapses farther than this from every node are dropped.
    type_col
        Column of ``synapses`` copied to ``type`` (``None`` values when absent).

    Returns
    -------
    pandas.DataFrame
        crantpy / navis ``connectors`` columns: ``connector_id`` (row number
        in ``synapses``), ``node_id``, ``type``, ``x, y, z``, ``distance``,
        then the other synapse columns (``bodyId``, ``roi``, ``confidence``
        ...). Sorted by ``connector_id``.

    Raises
    ------
    SkeletonError
        ``synapses`` lacks ``x``, ``y`` or ``z``, the skeleton is empty, or
        it is not a valid table (see :func:`write_swc`).

    Examples
    --------
    >>> sk = read_swc("1 0 0 0 0 1 -1\\n2 0 10 0 0 1 1\\n")
    >>> syn = pd.DataFrame({"type": ["pre"], "x": [9.0], "y": [0.0], "z": [1.0]})
    >>> attach_synapses(sk, syn)["node_id"].tolist()
    [2]
    """
    from scipy.spatial import cKDTree

    for c in ("x", "y", "z"):
        if c not in synapses.columns:
            raise SkeletonError(f"synapses need x, y, z columns; got {list(synapses.columns)}")
    _validate(skeleton)
    if len(skeleton) == 0:
        raise SkeletonError("cannot attach synapses to an empty skeleton")
    tree = cKDTree(skeleton[["x", "y", "z"]].to_numpy(np.float64))
    pts = synapses[["x", "y", "z"]].to_numpy(np.float64)
    d, j = tree.query(pts, distance_upper_bound=max_distance) if len(pts) else (np.zeros(0), np.zeros(0, int))
    ok = np.isfinite(d)
    nodes = skeleton["rowId"].to_numpy()
    out = pd.DataFrame({
        "connector_id": np.flatnonzero(ok).astype(np.int64),
        "node_id": nodes[j[ok]] if ok.any() else np.zeros(0, np.int64),
        "type": synapses[type_col].to_numpy()[ok] if type_col in synapses.columns else None,
        "x": pts[ok, 0], "y": pts[ok, 1], "z": pts[ok, 2],
        "distance": d[ok],
    })
    rest = [c for c in synapses.columns if c not in ("x", "y", "z", type_col)]
    for c in rest:
        out[c] = synapses[c].to_numpy()[ok]
    return out


def to_navis(skeleton: pd.DataFrame, bodyId: int | None = None, connectors: pd.DataFrame | None = None, **kwargs):
    """Convert to a ``navis.TreeNeuron`` (needs navis; ``pip install navis``).

    Parameters
    ----------
    skeleton
        ``rowId, x, y, z, radius, link`` table (nodes get ``label`` 0,
        units ``nm``).
    bodyId
        The neuron's ``id``.
    connectors
        Table from :func:`attach_synapses`; becomes the neuron's connectors.
    **kwargs
        Passed to ``navis.TreeNeuron``.

    Returns
    -------
    navis.TreeNeuron

    Raises
    ------
    ImportError
        navis is not installed.
    SkeletonError
        The table lacks a skeleton column, repeats a node id, or links a
        node to a parent that is not in it.

    Examples
    --------
    Skipped in the doctest run: navis is an optional dependency (not in the
    test extras) and takes several seconds to import.

    >>> sk = read_swc("1 0 0 0 0 1 -1\\n2 0 10 0 0 1 1\\n")
    >>> syn = pd.DataFrame({"type": ["pre"], "x": [9.0], "y": [0.0], "z": [1.0]})
    >>> n = to_navis(sk, bodyId=42, connectors=attach_synapses(sk, syn))  # doctest: +SKIP
    >>> n.id, n.n_nodes, n.connectors.node_id.tolist()  # doctest: +SKIP
    (42, 2, [2])
    """
    try:
        import navis
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("to_navis needs navis: pip install navis") from None
    _validate(skeleton)
    nodes = pd.DataFrame({
        "node_id": skeleton["rowId"].to_numpy(np.int64),
        "label": 0,
        "x": skeleton["x"].to_numpy(np.float32), "y": skeleton["y"].to_numpy(np.float32),
        "z": skeleton["z"].to_numpy(np.float32), "radius": skeleton["radius"].to_numpy(np.float32),
        "parent_id": skeleton["link"].to_numpy(np.int64),
    })
    n = navis.TreeNeuron(nodes, id=bodyId, units="nm", **kwargs)
    if connectors is not None:
        n.connectors = connectors.reset_index(drop=True)
    return n


def from_navis(neuron) -> pd.DataFrame:
    """A ``navis.TreeNeuron``'s nodes as ``rowId, x, y, z, radius, link``.

    Parameters
    ----------
    neuron
        A ``navis.TreeNeuron`` (anything with a ``nodes`` table of
        ``node_id, x, y, z, parent_id`` and optionally ``radius``).

    Returns
    -------
    pandas.DataFrame
        Missing radii become 0, missing parents ``-1`` (roots).

    Raises
    ------
    SkeletonError
        The table lacks a skeleton column, repeats a node id, or links a
        node to a parent that is not in it.

    Examples
    --------
    Skipped in the doctest run: needs the optional navis package (see
    :func:`to_navis`).

    >>> sk = read_swc("1 0 0 0 0 1 -1\\n2 0 10 0 0 1 1\\n")
    >>> from_navis(to_navis(sk)).equals(sk)  # doctest: +SKIP
    True
    """
    nodes = neuron.nodes
    radius = nodes["radius"] if "radius" in nodes.columns else pd.Series(0.0, index=nodes.index)
    df = pd.DataFrame({
        "rowId": nodes["node_id"].to_numpy(np.int64),
        "x": nodes["x"].to_numpy(np.float32), "y": nodes["y"].to_numpy(np.float32),
        "z": nodes["z"].to_numpy(np.float32),
        "radius": radius.fillna(0).to_numpy(np.float32),
        "link": nodes["parent_id"].fillna(-1).to_numpy(np.int64),
    })
    _validate(df)
    return df
