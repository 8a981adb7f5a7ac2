"""Interrupted writes: SIGKILL a writer process mid-write; the previous data stays valid.

Each writer runs in a subprocess (``python -c``). A small patch *inside that
subprocess* marks a precise point of the write (a marker file) and then
waits; the test polls for the marker and for the write's on-disk footprint
(``.<name>.tmp-*`` beside the target, or fresh ``*.g<N>-*`` arrays) and
SIGKILLs the process there. Afterwards the previous store / matrix must be
byte-for-byte unchanged (every file hashed), open and validate, and the
half-written output must not be usable as valid data.

Also here: ``connectome-dask info --check`` on a good store, on stores with
damaged chunk files, and on a store with leftovers of a killed write.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectome_dask.cli import main as cli_main
from connectome_dask.ingest import ingest
from connectome_dask.matrix import NestedMatrix, open_dataarray, open_matrix, save_dataarray
from connectome_dask.store import Connectome, StoreError
from tests.reliability import _reliability_helpers as H

pytestmark = pytest.mark.timeout(300)



@pytest.fixture(scope="module")
def scheduler_address():
    """An in-process scheduler for the CLI (``--scheduler``), so it starts no cluster of its own."""
    from distributed import LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        )
    yield cluster.scheduler_address
    cluster.close()


def info_check(path, address, capsys):
    capsys.readouterr()
    rc = cli_main(["info", str(path), "--check", "--scheduler", address])
    out = capsys.readouterr()
    return rc, out.out, out.err


def cave_table(n: int, seed: int) -> pd.DataFrame:
    return H.cave_table(n, seed, n_bodies=400, sort_ids=True)


def _script(body: str) -> str:
    return H.python_script(H.HOLD_SNIPPET + body)


def _leftovers(parent: Path, name: str) -> list[Path]:
    return sorted(parent.glob(f".{name}.tmp-*"))


# ----------------------------------------------------------------------------- ingest

INGEST_PATCHES = {
    # after the 2nd block is spilled to the writer's bucket files
    "spill": """
orig = st.writer.StoreWriter.append
n = [0]
def patched(self, block):
    orig(self, block)
    n[0] += 1
    if n[0] == 2:
        _hold(MARKER, str(self.tmp))
st.writer.StoreWriter.append = patched
""",
    # synapse arrays written, index not yet
    "index": """
def patched(root, *a, **k):
    _hold(MARKER, str(root))
st.writer._build_index = patched  # patch the module that calls it
""",
    # everything written except the new meta.json
    "meta": """
orig = st.format.write_json_atomic  # write_meta's binding
def patched(path, obj, **kw):
    if Path(path).name == "meta.json":
        _hold(MARKER, str(path))
    return orig(path, obj, **kw)
st.format.write_json_atomic = patched
""",
}


@pytest.mark.parametrize(
    "point, previous",
    [(p, True) for p in INGEST_PATCHES] + [("spill", False)],
    ids=[f"replace-{p}" for p in INGEST_PATCHES] + ["new-spill"],
)
def test_ingest_killed_mid_write(tmp_path, point, previous, scheduler_address, capsys):
    cave_table(3_000, 1).to_parquet(tmp_path / "old.parquet")
    cave_table(16_000, 2).to_parquet(tmp_path / "new.parquet", row_group_size=2_000)
    store = tmp_path / "store"
    if previous:
        old = ingest(tmp_path / "old.parquet", store, chunk_rows=1024, progress=False)
        before = H.tree_digest(store)
        old_rows = old.read_synapses(old.synapse_columns)
    marker = tmp_path / "marker"
    body = f"""
from pathlib import Path
import connectome_dask.store as st
from connectome_dask.ingest import ingest
MARKER = {str(marker)!r}
{INGEST_PATCHES[point]}
ingest({str(tmp_path / "new.parquet")!r}, {str(store)!r}, overwrite=True, chunk_rows=1024,
       batch_rows=2000, bucket_rows=4000, progress=False)
