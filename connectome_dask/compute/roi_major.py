"""The ``roi_major`` read path: ROI-filtered pair counts (above a confidence), from the ROI-major copy.

The per-ROI connection table's ROI-major copy
(:mod:`connectome_dask.store.roi_major`) holds, ROI after ROI, the table's
runs (one per pair with synapses in that ROI) and the confidences of their
synapse rows. A ROI-filtered count with a confidence threshold reads only the
selected ROIs' runs and confidences: about their share of the rows, where the
``pairs_scan`` path decodes ``roi_post`` and the confidences of every row.
Without a threshold only the runs are read (a run's ``weight`` is its count):
for a few ROIs a fraction of the per-ROI table, which the ``roi_table`` path
reads whole (:func:`roi_major_share` tells the plan how much).

Tasks take whole run ranges of the selected ROIs (split at the copy's run
chunks, about two tasks per core); each counts its runs' kept rows (the
rows' test as a bit set, :func:`~connectome_dask.kernels.pairs.keep_words`,
and :func:`~connectome_dask.kernels.pairs.pair_filter_counts`). A pair with
synapses in several selected ROIs has one count per ROI: the tree sums them
per pair (one sort of packed ``(pre, post, count)`` keys), then
``min_weight`` judges the pair's total, as on every other path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..kernels import pairs as K

if TYPE_CHECKING:
    from ..store import Connectome
    from .pairs import RowFilter

__all__ = ["roi_major_part", "roi_major_pieces", "roi_major_pairs", "roi_major_share", "roi_major_tasks"]


def _read_small(path: str, token: str) -> np.ndarray:
    from ..store import read_rows

    return read_rows(path, token, 0, 1 << 62)


def roi_major_share(conn: Connectome, roi_ok: np.ndarray) -> float | None:
    """The share of the ROI-major copy's runs that lie in the selected ROIs (for the plan).

    Parameters
    ----------
    conn
        The connectome.
    roi_ok
        bool per ROI code + 1 (slot 0: no ROI), as :class:`~connectome_dask.compute.pairs.RowFilter` holds.

    Returns
    -------
    float or None
        Selected runs / all runs (0 for an empty copy), or ``None`` when the
        store has no current copy.

    Examples
    --------
    >>> every = np.ones(len(conn.roi_names) + 1, dtype=bool)
    >>> roi_major_share(conn, every)
    1.0
    """
    paths = conn.roi_major_paths()
    if paths is None:
        return None
    run_starts = _read_small(paths["run_starts"], conn.token)
    total = int(run_starts[-1]) if len(run_starts) else 0
    if total == 0:
        return 0.0
    runs = np.diff(run_starts)
    ok = np.asarray(roi_ok, dtype=bool)[1 : 1 + len(runs)]
    return float(runs[: len(ok)][ok].sum()) / total


def roi_major_pieces(conn: Connectome, paths: dict[str, str], roi_codes: np.ndarray,
                     n_tasks: int) -> list[list[tuple[int, int, int]]]:
    """The tasks' run ranges ``(run_start, run_stop, row_start)`` over the selected ROIs' runs.

    Each ROI's runs are split at the copy's run-chunk boundaries (where
    ``run_rows`` gives the first run's copy row) into pieces of about
    ``total / n_tasks`` runs; consecutive pieces are given to one task until
    it has its share.

    Parameters
    ----------
    conn
        The connectome (for its token).
    paths
        :meth:`~connectome_dask.store.Connectome.roi_major_paths`.
    roi_codes
        The selected ROI codes.
    n_tasks
        About how many tasks.

    Returns
    -------
    list of list of tuple
        One list of pieces per task (empty list: nothing selected).
    """
    run_starts = _read_small(paths["run_starts"], conn.token)
    row_starts = _read_small(paths["row_starts"], conn.token)
    run_rows = _read_small(paths["run_rows"], conn.token)
    chunk = int(conn.meta["index"]["roi_major"]["chunk_rows"])
    n_codes = len(run_starts) - 1
    codes = sorted({int(c) for c in np.asarray(roi_codes).tolist() if 0 <= int(c) < n_codes})
    spans = [(int(run_starts[c]), int(run_starts[c + 1]), int(row_starts[c])) for c in codes]
    spans = [s for s in spans if s[1] > s[0]]
    total = sum(b - a for a, b, _ in spans)
    if total == 0:
        return []
    share = max(chunk, -(-total // max(int(n_tasks), 1)))
    tasks: list[list[tuple[int, int, int]]] = [[]]
    held = 0
    for a, b, row in spans:
        s = a
        while s < b:
            # the piece ends at a run-chunk boundary (or the ROI's end), about the task's share left
            want = s + max(1, share - held)
            e = b if want >= b else min(b, max(-(-want // chunk) * chunk, s + 1))
            tasks[-1].append((s, e, row if s == a else int(run_rows[s // chunk])))
            held += e - s
            s = e
            if held >= share:
                tasks.append([])
                held = 0
    return [t for t in tasks if t]


def roi_major_part(paths: dict[str, str], token: str, pieces: list[tuple[int, int, int]], filt: RowFilter) -> tuple:
    """One task: ``(pre, post, count)`` of its runs with at least one kept row (one entry per run).

    Without a confidence filter a run's count is its ``weight`` (its rows
    are not read); the runs of neurons not counted on a side are left out.

    Parameters
    ----------
    paths
        :meth:`~connectome_dask.store.Connectome.roi_major_paths` (with the
        filter's confidence columns).
    token
        The store's token.
    pieces
        Run ranges ``(run_start, run_stop, row_start)`` of :func:`roi_major_pieces`.
    filt
        The row filter.

    Returns
    -------
    tuple of numpy.ndarray
        ``(pre int32, post int32, count int64)``, in the pieces' run order
        (a pair in several selected ROIs appears once per ROI).

    Examples
    --------
    >>> from connectome_dask.compute.pairs import RowFilter
    >>> filt = RowFilter(conn, None, None, [0], None)
    >>> paths = conn.roi_major_paths()
    >>> pre, post, cnt = roi_major_part(paths, conn.token, roi_major_pieces(conn, paths, [0], 1)[0], filt)
    >>> len(pre) == len(cnt) and bool((cnt > 0).all())
    True
    """
    from ..store import read_rows

    out: list[tuple[np.ndarray, ...]] = []
    conf = bool(filt.conf_cols)
    two = len(filt.conf_cols) > 1
    dummy_i = np.zeros(1, dtype=np.int16)
    select = not (bool(filt.pre_ok.all()) and bool(filt.post_ok.all()))  # neuron subsets on a side
    for a, b, row in pieces:
        runs = {c: read_rows(paths[c], token, a, b) for c in ("pre", "post", "weight")}
        if not conf:  # a run's count is its weight: the rows are not read
            if not select:
                out.append((runs["pre"], runs["post"], runs["weight"].astype(np.int64)))
                continue
            keep = np.flatnonzero(filt.pre_ok[runs["pre"]] & filt.post_ok[runs["post"]])
            out.append((runs["pre"][keep], runs["post"][keep], runs["weight"][keep].astype(np.int64)))
            continue
        n = int(runs["weight"].sum())
        c1 = read_rows(paths[filt.conf_cols[0]], token, row, row + n)
        c2 = read_rows(paths[filt.conf_cols[1]], token, row, row + n) if two else c1[:1]
        words = K.keep_words(dummy_i, filt.roi_ok, c1, c2, filt.thr, False, True, two, n)
        idx, cnt = K.pair_filter_counts(runs["pre"], runs["post"], runs["weight"], filt.pre_ok, filt.post_ok,
                                        words, 1)
        out.append((runs["pre"][idx], runs["post"][idx], cnt))
    if not out:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64)
    return tuple(np.concatenate([o[i] for o in out]) for i in range(3))


def _sum_per_pair(pre: np.ndarray, post: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(pre, post, count)`` summed per pair, sorted by (pre, post).

    Put in (pre, post) order by one ``np.sort`` of packed ``(pre, post,
    count)`` int64 keys when they fit (numpy's sort of int64 is vectorized:
    2.7 ms for 600 k keys, where a stable argsort took 35 ms), else a stable
    lexsort; then summed by the run-length kernel the per-ROI table's path uses.
    """
    if len(pre) == 0:
        return pre.astype(np.int32), post.astype(np.int32), cnt.astype(np.int64)
    nb = max(int(max(int(pre.max()), int(post.max()))).bit_length(), 1)
    cb = max(int(cnt.max()).bit_length(), 1)
    if 2 * nb + cb <= 63:
        key = (pre.astype(np.int64) << (nb + cb)) | (post.astype(np.int64) << cb) | cnt.astype(np.int64)
        key.sort()
        pre, post = (key >> (nb + cb)).astype(np.int32), ((key >> cb) & ((1 << nb) - 1)).astype(np.int32)
        cnt = key & ((1 << cb) - 1)
    else:
        order = np.lexsort((post, pre))
        pre, post, cnt = pre[order], post[order], cnt[order].astype(np.int64)
    return K.pair_weight_runs(pre, post, cnt, np.ones(len(pre), dtype=bool))


def roi_major_pairs(conn: Connectome, filt: RowFilter, min_weight: int,
                    progress) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair counts over the filter's ROIs (above its confidence), from the ROI-major copy.

    Parameters
    ----------
    conn
        The connectome (with a current ROI-major copy of the filter's confidence columns).
    filt
        The row filter (neurons, ROI codes, confidence).
    min_weight
        Pairs with fewer kept synapses (over those ROIs) are dropped.
    progress
        Show a progress bar.

    Returns
    -------
    tuple of numpy.ndarray
        ``(pre int32, post int32, weight int64)`` sorted by (pre, post).

    Raises
    ------
    ValueError
        The store has no current ROI-major copy of the filter's confidence columns.
    """
    from dask.delayed import delayed

    from .._compute import compute

    paths, tasks = roi_major_tasks(conn, filt)
    if not tasks:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64)
    dfilt = delayed(filt, pure=True)
    part = delayed(roi_major_part, pure=True)
    res = compute(*[part(paths, conn.token, t, dfilt) for t in tasks], progress=progress)
    pre, post, cnt = _sum_per_pair(*(np.concatenate([r[i] for r in res]) for i in range(3)))
    if min_weight > 1:
        keep = cnt >= min_weight
        pre, post, cnt = pre[keep], post[keep], cnt[keep]
    return pre, post, cnt


def roi_major_tasks(conn: Connectome, filt: RowFilter) -> tuple[dict[str, str], list[list[tuple[int, int, int]]]]:
    """The copy's paths (with the filter's confidence columns) and the tasks' run ranges over its ROIs.

    About two tasks per core (:func:`roi_major_pieces`).

    Parameters
    ----------
    conn
        The connectome.
    filt
        The row filter (its ROI codes and confidence columns).

    Returns
    -------
    tuple
        ``(paths, tasks)``; ``tasks`` is empty when the selected ROIs hold no runs.

    Raises
    ------
    ValueError
        The store has no current ROI-major copy of the filter's confidence columns.

    Examples
    --------
    >>> from connectome_dask.compute.pairs import RowFilter
    >>> paths, tasks = roi_major_tasks(conn, RowFilter(conn, None, None, [0], None))
    >>> sorted(paths)[:3], len(tasks) >= 1
    (['post', 'pre', 'row_starts'], True)
    """
    from dask.system import CPU_COUNT

    paths = conn.roi_major_paths(filt.conf_cols)
    if paths is None:
        raise ValueError(f"{conn.path} has no current ROI-major copy of {filt.conf_cols}")
    codes = np.flatnonzero(filt.roi_ok[1:])  # roi_ok is indexed by code + 1 (slot 0: no ROI, not in the copy)
    return paths, roi_major_pieces(conn, paths, codes, 2 * max(int(CPU_COUNT), 1))
