"""Stored bytes are checked: every single-bit flip in a chunk file is caught, every index
invariant is verified by ``check(deep=True)``, and derived data cannot go stale.

The faults are made here by hand (a flipped bit in a chunk file; an index array rewritten
through zarr with a valid checksum but wrong values) and each must be reported.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import zarr

from connectome_dask.store import Connectome, StoreError
from connectome_dask.testing import build_small_store

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    conn, _, _ = build_small_store(tmp_path_factory.mktemp("crc") / "s", n_neurons=60, n_synapses=6_000,
                                   chunk_rows=1024)
    assert conn.check() == []
    return conn.path


def _copy(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return Connectome(dst)


def _chunk_files(conn: Connectome) -> list:
    files = []
    for _label, path, _ in conn._arrays_of_generation():
        files += sorted(p for p in (path / "c").rglob("*") if p.is_file())
    return files


def test_every_single_bit_flip_is_caught(pristine, tmp_path):
    conn = _copy(pristine, tmp_path / "s")
    files = _chunk_files(conn)
    rng = np.random.default_rng(7)
    caught = 0
    for _ in range(120):
        f = files[int(rng.integers(len(files)))]
        data = bytearray(f.read_bytes())
        pos, bit = int(rng.integers(len(data))), int(rng.integers(8))
        data[pos] ^= 1 << bit
        original = f.read_bytes()
        f.write_bytes(bytes(data))
        try:
            problems = Connectome(conn.path).check(deep=True)
        finally:
            f.write_bytes(original)
        assert problems, f"a flipped bit {bit} at byte {pos} of {f} passed check()"
        caught += 1
    assert caught == 120
    assert Connectome(conn.path).check() == []


def _rewrite(path, fn):
    arr = zarr.open_array(str(path), mode="r+", config={"write_empty_chunks": True})
    a = arr[:]
    arr[:] = fn(a.copy())


CASES = {
    "post_perm": ("index.zarr/post_perm", lambda a: a[[1, 0, *range(2, len(a))]], "post_perm"),
    "post_offsets": ("index.zarr/post_offsets", lambda a: a + (np.arange(len(a)) == 3), "post_offsets"),
    "pre_offsets": ("index.zarr/pre_offsets", lambda a: a + (np.arange(len(a)) == 5), "pre_offsets"),
    "pairs_weight": ("index.zarr/pairs/weight", lambda a: a[::-1], "pairs"),
    "by_post_copy": ("index.zarr/by_post/pre", lambda a: np.roll(a, 1), "by_post copy of 'pre'"),
    "row_order": ("synapses.zarr/post", lambda a: a[::-1], "sorted by \\(pre, post\\)|pairs"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_deep_check_verifies_every_index_invariant(pristine, tmp_path, case):
    rel, fn, expect = CASES[case]
    conn = _copy(pristine, tmp_path / "s")
    _rewrite(conn.path / rel, fn)
    problems = Connectome(conn.path).check(deep=True)
    assert problems, f"{rel} rewritten with wrong values passed check(deep=True)"
    assert any(re.search(expect, p) for p in problems), problems


def test_deleted_index_chunk_is_an_error_not_zeros(pristine, tmp_path):
    conn = _copy(pristine, tmp_path / "s")
    (conn.path / "index.zarr" / "post_perm" / "c" / "1").unlink()
    c = Connectome(conn.path)
    with pytest.raises(StoreError, match="missing"):
        c.synapse_rows(np.arange(c.n_neurons), side="post")
    assert any("missing" in p for p in c.check())


@pytest.mark.parametrize("column", ["pre", "post"])
def test_columns_the_index_derives_from_cannot_be_rewritten(pristine, tmp_path, column):
    conn = _copy(pristine, tmp_path / "s")
    with pytest.raises(StoreError, match="row order, the index and the connection table"):
        conn.write_synapse_columns(lambda b: {column: b[column][::-1]}, [column], {column: "int32"})
    assert Connectome(conn.path).check() == []
