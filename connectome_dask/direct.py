"""Grouped synapse counts straight from raw synapse files, without building a store.

:func:`adjacency_from_files` answers one grouped question (type x type, any
neuron-table column, inside ROIs, above a confidence, between neuron subsets,
with ``min_weight``) from a downloaded synapse table, as DuckDB answers one
query on a Parquet file: the files are read once, in parallel, and nothing is
written. A store (:func:`~connectome_dask.ingest.ingest`) pays its sort once
and then answers every query from a few columns; this is for the first,
or only, question.

The graph: one task per group of Parquet row groups (per file for CSV and
Feather), each reading only the body ID, ROI and confidence columns it
needs, validating them by the ingest rules (so a bad row is named by file,
column and row) and emitting, for the rows that pass the filters, one integer
key per row: the (pre group, post group) cell, found by a hash probe of both
body IDs in the neuron table (:mod:`connectome_dask.kernels.hashing`), or
with ``min_weight`` the neuron pair. Each task counts its keys (group
cells in a hash table as it scans, neuron pairs by one sort); the (key,
count) lists are summed in a tree (into a dense array once they would fill a
quarter of it), and ``min_weight`` judges the summed pairs before grouping.
The counts equal
``ingest(...).adjacency(by=..., ...)`` of the same files, whatever the task
size or scheduler.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ._compute import compute, tree_reduce
from .aggregate import _group_axes, _grouped_array, _labels
from .compute.dense import (
    add_cells,
    check_dense,
    max_dense_bytes,
    small_pages_touched,
    sparse_zeros,
)
from .errors import IngestError
from .ingest.main import _batches, _plan_for, _release
from .ingest.neurons import _load_neurons
from .ingest.plan import _check_schema, _Plan
from .ingest.sources import _file_format, _read_error, _resolve_source, _schema_of
from .ingest.values import _as_text, _decode, _ids_to_int64, _to_float32, _to_float64
from .kernels import hashing as H
from .store.writer import PREPARED_NEURON_COLUMNS, _prepare_neurons

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["DEFAULT_TASK_ROWS", "adjacency_from_files"]

#: rows of one task (whole Parquet row groups are packed up to this many)
DEFAULT_TASK_ROWS = 1 << 21

#: rows converted per batch inside a task (bounds a task's memory)
_BATCH_ROWS = 1 << 20

#: starting slots of a task's hash table of group-cell counts (it doubles when half full)
_COUNT_SLOTS = 1 << 14

#: partial (key, count) lists become a dense count array once they hold this fraction of its cells
_DENSE_FRACTION = 0.25


@dataclass(frozen=True)
class _Part:
    """One task's share of the input: a file and, for Parquet, its row groups."""

    file: str
    fmt: str
    row_groups: tuple[int, ...] | None
    offset: int  # rows of the file before this part (for error messages)
    rows: int
    stamp: tuple[int, int]  # (size, mtime_ns) of the file when planned: part of the task key


@dataclass(frozen=True)
class _Spec:
    """What every task needs besides its part (one object in the graph)."""

    plan: _Plan
    ids: tuple[str, str]
    roi_col: str | None
    wanted: tuple[str, ...] | None
    conf_cols: tuple[str, ...]
    thr: float
    pairs: bool  # neuron-pair keys (min_weight) instead of group keys
    header: tuple[str, ...] | None


@dataclass(frozen=True)
class _Sides:
    """What the count tasks need of the neuron table: the ID table with each ID's values, and the key base."""

    tab: np.ndarray
    n_key: int  # n_post groups, or the number of table IDs for pair keys
    n_cells: int | None  # cells of the dense result (None: pair keys, never dense)


@dataclass(frozen=True)
class _Groups:
    """What the result needs of the neuron table (the client's share of :func:`_prep_groups`)."""

    table_ids: np.ndarray  # body IDs in ID order
    gp: np.ndarray  # each ID's pre group (-1 = not counted), and post group
    gq: np.ndarray
    labels: list[Any]
    pre_groups: np.ndarray
    post_groups: np.ndarray


