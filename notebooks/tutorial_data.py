"""Shared set-up of the tutorial notebooks: paths, sizes and the tutorial store.

The notebooks run against a local connectome store written by
:func:`connectome_dask.datasets.synthetic` from the real hemibrain neuron
table (``../shared/data/hemibrain/neuron_meta.csv`` relative to the
repository root): real body IDs, cell types, instances and ``cropped`` flags,
synthetic synapses inside procedural neuropil meshes. Without the table the
neurons are synthetic too. The store is built once and reused by all three
notebooks (it is deterministic in its parameters).

Environment variables
---------------------
``CONNECTOME_DASK_NB_SMALL=1``
    Small sizes for CI (3,000 neurons, 300,000 synapses).
``CONNECTOME_DASK_NB_WORKDIR``
    Where stores, matrices and figures go (default ``<repo>/demo_output/notebooks``).
``CONNECTOME_DASK_SHARED_DATA``
    The shared data folder (default ``<repo>/../shared/data``); a missing
    folder means fully synthetic neurons.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import connectome_dask as cd

#: Types the query tutorial uses; in small mode all their neurons are kept.
TUTORIAL_TYPES = r"^(EPG|EPGt|PEN_a\(PEN1\)|PEN_b\(PEN2\)|PEG|ExR\d|Delta7|ER\d.*|MBON\d+|PFN.*|PFL\d|hDelta.*)$"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def repo_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml``), searched upwards from here."""
    here = Path(__file__).resolve().parent
    for p in (here, *here.parents):
        if (p / "pyproject.toml").exists() and (p / "connectome_dask").is_dir():
            return p
    return here.parent


@dataclass(frozen=True)
class Settings:
    small: bool
    n_neurons: int | None  # None: the whole neuron table
    n_synapses: int
    workdir: Path
    data_dir: Path
    neuron_table: Path | None

    @property
    def store_path(self) -> Path:
        src = "hemibrain" if self.neuron_table else "synthetic"
        n = "all" if self.n_neurons is None else self.n_neurons
        return self.workdir / f"{src}_{n}n_{self.n_synapses}s"


def settings() -> Settings:
    """Sizes and paths from the environment (see the module docstring)."""
    small = _env_flag("CONNECTOME_DASK_NB_SMALL")
    root = repo_root()
    data = Path(os.environ.get("CONNECTOME_DASK_SHARED_DATA") or root.parent / "shared" / "data")
    work = Path(os.environ.get("CONNECTOME_DASK_NB_WORKDIR") or root / "demo_output" / "notebooks")
    table = data / "hemibrain" / "neuron_meta.csv"
    table = table if table.exists() else None
    if small:
        n_neurons, n_synapses = 3_000, 300_000
    else:
        n_neurons, n_synapses = (None if table else 25_000), 3_000_000
    return Settings(small, n_neurons, n_synapses, work.resolve(), data, table)


def _neuron_table(s: Settings) -> pd.DataFrame | None:
    if s.neuron_table is None:
        return None
    meta = pd.read_csv(s.neuron_table)
    if "size" not in meta.columns:
        # neuPrint's body size in voxels (the tutorial shows it): not in the shared table, so a
        # deterministic stand-in of a plausible magnitude
        rng = np.random.default_rng(0)
        meta["size"] = rng.lognormal(np.log(5e8), 0.6, len(meta)).astype(np.int64)
    if s.n_neurons is None or s.n_neurons >= len(meta):
        return meta
    # keep every neuron of the tutorial's types, fill up with a fixed random sample
    keep = meta["type"].astype("string").str.match(TUTORIAL_TYPES).fillna(False).to_numpy(bool)
    rest = np.flatnonzero(~keep)
    n_more = max(0, s.n_neurons - int(keep.sum()))
    extra = np.random.default_rng(0).choice(rest, size=min(n_more, len(rest)), replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(keep), extra]))
    return meta.iloc[rows].reset_index(drop=True)


def tutorial_store(s: Settings | None = None, *, progress: bool = False) -> cd.Connectome:
    """Open the tutorial store, building it (synthetic synapses + ROI assignment) if needed.

    Returns the opened store (also the default "client" of the query functions).
    """
    from connectome_dask import datasets
    from connectome_dask.rois import RoiSet, assign_rois

    s = s or settings()
    path = s.store_path
    stamp = path.with_name(f"{path.name}.tutorial.json")  # beside the store, not inside
    want = {"n_neurons": s.n_neurons, "n_synapses": s.n_synapses,
            "neuron_table": str(s.neuron_table) if s.neuron_table else None, "seed": 0, "size": 1}
    if path.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == want:
                conn = cd.open(path)
                if conn.roi_info:
                    return conn
        except (OSError, ValueError, cd.StoreError):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    neurons = _neuron_table(s)
    conn = datasets.synthetic(
        path,
        n_neurons=None if neurons is not None else (s.n_neurons or 25_000),
        n_synapses=s.n_synapses,
        neurons=neurons,
        meshes_dir=path.with_name(f"{path.name}_meshes"),
        skeletons=100,
        chunk_rows=1 << 18,
        seed=0,
        overwrite=True,
        progress=progress,
        name="hemibrain-synthetic" if neurons is not None else "synthetic",
    )
    roiset = RoiSet.from_directory(datasets.meshes_for(conn))
    conn = assign_rois(conn, roiset, progress=progress)
    stamp.write_text(json.dumps(want))
    return cd.open(path)


