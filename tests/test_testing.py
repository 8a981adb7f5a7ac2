"""connectome_dask.testing: each helper checked against facts computed here by hand."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest

from connectome_dask.testing import (
    assert_pairs_equal,
    build_small_store,
    pair_reference,
    raise_if_dask_computes,
)


def test_raise_if_dask_computes_counts_graphs():
    d = dask.delayed(sum)([1, 2])
    with raise_if_dask_computes(max_computes=2):
        d.compute(scheduler="sync")
        d.compute(scheduler="threads")
    with pytest.raises(RuntimeError, match="2 dask graph"):
        with raise_if_dask_computes(max_computes=1):
            d.compute(scheduler="sync")
            d.compute(scheduler="sync")


def test_pair_reference_by_hand():
    syn = pd.DataFrame({
        "pre": [0, 0, 0, 1, 1, 2], "post": [1, 1, 2, 0, 0, 2],
        "confidence": np.array([0.9, 0.3, 0.5, 0.7, 0.7, 0.1], np.float32),
        "roi_post": [0, 1, 0, 0, -1, 1],
    })
    assert pair_reference(syn).values.tolist() == [[0, 1, 2], [0, 2, 1], [1, 0, 2], [2, 2, 1]]
    # 0.5 is not above 0.5; 0.3 and 0.1 are dropped too
    assert pair_reference(syn, confidence=0.5).values.tolist() == [[0, 1, 1], [1, 0, 2]]
    assert pair_reference(syn, min_weight=2).values.tolist() == [[0, 1, 2], [1, 0, 2]]
    assert pair_reference(syn, rois=[0]).values.tolist() == [[0, 1, 1], [0, 2, 1], [1, 0, 1]]
    assert pair_reference(syn, by_roi="roi_post").values.tolist() == [
        [0, 1, 0, 1], [0, 1, 1, 1], [0, 2, 0, 1], [1, 0, -1, 1], [1, 0, 0, 1], [2, 2, 1, 1]]


def test_assert_pairs_equal_catches_each_difference():
    a = pd.DataFrame({"pre": [0, 1], "post": [1, 0], "weight": [3, 2]})
    assert_pairs_equal(a.iloc[::-1], a.astype("int32"))
    for b in (a.assign(weight=[3, 1]), a.iloc[:1], pd.concat([a, a.iloc[:1]])):
        with pytest.raises(AssertionError):
            assert_pairs_equal(a, b)
    with pytest.raises(AssertionError, match="columns differ"):
        assert_pairs_equal(a, a.rename(columns={"weight": "w"}))


def test_build_small_store_holds_its_tables(tmp_path):
    conn, neurons, syn = build_small_store(tmp_path / "s", n_neurons=40, n_synapses=3_000, chunk_rows=256)
    assert conn.n_neurons == 40 and conn.n_synapses == 3_000 and conn.check() == []
    assert conn.neurons["bodyId"].tolist() == neurons["bodyId"].tolist()
    got = conn.read_synapses(["pre", "post", "roi_post"])
    order = np.lexsort((syn["post"].to_numpy(), syn["pre"].to_numpy()))
    for c in ("pre", "post"):
        assert np.array_equal(got[c], syn[c].to_numpy()[order])
    assert sorted(np.bincount(got["roi_post"] + 1).tolist()) == sorted(
        np.bincount(syn["roi_post"].to_numpy() + 1).tolist())
