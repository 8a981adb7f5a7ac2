"""Measurement tasks: connectome_dask and its peers on the same data, one fresh process each.

Each ``task_*`` function runs inside a fresh interpreter started by
:func:`benchmarks._common.run_child`; it times only the operation (imports,
interpreter start-up and writing arrays for the correctness check are not
timed) and returns a JSON-able dict. Results that are needed to check
correctness (pair tables, type matrices, per-body row counts) are written to
``out`` as ``.npy``/``.json`` files and compared by the parent afterwards.

"ours" runs either on dask's default threaded scheduler inside the measuring
process (``scheduler="threads"``, 2 threads here) or on a 2-worker
``connectome_dask.cluster.local_cluster`` started in the measuring process
(``scheduler="cluster"``; start-up time reported separately, not included).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np

__all__ = [
    "compare_pairs",
    "compare_types",
    "task_duckdb_one_neuron",
    "task_duckdb_pairs",
    "task_duckdb_types",
    "task_ours_fetch_adjacencies",
    "task_ours_one_neuron",
    "task_ours_pairs",
    "task_ours_types",
    "task_pandas_pairs",
    "task_polars_pairs",
    "task_profile",
]

PRE, POST = "pre_pt_root_id", "post_pt_root_id"


@contextlib.contextmanager
def _scheduler(kind: str, n_workers: int = 2, memory_limit: str = "6GiB"):
    """Threaded scheduler in this process, or a LocalCluster of worker processes."""
    import dask

    if kind == "threads":
        with dask.config.set(scheduler="threads"):
            yield {"scheduler": "dask threaded scheduler in the measuring process", "startup_s": 0.0}
        return
    if kind == "sync":
        with dask.config.set(scheduler="sync"):
            yield {"scheduler": "dask synchronous scheduler", "startup_s": 0.0}
        return
    from distributed import Client

    from connectome_dask.cluster import local_cluster

    t0 = time.perf_counter()
    cluster = local_cluster(n_workers=n_workers, threads_per_worker=1, memory_limit=memory_limit,
                            dashboard_address=":0")
    client = Client(cluster)
    dt = time.perf_counter() - t0
    try:
        yield {"scheduler": f"distributed LocalCluster, {n_workers} workers x 1 thread, "
                            f"memory_limit {memory_limit}", "startup_s": dt}
    finally:
        client.close()
        cluster.close()


def _save(out: str | None, **arrays) -> None:
    if not out:
        return
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    for k, v in arrays.items():
        if isinstance(v, np.ndarray):
            np.save(d / f"{k}.npy", v, allow_pickle=False)
        else:
            (d / f"{k}.json").write_text(json.dumps(v))


def _sort_pairs(pre: np.ndarray, post: np.ndarray, w: np.ndarray):
    pre = np.asarray(pre, np.int64)
    post = np.asarray(post, np.int64)
    o = np.lexsort((post, pre))
    return pre[o], post[o], np.asarray(w, np.int64)[o]


# ----------------------------------------------------------------------------- neuron-pair counts


def task_ours_pairs(store: str, api: str = "adjacency", scheduler: str = "threads", repeat: int = 1,
                    out: str | None = None) -> dict:
    """``Connectome.adjacency()`` (sparse xarray by bodyId) or raw ``aggregate.pair_counts``."""
    import connectome_dask as cd
    from connectome_dask.aggregate import pair_counts

    times = []
    with _scheduler(scheduler) as sch:
        for _ in range(repeat):
            t0 = time.perf_counter()
            conn = cd.open(store, set_default=False)
            if api == "adjacency":
                res = conn.adjacency(progress=False)
            else:
                res = pair_counts(conn, progress=False)
            times.append(time.perf_counter() - t0)
            del conn
    info = {**sch, "api": api, "times_s": times, "seconds": min(times), "first_s": times[0]}
    conn = cd.open(store, set_default=False)
    body = conn.neurons["bodyId"].to_numpy(np.int64)
    if api == "adjacency":
        data = res.data
        info.update(nnz=int(data.nnz), total=int(data.data.sum()), shape=list(res.shape),
                    data_type=type(data).__module__ + "." + type(data).__name__)
        pre = res["pre"].to_numpy()[data.coords[0]]
        post = res["post"].to_numpy()[data.coords[1]]
        w = data.data
    else:
        info.update(nnz=len(res), total=int(res["weight"].sum()))
        pre, post, w = body[res["pre"].to_numpy()], body[res["post"].to_numpy()], res["weight"].to_numpy()
    if out:
        _save(out, *(), **dict(zip(("pre", "post", "w"), _sort_pairs(pre, post, w), strict=True)))
    return info


def _duckdb(threads: int | None = None):
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads TO {int(threads)}")
    return con


def task_duckdb_pairs(parquet: str, out: str | None = None, repeat: int = 1) -> dict:
    """DuckDB ``SELECT pre, post, count(*) ... GROUP BY pre, post`` into an Arrow table."""
    import duckdb

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        con = _duckdb()
        tab = con.execute(
            f"SELECT {PRE} AS pre, {POST} AS post, count(*) AS w FROM read_parquet(?) GROUP BY {PRE}, {POST}",
            [parquet],
        ).to_arrow_table()
        times.append(time.perf_counter() - t0)
        con.close()
    info = {"times_s": times, "seconds": min(times), "first_s": times[0], "nnz": tab.num_rows,
            "total": int(tab["w"].to_numpy().sum()), "duckdb": duckdb.__version__,
            "threads": "DuckDB default (all cores)"}
    if out:
        p, q, w = _sort_pairs(tab["pre"].to_numpy(), tab["post"].to_numpy(), tab["w"].to_numpy())
        _save(out, pre=p, post=q, w=w)
    return info


def task_polars_pairs(parquet: str, out: str | None = None, repeat: int = 1) -> dict:
    """polars ``scan_parquet(...).group_by([pre, post]).agg(len()).collect()``."""
    import polars as pl

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        df = pl.scan_parquet(parquet).group_by([PRE, POST]).agg(pl.len().alias("w")).collect()
        times.append(time.perf_counter() - t0)
    w = df["w"].to_numpy().astype(np.int64)
    info = {"times_s": times, "seconds": min(times), "first_s": times[0], "nnz": df.height,
            "total": int(w.sum()), "checksum": int((w * w).sum()), "polars": pl.__version__}
    return info


def task_pandas_pairs(parquet: str, out: str | None = None, repeat: int = 1) -> dict:
    """pandas ``read_parquet(columns=[pre, post])`` + ``groupby([pre, post], sort=False).size()``."""
    import pandas as pd

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        df = pd.read_parquet(parquet, columns=[PRE, POST])
        s = df.groupby([PRE, POST], sort=False).size()
        times.append(time.perf_counter() - t0)
        del df
    w = s.to_numpy().astype(np.int64)
    return {"times_s": times, "seconds": min(times), "first_s": times[0], "nnz": len(s),
            "total": int(w.sum()), "checksum": int((w * w).sum()), "pandas": pd.__version__}


def compare_pairs(a: Path, b: Path) -> dict:
    """Compare two saved, sorted pair tables (pre, post body IDs, weight)."""
    x = {k: np.load(a / f"{k}.npy") for k in ("pre", "post", "w")}
    y = {k: np.load(b / f"{k}.npy") for k in ("pre", "post", "w")}
    same_len = len(x["pre"]) == len(y["pre"])
    eq = same_len and all(np.array_equal(x[k], y[k]) for k in ("pre", "post", "w"))
    return {"identical": bool(eq), "n_pairs": [int(len(x["pre"])), int(len(y["pre"]))],
            "total": [int(x["w"].sum()), int(y["w"].sum())]}


# ----------------------------------------------------------------------------- type x type


def task_ours_types(store: str, scheduler: str = "threads", repeat: int = 1, out: str | None = None) -> dict:
    """``Connectome.adjacency(by="type")``: dense type x type counts as an xarray."""
    import connectome_dask as cd

    times = []
    with _scheduler(scheduler) as sch:
        for _ in range(repeat):
            t0 = time.perf_counter()
            conn = cd.open(store, set_default=False)
            A = conn.adjacency(by="type", progress=False)
            times.append(time.perf_counter() - t0)
    m = np.asarray(A.data)
    info = {**sch, "times_s": times, "seconds": min(times), "first_s": times[0], "shape": list(m.shape),
            "nonzero": int(np.count_nonzero(m)), "total": int(m.sum())}
    if out:
        i, j = np.nonzero(m)
        _save(out, i=i.astype(np.int64), j=j.astype(np.int64), v=m[i, j].astype(np.int64),
              pre_labels=[str(x) for x in A["pre"].to_numpy()], post_labels=[str(x) for x in A["post"].to_numpy()])
    return info


def task_duckdb_types(parquet: str, neurons: str, out: str | None = None, repeat: int = 1) -> dict:
    """DuckDB: join synapses with the neuron table on both sides, group by (pre type, post type)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        con = _duckdb()
        tab = con.execute(
            f"""
            SELECT a.cell_type AS pre_type, b.cell_type AS post_type, count(*) AS w
            FROM read_parquet(?) s
            JOIN read_parquet(?) a ON s.{PRE} = a.root_id
            JOIN read_parquet(?) b ON s.{POST} = b.root_id
            WHERE a.cell_type IS NOT NULL AND b.cell_type IS NOT NULL
            GROUP BY a.cell_type, b.cell_type
            """,
            [parquet, neurons, neurons],
        ).to_arrow_table()
        times.append(time.perf_counter() - t0)
        con.close()
    w = tab["w"].to_numpy().astype(np.int64)
    info = {"times_s": times, "seconds": min(times), "first_s": times[0], "nonzero": tab.num_rows,
            "total": int(w.sum())}
    if out:
        _save(out, pre_type=tab["pre_type"].to_pylist(), post_type=tab["post_type"].to_pylist(), w=w)
    return info


