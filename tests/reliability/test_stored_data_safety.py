"""Safety of stored data: no pickle anywhere, names cannot escape the store, YAML only safe-loaded.

A store is built the way users build one (``ingest`` from Parquet with a
neuron table, ``datasets.synthetic``), ROIs assigned from meshes, and a
NestedMatrix / DataArray saved; every file is then inspected: no pickle
files, no pickle protocol header at the start of any metadata/table file,
Zarr metadata is JSON with plain numeric dtypes and no object codecs, and
``.npy`` files load with ``allow_pickle=False``. The package source is
scanned (AST) for unsafe loaders.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

import connectome_dask
from connectome_dask import datasets
from connectome_dask.ingest import ingest
from connectome_dask.matrix import NestedMatrix, save_dataarray
from connectome_dask.rois import RoiError, RoiSet
from connectome_dask.store import Connectome, StoreError, safe_name
from tests.reliability import _reliability_helpers as H

pytestmark = pytest.mark.timeout(180)

PKG = Path(connectome_dask.__file__).resolve().parent
PICKLE_HEADER = re.compile(rb"^\x80[\x02-\x05]")
ZARR_NUMERIC = re.compile(r"^(bool|u?int(8|16|32|64)|float(16|32|64))$")


@pytest.fixture(scope="module")
def written(small_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    syn = small_store.synapses
    src = pd.DataFrame(
        {
            "pre_pt_root_id": syn["bodyId_pre"],
            "post_pt_root_id": syn["bodyId_post"],
            **{f"pre_pt_position_{a}": syn[f"{a}_pre"] for a in "xyz"},
            **{f"post_pt_position_{a}": syn[f"{a}_post"] for a in "xyz"},
            "connection_score": syn["confidence"],
        }
    )
    src.to_parquet(root / "syn.parquet")
    small_store.neurons.to_parquet(root / "neurons.parquet")
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ingest(
            root / "syn.parquet",
            root / "ingested",
            neurons=root / "neurons.parquet",
            chunk_rows=4096,
            progress=False,
        )
        a = a.assign_rois(H.slab_roiset(), progress=False)
        b = datasets.synthetic(
            root / "synthetic",
            n_neurons=200,
            n_synapses=20_000,
            chunk_rows=4096,
            skeletons=5,
            progress=False,
            meshes_dir=root / "meshes",
        )
        b = b.assign_rois(RoiSet.from_directory(root / "meshes"), progress=False)
        NestedMatrix.from_synapses(a, weight_mode="relative_outgoing", progress=False).to_zarr(
            root / "m.zarr"
        )
        save_dataarray(b.adjacency(by="type", progress=False), root / "types.zarr")
        save_dataarray(a.adjacency(progress=False), root / "neurons.zarr")
    return root, [a, b]


def _is_chunk(p: Path) -> bool:
    return (
        "c" in p.parts[:-1]
        and p.parts[p.parts.index("c") - 1] != ""
        and not p.name.endswith(".json")
    )


def test_no_pickle_in_stored_data(written):
    root, conns = written
    for c in conns:
        assert c.check() == [] and c.roi_names
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) > 200
    kinds = set()
    for p in files:
        assert p.suffix not in (".pkl", ".pickle", ".pck", ".joblib"), p
        head = p.read_bytes()[:2]
        if not _is_chunk(p.relative_to(root)):
            assert not PICKLE_HEADER.match(head), f"{p} starts with a pickle protocol header"
            kinds.add(p.suffix)
        if p.name == "zarr.json":
            meta = json.loads(p.read_text())
            if meta.get("node_type") == "array":
                dt = meta["data_type"]
                assert isinstance(dt, str) and ZARR_NUMERIC.match(dt), f"{p}: data_type {dt!r}"
                for codec in meta.get("codecs", []):
                    name = codec["name"] if isinstance(codec, dict) else str(codec)
                    assert "pickle" not in name.lower() and "object" not in name.lower(), (p, name)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".npy":
            np.load(p, allow_pickle=False)
        elif p.suffix == ".parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(p)
            md = schema.metadata or {}
            for k, v in md.items():
                assert not PICKLE_HEADER.match(v), (p, k)
    assert {".json", ".parquet", ".ply", ".swc"} <= kinds, kinds


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            base = (
                f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            )
            yield node, base, name


def scan_source(text: str, filename: str) -> list[str]:
    """Unsafe deserialisation calls in one source file."""
    bad = []
    tree = ast.parse(text, filename)
    for node, base, name in _calls(tree):
        kw = {k.arg: k.value for k in node.keywords}
        where = f"{filename}:{node.lineno}"
        if base == "yaml" and name in (
            "unsafe_load",
            "unsafe_load_all",
            "full_load",
            "full_load_all",
        ):
            bad.append(f"{where}: yaml.{name}")
        if base == "yaml" and name in ("load", "load_all"):
            loader = kw.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
            lname = ast.unparse(loader) if loader is not None else ""
            if "SafeLoader" not in lname and "CSafeLoader" not in lname:
                bad.append(f"{where}: yaml.{name} without SafeLoader")
        if base in ("pickle", "cPickle", "dill", "cloudpickle", "joblib") and name in (
            "load",
            "loads",
        ):
            bad.append(f"{where}: {base}.{name}")
        if name == "read_pickle":
            bad.append(f"{where}: read_pickle")
        if "allow_pickle" in kw and not (
            isinstance(kw["allow_pickle"], ast.Constant) and kw["allow_pickle"].value is False
        ):
            bad.append(f"{where}: allow_pickle={ast.unparse(kw['allow_pickle'])}")
        if base in ("np", "numpy") and name == "load" and "allow_pickle" not in kw:
            bad.append(f"{where}: np.load without allow_pickle=False")
    return bad


def test_scanner_finds_unsafe_calls():
    src = (
        "import yaml, pickle, numpy as np\n"
        "yaml.load(f)\nyaml.load(f, Loader=yaml.Loader)\nyaml.unsafe_load(f)\n"
        "pickle.loads(b)\nnp.load(p)\nnp.load(p, allow_pickle=True)\n"
        "yaml.load(f, Loader=yaml.SafeLoader)\nyaml.safe_load(f)\nnp.load(p, allow_pickle=False)\n"
    )
    bad = scan_source(src, "x.py")
    assert [b.split(":")[1] for b in bad] == ["2", "3", "4", "5", "6", "7"], bad


def test_package_source_uses_only_safe_loaders():
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 10
    bad = [b for f in files for b in scan_source(f.read_text(), str(f.relative_to(PKG.parent)))]
    assert bad == [], "unsafe deserialisation in the package:\n" + "\n".join(bad)
    assert "safe_load" in (PKG / "config.py").read_text()


@pytest.mark.parametrize(
    "name", ["../evil", "a/b", "..", ".", "x/../../y", "a\\b", "/abs", "nul\x00", "EB\n", "EB\r", " EB", ""]
)
def test_escaping_names_rejected(name):
    with pytest.raises(StoreError, match="is not allowed"):
        safe_name(name, "ROI name")
    import trimesh

    with pytest.raises(RoiError):
        RoiSet.from_meshes({name: trimesh.creation.box()})


@pytest.mark.parametrize("name", [".hidden", "ok..dots", "CRE(-ROB,-RUB)(R)", "a'L(R)", "MB(+ACA)(R)",
                                  "LAL(-GA)(R)", "x:y*?", "Ünïcode"])
def test_real_names_accepted_and_encoded(name):
    from connectome_dask._fsutil import encode_name

    assert safe_name(name, "ROI name") == name
    enc = encode_name(name)
    assert "/" not in enc and "\\" not in enc and not enc.startswith(".") and enc not in ("", "..")
    # the encoding is reversible (distinct names never share a file name)
    from urllib.parse import unquote

    assert (unquote(enc[1:]) if enc.startswith("%") else enc) == name


def test_stored_roi_folder_paths_cannot_escape(written, tmp_path):
    root, (a, _) = written
    store = H.copy_store(a.path, tmp_path / "store")
    conn = Connectome(store)
    info_path = conn.rois_path / "rois.json"
    info = json.loads(info_path.read_text())
    name = info["names"][0]
    info["meshes"][name] = "../../../../outside.ply"
    info_path.write_text(json.dumps(info))
    with pytest.raises(RoiError, match=r"unexpected mesh path '\.\./\.\./\.\./\.\./outside\.ply'"):
        RoiSet.from_store(Connectome(store))
