"""Shared test fixtures: small synthetic connectome stores with known raw data.

``small_store`` (session scope) is a ~300-neuron, ~50 k-synapse store with
neuPrint-style annotations, per-site positions (``x_pre..z_post``), a single
``confidence`` column, ``roi_pre``/``roi_post`` codes and an ROI folder
(names, primary list, hierarchy) committed through
``Connectome.write_synapse_columns(..., write_rois=...)``. It also contains a
few SWC skeletons. The fixture returns a :class:`SmallStore` that holds the
opened connectome *and* the raw pandas tables it was built from, so tests can
compute reference answers with plain pandas.

``small_center_store`` is a smaller variant with a single centre point per
synapse (``x, y, z``).

Both are written with a small ``chunk_rows`` so the data spans many chunks
and several dask partitions.

ROI layout (by the x coordinate of each site, 0..1000 nm):

=========  ======  ==============================================
x range    code    ROI (primary unless noted)
=========  ======  ==============================================
0-100      0       AL_R
100-200    1       AL_L
200-300    2       LH_R
300-400    3       MB_CA        (child of MB, which has no code)
400-500    4       MB_ML        (child of MB)
500-600    5       FB           (child of CX, which has no code)
600-700    6       EB           (child of CX)
700-800    7       OL_R         (NOT primary: parent of ME_R)
800-900    8       ME_R         (child of OL_R)
900-1000   -1      no ROI
=========  ======  ==============================================
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROI_NAMES = ["AL_R", "AL_L", "LH_R", "MB_CA", "MB_ML", "FB", "EB", "OL_R", "ME_R"]
ROI_PRIMARY = ["AL_R", "AL_L", "LH_R", "MB_CA", "MB_ML", "FB", "EB", "ME_R"]
ROI_HIERARCHY = {"MB": {"MB_CA": {}, "MB_ML": {}}, "CX": {"FB": {}, "EB": {}}, "OL_R": {"ME_R": {}}}
ROI_INFO = {"names": ROI_NAMES, "primary": ROI_PRIMARY, "hierarchy": ROI_HIERARCHY}

TYPES = ["KC(ab)", "KC(g)", "MBON01", "MBON02", "PN.a", "PN.b", "LHN", "EPG", "PEN", "Mi1", "Tm3", "APL"]


@dataclasses.dataclass
class SmallStore:
    """A test store plus the raw tables it was written from.

    Attributes
    ----------
    conn
        The opened :class:`connectome_dask.Connectome`.
    path
        Store directory.
    neurons
        The neuron table as given to ``write_store`` (bodyId + annotations),
        in dense-index order.
    synapses
        One row per synapse: ``bodyId_pre, bodyId_post, pre, post`` (dense
        indices), position and confidence columns, ``roi_pre, roi_post`` codes.
    rois
        The ``rois.json`` contents (``names``, ``primary``, ``hierarchy``).
    skeletons
        ``{bodyId: swc_text}`` of the SWC files stored with the connectome.
    """

    conn: object
    path: Path
    neurons: pd.DataFrame
    synapses: pd.DataFrame
    rois: dict
    skeletons: dict


def roi_code_of_x(x: np.ndarray) -> np.ndarray:
    """ROI code of a site from its x coordinate (see the module table)."""
    b = np.floor(np.asarray(x, dtype=np.float64) / 100.0).astype(np.int64)
    b = np.clip(b, 0, 9)
    return np.where(b == 9, -1, b).astype(np.int16)


def _roi_columns(block, sites):
    return {f"roi_{s}": roi_code_of_x(block[x]) for s, x in sites.items()}


def make_neurons(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Random neuPrint-style annotations; some types/instances/statuses missing."""
    body = np.sort(rng.choice(np.arange(10_000, 10_000_000), size=n, replace=False)).astype(np.int64)
    rng.shuffle(body)
    types = rng.choice(TYPES, size=n).astype(object)
    side = rng.choice(["_R", "_L"], size=n)
    inst = np.array([f"{t}{s}" for t, s in zip(types, side, strict=True)], dtype=object)
    types[rng.random(n) < 0.08] = None
    inst[rng.random(n) < 0.08] = None
    status = rng.choice(np.array(["Traced", "Traced", "Orphan", None], dtype=object), size=n)
    cropped = pd.array(rng.choice(np.array([True, False, False, None], dtype=object), size=n), dtype="boolean")
    cls = rng.choice(np.array(["intrinsic", "projection", None], dtype=object), size=n)
    return pd.DataFrame(
        {
            "bodyId": body,
            "type": pd.array(types, dtype="string"),
            "instance": pd.array(inst, dtype="string"),
            "status": pd.array(status, dtype="string"),
            "cropped": cropped,
            "class": pd.array(cls, dtype="string"),
            "somaSide": pd.array(side, dtype="string"),
        }
    )


