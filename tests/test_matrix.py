"""NestedMatrix family against a small pure-pandas reference of crantpy's semantics.

The reference below (``ref_*``) re-implements crantpy's documented rules with
plain pandas, independently of :mod:`connectome_dask.matrix`: scope filter ->
(synapse id de-duplication) -> per-pair aggregation -> relative
normalisation -> pivot -> natural type ordering with annotation-order
neurons, EB-column EPG/PEG order, untyped then unannotated neurons appended.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

import connectome_dask as cd
from connectome_dask import matrix as M
from connectome_dask.matrix import (
    All,
    DenseMatrixTooLarge,
    DirectedNestedMatrix,
    NestedMatrix,
    NeuropilCollection,
    natural_type_order,
    open_dataarray,
    open_matrix,
    save_dataarray,
)

PRE, POST = "pre_pt_root_id", "post_pt_root_id"
MODES = ["relative_outgoing", "relative_incoming", "count", "column"]
SCOPES = ["annotated_only", "all"]
EB = ["R1", "L8", "R2", "L7", "R3", "L6", "R4", "L5", "R5", "L4", "R6", "L3", "R7", "L2", "R8", "L1"]


# ----------------------------------------------------------------------------- reference


def ref_type_key(t: str):
    letters = re.match(r"[A-Za-z]*", t).group(0)
    if not letters:
        return (t.upper(), np.inf, t)
    digits = re.match(r"\d*", t[len(letters) :]).group(0)
    return (letters.upper(), int(digits) if digits else np.inf, t)


def ref_type_order(types, preferred=None):
    generic = sorted(set(types), key=ref_type_key)
    if not preferred:
        return generic
    out = []
    for p in preferred:
        for t in generic:
            if t not in out and (t == p or ref_type_key(t)[0] == p):
                out.append(t)
    return out + [t for t in generic if t not in out]


def ref_order(ids: set[str], ann: pd.DataFrame, type_order=None, id_col="root_id", type_col="cell_type"):
    """(ordered ids, boundaries) with crantpy's rules."""
    a = ann[ann[id_col].notna()].copy()
    a["_id"] = [str(int(v)) for v in a[id_col]]
    a = a[a["_id"].isin(ids)]
    seen = list(dict.fromkeys(a["_id"]))  # first appearance order
    typed_rows = a[a[type_col].notna()].drop_duplicates("_id")
    type_of = dict(zip(typed_rows["_id"], typed_rows[type_col].astype(str), strict=True))
    row_of = {i: a[a["_id"] == i].iloc[0] for i in seen}
    for i in seen:  # prefer the first typed row
        if i in type_of:
            row_of[i] = typed_rows[typed_rows["_id"] == i].iloc[0]
    order, bounds = [], {}
    for t in ref_type_order(set(type_of.values()), type_order):
        members = [i for i in seen if type_of.get(i) == t]
        if t == "EPG/PEG" and "cell_subtype" in a.columns:

            def rank(i):
                v = row_of[i].get("cell_subtype")
                m = re.search(r"([LR]\d+)\s*$", str(v)) if isinstance(v, str) else None
                return EB.index(m.group(1)) if m and m.group(1) in EB else np.inf

            members = sorted(members, key=rank)  # stable: ties keep annotation order
        bounds[t] = (len(order), len(order) + len(members))
        order += members
    order += sorted(i for i in seen if i not in type_of)
    order += sorted(ids - set(seen))
    return order, bounds


def ref_edges(syn, mode, wcol):
    if mode != "column" and "id" in syn.columns:
        syn = syn.drop_duplicates("id")
    if mode == "column":
        e = syn.groupby([PRE, POST])[wcol].sum().rename("w").reset_index()
    else:
        e = syn.groupby([PRE, POST]).size().rename("w").reset_index()
    e["w"] = e["w"].astype(float)
    if mode == "relative_outgoing":
        e["w"] = e["w"] / e.groupby(PRE)["w"].transform("sum")
    if mode == "relative_incoming":
        e["w"] = e["w"] / e.groupby(POST)["w"].transform("sum")
    return e


def ref_scoped(syn, ann, scope, min_weight=1, mode="count"):
    syn = syn.dropna(subset=[PRE, POST]).copy()
    if mode != "column" and "id" in syn.columns:
        syn = syn.drop_duplicates("id")
    syn[PRE] = [str(int(v)) for v in syn[PRE]]
    syn[POST] = [str(int(v)) for v in syn[POST]]
    if scope == "annotated_only":
        ids = {str(int(v)) for v in ann["root_id"].dropna()}
        syn = syn[syn[PRE].isin(ids) & syn[POST].isin(ids)]
    if min_weight > 1:
        n = syn.groupby([PRE, POST])[PRE].transform("size")
        syn = syn[n >= min_weight]
    return syn


def ref_nested(syn, ann, mode="count", wcol=None, scope="annotated_only", type_order=None, min_weight=1):
    syn = ref_scoped(syn, ann, scope, min_weight, mode)
    e = ref_edges(syn, mode, wcol)
    adj = e.pivot_table(index=PRE, columns=POST, values="w", aggfunc="sum", fill_value=0.0)
    ids = set(adj.index) | set(adj.columns)
    order, bounds = ref_order(ids, ann, type_order)
    return adj.reindex(index=order, columns=order, fill_value=0.0).astype(float), bounds


