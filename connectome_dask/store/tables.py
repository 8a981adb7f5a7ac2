"""Index tables written from the (pre, post)-sorted rows: chunked appends and the per-ROI connection table.

:class:`_ChunkedAppender` appends rows to 1-D Zarr arrays in whole chunks
(the writer's synapse arrays and both connection tables use it).
:class:`_RoiPairTable` run-length encodes ``(pre, post)``-sorted blocks into
the **per-ROI connection table** as they stream by: one row per
``(pre, post, roi)`` with its synapse count (``weight``), sorted by
``(pre, post, roi)``, keyed on the postsynaptic site's ROI (``roi_post``,
the package's one connection-ROI rule, neuPrint's per-connection
``roiInfo``). :func:`rebuild_roi_pair_table` writes it again from a store's
rows when a commit replaces ``roi_post`` (parallel over partitions that
start at presynaptic-neuron boundaries, appended in row order, bounded
memory).

Imports :mod:`~connectome_dask.store.format` and
:mod:`~connectome_dask.store.arrays` (and lazily the kernels and
:mod:`connectome_dask._compute`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .._fsutil import encode_name, write_marker
from ..errors import StoreError
from .arrays import ChunkStream, _ensure_group, _read_range
from .format import ROI_PAIR_COLUMNS, ROI_PAIRS_COLUMN, _create_array
from .roi_major import BY_ROI, RoiMajorCopy, group_by_roi, roi_code_range, spill_grouped

__all__ = ["roi_runs", "rebuild_roi_pair_table"]


class _ChunkedAppender:
    """Append rows to 1-D Zarr arrays, writing only whole chunks (plus the final tail).

    Arrays start empty and grow with ``resize`` (a metadata-only change), so a
    stream of unknown length is written once, chunk-aligned, with at most one
    chunk per column buffered in memory: one :class:`~connectome_dask.store.arrays.ChunkStream`
    per column.
    """

    def __init__(self, group_path: Path, columns: Mapping[str, str], chunk_rows: int):
        _ensure_group(group_path)
        self.columns = dict(columns)
        self.streams = {c: ChunkStream(_create_array(group_path, encode_name(c), 0, dt, int(chunk_rows)),
                                       group_path / encode_name(c))
                        for c, dt in self.columns.items()}
        self.rows = 0

    def write(self, block: Mapping[str, np.ndarray]) -> None:
        n = len(block["pre"])
        if n == 0:
            return
        for c, st in self.streams.items():
            st.append(block[c])
        self.rows += n

    def finish(self) -> int:
        for st in self.streams.values():
            st.close()
        return self.rows


def roi_runs(pre: np.ndarray, post: np.ndarray, roi: np.ndarray,
             weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Synapse counts per distinct ``(pre, post, roi)`` of a ``(pre, post)``-sorted block.

    Each row counts 1, or its ``weight`` (a connection-level store's rows).

    Parameters
    ----------
    pre, post
        Neuron indices, sorted by ``(pre, post)``.
    roi
        ROI code of each row (``-1`` = none).
    weight
        Synapses each row stands for (``None``: one each).

    Returns
    -------
    tuple of numpy.ndarray
        ``(pre int32, post int32, roi int16, weight int64)`` sorted by ``(pre, post, roi)``.

    Raises
    ------
    StoreError
        A ROI code below ``-1``.

    Examples
    --------
    >>> [a.tolist() for a in roi_runs(np.array([0, 0, 0, 1]), np.array([1, 1, 1, 0]), np.array([3, -1, 3, 2]))]
    [[0, 0, 1], [1, 1, 0], [-1, 3, 2], [1, 2, 1]]
    """
    from ..kernels.pairs import pair_roi_runs, pair_roi_weight_runs

    n = len(pre)
    if n == 0:
        return (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0, np.int64))
    _, hi = roi_code_range(roi)
    keep = np.ones(n, dtype=bool)
    if weight is None:  # one synapse per row: no weight array
        return pair_roi_runs(pre, post, roi, keep, hi + 2)
    return pair_roi_weight_runs(pre, post, roi, np.asarray(weight).astype(np.int64, copy=False), keep, hi + 2)


