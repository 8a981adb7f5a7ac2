"""Regions of interest: meshes, hierarchy, exact containment and ``assign_rois``.

A :class:`RoiSet` is a named set of triangle meshes (neuropils), the subset of
*primary* ROIs (which roughly tile the brain), and a nesting hierarchy, as in
neuPrint. :meth:`RoiSet.assign` labels points with the primary ROI that
contains them; :func:`assign_rois` does that for every synapse of a store and
commits ``roi_pre`` / ``roi_post`` int16 codes atomically.

Containment definition
----------------------
A point is inside a mesh when the mesh's generalized winding number (GWN,
Jacobson et al. 2013) at the point is ``>= 0.5``. For a watertight, outward
oriented mesh this is ray parity. Labels equal this definition for every point
farther than about 1e-9 (relative) from a surface; the contract (and the tests)
use 1e-6 of the mesh extent.

Before anything else each mesh is *repaired* (recorded in :attr:`RoiSet.repairs`
and warned about): duplicate vertices are merged, faces with a repeated vertex
dropped, inconsistent face winding fixed (``trimesh.repair.fix_winding``) and an
inverted (negative-volume) mesh flipped. The GWN of the repaired mesh defines
inside. Open meshes (boundary edges) are handled exactly: each hole component
is closed by a fan of triangles to its centroid, which makes the triangle chain
closed so that its winding number ``w`` is an integer, and
``gwn = w - gwn(fan)``. ``|gwn(fan)| < 0.5`` outside a ball of radius
``_FAN_RADIUS`` times the hole radius around its centroid, where therefore
``gwn >= 0.5`` iff ``w >= 1``; inside the ball ``gwn(fan)`` is computed exactly
per point (a solid-angle sum over the fan only).

Tie rule for overlapping primary ROIs
-------------------------------------
When a point is inside several primary ROIs, the ROI with the **smallest
volume** wins (volumes equal to 9 significant digits count as equal), then
the one whose name comes first in :attr:`RoiSet.names`
(the more specific region wins; the order is recorded in ``rois.json``).

Acceleration structure (why it is fast and still exact)
------------------------------------------------------
A uniform voxel grid over the meshes' bounding box, built once per ROI set in
numba (:mod:`connectome_dask._containment`):

* a cell that no triangle touches is *uniform*: its label is the label of its
  centre, computed by casting one vertical ray per column of cells
  (signed crossings, swept upwards), and a query is one array lookup;
* a *boundary* cell stores the exact per-mesh winding numbers at a reference
  point and the list of triangles meeting the cell (CSR arrays). A query point
  in such a cell counts signed crossings of the segment reference -> point with
  those triangles (Pluecker-coordinate edge tests evaluated identically for
  both triangles sharing an edge, so a segment through an edge is counted
  exactly once), which gives its exact winding numbers;
* each boundary cell is split into 8^3 *sub-cells*; those no triangle touches
  get their exact label at build time (one crossing test per face-connected
  group of uncut sub-cells), packed as 2-bit codes into a 3-label palette.
  Only points in cut sub-cells (8 % of the FlyWire benchmark's points) need
  the crossing test.

A query (:func:`connectome_dask._containment.query`) streams over the points
with a cache-resident table of uniform 8^3-cell blocks, reads cells and
sub-cells of the rest in small branch-free loops (many cache misses in
flight), and runs the crossing tests in boundary-cell order.

The grid is cached as Zarr under the store's ROI folder and reused by
:func:`assign_rois` when the meshes and grid parameters are unchanged.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _containment as _ck
from ._fsutil import check_name
from .errors import RoiError
from .store import Connectome, array_codecs, default_connectome, safe_name

__all__ = [
    "RoiError",
    "RoiRepairWarning",
    "RoiScaleWarning",
    "RoiSet",
    "assign_rois",
    "fetch_roi_hierarchy",
    "MESH_SUFFIXES",
]

MESH_SUFFIXES = (".ply", ".obj", ".stl")
_ALGO_VERSION = 4
_FAN_RADIUS = 2.0  # hole balls: |gwn(fan)| < 0.5 outside _FAN_RADIUS * hole radius
_UNITS = {"nm": 1.0, "nanometer": 1.0, "um": 1000.0, "µm": 1000.0, "micrometer": 1000.0,
          "micron": 1000.0, "mm": 1e6, "millimeter": 1e6}
_TIE_RULE = "smallest volume wins, then position in names"
_MAX_DEPTH = 64  # nesting levels of a hierarchy
# the extent check of assign / assign_rois: warn when the points' and the meshes' extents
# differ by this factor, judged on at least _SCALE_MIN_POINTS points (a few points span nothing)
_SCALE_FACTOR = 4.0
_SCALE_MIN_POINTS = 256




class RoiRepairWarning(UserWarning):
    """A mesh was repaired (flipped, re-wound, or closed over holes) before use."""


class RoiScaleWarning(UserWarning):
    """Points and ROI meshes do not overlap, or their extents differ by 4x or more: units?

    E.g. hemibrain synapses in 8 nm voxels ingested as nm: they still overlap the
    meshes (both start near 0) but span 1/8 of them, and most labels are wrong.
    """


# ----------------------------------------------------------------------------- mesh preparation


def _check_roi_name(name: Any, where: str) -> str:
    """The package's one name rule (:func:`~connectome_dask._fsutil.check_name`) for ROI names.

    Real names such as ``CRE(-ROB,-RUB)(R)`` or ``a'L(R)`` pass; a name with
    ``/``, ``\\``, NUL or a line break, and ``.`` / ``..``, is refused. ROI names
    are only stored inside rois.json, never used as file names (meshes are
    ``meshes/NNNN.ply``).
    """
    return check_name(name, f"{where}: ROI name", error=RoiError)


def _parse_scale(scale: float | str) -> float:
    if isinstance(scale, str):
        key = scale.strip().lower()
        if key not in _UNITS:
            raise RoiError(f"unknown mesh units {scale!r}; use a number or one of {sorted(_UNITS)} "
                           "(converted to nm)")
        return _UNITS[key]
    try:
        s = float(scale)
    except (TypeError, ValueError):
        s = math.nan
    if not math.isfinite(s) or s <= 0:
        raise RoiError(f"scale must be a positive finite number, got {scale!r}")
    return s


def _as_arrays(mesh: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    if isinstance(mesh, trimesh.Trimesh):
        return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
    if isinstance(mesh, Mapping) and "vertices" in mesh and "faces" in mesh:
        mesh = (mesh["vertices"], mesh["faces"])
    if isinstance(mesh, tuple | list) and len(mesh) == 2:
        try:
            V = np.asarray(mesh[0], dtype=np.float64)
            F = np.asarray(mesh[1])
        except (TypeError, ValueError) as e:
            raise RoiError(f"{where}: vertices/faces are not numeric arrays ({e})") from None
        if F.size and not np.issubdtype(F.dtype, np.integer):
            raise RoiError(f"{where}: faces must be integer vertex indices, got dtype {F.dtype}")
        return V, F.astype(np.int64)
    raise RoiError(f"{where}: expected a trimesh.Trimesh, (vertices, faces) or "
                   f"{{'vertices', 'faces'}}, got {type(mesh).__name__}")


def _load_mesh_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    try:
        m = trimesh.load(str(path), process=False)
    except Exception as e:  # noqa: BLE001 - any parser failure means "not a mesh"
        raise RoiError(f"{path}: not a readable mesh file ({type(e).__name__}: {e})") from None
    if isinstance(m, trimesh.Scene):
        geoms = [g for g in m.geometry.values() if isinstance(g, trimesh.Trimesh)]
        if not geoms:
            raise RoiError(f"{path}: file holds no triangle mesh")
        m = trimesh.util.concatenate(geoms)
    if not isinstance(m, trimesh.Trimesh):
        raise RoiError(f"{path}: file holds a {type(m).__name__}, not a triangle mesh")
    return np.asarray(m.vertices, dtype=np.float64), np.asarray(m.faces, dtype=np.int64)


def _net_edges(F: np.ndarray, nv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges (u < v) whose directed uses do not cancel, with net count (u -> v positive)."""
    a = np.concatenate([F[:, 0], F[:, 1], F[:, 2]])
    b = np.concatenate([F[:, 1], F[:, 2], F[:, 0]])
    u, v = np.minimum(a, b), np.maximum(a, b)
    d = np.where(a < b, 1, -1)
    key = u * nv + v
    uk, inv = np.unique(key, return_inverse=True)
    net = np.bincount(inv, weights=d).astype(np.int64)
    keep = net != 0
    return uk[keep] // nv, uk[keep] % nv, net[keep]