def ref_directed(syn, ann, mode, scope, st=None, tt=None, sn=None, tn=None, norm="selected", wcol=None):
    syn = ref_scoped(syn, ann, scope)
    typed = ann[ann["cell_type"].notna()].copy()
    typed["_id"] = [str(int(v)) for v in typed["root_id"]]
    type_of = dict(zip(typed.drop_duplicates("_id")["_id"], typed.drop_duplicates("_id")["cell_type"], strict=True))

    def select(avail, types, neurons):
        if types is None and neurons is None:
            return set(avail)
        out = set()
        if types is not None:
            out |= {i for i in avail if type_of.get(i) in set(types)}
        if neurons is not None:
            out |= {str(n) for n in neurons} & set(avail)
        return out

    src = select(set(syn[PRE]), st, sn)
    tgt = select(set(syn[POST]), tt, tn)
    if norm == "all" and mode == "relative_outgoing":
        s = syn[syn[PRE].isin(src)]
    elif norm == "all" and mode == "relative_incoming":
        s = syn[syn[POST].isin(tgt)]
    else:
        s = syn[syn[PRE].isin(src) & syn[POST].isin(tgt)]
    e = ref_edges(s, mode, wcol)
    so, sb = ref_order(src, ann)
    to, tb = ref_order(tgt, ann)
    adj = e.pivot_table(index=PRE, columns=POST, values="w", aggfunc="sum", fill_value=0.0)
    return adj.reindex(index=so, columns=to, fill_value=0.0).astype(float), sb, tb


def ref_type_blocks(mat: pd.DataFrame, rb, cb, how):
    out = pd.DataFrame(0.0, index=list(rb), columns=list(cb))
    for r, (a, b) in rb.items():
        for c, (x, y) in cb.items():
            block = mat.iloc[a:b, x:y].to_numpy()
            out.loc[r, c] = block.sum() if how == "sum" else block.mean()
    return out


def assert_same(m, ref: pd.DataFrame):
    got = m.matrix
    assert list(got.index) == list(ref.index)
    assert list(got.columns) == list(ref.columns)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def data():
    """Synapses among root IDs 1..30; 1..24 annotated (a duplicate row, untyped ones, EPG/PEG)."""
    rng = np.random.default_rng(7)
    n = 900
    syn = pd.DataFrame(
        {
            PRE: rng.integers(1, 31, n),
            POST: rng.integers(1, 31, n),
            "id": np.arange(n),
            "w": rng.integers(1, 5, n).astype(float),
            "x": rng.uniform(0, 400, n),
            "y": rng.uniform(0, 10, n),
            "z": rng.uniform(0, 10, n),
        }
    )
    syn.loc[n - 40 :, "id"] = syn["id"].iloc[:40].to_numpy()  # duplicated synapse ids (counted once)
    syn.loc[n - 40 :, [PRE, POST]] = syn[[PRE, POST]].iloc[:40].to_numpy()
    types = ["ER10", "ER2", "ER", "EPG/PEG", "Pbt", "ER2", "ER10", "EPG/PEG"] * 3
    ids = list(range(24, 0, -1))  # annotation order is not ID order
    ann = pd.DataFrame({"root_id": ids, "cell_type": types, "cell_subtype": [None] * 24})
    epg = ann.index[ann["cell_type"] == "EPG/PEG"]
    ann.loc[epg, "cell_subtype"] = ["EPG_L8", "EPG_R1", "EPG_R2", "EPG", "EPG_L7", "EPG_R1"]
    ann.loc[[2, 9], "cell_type"] = None  # annotated but untyped
    # a duplicate annotation row: first untyped, later typed -> typed row wins, position stays
    ann = pd.concat([ann, pd.DataFrame({"root_id": [24], "cell_type": ["Pbt"], "cell_subtype": [None]})], ignore_index=True)
    ann.loc[0, "cell_type"] = None
    return syn, ann


# ----------------------------------------------------------------------------- ordering


def test_natural_type_order_rules():
    assert natural_type_order(["ER", "ER10", "ER2", "er3", "Pbt", "10x"]) == ["10x", "ER2", "er3", "ER10", "ER", "Pbt"]
    assert natural_type_order(["ER2", "ER10", "ER", "EPG", "Pbt"], ["Pbt", "ER"]) == ["Pbt", "ER2", "ER10", "ER", "EPG"]
    assert natural_type_order(["ER2", "ER10", "ER"], ["ER10"]) == ["ER10", "ER2", "ER"]
    assert natural_type_order([1.0, 2, None, float("nan")]) == ["1", "2"]


