"""The writer's in-bucket sort and the spill's bucket split, against numpy's stable sorts.

``_pair_order`` counting-sorts a large bucket in two passes, or packs
(pre, post, row) into one int64 and sorts it; the reference is
``np.lexsort`` (stable): equal pairs must keep their input order. ``spill_buckets`` must keep each bucket's rows in input order.
"""

from __future__ import annotations

import numpy as np
import pytest

from connectome_dask.store.sort import load_bucket, spill_buckets
from connectome_dask.store.writer import _pair_order


@pytest.mark.parametrize("n_neurons", [1, 2, 7, 139_000, 2**31 - 1])  # the last cannot pack: the fallback
@pytest.mark.parametrize("n", [0, 1, 5, 10_000, 70_000])  # 70 k rows: the counting sort, up to 280 k neurons
def test_pair_order_is_the_stable_order(n_neurons, n):
    rng = np.random.default_rng(n + n_neurons % 97)
    hi = min(n_neurons, 40)  # few distinct pairs: many ties
    pre = (rng.integers(0, hi, n) * (n_neurons // hi)).astype(np.int32)
    post = (rng.integers(0, hi, n) * (n_neurons // hi)).astype(np.int32)
    got = _pair_order(pre, post, n_neurons)
    assert np.array_equal(got, np.lexsort((post, pre)))


@pytest.mark.parametrize("lo", [0, 1, 5_000])
def test_counting_pair_order_of_a_pre_range(lo):
    """A bucket holds one range of pre indices (not from 0) and any post: the two-pass counting sort."""
    from connectome_dask.kernels.scatter import stable_pair_order

    rng = np.random.default_rng(lo)
    n = 80_000
    pre = (lo + rng.zipf(1.3, n) % 300).astype(np.int32)  # heavy tail: long runs of one pre
    post = rng.integers(0, 9_000, n).astype(np.int32)
    post[::7] = post[0]  # many equal pairs
    got = stable_pair_order(pre, post, 9_000)
    assert got.dtype == np.int64
    assert np.array_equal(got, np.lexsort((post, pre)))


@pytest.mark.parametrize("scale", [1, 10**7])  # keys found by a table of buckets, or by a binary search
@pytest.mark.parametrize("lo", [0, 12])
def test_spill_keeps_each_buckets_rows_in_order(tmp_path, scale, lo):
    rng = np.random.default_rng(0)
    keys = lo + rng.integers(0, 1000, 50_000) * scale
    bounds = lo + np.array([0, 10, 300, 301, 999, 1000]) * scale
    pieces = [0] * (len(bounds) - 1)
    rows = np.arange(len(keys))
    for s in range(0, len(keys), 7_000):  # several pieces per bucket
        spill_buckets(tmp_path, bounds, keys[s : s + 7_000], {"row": rows[s : s + 7_000]}, pieces)
    for b in range(len(bounds) - 1):
        want = rows[(keys >= bounds[b]) & (keys < bounds[b + 1])]
        got = load_bucket(tmp_path, b, pieces[b], ["row"])
        assert np.array_equal(got["row"] if got is not None else np.zeros(0, int), want)


def test_bucket_loads_the_asked_columns_of_every_piece_in_order(tmp_path):
    """Columns of several dtypes over pieces of unequal size (some empty); a column left out is skipped."""
    rng = np.random.default_rng(1)
    n = 30_000
    keys = rng.integers(0, 100, n)
    cols = {"row": np.arange(n, dtype=np.int64), "roi": rng.integers(-1, 60, n).astype(np.int16),
            "conf": rng.random(n).astype(np.float32), "flag": rng.random(n) < 0.5}
    bounds = np.array([0, 3, 50, 100])
    pieces = [0] * (len(bounds) - 1)
    cuts = [0, 5, 5_000, 5_001, 19_000, n]
    for s, e in zip(cuts[:-1], cuts[1:], strict=True):
        spill_buckets(tmp_path, bounds, keys[s:e], {c: a[s:e] for c, a in cols.items()}, pieces)
    for b in range(len(bounds) - 1):
        sel = (keys >= bounds[b]) & (keys < bounds[b + 1])
        got = load_bucket(tmp_path, b, pieces[b], ["conf", "row", "flag"])
        assert got is not None and list(got) == ["conf", "row", "flag"]
        for c in got:
            assert got[c].dtype == cols[c].dtype
            np.testing.assert_array_equal(got[c], cols[c][sel])
        assert not (tmp_path / f"b{b:06d}").exists()  # the bucket's files are removed once loaded


def test_bucket_with_a_truncated_piece_is_refused(tmp_path):
    from connectome_dask.errors import StoreError

    pieces = [0]
    spill_buckets(tmp_path, np.array([0, 10]), np.arange(10) % 10, {"row": np.arange(10)}, pieces)
    f = tmp_path / "b000000" / "000000.rows"
    f.write_bytes(f.read_bytes()[:-8])
    with pytest.raises(StoreError, match="truncated"):
        load_bucket(tmp_path, 0, pieces[0], ["row"])


def test_buckets_and_gathers_reuse_buffers_without_mixing_rows(tmp_path):
    """Buckets of growing and shrinking size loaded and sorted into the same buffers, against fresh copies."""
    from connectome_dask.store.sort import load_rows, take_columns

    rng = np.random.default_rng(4)
    n = 200_000  # the largest buckets are taken on two threads
    keys = rng.integers(0, 100, n)
    cols = {"row": np.arange(n, dtype=np.int64), "v": rng.random(n).astype(np.float32),
            "roi": rng.integers(-1, 60, n).astype(np.int16)}
    bounds = np.array([0, 5, 60, 61, 100])  # bucket sizes ~10 k, 110 k, 2 k, 80 k
    pieces = [0] * (len(bounds) - 1)
    for s in range(0, n, 30_000):
        spill_buckets(tmp_path, bounds, keys[s : s + 30_000], {c: a[s : s + 30_000] for c, a in cols.items()},
                      pieces)
    loads: dict = {}
    outs: dict = {}
    seen = []
    for b in range(len(bounds) - 1):
        sel = (keys >= bounds[b]) & (keys < bounds[b + 1])
        got = load_rows(tmp_path, b, pieces[b], buffers=loads)
        assert got is not None and list(got.dtype.names) == ["row", "v", "roi"]
        assert np.shares_memory(got, loads["<rows>"])
        order = np.argsort(got["v"], kind="stable")
        srt = take_columns(got, order, buffers=outs)
        for c in cols:
            np.testing.assert_array_equal(srt[c], cols[c][sel][order])
        seen.append(srt["row"].copy())
    assert len(loads["<rows>"]) >= max(len(x) for x in seen)  # grown to the largest bucket, never shrunk


def test_keys_outside_the_buckets_are_refused(tmp_path):
    from connectome_dask.errors import StoreError

    with pytest.raises(StoreError, match="outside"):
        spill_buckets(tmp_path, np.array([5, 10]), np.array([5, 10]), {"row": np.arange(2)}, [0])


def test_pieces_of_other_fields_are_refused(tmp_path):
    from connectome_dask.errors import StoreError
    from connectome_dask.store.sort import load_rows

    pieces = [0]
    spill_buckets(tmp_path, np.array([0, 10]), np.arange(5), {"row": np.arange(5)}, pieces)
    spill_buckets(tmp_path, np.array([0, 10]), np.arange(5), {"row": np.arange(5, dtype=np.int32)}, pieces)
    with pytest.raises(StoreError, match="holds records of"):
        load_rows(tmp_path, 0, pieces[0])


@pytest.mark.parametrize("route", ["spilled_as_written", "read_back", "read_back_per_range", "one_range"])
def test_post_order_copy_is_the_stable_post_order(tmp_path, monkeypatch, route):
    """post_perm and by_post/<c> of a new store against np.argsort(post, kind="stable") of its rows.

    Four routes make the copy: the writer's spill of its sorted blocks, the read-back of the written
    arrays (when the writer's spill is not made), its re-reading per range (no disk for a spill) and
    one range sorted in memory.
    """
    import zarr

    from connectome_dask.store import sort as S
    from connectome_dask.store import writer as W

    rng = np.random.default_rng(5)
    n, nn = 30_000, 300
    post = (rng.zipf(1.5, n) % nn).astype(np.int32)  # heavy tail: some neurons exceed a range alone
    pre = rng.integers(0, nn, n).astype(np.int32)
    conf = rng.random(n).astype(np.float32)
    x = rng.integers(0, 10**6, n).astype(np.float32)
    bucket = 10**6 if route == "one_range" else 2_000
    if route != "spilled_as_written":
        monkeypatch.setattr(W.StoreWriter, "_new_post_spill", lambda self: None)
    if route == "read_back_per_range":
        monkeypatch.setattr(S, "spill_fits", lambda *a: False)
    used = []
    monkeypatch.setattr(S.PostOrderSpill, "write", lambda self, *a, _w=S.PostOrderSpill.write: (used.append(1),
                                                                                                _w(self, *a)))
    w = W.StoreWriter(tmp_path / "s", n_neurons=nn, columns={"confidence": "float32", "x_post": "float32"},
                      chunk_rows=1000, bucket_rows=bucket)
    for s in range(0, n, 4_000):
        w.append({"pre": pre[s:s + 4000], "post": post[s:s + 4000], "confidence": conf[s:s + 4000],
                  "x_post": x[s:s + 4000]})
    conn = w.close(__import__("pandas").DataFrame({"bodyId": np.arange(nn) + 10}))
    rows = conn.read_synapses(["pre", "post", "confidence", "x_post"])
    perm = np.argsort(rows["post"], kind="stable")
    idx = conn.path / conn.meta["index"]["path"]
    assert np.array_equal(zarr.open_array(str(idx / "post_perm"), mode="r")[:], perm)
    for c in ("pre", "confidence", "x_post"):
        got = zarr.open_array(str(idx / conn.meta["index"]["by_post"][c]), mode="r")[:]
        assert np.array_equal(got, rows[c][perm]), c
    assert not [p for p in conn.path.rglob("*") if "_spill" in p.name]  # no spill left behind
    assert conn.check() == []
    assert bool(used) == (route == "spilled_as_written")


def test_columns_named_like_the_buffers_load_intact(tmp_path):
    """Column names are any printable names: ones that look like the records' buffer keys load intact."""
    rng = np.random.default_rng(6)
    n = 5_000
    keys = rng.integers(0, 50, n)
    cols = {"<rows>": rng.random(n), "<packed>": np.arange(n, dtype=np.int32), "col:<rows>": rng.random(n)}
    bounds = np.array([0, 20, 50])
    pieces = [0, 0]
    spill_buckets(tmp_path, bounds, keys, cols, pieces, buffers={})
    loads: dict = {}
    for b in range(2):
        sel = (keys >= bounds[b]) & (keys < bounds[b + 1])
        got = load_bucket(tmp_path, b, pieces[b], list(cols), buffers=loads)
        assert got is not None
        for c in cols:
            np.testing.assert_array_equal(got[c], cols[c][sel])


def _pre_counted_rows(seed=7, n=40_000, nn=400):
    rng = np.random.default_rng(seed)
    pre = (rng.zipf(1.4, n) % nn).astype(np.int32)
    post = rng.integers(0, nn, n).astype(np.int32)
    conf = rng.random(n).astype(np.float32)
    return pre, post, conf, nn


@pytest.mark.parametrize("budget", ["none", "some", "all"])
def test_buckets_held_in_memory_write_the_same_sorted_store(tmp_path, budget):
    """A writer holding none, some or all of its buckets in memory (``sort_memory``) writes the rows in the
    stable (pre, post) order and the post-order copy in the stable post order (numpy's lexsort and argsort
    of the input are the reference), and leaves no spill behind."""
    import pandas as pd
    import zarr

    from connectome_dask.store import writer as W

    pre, post, conf, nn = _pre_counted_rows()
    counts = np.bincount(pre, minlength=nn)
    record = 16  # pre, post, confidence: 12 bytes in 16-byte records
    memory = {"none": 0, "some": 15_000 * record, "all": 10**9}[budget]
    w = W.StoreWriter(tmp_path / "s", nn, {"confidence": "float32"}, chunk_rows=1000, pre_counts=counts,
                      bucket_rows=4_000, sort_memory=memory)
    held = w._held.nbytes
    assert (held == 0) == (budget == "none")
    assert (held == len(pre) * record) == (budget == "all")
    for s in range(0, len(pre), 3_000):
        w.append({"pre": pre[s:s + 3000], "post": post[s:s + 3000], "confidence": conf[s:s + 3000]})
    conn = w.close(pd.DataFrame({"bodyId": np.arange(nn) + 100}))
    order = np.lexsort((post, pre))  # stable: ties keep input order
    rows = conn.read_synapses(["pre", "post", "confidence"])
    for c, a in (("pre", pre), ("post", post), ("confidence", conf)):
        np.testing.assert_array_equal(rows[c], a[order], err_msg=c)
    perm = np.argsort(rows["post"], kind="stable")
    idx = conn.path / conn.meta["index"]["path"]
    np.testing.assert_array_equal(zarr.open_array(str(idx / "post_perm"), mode="r")[:], perm)
    got = zarr.open_array(str(idx / conn.meta["index"]["by_post"]["confidence"]), mode="r")[:]
    np.testing.assert_array_equal(got, rows["confidence"][perm])
    assert not [p for p in conn.path.rglob("*") if "_spill" in p.name]
    assert conn.check() == []


def test_pre_counts_that_do_not_match_the_rows_are_refused(tmp_path):
    """Held buckets are sized by ``pre_counts``: too many rows of a neuron fail at that append, too few at
    close, a count list of the wrong length at once; each names the neuron and nothing is left at the path."""
    import pandas as pd

    from connectome_dask.errors import StoreError
    from connectome_dask.store.writer import StoreWriter

    counts = np.array([2, 1, 0])
    with pytest.raises(StoreError, match="one per neuron"):
        StoreWriter(tmp_path / "a", 4, pre_counts=counts)
    w = StoreWriter(tmp_path / "b", 3, pre_counts=counts, sort_memory=10**6)
    with pytest.raises(StoreError, match="pre index 1 has 2 rows so far, more than the 1"):
        w.append({"pre": np.array([0, 1, 1]), "post": np.array([1, 0, 2])})
    w.abort()
    w = StoreWriter(tmp_path / "c", 3, pre_counts=counts, sort_memory=10**6)
    w.append({"pre": np.array([0, 1]), "post": np.array([1, 0])})
    with pytest.raises(StoreError, match="pre index 0 got 1 rows, not the 2"):
        w.close(pd.DataFrame({"bodyId": [1, 2, 3]}))
    with pytest.raises(StoreError, match=">= 0 bytes"):
        StoreWriter(tmp_path / "d", 3, pre_counts=counts, sort_memory=-1)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []


def test_take_columns_equals_numpys_take_of_every_field():
    """Records of 8-, 4-, 2- and 1-byte fields (and a 16-byte one numpy moves) into columns in a random order,
    on one thread and two, against ``rows[c][order]``; asked columns come in the order asked."""
    from connectome_dask.errors import StoreError
    from connectome_dask.store.sort import pack_rows, take_columns

    rng = np.random.default_rng(9)
    for n in (5, 200_000):
        cols = {"row": np.arange(n, dtype=np.int64), "x": rng.random(n).astype(np.float32),
                "roi": rng.integers(-1, 60, n).astype(np.int16), "flag": rng.random(n) < 0.5,
                "z": rng.random(n) + 1j * rng.random(n), "pre": rng.integers(0, 10**6, n).astype(np.int32)}
        rows = pack_rows(cols)
        order = rng.permutation(n)[: n - 3]
        buffers: dict = {}
        got = take_columns(rows, order, buffers=buffers)
        assert list(got) == list(rows.dtype.names)
        for c, a in cols.items():
            assert got[c].dtype == a.dtype and got[c].flags.c_contiguous, c
            np.testing.assert_array_equal(got[c], a[order], err_msg=c)
        again = take_columns(rows, order[::-1], buffers=buffers, columns=["pre", "roi"])
        assert list(again) == ["pre", "roi"]
        np.testing.assert_array_equal(again["roi"], cols["roi"][order[::-1]])
        np.testing.assert_array_equal(again["pre"], cols["pre"][order[::-1]])
    with pytest.raises(StoreError, match="outside"):
        take_columns(rows, np.array([n]))
