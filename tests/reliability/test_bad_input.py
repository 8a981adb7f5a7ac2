"""Bad input catalogue: a clear error naming what and where, and nothing written.

One table of cases across ingest, meshes / ROI sets, criteria, matrices and
store files. Each case builds its inputs in a fresh directory, snapshots the
whole directory (every file's bytes), runs the action, checks the exception
type and that the message names the offending file / column / row / name,
and checks that the directory is byte-for-byte unchanged (no partial store,
no temporary leftovers, an existing store untouched).

A few inputs are *repaired with a warning* by design (inverted and open
meshes, see ``rois/meshes.py``): those cases assert the warning names the mesh and
the repair, and that containment is still right.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import dask
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from connectome_dask.aggregate import pair_counts
from connectome_dask.criteria import NeuronCriteria
from connectome_dask.ingest import IngestError, ingest
from connectome_dask.matrix import NestedMatrix, open_matrix
from connectome_dask.rois import RoiError, RoiRepairWarning, RoiSet
from connectome_dask.store import Connectome, StoreError, StoreWriter
from tests.reliability import _reliability_helpers as H

pytestmark = pytest.mark.timeout(120)

ingest_sources = importlib.import_module("connectome_dask.ingest.sources")


@dataclasses.dataclass
class Case:
    id: str
    setup: Callable  # (tmp, small_store) -> action () -> Any
    exc: type
    match: list[str]


def _cave(n=50, seed=0, **over):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "pre_pt_root_id": rng.integers(1, 30, n).astype(np.int64),
            "post_pt_root_id": rng.integers(1, 30, n).astype(np.int64),
            "pre_pt_position_x": rng.integers(0, 1000, n),
            "pre_pt_position_y": rng.integers(0, 1000, n),
            "pre_pt_position_z": rng.integers(0, 1000, n),
        }
    )
    for k, v in over.items():
        df[k] = v
    return df


def _ingest_case(df_fn, store_exists=False, **kw):
    def setup(tmp, small):
        df_fn().to_parquet(tmp / "syn.parquet")
        if store_exists:
            ingest_good = _cave(40, 9)
            ingest_good.to_parquet(tmp / "good.parquet")
            ingest(tmp / "good.parquet", tmp / "store", progress=False)
            (tmp / "good.parquet").unlink()
        return lambda: ingest(tmp / "syn.parquet", tmp / "store", progress=False, **kw)

    return setup


def _with(col, row, value, dtype=None, **extra):
    def fn():
        df = _cave(**extra)
        if dtype:
            df[col] = df[col].astype(dtype)
        df.loc[row, col] = value
        return df

    return fn


def _neurons_conflict(tmp, small):
    _cave().to_parquet(tmp / "syn.parquet")
    pd.DataFrame({"bodyId": [3, 3, 4], "type": ["KC", "MBON", "KC"]}).to_parquet(
        tmp / "neurons.parquet"
    )
    return lambda: ingest(
        tmp / "syn.parquet", tmp / "store", neurons=tmp / "neurons.parquet", progress=False
    )


def _box(lo=(0, 0, 0), size=1.0):
    import trimesh

    b = trimesh.creation.box(extents=[size] * 3)
    b.apply_translation(np.asarray(lo, dtype=float) + size / 2)
    return b


def _mesh_arrays_case(mutate):
    def setup(tmp, small):
        b = _box()
        V, F = np.asarray(b.vertices, float).copy(), np.asarray(b.faces).copy()
        V, F = mutate(V, F)
        return lambda: RoiSet.from_meshes({"AL_R": (V, F)})

    return setup


def _flat(V, F):
    V[:, 2] = 0.0
    return V, F


def _nan_vertex(V, F):
    V[3, 1] = np.nan
    return V, F


def _bad_face(V, F):
    F[2, 1] = 99
    return V, F


def _mesh_dir_case(files: dict):
    def setup(tmp, small):
        d = tmp / "meshes"
        d.mkdir()
        for name, content in files.items():
            if content == "BOX":
                _box().export(d / name)
            else:
                (d / name).write_text(content)
        return lambda: RoiSet.from_directory(d)

    return setup


def _store_copy(tmp, small) -> Path:
    return H.copy_store(small.path, tmp / "store")


def _resign(meta):
    """Recompute meta.json's own checksum after an edit, so the edit itself is what is tested."""
    from connectome_dask import store as st

    if "checksum" in meta and hasattr(st, "_meta_digest"):
        meta["checksum"] = st._meta_digest(meta)
    return meta


def _meta_case(edit):
    def setup(tmp, small):
        store = _store_copy(tmp, small)
        meta = json.loads((store / "meta.json").read_text())
        text = edit(meta, store)
        (store / "meta.json").write_text(text if isinstance(text, str) else json.dumps(_resign(meta)))
        return lambda: Connectome(store).neurons

    return setup


def _newer(meta, store):
    meta["schema_version"] = 7


def _escape_array(meta, store):
    meta["synapses"]["columns"]["pre"] = "../../../etc"


def _escape_neurons(meta, store):
    meta["neurons"] = "../outside.parquet"
    shutil.copy(store / "neurons.parquet", store.parent / "outside.parquet")


def _escape_rois(meta, store):
    meta["rois"] = "../.."