def test_ordering_blocks_annotation_order_epg_and_appended(data):
    syn, ann = data
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count", annotation_scope="all")
    assert list(m.type_boundaries) == ["EPG/PEG", "ER2", "ER10", "ER", "Pbt"]
    s, e = m.type_boundaries["EPG/PEG"]
    # EB column order R1, L8, R2, L7, ...; ties by annotation order; unranked last
    sub = dict(zip(ann["root_id"].astype(str), ann["cell_subtype"], strict=False))
    present = [sub[i] for i in m.ordered_neurons[s:e]]
    ranked = [EB.index(x.split("_")[1]) for x in present if x != "EPG"]
    assert ranked == sorted(ranked)
    if "EPG" in present:
        assert present[-1] == "EPG"
    s, e = m.type_boundaries["ER2"]
    ann_order = [str(i) for i in ann.drop_duplicates("root_id")["root_id"]]
    assert list(m.ordered_neurons[s:e]) == [i for i in ann_order if i in m.ordered_neurons[s:e]]
    # untyped (annotated) then unannotated, each sorted as strings, after the typed blocks
    n_typed = max(e for _, e in m.type_boundaries.values())
    tail = list(m.ordered_neurons[n_typed:])
    untyped = sorted({"22", "15"} & set(tail))
    missing = sorted(i for i in tail if int(i) > 24)
    assert tail == untyped + missing
    assert len(missing) == 6
    assert "24" in m.neuron_to_type and m.neuron_to_type["24"] == "Pbt"
    ref, bounds = ref_nested(syn, ann, "count", scope="all")
    assert dict(m.type_boundaries) == bounds
    assert_same(m, ref)


def test_type_order_prefix_and_exact(data):
    syn, ann = data
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count", type_order=["Pbt", "ER"])
    assert list(m.type_boundaries) == ["Pbt", "ER2", "ER10", "ER", "EPG/PEG"]
    ref, bounds = ref_nested(syn, ann, "count", type_order=["Pbt", "ER"])
    assert dict(m.type_boundaries) == bounds
    assert_same(m, ref)


# ----------------------------------------------------------------------------- weights and scopes


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("mode", MODES)
def test_from_synapses_matches_reference(data, mode, scope):
    syn, ann = data
    wcol = "w" if mode == "column" else None
    m = NestedMatrix.from_synapses(syn, ann, weight_mode=mode, weight_column=wcol, annotation_scope=scope)
    ref, bounds = ref_nested(syn, ann, mode, wcol, scope)
    assert dict(m.type_boundaries) == bounds
    assert m.ordered_neurons == tuple(ref.index)
    assert_same(m, ref)
    if mode == "relative_outgoing":
        rows = m.matrix.sum(axis=1).to_numpy()
        assert np.allclose(rows[rows > 0], 1.0)
    if mode == "relative_incoming":
        cols = m.matrix.sum(axis=0).to_numpy()
        assert np.allclose(cols[cols > 0], 1.0)
    assert m.attrs["weight_mode"] == mode and m.attrs["annotation_scope"] == scope


def test_min_weight_drops_weak_pairs_before_normalising(data):
    syn, ann = data
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="relative_outgoing", min_weight=3, annotation_scope="all")
    ref, _ = ref_nested(syn, ann, "relative_outgoing", scope="all", min_weight=3)
    assert_same(m, ref)


def test_type_matrices_and_relative_weights(data):
    syn, ann = data
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count", annotation_scope="all")
    ref, bounds = ref_nested(syn, ann, "count", scope="all")
    s = ref_type_blocks(ref, bounds, bounds, "sum")
    mean = ref_type_blocks(ref, bounds, bounds, "mean")
    np.testing.assert_allclose(m.sum_type_matrix.to_numpy(), s.to_numpy())
    np.testing.assert_allclose(m.mean_type_matrix.to_numpy(), mean.to_numpy())
    assert list(m.sum_type_matrix.index) == list(bounds)
    # mean includes zeros: a block's mean equals sum / (rows * cols), not the mean of non-zeros
    (a, b), (c, d) = bounds["ER2"], bounds["ER10"]
    assert m.mean_type_matrix.loc["ER2", "ER10"] == pytest.approx(s.loc["ER2", "ER10"] / ((b - a) * (d - c)))
    rel = m.get_relative_weights()
    rs = rel.sum(axis=1).to_numpy()
    raw = ref.sum(axis=1).to_numpy()
    assert np.allclose(rs[raw > 0], 1.0) and np.all(rs[raw == 0] == 0)
    np.testing.assert_allclose(rel.to_numpy(), (ref.T / np.where(raw == 0, 1, raw)).T.to_numpy())
    relt = m.get_relative_weights(by_type=True)
    np.testing.assert_allclose(relt.sum(axis=1).to_numpy(), 1.0)


def test_zero_rows_stay_zero_in_relative_weights():
    edges = pd.DataFrame({"pre": [1, 1, 2], "post": [2, 3, 1], "weight": [1, 3, 2]})
    ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "A", "B"]})
    m = NestedMatrix.from_connectivity(edges, ann)
    rel = m.get_relative_weights()
    assert rel.loc["3"].sum() == 0
    assert rel.loc["1", "3"] == pytest.approx(0.75)
    assert m.get_relative_weights(by_type=True).loc["B"].sum() == 0


# ----------------------------------------------------------------------------- from_connectivity formats


