"""One name rule for the whole package, tested on real ROI names.

Real neuPrint names (hemibrain) hold parentheses, commas, plus and minus signs
and quotes: ``CRE(-ROB,-RUB)(R)``, ``a'L(R)``, ``MB(+ACA)(R)``,
``LAL(-GA)(R)``. Every one must round-trip through ingest (a neuPrint-style
``roi_pre`` / ``roi_post`` column of names) and through ``RoiSet.from_meshes``
/ ``from_directory`` -> ``assign_rois`` -> ``RoiSet.from_store``. Names with a
path separator, NUL or a line break, and ``.`` / ``..``, are refused
everywhere with the package's own error (IngestError / RoiError / StoreError),
naming the offending value. The rule is
:func:`connectome_dask._fsutil.check_name`; no module keeps its own copy, and
no file name is ever a raw ROI name.
"""

from __future__ import annotations

import importlib
import os
import re
import warnings
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import trimesh

import connectome_dask as cd
from connectome_dask import _fsutil
from connectome_dask import rois as R
from connectome_dask.ingest import IngestError, ingest
from connectome_dask.rois import RoiError, RoiSet, assign_rois
from connectome_dask.store import StoreError, safe_name

pytestmark = pytest.mark.timeout(120)

REAL = ["CRE(-ROB,-RUB)(R)", "a'L(R)", "MB(+ACA)(R)", "LAL(-GA)(R)", "b'L(L)", "EB", "NO3(R)"]
BAD = ["EB\n", "a/b", "..", ".", "x\\y", "\x00", "EB\r", "\u2028EB", " EB", ""]
# accepted by the rule (no separator, not '.' / '..'), refused by older private copies
UNUSUAL_BUT_FINE = ["a..b", "..AL_R", "AL_R..", "x" * 200, "α-lobe(R)", "SMP%(R)", "[EB]"]


def _boxes(names):
    """One unit-ish box per name, side by side along x (code k <-> x in [10 k, 10 k + 8])."""
    out = {}
    for k, n in enumerate(names):
        b = trimesh.creation.box(extents=[8.0, 8.0, 8.0])
        b.apply_translation([10.0 * k + 4, 4, 4])
        out[n] = b
    return out


