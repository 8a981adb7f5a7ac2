"""Map-reduce aggregations over the synapse table: pair counts, grouped blocks, per-ROI counts.

Three layers, as in flox: numba kernels on integer arrays
(:mod:`connectome_dask.kernels`), index-level dask graphs and the read-path
rule (:mod:`connectome_dask.compute`), and this module: neuron selections
(body IDs, masks, criteria) and ROI names resolved to dense indices / codes,
and labelled results (:func:`adjacency` returns an ``xarray.DataArray``).

The read path of every count (through the per-body index, from the
connection table, or a scan of all partitions) is chosen by
:func:`connectome_dask.compute.plan.plan_read`; ``method=`` overrides it.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .compute import groups as _groups
from .compute import nt as _nt
from .compute import pairs as _pairs
from .compute.dense import DenseMatrixTooLarge, check_dense, max_dense_bytes
from .compute.plan import INDEX_PATH_FRACTION  # noqa: F401  (re-exported; the value lives in compute.plan)
from .compute.roi_counts import neuron_roi_counts
from .criteria import RoiModel, _materialize, body_ids_of, copy_as_neuroncriteria
from .labels import natural_key

if TYPE_CHECKING:
    import xarray as xr

    from .store import Connectome

__all__ = [
    "pair_counts",
    "group_counts",
    "adjacency",
    "neuron_roi_counts",
    "resolve_neurons",
    "resolve_rois",
    "max_dense_bytes",
    "check_dense",
    "DenseMatrixTooLarge",
]

_check_dense = check_dense  # short private alias used across modules


# ----------------------------------------------------------------------------- inputs


def resolve_neurons(conn: Connectome, spec: Any) -> np.ndarray | None:
    """Turn a neuron selection into sorted unique dense indices (``None`` = all neurons).

    Accepts ``None``; body IDs: an int or any collection of ints (list, tuple,
    set, numpy array, pandas Series / Index, any other iterable; always body
    IDs, never positional indices, see :func:`~connectome_dask.criteria.body_ids_of`;
    an unknown ID raises ``KeyError``, an empty collection selects no neuron);
    a ``NeuronCriteria`` (or anything neuprint-style criteria coercion
    accepts: str / list of str as type-or-instance, a DataFrame with a
    ``bodyId`` column); or a boolean mask over ``conn.neurons`` (the way to
    pass dense indices).

    Parameters
    ----------
    conn
        The connectome whose neurons are selected.
    spec
        The selection: ``None``, body ID(s), a boolean mask (numpy array,
        pandas Series / Index) of length ``conn.n_neurons``, a DataFrame with
        a ``bodyId`` column, or anything
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria` accepts.

    Returns
    -------
    numpy.ndarray or None
        Sorted unique int32 dense indices into ``conn.neurons``; ``None``
        when ``spec`` is ``None`` (every neuron).

    Raises
    ------
    ValueError
        A boolean mask whose length is not ``conn.n_neurons``.
    KeyError
        A body ID that ``conn`` does not hold.
    connectome_dask.errors.CriteriaError
        ``spec`` is not a neuron selection (e.g. an empty list of strings, a
        bool), or its criteria are invalid; its subclasses
        :class:`~connectome_dask.errors.UnknownColumnError` /
        :class:`~connectome_dask.errors.UnknownRoiError` (also ``KeyError``)
        name an unknown neuron property or ROI.

    Examples
    --------
    >>> resolve_neurons(conn, None) is None
    True
    >>> resolve_neurons(conn, [some_body]).tolist(), resolve_neurons(conn, np.array([some_body])).tolist()
    ([0], [0])
    >>> kc = resolve_neurons(conn, "KC.*")  # a type pattern
    >>> kc.dtype, bool((conn.neurons.type.iloc[kc] == "KCg-m").all())
    (dtype('int32'), True)
    """
    if spec is None:
        return None
    if isinstance(spec, pd.Series | pd.Index) and spec.dtype == bool:
        spec = spec.to_numpy()
    if isinstance(spec, np.ndarray) and spec.dtype == bool:
        if len(spec) != conn.n_neurons:
            raise ValueError(f"boolean neuron mask has length {len(spec)}, expected {conn.n_neurons}")
        return np.flatnonzero(spec).astype(np.int32)
    if isinstance(spec, pd.DataFrame) and "bodyId" in spec.columns:
        spec = spec["bodyId"].to_numpy()
    spec = _materialize(spec)  # a generator is read once
    ids = body_ids_of(spec)
    if ids is not None:  # body IDs given directly: no criteria machinery needed
        # sorted unique through a mask over the neurons (np.unique of 42 k indices took 6 ms)
        sel = np.zeros(conn.n_neurons, dtype=bool)
        sel[conn.body_to_index(ids)] = True
        return np.flatnonzero(sel).astype(np.int32)
    crit = copy_as_neuroncriteria(spec)
    mask = crit.mask(conn)
    return np.flatnonzero(np.asarray(mask)).astype(np.int32)



def resolve_rois(conn: Connectome, rois: str | Iterable[str] | None) -> np.ndarray | None:
    """ROI names (primary or super-level from the hierarchy) to sorted ROI codes.

    A super-level ROI stands for the codes of every primary ROI under it.

    Parameters
    ----------
    conn
        The connectome whose ROI names and hierarchy are used.
    rois
        One ROI name, any iterable of names, or ``None``.

    Returns
    -------
    numpy.ndarray or None
        Sorted unique int16 ROI codes (indices into ``conn.roi_names``);
        ``None`` when ``rois`` is ``None`` (no ROI filter).

    Raises
    ------
    KeyError
        ``conn`` has no ROI assignment, or a name is not one of its ROIs
        (the message names the unknown ROIs and lists the valid ones).

    Examples
    --------
    >>> codes = resolve_rois(conn, "CX")  # a super-level ROI: its primary children
    >>> sorted(conn.roi_names[c] for c in codes)
    ['EB', 'FB', 'NO', 'PB']
    >>> resolve_rois(conn, "nowhere")
    Traceback (most recent call last):
    ...
    KeyError: "unknown ROI(s) ['nowhere']; valid ROIs are: ...
    """
    if rois is None:
        return None
    if isinstance(rois, str):
        rois = [rois]
    rois = list(rois)
    if not conn.roi_names:
        raise KeyError(f"{conn.path} has no ROI assignment; run Connectome.assign_rois first")
    model = RoiModel(conn.roi_info)
    unknown = [r for r in rois if r not in model.all_rois]
    if unknown:
        raise KeyError(f"unknown ROI(s) {unknown}; valid ROIs are: {', '.join(model.all_rois)}")
    codes = np.unique(np.concatenate([model.codes_for(r) for r in rois] + [np.zeros(0, np.int64)]))
    return codes.astype(np.int16)



def _roi_codes(conn: Connectome, rois: Any) -> np.ndarray | None:
    """ROI codes of a ``rois`` argument: an int array is codes, anything else names."""
    if isinstance(rois, np.ndarray) and rois.dtype.kind in "iu":
        return rois
    return resolve_rois(conn, rois)


# ----------------------------------------------------------------------------- counts


def pair_counts(
    conn: Connectome,
    *,
    pre: Any = None,
    post: Any = None,
    rois: Iterable[str] | np.ndarray | None = None,
    by_roi: bool = False,
    confidence: float | None = None,
    min_weight: int = 1,
    progress: bool | None = None,
    output: str | os.PathLike | None = None,
    method: str = "auto",
) -> pd.DataFrame:
    """Count synapses per (presynaptic, postsynaptic) neuron pair.

    Parameters
    ----------
    conn
        The connectome.
    pre, post
        Neurons on each side: ``None`` (all), body IDs (an int or any
        collection of ints: list, tuple, set, numpy array, pandas Series /
        Index...; never positional indices), a boolean mask over
        ``conn.neurons`` (dense indices), or any neuron selection
        :func:`resolve_neurons` accepts.
    rois
        Keep only synapses whose postsynaptic site lies in these ROIs (names,
        or an int array of ROI codes). A connection's ROI is its postsynaptic
        site's ROI, as in neuPrint.
    by_roi
        Also group by the postsynaptic site's ROI code (column ``roi``, -1 =
        in no ROI).
    confidence
        Keep synapses with confidence strictly greater than this.
    min_weight
        Drop rows whose count is below this (per (pair, roi) when ``by_roi``):
        the count of all the pair's synapses that pass the other filters,
        whatever the partitioning.
    progress
        Show a progress bar for whole-table scans.
    output
        Write the result out of core instead of gathering it: a directory of
        Parquet files, one per partition (written to a temporary directory and
        renamed into place); returns ``dask.dataframe.read_parquet(output)``.
        Partitions start at presynaptic-neuron boundaries, so each file holds
        complete pairs. Use it when the pair table is larger than memory
        (~10^9 synapses).
    method
        How to read the rows: ``"auto"`` (the rule of
        :func:`connectome_dask.compute.plan.plan_read`), or force ``"index"``
        (through the per-body index), ``"table"`` (the connection table),
        ``"roi_table"`` (the per-ROI connection table: ROI filters and
        ``by_roi`` without ``confidence``) or ``"scan"`` (every partition).
        The result is the same.

    Returns
    -------
    pandas.DataFrame
        Columns ``pre``, ``post`` (int32 dense indices), ``roi`` (int16, only
        with ``by_roi``) and ``weight`` (int64), sorted by (pre, post, roi).
        A dask DataFrame when ``output`` is given.

    Raises
    ------
    KeyError
        An unknown body ID or ROI, ``by_roi`` on a store without ROIs, or
        ``confidence`` without a confidence column.
    ValueError
        A forced ``method`` cannot answer the request (e.g. ``"table"`` with
        a ROI filter, ``"index"`` with no side restricted).

    Examples
    --------
    >>> df = pair_counts(conn, min_weight=5)
    >>> df.columns.tolist(), bool((df.weight >= 5).all())
    (['pre', 'post', 'weight'], True)
    >>> by_roi = pair_counts(conn, pre=[some_body], by_roi=True)
    >>> by_roi.columns.tolist(), int(by_roi.weight.sum()) == int(conn.neurons.pre.iloc[0])
    (['pre', 'post', 'roi', 'weight'], True)
    """
    return _pairs.pair_counts(
        conn, resolve_neurons(conn, pre), resolve_neurons(conn, post), roi_codes=_roi_codes(conn, rois),
        by_roi=by_roi, confidence=confidence, min_weight=min_weight, progress=progress, output=output,
        method=method,
    )


def _pair_counts(
    conn: Connectome,
    pre_idx: np.ndarray | None,
    post_idx: np.ndarray | None,
    *,
    rois: Iterable[str] | np.ndarray | None = None,
    method: str = "auto",
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`pair_counts` of neurons already resolved to dense indices (``None`` = all)."""
    return _pairs.pair_counts(conn, pre_idx, post_idx, roi_codes=_roi_codes(conn, rois), method=method, **kwargs)



def group_counts(
    conn: Connectome,
    pre_codes: np.ndarray,
    post_codes: np.ndarray,
    n_pre: int,
    n_post: int,
    *,
    pre: Any = None,
    post: Any = None,
    rois: Iterable[str] | np.ndarray | None = None,
    confidence: float | None = None,
    min_weight: int = 1,
    progress: bool | None = None,
    method: str = "auto",
) -> np.ndarray:
    """Synapse counts summed over groups of neurons, as a dense ``(n_pre, n_post)`` array.

    Parameters
    ----------
    conn
        The connectome.
    pre_codes, post_codes
        int per neuron (length ``conn.n_neurons``): the group of each neuron
        on that side, ``-1`` to leave the neuron out.
    n_pre, n_post
        Number of groups on each side.
    pre, post
        Neurons counted on each side, as in :func:`pair_counts` (body IDs in
        any container, a boolean mask, criteria; ``None`` = all).
    rois, confidence
        Row filters, as in :func:`pair_counts`.
    min_weight
        Neuron pairs with fewer synapses (all of the pair's synapses that pass
        the filters, whatever the partitioning) are left out before grouping.
    progress
        Show a progress bar.
    method
        ``"auto"``, ``"index"``, ``"table"``, ``"roi_table"`` or ``"scan"``, as in :func:`pair_counts`.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(n_pre, n_post)``.

    Raises
    ------
    DenseMatrixTooLarge
        The result would exceed ``connectome_dask.max_dense_bytes``.
    ValueError
        The code arrays do not have one entry per neuron, or a forced
        ``method`` cannot answer the request.
    KeyError
        An unknown body ID or ROI.

    Each partition accumulates only the block of group rows its presynaptic
    neurons touch, so neurons ordered by group make the partial blocks small.

    Examples
    --------
    Left / right hemisphere block matrix:

    >>> side = conn.neurons.side.map({"left": 0, "right": 1}).fillna(-1).to_numpy("int32")
    >>> M = group_counts(conn, side, side, 2, 2)
    >>> M.shape, M.dtype, int(M.sum()) == conn.n_synapses
    ((2, 2), dtype('int64'), True)
    """
    return _group_counts(
        conn, pre_codes, post_codes, n_pre, n_post, resolve_neurons(conn, pre), resolve_neurons(conn, post),
        rois=rois, confidence=confidence, min_weight=min_weight, progress=progress, method=method,
    )


def _group_counts(
    conn: Connectome,
    pre_codes: np.ndarray,
    post_codes: np.ndarray,
    n_pre: int,
    n_post: int,
    pre_idx: np.ndarray | None,
    post_idx: np.ndarray | None,
    *,
    rois: Iterable[str] | np.ndarray | None = None,
    method: str = "auto",
    **kwargs: Any,
) -> np.ndarray:
    """:func:`group_counts` of neurons already resolved to dense indices (``None`` = all)."""
    check_dense((n_pre, n_post), 8, "the grouped matrix")  # before resolving ROIs, as before
    return _groups.group_counts(conn, pre_codes, post_codes, n_pre, n_post, pre_idx, post_idx,
                                roi_codes=_roi_codes(conn, rois), method=method, **kwargs)



# ----------------------------------------------------------------------------- labelled result


def _object_labels(values: pd.Series) -> np.ndarray:
    """Labels as an object array with ``None`` for missing (JSON/Zarr friendly), vectorised."""
    return values.to_numpy(dtype=object, na_value=None)


@functools.lru_cache(maxsize=32)
def _natural_order(labels: tuple[str, ...]) -> tuple[int, ...]:
    """Positions of ``labels`` in :func:`~connectome_dask.labels.natural_key` order.

    Cached on the labels themselves (a pure function of them): the keys of
    8 k cell types cost ~15 ms, every grouped query of the same store asks again.
    """
    keys = [natural_key(u) for u in labels]
    return tuple(sorted(range(len(keys)), key=keys.__getitem__))


#: Arrow column id -> (weak reference to it, its read-only codes, its labels)
_ARROW_LABELS: dict[int, tuple[weakref.ref, np.ndarray, tuple[Any, ...]]] = {}
_ARROW_LABELS_LOCK = threading.Lock()


def _labels(values: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Factorize a neuron annotation column into codes over its ordered labels (missing -> -1).

    String labels follow the package's cell-type order
    (:func:`~connectome_dask.labels.natural_key`: ``ER2 < ER10 < ER``, the
    order of nested matrices and type heatmaps); an ordered categorical keeps
    its categories' order; any other labels (numbers, booleans, dates, mixed
    types) are sorted as values.

    An Arrow-backed column is immutable, and a store's neuron table is shared
    by every :class:`~connectome_dask.store.Connectome` of its generation
    (an edit makes a new column): its codes (read-only) and labels are kept
    while the column lives. Factorizing and ordering 8 k cell types over
    139 k neurons cost ~12 ms of every grouped query of the same store.
    """
    arr = values.array
    if not isinstance(arr, pd.arrays.ArrowExtensionArray):  # (Arrow-backed text is one)
        return _factorize_labels(values)
    col = arr.__arrow_array__()
    with _ARROW_LABELS_LOCK:
        hit = _ARROW_LABELS.get(id(col))
    if hit is not None and hit[0]() is col:
        return hit[1], list(hit[2])
    codes, labels = _factorize_labels(values)
    codes.setflags(write=False)
    key = id(col)
    with _ARROW_LABELS_LOCK:
        _ARROW_LABELS[key] = (weakref.ref(col), codes, tuple(labels))
    weakref.finalize(col, _forget_labels, key)
    return codes, labels


def _forget_labels(key: int) -> None:
    with _ARROW_LABELS_LOCK:
        _ARROW_LABELS.pop(key, None)


def _factorize_labels(values: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """:func:`_labels` computed (no cache)."""
    dtype = values.dtype
    if not (isinstance(dtype, pd.CategoricalDtype) and dtype.ordered):
        codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
        ul = uniques.tolist()  # one conversion (8 k types: indexing the Index label by label took 50 ms)
        if pd.api.types.infer_dtype(np.asarray(ul, dtype=object), skipna=True) == "string":
            order = _natural_order(tuple(str(u) for u in ul))
            rank = np.empty(len(order), dtype=np.int64)
            rank[list(order)] = np.arange(len(order))
            out = np.full(len(codes), -1, dtype=np.int64)
            ok = codes >= 0
            out[ok] = rank[codes[ok]]
            return out, [ul[i] for i in order]
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    return codes.astype(np.int64), list(uniques)



def adjacency(
    conn: Connectome,
    pre: Any = None,
    post: Any = None,
    *,
    by: str = "bodyId",
    rois: Iterable[str] | None = None,
    min_weight: int = 1,
    confidence: float | None = None,
    progress: bool | None = None,
    method: str = "auto",
    sign: str | None = None,
    signs: Mapping[str, int] | None = None,
    normalize: str | None = None,
) -> xr.DataArray:
    """Synapse-count matrix between neurons (or groups of neurons) as a labelled DataArray.

    Parameters
    ----------
    conn
        The connectome.
    pre, post
        Neurons on each axis: ``None`` (all), ``NeuronCriteria``, body IDs
        (an int or any collection of ints: list, tuple, set, numpy array,
        pandas Series / Index...; never positional indices), a boolean mask
        over ``conn.neurons``, or a DataFrame with ``bodyId``.
    by
        ``"bodyId"`` for a neuron x neuron matrix (``sparse.COO`` data), or any
        annotation column (e.g. ``"type"``) to sum over its values (dense
        numpy). Neurons whose value is missing are left out of grouped results.
        String labels are in the package's cell-type order
        (:func:`connectome_dask.labels.natural_type_order`: leading letters,
        case-insensitive, then the number, labels without a number last:
        ``ER2, ER10, ER``), the order of :class:`~connectome_dask.NestedMatrix`
        type blocks and :func:`~connectome_dask.plot_type_heatmap`; numeric
        labels in numeric order; an ordered categorical in its categories' order.
        ``by="nt"`` groups by each neuron's transmitter call
        (:func:`connectome_dask.compute.nt.nt_calls`: the argmax of the mean
        per-synapse probabilities when the store has them, else the neuron
        table's ``top_nt`` / ``nt_type`` / ``predicted_nt`` / ``consensus_nt``)
        unless the neuron table has its own ``nt`` column.
    rois
        Count only synapses whose postsynaptic site is in these ROIs.
    min_weight
        Neuron pairs with fewer synapses are dropped (before grouping): the
        count is over all of the pair's synapses that pass the ``rois`` and
        ``confidence`` filters, whatever the partitioning or path.
    confidence
        Keep synapses with confidence strictly above this.
    progress
        Show a progress bar.
    method
        ``"auto"``, ``"index"``, ``"table"``, ``"roi_table"`` or ``"scan"``, as in :func:`pair_counts`.
    sign
        ``None`` (synapse counts) or ``"nt"``: each connection's count times
        the sign of its presynaptic neuron's transmitter call (as for
        ``by="nt"``) under the sign table
        :data:`connectome_dask.compute.nt.NT_SIGNS` (acetylcholine +1, GABA
        -1, glutamate -1, every other or unknown transmitter +1). Grouped
        results sum the signed counts.
    signs
        Overrides of the sign table, e.g. ``{"histamine": -1}``.
    normalize
        ``None`` or ``"post"``: divide each column by the total input
        synapses of its postsynaptic neuron (grouped: of the group's neurons
        on the ``post`` axis), ``neurons.post``, whatever the filters:
        connectome-interpreter's input proportion ("inprop"). float64.

    Returns
    -------
    xarray.DataArray
        dims ``("pre", "post")``. Neuron level: index coords ``pre``/``post``
        are body IDs, with ``type_pre``, ``instance_pre`` (and ``_post``)
        alongside. Grouped: index coords are the group labels present on that
        axis, in the order described under ``by``, with ``n_neurons_pre`` /
        ``n_neurons_post``. ``attrs`` hold provenance.

    Raises
    ------
    KeyError
        An unknown body ID, ROI or ``by`` column.
    DenseMatrixTooLarge
        A grouped result would exceed ``connectome_dask.max_dense_bytes``.
    ValueError
        A forced ``method`` cannot answer the request, or an unknown
        ``sign`` / ``normalize`` value or sign override.

    Examples
    --------
    >>> A = conn.adjacency(by="type")  # dense, type x type
    >>> n_types = conn.neurons.type.nunique()  # neurons without a type are left out
    >>> A.dims, A.shape == (n_types, n_types)
    (('pre', 'post'), True)
    >>> int(A.sel(pre="KCg-m", post="KCg-m")) > 0
    True
    >>> W = adjacency(conn, [some_body], None)  # sparse.COO, neuron x neuron
    >>> W.shape == (1, conn.n_neurons), W.coords["type_pre"].values.tolist() == [some_type]
    (True, True)
    >>> F = adjacency(conn, by="type", normalize="post")  # input fractions of each type's inputs
    >>> bool(float(F.max()) <= 1.0)
    True
    """
    import sparse
    import xarray as xr

    if sign not in (None, "nt"):
        raise ValueError(f"sign must be None or 'nt', got {sign!r}")
    if normalize not in (None, "post"):
        raise ValueError(f"normalize must be None or 'post', got {normalize!r}")
    pre_sign = None
    calls = None
    if sign == "nt" or (by == "nt" and "nt" not in conn.neurons.columns):
        calls = _nt.nt_calls(conn, progress=progress)
    if sign == "nt":
        assert calls is not None
        pre_sign = _nt.nt_sign(calls, signs)
    elif signs is not None:
        raise ValueError("signs= applies with sign='nt'")

    pre_idx = resolve_neurons(conn, pre)
    post_idx = resolve_neurons(conn, post)
    if rois is not None and not isinstance(rois, str | np.ndarray):
        rois = list(rois)  # any iterable of names, read once (attrs and the counts both use it)
    neurons = conn.neurons
    attrs = {
        "dataset": conn.meta.get("name"),
        "version": conn.meta.get("version"),
        "store": str(conn.path),
        "by": by,
        "rois": json.dumps(list(rois) if rois is not None and not isinstance(rois, str) else rois),
        "min_weight": int(min_weight),
        "confidence": "none" if confidence is None else float(confidence),
        "weight": ("signed " if sign else "") + ("input fraction" if normalize else "synapse count"),
    }
    if sign:
        attrs["signs"] = json.dumps({**_nt.NT_SIGNS, **{_nt.canonical_nt(k): int(v) for k, v in (signs or {}).items()},
                                     "other": 1})
    post_total = conn.neurons["post"].to_numpy(np.float64) if normalize else None
    all_pre = np.arange(conn.n_neurons) if pre_idx is None else pre_idx
    all_post = np.arange(conn.n_neurons) if post_idx is None else post_idx
    if by == "bodyId":
        df = _pair_counts(
            conn, pre_idx, post_idx, rois=rois, confidence=confidence, min_weight=min_weight, progress=progress,
            method=method,
        )
        pos_pre = np.full(conn.n_neurons, -1, dtype=np.int64)
        pos_pre[all_pre] = np.arange(len(all_pre))
        pos_post = np.full(conn.n_neurons, -1, dtype=np.int64)
        pos_post[all_post] = np.arange(len(all_post))
        nz = np.stack([pos_pre[df["pre"].to_numpy()], pos_post[df["post"].to_numpy()]])
        values: np.ndarray = df["weight"].to_numpy()
        if pre_sign is not None:
            values = values * pre_sign[df["pre"].to_numpy()]
        if post_total is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                values = values / post_total[df["post"].to_numpy()]
        data = sparse.COO(
            nz, values, shape=(len(all_pre), len(all_post)),
            has_duplicates=False, sorted=True, fill_value=0,
        )
        c: dict[str, Any] = {}
        for side, idx in (("pre", all_pre), ("post", all_post)):
            sub = neurons.iloc[idx]
            c[side] = (side, sub["bodyId"].to_numpy())
            for col in ("type", "instance"):
                if col in sub.columns:
                    c[f"{col}_{side}"] = (side, _object_labels(sub[col]))
        # label coordinates are attached after construction: passing object
        # arrays to the constructor deep-copies every label (0.5 s for 2 x 139 k)
        index = {k: v for k, v in c.items() if k in ("pre", "post")}
        label_coords = {k: v for k, v in c.items() if k not in index}
        da = xr.DataArray(data, dims=("pre", "post"), coords=index, name="weight", attrs=attrs)
        return da.assign_coords(label_coords)
    if by == "nt" and calls is not None and "nt" not in neurons.columns:
        group_values = pd.Series(calls, dtype=object)
    elif by not in neurons.columns:
        raise KeyError(f"unknown neuron column {by!r}; available: {list(neurons.columns)}")
    else:
        group_values = neurons[by]
    codes, labels = _labels(group_values)
    pc, qc, pre_groups, post_groups = _group_axes(codes, len(labels), all_pre, all_post)
    if pre_sign is None:
        mat = _group_counts(
            conn, pc, qc, len(pre_groups), len(post_groups), pre_idx, post_idx,
            rois=rois, confidence=confidence, min_weight=min_weight, progress=progress, method=method,
        )
    else:  # inhibitory neurons' rows go to a second band of groups: one pass, then plus minus minus
        n_g = len(pre_groups)
        pcs = np.where((pc >= 0) & (pre_sign < 0), pc + n_g, pc)
        both = _group_counts(
            conn, pcs, qc, 2 * n_g, len(post_groups), pre_idx, post_idx,
            rois=rois, confidence=confidence, min_weight=min_weight, progress=progress, method=method,
        )
        mat = both[:n_g] - both[n_g:]
    if post_total is not None:
        den = np.bincount(qc[qc >= 0], weights=post_total[qc >= 0], minlength=len(post_groups))
        with np.errstate(invalid="ignore", divide="ignore"):
            mat = np.where(den > 0, mat / np.where(den > 0, den, 1), 0.0)
    return _grouped_array(mat, labels, pre_groups, post_groups, pc, qc, attrs)


def _group_axes(codes: np.ndarray, n_labels: int, all_pre: np.ndarray, all_post: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-neuron group codes on each axis, renumbered over the groups present there.

    ``codes``: each neuron's label code (``-1`` = no label); ``all_pre`` /
    ``all_post``: the neurons on each axis. Returns the renumbered codes
    (``-1`` = left out) and the label codes of the groups kept on each axis.
    """
    n = len(codes)
    pre_code = np.full(n, -1, dtype=np.int64)
    pre_code[all_pre] = codes[all_pre]
    post_code = np.full(n, -1, dtype=np.int64)
    post_code[all_post] = codes[all_post]
    # only groups present on each axis (a bincount of the codes: np.unique sorts 2 x 139 k codes, 10 ms)
    pre_groups = np.flatnonzero(np.bincount(pre_code[pre_code >= 0], minlength=n_labels))
    post_groups = np.flatnonzero(np.bincount(post_code[post_code >= 0], minlength=n_labels))
    remap_pre = np.full(n_labels + 1, -1, dtype=np.int64)
    remap_pre[pre_groups] = np.arange(len(pre_groups))
    remap_post = np.full(n_labels + 1, -1, dtype=np.int64)
    remap_post[post_groups] = np.arange(len(post_groups))
    pc = np.where(pre_code >= 0, remap_pre[pre_code], -1)
    qc = np.where(post_code >= 0, remap_post[post_code], -1)
    return pc, qc, pre_groups, post_groups


def _grouped_array(mat: np.ndarray, labels: list[Any], pre_groups: np.ndarray, post_groups: np.ndarray,
                   pc: np.ndarray, qc: np.ndarray, attrs: dict[str, Any]) -> xr.DataArray:
    """The labelled grouped matrix: group labels as index coords, ``n_neurons_pre`` / ``_post`` alongside."""
    import xarray as xr

    lab = np.array(labels, dtype=object)
    n_pre_g = np.bincount(pc[pc >= 0], minlength=len(pre_groups))
    n_post_g = np.bincount(qc[qc >= 0], minlength=len(post_groups))
    coords = {
        "pre": ("pre", lab[pre_groups]),
        "post": ("post", lab[post_groups]),
        "n_neurons_pre": ("pre", n_pre_g),
        "n_neurons_post": ("post", n_post_g),
    }
    return xr.DataArray(mat, dims=("pre", "post"), coords=coords, name="weight", attrs=attrs)

