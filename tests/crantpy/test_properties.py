"""Property tests: the nested matrices against the pure-pandas statement of crantpy's rules.

Random annotations (typed, untyped, missing and NaN IDs, duplicated IDs,
numeric labels, numeric suffixes, EPG/PEG rows with EB column labels) and
random synapses (NaN IDs, duplicated ``id``s, weights), for every weight
mode, normalization scope, annotation scope and selector kind.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from connectome_dask.matrix import DirectedNestedMatrix, NestedMatrix

from . import _reference as ref

PRE, POST = "pre_pt_root_id", "post_pt_root_id"
MODES = ["relative_outgoing", "relative_incoming", "count", "column"]
SCOPES = ["annotated_only", "all"]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ID = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
TYPE = st.sampled_from(["ER2", "ER10", "ER", "er3", "EPG/PEG", "EPG/PEG", "Pbt", "KC", "5", 7.0, None, np.nan])
PICK_TYPE = st.sampled_from(["ER2", "ER10", "ER", "EPG/PEG", "Pbt", "KC", "5", 5, 7.0, np.nan])
LABEL = st.sampled_from(["EPG_R1", "EPG_L8", "EPG_R2 ", "EPG_L1", "EPG_R9", "x", None])


@st.composite
def annotations(draw):
    n = draw(st.integers(0, 14) if draw(st.integers(0, 4)) == 0 else st.integers(6, 14))
    ids = [draw(ID) if draw(st.integers(0, 9)) else np.nan for _ in range(n)]  # about 1 in 10 IDs missing
    return pd.DataFrame({
        "root_id": pd.Series(ids, dtype=float) if any(isinstance(i, float) for i in ids) else pd.Series(ids, dtype=object),
        "cell_type": pd.Series([draw(TYPE) for _ in range(n)], dtype=object),
        "cell_subtype": pd.Series([draw(LABEL) for _ in range(n)], dtype=object),
        "cell_instance": pd.Series([draw(LABEL) for _ in range(n)], dtype=object),
    })  # fmt: skip


@st.composite
def synapses(draw, with_nan=True, positions=False):
    n = draw(st.integers(0, 40) if draw(st.integers(0, 4)) == 0 else st.integers(10, 40))
    idv = st.sampled_from([*range(1, 13), np.nan]) if with_nan else ID
    pre = [draw(idv) for _ in range(n)]
    post = [draw(idv) for _ in range(n)]
    df = pd.DataFrame({PRE: pd.Series(pre, dtype=float), POST: pd.Series(post, dtype=float)})
    if draw(st.booleans()):
        df["id"] = [draw(st.sampled_from([*range(12), np.nan])) for _ in range(n)]
    df["w"] = [draw(st.sampled_from([1.0, 0.5, 2.0, -1.0, 0.0, np.nan])) for _ in range(n)]
    if positions:
        df["x"] = [float(draw(st.integers(0, 299))) for _ in range(n)]
    return df


SELECTOR_KINDS = ["none", "scalar", "list", "tuple", "set", "generator", "array", "series"]


def as_kind(values: list, kind: str):
    if kind == "none":
        return None
    if kind == "scalar":
        return values[0] if values else 999
    return {
        "list": list, "tuple": tuple, "set": set, "generator": lambda v: (x for x in v),
        "array": lambda v: np.array(v, dtype=object), "series": pd.Series,
    }[kind](values)  # fmt: skip


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("connectome_dask.crantpy").setLevel(logging.ERROR)
    yield
    logging.getLogger("connectome_dask.crantpy").setLevel(logging.NOTSET)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(ann=annotations(), syn=synapses(), order=st.sampled_from([None, ["Pbt"], ["ER", "KC"], ["EPG/PEG", "5"]]))
def test_nested_from_synapses_matches_crantpys_rules(mode, scope, ann, syn, order):
    wcol = "w" if mode == "column" else None
    m = NestedMatrix.from_synapses(syn, ann, weight_mode=mode, weight_column=wcol, annotation_scope=scope,
                                   type_order=order)
    mat, bounds, n2t = ref.nested(syn, ann, mode, wcol, scope, type_order=order)
    event(f"types in the matrix: {min(len(bounds), 3)}+")
    ref.assert_matches(m, mat, bounds, exact=mode == "count")
    assert list(m.neuron_to_type.items()) == n2t
    if len(mat):
        np.testing.assert_allclose(m.get_relative_weights().to_numpy(),
                                   (mat.div(mat.sum(axis=1).replace(0, 1), axis=0)).to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("norm_scope", ["selected", "all"])
@pytest.mark.parametrize("mode", MODES)
@settings(SETTINGS, max_examples=40)
@given(
    ann=annotations(), syn=synapses(), scope=st.sampled_from(SCOPES),
    kinds=st.tuples(*[st.sampled_from(["none"] * 6 + SELECTOR_KINDS)] * 4),
    picks=st.tuples(st.lists(PICK_TYPE, min_size=1, max_size=4), st.lists(PICK_TYPE, min_size=1, max_size=4),
                    st.lists(ID, min_size=1, max_size=5), st.lists(ID, min_size=1, max_size=5)),
)  # fmt: skip
def test_directed_from_synapses_matches_crantpys_rules(mode, norm_scope, ann, syn, scope, kinds, picks):
    wcol = "w" if mode == "column" else None
    sel = {k: as_kind(list(v), kind) for k, v, kind in
           zip(("source_types", "target_types", "source_neurons", "target_neurons"), picks, kinds, strict=True)}
    # the reference gets its own copies (a generator is read once)
    ref_sel = {k: as_kind(list(p), kind) for k, p, kind in zip(sel, picks, kinds, strict=True)}
    d = DirectedNestedMatrix.from_synapses(syn, ann, weight_mode=mode, weight_column=wcol, annotation_scope=scope,
                                           normalization_scope=norm_scope, **sel)
    mat, sa, ta = ref.directed(syn, ann, mode, wcol, scope, norm_scope, **ref_sel)
    event(f"entries: {min(int((mat.to_numpy() != 0).sum()), 3)}+")
    ref.assert_matches(d, mat, sa[1], ta[1], exact=mode == "count")
    assert list(d.source_neuron_to_type.items()) == sa[2]
    assert list(d.target_neuron_to_type.items()) == ta[2]


class Bands:
    """Duck-typed RoiSet with overlapping / nested ROIs by x (nm): A [0, 200), B [100, 300), C [120, 140)."""

    names = ["A", "B", "C"]
    _bounds = {"A": (0, 200), "B": (100, 300), "C": (120, 140)}

    def contains(self, points, name):
        lo, hi = self._bounds[name]
        x = np.asarray(points)[:, 0]
        return (x >= lo) & (x < hi)


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(ann=annotations(), syn=synapses(with_nan=False, positions=True), scope=st.sampled_from(SCOPES),
       listed=st.sampled_from([None, ["A"], ["C", "A"], ["B", "C"]]), other=st.booleans())
def test_by_neuropil_matches_crantpys_rules(mode, ann, syn, scope, listed, other):
    wcol = "w" if mode == "column" else None
    syn = syn.assign(ctr_pt_position=list(np.c_[syn["x"], np.zeros((len(syn), 2))]))
    c = NestedMatrix.from_synapses_by_neuropil(syn, ann, neuropil_names=listed, weight_mode=mode, weight_column=wcol,
                                               annotation_scope=scope, include_other=other, rois=Bands())
    d = DirectedNestedMatrix.from_synapses_by_neuropil(
        syn, ann, neuropil_names=listed, weight_mode=mode, weight_column=wcol, annotation_scope=scope,
        include_other=other, rois=Bands(), source_types=["ER2", "Pbt", "KC"],
    )  # fmt: skip
    scoped = ref.scoped_rows(syn, ann, scope)
    names = listed or Bands.names
    masks = {n: Bands().contains(np.c_[scoped["x"], np.zeros((len(scoped), 2))], n) for n in names}
    if other and len(scoped):
        masks["other"] = ~np.any(list(masks.values()), axis=0)
    expect = [n for n, mk in masks.items() if mk.any()]
    assert list(c) == expect
    for n in expect:
        mat, bounds, _ = ref.nested(scoped[masks[n]].drop(columns=["_pre", "_post"]), ann, mode, wcol, scope)
        ref.assert_matches(c[n], mat, bounds, exact=mode == "count")
    dexpect = []
    for n in expect:
        mat, sa, ta = ref.directed(scoped[masks[n]].drop(columns=["_pre", "_post"]), ann, mode, wcol, scope,
                                   source_types=["ER2", "Pbt", "KC"])
        if mat.shape[0] and mat.shape[1]:
            dexpect.append(n)
            ref.assert_matches(d[n], mat, sa[1], ta[1], exact=mode == "count")
    assert list(d) == dexpect


@pytest.mark.parametrize("scope", SCOPES)
@SETTINGS
@given(ann=annotations(), edges=st.lists(st.tuples(ID, ID, st.integers(1, 5)), max_size=20))
def test_from_connectivity_edge_list_matches_crantpys_rules(scope, ann, edges):
    e = pd.DataFrame(edges, columns=["pre", "post", "weight"])
    m = NestedMatrix.from_connectivity(e, ann, annotation_scope=scope)
    # crantpy: pivot the edge list (rows = its pre IDs, columns = its post IDs), drop unannotated rows /
    # columns under "annotated_only" (an annotated neuron whose partners are all unannotated stays)
    known = {ref.norm(v) for v in ann["root_id"] if not ref.missing(v)}
    ids = {ref.norm(v) for v in e["pre"]} | {ref.norm(v) for v in e["post"]}
    if scope == "annotated_only":
        ids &= known
    order, bounds, _ = ref.axis(ids, ann)
    agg = e.assign(_pre=e["pre"].map(ref.norm), _post=e["post"].map(ref.norm), w=e["weight"].astype(float))
    ref.assert_matches(m, ref.dense(agg.groupby(["_pre", "_post"])["w"].sum().reset_index(), order, order), bounds)
