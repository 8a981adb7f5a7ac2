"""Ingest's one-pass float32 conversion against numpy's statement of the rule, bit for bit.

The rule (the general path of ``ingest.values``): ``float32((float64(v) +
shift) * scale)``; refused are non-finite inputs when the values must be finite
(coordinates), finite inputs the arithmetic makes non-finite, and finite
results that float32 cannot hold. The kernel must give the same bytes and
flag the first refused value; the ingest helpers hand a flagged or irregular
column (nulls, wrong list lengths, text) back to the general path.
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa
import pytest

from connectome_dask.ingest.values import _fast_float32, _fast_list_float32
from connectome_dask.kernels.convert import scaled_float32


def _reference(vals: np.ndarray, stride: int, shift: np.ndarray, scale: np.ndarray, finite: bool):
    v = vals.astype(np.float64).reshape(-1, stride)
    with np.errstate(over="ignore", invalid="ignore"):
        x = (v + shift) * scale
        f = x.astype(np.float32)
    refused = (np.isfinite(x) & np.isinf(f)) | (~np.isfinite(x) & (finite | np.isfinite(v)))
    flat = np.flatnonzero(refused.reshape(-1))
    return f.T, (int(flat[0]) if len(flat) else -1)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint32", "uint64", "float32", "float64"])
@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("finite", [True, False])
def test_the_kernel_is_numpys_arithmetic(dtype, stride, finite):
    rng = np.random.default_rng(zlib.crc32(f"{dtype}-{stride}-{finite}".encode()))
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    n = 3_000 * stride
    if info is not None:
        vals = rng.integers(max(info.min, -(2**62)), min(info.max, 2**62), n, endpoint=True).astype(dtype)
        vals[:5] = [info.min, info.max, 0, 1, info.max - 1][:5]  # extremes: rounding of large integers
    else:
        vals = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)).astype(dtype)
    shift = rng.uniform(-100, 100, stride)
    scale = rng.uniform(0.1, 50, stride)
    got, bad = scaled_float32(vals, stride, shift, scale, finite)
    ref, ref_bad = _reference(vals, stride, shift, scale, finite)
    assert got.dtype == np.float32 and got.shape == (stride, n // stride)
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
    assert bad == ref_bad


@pytest.mark.parametrize("finite", [True, False])
def test_refused_values_are_flagged_first_one_first(finite):
    vals = np.array([1.0, 2.0, np.inf, np.nan, 3.5e38, 1e300, -2.0], dtype=np.float64)
    for scale in (1.0, 4.0, 1e10):
        got, bad = scaled_float32(vals, 1, np.zeros(1), np.array([scale]), finite)
        ref, ref_bad = _reference(vals, 1, np.zeros(1), np.array([scale]), finite)
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
        assert bad == ref_bad
    assert scaled_float32(vals, 1, np.zeros(1), np.ones(1), True)[1] == 2  # inf, the first refused
    assert scaled_float32(vals, 1, np.zeros(1), np.ones(1), False)[1] == 4  # 3.5e38: beyond float32
    big = np.array([1.0, np.nan, 1e300])  # a finite value the arithmetic makes infinite, NaN allowed
    assert scaled_float32(big, 1, np.zeros(1), np.array([1e10]), False)[1] == 2
    assert scaled_float32(big, 1, np.zeros(1), np.array([1e10]), True)[1] == 1


def test_list_columns_go_fast_only_when_regular():
    fast = _fast_list_float32
    shift, scale = np.array([10.0, -3.0, 2.0]), np.array([4.0, 4.0, 40.0])
    rows = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    got = fast(pa.array(rows, pa.list_(pa.int64())), shift, scale)
    ref = ((np.array(rows, np.float64) + shift) * scale).astype(np.float32).T
    np.testing.assert_array_equal(got, ref)
    fixed = fast(pa.array(rows, pa.list_(pa.int64(), 3)), shift, scale)
    np.testing.assert_array_equal(fixed, ref)
    sliced = fast(pa.array([[0, 0, 0], *rows], pa.list_(pa.int64())).slice(1), shift, scale)
    np.testing.assert_array_equal(sliced, ref)  # the slice's offsets, not the buffer's start
    for bad in ([[1, 2, 3], [4, 5]], [[1, 2, 3], None], [[1, None, 3]], [["1", "2", "3"]], [[1.0, np.nan, 3.0]]):
        assert fast(pa.array(bad), shift, scale) is None  # the general path names the row


def test_plain_columns_go_fast_only_without_nulls():
    fast = _fast_float32
    got = fast(pa.array([0.25, 0.5, None]), 0.0, 1.0, finite=False)
    assert got is None  # a null is NaN by the general path's rule: it converts it
    got = fast(pa.array([0.25, np.nan, 1.0]), 0.0, 1.0, finite=False)
    np.testing.assert_array_equal(got, np.array([0.25, np.nan, 1.0], np.float32))
    assert fast(pa.array([0.25, np.nan]), 0.0, 1.0, finite=True) is None
    assert fast(pa.array(["1.5"]), 0.0, 1.0, finite=False) is None
    d = pa.array([1.0, 2.0, 1.0]).dictionary_encode()
    np.testing.assert_array_equal(fast(d, 1.0, 2.0, finite=True), np.array([4.0, 6.0, 4.0], np.float32))