def test_connectivity_formats_and_duplicates(data):
    _, ann = data
    e = pd.DataFrame({"a": [1, 1, 2, 3, 25], "b": [2, 2, 3, 1, 1], "w": [1.0, 2.0, 4.0, 8.0, 16.0]})
    ref = pd.DataFrame(0.0, index=["1", "2", "3"], columns=["1", "2", "3"])
    ref.loc["1", "2"], ref.loc["2", "3"], ref.loc["3", "1"] = 3.0, 4.0, 8.0
    forms = [
        e.rename(columns={"a": "pre", "b": "post", "w": "weight"}),
        e.rename(columns={"a": "source", "b": "target", "w": "n_syn"}),
        e.rename(columns={"a": "source", "b": "target", "w": "weight"}),
        e.rename(columns={"a": "type.from", "b": "type.to", "w": "weight"}),
    ]
    for df in forms:
        m = NestedMatrix.from_connectivity(df, ann)
        got = m.matrix.loc[["1", "2", "3"], ["1", "2", "3"]]
        np.testing.assert_allclose(got.to_numpy(), ref.to_numpy())
        assert "25" not in m.ordered_neurons
    # no weight column: rows are counted
    m = NestedMatrix.from_connectivity(e[["a", "b"]].rename(columns={"a": "pre", "b": "post"}), ann, annotation_scope="all")
    assert m.matrix.loc["1", "2"] == 2.0 and "25" in m.ordered_neurons
    # adjacency matrix input
    adj = pd.DataFrame([[0, 5], [7, 0]], index=[1, 2], columns=[1, 2])
    m = NestedMatrix.from_connectivity(adj, ann)
    assert m.matrix.loc["2", "1"] == 7.0 and m.matrix.loc["1", "2"] == 5.0


def test_connectivity_bad_input_rejected(data):
    _, ann = data
    with pytest.raises(ValueError, match="Ambiguous"):
        NestedMatrix.from_connectivity(pd.DataFrame({"pre": [1], "post": [2], "source": [1], "target": [2]}), ann)
    with pytest.raises(ValueError, match="neither an edge list"):
        NestedMatrix.from_connectivity(pd.DataFrame({"from": ["a"], "to": ["b"]}), ann)
    with pytest.raises(ValueError, match="numeric"):
        NestedMatrix.from_connectivity(pd.DataFrame({"pre": [1], "post": [2], "weight": ["x"]}), ann)
    with pytest.raises(ValueError, match="annotation_scope"):
        NestedMatrix.from_connectivity(pd.DataFrame({"pre": [1], "post": [2]}), ann, annotation_scope="some")
    with pytest.raises(KeyError, match="cell_type"):
        NestedMatrix.from_connectivity(pd.DataFrame({"pre": [1], "post": [2]}), ann.drop(columns="cell_type"))


def test_synapse_argument_errors(data):
    syn, ann = data
    with pytest.raises(ValueError, match="weight_column must be provided"):
        NestedMatrix.from_synapses(syn, ann, weight_mode="column")
    with pytest.raises(ValueError, match="only be provided"):
        NestedMatrix.from_synapses(syn, ann, weight_mode="count", weight_column="w")
    with pytest.raises(ValueError, match="weight_mode"):
        NestedMatrix.from_synapses(syn, ann, weight_mode="sum")
    with pytest.raises(KeyError, match="nope"):
        NestedMatrix.from_synapses(syn, ann, pre_col="nope")
    with pytest.raises(ValueError, match="normalization_scope"):
        DirectedNestedMatrix.from_synapses(syn, ann, normalization_scope="global")


def test_string_ids_and_empty():
    syn = pd.DataFrame({PRE: ["a", "a", "b"], POST: ["b", "c", "c"]})
    ann = pd.DataFrame({"root_id": ["a", "b", "c"], "cell_type": ["T1", "T2", "T2"]})
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    assert m.ordered_neurons == ("a", "b", "c")
    e = NestedMatrix.from_synapses(syn, ann.assign(root_id=["x", "y", "z"]), weight_mode="count")
    assert e.matrix.shape == (0, 0) and dict(e.type_boundaries) == {}


# ----------------------------------------------------------------------------- immutability


def test_immutable_read_only_views_and_cache(data):
    syn, ann = data
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    with pytest.raises(AttributeError):
        m.matrix = None
    view = m.matrix
    with pytest.raises(ValueError, match="read-only"):
        view.iloc[0, 0] = 99.0
    with pytest.raises(TypeError):
        m.type_boundaries["X"] = (0, 1)
    with pytest.raises(TypeError):
        m.neuron_to_type["1"] = "X"
    tview = m.sum_type_matrix
    with pytest.raises(ValueError, match="read-only"):
        tview.iloc[0, 0] = 1.0
    assert np.shares_memory(m.sum_type_matrix.to_numpy(), m.sum_type_matrix.to_numpy())
    assert isinstance(m.ordered_neurons, tuple)
    before = m.matrix.to_numpy().copy()
    edited = m.matrix.copy()
    edited.iloc[0, 0] = 123.0
    np.testing.assert_array_equal(m.matrix.to_numpy(), before)


def test_public_constructor_validates():
    mat = pd.DataFrame([[0, 1], [2, 0]], index=["1", "2"], columns=["1", "2"])
    m = NestedMatrix(mat, {"A": (0, 1)}, ["1", "2"], {"1": "A"})
    assert m.ordered_neurons == ("1", "2") and m.sum_type_matrix.loc["A", "A"] == 0
    with pytest.raises(ValueError, match="contiguous"):
        NestedMatrix(mat, {"A": (1, 2)}, ["1", "2"], {"2": "A"})
    with pytest.raises(ValueError, match="annotated neurons must appear"):
        NestedMatrix(mat, {"A": (0, 1)}, ["1", "2"], {"1": "A", "2": "B"})
    with pytest.raises(ValueError, match="match ordered_neurons"):
        NestedMatrix(mat, {"A": (0, 1)}, ["2", "1"], {"2": "A"})


