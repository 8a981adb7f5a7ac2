"""ROI meshes: loading, checks and repair (``_Mesh``), ROI and hierarchy names, scale parsing."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._fsutil import check_name
from ..errors import RoiError
from ..units import parse_units

__all__ = ["MESH_SUFFIXES", "RoiRepairWarning"]

MESH_SUFFIXES = (".ply", ".obj", ".stl")


_FAN_RADIUS = 2.0  # hole balls: |gwn(fan)| < 0.5 outside _FAN_RADIUS * hole radius


_MAX_DEPTH = 64  # nesting levels of a hierarchy


class RoiRepairWarning(UserWarning):
    """A mesh was repaired (flipped, re-wound, or closed over holes) before use."""


def _check_roi_name(name: Any, where: str) -> str:
    """The package's one name rule (:func:`~connectome_dask._fsutil.check_name`) for ROI names.

    Real names such as ``CRE(-ROB,-RUB)(R)`` or ``a'L(R)`` pass; a name with
    ``/``, ``\\``, NUL or a line break, and ``.`` / ``..``, is refused. ROI names
    are only stored inside rois.json, never used as file names (meshes are
    ``meshes/NNNN.ply``).
    """
    return check_name(name, f"{where}: ROI name", error=RoiError)


def _parse_scale(scale: float | str) -> float:
    """A mesh scale: a positive number, or a unit name of :mod:`connectome_dask.units` (-> nm)."""
    if isinstance(scale, str):
        return parse_units(scale, error=RoiError, what="mesh units")
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