def _rois_escape(tmp, small):
    store = _store_copy(tmp, small)
    meta = json.loads((store / "meta.json").read_text())
    meta["rois"] = "../.."
    (store / "meta.json").write_text(json.dumps(_resign(meta)))
    return lambda: Connectome(store).roi_names


def _bad_json(meta, store):
    return '{"format": "connectome-dask", "schema_version": 1,'


def _symlink_escape(tmp, small):
    store = _store_copy(tmp, small)
    outside = tmp / "outside_pre"
    shutil.move(store / "synapses.zarr" / "pre", outside)
    os.symlink(outside, store / "synapses.zarr" / "pre")
    conn = Connectome(store)
    return lambda: conn.read_synapses(["pre"])


def _conn_action(fn):
    def setup(tmp, small):
        store = _store_copy(tmp, small)
        conn = Connectome(store)
        return lambda: fn(conn)

    return setup


def _far_meshes_assign(tmp, small):
    store = _store_copy(tmp, small)
    conn = Connectome(store)
    rs = RoiSet.from_meshes({"AL_R": _box((1e6, 1e6, 1e6), 5e5)})
    return lambda: conn.assign_rois(rs, progress=False)


def _writer_bad_roi_name(tmp, small):
    def act():
        w = StoreWriter(tmp / "store", 3, {"roi_post": "int16"}, chunk_rows=4)
        with w:
            w.append(
                {"pre": np.array([0, 1]), "post": np.array([1, 2]), "roi_post": np.array([0, -1])}
            )
            w.close(pd.DataFrame({"bodyId": [5, 6, 7]}), rois={"names": ["../../evil"]})

    return act


def _open_store_as_matrix(tmp, small):
    store = _store_copy(tmp, small)
    return lambda: open_matrix(store)


def _matrix_newer(tmp, small):
    m = NestedMatrix.from_connectivity(
        pd.DataFrame({"pre": [1, 2], "post": [2, 1]}),
        pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]}),
    )
    p = m.to_zarr(tmp / "m.zarr")
    zj = p / "zarr.json"
    meta = json.loads(zj.read_text())
    meta["attributes"]["format_version"] = 42
    zj.write_text(json.dumps(meta))
    return lambda: open_matrix(p)


def _to_zarr_over_foreign(tmp, small):
    (tmp / "results").mkdir()
    (tmp / "results" / "notes.txt").write_text("precious")
    m = NestedMatrix.from_connectivity(
        pd.DataFrame({"pre": [1], "post": [2]}),
        pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]}),
    )
    return lambda: m.to_zarr(tmp / "results")


def _nested_ambiguous(tmp, small):
    edges = pd.DataFrame({"pre": [1], "post": [2], "source": [1], "target": [2]})
    ann = pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]})
    return lambda: NestedMatrix.from_connectivity(edges, ann)


