"""Heatmaps of nested connectivity matrices, from a few neurons up to the whole brain.

Small matrices are drawn cell by cell (``imshow`` of the dense array, as
crantpy does). When an axis has more than ``raster_threshold`` entries
(20 000 by default) the sparse coordinates are binned into at most
``max_pixels`` x ``max_pixels`` bins (weights summed, numpy 2-D binning) and
the raster is shown with ``imshow`` in neuron coordinates, so type boundary
lines stay exact and nothing ever allocates a dense neuron x neuron array.

This module draws numpy / scipy.sparse / ``sparse.COO`` arrays and
``xarray.DataArray`` objects only: it imports nothing of the package (no
:mod:`connectome_dask.matrix`, store, aggregate or compute). The nested
matrix classes prepare their arrays, labels and type boundaries themselves
(:meth:`connectome_dask.NestedMatrix.plot` calls :func:`plot_nested`), and
:func:`connectome_dask.plot_type_heatmap` builds a type matrix from a store
or a nested matrix and calls :func:`plot_type_heatmap` here.

Examples
--------
>>> import numpy as np
>>> fig, ax = plot_nested(np.eye(4), {"A": (0, 2), "B": (2, 4)}, {"A": (0, 2), "B": (2, 4)})
>>> ax.get_xlabel()
'Postsynaptic'
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ._fsutil import atomic_file

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PURPLE_CMAP_COLORS", "PURPLE_CMAP_N", "bin_matrix", "plot_nested", "plot_type_heatmap"]

#: White-to-purple colour ramp used for weights (zero stays white): crantpy's vivid purple ramp.
PURPLE_CMAP_COLORS = ("#FFFFFF", "#D8B4E8", "#B366D0", "#8C1BB8", "#6A0DAD", "#4B0082", "#2E0054")
#: Colours in the ramp (crantpy's ``N``).
PURPLE_CMAP_N = 100
_MAX_TYPE_LABELS = 200
_MAX_NEURON_LABELS = 400
_MAX_BOUNDARY_LINES = 400
_LINEWIDTHS = {"outer": 3.0, "block_light": 4.0, "block_dark": 2.0, "grid_light": 2.0, "grid_dark": 2.5}


def _cmap():
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("purple", list(PURPLE_CMAP_COLORS), N=PURPLE_CMAP_N)


def bin_matrix(data: Any, max_pixels: int = 2000) -> tuple[np.ndarray, tuple[float, float]]:
    """Sum a (sparse or dense) matrix into at most ``max_pixels`` bins per axis.

    Parameters
    ----------
    data
        ``scipy.sparse`` matrix, ``sparse.COO`` or 2-D numpy array.
    max_pixels
        Maximum bins per axis.

    Returns
    -------
    raster : numpy.ndarray
        ``(min(nrows, max_pixels), min(ncols, max_pixels))`` float64 sums.
    scale : tuple of float
        Matrix rows and columns per bin.

    Examples
    --------
    >>> r, s = bin_matrix(np.ones((10, 10)), max_pixels=5)
    >>> r.shape, float(r.sum()), s
    ((5, 5), 100.0, (2.0, 2.0))
    """
    nrows, ncols = data.shape
    h, w = max(1, min(nrows, max_pixels)), max(1, min(ncols, max_pixels))
    if isinstance(data, np.ndarray):
        r = (np.arange(nrows) * h // max(nrows, 1)).astype(np.int64)
        c = (np.arange(ncols) * w // max(ncols, 1)).astype(np.int64)
        rs = np.add.reduceat(np.asarray(data, dtype=np.float64), np.flatnonzero(np.r_[True, np.diff(r) > 0]), axis=0) if nrows else np.zeros((0, ncols))
        out = np.add.reduceat(rs, np.flatnonzero(np.r_[True, np.diff(c) > 0]), axis=1) if ncols else np.zeros((h, 0))
        return out, (nrows / h, ncols / w)
    if hasattr(data, "coords") and hasattr(data, "nnz") and not sp.issparse(data):  # sparse.COO
        coords = data.coords
        row, col, val = coords[0], coords[1], np.asarray(data.data, dtype=np.float64)
    else:
        coo = sp.coo_matrix(data)
        row, col, val = coo.row, coo.col, coo.data.astype(np.float64)
    br = row.astype(np.int64) * h // max(nrows, 1)
    bc = col.astype(np.int64) * w // max(ncols, 1)
    out = np.bincount(br * w + bc, weights=val, minlength=h * w).reshape(h, w)
    return out, (nrows / h, ncols / w)


def _color_limits(values: np.ndarray, vmin_p: float, vmax_p: float) -> tuple[float, float]:
    v = values[values > 0]
    if len(v) == 0:
        return 0.0, 1.0
    lo, hi = float(np.percentile(v, vmin_p)), float(np.percentile(v, vmax_p))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _segments(
    rb: Mapping[str, tuple[int, int]], cb: Mapping[str, tuple[int, int]], nrows: int, ncols: int, square: bool
) -> tuple[list, list]:
    grid: list = []
    blocks: list = []
    for _, (_s, e) in rb.items():
        if e < nrows:
            grid.append([(-0.5, e - 0.5), (ncols - 0.5, e - 0.5)])
    for _, (_s, e) in cb.items():
        if e < ncols:
            grid.append([(e - 0.5, -0.5), (e - 0.5, nrows - 0.5)])
    if square:
        for _, (s, e) in rb.items():
            lo, hi = s - 0.5, e - 0.5
            blocks += [[(lo, lo), (hi, lo)], [(hi, lo), (hi, hi)], [(hi, hi), (lo, hi)], [(lo, hi), (lo, lo)]]
    return grid, blocks


def plot_nested(
    data: Any,
    row_boundaries: Mapping[str, tuple[int, int]],
    col_boundaries: Mapping[str, tuple[int, int]],
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    level: str = "neuron",
    square: bool = True,
    output_path: str | os.PathLike | None = None,
    figsize: tuple[float, float] = (16, 14),
    show_neuron_labels: bool = False,
    vmin_percentile: float = 0.0,
    vmax_percentile: float = 100.0,
    linewidth_scale: float = 1.0,
    colorbar_label: str = "Weight",
    raster_threshold: int = 20_000,
    max_pixels: int = 2000,
    dpi: int = 300,
) -> tuple[Figure, Axes]:
    """Draw a nested matrix heatmap with type boundary lines; returns ``(fig, ax)``.

    Rows (presynaptic) run bottom to top (``origin="lower"``), columns
    (postsynaptic) left to right. Type boundaries become grid lines (and,
    for square matrices, block outlines on the diagonal); with more than
    400 types the per-type lines are left out (they would cover the image).
    Axes longer than ``raster_threshold`` render as a binned raster.

    Parameters
    ----------
    data
        Dense array or sparse matrix (rows x cols).
    row_boundaries, col_boundaries
        Type -> (start, end) per axis.
    row_labels, col_labels
        Neuron IDs or type names (ticks for type levels / ``show_neuron_labels``).
    level
        ``"neuron"`` or a type level (ticks at every row/column).
    square
        Draw block outlines on the diagonal (only when ``data`` is square).
    output_path
        Save a PNG (or any matplotlib format) there; folders are created.
    figsize
        Figure size in inches.
    show_neuron_labels
        Neuron level: tick every row / column label (up to 400 per axis)
        instead of the type names.
    vmin_percentile, vmax_percentile
        Colour limits as percentiles of the positive values shown.
    linewidth_scale
        Multiplies the widths of the boundary lines.
    colorbar_label
        Label of the colour bar (``" (binned sum)"`` is appended for a raster).
    raster_threshold
        Axes longer than this render as a binned raster.
    max_pixels
        Bins per axis of the raster (see :func:`bin_matrix`).
    dpi
        Resolution of the written image.

    Returns
    -------
    (matplotlib.figure.Figure, matplotlib.axes.Axes)

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> b = {"A": (0, 2), "B": (2, 4)}
    >>> fig, ax = plot_nested(np.arange(16.0).reshape(4, 4), b, b, output_path=tmp_path / "figs" / "m.png",
    ...                       figsize=(4, 4), dpi=50)
    >>> (tmp_path / "figs" / "m.png").exists(), ax.get_ylabel()
    (True, 'Presynaptic')
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    nrows, ncols = data.shape
    fig, ax = plt.subplots(figsize=figsize)
    extent = (-0.5, ncols - 0.5, -0.5, nrows - 0.5)
    raster = max(nrows, ncols) > raster_threshold
    if raster:
        img, _ = bin_matrix(data, max_pixels)
        interp = "antialiased"
    else:
        img = data.toarray() if sp.issparse(data) else np.asarray(data.todense() if hasattr(data, "todense") else data)
        img = np.asarray(img, dtype=np.float64)
        interp = "nearest"
    lo, hi = _color_limits(img, vmin_percentile, vmax_percentile)
    im = ax.imshow(
        img, cmap=_cmap(), vmin=lo, vmax=hi, origin="lower", interpolation=interp, aspect="auto", extent=extent
    )
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label(colorbar_label + (" (binned sum)" if raster else ""), fontsize=16, fontweight="bold")
    cbar.ax.tick_params(labelsize=14)
    lw = {k: v * linewidth_scale for k, v in _LINEWIDTHS.items()}
    outer = [
        [(-0.5, -0.5), (ncols - 0.5, -0.5)],
        [(ncols - 0.5, -0.5), (ncols - 0.5, nrows - 0.5)],
        [(ncols - 0.5, nrows - 0.5), (-0.5, nrows - 0.5)],
        [(-0.5, nrows - 0.5), (-0.5, -0.5)],
    ]
    ax.add_collection(LineCollection(outer, colors="black", linewidths=lw["outer"]))
    n_lines = len(row_boundaries) + len(col_boundaries)
    if level != "neuron":  # type levels: one block per type (crantpy draws the lines there too)
        row_boundaries = {n: (i, i + 1) for i, n in enumerate(row_labels or row_boundaries)}
        col_boundaries = {n: (i, i + 1) for i, n in enumerate(col_labels or col_boundaries)}
        n_lines = len(row_boundaries) + len(col_boundaries)
    if n_lines <= 2 * _MAX_BOUNDARY_LINES:
        grid, blocks = _segments(row_boundaries, col_boundaries, nrows, ncols, square and nrows == ncols)
        if blocks:
            ax.add_collection(LineCollection(blocks, colors="white", linewidths=lw["block_light"]))
            ax.add_collection(LineCollection(blocks, colors="black", linewidths=lw["block_dark"]))
        if grid:
            ax.add_collection(LineCollection(grid, colors="white", linewidths=lw["grid_light"]))
            ax.add_collection(LineCollection(grid, colors="black", linewidths=lw["grid_dark"], alpha=0.9))
    elif level == "neuron":  # only the typed / untyped split
        grid = []
        rt = max((e for _, e in row_boundaries.values()), default=0)
        ct = max((e for _, e in col_boundaries.values()), default=0)
        if 0 < rt < nrows:
            grid.append([(-0.5, rt - 0.5), (ncols - 0.5, rt - 0.5)])
        if 0 < ct < ncols:
            grid.append([(ct - 0.5, -0.5), (ct - 0.5, nrows - 0.5)])
        if grid:
            ax.add_collection(LineCollection(grid, colors="black", linewidths=lw["grid_dark"]))
    _ticks(ax, level, row_boundaries, col_boundaries, row_labels, col_labels, show_neuron_labels)
    ax.set_xlim(-0.5, ncols - 0.5)
    ax.set_ylim(-0.5, nrows - 0.5)
    ax.set_xlabel("Postsynaptic", fontsize=18, fontweight="bold")
    ax.set_ylabel("Presynaptic", fontsize=18, fontweight="bold")
    fig.tight_layout()
    if output_path:
        _save(fig, output_path, dpi)
    return fig, ax


