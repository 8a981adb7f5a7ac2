"""Synthetic whole-brain connectomes and the demo store.

:func:`synthetic` streams a realistic connectome of any size (10^9 synapses in
bounded memory) into a store with :class:`~connectome_dask.store.StoreWriter`,
optionally writing the same synapses as a CAVE/FlyWire-style Parquet table.
:func:`demo_store` builds the store ``make demo`` uses. With no arguments
everything is self-contained: procedural neuropil meshes
(:func:`procedural_meshes`), synthetic neurons and cell types.

Statistics built in (each checked by ``tests/test_datasets.py``):

* heavy-tailed per-neuron synapse counts (lognormal neuron x type factors, or
  the relative ``pre``/``post`` counts of a real neuron table);
* cell types with type-structured connectivity: every type has 1-3 arbor zones
  inside neuropils and a sparse set of partner types chosen by arbor overlap
  (Peters' rule) and partner popularity; each neuron draws partners from its
  type's partner types, so neurons of one type share partner types;
* connection weights mostly 1-5 synapses with a Pareto tail to hundreds;
* synapse sites inside the neuropil meshes (regional densities from FlyWire's
  per-neuropil synapse counts where names match), post site 100-300 nm from
  the pre site, all on a 4 x 4 x 40 nm voxel grid;
* confidences in [0, 1] skewed to 1 (Beta(3, 1)); statuses (Traced, Roughly
  traced, Orphan, Assign ...), ``cropped`` flags, realistic type names;
* optional SWC skeletons whose arbors pass within a few micrometres of the
  neuron's synapses.

Determinism: every neuron's synapses come from a hash generator keyed by
``(seed, neuron index)``, so the store content depends only on the
parameters, never on ``chunk_rows`` or the append block size.

Meshes used are recorded in ``meta["extra"]["meshes"]`` (``source``, ``path``,
``scale`` = factor from mesh file units to nm); :func:`meshes_for` returns a
folder of meshes for a store (writing the procedural ones if needed), ready
for ROI assignment.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _synth
from ._compute import progress_bar
from ._fsutil import atomic_file, remove_stale_files
from .errors import IngestError
from .ingest.neurons import read_neuron_table
from .store import DEFAULT_CHUNK_ROWS, Connectome, StoreError, StoreWriter

__all__ = [
    "CAVE_VOXEL_SIZE",
    "demo_store",
    "meshes_for",
    "procedural_meshes",
    "synthetic",
    "write_procedural_meshes",
]

#: Voxel size (nm) of the CAVE Parquet positions and of the store's position grid.
CAVE_VOXEL_SIZE = (4.0, 4.0, 40.0)
_BATCH_NEURONS = 4096
_DEFAULT_BLOCK_ROWS = 1 << 21
_SKELETON_AUTO_MAX = 5000
_STATUSES_TYPED = (("Traced", 0.85), ("Roughly traced", 0.10), ("Prelim Roughly traced", 0.05))
_UNTYPED_FRACTION = 0.08
_POSITION_COLUMNS = ("x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post")

# Real per-neuropil synapse counts of FlyWire (from fafbseg's neuropil assignment of
# 244 M automatically detected synapses; see ../shared/data/flywire/README) used as
# regional densities when mesh names match, so no data folder is needed at run time.
_FLYWIRE_NEUROPIL_SYNAPSES: dict[str, int] = {
    "ME_R": 31556038, "ME_L": 29947944, "GNG": 13897112, "LO_L": 13192653, "LO_R": 13100255,
    "AVLP_R": 9036283, "AVLP_L": 7998150, "LOP_R": 6006295, "SMP_R": 5656483, "SMP_L": 5534127,
    "UNASGD": 5117554, "SLP_R": 5040347, "SLP_L": 5007784, "LOP_L": 4985862, "PLP_L": 3841759,
    "LH_L": 3690212, "PVLP_L": 3628557, "LH_R": 3540801, "SPS_R": 3505834, "PLP_R": 3317833,
    "FB": 3167231, "SPS_L": 2876968, "SAD": 2843855, "AL_L": 2778323, "AL_R": 2707013,
    "PVLP_R": 2640120, "IPS_L": 2581928, "LA_R": 2577422, "LA_L": 2391311, "IPS_R": 2238322,
    "LAL_L": 2029060, "LAL_R": 1914264, "ICL_R": 1898295, "PRW": 1893293, "ICL_L": 1861602,
    "CRE_L": 1797740, "CRE_R": 1777352, "SCL_R": 1672756, "SCL_L": 1650351, "VES_R": 1567225,
    "VES_L": 1510909, "WED_R": 1370217, "SIP_L": 1320993, "SIP_R": 1311956, "MB_CA_L": 1028831,
    "IB_R": 1001438, "WED_L": 984470, "IB_L": 953359, "MB_ML_L": 936686, "MB_CA_R": 931693,
    "EB": 841641, "FLA_R": 834191, "AOTU_L": 782945, "AOTU_R": 773299, "MB_ML_R": 724303,
    "FLA_L": 688915, "AMMC_R": 506826, "GOR_L": 458505, "PB": 426806, "GOR_R": 424082,
    "AMMC_L": 416003, "MB_PED_L": 409372, "MB_PED_R": 379813, "MB_VL_L": 327324,
    "MB_VL_R": 311986, "EPA_L": 306915, "ATL_L": 292890, "ATL_R": 270182, "EPA_R": 265878,
    "NO": 255841, "OCG": 233762, "CAN_R": 115181, "AME_L": 97761, "CAN_L": 97545,
    "AME_R": 91802, "GA_L": 73715, "BU_R": 54221, "GA_R": 43949, "BU_L": 35707,
}  # fmt: skip


# ----------------------------------------------------------------------------- meshes


def procedural_meshes(seed: int = 0) -> tuple[dict[str, Any], dict]:
    """Built-in neuropil-like meshes arranged like a fly brain (nm, watertight, disjoint).

    26 blobs named like the real neuropils (``AL_L``, ``AL_R``, ``ME_R``,
    ``MB_CA_R``, ``EB``, ``FB``, ``GNG`` ...): deformed ellipsoids in a
    ~600 x 300 x 150 um brain, mirrored left/right around x = 310 um (fly's
    right at small x, dorsal at small y, anterior at small z, like JFRC2).

    Parameters
    ----------
    seed
        Varies the small surface deformations only (the layout is fixed).

    Returns
    -------
    meshes : dict[str, trimesh.Trimesh]
        Name -> mesh in nanometres.
    hierarchy : dict
        ``{"name", "units", "primary": [...], "hierarchy": {...}}`` in the format of
        ``hierarchy.json`` of the shared mesh folders.

    Examples
    --------
    >>> meshes, hier = procedural_meshes()
    >>> sorted(meshes)[:3], meshes["EB"].is_watertight
    (['AL_L', 'AL_R', 'AVLP_L'], True)
    >>> "CX" in hier["hierarchy"] and "EB" in hier["primary"]
    True
    """
    meshes = {name: _synth.procedural_blob(name, seed) for name in _synth.PROCEDURAL_LAYOUT}
    hier = {
        "name": f"connectome_dask procedural neuropils (seed {int(seed)})",
        "units": "nanometer",
        "primary": sorted(meshes),
        "hierarchy": json.loads(json.dumps(_synth.PROCEDURAL_HIERARCHY)),
    }
    return meshes, hier


def write_procedural_meshes(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write :func:`procedural_meshes` as ``<name>.ply`` files plus ``hierarchy.json``.

    The folder is written under a temporary name and renamed into place
    (replacing an older one).

    Parameters
    ----------
    directory
        The mesh folder to write (replaced if this function wrote it before).
    seed
        Passed to :func:`procedural_meshes`.

    Returns
    -------
    pathlib.Path
        ``directory``.

    Raises
    ------
    StoreError
        ``directory`` exists and is not a mesh folder this function wrote
        (it is never replaced), or it cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> d = write_procedural_meshes(Path(tempfile.mkdtemp()) / "meshes")
    >>> (d / "hierarchy.json").exists(), len(list(d.glob("*.ply")))
    (True, 26)
    """
    from ._fsutil import atomic_dir, encode_name
    from .store import StoreError

    directory = Path(directory)
    meshes, hier = procedural_meshes(seed)
    # replaces only a mesh folder this function wrote (its marker), never another directory
    with atomic_dir(directory, "meshes", overwrite=True, error=StoreError) as tmp:
        for name, m in meshes.items():
            m.export(tmp / f"{encode_name(name)}.ply")
        (tmp / "hierarchy.json").write_text(json.dumps(hier, indent=1))
    return directory


