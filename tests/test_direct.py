"""adjacency_from_files: grouped counts straight from raw synapse files.

Every count is compared with a pandas statement of the rule written here
(join the neuron table on both sides, filter, group), and the whole labelled
result with the ingested store's ``Connectome.adjacency`` of the same files
(the sorted-store path, an independent implementation).
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr

import connectome_dask as cd
from connectome_dask.errors import IngestError
from connectome_dask.ingest import ingest
from connectome_dask.kernels import hashing as H

ROIS = ["AL_L", "AL_R", "LH_L", "MB_CA_L", "SLP_R"]
BASE = 720575940_000_000_000  # FlyWire-sized root IDs


def _raw(seed: int = 0, n_syn: int = 6000, n_neurons: int = 180):
    rng = np.random.default_rng(seed)
    bodies = BASE + np.sort(rng.choice(10**9, n_neurons, replace=False))
    pre = rng.choice(bodies, n_syn, p=rng.dirichlet(np.ones(n_neurons) * 0.3))
    post = rng.choice(bodies, n_syn)
    roi = rng.choice(ROIS + [None], n_syn)
    conf = rng.choice(np.array([0.1, 0.5, 0.8, 0.80000001, 0.95, np.nan], dtype=np.float32), n_syn)
    syn = pd.DataFrame({"pre_pt_root_id": pre, "post_pt_root_id": post, "neuropil": roi, "score": conf})
    # the table covers most bodies: a few synapse bodies are missing from it, a few have no type
    tab_ids = bodies[rng.random(n_neurons) < 0.93]
    types = rng.choice(["KCg-m", "KCab", "ORN_DA1", "PN2", "PN10", "LHN"], len(tab_ids)).astype(object)
    types[rng.random(len(tab_ids)) < 0.08] = None
    nrn = pd.DataFrame({"root_id": tab_ids, "cell_type": types,
                        "side": rng.choice(["left", "right"], len(tab_ids))})
    return syn, nrn


COLS = {"pre": "pre_pt_root_id", "post": "post_pt_root_id", "roi_post": "neuropil", "confidence": "score"}


def _write(syn: pd.DataFrame, path, *, row_group: int = 700, dictionary: bool = True) -> None:
    t = pa.Table.from_pandas(syn, preserve_index=False)
    if dictionary:
        t = t.set_column(2, "neuropil", pc_dictionary(t.column("neuropil")))
    pq.write_table(t, path, row_group_size=row_group)


def pc_dictionary(col):
    import pyarrow.compute as pc

    return pc.dictionary_encode(col)


def _reference(syn, nrn, by="cell_type", rois=None, confidence=None, min_weight=1, pre=None, post=None):
    """The rule in pandas: filter rows, keep pairs of >= min_weight, join labels, sum per label pair."""
    s = syn
    if rois is not None:
        s = s[s["neuropil"].isin([rois] if isinstance(rois, str) else rois)]
    if confidence is not None:
        s = s[s["score"].astype(np.float32) > np.float32(confidence)]
    if pre is not None:
        s = s[s["pre_pt_root_id"].isin(pre)]
    if post is not None:
        s = s[s["post_pt_root_id"].isin(post)]
    w = s.groupby(["pre_pt_root_id", "post_pt_root_id"]).size().rename("w").reset_index()
    w = w[w["w"] >= min_weight]
    lab = nrn.set_index("root_id")[by]
    w["a"] = w["pre_pt_root_id"].map(lab)
    w["b"] = w["post_pt_root_id"].map(lab)
    w = w.dropna(subset=["a", "b"])
    return w.groupby(["a", "b"])["w"].sum()


def _as_series(A: xr.DataArray) -> pd.Series:
    s = A.to_series()
    s = s[s != 0]
    s.index = s.index.set_names(["a", "b"])
    return s.astype(np.int64)


def _same(got: pd.Series, ref: pd.Series) -> None:
    """Equal nonzero (label, label) -> count maps (label dtypes aside), and not trivially empty."""
    g = {(str(a), str(b)): int(v) for (a, b), v in got.items()}
    r = {(str(a), str(b)): int(v) for (a, b), v in ref.items() if v}
    assert g == r
    assert r, "the reference is empty: the case tests nothing"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("direct")
    syn, nrn = _raw()
    _write(syn, d / "syn.parquet")
    nrn.to_parquet(d / "neurons.parquet")
    store = ingest(d / "syn.parquet", d / "store", neurons=d / "neurons.parquet", columns=COLS, progress=False)
    return d, syn, nrn, store


CASES = [
    {},
    {"rois": ["AL_L", "LH_L"]},
    {"rois": "SLP_R"},
    {"confidence": 0.8},
    {"confidence": 0.5, "rois": ["AL_R", "MB_CA_L"]},
    {"min_weight": 3},
    {"min_weight": 2, "rois": ["AL_L", "AL_R", "LH_L"], "confidence": 0.1},
    {"pre": "some", "post": "some"},
    {"pre": "some", "min_weight": 2},
]


def _ids(nrn, syn, k, seed):
    rng = np.random.default_rng(seed)
    # body IDs from the synapses: some of them are not in the neuron table
    return sorted(rng.choice(np.unique(syn["pre_pt_root_id"]), k, replace=False).tolist())


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_counts_equal_pandas_and_the_store(files, case):
    d, syn, nrn, store = files
    kw = dict(case)
    for side, seed in (("pre", 1), ("post", 2)):
        if kw.get(side) == "some":
            kw[side] = _ids(nrn, syn, 40, seed)
    A = cd.adjacency_from_files(d / "syn.parquet", d / "neurons.parquet", columns=COLS, progress=False, **kw)
    ref = _reference(syn, nrn, **kw)
    got = _as_series(A)
    _same(got, ref)
    # the same labelled matrix as the ingested store's (labels, their order, neuron counts)
    B = store.adjacency(by="type", progress=False, **kw)
    assert A.dims == B.dims and A.dtype == np.int64
    np.testing.assert_array_equal(A.values, B.values)
    for c in ("pre", "post", "n_neurons_pre", "n_neurons_post"):
        np.testing.assert_array_equal(A.coords[c].values, B.coords[c].values)
    assert A.attrs["min_weight"] == kw.get("min_weight", 1)


@pytest.mark.parametrize("task_rows", [1, 700, 1500, 10**9])
@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_counts_do_not_depend_on_tasks_or_scheduler(files, task_rows, scheduler):
    d, syn, nrn, _ = files
    kw = {"rois": ["AL_L", "LH_L", "SLP_R"], "confidence": 0.5}
    with dask.config.set(scheduler=scheduler):
        A = cd.adjacency_from_files(d / "syn.parquet", d / "neurons.parquet", columns=COLS, task_rows=task_rows,
                                    progress=False, **kw)
        M = cd.adjacency_from_files(d / "syn.parquet", d / "neurons.parquet", columns=COLS, task_rows=task_rows,
                                    min_weight=2, progress=False)
    _same(_as_series(A), _reference(syn, nrn, **kw))
    _same(_as_series(M), _reference(syn, nrn, min_weight=2))


def test_subsets_that_fit_where_every_type_would_not(files):
    """Above the dense limit for all types, subsets whose matrix fits are counted (the exact size decides)."""
    d, syn, nrn, _ = files
    lab = nrn.set_index("root_id")["cell_type"]
    pre = [int(b) for b in syn["pre_pt_root_id"].unique()[:6]]
    post = [int(b) for b in syn["post_pt_root_id"].unique()[:9]]
    n_types = nrn["cell_type"].nunique()
    fit = len(set(lab.reindex(pre).dropna())) * len(set(lab.reindex(post).dropna())) * 8
    assert fit < n_types * n_types * 8
    with dask.config.set({"connectome_dask.max_dense_bytes": fit}):
        A = cd.adjacency_from_files(d / "syn.parquet", nrn, columns=COLS, pre=pre, post=post, progress=False)
        with pytest.raises(cd.DenseMatrixTooLarge):
            cd.adjacency_from_files(d / "syn.parquet", nrn, columns=COLS, progress=False)
    _same(_as_series(A), _reference(syn, nrn, pre=pre, post=post))


def test_distributed_scheduler(files):
    from distributed import Client, LocalCluster

    d, syn, nrn, _ = files
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client, client.as_current():
        A = cd.adjacency_from_files(d / "syn.parquet", d / "neurons.parquet", columns=COLS, task_rows=1000,
                                    rois=["AL_L"], progress=False)
        # a second query with another filter on the same scheduler never reuses the first one's results
        B = cd.adjacency_from_files(d / "syn.parquet", d / "neurons.parquet", columns=COLS, task_rows=1000,
                                    rois=["AL_R"], progress=False)
    for X, r in ((A, ["AL_L"]), (B, ["AL_R"])):
        _same(_as_series(X), _reference(syn, nrn, rois=r))


def test_csv_plain_strings_and_several_files(tmp_path):
    syn, nrn = _raw(seed=3, n_syn=3000)
    half = len(syn) // 2
    syn.iloc[:half].to_csv(tmp_path / "a.csv", index=False)
    syn.iloc[half:].to_csv(tmp_path / "b.csv", index=False)
    _write(syn.iloc[:half], tmp_path / "c.parquet", dictionary=False)
    _write(syn.iloc[half:], tmp_path / "d.parquet", dictionary=True)
    ref = _reference(syn, nrn, rois=["AL_L", "MB_CA_L"], confidence=0.5)
    for src in ([tmp_path / "a.csv", tmp_path / "b.csv"], [tmp_path / "c.parquet", tmp_path / "d.parquet"]):
        A = cd.adjacency_from_files(src, nrn, columns=COLS, rois=["AL_L", "MB_CA_L"], confidence=0.5,
                                    progress=False)
        _same(_as_series(A), ref)


def test_by_another_column_and_neuprint_columns(tmp_path):
    syn, nrn = _raw(seed=5, n_syn=2000)
    syn = syn.rename(columns={"pre_pt_root_id": "bodyId_pre", "post_pt_root_id": "bodyId_post",
                              "neuropil": "roi_post", "score": "confidence_post"})
    syn["confidence_pre"] = np.float32(0.9)
    syn.loc[syn.index[::7], "confidence_pre"] = np.float32(0.2)
    syn.to_parquet(tmp_path / "np.parquet")
    A = cd.adjacency_from_files(tmp_path / "np.parquet", nrn, by="side", confidence=0.5, progress=False)
    s = syn[(syn["confidence_pre"] > np.float32(0.5)) & (syn["confidence_post"] > np.float32(0.5))]
    lab = nrn.set_index("root_id")["side"]
    r = pd.DataFrame({"a": s["bodyId_pre"].map(lab), "b": s["bodyId_post"].map(lab)}).dropna()
    ref = r.groupby(["a", "b"]).size()
    _same(_as_series(A), ref)
    assert A.pre.values.tolist() == ["left", "right"]


def test_schema_errors_before_any_task(files, tmp_path, monkeypatch):
    import connectome_dask.direct as D

    d, syn, nrn, _ = files
    ran = []
    for f in ("_count_part", "_read_part"):  # no task of the graph
        monkeypatch.setattr(D, f, lambda *a, f=f: ran.append(f))
    syn.drop(columns=["score"]).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(IngestError, match=r"b\.parquet.*score"):
        cd.adjacency_from_files([d / "syn.parquet", tmp_path / "b.parquet"], nrn, columns=COLS, progress=False)
    with pytest.raises(KeyError, match="unknown neuron column 'nope'"):
        cd.adjacency_from_files(d / "syn.parquet", nrn, columns=COLS, by="nope", progress=False)
    with pytest.raises(ValueError, match="needs the sorted store"):
        cd.adjacency_from_files(d / "syn.parquet", nrn, columns=COLS, by="bodyId", progress=False)
    with pytest.raises(IngestError, match="needs a neuron table"):
        cd.adjacency_from_files(d / "syn.parquet", columns=COLS, progress=False)
    plain = {"pre": "pre_pt_root_id", "post": "post_pt_root_id"}
    with pytest.raises(KeyError, match="no ROI column"):
        cd.adjacency_from_files(d / "syn.parquet", nrn, columns=plain, rois=["AL_L"], progress=False)
    with pytest.raises(KeyError, match="no confidence column"):
        cd.adjacency_from_files(d / "syn.parquet", nrn, columns=plain, confidence=0.5, progress=False)
    with pytest.raises(TypeError, match="pre must be body IDs"):
        cd.adjacency_from_files(d / "syn.parquet", nrn, columns=COLS, pre="KCab", progress=False)
    with pytest.raises(ValueError, match="min_weight"):
        cd.adjacency_from_files(d / "syn.parquet", nrn, columns=COLS, min_weight=0, progress=False)
    with dask.config.set({"connectome_dask.max_dense_bytes": 64}):
        with pytest.raises(cd.DenseMatrixTooLarge):
            cd.adjacency_from_files(d / "syn.parquet", nrn, columns=COLS, progress=False)
    assert ran == []


def test_bad_rows_are_named(files, tmp_path):
    d, syn, nrn, _ = files
    bad = syn.copy()
    bad["post_pt_root_id"] = bad["post_pt_root_id"].astype("Int64")
    bad.loc[2345, "post_pt_root_id"] = pd.NA
    _write(bad, tmp_path / "bad.parquet")
    with pytest.raises(IngestError, match=r"bad\.parquet.*post_pt_root_id.*2345"):
        cd.adjacency_from_files(tmp_path / "bad.parquet", nrn, columns=COLS, progress=False)
    with pytest.raises(KeyError, match=r"unknown ROI\(s\) \['nowhere'\]"):
        cd.adjacency_from_files(d / "syn.parquet", nrn, columns=COLS, rois=["AL_L", "nowhere"], progress=False)


def test_id_table_against_pandas():
    rng = np.random.default_rng(7)
    ids = np.unique(np.concatenate([rng.integers(0, 2**63 - 1, 5000), np.arange(300), [2**63 - 1]]))
    tab = H.build_id_table(ids)
    assert tab.shape[0] >= 2 * len(ids) and (tab.shape[0] & (tab.shape[0] - 1)) == 0
    q = np.concatenate([ids, rng.integers(0, 2**63 - 1, 2000), [0, 2**63 - 1]])
    np.testing.assert_array_equal(H.id_slots(tab, q), pd.Index(ids).get_indexer(q))


def test_group_keys_against_numpy():
    rng = np.random.default_rng(8)
    ids = np.unique(rng.integers(0, 10**12, 400))
    tab = H.build_id_table(ids)
    g_pre = rng.integers(-1, 9, len(ids))
    g_post = rng.integers(-1, 5, len(ids))
    H.set_sides(tab, g_pre, g_post)
    pos = tab[:, 3]  # the table's own fill, checked against a numpy statement of it
    np.testing.assert_array_equal(tab[:, 1], np.where(pos >= 0, g_pre[np.maximum(pos, 0)], -1))
    np.testing.assert_array_equal(tab[:, 2], np.where(pos >= 0, g_post[np.maximum(pos, 0)], -1))
    n = 3 * H._SCAN_BLOCK + 123  # the kernels take rows in blocks: several, and a partial last one
    pre = np.where(rng.random(n) < 0.1, 10**13 + 1, rng.choice(ids, n))  # some IDs outside the table
    post = rng.choice(ids, n)
    roi = rng.integers(-1, 4, n).astype(np.int16)
    roi_ok = np.array([False, True, False, True, True])  # by code + 1: none and code 1 are left out
    conf = rng.random(n).astype(np.float32)
    got = H.scan_group_keys(pre, post, roi, roi_ok, True, conf, conf, np.float32(0.3), True, False, tab, 5)
    idx = pd.Index(ids)
    a, b = idx.get_indexer(pre), idx.get_indexer(post)
    ga = np.where(a >= 0, g_pre[a], -1)
    gb = g_post[b]
    keep = np.isin(roi, [0, 2, 3]) & (conf > np.float32(0.3)) & (ga >= 0) & (gb >= 0)
    np.testing.assert_array_equal(got, (ga * 5 + gb)[keep])
    conf2 = rng.random(n).astype(np.float32)  # both sites' confidences
    got2 = H.scan_group_keys(pre, post, roi, roi_ok, True, conf, conf2, np.float32(0.3), True, True, tab, 5)
    np.testing.assert_array_equal(got2, (ga * 5 + gb)[keep & (conf2 > np.float32(0.3))])
    no = np.zeros(1, np.float32)  # no filter at all
    got3 = H.scan_group_keys(pre, post, roi, roi_ok, False, no, no, 0.0, False, False, tab, 5)
    np.testing.assert_array_equal(got3, (ga * 5 + gb)[(ga >= 0) & (gb >= 0)])
    # the same rows counted in the scan, in batches, from a 2-slot table that must grow several times
    u, c = np.unique((ga * 5 + gb)[keep], return_counts=True)
    hk, hc, used = np.full(2, -1, np.int64), np.zeros(2, np.int64), 0
    for s in (slice(0, 1), slice(1, 1700), slice(1700, n)):
        hk, hc, used = H.scan_group_counts(pre[s], post[s], roi[s], roi_ok, True, conf[s], conf[s],
                                           np.float32(0.3), True, False, tab, 5, hk, hc, used)
    held = hk >= 0
    assert used == held.sum() == len(u) and len(hk) >= 2 * len(u)
    order = np.argsort(hk[held])
    np.testing.assert_array_equal(hk[held][order], u)
    np.testing.assert_array_equal(hc[held][order], c)


@pytest.mark.parametrize("task_rows", [1, 250, 1000, 2600, 10**9])
def test_parquet_packs_are_contiguous_and_near_equal(tmp_path, task_rows):
    """Row groups of uneven sizes: every group once, in order, offsets right, packs as few and as even as fit."""
    from types import SimpleNamespace

    from connectome_dask import direct as D

    sizes = [500, 500, 37, 500, 500, 500, 1, 500, 260]
    f = tmp_path / "uneven.parquet"
    with pq.ParquetWriter(f, pa.schema([("a", pa.int64())])) as w:
        for n in sizes:
            w.write_table(pa.table({"a": np.arange(n, dtype=np.int64)}))
    assert [pq.ParquetFile(f).metadata.row_group(i).num_rows for i in range(len(sizes))] == sizes
    parts = D._file_parts(SimpleNamespace(files=[str(f)], fmt="parquet"), task_rows)
    assert [g for p in parts for g in p.row_groups] == list(range(len(sizes)))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for p in parts:
        assert p.offset == starts[p.row_groups[0]] and p.rows == sum(sizes[g] for g in p.row_groups)
    total = sum(sizes)
    k = -(-total // task_rows)
    assert len(parts) <= k  # never more packs than task_rows needs
    if task_rows >= 1000:  # packs of several groups: none a whole group from the even share
        assert all(abs(p.rows - total / k) < max(sizes) for p in parts)
    one = D._file_parts(SimpleNamespace(files=[str(f)], fmt="parquet"), task_rows, split=False)
    assert len(one) == 1 and one[0].rows == total


@pytest.mark.parametrize("n_cells", [None, 40, 10**6])
def test_partials_sum_to_every_key_counted_once(n_cells):
    """The tree's combine of per-task (key, count) lists (and dense partials) against np.add.at of all keys."""
    from connectome_dask import direct as D

    rng = np.random.default_rng(11)
    space = 40 if n_cells == 40 else 10**6
    keys = [rng.integers(0, space, rng.integers(0, 300)) for _ in range(7)]
    parts = []
    for i, k in enumerate(keys):
        u, c = np.unique(k, return_counts=True)
        if n_cells == 40 and i == 3:  # a partial already dense
            d = np.zeros(40, np.int64)
            np.add.at(d, k, 1)
            parts.append(("dense", d, None, {f"r{i}"}, len(k), n_cells))
        else:
            parts.append(("counts", u, c.astype(np.int64), {f"r{i}"}, len(k), n_cells))
    got = D._combine([D._combine(parts[:3]), *parts[3:]])
    ref = np.zeros(space, np.int64)
    np.add.at(ref, np.concatenate(keys), 1)
    if got[0] == "dense":
        assert n_cells == 40
        np.testing.assert_array_equal(got[1], ref)
    else:
        assert n_cells != 40
        nz = np.flatnonzero(ref)
        np.testing.assert_array_equal(got[1], nz)
        np.testing.assert_array_equal(got[2], ref[nz])
    assert got[3] == {f"r{i}" for i in range(7)} and got[4] == sum(len(k) for k in keys)


