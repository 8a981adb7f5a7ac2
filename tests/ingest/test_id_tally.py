"""Pass 1's per-body tally and pass 2's ID encoding through the ID hash table, against pandas."""

from __future__ import annotations

import importlib

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
