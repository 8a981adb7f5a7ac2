"""Benchmark: whole-brain NestedMatrix from a connectome store.

Builds (or reuses) a synthetic store of ``--synapses`` synapses (default 50 M,
139 k neurons, ~8 k types, the FlyWire scale) with
:func:`connectome_dask.datasets.synthetic`, then in a fresh process measures

* ``NestedMatrix.from_synapses(conn, weight_mode=...)``: out-of-core pair
  counts (:func:`connectome_dask.aggregate.pair_counts`) into a sparse
  neuron x neuron matrix ordered by type (never dense);
* the dense type x type sum matrix (sparse products);
* ``to_xarray()`` (``sparse.COO``), ``to_zarr`` and ``open_matrix``;

and in another fresh process ``plot_type_heatmap(conn, png)`` (type counts
by :func:`connectome_dask.aggregate.group_counts`). Reported: wall time per
stage and peak RSS (``ru_maxrss``, cumulative within the process). Results go
to ``benchmarks/results/matrix.md`` and ``matrix.json``.

Usage::

    python -m benchmarks.matrix --synapses 2_000_000          # small check
    python -m benchmarks.matrix --store /scratch/flywire_50M   # existing store
    python -m benchmarks.matrix --synapses 50_000_000 --data-dir /scratch/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main", "measure"]

RESULTS = Path(__file__).resolve().parent / "results"

_CHILD_BUILD = r"""
import json, resource, sys, time, shutil
from pathlib import Path
import dask
import numpy as np
import connectome_dask as cd
from connectome_dask.matrix import NestedMatrix, open_matrix

store, out_dir, mode, scheduler = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
dask.config.set(scheduler=scheduler)
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
stages = []
def stage(name, t0, **kw):
    stages.append({"stage": name, "seconds": time.perf_counter() - t0, "peak_rss_mb": rss(), **kw})
t0 = time.perf_counter()
conn = cd.open(store, set_default=False)
_ = conn.neurons
stage("open store", t0)
t0 = time.perf_counter()
m = NestedMatrix.from_synapses(conn, weight_mode=mode, progress=False)
stage("NestedMatrix.from_synapses", t0, shape=list(m.shape), nnz=m.nnz, n_types=len(m.type_boundaries))
t0 = time.perf_counter()
ts = m.sum_type_matrix
stage("sum_type_matrix", t0, shape=list(ts.shape))
t0 = time.perf_counter()
da = m.to_xarray()
stage("to_xarray (sparse.COO)", t0, nbytes=int(da.data.nbytes))
p = out_dir / "whole_brain_matrix.zarr"
t0 = time.perf_counter()
m.to_zarr(p)
size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
stage("to_zarr", t0, bytes_on_disk=size)
del da
t0 = time.perf_counter()
r = open_matrix(p)
stage("open_matrix", t0)
assert r.nnz == m.nnz and r.ordered_neurons == m.ordered_neurons
shutil.rmtree(p, ignore_errors=True)
print(json.dumps({"stages": stages, "n_neurons": conn.n_neurons, "n_synapses": conn.n_synapses}))
"""

_CHILD_PLOT = r"""
import json, resource, sys, time
import dask
import matplotlib
matplotlib.use("Agg")
import connectome_dask as cd
from connectome_dask.matrix import plot_type_heatmap
store, png, scheduler = sys.argv[1], sys.argv[2], sys.argv[3]
dask.config.set(scheduler=scheduler)
conn = cd.open(store, set_default=False)
t0 = time.perf_counter()
fig, ax = plot_type_heatmap(conn, png, progress=False)
dt = time.perf_counter() - t0
shape = list(ax.get_images()[0].get_array().shape)
print(json.dumps({"stage": "plot_type_heatmap", "seconds": dt,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "image": shape}))
"""


def measure(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter with ``args``; return its last JSON line."""
    res = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; returns the report dict."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None, help="existing store (else a synthetic one is built)")
    ap.add_argument("--synapses", type=int, default=50_000_000)
    ap.add_argument("--neurons", type=int, default=139_000)
    ap.add_argument("--types", type=int, default=None, help="cell types (default: the generator's)")
    ap.add_argument("--data-dir", default=None, help="where to build the synthetic store")
    ap.add_argument("--weight-mode", default="relative_outgoing")
    ap.add_argument("--scheduler", default="threads")
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args(argv)

    work = Path(args.data_dir or tempfile.mkdtemp(prefix="cd-matrix-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    build = None
    if args.store:
        store = Path(args.store)
    else:
        from connectome_dask import datasets

        store = work / f"synthetic_{args.synapses}_{args.neurons}"
        if not (store / "meta.json").exists():
            t0 = time.perf_counter()
            datasets.synthetic(
                store, n_neurons=args.neurons, n_synapses=args.synapses, n_types=args.types,
                overwrite=True, progress=False, skeletons=False,
            )  # fmt: skip
            build = time.perf_counter() - t0
    built = measure(_CHILD_BUILD, str(store), str(work), args.weight_mode, args.scheduler)
    plot = measure(_CHILD_PLOT, str(store), str(work / "type_heatmap.png"), args.scheduler)
    report = {
        "benchmark": "matrix",
        "store": str(store),
        "n_neurons": built["n_neurons"],
        "n_synapses": built["n_synapses"],
        "weight_mode": args.weight_mode,
        "scheduler": args.scheduler,
        "synthetic_build_seconds": build,
        "stages": built["stages"] + [plot],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.json").write_text(json.dumps(report, indent=1))
    lines = [
        "# Whole-brain NestedMatrix benchmark",
        "",
        f"Store: {report['n_synapses']:,} synapses, {report['n_neurons']:,} neurons "
        f"(`{Path(report['store']).name}`); weight_mode `{args.weight_mode}`; dask scheduler "
        f"`{args.scheduler}`; {report['machine']['cpus']} CPUs; {report['date']}.",
        "Stages run in one fresh process (peak RSS = ru_maxrss so far, cumulative); the heatmap in another.",
        "",
        "| stage | seconds | peak RSS (MB) | notes |",
        "|---|---:|---:|---|",
    ]
    for s in report["stages"]:
        notes = ", ".join(f"{k}={v}" for k, v in s.items() if k not in ("stage", "seconds", "peak_rss_mb"))
        lines.append(f"| {s['stage']} | {s['seconds']:.2f} | {s['peak_rss_mb']:.0f} | {notes} |")
    if build is not None:
        lines += ["", f"Building the synthetic store took {build:.1f} s (not part of the matrix timings)."]
    (out / "matrix.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