# ----------------------------------------------------------------------------- directed


@pytest.mark.parametrize(
    "sel",
    [
        dict(),
        dict(st=["ER2"], tt=["ER10", "Pbt"]),
        dict(st=["ER2"], sn=[27, 3]),
        dict(tn=["5", 29], tt="ER"),
    ],
)
@pytest.mark.parametrize("mode,norm", [("relative_outgoing", "selected"), ("relative_outgoing", "all"),
                                       ("relative_incoming", "all"), ("count", "all")])  # fmt: skip
def test_directed_matches_reference(data, sel, mode, norm):
    syn, ann = data
    m = DirectedNestedMatrix.from_synapses(
        syn, ann, source_types=sel.get("st"), target_types=sel.get("tt"), source_neurons=sel.get("sn"),
        target_neurons=sel.get("tn"), weight_mode=mode, normalization_scope=norm, annotation_scope="all",
    )  # fmt: skip
    ref, sb, tb = ref_directed(
        syn, ann, mode, "all", sel.get("st"), [sel["tt"]] if isinstance(sel.get("tt"), str) else sel.get("tt"),
        sel.get("sn"), sel.get("tn"), norm,
    )  # fmt: skip
    assert dict(m.source_type_boundaries) == sb and dict(m.target_type_boundaries) == tb
    assert m.source_neurons == tuple(ref.index) and m.target_neurons == tuple(ref.columns)
    assert_same(m, ref)
    s = ref_type_blocks(ref, sb, tb, "sum")
    np.testing.assert_allclose(m.sum_type_matrix.to_numpy(), s.to_numpy())


def test_directed_type_orders_and_connectivity(data):
    syn, ann = data
    m = DirectedNestedMatrix.from_synapses(
        syn, ann, weight_mode="count", source_type_order=["Pbt"], target_type_order=["ER10"], type_order=["EPG/PEG"]
    )
    assert list(m.source_type_boundaries)[0] == "Pbt"
    assert list(m.target_type_boundaries)[0] == "ER10"
    edges = pd.DataFrame({"pre": [1, 1, 2], "post": [3, 4, 3], "weight": [1, 2, 3]})
    d = DirectedNestedMatrix.from_connectivity(edges, ann)
    assert set(d.source_neurons) == {"1", "2"} and set(d.target_neurons) == {"3", "4"}
    assert d.matrix.loc["2", "3"] == 3.0


# ----------------------------------------------------------------------------- neuropils (pandas + mesh RoiSet)


class FakeRoiSet:
    """Duck-typed RoiSet: ROI by x coordinate (EB < 100 <= FB < 200 <= PB < 300, else none)."""

    names = ["EB", "FB", "PB"]

    def assign(self, points):
        x = np.asarray(points)[:, 0]
        code = np.floor(x / 100).astype(np.int16)
        return np.where(code > 2, -1, code).astype(np.int16)

    def contains(self, points, name):
        return self.assign(points) == self.names.index(name)


def test_by_neuropil_pandas_matches_subsets(data):
    syn, ann = data
    syn = syn.assign(ctr_pt_position=list(syn[["x", "y", "z"]].to_numpy()))
    col = NestedMatrix.from_synapses_by_neuropil(syn, ann, weight_mode="count", rois=FakeRoiSet(), annotation_scope="all")
    assert isinstance(col, NeuropilCollection)
    assert list(col) == ["EB", "FB", "PB", "other"]
    for name, (lo, hi) in {"EB": (0, 100), "FB": (100, 200), "PB": (200, 300), "other": (300, 1e9)}.items():
        sub = syn[(syn["x"] >= lo) & (syn["x"] < hi)]
        ref, bounds = ref_nested(sub, ann, "count", scope="all")
        assert_same(col[name], ref)
        assert col[name].attrs["neuropil"] == name
    assert col.EB is col["EB"]
    with pytest.raises(AttributeError):
        _ = col.nope
    only = NestedMatrix.from_synapses_by_neuropil(
        syn, ann, neuropil_names=["FB"], include_other=False, rois=FakeRoiSet(), weight_mode="count"
    )
    assert list(only) == ["FB"]
    with pytest.raises(ValueError, match="Invalid neuropil"):
        NestedMatrix.from_synapses_by_neuropil(syn, ann, neuropil_names=["XX"], rois=FakeRoiSet())
    with pytest.raises(ValueError, match="coordinates"):
        NestedMatrix.from_synapses_by_neuropil(syn, ann, coordinates="um", rois=FakeRoiSet())
    # pixels: (p + offset) * voxel_size
    px = syn.assign(px=syn["x"] / 4.0 - 1.0, py=syn["y"], pz=syn["z"])
    pcol = NestedMatrix.from_synapses_by_neuropil(
        px, ann, coordinates="pixels", position_column=("px", "py", "pz"), voxel_offset=(1.0, 0.0, 0.0),
        voxel_size=(4.0, 1.0, 1.0), rois=FakeRoiSet(), weight_mode="count", annotation_scope="all",
    )  # fmt: skip
    for name in col:
        np.testing.assert_allclose(pcol[name].matrix.to_numpy(), col[name].matrix.to_numpy())
    d = DirectedNestedMatrix.from_synapses_by_neuropil(
        syn, ann, rois=FakeRoiSet(), source_types=["ER2"], weight_mode="count"
    )
    assert set(d) <= {"EB", "FB", "PB", "other"} and all(set(v.source_type_boundaries) == {"ER2"} for v in d.values())


