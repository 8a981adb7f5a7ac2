"""The per-ROI connection table (``index.zarr/roi_pairs*``) and the ``roi_table`` read path.

References are independent of the package: a pandas groupby of the raw
synapse rows written in the test (``(pre, post, roi_post) -> count``), and
the scan of the synapse arrays forced with ``method="scan"``. Covered: the
table written at ingest (buckets, presorted blocks, connection-level rows),
rebuilt by ``assign_rois`` / ``write_synapse_columns`` in the same commit as
the ROI column (and a failed rebuild leaving the store as it was), the plan
choice and its reasons, forced methods that cannot work, bit-identical
counts over chunk sizes, partition counts and schedulers, old stores without
the table, and the deep check finding a damaged table.
"""

from __future__ import annotations

import json
import logging
import shutil
from unittest import mock

import dask
import numpy as np
import pandas as pd
import pytest

import connectome_dask as cd
from connectome_dask import aggregate as A
from connectome_dask.compute import plan as P
from connectome_dask.compute.plan import plan_read
from connectome_dask.store import StoreWriter, write_store
from connectome_dask.store.format import _read_meta, write_meta

N_NEURONS = 60
ROI_NAMES = ["R0", "R1", "R2", "R3", "R4"]
ROI_INFO = {"names": ROI_NAMES, "primary": ROI_NAMES, "hierarchy": {}}
CHUNKS = (64, 4096)
PARTITIONS = (1, 3, 7)


