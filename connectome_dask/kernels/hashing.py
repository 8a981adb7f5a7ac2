"""numba kernels for counting raw synapse rows whose body IDs are not yet dense indices.

A downloaded release names neurons by 64-bit body IDs in random row order.
Counting it without a store means looking every row's two IDs up in the
neuron table: an open-addressing hash table (linear probing, a
multiply-xorshift mix of the ID) built once from the table's IDs and probed
inside the same loop that applies the row filters. Written by hand because
neither numpy nor pandas fuses "look up, filter, emit a key" over a batch:
``pandas.Index.get_indexer`` on 2 x 1 M IDs costs ~40 ms and two full-size
temporaries per batch, the fused loop ~8 ms and none.

Nothing here imports from the rest of the package.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["add_weighted_keys", "build_id_table", "id_slots", "id_slots_into", "insert_ids",
           "scan_group_counts", "scan_group_keys", "set_sides"]

_EMPTY = -1  # body IDs are validated non-negative before they reach a table

_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(v, mask):
    """Start slot of ID ``v`` (murmur3's 64-bit finaliser: consecutive IDs spread evenly)."""
    x = np.uint64(v)
    x ^= x >> _S33
    x *= _MIX1
    x ^= x >> _S33
    x *= _MIX2
    x ^= x >> _S33
    return np.int64(x & mask)


@numba.njit(cache=True)
def build_id_table(ids, min_cap=0):
    """Open-addressing table of unique non-negative int64 IDs.

    Parameters
    ----------
    ids
        Unique int64 IDs (>= 0).
    min_cap
        Slots to allocate at least (room for :func:`insert_ids` to add IDs
        without a rebuild); rounded up to a power of two.

    Returns
    -------
    numpy.ndarray
        int64 ``(cap, 4)``, ``cap`` a power of two at least twice
        ``len(ids)``: per slot the ID (``-1`` = empty), two values the caller
        fills (the ID's group on the pre and the post side, ``-1`` = left
        out) and the ID's position in ``ids``. One slot is one 32-byte row, so
        a probe that finds its ID reads one cache line.

    Examples
    --------
    >>> tab = build_id_table(np.array([7, 3, 2**62], np.int64))
    >>> tab.shape, sorted(tab[tab[:, 0] >= 0, 3].tolist())
    ((8, 4), [0, 1, 2])
    """
    cap = 8
    while cap < 2 * len(ids) or cap < min_cap:
        cap *= 2
    tab = np.full((cap, 4), _EMPTY, dtype=np.int64)
    insert_ids(tab, ids, 0)
    return tab


@numba.njit(cache=True, nogil=True)
def insert_ids(tab, ids, first):
    """Add new IDs to a table in place, ``ids[i]`` at position ``first + i``.

    The caller keeps the table at most half full (:func:`build_id_table`'s
    ``min_cap``) and adds only IDs it does not hold.

    Parameters
    ----------
    tab
        The table of :func:`build_id_table`.
    ids
        Unique int64 IDs (>= 0) not yet in the table.
    first
        Position of ``ids[0]`` in the table's ID list.

    Examples
    --------
    >>> tab = build_id_table(np.array([7], np.int64), 16)
    >>> insert_ids(tab, np.array([3, 9], np.int64), 1)
    >>> id_slots(tab, np.array([9, 7, 3, 4], np.int64)).tolist()
    [2, 0, 1, -1]
    """
    cap = tab.shape[0]
    mask = np.uint64(cap - 1)
    for i in range(len(ids)):
        h = _slot(ids[i], mask)
        while tab[h, 0] != _EMPTY:
            h = (h + 1) & (cap - 1)
        tab[h, 0] = ids[i]
        tab[h, 3] = first + i


@numba.njit(cache=True, nogil=True)
def id_slots(tab, ids):
    """Positions of ``ids`` in the table's ID list (``-1`` = not in it).

    Parameters
    ----------
    tab
        The table of :func:`build_id_table`.
    ids
        int64 IDs to look up.

    Returns
    -------
    numpy.ndarray
        int64 position in the table's ID list per ID.

    Examples
    --------
    >>> tab = build_id_table(np.array([7, 3], np.int64))
    >>> id_slots(tab, np.array([3, 5, 7], np.int64)).tolist()
    [1, -1, 0]
    """
    out = np.empty(len(ids), dtype=np.int64)
    id_slots_into(tab, ids, out)
    return out


@numba.njit(cache=True, nogil=True)
def id_slots_into(tab, ids, out):
    """:func:`id_slots` written into ``out`` (any integer dtype); returns how many IDs are not in the table.

    Parameters
    ----------
    tab
        The table of :func:`build_id_table`.
    ids
        int64 IDs to look up.
    out
        One position per ID (``-1`` = not in the table), written in place:
        two threads can fill two halves of one array, and an int32 result
        needs no conversion pass.

    Returns
    -------
    int
        The number of IDs not found.

    Examples
    --------
    >>> tab = build_id_table(np.array([7, 3], np.int64))
    >>> out = np.empty(3, np.int32)
    >>> id_slots_into(tab, np.array([3, 5, 7], np.int64), out), out.tolist()
    (1, [1, -1, 0])
    """
    cap = tab.shape[0]
    mask = np.uint64(cap - 1)
    missing = 0
    for i in range(len(ids)):
        v = ids[i]
        h = _slot(v, mask)
        r = -1
        while tab[h, 0] != _EMPTY:
            if tab[h, 0] == v:
                r = tab[h, 3]
                break
            h = (h + 1) & (cap - 1)
        if r < 0:
            missing += 1
        out[i] = r
    return missing


@numba.njit(cache=True, nogil=True)
def set_sides(tab, pre_vals, post_vals):
    """Fill the table's two value columns from each ID's position (``-1`` in empty slots).

    One pass over the slots (numpy's gathers took ~12 ms and four
    temporaries for a whole brain's table).

    Parameters
    ----------
    tab
        The table of :func:`build_id_table`, updated in place.
    pre_vals, post_vals
        int64 value per position in the table's ID list, for column 1 and 2.

    Examples
    --------
    >>> tab = build_id_table(np.array([7, 3], np.int64))
    >>> set_sides(tab, np.array([10, 11], np.int64), np.array([-1, 5], np.int64))
    >>> sorted(map(tuple, tab[tab[:, 0] >= 0].tolist()))
    [(3, 11, 5, 1), (7, 10, -1, 0)]
    """
    for h in range(tab.shape[0]):
        p = tab[h, 3]
        if p >= 0:
            tab[h, 1] = pre_vals[p]
            tab[h, 2] = post_vals[p]
        else:
            tab[h, 1] = -1
            tab[h, 2] = -1


#: rows of one block of the scan kernels: each pass over a block (filter, pre lookups, post lookups,
#: keys) is a loop of independent steps whose table reads overlap in the CPU; 3 x 128 KiB of scratch
_SCAN_BLOCK = 1 << 14


@numba.njit(cache=True, nogil=True)
def _block_sides(pre, post, roi, roi_ok, use_roi, conf, conf2, thr, use_conf, use_conf2, tab, b0, b1,
                 keep, gp, gq):
    """Rows ``b0:b1`` that pass the filters into ``keep``, their pre / post values into ``gp`` / ``gq``.

    Returns how many rows passed. A value is ``-1`` where the ID is not in
    the table or does not count on that side; a post ID is looked up only
    where the pre value counts (elsewhere ``gq`` keeps an old value: read it
    only where ``gp >= 0``).

    Why passes, not one loop doing all per row (as these kernels once did):
    the table of a whole brain's IDs (16 MiB) does not fit in cache, and in
    the fused loop each row's lookups waited behind the previous row's
    branches; a loop of lookups only lets the CPU run many at once. Measured
    (the kernels before and after, interleaved, best of 15) on 2 M rows
    inside 10 ROIs (13 % kept): 27.5 -> 16.8 ms; every row kept:
    204 -> 170 ms.
    """
    cm = tab.shape[0] - 1
    mask = np.uint64(cm)
    m = 0
    for i in range(b0, b1):
        keep[m] = i
        ok = True
        if use_roi and not roi_ok[roi[i] + 1]:
            ok = False
        if use_conf and not conf[i] > thr:
            ok = False
        if use_conf2 and not conf2[i] > thr:
            ok = False
        m += ok
    for j in range(m):
        v = pre[keep[j]]
        h = _slot(v, mask)
        while tab[h, 0] != v and tab[h, 0] != _EMPTY:
            h = (h + 1) & cm
        gp[j] = tab[h, 1] if tab[h, 0] == v else -1
    for j in range(m):
        if gp[j] < 0:
            continue
        v = post[keep[j]]
        h = _slot(v, mask)
        while tab[h, 0] != v and tab[h, 0] != _EMPTY:
            h = (h + 1) & cm
        gq[j] = tab[h, 2] if tab[h, 0] == v else -1
    return m


@numba.njit(cache=True, nogil=True)
def scan_group_keys(pre, post, roi, roi_ok, use_roi, conf, conf2, thr, use_conf, use_conf2, tab, n_post):
    """Keys ``a * n_post + b`` of the rows that pass the filters (``a``, ``b``: the table's values of their IDs).

    With each ID's pre and post group in the table the keys are cells of
    the grouped matrix; with its position (``-1`` where the neuron does not
    count on that side) and ``n_post`` = the number of IDs they are neuron
    pairs, for counts that must judge whole pairs (``min_weight``) before
    grouping.

    Rows go in blocks of :data:`_SCAN_BLOCK` through :func:`_block_sides`
    (filters, then each side's lookups, as separate passes).

    Parameters
    ----------
    pre, post
        int64 body IDs per row.
    use_roi
        Apply the ROI filter.
    roi, roi_ok
        Integer ROI code per row (``-1`` = none) and bool per ``code + 1``
        (slot 0 = no ROI): the ROI filter, read when ``use_roi``.
    conf, conf2
        float32 confidence columns, read when ``use_conf`` / ``use_conf2``.
    thr
        Keep rows with confidence ``> thr`` in every column used.
    use_conf, use_conf2
        Apply the threshold to ``conf`` / ``conf2``.
    tab
        The ID table of :func:`build_id_table`, columns 1 and 2 filled with
        each ID's value on the pre and the post side (``-1`` = left out).
    n_post
        Number of post values (groups, or IDs).

    Returns
    -------
    numpy.ndarray
        int64 keys, one per kept row, in row order.

    Examples
    --------
    >>> tab = build_id_table(np.array([10, 20], np.int64))
    >>> tab[:, 1] = tab[:, 2] = tab[:, 3]  # group = position: 10 -> 0, 20 -> 1
    >>> no = np.zeros(1, np.float32)
    >>> roi, roi_ok = np.array([0, -1, 0], np.int16), np.array([False, True])  # keep ROI 0
    >>> scan_group_keys(np.array([10, 20, 30], np.int64), np.array([20, 20, 10], np.int64),
    ...                 roi, roi_ok, False, no, no, 0.0, False, False, tab, 2).tolist()
    [1, 3]
    >>> scan_group_keys(np.array([10, 20, 30], np.int64), np.array([20, 20, 10], np.int64),
    ...                 roi, roi_ok, True, no, no, 0.0, False, False, tab, 2).tolist()
    [1]
    """
    n = len(pre)
    out = np.empty(n, dtype=np.int64)
    keep = np.empty(_SCAN_BLOCK, dtype=np.int64)
    gp = np.empty(_SCAN_BLOCK, dtype=np.int64)
    gq = np.empty(_SCAN_BLOCK, dtype=np.int64)
    k = 0
    for b0 in range(0, n, _SCAN_BLOCK):
        m = _block_sides(pre, post, roi, roi_ok, use_roi, conf, conf2, thr, use_conf, use_conf2, tab,
                         b0, min(n, b0 + _SCAN_BLOCK), keep, gp, gq)
        for j in range(m):
            if gp[j] >= 0 and gq[j] >= 0:
                out[k] = gp[j] * n_post + gq[j]
                k += 1
    return out[:k].copy() if k < n // 2 else out[:k]


@numba.njit(cache=True, nogil=True)
def _grow_counts(hk, hc):
    """The key-count table of :func:`scan_group_counts` at twice the slots, every key re-placed."""
    cap = hk.shape[0] * 2
    nk = np.full(cap, _EMPTY, dtype=np.int64)
    nc = np.zeros(cap, dtype=np.int64)
    mask = np.uint64(cap - 1)
    for s in range(hk.shape[0]):
        if hk[s] != _EMPTY:
            h = _slot(hk[s], mask)
            while nk[h] != _EMPTY:
                h = (h + 1) & (cap - 1)
            nk[h] = hk[s]
            nc[h] = hc[s]
    return nk, nc


@numba.njit(cache=True, nogil=True)
def scan_group_counts(pre, post, roi, roi_ok, use_roi, conf, conf2, thr, use_conf, use_conf2, tab, n_post,
                      hk, hc, used):
    """:func:`scan_group_keys` counted as it scans: each kept row's key is added to a hash table of counts.

    For group cells, whose few distinct keys keep the table in cache, this
    replaces a key per row and its sort (``np.unique``): 28 -> 19 ms per
    2 M rows inside 10 ROIs of a whole brain. Neuron-pair keys (``min_weight``)
    are mostly distinct; sorting them is quicker there (673 k distinct pairs
    in 2 M rows: 233 ms by sort, 372 ms by this table). The rows' lookups are
    :func:`_block_sides`' passes over blocks of rows; the count-table insert
    is a pass of its own over each block's kept rows.

    Parameters
    ----------
    pre, post, roi, roi_ok, use_roi, conf, conf2, thr, use_conf, use_conf2, tab, n_post
        As for :func:`scan_group_keys`.
    hk, hc
        The count table: int64 keys (``-1`` = empty) and counts, of a
        power-of-two length; start with ``np.full(m, -1)`` and ``np.zeros(m)``.
    used
        Keys the table holds.

    Returns
    -------
    tuple
        ``(hk, hc, used)``: the table (a new, larger one once half full)
        and its key count, to pass to the next batch.

    Examples
    --------
    >>> tab = build_id_table(np.array([10, 20], np.int64))
    >>> tab[:, 1] = tab[:, 2] = tab[:, 3]  # group = position: 10 -> 0, 20 -> 1
    >>> no = np.zeros(1, np.float32)
    >>> hk, hc, used = scan_group_counts(np.array([10, 20, 10], np.int64), np.array([20, 20, 20], np.int64),
    ...                                  np.zeros(3, np.int16), np.ones(2, bool), False, no, no, 0.0,
    ...                                  False, False, tab, 2, np.full(2, -1), np.zeros(2, np.int64), 0)
    >>> used, sorted(zip(hk[hk >= 0].tolist(), hc[hk >= 0].tolist()))
    (2, [(1, 2), (3, 1)])
    """
    n = len(pre)
    cap = hk.shape[0]
    hmask = np.uint64(cap - 1)
    keep = np.empty(_SCAN_BLOCK, dtype=np.int64)
    gp = np.empty(_SCAN_BLOCK, dtype=np.int64)
    gq = np.empty(_SCAN_BLOCK, dtype=np.int64)
    for b0 in range(0, n, _SCAN_BLOCK):
        m = _block_sides(pre, post, roi, roi_ok, use_roi, conf, conf2, thr, use_conf, use_conf2, tab,
                         b0, min(n, b0 + _SCAN_BLOCK), keep, gp, gq)
        for j in range(m):
            if gp[j] < 0 or gq[j] < 0:
                continue
            key = gp[j] * n_post + gq[j]
            s = _slot(key, hmask)
            while True:
                k = hk[s]
                if k == key:
                    hc[s] += 1
                    break
                if k == _EMPTY:
                    hk[s] = key
                    hc[s] = 1
                    used += 1
                    if 2 * used > cap:
                        hk, hc = _grow_counts(hk, hc)
                        cap = hk.shape[0]
                        hmask = np.uint64(cap - 1)
                    break
                s = (s + 1) & (cap - 1)
    return hk, hc, used


@numba.njit(cache=True, nogil=True)
def add_weighted_keys(out, keys, weights):
    """``out[key] += weight`` for every key (exact int64 sums).

    Parameters
    ----------
    out
        Flat int64 sums, updated in place.
    keys, weights
        int64 indices into ``out`` (not bounds-checked) and the amounts to add.

    Examples
    --------
    >>> out = np.zeros(3, np.int64)
    >>> add_weighted_keys(out, np.array([2, 0, 2], np.int64), np.array([5, 1, 2], np.int64))
    >>> out.tolist()
    [1, 0, 7]
    """
    for i in range(len(keys)):
        out[keys[i]] += weights[i]
