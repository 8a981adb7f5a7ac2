"""Small numba kernels shared by the store layer.

numba is used where numpy has no single vectorised equivalent (a stable
counting-sort scatter with a running cursor per key).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["scatter_rows", "stable_pair_order"]


@numba.njit(cache=True, nogil=True)
def scatter_rows(keys: np.ndarray, rows: np.ndarray, cursor: np.ndarray, out: np.ndarray) -> None:
    """``out[cursor[k]] = row; cursor[k] += 1`` for each (k, row) in order (stable).

    Parameters
    ----------
    keys
        Key of each row (indices into ``cursor``).
    rows
        Value written for each row.
    cursor
        Next output position per key, advanced in place.
    out
        Output array, written in place.
    """
    for i in range(keys.shape[0]):
        k = keys[i]
        out[cursor[k]] = rows[i]
        cursor[k] += 1


@numba.njit(cache=True, nogil=True)
def stable_pair_order(pre: np.ndarray, post: np.ndarray, n_post: int) -> np.ndarray:
    """The stable ``(pre, post)`` order of rows: a two-pass LSD counting sort.

    Rows are put in stable post order, then that sequence in stable pre
    order, so equal pairs keep their input order (the order of
    ``np.lexsort((post, pre))``). Each pass counts keys, turns the counts into
    start positions and scatters row numbers: two passes over the rows and
    one count array each (``n_post`` entries, then the span of ``pre``),
    instead of a comparison sort of packed keys.

    Parameters
    ----------
    pre, post
        Non-negative integer keys, one per row; ``post < n_post``.
    n_post
        Bound of ``post``.

    Returns
    -------
    numpy.ndarray
        int64 row numbers in ``(pre, post)`` order.

    Examples
    --------
    >>> stable_pair_order(np.array([1, 0, 1, 0]), np.array([0, 5, 0, 2]), 6).tolist()
    [3, 1, 0, 2]
    """
    n = pre.shape[0]
    out = np.empty(n, dtype=np.int64)
    if n == 0:
        return out
    lo, hi = pre[0], pre[0]
    for i in range(n):
        v = pre[i]
        lo = min(lo, v)
        hi = max(hi, v)
    by_post = np.empty(n, dtype=np.int64)
    start = np.zeros(n_post + 1, dtype=np.int64)
    for i in range(n):
        start[post[i] + 1] += 1
    for k in range(n_post):
        start[k + 1] += start[k]
    for i in range(n):
        k = post[i]
        by_post[start[k]] = i
        start[k] += 1
    span = hi - lo + 1
    start = np.zeros(span + 1, dtype=np.int64)
    for i in range(n):
        start[pre[i] - lo + 1] += 1
    for k in range(span):
        start[k + 1] += start[k]
    for j in range(n):
        i = by_post[j]
        k = pre[i] - lo
        out[start[k]] = i
        start[k] += 1
    return out
