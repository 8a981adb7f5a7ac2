"""Streaming ingest of raw synapse tables (CAVE/FlyWire or neuPrint style) into a store.

:func:`ingest` reads Parquet, CSV or Feather (a file, a directory, a glob or a
list of files) in record batches and never holds the whole table:

1. **Pass 1** reads only the body ID columns (and the ROI name columns of
   neuPrint tables). It checks that every file has every mapped column,
   validates the IDs (no missing, negative or fractional IDs) and collects the
   sorted unique body IDs and the number of synapses per presynaptic body.
   Nothing is written until this pass has succeeded.
2. **Pass 2** reads the mapped columns batch by batch, encodes body IDs as dense
   ``int32`` indices (positions in the sorted unique IDs), converts
   positions to nanometres, validates them and appends to a
   :class:`~connectome_dask.store.StoreWriter`, which bucket-sorts the rows by
   ``(pre, post)`` on disk with bounded memory. A bad coordinate aborts the
   writer: no store appears and an existing store at the target is untouched.

Column dialects
---------------
``"cave"`` (alias ``"flywire"``)
    ``pre_pt_root_id``, ``post_pt_root_id``; positions ``pre_pt_position``,
    ``post_pt_position``, ``ctr_pt_position`` as list columns (fixed-size or
    variable lists of 3 numbers, or ``"[x y z]"`` strings in CSV files) or
    split into ``<name>_x/_y/_z``; FlyWire's release files' ``pre_x ... post_z``
    are recognised too. ``connection_score`` becomes ``confidence``,
    ``cleft_score`` is kept as a ``cleft_score`` float32 column, ``size`` is
    kept. When both pre and post positions exist the centre point
    (``ctr_pt_position``) is not stored; it becomes ``x, y, z`` otherwise.
``"neuprint"``
    ``bodyId_pre``, ``bodyId_post``, ``x_pre`` ... ``z_post``,
    ``confidence_pre``, ``confidence_post``, ``roi_pre``, ``roi_post``. ROI
    names are stored as ``int16`` codes into the sorted list of names (``-1`` =
    none) and the names are recorded in the store's ROI folder.
explicit ``columns=``
    A mapping from store column to source column, e.g.
    ``{"pre": "src", "post": "dst", "x_pre": "px", ...}``; list-valued
    position columns are mapped with the keys ``pre_position``,
    ``post_position`` and ``position``. When it maps both ``pre`` and ``post``
    only the mapping is used; otherwise it overrides entries of the (detected)
    dialect. Keys other than the standard store columns add extra numeric
    columns (integers stored as int64, everything else as float32).

Other source columns are ignored. Body IDs are 64-bit integers; IDs stored as
floating point are accepted only when they are whole numbers below 2**53
(larger floats have already lost digits). IDs given as text (every CSV ID
column is read as text) must be plain decimal integers: ``0x1F``, ``1e3``,
``inf`` or ``1_000`` are refused, never guessed. Store columns are float32:
a value that does not fit (``1e39``, or a voxel coordinate times
``voxel_size``) is an error, not ``inf``.

ROI names and store column names follow the package's one name rule
(:func:`connectome_dask._fsutil.check_name`): any printable name without
``/``, ``\\``, NUL or a line break, not ``.`` or ``..`` (real names such as
``CRE(-ROB,-RUB)(R)`` or ``a'L(R)`` pass).

Units
-----
Positions are stored in nanometres. With ``units="voxels"`` each axis is
converted as ``nm = (voxel + voxel_offset) * voxel_size``; ``voxel_size`` is
then required (e.g. ``(4, 4, 40)`` for FlyWire, ``(8, 8, 8)`` for the
hemibrain) and ``voxel_offset`` defaults to ``(0, 0, 0)``. meta.json records
``units: "nm"`` (the stored unit), ``voxel_size``/``voxel_offset``, the source,
and under ``extra.ingest`` the source unit, dialect, column mapping and files.

Neuron table
------------
``neurons=`` (a CSV/Parquet/Feather path or a DataFrame) adds annotations. Its
ID column is ``bodyId``, else ``root_id``, else ``pt_root_id``; crantpy-style
``cell_type`` becomes ``type`` when there is no ``type`` column. Exact duplicate
rows are dropped; the same ID with different annotations is an error. The
store has one row per body seen in the synapses *or* in the neuron table
(bodies without synapses are kept; bodies only in the synapses get empty
annotations), ordered by ``bodyId``. ``pre``/``post`` are recomputed from the
ingested synapses; a source table's own ``pre``/``post`` columns are kept as
``pre_source``/``post_source``.

Errors
------
Every problem with the input is an :class:`IngestError` (a
:class:`~connectome_dask.store.StoreError`) naming the file, column, row and
value where one applies: damaged files (truncated, corrupt pages, failed
Parquet page checksums, which are verified on read), text that is not UTF-8,
mixed-type or too deeply nested neuron table columns (checked before the
synapse passes), degenerate parameters, and OS errors while writing (disk
full, permission denied). Error rows are reported as 0-based data rows within
their file (the CSV header is not counted).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import numbers
import operator
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ._fsutil import check_name
from .errors import IngestError
from .store import DEFAULT_CHUNK_ROWS, Connectome, StoreWriter

__all__ = [
    "DIALECTS",
    "IngestError",
    "add_arguments",
    "ingest",
    "run_from_args",
]

DIALECTS = ("auto", "cave", "flywire", "neuprint")
DEFAULT_BATCH_ROWS = 1 << 20
DEFAULT_BUCKET_ROWS = 1 << 22
# record batches read ahead by the scanner (each holds batch_rows rows of every read column)
_READAHEAD = 1
_MAX_EXACT_FLOAT = 2.0**53
_MAX_CHUNK_ROWS = 1 << 27  # a larger Zarr chunk of int64 exceeds the codecs' 2 GiB limit
_MAX_NESTING = 64  # nesting depth of list/dict values in a neuron table
# body IDs given as text: plain decimal numbers only (no hex, exponent, inf, '_')
_DECIMAL = r"^[+-]?[0-9]+(\.[0-9]*)?$"
_NM_UNITS = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}
_VOXEL_UNITS = {"voxel", "voxels", "vx"}
_POSITION_TARGETS = ("x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post", "x", "y", "z")
_FLOAT_TARGETS = ("confidence", "confidence_pre", "confidence_post", "size", "cleft_score")
_ROI_TARGETS = ("roi_pre", "roi_post")
_LIST_TARGETS = {"pre_position": "_pre", "post_position": "_post", "position": ""}
_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".csv": "csv",
    ".feather": "ipc",
    ".arrow": "ipc",
    ".ipc": "ipc",
}
_MAGIC = re.compile(r"[*?\[]")




# ----------------------------------------------------------------------------- sources


@dataclass
class _Source:
    label: str
    files: list[str]
    fmt: str
    dataset: ds.Dataset

    def fragments(self) -> Iterator[tuple[str, Any]]:
        if not self.files:
            for frag in self.dataset.get_fragments():
                yield self.label, frag
            return
        for frag in self.dataset.get_fragments():
            yield frag.path, frag


def _format_of(path: str) -> str:
    name = path.lower()
    for suffix in (".gz", ".bz2", ".zst", ".lz4"):
        if name.endswith(".csv" + suffix):
            return "csv"
    fmt = _FORMATS.get(os.path.splitext(name)[1])
    if fmt is not None:
        return fmt
    try:
        with open(path, "rb") as f:  # noqa: PTH123 - plain sniffing
            head = f.read(6)
    except OSError as e:
        raise IngestError(f"{path}: cannot read ({e})", file=path) from None
    if head[:4] == b"PAR1":
        return "parquet"
    if head == b"ARROW1":
        return "ipc"
    raise IngestError(
        f"{path}: unknown file type; expected one of {sorted(set(_FORMATS))} "
        "(Parquet, CSV, Feather/Arrow IPC)",
        file=path,
    )


def _is_data_file(p: Path) -> bool:
    return p.is_file() and not p.name.startswith((".", "_")) and not p.name.endswith(".crc")


_CSV_BLOCK_BYTES = 1 << 24  # CSV read block (types are inferred from a file's first block)


def _file_format(fmt: str, text_columns: Sequence[str] = ()):
    """The dataset format of ``fmt``; CSV ``text_columns`` are read as text, not inferred.

    Body ID columns of CSV files are read as text (bytes) so that only plain
    decimal integers are accepted (Arrow's inference would turn ``1e3`` into 1000.0).
    Parquet page checksums (CRC32, when the writer stored them) are verified.
    """
    if fmt == "csv":
        import pyarrow.csv as pacsv

        return ds.CsvFileFormat(
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            # bytes, not string: text that is not UTF-8 is then named by row (see _as_text)
            convert_options=pacsv.ConvertOptions(column_types={c: pa.binary() for c in text_columns}),
        )
    if fmt == "parquet":
        # no pre-buffering of whole row groups: measured 688 -> 227 MB of Arrow memory
        # (and faster) streaming a 5 M-row CAVE table in 1 Mi-row batches
        return ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(
                pre_buffer=False, page_checksum_verification=True
            )
        )
    return fmt


def _read_error(file: str, e: BaseException) -> IngestError:
    return IngestError(f"{file}: cannot read the file ({type(e).__name__}: {e})", file=file)


def _schema_of(frag: Any, file: str) -> pa.Schema:
    """A fragment's schema, with unreadable files and non-UTF-8 headers as :class:`IngestError`."""
    try:
        schema = frag.physical_schema
        list(schema.names)
    except UnicodeDecodeError as e:
        raise IngestError(
            f"{file}: the column names (header) are not valid UTF-8 text ({e})", file=file
        ) from None
    except (pa.ArrowException, OSError) as e:
        raise _read_error(file, e) from None
    return schema


def _count_rows(src: _Source) -> int:
    """Rows of a Parquet/IPC source from the file footers; an unreadable file is named."""
    try:
        return int(src.dataset.count_rows())
    except (pa.ArrowException, OSError):
        pass
    total = 0
    for file, frag in src.fragments():
        _schema_of(frag, file)
        try:
            total += frag.count_rows()
        except (pa.ArrowException, OSError) as e:
            raise _read_error(file, e) from None
    return total


def _frame_to_table(df: pd.DataFrame, label: str) -> pa.Table:
    """A pandas DataFrame as an Arrow table; a column Arrow cannot hold is named with its row."""
    if df.columns.has_duplicates:
        dup = df.columns[df.columns.duplicated()][0]
        raise IngestError(f"{label}: column {dup!r} appears more than once", file=label, column=str(dup))
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError, RecursionError):
        pass
    for c in df.columns:
        _arrow_column(df[c], label, c)
    raise IngestError(f"{label}: the table cannot be converted to Arrow", file=label)


