"""kernels.pairs.filter_pairs: the connection table's rows kept by neuron masks and a weight floor.

Reference: numpy's boolean mask of the same rule, in order.
"""

from __future__ import annotations

import numpy as np
import pytest

from connectome_dask.kernels.pairs import filter_pairs


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", ["pre subset", "post subset", "both", "min_weight", "all", "none"])
def test_filter_pairs_equals_a_numpy_mask(seed, case):
    rng = np.random.default_rng(seed)
    n, n_neurons = 50_000, 3_000
    pre = np.sort(rng.integers(0, n_neurons, n)).astype(np.int32)
    post = rng.integers(0, n_neurons, n).astype(np.int32)
    weight = rng.integers(1, 9, n).astype(np.int64)
    sub = rng.random(n_neurons) < 0.1
    every = np.ones(n_neurons, dtype=bool)
    pre_ok, post_ok, mw = {
        "pre subset": (sub, every, 1), "post subset": (every, sub, 1), "both": (sub, ~sub, 2),
        "min_weight": (every, every, 5), "all": (every, every, 1), "none": (~every, every, 1),
    }[case]
    keep = pre_ok[pre] & post_ok[post] & (weight >= mw)
    a, b, w = filter_pairs(pre, post, weight, pre_ok, post_ok, mw)
    assert a.dtype == pre.dtype and b.dtype == post.dtype and w.dtype == weight.dtype
    assert np.array_equal(a, pre[keep]) and np.array_equal(b, post[keep]) and np.array_equal(w, weight[keep])
    assert (len(a) == 0) == (case == "none")
