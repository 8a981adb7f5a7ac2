"""Bad input catalogue: a clear error naming what and where, and nothing written.

One table of cases across ingest, meshes / ROI sets, criteria, matrices and
store files. Each case builds its inputs in a fresh directory, snapshots the
whole directory (every file's bytes), runs the action, checks the exception
type and that the message names the offending file / column / row / name,
and checks that the directory is byte-for-byte unchanged (no partial store,
no temporary leftovers, an existing store untouched).

A few inputs are *repaired with a warning* by design (inverted and open
meshes, see ``rois.py``): those cases assert the warning names the mesh and
the repair, and that containment is still right.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import _reliability_helpers as H
import dask
import numpy as np
import pandas as pd
import pytest

from connectome_dask.aggregate import pair_counts
from connectome_dask.criteria import NeuronCriteria
from connectome_dask.ingest import IngestError, ingest
from connectome_dask.matrix import NestedMatrix, open_matrix
from connectome_dask.rois import RoiError, RoiRepairWarning, RoiSet
from connectome_dask.store import Connectome, StoreError, StoreWriter

pytestmark = pytest.mark.timeout(120)


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


def _with(col, row, value, dtype=None):
    def fn():
        df = _cave()
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


def _meta_case(edit):
    def setup(tmp, small):
        store = _store_copy(tmp, small)
        meta = json.loads((store / "meta.json").read_text())
        text = edit(meta, store)
        (store / "meta.json").write_text(text if isinstance(text, str) else json.dumps(meta))
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
    (store / "meta.json").write_text(json.dumps(meta))
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
        "mesh-file-name-escapes",
        _mesh_dir_case({"..AL_R.ply": "BOX"}),
        RoiError,
        [r"\.\.AL_R\.ply", r"would escape the store directory"],
    ),
    Case(
        "roi-name-escapes",
        lambda tmp, small: lambda: RoiSet.from_meshes({"../../AL_R": _box()}),
        RoiError,
        [r"ROI name '\.\./\.\./AL_R' would escape the store directory"],
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
        [r"meta\.json: array directory '\.\./\.\./\.\./etc' cannot be stored"],
    ),
    Case(
        "meta-neurons-path-escapes",
        _meta_case(_escape_neurons),
        StoreError,
        [r"path '\.\./outside\.parquet' in .*meta\.json points outside the store"],
    ),
    Case(
        "meta-rois-path-escapes",
        _rois_escape,
        StoreError,
        [r"path '\.\./\.\.' in .*meta\.json points outside the store"],
    ),
    Case("meta-invalid-json", _meta_case(_bad_json), StoreError, [r"meta\.json is not valid JSON"]),
    Case(
        "array-symlink-escapes",
        _symlink_escape,
        StoreError,
        [r"path 'synapses\.zarr/pre' in .*points outside the store"],
    ),
    Case(
        "store-roi-name-escapes",
        _writer_bad_roi_name,
        StoreError,
        [r"ROI name '\.\./\.\./evil' cannot be stored", r"no path separators"],
    ),
]


def test_catalogue_size():
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, small_store, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        action = case.setup(tmp_path, small_store)
    before = H.tree_digest(tmp_path)
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.exc) as err:
            action()
    msg = str(err.value.args[0]) if err.value.args else str(err.value)
    for pat in case.match:
        assert re.search(pat, msg), f"{pat!r} not in message: {msg}"
    assert H.tree_digest(tmp_path) == before, "the failed call changed files"
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
