"""Kill fuzzing: SIGKILL every writer at random points; the previous data survives byte for byte.

For each writer (``ingest``, ``assign_rois``, ``datasets.synthetic``,
``NestedMatrix.to_zarr``, ``save_dataarray``) one helper process imports
everything once and warms up (numba, zarr), then ``os.fork()``s a child per
trial that runs one write (``scheduler="sync"``); the helper SIGKILLs it after a
random delay drawn uniformly (seeded) over the duration of an uninterrupted
run of the same write, measured the same way. Each trial writes the *other*
of two variants (A/B data) than the one on disk, so a landed commit is
always visible.

After every trial the test checks, against facts computed independently in
this process (file hashes, reference stores written without interruption,
pandas recounts):

* either the target is byte-identical to before (every file hashed; inside a
  store only the entries ``unreferenced()`` lists may be new) and reads give
  the previous data, or the write had committed and the target holds exactly
  the new data (a kill that landed after the commit counts as a completed
  write);
* at the end one more uninterrupted write succeeds, is correct, and leaves
  nothing behind: no ``.<name>.tmp-*`` beside the target, ``unreferenced()`` and
  ``stale_siblings()`` empty, nothing but the target and its lock file in the
  parent directory.

Kills are drawn until 20 of them landed mid-write (at most 80 kills; kills after the commit are checked too).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from connectome_dask.ingest import ingest
from connectome_dask.matrix import NestedMatrix, open_dataarray, open_matrix
from connectome_dask.store import Connectome
from tests.reliability import _reliability_helpers as H

pytestmark = pytest.mark.timeout(300)

#: kills per writer (CONNECTOME_DASK_FUZZ_TRIALS raises it for a longer stress run)
N_TRIALS = max(20, int(os.environ.get("CONNECTOME_DASK_FUZZ_TRIALS", "20")))
MAX_TRIALS = 4 * N_TRIALS  # bound on kills drawn to get N_TRIALS of them mid-write
SEED = 20240611
VARIANTS = ("A", "B")


def _other(v: str) -> str:
    return "B" if v == "A" else "A"


@pytest.fixture(autouse=True)
def _sync():
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ----------------------------------------------------------------------------- writers under test


def cave_table(n: int, seed: int) -> pd.DataFrame:
    return H.cave_table(n, seed, n_bodies=300, sort_ids=False)


box_meshes = H.box_meshes


SYNTH = {"n_neurons": 150, "n_synapses": 6000, "chunk_rows": 1024, "skeletons": 4, "progress": False}
SYNTH_SEEDS = {"A": 1, "B": 2}


class StoreKind:
    """A writer that produces a whole store (the target directory is replaced)."""

    in_place = False

    def __init__(self, root: Path):
        self.root = root
        self.target = root / "out" / "store"

    # -- what the test compares
    def state(self) -> dict[str, str]:
        """Digest of every file the store reads (unreferenced leftovers of a killed write left out)."""
        if not self.target.exists():
            return {}
        left = {p.relative_to(self.target).as_posix() for p in Connectome(self.target).unreferenced()}

        def excluded(rel: Path) -> bool:
            return any(rel.as_posix() == x or rel.as_posix().startswith(x + "/") for x in left)

        if not self.in_place:
            assert not left, f"{self.target}: unreferenced entries inside a freshly written store: {left}"
        return H.tree_digest(self.target, exclude=excluded)

    def leftovers(self) -> list[str]:
        conn = Connectome(self.target)
        out = [str(p) for p in conn.unreferenced()] + [str(p) for p in conn.stale_siblings()]
        out += [str(p) for p in self.target.parent.glob(f".{self.target.name}.tmp-*")]
        extra = sorted(p.name for p in self.target.parent.iterdir()
                       if p.name not in (self.target.name, f".{self.target.name}.lock"))
        return sorted(set(out)) + [f"unexpected entry beside the store: {n}" for n in extra]

    def compare_store(self, ref: Connectome) -> None:
        conn = Connectome(self.target)
        assert conn.n_synapses == ref.n_synapses and conn.n_neurons == ref.n_neurons
        assert conn.synapse_columns == ref.synapse_columns
        got, want = conn.read_synapses(conn.synapse_columns), ref.read_synapses(ref.synapse_columns)
        for c in want:
            assert np.array_equal(got[c], want[c]), f"column {c!r} differs from the reference"
        pd.testing.assert_frame_equal(conn.neurons, ref.neurons)
        gp, wp = conn.read_pairs(), ref.read_pairs()
        assert all(np.array_equal(gp[c], wp[c]) for c in wp)


class IngestKind(StoreKind):
    name = "ingest"

    def prepare(self) -> dict:
        src = self.root / "src"
        src.mkdir()
        self.sources = {}
        self.tables = {}
        for v, (n, seed) in {"A": (6000, 1), "B": (9000, 2)}.items():
            df = cave_table(n, seed)
            p = src / f"{v}.parquet"
            df.to_parquet(p, row_group_size=2000)
            self.sources[v], self.tables[v] = str(p), df
        self.kw = {"chunk_rows": 1024, "batch_rows": 2000, "bucket_rows": 3000, "progress": False}
        self.refs = {v: ingest(self.sources[v], self.root / "ref" / v, **self.kw) for v in VARIANTS}
        return {"sources": self.sources, "kw": self.kw, "target": str(self.target),
                "warm": str(self.root / "warm" / "store")}

    setup = """