@pytest.mark.parametrize("release", ["flywire", "codex"])
def test_release_folders_as_downloaded(tmp_path, release):
    """A release folder (its synapse and neuron files found, its quirks applied) gives the ingested store's matrix."""
    from tests.ingest import _releases as R

    df = R.connectome(n_syn=900, n_neurons=30, seed=4)
    folder = getattr(R, f"write_{release}")(df, tmp_path / release)
    A = cd.adjacency_from_files(folder, by="type", task_rows=100, progress=False)
    B = ingest(folder, tmp_path / "store", progress=False).adjacency(by="type", progress=False)
    np.testing.assert_array_equal(A.values, B.values)
    np.testing.assert_array_equal(A.coords["pre"].values, B.coords["pre"].values)
    # the rule in pandas: both releases type the sorted IDs T0, T1, T2, T0, ...
    ids = R.neuron_ids(df)
    lab = pd.Series([f"T{i % 3}" for i in range(len(ids))], index=ids)
    ref = pd.DataFrame({"a": df["pre"].map(lab), "b": df["post"].map(lab)}).groupby(["a", "b"]).size()
    _same(_as_series(A), ref)


def test_numeric_type_labels_are_the_stores(tmp_path):
    """A neuron table whose types are numbers: the store keeps them as text, so the labels and order match it."""
    syn, nrn = _raw(seed=9, n_syn=1500)
    nrn["cell_type"] = np.random.default_rng(9).choice([2, 10, 1], len(nrn))
    _write(syn, tmp_path / "syn.parquet")
    A = cd.adjacency_from_files(tmp_path / "syn.parquet", nrn, columns=COLS, progress=False)
    B = ingest(tmp_path / "syn.parquet", tmp_path / "store", neurons=nrn, columns=COLS,
               progress=False).adjacency(by="type", progress=False)
    assert A.pre.values.tolist() == B.pre.values.tolist() == ["1", "2", "10"]
    np.testing.assert_array_equal(A.values, B.values)


