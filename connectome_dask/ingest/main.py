""":func:`ingest`: the two passes, units, target checks and progress bars."""

from __future__ import annotations

import contextlib
import operator
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from .. import config
from .._compute import progress_bar
from .._fsutil import check_name, scratch_dir
from .._threads import Background
from ..errors import IngestError
from ..kernels import hashing as _hashing
from ..labels import neuprint_label
from ..store import DEFAULT_CHUNK_ROWS, Connectome, StoreWriter
from ..units import LENGTH_UNITS, VOXEL_UNITS, parse_units
from . import dialects as _dialects
from . import neo4j as _neo4j
from . import release_neurons as _release_neurons
from .neurons import _load_neurons, _merge_neurons
from .plan import _apply_columns, _check_schema, _make_plan, _Plan
from .sources import (
    _count_rows,
    _csv_read_options,
    _file_format,
    _resolve_source,
    _schema_of,
    _Source,
)
from .values import (
    _as_text,
    _check_finite,
    _check_roi_name,
    _decode,
    _fast_float32,
    _fast_list_float32,
    _ids_to_int64,
    _list_to_xyz,
    _roi_codes,
    _roi_values,
    _to_float32,
    _to_float64,
)

__all__ = ["DEFAULT_BATCH_ROWS", "DEFAULT_BUCKET_ROWS", "ingest"]

DEFAULT_BATCH_ROWS = 1 << 20


DEFAULT_BUCKET_ROWS = 1 << 22


# record batches read ahead by the scanner (each holds batch_rows rows of every read column)
_READAHEAD = 1


_MAX_CHUNK_ROWS = 1 << 27  # a larger Zarr chunk of int64 exceeds the codecs' 2 GiB limit


@dataclass
class _Scan:
    body_ids: np.ndarray
    pre_ids: np.ndarray
    pre_counts: np.ndarray
    n_rows: int
    roi_names: list[str]
    file_rows: dict[str, int]
    # synapses per body on each side (rows, or sums of weight for connection stores): the label rule
    pre_syn: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    post_syn: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    # every row's (pre, post) positions among tally_ids, kept from pass 1 for pass 2 (None: not kept)
    kept: _KeptIds | None = None
    tally_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)