def _kind(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return "bool"
    if isinstance(v, numbers.Number):
        return "number"
    if isinstance(v, str):
        return "str"
    if isinstance(v, bytes):
        return "bytes"
    if isinstance(v, list | tuple | np.ndarray):
        return "list"
    if isinstance(v, Mapping):
        return "dict"
    return type(v).__name__


def _nesting(v: Any, limit: int) -> int:
    """Nesting depth of lists / dicts in ``v`` (counted up to ``limit + 1``), without recursion."""
    depth, level = 0, [v]
    while depth <= limit:
        containers = [x for x in level if isinstance(x, Mapping | list | tuple | np.ndarray)]
        if not containers:
            break
        depth += 1
        level = []
        for x in containers:
            if isinstance(x, Mapping):
                level.extend(x.values())
            elif not isinstance(x, np.ndarray) or x.dtype == object:
                level.extend(x)
    return depth


def _arrow_column(s: pd.Series, label: str, column: Any) -> pa.Array:
    """One pandas column as Arrow; mixed value types and deep nesting are named by row."""
    if s.dtype == object:
        for i, v in enumerate(s.to_numpy()):
            nested = isinstance(v, Mapping | list | tuple | np.ndarray)
            if nested and _nesting(v, _MAX_NESTING) > _MAX_NESTING:
                raise IngestError.at(label, column, i, f"value is nested more than {_MAX_NESTING} "
                                     "levels deep (lists in lists ...)", None)
    try:
        return pa.array(s, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, RecursionError) as e:
        first = None
        for i, v in enumerate(s.to_numpy()):
            if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
                continue
            if first is None:
                first = (i, v)
            elif _kind(v) != _kind(first[1]):
                raise IngestError.at(
                    label, column, i,
                    f"{type(v).__name__} value {v!r} in a column of {type(first[1]).__name__} values "
                    f"(first at row {first[0]}: {first[1]!r}); a column must hold one type", v
                ) from None
        raise IngestError(f"{label}: column {column!r} cannot be stored ({type(e).__name__}: {e})",
                          file=label, column=str(column)) from None


def _resolve_source(source: Any) -> _Source:
    """Turn a path / directory / glob / list of them / table into a dataset."""
    if isinstance(source, pd.DataFrame):
        source = _frame_to_table(source, "<table>")
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        if source.num_rows == 0:
            raise IngestError("empty input: the in-memory table has no rows", file="<table>")
        return _Source("<table>", [], "memory", ds.dataset(source))
    if isinstance(source, str | os.PathLike):
        items = [source]
    elif isinstance(source, list | tuple):
        items = list(source)
    else:
        items = [source]
    if not items:
        raise IngestError("empty input: no source given")
    files: list[str] = []
    for it in items:
        if not isinstance(it, str | os.PathLike):
            raise IngestError(
                "source must be a file, directory or glob pattern (or a list of them), a pandas "
                f"DataFrame or a pyarrow Table; got {type(it).__name__} {it!r:.80}"
            )
        s = os.fspath(it)
        if "\x00" in s:
            raise IngestError(f"source {s!r} is not a valid path (it holds a NUL character)", file=s)
        if _MAGIC.search(s) and not os.path.exists(s):
            import glob

            matched = sorted(m for m in glob.glob(s, recursive=True) if _is_data_file(Path(m)))
            if not matched:
                raise IngestError(f"empty input: no files match {s!r}", file=s)
            files += matched
        elif os.path.isdir(s):
            found = sorted(str(p) for p in Path(s).rglob("*") if _is_data_file(p))
            if not found:
                raise IngestError(f"empty input: directory {s} holds no data files", file=s)
            files += found
        elif os.path.isfile(s):
            files.append(s)
        else:
            raise IngestError(f"source {s} does not exist", file=s)
    fmts = {f: _format_of(f) for f in files}
    kinds = sorted(set(fmts.values()))
    if len(kinds) > 1:
        ex = {k: next(f for f, v in fmts.items() if v == k) for k in kinds}
        raise IngestError(f"source mixes file formats: {ex}; ingest one format at a time")
    label = os.fspath(items[0]) if len(items) == 1 else f"{len(files)} files"
    fmt = kinds[0]
    try:
        dataset = ds.dataset(files, format=_file_format(fmt))
    except (pa.ArrowInvalid, OSError) as e:
        raise IngestError(f"cannot open {label} as {fmt}: {e}", file=label) from None
    return _Source(label, [str(Path(f).resolve()) for f in files], fmt, dataset)


# ----------------------------------------------------------------------------- plan


@dataclass
class _Plan:
    """Which source column feeds which store column."""

    dialect: str
    ids: dict[str, str]  # pre/post -> source column
    positions: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    floats: dict[str, str] = field(default_factory=dict)
    extras: dict[str, str] = field(default_factory=dict)
    rois: dict[str, str] = field(default_factory=dict)

    def source_columns(self) -> list[str]:
        cols = list(self.ids.values()) + [c for c, _ in self.positions.values()]
        cols += list(self.floats.values()) + list(self.extras.values()) + list(self.rois.values())
        return list(dict.fromkeys(cols))

    def describe(self) -> dict[str, str]:
        out = dict(self.ids)
        for t, (c, k) in self.positions.items():
            out[t] = c if k is None else f"{c}[{k}]"
        out.update(self.floats)
        out.update(self.extras)
        out.update(self.rois)
        return out


_CAVE_IDS = ("pre_pt_root_id", "post_pt_root_id")
_NEUPRINT_IDS = ("bodyId_pre", "bodyId_post")


def _position_source(
    names: set[str], candidates: Sequence[str], what: str, file: str
) -> tuple[str, str | tuple[str, str, str]] | None:
    """Find a list column or an x/y/z split of one of the candidate names."""
    for base in candidates:
        if base in names:
            return ("list", base)
        split = tuple(f"{base}_{a}" for a in "xyz")
        present = [c for c in split if c in names]
        if len(present) == 3:
            return ("split", split)  # type: ignore[return-value]
        if present:
            missing = [c for c in split if c not in names]
            raise IngestError(
                f"{file}: {what} position columns incomplete: found {present}, missing {missing}",
                file=file,
                column=missing[0],
            )
    return None


def _cave_plan(names: set[str], file: str) -> _Plan:
    plan = _Plan("cave", {"pre": _CAVE_IDS[0], "post": _CAVE_IDS[1]})
    found = {}
    for side, cands in (
        ("_pre", ("pre_pt_position", "pre")),
        ("_post", ("post_pt_position", "post")),
        ("", ("ctr_pt_position",)),
    ):
        src = _position_source(names, cands, side.strip("_") or "centre", file)
        if src is not None:
            found[side] = src
    sides = ["_pre", "_post"] if ("_pre" in found or "_post" in found) else []
    if "" in found and not ("_pre" in found and "_post" in found):
        sides.append("")
    for side in sides:
        if side not in found:
            continue
        kind, src = found[side]
        for k, axis in enumerate("xyz"):
            plan.positions[f"{axis}{side}"] = (src, k) if kind == "list" else (src[k], None)
    for target, col in (
        ("confidence", "connection_score"),
        ("cleft_score", "cleft_score"),
        ("size", "size"),
    ):
        if col in names:
            plan.floats[target] = col
    return plan


def _neuprint_plan(names: set[str], file: str) -> _Plan:
    plan = _Plan("neuprint", {"pre": _NEUPRINT_IDS[0], "post": _NEUPRINT_IDS[1]})
    for side in ("pre", "post"):
        cols = [f"{a}_{side}" for a in "xyz"]
        present = [c for c in cols if c in names]
        if present and len(present) < 3:
            missing = [c for c in cols if c not in names]
            raise IngestError(
                f"{file}: {side} position columns incomplete: found {present}, missing {missing}",
                file=file,
                column=missing[0],
            )
        if present:
            for c in cols:
                plan.positions[c] = (c, None)
    for c in ("confidence_pre", "confidence_post", "confidence"):
        if c in names:
            plan.floats[c] = c
    for c in _ROI_TARGETS:
        if c in names:
            plan.rois[c] = c
    return plan


def _make_plan(
    schema: pa.Schema, file: str, dialect: str, columns: Mapping[str, str] | None
) -> _Plan:
    names = set(schema.names)
    d = str(dialect or "auto").lower()
    if d not in DIALECTS:
        raise IngestError(f"unknown dialect {dialect!r}; expected one of {list(DIALECTS)}")
    if columns is not None and not isinstance(columns, Mapping):
        raise IngestError(
            "columns= must be a mapping of store column to source column, e.g. "
            f"{{'pre': 'src', 'post': 'dst'}}; got {type(columns).__name__} {columns!r:.80}"
        )
    columns = dict(columns or {})
    explicit = "pre" in columns and "post" in columns
    if explicit and d == "auto":
        plan = _Plan("columns", {})
    else:
        if d == "auto":
            cave = any(c in names for c in _CAVE_IDS)
            neu = any(c in names for c in _NEUPRINT_IDS)
            if cave and neu:
                raise IngestError(
                    f"{file}: ambiguous columns: both CAVE/FlyWire ({list(_CAVE_IDS)}) and "
                    f"neuPrint ({list(_NEUPRINT_IDS)}) ID columns are present; pass "
                    "dialect='cave' or dialect='neuprint' (or columns={...})",
                    file=file,
                )
            if not cave and not neu:
                raise IngestError(
                    f"{file}: cannot recognise the synapse table: found columns "
                    f"{sorted(names)}; expected CAVE/FlyWire {list(_CAVE_IDS)} or neuPrint "
                    f"{list(_NEUPRINT_IDS)}, or an explicit mapping "
                    "columns={'pre': ..., 'post': ...}",
                    file=file,
                )
            d = "cave" if cave else "neuprint"
        plan = _cave_plan(names, file) if d in ("cave", "flywire") else _neuprint_plan(names, file)
    _apply_columns(plan, columns)
    for t in ("pre", "post"):
        if t not in plan.ids:
            raise IngestError(f"columns= must map both 'pre' and 'post' (got {sorted(columns)})")
    return plan


def _apply_columns(plan: _Plan, columns: Mapping[str, str]) -> None:
    for target, col in columns.items():
        if not isinstance(col, str):
            raise IngestError(f"columns= [{target!r}] must be a column name, got {col!r}")
        for d in (plan.ids, plan.positions, plan.floats, plan.extras, plan.rois):
            d.pop(target, None)
        if target in ("pre", "post"):
            plan.ids[target] = col
        elif target in _POSITION_TARGETS:
            plan.positions[target] = (col, None)
        elif target in _LIST_TARGETS:
            side = _LIST_TARGETS[target]
            for k, axis in enumerate("xyz"):
                plan.positions[f"{axis}{side}"] = (col, k)
        elif target in _FLOAT_TARGETS:
            plan.floats[target] = col
        elif target in _ROI_TARGETS:
            plan.rois[target] = col
        else:
            try:
                check_name(target, "store column", error=IngestError)
            except IngestError as e:
                raise IngestError(f"columns=: {e}", column=col) from None
            plan.extras[target] = col


def _check_schema(plan: _Plan, schema: pa.Schema, file: str) -> None:
    """Every mapped column exists in this file and has a usable type."""
    names = set(schema.names)
    for c in plan.source_columns():
        if c not in names:
            used = [t for t, v in plan.describe().items() if v.split("[")[0] == c]
            raise IngestError(
                f"{file}: required column {c!r} (for {used}) is missing; the file has "
                f"columns {sorted(names)}",
                file=file,
                column=c,
            )
    for t, (c, k) in plan.positions.items():
        typ = schema.field(c).type
        if k is not None and not (_is_list(typ) or _is_texty(typ) or pa.types.is_null(typ)):
            raise IngestError(
                f"{file}: column {c!r} should hold [x, y, z] lists for {t}, but has type {typ}",
                file=file,
                column=c,
            )
        if k is None and not (_is_numeric(typ) or _is_texty(typ)):
            raise IngestError(
                f"{file}: column {c!r} ({t}) must be numeric, but has type {typ}",
                file=file,
                column=c,
            )
    for t, c in {**plan.floats, **plan.extras}.items():
        typ = schema.field(c).type
        if not (_is_numeric(typ) or _is_texty(typ)):
            raise IngestError(
                f"{file}: column {c!r} ({t}) must be numeric, but has type {typ}",
                file=file,
                column=c,
            )
    for t, c in plan.rois.items():
        typ = schema.field(c).type
        if not (_is_texty(typ) or pa.types.is_null(typ)):
            raise IngestError(
                f"{file}: column {c!r} ({t}) must hold ROI names (strings), but has type {typ}",
                file=file,
                column=c,
            )


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_stringy(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_texty(t: pa.DataType) -> bool:
    """Text, or bytes (a CSV column that is not valid UTF-8 is read as binary)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return _is_stringy(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)


# ----------------------------------------------------------------------------- values


def _decode(arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _as_text(arr: pa.Array, file: str, column: str, offset: int, *, stride: int = 1) -> pa.Array:
    """Bytes (a CSV column that is not valid UTF-8) -> text; the first undecodable row is named."""
    arr = _decode(arr)
    if not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
        return arr
    try:
        return pc.cast(arr, pa.large_string() if pa.types.is_large_binary(arr.type) else pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for i, v in enumerate(arr.to_pylist()):
        if v is None:
            continue
        try:
            v.decode("utf-8")
        except UnicodeDecodeError as e:
            raise IngestError.at(file, column, offset + i // stride,
                                 f"value {v!r} is not valid UTF-8 text ({e.reason})", v) from None
    raise IngestError(f"{file}: column {column!r} is not valid UTF-8 text", file=file, column=column)


def _looks_numeric(v: str) -> bool:
    """Whether Python would read ``v`` as a number in some notation (hex, exponent, '_', ...)."""
    for parse in (float, lambda x: int(x, 0)):
        try:
            parse(v.strip())
            return True
        except (TypeError, ValueError):
            continue
    return False


def _text_ids_to_int64(arr: pa.Array, file: str, column: str, offset: int) -> np.ndarray:
    """Body IDs given as text: plain decimal integers only (``12``, ``+12``, ``12.0``).

    ``0x1F``, ``1e3``, ``inf``, ``1_000`` or full-width digits are refused even
    though some parser would accept them: an ID is never a guess.
    """

    def fail(i: int, why: str, shown: Any = None):
        """``shown``: the parsed number (well-formed text); else the text itself is quoted."""
        v = arr[int(i)].as_py() if shown is None else shown
        raise IngestError.at(file, column, offset + int(i), f"body ID {v!r} {why}", v)

    s = pc.utf8_trim_whitespace(arr)
    missing = pc.fill_null(pc.equal(s, ""), True)
    if pc.any(missing).as_py():
        i = _first(missing)
        raise IngestError.at(file, column, offset + i, "body ID is missing (null)", None)
    ok = pc.match_substring_regex(s, _DECIMAL)
    if not pc.all(ok).as_py():
        i = _first(pc.invert(ok))
        v = arr[i].as_py()
        fail(i, "is not a decimal integer (only digits are read as body IDs)" if _looks_numeric(v)
             else "is not a number")
    try:  # the common case: plain digits (the regex above has ruled out 0x..., which Arrow reads)
        a = pc.cast(s, pa.int64()).to_numpy()
    except pa.ArrowInvalid:  # '+12', '12.0', '12.5', or beyond int64
        whole = pc.replace_substring_regex(pc.replace_substring_regex(s, r"^\+", ""), r"\.0*$", "")
        frac = pc.match_substring(whole, ".")
        if pc.any(frac).as_py():
            i = _first(frac)
            fail(i, "is not a whole number", shown=float(s[i].as_py()))
        try:
            a = pc.cast(whole, pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            vals = [int(v) for v in whole.to_pylist()]
            i = next(k for k, v in enumerate(vals) if not -(2**63) <= v < 2**63)
            fail(i, "is negative" if vals[i] < 0 else "does not fit a signed 64-bit integer",
                 shown=vals[i])
    if len(a) and a.min() < 0:
        i = int(np.argmax(a < 0))
        fail(i, "is negative", shown=int(a[i]))
    return a


def _first(mask: pa.Array) -> int:
    return int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])


def _ids_to_int64(arr: pa.Array, file: str, column: str, offset: int) -> np.ndarray:
    """Validate one batch of body IDs and return them as int64."""
    arr = _as_text(arr, file, column, offset)
    t = arr.type

    def fail(i: int, why: str):
        v = arr[int(i)].as_py()
        shown = "" if v is None else f" {v!r}"
        raise IngestError.at(file, column, offset + int(i), f"body ID{shown} {why}", v)

    if arr.null_count:
        fail(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0], "is missing (null)")
    if pa.types.is_integer(t):
        a = arr.to_numpy()
        if pa.types.is_unsigned_integer(t):
            if t.bit_width == 64 and len(a) and a.max() > np.iinfo(np.int64).max:
                fail(np.argmax(a > np.iinfo(np.int64).max), "does not fit a signed 64-bit integer")
            return a.astype(np.int64)
        a = a.astype(np.int64, copy=False)
        if len(a) and a.min() < 0:
            fail(np.argmax(a < 0), "is negative")
        return a
    if pa.types.is_floating(t):
        a = arr.to_numpy().astype(np.float64, copy=False)
        bad = np.isnan(a)
        if bad.any():
            fail(np.argmax(bad), "is missing (NaN)")
        if len(a) and a.min() < 0:
            fail(np.argmax(a < 0), "is negative")
        frac = a != np.floor(a)
        if frac.any():
            fail(np.argmax(frac), "is not a whole number")
        big = a >= _MAX_EXACT_FLOAT
        if big.any():
            fail(
                np.argmax(big),
                "is stored as floating point above 2**53 and may have lost digits; "
                "store body IDs as integers",
            )
        return a.astype(np.int64)
    if pa.types.is_null(t):
        fail(0, "is missing")
    if _is_stringy(t):  # text: every CSV ID column, or a string column of a table
        return _text_ids_to_int64(arr, file, column, offset)
    fail(0, f"is not an integer (column type {t})")
    raise AssertionError("unreachable")


def _first_unparsable(values: list) -> int:
    """Index of the first non-null value that is not a number (-1 if none)."""
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            float(v)
        except (TypeError, ValueError):
            return i
    return -1


def _to_float64(
    arr: pa.Array, file: str, column: str, offset: int, what: str, *, stride: int = 1
) -> np.ndarray:
    """Numeric (or numeric-string) Arrow array -> float64 numpy; nulls become NaN.

    ``stride`` > 1 when ``arr`` is the flattened values of a list column (the
    reported row is then ``offset + i // stride``).
    """
    arr = _as_text(arr, file, column, offset, stride=stride)
    t = arr.type
    if _is_stringy(t):
        try:
            arr = pc.cast(arr, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            vals = arr.to_pylist()
            i = _first_unparsable(vals)
            if i < 0:  # Python parses what Arrow would not (e.g. "1_000")
                return np.array([np.nan if v is None else float(v) for v in vals])
            raise IngestError.at(file, column, offset + i // stride, f"{what} {vals[i]!r} is not a number",
                                 vals[i]) from None
        t = arr.type
    if not _is_numeric(t):
        raise IngestError(
            f"{file}: column {column!r} ({what}) must be numeric, but has type {t}",
            file=file,
            column=column,
        )
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan)
    return arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _list_to_xyz(arr: pa.Array, file: str, column: str, offset: int) -> np.ndarray:
    """A column of [x, y, z] (list, fixed-size list or "[x y z]" strings) -> (n, 3) float64."""
    arr = _as_text(arr, file, column, offset)
    if _is_stringy(arr.type):
        stripped = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, r"[\[\]()]", ""))
        arr = pc.split_pattern_regex(stripped, r"[\s,]+")
    if arr.null_count:
        i = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise IngestError.at(file, column, offset + i, "position is missing")
    if not pa.types.is_fixed_size_list(arr.type) or arr.type.list_size != 3:
        lens = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        bad = lens != 3
        if bad.any():
            i = int(np.argmax(bad))
            v = arr[i].as_py()
            raise IngestError.at(file, column, offset + i, f"position {v!r} does not have 3 coordinates", v)
    values = pc.list_flatten(arr)
    return _to_float64(values, file, column, offset, "coordinate", stride=3).reshape(-1, 3)


def _check_finite(a: np.ndarray, orig: pa.Array, file: str, column: str, offset: int) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.argmax(bad))
        v = _decode(orig)[i].as_py()
        why = "is missing (null)" if v is None else f"{v!r} is missing (NaN) or not finite"
        raise IngestError.at(file, column, offset + i, f"coordinate {why}", v)


_F32_MAX = float(np.finfo(np.float32).max)


def _to_float32(v: np.ndarray, orig: pa.Array, file: str, column: str, offset: int, what: str,
                how: str = "") -> np.ndarray:
    """float64 -> float32, refusing finite values that would become inf (|x| > 3.4e38).

    ``orig`` is the source column (one value per row of ``v``, shown in the
    message); ``how`` describes a unit conversion applied to it.
    """
    with np.errstate(over="ignore"):
        out = v.astype(np.float32)
    bad = np.isinf(out) & np.isfinite(v)
    if bad.any():
        i = int(np.argmax(bad))
        src = _decode(orig)[i].as_py()
        conv = f" ({how}: {v[i]:.6g})" if how else ""
        raise IngestError.at(
            file, column, offset + i,
            f"{what} {src!r}{conv} does not fit float32 (largest {_F32_MAX:.6g}); check the units",
            src)
    return out


def _roi_values(arr: pa.Array) -> set[str]:
    arr = _decode(arr)
    if pa.types.is_null(arr.type):
        return set()
    return {v for v in pc.unique(arr).to_pylist() if v}


def _check_roi_name(name: str, arr: pa.Array, file: str, column: str, offset: int) -> None:
    """ROI names follow the package's one name rule (:func:`~connectome_dask._fsutil.check_name`)."""
    try:
        check_name(name, "ROI name", error=IngestError)
    except IngestError as e:
        i = int(pc.index(_decode(arr), name).as_py())
        raise IngestError.at(file, column, offset + i, str(e), name) from None


def _roi_codes(arr: pa.Array, names: pa.Array) -> np.ndarray:
    arr = _decode(arr)
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        arr = pc.cast(arr, pa.string())  # valid UTF-8: checked in pass 1
    if pa.types.is_null(arr.type):
        return np.full(len(arr), -1, dtype=np.int16)
    idx = pc.index_in(arr, value_set=names)
    return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int16)


# ----------------------------------------------------------------------------- passes


@dataclass
class _Scan:
    body_ids: np.ndarray
    pre_ids: np.ndarray
    pre_counts: np.ndarray
    n_rows: int
    roi_names: list[str]
    file_rows: dict[str, int]


def _batches(
    frag: Any, columns: list[str], batch_rows: int, file: str, plan: _Plan, fmt: str
) -> Iterator[pa.RecordBatch]:
    try:
        yield from frag.to_batches(
            columns=columns,
            batch_size=batch_rows,
            batch_readahead=_READAHEAD,
            fragment_readahead=1,
            use_threads=True,
        )
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
        read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
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


def _pass1(src: _Source, plan: _Plan, batch_rows: int, bar: Any) -> _Scan:
    id_cols = [plan.ids["pre"], plan.ids["post"]]
    roi_cols = list(dict.fromkeys(plan.rois.values()))
    cols = list(dict.fromkeys(id_cols + roi_cols))
    uniq: list[np.ndarray] = []
    pre_keys = np.zeros(0, dtype=np.int64)
    pre_cnts = np.zeros(0, dtype=np.int64)
    rois: set[str] = set()
    n_total = 0
    file_rows: dict[str, int] = {}
    for file, frag in src.fragments():
        _check_schema(plan, _schema_of(frag, file), file)
        offset = 0
        for batch in _batches(frag, cols, batch_rows, file, plan, src.fmt):
            n = batch.num_rows
            if n == 0:
                continue
            pre = _ids_to_int64(batch.column(id_cols[0]), file, id_cols[0], offset)
            post = _ids_to_int64(batch.column(id_cols[1]), file, id_cols[1], offset)
            uniq.append(pd.unique(np.concatenate([pre, post])))
            vc = pd.Series(pre).value_counts(sort=False)
            keys = np.concatenate([pre_keys, vc.index.to_numpy(np.int64)])
            cnts = np.concatenate([pre_cnts, vc.to_numpy(np.int64)])
            g = pd.Series(cnts).groupby(keys, sort=True).sum()
            pre_keys, pre_cnts = g.index.to_numpy(np.int64), g.to_numpy(np.int64)
            if len(uniq) >= 16:
                uniq = [pd.unique(np.concatenate(uniq))]
            for c in roi_cols:
                col = _as_text(batch.column(c), file, c, offset)
                new = _roi_values(col) - rois
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
    body_ids = np.sort(pd.unique(np.concatenate(uniq))).astype(np.int64)
    return _Scan(body_ids, pre_keys, pre_cnts, n_total, sorted(rois), file_rows)


def _encode(ids: np.ndarray, body_index: pd.Index) -> np.ndarray:
    """Dense indices of ``ids`` in the sorted unique body IDs.

    The same as ``np.searchsorted(body_ids, ids)`` for IDs known to be present
    (pass 1 saw them all), but a hash lookup: ~5x faster on whole-brain ID
    sets, where binary search is dominated by cache misses.
    """
    pos = body_index.get_indexer(ids)
    if len(pos) and pos.min() < 0:  # pass 2 saw an ID pass 1 did not: the input changed
        raise IngestError(f"body ID {ids[np.argmax(pos < 0)]} appeared only in the second pass")
    return pos.astype(np.int32)


def _convert_batch(
    batch: pa.RecordBatch,
    plan: _Plan,
    body_index: pd.Index,
    scale: np.ndarray,
    shift: np.ndarray,
    roi_names: pa.Array,
    out_dtypes: Mapping[str, str],
    file: str,
    offset: int,
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for t in ("pre", "post"):
        c = plan.ids[t]
        out[t] = _encode(_ids_to_int64(batch.column(c), file, c, offset), body_index)
    lists: dict[str, np.ndarray] = {}
    for t, (c, k) in plan.positions.items():
        axis = "xyz".index(t[0])
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
        out[t] = _to_float32(_to_float64(raw, file, c, offset, t), raw, file, c, offset, t)
    for t, c in plan.extras.items():
        raw = batch.column(c)
        if pa.types.is_integer(_decode(raw).type) and out_dtypes[t] == "int64":
            if raw.null_count:
                i = int(np.flatnonzero(raw.is_null().to_numpy(zero_copy_only=False))[0])
                raise IngestError.at(file, c, offset + i, "value is missing")
            out[t] = _decode(raw).to_numpy().astype(np.int64)
        else:
            out[t] = _to_float32(_to_float64(raw, file, c, offset, t), raw, file, c, offset, t)
    for t, c in plan.rois.items():
        out[t] = _roi_codes(batch.column(c), roi_names)
    return out


# ----------------------------------------------------------------------------- neurons


_NEURON_ID_COLUMNS = ("bodyId", "root_id", "pt_root_id")


def _read_table(path: str) -> pd.DataFrame:
    fmt = _format_of(path)
    if fmt == "parquet":
        return pd.read_parquet(path, page_checksum_verification=True)
    if fmt == "ipc":
        return pd.read_feather(path)
    return pd.read_csv(path, dtype_backend="numpy_nullable")


def _load_neurons(neurons: Any) -> tuple[pd.DataFrame, str]:
    """Read and validate the neuron table; return it with a unique int64 ``bodyId``."""
    if isinstance(neurons, pd.DataFrame):
        df, label = neurons.copy(), "<neurons DataFrame>"
    elif isinstance(neurons, str | os.PathLike):
        label = os.fspath(neurons)
        if "\x00" in label or not os.path.isfile(label):
            raise IngestError(f"neuron table {label!r} does not exist", file=label)
        try:
            df = _read_table(label)
        except IngestError:
            raise
        except (pa.ArrowException, ValueError, OSError, RecursionError) as e:
            # corrupt pages (CRC), truncated files, text that is not UTF-8, empty CSV files
            raise IngestError(f"{label}: cannot read the neuron table ({type(e).__name__}: {e})",
                              file=label) from None
    else:
        raise IngestError(
            "neurons= must be a path to a CSV/Parquet/Feather table or a pandas DataFrame, "
            f"got {type(neurons).__name__} {neurons!r:.80}"
        )
    df = df.reset_index(drop=True)
    _check_neuron_columns(df, label)
    idcol = next((c for c in _NEURON_ID_COLUMNS if c in df.columns), None)
    if idcol is None:
        raise IngestError(
            f"{label}: the neuron table needs a body ID column, one of {list(_NEURON_ID_COLUMNS)}; "
            f"found {sorted(map(str, df.columns))}",
            file=label,
        )
    ids = _ids_to_int64(_arrow_column(df[idcol], label, idcol), label, idcol, 0)
    if idcol != "bodyId":
        df = df.drop(columns=[c for c in ("bodyId",) if c in df.columns]).rename(
            columns={idcol: "bodyId"}
        )
    df["bodyId"] = ids
    if "type" not in df.columns and "cell_type" in df.columns:
        df = df.rename(columns={"cell_type": "type"})
    df = df.drop(columns=[c for c in ("index",) if c in df.columns])
    df = df.rename(columns={c: f"{c}_source" for c in ("pre", "post") if c in df.columns})
    try:
        dedup = df.drop_duplicates()
    except (TypeError, ValueError):  # unhashable cells (lists, arrays): compare their text
        dedup = df.loc[~df.astype(str).duplicated()]
    dup = dedup["bodyId"].duplicated(keep=False)
    if dup.any():
        bid = int(dedup.loc[dup, "bodyId"].iloc[0])
        rows = dedup.index[dedup["bodyId"] == bid].tolist()
        a, b = dedup.loc[rows[0]], dedup.loc[rows[1]]
        diff = [c for c in dedup.columns if not _same(a[c], b[c])]
        raise IngestError(
            f"{label}: column {idcol!r}, rows {rows[:5]}: bodyId {bid} appears with different "
            f"annotations (differing columns: {diff})",
            file=label,
            column=idcol,
            row=int(rows[1]),
            value=bid,
        )
    out = dedup.reset_index(drop=True)
    for c in out.columns:
        if c == "bodyId":
            continue
        s = out[c]
        if pd.api.types.is_integer_dtype(s.dtype) and not isinstance(s.dtype, pd.ArrowDtype):
            out[c] = s.astype("Int64")
        elif pd.api.types.is_bool_dtype(s.dtype):
            out[c] = s.astype("boolean")
    return out, label


def _same(a: Any, b: Any) -> bool:
    """Cell equality for annotation values (scalars, missing values, lists, arrays)."""
    try:
        if pd.isna(a) and pd.isna(b):
            return True
    except (TypeError, ValueError):  # lists / arrays
        pass
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _check_neuron_columns(df: pd.DataFrame, label: str) -> None:
    """Column names follow the name rule, once each; every column converts to Arrow.

    Run before the synapse passes: a column Arrow cannot store (mixed ints and
    strings, deep nesting) used to fail only when the finished store was written.
    """
    if df.columns.has_duplicates:
        dup = df.columns[df.columns.duplicated()][0]
        raise IngestError(f"{label}: column {dup!r} appears more than once", file=label,
                          column=str(dup))
    for c in df.columns:
        try:
            check_name(c, "neuron table column", error=IngestError)
        except IngestError as e:
            raise IngestError(f"{label}: {e}", file=label, column=c) from None
    for c in df.columns:
        _arrow_column(df[c], label, c)


def _merge_neurons(body_ids: np.ndarray, table: pd.DataFrame | None) -> pd.DataFrame:
    base = pd.DataFrame({"bodyId": body_ids})
    if table is None:
        return base
    return base.merge(table, on="bodyId", how="left", validate="one_to_one")


# ----------------------------------------------------------------------------- units


def _units(
    units: str, voxel_size: Any, voxel_offset: Any
) -> tuple[str, np.ndarray, np.ndarray, list[float] | None, list[float] | None]:
    u = str(units).lower()

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
    if u in _NM_UNITS:
        if off is not None:
            raise IngestError("voxel_offset only applies with units='voxels'")
        return "nm", np.ones(3), np.zeros(3), (size.tolist() if size is not None else None), None
    if u in _VOXEL_UNITS:
        if size is None:
            raise IngestError("units='voxels' needs voxel_size, e.g. voxel_size=(4, 4, 40)")
        off = np.zeros(3) if off is None else off
        return "voxels", size, off, size.tolist(), off.tolist()
    raise IngestError(f"unknown units {units!r}; expected 'nm' or 'voxels' (with voxel_size)")


# ----------------------------------------------------------------------------- main


def _writer_supports_rois() -> bool:
    return "rois" in inspect.signature(StoreWriter.close).parameters


def _count(v: Any, what: str, hi: int | None = None) -> int:
    """A positive whole number of rows (``hi`` = upper bound), else an :class:`IngestError`."""
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


def _check_target(path: Path, overwrite: bool, src: _Source) -> None:
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
    for f in src.files:
        if root in Path(f).resolve().parents:
            raise IngestError(f"source file {f} lies inside the target store {path}", file=f)


def _progress_bar(progress: bool | None, total: int | None, desc: str):
    if progress is None:
        import dask

        progress = bool(dask.config.get("connectome_dask.progress", True))
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rows", unit_scale=True, file=sys.stderr, leave=False)


def ingest(
    source: Any,
    path: str | os.PathLike,
    *,
    neurons: str | os.PathLike | pd.DataFrame | None = None,
    dialect: str = "auto",
    columns: Mapping[str, str] | None = None,
    units: str = "nm",
    voxel_size: Sequence[float] | float | None = None,
    voxel_offset: Sequence[float] | float | None = None,
    overwrite: bool = False,
    chunk_rows: int | None = None,
    name: str | None = None,
    version: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
    progress: bool | None = None,
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
        ``"auto"`` (detect), ``"cave"`` / ``"flywire"`` or ``"neuprint"``;
        see the module documentation for the columns of each.
    columns
        Explicit mapping of store column to source column
        (``{"pre": ..., "post": ..., "x_pre": ..., "confidence": ...}``).
    units
        Units of the source positions: ``"nm"`` or ``"voxels"``.
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
    progress
        Show progress bars (default: dask config ``connectome_dask.progress``).

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
    src_units, scale, shift, vsize, voffset = _units(units, voxel_size, voxel_offset)
    src = _resolve_source(source)
    _check_target(path, overwrite, src)
    first_file, first_frag = next(src.fragments())
    first_schema = _schema_of(first_frag, first_file)
    plan = _make_plan(first_schema, first_file, dialect, columns)
    if src.fmt == "csv":  # body IDs as text: only decimal integers are IDs (not 1e3 or 0x1F)
        paths = [f.path for f in src.dataset.get_fragments()]
        try:
            src.dataset = ds.dataset(paths, format=_file_format("csv", list(plan.ids.values())))
        except (pa.ArrowException, OSError) as e:
            raise IngestError(f"cannot open {src.label} as csv: {e}", file=src.label) from None
        first_file, first_frag = next(src.fragments())
        first_schema = _schema_of(first_frag, first_file)
    if plan.rois and not _writer_supports_rois():
        warnings.warn(
            f"ROI columns {sorted(plan.rois)} are not ingested: this StoreWriter cannot record "
            "ROI names yet (StoreWriter.close has no 'rois' parameter)",
            UserWarning,
            stacklevel=2,
        )
        plan.rois = {}
    neuron_table, neuron_label = (None, None) if neurons is None else _load_neurons(neurons)

    # ---- pass 1: ids (and ROI names), validation
    total = None
    if src.fmt in ("parquet", "ipc", "memory"):
        total = _count_rows(src)  # reads every footer: an unreadable file is named here
    bar = _progress_bar(progress, total, "ingest 1/2 (ids)")
    try:
        scan = _pass1(src, plan, batch_rows, bar)
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

    out_dtypes: dict[str, str] = {t: "float32" for t in plan.positions}
    out_dtypes.update({t: "float32" for t in plan.floats})
    for t, c in plan.extras.items():
        typ = first_schema.field(c).type
        out_dtypes[t] = "int64" if pa.types.is_integer(typ) else "float32"
    out_dtypes.update({t: "int16" for t in plan.rois})
    roi_names = pa.array(scan.roi_names, type=pa.string())
    body_index = pd.Index(body_ids)

    # ---- pass 2: convert and write
    read_cols = plan.source_columns()
    bar = _progress_bar(progress, scan.n_rows, "ingest 2/2 (write)")
    try:
        with _write_errors(path), StoreWriter(
            path,
            n_neurons,
            out_dtypes,
            chunk_rows=chunk,
            pre_counts=pre_counts,
            bucket_rows=bucket_rows,
            overwrite=overwrite,
        ) as writer:
            buf: list[dict[str, np.ndarray]] = []
            buffered = written = 0
            for file, frag in src.fragments():
                offset = 0
                for batch in _batches(frag, read_cols, batch_rows, file, plan, src.fmt):
                    if batch.num_rows == 0:
                        continue
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
                        )
                    )
                    offset += batch.num_rows
                    buffered += batch.num_rows
                    written += batch.num_rows
                    if bar is not None:
                        bar.update(batch.num_rows)
                    if buffered >= batch_rows:
                        writer.append(_concat(buf))
                        buf, buffered = [], 0
            if buf:
                writer.append(_concat(buf))
            if written != scan.n_rows:
                raise IngestError(
                    f"{src.label} changed while being ingested: {scan.n_rows} rows in pass 1, "
                    f"{written} in pass 2"
                )
            meta = {
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
            if version is not None:
                meta["version"] = str(version)
            if plan.rois:
                rois = {"names": scan.roi_names, "primary": list(scan.roi_names), "hierarchy": {}}
                conn = writer.close(neurons_df, meta, rois=rois)  # type: ignore[call-arg]
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


# ----------------------------------------------------------------------------- CLI


def _parse_mapping(items: Sequence[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    out = {}
    for it in items:
        if "=" not in it:
            raise IngestError(f"--column expects STORE_COLUMN=SOURCE_COLUMN, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``connectome-dask ingest`` arguments to an argparse parser.

    Examples
    --------
    >>> import argparse
    >>> p = add_arguments(argparse.ArgumentParser())
    >>> a = p.parse_args(["syn.parquet", "store", "--units", "voxels", "--voxel-size", "4", "4", "40"])
    >>> a.source, a.path, a.voxel_size
    (['syn.parquet'], 'store', [4.0, 4.0, 40.0])
    """
    parser.add_argument("source", nargs="+", help="Parquet/CSV/Feather file(s), directory or glob")
    parser.add_argument("path", help="store directory to create")
    parser.add_argument(
        "--neurons", help="neuron table (CSV/Parquet/Feather) with bodyId or root_id"
    )
    parser.add_argument("--dialect", default="auto", choices=DIALECTS, help="column dialect")
    parser.add_argument(
        "--column",
        action="append",
        metavar="STORE=SOURCE",
        help="explicit column mapping, e.g. --column pre=src --column post=dst (repeatable)",
    )
    parser.add_argument("--units", default="nm", help="units of source positions: nm or voxels")
    parser.add_argument("--voxel-size", nargs=3, type=float, metavar=("X", "Y", "Z"))
    parser.add_argument("--voxel-offset", nargs=3, type=float, metavar=("X", "Y", "Z"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")
    parser.add_argument("--chunk-rows", type=int, default=None, help="Zarr chunk length (rows)")
    parser.add_argument(
        "--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per read batch"
    )
    parser.add_argument(
        "--bucket-rows", type=int, default=DEFAULT_BUCKET_ROWS, help="rows per sort bucket"
    )
    parser.add_argument("--name", default=None, help="dataset name for meta.json")
    parser.add_argument("--version", dest="dataset_version", default=None, help="dataset version")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def run_from_args(args: argparse.Namespace) -> Connectome:
    """Run ``connectome-dask ingest`` from arguments parsed with :func:`add_arguments`.

    Returns the new :class:`~connectome_dask.store.Connectome` (the CLI prints
    it); errors are raised as :class:`IngestError` for the CLI to report.

    Examples
    --------
    >>> import argparse
    >>> pd.DataFrame({"bodyId_pre": [1, 2], "bodyId_post": [2, 1]}).to_csv(tmp_path / "e.csv", index=False)
    >>> args = add_arguments(argparse.ArgumentParser()).parse_args(
    ...     [str(tmp_path / "e.csv"), str(tmp_path / "st"), "--no-progress"])
    >>> run_from_args(args).n_synapses
    2
    """
    src = args.source[0] if len(args.source) == 1 else list(args.source)
    return ingest(
        src,
        args.path,
        neurons=args.neurons,
        dialect=args.dialect,
        columns=_parse_mapping(args.column),
        units=args.units,
        voxel_size=args.voxel_size,
        voxel_offset=args.voxel_offset,
        overwrite=args.overwrite,
        chunk_rows=args.chunk_rows,
        name=args.name,
        version=args.dataset_version,
        batch_rows=args.batch_rows,
        bucket_rows=args.bucket_rows,
        progress=not args.no_progress,
    )
