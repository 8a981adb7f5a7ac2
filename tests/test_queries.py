"""neuPrint / crantpy query functions against pure-pandas references on the small store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import connectome_dask.queries as Q
from connectome_dask import criteria as C
from connectome_dask.criteria import (
    CriteriaError,
    NeuronCriteria,
    SynapseCriteria,
    UnknownColumnError,
    UnknownRoiError,
)

# the conftest ROI layout, written out by hand
ROI_NAMES = ["AL_R", "AL_L", "LH_R", "MB_CA", "MB_ML", "FB", "EB", "OL_R", "ME_R"]
ROI_PRIMARY = ["AL_R", "AL_L", "LH_R", "MB_CA", "MB_ML", "FB", "EB", "ME_R"]
PARENTS = {"MB_CA": "MB", "MB_ML": "MB", "FB": "CX", "EB": "CX", "ME_R": "OL_R"}


def levels(code: int) -> list[str]:
    if code < 0:
        return []
    out = [ROI_NAMES[code]]
    while out[-1] in PARENTS:
        out.append(PARENTS[out[-1]])
    return sorted(out)


def primary(code: int):
    return ROI_NAMES[code] if code >= 0 and ROI_NAMES[code] in ROI_PRIMARY else None


@pytest.fixture(params=["index", "scan"])
def path(request, monkeypatch):
    """Force the few-body index reads or the streaming scans."""
    if request.param == "scan":
        # the limits of the one read-path rule (queries, criteria and counts all use it)
        from connectome_dask.compute import plan as P

        monkeypatch.setattr(P, "INDEX_ROWS_LIMIT", -1)
        monkeypatch.setattr(P, "INDEX_PATH_FRACTION", -1.0)
    return request.param


def body_mask(s, ids) -> np.ndarray:
    return s.neurons["bodyId"].isin(ids).to_numpy()


def touches(s, rois) -> np.ndarray:
    """Neurons with any site (pre or post) in any of ``rois`` (any level)."""
    syn = s.synapses
    ok = np.zeros(len(s.neurons), dtype=bool)
    for idx, code in (("pre", "roi_pre"), ("post", "roi_post")):
        hit = syn[code].map(lambda c: bool(set(levels(int(c))) & set(rois))).to_numpy()
        ok[syn[idx].to_numpy()[hit]] = True
    return ok


# ----------------------------------------------------------------------------- fetch_neurons


def ref_roi_counts_df(s, idx) -> pd.DataFrame:
    syn = s.synapses
    body = s.neurons["bodyId"].to_numpy()
    recs = []
    for i in idx:
        as_pre = syn[syn["pre"] == i]
        as_post = syn[syn["post"] == i]
        counts: dict[str, list[int]] = {}

        def add(name, k, v, counts=counts):
            counts.setdefault(name, [0, 0, 0, 0])[k] += v

        for k, (frame, col) in enumerate(
            [(as_pre, "roi_pre"), (as_post, "roi_post"), (as_pre, "roi_post"), (as_post, "roi_post")]
        ):
            for code, n in frame[col].value_counts().items():
                for r in levels(int(code)):
                    add(r, k, int(n))
                if primary(int(code)) is None:
                    add("NotPrimary", k, int(n))
        for r, v in counts.items():
            if any(v):
                recs.append((body[i], r, *v))
    df = pd.DataFrame(recs, columns=["bodyId", "roi", "pre", "post", "downstream", "upstream"])
    return df.sort_values(["bodyId", "roi"], ignore_index=True)


def test_fetch_neurons(small_store, path):
    s = small_store
    crit = NeuronCriteria(type="KC.*", status="Traced")
    ndf, rdf = Q.fetch_neurons(crit, client=s.conn)
    n = s.neurons
    sel = n[n["type"].str.fullmatch("KC.*").fillna(False) & (n["status"] == "Traced").fillna(False)]
    assert ndf["bodyId"].tolist() == sorted(sel["bodyId"].tolist())
    assert list(ndf.columns[:9]) == ["bodyId", "instance", "type", "pre", "post", "downstream", "upstream", "status", "cropped"]
    syn = s.synapses
    for _, row in ndf.iterrows():
        i = int(n.index[n["bodyId"] == row["bodyId"]][0])
        assert row["pre"] == (syn["pre"] == i).sum()
        assert row["post"] == (syn["post"] == i).sum()
        ins = sorted({r for c in syn.loc[syn["post"] == i, "roi_post"] for r in levels(int(c))})
        outs = sorted({r for c in syn.loc[syn["pre"] == i, "roi_pre"] for r in levels(int(c))})
        assert row["inputRois"] == ins and row["outputRois"] == outs
    idx = [int(n.index[n["bodyId"] == b][0]) for b in ndf["bodyId"]]
    ref = ref_roi_counts_df(s, idx)
    pd.testing.assert_frame_equal(rdf.astype({"roi": object}), ref, check_dtype=False)
    assert (rdf["roi"] == "NotPrimary").any() and (rdf["roi"] == "MB").any()


def test_fetch_neurons_all_and_empty(small_store):
    s = small_store
    ndf, rdf = Q.fetch_neurons(None, client=s.conn)
    assert len(ndf) == len(s.neurons)
    # the 10 neurons without synapses have no roi rows at all (zero rows dropped)
    silent = s.neurons["bodyId"].iloc[-10:]
    assert not rdf["bodyId"].isin(silent).any()
    e_n, e_r = Q.fetch_neurons(NeuronCriteria(type="nothing-like-this"), client=s.conn)
    assert len(e_n) == 0 and "bodyId" in e_n.columns and "inputRois" in e_n.columns
    assert len(e_r) == 0 and list(e_r.columns) == ["bodyId", "roi", "pre", "post", "downstream", "upstream"]


# ----------------------------------------------------------------------------- fetch_adjacencies


def ref_adjacencies(s, src, tgt, rois=None, min_roi=1, min_total=1, include_nonprimary=False):
    syn = s.synapses
    if rois:
        src = src & touches(s, rois)
        tgt = tgt & touches(s, rois)
    sel = syn[src[syn["pre"].to_numpy()] & tgt[syn["post"].to_numpy()]]
    totals = sel.groupby(["bodyId_pre", "bodyId_post"]).size().rename("total").reset_index()
    rows = sel.assign(roi=[primary(int(c)) or "NotPrimary" for c in sel["roi_post"]])
    parts = [rows]
    if include_nonprimary:
        nonp = sel.assign(roi=[[r for r in levels(int(c)) if r not in ROI_PRIMARY] for c in sel["roi_post"]])
        parts.append(nonp.explode("roi").dropna(subset=["roi"]))
    allr = pd.concat(parts)
    df = allr.groupby(["bodyId_pre", "bodyId_post", "roi"]).size().rename("weight").reset_index()
    if rois:
        df = df[df["roi"].isin(rois)]
    df = df[df["weight"] >= min_roi]
    df = df.merge(totals, on=["bodyId_pre", "bodyId_post"])
    df = df[df["total"] >= max(min_total, min_roi)].drop(columns="total")
    return df.sort_values(["bodyId_pre", "bodyId_post", "weight", "roi"], ascending=[True, True, False, True], ignore_index=True)


ADJ_CASES = [
    dict(sources="KC.*", targets=None),
    dict(sources=None, targets=NeuronCriteria(type=["MBON01", "APL"])),
    dict(sources="PN.*", targets="LHN", min_roi_weight=2),
    dict(sources="KC.*", targets=None, min_total_weight=20),
    dict(sources=None, targets="EPG", rois=["FB", "MB_CA"], min_total_weight=10),
    dict(sources="Mi1", targets=None, include_nonprimary=True),
    dict(sources="Tm3", targets=None, rois=["CX", "ME_R"], include_nonprimary=True, min_roi_weight=2),
]


def _mask(s, spec):
    if spec is None:
        return np.ones(len(s.neurons), dtype=bool)
    return C.copy_as_neuroncriteria(spec).mask(s.conn)


@pytest.mark.parametrize("case", range(len(ADJ_CASES)))
def test_fetch_adjacencies(small_store, path, case):
    s = small_store
    kw = dict(ADJ_CASES[case])
    src, tgt = kw.pop("sources"), kw.pop("targets")
    ndf, cdf = Q.fetch_adjacencies(src, tgt, client=s.conn, progress=False, **kw)
    ref = ref_adjacencies(
        s, _mask(s, src), _mask(s, tgt), kw.get("rois"), kw.get("min_roi_weight", 1),
        kw.get("min_total_weight", 1), kw.get("include_nonprimary", False),
    )
    assert len(ref) > 0
    pd.testing.assert_frame_equal(cdf.astype({"roi": object}), ref, check_dtype=False)
    ids = sorted(set(ref["bodyId_pre"]) | set(ref["bodyId_post"]))
    assert ndf["bodyId"].tolist() == ids
    assert list(ndf.columns) == ["bodyId", "type", "instance"]


def test_fetch_adjacencies_thresholds_use_pair_total(small_store):
    """min_total_weight uses the pair's total over all ROIs, even with an ROI filter."""
    s = small_store
    _, all_df = Q.fetch_adjacencies("KC.*", None, client=s.conn)
    totals = all_df.groupby(["bodyId_pre", "bodyId_post"])["weight"].sum()
    _, fb = Q.fetch_adjacencies("KC.*", None, rois=["FB"], min_total_weight=15, client=s.conn)
    fb_tot = fb.groupby(["bodyId_pre", "bodyId_post"])["weight"].sum()
    assert (totals.loc[fb_tot.index] >= 15).all()
    assert (fb_tot < 15).any()  # neuPrint's code would have dropped these


