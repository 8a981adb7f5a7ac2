"""The writer's in-bucket sort and the spill's bucket split, against numpy's stable sorts.

``_pair_order`` packs (pre, post, row) into one int64 and sorts it; the
reference is ``np.lexsort`` (stable): equal pairs must keep their input
order. ``spill_buckets`` must keep each bucket's rows in input order.
"""

from __future__ import annotations

import numpy as np
import pytest

from connectome_dask.store.sort import load_bucket, spill_buckets
from connectome_dask.store.writer import _pair_order


@pytest.mark.parametrize("n_neurons", [1, 2, 7, 139_000, 2**31 - 1])  # the last cannot pack: the fallback
@pytest.mark.parametrize("n", [0, 1, 5, 10_000])
def test_pair_order_is_the_stable_order(n_neurons, n):
    rng = np.random.default_rng(n + n_neurons % 97)
    hi = min(n_neurons, 40)  # few distinct pairs: many ties
    pre = (rng.integers(0, hi, n) * (n_neurons // hi)).astype(np.int32)
    post = (rng.integers(0, hi, n) * (n_neurons // hi)).astype(np.int32)
    got = _pair_order(pre, post, n_neurons)
    assert np.array_equal(got, np.lexsort((post, pre)))


def test_spill_keeps_each_buckets_rows_in_order(tmp_path):
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 1000, 50_000)
    bounds = np.array([0, 10, 300, 301, 999, 1000])
    pieces = [0] * (len(bounds) - 1)
    rows = np.arange(len(keys))
    for s in range(0, len(keys), 7_000):  # several pieces per bucket
        spill_buckets(tmp_path, bounds, keys[s : s + 7_000], {"row": rows[s : s + 7_000]}, pieces)
    for b in range(len(bounds) - 1):
        want = rows[(keys >= bounds[b]) & (keys < bounds[b + 1])]
        got = load_bucket(tmp_path, b, pieces[b], ["row"])
        assert np.array_equal(got["row"] if got is not None else np.zeros(0, int), want)
