"""Map-reduce aggregations over the synapse table: pair counts, grouped blocks, per-ROI counts.

Three layers, as in flox: numba kernels on integer arrays
(:mod:`connectome_dask._agg_kernels`), dask graph construction here (one task
per partition plus a tree reduction), and labelled results
(:func:`adjacency` returns an ``xarray.DataArray``).

Rows are stored sorted by ``(pre, post)``, so every partition owns a
contiguous run of presynaptic neurons: the per-partition results are already
sorted and only the pair that straddles a partition seam needs merging. This
is why pair counting here moves little data between tasks, unlike a hash
groupby on randomly ordered rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import pandas as pd

from .kernels import pairs as K
from ._compute import compute, tree_reduce
from .errors import DenseMatrixTooLarge

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

#: fraction of the table below which a query on few bodies reads rows through
#: the store's index instead of scanning every partition
INDEX_PATH_FRACTION = 0.05


# ----------------------------------------------------------------------------- inputs




def max_dense_bytes() -> int:
    """Largest dense in-memory object the package will build (bytes).

    ``dask.config["connectome_dask.max_dense_bytes"]``; ``None`` means half of
    the machine's physical memory.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"connectome_dask.max_dense_bytes": 1000}):
    ...     max_dense_bytes()
    1000
    """
    v = dask.config.get("connectome_dask.max_dense_bytes", None)
    if v is not None:
        return int(v)
    try:
        import psutil

        total = int(psutil.virtual_memory().total)
    except ImportError:
        total = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return total // 2


def check_dense(shape: tuple[int, ...], itemsize: int, what: str, hint: str | None = None) -> None:
    """Raise :class:`DenseMatrixTooLarge` before allocating a dense array above the limit.

    Examples
    --------
    >>> check_dense((1000, 1000), 8, "a small matrix")  # 8 MB: fine
    >>> check_dense((10**7, 10**7), 8, "a neuron x neuron matrix")
    Traceback (most recent call last):
    ...
    connectome_dask.errors.DenseMatrixTooLarge: a neuron x neuron matrix would need a dense ...
    """
    need = int(np.prod(shape, dtype=np.float64)) * itemsize
    limit = max_dense_bytes()
    if need > limit:
        dims = " x ".join(f"{int(d):,}" for d in shape)
        raise DenseMatrixTooLarge(
            f"{what} would need a dense {dims} array of {_nbytes(need)}, more than the "
            f"limit of {_nbytes(limit)} (dask config 'connectome_dask.max_dense_bytes'). "
            + (hint or "Use the sparse neuron-level result (Connectome.adjacency(...) / .to_xarray()) "
               "or restrict the neurons.")
        )


def _nbytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} bytes"


_check_dense = check_dense  # short private alias used across modules


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
    from .criteria import _materialize, body_ids_of, copy_as_neuroncriteria

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
        return np.unique(conn.body_to_index(ids)).astype(np.int32)
    crit = copy_as_neuroncriteria(spec)
    mask = crit.mask(conn)
    return np.flatnonzero(np.asarray(mask)).astype(np.int32)


def resolve_rois(conn: Connectome, rois: str | Iterable[str] | None) -> np.ndarray | None:
    """ROI names (primary or super-level from the hierarchy) to sorted ROI codes.

    Raises ``KeyError`` naming the unknown ROIs and listing the valid ones.

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
    from .criteria import RoiModel

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


def _confidence_columns(conn: Connectome) -> list[str]:
    cols = conn.synapse_columns
    if "confidence" in cols:
        return ["confidence"]
    return [c for c in ("confidence_pre", "confidence_post") if c in cols]