CASES = [
    # ---- ingest
    Case(
        "ingest-nan-body-id",
        _ingest_case(_with("post_pt_root_id", 7, np.nan, float)),
        IngestError,
        [r"syn\.parquet", r"column 'post_pt_root_id'", r"row 7", r"missing"],
    ),
    Case(
        "ingest-negative-body-id",
        _ingest_case(_with("pre_pt_root_id", 12, -5)),
        IngestError,
        [r"syn\.parquet", r"column 'pre_pt_root_id', row 12: body ID -5 is negative"],
    ),
    Case(
        "ingest-float-body-id",
        _ingest_case(_with("pre_pt_root_id", 3, 7.5, float)),
        IngestError,
        [r"column 'pre_pt_root_id', row 3: body ID 7\.5 is not a whole number"],
    ),
    Case(
        "ingest-missing-column",
        _ingest_case(lambda: _cave().drop(columns=["post_pt_root_id"])),
        IngestError,
        [r"syn\.parquet", r"post_pt_root_id"],
    ),
    Case(
        "ingest-empty-table",
        _ingest_case(lambda: _cave().iloc[:0]),
        IngestError,
        [r"empty input", r"syn\.parquet has no synapse rows"],
    ),
    Case(
        "ingest-coordinate-not-a-number",
        _ingest_case(_with("pre_pt_position_y", 21, "12,5nm", str)),
        IngestError,
        [r"column 'pre_pt_position_y', row 21: coordinate '12,5nm' is not a number"],
    ),
    Case(
        "ingest-unknown-units",
        _ingest_case(_cave, units="um"),
        IngestError,
        [r"unknown units 'um'"],
    ),
    Case(
        "ingest-voxels-without-size",
        _ingest_case(_cave, units="voxels"),
        IngestError,
        [r"needs voxel_size"],
    ),
    Case(
        "ingest-duplicate-annotations",
        _neurons_conflict,
        IngestError,
        [r"neurons\.parquet", r"bodyId 3 appears with different annotations"],
    ),
    Case(
        "ingest-existing-store-no-overwrite",
        _ingest_case(_cave, store_exists=True),
        IngestError,
        [r"store already exists; pass overwrite=True"],
    ),
    Case(
        "ingest-bad-input-keeps-old-store",
        _ingest_case(_with("post_pt_root_id", 30, -1), store_exists=True, overwrite=True),
        IngestError,
        [r"column 'post_pt_root_id', row 30: body ID -1 is negative"],
    ),
    # ---- meshes and ROI sets
    Case(
        "mesh-zero-volume",
        _mesh_arrays_case(_flat),
        RoiError,
        [r"from_meshes\['AL_R'\]", r"encloses zero volume"],
    ),
    Case(
        "mesh-nan-vertex",
        _mesh_arrays_case(_nan_vertex),
        RoiError,
        [r"mesh 'AL_R' has 1 NaN/inf vertices \(e\.g\. vertex 3\)"],
    ),
    Case(
        "mesh-face-index-out-of-range",
        _mesh_arrays_case(_bad_face),
        RoiError,
        [r"mesh 'AL_R' has face indices outside 0\.\.7"],
    ),
    Case(
        "mesh-unreadable-file",
        _mesh_dir_case({"AL_R.ply": "BOX", "EB.ply": "this is not a mesh"}),
        RoiError,
        [r"EB\.ply: not a readable mesh file"],
    ),
    Case(
        "mesh-file-name-breaks-the-name-rule",
        _mesh_dir_case({"AL_R.ply": "BOX", "EB\n.ply": "BOX"}),
        RoiError,
        [r"meshes: file 'EB\\n\.ply': ROI name 'EB\\n' is not allowed"],
    ),
    Case(
        "roi-name-escapes",
        lambda tmp, small: lambda: RoiSet.from_meshes({"../../AL_R": _box()}),
        RoiError,
        [r"ROI name '\.\./\.\./AL_R' is not allowed: it contains '/'"],
    ),
    Case(
        "hierarchy-bad-json",
        _mesh_dir_case({"AL_R.ply": "BOX", "hierarchy.json": "{primary: [}"}),
        RoiError,
        [r"hierarchy\.json: not valid JSON"],
    ),
    Case(
        "hierarchy-unknown-roi",
        _mesh_dir_case(
            {"AL_R.ply": "BOX", "hierarchy.json": json.dumps({"hierarchy": {"AL": {"AL_X": {}}}})}
        ),
        RoiError,
        [r"hierarchy names ROIs that have no mesh: \['AL_X'\]"],
    ),
    Case(
        "assign-rois-units-mismatch",
        _far_meshes_assign,
        RoiError,
        [r"assign_rois\(.*store\)", r"do not overlap the ROI meshes", r"units mismatch"],
    ),
    # ---- criteria and queries
    Case(
        "unknown-roi-name",
        _conn_action(lambda c: pair_counts(c, rois=["NOPE_R"], progress=False)),
        KeyError,
        [r"unknown ROI\(s\) \['NOPE_R'\]", r"valid ROIs are: .*AL_R"],
    ),
    Case(
        "bad-regex",
        lambda tmp, small: lambda: NeuronCriteria(type="KC(ab", regex=True),
        ValueError,
        [r"invalid regular expression 'KC\(ab' in type/instance"],
    ),
    Case(
        "unknown-neuron-column",
        _conn_action(lambda c: c.adjacency(by="cell_class")),
        KeyError,
        [r"unknown neuron column 'cell_class'", r"available: .*'type'"],
    ),
    Case(
        "unknown-body-id",
        _conn_action(lambda c: c.body_to_index([123, 456])),
        KeyError,
        [r"2 body IDs are not in .*store \(e\.g\. \[123, 456\]\)"],
    ),
    # ---- matrices
    Case(
        "matrix-newer-format",
        _matrix_newer,
        ValueError,
        [r"m\.zarr: matrix format version 42 is newer"],
    ),
    Case(
        "matrix-open-not-a-matrix",
        _open_store_as_matrix,
        FileNotFoundError,
        [r"store is not a connectome_dask matrix"],
    ),
    Case(
        "matrix-to-zarr-over-foreign-dir",
        _to_zarr_over_foreign,
        FileExistsError,
        [r"results exists and is not a connectome_dask matrix; refusing to replace it"],
    ),
    Case(
        "matrix-ambiguous-edge-columns", _nested_ambiguous, ValueError, [r"pre.*source|source.*pre"]
    ),
    # ---- store files
    Case(
        "meta-newer-schema",
        _meta_case(_newer),
        StoreError,
        [r"store/meta\.json: schema_version 7 is newer than this connectome_dask understands"],
    ),
    Case(
        "meta-array-path-escapes",
        _meta_case(_escape_array),
        StoreError,
        [r"meta\.json: array directory.* '\.\./\.\./\.\./etc' (cannot be stored|is not a name this package writes)"],
    ),
    Case(
        "meta-neurons-path-escapes",
        _meta_case(_escape_neurons),
        StoreError,
        [r"meta\.json", r"'\.\./outside\.parquet'", r"points outside the store|is not a name this package writes"],
    ),
    Case(
        "meta-rois-path-escapes",
        _rois_escape,
        StoreError,
        [r"meta\.json", r"'\.\.(/\.\.)?'", r"points outside the store|is not a name this package writes"],
    ),
    Case("meta-invalid-json", _meta_case(_bad_json), StoreError, [r"meta\.json is not valid JSON"]),
    Case(
        "array-symlink-escapes",
        _symlink_escape,
        StoreError,
        [r"path 'synapses\.zarr/pre'.* points outside the store"],
    ),
    Case(
        "store-roi-name-escapes",
        _writer_bad_roi_name,
        StoreError,
        [r"ROI name '\.\./\.\./evil' (cannot be stored|is not allowed)", r"(?i)path separators|'/'"],
    ),
]


