"""Writers of small release files in the exact schemas of the public downloads.

One synthetic connectome (:func:`connectome`) is written by each writer in its
release's layout (file names, column names, dtypes, units and quirks, as
listed in ``public_releases.md``); the tests read the files back with pandas
/ pyarrow as the independent reference.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

PREFIX = 720575940 * 10**9
NT = ["gaba", "ach", "glut", "oct", "ser", "da"]
NEUROPILS = ["AVLP_R", "AVLP_L", "ME_R", "GNG"]
ROIS = ["a'L(R)", "CRE(-ROB,-RUB)(R)", "MB(+ACA)(R)", "LAL(-GA)(R)"]


def connectome(n_syn: int = 400, n_neurons: int = 12, seed: int = 0) -> pd.DataFrame:
    """Synapse rows sorted by (pre, post): IDs > 2**53, voxel positions (integers), NT, ROI."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(10**9, n_neurons, replace=False)).astype(np.int64) + PREFIX
    pre = rng.choice(ids, n_syn)
    post = rng.choice(ids, n_syn)
    nt = rng.dirichlet(np.ones(len(NT)), n_syn).astype(np.float32)
    df = pd.DataFrame({"pre": pre, "post": post})
    for a in "xyz":
        df[f"{a}_pre"] = rng.integers(0, 10_000, n_syn)
        df[f"{a}_post"] = df[f"{a}_pre"] + rng.integers(-5, 6, n_syn)
    for k, c in enumerate(NT):
        df[c] = nt[:, k]
    df["score"] = rng.integers(0, 400, n_syn).astype(np.float32)
    df["cleft"] = rng.integers(0, 200, n_syn).astype(np.float32)
    df["roi"] = rng.choice(len(NEUROPILS), n_syn)
    return df.sort_values(["pre", "post"], kind="stable").reset_index(drop=True)


def neuron_ids(df: pd.DataFrame) -> np.ndarray:
    return np.unique(np.concatenate([df["pre"], df["post"]]))


