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
            "neuron_table": str(s.neuron_table) if s.neuron_table else None, "seed": 0}
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
