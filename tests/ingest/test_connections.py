"""Connection-level stores: every release's connection files, counts without positions.

References: pandas groupbys of the synthetic synapses the connection files
were derived from (and of the files themselves), and the synapse-level store
of the same connectome.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from connectome_dask.aggregate import adjacency, pair_counts
from connectome_dask.compute import nt as NT
from connectome_dask.compute.roi_counts import neuron_roi_counts
from connectome_dask.ingest import IngestError, ingest
from connectome_dask.store import Connectome, StoreError
from connectome_dask.store.format import write_meta

from . import _releases as R

REF_NAMES = {
    "flywire-783": R.NEUROPILS,
    "codex": ["AVLP_R", "AVLP_L", "ME_R", None],  # UNASGD: in no ROI
    "neuprint-compact": [R.ROIS[0], R.ROIS[1], R.ROIS[2], None],  # NotPrimary: in no ROI
}


@pytest.fixture(scope="module")
def syn() -> pd.DataFrame:
    return R.connectome(n_syn=500, n_neurons=14, seed=11)


@pytest.fixture(scope="module")
def stores(syn, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conn")
    out = {}
    for name, write in R.CONNECTION_WRITERS.items():
        out[name] = ingest(write(syn, tmp / name), tmp / f"store-{name}", progress=False, chunk_rows=16)
    out["codex-v630"] = ingest(R.write_codex_connections(syn, tmp / "v630", headerless=True), tmp / "store-v630",
                               progress=False)
    out["synapses"] = ingest(R.write_flywire(syn, tmp / "syn"), tmp / "store-syn", progress=False)
    return out


def body_pairs(conn, df: pd.DataFrame) -> pd.DataFrame:
    body = conn.neurons["bodyId"].to_numpy()
    out = df.copy()
    out["pre"] = body[df["pre"].to_numpy()]
    out["post"] = body[df["post"].to_numpy()]
    return out


def test_every_connection_dialect_gives_the_pair_totals(stores, syn):
    ref = syn.groupby(["pre", "post"]).size().rename("weight").reset_index()
    ref_pre = syn.groupby("pre").size()
    ref_post = syn.groupby("post").size()
    for name, conn in stores.items():
        if name == "synapses":
            continue
        assert conn.kind == "connections", name
        assert conn.meta["kind"] == "connections" and conn.meta["schema_version"] == 2
        assert conn.total_weight == len(syn), name
        for method in ("scan", "table", "auto"):
            got = body_pairs(conn, pair_counts(conn, method=method, progress=False))
            pd.testing.assert_frame_equal(got.sort_values(["pre", "post"]).reset_index(drop=True), ref,
                                          check_dtype=False, obj=f"{name} {method}")
        nt = conn.neurons.set_index("bodyId")
        assert nt.loc[ref_pre.index, "pre"].tolist() == ref_pre.tolist(), name
        assert nt.loc[ref_post.index, "post"].tolist() == ref_post.tolist(), name


def test_index_path_and_min_weight(stores, syn):
    conn = stores["codex"]
    some = np.unique(syn["pre"])[:2]
    ref = syn[syn["pre"].isin(some)].groupby(["pre", "post"]).size()
    got = body_pairs(conn, pair_counts(conn, pre=some, method="index", progress=False))
    assert got.set_index(["pre", "post"])["weight"].to_dict() == ref.to_dict()
    got = body_pairs(conn, pair_counts(conn, post=some, method="index", progress=False))
    ref = syn[syn["post"].isin(some)].groupby(["pre", "post"]).size()
    assert got.set_index(["pre", "post"])["weight"].to_dict() == ref.to_dict()
    # min_weight judges whole pairs: the sum over a pair's ROI rows
    tot = syn.groupby(["pre", "post"]).size()
    got = body_pairs(conn, pair_counts(conn, min_weight=3, method="scan", progress=False))
    assert got.set_index(["pre", "post"])["weight"].to_dict() == tot[tot >= 3].to_dict()


@pytest.mark.parametrize("name", ["flywire-783", "codex", "codex-v630", "neuprint-compact"])
def test_per_roi_counts_and_adjacency(stores, syn, name):
    conn = stores[name]
    names = REF_NAMES["codex" if name == "codex-v630" else name]
    ref = syn.assign(roi=[names[i] for i in syn["roi"]])
    got = body_pairs(conn, pair_counts(conn, by_roi=True, progress=False))
    lab = np.array(conn.roi_names + [None], dtype=object)
    got["roi"] = lab[got["roi"].to_numpy()]
    want = ref.groupby(["pre", "post", "roi"], dropna=False).size()
    assert {(p, q, None if pd.isna(r) else r): v for p, q, r, v in got[["pre", "post", "roi", "weight"]].itertuples(
        index=False)} == {(p, q, None if pd.isna(r) else r): v for (p, q, r), v in want.items()}
    roi = next(n for n in names if n)
    A = adjacency(conn, rois=[roi], progress=False)
    sub = ref[ref["roi"] == roi].groupby(["pre", "post"]).size()
    M = pd.DataFrame(A.data.todense(), index=A.coords["pre"].values, columns=A.coords["post"].values)
    assert {(p, q): int(M.loc[p, q]) for p, q in sub.index} == sub.to_dict()
    assert int(M.to_numpy().sum()) == int(sub.sum())
    counts = neuron_roi_counts(conn, cache=False)
    code = conn.roi_names.index(roi)
    down = counts[counts["roi"] == code].set_index("index")["downstream"]
    body = conn.neurons["bodyId"].to_numpy()
    assert {int(body[i]): int(v) for i, v in down.items()} == ref[ref["roi"] == roi].groupby("pre").size().to_dict()


def test_codex_v630_headerless_file(stores, tmp_path, syn):
    path = R.write_codex_connections(syn, tmp_path / "v", headerless=True) / "connections_no_threshold.csv.gz"
    raw = pd.read_csv(path, header=None)
    assert str(raw.iloc[0, 0]).isdigit()  # the first row is data
    conn = stores["codex-v630"]
    got = body_pairs(conn, pair_counts(conn, progress=False)).set_index(["pre", "post"])["weight"]
    assert got.to_dict() == raw.groupby([0, 1])[3].sum().to_dict()


def test_grouped_adjacency_same_as_the_synapse_store(stores):
    syn_store = stores["synapses"]
    for name in ("flywire-783", "codex", "neuprint-compact"):
        conn = stores[name]
        for method in ("scan", "table"):
            a = adjacency(conn, by="type", method=method, progress=False)
            b = adjacency(syn_store, by="type", progress=False)
            assert a.coords["pre"].values.tolist() == b.coords["pre"].values.tolist()
            np.testing.assert_array_equal(a.values, b.values)
        f = adjacency(conn, by="type", normalize="post", progress=False)
        g = adjacency(syn_store, by="type", normalize="post", progress=False)
        np.testing.assert_allclose(f.values, g.values, rtol=1e-15)


def test_nt_on_proofread_connections_weighted_by_syn_count(stores):
    a = NT.neuron_nt(stores["flywire-783"], progress=False).set_index("bodyId")
    b = NT.neuron_nt(stores["synapses"], progress=False).set_index("bodyId").loc[a.index]
    assert a["n_synapses"].tolist() == b["n_synapses"].tolist()
    assert a["top_nt"].tolist() == b["top_nt"].tolist()
    for c in ("ach", "gaba", "glut"):  # *_avg are float32 means: equal to float32 precision
        np.testing.assert_allclose(a[f"nt_{c}"], b[f"nt_{c}"], rtol=1e-6)
    s1 = adjacency(stores["flywire-783"], sign="nt", progress=False)
    s2 = adjacency(stores["synapses"], sign="nt", progress=False)
    np.testing.assert_array_equal(s1.data.todense(), s2.data.todense())


def test_fetch_adjacencies_and_nested_matrix_on_a_connection_store(stores):
    from connectome_dask.matrix import NestedMatrix
    from connectome_dask.queries import fetch_adjacencies

    conn, ref = stores["flywire-783"], stores["synapses"]
    n1, c1 = fetch_adjacencies(None, None, client=conn, progress=False)
    n2, c2 = fetch_adjacencies(None, None, client=ref, progress=False)
    key = ["bodyId_pre", "bodyId_post", "roi"]
    pd.testing.assert_frame_equal(c1.sort_values(key).reset_index(drop=True),
                                  c2.sort_values(key).reset_index(drop=True), check_dtype=False)
    from connectome_dask.queries import fetch_neurons

    (a, _), (b, _) = fetch_neurons(None, client=conn), fetch_neurons(None, client=ref)
    assert a["pre"].tolist() == b["pre"].tolist() and a["post"].tolist() == b["post"].tolist()
    m1 = NestedMatrix.from_synapses(conn, cell_type_column="type", neuron_id_column="bodyId",
                                    weight_mode="count", progress=False)
    m2 = NestedMatrix.from_synapses(ref, cell_type_column="type", neuron_id_column="bodyId",
                                    weight_mode="count", progress=False)
    def dense(m):
        v = m.to_xarray().data
        return v.todense() if hasattr(v, "todense") else np.asarray(v)

    np.testing.assert_array_equal(dense(m1), dense(m2))


def test_positions_raise_naming_the_store_kind(stores):
    conn = stores["codex"]
    with pytest.raises(StoreError, match="connection-level store"):
        conn.read_synapses(["x_pre"])
    with pytest.raises(StoreError, match="connection-level store"):
        conn.site_columns("post")
    with pytest.raises(StoreError, match=r"assign_rois.*connection-level store \(kind 'connections'"):
        conn.assign_rois(None)
    with pytest.raises(KeyError, match="no confidence column"):
        pair_counts(conn, confidence=0.5, progress=False)


def test_synapse_stores_keep_schema_1_and_an_unknown_kind_is_refused(stores):
    conn = stores["synapses"]
    assert conn.meta["schema_version"] == 1 and "kind" not in conn.meta and conn.kind == "synapses"
    meta = dict(conn.meta)
    meta.pop("checksum", None)
    write_meta(conn.path, {**meta, "kind": "edges"})
    with pytest.raises(StoreError, match="'kind' must be one of"):
        Connectome(conn.path)
    write_meta(conn.path, {**meta, "kind": "connections"})
    with pytest.raises(StoreError, match="needs schema_version >= 2"):
        Connectome(conn.path)
    write_meta(conn.path, meta)
    assert Connectome(conn.path).kind == "synapses"


def test_bad_weights_are_refused_and_nothing_is_written(tmp_path):
    f = tmp_path / "traced-total-connections.csv"
    pd.DataFrame({"bodyId_pre": [1, 2, 3], "bodyId_post": [2, 3, 1], "weight": [4, 0, 2]}).to_csv(f, index=False)
    with pytest.raises(IngestError, match=r"traced-total-connections\.csv: column 'weight', row 1: .*positive") as e:
        ingest(f, tmp_path / "store", progress=False)
    assert (e.value.column, e.value.row) == ("weight", 1)
    assert not (tmp_path / "store").exists()
    pd.DataFrame({"bodyId_pre": [1], "bodyId_post": [2], "weight": [1.5]}).to_csv(f, index=False)
    with pytest.raises(IngestError, match="must hold integers"):
        ingest(f, tmp_path / "store", progress=False)
    pd.DataFrame({"bodyId_pre": [1], "bodyId_post": [2]}).to_csv(f, index=False)
    with pytest.raises(IngestError, match=r"column 'weight'.*required by dialect 'neuprint-compact'.*row 0"):
        ingest(f, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()


def test_generic_connection_table_and_chunk_size_invariance(tmp_path, syn):
    tot = syn.assign(roi=[R.NEUROPILS[i] for i in syn["roi"]]).groupby(["pre", "post", "roi"]).size()
    df = tot.rename("n").reset_index().sample(frac=1.0, random_state=0)
    kw = {"kind": "connections", "columns": {"pre": "pre", "post": "post", "weight": "n", "roi_post": "roi"},
          "progress": False}
    a = ingest(df, tmp_path / "a", chunk_rows=4, **kw)
    b = ingest(df, tmp_path / "b", **kw)
    for method in ("scan", "table"):
        pd.testing.assert_frame_equal(pair_counts(a, method=method, progress=False),
                                      pair_counts(b, method=method, progress=False))
    pd.testing.assert_frame_equal(pair_counts(a, by_roi=True, progress=False),
                                  pair_counts(b, by_roi=True, progress=False))
    assert a.total_weight == len(syn)
    assert json.loads(json.dumps(a.meta["extra"]["ingest"]["columns"]))["weight"] == "n"


def test_cli_kind_picks_the_connection_files_of_a_release(tmp_path, syn):
    import argparse

    from connectome_dask.cli import add_ingest_arguments, run_ingest

    rel = R.write_flywire(syn, tmp_path / "rel")
    R.write_flywire_connections(syn, rel)  # both levels in one folder
    parse = add_ingest_arguments(argparse.ArgumentParser()).parse_args
    a = run_ingest(parse([str(rel), str(tmp_path / "a"), "--no-progress"]))
    b = run_ingest(parse([str(rel), str(tmp_path / "b"), "--kind", "connections", "--no-progress"]))
    assert (a.kind, a.n_synapses) == ("synapses", len(syn))
    assert (b.kind, b.total_weight) == ("connections", len(syn))
    assert b.meta["extra"]["ingest"]["release"]["synapses"][0].endswith("proofread_connections_783.feather")


def test_fetch_synapses_on_a_connection_store_names_the_kind(stores):
    from connectome_dask.queries import fetch_synapse_connections, fetch_synapses

    conn = stores["neuprint-compact"]
    with pytest.raises(StoreError, match=r"fetch_synapses needs synapse positions, but .* is a connection-level"):
        conn.require_synapses("fetch_synapses")  # what the query should call first
    with pytest.raises(StoreError, match=r"fetch_synapses needs synapse positions, but .* is a connection-level"):
        fetch_synapses(conn.neurons["bodyId"].iloc[:1].tolist(), client=conn, progress=False)
    with pytest.raises(StoreError, match=r"fetch_synapse_connections needs synapse positions.*connection-level"):
        fetch_synapse_connections(conn.neurons["bodyId"].iloc[:1].tolist(), None, client=conn)


def test_neo4j_connections_per_primary_roi_from_roiinfo(tmp_path, syn):
    import csv

    rel = R.write_neo4j_connections(syn, tmp_path / "rel")
    primary = R.ROIS[:3]  # the fourth ROI's synapses count as outside every primary ROI
    with open(rel / "Neuprint_Meta_hemibrain.csv", "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow(["voxelSize:float[]", "primaryRois:string[]", "roiHierarchy:string", "dataset:string"])
        w.writerow(["8.0;8.0;8.0", ";".join(primary), json.dumps(R.HIERARCHY), "hemibrain"])
    conn = ingest(rel, tmp_path / "store", progress=False)
    assert conn.kind == "connections" and sorted(conn.roi_names) == sorted(primary)
    ref = syn.assign(roi=[R.ROIS[i] if R.ROIS[i] in primary else None for i in syn["roi"]])
    want = ref.groupby(["pre", "post", "roi"], dropna=False).size()
    got = body_pairs(conn, pair_counts(conn, by_roi=True, progress=False))
    lab = np.array(conn.roi_names + [None], dtype=object)
    got["roi"] = lab[got["roi"].to_numpy()]
    assert {(p, q, None if pd.isna(r) else r): v for p, q, r, v in got[["pre", "post", "roi", "weight"]].itertuples(
        index=False)} == {(p, q, None if pd.isna(r) else r): v for (p, q, r), v in want.items()}
    assert conn.total_weight == len(syn)


def test_index_roi_counts_of_a_few_neurons_are_weighted(stores):
    from connectome_dask.compute.roi_counts import roi_counts_of

    conn, ref = stores["flywire-783"], stores["synapses"]
    idx = np.arange(0, conn.n_neurons, 3)
    key = ["index", "roi"]
    a = roi_counts_of(conn, idx).sort_values(key).reset_index(drop=True)
    b = roi_counts_of(ref, idx).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    whole = neuron_roi_counts(ref, cache=False)
    whole = whole[np.isin(whole["index"], idx)].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(b[whole.columns], whole, check_dtype=False)


def test_fetch_neurons_roi_counts_on_a_connection_store(stores):
    from connectome_dask.queries import fetch_neurons

    (_, ra), (_, rb) = fetch_neurons(None, client=stores["flywire-783"]), fetch_neurons(None, client=stores["synapses"])
    key = ["bodyId", "roi"]
    pd.testing.assert_frame_equal(ra.sort_values(key).reset_index(drop=True),
                                  rb.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_hemibrain_body_nt_table_gives_signed_compact_adjacency(tmp_path, syn):
    import pyarrow as pa
    import pyarrow.feather as feather

    rel = R.write_neuprint_compact(syn, tmp_path / "rel")
    ids = R.neuron_ids(syn)
    calls = np.array(["acetylcholine", "gaba", "glutamate", "dopamine", "neither"])[np.arange(len(ids)) % 5]
    probs = {c: np.full(len(ids), 0.1) for c in ("gaba", "acetylcholine", "glutamate", "serotonin", "octopamine",
                                                  "dopamine", "neither")}
    feather.write_feather(pa.table({"body": ids, "type": ["x"] * len(ids), "instance": ["x"] * len(ids),
                                    "statusLabel": ["Traced"] * len(ids), **probs, "predicted_nt": calls}),
                          rel / "hemibrain-v1.2-body-mean-neurotransmitters.feather")
    conn = ingest(rel, tmp_path / "store", progress=False)
    nt = conn.neurons.set_index("bodyId")
    assert nt.loc[ids, "predicted_nt"].tolist() == calls.tolist()
    assert nt.loc[ids, "type"].tolist() == [f"T{i % 3}" for i in range(len(ids))]  # traced-neurons.csv wins
    sign = dict(zip(ids, [{"gaba": -1, "glutamate": -1}.get(c, 1) for c in calls], strict=True))
    ref = syn.assign(w=syn["pre"].map(sign)).pivot_table(index="pre", columns="post", values="w", aggfunc="sum",
                                                          fill_value=0)
    A = adjacency(conn, sign="nt", progress=False)
    got = pd.DataFrame(A.data.todense(), index=A.coords["pre"].values, columns=A.coords["post"].values)
    np.testing.assert_array_equal(got.loc[ref.index, ref.columns].to_numpy(), ref.to_numpy())


def test_a_float_weight_column_of_a_synapse_store_stays_float(tmp_path):
    df = pd.DataFrame({"pre_pt_root_id": [1, 2], "post_pt_root_id": [2, 1], "w": [0.25, 1.5]})
    conn = ingest(df, tmp_path / "s", columns={"weight": "w"}, progress=False)
    assert conn.kind == "synapses" and conn.weight_column is None
    assert sorted(conn.read_synapses(["weight"])["weight"].tolist()) == [0.25, 1.5]
    assert pair_counts(conn, progress=False)["weight"].tolist() == [1, 1]  # rows, not the column


def test_cli_info_counts_synapses_of_a_connection_store(stores, syn, capsys):
    from connectome_dask.cli import main as cli_main

    conn = stores["codex"]
    assert cli_main(["info", str(conn.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    per_pair_roi = syn.groupby(["pre", "post", "roi"]).size()  # the connection rows the release holds
    assert (info["kind"], info["synapses"], info["connection rows"]) == ("connections", len(syn), len(per_pair_roi))
    syn_store = stores["synapses"]
    assert cli_main(["info", str(syn_store.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["kind"], info["synapses"]) == ("synapses", len(syn)) and "connection rows" not in info
