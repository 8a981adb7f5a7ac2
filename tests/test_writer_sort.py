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


def test_bucket_loads_the_asked_columns_of_every_piece_in_order(tmp_path):
    """Columns of several dtypes over pieces of unequal size (some empty); a column left out is skipped."""
    rng = np.random.default_rng(1)
    n = 30_000
    keys = rng.integers(0, 100, n)
    cols = {"row": np.arange(n, dtype=np.int64), "roi": rng.integers(-1, 60, n).astype(np.int16),
            "conf": rng.random(n).astype(np.float32), "flag": rng.random(n) < 0.5}
    bounds = np.array([0, 3, 50, 100])
    pieces = [0] * (len(bounds) - 1)
    cuts = [0, 5, 5_000, 5_001, 19_000, n]
    for s, e in zip(cuts[:-1], cuts[1:], strict=True):
        spill_buckets(tmp_path, bounds, keys[s:e], {c: a[s:e] for c, a in cols.items()}, pieces)
    for b in range(len(bounds) - 1):
        sel = (keys >= bounds[b]) & (keys < bounds[b + 1])
        got = load_bucket(tmp_path, b, pieces[b], ["conf", "row", "flag"])
        assert got is not None and list(got) == ["conf", "row", "flag"]
        for c in got:
            assert got[c].dtype == cols[c].dtype
            np.testing.assert_array_equal(got[c], cols[c][sel])
        assert not (tmp_path / f"b{b:06d}").exists()  # the bucket's files are removed once loaded


def test_bucket_with_a_truncated_piece_is_refused(tmp_path):
    from connectome_dask.errors import StoreError

    pieces = [0]
    spill_buckets(tmp_path, np.array([0, 10]), np.arange(10) % 10, {"row": np.arange(10)}, pieces)
    f = tmp_path / "b000000" / "000000.npy"
    f.write_bytes(f.read_bytes()[:-8])
    with pytest.raises(StoreError, match="truncated"):
        load_bucket(tmp_path, 0, pieces[0], ["row"])


def test_buckets_and_gathers_reuse_buffers_without_mixing_rows(tmp_path):
    """Buckets of growing and shrinking size loaded and sorted into the same buffers, against fresh copies."""
    from connectome_dask.store.writer import _take_columns

    rng = np.random.default_rng(4)
    n = 20_000
    keys = rng.integers(0, 100, n)
    cols = {"row": np.arange(n, dtype=np.int64), "v": rng.random(n).astype(np.float32)}
    bounds = np.array([0, 5, 60, 61, 100])  # bucket sizes ~1 k, 11 k, 200, 8 k
    pieces = [0] * (len(bounds) - 1)
    for s in range(0, n, 3_000):
        spill_buckets(tmp_path, bounds, keys[s : s + 3_000], {c: a[s : s + 3_000] for c, a in cols.items()}, pieces)
    loads: dict = {}
    outs: dict = {}
    seen = []
    for b in range(len(bounds) - 1):
        sel = (keys >= bounds[b]) & (keys < bounds[b + 1])
        got = load_bucket(tmp_path, b, pieces[b], ["row", "v"], buffers=loads)
        assert got is not None and np.shares_memory(got["row"], loads["row"])
        order = np.argsort(got["v"], kind="stable")
        srt = _take_columns(got, order, buffers=outs)
        np.testing.assert_array_equal(srt["row"], cols["row"][sel][order])
        np.testing.assert_array_equal(srt["v"], cols["v"][sel][order])
        seen.append(srt["row"].copy())
    assert len(loads["row"]) >= max(len(x) for x in seen)  # grown to the largest bucket, never shrunk
