"""Reading and writing matrices: :func:`open_matrix`, :func:`save_dataarray`, :func:`open_dataarray`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from .layout import (
    _DA_FORMAT,
    _MATRIX_FORMAT,
    _MATRIX_FORMAT_VERSION,
    _is_da_dir,
    _is_matrix_dir,
    _labels_to_arrays,
    _read_array,
    _read_axis,
    _subgroup,
    _writer,
)
from .nested import DirectedNestedMatrix, NestedMatrix

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["open_dataarray", "open_matrix", "save_dataarray"]


def open_matrix(path: str | os.PathLike) -> NestedMatrix | DirectedNestedMatrix:
    """Open a matrix written by :meth:`NestedMatrix.to_zarr` / :meth:`DirectedNestedMatrix.to_zarr`.

    Parameters
    ----------
    path
        The matrix folder (``.zarr``).

    Returns
    -------
    NestedMatrix or DirectedNestedMatrix
        The kind that was written, with its provenance ``attrs``.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a connectome_dask matrix (no ``zarr.json`` with the
        matrix format marker).
    ValueError
        The matrix was written by a newer format version, or names an
        unknown matrix kind.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> ann = pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]})
    >>> m = NestedMatrix.from_connectivity(pd.DataFrame({"pre": [1], "post": [2]}), ann)
    >>> p = m.to_zarr(pathlib.Path(tempfile.mkdtemp()) / "m.zarr")
    >>> open_matrix(p).matrix.equals(m.matrix)
    True
    """
    import zarr

    path = Path(path)
    if not _is_matrix_dir(path):
        raise FileNotFoundError(f"{path} is not a connectome_dask matrix (no zarr.json with format {_MATRIX_FORMAT!r})")
    root = zarr.open_group(str(path), mode="r")
    attrs: dict[str, Any] = dict(root.attrs)  # the JSON written by layout._write_matrix
    if int(attrs.get("format_version", 0)) > _MATRIX_FORMAT_VERSION:
        raise ValueError(f"{path}: matrix format version {attrs['format_version']} is newer than this connectome_dask")
    kind = attrs["kind"]
    shape = tuple(attrs["shape"])
    src = _read_axis(_subgroup(root, "source"), attrs["axes"]["source"])
    tgt = _read_axis(_subgroup(root, "target"), attrs["axes"]["target"]) if "target" in attrs["axes"] else src
    row, col, val = (_read_array(_subgroup(root, "data"), k) for k in ("row", "col", "value"))
    data = sp.csr_matrix((val, (row, col)), shape=shape)
    m: NestedMatrix | DirectedNestedMatrix
    if kind == "NestedMatrix":
        m = NestedMatrix._from_parts(data, src, attrs["provenance"])
    elif kind == "DirectedNestedMatrix":
        m = DirectedNestedMatrix._from_parts(data, src, tgt, attrs["provenance"])
    else:
        raise ValueError(f"{path}: unknown matrix kind {kind!r}")
    ts = np.asarray(_read_array(root, "type_sum"), dtype=np.float64)
    ts.setflags(write=False)
    m.__dict__["_type_sum"] = ts  # seed the cache with the stored dense type level
    return m


def save_dataarray(da: xr.DataArray, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write a 2-D labelled matrix (dense or ``sparse.COO``) to a Zarr v3 group, atomically.

    Sparse data is stored as COO coordinate and value arrays, dense data as
    one array; 1-D coordinates as arrays (labels as int32 codes with the
    names in JSON attrs); ``attrs`` must be JSON-able. Written to a temporary
    folder and renamed into place, so a failure leaves an older file intact.

    Parameters
    ----------
    da
        ``xarray.DataArray`` with 2 dims (e.g. from ``Connectome.adjacency`` or
        :meth:`NestedMatrix.to_xarray`).
    path
        Target folder (``.zarr``).
    overwrite
        Replace an existing DataArray folder at ``path`` (default); ``False``
        refuses to.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        ``da`` is not 2-D, has a coordinate that is not 1-D, or its
        ``attrs`` are not JSON-able.
    FileExistsError
        ``path`` exists and is not a saved DataArray (or is a symlink), it
        exists and ``overwrite`` is false, or another writer holds its lock.

    Examples
    --------
    >>> import numpy as np, xarray as xr, tempfile, pathlib
    >>> da = xr.DataArray(np.eye(2), dims=("pre", "post"), coords={"pre": ["a", "b"], "post": [1, 2]})
    >>> p = save_dataarray(da, pathlib.Path(tempfile.mkdtemp()) / "a.zarr")
    >>> open_dataarray(p).identical(da)
    True
    """
    import zarr

    from .._fsutil import atomic_dir

    write = _writer()
    if da.ndim != 2:
        raise ValueError(f"save_dataarray writes 2-D matrices, got dims {da.dims}")
    path = Path(path)
    if path.exists() and not _is_da_dir(path):
        raise FileExistsError(f"{path} exists and is not a saved connectome_dask DataArray; refusing to replace it")
    try:
        attrs_json = json.loads(json.dumps(dict(da.attrs)))
    except TypeError as e:
        raise ValueError(f"DataArray attrs must be JSON-able: {e}") from None
    with atomic_dir(path, "dataarray", overwrite=overwrite, error=FileExistsError,
                    recognise=_is_da_dir) as tmp:
        root = zarr.open_group(str(tmp), mode="a")
        data = da.data
        meta: dict[str, Any] = {
            "format": _DA_FORMAT,
            "format_version": 1,
            "name": da.name,
            "dims": list(da.dims),
            "shape": list(da.shape),
            "attrs": attrs_json,
            "coords": {},
        }
        if hasattr(data, "coords") and hasattr(data, "nnz"):  # sparse.COO
            meta["storage"] = "coo"
            meta["dtype"] = str(data.dtype)
            write(root, "row", np.asarray(data.coords[0], dtype=np.int64))
            write(root, "col", np.asarray(data.coords[1], dtype=np.int64))
            write(root, "value", np.asarray(data.data))
        else:
            meta["storage"] = "dense"
            write(root, "values", np.asarray(data))
        cg = root.create_group("coords")
        for i, (name, c) in enumerate(da.coords.items()):
            if c.ndim != 1:
                raise ValueError(f"coordinate {name!r} is not 1-D")
            vals = np.asarray(c.values)
            key = f"c{i}"
            entry: dict[str, Any] = {"dim": c.dims[0], "key": key}
            if vals.dtype.kind in "iufb":
                write(cg, key, vals)
                entry["kind"] = "array"
            else:
                codes, names = _labels_to_arrays(vals)
                write(cg, key, codes)
                entry["kind"] = "labels"
                entry["names"] = names
            meta["coords"][str(name)] = entry
        root.attrs.update(meta)
    return path


