"""Whole-brain peer benchmarks: ``python -m benchmarks`` (``make bench``).

Builds (once, cached under ``benchmarks/data/``) a synthetic whole-brain
dataset — by default 139 k neurons, ~8 k cell types, 50 M synapses inside the
75 JFRC2 neuropil meshes of ``../shared/data/meshes/jfrc2np`` (procedural
meshes if absent) — as a connectome store *and* as a CAVE-style Parquet file
plus a neuron table (``root_id, cell_type``), then measures connectome_dask
and its peers on the same data in the same run, each measurement in a fresh
process:

=============  ==========================================================  =====================
benchmark      ours                                                        peers
=============  ==========================================================  =====================
pairs          ``Connectome.adjacency()``, ``aggregate.pair_counts``       DuckDB, polars, pandas
types          ``Connectome.adjacency(by="type")``                          DuckDB join + group by
one_neuron     ``fetch_synapses(bodyId)``, ``synapse_rows``+``take_synapses``  DuckDB filter
adjacencies    ``fetch_adjacencies(None, None)`` (after ``assign_rois``)
matrix         ``benchmarks/matrix.py`` on the same store
ingest         ``benchmarks/ingest.py``'s ``measure("ingest")`` on the same Parquet
dialects       ``benchmarks/dialects.py``: ingest per release dialect        DuckDB scan + pair counts
filtered       ``benchmarks/filtered.py``: ROI / confidence / min_weight /   DuckDB (Parquet, own table), polars
               subset / type filtered aggregations
end_to_end     ``benchmarks/end_to_end.py``: raw Parquet -> type x type in   DuckDB's one query
               10 ROIs, ``ingest`` included
rois           ``benchmarks/rois.py`` on the jfrc2np meshes                 trimesh+embree, ncollpyde
=============  ==========================================================  =====================

Results: ``benchmarks/results/peers.{md,json}`` and ``summary.md`` (files of
runs at other sizes get a suffix, e.g. ``peers_2M.md``). Written after every
benchmark, so an interrupted run keeps what it measured.

Usage::

    python -m benchmarks                       # 50 M synapses, 139 k neurons, everything
    python -m benchmarks --quick               # 2 M synapses smoke run
    python -m benchmarks --only pairs,types --repeat 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import peers
from ._common import (
    JFRC2NP,
    PY,
    RESULTS,
    ROOT,
    dataset,
    ensure_rois,
    fmt_mb,
    fmt_s,
    human,
    machine_info,
    parse_int,
    run_child,
    write_json,
    write_text,
)

ALL = ("pairs", "types", "rois", "one_neuron", "adjacencies", "matrix", "ingest", "dialects", "filtered", "end_to_end")
DUCKDB_REF = {"pairs": 3.4, "types": 15.0, "pandas_pairs": 22.0}


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--synapses", type=parse_int, default=50_000_000)
    ap.add_argument("--neurons", type=parse_int, default=139_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="2 M synapse smoke run")
    ap.add_argument("--only", default=",".join(ALL), help=f"comma list of {','.join(ALL)}")
    ap.add_argument("--repeat", type=int, default=2, help="timed repetitions per measurement (best reported)")
    ap.add_argument("--no-cluster", action="store_true", help="skip the 2-worker LocalCluster runs")
    ap.add_argument("--no-profile", action="store_true", help="do not profile goals that are missed")
    ap.add_argument("--bodies", type=int, default=25, help="random bodies for one_neuron")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--render-only", action="store_true", help="rewrite the .md files from the .json, measure nothing")
    args = ap.parse_args(argv)
    if args.quick:
        args.synapses = 2_000_000
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in ALL]
    if bad:
        ap.error(f"unknown benchmark(s) {bad}; choose from {','.join(ALL)}")
    if "dialects" in only:  # release files as downloaded: its own files, no whole-brain store needed
        from . import dialects

        dialects.main(["--rows", str(args.synapses), "--results", str(args.results)])
        only = [s for s in only if s != "dialects"]
        if not only:
            return {}
    if "filtered" in only:  # benchmarks/filtered.py: its own result file (filtered{_size}.md)
        from . import filtered

        filtered.main(["--synapses", str(args.synapses), "--neurons", str(args.neurons), "--seed", str(args.seed),
                       "--repeat", str(args.repeat), "--results", str(args.results)])
        only = [s for s in only if s != "filtered"]
        if not only:
            return {}

    if "end_to_end" in only:  # benchmarks/end_to_end.py: raw Parquet -> matrix, ingest included
        from . import end_to_end

        end_to_end.main(["--synapses", str(args.synapses), "--neurons", str(args.neurons), "--seed", str(args.seed),
                         "--results", str(args.results)])
        only = [s for s in only if s != "end_to_end"]
        if not only:
            return {}

    suffix = "" if args.synapses == 50_000_000 else f"_{human(args.synapses)}"
    jpath = args.results / f"peers{suffix}.json"
    report = json.loads(jpath.read_text()) if jpath.exists() else {}
    if report.get("n_synapses") not in (None, args.synapses):
        report = {}
    if args.render_only:
        write_text(args.results / f"peers{suffix}.md", render(report))
        write_text(args.results / f"summary{suffix}.md", render_summary(report))
        return report
    log(f"dataset: {human(args.synapses)} synapses, {args.neurons:,} neurons")
    info = dataset(args.synapses, args.neurons, args.seed, parquet=True, log=log)
    old_key = report.get("dataset", {}).get("key")
    for b in report["benchmarks"].values() if "benchmarks" in report else ():
        b.setdefault("dataset_key", old_key)  # results keep the dataset (store format) they were measured on
    report.update({"n_synapses": args.synapses, "n_neurons": args.neurons, "dataset": info,
                   "machine": machine_info(), "repeat": args.repeat})
    report.setdefault("benchmarks", {})
    work = Path(info["folder"]) / "check"
    ctx = {"args": args, "info": info, "work": work, "report": report}

    def save() -> None:
        write_json(jpath, report)
        for fname, fn in ((f"peers{suffix}.md", render), (f"summary{suffix}.md", render_summary)):
            try:
                text = fn(report)
            except Exception:  # noqa: BLE001 - never lose the JSON because of a rendering bug
                import traceback

                text = "rendering failed:\n\n```\n" + traceback.format_exc() + "```\n"
                log(text)
            write_text(args.results / fname, text)

    for name in [b for b in ALL if b in only]:
        log(f"== {name}")
        t0 = time.perf_counter()
        try:
            res = BENCH[name](ctx)
        except Exception as e:  # noqa: BLE001 - keep going, record the failure
            import traceback

            traceback.print_exc()
            res = {"error": f"{type(e).__name__}: {e}"}
        res["benchmark_wall_s"] = time.perf_counter() - t0
        res["dataset_key"] = info["key"]
        res["date"] = time.strftime("%Y-%m-%d %H:%M")
        report["benchmarks"][name] = res
        save()
    shutil.rmtree(work, ignore_errors=True)
    save()
    print(render_summary(report))
    return report


# ----------------------------------------------------------------------------- benchmarks


def _child(func: str, **kw) -> dict:
    r = run_child(func, **kw)
    if "error" in r:
        log(f"   {func} FAILED: {r['error'][-600:]}")
    else:
        log(f"   {func} {kw.get('api', '')} {kw.get('scheduler', '')}: {r.get('seconds', 0):.2f} s, "
            f"tree peak {r['tree_peak_rss_mb']:.0f} MB")
    return r


def bench_pairs(ctx) -> dict:
    a, info, work = ctx["args"], ctx["info"], ctx["work"]
    store, pq = info["store"], info["parquet"]
    R = a.repeat
    res: dict = {"ours": {}, "peers": {}}
    res["ours"]["adjacency_threads"] = _child("benchmarks.peers:task_ours_pairs", store=store, api="adjacency",
                                              scheduler="threads", repeat=R, out=str(work / "ours_adj"))
    res["ours"]["pair_counts_threads"] = _child("benchmarks.peers:task_ours_pairs", store=store,
                                                api="pair_counts", scheduler="threads", repeat=R,
                                                out=str(work / "ours_pc"))
    if not a.no_cluster:
        for api in ("adjacency", "pair_counts"):
            res["ours"][f"{api}_cluster"] = _child("benchmarks.peers:task_ours_pairs", store=store, api=api,
                                                   scheduler="cluster", repeat=R)
    res["peers"]["duckdb"] = _child("benchmarks.peers:task_duckdb_pairs", parquet=pq, repeat=R,
                                    out=str(work / "duckdb_pairs"))
    res["peers"]["polars"] = _child("benchmarks.peers:task_polars_pairs", parquet=pq, repeat=R)
    res["peers"]["pandas"] = _child("benchmarks.peers:task_pandas_pairs", parquet=pq, repeat=1)
    chk = {}
    if (work / "duckdb_pairs").exists():
        for k in ("ours_adj", "ours_pc"):
            if (work / k).exists():
                chk[f"{k}_vs_duckdb"] = peers.compare_pairs(work / k, work / "duckdb_pairs")
        d = res["peers"]["duckdb"]
        for k in ("polars", "pandas"):
            p = res["peers"][k]
            if "error" not in p and "error" not in d:
                chk[f"{k}_vs_duckdb_counts"] = {"n_pairs_equal": p["nnz"] == d["nnz"], "total_equal": p["total"] == d["total"]}
    res["correctness"] = chk
    shutil.rmtree(work, ignore_errors=True)
    ours = res["ours"]["adjacency_threads"]
    duck = res["peers"]["duckdb"]
    res["goal"] = "ours (Connectome.adjacency(), threaded) <= 1.0x DuckDB's time"
    if "seconds" in ours and "seconds" in duck:
        res["goal_met"] = ours["seconds"] <= duck["seconds"]
        if not res["goal_met"] and not a.no_profile:
            res["profile"] = _child("benchmarks.peers:task_profile", store=store, what="pairs")
    return res


def bench_types(ctx) -> dict:
    a, info, work = ctx["args"], ctx["info"], ctx["work"]
    R = a.repeat
    res: dict = {"ours": {}, "peers": {}}
    res["ours"]["threads"] = _child("benchmarks.peers:task_ours_types", store=info["store"], scheduler="threads",
                                    repeat=R, out=str(work / "ours_types"))
    if not a.no_cluster:
        res["ours"]["cluster"] = _child("benchmarks.peers:task_ours_types", store=info["store"],
                                        scheduler="cluster", repeat=R)
    res["peers"]["duckdb"] = _child("benchmarks.peers:task_duckdb_types", parquet=info["parquet"],
                                    neurons=info["neurons_parquet"], repeat=R, out=str(work / "duckdb_types"))
    if (work / "ours_types").exists() and (work / "duckdb_types").exists():
        res["correctness"] = {"ours_vs_duckdb": peers.compare_types(work / "ours_types", work / "duckdb_types")}
    shutil.rmtree(work, ignore_errors=True)
    ours, duck = res["ours"]["threads"], res["peers"]["duckdb"]
    res["goal"] = "ours (Connectome.adjacency(by='type'), threaded) >= 5x faster than DuckDB"
    if "seconds" in ours and "seconds" in duck:
        res["goal_met"] = duck["seconds"] / ours["seconds"] >= 5
        if not res["goal_met"] and not a.no_profile:
            res["profile"] = _child("benchmarks.peers:task_profile", store=info["store"], what="types")
    return res


def bench_one_neuron(ctx) -> dict:
    a, info = ctx["args"], ctx["info"]
    import pandas as pd

    nd = pd.read_parquet(Path(info["store"]) / "neurons.parquet", columns=["bodyId", "pre", "post"])
    has = nd[(nd["pre"] + nd["post"]) > 0]
    rng = np.random.default_rng(a.seed + 7)
    pick = has.iloc[np.sort(rng.choice(len(has), min(a.bodies, len(has)), replace=False))]
    bodies = [int(b) for b in rng.permutation(pick["bodyId"].to_numpy())]
    res = {"bodies": bodies,
           "synapse_rows_per_body": {"median": float(np.median((pick["pre"] + pick["post"]).to_numpy())),
                                     "max": int((pick["pre"] + pick["post"]).max())}}
    res["ours"] = _child("benchmarks.peers:task_ours_one_neuron", store=info["store"], bodies=bodies)
    res["peers"] = {"duckdb": _child("benchmarks.peers:task_duckdb_one_neuron", parquet=info["parquet"],
                                     bodies=bodies)}
    o, d = res["ours"], res["peers"]["duckdb"]
    if "error" not in o and "error" not in d:
        res["correctness"] = {
            "raw_rows_equal_duckdb": o["rows_raw"] == d["rows"],
            **({"synapses_of_rows_equal_duckdb": o["rows_synapses_of"] == d["rows"]} if "rows_synapses_of" in o else {}),
            "fetch_synapses_conf0_equal_duckdb_first5": o["rows_fetch_synapses_conf0_first5"] == d["rows"][:5],
        }
        res["goal"] = "median per-body `fetch_synapses` well under 100 ms"
        res["goal_met"] = o["fetch_synapses_ms"]["median"] < 100
    return res


def bench_adjacencies(ctx) -> dict:
    info = ctx["info"]
    res = {"assign_rois": ensure_rois(info, log=log)}
    res["ours"] = _child("benchmarks.peers:task_ours_fetch_adjacencies", store=info["store"], scheduler="threads")
    if not ctx["args"].no_profile:
        res["profile"] = _child("benchmarks.peers:task_profile", store=info["store"], what="fetch_adjacencies")
    return res


def bench_matrix(ctx) -> dict:
    info, a = ctx["info"], ctx["args"]
    tmp = ctx["work"] / "matrix"
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = [PY, "-m", "benchmarks.matrix", "--store", info["store"], "--results", str(tmp),
           "--data-dir", str(tmp)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return {"error": p.stderr[-3000:], "command": " ".join(cmd)}
    sfx = human(a.synapses)
    rep = json.loads((tmp / "matrix.json").read_text())
    for ext in ("json", "md"):
        shutil.copy(tmp / f"matrix.{ext}", a.results / f"matrix_{sfx}.{ext}")
    shutil.rmtree(tmp, ignore_errors=True)
    return {"stages": rep["stages"], "result_file": f"matrix_{sfx}.md", "wall_s": time.perf_counter() - t0,
            "scheduler": rep.get("scheduler")}


def bench_ingest(ctx) -> dict:
    info = ctx["info"]
    out = Path(info["folder"]) / "ingested_store"
    r = _child("benchmarks.peers:task_ingest", parquet=info["parquet"], out=str(out))
    if "error" not in r:
        r["same_counts_as_generated_store"] = (r.get("n_synapses") == info["n_synapses"])
        r["Mrows_per_s"] = info["n_synapses"] / r["seconds"] / 1e6
    return r


def bench_rois(ctx) -> dict:
    a = ctx["args"]
    tmp = ctx["work"] / "rois"
    tmp.mkdir(parents=True, exist_ok=True)
    if (JFRC2NP / "hierarchy.json").exists():
        meshes, scale, tag = str(JFRC2NP), "1000", "jfrc2np"
    else:
        from connectome_dask import datasets

        meshes, scale, tag = str(datasets.meshes_for(ctx["info"]["store"])), "1", "procedural"
    cmd = [PY, "-m", "benchmarks.rois", "--meshes", meshes, "--scale", scale, "--out", str(tmp),
           "--voxel-sizes", "", "--n-points", str(1_000_000 if not a.quick else 200_000)]
    p = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return {"error": p.stderr[-3000:], "command": " ".join(cmd)}
    r = json.loads((tmp / "rois.json").read_text())
    for ext in ("json", "md"):
        shutil.copy(tmp / f"rois.{ext}", a.results / f"rois_{tag}.{ext}")
    shutil.rmtree(tmp, ignore_errors=True)
    return {"meshes": tag, "result_file": f"rois_{tag}.md", "command": " ".join(cmd[2:]), "raw": r}


BENCH = {"pairs": bench_pairs, "types": bench_types, "one_neuron": bench_one_neuron,
         "adjacencies": bench_adjacencies, "matrix": bench_matrix, "ingest": bench_ingest, "rois": bench_rois}


# ----------------------------------------------------------------------------- rendering


def _t(r: dict | None) -> str:
    if not r:
        return "—"
    if "error" in r:
        return "FAILED"
    return fmt_s(r.get("seconds"))


def _rss(r: dict | None) -> str:
    return "—" if not r or "error" in r else fmt_mb(r.get("tree_peak_rss_mb"))


def _ratio(a: dict | None, b: dict | None) -> str:
    """time(a) / time(b)."""
    if not a or not b or "seconds" not in a or "seconds" not in b:
        return "—"
    return f"{a['seconds'] / b['seconds']:.2f}x"


def _types_note(r: dict) -> list[str]:
    p = r.get("profile")
    if not p or "top_tottime" not in p:
        return []
    own = {x["function"].split("(")[-1].rstrip(")"): x["tottime_s"] for x in p["top_tottime"]}
    dense = own.get("block_add_pairs", 0) + own.get("_combine_groups", 0)
    runs = own.get("pair_runs", 0) + own.get("row_mask", 0)
    return ["", f"Where the time goes (profile below, {p['seconds_sync_profiled']:.1f} s on one thread): "
            f"{dense:.1f} s in the dense ~{r['ours']['threads'].get('shape', ['?'])[0]:,}^2 partial blocks "
            "(`block_add_pairs` scattering into a zeroed int32 block per partition, `_combine_groups` "
            f"summing them into int64), {runs:.1f} s in the run-length pair kernels, the rest mostly reading + "
            "decompressing `pre`/`post` (lock `acquire`). `group_counts` uses partitions of up to 32 Mi rows "
            "for 8 k groups, so 50 M rows make 2 unequal tasks on 2 threads."]


def _one_neuron_note(o: dict) -> str:
    c = o.get("chunks_touched")
    if not c:
        return ""
    return (f"Where the time goes (raw path): index lookup median {o['raw_index_ms']['median']:.1f} ms, reading rows "
            f"median {o['raw_take_ms']['median']:.1f} ms. A body's output rows are contiguous (median "
            f"{c['pre_median']:.0f} chunk per column touched) but its input rows are spread over the table (median "
            f"{c['post_median']:.0f}, max {c['post_max']} of the {c['chunks_per_column']} chunks of "
            f"{c['chunk_rows']:,} rows); zarr decodes every touched chunk whole, for each of the "
            f"{c['columns_read']} columns read.")


def _speedup(peer: dict | None, ours: dict | None) -> str:
    """time(peer) / time(ours)."""
    if not peer or not ours or "seconds" not in peer or "seconds" not in ours:
        return "—"
    return f"{peer['seconds'] / ours['seconds']:.1f}x"


def _profile_lines(p: dict | None) -> list[str]:
    if not p or "top_tottime" not in p:
        return []
    out = ["", f"cProfile of a second (warm) call on the synchronous scheduler ({p['seconds_sync_profiled']:.1f} s "
           "in total; top functions by own time; `acquire` of a lock = waiting for zarr's I/O thread, i.e. "
           "reading + decompressing chunks):", "", "| function | calls | own s | cumulative s |", "|---|---:|---:|---:|"]
    for r in p["top_tottime"][:15]:
        out.append(f"| `{r['function']}` | {r['calls']} | {r['tottime_s']:.2f} | {r['cumtime_s']:.2f} |")
    if p.get("package_cumtime"):
        out += ["", "connectome_dask functions by cumulative time:", "", "| function | calls | cumulative s |",
                "|---|---:|---:|"]
        for r in p["package_cumtime"]:
            out.append(f"| `{r['function']}` | {r['calls']} | {r['cumtime_s']:.2f} |")
    return out


def render(rep: dict) -> str:
    B = rep.get("benchmarks", {})
    info = rep["dataset"]
    m = rep["machine"]
    b = info.get("build", {})
    L = [
        f"# Whole-brain peer benchmarks ({human(rep['n_synapses'])} synapses)",
        "",
        f"Synthetic whole brain: {rep['n_synapses']:,} synapses, {rep['n_neurons']:,} neurons, "
        f"{b.get('n_types', '?'):,} cell types, meshes `{Path(info['meshes']).name}`; store "
        f"{fmt_mb(b.get('store_mb'))} MB, CAVE Parquet {fmt_mb(b.get('parquet_mb'))} MB (zstd). "
        f"Generated in {fmt_s(b.get('seconds'))} s (store + Parquet, cached under `benchmarks/data/{info['key']}`).",
        "",
        f"Machine: {m['cpus']} CPUs, {m['memory_gib']} GiB, Python {m['python']}; load average at the start "
        f"{m['loadavg'][0]} (shared machine: peers and ours are measured in the same run, compare ratios). "
        f"{m['date']}; package commit {m.get('git', {}).get('commit', '?')}"
        f"{' (with uncommitted changes)' if m.get('git', {}).get('package_dirty') else ''}.",
        "",
        "Every measurement runs in a fresh process. Times: best of "
        f"{rep.get('repeat', 1)} runs inside that process (first run shown too), excluding interpreter start "
        "and imports, including opening the store / Parquet file. Peak RSS: highest sum of RSS over the "
        "measuring process and all its descendants (psutil, 50 ms polling), i.e. client + nannies + workers "
        "for the LocalCluster runs. \"threads\" = dask's default threaded scheduler inside the measuring "
        "process (2 threads); \"LocalCluster\" = `connectome_dask.cluster.local_cluster(n_workers=2, "
        "threads_per_worker=1, memory_limit='6GiB')` started in the measuring process (start-up not timed).",
    ]
    stale = {k: v.get("dataset_key") for k, v in B.items() if v.get("dataset_key") not in (None, info["key"])}
    if stale:
        L += ["", "**Note:** " + ", ".join(f"`{k}`" for k in stale) + " were measured on an earlier cached dataset "
              f"(`{', '.join(sorted(set(stale.values())))}`: same generator parameters, store written by an earlier "
              "version of the package); the other sections on the dataset above."]
    if "pairs" in B:
        r = B["pairs"]
        L += ["", f"## Neuron-pair counts ({human(rep['n_synapses'])} synapses -> (pre, post) counts)", ""]
        if "error" in r:
            L.append(f"FAILED: {r['error']}")
        else:
            duck = r["peers"].get("duckdb")
            L += ["| implementation | seconds (best) | first run s | peak RSS MB | vs DuckDB | pairs |",
                  "|---|---:|---:|---:|---:|---:|"]
            names = {"adjacency_threads": "ours `Connectome.adjacency()` (sparse xarray), threads",
                     "pair_counts_threads": "ours `aggregate.pair_counts`, threads",
                     "adjacency_cluster": "ours `Connectome.adjacency()`, 2-worker LocalCluster",
                     "pair_counts_cluster": "ours `aggregate.pair_counts`, 2-worker LocalCluster"}
            for k, lab in names.items():
                v = r["ours"].get(k)
                if v:
                    L.append(f"| {lab} | {_t(v)} | {fmt_s(v.get('first_s'))} | {_rss(v)} | {_ratio(v, duck)} | "
                             f"{v.get('nnz', 0):,} |")
            for k, lab in (("duckdb", "DuckDB `GROUP BY pre, post` -> Arrow"),
                           ("polars", "polars `scan_parquet().group_by().agg(len())`"),
                           ("pandas", "pandas `read_parquet` + `groupby().size()`")):
                v = r["peers"].get(k)
                if v:
                    L.append(f"| {lab} | {_t(v)} | {fmt_s(v.get('first_s'))} | {_rss(v)} | {_ratio(v, duck)} | "
                             f"{v.get('nnz', 0):,} |")
            L += ["", f"Goal: {r.get('goal')} — **{'met' if r.get('goal_met') else 'NOT met'}**.",
                  "", "Correctness (same run): " + json.dumps(r.get("correctness", {}))]
            L += _profile_lines(r.get("profile"))
    if "types" in B:
        r = B["types"]
        L += ["", "## Type x type counts", ""]
        if "error" in r:
            L.append(f"FAILED: {r['error']}")
        else:
            duck = r["peers"].get("duckdb")
            L += ["| implementation | seconds (best) | first run s | peak RSS MB | DuckDB time / this | non-zero cells |",
                  "|---|---:|---:|---:|---:|---:|"]
            for k, lab in (("threads", "ours `Connectome.adjacency(by='type')`, threads"),
                           ("cluster", "ours `Connectome.adjacency(by='type')`, 2-worker LocalCluster")):
                v = r["ours"].get(k)
                if v:
                    L.append(f"| {lab} | {_t(v)} | {fmt_s(v.get('first_s'))} | {_rss(v)} | {_ratio(duck, v)} | "
                             f"{v.get('nonzero', 0):,} (shape {v.get('shape')}) |")
            if duck:
                L.append(f"| DuckDB join x2 + `GROUP BY pre_type, post_type` | {_t(duck)} | "
                         f"{fmt_s(duck.get('first_s'))} | {_rss(duck)} | 1.00x | {duck.get('nonzero', 0):,} |")
            L += ["", f"Goal: {r.get('goal')} — **{'met' if r.get('goal_met') else 'NOT met'}**.",
                  "", "Correctness (same run): " + json.dumps(r.get("correctness", {}))]
            L += _types_note(r)
            L += _profile_lines(r.get("profile"))
    if "one_neuron" in B:
        r = B["one_neuron"]
        L += ["", "## One neuron's synapses", ""]
        bad = r.get("error") or r.get("ours", {}).get("error") or r.get("peers", {}).get("duckdb", {}).get("error")
        if bad:
            L.append(f"FAILED: {bad[-1500:]}")
        else:
            o, d = r["ours"], r["peers"]["duckdb"]
            L += [f"{len(r['bodies'])} random bodies (with at least one synapse; median "
                  f"{r['synapse_rows_per_body']['median']:.0f} synapse rows as pre or post, max "
                  f"{r['synapse_rows_per_body']['max']:,}); every body's outputs and inputs. Same bodies, same order "
                  "for every implementation; one fresh process per implementation.", "",
                  "| implementation | median ms | p90 ms | first (cold) ms | max ms | peak RSS MB |",
                  "|---|---:|---:|---:|---:|---:|"]
            for lab, v, proc in (("ours `fetch_synapses(bodyId)`", o["fetch_synapses_ms"], o),
                                 ("ours `synapse_rows` (pre+post) + `take_synapses`", o["raw_ms"], o),
                                 *([("ours `synapses_of` (pre+post; clustered post-order index)",
                                     o["synapses_of_ms"], o)] if "synapses_of_ms" in o else []),
                                 ("DuckDB `WHERE pre = b OR post = b` on the Parquet", d["duckdb_ms"], d)):
                L.append(f"| {lab} | {v['median']:.1f} | {v['p90']:.1f} | {v['first']:.1f} | {v['max']:.1f} | "
                         f"{_rss(proc)} |")
            L += ["", f"Goal: {r.get('goal')} — **{'met' if r.get('goal_met') else 'NOT met'}**. "
                  f"Median speed-up vs DuckDB: fetch_synapses "
                  f"{d['duckdb_ms']['median'] / o['fetch_synapses_ms']['median']:.0f}x, raw "
                  f"{d['duckdb_ms']['median'] / o['raw_ms']['median']:.0f}x.",
                  "", _one_neuron_note(o),
                  "", "Correctness: " + json.dumps(r.get("correctness", {})),
                  "(`fetch_synapses` applies the store's default confidence threshold 0.5 like neuPrint; "
                  "with `SynapseCriteria(confidence=0)` its row counts are compared with DuckDB's.)"]
    if "adjacencies" in B:
        r = B["adjacencies"]
        L += ["", "## Whole-brain `fetch_adjacencies(None, None)`", ""]
        if "error" in r:
            L.append(f"FAILED: {r['error']}")
        else:
            ar, o = r["assign_rois"], r["ours"]
            if "error" in o:
                L.append(f"FAILED: {o['error']}")
            else:
                L += ["| step | seconds | peak RSS MB | notes |", "|---|---:|---:|---|",
                      f"| `conn.assign_rois(RoiSet.from_directory(jfrc2np, scale=1000))` (once, cached) | "
                      f"{fmt_s(ar.get('seconds'))} | {_rss(ar)} | {ar.get('points', 0):,} sites, "
                      f"{ar.get('Mpts_per_s', 0):.2f} M sites/s, {ar.get('n_rois')} ROIs, grid build "
                      f"{fmt_s(ar.get('grid_build_s'))} s, {ar.get('fraction_post_sites_in_a_roi', 0):.1%} of "
                      f"post sites in a ROI |",
                      f"| `fetch_adjacencies(None, None)`, threads | {_t(o)} | {_rss(o)} | "
                      f"{o['conn_df_rows']:,} (pair, ROI) rows, {o['neuron_df_rows']:,} neurons, conn_df "
                      f"{o['conn_df_mb']:.0f} MB |"]
                L += _profile_lines(r.get("profile"))
    if "matrix" in B:
        r = B["matrix"]
        L += ["", "## Whole-brain NestedMatrix (`benchmarks/matrix.py` on the same store)", ""]
        if "error" in r:
            L.append(f"FAILED: {r['error'][-1500:]}")
        else:
            L += [f"Full table: `{r['result_file']}` (scheduler {r.get('scheduler')}; peak RSS there is "
                  "ru_maxrss, cumulative within its process).", "",
                  "| stage | seconds | peak RSS MB |", "|---|---:|---:|"]
            for s in r["stages"]:
                L.append(f"| {s['stage']} | {fmt_s(s['seconds'])} | {fmt_mb(s['peak_rss_mb'])} |")
    if "ingest" in B:
        r = B["ingest"]
        L += ["", "## Ingest of the same CAVE Parquet (`benchmarks/ingest.py`'s `measure`)", ""]
        if "error" in r:
            L.append(f"FAILED: {r['error'][-1500:]}")
        else:
            L += [f"`ingest(parquet, store, units='voxels', voxel_size=(4, 4, 40))`: {fmt_s(r['seconds'])} s "
                  f"({r['Mrows_per_s']:.2f} M rows/s), peak RSS {fmt_mb(r['peak_rss_mb'])} MB (VmHWM of the "
                  f"ingest process), store {fmt_mb(r.get('store_mb'))} MB; {r.get('n_synapses', 0):,} synapses, "
                  f"{r.get('n_neurons', 0):,} neurons. Not included in any query time above."]
    if "rois" in B:
        r = B["rois"]
        L += ["", "## ROI assignment (`benchmarks/rois.py`)", ""]
        if "error" in r:
            L.append(f"FAILED: {r['error'][-1500:]}")
        else:
            L += _rois_lines(r)
    return "\n".join(L) + "\n"


def _rois_lines(r: dict) -> list[str]:
    raw = r["raw"]
    best = raw["peers"][raw["best_peer"]]["Mpts_per_s"]
    ex = raw["exact_reference"]["agreement"]
    L = [f"{raw['n_points']:,} points, {raw['n_primary']} meshes of `{r['meshes']}`; full table "
         f"`{r['result_file']}` (`python -m {r['command']}`).", "",
         "| method | M points/s | x best peer | agreement with exact GWN reference |", "|---|---:|---:|---:|"]
    for nt, v in raw["connectome_dask"].items():
        L.append(f"| connectome_dask exact, {nt} thread(s) | {v['Mpts_per_s']:.2f} | {v['Mpts_per_s'] / best:.0f}x | "
                 f"{ex['connectome_dask']:.6f} |")
    for k, v in raw["peers"].items():
        L.append(f"| {v['label']} | {v['Mpts_per_s']:.3f} | {v['Mpts_per_s'] / best:.2f}x | {ex[k]:.6f} |")
    return L


def render_summary(rep: dict) -> str:
    B = rep.get("benchmarks", {})
    n = human(rep["n_synapses"])
    L = [f"Measured on a shared 2-core / {rep['machine']['memory_gib']} GiB machine, {n} synthetic synapses, "
         f"{rep['n_neurons']:,} neurons, peers on the same data (CAVE Parquet) in the same run, each measurement "
         "in a fresh process ({}). \"threads\" = dask's threaded scheduler in the measuring process; "
         "\"cluster\" = 2-worker LocalCluster (peak RSS summed over client + workers). Details: "
         f"`benchmarks/results/peers{'' if n == '50M' else '_' + n}.md`.".format(rep["machine"]["date"]),
         "", "| work | ours, threads | ours, 2-worker cluster | peer(s) | ours vs peer | goal | met | peak RSS ours / peer (MB) |",
         "|---|---:|---:|---|---|---|---|---|"]
    if "pairs" in B and "ours" in B["pairs"]:
        r = B["pairs"]
        o, c = r["ours"].get("adjacency_threads"), r["ours"].get("adjacency_cluster")
        pc = r["ours"].get("pair_counts_threads")
        P = r["peers"]
        peers_s = ", ".join(f"{k} {_t(P.get(k))} s" for k in ("duckdb", "polars", "pandas") if P.get(k))
        rat = ", ".join(f"{_speedup(P.get(k), o)} faster than {k}" for k in ("duckdb", "polars", "pandas") if P.get(k))
        ok = all(v.get("identical", v.get("n_pairs_equal", False)) for v in r.get("correctness", {}).values())
        L.append(f"| {n} synapses -> neuron-pair counts (`adjacency()`; raw `pair_counts` {_t(pc)} s) | {_t(o)} s | "
                 f"{_t(c)} s | {peers_s} | {rat} | <= 1.0x DuckDB | {'yes' if r.get('goal_met') else 'no'} | "
                 f"{_rss(o)} / DuckDB {_rss(P.get('duckdb'))}, pandas {_rss(P.get('pandas'))} |")
        if not ok:
            L.append("| ^ pair counts differ from DuckDB! | | | | | | | |")
    if "types" in B and "ours" in B["types"]:
        r = B["types"]
        o, c, d = r["ours"].get("threads"), r["ours"].get("cluster"), r["peers"].get("duckdb")
        sp = f"{d['seconds'] / o['seconds']:.1f}x faster" if o and d and "seconds" in o and "seconds" in d else "—"
        L.append(f"| {n} synapses -> type x type counts ({(o or {}).get('shape', ['?'])[0]:,} types) | {_t(o)} s | "
                 f"{_t(c)} s | DuckDB join+group by {_t(d)} s | {sp} | >= 5x faster | "
                 f"{'yes' if r.get('goal_met') else 'no'} | {_rss(o)} / {_rss(d)} |")
    if "rois" in B and "raw" in B["rois"]:
        raw = B["rois"]["raw"]
        best = raw["peers"][raw["best_peer"]]["Mpts_per_s"]
        one = raw["connectome_dask"].get("1") or next(iter(raw["connectome_dask"].values()))
        two = raw["connectome_dask"].get("2", one)
        ag = raw["exact_reference"]["agreement"]["connectome_dask"]
        x = max(one["Mpts_per_s"], two["Mpts_per_s"]) / best
        L.append(f"| ROI assignment, {raw['n_primary']} real meshes, {raw['n_points'] / 1e6:g} M points | "
                 f"{one['Mpts_per_s']:.2f} M pts/s (1 thread), {two['Mpts_per_s']:.2f} (2) | — | "
                 + ", ".join(f"{v.get('short', k)} {v['Mpts_per_s']:.3f}" for k, v in raw["peers"].items())
                 + f" M pts/s | {x:.0f}x the best peer's throughput; labels {ag:.4%} = exact reference | "
                 ">= 100x, identical | "
                 f"{'yes' if x >= 100 and ag == 1 else 'no'} | — |")
    if "adjacencies" in B and "assign_rois" in B["adjacencies"]:
        ar = B["adjacencies"]["assign_rois"]
        L.append(f"| `assign_rois` on the {n} store ({ar.get('points', 0) / 1e6:.0f} M sites, {ar.get('n_rois')} meshes) | "
                 f"{_t(ar)} s ({ar.get('Mpts_per_s', 0):.2f} M sites/s) | — | — | — | — | — | {_rss(ar)} |")
    if "one_neuron" in B and "correctness" in B["one_neuron"]:
        r = B["one_neuron"]
        o, d = r["ours"], r["peers"]["duckdb"]
        L.append(f"| one neuron's synapses from the {n} store (median of {len(r['bodies'])} random bodies) | "
                 f"`fetch_synapses` {o['fetch_synapses_ms']['median']:.1f} ms, raw {o['raw_ms']['median']:.1f} ms"
                 + (f", `synapses_of` {o['synapses_of_ms']['median']:.1f} ms" if "synapses_of_ms" in o else "") + " | — | "
                 f"DuckDB filter {d['duckdb_ms']['median']:.0f} ms | "
                 f"{d['duckdb_ms']['median'] / o['fetch_synapses_ms']['median']:.0f}x faster | well under 100 ms | "
                 f"{'yes' if r.get('goal_met') else 'no'} | {_rss(o)} / {_rss(d)} |")
    if "adjacencies" in B and "ours" in B["adjacencies"] and "seconds" in B["adjacencies"]["ours"]:
        o = B["adjacencies"]["ours"]
        L.append(f"| whole-brain `fetch_adjacencies(None, None)` ({o['conn_df_rows']:,} rows) | {_t(o)} s | — | — | — "
                 f"| — | — | {_rss(o)} |")
    if "matrix" in B and "stages" in B["matrix"]:
        st = {s["stage"]: s for s in B["matrix"]["stages"]}
        fs = st.get("NestedMatrix.from_synapses")
        if fs:
            L.append(f"| whole-brain `NestedMatrix.from_synapses` ({B['matrix']['result_file']}) | "
                     f"{fmt_s(fs['seconds'])} s | — | — | — | — | — | {fmt_mb(fs['peak_rss_mb'])} |")
    if "ingest" in B and "seconds" in B["ingest"]:
        r = B["ingest"]
        L.append(f"| ingest of the same CAVE Parquet ({n} rows) | {fmt_s(r['seconds'])} s ({r['Mrows_per_s']:.2f} M rows/s) "
                 f"| — | — | — | — | — | {fmt_mb(r['peak_rss_mb'])} |")
    key = rep["dataset"]["key"]
    stale = [k for k, v in B.items() if v.get("dataset_key") not in (None, key)]
    if stale:
        L += ["", f"Rows from {', '.join(stale)}: measured on an earlier cached dataset (same generator parameters, "
              "store written by an earlier package version; see the note in the details file)."]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
