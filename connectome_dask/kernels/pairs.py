"""numba kernels for the map-reduce aggregations (integers only, no labels).

Synapse rows are stored sorted by ``(pre, post)``, so neuron-pair counting is a
run-length scan instead of a hash or sort: O(rows), sequential memory access.
numba is used because numpy has no fused "filter + run-length-encode" or
"scatter-add into a 2-D block" that avoids several full-size temporaries.
"""

from __future__ import annotations

import numba
import numpy as np

from .bits import count_set, is_set

__all__ = [
    "mark_neurons",
    "pair_runs",
    "pair_roi_runs",
    "pair_roi_weight_runs",
    "pair_weight_runs",
    "pair_rows_by_weight",
    "pair_filter_counts",
    "pair_roi_filter_counts",
    "block_add_pairs",
    "pack_group_rows",
    "pack_group_filtered_pairs",
    "add_packed",
    "mark_packed_pages",
    "filter_pairs",
    "code_range",
    "row_mask",
    "keep_words",
]


@numba.njit(cache=True, nogil=True)
def row_mask(pre, post, pre_ok, post_ok, roi, roi_ok, conf, conf2, thr, use_roi, use_conf, use_conf2):
    """Boolean keep-mask of rows from per-neuron, per-ROI and confidence filters.

    ``roi_ok`` is indexed by ``code + 1`` (slot 0 = no ROI).

    Parameters
    ----------
    pre, post
        Per-row neuron indices (into ``pre_ok`` / ``post_ok``).
    pre_ok, post_ok
        Boolean per neuron index: keep rows whose pre / post neuron is set.
    roi
        Per-row ROI code (-1 = none); read only when ``use_roi``.
    roi_ok
        Boolean per ``code + 1``: keep rows whose ROI is set.
    conf, conf2
        Per-row confidence columns; read only when ``use_conf`` / ``use_conf2``.
    thr
        Keep rows whose confidence is ``> thr`` (in each column used).
    use_roi, use_conf, use_conf2
        Whether to apply the ROI filter and the two confidence filters.

    Returns
    -------
    numpy.ndarray
        Boolean keep-mask, one entry per row.
    """
    n = pre.shape[0]
    keep = np.empty(n, dtype=np.bool_)
    for i in range(n):
        k = pre_ok[pre[i]] and post_ok[post[i]]
        if k and use_roi:
            k = roi_ok[roi[i] + 1]
        if k and use_conf:
            k = conf[i] > thr
        if k and use_conf2:
            k = conf2[i] > thr
        keep[i] = k
    return keep


@numba.njit(cache=True, nogil=True)
def keep_words(roi, roi_ok, conf, conf2, thr, use_roi, use_conf, use_conf2, n):
    """:func:`row_mask`'s ROI and confidence tests of ``n`` rows as a bit set (:mod:`.bits`).

    The per-synapse row test of the pair-filter kernels, evaluated once per
    row (the loop vectorizes: 2.4 ms for 20 M confidences, one thread); the
    neuron tests are per pair and stay with them.

    Parameters
    ----------
    roi, roi_ok, conf, conf2, thr, use_roi, use_conf, use_conf2
        As in :func:`row_mask` (columns read only when used; unused ones may be length 1).
    n
        Rows.

    Returns
    -------
    numpy.ndarray
        ``uint64`` words, bit ``j`` set when row ``j`` is kept (rows past ``n`` clear).

    Examples
    --------
    >>> conf = np.array([0.9, 0.1, 0.95], np.float32)
    >>> w = keep_words(np.zeros(1, np.int16), np.ones(1, bool), conf, conf, np.float32(0.5), False, True,
    ...                False, 3)
    >>> bin(int(w[0]))
    '0b101'
    """
    nw = (n + 63) >> 6
    out = np.empty(nw, dtype=np.uint64)
    for w in range(nw):
        base = w << 6
        top = min(64, n - base)
        x = np.uint64(0)
        for b in range(top):
            j = base + b
            k = True
            if use_roi:
                k = roi_ok[roi[j] + 1]
            if k and use_conf:
                k = conf[j] > thr
            if k and use_conf2:
                k = conf2[j] > thr
            x |= np.uint64(k) << np.uint64(b)
        out[w] = x
    return out


