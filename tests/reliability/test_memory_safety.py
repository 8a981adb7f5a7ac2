"""Memory safety: requests for dense objects larger than allowed fail fast, before allocating.

With ``connectome_dask.max_dense_bytes`` lowered, realistic calls on the test
store must raise ``MemoryError`` naming the shape, the size and the limit;
without lowering it, fake whole-brain-sized requests (10^6 x 10^6 groups, a
2 x 10^5-neuron nested matrix) must raise immediately. "Before allocating" is
measured with ``tracemalloc`` (peak of the failing call) and "before any work
is scheduled" with a dask callback counting executed tasks.
(Worker memory limits / spill thresholds of ``local_cluster`` are checked in
``test_worker_faults.py`` on its cluster.)
"""

from __future__ import annotations

import re
import tracemalloc

import dask
import numpy as np
import pandas as pd
import pytest
from dask.callbacks import Callback

from connectome_dask.aggregate import group_counts, neuron_roi_counts
from connectome_dask.matrix import DenseMatrixTooLarge, NestedMatrix

pytestmark = pytest.mark.timeout(120)

SMALL = 10_000  # bytes


class TaskCounter(Callback):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _pretask(self, key, dsk, state):
        self.n += 1


def fails_fast(fn, pattern: str, exc=MemoryError) -> None:
    counter = TaskCounter()
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="sync"), counter, pytest.raises(exc) as e:
            fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert re.search(pattern, str(e.value)), str(e.value)
    assert "max_dense_bytes" in str(e.value)
    assert counter.n == 0, f"{counter.n} dask tasks ran before the refusal"
    assert peak < 64 << 20, f"peak allocation {peak / 2**20:.0f} MiB before the refusal"


@pytest.fixture(scope="module")
def nested(small_store):
    with dask.config.set(scheduler="sync"):
        return NestedMatrix.from_synapses(small_store.conn, weight_mode="count", progress=False)


def test_dense_nested_matrix_with_low_limit(nested):
    n = nested.shape[0]
    assert n * n * 8 > SMALL
    with dask.config.set({"connectome_dask.max_dense_bytes": SMALL}):
        fails_fast(lambda: nested.matrix, rf"{n:,} x {n:,}")
        fails_fast(lambda: nested.get_relative_weights(), rf"{n:,} x {n:,}")
        # the sparse views still work under the same limit
        assert nested.to_scipy().nnz == nested.nnz > 0
        assert nested.to_xarray().data.nnz == nested.nnz
    with dask.config.set({"connectome_dask.max_dense_bytes": n * n * 8}):
        assert nested.matrix.shape == (n, n)


def test_grouped_adjacency_with_low_limit(small_store):
    conn = small_store.conn
    ntypes = conn.neurons["type"].nunique()
    with dask.config.set({"connectome_dask.max_dense_bytes": 8 * ntypes}):
        fails_fast(lambda: conn.adjacency(by="type", progress=False), rf"{ntypes:,} x {ntypes:,}")
        fails_fast(lambda: conn.adjacency(by="instance", progress=False), r"dense")
        fails_fast(
            lambda: neuron_roi_counts(conn, progress=False, cache=False), r"per-neuron ROI counts"
        )
    # neuron level is sparse: fine under the same limit, and equal to pandas
    with dask.config.set({"connectome_dask.max_dense_bytes": 8 * ntypes, "scheduler": "sync"}):
        da = conn.adjacency(progress=False)
    ref = small_store.synapses.groupby(["pre", "post"]).size()
    assert int(da.data.nnz) == len(ref) and int(da.data.sum()) == conn.n_synapses


def test_huge_group_counts_refused_without_lowering(small_store):
    conn = small_store.conn
    codes = np.zeros(conn.n_neurons, dtype=np.int64)
    fails_fast(lambda: group_counts(conn, codes, codes, 10**6, 10**6), r"1,000,000 x 1,000,000")


def test_huge_nested_matrix_dense_view_refused_without_lowering():
    n = 200_000
    ids = np.arange(1, n + 1, dtype=np.int64)
    m = NestedMatrix.from_connectivity(
        pd.DataFrame({"pre": ids, "post": np.roll(ids, 1)}),
        pd.DataFrame({"root_id": ids, "cell_type": np.array(["A", "B"], dtype=object)[ids % 2]}),
    )
    assert m.shape == (n, n)
    fails_fast(lambda: m.matrix, r"200,000 x 200,000", DenseMatrixTooLarge)
    fails_fast(lambda: m.get_relative_weights(), r"200,000 x 200,000", DenseMatrixTooLarge)
    assert m.sum_type_matrix.to_numpy().sum() == n  # the type level is small and allowed
