"""Argument types and checks shared by the nested-matrix modules."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from ..aggregate import check_dense
from ..errors import ConnectomeDaskError, UnknownColumnError

__all__ = ["DEFAULT_VOXEL_SIZE", "AnnotationScope", "NormalizationScope", "WeightMode"]

#: crantpy's logger name: the nested matrices log crantpy's WARNING and INFO messages here.
LOGGER_NAME = "connectome_dask.crantpy"
_log = logging.getLogger(LOGGER_NAME)

#: nm per pixel (x, y, z) for ``coordinates="pixels"`` when no ``voxel_size`` is given:
#: crantpy's dataset scale (``SCALE_X, SCALE_Y, SCALE_Z`` = 8, 8, 42). Read at call time,
#: so assigning a new tuple here changes the default for every later call.
DEFAULT_VOXEL_SIZE: tuple[float, float, float] = (8.0, 8.0, 42.0)

WeightMode = Literal["relative_outgoing", "relative_incoming", "count", "column"]
AnnotationScope = Literal["annotated_only", "all"]
NormalizationScope = Literal["selected", "all"]

_WEIGHT_MODES = ("relative_outgoing", "relative_incoming", "count", "column")
_SCOPES = ("annotated_only", "all")
_NORM_SCOPES = ("selected", "all")
_LEVELS = ("neuron", "type_mean", "type_sum")


def _check_dense(nrows: int, ncols: int, what: str, hint: str) -> None:
    """Raise :class:`DenseMatrixTooLarge` before allocating a dense float64 ``(nrows, ncols)`` array over the limit."""
    check_dense((nrows, ncols), 8, what, f"{hint}, or raise the limit.")


def _validate_common(weight_mode: str | None, weight_column: str | None, annotation_scope: str) -> None:
    """Check ``weight_mode`` / ``weight_column`` / ``annotation_scope`` as crantpy does (``ValueError``)."""
    if annotation_scope not in _SCOPES:
        raise ConnectomeDaskError(f"annotation_scope must be one of {list(_SCOPES)}, got {annotation_scope!r}")
    if weight_mode is None:
        return
    if weight_mode not in _WEIGHT_MODES:
        raise ConnectomeDaskError(f"weight_mode must be one of {list(_WEIGHT_MODES)}, got {weight_mode!r}")
    if weight_mode == "column":
        if not weight_column:
            raise ConnectomeDaskError("weight_column must be provided when weight_mode='column'")
    elif weight_column is not None:
        raise ConnectomeDaskError("weight_column can only be provided when weight_mode='column'")


def _materialize(values: Any) -> Any:
    """A selector / type order as it can be read more than once.

    ``None``, strings, bytes and scalars stay as they are; any other iterable
    (a generator, a ``map``, a set, a Series) becomes a list, read exactly once.
    """
    if values is None or isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return values
    return list(values)


def _is_connectome(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`~connectome_dask.store.Connectome` (store imported lazily)."""
    from ..store import Connectome

    return isinstance(obj, Connectome)


def _is_dask_frame(obj: Any) -> bool:
    """Whether ``obj`` is a dask DataFrame."""
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, dd.DataFrame)


def _require_columns(df: Any, cols: Iterable[str], what: str) -> None:
    """Raise ``KeyError`` naming the columns of ``cols`` that ``df`` lacks."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise UnknownColumnError(f"{what} has no column(s) {missing}; available: {list(df.columns)[:20]}")


def _provenance(source: Any, **kw: Any) -> dict:
    """JSON-able provenance attrs: the source (dataset, version, store path) and the build arguments ``kw``."""
    out: dict[str, Any] = {}
    if _is_connectome(source):
        out["dataset"] = source.meta.get("name")
        out["version"] = str(source.meta.get("version"))
        out["store"] = str(source.path)
        out["source"] = "connectome store"
    elif _is_dask_frame(source):
        out["source"] = "dask DataFrame"
    else:
        out["source"] = "pandas DataFrame"
    for k, v in kw.items():
        if v is None or isinstance(v, str | int | float | bool):
            out[k] = v
        elif isinstance(v, np.integer | np.floating):
            out[k] = v.item()
        else:
            out[k] = json.loads(json.dumps(list(v) if isinstance(v, set | tuple) else v, default=str))
    return out
