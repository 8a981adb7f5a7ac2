"""``connectome_dask.crantpy`` is crantpy's ``crantpy.queries`` namespace: names, signatures, defaults."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import connectome_dask as cd
import connectome_dask.crantpy as cp
from connectome_dask.crantpy import queries

_ = inspect.Parameter.empty
# crantpy's signatures as its API reference lists them: (name, default), in positional order
CRANTPY = {
    "get_synapses": [("pre_ids", None), ("post_ids", None), ("threshold", 1), ("min_size", None),
                     ("materialization", "latest"), ("return_pixels", True), ("clean", True),
                     ("update_ids", True), ("dataset", None)],
    "get_adjacency": [("pre_ids", None), ("post_ids", None), ("threshold", 1), ("min_size", None),
                      ("materialization", "latest"), ("symmetric", False), ("clean", True), ("update_ids", True),
                      ("dataset", None)],
    "get_connectivity": [("neuron_ids", _), ("upstream", True), ("downstream", True), ("threshold", 1),
                         ("min_size", None), ("materialization", "latest"), ("clean", True), ("update_ids", True),
                         ("dataset", None)],
    "get_synapse_counts": [("neuron_ids", _), ("threshold", 1), ("min_size", None), ("materialization", "latest"),
                           ("clean", True), ("update_ids", True), ("dataset", None)],
    "attach_synapses": [("neurons", _), ("pre", True), ("post", True), ("threshold", 1), ("min_size", None),
                        ("materialization", "latest"), ("clean", True), ("max_distance", 10000.0),
                        ("update_ids", True), ("dataset", None)],
    "NestedMatrix.from_connectivity": [("connections_df", _), ("neuron_annotations", _),
                                       ("cell_type_column", "cell_type"), ("neuron_id_column", "root_id"),
                                       ("type_order", None), ("annotation_scope", "annotated_only")],
    "NestedMatrix.from_synapses": [("synapses_df", _), ("neuron_annotations", _), ("pre_col", "pre_pt_root_id"),
                                   ("post_col", "post_pt_root_id"), ("weight_mode", "relative_outgoing"),
                                   ("weight_column", None), ("cell_type_column", "cell_type"),
                                   ("neuron_id_column", "root_id"), ("type_order", None),
                                   ("annotation_scope", "annotated_only")],
    "NestedMatrix.from_synapses_by_neuropil": [
        ("synapses_df", _), ("neuron_annotations", _), ("neuropil_names", None), ("coordinates", "nm"),
        ("position_column", "ctr_pt_position"), ("pre_col", "pre_pt_root_id"), ("post_col", "post_pt_root_id"),
        ("weight_mode", "relative_outgoing"), ("weight_column", None), ("cell_type_column", "cell_type"),
        ("neuron_id_column", "root_id"), ("type_order", None), ("annotation_scope", "annotated_only"),
        ("include_other", True), ("voxel_offset", None)],
    "DirectedNestedMatrix.from_connectivity": [
        ("connections_df", _), ("neuron_annotations", _), ("source_types", None), ("target_types", None),
        ("source_neurons", None), ("target_neurons", None), ("cell_type_column", "cell_type"),
        ("neuron_id_column", "root_id"), ("type_order", None), ("source_type_order", None),
        ("target_type_order", None), ("annotation_scope", "annotated_only")],
    "DirectedNestedMatrix.from_synapses": [
        ("synapses_df", _), ("neuron_annotations", _), ("source_types", None), ("target_types", None),
        ("source_neurons", None), ("target_neurons", None), ("pre_col", "pre_pt_root_id"),
        ("post_col", "post_pt_root_id"), ("weight_mode", "relative_outgoing"), ("weight_column", None),
        ("normalization_scope", "selected"), ("cell_type_column", "cell_type"), ("neuron_id_column", "root_id"),
        ("type_order", None), ("source_type_order", None), ("target_type_order", None),
        ("annotation_scope", "annotated_only")],
    "DirectedNestedMatrix.from_synapses_by_neuropil": [
        ("synapses_df", _), ("neuron_annotations", _), ("neuropil_names", None), ("coordinates", "nm"),
        ("position_column", "ctr_pt_position"), ("source_types", None), ("target_types", None),
        ("source_neurons", None), ("target_neurons", None), ("pre_col", "pre_pt_root_id"),
        ("post_col", "post_pt_root_id"), ("weight_mode", "relative_outgoing"), ("weight_column", None),
        ("normalization_scope", "selected"), ("cell_type_column", "cell_type"), ("neuron_id_column", "root_id"),
        ("type_order", None), ("source_type_order", None), ("target_type_order", None),
        ("annotation_scope", "annotated_only"), ("include_other", True), ("voxel_offset", None)],
    "NestedMatrix.plot": [("output_path", None), ("level", "neuron"), ("figsize", (16, 14)),
                          ("show_neuron_labels", False), ("vmin_percentile", 0.0), ("vmax_percentile", 100.0),
                          ("min_neurons_for_plot", 1), ("linewidth_scale", 1.0)],
    "NestedMatrix.get_relative_weights": [("by_type", False)],
}


def _resolve(name):
    obj = cp
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("name", sorted(CRANTPY))
def test_crantpys_positional_signature_and_defaults(name):
    params = [p for p in inspect.signature(_resolve(name)).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "cls")]
    assert [p.name for p in params] == [n for n, _ in CRANTPY[name]]
    for p, (n, default) in zip(params, CRANTPY[name], strict=True):
        if default is not _:  # a required crantpy argument may be optional here (a store needs no annotations)
            assert p.default == default, n


def test_the_namespace_has_crantpys_names_and_the_same_classes():
    names = ["NestedMatrix", "DirectedNestedMatrix", "NeuropilCollection", "All", "attach_synapses",
             "get_adjacency", "get_connectivity", "get_synapse_counts", "get_synapses"]
    assert set(names) <= set(cp.__all__) and set(names) <= set(queries.__all__)
    assert cp.NestedMatrix is cd.NestedMatrix and queries.All is cp.All
    assert (cp.SCALE_X, cp.SCALE_Y, cp.SCALE_Z) == (8.0, 8.0, 42.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(3)
    n, k = 12, 400
    neurons = pd.DataFrame({"bodyId": np.arange(1, n + 1, dtype=np.int64) * 10, "type": ["A", "B", "C"] * 4})
    s = pd.DataFrame({"pre": rng.integers(0, n, k).astype(np.int32), "post": rng.integers(0, n, k).astype(np.int32)})
    for c in ("x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"):
        s[c] = rng.uniform(0, 2000, k).astype(np.float32)
    return cd.write_store(tmp_path_factory.mktemp("ns") / "s", neurons, s, {"name": "ns"}, chunk_rows=128)


def test_get_synapses_server_arguments_and_pixels(store):
    nm = cp.get_synapses(pre_ids=[10], return_pixels=False, materialization="live", update_ids=False,
                         dataset=store)
    px = cp.get_synapses([10], None, 1, None, "latest", True, True, True, str(store.path))
    base = cd.get_synapses(pre_ids=[10], client=store)
    assert nm["id"].tolist() == px["id"].tolist() == base["id"].tolist()
    want = np.floor(base[["pre_pt_position_x", "pre_pt_position_y", "pre_pt_position_z"]].to_numpy(np.float64)
                    / np.array([8.0, 8.0, 42.0])).astype(np.int64)
    np.testing.assert_array_equal(np.vstack(px["pre_pt_position"].to_numpy()), want)
    np.testing.assert_allclose(np.vstack(nm["post_pt_position"].to_numpy()),
                               base[["post_pt_position_x", "post_pt_position_y", "post_pt_position_z"]])
    with pytest.raises(ValueError):
        cp.get_synapses(dataset=store)
    with pytest.raises(TypeError):
        cp.get_synapses([10], dataset=3.5)


def test_query_functions_match_the_store_functions(store):
    pd.testing.assert_frame_equal(cp.get_connectivity(20, dataset=store), cd.get_connectivity(20, client=store))
    pd.testing.assert_frame_equal(cp.get_adjacency([10, 20], [30], dataset=store),
                                  cd.get_adjacency([10, 20], [30], client=store))
    pd.testing.assert_frame_equal(cp.get_synapse_counts([20, 10], dataset=store),
                                  cd.get_synapse_counts([20, 10], client=store))
    with pytest.raises(ValueError):
        cp.get_connectivity(20, upstream=False, downstream=False, dataset=store)


def test_attach_synapses_nearest_node_and_errors(store):
    rng = np.random.default_rng(0)
    nodes = pd.DataFrame({"node_id": np.arange(1, 41), "x": rng.uniform(0, 2000, 40), "y": rng.uniform(0, 2000, 40),
                          "z": rng.uniform(0, 2000, 40)})
    n = SimpleNamespace(id=20, nodes=nodes)
    assert cp.attach_synapses(n, dataset=store, max_distance=150.0) is n
    con = n.connectors
    assert con.columns.tolist() == ["connector_id", "x", "y", "z", "type", "partner_id", "node_id"]
    syn = cd.get_synapses(pre_ids=[20], client=store)
    pre = con[con["type"] == "pre"]
    # brute force: nearest node of each presynapse, kept when within max_distance
    p = syn[["pre_pt_position_x", "pre_pt_position_y", "pre_pt_position_z"]].to_numpy(np.float64)
    d = np.linalg.norm(p[:, None, :] - nodes[["x", "y", "z"]].to_numpy()[None], axis=2)
    near = d.argmin(1)
    keep = d.min(1) <= 150.0
    assert pre["node_id"].tolist() == nodes["node_id"].to_numpy()[near[keep]].tolist()
    assert pre["partner_id"].tolist() == syn["post_pt_root_id"][keep].tolist()
    assert con["connector_id"].tolist() == list(range(len(con)))
    assert set(con["type"]) <= {"pre", "post"}
    with pytest.raises(ValueError):
        cp.attach_synapses(n, pre=False, post=False, dataset=store)
    with pytest.raises(TypeError):
        cp.attach_synapses([object()], dataset=store)
