"""Write the tutorial notebooks (``*.ipynb``) from the cell sources below, outputs stripped.

Run ``python notebooks/make_notebooks.py`` after editing a cell here; the
committed ``.ipynb`` files are the output (``tests/test_notebooks.py`` checks
that they are in sync with this file and carry no outputs).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def md(src: str):
    return nbformat.v4.new_markdown_cell(textwrap.dedent(src).strip("\n"))


def code(src: str, tags: list[str] | None = None):
    c = nbformat.v4.new_code_cell(textwrap.dedent(src).strip("\n"))
    if tags:
        c.metadata["tags"] = tags
    return c


SETUP = """
import json
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path.cwd()))  # tutorial_data.py lives beside the notebooks
import tutorial_data as td

import connectome_dask as cd
from connectome_dask import NeuronCriteria as NC
from connectome_dask import SynapseCriteria as SC

# CONNECTOME_DASK_NB_SMALL=1 selects CI sizes (3,000 neurons, 300,000 synapses)
S = td.settings()
FIG = S.workdir / "figures"
FIG.mkdir(parents=True, exist_ok=True)
pd.set_option("display.width", 140)
pd.set_option("display.max_columns", 12)
print(S)
"""


# ============================================================================= query tutorial

QUERY = [
    md("""
    # neuPrint-style queries on a local connectome store

    This is the flow of neuprint-python's *query tutorial*, run on a local
    **connectome store** instead of a neuPrint server. Every call keeps
    neuprint-python's name, arguments and column names: porting a notebook is
    mostly replacing `from neuprint import ...` by `from connectome_dask import ...`
    and `Client(server, dataset)` by `cd.open(path)`.

    The store is made by the synthetic generator from the **real hemibrain
    neuron table** (`../shared/data/hemibrain/neuron_meta.csv`: real body IDs,
    types, instances, `cropped` flags); synapses are synthetic, placed inside
    procedural neuropil meshes and assigned to ROIs by exact mesh containment.
    Without the shared data folder the neurons are synthetic too. Cell types
    therefore keep their real names but not their real neuropils (a PEN neuron
    is not necessarily in the ellipsoid body here).

    Every cell that computes something also checks it against a plain pandas
    computation on the raw synapse table, so the notebook doubles as a test.
    """),
    code(SETUP, tags=["parameters"]),
    md("""
    ## Open the store

    neuprint-python: `c = Client("neuprint.janelia.org", dataset="hemibrain:v1.2.1")`.
    Here: build the store once (`datasets.synthetic` + `rois.assign_rois`, see
    `tutorial_data.py`), then `cd.open(path)`, which also makes it the default
    "client" of every query function.
    """),
    code("""
    td.tutorial_store(S, progress=True)  # builds the store the first time, reuses it afterwards
    conn = cd.open(S.store_path)
    print(conn)
    print("synapse columns:", conn.synapse_columns)
    neurons = conn.neurons  # one row per body, neuPrint column names
    neurons.head()
    """),
    md("""
    Raw synapse columns, read once so the checks below can recompute answers
    with plain pandas (fine at tutorial size; the queries themselves never load
    the whole table).
    """),
    code("""
    raw = pd.DataFrame(conn.read_synapses(["pre", "post", "roi_pre", "roi_post", "confidence"]))
    body = neurons["bodyId"].to_numpy()
    raw["bodyId_pre"], raw["bodyId_post"] = body[raw["pre"]], body[raw["post"]]
    print(f"{len(raw):,} synapse rows, {conn.n_neurons:,} neurons, {len(conn.roi_names)} ROI codes")
    """),
    md("""
    ## ROI hierarchy

    `fetch_roi_hierarchy(include_subprimary=False, mark_primary=True, format="text")`;
    primary ROIs are starred. The hierarchy comes from the store's ROI set
    (written by `assign_rois`).
    """),
    code("""
    tree = cd.fetch_roi_hierarchy(include_subprimary=False, mark_primary=True, format="text")
    print(tree)
    assert all(f"{r}*" in tree for r in ("EB", "FB", "PB"))
    """),
    md("""
    ## NeuronCriteria

    The tutorial's examples, each one checked against a direct pandas
    selection of the neuron table (or of the raw synapses, for ROI criteria).
    As in neuPrint, `type`/`instance` strings are regular expressions only when
    they contain regex characters (`regex="guess"`); parentheses alone do not
    count, so `"PEN_b(PEN2)"` is an exact match.
    """),
    code("""
    ntype = neurons["type"].astype("string")
    nins = neurons["instance"].astype("string")
    epg_ids = neurons.loc[ntype == "EPG", "bodyId"].tolist()
    pen_instance = nins[ntype == "PEN_a(PEN1)"].dropna().iloc[0]

    examples = {
        "single bodyId": (NC(bodyId=epg_ids[0]), neurons["bodyId"] == epg_ids[0]),
        "list of bodyIds": (NC(bodyId=epg_ids[:3]), neurons["bodyId"].isin(epg_ids[:3])),
        "exact type": (NC(type="PEN_b(PEN2)"), ntype == "PEN_b(PEN2)"),
        "instance": (NC(instance=pen_instance), nins == pen_instance),
        "type regex": (NC(type="PEN.*"), ntype.str.fullmatch("PEN.*")),
        "type list": (NC(type=["EPG", "PEG"]), ntype.isin(["EPG", "PEG"])),
        "status + cropped": (NC(type="EPG.*", status="Traced", cropped=False),
                             ntype.str.fullmatch("EPG.*") & (neurons["status"] == "Traced")
                             & ~neurons["cropped"].astype("boolean").fillna(False)),
        "cropped only": (NC(cropped=True), neurons["cropped"].astype("boolean").fillna(False)),
    }
    rows = []
    for name, (crit, expect) in examples.items():
        got = cd.fetch_neurons(crit)[0]["bodyId"]
        want = neurons.loc[expect.fillna(False).to_numpy(bool), "bodyId"].sort_values()
        assert got.tolist() == want.tolist(), name
        rows.append({"example": name, "criteria": repr(crit), "neurons": len(got)})
    print("NC(type='PEN_b(PEN2)').regex =", NC(type="PEN_b(PEN2)").regex, "| NC(type='PEN.*').regex =", NC(type="PEN.*").regex)
    pd.DataFrame(rows)
    """),
    md("""
    ROI criteria. `rois=[...]`: the neuron has synapses (input or output) in
    every listed ROI (`roi_req="any"`: in one of them); `inputRois` with
    `min_roi_inputs=N`: at least N postsynaptic sites in each listed ROI.
    Super-level ROIs (e.g. `CX`) count every primary ROI below them.
    """),
    code("""
    code_of = {n: i for i, n in enumerate(conn.roi_names)}

    def sites_in(roi_list, side):
        # per-neuron count of `side` sites ("pre"/"post") in any of roi_list, from the raw table
        codes = [code_of[r] for r in roi_list]
        sel = raw[f"roi_{side}"].isin(codes)
        return raw.loc[sel, side].value_counts()

    roi_examples = {
        "rois EB and PB (any)": NC(rois=["EB", "PB"], roi_req="any"),
        "rois FB": NC(rois=["FB"]),
        "inputRois FB, min_roi_inputs=10": NC(inputRois=["FB"], min_roi_inputs=10),
        "super-level ROI CX": NC(rois=["CX"]),
    }
    cx = ["EB", "FB", "PB", "NO"]
    anywhere = lambda rl: (sites_in(rl, "pre").add(sites_in(rl, "post"), fill_value=0) > 0)  # noqa: E731
    expected = {
        "rois EB and PB (any)": anywhere(["EB", "PB"]),
        "rois FB": anywhere(["FB"]),
        "inputRois FB, min_roi_inputs=10": sites_in(["FB"], "post") >= 10,
        "super-level ROI CX": anywhere(cx),
    }
    rows = []
    for name, crit in roi_examples.items():
        got = cd.fetch_neurons(crit)[0]["bodyId"]
        e = expected[name]
        want = np.sort(body[e[e].index.to_numpy()])
        assert got.tolist() == want.tolist(), name
        rows.append({"example": name, "neurons": len(got)})
    pd.DataFrame(rows)
    """),
    md("""
    ## fetch_neurons

    Two frames, as in neuPrint: `neuron_df` (one row per neuron, with
    `inputRois`/`outputRois`) and `roi_counts_df` (per neuron and ROI, every
    hierarchy level, plus `NotPrimary` for sites outside all primary ROIs).
    """),
    code("""
    neuron_df, roi_counts_df = cd.fetch_neurons(NC(type="PEN.*"))
    display(neuron_df[["bodyId", "instance", "type", "pre", "post", "status", "cropped", "inputRois"]].head())
    display(roi_counts_df.head(8))

    # checks: totals equal raw counts; primary ROIs + NotPrimary add up to the totals
    pre_n = raw["bodyId_pre"].value_counts()
    post_n = raw["bodyId_post"].value_counts()
    assert (neuron_df["pre"].to_numpy() == pre_n.reindex(neuron_df["bodyId"]).fillna(0).to_numpy()).all()
    assert (neuron_df["post"].to_numpy() == post_n.reindex(neuron_df["bodyId"]).fillna(0).to_numpy()).all()
    prim = roi_counts_df[roi_counts_df["roi"].isin(conn.roi_info["primary"] + ["NotPrimary"])]
    per_neuron = prim.groupby("bodyId")[["pre", "post"]].sum()
    assert (per_neuron["pre"] == neuron_df.set_index("bodyId")["pre"]).all()
    assert (per_neuron["post"] == neuron_df.set_index("bodyId")["post"]).all()
    """),
    md("""
    ## fetch_adjacencies

    Connections per (pre, post, ROI); a connection's ROI is its postsynaptic
    site's ROI. Downstream of a set (`targets=None`), upstream (`sources=None`),
    and between two type patterns.
    """),
    code("""
    # downstream of the EPG neurons
    down_neurons, down_conn = cd.fetch_adjacencies(NC(type="EPG"), None)
    # upstream of the EPG neurons
    up_neurons, up_conn = cd.fetch_adjacencies(None, NC(type="EPG"))
    print(f"downstream: {len(down_conn):,} rows, {down_conn.weight.sum():,} synapses; "
          f"upstream: {len(up_conn):,} rows, {up_conn.weight.sum():,} synapses")
    down_conn.sort_values("weight", ascending=False).head()
    """),
    code("""
    # check: every synapse of an EPG neuron is counted exactly once
    epg = set(neurons.loc[ntype == "EPG", "bodyId"])
    assert down_conn["weight"].sum() == raw["bodyId_pre"].isin(epg).sum()
    assert up_conn["weight"].sum() == raw["bodyId_post"].isin(epg).sum()
    """),
    code("""
    # between two type patterns: EPG.* -> the type family (name prefix) of EPG's strongest partner type
    import re

    partner = cd.merge_neuron_properties(down_neurons, down_conn, "type").groupby("type_post")["weight"].sum().idxmax()
    family = re.match(r"[A-Za-z]+", partner).group(0)
    SOURCES, TARGETS = NC(type="EPG.*"), NC(type=f"{family}.*")
    print("strongest partner type:", partner, "-> targets", TARGETS)
    neuron_df, conn_df = cd.fetch_adjacencies(SOURCES, TARGETS)
    print(f"{len(conn_df):,} (pair, ROI) rows between {len(neuron_df)} neurons")
    assert len(conn_df) > 0
    conn_df.head()
    """),
    md("""
    Independent check: the summed weights of `fetch_adjacencies` equal a pandas
    `groupby` of the synapse-level rows of `fetch_synapse_connections` (with
    the confidence filter off: `SC(confidence=0)`, since a pair's weight counts
    every stored synapse).
    """),
    code("""
    syn_conn = cd.fetch_synapse_connections(SOURCES, TARGETS, SC(confidence=0))
    by_pair = syn_conn.groupby(["bodyId_pre", "bodyId_post"]).size()
    adj_pair = conn_df.groupby(["bodyId_pre", "bodyId_post"])["weight"].sum()
    pd.testing.assert_series_equal(adj_pair, by_pair, check_names=False)
    # and per ROI (NotPrimary = post site outside every primary ROI)
    by_roi = syn_conn.assign(roi=syn_conn["roi_post"].fillna("NotPrimary")).groupby(["bodyId_pre", "bodyId_post", "roi"]).size()
    pd.testing.assert_series_equal(conn_df.set_index(["bodyId_pre", "bodyId_post", "roi"])["weight"].sort_index(),
                                   by_roi.sort_index(), check_names=False)
    print(f"OK: {by_pair.sum():,} synapses in {len(by_pair):,} pairs")
    """),
    md("""
    ## merge_neuron_properties

    Adds `type_pre`, `type_post`, `instance_pre`, `instance_post` to the
    connection table.
    """),
    code("""
    conn_df = cd.merge_neuron_properties(neuron_df, conn_df, ["type", "instance"])
    conn_df.head()
    """),
    md("""
    ## connection_table_to_matrix and heatmaps

    Neuron x neuron (sorted by type) and type x type matrices, drawn with
    matplotlib (the neuprint tutorial uses hvplot).
    """),
    code("""
    matrix = cd.connection_table_to_matrix(conn_df, "bodyId", sort_by="type")
    type_matrix = cd.connection_table_to_matrix(conn_df, "type")
    assert matrix.to_numpy().sum() == type_matrix.to_numpy().sum() == conn_df["weight"].sum()
    print("neuron matrix", matrix.shape, "| type matrix", type_matrix.shape)

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [2, 1]})
    im = axes[0].imshow(matrix.to_numpy(), cmap="Purples", aspect="auto", interpolation="nearest")
    axes[0].set(title=f"EPG.* -> {family}.*: neurons (sorted by type)", xlabel="postsynaptic bodyId", ylabel="presynaptic bodyId")
    axes[0].set_yticks(range(len(matrix.index)), matrix.index.astype(str), fontsize=5)
    axes[0].set_xticks([])
    fig.colorbar(im, ax=axes[0], label="synapses")
    im = axes[1].imshow(type_matrix.to_numpy(), cmap="Purples", aspect="auto")
    axes[1].set_xticks(range(type_matrix.shape[1]), type_matrix.columns, rotation=90, fontsize=7)
    axes[1].set_yticks(range(type_matrix.shape[0]), type_matrix.index, fontsize=8)
    axes[1].set(title="type x type")
    fig.colorbar(im, ax=axes[1], label="synapses")
    fig.tight_layout()
    fig.savefig(FIG / "query_connection_matrices.png", dpi=90)
    plt.show()
    """),
    md("""
    ## fetch_synapses with SynapseCriteria

    The presynaptic sites of the EPG neurons in their two main output ROIs,
    with neuPrint's default confidence threshold (the store's
    `default_confidence`), plotted in 2-D.
    """),
    code("""
    _, epg_rois = cd.fetch_neurons(NC(type="EPG"))
    top_rois = (epg_rois[epg_rois["roi"].isin(conn.roi_info["primary"])]
                .groupby("roi")["pre"].sum().nlargest(2).index.tolist())
    syn_criteria = SC(rois=top_rois, type="pre", primary_only=True)
    epg_syn = cd.fetch_synapses(NC(type="EPG"), syn_criteria)
    print(syn_criteria, "->", len(epg_syn), "sites")
    display(epg_syn.head())

    # check against the raw table: EPG pre sites in those ROIs with confidence > default
    thr = conn.meta["default_confidence"]
    want = raw["bodyId_pre"].isin(epg) & raw["roi_pre"].isin([code_of[r] for r in top_rois]) & (raw["confidence"] > thr)
    assert len(epg_syn) == int(want.sum())

    fig, ax = plt.subplots(figsize=(7, 5))
    for roi, g in epg_syn.groupby("roi"):
        ax.scatter(g["x"] / 1000, g["z"] / 1000, s=4, label=roi)
    ax.set(xlabel="x (um)", ylabel="z (um)", title="EPG presynaptic sites")
    ax.legend(markerscale=3)
    fig.savefig(FIG / "query_synapses.png", dpi=90)
    plt.show()
    """),
    md("""
    ## Synapse connections: top 5 postsynaptic types

    All output synapses of the EPG neurons with their partner's type, the five
    most frequent postsynaptic types coloured.
    """),
    code("""
    epg_out = cd.fetch_synapse_connections(NC(type="EPG"), None, SC(confidence=0))
    epg_out = cd.merge_neuron_properties(neurons, epg_out, "type")
    top5 = epg_out["type_post"].value_counts().head(5)
    display(top5)
    assert len(epg_out) == raw["bodyId_pre"].isin(epg).sum()

    fig, ax = plt.subplots(figsize=(7, 5))
    other = epg_out[~epg_out["type_post"].isin(top5.index)]
    ax.scatter(other["x_post"] / 1000, other["z_post"] / 1000, s=2, c="lightgrey", label="other")
    for t in top5.index:
        g = epg_out[epg_out["type_post"] == t]
        ax.scatter(g["x_post"] / 1000, g["z_post"] / 1000, s=4, label=t)
    ax.set(xlabel="x (um)", ylabel="z (um)", title="EPG output synapses by postsynaptic type")
    ax.legend(markerscale=3, fontsize=8)
    fig.savefig(FIG / "query_top5_types.png", dpi=90)
    plt.show()
    """),
    md("""
    ## Skeletons with their synapses

    `fetch_skeleton` reads the body's SWC file from the store (the generator
    writes skeletons for the neurons with most synapses);
    `attach_synapses` maps each synapse to its nearest skeleton node (KD-tree),
    giving navis-style `connectors`.
    """),
    code("""
    with_skeleton = sorted(int(p.stem) for p in conn.skeleton_dir.glob("*.swc"))
    skel_body = with_skeleton[0]
    skel = cd.fetch_skeleton(skel_body, format="pandas", heal=True)
    syn = cd.fetch_synapses(skel_body, SC(confidence=0))
    connectors = cd.attach_synapses(skel, syn)
    kind = neurons.set_index("bodyId").loc[skel_body, "type"]
    print(f"body {skel_body} ({kind}): {len(skel)} nodes, {len(connectors)} synapses attached, "
          f"median distance to the skeleton {connectors['distance'].median():.0f} nm")
    assert len(connectors) == len(syn) == neurons.set_index("bodyId").loc[skel_body, ["pre", "post"]].sum()
    assert connectors["node_id"].isin(skel["rowId"]).all()

    from matplotlib.collections import LineCollection

    seg = skel.merge(skel, left_on="link", right_on="rowId", suffixes=("_child", "_parent"))
    lines = np.stack([seg[["x_child", "z_child"]].to_numpy(), seg[["x_parent", "z_parent"]].to_numpy()], axis=1) / 1000
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.add_collection(LineCollection(lines, colors="k", linewidths=0.6))
    for t, colour in (("pre", "tab:red"), ("post", "tab:blue")):
        g = connectors[connectors["type"] == t]
        ax.scatter(g["x"] / 1000, g["z"] / 1000, s=5, c=colour, label=f"{t} ({len(g)})")
    ax.autoscale()
    ax.set(xlabel="x (um)", ylabel="z (um)", title=f"skeleton of {skel_body} with its synapses")
    ax.legend()
    fig.savefig(FIG / "query_skeleton.png", dpi=90)
    plt.show()
    """),
    md("## Summary (read by `tests/test_notebooks.py`)"),
    code("""
    summary = {
        "n_neurons": conn.n_neurons,
        "n_synapses": conn.n_synapses,
        "criteria_examples": len(examples) + len(roi_examples),
        "pattern_pairs": int(len(by_pair)),
        "pattern_synapses": int(by_pair.sum()),
        "epg_synapse_sites": int(len(epg_syn)),
        "skeleton_body": int(skel_body),
        "connectors": int(len(connectors)),
        "figures": sorted(str(p) for p in FIG.glob("query_*.png")),
    }
    (S.workdir / "query_tutorial.summary.json").write_text(json.dumps(summary, indent=1))
    summary
    """),
]


# ============================================================================= nested matrices

NESTED = [
    md("""
    # Nested (cell-type ordered) connectivity matrices

    The crantpy flow: `NestedMatrix` / `DirectedNestedMatrix` /
    `NeuropilCollection` with crantpy's constructors, weight modes, ordering
    rules and plots (`from crantpy.queries import NestedMatrix` becomes
    `from connectome_dask import NestedMatrix`). Beyond crantpy every
    constructor also takes a whole `Connectome` (aggregated out of core, kept
    sparse) and every matrix exports to xarray and Zarr.

    Data: the tutorial store of `query_tutorial.ipynb` (real hemibrain neuron
    table, synthetic synapses). Each result is checked against a plain pandas
    computation.
    """),
    code(SETUP, tags=["parameters"]),
    code("""
    from connectome_dask import All, DirectedNestedMatrix, NestedMatrix
    from connectome_dask.matrix import open_dataarray, open_matrix, save_dataarray

    conn = td.tutorial_store(S, progress=True)
    print(conn)
    neurons = conn.neurons
    """),
    md("""
    ## crantpy-style inputs

    A synapse table from `get_synapses` (crantpy's columns: `pre_pt_root_id`,
    `post_pt_root_id`, `size`, positions) among central-complex types, and an
    annotation table with crantpy's `root_id` / `cell_type` columns.
    """),
    code("""
    TYPES = "EPG.*|PEG|PEN.*|Delta7|PFN.*|hDelta.*"
    ids = cd.fetch_neurons(NC(type=TYPES))[0]["bodyId"]
    syn = cd.get_synapses(pre_ids=ids, post_ids=ids, clean=True)
    ann = neurons.loc[neurons["bodyId"].isin(ids), ["bodyId", "type", "instance"]].rename(
        columns={"bodyId": "root_id", "type": "cell_type", "instance": "cell_instance"})
    print(f"{len(ids)} neurons, {ann.cell_type.nunique()} types, {len(syn):,} synapses")
    syn.head()
    """),
    md("""
    ## NestedMatrix.from_synapses, every weight mode

    `count` (synapses per pair), `column` (sum of a synapse column, here
    `size`), `relative_outgoing` (count / the presynaptic neuron's total),
    `relative_incoming` (count / the postsynaptic neuron's total).
    """),
    code("""
    modes = {
        "count": NestedMatrix.from_synapses(syn, ann, weight_mode="count"),
        "column": NestedMatrix.from_synapses(syn, ann, weight_mode="column", weight_column="size"),
        "relative_outgoing": NestedMatrix.from_synapses(syn, ann, weight_mode="relative_outgoing"),
        "relative_incoming": NestedMatrix.from_synapses(syn, ann, weight_mode="relative_incoming"),
    }
    m = modes["count"]
    print(m)
    print("shape", m.shape, "| non-zeros", m.nnz)
    print("type blocks:", dict(list(m.type_boundaries.items())[:6]), "...")

    # checks against pandas
    t = ann.set_index("root_id")["cell_type"].astype(str)
    s2 = syn.assign(tpre=t.reindex(syn.pre_pt_root_id).to_numpy(), tpost=t.reindex(syn.post_pt_root_id).to_numpy())
    ref_count = s2.groupby(["tpre", "tpost"]).size().unstack(fill_value=0)
    ref_size = s2.groupby(["tpre", "tpost"])["size"].sum().unstack(fill_value=0)
    got = modes["count"].sum_type_matrix
    assert np.allclose(got.loc[ref_count.index, ref_count.columns], ref_count)
    assert np.isclose(got.to_numpy().sum(), len(syn))
    assert np.allclose(modes["column"].sum_type_matrix.loc[ref_size.index, ref_size.columns], ref_size)
    out_sums = modes["relative_outgoing"].matrix.sum(axis=1)
    in_sums = modes["relative_incoming"].matrix.sum(axis=0)
    assert np.allclose(out_sums[out_sums > 0], 1) and np.allclose(in_sums[in_sums > 0], 1)
    pd.DataFrame({mode: {"total weight": mm.to_scipy().sum(), "nnz": mm.nnz} for mode, mm in modes.items()}).T
    """),
    code("""
    fig, ax = modes["relative_outgoing"].plot(FIG / "nested_neuron.png", level="neuron", figsize=(9, 8), linewidth_scale=0.3)
    plt.show()
    fig, ax = modes["count"].plot(FIG / "nested_type_mean.png", level="type_mean", figsize=(8, 7))
    plt.show()
    modes["count"].mean_type_matrix.round(2).iloc[:8, :8]
    """),
    md("""
    ## NestedMatrix.from_connectivity

    From a dense adjacency matrix (`get_adjacency`) and from an edge list
    (`get_connectivity`): both give the `count` matrix above.
    """),
    code("""
    adj = cd.get_adjacency(ids, ids)
    m_adj = NestedMatrix.from_connectivity(adj, ann)
    edges = cd.get_connectivity(ids)
    edges = edges[edges["pre"].isin(ids) & edges["post"].isin(ids)]
    m_edges = NestedMatrix.from_connectivity(edges, ann)
    ref = modes["count"].matrix
    for mm in (m_adj, m_edges):
        assert mm.ordered_neurons == modes["count"].ordered_neurons
        assert np.array_equal(mm.matrix.to_numpy(), ref.to_numpy())
    print("from_connectivity == from_synapses(count):", m_adj.shape)
    """),
    md("""
    ## DirectedNestedMatrix

    Rectangular source x target matrices with independent axes; with
    `normalization_scope="all"` relative weights are taken over *all* partners
    of each source, before restricting the columns.
    """),
    code("""
    # targets: the 6 types receiving most synapses from EPG and PEG in this table
    TARGET_TYPES = s2[s2["tpre"].isin(["EPG", "PEG"])]["tpost"].value_counts().index[:6].tolist()
    kw = dict(source_types=["EPG", "PEG"], target_types=TARGET_TYPES, weight_mode="relative_outgoing")
    d_sel = DirectedNestedMatrix.from_synapses(syn, ann, normalization_scope="selected", **kw)
    d_all = DirectedNestedMatrix.from_synapses(syn, ann, normalization_scope="all", **kw)
    print(d_all)
    rs_sel, rs_all = d_sel.matrix.sum(axis=1), d_all.matrix.sum(axis=1)
    assert np.allclose(rs_sel[rs_sel > 0], 1)  # normalised within the selected block
    assert (rs_all <= 1 + 1e-9).all() and (rs_all <= rs_sel + 1e-9).all()  # a share of all partners
    fig, ax = d_all.plot(FIG / "directed_type_sum.png", level="type_sum", figsize=(9, 4))
    plt.show()
    d_all.sum_type_matrix.round(3)
    """),
    md("""
    ## A whole store as input

    `NestedMatrix.from_synapses(conn)` aggregates pair counts out of core
    (dask map-reduce over the store's partitions); the neuron-level matrix
    stays sparse. Plots of more than 20,000 neurons per axis are drawn as an
    aggregated raster.
    """),
    code("""
    whole = NestedMatrix.from_synapses(conn, weight_mode="count", min_weight=2, type_order=["EPG", "PEN"])
    print(whole, "| nnz", whole.nnz)
    raw = pd.DataFrame(conn.read_synapses(["pre", "post"]))
    w = raw.value_counts()  # synapses per (pre, post) pair
    assert np.isclose(whole.to_scipy().sum(), w[w >= 2].sum())  # every neuron is annotated (typed or not)
    fig, ax = whole.plot(FIG / "whole_store_type_sum.png", level="type_sum", figsize=(9, 8))
    plt.show()
    """),
    md("""
    ## One matrix per neuropil: from_synapses_by_neuropil

    From the store (each synapse tested against the store's own meshes,
    partition by partition) and from the pandas synapse table (the same meshes,
    exact containment at call time). Both agree.
    """),
    code("""
    from connectome_dask import datasets
    from connectome_dask.rois import RoiSet

    counts = cd.fetch_synapse_connections(ids, ids, SC(confidence=0))
    counts = counts[counts.bodyId_pre != counts.bodyId_post]["roi_post"].value_counts()
    NEUROPILS = counts.index[:4].tolist()
    by_np_store = NestedMatrix.from_synapses_by_neuropil(conn, ann, neuropil_names=NEUROPILS, weight_mode="count")
    roiset = RoiSet.from_directory(datasets.meshes_for(conn))
    by_np_pandas = NestedMatrix.from_synapses_by_neuropil(
        syn, ann, neuropil_names=NEUROPILS, rois=roiset, weight_mode="count",
        position_column=["post_pt_position_x", "post_pt_position_y", "post_pt_position_z"])
    print(by_np_store, by_np_pandas)
    for name in NEUROPILS:
        a, b = by_np_store[name], by_np_pandas[name]
        assert np.isclose(a.to_scipy().sum(), counts[name]), name
        assert np.isclose(a.to_scipy().sum(), b.to_scipy().sum()), name
    figs = by_np_store.plot(All.minus("other"), level="type_sum", figsize=(6, 5))
    for name, (fig, ax) in figs.items():
        fig.savefig(FIG / f"neuropil_{name}.png", dpi=80)
    plt.show()
    """),
    md("""
    ## Relative weights

    `get_relative_weights()` divides each row by its sum (neuron level, or
    type level with `by_type=True`); `to_xarray(relative=True)` does the same
    on sparse data for whole-brain matrices.
    """),
    code("""
    rel = modes["count"].get_relative_weights()
    rel_t = modes["count"].get_relative_weights(by_type=True)
    rsum = rel.sum(axis=1)
    assert np.allclose(rsum[rsum > 0], 1) and np.allclose(rel_t.sum(axis=1)[rel_t.sum(axis=1) > 0], 1)
    assert np.allclose(rel.to_numpy(), modes["relative_outgoing"].matrix.to_numpy())  # same thing here
    rel_t.round(3).iloc[:6, :6]
    """),
    md("""
    ## xarray and Zarr

    `to_xarray("neuron")` gives a `sparse.COO`-backed DataArray with body IDs,
    types and instances as coordinates; `"type_sum"` / `"type_mean"` dense
    ones. `to_zarr` / `open_matrix` round-trip the whole nested matrix;
    `save_dataarray` / `open_dataarray` any 2-D DataArray. Writes are atomic.
    """),
    code("""
    da = whole.to_xarray("neuron")
    da_rel = whole.to_xarray("neuron", relative=True)
    da_t = whole.to_xarray("type_sum")
    print(da)
    print(type(da.data).__name__, "nnz", da.data.nnz, "| type level", da_t.shape)
    n_typed = len(whole.neuron_to_type)  # typed neurons come first; untyped ones are in no type block
    assert np.isclose(whole.to_scipy()[:n_typed, :n_typed].sum(), float(da_t.sum()))

    path = whole.to_zarr(S.workdir / "whole_nested.zarr")
    back = open_matrix(path)
    assert back.ordered_neurons == whole.ordered_neurons and (back.to_scipy() != whole.to_scipy()).nnz == 0
    p2 = save_dataarray(da_rel, S.workdir / "whole_relative.zarr")
    assert open_dataarray(p2).identical(da_rel)
    print("round trips OK:", path.name, p2.name)
    """),
    md("## Summary (read by `tests/test_notebooks.py`)"),
    code("""
    summary = {
        "synapses": int(len(syn)),
        "weight_modes": sorted(modes),
        "types": int(len(m.type_boundaries)),
        "whole_nnz": int(whole.nnz),
        "neuropils": NEUROPILS,
        "zarr": [str(path), str(p2)],
        "figures": sorted(str(p) for p in FIG.glob("*.png") if not p.name.startswith("query_")),
    }
    (S.workdir / "nested_matrices.summary.json").write_text(json.dumps(summary, indent=1))
    summary
    """),
]


# ============================================================================= cluster

CLUSTER = [
    md("""
    # Whole-brain type matrix on a Dask cluster

    Connect to a scheduler, watch the dashboard, compute the whole-brain cell
    type x cell type synapse matrix with `Connectome.adjacency(by="type")`,
    save it to Zarr and plot it.

    * Default: an embedded `LocalCluster` (worker processes, memory limits,
      spilling) through `connectome_dask.cluster.connect`.
    * `CONNECTOME_DASK_SCHEDULER=slurm` (or `pbs`, `lsf`): workers are batch
      jobs through dask-jobqueue, configured from `deploy/jobqueue.yaml`; a
      `tcp://host:8786` address or a scheduler file connects to a running
      scheduler (see `docs/hpc.md`). The store must then be on a file system
      the workers can read: set `CONNECTOME_DASK_NB_WORKDIR` accordingly.
    """),
    code(SETUP + textwrap.dedent("""
    from connectome_dask.cluster import dashboard_link, get_client
    from connectome_dask.matrix import open_dataarray, plot_type_heatmap, save_dataarray

    SCHEDULER = os.environ.get("CONNECTOME_DASK_SCHEDULER") or "local"
    WORKERS = int(os.environ["CONNECTOME_DASK_NB_WORKERS"]) if os.environ.get("CONNECTOME_DASK_NB_WORKERS") else None
    print("scheduler:", SCHEDULER, "| workers:", WORKERS or "default")
    """), tags=["parameters"]),
    md("""
    ## The store

    Built (once) on this machine; the aggregation below runs on the workers.
    """),
    code("""
    conn = td.tutorial_store(S, progress=True)
    print(conn)
    """),
    md("""
    ## Connect

    `get_client` starts the cluster (or connects to one); closing the client at
    the end also stops a cluster it started (and cancels its batch jobs). A
    dashboard port of `:0` picks a free port, so several notebooks can run at
    once.
    """),
    code("""
    extra = {"dashboard_address": ":0"} if SCHEDULER == "local" else {}
    client = get_client(SCHEDULER, workers=WORKERS, **extra)
    if SCHEDULER != "local":
        client.wait_for_workers(1, timeout=600)
    print(client)
    print("dashboard:", dashboard_link(client))
    """),
    md("""
    ## The whole-brain type matrix

    One dask task per range of whole store chunks; each task counts type pairs
    into a dense block with a numba kernel, blocks are summed by a tree
    reduction. The progress bar follows the tasks (the dashboard shows them
    too).
    """),
    code("""
    import time

    t0 = time.perf_counter()
    A = conn.adjacency(by="type", progress=True)
    elapsed = time.perf_counter() - t0
    print(f"{A.shape[0]:,} x {A.shape[1]:,} types, {int(A.sum()):,} synapses in {elapsed:.1f} s")
    A
    """),
    md("""
    Check against pandas on the raw table: group the synapses by the types of
    their two neurons (neurons without a type are left out, as in `adjacency`).
    """),
    code("""
    raw = pd.DataFrame(conn.read_synapses(["pre", "post"]))
    types = conn.neurons["type"].astype("string").to_numpy()
    ref = (pd.DataFrame({"pre": types[raw["pre"]], "post": types[raw["post"]]}).dropna()
           .value_counts().rename("weight"))
    i, j = np.nonzero(A.values)  # the non-zero cells only (A.to_series() would list every type pair)
    got = pd.Series(A.values[i, j], index=pd.MultiIndex.from_arrays([A["pre"].values[i], A["post"].values[j]]))
    pd.testing.assert_series_equal(got.sort_index(), ref.sort_index().astype(got.dtype), check_names=False,
                                   check_index_type=False)
    strongest = got.sort_values(ascending=False).head(10)
    strongest
    """),
    md("""
    ## Save to Zarr, plot

    `save_dataarray` writes the labelled matrix atomically (a temporary folder
    renamed into place); `open_dataarray` reads it back. `plot_type_heatmap`
    draws it (types in natural order, `log10(1 + synapses)`).
    """),
    code("""
    zpath = save_dataarray(A, S.workdir / "type_matrix.zarr")
    B = open_dataarray(zpath)
    assert B.identical(A)
    fig, ax = plot_type_heatmap(B, FIG / "type_matrix.png", title=f"{conn.meta['name']}: type x type synapses")
    plt.show()
    print(zpath, "->", FIG / "type_matrix.png")
    """),
    md("""
    Restricted to ROIs: a super-level ROI (`CX`) counts the synapses whose
    postsynaptic site lies in any primary ROI below it. The neuron-level
    matrix is sparse (`sparse.COO`).
    """),
    code("""
    A_cx = conn.adjacency(by="type", rois=["CX"], progress=False)
    W = conn.adjacency(min_weight=5, progress=False)
    print(f"CX type matrix: {A_cx.shape}, {int(A_cx.sum()):,} synapses")
    print(f"neuron matrix: {W.shape}, {W.data.nnz:,} pairs with >= 5 synapses, "
          f"density {W.data.nnz / (W.shape[0] * W.shape[1]):.2e}")
    assert int(A_cx.sum()) <= int(A.sum())
    """),
    md("""
    ## Same answer without the cluster

    Results do not depend on the scheduler, the number of workers or the
    partition size: close the client and recompute in this process.
    """),
    code("""
    client.close()
    import dask

    with dask.config.set(scheduler="sync"):
        A_sync = conn.adjacency(by="type", progress=False)
    assert A_sync.identical(A)
    print("identical on the synchronous scheduler")
    """),
    md("## Summary (read by `tests/test_notebooks.py`)"),
    code("""
    summary = {
        "scheduler": SCHEDULER,
        "types": int(A.shape[0]),
        "synapses_typed": int(A.sum()),
        "seconds": round(elapsed, 2),
        "zarr": str(zpath),
        "figure": str(FIG / "type_matrix.png"),
    }
    (S.workdir / "whole_brain_on_a_cluster.summary.json").write_text(json.dumps(summary, indent=1))
    summary
    """),
]


# ============================================================================= neuprint-python's Query Tutorial

# The code cells of neuprint-python's Query Tutorial (../shared/seeds/000_d7f46ae7abeaa4f2.txt) with
# only their import lines changed (``neuprint`` -> ``connectome_dask.neuprint``) and the seed's copy
# defects restored (indentation, ``skeletons.append(s)``, the closing line of ``p.segment(...)``).
# The first cell (set-up) and the last (check) are not part of the tutorial.
SEED = [
    md("""
    # neuprint-python's Query Tutorial, on a local store

    The code cells below are neuprint-python's *Query Tutorial* (hemibrain v1.2.1) with only
    their import lines changed: `from neuprint import ...` becomes
    `from connectome_dask.neuprint import ...`. They run on a local store built by
    `tutorial_data.seed_store()` (real hemibrain bodies of the types the tutorial selects,
    synthetic synapses and skeletons), opened first so that `Client('', ...)` finds it.
    """),
    code("""
    # set-up (not part of the tutorial): build and open the tutorial's store
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path.cwd()))  # tutorial_data.py lives beside the notebooks
    import tutorial_data as td

    td.seed_store()
    """, tags=["setup"]),
    code("""
    # The plotting examples below require holoviews, hvplot, and bokeh:
    # conda install -c conda-forge bokeh holoviews hvplot
    import numpy as np
    import pandas as pd
    import bokeh
    import hvplot.pandas
    import holoviews as hv
    import bokeh.palettes
    from bokeh.plotting import figure, show, output_notebook
    """),
    md("## Create a Client"),
    code("""
    from connectome_dask.neuprint import Client
    TOKEN = "" # <--- Paste your token here
    # (or define NEUPRINT_APPLICATION CREDENTIALS in your environment)
    c = Client('', 'hemibrain:v1.2.1', TOKEN)
    """),
    code("""
    from connectome_dask.neuprint import fetch_roi_hierarchy
    # Show the ROI hierarchy, with primary ROIs marked with '*'
    print(fetch_roi_hierarchy(False, mark_primary=True, format='text'))
    """),
    md("## Neuron Search Criteria"),
    code("""
    from connectome_dask.neuprint import NeuronCriteria as NC
    # Example: Select a specific body
    criteria = 387023620
    criteria = NC(bodyId=387023620)
    # Example: Select several bodies
    criteria = [387023620, 387364605, 416642425]
    criteria = NC(bodyId=[387023620, 387364605, 416642425])
    # Example: Select bodies by exact type
    criteria = 'PEN_b(PEN2)'
    criteria = NC(type='PENPEN_b(PEN2)')
    # Example: Select bodies by exact instance
    criteria = 'PEN(PB06)_b_L4'
    criteria = NC(type='PEN(PB06)_b_L4')
    # Example: Select bodies by type name pattern
    criteria = NC(type='PEN.*')
    # Example: Select bodies by region (input or output)
    criteria = NC(rois=['PB', 'EB'])
    # Example: Select traced neurons which intersect the PB ROI with at least 100 inputs (PSDs).
    criteria = NC(inputRois=['PB'], min_roi_inputs=100, status='Traced', cropped=False)
    """),
    md("## Fetch neuron properties"),
    code("""
    from connectome_dask.neuprint import fetch_neurons
    neuron_df, roi_counts_df = fetch_neurons(criteria)
    """),
    code("neuron_df[['bodyId', 'instance', 'type', 'pre', 'post', 'status', 'cropped', 'size']]"),
    code("roi_counts_df"),
    md("## Fetch connections"),
    code("""
    from connectome_dask.neuprint import fetch_adjacencies, NeuronCriteria as NC
    # Example: Fetch all downstream connections FROM a set of neurons
    neuron_df, conn_df = fetch_adjacencies([387023620, 387364605, 416642425], None)
    # Example: Fetch all upstream connections TO a set of neurons
    neuron_df, conn_df = fetch_adjacencies(None, [387023620, 387364605, 416642425])
    # Example: Fetch all direct connections between a set of upstream neurons and downstream neurons
    neuron_df, conn_df = fetch_adjacencies(NC(type='Delta.*'), NC(type='PEN.*'))
    """),
    code("conn_df.sort_values('weight', ascending=False)"),
    code("""
    from connectome_dask.neuprint import merge_neuron_properties
    conn_df = merge_neuron_properties(neuron_df, conn_df, ['type', 'instance'])
    conn_df
    """),
    md("## Connection Matrix"),
    code("""
    from connectome_dask.neuprint.utils import connection_table_to_matrix
    matrix = connection_table_to_matrix(conn_df, 'bodyId', sort_by='type')
    matrix.iloc[:10, :10]
    """),
    code("""
    matrix.index = matrix.index.astype(str)
    matrix.columns = matrix.columns.astype(str)
    matrix.hvplot.heatmap(height=600, width=700, xaxis='top').opts(xrotation=60)
    """),
    code("""
    matrix = connection_table_to_matrix(conn_df, ('bodyId_pre', 'type_post'))
    matrix.index = matrix.index.astype(str)
    matrix.columns = matrix.columns.astype(str)
    matrix.hvplot.heatmap(height=600, width=400)
    """),
    md("## Fetch synapses"),
    code("""
    from connectome_dask.neuprint import fetch_synapses, NeuronCriteria as NC, SynapseCriteria as SC
    neuron_criteria = NC(status='Traced', type='FB4Y', cropped=False, inputRois=['EB'], min_roi_inputs=100, min_pre=400)
    eb_tbar_criteria = SC(rois='EB', type='pre', primary_only=True)
    eb_tbars = fetch_synapses(neuron_criteria, eb_tbar_criteria)
    # Plot the synapse positions in a 2D projection
    p = figure()
    p.scatter(eb_tbars['x'], eb_tbars['z'])
    p.y_range.flipped = True
    """),
    md("## Synapse Connections"),
    code("""
    from connectome_dask.neuprint import fetch_synapse_connections
    eb_syn_criteria = SC(rois='EB', primary_only=True)
    eb_conns = fetch_synapse_connections(neuron_criteria, None, eb_syn_criteria)
    eb_conns.head()
    """),
    code("""
    # Retrieve the types of the post-synaptic neurons
    post_neurons, _ = fetch_neurons(eb_conns['bodyId_post'].unique())
    eb_conns = merge_neuron_properties(post_neurons, eb_conns, 'type')
    top5_counts = eb_conns['type_post'].value_counts().head(5)
    top5_counts
    """),
    code("""
    colormap = dict(zip(top5_counts.index, bokeh.palettes.Category10[5]))
    points = eb_conns.query('type_post in @top5_counts.index').copy()
    points['color'] = points['type_post'].map(colormap)
    p = figure()
    p.scatter(points['x_post'], points['z_post'], color=points['color'])
    p.y_range.flipped = True
    """),
    md("## Skeletons"),
    code("""
    # Download some skeletons as DataFrames and attach columns for bodyId and color
    skeletons = []
    for i, bodyId in enumerate(eb_conns['bodyId_pre'].unique()):
        s = c.fetch_skeleton(bodyId, format='pandas')
        s['bodyId'] = bodyId
        s['color'] = bokeh.palettes.Accent[5][i]
        skeletons.append(s)
    # Combine into one big table for convenient processing
    skeletons = pd.concat(skeletons, ignore_index=True)
    skeletons.head()
    """),
    code("""
    # Join parent/child nodes for plotting as line segments below.
    # (Using each row's 'link' (parent) ID, find the row with matching rowId.)
    segments = skeletons.merge(skeletons, 'inner',
                               left_on=['bodyId', 'link'],
                               right_on=['bodyId', 'rowId'],
                               suffixes=['_child', '_parent'])
    p = figure()
    p.y_range.flipped = True
    # Plot skeleton segments (in 2D)
    p.segment(x0='x_child', x1='x_parent',
              y0='z_child', y1='z_parent',
              color='color_child', source=segments)
    # Also plot the synapses from the above example
    p.scatter(points['x_post'], points['z_post'], color=points['color'])
    """),
    code("""
    # check (not part of the tutorial): the tables have the tutorial's columns; a summary for the tests
    import json
    import os

    want = {
        "neuron_df": ['bodyId', 'type', 'instance'],  # fetch_adjacencies' (the last assignment)
        "roi_counts_df": ['bodyId', 'roi', 'pre', 'post', 'downstream', 'upstream', 'mito'],
        "conn_df": ['bodyId_pre', 'bodyId_post', 'roi', 'weight', 'type_pre', 'instance_pre',
                    'type_post', 'instance_post'],
        "eb_conns": ['bodyId_pre', 'bodyId_post', 'roi_pre', 'roi_post', 'x_pre', 'y_pre', 'z_pre',
                     'x_post', 'y_post', 'z_post', 'confidence_pre', 'confidence_post', 'type_pre',
                     'type_post'],
        "skeletons": ['rowId', 'x', 'y', 'z', 'radius', 'link', 'bodyId', 'color'],
    }
    got = {"neuron_df": list(neuron_df.columns), "roi_counts_df": list(roi_counts_df.columns),
           "conn_df": list(conn_df.columns), "eb_conns": list(eb_conns.columns),
           "skeletons": list(skeletons.columns)}
    assert got["conn_df"] == want["conn_df"] and got["eb_conns"] == want["eb_conns"], got
    assert got["skeletons"] == want["skeletons"] and got["roi_counts_df"] == want["roi_counts_df"], got
    assert got["neuron_df"] == want["neuron_df"], got
    summary = {
        "columns": got,
        "shapes": {"neuron_df": neuron_df.shape, "roi_counts_df": roi_counts_df.shape,
                   "conn_df": conn_df.shape, "matrix": matrix.shape, "eb_tbars": eb_tbars.shape,
                   "eb_conns": eb_conns.shape, "skeletons": skeletons.shape},
        "top5": top5_counts.index.tolist(),
        "fb4y": sorted(int(b) for b in eb_conns['bodyId_pre'].unique()),
    }
    work = Path(os.environ.get("CONNECTOME_DASK_NB_WORKDIR") or td.settings().workdir)
    (work / "neuprint_query_tutorial.summary.json").write_text(json.dumps(summary, indent=1))
    summary["shapes"]
    """, tags=["check"]),
]


# ============================================================================= crantpy port

CRANTPY_PORT = [
    md("""
    # A crantpy nested-matrix notebook, ported by changing its import

    The workflow of crantpy's nested connectivity matrices (`get_synapses`,
    `NestedMatrix`, `DirectedNestedMatrix`, `from_synapses_by_neuropil`,
    `NeuropilCollection.plot(All.minus(...))`) with `import crantpy as cp` replaced
    by `import connectome_dask.crantpy as cp`: same names, arguments, defaults and
    results, on a local store instead of crantpy's server. The only other change is
    where the neuropil meshes come from (`rois=`, see that cell).

    Data: the tutorial store of `query_tutorial.ipynb` (real hemibrain neuron
    table, synthetic synapses). Each result is checked against plain pandas.
    """),
    code(SETUP, tags=["parameters"]),
    code("""
    # the crantpy notebook:
    #     import crantpy as cp
    #     from crantpy.queries import All, DirectedNestedMatrix, NestedMatrix
    # ported by changing its import:
    import connectome_dask.crantpy as cp
    from connectome_dask.crantpy.queries import All, DirectedNestedMatrix, NestedMatrix

    conn = td.tutorial_store(S, progress=True)  # the local store plays crantpy's server (cp's default dataset)
    print(conn)
    """),
    md("""
    ## crantpy's inputs: annotations and `get_synapses` (positions in pixels, as crantpy)
    """),
    code("""
    # annotations with crantpy's columns (root_id, cell_type, cell_instance), for central-complex types
    neurons = conn.neurons.rename(columns={"bodyId": "root_id", "type": "cell_type", "instance": "cell_instance"})
    ann = neurons.loc[neurons["cell_type"].fillna("").str.match(r"EPG|PEG|PEN|Delta7|PFN|hDelta"),
                      ["root_id", "cell_type", "cell_instance"]]
    ids = ann["root_id"].tolist()
    syn = cp.get_synapses(pre_ids=ids, post_ids=ids)  # crantpy's defaults: threshold 1, clean, positions in pixels
    print(f"{len(ids)} neurons, {ann.cell_type.nunique()} types, {len(syn):,} synapses")
    syn.head()
    """),
    md("""
    ## NestedMatrix.from_synapses and its plots
    """),
    code("""
    m = NestedMatrix.from_synapses(syn, ann)  # weight_mode="relative_outgoing", annotation_scope="annotated_only"
    counts = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
    print(m)
    fig, ax = m.plot(level="neuron", figsize=(9, 8), linewidth_scale=0.3, output_path=str(FIG / "port_neuron.png"))
    plt.show()
    fig, ax = counts.plot(level="type_mean", figsize=(8, 7), output_path=str(FIG / "port_type_mean.png"))
    plt.show()
    counts.sum_type_matrix.iloc[:6, :6]
    """),
    code("""
    # check against plain pandas: synapses per (pre type, post type), every row annotated on both sides
    t = ann.drop_duplicates("root_id").set_index("root_id")["cell_type"]
    ref = (syn.assign(a=t.reindex(syn.pre_pt_root_id).to_numpy(), b=t.reindex(syn.post_pt_root_id).to_numpy())
           .dropna(subset=["a", "b"]).groupby(["a", "b"]).size().unstack(fill_value=0))
    got = counts.sum_type_matrix
    assert np.array_equal(got.loc[ref.index, ref.columns].to_numpy(), ref.to_numpy(dtype=float))
    assert got.to_numpy().sum() == ref.to_numpy().sum()
    rows = m.matrix.sum(axis=1)
    assert np.allclose(rows[rows > 0], 1.0)  # relative_outgoing: each presynaptic row sums to 1
    print("type sums and relative rows match pandas")
    """, tags=["check"]),
    md("""
    ## DirectedNestedMatrix: EPG/PEG onto their main targets, normalised over all partners
    """),
    code("""
    TARGETS = [c for c in counts.sum_type_matrix.columns if not c.startswith(("EPG", "PEG"))][:5]
    d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["EPG", "PEG"], target_types=TARGETS,
                                           normalization_scope="all")
    print(d)
    rs = d.matrix.sum(axis=1)
    assert (rs <= 1 + 1e-9).all()  # normalised over all partners of each source: a share of its output
    fig, ax = d.plot(level="type_sum", figsize=(8, 4), output_path=str(FIG / "port_directed.png"))
    plt.show()
    d.sum_type_matrix.round(3)
    """),
    md("""
    ## One matrix per neuropil

    A synapse counts in every listed neuropil whose mesh contains it; `"other"`
    holds those in none of them.
    """),
    code("""
    from connectome_dask.rois import RoiSet

    # crantpy loads its neuropil meshes by name; here the store's meshes are passed as rois= (the one extra
    # argument), and the synapse table has pre/post sites instead of crantpy's single centre point
    rois = RoiSet.from_store(conn)
    post_px = np.vstack(syn["post_pt_position"].to_numpy()).astype(float)
    nm = post_px * np.array(cp.SCALE)
    code = rois.assign(nm)  # each site's primary neuropil (-1 = none), one pass for all of them
    NEUROPILS = [rois.names[i] for i in np.argsort(-np.bincount(code[code >= 0]), kind="stable")[:3]]
    matrices = NestedMatrix.from_synapses_by_neuropil(
        syn, ann, neuropil_names=NEUROPILS, coordinates="pixels", position_column="post_pt_position",
        weight_mode="count", rois=rois)
    print(matrices)
    figs = matrices.plot(All.minus("other"), level="type_sum", figsize=(6, 5))
    for name, (fig, ax) in figs.items():
        fig.savefig(FIG / f"port_neuropil_{name}.png", dpi=80)
    plt.show()
    # check: a synapse counts in every listed neuropil containing it, "other" = in none of them
    both = t.reindex(syn.pre_pt_root_id).notna().to_numpy() & t.reindex(syn.post_pt_root_id).notna().to_numpy()
    masks = {n: np.asarray(rois.contains(nm, n)) & both for n in NEUROPILS}
    for n in NEUROPILS:
        assert matrices[n].to_scipy().sum() == masks[n].sum(), n
    other = both & ~np.any(list(masks.values()), axis=0)
    assert ("other" in matrices) == bool(other.any())
    if other.any():
        assert matrices["other"].to_scipy().sum() == other.sum()
    """),
    md("""
    ## Summary (read by `tests/test_notebooks.py`)
    """),
    code("""
    summary = {
        "synapses": int(len(syn)),
        "types": int(len(counts.type_boundaries)),
        "directed_shape": list(d.shape),
        "neuropils": list(matrices),
        "figures": sorted(str(p) for p in FIG.glob("port_*.png")),
    }
    (S.workdir / "crantpy_port.summary.json").write_text(json.dumps(summary, indent=1))
    summary
    """, tags=["check"]),
]


NOTEBOOKS = {
    "query_tutorial.ipynb": QUERY,
    "nested_matrices.ipynb": NESTED,
    "whole_brain_on_a_cluster.ipynb": CLUSTER,
    "neuprint_query_tutorial.ipynb": SEED,
    "crantpy_port.ipynb": CRANTPY_PORT,
}


def build(name: str, cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    # stable cell ids so regenerating gives identical files
    for i, c in enumerate(nb.cells):
        c["id"] = f"{Path(name).stem[:20]}-{i:02d}"
    return nb


def main(argv: list[str] | None = None) -> int:
    for name, cells in NOTEBOOKS.items():
        nb = build(name, cells)
        nbformat.validate(nb)
        (HERE / name).write_text(nbformat.writes(nb) + "\n")
        print("wrote", HERE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
