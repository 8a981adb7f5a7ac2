"""``from_synapses_by_neuropil`` gives crantpy's rule from a DataFrame, a dask DataFrame and a store.

crantpy counts a synapse in EVERY listed neuropil mesh that contains it and
in ``"other"`` when it is in none of them. The meshes here are axis-aligned
boxes: ``A`` and ``B`` overlap without either containing the other (nor are
they parent and child in any hierarchy), ``Ai`` lies inside ``A``. A store
tests its synapse positions against the meshes (``rois=`` or the store's own
from ``assign_rois``), partition by partition, so the counts are the same as
the DataFrame's at any chunk / partition size. The store's one ROI code per
synapse would count a synapse in the A-B overlap once only.
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest

import connectome_dask as cd
import connectome_dask.crantpy as cp

from . import _reference as ref

trimesh = pytest.importorskip("trimesh")

PRE, POST = "pre_pt_root_id", "post_pt_root_id"
XYZ = ["ctr_pt_position_x", "ctr_pt_position_y", "ctr_pt_position_z"]
#: name -> (lo, hi) corners of the box meshes (nm)
BOXES = {"A": ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)), "B": ((0.0, -1.0, -1.0), (2.0, 1.0, 1.0)),
         "Ai": ((-0.75, -0.5, -0.5), (-0.25, 0.5, 0.5))}  # fmt: skip
# a tiny partition can hold only points outside every mesh: RoiSet.contains warns for it (wrong units?)
pytestmark = pytest.mark.filterwarnings("error::connectome_dask.rois.RoiScaleWarning")
LISTS = [None, ["A", "B"], ["B", "Ai"], ["Ai", "A"], ["A"]]


@pytest.fixture(autouse=True)
def _sync():
    with dask.config.set(scheduler="sync", **{"connectome_dask.progress": False,
                                              "connectome_dask.partition_chunks": 1}):  # fmt: skip
        yield


def _roiset():
    from connectome_dask.rois import RoiSet

    meshes = {}
    for n, (lo, hi) in BOXES.items():
        lo_, hi_ = np.asarray(lo), np.asarray(hi)
        meshes[n] = trimesh.creation.box(extents=hi_ - lo_, transform=trimesh.transformations.translation_matrix(
            (lo_ + hi_) / 2))  # fmt: skip
    return RoiSet.from_meshes(meshes)


def _same(a, b):
    assert type(a) is type(b)
    if hasattr(a, "ordered_neurons"):
        assert a.ordered_neurons == b.ordered_neurons and list(a.type_boundaries.items()) == list(
            b.type_boundaries.items())  # fmt: skip
    else:
        assert a.source_neurons == b.source_neurons and a.target_neurons == b.target_neurons
        assert list(a.source_type_boundaries.items()) == list(b.source_type_boundaries.items())
        assert list(a.target_type_boundaries.items()) == list(b.target_type_boundaries.items())
    assert (a.to_scipy() != b.to_scipy()).nnz == 0  # bit-identical


def _same_collections(a, b):
    assert list(a) == list(b)
    for n in a:
        _same(a[n], b[n])


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One synapse table as pandas, dask (3 partitions) and stores with 64- and 4096-row chunks (47 / 1 partitions).

    Positions are float32 (a store's precision) at odd multiples of 0.05 nm: never on a box face.
    """
    rng = np.random.default_rng(15)
    n, k = 24, 3000
    body = np.arange(500, 500 + n, dtype=np.int64)
    types = np.array((["ER2", "Pbt", "KC", None, "ER2", "KC", "Pbt"] * 4)[:n], dtype=object)
    neurons = pd.DataFrame({"bodyId": body, "type": types})
    pre, post = rng.integers(0, n, k).astype(np.int32), rng.integers(0, n, k).astype(np.int32)
    # x in (-1.5, 2.5), y, z in (-1.5, 1.5): most synapses in A or B, a few dozen in Ai
    pos = ((np.c_[rng.integers(-15, 25, k), rng.integers(-15, 15, (k, 2))] + 0.5) * 0.1).astype(np.float32)
    conf = rng.uniform(0, 1, k).astype(np.float32)
    s = pd.DataFrame({"pre": pre, "post": post, "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2], "confidence": conf})
    root = tmp_path_factory.mktemp("neuropil_store")
    rs = _roiset()
    stores = []
    for c in (64, 4096):
        conn = cd.write_store(root / f"s{c}", neurons, s, {"name": "np"}, chunk_rows=c)
        stores.append(conn.assign_rois(rs, progress=False))  # the store's own meshes and ROI codes
    p64 = pos.astype(np.float64)
    syn = pd.DataFrame({PRE: body[pre], POST: body[post], **{c: p64[:, i] for i, c in enumerate(XYZ)}})
    syn["ctr_pt_position"] = list(p64)
    syn["confidence"] = conf.astype(np.float64)
    ann = pd.DataFrame({"root_id": body[1::2][::-1], "cell_type": types[1::2][::-1]})  # half, reversed
    with dask.config.set({"connectome_dask.partition_chunks": 1}):  # as in the tests (_sync)
        assert len(stores[0].partitions()) > 10 and len(stores[1].partitions()) == 1
    return syn, ann, stores, rs


def _inside(syn, names):
    pts = syn[XYZ].to_numpy()
    return {n: ref.box_inside(pts, *BOXES[n]) for n in names}


def test_the_meshes_overlap_without_nesting_and_nest():
    pts = np.array([[0.55, 0.05, 0.05], [-0.55, 0.05, 0.05], [1.55, 0.05, 0.05]])
    rs = _roiset()
    got = {n: np.asarray(rs.contains(pts, n)).tolist() for n in BOXES}
    assert got == {"A": [True, True, False], "B": [True, False, True], "Ai": [False, True, False]}
    assert got == {n: ref.box_inside(pts, *BOXES[n]).tolist() for n in BOXES}


@pytest.mark.parametrize("listed", LISTS)
@pytest.mark.parametrize("scope", ["annotated_only", "all"])
@pytest.mark.parametrize("mode", ["count", "relative_outgoing", "relative_incoming"])
def test_nested_by_neuropil_is_the_same_from_every_source(sources, mode, scope, listed):
    import dask.dataframe as dd

    syn, ann, stores, rs = sources
    kw = {"neuropil_names": listed, "weight_mode": mode, "annotation_scope": scope}
    a = cp.NestedMatrix.from_synapses_by_neuropil(syn, ann, position_column=XYZ, rois=rs, **kw)
    expect = ref.by_neuropil(syn, ann, _inside(syn, listed or list(BOXES)), mode, scope)
    assert list(a) == list(expect)
    for n, (mat, bounds, n2t) in expect.items():
        ref.assert_matches(a[n], mat, bounds, exact=mode == "count")
        assert list(a[n].neuron_to_type.items()) == n2t
    ddf = dd.from_pandas(syn[[PRE, POST, *XYZ]], npartitions=3, sort=False)
    _same_collections(cp.NestedMatrix.from_synapses_by_neuropil(ddf, ann, position_column=XYZ, rois=rs, **kw), a)
    for conn in stores:
        # the store's own meshes (RoiSet.from_store) with crantpy's default position column, and rois=
        _same_collections(cp.NestedMatrix.from_synapses_by_neuropil(conn, ann, **kw), a)
        _same_collections(cp.NestedMatrix.from_synapses_by_neuropil(conn, ann, position_column=XYZ, rois=rs, **kw), a)


@pytest.mark.parametrize("norm", ["selected", "all"])
@pytest.mark.parametrize("mode", ["count", "relative_outgoing"])
def test_directed_by_neuropil_is_the_same_from_every_source(sources, mode, norm):
    import dask.dataframe as dd

    syn, ann, stores, rs = sources
    sel = {"source_types": ["ER2", "KC"], "target_types": ["Pbt", "ER2"]}
    kw = {"neuropil_names": ["B", "A", "Ai"], "weight_mode": mode, "normalization_scope": norm, **sel}
    d = cp.DirectedNestedMatrix.from_synapses_by_neuropil(syn, ann, rois=rs, **kw)
    inside = _inside(syn, ["B", "A", "Ai"])
    inside["other"] = ~np.any(list(inside.values()), axis=0)
    scoped = ref.scoped_rows(syn, ann, "annotated_only")
    dexpect = []
    for n, m in inside.items():
        mat, sa, ta = ref.directed(syn[m & syn.index.isin(scoped.index)], ann, mode, None, "annotated_only", norm,
                                   **sel)  # fmt: skip
        if mat.shape[0] and mat.shape[1]:
            dexpect.append(n)
            ref.assert_matches(d[n], mat, sa[1], ta[1], exact=mode == "count")
    assert list(d) == dexpect and "other" in d
    ddf = dd.from_pandas(syn[[PRE, POST, *XYZ]], npartitions=3, sort=False)
    _same_collections(cp.DirectedNestedMatrix.from_synapses_by_neuropil(ddf, ann, position_column=XYZ, rois=rs,
                                                                        **kw), d)  # fmt: skip
    for conn in stores:
        _same_collections(cp.DirectedNestedMatrix.from_synapses_by_neuropil(conn, ann, **kw), d)


@pytest.mark.parametrize("min_weight", [1, 2])
def test_store_confidence_and_min_weight_as_a_filtered_dataframe(sources, min_weight):
    syn, ann, stores, rs = sources
    thr = 0.4
    sub = syn[syn["confidence"] > np.float32(thr)].reset_index(drop=True)  # a store compares as float32
    kw = {"neuropil_names": ["A", "B", "Ai"], "weight_mode": "count", "min_weight": min_weight}
    a = cp.NestedMatrix.from_synapses_by_neuropil(sub, ann, position_column=XYZ, rois=rs, **kw)
    assert list(a) == ["A", "B", "Ai", "other"]
    data = a["A"].to_scipy().data
    assert len(data) and (data >= min_weight).all()
    for conn in stores:
        _same_collections(cp.NestedMatrix.from_synapses_by_neuropil(conn, ann, confidence=thr, **kw), a)


def test_store_counts_a_synapse_in_both_overlapping_meshes(sources):
    """The case the store's ROI codes got wrong: A and B overlap, neither is the other's parent."""
    syn, ann, stores, _ = sources
    inside = _inside(syn, ["A", "B"])
    both = inside["A"] & inside["B"]
    scoped = syn.index.isin(ref.scoped_rows(syn, ann, "annotated_only").index)
    assert (both & scoped).sum() > 20 and (_inside(syn, ["Ai"])["Ai"] & scoped).sum() > 5  # not vacuous
    for conn in stores:
        c = cp.NestedMatrix.from_synapses_by_neuropil(conn, neuropil_names=["A", "B"], weight_mode="count",
                                                      annotation_scope="all")  # fmt: skip
        assert c["A"].to_scipy().sum() == inside["A"].sum() and c["B"].to_scipy().sum() == inside["B"].sum()
        assert c["other"].to_scipy().sum() == (~(inside["A"] | inside["B"])).sum()
        # one code per synapse (the smaller mesh wins): the overlap is in only one of them
        roi_post = conn.read_synapses(["roi_post"])["roi_post"]
        assert int(np.isin(roi_post, [conn.roi_names.index("A"), conn.roi_names.index("B")]).sum()) < (
            inside["A"].sum() + inside["B"].sum())  # fmt: skip


def test_store_positions_and_a_group_of_meshes(sources, tmp_path):
    syn, ann, stores, rs = sources
    conn = stores[0]
    a = cp.NestedMatrix.from_synapses_by_neuropil(syn, ann, rois=rs, weight_mode="count")  # ctr_pt_position
    _same_collections(cp.NestedMatrix.from_synapses_by_neuropil(conn, ann, position_column=["x", "y", "z"],
                                                                weight_mode="count"), a)  # fmt: skip
    with pytest.raises(KeyError):
        cp.NestedMatrix.from_synapses_by_neuropil(conn, ann, position_column=["px", "py", "pz"])
    with pytest.raises(ValueError, match="pixels"):
        cp.NestedMatrix.from_synapses_by_neuropil(conn, ann, coordinates="pixels")
    # a hierarchy group without a mesh of its own: the union of its descendants' meshes
    from connectome_dask.rois import RoiSet

    grouped = RoiSet.from_meshes(rs.meshes, hierarchy={"AB": {"A": {}, "B": {}}})
    g = cp.NestedMatrix.from_synapses_by_neuropil(conn, ann, neuropil_names=["AB"], rois=grouped,
                                                  weight_mode="count", annotation_scope="all")  # fmt: skip
    inside = _inside(syn, ["A", "B"])
    assert g["AB"].to_scipy().sum() == (inside["A"] | inside["B"]).sum()


def test_a_store_with_both_sites_tests_the_named_site(tmp_path):
    """Pre and post positions: ``post_pt_position`` (and the default, which has no centre point) is the post site."""
    rng = np.random.default_rng(3)
    k = 300
    body = np.array([7, 8, 9], dtype=np.int64)
    neurons = pd.DataFrame({"bodyId": body, "type": ["ER2", "Pbt", "KC"]})
    pre_p = ((rng.integers(-30, 30, (k, 3)) + 0.5) * 0.1).astype(np.float32)
    post_p = ((rng.integers(-30, 30, (k, 3)) + 0.5) * 0.1).astype(np.float32)
    pre, post = rng.integers(0, 3, k).astype(np.int32), rng.integers(0, 3, k).astype(np.int32)
    s = pd.DataFrame({"pre": pre, "post": post, **{f"{a}_pre": pre_p[:, i] for i, a in enumerate("xyz")},
                      **{f"{a}_post": post_p[:, i] for i, a in enumerate("xyz")}})  # fmt: skip
    conn = cd.write_store(tmp_path / "s", neurons, s, {"name": "pairs"}, chunk_rows=32)
    syn = pd.DataFrame({PRE: body[pre], POST: body[post], "pre_pt_position": list(pre_p.astype(np.float64)),
                        "post_pt_position": list(post_p.astype(np.float64))})  # fmt: skip
    ann = pd.DataFrame({"root_id": body, "cell_type": ["ER2", "Pbt", "KC"]})
    rs = _roiset()
    for col in ("pre_pt_position", "post_pt_position"):
        a = cp.NestedMatrix.from_synapses_by_neuropil(syn, ann, position_column=col, rois=rs, weight_mode="count")
        _same_collections(cp.NestedMatrix.from_synapses_by_neuropil(conn, ann, position_column=col, rois=rs,
                                                                    weight_mode="count"), a)  # fmt: skip
    _same_collections(cp.NestedMatrix.from_synapses_by_neuropil(conn, ann, rois=rs, weight_mode="count"), a)


def test_threaded_scheduler_gives_the_same_counts(sources):
    syn, ann, stores, rs = sources
    kw = {"neuropil_names": ["A", "B", "Ai"], "weight_mode": "count"}
    a = cp.NestedMatrix.from_synapses_by_neuropil(syn, ann, position_column=XYZ, rois=rs, **kw)
    with dask.config.set(scheduler="threads", num_workers=2):
        _same_collections(cp.NestedMatrix.from_synapses_by_neuropil(stores[0], ann, **kw), a)
