"""Neuron-pair synapse counts on dense indices: kernels per block, tree reduction, three read paths.

Rows are stored sorted by ``(pre, post)``, so every partition owns a
contiguous run of presynaptic neurons: the per-partition results are already
sorted and only the pair that straddles a partition seam needs merging. This
is why pair counting here moves little data between tasks, unlike a hash
groupby on randomly ordered rows. The read path (index / connection table /
per-ROI connection table / scan) is chosen by :func:`connectome_dask.compute.plan.plan_read`.

Everything here takes resolved inputs: dense neuron indices (``None`` = all),
ROI codes, thresholds. Criteria and labels are resolved above, in
:mod:`connectome_dask.aggregate`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._compute import compute, tree_reduce
from ..kernels import pairs as K
from .plan import Plan, plan_read

if TYPE_CHECKING:
    from ..store import Connectome

__all__ = ["pair_counts", "RowFilter", "index_block", "default_partition_rows", "weighted_runs", "pairs_scan_tasks",
           "pairs_scan_args"]


def _confidence_columns(conn: Connectome) -> list[str]:
    # one rule: the columns thresholded are those the ROI-major copy keeps
    from ..store.roi_major import copy_columns

    return copy_columns(conn.synapse_columns)


class RowFilter:
    """Row filter parameters shared by all tasks (one object in the graph).

    Parameters
    ----------
    conn
        The connectome (its neuron count, ROI names and confidence columns).
    pre, post
        Dense neuron indices kept on each side (``None`` = every neuron).
    roi_codes
        ROI codes a row's ``roi_post`` must be one of (``None`` = no ROI filter).
    confidence
        Keep rows whose confidence is above this threshold (compared as
        float32, the stored precision; ``None`` = no threshold). With two
        confidence columns (``confidence_pre``/``_post``) both must pass.

    Raises
    ------
    KeyError
        ``confidence`` is given but the store has no confidence column.
    """

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
        # connection-level stores: each row counts its weight (synapses of the connection)
        self.weight_col = conn.weight_column

    @property
    def keeps_no_roi(self) -> bool:
        """Whether the ROI filter keeps the rows in no ROI (code -1) too."""
        return self.use_roi and bool(self.roi_ok[0])

    def columns(self, need_roi: bool) -> list[str]:
        """The synapse columns a block must hold for :meth:`keep` (and the caller).

        Parameters
        ----------
        need_roi
            The caller needs ``roi_post`` itself (e.g. counts by ROI).

        Returns
        -------
        list of str
            ``pre``, ``post``, ``roi_post`` when needed, then the confidence columns.
        """
        cols = ["pre", "post"]
        if self.use_roi or need_roi:
            cols.append("roi_post")
        return cols + self.conf_cols + ([self.weight_col] if self.weight_col else [])

    def keep(self, block: dict[str, np.ndarray]) -> np.ndarray:
        """Boolean mask of the rows of ``block`` that pass the filter.

        Parameters
        ----------
        block
            Column name -> array of one block of synapse rows, holding at least
            :meth:`columns`.

        Returns
        -------
        numpy.ndarray
            One bool per row.
        """
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


_Filter = RowFilter  # the name used before the move


def _roi_share(conn, filt: RowFilter) -> float | None:
    """The selected ROIs' share of the ROI-major copy's runs, where the plan weighs it (a ROI filter alone)."""
    if not filt.use_roi or filt.conf_cols or filt.keeps_no_roi:
        return None
    from .roi_major import roi_major_share

    return roi_major_share(conn, filt.roi_ok)


def weighted_runs(block: dict[str, np.ndarray], keep: np.ndarray, weight: str, by_roi: bool = False) -> tuple:
    """Weights summed per distinct kept (pre, post[, roi]) of a (pre, post)-sorted block.

    The connection-level counterpart of the row-counting kernels
    (``pair_runs`` / ``pair_roi_runs``): same outputs, same order.

    Parameters
    ----------
    block
        ``pre``, ``post``, ``weight`` (and ``roi_post`` when ``by_roi``).
    keep
        Rows to count.
    weight
        The weight column.
    by_roi
        Count per (pre, post, roi_post) instead of per pair.

    Returns
    -------
    tuple
        ``(pre int32, post int32[, roi int16], weight int64)``.

    Examples
    --------
    >>> b = {"pre": np.array([0, 0, 1], np.int32), "post": np.array([1, 1, 0], np.int32),
    ...      "weight": np.array([2, 3, 4])}
    >>> [a.tolist() for a in weighted_runs(b, np.array([True, True, True]), "weight")]
    [[0, 1], [1, 0], [5, 4]]
    """
    p, q = block["pre"][keep], block["post"][keep]
    w = block[weight][keep].astype(np.int64)
    if by_roi:
        r = block["roi_post"][keep]
        order = np.lexsort((r, q, p))
        p, q, r, w = p[order], q[order], r[order], w[order]
        keys = [p, q, r]
    else:
        keys = [p, q]
    if len(p) == 0:
        return _empty_pairs(by_roi)
    change = np.zeros(len(p), dtype=bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    s = np.flatnonzero(change)
    out: tuple[np.ndarray, ...] = (p[s].astype(np.int32), q[s].astype(np.int32))
    if by_roi:
        out += (r[s].astype(np.int16),)
    return out + (np.add.reduceat(w, s),)


def _pairs_chunk(block: dict[str, np.ndarray], start: int, filt: RowFilter, by_roi: bool):
    keep = filt.keep(block)
    if filt.weight_col:
        return weighted_runs(block, keep, filt.weight_col, by_roi)
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
            mid: tuple[np.ndarray, ...]
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


def index_block(conn: Connectome, plan: Plan, pre: np.ndarray | None, post: np.ndarray | None,
                cols: list[str]) -> dict[str, np.ndarray]:
    """The selection's rows read through the index, on the side ``plan`` chose.

    Outputs of the pre bodies are contiguous row ranges, inputs of the post
    bodies contiguous ranges of the post-ordered copies: no scan either way.
    Rows of the other side's bodies are not removed here (the row filter does it).

    Parameters
    ----------
    conn
        The connectome.
    plan
        An ``index`` plan from :func:`~connectome_dask.compute.plan.plan_read`
        (its ``side`` says which index to read).
    pre, post
        Dense neuron indices of each side (``None`` = every neuron).
    cols
        Synapse columns to read.

    Returns
    -------
    dict of str to numpy.ndarray
        The rows of the chosen side's bodies.

    Raises
    ------
    ValueError
        The plan's side has no bodies (``pre``/``post`` is ``None``).
    """
    side = "pre" if plan.side == "pre" else "post"
    idx = pre if side == "pre" else post
    if idx is None:
        raise ValueError(f"the plan reads the {side} side's index, but no {side} bodies were given")
    return conn.synapses_of(idx, side, cols)


def default_partition_rows(conn: Connectome) -> int:
    """Rows per partition of the store's default partitioning (at least 1).

    Parameters
    ----------
    conn
        The connectome.

    Returns
    -------
    int
    """
    s, e = conn.partitions()[0]
    return max(e - s, 1)


def _table_ranges(conn: Connectome, n: int) -> list[tuple[int, int]]:
    """Task ranges over a connection table of ``n`` rows: whole chunks, about two per core.

    The tables are ~5x shorter than the synapse arrays, so the synapse
    partition length would leave one task with most of the table (4.2 M of
    4.8 M rows at 20 M synapses) and the other core idle; ranges of whole
    chunks are never decoded twice. At most a synapse partition per range.
    """
    from dask.system import CPU_COUNT

    per = default_partition_rows(conn)
    chunk = max(int(conn.chunk_rows), 1)
    target = -(-n // (2 * max(int(CPU_COUNT), 1)))
    size = min(per, max(chunk, -(-target // chunk) * chunk))
    return [(s, min(s + size, n)) for s in range(0, n, size)] or [(0, 0)]


def _balanced_partition_rows(conn: Connectome) -> int:
    """The store's partition length, shortened (whole chunks) so the partitions are a multiple of the cores.

    Five partitions on two cores leave one core idle for the last one: 20 M
    rows at the default 4.2 M rows per partition took 3/5 of the work on one
    core; six partitions of 3.4 M rows even it out. Never lengthened, so a
    configured ``partition_chunks`` still bounds a task's memory.
    """
    from dask.system import CPU_COUNT

    per = default_partition_rows(conn)
    chunk = max(int(conn.chunk_rows), 1)
    n = int(conn.n_synapses)
    cores = max(int(CPU_COUNT), 1)
    k = -(-n // per) if n else 1
    if k <= 1 or k % cores == 0:
        return per
    k = -(-k // cores) * cores
    rows = -(-n // k)  # rows per partition, then rounded up to whole chunks
    return max(chunk, -(-rows // chunk) * chunk)


def _pair_table_ranges(conn: Connectome) -> list[tuple[int, int]]:
    return _table_ranges(conn, int(conn.meta["index"]["n_pairs"]))


def _pairs_table_part(paths: dict[str, str], token: str, start: int, stop: int, pre_ok, post_ok,
                      min_weight: int):
    from ..store import read_rows

    # the arrays of the generation the client opened (never a newer or replaced store)
    t = {c: read_rows(p, token, start, stop) for c, p in paths.items()}
    return K.filter_pairs(t["pre"], t["post"], t["weight"], pre_ok, post_ok, max(int(min_weight), 1))


def _pairs_from_table(conn: Connectome, filt: RowFilter, min_weight: int, progress) -> pd.DataFrame:
    from dask.delayed import delayed

    pre_ok = delayed(filt.pre_ok, pure=True)  # one copy of each mask in the graph
    post_ok = delayed(filt.post_ok, pure=True)
    task = delayed(_pairs_table_part, pure=True)
    paths = conn.pair_table_paths()
    parts = [task(paths, conn.token, s, e, pre_ok, post_ok, min_weight) for s, e in _pair_table_ranges(conn)]
    res = compute(*parts, progress=progress)
    return pd.DataFrame({c: np.concatenate([r[i] for r in res]) for i, c in enumerate(("pre", "post", "weight"))})


def _roi_table_ranges(conn: Connectome) -> list[tuple[int, int]]:
    return _table_ranges(conn, conn.n_roi_pairs)


def _roi_table_part(paths: dict[str, str], token: str, start: int, stop: int, pre_ok, post_ok, roi_ok,
                    flags: tuple[bool, bool, bool]):
    """Rows of one range of the per-ROI connection table that pass the filters.

    ``flags = (select, use_roi, by_roi)``: filter neurons / filter ROIs /
    return the (pre, post, roi, weight) rows (else summed per pair over the
    kept ROIs: (pre, post, weight)).
    """
    from ..store import read_rows

    select, use_roi, by_roi = flags
    need = ["pre", "post", "weight"] + (["roi"] if (use_roi or by_roi) else [])
    t = {c: read_rows(paths[c], token, start, stop) for c in need}
    n = len(t["pre"])
    if select or use_roi:
        dummy = np.zeros(1, dtype=np.float32)
        keep = K.row_mask(t["pre"], t["post"], pre_ok, post_ok, t.get("roi", np.zeros(1, np.int16)), roi_ok,
                          dummy, dummy, 0.0, use_roi, False, False)
    else:
        keep = None
    if by_roi:
        cols = ("pre", "post", "roi", "weight")
        return tuple(t[c] if keep is None else t[c][keep] for c in cols)
    return K.pair_weight_runs(t["pre"], t["post"], t["weight"], np.ones(n, dtype=bool) if keep is None else keep)


def _roi_table_args(conn: Connectome, filt: RowFilter) -> tuple:
    """The filter masks (one copy each in the graph) and whether neurons are selected at all."""
    from dask.delayed import delayed

    select = not (bool(filt.pre_ok.all()) and bool(filt.post_ok.all()))
    return (delayed(filt.pre_ok, pure=True), delayed(filt.post_ok, pure=True), delayed(filt.roi_ok, pure=True),
            select)


def _pairs_from_roi_table(conn: Connectome, filt: RowFilter, by_roi: bool, min_weight: int,
                          progress) -> pd.DataFrame:
    """Pair counts (per ROI with ``by_roi``) from the per-ROI connection table.

    One task per range of the table; per-pair sums straddling a range seam
    are merged in one ordered run-length pass, then ``min_weight`` judges
    the whole rows, as on the scan path.
    """
    from dask.delayed import delayed

    pre_ok, post_ok, roi_ok, select = _roi_table_args(conn, filt)
    task = delayed(_roi_table_part, pure=True)
    paths = conn.roi_pair_table_paths()
    flags = (select, filt.use_roi, by_roi)
    parts = [task(paths, conn.token, s, e, pre_ok, post_ok, roi_ok, flags) for s, e in _roi_table_ranges(conn)]
    res = list(compute(*parts, progress=progress))
    names = ["pre", "post"] + (["roi"] if by_roi else []) + ["weight"]
    n_parts = len(res)
    cols = [list(c) for c in zip(*res, strict=True)]
    del res
    out_l = []
    for i in range(len(names)):  # a column's parts are released once it is joined: one column's copy at a time
        out_l.append(np.concatenate(cols[i]))
        cols[i] = []
    out = tuple(out_l)
    if not by_roi and n_parts > 1:  # a pair's ROI rows may straddle a range seam: sum equal neighbours
        out = K.pair_weight_runs(out[0], out[1], out[2], np.ones(len(out[0]), dtype=bool))
    df = pd.DataFrame(dict(zip(names, out, strict=True)), copy=False)
    if min_weight > 1:
        df = df[df["weight"].to_numpy() >= min_weight].reset_index(drop=True)
    return df


#: what :func:`pairs_scan_args` returns: ``(ppre, ppost, pweight, pre_ok, post_ok, words, roi)``, the
#: pair-filter kernels' arguments
PairsScanArgs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def pairs_scan_args(pair_paths: dict[str, str], row_paths: dict[str, str], token: str,
                    bounds: tuple[int, int, int, int], filt: RowFilter) -> PairsScanArgs:
    """One partition of the ``pairs_scan`` path read: the arguments of the pair-filter kernels.

    The partition's pairs (``pre, post, weight`` of the connection table) and
    the filter columns of their synapse rows, checked against each other.

    Parameters
    ----------
    pair_paths
        Array paths of the connection table's ``pre``, ``post``, ``weight``.
    row_paths
        Array paths of the synapse columns the filter reads (``roi_post``, confidences).
    token
        The store generation the arrays are read for.
    bounds
        ``(start, stop, pair_start, pair_stop)`` of the partition
        (:meth:`~connectome_dask.store.Connectome.pair_partitions`).
    filt
        The row filter.

    Returns
    -------
    tuple
        ``(ppre, ppost, pweight, pre_ok, post_ok, words, roi)``: the pairs, the
        neuron filter, the rows' filter as a bit set
        (:func:`~connectome_dask.kernels.pairs.keep_words`) and the rows' ROI
        codes (length 1 when not read), as
        :func:`~connectome_dask.kernels.pairs.pair_filter_counts` (the first
        six) and :func:`~connectome_dask.kernels.pairs.pair_roi_filter_counts` take them.

    Raises
    ------
    StoreError
        The pairs do not count the partition's rows (the tables do not match), or a chunk is damaged.
    """
    from ..store import StoreError, read_rows

    s, e, a, b = bounds
    t = {c: read_rows(p, token, a, b) for c, p in pair_paths.items()}
    if int(t["weight"].sum()) != e - s:
        raise StoreError(
            f"{pair_paths['weight']}: pairs {a}..{b} count {int(t['weight'].sum()):,} synapse rows but their "
            f"presynaptic neurons own rows {s}..{e} ({e - s:,}); the connection table does not match the "
            "synapse arrays: run `connectome-dask info --check` on the store")
    rows = {c: read_rows(p, token, s, e) for c, p in row_paths.items()}
    dummy_i = np.zeros(1, dtype=np.int16)
    dummy_f = np.zeros(1, dtype=np.float32)
    c1 = rows[filt.conf_cols[0]] if filt.conf_cols else dummy_f
    c2 = rows[filt.conf_cols[1]] if len(filt.conf_cols) > 1 else dummy_f
    roi = rows.get("roi_post", dummy_i)
    words = K.keep_words(roi, filt.roi_ok, c1, c2, filt.thr, filt.use_roi, bool(filt.conf_cols),
                         len(filt.conf_cols) > 1, e - s)
    return t["pre"], t["post"], t["weight"], filt.pre_ok, filt.post_ok, words, roi


def _pairs_scan_part(pair_paths: dict[str, str], row_paths: dict[str, str], token: str,
                     bounds: tuple[int, int, int, int], filt: RowFilter, by_roi: bool, min_weight: int) -> tuple:
    """One partition of the ``pairs_scan`` path: its pairs, and the filter columns of their synapse rows.

    Returns ``(pre, post[, roi], weight)`` like :func:`_pairs_chunk`; without
    ``by_roi`` the partition holds whole pairs, so ``min_weight`` is applied here.
    """
    args = pairs_scan_args(pair_paths, row_paths, token, bounds, filt)
    if by_roi:
        idx, roi, cnt = K.pair_roi_filter_counts(*args, filt.n_codes)
        return args[0][idx], args[1][idx], roi, cnt
    idx, cnt = K.pair_filter_counts(*args[:6], min_weight)
    return args[0][idx], args[1][idx], cnt


def pairs_scan_tasks(conn: Connectome, filt: RowFilter, by_roi: bool, min_weight: int,
                     partition_rows: int | None = None, part: Any = None, part_args: tuple = ()) -> list:
    """The ``pairs_scan`` path's tasks, one per partition of whole presynaptic neurons, in row order.

    Each returns ``(pre, post[, roi], weight)`` sorted, as the scan's partitions;
    concatenated in order they are the whole result (no pair spans two).

    Parameters
    ----------
    conn
        The connectome (with a connection table; synapse rows).
    filt
        The row filter.
    by_roi
        Split the counts by the postsynaptic ROI code.
    min_weight
        Pairs with fewer kept synapses are dropped (not with ``by_roi``: the
        caller judges each (pair, ROI) row).
    partition_rows
        Synapse rows per partition (default: the store's, shortened to a
        multiple of the cores in partitions).
    part
        The task function instead of the pair counts: called as
        ``part(pair_paths, row_paths, token, bounds, filt, *part_args, min_weight)``
        (it reads the partition with :func:`pairs_scan_args`); ``by_roi`` is then ignored.
    part_args
        Its further arguments (delayed objects or plain values that tokenize).

    Returns
    -------
    list of dask.delayed.Delayed
    """
    from dask.base import tokenize
    from dask.delayed import delayed

    pair_paths = conn.pair_table_paths()
    if partition_rows is None:
        partition_rows = _balanced_partition_rows(conn)
    need = (["roi_post"] if (filt.use_roi or by_roi) else []) + filt.conf_cols
    row_paths = conn.synapse_column_paths(need)
    dfilt = delayed(filt, pure=True)
    # the key names everything the result depends on (the filter too): a distributed scheduler may hand
    # a key's result still in memory to another computation asking for the same key
    if part is None:  # the pair counts themselves: the same call shape, by_roi as its one further argument
        part, part_args = _pairs_scan_part, (by_roi,)
    tok = tokenize(str(conn.path), conn.token, need, min_weight, dfilt.key, f"{part.__module__}.{part.__name__}",
                   [getattr(a, "key", a) for a in part_args])
    return [delayed(part, pure=True)(pair_paths, row_paths, conn.token, bounds, dfilt, *part_args, min_weight,
                                     dask_key_name=f"pairs-scan-{part.__name__}-{tok}-{i}")
            for i, bounds in enumerate(conn.pair_partitions(partition_rows))]


def _pairs_from_pairs_scan(conn: Connectome, filt: RowFilter, by_roi: bool, min_weight: int, progress) -> tuple:
    res = compute(*pairs_scan_tasks(conn, filt, by_roi, min_weight), progress=progress)
    return tuple(np.concatenate([r[i] for r in res]) for i in range(len(res[0])))


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

    from .._fsutil import atomic_dir
    from ..store import StoreError

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


def pair_counts(
    conn: Connectome,
    pre: np.ndarray | None,
    post: np.ndarray | None,
    *,
    roi_codes: np.ndarray | None = None,
    by_roi: bool = False,
    confidence: float | None = None,
    min_weight: int = 1,
    progress: bool | None = None,
    output: str | os.PathLike | None = None,
    method: str = "auto",
) -> pd.DataFrame:
    """Synapse counts per (pre, post) neuron pair of neurons given as dense indices.

    Parameters
    ----------
    conn
        The connectome.
    pre, post
        Sorted unique dense neuron indices of each side (``None`` = all).
    roi_codes
        Keep only rows whose postsynaptic ROI code is one of these.
    by_roi
        Also split by the postsynaptic site's ROI code (column ``roi``).
    confidence
        Keep rows with confidence strictly greater than this.
    min_weight
        Drop (pair[, roi]) rows counting fewer synapses.
    progress
        Show a progress bar.
    output
        Write Parquet parts into this directory instead (returns a dask DataFrame).
    method
        ``"auto"``, ``"index"``, ``"table"``, ``"roi_table"``, ``"roi_major"``,
        ``"pairs_scan"`` or ``"scan"`` (see :func:`~connectome_dask.compute.plan.plan_read`).

    Returns
    -------
    pandas.DataFrame
        Columns ``pre``, ``post`` (int32), ``roi`` (int16, with ``by_roi``),
        ``weight`` (int64), sorted by (pre, post, roi).

    Raises
    ------
    KeyError
        ``by_roi`` on a store without ROIs, or ``confidence`` without a
        confidence column.
    ValueError
        A forced ``method`` cannot answer the request.

    Examples
    --------
    >>> df = pair_counts(conn, np.array([0]), None, method="scan")
    >>> df.equals(pair_counts(conn, np.array([0]), None, method="index"))
    True
    >>> by_roi = pair_counts(conn, None, None, by_roi=True)  # the per-ROI connection table
    >>> by_roi.equals(pair_counts(conn, None, None, by_roi=True, method="scan"))
    True
    """
    if by_roi and "roi_post" not in conn.synapse_columns:
        raise KeyError(f"{conn.path} has no roi_post column; run Connectome.assign_rois first")
    filt = RowFilter(conn, pre, post, roi_codes, confidence)
    cols = filt.columns(by_roi)
    names = ["pre", "post"] + (["roi"] if by_roi else []) + ["weight"]
    plan = plan_read(conn, pre=pre, post=post, by_roi=by_roi, roi_filter=filt.use_roi,
                     confidence=bool(filt.conf_cols), output=output is not None, method=method,
                     roi_none=filt.keeps_no_roi, roi_share=None if by_roi else _roi_share(conn, filt))
    if output is not None:
        return _pair_counts_to_parquet(conn, filt, cols, by_roi, names, min_weight, Path(output), progress)
    if plan.method == "table":
        return _pairs_from_table(conn, filt, min_weight, progress)
    if plan.method == "roi_table":
        return _pairs_from_roi_table(conn, filt, by_roi, min_weight, progress)
    if plan.method == "roi_major":
        from .roi_major import roi_major_pairs

        res = roi_major_pairs(conn, filt, min_weight, progress)
        return pd.DataFrame(dict(zip(names, res, strict=True)), copy=False)
    if plan.method == "index":
        res = _pairs_chunk(index_block(conn, plan, pre, post, cols), 0, filt, by_roi)
    elif plan.method == "pairs_scan":
        res = _pairs_from_pairs_scan(conn, filt, by_roi, min_weight, progress)
    else:
        from dask.delayed import delayed

        dfilt = delayed(filt, pure=True)
        parts = conn.map_partitions(_pairs_chunk, cols, dfilt, by_roi, name="pair-counts", align_pre=True)
        total = tree_reduce(parts, _combine_pairs, name="pair-counts-combine")
        (res,) = compute(total, progress=progress)
    df = pd.DataFrame(dict(zip(names, res, strict=True)), copy=False)  # copy=False: no stacking copy of pre/post
    if min_weight > 1:
        df = df[df["weight"].to_numpy() >= min_weight].reset_index(drop=True)
    return df
