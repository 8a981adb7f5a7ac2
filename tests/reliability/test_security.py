"""Security of the store layout: symlinks and ``..`` never lead outside; overwrite never hits user data.

Every place a store holds a path is tampered with, one at a time:

* meta.json (re-signed, so the checksum does not stop it first):
  ``synapses.path``, ``index.path``, ``neurons``, ``rois``, ``skeletons``, a
  column's array directory, a ``by_post`` entry, ``index.pairs``, ``retained``
  and a ``checksums`` key, each as ``..``/absolute path and as a name that is a
  symlink to a user folder;
* the layout itself: ``rois/``, ``synapses.zarr``, ``synapses.zarr/<col>``,
  ``index.zarr/by_post`` as a symlink to a user folder or to ``..``; an SWC file
  that is a symlink to a file outside; the ROI folder's meshes and grid;
* stray entries named like the package's own (``pre.g9-abcdef``) that are
  symlinks to user folders.

For every case the operations a user runs (open, read_synapses, the dask
frame, neurons, adjacency, synapses_of, read_pairs, fetch_skeleton,
roi_names, ``RoiSet.from_store``, unreferenced, collect_garbage, check,
assign_rois, write_synapse_columns) either give exactly the honest data
(compared with values read before the tampering) or raise StoreError (or the
documented RoiError / SkeletonError); the operations that need the tampered
path must raise StoreError naming it. Outside the store nothing is written or
deleted (every file, folder and link beside the store is hashed before and
after; decoy directories with the package's name pattern and marker sit
where a followed link would lead), nothing outside is ever returned (the
user folders hold a copy of the store with different values: 777
confidences, other body IDs, other skeletons and meshes), and no secret byte
from outside ends up inside the store.

The second half: ``overwrite=True`` of every writer (ingest, synthetic,
StoreWriter, write_store, ``synthetic(meshes_dir=...)``, ``NestedMatrix.to_zarr``,
``save_dataarray``) aimed at a user directory, an empty directory, a
directory with a foreign meta.json, a plain Zarr group, a file, a symlink, or
an output of another kind is refused with the documented error naming the
path, and changes nothing; aimed at an output of its own kind it works.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from connectome_dask import datasets
from connectome_dask._fsutil import MARKER, write_marker
from connectome_dask.ingest import ingest
from connectome_dask.matrix import NestedMatrix, open_dataarray, open_matrix, save_dataarray
from connectome_dask.rois import RoiError, RoiSet
from connectome_dask.skeletons import SkeletonError, fetch_skeleton
from connectome_dask.store import (
    Connectome,
    StoreError,
    StoreWriter,
    write_meta,
    write_neuron_table,
    write_store,
)
from tests.reliability import _reliability_helpers as H

pytestmark = pytest.mark.timeout(300)

SECRET = b"SECRET-7f3a9c-do-not-leak"
EVIL_VALUE = 777.0
INPUTS = np.arange(25)
INPUT_COLUMNS = ["pre", "confidence", "roi_post"]


@pytest.fixture(autouse=True)
def _sync():
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ----------------------------------------------------------------------------- stores


@dataclass
class Ref:
    """An honest store and what its reads return."""

    path: Path
    evil: Path
    columns: dict
    neurons: pd.DataFrame
    adjacency: object
    inputs: dict
    pairs: dict
    body: int
    swc: str
    roi_names: list
    roi_bounds: np.ndarray
    extra: dict = field(default_factory=dict)


def _set_array(path: Path, value) -> None:
    import zarr

    a = zarr.open_array(str(path), mode="r+")
    a[:] = np.full(a.shape, value, dtype=a.dtype)


def _make_evil(base: Path, evil: Path) -> None:
    """A copy of the store with different values everywhere, and secrets in every folder."""
    import trimesh

    shutil.copytree(base, evil)
    c = Connectome(evil)
    for col, v in (("confidence", EVIL_VALUE), ("roi_pre", 7), ("roi_post", 7)):
        _set_array(c._array_path(col), v)
    for col, v in (("confidence", EVIL_VALUE), ("roi_post", 7), ("pre", 0)):
        _set_array(c._by_post_path(col), v)
    _set_array(c._index_path(f"{c.meta['index']['pairs']}/weight"), 777)
    nt = c.neurons.copy()
    nt["bodyId"] = nt["bodyId"] + 10**12
    write_neuron_table(nt, evil / "neurons.parquet")
    for p in (evil / "skeletons").glob("*.swc"):
        p.write_text("# SECRET-7f3a9c-do-not-leak\n1 0 6666 6666 6666 1 -1\n2 0 6667 6666 6666 1 1\n")
    rois = c.rois_path
    info = json.loads((rois / "rois.json").read_text())
    for rel in info["meshes"].values():
        trimesh.creation.box(extents=[7.0, 7.0, 7.0]).export(rois / rel)
    for d in (evil, evil / "synapses.zarr", evil / "index.zarr" / "by_post", rois, rois / "grid.zarr",
              rois / "meshes", evil / "skeletons"):
        (d / "secret.txt").write_bytes(SECRET)


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Ref:
    root = tmp_path_factory.mktemp("security")
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn, _, _ = H.build_tiny_store(root / "base", n_neurons=200, n_synapses=6000, chunk_rows=1024)
        conn = conn.assign_rois(H.slab_roiset(), progress=False)
        conn = Connectome(conn.path)
        assert conn.check() == []
        body = int(conn.neurons["bodyId"].iloc[0])
        rs = RoiSet.from_store(conn)
        r = Ref(
            path=conn.path,
            evil=root / "evil",
            columns=conn.read_synapses(conn.synapse_columns),
            neurons=conn.neurons.copy(),
            adjacency=conn.adjacency(by="type", progress=False),
            inputs=conn.synapses_of(INPUTS, "post", INPUT_COLUMNS),
            pairs=conn.read_pairs(),
            body=body,
            swc=fetch_skeleton(body, client=conn, format="swc"),
            roi_names=conn.roi_names,
            roi_bounds=np.asarray(rs.bounds),
        )
        _make_evil(conn.path, r.evil)
    assert not (r.columns["confidence"] == EVIL_VALUE).any()
    return r


def _plant_decoys(d: Path) -> None:
    """Directories and files named like the package's own leftovers, with its marker: GC bait."""
    d.mkdir(parents=True, exist_ok=True)
    for name, kind in (("g5-abcdef", "rois"), ("pre.g9-abcdef", "array"), ("_spill-abcdef", "spill")):
        p = d / name
        p.mkdir(exist_ok=True)
        write_marker(p, kind)
        (p / "data.bin").write_bytes(SECRET)
    (d / ".meta.json.tmp-deadbeef").write_text('{\n "format": "connectome-dask"')


