"""The per-ROI table's ROI-major copy (``index.zarr/roi_pairs*/by_roi``) and the ``roi_major`` read path.

References are independent of the package: pandas on the raw rows the test
generated (a groupby by (roi, pre, post) for the copy's runs; the row filter
and count written out in tests/test_pairs_scan.py's ``ref_counts``), and the
synapse scan forced with ``method="scan"``. Covered: the copy written at
ingest (buckets, presorted blocks cut inside runs, two confidence columns,
none for connection rows), rebuilt by commits of ``roi_post`` and left unused
after a commit of a confidence column, the plan, counts over chunk sizes x
partition sizes x schedulers, grouped counts, task ranges over run chunks,
the deep check finding a copy that disagrees with the rows, and meta.json
validation.
"""

from __future__ import annotations

import json
import logging
import shutil

import dask
import numpy as np
import pandas as pd
import pytest
import zarr

import connectome_dask as cd
from connectome_dask import aggregate as A
from connectome_dask.compute.plan import ROI_MAJOR_SHARE, plan_read
from connectome_dask.compute.roi_major import roi_major_pieces
from connectome_dask.store import StoreError, StoreWriter, read_rows
from connectome_dask.store.format import _read_meta, write_meta

from .test_pairs_scan import ROI_INFO, ROIS, _raw, ref_counts


def _write(path, neurons, syn, chunk_rows, presorted_step: int | None = None, **kw):
    cols = {c: str(syn[c].dtype) for c in syn.columns if c not in ("pre", "post")}
    if presorted_step is None:
        block = syn.sample(frac=1.0, random_state=chunk_rows)  # the writer sorts
        with StoreWriter(path, len(neurons), cols, chunk_rows=chunk_rows, **kw) as w:
            w.append({c: block[c].to_numpy() for c in block.columns})
            return w.close(neurons, {"name": path.name}, rois=ROI_INFO)
    s = syn.sort_values(["pre", "post"], kind="stable", ignore_index=True)
    with StoreWriter(path, len(neurons), cols, chunk_rows=chunk_rows, presorted=True) as w:
        for a in range(0, len(s), presorted_step):
            w.append({c: s[c].to_numpy()[a:a + presorted_step] for c in s.columns})
        return w.close(neurons, {"name": path.name}, rois=ROI_INFO)


@pytest.fixture(scope="module")
def raw():
    return _raw(11)


@pytest.fixture(scope="module")
def stores(raw, tmp_path_factory):
    neurons, syn = raw
    root = tmp_path_factory.mktemp("roi_major")
    counts = np.bincount(syn["pre"], minlength=len(neurons))
    return {64: _write(root / "c64", neurons, syn, 64, pre_counts=counts, bucket_rows=2000),
            4096: _write(root / "c4096", neurons, syn, 4096)}


def _copy_of(conn) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    paths = conn.roi_major_paths([c for c in conn.meta["index"]["roi_major"]["of"] if c != "roi_post"])
    assert paths is not None
    a = {c: read_rows(p, conn.token, 0, 1 << 62) for c, p in paths.items()}
    code = np.repeat(np.arange(len(a["run_starts"]) - 1), np.diff(a["run_starts"]))
    runs = pd.DataFrame({"roi": code, "pre": a["pre"], "post": a["post"], "weight": a["weight"]}).astype(np.int64)
    return runs, a, paths


def _assert_copy_is(conn, syn: pd.DataFrame) -> None:
    """The copy's runs are pandas' (roi, pre, post) groups of the rows in a ROI; each run's confidences are its rows'."""
    runs, a, _ = _copy_of(conn)
    inside = syn[syn["roi_post"] >= 0]
    want = (inside.groupby(["roi_post", "pre", "post"]).size().reset_index(name="weight")
            .rename(columns={"roi_post": "roi"}).astype(np.int64))
    pd.testing.assert_frame_equal(runs, want)
    starts = np.concatenate([[0], np.cumsum(want["weight"].to_numpy())])
    n_codes = len(a["run_starts"]) - 1
    np.testing.assert_array_equal(a["row_starts"], starts[a["run_starts"]])
    assert a["run_starts"][-1] == len(want) and len(a["row_starts"]) == n_codes + 1
    chunk = conn.meta["index"]["roi_major"]["chunk_rows"]
    np.testing.assert_array_equal(a["run_rows"], np.r_[starts[np.arange(0, len(want), chunk)], starts[-1]])
    run_id = np.repeat(np.arange(len(want)), want["weight"].to_numpy())
    ordered = inside.sort_values(["roi_post", "pre", "post"], kind="stable")
    for c in [c for c in syn.columns if c.startswith("confidence")]:
        got = a[c]
        # within a run the order is the store's; compare each run's values as a sorted list (NaN last)
        o1 = np.lexsort((got, run_id))
        o2 = np.lexsort((ordered[c].to_numpy(), run_id))
        np.testing.assert_array_equal(got[o1], ordered[c].to_numpy()[o2])