class _KeptIds:
    """Pass 1's ID positions of every row, kept (up to a byte budget) so that pass 2 reads no ID column.

    Pass 1 already decodes, validates and hashes both body ID columns; pass 2
    read and probed them again (~0.8 CPU-seconds at 20 M rows, of ~19). The
    positions index the tally's IDs in the order they arrived, so after
    pass 1 a 139 k-entry table maps them to dense indices
    (:meth:`take`). Memory: 8 bytes a row, each batch's freed as pass 2
    takes it; above the budget nothing is kept (pass 2 reads the IDs).
    """

    def __init__(self, budget: int) -> None:
        self.budget = int(budget)
        self.nbytes = 0
        self.files: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        self.dropped = self.budget <= 0

    def add(self, file: str, offset: int, a: np.ndarray, b: np.ndarray) -> None:
        if self.dropped:
            return
        self.nbytes += 8 * len(a)
        if self.nbytes > self.budget:
            self.files, self.dropped = {}, True
            return
        self.files.setdefault(file, []).append((offset, a.astype(np.int32), b.astype(np.int32)))

    def take(self, file: str, offset: int, n: int, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dense (pre, post) indices of rows ``[offset, offset + n)`` of ``file``; the pieces used are dropped.

        Pass 2's batches are pass 1's (the same reader and batch size), so a
        batch is one kept piece; the rows are gathered across pieces if not.
        """
        pieces = self.files.get(file, [])
        parts_a, parts_b = [], []
        want, stop = offset, offset + n
        while want < stop:
            if not pieces or pieces[0][0] > want:
                raise IngestError(f"{file} changed while being ingested: rows from {want} on were not in pass 1",
                                  file=file)
            start, a, b = pieces[0]
            hi = min(stop, start + len(a))
            if hi > want:
                parts_a.append(a[want - start:hi - start])
                parts_b.append(b[want - start:hi - start])
                want = hi
            if hi >= start + len(a):
                pieces.pop(0)
        a = parts_a[0] if len(parts_a) == 1 else np.concatenate(parts_a) if parts_a else np.zeros(0, np.int32)
        b = parts_b[0] if len(parts_b) == 1 else np.concatenate(parts_b) if parts_b else np.zeros(0, np.int32)
        return rank[a], rank[b]


class _Tally:
    """Per-body row counts (and weight sums) of both sides over the batches of pass 1.

    The distinct IDs seen so far live in a hash table
    (:mod:`connectome_dask.kernels.hashing`): a batch's pre and post IDs are
    probed there (~2x faster than a ``pandas.factorize`` of the batch), only the
    IDs the table misses are made unique and added (after the first batches of
    a whole-brain table, hardly any), and ``np.bincount`` of the positions
    gives the batch's counts. Memory: the distinct IDs and their counts.
    """

    def __init__(self) -> None:
        self._ids = np.zeros(0, dtype=np.int64)
        self._tab = _hashing.build_id_table(self._ids)
        self._vals: np.ndarray | None = None  # (IDs, 2 or 4 counts): its width is set by the first batch

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        pos, missing = _id_slots(self._tab, ids)
        if missing:
            miss = pos < 0
            new = np.unique(ids[miss])
            first = len(self._ids)
            self._ids = np.concatenate([self._ids, new])
            if 2 * len(self._ids) <= len(self._tab):  # room: the new IDs go in (a rebuild per batch cost ~0.2 s)
                _hashing.insert_ids(self._tab, new, first)
            else:  # twice the room needed, so rebuilds stay rare as IDs keep arriving
                self._tab = _hashing.build_id_table(self._ids, 4 * len(self._ids))
            pos[miss] = _id_slots(self._tab, ids[miss])[0]
        return pos

    def add(self, pre: np.ndarray, post: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Count a batch; returns its rows' positions among :attr:`ids` (the order IDs arrived in)."""
        a = self._positions(pre)
        b = self._positions(post)
        m = len(self._ids)
        cols = [np.bincount(a, minlength=m), np.bincount(b, minlength=m)]
        if w is not None:
            cols += [_sums(a, w, m), _sums(b, w, m)]
        batch = np.stack(cols, axis=1).astype(np.int64, copy=False)
        if self._vals is None:
            self._vals = batch
            return a, b
        if len(self._vals) < m:  # the batch brought new IDs
            self._vals = np.concatenate([self._vals, np.zeros((m - len(self._vals), batch.shape[1]), np.int64)])
        self._vals += batch
        return a, b

    @property
    def ids(self) -> np.ndarray:
        """The distinct IDs in the order they arrived (what :meth:`add`'s positions index)."""
        return self._ids

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted distinct IDs and their counts: rows as pre, rows as post[, weight as pre, weight as post]."""
        if self._vals is None or not len(self._ids):
            return np.zeros(0, np.int64), np.zeros((0, 2), np.int64)
        order = np.argsort(self._ids, kind="stable")
        return self._ids[order], self._vals[order]


#: ID lookups of at least this many IDs are split over two threads (the probe kernel releases the GIL)
_THREADED_IDS = 1 << 18


def _id_slots(tab: np.ndarray, ids: np.ndarray, dtype: Any = np.int64) -> tuple[np.ndarray, int]:
    """Positions of ``ids`` in the table (``-1`` = absent) as ``dtype``, and how many are absent.

    :func:`~connectome_dask.kernels.hashing.id_slots_into`, the halves of one
    output array filled on two threads for large batches: pass 1 and the
    conversion of pass 2 run in the calling thread while the second core
    waits on the next batch's read; half the probes go there.
    """
    n = len(ids)
    out = np.empty(n, dtype=dtype)
    if n < _THREADED_IDS or (os.cpu_count() or 1) < 2:
        return out, int(_hashing.id_slots_into(tab, ids, out))
    from concurrent.futures import ThreadPoolExecutor

    h = n // 2
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(_hashing.id_slots_into, tab, ids[h:], out[h:])
        missing = _hashing.id_slots_into(tab, ids[:h], out[:h])
        return out, int(missing + fut.result())


def _sums(codes: np.ndarray, w: np.ndarray, m: int) -> np.ndarray:
    """Exact integer sums of ``w`` per code (bincount's float64 sums are exact below 2**53)."""
    w = np.asarray(w, dtype=np.int64)
    if len(w) and int(np.abs(w).max()) * len(w) < 2**53:
        return np.rint(np.bincount(codes, weights=w, minlength=m)).astype(np.int64)
    out = np.zeros(m, dtype=np.int64)
    np.add.at(out, codes, w)
    return out


def _weights(arr: pa.Array, file: str, column: str, offset: int) -> np.ndarray:
    """Synapse counts of connection rows: integers of at least 1 (checked in pass 1, before any work)."""
    a = _decode(arr)
    if a.null_count:
        i = int(np.flatnonzero(a.is_null().to_numpy(zero_copy_only=False))[0])
        raise IngestError.at(file, column, offset + i, "synapse count is missing")
    if not pa.types.is_integer(a.type):
        a = pa.array(_to_float64(a, file, column, offset, "synapse count"))
    v = a.to_numpy(zero_copy_only=False)
    bad = (v < 1) | (v != np.floor(v))
    if bad.any():
        i = int(np.argmax(bad))
        raise IngestError.at(file, column, offset + i, f"synapse count {v[i]!r} of a connection must be a "
                             "positive integer", v[i].item())
    return v.astype(np.int64)


def _batches(
    frag: Any, columns: list[str], batch_rows: int, file: str, plan: _Plan, fmt: str
) -> Iterator[pa.RecordBatch]:
    prep = plan.prep(file) if plan.prep is not None else None
    offset = 0
    try:
        for batch in frag.to_batches(
            columns=columns,
            batch_size=batch_rows,
            batch_readahead=_READAHEAD,
            fragment_readahead=1,
            use_threads=True,
        ):
            if prep is not None and batch.num_rows:
                batch = prep(batch, offset)
            offset += batch.num_rows
            yield batch
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        # corrupt or truncated pages, failed page checksums, compression errors, I/O errors,
        # and CSV values that do not fit the types inferred from the first block
        if fmt == "csv" and isinstance(e, pa.ArrowInvalid | pa.ArrowTypeError):
            try:
                _diagnose_csv(file, columns, plan)
            except (pa.ArrowException, OSError, UnicodeDecodeError):
                pass  # the file itself is unreadable there (e.g. a ragged row): report the scan error
        raise IngestError(
            f"{file}: cannot read columns {columns} ({type(e).__name__}: {e})", file=file
        ) from None


def _diagnose_csv(file: str, columns: list[str], plan: _Plan) -> None:
    """Find the row behind a CSV conversion error and raise an :class:`IngestError` for it.

    Arrow infers a CSV file's column types from its first block; a later value
    that does not fit stops the scan. Re-read the columns as text and apply
    the ingest rules to name the offending row.
    """
    import pyarrow.csv as pacsv

    ids = set(plan.ids.values())
    lists = {c for c, k in plan.positions.values() if k is not None}
    coords = {c for c, k in plan.positions.values() if k is None}
    numbers = set(plan.floats.values()) | set(plan.extras.values())
    # read as bytes: text that is not valid UTF-8 is then named by row too
    reader = pacsv.open_csv(
        file,
        read_options=_csv_read_options(plan.csv_header),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.binary() for c in columns}, include_columns=columns
        ),
    )
    offset = 0
    for batch in reader:
        for c in columns:
            arr = _as_text(batch.column(c), file, c, offset)
            if c in ids:
                _ids_to_int64(arr, file, c, offset)
            if c in lists:
                _list_to_xyz(arr, file, c, offset)
            if c in coords:
                _check_finite(_to_float64(arr, file, c, offset, "coordinate"), arr, file, c, offset)
            if c in numbers:
                _to_float64(arr, file, c, offset, c)
        offset += batch.num_rows