@numba.njit(cache=True, nogil=True)
def pair_runs(pre, post, keep):
    """Run-length encode kept rows of a (pre, post)-sorted block.

    Returns ``(upre, upost, count)`` of the distinct pairs in order.

    Parameters
    ----------
    pre, post
        Per-row neuron indices, sorted by (pre, post).
    keep
        Boolean per row: rows to count.

    Returns
    -------
    upre, upost : numpy.ndarray
        int32 neuron indices of the distinct kept pairs.
    count : numpy.ndarray
        int64 rows per pair.
    """
    n = pre.shape[0]
    upre = np.empty(n, dtype=np.int32)
    upost = np.empty(n, dtype=np.int32)
    cnt = np.empty(n, dtype=np.int64)
    m = -1
    lp = -1
    lq = -1
    for i in range(n):
        if not keep[i]:
            continue
        p = pre[i]
        q = post[i]
        if p == lp and q == lq:
            cnt[m] += 1
        else:
            m += 1
            upre[m] = p
            upost[m] = q
            cnt[m] = 1
            lp = p
            lq = q
    m += 1
    return upre[:m].copy(), upost[:m].copy(), cnt[:m].copy()


@numba.njit(cache=True, nogil=True)
def pair_roi_runs(pre, post, roi, keep, n_codes):
    """Counts per distinct (pre, post, roi) of a (pre, post)-sorted block.

    Within each (pre, post) run the ROI codes are tallied in a small scratch
    histogram (``n_codes`` = number of ROI codes + 1 for "none"), so output is
    ordered by (pre, post, roi).

    Parameters
    ----------
    pre, post
        Per-row neuron indices, sorted by (pre, post).
    roi
        Per-row ROI code (-1 = none).
    keep
        Boolean per row: rows to count.
    n_codes
        Number of ROI codes + 1 (the histogram size).

    Returns
    -------
    upre, upost : numpy.ndarray
        int32 neuron indices of the distinct kept (pre, post, roi) triples.
    uroi : numpy.ndarray
        int16 ROI code of each triple.
    count : numpy.ndarray
        int64 rows per triple.
    """
    n = pre.shape[0]
    upre = np.empty(n, dtype=np.int32)
    upost = np.empty(n, dtype=np.int32)
    uroi = np.empty(n, dtype=np.int16)
    cnt = np.empty(n, dtype=np.int64)
    hist = np.zeros(n_codes, dtype=np.int64)
    touched = np.empty(n_codes, dtype=np.int64)
    m = 0
    i = 0
    while i < n:
        if not keep[i]:
            i += 1
            continue
        p = pre[i]
        q = post[i]
        j = i
        nt = 0
        while j < n and pre[j] == p and post[j] == q:
            if keep[j]:
                c = roi[j] + 1
                if hist[c] == 0:
                    # insert into the sorted list of the pair's codes (usually 1-3 of them): a
                    # np.sort per pair allocated an array per pair (3.5x slower at 20 M rows)
                    k = nt
                    while k > 0 and touched[k - 1] > c:
                        touched[k] = touched[k - 1]
                        k -= 1
                    touched[k] = c
                    nt += 1
                hist[c] += 1
            j += 1
        for t in range(nt):
            c = touched[t]
            upre[m] = p
            upost[m] = q
            uroi[m] = c - 1
            cnt[m] = hist[c]
            hist[c] = 0
            m += 1
        i = j
    return upre[:m].copy(), upost[:m].copy(), uroi[:m].copy(), cnt[:m].copy()


