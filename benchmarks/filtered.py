"""Filtered whole-brain aggregations vs DuckDB (Parquet and its own table) and polars: ``python -m benchmarks.filtered``.

The queries the connection table cannot answer: pair counts restricted to a
ROI list, to confident synapses, to strong pairs (``min_weight``), to a
neuron subset on either side, a type x type matrix inside a ROI list and
above a confidence, and a combination. Those with a ROI filter or split by
ROI and no confidence filter (``per_roi``, ``rois10``, ``types_rois10``) read
the store's per-ROI connection table (``index.zarr/roi_pairs``, plan method
``roi_table``); those with a confidence filter read the connection table's
pairs and only the confidence (and ROI) column of their synapse rows (plan
method ``pairs_scan``). For both, ours is also measured with the tables
switched off (dask config ``connectome_dask.use_roi_pair_table`` and
``use_pair_table`` false: the synapse scan they replace), in the same run.

Data: the cached synthetic whole brain of ``benchmarks/_common.py``
(``dataset`` + ``ensure_rois``) at ``--synapses`` rows. The peers get the same
rows with their ROI and confidence as a neuPrint-style Parquet file
(``synapses_roi.parquet``: ``pre, post`` int64 bodyIds, ``roi`` int16 code of
the postsynaptic site (-1 = none), ``confidence`` float32; written once from
the store, in its (pre, post) order, not timed) and the neuron table
``neurons.parquet`` (``root_id, cell_type``). Peers:

- DuckDB on the Parquet file (``read_parquet`` in every query),
- DuckDB on its own table built once (``CREATE TABLE syn AS SELECT * FROM
  read_parquet(...) ORDER BY pre, post`` in a database file; the build time
  and its peak RSS are reported like our ingest, not included in query times),
- polars (``scan_parquet`` ... ``collect``).

Ours: ``connectome_dask.aggregate.pair_counts`` / ``adjacency(by="type")``
on the store, dask's threaded scheduler in the measuring process; the read
path each call took is recorded from the plan log (``connectome_dask.compute``). Every
measurement runs in a fresh process (``benchmarks._common.run_child``: time of
the operation, best of ``--repeat``, opening the store / database included;
peak RSS of the process tree). Every result is compared element by element
with DuckDB's (Parquet) in the same run.

Results: ``benchmarks/results/filtered.{md,json}`` (other sizes than 20 M get a
suffix, e.g. ``filtered_50M.md``).

Usage::

    python -m benchmarks.filtered --synapses 20M
    python -m benchmarks --only filtered --synapses 20M
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ._common import (
    RESULTS,
    CallPeak,
    dataset,
    ensure_rois,
    fmt_mb,
    fmt_s,
    human,
    machine_info,
    parse_int,
    run_child,
    ten_rois,
    write_json,
    write_text,
)
from .peers import _scheduler

__all__ = ["main", "SCENARIOS"]

CONF = 0.8
#: name -> (description, kind, spec); spec keys: rois, confidence, min_weight, pre, post (subset names)
SCENARIOS: dict[str, tuple[str, str, dict]] = {
    "per_roi": ("per-ROI pair counts, all neurons: `fetch_adjacencies(None, None)` vs GROUP BY pre, post, roi",
                "roi_pairs", {}),
    "rois10": ("pair counts, postsynaptic site in 10 ROIs", "pairs", {"rois": True}),
    "confidence": (f"pair counts, confidence > {CONF}", "pairs", {"confidence": CONF}),
    "min_weight": ("pair counts, pairs with >= 5 synapses", "pairs", {"min_weight": 5}),
    "pre_subset": ("pair counts, pre in a 10 % neuron subset", "pairs", {"pre": "pre10"}),
    "post_subset": ("pair counts, post in a 10 % neuron subset", "pairs", {"post": "post10"}),
    "types_rois10": ("type x type, postsynaptic site in 10 ROIs", "types", {"rois": True}),
    "types_confidence": (f"type x type, confidence > {CONF}", "types", {"confidence": CONF}),
    "combined": ("pair counts, pre in a 30 % subset, 10 ROIs, confidence > 0.5, >= 3 synapses", "pairs",
                 {"pre": "pre30", "rois": True, "confidence": 0.5, "min_weight": 3}),
}


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- inputs (built once)


def _write_peer_parquet(store: str, out: str) -> dict:
    """The store's rows as a neuPrint-style Parquet file (bodyIds, ROI code, confidence), in store order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import connectome_dask as cd

    conn = cd.open(store, set_default=False)
    body = conn.neurons["bodyId"].to_numpy(np.int64)
    n = conn.n_synapses
    step = 1 << 22
    tmp = Path(out).with_suffix(".tmp")
    t0 = time.perf_counter()
    schema = pa.schema([("pre", pa.int64()), ("post", pa.int64()), ("roi", pa.int16()), ("confidence", pa.float32())])
    with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
        for s in range(0, n, step):
            d = conn.read_synapses(["pre", "post", "roi_post", "confidence"], s, min(s + step, n))
            w.write_table(pa.table({"pre": body[d["pre"]], "post": body[d["post"]], "roi": d["roi_post"],
                                    "confidence": d["confidence"]}, schema=schema), row_group_size=1 << 20)
    tmp.rename(out)
    return {"seconds": time.perf_counter() - t0, "rows": n, "mb": Path(out).stat().st_size / 2**20}


