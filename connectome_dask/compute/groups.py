"""Synapse counts summed over groups of neurons (dense ``n_pre x n_post`` blocks).

Each partition accumulates only the block of group rows its presynaptic
neurons touch (neurons ordered by group make the partial blocks small); the
partial blocks are summed in a tree. Unfiltered counts read the connection
table instead (one row per connected pair), ROI-filtered counts without a
confidence filter the per-ROI connection table. The read path is chosen by
:func:`connectome_dask.compute.plan.plan_read`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._compute import compute, tree_reduce
from ..kernels import pairs as K
from .dense import check_dense
from .pairs import RowFilter, _pairs_table_part, default_partition_rows, index_block, weighted_runs
from .plan import plan_read

if TYPE_CHECKING:
    from ..store import Connectome

__all__ = ["group_counts"]


def _group_chunk(block, start, filt: RowFilter, pre_code, post_code, n_post: int, min_weight: int):
    keep = filt.keep(block)
    if filt.weight_col:
        upre, upost, cnt = weighted_runs(block, keep, filt.weight_col)
    else:
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


def _combine_groups(parts: list[tuple[int, np.ndarray | None]]) -> tuple[int, np.ndarray | None]:
    full = [(s, a) for s, a in parts if a is not None and a.shape[0]]
    if not full:
        return 0, None
    lo = min(s for s, _ in full)
    hi = max(s + a.shape[0] for s, a in full)
    out = np.zeros((hi - lo, full[0][1].shape[1]), dtype=np.int64)
    for s, a in full:
        out[s - lo : s - lo + a.shape[0]] += a
    return lo, out

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


def _group_from_roi_table(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress):
    """Grouped counts from the per-ROI connection table in one task (as :func:`_group_from_table`)."""
    from dask.delayed import delayed

    task = delayed(_group_from_roi_pairs, pure=True)(
        conn.roi_pair_table_paths(), conn.token, conn.n_roi_pairs, default_partition_rows(conn),
        (filt.pre_ok, filt.post_ok, filt.roi_ok, filt.use_roi), (pre_code, post_code), n_pre, n_post, min_weight,
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
    base = default_partition_rows(conn)
    want = (n_pre * n_post * 4) // 2
    return int(min(max(base, want), 1 << 25))


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
                     method=method)
    if plan.method == "table":
        return _group_from_table(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress)
    if plan.method == "roi_table":
        return _group_from_roi_table(conn, filt, pre_code, post_code, n_pre, n_post, min_weight, progress)
    if plan.method == "index":
        block = index_block(conn, plan, pre, post, cols)
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
