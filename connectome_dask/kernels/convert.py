"""numba kernel for ingest's number conversion: source values to stored float32 in one pass.

A downloaded release holds positions as lists of voxel integers (CAVE, FlyWire)
or as float columns, and confidences as float64. Ingest stores float32 nm,
refusing missing coordinates and values that float32 cannot hold. In numpy
that is a float64 copy, a finiteness mask, the unit arithmetic (two
temporaries), the float32 cast and an overflow mask per column: ~2.5 s of
temporaries at 20 M rows. This loop reads each value once and writes its
float32 once; what it flags, the caller re-reads the slow way to name the
offending row.

The arithmetic is numpy's, in the same order and precision:
``float32((float64(v) + shift) * scale)``, rounded to nearest (no fast-math,
and an add-then-multiply has no fused form), so the stored bytes equal the
numpy path's.

Nothing here imports from the rest of the package.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["scaled_float32"]

@numba.njit(cache=True, nogil=True)
def scaled_float32(values, stride, shift, scale, finite):
    """``float32((values + shift[k]) * scale[k])`` for the ``k``-th of every ``stride`` values, checked.

    Parameters
    ----------
    values
        Numeric 1-D array: ``n * stride`` values, ``stride`` per row (the
        flattened values of a list column, or one column with ``stride=1``).
    stride
        Values per row.
    shift, scale
        float64 ``(stride,)``: the offset added to, and the factor applied
        to, the ``k``-th value of each row.
    finite
        Refuse NaN and infinite values (coordinates); otherwise they pass
        through (a missing confidence stays NaN).

    Returns
    -------
    out : numpy.ndarray
        float32 ``(stride, n)``: row ``k`` holds every row's ``k``-th value.
    bad : int
        Index in ``values`` of the first refused value (non-finite with
        ``finite``, or finite but beyond float32 after the arithmetic), ``-1``
        when none.

    Examples
    --------
    >>> out, bad = scaled_float32(np.array([1, 2, 3, 4, 5, 6]), 3, np.zeros(3), np.array([4.0, 4.0, 40.0]), True)
    >>> out.tolist(), bad
    ([[4.0, 16.0], [8.0, 20.0], [120.0, 240.0]], -1)
    >>> scaled_float32(np.array([1.0, np.nan]), 1, np.zeros(1), np.ones(1), True)[1]
    1
    >>> scaled_float32(np.array([1e39]), 1, np.zeros(1), np.ones(1), False)[1]
    0
    """
    n = len(values) // stride
    out = np.empty((stride, n), dtype=np.float32)
    bad = -1
    for i in range(n):
        for k in range(stride):
            v = np.float64(values[i * stride + k])
            x = (v + shift[k]) * scale[k]
            f = np.float32(x)
            if np.isfinite(x):
                if np.isinf(f) and bad < 0:  # beyond float32
                    bad = i * stride + k
            elif (finite or np.isfinite(v)) and bad < 0:  # non-finite input refused, or made non-finite
                bad = i * stride + k
            out[k, i] = f
    return out, bad