def _fans(V: np.ndarray, F: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Fan caps closing every hole component: list of (apex, radius, triangles (k, 3, 3))."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    u, v, net = _net_edges(F, len(V))
    if len(u) == 0:
        return []
    nv = len(V)
    g = coo_matrix((np.ones(len(u)), (u, v)), shape=(nv, nv))
    _, lab = connected_components(g, directed=False)
    out = []
    for comp in np.unique(lab[u]):
        sel = lab[u] == comp
        cu, cv, cn = u[sel], v[sel], net[sel]
        verts = np.unique(np.concatenate([cu, cv]))
        apex = V[verts].mean(axis=0)
        radius = float(np.linalg.norm(V[verts] - apex, axis=1).max())
        tris = []
        for a, b, n in zip(cu.tolist(), cv.tolist(), cn.tolist(), strict=True):
            # the chain has a->b uncancelled n times (n > 0): the cap adds b->a
            edge = (V[b], V[a]) if n > 0 else (V[a], V[b])
            tris.extend([np.stack([edge[0], edge[1], apex])] * abs(n))
        out.append((apex, radius, np.asarray(tris, dtype=np.float64)))
    return out


def _signed_volume(V: np.ndarray, F: np.ndarray, fans) -> float:
    tri = V[F]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()
    for _, _, ft in fans:
        vol += np.einsum("ij,ij->i", ft[:, 0], np.cross(ft[:, 1], ft[:, 2])).sum()
    return float(vol) / 6.0


class _Mesh:
    """A validated, repaired, scaled mesh (float64 vertices, int64 faces)."""

    def __init__(self, name: str, V: np.ndarray, F: np.ndarray, where: str, scale: float = 1.0):
        import trimesh

        self.name = name
        if V.ndim != 2 or V.shape[1] != 3 or len(V) == 0 or F.ndim != 2 or F.shape[1] != 3 or len(F) == 0:
            raise RoiError(f"{where}: mesh {name!r} is empty or malformed "
                           f"(vertices {V.shape}, faces {F.shape}); need (n, 3) arrays with n > 0")
        bad = ~np.isfinite(V).all(axis=1)
        if bad.any():
            raise RoiError(f"{where}: mesh {name!r} has {int(bad.sum())} NaN/inf vertices "
                           f"(e.g. vertex {int(np.flatnonzero(bad)[0])})")
        if F.min() < 0 or F.max() >= len(V):
            raise RoiError(f"{where}: mesh {name!r} has face indices outside 0..{len(V) - 1}")
        self.repairs: list[str] = []
        m = trimesh.Trimesh(V * scale, F, process=False)
        nv0 = len(m.vertices)
        m.merge_vertices(merge_tex=True, merge_norm=True)
        if len(m.vertices) != nv0:
            self.repairs.append(f"merged {nv0 - len(m.vertices)} duplicate vertices")
        Fm = np.asarray(m.faces, dtype=np.int64)
        rep = (Fm[:, 0] == Fm[:, 1]) | (Fm[:, 1] == Fm[:, 2]) | (Fm[:, 2] == Fm[:, 0])
        if rep.any():
            Fm = Fm[~rep]
            self.repairs.append(f"dropped {int(rep.sum())} faces with a repeated vertex")
            if len(Fm) == 0:
                raise RoiError(f"{where}: mesh {name!r} has no non-degenerate faces")
        Vm = np.asarray(m.vertices, dtype=np.float64)
        n_open = len(_net_edges(Fm, len(Vm))[0])
        if n_open:
            t = trimesh.Trimesh(Vm, Fm, process=False)
            if not t.is_winding_consistent:
                trimesh.repair.fix_winding(t)
                F2 = np.asarray(t.faces, dtype=np.int64)
                n2 = len(_net_edges(F2, len(Vm))[0])
                if n2 < n_open:
                    Fm, n_open = F2, n2
                    self.repairs.append("fixed inconsistent face winding")
        fans = _fans(Vm, Fm)
        if fans:
            self.repairs.append(
                f"open mesh: {n_open} boundary edges in {len(fans)} hole(s), closed by fan caps; "
                "winding numbers near the holes are computed exactly")
        vol = _signed_volume(Vm, Fm, fans)
        ext = float((Vm.max(axis=0) - Vm.min(axis=0)).max())
        if not (abs(vol) > 1e-9 * ext**3) or ext == 0:
            raise RoiError(f"{where}: mesh {name!r} encloses zero volume (|volume| = {abs(vol):.3g}, "
                           f"extent {ext:.3g}): flat or degenerate, cannot contain points")
        if vol < 0:
            Fm = Fm[:, ::-1].copy()
            fans = _fans(Vm, Fm)
            vol = -vol
            self.repairs.append("inverted orientation (negative volume): faces flipped")
        self.V, self.F, self.fans, self.volume = Vm, Fm, fans, vol
        self.extent = ext

    @property
    def watertight(self) -> bool:
        return not self.fans

    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(self.name.encode())
        h.update(np.ascontiguousarray(self.V).tobytes())
        h.update(np.ascontiguousarray(self.F).tobytes())
        return h.hexdigest()

    def trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.V, self.F, process=False)


# ----------------------------------------------------------------------------- grid


