"""The ``pairs_scan`` read path and the direct chunk reader of store arrays.

``pairs_scan`` answers counts with a per-synapse filter (confidence; a ROI
filter without a per-ROI table) from the connection table's pairs and only
the filter columns of their rows. References are independent of the
package: the filter and the group-by written here in pandas on the raw rows
the test generated (confidence compared at float32, NaN never passes), and
zarr-python's own ``Array.__getitem__`` for the chunk reader. Covered: every
filter and their combinations, by ROI, min_weight, two confidence columns,
neurons without outputs at partition seams, chunk sizes x partition sizes x
schedulers (sync, threads, distributed), grouped counts in both partial
forms (dense blocks, triples), a connection table that does not match the
synapse arrays, and damaged, truncated or missing chunk files.
"""

from __future__ import annotations

import logging
import os
import shutil

import dask
import numpy as np
import pandas as pd
import pytest
import zarr

import connectome_dask as cd
from connectome_dask import aggregate as A
from connectome_dask.compute import groups as G
from connectome_dask.compute.plan import plan_read
from connectome_dask.errors import StoreError
from connectome_dask.store import StoreWriter, read_rows
from connectome_dask.store.arrays import _direct_layout

N = 80
ROIS = ["A", "B", "C", "D"]
ROI_INFO = {"names": ROIS, "primary": ROIS, "hierarchy": {}}


