"""Plots of nested matrices: PNGs are written and not blank; big matrices go through a raster."""

from __future__ import annotations

import dask
import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from connectome_dask.matrix import All, DirectedNestedMatrix, NestedMatrix, plot_type_heatmap  # noqa: E402
from connectome_dask.plotting import bin_matrix  # noqa: E402


def _not_blank(path) -> float:
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    return float(np.asarray(img[..., :3], dtype=np.float64).var())


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    syn = pd.DataFrame({"pre_pt_root_id": rng.integers(1, 41, 1500), "post_pt_root_id": rng.integers(1, 41, 1500)})
    syn["x"] = rng.uniform(0, 300, len(syn))
    ann = pd.DataFrame({"root_id": np.arange(1, 41), "cell_type": (["ER2", "ER10", "EPG/PEG", "Pbt"] * 10)})
    return syn, ann


@pytest.mark.parametrize("level", ["neuron", "type_mean", "type_sum"])
def test_plot_writes_non_blank_png(tmp_path, small, level):
    syn, ann = small
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    out = tmp_path / "sub" / f"{level}.png"
    fig, ax = m.plot(output_path=out, level=level, figsize=(5, 4), vmax_percentile=95, linewidth_scale=0.5)
    assert out.exists() and _not_blank(out) > 1e-4
    assert ax.get_xlabel() == "Postsynaptic" and ax.get_ylabel() == "Presynaptic"
    if level == "neuron":  # one tick label per type, centred on its block
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == list(m.type_boundaries)
        assert len(ax.collections) >= 3  # outer frame, block outlines, grid lines
    plt.close(fig)


def test_plot_options_and_errors(tmp_path, small):
    syn, ann = small
    ann = ann.copy()
    ann.loc[0, "cell_type"] = "Solo"  # one-neuron type, dropped by min_neurons_for_plot
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    fig, ax = m.plot(min_neurons_for_plot=2, show_neuron_labels=True, figsize=(5, 4))
    assert "1" not in [t.get_text() for t in ax.get_xticklabels()]
    assert len(ax.get_xticklabels()) == len(m.ordered_neurons) - 1
    plt.close(fig)
    with pytest.raises(ValueError, match="level"):
        m.plot(level="cells")
    with pytest.raises(ValueError, match="linewidth_scale"):
        m.plot(linewidth_scale=0)
    d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["ER2"], target_types=["Pbt", "ER10"])
    fig, ax = d.plot(output_path=tmp_path / "d.png", figsize=(5, 4))
    assert _not_blank(tmp_path / "d.png") > 1e-4
    plt.close(fig)


