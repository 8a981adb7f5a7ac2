"""neuprint-python's ``neuprint.utils``: connection-table helpers that need no server.

:func:`connection_table_to_matrix` and :func:`merge_neuron_properties` give
the same frames as neuprint-python 0.6.4's (values, dtypes, row and column
order); the tests compare them with neuprint-python's own functions.

Examples
--------
>>> conn_df = pd.DataFrame({"bodyId_pre": [1, 1, 2], "bodyId_post": [3, 2, 3], "weight": [5, 1, 2]})
>>> connection_table_to_matrix(conn_df)  # doctest: +NORMALIZE_WHITESPACE
bodyId_post  3  2
bodyId_pre
1            5  1
2            2  0
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..criteria import IsNull, NotNull
from ..errors import CriteriaError, UnknownColumnError

__all__ = [
    "connection_table_to_matrix",
    "merge_neuron_properties",
    "ensure_list",
    "iter_batches",
    "NotNull",
    "IsNull",
]


def ensure_list(x: Any) -> list:
    """``x`` as a list: ``None`` -> ``[]``, arrays / Series / collections -> plain lists, else ``[x]``.

    Parameters
    ----------
    x
        Anything.

    Returns
    -------
    list
        Numpy scalars become Python scalars (as ``ndarray.tolist``).

    Examples
    --------
    >>> ensure_list(None), ensure_list("PB"), ensure_list(np.array([1, 2])), ensure_list((3,))
    ([], ['PB'], [1, 2], [3])
    """
    if x is None:
        return []
    if isinstance(x, np.ndarray | pd.Series | pd.Index):
        return x.tolist()
    if isinstance(x, Collection) and not isinstance(x, str | bytes):
        return np.asarray(list(x) if not isinstance(x, Sequence) else x).tolist()
    return [x]


def iter_batches(it: Iterable, batch_size: int) -> Iterator[list]:
    """Consecutive lists of at most ``batch_size`` items of ``it`` (a DataFrame: row slices).

    Parameters
    ----------
    it
        An iterable (or a DataFrame, split into row blocks).
    batch_size
        Items per batch (at least 1).

    Yields
    ------
    list or pandas.DataFrame

    Raises
    ------
    connectome_dask.errors.CriteriaError
        ``batch_size`` below 1.

    Examples
    --------
    >>> list(iter_batches(range(5), 2))
    [[0, 1], [2, 3], [4]]
    """
    if int(batch_size) < 1:
        raise CriteriaError(f"batch_size must be at least 1, got {batch_size!r}")
    if isinstance(it, pd.DataFrame):
        for start in range(0, len(it), batch_size):
            yield it.iloc[start:start + batch_size]
        return
    batch: list = []
    for x in it:
        batch.append(x)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def merge_neuron_properties(neuron_df: pd.DataFrame, conn_df: pd.DataFrame,
                            properties: str | Sequence[str] = ("type", "instance")) -> pd.DataFrame:
    """Append ``<prop>_pre`` / ``<prop>_post`` columns to a connection table (neuprint's util).

    Re-merging is idempotent: ``<prop>_pre`` / ``<prop>_post`` columns already in
    ``conn_df`` are replaced, not duplicated.

    Parameters
    ----------
    neuron_df
        ``bodyId`` and the ``properties`` columns (e.g. the first frame of
        :func:`~connectome_dask.neuprint.fetch_adjacencies`).
    conn_df
        A connection table with ``bodyId_pre`` and ``bodyId_post``.
    properties
        A column name or a list of them.

    Returns
    -------
    pandas.DataFrame
        ``conn_df``'s rows in its order (left merges), its columns without
        old copies of the new ones, then ``<p>_pre`` for every property, then
        ``<p>_post``; missing where a body is not in ``neuron_df`` (a body
        listed twice in ``neuron_df`` repeats its rows, as in a merge).

    Raises
    ------
    connectome_dask.errors.UnknownColumnError
        ``neuron_df`` lacks ``bodyId`` or a property, or ``conn_df`` lacks
        ``bodyId_pre`` / ``bodyId_post`` (also a ``KeyError``).

    Examples
    --------
    >>> n = pd.DataFrame({"bodyId": [1, 2], "type": ["A", "B"]})
    >>> c = pd.DataFrame({"bodyId_pre": [1], "bodyId_post": [2], "weight": [3]})
    >>> merge_neuron_properties(n, merge_neuron_properties(n, c, "type"), "type")
       bodyId_pre  bodyId_post  weight type_pre type_post
    0           1            2       3        A         B
    """
    props = ensure_list(properties)
    missing = [p for p in ["bodyId", *props] if p not in neuron_df.columns]
    if missing:
        raise UnknownColumnError(f"neuron_df has no columns {missing}; available: {list(neuron_df.columns)}")
    for c in ("bodyId_pre", "bodyId_post"):
        if c not in conn_df.columns:
            raise UnknownColumnError(f"conn_df has no column {c!r}; available: {list(conn_df.columns)}")
    table = neuron_df[["bodyId", *props]]
    old = [f"{p}_{side}" for side in ("pre", "post") for p in props]
    out = conn_df.drop(columns=[c for c in old if c in conn_df.columns])
    for side in ("pre", "post"):
        named = table.set_axis([f"bodyId_{side}", *(f"{p}_{side}" for p in props)], axis=1)
        out = out.merge(named, "left", on=f"bodyId_{side}")
    return out


def _two(names: str | Sequence[str], what: str) -> tuple[str, str]:
    if isinstance(names, str):
        return f"{names}_pre", f"{names}_post"
    names = list(names)
    if len(names) != 2:
        raise CriteriaError(f"{what} must be one name (a prefix) or two column names, got {names!r}")
    return str(names[0]), str(names[1])


def _label_key(label: Any) -> Any:
    # neuprint's make_square order: labels sorted, falsy labels (None, '') as ''
    return label if label else ""


def connection_table_to_matrix(conn_df: pd.DataFrame, group_cols: str | Sequence[str] = "bodyId",
                               weight_col: str = "weight", sort_by: str | Sequence[str] | None = None,
                               make_square: bool = False) -> pd.DataFrame:
    """Pivot a connection table into a weighted pre x post matrix (neuprint's util).

    Weights of repeated (pre, post) label pairs are summed.

    Parameters
    ----------
    conn_df
        A connection table.
    group_cols
        The row and column labels: two column names, e.g. ``('bodyId_pre',
        'type_post')``, or one prefix, e.g. ``'type'`` for ``('type_pre',
        'type_post')``.
    weight_col
        The column summed.
    sort_by
        Order rows by the first and columns by the second of two columns (or
        a prefix, as ``group_cols``): each label at the place where it first
        appears in ``conn_df`` sorted by that column (pandas' default sort).
        Default: the order in which labels first appear in ``conn_df``.
    make_square
        Use the union of the row and column labels on both axes, sorted
        (missing and empty labels sort as ``''``); inserted entries are
        ``0.0`` (the matrix becomes float when entries are inserted, as in
        neuprint-python).

    Returns
    -------
    pandas.DataFrame
        Index named by the row column, columns by the column column; values
        of ``weight_col``'s dtype (unless ``make_square`` inserted entries).

    Raises
    ------
    connectome_dask.errors.CriteriaError
        ``group_cols`` or ``sort_by`` is neither a name nor two names.
    connectome_dask.errors.UnknownColumnError
        A named column is not in ``conn_df`` (also a ``KeyError``).

    Examples
    --------
    >>> c = pd.DataFrame({"bodyId_pre": [1, 1, 2], "bodyId_post": [3, 2, 3], "weight": [5, 1, 2],
    ...                   "type_post": ["B", "A", "B"]})
    >>> connection_table_to_matrix(c, ("bodyId_pre", "type_post"))  # doctest: +NORMALIZE_WHITESPACE
    type_post   B  A
    bodyId_pre
    1           5  1
    2           2  0
    >>> connection_table_to_matrix(c, "bodyId", sort_by=("bodyId_pre", "type_post")).columns.tolist()
    [2, 3]
    """
    col_pre, col_post = _two(group_cols, "group_cols")
    missing = [c for c in (col_pre, col_post, weight_col) if c not in conn_df.columns]
    if missing:
        raise UnknownColumnError(f"conn_df has no columns {missing}; available: {list(conn_df.columns)}")
    dtype = conn_df[weight_col].dtype
    sums = conn_df.groupby([col_pre, col_post], sort=False)[weight_col].sum()
    matrix = sums.unstack(col_post).fillna(0).astype(dtype)
    if sort_by:
        s_pre, s_post = _two(sort_by, "sort_by")
        missing = [c for c in (s_pre, s_post) if c not in conn_df.columns]
        if missing:
            raise UnknownColumnError(f"sort_by columns {missing} not in conn_df")
        rows = conn_df.sort_values(s_pre)[col_pre].unique()
        cols = conn_df.sort_values(s_post)[col_post].unique()
    else:
        rows, cols = conn_df[col_pre].unique(), conn_df[col_post].unique()
    matrix = matrix.reindex(index=rows, columns=cols)
    matrix.index.name, matrix.columns.name = col_pre, col_post
    if make_square:
        labels = sorted(set(matrix.index) | set(matrix.columns), key=_label_key)
        inserted = set(matrix.index) != set(matrix.columns)
        matrix = matrix.reindex(index=labels, columns=labels)
        if inserted:
            matrix = matrix.astype(np.float64).fillna(0.0)
        matrix.index.name, matrix.columns.name = col_pre, col_post
    return matrix