@numba.njit(cache=True, nogil=True)
def pair_roi_weight_runs(pre, post, roi, weight, keep, n_codes):
    """Weights summed per distinct (pre, post, roi) of a (pre, post)-sorted block.

    :func:`pair_roi_runs` with a weight per row (``weight`` int64; rows of
    one synapse count 1): the per-ROI connection table of a store is built
    with it, and of a connection-level store's rows (weighted edges) too.
    Output is ordered by (pre, post, roi).

    Parameters
    ----------
    pre, post
        Per-row neuron indices, sorted by (pre, post).
    roi
        Per-row ROI code (-1 = none, at most ``n_codes - 2``).
    weight
        Per-row int64 weight.
    keep
        Boolean per row: rows to count.
    n_codes
        Number of ROI codes + 1 (the histogram size).

    Returns
    -------
    upre, upost : numpy.ndarray
        int32 neuron indices of the distinct kept (pre, post, roi) triples.
    uroi : numpy.ndarray
        int16 ROI code of each triple.
    weight : numpy.ndarray
        int64 summed weight of each triple.
    """
    n = pre.shape[0]
    upre = np.empty(n, dtype=np.int32)
    upost = np.empty(n, dtype=np.int32)
    uroi = np.empty(n, dtype=np.int16)
    cnt = np.empty(n, dtype=np.int64)
    hist = np.zeros(n_codes, dtype=np.int64)
    seen = np.zeros(n_codes, dtype=np.bool_)
    touched = np.empty(n_codes, dtype=np.int64)
    m = 0
    i = 0
    while i < n:
        if not keep[i]:
            i += 1
            continue
        p = pre[i]
        q = post[i]
        j = i
        nt = 0
        while j < n and pre[j] == p and post[j] == q:
            if keep[j]:
                c = roi[j] + 1
                if not seen[c]:
                    k = nt  # the pair's codes kept sorted by insertion (usually 1-3 of them)
                    while k > 0 and touched[k - 1] > c:
                        touched[k] = touched[k - 1]
                        k -= 1
                    touched[k] = c
                    nt += 1
                    seen[c] = True
                hist[c] += weight[j]
            j += 1
        for t in range(nt):
            c = touched[t]
            upre[m] = p
            upost[m] = q
            uroi[m] = c - 1
            cnt[m] = hist[c]
            hist[c] = 0
            seen[c] = False
            m += 1
        i = j
    return upre[:m].copy(), upost[:m].copy(), uroi[:m].copy(), cnt[:m].copy()


@numba.njit(cache=True, nogil=True)
def pair_weight_runs(pre, post, weight, keep):
    """Weights summed per distinct kept (pre, post) of a (pre, post)-sorted block.

    :func:`pair_runs` with a weight per row: per-ROI connection table rows
    (one per pair and ROI) summed to pair weights over the kept ROIs.

    Parameters
    ----------
    pre, post
        Per-row neuron indices, sorted by (pre, post).
    weight
        Per-row int64 weight.
    keep
        Boolean per row: rows to count.

    Returns
    -------
    upre, upost : numpy.ndarray
        int32 neuron indices of the distinct kept pairs.
    weight : numpy.ndarray
        int64 summed weight of each pair.
    """
    n = pre.shape[0]
    upre = np.empty(n, dtype=np.int32)
    upost = np.empty(n, dtype=np.int32)
    cnt = np.empty(n, dtype=np.int64)
    m = -1
    lp = -1
    lq = -1
    for i in range(n):
        if not keep[i]:
            continue
        p = pre[i]
        q = post[i]
        if p == lp and q == lq:
            cnt[m] += weight[i]
        else:
            m += 1
            upre[m] = p
            upost[m] = q
            cnt[m] = weight[i]
            lp = p
            lq = q
    m += 1
    return upre[:m].copy(), upost[:m].copy(), cnt[:m].copy()