def test_fetch_adjacencies_export_and_empty(small_store, tmp_path):
    s = small_store
    ndf, cdf = Q.fetch_adjacencies("PN.a", None, rois=["LH_R"], export_dir=tmp_path / "exp", client=s.conn)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "exp" / "roi-connections.csv"), cdf, check_dtype=False)
    assert pd.read_csv(tmp_path / "exp" / "neurons.csv")["bodyId"].tolist() == ndf["bodyId"].tolist()
    tot = pd.read_csv(tmp_path / "exp" / "total-connections.csv")
    syn = s.synapses
    ref = syn.groupby(["bodyId_pre", "bodyId_post"]).size()
    assert list(tot.columns) == ["bodyId_pre", "bodyId_post", "weight"]
    assert tot["weight"].tolist() == [ref[(a, b)] for a, b in zip(tot["bodyId_pre"], tot["bodyId_post"], strict=True)]
    n0, c0 = Q.fetch_adjacencies(NeuronCriteria(type="none-such"), None, client=s.conn)
    assert len(c0) == 0 and list(c0.columns) == ["bodyId_pre", "bodyId_post", "roi", "weight"]
    assert c0["weight"].dtype == np.int64 and len(n0) == 0
    with pytest.raises(UnknownRoiError, match="valid ROIs"):
        Q.fetch_adjacencies("KC.*", None, rois=["XX"], client=s.conn)
    with pytest.raises(CriteriaError, match="include_nonprimary"):
        Q.fetch_adjacencies("KC.*", None, rois=["MB"], client=s.conn)
    with pytest.raises(UnknownColumnError, match="colour"):
        Q.fetch_adjacencies("KC.*", None, properties=["colour"], client=s.conn)


