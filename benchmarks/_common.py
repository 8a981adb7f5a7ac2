"""Shared benchmark helpers: cached datasets, measurements in fresh subprocesses, result files.

Every measurement runs in a fresh Python process (``python -m benchmarks._common
child MODULE:FUNC JSON``): the task function times only the operation itself
and returns a dict; the child adds its own peak RSS (``VmHWM``) and prints the
dict as JSON. The parent polls the child's whole process tree with psutil
(``tree_peak_rss_mb`` = highest sum of RSS over the child and all its
descendants, e.g. dask workers and nannies), so memory is per measurement.

Datasets are built once and cached under ``benchmarks/data/<key>/``, keyed by
every generator parameter::

    store/              connectome store (datasets.synthetic)
    synapses.parquet    the same synapses, CAVE/FlyWire style (int64 root ids, voxel positions)
    neurons.parquet     root_id, cell_type (for the peers' joins)
    dataset.json        parameters, build time, ROI assignment time
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
JFRC2NP = (ROOT / ".." / "shared" / "data" / "meshes" / "jfrc2np").resolve()
PY = sys.executable

__all__ = [
    "DATA",
    "code_fingerprint",
    "git_state",
    "JFRC2NP",
    "RESULTS",
    "ROOT",
    "dataset",
    "ensure_rois",
    "fmt_mb",
    "fmt_s",
    "machine_info",
    "parse_int",
    "ten_rois",
    "run_child",
    "write_json",
    "TreeSampler",
    "CallPeak",
]


def parse_int(s: str | int) -> int:
    """``"50_000_000"``, ``"50M"``, ``"1B"`` or ``"2e6"`` -> int."""
    if isinstance(s, int):
        return s
    t = str(s).strip().replace("_", "").replace(",", "")
    mult = {"k": 10**3, "K": 10**3, "M": 10**6, "m": 10**6, "B": 10**9, "G": 10**9}
    if t and t[-1] in mult:
        return int(float(t[:-1]) * mult[t[-1]])
    return int(float(t))


def fmt_s(x: float | None) -> str:
    return "—" if x is None else (f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}")


def fmt_mb(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def human(n: int) -> str:
    for div, suf in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= div and n % (div // 10) == 0:
            v = n / div
            return f"{v:g}{suf}"
    return str(n)


def machine_info() -> dict:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "git": git_state(),
        "cpu": _cpu_model(),
        "versions": package_versions(),
        "fresh_memory_gib_s": fresh_memory_speed(),
    }


def fresh_memory_speed(mib: int = 256, tries: int = 3) -> dict[str, list[float] | None]:
    """GiB/s of first writes into fresh memory, with huge pages and with 4 KiB pages (``tries`` each, in order).

    Most of a big query's or an ingest's system time is its fresh memory
    faulting in, and that cost is the VM's: on the 2026-12-03 VM 0.4-2.4 GiB/s
    with 4 KiB pages, and with huge pages 0.35 GiB/s while the kernel had to
    compact memory first, 12 GiB/s when it had free huge pages. Recorded with
    every run so that results from different machines can be compared. Small
    pages are asked for with numpy's private switch for its huge-page advice
    (``None`` where numpy has none).
    """
    # numpy's switch looked up here, not through connectome_dask.compute.dense's private lookup:
    # benchmarks use the package's public API only (tests/test_house_rules.py)
    switch = None
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            switch = importlib.import_module(mod)._set_madvise_hugepage
            break
        except (ImportError, AttributeError):
            continue
    out: dict[str, list[float] | None] = {}
    for name, huge in (("huge_pages", True), ("small_pages", False)):
        if switch is None and not huge:
            out[name] = None
            continue
        before = switch(huge) if switch is not None else None
        speeds = []
        try:
            for _ in range(tries):
                a = np.empty(mib << 20, dtype=np.uint8)
                t0 = time.perf_counter()
                a[:] = 1
                speeds.append(round(mib / 1024 / (time.perf_counter() - t0), 2))
                del a
        finally:
            if switch is not None:
                switch(before)
        out[name] = speeds
    return out


#: the packages whose versions decide the measured speeds (ours and the peers')
MEASURED_PACKAGES = ("numpy", "pandas", "pyarrow", "numba", "dask", "distributed", "zarr", "xarray", "scipy",
                     "duckdb", "polars")


def package_versions() -> dict[str, str | None]:
    """Installed versions of :data:`MEASURED_PACKAGES` (``None``: not installed): runs compare like with like."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in MEASURED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def write_json(path: Path, obj: Any) -> None:
    """Write JSON via a temporary file + rename (a killed run never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_default))
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _default(o: Any) -> Any:
    """JSON for numpy values and paths (results name their files); the benchmarks use public API only."""
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


# ----------------------------------------------------------------------------- memory of a process tree


class TreeSampler:
    """Poll RSS of a process and all its descendants in a background thread.

    ``peak_mb``: highest sum of RSS over the tree seen in one poll;
    ``peak_by_role``: highest RSS per process command-line role.
    """

    def __init__(self, pid: int, interval: float = 0.05):
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_root = 0
        self.peak_children = 0
        self.max_procs = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc] + self.proc.children(recursive=True)
            except psutil.Error:
                break
            tot = 0
            root = 0
            for p in procs:
                try:
                    r = p.memory_info().rss
                except psutil.Error:
                    continue
                tot += r
                if p.pid == self.proc.pid:
                    root = r
            self.peak = max(self.peak, tot)
            self.peak_root = max(self.peak_root, root)
            self.peak_children = max(self.peak_children, tot - root)
            self.max_procs = max(self.max_procs, len(procs))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join(timeout=5)

    def report(self) -> dict:
        return {
            "tree_peak_rss_mb": self.peak / 2**20,
            "tree_peak_rss_root_mb": self.peak_root / 2**20,
            "tree_peak_rss_descendants_mb": self.peak_children / 2**20,
            "tree_max_processes": self.max_procs,
        }


def run_child(func: str, timeout: float | None = None, log: Path | None = None, **kwargs: Any) -> dict:
    """Run ``module:function(**kwargs)`` in a fresh interpreter; return its dict + memory stats.

    The function returns a JSON-able dict (it times its own operation). Added:
    ``child_vmhwm_mb`` (peak RSS of the child process itself, from
    ``/proc/self/status``) and the tree statistics of :class:`TreeSampler`.
    On failure the dict has ``error`` (last lines of stderr) instead.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONWARNINGS", "ignore")
    cmd = [PY, "-m", "benchmarks._common", "child", func, json.dumps(kwargs, default=_default)]
    t0 = time.perf_counter()
    errf = open(log, "a") if log else subprocess.PIPE  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True, env=env, cwd=str(ROOT))
    with TreeSampler(proc.pid) as ts:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            out, err = proc.communicate()
            err = (err or "") + f"\nTIMEOUT after {timeout} s"
    if log:
        errf.close()
        err = Path(log).read_text()[-3000:] if proc.returncode else ""
    wall = time.perf_counter() - t0
    res: dict[str, Any] = {}
    lines = [ln for ln in (out or "").strip().splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        res = json.loads(lines[-1])
    else:
        res = {"error": (err or "")[-3000:] or f"exit code {proc.returncode}", "returncode": proc.returncode}
    res.update(ts.report())
    res["process_wall_s"] = wall
    return res


def _kill_tree(pid: int) -> None:
    import psutil

    try:
        p = psutil.Process(pid)
        for c in p.children(recursive=True):
            c.kill()
        p.kill()
    except psutil.Error:
        pass


def _vmhwm_mb() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CallPeak:
    """Peak RSS of this process during a ``with`` block (its VmHWM, reset at entry).

    The process's high-water mark is reset to its current resident size
    (``/proc/self/clear_refs``: 5) on entry, so ``mb`` is the highest resident
    size during the block, what was resident at entry included, and not the
    whole child's peak (a previous call's, or the correctness check's after the
    timed calls). ``None`` where the kernel offers no reset (then the child's
    VmHWM is all there is).
    """

    def __init__(self) -> None:
        self.mb: float | None = None

    def __enter__(self) -> CallPeak:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._ok = True
        except OSError:
            self._ok = False
        return self

    def __exit__(self, *exc) -> None:
        self.mb = _vmhwm_mb() if self._ok else None


def _child_main(func: str, kwargs_json: str) -> None:
    mod, name = func.split(":")
    f = getattr(importlib.import_module(mod), name)
    kwargs = json.loads(kwargs_json)
    rss0 = _vmhwm_mb()
    try:
        res = f(**kwargs)
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    res = dict(res or {})
    res["child_vmhwm_mb"] = _vmhwm_mb()
    res["child_rss_after_imports_mb"] = rss0
    sys.stdout.write("\n" + json.dumps(res, default=_default) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- datasets


def mesh_dir() -> Path | None:
    """The 75 JFRC2 neuropils when present (``../shared/data/meshes/jfrc2np``), else None (procedural)."""
    return JFRC2NP if (JFRC2NP / "hierarchy.json").exists() else None


def code_fingerprint() -> str:
    """Hash of the code that decides what a cached dataset contains (store writer, generator).

    Docstrings and comments are ignored (hash of the AST without docstrings), so
    documentation edits do not invalidate the cache; a change to the store
    layout or the generator does.
    """
    import ast
    import hashlib

    h = hashlib.sha1()
    pkg = ROOT / "connectome_dask"
    files = [pkg / "datasets.py", pkg / "_synth.py", *sorted((pkg / "store").glob("*.py")),
             *sorted((pkg / "kernels").glob("*.py")), pkg / "store.py", pkg / "_kernels.py"]
    for f in files:
        if not f.exists():
            continue
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        h.update(ast.dump(tree).encode())
    return h.hexdigest()[:8]


def git_state() -> dict:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "connectome_dask"], cwd=ROOT,
                               capture_output=True, text=True, check=False).stdout.strip()
        return {"commit": head, "package_dirty": bool(dirty)}
    except OSError:
        return {}