@numba.njit(cache=True, nogil=True)
def _rows_by_weight_range(pre, post, slot, weight, rank, s_out, w_out, i0, i1, smap, shift, use_map):
    """:func:`pair_rows_by_weight` on rows ``i0:i1`` (whole pairs), in place in ``s_out`` / ``w_out``.

    ``use_map``: ``slot`` holds codes, a row's slot is ``smap[code + shift]`` (written to ``s_out``).
    """
    n = i1
    i = i0
    while i < n:
        if weight[i] <= 0:
            return False
        if use_map:
            s_out[i] = smap[slot[i] + shift]
        j = i + 1
        while j < n and pre[j] == pre[i] and post[j] == post[i]:
            if use_map:
                s_out[j] = smap[slot[j] + shift]
                if s_out[j] <= s_out[j - 1] or weight[j] <= 0:
                    return False
            elif slot[j] <= slot[j - 1] or weight[j] <= 0:
                return False
            j += 1
        for a in range(i + 1, j):
            ks = s_out[a]
            kw = w_out[a]
            kr = rank[ks]
            b = a - 1
            while b >= i and (w_out[b] < kw or (w_out[b] == kw and rank[s_out[b]] > kr)):
                s_out[b + 1] = s_out[b]
                w_out[b + 1] = w_out[b]
                b -= 1
            s_out[b + 1] = ks
            w_out[b + 1] = kw
        i = j
    return True


#: rows from which :func:`pair_rows_by_weight` splits the work between two threads
_PARALLEL_ROWS = 1 << 20


def pair_rows_by_weight(pre, post, slot, weight, rank, slot_in_place=False, slot_of=None, shift=0):
    """Each pair's rows ordered by weight (descending) then ``rank[slot]``, if no sums are needed.

    The rows (one per pair and label slot, e.g. a ROI name) come sorted by
    ``(pre, post)`` with strictly ascending slots and positive weights within
    a pair, i.e. each row is already its (pair, slot)'s total: neuPrint's
    conn_df order is then a reorder inside each pair (usually 1-3 rows, an
    insertion sort). Otherwise nothing is reordered and ``ok`` is false (the
    caller sums first).

    Parameters
    ----------
    pre, post
        Per-row neuron indices, sorted by (pre, post).
    slot
        Per-row label slot (int).
    weight
        Per-row int64 weight.
    rank
        Sort rank of each slot (ties of weight are broken by it).
    slot_in_place
        Reorder ``slot`` itself instead of a copy (a caller's temporary: one
        array less on millions of rows). When ``ok`` is false its contents are
        then unspecified.
    slot_of, shift
        With ``slot_of``, ``slot`` holds per-row codes and a row's slot is
        ``slot_of[code + shift]``, looked up in the same pass (a new array of
        ``slot_of``'s dtype is returned; ``slot_in_place`` is ignored): no
        array of slots is made first.

    Returns
    -------
    slot, weight : numpy.ndarray
        The rows' slots and weights in the new order (copies, or ``slot`` itself with
        ``slot_in_place``; pre/post are unchanged). With ``slot_of`` and ``ok`` false,
        the slots' contents are unspecified.
    ok : bool
        False when a pair's slots do not strictly ascend or a weight is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> s, w, ok = pair_rows_by_weight(np.array([0, 0, 1]), np.array([5, 5, 2]), np.array([0, 1, 0]),
    ...                                np.array([2, 7, 1]), np.array([0, 1]))
    >>> s.tolist(), w.tolist(), ok
    ([1, 0, 0], [7, 2, 1], True)
    >>> s, w, ok = pair_rows_by_weight(np.array([0, 0, 1]), np.array([5, 5, 2]), np.array([-1, 0, -1]),
    ...                                np.array([2, 7, 1]), np.array([0, 1]), slot_of=np.array([0, 1]), shift=1)
    >>> s.tolist(), w.tolist(), ok
    ([1, 0, 0], [7, 2, 1], True)
    """
    n = pre.shape[0]
    use_map = slot_of is not None
    smap = np.asarray(slot_of) if use_map else np.zeros(1, dtype=slot.dtype)
    # the kernel checks a pair's rows before it reorders them, and only that pair's rows: in place is safe
    s_out = np.empty(n, dtype=smap.dtype) if use_map else (slot if slot_in_place else slot.copy())
    w_out = weight.copy()
    args = (smap, int(shift), use_map)
    if n < _PARALLEL_ROWS:
        return s_out, w_out, bool(_rows_by_weight_range(pre, post, slot, weight, rank, s_out, w_out, 0, n, *args))
    # two halves split at a pair boundary, on two threads (the kernel releases the GIL)
    from concurrent.futures import ThreadPoolExecutor

    mid = n // 2
    while mid < n and pre[mid] == pre[mid - 1] and post[mid] == post[mid - 1]:
        mid += 1
    with ThreadPoolExecutor(2) as ex:
        parts = list(ex.map(lambda r: _rows_by_weight_range(pre, post, slot, weight, rank, s_out, w_out, *r, *args),
                            [(0, mid), (mid, n)]))
    if all(parts):
        return s_out, w_out, True
    return s_out if (slot_in_place or use_map) else slot.copy(), weight.copy(), False