def write_flywire(df: pd.DataFrame, folder: Path, batch: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    vs = (4, 4, 40)
    t = pa.table({
        "id": pa.array(np.arange(len(df)), pa.int64()),
        "pre_pt_root_id": pa.array(df["pre"], pa.int64()),
        "post_pt_root_id": pa.array(df["post"], pa.int64()),
        "connection_score": pa.array(df["score"], pa.float32()),
        "cleft_score": pa.array(df["cleft"], pa.float32()),
        **{c: pa.array(df[c], pa.float32()) for c in NT},
        **{f"pre_pt_position_{a}": pa.array(df[f"{a}_pre"] * vs[k], pa.int32()) for k, a in enumerate("xyz")},
        **{f"post_pt_position_{a}": pa.array(df[f"{a}_post"] * vs[k], pa.int32()) for k, a in enumerate("xyz")},
        "neuropil": pa.array([NEUROPILS[i] for i in df["roi"]]).dictionary_encode(),
    })
    path = folder / "flywire_synapses_783.feather"
    feather.write_feather(t, path, chunksize=batch)  # many record batches, as the Zarr release
    ids = neuron_ids(df)
    ann = pd.DataFrame({"supervoxel_id": ids + 1, "root_id": ids, "pos_x": 1, "pos_y": 2, "pos_z": 3,
                        "super_class": "central", "cell_type": [f"T{i % 3}" for i in range(len(ids))],
                        "top_nt": "acetylcholine", "status": ""})
    ann.to_csv(folder / "Supplemental_file1_neuron_annotations.tsv", sep="\t", index=False)
    return folder


def write_codex(df: pd.DataFrame, folder: Path) -> Path:
    """synapse_coordinates.csv.gz: ID cells blank when equal to the previous row's (per column)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    prev_pre = prev_post = None
    for p, q, x, y, z in zip(df["pre"], df["post"], df["x_post"] * 4, df["y_post"] * 4, df["z_post"] * 40,
                             strict=True):
        rows.append(["" if p == prev_pre else str(p), "" if q == prev_post else str(q), x, y, z])
        prev_pre, prev_post = p, q
    with gzip.open(folder / "synapse_coordinates.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pre_root_id", "post_root_id", "x", "y", "z"])
        w.writerows(rows)
    ids = neuron_ids(df)
    pd.DataFrame({"root_id": ids, "group": "x", "nt_type": "ACH", "nt_type_score": 0.9}).to_csv(
        folder / "neurons.csv.gz", index=False)
    pd.DataFrame({"root_id": ids, "flow": "intrinsic", "super_class": "central", "class": "", "sub_class": "",
                  "hemilineage": "", "side": "right", "nerve": ""}).to_csv(folder / "classification.csv.gz",
                                                                         index=False)
    pd.DataFrame({"root_id": ids, "primary_type": [f"T{i % 3}" for i in range(len(ids))],
                  "additional_type(s)": ""}).to_csv(folder / "consolidated_cell_types.csv.gz", index=False)
    return folder


def write_princeton(df: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = pd.DataFrame({
        **{f"pre_{a}": df[f"{a}_pre"] * s for a, s in zip("xyz", (4, 4, 40), strict=True)},
        **{f"ctr_{a}": df[f"{a}_pre"] * s for a, s in zip("xyz", (4, 4, 40), strict=True)},
        **{f"post_{a}": df[f"{a}_post"] * s for a, s in zip("xyz", (4, 4, 40), strict=True)},
        "size": df["cleft"].astype(int),
        "pre_root_id_720575940": df["pre"] - PREFIX,
        "post_root_id_720575940": df["post"] - PREFIX,
        "neuropil": [NEUROPILS[i] for i in df["roi"]],
    })
    out.to_csv(folder / "fafb_v783_princeton_synapse_table.csv.gz", index=False)
    return folder


def write_janelia(df: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = pa.table({
        **{f"{a}_pre": pa.array(df[f"{a}_pre"], pa.int32()) for a in "xyz"},
        "body_pre": pa.array(df["pre"], pa.int64()),
        "conf_pre": pa.array(df["score"] / 400, pa.float32()),
        **{f"{a}_post": pa.array(df[f"{a}_post"], pa.int32()) for a in "xyz"},
        "body_post": pa.array(df["post"], pa.int64()),
        "conf_post": pa.array(df["cleft"] / 200, pa.float32()),
        "primary_post": pa.array([ROIS[i] for i in df["roi"]]),
    })
    order = ["x_pre", "y_pre", "z_pre", "body_pre", "conf_pre", "x_post", "y_post", "z_post", "body_post",
             "conf_post", "primary_post"]
    feather.write_feather(t.select(order), folder / "syn-partners-test-minconf-0.5.feather", chunksize=100)
    ids = neuron_ids(df)
    feather.write_feather(pa.table({"bodyId": ids, "type": [f"T{i % 3}" for i in range(len(ids))],
                                    "instance": ["i"] * len(ids), "status": ["Traced"] * len(ids), "group": np.arange(len(ids), dtype=float),
                                    "somaLocation": [[1, 2, 3]] * len(ids)}),
                          folder / "body-annotations-test.feather")
    feather.write_feather(pa.table({"body": ids, "cell_type": ["x"] * len(ids),
                                    "predicted_nt": ["acetylcholine"] * len(ids),
                                    "consensus_nt": ["acetylcholine"] * len(ids)}),
                          folder / "body-neurotransmitters-test.feather")
    return folder


def write_microns(df: pd.DataFrame, folder: Path, split: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(df)
    cols: dict[str, pa.Array] = {
        "id": pa.array(np.arange(n), pa.int64()), "valid": pa.array(np.ones(n, bool)),
        "pre_pt_supervoxel_id": pa.array(df["pre"] + 7, pa.int64()),
        "pre_pt_root_id": pa.array(df["pre"], pa.int64()),
        "post_pt_supervoxel_id": pa.array(df["post"] + 7, pa.int64()),
        "post_pt_root_id": pa.array(df["post"], pa.int64()),
        "size": pa.array(df["cleft"].astype(np.int64)),
    }
    for side in ("pre", "post", "ctr"):
        src = "pre" if side == "ctr" else side
        xyz = np.stack([df[f"{a}_{src}"].to_numpy() for a in "xyz"], axis=1).astype(np.int64)
        if split:
            for k, a in enumerate("xyz"):
                cols[f"{side}_pt_position_{a}"] = pa.array(xyz[:, k])
        else:
            cols[f"{side}_pt_position"] = pa.array(xyz.tolist(), pa.list_(pa.int64()))
    pq.write_table(pa.table(cols), folder / "synapses_pni_2.parquet", row_group_size=100)
    return folder


def write_banc(df: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = pa.table({
        "id": pa.array(np.arange(len(df)), pa.int64()),
        "size": pa.array(df["cleft"].astype(np.int64)),
        "pre_root_id": pa.array(df["pre"].astype(str).tolist(), pa.string()),
        "post_root_id": pa.array(df["post"].astype(str).tolist(), pa.string()),
        "X": pa.array(df["x_post"] * 4.0), "Y": pa.array(df["y_post"] * 4.0), "Z": pa.array(df["z_post"] * 45.0),
        "neuropil": pa.array([NEUROPILS[i] for i in df["roi"]]),
        "region": ["brain"] * len(df), "side": ["right"] * len(df),
        **{{"ach": "acetylcholine", "glut": "glutamate", "da": "dopamine", "ser": "serotonin",
            "oct": "octopamine"}.get(c, c): pa.array(df[c], pa.float64()) for c in NT},
        "histamine": pa.array(np.zeros(len(df))), "tyramine": pa.array(np.zeros(len(df))),
        "syn_top_nt": ["acetylcholine"] * len(df), "syn_top_p": pa.array(df["ach"], pa.float64()),
        "label": ["x"] * len(df),
    })
    pq.write_table(t, folder / "banc_888_synapses_v2_enriched.parquet", row_group_size=128)
    ids = neuron_ids(df)
    pd.DataFrame({"root_id": ids.astype(str), "proofread": ["TRUE" if i % 2 else "FALSE" for i in range(len(ids))],
                  "position": [f"{i}, {i + 1}, {i + 2}" for i in range(len(ids))],
                  "cell_type": [f"T{i % 3}" for i in range(len(ids))]}).to_csv(
        folder / "banc_888_neurons.csv", index=False)
    return folder


HIERARCHY = {"name": "hemibrain", "children": [
    {"name": "MB(R)", "children": [{"name": "a'L(R)"}, {"name": "MB(+ACA)(R)"}]},
    {"name": "LX(R)", "children": [{"name": "LAL(-GA)(R)"}]},
    {"name": "CRE(-ROB,-RUB)(R)"},
]}


def write_neo4j(df: pd.DataFrame, folder: Path) -> Path:
    """The Neuprint_*.csv files: typed quoted headers, ROI booleans (true/blank), points, JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(df)
    ids = neuron_ids(df)
    roi_cols = [f"{r}:boolean" for r in [*ROIS, "MB(R)"]]
    with open(folder / "Neuprint_Synapses_hemibrain.csv", "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow([":ID(Syn-ID)", "type:string", "confidence:float", "location:point{srid:9157}", ":Label",
                    *roi_cols])
        for i in range(n):
            for side, sid in (("pre", 2 * i + 1000), ("post", 2 * i + 1001)):
                flags = [""] * (len(ROIS) + 1)
                r = int(df["roi"].iloc[i])
                flags[r] = "true"
                if ROIS[r] in ("a'L(R)", "MB(+ACA)(R)"):  # the parent ROI's flag is set too
                    flags[-1] = "true"
                conf = df["score"].iloc[i] / 400 if side == "pre" else df["cleft"].iloc[i] / 200
                px, py, pz = (int(df[f"{a}_{side}"].iloc[i]) for a in "xyz")
                loc = f"{{x:{px}, y:{py}, z:{pz}}}"
                w.writerow([sid, side, f"{conf:.6f}", loc, "Synapse;hemibrain_Synapse", *flags])
    with open(folder / "Neuprint_Synapse_Connections_hemibrain.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([":START_ID(Syn-ID)", ":END_ID(Syn-ID)"])
        w.writerows([[2 * i + 1000, 2 * i + 1001] for i in range(n)])
    # synapse sets: one per (body, pre/post partner); sites link to their sets
    sets = {}
    with open(folder / "Neuprint_SynapseSet_to_Synapses_hemibrain.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([":START_ID(SynSet-ID)", ":END_ID(Syn-ID)"])
        for i in range(n):
            p, q = int(df["pre"].iloc[i]), int(df["post"].iloc[i])
            for body, partner, sid in ((p, q, 2 * i + 1000), (q, p, 2 * i + 1001)):
                key = (body, partner, sid % 2)
                sets.setdefault(key, len(sets) + 10**6)
                w.writerow([sets[key], sid])
    with open(folder / "Neuprint_Neuron_to_SynapseSet_hemibrain.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([":START_ID(Body-ID)", ":END_ID(SynSet-ID)"])
        w.writerows([[k[0], v] for k, v in sets.items()])
    with open(folder / "Neuprint_Neurons_hemibrain.csv", "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)  # JSON in a field: csv doubles the quotes
        w.writerow([":ID(Body-ID)", "bodyId:long", "pre:int", "post:int", "status:string", "cropped:boolean",
                    "instance:string", "type:string", "somaLocation:point{srid:9157}", "roiInfo:string", ":LABEL",
                    *roi_cols])
        for k, b in enumerate(ids):
            info = json.dumps({ROIS[k % 4]: {"pre": 2, "post": 10, "downstream": 9, "upstream": 10}})
            label = "Segment;hemibrain_Segment" + (";Neuron;hemibrain_Neuron;Cell;hemibrain_Cell" if k % 2 else "")
            w.writerow([b, b, 1, 2, "Traced", "true" if k % 3 == 0 else "", f"T{k % 3}_R", f"T{k % 3}",
                        f"{{x:{k},y:{k + 1},z:{k + 2}}}", info, label, *(["true"] + [""] * 4)])
    with open(folder / "Neuprint_Meta_hemibrain.csv", "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow(["voxelSize:float[]", "voxelUnits:string", "primaryRois:string[]", "roiHierarchy:string",
                    "dataset:string", ":LABEL"])
        w.writerow(["8.0;8.0;8.0", "nanometers", ";".join(ROIS), json.dumps(HIERARCHY), "hemibrain",
                    "Meta;hemibrain_Meta"])
    return folder


WRITERS = {
    "flywire-783": write_flywire,
    "codex": write_codex,
    "neuprint-neo4j": write_neo4j,
    "janelia-flat": write_janelia,
    "microns": write_microns,
    "banc": write_banc,
}


# ----------------------------------------------------------------------------- connection-level files


def per_roi(df: pd.DataFrame, names=NEUROPILS) -> pd.DataFrame:
    """(pre, post, roi name) -> synapse count and mean NT probabilities."""
    g = df.assign(neuropil=[names[i] for i in df["roi"]])
    agg = g.groupby(["pre", "post", "neuropil"], sort=True)
    out = agg.size().rename("syn_count").reset_index()
    for c in NT:
        out[f"{c}_avg"] = agg[c].mean().to_numpy()
    return out


def write_flywire_connections(df: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = per_roi(df)
    table = pa.table({
        "pre_pt_root_id": pa.array(t["pre"], pa.int64()), "post_pt_root_id": pa.array(t["post"], pa.int64()),
        "neuropil": pa.array(t["neuropil"].tolist()).dictionary_encode(),
        "syn_count": pa.array(t["syn_count"], pa.int32()),
        **{f"{c}_avg": pa.array(t[f"{c}_avg"], pa.float32()) for c in ["gaba", "ach", "glut", "oct", "ser", "da"]},
    })
    feather.write_feather(table, folder / "proofread_connections_783.feather", chunksize=50)
    ids = neuron_ids(df)
    pd.DataFrame({"supervoxel_id": ids + 1, "root_id": ids, "cell_type": [f"T{i % 3}" for i in range(len(ids))]}
                 ).to_csv(folder / "Supplemental_file1_neuron_annotations.tsv", sep="\t", index=False)
    return folder


def write_codex_connections(df: pd.DataFrame, folder: Path, headerless: bool = False) -> Path:
    """connections.csv.gz, or the v630 no-threshold file without a header row; one neuropil is UNASGD."""
    folder.mkdir(parents=True, exist_ok=True)
    t = per_roi(df, ["AVLP_R", "AVLP_L", "ME_R", "UNASGD"])
    out = pd.DataFrame({"pre_root_id": t["pre"], "post_root_id": t["post"], "neuropil": t["neuropil"],
                        "syn_count": t["syn_count"], "nt_type": "ACH"})
    name = "connections_no_threshold.csv.gz" if headerless else "connections.csv.gz"
    out.to_csv(folder / name, index=False, header=not headerless)
    write_codex(df, folder / "_tmp")
    for f in ("neurons.csv.gz", "classification.csv.gz", "consolidated_cell_types.csv.gz"):
        (folder / "_tmp" / f).rename(folder / f)
    for f in (folder / "_tmp").iterdir():
        f.unlink()
    (folder / "_tmp").rmdir()
    return folder


def write_neuprint_compact(df: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = per_roi(df, [ROIS[0], ROIS[1], ROIS[2], "NotPrimary"])
    t.rename(columns={"pre": "bodyId_pre", "post": "bodyId_post", "neuropil": "roi", "syn_count": "weight"})[
        ["bodyId_pre", "bodyId_post", "roi", "weight"]].to_csv(folder / "traced-roi-connections.csv", index=False)
    tot = df.groupby(["pre", "post"]).size().rename("weight").reset_index()
    tot.rename(columns={"pre": "bodyId_pre", "post": "bodyId_post"}).to_csv(
        folder / "traced-total-connections.csv", index=False)
    ids = neuron_ids(df)
    pd.DataFrame({"bodyId": ids, "type": [f"T{i % 3}" for i in range(len(ids))],
                  "instance": [f"T{i % 3}_R" for i in range(len(ids))]}).to_csv(folder / "traced-neurons.csv",
                                                                               index=False)
    return folder


def write_janelia_weights(df: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tot = df.groupby(["pre", "post"]).size().rename("weight").reset_index()
    tot = tot.sort_values("weight", ascending=False, kind="stable")  # as released: by weight, descending
    feather.write_feather(pa.table({"body_pre": pa.array(tot["pre"], pa.int64()),
                                    "body_post": pa.array(tot["post"], pa.int64()),
                                    "weight": pa.array(tot["weight"], pa.int64())}),
                          folder / "connectome-weights-test.feather")
    return folder


def write_banc_edgelist(df: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tot = df.groupby(["pre", "post"]).size().rename("count").reset_index()
    feather.write_feather(pa.table({"pre": pa.array(tot["pre"].astype(str).tolist(), pa.string()),
                                    "post": pa.array(tot["post"].astype(str).tolist(), pa.string()),
                                    "count": pa.array(tot["count"], pa.int32()),
                                    "norm": pa.array(np.ones(len(tot))), "post_count": pa.array(np.ones(len(tot))),
                                    "pre_count": pa.array(np.ones(len(tot)))}),
                          folder / "banc_888_edgelist_simple_v3.feather")
    return folder


def write_neo4j_connections(df: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = per_roi(df, ROIS)
    with open(folder / "Neuprint_Neuron_Connections_hemibrain.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([":START_ID(Body-ID)", "weight:int", "weightHP:int", ":END_ID(Body-ID)", "roiInfo:string"])
        for (p, q), g in t.groupby(["pre", "post"]):
            info = {r: {"pre": int(n), "post": int(n)} for r, n in zip(g["neuropil"], g["syn_count"], strict=True)}
            w.writerow([p, int(g["syn_count"].sum()), int(g["syn_count"].sum()), q, json.dumps(info)])
    return folder


CONNECTION_WRITERS = {
    "flywire-783": write_flywire_connections,
    "codex": write_codex_connections,
    "neuprint-compact": write_neuprint_compact,
    "janelia-flat": write_janelia_weights,
    "banc": write_banc_edgelist,
    "neuprint-neo4j": write_neo4j_connections,
}
