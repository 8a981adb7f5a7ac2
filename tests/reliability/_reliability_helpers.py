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
    """A script for ``python -c`` that runs ``body`` (run it with :func:`child_env`)."""
    return "import sys\n" + textwrap.dedent(body)


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a helper process: the repo root on ``PYTHONPATH`` (``tests.*`` importable)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", DASK_CONNECTOME_DASK__PROGRESS="False", **extra)


def run_and_kill(script: str, ready: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Start ``python -c script``; once ``ready()`` holds, SIGKILL it (it must still be running)."""
    env = child_env()
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
    """Worker plugin: wraps ``connectome_dask.store.reader._run_block`` (every per-partition task).

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
        import connectome_dask.store.reader as st  # the module map_partitions' tasks resolve _run_block in

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
        import connectome_dask.store.reader as st

        orig = getattr(st._run_block, "_reliability_orig", None)
        if orig is not None:
            st._run_block = orig


# ----------------------------------------------------------------------------- tiny stores and ROI sets


def tiny_tables(n_neurons: int = 300, n_synapses: int = 10_000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random neuron and synapse tables (dense pre/post, positions in [0, 1000) nm, confidence)."""
    rng = np.random.default_rng(seed)
    body = rng.choice(np.arange(10_000, 10_000_000), size=n_neurons, replace=False).astype(np.int64)
    types = np.array([f"T{k}" for k in rng.integers(0, 12, n_neurons)], dtype=object)
    neurons = pd.DataFrame({"bodyId": body, "type": pd.array(types, dtype="string"),
                            "instance": pd.array([f"{t}_{i % 2}" for i, t in enumerate(types)], dtype="string")})
    n_pairs = max(1, n_synapses // 6)
    pp = rng.integers(0, n_neurons, n_pairs)
    pq = rng.integers(0, n_neurons, n_pairs)
    pick = rng.integers(0, n_pairs, n_synapses)
    home = rng.uniform(0, 1000, n_neurons)
    pre, post = pp[pick].astype(np.int32), pq[pick].astype(np.int32)
    x = np.clip(home[pre] + rng.normal(0, 150, n_synapses), 0, 999)
    syn = pd.DataFrame({"pre": pre, "post": post})
    for s, dx in (("pre", 0.0), ("post", 1.0)):
        syn[f"x_{s}"] = np.clip(x + dx * rng.normal(0, 20, n_synapses), 0, 999).astype(np.float32)
        syn[f"y_{s}"] = rng.uniform(0, 999, n_synapses).astype(np.float32)
        syn[f"z_{s}"] = rng.uniform(0, 999, n_synapses).astype(np.float32)
    syn["confidence"] = rng.uniform(0, 1, n_synapses).astype(np.float32)
    return neurons, syn


def tiny_swc(body: int, n: int = 12) -> str:
    lines = [f"# body {body}"] + [f"{i} 0 {i * 10.0} {body % 97} 0 1 {i - 1 if i > 1 else -1}"
                                  for i in range(1, n + 1)]
    return "\n".join(lines) + "\n"


def build_tiny_store(path: Path, n_neurons: int = 300, n_synapses: int = 10_000, *, seed: int = 0,
                     chunk_rows: int = 1024, skeletons: int = 3, overwrite: bool = False):
    """``write_store`` of :func:`tiny_tables` with a few SWC skeletons; returns (conn, neurons, synapses)."""
    from connectome_dask.store import write_store

    neurons, syn = tiny_tables(n_neurons, n_synapses, seed)
    skel = {int(b): tiny_swc(int(b)) for b in neurons["bodyId"].iloc[:skeletons]}
    conn = write_store(path, neurons, syn, {"name": Path(path).name}, chunk_rows=chunk_rows,
                       skeletons=skel or None, overwrite=overwrite)
    return conn, neurons, syn


#: names of the y-axis slabs of :func:`axis_slab_roiset`
Y_SLAB_NAMES = [f"Y{k}" for k in range(9)]


def axis_slab_roiset(axis: int = 0):
    """Nine slab boxes along ``axis`` (0: same meshes and names as :func:`slab_roiset`; 1: along y, Y0..Y8)."""
    if axis == 0:
        return slab_roiset()
    import trimesh

    from connectome_dask.rois import RoiSet

    meshes = {}
    for k, name in enumerate(Y_SLAB_NAMES):
        lo = -100.0 if k == 0 else 100.0 * k
        hi = 100.0 * (k + 1)
        box = trimesh.creation.box(extents=[1300.0, hi - lo, 1300.0])
        box.apply_translation([500.0, (lo + hi) / 2, 500.0])
        meshes[name] = box
    return RoiSet.from_meshes(meshes, name="yslabs")


# ----------------------------------------------------------------------------- fork server

FORK_SERVER = r'''
import json, os, select, signal, sys, time, traceback, warnings
warnings.simplefilter("ignore")
import dask
dask.config.set(scheduler="sync")
dask.config.set({"connectome_dask.progress": False})
from connectome_dask.store import StoreError

_OUT = sys.stdout
sys.stdout = sys.stderr  # only the protocol goes to the real stdout


class Child:
    """A forked child running ``fn(send, *args)``; ``send(**msg)`` writes a JSON line to the parent."""

    def __init__(self, fn, *args, config=None):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0

            def send(**msg):
                os.write(w, (json.dumps(msg) + "\n").encode())

            try:
                dask.config.set(scheduler="sync")
                if config:
                    dask.config.set(config)
                fn(send, *args)
            except BaseException as e:  # reported, never silent
                try:
                    send(error=type(e).__name__, message=str(e)[:3000],
                         store_error=isinstance(e, StoreError), tb=traceback.format_exc()[-3000:])
                except BaseException:
                    pass
                code = 1
            os._exit(code)
        os.close(w)
        self.pid, self.fd, self.buf, self.status, self.eof = pid, r, b"", None, False

    def recv(self, timeout=120.0):
        """The next message (dict), or None at EOF (child exited)."""
        t_end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                return None
            left = t_end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"child {self.pid}: no message within {timeout} s")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    self.eof = True
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout=180.0):
        """Reap the child; return (exit code or -signal, every message not yet received).

        The pipe is drained while waiting (a child blocked on a full pipe never exits).
        """
        t_end = time.monotonic() + timeout
        while True:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > t_end:
                self.kill()
            if not self.eof and select.select([self.fd], [], [], 0.002)[0]:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    self.eof = True
                self.buf += chunk
            else:
                time.sleep(0.002)
        self.status = os.waitstatus_to_exitcode(st)
        msgs = []
        while True:
            m = self.recv(timeout=10)
            if m is None:
                break
            msgs.append(m)
        os.close(self.fd)
        return self.status, msgs


def serve(handle):
    """Answer JSON commands from stdin with ``handle(cmd)`` (a JSON line each) until EOF."""
    _OUT.write(json.dumps({"ready": True}) + "\n")
    _OUT.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            res = handle(json.loads(line))
        except BaseException as e:
            res = {"server_error": f"{type(e).__name__}: {e}", "tb": traceback.format_exc()[-4000:]}
        _OUT.write(json.dumps(res) + "\n")
        _OUT.flush()


def timed_write(write, variant, delay):
    """Fork a child running ``write(variant)``; SIGKILL it ``delay`` s after it starts (None: never).

    Returns ``done`` (the write returned before the kill), ``status`` (exit code or
    -signal) and ``elapsed`` (start to the child's "done", or to its death).
    """
    def body(send, variant):
        send(go=True)
        write(variant)
        send(done=True)

    c = Child(body, variant)
    first = c.recv()
    if first is None or "go" not in first:
        status, msgs = c.wait()
        return {"done": False, "status": status, "elapsed": 0.0, "msgs": [first, *msgs]}
    t0 = time.perf_counter()
    done = False
    if delay is None:
        m = c.recv(timeout=300)
        done = bool(m and m.get("done"))
        elapsed = time.perf_counter() - t0
        extra = [m] if m is not None and not done else []
    else:
        t_kill = t0 + float(delay)
        while True:  # sleep to the kill time (finer near the end)
            left = t_kill - time.perf_counter()
            if left <= 0:
                break
            time.sleep(left if left < 0.002 else left * 0.8)
        c.kill()
        elapsed = time.perf_counter() - t0
        extra = []
    status, msgs = c.wait()
    msgs = extra + msgs
    done = done or any(m.get("done") for m in msgs)
    return {"done": done, "status": status, "elapsed": elapsed,
            "msgs": [m for m in msgs if not m.get("done")]}
'''


class ForkServer:
    """A helper process that imports everything once and forks a child per trial (see FORK_SERVER).

    ``setup`` is Python code run in the server after the imports; it must define
    ``handle(cmd) -> dict`` (it may use ``Child``, ``timed_write``, ``serve``).
    """

    def __init__(self, setup: str, *, cwd: Path | None = None, timeout: float = 300.0):
        script = python_script(FORK_SERVER + "\n" + textwrap.dedent(setup) + "\nserve(handle)\n")
        env = child_env()
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, cwd=cwd, text=True, bufsize=1,
        )
        self._err: list[str] = []
        import threading

        def drain():
            for line in self.proc.stderr:
                self._err.append(line)
                del self._err[:-200]

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        first = self._read()
        assert first.get("ready"), first

    def _read(self) -> dict:
        import json
        import select

        r, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not r:
            raise AssertionError(f"fork server: no answer within {self.timeout} s\n{self.stderr()}")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise AssertionError(f"fork server died ({self.proc.returncode}):\n{self.stderr()}")
        return json.loads(line)

    def stderr(self) -> str:
        return "".join(self._err[-60:])

    def __call__(self, **cmd) -> dict:
        import json

        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        res = self._read()
        if "server_error" in res:
            raise AssertionError(f"fork server failed on {cmd}: {res['server_error']}\n{res.get('tb')}")
        return res

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc.stdout.close()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def siblings_digest(parent: Path, skip: str) -> dict[str, str]:
    """:func:`tree_digest` of ``parent`` without the entry ``skip`` and without ``.<name>.lock`` files."""
    def exclude(rel: Path) -> bool:
        return rel.parts[0] == skip or (len(rel.parts) == 1 and rel.name.endswith(".lock"))

    return tree_digest(parent, exclude=exclude)


def full_digest(root: Path, exclude: Callable[[Path], bool] | None = None) -> dict[str, str]:
    """Like :func:`tree_digest`, never following symlinks: links are recorded by their target text.

    Every directory is listed too, so a created, deleted or replaced entry of
    any kind (file, folder, symlink) changes the result.
    """
    root = Path(root)
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        for name in sorted(dirnames + filenames):
            p = d / name
            rel = p.relative_to(root)
            if exclude is not None and exclude(rel):
                continue
            if p.is_symlink():
                out[str(rel)] = "symlink -> " + os.readlink(p)
            elif p.is_dir():
                out[str(rel) + "/"] = "<dir>"
            else:
                out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
        dirnames[:] = [n for n in dirnames if not (d / n).is_symlink()
                       and not (exclude is not None and exclude((d / n).relative_to(root)))]
    return out


def cave_table(n: int, seed: int, *, n_bodies: int = 400, sort_ids: bool = True) -> pd.DataFrame:
    """A CAVE-style synapse table (FlyWire root IDs, voxel positions, connection_score)."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**12, n_bodies, replace=False)
    ids = (np.sort(ids) if sort_ids else ids).astype(np.int64) + 720575940600000000
    pos = rng.integers(0, 200_000, (n, 3))
    df = pd.DataFrame({"pre_pt_root_id": rng.choice(ids, n), "post_pt_root_id": rng.choice(ids, n)})
    for i, a in enumerate("xyz"):
        df[f"pre_pt_position_{a}"] = pos[:, i]
        df[f"post_pt_position_{a}"] = pos[:, i] + rng.integers(-50, 50, n)
    df["connection_score"] = rng.random(n) * 300
    return df


def box_meshes() -> dict:
    """Three box neuropils (tens of micrometres, in nm): a fast, deterministic mesh set for synthetic."""
    import trimesh

    out = {}
    for k in range(3):
        b = trimesh.creation.box(extents=[40_000.0, 40_000.0, 40_000.0])
        b.apply_translation([50_000.0 * k, 0.0, 0.0])
        out[f"N{k}"] = b
    return out
