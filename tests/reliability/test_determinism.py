"""Partition-count invariance: results are bit-identical whatever the chunking and scheduler.

Property tests (hypothesis, bounded examples) draw a chunk length
(``chunk_rows``, store written again from the same raw rows), a partition
size (``connectome_dask.partition_chunks``), a scheduler (synchronous,
threads with 1-4 workers, a distributed LocalCluster of 2 worker processes)
and compare with pure pandas references computed in the test:

- pair counts, pair counts by postsynaptic ROI, with a confidence threshold;
- grouped type x type counts (``Connectome.adjacency(by="type")``);
- per-neuron ROI counts (``neuron_roi_counts``);
- NestedMatrix relative weights, identical bit for bit to a baseline run.
"""

from __future__ import annotations

import contextlib
import warnings

import dask
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectome_dask.aggregate import neuron_roi_counts, pair_counts
from connectome_dask.matrix import NestedMatrix
from connectome_dask.store import StoreWriter
from tests.reliability import _reliability_helpers as H

pytestmark = pytest.mark.timeout(300)

CHUNKS = [1000, 3000, 4096, 7777, 60_000]
SETTINGS = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    c = Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def stores(small_store, tmp_path_factory):
    """The fixture's raw rows written again with other chunk lengths (cached per length)."""
    root = tmp_path_factory.mktemp("chunkings")
    syn = small_store.synapses.drop(columns=["bodyId_pre", "bodyId_post"])
    cache = {}

    def get(chunk_rows: int):
        if chunk_rows not in cache:
            cols = {c: str(syn[c].dtype) for c in syn.columns if c not in ("pre", "post")}
            # shuffled rows: the writer must sort them itself
            block = syn.sample(frac=1.0, random_state=chunk_rows)
            w = StoreWriter(
                root / f"c{chunk_rows}", len(small_store.neurons), cols, chunk_rows=chunk_rows
            )
            w.append({c: block[c].to_numpy() for c in block.columns})
            cache[chunk_rows] = w.close(small_store.neurons, {"name": "det"}, rois=small_store.rois)
        return cache[chunk_rows]

    return get


@pytest.fixture(scope="module")
def refs(small_store):
    syn = small_store.synapses
    neurons = small_store.neurons
    types = neurons["type"].astype(object).to_numpy()
    t = syn.assign(type_pre=types[syn["pre"]], type_post=types[syn["post"]]).dropna(
        subset=["type_pre", "type_post"]
    )
    labels = sorted(neurons["type"].dropna().unique())
    by_type = (
        t.groupby(["type_pre", "type_post"])
        .size()
        .unstack(fill_value=0)
        .reindex(index=labels, columns=labels, fill_value=0)
    )
    n = len(neurons)
    rc = []
    for key, side, roi in (
        ("pre", "pre", "roi_pre"),
        ("post", "post", "roi_post"),
        ("downstream", "pre", "roi_post"),
    ):
        g = syn.groupby([side, roi]).size().rename(key)
        g.index = g.index.set_names(["index", "roi"])
        rc.append(g)
    roi_counts = pd.concat(rc, axis=1).fillna(0).astype(np.int64).sort_index().reset_index()
    roi_counts["upstream"] = roi_counts["post"]
    with dask.config.set(scheduler="sync"):
        nested = NestedMatrix.from_synapses(
            small_store.conn, weight_mode="relative_outgoing", progress=False
        )
    return {
        "pairs": H.pair_reference(syn),
        "pairs_roi": H.pair_reference(syn, by_roi=True),
        "pairs_conf": H.pair_reference(syn[syn["confidence"] > 0.5]),
        "by_type": by_type,
        "roi_counts": roi_counts,
        "nested": nested,
        "n": n,
    }


@contextlib.contextmanager
def scheduler(kind: str, workers: int, client, partition_chunks: int):
    with dask.config.set({"connectome_dask.partition_chunks": partition_chunks}):
        if kind == "distributed":
            with client.as_current():
                yield
        elif kind == "threads":
            with dask.config.set(scheduler="threads", num_workers=workers):
                yield
        else:
            with dask.config.set(scheduler="sync"):
                yield


draws = dict(
    chunk_rows=st.sampled_from(CHUNKS),
    partition_chunks=st.integers(1, 5),
    kind=st.sampled_from(["sync", "threads", "distributed"]),
    workers=st.integers(1, 4),
)


@SETTINGS
@given(**draws)
def test_pair_counts_bit_identical(
    stores, refs, client, chunk_rows, partition_chunks, kind, workers
):
    conn = stores(chunk_rows)
    with scheduler(kind, workers, client, partition_chunks):
        assert len(conn.partitions()) == -(-conn.n_synapses // (chunk_rows * partition_chunks))
        H.assert_pairs_equal(pair_counts(conn, progress=False), refs["pairs"])
        H.assert_pairs_equal(pair_counts(conn, by_roi=True, progress=False), refs["pairs_roi"])
        H.assert_pairs_equal(pair_counts(conn, confidence=0.5, progress=False), refs["pairs_conf"])


@SETTINGS
@given(**draws)
def test_grouped_and_roi_counts_bit_identical(
    stores, refs, client, chunk_rows, partition_chunks, kind, workers
):
    conn = stores(chunk_rows)
    with scheduler(kind, workers, client, partition_chunks):
        da = conn.adjacency(by="type", progress=False)
        rc = neuron_roi_counts(conn, progress=False, cache=False)
    ref = refs["by_type"]
    assert list(da.coords["pre"].values) == list(ref.index)
    assert list(da.coords["post"].values) == list(ref.columns)
    assert da.dtype == np.int64 and np.array_equal(np.asarray(da.values), ref.to_numpy())
    want = refs["roi_counts"]
    got = rc.sort_values(["index", "roi"]).reset_index(drop=True)[list(want.columns)]
    assert np.array_equal(got.to_numpy(np.int64), want.to_numpy(np.int64))


@settings(
    max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(**draws)
def test_nested_relative_weights_identical(
    stores, refs, client, chunk_rows, partition_chunks, kind, workers
):
    conn = stores(chunk_rows)
    with scheduler(kind, workers, client, partition_chunks):
        m = NestedMatrix.from_synapses(conn, weight_mode="relative_outgoing", progress=False)
    base = refs["nested"]
    assert m.ordered_neurons == base.ordered_neurons
    a, b = m.to_scipy(), base.to_scipy()
    for x, y in ((a.indptr, b.indptr), (a.indices, b.indices), (a.data, b.data)):
        assert np.array_equal(x, y)  # bit-identical floats, same sparsity
    assert np.array_equal(
        m.get_relative_weights(by_type=True).to_numpy(),
        base.get_relative_weights(by_type=True).to_numpy(),
    )
