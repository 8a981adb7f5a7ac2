"""connectome_dask.neuprint's query functions on the small test store, against pandas statements of
neuPrint's rules computed from the raw tables the store was written from."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import connectome_dask.neuprint as neuprint
from connectome_dask.neuprint import client as npc
from connectome_dask.neuprint.queries import CORE_NEURON_COLS

NC, SC = neuprint.NeuronCriteria, neuprint.SynapseCriteria


@pytest.fixture
def c(small_store):
    npc._clients.clear()
    npc.clear_default_client()
    client = neuprint.Client(small_store.conn, "test")
    yield client
    npc._clients.clear()
    npc.clear_default_client()


def _raw_neurons(s) -> pd.DataFrame:
    """Neuron table + pre/post counts and neuPrint's label, from the raw tables."""
    n = s.neurons.copy()
    n["pre"] = s.synapses.groupby("bodyId_pre").size().reindex(n.bodyId, fill_value=0).to_numpy()
    n["post"] = s.synapses.groupby("bodyId_post").size().reindex(n.bodyId, fill_value=0).to_numpy()
    named = n["type"].notna() | n["instance"].notna() | n["status"].notna()
    n["label"] = np.where((n["pre"] >= 2) | (n["post"] >= 10) | named, "Neuron", "Segment")
    return n


def test_fetch_neurons_default_selects_neurons_label(small_store, c):
    raw = _raw_neurons(small_store)
    n, r = neuprint.fetch_neurons()
    want = sorted(raw.loc[raw.label == "Neuron", "bodyId"])
    assert n["bodyId"].tolist() == want
    seg, _ = neuprint.fetch_neurons(NC(label="Segment"))
    assert seg["bodyId"].tolist() == sorted(raw.bodyId)
    core = [col for col in CORE_NEURON_COLS if col in n.columns and col not in ("inputRois", "outputRois")]
    assert n.columns.tolist()[: len(core)] == core  # neuprint's core order, roiInfo last of them
    assert n.columns[-2:].tolist() == ["inputRois", "outputRois"]
    assert n.columns[len(core):-2].tolist() == sorted(n.columns[len(core):-2])
    assert n.columns.tolist()[:5] == ["bodyId", "instance", "type", "pre", "post"]
    assert (n["pre"].to_numpy() == raw.set_index("bodyId").loc[n.bodyId, "pre"].to_numpy()).all()


def test_fetch_neurons_roi_counts_and_roiinfo(small_store, c):
    s = small_store
    body = int(s.neurons.bodyId.iloc[5])
    n, r = neuprint.fetch_neurons(NC(bodyId=body))
    assert r.columns.tolist() == ["bodyId", "roi", "pre", "post", "downstream", "upstream"]
    # neuPrint: downstream counts the connections whose T-bar is in the ROI (one row = one connection)
    assert (r["downstream"] == r["pre"]).all() and (r["upstream"] == r["post"]).all()
    syn = s.synapses
    names = s.rois["names"]
    pre_roi = syn.loc[syn.bodyId_pre == body, "roi_pre"].map(lambda k: names[k] if k >= 0 else None)
    post_roi = syn.loc[syn.bodyId_post == body, "roi_post"].map(lambda k: names[k] if k >= 0 else None)
    for roi in ("AL_R", "EB", "ME_R"):
        row = r[r.roi == roi]
        assert int(row["pre"].sum()) == int((pre_roi == roi).sum())
        assert int(row["post"].sum()) == int((post_roi == roi).sum())
    # super-level ROI sums its children; NotPrimary = total - primary
    cx = r.set_index("roi").reindex(["CX", "FB", "EB"]).fillna(0)
    assert cx.loc["CX", "post"] == cx.loc["FB", "post"] + cx.loc["EB", "post"]
    prim = set(s.rois["primary"])
    notp = int((~post_roi.isin(prim)).sum())
    got = r[r.roi == "NotPrimary"]["post"]
    assert (int(got.iloc[0]) if len(got) else 0) == notp
    info = n["roiInfo"].iloc[0]
    assert isinstance(info, dict) and info["EB"]["post"] == int((post_roi == "EB").sum()) if "EB" in info else True
    assert n["inputRois"].iloc[0] == sorted(k for k, v in info.items() if v["post"])