# ----------------------------------------------------------------------------- the seed tutorial's store

#: (pre type pattern, post type pattern, ROI, probability of a pair, mean weight) of the seed
#: tutorial's store: the circuits neuprint-python's Query Tutorial selects (Delta7 -> PEN in the PB,
#: EPG <-> PEN, FB4Y inputs and outputs in the EB), weights of a plausible size
SEED_RULES = [
    (r"Delta7.*", r"PEN_[ab].*", "PB", 0.45, 12),
    (r"EPG", r"PEN_[ab].*", "PB", 0.25, 6),
    (r"EPG", r"Delta7.*", "PB", 0.2, 5),
    (r"PEN_[ab].*", r"EPG", "EB", 0.3, 8),
    (r"EPG", r"EPG", "EB", 0.1, 4),
    (r"EPG", r"FB4Y", "EB", 0.9, 6),
    (r"EL", r"FB4Y", "EB", 0.9, 4),
    (r"FB4Y", r"EPG", "EB", 0.9, 10),
    (r"FB4Y", r"EL", "EB", 0.9, 9),
    (r"FB4Y", r"PEN_a.*", "EB", 0.9, 8),
    (r"FB4Y", r"ExR7", "EB", 0.9, 20),
    (r"FB4Y", r"PEN_b.*", "EB", 0.9, 3),
    (r"FB4Y", r"PFN.*|hDelta.*", "FB", 0.5, 6),
    (r"PFN.*", r"hDelta.*|FB4Y", "FB", 0.3, 6),
    (r"PEN_[ab].*|EPG", r"PFN.*|ER.*", "NO", 0.05, 3),
    (r"ER.*|ExR.*", r"EL|EPG|ER.*", "EB", 0.1, 5),
]
SEED_ROIS = ["EB", "PB", "FB", "NO", "LAL(R)"]  # ROI code = index; the x band of each site (10 um wide)
SEED_ROI_INFO = {"names": SEED_ROIS, "primary": SEED_ROIS,
                 "hierarchy": {"CX": {"EB": {}, "PB": {}, "FB": {}, "NO": {}}, "LX(R)": {"LAL(R)": {}}}}
SEED_TYPES = r"^(PEN_[ab]\(PEN[12]\)|Delta7.*|EPG|FB4Y|EL|ExR\d|ER\d.*|PFN.*|hDelta.*)$"


def _seed_roi_columns(block: dict) -> dict:
    """ROI code of each site: the 10-um x band it lies in (-1 beyond the last ROI)."""
    out = {}
    for site in ("pre", "post"):
        code = np.floor(block[f"x_{site}"] / 10_000).astype(np.int16)
        code[(code < 0) | (code >= len(SEED_ROIS))] = -1
        out[f"roi_{site}"] = code
    return out


def _seed_neurons(s: Settings) -> pd.DataFrame:
    if s.neuron_table is not None:
        meta = pd.read_csv(s.neuron_table)
        keep = meta["type"].astype("string").str.match(SEED_TYPES).fillna(False).to_numpy(bool)
        n = meta.loc[keep, ["bodyId", "type", "instance", "cropped", "cellBodyFiber"]].reset_index(drop=True)
    else:  # no shared data: the same types, synthetic names
        counts = {"PEN_a(PEN1)": 20, "PEN_b(PEN2)": 22, "Delta7": 42, "EPG": 46, "FB4Y": 4, "EL": 18,
                  "ExR7": 4, "ER2": 10, "PFNa": 20, "hDeltaB": 10}
        types = [t for t, k in counts.items() for _ in range(k)]
        n = pd.DataFrame({"bodyId": 1_000_000 + np.arange(len(types)), "type": types,
                          "instance": [f"{t}_{i}" for i, t in enumerate(types)], "cropped": False,
                          "cellBodyFiber": None})
    rng = np.random.default_rng(1)
    n["cropped"] = n["cropped"].fillna(False).astype(bool)
    n.loc[n["type"] == "FB4Y", "cropped"] = False  # the tutorial selects non-cropped FB4Y
    n["status"] = "Traced"
    n["statusLabel"] = "Traced"
    n["size"] = rng.lognormal(np.log(8e8), 0.5, len(n)).astype(np.int64)
    n["mito"] = rng.poisson(150, len(n)).astype(np.int64)  # a count (a store does not place them)
    return n.sort_values("bodyId", ignore_index=True)