# ----------------------------------------------------------------------------- written at ingest


@pytest.mark.parametrize("chunk_rows", [64, 4096])
def test_ingest_writes_the_copy(raw, stores, chunk_rows):
    conn = stores[chunk_rows]
    rm = conn.meta["index"]["roi_major"]
    assert rm["of"] == {"roi_post": conn.meta["synapses"]["columns"]["roi_post"],
                        "confidence": conn.meta["synapses"]["columns"]["confidence"]}
    assert rm["chunk_rows"] == min(chunk_rows, 1 << 16)
    _assert_copy_is(conn, raw[1])
    assert conn.check() == [] and conn.unreferenced() == []
    assert not list((conn.path / "index.zarr" / "roi_pairs").glob("_spill-*"))  # the spill is gone


def test_presorted_blocks_cut_inside_runs(raw, tmp_path):
    neurons, syn = raw
    conn = _write(tmp_path / "p", neurons, syn, 128, presorted_step=37)
    _assert_copy_is(conn, syn)
    assert conn.check() == []


def test_two_confidence_columns(tmp_path):
    neurons, syn = _raw(12, two_conf=True)
    conn = _write(tmp_path / "two", neurons, syn, 256)
    assert set(conn.meta["index"]["roi_major"]["of"]) == {"roi_post", "confidence_pre", "confidence_post"}
    _assert_copy_is(conn, syn)
    for case in (dict(confidence=0.5, rois=["A", "C"]), dict(confidence=0.25, rois=["B"], min_weight=2)):
        assert plan_read(conn, roi_filter=True, confidence=True).method == "roi_major"
        got = A.pair_counts(conn, progress=False, **case)
        ref = ref_counts(syn, **{**case, "rois": [ROIS.index(r) for r in case["rois"]]})
        pd.testing.assert_frame_equal(got.astype(np.int64), ref, check_dtype=False)
        assert got.equals(A.pair_counts(conn, progress=False, method="scan", **case))
    assert conn.check() == []


def test_no_copy_without_confidence_or_for_connection_rows(raw, tmp_path):
    neurons, syn = raw
    conn = _write(tmp_path / "noconf", neurons, syn.drop(columns=["confidence"]), 512)
    assert "roi_major" not in conn.meta["index"] and conn.has_roi_pair_table
    edges = pd.DataFrame({"pre": [0, 0, 1], "post": [1, 2, 0], "weight": [3, 1, 2],
                          "confidence": np.float32([0.9, 0.2, 0.7]), "roi_post": np.int16([0, 1, 0])})
    cols = {"weight": "int64", "confidence": "float32", "roi_post": "int16"}
    with StoreWriter(tmp_path / "edges", 3, cols, chunk_rows=64, kind="connections") as w:
        w.append({c: edges[c].to_numpy() for c in edges.columns})
        c2 = w.close(pd.DataFrame({"bodyId": [5, 6, 7]}), rois=ROI_INFO)
    assert "roi_major" not in c2.meta["index"]
    assert plan_read(c2, roi_filter=True, confidence=True).method != "roi_major"


# ----------------------------------------------------------------------------- commits