def test_fetch_traced_adjacencies(small_store):
    s = small_store
    n = s.neurons
    ok = ((n["status"] == "Traced").fillna(False) & ~n["cropped"].fillna(False)).to_numpy(dtype=bool)
    _, cdf = Q.fetch_traced_adjacencies(client=s.conn)
    ref = ref_adjacencies(s, ok, ok)
    pd.testing.assert_frame_equal(cdf.astype({"roi": object}), ref, check_dtype=False)


# ----------------------------------------------------------------------------- synapses


def ref_fetch_synapses(s, ids, sc_type=None, rois=None, thr=None, primary_only=True):
    syn = s.synapses
    center = "x" in syn.columns
    recs = []
    for site in ("post", "pre"):
        if sc_type and sc_type != site:
            continue
        sel = syn[syn[f"bodyId_{site}"].isin(ids)]
        xyz = ["x", "y", "z"] if center else [f"x_{site}", f"y_{site}", f"z_{site}"]
        for _, r in sel.iterrows():
            code = int(r[f"roi_{site}"])
            if rois and not set(levels(code)) & set(rois):
                continue
            if thr and not r["confidence"] > thr:
                continue
            names = [primary(code)] if primary_only else (levels(code) or [None])
            for nm in names:
                recs.append((int(r[f"bodyId_{site}"]), site, nm, r[xyz[0]], r[xyz[1]], r[xyz[2]], r["confidence"]))
    df = pd.DataFrame(recs, columns=["bodyId", "type", "roi", "x", "y", "z", "confidence"])
    return df.sort_values(["bodyId", "type", "x", "y", "z", "roi"], ignore_index=True, na_position="first")


