"""``fetch_adjacencies`` (integer-coded per-ROI rows) against DuckDB on the raw rows.

The store is built so the coded path's special cases all occur: bodyIds that
descend in dense order (conn_df's order is not the dense order), two ROI codes
under one primary ROI (per-pair sums over codes), ROI names whose sorted order
differs from code order, a super-level ROI (``include_nonprimary``), sites in
no ROI (NotPrimary), and two chunk sizes (identical frames). ROI lists are
covered by ``tests/test_queries.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import connectome_dask as cd
from connectome_dask.query import neuprint as Q
from connectome_dask.store import StoreWriter

duckdb = pytest.importorskip("duckdb")

NAMES = ["Zb", "A1", "M", "A2"]
ROIS = {"names": NAMES, "hierarchy": {"SUP": ["Zb", "A"], "A": ["A1", "A2"]}, "primary": ["Zb", "A", "M"]}
# independent of the package: code -> primary ROI, code -> non-primary ROIs containing it
PRIMARY = {-1: "NotPrimary", 0: "Zb", 1: "A", 2: "M", 3: "A"}
NONPRIMARY = {-1: [], 0: ["SUP"], 1: ["A1", "SUP"], 2: [], 3: ["A2", "SUP"]}


def _build(path, chunk_rows: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    n, m = 60, 6000
    body = (10**6 - 7 * np.arange(n)).astype(np.int64)  # descending in dense order
    neurons = pd.DataFrame({"bodyId": body, "type": [f"T{i % 5}" for i in range(n)],
                            "instance": [f"T{i % 5}_R" for i in range(n)]})
    hot = rng.integers(0, n, 40)  # a few strong pairs so weights and thresholds matter
    pre = np.where(rng.random(m) < 0.5, hot[rng.integers(0, 40, m)], rng.integers(0, n, m)).astype(np.int32)
    post = np.where(rng.random(m) < 0.5, (hot[rng.integers(0, 40, m)] * 7) % n, rng.integers(0, n, m))
    syn = {"pre": pre, "post": post.astype(np.int32),
           "roi_post": rng.integers(-1, len(NAMES), m).astype(np.int16)}
    with StoreWriter(path, n, {"roi_post": "int16"}, chunk_rows=chunk_rows) as w:
        w.append(syn)
        conn = w.close(neurons, {"name": "coded"}, rois=ROIS)
    raw = pd.DataFrame({"bpre": body[syn["pre"]], "bpost": body[syn["post"]], "code": syn["roi_post"]})
    return conn, raw


def _duckdb_ref(raw, min_roi=1, min_total=1, include_nonprimary=False):
    con = duckdb.connect()
    con.register("syn", raw)
    prim = pd.DataFrame({"code": list(PRIMARY), "roi": list(PRIMARY.values())})
    non = pd.DataFrame([(c, r) for c, rs in NONPRIMARY.items() for r in rs], columns=["code", "roi"])
    mem = pd.concat([prim, non]) if include_nonprimary else prim
    con.register("mem", mem)
    q = f"""
    WITH t AS (SELECT bpre, bpost, count(*) AS total FROM syn GROUP BY bpre, bpost),
         r AS (SELECT bpre, bpost, roi, count(*) AS weight FROM syn JOIN mem USING (code)
               GROUP BY bpre, bpost, roi)
    SELECT r.bpre AS bodyId_pre, r.bpost AS bodyId_post, roi, weight
    FROM r JOIN t USING (bpre, bpost)
    WHERE weight >= {min_roi} AND total >= {max(min_total, min_roi)}
    ORDER BY bodyId_pre, bodyId_post, weight DESC, roi
    """
    return con.execute(q).df()


CASES = [
    dict(),
    dict(min_roi_weight=2),
    dict(min_total_weight=4),
    dict(include_nonprimary=True),
    dict(include_nonprimary=True, min_roi_weight=2, min_total_weight=3),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_coded_rows_match_duckdb_any_chunk_size(tmp_path, case):
    kw = CASES[case]
    got = []
    for chunk in (64, 4096):
        conn, raw = _build(tmp_path / f"s{chunk}", chunk)
        assert cd.criteria.RoiModel.of(conn).primary_name_of_code().tolist() == [None, "Zb", "A", "M", "A"]
        ndf, cdf = Q.fetch_adjacencies(None, None, client=conn, progress=False, **kw)
        got.append((ndf, cdf))
    (n1, c1), (n2, c2) = got
    pd.testing.assert_frame_equal(c1, c2)
    pd.testing.assert_frame_equal(n1, n2)
    ref = _duckdb_ref(raw, kw.get("min_roi_weight", 1), kw.get("min_total_weight", 1),
                      kw.get("include_nonprimary", False))
    assert len(ref) > 100
    pd.testing.assert_frame_equal(c1.astype({"roi": object}), ref.astype({"roi": object}), check_dtype=False)
    assert c1.dtypes.astype(str).tolist()[::3] == ["int64", "int64"]
    ids = np.sort(np.unique(np.concatenate([ref["bodyId_pre"], ref["bodyId_post"]])))
    assert n1["bodyId"].tolist() == ids.tolist()


def test_export_totals_match_duckdb(tmp_path):
    conn, raw = _build(tmp_path / "s", 128)
    Q.fetch_adjacencies(None, None, min_total_weight=3, export_dir=tmp_path / "x", client=conn)
    tot = pd.read_csv(tmp_path / "x" / "total-connections.csv")
    con = duckdb.connect()
    con.register("syn", raw)
    ref = con.execute("""SELECT bpre AS bodyId_pre, bpost AS bodyId_post, count(*) AS weight FROM syn
                         GROUP BY bpre, bpost HAVING count(*) >= 3
                         ORDER BY bpre, bpost""").df()
    pd.testing.assert_frame_equal(tot, ref, check_dtype=False)


def test_row_order_key_and_lexsort_fallback_agree():
    rng = np.random.default_rng(5)
    pair = np.sort(rng.integers(0, 50, 400))
    rank = rng.integers(0, 7, 400)
    for wmax in (30, 2**58):  # fits one int64 key / needs the lexsort
        w = rng.integers(1, wmax, 400)
        ref = pd.DataFrame({"p": pair, "w": -w, "r": rank}).sort_values(["p", "w", "r"], kind="stable").index
        assert Q._pair_row_order(pair, w, rank, 50, 7).tolist() == ref.tolist()


def test_unordered_pair_counts_give_the_same_rows(tmp_path):
    conn, _ = _build(tmp_path / "s", 256)
    model = cd.criteria.RoiModel.of(conn)
    pc = cd.aggregate.pair_counts(conn, by_roi=True)
    shuffled = pc.sample(frac=1.0, random_state=1).reset_index(drop=True)
    for kw in (dict(include_nonprimary=False), dict(include_nonprimary=True)):
        a = Q._roi_rows(conn, model, pc, rois=[], min_roi_weight=1, min_total_weight=1, **kw)
        b = Q._roi_rows(conn, model, shuffled, rois=[], min_roi_weight=1, min_total_weight=1, **kw)
        for x, y in zip(a[:4], b[:4], strict=True):
            assert np.array_equal(x, y)
