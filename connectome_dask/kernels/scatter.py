"""Small numba kernels shared by the store layer.

numba is used where numpy has no single vectorised equivalent (a stable
counting-sort scatter with a running cursor per key).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["gather_fields", "scatter_rows", "scatter_words", "stable_pair_order"]


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


@numba.njit(cache=True, nogil=True)
def scatter_words(dst: np.ndarray, first: int, src: np.ndarray, dest: np.ndarray) -> None:
    """``dst[dest[i], first:first + k] = src[i, :]`` for each ``i`` (``k = src.shape[1]``), in place.

    Packs one column into records while moving its rows: ``dst`` is the
    records viewed as rows of words of the column's size, ``first`` the
    column's word within a record, ``src`` the column (or a slice of it)
    viewed as ``(n, 1)`` words and ``dest`` each row's record. The column
    is read in order; the writes go to as many places as the rows' records
    are spread over (a bucket split: one per bucket).

    Parameters
    ----------
    dst
        2-D array of words, one row per output record (written in place).
    first
        First word of the column in a record.
    src
        2-D array of words, one row per input row.
    dest
        Output record of each input row.

    Examples
    --------
    >>> dst = np.zeros((2, 2), np.uint32)
    >>> scatter_words(dst, 1, np.array([[7], [9]], np.uint32), np.array([1, 0]))
    >>> dst.tolist()
    [[0, 9], [0, 7]]
    """
    k = src.shape[1]
    for i in range(dest.shape[0]):
        r = dest[i]
        for j in range(k):
            dst[r, first + j] = src[i, j]


@numba.njit(cache=True, nogil=True)
def gather_fields(order: np.ndarray, lo: int, hi: int,
                  s8: np.ndarray, f8: np.ndarray, o8: np.ndarray,
                  s4: np.ndarray, f4: np.ndarray, o4: np.ndarray,
                  s2: np.ndarray, f2: np.ndarray, o2: np.ndarray,
                  s1: np.ndarray, f1: np.ndarray, o1: np.ndarray) -> None:
    """``o[k, i] = s[order[i], f[k]]`` for ``i`` in ``[lo, hi)``, for the records' 8-, 4-, 2- and 1-byte fields.

    Moves records into sorted *columns* in one pass: each record is read
    once, at random (its fields are then in cache), and every field is
    written to its own output row, in order. ``s<n>`` are the same records
    viewed as rows of ``n``-byte words, ``f<n>`` the word of each field of
    that size and ``o<n>`` one output row per such field (empty arrays for
    a size no field has).

    Parameters
    ----------
    order
        Record of each output position.
    lo, hi
        The output positions filled by this call (two threads take halves).
    s8, s4, s2, s1
        2-D word views of the records (one row per record).
    f8, f4, f2, f1
        int64 word index of each field within a record row.
    o8, o4, o2, o1
        2-D outputs, one row per field (written in place).

    Examples
    --------
    >>> rec = np.array([[1, 10], [2, 20], [3, 30]], np.uint32)  # two 4-byte fields
    >>> out = np.zeros((1, 3), np.uint32)
    >>> none8, none2, none1 = (np.zeros((0, 1), t) for t in (np.uint64, np.uint16, np.uint8))
    >>> idx = np.zeros(0, np.int64)
    >>> gather_fields(np.array([2, 0, 1]), 0, 3, none8, idx, none8, rec, np.array([1]), out,
    ...               none2, idx, none2, none1, idx, none1)
    >>> out.tolist()
    [[30, 10, 20]]
    """
    # a tile of output rows at a time, field after field: each field's writes are one run of its column
    # (a record's fields written to all columns at once kept 11 store streams open per row); the tile's
    # records, read at random once for the first field, are in cache for the others
    tile = 2048
    for t0 in range(lo, hi, tile):
        t1 = min(t0 + tile, hi)
        _gather_tile(order, t0, t1, s8, f8, o8)
        _gather_tile(order, t0, t1, s4, f4, o4)
        _gather_tile(order, t0, t1, s2, f2, o2)
        _gather_tile(order, t0, t1, s1, f1, o1)


@numba.njit(cache=True, nogil=True)
def _gather_tile(order: np.ndarray, t0: int, t1: int, s: np.ndarray, f: np.ndarray, o: np.ndarray) -> None:
    """``o[k, i] = s[order[i], f[k]]`` for the output rows ``[t0, t1)``, field after field."""
    for k in range(f.shape[0]):
        w = f[k]
        for i in range(t0, t1):
            o[k, i] = s[order[i], w]