@dataclass
class Scene:
    root: Path
    store: Path
    outside: Path
    evil: Path

    def digest(self) -> dict[str, str]:
        """Every file, folder and link outside the store (the store's lock file aside)."""
        return H.full_digest(self.root, exclude=lambda rel: rel.parts[0] in ("store", ".store.lock"))


@pytest.fixture
def scene(ref, tmp_path) -> Scene:
    store = H.copy_store(ref.path, tmp_path / "store")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    evil = outside / "evil"
    shutil.copytree(ref.evil, evil)
    for d in (tmp_path, outside, evil, evil / "synapses.zarr", evil / "index.zarr",
              evil / "index.zarr" / "by_post", evil / "rois"):
        _plant_decoys(d)
    return Scene(tmp_path, store, outside, evil)


def edit_meta(store: Path, fn: Callable[[dict], None]) -> None:
    """Edit meta.json and re-sign it (its checksum must not be what refuses the edit)."""
    meta = json.loads((store / "meta.json").read_text())
    fn(meta)
    meta.pop("checksum", None)
    write_meta(store, meta)


def relink(link: Path, target: str | Path) -> None:
    """Replace ``link`` (file or folder) by a symlink to ``target``."""
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    os.symlink(target, link)


# ----------------------------------------------------------------------------- the user's operations

OPS = ["open", "read", "frame", "neurons", "adjacency", "inputs", "pairs", "skeleton", "roi_names",
       "roiset", "unreferenced", "gc", "check", "assign", "write_columns"]