def _stamp(file: str) -> tuple[int, int]:
    """(size, mtime_ns) of a source file; ``(0, 0)`` for an in-memory table."""
    try:
        st = os.stat(file)
    except (OSError, ValueError):
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


def _pass1(src: _Source, plan: _Plan, batch_rows: int, bar: Any, keep_bytes: int = 0) -> _Scan:
    id_cols = [plan.ids["pre"], plan.ids["post"]]
    roi_cols = list(dict.fromkeys(plan.rois.values()))
    wcol = plan.extras.get("weight") if plan.kind == "connections" else None
    cols = list(dict.fromkeys(id_cols + roi_cols + ([wcol] if wcol else [])))
    tally = _Tally()
    kept = _KeptIds(keep_bytes)
    stamps: dict[str, tuple[int, int]] = {}
    rois: set[str] = set()
    n_total = 0
    file_rows: dict[str, int] = {}
    for file, frag in src.fragments():
        _check_schema(plan, _schema_of(frag, file), file)
        stamps[file] = _stamp(file)
        offset = 0
        for batch in _batches(frag, cols, batch_rows, file, plan, src.fmt):
            n = batch.num_rows
            if n == 0:
                continue
            pre = _ids_to_int64(batch.column(id_cols[0]), file, id_cols[0], offset)
            post = _ids_to_int64(batch.column(id_cols[1]), file, id_cols[1], offset)
            w = _weights(batch.column(wcol), file, wcol, offset) if wcol else None
            kept.add(file, offset, *tally.add(pre, post, w))
            for c in roi_cols:
                col = _as_text(batch.column(c), file, c, offset)
                new = _roi_values(col) - rois - plan.roi_none
                for name in sorted(new):
                    _check_roi_name(name, col, file, c, offset)
                rois |= new
            offset += n
            n_total += n
            if bar is not None:
                bar.update(n)
        file_rows[file] = offset
    if n_total == 0:
        raise IngestError(f"empty input: {src.label} has no synapse rows", file=src.label)
    body_ids, counts = tally.result()
    has_pre = counts[:, 0] > 0
    syn = counts[:, 2:4] if wcol else counts[:, 0:2]  # synapses per body: rows, or sums of weight
    return _Scan(body_ids, body_ids[has_pre], counts[has_pre, 0], n_total, sorted(rois), file_rows,
                 (body_ids, syn[:, 0].copy()), (body_ids, syn[:, 1].copy()),
                 None if kept.dropped else kept, tally.ids, stamps)


def _encode(ids: np.ndarray, body_index: np.ndarray) -> np.ndarray:
    """Dense indices of ``ids`` in the sorted unique body IDs.

    The same as ``np.searchsorted(body_ids, ids)`` for IDs known to be present
    (pass 1 saw them all), but a hash probe in the table of
    :func:`connectome_dask.kernels.hashing.build_id_table`: ~5x faster than
    binary search on whole-brain ID sets (cache misses) and ~2.5x faster than
    ``pandas.Index.get_indexer``.
    """
    pos, missing = _id_slots(body_index, ids, np.int32)
    if missing:  # pass 2 saw an ID pass 1 did not: the input changed
        raise IngestError(f"body ID {ids[np.argmax(pos < 0)]} appeared only in the second pass")
    return pos