# ----------------------------------------------------------------------------- class 7: bad input that got through


def _csv_case(text, name="syn.csv", small_blocks=False, **kw):
    """A CSV source written from ``text`` (str or raw bytes)."""

    def setup(tmp, small):
        (tmp / name).write_bytes(text if isinstance(text, bytes) else text.encode())

        def act():
            if not small_blocks:
                return ingest(tmp / name, tmp / "store", progress=False, **kw)
            # Arrow infers CSV types from the first block: put the defect after it
            with mock.patch.object(ingest_sources, "_CSV_BLOCK_BYTES", 64):
                return ingest(tmp / name, tmp / "store", progress=False, **kw)

        return act

    return setup


def _id_lines(bad, row=3, n=12):
    lines = ["pre_pt_root_id,post_pt_root_id"] + [f"{i + 1},{i + 2}" for i in range(n)]
    lines[row + 1] = f"{bad},5"
    return "\n".join(lines) + "\n"


def _string_ids_parquet(bad, row=3):
    def fn():
        df = _cave()
        df["pre_pt_root_id"] = df["pre_pt_root_id"].astype(str)
        df.loc[row, "pre_pt_root_id"] = bad
        return df

    return fn


def _list_positions(row, value):
    def fn():
        df = _cave()
        pos = df[[f"pre_pt_position_{a}" for a in "xyz"]].to_numpy(np.float64).copy()
        pos[row] = value
        df = df.drop(columns=[f"pre_pt_position_{a}" for a in "xyz"])
        df["pre_pt_position"] = list(pos)
        return df

    return fn


def _damaged_parquet(column, how):
    """A Parquet file whose ``column`` chunk is damaged after writing.

    ``checksum``: uncompressed pages with CRCs, one value byte flipped (only the
    page checksum can tell); ``garbage``: snappy pages overwritten with noise.
    """

    def setup(tmp, small):
        df = _cave(4000)
        df["connection_score"] = np.linspace(0, 1, len(df))
        p = tmp / "syn.parquet"
        if how == "checksum":
            df.to_parquet(p, write_page_checksum=True, compression=None, use_dictionary=False)
        else:
            df.to_parquet(p, compression="snappy", use_dictionary=False)
        meta = pq.ParquetFile(p).metadata.row_group(0)
        cc = meta.column(list(df.columns).index(column))
        b = bytearray(p.read_bytes())
        end = cc.data_page_offset + cc.total_compressed_size
        if how == "checksum":
            b[end - 20] ^= 0x01
        else:
            for i in range(cc.data_page_offset + 40, end - 8, 3):
                b[i] ^= 0x5A
        p.write_bytes(bytes(b))
        return lambda: ingest(p, tmp / "store", progress=False)

    return setup


def _two_files(second: bytes, fmt="parquet"):
    def setup(tmp, small):
        a, b = tmp / f"a.{fmt}", tmp / f"b.{fmt}"
        if fmt == "parquet":
            _cave().to_parquet(a)
        else:
            _cave().to_csv(a, index=False)
        b.write_bytes(second)
        return lambda: ingest([a, b], tmp / "store", progress=False)

    return setup


def _neurons_df(table_fn, **kw):
    def setup(tmp, small):
        _cave().to_parquet(tmp / "syn.parquet")
        return lambda: ingest(tmp / "syn.parquet", tmp / "store", neurons=table_fn(), progress=False,
                              **kw)

    return setup


def _deep_list(depth=5000):
    x: list = []
    for _ in range(depth):
        x = [x]
    return x


def _target_below_a_file(tmp, small):
    _cave().to_parquet(tmp / "syn.parquet")
    (tmp / "notes.txt").write_text("a file, not a directory")
    return lambda: ingest(tmp / "syn.parquet", tmp / "notes.txt" / "store", progress=False)


def _target_name_too_long(tmp, small):
    _cave().to_parquet(tmp / "syn.parquet")
    return lambda: ingest(tmp / "syn.parquet", tmp / ("s" * 300), progress=False)


def _roi_dir_case(hierarchy: bytes | str | None, **kw):
    def setup(tmp, small):
        d = tmp / "meshes"
        d.mkdir()
        _box().export(d / "AL_R.ply")
        if hierarchy == "DIR":
            (d / "hierarchy.json").mkdir()
        elif hierarchy is not None:
            raw = hierarchy if isinstance(hierarchy, bytes) else hierarchy.encode()
            (d / "hierarchy.json").write_bytes(raw)
        return lambda: RoiSet.from_directory(d, **kw)

    return setup