def dataset_key(synapses: int, neurons: int, seed: int = 0, parquet: bool = True) -> str:
    m = "jfrc2np" if mesh_dir() is not None else "procedural"
    return (f"brain_s{synapses}_n{neurons}_seed{seed}_{m}" + ("" if parquet else "_noparquet")
            + f"_code{code_fingerprint()}")


def dataset(synapses: int, neurons: int, seed: int = 0, parquet: bool = True, root: Path = DATA,
            log=print) -> dict:
    """Build (or reuse) the cached whole-brain synthetic dataset; return its ``dataset.json`` dict.

    The generator runs in a fresh subprocess (its time and peak RSS are recorded).
    """
    d = root / dataset_key(synapses, neurons, seed, parquet)
    info_path = d / "dataset.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if (d / "store" / "meta.json").exists():
            info["cached"] = True
            return info
    d.mkdir(parents=True, exist_ok=True)
    log(f"building dataset {d.name} ...")
    r = run_child("benchmarks._common:_build_dataset", synapses=synapses, neurons=neurons, seed=seed,
                  parquet=parquet, folder=str(d))
    if "error" in r:
        raise RuntimeError(f"dataset build failed:\n{r['error']}")
    info = {
        "key": d.name, "folder": str(d), "store": str(d / "store"),
        "parquet": str(d / "synapses.parquet") if parquet else None,
        "neurons_parquet": str(d / "neurons.parquet"),
        "n_synapses": synapses, "n_neurons": neurons, "seed": seed,
        "meshes": str(mesh_dir()) if mesh_dir() else "procedural",
        "build": r,
    }
    write_json(info_path, info)
    info["cached"] = False
    return info