def _subsets(store: str, seed: int) -> dict:
    import connectome_dask as cd

    conn = cd.open(store, set_default=False)
    body = conn.neurons["bodyId"].to_numpy(np.int64)
    rng = np.random.default_rng(seed + 17)
    rois = ten_rois(conn.roi_names)
    out: dict = {"rois": rois, "roi_codes": [conn.roi_names.index(r) for r in rois]}
    for key, frac in (("pre10", 0.1), ("post10", 0.1), ("pre30", 0.3)):
        out[key] = np.sort(rng.choice(body, int(len(body) * frac), replace=False)).tolist()
    return out


def task_duckdb_build(parquet: str, db: str) -> dict:
    """DuckDB's own table, built once: ``CREATE TABLE syn AS SELECT * FROM read_parquet ORDER BY pre, post``."""
    import duckdb

    p = Path(db)
    for f in (p, p.with_suffix(p.suffix + ".wal")):
        if f.exists():
            f.unlink()
    t0 = time.perf_counter()
    con = duckdb.connect(db)
    con.execute("CREATE TABLE syn AS SELECT * FROM read_parquet(?) ORDER BY pre, post", [parquet])
    con.execute("CHECKPOINT")
    con.close()
    return {"seconds": time.perf_counter() - t0, "db_mb": p.stat().st_size / 2**20, "duckdb": duckdb.__version__}


# ----------------------------------------------------------------------------- measurement tasks


def _save(out: str, kind: str, a, b, w, roi=None) -> None:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    w = np.asarray(w, np.int64)
    if kind in ("pairs", "roi_pairs"):
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        r = np.asarray(roi if roi is not None else np.zeros(len(a)), np.int64)
        o = np.lexsort((r, b, a))
        for k, v in (("a", a[o]), ("b", b[o]), ("r", r[o]), ("w", w[o])):
            np.save(d / f"{k}.npy", v, allow_pickle=False)
    else:
        rows = sorted(zip((str(x) for x in a), (str(x) for x in b), w.tolist(), strict=True))
        (d / "rows.json").write_text(json.dumps(rows))


def _spec(scenario: str, subsets: str) -> tuple[str, dict, dict]:
    _, kind, spec = SCENARIOS[scenario]
    return kind, spec, json.loads(Path(subsets).read_text())