def test_fetch_neurons_options(small_store, c):
    only = neuprint.fetch_neurons("EPG", omit_rois=True)
    assert isinstance(only, pd.DataFrame) and "roiInfo" not in only.columns
    n, _ = neuprint.fetch_neurons("EPG", returned_columns=["type", "bodyId", "nonexistent"])
    assert n.columns.tolist() == ["type", "bodyId", "roiInfo", "inputRois", "outputRois"]
    core, _ = neuprint.fetch_neurons("EPG", returned_columns="core")
    assert set(core.columns) <= set(CORE_NEURON_COLS)
    with pytest.raises(ValueError):
        neuprint.fetch_neurons("EPG", returned_columns=5)
    with pytest.raises(ValueError, match="No requested"):
        neuprint.fetch_neurons("EPG", returned_columns=["nope"])
    # strings as neuprint returns them (object), booleans as bool
    assert n["type"].dtype == object


def test_fetch_neurons_regex_guess_and_type_or_instance(small_store, c):
    raw = _raw_neurons(small_store)
    neurons = raw[raw.label == "Neuron"]
    n, _ = neuprint.fetch_neurons("PN.a")  # a regex: '.' matches any character
    want = neurons[neurons.type.astype("string").str.fullmatch("PN.a").fillna(False)
                   | neurons.instance.astype("string").str.fullmatch("PN.a").fillna(False)]
    assert sorted(n.bodyId) == sorted(want.bodyId)
    n2, _ = neuprint.fetch_neurons(NC(type="KC(ab)"))  # parentheses alone: exact
    assert set(n2.type) <= {"KC(ab)"} and len(n2) == int((neurons.type == "KC(ab)").sum())


def _pairs(s) -> pd.DataFrame:
    return s.synapses.groupby(["bodyId_pre", "bodyId_post"]).size().rename("weight").reset_index()


def test_fetch_adjacencies_totals_and_omit_rois(small_store, c):
    s = small_store
    src = s.neurons.bodyId.iloc[:20].tolist()
    n, conn = neuprint.fetch_adjacencies(src, None)
    assert conn.columns.tolist() == ["bodyId_pre", "bodyId_post", "roi", "weight"]
    raw = _raw_neurons(s)
    neurons = set(raw.loc[raw.label == "Neuron", "bodyId"])
    ref = _pairs(s)
    ref = ref[ref.bodyId_pre.isin(src) & ref.bodyId_post.isin(neurons)]
    got = conn.groupby(["bodyId_pre", "bodyId_post"])["weight"].sum().reset_index()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref.reset_index(drop=True), check_dtype=False)
    _, tot = neuprint.fetch_adjacencies(src, None, omit_rois=True, batch_size=3, threads=1)
    assert tot.columns.tolist() == ["bodyId_pre", "bodyId_post", "weight"]
    pd.testing.assert_frame_equal(tot.reset_index(drop=True), ref.reset_index(drop=True), check_dtype=False)
    assert set(n.columns) == {"bodyId", "type", "instance"}


