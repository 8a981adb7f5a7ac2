"""The ROI-major copy of the per-ROI connection table: ROI-filtered counts with a confidence threshold.

The per-ROI connection table (:mod:`~connectome_dask.store.tables`) answers
ROI-filtered counts, but not with a per-synapse confidence threshold: that
needs each synapse's confidence, and the synapse rows are in (pre, post)
order, so even a ten-ROI query decodes the confidence and ROI of every row.
This copy holds, ROI after ROI (codes ascending, rows with no ROI left out):

``pre``, ``post``, ``weight`` (int32)
    The ROI's rows of the per-ROI connection table, in (pre, post) order:
    one run per pair with synapses in that ROI.
``<confidence column>`` (float32, one per confidence column)
    The confidences of those runs' synapse rows, run after run (a run's rows
    in store order): row ``j`` of ROI ``r`` is synapse ``row_starts[r] + j``
    of the copy.
``run_starts``, ``row_starts`` (int64, ``n_codes + 1``)
    Where each ROI code's runs and rows begin; ``run_rows`` (int64) is the
    copy row of the first run of every chunk of the run arrays, so a task
    can start at any run chunk.

A query on ten ROIs then reads those ROIs' runs and confidences only: about
their share of the rows. The copy lives in the table's folder
(``index.zarr/roi_pairs*/by_roi``) and is recorded with the arrays it was
made from (``meta["index"]["roi_major"]["of"]``): a commit that replaces
``roi_post`` rebuilds it with the table, and one that replaces only a
confidence column leaves it unused (the readers fall back to the scan).

Built from (pre, post)-ordered blocks as they stream by: each block's rows
are grouped by ROI (a stable radix sort) and spilled, one piece per ROI
(:func:`spill_grouped`; read back with :func:`~connectome_dask.store.sort.iter_bucket`),
then written ROI after ROI at :meth:`RoiMajorCopy.finish`. Memory: one
block, and one piece while writing. A commit's tasks group and spill their
own partitions (:func:`spill_grouped` into :attr:`RoiMajorCopy.spill`, on the
workers, as they write the store's other arrays) and return only the counts:
the rows never travel to the client.

Imports :mod:`~connectome_dask.store.format`, ``arrays`` and ``sort``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._fsutil import encode_name, rmtree_real, write_marker
from ..errors import StoreError
from .arrays import ChunkStream, _ensure_group
from .format import _create_array
from .sort import iter_bucket, write_piece

__all__ = ["BY_ROI", "RUN_COLUMNS", "COPY_CHUNK_ROWS", "RoiMajorCopy", "group_by_roi", "copy_columns",
           "spill_grouped", "roi_code_range"]

#: the copy's folder inside the per-ROI connection table's
BY_ROI = "by_roi"

#: the run arrays (and dtypes)
RUN_COLUMNS = {"pre": "int32", "post": "int32", "weight": "int32"}

#: chunk length of the copy's arrays, at most: a query decodes at most one chunk past each end of
#: each ROI's range, so small chunks keep that waste small (10 ROIs: under 5 MB of confidences)
COPY_CHUNK_ROWS = 1 << 16


def copy_columns(columns: Mapping[str, Any] | list[str]) -> list[str]:
    """The confidence columns a ROI-major copy holds, of a store's synapse columns (the thresholded ones).

    Parameters
    ----------
    columns
        The store's synapse column names.

    Returns
    -------
    list of str
        ``confidence`` when there is one, else ``confidence_pre`` / ``confidence_post``
        (both thresholded, as :class:`~connectome_dask.compute.pairs.RowFilter` does).

    Examples
    --------
    >>> copy_columns(["pre", "post", "confidence"]), copy_columns(["confidence_pre", "confidence_post"])
    (['confidence'], ['confidence_pre', 'confidence_post'])
    """
    cols = list(columns)
    if "confidence" in cols:
        return ["confidence"]
    return [c for c in ("confidence_pre", "confidence_post") if c in cols]


def roi_code_range(roi: np.ndarray) -> tuple[int, int]:
    """The smallest and largest ROI code of a non-empty block, refusing codes below -1 (none).

    Parameters
    ----------
    roi
        ROI code per row (at least one row).

    Returns
    -------
    tuple of int
        ``(lo, hi)``.

    Raises
    ------
    StoreError
        A ROI code below ``-1``.

    Examples
    --------
    >>> roi_code_range(np.array([3, -1, 2]))
    (-1, 3)
    """
    lo, hi = int(roi.min()), int(roi.max())
    if lo < -1:
        raise StoreError(f"ROI codes must be -1 (none) or more, got {lo}")
    return lo, hi


def group_by_roi(roi: np.ndarray, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The rows with a ROI (code >= 0) grouped by code, row order kept within a code.

    Parameters
    ----------
    roi
        ROI code per row (``-1`` = none).
    columns
        Column name -> one value per row.

    Returns
    -------
    counts : numpy.ndarray
        int64 rows per code ``0 .. roi.max()``.
    grouped : dict of str to numpy.ndarray
        Each column's rows with a ROI, code after code.

    Raises
    ------
    StoreError
        A ROI code below ``-1``.

    Examples
    --------
    >>> c, g = group_by_roi(np.array([1, -1, 0, 1]), {"x": np.array([10, 11, 12, 13])})
    >>> c.tolist(), g["x"].tolist()
    ([1, 2], [12, 10, 13])
    """
    roi = np.asarray(roi)
    hi = roi_code_range(roi)[1] if len(roi) else -1
    if hi < 0:
        return np.zeros(0, np.int64), {c: np.asarray(a)[:0] for c, a in columns.items()}
    # int16 keys: numpy's stable sort is a radix sort then
    key = roi.astype(np.int16, copy=False) if hi < 2**15 else roi
    order = np.argsort(key, kind="stable")
    n_none = int(np.count_nonzero(roi < 0))
    order = order[n_none:]
    counts = np.bincount(roi[order], minlength=hi + 1).astype(np.int64)
    return counts, {c: np.asarray(a)[order] for c, a in columns.items()}


