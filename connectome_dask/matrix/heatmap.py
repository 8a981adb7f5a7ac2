"""Type x type heatmaps of a store, a nested matrix or a DataArray (built here, drawn by :mod:`connectome_dask.plotting`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..labels import natural_type_order, str_array
from .base import _NestedBase
from .common import _is_connectome

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_type_heatmap"]


def plot_type_heatmap(
    source: Any,
    output_path: str | os.PathLike | None = None,
    *,
    level: str = "type_sum",
    log: bool = True,
    type_column: str = "type",
    type_order: Sequence[Any] | None = None,
    confidence: float | None = None,
    max_pixels: int = 2000,
    figsize: tuple[float, float] = (12, 11),
    dpi: int = 150,
    title: str | None = None,
    progress: bool | None = None,
) -> tuple[Figure, Axes]:
    """Whole-brain type x type connectivity heatmap (PNG-ready); returns ``(fig, ax)``.

    Builds the type-level matrix, then draws it with
    :func:`connectome_dask.plotting.plot_type_heatmap`.

    Parameters
    ----------
    source
        A :class:`~connectome_dask.store.Connectome` (type counts aggregated
        out of core with :func:`connectome_dask.aggregate.group_counts`; types
        in natural order (:func:`connectome_dask.labels.natural_type_order`),
        untyped neurons left out), a nested matrix, or a 2-D
        ``xarray.DataArray`` (dense or ``sparse.COO`` data).
    output_path
        Where to write the image.
    level
        ``"type_sum"`` or ``"type_mean"`` (nested matrices / Connectome).
    log
        Colour by ``log10(1 + weight)``.
    type_column, type_order, confidence
        Connectome only: neuron table column with the types, preferred
        order, synapse confidence threshold.
    max_pixels
        Larger matrices are binned (weights summed) to this many pixels per axis.
    figsize
        Figure size in inches.
    dpi
        Resolution of the written image.
    title
        Axes title; default ``"{name}: type x type connectivity"`` with the
        dataset and version, the matrix class or the DataArray's name.
    progress
        Accepted for symmetry with the builders (the type counts show no bar).

    Returns
    -------
    (matplotlib.figure.Figure, matplotlib.axes.Axes)

    Raises
    ------
    ValueError
        ``level`` is not ``"type_sum"`` or ``"type_mean"``, or the matrix is
        empty or not 2-D.
    TypeError
        ``source`` is not a Connectome, a nested matrix or a DataArray.
    KeyError
        A Connectome's neuron table has no ``type_column``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plot_type_heatmap(conn, tmp_path / "types.png", figsize=(4, 4), dpi=50)
    >>> (tmp_path / "types.png").exists(), ax.get_xlabel() == f"postsynaptic type ({conn.neurons.type.nunique()})"
    (True, True)
    >>> plt.close(fig)
    >>> fig, ax = plot_type_heatmap(conn.adjacency(by="type"), tmp_path / "types.png")
    >>> plt.close(fig)
    """
    from .. import plotting

    if level not in ("type_sum", "type_mean"):
        raise ValueError(f"level must be 'type_sum' or 'type_mean', got {level!r}")
    rlab = clab = None
    name = None
    if isinstance(source, _NestedBase):
        data: Any = np.asarray(source._type_sum if level == "type_sum" else source._type_mean)
        rlab, clab = list(source._src.boundaries), list(source._tgt.boundaries)
        name = type(source).__name__
    elif hasattr(source, "dims") and hasattr(source, "data"):
        data = source
    elif _is_connectome(source):
        data, order = _type_matrix_from_store(source, level, type_column, type_order, confidence)
        rlab = clab = order
        name = f"{source.meta.get('name')} v{source.meta.get('version')}"
    else:
        raise TypeError(f"source must be a Connectome, nested matrix or DataArray, got {type(source).__name__}")
    return plotting.plot_type_heatmap(
        data, output_path, row_labels=rlab, col_labels=clab, level=level, log=log, max_pixels=max_pixels,
        figsize=figsize, dpi=dpi, title=title, name=name,
    )  # fmt: skip


def _type_matrix_from_store(
    conn, level: str, type_column: str, type_order: Sequence[Any] | None, confidence: float | None
) -> tuple[np.ndarray, list[str]]:
    """Dense (types x types) synapse counts (or means per neuron pair) of a store, and the type order."""
    from ..aggregate import group_counts

    neurons = conn.neurons
    if type_column not in neurons.columns:
        raise KeyError(f"neuron table of {conn.path} has no column {type_column!r}")
    types = neurons[type_column]
    order = natural_type_order(types.dropna().unique(), type_order)
    lookup = {t: i for i, t in enumerate(order)}
    codes = np.array([lookup.get(t, -1) if t is not None else -1 for t in str_array(types)], dtype=np.int32)
    counts = group_counts(conn, codes, codes, len(order), len(order), confidence=confidence)
    data = np.asarray(counts, dtype=np.float64)
    if level == "type_mean":
        sizes = np.bincount(codes[codes >= 0], minlength=len(order)).astype(np.float64)
        denom = np.outer(sizes, sizes)
        data = np.divide(data, denom, out=np.zeros_like(data), where=denom > 0)
    return data, order
