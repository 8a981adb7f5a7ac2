"""On-disk Zarr layout of nested matrices and labelled DataArrays (format markers, array writer, axes)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from .axes import _Axis

if TYPE_CHECKING:
    import zarr

    from .base import _NestedBase

__all__: list[str] = []  # internal: the Zarr layout helpers are private


_MATRIX_FORMAT = "connectome-dask-matrix"
_MATRIX_FORMAT_VERSION = 1


def _is_matrix_dir(path: Path) -> bool:
    """Whether ``path`` is a matrix written by ``to_zarr`` (its ``zarr.json`` has the format marker)."""
    zj = path / "zarr.json"
    if not zj.is_file():
        return False
    try:
        meta = json.loads(zj.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("attributes", {}).get("format") == _MATRIX_FORMAT


def _labels_to_arrays(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Encode labels (None allowed) as int32 codes (-1 = None) and a JSON list of names."""
    s = pd.Series(values, dtype=object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes.astype(np.int32), [str(u) for u in uniques]


def _write_array(group: zarr.Group, name: str, a: np.ndarray) -> None:
    """Write one numpy array into a Zarr group (checksummed codecs of the store, empty chunks written)."""
    from ..store import array_codecs

    a = np.ascontiguousarray(a)
    chunks = tuple(max(1, min(s, 1 << 20)) for s in a.shape) if a.ndim == 1 else tuple(max(1, min(s, 2048)) for s in a.shape)
    arr = group.create_array(
        name, shape=a.shape, chunks=chunks, dtype=a.dtype, compressors=array_codecs(), fill_value=0,
        config={"write_empty_chunks": True},
    )
    if a.size:
        arr[...] = a


def _writer() -> Callable[[zarr.Group, str, np.ndarray], None]:
    """The array writer to call: ``connectome_dask.matrix._write_array``, looked up at call time.

    Fault-injection tests replace that package attribute to interrupt a write
    after a few arrays (``tests/reliability/test_interrupted_writes.py``,
    ``tests/test_matrix.py``); the writers here and in :mod:`.io` call through
    this lookup so such a patch still takes effect.
    """
    return getattr(sys.modules.get(__package__ or ""), "_write_array", _write_array)


def _write_axis(group: zarr.Group, axis: _Axis) -> dict[str, Any]:
    """Write one axis (IDs as int64 or label codes, type and instance codes); returns its JSON metadata."""
    write = _writer()
    ids = axis.body_ids()
    meta: dict[str, Any] = {"n": len(axis), "boundaries": [[k, s, e] for k, (s, e) in axis.boundaries.items()]}
    if ids.dtype.kind == "i":
        write(group, "ids", ids.astype(np.int64))
        meta["ids"] = "int64"
    else:
        c, names = _labels_to_arrays(axis.ids)
        write(group, "ids", c)
        meta["ids"] = "codes"
        meta["id_names"] = names
    tc, tn = _labels_to_arrays(axis.types)
    write(group, "type_code", tc)
    meta["type_names"] = tn
    ic, inames = _labels_to_arrays(axis.instances)
    write(group, "instance_code", ic)
    meta["instance_names"] = inames
    if axis.ann_rank is not None:  # neuron_to_type's annotation order (absent in older matrices)
        write(group, "ann_rank", np.asarray(axis.ann_rank, dtype=np.int64))
        meta["ann_rank"] = True
    return meta


def _write_matrix(m: _NestedBase, path: Path) -> None:
    """Write the whole matrix (COO entries, dense type sums, axes, attrs) into the fresh folder ``path``."""
    import zarr

    write = _writer()
    root = zarr.open_group(str(path), mode="a")  # a fresh directory (holding only the marker)
    coo = m._data.tocoo()
    order = np.lexsort((coo.col, coo.row))
    data = root.create_group("data")
    write(data, "row", coo.row[order].astype(np.int64))
    write(data, "col", coo.col[order].astype(np.int64))
    write(data, "value", coo.data[order].astype(np.float64))
    write(root, "type_sum", np.asarray(m._type_sum))
    axes = {"source": _write_axis(root.create_group("source"), m._src)}
    if m._tgt is not m._src:
        axes["target"] = _write_axis(root.create_group("target"), m._tgt)
    attrs = {
        "format": _MATRIX_FORMAT,
        "format_version": _MATRIX_FORMAT_VERSION,
        "kind": type(m).__name__,
        "shape": list(m.shape),
        "nnz": int(coo.nnz),
        "axes": axes,
        "provenance": dict(m._attrs),
    }
    root.attrs.update(json.loads(json.dumps(attrs)))


def _subgroup(group: zarr.Group, name: str) -> zarr.Group:
    """The subgroup ``name`` of a group this layout wrote (a group there, never an array)."""
    return cast("zarr.Group", group[name])


def _read_array(group: zarr.Group, name: str) -> np.ndarray:
    """All of the array ``name`` of a group this layout wrote, in memory.

    ``Array[...]`` is typed as any array-like or scalar; with zarr's default
    (CPU) buffers a whole-array read of the arrays written here is a numpy array.
    """
    return cast("np.ndarray", cast("zarr.Array", group[name])[...])


def _read_axis(group: zarr.Group, meta: Mapping[str, Any]) -> _Axis:
    """Read one axis written by :func:`_write_axis`."""
    raw = _read_array(group, "ids")
    int_ids = None
    if meta["ids"] == "int64":
        int_ids = np.asarray(raw, dtype=np.int64)
        ids = int_ids.astype(str).astype(object)
    else:
        names = np.array(meta["id_names"], dtype=object)
        ids = names[raw]

    def decode(codes: np.ndarray, names: list[str]) -> np.ndarray:
        out = np.empty(len(codes), dtype=object)
        out[:] = None
        ok = codes >= 0
        out[ok] = np.array(names, dtype=object)[codes[ok]] if len(names) else None
        return out

    types = decode(_read_array(group, "type_code"), meta["type_names"])
    inst = decode(_read_array(group, "instance_code"), meta["instance_names"])
    bounds = {k: (int(s), int(e)) for k, s, e in meta["boundaries"]}
    rank = _read_array(group, "ann_rank") if meta.get("ann_rank") else None
    return _Axis(np.arange(len(ids)), ids, types, inst, bounds, int_ids, ann_rank=rank)


_DA_FORMAT = "connectome-dask-dataarray"


def _is_da_dir(path: Path) -> bool:
    """Whether ``path`` is a DataArray written by ``save_dataarray``."""
    zj = path / "zarr.json"
    try:
        return json.loads(zj.read_text()).get("attributes", {}).get("format") == _DA_FORMAT
    except (OSError, json.JSONDecodeError):
        return False