CASES += [
    # ---- numbers that do not fit float32 were stored as inf
    Case(
        "ingest-coordinate-overflows-float32",
        _ingest_case(_with("pre_pt_position_x", 4, 1e39, float)),
        IngestError,
        [r"syn\.parquet", r"column 'pre_pt_position_x', row 4", r"1e\+39", r"float32"],
    ),
    Case(
        "ingest-voxel-coordinate-overflows-float32",
        _ingest_case(_with("pre_pt_position_y", 6, 1e37, float), units="voxels",
                     voxel_size=(8, 1000, 8)),
        IngestError,
        [r"column 'pre_pt_position_y', row 6", r"1e\+37", r"voxel", r"float32"],
    ),
    Case(
        "ingest-list-position-overflows-float32",
        _ingest_case(_list_positions(9, [1.0, 2e39, 3.0])),
        IngestError,
        [r"column 'pre_pt_position', row 9", r"2e\+39", r"float32"],
    ),
    Case(
        "ingest-score-overflows-float32",
        _ingest_case(_with("connection_score", 11, 1e300, connection_score=0.5)),
        IngestError,
        [r"column 'connection_score', row 11", r"1e\+300", r"float32"],
    ),
    # ---- body IDs in other notations were parsed
    Case(
        "ingest-hex-string-id-csv",
        _csv_case(_id_lines("0x1F")),
        IngestError,
        [r"syn\.csv", r"column 'pre_pt_root_id', row 3", r"'0x1F'", r"decimal integer"],
    ),
    Case(
        "ingest-exponent-string-id-csv",
        _csv_case(_id_lines("1e3", row=5)),
        IngestError,
        [r"syn\.csv", r"column 'pre_pt_root_id', row 5", r"'1e3'", r"decimal integer"],
    ),
    Case(
        "ingest-exponent-string-id-parquet",
        _ingest_case(_string_ids_parquet("1e3", row=8)),
        IngestError,
        [r"syn\.parquet", r"column 'pre_pt_root_id', row 8", r"'1e3'", r"decimal integer"],
    ),
    Case(
        "ingest-hex-string-id-parquet",
        _ingest_case(_string_ids_parquet("0x1F", row=2)),
        IngestError,
        [r"column 'pre_pt_root_id', row 2", r"'0x1F'", r"decimal integer"],
    ),
    # ---- damaged files
    Case(
        "ingest-parquet-page-checksum-mismatch",
        _damaged_parquet("pre_pt_position_x", "checksum"),
        IngestError,
        [r"syn\.parquet", r"(?i)crc|checksum"],
    ),
    Case(
        "ingest-parquet-page-garbage",
        _damaged_parquet("pre_pt_position_y", "garbage"),
        IngestError,
        [r"syn\.parquet", r"cannot read"],
    ),
    Case(
        "ingest-second-parquet-file-empty",
        _two_files(b""),
        IngestError,
        [r"b\.parquet"],
    ),
    Case(
        "ingest-second-parquet-file-truncated",
        _two_files(b"PAR1" + b"\x00" * 40 + b"PAR1"),
        IngestError,
        [r"b\.parquet"],
    ),
    Case(
        "ingest-second-csv-file-empty",
        _two_files(b"", fmt="csv"),
        IngestError,
        [r"b\.csv"],
    ),
    Case(
        "ingest-csv-header-not-utf8",
        _csv_case("pre_pt_root_id,post_pt_root_id,n\xe9\n1,2,3\n".encode("latin-1")),
        IngestError,
        [r"syn\.csv", r"UTF-8"],
    ),
    Case(
        "ingest-csv-value-not-utf8",
        _csv_case(b"pre_pt_root_id,post_pt_root_id\n1,2\n3\xff,4\n5,6\n"),
        IngestError,
        [r"syn\.csv", r"column 'pre_pt_root_id', row 1", r"UTF-8"],
    ),
    Case(
        "ingest-csv-value-not-utf8-after-first-block",
        _csv_case(_id_lines("7\udcff", row=30, n=40).encode("utf-8", "surrogateescape"),
                  small_blocks=True),
        IngestError,
        [r"syn\.csv", r"column 'pre_pt_root_id', row 30", r"UTF-8"],
    ),
    Case(
        "ingest-csv-ragged-row-after-first-block",
        _csv_case(_id_lines("7,8", row=30, n=40), small_blocks=True),
        IngestError,
        [r"syn\.csv", r"(?i)expected 2 columns"],
    ),
    # ---- neuron tables that failed only after the synapse passes (or crashed)
    Case(
        "ingest-neurons-type-mixes-int-and-str",
        _neurons_df(lambda: pd.DataFrame({"bodyId": [1, 2, 3], "type": ["KC", 5, "MBON"]})),
        IngestError,
        [r"<neurons DataFrame>", r"column 'type', row 1", r"5", r"int", r"str"],
    ),
    Case(
        "ingest-neurons-extra-column-mixes-types",
        _neurons_df(lambda: pd.DataFrame({"bodyId": [1, 2, 3], "lineage": ["a", "b", 7.5]})),
        IngestError,
        [r"column 'lineage', row 2", r"7\.5"],
    ),
    Case(
        "ingest-neurons-id-mixes-types",
        _neurons_df(lambda: pd.DataFrame({"bodyId": [1, "2", 3], "type": ["a", "b", "c"]})),
        IngestError,
        [r"column 'bodyId', row 1", r"'2'"],
    ),
    Case(
        "ingest-neurons-duplicate-column",
        _neurons_df(lambda: pd.DataFrame([[1, "x", "y"]], columns=["bodyId", "type", "type"])),
        IngestError,
        [r"<neurons DataFrame>", r"'type'", r"more than once"],
    ),
    Case(
        "ingest-neurons-deeply-nested-value",
        _neurons_df(lambda: pd.DataFrame({"bodyId": [1, 2], "tree": [_deep_list(), _deep_list()]})),
        IngestError,
        [r"<neurons DataFrame>", r"column 'tree'"],
    ),
    Case(
        "ingest-neurons-not-a-table",
        _neurons_df(lambda: 5),
        IngestError,
        [r"neurons", r"int"],
    ),
    Case(
        "ingest-source-dataframe-mixes-types",
        lambda tmp, small: lambda: ingest(_cave(6).assign(q=["a", 1, "b", "c", "d", "e"]),
                                          tmp / "store", progress=False),
        IngestError,
        [r"<table>", r"column 'q', row 1"],
    ),
    Case(
        "ingest-source-not-a-path",
        lambda tmp, small: lambda: ingest(5, tmp / "store", progress=False),
        IngestError,
        [r"source", r"int"],
    ),
    Case(
        "ingest-columns-not-a-mapping",
        _ingest_case(_cave, columns=["pre", "post"]),
        IngestError,
        [r"columns="],
    ),
    # ---- degenerate parameters
    Case(
        "ingest-voxel-size-not-a-number",
        _ingest_case(_cave, units="voxels", voxel_size="abc"),
        IngestError,
        [r"voxel_size", r"'abc'"],
    ),
    Case(
        "ingest-voxel-size-ragged",
        _ingest_case(_cave, units="voxels", voxel_size=[[1, 2], 3]),
        IngestError,
        [r"voxel_size"],
    ),
    Case(
        "ingest-voxel-size-zero",
        _ingest_case(_cave, units="voxels", voxel_size=0),
        IngestError,
        [r"voxel_size must be 3 positive numbers"],
    ),
    Case(
        "ingest-chunk-rows-zero",
        _ingest_case(_cave, chunk_rows=0),
        IngestError,
        [r"chunk_rows", r"0"],
    ),
    Case(
        "ingest-chunk-rows-huge",
        _ingest_case(_cave, chunk_rows=2**40),
        IngestError,
        [r"chunk_rows", r"1099511627776"],
    ),
    Case(
        "ingest-chunk-rows-not-an-integer",
        _ingest_case(_cave, chunk_rows="many"),
        IngestError,
        [r"chunk_rows", r"'many'"],
    ),
    Case(
        "ingest-target-below-a-file",
        _target_below_a_file,
        IngestError,
        [r"notes\.txt", r"not a directory"],
    ),
    Case(
        "ingest-target-name-too-long",
        _target_name_too_long,
        IngestError,
        [r"s{300}", r"(?i)name too long"],
    ),
    # ---- ROI set files
    Case(
        "hierarchy-not-utf8",
        _roi_dir_case(b'{"name": "\xff"}'),
        RoiError,
        [r"hierarchy\.json", r"UTF-8"],
    ),
    Case(
        "hierarchy-json-too-deep",
        _roi_dir_case('{"hierarchy": ' + '{"x": ' * 5000 + "{}" + "}" * 5001),
        RoiError,
        [r"hierarchy\.json", r"nested"],
    ),
    Case(
        "hierarchy-is-a-directory",
        _roi_dir_case("DIR"),
        RoiError,
        [r"hierarchy\.json", r"cannot read"],
    ),
    Case(
        "hierarchy-primary-not-a-list",
        _roi_dir_case(json.dumps({"primary": 5})),
        RoiError,
        [r"primary", r"list"],
    ),
    Case(
        "hierarchy-not-a-dict",
        _roi_dir_case(json.dumps({"hierarchy": [1, 2]})),
        RoiError,
        [r"hierarchy must be a nested dict"],
    ),
    Case(
        "hierarchy-dict-too-deep",
        lambda tmp, small: lambda: RoiSet.from_meshes(
            {"AL_R": _box()}, hierarchy=functools.reduce(lambda a, _: {"G": a}, range(3000), {"AL_R": {}})
        ),
        RoiError,
        [r"hierarchy", r"nested"],
    ),
    Case(
        "roiset-voxel-size-not-a-number",
        lambda tmp, small: lambda: RoiSet.from_meshes({"AL_R": _box()}, voxel_size="abc"),
        RoiError,
        [r"voxel_size", r"'abc'"],
    ),
    Case(
        "roiset-scale-not-a-number",
        lambda tmp, small: lambda: RoiSet.from_meshes({"AL_R": _box()}, scale=[1000]),
        RoiError,
        [r"scale", r"\[1000\]"],
    ),
]