def _file_parts(src: Any, task_rows: int, split: bool = True) -> list[_Part]:
    """Tasks of whole row groups (Parquet) or whole files (CSV, Feather); footers read here.

    ``split=False``: one task per file even for Parquet (a dialect's batch
    transform may carry state from row to row, e.g. Codex's blank ID cells).
    """
    import pyarrow.parquet as pq

    parts: list[_Part] = []
    for file in src.files:
        st = os.stat(file)
        stamp = (int(st.st_size), int(st.st_mtime_ns))
        if src.fmt != "parquet":
            parts.append(_Part(file, src.fmt, None, 0, -1, stamp))
            continue
        try:
            meta = pq.ParquetFile(file).metadata
        except (pa.ArrowException, OSError) as e:
            raise _read_error(file, e) from None
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        total = sum(sizes)
        # contiguous packs of near-equal rows, as few as fit task_rows (whole row groups: a pack can pass
        # it by half a row group); a greedy fill left a short last pack, run alone at the end of the scan
        k = max(1, -(-total // task_rows)) if split else 1
        packs: list[list[int]] = [[] for _ in range(k)]
        offset = 0
        for i, n in enumerate(sizes):
            packs[min(k - 1, int((offset + n / 2) * k // max(total, 1)))].append(i)
            offset += n
        start = 0
        for group in packs:
            if not group:
                continue
            rows = sum(sizes[i] for i in group)
            parts.append(_Part(file, "parquet", tuple(group), start, rows, stamp))
            start += rows
    return parts


def _memory_parts(table: pa.Table, task_rows: int, split: bool = True) -> list[_Part]:
    """Tasks of row slices of an in-memory table (one task when ``split`` is false, as for a file)."""
    n = table.num_rows
    k = -(-n // task_rows) if split else min(n, 1)  # near-equal slices, as few as fit task_rows
    cuts = [i * n // k for i in range(k + 1)] if k else [0]
    return [_Part("<table>", "memory", None, a, b - a, (n, 0)) for a, b in itertools.pairwise(cuts)]


def _read_batches(part: _Part, spec: _Spec, columns: list[str],
                  data: pa.Table | None = None) -> Iterator[tuple[pa.RecordBatch, int]]:
    """The part's record batches with each batch's row offset in its file (or in ``data``, in memory)."""
    if part.fmt == "memory":
        assert data is not None
        prep = spec.plan.prep(part.file) if spec.plan.prep is not None else None
        offset = part.offset
        for batch in data.slice(part.offset, part.rows).select(columns).to_batches(max_chunksize=_BATCH_ROWS):
            if prep is not None and batch.num_rows:
                batch = prep(batch, offset)
            yield batch, offset
            offset += batch.num_rows
        return
    if part.fmt != "parquet":
        text = list(spec.ids) if part.fmt == "csv" else []
        fmt = _file_format(part.fmt, text, list(spec.header) if spec.header else None)
        try:
            frag = next(ds.dataset([part.file], format=fmt).get_fragments())
        except (pa.ArrowException, OSError) as e:
            raise _read_error(part.file, e) from None
        offset = 0
        for batch in _batches(frag, columns, _BATCH_ROWS, part.file, spec.plan, part.fmt):
            yield batch, offset
            offset += batch.num_rows
        return
    import pyarrow.parquet as pq

    prep = spec.plan.prep(part.file) if spec.plan.prep is not None else None
    offset = part.offset
    try:
        pf = pq.ParquetFile(part.file)
        for batch in pf.iter_batches(batch_size=_BATCH_ROWS, row_groups=list(part.row_groups or ()),
                                     columns=columns, use_threads=False):
            if prep is not None and batch.num_rows:
                batch = prep(batch, offset)
            yield batch, offset
            offset += batch.num_rows
    except (pa.ArrowException, OSError) as e:  # corrupt pages, failed checksums, I/O errors
        raise IngestError(f"{part.file}: cannot read columns {columns} ({type(e).__name__}: {e})",
                          file=part.file) from None


def _roi_filter_codes(arr: pa.Array, wanted: pa.Array, file: str, column: str,
                      offset: int) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """Per-row ROI codes (``-1`` = none), which codes are wanted (by ``code + 1``), and the batch's ROI names.

    A dictionary column of text keeps its own indices as codes (the few
    dictionary names are looked up, no per-row strings); anything else is
    made text by ingest's rule (bytes that are not UTF-8 are named by row)
    and matched once against the wanted names.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type) and pa.types.is_string(arr.type.value_type):
        names = arr.dictionary
        hit = pc.is_in(names, value_set=wanted).to_numpy(zero_copy_only=False)
        ind = arr.indices
        if arr.null_count:  # a null entry's index is arbitrary: make it "no ROI"
            ind = pc.if_else(arr.is_valid(), ind, pa.scalar(-1, ind.type))
        codes = ind.to_numpy(zero_copy_only=False)
        return codes, np.concatenate([[False], hit]), {v for v in names.to_pylist() if v}
    arr = _as_text(arr, file, column, offset)
    if pa.types.is_null(arr.type):
        return np.full(len(arr), -1, dtype=np.int32), np.zeros(1, dtype=bool), set()
    codes = pc.fill_null(pc.index_in(arr, value_set=wanted), -1).to_numpy(zero_copy_only=False)
    ok = np.ones(len(wanted) + 1, dtype=bool)
    ok[0] = False
    return codes, ok, {v for v in pc.unique(arr).to_pylist() if v}


def _confidence(raw: pa.Array, file: str, column: str, offset: int) -> np.ndarray:
    """float32 confidences as ingest stores them (missing = NaN, which no threshold keeps)."""
    a = _decode(raw)
    if pa.types.is_float32(a.type):
        return a.to_numpy(zero_copy_only=False)
    return _to_float32(_to_float64(a, file, column, offset, column), a, file, column, offset, column)


def _columns(spec: _Spec) -> list[str]:
    """The columns a task reads: both IDs, the ROI column when filtering on it, the confidences."""
    roi_cols = [spec.roi_col] if spec.wanted is not None and spec.roi_col is not None else []
    return list(dict.fromkeys([*spec.ids, *roi_cols, *spec.conf_cols]))


def _read_part(part: _Part, spec: _Spec) -> list[tuple[pa.RecordBatch, int]]:
    """A Parquet part's batches of the columns :func:`_count_part` uses, read ahead of the neuron table.

    A task of its own so that the file is being read while the neuron table
    is prepared (:func:`_prep_groups`); only for parts of a bounded size (the
    decoded columns of up to twice ``task_rows`` rows are held).
    """
    return list(_read_batches(part, spec, _columns(spec)))


def _count_part(part: _Part, spec: _Spec, sides: _Sides, data: pa.Table | None = None,
                read: list[tuple[pa.RecordBatch, int]] | None = None) -> tuple:
    """One task: the keys of the part's kept rows, the ROI names it saw and the rows it read.

    ``read``: the part's batches from :func:`_read_part` (else read here, batch by batch).
    """
    cols = _columns(spec)
    tab = sides.tab
    wanted = pa.array(list(spec.wanted or ()), pa.string())
    dummy_b = np.zeros(1, dtype=np.bool_)
    dummy_i = np.zeros(1, dtype=np.int32)
    dummy_f = np.zeros(1, dtype=np.float32)
    out: list[np.ndarray] = []
    # group cells are counted in the scan (few distinct keys); neuron pairs are sorted once (mostly distinct)
    hk, hc, used = np.full(_COUNT_SLOTS, -1, dtype=np.int64), np.zeros(_COUNT_SLOTS, dtype=np.int64), 0
    seen: set[str] = set()
    rows = 0
    for batch, offset in (read if read is not None else _read_batches(part, spec, cols, data)):
        n = batch.num_rows
        if n == 0:
            continue
        rows += n
        pre = _ids_to_int64(batch.column(spec.ids[0]), part.file, spec.ids[0], offset)
        post = _ids_to_int64(batch.column(spec.ids[1]), part.file, spec.ids[1], offset)
        roi, roi_ok = dummy_i, dummy_b
        if spec.wanted is not None and spec.roi_col is not None:
            roi, roi_ok, names = _roi_filter_codes(batch.column(spec.roi_col), wanted, part.file,
                                                   spec.roi_col, offset)
            seen |= names
        conf = [_confidence(batch.column(c), part.file, c, offset) for c in spec.conf_cols]
        c1 = conf[0] if conf else dummy_f
        c2 = conf[1] if len(conf) > 1 else dummy_f
        # group cells, or (min_weight) neuron pairs: what the table's value columns hold decides
        args = (pre, post, roi, roi_ok, spec.wanted is not None, c1, c2, spec.thr, len(conf) > 0, len(conf) > 1,
                tab, sides.n_key)
        if spec.pairs:
            out.append(H.scan_group_keys(*args))
        else:
            hk, hc, used = H.scan_group_counts(*args, hk, hc, used)
    if part.rows >= 0 and rows != part.rows:
        raise IngestError(f"{part.file} changed while being read: {part.rows} rows in its footer, {rows} read",
                          file=part.file)
    # counted here, in parallel: a task's distinct cells (or pairs) go up the tree, not one key per row
    if spec.pairs:
        keys = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
        u, c = np.unique(keys, return_counts=True)
        return ("counts", u, c.astype(np.int64), seen, rows, sides.n_cells)
    held = hk >= 0
    u, c = hk[held], hc[held]
    order = np.argsort(u)
    return ("counts", u[order], c[order], seen, rows, sides.n_cells)


def _combine(parts: list[tuple]) -> tuple:
    """Sum partials: sorted (key, count) lists, or one flat dense count array (and the rows read).

    A partial is ``(kind, keys or dense array, counts, ROI names, rows,
    n_cells)``; ``n_cells`` is the dense array's size, or ``None`` when the
    keys are neuron pairs (never dense). Lists that would fill a quarter of
    the dense array are added into it instead.
    """
    n_cells = parts[0][5]
    seen = set().union(*(p[3] for p in parts))
    rows = sum(p[4] for p in parts)
    dense = [p[1] for p in parts if p[0] == "dense"]
    counts = [p for p in parts if p[0] == "counts"]
    n_listed = sum(len(p[1]) for p in counts)
    if not dense and (n_cells is None or n_listed < _DENSE_FRACTION * n_cells):
        if len(counts) == 1:
            return counts[0][:3] + (seen, rows, n_cells)
        u = np.concatenate([p[1] for p in counts])
        c = np.concatenate([p[2] for p in counts])
        order = np.argsort(u, kind="stable")
        u, c = u[order], c[order]
        if len(u):
            first = np.flatnonzero(np.concatenate([[True], u[1:] != u[:-1]]))
            u, c = u[first], np.add.reduceat(c, first)
        return ("counts", u, c, seen, rows, n_cells)
    assert n_cells is not None
    out = dense[0].copy() if dense else np.zeros(n_cells, dtype=np.int64)
    for d in dense[1:]:
        out += d
    for p in counts:
        H.add_weighted_keys(out, p[1], p[2])
    return ("dense", out, None, seen, rows, n_cells)


def _subset_ids(spec: Any, side: str) -> np.ndarray | None:
    """The body IDs of a ``pre`` / ``post`` argument as int64 (``None`` = every neuron); checked here."""
    if spec is None:
        return None
    if isinstance(spec, int | np.integer):
        spec = [spec]
    if isinstance(spec, str) or not isinstance(spec, Iterable):
        raise TypeError(f"{side} must be body IDs (an int or a collection of ints) or None, "
                        f"got {type(spec).__name__}")
    ids = np.asarray(list(spec) if not isinstance(spec, np.ndarray | pd.Series | pd.Index) else spec)
    if ids.size and ids.dtype.kind not in "iu":
        raise TypeError(f"{side} must be body IDs (integers), got values of dtype {ids.dtype}")
    return ids.astype(np.int64)


def _group_bound(table: pd.DataFrame, by: str) -> int:
    """At least the number of groups on either axis: the ``by`` column's distinct values (quick, exact enough)."""
    if by == "index":
        return len(table)
    if by not in table.columns:  # a column the store's table adds, all missing (type, instance, status)
        return 2 if by == "cropped" else 0
    return int(table[by].nunique(dropna=True))


def _prep_groups(table: pd.DataFrame, by: str, pre_ids: np.ndarray | None, post_ids: np.ndarray | None,
                 pairs: bool) -> tuple[_Sides, _Groups]:
    """The neuron table as the counts and the result need it: groups on each axis, the ID table.

    The bodies in ID order, prepared as a store's neuron table is (type /
    instance / status as text, whatever the file held): the labels and
    their order are then the store's. A task of the graph (beside the first
    reads), or run before it when the result's size must be checked first.
    """
    frame = table.sort_values("bodyId", kind="stable", ignore_index=True)
    frame = _prepare_neurons(frame, len(frame))
    table_ids = frame["bodyId"].to_numpy(np.int64)
    codes, labels = _labels(frame[by])
    every = np.arange(len(table_ids))
    all_pre = every if pre_ids is None else np.flatnonzero(np.isin(table_ids, pre_ids))
    all_post = every if post_ids is None else np.flatnonzero(np.isin(table_ids, post_ids))
    gp, gq, pre_groups, post_groups = _group_axes(codes, len(labels), all_pre, all_post)
    tab = H.build_id_table(table_ids)
    if pairs:  # pair keys over table positions, for neurons counted on each side
        at = np.arange(len(table_ids), dtype=np.int64)
        H.set_sides(tab, np.where(gp >= 0, at, -1), np.where(gq >= 0, at, -1))
    else:
        H.set_sides(tab, gp.astype(np.int64, copy=False), gq.astype(np.int64, copy=False))
    n_key = len(table_ids) if pairs else max(len(post_groups), 1)
    n_cells = None if pairs else len(pre_groups) * len(post_groups)
    return _Sides(tab, n_key, n_cells), _Groups(table_ids, gp, gq, labels, pre_groups, post_groups)


def adjacency_from_files(
    source: Any,
    neurons: Any = None,
    *,
    by: str = "type",
    pre: Any = None,
    post: Any = None,
    rois: str | Iterable[str] | None = None,
    confidence: float | None = None,
    min_weight: int = 1,
    dialect: str = "auto",
    columns: Mapping[str, str] | None = None,
    task_rows: int = DEFAULT_TASK_ROWS,
    progress: bool | None = None,
) -> xr.DataArray:
    """Grouped synapse-count matrix straight from raw synapse files (no store is written).

    The same matrix as ``ingest(source, store, neurons=neurons).adjacency(by=by, ...)``
    without the ingest: each file is read once, in parallel tasks, for the
    columns the question needs.

    Parameters
    ----------
    source
        Synapse files as :func:`~connectome_dask.ingest.ingest` takes them: a
        Parquet, CSV or Feather file, a directory, a glob or a list, a
        release folder (its synapse and neuron files are found), or a table
        in memory (pandas DataFrame, pyarrow Table or RecordBatch; read in
        slices of ``task_rows`` rows, not copied).
    neurons
        Neuron table (path or DataFrame) with the body ID column
        (``bodyId`` / ``root_id`` / ``pt_root_id``) and the ``by`` column;
        ``None`` for a release folder that holds one.
    by
        Neuron-table column to sum over (``"type"``; crantpy's ``cell_type``
        is read as ``type``). Labels are ordered as in
        :meth:`~connectome_dask.Connectome.adjacency`; neurons without a
        value, and bodies not in the neuron table, are left out.
    pre, post
        Body IDs counted on each side (an int or a collection of ints);
        ``None`` = every neuron.
    rois
        Count only synapses whose postsynaptic site (the ``roi_post``
        column of the dialect, or ``columns={"roi_post": ...}``) is in these
        ROIs, named as the file names them.
    confidence
        Keep synapses with confidence strictly above this (compared in
        float32, as a store compares it; every confidence column must pass).
    min_weight
        Neuron pairs with fewer synapses (after the filters) are left out
        before grouping.
    dialect, columns
        Column dialect and explicit column mapping, as for
        :func:`~connectome_dask.ingest.ingest`.
    task_rows
        Rows per task: whole Parquet row groups are packed up to this many
        (an in-memory table is sliced into this many).
        The counts do not depend on it.
    progress
        Show a progress bar.

    Returns
    -------
    xarray.DataArray
        int64, dims ``("pre", "post")``, the group labels present on each
        axis as index coordinates with ``n_neurons_pre`` / ``n_neurons_post``;
        ``attrs`` hold the source and the filters.

    Raises
    ------
    IngestError
        Unreadable or missing files, no synapse rows, a missing column, a bad
        body ID or confidence (named by file, column and row), or a bad
        neuron table.
        Schema and neuron-table problems are found before any work runs.
    KeyError
        ``by`` is not a neuron-table column, ``rois`` without a ROI column,
        ``confidence`` without a confidence column, or ROI names that no
        file holds.
    ValueError
        ``by="bodyId"`` (neuron x neuron needs a store: ingest it), a
        connection-level source, or a bad ``min_weight`` / ``task_rows``.
    TypeError
        ``pre`` / ``post`` are not body IDs.
    DenseMatrixTooLarge
        The result would exceed ``connectome_dask.max_dense_bytes``.

    Examples
    --------
    >>> import pandas as pd
    >>> import connectome_dask as cd
    >>> pd.DataFrame({"pre_pt_root_id": [1, 1, 2, 3], "post_pt_root_id": [2, 3, 3, 1],
    ...               "neuropil": ["AL_L", "LH_L", "AL_L", "AL_L"]}).to_parquet(tmp_path / "syn.parquet")
    >>> nrn = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["ORN", "PN", "PN"]})
    >>> A = cd.adjacency_from_files(tmp_path / "syn.parquet", nrn, columns={"roi_post": "neuropil"},
    ...                             rois=["AL_L"], progress=False)
    >>> A.pre.values.tolist(), A.values.tolist()
    (['ORN', 'PN'], [[0, 1], [1, 1]])
    """
    if by == "bodyId":
        raise ValueError("by='bodyId' (neuron x neuron) needs the sorted store: ingest the files "
                         "(connectome_dask.ingest) and use Connectome.adjacency")
    if isinstance(min_weight, bool) or not isinstance(min_weight, int | np.integer) or min_weight < 1:
        raise ValueError(f"min_weight must be an integer >= 1, got {min_weight!r}")
    if isinstance(task_rows, bool) or not isinstance(task_rows, int | np.integer) or task_rows < 1:
        raise ValueError(f"task_rows must be a positive integer, got {task_rows!r}")
    if isinstance(rois, str):
        rois = [rois]
    roi_list = None if rois is None else [str(r) for r in rois]

    release, source, neurons, _, _, _ = _release(source, dialect, columns, neurons, None, None, "synapses")
    if release is not None and release.kind == "connections":
        raise ValueError(f"{release.dialect.name}: a connection-level release (one row per connection); "
                         "adjacency_from_files counts synapse rows: ingest it with kind='connections'")
    if not isinstance(source, str | os.PathLike | list | tuple | pd.DataFrame | pa.Table | pa.RecordBatch):
        raise ValueError("adjacency_from_files reads synapse files or tables; this release needs a join of "
                         "its exports first: ingest it (connectome_dask.ingest)")
    header = release.header if release is not None else None
    src = _resolve_source(source, header)
    first_file, first_frag = next(src.fragments())
    plan = _plan_for(release, _schema_of(first_frag, first_file), first_file, dialect, columns, "synapses")
    plan.csv_header = header  # header-less CSV files: the names a bad row's diagnosis reads them by
    if src.fmt == "csv":  # body IDs as text, as ingest reads them
        src.dataset = ds.dataset(src.files, format=_file_format("csv", list(plan.ids.values()), header))
    for file, frag in src.fragments():  # every file has the plan's columns: checked before any work
        _check_schema(plan, _schema_of(frag, file), file)
    if neurons is None:
        raise IngestError(f"grouping by {by!r} needs a neuron table: pass neurons=<table with a body ID "
                          f"column and {by!r}>")
    table, label = _load_neurons(neurons)
    if by not in table.columns and by not in PREPARED_NEURON_COLUMNS:
        columns_ = list(dict.fromkeys([*PREPARED_NEURON_COLUMNS, *table.columns]))
        raise KeyError(f"unknown neuron column {by!r}; available: {columns_}")
    roi_col = plan.rois.get("roi_post")
    if roi_list is not None and roi_col is None:
        raise KeyError(f"{first_file}: no ROI column to filter on; map the postsynaptic site's ROI with "
                       "columns={'roi_post': <column>}")
    conf_cols: tuple[str, ...] = ()
    if confidence is not None:
        if "confidence" in plan.floats:
            conf_cols = (plan.floats["confidence"],)
        else:
            conf_cols = tuple(plan.floats[c] for c in ("confidence_pre", "confidence_post") if c in plan.floats)
        if not conf_cols:
            raise KeyError(f"{first_file}: no confidence column to threshold; map one with "
                           "columns={'confidence': <column>}")
    pre_ids, post_ids = _subset_ids(pre, "pre"), _subset_ids(post, "post")
    pairs = int(min_weight) > 1
    spec = _Spec(plan, (plan.ids["pre"], plan.ids["post"]), roi_col,
                 None if roi_list is None else tuple(roi_list), conf_cols,
                 float(np.float32(confidence)) if confidence is not None else 0.0,
                 pairs, tuple(header) if header else None)
    table_in = src.dataset.to_table() if src.fmt == "memory" else None  # the caller's table (no copy)
    parts = (_memory_parts(table_in, int(task_rows), split=plan.prep is None) if table_in is not None
             else _file_parts(src, int(task_rows), split=plan.prep is None))
    if sum(p.rows for p in parts if p.rows >= 0) == 0 and all(p.rows >= 0 for p in parts):
        raise IngestError(f"empty input: {src.label} has no synapse rows", file=src.label)

    import operator
    import uuid

    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    # One layer of plain tasks (a delayed call per task merged graphs again each time: ~20 ms of a 0.4 s
    # query). Each call's keys are its own (a uuid): the neuron table and the caller's table are not
    # hashed (that cost as much as a count), and two calls never share a task.
    token = uuid.uuid4().hex
    name = f"files-{token}"
    spec_k, sides_k, groups_k = f"files-spec-{token}", f"files-sides-{token}", f"files-groups-{token}"
    dsk: dict[Any, Any] = {spec_k: spec}
    bound = _group_bound(table, by)
    if bound * bound * 8 <= max_dense_bytes():
        # the result fits whatever the subsets: the neuron table is prepared in the graph, beside the first
        # reads (its ~60 ms on a whole brain no longer come before them)
        prep_k = f"files-neurons-{token}"
        dsk[prep_k] = (_prep_groups, table, by, pre_ids, post_ids, pairs)
        dsk[sides_k] = (operator.getitem, prep_k, 0)
        dsk[groups_k] = (operator.getitem, prep_k, 1)
    else:  # the exact size decides, before any work: prepared here
        dsk[sides_k], dsk[groups_k] = _prep_groups(table, by, pre_ids, post_ids, pairs)
        check_dense((len(dsk[groups_k].pre_groups), len(dsk[groups_k].post_groups)), 8, "the grouped matrix")
    data_k = None
    if table_in is not None:  # an in-memory table goes into the graph once, under a key of its own
        data_k = f"files-table-{token}"
        dsk[data_k] = table_in
    count_keys = []
    for i, p in enumerate(parts):
        read_k = None
        if p.fmt == "parquet" and 0 <= p.rows <= 2 * int(task_rows):  # bounded: read it ahead
            read_k = f"files-read-{token}-{i}"
            dsk[read_k] = (_read_part, p, spec_k)
        count_keys.append(f"files-count-{token}-{i}")
        dsk[count_keys[-1]] = (_count_part, p, spec_k, sides_k, data_k, read_k)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    tasks = [Delayed(k, graph, layer=name) for k in count_keys]
    groups_d = Delayed(groups_k, graph, layer=name)
    res, groups = compute(tree_reduce(tasks, _combine, name=f"files-combine-{token}"), groups_d,
                          progress=progress)
    if res[4] == 0:  # CSV and Feather row counts are known only once read (Parquet ones were checked above)
        raise IngestError(f"empty input: {src.label} has no synapse rows", file=src.label)

    if roi_list is not None:
        unknown = [r for r in roi_list if r not in res[3]]
        if unknown:
            raise KeyError(f"unknown ROI(s) {unknown}; the files' ROIs are: {', '.join(sorted(res[3]))}")
    n_pre, n_post = len(groups.pre_groups), len(groups.post_groups)
    check_dense((n_pre, n_post), 8, "the grouped matrix")
    gp, gq = groups.gp, groups.gq
    # the result's few written cells get small pages (sparse_zeros: huge ones stall the faults)
    if res[0] == "dense":
        mat = res[1]
    elif pairs:
        u, c = res[1], res[2]
        keep = c >= int(min_weight)
        u, c = u[keep], c[keep]
        n_ids = len(groups.table_ids)
        cell = gp[u // n_ids] * n_post + gq[u % n_ids]
        mat = sparse_zeros(n_pre * n_post, pages=small_pages_touched(cell))
        add_cells(mat, cell, c)
    else:  # distinct cells in order: one write each
        u, c = res[1], res[2]
        mat = sparse_zeros(n_pre * n_post, pages=small_pages_touched(u))
        add_cells(mat, u, c)
    attrs = {
        "source": src.files[0] if len(src.files) == 1 else src.label,
        "neurons": label,
        "by": by,
        "rois": json.dumps(roi_list),
        "min_weight": int(min_weight),
        "confidence": "none" if confidence is None else float(confidence),
        "weight": "synapse count",
    }
    return _grouped_array(mat.reshape(n_pre, n_post), groups.labels, groups.pre_groups, groups.post_groups,
                          gp, gq, attrs)
