"""``fetch_adjacencies`` above the memory budget: streamed to ``export_dir`` partition by partition.

References: DuckDB on the raw rows (``tests/test_adjacencies_coded.py``'s
statement of neuPrint's rule) and, for the row order of an ingested-style store
(bodyIds ascending in dense order), the in-memory result.
"""

from __future__ import annotations

import logging

import dask
import numpy as np
import pandas as pd
import pytest

from connectome_dask.errors import ResultTooLarge
from connectome_dask.query import neuprint as Q
from connectome_dask.store import StoreWriter

from .test_adjacencies_coded import CASES, ROIS, _build, _duckdb_ref

duckdb = pytest.importorskip("duckdb")

TINY = {"connectome_dask.max_result_bytes": 1, "connectome_dask.partition_chunks": 1}


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return (df.astype({"roi": object}).sort_values(["bodyId_pre", "bodyId_post", "weight", "roi"],
                                                   ascending=[True, True, False, True])
            .reset_index(drop=True))


@pytest.mark.parametrize("case", range(len(CASES)))
def test_streamed_rows_match_duckdb(tmp_path, case, caplog):
    kw = CASES[case]
    conn, raw = _build(tmp_path / "s", 64)
    with dask.config.set(TINY), caplog.at_level(logging.WARNING, logger="connectome_dask.query"):
        ndf, cdf = Q.fetch_adjacencies(None, None, client=conn, progress=False, export_dir=tmp_path / "x", **kw)
    assert any("streaming it to" in r.getMessage() for r in caplog.records)
    assert hasattr(cdf, "npartitions")  # a dask DataFrame, not one frame
    ref = _duckdb_ref(raw, kw.get("min_roi_weight", 1), kw.get("min_total_weight", 1),
                      kw.get("include_nonprimary", False))
    got = cdf.compute()
    pd.testing.assert_frame_equal(_sorted(got), _sorted(ref), check_dtype=False)
    on_disk = pd.read_csv(tmp_path / "x" / "roi-connections.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(_sorted(on_disk), _sorted(ref), check_dtype=False)
    ids = np.sort(np.unique(np.concatenate([ref["bodyId_pre"], ref["bodyId_post"]])))
    assert ndf["bodyId"].tolist() == ids.tolist()
    assert pd.read_csv(tmp_path / "x" / "neurons.csv")["bodyId"].tolist() == ids.tolist()
    con = duckdb.connect()
    con.register("r", ref)
    con.register("syn", raw)
    tot = con.execute("""SELECT bpre AS bodyId_pre, bpost AS bodyId_post, count(*) AS weight FROM syn
                         WHERE (bpre, bpost) IN (SELECT (bodyId_pre, bodyId_post) FROM r)
                         GROUP BY bpre, bpost ORDER BY bpre, bpost""").df()
    got_tot = pd.read_csv(tmp_path / "x" / "total-connections.csv").sort_values(["bodyId_pre", "bodyId_post"])
    pd.testing.assert_frame_equal(got_tot.reset_index(drop=True), tot, check_dtype=False)
    assert not [p.name for p in (tmp_path / "x").iterdir() if ".tmp-" in p.name]


def _ascending(path, chunk_rows=64, seed=4):
    """A store whose bodyIds ascend in dense order (as ingest writes them), several partitions."""
    rng = np.random.default_rng(seed)
    n, m = 50, 5000
    body = (10**6 + 13 * np.arange(n)).astype(np.int64)
    neurons = pd.DataFrame({"bodyId": body, "type": [f"T{i % 4}" for i in range(n)],
                            "instance": [f"T{i % 4}_L" for i in range(n)]})
    syn = {"pre": rng.integers(0, n, m).astype(np.int32), "post": rng.integers(0, n, m).astype(np.int32),
           "roi_post": rng.integers(-1, len(ROIS["names"]), m).astype(np.int16)}
    with StoreWriter(path, n, {"roi_post": "int16"}, chunk_rows=chunk_rows) as w:
        w.append(syn)
        return w.close(neurons, {"name": "ascending"}, rois=ROIS)


def test_streamed_csv_is_the_in_memory_frame_row_for_row(tmp_path):
    conn = _ascending(tmp_path / "s")
    ndf, mem = Q.fetch_adjacencies(None, None, client=conn, progress=False, min_total_weight=2)
    with dask.config.set(TINY):
        ndf2, cdf = Q.fetch_adjacencies(None, None, client=conn, progress=False, min_total_weight=2,
                                        export_dir=tmp_path / "x")
    assert cdf.npartitions >= 1 and len(list((tmp_path / "x").iterdir())) == 3
    on_disk = pd.read_csv(tmp_path / "x" / "roi-connections.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(on_disk.astype({"roi": object}), mem.astype({"roi": object}), check_dtype=False)
    pd.testing.assert_frame_equal(ndf2, ndf)


def test_above_the_budget_without_export_dir_refuses_before_any_work(tmp_path, monkeypatch):
    conn = _ascending(tmp_path / "s")

    def no_work(*a, **k):
        raise AssertionError("pair counts ran")

    monkeypatch.setattr(Q, "_index_pair_counts", no_work)
    with dask.config.set(TINY), pytest.raises(ResultTooLarge, match=r"max_result_bytes.*pass export_dir="):
        Q.fetch_adjacencies(None, None, client=conn, progress=False)
    with dask.config.set({"connectome_dask.max_result_bytes": 10**12}), pytest.raises(AssertionError):
        Q.fetch_adjacencies(None, None, client=conn, progress=False)  # under the budget: the work starts


def test_estimate_scales_with_the_selected_neurons(tmp_path):
    conn = _ascending(tmp_path / "s")
    full = Q._conn_df_estimate(conn, None, None)
    assert full == conn.n_roi_pairs * Q._CONN_DF_ROW_BYTES  # every (pair, ROI) row of the table
    idx = np.array([0, 1, 2])
    share = conn.neurons["pre"].to_numpy()[idx].sum() / conn.n_synapses
    assert Q._conn_df_estimate(conn, idx, None) == int(conn.n_roi_pairs * share) * Q._CONN_DF_ROW_BYTES


def test_a_failed_stream_leaves_the_old_files(tmp_path, monkeypatch):
    conn = _ascending(tmp_path / "s")
    out = tmp_path / "x"
    out.mkdir()
    for name in ("roi-connections.csv", "total-connections.csv", "neurons.csv"):
        (out / name).write_text("old\n")
    calls = []
    real = Q._roi_rows

    def fail_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed half-way")
        return real(*a, **k)

    monkeypatch.setattr(Q, "_roi_rows", fail_second)
    with dask.config.set(TINY), pytest.raises(RuntimeError, match="half-way"):
        Q.fetch_adjacencies(None, None, client=conn, progress=False, export_dir=out)
    assert len(calls) == 2  # there were several partitions
    assert sorted(p.name for p in out.iterdir()) == ["neurons.csv", "roi-connections.csv", "total-connections.csv"]
    assert all((out / n).read_text() == "old\n" for n in ("roi-connections.csv", "total-connections.csv",
                                                          "neurons.csv"))


def test_estimate_without_roi_codes_is_one_row_per_pair(tmp_path):
    rng = np.random.default_rng(2)
    n, m = 30, 2000
    syn = {"pre": rng.integers(0, n, m).astype(np.int32), "post": rng.integers(0, n, m).astype(np.int32)}
    with StoreWriter(tmp_path / "s", n, {}, chunk_rows=128) as w:
        w.append(syn)
        conn = w.close(pd.DataFrame({"bodyId": np.arange(n, dtype=np.int64) + 5}), {"name": "no rois"})
    pairs = len(pd.DataFrame(syn).drop_duplicates())  # the reference: distinct (pre, post)
    assert Q._conn_df_estimate(conn, None, None) == pairs * Q._CONN_DF_ROW_BYTES