from connectome_dask.ingest import ingest
def warm():
    ingest(CFG["sources"]["A"], CFG["warm"], overwrite=True, **CFG["kw"])
def write(v):
    ingest(CFG["sources"][v], CFG["target"], overwrite=True, **CFG["kw"])
"""

    def verify(self, v: str) -> None:
        self.compare_store(self.refs[v])
        # independent of the package: the connection table is a pandas groupby of the source
        conn = Connectome(self.target)
        src = self.tables[v]
        ref = src.groupby(["pre_pt_root_id", "post_pt_root_id"]).size().reset_index()
        p = conn.read_pairs()
        body = conn.body_ids
        got = pd.DataFrame({"a": body[p["pre"]], "b": body[p["post"]], "w": p["weight"]})
        got = got.sort_values(["a", "b"]).to_numpy()
        assert conn.n_synapses == len(src) == int(p["weight"].sum())
        assert np.array_equal(got, ref.sort_values(["pre_pt_root_id", "post_pt_root_id"]).to_numpy())


class SyntheticKind(StoreKind):
    name = "synthetic"

    def prepare(self) -> dict:
        from connectome_dask.datasets import synthetic

        self.refs = {v: synthetic(self.root / "ref" / v, seed=SYNTH_SEEDS[v], meshes=box_meshes(), **SYNTH)
                     for v in VARIANTS}
        return {"target": str(self.target), "warm": str(self.root / "warm" / "store"),
                "synth": SYNTH, "seeds": SYNTH_SEEDS}

    setup = """
from connectome_dask.datasets import synthetic
from tests.reliability._reliability_helpers import box_meshes
def warm():
    synthetic(CFG["warm"], seed=CFG["seeds"]["A"], meshes=box_meshes(), overwrite=True, **CFG["synth"])
def write(v):
    synthetic(CFG["target"], seed=CFG["seeds"][v], meshes=box_meshes(), overwrite=True, **CFG["synth"])
"""

    def verify(self, v: str) -> None:
        ref = self.refs[v]
        self.compare_store(ref)
        conn = Connectome(self.target)
        assert conn.meta["extra"]["generator"]["seed"] == SYNTH_SEEDS[v]
        for p in sorted(ref.skeleton_dir.glob("*.swc")):
            assert (conn.skeleton_dir / p.name).read_bytes() == p.read_bytes()
        # independent recount of the connection table from the synapse rows
        s = pd.DataFrame(conn.read_synapses(["pre", "post"]))
        w = s.groupby(["pre", "post"]).size()
        pairs = conn.read_pairs()
        assert np.array_equal(w.to_numpy(), pairs["weight"])
        assert np.array_equal(w.index.get_level_values(0).to_numpy(), pairs["pre"])


class AssignKind(StoreKind):
    name = "assign_rois"
    in_place = True

    def prepare(self) -> dict:
        self.conn0, _, _ = H.build_tiny_store(
            self.target, n_neurons=200, n_synapses=8000, chunk_rows=1024, seed=3)
        self.base = self.conn0.read_synapses([c for c in self.conn0.synapse_columns])
        self.names = {"A": H.SLAB_NAMES, "B": H.Y_SLAB_NAMES}
        self.axis = {"A": 0, "B": 1}
        self.labels = {}
        with dask.config.set({"connectome_dask.partition_chunks": 1}):
            for v in VARIANTS:
                ref = H.copy_store(self.target, self.root / "ref" / v)
                c = Connectome(ref).assign_rois(H.axis_slab_roiset(self.axis[v]), progress=False)
                self.labels[v] = c.read_synapses(["roi_pre", "roi_post"])
        # the reference labels agree with the slab geometry wherever a site is not on a face
        for v in VARIANTS:
            for s in ("pre", "post"):
                coord = self.base[f"{'xy'[self.axis[v]]}_{s}"]  # rows in store order
                ok = H.far_from_slab_faces(coord)
                assert ok.mean() > 0.9
                want = H.slab_codes(coord)
                assert np.array_equal(self.labels[v][f"roi_{s}"][ok], want[ok])
        return {"target": str(self.target), "warm": str(self.root / "warm" / "store")}

    setup = """