class _Grid:
    """The voxel label grid over a set of meshes (see the module docstring).

    Holds only numpy arrays and small scalars; serialisable to Zarr.
    """

    ARRAYS = ("grid", "refs", "ref_label", "cptr", "wmv", "tidx", "trec", "hcomp", "comp_mesh",
              "fptr", "fanV", "rank", "code", "origin", "shape", "subc", "spal")

    def __init__(self, arrays: Mapping[str, np.ndarray], h: float, key: str, names: Sequence[str]):
        for k in self.ARRAYS:
            setattr(self, k, arrays[k])
        self.h = float(h)
        self.key = key
        self.names = list(names)  # codes -> names (all of the RoiSet)
        self.n_mesh = len(self.rank)
        # derived, cheap (a pass over the grid): labels of uniform 8^3-cell
        # blocks and the mixed blocks' cells, block-major (what queries read)
        self.blk, self.bgrid = _ck.block_table(self.grid, self.shape)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, k).nbytes for k in self.ARRAYS)

    @property
    def bounds(self) -> np.ndarray:
        return np.stack([self.origin, self.origin + self.shape * self.h])

    # points per kernel call: bounds the scratch memory (44 B per point, 92 MB);
    # bigger calls sort more points per boundary cell and share more cache
    # lines (flywire78, 1 thread: 13.8 / 22.6 / 28.0 / 31.1 M points/s for
    # calls of 2**17 / 2**19 / 2**20 / 2**21 points)
    STEP = 1 << 21

    def _prepare(self, P: np.ndarray) -> np.ndarray:
        P = np.asarray(P)
        if P.dtype not in (np.float32, np.float64):
            P = P.astype(np.float64)
        return np.ascontiguousarray(P)

    def _query_into(self, P: np.ndarray, out: np.ndarray, exact: bool, scratch) -> None:
        _ck.query(P, self.origin, self.h, self.shape, bool(exact),
                  self.refs, self.ref_label, self.cptr, self.wmv, self.tidx, self.trec,
                  self.hcomp, self.comp_mesh, self.fptr, self.fanV, self.rank, self.code,
                  self.blk, self.bgrid, self.subc, self.spal, out, *scratch)

    def query(self, P: np.ndarray, exact: bool = True) -> np.ndarray:
        """Labels (int16 codes, -1 = none) of an (N, 3) float array."""
        P = self._prepare(P)
        out = np.empty(len(P), dtype=np.int16)
        scratch = _ck.scratch(min(len(P), self.STEP))
        for s in range(0, len(P), self.STEP):
            self._query_into(P[s : s + self.STEP], out[s : s + self.STEP], exact, scratch)
        return out

    def query_threaded(self, P: np.ndarray, exact: bool = True, n_threads: int | None = None) -> np.ndarray:
        """:meth:`query` over threads (the numba kernel releases the GIL).

        Each thread keeps one scratch buffer and takes the next slice of
        ``P`` until none is left, so for large inputs uneven slices (dense
        neuropils, points sorted by neuron) still keep every thread busy.
        """
        n = len(P)
        nt = n_threads or os.cpu_count() or 1
        if nt <= 1 or n < 200_000:
            return self.query(P, exact)
        P = self._prepare(P)
        out = np.empty(n, dtype=np.int16)
        # one slice per thread up to STEP points: bigger slices are faster (see STEP)
        step = min(self.STEP, -(-n // nt))
        starts = iter(range(0, n, step))  # next() on a range iterator is atomic under the GIL

        def run() -> None:
            scratch = _ck.scratch(step)
            for s in starts:
                self._query_into(P[s : s + step], out[s : s + step], exact, scratch)

        with concurrent.futures.ThreadPoolExecutor(nt) as ex:
            for f in [ex.submit(run) for _ in range(nt)]:
                f.result()
        return out

    # -- Zarr persistence (no pickle)
    def to_zarr(self, path: Path) -> None:
        import zarr

        g = zarr.open_group(str(path), mode="w")
        g.attrs.update({"h": self.h, "key": self.key, "names": self.names,
                        "algo_version": _ALGO_VERSION})
        for k in self.ARRAYS:
            a = np.ascontiguousarray(getattr(self, k))
            chunks = (max(1, min(a.shape[0], 1 << 22)), *(max(1, d) for d in a.shape[1:]))
            # the store's codecs (CRC32C on every chunk): a damaged cached grid fails to
            # load and is rebuilt, never trusted
            arr = g.create_array(k, shape=a.shape, dtype=a.dtype, chunks=chunks, overwrite=True,
                                 compressors=array_codecs(), config={"write_empty_chunks": True})
            if a.size:
                arr[...] = a

    @classmethod
    def from_zarr(cls, path: Path) -> _Grid:
        import zarr

        g = zarr.open_group(str(path), mode="r")
        attrs = dict(g.attrs)
        if attrs.get("algo_version") != _ALGO_VERSION:
            raise RoiError(f"{path}: grid written by another algorithm version")
        arrays = {}
        for k in cls.ARRAYS:
            arr = g[k]
            # zarr returns the fill value for a missing chunk: refuse a grid with one
            if arr.size and arr.nchunks_initialized != arr.nchunks:
                raise RoiError(f"{path}/{k}: {arr.nchunks - arr.nchunks_initialized} chunk file(s) missing")
            arrays[k] = np.asarray(arr[...])
        return cls(arrays, attrs["h"], attrs["key"], attrs["names"])


def _morton(ijk: np.ndarray) -> np.ndarray:
    """Morton (Z-order) codes of non-negative int cell coordinates (< 2**21)."""
    out = np.zeros(len(ijk), dtype=np.uint64)
    for d in range(3):
        x = ijk[:, d].astype(np.uint64)
        for b in range(21):
            out |= ((x >> np.uint64(b)) & np.uint64(1)) << np.uint64(3 * b + d)
    return out


def _auto_voxel(lo: np.ndarray, hi: np.ndarray, n_tri: int) -> float:
    """Voxel edge giving about 64 cells per triangle, between 2**15 and 2**23 cells."""
    vol = float(np.prod(np.maximum(hi - lo, 1e-12)))
    cells = min(max(64 * n_tri, 1 << 15), 1 << 23)
    return (vol / cells) ** (1.0 / 3.0)


def _build_grid(meshes: Sequence[_Mesh], codes: Sequence[int], ranks: Sequence[int],
                names: Sequence[str], voxel_size: float | None, key: str) -> _Grid:
    # ---- combined triangle soup (meshes + fan caps), global vertex ids
    Vs, Ts, tm = [], [], []
    fanV, fptr, comp_mesh, balls = [], [0], [], []
    off = 0
    for li, m in enumerate(meshes):
        Vs.append(m.V)
        Ts.append(m.F + off)
        tm.append(np.full(len(m.F), li, np.int32))
        off += len(m.V)
        for apex, radius, ft in m.fans:
            # fan triangles need shared vertex ids for consistent edges: add the
            # apex as a new vertex and look up the rim vertices by coordinates
            ids = {tuple(v): i for i, v in enumerate(m.V.tolist())}
            rim = np.array([[ids[tuple(t[0])], ids[tuple(t[1])]] for t in ft.tolist()], np.int64)
            Vs.append(apex[None, :])
            tri = np.column_stack([rim[:, 0] + (off - len(m.V)), rim[:, 1] + (off - len(m.V)),
                                   np.full(len(rim), off)])
            off += 1
            Ts.append(tri)
            tm.append(np.full(len(tri), li, np.int32))
            fanV.append(ft)
            fptr.append(fptr[-1] + len(ft))
            comp_mesh.append(li)
            balls.append((apex, _FAN_RADIUS * radius))
    V = np.concatenate(Vs)
    T = np.concatenate(Ts).astype(np.int64)
    tri_mesh = np.concatenate(tm)
    lo, hi = V.min(axis=0), V.max(axis=0)
    for c, r in balls:
        lo, hi = np.minimum(lo, c - r), np.maximum(hi, c + r)
    h = float(voxel_size) if voxel_size else _auto_voxel(lo, hi, len(T))
    # an odd sub-voxel offset keeps column rays off axis-aligned procedural faces
    origin = lo - h * np.array([1.1234567, 1.2345671, 1.3456712])
    shape = (np.ceil((hi - origin) / h).astype(np.int64) + 2)
    if int(np.prod(shape)) > (1 << 31) - 1:
        raise RoiError(f"voxel_size {h:g} gives a grid of {shape.tolist()} cells: too many; "
                       "use a larger voxel_size")
    Vl = V - origin
    # triangles in Morton order of their centroids: a cell's triangles share cache lines
    cen = ((Vl[T[:, 0]] + Vl[T[:, 1]] + Vl[T[:, 2]]) / (3 * h)).astype(np.int64)
    order = np.argsort(_morton(np.clip(cen, 0, (1 << 21) - 1)), kind="stable")
    T, tri_mesh = T[order], tri_mesh[order]
    # ---- triangle planes and canonical edges (Pluecker coordinates)
    a, b, c = Vl[T[:, 0]], Vl[T[:, 1]], Vl[T[:, 2]]
    nrm = np.cross(b - a, c - a)
    plane = np.column_stack([nrm, np.einsum("ij,ij->i", nrm, a)])
    ea = np.concatenate([T[:, 0], T[:, 1], T[:, 2]])
    eb = np.concatenate([T[:, 1], T[:, 2], T[:, 0]])
    eu, ev = np.minimum(ea, eb), np.maximum(ea, eb)
    ukey, einv = np.unique(eu * len(V) + ev, return_inverse=True)
    u, v = ukey // len(V), ukey % len(V)
    edge_pl = np.column_stack([Vl[v] - Vl[u], np.cross(Vl[u], Vl[v])])
    nt = len(T)
    tri_edge = einv.reshape(3, nt).T
    tri_esgn = np.where(ea < eb, 1.0, -1.0).reshape(3, nt).T
    trec = np.empty((nt, _ck.TREC))
    trec[:, 0:4] = plane
    for k in range(3):
        trec[:, 4 + 6 * k : 10 + 6 * k] = edge_pl[tri_edge[:, k]] * tri_esgn[:, k : k + 1]
    trec[:, 22:25] = tri_esgn
    trec[:, 25] = tri_mesh
    # ---- boundary cells: triangles and hole balls
    cells, tris = _ck.tri_cells(Vl, T, h, shape)
    hc, hcomp_l = [], []
    for k, (cen, r) in enumerate(balls):
        cl = cen - origin
        i0 = np.maximum(np.floor((cl - r) / h).astype(np.int64), 0)
        i1 = np.minimum(np.floor((cl + r) / h).astype(np.int64), shape - 1)
        ii = [np.arange(i0[d], i1[d] + 1) for d in range(3)]
        gi, gj, gk = np.meshgrid(*ii, indexing="ij")
        lo_c = np.stack([gi, gj, gk], -1) * h
        near = np.clip(cl, lo_c, lo_c + h)
        inside = np.linalg.norm(near - cl, axis=-1) <= r
        lin = ((gi * shape[1] + gj) * shape[2] + gk)[inside]
        hc.append(lin.ravel())
        hcomp_l.append(np.full(lin.size, k, np.int32))
    hcells = np.concatenate(hc) if hc else np.zeros(0, np.int64)
    hcomp = np.concatenate(hcomp_l) if hcomp_l else np.zeros(0, np.int32)
    bcells = np.unique(np.concatenate([cells, hcells]))
    grid = np.full(int(np.prod(shape)), -1, dtype=np.int32)
    grid[bcells] = np.arange(len(bcells), dtype=np.int32)
    nb = len(bcells)
    o = np.lexsort((tris, cells))
    cells, tris = cells[o], tris[o]
    tptr = np.searchsorted(grid[cells], np.arange(nb + 1)).astype(np.int64) if nb else np.zeros(1, np.int64)
    o = np.lexsort((hcomp, hcells))
    hcells, hcomp = hcells[o], hcomp[o]
    hptr = np.searchsorted(grid[hcells], np.arange(nb + 1)).astype(np.int64) if nb else np.zeros(1, np.int64)
    # ---- column rays and the sweep
    col, cz, cm, cs = _ck.column_crossings(Vl, T, tri_mesh, h, shape)
    rank = np.asarray(ranks, dtype=np.int64)
    code = np.asarray(codes, dtype=np.int64)
    refs, ref_label, wptr, wmesh, wval = _ck.sweep(shape, h, col, cz, cm, cs, grid, len(meshes), rank, code)
    cptr = np.column_stack([tptr, wptr, hptr]).astype(np.int64)
    wmv = np.column_stack([wmesh, wval]).astype(np.int64).reshape(-1, 2)
    fanV_l = (np.concatenate(fanV) - origin) if fanV else np.zeros((0, 3, 3))
    comp_mesh_a = np.asarray(comp_mesh, np.int32)
    fptr_a = np.asarray(fptr, np.int64)
    sub = _ck.sub_labels(h, shape, bcells, Vl, T, refs, cptr, wmv, tris, trec, hcomp, comp_mesh_a,
                         fptr_a, fanV_l, rank, code)
    subc, spal = _ck.pack_sub(sub)
    arrays = {
        "grid": grid, "refs": refs, "ref_label": ref_label,
        "cptr": cptr, "wmv": wmv, "tidx": tris, "trec": trec, "hcomp": hcomp,
        "comp_mesh": comp_mesh_a, "fptr": fptr_a, "fanV": fanV_l,
        "rank": rank, "code": code, "origin": origin, "shape": shape, "subc": subc, "spal": spal,
    }
    return _Grid(arrays, h, key, names)


# ----------------------------------------------------------------------------- RoiSet


def _hierarchy_names(h: Mapping, where: str, path: tuple = ()) -> list[tuple[str, bool]]:
    """(name, is_leaf) for every node of a nested dict hierarchy (depth-first, in order).

    Iterative, with a depth limit: a hierarchy nested thousands of levels deep
    is an error, not a RecursionError.
    """
    out: list[tuple[str, bool]] = []
    if not isinstance(h, Mapping):
        raise RoiError(f"{where}: hierarchy must be a nested dict, got {type(h).__name__} "
                       f"at {'/'.join(path) or 'top level'}")
    stack = [(iter(h.items()), path)]
    while stack:
        items, at = stack[-1]
        kv = next(items, None)
        if kv is None:
            stack.pop()
            continue
        k, v = kv
        if not isinstance(k, str):
            raise RoiError(f"{where}: hierarchy key {k!r} is not a string")
        if v is None:
            v = {}
        if not isinstance(v, Mapping):
            raise RoiError(f"{where}: hierarchy value under {k!r} must be a dict, got {type(v).__name__}")
        out.append((k, len(v) == 0))
        if v:
            if len(stack) >= _MAX_DEPTH:
                raise RoiError(f"{where}: hierarchy is nested more than {_MAX_DEPTH} levels deep "
                               f"(under {'/'.join((*at, k))[:200]!r})")
            stack.append((iter(v.items()), (*at, k)))
    return out


class RoiSet:
    """A set of named ROI meshes with primary ROIs and a hierarchy (neuPrint style).

    Build with :meth:`from_directory`, :meth:`from_meshes` or :meth:`from_store`.
    Meshes are validated and repaired on construction (see the module
    docstring); the exact containment structure is built lazily and cached.

    Tie rule: a point inside several primary ROIs gets the one with the
    **smallest volume**, then the one listed first in :attr:`names`.

    Examples
    --------
    >>> import trimesh
    >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()})
    >>> rs.assign(np.array([[0.0, 0, 0], [0.9, 0, 0], [5, 5, 5]])).tolist()
    [0, 1, -1]
    """

    def __init__(self, meshes: Mapping[str, _Mesh], *, hierarchy: Mapping | None = None,
                 primary: Sequence[str] | None = None, name: str = "rois", scale: float = 1.0,
                 voxel_size: float | None = None, where: str = "RoiSet") -> None:
        if not meshes:
            raise RoiError(f"{where}: no meshes given")
        self._meshes = dict(meshes)
        self._bounds: np.ndarray | None = None
        self._names = list(self._meshes)
        if hierarchy is not None and not isinstance(hierarchy, Mapping):
            raise RoiError(f"{where}: hierarchy must be a nested dict, got {type(hierarchy).__name__}")
        hierarchy = dict(hierarchy or {})
        nodes = _hierarchy_names(hierarchy, where)
        missing = sorted({n for n, leaf in nodes if leaf and n not in self._meshes})
        if missing:
            raise RoiError(f"{where}: hierarchy names ROIs that have no mesh: {missing[:10]}"
                           f"{' ...' if len(missing) > 10 else ''}")
        for n, _ in nodes:
            _check_roi_name(n, f"{where} hierarchy")
        if primary is None:
            primary = list(self._names)
        if isinstance(primary, str | bytes | Mapping) or not hasattr(primary, "__iter__"):
            raise RoiError(f"{where}: primary must be a list of ROI names, got {primary!r:.200}")
        primary = list(primary)
        if not all(isinstance(p, str) for p in primary):
            raise RoiError(f"{where}: primary must be a list of ROI names, got {primary!r:.200}")
        if len(set(primary)) != len(primary):
            dup = sorted({p for p in primary if primary.count(p) > 1})
            raise RoiError(f"{where}: primary lists ROIs twice: {dup}")
        bad = [p for p in primary if p not in self._meshes]
        if bad:
            raise RoiError(f"{where}: primary ROIs without a mesh: {bad[:10]}")
        if voxel_size is not None:
            try:
                v = float(voxel_size)
            except (TypeError, ValueError):
                v = math.nan
            if not (v > 0 and math.isfinite(v)):
                raise RoiError(f"{where}: voxel_size must be a positive number, got {voxel_size!r}")
        self._primary = [n for n in self._names if n in set(primary)]
        self._hierarchy = hierarchy
        self.name = str(name)
        self.scale = float(scale)
        self.voxel_size = None if voxel_size is None else float(voxel_size)
        self._grids: dict[tuple, _Grid] = {}
        repaired = {n: m.repairs for n, m in self._meshes.items() if m.repairs}
        if repaired:
            warnings.warn(
                f"{where}: repaired {len(repaired)} mesh(es): "
                + "; ".join(f"{n}: {', '.join(r)}" for n, r in list(repaired.items())[:8])
                + (" ..." if len(repaired) > 8 else ""),
                RoiRepairWarning, stacklevel=3)

    # -- constructors
    @classmethod
    def from_meshes(cls, meshes: Mapping[str, Any], hierarchy: Mapping | None = None,
                    primary: Sequence[str] | None = None, scale: float | str = 1.0, *,
                    voxel_size: float | None = None, name: str = "rois") -> RoiSet:
        """Build from a dict ``{name: trimesh.Trimesh | (vertices, faces)}``.

        Parameters
        ----------
        meshes
            ROI name -> mesh. Names must be unique; code order is dict order.
        hierarchy
            Nested dict ``{group: {roi: {}, ...}}``; leaves must be mesh names.
        primary
            Names of the primary ROIs (default: all).
        scale
            Multiplier from mesh units to point units (e.g. ``1000`` for meshes
            in micrometres and synapses in nm), or a unit name (``"um"``,
            ``"nm"``, ``"mm"``) converted to nm.
        voxel_size
            Grid voxel edge in point units (default: automatic, ~64 cells per triangle).

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"cube": trimesh.creation.box()}, scale=1000)
        >>> rs.contains(np.array([[400.0, 0, 0], [600, 0, 0]]), "cube").tolist()
        [True, False]
        """
        s = _parse_scale(scale)
        if not isinstance(meshes, Mapping):
            raise RoiError(f"from_meshes: expected a dict of name -> mesh, got {type(meshes).__name__}")
        prepared = {}
        for n, m in meshes.items():
            _check_roi_name(n, "from_meshes")
            V, F = _as_arrays(m, f"from_meshes[{n!r}]")
            prepared[n] = _Mesh(n, V, F, f"from_meshes[{n!r}]", s)
        return cls(prepared, hierarchy=hierarchy, primary=primary, name=name, scale=s,
                   voxel_size=voxel_size, where="from_meshes")

    @classmethod
    def from_directory(cls, path: str | os.PathLike, scale: float | str = 1.0, *,
                       voxel_size: float | None = None, name: str | None = None) -> RoiSet:
        """Load ``*.ply / *.obj / *.stl`` meshes (named by file stem) and ``hierarchy.json``.

        ``hierarchy.json`` (optional) is ``{"primary": [...], "hierarchy": {...}}``;
        without it every mesh is primary. Meshes are ordered by name.

        Examples
        --------
        The procedural neuropil meshes of a synthetic store (already in nm):

        >>> rs = RoiSet.from_directory(cd.datasets.meshes_for(conn))
        >>> len(rs.names), rs.primary[:3]
        (26, ['AL_L', 'AL_R', 'AVLP_L'])
        >>> sorted(rs.hierarchy["CX"])
        ['EB', 'FB', 'NO', 'PB']

        A real mesh folder in micrometres is loaded with ``scale="um"`` (skipped:
        needs the shared JRC2018 neuropil meshes):

        >>> rs = RoiSet.from_directory("../shared/data/meshes/jfrc2np", scale="um")  # doctest: +SKIP
        """
        p = Path(path)
        if not p.is_dir():
            raise RoiError(f"{p} is not a directory of mesh files")
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in MESH_SUFFIXES)
        if not files:
            raise RoiError(f"{p}: no mesh files ({', '.join(MESH_SUFFIXES)})")
        stems: dict[str, Path] = {}
        for f in files:
            if f.stem in stems:
                raise RoiError(f"{p}: duplicate ROI name {f.stem!r} ({stems[f.stem].name} and {f.name})")
            stems[f.stem] = f
        s = _parse_scale(scale)
        hierarchy, primary, hname = None, None, None
        hj = p / "hierarchy.json"
        if hj.exists():
            try:
                info = json.loads(hj.read_bytes().decode("utf-8"))
            except json.JSONDecodeError as e:
                raise RoiError(f"{hj}: not valid JSON ({e})") from None
            except UnicodeDecodeError as e:
                raise RoiError(f"{hj}: not valid UTF-8 text ({e})") from None
            except RecursionError:
                raise RoiError(f"{hj}: JSON nested too deeply to be a hierarchy") from None
            except OSError as e:
                raise RoiError(f"{hj}: cannot read the file ({e})") from None
            if not isinstance(info, Mapping):
                raise RoiError(f"{hj}: expected an object with 'primary' and 'hierarchy'")
            hierarchy, primary, hname = info.get("hierarchy"), info.get("primary"), info.get("name")
        prepared = {}
        for n in sorted(stems):
            _check_roi_name(n, f"{p}: file {stems[n].name!r}")
            V, F = _load_mesh_file(stems[n])
            prepared[n] = _Mesh(n, V, F, str(stems[n]), s)
        return cls(prepared, hierarchy=hierarchy, primary=primary,
                   name=name or p.name or str(hname), scale=s, voxel_size=voxel_size, where=str(p))

    @classmethod
    def from_store(cls, conn: Connectome | None = None) -> RoiSet:
        """Reload the ROI set stored by :func:`assign_rois` (meshes already repaired and scaled).

        Examples
        --------
        >>> rs = RoiSet.from_store(conn)
        >>> rs.names == conn.roi_names, rs.primary == conn.roi_info["primary"]
        (True, True)
        """
        conn = conn if conn is not None else default_connectome()
        info = conn.roi_info
        if not info:
            raise RoiError(f"{conn.path}: the store has no ROI set; run assign_rois first")
        root = conn.rois_path
        if not isinstance(info.get("meshes"), Mapping):
            raise RoiError(f"{root / 'rois.json'}: the stored ROI set has names but no meshes "
                           "(it was not written by assign_rois); cannot rebuild a RoiSet")
        names = info.get("names")
        if not isinstance(names, list):
            raise RoiError(f"{root / 'rois.json'}: 'names' must be a list, got {type(names).__name__}")
        prepared = {}
        for n in names:
            _check_roi_name(n, str(root / "rois.json"))
            rel = info["meshes"].get(n)
            if not isinstance(rel, str) or not re.fullmatch(r"meshes/[0-9]{4,6}\.ply", rel):
                raise RoiError(f"{root / 'rois.json'}: unexpected mesh path {rel!r}")
            V, F = _load_mesh_file(root / rel)
            prepared[n] = _Mesh(n, V, F, str(root / rel))
        rs = cls(prepared, hierarchy=info.get("hierarchy"), primary=info.get("primary"),
                 name=info.get("name", conn.meta.get("name", "rois")),
                 voxel_size=info.get("voxel_size"), where=str(root))
        g = info.get("grid")
        if g and g.get("key") == rs.grid_key():
            try:
                rs._grids[rs._grid_cache_key(None)] = _Grid.from_zarr(root / safe_name(g["path"]))
            except Exception:  # noqa: BLE001 - a bad cache is rebuilt, never trusted
                pass
        return rs

    # -- properties
    @property
    def names(self) -> list[str]:
        """All ROI names in code order (``assign`` returns indices into this list).

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()},
        ...                         hierarchy={"AB": {"A": {}, "B": {}}}, primary=["A"])
        >>> rs.names
        ['A', 'B']
        """
        return list(self._names)

    @property
    def primary(self) -> list[str]:
        """Primary ROI names (in code order).

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()},
        ...                         hierarchy={"AB": {"A": {}, "B": {}}}, primary=["A"])
        >>> rs.primary
        ['A']
        """
        return list(self._primary)

    @property
    def hierarchy(self) -> dict:
        """Nested hierarchy dict as given (groups may be names without meshes).

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()},
        ...                         hierarchy={"AB": {"A": {}, "B": {}}}, primary=["A"])
        >>> rs.hierarchy
        {'AB': {'A': {}, 'B': {}}}
        """
        return json.loads(json.dumps(self._hierarchy))

    @property
    def meshes(self) -> dict:
        """Repaired, scaled meshes as ``trimesh.Trimesh`` (the ones containment is defined on).

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()},
        ...                         hierarchy={"AB": {"A": {}, "B": {}}}, primary=["A"])
        >>> sorted(rs.meshes), rs.meshes["A"].is_watertight
        (['A', 'B'], True)
        """
        return {n: m.trimesh() for n, m in self._meshes.items()}

    @property
    def repairs(self) -> dict[str, list[str]]:
        """What was repaired per mesh (only meshes that needed it).

        Examples
        --------
        >>> import trimesh, warnings
        >>> inside_out = trimesh.creation.box()
        >>> inside_out.faces = inside_out.faces[:, ::-1]
        >>> with warnings.catch_warnings():  # RoiRepairWarning
        ...     warnings.simplefilter("ignore")
        ...     rs = RoiSet.from_meshes({"box": inside_out})
        >>> rs.repairs
        {'box': ['inverted orientation (negative volume): faces flipped']}
        """
        return {n: list(m.repairs) for n, m in self._meshes.items() if m.repairs}

    @property
    def volumes(self) -> dict[str, float]:
        """Volume of each repaired, scaled mesh (nm^3 once ``scale`` converts to nm).

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()},
        ...                         hierarchy={"AB": {"A": {}, "B": {}}}, primary=["A"])
        >>> {n: round(v, 3) for n, v in rs.volumes.items()}
        {'A': 1.0, 'B': 4.153}
        """
        return {n: m.volume for n, m in self._meshes.items()}

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) bounding box of all meshes.

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()},
        ...                         hierarchy={"AB": {"A": {}, "B": {}}}, primary=["A"])
        >>> rs.bounds.tolist()
        [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]
        """
        if self._bounds is None:  # meshes are fixed at construction; checked on every assign
            lo = np.min([m.V.min(axis=0) for m in self._meshes.values()], axis=0)
            hi = np.max([m.V.max(axis=0) for m in self._meshes.values()], axis=0)
            self._bounds = np.stack([lo, hi])
        return self._bounds.copy()

    def __repr__(self) -> str:
        return f"<RoiSet {self.name!r}: {len(self._names)} ROIs, {len(self._primary)} primary>"

    # -- grids
    def _ranked(self, names: Sequence[str]) -> list[int]:
        # volumes equal to 9 significant digits tie (translated copies of a mesh
        # differ in the last bits of their computed volume)
        order = sorted(range(len(names)), key=lambda i: (float(f"{self._meshes[names[i]].volume:.9g}"),
                                                        self._names.index(names[i])))
        rank = [0] * len(names)
        for r, i in enumerate(order):
            rank[i] = r
        return rank

    def _grid_cache_key(self, names: Sequence[str] | None) -> tuple:
        return (tuple(self._primary if names is None else names), self.voxel_size)

    def grid_key(self, names: Sequence[str] | None = None) -> str:
        """Content hash of the containment grid for ``names`` (default: the primary ROIs).

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()})
        >>> len(rs.grid_key()), rs.grid_key() == rs.grid_key(["A", "B"]), rs.grid_key(["A"]) == rs.grid_key()
        (32, True, False)
        """
        names = self._primary if names is None else list(names)
        h = hashlib.sha256(f"v{_ALGO_VERSION}|{self.voxel_size}|{_FAN_RADIUS}".encode())
        for n in names:
            h.update(f"|{self._names.index(n)}|".encode())
            h.update(self._meshes[n].digest().encode())
        return h.hexdigest()[:32]

    def grid(self, names: Sequence[str] | None = None) -> _Grid:
        """The (cached) containment grid over ``names`` (default: primary ROIs).

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()})
        >>> g = rs.grid()
        >>> g is rs.grid(), g.key == rs.grid_key()
        (True, True)
        """
        ck = self._grid_cache_key(names)
        if ck not in self._grids:
            sel = list(ck[0])
            for n in sel:
                if n not in self._meshes:
                    raise KeyError(f"no ROI named {n!r}; available: {self._names[:10]} ...")
            self._grids[ck] = _build_grid(
                [self._meshes[n] for n in sel], [self._names.index(n) for n in sel],
                self._ranked(sel), self._names, self.voxel_size, self.grid_key(sel))
        return self._grids[ck]

    # -- queries
    def _check_points(self, points: Any, what: str):
        import dask.array as da

        if isinstance(points, da.Array):
            if points.ndim != 2 or points.shape[1] != 3:
                raise RoiError(f"{what}: points must be (N, 3), got shape {points.shape}")
            return points
        try:
            P = np.asarray(points)
        except (TypeError, ValueError) as e:
            raise RoiError(f"{what}: points must be an (N, 3) array ({e})") from None
        if P.ndim != 2 or P.shape[1] != 3:
            raise RoiError(f"{what}: points must be an (N, 3) array, got shape {P.shape}")
        if not np.issubdtype(P.dtype, np.number):
            raise RoiError(f"{what}: points must be numeric, got dtype {P.dtype}")
        if len(P):
            _warn_scale(P, self.bounds, self.scale, what)
        return P

    def assign(self, points: Any, *, exact: bool = True, n_threads: int | None = None):
        """Code of the primary ROI containing each point (index into :attr:`names`, -1 = none).

        Parameters
        ----------
        points
            (N, 3) numpy array or dask array (row chunks; mapped block-wise,
            the grid is passed once as a delayed object).
        exact
            ``False`` gives the pure voxel lookup (neuPrint style): points in
            boundary voxels get the label of the voxel's reference point.

        Returns
        -------
        numpy.ndarray or dask.array.Array of int16

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"big": trimesh.creation.box((4, 4, 4)), "small": trimesh.creation.box()})
        >>> rs.assign(np.array([[0.0, 0, 0], [1.5, 0, 0]])).tolist()  # smallest volume wins
        [1, 0]
        """
        return self._run(points, None, exact, n_threads, "assign")

    def contains(self, points: Any, name: str, *, exact: bool = True, n_threads: int | None = None):
        """Boolean array: is each point inside ROI ``name`` (GWN >= 0.5)?

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"ball": trimesh.creation.icosphere()})
        >>> rs.contains(np.array([[0.0, 0, 0], [0, 0, 1.5]]), "ball").tolist()
        [True, False]
        """
        if name not in self._meshes:
            raise KeyError(f"no ROI named {name!r}; available: {self._names[:10]}"
                           f"{' ...' if len(self._names) > 10 else ''}")
        return self._run(points, name, exact, n_threads, "contains")

    def _run(self, points, name, exact, n_threads, what):
        import dask.array as da
        from dask.delayed import delayed

        P = self._check_points(points, f"RoiSet.{what}")
        grid = self.grid(None if name is None else [name])
        if isinstance(P, da.Array):
            if P.chunks[1] != (3,):
                P = P.rechunk({1: 3})
            g = delayed(grid, name=f"roi-grid-{grid.key}", traverse=False)
            out = P.map_blocks(_block_labels, g, bool(exact), dtype=np.int16, drop_axis=1,
                                meta=np.empty((0,), np.int16))
            return out >= 0 if name is not None else out
        lab = grid.query_threaded(P, exact, n_threads)
        return lab >= 0 if name is not None else lab

    # -- persistence
    def write(self, directory: str | os.PathLike, *, grid: _Grid | None = None,
              grid_src: Path | None = None) -> None:
        """Write ``rois.json``, ``meshes/NNNN.ply`` and the primary grid (``grid.zarr``).

        File names are ROI codes, never ROI names.

        Examples
        --------
        >>> import json, trimesh
        >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere()})
        >>> rs.write(tmp_path / "rois")
        >>> sorted(p.name for p in (tmp_path / "rois").iterdir())
        ['grid.zarr', 'meshes', 'rois.json']
        >>> json.loads((tmp_path / "rois" / "rois.json").read_text())["meshes"]
        {'A': 'meshes/0000.ply', 'B': 'meshes/0001.ply'}
        """
        d = Path(directory)
        (d / "meshes").mkdir(parents=True, exist_ok=True)
        files = {}
        for i, n in enumerate(self._names):
            rel = f"meshes/{safe_name(f'{i:04d}.ply')}"
            _write_ply64(d / rel, self._meshes[n].V, self._meshes[n].F)
            files[n] = rel
        g = grid if grid is not None else self.grid()
        if grid_src is not None and Path(grid_src).is_dir():
            shutil.copytree(grid_src, d / "grid.zarr")
        else:
            g.to_zarr(d / "grid.zarr")
        info = {
            "format_version": 1,
            "name": self.name,
            "names": self._names,
            "primary": self._primary,
            "hierarchy": self._hierarchy,
            "meshes": files,
            "volumes": {n: m.volume for n, m in self._meshes.items()},
            "repairs": self.repairs,
            "scale_applied": self.scale,
            "voxel_size": self.voxel_size,
            "tie_rule": _TIE_RULE,
            "grid": {"key": g.key, "path": "grid.zarr", "voxel": g.h, "algo_version": _ALGO_VERSION},
        }
        (d / "rois.json").write_text(json.dumps(info, indent=1))


def _write_ply64(path: Path, V: np.ndarray, F: np.ndarray) -> None:
    """Binary PLY with float64 vertices (trimesh's exporter writes float32, which
    would change the meshes, and so the labels, on a round trip through the store)."""
    head = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(V)}\n"
            "property double x\nproperty double y\nproperty double z\n"
            f"element face {len(F)}\nproperty list uchar int vertex_indices\nend_header\n")
    faces = np.zeros(len(F), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    faces["n"] = 3
    faces["v"] = F
    with open(path, "wb") as f:
        f.write(head.encode("ascii"))
        f.write(np.ascontiguousarray(V, dtype="<f8").tobytes())
        f.write(faces.tobytes())


def _block_labels(block: np.ndarray, grid: _Grid, exact: bool) -> np.ndarray:
    return grid.query(block, exact)


def _warn_scale(P: np.ndarray, bounds: np.ndarray, scale: float, what: str, error: bool = False) -> None:
    def bbox(Q):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            return np.nanmin(Q, axis=0), np.nanmax(Q, axis=0)

    def overlaps(lo, hi):
        return np.isfinite(lo).all() and (hi >= bounds[0]).all() and (lo <= bounds[1]).all()

    # a strided sample's bbox lies inside the full bbox: if it overlaps the
    # meshes, so do all points, and the full pass (20 % of a fast assign) is
    # skipped; a small sample, as each strided row is a cache miss
    step = max(1, len(P) // 4096)
    sample = P[::step]
    if step > 1 and overlaps(*bbox(sample)):
        _check_extent(sample, bounds, scale, what)
        return
    lo, hi = bbox(P)
    if not np.isfinite(lo).all():
        return
    if overlaps(lo, hi):
        _check_extent(sample, bounds, scale, what)
        return
    ps = float(np.abs(np.concatenate([lo, hi])).max()) or 1.0
    ms = float(np.abs(bounds).max()) or 1.0
    ratio = ps / ms
    hint = ""
    if ratio > 3 or ratio < 1 / 3:
        hint = (f"; the points are ~{ratio:.3g}x larger than the meshes: a units mismatch? "
                f"(meshes were scaled by {scale:g}; try scale={scale * 10 ** round(math.log10(ratio)):g})")
    msg = (f"{what}: points (bbox {lo.round(3).tolist()}..{hi.round(3).tolist()}) do not overlap the "
           f"ROI meshes (bbox {bounds[0].round(3).tolist()}..{bounds[1].round(3).tolist()}) at all{hint}")
    if error:
        raise RoiError(msg)
    warnings.warn(msg, RoiScaleWarning, stacklevel=4)


def _check_extent(P: np.ndarray, bounds: np.ndarray, scale: float, what: str) -> None:
    """Warn when the points' extent and the meshes' extent differ by a factor >= 4.

    Overlapping points can still be in the wrong units: hemibrain synapses in
    8 nm voxels ingested as nm start near 0 like the meshes but span 1/8 of
    them (90 % wrong labels). The extent is the largest side of the 1st..99th
    percentile box (robust to a few stray points), judged only on
    ``_SCALE_MIN_POINTS`` or more finite points.
    """
    Q = np.asarray(P, dtype=np.float64)
    Q = Q[np.isfinite(Q).all(axis=1)]
    if len(Q) < _SCALE_MIN_POINTS:
        return
    lo, hi = np.percentile(Q[:: max(1, len(Q) // 65536)], [1, 99], axis=0)
    ext_p = float((hi - lo).max())
    ext_m = float((bounds[1] - bounds[0]).max())
    if not (ext_p > 0 and ext_m > 0):
        return
    ratio = ext_p / ext_m
    if 1 / _SCALE_FACTOR < ratio < _SCALE_FACTOR:
        return
    if ratio < 1:
        hint = ("Are the points in voxels but read as nm (hemibrain: ingest with units='voxels', "
                f"voxel_size=8), or the meshes scaled too much (scale={scale:g}; try "
                f"scale={scale * ratio:.3g})? Ignore this if the points cover only part of the "
                "meshes' volume on purpose.")
    else:
        hint = (f"Are the meshes in larger units than the points (scale={scale:g}; meshes in "
                f"micrometres need scale='um'; try scale={scale * ratio:.3g})? Ignore this if the "
                "meshes cover only part of the points' volume on purpose.")
    warnings.warn(
        f"{what}: the points' extent is ~{ratio:.3g}x that of the ROI meshes (largest side "
        f"{ext_p:.4g} vs {ext_m:.4g}, 1st..99th percentile of {len(Q)} points): a units "
        f"mismatch? {hint}",
        RoiScaleWarning, stacklevel=5)


# ----------------------------------------------------------------------------- assign_rois


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

    Returns
    -------
    Connectome
        The re-opened store.

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

    from ._compute import active_client

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
    if ck not in roiset._grids and info.get("grid", {}).get("key") == key:
        src = conn.rois_path / safe_name(info["grid"]["path"])
        try:
            roiset._grids[ck] = _Grid.from_zarr(src)
            grid_src = src
        except Exception:  # noqa: BLE001 - rebuild rather than trust a damaged cache
            grid_src = None
    elif info.get("grid", {}).get("key") == key:
        grid_src = conn.rois_path / safe_name(info["grid"]["path"])
    grid = roiset.grid()
    client = active_client()
    if client is not None:
        gref = client.scatter(grid, broadcast=True, hash=False)
    else:
        gref = delayed(grid, name=f"roi-grid-{grid.key}", traverse=False)

    def write_rois(d: Path) -> None:
        roiset.write(d, grid=grid, grid_src=grid_src)

    return conn.write_synapse_columns(
        _assign_block, inputs, {name: "int16" for name, _ in site_cols},
        args=(gref, site_cols, bool(exact)), write_rois=write_rois, progress=progress,
        desc=f"assign_rois: {len(roiset.primary)} primary ROIs, sites {all_sites}")


# ----------------------------------------------------------------------------- hierarchy


def _tree_text(d: Mapping[str, Mapping]) -> str:
    """Render ``{root: {child: {...}}}`` like asciitree's LeftAligned with light box style."""
    (root, children), = d.items()
    lines = [root]

    def walk(node: Mapping, prefix: str) -> None:
        items = list(node.items())
        for i, (k, v) in enumerate(items):
            last = i == len(items) - 1
            lines.append(f"{prefix} {'└' if last else '├'}── {k}")
            walk(v, prefix + ("    " if last else " │  "))

    walk(children, "")
    return "\n".join(lines)