def _none(df):
    for c in df.columns:
        if c.startswith("roi") or c == "type":
            df[c] = pd.Series([v if isinstance(v, str | list) else None for v in df[c]], dtype=object, index=df.index)
    return df


def _cmp_sorted(got, ref, keys):
    got = _none(got.sort_values(keys, ignore_index=True, na_position="first"))
    ref = _none(ref.copy())
    pd.testing.assert_frame_equal(got, ref, check_dtype=False)


@pytest.mark.parametrize(
    "sc",
    [None, SynapseCriteria(type="pre", confidence=0.5), SynapseCriteria(rois=["MB_CA", "EB"]),
     SynapseCriteria(rois=["CX", "OL_R"], primary_only=False)],
)
def test_fetch_synapses(small_store, path, sc):
    s = small_store
    ids = s.neurons["bodyId"].iloc[[4, 9]].tolist()
    got = Q.fetch_synapses(ids, sc, client=s.conn)
    kw = {} if sc is None else dict(sc_type=sc.type, rois=sc.rois, thr=sc.confidence, primary_only=sc.primary_only)
    ref = ref_fetch_synapses(s, ids, **kw)
    assert len(ref) > 0
    assert got["bodyId"].is_monotonic_increasing
    _cmp_sorted(got, ref, ["bodyId", "type", "x", "y", "z", "roi"])


def test_fetch_synapses_center_store_default_confidence(small_center_store):
    s = small_center_store
    ids = s.neurons["bodyId"].iloc[[0, 1, 2]].tolist()
    got = Q.fetch_synapses(NeuronCriteria(bodyId=ids), client=s.conn)
    ref = ref_fetch_synapses(s, ids, thr=0.25)  # store default_confidence
    assert len(ref) > 0 and (got["confidence"] > 0.25).all()
    _cmp_sorted(got, ref, ["bodyId", "type", "x", "y", "z", "roi"])
    e = Q.fetch_synapses(NeuronCriteria(type="none-such"), client=s.conn)
    assert len(e) == 0 and list(e.columns) == ["bodyId", "type", "roi", "x", "y", "z", "confidence"]


def ref_synconn(s, src, tgt, rois=None, thr=None, min_total=1):
    syn = s.synapses
    sel = syn[src[syn["pre"].to_numpy()] & tgt[syn["post"].to_numpy()]]
    tot = sel.groupby(["pre", "post"])["pre"].transform("size")
    sel = sel[tot >= min_total]
    if thr:
        sel = sel[sel["confidence"] > thr]
    if rois:
        sel = sel[[bool(set(levels(int(c))) & set(rois)) for c in sel["roi_post"]]]
    df = pd.DataFrame({
        "bodyId_pre": sel["bodyId_pre"], "bodyId_post": sel["bodyId_post"],
        "roi_pre": [primary(int(c)) for c in sel["roi_pre"]], "roi_post": [primary(int(c)) for c in sel["roi_post"]],
        **{c: sel[c] for c in ["x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"]},
        "confidence_pre": sel["confidence"], "confidence_post": sel["confidence"],
    })
    return df.sort_values(["bodyId_pre", "bodyId_post", "x_pre", "y_pre", "z_pre"], ignore_index=True)


@pytest.mark.parametrize(
    "kw",
    [dict(src="KC(ab)", tgt=None), dict(src=None, tgt="APL", sc=SynapseCriteria(confidence=0.6)),
     dict(src="PN.*", tgt="LHN", min_total_weight=5), dict(src="EPG", tgt=None, sc=SynapseCriteria(rois=["FB"]))],
)
def test_fetch_synapse_connections(small_store, path, kw):
    s = small_store
    sc = kw.get("sc")
    got = Q.fetch_synapse_connections(kw["src"], kw["tgt"], sc, kw.get("min_total_weight", 1), client=s.conn)
    src, tgt = _mask(s, kw["src"]), _mask(s, kw["tgt"])
    rois = sc.rois if sc else None
    if rois:
        src, tgt = src & touches(s, rois), tgt & touches(s, rois)
    ref = ref_synconn(s, src, tgt, rois, sc.confidence if sc else None, kw.get("min_total_weight", 1))
    assert len(ref) > 0
    assert list(got.columns) == list(ref.columns)
    _cmp_sorted(got, ref, ["bodyId_pre", "bodyId_post", "x_pre", "y_pre", "z_pre"])