def open_dataarray(path: str | os.PathLike) -> xr.DataArray:
    """Read a matrix written by :func:`save_dataarray` (sparse data comes back as ``sparse.COO``).

    Parameters
    ----------
    path
        The folder written by :func:`save_dataarray`.

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    FileNotFoundError
        ``path`` is not a saved connectome_dask DataArray.

    Examples
    --------
    >>> W = conn.adjacency()  # sparse neuron x neuron
    >>> back = open_dataarray(save_dataarray(W, tmp_path / "W.zarr"))
    >>> type(back.data).__name__, back.shape == W.shape, bool((back.data == W.data).all())
    ('COO', True, True)
    """
    import sparse
    import xarray as xr
    import zarr

    path = Path(path)
    if not _is_da_dir(path):
        raise FileNotFoundError(f"{path} is not a saved connectome_dask DataArray")
    root = zarr.open_group(str(path), mode="r")
    meta: dict[str, Any] = dict(root.attrs)  # the JSON written by save_dataarray
    shape = tuple(meta["shape"])
    if meta["storage"] == "coo":
        coords = np.stack([_read_array(root, "row"), _read_array(root, "col")]) if meta["shape"] else None
        data: Any = sparse.COO(coords, _read_array(root, "value"), shape=shape, fill_value=0)
    else:
        data = _read_array(root, "values")
    coords_out: dict[str, tuple[str, np.ndarray]] = {}
    for name, e in meta["coords"].items():
        raw = _read_array(_subgroup(root, "coords"), e["key"])
        v: np.ndarray
        if e["kind"] == "labels":
            names = np.array(e["names"], dtype=object)
            v = np.empty(len(raw), dtype=object)
            v[:] = None
            ok = raw >= 0
            if len(names):
                v[ok] = names[raw[ok]]
        else:
            v = raw
        coords_out[name] = (e["dim"], v)
    return xr.DataArray(data, dims=tuple(meta["dims"]), coords=coords_out, attrs=meta["attrs"], name=meta["name"])
