"""connectome_dask.neuprint.NeuronCriteria against neuprint.NeuronCriteria: what each accepts,
rejects, guesses and coerces (construction needs no server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import connectome_dask.neuprint as ours
from connectome_dask.neuprint.neuroncriteria import copy_as_neuroncriteria as our_copy

neuprint = pytest.importorskip("neuprint")
from neuprint.queries.neuroncriteria import copy_as_neuroncriteria as np_copy  # noqa: E402


def _ours_kw(kw: dict) -> dict:
    return {k: (ours.NotNull if v is neuprint.NotNull else ours.IsNull if v is neuprint.IsNull else v)
            for k, v in kw.items()}


def _same(a, b) -> None:
    """The attributes neuprint-python keeps, compared as it keeps them."""
    for k in ("bodyId", "type", "instance", "status"):
        assert [repr(x) for x in getattr(a, k)] == [repr(x) for x in getattr(b, k)], k
    for k in ("rois", "inputRois", "outputRois"):
        assert set(getattr(a, k)) == set(getattr(b, k)), k
    for k in ("regex", "label", "roi_req", "min_roi_inputs", "min_roi_outputs", "cropped", "min_pre",
              "min_post", "matchvar"):
        assert getattr(a, k) == getattr(b, k), k


ACCEPTED = [
    {},
    dict(bodyId=387023620),
    dict(bodyId=[387023620, 387364605]),
    dict(bodyId=np.array([1, 2], dtype=np.uint64)),
    dict(bodyId=pd.Series([5, 6])),
    dict(type="PEN_b(PEN2)"),
    dict(type="PEN.*"),
    dict(type="PEN(PB06)_b_L4"),  # parentheses alone: no regex
    dict(instance=["a", "b.c"]),
    dict(type=[None, "EPG"]),
    dict(type=None),
    dict(type="EPG", regex=False),
    dict(type="EPG", regex=True),
    dict(flywireType="DNa0[12]"),
    dict(hemibrainType="MBON.*"),
    dict(mancType="IN12A.+"),
    dict(mancType="IN12A"),
    dict(status="Traced"),
    dict(status=["Traced", None]),
    dict(cropped=False),
    dict(cropped="yes"),  # neuprint-python does not check cropped
    dict(min_pre=1.5, min_post=10),  # ... nor the thresholds
    dict(rois=["PB", "EB"]),
    dict(inputRois=["PB"], min_roi_inputs=100, status="Traced", cropped=False),
    dict(outputRois="EB", min_roi_outputs=5),
    dict(rois=["PB", "EB"], inputRois=["PB"], outputRois=["EB"], roi_req="any"),
    dict(label="Segment"),
    dict(label="Neuron", bodyId=[1]),
    dict(bodyId=[1, 2], type="EPG"),
    dict(somaLocation=neuprint.NotNull),
    dict(somaLocation=neuprint.IsNull),
    dict(group=[10, 11], serial=3),
    dict(cellBodyFiber="PDM22"),
    dict(class_="DN"),
    dict(matchvar="m2"),
]


@pytest.mark.parametrize("kw", ACCEPTED, ids=repr)
def test_accepted_like_neuprint(kw):
    matchvar = kw.pop("matchvar", "n")
    b = neuprint.NeuronCriteria(matchvar, **kw)
    a = ours.NeuronCriteria(matchvar, **_ours_kw(kw))
    _same(a, b)


REJECTED = [
    ("MBON01", {}),  # a type passed by position
    ("", {}),
    ("n-1", {}),
    (5, {}),
    ("n", dict(bodyId=[1, None])),
    ("n", dict(bodyId=["1"])),
    ("n", dict(bodyId=1.5)),
    ("n", dict(type=5)),
    ("n", dict(instance=[1.0])),
    ("n", dict(regex="yes")),
    ("n", dict(roi_req="some")),
    ("n", dict(min_roi_inputs=5)),
    ("n", dict(min_roi_outputs=2)),
    ("n", dict(rois=["PB"], inputRois=["EB"])),
    ("n", dict(rois=["PB"], outputRois=["EB"])),
    ("n", dict(label="Body")),
    ("n", dict(somaLocation=[1, 2, 3])),
    ("n", dict(soma="yes")),
    ("n", dict(group=["a"])),
]


@pytest.mark.parametrize(("matchvar", "kw"), REJECTED, ids=repr)
def test_rejected_like_neuprint(matchvar, kw):
    with pytest.raises(AssertionError):
        neuprint.NeuronCriteria(matchvar, **kw)
    with pytest.raises(AssertionError):  # NeuronCriteriaError is also an AssertionError ...
        ours.NeuronCriteria(matchvar, **_ours_kw(kw))
    with pytest.raises(ValueError):  # ... and the package's CriteriaError (a ValueError)
        ours.NeuronCriteria(matchvar, **_ours_kw(kw))


def test_soma_with_somalocation():
    # neuprint-python's check asserts "soma needs somaLocation" while its message says "not both";
    # we do what the message says (README: remaining differences)
    with pytest.raises(AssertionError):
        neuprint.NeuronCriteria(soma=True)
    ours.NeuronCriteria(soma=True)
    with pytest.raises(AssertionError):
        ours.NeuronCriteria(soma=True, somaLocation=ours.NotNull)


COERCED = [
    None, 387023620, np.int64(5), [1, 2], (1, 2), np.array([3, 4]), pd.Series([7, 8]),
    "EPG", ["EPG", "PEN.*"], pd.DataFrame({"bodyId": [1, 2]}), ["x", None],
]


@pytest.mark.parametrize("obj", COERCED, ids=lambda o: type(o).__name__ + ":" + repr(o)[:20])
def test_copy_as_neuroncriteria_like_neuprint(obj):
    _same(our_copy(obj), np_copy(obj))


@pytest.mark.parametrize("obj", [[], [None], [None, 5], 1.5, True, {"a": 1}, object(),
                                 pd.DataFrame({"x": [1]})],
                         ids=lambda o: "object()" if type(o) is object else repr(o))  # no address in the id
def test_copy_as_neuroncriteria_rejects_like_neuprint(obj):
    with pytest.raises((RuntimeError, AssertionError, KeyError)):
        np_copy(obj)
    with pytest.raises((RuntimeError, AssertionError)):  # NeuronCriteriaError is both
        our_copy(obj)


def test_copy_keeps_criteria_and_label_default():
    nc = ours.NeuronCriteria(type="EPG", status="Traced")
    c = our_copy(nc)
    assert c is not nc and c == nc and c.label == "Neuron"
    assert our_copy([1, 2]).label == "Segment" == np_copy([1, 2]).label
    # neuprint-python's SegmentCriteria is an alias of NeuronCriteria (label default 'Neuron')
    assert ours.SegmentCriteria(type="EPG").label == neuprint.SegmentCriteria(type="EPG").label == "Neuron"


def test_regex_fields_match_as_regex_on_a_store(tmp_path):
    """flywireType / hemibrainType / mancType are regex-guessed (as neuprint) and matched as full regexes."""
    import connectome_dask as cd

    neurons = pd.DataFrame({"bodyId": [1, 2, 3, 4], "type": ["A", "B", "C", "D"],
                            "mancType": ["IN12A001", "IN12A", "DNa01", None],
                            "flywireType": ["DNa01", "DNa02", "DNa03", "x.y"]})
    syn = pd.DataFrame({"pre": np.array([0, 1, 2, 3], np.int32), "post": np.array([1, 2, 3, 0], np.int32)})
    conn = cd.write_store(tmp_path / "rx", neurons, syn, {"name": "rx"})

    def ids(**kw):
        nc = ours.NeuronCriteria(label="Segment", **kw)
        assert nc.regex == neuprint.NeuronCriteria(label="Segment", **kw).regex
        return conn.neurons.bodyId[nc.mask(conn)].tolist()

    assert ids(mancType="IN12A.+") == [1]  # regex guessed: '.+' needs more characters
    assert ids(mancType="IN12A") == [2]  # exact
    assert ids(flywireType="DNa0[12]") == [1, 2]
    assert ids(flywireType="x.y", regex=False) == [4]  # exact despite the '.'


def test_synapse_criteria_checks_like_neuprint(small_store):
    """neuprint-python checks SynapseCriteria against its client when constructed (it needs one)."""
    conn = small_store.conn
    assert ours.SynapseCriteria(rois="EB", type="pre", client=conn).rois == ["EB"]
    assert ours.SynapseCriteria(type="", client=conn).type is None  # a false type is None, as upstream
    for kw in (dict(type="tbar"), dict(rois=["nowhere"]), dict(rois=["CX"])):  # CX: not primary
        with pytest.raises(AssertionError):
            ours.SynapseCriteria(client=conn, **kw)
    assert ours.SynapseCriteria(rois=["CX"], primary_only=False, client=conn).primary_only is False