def test_collection_plot_all_minus(small):
    syn, ann = small

    class Rois:
        names = ["A", "B", "C"]

        def assign(self, p):
            return (np.asarray(p)[:, 0] // 100).astype(np.int16)

    col = NestedMatrix.from_synapses_by_neuropil(
        syn, ann, position_column=("x", "x", "x"), rois=Rois(), weight_mode="count", include_other=False
    )
    figs = col.plot(All.minus("B"), figsize=(4, 3))
    assert sorted(figs) == ["A", "C"]
    for fig, _ in figs.values():
        plt.close(fig)
    fig, _ = col.plot("B", figsize=(4, 3))
    plt.close(fig)
    with pytest.raises(KeyError, match="no neuropil"):
        col.plot("Z")


def test_bin_matrix_sums_sparse_and_dense():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    a = sp.random(5000, 3000, density=0.001, random_state=1, format="csr")
    r, scale = bin_matrix(a, max_pixels=100)
    assert r.shape == (100, 100) and scale == (50.0, 30.0)
    assert r.sum() == pytest.approx(a.sum())
    dense = a[:700, :1400].toarray()
    r2, _ = bin_matrix(dense, max_pixels=70)
    ref = dense.reshape(70, 10, 70, 20).sum(axis=(1, 3))
    np.testing.assert_allclose(r2, ref)
    d = rng.random((7, 5))
    np.testing.assert_allclose(bin_matrix(d, 10)[0], d)


def test_large_matrix_renders_through_raster_without_dense(tmp_path):
    """25 k neurons: the plot bins COO coordinates, never a dense 25k x 25k array."""
    rng = np.random.default_rng(2)
    n = 25_000
    ids = np.arange(1, n + 1)
    pre = rng.integers(1, n + 1, 60_000)
    post = (pre + rng.integers(-300, 300, len(pre))).clip(1, n)  # a diagonal band
    edges = pd.DataFrame({"pre": pre, "post": post})
    ann = pd.DataFrame({"root_id": ids, "cell_type": [f"T{i // 500}" for i in range(n)]})
    m = NestedMatrix.from_connectivity(edges, ann)
    out = tmp_path / "big.png"
    with dask.config.set({"connectome_dask.max_dense_bytes": 50_000_000}):  # 25k^2 * 8 B = 5 GB: would raise
        fig, ax = m.plot(output_path=out, figsize=(6, 5))
        images = ax.get_images()
        assert len(images) == 1 and images[0].get_array().shape == (2000, 2000)
        assert not ax.patches  # no per-cell patches
    assert _not_blank(out) > 1e-4
    plt.close(fig)


def test_type_heatmap_from_matrix_and_dataarray(tmp_path, small):
    syn, ann = small
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    fig, _ = plot_type_heatmap(m, tmp_path / "t.png")
    assert _not_blank(tmp_path / "t.png") > 1e-4
    plt.close(fig)
    fig, ax = plot_type_heatmap(m.to_xarray(), tmp_path / "n.png", max_pixels=10)  # sparse.COO, binned
    assert ax.get_images()[0].get_array().shape == (10, 10)
    assert _not_blank(tmp_path / "n.png") > 1e-4
    plt.close(fig)


def test_type_heatmap_from_store(tmp_path):
    pytest.importorskip("connectome_dask.aggregate")
    import connectome_dask as cd

    rng = np.random.default_rng(5)
    n = 80
    neurons = pd.DataFrame({"bodyId": np.arange(100, 100 + n), "type": [f"T{i % 9}" if i % 7 else None for i in range(n)]})
    syn = pd.DataFrame({"pre": rng.integers(0, n, 3000).astype(np.int32), "post": rng.integers(0, n, 3000).astype(np.int32)})
    conn = cd.write_store(tmp_path / "s", neurons, syn, {"name": "plotstore"}, chunk_rows=512)
    out = tmp_path / "whole_brain_types.png"
    fig, ax = plot_type_heatmap(conn, out, progress=False)
    img = ax.get_images()[0].get_array()
    assert img.shape == (9, 9)
    # reference: type x type synapse counts with pandas (log scale shown)
    t = neurons["type"].to_numpy()
    df = pd.DataFrame({"a": t[syn["pre"]], "b": t[syn["post"]]}).dropna()
    ref = df.groupby(["a", "b"]).size().unstack(fill_value=0).reindex(index=[f"T{i}" for i in range(9)],
                                                                      columns=[f"T{i}" for i in range(9)], fill_value=0)  # fmt: skip
    np.testing.assert_allclose(np.asarray(img), np.log10(1 + ref.to_numpy()))
    assert _not_blank(out) > 1e-4
    plt.close(fig)
    # a grouped adjacency keeps its type names in the pre / post coordinates: they label the axes
    fig, ax = plot_type_heatmap(conn.adjacency(by="type"), figsize=(4, 4), dpi=50)
    names = [f"T{i}" for i in range(9)]  # natural order, untyped neurons left out
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    plt.close(fig)


def test_plotting_draws_arrays_only(tmp_path, small):
    """plotting imports nothing of the package; its plot_type_heatmap takes arrays and DataArrays."""
    import ast
    from pathlib import Path

    import connectome_dask.plotting as P

    tree = ast.parse(Path(P.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith(".") or m.startswith("connectome_dask")], imported
    syn, ann = small
    m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    with pytest.raises(TypeError, match="connectome_dask.plot_type_heatmap"):
        P.plot_type_heatmap(m)
    da = m.to_xarray(level="type_sum")
    fig, ax = P.plot_type_heatmap(da, tmp_path / "d.png")
    assert [t.get_text() for t in ax.get_xticklabels()] == list(m.sum_type_matrix.columns)
    assert ax.get_title() == "weight: type x type connectivity"
    plt.close(fig)
    fig, ax = P.plot_type_heatmap(np.asarray(m.sum_type_matrix), name="toy", log=False)
    np.testing.assert_allclose(ax.get_images()[0].get_array(), m.sum_type_matrix.to_numpy())
    assert ax.get_title() == "toy: type x type connectivity"
    plt.close(fig)
