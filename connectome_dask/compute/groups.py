"""Synapse counts summed over groups of neurons (dense ``n_pre x n_post`` blocks).

Each partition sums its pair counts into the block of group rows its
presynaptic neurons touch (neurons ordered by group make the blocks small),
or, when that block would cost more than the pairs themselves (thousands of
cell types spread over the table), keeps (pre group, post group, count)
triples; the partials are summed in a tree and added once into the result. Unfiltered counts read the connection
table instead (one row per connected pair), ROI-filtered counts without a
confidence filter the per-ROI connection table. The read path is chosen by
:func:`connectome_dask.compute.plan.plan_read`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from .._compute import compute, tree_reduce
from ..kernels import pairs as K
from .dense import SMALL_PAGE, SMALL_PAGE_SHARE, check_dense, sparse_zeros
from .pairs import (
    RowFilter,
    _pair_table_ranges,
    _pairs_table_part,
    _roi_share,
    _roi_table_ranges,
    default_partition_rows,
    index_block,
    pairs_scan_args,
    pairs_scan_tasks,
    weighted_runs,
)
from .plan import plan_read

if TYPE_CHECKING:
    from ..store import Connectome

__all__ = ["group_counts"]


#: a partition's grouped counts are a dense block of the group rows it touches while that block
#: costs at most this many times the bytes of its (pre group, post group, count) triples
_DENSE_FACTOR = 4


def _dense_is_cheaper(n_rows: int, n_post: int, n_entries: int) -> bool:
    """Whether a dense block of ``n_rows`` group rows costs at most :data:`_DENSE_FACTOR` x the entries' triples."""
    return n_rows * n_post * 8 <= _DENSE_FACTOR * 16 * n_entries


def _add_triples(out: np.ndarray, row0: int, gp: np.ndarray, gq: np.ndarray, cnt: np.ndarray) -> None:
    """``out[gp - row0, gq] += cnt`` (the pair kernel with identity codes: 6x faster than ``np.add.at``)."""
    K.block_add_pairs(out, row0, np.arange(row0 + out.shape[0], dtype=np.int64),
                      np.arange(out.shape[1], dtype=np.int64), gp, gq, cnt)


#: the connection table is added into the dense result by one task when it has at least one pair per
#: this many cells (below, ranges of it are merged as sorted packed pairs)
_TABLE_DENSE_PAIRS = 32

#: bits of the count in a packed ``(cell << 32) | count`` entry of a partial
_PACK_SHIFT = 32

#: packed runs a partial keeps side by side before they are merged into one
_MAX_RUNS = 8


def _cells_fit(n_pre: int, n_post: int) -> bool:
    """Whether every cell ``gp * n_post + gq`` of ``n_pre`` pre groups fits a packed entry beside its count."""
    return n_pre * n_post < 1 << (63 - _PACK_SHIFT)


def _pack(gp: np.ndarray, gq: np.ndarray, cnt: np.ndarray, n_post: int) -> np.ndarray | None:
    """Sorted ``(gp * n_post + gq) << 32 | cnt`` entries, or None when a cell or a count does not fit.

    Sorted entries are added into the result in address order
    (:func:`~connectome_dask.kernels.pairs.add_packed`); the same adds in pair
    order jump across a matrix of hundreds of MB (measured 1.4x slower for
    0.7 M pairs into 7.9 k x 7.9 k, and noisier: every add a TLB miss).
    """
    if len(gp) == 0:
        return np.zeros(0, np.int64)
    if not _cells_fit(int(gp.max()) + 1, n_post) or int(cnt.max()) >= 1 << _PACK_SHIFT or int(cnt.min()) < 0:
        return None
    packed = ((gp.astype(np.int64) * n_post + gq) << _PACK_SHIFT) | cnt.astype(np.int64, copy=False)
    packed.sort()
    return packed


