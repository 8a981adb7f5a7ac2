"""connectome_dask.neuprint.skeleton against neuprint-python's pure skeleton functions."""

from __future__ import annotations

import io

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from connectome_dask.errors import SkeletonError
from connectome_dask.neuprint import skeleton as ours

nps = pytest.importorskip("neuprint.skeleton")


def _tree(seed: int, n: int = 40, fragments: int = 1) -> pd.DataFrame:
    """A random skeleton: ``fragments`` random trees far apart, rowIds shuffled, neuprint dtypes."""
    rng = np.random.default_rng(seed)
    rows = []
    next_id = 1
    for f in range(fragments):
        ids = list(range(next_id, next_id + n))
        next_id += n
        base = np.array([f * 300.0, 0, 0])
        pts = {ids[0]: base}
        rows.append((ids[0], *base, 1.0, -1))
        for i in ids[1:]:
            parent = int(rng.choice(ids[: ids.index(i)]))
            p = pts[parent] + rng.normal(0, 10, 3)
            pts[i] = p
            rows.append((i, *p, float(rng.uniform(0.5, 5)), parent))
    df = pd.DataFrame(rows, columns=["rowId", "x", "y", "z", "radius", "link"])
    df = df.sample(frac=1, random_state=seed).reset_index(drop=True)
    return df.astype({"rowId": np.int32, "x": np.float32, "y": np.float32, "z": np.float32,
                      "radius": np.float32, "link": np.int32})


def test_swc_round_trip_equals_neuprint(tmp_path):
    sk = _tree(0)
    swc_np = nps.skeleton_df_to_swc(sk)
    assert ours.skeleton_df_to_swc(sk) == swc_np
    pd.testing.assert_frame_equal(ours.skeleton_swc_to_df(swc_np), nps.skeleton_swc_to_df(swc_np))
    p = tmp_path / "a.swc"
    ours.skeleton_df_to_swc(sk, export_path=p)
    pd.testing.assert_frame_equal(ours.skeleton_swc_to_df(str(p)), nps.skeleton_swc_to_df(str(p)))
    pd.testing.assert_frame_equal(ours.skeleton_swc_to_df(io.StringIO(swc_np)),
                                  nps.skeleton_swc_to_df(io.StringIO(swc_np)))


def test_swc_comments_skipped():
    text = "# a comment\n1 0 1.0 2.0 3.0 4.0 -1\n2 0 1.0 2.0 4.0 1.0 1\n"
    pd.testing.assert_frame_equal(ours.skeleton_swc_to_df(text), nps.skeleton_swc_to_df(text))
    with pytest.raises(SkeletonError):
        ours.skeleton_swc_to_df(42)


@pytest.mark.parametrize("root_dist", [np.inf, 0.0, -1.0])
def test_calc_segment_distances_equals_neuprint(root_dist):
    sk = _tree(1, fragments=2)
    np.testing.assert_array_equal(ours.calc_segment_distances(sk, root_dist),
                                  nps.calc_segment_distances(sk, root_dist))
    assert ours.calc_segment_distances(sk).dtype == np.float32
    assert np.isinf(ours.calc_segment_distances(sk)[sk.link.to_numpy() == -1]).all()


@pytest.mark.parametrize("kw", [{}, dict(with_attributes=False), dict(directed=False),
                                dict(with_distances=True), dict(with_distances=True, virtual_roots=True),
                                dict(virtual_roots=True, root_dist=0.0, with_distances=True)])
def test_skeleton_df_to_nx_equals_neuprint(kw):
    sk = _tree(2, fragments=2)
    a, b = ours.skeleton_df_to_nx(sk, **kw), nps.skeleton_df_to_nx(sk, **kw)
    assert type(a) is type(b)
    assert sorted(a.nodes(data=True)) == sorted(b.nodes(data=True))
    assert sorted(a.edges(data=True)) == sorted(b.edges(data=True))


def test_distances_from_root_equals_neuprint():
    sk = _tree(3)
    pd.testing.assert_frame_equal(ours.distances_from_root(sk), nps.distances_from_root(sk))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("max_distance", [np.inf, True, 250.0, 0])
def test_heal_skeleton_equals_neuprint(seed, max_distance):
    sk = _tree(seed, n=15, fragments=3)
    want = nps.heal_skeleton(sk.copy(), max_distance)
    got = ours.heal_skeleton(sk.copy(), max_distance)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


def test_heal_skeleton_joins_into_one_tree():
    sk = _tree(4, n=10, fragments=4)
    healed = ours.heal_skeleton(sk)
    assert int((healed.link == -1).sum()) == 1
    g = ours.skeleton_df_to_nx(healed, directed=False)
    assert nx.is_tree(g)
    # unchanged when already one tree and root_parent given (neuprint's fast path)
    one = _tree(5)
    pd.testing.assert_frame_equal(ours.heal_skeleton(one, root_parent=-1), nps.heal_skeleton(one, root_parent=-1))


@pytest.mark.parametrize("kw", [dict(rowId=7), dict(xyz=(0.0, 0.0, 0.0)), dict(use_max_radius=True)])
def test_reorient_skeleton_equals_neuprint(kw):
    a, b = _tree(6), _tree(6)
    ours.reorient_skeleton(a, **kw)
    nps.reorient_skeleton(b, **kw)
    pd.testing.assert_frame_equal(a, b)


def test_reorient_skeleton_rejects_what_neuprint_rejects():
    for kw in (dict(rowId=0), {}, dict(rowId=3, use_max_radius=True)):
        with pytest.raises(AssertionError):
            nps.reorient_skeleton(_tree(0), **kw)
        with pytest.raises(SkeletonError):
            ours.reorient_skeleton(_tree(0), **kw)


def test_skeleton_segments_equals_neuprint():
    sk = _tree(7)
    pd.testing.assert_frame_equal(ours.skeleton_segments(sk), nps.skeleton_segments(sk))


@pytest.mark.parametrize("max_len", [3.0, 8.0, 100.0])
@pytest.mark.parametrize("as64", [False, True])
def test_upsample_skeleton_equals_neuprint(max_len, as64):
    sk = _tree(8)
    if as64:
        sk = sk.astype({k: np.float64 for k in "xyz"})
    got = ours.upsample_skeleton(sk, max_len)
    # neuprint-python 0.6.4's DataFrame.update of float32 columns with float64 values raises on
    # pandas >= 3; run it on an all-float64 copy and cast back, as it did on older pandas
    want = nps.upsample_skeleton(sk.astype({c: np.float64 for c in ("x", "y", "z", "radius")}), max_len)
    want = want.astype(sk.dtypes.to_dict())
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-5, atol=1e-4)
    assert set(sk.rowId) <= set(got.rowId)
    seg = ours.skeleton_segments(got)
    assert float(seg["length"].max()) <= max_len * (1 + 1e-5)


def test_attach_synapses_to_skeleton_equals_neuprint():
    sk = _tree(9)
    rng = np.random.default_rng(9)
    syn = pd.DataFrame({"bodyId": 1, "type": rng.choice(["pre", "post"], 25),
                        "x": rng.normal(0, 20, 25), "y": rng.normal(0, 20, 25), "z": rng.normal(0, 20, 25),
                        "confidence": 0.9})
    pd.testing.assert_frame_equal(ours.attach_synapses_to_skeleton(sk, syn),
                                  nps.attach_synapses_to_skeleton(sk, syn))