def test_fetch_synapse_connections_errors(small_store):
    with pytest.raises(CriteriaError, match="source_criteria or target_criteria"):
        Q.fetch_synapse_connections(None, None, client=small_store.conn)
    e = Q.fetch_synapse_connections(NeuronCriteria(type="none-such"), None, client=small_store.conn)
    assert len(e) == 0 and e["bodyId_pre"].dtype == np.int64


# ----------------------------------------------------------------------------- utils


def test_merge_and_matrix():
    n = pd.DataFrame({"bodyId": [1, 2, 3], "type": ["A", "B", "A"]})
    c = pd.DataFrame({"bodyId_pre": [1, 1, 2, 3], "bodyId_post": [2, 3, 3, 1], "weight": [5, 1, 2, 4]})
    m = Q.merge_neuron_properties(n, c, ["type"])
    assert m["type_pre"].tolist() == ["A", "A", "B", "A"] and m["type_post"].tolist() == ["B", "A", "A", "A"]
    mat = Q.connection_table_to_matrix(c)
    ref = c.pivot_table(index="bodyId_pre", columns="bodyId_post", values="weight", aggfunc="sum", fill_value=0)
    pd.testing.assert_frame_equal(mat, ref, check_dtype=False)
    sq = Q.connection_table_to_matrix(c, make_square=True)
    assert sq.index.tolist() == sq.columns.tolist() == [1, 2, 3]
    assert sq.loc[2, 1] == 0 and sq.loc[3, 1] == 4
    t = Q.connection_table_to_matrix(m, "type")
    assert t.loc["A", "A"] == 1 + 4 and t.loc["A", "B"] == 5 and t.loc["B", "A"] == 2
    with pytest.raises(UnknownColumnError):
        Q.connection_table_to_matrix(c, "type")
    with pytest.raises(UnknownColumnError):
        Q.merge_neuron_properties(n, c, ["colour"])


# ----------------------------------------------------------------------------- crantpy


def test_get_synapses(small_store, path):
    s = small_store
    pre = s.neurons["bodyId"].iloc[[0, 7, 12]].tolist()
    got = Q.get_synapses(pre_ids=pre, threshold=3, client=s.conn)
    syn = s.synapses
    sel = syn[syn["bodyId_pre"].isin(pre)]
    w = sel.groupby(["bodyId_pre", "bodyId_post"])["pre"].transform("size")
    sel = sel[(w >= 3) & (sel["bodyId_pre"] != sel["bodyId_post"])]
    assert len(got) == len(sel) > 0
    assert got["pre_pt_root_id"].tolist() == sorted(got["pre_pt_root_id"].tolist())
    a = got[["pre_pt_root_id", "post_pt_root_id", "pre_pt_position_x", "post_pt_position_z", "confidence"]].to_numpy()
    b = sel[["bodyId_pre", "bodyId_post", "x_pre", "z_post", "confidence"]].to_numpy()
    assert np.array_equal(np.sort(a, axis=0), np.sort(b, axis=0))
    # clean=False keeps autapses
    auto = syn[(syn["pre"] == syn["post"])]["bodyId_pre"].iloc[0]
    assert (Q.get_synapses(pre_ids=[auto], post_ids=[auto], clean=False, client=s.conn)["pre_pt_root_id"] == auto).all()
    assert len(Q.get_synapses(pre_ids=[auto], post_ids=[auto], client=s.conn)) == 0
    with pytest.raises(CriteriaError, match="pre_ids or post_ids"):
        Q.get_synapses(client=s.conn)
    with pytest.raises(UnknownColumnError, match="size"):
        Q.get_synapses(pre, min_size=3, client=s.conn)