@numba.njit(cache=True, nogil=True)
def mark_neurons(used, pre, post):
    """``used[pre] = True; used[post] = True`` in one pass (numpy's two index assignments: 35 ms for 4.8 M rows).

    Parameters
    ----------
    used
        Boolean mask over the neurons, set in place.
    pre, post
        Neuron indices (every value in ``0 .. len(used) - 1``; not checked).

    Examples
    --------
    >>> import numpy as np
    >>> used = np.zeros(5, dtype=bool)
    >>> mark_neurons(used, np.array([0, 0, 3]), np.array([1, 1, 1]))
    >>> np.flatnonzero(used).tolist()
    [0, 1, 3]
    """
    for i in range(pre.shape[0]):
        used[pre[i]] = True
        used[post[i]] = True


@numba.njit(cache=True, nogil=True)
def pair_filter_counts(ppre, ppost, pweight, pre_ok, post_ok, words, min_weight):
    """Per-synapse filtered counts of the connection table's pairs, from the filter columns only.

    The synapse rows of a range of the connection table are its pairs' rows
    one after the other (``pweight[i]`` rows for pair ``i``: rows are stored
    sorted by (pre, post)), so the filter columns (``roi``, ``conf``,
    ``conf2``) of those rows are enough: the per-row ``pre`` / ``post``
    columns are never read. The row filter is :func:`row_mask`'s, as the bit
    set :func:`keep_words` makes of those columns; a pair's count is the set
    bits of its row range (:func:`~connectome_dask.kernels.bits.count_set`).

    Parameters
    ----------
    ppre, ppost, pweight
        The pairs (neuron indices) and their synapse rows, in table order.
    pre_ok, post_ok
        Boolean per neuron index: pairs whose pre / post neuron is set are counted.
    words
        The kept rows among the pairs' rows (:func:`keep_words`).
    min_weight
        Pairs with fewer kept rows are dropped (at least 1: a pair with none is never returned).

    Returns
    -------
    index : numpy.ndarray
        int64 positions (into the pairs) of the pairs returned, ascending.
    count : numpy.ndarray
        int64 kept rows of each.
    """
    n = ppre.shape[0]
    idx = np.empty(n, dtype=np.int64)
    cnt = np.empty(n, dtype=np.int64)
    lo = min_weight if min_weight > 1 else 1
    m = 0
    r = np.int64(0)
    for i in range(n):
        w = np.int64(pweight[i])
        if pre_ok[ppre[i]] and post_ok[ppost[i]]:
            c = count_set(words, r, r + w)
            if c >= lo:
                idx[m] = i
                cnt[m] = c
                m += 1
        r += w
    return idx[:m].copy(), cnt[:m].copy()


