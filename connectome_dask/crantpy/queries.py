"""crantpy's ``crantpy.queries`` on a local store: the same names, signatures and defaults.

The nested matrices (:class:`NestedMatrix`, :class:`DirectedNestedMatrix`,
:class:`NeuropilCollection`, :data:`All`) are :mod:`connectome_dask.matrix`'s
classes, which follow crantpy's rules exactly and also take a
:class:`~connectome_dask.store.Connectome` or a dask DataFrame. The query
functions wrap :mod:`connectome_dask.query.crantpy` with crantpy's positional
order. Server-only arguments are accepted and documented:

* ``materialization`` (``"latest"``, ``"live"`` or a version): a store is one
  materialization, so it has no effect;
* ``update_ids``: a store's IDs are the ones it was built with; no effect;
* ``dataset``: ``None`` for the default connectome
  (:func:`connectome_dask.open` sets it), an open ``Connectome``, or a store path.

Examples
--------
>>> from connectome_dask.crantpy import queries as q
>>> syn = q.get_synapses(pre_ids=[some_body], return_pixels=False)
>>> set(syn["pre_pt_root_id"]) == {some_body}
True
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConnectomeDaskError
from ..matrix import All, DirectedNestedMatrix, NestedMatrix, NeuropilCollection
from ..matrix import common as _mcommon
from ..query import crantpy as _q

__all__ = [
    "All",
    "DirectedNestedMatrix",
    "NestedMatrix",
    "NeuropilCollection",
    "attach_synapses",
    "get_adjacency",
    "get_connectivity",
    "get_synapse_counts",
    "get_synapses",
]

_log = logging.getLogger(_mcommon.LOGGER_NAME)

_SITES = ("pre", "post", "ctr")


def _dataset(dataset: Any, client: Any) -> Any:
    """The Connectome for crantpy's ``dataset`` argument (or our ``client``)."""
    from ..store import Connectome, open

    obj = client if client is not None else dataset
    if obj is None or isinstance(obj, Connectome):
        return obj
    if isinstance(obj, str | os.PathLike):
        return open(obj, set_default=False)
    raise TypeError(f"dataset must be None, a Connectome or a store path, got {type(obj).__name__}")


def _scale() -> np.ndarray:
    return np.asarray(_mcommon.DEFAULT_VOXEL_SIZE, dtype=np.float64)


def _array_positions(df: pd.DataFrame, return_pixels: bool) -> pd.DataFrame:
    """crantpy's position columns: one ``[x, y, z]`` array per row per site, in pixels or nm."""
    out = df
    for site in _SITES:
        cols = [f"{site}_pt_position_{a}" for a in "xyz"]
        if not all(c in df.columns for c in cols):
            continue
        pos = df[cols].to_numpy(np.float64)
        if return_pixels:  # crantpy: int(nm // scale) per axis
            pos = np.floor_divide(pos, _scale()).astype(np.int64)
        out = out.drop(columns=cols)
        out[f"{site}_pt_position"] = list(pos)
    return out


