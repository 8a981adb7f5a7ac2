"""Tests of the synthetic connectome generator (connectome_dask.datasets).

Every statistic is recomputed here from the stored arrays with plain
numpy / pandas / trimesh / scipy; nothing is compared with values copied
from the generator's own output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import connectome_dask as cd
from connectome_dask import datasets as ds
from connectome_dask.errors import IngestError
from connectome_dask.store import StoreError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N_NEURONS = 800
N_SYNAPSES = 80_000
POS = ["x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"]


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    conn = ds.synthetic(
        d / "s", N_NEURONS, N_SYNAPSES, seed=3, chunk_rows=1 << 14, parquet=d / "s.parquet"
    )
    syn = pd.DataFrame(conn.read_synapses(conn.synapse_columns))
    return conn, syn, d


# ----------------------------------------------------------------------------- store basics


def test_store_shape_sorted_and_valid(gen):
    conn, syn, _ = gen
    assert conn.check() == []
    assert conn.n_synapses == N_SYNAPSES == len(syn)
    assert conn.n_neurons == N_NEURONS
    assert set(syn.columns) == {"pre", "post", *POS, "confidence", "size"}
    key = syn["pre"].to_numpy(np.int64) * N_NEURONS + syn["post"].to_numpy(np.int64)
    assert (np.diff(key) >= 0).all(), "rows not sorted by (pre, post)"
    assert (syn["pre"] != syn["post"]).all(), "self-connections generated"
    nr = conn.neurons
    np.testing.assert_array_equal(nr["pre"], np.bincount(syn["pre"], minlength=N_NEURONS))
    np.testing.assert_array_equal(nr["post"], np.bincount(syn["post"], minlength=N_NEURONS))
    m = conn.meta
    assert m["source"] == "synthetic" and m["units"] == "nm"
    assert 0 <= m["default_confidence"] <= 1
    assert m["name"] == "s" and m["version"]
    assert nr["bodyId"].is_unique


def test_neuron_annotations_realistic(gen):
    conn, _, _ = gen
    nr = conn.neurons
    assert {"Traced", "Orphan"} <= set(nr["status"].dropna())
    assert nr["cropped"].dtype == "boolean" and 0 < nr["cropped"].sum() < len(nr) / 4
    typed = nr["type"].notna()
    assert 0.8 < typed.mean() < 1.0
    # about 8 k types for 139 k neurons, scaled down: several neurons per type on average
    n_types = nr["type"].nunique()
    assert 20 <= n_types <= N_NEURONS / 2
    sizes = nr["type"].value_counts()
    assert sizes.max() >= 5 * sizes.median(), "type sizes should be heavy-tailed"
    # instance = type + side suffix for typed neurons
    inst = nr.loc[typed, "instance"].astype(str)
    assert inst.str.match(r".+_[LR]$").all()
    assert (inst.str[:-2] == nr.loc[typed, "type"].astype(str)).all()


def test_confidence_size_and_position_grid(gen):
    _, syn, _ = gen
    conf = syn["confidence"].to_numpy()
    assert conf.dtype == np.float32
    assert conf.min() >= 0.0 and conf.max() <= 1.0
    assert np.median(conf) > 0.6, "confidences should be skewed towards 1"
    assert (syn["size"] >= 1).all()
    for c, v in zip(POS, [4, 4, 40] * 2, strict=True):
        a = syn[c].to_numpy(np.float64)
        assert np.array_equal(a, np.round(a / v) * v), f"{c} not on the 4x4x40 nm grid"
    pre = syn[POS[:3]].to_numpy(np.float64)
    post = syn[POS[3:]].to_numpy(np.float64)
    d = np.linalg.norm(post - pre, axis=1)
    # 100-300 nm offsets, plus at most one voxel diagonal of rounding each side
    slack = 2 * np.linalg.norm([2, 2, 20])
    assert d.min() >= 100 - slack and d.max() <= 300 + slack


# ----------------------------------------------------------------------------- statistics


def test_heavy_tailed_out_degree(gen):
    _, syn, _ = gen
    out = np.bincount(syn["pre"], minlength=N_NEURONS)
    med = np.median(out[out > 0])
    assert out.max() / med > 20
    # the top 1 % of neurons hold far more than 1 % of synapses
    top = np.sort(out)[::-1][: N_NEURONS // 100].sum()
    assert top / out.sum() > 0.08


def test_pair_weights_mostly_small_with_long_tail(gen):
    _, syn, _ = gen
    w = syn.groupby(["pre", "post"]).size().to_numpy()
    assert (w <= 5).mean() > 0.6
    assert w.max() > 50
    assert (w == 1).mean() > 0.2


def _partner_type_sets(conn, syn) -> pd.Series:
    types = conn.neurons["type"].astype(object).to_numpy()
    t_post = types[syn["post"].to_numpy()]
    df = pd.DataFrame({"pre": syn["pre"].to_numpy(), "t": t_post}).dropna()
    return df.groupby("pre")["t"].agg(frozenset)


def test_within_type_partner_overlap(gen):
    conn, syn, _ = gen
    sets = _partner_type_sets(conn, syn)
    types = conn.neurons["type"]
    rng = np.random.default_rng(0)

    def jac(a, b):
        return len(a & b) / len(a | b)

    within = []
    for _, idx in types[types.notna()].groupby(types[types.notna()]).groups.items():
        idx = [i for i in idx if i in sets.index]
        for _ in range(min(10, len(idx) * (len(idx) - 1) // 2)):
            i, j = rng.choice(idx, 2, replace=False)
            within.append(jac(sets[i], sets[j]))
    ids = sets.index.to_numpy()
    tv = types.astype(object).to_numpy()
    between = []
    while len(between) < 2000:
        i, j = rng.choice(ids, 2, replace=False)
        if tv[i] is pd.NA or tv[j] is pd.NA or tv[i] != tv[j]:
            between.append(jac(sets[i], sets[j]))
    assert len(within) > 50
    assert np.mean(within) > 0.3
    assert np.mean(within) > 4 * np.mean(between)


# ----------------------------------------------------------------------------- meshes


def test_procedural_meshes_watertight_disjoint_brain_like():
    import trimesh

    meshes, hier = ds.procedural_meshes()
    assert 20 <= len(meshes) <= 40
    assert {"AL_L", "AL_R", "MB_CA_R", "EB", "FB", "ME_L", "GNG"} <= set(meshes)
    assert sorted(hier["primary"]) == sorted(meshes)

    def leaves(h):
        for k, v in h.items():
            yield from (leaves(v) if v else [k])

    assert sorted(leaves(hier["hierarchy"])) == sorted(meshes)
    for name, m in meshes.items():
        assert m.is_watertight and m.is_volume, name
        # nm scale: neuropils are micrometres to ~100 um across
        ext = m.bounds[1] - m.bounds[0]
        assert 5_000 < ext.max() < 200_000, name
    # disjoint: points inside one mesh are inside no other
    names = list(meshes)
    for a in names:
        pts = trimesh.sample.volume_mesh(meshes[a], 400)
        for b in names:
            if b != a:
                assert not meshes[b].contains(pts).any(), f"{a} overlaps {b}"
    # bilateral: _L and _R mirror each other across a midline
    cl = meshes["AL_L"].centroid
    cr = meshes["AL_R"].centroid
    mid = (meshes["EB"].centroid[0] + meshes["FB"].centroid[0]) / 2
    assert abs((cl[0] + cr[0]) / 2 - mid) < 5_000


def test_mesh_units_use_the_one_unit_table():
    """hierarchy.json units: every spelling of connectome_dask.units; unknown ones fall back to the extent."""
    from connectome_dask import _synth
    from connectome_dask.errors import RoiError
    from connectome_dask.rois.meshes import _parse_scale
    from connectome_dask.units import LENGTH_UNITS

    for spelling, factor in LENGTH_UNITS.items():
        assert _synth.detect_scale(spelling.upper(), 1e6) == factor
        assert _parse_scale(f" {spelling} ") == factor  # RoiSet's scale= takes the same names
    assert _synth.detect_scale("8 nm voxels (hemibrain)", 1e6) == 8.0
    assert _synth.detect_scale("8nm voxel", 1e6) == 8.0
    assert _synth.detect_scale("parsecs", 1000.0) == 1000.0  # small extent: micrometres
    assert _synth.detect_scale(None, 1e6) == 1.0
    with pytest.raises(RoiError, match=r"unknown mesh units 'parsecs'.*'micrometre'"):
        _parse_scale("parsecs")


def test_write_procedural_meshes_format(tmp_path):
    import trimesh

    d = ds.write_procedural_meshes(tmp_path / "m")
    info = json.loads((d / "hierarchy.json").read_text())
    assert {"primary", "hierarchy", "units"} <= set(info)
    if (SHARED / "meshes" / "jfrc2np" / "hierarchy.json").exists():
        ref = json.loads((SHARED / "meshes" / "jfrc2np" / "hierarchy.json").read_text())
        assert set(ref) <= set(info)
    ply = sorted(d.glob("*.ply"))
    assert sorted(p.stem for p in ply) == sorted(info["primary"])
    m = trimesh.load(ply[0], force="mesh")
    ref_mesh = ds.procedural_meshes()[0][ply[0].stem]
    np.testing.assert_allclose(m.bounds, ref_mesh.bounds, rtol=1e-6)


def test_positions_inside_meshes(gen):
    conn, syn, _ = gen
    meshes, _ = ds.procedural_meshes()
    rng = np.random.default_rng(2)
    rows = rng.choice(len(syn), 3000, replace=False)
    for site in ("pre", "post"):
        p = syn[[f"x_{site}", f"y_{site}", f"z_{site}"]].to_numpy(np.float64)[rows]
        inside = np.zeros(len(p), bool)
        for m in meshes.values():
            inside |= m.contains(p)
        assert inside.mean() > 0.9, site
    # the recorded mesh source lets ROI assignment find them
    info = conn.meta["extra"]["meshes"]
    assert info["source"] == "procedural" and info["scale"] == 1.0


def test_regional_densities_follow_flywire(gen):
    """The optic-lobe medulla (25 % of FlyWire synapses) holds more than tiny neuropils."""
    _, syn, _ = gen
    meshes, _ = ds.procedural_meshes()
    p = syn[["x_pre", "y_pre", "z_pre"]].to_numpy(np.float64)[:: max(1, len(syn) // 4000)]
    me = meshes["ME_R"].contains(p) | meshes["ME_L"].contains(p)
    no = meshes["NO"].contains(p)
    assert me.mean() > 0.1 and me.mean() > 5 * no.mean()


# ----------------------------------------------------------------------------- determinism


def test_deterministic_and_chunk_independent(gen, tmp_path):
    conn, syn, _ = gen
    other = ds.synthetic(
        tmp_path / "b", N_NEURONS, N_SYNAPSES, seed=3, chunk_rows=777, block_rows=5000, skeletons=False
    )
    assert other.chunk_rows == 777 and conn.chunk_rows != 777
    syn2 = other.read_synapses(other.synapse_columns)
    for c in syn.columns:
        np.testing.assert_array_equal(syn[c].to_numpy(), syn2[c], err_msg=c)
    pd.testing.assert_frame_equal(conn.neurons, other.neurons)
    diff = ds.synthetic(tmp_path / "c", N_NEURONS, N_SYNAPSES, seed=4, skeletons=False)
    assert not np.array_equal(diff.read_synapses(["post"])["post"], syn["post"].to_numpy())


def test_streams_in_bounded_blocks(tmp_path, monkeypatch):
    from connectome_dask import store

    sizes = []
    orig = store.StoreWriter.append

    def spy(self, block):
        sizes.append((len(block["pre"]), len(np.unique(block["pre"]))))
        return orig(self, block)

    monkeypatch.setattr(store.StoreWriter, "append", spy)
    conn = ds.synthetic(tmp_path / "s", 300, 30_000, block_rows=4000, skeletons=False)
    assert len(sizes) > 5 and sum(s for s, _ in sizes) == 30_000
    per = conn.neurons["pre"].to_numpy()
    # a block exceeds block_rows only when it is a single (large) neuron
    assert all(s <= 4000 or k == 1 for s, k in sizes)
    assert max(s for s, _ in sizes) <= max(4000, per.max())


# ----------------------------------------------------------------------------- CAVE Parquet


def test_cave_parquet_same_synapses(gen):
    import pyarrow.parquet as pq

    conn, syn, d = gen
    f = pq.ParquetFile(d / "s.parquet")
    assert f.metadata.num_rows == N_SYNAPSES and f.metadata.num_row_groups >= 1
    md = json.loads(f.schema_arrow.metadata[b"connectome_dask"])
    assert md["position_units"] == "voxel" and md["voxel_size_nm"] == [4, 4, 40]
    t = f.read().to_pandas()
    for c in ("pre_pt_root_id", "post_pt_root_id", "pre_pt_position_x", "post_pt_position_z", "size"):
        assert t[c].dtype == np.int64, c
    body = conn.neurons["bodyId"].to_numpy()
    store_pairs = pd.DataFrame({"a": body[syn["pre"]], "b": body[syn["post"]]})
    pq_pairs = t[["pre_pt_root_id", "post_pt_root_id"]].set_axis(["a", "b"], axis=1)
    c1 = store_pairs.value_counts().sort_index()
    c2 = pq_pairs.value_counts().sort_index()
    pd.testing.assert_series_equal(c1, c2, check_names=False)
    # positions: voxels x voxel size == store nm, as multisets of full rows
    vox = np.array([4, 4, 40, 4, 4, 40])
    cols = [f"{s}_pt_position_{a}" for s in ("pre", "post") for a in "xyz"]
    a = np.c_[body[syn["pre"]], body[syn["post"]], syn[POS].to_numpy(np.float64)]
    b = np.c_[t["pre_pt_root_id"], t["post_pt_root_id"], t[cols].to_numpy() * vox]
    a = a[np.lexsort(a.T[::-1])]
    b = b[np.lexsort(b.T[::-1])]
    np.testing.assert_array_equal(a, b)
    assert t["connection_score"].between(0, 1).all()
    # rows are shuffled within row groups (not in store order)
    assert not (np.diff(t["pre_pt_root_id"].to_numpy()) >= 0).all()


# ----------------------------------------------------------------------------- skeletons


def _read_swc(p: Path) -> np.ndarray:
    a = np.loadtxt(p, comments="#", ndmin=2)
    assert a.shape[1] == 7
    return a


def test_skeletons_valid_and_near_synapses(gen):
    from scipy.spatial import cKDTree

    conn, syn, _ = gen
    nr = conn.neurons
    files = sorted(conn.skeleton_dir.glob("*.swc"))
    assert len(files) == N_NEURONS  # default: all neurons when n <= 5000
    rng = np.random.default_rng(5)
    dist = {"pre": [], "post": []}
    control = []
    for i in rng.choice(N_NEURONS, 40, replace=False):
        a = _read_swc(conn.skeleton_dir / f"{nr['bodyId'][i]}.swc")
        ids, par = a[:, 0].astype(int), a[:, 6].astype(int)
        np.testing.assert_array_equal(ids, np.arange(1, len(a) + 1))
        assert (par == -1).sum() == 1 and par[0] == -1
        assert (par[1:] >= 1).all() and (par[1:] < ids[1:]).all(), "parents must precede children"
        assert (a[:, 5] > 0).all() and a[0, 1] == 1  # radius, soma type
        tree = cKDTree(a[:, 2:5])
        for site in ("pre", "post"):
            m = (syn[site] == i).to_numpy()
            if m.any():
                p = syn.loc[m, [f"x_{site}", f"y_{site}", f"z_{site}"]].to_numpy(np.float64)
                dist[site].append(tree.query(p)[0])
        j = (i + N_NEURONS // 2) % N_NEURONS  # another neuron's synapses
        m = (syn["pre"] == j).to_numpy()
        if m.any():
            control.append(tree.query(syn.loc[m, ["x_pre", "y_pre", "z_pre"]].to_numpy(np.float64))[0])
    for site in ("pre", "post"):
        d = np.concatenate(dist[site])
        assert np.median(d) < 4_000, site  # nm
        assert np.quantile(d, 0.9) < 8_000, site
    assert np.median(np.concatenate(control)) > 20_000


def test_skeleton_count_selects_largest(tmp_path):
    conn = ds.synthetic(tmp_path / "s", 200, 20_000, skeletons=7)
    nr = conn.neurons
    tot = nr["pre"] + nr["post"]
    got = sorted(int(p.stem) for p in conn.skeleton_dir.glob("*.swc"))
    assert len(got) == 7
    assert tot[nr["bodyId"].isin(got)].min() >= tot.sort_values().iloc[-7]
    none = ds.synthetic(tmp_path / "t", 200, 2_000, skeletons=False)
    assert none.skeleton_dir is None or not any(none.skeleton_dir.glob("*.swc"))


# ----------------------------------------------------------------------------- real neuron table


@pytest.mark.realdata
def test_hemibrain_table_reuse(tmp_path):
    csv = SHARED / "hemibrain" / "neuron_meta.csv"
    mesh_dir = SHARED / "meshes" / "jfrc2np"
    if not csv.exists() or not mesh_dir.exists():
        pytest.skip(f"real data not available at {SHARED} (hemibrain/neuron_meta.csv, meshes/jfrc2np)")
    import trimesh

    ref = pd.read_csv(csv)
    conn = ds.synthetic(tmp_path / "h", None, 150_000, neurons=csv, meshes=mesh_dir, skeletons=False)
    nr = conn.neurons
    np.testing.assert_array_equal(nr["bodyId"].to_numpy(), ref["bodyId"].to_numpy())
    pd.testing.assert_series_equal(
        nr["type"].astype(object), ref["type"].astype("string").astype(object), check_names=False
    )
    pd.testing.assert_series_equal(
        nr["instance"].astype(object), ref["instance"].astype("string").astype(object), check_names=False
    )
    assert {"cellBodyFiber", "somaLocation", "cell_class", "fbbt_id"} <= set(nr.columns)
    # relative output counts follow the table's 'pre' (Spearman, computed with pandas ranks)
    rank_corr = pd.Series(nr["pre"].to_numpy()).rank().corr(ref["pre"].fillna(0).rank())
    assert rank_corr > 0.7
    assert conn.meta["extra"]["meshes"]["scale"] == 1000.0  # JFRC2 meshes are in micrometres
    # positions inside the (um -> nm scaled) JFRC2 neuropils
    syn = conn.read_synapses(["x_pre", "y_pre", "z_pre"])
    p = np.c_[syn["x_pre"], syn["y_pre"], syn["z_pre"]].astype(np.float64)[:: len(syn["x_pre"]) // 1500]
    inside = np.zeros(len(p), bool)
    for f in mesh_dir.glob("*.ply"):
        m = trimesh.load(f, force="mesh").apply_scale(1000.0)
        if m.is_watertight:
            inside |= m.contains(p)
        else:
            inside |= m.convex_hull.contains(p)
    assert inside.mean() > 0.8


# ----------------------------------------------------------------------------- demo, meshes_for


def test_demo_store_and_meshes_for(tmp_path):
    conn = ds.demo_store(tmp_path / "demo", n_synapses=30_000, skeletons=3)
    assert conn.n_synapses == 30_000 and conn.n_neurons == 1000
    assert conn.meta["name"] == "demo"
    mdir = ds.meshes_for(conn)
    assert mdir == (tmp_path / "demo_meshes").resolve() or mdir == tmp_path / "demo_meshes"
    assert (mdir / "hierarchy.json").exists() and len(list(mdir.glob("*.ply"))) == 26
    assert len(list(conn.skeleton_dir.glob("*.swc"))) == 3
    # a synthetic store without a mesh folder: meshes_for writes the procedural ones
    s = ds.synthetic(tmp_path / "x", 50, 1000, skeletons=False)
    d = ds.meshes_for(s, tmp_path / "xm")
    assert d == tmp_path / "xm" and (d / "EB.ply").exists()
    assert cd.open(tmp_path / "demo", set_default=False).n_synapses == 30_000


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((1, 100), {}, "n_neurons"),
        ((10, -5), {}, "n_synapses"),
        ((10, 100), {"n_types": 11}, "n_types"),
        ((10, 100), {"chunk_rows": 0}, "chunk_rows"),
        ((10, 100), {"skeletons": -1}, "skeletons"),
        ((None, 100), {}, "n_neurons"),
        ((10, 100), {"default_confidence": 2.0}, "default_confidence"),
    ],
)
def test_bad_arguments_fail_before_writing(tmp_path, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ds.synthetic(tmp_path / "s", *args, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_neuron_tables(tmp_path):
    with pytest.raises(ValueError, match="bodyId"):
        ds.synthetic(tmp_path / "s", None, 100, neurons=pd.DataFrame({"id": [1, 2]}))
    # identical duplicate rows are merged (ingest's rule); different annotations are refused
    with pytest.raises(IngestError, match="bodyId 5 appears with different annotations"):
        ds.synthetic(tmp_path / "s", None, 100,
                     neurons=pd.DataFrame({"bodyId": [5, 5, 6], "type": ["a", "b", "c"]}))
    with pytest.raises(IngestError, match=r"column 'bodyId', row 1: .*'x'"):
        ds.synthetic(tmp_path / "s", None, 100, neurons=pd.DataFrame({"bodyId": [5, "x", 6]}))
    with pytest.raises(IngestError, match=r"column 'bodyId', row 2: body ID -6 is negative"):
        ds.synthetic(tmp_path / "s", None, 100, neurons=pd.DataFrame({"bodyId": [5, 7, -6]}))
    with pytest.raises(IngestError, match=r"column 'post', row 1: post count -2 is negative"):
        ds.synthetic(tmp_path / "s", None, 100,
                     neurons=pd.DataFrame({"bodyId": [5, 7, 6], "post": [1, -2, 3]}))
    with pytest.raises(IngestError, match="does not exist"):  # an IngestError is a ValueError
        ds.synthetic(tmp_path / "s", None, 100, neurons=tmp_path / "missing.csv")
    with pytest.raises(FileNotFoundError):
        ds.synthetic(tmp_path / "s", 10, 100, meshes=tmp_path / "nomeshes")
    assert not (tmp_path / "s").exists()


def test_neuron_table_read_as_ingest_reads_it(tmp_path):
    """synthetic(neurons=) and ingest(neurons=) share one reader: CAVE ID names, merged duplicates."""
    table = pd.DataFrame({"root_id": [5, 9, 5, 7], "type": ["a", "b", "a", None]})
    table.to_csv(tmp_path / "n.csv", index=False)
    conn = ds.synthetic(tmp_path / "s", None, 300, neurons=tmp_path / "n.csv", skeletons=False)
    assert sorted(conn.neurons["bodyId"]) == [5, 7, 9] and "root_id" not in conn.neurons.columns
    assert conn.meta["extra"]["generator"]["neuron_table"] == str(tmp_path / "n.csv")


def test_existing_store_needs_overwrite(tmp_path):
    ds.synthetic(tmp_path / "s", 20, 200, skeletons=False)
    with pytest.raises(StoreError, match="overwrite"):
        ds.synthetic(tmp_path / "s", 20, 300, skeletons=False)
    again = ds.synthetic(tmp_path / "s", 20, 300, skeletons=False, overwrite=True)
    assert again.n_synapses == 300


def test_small_table_subset_and_mapping_meshes(tmp_path):
    meshes, _ = ds.procedural_meshes()
    sub = {k: meshes[k] for k in ("AL_L", "AL_R", "EB")}
    table = pd.DataFrame(
        {
            "bodyId": np.arange(100, 160) * 7,
            "type": ["A"] * 20 + ["B"] * 20 + [None] * 20,
            "pre": np.linspace(1, 100, 60),
            "post": np.linspace(100, 1, 60),
            "notes": ["n"] * 60,
        }
    )
    conn = ds.synthetic(tmp_path / "s", 30, 5000, neurons=table, meshes=sub, skeletons=False)
    nr = conn.neurons
    assert len(nr) == 30 and set(nr["bodyId"]) <= set(table["bodyId"])
    assert (nr["notes"] == "n").all() and "status" in nr.columns
    syn = conn.read_synapses(["x_pre", "y_pre", "z_pre"])
    p = np.c_[syn["x_pre"], syn["y_pre"], syn["z_pre"]].astype(np.float64)[::10]
    inside = np.zeros(len(p), bool)
    for m in sub.values():
        inside |= m.contains(p)
    assert inside.mean() > 0.9
