"""Numba kernels for exact mesh containment on a voxel label grid.

All coordinates here are in a *shifted frame* (the grid origin subtracted), in
float64. See :mod:`connectome_dask.rois` for the public API and the design.

Definitions used throughout
---------------------------
* A mesh is a triangle chain. Open meshes are closed by a *fan cap* per hole
  component (triangles from each boundary edge to the component's apex), so
  the combined chain is closed and its winding number ``w`` is an integer
  everywhere off the surface. The generalized winding number of the original
  mesh is ``gwn = w - gwn(fan)``; ``gwn(fan)`` is computed exactly (solid-angle
  sum) for points near the hole and is provably ``< 0.5`` in magnitude
  elsewhere (see ``rois._FAN_RADIUS``).
* Consistent edge predicates: every edge is evaluated with the same canonical
  endpoint order (lower vertex index first) by both triangles sharing it and an
  exact zero is resolved as "positive" for the canonical direction. A ray or
  segment through a shared edge is therefore counted exactly once, which is
  what makes the crossing counts exact up to the rounding of points that lie
  within ~1e-9 of a surface.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "tri_cells",
    "column_crossings",
    "sweep",
    "query",
    "scratch",
    "block_table",
    "pack_sub",
    "gwn_points",
    "sub_labels",
]


# ----------------------------------------------------------------------------- triangle / box


@njit(cache=True, inline="always")
def _axis_test(a0, a1, a2, v0, v1, v2, h0, h1, h2):
    # Separating axis a = (a0, a1, a2): project triangle and box (half sizes h)
    p0 = a0 * v0[0] + a1 * v0[1] + a2 * v0[2]
    p1 = a0 * v1[0] + a1 * v1[1] + a2 * v1[2]
    p2 = a0 * v2[0] + a1 * v2[1] + a2 * v2[2]
    mn = min(p0, p1, p2)
    mx = max(p0, p1, p2)
    r = h0 * abs(a0) + h1 * abs(a1) + h2 * abs(a2)
    return mn > r or mx < -r


@njit(cache=True)
def _tri_box(c, hs, a, b, d):
    """Akenine-Moller separating-axis triangle/box overlap (box centre c, half size hs)."""
    v0 = a - c
    v1 = b - c
    v2 = d - c
    for k in range(3):
        if min(v0[k], v1[k], v2[k]) > hs or max(v0[k], v1[k], v2[k]) < -hs:
            return False
    e0 = v1 - v0
    e1 = v2 - v1
    e2 = v0 - v2
    n = np.cross(e0, e2)
    if abs(n[0] * v0[0] + n[1] * v0[1] + n[2] * v0[2]) > hs * (abs(n[0]) + abs(n[1]) + abs(n[2])):
        return False
    for e in (e0, e1, e2):
        # axes: unit vector x edge
        if _axis_test(0.0, -e[2], e[1], v0, v1, v2, hs, hs, hs):
            return False
        if _axis_test(e[2], 0.0, -e[0], v0, v1, v2, hs, hs, hs):
            return False
        if _axis_test(-e[1], e[0], 0.0, v0, v1, v2, hs, hs, hs):
            return False
    return True


@njit(cache=True)
def _tri_cells_impl(V, T, h, shape, fill, out_cell, out_tri):
    ny, nz = shape[1], shape[2]
    # box slightly enlarged (relative 1e-6 of a voxel): listing a triangle in
    # an extra cell costs a test, missing one would give a wrong label
    hs = 0.5 * h * (1.0 + 1e-6) + 1e-9
    n = 0
    c = np.empty(3)
    for t in range(T.shape[0]):
        a = V[T[t, 0]]
        b = V[T[t, 1]]
        d = V[T[t, 2]]
        lo = np.empty(3, np.int64)
        hi = np.empty(3, np.int64)
        for k in range(3):
            lo[k] = max(0, int(math.floor((min(a[k], b[k], d[k]) - hs) / h - 1e-9)))
            hi[k] = min(shape[k] - 1, int(math.floor((max(a[k], b[k], d[k]) + hs) / h + 1e-9)))
        for i in range(lo[0], hi[0] + 1):
            c[0] = (i + 0.5) * h
            for j in range(lo[1], hi[1] + 1):
                c[1] = (j + 0.5) * h
                for k in range(lo[2], hi[2] + 1):
                    c[2] = (k + 0.5) * h
                    if _tri_box(c, hs, a, b, d):
                        if fill:
                            out_cell[n] = (i * ny + j) * nz + k
                            out_tri[n] = t
                        n += 1
    return n


def tri_cells(V: np.ndarray, T: np.ndarray, h: float, shape) -> tuple[np.ndarray, np.ndarray]:
    """All (cell, triangle) pairs whose (slightly enlarged) cell box meets the triangle.

    Parameters
    ----------
    V
        (nv, 3) float64 vertices in the shifted frame (grid origin subtracted).
    T
        (nt, 3) vertex indices of the triangles.
    h
        Voxel (cell) edge length.
    shape
        Cells per axis, ``(nx, ny, nz)``.

    Returns
    -------
    cells : numpy.ndarray
        int64 linear cell indices ``(i * ny + j) * nz + k``.
    tris : numpy.ndarray
        int32 triangle index (row of ``T``) of each pair.

    Examples
    --------
    >>> V = np.array([[0.1, 0.1, 0.1], [0.9, 0.1, 0.1], [0.1, 0.9, 0.1]])
    >>> cells, tris = tri_cells(V, np.array([[0, 1, 2]]), 1.0, np.array([2, 2, 2]))
    >>> cells.tolist(), tris.tolist()
    ([0], [0])
    """
    shape = np.asarray(shape, dtype=np.int64)
    dummy_c = np.zeros(0, np.int64)
    dummy_t = np.zeros(0, np.int32)
    n = _tri_cells_impl(V, T, float(h), shape, False, dummy_c, dummy_t)
    cells = np.empty(n, np.int64)
    tris = np.empty(n, np.int32)
    _tri_cells_impl(V, T, float(h), shape, True, cells, tris)
    return cells, tris


# ----------------------------------------------------------------------------- column rays


@njit(cache=True, inline="always")
def _edge2(V, u, v, px, py):
    """2-D edge function of canonical edge (u < v), exact zero treated as positive."""
    if u > v:
        s = -1.0
        u, v = v, u
    else:
        s = 1.0
    ax = V[u, 0]
    ay = V[u, 1]
    val = (V[v, 0] - ax) * (py - ay) - (V[v, 1] - ay) * (px - ax)
    if val == 0.0:
        val = 1.0
    return s * val


@njit(cache=True)
def _columns_impl(V, T, tri_mesh, h, shape, fill, o_col, o_z, o_mesh, o_sgn):
    ny = shape[1]
    n = 0
    for t in range(T.shape[0]):
        ia, ib, ic = T[t, 0], T[t, 1], T[t, 2]
        xmin = min(V[ia, 0], V[ib, 0], V[ic, 0])
        xmax = max(V[ia, 0], V[ib, 0], V[ic, 0])
        ymin = min(V[ia, 1], V[ib, 1], V[ic, 1])
        ymax = max(V[ia, 1], V[ib, 1], V[ic, 1])
        i0 = max(0, int(math.ceil(xmin / h - 0.5)) - 1)
        i1 = min(shape[0] - 1, int(math.floor(xmax / h - 0.5)) + 1)
        j0 = max(0, int(math.ceil(ymin / h - 0.5)) - 1)
        j1 = min(shape[1] - 1, int(math.floor(ymax / h - 0.5)) + 1)
        for i in range(i0, i1 + 1):
            px = (i + 0.5) * h
            for j in range(j0, j1 + 1):
                py = (j + 0.5) * h
                e0 = _edge2(V, ia, ib, px, py)
                e1 = _edge2(V, ib, ic, px, py)
                e2 = _edge2(V, ic, ia, px, py)
                if e0 > 0 and e1 > 0 and e2 > 0:
                    sg = -1  # projected ccw: normal up, ray leaves the solid
                elif e0 < 0 and e1 < 0 and e2 < 0:
                    sg = 1
                else:
                    continue
                if fill:
                    # barycentric interpolation keeps z inside the triangle's z range
                    tot = e0 + e1 + e2
                    z = (e1 * V[ia, 2] + e2 * V[ib, 2] + e0 * V[ic, 2]) / tot
                    o_col[n] = i * ny + j
                    o_z[n] = z
                    o_mesh[n] = tri_mesh[t]
                    o_sgn[n] = sg
                n += 1
    return n


def column_crossings(V, T, tri_mesh, h, shape):
    """Signed crossings of the vertical rays through all column centres, sorted by (column, z).

    Parameters
    ----------
    V
        (nv, 3) float64 vertices in the shifted frame.
    T
        (nt, 3) vertex indices of the triangles.
    tri_mesh
        (nt,) int32 mesh (local index) of each triangle.
    h
        Voxel (cell) edge length.
    shape
        Cells per axis, ``(nx, ny, nz)``.

    Returns
    -------
    col : numpy.ndarray
        int64 column index ``i * ny + j`` of each crossing.
    z : numpy.ndarray
        float64 height of the crossing.
    mesh : numpy.ndarray
        int32 mesh of the crossed triangle.
    sgn : numpy.ndarray
        int8 sign: ``-1`` where the upward ray leaves the solid, ``+1`` where it enters.

    Examples
    --------
    >>> V = np.array([[0.1, 0.1, 0.3], [0.9, 0.1, 0.3], [0.1, 0.9, 0.3]])
    >>> col, z, mesh, sgn = column_crossings(V, np.array([[0, 1, 2]]), np.array([0], np.int32), 1.0, np.array([1, 1, 1]))
    >>> col.tolist(), z.tolist(), sgn.tolist()
    ([0], [0.3], [-1])
    """
    shape = np.asarray(shape, dtype=np.int64)
    e64, ef, e32, e8 = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.int8)
    n = _columns_impl(V, T, tri_mesh, float(h), shape, False, e64, ef, e32, e8)
    col, z, mesh, sgn = np.empty(n, np.int64), np.empty(n), np.empty(n, np.int32), np.empty(n, np.int8)
    _columns_impl(V, T, tri_mesh, float(h), shape, True, col, z, mesh, sgn)
    order = np.lexsort((z, col))
    return col[order], z[order], mesh[order], sgn[order]


# ----------------------------------------------------------------------------- sweep


@njit(cache=True)
def _label_of(active, n_active, w, rank, code):
    best = -1
    best_rank = 1 << 30
    for q in range(n_active):
        m = active[q]
        if w[m] >= 1 and rank[m] < best_rank:
            best_rank = rank[m]
            best = m
    return -1 if best < 0 else code[best]


@njit(cache=True, inline="always")
def _advance(z, p, pend, cz, cmesh, csgn, w, pos, active, n_active):
    """Apply a column's crossings below height ``z``: winding numbers and active meshes.

    Returns the new crossing pointer, active count, and whether anything changed.
    """
    start = p
    while p < pend and cz[p] < z:
        m = cmesh[p]
        if pos[m] < 0:
            pos[m] = n_active
            active[n_active] = m
            n_active += 1
        w[m] += csgn[p]
        p += 1
    return p, n_active, p > start


@njit(cache=True)
def _sweep_impl(shape, h, col_ptr, cz, cmesh, csgn, grid, n_mesh, rank, code, fill,
                refs, ref_label, wptr, wmesh, wval):
    nx, ny, nz = shape[0], shape[1], shape[2]
    w = np.zeros(n_mesh, np.int64)
    active = np.empty(n_mesh, np.int64)
    pos = np.full(n_mesh, -1, np.int64)
    nw = 0
    for i in range(nx):
        for j in range(ny):
            col = i * ny + j
            p = col_ptr[col]
            pend = col_ptr[col + 1]
            n_active = 0
            label = -1
            base = col * nz
            for k in range(nz):
                z0 = k * h
                z1 = (k + 1) * h
                e = grid[base + k]
                if e >= 0:
                    # reference point: middle of the widest crossing-free gap in this cell
                    best_lo = z0
                    best_len = -1.0
                    prev = z0
                    q = p
                    while q < pend and cz[q] < z1:
                        if cz[q] > prev:
                            if cz[q] - prev > best_len:
                                best_len = cz[q] - prev
                                best_lo = prev
                            prev = cz[q]
                        q += 1
                    if z1 - prev > best_len:
                        best_len = z1 - prev
                        best_lo = prev
                    zr = best_lo + 0.5 * best_len
                    # advance to the reference point
                    p, n_active, _ = _advance(zr, p, pend, cz, cmesh, csgn, w, pos, active, n_active)
                    label = _label_of(active, n_active, w, rank, code)
                    if fill:
                        refs[e, 0] = (i + 0.5) * h
                        refs[e, 1] = (j + 0.5) * h
                        refs[e, 2] = zr
                        ref_label[e] = label
                        wptr[e] = nw
                    for q in range(n_active):
                        m = active[q]
                        if w[m] != 0:
                            if fill:
                                wmesh[nw] = m
                                wval[nw] = w[m]
                            nw += 1
                    continue
                zc = (k + 0.5) * h
                p, n_active, changed = _advance(zc, p, pend, cz, cmesh, csgn, w, pos, active, n_active)
                if changed:
                    label = _label_of(active, n_active, w, rank, code)
                if fill:
                    grid[base + k] = -(label + 2)
            for q in range(n_active):
                m = active[q]
                w[m] = 0
                pos[m] = -1
    if fill:
        wptr[wptr.shape[0] - 1] = nw
    return nw


def sweep(shape, h, col, cz, cmesh, csgn, grid, n_mesh, rank, code):
    """Fill uniform cells with labels and compute boundary-cell reference points.

    ``grid`` holds the boundary-cell index (>= 0) for boundary cells and -1
    elsewhere on input; uniform cells are set to ``-(label + 2)`` in place.
    Returns ``refs (nb, 3), ref_label (nb,), wptr (nb + 1,), wmesh, wval``:
    the winding number of every mesh that is non-zero at each reference point.

    Parameters
    ----------
    shape
        Cells per axis, ``(nx, ny, nz)``.
    h
        Voxel (cell) edge length.
    col, cz, cmesh, csgn
        The column crossings of :func:`column_crossings` (column, height,
        mesh, sign), sorted by (column, z).
    grid
        (nx * ny * nz,) int32 cell values, updated in place (see above).
    n_mesh
        Number of meshes.
    rank
        (n_mesh,) int64 tie-rule rank of each mesh (the lowest rank wins).
    code
        (n_mesh,) int64 label code of each mesh.

    Returns
    -------
    refs : numpy.ndarray
        (nb, 3) float64 reference point of each boundary cell (shifted frame).
    ref_label : numpy.ndarray
        (nb,) int32 label at each reference point (-1 = none).
    wptr : numpy.ndarray
        (nb + 1,) int64 pointers into ``wmesh`` / ``wval`` per boundary cell.
    wmesh, wval : numpy.ndarray
        int32 mesh and its non-zero winding number at the reference point.
    """
    shape = np.asarray(shape, dtype=np.int64)
    ncols = int(shape[0] * shape[1])
    col_ptr = np.searchsorted(col, np.arange(ncols + 1)).astype(np.int64)
    nb = int(grid.max()) + 1 if grid.size else 0
    nb = max(nb, 0)
    refs = np.zeros((nb, 3))
    ref_label = np.full(nb, -1, np.int32)
    wptr = np.zeros(nb + 1, np.int64)
    e32 = np.zeros(0, np.int32)
    nw = _sweep_impl(shape, float(h), col_ptr, cz, cmesh, csgn, grid, n_mesh, rank, code, False,
                     refs, ref_label, wptr, e32, e32)
    wmesh = np.empty(nw, np.int32)
    wval = np.empty(nw, np.int32)
    _sweep_impl(shape, float(h), col_ptr, cz, cmesh, csgn, grid, n_mesh, rank, code, True,
                refs, ref_label, wptr, wmesh, wval)
    return refs, ref_label, wptr, wmesh, wval


# ----------------------------------------------------------------------------- solid angles


@njit(cache=True, inline="always")
def _solid_angle(px, py, pz, a, b, c):
    """Signed solid angle of triangle (a, b, c) seen from p (Van Oosterom & Strackee 1983)."""
    ax, ay, az = a[0] - px, a[1] - py, a[2] - pz
    bx, by, bz = b[0] - px, b[1] - py, b[2] - pz
    cx, cy, cz = c[0] - px, c[1] - py, c[2] - pz
    la = math.sqrt(ax * ax + ay * ay + az * az)
    lb = math.sqrt(bx * bx + by * by + bz * bz)
    lc = math.sqrt(cx * cx + cy * cy + cz * cz)
    det = ax * (by * cz - bz * cy) - ay * (bx * cz - bz * cx) + az * (bx * cy - by * cx)
    den = la * lb * lc + (ax * bx + ay * by + az * bz) * lc + (ax * cx + ay * cy + az * cz) * lb \
        + (bx * cx + by * cy + bz * cz) * la
    return 2.0 * math.atan2(det, den)


@njit(cache=True, nogil=True)
def gwn_points(P, V, T):
    """Generalized winding number of every point of ``P`` w.r.t. triangles ``V[T]`` (brute force).

    Parameters
    ----------
    P
        (N, 3) float query points.
    V
        (nv, 3) float vertices.
    T
        (nt, 3) vertex indices of the triangles.

    Returns
    -------
    numpy.ndarray
        (N,) float64 winding numbers (1 inside a closed outward mesh, 0 outside).

    Examples
    --------
    >>> import trimesh
    >>> m = trimesh.creation.box()
    >>> gwn_points(np.array([[0.0, 0, 0], [2.0, 0, 0]]), m.vertices, m.faces).round(6).tolist()
    [1.0, 0.0]
    """
    out = np.zeros(P.shape[0])
    for i in range(P.shape[0]):
        s = 0.0
        for t in range(T.shape[0]):
            s += _solid_angle(P[i, 0], P[i, 1], P[i, 2], V[T[t, 0]], V[T[t, 1]], V[T[t, 2]])
        out[i] = s / (4.0 * math.pi)
    return out


# ----------------------------------------------------------------------------- query

# Triangle record layout (float64, one row per triangle, rows in Morton order of
# their centroids so that the triangles of one cell share cache lines):
#   0..3   plane (n, d): side(p) = n.p - d
#   4..21  three edges, Pluecker (direction, moment), already multiplied by the
#          edge's sign in this triangle (negation is exact, so both triangles
#          sharing an edge see exactly opposite values)
#   22..24 the three edge signs (tie-break for an exact zero)
#   25     mesh (local index)
TREC = 26


@njit(cache=True, nogil=True, inline="always")
def _label_point(px, py, pz, e, refs, cptr, wmv, tidx, trec, hcomp, comp_mesh, fptr, fanV,
                 rank, code, w, cfan, touched, is_t):
    nt = 0
    for q in range(cptr[e, 1], cptr[e + 1, 1]):
        m = wmv[q, 0]
        w[m] = wmv[q, 1]
        is_t[m] = True
        touched[nt] = m
        nt += 1
    rx = refs[e, 0]
    ry = refs[e, 1]
    rz = refs[e, 2]
    # Pluecker coordinates of the segment ref -> p
    dx = px - rx
    dy = py - ry
    dz = pz - rz
    mx = ry * pz - rz * py
    my = rz * px - rx * pz
    mz = rx * py - ry * px
    for q in range(cptr[e, 0], cptr[e + 1, 0]):
        t = tidx[q]
        sp = trec[t, 0] * px + trec[t, 1] * py + trec[t, 2] * pz - trec[t, 3]
        sr = trec[t, 0] * rx + trec[t, 1] * ry + trec[t, 2] * rz - trec[t, 3]
        if (sp >= 0.0) == (sr >= 0.0):
            continue
        pos = 0
        for k in range(3):
            o = 4 + 6 * k
            v = (dx * trec[t, o + 3] + dy * trec[t, o + 4] + dz * trec[t, o + 5]
                 + trec[t, o] * mx + trec[t, o + 1] * my + trec[t, o + 2] * mz)
            if v == 0.0:
                v = trec[t, 22 + k]
            if v > 0.0:
                pos += 1
        if pos == 3 or pos == 0:
            m = int(trec[t, 25])
            if not is_t[m]:
                is_t[m] = True
                touched[nt] = m
                nt += 1
            if sr < 0.0:
                w[m] -= 1
            else:
                w[m] += 1
    for q in range(cptr[e, 2], cptr[e + 1, 2]):
        c = hcomp[q]
        m = comp_mesh[c]
        if not is_t[m]:
            is_t[m] = True
            touched[nt] = m
            nt += 1
        s = 0.0
        for f in range(fptr[c], fptr[c + 1]):
            s += _solid_angle(px, py, pz, fanV[f, 0], fanV[f, 1], fanV[f, 2])
        cfan[m] += s / (4.0 * math.pi)
    best = -1
    best_rank = 1 << 30
    for q in range(nt):
        m = touched[q]
        if w[m] - cfan[m] >= 0.5 and rank[m] < best_rank:
            best_rank = rank[m]
            best = m
        w[m] = 0
        cfan[m] = 0.0
        is_t[m] = False
    return -1 if best < 0 else code[best]


SUB_SHIFT = 3  # boundary cells are split into 8 x 8 x 8 sub-cells
SUB_N = 1 << SUB_SHIFT
SUB_NS = SUB_N ** 3
SUB_MIXED = -2
_SUB_UNSET = -3


@njit(cache=True, parallel=True)
def _sub_labels_impl(h, s1, s2, bcells, Vl, T, refs, cptr, wmv, tidx, trec, hcomp, comp_mesh,
                     fptr, fanV, rank, code, out):
    nb = bcells.shape[0]
    n_mesh = rank.shape[0]
    hsub = h / SUB_N
    # enlarged like the cell boxes: listing a triangle in an extra sub-cell
    # costs an exact test later, missing one would give a wrong label
    hs = 0.5 * hsub * (1.0 + 1e-6) + 1e-9
    step = 256
    for blk in prange((nb + step - 1) // step):
        w = np.zeros(n_mesh, np.int64)
        cfan = np.zeros(n_mesh)
        touched = np.empty(n_mesh, np.int64)
        is_t = np.zeros(n_mesh, np.bool_)
        c = np.empty(3)
        lab = np.empty(SUB_NS, np.int16)
        stack = np.empty(SUB_NS, np.int64)
        lo = np.empty(3, np.int64)
        hi = np.empty(3, np.int64)
        for e in range(blk * step, min(nb, (blk + 1) * step)):
            base = e * SUB_NS
            if cptr[e + 1, 2] > cptr[e, 2]:
                # near a mesh hole the winding number varies continuously
                for q in range(SUB_NS):
                    out[base + q] = SUB_MIXED
                continue
            lin = bcells[e]
            x0 = (lin // (s1 * s2)) * h
            y0 = ((lin // s2) % s1) * h
            z0 = (lin % s2) * h
            for q in range(SUB_NS):
                lab[q] = _SUB_UNSET
            # 1. sub-cells cut by a triangle: only those in the triangle's box
            #    (one sub-cell of slack), a cheap lenient plane test, then the
            #    exact separating-axis test decides
            for qq in range(cptr[e, 0], cptr[e + 1, 0]):
                t = tidx[qq]
                va = Vl[T[t, 0]]
                vb = Vl[T[t, 1]]
                vd = Vl[T[t, 2]]
                org = (x0, y0, z0)
                for k in range(3):
                    mn = min(va[k], vb[k], vd[k]) - org[k]
                    mx = max(va[k], vb[k], vd[k]) - org[k]
                    lo[k] = max(0, int(math.floor(mn / hsub)) - 1)
                    hi[k] = min(SUB_N - 1, int(math.floor(mx / hsub)) + 1)
                n0 = (vb[1] - va[1]) * (vd[2] - va[2]) - (vb[2] - va[2]) * (vd[1] - va[1])
                n1 = (vb[2] - va[2]) * (vd[0] - va[0]) - (vb[0] - va[0]) * (vd[2] - va[2])
                n2 = (vb[0] - va[0]) * (vd[1] - va[1]) - (vb[1] - va[1]) * (vd[0] - va[0])
                lim = hs * (abs(n0) + abs(n1) + abs(n2)) * (1.0 + 1e-6)
                for sa in range(lo[0], hi[0] + 1):
                    c[0] = x0 + (sa + 0.5) * hsub
                    for sb in range(lo[1], hi[1] + 1):
                        c[1] = y0 + (sb + 0.5) * hsub
                        for sc in range(lo[2], hi[2] + 1):
                            q = (sa * SUB_N + sb) * SUB_N + sc
                            if lab[q] == SUB_MIXED:
                                continue
                            c[2] = z0 + (sc + 0.5) * hsub
                            if abs(n0 * (c[0] - va[0]) + n1 * (c[1] - va[1]) + n2 * (c[2] - va[2])) > lim:
                                continue
                            if _tri_box(c, hs, va, vb, vd):
                                lab[q] = SUB_MIXED
            # 2. uniform sub-cells: one exact label per face-connected group.
            #    Two face-adjacent uncut sub-cells form a box no triangle
            #    touches, so the winding numbers (and the label) are equal.
            for q0 in range(SUB_NS):
                if lab[q0] != _SUB_UNSET:
                    continue
                c[0] = x0 + (q0 // (SUB_N * SUB_N) + 0.5) * hsub
                c[1] = y0 + ((q0 // SUB_N) % SUB_N + 0.5) * hsub
                c[2] = z0 + (q0 % SUB_N + 0.5) * hsub
                L = _label_point(c[0], c[1], c[2], e, refs, cptr, wmv, tidx, trec, hcomp,
                                 comp_mesh, fptr, fanV, rank, code, w, cfan, touched, is_t)
                lab[q0] = L
                stack[0] = q0
                top = 1
                while top > 0:
                    top -= 1
                    r = stack[top]
                    ra = r // (SUB_N * SUB_N)
                    rb = (r // SUB_N) % SUB_N
                    rc = r % SUB_N
                    for d in range(6):
                        na, nb_, nc = ra, rb, rc
                        if d == 0:
                            na -= 1
                        elif d == 1:
                            na += 1
                        elif d == 2:
                            nb_ -= 1
                        elif d == 3:
                            nb_ += 1
                        elif d == 4:
                            nc -= 1
                        else:
                            nc += 1
                        if na < 0 or nb_ < 0 or nc < 0 or na >= SUB_N or nb_ >= SUB_N or nc >= SUB_N:
                            continue
                        nq = (na * SUB_N + nb_) * SUB_N + nc
                        if lab[nq] == _SUB_UNSET:
                            lab[nq] = L
                            stack[top] = nq
                            top += 1
            for q in range(SUB_NS):
                out[base + q] = lab[q]


def sub_labels(h, shape, bcells, Vl, T, refs, cptr, wmv, tidx, trec, hcomp, comp_mesh, fptr,
               fanV, rank, code) -> np.ndarray:
    """Exact labels of the 8^3 sub-cells of every boundary cell (int16, ``SUB_MIXED`` if cut).

    A sub-cell that none of its cell's triangles touches lies entirely on one
    side of every surface, so the winding numbers are constant in it and the
    exact label of its centre is the label of every point in it. Cells with a
    hole cap nearby are left mixed. Queries in uniform sub-cells then need one
    table read instead of crossing tests against the cell's triangles.

    Parameters
    ----------
    h
        Voxel (cell) edge length.
    shape
        Cells per axis, ``(nx, ny, nz)``.
    bcells
        (nb,) linear index of each boundary cell (boundary cell ``e`` is cell ``bcells[e]``).
    Vl
        (nv, 3) float64 vertices in the shifted frame.
    T
        (nt, 3) vertex indices of the triangles (rows in ``trec`` order).
    refs, cptr, wmv, tidx, trec, hcomp, comp_mesh, fptr, fanV
        The boundary-cell tables, as for :func:`query`.
    rank, code
        (n_mesh,) int64 tie-rule rank and label code of each mesh.

    Returns
    -------
    numpy.ndarray
        (nb * SUB_NS,) int16 labels, ``SUB_NS`` sub-cells per boundary cell in
        (x, y, z) order.
    """
    out = np.empty(len(bcells) * SUB_NS, np.int16)
    _sub_labels_impl(float(h), int(shape[1]), int(shape[2]), np.asarray(bcells, np.int64), Vl, T,
                     refs, cptr, wmv, tidx, trec, hcomp, comp_mesh, fptr, fanV, rank, code, out)
    return out


SORT_MIN = 4096  # below this many exact points, skip the locality sort
BLOCK_SHIFT = 3  # blocks of 8 x 8 x 8 cells for the in-cache block table
RADIX_BITS = 11  # LSD radix sort digit: 2048 buckets stay in L1


def block_table(grid: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """Block table and compact block-major cell grid for queries.

    The grid is cut into blocks of 8^3 cells. ``blk[b] < 0`` means every cell
    of block ``b`` is uniform with label ``-blk[b] - 2`` (outside the grid
    counts as label -1); otherwise ``blk[b]`` numbers a mixed block whose 512
    cell values (as in ``grid``) are ``bgrid[blk[b] * 512 : (blk[b] + 1) * 512]``
    in (x, y, z) order. The block table (tens of kB) stays in cache, and only
    mixed blocks (about a quarter of the real brains' grids) are kept, each
    in 2 kB of contiguous memory: a quarter of the grid's size and far fewer
    cache and TLB misses.

    Parameters
    ----------
    grid
        (nx * ny * nz,) int32 cell values after :func:`sweep` (boundary-cell
        index ``>= 0``, or ``-(label + 2)`` for a uniform cell).
    shape
        Cells per axis, ``(nx, ny, nz)``.

    Returns
    -------
    blk : numpy.ndarray
        int32 block table (see above).
    bgrid : numpy.ndarray
        int32 cell values of the mixed blocks, block-major.
    """
    sx, sy, sz = (int(v) for v in shape)
    b = 1 << BLOCK_SHIFT
    bx, by, bz = (sx >> BLOCK_SHIFT) + 1, (sy >> BLOCK_SHIFT) + 1, (sz >> BLOCK_SHIFT) + 1
    gg: np.ndarray = np.full((bx * b, by * b, bz * b), -1, dtype=np.int32)  # outside the grid: label -1
    gg[:sx, :sy, :sz] = grid.reshape(sx, sy, sz)
    gg = gg.reshape(bx, b, by, b, bz, b).transpose(0, 2, 4, 1, 3, 5).reshape(bx * by * bz, b ** 3)
    lo = gg.min(axis=1)
    hi = gg.max(axis=1)
    uniform = (lo == hi) & (hi < 0)
    mixed = np.flatnonzero(~uniform)
    blk = hi.astype(np.int32)  # uniform: the cell value -(label + 2) itself
    blk[mixed] = np.arange(len(mixed), dtype=np.int32)
    return blk, np.ascontiguousarray(gg[mixed]).reshape(-1)


SUB_WORDS = SUB_NS // 32  # int64 words of 2-bit codes per boundary cell


@njit(cache=True)
def pack_sub(sub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pack the int16 sub-cell labels of each boundary cell: 2-bit codes and a palette.

    ``codes[e]`` (``SUB_WORDS`` int64 words) holds a 2-bit code per sub-cell
    (sub-cell ``q`` in word ``q >> 5`` at bit ``2 * (q & 31)``): 0-2 index the
    cell's palette, 3 means cut (exact test). ``pal[e]`` holds three labels
    as ``label + 1`` in 16 bits each. A cell with more than three labels
    among its uniform sub-cells (where several neuropils meet) marks the
    extra ones as cut: the exact test gives the same label, only slower.
    136 bytes per boundary cell instead of 1 kB of int16 labels, so the
    random reads of a query mostly hit the cache.

    Parameters
    ----------
    sub
        (nb * SUB_NS,) int16 sub-cell labels from :func:`sub_labels`.

    Returns
    -------
    codes : numpy.ndarray
        (nb, SUB_WORDS) int64 packed 2-bit codes.
    pals : numpy.ndarray
        (nb,) int64 packed palettes.
    """
    nb = sub.shape[0] // SUB_NS
    codes = np.zeros((nb, SUB_WORDS), np.int64)
    pals = np.zeros(nb, np.int64)
    pal = np.empty(3, np.int64)
    for e in range(nb):
        npal = 0
        for q in range(SUB_NS):
            v = sub[e * SUB_NS + q]
            c = 3
            if v != SUB_MIXED:
                for i in range(npal):
                    if pal[i] == v:
                        c = i
                if c == 3 and npal < 3:
                    pal[npal] = v
                    c = npal
                    npal += 1
            codes[e, q >> 5] |= c << (2 * (q & 31))
        word = 0
        for i in range(npal):
            word |= (pal[i] + 1) << (16 * i)
        pals[e] = word
    return codes, pals


def scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Work arrays for :func:`query` on up to ``n`` points (44 bytes per point).

    Allocated once per thread and reused across calls: fresh pages of a large
    ``np.empty`` are faulted in on first write, which costs more than the
    streaming pass that writes them.

    Parameters
    ----------
    n
        Most points per :func:`query` call.

    Returns
    -------
    si, sb, sf : numpy.ndarray
        int32 (4, n), int16 (2, n) and float64 (n, 3) work arrays.
    """
    return np.empty((4, n), np.int32), np.empty((2, n), np.int16), np.empty((n, 3))


@njit(cache=True, nogil=True)
def query(P, origin, h, shape, exact, refs, ref_label, cptr, wmv, tidx, trec,
          hcomp, comp_mesh, fptr, fanV, rank, code, blk, bgrid, subc, spal, out, si, sb, sf):
    """Label every point of ``P`` (N, 3, any float dtype, *unshifted*) into ``out`` (int16).

    ``out[i]`` is the code of the best-ranked mesh whose generalized winding
    number at the point is >= 0.5, or -1. Points outside the grid or with a
    NaN coordinate get -1. ``si, sb, sf`` come from :func:`scratch` (at least
    ``N`` points); ``N`` must be below 2**31.

    Pass 1 streams over the points: those in a uniform 8^3-cell block get
    their label from the small block table ``blk`` (it stays in cache); the
    others keep their cell in the compact ``bgrid`` and their sub-cell (see
    :func:`block_table`, :func:`pack_sub`). Pass 2 reads their cells in input
    order (uniform cell: done). Pass 3 sorts the points in boundary cells by
    cell (LSD radix sort), pass 4 reads their sub-cell codes in that order
    (uniform sub-cell: done), and the few points left, in cut sub-cells and
    still in cell order, get their coordinates gathered contiguously and the
    exact crossing test; points of one cell reuse its triangles and
    reference point from cache.

    Parameters
    ----------
    P
        (N, 3) points, any float dtype, in the unshifted frame.
    origin
        (3,) grid origin (the shift of the frame).
    h
        Voxel (cell) edge length.
    shape
        Cells per axis, ``(nx, ny, nz)``.
    exact
        ``False``: voxel lookup only (points in boundary cells get the
        label of the cell's reference point, no sub-cells or crossing tests).
    refs
        (nb, 3) float64 reference point of each boundary cell (shifted frame).
    ref_label
        (nb,) label at each reference point.
    cptr
        (nb + 1, 3) int64 pointers per boundary cell into ``tidx`` (column 0),
        ``wmv`` (column 1) and ``hcomp`` (column 2).
    wmv
        (nw, 2) int64 ``(mesh, winding number)`` at the reference points.
    tidx
        Triangles (rows of ``trec``) meeting each boundary cell.
    trec
        (nt, TREC) float64 triangle records (plane, signed Pluecker edges,
        edge signs, mesh; see ``TREC``).
    hcomp
        Hole components (fan caps) near each boundary cell.
    comp_mesh
        int32 mesh of each hole component.
    fptr
        int64 pointers into ``fanV`` per hole component.
    fanV
        (nf, 3, 3) float64 fan-cap triangles (shifted frame).
    rank
        (n_mesh,) int64 tie-rule rank of each mesh (the lowest rank wins).
    code
        (n_mesh,) int64 label code of each mesh.
    blk, bgrid
        Block table and block-major cells from :func:`block_table`.
    subc, spal
        Packed sub-cell codes and palettes from :func:`pack_sub`.
    out
        (N,) int16 output labels, written in place.
    si, sb, sf
        Work arrays from :func:`scratch`.

    Raises
    ------
    ValueError
        The scratch arrays hold fewer than ``N`` points.
    """
    n_mesh = rank.shape[0]
    inv = 1.0 / h
    N = P.shape[0]
    o0, o1, o2 = origin[0], origin[1], origin[2]
    s0, s1, s2 = shape[0], shape[1], shape[2]
    by = (s1 >> BLOCK_SHIFT) + 1
    bz = (s2 >> BLOCK_SHIFT) + 1
    if si.shape[1] < N or sb.shape[1] < N or sf.shape[0] < N:
        raise ValueError("query: scratch arrays smaller than the number of points")
    cell = si[0]
    src = si[1]
    # pass 1: points in uniform blocks (or outside) are done; keep cell / sub-cell of the rest
    nr = 0
    bm = (1 << BLOCK_SHIFT) - 1
    for n in range(N):
        fx = (float(P[n, 0]) - o0) * inv
        fy = (float(P[n, 1]) - o1) * inv
        fz = (float(P[n, 2]) - o2) * inv
        # NaN fails every comparison and is labelled -1 too
        if not (fx >= 0.0 and fy >= 0.0 and fz >= 0.0 and fx < s0 and fy < s1 and fz < s2):
            out[n] = -1
            continue
        ix = int(fx)
        iy = int(fy)
        iz = int(fz)
        b = blk[((ix >> BLOCK_SHIFT) * by + (iy >> BLOCK_SHIFT)) * bz + (iz >> BLOCK_SHIFT)]
        # branch-free append (the slot is overwritten unless the block is
        # mixed): a mispredicted "uniform?" branch cost more than this whole
        # loop body (12 vs 7 ns per point on flywire78)
        out[n] = -b - 2
        cell[nr] = (((b << BLOCK_SHIFT) + (ix & bm)) << (2 * BLOCK_SHIFT)) + ((iy & bm) << BLOCK_SHIFT) + (iz & bm)
        sa = min(int((fx - ix) * SUB_N), SUB_N - 1)
        sc = min(int((fy - iy) * SUB_N), SUB_N - 1)
        sd = min(int((fz - iz) * SUB_N), SUB_N - 1)
        sb[0, nr] = (sa * SUB_N + sc) * SUB_N + sd
        src[nr] = n
        nr += b >= 0
    # pass 2: the cells, gathered in a loop of its own (one random read per
    # iteration, so the CPU keeps many cache misses in flight)
    for j in range(nr):
        cell[j] = bgrid[cell[j]]
    if not exact:
        for j in range(nr):
            e = cell[j]
            out[src[j]] = -e - 2 if e < 0 else ref_label[e]
        return
    # uniform cells are done; points in boundary cells are compacted in place
    # (slot m <= j is written after slot j has been read), branch-free as in pass 1
    ke = cell
    ks = src
    kq = sb[0]
    m = 0
    for j in range(nr):
        e = cell[j]
        n = src[j]
        out[n] = -e - 2
        ke[m] = e
        ks[m] = n
        kq[m] = kq[j]
        m += e >= 0
    # pass 3: LSD radix sort by boundary cell (11-bit digits: the 2048
    # counters stay in L1), so the sub-cell codes and, for the exact tests,
    # the triangles and reference points are read in order (flywire78: the
    # sort costs 4 ns per point and saves 7 on the sub-cell reads alone)
    if m >= SORT_MIN:
        te = si[2]
        ts = si[3]
        tq = sb[1]
        nbits = 1
        while (refs.shape[0] - 1) >> nbits > 0:
            nbits += 1
        shift = 0
        mask = (1 << RADIX_BITS) - 1
        while shift < nbits:
            cnt = np.zeros((1 << RADIX_BITS) + 1, np.int64)
            for j in range(m):
                cnt[((ke[j] >> shift) & mask) + 1] += 1
            for d in range(1 << RADIX_BITS):
                cnt[d + 1] += cnt[d]
            for j in range(m):
                d = (ke[j] >> shift) & mask
                q = cnt[d]
                cnt[d] = q + 1
                te[q] = ke[j]
                ts[q] = ks[j]
                tq[q] = kq[j]
            ke, te = te, ke
            ks, ts = ts, ks
            kq, tq = tq, kq
            shift += RADIX_BITS
    # pass 4: uniform sub-cells are done; the rest (cut sub-cells) is
    # compacted in place, still in cell order
    xe = ke
    xs = ks
    nb = 0
    for j in range(m):
        e = ke[j]
        n = ks[j]
        q = kq[j]
        c = (subc[e, q >> 5] >> (2 * (q & 31))) & 3
        out[n] = ((spal[e] >> (16 * c)) & 0xFFFF) - 1  # c == 3: -1, replaced by the exact test
        xe[nb] = e
        xs[nb] = n
        nb += c == 3
    if nb == 0:
        return
    # gather the coordinates (shifted frame, float64) contiguously, then test
    for q in range(nb):
        n = xs[q]
        sf[q, 0] = float(P[n, 0]) - o0
        sf[q, 1] = float(P[n, 1]) - o1
        sf[q, 2] = float(P[n, 2]) - o2
    w = np.zeros(n_mesh, np.int64)
    cfan = np.zeros(n_mesh)
    touched = np.empty(n_mesh, np.int64)
    is_t = np.zeros(n_mesh, np.bool_)
    for q in range(nb):
        out[xs[q]] = _label_point(sf[q, 0], sf[q, 1], sf[q, 2], xe[q], refs, cptr, wmv, tidx, trec,
                                  hcomp, comp_mesh, fptr, fanV, rank, code, w, cfan, touched, is_t)
