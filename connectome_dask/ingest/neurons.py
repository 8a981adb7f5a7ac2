"""Neuron tables: :func:`read_neuron_table` (reading, validation), ingest's renames, the merge with the body IDs."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._fsutil import check_name
from ..errors import IngestError
from .sources import _arrow_column, _format_of
from .values import _ids_to_int64

__all__ = ["NEURON_ID_COLUMNS", "read_neuron_table"]

#: Body ID column of a neuron table, in order of preference (neuPrint, CAVE, CAVE tables).
NEURON_ID_COLUMNS = ("bodyId", "root_id", "pt_root_id")


def _read_table(path: str) -> pd.DataFrame:
    fmt = _format_of(path)
    if fmt == "parquet":
        return pd.read_parquet(path, page_checksum_verification=True)
    if fmt == "ipc":
        return pd.read_feather(path)
    return pd.read_csv(path, dtype_backend="numpy_nullable")


def read_neuron_table(neurons: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Read and validate a neuron table: one row per body, with an int64 ``bodyId`` column.

    The one reader of user-supplied neuron tables (:func:`~connectome_dask.ingest.ingest`'s
    and :func:`~connectome_dask.datasets.synthetic`'s ``neurons=``). A store's own
    ``neurons.parquet`` is read by :func:`connectome_dask.store.read_neuron_table`.

    * CSV, Parquet (page checksums verified) or Feather/Arrow IPC files, by
      suffix or magic bytes; a DataFrame is copied (its index is dropped).
    * Column names follow the package's name rule
      (:func:`~connectome_dask._fsutil.check_name`), each once; every column
      converts to Arrow (no mixed-type or too deeply nested columns).
    * The body ID column is the first of :data:`NEURON_ID_COLUMNS`
      present; it becomes ``bodyId`` (another ``bodyId`` column is
      dropped). IDs follow the ingest rules (no missing, negative or
      fractional IDs; text must be decimal digits).
    * A column named ``index`` (a written-out DataFrame index) is dropped.
    * Identical duplicate rows are merged; the same ID with different
      annotations is refused.

    Parameters
    ----------
    neurons
        Path to a CSV/Parquet/Feather table, or a pandas DataFrame.

    Returns
    -------
    table : pandas.DataFrame
        The validated rows (0-based index), ``bodyId`` int64 and unique, the
        other columns as read.
    label : str
        The file path, or ``"<neurons DataFrame>"``, as used in messages.

    Raises
    ------
    IngestError
        The file does not exist or cannot be read (damaged, not UTF-8, empty),
        ``neurons`` is neither a path nor a DataFrame, a column name breaks the
        name rule or appears twice, a column cannot be stored, there is no body
        ID column, an ID is invalid, or one ID has rows with different
        annotations. The error names the file and, where one applies, the
        column and the (0-based data) row.

    Examples
    --------
    >>> nt = pd.DataFrame({"root_id": [7, 5, 7], "type": ["KC", "PN", "KC"]})
    >>> df, label = read_neuron_table(nt)
    >>> df.to_dict("list"), label
    ({'bodyId': [7, 5], 'type': ['KC', 'PN']}, '<neurons DataFrame>')
    >>> read_neuron_table(pd.DataFrame({"bodyId": [5, 5], "type": ["a", "b"]}))
    Traceback (most recent call last):
    ...
    connectome_dask.errors.IngestError: <neurons DataFrame>: column 'bodyId', rows [0, 1]: bodyId 5 appears with different annotations (differing columns: ['type'])
    """
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
    idcol = next((c for c in NEURON_ID_COLUMNS if c in df.columns), None)
    if idcol is None:
        raise IngestError(
            f"{label}: the neuron table needs a body ID column, one of {list(NEURON_ID_COLUMNS)}; "
            f"found {sorted(map(str, df.columns))}",
            file=label,
        )
    ids = _ids_to_int64(_arrow_column(df[idcol], label, idcol), label, idcol, 0)
    if idcol != "bodyId":
        df = df.drop(columns=[c for c in ("bodyId",) if c in df.columns]).rename(
            columns={idcol: "bodyId"}
        )
    df["bodyId"] = ids
    df = df.drop(columns=[c for c in ("index",) if c in df.columns])
    if not df["bodyId"].duplicated().any():  # each ID once: no row can repeat (hashing every cell took 15 ms)
        dedup, dup = df, None
    else:
        try:
            dedup = df.drop_duplicates()
        except (TypeError, ValueError):  # unhashable cells (lists, arrays): compare their text
            dedup = df.loc[~df.astype(str).duplicated()]
        dup = dedup["bodyId"].duplicated(keep=False)
    if dup is not None and dup.any():
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
    return dedup.reset_index(drop=True), label


def _load_neurons(neurons: Any) -> tuple[pd.DataFrame, str]:
    """The neuron table as ingest stores it: :func:`read_neuron_table`, then ingest's renames.

    crantpy-style ``cell_type`` becomes ``type`` (when there is no ``type``);
    the table's own ``pre``/``post`` become ``pre_source``/``post_source``
    (ingest recomputes ``pre``/``post`` from the synapses); integer and
    boolean annotations become nullable (``Int64``, ``boolean``) so that
    bodies without annotations merge in without a float round trip.
    """
    df, label = read_neuron_table(neurons)
    if "type" not in df.columns and "cell_type" in df.columns:
        df = df.rename(columns={"cell_type": "type"})
    df = df.rename(columns={c: f"{c}_source" for c in ("pre", "post") if c in df.columns})
    for c in df.columns:
        if c == "bodyId":
            continue
        s = df[c]
        if pd.api.types.is_integer_dtype(s.dtype) and not isinstance(s.dtype, pd.ArrowDtype):
            df[c] = s.astype("Int64")
        elif pd.api.types.is_bool_dtype(s.dtype):
            df[c] = s.astype("boolean")
    return df, label


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