raise SystemExit("ingest finished without being killed")
"""
    H.run_and_kill(
        _script(body),
        lambda: marker.exists() and bool(_leftovers(tmp_path, "store")),
        what=f"ingest to reach '{point}'",
    )
    left = _leftovers(tmp_path, "store")
    assert left, "the killed ingest wrote no temporary store"
    for p in left:  # the half-written store is not a valid store
        with pytest.raises(StoreError, match="meta.json is missing"):
            Connectome(p)
    if not previous:
        assert not store.exists()
        return
    assert H.tree_digest(store) == before
    conn = Connectome(store)
    assert conn.check() == []
    again = conn.read_synapses(conn.synapse_columns)
    assert all(np.array_equal(again[c], old_rows[c]) for c in old_rows)
    rc, out, err = info_check(store, scheduler_address, capsys)
    assert rc == 0 and "store OK" in out, (out, err)


# ----------------------------------------------------------------------------- assign_rois


def test_assign_rois_killed_mid_write(small_store, tmp_path, scheduler_address, capsys):
    store = H.copy_store(small_store.path, tmp_path / "store")
    conn = Connectome(store)
    before = H.tree_digest(store)
    meta_bytes = (store / "meta.json").read_bytes()
    old = conn.read_synapses(["roi_pre", "roi_post"])
    gen = conn.generation
    marker = tmp_path / "marker"
    body = f"""
import dask
# one chunk per partition: the store spans many partitions, so the kill lands mid-write
dask.config.set(scheduler="sync")
dask.config.set({{"connectome_dask.partition_chunks": 1}})
import warnings
warnings.simplefilter("ignore")
import connectome_dask.store as st
from connectome_dask.store import Connectome
from tests.reliability import _reliability_helpers as H
MARKER = {str(marker)!r}
orig = st.commit._write_outputs  # the binding write_synapse_columns uses
n = [0]
def patched(block, start, func, out_paths, args):
    r = orig(block, start, func, out_paths, args)
    n[0] += 1
    if n[0] == 2:   # two partitions written into the new arrays, more to come
        _hold(MARKER, ",".join(out_paths.values()))
    return r
st.commit._write_outputs = patched
conn = Connectome({str(store)!r})
conn.assign_rois(H.slab_roiset(), progress=False)
raise SystemExit("assign_rois finished without being killed")
"""
    syn_root = store / "synapses.zarr"
    H.run_and_kill(
        _script(body),
        lambda: marker.exists() and bool(list(syn_root.glob(f"roi_pre.g{gen + 1}-*"))),
        what="assign_rois to write new ROI arrays",
    )
    assert (store / "meta.json").read_bytes() == meta_bytes
    conn = Connectome(store)
    leftovers = conn.unreferenced()
    names = sorted(p.name for p in leftovers)
    assert any(n.startswith(f"roi_pre.g{gen + 1}-") for n in names), names
    assert any(n.startswith(f"roi_post.g{gen + 1}-") for n in names), names
    assert all(f"g{gen + 1}-" in n for n in names), names
    # every referenced file is byte-identical; only the unreferenced leftovers are new
    left_rel = {str(p.relative_to(store)) for p in leftovers}
    after = H.tree_digest(store, exclude=lambda rel: any(str(rel).startswith(x) for x in left_rel))
    assert after == before
    assert conn.check() == []
    cur = conn.read_synapses(["roi_pre", "roi_post"])
    assert all(np.array_equal(cur[c], old[c]) for c in old)
    rc, out, err = info_check(store, scheduler_address, capsys)
    assert rc == 0, err
    assert "store OK" in out
    for p in leftovers:
        assert f"note: unreferenced leftover (from an interrupted write): {p}" in out
    # garbage collection restores the exact previous tree; a new write then succeeds
    assert sorted(conn.collect_garbage()) == sorted(leftovers)
    assert H.tree_digest(store) == before
    import dask

    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = conn.assign_rois(H.slab_roiset(), progress=False)
    assert new.check() == [] and new.unreferenced() == [] and new.roi_names == H.SLAB_NAMES


# ----------------------------------------------------------------------------- matrices

MATRIX_BODY = {
    "nested": """
m = NestedMatrix.from_synapses(conn, weight_mode="relative_outgoing", progress=False)
m.to_zarr(TARGET, overwrite=True)
""",
    "dataarray": """
da = conn.adjacency(by="instance", progress=False)
save_dataarray(da, TARGET, overwrite=True)
""",
}


@pytest.mark.parametrize("kind", list(MATRIX_BODY))
def test_matrix_write_killed_mid_write(small_store, tmp_path, kind):
    import dask

    target = tmp_path / "m.zarr"
    with dask.config.set(scheduler="sync"):
        if kind == "nested":
            m1 = NestedMatrix.from_synapses(small_store.conn, weight_mode="count", progress=False)
            m1.to_zarr(target)
        else:
            da1 = small_store.conn.adjacency(by="type", progress=False)
            save_dataarray(da1, target)
    before = H.tree_digest(target)
    marker = tmp_path / "marker"
    body = f"""
import dask
dask.config.set(scheduler="sync")
import connectome_dask.matrix as mx
from connectome_dask.matrix import NestedMatrix, save_dataarray
from connectome_dask.store import Connectome
MARKER = {str(marker)!r}
TARGET = {str(target)!r}
orig = mx._write_array
n = [0]
def patched(group, name, a):
    orig(group, name, a)
    n[0] += 1
    if n[0] == 3:  # three arrays of the new matrix written, the rest and the attrs to come
        _hold(MARKER, name)