ALL = frozenset(OPS)
ALLOWED = (StoreError, RoiError, SkeletonError)


def _strong(block):
    return {"strong": block["confidence"] > 0.5}


def run_ops(store: Path, ref: Ref) -> dict[str, tuple[bool, object]]:
    out: dict[str, tuple[bool, object]] = {}

    def run(name: str, fn: Callable[[], object]) -> None:
        try:
            out[name] = (True, fn())
        except Exception as e:  # noqa: BLE001 - classified below
            out[name] = (False, e)

    def c() -> Connectome:
        return Connectome(store)

    run("open", c)
    run("read", lambda: c().read_synapses(c().synapse_columns))
    run("frame", lambda: c().synapses.compute())
    run("neurons", lambda: c().neurons)
    run("adjacency", lambda: c().adjacency(by="type", progress=False))
    run("inputs", lambda: c().synapses_of(INPUTS, "post", INPUT_COLUMNS))
    run("pairs", lambda: c().read_pairs())
    run("skeleton", lambda: fetch_skeleton(ref.body, client=c(), format="swc"))
    run("roi_names", lambda: c().roi_names)
    run("roiset", lambda: RoiSet.from_store(c()))
    run("unreferenced", lambda: c().unreferenced())
    run("gc", lambda: c().collect_garbage())
    run("check", lambda: c().check())
    rs = out["roiset"][1] if out["roiset"][0] else H.slab_roiset()
    run("assign", lambda: c().assign_rois(rs, progress=False))
    run("write_columns", lambda: c().write_synapse_columns(_strong, ["confidence"], {"strong": "bool"},
                                                           progress=False))
    return out


def _equal_columns(got: dict, want: dict) -> None:
    for k, v in got.items():
        assert k in want, k
        assert np.array_equal(np.asarray(v), want[k]), f"column {k!r} differs from the honest data"


def check_ok_result(name: str, value: object, ref: Ref, store: Path) -> None:
    """A successful operation returned exactly the honest data (never what lies outside)."""
    if name == "read":
        assert set(value) == set(ref.columns)
        _equal_columns(value, ref.columns)
    elif name == "frame":
        _equal_columns({c: value[c].to_numpy() for c in value.columns}, ref.columns)
    elif name == "neurons":
        pd.testing.assert_frame_equal(value, ref.neurons)
    elif name == "adjacency":
        want = ref.adjacency
        assert value.dims == want.dims and np.array_equal(value.to_numpy(), want.to_numpy())
        for d in want.dims:
            assert list(value[d].to_numpy()) == list(want[d].to_numpy())
    elif name == "inputs":
        _equal_columns(value, ref.inputs)
    elif name == "pairs":
        _equal_columns(value, ref.pairs)
    elif name == "skeleton":
        assert value == ref.swc
    elif name == "roi_names":
        assert value == ref.roi_names
    elif name == "roiset":
        assert value.names == ref.roi_names
        assert np.allclose(np.asarray(value.bounds), ref.roi_bounds)
    elif name in ("unreferenced", "gc"):
        for p in value:
            assert os.path.commonpath([os.path.abspath(p), str(store)]) == str(store), p
            assert not Path(p).is_symlink() or name == "unreferenced"
    elif name == "assign":
        got = value.read_synapses(["roi_pre", "roi_post"])
        _equal_columns(got, ref.columns)
        assert value.roi_names == ref.roi_names
    elif name == "write_columns":
        got = value.read_synapses(["strong", "confidence"])
        assert np.array_equal(got["strong"], ref.columns["confidence"] > 0.5)
        _equal_columns({"confidence": got["confidence"]}, ref.columns)