def _raw(seed: int, n: int = 15_000, two_conf: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    neurons = pd.DataFrame({
        "bodyId": np.sort(rng.choice(np.arange(10, 10**6), N, replace=False)).astype(np.int64),
        "type": pd.array(rng.choice(["t1", "t2", "t3", "t4", "t5", None], N), dtype="string"),
    })
    # every 7th neuron has no outputs (partition boundaries land on and next to them)
    senders = np.array([i for i in range(N) if i % 7], dtype=np.int32)
    n_pairs = 700
    pp = rng.choice(senders, n_pairs)
    pq = rng.integers(0, N, n_pairs).astype(np.int32)
    w = np.minimum(rng.zipf(1.4, n_pairs), 600).astype(np.float64)
    pick = rng.choice(n_pairs, n, p=w / w.sum())
    syn = pd.DataFrame({"pre": pp[pick], "post": pq[pick],
                        "roi_post": rng.integers(-1, len(ROIS), n).astype(np.int16)})
    names = ["confidence_pre", "confidence_post"] if two_conf else ["confidence"]
    for c in names:
        conf = (rng.integers(0, 17, n) / 16).astype(np.float32)  # ties exactly at the thresholds
        conf[rng.random(n) < 0.02] = np.nan  # never above a threshold
        syn[c] = conf
    return neurons, syn


def _write(path, neurons, syn, chunk_rows):
    cols = {c: str(syn[c].dtype) for c in syn.columns if c not in ("pre", "post")}
    block = syn.sample(frac=1.0, random_state=1)  # the writer sorts
    with StoreWriter(path, len(neurons), cols, chunk_rows=chunk_rows) as w:
        w.append({c: block[c].to_numpy() for c in block.columns})
        return w.close(neurons, {"name": path.name}, rois=ROI_INFO)


@pytest.fixture(scope="module")
def raw():
    return _raw(5)


@pytest.fixture(scope="module")
def stores(raw, tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs_scan")
    return {c: _write(root / f"c{c}", *raw, c) for c in (64, 4096)}


def ref_counts(syn, confidence=None, rois=None, pre=None, post=None, by_roi=False, min_weight=1):
    """The rule in pandas: keep rows (confidence > float32(thr) in every confidence column), count, threshold."""
    keep = np.ones(len(syn), dtype=bool)
    if confidence is not None:
        for c in [c for c in syn.columns if c.startswith("confidence")]:
            keep &= syn[c].to_numpy() > np.float32(confidence)  # NaN compares False
    if rois is not None:
        keep &= syn["roi_post"].isin(rois).to_numpy()
    if pre is not None:
        keep &= syn["pre"].isin(pre).to_numpy()
    if post is not None:
        keep &= syn["post"].isin(post).to_numpy()
    keys = ["pre", "post"] + (["roi_post"] if by_roi else [])
    g = syn[keep].groupby(keys).size().reset_index(name="weight").rename(columns={"roi_post": "roi"})
    g = g[g["weight"] >= min_weight]
    return g.sort_values(keys[:2] + (["roi"] if by_roi else []), ignore_index=True).astype(np.int64)


def _eq(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got.astype(np.int64).reset_index(drop=True), want, check_dtype=False)


def _methods(caplog) -> list[str]:
    return [r.plan.method for r in caplog.records if hasattr(r, "plan")]


# ----------------------------------------------------------------------------- the plan


def test_plan(stores):
    conn = stores[4096]
    p = plan_read(conn, confidence=True)
    assert p.method == "pairs_scan" and "cannot apply a confidence filter" in p.reason
    assert plan_read(conn, confidence=True, by_roi=True, roi_filter=True).method == "pairs_scan"
    assert plan_read(conn, roi_filter=True).method == "roi_table"  # no confidence: the per-ROI table
    assert plan_read(conn, confidence=True, output=True).method == "scan"  # out of core: written by the scan
    with pytest.raises(ValueError, match="synapse rows are not in the connection table"):
        plan_read(conn, what="rows", method="pairs_scan")
    with dask.config.set({"connectome_dask.use_pair_table": False}):
        p = plan_read(conn, confidence=True)
        assert p.method == "scan" and p.reason.count("use_pair_table is false") == 1


# ----------------------------------------------------------------------------- exact counts

CASES = [
    dict(confidence=0.5),
    dict(confidence=0.0),
    dict(confidence=0.5, min_weight=4),
    dict(confidence=0.25, rois=[1, 3]),
    dict(confidence=0.5, by_roi=True),
    dict(confidence=0.5, rois=[0, 2], by_roi=True, min_weight=2),
    dict(confidence=0.75, pre="half"),
    dict(confidence=0.5, post="half", min_weight=3),
    dict(confidence=0.5, pre="half", post="odd", rois=[-1, 2], min_weight=2),
]


def _call(conn, raw, case, method="auto"):
    neurons, _ = raw
    body = neurons["bodyId"].to_numpy()
    sel = {"half": np.arange(N // 2), "odd": np.arange(1, N, 2)}
    kw = {k: v for k, v in case.items() if k in ("confidence", "by_roi", "min_weight")}
    ref_kw = dict(kw)
    if "rois" in case:
        kw["rois"] = [ROIS[c] if c >= 0 else None for c in case["rois"]]
        ref_kw["rois"] = case["rois"]
    for side in ("pre", "post"):
        if side in case:
            kw[side] = body[sel[case[side]]]
            ref_kw[side] = sel[case[side]]
    return kw, ref_kw


def _pair_counts(conn, kw, method="auto"):
    rois = kw.get("rois")
    if rois is not None and None in rois:  # the "no ROI" code: through the code-level API
        from connectome_dask.compute.pairs import pair_counts

        codes = np.array([ROIS.index(r) if r is not None else -1 for r in rois])
        idx = {s: np.searchsorted(conn.neurons["bodyId"].to_numpy(), kw[s]) if s in kw else None
               for s in ("pre", "post")}
        return pair_counts(conn, idx["pre"], idx["post"], roi_codes=codes, by_roi=kw.get("by_roi", False),
                           confidence=kw.get("confidence"), min_weight=kw.get("min_weight", 1), progress=False,
                           method=method)
    return A.pair_counts(conn, progress=False, method=method, **kw)


@pytest.mark.parametrize("chunk_rows", [64, 4096])
@pytest.mark.parametrize("partition_chunks", [1, 3, 7])
@pytest.mark.parametrize("kind", ["sync", "threads"])
def test_counts_identical_everywhere(raw, stores, chunk_rows, partition_chunks, kind, caplog):
    _, syn = raw
    conn = stores[chunk_rows]
    with dask.config.set(scheduler=kind), dask.config.set({"connectome_dask.partition_chunks": partition_chunks}):
        assert len(conn.pair_partitions()) > (1 if chunk_rows == 64 else 0)
        for case in CASES:
            kw, ref_kw = _call(conn, raw, case)
            caplog.clear()
            with caplog.at_level(logging.DEBUG, logger="connectome_dask.compute"):
                got = _pair_counts(conn, kw)
            # a ROI list without the no-ROI code and not split by ROI: the ROI-major copy (test_roi_major.py)
            major = "rois" in case and -1 not in case["rois"] and not case.get("by_roi")
            assert _methods(caplog) == ["roi_major" if major else "pairs_scan"], case
            _eq(got, ref_counts(syn, **ref_kw))
            assert got.equals(_pair_counts(conn, kw, method="scan")), case
            if major:
                assert got.equals(_pair_counts(conn, kw, method="pairs_scan")), case


def test_two_confidence_columns(tmp_path):
    neurons, syn = _raw(8, two_conf=True)
    conn = _write(tmp_path / "two", neurons, syn, 128)
    assert plan_read(conn, confidence=True).method == "pairs_scan"
    for case in (dict(confidence=0.5), dict(confidence=0.25, by_roi=True, min_weight=2)):
        got = A.pair_counts(conn, progress=False, **case)
        _eq(got, ref_counts(syn, **case))
        assert got.equals(A.pair_counts(conn, progress=False, method="scan", **case))


def test_grouped_counts_both_partial_forms(raw, stores, monkeypatch):
    """Type x type with a confidence filter: dense blocks only, triples only, and the mixed default."""
    neurons, syn = raw
    types = sorted(neurons["type"].dropna().unique())
    code = neurons["type"].map({t: i for i, t in enumerate(types)}).fillna(-1).to_numpy(np.int64)
    p = ref_counts(syn, confidence=0.5, min_weight=2)
    a, b = code[p["pre"].to_numpy()], code[p["post"].to_numpy()]
    ok = (a >= 0) & (b >= 0)
    ref = np.zeros((len(types), len(types)), np.int64)
    np.add.at(ref, (a[ok], b[ok]), p["weight"].to_numpy()[ok])
    assert ref.sum() > 0
    for factor in (0, 10**9, G._DENSE_FACTOR):  # 0: always triples; 1e9: always a dense block
        monkeypatch.setattr(G, "_DENSE_FACTOR", factor)
        for conn in stores.values():
            with dask.config.set({"connectome_dask.partition_chunks": 2}):
                m = A.adjacency(conn, by="type", confidence=0.5, min_weight=2)
                assert m.coords["pre"].values.tolist() == types
                assert np.array_equal(np.asarray(m.data), ref), factor
                s = A.adjacency(conn, by="type", confidence=0.5, min_weight=2, method="scan")
                assert np.array_equal(np.asarray(s.data), ref), factor
                g = A.group_counts(conn, code, code, len(types), len(types), confidence=0.5, min_weight=2,
                                   progress=False, method="pairs_scan")
                assert np.array_equal(g, ref)


@pytest.mark.parametrize("shift", ["default", 62, 1])
def test_grouped_counts_with_every_filter(raw, stores, shift, monkeypatch):
    """Grouped pairs_scan counts for each filter case equal the pandas pair counts summed with np.add.at.

    ``shift`` 62: the cells cannot be packed (the fused kernel is skipped); 1: a
    count of 2 does not fit the field (the kernel gives up and the pair counts
    are grouped instead); both must give the same matrix.
    """
    if shift != "default":
        monkeypatch.setattr(G, "_PACK_SHIFT", shift)
    neurons, syn = raw
    types = sorted(neurons["type"].dropna().unique())
    code = neurons["type"].map({t: i for i, t in enumerate(types)}).fillna(-1).to_numpy(np.int64)
    conn = stores[64]
    with dask.config.set({"connectome_dask.partition_chunks": 3}):
        for case in [c for c in CASES if not c.get("by_roi")]:
            kw, ref_kw = _call(conn, raw, case)
            p = ref_counts(syn, **ref_kw)
            a, b = code[p["pre"].to_numpy()], code[p["post"].to_numpy()]
            ok = (a >= 0) & (b >= 0)
            ref = np.zeros((len(types), len(types)), np.int64)
            np.add.at(ref, (a[ok], b[ok]), p["weight"].to_numpy()[ok])
            if "rois" in kw and None in kw["rois"]:  # the "no ROI" code: through the code-level API
                continue
            m = A.adjacency(conn, by="type", progress=False, method="pairs_scan", **kw)
            assert m.coords["pre"].values.tolist() == types and m.coords["post"].values.tolist() == types, case
            assert np.array_equal(np.asarray(m.data), ref), case


def test_distributed_scheduler(raw, stores):
    from distributed import Client, LocalCluster

    _, syn = raw
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client, client.as_current(), \
            dask.config.set({"connectome_dask.partition_chunks": 3}):
        got = A.pair_counts(stores[64], confidence=0.5, by_roi=True, progress=False)
        one = A.pair_counts(stores[64], confidence=0.25, min_weight=3, progress=False)
    _eq(got, ref_counts(syn, confidence=0.5, by_roi=True))
    _eq(one, ref_counts(syn, confidence=0.25, min_weight=3))


def test_a_connection_table_that_does_not_match_the_rows(stores, tmp_path):
    dest = tmp_path / "bad"
    shutil.copytree(stores[64].path, dest)
    conn = cd.open(dest, set_default=False)
    w = zarr.open_array(conn.pair_table_paths()["weight"], mode="r+")
    w[0] = int(w[0]) + 1  # a new chunk with a valid checksum: only the row count is wrong
    conn = cd.open(dest, set_default=False)
    with pytest.raises(StoreError, match=r"pairs 0\.\.\d+ count .* synapse rows .* info --check"):
        A.pair_counts(conn, confidence=0.5, progress=False)


# ----------------------------------------------------------------------------- the chunk reader


def test_direct_reads_equal_zarr(stores):
    conn = stores[64]
    rng = np.random.default_rng(0)
    n = conn.n_synapses
    ranges = [(0, n), (0, 1), (n - 1, n), (63, 65), (64, 128), (5, 5), (0, n + 10)]
    ranges += [tuple(sorted(rng.integers(0, n, 2))) for _ in range(20)]
    for col in ("pre", "post", "roi_post", "confidence"):
        path = conn.synapse_column_paths([col])[col]
        assert _direct_layout(path, conn.token) is not None
        z = zarr.open_array(path, mode="r")
        for s, e in ranges:
            got = read_rows(path, conn.token, int(s), int(e))
            want = z[s:e]
            assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), (col, s, e)
    for col, path in conn.pair_table_paths().items():
        got = read_rows(path, conn.token, 0, 10**9)
        assert np.array_equal(got, zarr.open_array(path, mode="r")[:]), col


def test_an_array_in_another_layout_is_read_by_zarr(tmp_path):
    path = str(tmp_path / "other")
    data = np.arange(1000, dtype=">i4")  # big endian, zstd, no checksum: not the store's layout
    z = zarr.create_array(path, shape=data.shape, chunks=(100,), dtype=data.dtype,
                          compressors=zarr.codecs.ZstdCodec())
    z[:] = data
    assert _direct_layout(path, "x:0") is None
    assert np.array_equal(read_rows(path, "x:0", 95, 905), data[95:905])


def _chunk(conn, col: str, i: int) -> str:
    return os.path.join(conn.synapse_column_paths([col])[col], "c", str(i))


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing"])
def test_damaged_chunk_files(stores, tmp_path, damage):
    dest = tmp_path / damage
    shutil.copytree(stores[64].path, dest)
    conn = cd.open(dest, set_default=False)
    f = _chunk(conn, "confidence", 3)
    raw = open(f, "rb").read()
    if damage == "flip":
        raw = raw[:20] + bytes([raw[20] ^ 0xFF]) + raw[21:]
        open(f, "wb").write(raw)
        match = r"chunk 3 \(rows 192\.\.256\): crc32c checksum mismatch"
    elif damage == "truncate":
        open(f, "wb").write(raw[: len(raw) // 2])
        match = r"chunk 3 \(rows 192\.\.256\)"
    else:
        os.remove(f)
        match = r"chunk 3 \(rows 192\.\.256\) missing"
    path = conn.synapse_column_paths(["confidence"])["confidence"]
    assert len(read_rows(path, conn.token, 0, 192)) == 192  # the chunks before are fine
    with pytest.raises(StoreError, match=match):
        read_rows(path, conn.token, 100, 300)
    with pytest.raises(StoreError, match="info --check"):
        A.pair_counts(conn, confidence=0.5, progress=False)


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_combining_dense_blocks_and_triples(seed, threaded, monkeypatch):
    """Partials of every form summed in random trees equal one np.add.at of every triple.

    ``threaded``: the result is built on two threads from any number of packed
    entries (the two halves of the cells, split inside each run).
    """
    monkeypatch.setattr(G, "_THREADED_ENTRIES", 1 if threaded else 1 << 40)
    rng = np.random.default_rng(seed)
    n_pre, n_post = 30, 12
    parts, ref = [], np.zeros((n_pre, n_post), np.int64)
    for _ in range(9):
        k = int(rng.integers(0, 40))
        lo = int(rng.integers(0, n_pre - 5))
        gp = rng.integers(lo, min(lo + int(rng.integers(1, 12)), n_pre), k).astype(np.int32)
        gq = rng.integers(0, n_post, k).astype(np.int32)
        c = rng.integers(1, 50, k).astype(np.int64)
        np.add.at(ref, (gp, gq), c)
        u = rng.random()
        if k and u < 0.35:
            block = np.zeros((int(gp.max()) - int(gp.min()) + 1, n_post), np.int64)
            np.add.at(block, (gp - gp.min(), gq), c)
            parts.append(("dense", int(gp.min()), block))
        elif u < 0.7:
            parts.append(("sparse", gp, gq, c))
        else:  # sorted (cell << 32) | count entries, written out here from the format's definition
            runs = np.array_split(((gp.astype(np.int64) * n_post + gq) << 32) | c, int(rng.integers(1, 4)))
            parts.append(("packed", tuple(np.sort(r) for r in runs)))
    kinds = {p[0] for p in parts}
    while len(parts) > 1:  # random fan-in, as the tree reduction groups them
        k = int(rng.integers(2, 4))
        parts = [G._combine_groups(parts[:k], n_post)] + parts[k:]
    assert np.array_equal(G._finish_groups(parts[0], n_pre, n_post), ref), kinds


def test_task_keys_name_the_filter(stores):
    """Two queries in flight on one distributed scheduler must never share a task key (and its result)."""
    from connectome_dask.compute.pairs import RowFilter, pairs_scan_tasks

    conn = stores[64]

    def keys(conf, rois=None, by_roi=False, mw=1):
        f = RowFilter(conn, None, None, None if rois is None else np.array(rois), conf)
        return [t.key for t in pairs_scan_tasks(conn, f, by_roi, mw)]

    base = keys(0.5)
    assert base == keys(0.5)  # deterministic
    for other in (keys(0.25), keys(0.5, rois=[1]), keys(0.5, by_roi=True), keys(0.5, mw=2)):
        assert not set(base) & set(other)


@pytest.mark.parametrize("threaded", [False, True])
def test_result_built_from_packed_runs(threaded, monkeypatch):
    """Several sorted runs with cells in common (also at the split cell) add up as np.add.at does."""
    monkeypatch.setattr(G, "_THREADED_ENTRIES", 1 if threaded else 1 << 40)
    rng = np.random.default_rng(5)
    n_pre, n_post = 300, 200
    mid = n_pre * n_post // 2
    ref = np.zeros(n_pre * n_post, np.int64)
    runs = []
    for _ in range(4):
        cell = np.concatenate([rng.integers(0, n_pre * n_post, 500), [mid - 1, mid, mid, mid + 1]])
        c = rng.integers(1, 1000, len(cell))
        np.add.at(ref, cell, c)
        runs.append(np.sort((cell.astype(np.int64) << 32) | c))
    part = G._combine_groups([("packed", (r,)) for r in runs], n_post)
    assert part[0] == "packed" and len(part[1]) == 4  # kept as runs, not merged
    out = G._finish_groups(part, n_pre, n_post)
    assert np.array_equal(out.reshape(-1), ref)
    # more runs than _MAX_RUNS: merged into one sorted run, the same sums
    many = [a for r in runs for a in np.array_split(r, 3)]
    assert len(many) > G._MAX_RUNS
    merged = G._combine_groups([("packed", (a,)) for a in many], n_post)
    assert merged[0] == "packed" and len(merged[1]) == 1 and np.all(np.diff(merged[1][0]) >= 0)
    assert np.array_equal(G._finish_groups(merged, n_pre, n_post).reshape(-1), ref)


@pytest.mark.parametrize(
    "n, cores, parts",
    [
        (20_000_000, 2, 6),  # 5 default partitions of 16 chunks -> 6 of 13 chunks
        (20_000_000, 3, 6),
        (20_000_000, 1, 5),  # one core: as configured
        (20_000_000, 5, 5),  # already a multiple
        (50_000_000, 2, 12),
        (2_000_000, 2, 1),  # one partition: nothing to balance
        (5_000_000, 4, 4),  # two default partitions, four cores
        (4_500_000, 64, 18),  # more cores than chunks: one chunk a partition, no less
    ],
)
def test_pairs_scan_partitions_fill_the_cores(n, cores, parts, monkeypatch):
    """Partitions shortened to whole chunks so that their number is a multiple of the cores, never lengthened."""
    import dask.system

    from connectome_dask.compute.pairs import _balanced_partition_rows

    class Store:  # what the rule reads of a store: 2**18-row chunks, 16 per partition
        chunk_rows = 1 << 18
        n_synapses = n

        def partitions(self):
            return [(0, min(n, 16 << 18))]

    monkeypatch.setattr(dask.system, "CPU_COUNT", cores)
    rows = _balanced_partition_rows(Store())
    assert rows <= 16 << 18 and (rows % (1 << 18) == 0 or rows == n)
    assert -(-n // rows) == parts


def test_balanced_pairs_scan_partitions_count_the_same(stores, monkeypatch):
    import dask.system

    monkeypatch.setattr(dask.system, "CPU_COUNT", 4)
    conn = stores[64]
    with dask.config.set({"connectome_dask.partition_chunks": 5}):
        assert A.pair_counts(conn, confidence=0.5, progress=False).equals(
            A.pair_counts(conn, confidence=0.5, progress=False, method="scan"))
