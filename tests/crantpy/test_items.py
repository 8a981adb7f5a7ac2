"""One test per difference of issue 15 (each failed before the fix), against crantpy's rules.

The expected values are written out from crantpy's documented rules (see
``tests/crantpy/_reference.py``), never taken from our own output.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import connectome_dask.crantpy as cp
from connectome_dask.matrix import DirectedNestedMatrix, NestedMatrix

from . import _reference as ref

PRE, POST = "pre_pt_root_id", "post_pt_root_id"


def syn_df(pairs, **cols):
    d = {PRE: [a for a, _ in pairs], POST: [b for _, b in pairs]}
    d.update(cols)
    return pd.DataFrame(d)


# 1 -------------------------------------------------------------------------------------------
def test_1_annotated_only_neurons_come_from_rows_with_both_ends_annotated():
    # neuron 3 (annotated, type B) only connects to 9 (not annotated): crantpy drops the row, so 3 is not
    # in the matrix and the B block holds neuron 2 only
    syn = syn_df([(1, 2), (1, 2), (3, 9), (2, 1)])
    ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "B"]})
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    assert m.ordered_neurons == ("1", "2")
    assert dict(m.type_boundaries) == {"A": (0, 1), "B": (1, 2)}
    # mean over the A x B block: 2 synapses / (1 x 1) neuron pairs (3 would make it 2 / 2)
    assert m.mean_type_matrix.loc["A", "B"] == 2.0
    d = DirectedNestedMatrix.from_synapses(syn, ann, weight_mode="count")
    assert d.source_neurons == ("1", "2") and d.target_neurons == ("1", "2")


# 2 -------------------------------------------------------------------------------------------
def test_2_a_synapse_counts_in_every_listed_neuropil_that_contains_it():
    trimesh = pytest.importorskip("trimesh")
    from connectome_dask.rois import RoiSet

    # "glom" (1 nm cube) lies inside "AL" (4 nm cube); a third synapse is in neither
    rs = RoiSet.from_meshes({"AL": trimesh.creation.box((4, 4, 4)), "glom": trimesh.creation.box((1, 1, 1))})
    syn = syn_df([(1, 2), (1, 2), (2, 1)], ctr_pt_position=[[0.0, 0, 0], [1.5, 0, 0], [10.0, 0, 0]])
    ann = pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]})
    c = NestedMatrix.from_synapses_by_neuropil(syn, ann, rois=rs, weight_mode="count")
    assert list(c) == ["AL", "glom", "other"]
    assert c["AL"].matrix.loc["1", "2"] == 2.0  # both synapses are inside AL
    assert c["glom"].matrix.loc["1", "2"] == 1.0  # the one at the origin is in the glomerulus too
    assert c["other"].matrix.loc["2", "1"] == 1.0 and c["other"].matrix.loc["1", "2"] == 0.0
    only = NestedMatrix.from_synapses_by_neuropil(syn, ann, neuropil_names=["glom"], rois=rs, weight_mode="count")
    # "other" = in none of the listed ones: the synapse in AL but not in glom is "other" now
    assert only["other"].matrix.loc["1", "2"] == 1.0


def test_2_store_counts_a_listed_parent_roi_through_its_children(tmp_path):
    import connectome_dask as cd

    neurons = pd.DataFrame({"bodyId": [10, 20], "type": ["A", "B"]})
    s = pd.DataFrame({"pre": np.array([0, 0, 1], np.int32), "post": np.array([1, 1, 0], np.int32)})
    for c in ("x", "y", "z"):
        s[c] = np.float32(0)
    conn = cd.write_store(tmp_path / "s", neurons, s, {"name": "t"})

    def roi_cols(block):
        return {"roi_post": np.array([0, 1, -1], np.int16)[: len(block["x"])]}

    def write_rois(d):
        import json

        (d / "rois.json").write_text(json.dumps({"names": ["glomA", "glomB", "AL"], "primary": ["glomA", "glomB"],
                                                 "hierarchy": {"AL": ["glomA", "glomB"]}}))

    conn = conn.write_synapse_columns(roi_cols, inputs=["x"], outputs={"roi_post": "int16"},
                                      write_rois=write_rois, progress=False)
    c = NestedMatrix.from_synapses_by_neuropil(conn, neuropil_names=["AL", "glomA"], weight_mode="count",
                                               progress=False)
    assert c["AL"].matrix.loc["10", "20"] == 2.0 and c["glomA"].matrix.loc["10", "20"] == 1.0
    assert list(c) == ["AL", "glomA", "other"] and c["other"].matrix.loc["20", "10"] == 1.0


# 3 -------------------------------------------------------------------------------------------
class XRois:
    """ROI "in" = x < 100 nm (duck-typed RoiSet)."""

    names = ["in"]

    def contains(self, points, name):
        return np.asarray(points)[:, 0] < 100


def test_3_pixels_use_crantpys_scale_and_voxel_offset():
    ann = pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]})
    # x = 12 px -> 96 nm (inside) with crantpy's 8 nm; with offset +1 px -> 104 nm (outside)
    syn = syn_df([(1, 2)], ctr_pt_position=[[12.0, 0, 0]])
    c = NestedMatrix.from_synapses_by_neuropil(syn, ann, coordinates="pixels", rois=XRois(), weight_mode="count")
    assert list(c) == ["in"]
    c = NestedMatrix.from_synapses_by_neuropil(syn, ann, coordinates="pixels", voxel_offset=(1, 0, 0),
                                               rois=XRois(), weight_mode="count")
    assert list(c) == ["other"]
    assert cp.SCALE == (8.0, 8.0, 42.0)
    old = cp.set_scale(10, 10, 40)  # 12 px -> 120 nm: outside
    try:
        c = NestedMatrix.from_synapses_by_neuropil(syn, ann, coordinates="pixels", rois=XRois(),
                                                   weight_mode="count")
        assert list(c) == ["other"]
    finally:
        cp.set_scale(*old)


# 4 -------------------------------------------------------------------------------------------
def test_4_epg_peg_order_reads_cell_instance_and_cell_subtype_only():
    ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["EPG/PEG"] * 3,
                        "instance": ["EPG_L8", "EPG_R2", "EPG_R1"]})
    syn = syn_df([(1, 2), (2, 3), (3, 1)])
    # no cell_instance / cell_subtype: annotation row order (instance is not read)
    assert NestedMatrix.from_synapses(syn, ann).ordered_neurons == ("1", "2", "3")
    ann2 = ann.rename(columns={"instance": "cell_subtype"})
    assert NestedMatrix.from_synapses(syn, ann2).ordered_neurons == ("3", "1", "2")  # R1, L8, R2


# 5 -------------------------------------------------------------------------------------------
def test_5_generators_as_selectors_and_type_orders_are_read_once_and_used():
    ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
    syn = syn_df([(1, 2), (1, 3), (2, 3)])
    d = DirectedNestedMatrix.from_synapses(
        syn, ann, source_types=(t for t in ["A"]), target_neurons=(n for n in [3]), weight_mode="count",
        type_order=(t for t in ["C"]),
    )  # fmt: skip
    assert d.source_neurons == ("1",) and d.target_neurons == ("3",)
    m = NestedMatrix.from_synapses(syn, ann, type_order=iter(["C", "B"]))
    assert list(m.type_boundaries) == ["C", "B", "A"]


# 6 -------------------------------------------------------------------------------------------
def test_6_id_deduplication_after_the_annotation_and_selector_filters():
    ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
    # id 7 first appears on a row with an unannotated neuron (9), then on 1 -> 2
    syn = syn_df([(9, 2), (1, 2), (1, 2)], id=[7, 7, 8])
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    assert m.matrix.loc["1", "2"] == 2.0  # rows of ids 7 (its second row) and 8
    # id 5 first appears on 1 -> 3 (filtered out by the target selector), then on 1 -> 2
    syn = syn_df([(1, 3), (1, 2)], id=[5, 5])
    d = DirectedNestedMatrix.from_synapses(syn, ann, target_types=["B"], weight_mode="count")
    assert d.matrix.loc["1", "2"] == 1.0


# 7 -------------------------------------------------------------------------------------------
def test_7_crantpys_warnings_and_info_on_the_connectome_dask_crantpy_logger(caplog):
    ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["EPG/PEG", "EPG/PEG", None],
                        "cell_subtype": ["EPG_R1", "odd", None]})
    syn = syn_df([(1, 2), (2, 3), (3, 9)])
    with caplog.at_level(logging.INFO, logger="connectome_dask.crantpy"):
        NestedMatrix.from_synapses(syn, ann, annotation_scope="all")
    recs = [r for r in caplog.records if r.name.startswith("connectome_dask.crantpy")]
    text = "\n".join(r.getMessage() for r in recs)
    assert "Could not resolve a ranked column label for neuron 2" in text
    assert "missing from annotations" in text and "'9'" in text
    assert "have annotation rows but missing cell_type" in text
    assert {r.levelname for r in recs} >= {"WARNING", "INFO"}
    assert "Building NestedMatrix from synapses" in text and "Constructed NestedMatrix with matrix_shape=(4, 4)" in text  # 1, 2, 3 and 9
    assert "Resolved type order: ['EPG/PEG']" in text and "Aggregated synapses into 3 weighted edge(s)" in text
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="connectome_dask.crantpy"):
        NestedMatrix.from_connectivity(pd.DataFrame([[0, 4], [2, 0]], index=[1, 2], columns=[1, 2]), ann.iloc[:1])
    assert "Filtered connectivity to neurons present in annotations: kept=1, removed=1" in caplog.text
    assert "Type EPG/PEG occupies ordered_neurons[0:1]" in caplog.text


# 8 -------------------------------------------------------------------------------------------
def test_8_crantpys_colormap_and_type_level_block_and_grid_lines():
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_hex

    ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
    m = NestedMatrix.from_synapses(syn_df([(1, 2), (2, 3), (3, 1)]), ann, weight_mode="count")
    fig, ax = m.plot(level="type_sum", figsize=(3, 3))
    cmap = ax.images[0].get_cmap()
    assert cmap.N == 100
    crantpy = ["#FFFFFF", "#D8B4E8", "#B366D0", "#8C1BB8", "#6A0DAD", "#4B0082", "#2E0054"]
    assert to_hex(cmap(0.0)).upper() == crantpy[0] and to_hex(cmap(1.0)).upper() == crantpy[-1]
    assert to_hex(cmap(4 / 6)).upper() == crantpy[4]
    cols = [c for c in ax.collections if isinstance(c, LineCollection)]
    # outer frame, white + black block outlines (3 types x 4 sides), white + black grid (2 inner x 2 axes)
    assert [len(c.get_segments()) for c in cols] == [4, 12, 12, 4, 4]
    plt.close(fig)


# 9 -------------------------------------------------------------------------------------------
def test_9_errors_and_accepted_inputs_as_crantpy():
    ann = pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]})
    syn = syn_df([(1, 2)])
    from connectome_dask.errors import ConnectomeDaskError, UnknownColumnError

    with pytest.raises(ValueError, match="weight_column 'w' not found") as e:
        NestedMatrix.from_synapses(syn, ann, weight_mode="column", weight_column="w")
    assert isinstance(e.value, ConnectomeDaskError)
    with pytest.raises(KeyError) as k:  # crantpy: a missing ID column is a KeyError
        NestedMatrix.from_synapses(syn, ann, pre_col="nope")
    assert isinstance(k.value, UnknownColumnError)
    with pytest.raises(ValueError, match="weight_mode"):
        NestedMatrix.from_synapses(syn, ann, weight_mode="sum")
    # numeric strings and object columns in an adjacency matrix are numbers
    adj = pd.DataFrame({1: ["0", "3"], 2: ["5", None]}, index=[1, 2], dtype=object)
    m = NestedMatrix.from_connectivity(adj, ann)
    assert m.matrix.loc["1", "2"] == 5.0 and m.matrix.loc["2", "1"] == 3.0
    with pytest.raises(ValueError):
        NestedMatrix.from_connectivity(pd.DataFrame({1: ["x"]}, index=[1]), ann)
    # a block named "None" holding neurons whose type is None (crantpy compares str(type))
    frame = pd.DataFrame(np.zeros((2, 2)), index=["1", "2"], columns=["1", "2"])
    m = NestedMatrix(frame, {"None": (0, 2)}, ["1", "2"], {"1": None, "2": None})
    assert dict(m.type_boundaries) == {"None": (0, 2)} and dict(m.neuron_to_type) == {"1": None, "2": None}


# 10 ------------------------------------------------------------------------------------------
def test_10_neuron_to_type_in_annotation_order_and_repr_lists_every_type(tmp_path):
    ann = pd.DataFrame({"root_id": [5, 1, 4, 2], "cell_type": ["B", "A", "B", "A"]})
    syn = syn_df([(1, 2), (2, 4), (4, 5), (5, 1)])
    m = NestedMatrix.from_synapses(syn, ann)
    assert m.ordered_neurons == ("1", "2", "5", "4")
    assert list(m.neuron_to_type.items()) == [(i, t) for i, t in ref.axis({"1", "2", "4", "5"}, ann)[2]]
    assert list(m.neuron_to_type) == ["5", "1", "4", "2"]
    from connectome_dask.matrix import open_matrix

    assert list(open_matrix(m.to_zarr(tmp_path / "m.zarr")).neuron_to_type) == ["5", "1", "4", "2"]
    types = [f"T{i}" for i in range(8)]
    ann = pd.DataFrame({"root_id": range(8), "cell_type": types})
    d = DirectedNestedMatrix.from_synapses(syn_df([(i, (i + 1) % 8) for i in range(8)]), ann)
    assert repr(d).endswith(f"source_types={types}, target_types={types})")
