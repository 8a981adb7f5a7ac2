"""Scaling benchmark: generate -> ROI assignment -> pair counts (out of core) -> type matrix -> filtered.

For each size (default 10 M, 50 M, 200 M, 1 B synapses; 139 k neurons, ~8 k
types, the 75 JFRC2 neuropils) every stage runs in a fresh process:

1. ``generate``: :func:`connectome_dask.datasets.synthetic` streaming into a
   store (single process, no dask; the store index build is timed separately
   by wrapping ``store.writer._build_index``);
2. ``assign_rois``: ``conn.assign_rois(RoiSet.from_directory(jfrc2np, scale=1000))``;
3. ``pair_counts``: ``aggregate.pair_counts(conn, output=dir)`` — the pair
   table is written out of core as Parquet parts, never gathered;
4. ``type_matrix``: ``conn.adjacency(by="type")`` (dense ~8 k x 8 k);
5. the filtered paths: ``pairs_rois`` (``pair_counts(rois=<10 ROIs>,
   output=dir)``), ``pairs_confidence`` (``pair_counts(confidence=0.5,
   output=dir)``) and ``types_rois`` (``adjacency(by="type", rois=<10
   ROIs>)``), each checked against the synapses it keeps, counted chunk by
   chunk straight from the stored ``roi_post`` / ``confidence`` column (the
   read path the plan chose is reported); ``pairs_rois_confidence``
   (``pair_counts(rois=<10 ROIs>, confidence=0.5)``, a frame: the ROI-major
   copy's path) likewise.

Stages 2-5 run on ``connectome_dask.cluster.local_cluster(n_workers=2,
memory_limit="6GiB")`` (spilling to disk at the package's thresholds) started
inside the measuring process; cluster start-up is reported, not timed. Peak
RSS is the highest sum of RSS over the measuring process and all its
descendants (client + nannies + workers), polled with psutil every 50 ms.
Tasks executed and the longest task come from ``distributed``'s task stream.

Results are rewritten after every stage (``benchmarks/results/scaling.{md,json}``),
so a partial run keeps what it measured. Stores of >= 200 M synapses are
deleted after measuring (``--keep`` keeps them).

Usage::

    python -m benchmarks.scaling                       # 10M,50M,200M,1B
    python -m benchmarks.scaling --sizes 10M,50M
    nohup python -m benchmarks.scaling --sizes 1B --resume > scaling.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from ._common import (
    DATA,
    RESULTS,
    code_fingerprint,
    fmt_mb,
    fmt_s,
    human,
    machine_info,
    mesh_dir,
    parse_int,
    run_child,
    write_json,
    write_text,
)

STAGES = ("generate", "assign_rois", "pair_counts", "type_matrix", "pairs_rois", "pairs_confidence", "types_rois",
          "pairs_rois_confidence")
#: the filtered stages: ROI list (10 ROIs), confidence threshold, type x type within the ROI list
FILTER_ROIS = 10
FILTER_CONFIDENCE = 0.5
BYTES_PER_SYNAPSE = 24  # store (~19.4 B/synapse at 50 M) + ROI columns + pair parts, with margin


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- stage tasks (children)


def _cluster(n_workers: int, memory_limit: str):
    from distributed import Client

    from connectome_dask.cluster import local_cluster

    t0 = time.perf_counter()
    cluster = local_cluster(n_workers=n_workers, threads_per_worker=1, memory_limit=memory_limit,
                            dashboard_address=":0")
    client = Client(cluster)
    return cluster, client, time.perf_counter() - t0


def _stream_stats(ts) -> dict:
    data = ts.data
    dur = []
    for t in data:
        s = [x for x in t.get("startstops", []) if x.get("action") == "compute"]
        dur.append(sum(x["stop"] - x["start"] for x in s))
    return {"tasks": len(data), "task_compute_s_total": float(sum(dur)),
            "task_compute_s_max": float(max(dur)) if dur else 0.0}


def task_generate(store: str, synapses: int, neurons: int, seed: int = 0) -> dict:
    import connectome_dask.store.writer as st  # the module whose close() calls _build_index
    from connectome_dask import datasets

    orig = st._build_index
    spent = {}

    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return orig(*a, **k)
        finally:
            spent["index_build_s"] = time.perf_counter() - t0

    st._build_index = timed
    t0 = time.perf_counter()
    conn = datasets.synthetic(store, n_neurons=neurons, n_synapses=synapses, meshes=mesh_dir(), seed=seed,
                              skeletons=False, progress=False, overwrite=True, name=f"scaling {human(synapses)}")
    dt = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file())
    return {"seconds": dt, **spent, "n_synapses": conn.n_synapses, "store_mb": size / 2**20,
            "scheduler": "single process (no dask)"}


def task_assign_rois(store: str, n_workers: int, memory_limit: str) -> dict:
    from distributed import get_task_stream

    import connectome_dask as cd
    from connectome_dask.rois import RoiSet

    cluster, client, startup = _cluster(n_workers, memory_limit)
    try:
        conn = cd.open(store, set_default=False)
        t0 = time.perf_counter()
        rs = RoiSet.from_directory(mesh_dir(), scale=1000)
        with get_task_stream(client) as ts:
            new = conn.assign_rois(rs, progress=False)
        dt = time.perf_counter() - t0
        return {"seconds": dt, "cluster_startup_s": startup, **_stream_stats(ts), "n_rois": len(new.roi_names),
                "sites": 2 * new.n_synapses}
    finally:
        client.close()
        cluster.close()


def task_pair_counts(store: str, out: str, n_workers: int, memory_limit: str) -> dict:
    import numpy as np
    import pyarrow.parquet as pq
    from distributed import get_task_stream

    import connectome_dask as cd
    from connectome_dask.aggregate import pair_counts

    cluster, client, startup = _cluster(n_workers, memory_limit)
    try:
        conn = cd.open(store, set_default=False)
        t0 = time.perf_counter()
        with get_task_stream(client) as ts:
            ddf = pair_counts(conn, output=out, progress=False)
        dt = time.perf_counter() - t0
        files = sorted(Path(out).glob("*.parquet"))
        rows = sum(pq.read_metadata(f).num_rows for f in files)
        size = sum(f.stat().st_size for f in files)
        # correctness (not timed): weights sum to the synapse count, per-neuron sums match the
        # store's index (computed independently at write time), pairs strictly increasing
        per_pre = np.zeros(conn.n_neurons, np.int64)
        total, last, ok = 0, -1, True
        for f in files:
            t = pq.read_table(f, columns=["pre", "post", "weight"])
            p, q, w = (t[c].to_numpy() for c in ("pre", "post", "weight"))
            per_pre += np.bincount(p, weights=w, minlength=conn.n_neurons).astype(np.int64)
            total += int(w.sum())
            k = (p.astype(np.int64) << 32) | q.astype(np.int64)
            if len(k):
                ok = ok and bool(k[0] > last) and bool(np.all(np.diff(k) > 0))
                last = int(k[-1])
        check = {"total_weight_equals_synapses": total == conn.n_synapses,
                 "per_pre_sums_equal_index": bool(np.array_equal(per_pre, conn.neurons["pre"].to_numpy())),
                 "pairs_strictly_sorted": ok}
        return {"seconds": dt, "cluster_startup_s": startup, **_stream_stats(ts), "pairs": rows,
                "parts": len(files), "output_mb": size / 2**20, "npartitions": ddf.npartitions,
                "chunk_rows": conn.chunk_rows, "check": check}
    finally:
        client.close()
        cluster.close()


def task_type_matrix(store: str, n_workers: int, memory_limit: str) -> dict:
    import numpy as np
    from distributed import get_task_stream

    import connectome_dask as cd

    cluster, client, startup = _cluster(n_workers, memory_limit)
    try:
        conn = cd.open(store, set_default=False)
        t0 = time.perf_counter()
        with get_task_stream(client) as ts:
            A = conn.adjacency(by="type", progress=False)
        dt = time.perf_counter() - t0
        m = np.asarray(A.data)
        return {"seconds": dt, "cluster_startup_s": startup, **_stream_stats(ts), "shape": list(m.shape),
                "total": int(m.sum()), "nonzero": int(np.count_nonzero(m))}
    finally:
        client.close()
        cluster.close()


def _count_rows(conn, columns: list[str], keep) -> int:
    """Synapse rows where ``keep(arrays)`` holds, chunk by chunk straight from the stored arrays.

    The independent check of the filtered stages: no aggregation code, only the columns and numpy.
    """
    total = 0
    for lo in range(0, conn.n_synapses, conn.chunk_rows):
        hi = min(lo + conn.chunk_rows, conn.n_synapses)
        total += int(keep(conn.read_synapses(columns, lo, hi)).sum())
    return total


def _filter_rois(conn) -> list[str]:
    return list(conn.roi_names[:FILTER_ROIS])


def task_filtered(store: str, out: str, what: str, n_workers: int, memory_limit: str) -> dict:
    """One filtered whole-brain aggregation (``what``: pairs_rois, pairs_confidence, types_rois), out of core."""
    import numpy as np
    import pyarrow.parquet as pq
    from distributed import get_task_stream

    import connectome_dask as cd
    from connectome_dask.aggregate import pair_counts

    cluster, client, startup = _cluster(n_workers, memory_limit)
    try:
        conn = cd.open(store, set_default=False)
        rois = _filter_rois(conn)
        plans: list[str] = []
        import logging

        class _Plans(logging.Handler):
            def emit(self, record):
                plan = getattr(record, "plan", None)
                if plan is not None:
                    plans.append(plan.method)

        handler = _Plans(level=logging.DEBUG)
        lg = logging.getLogger("connectome_dask.compute")
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
        t0 = time.perf_counter()
        with get_task_stream(client) as ts:
            if what == "types_rois":
                A = conn.adjacency(by="type", rois=rois, progress=False)
                got = int(np.asarray(A.data).sum())
                info: dict = {"shape": list(A.shape)}
            elif what == "pairs_rois_confidence":  # a small result: one frame (the out-of-core output scans)
                df = pair_counts(conn, rois=rois, confidence=FILTER_CONFIDENCE, progress=False)
                got = int(df["weight"].sum())
                info = {"pairs_in_memory": len(df)}
            else:
                kw = {"rois": rois} if what == "pairs_rois" else {"confidence": FILTER_CONFIDENCE}
                pair_counts(conn, output=out, progress=False, **kw)
                files = sorted(Path(out).glob("*.parquet"))
                got = sum(int(pq.read_table(f, columns=["weight"])["weight"].to_numpy().sum()) for f in files)
                info = {"pairs": sum(pq.read_metadata(f).num_rows for f in files), "parts": len(files),
                        "output_mb": sum(f.stat().st_size for f in files) / 2**20}
        dt = time.perf_counter() - t0
        lg.removeHandler(handler)
        # correctness (not timed): the synapses kept, counted straight from the stored column
        codes = np.array([conn.roi_names.index(r) for r in rois])
        if what == "pairs_confidence":
            want = _count_rows(conn, ["confidence"], lambda a: a["confidence"] > FILTER_CONFIDENCE)
        elif what == "pairs_rois":
            want = _count_rows(conn, ["roi_post"], lambda a: np.isin(a["roi_post"], codes))
        elif what == "pairs_rois_confidence":
            want = _count_rows(conn, ["roi_post", "confidence"], lambda a: np.isin(a["roi_post"], codes)
                               & (a["confidence"] > np.float32(FILTER_CONFIDENCE)))
        else:  # the type matrix holds the synapses between typed neurons
            typed = conn.neurons["type"].notna().to_numpy()
            want = _count_rows(conn, ["roi_post", "pre", "post"], lambda a: np.isin(a["roi_post"], codes)
                               & typed[a["pre"]] & typed[a["post"]])
        return {"seconds": dt, "cluster_startup_s": startup, **_stream_stats(ts), **info,
                "read_path": sorted(set(plans)),
                "filter": {"rois": rois} if what in ("pairs_rois", "types_rois") else
                {"confidence": FILTER_CONFIDENCE} if what == "pairs_confidence" else
                {"rois": rois, "confidence": FILTER_CONFIDENCE},
                "check": {"total_equals_rows_kept": got == want}, "kept": want}
    finally:
        client.close()
        cluster.close()


# ----------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10M,50M,200M,1B")
    ap.add_argument("--neurons", type=parse_int, default=139_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="6GiB")
    ap.add_argument("--keep", action="store_true", help="keep every store (default: delete >= 200 M)")
    ap.add_argument("--resume", action="store_true", help="skip stages already measured in scaling.json")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sizes = [parse_int(s) for s in args.sizes.split(",") if s.strip()]
    jpath = args.results / "scaling.json"
    rep = json.loads(jpath.read_text()) if (args.resume and jpath.exists()) else {}
    rep.update({"code": code_fingerprint(), "neurons": args.neurons, "workers": args.workers, "memory_limit": args.memory_limit,
                "meshes": str(mesh_dir() or "procedural"), "machine": machine_info()})
    rep.setdefault("sizes", {})
    root = DATA / "scaling"

    def save() -> None:
        write_json(jpath, rep)
        try:
            text = render(rep)
        except Exception:  # noqa: BLE001
            import traceback

            text = "rendering failed:\n```\n" + traceback.format_exc() + "```\n"
        write_text(args.results / "scaling.md", text)

    for n in sizes:
        key = str(n)
        entry = rep["sizes"].setdefault(key, {"n_synapses": n, "stages": {}})
        store = root / f"store_s{n}_n{args.neurons}_seed{args.seed}"
        pairs_out = root / f"pairs_s{n}"
        free = shutil.disk_usage(DATA.parent).free
        need = n * BYTES_PER_SYNAPSE
        have_store = (store / "meta.json").exists()
        if not have_store and free < need * 1.2:
            entry["skipped"] = f"not enough disk: {free / 2**30:.0f} GiB free, ~{need / 2**30:.0f} GiB needed"
            log(entry["skipped"])
            save()
            continue
        kw = {"n_workers": args.workers, "memory_limit": args.memory_limit}
        from ._common import git_state

        entry["git"] = git_state()
        for stage in STAGES:
            done = entry["stages"].get(stage)
            if args.resume and done and "error" not in done and (stage != "generate" or have_store):
                log(f"{human(n)} {stage}: already measured")
                continue
            log(f"{human(n)} {stage} ...")
            if stage == "generate":
                r = run_child("benchmarks.scaling:task_generate", store=str(store), synapses=n,
                              neurons=args.neurons, seed=args.seed)
                have_store = "error" not in r
            elif stage == "assign_rois":
                r = run_child("benchmarks.scaling:task_assign_rois", store=str(store), **kw)
            elif stage == "pair_counts":
                r = run_child("benchmarks.scaling:task_pair_counts", store=str(store), out=str(pairs_out), **kw)
                shutil.rmtree(pairs_out, ignore_errors=True)
            elif stage == "type_matrix":
                r = run_child("benchmarks.scaling:task_type_matrix", store=str(store), **kw)
            else:
                r = run_child("benchmarks.scaling:task_filtered", store=str(store), out=str(pairs_out),
                              what=stage, **kw)
                shutil.rmtree(pairs_out, ignore_errors=True)
            if "seconds" in r:
                r["ns_per_synapse"] = r["seconds"] / n * 1e9
                log(f"   {r['seconds']:.1f} s, {r['ns_per_synapse']:.0f} ns/synapse, tree peak "
                    f"{r['tree_peak_rss_mb']:.0f} MB")
            else:
                log(f"   FAILED: {r.get('error', '')[-800:]}")
            r["date"] = time.strftime("%Y-%m-%d %H:%M")
            entry["stages"][stage] = r
            save()
            if "error" in r and stage in ("generate", "assign_rois"):
                break
        if n >= 200_000_000 and not args.keep:
            shutil.rmtree(store, ignore_errors=True)
            entry["store_deleted"] = True
        save()
    return rep


def render(rep: dict) -> str:
    m = rep["machine"]
    L = [
        "# Scaling: generate -> ROI assignment -> pair counts (out of core) -> type matrix -> filtered paths",
        "",
        f"{rep['neurons']:,} neurons, ~8 k types, meshes `{Path(rep['meshes']).name}`. Machine: {m['cpus']} CPUs, "
        f"{m['memory_gib']} GiB RAM (shared with other work: load average {m['loadavg'][0]} at the start), "
        f"{m['date']}, package commit {m.get('git', {}).get('commit', '?')}"
        f"{' (with uncommitted changes)' if m.get('git', {}).get('package_dirty') else ''}. Stages 2-7 (all but generate) on `local_cluster(n_workers={rep['workers']}, threads_per_worker=1, "
        f"memory_limit='{rep['memory_limit']}')` with the package's spilling thresholds; each stage in a fresh "
        "process. Peak RSS = highest sum over the measuring process + nannies + workers (psutil, 50 ms). "
        "Time excludes cluster start-up.",
        "",
        "| synapses | stage | seconds | ns / synapse | vs 50 M ns/synapse | peak RSS MB (tree) | tasks | longest task s | notes |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    ref = rep["sizes"].get(str(50_000_000), {}).get("stages", {})
    for key in sorted(rep["sizes"], key=int):
        e = rep["sizes"][key]
        n = int(key)
        if e.get("code_note") or e.get("git"):
            note = e.get("code_note") or f"package commit {e['git'].get('commit')}"
            L.append(f"| {human(n)} | *{note}* | | | | | | | |")
        if e.get("skipped"):
            L.append(f"| {human(n)} | — | — | — | — | — | — | — | skipped: {e['skipped']} |")
        for st in STAGES:
            r = e["stages"].get(st)
            if not r:
                continue
            if "error" in r:
                err = r["error"].strip().splitlines()[-1][:200] if r["error"].strip() else "failed"
                L.append(f"| {human(n)} | {st} | FAILED | — | — | {fmt_mb(r.get('tree_peak_rss_mb'))} | — | — | {err} |")
                continue
            rr = ref.get(st)
            vs = f"{r['ns_per_synapse'] / rr['ns_per_synapse']:.2f}x" if rr and "ns_per_synapse" in rr else "—"
            notes = []
            if "index_build_s" in r:
                notes.append(f"index build {fmt_s(r['index_build_s'])} s; store {fmt_mb(r.get('store_mb'))} MB")
            if "pairs" in r:
                notes.append(f"{r['pairs']:,} pairs in {r['parts']} Parquet parts ({fmt_mb(r['output_mb'])} MB)")
                if "check" in r:
                    notes.append("verified" if all(r["check"].values()) else f"CHECK FAILED {r['check']}")
            if "shape" in r:
                notes.append(f"{r['shape'][0]:,} x {r['shape'][1]:,} dense")
            if "filter" in r:
                f = r["filter"]
                if "pairs_in_memory" in r:
                    notes.append(f"{r['pairs_in_memory']:,} pairs in one frame")
                what = [f"{len(f['rois'])} ROIs"] if "rois" in f else []
                what += [f"confidence > {f['confidence']}"] if "confidence" in f else []
                notes.append(" and ".join(what)
                             + f", {r['kept']:,} synapses kept, read path {'/'.join(r['read_path']) or '?'}")
                if "pairs" not in r:
                    notes.append("verified" if all(r["check"].values()) else f"CHECK FAILED {r['check']}")
            if "sites" in r:
                notes.append(f"{r['sites'] / r['seconds'] / 1e6:.2f} M sites/s")
            if "cluster_startup_s" in r:
                notes.append(f"cluster start {r['cluster_startup_s']:.1f} s")
            L.append(f"| {human(n)} | {st} | {fmt_s(r['seconds'])} | {r['ns_per_synapse']:.0f} | {vs} | "
                     f"{fmt_mb(r['tree_peak_rss_mb'])} | {r.get('tasks', '—')} | "
                     f"{fmt_s(r.get('task_compute_s_max')) if 'task_compute_s_max' in r else '—'} | {'; '.join(notes)} |")
        tot = [e["stages"][s] for s in STAGES if s in e["stages"] and "seconds" in e["stages"][s]]
        if len(tot) == len(STAGES):
            s = sum(r["seconds"] for r in tot)
            rs = [ref[x]["seconds"] for x in STAGES if x in ref and "seconds" in ref[x]]
            vs = f"{(s / n) / (sum(rs) / 50_000_000):.2f}x" if len(rs) == len(STAGES) else "—"
            L.append(f"| {human(n)} | **all stages** | {fmt_s(s)} | {s / n * 1e9:.0f} | {vs} | "
                     f"{fmt_mb(max(r['tree_peak_rss_mb'] for r in tot))} | | | |")
    L += ["", "Goal: no out-of-memory at 1 B rows; at 1 B, time per synapse <= 1.2x the 50 M figure "
          "(column \"vs 50 M\")."]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