def test_roi_text_that_is_not_utf8_is_named_by_row(tmp_path):
    syn, nrn = _raw(seed=11, n_syn=300)
    syn.to_csv(tmp_path / "s.csv", index=False)
    lines = (tmp_path / "s.csv").read_bytes().split(b"\n")
    row = 123  # data row 123 = line 124
    lines[row + 1] = lines[row + 1].replace(b",AL_L,", b",AL_\xff,").replace(b",LH_L,", b",LH_\xff,") \
        .replace(b",AL_R,", b",AL_\xff,").replace(b",SLP_R,", b",SLP\xff,").replace(b",MB_CA_L,", b",MB\xff,")
    (tmp_path / "s.csv").write_bytes(b"\n".join(lines))
    with pytest.raises(IngestError, match=r"s\.csv.*neuropil.*123.*UTF-8"):
        cd.adjacency_from_files(tmp_path / "s.csv", nrn, columns=COLS, rois=["AL_L"], progress=False)


@pytest.mark.parametrize("kind", ["DataFrame", "Table", "RecordBatch"])
def test_tables_in_memory(files, kind):
    """A table in memory counts as the same rows written to a file (pandas reference, any slicing)."""
    d, syn, nrn, _ = files
    tab = pa.Table.from_pandas(syn, preserve_index=False)
    src = {"DataFrame": syn, "Table": tab, "RecordBatch": tab.combine_chunks().to_batches()[0]}[kind]
    kw = {"rois": ["AL_L", "LH_L", "SLP_R"], "confidence": 0.5}
    for task_rows in (1000, 10**9):
        A = cd.adjacency_from_files(src, nrn, columns=COLS, task_rows=task_rows, progress=False, **kw)
        _same(_as_series(A), _reference(syn, nrn, **kw))
        assert A.attrs["source"] == "<table>"
    M = cd.adjacency_from_files(src, nrn, columns=COLS, task_rows=1000, min_weight=2, progress=False)
    _same(_as_series(M), _reference(syn, nrn, min_weight=2))
    F = cd.adjacency_from_files(d / "syn.parquet", nrn, columns=COLS, task_rows=1000, min_weight=2, progress=False)
    np.testing.assert_array_equal(M.values, F.values)


