"""Tests for :mod:`connectome_dask.ingest`.

Every round trip is compared with the source table read independently in the
test (pandas / pyarrow), decoding the store's dense indices back through
``neurons.bodyId``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from connectome_dask.cli import add_ingest_arguments, run_ingest
from connectome_dask.ingest import IngestError, ingest
from connectome_dask.store import Connectome, StoreError, StoreWriter

# the package may re-export the function ``ingest`` under the module's name
ingest_main = importlib.import_module("connectome_dask.ingest.main")
ingest_sources = importlib.import_module("connectome_dask.ingest.sources")

POS = ["x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"]
BASE_ID = 720575940600000000  # FlyWire-like root IDs (> 2**53)


# ----------------------------------------------------------------------------- helpers


def _ids(rng: np.random.Generator, k: int) -> np.ndarray:
    return np.sort(rng.choice(10**12, k, replace=False)).astype(np.int64) + BASE_ID


def cave_frame(n: int = 600, k: int = 40, seed: int = 0, positions: str = "list") -> pd.DataFrame:
    """A CAVE/FlyWire-style synapse table with heavy-tailed body usage."""
    rng = np.random.default_rng(seed)
    ids = _ids(rng, k)
    w = rng.pareto(1.2, k) + 0.05
    w /= w.sum()
    df = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "pre_pt_root_id": rng.choice(ids, n, p=w),
            "post_pt_root_id": rng.choice(ids, n),
            "size": rng.integers(10, 2000, n),
            "connection_score": rng.random(n) * 300,
            "cleft_score": rng.integers(0, 200, n).astype(np.float64),
        }
    )
    pre = rng.integers(0, 200_000, (n, 3))
    post = pre + rng.integers(-50, 50, (n, 3))
    if positions == "list":
        df["pre_pt_position"] = list(pre)
        df["post_pt_position"] = list(post)
        df["ctr_pt_position"] = list((pre + post) // 2)
    else:
        for side, a in (("pre", pre), ("post", post)):
            for i, ax in enumerate("xyz"):
                df[f"{side}_pt_position_{ax}"] = a[:, i]
    return df


def neuprint_frame(n: int = 500, k: int = 30, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**9, k, replace=False).astype(np.int64) + 1
    rois = np.array(["SLP(R)", "AL(R)", "MB(+ACA)(R)", "b'L(R)", "FB", None], dtype=object)
    df = pd.DataFrame(
        {
            "bodyId_pre": rng.choice(ids, n),
            "bodyId_post": rng.choice(ids, n),
            "roi_pre": rng.choice(rois, n),
            "roi_post": rng.choice(rois, n),
            "confidence_pre": rng.random(n).astype(np.float32),
            "confidence_post": rng.random(n).astype(np.float32),
        }
    )
    for c in POS:
        df[c] = rng.integers(0, 40_000, n)
    return df


def decoded(conn, columns) -> pd.DataFrame:
    """Store rows with pre/post decoded to body IDs."""
    arrs = conn.read_synapses(["pre", "post", *columns])
    body = conn.neurons["bodyId"].to_numpy()
    out = pd.DataFrame({"bodyId_pre": body[arrs["pre"]], "bodyId_post": body[arrs["post"]]})
    for c in columns:
        out[c] = arrs[c]
    return out


def cave_reference(src: pd.DataFrame, scale=(1, 1, 1), offset=(0, 0, 0)) -> pd.DataFrame:
    """Expected store rows from a CAVE table read with pandas (list or split positions)."""
    ref = pd.DataFrame(
        {
            "bodyId_pre": src["pre_pt_root_id"].astype(np.int64).to_numpy(),
            "bodyId_post": src["post_pt_root_id"].astype(np.int64).to_numpy(),
        }
    )
    for side in ("pre", "post"):
        if f"{side}_pt_position" in src.columns:
            xyz = np.stack([np.asarray(v, dtype=np.float64) for v in src[f"{side}_pt_position"]])
        else:
            xyz = src[[f"{side}_pt_position_{a}" for a in "xyz"]].to_numpy(np.float64)
        for i, a in enumerate("xyz"):
            ref[f"{a}_{side}"] = ((xyz[:, i] + offset[i]) * scale[i]).astype(np.float32)
    ref["confidence"] = src["connection_score"].to_numpy(np.float64).astype(np.float32)
    ref["cleft_score"] = src["cleft_score"].to_numpy(np.float64).astype(np.float32)
    ref["size"] = src["size"].to_numpy(np.float64).astype(np.float32)
    return ref


def assert_same_rows(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    cols = list(ref.columns)
    assert sorted(got.columns) == sorted(cols)
    a = got[cols].sort_values(cols).reset_index(drop=True)
    b = ref[cols].sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def assert_store_invariants(conn, pre_ids, post_ids) -> None:
    """neurons = sorted union of IDs; rows sorted by (pre, post); counts match pandas."""
    body = conn.neurons["bodyId"].to_numpy()
    assert np.array_equal(body, np.unique(np.concatenate([pre_ids, post_ids])))
    a = conn.read_synapses(["pre", "post"])
    key = a["pre"].astype(np.int64) * conn.n_neurons + a["post"]
    assert np.all(np.diff(key) >= 0)
    vc = pd.Series(pre_ids).value_counts().reindex(body, fill_value=0).to_numpy()
    assert np.array_equal(conn.neurons["pre"].to_numpy(), vc)
    vc = pd.Series(post_ids).value_counts().reindex(body, fill_value=0).to_numpy()
    assert np.array_equal(conn.neurons["post"].to_numpy(), vc)
    assert conn.check() == []


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def no_leftovers(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".tmp-" in p.name]


# ----------------------------------------------------------------------------- round trips


def test_cave_list_positions_parquet(tmp_path):
    df = cave_frame()
    df.to_parquet(tmp_path / "syn.parquet", row_group_size=100)
    conn = ingest(tmp_path / "syn.parquet", tmp_path / "store", progress=False, batch_rows=64)
    src = pd.read_parquet(tmp_path / "syn.parquet")
    ref = cave_reference(src)
    got = decoded(conn, [*POS, "confidence", "cleft_score", "size"])
    assert_same_rows(got, ref)
    assert "x" not in conn.synapse_columns  # centre dropped when both sites exist
    assert_store_invariants(
        conn, src["pre_pt_root_id"].to_numpy(), src["post_pt_root_id"].to_numpy()
    )
    assert conn.meta["units"] == "nm"
    assert conn.meta["extra"]["ingest"]["dialect"] == "cave"
    assert conn.meta["source"] == str((tmp_path / "syn.parquet").resolve())
    assert conn.meta["name"] == "store"


def test_cave_split_positions_voxels(tmp_path):
    df = cave_frame(positions="split", seed=3)
    df.to_parquet(tmp_path / "syn.parquet")
    conn = ingest(
        tmp_path / "syn.parquet",
        tmp_path / "store",
        units="voxels",
        voxel_size=(4, 4, 40),
        voxel_offset=(10, -3, 2),
        name="fw",
        version="783",
        progress=False,
    )
    src = pd.read_parquet(tmp_path / "syn.parquet")
    ref = cave_reference(src, scale=(4, 4, 40), offset=(10, -3, 2))
    assert_same_rows(decoded(conn, [*POS, "confidence", "cleft_score", "size"]), ref)
    m = conn.meta
    assert (m["voxel_size"], m["voxel_offset"], m["units"]) == ([4, 4, 40], [10, -3, 2], "nm")
    assert m["extra"]["ingest"]["source_units"] == "voxels"
    assert (m["name"], m["version"]) == ("fw", "783")


def test_cave_fixed_size_list_feather(tmp_path):
    df = cave_frame(seed=4)
    pre = np.stack(df["pre_pt_position"]).astype(np.float64).ravel()
    post = np.stack(df["post_pt_position"]).astype(np.float64).ravel()
    table = pa.table(
        {
            "pre_pt_root_id": pa.array(df["pre_pt_root_id"], pa.uint64()),
            "post_pt_root_id": df["post_pt_root_id"],
            "pre_pt_position": pa.FixedSizeListArray.from_arrays(pa.array(pre), 3),
            "post_pt_position": pa.FixedSizeListArray.from_arrays(pa.array(post), 3),
            "connection_score": df["connection_score"],
            "cleft_score": df["cleft_score"],
            "size": df["size"],
        }
    )
    feather.write_feather(table, tmp_path / "syn.feather")
    conn = ingest(tmp_path / "syn.feather", tmp_path / "store", progress=False)
    src = feather.read_table(tmp_path / "syn.feather").to_pandas()
    assert_same_rows(
        decoded(conn, [*POS, "confidence", "cleft_score", "size"]), cave_reference(src)
    )


def test_cave_centre_only(tmp_path):
    df = cave_frame(seed=5).drop(columns=["pre_pt_position", "post_pt_position"])
    df.to_parquet(tmp_path / "syn.parquet")
    conn = ingest(tmp_path / "syn.parquet", tmp_path / "store", progress=False)
    assert conn.positions == ("x", "y", "z")
    src = pd.read_parquet(tmp_path / "syn.parquet")
    ctr = np.stack(src["ctr_pt_position"].to_list()).astype(np.float32)
    got = decoded(conn, ["x", "y", "z"])
    ref = pd.DataFrame(
        {
            "bodyId_pre": src["pre_pt_root_id"],
            "bodyId_post": src["post_pt_root_id"],
            "x": ctr[:, 0],
            "y": ctr[:, 1],
            "z": ctr[:, 2],
        }
    )
    assert_same_rows(got, ref)


def test_neuprint_csv_with_rois(tmp_path):
    df = neuprint_frame()
    df.to_csv(tmp_path / "syn.csv", index=False)
    src = pd.read_csv(tmp_path / "syn.csv")
    cols = [*POS, "confidence_pre", "confidence_post"]
    conn = ingest(tmp_path / "syn.csv", tmp_path / "store", progress=False, batch_rows=100)
    names = sorted(set(src["roi_pre"].dropna()) | set(src["roi_post"].dropna()))
    assert conn.roi_names == names
    got = decoded(conn, [*cols, "roi_pre", "roi_post"])
    for side in ("roi_pre", "roi_post"):
        codes = got.pop(side).to_numpy()
        assert codes.dtype == np.int16
        got[side] = np.where(codes >= 0, np.array(names + [""], dtype=object)[codes], "")
    ref_cols = ["bodyId_pre", "bodyId_post", *cols, "roi_pre", "roi_post"]
    ref = src[ref_cols].fillna({"roi_pre": "", "roi_post": ""})
    ref = ref.astype({c: np.float32 for c in cols})
    assert_same_rows(got, ref)
    assert conn.meta["extra"]["ingest"]["dialect"] == "neuprint"
    assert_store_invariants(conn, src["bodyId_pre"].to_numpy(), src["bodyId_post"].to_numpy())


def test_unstorable_roi_name_fails_in_pass_1(tmp_path):
    df = neuprint_frame(n=80, seed=6)
    df["roi_post"] = df["roi_post"].astype(object)
    df.loc[50, "roi_post"] = "AL/../R"
    df.to_parquet(tmp_path / "syn.parquet", row_group_size=20)
    err = _expect(
        tmp_path,
        tmp_path / "syn.parquet",
        r"syn\.parquet: column 'roi_post', row 50: ROI name 'AL/\.\./R' is not allowed",
        batch_rows=20,
    )
    assert (err.column, err.row, err.value) == ("roi_post", 50, "AL/../R")


def test_explicit_column_mapping(tmp_path):
    rng = np.random.default_rng(7)
    n = 300
    df = pd.DataFrame(
        {
            "src": rng.integers(1, 50, n),
            "dst": rng.integers(1, 50, n),
            "px": rng.random(n) * 1e5,
            "py": rng.random(n) * 1e5,
            "pz": rng.random(n) * 1e5,
            "score": rng.random(n),
            "gaba": rng.random(n),
            "neuropil": rng.choice(["ME_R", "LO_L"], n),
        }
    )
    df.to_parquet(tmp_path / "edges.parquet")
    conn = ingest(
        tmp_path / "edges.parquet",
        tmp_path / "store",
        columns={
            "pre": "src",
            "post": "dst",
            "x": "px",
            "y": "py",
            "z": "pz",
            "confidence": "score",
            "gaba": "gaba",
        },
        progress=False,
    )
    src = pd.read_parquet(tmp_path / "edges.parquet")
    ref = pd.DataFrame(
        {
            "bodyId_pre": src["src"],
            "bodyId_post": src["dst"],
            "x": src["px"].astype(np.float32),
            "y": src["py"].astype(np.float32),
            "z": src["pz"].astype(np.float32),
            "confidence": src["score"].astype(np.float32),
            "gaba": src["gaba"].astype(np.float32),
        }
    )
    assert_same_rows(decoded(conn, ["x", "y", "z", "confidence", "gaba"]), ref)
    assert conn.meta["extra"]["ingest"]["dialect"] == "columns"


def test_columns_override_dialect(tmp_path):
    df = cave_frame(seed=8).rename(columns={"connection_score": "score"})
    df.to_parquet(tmp_path / "syn.parquet")
    conn = ingest(
        tmp_path / "syn.parquet",
        tmp_path / "store",
        columns={"confidence": "score"},
        progress=False,
    )
    src = pd.read_parquet(tmp_path / "syn.parquet").rename(columns={"score": "connection_score"})
    assert_same_rows(
        decoded(conn, [*POS, "confidence", "cleft_score", "size"]), cave_reference(src)
    )


@pytest.mark.parametrize(
    ("chunk_rows", "batch_rows", "bucket_rows"),
    [(64, 50, 100), (1000, 1 << 20, 1 << 23), (7, 333, 1)],
)
def test_content_independent_of_chunking(tmp_path, chunk_rows, batch_rows, bucket_rows):
    df = cave_frame(n=900, seed=9)
    # duplicated (pre, post) pairs with different attributes test the tie order
    df.loc[::7, "post_pt_root_id"] = df["pre_pt_root_id"].iloc[0]
    df.to_parquet(tmp_path / "syn.parquet", row_group_size=128)
    ref = ingest(tmp_path / "syn.parquet", tmp_path / "ref", progress=False, chunk_rows=256)
    conn = ingest(
        tmp_path / "syn.parquet",
        tmp_path / "store",
        progress=False,
        chunk_rows=chunk_rows,
        batch_rows=batch_rows,
        bucket_rows=bucket_rows,
    )
    assert conn.chunk_rows == chunk_rows
    assert conn.synapse_columns == ref.synapse_columns
    a, b = conn.read_synapses(conn.synapse_columns), ref.read_synapses(ref.synapse_columns)
    for c in conn.synapse_columns:
        assert np.array_equal(a[c], b[c]), c
    pd.testing.assert_frame_equal(conn.neurons, ref.neurons)


# ----------------------------------------------------------------------------- sources


def test_csv_with_bracket_position_strings(tmp_path):
    df = cave_frame(n=200, seed=10)
    out = df.copy()
    for c in ("pre_pt_position", "post_pt_position", "ctr_pt_position"):
        out[c] = ["[" + " ".join(str(v) for v in p) + "]" for p in df[c]]
    out.to_csv(tmp_path / "syn.csv", index=False)
    conn = ingest(tmp_path / "syn.csv", tmp_path / "store", progress=False)
    src = pd.read_csv(tmp_path / "syn.csv")
    for c in ("pre_pt_position", "post_pt_position"):
        src[c] = [np.array(s.strip("[]").split(), dtype=np.float64) for s in src[c]]
    assert_same_rows(
        decoded(conn, [*POS, "confidence", "cleft_score", "size"]), cave_reference(src)
    )


def _write_parts(df: pd.DataFrame, folder: Path, k: int = 3) -> None:
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(len(df)), k)):
        df.iloc[part].to_parquet(folder / f"part-{i}.parquet")


def test_parquet_directory_glob_and_list(tmp_path):
    df = cave_frame(n=500, seed=11, positions="split")
    _write_parts(df, tmp_path / "parts")
    (tmp_path / "parts" / "_SUCCESS").write_text("")
    src = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "parts").glob("*.parquet"))])
    ref = cave_reference(src)
    cols = [*POS, "confidence", "cleft_score", "size"]
    stores = {
        "dir": ingest(tmp_path / "parts", tmp_path / "s_dir", progress=False),
        "glob": ingest(
            str(tmp_path / "parts" / "part-*.parquet"), tmp_path / "s_glob", progress=False
        ),
        "list": ingest(
            sorted((tmp_path / "parts").glob("*.parquet")), tmp_path / "s_list", progress=False
        ),
    }
    for conn in stores.values():
        assert_same_rows(decoded(conn, cols), ref)
        assert len(conn.meta["extra"]["ingest"]["files"]) == 3


def test_in_memory_dataframe_source(tmp_path):
    df = cave_frame(n=100, seed=12)
    conn = ingest(df, tmp_path / "store", progress=False)
    assert_same_rows(decoded(conn, [*POS, "confidence", "cleft_score", "size"]), cave_reference(df))


# ----------------------------------------------------------------------------- neuron table


def test_neuron_table_merge(tmp_path):
    df = cave_frame(n=300, k=20, seed=13)
    df.to_parquet(tmp_path / "syn.parquet")
    syn_ids = np.unique(np.concatenate([df["pre_pt_root_id"], df["post_pt_root_id"]]))
    extra = np.array([BASE_ID - 5, BASE_ID + 10**13], dtype=np.int64)  # bodies without synapses
    annotated = np.concatenate([syn_ids[:8], extra])
    nt = pd.DataFrame(
        {
            "root_id": annotated,
            "cell_type": [f"T{i % 3}" for i in range(len(annotated))],
            "side": ["left", "right"] * (len(annotated) // 2),
            "nucleus_id": np.arange(len(annotated), dtype=np.int64) + BASE_ID,
        }
    )
    nt = pd.concat([nt, nt.iloc[:2]])  # exact duplicates are dropped
    nt.to_csv(tmp_path / "neurons.csv", index=False)
    conn = ingest(
        tmp_path / "syn.parquet",
        tmp_path / "store",
        neurons=tmp_path / "neurons.csv",
        progress=False,
    )
    ref_nt = pd.read_csv(tmp_path / "neurons.csv").drop_duplicates()
    neurons = conn.neurons
    assert np.array_equal(neurons["bodyId"].to_numpy(), np.union1d(syn_ids, extra))
    merged = neurons.set_index("bodyId")
    for _, r in ref_nt.iterrows():
        row = merged.loc[r["root_id"]]
        assert (row["type"], row["side"], row["nucleus_id"]) == (
            r["cell_type"],
            r["side"],
            r["nucleus_id"],
        )
    unannotated = np.setdiff1d(syn_ids, annotated)
    assert merged.loc[unannotated, "type"].isna().all()
    assert merged.loc[unannotated, "nucleus_id"].isna().all()
    assert (merged.loc[extra, ["pre", "post"]].to_numpy() == 0).all()
    assert "root_id" not in neurons.columns and "cell_type" not in neurons.columns
    # large int annotations survive the merge exactly (nullable Int64, no float round trip)
    assert int(merged.loc[annotated[-1], "nucleus_id"]) == int(ref_nt["nucleus_id"].iloc[-1])
    body = neurons["bodyId"].to_numpy()
    for side in ("pre", "post"):
        counts = df[f"{side}_pt_root_id"].value_counts().reindex(body, fill_value=0).to_numpy()
        assert np.array_equal(neurons[side].to_numpy(), counts)
    assert conn.check() == []


def test_neuron_table_bodyid_keeps_type_and_source_counts(tmp_path):
    df = neuprint_frame(n=200, seed=14)
    df.to_parquet(tmp_path / "syn.parquet")
    ids = np.unique(df["bodyId_pre"])
    nt = pd.DataFrame({"bodyId": ids, "type": "KC", "cell_type": "x", "pre": 999, "post": 5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = ingest(tmp_path / "syn.parquet", tmp_path / "store", neurons=nt, progress=False)
    m = conn.neurons.set_index("bodyId")
    assert (m.loc[ids, "type"] == "KC").all() and (m.loc[ids, "cell_type"] == "x").all()
    assert (m.loc[ids, "pre_source"] == 999).all() and (m.loc[ids, "post_source"] == 5).all()
    assert np.array_equal(
        m.loc[ids, "pre"].to_numpy(), df["bodyId_pre"].value_counts().reindex(ids).to_numpy()
    )


def test_neuron_table_conflicting_duplicates(tmp_path):
    df = cave_frame(n=100, seed=15)
    df.to_parquet(tmp_path / "syn.parquet")
    bid = int(df["pre_pt_root_id"].iloc[0])
    nt = pd.DataFrame({"bodyId": [bid, bid + 1, bid], "type": ["A", "B", "C"]})
    nt.to_parquet(tmp_path / "neurons.parquet")
    with pytest.raises(IngestError, match=rf"bodyId {bid} appears with different annotations") as e:
        ingest(
            tmp_path / "syn.parquet",
            tmp_path / "store",
            neurons=tmp_path / "neurons.parquet",
            progress=False,
        )
    assert e.value.file == str(tmp_path / "neurons.parquet") and e.value.row == 2
    assert "'type'" in str(e.value)
    assert not (tmp_path / "store").exists() and no_leftovers(tmp_path)


def test_neuron_table_bad_ids(tmp_path):
    df = cave_frame(n=100, seed=16)
    df.to_parquet(tmp_path / "syn.parquet")
    nt = pd.DataFrame({"root_id": [1.0, np.nan], "type": ["A", "B"]})
    with pytest.raises(IngestError, match=r"column 'root_id', row 1: body ID is missing \(null\)"):
        ingest(tmp_path / "syn.parquet", tmp_path / "store", neurons=nt, progress=False)
    with pytest.raises(IngestError, match=r"needs a body ID column.*found \['name'\]"):
        ingest(
            tmp_path / "syn.parquet",
            tmp_path / "store",
            neurons=pd.DataFrame({"name": [1]}),
            progress=False,
        )


# ----------------------------------------------------------------------------- bad input


def _expect(tmp_path, source, match, *, column=None, row=None, value=None, **kw):
    with pytest.raises(IngestError, match=match) as e:
        ingest(source, tmp_path / "store", progress=False, **kw)
    if column is not None:
        assert e.value.column == column
    if row is not None:
        assert e.value.row == row
    if value is not None:
        assert e.value.value == value
    assert isinstance(e.value, StoreError)
    assert not (tmp_path / "store").exists()
    assert no_leftovers(tmp_path)
    return e.value


def test_missing_required_column(tmp_path):
    df = cave_frame(n=50).drop(columns=["post_pt_root_id"])
    df.to_parquet(tmp_path / "syn.parquet")
    err = _expect(
        tmp_path,
        tmp_path / "syn.parquet",
        r"required column 'post_pt_root_id'.*missing",
        column="post_pt_root_id",
    )
    assert err.file == str((tmp_path / "syn.parquet").resolve())


def test_missing_column_in_a_later_file(tmp_path):
    df = cave_frame(n=90, seed=2)
    _write_parts(df, tmp_path / "parts")
    bad = pd.read_parquet(tmp_path / "parts" / "part-2.parquet").drop(columns=["connection_score"])
    bad.to_parquet(tmp_path / "parts" / "part-2.parquet")
    err = _expect(
        tmp_path,
        tmp_path / "parts",
        r"part-2\.parquet: required column 'connection_score'",
        column="connection_score",
    )
    assert err.file.endswith("part-2.parquet")


def test_incomplete_split_positions(tmp_path):
    df = cave_frame(n=50, positions="split").drop(columns=["post_pt_position_z"])
    df.to_parquet(tmp_path / "syn.parquet")
    _expect(
        tmp_path, tmp_path / "syn.parquet", r"post position columns incomplete.*post_pt_position_z"
    )


@pytest.mark.parametrize(
    ("value", "match", "shown"),
    [
        (np.nan, r"body ID is missing \(null\)", None),
        (-3.0, r"body ID -3.0 is negative", -3.0),
        (12.5, r"body ID 12.5 is not a whole number", 12.5),
        (2.0**60, r"body ID 1.15\d*e\+18 is stored as floating point above 2\*\*53", 2.0**60),
    ],
)
def test_bad_float_body_ids(tmp_path, value, match, shown):
    df = pd.DataFrame({"bodyId_pre": np.arange(1, 41, dtype=np.float64), "bodyId_post": 7.0})
    df.loc[23, "bodyId_post"] = value
    df.to_parquet(tmp_path / "syn.parquet", row_group_size=10)
    err = _expect(
        tmp_path,
        tmp_path / "syn.parquet",
        rf"column 'bodyId_post', row 23: {match}",
        column="bodyId_post",
        row=23,
        batch_rows=8,
    )
    if shown is not None:
        assert err.value == shown


def test_nan_not_null_ids_and_infinite_coordinates(tmp_path):
    # a true IEEE NaN (not an Arrow null) in an ID column, and an infinite coordinate
    ids = pa.array([1.0, 2.0, np.nan, 4.0], pa.float64(), from_pandas=False)
    t = pa.table({"bodyId_pre": ids, "bodyId_post": pa.array([1.0, 1.0, 1.0, 1.0])})
    pq.write_table(t, tmp_path / "syn.parquet")
    _expect(tmp_path, tmp_path / "syn.parquet", r"row 2: body ID nan is missing \(NaN\)", row=2)
    xs = pa.array([1.0, np.inf, 3.0, 4.0])
    t = pa.table(
        {
            "bodyId_pre": [1, 2, 3, 4],
            "bodyId_post": [1, 1, 1, 1],
            "x_pre": xs,
            "y_pre": xs,
            "z_pre": xs,
            "x_post": xs,
            "y_post": xs,
            "z_post": xs,
        }
    )
    pq.write_table(t, tmp_path / "syn.parquet")
    _expect(
        tmp_path,
        tmp_path / "syn.parquet",
        r"column 'x_pre', row 1: coordinate inf is missing \(NaN\) or not finite",
        row=1,
    )


def test_negative_integer_and_missing_integer_ids_csv(tmp_path):
    p = tmp_path / "syn.csv"
    p.write_text("pre_pt_root_id,post_pt_root_id\n1,2\n3,4\n5,-6\n")
    _expect(
        tmp_path,
        p,
        r"syn\.csv: column 'post_pt_root_id', row 2: body ID -6 is negative",
        row=2,
        value=-6,
    )
    p.write_text("pre_pt_root_id,post_pt_root_id\n1,2\n,4\n5,6\n")
    _expect(tmp_path, p, r"column 'pre_pt_root_id', row 1: body ID is missing \(null\)", row=1)
    p.write_text("pre_pt_root_id,post_pt_root_id\n1,2\n3,abc\n5,6\n")
    _expect(
        tmp_path,
        p,
        r"column 'post_pt_root_id', row 1: body ID 'abc' is not a number",
        row=1,
        value="abc",
    )


def test_csv_type_change_after_first_block(tmp_path, monkeypatch):
    # Arrow infers CSV types from the first block: a later bad value must still be located
    monkeypatch.setattr(ingest_sources, "_CSV_BLOCK_BYTES", 64)
    lines = ["bodyId_pre,bodyId_post,x_pre,y_pre,z_pre,x_post,y_post,z_post"]
    lines += [f"{i + 1},{i + 2},1,2,3,4,5,6" for i in range(40)]
    p = tmp_path / "syn.csv"
    p.write_text("\n".join([*lines[:31], "31,1.5,1,2,3,4,5,6", *lines[32:]]) + "\n")
    _expect(tmp_path, p, r"column 'bodyId_post', row 30: body ID 1.5 is not a whole number", row=30)
    p.write_text("\n".join([*lines[:36], "36,37,1,2,3,4,oops,6", *lines[37:]]) + "\n")
    _expect(tmp_path, p, r"column 'y_post', row 35: coordinate 'oops' is not a number", row=35)


def test_non_numeric_coordinates_abort_and_keep_existing_store(tmp_path):
    good = cave_frame(n=120, seed=20, positions="split")
    good.to_parquet(tmp_path / "good.parquet")
    old = ingest(tmp_path / "good.parquet", tmp_path / "store", progress=False)
    before = tree_digest(tmp_path / "store")
    old_rows = old.read_synapses(old.synapse_columns)
    bad = good.astype({"post_pt_position_y": str})
    bad.loc[97, "post_pt_position_y"] = "12,5nm"
    bad.to_parquet(tmp_path / "bad.parquet", row_group_size=40)
    with pytest.raises(
        IngestError,
        match=r"bad\.parquet: column 'post_pt_position_y', row 97: coordinate '12,5nm' is not a number",
    ) as e:
        ingest(
            tmp_path / "bad.parquet",
            tmp_path / "store",
            overwrite=True,
            progress=False,
            batch_rows=16,
        )
    assert (e.value.row, e.value.value) == (97, "12,5nm")
    assert tree_digest(tmp_path / "store") == before
    reopened = Connectome(tmp_path / "store")
    again = reopened.read_synapses(reopened.synapse_columns)
    assert all(np.array_equal(again[c], old_rows[c]) for c in old_rows)
    assert no_leftovers(tmp_path)
    # and with no previous store, nothing appears
    with pytest.raises(IngestError):
        ingest(tmp_path / "bad.parquet", tmp_path / "new", progress=False, batch_rows=16)
    assert not (tmp_path / "new").exists() and no_leftovers(tmp_path)


def test_missing_coordinates_and_bad_lists(tmp_path):
    df = cave_frame(n=60, seed=21, positions="split").astype({"pre_pt_position_x": float})
    df.loc[44, "pre_pt_position_x"] = np.nan
    df.to_parquet(tmp_path / "syn.parquet")
    _expect(
        tmp_path,
        tmp_path / "syn.parquet",
        r"column 'pre_pt_position_x', row 44: coordinate is missing \(null\)",
        row=44,
    )
    df = cave_frame(n=60, seed=22)
    df.at[17, "post_pt_position"] = np.array([1, 2])
    df.to_parquet(tmp_path / "syn.parquet")
    _expect(
        tmp_path,
        tmp_path / "syn.parquet",
        r"column 'post_pt_position', row 17: position \[1, 2\] does not have 3",
        row=17,
    )
    df = cave_frame(n=60, seed=22)
    df.at[5, "pre_pt_position"] = None
    df.to_parquet(tmp_path / "syn.parquet")
    _expect(
        tmp_path,
        tmp_path / "syn.parquet",
        r"column 'pre_pt_position', row 5: position is missing",
        row=5,
    )
    df = cave_frame(n=60, seed=23)
    df["pre_pt_position"] = pd.Timestamp("2024-01-01")
    df.to_parquet(tmp_path / "syn.parquet")
    _expect(tmp_path, tmp_path / "syn.parquet", r"'pre_pt_position' should hold \[x, y, z\] lists")


def test_empty_inputs(tmp_path):
    cave_frame(n=10).iloc[:0].to_parquet(tmp_path / "empty.parquet")
    _expect(
        tmp_path, tmp_path / "empty.parquet", r"empty input: .*empty\.parquet has no synapse rows"
    )
    (tmp_path / "emptydir").mkdir()
    _expect(tmp_path, tmp_path / "emptydir", r"empty input: directory .* holds no data files")
    _expect(tmp_path, str(tmp_path / "nothing-*.parquet"), r"empty input: no files match")
    _expect(tmp_path, tmp_path / "missing.parquet", r"does not exist")
    (tmp_path / "h.csv").write_text("pre_pt_root_id,post_pt_root_id\n")
    _expect(tmp_path, tmp_path / "h.csv", r"has no synapse rows")


def test_units_errors(tmp_path):
    cave_frame(n=20).to_parquet(tmp_path / "syn.parquet")
    _expect(tmp_path, tmp_path / "syn.parquet", r"unknown units 'um'", units="um")
    # a length unit other than nm: the message says how to ingest it as voxels
    _expect(tmp_path, tmp_path / "syn.parquet", r"pass units='voxels', voxel_size=1000", units="micron")
    _expect(tmp_path, tmp_path / "syn.parquet", r"unknown units 'furlong'.*'nanometre'", units="furlong")
    _expect(tmp_path, tmp_path / "syn.parquet", r"needs voxel_size", units="voxels")
    _expect(
        tmp_path,
        tmp_path / "syn.parquet",
        r"voxel_size must be 3 positive",
        units="voxels",
        voxel_size=(4, 0, 40),
    )
    _expect(
        tmp_path, tmp_path / "syn.parquet", r"voxel_offset only applies", voxel_offset=(1, 1, 1)
    )


def test_units_spellings(tmp_path):
    """Every nm / voxel spelling of connectome_dask.units is accepted (case, blanks ignored)."""
    df = cave_frame(n=20)
    df.to_parquet(tmp_path / "syn.parquet")
    ref = ingest(tmp_path / "syn.parquet", tmp_path / "nm", progress=False)
    ref_xyz = ref.read_synapses(["x_pre", "y_pre", "z_pre"])
    for i, u in enumerate([" Nanometres ", "NM"]):
        conn = ingest(tmp_path / "syn.parquet", tmp_path / f"s{i}", units=u, progress=False)
        assert conn.meta["extra"]["ingest"]["source_units"] == "nm"
        got = conn.read_synapses(["x_pre", "y_pre", "z_pre"])
        for c in ref_xyz:
            np.testing.assert_array_equal(got[c], ref_xyz[c])
    conn = ingest(tmp_path / "syn.parquet", tmp_path / "vx", units="VX", voxel_size=2, progress=False)
    assert conn.meta["extra"]["ingest"]["source_units"] == "voxels"
    np.testing.assert_array_equal(conn.read_synapses(["x_pre"])["x_pre"], 2 * ref_xyz["x_pre"])


def test_existing_path_needs_overwrite(tmp_path):
    cave_frame(n=20).to_parquet(tmp_path / "syn.parquet")
    ingest(tmp_path / "syn.parquet", tmp_path / "store", progress=False)
    before = tree_digest(tmp_path / "store")
    with pytest.raises(IngestError, match=r"already exists; pass overwrite=True"):
        ingest(tmp_path / "syn.parquet", tmp_path / "store", progress=False)
    assert tree_digest(tmp_path / "store") == before
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    with pytest.raises(IngestError, match=r"is not a connectome store"):
        ingest(tmp_path / "syn.parquet", tmp_path / "home", overwrite=True, progress=False)
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"
    df2 = cave_frame(n=30, seed=99)
    df2.to_parquet(tmp_path / "syn2.parquet")
    conn = ingest(tmp_path / "syn2.parquet", tmp_path / "store", overwrite=True, progress=False)
    assert conn.n_synapses == 30


def test_dialect_detection_errors(tmp_path):
    df = pd.DataFrame(
        {"pre_pt_root_id": [1], "post_pt_root_id": [2], "bodyId_pre": [1], "bodyId_post": [2]}
    )
    df.to_parquet(tmp_path / "both.parquet")
    _expect(tmp_path, tmp_path / "both.parquet", r"ambiguous columns")
    conn = ingest(tmp_path / "both.parquet", tmp_path / "s", dialect="neuprint", progress=False)
    assert conn.meta["extra"]["ingest"]["columns"]["pre"] == "bodyId_pre"
    pd.DataFrame({"a": [1], "b": [2]}).to_parquet(tmp_path / "none.parquet")
    _expect(
        tmp_path,
        tmp_path / "none.parquet",
        r"found columns \['a', 'b'\]; expected CAVE/FlyWire \['pre_pt_root_id'",
    )
    _expect(tmp_path, tmp_path / "none.parquet", r"unknown dialect 'navis'", dialect="navis")
    _expect(
        tmp_path,
        tmp_path / "none.parquet",
        r"cannot recognise.*explicit mapping",
        columns={"pre": "a"},
    )
    _expect(
        tmp_path,
        tmp_path / "none.parquet",
        r"required column 'c'",
        columns={"pre": "a", "post": "c"},
    )


def test_unsigned_ids_above_int64_rejected(tmp_path):
    t = pa.table(
        {
            "pre_pt_root_id": pa.array([1, 2**63 + 5], pa.uint64()),
            "post_pt_root_id": pa.array([1, 2], pa.uint64()),
        }
    )
    pq.write_table(t, tmp_path / "syn.parquet")
    _expect(
        tmp_path,
        tmp_path / "syn.parquet",
        r"row 1: body ID 9223372036854775813 does not fit",
        row=1,
    )


# ----------------------------------------------------------------------------- CLI


def test_cli_arguments_round_trip(tmp_path):
    df = cave_frame(n=150, seed=30, positions="split")
    df.to_csv(tmp_path / "syn.csv", index=False)
    parser = add_ingest_arguments(argparse.ArgumentParser(prog="connectome-dask ingest"))
    args = parser.parse_args(
        [
            str(tmp_path / "syn.csv"),
            str(tmp_path / "store"),
            "--units",
            "voxels",
            "--voxel-size",
            "8",
            "8",
            "8",
            "--chunk-rows",
            "32",
            "--no-progress",
            "--name",
            "hb",
            "--column",
            "confidence=cleft_score",
        ]
    )
    conn = run_ingest(args)
    assert isinstance(conn, Connectome) and conn.n_synapses == 150
    assert Connectome(tmp_path / "store").n_synapses == 150
    assert conn.chunk_rows == 32 and conn.meta["name"] == "hb"
    src = pd.read_csv(tmp_path / "syn.csv")
    ref = cave_reference(src, scale=(8, 8, 8))
    ref["confidence"] = src["cleft_score"].astype(np.float32)
    ref = ref.drop(columns=["cleft_score"])
    assert_same_rows(decoded(conn, [*POS, "confidence", "size"]), ref)


# ----------------------------------------------------------------------------- bad input that used to get through


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_body_ids_as_text_must_be_decimal(tmp_path, fmt):
    good = ["0012", "+7", "720575940600000001", "12.0", "5.", "  9", "11 "]
    df = pd.DataFrame({"pre_pt_root_id": good, "post_pt_root_id": ["1"] * len(good)})
    src = tmp_path / f"syn.{fmt}"

    def write(frame):
        frame.to_parquet(src) if fmt == "parquet" else frame.to_csv(src, index=False)

    write(df)
    conn = ingest(src, tmp_path / "good", progress=False)
    assert conn.neurons["bodyId"].tolist() == [1, 5, 7, 9, 11, 12, 720575940600000001]
    # (value, why, shown): other notations are quoted as given; well-formed decimals as numbers
    bad = [
        ("0x1F", "is not a decimal integer", "0x1F"),
        ("1e3", "is not a decimal integer", "1e3"),
        ("1E3", "is not a decimal integer", "1E3"),
        ("inf", "is not a decimal integer", "inf"),
        ("0b101", "is not a decimal integer", "0b101"),
        ("1_000", "is not a decimal integer", "1_000"),
        ("\uff11\uff12", "is not a decimal integer", "\uff11\uff12"),  # full-width digits
        ("abc", "is not a number", "abc"),
        ("12.5", "is not a whole number", 12.5),
        ("-3", "is negative", -3),
        ("99999999999999999999", "does not fit a signed 64-bit integer", 99999999999999999999),
    ]
    for value, why, shown in bad:
        frame = df.copy()
        frame.loc[4, "pre_pt_root_id"] = value
        write(frame)
        err = _expect(tmp_path, src, rf"column 'pre_pt_root_id', row 4: body ID {re.escape(repr(shown))} {why}")
        assert (err.column, err.row, err.value) == ("pre_pt_root_id", 4, shown)


def test_float32_overflow_of_an_extra_column(tmp_path):
    df = cave_frame(n=60, seed=70)
    df["q"] = 1.0
    df.loc[13, "q"] = -3e38 * 10
    _expect(tmp_path, df, r"<table>: column 'q', row 13: .*-3e\+39.*float32", columns={"q": "q"})


def _flip_value_byte(path: Path, column: int) -> None:
    cc = pq.ParquetFile(path).metadata.row_group(0).column(column)
    b = bytearray(path.read_bytes())
    b[cc.data_page_offset + cc.total_compressed_size - 20] ^= 0x01
    path.write_bytes(bytes(b))


def test_parquet_page_checksums_are_verified(tmp_path):
    df = cave_frame(n=3000, seed=71, positions="split")
    kw = {"write_page_checksum": True, "compression": None, "use_dictionary": False}
    nt = pd.DataFrame({"bodyId": np.unique(df["pre_pt_root_id"]), "soma_x": 1.5})
    nt.to_parquet(tmp_path / "neurons.parquet", **kw)
    df.to_parquet(tmp_path / "syn.parquet", **kw)
    # intact files with checksums, and files without any, ingest as before
    conn = ingest(tmp_path / "syn.parquet", tmp_path / "ok", neurons=tmp_path / "neurons.parquet",
                  progress=False)
    assert conn.n_synapses == 3000
    df.to_parquet(tmp_path / "plain.parquet")
    assert ingest(tmp_path / "plain.parquet", tmp_path / "ok2", progress=False).n_synapses == 3000
    # one flipped bit in a value: only the page checksum can tell
    for col in ("pre_pt_root_id", "post_pt_position_z"):
        df.to_parquet(tmp_path / "syn.parquet", **kw)
        _flip_value_byte(tmp_path / "syn.parquet", list(df.columns).index(col))
        _expect(tmp_path, tmp_path / "syn.parquet", r"syn\.parquet.*(?i:crc|checksum)")
    df.to_parquet(tmp_path / "syn.parquet", **kw)
    _flip_value_byte(tmp_path / "neurons.parquet", 1)
    _expect(tmp_path, tmp_path / "syn.parquet", r"neurons\.parquet: cannot read the neuron table.*(?i:crc|checksum)",
            neurons=tmp_path / "neurons.parquet")


def test_disk_full_while_writing_is_an_ingest_error(tmp_path, monkeypatch):
    import errno

    df = cave_frame(n=200, seed=72)
    df.to_parquet(tmp_path / "syn.parquet")

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StoreWriter, "append", full)
    err = _expect(tmp_path, tmp_path / "syn.parquet", r"store.*No space left on device")
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.ENOSPC


def test_neuron_table_is_validated_before_the_synapse_passes(tmp_path, monkeypatch):
    df = cave_frame(n=100, seed=73)
    df.to_parquet(tmp_path / "syn.parquet")
    ids = np.unique(df["pre_pt_root_id"])[:3]

    def no_pass(*a, **k):
        raise AssertionError("the synapse pass ran before the neuron table was validated")

    monkeypatch.setattr(ingest_main, "_pass1", no_pass)
    bad_tables = {
        "type": pd.DataFrame({"bodyId": ids, "type": ["KC", 5, "MBON"]}),
        "lineage": pd.DataFrame({"bodyId": ids, "lineage": [None, True, "text"]}),
        "bodyId": pd.DataFrame({"bodyId": [ids[0], str(ids[1]), ids[2]]}),
        "a/b": pd.DataFrame({"bodyId": ids, "a/b": ["x", "y", "z"]}),
    }
    for col, nt in bad_tables.items():
        with pytest.raises(IngestError, match=re.escape(repr(col))) as e:
            ingest(tmp_path / "syn.parquet", tmp_path / "store", neurons=nt, progress=False)
        assert e.value.column == col
        assert not (tmp_path / "store").exists()


def test_neuron_table_with_nested_values_still_ingests(tmp_path):
    df = cave_frame(n=100, seed=74)
    ids = np.unique(df["pre_pt_root_id"])[:3]
    nt = pd.DataFrame({"bodyId": ids, "somaLocation": [[1, 2, 3], None, [4, 5, 6]],
                       "roiInfo": [{"EB": 1}, {"FB": 2}, None], "score": [1, 2.5, None]})
    conn = ingest(df, tmp_path / "store", neurons=nt, progress=False)
    got = conn.neurons.set_index("bodyId").loc[ids]
    assert list(got["somaLocation"].iloc[0]) == [1, 2, 3]
    assert got["score"].tolist()[:2] == [1.0, 2.5]