mx._write_array = patched
conn = Connectome({str(small_store.path)!r})
{MATRIX_BODY[kind]}
raise SystemExit("the matrix write finished without being killed")
"""
    H.run_and_kill(
        _script(body),
        lambda: marker.exists() and bool(_leftovers(tmp_path, "m.zarr")),
        what="the matrix write to be half done",
    )
    assert H.tree_digest(target) == before
    (left,) = _leftovers(tmp_path, "m.zarr")
    opener = open_matrix if kind == "nested" else open_dataarray
    with pytest.raises(FileNotFoundError, match="is not a"):
        opener(left)
    if kind == "nested":
        m = open_matrix(target)
        assert m.ordered_neurons == m1.ordered_neurons
        assert (m.to_scipy() != m1.to_scipy()).nnz == 0
        assert np.array_equal(m.sum_type_matrix.to_numpy(), m1.sum_type_matrix.to_numpy())
    else:
        da = open_dataarray(target)
        assert da.identical(da1)


# ----------------------------------------------------------------------------- info --check


def _chunk(store: Path, column: str, i: int) -> Path:
    conn = Connectome(store)
    rel = conn.meta["synapses"]["columns"][column]
    return store / "synapses.zarr" / rel / "c" / str(i)


def test_info_check_good_store(small_store, scheduler_address, capsys):
    rc, out, err = info_check(small_store.path, scheduler_address, capsys)
    assert rc == 0 and "store OK" in out and err == ""
    assert "note:" not in out
    assert f"synapses: {small_store.conn.n_synapses}" in out


def _truncate(p: Path) -> None:
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 3])


def _smash_header(p: Path) -> None:
    b = bytearray(p.read_bytes())
    b[:16] = b"\xff" * 16
    p.write_bytes(bytes(b))


@pytest.mark.parametrize(
    "column, damage, expect",
    [
        ("pre", _truncate, r"synapse column 'pre' rows \d+\.\.\d+: unreadable"),
        ("x_post", _truncate, r"synapse column 'x_post' rows \d+\.\.\d+: unreadable"),
        ("confidence", _smash_header, r"synapse column 'confidence' rows \d+\.\.\d+: unreadable"),
        ("roi_post", _smash_header, r"synapse column 'roi_post' rows \d+\.\.\d+: unreadable"),
    ],
    ids=["pre-truncated", "x_post-truncated", "confidence-corrupted", "roi_post-corrupted"],
)
def test_info_check_damaged_chunk(
    small_store, tmp_path, scheduler_address, capsys, column, damage, expect
):
    import re

    store = H.copy_store(small_store.path, tmp_path / "store")
    damage(_chunk(store, column, 2))
    rc, out, err = info_check(store, scheduler_address, capsys)
    assert rc == 2, (out, err)
    assert "INVALID" in err and "store OK" not in out
    assert re.search(expect, err), err
    assert Connectome(store).check() != []


def test_info_check_out_of_range_indices(small_store, tmp_path, scheduler_address, capsys):
    import zarr

    store = H.copy_store(small_store.path, tmp_path / "store")
    a = zarr.open_array(str(store / "synapses.zarr" / "post"), mode="r+")
    a[5000:5010] = small_store.conn.n_neurons + 3  # valid chunk, invalid content
    rc, out, err = info_check(store, scheduler_address, capsys)
    assert rc == 2 and "synapse column 'post': row 5000 out of range" in err, err


def test_info_check_missing_chunk_file(small_store, tmp_path, scheduler_address, capsys):
    store = H.copy_store(small_store.path, tmp_path / "store")
    _chunk(store, "x_pre", 2).unlink()
    rc, out, err = info_check(store, scheduler_address, capsys)
    assert rc == 2 and "x_pre" in err, (out, err)


def test_info_check_invalid_meta(small_store, tmp_path, scheduler_address, capsys):
    store = H.copy_store(small_store.path, tmp_path / "store")
    meta = json.loads((store / "meta.json").read_text())
    meta["schema_version"] = 99
    (store / "meta.json").write_text(json.dumps(meta))
    rc, out, err = info_check(store, scheduler_address, capsys)
    assert rc == 2 and "schema_version 99 is newer" in err
    shutil.rmtree(store / "synapses.zarr")
    (store / "meta.json").unlink()
    rc, out, err = info_check(store, scheduler_address, capsys)
    assert rc == 2 and "meta.json is missing" in err