def test_tables_in_memory_bad_rows_and_empty(files):
    d, syn, nrn, _ = files
    bad = syn.copy()
    bad["pre_pt_root_id"] = bad["pre_pt_root_id"].astype("Int64")
    bad.loc[4321, "pre_pt_root_id"] = pd.NA
    with pytest.raises(IngestError, match=r"<table>.*pre_pt_root_id.*4321"):
        cd.adjacency_from_files(bad, nrn, columns=COLS, task_rows=1000, progress=False)
    with pytest.raises(IngestError, match="empty input"):
        cd.adjacency_from_files(syn.iloc[:0], nrn, columns=COLS, progress=False)


def test_empty_csv_is_an_error_as_in_ingest(files, tmp_path):
    """A CSV with a header and no rows: ingest refuses it, and so does the direct path (after reading it)."""
    d, syn, nrn, _ = files
    syn.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(IngestError, match=r"empty input.*empty\.csv"):
        cd.adjacency_from_files(tmp_path / "empty.csv", nrn, columns=COLS, progress=False)
    with pytest.raises(IngestError, match=r"empty input.*empty\.csv"):
        ingest(tmp_path / "empty.csv", tmp_path / "store", neurons=nrn, columns=COLS, progress=False)


@pytest.mark.parametrize("kind", ["sorted", "repeats", "unsorted", "one_cell", "few"])
def test_add_cells_against_numpy(kind):
    """The (threaded) fill of a result against np.add.at."""
    from connectome_dask.compute.dense import PARALLEL_CELLS, add_cells, sparse_zeros

    rng = np.random.default_rng(5)
    n = 3 * PARALLEL_CELLS if kind != "few" else 50
    cells = {"sorted": np.unique(rng.integers(0, 10**7, n)),
             "repeats": np.sort(rng.integers(0, 5000, n)),
             "unsorted": rng.integers(0, 10**7, n),
             "one_cell": np.full(n, 77),
             "few": np.sort(rng.integers(0, 10**7, n))}[kind]
    w = rng.integers(1, 9, len(cells))
    out = sparse_zeros(10**7, pages=len(cells))
    add_cells(out, cells, w)
    ref = np.zeros(10**7, np.int64)
    np.add.at(ref, cells, w)
    np.testing.assert_array_equal(out, ref)