@numba.njit(cache=True, nogil=True)
def pair_roi_filter_counts(ppre, ppost, pweight, pre_ok, post_ok, words, roi, n_codes):
    """:func:`pair_filter_counts` split by the rows' ROI code: one output row per (pair, ROI).

    Within a pair the ROI codes are tallied in a small histogram (as in
    :func:`pair_roi_runs`), so output is ordered by (pair, roi).

    Parameters
    ----------
    ppre, ppost, pweight, pre_ok, post_ok, words
        As in :func:`pair_filter_counts`.
    roi
        Per-row ROI code (-1 = none) of the pairs' rows.
    n_codes
        Number of ROI codes + 1 (the histogram size).

    Returns
    -------
    index : numpy.ndarray
        int64 position of each row's pair.
    uroi : numpy.ndarray
        int16 ROI code of each row.
    count : numpy.ndarray
        int64 kept synapse rows of each (pair, ROI).
    """
    n = ppre.shape[0]
    cap = roi.shape[0] if roi.shape[0] > n else n
    idx = np.empty(cap, dtype=np.int64)
    uroi = np.empty(cap, dtype=np.int16)
    cnt = np.empty(cap, dtype=np.int64)
    hist = np.zeros(n_codes, dtype=np.int64)
    touched = np.empty(n_codes, dtype=np.int64)
    m = 0
    r = 0
    for i in range(n):
        w = pweight[i]
        if pre_ok[ppre[i]] and post_ok[ppost[i]]:
            nt = 0
            for j in range(r, r + w):
                c = roi[j] + 1
                if is_set(words, j):
                    if hist[c] == 0:
                        t = nt  # the pair's codes kept sorted by insertion (usually 1-3 of them)
                        while t > 0 and touched[t - 1] > c:
                            touched[t] = touched[t - 1]
                            t -= 1
                        touched[t] = c
                        nt += 1
                    hist[c] += 1
            for t in range(nt):
                c = touched[t]
                idx[m] = i
                uroi[m] = c - 1
                cnt[m] = hist[c]
                hist[c] = 0
                m += 1
        r += w
    return idx[:m].copy(), uroi[:m].copy(), cnt[:m].copy()


@numba.njit(cache=True, nogil=True)
def block_add_pairs(out, row0, pre_code, post_code, upre, upost, cnt):
    """``out[pre_code[p] - row0, post_code[q]] += c`` for kept pairs (codes < 0 dropped).

    Parameters
    ----------
    out
        2-D array of group sums, updated in place.
    row0
        Group code of ``out``'s first row.
    pre_code, post_code
        Group code of each neuron index (-1 = not in any group).
    upre, upost, cnt
        Pairs (neuron indices) and their counts, as from :func:`pair_runs`.
    """
    for i in range(upre.shape[0]):
        a = pre_code[upre[i]]
        b = post_code[upost[i]]
        if a >= 0 and b >= 0:
            out[a - row0, b] += cnt[i]


@numba.njit(cache=True, nogil=True)
def code_range(pre, keep, pre_code):
    """Smallest and largest group code of kept rows (``(0, -1)`` when none).

    Parameters
    ----------
    pre
        Per-row neuron indices.
    keep
        Boolean per row: rows to look at.
    pre_code
        Group code of each neuron index (-1 = not in any group; ignored).

    Returns
    -------
    lo, hi : int
        The code range, ``(0, -1)`` when no kept row has a group.
    """
    lo = np.int64(1) << 62
    hi = np.int64(-1)
    last = -1
    for i in range(pre.shape[0]):
        if keep[i]:
            p = pre[i]
            if p == last:
                continue
            last = p
            c = pre_code[p]
            if c >= 0:
                if c < lo:
                    lo = c
                if c > hi:
                    hi = c
    if hi < 0:
        return 0, -1
    return lo, hi