class _Plans(logging.Handler):
    """The read-path methods the package's plan log reports (``connectome_dask.compute``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.methods: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        plan = getattr(record, "plan", None)
        if plan is not None:
            self.methods.append(plan.method)


def task_ours(store: str, scenario: str, subsets: str, out: str, repeat: int = 1, scheduler: str = "threads",
              roi_table: bool = True) -> dict:
    """``aggregate.pair_counts`` / ``aggregate.adjacency(by="type")`` with the scenario's filters.

    ``scheduler``: ``"threads"`` (dask's threaded scheduler in this process) or
    ``"cluster"`` (a 2-worker LocalCluster started here, start-up not timed).
    ``roi_table=False``: the per-ROI and the connection table switched off (dask
    config ``connectome_dask.use_roi_pair_table`` / ``use_pair_table``), i.e. the synapse scan.
    """
    import dask

    import connectome_dask as cd
    from connectome_dask import aggregate

    kind, spec, sub = _spec(scenario, subsets)
    kw: dict = {"progress": False}
    if spec.get("rois"):
        kw["rois"] = sub["rois"]
    if "confidence" in spec:
        kw["confidence"] = spec["confidence"]
    if "min_weight" in spec:
        kw["min_weight"] = spec["min_weight"]
    for side in ("pre", "post"):
        if side in spec:
            kw[side] = np.asarray(sub[spec[side]], np.int64)
    times = []
    plans = _Plans()
    plog = logging.getLogger("connectome_dask.compute")
    plog.addHandler(plans)
    plog.setLevel(logging.DEBUG)
    with _scheduler(scheduler) as sch, dask.config.set({"connectome_dask.use_roi_pair_table": roi_table,
                                                                     "connectome_dask.use_pair_table": roi_table}):
        res = None
        peaks = []
        for _ in range(repeat):
            res = None  # peak RSS of one call: the previous repetition's result is released first
            with CallPeak() as cp:
                t0 = time.perf_counter()
                conn = cd.open(store, set_default=False)
                if kind == "roi_pairs":  # conn_df: bodyId_pre, bodyId_post, roi (name; NotPrimary = none), weight
                    _, res = cd.fetch_adjacencies(None, None, client=conn, progress=False)
                elif kind == "pairs":
                    res = aggregate.pair_counts(conn, **kw)
                else:
                    res = aggregate.adjacency(conn, by="type", **kw)
                times.append(time.perf_counter() - t0)
            peaks.append(cp.mb)
    result_mb = (float(res.memory_usage(deep=True).sum()) if kind != "types" else float(res.nbytes)) / 2**20
    roi = None
    if kind == "roi_pairs":  # every ROI of this store is primary: a name is its code
        code = {n: i for i, n in enumerate(conn.roi_names)} | {"NotPrimary": -1}
        a, b, w = res["bodyId_pre"].to_numpy(), res["bodyId_post"].to_numpy(), res["weight"].to_numpy()
        roi = res["roi"].map(code).to_numpy()
    elif kind == "pairs":
        body = conn.neurons["bodyId"].to_numpy(np.int64)
        a, b, w = body[res["pre"].to_numpy()], body[res["post"].to_numpy()], res["weight"].to_numpy()
    else:
        m = np.asarray(res.data)
        i, j = np.nonzero(m)
        a, b, w = res["pre"].to_numpy()[i], res["post"].to_numpy()[j], m[i, j]
    _save(out, kind, a, b, w, roi)
    return {"times_s": times, "seconds": min(times), "first_s": times[0], "rows": int(len(w)),
            "total": int(np.asarray(w).sum()), "paths": sorted(set(plans.methods)),
            "has_roi_pair_table": bool(conn.has_roi_pair_table), "n_roi_pairs": int(conn.n_roi_pairs),
            "call_peak_mb": _max_peak(peaks), "result_mb": result_mb, **sch}


def _max_peak(peaks: list[float | None]) -> float | None:
    """Highest per-call peak RSS (``None`` when this kernel cannot reset the high-water mark)."""
    got = [p for p in peaks if p is not None]
    return max(got) if got else None


def _sql(kind: str, spec: dict, sub: dict, src: str) -> str:
    where = []
    if spec.get("rois"):
        where.append(f"s.roi IN ({', '.join(str(c) for c in sub['roi_codes'])})")
    if "confidence" in spec:  # compared at float32, as the store keeps it
        where.append(f"s.confidence > CAST({spec['confidence']} AS REAL)")
    for side in ("pre", "post"):
        if side in spec:
            where.append(f"s.{side} IN (SELECT id FROM sel_{side})")
    w = ("WHERE " + " AND ".join(where)) if where else ""
    if kind == "roi_pairs":
        return f"SELECT s.pre AS a, s.post AS b, s.roi AS r, count(*) AS w FROM {src} s GROUP BY s.pre, s.post, s.roi"
    if kind == "pairs":
        having = f"HAVING count(*) >= {int(spec['min_weight'])}" if spec.get("min_weight", 1) > 1 else ""
        return f"SELECT s.pre AS a, s.post AS b, count(*) AS w FROM {src} s {w} GROUP BY s.pre, s.post {having}"
    types = "read_parquet($neurons)"
    w = w + (" AND " if w else "WHERE ") + "x.cell_type IS NOT NULL AND y.cell_type IS NOT NULL"
    return (f"SELECT x.cell_type AS a, y.cell_type AS b, count(*) AS w FROM {src} s "
            f"JOIN {types} x ON s.pre = x.root_id JOIN {types} y ON s.post = y.root_id {w} "
            "GROUP BY x.cell_type, y.cell_type")


def task_duckdb(scenario: str, subsets: str, out: str, neurons: str, parquet: str | None = None,
                db: str | None = None, repeat: int = 1) -> dict:
    """DuckDB on the Parquet file (``parquet``) or on its own table (``db``), result into Arrow."""
    import duckdb
    import pyarrow as pa

    kind, spec, sub = _spec(scenario, subsets)
    sels = {side: pa.table({"id": pa.array(sub[spec[side]], pa.int64())}) for side in ("pre", "post") if side in spec}
    src = "read_parquet($parquet)" if parquet else "syn"
    q = _sql(kind, spec, sub, src)
    params = {"neurons": neurons} if kind == "types" else {}
    if parquet:
        params["parquet"] = parquet
    times = []
    tab = None
    peaks = []
    for _ in range(repeat):
        tab = None  # peak RSS of one query
        with CallPeak() as cp:
            t0 = time.perf_counter()
            con = duckdb.connect(db, read_only=True) if db else duckdb.connect()
            for side, t in sels.items():
                con.register(f"sel_{side}", t)
            tab = con.execute(q, params).to_arrow_table()
            times.append(time.perf_counter() - t0)
            con.close()
        peaks.append(cp.mb)
    w = tab["w"].to_numpy()
    _save(out, kind, tab["a"].to_numpy(zero_copy_only=False), tab["b"].to_numpy(zero_copy_only=False), w,
          tab["r"].to_numpy() if kind == "roi_pairs" else None)
    return {"times_s": times, "seconds": min(times), "first_s": times[0], "rows": tab.num_rows,
            "total": int(w.sum()), "query": q, "duckdb": duckdb.__version__, "call_peak_mb": _max_peak(peaks),
            "result_mb": tab.nbytes / 2**20}


def task_polars(scenario: str, subsets: str, out: str, neurons: str, parquet: str, repeat: int = 1) -> dict:
    """polars ``scan_parquet`` + filters (+ joins for types) + ``group_by().agg(len())`` + ``collect``."""
    import polars as pl

    kind, spec, sub = _spec(scenario, subsets)
    times = []
    df = None
    peaks = []
    for _ in range(repeat):
        df = None  # peak RSS of one query
        with CallPeak() as cp:
            t0 = time.perf_counter()
            lf = pl.scan_parquet(parquet)
            if spec.get("rois"):
                lf = lf.filter(pl.col("roi").is_in(pl.Series(sub["roi_codes"], dtype=pl.Int16)))
            if "confidence" in spec:
                lf = lf.filter(pl.col("confidence") > pl.lit(spec["confidence"], dtype=pl.Float32))
            for side in ("pre", "post"):
                if side in spec:
                    lf = lf.filter(pl.col(side).is_in(pl.Series(sub[spec[side]], dtype=pl.Int64)))
            if kind == "roi_pairs":
                df = lf.group_by(["pre", "post", "roi"]).agg(pl.len().alias("w")).rename(
                    {"pre": "a", "post": "b", "roi": "r"}).collect()
            elif kind == "pairs":
                g = lf.group_by(["pre", "post"]).agg(pl.len().alias("w"))
                if spec.get("min_weight", 1) > 1:
                    g = g.filter(pl.col("w") >= spec["min_weight"])
                df = g.rename({"pre": "a", "post": "b"}).collect()
            else:
                nt = pl.scan_parquet(neurons).filter(pl.col("cell_type").is_not_null())
                df = (lf.join(nt.rename({"root_id": "pre", "cell_type": "a"}), on="pre")
                      .join(nt.rename({"root_id": "post", "cell_type": "b"}), on="post")
                      .group_by(["a", "b"]).agg(pl.len().alias("w")).collect())
            times.append(time.perf_counter() - t0)
        peaks.append(cp.mb)
    w = df["w"].to_numpy()
    _save(out, kind, df["a"].to_numpy(), df["b"].to_numpy(), w, df["r"].to_numpy() if kind == "roi_pairs" else None)
    return {"times_s": times, "seconds": min(times), "first_s": times[0], "rows": df.height,
            "total": int(w.sum()), "polars": pl.__version__, "call_peak_mb": _max_peak(peaks),
            "result_mb": df.estimated_size() / 2**20}


def compare(kind: str, a: Path, b: Path) -> dict:
    """Element-by-element comparison of two saved results (sorted pairs / sorted type rows)."""
    if kind in ("pairs", "roi_pairs"):
        x = {k: np.load(a / f"{k}.npy") for k in "abrw"}
        y = {k: np.load(b / f"{k}.npy") for k in "abrw"}
        eq = len(x["a"]) == len(y["a"]) and all(np.array_equal(x[k], y[k]) for k in "abrw")
        return {"identical": bool(eq), "rows": [len(x["a"]), len(y["a"])],
                "total": [int(x["w"].sum()), int(y["w"].sum())]}
    x = json.loads((a / "rows.json").read_text())
    y = json.loads((b / "rows.json").read_text())
    return {"identical": x == y, "rows": [len(x), len(y)], "total": [sum(r[2] for r in x), sum(r[2] for r in y)]}


# ----------------------------------------------------------------------------- driver


def _roi_table_info(store: str) -> dict:
    """Size of the store's per-ROI connection table (rows, bytes on disk) next to the synapse rows."""
    import connectome_dask as cd

    conn = cd.open(store, set_default=False)
    if not conn.has_roi_pair_table:
        return {"present": False}
    root = Path(store) / conn.meta["index"]["path"] / conn.meta["index"]["roi_pairs"]
    copy = root / "by_roi"  # the ROI-major copy (store.roi_major), sized on its own
    copy_mb = sum(f.stat().st_size for f in copy.rglob("*") if f.is_file()) / 2**20 if copy.is_dir() else 0.0
    mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20 - copy_mb
    rm = conn.meta["index"].get("roi_major") or {}
    return {"present": True, "rows": conn.n_roi_pairs, "n_synapses": conn.n_synapses, "mb": mb,
            "pairs": int(conn.meta["index"]["n_pairs"]), "copy_mb": copy_mb, "copy_runs": rm.get("n_runs"),
            "copy_rows": rm.get("n_rows")}


def _child(func: str, **kw) -> dict:
    r = run_child(f"benchmarks.filtered:{func}", **kw)
    if "error" in r:
        log(f"   {func} {kw.get('scenario', '')} FAILED: {r['error'][-800:]}")
    else:
        log(f"   {func} {kw.get('scenario', '')}: {r.get('seconds', 0):.2f} s, tree peak {r['tree_peak_rss_mb']:.0f} MB")
    return r


PEERS = ("duckdb_parquet", "duckdb_table", "polars")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.filtered", description=__doc__.splitlines()[0])
    ap.add_argument("--synapses", type=parse_int, default=20_000_000)
    ap.add_argument("--neurons", type=parse_int, default=139_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="timed repetitions per measurement (best reported)")
    ap.add_argument("--only", default=",".join(SCENARIOS), help=f"comma list of {','.join(SCENARIOS)}")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--no-cluster", action="store_true", help="skip ours on a 2-worker LocalCluster")
    a = ap.parse_args(argv)
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SCENARIOS]
    if bad:
        ap.error(f"unknown scenario(s) {bad}; choose from {','.join(SCENARIOS)}")
    suffix = "" if a.synapses == 20_000_000 else f"_{human(a.synapses)}"
    jpath = a.results / f"filtered{suffix}.json"
    info = dataset(a.synapses, a.neurons, a.seed, parquet=True, log=log)
    rois = ensure_rois(info, log=log)
    folder = Path(info["folder"])
    peer_pq = folder / "synapses_roi.parquet"
    rep: dict = json.loads(jpath.read_text()) if jpath.exists() else {}
    if rep.get("dataset", {}).get("key") != info["key"]:
        rep = {}
    rep.update({"n_synapses": a.synapses, "n_neurons": a.neurons, "dataset": info, "assign_rois": rois,
                "machine": machine_info(), "repeat": a.repeat})
    if not peer_pq.exists():
        log("writing the peers' Parquet (bodyIds, ROI code, confidence) from the store (once) ...")
        r = run_child("benchmarks.filtered:_write_peer_parquet", store=info["store"], out=str(peer_pq))
        if "error" in r:
            raise RuntimeError(r["error"])
        rep["peer_parquet"] = r
    work = folder / "filtered_check"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    subsets = work / "subsets.json"
    subsets.write_text(json.dumps(_subsets(info["store"], a.seed)))
    rep["rois"] = json.loads(subsets.read_text())["rois"]
    rep["roi_pair_table"] = _roi_table_info(info["store"])
    db = work / "syn.duckdb"
    log("DuckDB: building its own table (CREATE TABLE ... ORDER BY pre, post) ...")
    rep["duckdb_table_build"] = _child("task_duckdb_build", parquet=str(peer_pq), db=str(db))
    rep.setdefault("scenarios", {})

    def save() -> None:
        write_json(jpath, rep)
        write_text(a.results / f"filtered{suffix}.md", render(rep))

    common = {"subsets": str(subsets), "repeat": a.repeat}
    npq = info["neurons_parquet"]
    for name in only:
        desc, kind, _ = SCENARIOS[name]
        log(f"== {name}: {desc}")
        res: dict = {"description": desc, "kind": kind}
        d = work / name
        res["ours"] = _child("task_ours", store=info["store"], scenario=name, out=str(d / "ours"), **common)
        if {"roi_table", "roi_major", "pairs_scan"} & set(res["ours"].get("paths", [])):  # the scan they replace
            res["ours_scan"] = _child("task_ours", store=info["store"], scenario=name, out=str(d / "ours_scan"),
                                      roi_table=False, **common)
        if not a.no_cluster:
            res["ours_cluster"] = _child("task_ours", store=info["store"], scenario=name,
                                         out=str(d / "ours_cluster"), scheduler="cluster", **common)
        res["duckdb_parquet"] = _child("task_duckdb", scenario=name, out=str(d / "duckdb_parquet"), neurons=npq,
                                       parquet=str(peer_pq), **common)
        res["duckdb_table"] = _child("task_duckdb", scenario=name, out=str(d / "duckdb_table"), neurons=npq,
                                     db=str(db), **common)
        res["polars"] = _child("task_polars", scenario=name, out=str(d / "polars"), neurons=npq,
                               parquet=str(peer_pq), **common)
        ref = d / "duckdb_parquet"
        res["correctness"] = {k: compare(kind, d / k, ref)
                              for k in ("ours", "ours_scan", "ours_cluster", "duckdb_table", "polars")
                              if (d / k).exists() and ref.exists()}
        res["date"] = time.strftime("%Y-%m-%d %H:%M")
        res["repeat"] = a.repeat  # a row re-run alone (--only) may have another count than the rest
        rep["scenarios"][name] = res
        save()
    shutil.rmtree(work, ignore_errors=True)
    save()
    print(render(rep))
    return rep