def ref_connectivity(s, ids, up=True, down=True, threshold=1):
    syn = s.synapses
    m = np.zeros(len(syn), dtype=bool)
    if down:
        m |= syn["bodyId_pre"].isin(ids).to_numpy()
    if up:
        m |= syn["bodyId_post"].isin(ids).to_numpy()
    sel = syn[m]
    e = sel.groupby(["bodyId_pre", "bodyId_post"]).size().rename("weight").reset_index()
    e.columns = ["pre", "post", "weight"]
    e = e[(e["pre"] != e["post"]) & (e["weight"] >= threshold)]
    return e.sort_values(["weight", "pre", "post"], ascending=[False, True, True], ignore_index=True)


@pytest.mark.parametrize("up,down,thr", [(True, True, 1), (False, True, 3), (True, False, 2)])
def test_get_connectivity(small_store, path, up, down, thr):
    s = small_store
    ids = s.neurons["bodyId"].iloc[[1, 2, 30]].tolist()
    got = Q.get_connectivity(ids, upstream=up, downstream=down, threshold=thr, client=s.conn)
    pd.testing.assert_frame_equal(got, ref_connectivity(s, ids, up, down, thr), check_dtype=False)


def test_get_connectivity_errors(small_store):
    with pytest.raises(CriteriaError, match="cannot be False"):
        Q.get_connectivity([1], upstream=False, downstream=False, client=small_store.conn)


def test_get_adjacency(small_store, path):
    s = small_store
    pre = s.neurons["bodyId"].iloc[[3, 4, 5]].tolist()
    syn = s.synapses
    partners = syn[syn["bodyId_pre"].isin(pre)]["bodyId_post"].value_counts()
    post = partners.index[:12].tolist() + [pre[0]] + s.neurons["bodyId"].iloc[-3:].tolist()
    got = Q.get_adjacency(pre, post, threshold=2, client=s.conn)
    sel = syn[syn["bodyId_pre"].isin(pre) & syn["bodyId_post"].isin(post)]
    w = sel.groupby(["bodyId_pre", "bodyId_post"]).size()
    w = w[(w >= 2) & (w.index.get_level_values(0) != w.index.get_level_values(1))]
    ref = w.unstack(fill_value=0).sort_index().sort_index(axis=1)
    pd.testing.assert_frame_equal(got, ref, check_dtype=False, check_names=False)
    sym = Q.get_adjacency(pre, post, threshold=2, symmetric=True, client=s.conn)
    labels = sorted(set(ref.index) | set(ref.columns))
    assert sym.index.tolist() == sym.columns.tolist() == labels
    assert ref.shape[0] > 1 and ref.shape[1] > 5 and (ref.to_numpy() == 0).any()
    assert sym.loc[ref.index, ref.columns].to_numpy().tolist() == ref.to_numpy().tolist()
    with pytest.raises(CriteriaError, match="pre_ids or post_ids"):
        Q.get_adjacency(None, None, client=s.conn)
    empty = Q.get_adjacency(NeuronCriteria(type="none-such"), post[:2], client=s.conn)
    assert empty.shape == (0, 2)


def test_get_synapse_counts(small_store, path):
    s = small_store
    ids = s.neurons["bodyId"].iloc[[9, 2, 5]].tolist() + [s.neurons["bodyId"].iloc[-1]]
    got = Q.get_synapse_counts(ids, threshold=2, client=s.conn)
    e = ref_connectivity(s, ids, threshold=2)
    ref = pd.DataFrame(
        {"pre": [int((e["pre"] == i).sum()) for i in ids], "post": [int((e["post"] == i).sum()) for i in ids]},
        index=pd.Index(ids, name="neuron_id"),
    )
    pd.testing.assert_frame_equal(got, ref, check_dtype=False)
    assert got.iloc[-1].tolist() == [0, 0]  # neuron without synapses


def test_default_client(small_store):
    import connectome_dask as cd

    cd.set_default_connectome(small_store.conn)
    try:
        ndf, _ = Q.fetch_neurons(small_store.neurons["bodyId"].iloc[0])
        assert len(ndf) == 1
    finally:
        cd.set_default_connectome(None)
    with pytest.raises(TypeError, match="Connectome"):
        Q.fetch_neurons(1, client="http://neuprint")
