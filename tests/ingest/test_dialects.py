"""Release dialects: every release's files, written in their exact schemas, round trip.

References are the fixture files read back with pandas / pyarrow in the test
(forward fill, prefix, voxel sizes, joins done here independently).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from connectome_dask.aggregate import pair_counts
from connectome_dask.cli import add_ingest_arguments, run_ingest
from connectome_dask.ingest import IngestError, dialects, ingest
from connectome_dask.rois.model import RoiModel

from . import _releases as R


@pytest.fixture(scope="module")
def syn() -> pd.DataFrame:
    return R.connectome()


def decoded(conn, columns=()) -> pd.DataFrame:
    arrs = conn.read_synapses(["pre", "post", *columns])
    body = conn.neurons["bodyId"].to_numpy()
    out = pd.DataFrame({"pre": body[arrs["pre"]], "post": body[arrs["post"]]})
    for c in columns:
        out[c] = arrs[c]
    return out


def same_rows(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    cols = list(ref.columns)
    assert sorted(got.columns) == sorted(cols)
    a = got[cols].sort_values(cols).reset_index(drop=True)
    b = ref[cols].sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def roi_names(conn, col="roi_post") -> list:
    codes = conn.read_synapses([col])[col]
    names = np.array(conn.roi_names + [None], dtype=object)
    return names[codes].tolist()  # -1 -> None


# ----------------------------------------------------------------------------- flywire-783


@pytest.mark.parametrize("batch_rows", [37, 1 << 20])
def test_flywire_783_feather_annotations_nt_neuropil(tmp_path, syn, batch_rows):
    rel = R.write_flywire(syn, tmp_path / "rel", batch=50)
    path = rel / "flywire_synapses_783.feather"
    assert pa.ipc.open_file(path).num_record_batches > 5
    conn = ingest(rel, tmp_path / "store", progress=False, batch_rows=batch_rows, chunk_rows=64)
    src = feather.read_table(path).to_pandas()
    ref = pd.DataFrame({"pre": src["pre_pt_root_id"], "post": src["post_pt_root_id"]})
    for side in ("pre", "post"):
        for a in "xyz":
            ref[f"{a}_{side}"] = src[f"{side}_pt_position_{a}"].astype(np.float32)
    ref["confidence"] = src["connection_score"]
    ref["cleft_score"] = src["cleft_score"]
    for c in R.NT:
        ref[f"nt_{c}"] = src[c]
    cols = [c for c in ref.columns if c not in ("pre", "post")]
    got = decoded(conn, cols)
    got["roi"] = roi_names(conn)
    ref["roi"] = src["neuropil"].astype(str)
    same_rows(got, ref)
    assert conn.meta["extra"]["ingest"]["dialect"] == "flywire-783"
    assert "presynaptic" in conn.meta["extra"]["ingest"]["rois"]
    m = RoiModel.of(conn)
    assert sorted(m.children["AVLP"]) == ["AVLP_L", "AVLP_R"]
    assert [conn.roi_names[c] for c in m.codes_for("AVLP")] == ["AVLP_L", "AVLP_R"]
    ann = pd.read_csv(rel / "Supplemental_file1_neuron_annotations.tsv", sep="\t")
    nt = conn.neurons.set_index("bodyId")
    assert nt.loc[ann["root_id"], "type"].tolist() == ann["cell_type"].tolist()
    assert nt.loc[ann["root_id"], "super_class"].tolist() == ann["super_class"].tolist()


def test_claimed_dialect_missing_column_names_file_column_row(tmp_path, syn):
    rel = R.write_flywire(syn, tmp_path / "rel")
    path = rel / "flywire_synapses_783.feather"
    t = feather.read_table(path).drop_columns(["post_pt_position_y"])
    feather.write_feather(t, path)
    with pytest.raises(IngestError, match=r"flywire_synapses_783\.feather: column 'post_pt_position_y'.*"
                       r"dialect 'flywire-783'.*row 0") as e:
        ingest(path, tmp_path / "store", dialect="flywire-783", progress=False)
    assert (e.value.column, e.value.row) == ("post_pt_position_y", 0)
    assert not (tmp_path / "store").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]  # nothing written beside either


def test_second_file_missing_a_column_is_refused_before_any_work(tmp_path, syn):
    rel = R.write_janelia(syn, tmp_path / "rel")
    t = feather.read_table(rel / "syn-partners-test-minconf-0.5.feather")
    feather.write_feather(t.drop_columns(["conf_pre"]), rel / "syn-partners-test2-minconf-0.5.feather")
    with pytest.raises(IngestError, match=r"test2.*'conf_pre'") as e:
        ingest(rel, tmp_path / "store", progress=False)
    assert e.value.column == "conf_pre"
    assert not (tmp_path / "store").exists()


# ----------------------------------------------------------------------------- codex


def _codex_reference(path) -> pd.DataFrame:
    src = pd.read_csv(path, dtype={"pre_root_id": "Int64", "post_root_id": "Int64"})
    src[["pre_root_id", "post_root_id"]] = src[["pre_root_id", "post_root_id"]].ffill()
    return pd.DataFrame({"pre": src["pre_root_id"].astype(np.int64), "post": src["post_root_id"].astype(np.int64),
                         "x": src["x"].astype(np.float32), "y": src["y"].astype(np.float32),
                         "z": src["z"].astype(np.float32)})


@pytest.mark.parametrize("batch_rows", [5, 1 << 20])
def test_codex_synapse_coordinates_forward_fill(tmp_path, syn, batch_rows):
    rel = R.write_codex(syn, tmp_path / "rel")
    path = rel / "synapse_coordinates.csv.gz"
    with gzip.open(path, "rt") as f:
        blanks = sum(1 for r in csv.reader(f) if r[0] == "")
    assert blanks > 100  # the quirk is exercised
    conn = ingest(rel, tmp_path / "store", progress=False, batch_rows=batch_rows)
    same_rows(decoded(conn, ["x", "y", "z"]), _codex_reference(path))
    classif = pd.read_csv(rel / "classification.csv.gz")
    types = pd.read_csv(rel / "consolidated_cell_types.csv.gz")
    nt = conn.neurons.set_index("bodyId")
    assert nt.loc[types["root_id"], "type"].tolist() == types["primary_type"].tolist()
    assert nt.loc[classif["root_id"], "flow"].tolist() == classif["flow"].tolist()
    assert nt.loc[types["root_id"], "nt_type"].tolist() == ["ACH"] * len(types)


def test_codex_first_row_blank_id_is_an_error(tmp_path, syn):
    rel = R.write_codex(syn, tmp_path / "rel")
    path = rel / "synapse_coordinates.csv.gz"
    with gzip.open(path, "rt") as f:
        rows = list(csv.reader(f))
    rows[1][1] = ""
    with gzip.open(path, "wt", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(IngestError, match=r"synapse_coordinates\.csv\.gz: column 'post_root_id', row 0: .*blank"
                       ) as e:
        ingest(rel, tmp_path / "store", progress=False)
    assert (e.value.column, e.value.row) == ("post_root_id", 0)
    assert not (tmp_path / "store").exists()


def test_codex_princeton_prefix_stripped_ids(tmp_path, syn):
    rel = R.write_princeton(syn, tmp_path / "rel")
    path = rel / "fafb_v783_princeton_synapse_table.csv.gz"
    conn = ingest(path, tmp_path / "store", progress=False)
    assert conn.meta["extra"]["ingest"]["dialect"] == "codex"
    src = pd.read_csv(path)
    ref = pd.DataFrame({"pre": src["pre_root_id_720575940"].astype(np.int64) + 720575940 * 10**9,
                        "post": src["post_root_id_720575940"].astype(np.int64) + 720575940 * 10**9})
    for side in ("pre", "post"):
        for a in "xyz":
            ref[f"{a}_{side}"] = src[f"{side}_{a}"].astype(np.float32)
    ref["size"] = src["size"].astype(np.float32)
    got = decoded(conn, [c for c in ref.columns if c not in ("pre", "post")])
    same_rows(got, ref)
    assert int(ref["pre"].min()) > 2**53
    assert roi_names(conn) == src.sort_values(["pre_root_id_720575940", "post_root_id_720575940"],
                                              kind="stable")["neuropil"].tolist()


def test_codex_position_strings_are_read(tmp_path):
    # Codex position strings: numpy repr with runs of spaces, or comma-separated
    df = pd.DataFrame({"pre_root_id": [5, 6], "post_root_id": [6, 5],
                       "position": ["[437536   163288 81960]", "[4, 4, 40]"]})
    df.to_csv(tmp_path / "synapse_coordinates.csv", index=False)
    for kw in ({}, {"dialect": "codex", "columns": {"position": "position"}}):
        conn = ingest(tmp_path / "synapse_coordinates.csv", tmp_path / "store", progress=False,
                      overwrite=True, **kw)
        got = decoded(conn, ["x", "y", "z"]).sort_values("pre")
        assert got[["x", "y", "z"]].to_numpy().tolist() == [[437536, 163288, 81960], [4, 4, 40]]


def test_connection_level_file_found_when_no_synapse_file(tmp_path):
    (tmp_path / "rel").mkdir()
    pd.DataFrame({"pre_root_id": [1], "post_root_id": [2], "neuropil": ["ME_R"], "syn_count": [3],
                  "nt_type": ["ACH"]}).to_csv(tmp_path / "rel" / "connections.csv.gz", index=False)
    with pytest.raises(IngestError, match=r"no synapse file of dialect 'codex' \(file names"):
        ingest(tmp_path / "rel", tmp_path / "store", dialect="codex", kind="synapses", progress=False)
    conn = ingest(tmp_path / "rel", tmp_path / "store", progress=False)
    assert (conn.kind, conn.total_weight, conn.roi_names) == ("connections", 3, ["ME_R"])


# ----------------------------------------------------------------------------- neuPrint neo4j


def test_neo4j_export_join_points_roi_booleans_meta(tmp_path, syn):
    rel = R.write_neo4j(syn, tmp_path / "rel")
    conn = ingest(rel, tmp_path / "store", progress=False)
    assert conn.meta["voxel_size"] == [8.0, 8.0, 8.0]
    # reference join with pandas
    sites = pd.read_csv(rel / "Neuprint_Synapses_hemibrain.csv")
    links = pd.read_csv(rel / "Neuprint_Synapse_Connections_hemibrain.csv")
    s2s = pd.read_csv(rel / "Neuprint_SynapseSet_to_Synapses_hemibrain.csv")
    n2s = pd.read_csv(rel / "Neuprint_Neuron_to_SynapseSet_hemibrain.csv")
    body = s2s.merge(n2s, left_on=":START_ID(SynSet-ID)", right_on=":END_ID(SynSet-ID)")
    body = body.set_index(":END_ID(Syn-ID)")[":START_ID(Body-ID)"]
    xyz = sites["location:point{srid:9157}"].str.extract(r"\{x:(-?\d+), y:(-?\d+), z:(-?\d+)\}").astype(float)
    xyz.index = sites[":ID(Syn-ID)"]
    conf = sites.set_index(":ID(Syn-ID)")["confidence:float"]
    ref = pd.DataFrame({"pre": body.loc[links[":START_ID(Syn-ID)"]].to_numpy(),
                        "post": body.loc[links[":END_ID(Syn-ID)"]].to_numpy()})
    for side, col in (("pre", ":START_ID(Syn-ID)"), ("post", ":END_ID(Syn-ID)")):
        for k, a in enumerate("xyz"):
            ref[f"{a}_{side}"] = (xyz.loc[links[col], k].to_numpy() * 8).astype(np.float32)
        ref[f"confidence_{side}"] = conf.loc[links[col]].to_numpy().astype(np.float32)
    got = decoded(conn, [c for c in ref.columns if c not in ("pre", "post")])
    same_rows(got, ref)
    # the most specific true ROI column: a'L(R) (not its parent MB(R), also true)
    rois = [c[: -len(":boolean")] for c in sites.columns if c.endswith(":boolean")]
    flags = sites.set_index(":ID(Syn-ID)")[[f"{r}:boolean" for r in rois]].fillna(False).astype(bool)
    want = [next(r for r in rois if r != "MB(R)" and flags.loc[s, f"{r}:boolean"]) for s in links[":END_ID(Syn-ID)"]]
    got_roi = decoded(conn).assign(roi=roi_names(conn))
    ref_roi = ref[["pre", "post"]].assign(roi=want)
    assert sorted(map(tuple, got_roi.to_numpy().tolist())) == sorted(map(tuple, ref_roi.to_numpy().tolist()))
    assert "MB(R)" not in conn.roi_names
    m = RoiModel.of(conn)
    assert m.parent["a'L(R)"] == "MB(R)"
    assert sorted(conn.roi_names[c] for c in m.codes_for("MB(R)")) == ["MB(+ACA)(R)", "a'L(R)"]
    assert sorted(m.primary) == sorted(R.ROIS)
    # neurons: typed headers, doubled-quote JSON, points, ;-joined labels
    raw = pd.read_csv(rel / "Neuprint_Neurons_hemibrain.csv")
    nt = conn.neurons.set_index("bodyId").loc[raw["bodyId:long"]]
    assert [json.loads(v) for v in nt["roiInfo"]] == [json.loads(v) for v in raw["roiInfo:string"]]
    assert nt["type"].tolist() == raw["type:string"].tolist()
    assert [list(v) for v in nt["somaLocation"]] == [
        [int(x) for x in v.strip("{}").replace("x:", "").replace("y:", "").replace("z:", "").split(",")]
        for v in raw["somaLocation:point{srid:9157}"]]
    assert nt["label"].tolist() == ["Neuron" if "Neuron" in v.split(";") else "Segment" for v in raw[":LABEL"]]
    assert nt["cropped"].fillna(False).tolist() == (raw["cropped:boolean"] == True).tolist()  # noqa: E712
    assert not any(c.endswith(":boolean") or c in R.ROIS for c in conn.neurons.columns)


def test_neo4j_bad_point_is_named(tmp_path, syn):
    rel = R.write_neo4j(syn.head(20), tmp_path / "rel")
    path = rel / "Neuprint_Synapses_hemibrain.csv"
    text = path.read_text().replace("{x:", "{q:", 1)
    path.write_text(text)
    with pytest.raises(IngestError, match=r"location:point\{srid:9157\}', row 0: point '\{q:"):
        ingest(rel, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()


# ----------------------------------------------------------------------------- janelia, microns, banc


def test_janelia_flat_voxels_rois_and_annotations(tmp_path, syn):
    rel = R.write_janelia(syn, tmp_path / "rel")
    conn = ingest(rel, tmp_path / "store", progress=False)
    src = feather.read_table(rel / "syn-partners-test-minconf-0.5.feather").to_pandas()
    ref = pd.DataFrame({"pre": src["body_pre"], "post": src["body_post"]})
    for side in ("pre", "post"):
        for a in "xyz":
            ref[f"{a}_{side}"] = (src[f"{a}_{side}"] * 8).astype(np.float32)
        ref[f"confidence_{side}"] = src[f"conf_{side}"]
    got = decoded(conn, [c for c in ref.columns if c not in ("pre", "post")])
    got["roi"] = roi_names(conn)
    ref["roi"] = src["primary_post"]
    same_rows(got, ref)
    assert "CRE(-ROB,-RUB)(R)" in conn.roi_names  # a name with commas and parentheses
    nts = feather.read_table(rel / "body-neurotransmitters-test.feather").to_pandas()
    nt = conn.neurons.set_index("bodyId")
    assert nt.loc[nts["body"], "predicted_nt"].tolist() == nts["predicted_nt"].tolist()
    assert nt.loc[nts["body"], "type"].tolist() == [f"T{i % 3}" for i in range(len(nts))]


@pytest.mark.parametrize("split", [False, True])
def test_microns_voxels_arrays_or_split(tmp_path, syn, split):
    rel = R.write_microns(syn, tmp_path / "rel", split=split)
    conn = ingest(rel, tmp_path / "store", progress=False)
    assert conn.meta["voxel_size"] == [4.0, 4.0, 40.0]
    src = pq.read_table(rel / "synapses_pni_2.parquet").to_pandas()
    ref = pd.DataFrame({"pre": src["pre_pt_root_id"], "post": src["post_pt_root_id"]})
    for side in ("pre", "post"):
        xyz = (np.stack([src[f"{side}_pt_position_{a}"] for a in "xyz"], axis=1) if split
               else np.stack(src[f"{side}_pt_position"].to_numpy()))
        for k, a in enumerate("xyz"):
            ref[f"{a}_{side}"] = (xyz[:, k] * (4, 4, 40)[k]).astype(np.float32)
    ref["size"] = src["size"].astype(np.float32)
    same_rows(decoded(conn, [c for c in ref.columns if c not in ("pre", "post")]), ref)


def test_microns_fetched_at_nm(tmp_path, syn):
    rel = R.write_microns(syn, tmp_path / "rel")
    conn = ingest(rel, tmp_path / "store", units="nm", progress=False)
    src = pq.read_table(rel / "synapses_pni_2.parquet").to_pandas()
    got = decoded(conn, ["x_pre"])
    assert sorted(got["x_pre"]) == sorted(np.stack(src["pre_pt_position"].to_numpy())[:, 0].astype(np.float32))


def test_banc_string_ids_nt_neuropil_and_neuron_quirks(tmp_path, syn):
    rel = R.write_banc(syn, tmp_path / "rel")
    conn = ingest(rel, tmp_path / "store", progress=False)
    src = pq.read_table(rel / "banc_888_synapses_v2_enriched.parquet").to_pandas()
    assert pa.types.is_string(pq.read_schema(rel / "banc_888_synapses_v2_enriched.parquet").field("pre_root_id").type)
    ref = pd.DataFrame({"pre": src["pre_root_id"].astype(np.int64), "post": src["post_root_id"].astype(np.int64),
                        "x": src["X"].astype(np.float32), "y": src["Y"].astype(np.float32),
                        "z": src["Z"].astype(np.float32), "size": src["size"].astype(np.float32),
                        "nt_ach": src["acetylcholine"].astype(np.float32),
                        "nt_glut": src["glutamate"].astype(np.float32),
                        "nt_gaba": src["gaba"].astype(np.float32)})
    got = decoded(conn, [c for c in ref.columns if c not in ("pre", "post")])
    got["roi"] = roi_names(conn)
    ref["roi"] = src["neuropil"]
    same_rows(got, ref)
    raw = pd.read_csv(rel / "banc_888_neurons.csv", dtype=str)
    nt = conn.neurons.set_index("bodyId").loc[raw["root_id"].astype(np.int64)]
    assert nt["proofread"].tolist() == (raw["proofread"] == "TRUE").tolist()
    xyz = raw["position"].str.split(", ", expand=True).astype(float).to_numpy() * (4, 4, 45)
    assert np.array_equal(nt[["position_x", "position_y", "position_z"]].to_numpy(float), xyz)


# ----------------------------------------------------------------------------- detection and CLI


def test_detection_by_name_and_by_columns(tmp_path, syn):
    R.write_janelia(syn, tmp_path / "j")
    f = tmp_path / "j" / "syn-partners-test-minconf-0.5.feather"
    assert dialects.detect_dialect([str(f)]).name == "janelia-flat"
    renamed = tmp_path / "other.feather"
    renamed.write_bytes(f.read_bytes())
    assert dialects.detect_dialect([str(renamed)]).name == "janelia-flat"  # by its columns
    R.write_microns(syn, tmp_path / "m")
    assert dialects.detect_dialect([str(tmp_path / "m" / "synapses_pni_2.parquet")]).name == "microns"
    # a user's file named like a release file but with other columns: generic detection
    pd.DataFrame({"bodyId_pre": [1, 2], "bodyId_post": [2, 1]}).to_csv(tmp_path / "connections.csv", index=False)
    assert dialects.detect_dialect([str(tmp_path / "connections.csv")]) is None
    conn = ingest(tmp_path / "connections.csv", tmp_path / "generic", progress=False)
    assert (conn.kind, conn.meta["extra"]["ingest"]["dialect"], conn.n_synapses) == ("synapses", "neuprint", 2)
    with pytest.raises(IngestError, match="unknown dialect 'fly'"):
        ingest(f, tmp_path / "s", dialect="fly", progress=False)


def test_cli_ingest_dir_finds_the_release(tmp_path, syn):
    rel = R.write_flywire(syn, tmp_path / "rel")
    args = add_ingest_arguments(argparse.ArgumentParser()).parse_args(
        [str(rel), str(tmp_path / "store"), "--no-progress"])
    conn = run_ingest(args)
    assert conn.meta["extra"]["ingest"]["dialect"] == "flywire-783"
    assert conn.meta["extra"]["ingest"]["release"]["neurons"][0].endswith("neuron_annotations.tsv")
    args = add_ingest_arguments(argparse.ArgumentParser()).parse_args(
        [str(rel), str(tmp_path / "store2"), "--dialect", "flywire-783", "--no-progress"])
    assert run_ingest(args).n_synapses == len(syn)


# ----------------------------------------------------------------------------- one connectome, every dialect


def test_one_connectome_every_dialect_same_counts(tmp_path, syn):
    """The same synapses written in every release's layout ingest to identical pair counts."""
    ref = syn.groupby(["pre", "post"]).size().rename("weight").reset_index()
    ref = ref.sort_values(["pre", "post"]).reset_index(drop=True)
    writers = {**R.WRITERS, "codex-princeton": R.write_princeton}
    counts = {}
    for name, write in writers.items():
        rel = write(syn, tmp_path / name)
        conn = ingest(rel, tmp_path / f"store-{name}", progress=False, chunk_rows=32)
        pc_ = pair_counts(conn)  # dense indices
        body = conn.neurons["bodyId"].to_numpy()
        got = pd.DataFrame({"pre": body[pc_["pre"].to_numpy()], "post": body[pc_["post"].to_numpy()],
                            "weight": pc_["weight"].to_numpy()})
        counts[name] = got.sort_values(["pre", "post"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(counts[name], ref, check_dtype=False, obj=name)
        assert conn.n_synapses == len(syn)
    assert len(counts) == 7


def test_label_recorded_at_ingest_by_neuprints_rule(tmp_path):
    """No label in the source: Neuron when >= 2 outputs, >= 10 inputs, a name/status, else Segment."""
    rng = np.random.default_rng(4)
    pre = rng.integers(1, 200, 300)
    post = np.r_[rng.integers(1, 200, 280), np.full(20, 50)]
    df = pd.DataFrame({"pre_pt_root_id": pre, "post_pt_root_id": post})
    names = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["KC", None, None], "status": [None, "Traced", None]})
    conn = ingest(df, tmp_path / "s", neurons=names, progress=False)
    n_out = pd.Series(pre).value_counts()
    n_in = pd.Series(post).value_counts()
    want = {}
    for b in conn.neurons["bodyId"]:
        named = b in (1, 2)  # a type, or a status
        want[b] = "Neuron" if n_out.get(b, 0) >= 2 or n_in.get(b, 0) >= 10 or named else "Segment"
    assert dict(zip(conn.neurons["bodyId"], conn.neurons["label"], strict=True)) == want
    assert {"Neuron", "Segment"} <= set(want.values())
    # connection-level rows count their weights
    edges = pd.DataFrame({"a": [7, 8, 9], "b": [8, 9, 7], "n": [1, 12, 1]})
    c2 = ingest(edges, tmp_path / "c", kind="connections", columns={"pre": "a", "post": "b", "weight": "n"},
                progress=False)
    assert c2.neurons.set_index("bodyId")["label"].to_dict() == {7: "Segment", 8: "Neuron", 9: "Neuron"}


def test_generic_cave_table_with_a_neuropil_column_stays_generic(tmp_path):
    df = pd.DataFrame({"pre_pt_root_id": [1, 2], "post_pt_root_id": [2, 1], "neuropil": ["ME_R", "LO_L"],
                       "pre_pt_position": [[1, 2, 3], [4, 5, 6]], "post_pt_position": [[1, 2, 4], [4, 5, 7]]})
    df.to_parquet(tmp_path / "syn.parquet")
    assert dialects.detect_dialect([str(tmp_path / "syn.parquet")]) is None
    conn = ingest(tmp_path / "syn.parquet", tmp_path / "store", progress=False)
    assert conn.meta["extra"]["ingest"]["dialect"] == "cave"
    assert sorted(conn.read_synapses(["x_post"])["x_post"].tolist()) == [1.0, 4.0]