def _build_dataset(synapses: int, neurons: int, seed: int, parquet: bool, folder: str) -> dict:
    import shutil

    import pandas as pd

    from connectome_dask import datasets

    d = Path(folder)
    store = d / "store"
    for p in (store, d / "synapses.parquet"):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    md = mesh_dir()
    t0 = time.perf_counter()
    conn = datasets.synthetic(
        store, n_neurons=neurons, n_synapses=synapses, meshes=md, seed=seed,
        parquet=(d / "synapses.parquet") if parquet else None, skeletons=False, progress=False,
        overwrite=True, name=f"synthetic whole brain {human(synapses)}",
    )
    dt = time.perf_counter() - t0
    nd = conn.neurons
    pd.DataFrame({"root_id": nd["bodyId"].astype("int64"), "cell_type": nd["type"].astype("string")}).to_parquet(
        d / "neurons.parquet", index=False)

    def size(p: Path) -> int:
        return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())

    return {
        "seconds": dt, "n_types": int(nd["type"].nunique()), "n_neurons": conn.n_neurons,
        "store_mb": size(store) / 2**20,
        "parquet_mb": size(d / "synapses.parquet") / 2**20 if parquet else None,
    }


def ensure_rois(info: dict, log=print) -> dict:
    """Assign the dataset's meshes to every synapse site once (cached in the store); record the time."""
    info_path = Path(info["folder"]) / "dataset.json"
    saved = json.loads(info_path.read_text())
    if saved.get("assign_rois") and "error" not in saved["assign_rois"]:
        return saved["assign_rois"]
    log("assign_rois on the cached store (once) ...")
    r = run_child("benchmarks._common:_assign_rois", store=info["store"])
    saved["assign_rois"] = r
    write_json(info_path, saved)
    if "error" in r:
        raise RuntimeError(f"assign_rois failed:\n{r['error']}")
    return r


def _assign_rois(store: str) -> dict:
    import dask

    import connectome_dask as cd
    from connectome_dask import datasets
    from connectome_dask.rois import RoiSet

    dask.config.set(scheduler="threads")
    conn = cd.open(store, set_default=False)
    md = mesh_dir()
    t0 = time.perf_counter()
    rs = RoiSet.from_directory(md, scale=1000) if md else RoiSet.from_directory(datasets.meshes_for(conn))
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    rs.grid()
    t_grid = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = conn.assign_rois(rs, progress=False)
    dt = time.perf_counter() - t0
    inside = float((new.read_synapses(["roi_post"], 0, min(new.n_synapses, 1 << 22))["roi_post"] >= 0).mean())
    return {"seconds": dt, "load_meshes_s": t_load, "grid_build_s": t_grid, "n_rois": len(new.roi_names),
            "points": 2 * new.n_synapses, "Mpts_per_s": 2 * new.n_synapses / dt / 1e6,
            "fraction_post_sites_in_a_roi": inside, "scheduler": "threads (2 threads, in-process)"}


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "child":
        _child_main(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit("usage: python -m benchmarks._common child MODULE:FUNC JSON")


def ten_rois(names) -> list[str]:
    """The 10 ROIs of the filtered benchmarks: every tenth name in sorted order.

    Examples
    --------
    >>> ten_rois([f"R{i:02d}" for i in range(30)])[:3]
    ['R00', 'R03', 'R06']
    """
    names = sorted(names)
    return names[:: max(1, len(names) // 10)][:10]