def test_catalogue_size():
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


def _lock_file(rel: Path) -> bool:
    """The writer lock ``.<target>.lock`` beside a target (an empty OS lock file, not data)."""
    return rel.name.startswith(".") and rel.name.endswith(".lock")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, small_store, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        action = case.setup(tmp_path, small_store)
    before = H.tree_digest(tmp_path, exclude=_lock_file)
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.exc) as err:
            action()
    msg = str(err.value.args[0]) if err.value.args else str(err.value)
    for pat in case.match:
        assert re.search(pat, msg), f"{pat!r} not in message: {msg}"
    assert H.tree_digest(tmp_path, exclude=_lock_file) == before, "the failed call changed files"
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name], "temporary leftovers"


# ----------------------------------------------------------------------------- repaired with a warning


@pytest.mark.parametrize("defect", ["inverted", "open"])
def test_inverted_or_open_mesh_is_repaired_with_a_named_warning(defect):
    b = _box((0, 0, 0), 10.0)
    V, F = np.asarray(b.vertices, float), np.asarray(b.faces)
    if defect == "inverted":
        F = F[:, ::-1]
        want = r"EB: .*inverted orientation"
    else:
        F = F[2:]  # drop two triangles: one square hole
        want = r"EB: .*open mesh: \d+ boundary edges in 1 hole"
    with pytest.warns(RoiRepairWarning, match=want):
        rs = RoiSet.from_meshes({"EB": (V, F)})
    pts = np.array([[5.0, 5, 5], [1, 9, 5], [11, 5, 5], [-1, 5, 5], [5, 5, 12]])
    assert rs.assign(pts).tolist() == [0, 0, -1, -1, -1]


