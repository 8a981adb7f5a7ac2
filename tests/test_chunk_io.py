"""The store's own chunk writer and reader against zarr-python.

``write_chunks`` / ``ChunkStream`` write chunk files of the store's layout
without zarr's pipeline, and ``read_array`` reads them the same way; the
reference is zarr-python itself: what they write must read back through
``zarr.open_array(...)[:]`` exactly, and what zarr writes must read back
through them. Arrays of another layout fall back to zarr on both sides.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from connectome_dask.store.arrays import ChunkStream, read_array, write_chunks
from connectome_dask.store.format import _create_array

DTYPES = ["int16", "int32", "int64", "float32", "float64", "uint8"]


def _values(dtype: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        v = rng.normal(0, 1e4, n).astype(dtype)
        v[::97] = np.nan
        return v
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 999, 1000, 1001, 5432])
def test_stream_writes_read_back_through_zarr(tmp_path, dtype, n):
    data = _values(dtype, n)
    arr = _create_array(tmp_path, "a", n, dtype, 1000)
    st = ChunkStream(arr, tmp_path / "a")
    rng = np.random.default_rng(n)
    s = 0
    while s < n:  # pieces of random sizes, some spanning several chunks
        k = int(rng.integers(1, 2500))
        st.append(data[s : s + k])
        s += k
    st.close()
    z = zarr.open_array(str(tmp_path / "a"), mode="r")
    assert np.array_equal(z[:], data, equal_nan=True)
    files = sorted(int(f) for f in os.listdir(tmp_path / "a" / "c")) if n else []
    assert files == list(range(-(-n // 1000)))  # every chunk has its file, no more
    for a, b in [(0, n), (3, 1500), (999, 1001), (n - 1, n)]:
        if 0 <= a <= b:
            assert np.array_equal(read_array(z, tmp_path / "a", a, b), data[a:b], equal_nan=True)


@pytest.mark.parametrize("n", [1, 999, 1000, 5432])
def test_stream_keeps_no_reference_to_appended_arrays(tmp_path, n):
    """Every piece comes from one buffer, overwritten after each append: the stored rows are still the data."""
    data = _values("int64", n, seed=3)
    arr = _create_array(tmp_path, "r", n, "int64", 1000)
    st = ChunkStream(arr, tmp_path / "r")
    buf = np.empty(2500, np.int64)
    rng = np.random.default_rng(n + 1)
    s = 0
    while s < n:
        k = min(int(rng.integers(1, 2500)), n - s)
        buf[:k] = data[s : s + k]
        st.append(buf[:k])
        buf[:] = -1  # the caller refills its buffer
        s += k
    st.close()
    assert np.array_equal(zarr.open_array(str(tmp_path / "r"), mode="r")[:], data)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zarr_writes_read_back_through_ours(tmp_path, dtype):
    data = _values(dtype, 2345, seed=1)
    arr = _create_array(tmp_path, "z", len(data), dtype, 500)
    arr[:] = data  # zarr's own pipeline
    for a, b in [(0, 2345), (0, 1), (499, 501), (2000, 2345), (7, 7)]:
        assert np.array_equal(read_array(arr, tmp_path / "z", a, b), data[a:b], equal_nan=True)


def test_the_last_chunk_is_padded_with_the_fill_value(tmp_path):
    arr = _create_array(tmp_path, "t", 1500, "int32", 1000)
    assert write_chunks(arr, tmp_path / "t", 0, np.arange(1500, dtype=np.int32))
    z = zarr.open_array(str(tmp_path / "t"), mode="r")
    assert np.array_equal(z[:], np.arange(1500))
    z2 = zarr.open_array(str(tmp_path / "t"), mode="r+")
    z2.resize((2000,))  # the padding shows once the array grows: zarr's fill value, as zarr writes it
    assert (z2[1500:] == -1).all()


def test_another_layout_is_written_and_read_by_zarr(tmp_path):
    path = tmp_path / "other"
    z = zarr.create_array(str(path), shape=(3000,), chunks=(1000,), dtype="int32",
                          compressors=zarr.codecs.ZstdCodec())  # no checksum: not the store's layout
    data = np.arange(3000, dtype=np.int32) * 7
    assert not write_chunks(z, path, 0, data)
    st = ChunkStream(z, path)
    st.append(data[:1234])
    st.append(data[1234:])
    st.close()
    assert np.array_equal(zarr.open_array(str(path), mode="r")[:], data)
    assert np.array_equal(read_array(z, path, 10, 2990), data[10:2990])


def test_a_chunk_frame_of_another_length_is_refused(tmp_path):
    """A valid checksum over a blosc frame of the wrong size (a foreign writer) is an error, not garbage rows."""
    import crc32c
    from numcodecs import blosc

    from connectome_dask.errors import StoreError

    arr = _create_array(tmp_path, "s", 2000, "int32", 1000)
    assert write_chunks(arr, tmp_path / "s", 0, np.arange(2000, dtype=np.int32))
    short = blosc.compress(np.arange(10, dtype=np.int32), b"lz4", 5, blosc.SHUFFLE, 0)
    (tmp_path / "s" / "c" / "1").write_bytes(short + crc32c.crc32c(short).to_bytes(4, "little"))
    with pytest.raises(StoreError, match=r"chunk 1 .*decodes to 40 bytes, 4000 expected"):
        read_array(arr, tmp_path / "s", 0, 2000)
    with pytest.raises(StoreError, match=r"chunk 1 .*decodes to 40 bytes"):
        read_array(arr, tmp_path / "s", 1500, 1600)  # a part of the chunk too


@pytest.mark.parametrize("layout", ["store", "other"])
def test_a_stream_grows_an_empty_array(tmp_path, layout):
    """From an empty array (the chunked appender's case) the stream grows it to the rows written."""
    path = tmp_path / "g"
    if layout == "store":
        z = _create_array(tmp_path, "g", 0, "int64", 1000)
    else:
        z = zarr.create_array(str(path), shape=(0,), chunks=(1000,), dtype="int64",
                              compressors=zarr.codecs.ZstdCodec())
    data = np.arange(3456, dtype=np.int64) * 3
    st = ChunkStream(z, path)
    for s in range(0, len(data), 700):
        st.append(data[s : s + 700])
    st.close()
    back = zarr.open_array(str(path), mode="r")
    assert back.shape == (3456,) and np.array_equal(back[:], data)