class _Filter:
    """Row filter parameters shared by all tasks (one object in the graph)."""

    def __init__(self, conn: Connectome, pre, post, roi_codes, confidence):
        n = conn.n_neurons
        self.pre_ok = np.ones(n, dtype=bool)
        self.post_ok = np.ones(n, dtype=bool)
        if pre is not None:
            self.pre_ok[:] = False
            self.pre_ok[pre] = True
        if post is not None:
            self.post_ok[:] = False
            self.post_ok[post] = True
        n_codes = len(conn.roi_names) + 1
        self.n_codes = n_codes
        self.use_roi = roi_codes is not None
        self.roi_ok = np.ones(n_codes, dtype=bool)
        if roi_codes is not None:
            self.roi_ok[:] = False
            self.roi_ok[np.asarray(roi_codes, dtype=np.int64) + 1] = True
        self.conf_cols = _confidence_columns(conn) if confidence is not None else []
        if confidence is not None and not self.conf_cols:
            raise KeyError(f"{conn.path}: no confidence column to threshold")
        # compared as float32, the stored precision (as SynapseCriteria and the queries do):
        # a stored float32(0.3) is not > 0.3
        self.thr = float(np.float32(confidence)) if confidence is not None else 0.0

    def columns(self, need_roi: bool) -> list[str]:
        cols = ["pre", "post"]
        if self.use_roi or need_roi:
            cols.append("roi_post")
        return cols + self.conf_cols

    def keep(self, block: dict[str, np.ndarray]) -> np.ndarray:
        pre, post = block["pre"], block["post"]
        dummy_i = np.zeros(1, dtype=np.int16)
        dummy_f = np.zeros(1, dtype=np.float32)
        roi = block.get("roi_post", dummy_i)
        c1 = block[self.conf_cols[0]] if self.conf_cols else dummy_f
        c2 = block[self.conf_cols[1]] if len(self.conf_cols) > 1 else dummy_f
        return K.row_mask(
            pre, post, self.pre_ok, self.post_ok, roi, self.roi_ok, c1, c2, self.thr,
            self.use_roi, bool(self.conf_cols), len(self.conf_cols) > 1,
        )


# ----------------------------------------------------------------------------- pair counts


def _pairs_chunk(block: dict[str, np.ndarray], start: int, filt: _Filter, by_roi: bool):
    keep = filt.keep(block)
    if by_roi:
        return K.pair_roi_runs(block["pre"], block["post"], block["roi_post"], keep, filt.n_codes)
    return K.pair_runs(block["pre"], block["post"], keep)


def _empty_pairs(by_roi: bool) -> tuple:
    base = (np.zeros(0, np.int32), np.zeros(0, np.int32))
    return base + ((np.zeros(0, np.int16),) if by_roi else ()) + (np.zeros(0, np.int64),)


def _combine_pairs(parts: list[tuple]) -> tuple:
    """Concatenate ordered partial results, merging the pair that straddles each seam."""
    by_roi = bool(parts) and len(parts[0]) == 4
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return _empty_pairs(by_roi)
    pieces: list[tuple] = [parts[0]]
    for b in parts[1:]:
        a = pieces[-1]
        p, q = a[0][-1], a[1][-1]
        if b[0][0] == p and b[1][0] == q:
            ia0 = int(np.searchsorted(a[0], p, "left"))
            ia = ia0 + int(np.searchsorted(a[1][ia0:], q, "left"))
            ib0 = int(np.searchsorted(b[0], p, "right"))
            ib = int(np.searchsorted(b[1][:ib0], q, "right"))
            if by_roi:
                rois = np.concatenate([a[2][ia:], b[2][:ib]])
                cnts = np.concatenate([a[3][ia:], b[3][:ib]])
                ur, inv = np.unique(rois, return_inverse=True)
                uc = np.bincount(inv, weights=cnts).astype(np.int64)
                k = len(ur)
                mid = (np.full(k, p, np.int32), np.full(k, q, np.int32), ur.astype(np.int16), uc)
            else:
                tot = int(a[2][ia:].sum() + b[2][:ib].sum())
                mid = (np.array([p], np.int32), np.array([q], np.int32), np.array([tot], np.int64))
            pieces[-1] = tuple(x[:ia] for x in a)
            pieces.append(mid)
            pieces.append(tuple(x[ib:] for x in b))
        else:
            pieces.append(b)
    return tuple(np.concatenate([pc[i] for pc in pieces]) for i in range(len(parts[0])))


