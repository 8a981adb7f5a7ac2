"""The store's one external sort: rows bucketed by key range through spill files, each bucket sorted.

Two users share :func:`spill_buckets` / :func:`load_rows` (the bucket
files ``<spill>/b<bucket>/<piece>.rows``):

* :class:`~connectome_dask.store.writer.StoreWriter` puts incoming blocks in
  (pre, post) order (buckets by ``pre`` range, each sorted by the key);
* :func:`_post_order` copies columns from row order to (post, row) order for
  the index (buckets by ``post`` range, each put in order by a stable counting
  sort), or re-reads the table once per range when the spill would not fit
  on disk (:func:`_post_order_rereading`); a new store's writer fills the
  same post-range spill from its sorted blocks as it writes them
  (:class:`PostOrderSpill`) instead of reading the columns back.

Rows are spilled, loaded and put in order **row-major**: one packed record
per row (a numpy structured array, :func:`pack_rows`), so moving a row to
its sorted place is one random read of its record instead of one per
column, and a bucket's piece is the records packed straight in bucket
order. A sorted bucket comes out as contiguous columns
(:func:`take_columns`: each record read once, its fields written a tile
of rows at a time; 4 M rows of 11 columns in random order: 0.12 s on two
threads, against 0.09 s for numpy's take of the records as rows of words
plus 0.15 s to copy their fields out, on this machine), which the arrays compress and
the tables scan as they are.

Memory: two buckets (one written while the next is sorted) plus one chunk per column. Imports
:mod:`~connectome_dask.store.format` (array creation) and, lazily, the
kernels of :mod:`connectome_dask.kernels.scatter`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._fsutil import rmtree_real, write_marker
from .._threads import Background
from ..errors import StoreError
from .arrays import ChunkStream, read_array
from .format import _create_array

__all__ = ["HeldBuckets", "PostOrderSpill", "iter_bucket", "load_bucket", "load_rows", "pack_rows", "post_ranges", "spill_buckets",
           "spill_fits", "take_columns", "write_piece", "write_rows"]

#: bytes of records :func:`pack_rows` fills at a time (a slice that stays in a core's cache)
_PACK_BYTES = 1 << 19

#: key of the records' buffer in a ``buffers`` mapping (:func:`load_rows`; a column's is ``col:<name>``)
_ROWS_BUFFER = "<rows>"


def _bucket_dir(spill: Path, b: int) -> Path:
    return spill / f"b{b:06d}"


def _record_dtype(names: Iterable[str], dtypes: Iterable[Any]) -> np.dtype:
    """The packed record of these fields: widest first (each field aligned to its size), no padding
    between them, the record rounded up to whole 8-byte words."""
    fields = sorted(zip(names, [np.dtype(d) for d in dtypes], strict=True), key=lambda f: -f[1].itemsize)
    offsets = np.concatenate([[0], np.cumsum([f.itemsize for _, f in fields])]).astype(int)
    size = -(-int(offsets[-1]) // 8) * 8
    return np.dtype({"names": [c for c, _ in fields], "formats": [f for _, f in fields],
                     "offsets": offsets[:-1].tolist(), "itemsize": size})


def pack_rows(block: Mapping[str, np.ndarray], order: np.ndarray | None = None,
              buffers: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The block's columns as one packed record per row (a structured array), optionally in ``order``.

    Parameters
    ----------
    block
        Column name -> 1-D array, all of one length.
    order
        A permutation of the rows: record ``i`` is row ``order[i]`` (default:
        the rows in order). The columns are read in row order and each value
        written straight into its record
        (:func:`~connectome_dask.kernels.scatter.scatter_words`), a slice of
        rows at a time so that the records they go to stay in cache: when
        ``order`` is a bucket split, each slice writes to one run per bucket.
    buffers
        Arrays reused from call to call (fresh memory costs a page fault per
        page); the result is then a view of one, valid until the next pack
        into the same buffers.

    Returns
    -------
    numpy.ndarray
        Structured: the fields widest first, one after another, the record
        rounded up to whole 8-byte words (zeroed padding); ``rows[c]`` is a
        view of column ``c``.

    Raises
    ------
    StoreError
        ``order`` is not as long as the columns (an internal error).

    Examples
    --------
    >>> rows = pack_rows({"pre": np.array([3, 1], np.int32), "w": np.array([0.5, 2.0])})
    >>> rows.dtype.itemsize, rows["pre"].tolist(), rows[1]["w"]
    (16, [3, 1], np.float64(2.0))
    >>> pack_rows({"pre": np.array([3, 1, 4], np.int32)}, order=np.array([2, 0, 1]))["pre"].tolist()
    [4, 3, 1]
    """
    from ..kernels.scatter import scatter_words

    cols = {c: np.asarray(a) for c, a in block.items()}
    dt = _record_dtype(cols, [a.dtype for a in cols.values()])
    n = len(next(iter(cols.values()))) if cols else 0
    rows = _buffer(buffers, "<packed>", n, np.dtype((np.void, dt.itemsize))).view(dt)
    used = sum(a.dtype.itemsize for a in cols.values())
    if used < dt.itemsize:
        rows.view(np.uint8).reshape(n, dt.itemsize)[:, used:] = 0
    if order is None:
        # a slice of records at a time, every column into it: the slice stays in cache while its fields
        # are filled (a column at a time over all records moved every record's cache lines per column)
        step = max(1, _PACK_BYTES // dt.itemsize)
        for s in range(0, n, step):
            part = rows[s:s + step]
            for c, a in cols.items():
                part[c] = a[s:s + step]
        return rows
    if len(order) != n:
        raise StoreError(f"internal error: pack_rows takes a permutation of the {n} rows, got {len(order)}")
    dest = np.empty(n, dtype=np.int64)
    dest[order] = np.arange(n, dtype=np.int64)  # the record each row goes to
    step = max(1, _PACK_BYTES // 64)
    offsets = {c: int(dt.fields[c][1]) for c in cols} if dt.fields else {}
    words = {}
    for c, a in cols.items():
        size = a.dtype.itemsize
        if size in (1, 2, 4, 8) and a.ndim == 1:  # contiguous, or a field of other records
            w = np.dtype(f"u{size}")
            words[c] = (rows.view(w).reshape(n, dt.itemsize // size), offsets[c] // size, a.view(w).reshape(-1, 1))
    for s in range(0, n, step):
        for dst, first, src in words.values():
            scatter_words(dst, first, src[s:s + step], dest[s:s + step])
    for c, a in cols.items():  # other dtypes (none in a store): numpy's gather and a strided copy
        if c not in words:
            rows[c] = a[order]
    return rows


def _void(rows: np.ndarray) -> np.ndarray:
    """The records as opaque items of their size (how a spill piece stores them)."""
    return rows.view(np.dtype((np.void, rows.dtype.itemsize)))


def take_columns(rows: np.ndarray, order: np.ndarray, buffers: dict[str, np.ndarray] | None = None,
                 columns: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """``rows[order]`` as contiguous columns: each record read once, every field written to its column.

    What numpy's take of the records then a copy of each field would do in two passes
    (the sorted records, then one strided pass over them per column, which
    drags every record's cache lines in again for each field): one random
    read per record (:func:`~connectome_dask.kernels.scatter.gather_fields`),
    on two threads for large blocks, and columns that the arrays and tables
    take as they are.

    Parameters
    ----------
    rows
        Packed records (:func:`pack_rows`), contiguous.
    order
        Record of each output row.
    buffers
        Arrays reused from block to block (as in :func:`load_rows`); the
        columns are then views of them, valid until the next take into the
        same buffers.
    columns
        The fields wanted (default: all), in the order of the result.

    Returns
    -------
    dict of str to numpy.ndarray
        Column name -> its values in ``order``, of the field's dtype.

    Raises
    ------
    StoreError
        ``order`` names a record outside ``rows`` (an internal error: the
        kernel does no bounds checks, so it is checked here).

    Examples
    --------
    >>> rows = pack_rows({"a": np.array([10, 20, 30]), "b": np.array([1.5, 2.5, 3.5], np.float32)})
    >>> {c: v.tolist() for c, v in take_columns(rows, np.array([2, 0])).items()}
    {'a': [30, 10], 'b': [3.5, 1.5]}
    """
    from ..kernels.scatter import gather_fields

    dt = rows.dtype
    names = list(columns if columns is not None else (dt.names or ()))
    n, m = len(rows), len(order)
    by_size: dict[int, list[tuple[str, int, np.dtype]]] = {8: [], 4: [], 2: [], 1: []}
    other = []
    for c in names:
        fdt, off = dt.fields[c][0], int(dt.fields[c][1])  # type: ignore[index]
        size = fdt.itemsize
        if size in by_size and dt.itemsize % size == 0 and off % size == 0 and fdt.kind in "biuf" and not fdt.shape:
            by_size[size].append((c, off // size, fdt))
        else:
            other.append(c)
    args: list[np.ndarray] = []
    outs: dict[int, np.ndarray] = {}
    src = rows if rows.flags.c_contiguous else np.ascontiguousarray(rows)
    for size, fields in by_size.items():
        w = np.dtype(f"u{size}")
        if fields:
            outs[size] = _buffer(buffers, f"<cols{size}>", len(fields) * m, w).reshape(len(fields), m)
            args += [src.view(w).reshape(n, dt.itemsize // size), np.array([f[1] for f in fields], np.int64),
                     outs[size]]
        else:
            args += [np.zeros((0, 1), w), np.zeros(0, np.int64), np.zeros((0, m), w)]
    order = np.asarray(order, dtype=np.int64)
    if len(order) and (int(order.min()) < 0 or int(order.max()) >= n):  # the kernel does no bounds checks
        raise StoreError(f"internal error: take_columns' order reaches outside the {n} records")
    if m < 1 << 16 or (os.cpu_count() or 1) < 2:
        gather_fields(order, 0, m, *args)
    else:
        from concurrent.futures import ThreadPoolExecutor

        h = m // 2
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda a, b: gather_fields(order, a, b, *args), (0, h), (h, m)))
    got = {c: outs[size][k].view(fdt) for size, fields in by_size.items() for k, (c, _, fdt) in enumerate(fields)}
    for c in other:  # other dtypes (none in a store): numpy's gather of the field
        got[c] = rows[c][order]
    return {c: got[c] for c in names}


def spill_buckets(spill: Path, bounds: np.ndarray, keys: np.ndarray, block: Mapping[str, np.ndarray],
                  pieces: list[int], buffers: dict[str, np.ndarray] | None = None,
                  held: HeldBuckets | None = None) -> None:
    """Split ``block``'s rows by the ranges ``bounds`` of ``keys`` into spill files, one piece per bucket.

    Rows keep their order inside a bucket. Bucket ``b`` holds keys in
    ``[bounds[b], bounds[b + 1])``; its pieces are ``spill/b<b>/<piece>.rows``
    (:func:`write_rows`: packed records, no pickle) and ``pieces[b]`` counts
    them (updated here). Read a bucket back with :func:`load_rows` (records)
    or :func:`load_bucket` (columns).

    Parameters
    ----------
    spill
        The spill directory.
    bounds
        Sorted bucket boundaries of the keys (``len(bounds) - 1`` buckets).
    keys
        One key per row of ``block``.
    block
        Column name -> array, one value per row (packed here, :func:`pack_rows`).
    pieces
        Pieces written so far per bucket; incremented for each bucket written to.
    buffers
        Arrays reused from call to call for the bucket-ordered rows (as in
        :func:`pack_rows`); only for calls made one at a time.
    held
        Buckets kept in memory instead of files (:class:`HeldBuckets`): their
        rows are copied there, and read back with :meth:`HeldBuckets.pop`.

    Raises
    ------
    StoreError
        A key outside ``[bounds[0], bounds[-1])`` (an internal error: the
        callers' keys are neuron indices of the buckets' range).
    """
    nb = len(bounds) - 1
    lo, hi = int(bounds[0]), int(bounds[-1])
    if len(keys) and (int(keys.min()) < lo or int(keys.max()) >= hi):
        raise StoreError(f"internal error: spill keys {int(keys.min())}..{int(keys.max())} outside [{lo}, {hi})")
    if nb <= 2**15 and hi - lo <= max(4 * len(keys), 1 << 20):
        # keys are small ints (neuron indices): each key's bucket from a table of them (cache-sized), not
        # a binary search per key; int16 bucket numbers make numpy's stable sort a radix sort
        widths = np.diff(np.asarray(bounds, dtype=np.int64)).astype(np.int64)
        table = np.repeat(np.arange(nb, dtype=np.int16), widths)
        b = table[np.asarray(keys) - lo] if lo else table[keys]
    else:
        b = np.searchsorted(bounds, keys, side="right") - 1
        b = b.astype(np.int16) if nb <= 2**15 else b
    order = np.argsort(b, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=nb))])
    nonempty = np.flatnonzero(starts[1:] > starts[:-1]).tolist()
    # the rows in bucket order, packed as they are gathered; each bucket's piece a slice of them
    rows = pack_rows(block, None if len(nonempty) <= 1 else order, buffers=buffers)
    for k in nonempty:
        if held is not None and held.holds(k):
            held.put(k, rows[starts[k]:starts[k + 1]])
        else:
            write_rows(spill, k, pieces[k], rows[starts[k]:starts[k + 1]])
        pieces[k] += 1


class HeldBuckets:
    """Spill buckets kept in memory, up to a byte budget: the rest go to spill files.

    An external sort that fits in memory need not write its buckets to disk
    and read them back: at 20 M rows of 48-byte records that is ~1 GB
    copied into the page cache (1.6 s of system time on this machine, plus
    the kernel's write-back) and copied out again. The sizes of the buckets
    are known before the first row arrives (from the first pass's counts),
    so each held bucket is one array of its exact size, filled piece by
    piece in order and handed back whole, without a copy, by :meth:`pop`
    (which drops the reference: the memory goes as soon as its consumer is
    done). The first buckets are held, the ones consumed first.

    Parameters
    ----------
    rows
        Rows of each bucket (``len(bounds) - 1`` of them).
    itemsize
        Bytes of one record (:func:`pack_rows`' record of the spilled columns).
    budget
        Bytes of records held at most; ``0`` holds none.

    Raises
    ------
    StoreError
        A negative budget or bucket size.

    Examples
    --------
    >>> held = HeldBuckets([2, 3], itemsize=8, budget=16)
    >>> held.holds(0), held.holds(1), held.nbytes
    (True, False, 16)
    >>> held.put(0, pack_rows({"a": np.array([5, 6])}))
    >>> held.pop(0)["a"].tolist()
    [5, 6]
    """

    def __init__(self, rows: Iterable[int], itemsize: int, budget: int):
        sizes = np.asarray(list(rows), dtype=np.int64)
        if int(budget) < 0 or (len(sizes) and int(sizes.min()) < 0):
            raise StoreError(f"internal error: held buckets need a budget and sizes >= 0, got {budget}")
        fits = (np.cumsum(sizes * int(itemsize)) <= int(budget)) & (sizes > 0)
        self.sizes = sizes
        self.itemsize = int(itemsize)
        self._held = set(np.flatnonzero(fits).tolist())
        self._arrays: dict[int, np.ndarray] = {}
        self._filled = dict.fromkeys(self._held, 0)
        self.nbytes = int(sizes[fits].sum()) * self.itemsize

    def holds(self, b: int) -> bool:
        """Whether bucket ``b`` is kept in memory.

        Parameters
        ----------
        b
            The bucket number.

        Returns
        -------
        bool
        """
        return b in self._held

    def put(self, b: int, rows: np.ndarray) -> None:
        """Copy the next piece of held bucket ``b`` after its earlier pieces.

        Parameters
        ----------
        b
            A held bucket.
        rows
            Packed records (:func:`pack_rows`) of ``itemsize`` bytes.

        Raises
        ------
        StoreError
            More rows than the bucket's size, records of another size, or a
            bucket not held (internal errors: the sizes come from the counts).
        """
        if b not in self._held:
            raise StoreError(f"internal error: bucket {b} is not held in memory")
        if rows.dtype.itemsize != self.itemsize:
            raise StoreError(f"internal error: held bucket {b} takes {self.itemsize}-byte records, "
                             f"got {rows.dtype.itemsize}-byte ones")
        start = self._filled[b]
        stop = start + len(rows)
        if stop > int(self.sizes[b]):
            raise StoreError(f"internal error: held bucket {b} of {int(self.sizes[b])} rows got {stop}")
        arr = self._arrays.get(b)
        if arr is None:
            arr = self._arrays[b] = np.empty(int(self.sizes[b]), dtype=rows.dtype)
        elif arr.dtype != rows.dtype:
            raise StoreError(f"internal error: held bucket {b} holds records of {arr.dtype} and of {rows.dtype}")
        # copied as whole records (void), not field by field: 5 ms instead of 35-42 ms per 1 M 48-byte records
        raw = np.dtype((np.void, self.itemsize))
        arr[start:stop].view(raw)[...] = np.ascontiguousarray(rows).view(raw)
        self._filled[b] = stop

    def pop(self, b: int) -> np.ndarray | None:
        """The records of held bucket ``b`` (its pieces in order), forgotten here; None if it got none.

        Parameters
        ----------
        b
            A held bucket.

        Returns
        -------
        numpy.ndarray or None

        Raises
        ------
        StoreError
            The bucket got fewer rows than its size (an internal error).
        """
        filled = self._filled.pop(b, 0)
        self._held.discard(b)
        arr = self._arrays.pop(b, None)
        if filled != int(self.sizes[b]):
            raise StoreError(f"internal error: held bucket {b} of {int(self.sizes[b])} rows got {filled}")
        return arr

    def load(self, spill: Path, b: int, n_pieces: int, buffers: dict[str, np.ndarray] | None = None
             ) -> np.ndarray | None:
        """Bucket ``b``'s records: :meth:`pop` when it is held, else :func:`load_rows` of its spill file.

        Parameters
        ----------
        spill, b, n_pieces, buffers
            As for :func:`load_rows`.

        Returns
        -------
        numpy.ndarray or None
            Packed records; ``None`` when the bucket got no rows.

        Raises
        ------
        StoreError
            As :meth:`pop` and :func:`load_rows` raise.
        """
        if self.holds(b):
            return self.pop(b)  # the bucket's own array, forgotten here: freed once its consumer is done
        return load_rows(spill, b, n_pieces, buffers=buffers)

    def clear(self) -> None:
        """Drop every held bucket (a failed write's)."""
        self._held.clear()
        self._arrays.clear()
        self._filled.clear()


def write_rows(spill: Path, b: int, number: int, rows: np.ndarray) -> None:
    """Write piece ``number`` of spill bucket ``b``: packed records (:func:`pack_rows`), no pickle.

    The file ``spill/b<b>/<number>.rows`` holds three ``.npy`` records: the
    field names, their dtypes (``dtype.str``) and the rows as plain items of
    the record size.

    Parameters
    ----------
    spill
        The spill directory.
    b
        The bucket number.
    number
        The piece's number (pieces are read back by number, in order).
    rows
        Packed records.
    """
    d = _bucket_dir(spill, b)
    d.mkdir(parents=True, exist_ok=True)
    names = list(rows.dtype.names or ())
    with open(d / f"{int(number):06d}.rows", "wb") as fh:
        np.save(fh, np.array(names, dtype=str), allow_pickle=False)
        np.save(fh, np.array([rows.dtype[c].str for c in names], dtype=str), allow_pickle=False)
        np.save(fh, np.ascontiguousarray(_void(rows)), allow_pickle=False)


def load_rows(spill: Path, b: int, n_pieces: int, buffers: dict[str, np.ndarray] | None = None) -> np.ndarray | None:
    """The records of spill bucket ``b`` (pieces concatenated in order), then its files removed; None if empty.

    Parameters
    ----------
    spill
        The spill directory.
    b
        The bucket number.
    n_pieces
        Pieces written to the bucket (``pieces[b]`` of :func:`spill_buckets`).
    buffers
        Arrays to read into, reused from bucket to bucket (fresh memory costs
        a page fault per page): one too small is replaced here by a new one.
        The result is then a view of one, valid until the next load into the
        same buffers.

    Returns
    -------
    numpy.ndarray or None
        Packed records; ``None`` when nothing was spilled to the bucket.

    Raises
    ------
    StoreError
        Pieces of different fields, or a truncated piece (an internal error:
        spill files are written and read by this module only).
    """
    d = _bucket_dir(spill, b)
    if not d.exists() or n_pieces == 0:
        return None
    # pass 1, headers only: each piece's records (byte offset, rows), all of one record type
    where: list[tuple[int, int]] = []
    dt: np.dtype | None = None
    for j in range(n_pieces):
        path = d / f"{j:06d}.rows"
        with open(path, "rb") as fh:
            names = np.load(fh, allow_pickle=False).tolist()
            kinds = np.load(fh, allow_pickle=False).tolist()
            shape, item = _record_header(fh, path)
            piece_dt = _record_dtype(names, kinds) if len(names) == len(kinds) else None
            if piece_dt is None:
                raise StoreError(f"internal error: spill piece {path} names {len(names)} fields of {len(kinds)} dtypes")
            if item.itemsize != piece_dt.itemsize or item.kind != "V":
                raise StoreError(f"internal error: spill piece {path} holds {item}, not records of {piece_dt}")
            if dt is None:
                dt = piece_dt
            elif piece_dt != dt:
                raise StoreError(f"internal error: spill bucket {d} holds records of {dt} and of {piece_dt}")
            where.append((fh.tell(), int(shape[0])))
    assert dt is not None
    # pass 2: every piece read straight into its slice of one array (concatenating the loaded pieces
    # cost ~1.9 s of copies and page faults at 20 M rows)
    out = _buffer(buffers, _ROWS_BUFFER, sum(r for _, r in where), np.dtype((np.void, dt.itemsize)))
    pos = 0
    for j, (off, rows) in enumerate(where):
        path = d / f"{j:06d}.rows"
        part = out[pos:pos + rows]
        with open(path, "rb", buffering=0) as fh:
            fh.seek(off)
            if fh.readinto(part.view(np.uint8).data) != part.nbytes:
                raise StoreError(f"internal error: spill piece {path} is truncated")
        pos += rows
    shutil.rmtree(d)
    return out.view(dt)


def write_piece(spill: Path, b: int, number: int, columns: Mapping[str, np.ndarray]) -> None:
    """Write piece ``number`` of spill bucket ``b``, every column in one file.

    Parameters
    ----------
    spill
        The spill directory.
    b
        The bucket number.
    number
        The piece's number (pieces are read back by number, in the order asked).
    columns
        Column name -> the piece's rows (plain 1-D arrays; no pickle).
    """
    d = _bucket_dir(spill, b)
    d.mkdir(parents=True, exist_ok=True)
    # one file per piece, every column in it (the column names first, then one .npy record each):
    # one file per column and piece cost ~1.5 s of opens and unlinks at 20 M rows
    with open(d / f"{int(number):06d}.npy", "wb") as fh:
        np.save(fh, np.array(list(columns), dtype=str), allow_pickle=False)
        for a in columns.values():
            np.save(fh, np.ascontiguousarray(a), allow_pickle=False)


def load_bucket(spill: Path, b: int, n_pieces: int, columns: Iterable[str],
                buffers: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray] | None:
    """Columns of spill bucket ``b`` (:func:`load_rows`, each asked column copied out), then its files removed.

    Parameters
    ----------
    spill
        The spill directory.
    b
        The bucket number.
    n_pieces
        Pieces written to the bucket (``pieces[b]`` of :func:`spill_buckets`).
    columns
        Columns to load.
    buffers
        Arrays to read into, by column, reused from bucket to bucket (as in
        :func:`load_rows`). The returned arrays are then views of them,
        valid until the next load into the same buffers.

    Returns
    -------
    dict of str to numpy.ndarray, or None
        ``None`` when nothing was spilled to the bucket.

    Raises
    ------
    StoreError
        The bucket lacks one of ``columns``, or a piece is truncated (an
        internal error: spill files are written and read by this module only).
    """
    rows = load_rows(spill, b, n_pieces, buffers=buffers)
    if rows is None:
        return None
    wanted = list(columns)
    names = rows.dtype.names or ()
    missing = [c for c in wanted if c not in names]
    if missing:
        raise StoreError(f"internal error: spill bucket {_bucket_dir(spill, b)} lacks columns {missing}")
    out = {}
    for c in wanted:
        out[c] = _buffer(buffers, f"col:{c}", len(rows), rows.dtype[c])  # never the key of the records
        out[c][...] = rows[c]
    return out


def iter_bucket(spill: Path, b: int, pieces: int | Iterable[int]) -> Iterable[dict[str, np.ndarray]]:
    """The pieces of spill bucket ``b`` one at a time, in order, each file removed once read.

    Memory: one piece (one block's rows of the bucket), where
    :func:`load_bucket` holds the whole bucket.

    Parameters
    ----------
    spill
        The spill directory.
    b
        The bucket number.
    pieces
        Pieces written to the bucket (``pieces[b]`` of :func:`spill_buckets`: pieces
        ``0 .. n - 1``), or the piece numbers to read, in order.

    Yields
    ------
    dict of str to numpy.ndarray
        Every column of the piece.

    Raises
    ------
    StoreError
        A piece is truncated or holds something else than plain 1-D records.
    """
    d = _bucket_dir(spill, b)
    if not d.exists():
        return
    for j in (range(pieces) if isinstance(pieces, int) else pieces):
        path = d / f"{j:06d}.npy"
        with open(path, "rb") as fh:
            names = np.load(fh, allow_pickle=False).tolist()
            piece = {}
            for name in names:
                shape, dt = _record_header(fh, path)
                a = np.empty(shape, dtype=dt)
                if fh.readinto(a.view(np.uint8).data) != a.nbytes:
                    raise StoreError(f"internal error: spill piece {path} is truncated")
                piece[name] = a
        path.unlink()
        yield piece
    shutil.rmtree(d)


def _buffer(buffers: dict[str, np.ndarray] | None, name: str, n: int, dtype: np.dtype) -> np.ndarray:
    """``n`` elements of ``buffers[name]`` when it holds that many of ``dtype``, else of a new array (kept there)."""
    if buffers is None:
        return np.empty(n, dtype=dtype)
    buf = buffers.get(name)
    if buf is None or buf.dtype != dtype or len(buf) < n:
        buf = buffers[name] = np.empty(max(n, len(buf) if buf is not None else 0), dtype=dtype)
    return buf[:n]


def _record_header(fh: Any, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the ``.npy`` record at the file position (left at its data); plain 1-D arrays only."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version not in ((1, 0), (2, 0)):  # np.save writes 3.0 only for structured dtypes' unicode names
        raise StoreError(f"internal error: spill piece {path} has an .npy record of version {version}")
    header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran, dt = header(fh)
    if len(shape) != 1 or fortran or dt.hasobject:
        raise StoreError(f"internal error: spill piece {path} holds a record that is not a plain 1-D array")
    return shape, dt


def post_ranges(post_off: np.ndarray, bucket: int) -> np.ndarray:
    """Post-index ranges holding at most ``bucket`` rows each (at least one neuron each), as boundaries.

    Parameters
    ----------
    post_off
        Row offsets per post index (``len = n_neurons + 1``).
    bucket
        Rows per range at most (a neuron with more rows gets a range of its own).

    Returns
    -------
    numpy.ndarray
        int64 boundaries ``[0, ..., n_neurons]``.

    Examples
    --------
    >>> post_ranges(np.array([0, 3, 4, 9, 10]), 4).tolist()
    [0, 2, 3, 4]
    """
    nn = len(post_off) - 1
    bounds = [0]
    while bounds[-1] < nn:
        lo = bounds[-1]
        hi = int(np.searchsorted(post_off, post_off[lo] + bucket, side="right")) - 1
        bounds.append(min(max(hi, lo + 1), nn))
    return np.asarray(bounds, dtype=np.int64)


def _post_outputs(dst: Mapping[str, Path], dtypes: Mapping[str, np.dtype], n: int,
                  chunk_rows: int) -> dict[str, Any]:
    return {c: _create_array(Path(dst[c]).parent, Path(dst[c]).name, n, str(dt), chunk_rows)
            for c, dt in dtypes.items()}


def _post_order(
    post_path: Path,
    src: Mapping[str, Path],
    dst: Mapping[str, Path],
    post_off: np.ndarray,
    n: int,
    chunk_rows: int,
    bucket: int,
    with_row: bool = False,
) -> None:
    """Copy columns from row order to (post, row) order: an external bucket sort.

    One pass over the table splits every chunk's rows by post-index range into
    spill files (rows stay in increasing order inside a range); each range,
    at most ``bucket`` rows, is then put in post order by a stable counting
    sort and written to its slice of the output (ranges are consecutive in
    post order). With ``with_row`` the row ids themselves go to ``dst["row"]``.
    Memory: one range plus one chunk per column.
    """
    import zarr

    dtypes = {c: zarr.open_array(str(p), mode="r").dtype for c, p in src.items()}
    if with_row:
        dtypes["row"] = np.dtype("int64")
    outs = _post_outputs(dst, dtypes, n, chunk_rows)
    if n == 0:
        return
    bounds = post_ranges(post_off, bucket)
    post_arr = zarr.open_array(str(post_path), mode="r")
    arrays = {c: zarr.open_array(str(p), mode="r") for c, p in src.items()}
    single = len(bounds) == 2
    spill = Path(dst[next(iter(dst))]).parent.parent / f"_spill-{uuid.uuid4().hex[:6]}"
    if not single and not spill_fits(spill.parent, n, dtypes):
        # not enough disk for the spill files: re-read the table once per range
        # instead, with 4x larger ranges (each range costs a full read)
        big = post_ranges(post_off, 4 * bucket).tolist()
        _post_order_rereading(post_arr, arrays, outs, big, post_off, n, chunk_rows, with_row)
        return
    pieces = [0] * (len(bounds) - 1)
    held: dict[str, list[np.ndarray]] = {c: [] for c in [*dtypes, "_post"]}
    loads: dict[str, np.ndarray] = {}
    packed: dict[str, np.ndarray] = {}  # the spilling thread's buffers (its calls run one at a time)
    if not single:
        spill.mkdir()
        write_marker(spill, "spill")
    try:
        # a chunk is split into the spill files on a second thread while the next one is read (fresh arrays)
        with Background("connectome-dask-post-order") as spilling:
            for s in range(0, n, chunk_rows):
                e = min(s + chunk_rows, n)
                block: dict[str, np.ndarray] = {c: read_array(a, src[c], s, e) for c, a in arrays.items()}
                block["_post"] = read_array(post_arr, post_path, s, e)
                if with_row:
                    block["row"] = np.arange(s, e, dtype=np.int64)
                if single:
                    for c in held:
                        held[c].append(block[c])
                    continue
                spilling.submit(spill_buckets, spill, bounds, block["_post"], block, pieces, packed)
        if single:
            whole = pack_rows({c: np.concatenate(v) for c, v in held.items()})
            held = {}
            _write_post_ranges(lambda k: whole, bounds, dtypes, outs, dst, post_off)
        else:
            _write_post_ranges(lambda k: load_rows(spill, k, pieces[k], buffers=loads),
                               bounds, dtypes, outs, dst, post_off)
    finally:
        rmtree_real(spill)


def spill_fits(where: Path, n: int, dtypes: Mapping[str, np.dtype]) -> bool:
    """Whether ``where``'s disk holds twice the post-order spill of ``n`` rows of these columns.

    Parameters
    ----------
    where
        A directory on the disk that would hold the spill.
    n
        Rows to spill.
    dtypes
        The spilled columns' dtypes (4 bytes a row are added for the post index).

    Returns
    -------
    bool

    Examples
    --------
    >>> spill_fits(Path("."), 10, {"pre": np.dtype("int32")})
    True
    """
    spill_bytes = n * (sum(np.dtype(dt).itemsize for dt in dtypes.values()) + 4)
    return shutil.disk_usage(where).free >= 2 * spill_bytes


class PostOrderSpill:
    """The post-order copy's spill files, filled from the (pre, post)-sorted blocks as a new store writes them.

    :class:`~connectome_dask.store.writer.StoreWriter` hands each sorted
    block here on its way out, so the by_post copy is made from rows already
    in memory: :func:`_post_order` would read every column back from the
    arrays just written (decompressing them) only to spill them the same way.
    Rows arrive in row order, so each range's pieces hold increasing rows,
    as :func:`_write_post_ranges`' stable counting sort needs.

    Parameters
    ----------
    spill
        A new spill directory (created here, marked as a spill folder).
    post_off
        Row offsets per post index of the whole table.
    bucket
        Rows per post range at most.
    dtypes
        The by_post columns and their dtypes (``row`` is added).
    memory
        Bytes of the spill kept in memory instead of files (:class:`HeldBuckets`:
        the first post ranges).
    """

    def __init__(self, spill: Path, post_off: np.ndarray, bucket: int, dtypes: Mapping[str, np.dtype],
                 memory: int = 0):
        self.spill, self.post_off = spill, post_off
        self.bounds = post_ranges(post_off, bucket)
        self.dtypes = {**{c: np.dtype(d) for c, d in dtypes.items()}, "row": np.dtype("int64")}
        self.pieces = [0] * (len(self.bounds) - 1)
        record = _record_dtype([*self.dtypes, "_post"], [*self.dtypes.values(), np.dtype("int32")])
        self.held = HeldBuckets(np.diff(post_off[self.bounds]), record.itemsize, memory)
        self.rows = 0
        self._buffers: dict[str, np.ndarray] = {}  # reused by each add (made one at a time)
        spill.mkdir()
        write_marker(spill, "spill")

    def add(self, block: Mapping[str, np.ndarray] | np.ndarray) -> None:
        """Spill the next sorted block's by_post columns (with their row numbers) by post range.

        Parameters
        ----------
        block
            Column name -> the block's rows, in (pre, post) order after the
            previous block's: ``post`` and every by_post column; or the
            block's sorted records (their fields are packed here).
        """
        n = len(block["post"])
        cols = {c: block[c] for c in self.dtypes if c != "row"}
        cols["row"] = np.arange(self.rows, self.rows + n, dtype=np.int64)
        cols["_post"] = np.asarray(block["post"]).astype(np.int32, copy=False)
        spill_buckets(self.spill, self.bounds, block["post"], cols, self.pieces, buffers=self._buffers,
                      held=self.held)
        self.rows += n

    def write(self, dst: Mapping[str, Path], chunk_rows: int) -> None:
        """Write the copy, then remove the spill (also when the write fails).

        Parameters
        ----------
        dst
            Column -> the array path to create, ``row`` (the row ids) included.
        chunk_rows
            Chunk length of the new arrays.
        """
        try:
            outs = _post_outputs(dst, self.dtypes, self.rows, chunk_rows)
            loads: dict[str, np.ndarray] = {}
            if self.rows:
                _write_post_ranges(lambda k: self.held.load(self.spill, k, self.pieces[k], buffers=loads),
                                   self.bounds, self.dtypes, outs, dst, self.post_off)
        finally:
            self.held.clear()
            rmtree_real(self.spill)


def _write_post_ranges(part_of: Callable[[int], np.ndarray | None], bounds: np.ndarray,
                       dtypes: Mapping[str, np.dtype], outs: Mapping[str, Any], dst: Mapping[str, Path],
                       post_off: np.ndarray) -> None:
    """Each post range's rows (``part_of(k)``: packed records of the columns and ``_post``, in row order;
    None = empty) put in (post, row) order by a stable counting sort and streamed to the outputs, range
    after range."""
    # the ranges are consecutive in post order: each output is written from row 0 on, chunk by chunk
    streams = {c: ChunkStream(outs[c], dst[c]) for c in dtypes}
    gathered: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
    queued = 0  # rows handed to the streams
    # a range is compressed and written on a second thread while the next is loaded and gathered, into
    # the other of two sets of buffers (the streams keep no reference once an append returns)
    with Background("connectome-dask-post-order") as writing:
        for k in range(len(bounds) - 1):
            part = part_of(k)
            if part is None:
                continue
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            base = int(post_off[lo])
            size = int(post_off[hi]) - base
            if base != queued:  # the streams are written in order: each range starts where the last ended
                raise StoreError("internal error: post-order ranges written out of order")
            queued = base + size
            cursor = post_off[lo:hi].copy() - base
            perm = np.empty(size, dtype=np.int64)
            _scatter_rows(part["_post"] - lo, np.arange(size, dtype=np.int64), cursor, perm)
            writing.submit(_append_columns, streams, take_columns(part, perm, buffers=gathered[k % 2],
                                                                  columns=list(dtypes)))
    for st in streams.values():
        st.close()


def _append_columns(streams: Mapping[str, ChunkStream], columns: Mapping[str, np.ndarray]) -> None:
    for c, a in columns.items():
        streams[c].append(a)


def _post_order_rereading(post_arr, arrays, outs, bounds, post_off, n, chunk_rows, with_row) -> None:
    """:func:`_post_order` without spill files: one read of the table per post range.

    Slower for many ranges (each range re-reads ``post`` and the columns) but
    needs no disk beyond the output; chosen when the spill would not fit.
    """
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        base = int(post_off[lo])
        size = int(post_off[hi]) - base
        cursor = post_off[lo:hi].copy() - base
        pos = np.empty(size, dtype=np.int64)  # output position of each selected row, in row order
        sel_rows = []
        got = 0
        for s in range(0, n, chunk_rows):
            e = min(s + chunk_rows, n)
            p = post_arr[s:e]
            sel = np.flatnonzero((p >= lo) & (p < hi))
            if len(sel) == 0:
                continue
            _scatter_rows(p[sel] - lo, np.arange(got, got + len(sel), dtype=np.int64), cursor, pos)
            sel_rows.append((s, e, sel))
            got += len(sel)
        # pos[j] = selected-row index that goes to output slot j; gather each column in turn
        for c, out in outs.items():
            vals = np.empty(size, dtype=out.dtype)
            off = 0
            for s, e, sel in sel_rows:
                block = np.arange(s, e, dtype=np.int64)[sel] if c == "row" and with_row else arrays[c][s:e][sel]
                vals[off : off + len(sel)] = block
                off += len(sel)
            out[base : base + size] = vals[pos]


def _scatter_rows(keys: np.ndarray, rows: np.ndarray, cursor: np.ndarray, out: np.ndarray) -> None:
    """Stable counting-sort scatter: out[cursor[k]++] = row, for rows in increasing order."""
    from .._kernels import scatter_rows

    # the kernel does no bounds checks: validate here (cheap next to the scatter)
    if len(keys) and (keys.min() < 0 or keys.max() >= len(cursor) or len(keys) > len(out)):
        raise StoreError("internal error: post index outside the range being sorted")
    scatter_rows(keys.astype(np.int64, copy=False), rows.astype(np.int64, copy=False), cursor, out)