def _merge_same_pair(r1: np.ndarray, w1: np.ndarray, r2: np.ndarray, w2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROI rows of one pair seen in two pieces, summed per ROI (sorted by ROI)."""
    r = np.concatenate([r1, r2])
    w = np.concatenate([w1, w2])
    order = np.argsort(r, kind="stable")
    r, w = r[order], w[order]
    s = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    return r[s], np.add.reduceat(w, s)


class _RoiPairTable:
    """Run-length encode (pre, post)-sorted blocks into the per-ROI connection table as they stream by.

    Bounded memory: besides one block's triples, only the ROI rows of the
    block's last pair are held (the pair may continue in the next block).
    With ``conf_cols`` (confidence columns) the blocks' rows also
    go to the table's ROI-major copy (:mod:`~connectome_dask.store.roi_major`);
    its sizes are :attr:`copy_meta` after :meth:`finish`.
    """

    def __init__(self, group_path: Path, chunk_rows: int, conf_cols: Sequence[str] = ()):
        group_path.mkdir(parents=True, exist_ok=True)
        write_marker(group_path, "roi-pairs")
        self.path = group_path
        self.out = _ChunkedAppender(group_path, ROI_PAIR_COLUMNS, chunk_rows)
        self.pending: tuple[np.ndarray, ...] | None = None
        self.copy = RoiMajorCopy(group_path / BY_ROI, conf_cols, chunk_rows) if conf_cols else None
        self.copy_meta: dict[str, int] | None = None

    def _emit(self, p, q, r, w) -> None:
        self.out.write({"pre": p, "post": q, "roi": r, "weight": w})

    def write_runs(self, p: np.ndarray, q: np.ndarray, r: np.ndarray, w: np.ndarray) -> None:
        """Append triples already summed per (pre, post, roi) of one block (in table order)."""
        if len(p) == 0:
            return
        if self.pending is not None:
            pp, pq, pr, pw = self.pending
            if p[0] == pp[0] and q[0] == pq[0]:  # the pending pair continues here
                k = int(np.searchsorted(p, p[0], "right"))
                k = int(np.searchsorted(q[:k], q[0], "right"))
                mr, mw = _merge_same_pair(pr, pw, r[:k], w[:k])
                p = np.concatenate([np.full(len(mr), p[0], np.int32), p[k:]])
                q = np.concatenate([np.full(len(mr), q[0], np.int32), q[k:]])
                r, w = np.concatenate([mr, r[k:]]), np.concatenate([mw, w[k:]])
            else:
                self._emit(pp, pq, pr, pw)
            self.pending = None
        # the last pair's rows may continue in the next block
        j = int(np.searchsorted(p, p[-1], "left"))
        j += int(np.searchsorted(q[j:], q[-1], "left"))
        self.pending = (p[j:].copy(), q[j:].copy(), r[j:].copy(), w[j:].copy())
        self._emit(p[:j], q[:j], r[:j], w[:j])

    #: rows counted per kernel call: bounds the transient arrays (~19 B per row) whatever the block size
    SLICE_ROWS = 1 << 22

    def write(self, pre: np.ndarray, post: np.ndarray, roi: np.ndarray, weight: np.ndarray | None = None,
              confs: Mapping[str, np.ndarray] | None = None) -> None:
        """Append a block of (pre, post)-sorted rows (following the previous block), with their confidences
        when the table keeps a ROI-major copy."""
        for a in range(0, len(pre), self.SLICE_ROWS):
            b = a + self.SLICE_ROWS
            self.write_runs(*roi_runs(pre[a:b], post[a:b], roi[a:b], None if weight is None else weight[a:b]))
        if self.copy is not None:
            if confs is None:
                raise StoreError("internal error: the ROI-major copy needs the rows' confidences")
            self.copy.add(pre, post, roi, confs)

    def finish(self) -> int:
        if self.pending is not None:
            self._emit(*self.pending)
            self.pending = None
        n = self.out.finish()
        if self.copy is not None:
            self.copy_meta = self.copy.finish()
        return n


def _roi_part(paths: Mapping[str, str], token: str, start: int, stop: int, conf_cols: tuple[str, ...] = (),
              spill: str | None = None, number: int = 0) -> tuple:
    """One partition's runs; with ``conf_cols`` its rows grouped by ROI and spilled for the ROI-major copy
    (piece ``number``, here on the worker: only the counts go back)."""
    cols = {c: _read_range(p, token, start, stop) for c, p in paths.items()}
    runs = roi_runs(cols["pre"], cols["post"], cols[ROI_PAIRS_COLUMN], cols.get("weight"))
    if not conf_cols:
        return runs, None
    keep = {"pre": cols["pre"], "post": cols["post"], **{c: cols[c] for c in conf_cols}}
    counts, grouped = group_by_roi(cols[ROI_PAIRS_COLUMN], keep)
    assert spill is not None
    spill_grouped(Path(spill), number, counts, grouped)
    return runs, (number, counts, {c: str(grouped[c].dtype) for c in conf_cols})


def _batch_size() -> int:
    from .._compute import active_client

    client = active_client()
    if client is not None:
        threads = sum(client.nthreads().values()) or 1
    else:
        threads = os.cpu_count() or 1
    return max(2, 2 * threads)


def rebuild_roi_pair_table(
    paths: Mapping[str, str],
    token: str,
    partitions: list[tuple[int, int]],
    dest: Path,
    chunk_rows: int,
    conf_cols: Sequence[str] = (),
) -> tuple[int, dict[str, int] | None]:
    """Write the per-ROI connection table of a store's rows into ``dest`` (a new group).

    One task per partition (``partitions`` must start at presynaptic-neuron
    boundaries, :meth:`~connectome_dask.store.Connectome.partitions` with
    ``align_pre=True``, so no pair is split) counts its rows per
    ``(pre, post, roi)``; the results are appended in row order, a few
    partitions at a time (memory: about two partitions' results per thread).

    Parameters
    ----------
    paths
        Array paths of ``pre``, ``post``, ``roi_post`` (and ``weight`` on a
        connection-level store, and those of ``conf_cols``),
        read with ``token``.
    token
        The store generation the arrays are read for (:attr:`Connectome.token`).
    partitions
        Row ranges, in row order, starting at presynaptic-neuron boundaries.
    dest
        The table's new directory (must not exist).
    chunk_rows
        Chunk length of the table's arrays.
    conf_cols
        Confidence columns: also write the table's ROI-major copy
        (:mod:`~connectome_dask.store.roi_major`) of them.

    Returns
    -------
    rows : int
        Rows of the table.
    copy : dict or None
        The ROI-major copy's sizes (``None`` without ``conf_cols``).

    Raises
    ------
    StoreError
        A chunk of an input array is missing or damaged, or a ROI code is below ``-1``.

    Examples
    --------
    >>> cols = ("pre", "post", "roi_post")
    >>> paths = {c: str(conn._array_path(c)) for c in cols}
    >>> n, _ = rebuild_roi_pair_table(paths, conn.token, conn.partitions(align_pre=True), tmp_path / "t", 4096)
    >>> n == conn.meta["index"]["n_roi_pairs"]
    True
    """
    from dask.delayed import delayed

    from .._compute import compute

    table = _RoiPairTable(Path(dest), chunk_rows, conf_cols)
    conf_cols = tuple(conf_cols)
    spill = str(table.copy.spill) if table.copy is not None else None
    task = delayed(_roi_part, pure=True)
    step = _batch_size()
    for i in range(0, len(partitions), step):
        res = compute(*[task(dict(paths), token, s, e, conf_cols, spill, i + k)
                        for k, (s, e) in enumerate(partitions[i : i + step])], progress=False)
        for runs, spilled in res:
            table.write_runs(*runs)
            if table.copy is not None:
                table.copy.record(*spilled)
        del res
    return table.finish(), table.copy_meta