def make_synapses(n_neurons: int, n_synapses: int, rng: np.random.Generator, positions: str) -> pd.DataFrame:
    """Synapses drawn from a pool of pairs (so pairs carry several synapses, some autapses).

    The last 10 neurons get no synapses at all.
    """
    active = n_neurons - 10
    n_pairs = max(1, n_synapses // 8)
    pp = rng.integers(0, active, size=n_pairs)
    pq = rng.integers(0, active, size=n_pairs)
    pq[:20] = pp[:20]  # a few autapses
    w = rng.zipf(1.6, size=n_pairs).astype(np.float64)
    w = np.minimum(w, 200)
    pick = rng.choice(n_pairs, size=n_synapses, p=w / w.sum())
    pre = pp[pick].astype(np.int32)
    post = pq[pick].astype(np.int32)
    # each pre neuron has a home x region so ROI counts are uneven
    home = rng.uniform(0, 1000, size=n_neurons)
    x = np.clip(home[pre] + rng.normal(0, 120, size=n_synapses), 0, 999.0)
    y = rng.uniform(0, 1000, size=n_synapses)
    z = rng.uniform(0, 1000, size=n_synapses)
    conf = np.round(rng.uniform(0, 1, size=n_synapses), 3).astype(np.float32)
    df = pd.DataFrame({"pre": pre, "post": post})
    if positions == "pair":
        dx = rng.normal(0, 30, size=n_synapses)
        df["x_pre"] = x.astype(np.float32)
        df["y_pre"] = y.astype(np.float32)
        df["z_pre"] = z.astype(np.float32)
        df["x_post"] = np.clip(x + dx, 0, 999.0).astype(np.float32)
        df["y_post"] = (y + 5).astype(np.float32)
        df["z_post"] = (z - 5).astype(np.float32)
    else:
        df["x"] = x.astype(np.float32)
        df["y"] = y.astype(np.float32)
        df["z"] = z.astype(np.float32)
    df["confidence"] = conf
    return df


def make_swc(rng: np.random.Generator, n_nodes: int = 40, fragments: int = 1) -> str:
    """A random tree (or ``fragments`` disconnected trees) as SWC text."""
    lines = ["# test skeleton"]
    per = n_nodes // fragments
    node = 0
    for f in range(fragments):
        base = rng.uniform(0, 1000, size=3) + f * 400
        for i in range(per):
            node += 1
            parent = -1 if i == 0 else int(rng.integers(node - i, node))
            p = base + rng.normal(0, 20, size=3) * (i + 1) ** 0.5
            lines.append(f"{node} 0 {p[0]:.3f} {p[1]:.3f} {p[2]:.3f} {rng.uniform(1, 5):.3f} {parent}")
    return "\n".join(lines) + "\n"


def build_small_store(
    path: Path,
    *,
    n_neurons: int = 300,
    n_synapses: int = 50_000,
    positions: str = "pair",
    chunk_rows: int = 4096,
    seed: int = 0,
    default_confidence: float = 0.0,
) -> SmallStore:
    """Write a synthetic store with ROI codes; return it with its raw tables.

    Parameters
    ----------
    path
        Store directory to create.
    positions
        ``"pair"`` (``x_pre..z_post``) or ``"center"`` (``x, y, z``).
    """
    import connectome_dask as cd

    rng = np.random.default_rng(seed)
    neurons = make_neurons(n_neurons, rng)
    syn = make_synapses(n_neurons, n_synapses, rng, positions)
    skel_ids = neurons["bodyId"].iloc[:3].tolist()
    skeletons = {
        int(skel_ids[0]): make_swc(rng, 40, 1),
        int(skel_ids[1]): make_swc(rng, 60, 3),
        int(skel_ids[2]): make_swc(rng, 10, 1),
    }
    conn = cd.write_store(
        path,
        neurons,
        syn,
        {"name": path.name, "default_confidence": default_confidence},
        chunk_rows=chunk_rows,
        skeletons=skeletons,
    )
    sites = {"pre": "x_pre", "post": "x_post"} if positions == "pair" else {"pre": "x", "post": "x"}

    def write_rois(d: Path) -> None:
        import json

        (d / "rois.json").write_text(json.dumps(ROI_INFO))

    conn = conn.write_synapse_columns(
        _roi_columns,
        inputs=sorted(set(sites.values())),
        outputs={"roi_pre": "int16", "roi_post": "int16"},
        args=(sites,),
        write_rois=write_rois,
        progress=False,
    )
    conn = cd.open(path, set_default=False)
    syn = syn.copy()
    for s, x in sites.items():
        syn[f"roi_{s}"] = roi_code_of_x(syn[x].to_numpy())
    body = neurons["bodyId"].to_numpy()
    syn.insert(0, "bodyId_pre", body[syn["pre"].to_numpy()])
    syn.insert(1, "bodyId_post", body[syn["post"].to_numpy()])
    return SmallStore(conn, Path(path), neurons, syn, dict(ROI_INFO), skeletons)


@pytest.fixture(scope="session")
def small_store(tmp_path_factory) -> SmallStore:
    """~300 neurons, ~50 k synapses with pair positions, confidence and ROI codes."""
    return build_small_store(tmp_path_factory.mktemp("stores") / "small")


@pytest.fixture(scope="session")
def small_center_store(tmp_path_factory) -> SmallStore:
    """~120 neurons, ~6 k synapses with a single centre point per synapse."""
    return build_small_store(
        tmp_path_factory.mktemp("stores") / "center",
        n_neurons=120,
        n_synapses=6_000,
        positions="center",
        chunk_rows=1024,
        seed=1,
        default_confidence=0.25,
    )