def _ticks(ax, level, rb, cb, rlab, clab, show_neuron_labels) -> None:
    def centres(b):
        return [(s + e - 1) / 2 for s, e in b.values()], list(b)

    if level != "neuron":
        for setter, lab_setter, labels, rot in ((ax.set_xticks, ax.set_xticklabels, clab, 45), (ax.set_yticks, ax.set_yticklabels, rlab, 0)):
            labels = list(labels or [])
            if len(labels) <= _MAX_TYPE_LABELS:
                setter(np.arange(len(labels)))
                lab_setter(labels, rotation=rot, ha="right" if rot else "right", fontsize=14 if len(labels) < 40 else 6)
            else:
                setter([])
        return
    if show_neuron_labels:
        if len(rlab or []) <= _MAX_NEURON_LABELS and len(clab or []) <= _MAX_NEURON_LABELS:
            ax.set_xticks(np.arange(len(clab)))
            ax.set_xticklabels(clab, rotation=90, fontsize=8)
            ax.set_yticks(np.arange(len(rlab)))
            ax.set_yticklabels(rlab, fontsize=8)
            return
    if 0 < len(rb) <= _MAX_TYPE_LABELS and 0 < len(cb) <= _MAX_TYPE_LABELS:
        xt, xl = centres(cb)
        yt, yl = centres(rb)
        ax.set_xticks(xt)
        ax.set_xticklabels(xl, rotation=45, ha="right", fontsize=14 if len(xl) < 40 else 6)
        ax.set_yticks(yt)
        ax.set_yticklabels(yl, fontsize=14 if len(yl) < 40 else 6)
    else:
        ax.set_xticks([])
        ax.set_yticks([])