def _fast_positions(batch: pa.RecordBatch, plan: _Plan, scale: np.ndarray, shift: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """The plan's coordinates converted to float32 nm in one kernel pass per source column.

    Only columns of plain numbers whose every value converts cleanly are
    done here (:func:`~connectome_dask.ingest.values._fast_float32`,
    ``_fast_list_float32``); the others, and any column a value of which
    would be refused, are left to the general path, which names the row.
    """
    uses: dict[str, list[tuple[str, int | None, int]]] = {}
    for t, (c, k) in plan.positions.items():
        uses.setdefault(c, []).append((t, k, "xyz".index(t[0])))
    out: dict[str, np.ndarray] = {}
    for c, used in uses.items():
        if any(k is None for _, k, _ in used):  # a column per coordinate
            if len(used) == 1:
                t, _, axis = used[0]
                v = _fast_float32(batch.column(c), float(shift[axis]), float(scale[axis]), finite=True)
                if v is not None:
                    out[t] = v
            continue
        ks = [k for _, k, _ in used]
        if len(set(ks)) != len(ks):  # one list element read as two axes: the general path
            continue
        sh, sc = np.zeros(3), np.ones(3)  # an element no axis reads is still checked (finite), unscaled
        for _, k, axis in used:
            assert k is not None
            sh[k], sc[k] = shift[axis], scale[axis]
        xyz = _fast_list_float32(batch.column(c), sh, sc)
        if xyz is not None:
            for t, k, _ in used:
                out[t] = xyz[k]
    return out


def _convert_batch(
    batch: pa.RecordBatch,
    plan: _Plan,
    body_index: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    roi_names: pa.Array,
    out_dtypes: Mapping[str, str],
    file: str,
    offset: int,
    ids: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """One batch of pass 2 as the store's columns; ``ids``: its dense (pre, post) indices, if kept from pass 1."""
    out: dict[str, np.ndarray] = {}
    if ids is not None:
        out["pre"], out["post"] = ids
    else:
        for t in ("pre", "post"):
            c = plan.ids[t]
            out[t] = _encode(_ids_to_int64(batch.column(c), file, c, offset), body_index)
    lists: dict[str, np.ndarray] = {}
    fast = _fast_positions(batch, plan, scale, shift)
    for t, (c, k) in plan.positions.items():
        axis = "xyz".index(t[0])
        if t in fast:
            out[t] = fast[t]
            continue
        if k is None:
            raw = batch.column(c)
            v = _to_float64(raw, file, c, offset, "coordinate")
            _check_finite(v, raw, file, c, offset)
        else:
            if c not in lists:
                xyz = _list_to_xyz(batch.column(c), file, c, offset)
                bad = ~np.isfinite(xyz).all(axis=1)
                if bad.any():
                    i = int(np.argmax(bad))
                    val = _decode(batch.column(c))[i].as_py()
                    raise IngestError.at(file, c, offset + i,
                                         f"position {val!r} has a missing or non-finite coordinate", val)
                lists[c] = xyz
            v = lists[c][:, k]
        how = ""
        if scale[axis] != 1 or shift[axis] != 0:
            how = (f"{t[0]} in voxels{f' + voxel_offset {shift[axis]:g}' if shift[axis] else ''} "
                   f"times voxel_size {scale[axis]:g} = nm")
        with np.errstate(over="ignore"):
            nm = (v + shift[axis]) * scale[axis]
        out[t] = _to_float32(nm, batch.column(c), file, c, offset, "coordinate", how)
    for t, c in plan.floats.items():
        raw = batch.column(c)
        f32 = _fast_float32(raw, 0.0, 1.0, finite=False)
        out[t] = f32 if f32 is not None else _to_float32(_to_float64(raw, file, c, offset, t), raw, file, c, offset, t)
    for t, c in plan.extras.items():
        raw = batch.column(c)
        if pa.types.is_integer(_decode(raw).type) and out_dtypes[t] == "int64":
            if raw.null_count:
                i = int(np.flatnonzero(raw.is_null().to_numpy(zero_copy_only=False))[0])
                raise IngestError.at(file, c, offset + i, "value is missing")
            out[t] = _decode(raw).to_numpy().astype(np.int64)
        else:
            out[t] = _to_float32(_to_float64(raw, file, c, offset, t), raw, file, c, offset, t)
        if t == "weight" and plan.kind == "connections" and len(out[t]) and out[t].min() < 1:
            i = int(np.argmax(out[t] < 1))
            raise IngestError.at(file, c, offset + i, f"synapse count {int(out[t][i])} of a connection must be "
                                 "a positive integer", int(out[t][i]))
    for t, c in plan.rois.items():
        out[t] = _roi_codes(batch.column(c), roi_names)
    return out


def _units(
    units: str, voxel_size: Any, voxel_offset: Any
) -> tuple[str, np.ndarray, np.ndarray, list[float] | None, list[float] | None]:
    def vec(v: Any, what: str, positive: bool) -> np.ndarray:
        try:
            a = np.asarray(v, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            a = np.full(0, np.nan)
        if a.size == 1:
            a = np.repeat(a, 3)
        if a.size != 3 or not np.isfinite(a).all() or (positive and (a <= 0).any()):
            raise IngestError(
                f"{what} must be {'3 positive' if positive else '3 finite'} numbers (x, y, z), got {v!r}"
            )
        return a

    size = vec(voxel_size, "voxel_size", True) if voxel_size is not None else None
    off = vec(voxel_offset, "voxel_offset", False) if voxel_offset is not None else None
    factor = parse_units(units, error=IngestError, voxels=True)  # None: voxels
    if factor == 1.0:
        if off is not None:
            raise IngestError("voxel_offset only applies with units='voxels'")
        return "nm", np.ones(3), np.zeros(3), (size.tolist() if size is not None else None), None
    if factor is None:
        if size is None:
            raise IngestError("units='voxels' needs voxel_size, e.g. voxel_size=(4, 4, 40)")
        off = np.zeros(3) if off is None else off
        return "voxels", size, off, size.tolist(), off.tolist()
    nm = sorted(u for u, f in LENGTH_UNITS.items() if f == 1.0)
    raise IngestError(
        f"unknown units {units!r} for ingest: positions are read in nm ({nm}) or in voxels "
        f"({sorted(VOXEL_UNITS)}) with voxel_size; {units!r} is {factor:g} nm, so pass "
        f"units='voxels', voxel_size={factor:g}"
    )


def _count(v: Any, what: str, hi: int | None = None) -> int:
    """A positive whole number of rows (``hi`` = upper bound), else an :class:`IngestError`."""
    n: int | None
    try:
        n = operator.index(v)
    except TypeError:
        n = int(v) if isinstance(v, float) and v.is_integer() else None
    if n is None or isinstance(v, bool):
        raise IngestError(f"{what} must be a positive integer, got {v!r}")
    if n < 1 or (hi is not None and n > hi):
        bound = f"between 1 and {hi}" if hi is not None else "positive"
        raise IngestError(f"{what} must be {bound}, got {n}")
    return n


def _check_target(path: Path, overwrite: bool, files: Sequence[str]) -> None:
    try:
        exists = path.exists()
        if not exists:  # the nearest existing ancestor must be a directory
            for parent in path.absolute().parents:
                if parent.exists():
                    if not parent.is_dir():
                        raise IngestError(f"cannot create the store {path}: {parent} exists and is "
                                          "not a directory", file=str(path))
                    break
    except (OSError, ValueError) as e:  # name too long, NUL in the path, permission denied
        raise IngestError(f"cannot use {os.fspath(path)!r} as the store path ({e})",
                          file=os.fspath(path)) from None
    if exists:
        if not overwrite:
            raise IngestError(
                f"{path} already exists; pass overwrite=True to replace it", file=str(path)
            )
        is_store = (path / "meta.json").is_file()
        if path.is_dir() and not is_store and any(path.iterdir()):
            raise IngestError(
                f"{path} exists and is not a connectome store; refusing to replace it "
                "even with overwrite=True",
                file=str(path),
            )
        if not path.is_dir():
            raise IngestError(f"{path} exists and is not a directory", file=str(path))
    root = path.resolve()
    for f in files:
        if root in Path(f).resolve().parents:
            raise IngestError(f"source file {f} lies inside the target store {path}", file=f)


def ingest(
    source: Any,
    path: str | os.PathLike,
    *,
    neurons: str | os.PathLike | pd.DataFrame | None = None,
    dialect: str = "auto",
    columns: Mapping[str, str] | None = None,
    units: str | None = None,
    voxel_size: Sequence[float] | float | None = None,
    voxel_offset: Sequence[float] | float | None = None,
    overwrite: bool = False,
    chunk_rows: int | None = None,
    name: str | None = None,
    version: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
    progress: bool | None = None,
    kind: str = "auto",
) -> Connectome:
    """Ingest a raw synapse table into a connectome store, streaming in two passes.

    Parameters
    ----------
    source
        Parquet, CSV or Feather: a file, a directory (all data files below it,
        in sorted order), a glob pattern, or a list of those (one format).
        A pandas DataFrame or pyarrow Table is accepted too.
    path
        Store directory to create.
    neurons
        Optional neuron table (path to CSV/Parquet/Feather, or a DataFrame)
        with ``bodyId`` (or ``root_id`` / ``pt_root_id``) and annotations.
    dialect
        ``"auto"`` (detect), ``"cave"`` / ``"flywire"`` or ``"neuprint"``
        (generic columns; see the module documentation), or a release
        dialect of :data:`connectome_dask.ingest.dialects.REGISTRY`
        (``"flywire-783"``, ``"codex"``, ``"neuprint-neo4j"``,
        ``"janelia-flat"``, ``"microns"``, ``"banc"``). ``"auto"`` recognises
        a release from its file names, then from the first file's columns;
        a folder of a release is searched for its synapse, neuron and
        metadata files.
    columns
        Explicit mapping of store column to source column
        (``{"pre": ..., "post": ..., "x_pre": ..., "confidence": ...}``).
    units
        Units of the source positions (default: the release dialect's, else
        ``"nm"``): ``"nm"`` or ``"voxels"`` (any spelling
        of :mod:`connectome_dask.units` worth 1 nm, e.g. ``"nanometre"``, or
        ``"voxel"`` / ``"vx"``).
    voxel_size, voxel_offset
        Per-axis voxel size in nm and offset in voxels for ``units="voxels"``:
        ``nm = (voxel + voxel_offset) * voxel_size``.
    overwrite
        Replace an existing store at ``path`` (only a connectome store or an
        empty directory is ever replaced). The old store stays intact until the
        new one is complete.
    chunk_rows
        Zarr chunk length of the synapse arrays (default ``2**20``).
    name, version
        Dataset name (default: the directory name) and version for meta.json.
    batch_rows
        Rows read and converted per batch (memory of each pass).
    bucket_rows
        Rows per bucket of the writer's external sort (memory of the sort).
        Up to ``connectome_dask.sort_memory_bytes`` (dask config, 512 MiB by
        default) of the sort's buckets stay in memory instead of spill files,
        and under the same budget pass 1 keeps every row's ID positions
        (8 bytes a row) so that pass 2 reads no ID column; ``0`` spills
        everything and reads the IDs twice.
    progress
        Show progress bars (default: dask config ``connectome_dask.progress``).
    kind
        ``"synapses"``: a synapse-level store (one row per synapse);
        ``"connections"``: a connection-level store from a release's
        connection files (Codex ``connections*.csv.gz`` incl. the header-less
        v630 file, FlyWire ``proofread_connections_783.feather``, neuPrint
        compact exports, Janelia ``connectome-weights``, BANC's edge list,
        neo4j ``Neuprint_Neuron_Connections``) or from a table with
        ``columns={"pre": ..., "post": ..., "weight": ...}``: one row per
        connection (and ROI), int64 ``weight`` = its synapses, no positions
        (``meta.json`` declares ``kind: connections``). ``"auto"``: synapse
        files when the release has them, else its connection files.

    Returns
    -------
    Connectome
        The new store (not made the default connectome).

    Raises
    ------
    IngestError
        Bad input: missing columns, missing/negative/fractional body IDs or
        IDs in other notations than decimal, non-numeric, missing or
        float32-overflowing values, empty, truncated or corrupt files, text
        that is not UTF-8, conflicting or mixed-type neuron annotations,
        names that break the name rule, unknown units, degenerate sizes, an
        existing target without ``overwrite``, and OS errors while writing
        (disk full). The message names the file, column and an example row.
        Nothing is written.

    Examples
    --------
    >>> import pandas as pd
    >>> from connectome_dask.ingest import ingest
    >>> syn = pd.DataFrame({"pre_pt_root_id": [11, 11, 12], "post_pt_root_id": [12, 13, 11],
    ...                     "connection_score": [90.0, 120.0, 75.0]})
    >>> syn.to_parquet(tmp_path / "syn.parquet")
    >>> conn = ingest(tmp_path / "syn.parquet", tmp_path / "store", progress=False)
    >>> conn.neurons["bodyId"].tolist(), conn.n_synapses
    ([11, 12, 13], 3)
    >>> conn.read_synapses(["pre", "post", "confidence"])["confidence"].tolist()
    [90.0, 120.0, 75.0]
    """
    if not isinstance(path, str | os.PathLike):
        raise IngestError(f"path must be a directory path, got {type(path).__name__} {path!r:.80}")
    path = Path(path)
    batch_rows = _count(batch_rows, "batch_rows")
    bucket_rows = _count(bucket_rows, "bucket_rows")
    chunk = DEFAULT_CHUNK_ROWS if chunk_rows is None else _count(chunk_rows, "chunk_rows", _MAX_CHUNK_ROWS)
    if name is not None:
        check_name(name, "dataset name", error=IngestError)
    if kind not in ("auto", "synapses", "connections"):
        raise IngestError(f"kind must be 'auto', 'synapses' or 'connections', got {kind!r}")
    release, source, neurons, units, voxel_size, rois_info = _release(source, dialect, columns, neurons,
                                                                     units, voxel_size, kind)
    store_kind = "connections" if (release is not None and release.kind == "connections") or \
        kind == "connections" else "synapses"
    src_units, scale, shift, vsize, voffset = _units(units, voxel_size, voxel_offset)
    header = release.header if release is not None else None
    with contextlib.ExitStack() as scratch:
        joined = isinstance(source, _Neo4jJoin)
        if joined:  # the export's sites and links, joined into scratch files (bounded memory)
            _check_target(path, overwrite, [*source.release.synapses, *source.release.others])
            neuron_table, neuron_label = (None, None) if neurons is None else _load_neurons(neurons)  # checked first
            source = source.run(scratch, progress)
        src = _resolve_source(source, header)
        _check_target(path, overwrite, src.files)
        first_file, first_frag = next(src.fragments())
        first_schema = _schema_of(first_frag, first_file)
        plan = _plan_for(release, first_schema, first_file, dialect, columns, store_kind)
        plan.csv_header = header
        if src.fmt == "csv":  # body IDs as text: only decimal integers are IDs (not 1e3 or 0x1F)
            paths = [f.path for f in src.dataset.get_fragments()]
            try:
                src.dataset = ds.dataset(paths, format=_file_format("csv", list(plan.ids.values()), header))
            except (pa.ArrowException, OSError) as e:
                raise IngestError(f"cannot open {src.label} as csv: {e}", file=src.label) from None
            first_file, first_frag = next(src.fragments())
            first_schema = _schema_of(first_frag, first_file)
        if not joined:
            neuron_table, neuron_label = (None, None) if neurons is None else _load_neurons(neurons)

        for file, frag in src.fragments():  # every file has the plan's columns: checked before any work
            _check_schema(plan, _schema_of(frag, file), file)

        # ---- pass 1: ids (and ROI names), validation
        total = None
        if src.fmt in ("parquet", "ipc", "memory"):
            total = _count_rows(src)  # reads every footer: an unreadable file is named here
        bar = progress_bar(total, "ingest 1/2 (ids)", progress=progress)
        try:
            scan = _pass1(src, plan, batch_rows, bar, keep_bytes=int(config.get("sort_memory_bytes", 0)))
        finally:
            if bar is not None:
                bar.close()
        body_ids = scan.body_ids
        if neuron_table is not None:
            body_ids = np.union1d(body_ids, neuron_table["bodyId"].to_numpy(np.int64))
        n_neurons = len(body_ids)
        if n_neurons >= np.iinfo(np.int32).max:
            raise IngestError(f"{n_neurons} distinct bodies do not fit int32 indices")
        if len(scan.roi_names) > np.iinfo(np.int16).max:
            raise IngestError(f"{len(scan.roi_names)} distinct ROI names do not fit int16 codes")
        pre_counts = np.zeros(n_neurons, dtype=np.int64)
        pre_counts[np.searchsorted(body_ids, scan.pre_ids)] = scan.pre_counts
        neurons_df = _merge_neurons(body_ids, neuron_table)
        if "label" not in neurons_df.columns:  # neuPrint's Neuron/Segment rule, on the ingested counts
            counts = pd.DataFrame({"pre": np.zeros(n_neurons, np.int64), "post": np.zeros(n_neurons, np.int64)})
            for side, (keys, cnt) in (("pre", scan.pre_syn), ("post", scan.post_syn)):
                counts.loc[np.searchsorted(body_ids, keys), side] = cnt
            rule_input = neurons_df.drop(columns=[c for c in ("pre", "post") if c in neurons_df.columns])
            rule_input = pd.concat([rule_input.reset_index(drop=True), counts], axis=1)
            neurons_df["label"] = neuprint_label(rule_input).astype("string").to_numpy()

        out_dtypes: dict[str, str] = {t: "float32" for t in plan.positions}
        out_dtypes.update({t: "float32" for t in plan.floats})
        for t, c in plan.extras.items():
            typ = first_schema.field(c).type
            out_dtypes[t] = "int64" if pa.types.is_integer(typ) else "float32"
        out_dtypes.update({t: "int16" for t in plan.rois})
        roi_names = pa.array(scan.roi_names, type=pa.string())
        body_index = _hashing.build_id_table(body_ids)

        # ---- pass 2: convert and write
        read_cols = plan.source_columns()
        kept, rank = scan.kept, None
        if kept is not None:  # pass 1's ID positions: the ID columns are not read again
            rank = np.searchsorted(body_ids, scan.tally_ids).astype(np.int32)
            others = {c for c, _ in plan.positions.values()} | {*plan.floats.values(), *plan.extras.values(),
                                                                *plan.rois.values()}
            read_cols = [c for c in read_cols if c in others or c not in plan.ids.values()]
        bar = progress_bar(scan.n_rows, "ingest 2/2 (write)", progress=progress)
        try:
            # a block is spilled on a second thread while the next is read and converted (the writer's
            # appends run one at a time, in order; an error in one is raised at the next submit)
            with _write_errors(path), StoreWriter(
                path,
                n_neurons,
                out_dtypes,
                chunk_rows=chunk,
                pre_counts=pre_counts,
                bucket_rows=bucket_rows,
                overwrite=overwrite,
                kind=store_kind,
            ) as writer, Background("connectome-dask-spill") as spilling:
                buf: list[dict[str, np.ndarray]] = []
                buffered = written = 0
                for file, frag in src.fragments():
                    if kept is not None and _stamp(file) != scan.stamps.get(file):
                        raise IngestError(f"{file} changed while being ingested (its size or modification "
                                          "time differs from pass 1)", file=file)
                    offset = 0
                    for batch in _batches(frag, read_cols, batch_rows, file, plan, src.fmt):
                        if batch.num_rows == 0:
                            continue
                        ids = None if kept is None or rank is None else kept.take(file, offset, batch.num_rows,
                                                                                  rank)
                        buf.append(
                            _convert_batch(
                                batch,
                                plan,
                                body_index,
                                scale,
                                shift,
                                roi_names,
                                out_dtypes,
                                file,
                                offset,
                                ids,
                            )
                        )
                        offset += batch.num_rows
                        buffered += batch.num_rows
                        written += batch.num_rows
                        if bar is not None:
                            bar.update(batch.num_rows)
                        if buffered >= batch_rows:
                            spilling.submit(writer.append, _concat(buf))
                            buf, buffered = [], 0
                if buf:
                    spilling.submit(writer.append, _concat(buf))
                spilling.wait()
                if written != scan.n_rows:
                    raise IngestError(
                        f"{src.label} changed while being ingested: {scan.n_rows} rows in pass 1, "
                        f"{written} in pass 2"
                    )
                meta: dict[str, Any] = {
                    "name": name or path.name,
                    "source": src.files[0] if len(src.files) == 1 else src.label,
                    "units": "nm",
                    "voxel_size": vsize,
                    "voxel_offset": voffset,
                    "ingest": {
                        "source_units": src_units,
                        "dialect": plan.dialect,
                        "columns": plan.describe(),
                        "files": src.files,
                        "format": src.fmt,
                        "rows": scan.n_rows,
                        "neurons": neuron_label,
                    },
                }
                if release is not None:
                    meta["ingest"]["release"] = dict(_dialects.iter_roles(release))
                    if release.dialect.roi_note and plan.rois:
                        meta["ingest"]["rois"] = release.dialect.roi_note
                if joined and release is not None:  # the release's CSV files, not the join's scratch files
                    files = [*release.synapses, *release.others]
                    meta["source"] = files[0] if len(files) == 1 else os.path.dirname(files[0])
                    meta["ingest"].update(files=files, format="csv")
                if version is not None:
                    meta["version"] = str(version)
                if plan.rois:
                    rois = _rois_json(scan.roi_names, release, rois_info)
                    conn = writer.close(neurons_df, meta, rois=rois)
                else:
                    conn = writer.close(neurons_df, meta)
        finally:
            if bar is not None:
                bar.close()
        return conn


@contextlib.contextmanager
def _write_errors(path: Path) -> Iterator[None]:
    """OS errors while writing the store (disk full, permission denied) as :class:`IngestError`.

    Errors reading the source are IngestErrors already (they name the source file).
    """
    try:
        yield
    except OSError as e:
        raise IngestError(f"cannot write the store {path}: {e}", file=str(path)) from e


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}


@dataclass
class _Neo4jJoin:
    """A neo4j export's synapse rows, to be joined (:func:`neo4j.neo4j_synapse_files`) once the target is checked."""

    release: _dialects.Release
    depth: Mapping[str, int]

    def run(self, stack: contextlib.ExitStack, progress: bool | None) -> list[str]:
        folder = stack.enter_context(scratch_dir("neo4j synapse join"))
        bar = progress_bar(7, "ingest 0/2 (join the neo4j export)", "passes", progress)
        started = [0]

        def step(name: str) -> None:  # called as each of the 7 passes starts
            if bar is not None:
                if started[0]:
                    bar.update(1)
                bar.set_postfix_str(name)
            started[0] += 1

        try:
            files = _neo4j.neo4j_synapse_files(self.release, self.depth, folder, step=step)
            if bar is not None:
                bar.update(1)
            return files
        finally:
            if bar is not None:
                bar.close()


def _release(
    source: Any, dialect: str, columns: Mapping[str, str] | None, neurons: Any, units: str | None,
    voxel_size: Any, kind: str = "auto",
) -> tuple[_dialects.Release | None, Any, Any, str, Any, dict[str, Any]]:
    """Resolve a release dialect: its files, neuron table, default units and ROI metadata."""
    d = str(dialect or "auto").lower()
    known = ("auto", "cave", "flywire", "neuprint", *_dialects.REGISTRY)
    if d not in known:
        raise IngestError(f"unknown dialect {dialect!r}; expected one of {list(known)}")
    explicit = isinstance(columns, Mapping) and "pre" in columns and "post" in columns
    release = None
    if d in _dialects.REGISTRY or (d == "auto" and not explicit):
        release = _dialects.find_release(source, d, kind)
    info: dict[str, Any] = {}
    if release is None:
        return None, source, neurons, units or "nm", voxel_size, info
    dia = release.dialect
    vsize_default = dia.voxel_size
    if release.kind == "connections":
        if release.synapses:
            source = release.synapses if len(release.synapses) > 1 else release.synapses[0]
        if neurons is None:
            neurons = _release_neurons.release_neurons(release)
        if dia.name == "neuprint-neo4j" and release.meta:
            m = _neo4j.neo4j_meta(release)
            info = {"primary": m["primary"], "hierarchy": m["hierarchy"]}
            if m["primary"]:  # per-ROI rows from each connection's roiInfo
                source = _neo4j.neo4j_connection_table(release, m["primary"])
        return release, source, neurons, units or "nm", voxel_size, info
    if dia.name == "neuprint-neo4j" and release.synapses:
        m = _neo4j.neo4j_meta(release)
        info = {"primary": m["primary"], "hierarchy": m["hierarchy"]}
        vsize_default = tuple(m["voxel_size"]) if m["voxel_size"] else vsize_default
        source = _Neo4jJoin(release, _neo4j._depths(m["hierarchy"]))
    elif release.synapses:
        source = release.synapses if len(release.synapses) > 1 else release.synapses[0]
    if neurons is None:
        neurons = _release_neurons.release_neurons(release)
    if units is None:
        units = dia.units
    if voxel_size is None and parse_units(units, error=IngestError, voxels=True) is None:
        voxel_size = vsize_default
    return release, source, neurons, units, voxel_size, info


def _plan_for(release: _dialects.Release | None, schema: pa.Schema, file: str, dialect: str,
              columns: Mapping[str, str] | None, kind: str = "synapses") -> _Plan:
    if columns is not None and not isinstance(columns, Mapping):
        return _make_plan(schema, file, "auto", columns)  # the generic check names the problem
    if release is None:
        plan = _make_plan(schema, file, dialect, columns)
    elif release.kind == "connections":
        plan = _dialects.connection_plan(release.dialect, schema, file)
        _apply_columns(plan, dict(columns or {}))
    else:
        plan = _dialects.dialect_plan(release.dialect, schema, file, columns)
        _apply_columns(plan, dict(columns or {}))
    plan.kind = kind
    if kind == "connections":
        if "weight" not in plan.extras:
            raise IngestError(f"{file}: a connection-level store needs a synapse-count column: pass "
                              "columns={'weight': <column>} (e.g. syn_count)", file=file)
        if plan.positions:
            raise IngestError(f"{file}: a connection-level store has no synapse positions; "
                              f"drop the position columns {sorted(plan.positions)}", file=file)
        w = plan.extras["weight"]
        if w in schema.names:
            t = schema.field(w).type
            t = t.value_type if pa.types.is_dictionary(t) else t
            if not pa.types.is_integer(t):
                raise IngestError(f"{file}: column {w!r} (weight, the synapse count) must hold integers, "
                                  f"but has type {t}", file=file, column=w)
    return plan


def _rois_json(names: list[str], release: _dialects.Release | None, info: Mapping[str, Any]) -> dict[str, Any]:
    """``rois.json`` of precomputed ROI labels: names, primary set and hierarchy (no meshes)."""
    out: dict[str, Any] = {"names": list(names), "primary": list(names), "hierarchy": {}}
    if release is None:
        return out
    if release.dialect.name in ("flywire-783", "codex"):
        out["hierarchy"] = _dialects.flywire_hierarchy(names)
    elif info.get("hierarchy"):
        h = info["hierarchy"]
        out["hierarchy"] = h
        nodes = set(names) | set(_neo4j._depths(h))
        prim = [p for p in info.get("primary") or [] if p in nodes]
        out["primary"] = prim or list(names)
    out["source"] = release.dialect.roi_note
    return out
