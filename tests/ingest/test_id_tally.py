"""Pass 1's per-body tally and pass 2's ID encoding through the ID hash table, against pandas."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pandas as pd
import pytest

M = importlib.import_module("connectome_dask.ingest.main")


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("threaded", [False, True])
def test_tally_equals_pandas_over_batches(weighted, threaded, monkeypatch):
    monkeypatch.setattr(M, "_THREADED_IDS", 64 if threaded else 1 << 62)
    rng = np.random.default_rng(3)
    ids = np.unique(rng.integers(0, 2**62, 3000))
    tally = M._Tally()
    frames = []
    for b in range(7):  # later batches bring new IDs, and repeat old ones
        pool = ids[: 400 * (b + 1)]
        n = int(rng.integers(0, 900))
        pre, post = rng.choice(pool, n), rng.choice(pool, n)
        w = rng.integers(1, 50, n) if weighted else None
        tally.add(pre, post, w)
        frames.append(pd.DataFrame({"pre": pre, "post": post, "w": w if weighted else 1}))
    got_ids, got = tally.result()
    df = pd.concat(frames)
    ref_ids = np.union1d(df["pre"], df["post"])
    np.testing.assert_array_equal(got_ids, ref_ids)
    cols = [df.groupby("pre").size(), df.groupby("post").size()]
    if weighted:
        cols += [df.groupby("pre")["w"].sum(), df.groupby("post")["w"].sum()]
    ref = pd.concat(cols, axis=1).reindex(ref_ids).fillna(0).astype(np.int64).to_numpy()
    np.testing.assert_array_equal(got, ref)


def test_encode_is_the_position_in_the_sorted_ids_and_refuses_new_ones():
    from connectome_dask.ingest import IngestError
    from connectome_dask.kernels import hashing

    rng = np.random.default_rng(5)
    ids = np.unique(rng.integers(0, 10**15, 5000))
    tab = hashing.build_id_table(ids)
    q = rng.choice(ids, 1 << 19)  # above the two-thread threshold
    np.testing.assert_array_equal(M._encode(q, tab), np.searchsorted(ids, q))
    with pytest.raises(IngestError, match="appeared only in the second pass"):
        M._encode(np.append(q, 10**15 + 1), tab)


def test_kept_positions_are_taken_across_any_batch_cut():
    """Pass 2 takes rows [offset, offset + n) of pass 1's kept positions whatever its batches are: the
    reference is the concatenated positions mapped through the rank table."""
    rng = np.random.default_rng(11)
    kept = M._KeptIds(budget=10**6)
    a_all, b_all = rng.integers(0, 50, 1000), rng.integers(0, 50, 1000)
    cuts = [0, 130, 131, 600, 1000]
    for lo, hi in itertools.pairwise(cuts):
        kept.add("f", lo, a_all[lo:hi], b_all[lo:hi])
    rank = rng.permutation(50).astype(np.int32)
    for lo, hi in [(0, 100), (100, 500), (500, 1000)]:  # pieces split and joined
        pre, post = kept.take("f", lo, hi - lo, rank)
        np.testing.assert_array_equal(pre, rank[a_all[lo:hi]])
        np.testing.assert_array_equal(post, rank[b_all[lo:hi]])
    assert kept.files["f"] == []  # each piece dropped once taken
    with pytest.raises(M.IngestError, match="changed while being ingested"):
        kept.take("f", 1000, 5, rank)
    over = M._KeptIds(budget=8 * 999)
    over.add("f", 0, a_all, b_all)
    assert over.dropped and over.files == {}


def _ids_table(n, seed):
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(10**15, 10**15 + 300), 200, replace=False)
    return pd.DataFrame({"pre_pt_root_id": rng.choice(ids, n), "post_pt_root_id": rng.choice(ids, n),
                         "pre_pt_position": list(rng.integers(0, 1000, (n, 3))),
                         "post_pt_position": list(rng.integers(0, 1000, (n, 3))),
                         "size": rng.integers(1, 500, n)})


@pytest.mark.parametrize("budget", [0, 10**9])
def test_ingest_with_or_without_kept_ids_stores_the_input_rows(tmp_path, budget, monkeypatch):
    """Pass 2 reads no ID column when pass 1 kept the positions (budget), else encodes them again: either way
    the store's rows are the input's, by body ID, in the stable (pre, post) order (pandas as the reference)."""
    import dask

    from connectome_dask.ingest import ingest

    df = _ids_table(5000, 3)
    src = tmp_path / "syn.parquet"
    df.to_parquet(src, row_group_size=700)
    encoded = []
    monkeypatch.setattr(M, "_encode", lambda ids, tab, _e=M._encode: (encoded.append(len(ids)), _e(ids, tab))[1])
    with dask.config.set({"connectome_dask.sort_memory_bytes": budget}):
        conn = ingest(src, tmp_path / "s", batch_rows=900, progress=False)
    got = conn.read_synapses(["pre", "post", "size"])
    bid = conn.neurons["bodyId"].to_numpy()
    ref = df.assign(row=np.arange(len(df))).sort_values(["pre_pt_root_id", "post_pt_root_id", "row"])
    np.testing.assert_array_equal(bid[got["pre"]], ref["pre_pt_root_id"].to_numpy())
    np.testing.assert_array_equal(bid[got["post"]], ref["post_pt_root_id"].to_numpy())
    np.testing.assert_array_equal(got["size"], ref["size"].to_numpy())
    assert sum(encoded) == (0 if budget else 2 * len(df))  # pass 2 encoded the IDs only when none were kept


def test_a_file_rewritten_between_the_passes_is_refused(tmp_path, monkeypatch):
    """With the IDs kept from pass 1, pass 2 checks each file's size and modification time: a file rewritten
    in between (same row count, other IDs) is named instead of being stored with pass 1's IDs."""
    import os

    from connectome_dask.ingest import IngestError, ingest

    src = tmp_path / "syn.parquet"
    _ids_table(2000, 4).to_parquet(src)
    real = M._pass1

    def pass1_then_rewrite(*a, **k):
        scan = real(*a, **k)
        _ids_table(2000, 5).to_parquet(src)
        st = os.stat(src)
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later time, even on a coarse clock
        return scan

    monkeypatch.setattr(M, "_pass1", pass1_then_rewrite)
    with pytest.raises(IngestError, match="changed while being ingested"):
        ingest(src, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()