# ----------------------------------------------------------------------------- reading a damaged chunk


def test_damaged_chunk_read_error_names_the_chunk(small_store, tmp_path):
    store = _store_copy(tmp_path, small_store)
    chunk = store / "synapses.zarr" / "pre" / "c" / "2"
    chunk.write_bytes(chunk.read_bytes()[:20])
    conn = Connectome(store)
    # the scan path reads the damaged array (the connection table would not)
    with pytest.raises(StoreError, match=r"synapses\.zarr/pre.*(chunk 2|rows 8192)"):
        with dask.config.set(scheduler="sync", **{"connectome_dask.use_pair_table": False}):
            pair_counts(conn, progress=False)


# ----------------------------------------------------------------------------- the CLI reports expected errors


def _cli(argv, capsys, monkeypatch):
    """Run ``connectome-dask argv`` in this process (no cluster: the commands run locally)."""
    import contextlib

    from connectome_dask import cli

    monkeypatch.setattr(cli, "_client", lambda args: contextlib.nullcontext())
    capsys.readouterr()
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _cli_ingest_hex_id(tmp, small):
    (tmp / "syn.csv").write_text(_id_lines("0x1F"))
    return ["ingest", tmp / "syn.csv", tmp / "store", "--no-progress"], r"row 3: body ID '0x1F'"


def _cli_ingest_missing(tmp, small):
    return ["ingest", tmp / "nope.parquet", tmp / "store"], r"nope\.parquet does not exist"


def _cli_ingest_corrupt(tmp, small):
    _damaged_parquet("pre_pt_position_x", "checksum")(tmp, small)
    return ["ingest", tmp / "syn.parquet", tmp / "store", "--no-progress"], r"syn\.parquet"


def _cli_ingest_neurons(tmp, small):
    _cave().to_parquet(tmp / "syn.parquet")
    (tmp / "neurons.feather").write_bytes(b"ARROW1 but then nothing")
    argv = ["ingest", tmp / "syn.parquet", tmp / "store", "--no-progress",
            "--neurons", tmp / "neurons.feather"]
    return argv, r"neurons\.feather: cannot read the neuron table"


def _cli_ingest_bad_roi_name(tmp, small):
    pd.DataFrame({"bodyId_pre": [1, 2], "bodyId_post": [2, 1], "roi_post": ["EB", "EB\n"]}).to_parquet(
        tmp / "syn.parquet")
    return ["ingest", tmp / "syn.parquet", tmp / "store", "--no-progress"], r"ROI name 'EB\\n'"


def _cli_assign_bad_hierarchy(tmp, small):
    store = _store_copy(tmp, small)
    (tmp / "meshes").mkdir()
    _box().export(tmp / "meshes" / "AL_R.ply")
    (tmp / "meshes" / "hierarchy.json").write_bytes(b'{"name": "\xff"}')
    return ["assign-rois", store, tmp / "meshes"], r"hierarchy\.json.*UTF-8"


def _cli_assign_not_a_store(tmp, small):
    (tmp / "meshes").mkdir()
    _box().export(tmp / "meshes" / "AL_R.ply")
    return ["assign-rois", tmp / "meshes", tmp / "meshes"], r"not a connectome store"


def _cli_matrix_over_foreign(tmp, small):
    store = _store_copy(tmp, small)
    (tmp / "results").mkdir()
    (tmp / "results" / "notes.txt").write_text("precious")
    return ["matrix", store, "--out", tmp / "results"], r"results exists"


def _cli_matrix_below_a_file(tmp, small):
    store = _store_copy(tmp, small)
    (tmp / "notes.txt").write_text("a file")
    return ["matrix", store, "--out", tmp / "notes.txt" / "m.zarr"], r"notes\.txt"


def _cli_matrix_unknown_column(tmp, small):
    store = _store_copy(tmp, small)
    return ["matrix", store, "--by", "cell_class", "--out", tmp / "m.zarr"], r"unknown neuron column 'cell_class'"


def _cli_info_not_a_store(tmp, small):
    (tmp / "empty").mkdir()
    return ["info", tmp / "empty"], r"empty.*not a connectome store"


