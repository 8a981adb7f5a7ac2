"""fetch_adjacencies' threaded steps: the in-pair order on two threads and conn_df built on three.

References: a pandas sort of the rows (bodyId_pre, bodyId_post, weight
descending, roi name) and the single-threaded path of the same function
(thresholds lowered so the small test stores take the threaded paths).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import connectome_dask as cd
import connectome_dask.query.neuprint as NP
from connectome_dask.kernels import pairs as K


def _rows(seed: int, n_pairs: int = 3000):
    rng = np.random.default_rng(seed)
    key = np.unique(rng.integers(0, 200 * 200, n_pairs))  # distinct pairs, sorted by (pre, post)
    pre, post = key // 200, key % 200
    n_pairs = len(key)
    k = rng.integers(1, 6, n_pairs)  # rows (slots) per pair
    rows_pre, rows_post = np.repeat(pre, k), np.repeat(post, k)
    slot = np.concatenate([np.sort(rng.choice(12, m, replace=False)) for m in k])  # strictly ascending in a pair
    weight = rng.integers(1, 4, len(slot)).astype(np.int64)  # ties: the rank decides
    rank = rng.permutation(12).astype(np.int64)
    return rows_pre.astype(np.int32), rows_post.astype(np.int32), slot.astype(np.int32), weight, rank


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("threshold", [1, 10**9])  # 1: always two threads
def test_in_pair_order_matches_a_pandas_sort(monkeypatch, seed, threshold):
    monkeypatch.setattr(K, "_PARALLEL_ROWS", threshold)
    pre, post, slot, weight, rank = _rows(seed)
    s, w, ok = K.pair_rows_by_weight(pre, post, slot, weight, rank)
    assert ok
    df = pd.DataFrame({"p": pre, "q": post, "s": slot, "w": weight, "r": rank[slot]})
    want = df.sort_values(["p", "q", "w", "r"], ascending=[True, True, False, True], kind="stable")
    assert np.array_equal(s, want["s"].to_numpy()) and np.array_equal(w, want["w"].to_numpy())


@pytest.mark.parametrize("threshold", [1, 10**9])
def test_in_pair_order_in_place_reorders_the_slots_given(monkeypatch, threshold):
    monkeypatch.setattr(K, "_PARALLEL_ROWS", threshold)
    pre, post, slot, weight, rank = _rows(3)
    df = pd.DataFrame({"p": pre, "q": post, "s": slot, "w": weight, "r": rank[slot]})
    want = df.sort_values(["p", "q", "w", "r"], ascending=[True, True, False, True], kind="stable")
    mine = slot.copy()
    s, w, ok = K.pair_rows_by_weight(pre, post, mine, weight, rank, slot_in_place=True)
    assert ok and s is mine and np.array_equal(mine, want["s"].to_numpy())
    assert np.array_equal(w, want["w"].to_numpy()) and np.array_equal(weight, df["w"].to_numpy())  # weights: a copy


@pytest.mark.parametrize("threshold", [1, 10**9])
def test_in_pair_order_looks_slots_up_from_codes(monkeypatch, threshold):
    # codes -1..10 whose slots (slot_of[code + 1]) ascend with them: the same order as given the slots
    monkeypatch.setattr(K, "_PARALLEL_ROWS", threshold)
    pre, post, slot, weight, rank = _rows(4)
    slot_of = np.arange(12, dtype=np.int32) * 3  # slot of code c: 3 * (c + 1) (rank is over 36 slots)
    rank36 = np.random.default_rng(4).permutation(36).astype(np.int64)
    codes = (slot - 1).astype(np.int16)
    s, w, ok = K.pair_rows_by_weight(pre, post, codes, weight, rank36, slot_of=slot_of, shift=1)
    df = pd.DataFrame({"p": pre, "q": post, "s": slot_of[slot], "w": weight, "r": rank36[slot_of[slot]]})
    want = df.sort_values(["p", "q", "w", "r"], ascending=[True, True, False, True], kind="stable")
    assert ok and s.dtype == slot_of.dtype
    assert np.array_equal(s, want["s"].to_numpy()) and np.array_equal(w, want["w"].to_numpy())
    assert np.array_equal(codes, (slot - 1).astype(np.int16))  # the codes are not touched
    # two codes of a pair mapped to one slot need a sum: refused
    dup = np.flatnonzero((pre[1:] == pre[:-1]) & (post[1:] == post[:-1]))[0]
    merged = slot_of.copy()
    merged[slot[dup + 1]] = merged[slot[dup]]
    _, _, ok2 = K.pair_rows_by_weight(pre, post, codes, weight, rank36, slot_of=merged, shift=1)
    assert not ok2


def test_mark_neurons_equals_numpy_index_assignment():
    rng = np.random.default_rng(5)
    pre, post = rng.integers(0, 5000, 20_000).astype(np.int32), rng.integers(0, 5000, 20_000).astype(np.int32)
    want = np.zeros(6000, dtype=bool)
    want[pre] = True
    want[post] = True
    got = np.zeros(6000, dtype=bool)
    K.mark_neurons(got, pre, post)
    assert np.array_equal(got, want) and 0 < got.sum() < 6000


@pytest.mark.parametrize("where", ["first half", "second half"])
def test_in_pair_order_refuses_rows_that_need_sums_on_either_thread(monkeypatch, where):
    monkeypatch.setattr(K, "_PARALLEL_ROWS", 1)
    pre, post, slot, weight, rank = _rows(7)
    i = 10 if where == "first half" else len(pre) - 10
    j = int(np.flatnonzero((pre == pre[i]) & (post == post[i]))[0])
    weight = weight.copy()
    weight[j] = 0  # not a total: the caller must take the general path
    s, w, ok = K.pair_rows_by_weight(pre, post, slot, weight, rank)
    assert not ok and np.array_equal(s, slot) and np.array_equal(w, weight)


def test_conn_df_on_three_threads_equals_one(small_store, monkeypatch):
    conn = cd.open(small_store.path, set_default=False)
    monkeypatch.setattr(NP, "_THREADED_ROWS", 10**12)
    monkeypatch.setattr(K, "_PARALLEL_ROWS", 10**12)
    n1, c1 = cd.fetch_adjacencies(None, None, client=conn, progress=False)
    monkeypatch.setattr(NP, "_THREADED_ROWS", 1)
    monkeypatch.setattr(K, "_PARALLEL_ROWS", 1)
    n3, c3 = cd.fetch_adjacencies(None, None, client=conn, progress=False)
    assert len(c1) > 100 and c1.equals(c3) and n1.equals(n3)
    # the reference order, in pandas
    want = c1.sort_values(["bodyId_pre", "bodyId_post", "weight", "roi"], ascending=[True, True, False, True],
                          ignore_index=True)
    assert c3.equals(want)
    assert set(n3["bodyId"]) == set(c1["bodyId_pre"]) | set(c1["bodyId_post"])