# ----------------------------------------------------------------------------- rendering


def _repeats(rep: dict) -> str:
    """``N``, or the counts per row when rows were re-run with other counts (``--only``)."""
    by: dict[int, list[str]] = {}
    for name, sc in rep.get("scenarios", {}).items():
        by.setdefault(int(sc.get("repeat", rep["repeat"])), []).append(f"`{name}` ({sc.get('date', '?')})")
    if len(by) <= 1:
        return str(next(iter(by), rep["repeat"]))
    return "; ".join(f"{k} for {', '.join(v)}" for k, v in sorted(by.items()))


def _ratio(o: dict, p: dict) -> str:
    if "seconds" not in o or "seconds" not in p:
        return "—"
    return f"{o['seconds'] / p['seconds']:.2f}x"


def _within(r: dict, peers) -> bool:
    """Ours at most 0.3x each of ``peers`` (those measured)."""
    o = r["ours"]
    return all(r[p].get("seconds", 1e9) > 0 and "seconds" in o and o["seconds"] <= 0.3 * r[p]["seconds"]
               for p in peers if "seconds" in r[p])


def _roi_table_text(t: dict) -> str:
    if not t.get("present"):
        return "The store has no per-ROI connection table: every filtered query scans."
    return (f"Per-ROI connection table (`index.zarr/roi_pairs`, written with the ROI codes by `assign_rois`): "
            f"{t['rows']:,} rows (one per pair and postsynaptic ROI; {t['rows'] / max(t['n_synapses'], 1):.2f} "
            f"per synapse row, {t['pairs']:,} pairs), {t['mb']:.0f} MB on disk"
            + (f"; its ROI-major copy (`roi_pairs/by_roi`, written with it): {t['copy_runs']:,} runs and the "
               f"confidences of their {t['copy_rows']:,} synapse rows (rows in no ROI left out), ROI after ROI, "
               f"{t['copy_mb']:.0f} MB on disk" if t.get("copy_runs") is not None else "")
            + ". `ours path` is the read path the plan log reports (`pairs_scan`: the connection table's pairs "
            "with only the confidence / ROI columns of their synapse rows; `roi_major`: the copy's runs of the "
            "listed ROIs only, with their rows' confidences when thresholded; `roi_table`: the per-ROI table "
            "whole, for ROIs holding over a quarter of the copy's runs or counts split by ROI); `ours, synapse scan` is the same call with both tables "
            "switched off (`connectome_dask.use_roi_pair_table` / `use_pair_table: false`), measured in the same run.")


