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

Layout
------
:mod:`.meshes` (mesh loading and repair, ROI and hierarchy names, scale
parsing), :mod:`.grid` (the containment grid), :mod:`.extent` (scale and
extent warnings), :mod:`.roiset` (:class:`RoiSet`), :mod:`.hierarchy`
(:func:`fetch_roi_hierarchy`) and :mod:`.assign` (:func:`assign_rois`). The
numba containment kernels are in :mod:`connectome_dask.kernels.containment`.
"""

from __future__ import annotations

from ..errors import RoiError
from .assign import _assign_block as _assign_block
from .assign import assign_rois
from .extent import RoiScaleWarning
from .grid import _build_grid as _build_grid
from .grid import _Grid as _Grid
from .hierarchy import fetch_roi_hierarchy
from .meshes import _FAN_RADIUS as _FAN_RADIUS
from .meshes import MESH_SUFFIXES, RoiRepairWarning
from .meshes import _check_roi_name as _check_roi_name
from .meshes import _Mesh as _Mesh
from .roiset import RoiSet

__all__ = [
    "RoiError",
    "RoiRepairWarning",
    "RoiScaleWarning",
    "RoiSet",
    "assign_rois",
    "fetch_roi_hierarchy",
    "MESH_SUFFIXES",
]