def get_synapses(
    pre_ids: Any = None,
    post_ids: Any = None,
    threshold: int = 1,
    min_size: float | None = None,
    materialization: str | int = "latest",
    return_pixels: bool = True,
    clean: bool = True,
    update_ids: bool = True,
    dataset: Any = None,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Synapses between pre and post neurons, with crantpy's signature and columns.

    As :func:`connectome_dask.query.crantpy.get_synapses` (``min_size``, then
    the pair ``threshold``, then ``clean``), with positions as crantpy returns
    them: one ``[x, y, z]`` array per row in ``pre_pt_position``,
    ``post_pt_position`` (or ``ctr_pt_position``), in pixels (``nm //``
    :data:`connectome_dask.crantpy.SCALE`) unless ``return_pixels=False``.

    Parameters
    ----------
    pre_ids, post_ids
        Body IDs, types or criteria; ``None`` = any neuron on that side. At
        least one is needed.
    threshold
        Drop pairs with fewer synapses.
    min_size
        Keep synapses with ``size >= min_size``.
    materialization
        Accepted for crantpy compatibility; a store is one materialization (no effect).
    return_pixels
        Positions in pixels (crantpy's default) instead of nm.
    clean
        Remove autapses and body ID 0.
    update_ids
        Accepted for crantpy compatibility (no effect: a store's IDs are fixed).
    dataset
        ``None`` (the default connectome), a Connectome or a store path.
    client
        A Connectome (same as ``dataset``; wins when both are given).
    progress
        Progress bar for whole-table scans.

    Returns
    -------
    pandas.DataFrame
        ``id, pre_pt_root_id, post_pt_root_id[, size]``, the position array
        columns and confidence column(s) if stored.

    Raises
    ------
    ValueError
        Neither ``pre_ids`` nor ``post_ids`` (a ``CriteriaError``), or invalid criteria.
    TypeError
        ``dataset`` is not None, a Connectome or a path.

    Examples
    --------
    >>> syn = get_synapses(pre_ids=[some_body])
    >>> "pre_pt_position" in syn.columns and len(syn.iloc[0]["pre_pt_position"]) == 3
    True
    """
    conn = _dataset(dataset, client)
    _log.info("get_synapses: materialization=%r and update_ids=%r have no effect on a local store",
              materialization, update_ids)
    df = _q.get_synapses(pre_ids, post_ids, threshold, min_size, clean, client=conn, progress=progress)
    return _array_positions(df, return_pixels)


def get_connectivity(
    neuron_ids: Any,
    upstream: bool = True,
    downstream: bool = True,
    threshold: int = 1,
    min_size: float | None = None,
    materialization: str | int = "latest",
    clean: bool = True,
    update_ids: bool = True,
    dataset: Any = None,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Edge list ``pre, post, weight`` of the neurons' partners (crantpy's signature).

    Parameters
    ----------
    neuron_ids
        Body IDs, types or criteria.
    upstream, downstream
        Count synapses onto / from the neurons.
    threshold
        Drop pairs with fewer synapses.
    min_size
        Count only synapses with ``size >= min_size``.
    materialization, update_ids
        Accepted for crantpy compatibility (no effect on a store).
    clean
        Remove autapses and body ID 0.
    dataset, client, progress
        As :func:`get_synapses`.

    Returns
    -------
    pandas.DataFrame
        Sorted by weight, descending.

    Raises
    ------
    ValueError
        ``upstream`` and ``downstream`` both False (a ``CriteriaError``), or invalid criteria.
    TypeError
        ``dataset`` is not None, a Connectome or a path.

    Examples
    --------
    >>> get_connectivity(some_body, upstream=False).columns.tolist()
    ['pre', 'post', 'weight']
    """
    conn = _dataset(dataset, client)
    return _q.get_connectivity(neuron_ids, upstream, downstream, threshold, min_size, clean, client=conn,
                               progress=progress)


def get_adjacency(
    pre_ids: Any = None,
    post_ids: Any = None,
    threshold: int = 1,
    min_size: float | None = None,
    materialization: str | int = "latest",
    symmetric: bool = False,
    clean: bool = True,
    update_ids: bool = True,
    dataset: Any = None,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Dense pre x post synapse counts (crantpy's signature).

    Parameters
    ----------
    pre_ids, post_ids
        Body IDs, types or criteria; ``None`` = any (at least one is needed).
    threshold
        Drop pairs with fewer synapses.
    min_size
        Count only synapses with ``size >= min_size``.
    materialization, update_ids
        Accepted for crantpy compatibility (no effect on a store).
    symmetric
        The union of row and column IDs on both axes.
    clean
        Remove autapses and body ID 0.
    dataset, client, progress
        As :func:`get_synapses`.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ValueError
        Neither side given (a ``CriteriaError``), or the dense matrix would be
        too large (``DenseMatrixTooLarge``).
    TypeError
        ``dataset`` is not None, a Connectome or a path.

    Examples
    --------
    >>> adj = get_adjacency([some_body], None)
    >>> adj.index.tolist() in ([some_body], [])
    True
    """
    conn = _dataset(dataset, client)
    return _q.get_adjacency(pre_ids, post_ids, threshold, min_size, symmetric, clean, client=conn,
                            progress=progress)


def get_synapse_counts(
    neuron_ids: Any,
    threshold: int = 1,
    min_size: float | None = None,
    materialization: str | int = "latest",
    clean: bool = True,
    update_ids: bool = True,
    dataset: Any = None,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Distinct downstream (``pre``) and upstream (``post``) partners per neuron (crantpy's signature).

    Parameters
    ----------
    neuron_ids
        Body IDs, types or criteria.
    threshold
        Count only partners with at least this many synapses.
    min_size
        Count only synapses with ``size >= min_size``.
    materialization, update_ids
        Accepted for crantpy compatibility (no effect on a store).
    clean
        Leave out autapses and body ID 0.
    dataset, client, progress
        As :func:`get_synapses`.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ValueError
        Invalid criteria (a ``CriteriaError``).
    TypeError
        ``dataset`` is not None, a Connectome or a path.

    Examples
    --------
    >>> get_synapse_counts([some_body]).columns.tolist()
    ['pre', 'post']
    """
    conn = _dataset(dataset, client)
    return _q.get_synapse_counts(neuron_ids, threshold, min_size, clean, client=conn, progress=progress)


def _site_xyz(syn: pd.DataFrame, site: str) -> np.ndarray:
    """nm positions of one site (falls back to the single centre point)."""
    for s in (site, "ctr"):
        cols = [f"{s}_pt_position_{a}" for a in "xyz"]
        if all(c in syn.columns for c in cols):
            return syn[cols].to_numpy(np.float64)
    raise ConnectomeDaskError(f"synapses have no {site} positions; columns: {list(syn.columns)}")


def attach_synapses(
    neurons: Any,
    pre: bool = True,
    post: bool = True,
    threshold: int = 1,
    min_size: float | None = None,
    materialization: str | int = "latest",
    clean: bool = True,
    max_distance: float = 10000.0,
    update_ids: bool = True,
    dataset: Any = None,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> Any:
    """Attach synapses as a ``.connectors`` table to skeleton neurons (crantpy's signature).

    Each synapse of the neuron (its presynapses with ``pre``, postsynapses
    with ``post``) is mapped to the nearest skeleton node (scipy KD-tree);
    with ``clean`` those farther than ``max_distance`` nm are removed.

    Parameters
    ----------
    neurons
        A ``navis.TreeNeuron`` / ``navis.NeuronList``, or any object (or
        list of objects) with an ``id`` and a ``nodes`` table
        (``node_id, x, y, z`` in nm).
    pre, post
        Attach presynapses (outputs) / postsynapses (inputs).
    threshold
        Minimum synapses per neuron pair.
    min_size
        Minimum synapse size.
    materialization, update_ids
        Accepted for crantpy compatibility (no effect on a store).
    clean
        Remove autapses, body ID 0 and synapses farther than ``max_distance``.
    max_distance
        nm from the nearest node (with ``clean``).
    dataset, client, progress
        As :func:`get_synapses`.

    Returns
    -------
    The same neuron(s), modified in place: ``connectors`` with columns
    ``connector_id, x, y, z, type, partner_id, node_id``.

    Raises
    ------
    TypeError
        ``neurons`` are not skeleton neurons (no ``id`` / ``nodes``).
    ValueError
        ``pre`` and ``post`` are both False.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> sk = cd.fetch_skeleton(skeleton_body)
    >>> n = SimpleNamespace(id=skeleton_body, nodes=sk.rename(columns={"rowId": "node_id"}))
    >>> list(attach_synapses(n, max_distance=1e9).connectors.columns)
    ['connector_id', 'x', 'y', 'z', 'type', 'partner_id', 'node_id']
    """
    from scipy.spatial import cKDTree

    if not pre and not post:
        raise ConnectomeDaskError("`pre` and `post` cannot both be False")
    many = not hasattr(neurons, "nodes")
    items = list(neurons) if many and not isinstance(neurons, str | bytes) else [neurons]
    for n in items:
        if not (hasattr(n, "nodes") and hasattr(n, "id")):
            raise TypeError(f"neurons must be TreeNeurons (with .id and .nodes), got {type(n).__name__}")
    conn = _dataset(dataset, client)
    for n in items:
        body = int(n.id)
        parts = []
        for side, other, want in (("pre", "post", pre), ("post", "pre", post)):
            if not want:
                continue
            kw = {"pre_ids": [body]} if side == "pre" else {"post_ids": [body]}
            syn = _q.get_synapses(threshold=threshold, min_size=min_size, clean=clean, client=conn,
                                  progress=progress, **kw)
            syn = syn.drop_duplicates("id")
            xyz = _site_xyz(syn, side)
            parts.append(pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "type": side,
                                       "partner_id": syn[f"{other}_pt_root_id"].to_numpy()}))
        con = pd.concat(parts, ignore_index=True)
        nodes = n.nodes
        tree = cKDTree(nodes[["x", "y", "z"]].to_numpy(np.float64))
        d, j = tree.query(con[["x", "y", "z"]].to_numpy(np.float64)) if len(con) else (np.zeros(0), np.zeros(0, int))
        con["node_id"] = nodes["node_id"].to_numpy()[j] if len(con) else np.zeros(0, np.int64)
        if clean:
            con = con[d <= max_distance]
        con = con.reset_index(drop=True)
        con.insert(0, "connector_id", np.arange(len(con), dtype=np.int64))
        n.connectors = con
    return neurons