def render(rep: dict) -> str:
    n = human(rep["n_synapses"])
    m = rep["machine"]
    b = rep.get("duckdb_table_build", {})
    ds = rep["dataset"]
    L = [f"# Filtered whole-brain aggregations ({n} synapses)", "",
         f"Synthetic whole brain (`{ds['key']}`): {rep['n_synapses']:,} synapses, {rep['n_neurons']:,} neurons, "
         f"{ds['build']['n_types']:,} cell types, ROIs of `{ds['meshes']}` assigned by `assign_rois`. "
         f"Machine: {m.get('cpus', '?')} CPUs, {m.get('memory_gib', '?')} GiB, load average at the start "
         f"{m.get('loadavg', '?')} (shared machine: compare ratios measured in the same run). {m.get('date', '')}.",
         "",
         "Peers read the same rows as a neuPrint-style Parquet file (`pre, post` bodyIds, `roi` code of the "
         "postsynaptic site, `confidence`; in the store's (pre, post) order). **DuckDB table**: DuckDB's own "
         "table built once, `CREATE TABLE syn AS SELECT * FROM read_parquet(...) ORDER BY pre, post` in a "
         f"database file: {fmt_s(b.get('seconds'))} s, peak RSS {fmt_mb(b.get('tree_peak_rss_mb'))} MB "
         "(not in the query times below; our store's equivalent is ingest + `assign_rois`: "
         f"{fmt_s(rep.get('assign_rois', {}).get('seconds'))} s for `assign_rois` here). Ours: "
         "`aggregate.pair_counts` / `aggregate.adjacency(by='type')`, dask threads in the measuring process. "
         f"Every measurement in a fresh process, best of {_repeats(rep)} (first in parentheses), opening the "
         "store / database included; peak RSS = process tree (psutil, 50 ms; each repetition's result is released before the next), "
         "over the whole measuring process (the correctness check's copies after the timed calls included); "
         "peak RSS of one call = the process's high-water mark reset before each timed call (`/proc/self/clear_refs`), "
         "highest of the calls, the resident imports included. Ratios: our time / the peer's "
         "(target <= 0.3x), ours = threads; LocalCluster = `connectome_dask.cluster.local_cluster(n_workers=2, "
         "threads_per_worker=1, memory_limit='6GiB')` started in the measuring process (start-up not timed; its "
         "peak RSS is client + workers, not in the RSS column). Correct = every row (ours on both schedulers and "
         "paths, DuckDB table, polars) equal to DuckDB-on-Parquet's (same run).", "",
         f"ROI list: {', '.join(rep.get('rois', []))}.", "",
         _roi_table_text(rep.get("roi_pair_table", {})), "",
         "| query | ours path | ours s | ours, synapse scan s | ours / scan | ours, 2-worker LocalCluster s | "
         "LocalCluster / DuckDB Parquet | "
         "DuckDB Parquet s | DuckDB table s | polars s | ours / DuckDB Parquet | ours / DuckDB "
         "table | ours / polars | <= 0.3x DuckDB | <= 0.3x all | peak RSS MB ours / scan / DuckDB Parquet / table / polars | "
         "peak RSS of one call MB ours / DuckDB Parquet / table / polars (result MB ours / DuckDB) | rows | correct |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|---|"]
    for r in rep.get("scenarios", {}).values():
        o = r["ours"]

        def t(x: dict | None) -> str:
            if not x:
                return "—"
            return "FAILED" if "error" in x else f"{fmt_s(x['seconds'])} ({fmt_s(x['first_s'])})"

        ok, ok_duck = _within(r, PEERS), _within(r, [p for p in PEERS if p.startswith("duckdb")])
        corr = r.get("correctness", {})
        c = "yes" if corr and all(v["identical"] for v in corr.values()) else \
            ("NO: " + ", ".join(k for k, v in corr.items() if not v["identical"]) if corr else "—")
        rss = " / ".join(fmt_mb((r.get(k) or {}).get("tree_peak_rss_mb")) for k in ("ours", "ours_scan", *PEERS))
        call = " / ".join(fmt_mb((r.get(k) or {}).get("call_peak_mb")) for k in ("ours", *PEERS))
        call += (f" ({fmt_mb(o.get('result_mb'))} / {fmt_mb(r['duckdb_parquet'].get('result_mb'))})"
                 if o.get("result_mb") is not None else "")
        sc, oc = r.get("ours_scan"), r.get("ours_cluster")
        path = ", ".join(o.get("paths", [])) or "—"
        L.append(f"| {r['description']} | {path} | {t(o)} | {t(sc)} | {_ratio(o, sc) if sc else '—'} | "
                 f"{t(r.get('ours_cluster'))} | {_ratio(oc, r['duckdb_parquet']) if oc else '—'} | "
                 f"{t(r['duckdb_parquet'])} | {t(r['duckdb_table'])} | "
                 f"{t(r['polars'])} | {_ratio(o, r['duckdb_parquet'])} | {_ratio(o, r['duckdb_table'])} | "
                 f"{_ratio(o, r['polars'])} | {'yes' if ok_duck else 'no'} | {'yes' if ok else 'no'} | {rss} | {call} | {o.get('rows', 0):,} | {c} |")
    pr = rep.get("scenarios", {}).get("per_roi")
    if pr and pr["ours"].get("call_peak_mb") is not None and pr["duckdb_parquet"].get("call_peak_mb") is not None:
        o, d = pr["ours"], pr["duckdb_parquet"]
        cap = d["call_peak_mb"] + o["result_mb"]
        L += ["", f"`fetch_adjacencies(None, None)` peak RSS of one call: ours {fmt_mb(o['call_peak_mb'])} MB vs "
                  f"DuckDB on Parquet's {fmt_mb(d['call_peak_mb'])} MB + our result ({fmt_mb(o['result_mb'])} MB, "
                  f"`memory_usage(deep=True)`) = {fmt_mb(cap)} MB: target "
                  f"{'**met**' if o['call_peak_mb'] <= cap else '**not met**'}."]
    L += ["", "Queries (DuckDB):", ""]
    for name, r in rep.get("scenarios", {}).items():
        q = r["duckdb_parquet"].get("query")
        if q:
            L.append(f"- `{name}`: `{q}`")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