def _raw(seed: int = 3, n: int = 20_000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    neurons = pd.DataFrame({
        "bodyId": rng.choice(np.arange(1000, 100_000), N_NEURONS, replace=False).astype(np.int64),
        "type": pd.array(rng.choice(["A", "B", "C", None], N_NEURONS), dtype="string"),
        "instance": pd.array(rng.choice(["A_L", "A_R", "B_L", None], N_NEURONS), dtype="string"),
    })
    # pairs with several synapses and several ROIs each (heavy pairs straddle chunks and partitions)
    n_pairs = 900
    pp = rng.integers(0, N_NEURONS - 3, n_pairs)
    pq = rng.integers(0, N_NEURONS - 3, n_pairs)
    w = np.minimum(rng.zipf(1.5, n_pairs), 400).astype(np.float64)
    pick = rng.choice(n_pairs, n, p=w / w.sum())
    syn = pd.DataFrame({
        "pre": pp[pick].astype(np.int32),
        "post": pq[pick].astype(np.int32),
        "confidence": (rng.integers(0, 33, n) / 32).astype(np.float32),
        "roi_post": rng.integers(-1, len(ROI_NAMES), n).astype(np.int16),
        "x": rng.uniform(0, 100, n).astype(np.float32),
    })
    return neurons, syn


def ref_roi_pairs(syn: pd.DataFrame, rois=None, pre=None, post=None) -> pd.DataFrame:
    """The per-ROI counts, as a pandas groupby of the synapse rows (sorted by pre, post, roi)."""
    s = syn
    if rois is not None:
        s = s[s["roi_post"].isin(rois)]
    if pre is not None:
        s = s[s["pre"].isin(pre)]
    if post is not None:
        s = s[s["post"].isin(post)]
    g = s.groupby(["pre", "post", "roi_post"]).size().reset_index(name="weight")
    return g.rename(columns={"roi_post": "roi"}).sort_values(["pre", "post", "roi"], ignore_index=True)


def ref_pairs(syn: pd.DataFrame, rois=None, pre=None, post=None, min_weight: int = 1) -> pd.DataFrame:
    g = ref_roi_pairs(syn, rois, pre, post).groupby(["pre", "post"])["weight"].sum().reset_index()
    return g[g["weight"] >= min_weight].reset_index(drop=True)


def _write(path, neurons, syn, chunk_rows, **kw):
    cols = {c: str(syn[c].dtype) for c in syn.columns if c not in ("pre", "post")}
    block = syn.sample(frac=1.0, random_state=chunk_rows)  # the writer sorts
    with StoreWriter(path, len(neurons), cols, chunk_rows=chunk_rows, **kw) as w:
        w.append({c: block[c].to_numpy() for c in block.columns})
        return w.close(neurons, {"name": path.name}, rois=ROI_INFO)


@pytest.fixture(scope="module")
def raw():
    return _raw()


@pytest.fixture(scope="module")
def stores(raw, tmp_path_factory):
    neurons, syn = raw
    root = tmp_path_factory.mktemp("roi_table")
    # chunk 64: spill buckets too (pre_counts + a small bucket), so the table streams over bucket seams
    counts = np.bincount(syn["pre"], minlength=N_NEURONS)
    return {64: _write(root / "c64", neurons, syn, 64, pre_counts=counts, bucket_rows=3000),
            4096: _write(root / "c4096", neurons, syn, 4096)}


def _table_df(conn) -> pd.DataFrame:
    t = conn.read_roi_pairs()
    return pd.DataFrame({"pre": t["pre"].astype(np.int64), "post": t["post"].astype(np.int64),
                         "roi": t["roi"].astype(np.int64), "weight": t["weight"]})


def _assert_table_is(conn, syn_rows: pd.DataFrame) -> None:
    got = _table_df(conn)
    want = ref_roi_pairs(syn_rows).astype(np.int64)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert conn.n_roi_pairs == len(want)


def _syn_of(conn) -> pd.DataFrame:
    d = conn.read_synapses(["pre", "post", "roi_post"], 0, conn.n_synapses)
    return pd.DataFrame(d)


# ----------------------------------------------------------------------------- written at ingest


@pytest.mark.parametrize("chunk_rows", CHUNKS)
def test_ingest_writes_the_table(raw, stores, chunk_rows):
    _, syn = raw
    conn = stores[chunk_rows]
    assert conn.has_roi_pair_table
    assert conn.meta["index"]["roi_pairs"] == "roi_pairs"
    assert conn.meta["index"]["roi_pairs_of"] == conn.meta["synapses"]["columns"]["roi_post"]
    _assert_table_is(conn, syn)
    assert conn.check() == []


def test_presorted_blocks_split_inside_pairs(raw, tmp_path):
    """Blocks cut inside a pair's rows (and inside one ROI's run) still give one row per (pair, roi)."""
    neurons, syn = raw
    s = syn.sort_values(["pre", "post"], kind="stable", ignore_index=True)
    cols = {c: str(s[c].dtype) for c in s.columns if c not in ("pre", "post")}
    with StoreWriter(tmp_path / "p", len(neurons), cols, chunk_rows=128, presorted=True) as w:
        for a in range(0, len(s), 37):
            w.append({c: s[c].to_numpy()[a : a + 37] for c in s.columns})
        conn = w.close(neurons, rois=ROI_INFO)
    _assert_table_is(conn, syn)
    assert conn.check() == []


def test_bounded_slices_inside_a_block(raw, tmp_path, monkeypatch):
    """A block is counted in slices (bounded memory); slices cut inside pairs change nothing."""
    from connectome_dask.store import tables

    neurons, syn = raw
    monkeypatch.setattr(tables._RoiPairTable, "SLICE_ROWS", 13)
    conn = _write(tmp_path / "sliced", neurons, syn, 256)
    _assert_table_is(conn, syn)


def test_no_roi_column_no_table(raw, tmp_path):
    neurons, syn = raw
    conn = write_store(tmp_path / "s", neurons, syn[["pre", "post", "confidence"]], chunk_rows=256)
    assert not conn.has_roi_pair_table and "roi_pairs" not in conn.meta["index"]
    assert conn.n_roi_pairs == 0
    with pytest.raises(cd.StoreError, match="no per-ROI connection table"):
        conn.read_roi_pairs()


def test_connection_level_store(tmp_path):
    """Weighted edges per (pair, ROI): the table sums weights; counts equal the scan and pandas."""
    rng = np.random.default_rng(5)
    n = 3000
    edges = pd.DataFrame({"pre": rng.integers(0, 40, n).astype(np.int32),
                          "post": rng.integers(0, 40, n).astype(np.int32),
                          "roi_post": rng.integers(-1, 4, n).astype(np.int16),
                          "weight": rng.integers(1, 30, n).astype(np.int64)})
    edges = edges.drop_duplicates(["pre", "post", "roi_post"], ignore_index=True)
    neurons = pd.DataFrame({"bodyId": np.arange(40, dtype=np.int64) + 7})
    with StoreWriter(tmp_path / "e", 40, {"roi_post": "int16", "weight": "int64"}, chunk_rows=64,
                     kind="connections") as w:
        w.append({c: edges[c].to_numpy() for c in edges.columns})
        conn = w.close(neurons, rois={"names": ["Q0", "Q1", "Q2", "Q3"]})
    assert conn.kind == "connections" and conn.has_roi_pair_table
    ref = (edges.groupby(["pre", "post", "roi_post"])["weight"].sum().reset_index()
           .rename(columns={"roi_post": "roi"}).astype(np.int64))
    pd.testing.assert_frame_equal(_table_df(conn), ref, check_dtype=False)
    assert conn.check() == []
    got = A.pair_counts(conn, by_roi=True, progress=False)
    assert plan_read(conn, by_roi=True).method == "roi_table"
    assert got.equals(A.pair_counts(conn, by_roi=True, method="scan", progress=False))
    pd.testing.assert_frame_equal(got.astype(np.int64), ref, check_dtype=False)
    f = A.pair_counts(conn, rois=["Q1", "Q3"], min_weight=20, progress=False)
    assert f.equals(A.pair_counts(conn, rois=["Q1", "Q3"], min_weight=20, method="scan", progress=False))
    want = ref[ref["roi"].isin([1, 3])].groupby(["pre", "post"])["weight"].sum().reset_index()
    want = want[want["weight"] >= 20].reset_index(drop=True)
    pd.testing.assert_frame_equal(f.astype(np.int64), want.astype(np.int64), check_dtype=False)


# ----------------------------------------------------------------------------- rebuilt with roi_post


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A small synthetic store with its procedural meshes, ROIs assigned by assign_rois."""
    root = tmp_path_factory.mktemp("roi_table_synth")
    conn = cd.datasets.synthetic(root / "store", n_neurons=120, n_synapses=8_000, seed=2, skeletons=False,
                                 progress=False, chunk_rows=512)
    rs = cd.datasets.meshes_for(conn)
    return conn.assign_rois(rs, progress=False), rs


def test_assign_rois_rebuilds_the_table(synth, tmp_path):
    conn, rs = synth
    assert conn.has_roi_pair_table
    _assert_table_is(conn, _syn_of(conn))
    copy = cd.open(shutil.copytree(conn.path, tmp_path / "copy"), set_default=False)
    again = copy.assign_rois(rs, exact=False, progress=False)  # voxel lookup: some codes change
    assert again.generation == copy.generation + 1
    rel = again.meta["index"]["roi_pairs"]
    assert rel != copy.meta["index"]["roi_pairs"] and rel.startswith("roi_pairs.g")
    assert again.meta["index"]["roi_pairs_of"] == again.meta["synapses"]["columns"]["roi_post"]
    _assert_table_is(again, _syn_of(again))
    # the previous generation's table is kept one commit (a reader of it may still be running) ...
    assert f"index.zarr/{copy.meta['index']['roi_pairs']}" in again.meta["retained"]
    assert again.check() == [] and again.unreferenced() == []
    old_dir = copy.path / "index.zarr" / copy.meta["index"]["roi_pairs"]
    assert old_dir.is_dir()
    third = again.assign_rois(rs, progress=False)
    # ... and removed by the next one
    assert not old_dir.exists()
    assert (third.path / "index.zarr" / rel).is_dir()
    _assert_table_is(third, _syn_of(third))
    assert third.check() == [] and third.unreferenced() == []


def test_write_synapse_columns_of_roi_post_rebuilds_the_table(raw, stores, tmp_path):
    _, syn = raw
    copy = cd.open(shutil.copytree(stores[64].path, tmp_path / "copy"), set_default=False)

    def shift(block):
        return {"roi_post": np.where(block["x"] < 50, block["roi_post"], -1).astype(np.int16)}

    new = copy.write_synapse_columns(shift, ["x", "roi_post"], {"roi_post": "int16"}, progress=False)
    want = syn.copy()
    want["roi_post"] = np.where(want["x"] < 50, want["roi_post"], -1).astype(np.int16)
    _assert_table_is(new, want)
    assert new.check() == []
    # a commit of another column keeps the table (same roi_post array)
    other = new.write_synapse_columns(lambda b: {"flag": (b["x"] > 1).astype(np.int8)}, ["x"],
                                      {"flag": "int8"}, progress=False)
    assert other.meta["index"]["roi_pairs"] == new.meta["index"]["roi_pairs"] and other.has_roi_pair_table


def test_failed_rebuild_leaves_the_store_intact(synth, tmp_path, monkeypatch):
    conn, rs = synth
    copy = cd.open(shutil.copytree(conn.path, tmp_path / "copy"), set_default=False)
    before_meta = (copy.path / "meta.json").read_bytes()
    before_table = _table_df(copy)
    before_roi = copy.read_synapses(["roi_post"], 0, copy.n_synapses)["roi_post"]
    from connectome_dask.store import commit

    def boom(*a, **k):
        raise RuntimeError("killed while rebuilding the per-ROI table")

    monkeypatch.setattr(commit, "rebuild_roi_pair_table", boom)
    with pytest.raises(RuntimeError, match="killed while rebuilding"):
        copy.assign_rois(rs, exact=False, progress=False)
    assert (copy.path / "meta.json").read_bytes() == before_meta
    reopened = cd.open(copy.path, set_default=False)
    assert _table_df(reopened).equals(before_table)
    assert np.array_equal(reopened.read_synapses(["roi_post"], 0, reopened.n_synapses)["roi_post"], before_roi)
    assert reopened.unreferenced() == [] and reopened.check() == []
    monkeypatch.undo()
    # a failure inside the column tasks (before the table): the same
    from connectome_dask.rois import assign

    def bad_block(*a, **k):
        raise RuntimeError("a partition failed")

    monkeypatch.setattr(assign, "_assign_block", bad_block)
    with pytest.raises(RuntimeError, match="a partition failed"):
        reopened.assign_rois(rs, exact=False, progress=False)
    assert (copy.path / "meta.json").read_bytes() == before_meta
    assert _table_df(cd.open(copy.path, set_default=False)).equals(before_table)


# ----------------------------------------------------------------------------- the plan


def test_plan_choice_and_reasons(stores):
    conn = stores[4096]
    p = plan_read(conn, roi_filter=True)
    assert p.method == "roi_table" and "per-ROI connection table answers it" in p.reason
    assert plan_read(conn, by_roi=True).method == "roi_table"
    assert plan_read(conn, by_roi=True, roi_filter=True).method == "roi_table"
    assert plan_read(conn).method == "table"  # no ROI in the question: the connection table
    p = plan_read(conn, roi_filter=True, confidence=True)  # the ROI-major copy (tests/test_roi_major.py)
    assert p.method == "roi_major" and "cannot apply a confidence filter" in p.reason
    p = plan_read(conn, by_roi=True, roi_filter=True, confidence=True)
    assert p.method == "pairs_scan" and "cannot apply a confidence filter" in p.reason
    few = np.array([int(np.argmin(np.where(conn.neurons.pre > 0, conn.neurons.pre, 1 << 40)))])
    assert plan_read(conn, pre=few, roi_filter=True).method == "index"  # a few bodies: the index still wins
    assert plan_read(conn, roi_filter=True, output=True).method == "scan"
    assert plan_read(conn, roi_filter=True, what="rows").method == "scan"
    with dask.config.set({"connectome_dask.use_roi_pair_table": False}):
        p = plan_read(conn, by_roi=True)
        assert p.method == "pairs_scan" and "use_roi_pair_table is false" in p.reason
        assert plan_read(conn, by_roi=True, method="roi_table").method == "roi_table"  # explicit wins
    with dask.config.set({"connectome_dask.use_pair_table": False}):
        assert plan_read(conn, roi_filter=True).method == "roi_table"  # a switch of its own


def test_forced_roi_table_that_cannot_work(stores, tmp_path):
    conn = stores[64]
    with pytest.raises(ValueError, match="method='roi_table' is not possible: .*confidence"):
        plan_read(conn, roi_filter=True, confidence=True, method="roi_table")
    with pytest.raises(ValueError, match="method='roi_table' is not possible: synapse rows"):
        plan_read(conn, what="rows", method="roi_table")
    with pytest.raises(ValueError, match="out-of-core"):
        plan_read(conn, output=True, method="roi_table")
    with pytest.raises(ValueError, match="confidence"):
        A.pair_counts(conn, rois=["R1"], confidence=0.5, method="roi_table", progress=False)
    with pytest.raises(ValueError, match="confidence"):
        A.adjacency(conn, by="type", rois=["R1"], confidence=0.5, method="roi_table")
    old = _old_store(conn, tmp_path / "old")
    with pytest.raises(ValueError, match="no per-ROI connection table"):
        A.pair_counts(old, by_roi=True, method="roi_table", progress=False)


def test_the_plan_is_logged(stores, caplog):
    with caplog.at_level(logging.DEBUG, logger="connectome_dask.compute"):
        A.pair_counts(stores[64], rois=ROI_NAMES, progress=False)  # every ROI: the per-ROI table's one pass
    assert [r.plan.method for r in caplog.records if hasattr(r, "plan")] == ["roi_table"]
    caplog.clear()
    # one ROI of five, the share rule lifted (tests/test_roi_major.py checks the rule): its runs in the copy
    with caplog.at_level(logging.DEBUG, logger="connectome_dask.compute"), \
            mock.patch.object(P, "ROI_MAJOR_SHARE", 1.0):
        A.pair_counts(stores[64], rois=["R2"], progress=False)
    assert [r.plan.method for r in caplog.records if hasattr(r, "plan")] == ["roi_major"]


# ----------------------------------------------------------------------------- exact counts


def _scheduler(kind: str):
    return dask.config.set(scheduler=kind)


@pytest.mark.parametrize("chunk_rows", CHUNKS)
@pytest.mark.parametrize("partition_chunks", PARTITIONS)
@pytest.mark.parametrize("kind", ["sync", "threads"])
def test_counts_identical_everywhere(raw, stores, chunk_rows, partition_chunks, kind):
    neurons, syn = raw
    conn = stores[chunk_rows]
    body = neurons["bodyId"].to_numpy()
    with _scheduler(kind), dask.config.set({"connectome_dask.partition_chunks": partition_chunks}):
        # by ROI, whole brain
        got = A.pair_counts(conn, by_roi=True, progress=False)
        want = ref_roi_pairs(syn)
        pd.testing.assert_frame_equal(got.astype(np.int64), want.astype(np.int64), check_dtype=False)
        assert got.equals(A.pair_counts(conn, by_roi=True, method="scan", progress=False))
        # ROI filter (codes 1 and 3), pairs summed over them, then min_weight on the sums
        for mw in (1, 4):
            got = A.pair_counts(conn, rois=["R1", "R3"], min_weight=mw, progress=False)
            want = ref_pairs(syn, rois=[1, 3], min_weight=mw)
            pd.testing.assert_frame_equal(got.astype(np.int64), want.astype(np.int64), check_dtype=False)
            assert got.equals(A.pair_counts(conn, rois=["R1", "R3"], min_weight=mw, method="scan", progress=False))
        # a side restricted (too many rows for the index), by ROI and a ROI filter
        pre = body[: N_NEURONS // 2]
        got = A.pair_counts(conn, pre=pre, rois=["R0", "R4"], by_roi=True, progress=False)
        want = ref_roi_pairs(syn, rois=[0, 4], pre=np.arange(N_NEURONS // 2))
        pd.testing.assert_frame_equal(got.astype(np.int64), want.astype(np.int64), check_dtype=False)
        assert got.equals(A.pair_counts(conn, pre=pre, rois=["R0", "R4"], by_roi=True, method="scan",
                                        progress=False))
        # grouped (type, instance, any column) with a ROI filter and min_weight
        for by in ("type", "instance", "bodyId"):
            a = A.adjacency(conn, by=by, rois=["R2"], min_weight=3)
            b = A.adjacency(conn, by=by, rois=["R2"], min_weight=3, method="scan")
            if by == "bodyId":
                assert (a.data != b.data).nnz == 0 and a.coords["pre"].equals(b.coords["pre"])
            else:
                assert a.equals(b), by
        # group_counts on a code per neuron (any column), the reference summed in pandas
        codes = (np.arange(N_NEURONS) % 4).astype(np.int64)
        codes[:2] = -1
        g = A.group_counts(conn, codes, codes, 4, 4, rois=["R0", "R1"], min_weight=2, progress=False)
        p = ref_pairs(syn, rois=[0, 1], min_weight=2)
        ref = np.zeros((4, 4), np.int64)
        a_, b_ = codes[p["pre"].to_numpy()], codes[p["post"].to_numpy()]
        ok = (a_ >= 0) & (b_ >= 0)
        np.add.at(ref, (a_[ok], b_[ok]), p["weight"].to_numpy()[ok])
        assert np.array_equal(g, ref)
        assert np.array_equal(g, A.group_counts(conn, codes, codes, 4, 4, rois=["R0", "R1"], min_weight=2,
                                                method="scan", progress=False))


@pytest.mark.parametrize("form", ["default", "dense", "packed", "fallback"])
def test_grouped_roi_table_ranges(raw, stores, form, monkeypatch):
    """Grouped counts from ranges of the per-ROI table (``min_weight`` 1), every partial form.

    Reference: the synapse rows filtered and summed per (pre code, post code)
    with ``np.add.at``. ``dense`` / ``packed`` force each partial form of the
    one-pass kernel; ``fallback`` makes the kernel decline (a weight too
    large for its field), so the keep-mask and pair runs count instead.
    """
    from connectome_dask.compute import groups as G

    neurons, syn = raw
    if form == "dense":
        monkeypatch.setattr(G, "_DENSE_FACTOR", 10**9)
    elif form == "packed":
        monkeypatch.setattr(G, "_DENSE_FACTOR", 0)
    elif form == "fallback":
        monkeypatch.setattr(G.K, "pack_group_rows", lambda *a: (np.zeros(0, np.int64), 0, -1, False))
    codes = (np.arange(N_NEURONS) * 7 % 5).astype(np.int64)
    codes[[1, 4, 9]] = -1
    pre_sel = np.arange(0, N_NEURONS, 2)
    for rois, pre in (([0, 2, 4], None), (None, pre_sel), ([1, 3], pre_sel)):
        s = syn
        if rois is not None:
            s = s[s["roi_post"].isin(rois)]
        if pre is not None:
            s = s[s["pre"].isin(pre)]
        a, b = codes[s["pre"].to_numpy()], codes[s["post"].to_numpy()]
        ok = (a >= 0) & (b >= 0)
        ref = np.zeros((5, 5), np.int64)
        np.add.at(ref, (a[ok], b[ok]), 1)
        assert ref.sum() > 0
        for conn in stores.values():
            with dask.config.set({"connectome_dask.partition_chunks": 1}):
                g = A.group_counts(conn, codes, codes, 5, 5, pre=None if pre is None else conn.body_ids[pre],
                                   rois=None if rois is None else [ROI_NAMES[r] for r in rois],
                                   method="roi_table", progress=False)
            assert np.array_equal(g, ref), (form, rois, pre is not None)


def ref_conn_df(neurons: pd.DataFrame, syn: pd.DataFrame) -> pd.DataFrame:
    """fetch_adjacencies(None, None) in pandas: every ROI primary, code -1 = NotPrimary."""
    body = neurons["bodyId"].to_numpy()
    g = ref_roi_pairs(syn)
    names = np.array(ROI_NAMES + ["NotPrimary"], dtype=object)
    df = pd.DataFrame({"bodyId_pre": body[g["pre"]], "bodyId_post": body[g["post"]],
                       "roi": names[g["roi"].to_numpy()], "weight": g["weight"].to_numpy()})
    return df.sort_values(["bodyId_pre", "bodyId_post", "weight", "roi"], ascending=[True, True, False, True],
                          ignore_index=True)


@pytest.mark.parametrize("chunk_rows", CHUNKS)
@pytest.mark.parametrize("partition_chunks", PARTITIONS)
def test_fetch_adjacencies_from_the_table(raw, stores, chunk_rows, partition_chunks, caplog):
    neurons, syn = raw
    conn = stores[chunk_rows]
    with dask.config.set({"connectome_dask.partition_chunks": partition_chunks}):
        with caplog.at_level(logging.DEBUG, logger="connectome_dask.compute"):
            nd, got = cd.fetch_adjacencies(None, None, client=conn, progress=False)
        assert [r.plan.method for r in caplog.records if hasattr(r, "plan")] == ["roi_table"]
        want = ref_conn_df(neurons, syn)
        pd.testing.assert_frame_equal(got.astype({"roi": object}), want, check_dtype=False)
        with dask.config.set({"connectome_dask.use_roi_pair_table": False}):
            nd2, scan = cd.fetch_adjacencies(None, None, client=conn, progress=False)
        assert got.equals(scan) and nd.equals(nd2)
        # a ROI list and thresholds: the same rows as the scan
        kw = dict(rois=["R1", "R4"], min_roi_weight=2, min_total_weight=5, client=conn, progress=False)
        _, a = cd.fetch_adjacencies(None, None, **kw)
        with dask.config.set({"connectome_dask.use_roi_pair_table": False}):
            _, b = cd.fetch_adjacencies(None, None, **kw)
        assert a.equals(b) and len(a)


def test_distributed_scheduler(raw, stores):
    from distributed import Client, LocalCluster

    neurons, syn = raw
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        with client.as_current():
            got = A.pair_counts(stores[64], by_roi=True, progress=False)
            f = A.pair_counts(stores[64], rois=["R3"], min_weight=2, progress=False)
    pd.testing.assert_frame_equal(got.astype(np.int64), ref_roi_pairs(syn).astype(np.int64), check_dtype=False)
    pd.testing.assert_frame_equal(f.astype(np.int64), ref_pairs(syn, rois=[3], min_weight=2).astype(np.int64),
                                  check_dtype=False)


def test_rebuild_on_a_distributed_client(raw, stores, tmp_path):
    """The commit's rebuild tasks run on the workers (and batch by their thread count)."""
    from distributed import Client, LocalCluster

    _, syn = raw
    copy = cd.open(shutil.copytree(stores[64].path, tmp_path / "copy"), set_default=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        with client.as_current():
            new = copy.write_synapse_columns(lambda b: {"roi_post": (b["roi_post"] % 3).astype(np.int16)},
                                             ["roi_post"], {"roi_post": "int16"}, progress=False)
    want = syn.copy()
    want["roi_post"] = (want["roi_post"] % 3).astype(np.int16)
    _assert_table_is(new, want)
    assert new.check() == []


# ----------------------------------------------------------------------------- old stores


def _old_store(conn, dest):
    """A copy as an older version wrote it: no per-ROI table in meta.json (the files stay unreferenced)."""
    shutil.copytree(conn.path, dest)
    meta = _read_meta(dest)
    for k in ("roi_pairs", "n_roi_pairs", "roi_pairs_of"):
        meta["index"].pop(k, None)
    meta.pop("checksum", None)
    write_meta(dest, meta)
    shutil.rmtree(dest / "index.zarr" / conn.meta["index"]["roi_pairs"])
    return cd.open(dest, set_default=False)


def test_old_store_falls_back_to_the_scan(raw, stores, tmp_path):
    _, syn = raw
    old = _old_store(stores[64], tmp_path / "old")
    assert not old.has_roi_pair_table and old.check() == []
    p = plan_read(old, by_roi=True)
    assert p.method == "pairs_scan" and "no per-ROI connection table" in p.reason
    got = A.pair_counts(old, by_roi=True, progress=False)
    assert got.equals(A.pair_counts(stores[64], by_roi=True, progress=False))
    _, a = cd.fetch_adjacencies(None, None, client=old, progress=False)
    _, b = cd.fetch_adjacencies(None, None, client=stores[64], progress=False)
    assert a.equals(b)
    # the next commit of roi_post gives it one
    new = old.write_synapse_columns(lambda b: {"roi_post": b["roi_post"]}, ["roi_post"], {"roi_post": "int16"},
                                    progress=False)
    assert new.has_roi_pair_table
    _assert_table_is(new, syn)


def test_a_table_of_another_roi_post_array_is_not_used(stores, tmp_path):
    """meta.json naming a per-ROI table built from another roi_post array (e.g. a commit by an older version)."""
    dest = tmp_path / "stale"
    shutil.copytree(stores[64].path, dest)
    meta = _read_meta(dest)
    meta["index"]["roi_pairs_of"] = "roi_post.g9-abcdef"
    meta.pop("checksum", None)
    write_meta(dest, meta)
    stale = cd.open(dest, set_default=False)
    assert not stale.has_roi_pair_table
    assert plan_read(stale, by_roi=True).method == "pairs_scan"
    assert stale.check() == []


# ----------------------------------------------------------------------------- verification


def _copy(conn, dest):
    return cd.open(shutil.copytree(conn.path, dest), set_default=False)


def test_check_finds_a_damaged_table(stores, tmp_path):
    conn = stores[64]
    rel = conn.meta["index"]["roi_pairs"]
    # a flipped byte: the chunk's CRC32C fails
    c1 = _copy(conn, tmp_path / "flip")
    f = c1.path / "index.zarr" / rel / "weight" / "c" / "1"
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0x40
    f.write_bytes(bytes(b))
    probs = c1.check()
    assert any(f"{rel}/weight" in p and "unreadable" in p for p in probs), probs
    # a missing chunk file: the shallow check
    c2 = _copy(conn, tmp_path / "missing")
    (c2.path / "index.zarr" / rel / "roi" / "c" / "0").unlink()
    probs = c2.check(deep=False)
    assert any(f"{rel}/roi" in p and "missing" in p for p in probs), probs
    # a wrong count with a valid checksum: the recount
    import zarr

    c3 = _copy(conn, tmp_path / "recount")
    arr = zarr.open_array(str(c3.path / "index.zarr" / rel / "weight"), mode="r+")
    arr[5] = int(arr[5]) + 1
    c3 = cd.open(c3.path, set_default=False)
    probs = c3.check()
    assert any("differs from a recount" in p for p in probs), probs
    # a wrong row count in meta.json
    c4 = _copy(conn, tmp_path / "rows")
    meta = _read_meta(c4.path)
    meta["index"]["n_roi_pairs"] -= 1
    meta.pop("checksum", None)
    write_meta(c4.path, meta)
    probs = cd.open(c4.path, set_default=False).check()
    assert any(f"{rel}/pre: shape" in p for p in probs), probs


def test_meta_json_roi_pairs_keys_are_validated(stores, tmp_path):
    c = _copy(stores[64], tmp_path / "bad")
    meta = json.loads((c.path / "meta.json").read_text())
    meta["index"]["roi_pairs"] = "../elsewhere"
    meta.pop("checksum", None)
    write_meta(c.path, meta)
    with pytest.raises(cd.StoreError, match="index.roi_pairs"):
        cd.open(c.path, set_default=False)