CLI_CASES = {
    "ingest-hex-id": _cli_ingest_hex_id,
    "ingest-missing-source": _cli_ingest_missing,
    "ingest-page-checksum": _cli_ingest_corrupt,
    "ingest-unreadable-neurons": _cli_ingest_neurons,
    "ingest-bad-roi-name": _cli_ingest_bad_roi_name,
    "assign-rois-bad-hierarchy": _cli_assign_bad_hierarchy,
    "assign-rois-not-a-store": _cli_assign_not_a_store,
    "matrix-over-foreign-dir": _cli_matrix_over_foreign,
    "matrix-out-below-a-file": _cli_matrix_below_a_file,
    "matrix-unknown-column": _cli_matrix_unknown_column,
    "info-not-a-store": _cli_info_not_a_store,
}


@pytest.mark.parametrize("case", list(CLI_CASES), ids=list(CLI_CASES))
def test_cli_reports_expected_errors(case, small_store, tmp_path, capsys, monkeypatch):
    argv, want = CLI_CASES[case](tmp_path, small_store)
    before = H.tree_digest(tmp_path, exclude=_lock_file)
    rc, out, err = _cli(argv, capsys, monkeypatch)
    assert rc == 2, (out, err)
    assert err.startswith("connectome-dask: error: "), err
    assert re.search(want, err), err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert H.tree_digest(tmp_path, exclude=_lock_file) == before, "the failed command changed files"


def _raises(exc):
    def cmd(args):
        raise exc

    return cmd


@pytest.mark.parametrize(
    "exc",
    [
        "StoreError", "IngestError", "RoiError", "PathError", "CriteriaError", "UnknownColumnError",
        "SkeletonError", "DenseMatrixTooLarge", "disk-full", "permission-denied", "not-found",
    ],
)
def test_cli_exit_2_for_each_package_error_class(exc, capsys, monkeypatch, tmp_path):
    import errno

    from connectome_dask import _fsutil, aggregate, cli, criteria, rois, skeletons, store

    errors = {
        "StoreError": store.StoreError("store says no"),
        "IngestError": IngestError("ingest says no"),
        "RoiError": rois.RoiError("rois say no"),
        "PathError": _fsutil.PathError("path says no"),
        "CriteriaError": criteria.CriteriaError("criteria say no"),
        "UnknownColumnError": criteria.UnknownColumnError("no column 'x'"),
        "SkeletonError": skeletons.SkeletonError("skeleton says no"),
        "DenseMatrixTooLarge": aggregate.DenseMatrixTooLarge("too large: 9 TB"),
        "disk-full": OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "store")),
        "permission-denied": PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x")),
        "not-found": FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "y")),
    }
    e = errors[exc]
    monkeypatch.setattr(cli, "cmd_info", _raises(e))
    rc, out, err = _cli(["info", tmp_path], capsys, monkeypatch)
    assert rc == 2
    assert err == f"connectome-dask: error: {e}\n" if not isinstance(e, OSError) else err.startswith(
        "connectome-dask: error: ")
    if isinstance(e, OSError):
        assert e.strerror in err and e.filename in err


def test_cli_unexpected_errors_keep_their_traceback(capsys, monkeypatch, tmp_path):
    from connectome_dask import cli

    for exc in (RuntimeError("a bug"), ZeroDivisionError("division by zero"), TypeError("bad call"),
                ValueError("an unexpected ValueError")):
        monkeypatch.setattr(cli, "cmd_info", _raises(exc))
        with pytest.raises(type(exc)):
            _cli(["info", tmp_path], capsys, monkeypatch)


def test_cli_value_errors_of_the_package_are_expected_others_are_bugs(capsys, monkeypatch, tmp_path):
    from connectome_dask import cli

    # the package's own ValueError about its input (datasets.synthetic): a message, exit 2
    rc, out, err = _cli(["synth", tmp_path / "s", "--neurons", "1", "--synapses", "5"], capsys, monkeypatch)
    assert rc == 2 and err.startswith("connectome-dask: error: ") and "n_neurons" in err, err
    assert not (tmp_path / "s").exists()
    # the same classes raised by a library on the way (pandas here) are bugs: traceback
    monkeypatch.setattr(cli, "cmd_info", lambda args: pd.DataFrame({"a": [1]}).astype({"a": "no-such-type"}))
    with pytest.raises(TypeError):
        _cli(["info", tmp_path], capsys, monkeypatch)
    monkeypatch.setattr(cli, "cmd_info", lambda args: pd.Series([1, 2]).reindex(index=[0, 0]).iloc[[5]])
    with pytest.raises(IndexError):
        _cli(["info", tmp_path], capsys, monkeypatch)
    monkeypatch.setattr(cli, "cmd_info", lambda args: pd.DataFrame({"a": [1]})["missing"])
    with pytest.raises(KeyError):
        _cli(["info", tmp_path], capsys, monkeypatch)


def test_cli_subprocess_exit_code_and_no_traceback(tmp_path):
    import subprocess
    import sys

    (tmp_path / "syn.csv").write_text("not a store")
    env = dict(os.environ, DASK_CONNECTOME_DASK__PROGRESS="False")
    r = subprocess.run(
        [sys.executable, "-m", "connectome_dask.cli", "info", str(tmp_path / "syn.csv")],
        capture_output=True, text=True, env=env, cwd=H.REPO, timeout=120,
    )
    assert r.returncode == 2, r
    assert r.stderr.startswith("connectome-dask: error: ") and "Traceback" not in r.stderr, r.stderr
    assert "syn.csv" in r.stderr