def meshes_for(store: Connectome | str | os.PathLike | Mapping, dest: str | os.PathLike | None = None) -> Path:
    """Folder holding the neuropil meshes a synthetic store was generated with.

    Reads ``meta["extra"]["meshes"]``. If it names an existing folder, that is
    returned (its files are in the units given by ``hierarchy.json``; the
    factor to nm is ``meta["extra"]["meshes"]["scale"]``). For procedural
    meshes that were not written out, they are written to ``dest`` (default
    ``<store>_meshes`` beside the store) and that folder is returned.

    Parameters
    ----------
    store
        A :class:`~connectome_dask.store.Connectome`, a store path, or a store's
        meta mapping.
    dest
        Where to write procedural meshes; default ``<store>_meshes`` (required
        when ``store`` is a meta mapping).

    Returns
    -------
    pathlib.Path
        The mesh folder (PLY files and ``hierarchy.json``).

    Raises
    ------
    StoreError
        The meta has no ``extra.meshes`` record (the store was not made by
        :func:`synthetic`), or the mesh folder it records no longer exists.
    ValueError
        ``store`` is a meta mapping of procedural meshes and ``dest`` is not given.

    Examples
    --------
    >>> import tempfile
    >>> conn = synthetic(Path(tempfile.mkdtemp()) / "s", 50, 2000, skeletons=False)
    >>> meshes_for(conn).name
    's_meshes'
    """
    if isinstance(store, Mapping):
        meta = dict(store)
        store_path = None
    else:
        conn = store if isinstance(store, Connectome) else Connectome(store)
        meta = conn.meta
        store_path = conn.path
    info = (meta.get("extra") or {}).get("meshes")
    if not info:
        raise StoreError("store meta has no extra.meshes record: not made by datasets.synthetic")
    p = info.get("path")
    if p and Path(p).is_dir():
        return Path(p)
    if info.get("source") != "procedural":
        raise StoreError(f"mesh folder {p!r} recorded in the store meta no longer exists")
    if dest is None:
        if store_path is None:
            raise ValueError("dest is required when passing a meta mapping")
        dest = store_path.with_name(f"{store_path.name}_meshes")
    return write_procedural_meshes(dest, int(info.get("seed", 0)))


# ----------------------------------------------------------------------------- model


@dataclass
class _Model:
    neurons: pd.DataFrame
    ntype: np.ndarray  # int32 generative type per neuron
    counts: np.ndarray  # int64 output synapses per neuron
    e_ptr: np.ndarray
    e_dst: np.ndarray
    e_cum: np.ndarray
    e_scale: np.ndarray
    e_za: np.ndarray
    e_zb: np.ndarray
    m_ptr: np.ndarray
    members: np.ndarray
    m_cum: np.ndarray
    zc: np.ndarray  # zone centres (Z, 3) nm
    zsig: np.ndarray  # zone widths nm
    zone_type: np.ndarray
    zone_np: np.ndarray
    neuropils: list[str]
    brain_centre: np.ndarray
    mesh_info: dict
    shift_frac: float = 0.5
    alpha: float = 1.5
    info: dict = field(default_factory=dict)


