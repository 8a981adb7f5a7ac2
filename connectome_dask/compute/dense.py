"""The limit on dense in-memory results (checked before allocating)."""

from __future__ import annotations

import os

import numpy as np

from .. import config
from ..errors import DenseMatrixTooLarge

__all__ = ["max_dense_bytes", "max_result_bytes", "machine_memory", "check_dense", "DenseMatrixTooLarge"]


def machine_memory() -> int:
    """Physical memory of the machine (bytes): psutil's total, else ``sysconf``.

    Returns
    -------
    int
        Bytes.

    Examples
    --------
    >>> machine_memory() > 0
    True
    """
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def max_dense_bytes() -> int:
    """Largest dense in-memory object the package will build (bytes).

    ``dask.config["connectome_dask.max_dense_bytes"]``; ``None`` means half of
    the machine's physical memory.

    Returns
    -------
    int
        The limit in bytes.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"connectome_dask.max_dense_bytes": 1000}):
    ...     max_dense_bytes()
    1000
    """
    v = config.get("max_dense_bytes", None)
    if v is not None:
        return int(v)
    return machine_memory() // 2


def max_result_bytes() -> int:
    """Memory budget of a table result built in memory, e.g. fetch_adjacencies' conn_df (bytes).

    ``dask.config["connectome_dask.max_result_bytes"]``; ``None`` means a
    quarter of the machine's physical memory.

    Returns
    -------
    int
        The budget in bytes.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"connectome_dask.max_result_bytes": 10**6}):
    ...     max_result_bytes()
    1000000
    """
    v = config.get("max_result_bytes", None)
    if v is not None:
        return int(v)
    return machine_memory() // 4


def check_dense(shape: tuple[int, ...], itemsize: int, what: str, hint: str | None = None) -> None:
    """Raise :class:`DenseMatrixTooLarge` before allocating a dense array above the limit.

    Parameters
    ----------
    shape
        Shape of the array about to be allocated.
    itemsize
        Bytes per element.
    what
        What the array is, for the message.
    hint
        What to do instead, for the message (default: use the sparse result).

    Raises
    ------
    DenseMatrixTooLarge
        ``prod(shape) * itemsize`` exceeds :func:`max_dense_bytes`.

    Examples
    --------
    >>> check_dense((1000, 1000), 8, "a small matrix")  # 8 MB: fine
    >>> check_dense((10**7, 10**7), 8, "a neuron x neuron matrix")
    Traceback (most recent call last):
    ...
    connectome_dask.errors.DenseMatrixTooLarge: a neuron x neuron matrix would need a dense ...
    """
    need = int(np.prod(shape, dtype=np.float64)) * itemsize
    limit = max_dense_bytes()
    if need > limit:
        dims = " x ".join(f"{int(d):,}" for d in shape)
        raise DenseMatrixTooLarge(
            f"{what} would need a dense {dims} array of {_nbytes(need)}, more than the "
            f"limit of {_nbytes(limit)} (dask config 'connectome_dask.max_dense_bytes'). "
            + (hint or "Use the sparse neuron-level result (Connectome.adjacency(...) / .to_xarray()) "
               "or restrict the neurons.")
        )


def _nbytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} bytes"


_check_dense = check_dense  # short private alias used across modules