def fetch_roi_hierarchy(include_subprimary: bool = True, mark_primary: bool = True,
                        format: str = "dict", *, client: Any = None):  # noqa: A002 - neuprint's name
    """The ROI hierarchy as neuprint-python returns it: dict, text tree or networkx graph.

    Parameters
    ----------
    include_subprimary
        Include ROIs nested below primary ROIs (else stop at primary ROIs).
    mark_primary
        Append ``*`` to primary ROI names.
    format
        ``"dict"`` (``{dataset: {roi: {...}}}``), ``"text"`` (a printable
        tree) or ``"nx"`` (``networkx.DiGraph`` rooted at the dataset name).
    client
        A :class:`~connectome_dask.Connectome` (default: the default
        connectome) or a :class:`RoiSet`.

    Examples
    --------
    >>> import trimesh
    >>> rs = RoiSet.from_meshes({"A": trimesh.creation.box(), "B": trimesh.creation.icosphere(radius=0.3)},
    ...                         hierarchy={"G": {"A": {}, "B": {}}}, primary=["A"], name="demo")
    >>> print(fetch_roi_hierarchy(format="text", client=rs))
    demo
     └── G
         ├── A*
         └── B
    """
    if format not in ("dict", "text", "nx"):
        raise ValueError(f"format must be 'dict', 'text' or 'nx', got {format!r}")
    if client is None:
        client = default_connectome()
    if isinstance(client, RoiSet):
        names, primary, hier, dataset = client.names, client.primary, client.hierarchy, client.name
    elif isinstance(client, Connectome):
        info = client.roi_info
        if not info:
            raise RoiError(f"{client.path}: the store has no ROI set; run assign_rois first")
        names, primary, hier = info["names"], info.get("primary", []), info.get("hierarchy", {})
        dataset = str(client.meta.get("name") or client.path.name)
    else:
        raise TypeError(f"client must be a Connectome or RoiSet, got {type(client).__name__}")
    prim = set(primary)
    seen = {n for n, _ in _hierarchy_names(hier, "hierarchy")}
    top = dict(hier)
    for n in names:
        if n not in seen:
            top[n] = {}

    def insert(tree: Mapping, out: dict) -> None:
        for k in sorted(tree):
            is_p = k in prim
            label = f"{k}*" if (mark_primary and is_p) else k
            out[label] = {}
            if is_p and not include_subprimary:
                continue
            insert(tree[k] or {}, out[label])

    d: dict = {dataset: {}}
    insert(top, d[dataset])
    if format == "dict":
        return d
    if format == "text":
        return _tree_text(d)
    import networkx as nx

    g = nx.DiGraph()
    g.add_node(dataset)

    def add(parent: str, node: Mapping) -> None:
        for k, v in node.items():
            g.add_edge(parent, k)
            add(k, v)

    add(dataset, d[dataset])
    return g