def _seed_synapses(n: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    types = n["type"].astype(str)
    pre_l, post_l, roi_l = [], [], []
    for pre_pat, post_pat, roi, p, mean_w in SEED_RULES:
        a = np.flatnonzero(types.str.fullmatch(pre_pat).to_numpy(bool))
        b = np.flatnonzero(types.str.fullmatch(post_pat).to_numpy(bool))
        if len(a) == 0 or len(b) == 0:
            continue
        aa, bb = np.meshgrid(a, b, indexing="ij")
        aa, bb = aa.ravel(), bb.ravel()
        pick = (rng.random(len(aa)) < p) & (aa != bb)
        w = 1 + rng.poisson(mean_w - 1, int(pick.sum()))
        pre_l.append(np.repeat(aa[pick], w))
        post_l.append(np.repeat(bb[pick], w))
        roi_l.append(np.full(int(w.sum()), SEED_ROIS.index(roi)))
    pre, post, roi = (np.concatenate(v) for v in (pre_l, post_l, roi_l))
    # a few sites in no ROI (NotPrimary) and in the LAL
    stray = rng.random(len(roi)) < 0.03
    roi[stray] = rng.choice([4, 6], int(stray.sum()))
    m = len(pre)
    x_post = roi * 10_000 + rng.uniform(500, 9_500, m)
    yz_post = rng.uniform(10_000, 30_000, (m, 2))
    off = rng.normal(0, 15, (m, 3))
    syn = pd.DataFrame({
        "pre": pre.astype(np.int32), "post": post.astype(np.int32),
        "x_pre": (x_post + off[:, 0]).astype(np.float32), "y_pre": (yz_post[:, 0] + off[:, 1]).astype(np.float32),
        "z_pre": (yz_post[:, 1] + off[:, 2]).astype(np.float32),
        "x_post": x_post.astype(np.float32), "y_post": yz_post[:, 0].astype(np.float32),
        "z_post": yz_post[:, 1].astype(np.float32),
        "confidence": rng.uniform(0.55, 1.0, m).astype(np.float32),
    })
    return syn.sort_values(["pre", "post"], kind="stable", ignore_index=True)


def _seed_swc(rng: np.random.Generator, start: np.ndarray, n_nodes: int = 300) -> str:
    """A random-walk tree from ``start`` (nm), branching now and then."""
    lines = ["# synthetic skeleton (connectome_dask seed tutorial store)"]
    pts = [np.asarray(start, float)]
    for i in range(1, n_nodes + 1):
        parent = i - 1 if (i < 3 or rng.random() > 0.08) else int(rng.integers(1, i))
        p = (pts[parent - 1] if parent >= 1 else pts[0]) + rng.normal(0, 120, 3)
        pts.append(p)
        lines.append(f"{i} 0 {p[0]:.1f} {p[1]:.1f} {p[2]:.1f} {rng.uniform(10, 40):.4f} "
                     f"{-1 if i == 1 else parent}")
    return "\n".join(lines) + "\n"


def seed_store(s: Settings | None = None) -> cd.Connectome:
    """Open the store of neuprint-python's Query Tutorial, building it if needed; the default connectome.

    Real hemibrain bodies (when the shared neuron table is there) of the types
    the tutorial selects (PEN, Delta7, EPG, FB4Y, EL, ExR, ER, PFN, hDelta),
    synapses drawn from :data:`SEED_RULES` in the ROIs of :data:`SEED_ROI_INFO`,
    and an SWC skeleton for every FB4Y and EPG neuron.
    """
    s = s or settings()
    # one level down: the other notebooks' checks look for the one store directly in the workdir
    path = s.workdir / "neuprint_seed" / "store"
    stamp = path.with_name(f"{path.name}.tutorial.json")
    want = {"neuron_table": str(s.neuron_table) if s.neuron_table else None, "rules": repr(SEED_RULES),
            "version": 2}
    if path.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == want:
                return cd.open(path)
        except (OSError, ValueError, cd.StoreError):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    neurons = _seed_neurons(s)
    syn = _seed_synapses(neurons)
    rng = np.random.default_rng(3)
    skel = {int(b): _seed_swc(rng, rng.uniform(1_000, 9_000, 3))
            for b in neurons.loc[neurons["type"].isin(["FB4Y", "EPG"]), "bodyId"]}
    conn = cd.write_store(path, neurons, syn, {"name": "hemibrain-seed-tutorial", "default_confidence": 0.5},
                          chunk_rows=1 << 14, overwrite=True, skeletons=skel)

    def write_rois(d: Path) -> None:
        (d / "rois.json").write_text(json.dumps(SEED_ROI_INFO))

    conn.write_synapse_columns(_seed_roi_columns, inputs=["x_pre", "x_post"],
                               outputs={"roi_pre": "int16", "roi_post": "int16"},
                               write_rois=write_rois, progress=False)
    stamp.write_text(json.dumps(want))
    return cd.open(path)
