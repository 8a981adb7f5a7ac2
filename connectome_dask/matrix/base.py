"""The shared base of the nested matrices: immutable sparse storage, dense and xarray views, Zarr, plots."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ConnectomeDaskError
from .axes import _Axis
from .common import _LEVELS, _check_dense
from .layout import _is_matrix_dir, _write_matrix
from .sources import _Pairs

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__: list[str] = []  # internal: _NestedBase is private


class _NestedBase:
    """Shared storage: a sparse (rows x cols) matrix and two ordered axes."""

    _data: sp.csr_matrix
    _src: _Axis
    _tgt: _Axis
    _attrs: dict
    #: Square matrices (one axis for rows and columns) draw diagonal block outlines.
    _square: bool = False

    def _init_parts(self, data: sp.spmatrix, src: _Axis, tgt: _Axis, attrs: Mapping[str, Any]) -> None:
        data = sp.csr_matrix(data, dtype=np.float64)
        data.sum_duplicates()
        data.eliminate_zeros()
        for a in (data.data, data.indices, data.indptr):
            a.setflags(write=False)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_src", src)
        object.__setattr__(self, "_tgt", tgt)
        object.__setattr__(self, "_attrs", json.loads(json.dumps(dict(attrs))))
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable; build a new one instead of setting {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    # -- raw access
    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the neuron-level matrix."""
        return self._data.shape

    @property
    def nnz(self) -> int:
        """Number of non-zero neuron-level entries."""
        return int(self._data.nnz)

    @property
    def attrs(self) -> Mapping[str, Any]:
        """Provenance (dataset, version, weight_mode, scopes, thresholds), read-only."""
        return MappingProxyType(self._attrs)

    def to_scipy(self) -> sp.csr_matrix:
        """The neuron-level matrix as a (read-only) ``scipy.sparse.csr_matrix`` in axis order."""
        return self._data

    # -- dense views
    @cached_property
    def _dense(self) -> np.ndarray:
        _check_dense(*self.shape, f"{type(self).__name__}.matrix", "Use .to_xarray() (sparse.COO) or .to_scipy()")
        a = self._data.toarray()
        a.setflags(write=False)
        return a

    @property
    def matrix(self) -> pd.DataFrame:
        """Neuron-level matrix as a read-only pandas DataFrame (rows pre, columns post).

        Raises :class:`DenseMatrixTooLarge` when the dense frame would exceed
        ``connectome_dask.max_dense_bytes``; use :meth:`to_xarray` then.
        """
        return pd.DataFrame(
            self._dense, index=pd.Index(list(self._src.ids)), columns=pd.Index(list(self._tgt.ids)), copy=False
        )

    @cached_property
    def _type_sum(self) -> np.ndarray:
        rs, cs = self._src.indicator(), self._tgt.indicator()
        _check_dense(rs.shape[1], cs.shape[1], "type-level matrix", "Select fewer types")
        a = np.asarray((rs.T @ self._data @ cs).toarray(), dtype=np.float64)
        a.setflags(write=False)
        return a

    @cached_property
    def _type_mean(self) -> np.ndarray:
        sizes = np.outer(self._src.type_sizes, self._tgt.type_sizes).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(sizes > 0, self._type_sum / np.where(sizes > 0, sizes, 1), 0.0)
        a.setflags(write=False)
        return a

    def _type_frame(self, a: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            a, index=pd.Index(list(self._src.boundaries)), columns=pd.Index(list(self._tgt.boundaries)), copy=False
        )

    @property
    def sum_type_matrix(self) -> pd.DataFrame:
        """Type x type matrix: sum of all neuron weights in each block (read-only, cached)."""
        return self._type_frame(self._type_sum)

    @property
    def mean_type_matrix(self) -> pd.DataFrame:
        """Type x type matrix: mean weight over every neuron pair of each block, zeros included."""
        return self._type_frame(self._type_mean)

    def _relative_sparse(self) -> sp.csr_matrix:
        rs = np.asarray(self._data.sum(axis=1)).ravel()
        rs = np.where(rs == 0, 1.0, rs)
        return sp.csr_matrix(sp.diags(1.0 / rs) @ self._data)

    def get_relative_weights(self, by_type: bool = False) -> pd.DataFrame:
        """Each row divided by its sum (rows summing to 0 stay 0).

        Parameters
        ----------
        by_type
            Normalise :attr:`sum_type_matrix` instead of the neuron-level matrix.

        Returns
        -------
        pandas.DataFrame
            For whole-brain neuron-level matrices use ``to_xarray(relative=True)``.

        Raises
        ------
        DenseMatrixTooLarge
            The dense neuron-level frame would exceed ``connectome_dask.max_dense_bytes``.
        """
        if by_type:
            a = self._type_sum
            rs = a.sum(axis=1, keepdims=True)
            return self._type_frame(a / np.where(rs == 0, 1.0, rs))
        _check_dense(*self.shape, "get_relative_weights()", "Use .to_xarray(relative=True) (sparse.COO)")
        return pd.DataFrame(
            self._relative_sparse().toarray(),
            index=pd.Index(list(self._src.ids)),
            columns=pd.Index(list(self._tgt.ids)),
        )

    # -- xarray
    def to_xarray(self, level: str = "neuron", relative: bool = False) -> xr.DataArray:
        """Labelled matrix as an ``xarray.DataArray`` with dims ``("pre", "post")``.

        Parameters
        ----------
        level
            ``"neuron"`` (data ``sparse.COO``; index coords ``pre``/``post`` =
            body IDs, plus ``bodyId_pre``, ``type_pre``, ``instance_pre`` and
            the same for ``post``, as :func:`connectome_dask.aggregate.adjacency`),
            ``"type_sum"`` or ``"type_mean"`` (dense numpy; index coords = type
            names, plus ``type_*`` and ``n_neurons_*``).
        relative
            Row-normalise first (as :meth:`get_relative_weights`).

        Returns
        -------
        xarray.DataArray
            Provenance in ``attrs`` (JSON-able).

        Raises
        ------
        ValueError
            Unknown ``level``.
        """
        import sparse
        import xarray as xr

        if level not in _LEVELS:
            raise ConnectomeDaskError(f"level must be one of {list(_LEVELS)}, got {level!r}")
        attrs = dict(self._attrs)
        attrs.update(kind=type(self).__name__, level=level, relative=bool(relative))
        if level == "neuron":
            m = self._relative_sparse() if relative else self._data
            data = sparse.COO.from_scipy_sparse(m)
            coords = {}
            for side, ax in (("pre", self._src), ("post", self._tgt)):
                bid = ax.body_ids()
                coords[side] = (side, bid)
                coords[f"bodyId_{side}"] = (side, bid)
                coords[f"type_{side}"] = (side, ax.types)
                coords[f"instance_{side}"] = (side, ax.instances)
            return xr.DataArray(data, dims=("pre", "post"), coords=coords, attrs=attrs, name="weight")
        a = self._type_sum if level == "type_sum" else self._type_mean
        if relative:
            rs = a.sum(axis=1, keepdims=True)
            a = a / np.where(rs == 0, 1.0, rs)
        coords = {}
        for side, ax in (("pre", self._src), ("post", self._tgt)):
            names = np.array(list(ax.boundaries), dtype=object)
            coords[side] = (side, names)
            coords[f"type_{side}"] = (side, names)
            coords[f"n_neurons_{side}"] = (side, ax.type_sizes)
        return xr.DataArray(np.array(a), dims=("pre", "post"), coords=coords, attrs=attrs, name="weight")

    # -- zarr
    def to_zarr(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the matrix to a Zarr v3 group, atomically (temp dir + rename).

        Layout: ``data/row``, ``data/col`` (int64) and ``data/value``
        (float64) hold the neuron-level COO entries; ``type_sum`` the dense
        type-level sums; ``source/`` and ``target/`` the axes (IDs, type and
        instance codes); group attrs are JSON (kind, provenance, label lists,
        type boundaries). A failed write leaves any previous matrix at
        ``path`` untouched.

        Parameters
        ----------
        path
            Target folder (``.zarr``); read back with :func:`connectome_dask.matrix.open_matrix`.
        overwrite
            Replace an existing matrix at ``path`` (default); ``False`` refuses to.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        FileExistsError
            ``path`` exists and is not a connectome_dask matrix (or is a
            symlink), it exists and ``overwrite`` is false, or another writer
            holds its lock.
        """
        from .._fsutil import atomic_dir

        path = Path(path)
        if path.exists() and not _is_matrix_dir(path):
            raise FileExistsError(f"{path} exists and is not a connectome_dask matrix; refusing to replace it")
        with atomic_dir(path, "matrix", overwrite=overwrite, error=FileExistsError,
                        recognise=_is_matrix_dir) as tmp:
            _write_matrix(self, tmp)
        return path

    # -- plotting
    def plot(
        self,
        output_path: str | os.PathLike | None = None,
        level: str = "neuron",
        figsize: tuple[float, float] = (16, 14),
        show_neuron_labels: bool = False,
        vmin_percentile: float = 0.0,
        vmax_percentile: float = 100.0,
        min_neurons_for_plot: int = 1,
        linewidth_scale: float = 1.0,
    ) -> tuple[Figure, Axes]:
        """Heatmap with type boundary lines; returns ``(fig, ax)``.

        Parameters follow crantpy. Matrices with more than 20 000 neurons on
        an axis render as an aggregated raster (weights summed into at most
        2 000 x 2 000 bins), never as per-cell patches.

        Parameters
        ----------
        output_path
            Save the figure there (PNG or any matplotlib format; folders are created).
        level
            ``"neuron"``, ``"type_sum"`` or ``"type_mean"``.
        figsize
            Figure size in inches.
        show_neuron_labels
            Neuron level: tick every neuron ID (up to 400 per axis) instead of
            the type names.
        vmin_percentile, vmax_percentile
            Colour limits as percentiles of the positive values.
        min_neurons_for_plot
            Neuron level: leave out types with fewer neurons.
        linewidth_scale
            Multiplies the widths of the boundary lines.

        Returns
        -------
        (matplotlib.figure.Figure, matplotlib.axes.Axes)

        Raises
        ------
        ValueError
            Unknown ``level``, ``linewidth_scale <= 0``, percentiles not
            ``0 <= vmin_percentile <= vmax_percentile <= 100``, or nothing to
            plot (an empty matrix).
        """
        from ..plotting import plot_nested

        if level not in _LEVELS:
            raise ConnectomeDaskError(f"level must be one of {list(_LEVELS)}, got {level!r}")
        if linewidth_scale <= 0:
            raise ConnectomeDaskError(f"linewidth_scale must be positive, got {linewidth_scale!r}")
        if not 0 <= vmin_percentile <= vmax_percentile <= 100:
            raise ConnectomeDaskError("need 0 <= vmin_percentile <= vmax_percentile <= 100")
        square = self._square
        if level == "neuron":
            data: Any = self._data
            rb, cb = self._src.boundaries, self._tgt.boundaries
            rlab, clab = list(self._src.ids), list(self._tgt.ids)
            if min_neurons_for_plot > 1:
                ri, rb = _filter_bounds(rb, min_neurons_for_plot)
                ci, cb = _filter_bounds(cb, min_neurons_for_plot)
                data = self._data[ri][:, ci]
                rlab = [rlab[i] for i in ri]
                clab = [clab[i] for i in ci]
            cbar = "Weight"
        else:
            data = self._type_sum if level == "type_sum" else self._type_mean
            rb = {n: (i, i + 1) for i, n in enumerate(self._src.boundaries)}
            cb = {n: (i, i + 1) for i, n in enumerate(self._tgt.boundaries)}
            rlab, clab = list(rb), list(cb)
            cbar = "Total Weight" if level == "type_sum" else "Mean Weight"
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise ConnectomeDaskError(f"cannot plot an empty matrix (shape {data.shape})")
        return plot_nested(
            data,
            rb,
            cb,
            row_labels=rlab,
            col_labels=clab,
            level=level,
            square=square,
            output_path=output_path,
            figsize=figsize,
            show_neuron_labels=show_neuron_labels,
            vmin_percentile=vmin_percentile,
            vmax_percentile=vmax_percentile,
            linewidth_scale=linewidth_scale,
            colorbar_label=cbar,
        )


def _filter_bounds(bounds: Mapping[str, tuple[int, int]], min_n: int) -> tuple[np.ndarray, dict]:
    """Positions of the types with at least ``min_n`` neurons, and their boundaries renumbered."""
    idx: list[np.ndarray] = []
    out: dict[str, tuple[int, int]] = {}
    cur = 0
    for name, (s, e) in bounds.items():
        if e - s >= min_n:
            idx.append(np.arange(s, e))
            out[name] = (cur, cur + e - s)
            cur += e - s
    return (np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)), out


def _build_matrix(pairs: _Pairs, weights: np.ndarray, src: _Axis, tgt: _Axis) -> sp.csr_matrix:
    """The sparse (len(src), len(tgt)) matrix of the pairs whose two neurons are on the axes."""
    n = len(pairs.universe)
    ps = np.full(n, -1, dtype=np.int64)
    pt = np.full(n, -1, dtype=np.int64)
    ps[src.codes] = np.arange(len(src))
    pt[tgt.codes] = np.arange(len(tgt))
    r, c = ps[pairs.src], pt[pairs.tgt]
    keep = (r >= 0) & (c >= 0) & (weights != 0)
    return sp.csr_matrix((weights[keep], (r[keep], c[keep])), shape=(len(src), len(tgt)))
