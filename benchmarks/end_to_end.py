"""End to end, raw Parquet -> type x type matrix inside 10 ROIs, ingest included, vs DuckDB's one query.

``python -m benchmarks.end_to_end --synapses 20M``

Data: the cached synthetic whole brain of ``benchmarks/_common.py``
(``dataset`` + ``ensure_rois``) written once, not timed, as a release-like
Parquet file ``release_roi_names.parquet``: ``pre, post`` int64 bodyIds,
``roi`` the postsynaptic site's ROI *name* (dictionary strings, null = none),
``confidence`` float32, rows in random order (as a download is: not sorted by
body), plus the neuron table ``neurons.parquet`` (``root_id, cell_type``).
The 10 ROIs are those of ``benchmarks/filtered.py`` (every tenth name in
sorted order).

Measured, each in a fresh process (``benchmarks._common.run_child``; peak RSS
of the process tree):

* ours: ``ingest(file, store, neurons=..., columns=...)`` then
  ``conn.adjacency(by="type", rois=<10 ROIs>)`` (dask threads), ingest and
  query timed separately and together;
* DuckDB: one query on the same two files (``read_parquet`` joined with the
  neuron table twice, ``WHERE roi IN (...)``, ``GROUP BY`` both types), 2
  threads, result into Arrow.

Correctness, same run: every nonzero (type_pre, type_post, weight) of ours
equals DuckDB's row, and no row is missing on either side.

Results: ``benchmarks/results/end_to_end.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ._common import (
    RESULTS,
    dataset,
    ensure_rois,
    fmt_mb,
    human,
    machine_info,
    parse_int,
    run_child,
    ten_rois,
    write_json,
    write_text,
)

__all__ = ["main"]


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def _write_release(store: str, out: str, seed: int) -> dict:
    """The store's rows as a release-like Parquet file: bodyIds, ROI names, confidence, in random row order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import connectome_dask as cd

    conn = cd.open(store, set_default=False)
    body = conn.neurons["bodyId"].to_numpy(np.int64)
    names = pa.array(list(conn.roi_names), pa.string())
    n = conn.n_synapses
    step = 1 << 22
    rng = np.random.default_rng(seed)
    order = rng.permutation(-(-n // step))  # row groups of the store, shuffled, each shuffled inside
    schema = pa.schema([("pre", pa.int64()), ("post", pa.int64()), ("roi", pa.dictionary(pa.int16(), pa.string())),
                        ("confidence", pa.float32())])
    tmp = Path(out).with_suffix(".tmp")
    t0 = time.perf_counter()
    with pq.ParquetWriter(tmp, schema, compression="snappy") as w:
        for k in order:
            s = int(k) * step
            d = conn.read_synapses(["pre", "post", "roi_post", "confidence"], s, min(s + step, n))
            p = rng.permutation(len(d["pre"]))
            code = d["roi_post"][p].astype(np.int16)
            roi = pa.DictionaryArray.from_arrays(pa.array(code, mask=code < 0), names)
            w.write_table(pa.table({"pre": body[d["pre"][p]], "post": body[d["post"][p]], "roi": roi,
                                    "confidence": d["confidence"][p]}, schema=schema), row_group_size=1 << 20)
    tmp.rename(out)
    return {"seconds": time.perf_counter() - t0, "rows": n, "mb": Path(out).stat().st_size / 2**20}


def _rois(store: str) -> list[str]:
    import connectome_dask as cd

    return ten_rois(cd.open(store, set_default=False).roi_names)


def task_ours(release: str, neurons: str, store: str, rois: str, out: str) -> dict:
    """Ingest the release file, then the type x type matrix inside the ROIs; the nonzeros to ``out``."""
    import dask
    import pyarrow as pa
    import pyarrow.parquet as pq

    from connectome_dask.ingest import ingest

    roi_list = json.loads(rois)
    t0 = time.perf_counter()
    conn = ingest(release, store, neurons=neurons, overwrite=True, progress=False,
                  columns={"pre": "pre", "post": "post", "roi_post": "roi", "confidence": "confidence"})
    t1 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        A = conn.adjacency(by="type", rois=roi_list, progress=False)
    t2 = time.perf_counter()
    m = np.asarray(A.data)
    i, j = np.nonzero(m)
    labels_pre = np.asarray(A.coords[A.dims[0]].values, dtype=object)
    labels_post = np.asarray(A.coords[A.dims[1]].values, dtype=object)
    pq.write_table(pa.table({"type_pre": labels_pre[i].astype(str), "type_post": labels_post[j].astype(str),
                             "weight": m[i, j].astype(np.int64)}), out)
    return {"seconds": t2 - t0, "ingest_s": t1 - t0, "query_s": t2 - t1, "nonzero": int(len(i)),
            "total": int(m.sum()), "shape": list(m.shape)}


def task_duckdb(release: str, neurons: str, rois: str, out: str) -> dict:
    """DuckDB's one query on the raw files, result into Arrow then Parquet (the write is not timed)."""
    import duckdb
    import pyarrow.parquet as pq

    roi_list = json.loads(rois)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    t0 = time.perf_counter()
    res = con.execute(
        "SELECT a.cell_type AS type_pre, b.cell_type AS type_post, count(*) AS weight "
        "FROM read_parquet($release) s JOIN read_parquet($neurons) a ON s.pre = a.root_id "
        "JOIN read_parquet($neurons) b ON s.post = b.root_id "
        "WHERE s.roi IN (SELECT unnest($rois)) AND a.cell_type IS NOT NULL AND b.cell_type IS NOT NULL "
        "GROUP BY 1, 2", {"release": release, "neurons": neurons, "rois": roi_list}).to_arrow_table()
    dt = time.perf_counter() - t0
    pq.write_table(res, out)
    return {"seconds": dt, "rows": res.num_rows, "total": int(res.column("weight").to_numpy().sum())}


def task_compare(ours: str, theirs: str) -> dict:
    import pandas as pd

    a = pd.read_parquet(ours).set_index(["type_pre", "type_post"])["weight"]
    b = pd.read_parquet(theirs).set_index(["type_pre", "type_post"])["weight"]
    j = pd.concat([a.rename("ours"), b.rename("duckdb")], axis=1)
    return {"rows_union": len(j), "only_ours": int(j["duckdb"].isna().sum()), "only_duckdb": int(j["ours"].isna().sum()),
            "differing": int((j["ours"] != j["duckdb"]).sum()), "equal": bool(j["ours"].equals(j["duckdb"]))}


def render(rep: dict) -> str:
    o, d, c = rep["ours"], rep["duckdb"], rep["compare"]
    ok = c.get("equal") and c.get("differing") == 0
    lines = [
        f"# End to end: raw Parquet -> type x type inside 10 ROIs ({human(rep['n_synapses'])} synapses)", "",
        f"{rep['machine'].get('cpus', '?')} CPUs; {rep['date']}; load average {rep['machine'].get('loadavg', ['?'])[0]} "
        "at the start; each side in a fresh process; peak RSS = process tree. The file: "
        f"`release_roi_names.parquet` ({fmt_mb(rep['release']['mb'])} MB: `pre, post` bodyIds, `roi` names, "
        "`confidence`; rows in random order) and `neurons.parquet` (`root_id, cell_type`). "
        f"ROIs: {', '.join(rep['rois'])}.", "",
        "| | seconds | peak RSS (MB) | ratio to DuckDB |", "|---|---:|---:|---:|",
        f"| ours: `ingest` + `adjacency(by='type', rois=...)` | {o['seconds']:.2f} | {fmt_mb(o.get('tree_peak_rss_mb'))} | "
        f"{o['seconds'] / d['seconds']:.2f}x |",
        f"| of which `ingest` (store written, per-ROI table included) | {o['ingest_s']:.2f} | | "
        f"{o['ingest_s'] / d['seconds']:.2f}x |",
        f"| of which the query on the store | {o['query_s']:.2f} | | {o['query_s'] / d['seconds']:.2f}x |",
        f"| DuckDB: one query on the two files | {d['seconds']:.2f} | {fmt_mb(d.get('tree_peak_rss_mb'))} | 1.00x |",
        "",
        f"Target: ours <= 1.0x DuckDB's one query, ingest included: **{'met' if o['seconds'] <= d['seconds'] else 'not met'}**.",
        f"Correctness (same run): {o['nonzero']:,} nonzero type pairs (total {o['total']:,}) vs DuckDB's "
        f"{d['rows']:,} rows (total {d['total']:,}); {c['differing']} differing, {c['only_ours']} only ours, "
        f"{c['only_duckdb']} only DuckDB: {'identical' if ok else 'DIFFERENT'}.",
        "", f"Reproduce: `python -m benchmarks.end_to_end --synapses {rep['n_synapses']}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point (``python -m benchmarks.end_to_end``)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.end_to_end", description=__doc__.splitlines()[0])
    ap.add_argument("--synapses", type=parse_int, default=20_000_000)
    ap.add_argument("--neurons", type=parse_int, default=139_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    info = dataset(a.synapses, a.neurons, a.seed, parquet=True, log=log)
    ensure_rois(info, log=log)
    work = Path(info["store"]).parent / f"e2e_{Path(info['store']).name}"
    work.mkdir(parents=True, exist_ok=True)
    release = work / "release_roi_names.parquet"
    rep: dict = {"n_synapses": a.synapses, "machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M")}
    if not release.exists():
        log("writing the release-like Parquet file ...")
        rep["release"] = run_child("benchmarks.end_to_end:_write_release", store=info["store"], out=str(release),
                                   seed=a.seed)
    rep["release"] = {"mb": release.stat().st_size / 2**20}
    rois = _rois(info["store"])
    rep["rois"] = rois
    npq = info["neurons_parquet"]
    log("ours: ingest + type x type ...")
    rep["ours"] = run_child("benchmarks.end_to_end:task_ours", release=str(release), neurons=npq,
                            store=str(work / "store"), rois=json.dumps(rois), out=str(work / "ours.parquet"))
    log(f"   {rep['ours'].get('seconds', float('nan')):.2f} s")
    log("DuckDB: one query ...")
    rep["duckdb"] = run_child("benchmarks.end_to_end:task_duckdb", release=str(release), neurons=npq,
                              rois=json.dumps(rois), out=str(work / "duckdb.parquet"))
    log(f"   {rep['duckdb'].get('seconds', float('nan')):.2f} s")
    rep["compare"] = run_child("benchmarks.end_to_end:task_compare", ours=str(work / "ours.parquet"),
                               theirs=str(work / "duckdb.parquet"))
    shutil.rmtree(work / "store", ignore_errors=True)
    suffix = "" if a.synapses == 20_000_000 else f"_{human(a.synapses)}"
    write_json(a.results / f"end_to_end{suffix}.json", rep)
    write_text(a.results / f"end_to_end{suffix}.md", render(rep))
    log(render(rep))
    return rep


if __name__ == "__main__":
    main()
