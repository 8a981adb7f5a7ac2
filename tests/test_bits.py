"""Bit-set kernels (kernels.bits, kernels.pairs.keep_words) against numpy statements of the same rules."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from connectome_dask.kernels import bits as B
from connectome_dask.kernels import pairs as K


def _words(mask: np.ndarray) -> np.ndarray:
    """numpy's statement of the layout: little-endian bits, padded with clear bits to whole words."""
    pad = np.zeros(B.n_words(len(mask)) * 64 - len(mask), dtype=bool)
    return np.packbits(np.concatenate([mask, pad]), bitorder="little").view("<u8")


@numba.njit
def _count_all(words, starts, stops):
    out = np.empty(len(starts), dtype=np.int64)
    for i in range(len(starts)):
        out[i] = B.count_set(words, starts[i], stops[i])
    return out


@numba.njit
def _set_all(words, n):
    out = np.empty(n, dtype=np.bool_)
    for j in range(n):
        out[j] = B.is_set(words, j)
    return out


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200, 1000])
def test_count_set_every_range_against_numpy(n):
    rng = np.random.default_rng(n)
    mask = rng.random(n) < 0.4
    mask[-1] = True  # the last row's bit is the top one read
    w = _words(mask)
    a, b = np.triu_indices(n + 1)  # every start <= stop (empty ranges included)
    got = _count_all(w, a.astype(np.int64), b.astype(np.int64))
    cs = np.concatenate([[0], np.cumsum(mask)])
    np.testing.assert_array_equal(got, cs[b] - cs[a])
    np.testing.assert_array_equal(_set_all(w, n), mask)


def test_count_set_all_ones_words_and_long_ranges():
    mask = np.ones(64 * 5, dtype=bool)
    w = _words(mask)
    starts = np.array([0, 0, 1, 63, 64, 5, 0], np.int64)
    stops = np.array([64, 320, 320, 129, 128, 300, 0], np.int64)
    np.testing.assert_array_equal(_count_all(w, starts, stops), stops - starts)


@pytest.mark.parametrize("use_roi,use_conf,use_conf2", [(False, True, False), (True, False, False),
                                                        (True, True, False), (False, True, True),
                                                        (True, True, True), (False, False, False)])
def test_keep_words_is_the_row_test(use_roi, use_conf, use_conf2):
    rng = np.random.default_rng(7)
    n = 1000
    roi = rng.integers(-1, 5, n).astype(np.int16)
    roi_ok = np.array([False, True, False, True, True, False])  # slot 0 = no ROI
    conf = rng.random(n).astype(np.float32)
    conf2 = rng.random(n).astype(np.float32)
    conf[:10] = np.float32(0.5)  # exactly the threshold: not kept (strictly above)
    thr = float(np.float32(0.5))
    keep = np.ones(n, dtype=bool)
    if use_roi:
        keep &= roi_ok[roi + 1]
    if use_conf:
        keep &= conf > np.float32(0.5)
    if use_conf2:
        keep &= conf2 > np.float32(0.5)
    got = K.keep_words(roi, roi_ok, conf, conf2, thr, use_roi, use_conf, use_conf2, n)
    np.testing.assert_array_equal(got, _words(keep))


def test_pair_kernels_count_each_pairs_kept_rows():
    """pair_filter_counts / pack_group_filtered_pairs / pair_roi_filter_counts against pandas-free numpy."""
    rng = np.random.default_rng(3)
    n_pairs = 500
    weight = rng.integers(1, 150, n_pairs)  # pairs longer than a word, and across word boundaries
    ppre = np.sort(rng.integers(0, 40, n_pairs)).astype(np.int32)
    ppost = rng.integers(0, 40, n_pairs).astype(np.int32)
    n = int(weight.sum())
    roi = rng.integers(-1, 4, n).astype(np.int16)
    conf = rng.random(n).astype(np.float32)
    keep = conf > np.float32(0.7)
    w = _words(keep)
    pre_ok = rng.random(40) < 0.7
    post_ok = np.ones(40, dtype=bool)
    owner = np.repeat(np.arange(n_pairs), weight)
    want = np.bincount(owner[keep], minlength=n_pairs)
    sel = pre_ok[ppre] & (want >= 3)
    idx, cnt = K.pair_filter_counts(ppre, ppost, weight, pre_ok, post_ok, w, 3)
    np.testing.assert_array_equal(idx, np.flatnonzero(sel))
    np.testing.assert_array_equal(cnt, want[sel])

    codes = np.arange(40, dtype=np.int32)
    packed, lo, hi, ok = K.pack_group_filtered_pairs(ppre, ppost, weight, w, 1, codes, codes, 40, 32)
    assert ok
    nz = want >= 1
    np.testing.assert_array_equal(packed >> 32, (ppre[nz].astype(np.int64) * 40 + ppost[nz]))
    np.testing.assert_array_equal(packed & 0xFFFFFFFF, want[nz])

    ridx, rroi, rcnt = K.pair_roi_filter_counts(ppre, ppost, weight, pre_ok, post_ok, w, roi, 5)
    key = owner[keep & pre_ok[ppre][owner]] * 8 + roi[keep & pre_ok[ppre][owner]] + 1
    u, c = np.unique(key, return_counts=True)
    np.testing.assert_array_equal(ridx, u // 8)
    np.testing.assert_array_equal(rroi, u % 8 - 1)
    np.testing.assert_array_equal(rcnt, c)