def _unpack(packed: np.ndarray, n_post: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cell = packed >> _PACK_SHIFT
    return ((cell // n_post).astype(np.int32), (cell % n_post).astype(np.int32),
            packed & ((1 << _PACK_SHIFT) - 1))


def _group_part(upre, upost, cnt, pre_code, post_code, n_post: int) -> tuple:
    """One partition's pair counts summed into groups: ``("dense", lo, block)``, or its pairs as
    ``("packed", runs)`` (a tuple of sorted entry arrays, see :func:`_pack`) / ``("sparse", gp, gq, cnt)``.

    The dense block spans the group rows the partition's pairs touch; with
    thousands of groups whose neurons are spread over the whole table
    (cell types) that is nearly the whole matrix, and the pairs are then
    kept instead (8 bytes per pair packed, 16 as triples), to be added once
    into the result.
    """
    gp = pre_code[upre]
    gq = post_code[upost]
    ok = (gp >= 0) & (gq >= 0)
    if not ok.all():
        gp, gq, cnt = gp[ok], gq[ok], cnt[ok]
    if len(gp) == 0:
        return ("packed", ())
    lo, hi = int(gp.min()), int(gp.max())
    if _dense_is_cheaper(hi - lo + 1, n_post, len(gp)):
        out = np.zeros((hi - lo + 1, n_post), dtype=np.int64)
        _add_triples(out, lo, gp, gq, cnt)
        return ("dense", lo, out)
    packed = _pack(gp, gq, cnt, n_post)
    if packed is not None:
        return ("packed", (packed,))
    return ("sparse", gp.astype(np.int32), gq.astype(np.int32), cnt.astype(np.int64, copy=False))


def _group_chunk(block, start, filt: RowFilter, pre_code, post_code, n_post: int, min_weight: int):
    keep = filt.keep(block)
    if filt.weight_col:
        upre, upost, cnt = weighted_runs(block, keep, filt.weight_col)
    else:
        upre, upost, cnt = K.pair_runs(block["pre"], block["post"], keep)
    if min_weight > 1:  # the block holds whole pairs (partitions aligned to pre, or the index block)
        sel = cnt >= min_weight
        upre, upost, cnt = upre[sel], upost[sel], cnt[sel]
    return _group_part(upre, upost, cnt, pre_code, post_code, n_post)


def _rows_of(p: tuple, n_post: int) -> tuple[int, int] | None:
    """First and last group row a partial touches (None when it is empty)."""
    if p[0] == "dense":
        return p[1], p[1] + p[2].shape[0] - 1
    if p[0] == "packed":
        runs = [a for a in p[1] if len(a)]
        if not runs:
            return None
        return (min(int(a[0] >> _PACK_SHIFT) for a in runs) // n_post,
                max(int(a[-1] >> _PACK_SHIFT) for a in runs) // n_post)
    if not len(p[1]):
        return None
    return int(p[1].min()), int(p[1].max())


def _combine_groups(parts: list[tuple], n_post: int) -> tuple:
    """Sum partial grouped counts: pairs stay pairs while they cost less than the dense block.

    Packed partials are kept as their sorted runs, side by side: they are
    added run by run (each in address order) when the result is built, so
    merging them here (a stable sort of every entry, 20 ms of 3 M entries on
    one core at the top of the tree) bought nothing. Beyond
    :data:`_MAX_RUNS` runs (a big store's many partitions) they are merged
    into one, so the result is never swept more than that many times.
    """
    rows = [(p, r) for p in parts if (r := _rows_of(p, n_post)) is not None]
    if not rows:
        return ("packed", ())
    dense = [p for p, _ in rows if p[0] == "dense"]
    packed = [a for p, _ in rows if p[0] == "packed" for a in p[1] if len(a)]
    sparse = [p for p, _ in rows if p[0] == "sparse"]
    nnz = sum(len(a) for a in packed) + sum(len(p[1]) for p in sparse)
    lo = min(r[0] for _, r in rows)
    hi = max(r[1] for _, r in rows)
    if not dense and not _dense_is_cheaper(hi - lo + 1, n_post, nnz):
        if not sparse:
            if len(packed) > _MAX_RUNS:  # many small runs: one merged run adds in one sweep of the result
                packed = [np.sort(np.concatenate(packed), kind="stable")]
            return ("packed", tuple(packed))
        trip = [p[1:] for p in sparse] + [_unpack(a, n_post) for a in packed]
        return ("sparse", *(np.concatenate([t[i] for t in trip]) for i in range(3)))
    out = np.zeros((hi - lo + 1, n_post), dtype=np.int64)
    for _, s0, a in dense:
        out[s0 - lo : s0 - lo + a.shape[0]] += a
    flat = out.reshape(-1)
    for a in packed:
        K.add_packed(flat, a, _PACK_SHIFT, lo * n_post)
    for _, gp, gq, c in sparse:
        _add_triples(out, lo, gp, gq, c)
    return ("dense", lo, out)


#: packed entries from which the result is built on two threads
_THREADED_ENTRIES = 1 << 17


def _add_runs(flat: np.ndarray, runs: tuple[np.ndarray, ...]) -> None:
    """Add sorted packed runs into the flat result; two threads over the two halves of the cells.

    The halves are disjoint cells (each run is split at the same cell by a
    binary search), so the threads never add into one element; the adds
    release the GIL. The first touch of the result's pages is most of the
    cost (0.5 GB for 7.9 k x 7.9 k types): 30 -> 17-21 ms measured for 3 M entries.
    """
    total = sum(len(a) for a in runs)
    if total < _THREADED_ENTRIES:
        for a in runs:
            K.add_packed(flat, a, _PACK_SHIFT, 0)
        return
    from concurrent.futures import ThreadPoolExecutor

    mid = np.int64(len(flat) // 2) << _PACK_SHIFT  # entries below it have cells in the first half
    cut = [int(np.searchsorted(a, mid)) for a in runs]

    def half(first: bool) -> None:
        for a, c in zip(runs, cut, strict=True):
            K.add_packed(flat, a[:c] if first else a[c:], _PACK_SHIFT, 0)

    with ThreadPoolExecutor(2) as ex:
        list(ex.map(half, (True, False)))


def _pages_written(part: tuple, n_cells: int) -> int:
    """4 KiB pages of the int64 result that adding ``part`` writes, counted up to the share that matters."""
    n_pages = -(-n_cells * 8 // SMALL_PAGE)
    if part[0] == "dense":
        return -(-part[2].size * 8 // SMALL_PAGE)
    if part[0] == "sparse":
        return len(part[1])  # unsorted triples (rare: the cells did not pack): at most one page each
    limit = n_pages // SMALL_PAGE_SHARE
    seen = np.zeros(n_pages, dtype=bool)
    count = 0
    for a in part[1]:  # sorted runs: one kernel pass each, stopping once past the limit
        count = K.mark_packed_pages(a, _PACK_SHIFT, 9, seen, count, limit)  # 512 int64 cells a page
        if count > limit:
            break
    return count


def _combined_groups(parts: list, n_post: int, name: str, progress) -> tuple:
    """The tasks' group partials summed in a tree (:func:`_combine_groups`), computed: one partial."""
    (res,) = compute(tree_reduce(parts, functools.partial(_combine_groups, n_post=n_post), name=name),
                     progress=progress)
    return res


def _finish_groups(part: tuple, n_pre: int, n_post: int) -> np.ndarray:
    """The ``(n_pre, n_post)`` int64 result from a combined partial."""
    if part[0] == "dense" and part[1] == 0 and part[2].shape == (n_pre, n_post):
        return part[2]
    # a result with few of its pages written gets small pages (sparse_zeros: touching huge ones can stall)
    out = sparse_zeros((n_pre, n_post), pages=_pages_written(part, n_pre * n_post))
    if part[0] == "dense":
        _, lo, a = part
        out[lo : lo + a.shape[0]] += a
    elif part[0] == "packed":
        _add_runs(out.reshape(-1), part[1])
    else:
        _, gp, gq, c = part
        _add_triples(out, 0, gp, gq, c)
    return out


def _group_from_pairs(paths: dict[str, str], token: str, start: int, stop: int, masks, codes,
                      n_post: int, min_weight: int) -> tuple:
    """One range of the connection table summed into groups (a partial of :func:`_group_part`)."""
    pre_code, post_code = codes
    up, uq, w = _pairs_table_part(paths, token, start, stop, masks[0], masks[1], min_weight)
    return _group_part(up, uq, w, pre_code, post_code, n_post)


def _group_from_table(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress):
    """Grouped counts from the connection table, one task per range of it.

    The table holds one row per connected pair (~6x fewer than synapses) and
    each row is a whole pair, so the ranges split anywhere. Each range's
    pairs come back as sorted packed (cell, count) entries (or a dense block
    of the group rows they touch, when that is cheaper), which are merged
    and added once, in address order, into the result. One task adding every
    pair into the dense result in pair order (before) was bound by the
    random adds over a 0.5 GB matrix and used one core.
    """
    from dask.delayed import delayed

    masks = delayed((filt.pre_ok, filt.post_ok), pure=True)
    codes = delayed((pre_code, post_code), pure=True)
    n_pairs = int(conn.meta["index"]["n_pairs"])
    if n_pairs * _TABLE_DENSE_PAIRS >= n_pre * n_post:
        # pairs enough to touch much of the matrix (the whole table at 20 M and 50 M synapses, 7.9 k types):
        # sorting them per range and merging cost more than one task adding them straight into the dense
        # result (50 M: 0.25 vs 0.19 s measured); that task reads the table once
        task = delayed(_group_table_dense, pure=True)(
            conn.pair_table_paths(), conn.token, n_pairs, masks, codes, n_pre, n_post, min_weight)
        (out,) = compute(task, progress=progress)
        return out
    part = delayed(_group_from_pairs, pure=True)
    parts = [part(conn.pair_table_paths(), conn.token, s, e, masks, codes, n_post, min_weight)
             for s, e in _pair_table_ranges(conn)]
    res = _combined_groups(parts, n_post, "group-table-combine", progress)
    return _finish_groups(res, n_pre, n_post)


def _group_table_dense(paths: dict[str, str], token: str, n_pairs: int, masks, codes, n_pre: int, n_post: int,
                       min_weight: int) -> np.ndarray:
    """The whole connection table added into the dense result in one task."""
    pre_code, post_code = codes
    up, uq, w = _pairs_table_part(paths, token, 0, n_pairs, masks[0], masks[1], min_weight)
    out = np.zeros((n_pre, n_post), dtype=np.int64)
    K.block_add_pairs(out, 0, pre_code, post_code, up, uq, w)
    return out


def _group_from_roi_pairs(paths: dict[str, str], token: str, n_rows: int, step: int, masks, codes,
                          n_pre: int, n_post: int, min_weight: int) -> np.ndarray:
    """Grouped counts from the per-ROI connection table, range by range (bounded memory).

    Rows are summed per pair over the kept ROIs; the last pair of a range is
    carried into the next one (its rows may continue there), so
    ``min_weight`` judges whole pairs.
    """
    from ..store import read_rows

    pre_ok, post_ok, roi_ok, use_roi = masks
    pre_code, post_code = codes
    out = np.zeros((n_pre, n_post), dtype=np.int64)
    dummy = np.zeros(1, dtype=np.float32)
    need = ["pre", "post", "weight"] + (["roi"] if use_roi else [])
    carry: tuple[int, int, int] | None = None

    def add(up, uq, w) -> None:
        if min_weight > 1:
            sel = w >= min_weight
            up, uq, w = up[sel], uq[sel], w[sel]
        K.block_add_pairs(out, 0, pre_code, post_code, up, uq, w)

    for s in range(0, n_rows, step):
        t = {c: read_rows(paths[c], token, s, min(s + step, n_rows)) for c in need}
        keep = K.row_mask(t["pre"], t["post"], pre_ok, post_ok, t.get("roi", np.zeros(1, np.int16)), roi_ok,
                          dummy, dummy, 0.0, use_roi, False, False)
        up, uq, w = K.pair_weight_runs(t["pre"], t["post"], t["weight"], keep)
        if not len(up):
            continue
        if carry is not None:
            if up[0] == carry[0] and uq[0] == carry[1]:
                w[0] += carry[2]
            else:
                add(np.array([carry[0]], np.int32), np.array([carry[1]], np.int32), np.array([carry[2]], np.int64))
        carry = (int(up[-1]), int(uq[-1]), int(w[-1]))
        add(up[:-1], uq[:-1], w[:-1])
    if carry is not None:
        add(np.array([carry[0]], np.int32), np.array([carry[1]], np.int32), np.array([carry[2]], np.int64))
    return out


def _packed_part(packed: np.ndarray, lo: int, hi: int, n_post: int) -> tuple:
    """The partial of a kernel's packed entries (in any order): a dense block of rows lo..hi, or the sorted entries."""
    if not len(packed):
        return ("packed", ())
    if _dense_is_cheaper(hi - lo + 1, n_post, len(packed)):
        out = np.zeros((hi - lo + 1) * n_post, dtype=np.int64)
        K.add_packed(out, packed, _PACK_SHIFT, lo * n_post)
        return ("dense", int(lo), out.reshape(hi - lo + 1, n_post))
    packed.sort()
    return ("packed", (packed,))


def _group_roi_range(paths: dict[str, str], token: str, start: int, stop: int, masks, codes,
                     n_post: int) -> tuple:
    """One range of the per-ROI connection table summed into groups (``min_weight`` 1: any split is exact)."""
    from ..store import read_rows

    pre_ok, post_ok, roi_ok, use_roi = masks
    pre_code, post_code = codes
    need = ["pre", "post", "weight"] + (["roi"] if use_roi else [])
    t = {c: read_rows(paths[c], token, start, stop) for c in need}
    roi = t.get("roi", np.zeros(1, np.int16))
    if _cells_fit(int(pre_code.max(initial=-1)) + 1, n_post):
        # rows straight to packed group cells (the pair sums over ROIs happen in the adds): one pass
        # instead of a keep-mask, runs per pair and gathers (45 -> 20 ms of CPU per 4.8 M rows)
        packed, lo, hi, ok = K.pack_group_rows(t["pre"], t["post"], roi, t["weight"], pre_ok, post_ok, roi_ok,
                                               use_roi, pre_code, post_code, n_post, _PACK_SHIFT)
        if ok:
            return _packed_part(packed, lo, hi, n_post)
    dummy = np.zeros(1, dtype=np.float32)
    keep = K.row_mask(t["pre"], t["post"], pre_ok, post_ok, roi, roi_ok, dummy, dummy, 0.0, use_roi, False, False)
    up, uq, w = K.pair_weight_runs(t["pre"], t["post"], t["weight"], keep)
    return _group_part(up, uq, w, pre_code, post_code, n_post)


def _group_from_roi_table(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress):
    """Grouped counts from the per-ROI connection table.

    ``min_weight`` 1: one task per range of the table, merged as in
    :func:`_group_from_table`. A threshold judges a pair's sum over the kept
    ROIs, whose rows may straddle a range boundary: one task then walks the
    table range by range, carrying the last pair (:func:`_group_from_roi_pairs`).
    """
    from dask.delayed import delayed

    masks = delayed((filt.pre_ok, filt.post_ok, filt.roi_ok, filt.use_roi), pure=True)
    codes = delayed((pre_code, post_code), pure=True)
    paths = conn.roi_pair_table_paths()
    if min_weight > 1:
        task = delayed(_group_from_roi_pairs, pure=True)(
            paths, conn.token, conn.n_roi_pairs, default_partition_rows(conn), masks, codes, n_pre, n_post,
            min_weight)
        (out,) = compute(task, progress=progress)
        return out
    part = delayed(_group_roi_range, pure=True)
    parts = [part(paths, conn.token, s, e, masks, codes, n_post) for s, e in _roi_table_ranges(conn)]
    res = _combined_groups(parts, n_post, "group-roi-table-combine", progress)
    return _finish_groups(res, n_pre, n_post)


def _roi_major_group_part(paths: dict[str, str], token: str, pieces, filt: RowFilter, codes, n_post: int) -> tuple:
    """One task of the ``roi_major`` path summed into groups (``min_weight`` 1: a pair's ROIs add up anywhere)."""
    from .roi_major import roi_major_part

    up, uq, w = roi_major_part(paths, token, pieces, filt)
    return _group_part(up, uq, w, codes[0], codes[1], n_post)


def _group_from_roi_major(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress):
    """Grouped counts from the ROI-major copy: the selected ROIs' runs only.

    ``min_weight`` 1: each task sums its runs into groups and the partials
    are merged as on the per-ROI table's path. A threshold judges a pair's
    total over the selected ROIs, whose runs lie in different ROIs' ranges:
    the pairs are summed first (:func:`~connectome_dask.compute.roi_major.roi_major_pairs`).
    """
    from dask.delayed import delayed

    from .roi_major import roi_major_pairs, roi_major_tasks

    if min_weight > 1:
        up, uq, w = roi_major_pairs(conn, filt, min_weight, progress)
        return _finish_groups(_group_part(up, uq, w, pre_code, post_code, n_post), n_pre, n_post)
    paths, tasks = roi_major_tasks(conn, filt)
    if not tasks:
        return np.zeros((n_pre, n_post), dtype=np.int64)
    dfilt = delayed(filt, pure=True)
    codes = delayed((pre_code, post_code), pure=True)
    part = delayed(_roi_major_group_part, pure=True)
    parts = [part(paths, conn.token, t, dfilt, codes, n_post) for t in tasks]
    res = _combined_groups(parts, n_post, "group-roi-major-combine", progress)
    return _finish_groups(res, n_pre, n_post)


def _pairs_scan_group_part(pair_paths: dict[str, str], row_paths: dict[str, str], token: str,
                           bounds: tuple[int, int, int, int], filt: RowFilter, codes: tuple, n_post: int,
                           min_weight: int) -> tuple:
    """One partition of the ``pairs_scan`` path summed into groups: filter counts and group cells in one pass.

    The fused kernel (``pack_group_filtered_pairs``) leaves out the pair index
    and count arrays and the gathers of the pairs and their codes (the
    partition holds whole pairs, so ``min_weight`` is judged here). ``codes``
    hold the neuron filter too (-1 = a neuron not counted on that side).
    """
    pre_code, post_code = codes
    args = pairs_scan_args(pair_paths, row_paths, token, bounds, filt)
    if _cells_fit(int(pre_code.max(initial=-1)) + 1, n_post):
        packed, lo, hi, ok = K.pack_group_filtered_pairs(*args[:3], args[5], min_weight, pre_code, post_code,
                                                         n_post, _PACK_SHIFT)
        if ok:
            return _packed_part(packed, lo, hi, n_post)
    idx, cnt = K.pair_filter_counts(*args[:6], min_weight)
    return _group_part(args[0][idx], args[1][idx], cnt, pre_code, post_code, n_post)


def _group_chunk_packed(block, start, packed, n_post, min_weight):
    filt, pre_code, post_code = packed
    return _group_chunk(block, start, filt, pre_code, post_code, n_post, min_weight)


def group_counts(
    conn: Connectome,
    pre_codes: np.ndarray,
    post_codes: np.ndarray,
    n_pre: int,
    n_post: int,
    pre: np.ndarray | None = None,
    post: np.ndarray | None = None,
    *,
    roi_codes: np.ndarray | None = None,
    confidence: float | None = None,
    min_weight: int = 1,
    progress: bool | None = None,
    method: str = "auto",
) -> np.ndarray:
    """Synapse counts summed over neuron groups, neurons given as dense indices.

    Parameters
    ----------
    conn
        The connectome.
    pre_codes, post_codes
        Group of each neuron on that side (length ``conn.n_neurons``, ``-1`` = left out).
    n_pre, n_post
        Number of groups on each side.
    pre, post
        Sorted unique dense neuron indices counted on each side (``None`` = all).
    roi_codes, confidence, min_weight
        Row filters and the neuron-pair threshold, as in
        :func:`connectome_dask.compute.pairs.pair_counts`.
    progress
        Show a progress bar.
    method
        ``"auto"``, ``"index"``, ``"table"``, ``"roi_table"`` or ``"scan"``
        (see :func:`~connectome_dask.compute.plan.plan_read`).

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

    Examples
    --------
    >>> one = np.zeros(conn.n_neurons, np.int64)
    >>> int(group_counts(conn, one, one, 1, 1, method="scan")[0, 0]) == conn.n_synapses
    True
    """
    check_dense((n_pre, n_post), 8, "the grouped matrix")
    pre_code = np.asarray(pre_codes, dtype=np.int64)
    post_code = np.asarray(post_codes, dtype=np.int64)
    if len(pre_code) != conn.n_neurons or len(post_code) != conn.n_neurons:
        raise ValueError(f"pre_codes/post_codes must have one entry per neuron ({conn.n_neurons})")
    filt = RowFilter(conn, pre, post, roi_codes, confidence)
    cols = filt.columns(False)
    plan = plan_read(conn, pre=pre, post=post, roi_filter=filt.use_roi, confidence=bool(filt.conf_cols),
                     method=method, roi_none=filt.keeps_no_roi, roi_share=_roi_share(conn, filt))
    if plan.method == "table":
        return _group_from_table(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress)
    if plan.method == "roi_table":
        return _group_from_roi_table(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress)
    if plan.method == "roi_major":
        return _group_from_roi_major(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress)
    if plan.method == "index":
        block = index_block(conn, plan, pre, post, cols)
        res = _group_chunk(block, 0, filt, pre_code, post_code, n_post, min_weight)
    else:
        from dask.delayed import delayed

        if plan.method == "pairs_scan":
            # the neuron filter folded into the codes: one lookup per pair and side in the kernel
            codes = delayed((np.where(filt.pre_ok, pre_code, -1).astype(np.int32),
                             np.where(filt.post_ok, post_code, -1).astype(np.int32)), pure=True)
            parts = pairs_scan_tasks(conn, filt, False, min_weight, part=_pairs_scan_group_part,
                                     part_args=(codes, n_post))
        else:
            args = delayed((filt, pre_code, post_code), pure=True)
            # min_weight judges whole neuron pairs: partitions then start at
            # presynaptic-neuron boundaries, so no pair's rows are split between
            # two tasks (each would test only its part against the threshold)
            parts = conn.map_partitions(_group_chunk_packed, cols, args, n_post, min_weight, name="group-counts",
                                        align_pre=min_weight > 1)
        res = _combined_groups(parts, n_post, "group-counts-combine", progress)
    return _finish_groups(res, n_pre, n_post)