def _points(n_names, n=400, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.integers(0, n_names, n)
    P = np.column_stack([10.0 * k + rng.uniform(1, 7, n), rng.uniform(1, 7, n), rng.uniform(1, 7, n)])
    return P, k.astype(np.int16)


def _store(path, P):
    n = len(P)
    rng = np.random.default_rng(1)
    neurons = pd.DataFrame({"bodyId": np.arange(1, 11, dtype=np.int64)})
    syn = pd.DataFrame({"pre": rng.integers(0, 10, n).astype(np.int32),
                        "post": rng.integers(0, 10, n).astype(np.int32)})
    for i, a in enumerate("xyz"):
        syn[f"{a}_pre"] = P[:, i].astype(np.float32)
        syn[f"{a}_post"] = P[::-1, i].astype(np.float32)
    return cd.write_store(path, neurons, syn, {"name": "names"}, chunk_rows=128)


def _no_name_in_paths(root: Path, names) -> None:
    """No file or directory below ``root`` is named after (or contains) an ROI name."""
    odd = [n for n in names if not re.fullmatch(r"[A-Za-z0-9_]+", n)]
    for p in root.rglob("*"):
        for n in odd:
            assert n not in p.name, f"{p} uses the raw ROI name {n!r} as a path"


# ----------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("name", REAL + UNUSUAL_BUT_FINE)
def test_rule_accepts(name):
    assert _fsutil.check_name(name, "ROI name") == name
    assert R._check_roi_name(name, "here") == name
    assert safe_name(name, "ROI name") == name
    enc = _fsutil.encode_name(name)
    assert "/" not in enc and not enc.startswith(".")


@pytest.mark.parametrize("name", BAD, ids=repr)
def test_rule_refuses_with_each_modules_error(name):
    with pytest.raises(_fsutil.PathError):
        _fsutil.check_name(name, "ROI name")
    with pytest.raises(RoiError, match=re.escape(repr(name))):
        R._check_roi_name(name, "here")
    with pytest.raises(StoreError):
        safe_name(name, "ROI name")


def test_rois_keeps_no_private_copy_of_the_rule():
    assert not hasattr(R, "_BAD_NAME")
    src = "".join(p.read_text() for p in Path(R.__file__).parent.glob("*.py"))
    assert "check_name" in src
    ing = "".join(p.read_text() for p in Path(importlib.import_module("connectome_dask.ingest").__file__).parent.glob("*.py"))
    assert "check_name" in ing and "safe_name" not in ing


# ----------------------------------------------------------------------------- ingest


def _neuprint(names, n=300, seed=3):
    rng = np.random.default_rng(seed)
    pool = np.array([*names, None], dtype=object)
    return pd.DataFrame({
        "bodyId_pre": rng.integers(1, 40, n),
        "bodyId_post": rng.integers(1, 40, n),
        "roi_pre": rng.choice(pool, n),
        "roi_post": rng.choice(pool, n),
        "x_pre": rng.uniform(0, 100, n), "y_pre": rng.uniform(0, 100, n), "z_pre": rng.uniform(0, 100, n),
        "x_post": rng.uniform(0, 100, n), "y_post": rng.uniform(0, 100, n), "z_post": rng.uniform(0, 100, n),
    })


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_real_names_round_trip_through_ingest(tmp_path, fmt):
    df = _neuprint(REAL)
    src = tmp_path / f"syn.{fmt}"
    df.to_parquet(src) if fmt == "parquet" else df.to_csv(src, index=False)
    conn = ingest(src, tmp_path / "store", progress=False)
    assert conn.roi_names == sorted(REAL)
    again = cd.open(conn.path, set_default=False)
    assert again.roi_names == sorted(REAL)
    arr = again.read_synapses(["pre", "post", "roi_pre", "roi_post"])
    body = again.neurons["bodyId"].to_numpy()
    names = np.array([*again.roi_names, None], dtype=object)
    got = pd.DataFrame({"bodyId_pre": body[arr["pre"]], "bodyId_post": body[arr["post"]],
                        "roi_pre": names[arr["roi_pre"]], "roi_post": names[arr["roi_post"]]})
    ref = df[["bodyId_pre", "bodyId_post", "roi_pre", "roi_post"]].astype(object)
    ref = ref.where(ref.notna(), None)
    key = ["bodyId_pre", "bodyId_post", "roi_pre", "roi_post"]
    a = got.astype(str).sort_values(key).reset_index(drop=True)
    b = ref.astype(str).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    _no_name_in_paths(conn.path, REAL)


# an empty ROI cell means "no ROI" in neuPrint tables, so it is not a bad name there
@pytest.mark.parametrize("bad", [b for b in BAD if b != ""], ids=repr)
def test_bad_roi_names_refused_by_ingest(tmp_path, bad):
    df = _neuprint(["EB", "FB"], n=40)
    df.loc[17, "roi_post"] = bad
    df.to_parquet(tmp_path / "syn.parquet")
    with pytest.raises(IngestError) as e:
        ingest(tmp_path / "syn.parquet", tmp_path / "store", progress=False)
    assert (e.value.column, e.value.row, e.value.value) == ("roi_post", 17, bad)
    assert f"column 'roi_post', row 17: ROI name {bad!r}" in str(e.value)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_bad_names_refused_as_column_keys(tmp_path, bad):
    df = _neuprint(["EB"], n=20).drop(columns=["roi_pre", "roi_post"])
    df["score"] = 1.0
    with pytest.raises(IngestError, match=r"columns="):
        ingest(df, tmp_path / "store", columns={bad: "score"}, progress=False)
    neurons = pd.DataFrame({"bodyId": [1, 2], bad: ["x", "y"]})
    with pytest.raises(IngestError, match=r"neuron table column"):
        ingest(df, tmp_path / "store", neurons=neurons, progress=False)
    assert not (tmp_path / "store").exists()


def test_unusual_but_valid_names_pass_ingest(tmp_path):
    df = _neuprint(UNUSUAL_BUT_FINE, n=200)
    conn = ingest(df, tmp_path / "store", progress=False)
    assert conn.roi_names == sorted(UNUSUAL_BUT_FINE)


# ----------------------------------------------------------------------------- RoiSet and assign_rois


def test_real_names_round_trip_through_roiset_and_store(tmp_path):
    meshes = _boxes(REAL)
    rs = RoiSet.from_meshes(meshes, hierarchy={"MB(R)": {"MB(+ACA)(R)": {}, "a'L(R)": {}, "b'L(L)": {}}})
    assert rs.names == REAL
    P, want = _points(len(REAL))
    assert np.array_equal(rs.assign(P), want)
    with dask.config.set(scheduler="sync"):
        conn = assign_rois(_store(tmp_path / "store", P), rs, progress=False)
    assert conn.roi_names == REAL
    for site in ("pre", "post"):
        blk = conn.read_synapses([f"x_{site}", f"roi_{site}"])
        ref = np.floor(blk[f"x_{site}"].astype(np.float64) / 10).astype(np.int16)  # see _boxes
        assert np.array_equal(blk[f"roi_{site}"], ref)
    again = RoiSet.from_store(cd.open(conn.path, set_default=False))
    assert again.names == REAL and again.primary == rs.primary and again.hierarchy == rs.hierarchy
    assert np.array_equal(again.assign(P), want)
    _no_name_in_paths(conn.path, REAL + ["MB(R)"])
    meshes_dir = conn.rois_path / "meshes"
    assert sorted(p.name for p in meshes_dir.iterdir()) == [f"{i:04d}.ply" for i in range(len(REAL))]


def test_real_names_from_directory(tmp_path):
    d = tmp_path / "meshes"
    d.mkdir()
    for n, m in _boxes(REAL).items():
        m.export(d / f"{n}.ply")
    rs = RoiSet.from_directory(d)
    assert rs.names == sorted(REAL)
    P, k = _points(len(REAL))
    want = np.array([rs.names.index(REAL[i]) for i in k], dtype=np.int16)
    assert np.array_equal(rs.assign(P), want)


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_bad_names_refused_by_roiset(bad):
    box = trimesh.creation.box()
    with pytest.raises(RoiError, match=re.escape(repr(bad))):
        RoiSet.from_meshes({bad: box})
    with pytest.raises(RoiError, match=re.escape(repr(bad))):
        RoiSet.from_meshes({"EB": box}, hierarchy={bad: {"EB": {}}})


@pytest.mark.parametrize("stem", ["EB\n", "x\\y", ".", ".."], ids=repr)
def test_bad_mesh_file_names_refused(tmp_path, stem):
    d = tmp_path / "meshes"
    d.mkdir()
    trimesh.creation.box().export(d / "AL_R.ply")
    try:
        trimesh.creation.box().export(os.path.join(d, stem + ".ply"))  # (d / "." is d)
    except OSError:
        pytest.skip(f"the file system refuses the file name {stem!r}.ply")
    with pytest.raises(RoiError, match=re.escape(repr(stem))):
        RoiSet.from_directory(d)


def test_bad_name_in_a_stored_roi_set_is_refused(tmp_path):
    rs = RoiSet.from_meshes(_boxes(["EB", "FB"]))
    P, _ = _points(2, n=50)
    with dask.config.set(scheduler="sync"):
        conn = assign_rois(_store(tmp_path / "store", P), rs, progress=False)
    # a hand-edited ROI folder: the stored name breaks the rule
    monkey = dict(conn.roi_info)
    monkey["names"] = ["EB\n", "FB"]
    monkey["meshes"] = {"EB\n": monkey["meshes"]["EB"], "FB": monkey["meshes"]["FB"]}

    class _Conn:
        roi_info = monkey
        rois_path = conn.rois_path
        meta = conn.meta
        path = conn.path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RoiError, match=r"'EB\\n'"):
            RoiSet.from_store(_Conn())