def _default_n_types(n: int) -> int:
    return int(min(n, max(1, round(8000 * (n / 139_000) ** 0.85))))


def _read_neuron_table(neurons: pd.DataFrame | str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """:func:`~connectome_dask.ingest.neurons.read_neuron_table`, plus non-negative ``pre``/``post``.

    ``pre``/``post`` are the relative output/input weights of the generator here.
    """
    df, where = read_neuron_table(neurons)
    for c in ("pre", "post"):
        if c in df.columns:
            v = pd.to_numeric(df[c], errors="coerce").astype("float64").to_numpy()
            neg = v < 0
            if neg.any():
                i = int(np.flatnonzero(neg)[0])
                raise IngestError.at(where, c, i, f"{c} count {v[i]:g} is negative", v[i])
    return df, where


def _load_meshes(meshes, mesh_scale, seed_meshes: int):
    if meshes is None:
        md, hier = procedural_meshes(seed_meshes)
        info = {"source": "procedural", "path": None, "scale": 1.0, "units": "nm", "seed": seed_meshes}
        return md, hier, info
    if isinstance(meshes, Mapping):
        md = dict(meshes)
        if not md:
            raise ValueError("meshes mapping is empty")
        scale = 1.0 if mesh_scale is None else float(mesh_scale)
        if scale != 1.0:
            md = {k: m.copy().apply_scale(scale) for k, m in md.items()}
        return md, {"primary": list(md)}, {"source": "mapping", "path": None, "scale": scale}
    p = Path(meshes).resolve()
    md, hier, scale = _synth.load_mesh_dir(p, mesh_scale)
    return md, hier, {"source": str(p), "path": str(p), "scale": scale, "units": hier.get("units")}


def _mesh_volume(m) -> float:
    try:
        if m.is_watertight:
            return abs(float(m.volume))
        return 0.6 * abs(float(m.convex_hull.volume))
    except Exception:  # noqa: BLE001 - degenerate mesh
        ext = m.bounds[1] - m.bounds[0]
        return float(np.prod(ext)) * 0.5


def _synthetic_neurons(n: int, n_types: int, rng: np.random.Generator) -> tuple:
    """Body IDs, generative type per neuron, per-neuron out/in weights."""
    w = rng.lognormal(0.0, 1.8, size=n_types)
    sizes = 1 + rng.multinomial(n - n_types, w / w.sum()) if n > n_types else np.ones(n_types, int)
    ntype = np.repeat(np.arange(n_types, dtype=np.int32), sizes)
    ntype = ntype[rng.permutation(n)]
    gap = max(2, 10**9 // max(n, 1))
    body = 720575940_600_000_000 + np.cumsum(rng.integers(1, gap, size=n, endpoint=True))
    tfac = rng.normal(0.0, 0.8, size=n_types)
    out_w = np.exp(rng.normal(0.0, 1.2, size=n) + tfac[ntype])
    in_w = out_w**0.6 * np.exp(rng.normal(0.0, 0.8, size=n))
    return body.astype(np.int64), ntype, sizes, out_w, in_w


def _build_model(
    n_neurons: int | None,
    n_synapses: int,
    *,
    neurons,
    meshes,
    mesh_scale,
    seed: int,
    n_types: int | None,
    densities,
) -> _Model:
    rng = np.random.default_rng([seed, 1])
    # ---- meshes and regional densities
    md, hier, mesh_info = _load_meshes(meshes, mesh_scale, 0)
    names = list(md)
    vols = np.array([_mesh_volume(md[k]) for k in names])
    dens: Mapping[str, float]
    if densities is None:
        dens = _FLYWIRE_NEUROPIL_SYNAPSES
    elif isinstance(densities, Mapping):
        dens = {str(k): float(v) for k, v in densities.items()}
    else:
        dd = pd.read_csv(densities)
        if not {"neuropil", "synapses"} <= set(dd.columns):
            raise ValueError(f"{densities}: needs columns 'neuropil' and 'synapses'")
        dens = dict(zip(dd["neuropil"].astype(str), dd["synapses"].astype(float), strict=True))
    w_np = _synth.density_weights(names, dens, vols)
    lo = np.array([md[k].bounds[0] for k in names])
    hi = np.array([md[k].bounds[1] for k in names])
    np_centre = (lo + hi) / 2
    r_eq = 0.5 * np.prod(hi - lo, axis=1) ** (1 / 3)
    brain_centre = (lo.min(0) + hi.max(0)) / 2

    # ---- neurons and generative types
    extra_cols: pd.DataFrame | None = None
    if neurons is None:
        if n_neurons is None:
            raise ValueError("n_neurons is required when no neuron table is given")
        n = int(n_neurons)
        nt = _default_n_types(n) if n_types is None else int(n_types)
        body, ntype, sizes, out_w, in_w = _synthetic_neurons(n, nt, rng)
    else:
        df, where = _read_neuron_table(neurons)
        if n_neurons is not None and int(n_neurons) != len(df):
            if int(n_neurons) > len(df):
                raise ValueError(f"n_neurons={n_neurons} but {where} has only {len(df)} rows")
            keep = np.sort(rng.choice(len(df), int(n_neurons), replace=False))
            df = df.iloc[keep].reset_index(drop=True)
        n = len(df)
        typ = df["type"].astype("string") if "type" in df.columns else pd.Series([pd.NA] * n, dtype="string")
        codes, uniq = pd.factorize(typ, sort=True)
        codes = codes.astype(np.int64)
        untyped = codes < 0
        codes[untyped] = len(uniq) + np.arange(int(untyped.sum()))
        ntype = codes.astype(np.int32)
        nt = int(ntype.max()) + 1 if n else 0
        sizes = np.bincount(ntype, minlength=nt)
        body = df["bodyId"].to_numpy(np.int64)

        def _weights(col: str, fallback: np.ndarray) -> np.ndarray:
            if col not in df.columns:
                return fallback
            v = pd.to_numeric(df[col], errors="coerce").fillna(0).to_numpy(float)
            return v if v.sum() > 0 else fallback

        ln = np.exp(rng.normal(0.0, 1.2, size=n))
        out_w = _weights("pre", ln)
        in_w = _weights("post", ln)
        extra_cols = df
    if n < 2:
        raise ValueError(f"a connectome needs at least 2 neurons, got {n}")

    # ---- arbor zones per type (1-3, inside neuropils)
    nz = 1 + rng.choice(3, size=nt, p=[0.45, 0.4, 0.15])
    zone_type = np.repeat(np.arange(nt, dtype=np.int32), nz)
    Z = len(zone_type)
    zone_np = np.empty(Z, dtype=np.int32)
    first = np.concatenate([[0], np.cumsum(nz)[:-1]])
    prim = rng.choice(len(names), size=nt, p=w_np)
    zone_np[first] = prim
    # extra zones: nearby neuropils weighted by density
    dist = np.linalg.norm(np_centre[:, None, :] - np_centre[None, :, :], axis=2)
    near = w_np[None, :] * np.exp(-dist / 120_000.0)
    for z in np.flatnonzero(np.diff(np.concatenate([[-1], zone_type])) == 0):
        p = near[zone_np[z - 1]].copy()
        p /= p.sum()
        zone_np[z] = rng.choice(len(names), p=p)
    sig_t = np.exp(rng.normal(math.log(4000.0), 0.3, size=nt)) * (1 + 0.4 * np.log10(sizes))
    zsig = np.maximum(np.minimum(sig_t[zone_type], 0.2 * r_eq[zone_np]), 400.0)
    zc = np.empty((Z, 3))
    for r in np.unique(zone_np):
        sel = np.flatnonzero(zone_np == r)
        zc[sel] = _synth.sample_inside(
            md[names[r]], len(sel), np.random.default_rng([seed, 2, int(r)]),
            min_depth=2.0 * float(np.median(zsig[sel])),
        )  # fmt: skip

    # ---- type-to-type edges by arbor overlap (Peters' rule) and popularity
    from scipy.spatial import cKDTree

    pop_in = np.bincount(ntype, weights=in_w, minlength=nt)
    pop = np.sqrt(pop_in + 1e-9 * max(pop_in.max(), 1.0)) * rng.lognormal(0.0, 0.5, size=nt)
    k = min(32, Z)
    d, nb = cKDTree(zc).query(zc, k=k)
    d = d.reshape(Z, k)
    nb = nb.reshape(Z, k)
    za = np.repeat(np.arange(Z), k)
    zb = nb.ravel()
    ta = zone_type[za].astype(np.int64)
    tb = zone_type[zb].astype(np.int64)
    w = np.exp(-(d.ravel() ** 2) / (2 * (zsig[za] ** 2 + zsig[zb] ** 2))) * pop[tb]
    w = np.where(ta == tb, 0.3 * w, w)
    key = ta * nt + tb
    o = np.lexsort((-w, key))
    key, w, za, zb, ta, tb = key[o], w[o], za[o], zb[o], ta[o], tb[o]
    firstk = np.concatenate([[True], key[1:] != key[:-1]])
    key, w, za, zb, ta, tb = key[firstk], w[firstk], za[firstk], zb[firstk], ta[firstk], tb[firstk]
    bounds = np.searchsorted(ta, np.arange(nt + 1))
    n_part = np.clip(np.round(rng.lognormal(math.log(12.0), 0.7, size=nt)), 1, 60).astype(int)
    sel_idx = []
    for t in range(nt):
        s, e = bounds[t], bounds[t + 1]
        wt = w[s:e]
        ok = np.flatnonzero(wt >= 1e-3 * wt.max())
        kk = min(n_part[t], len(ok))
        pick = rng.choice(ok, size=kk, replace=False, p=wt[ok] / wt[ok].sum())
        sel_idx.append(s + np.sort(pick))
    sel = np.concatenate(sel_idx)
    e_src = ta[sel]
    e_dst = tb[sel].astype(np.int32)
    e_w = w[sel] * rng.lognormal(0.0, 0.8, size=len(sel))
    e_ptr = np.searchsorted(e_src, np.arange(nt + 1)).astype(np.int64)
    e_cum = np.empty(len(sel))
    for t in range(nt):
        s, e = e_ptr[t], e_ptr[t + 1]
        c = np.cumsum(e_w[s:e])
        e_cum[s:e] = c / c[-1]
        e_cum[e - 1] = 1.0
    e_scale = rng.lognormal(0.0, 0.6, size=len(sel))

    # ---- members of each type, weighted by in-weight
    order = np.argsort(ntype, kind="stable")
    members = order.astype(np.int32)
    m_ptr = np.concatenate([[0], np.cumsum(np.bincount(ntype, minlength=nt))]).astype(np.int64)
    m_cum = np.empty(n)
    iw = np.sqrt(in_w[members].astype(float))
    for t in range(nt):
        s, e = m_ptr[t], m_ptr[t + 1]
        c = np.cumsum(iw[s:e]) if iw[s:e].sum() > 0 else np.arange(1, e - s + 1, dtype=float)
        m_cum[s:e] = c / c[-1]
        m_cum[e - 1] = 1.0

    # ---- neuron table
    rngn = np.random.default_rng([seed, 5])
    prim_name = [names[r] for r in zone_np[first]]
    if extra_cols is None:  # synthetic neurons (no table given)
        tnames = _synth.type_names(prim_name, sizes, rngn)
        side_np = np.array([nm[-2:] for nm in prim_name])
        side = np.where(side_np[ntype] == "_L", "left", np.where(side_np[ntype] == "_R", "right", ""))
        mid = side == ""
        side[mid] = np.where(rngn.random(int(mid.sum())) < 0.5, "left", "right")
        tname = np.array(tnames, dtype=object)[ntype]
        inst = np.array([f"{t}_{s[0].upper()}" for t, s in zip(tname, side, strict=True)], dtype=object)
        untyped = rngn.random(n) < _UNTYPED_FRACTION
        st_names = [s for s, _ in _STATUSES_TYPED]
        st_p = [p for _, p in _STATUSES_TYPED]
        status = np.array(st_names, dtype=object)[rngn.choice(len(st_names), size=n, p=st_p)]
        status[untyped] = np.where(rngn.random(int(untyped.sum())) < 0.7, "Orphan", "Assign")
        cropped = (rngn.random(n) < 0.06) & ~untyped
        typ = pd.array(tname, dtype="string")
        typ[untyped] = pd.NA
        ins = pd.array(inst, dtype="string")
        ins[untyped] = pd.NA
        df = pd.DataFrame(
            {
                "bodyId": body,
                "type": typ,
                "instance": ins,
                "status": pd.array(status, dtype="string"),
                "cropped": pd.array(cropped, dtype="boolean"),
                "side": pd.array(side, dtype="string"),
                "primary_neuropil": pd.array(np.array(prim_name, dtype=object)[ntype], dtype="string"),
            }
        )
        # fragments (Orphan / Assign) are small
        out_w = np.where(untyped, 0.2, 1.0) * out_w
    else:
        df = extra_cols.drop(columns=[c for c in ("index", "pre", "post") if c in extra_cols.columns])
        if "status" not in df.columns:
            df["status"] = pd.array(["Traced"] * n, dtype="string")
        if "cropped" not in df.columns:
            df["cropped"] = pd.array(rngn.random(n) < 0.06, dtype="boolean")
        df["primary_neuropil"] = pd.array(np.array(prim_name, dtype=object)[ntype], dtype="string")
    # ---- per-neuron output counts (exactly n_synapses in total)
    counts = np.random.default_rng([seed, 4]).multinomial(int(n_synapses), out_w / out_w.sum())
    return _Model(
        neurons=df,
        ntype=ntype,
        counts=counts.astype(np.int64),
        e_ptr=e_ptr,
        e_dst=e_dst,
        e_cum=e_cum,
        e_scale=e_scale,
        e_za=za[sel].astype(np.int64),
        e_zb=zb[sel].astype(np.int64),
        m_ptr=m_ptr,
        members=members,
        m_cum=m_cum,
        zc=zc,
        zsig=zsig,
        zone_type=zone_type,
        zone_np=zone_np,
        neuropils=names,
        brain_centre=brain_centre,
        mesh_info=mesh_info,
        info={"n_types": nt, "n_type_edges": int(len(sel)), "n_zones": Z, "hierarchy": hier},
    )


# ----------------------------------------------------------------------------- generation


def _batches(counts: np.ndarray, block_rows: int) -> list[tuple[int, int]]:
    """Consecutive neuron ranges of at most ``_BATCH_NEURONS`` neurons / ~``block_rows`` rows."""
    cum = np.concatenate([[0], np.cumsum(counts)])
    n = len(counts)
    out = []
    lo = 0
    while lo < n:
        hi = min(lo + _BATCH_NEURONS, n)
        lim = int(np.searchsorted(cum, cum[lo] + block_rows, side="right")) - 1
        hi = max(lo + 1, min(hi, lim))
        out.append((lo, hi))
        lo = hi
    return out


def _generate(model: _Model, lo: int, hi: int, seed: int, voxel: np.ndarray) -> dict[str, np.ndarray]:
    T = int(model.counts[lo:hi].sum())
    pre = np.empty(T, np.int32)
    post = np.empty(T, np.int32)
    pos = {c: np.empty(T, np.float32) for c in _POSITION_COLUMNS}  # x/y/z of pre, then of post
    conf = np.empty(T, np.float32)
    size = np.empty(T, np.float32)
    got = _synth.gen_block(
        lo, hi, model.counts, model.ntype, model.e_ptr, model.e_dst, model.e_cum, model.e_scale,
        model.e_za, model.e_zb, model.m_ptr, model.members, model.m_cum, model.zc, model.zsig,
        model.shift_frac, model.alpha, _synth.seed_key(seed, 1), _synth.seed_key(seed, 2), voxel,
        len(model.counts), pre, post, pos["x_pre"], pos["y_pre"], pos["z_pre"], pos["x_post"],
        pos["y_post"], pos["z_post"], conf, size,
    )  # fmt: skip
    assert got == T, (got, T)
    return {"pre": pre, "post": post, "confidence": conf, "size": size, **pos}


def _starts_like_parquet(p: Path) -> bool:
    """Whether a leftover temporary file is empty or starts with the Parquet magic bytes (what we write)."""
    with p.open("rb") as f:
        return f.read(4) in (b"", b"PAR1")


def _is_synthetic_parquet(path: Path) -> bool:
    """Whether ``path`` is a regular Parquet file that :func:`synthetic` wrote (schema metadata)."""
    import pyarrow.parquet as pq

    if path.is_symlink() or not path.is_file():
        return False
    try:
        md = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):
        return False
    return b"connectome_dask" in md


def _parquet_schema():
    import pyarrow as pa

    fields = [("id", pa.int64()), ("pre_pt_root_id", pa.int64()), ("post_pt_root_id", pa.int64())]
    fields += [(f"{s}_pt_position_{a}", pa.int64()) for s in ("pre", "post") for a in "xyz"]
    fields += [("connection_score", pa.float32()), ("size", pa.int64())]
    meta = {
        "connectome_dask": json.dumps(
            {"position_units": "voxel", "voxel_size_nm": list(CAVE_VOXEL_SIZE), "source": "synthetic"}
        )
    }
    return pa.schema(fields, metadata=meta)


def _parquet_table(block: dict, body: np.ndarray, row0: int, perm: np.ndarray, schema):
    import pyarrow as pa

    cols = {
        "id": (np.arange(len(perm), dtype=np.int64) + row0 + 1)[perm],
        "pre_pt_root_id": body[block["pre"][perm]],
        "post_pt_root_id": body[block["post"][perm]],
    }
    for s in ("pre", "post"):
        for a, v in zip("xyz", CAVE_VOXEL_SIZE, strict=True):
            cols[f"{s}_pt_position_{a}"] = np.rint(block[f"{a}_{s}"][perm] / v).astype(np.int64)
    cols["connection_score"] = block["confidence"][perm]
    cols["size"] = block["size"][perm].astype(np.int64)
    return pa.Table.from_pydict(cols, schema=schema)


def _skeleton_selection(skeletons, n: int, totals: np.ndarray) -> np.ndarray:
    if skeletons is None:
        skeletons = n <= _SKELETON_AUTO_MAX
    if skeletons is True:
        return np.arange(n)
    if skeletons is False or skeletons == 0:
        return np.zeros(0, dtype=np.int64)
    k = min(int(skeletons), n)
    # the k neurons with most synapses (ties by index)
    return np.sort(np.lexsort((np.arange(n), -totals))[:k])


def _make_skeletons(model: _Model, idx: np.ndarray, seed: int) -> dict[int, str]:
    out: dict[int, str] = {}
    if len(idx) == 0:
        return out
    zptr = np.concatenate([[0], np.cumsum(np.bincount(model.zone_type, minlength=int(model.ntype.max()) + 1))])
    body = model.neurons["bodyId"].to_numpy(np.int64)
    key = _synth.seed_key(seed, 2)
    for i in idx:
        t = int(model.ntype[i])
        zones = np.arange(zptr[t], zptr[t + 1], dtype=np.int64)
        cen = _synth.neuron_zone_centres(
            np.full(len(zones), i, dtype=np.int64), zones, key, model.zc, model.zsig, model.shift_frac
        )
        rng = np.random.default_rng([seed, 9, int(i)])
        out_dir = cen[0] - model.brain_centre
        out_dir /= np.linalg.norm(out_dir) + 1e-9
        soma = cen[0] + out_dir * rng.uniform(25_000, 45_000) + rng.normal(scale=3000.0, size=3)
        out[int(body[i])] = _synth.skeleton_swc(soma, cen, model.zsig[zones], rng, body_id=int(body[i]))
    return out


def synthetic(
    path: str | os.PathLike,
    n_neurons: int | None = None,
    n_synapses: int = 100_000,
    *,
    neurons: pd.DataFrame | str | os.PathLike | None = None,
    meshes: str | os.PathLike | Mapping[str, Any] | None = None,
    mesh_scale: float | None = None,
    seed: int = 0,
    n_types: int | None = None,
    chunk_rows: int | None = None,
    parquet: str | os.PathLike | None = None,
    skeletons: bool | int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    name: str | None = None,
    version: str = "1.0",
    default_confidence: float = 0.5,
    densities: Mapping[str, float] | str | os.PathLike | None = None,
    meshes_dir: str | os.PathLike | None = None,
    block_rows: int = _DEFAULT_BLOCK_ROWS,
) -> Connectome:
    """Generate a realistic synthetic connectome and write it as a store (streaming).

    Rows are generated in order of presynaptic index, sorted by ``(pre, post)``
    within each neuron, and appended in blocks of about ``block_rows`` rows to a
    ``StoreWriter(presorted=True)``: memory stays bounded whatever
    ``n_synapses`` (the model tables are O(n_neurons + type edges)).

    Parameters
    ----------
    path
        Store directory to create.
    n_neurons
        Number of bodies. With ``neurons=`` it defaults to the table length; a
        smaller value takes a deterministic random subset of its rows.
    n_synapses
        Exact number of synapse rows (one row per synaptic connection).
    neurons
        A real neuron table (DataFrame or CSV/Parquet/Feather path) with at least
        ``bodyId`` (or ``root_id`` / ``pt_root_id``), read and checked by
        :func:`~connectome_dask.ingest.neurons.read_neuron_table` (identical
        duplicate rows merged); reused as is (bodyIds, ``type``, ``instance``,
        every other annotation column), ``pre``/``post`` (non-negative) give
        relative output/input counts. Rows with no ``type`` get their own
        singleton generative type.
    meshes
        Neuropil meshes: a folder of PLY/OBJ/STL files (+ ``hierarchy.json``), or
        a mapping name -> ``trimesh.Trimesh``. ``None``: :func:`procedural_meshes`.
    mesh_scale
        Factor from mesh file units to nm. Default: from ``hierarchy.json``
        ``units`` ("micrometer", "nanometer", "8 nm voxels"), else by extent
        (a brain smaller than 5000 units is taken as micrometres).
    seed
        Everything is a deterministic function of the parameters and ``seed``.
    n_types
        Number of cell types without a neuron table; default scales with
        ``n_neurons`` (~8,000 types for 139 k neurons).
    chunk_rows
        Zarr chunk length of the store (default ``store.DEFAULT_CHUNK_ROWS``);
        the content never depends on it.
    parquet
        Also write the synapses as a CAVE/FlyWire-style Parquet file: columns
        ``id, pre_pt_root_id, post_pt_root_id`` (int64 body IDs),
        ``pre_pt_position_x/_y/_z, post_pt_position_x/_y/_z`` (int64, **voxels of
        4 x 4 x 40 nm**, exact: store positions lie on that grid),
        ``connection_score`` (float32, = store ``confidence``) and ``size`` (int64).
        One row group per generation batch, rows shuffled within it. The units
        are recorded in the file's schema metadata (key ``connectome_dask``).
    skeletons
        ``True``: an SWC skeleton (nm) per neuron; an int ``k``: for the ``k``
        neurons with most synapses; ``False``: none. Default ``True`` when
        ``n_neurons <= 5000``.
    overwrite
        Replace an existing store / Parquet file.
    progress
        Show a progress bar (tqdm).
    name, version, default_confidence
        Written to ``meta.json`` (``source`` is ``"synthetic"``, units ``nm``,
        ``voxel_size`` ``[4, 4, 40]``).
    densities
        Regional synapse densities by neuropil name (mapping, or CSV with columns
        ``neuropil, synapses``). Default: FlyWire's real per-neuropil counts,
        used when most mesh names match, else mesh volumes.
    meshes_dir
        With procedural meshes: also write them (PLY + hierarchy.json) to this
        folder and record it in the store meta (see :func:`meshes_for`).
    block_rows
        Rows per appended block / Parquet row group (about; whole neurons).

    Returns
    -------
    Connectome

    Raises
    ------
    ValueError
        A parameter is invalid (``n_neurons`` missing without a neuron table or
        below 2, negative ``n_synapses``, ``n_types`` with a table or out of
        range, non-positive ``chunk_rows``/``block_rows``, bad ``skeletons``,
        ``default_confidence`` outside [0, 1], ``meshes_dir`` with ``meshes``,
        a densities CSV without its columns, unusable meshes). Checked before
        anything is written.
    IngestError
        The neuron table cannot be read or is invalid (see
        :func:`~connectome_dask.ingest.neurons.read_neuron_table`), or its
        ``pre``/``post`` weights are negative.
    StoreError
        ``path`` or ``parquet`` exists without ``overwrite``, or is not a
        store / Parquet file this function would replace.
    FileNotFoundError
        ``meshes`` names a folder that does not exist.

    Examples
    --------
    >>> import tempfile
    >>> conn = synthetic(Path(tempfile.mkdtemp()) / "s", n_neurons=300, n_synapses=20_000)
    >>> conn.n_neurons, conn.n_synapses, conn.meta["source"]
    (300, 20000, 'synthetic')
    >>> bool((conn.read_synapses(["confidence"])["confidence"] <= 1).all())
    True
    """
    path = Path(path)
    # ---- validate everything before any work
    if neurons is None:
        if n_neurons is None:
            raise ValueError("n_neurons is required when no neuron table is given")
        if not isinstance(n_neurons, int | np.integer) or n_neurons < 2:
            raise ValueError(f"n_neurons must be an integer >= 2, got {n_neurons!r}")
    elif n_neurons is not None and (not isinstance(n_neurons, int | np.integer) or n_neurons < 2):
        raise ValueError(f"n_neurons must be an integer >= 2 or None, got {n_neurons!r}")
    if not isinstance(n_synapses, int | np.integer) or n_synapses < 0:
        raise ValueError(f"n_synapses must be a non-negative integer, got {n_synapses!r}")
    if n_types is not None:
        if neurons is not None:
            raise ValueError("n_types cannot be combined with a neuron table (its types are used)")
        if not isinstance(n_types, int | np.integer) or not 1 <= n_types <= (n_neurons or 0):
            raise ValueError(f"n_types must be an integer in [1, n_neurons={n_neurons}], got {n_types!r}")
    chunk_rows = DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows
    if not isinstance(chunk_rows, int | np.integer) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if not isinstance(block_rows, int | np.integer) or block_rows < 1:
        raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
    if not (isinstance(skeletons, bool | int | np.integer) or skeletons is None) or (
        not isinstance(skeletons, bool) and skeletons is not None and skeletons < 0
    ):
        raise ValueError(f"skeletons must be True, False, None or a count >= 0, got {skeletons!r}")
    if not 0.0 <= float(default_confidence) <= 1.0:
        raise ValueError(f"default_confidence must be in [0, 1], got {default_confidence}")
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; pass overwrite=True to replace it")
    pq_path = Path(parquet) if parquet is not None else None
    if pq_path is not None and (pq_path.exists() or pq_path.is_symlink()):
        if not overwrite:
            raise StoreError(f"{pq_path} already exists; pass overwrite=True to replace it")
        if not _is_synthetic_parquet(pq_path):
            raise StoreError(f"{pq_path} exists and is not a Parquet file written by "
                             "datasets.synthetic; overwrite=True only replaces those")
    if path.exists() or path.is_symlink():
        from ._fsutil import check_exists

        check_exists(path, "store", overwrite, StoreError)
    if meshes_dir is not None and meshes is not None:
        raise ValueError("meshes_dir is for procedural meshes only (meshes=None)")

    model = _build_model(
        n_neurons, int(n_synapses), neurons=neurons, meshes=meshes, mesh_scale=mesh_scale,
        seed=int(seed), n_types=n_types, densities=densities,
    )  # fmt: skip
    n = len(model.counts)
    if meshes_dir is not None:
        model.mesh_info["path"] = str(write_procedural_meshes(meshes_dir, 0).resolve())
    voxel = np.asarray(CAVE_VOXEL_SIZE, dtype=np.float64)
    body = model.neurons["bodyId"].to_numpy(np.int64)
    columns = {c: "float32" for c in _POSITION_COLUMNS} | {"confidence": "float32", "size": "float32"}
    batches = _batches(model.counts, int(block_rows))
    bar = progress_bar(int(n_synapses), "synthetic", "synapses", bool(progress))
    pq_writer = None
    in_counts = np.zeros(n, dtype=np.int64)
    try:
        writer = StoreWriter(path, n, columns, chunk_rows=int(chunk_rows), presorted=True, overwrite=overwrite)
        with contextlib.ExitStack() as stack:
            stack.enter_context(writer)
            if pq_path is not None:
                import pyarrow.parquet as pq

                pq_path.parent.mkdir(parents=True, exist_ok=True)
                remove_stale_files(pq_path, accept=_starts_like_parquet)
                # entered after the writer, so it leaves first: the Parquet file is renamed
                # into place only once the store has committed
                pq_tmp = stack.enter_context(atomic_file(pq_path))
                schema = _parquet_schema()
                pq_writer = pq.ParquetWriter(pq_tmp, schema, compression="zstd")
            row0 = 0
            for b, (lo, hi) in enumerate(batches):
                block = _generate(model, lo, hi, int(seed), voxel)
                nb = len(block["pre"])
                if nb == 0:
                    continue
                in_counts += np.bincount(block["post"], minlength=n)
                writer.append(block)
                if pq_writer is not None:
                    perm = np.random.default_rng([int(seed), 11, b]).permutation(nb)
                    pq_writer.write_table(_parquet_table(block, body, row0, perm, schema))
                row0 += nb
                if bar is not None:
                    bar.update(nb)
            if pq_writer is not None:
                pq_writer.close()
                pq_writer = None
            sel = _skeleton_selection(skeletons, n, model.counts + in_counts)
            skel = _make_skeletons(model, sel, int(seed)) if len(sel) else None
            meta = {
                "name": name or path.name,
                "version": str(version),
                "source": "synthetic",
                "units": "nm",
                "voxel_size": list(CAVE_VOXEL_SIZE),
                "default_confidence": float(default_confidence),
                "generator": {
                    "function": "connectome_dask.datasets.synthetic",
                    "seed": int(seed),
                    "n_neurons": n,
                    "n_synapses": int(n_synapses),
                    "n_types": model.info["n_types"],
                    "n_type_edges": model.info["n_type_edges"],
                    "neuron_table": None if neurons is None or isinstance(neurons, pd.DataFrame) else str(neurons),
                    "pair_weight_alpha": model.alpha,
                },
                "meshes": model.mesh_info,
                "parquet": None
                if pq_path is None
                else {
                    "path": str(pq_path.resolve()),
                    "position_units": "voxel",
                    "voxel_size_nm": list(CAVE_VOXEL_SIZE),
                },
            }
            conn = writer.close(model.neurons, meta, skeletons=skel)
    finally:
        if pq_writer is not None:
            pq_writer.close()
        if bar is not None:
            bar.close()
    return conn


def demo_store(
    path: str | os.PathLike,
    n_synapses: int = 3_000_000,
    *,
    n_neurons: int | None = None,
    overwrite: bool = True,
    seed: int = 0,
    neurons: pd.DataFrame | str | os.PathLike | None = None,
    meshes: str | os.PathLike | None = None,
    parquet: str | os.PathLike | None = None,
    skeletons: bool | int | None = 500,
    progress: bool | None = None,
    **kwargs: Any,
) -> Connectome:
    """Build the demo store (``make demo``): self-contained, no shared data needed.

    Synthetic neurons (``n_neurons`` default ``max(1000, n_synapses // 300)``),
    procedural meshes written to ``<path>_meshes`` beside the store (recorded
    in ``meta["extra"]["meshes"]["path"]``, see :func:`meshes_for`, so the demo
    can run ROI assignment), skeletons for the 500 neurons with most synapses.
    Pass ``neurons=`` / ``meshes=`` (e.g. the shared hemibrain table or
    ``jfrc2np``) to override.

    Parameters
    ----------
    path
        Store directory to create.
    n_synapses
        Number of synapse rows.
    n_neurons
        Number of bodies; default ``max(1000, n_synapses // 300)`` without a
        neuron table, the table's length with one.
    overwrite
        Replace an existing store (default ``True``: the demo is rebuilt).
    seed
        Everything is a deterministic function of the parameters and ``seed``.
    neurons
        A real neuron table (see :func:`synthetic`).
    meshes
        A mesh folder; default: procedural meshes written to ``<path>_meshes``.
    parquet
        Also write the synapses as a CAVE-style Parquet file (see :func:`synthetic`).
    skeletons
        SWC skeletons: for the ``k`` neurons with most synapses (default 500),
        ``True`` for all, ``False`` for none.
    progress
        Show a progress bar.
    **kwargs
        Other keywords of :func:`synthetic` (``name`` defaults to ``"demo"``).

    Returns
    -------
    Connectome

    Raises
    ------
    ValueError
        As for :func:`synthetic` (invalid parameters, an unusable neuron table
        or meshes; a :class:`~connectome_dask.errors.StoreError` for a store it
        may not replace).

    Examples
    --------
    >>> import tempfile
    >>> conn = demo_store(Path(tempfile.mkdtemp()) / "demo", n_synapses=20_000, skeletons=5)
    >>> meshes_for(conn).name, len(list(conn.skeleton_dir.glob("*.swc")))
    ('demo_meshes', 5)
    """
    path = Path(path)
    if neurons is None and n_neurons is None:
        n_neurons = max(1000, int(n_synapses) // 300)
    meshes_dir = path.with_name(f"{path.name}_meshes") if meshes is None else None
    return synthetic(
        path, n_neurons, int(n_synapses), neurons=neurons, meshes=meshes, seed=seed,
        parquet=parquet, skeletons=skeletons, overwrite=overwrite, progress=progress,
        meshes_dir=meshes_dir, name=kwargs.pop("name", "demo"), **kwargs,
    )  # fmt: skip
