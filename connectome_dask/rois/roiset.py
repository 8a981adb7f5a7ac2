""":class:`RoiSet`: a named set of ROI meshes with primary ROIs and a hierarchy."""

from __future__ import annotations

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

from ..errors import RoiError
from ..store import Connectome, default_connectome, safe_name
from .extent import _warn_scale
from .grid import _ALGO_VERSION, _block_labels, _build_grid, _Grid
from .meshes import (
    _FAN_RADIUS,
    MESH_SUFFIXES,
    RoiRepairWarning,
    _as_arrays,
    _check_roi_name,
    _hierarchy_names,
    _load_mesh_file,
    _Mesh,
    _parse_scale,
)

__all__ = ["RoiSet"]

_TIE_RULE = "smallest volume wins, then position in names"


class RoiSet:
    """A set of named ROI meshes with primary ROIs and a hierarchy (neuPrint style).

    Build with :meth:`from_directory`, :meth:`from_meshes` or :meth:`from_store`.
    Meshes are validated and repaired on construction (see the module
    docstring); the exact containment structure is built lazily and cached.

    Tie rule: a point inside several primary ROIs gets the one with the
    **smallest volume**, then the one listed first in :attr:`names`.

    Parameters
    ----------
    meshes
        ROI name -> prepared (validated, repaired, scaled) mesh, in code
        order; the constructors above prepare them.
    hierarchy
        Nested dict ``{group: {roi: {}, ...}}``; leaves must be mesh names.
    primary
        Names of the primary ROIs (default: all).
    name
        Name of the ROI set (the root of :func:`fetch_roi_hierarchy`).
    scale
        The multiplier from mesh units to point units already applied to
        ``meshes`` (recorded, used in unit hints).
    voxel_size
        Grid voxel edge in point units (default: automatic, ~64 cells per triangle).
    where
        What to name in error and warning messages.

    Raises
    ------
    RoiError
        No meshes; ``hierarchy`` is not a mapping, names ROIs without a mesh
        or an unstorable name; ``primary`` is not a list of distinct mesh
        names; ``voxel_size`` is not a positive number.

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
        name
            Name of the ROI set (the root of :func:`fetch_roi_hierarchy`).

        Returns
        -------
        RoiSet

        Raises
        ------
        RoiError
            ``meshes`` is not a mapping, a name is not storable, a mesh is
            degenerate or cannot be repaired, or the hierarchy / primary names
            do not match the meshes.

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

        Parameters
        ----------
        path
            The mesh folder.
        scale
            Multiplier from mesh units to point units, or a unit name
            (``"um"``, ``"nm"``, ``"mm"``) converted to nm.
        voxel_size
            Grid voxel edge in point units (default: automatic).
        name
            Name of the ROI set (default: the folder name).

        Returns
        -------
        RoiSet

        Raises
        ------
        RoiError
            ``path`` is not a folder of mesh files, two files share a stem, a
            mesh or ``hierarchy.json`` cannot be read or is invalid.

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

        Parameters
        ----------
        conn
            The store (default: the default connectome).

        Returns
        -------
        RoiSet
            With the stored containment grid attached when it is still valid.

        Raises
        ------
        RoiError
            The store has no ROI set, or its ``rois.json`` or meshes are damaged.

        Examples
        --------
        >>> rs = RoiSet.from_store(conn)
        >>> rs.names == conn.roi_names, rs.primary == conn.roi_info["primary"]
        (True, True)
        """
        conn = conn if conn is not None else default_connectome()
        info = conn.roi_info
        root = conn.rois_path  # not None when info is (rois.json is read from there)
        if not info or root is None:
            raise RoiError(f"{conn.path}: the store has no ROI set; run assign_rois first")
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

        Parameters
        ----------
        names
            ROI names, in tie-rule order (default: the primary ROIs).

        Returns
        -------
        str
            32 hex digits; equal keys mean equal grids.

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

        Parameters
        ----------
        names
            ROI names (default: the primary ROIs).

        Returns
        -------
        _Grid
            Built once per set of names, then reused.

        Raises
        ------
        KeyError
            A name is not in the set.

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

    def assign(self, points: Any, *, exact: bool = True, n_threads: int | None = None) -> Any:
        """Code of the primary ROI containing each point (index into :attr:`names`, -1 = none).

        Parameters
        ----------
        points
            (N, 3) numpy array or dask array (row chunks; mapped block-wise,
            the grid is passed once as a delayed object).
        exact
            ``False`` gives the pure voxel lookup (neuPrint style): points in
            boundary voxels get the label of the voxel's reference point.

        n_threads
            Threads for a numpy input (default: ``os.cpu_count()``).

        Returns
        -------
        numpy.ndarray or dask.array.Array of int16

        Raises
        ------
        RoiError
            ``points`` is not a numeric (N, 3) array. (A :class:`RoiScaleWarning`
            when the points and the meshes do not overlap, or their extents
            differ by 4x or more: wrong units?)

        Examples
        --------
        >>> import trimesh
        >>> rs = RoiSet.from_meshes({"big": trimesh.creation.box((4, 4, 4)), "small": trimesh.creation.box()})
        >>> rs.assign(np.array([[0.0, 0, 0], [1.5, 0, 0]])).tolist()  # smallest volume wins
        [1, 0]
        """
        return self._run(points, None, exact, n_threads, "assign")

    def contains(self, points: Any, name: str, *, exact: bool = True,
                 n_threads: int | None = None) -> Any:
        """Boolean array: is each point inside ROI ``name`` (GWN >= 0.5)?

        Parameters
        ----------
        points
            (N, 3) numpy array or dask array.
        name
            One ROI of the set (primary or not).
        exact, n_threads
            As for :meth:`assign`.

        Returns
        -------
        numpy.ndarray or dask.array.Array of bool

        Raises
        ------
        KeyError
            No ROI is named ``name``.
        RoiError
            As for :meth:`assign`.

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

        Parameters
        ----------
        directory
            Folder to write (created when missing).
        grid
            The primary grid when already built (default: :meth:`grid`).
        grid_src
            A stored ``grid.zarr`` of the same key to copy instead of rewriting it.

        Raises
        ------
        OSError
            The folder cannot be written (or ``grid.zarr`` already exists
            when copying ``grid_src``).

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
