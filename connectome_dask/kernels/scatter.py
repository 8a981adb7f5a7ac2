"""Small numba kernels shared by the store layer.

numba is used where numpy has no single vectorised equivalent (a stable
counting-sort scatter with a running cursor per key).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["scatter_rows"]


@numba.njit(cache=True, nogil=True)
def scatter_rows(keys: np.ndarray, rows: np.ndarray, cursor: np.ndarray, out: np.ndarray) -> None:
    """``out[cursor[k]] = row; cursor[k] += 1`` for each (k, row) in order (stable).

    Parameters
    ----------
    keys
        Key of each row (indices into ``cursor``).
    rows
        Value written for each row.
    cursor
        Next output position per key, advanced in place.
    out
        Output array, written in place.
    """
    for i in range(keys.shape[0]):
        k = keys[i]
        out[cursor[k]] = rows[i]
        cursor[k] += 1