@numba.njit(cache=True, nogil=True)
def pack_group_rows(pre, post, roi, weight, pre_ok, post_ok, roi_ok, use_roi, pre_code, post_code, n_post, shift):
    """``(cell << shift) | weight`` of the kept rows of a weighted table, in one pass (``cell = gp * n_post + gq``).

    The per-ROI connection table's rows, filtered (:func:`row_mask`'s neuron
    and ROI tests) and mapped to their groups at once: no keep-mask, no runs
    per pair, no gathers (the sum over a pair's ROIs happens when the entries
    are added). Rows whose neurons have no group are left out.

    Parameters
    ----------
    pre, post
        Per-row neuron indices.
    roi
        Per-row ROI code (-1 = none); read only when ``use_roi``.
    weight
        Per-row non-negative weight.
    pre_ok, post_ok
        Boolean per neuron index: keep rows whose pre / post neuron is set.
    roi_ok
        Boolean per ``code + 1``: keep rows whose ROI is set.
    use_roi
        Whether to apply the ROI filter.
    pre_code, post_code
        Group code of each neuron index (-1 = not in any group).
    n_post
        Number of post groups; the caller guarantees every cell fits
        (``n_pre * n_post < 2**(63 - shift)``).
    shift
        Bits of the weight field.

    Returns
    -------
    packed : numpy.ndarray
        int64 entries in row order (sort them to add in address order).
    lo, hi : int
        Smallest and largest pre group of the entries (``hi < lo`` when there are none).
    ok : bool
        False when a weight does not fit the field (or is negative): nothing
        is returned then, the caller counts another way.
    """
    n = pre.shape[0]
    out = np.empty(n, dtype=np.int64)
    lim = np.int64(1) << shift
    k = 0
    lo = np.int64(1) << 62
    hi = np.int64(-1)
    for i in range(n):
        if use_roi and not roi_ok[roi[i] + 1]:
            continue
        p = pre[i]
        q = post[i]
        if not (pre_ok[p] and post_ok[q]):
            continue
        a = np.int64(pre_code[p])
        b = np.int64(post_code[q])
        if a < 0 or b < 0:
            continue
        w = np.int64(weight[i])
        if w < 0 or w >= lim:
            return out[:0].copy(), lo, hi, False
        out[k] = ((a * n_post + b) << shift) | w
        lo = min(lo, a)
        hi = max(hi, a)
        k += 1
    return (out[:k].copy() if k < n // 2 else out[:k]), lo, hi, True


@numba.njit(cache=True, nogil=True)
def pack_group_filtered_pairs(ppre, ppost, pweight, words, min_weight, pre_code, post_code, n_post, shift):
    """:func:`pair_filter_counts` and the pairs' group cells in one pass: ``(cell << shift) | count`` entries.

    Each pair of the connection table whose neurons both have a code is
    counted over its synapse rows' kept bits (:func:`keep_words`), and a pair with at least ``min_weight`` kept rows
    becomes one entry of its cell ``pre_code[pre] * n_post + post_code[post]``:
    no index and count arrays, no gathers of the pairs or of their codes. The
    neuron filter is in the codes (-1 = not counted): one lookup per side
    instead of a mask and a code (0.25 -> 0.16 s for 50 M rows, one thread).

    Parameters
    ----------
    ppre, ppost, pweight
        The pairs (neuron indices) and their synapse rows, in table order.
    words
        The kept rows among the pairs' rows (:func:`keep_words`).
    min_weight
        Pairs with fewer kept rows are left out (at least 1).
    pre_code, post_code
        Group code of each neuron index, -1 for a neuron not counted on that
        side (no group, or outside the neuron filter).
    n_post, shift
        As in :func:`pack_group_rows` (``shift``: bits of the count field).

    Returns
    -------
    tuple
        ``(packed, lo, hi, ok)`` as :func:`pack_group_rows` returns them, the
        entries in pair order; ``ok`` is False when a count does not fit.
    """
    n = ppre.shape[0]
    out = np.empty(n, dtype=np.int64)
    lim = np.int64(1) << shift
    least = min_weight if min_weight > 1 else 1
    lo = np.int64(1) << 62
    hi = np.int64(-1)
    m = 0
    r = np.int64(0)
    for i in range(n):
        w = np.int64(pweight[i])
        a = np.int64(pre_code[ppre[i]])
        b = np.int64(post_code[ppost[i]])
        if a >= 0 and b >= 0:
            c = count_set(words, r, r + w)
            if c >= least:
                if c >= lim:
                    return out[:0].copy(), lo, hi, False
                out[m] = ((a * n_post + b) << shift) | c
                lo = min(lo, a)
                hi = max(hi, a)
                m += 1
        r += w
    return (out[:m].copy() if m < n // 2 else out[:m]), lo, hi, True


@numba.njit(cache=True, nogil=True)
def add_packed(out, packed, shift, base):
    """``out[(p >> shift) - base] += p & (2**shift - 1)`` for every packed entry (a flat array).

    Sorted entries add in address order: one pass over the touched pages,
    where the same adds in pair order jump across a matrix of hundreds of MB.

    Parameters
    ----------
    out
        Flat int64 array, updated in place.
    packed
        ``(cell << shift) | count`` entries.
    shift
        Bits of the count field.
    base
        Cell of ``out[0]``.
    """
    mask = (np.int64(1) << shift) - 1
    for i in range(packed.shape[0]):
        p = packed[i]
        out[(p >> shift) - base] += p & mask


@numba.njit(cache=True, nogil=True)
def mark_packed_pages(packed, shift, page_shift, seen, count, limit):
    """Count the distinct pages ``(p >> shift) >> page_shift`` of sorted packed entries, up to ``limit``.

    Pages already set in ``seen`` are not counted again (several runs share
    one ``seen``); the scan stops once the count passes ``limit``.

    Parameters
    ----------
    packed
        Sorted ``(cell << shift) | count`` entries.
    shift
        Bits of the count field.
    page_shift
        log2 of the cells per page.
    seen
        Boolean per page, updated in place.
    count
        Pages counted so far.
    limit
        Stop once the count exceeds this.

    Returns
    -------
    int
        The count, exact while it is at most ``limit``.
    """
    last = -1
    for i in range(packed.shape[0]):
        pg = (packed[i] >> shift) >> page_shift
        if pg == last:
            continue
        last = pg
        if not seen[pg]:
            seen[pg] = True
            count += 1
            if count > limit:
                return count
    return count


@numba.njit(cache=True, nogil=True)
def filter_pairs(pre, post, weight, pre_ok, post_ok, min_weight):
    """Connection-table rows whose neurons pass ``pre_ok`` / ``post_ok`` and whose weight is ``>= min_weight``.

    Two passes without branches: the first writes every row's position at
    the end of an index and moves the end on by the row's test (0 or 1); the
    second gathers the kept rows into outputs of their exact size. A test per
    row that branched mispredicted on a random neuron subset (a 10 % ``post``
    subset of 4.5 M pairs: 31 ms); writing all three columns at the moving
    end (this kernel until 2026-12-04) took 6.1-6.4 ms per 1.3 M rows for a
    10 % ``post`` subset, the index and gather 3.7-3.8 ms (``pre`` subset
    4.9-6.2 -> 3.9-4.1, ``min_weight=5`` 5.8-10 -> 4.6, every row kept about
    the same). (numpy's two gathers, an ``&`` and three compressions took 4x
    as long as the first version.)

    Parameters
    ----------
    pre, post, weight
        The table's columns (rows are pairs).
    pre_ok, post_ok
        Boolean per neuron index.
    min_weight
        Smallest weight kept.

    Returns
    -------
    pre, post, weight : numpy.ndarray
        The kept rows, in order.

    Examples
    --------
    >>> ok = np.array([True, False, True])
    >>> a, b, w = filter_pairs(np.array([0, 0, 1, 2], np.int32), np.array([1, 2, 2, 0], np.int32),
    ...                        np.array([5, 1, 7, 3], np.int32), ok, np.ones(3, bool), 2)
    >>> a.tolist(), b.tolist(), w.tolist()
    ([0, 2], [1, 0], [5, 3])
    """
    n = pre.shape[0]
    idx = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        idx[k] = i
        k += pre_ok[pre[i]] & post_ok[post[i]] & (weight[i] >= min_weight)
    op = np.empty(k, dtype=pre.dtype)
    oq = np.empty(k, dtype=post.dtype)
    ow = np.empty(k, dtype=weight.dtype)
    for j in range(k):
        i = idx[j]
        op[j] = pre[i]
        oq[j] = post[i]
        ow[j] = weight[i]
    return op, oq, ow
