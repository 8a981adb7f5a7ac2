"""NeuronCriteria / SynapseCriteria against pure-pandas references (neuPrint semantics)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from connectome_dask.criteria import (
    CriteriaError,
    IsNull,
    NeuronCriteria,
    NotNull,
    RoiModel,
    SynapseCriteria,
    UnknownColumnError,
    UnknownRoiError,
    copy_as_neuroncriteria,
)

# the conftest ROI layout, written out by hand (independent of RoiModel)
ROI_NAMES = ["AL_R", "AL_L", "LH_R", "MB_CA", "MB_ML", "FB", "EB", "OL_R", "ME_R"]
ROI_PRIMARY = ["AL_R", "AL_L", "LH_R", "MB_CA", "MB_ML", "FB", "EB", "ME_R"]
REF_PARENTS = {"MB_CA": "MB", "MB_ML": "MB", "FB": "CX", "EB": "CX", "ME_R": "OL_R"}


def ref_levels(code: int) -> list[str]:
    """All ROI names (any level) a site with this code counts for."""
    if code < 0:
        return []
    name = ROI_NAMES[code]
    out = [name]
    while out[-1] in REF_PARENTS:
        out.append(REF_PARENTS[out[-1]])
    return out


def ref_roi_counts(s) -> pd.DataFrame:
    """Per (index, roi name) pre/post counts at every level, from the raw synapse table."""
    syn = s.synapses
    rows = []
    for side, idxcol, codecol in (("pre", "pre", "roi_pre"), ("post", "post", "roi_post")):
        g = syn.groupby([idxcol, codecol]).size()
        for (i, code), n in g.items():
            for r in ref_levels(int(code)):
                rows.append((int(i), r, side, int(n)))
    df = pd.DataFrame(rows, columns=["index", "roi", "side", "n"])
    return df.pivot_table(index=["index", "roi"], columns="side", values="n", aggfunc="sum", fill_value=0).reset_index()


def ref_mask_rois(s, rois=(), inputRois=(), outputRois=(), min_in=1, min_out=1, req="all") -> np.ndarray:
    rc = ref_roi_counts(s)
    n = len(s.neurons)
    rois = sorted(set(rois) | set(inputRois) | set(outputRois))
    ok = np.ones(n, dtype=bool)

    def count(sel):
        c = np.zeros(n, dtype=int)
        np.add.at(c, sel["index"].to_numpy(), 1)
        return c

    if rois:
        sel = rc[rc["roi"].isin(rois) & ((rc["pre"] + rc["post"]) > 0)]
        ok &= count(sel) >= (len(rois) if req == "all" else 1)
    if inputRois:
        sel = rc[rc["roi"].isin(inputRois) & (rc["post"] >= min_in)]
        ok &= count(sel) >= (len(inputRois) if req == "all" else 1)
    if outputRois:
        sel = rc[rc["roi"].isin(outputRois) & (rc["pre"] >= min_out)]
        ok &= count(sel) >= (len(outputRois) if req == "all" else 1)
    return ok


@pytest.fixture(params=["index", "aggregate"])
def roi_path(request, monkeypatch):
    """Run ROI criteria through the index reads and through aggregate.neuron_roi_counts."""
    if request.param == "aggregate":
        from connectome_dask.compute import plan as P

        monkeypatch.setattr(P, "INDEX_ROWS_LIMIT", -1)
    return request.param


def _fullmatch(series: pd.Series, pat: str) -> np.ndarray:
    return np.array([isinstance(v, str) and re.fullmatch(pat, v) is not None for v in series.astype(object).where(series.notna(), None)])


def test_regex_guess_rules():
    assert NeuronCriteria(type="KC.*").regex is True
    assert NeuronCriteria(type="KC(ab)").regex is False  # parentheses alone are not regex
    assert NeuronCriteria(instance="a+b").regex is True
    assert NeuronCriteria(type="KC", instance="x[12]").regex is True
    assert NeuronCriteria(type="KC.*", regex=False).regex is False
    for pat in ["A\\d", "A.", "A?", "[AB]", "A+", "^A", "A$", "A*"]:
        assert NeuronCriteria(type=pat).regex is True, pat
    for pat in ["A(B)", "A-B", "A_B", "A B", "A/B", "A'B"]:
        assert NeuronCriteria(type=pat).regex is False, pat


def test_type_instance_or_and_fullmatch(small_store):
    s, n = small_store, small_store.neurons
    got = NeuronCriteria(type="KC.*").mask(s.conn)
    assert np.array_equal(got, _fullmatch(n["type"], "KC.*"))
    assert got.sum() > 0
    # full-string match: "KC" matches nothing, "MBON0." matches MBON01/02
    assert NeuronCriteria(type="KC", regex=True).mask(s.conn).sum() == 0
    got = NeuronCriteria(type="MBON0.", instance="PN.a_R").mask(s.conn)
    ref = _fullmatch(n["type"], "MBON0.") | _fullmatch(n["instance"], "PN.a_R")
    assert np.array_equal(got, ref)
    # exact (non-regex) with parentheses
    got = NeuronCriteria(type="KC(ab)").mask(s.conn)
    assert np.array_equal(got, (n["type"] == "KC(ab)").fillna(False).to_numpy())
    # list of exact values
    got = NeuronCriteria(type=["APL", "EPG"]).mask(s.conn)
    assert np.array_equal(got, n["type"].isin(["APL", "EPG"]).fillna(False).to_numpy())


def test_and_of_other_fields(small_store):
    s, n = small_store, small_store.neurons
    got = NeuronCriteria(type="KC.*", status="Traced", min_pre=100, min_post=50).mask(s.conn)
    c = s.conn.neurons
    ref = _fullmatch(n["type"], "KC.*") & (n["status"] == "Traced").fillna(False).to_numpy()
    ref &= (c["pre"].to_numpy() >= 100) & (c["post"].to_numpy() >= 50)
    assert np.array_equal(got, ref)


def test_cropped_false_matches_missing(small_store):
    s, n = small_store, small_store.neurons
    cr = n["cropped"]
    f = NeuronCriteria(cropped=False).mask(s.conn)
    t = NeuronCriteria(cropped=True).mask(s.conn)
    assert np.array_equal(f, (cr.isna() | (cr == False)).to_numpy(dtype=bool))  # noqa: E712
    assert np.array_equal(t, (cr == True).fillna(False).to_numpy(dtype=bool))  # noqa: E712
    assert cr.isna().sum() > 0 and (f & cr.isna().to_numpy()).sum() == cr.isna().sum()


def test_null_matching(small_store):
    s, n = small_store, small_store.neurons
    isna = n["type"].isna().to_numpy()
    assert np.array_equal(NeuronCriteria(type=IsNull).mask(s.conn), isna)
    assert np.array_equal(NeuronCriteria(type=[None]).mask(s.conn), isna)
    assert np.array_equal(NeuronCriteria(type=NotNull).mask(s.conn), ~isna)
    got = NeuronCriteria(status=["Orphan", None]).mask(s.conn)
    assert np.array_equal(got, (n["status"].isna() | (n["status"] == "Orphan")).to_numpy(dtype=bool))
    got = NeuronCriteria(type=["APL", None]).mask(s.conn)
    assert np.array_equal(got, (n["type"].isna() | (n["type"] == "APL")).to_numpy(dtype=bool))
    with pytest.raises(CriteriaError, match="NotNull"):
        NeuronCriteria(type=[NotNull, "APL"])


def test_other_columns_by_name(small_store):
    s, n = small_store, small_store.neurons
    got = NeuronCriteria(class_="intrinsic", somaSide="_L").mask(s.conn)
    ref = ((n["class"] == "intrinsic") & (n["somaSide"] == "_L")).fillna(False).to_numpy(dtype=bool)
    assert np.array_equal(got, ref)
    assert np.array_equal(NeuronCriteria(**{"class": IsNull}).mask(s.conn), n["class"].isna().to_numpy())
    with pytest.raises(UnknownColumnError, match="somaLocation"):
        NeuronCriteria(somaLocation=NotNull).mask(s.conn)


def test_body_ids(small_store):
    s, n = small_store, small_store.neurons
    ids = n["bodyId"].iloc[[5, 3, 77]].tolist() + [1]  # unknown ID matches nothing
    got = NeuronCriteria(bodyId=ids).indices(s.conn)
    assert got.tolist() == [3, 5, 77]
    assert got.dtype == np.int32


@pytest.mark.parametrize(
    "kw",
    [
        dict(rois=["MB"]),
        dict(rois=["MB_CA", "FB"], roi_req="any"),
        dict(rois=["MB_CA", "FB"]),
        dict(inputRois=["CX"], min_roi_inputs=20),
        dict(outputRois=["OL_R", "AL_R"], min_roi_outputs=5, roi_req="any"),
        dict(inputRois=["LH_R"], outputRois=["ME_R"], min_roi_inputs=3, min_roi_outputs=2),
    ],
)
def test_roi_criteria(small_store, roi_path, kw):
    s = small_store
    ref = ref_mask_rois(
        s, kw.get("rois", ()), kw.get("inputRois", ()), kw.get("outputRois", ()),
        kw.get("min_roi_inputs", 1), kw.get("min_roi_outputs", 1), kw.get("roi_req", "all"),
    )
    got = NeuronCriteria(**kw).mask(s.conn)
    assert np.array_equal(got, ref)
    assert 0 < ref.sum() < len(ref)
    # combined with a cheap condition (index path on candidates only)
    got = NeuronCriteria(type="KC.*", **kw).mask(s.conn)
    assert np.array_equal(got, ref & _fullmatch(s.neurons["type"], "KC.*"))


def test_roi_errors(small_store):
    with pytest.raises(UnknownRoiError) as e:
        NeuronCriteria(rois=["NOPE"]).mask(small_store.conn)
    assert "NOPE" in str(e.value) and "MB_CA" in str(e.value)
    with pytest.raises(UnknownRoiError, match="valid ROIs"):
        NeuronCriteria(inputRois=["MB", "XX"], client=small_store.conn)
    with pytest.raises(CriteriaError, match="min_roi_inputs"):
        NeuronCriteria(min_roi_inputs=3)
    with pytest.raises(CriteriaError, match="superset"):
        NeuronCriteria(rois=["MB"], inputRois=["FB"])
    with pytest.raises(CriteriaError, match="roi_req"):
        NeuronCriteria(rois=["MB"], roi_req="some")


def test_bad_input_errors():
    with pytest.raises(CriteriaError, match=r"\[ab"):
        NeuronCriteria(type="KC[ab")
    with pytest.raises(CriteriaError, match="matchvar"):
        NeuronCriteria("MBON01")
    with pytest.raises(CriteriaError, match="bodyId"):
        NeuronCriteria(bodyId=["x"])
    with pytest.raises(CriteriaError, match="cropped"):
        NeuronCriteria(cropped="yes")
    with pytest.raises(CriteriaError, match="min_pre"):
        NeuronCriteria(min_pre=1.5)


def test_copy_as_neuroncriteria():
    assert copy_as_neuroncriteria(5).bodyId == [5]
    assert copy_as_neuroncriteria(np.int64(5)).bodyId == [5]
    assert copy_as_neuroncriteria([1, 2]).bodyId == [1, 2]
    assert copy_as_neuroncriteria(np.array([3, 4])).bodyId == [3, 4]
    c = copy_as_neuroncriteria("APL")
    assert c.type == ["APL"] and c.instance == ["APL"] and c.regex is False
    c = copy_as_neuroncriteria(["A.*", "B"])
    assert c.type == ["A.*", "B"] and c.regex is True
    assert copy_as_neuroncriteria(pd.DataFrame({"bodyId": [7, 8]})).bodyId == [7, 8]
    assert copy_as_neuroncriteria(None).is_everything
    orig = NeuronCriteria(type="X")
    cp = copy_as_neuroncriteria(orig)
    assert cp == orig and cp is not orig
    for bad in ([], [None], 1.5, {"a": 1}, pd.DataFrame({"x": [1]})):
        with pytest.raises(CriteriaError):
            copy_as_neuroncriteria(bad)


def test_roi_model_formats():
    names = ["A", "B", "C"]
    forms = [
        {"P": {"A": {}, "B": {}}},
        {"P": ["A", "B"]},
        {"A": "P", "B": "P"},
        {"name": "brain", "children": [{"name": "P", "children": [{"name": "A"}, {"name": "B"}]}, {"name": "C"}]},
    ]
    for h in forms:
        m = RoiModel({"names": names, "hierarchy": h})
        assert m.all_rois == ["A", "B", "C", "P"]
        assert m.primary == ["A", "B", "C"]
        assert m.codes_for("P").tolist() == [0, 1]
        assert m.primary_name_of_code().tolist() == [None, "A", "B", "C"]
    with pytest.raises(CriteriaError, match="cycle"):
        RoiModel({"names": ["A"], "hierarchy": {"A": "B", "B": "A"}})


def test_store_roi_model(small_store):
    assert small_store.conn.roi_names == ROI_NAMES
    m = RoiModel.of(small_store.conn)
    assert m.primary == sorted(ROI_PRIMARY)
    assert set(m.all_rois) == set(ROI_NAMES) | {"MB", "CX"}
    for code in range(-1, len(ROI_NAMES)):
        lut_names = [r for r in m.all_rois if m.code_lut([r])[code + 1]]
        assert sorted(lut_names) == sorted(ref_levels(code))


def test_synapse_criteria(small_store):
    conn = small_store.conn
    with pytest.raises(CriteriaError, match="synapse type"):
        SynapseCriteria(type="both")
    with pytest.raises(CriteriaError, match="primary_only=False"):
        SynapseCriteria(rois=["MB"], client=conn)
    SynapseCriteria(rois=["MB"], primary_only=False, client=conn)
    with pytest.raises(UnknownRoiError, match="valid ROIs"):
        SynapseCriteria(rois=["ZZ"], client=conn)
    sc = SynapseCriteria(rois=["CX"], confidence=0.5, primary_only=False)
    code = np.array([-1, 5, 6, 3, 5])
    conf = np.array([0.9, 0.9, 0.5, 0.9, 0.2])
    assert sc.site_mask(conn, code, conf).tolist() == [False, True, False, False, False]
    assert SynapseCriteria().threshold(conn) is None  # store default 0.0 = no filter
    assert SynapseCriteria(confidence=0.3).threshold(conn) == 0.3


@pytest.mark.parametrize("form", ["nested", "parent-lists", "child-parent", "neuprint"])
def test_every_hierarchy_form_gives_the_same_tree(tmp_path, form):
    """rois.json may hold the hierarchy in any of four forms: fetch_roi_hierarchy and RoiModel agree."""
    import numpy as np
    import pandas as pd

    from connectome_dask.criteria import RoiModel
    from connectome_dask.rois import fetch_roi_hierarchy
    from connectome_dask.store import StoreWriter

    names = ["CX", "EB", "FB", "AL"]
    h = {
        "nested": {"CX": {"EB": {}, "FB": {}}, "AL": {}},
        "parent-lists": {"CX": ["EB", "FB"], "AL": []},
        "child-parent": {"EB": "CX", "FB": "CX"},
        "neuprint": {"name": "mini", "children": [
            {"name": "CX", "children": [{"name": "EB"}, {"name": "FB"}]}, {"name": "AL"}]},
    }[form]
    with StoreWriter(tmp_path / "s", 2, {"roi_post": "int16"}) as w:
        w.append({"pre": np.array([0]), "post": np.array([1]), "roi_post": np.array([1])})
        conn = w.close(pd.DataFrame({"bodyId": [1, 2]}), {"name": "mini"},
                       rois={"names": names, "primary": ["EB", "FB", "AL"], "hierarchy": h})
    # the tree written out by hand: CX holds EB and FB, AL stands alone, primary ROIs starred
    assert fetch_roi_hierarchy(client=conn) == {"mini": {"AL*": {}, "CX": {"EB*": {}, "FB*": {}}}}
    m = RoiModel(conn.roi_info)
    assert sorted(m.children["CX"]) == ["EB", "FB"] and m.parent == {"EB": "CX", "FB": "CX"}
