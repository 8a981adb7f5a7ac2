"""crantpy-style queries on a local store: ``get_synapses``, ``get_connectivity``, ``get_adjacency``,
``get_synapse_counts``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..compute.dense import check_dense
from ..compute.pairs import pair_counts as _index_pair_counts
from ..criteria import (
    CriteriaError,
    UnknownColumnError,
)

if TYPE_CHECKING:
    pass

from ._common import _conn, _crit, _ids_or_none, _select_rows

__all__ = ["get_synapses", "get_connectivity", "get_adjacency", "get_synapse_counts"]


def get_synapses(
    pre_ids: Any = None,
    post_ids: Any = None,
    threshold: int = 1,
    min_size: float | None = None,
    clean: bool = True,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Individual synapses between pre and post neurons (crantpy's ``get_synapses``).

    Steps in crantpy's order: ``min_size`` (keep ``size >= min_size``; needs a
    ``size`` column), then pairs with fewer than ``threshold`` synapses are
    dropped, then ``clean`` removes autapses and body ID 0 (background).

    Parameters
    ----------
    pre_ids, post_ids
        Presynaptic / postsynaptic neurons: body IDs, types or criteria
        (anything :func:`~connectome_dask.criteria.copy_as_neuroncriteria`
        accepts); ``None`` = any neuron on that side. At least one is needed.
    threshold
        Drop pairs with fewer synapses (after ``min_size``).
    min_size
        Keep synapses with ``size >= min_size`` (needs a ``size`` column).
    clean
        Remove autapses and synapses of body ID 0.
    client
        A :class:`~connectome_dask.Connectome` (from :func:`connectome_dask.open`),
        or ``None`` for :func:`connectome_dask.default_connectome`.
    progress
        Show a progress bar for whole-table scans (``None``: the dask config
        ``connectome_dask.progress``).

    Returns
    -------
    pandas.DataFrame
        ``id`` (storage row), ``pre_pt_root_id``, ``post_pt_root_id``, then
        ``size`` if stored, positions in CAVE's split form in nm
        (``pre_pt_position_x..``, ``post_pt_position_x..``, or
        ``ctr_pt_position_x..`` for single-centre stores; crantpy converts to
        voxels, we keep nm), and ``confidence`` column(s) if stored. Sorted by
        ``(pre_pt_root_id, post_pt_root_id, id)``.

    Raises
    ------
    TypeError
        ``client`` is not a Connectome.
    connectome_dask.errors.StoreError
        ``client`` is ``None`` and no connectome is open.
    connectome_dask.errors.CriteriaError
        Neither ``pre_ids`` nor ``post_ids`` given, or invalid criteria (see
        :class:`NeuronCriteria` and
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria`).
    connectome_dask.errors.UnknownRoiError
        An ROI name the store does not define (also a ``KeyError``).
    connectome_dask.errors.UnknownColumnError
        ``min_size`` on a store without a synapse ``size`` column, or a
        criteria property that is not a neuron column (also a ``KeyError``).

    Examples
    --------
    >>> syn = get_synapses(pre_ids=[some_body], threshold=3)
    >>> syn.columns.tolist()[:4], set(syn.pre_pt_root_id) == {some_body}
    (['id', 'pre_pt_root_id', 'post_pt_root_id', 'size'], True)
    >>> int(syn.groupby("post_pt_root_id").size().min()) >= 3
    True
    """
    conn = _conn(client)
    if pre_ids is None and post_ids is None:
        raise CriteriaError("get_synapses needs pre_ids or post_ids (or both)")
    if min_size is not None and "size" not in conn.synapse_columns:
        raise UnknownColumnError(f"min_size given but {conn.path} has no synapse 'size' column")
    pre_idx, post_idx = _ids_or_none(pre_ids, conn), _ids_or_none(post_ids, conn)
    pos = conn.positions
    extra = [c for c in ("size", "confidence", "confidence_pre", "confidence_post") if c in conn.synapse_columns]
    cols = [*pos, *extra]
    if (pre_idx is not None and len(pre_idx) == 0) or (post_idx is not None and len(post_idx) == 0):
        d = {c: np.zeros(0, np.float32) for c in cols}
        d.update(pre=np.zeros(0, np.int32), post=np.zeros(0, np.int32), _row=np.zeros(0, np.int64))
    else:
        d = _select_rows(conn, pre_idx, post_idx, cols, progress=progress)
    keep = np.ones(len(d["pre"]), dtype=bool)
    if min_size is not None:
        keep &= d["size"] >= min_size
    key = d["pre"].astype(np.int64) * conn.n_neurons + d["post"].astype(np.int64)
    if len(key):
        _, inv, cnt = np.unique(key[keep], return_inverse=True, return_counts=True)
        k2 = cnt[inv] >= threshold
        keep[np.flatnonzero(keep)[~k2]] = False
    body = conn.neurons["bodyId"].to_numpy()
    bpre, bpost = body[d["pre"]], body[d["post"]]
    if clean:
        keep &= (bpre != bpost) & (bpre != 0) & (bpost != 0)
    out = {"id": d["_row"][keep], "pre_pt_root_id": bpre[keep], "post_pt_root_id": bpost[keep]}
    if "size" in d:
        out["size"] = d["size"][keep]
    names = {"x_pre": "pre_pt_position_x", "y_pre": "pre_pt_position_y", "z_pre": "pre_pt_position_z",
             "x_post": "post_pt_position_x", "y_post": "post_pt_position_y", "z_post": "post_pt_position_z",
             "x": "ctr_pt_position_x", "y": "ctr_pt_position_y", "z": "ctr_pt_position_z"}
    for c in pos:
        out[names[c]] = d[c][keep]
    for c in extra:
        if c != "size":
            out[c] = d[c][keep]
    df = pd.DataFrame(out)
    return df.sort_values(["pre_pt_root_id", "post_pt_root_id", "id"], ignore_index=True)


