"""The containment grid (``_Grid``): building it from meshes, storing it, labelling points."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .. import _containment as _ck
from ..errors import RoiError
from ..store import array_codecs
from .meshes import _FAN_RADIUS, _Mesh

if TYPE_CHECKING:
    import zarr

__all__: list[str] = []  # internal: the grid is reached through RoiSet.grid / assign_rois

_ALGO_VERSION = 4


class _Grid:
    """The voxel label grid over a set of meshes (see the module docstring).

    Holds only numpy arrays and small scalars; serialisable to Zarr.
    """

    ARRAYS = ("grid", "refs", "ref_label", "cptr", "wmv", "tidx", "trec", "hcomp", "comp_mesh",
              "fptr", "fanV", "rank", "code", "origin", "shape", "subc", "spal")
    # the ARRAYS, set by name in __init__ (see _build_grid for their meaning)
    grid: np.ndarray
    refs: np.ndarray
    ref_label: np.ndarray
    cptr: np.ndarray
    wmv: np.ndarray
    tidx: np.ndarray
    trec: np.ndarray
    hcomp: np.ndarray
    comp_mesh: np.ndarray
    fptr: np.ndarray
    fanV: np.ndarray
    rank: np.ndarray
    code: np.ndarray
    origin: np.ndarray
    shape: np.ndarray
    subc: np.ndarray
    spal: np.ndarray

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
        attrs: dict[str, Any] = dict(g.attrs)  # the JSON written by to_zarr
        if attrs.get("algo_version") != _ALGO_VERSION:
            raise RoiError(f"{path}: grid written by another algorithm version")
        arrays: dict[str, np.ndarray] = {}
        for k in cls.ARRAYS:
            arr = cast("zarr.Array", g[k])  # to_zarr writes only arrays into the group
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


def _block_labels(block: np.ndarray, grid: _Grid, exact: bool) -> np.ndarray:
    return grid.query(block, exact)