def _save(fig, output_path, dpi: int) -> None:
    p = Path(output_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(p) as tmp:
        # the temporary name does not end in the suffix: name the format
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", facecolor="white", format=p.suffix.lstrip(".").lower() or "png")


def plot_type_heatmap(
    data: Any,
    output_path: str | os.PathLike | None = None,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    level: str = "type_sum",
    log: bool = True,
    max_pixels: int = 2000,
    figsize: tuple[float, float] = (12, 11),
    dpi: int = 150,
    title: str | None = None,
    name: str | None = None,
) -> tuple[Figure, Axes]:
    """Draw a type x type connectivity matrix as a heatmap (PNG-ready); returns ``(fig, ax)``.

    This draws arrays only. To plot a :class:`~connectome_dask.store.Connectome`
    (type counts aggregated out of core) or a nested matrix, use
    :func:`connectome_dask.plot_type_heatmap` (:func:`connectome_dask.matrix.plot_type_heatmap`),
    which builds the type matrix and calls this function.

    Parameters
    ----------
    data
        A 2-D ``xarray.DataArray`` (dense or ``sparse.COO`` data; tick labels
        from its ``type_pre`` / ``type_post`` coordinates when present), a
        2-D numpy array, a ``scipy.sparse`` matrix or a ``sparse.COO``.
    output_path
        Where to write the image.
    row_labels, col_labels
        Tick labels (drawn when both axes have at most 60 entries); default
        the DataArray's type coordinates.
    level
        ``"type_sum"`` or ``"type_mean"``: only the colour bar label.
    log
        Colour by ``log10(1 + weight)``.
    max_pixels
        Larger matrices are binned (weights summed) to this many pixels per axis.
    figsize
        Figure size in inches.
    dpi
        Resolution of the written image.
    title
        Axes title; default ``"{name}: type x type connectivity"``.
    name
        What the matrix is, for the default title (default the DataArray's
        name, ``"DataArray"`` or ``"matrix"``).

    Returns
    -------
    (matplotlib.figure.Figure, matplotlib.axes.Axes)

    Raises
    ------
    ValueError
        ``level`` is not ``"type_sum"`` or ``"type_mean"``, or ``data`` is
        not 2-D or is empty.
    TypeError
        ``data`` is not an array, a sparse matrix or a DataArray (e.g. a
        Connectome: use :func:`connectome_dask.plot_type_heatmap`).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> a = np.array([[0.0, 3.0], [1.0, 0.0]])
    >>> fig, ax = plot_type_heatmap(a, tmp_path / "types.png", row_labels=["A", "B"], col_labels=["A", "B"],
    ...                             figsize=(4, 4), dpi=50, name="toy")
    >>> (tmp_path / "types.png").exists(), ax.get_title(), ax.get_xlabel()
    (True, 'toy: type x type connectivity', 'postsynaptic type (2)')
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    if level not in ("type_sum", "type_mean"):
        raise ValueError(f"level must be 'type_sum' or 'type_mean', got {level!r}")
    label = "synapses" if level == "type_sum" else "mean synapses per neuron pair"
    rlab = None if row_labels is None else list(row_labels)
    clab = None if col_labels is None else list(col_labels)
    if hasattr(data, "dims") and hasattr(data, "data"):  # xarray.DataArray
        if data.ndim != 2:
            raise ValueError(f"DataArray must be 2-D, got dims {data.dims}")
        what = str(data.name or "DataArray")
        for side, dim in (("pre", data.dims[0]), ("post", data.dims[1])):
            coord = f"type_{side}"
            if coord not in data.coords or data.coords[coord].dims != (dim,):
                # a grouped adjacency (by="type", ...) keeps its labels in the dimension's own coordinate
                coord = dim if dim in data.coords and data.coords[dim].dtype.kind in "OUS" else ""
            if coord:
                labs = [str(v) for v in data.coords[coord].values]
                if side == "pre" and rlab is None:
                    rlab = labs
                elif side == "post" and clab is None:
                    clab = labs
        data = data.data
    elif isinstance(data, np.ndarray) or sp.issparse(data) or (hasattr(data, "coords") and hasattr(data, "nnz")):
        what = "matrix"
        if getattr(data, "ndim", 2) != 2:
            raise ValueError(f"data must be 2-D, got shape {data.shape}")
    else:
        raise TypeError(
            f"connectome_dask.plotting draws arrays and DataArrays, got {type(data).__name__}; for a Connectome "
            "or a nested matrix use connectome_dask.plot_type_heatmap"
        )
    what = name or what
    nrows, ncols = data.shape
    if nrows == 0 or ncols == 0:
        raise ValueError(f"cannot plot an empty matrix (shape {data.shape})")
    binned = max(nrows, ncols) > max_pixels
    if binned or not isinstance(data, np.ndarray):
        plain = sp.issparse(data) or isinstance(data, np.ndarray) or hasattr(data, "coords")
        img, _ = bin_matrix(data if plain else np.asarray(data), max_pixels)
    else:
        img = np.asarray(data, dtype=np.float64)
    shown = np.log10(1.0 + np.clip(img, 0, None)) if log else img
    fig, ax = plt.subplots(figsize=figsize)
    pos = shown[shown > 0]
    hi = float(np.percentile(pos, 99.9)) if len(pos) else 1.0
    im = ax.imshow(
        shown, cmap=_cmap(), vmin=0.0, vmax=hi if hi > 0 else 1.0, origin="upper", interpolation="nearest",
        aspect="auto", extent=(-0.5, ncols - 0.5, nrows - 0.5, -0.5),
    )  # fmt: skip
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label(f"log10(1 + {label})" if log else label)
    if rlab is not None and len(rlab) <= 60 and clab is not None and len(clab) <= 60:
        ax.set_yticks(np.arange(len(rlab)))
        ax.set_yticklabels(rlab, fontsize=7)
        ax.set_xticks(np.arange(len(clab)))
        ax.set_xticklabels(clab, rotation=90, fontsize=7)
    ax.set_xlabel(f"postsynaptic type ({ncols:,})")
    ax.set_ylabel(f"presynaptic type ({nrows:,})")
    ax.set_title(title or f"{what}: type x type connectivity" + (" (binned)" if binned else ""))
    fig.tight_layout()
    if output_path:
        _save(fig, output_path, dpi)
    return fig, ax