def compare_types(ours: Path, duck: Path) -> dict:
    """Our dense matrix (saved as non-zeros + labels) vs DuckDB's long table."""
    pl_ = json.loads((ours / "pre_labels.json").read_text())
    ql_ = json.loads((ours / "post_labels.json").read_text())
    i, j, v = (np.load(ours / f"{k}.npy") for k in ("i", "j", "v"))
    mine = {(pl_[a], ql_[b]): int(c) for a, b, c in zip(i.tolist(), j.tolist(), v.tolist(), strict=True)}
    pt = json.loads((duck / "pre_type.json").read_text())
    qt = json.loads((duck / "post_type.json").read_text())
    w = np.load(duck / "w.npy")
    theirs = {(a, b): int(c) for a, b, c in zip(pt, qt, w.tolist(), strict=True)}
    diff = [k for k in set(mine) | set(theirs) if mine.get(k, 0) != theirs.get(k, 0)]
    return {"identical": not diff, "n_nonzero": [len(mine), len(theirs)], "n_differing_cells": len(diff),
            "total": [int(v.sum()), int(w.sum())], "example_diff": [list(k) for k in diff[:3]]}


# ----------------------------------------------------------------------------- one neuron


def task_ours_one_neuron(store: str, bodies: list[int]) -> dict:
    """``fetch_synapses(bodyId)`` and raw ``synapse_rows`` + ``take_synapses``, per body."""
    import dask

    import connectome_dask as cd

    dask.config.set(scheduler="threads")
    conn = cd.open(store, set_default=False)
    cols = ["pre", "post", *conn.site_columns("pre"), *conn.site_columns("post")]
    cols += [c for c in ("confidence",) if c in conn.synapse_columns]
    t_fetch, t_raw, n_fetch, n_raw = [], [], [], []
    t_index, t_take, chunks_pre, chunks_post = [], [], [], []
    for b in bodies:
        t0 = time.perf_counter()
        df = cd.fetch_synapses(int(b), client=conn, progress=False)
        t_fetch.append(time.perf_counter() - t0)
        n_fetch.append(len(df))
    for b in bodies:
        t0 = time.perf_counter()
        i = conn.body_to_index([int(b)])
        rows_pre = conn.synapse_rows(i, side="pre")
        rows_post = conn.synapse_rows(i, side="post")
        t1 = time.perf_counter()
        d1 = conn.take_synapses(rows_pre, cols)
        d2 = conn.take_synapses(rows_post, cols)
        t_raw.append(time.perf_counter() - t0)
        t_index.append(t1 - t0)
        t_take.append(time.perf_counter() - t1)
        chunks_pre.append(len(np.unique(rows_pre // conn.chunk_rows)))
        chunks_post.append(len(np.unique(rows_post // conn.chunk_rows)))
        n_raw.append(len(d1["pre"]) + len(d2["pre"]))
    t_of, n_of = [], []
    if hasattr(conn, "synapses_of"):
        for b in bodies:
            t0 = time.perf_counter()
            i = conn.body_to_index([int(b)])
            d1 = conn.synapses_of(i, "pre", cols)
            d2 = conn.synapses_of(i, "post", cols)
            t_of.append(time.perf_counter() - t0)
            n_of.append(len(d1["pre"]) + len(d2["pre"]))
    from connectome_dask.criteria import SynapseCriteria

    # fetch_synapses applies the store's default confidence threshold; count without it too
    n_all = [len(cd.fetch_synapses(int(b), SynapseCriteria(confidence=0.0), client=conn, progress=False))
             for b in bodies[:5]]
    n_chunks = -(-conn.n_synapses // conn.chunk_rows)
    return _latency(t_fetch, "fetch_synapses") | _latency(t_raw, "raw") | _latency(t_index, "raw_index") | _latency(
        t_take, "raw_take") | (_latency(t_of, "synapses_of") | {"rows_synapses_of": n_of} if t_of else {}) | {
        "chunks_touched": {"pre_median": float(np.median(chunks_pre)), "post_median": float(np.median(chunks_post)),
                           "post_max": int(max(chunks_post)), "chunks_per_column": n_chunks,
                           "chunk_rows": conn.chunk_rows, "columns_read": len(cols)},
        "rows_fetch_synapses": n_fetch, "rows_raw": n_raw, "rows_fetch_synapses_conf0_first5": n_all,
        "scheduler": "in process (index path, no dask graph)"}


def _latency(t: list[float], key: str) -> dict:
    a = np.asarray(t) * 1000
    return {f"{key}_ms": {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
                          "first": float(a[0]), "max": float(a.max()), "n": len(a)}}


def task_duckdb_one_neuron(parquet: str, bodies: list[int]) -> dict:
    """DuckDB: ``SELECT * FROM read_parquet(...) WHERE pre = ? OR post = ?`` per body."""
    con = _duckdb()
    t, n = [], []
    for b in bodies:
        t0 = time.perf_counter()
        tab = con.execute(f"SELECT * FROM read_parquet(?) WHERE {PRE} = ? OR {POST} = ?",
                          [parquet, int(b), int(b)]).to_arrow_table()
        t.append(time.perf_counter() - t0)
        # one row per site as in fetch_synapses: an autapse row counts twice
        n.append(int((tab[PRE].to_numpy() == b).sum() + (tab[POST].to_numpy() == b).sum()))
    return _latency(t, "duckdb") | {"rows": n}


# ----------------------------------------------------------------------------- whole-brain adjacencies


def task_ours_fetch_adjacencies(store: str, scheduler: str = "threads") -> dict:
    """``fetch_adjacencies(None, None)`` on the whole store (per-ROI connection table)."""
    import connectome_dask as cd

    with _scheduler(scheduler) as sch:
        conn = cd.open(store, set_default=False)
        t0 = time.perf_counter()
        neuron_df, conn_df = cd.fetch_adjacencies(None, None, client=conn, progress=False)
        dt = time.perf_counter() - t0
    return {**sch, "seconds": dt, "conn_df_rows": len(conn_df), "neuron_df_rows": len(neuron_df),
            "total_weight": int(conn_df["weight"].sum()), "n_rois": conn_df["roi"].nunique(),
            "conn_df_mb": float(conn_df.memory_usage(deep=True).sum() / 2**20)}


# ----------------------------------------------------------------------------- profiles


def task_profile(store: str, what: str, top: int = 25) -> dict:
    """cProfile of one of our operations on dask's synchronous scheduler (every task in this thread)."""
    import cProfile
    import io
    import pstats

    import dask

    import connectome_dask as cd

    dask.config.set(scheduler="sync")
    conn = cd.open(store, set_default=False)
    _ = conn.neurons
    ops = {
        "pairs": lambda: conn.adjacency(progress=False),
        "pair_counts": lambda: __import__("connectome_dask.aggregate", fromlist=["x"]).pair_counts(
            conn, progress=False),
        "types": lambda: conn.adjacency(by="type", progress=False),
        "fetch_adjacencies": lambda: cd.fetch_adjacencies(None, None, client=conn, progress=False),
    }
    ops[what]()  # warm: imports, numba cache loads, zarr metadata
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.enable()
    ops[what]()
    pr.disable()
    dt = time.perf_counter() - t0
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s)
    st.sort_stats("tottime").print_stats(top)
    rows = []
    for (fn, line, name), (_cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append({"function": f"{Path(fn).name}:{line}({name})", "calls": nc, "tottime_s": tt, "cumtime_s": ct})
    rows.sort(key=lambda r: -r["tottime_s"])
    cum = sorted((r for r in rows if "connectome_dask" in r["function"] or r["function"].split(":")[0] in _PKG_FILES),
                 key=lambda r: -r["cumtime_s"])
    return {"what": what, "seconds_sync_profiled": dt, "top_tottime": rows[:top], "package_cumtime": cum[:12]}


_PKG_FILES = {p.name for p in Path(__file__).resolve().parents[1].joinpath("connectome_dask").glob("*.py")}


# ----------------------------------------------------------------------------- ingest (benchmarks/ingest.py)


def task_ingest(parquet: str, out: str) -> dict:
    """``benchmarks.ingest.measure("ingest", ...)`` on the same CAVE Parquet (it runs its own child)."""
    import shutil

    from benchmarks.ingest import measure

    try:
        r = measure("ingest", Path(parquet), Path(out))
    finally:
        size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file()) if Path(out).exists() else 0
        shutil.rmtree(out, ignore_errors=True)
    r["store_mb"] = size / 2**20
    return r