def test_commits_rebuild_or_retire_the_copy(raw, stores, tmp_path):
    _, syn = raw
    copy = cd.open(shutil.copytree(stores[64].path, tmp_path / "copy"), set_default=False)

    def shift(block):
        return {"roi_post": np.where(block["confidence"] > 0.3, block["roi_post"], -1).astype(np.int16)}

    new = copy.write_synapse_columns(shift, ["confidence", "roi_post"], {"roi_post": "int16"}, progress=False)
    want = syn.copy()
    want["roi_post"] = np.where(want["confidence"] > 0.3, want["roi_post"], -1).astype(np.int16)
    _assert_copy_is(new, want)
    assert new.meta["index"]["roi_major"]["of"]["roi_post"] == new.meta["synapses"]["columns"]["roi_post"]
    assert new.check() == [] and new.unreferenced() == []
    case = dict(confidence=0.5, rois=["A", "D"], min_weight=2)
    ref = ref_counts(want, **{**case, "rois": [0, 3]})
    pd.testing.assert_frame_equal(A.pair_counts(new, progress=False, **case).astype(np.int64), ref,
                                  check_dtype=False)
    # a commit of the confidences alone: the copy no longer matches them and is never read
    halved = new.write_synapse_columns(lambda b: {"confidence": (b["confidence"] / 2).astype(np.float32)},
                                       ["confidence"], {"confidence": "float32"}, progress=False)
    assert halved.has_roi_pair_table and halved.roi_major_paths(["confidence"]) is None
    assert plan_read(halved, roi_filter=True, confidence=True).method == "pairs_scan"
    with pytest.raises(ValueError, match="no ROI-major copy"):
        plan_read(halved, roi_filter=True, confidence=True, method="roi_major")
    want2 = want.copy()
    want2["confidence"] = (want2["confidence"] / 2).astype(np.float32)
    ref2 = ref_counts(want2, **{**case, "confidence": 0.2, "rois": [0, 3]})
    got2 = A.pair_counts(halved, progress=False, **{**case, "confidence": 0.2})
    pd.testing.assert_frame_equal(got2.astype(np.int64), ref2, check_dtype=False)
    assert halved.check() == []


