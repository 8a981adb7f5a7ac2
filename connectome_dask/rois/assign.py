""":func:`assign_rois`: label every synapse site of a store with its ROI code."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..store import Connectome, safe_name
from .extent import _warn_scale
from .grid import _Grid
from .roiset import RoiSet

__all__ = ["assign_rois"]


def _assign_block(block: Mapping[str, np.ndarray], grid: _Grid, sites: Sequence[tuple[str, tuple]],
                  exact: bool) -> dict[str, np.ndarray]:
    out = {}
    for out_name, (x, y, z) in sites:
        P = np.column_stack([block[x], block[y], block[z]])
        out[out_name] = grid.query(P, exact)
    return out


def assign_rois(conn: Connectome, roiset: RoiSet | str | os.PathLike,
                sites: Sequence[str] = ("pre", "post"), *, exact: bool = True,
                progress: bool | None = None, scale: float | str = 1.0) -> Connectome:
    """Label every synapse site with its primary ROI and store the codes atomically.

    Writes int16 columns ``roi_pre`` / ``roi_post`` (indices into
    ``roiset.names``, -1 = none) through
    :meth:`Connectome.write_synapse_columns`, together with the ROI folder
    (``rois.json`` with names in code order, primary, hierarchy; the repaired
    meshes as PLY; the containment grid as Zarr). Nothing changes in the store
    unless every partition succeeds. The grid is built once on the client (or
    reused from the store when the meshes and parameters are unchanged) and
    passed to the tasks as one delayed object / scattered future.

    Existing ROI columns of sites not listed are recomputed too, so that every
    ROI column refers to the new ``rois.json``.

    Parameters
    ----------
    conn
        The store.
    roiset
        A :class:`RoiSet`, or a mesh directory (loaded with ``scale``).
    sites
        Which sites to label: ``"pre"``, ``"post"`` (same columns for a store
        with a single ``x, y, z`` position).
    exact
        ``False``: voxel lookup only (neuPrint style, approximate near surfaces).
    progress
        Show a progress bar (default from the dask config).
    scale
        Mesh scale when ``roiset`` is a folder (see :meth:`RoiSet.from_directory`).

    Returns
    -------
    Connectome
        The re-opened store.

    Raises
    ------
    ValueError
        ``sites`` is not a non-empty subset of ``("pre", "post")``.
    RoiError
        The meshes are invalid, or the synapse positions do not overlap the
        meshes at all (wrong units); a :class:`RoiScaleWarning` when their
        extents differ by 4x or more.

    Examples
    --------
    Re-label a copy of the example store (the containment grid stored with its
    ROI set is reused, so nothing is rebuilt):

    >>> import shutil
    >>> copy = cd.open(shutil.copytree(conn.path, tmp_path / "copy"), set_default=False)
    >>> rs = RoiSet.from_store(copy)  # or RoiSet.from_directory(<mesh folder>)
    >>> relabelled = assign_rois(copy, rs, exact=False)
    >>> relabelled.roi_names[:3], relabelled.generation > copy.generation
    (['AL_L', 'AL_R', 'AVLP_L'], True)
    >>> {"roi_pre", "roi_post"} <= set(relabelled.synapse_columns)
    True
    """
    from dask.delayed import delayed

    from .._compute import active_client

    if not isinstance(roiset, RoiSet):
        roiset = RoiSet.from_directory(roiset, scale=scale)
    if isinstance(sites, str):
        sites = (sites,)
    sites = tuple(sites)
    if not sites or any(s not in ("pre", "post") for s in sites) or len(set(sites)) != len(sites):
        raise ValueError(f"sites must be a non-empty subset of ('pre', 'post'), got {sites!r}")
    existing = [s for s in ("pre", "post") if f"roi_{s}" in conn.synapse_columns and s not in sites]
    all_sites = [s for s in ("pre", "post") if s in sites or s in existing]
    site_cols = [(f"roi_{s}", tuple(conn.site_columns(s))) for s in all_sites]
    inputs = sorted({c for _, cols in site_cols for c in cols})
    # units check on a sample of rows (start, middle, end) before any work
    n = conn.n_synapses
    if n:
        cr = conn.chunk_rows
        bounds = roiset.bounds
        for _, cols in site_cols:
            starts = sorted({0, (n // 2) // cr * cr, (n - 1) // cr * cr})
            parts = [conn.read_synapses(list(cols), s, min(s + cr, n)) for s in starts]
            P = np.column_stack([np.concatenate([p[c] for p in parts]) for c in cols])
            _warn_scale(P, bounds, roiset.scale, f"assign_rois({conn.path})", error=True)
    # grid: reuse the store's cached one when the meshes and parameters match
    key = roiset.grid_key()
    grid_src = None
    info = conn.roi_info or {}
    ck = roiset._grid_cache_key(None)
    rois_path = conn.rois_path  # not None when info has a grid (rois.json is read from there)
    if rois_path is not None and info.get("grid", {}).get("key") == key:
        src = rois_path / safe_name(info["grid"]["path"])
        if ck in roiset._grids:
            grid_src = src
        else:
            try:
                roiset._grids[ck] = _Grid.from_zarr(src)
                grid_src = src
            except Exception:  # noqa: BLE001 - rebuild rather than trust a damaged cache
                grid_src = None
    grid = roiset.grid()
    client = active_client()
    if client is not None:
        gref = client.scatter(grid, broadcast=True, hash=False)
    else:
        gref = delayed(grid, name=f"roi-grid-{grid.key}", traverse=False)

    def write_rois(d: Path) -> None:
        roiset.write(d, grid=grid, grid_src=grid_src)

    return conn.write_synapse_columns(
        # type ignored: write_synapse_columns calls func(block, *args), but its annotation (in
        # store, another layer) names only the block argument
        _assign_block,
        inputs, {name: "int16" for name, _ in site_cols},
        args=(gref, site_cols, bool(exact)), write_rois=write_rois, progress=progress,
        desc=f"assign_rois: {len(roiset.primary)} primary ROIs, sites {all_sites}")
