"""Finding and reading synapse tables: files, formats, schemas and row counts."""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from ..errors import IngestError

__all__: list[str] = []  # internal helpers of the package only

_MAX_NESTING = 64  # nesting depth of list/dict values in a neuron table


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


def _csv_read_options(column_names: Sequence[str] | None = None):
    """CSV read options: blocks of ``_CSV_BLOCK_BYTES`` (Arrow infers types from the first).

    ``column_names``: the names of a header-less file's columns (its first row is data).
    """
    import pyarrow.csv as pacsv

    if column_names:
        return pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES, column_names=list(column_names))
    return pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES)


def _file_format(fmt: str, text_columns: Sequence[str] = (), column_names: Sequence[str] | None = None):
    """The dataset format of ``fmt``; CSV ``text_columns`` are read as text, not inferred.

    Body ID columns of CSV files are read as text (bytes) so that only plain
    decimal integers are accepted (Arrow's inference would turn ``1e3`` into 1000.0).
    Parquet page checksums (CRC32, when the writer stored them) are verified.
    """
    if fmt == "csv":
        import pyarrow.csv as pacsv

        return ds.CsvFileFormat(
            read_options=_csv_read_options(column_names),
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


def _resolve_source(source: Any, column_names: Sequence[str] | None = None) -> _Source:
    """Turn a path / directory / glob / list of them / table into a dataset.

    ``column_names``: the column names of header-less CSV files.
    """
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
        dataset = ds.dataset(files, format=_file_format(fmt, column_names=column_names))
    except (pa.ArrowInvalid, OSError) as e:
        raise IngestError(f"cannot open {label} as {fmt}: {e}", file=label) from None
    return _Source(label, [str(Path(f).resolve()) for f in files], fmt, dataset)