def _index_block(conn: Connectome, pre, post, cols) -> dict[str, np.ndarray] | None:
    """The selection's rows read through the index when it is small (else None).

    Outputs of the pre bodies are contiguous row ranges, inputs of the post
    bodies contiguous ranges of the post-ordered copies: no scan either way.
    """
    counts_pre = conn.neurons["pre"].to_numpy()
    counts_post = conn.neurons["post"].to_numpy()
    n = max(conn.n_synapses, 1)
    best = None
    if pre is not None:
        best = ("pre", int(counts_pre[pre].sum()), pre)
    if post is not None:
        est = int(counts_post[post].sum())
        if best is None or est < best[1]:
            best = ("post", est, post)
    if best is None or best[1] > INDEX_PATH_FRACTION * n:
        return None
    return conn.synapses_of(best[2], best[0], cols)


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

    Returns
    -------
    pandas.DataFrame
        Columns ``pre``, ``post`` (int32 dense indices), ``roi`` (int16, only
        with ``by_roi``) and ``weight`` (int64), sorted by (pre, post, roi).
        A dask DataFrame when ``output`` is given.

    Examples
    --------
    >>> df = pair_counts(conn, min_weight=5)
    >>> df.columns.tolist(), bool((df.weight >= 5).all())
    (['pre', 'post', 'weight'], True)
    >>> by_roi = pair_counts(conn, pre=[some_body], by_roi=True)
    >>> by_roi.columns.tolist(), int(by_roi.weight.sum()) == int(conn.neurons.pre.iloc[0])
    (['pre', 'post', 'roi', 'weight'], True)
    """
    return _pair_counts(
        conn, resolve_neurons(conn, pre), resolve_neurons(conn, post), rois=rois, by_roi=by_roi,
        confidence=confidence, min_weight=min_weight, progress=progress, output=output,
    )


def _pair_counts(
    conn: Connectome,
    pre_idx: np.ndarray | None,
    post_idx: np.ndarray | None,
    *,
    rois: Iterable[str] | np.ndarray | None = None,
    by_roi: bool = False,
    confidence: float | None = None,
    min_weight: int = 1,
    progress: bool | None = None,
    output: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """:func:`pair_counts` of neurons already resolved to dense indices (``None`` = all)."""
    roi_codes = _roi_codes(conn, rois)
    if by_roi and "roi_post" not in conn.synapse_columns:
        raise KeyError(f"{conn.path} has no roi_post column; run Connectome.assign_rois first")
    filt = _Filter(conn, pre_idx, post_idx, roi_codes, confidence)
    cols = filt.columns(by_roi)
    names = ["pre", "post"] + (["roi"] if by_roi else []) + ["weight"]
    if output is not None:
        return _pair_counts_to_parquet(conn, filt, cols, by_roi, names, min_weight, Path(output), progress)
    block = _index_block(conn, pre_idx, post_idx, cols)
    if block is None and _use_pair_table(conn, filt, by_roi):
        return _pairs_from_table(conn, filt, min_weight, progress)
    if block is not None:
        res = _pairs_chunk(block, 0, filt, by_roi)
    else:
        from dask.delayed import delayed

        dfilt = delayed(filt, pure=True)
        parts = conn.map_partitions(_pairs_chunk, cols, dfilt, by_roi, name="pair-counts", align_pre=True)
        total = tree_reduce(parts, _combine_pairs, name="pair-counts-combine")
        (res,) = compute(total, progress=progress)
    df = pd.DataFrame(dict(zip(names, res, strict=True)))
    if min_weight > 1:
        df = df[df["weight"].to_numpy() >= min_weight].reset_index(drop=True)
    return df


def _default_partition_rows(conn: Connectome) -> int:
    """Rows per partition of the store's default partitioning (at least 1)."""
    s, e = conn.partitions()[0]
    return max(e - s, 1)


def _use_pair_table(conn: Connectome, filt: _Filter, by_roi: bool) -> bool:
    """Unfiltered counts (no ROI, no confidence) come straight from the connection table.

    ``dask.config["connectome_dask.use_pair_table"] = False`` forces the scan of
    the synapse arrays (same results; used to test and time the scan path).
    """
    return (
        bool(dask.config.get("connectome_dask.use_pair_table", True))
        and conn.has_pair_table and not by_roi and not filt.use_roi and not filt.conf_cols
    )


