"""Helpers shared by the reliability tests (imported as a plain module, see conftest.py).

Everything here is independent of the package internals it tests: references
are computed with pandas/numpy, directory snapshots hash every file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]

#: slab boxes along x, 100 nm wide: code k covers x in [100 k, 100 (k + 1)) as
#: ``roi_code_of_x`` of the shared fixtures (x >= 900: no ROI)
SLAB_NAMES = [f"S{k}" for k in range(9)]


# ----------------------------------------------------------------------------- files


def tree_digest(root: Path, exclude: Callable[[Path], bool] | None = None) -> dict[str, str]:
    """sha256 of every file below ``root`` (relative path -> digest), plus empty dirs."""
    root = Path(root)
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if exclude is not None and exclude(rel):
            continue
        if p.is_file():
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir() and not any(p.iterdir()):
            out[str(rel) + "/"] = "<empty dir>"
    return out


def copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.01) -> None:
    """Poll ``cond`` until true; fail with ``what`` after ``timeout`` seconds."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------- references


def pair_reference(syn: pd.DataFrame, by_roi: bool = False) -> pd.DataFrame:
    """Pure pandas groupby: synapses per (pre, post[, roi_post]) sorted, int64 weights."""
    keys = ["pre", "post"] + (["roi_post"] if by_roi else [])
    ref = syn.groupby(keys, sort=True).size().rename("weight").reset_index()
    if by_roi:
        ref = ref.rename(columns={"roi_post": "roi"})
    ref["weight"] = ref["weight"].astype(np.int64)
    return ref


def assert_pairs_equal(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(got.columns) == list(ref.columns)
    assert len(got) == len(ref)
    for c in ref.columns:
        a, b = got[c].to_numpy(), ref[c].to_numpy()
        assert np.array_equal(a.astype(np.int64), b.astype(np.int64)), c
    assert got["weight"].dtype == np.int64


def slab_roiset():
    """Nine box meshes tiling x in [-100, 900) (S0 starts below 0 so clipped x = 0 is inside)."""
    import trimesh

    from connectome_dask.rois import RoiSet

    meshes = {}
    for k, name in enumerate(SLAB_NAMES):
        lo = -100.0 if k == 0 else 100.0 * k
        hi = 100.0 * (k + 1)
        box = trimesh.creation.box(extents=[hi - lo, 1300.0, 1300.0])
        box.apply_translation([(lo + hi) / 2, 500.0, 500.0])
        meshes[name] = box
    return RoiSet.from_meshes(meshes, name="slabs")


def slab_codes(x: np.ndarray) -> np.ndarray:
    b = np.floor(np.asarray(x, dtype=np.float64) / 100.0).astype(np.int64)
    b = np.clip(b, 0, 9)
    return np.where(b == 9, -1, b).astype(np.int16)


def far_from_slab_faces(x: np.ndarray, eps: float = 1e-2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.abs(x - np.round(x / 100.0) * 100.0) > eps


# ----------------------------------------------------------------------------- subprocess kills


def python_script(body: str) -> str:
    """A script for ``python -c`` that runs ``body`` with the repo importable."""
    head = f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
    return head + textwrap.dedent(body)


def run_and_kill(script: str, ready: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Start ``python -c script``; once ``ready()`` holds, SIGKILL it (it must still be running)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", DASK_CONNECTOME_DASK__PROGRESS="False")
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        t0 = time.monotonic()
        while not ready():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(
                    f"the writer exited ({proc.returncode}) before {what}:\n{out.decode()}\n{err.decode()}"
                )
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.005)
        assert proc.poll() is None, "writer finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for s in (proc.stdout, proc.stderr):
            if s is not None:
                s.close()


HOLD_SNIPPET = '''
import os, time
def _hold(marker, what):
    """Tell the test we are mid-write, then wait to be killed (bounded)."""
    open(marker, "w").write(what)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        time.sleep(0.05)
    raise SystemExit("not killed within 120 s")
'''


def new_token() -> str:
    return uuid.uuid4().hex[:8]


# ----------------------------------------------------------------------------- worker fault injection


def _marker(d: str, kind: str, tag: str) -> None:
    name = f"{kind}~{tag}~{os.getpid()}~{uuid.uuid4().hex[:8]}"
    with open(os.path.join(d, name), "w"):
        pass


def markers(d: Path, kind: str, tag: str | None = None) -> list[tuple[str, int]]:
    """(tag, pid) of the markers of one kind (``start``, ``held``, ``done``)."""
    out = []
    for p in Path(d).iterdir():
        parts = p.name.split("~")
        if len(parts) == 4 and parts[0] == kind and (tag is None or parts[1] == tag):
            out.append((parts[1], int(parts[2])))
    return out


from distributed.diagnostics.plugin import WorkerPlugin  # noqa: E402


def _claim_hold(d: str, hold: str, fname: str, start: int) -> bool:
    """True for exactly one task: the first of ``fname`` starting at or after the row in ``hold``."""
    try:
        with open(hold) as f:
            min_start = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return False
    if start < min_start:
        return False
    try:
        fd = os.open(os.path.join(d, f"claimed~{fname}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


class FaultInjector(WorkerPlugin):
    """Worker plugin: wraps ``connectome_dask.store._run_block`` (every per-partition task).

    Each task writes ``start`` / ``done`` marker files named by function and
    first row. While a file ``hold~<function name>`` holding a row number
    exists, the first task of that function starting at or after that row
    (claimed atomically) writes a ``held`` marker and waits (bounded), so the
    test can kill its worker process at a known point: some tasks finished,
    this one in flight. Partition boundaries need not be known in advance.
    For ``_write_outputs`` (column writes such as ``assign_rois``) the held task
    first writes garbage (-7) into its output rows, a torn write the retry
    must overwrite. Installed on every worker, including ones the nanny restarts.
    """

    name = "connectome-dask-reliability-faults"

    def __init__(self, marker_dir: str):
        self.marker_dir = str(marker_dir)

    def setup(self, worker=None):
        import connectome_dask.store as st

        if getattr(st._run_block, "_reliability_wrapped", False):
            return
        orig = st._run_block
        d = self.marker_dir

        def run_block(func, paths, gen, start, stop, args, kwargs):
            fname = getattr(func, "__name__", "task")
            tag = f"{fname}-{start}"
            _marker(d, "start", tag)
            hold = os.path.join(d, f"hold~{fname}")
            if _claim_hold(d, hold, fname, start):
                if fname == "_write_outputs":
                    import zarr

                    for p in args[1].values():
                        arr = zarr.open_array(p, mode="r+")
                        arr[start:stop] = np.full(stop - start, -7, dtype=arr.dtype)
                _marker(d, "held", tag)
                t0 = time.monotonic()
                while os.path.exists(hold) and time.monotonic() - t0 < 120:
                    time.sleep(0.01)
            out = orig(func, paths, gen, start, stop, args, kwargs)
            _marker(d, "done", tag)
            return out

        run_block._reliability_wrapped = True  # type: ignore[attr-defined]
        run_block._reliability_orig = orig  # type: ignore[attr-defined]
        st._run_block = run_block

    def teardown(self, worker=None):
        import connectome_dask.store as st

        orig = getattr(st._run_block, "_reliability_orig", None)
        if orig is not None:
            st._run_block = orig
