"""Skeleton I/O, healing, synapse attachment and navis interop against independent references."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from connectome_dask import skeletons as S


def _edges(sk: pd.DataFrame) -> set[frozenset]:
    e = sk[sk["link"] != -1]
    return {frozenset((int(a), int(b))) for a, b in zip(e["rowId"], e["link"], strict=True)}


def _parse_ref(text: str) -> pd.DataFrame:
    rows = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return pd.DataFrame(
        {"rowId": [int(r[0]) for r in rows], "x": [float(r[2]) for r in rows], "y": [float(r[3]) for r in rows],
         "z": [float(r[4]) for r in rows], "radius": [float(r[5]) for r in rows], "link": [int(r[6]) for r in rows]}
    )


def test_read_write_roundtrip(small_store, tmp_path):
    bid, text = next(iter(small_store.skeletons.items()))
    sk = S.read_swc(text)
    ref = _parse_ref(text)
    assert list(sk.columns) == S.SKELETON_COLUMNS
    np.testing.assert_allclose(sk[["x", "y", "z", "radius"]].to_numpy(), ref[["x", "y", "z", "radius"]].to_numpy(), rtol=1e-6)
    assert sk["link"].tolist() == ref["link"].tolist()
    S.write_swc(sk, tmp_path / "a.swc")
    back = S.read_swc(tmp_path / "a.swc")
    pd.testing.assert_frame_equal(back, sk)


def test_fetch_skeleton_formats(small_store, tmp_path):
    s = small_store
    bid, text = next(iter(s.skeletons.items()))
    sk = S.fetch_skeleton(bid, client=s.conn)
    assert sk["rowId"].tolist() == _parse_ref(text)["rowId"].tolist()
    swc = S.fetch_skeleton(bid, format="swc", client=s.conn)
    pd.testing.assert_frame_equal(S.read_swc(swc), sk)
    g = S.fetch_skeleton(bid, format="nx", client=s.conn)
    assert g.number_of_nodes() == len(sk) and g.number_of_edges() == int((sk["link"] != -1).sum())
    (tmp_path / f"{bid}.swc").write_text(text)
    pd.testing.assert_frame_equal(S.fetch_skeleton(bid, folder=tmp_path), sk)
    d = S.fetch_skeleton(bid, client=s.conn, with_distances=True)
    i = int(np.flatnonzero(d["link"].to_numpy() != -1)[0])
    par = d.set_index("rowId").loc[d["link"].iloc[i], ["x", "y", "z"]].to_numpy(float)
    assert d["distance"].iloc[i] == pytest.approx(np.linalg.norm(d[["x", "y", "z"]].iloc[i].to_numpy(float) - par), rel=1e-5)


def test_fetch_skeleton_errors(small_store, tmp_path):
    with pytest.raises(S.SkeletonError, match="no skeleton for body 1"):
        S.fetch_skeleton(1, client=small_store.conn)
    with pytest.raises(S.SkeletonError, match="format"):
        S.fetch_skeleton(1, format="json", client=small_store.conn)
    with pytest.raises(S.SkeletonError, match="line 1"):
        S.read_swc("1 0 0 0\n2 0 0 0 0 0 1\n")
    with pytest.raises(S.SkeletonError, match="missing parent"):
        S.read_swc("1 0 0 0 0 1 -1\n2 0 0 0 0 1 7\n")


def test_heal_matches_reference_mst(small_store):
    # the 60-node, 3-fragment skeleton of the fixture
    bid = [b for b, t in small_store.skeletons.items() if t.count(" -1\n") == 3][0]
    sk = S.read_swc(small_store.skeletons[bid])
    assert (sk["link"] == -1).sum() == 3
    healed = S.fetch_skeleton(bid, heal=True, client=small_store.conn)
    assert (healed["link"] == -1).sum() == 1
    assert healed["rowId"].tolist() == sk["rowId"].tolist()
    g = nx.Graph(list(_edges(healed)))
    assert nx.is_tree(g) and g.number_of_nodes() == len(sk)
    assert _edges(sk) <= _edges(healed)
    # reference: MST over fragments, weight = closest node pair distance (brute force)
    frags = list(nx.connected_components(nx.Graph(list(_edges(sk)))))
    xyz = sk.set_index("rowId")[["x", "y", "z"]].astype(float)
    fg = nx.Graph()
    for a, b in itertools.combinations(range(len(frags)), 2):
        pa, pb = xyz.loc[sorted(frags[a])].to_numpy(), xyz.loc[sorted(frags[b])].to_numpy()
        fg.add_edge(a, b, weight=np.sqrt(((pa[:, None] - pb[None]) ** 2).sum(-1)).min())
    ref_len = sum(d["weight"] for *_, d in nx.minimum_spanning_edges(fg, data=True))
    added = _edges(healed) - _edges(sk)
    got_len = sum(np.linalg.norm(xyz.loc[a].to_numpy() - xyz.loc[b].to_numpy()) for a, b in map(tuple, added))
    assert len(added) == 2 and got_len == pytest.approx(ref_len, rel=1e-5)
    # links point to the root: every node reaches it
    parent = dict(zip(healed["rowId"], healed["link"], strict=True))
    root = int(healed.loc[healed["link"] == -1, "rowId"].iloc[0])
    for node in parent:
        steps = 0
        while parent[node] != -1:
            node = parent[node]
            steps += 1
            assert steps <= len(parent)
        assert node == root


def test_heal_max_distance():
    sk = S.read_swc("1 0 0 0 0 1 -1\n2 0 1 0 0 1 1\n3 0 100 0 0 1 -1\n")
    assert (S.heal_skeleton(sk, max_distance=10)["link"] == -1).sum() == 2
    assert S.heal_skeleton(sk)["link"].tolist() == [-1, 1, 2]


def test_attach_synapses_vs_bruteforce(small_store):
    from connectome_dask.queries import fetch_synapses

    s = small_store
    bid = next(iter(s.skeletons))
    sk = S.fetch_skeleton(bid, client=s.conn)
    syn = fetch_synapses(bid, client=s.conn)
    assert len(syn) > 0
    con = S.attach_synapses(sk, syn)
    assert list(con.columns[:7]) == ["connector_id", "node_id", "type", "x", "y", "z", "distance"]
    assert {"bodyId", "roi", "confidence"} <= set(con.columns)
    p = syn[["x", "y", "z"]].to_numpy(float)
    q = sk[["x", "y", "z"]].to_numpy(float)
    dist = np.sqrt(((p[:, None] - q[None]) ** 2).sum(-1))
    ref_node = sk["rowId"].to_numpy()[dist.argmin(1)]
    assert con["node_id"].tolist() == ref_node.tolist()
    np.testing.assert_allclose(con["distance"], dist.min(1), rtol=1e-6)
    assert con["type"].tolist() == syn["type"].tolist()
    cut = float(np.median(dist.min(1)))
    near = S.attach_synapses(sk, syn, max_distance=cut)
    assert near["connector_id"].tolist() == np.flatnonzero(dist.min(1) <= cut).tolist()
    with pytest.raises(S.SkeletonError, match="x, y, z"):
        S.attach_synapses(sk, syn.drop(columns="z"))


def test_navis_roundtrip(small_store):
    pytest.importorskip("navis")
    bid = next(iter(small_store.skeletons))
    sk = S.fetch_skeleton(bid, client=small_store.conn)
    con = S.attach_synapses(sk, pd.DataFrame({"type": ["pre"], "x": [0.0], "y": [0.0], "z": [0.0]}))
    n = S.to_navis(sk, bodyId=bid, connectors=con)
    assert n.n_nodes == len(sk) and n.id == bid and len(n.connectors) == 1
    back = S.from_navis(n)
    pd.testing.assert_frame_equal(back.sort_values("rowId", ignore_index=True), sk.sort_values("rowId", ignore_index=True))