def no_secret_inside(store: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(store, followlinks=False):
        for f in filenames:
            p = Path(dirpath) / f
            if not p.is_symlink() and p.is_file():
                assert SECRET not in p.read_bytes(), f"{p}: a secret from outside the store was copied in"


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def names(store: Path, rel: str) -> list[str]:
    """The ways a message names the store entry ``rel``: as the path read, or as the entry found."""
    return [f"'{rel}", f"{store.resolve()}/{rel}"]


def assert_safe(scene: Scene, ref: Ref, must_fail: set[str] | frozenset[str], needle: str | list[str],
                check_finds: bool = True, check_needles: list[str] | None = None) -> dict:
    """Run every user operation on the tampered store and check the safety rules."""
    needles = [needle] if isinstance(needle, str) else list(needle)
    check_needles = needles if check_needles is None else check_needles
    before = scene.digest()
    res = run_ops(scene.store, ref)
    changed = _changed(before, scene.digest())
    assert not changed, f"outside the store, these changed: {changed}"
    no_secret_inside(scene.store)
    for name in OPS:
        ok, v = res[name]
        if name in must_fail:
            assert not ok, f"{name} should have been refused, returned {type(v).__name__}"
            assert isinstance(v, StoreError), f"{name}: {type(v).__name__}: {v}"
            assert any(n in str(v) for n in needles), f"{name}: message does not name {needles}: {v}"
        elif ok:
            check_ok_result(name, v, ref, scene.store)
        else:
            assert isinstance(v, ALLOWED), f"{name}: {type(v).__name__}: {v}"
    ok, v = res["check"]
    if check_finds and ok:
        assert v, "check() found nothing wrong with a tampered store"
        assert any(n in p for p in v for n in check_needles), f"check() does not name {check_needles}: {v}"
    return res


# ----------------------------------------------------------------------------- control


def test_untampered_store_passes_every_operation(scene, ref):
    res = assert_safe(scene, ref, set(), "-", check_finds=False)
    assert all(ok for ok, _ in res.values()), {k: v for k, (ok, v) in res.items() if not ok}
    assert res["check"][1] == [] and res["gc"][1] == []


def test_the_checks_can_fail(scene, ref):
    """A read that silently followed a link, or a write outside, would be caught."""
    c = Connectome(scene.store)
    _set_array(c._array_path("confidence"), EVIL_VALUE)  # as if the store had read the user's copy
    with pytest.raises(AssertionError, match="differs from the honest data"):
        assert_safe(scene, ref, set(), "-", check_finds=False)
    before = scene.digest()
    shutil.rmtree(scene.root / "g5-abcdef")  # as if GC had followed a link to the parent
    assert _changed(before, scene.digest()) == ["g5-abcdef/", "g5-abcdef/.connectome-dask.json",
                                                 "g5-abcdef/data.bin"]


# ----------------------------------------------------------------------------- meta.json paths


def _tag(store: Path) -> str:
    return json.loads((store / "meta.json").read_text())["rois"]


META_ESCAPES = {
    "synapses.path": lambda m, s: m["synapses"].__setitem__("path", s),
    "index.path": lambda m, s: m["index"].__setitem__("path", s),
    "neurons": lambda m, s: m.__setitem__("neurons", s),
    "rois": lambda m, s: m.__setitem__("rois", s),
    "skeletons": lambda m, s: m.__setitem__("skeletons", s),
    "column": lambda m, s: m["synapses"]["columns"].__setitem__("confidence", s),
    "by_post": lambda m, s: m["index"]["by_post"].__setitem__("pre", s),
    "pairs": lambda m, s: m["index"].__setitem__("pairs", s),
    "retained": lambda m, s: m.__setitem__("retained", [s]),
}

ESCAPE_VALUES = {
    "synapses.path": ["../outside/evil/synapses.zarr", "{abs}/evil/synapses.zarr", "synapses.zarr/.."],
    "index.path": ["../outside/evil/index.zarr", "{abs}/evil/index.zarr"],
    "neurons": ["../outside/evil/neurons.parquet", "{abs}/evil/neurons.parquet"],
    "rois": ["rois/../../outside/evil/rois/{tag}", "../outside/evil/{rois}", "{abs}/evil/{rois}"],
    "skeletons": ["../outside/evil/skeletons", "{abs}/evil/skeletons", "skeletons/../.."],
    "column": ["../../outside/evil/synapses.zarr/confidence", "..", "{abs}/evil/synapses.zarr/confidence"],
    "by_post": ["by_post/../../../outside/evil/index.zarr/by_post/pre", "../by_post/pre", "by_post/..",
                "{abs}/evil/index.zarr/by_post/pre"],
    "pairs": ["../../outside/evil/index.zarr/pairs", "..", "{abs}/evil/index.zarr/pairs"],
    "retained": ["../outside/g5-abcdef", "synapses.zarr/../../outside/evil/synapses.zarr/pre.g9-abcdef",
                 "{abs}/pre.g9-abcdef"],
}


@pytest.mark.parametrize(
    "key, value",
    [(k, v) for k, vs in ESCAPE_VALUES.items() for v in vs],
    ids=[f"{k}={v}" for k, vs in ESCAPE_VALUES.items() for v in vs],
)
def test_meta_path_escaping_the_store(scene, ref, key, value):
    tag = _tag(scene.store)
    value = value.format(abs=scene.outside, tag=tag.split("/")[-1], rois=tag)
    edit_meta(scene.store, lambda m: META_ESCAPES[key](m, value))
    with pytest.raises(StoreError, match="meta.json") as e:
        Connectome(scene.store)
    assert value in str(e.value) or repr(value) in str(e.value), str(e.value)
    assert_safe(scene, ref, ALL, value)


# the same keys naming an entry inside the store that is a symlink to the user's copy
META_LINKS = {
    # key: (link inside the store, target outside, meta value, operations that need it)
    "synapses.path": ("syn", "evil/synapses.zarr", "syn", {"read", "frame", "assign", "write_columns"}),
    "index.path": ("idx", "evil/index.zarr", "idx", {"inputs", "pairs"}),
    "neurons": ("n.parquet", "evil/neurons.parquet", "n.parquet", {"neurons", "adjacency"}),
    "rois": ("r", "evil/rois", "r/{tag}", {"roi_names", "roiset"}),
    "skeletons": ("sk", "evil/skeletons", "sk", {"skeleton"}),
    "column": ("synapses.zarr/conf", "evil/synapses.zarr/confidence", "conf", {"read", "frame", "write_columns"}),
    "by_post": ("index.zarr/by_post/pre_l", "evil/index.zarr/by_post/pre", "by_post/pre_l", {"inputs"}),
    "pairs": ("index.zarr/pl", "evil/index.zarr/pairs", "pl", {"pairs"}),
}


@pytest.mark.parametrize("key", list(META_LINKS))
def test_meta_path_through_a_symlink(scene, ref, key):
    link, target, value, need = META_LINKS[key]
    tag = _tag(scene.store).split("/")[-1]
    os.symlink(scene.outside / target, scene.store / link)
    value = value.format(tag=tag)
    edit_meta(scene.store, lambda m: META_ESCAPES[key](m, value))
    Connectome(scene.store)  # the name itself is fine; following it is not
    assert_safe(scene, ref, need, names(scene.store, link))


def test_retained_entry_that_is_a_symlink(scene, ref):
    """A retained (or stray) entry named like the package's own that links to a user folder: never followed."""
    link = scene.store / "synapses.zarr" / "pre.g9-abcdef"
    os.symlink(scene.outside / "evil" / "synapses.zarr" / "pre.g9-abcdef", link)
    stray = scene.store / "index.zarr" / "by_post" / "roi_post.g9-abcdef"
    os.symlink(scene.outside / "evil" / "index.zarr" / "by_post" / "pre.g9-abcdef", stray)
    edit_meta(scene.store, lambda m: m.__setitem__("retained", ["synapses.zarr/pre.g9-abcdef"]))
    res = assert_safe(scene, ref, set(), [str(link), str(stray)], check_needles=[str(stray)])
    assert stray in res["unreferenced"][1]
    assert (scene.outside / "evil" / "synapses.zarr" / "pre.g9-abcdef" / MARKER).exists()


def test_checksum_key_outside(scene, ref):
    from connectome_dask.store import file_digest

    rel = "../outside/secret.txt"
    edit_meta(scene.store, lambda m: m["checksums"].__setitem__(rel, file_digest(scene.outside / "secret.txt")))
    res = assert_safe(scene, ref, set(), rel)
    assert res["open"][0]


# ----------------------------------------------------------------------------- symlinks in the layout


def _move_out(scene: Scene, rel: str, dest: str) -> Path:
    """Move a store entry to the user's folder (the user's copy of it)."""
    d = scene.outside / dest
    shutil.move(str(scene.store / rel), str(d))
    _plant_decoys(d)
    return d


def test_rois_folder_symlink_to_user_folder(scene, ref):
    d = _move_out(scene, "rois", "user_rois")
    os.symlink(d, scene.store / "rois")
    assert_safe(scene, ref, {"roi_names", "roiset", "assign"}, names(scene.store, "rois"))


def test_rois_folder_symlink_to_parent(scene, ref):
    tag = _tag(scene.store).split("/")[-1]
    shutil.move(str(scene.store / "rois" / tag), str(scene.root / tag))  # what '..' would find
    shutil.rmtree(scene.store / "rois")
    os.symlink("..", scene.store / "rois")
    assert_safe(scene, ref, {"roi_names", "roiset", "assign"}, names(scene.store, "rois"))
    assert (scene.root / tag / "rois.json").exists() and (scene.root / "g5-abcdef" / MARKER).exists()


@pytest.mark.parametrize("where", ["user", "parent", "dotdot-to-store"])
def test_column_folder_symlink(scene, ref, where):
    rel = Connectome(scene.store).meta["synapses"]["columns"]["confidence"]
    link = scene.store / "synapses.zarr" / rel
    target = {"user": scene.outside / "evil" / "synapses.zarr" / "confidence",
              "parent": "../..", "dotdot-to-store": ".."}[where]
    relink(link, target)
    assert_safe(scene, ref, {"read", "frame", "write_columns"}, names(scene.store, f"synapses.zarr/{rel}"))


def test_synapses_folder_symlink_to_user_folder(scene, ref):
    d = _move_out(scene, "synapses.zarr", "user_syn")
    os.symlink(d, scene.store / "synapses.zarr")
    assert_safe(scene, ref, {"read", "frame", "assign", "write_columns"}, names(scene.store, "synapses.zarr"))
    assert (d / "pre.g9-abcdef" / MARKER).exists()


@pytest.mark.parametrize("where", ["user", "dotdot", "dotdot-dotdot"])
def test_by_post_folder_symlink(scene, ref, where):
    link = scene.store / "index.zarr" / "by_post"
    if where == "user":
        target: str | Path = _move_out(scene, "index.zarr/by_post", "user_by_post")
    else:
        target = {"dotdot": "..", "dotdot-dotdot": "../.."}[where]
        shutil.rmtree(link)
    os.symlink(target, link)
    res = assert_safe(scene, ref, {"inputs", "assign"}, names(scene.store, "index.zarr/by_post"))
    assert not res["assign"][0]


def test_skeleton_file_symlink_to_outside(scene, ref):
    link = scene.store / "skeletons" / f"{ref.body}.swc"
    relink(link, scene.outside / "evil" / "skeletons" / f"{ref.body}.swc")
    assert_safe(scene, ref, {"skeleton"}, names(scene.store, f"skeletons/{ref.body}.swc"))


def test_skeleton_folder_symlink_to_outside(scene, ref):
    relink(scene.store / "skeletons", scene.outside / "evil" / "skeletons")
    assert_safe(scene, ref, {"skeleton"}, names(scene.store, "skeletons"))


@pytest.mark.parametrize("what", ["mesh-file", "meshes-folder", "grid"])
def test_roi_folder_entries_symlink_to_outside(scene, ref, what):
    """rois.json names meshes and the label grid: links there are refused like meta.json's."""
    tag = _tag(scene.store)
    evil_rois = scene.outside / "evil" / tag
    rel = {"mesh-file": "meshes/0000.ply", "meshes-folder": "meshes", "grid": "grid.zarr"}[what]
    link = scene.store / tag / rel
    relink(link, evil_rois / rel)
    assert_safe(scene, ref, {"roi_names", "roiset"}, names(scene.store, f"{tag}/{rel}"))


@pytest.mark.parametrize("rel", ["../../../../outside/evil/rois/x/meshes/0000.ply", "/etc/hostname",
                                 "meshes/../../../outside.ply"])
def test_rois_json_mesh_path_escaping(scene, ref, rel):
    tag = _tag(scene.store)
    p = scene.store / tag / "rois.json"
    info = json.loads(p.read_text())
    info["meshes"][info["names"][0]] = rel
    p.write_text(json.dumps(info))
    # check() sees the edit as rois.json no longer matching its checksum
    res = assert_safe(scene, ref, set(), rel, check_needles=[f"{tag}/rois.json"])
    ok, e = res["roiset"]
    assert not ok and isinstance(e, RoiError | StoreError) and rel in str(e), e


# ----------------------------------------------------------------------------- overwrite=True


@pytest.fixture(scope="module")
def products(ref, tmp_path_factory):
    """A source table for ingest, a matrix, a DataArray (written by this package for the controls)."""
    root = tmp_path_factory.mktemp("products")
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = Connectome(ref.path)
        m = NestedMatrix.from_synapses(conn, weight_mode="count", progress=False)
        da = conn.adjacency(by="type", progress=False)
        m.to_zarr(root / "m.zarr")
        save_dataarray(da, root / "da.zarr")
        datasets.write_procedural_meshes(root / "meshes")
    body = ref.neurons["bodyId"].to_numpy()
    cols = ref.columns
    src = pd.DataFrame({"pre_pt_root_id": body[cols["pre"]], "post_pt_root_id": body[cols["post"]],
                        **{f"pre_pt_position_{a}": cols[f"{a}_pre"] for a in "xyz"},
                        **{f"post_pt_position_{a}": cols[f"{a}_post"] for a in "xyz"},
                        "connection_score": cols["confidence"]})
    src.to_parquet(root / "src.parquet")
    return {"root": root, "matrix": m, "da": da, "src": root / "src.parquet", "n": len(src)}


def _write(writer: str, target: Path, products: dict, scratch: Path):
    """Run one writer with overwrite=True at ``target``; return what reading it back gives."""
    neurons = pd.DataFrame({"bodyId": [11, 22, 33]})
    syn = pd.DataFrame({"pre": np.array([0, 2, 1], np.int32), "post": np.array([1, 1, 2], np.int32)})
    if writer == "ingest":
        return ingest(products["src"], target, overwrite=True, chunk_rows=1024, progress=False).n_synapses
    if writer == "synthetic":
        return datasets.synthetic(target, n_neurons=40, n_synapses=300, overwrite=True, progress=False,
                                  skeletons=False, chunk_rows=1024).n_synapses
    if writer == "StoreWriter":
        with StoreWriter(target, 3, overwrite=True) as w:
            w.append({"pre": syn["pre"].to_numpy(), "post": syn["post"].to_numpy()})
            return w.close(neurons).n_synapses
    if writer == "write_store":
        return write_store(target, neurons, syn, overwrite=True).n_synapses
    if writer == "meshes_dir":
        c = datasets.synthetic(scratch / "with_meshes", n_neurons=40, n_synapses=300, progress=False,
                               skeletons=False, meshes_dir=target, overwrite=True)
        return len(RoiSet.from_directory(target).names) + 0 * c.n_synapses
    if writer == "to_zarr":
        products["matrix"].to_zarr(target, overwrite=True)
        return open_matrix(target).shape
    if writer == "save_dataarray":
        save_dataarray(products["da"], target, overwrite=True)
        return open_dataarray(target).shape
    raise AssertionError(writer)


WRITERS = ["ingest", "synthetic", "StoreWriter", "write_store", "meshes_dir", "to_zarr", "save_dataarray"]
STORE_WRITERS = {"ingest", "synthetic", "StoreWriter", "write_store"}
OWN_KIND = {"meshes_dir": "meshes", "to_zarr": "matrix", "save_dataarray": "dataarray"}
TARGETS = ["user-dir", "empty-dir", "foreign-meta", "zarr-group", "file", "symlink-to-own-kind",
           "symlink-to-user-dir", "other-kind"]


def _make_target(kind: str, writer: str, root: Path, ref: Ref, products: dict) -> Path:
    t = root / "target"
    own = OWN_KIND.get(writer, "store")
    sources = {"store": ref.path, "matrix": products["root"] / "m.zarr",
               "dataarray": products["root"] / "da.zarr", "meshes": products["root"] / "meshes"}
    if kind == "user-dir":
        (t / "sub").mkdir(parents=True)
        (t / "notes.txt").write_bytes(SECRET)
        (t / "sub" / "data.csv").write_text("a,b\n1,2\n")
    elif kind == "empty-dir":
        t.mkdir()
    elif kind == "foreign-meta":
        t.mkdir()
        (t / "meta.json").write_text(json.dumps({"format": "my-lab-format", "version": 3}))
        (t / "results.txt").write_bytes(SECRET)
    elif kind == "zarr-group":
        import zarr

        g = zarr.open_group(str(t), mode="w")
        g.attrs["owner"] = "the user"
        g.create_array("x", shape=(3,), dtype="int32")[:] = [1, 2, 3]
    elif kind == "file":
        t.write_bytes(SECRET)
    elif kind == "symlink-to-own-kind":
        real = root / "elsewhere" / "real"
        shutil.copytree(sources[own], real)
        os.symlink(real, t)
    elif kind == "symlink-to-user-dir":
        (root / "elsewhere" / "user").mkdir(parents=True)
        (root / "elsewhere" / "user" / "notes.txt").write_bytes(SECRET)
        os.symlink(root / "elsewhere" / "user", t)
    elif kind == "other-kind":
        other = "matrix" if own == "store" else "store"
        shutil.copytree(sources[other], t)
    elif kind == "own-kind":
        shutil.copytree(sources[own], t)
    else:
        raise AssertionError(kind)
    return t


@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("writer", WRITERS)
def test_overwrite_refuses_what_is_not_its_own(writer, target_kind, ref, products, tmp_path):
    t = _make_target(target_kind, writer, tmp_path, ref, products)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def digest():
        return H.full_digest(tmp_path, exclude=lambda rel: rel.name.endswith(".lock"))

    before = digest()
    expected = FileExistsError if writer in ("to_zarr", "save_dataarray") else StoreError
    with pytest.raises(expected) as e:
        _write(writer, t, products, scratch)
    assert str(t) in str(e.value), f"the error does not name {t}: {e.value}"
    changed = _changed(before, digest())
    assert not changed, f"a refused overwrite changed: {changed}"


@pytest.mark.parametrize("writer", WRITERS)
def test_overwrite_replaces_its_own_kind(writer, ref, products, tmp_path):
    """The control: the same call replaces an output of its own kind (so the refusals above are real)."""
    t = _make_target("own-kind", writer, tmp_path, ref, products)
    old = H.full_digest(t)
    got = _write(writer, t, products, tmp_path)
    assert H.full_digest(t) != old
    expect = {"ingest": products["n"], "synthetic": 300, "StoreWriter": 3, "write_store": 3,
              "meshes_dir": 26, "to_zarr": products["matrix"].shape, "save_dataarray": products["da"].shape}
    assert got == expect[writer]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".target.tmp-")) == []


def test_roi_counts_cache_symlink_is_not_followed(scene, ref):
    """The derived per-neuron ROI counts cache (inside the ROI folder) is never read through a link."""
    from connectome_dask.aggregate import neuron_roi_counts

    conn = Connectome(scene.store)
    tag = _tag(scene.store)
    fake = scene.outside / "counts.parquet"
    pd.DataFrame({"index": [0], "roi": [0], "pre": [10**9], "post": [0], "downstream": [0],
                  "upstream": [0]}).to_parquet(fake)
    digest = fake.read_bytes()
    os.symlink(fake, scene.store / tag / f"neuron_roi_counts.g{conn.generation}.parquet")
    with pytest.raises(StoreError, match="symlink"):
        neuron_roi_counts(conn, progress=False)
    assert fake.read_bytes() == digest