import shutil
from connectome_dask.store import Connectome
dask.config.set({"connectome_dask.partition_chunks": 1})  # many partitions: many kill points
ROIS = {"A": H.axis_slab_roiset(0), "B": H.axis_slab_roiset(1)}
def warm():
    shutil.copytree(CFG["target"], CFG["warm"])
    for v in "ABA":
        Connectome(CFG["warm"]).assign_rois(ROIS[v], progress=False)
def write(v):
    Connectome(CFG["target"]).assign_rois(ROIS[v], progress=False)
"""

    def verify(self, v: str) -> None:
        conn = Connectome(self.target)
        assert conn.roi_names == self.names[v]
        got = conn.read_synapses(conn.synapse_columns)
        for c in ("roi_pre", "roi_post"):
            assert np.array_equal(got[c], self.labels[v][c]), c
        for c, a in self.base.items():
            assert np.array_equal(got[c], a), f"column {c!r} changed"
        # the post-ordered copy follows the new labels (independent: pandas stable sort by post)
        rows = conn.synapses_of(np.arange(conn.n_neurons), "post", ["roi_post"])
        assert np.array_equal(rows["row"], np.arange(conn.n_synapses))
        assert np.array_equal(rows["roi_post"], got["roi_post"])


class MatrixKind:
    in_place = False

    def __init__(self, root: Path):
        self.root = root
        self.target = root / "out" / "m.zarr"

    def source(self) -> Connectome:
        conn, _, _ = H.build_tiny_store(self.root / "src", n_neurons=300, n_synapses=8000, seed=5)
        return conn

    def state(self) -> dict[str, str]:
        return H.tree_digest(self.target)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.target.parent.iterdir()
                      if p.name not in (self.target.name, f".{self.target.name}.lock"))


class ToZarrKind(MatrixKind):
    name = "to_zarr"
    modes = {"A": "count", "B": "relative_outgoing"}

    def prepare(self) -> dict:
        src = self.source()
        self.m = {v: NestedMatrix.from_synapses(src, weight_mode=mode, progress=False)
                  for v, mode in self.modes.items()}
        return {"source": str(src.path), "target": str(self.target), "modes": self.modes,
                "warm": str(self.root / "warm" / "m.zarr")}

    setup = """
from connectome_dask.matrix import NestedMatrix
from connectome_dask.store import Connectome
SRC = Connectome(CFG["source"])
M = {v: NestedMatrix.from_synapses(SRC, weight_mode=m, progress=False) for v, m in CFG["modes"].items()}
def warm():
    M["A"].to_zarr(CFG["warm"], overwrite=True)
def write(v):
    M[v].to_zarr(CFG["target"], overwrite=True)
"""

    def verify(self, v: str) -> None:
        m, want = open_matrix(self.target), self.m[v]
        assert m.ordered_neurons == want.ordered_neurons
        assert (m.to_scipy() != want.to_scipy()).nnz == 0
        assert np.array_equal(m.sum_type_matrix.to_numpy(), want.sum_type_matrix.to_numpy())


class DataArrayKind(MatrixKind):
    name = "save_dataarray"
    by = {"A": "type", "B": "instance"}

    def prepare(self) -> dict:
        src = self.source()
        self.da = {v: src.adjacency(by=b, progress=False) for v, b in self.by.items()}
        return {"source": str(src.path), "target": str(self.target), "by": self.by,
                "warm": str(self.root / "warm" / "m.zarr")}

    setup = """
from connectome_dask.matrix import save_dataarray
from connectome_dask.store import Connectome
SRC = Connectome(CFG["source"])
D = {v: SRC.adjacency(by=b, progress=False) for v, b in CFG["by"].items()}
def warm():
    save_dataarray(D["A"], CFG["warm"], overwrite=True)
def write(v):
    save_dataarray(D[v], CFG["target"], overwrite=True)