def test_fetch_adjacencies_export_dir(small_store, c, tmp_path):
    n, conn = neuprint.fetch_adjacencies(small_store.neurons.bodyId.iloc[:5].tolist(), None,
                                         export_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["neurons.csv", "roi-connections.csv",
                                                          "total-connections.csv"]
    tot = pd.read_csv(tmp_path / "total-connections.csv")
    assert int(tot.weight.sum()) == int(conn.weight.sum())


def test_fetch_simple_connections(small_store, c):
    s = small_store
    src = s.neurons.bodyId.iloc[:15].tolist()
    df = neuprint.fetch_simple_connections(src, None, min_weight=2)
    assert df.columns.tolist() == ["bodyId_pre", "bodyId_post", "weight", "type_pre", "type_post",
                                   "instance_pre", "instance_post", "conn_roiInfo"]
    raw = _raw_neurons(s)
    ref = _pairs(s)
    ref = ref[ref.bodyId_pre.isin(src) & ref.bodyId_post.isin(raw.loc[raw.label == "Neuron", "bodyId"])
              & (ref.weight >= 2)]
    ref = ref.sort_values(["weight", "bodyId_pre", "bodyId_post"], ascending=[False, True, True],
                          ignore_index=True)
    pd.testing.assert_frame_equal(df[["bodyId_pre", "bodyId_post", "weight"]], ref, check_dtype=False)
    with pytest.raises(ValueError):
        neuprint.fetch_simple_connections(None, None)
    eb = neuprint.fetch_simple_connections(src, None, rois=["EB"])
    assert all("EB" in d for d in eb.conn_roiInfo)


def test_fetch_common_connectivity(small_store, c):
    s = small_store
    q = s.neurons.bodyId.iloc[:3].tolist()
    df = neuprint.fetch_common_connectivity(q, "upstream")
    ref = _pairs(s)
    raw = _raw_neurons(s)
    ref = ref[ref.bodyId_post.isin(q) & ref.bodyId_pre.isin(raw.loc[raw.label == "Neuron", "bodyId"])]
    common = {b for b, g in ref.groupby("bodyId_pre") if set(g.bodyId_post) == set(q)}
    assert set(df.bodyId_pre) == common


def test_fetch_output_completeness(small_store, c):
    s = small_store
    q = s.neurons.bodyId.iloc[:10].tolist()
    df = neuprint.fetch_output_completeness(q, ["Traced"])
    raw = _raw_neurons(s)
    traced = set(raw.loc[(raw.status == "Traced") & (raw.label == "Neuron"), "bodyId"])
    ref = _pairs(s)
    ref = ref[ref.bodyId_pre.isin(q) & ref.bodyId_post.isin(raw.loc[raw.label == "Neuron", "bodyId"])]
    tot = ref.groupby("bodyId_pre")["weight"].sum()
    tr = ref[ref.bodyId_post.isin(traced)].groupby("bodyId_pre")["weight"].sum().reindex(tot.index, fill_value=0)
    got = df.set_index("bodyId")
    assert (got["total_weight"] == tot.loc[got.index]).all()
    assert (got["traced_weight"] == tr.loc[got.index]).all()
    assert np.allclose(got["completeness"], tr.loc[got.index] / tot.loc[got.index])
    orphans = neuprint.fetch_downstream_orphan_tasks(q, ["Traced"])
    assert not orphans["bodyId_post"].isin(traced).any()
    assert (orphans["cum_completeness"] <= 1 + 1e-12).all()


def test_fetch_synapses_and_mean_synapses(small_store, c):
    s = small_store
    body = int(s.neurons.bodyId.iloc[2])
    syn = neuprint.fetch_synapses(body, SC(type="pre", primary_only=True), batch_size=1)
    raw = s.synapses[s.synapses.bodyId_pre == body]
    assert len(syn) == len(raw) and syn.columns.tolist() == ["bodyId", "type", "roi", "x", "y", "z", "confidence"]
    m = neuprint.fetch_mean_synapses(body, SC(type="pre"), by_roi=False)
    assert m.columns.tolist() == ["bodyId", "type", "count", "x", "y", "z", "confidence"]
    assert int(m["count"].iloc[0]) == len(raw)
    assert np.isclose(float(m["x"].iloc[0]), raw["x_pre"].mean(), rtol=1e-5)
    mr = neuprint.fetch_mean_synapses(body, SC(type="pre"))
    assert int(mr["count"].sum()) == len(raw) and mr["type"].dtype == "category"
    with pytest.raises(NotImplementedError):
        neuprint.fetch_synapses(body, nt="sv")
    conns = neuprint.fetch_synapse_connections(body, None, min_total_weight=1, batch_size=5)
    assert len(conns) == len(raw)


def test_paths(small_store, c):
    s = small_store
    raw = _raw_neurons(s)
    ok = set(raw.loc[(raw.status == "Traced") & (raw.label == "Neuron"), "bodyId"])
    a, b = int(s.neurons.bodyId.iloc[0]), int(s.neurons.bodyId.iloc[7])
    ref = _pairs(s)
    ref = ref[(ref.weight >= 3) & ref.bodyId_pre.isin(ok | {a, b}) & ref.bodyId_post.isin(ok | {a, b})]
    g = nx.DiGraph(list(zip(ref.bodyId_pre, ref.bodyId_post, strict=True)))
    p = neuprint.fetch_shortest_paths(a, b, min_weight=3)
    assert p.columns.tolist() == ["path", "bodyId", "type", "weight"]
    if nx.has_path(g, a, b):
        n_paths = len(list(nx.all_shortest_paths(g, a, b)))
        assert p["path"].nunique() == n_paths
        assert len(p) == n_paths * (nx.shortest_path_length(g, a, b) + 1)
    else:
        assert len(p) == 0
    with pytest.raises(ValueError):
        neuprint.fetch_paths(a, b, path_length=2, max_path_length=3)


def test_roi_hierarchy_text_is_asciitree(small_store, c):
    asciitree = pytest.importorskip("asciitree")
    for sub in (True, False):
        d = neuprint.fetch_roi_hierarchy(sub, True, "dict")
        assert neuprint.fetch_roi_hierarchy(sub, True, "text") == asciitree.LeftAligned()(d)
    g = neuprint.fetch_roi_hierarchy(format="nx")
    assert set(g.nodes) >= {"CX", "EB*", "OL_R", "ME_R*"}
    assert neuprint.fetch_primary_rois() == sorted(small_store.rois["primary"])
    assert set(neuprint.fetch_all_rois()) >= set(small_store.rois["names"]) | {"CX", "MB"}
    meta = neuprint.fetch_meta()
    assert meta["roiHierarchy"]["name"] == meta["dataset"] and "EB" in meta["roiInfo"]


def test_fetch_skeleton_formats(small_store, c, tmp_path):
    nps = pytest.importorskip("neuprint.skeleton")
    s = small_store
    body, swc = next((b, t) for b, t in s.skeletons.items() if t.count("\n") > 50)
    df = c.fetch_skeleton(body, format="pandas")
    pd.testing.assert_frame_equal(df, nps.skeleton_swc_to_df(swc))
    assert neuprint.fetch_skeleton(body, format="swc") == swc
    healed = neuprint.fetch_skeleton(body, heal=True, export_path=tmp_path / "h.swc", with_distances=True)
    want = nps.heal_skeleton(nps.skeleton_swc_to_df(swc), True, -1)
    want["distance"] = nps.calc_segment_distances(want)
    pd.testing.assert_frame_equal(healed.reset_index(drop=True), want.reset_index(drop=True))
    assert np.isinf(healed.loc[healed.link == -1, "distance"]).all()
    assert (tmp_path / "h.swc").read_text() == nps.skeleton_df_to_swc(want.drop(columns="distance"))
    g = neuprint.fetch_skeleton(body, format="nx")
    assert g.number_of_nodes() == len(df)
    assert neuprint.fetch_skeleton(body, format="skeleton").equals(df)
    with pytest.raises(ValueError):
        neuprint.fetch_skeleton(body, format="swc", with_distances=True)
    with pytest.raises(ValueError):
        neuprint.fetch_skeleton("abc")


def test_weights_agree_with_default_synapse_confidence(tmp_path):
    """neuPrint: a connection's weight counts the synapses a default SynapseCriteria() returns."""
    from tests.conftest import build_small_store

    s = build_small_store(tmp_path / "conf", n_neurons=80, n_synapses=6000, default_confidence=0.5)
    npc._clients.clear()
    c = neuprint.Client(s.conn)
    try:
        src = s.neurons.bodyId.iloc[:10].tolist()
        _, w = neuprint.fetch_adjacencies(src, NC(label="Segment"), omit_rois=True)
        syn = neuprint.fetch_synapse_connections(src, NC(label="Segment"))
        per_pair = syn.groupby(["bodyId_pre", "bodyId_post"]).size().rename("weight").reset_index()
        pd.testing.assert_frame_equal(w.reset_index(drop=True), per_pair, check_dtype=False)
        # and the rule in pandas: rows with confidence > 0.5
        raw = s.synapses[s.synapses.bodyId_pre.isin(src) & (s.synapses.confidence > 0.5)]
        ref = raw.groupby(["bodyId_pre", "bodyId_post"]).size().rename("weight").reset_index()
        pd.testing.assert_frame_equal(w.reset_index(drop=True), ref, check_dtype=False)
    finally:
        del c
        npc._clients.clear()


def test_soma_location_is_a_list(tmp_path):
    import connectome_dask as cd

    neurons = pd.DataFrame({"bodyId": [10, 20, 30], "type": ["A", "B", None],
                            "somaLocation": ["3844,14565,15568", None, "[1, 2, 3]"]})
    syn = pd.DataFrame({"pre": np.array([0, 2, 0], np.int32), "post": np.array([1, 1, 2], np.int32)})
    conn = cd.write_store(tmp_path / "soma", neurons, syn, {"name": "soma"})
    n, _ = neuprint.fetch_neurons(NC(label="Segment"), client=conn)
    assert n["somaLocation"].tolist() == [[3844, 14565, 15568], None, [1, 2, 3]]
    with_soma, _ = neuprint.fetch_neurons(NC(somaLocation=neuprint.NotNull, label="Segment"), client=conn)
    assert with_soma.bodyId.tolist() == [10, 30]
    # the Neuron label: a type, or a soma (here body 30 has neither type nor >= 2 T-bars... but a soma)
    default, _ = neuprint.fetch_neurons(client=conn)
    assert default.bodyId.tolist() == [10, 20, 30]


def test_status_with_none_and_type_is_anded(small_store, c):
    """NC(status=['Traced', None], type='EPG'): (status Traced or missing) AND type EPG.

    neuprint-python's Cypher for this lacks parentheses (``n.status in [...] OR n.status IS NULL AND
    n.type = 'EPG'``) and so returns every Traced body; we do the documented intent."""
    raw = _raw_neurons(small_store)
    n, _ = neuprint.fetch_neurons(NC(status=["Traced", None], type="EPG"))
    ref = raw[(raw.label == "Neuron") & (raw.status.isna() | (raw.status == "Traced")) & (raw.type == "EPG")]
    assert sorted(n.bodyId) == sorted(ref.bodyId) and len(ref) > 0


def test_primary_only_false_keeps_sites_in_no_roi(small_store, c):
    """SC(primary_only=False): one row per containing ROI, and sites in no ROI once with roi None."""
    s = small_store
    body = int(s.neurons.bodyId.iloc[3])
    syn = neuprint.fetch_synapses(NC(bodyId=body), SC(type="post", primary_only=False))
    raw = s.synapses[s.synapses.bodyId_post == body]
    names = s.rois["names"]
    parents = {"MB_CA": ["MB"], "MB_ML": ["MB"], "FB": ["CX"], "EB": ["CX"], "ME_R": ["OL_R"]}
    rows = []
    for code in raw["roi_post"]:
        if code < 0:
            rows.append(None)
        else:
            n = names[code]
            rows += [n, *parents.get(n, [])]
    got = [None if pd.isna(r) else r for r in syn["roi"]]
    assert sorted(map(str, got)) == sorted(map(str, rows))
    assert int(syn["roi"].isna().sum()) == int((raw["roi_post"] < 0).sum())


def test_mito_counts_are_not_primary(tmp_path):
    """A store keeps a body's mitochondria count only: roi_counts_df puts all of it under NotPrimary
    (neuPrint's rule: total minus the primary ROIs' sums, which are 0 here)."""
    import connectome_dask as cd

    neurons = pd.DataFrame({"bodyId": [10, 20, 30], "type": ["A", "B", "C"], "mito": [5, 0, 7]})
    syn = pd.DataFrame({"pre": np.array([0, 0, 1], np.int32), "post": np.array([1, 2, 0], np.int32)})
    conn = cd.write_store(tmp_path / "mito", neurons, syn, {"name": "mito"})
    n, r = neuprint.fetch_neurons(client=conn)
    assert r.columns.tolist() == ["bodyId", "roi", "pre", "post", "downstream", "upstream", "mito"]
    per_body = r.groupby("bodyId")["mito"].sum()
    assert per_body.reindex([10, 20, 30], fill_value=0).tolist() == [5, 0, 7]
    assert (r.loc[r.roi != "NotPrimary", "mito"] == 0).all()
    core = [col for col in CORE_NEURON_COLS if col in n.columns and col not in ("inputRois", "outputRois")]
    assert n.columns.tolist()[: len(core)] == core and "mito" in core  # neuprint's core order