def _pair_table_ranges(conn: Connectome) -> list[tuple[int, int]]:
    n = int(conn.meta["index"]["n_pairs"])
    per = _default_partition_rows(conn)
    return [(s, min(s + per, n)) for s in range(0, n, per)] or [(0, 0)]


def _pairs_table_part(paths: dict[str, str], token: str, start: int, stop: int, pre_ok, post_ok,
                      min_weight: int):
    from .store import read_rows

    # the arrays of the generation the client opened (never a newer or replaced store)
    t = {c: read_rows(p, token, start, stop) for c, p in paths.items()}
    keep = pre_ok[t["pre"]] & post_ok[t["post"]]
    if min_weight > 1:
        keep &= t["weight"] >= min_weight
    return tuple(t[c][keep] for c in ("pre", "post", "weight"))


def _pairs_from_table(conn: Connectome, filt: _Filter, min_weight: int, progress) -> pd.DataFrame:
    from dask.delayed import delayed

    pre_ok = delayed(filt.pre_ok, pure=True)  # one copy of each mask in the graph
    post_ok = delayed(filt.post_ok, pure=True)
    task = delayed(_pairs_table_part, pure=True)
    paths = conn.pair_table_paths()
    parts = [task(paths, conn.token, s, e, pre_ok, post_ok, min_weight) for s, e in _pair_table_ranges(conn)]
    res = compute(*parts, progress=progress)
    return pd.DataFrame({c: np.concatenate([r[i] for r in res]) for i, c in enumerate(("pre", "post", "weight"))})


def _pairs_part_to_parquet(block, start, filt, by_roi, names, min_weight, folder: str) -> int:
    res = _pairs_chunk(block, start, filt, by_roi)
    df = pd.DataFrame(dict(zip(names, res, strict=True)))
    if min_weight > 1:
        df = df[df["weight"].to_numpy() >= min_weight]
    df.to_parquet(Path(folder) / f"part-{start:013d}.parquet", index=False)
    return len(df)


def _pair_counts_to_parquet(conn, filt, cols, by_roi, names, min_weight, output: Path, progress):
    import dask.dataframe as dd
    from dask.delayed import delayed

    from ._fsutil import atomic_dir
    from .store import StoreError

    def is_output(p: Path) -> bool:
        return (p / "_pair_counts").is_file()

    # replaces only an earlier pair-count output; written beside it and renamed into place
    with atomic_dir(output, "pair-counts", overwrite=True, error=StoreError, recognise=is_output) as tmp:
        parts = conn.map_partitions(
            _pairs_part_to_parquet, cols, delayed(filt, pure=True), by_roi, names, min_weight, str(tmp),
            name="pair-counts-parquet", align_pre=True,
        )
        compute(*parts, progress=progress)
        (tmp / "_pair_counts").write_text(json.dumps({"store": str(conn.path), "columns": names}))
    return dd.read_parquet(str(output))


def _roi_codes(conn: Connectome, rois: Any) -> np.ndarray | None:
    """ROI codes of a ``rois`` argument: an int array is codes, anything else names."""
    if isinstance(rois, np.ndarray) and rois.dtype.kind in "iu":
        return rois
    return resolve_rois(conn, rois)


# ----------------------------------------------------------------------------- grouped counts


def _group_chunk(block, start, filt: _Filter, pre_code, post_code, n_post: int, min_weight: int):
    keep = filt.keep(block)
    upre, upost, cnt = K.pair_runs(block["pre"], block["post"], keep)
    if min_weight > 1:  # the block holds whole pairs (partitions aligned to pre, or the index block)
        sel = cnt >= min_weight
        upre, upost, cnt = upre[sel], upost[sel], cnt[sel]
    lo, hi = K.code_range(upre, np.ones(len(upre), dtype=bool), pre_code)
    # int32 is exact here: a partition holds fewer than 2**31 rows
    out = np.zeros((max(hi - lo + 1, 0), n_post), dtype=np.int32)
    if hi >= lo:
        K.block_add_pairs(out, lo, pre_code, post_code, upre, upost, cnt)
    return lo, out