"""

    def verify(self, v: str) -> None:
        got = open_dataarray(self.target)
        assert got.identical(self.da[v])
        assert got.attrs == self.da[v].attrs


KINDS = {k.name: k for k in (IngestKind, AssignKind, SyntheticKind, ToZarrKind, DataArrayKind)}


# ----------------------------------------------------------------------------- the fuzz loop


def _server_setup(kind, cfg: dict) -> str:
    return (
        "import numpy as np, pandas as pd\n"
        "from tests.reliability import _reliability_helpers as H\n"
        f"CFG = json.loads({json.dumps(cfg)!r})\n"
        + kind.setup
        + """
def handle(cmd):
    if cmd["op"] == "warm":
        warm()
        return {}
    return timed_write(write, cmd["variant"], cmd.get("delay"))
"""
    )


def _check_result(r: dict, what: str) -> None:
    errors = [m for m in r["msgs"] if "error" in m]
    assert not errors, f"{what}: the write failed by itself: {errors}"
    assert r["status"] in (0, -9), f"{what}: exit status {r['status']}"


@pytest.mark.parametrize("kind_name", list(KINDS))
def test_kill_fuzz(kind_name, tmp_path):
    kind = KINDS[kind_name](tmp_path)
    cfg = kind.prepare()
    kind.target.parent.mkdir(exist_ok=True)
    log = []
    with H.ForkServer(_server_setup(kind, cfg)) as srv:
        srv(op="warm")
        # uninterrupted runs (A, B, A, B, A): the first target states, and the duration
        # (median of the last three: the first runs in fresh children are slower)
        durations = []
        cur = None
        for v in ("A", "B", "A", "B", "A"):
            r = srv(op="write", variant=v)
            _check_result(r, f"uninterrupted {kind_name} {v}")
            assert r["done"] and r["status"] == 0, r
            durations.append(r["elapsed"])
            kind.verify(v)
            cur = v
        duration = float(np.median(durations[2:]))
        rng = np.random.default_rng([SEED, list(KINDS).index(kind_name)])
        mid = 0
        i = -1
        # kills are drawn until N_TRIALS of them landed mid-write (the write's duration
        # varies with the machine's load; kills after the commit are checked too)
        while mid < N_TRIALS and i + 1 < MAX_TRIALS:
            i += 1
            v = _other(cur)
            before = kind.state()
            delay = float(rng.uniform(0.0, duration))
            r = srv(op="write", variant=v, delay=delay)
            _check_result(r, f"trial {i} ({kind_name} {v}, kill at {delay:.4f} s)")
            after = kind.state()
            if after == before:
                assert not r["done"], f"trial {i}: the write returned but the target did not change"
                kind.verify(cur)  # the previous data, exactly
                mid += 1
                outcome = "mid-write"
            else:
                kind.verify(v)  # the kill landed after the commit: the new data, exactly
                cur = v
                outcome = "after commit" + (" (write returned)" if r["done"] else " (killed before returning)")
            log.append(f"{i:2d} kill at {delay * 1e3:7.1f} ms: {outcome}")
        # one more, uninterrupted write: correct, and nothing left behind
        v = _other(cur)
        r = srv(op="write", variant=v)
        _check_result(r, f"final {kind_name} {v}")
        assert r["done"] and r["status"] == 0
    kind.verify(v)
    assert kind.leftovers() == []
    if isinstance(kind, StoreKind):
        assert Connectome(kind.target).check() == []
    summary = (f"{kind_name}: {mid}/{i + 1} kills mid-write, uninterrupted write "
               f"{duration * 1e3:.0f} ms (runs {[round(d * 1e3) for d in durations]} ms)")
    print(summary + "\n" + "\n".join(log))
    assert mid >= N_TRIALS, summary + "\n" + "\n".join(log)


def test_fuzz_detects_a_torn_write(tmp_path):
    """The comparison can fail: a store whose array was written in place (not atomically) is caught."""
    kind = AssignKind(tmp_path)
    kind.prepare()
    with dask.config.set({"connectome_dask.partition_chunks": 1}):
        Connectome(kind.target).assign_rois(H.axis_slab_roiset(0), progress=False)
    kind.verify("A")
    before = kind.state()
    conn = Connectome(kind.target)
    import zarr

    a = zarr.open_array(str(conn._array_path("roi_pre")), mode="r+")
    a[:1024] = 7  # what a writer that overwrote the live array in place would leave
    assert kind.state() != before
    with pytest.raises(AssertionError):
        kind.verify("A")
