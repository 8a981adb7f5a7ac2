"""The package's exceptions: one hierarchy, so one ``except`` catches every expected error.

Every error a user can cause (bad input, a damaged or busy store, an unknown
name) derives from :class:`ConnectomeDaskError`, itself a ``ValueError``; the
CLI prints such errors and exits 2. Anything else is a bug and keeps its
traceback.

::

    ConnectomeDaskError(ValueError)
    ├── StoreError                  a store is missing, malformed, busy, or a write was refused
    │   ├── PathError               a path or name would leave the store / is not the package's to replace
    │   ├── IngestError             a source table cannot be ingested (file, column, row, value)
    │   └── RoiError                ROI meshes, names or hierarchy are unusable
    ├── CriteriaError               invalid selection criteria
    │   ├── UnknownRoiError         (also a KeyError) an ROI name the store does not define
    │   └── UnknownColumnError      (also a KeyError) a neuron property the store does not have
    ├── SkeletonError               a malformed SWC file or skeleton table, or a missing skeleton
    ├── ConfigError                 a misspelled or invalid ``connectome_dask.*`` dask config key
    ├── DenseMatrixTooLarge         (also a MemoryError) a dense result that would not fit
    └── ResultTooLarge              (also a MemoryError) a table result above the memory budget, with
                                    nowhere to stream it

Examples
--------
>>> issubclass(UnknownRoiError, KeyError), issubclass(IngestError, StoreError)
(True, True)
>>> try:
...     raise UnknownRoiError("ROI 'XYZ' is not in the store")
... except ConnectomeDaskError as e:
...     print(type(e).__name__)
UnknownRoiError
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "ConnectomeDaskError",
    "CriteriaError",
    "DenseMatrixTooLarge",
    "IngestError",
    "PathError",
    "ResultTooLarge",
    "RoiError",
    "SkeletonError",
    "StoreError",
    "UnknownColumnError",
    "UnknownRoiError",
]


class ConnectomeDaskError(ValueError):
    """Base of every expected error of the package (bad input, damaged or busy store)."""


class StoreError(ConnectomeDaskError):
    """A store is missing, malformed, from a newer schema, busy, or a write was refused."""


class PathError(StoreError):
    """A path or name would leave the store, or a directory is not the package's to replace."""


class IngestError(StoreError):
    """A source table cannot be ingested.

    The message names the file, the column and an example offending row; the
    same facts are available as attributes (``None`` when not applicable).

    Parameters
    ----------
    message
        The message (already naming file, column and row; see :meth:`at`).
    file, column
        The source file and column, or ``None``.
    row
        0-based data row within ``file`` (CSV header not counted), or ``None``.
    value
        The offending value.

    Attributes
    ----------
    file, column : str or None
    row : int or None
        0-based data row within ``file`` (CSV header not counted).
    value : object
        The offending value.

    Examples
    --------
    >>> e = IngestError.at("syn.parquet", "pre_pt_root_id", 3, "body ID '0x1F' is not a decimal integer", "0x1F")
    >>> str(e), e.row
    ("syn.parquet: column 'pre_pt_root_id', row 3: body ID '0x1F' is not a decimal integer", 3)
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(message)
        self.file, self.column, self.row, self.value = file, column, row, value

    @classmethod
    def at(cls, file: str, column: str, row: int, what: str, value: Any = None) -> IngestError:
        """The error for one offending cell: ``"<file>: column '<column>', row <row>: <what>"``.

        Parameters
        ----------
        file, column
            The source file and column.
        row
            0-based data row within ``file``.
        what
            What is wrong with the cell.
        value
            The offending value.

        Returns
        -------
        IngestError
        """
        return cls(f"{file}: column {column!r}, row {row}: {what}", file=file, column=column, row=row,
                   value=value)


class RoiError(StoreError):
    """ROI meshes, names or hierarchy cannot be used (the message names the file or ROI)."""


class CriteriaError(ConnectomeDaskError):
    """Invalid selection criteria (bad value, regex, combination of options)."""


class UnknownRoiError(CriteriaError, KeyError):
    """An ROI name that the store does not define; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownColumnError(CriteriaError, KeyError):
    """A neuron property that ``conn.neurons`` does not have; the message lists the columns."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SkeletonError(ConnectomeDaskError):
    """A malformed SWC file or skeleton table, or a missing skeleton."""


class ConfigError(ConnectomeDaskError):
    """A ``connectome_dask.*`` dask config key that the package does not know, or a bad value."""


class DenseMatrixTooLarge(ConnectomeDaskError, MemoryError):
    """A dense in-memory result was asked for that would not fit (checked before allocating)."""


class ResultTooLarge(ConnectomeDaskError, MemoryError):
    """A table result estimated above ``connectome_dask.max_result_bytes`` with nowhere to stream it (before any work)."""