def get_connectivity(
    neuron_ids: Any,
    upstream: bool = True,
    downstream: bool = True,
    threshold: int = 1,
    min_size: float | None = None,
    clean: bool = True,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Edge list ``pre, post, weight`` of the given neurons' partners (crantpy).

    Upstream (partners -> neurons) and/or downstream (neurons -> partners)
    synapses are counted per pair (each synapse once), ``clean`` removes
    autapses and background (ID 0), then pairs below ``threshold`` are
    dropped. Sorted by weight descending, then ``pre``, ``post``.

    Parameters
    ----------
    neuron_ids
        The neurons: body IDs, types or criteria (anything
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria` accepts).
    upstream
        Count synapses from partners onto the neurons.
    downstream
        Count synapses from the neurons onto partners.
    threshold
        Drop pairs with fewer synapses.
    min_size
        Count only synapses with ``size >= min_size`` (needs a ``size`` column).
    clean
        Remove autapses and pairs with body ID 0.
    client
        A :class:`~connectome_dask.Connectome` (from :func:`connectome_dask.open`),
        or ``None`` for :func:`connectome_dask.default_connectome`.
    progress
        Show a progress bar for whole-table scans (``None``: the dask config
        ``connectome_dask.progress``).

    Returns
    -------
    pandas.DataFrame
        ``pre, post, weight`` (body IDs and synapse counts, int64).

    Raises
    ------
    TypeError
        ``client`` is not a Connectome.
    connectome_dask.errors.StoreError
        ``client`` is ``None`` and no connectome is open.
    connectome_dask.errors.CriteriaError
        ``upstream`` and ``downstream`` both False, ``neuron_ids`` is ``None``, or
        invalid criteria (see :class:`NeuronCriteria` and
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria`).
    connectome_dask.errors.UnknownRoiError
        An ROI name the store does not define (also a ``KeyError``).
    connectome_dask.errors.UnknownColumnError
        ``min_size`` on a store without a synapse ``size`` column, or a
        criteria property that is not a neuron column (also a ``KeyError``).

    Examples
    --------
    >>> edges = get_connectivity([some_body], upstream=False, threshold=3)
    >>> edges.columns.tolist(), set(edges.pre) == {some_body}
    (['pre', 'post', 'weight'], True)
    >>> edges.weight.is_monotonic_decreasing, int(edges.weight.min()) >= 3
    (True, True)
    """
    conn = _conn(client)
    if not upstream and not downstream:
        raise CriteriaError("Both `upstream` and `downstream` cannot be False")
    if neuron_ids is None:
        raise CriteriaError("get_connectivity needs neuron_ids")
    idx = _crit(neuron_ids, conn).indices(conn)
    body = conn.neurons["bodyId"].to_numpy()
    parts = []
    if len(idx) and min_size is None:
        if downstream:
            parts.append(_index_pair_counts(conn, idx, None, progress=progress))
        if upstream:
            up = _index_pair_counts(conn, None, idx, progress=progress)
            if downstream:  # rows with both sides in idx were already counted
                up = up[~np.isin(up["pre"].to_numpy(), idx)]
            parts.append(up)
    elif len(idx):
        if "size" not in conn.synapse_columns:
            raise UnknownColumnError(f"min_size given but {conn.path} has no synapse 'size' column")
        d = _select_rows(conn, idx if downstream else None, idx if upstream else None, ["size"],
                         either=upstream and downstream, progress=progress)
        k = d["size"] >= min_size
        s = pd.DataFrame({"pre": d["pre"][k], "post": d["post"][k]}).value_counts().rename("weight")
        parts.append(s.reset_index())
    if not parts:
        return pd.DataFrame({"pre": np.zeros(0, np.int64), "post": np.zeros(0, np.int64),
                             "weight": np.zeros(0, np.int64)})
    pc = pd.concat(parts, ignore_index=True)
    df = pd.DataFrame({"pre": body[pc["pre"].to_numpy()], "post": body[pc["post"].to_numpy()],
                       "weight": pc["weight"].to_numpy(np.int64)})
    if clean:
        df = df[(df["pre"] != df["post"]) & (df["pre"] != 0) & (df["post"] != 0)]
    df = df[df["weight"] >= threshold]
    return df.sort_values(["weight", "pre", "post"], ascending=[False, True, True], ignore_index=True)


def get_adjacency(
    pre_ids: Any = None,
    post_ids: Any = None,
    threshold: int = 1,
    min_size: float | None = None,
    symmetric: bool = False,
    clean: bool = True,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Dense pre x post synapse-count DataFrame (crantpy's ``get_adjacency``).

    Built from :func:`get_synapses` semantics (``min_size``, then pair
    ``threshold``, then ``clean``). Rows are the presynaptic IDs and columns
    the postsynaptic IDs that occur in the kept synapses (sorted);
    ``symmetric=True`` uses their union on both axes. With no synapses the
    axes are the requested IDs (crantpy's behaviour). At least one side must
    be given; the result is dense, so keep selections modest (use
    :meth:`Connectome.adjacency` for sparse whole-brain matrices).

    Parameters
    ----------
    pre_ids, post_ids
        Presynaptic / postsynaptic neurons (as :func:`get_synapses`); ``None``
        = any neuron on that side. At least one is needed.
    threshold
        Drop pairs with fewer synapses.
    min_size
        Count only synapses with ``size >= min_size`` (needs a ``size`` column).
    symmetric
        Use the union of the row and column IDs on both axes.
    clean
        Remove autapses and pairs with body ID 0.
    client
        A :class:`~connectome_dask.Connectome` (from :func:`connectome_dask.open`),
        or ``None`` for :func:`connectome_dask.default_connectome`.
    progress
        Show a progress bar for whole-table scans (``None``: the dask config
        ``connectome_dask.progress``).

    Returns
    -------
    pandas.DataFrame
        int64 synapse counts, index and columns int64 body IDs (sorted).

    Raises
    ------
    TypeError
        ``client`` is not a Connectome.
    connectome_dask.errors.StoreError
        ``client`` is ``None`` and no connectome is open.
    connectome_dask.errors.CriteriaError
        Neither ``pre_ids`` nor ``post_ids`` given, or invalid criteria (see
        :class:`NeuronCriteria` and
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria`).
    connectome_dask.errors.UnknownRoiError
        An ROI name the store does not define (also a ``KeyError``).
    connectome_dask.errors.UnknownColumnError
        ``min_size`` on a store without a synapse ``size`` column, or a
        criteria property that is not a neuron column (also a ``KeyError``).
    connectome_dask.errors.DenseMatrixTooLarge
        The dense matrix would exceed ``connectome_dask.max_dense_bytes``.

    Examples
    --------
    >>> kc = conn.neurons.bodyId[conn.neurons.type == "KCg-m"].tolist()
    >>> adj = get_adjacency(kc, kc, threshold=2)
    >>> bool(adj.index.isin(kc).all() and adj.columns.isin(kc).all()), adj.dtypes.unique().tolist()
    (True, [dtype('int64')])
    >>> sym = get_adjacency(kc, kc, threshold=2, symmetric=True)
    >>> sym.index.equals(sym.columns), int(sym.to_numpy().sum()) == int(adj.to_numpy().sum())
    (True, True)
    """
    conn = _conn(client)
    if pre_ids is None and post_ids is None:
        raise CriteriaError("get_adjacency needs pre_ids or post_ids (or both)")
    pre_idx, post_idx = _ids_or_none(pre_ids, conn), _ids_or_none(post_ids, conn)
    body = conn.neurons["bodyId"].to_numpy()
    if min_size is not None:
        syn = get_synapses(pre_ids, post_ids, threshold, min_size, clean, client=conn, progress=progress)
        pc = syn.groupby(["pre_pt_root_id", "post_pt_root_id"]).size().rename("weight").reset_index()
        pc.columns = ["pre", "post", "weight"]
    else:
        empty = (pre_idx is not None and len(pre_idx) == 0) or (post_idx is not None and len(post_idx) == 0)
        if empty:
            pc = pd.DataFrame({"pre": np.zeros(0, np.int64), "post": np.zeros(0, np.int64),
                               "weight": np.zeros(0, np.int64)})
        else:
            raw = _index_pair_counts(conn, pre_idx, post_idx, min_weight=max(int(threshold), 1), progress=progress)
            pc = pd.DataFrame({"pre": body[raw["pre"].to_numpy()], "post": body[raw["post"].to_numpy()],
                               "weight": raw["weight"].to_numpy(np.int64)})
        if clean:
            pc = pc[(pc["pre"] != pc["post"]) & (pc["pre"] != 0) & (pc["post"] != 0)]
    if len(pc) == 0:
        row_ids = sorted(body[pre_idx].tolist()) if pre_idx is not None else []
        col_ids = sorted(body[post_idx].tolist()) if post_idx is not None else []
        if symmetric:
            row_ids = col_ids = sorted(set(row_ids) | set(col_ids))
        return pd.DataFrame(0, index=pd.Index(row_ids, dtype=np.int64),
                            columns=pd.Index(col_ids, dtype=np.int64), dtype=np.int64)
    if symmetric:
        rows = cols = np.unique(np.concatenate([pc["pre"].to_numpy(), pc["post"].to_numpy()]))
    else:
        rows, cols = np.unique(pc["pre"].to_numpy()), np.unique(pc["post"].to_numpy())
    check_dense((len(rows), len(cols)), 8, "get_adjacency matrix")
    mat = np.zeros((len(rows), len(cols)), dtype=np.int64)
    mat[np.searchsorted(rows, pc["pre"].to_numpy()), np.searchsorted(cols, pc["post"].to_numpy())] = pc["weight"]
    return pd.DataFrame(mat, index=pd.Index(rows, dtype=np.int64), columns=pd.Index(cols, dtype=np.int64))


def get_synapse_counts(
    neuron_ids: Any,
    threshold: int = 1,
    min_size: float | None = None,
    clean: bool = True,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Number of partners per neuron (crantpy's ``get_synapse_counts``).

    As in crantpy, ``pre`` / ``post`` count *distinct partners*
    (downstream / upstream pairs with weight >= ``threshold`` after
    ``clean``), not synapses. Index ``neuron_id``: body IDs in the caller's
    order when IDs are given (unknown IDs dropped), else sorted.

    Parameters
    ----------
    neuron_ids
        The neurons: body IDs, types or criteria (anything
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria` accepts;
        ``None``: every neuron).
    threshold
        Count only partners with at least this many synapses.
    min_size
        Count only synapses with ``size >= min_size`` (needs a ``size`` column).
    clean
        Leave out autapses and body ID 0 as partners.
    client
        A :class:`~connectome_dask.Connectome` (from :func:`connectome_dask.open`),
        or ``None`` for :func:`connectome_dask.default_connectome`.
    progress
        Show a progress bar for whole-table scans (``None``: the dask config
        ``connectome_dask.progress``).

    Returns
    -------
    pandas.DataFrame
        int64 columns ``pre`` (downstream partners) and ``post`` (upstream
        partners), index ``neuron_id``.

    Raises
    ------
    TypeError
        ``client`` is not a Connectome.
    connectome_dask.errors.StoreError
        ``client`` is ``None`` and no connectome is open.
    connectome_dask.errors.CriteriaError
        Invalid criteria (see :class:`NeuronCriteria` and
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria`).
    connectome_dask.errors.UnknownRoiError
        An ROI name the store does not define (also a ``KeyError``).
    connectome_dask.errors.UnknownColumnError
        ``min_size`` on a store without a synapse ``size`` column, or a
        criteria property that is not a neuron column (also a ``KeyError``).

    Examples
    --------
    >>> counts = get_synapse_counts([some_body], threshold=3)
    >>> counts.index.name, counts.columns.tolist(), counts.index.tolist() == [some_body]
    ('neuron_id', ['pre', 'post'], True)
    """
    conn = _conn(client)
    crit = _crit(neuron_ids, conn)
    idx = crit.indices(conn)
    body = conn.neurons["bodyId"].to_numpy()
    ids = np.sort(body[idx])
    if crit.bodyId:  # IDs keep the caller's order, as in crantpy
        found = set(ids.tolist())
        ids = np.asarray([b for b in dict.fromkeys(crit.bodyId) if b in found], dtype=np.int64)
    edges = get_connectivity(crit, threshold=threshold, min_size=min_size, clean=clean, client=conn,
                             progress=progress)
    idset = pd.Index(ids)
    pre = edges[edges["pre"].isin(idset)].groupby("pre").size()
    post = edges[edges["post"].isin(idset)].groupby("post").size()
    out = pd.DataFrame({"pre": pre.reindex(ids).fillna(0).astype(np.int64).to_numpy(),
                        "post": post.reindex(ids).fillna(0).astype(np.int64).to_numpy()},
                       index=pd.Index(ids, name="neuron_id", dtype=np.int64))
    return out