def test_rebuild_on_worker_processes(raw, stores, tmp_path):
    """The commit's tasks spill their own rows on the workers (separate processes); the client gets counts."""
    from distributed import Client, LocalCluster

    _, syn = raw
    copy = cd.open(shutil.copytree(stores[64].path, tmp_path / "copy"), set_default=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client, client.as_current():
        new = copy.write_synapse_columns(lambda b: {"roi_post": (b["roi_post"] % 3).astype(np.int16)},
                                         ["roi_post"], {"roi_post": "int16"}, progress=False)
    want = syn.copy()
    want["roi_post"] = (want["roi_post"] % 3).astype(np.int16)
    _assert_copy_is(new, want)
    assert new.check() == [] and new.unreferenced() == []
    assert not list((new.path / "index.zarr" / new.meta["index"]["roi_pairs"]).glob("_spill-*"))


def test_assign_rois_writes_the_copy(tmp_path):
    conn = cd.datasets.synthetic(tmp_path / "store", n_neurons=120, n_synapses=6_000, seed=4, skeletons=False,
                                 progress=False, chunk_rows=512)
    conn = conn.assign_rois(cd.datasets.meshes_for(conn), progress=False)
    d = conn.read_synapses(["pre", "post", "roi_post", "confidence"], 0, conn.n_synapses)
    _assert_copy_is(conn, pd.DataFrame(d))
    assert conn.check() == [] and conn.unreferenced() == []


# ----------------------------------------------------------------------------- the read path


def test_plan(stores):
    conn = stores[4096]
    p = plan_read(conn, roi_filter=True, confidence=True)
    assert p.method == "roi_major" and "ROI-major copy" in p.reason
    assert plan_read(conn, roi_filter=True, confidence=True, by_roi=True).method == "pairs_scan"
    assert plan_read(conn, roi_filter=True, confidence=True, roi_none=True).method == "pairs_scan"
    assert plan_read(conn, confidence=True).method == "pairs_scan"  # no ROI filter: every row's confidence
    assert plan_read(conn, roi_filter=True).method == "roi_table"  # the ROIs' share not given
    # a ROI filter alone: the copy's runs of a few ROIs, the per-ROI table's one pass for most of them
    p = plan_read(conn, roi_filter=True, roi_share=0.2)
    assert p.method == "roi_major" and "20% of the ROI-major copy's runs" in p.reason
    assert plan_read(conn, roi_filter=True, roi_share=0.9).method == "roi_table"
    assert plan_read(conn, roi_filter=True, by_roi=True, roi_share=0.2).method == "roi_table"
    assert plan_read(conn, roi_filter=True, roi_none=True, roi_share=0.2).method == "roi_table"
    with dask.config.set({"connectome_dask.use_roi_pair_table": False}):
        assert plan_read(conn, roi_filter=True, confidence=True).method == "pairs_scan"
        assert plan_read(conn, roi_filter=True, roi_share=0.2).method == "pairs_scan"
    for kw, why in ((dict(confidence=True), "is for a ROI filter"),
                    (dict(roi_filter=True, confidence=True, by_roi=True), "does not split"),
                    (dict(roi_filter=True, confidence=True, what="rows"), "synapse rows")):
        with pytest.raises(ValueError, match=why):
            plan_read(conn, method="roi_major", **kw)


CASES = [
    dict(confidence=0.5, rois=[1, 3]),
    dict(confidence=0.0, rois=[0, 1, 2, 3]),
    dict(confidence=0.25, rois=[2], min_weight=3),
    dict(confidence=0.5, rois=[0, 3], pre="half"),
    dict(confidence=0.75, rois=[1, 2], post="odd", min_weight=2),
    dict(confidence=0.5, rois=[0, 1, 3], pre="half", post="odd"),
]


def _kw(neurons, case):
    body = neurons["bodyId"].to_numpy()
    sel = {"half": np.arange(len(body) // 2), "odd": np.arange(1, len(body), 2)}
    kw = {k: v for k, v in case.items() if k in ("confidence", "min_weight")}
    ref = dict(kw, rois=case["rois"])
    kw["rois"] = [ROIS[c] for c in case["rois"]]
    for side in ("pre", "post"):
        if side in case:
            kw[side], ref[side] = body[sel[case[side]]], sel[case[side]]
    return kw, ref


def _planned(caplog, call):
    """``call()``'s result and the read paths its plans logged."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="connectome_dask.compute"):
        res = call()
    return res, [r.plan.method for r in caplog.records if hasattr(r, "plan")]


@pytest.mark.parametrize("chunk_rows", [64, 4096])
@pytest.mark.parametrize("kind", ["sync", "threads"])
def test_counts_identical_everywhere(raw, stores, chunk_rows, kind, caplog):
    neurons, syn = raw
    conn = stores[chunk_rows]
    with dask.config.set(scheduler=kind):
        for case in CASES:
            kw, ref = _kw(neurons, case)
            got, paths = _planned(caplog, lambda: A.pair_counts(conn, progress=False, **kw))  # noqa: B023
            assert paths == ["roi_major"], case
            pd.testing.assert_frame_equal(got.astype(np.int64), ref_counts(syn, **ref), check_dtype=False)
            assert got.equals(A.pair_counts(conn, progress=False, method="scan", **kw)), case
            assert got.equals(A.pair_counts(conn, progress=False, method="pairs_scan", **kw)), case


ROI_ONLY = [
    dict(rois=[2]),
    dict(rois=[1, 3], pre="half"),
    dict(rois=[0, 1, 2, 3], post="odd", min_weight=2),
    dict(rois=[0, 3], pre="half", post="odd", min_weight=3),
]


def _share(syn, rois) -> float:
    """The ROIs' share of the copy's runs, in pandas: (roi, pre, post) groups of the rows in a ROI."""
    runs = syn[syn["roi_post"] >= 0].groupby(["roi_post", "pre", "post"]).size().reset_index()
    return float(runs["roi_post"].isin(rois).mean())


@pytest.mark.parametrize("chunk_rows", [64, 4096])
@pytest.mark.parametrize("kind", ["sync", "threads"])
def test_roi_filter_alone(raw, stores, chunk_rows, kind, caplog):
    """No confidence: the runs' weights, no rows read; chosen by the ROIs' share of the runs."""
    neurons, syn = raw
    conn = stores[chunk_rows]
    with dask.config.set(scheduler=kind):
        for case in ROI_ONLY:
            kw, ref = _kw(neurons, case)
            want = ref_counts(syn, **ref)
            got = A.pair_counts(conn, progress=False, method="roi_major", **kw)
            pd.testing.assert_frame_equal(got.astype(np.int64), want, check_dtype=False)
            assert got.equals(A.pair_counts(conn, progress=False, method="roi_table", **kw)), case
            auto, paths = _planned(caplog, lambda: A.pair_counts(conn, progress=False, **kw))  # noqa: B023
            assert paths == ["roi_major" if _share(syn, case["rois"]) <= ROI_MAJOR_SHARE else "roi_table"], case
            assert auto.equals(got), case
            grouped = A.adjacency(conn, by="type", progress=False, method="roi_major", **kw)
            assert grouped.equals(A.adjacency(conn, by="type", progress=False, method="scan", **kw)), case
            assert int(grouped.sum()) > 0


def test_roi_filter_alone_chooses_by_share(raw, stores, caplog):
    _, syn = raw
    conn = stores[64]
    shares = {r: _share(syn, [i]) for i, r in enumerate(ROIS)}
    fewest = min(shares, key=shares.get)
    assert shares[fewest] <= ROI_MAJOR_SHARE < 1.0  # the ROI with the fewest runs, and every ROI
    for rois, path in (([fewest], "roi_major"), (ROIS, "roi_table")):
        _, paths = _planned(caplog, lambda: A.adjacency(conn, by="type", progress=False, rois=rois))  # noqa: B023
        assert paths == [path]


def test_distributed_scheduler(raw, stores):
    from distributed import Client, LocalCluster

    neurons, syn = raw
    kw, ref = _kw(neurons, CASES[3])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \
            Client(lc, set_as_default=False) as client, dask.config.set(scheduler=client):
        got = A.pair_counts(stores[64], progress=False, **kw)
    pd.testing.assert_frame_equal(got.astype(np.int64), ref_counts(syn, **ref), check_dtype=False)


def test_grouped_counts(raw, stores):
    conn = stores[64]
    for kw in (dict(rois=["A", "C"], confidence=0.5), dict(rois=["B", "D"], confidence=0.25, min_weight=3)):
        got = A.adjacency(conn, by="type", progress=False, **kw)
        assert got.equals(A.adjacency(conn, by="type", progress=False, method="scan", **kw))
        assert got.equals(A.adjacency(conn, by="type", progress=False, method="roi_major", **kw))
        assert int(got.sum()) > 0


def test_task_ranges_cover_the_selected_runs(stores):
    conn = stores[64]  # run chunks of 64 runs: ROIs span several
    paths = conn.roi_major_paths(["confidence"])
    a = {c: read_rows(paths[c], conn.token, 0, 1 << 62) for c in ("run_starts", "row_starts", "weight")}
    cs = np.concatenate([[0], np.cumsum(a["weight"])])
    for codes, n_tasks in (([1, 3], 4), ([0, 1, 2, 3], 7), ([2], 1), ([0, 2], 50)):
        tasks = roi_major_pieces(conn, paths, np.array(codes), n_tasks)
        pieces = [p for t in tasks for p in t]
        covered = np.concatenate([np.arange(s, e) for s, e, _ in pieces])
        want = np.concatenate([np.arange(a["run_starts"][c], a["run_starts"][c + 1]) for c in codes])
        np.testing.assert_array_equal(covered, want)
        for s, _e, row in pieces:
            assert row == cs[s]  # each piece knows its first run's copy row
        assert len(tasks) <= n_tasks + len(codes)
    assert roi_major_pieces(conn, paths, np.array([99]), 4) == []


# ----------------------------------------------------------------------------- safety


def test_check_finds_a_copy_that_disagrees(stores, tmp_path):
    copy = cd.open(shutil.copytree(stores[4096].path, tmp_path / "bad"), set_default=False)
    p = copy.roi_major_paths(["confidence"])["confidence"]
    arr = zarr.open_array(p, mode="r+")
    v = arr[:]
    v[5] = np.float32(0.123456)  # a valid chunk (its CRC32C rewritten by zarr) with a wrong value
    arr[:] = v
    problems = cd.open(copy.path, set_default=False).check()
    assert any("by_roi differs from the synapse rows" in p for p in problems), problems


def test_meta_json_roi_major_is_validated(stores, tmp_path):
    copy = shutil.copytree(stores[4096].path, tmp_path / "m")
    meta = _read_meta(copy)
    for bad in ({"n_runs": -1}, {"of": {"roi_post": 3}}, {"chunk_rows": 0}, {"n_rows": True}):
        m = json.loads(json.dumps(meta))
        m["index"]["roi_major"].update(bad)
        write_meta(copy, m)
        with pytest.raises(StoreError, match="index.roi_major"):
            cd.open(copy, set_default=False)