def test_all_selector():
    assert All.minus("a").resolve(["a", "b", "c"]) == ["b", "c"]
    assert repr(All.minus("b", "a")) == "All.minus('a', 'b')"


def test_dask_dataframe_input_equals_pandas(data):
    import dask.dataframe as dd

    syn, ann = data
    ddf = dd.from_pandas(syn, npartitions=3)
    for mode, wcol in (("relative_outgoing", None), ("column", "w")):
        a = NestedMatrix.from_synapses(ddf, ann, weight_mode=mode, weight_column=wcol, progress=False)
        b = NestedMatrix.from_synapses(syn, ann, weight_mode=mode, weight_column=wcol)
        assert a.ordered_neurons == b.ordered_neurons
        np.testing.assert_allclose(a.matrix.to_numpy(), b.matrix.to_numpy())
        assert a.attrs["source"] == "dask DataFrame"


# ----------------------------------------------------------------------------- xarray / zarr / dense limit


def test_to_xarray_neuron_and_type_levels(data):
    import sparse

    syn, ann = data
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count", annotation_scope="all")
    da = m.to_xarray()
    assert da.dims == ("pre", "post") and isinstance(da.data, sparse.COO)
    np.testing.assert_allclose(da.data.todense(), m.matrix.to_numpy())
    assert list(da["bodyId_pre"].values) == [int(i) for i in m.ordered_neurons]
    assert da["pre"].dtype == np.int64
    t = da["type_pre"].values
    n_typed = max(e for _, e in m.type_boundaries.values())
    assert all(t[i] == m.neuron_to_type[m.ordered_neurons[i]] for i in range(n_typed))
    assert all(pd.isna(v) for v in t[n_typed:])  # xarray stores None as NaN in object coords
    json.dumps(dict(da.attrs))
    assert da.attrs["weight_mode"] == "count" and da.attrs["annotation_scope"] == "all"
    ts = m.to_xarray("type_sum")
    assert isinstance(ts.data, np.ndarray) and list(ts["pre"].values) == list(m.type_boundaries)
    np.testing.assert_allclose(ts.values, m.sum_type_matrix.to_numpy())
    np.testing.assert_array_equal(ts["n_neurons_pre"].values, [e - s for s, e in m.type_boundaries.values()])
    rel = m.to_xarray(relative=True)
    np.testing.assert_allclose(rel.data.todense(), m.get_relative_weights().to_numpy())
    with pytest.raises(ValueError, match="level"):
        m.to_xarray("types")


def test_dense_limit_points_to_xarray(data):
    syn, ann = data
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    with dask.config.set({"connectome_dask.max_dense_bytes": 64}):
        with pytest.raises(DenseMatrixTooLarge, match=r"to_xarray"):
            _ = m.matrix
        with pytest.raises(DenseMatrixTooLarge, match=r"to_xarray\(relative=True\)"):
            m.get_relative_weights()
        da = m.to_xarray()  # still fine: sparse
        assert da.data.nnz == m.nnz
    assert m.matrix.shape == m.shape  # limit lifted again


@pytest.mark.parametrize("kind", ["nested", "directed", "strings"])
def test_zarr_round_trip(tmp_path, data, kind):
    syn, ann = data
    if kind == "nested":
        m = NestedMatrix.from_synapses(syn, ann, weight_mode="relative_incoming", annotation_scope="all")
    elif kind == "directed":
        m = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["ER2", "Pbt"], weight_mode="count")
    else:
        s = pd.DataFrame({PRE: ["a", "a", "b"], POST: ["b", "c", "z"]})
        a = pd.DataFrame({"root_id": ["a", "b", "c"], "cell_type": ["T1", None, "T2"], "instance": ["i", "j", None]})
        m = NestedMatrix.from_synapses(s, a, weight_mode="count", annotation_scope="all")
    p = m.to_zarr(tmp_path / "m.zarr")
    r = open_matrix(p)
    assert type(r) is type(m)
    pd.testing.assert_frame_equal(r.matrix, m.matrix)
    pd.testing.assert_frame_equal(r.sum_type_matrix, m.sum_type_matrix)
    pd.testing.assert_frame_equal(r.mean_type_matrix, m.mean_type_matrix)
    assert dict(r.attrs) == dict(m.attrs)
    a, b = m.to_xarray(), r.to_xarray()
    assert a.identical(b)
    if kind != "directed":
        assert dict(r.type_boundaries) == dict(m.type_boundaries)
        assert dict(r.neuron_to_type) == dict(m.neuron_to_type)
    else:
        assert r.source_neurons == m.source_neurons and r.target_neurons == m.target_neurons
    # the stored attrs are plain JSON
    meta = json.loads((p / "zarr.json").read_text())
    assert meta["attributes"]["kind"] == type(m).__name__