def spill_grouped(spill: Path, number: int, counts: np.ndarray, grouped: Mapping[str, np.ndarray]) -> None:
    """Spill a block grouped by :func:`group_by_roi`: piece ``number`` of each ROI code's bucket that has rows.

    Parameters
    ----------
    spill
        The copy's spill folder (:attr:`RoiMajorCopy.spill`).
    number
        The block's piece number (its order among the blocks; unique).
    counts
        Rows per ROI code (from 0).
    grouped
        ``pre``, ``post`` and the copied confidence columns, code after code.

    Examples
    --------
    >>> c, g = group_by_roi(np.array([1, 0, 1]), {"pre": np.arange(3), "post": np.arange(3)})
    >>> spill_grouped(tmp_path, 4, c, g)
    >>> sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.npy"))
    ['b000000/000004.npy', 'b000001/000004.npy']
    """
    starts = np.concatenate([[0], np.cumsum(counts)])
    for code in np.flatnonzero(counts):
        a, b = int(starts[code]), int(starts[code + 1])
        write_piece(spill, int(code), number, {c: v[a:b] for c, v in grouped.items()})


class RoiMajorCopy:
    """Collect (pre, post)-ordered rows into the ROI-major copy (see the module docstring).

    Parameters
    ----------
    dest
        The copy's folder (must not exist), ``<table folder>/by_roi``.
    conf_cols
        The confidence columns to copy (their dtype is the rows', float32 when there are none).
    chunk_rows
        The store's chunk length (the copy's is at most :data:`COPY_CHUNK_ROWS`).

    Examples
    --------
    >>> c = RoiMajorCopy(tmp_path / "t" / BY_ROI, ["confidence"], 4096)
    >>> c.add(np.array([0, 0, 1]), np.array([1, 1, 0]), np.array([2, 2, -1]),
    ...       {"confidence": np.array([0.5, 0.9, 0.1], np.float32)})
    >>> c.finish()
    {'n_runs': 1, 'n_rows': 2, 'n_codes': 3, 'chunk_rows': 4096}
    """

    def __init__(self, dest: Path, conf_cols: Sequence[str], chunk_rows: int):
        self.dest = Path(dest)
        self.conf: dict[str, np.dtype] = dict.fromkeys(conf_cols, np.dtype("float32"))
        self._typed = False
        self.chunk = int(min(int(chunk_rows), COPY_CHUNK_ROWS))
        #: the spill folder (next to the copy's, removed by :meth:`finish`)
        self.spill = self.dest.parent / f"_spill-{uuid.uuid4().hex[:6]}"
        self.spill.mkdir(parents=True)
        self.pieces: list[list[int]] = []  # per ROI code, its pieces' numbers in block order
        self._next = 0

    def add(self, pre: np.ndarray, post: np.ndarray, roi: np.ndarray, confs: Mapping[str, np.ndarray]) -> None:
        """Add a block of rows following the previous one (in (pre, post) order).

        Parameters
        ----------
        pre, post
            Neuron indices per row.
        roi
            ROI code per row (``-1`` = none: not in the copy).
        confs
            Column name -> values per row, holding every copied confidence column.
        """
        counts, grouped = group_by_roi(roi, {"pre": pre, "post": post, **{c: confs[c] for c in self.conf}})
        self.add_grouped(counts, grouped)

    def add_grouped(self, counts: np.ndarray, grouped: Mapping[str, np.ndarray]) -> None:
        """Add a block already grouped by :func:`group_by_roi`.

        Parameters
        ----------
        counts
            Rows per ROI code (from 0).
        grouped
            ``pre``, ``post`` and the copied confidence columns, code after code.
        """
        number = self._next
        self._next += 1
        spill_grouped(self.spill, number, counts, grouped)
        self.record(number, counts, {c: str(np.asarray(grouped[c]).dtype) for c in self.conf})

    def record(self, number: int, counts: np.ndarray, dtypes: Mapping[str, str]) -> None:
        """Count a block that :func:`spill_grouped` spilled elsewhere (a task), in block order.

        Parameters
        ----------
        number
            Its piece number.
        counts
            Its rows per ROI code.
        dtypes
            Its confidence columns' dtypes (the copy keeps the rows').
        """
        if not self._typed:
            self.conf = {c: np.dtype(dtypes[c]) for c in self.conf}
            self._typed = True
        if len(counts) > len(self.pieces):
            self.pieces += [[] for _ in range(len(counts) - len(self.pieces))]
        for code in np.flatnonzero(counts):
            self.pieces[int(code)].append(int(number))

    def finish(self) -> dict[str, int]:
        """Write the copy, ROI after ROI; the spill is removed. Returns its sizes (for the store's meta)."""
        try:
            return self._write()
        finally:
            rmtree_real(self.spill)

    def _write(self) -> dict[str, int]:
        _ensure_group(self.dest)
        write_marker(self.dest, "roi-major")
        cols: dict[str, str] = {**RUN_COLUMNS, **{c: str(dt) for c, dt in self.conf.items()}}
        streams = {c: ChunkStream(_create_array(self.dest, encode_name(c), 0, dt, self.chunk),
                                  self.dest / encode_name(c)) for c, dt in cols.items()}
        n_codes = len(self.pieces)
        run_starts = np.zeros(n_codes + 1, np.int64)
        row_starts = np.zeros(n_codes + 1, np.int64)
        run_rows: list[int] = []  # copy row of the first run of each run chunk, then the rows in all
        n_runs = n_rows = 0
        for code in range(n_codes):
            run_starts[code], row_starts[code] = n_runs, n_rows
            pending: list[int] | None = None  # the last run seen: it may continue in the next piece
            for piece in iter_bucket(self.spill, code, self.pieces[code]):
                p, q = piece["pre"], piece["post"]
                for c in self.conf:
                    streams[c].append(piece[c])
                brk = np.flatnonzero((p[1:] != p[:-1]) | (q[1:] != q[:-1])) + 1
                first = np.concatenate([[0], brk])
                w = np.diff(np.concatenate([first, [len(p)]]))
                rp, rq = p[first].astype(np.int32), q[first].astype(np.int32)
                if pending is not None and rp[0] == pending[0] and rq[0] == pending[1]:
                    w[0] += pending[2]
                elif pending is not None:
                    n_runs, n_rows = self._emit(streams, run_rows, n_runs, n_rows, *pending)
                if len(rp) > 1:  # the runs before the last are complete
                    n_runs, n_rows = self._emit_many(streams, run_rows, n_runs, n_rows, rp[:-1], rq[:-1], w[:-1])
                pending = [int(rp[-1]), int(rq[-1]), int(w[-1])]
            if pending is not None:
                n_runs, n_rows = self._emit(streams, run_rows, n_runs, n_rows, *pending)
        run_starts[n_codes], row_starts[n_codes] = n_runs, n_rows
        run_rows.append(n_rows)
        for st in streams.values():
            st.close()
        for name, a in (("run_starts", run_starts), ("row_starts", row_starts),
                        ("run_rows", np.asarray(run_rows, np.int64))):
            arr = _create_array(self.dest, name, len(a), "int64", max(1, len(a)))
            arr[:] = a
        return {"n_runs": int(n_runs), "n_rows": int(n_rows), "n_codes": int(n_codes), "chunk_rows": self.chunk}

    def _emit(self, streams, run_rows, n_runs, n_rows, p, q, w):
        return self._emit_many(streams, run_rows, n_runs, n_rows, np.array([p], np.int32), np.array([q], np.int32),
                               np.array([w], np.int64))

    def _emit_many(self, streams, run_rows, n_runs, n_rows, p, q, w):
        if int(w.max()) >= 2**31:
            raise StoreError(f"a pair has {int(w.max()):,} synapse rows in one ROI: more than the ROI-major copy's "
                             "int32 weights hold")
        streams["pre"].append(p)
        streams["post"].append(q)
        streams["weight"].append(w.astype(np.int32))
        # the copy row of every run that starts a run chunk
        first = -(-n_runs // self.chunk) * self.chunk  # the first chunk start at or after n_runs
        if first < n_runs + len(w):
            cs = n_rows + np.concatenate([[0], np.cumsum(w)[:-1]])
            run_rows.extend(int(x) for x in cs[first - n_runs :: self.chunk])
        return n_runs + len(w), n_rows + int(w.sum())