def _combine_groups(parts: list[tuple[int, np.ndarray | None]]):
    parts = [p for p in parts if p[1] is not None and p[1].shape[0]]
    if not parts:
        return 0, None
    lo = min(p[0] for p in parts)
    hi = max(p[0] + p[1].shape[0] for p in parts)
    out = np.zeros((hi - lo, parts[0][1].shape[1]), dtype=np.int64)
    for s, a in parts:
        out[s - lo : s - lo + a.shape[0]] += a
    return lo, out


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
) -> np.ndarray:
    """Synapse counts summed over groups of neurons, as a dense ``(n_pre, n_post)`` array.

    Parameters
    ----------
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
        rois=rois, confidence=confidence, min_weight=min_weight, progress=progress,
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
    confidence: float | None = None,
    min_weight: int = 1,
    progress: bool | None = None,
) -> np.ndarray:
    """:func:`group_counts` of neurons already resolved to dense indices (``None`` = all)."""
    _check_dense((n_pre, n_post), 8, "the grouped matrix")
    pre_code = np.asarray(pre_codes, dtype=np.int64)
    post_code = np.asarray(post_codes, dtype=np.int64)
    if len(pre_code) != conn.n_neurons or len(post_code) != conn.n_neurons:
        raise ValueError(f"pre_codes/post_codes must have one entry per neuron ({conn.n_neurons})")
    roi_codes = _roi_codes(conn, rois)
    filt = _Filter(conn, pre_idx, post_idx, roi_codes, confidence)
    cols = filt.columns(False)
    block = _index_block(conn, pre_idx, post_idx, cols)
    if block is None and _use_pair_table(conn, filt, False):
        return _group_from_table(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress)
    if block is not None:
        lo, part = _group_chunk(block, 0, filt, pre_code, post_code, n_post, min_weight)
    else:
        from dask.delayed import delayed

        args = delayed((filt, pre_code, post_code), pure=True)
        # min_weight judges whole neuron pairs: partitions then start at
        # presynaptic-neuron boundaries, so no pair's rows are split between
        # two tasks (each would test only its part against the threshold)
        parts = conn.map_partitions(
            _group_chunk_packed, cols, args, n_post, min_weight, name="group-counts",
            partition_rows=_group_partition_rows(conn, n_pre, n_post), align_pre=min_weight > 1,
        )
        (res,) = compute(tree_reduce(parts, _combine_groups, name="group-counts-combine"), progress=progress)
        lo, part = res
    out = np.zeros((n_pre, n_post), dtype=np.int64)
    if part is not None and part.shape[0]:
        out[lo : lo + part.shape[0]] = part
    return out


def _group_from_pairs(paths: dict[str, str], token: str, n_pairs: int, pre_ok, post_ok, codes,
                      n_pre: int, n_post: int, min_weight: int) -> np.ndarray:
    pre_code, post_code = codes
    up, uq, w = _pairs_table_part(paths, token, 0, n_pairs, pre_ok, post_ok, min_weight)
    out = np.zeros((n_pre, n_post), dtype=np.int64)
    K.block_add_pairs(out, 0, pre_code, post_code, up, uq, w)
    return out


def _group_from_table(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress):
    """Grouped counts from the connection table in one task.

    The table holds one row per connected pair (~6x fewer than synapses), so
    a single pass adds it into the dense result. Measured on 10 M synapses /
    7.8 k types: one task 0.18 s; splitting the output rows into 2 or 4
    bands on 2 cores took 0.25 / 0.34 s (the stacking copy of a 0.5 GB
    result costs more than the parallel scan saves).
    """
    from dask.delayed import delayed

    task = delayed(_group_from_pairs, pure=True)(
        conn.pair_table_paths(), conn.token, int(conn.meta["index"]["n_pairs"]), filt.pre_ok, filt.post_ok,
        (pre_code, post_code), n_pre, n_post, min_weight,
    )
    (out,) = compute(task, progress=progress)
    return out


def _group_partition_rows(conn: Connectome, n_pre: int, n_post: int) -> int:
    """Partition length for grouped counts.

    Each task returns a dense int32 block of up to ``n_pre x n_post``; with
    many groups (8 k types: 256 MB) zeroing and summing blocks dominates, so
    partitions grow until a block costs at most about two bytes per row
    (capped at 32 Mi rows, i.e. ~256 MB of pre/post columns per task).
    """
    base = _default_partition_rows(conn)
    want = (n_pre * n_post * 4) // 2
    return int(min(max(base, want), 1 << 25))


def _group_chunk_packed(block, start, packed, n_post, min_weight):
    filt, pre_code, post_code = packed
    return _group_chunk(block, start, filt, pre_code, post_code, n_post, min_weight)


# ----------------------------------------------------------------------------- labelled result


def _object_labels(values: pd.Series) -> np.ndarray:
    """Labels as an object array with ``None`` for missing (JSON/Zarr friendly), vectorised."""
    return values.to_numpy(dtype=object, na_value=None)


def _labels(values: pd.Series) -> tuple[np.ndarray, list]:
    """Factorize a neuron annotation column into codes over sorted labels (missing -> -1)."""
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
    rois
        Count only synapses whose postsynaptic site is in these ROIs.
    min_weight
        Neuron pairs with fewer synapses are dropped (before grouping): the
        count is over all of the pair's synapses that pass the ``rois`` and
        ``confidence`` filters, whatever the partitioning or path.
    confidence
        Keep synapses with confidence strictly above this.

    Returns
    -------
    xarray.DataArray
        dims ``("pre", "post")``. Neuron level: index coords ``pre``/``post``
        are body IDs, with ``type_pre``, ``instance_pre`` (and ``_post``)
        alongside. Grouped: index coords are the group labels (sorted), with
        ``n_neurons_pre`` / ``n_neurons_post``. ``attrs`` hold provenance.

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
    """
    import sparse
    import xarray as xr

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
        "weight": "synapse count",
    }
    all_pre = np.arange(conn.n_neurons) if pre_idx is None else pre_idx
    all_post = np.arange(conn.n_neurons) if post_idx is None else post_idx
    if by == "bodyId":
        df = _pair_counts(
            conn, pre_idx, post_idx, rois=rois, confidence=confidence, min_weight=min_weight, progress=progress,
        )
        pos_pre = np.full(conn.n_neurons, -1, dtype=np.int64)
        pos_pre[all_pre] = np.arange(len(all_pre))
        pos_post = np.full(conn.n_neurons, -1, dtype=np.int64)
        pos_post[all_post] = np.arange(len(all_post))
        coords = np.stack([pos_pre[df["pre"].to_numpy()], pos_post[df["post"].to_numpy()]])
        data = sparse.COO(
            coords, df["weight"].to_numpy(), shape=(len(all_pre), len(all_post)),
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
        labels = {k: v for k, v in c.items() if k not in index}
        da = xr.DataArray(data, dims=("pre", "post"), coords=index, name="weight", attrs=attrs)
        return da.assign_coords(labels)
    if by not in neurons.columns:
        raise KeyError(f"unknown neuron column {by!r}; available: {list(neurons.columns)}")
    codes, labels = _labels(neurons[by])
    pre_code = np.full(conn.n_neurons, -1, dtype=np.int64)
    pre_code[all_pre] = codes[all_pre]
    post_code = np.full(conn.n_neurons, -1, dtype=np.int64)
    post_code[all_post] = codes[all_post]
    # only groups present on each axis
    pre_groups = np.unique(pre_code[pre_code >= 0])
    post_groups = np.unique(post_code[post_code >= 0])
    remap_pre = np.full(len(labels) + 1, -1, dtype=np.int64)
    remap_pre[pre_groups] = np.arange(len(pre_groups))
    remap_post = np.full(len(labels) + 1, -1, dtype=np.int64)
    remap_post[post_groups] = np.arange(len(post_groups))
    pc = np.where(pre_code >= 0, remap_pre[pre_code], -1)
    qc = np.where(post_code >= 0, remap_post[post_code], -1)
    mat = _group_counts(
        conn, pc, qc, len(pre_groups), len(post_groups), pre_idx, post_idx,
        rois=rois, confidence=confidence, min_weight=min_weight, progress=progress,
    )
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


# ----------------------------------------------------------------------------- per-neuron ROI counts


def _roi_counts_chunk(block, start, n: int, C: int, has_roi_pre: bool):
    pre = block["pre"].astype(np.int64)
    post = block["post"].astype(np.int64)
    rpost = block["roi_post"].astype(np.int64) + 1
    down = np.bincount(pre * C + rpost, minlength=n * C)
    up = np.bincount(post * C + rpost, minlength=n * C)
    if has_roi_pre:
        pre_s = np.bincount(pre * C + block["roi_pre"].astype(np.int64) + 1, minlength=n * C)
    else:
        pre_s = down
    return np.stack([pre_s, up, down])


def _sum_arrays(parts):
    out = parts[0].copy()
    for p in parts[1:]:
        out += p
    return out


def neuron_roi_counts(conn: Connectome, *, progress: bool | None = None, cache: bool = True) -> pd.DataFrame:
    """Per-neuron, per-ROI synapse counts (neuPrint's ``roiInfo``), long format.

    Returns
    -------
    pandas.DataFrame
        Columns ``index`` (int32 dense neuron index), ``roi`` (int16 ROI code,
        -1 = in no ROI), ``pre`` (rows with this neuron presynaptic whose
        presynaptic site is in the ROI), ``post`` and ``upstream`` (rows with
        this neuron postsynaptic whose postsynaptic site is in the ROI),
        ``downstream`` (rows with this neuron presynaptic whose postsynaptic
        site is in the ROI). One row is one synaptic connection; only
        non-zero rows are kept. When the store has only ``roi_post``,
        ``pre`` equals ``downstream``.

    The result is cached as Parquet in the store's ROI folder (keyed by the
    store generation) and reused.

    Examples
    --------
    >>> counts = neuron_roi_counts(conn)
    >>> counts.columns.tolist()
    ['index', 'roi', 'pre', 'post', 'downstream', 'upstream']
    >>> int(counts.downstream.sum()) == conn.n_synapses  # every row counted once per side
    True
    """
    if "roi_post" not in conn.synapse_columns or conn.rois_path is None:
        raise KeyError(f"{conn.path} has no ROI assignment; run Connectome.assign_rois first")
    from ._fsutil import no_symlinks
    from .store import StoreError

    # a derived cache inside the ROI folder: resolved by the store's path rule (inside,
    # never through a symlink); its Parquet page checksums are verified, and a damaged
    # cache is recomputed
    cache_file = no_symlinks(conn.path, f"{conn.meta['rois']}/neuron_roi_counts.g{conn.generation}.parquet",
                             error=StoreError)
    if cache and cache_file.is_file():
        try:
            return pd.read_parquet(cache_file, page_checksum_verification=True)
        except (OSError, ValueError):
            pass
    n = conn.n_neurons
    C = len(conn.roi_names) + 1
    _check_dense((3, n * C), 8, "per-neuron ROI counts")
    has_roi_pre = "roi_pre" in conn.synapse_columns
    cols = ["pre", "post", "roi_post"] + (["roi_pre"] if has_roi_pre else [])
    parts = conn.map_partitions(_roi_counts_chunk, cols, n, C, has_roi_pre, name="roi-counts")
    (tot,) = compute(tree_reduce(parts, _sum_arrays, name="roi-counts-combine"), progress=progress)
    nz = np.flatnonzero(tot.any(axis=0))
    df = pd.DataFrame(
        {
            "index": (nz // C).astype(np.int32),
            "roi": (nz % C - 1).astype(np.int16),
            "pre": tot[0, nz],
            "post": tot[1, nz],
            "downstream": tot[2, nz],
            "upstream": tot[1, nz],
        }
    )
    if cache:
        import uuid

        tmp = cache_file.with_name(f".{cache_file.name}.tmp-{uuid.uuid4().hex[:6]}")
        try:
            df.to_parquet(tmp, index=False, write_page_checksum=True)
            os.replace(tmp, cache_file)
        except OSError:  # a read-only store still answers; it just keeps no cache
            tmp.unlink(missing_ok=True)
    return df