def test_zarr_write_is_atomic(tmp_path, data, monkeypatch):
    syn, ann = data
    m1 = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    m2 = NestedMatrix.from_synapses(syn, ann, weight_mode="relative_outgoing")
    p = m1.to_zarr(tmp_path / "m.zarr")
    calls = {"n": 0}
    real = M._write_array

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full (simulated)")
        return real(*args, **kw)

    monkeypatch.setattr(M, "_write_array", flaky)
    with pytest.raises(OSError, match="simulated"):
        m2.to_zarr(p)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(open_matrix(p).matrix, m1.matrix)
    # no temp leftovers (the writer lock file beside the target stays, as flock files do)
    assert sorted(x.name for x in tmp_path.iterdir()) == [".m.zarr.lock", "m.zarr"]
    m2.to_zarr(p)
    pd.testing.assert_frame_equal(open_matrix(p).matrix, m2.matrix)
    other = tmp_path / "notamatrix"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        m1.to_zarr(other)
    assert (other / "keep.txt").exists()
    with pytest.raises(FileNotFoundError):
        open_matrix(other)


def test_save_dataarray_round_trip(tmp_path, data):
    syn, ann = data
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count", annotation_scope="all")
    for level in ("neuron", "type_mean"):
        da = m.to_xarray(level)
        p = save_dataarray(da, tmp_path / f"{level}.zarr")
        back = open_dataarray(p)
        assert back.identical(da)


# ----------------------------------------------------------------------------- connectome store


def _write_test_store(path: Path, chunk_rows: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    n = 60
    body = rng.choice(np.arange(1000, 100000), n, replace=False).astype(np.int64)
    types = np.array((["ER2", "ER10", "EPG/PEG", "Pbt", None] * 12)[:n], dtype=object)
    neurons = pd.DataFrame(
        {
            "bodyId": body,
            "type": pd.array(types, dtype="string"),
            "instance": pd.array([f"{t}_{i % 2}" if t else None for i, t in enumerate(types)], dtype="string"),
            "cell_subtype": [f"EPG_{EB[i % 16]}" if t == "EPG/PEG" else None for i, t in enumerate(types)],
        }
    )
    k = 4000
    pre = rng.integers(0, n - 4, k).astype(np.int32)  # the last 4 bodies have no synapses
    post = rng.integers(0, n - 4, k).astype(np.int32)
    x = rng.uniform(0, 400, k).astype(np.float32)
    syn = pd.DataFrame({"pre": pre, "post": post})
    for c in ("x_pre", "y_pre", "z_pre", "y_post", "z_post"):
        syn[c] = rng.uniform(0, 10, k).astype(np.float32)
    syn["x_post"] = x
    syn["confidence"] = rng.uniform(0, 1, k).astype(np.float32)
    conn = cd.write_store(path, neurons, syn, {"name": "mtest", "version": "1.0"}, chunk_rows=chunk_rows)

    def roi_cols(block):
        c = np.floor(block["x_post"] / 100).astype(np.int16)
        return {"roi_post": np.where(c > 2, -1, c).astype(np.int16)}

    def write_rois(d: Path) -> None:
        (d / "rois.json").write_text(json.dumps({"names": ["EB", "FB", "PB"], "primary": ["EB", "FB", "PB"]}))

    conn = conn.write_synapse_columns(
        roi_cols, inputs=["x_post"], outputs={"roi_post": "int16"}, write_rois=write_rois, progress=False
    )
    raw = syn.assign(**{PRE: body[pre], POST: body[post]})
    ann = neurons.rename(columns={"bodyId": "root_id", "type": "cell_type"})
    ann["cell_type"] = ann["cell_type"].astype(object).where(ann["cell_type"].notna(), None)
    return conn, raw, ann


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    pytest.importorskip("connectome_dask.aggregate")
    return _write_test_store(tmp_path_factory.mktemp("mstore") / "s", chunk_rows=256)


@pytest.mark.parametrize("mode", ["relative_outgoing", "relative_incoming", "count"])
def test_store_matches_reference(store, mode):
    conn, raw, ann = store
    m = NestedMatrix.from_synapses(conn, weight_mode=mode, progress=False)
    ref, bounds = ref_nested(raw, ann, mode, scope="all")
    assert dict(m.type_boundaries) == bounds
    assert_same(m, ref)
    assert m.attrs["dataset"] == "mtest" and m.attrs["version"] == "1.0"
    # external annotations restrict the scope
    sub = ann.iloc[::2]
    m2 = NestedMatrix.from_synapses(conn, sub, weight_mode=mode, progress=False)
    ref2, _ = ref_nested(raw, sub, mode, scope="annotated_only")
    assert_same(m2, ref2)


def test_store_confidence_min_weight_and_partition_invariance(store, tmp_path):
    conn, raw, ann = store
    m = NestedMatrix.from_synapses(conn, weight_mode="count", confidence=0.5, min_weight=2, progress=False)
    ref, _ = ref_nested(raw[raw["confidence"] > 0.5], ann, "count", scope="all", min_weight=2)
    assert_same(m, ref)
    conn2, _, _ = _write_test_store(tmp_path / "s2", chunk_rows=4096)
    m2 = NestedMatrix.from_synapses(conn2, weight_mode="count", confidence=0.5, min_weight=2, progress=False)
    assert (m.to_scipy() != m2.to_scipy()).nnz == 0 and m.ordered_neurons == m2.ordered_neurons
    with pytest.raises(ValueError, match="column"):
        NestedMatrix.from_synapses(conn, weight_mode="column", weight_column="confidence")


def test_store_directed_and_connectivity(store):
    conn, raw, ann = store
    d = DirectedNestedMatrix.from_synapses(
        conn, source_types=["ER2"], target_types=["Pbt", "ER10"], weight_mode="relative_outgoing",
        normalization_scope="all", progress=False,
    )  # fmt: skip
    ref, sb, tb = ref_directed(raw, ann, "relative_outgoing", "all", ["ER2"], ["Pbt", "ER10"], norm="all")
    assert_same(d, ref)
    c = NestedMatrix.from_connectivity(conn)
    ref, _ = ref_nested(raw, ann, "count", scope="all")
    assert_same(c, ref)


def test_store_by_neuropil_uses_roi_codes(store):
    conn, raw, ann = store
    col = NestedMatrix.from_synapses_by_neuropil(conn, weight_mode="count", progress=False)
    assert list(col) == ["EB", "FB", "PB", "other"]
    code = np.floor(raw["x_post"] / 100)
    for i, name in enumerate(["EB", "FB", "PB"]):
        ref, _ = ref_nested(raw[code == i], ann, "count", scope="all")
        assert_same(col[name], ref)
    ref, _ = ref_nested(raw[code > 2], ann, "count", scope="all")
    assert_same(col.other, ref)
    part = NestedMatrix.from_synapses_by_neuropil(conn, neuropil_names=["EB"], weight_mode="count", progress=False)
    ref, _ = ref_nested(raw[code != 0], ann, "count", scope="all")
    assert_same(part["other"], ref)
    with pytest.raises(ValueError, match="Invalid neuropil"):
        NestedMatrix.from_synapses_by_neuropil(conn, neuropil_names=["AL"])


def test_by_neuropil_with_real_roiset(data, tmp_path):
    """Mesh containment through connectome_dask.rois.RoiSet (boxes; reference: trimesh.contains)."""
    rois = pytest.importorskip("connectome_dask.rois")
    trimesh = pytest.importorskip("trimesh")
    syn, ann = data
    syn = syn.assign(ctr_pt_position=list(syn[["x", "y", "z"]].to_numpy()))
    boxes = {
        "EB": trimesh.creation.box(bounds=[[3, 0.5, 0.5], [97, 9.5, 9.5]]),
        "FB": trimesh.creation.box(bounds=[[103, 0.5, 0.5], [197, 9.5, 9.5]]),
    }
    rs = rois.RoiSet.from_meshes(boxes)
    col = NestedMatrix.from_synapses_by_neuropil(syn, ann, rois=rs, weight_mode="count", annotation_scope="all")
    pts = syn[["x", "y", "z"]].to_numpy()
    inside = {n: b.contains(pts) for n, b in boxes.items()}
    for name in ("EB", "FB"):
        ref, _ = ref_nested(syn[inside[name]], ann, "count", scope="all")
        assert_same(col[name], ref)
    ref, _ = ref_nested(syn[~(inside["EB"] | inside["FB"])], ann, "count", scope="all")
    assert_same(col["other"], ref)
    for n, b in boxes.items():
        b.export(tmp_path / f"{n}.ply")
    col2 = NestedMatrix.from_synapses_by_neuropil(syn, ann, rois=tmp_path, weight_mode="count", annotation_scope="all")
    assert list(col2) == list(col)
    np.testing.assert_allclose(col2.EB.matrix.to_numpy(), col.EB.matrix.to_numpy())


def test_integer_body_ids_are_carried_not_reparsed(tmp_path):
    """Integer IDs reach the axes as int64 (no str -> int parse); other IDs keep the string fallback."""
    syn = pd.DataFrame({PRE: np.array([10, 10, 20], dtype=np.int64), POST: np.array([20, 30, 30], dtype=np.int64)})
    ann = pd.DataFrame({"root_id": [10, 20, 30], "cell_type": ["A", "B", "B"]})
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    assert m._src.int_ids is not None and m._src.int_ids.tolist() == [int(i) for i in m.ordered_neurons]
    da = m.to_xarray()
    assert da["pre"].dtype == np.int64 and da["pre"].values.tolist() == [10, 20, 30]
    back = open_matrix(m.to_zarr(tmp_path / "m.zarr"))
    assert back.ordered_neurons == m.ordered_neurons and back._src.int_ids.tolist() == [10, 20, 30]
    # float IDs (1.0) and numeric strings still become int64 coordinates through the string parse
    f = NestedMatrix.from_synapses(syn.astype(float), ann, weight_mode="count")
    assert f._src.int_ids is None and f.to_xarray()["pre"].values.tolist() == [10, 20, 30]
    # uint64 beyond int64 and non-numeric IDs stay strings
    big = np.array([2**63 + 1, 2**63 + 2], dtype=np.uint64)
    u = NestedMatrix.from_synapses(
        pd.DataFrame({PRE: big[:1], POST: big[1:]}), pd.DataFrame({"root_id": big, "cell_type": ["A", "A"]}),
        weight_mode="count",
    )
    assert u._src.int_ids is None and u.to_xarray()["pre"].values.tolist() == [str(int(b)) for b in big]
    d = DirectedNestedMatrix.from_synapses(syn, ann, source_types="A", weight_mode="count")
    assert d.to_xarray()["post"].values.tolist() == [20, 30]
