"""The one table of length units: spellings, their factor to nanometres, and voxel spellings.

Positions in a store are nanometres. Mesh folders (``hierarchy.json``'s
``units``), :class:`~connectome_dask.rois.RoiSet`'s ``scale=`` and
:func:`~connectome_dask.ingest.ingest`'s ``units=`` all name their units
through :func:`parse_units`, so every place accepts the same spellings.

A unit is one of the spellings in :data:`LENGTH_UNITS` (case and surrounding
blanks are ignored), a voxel size such as ``"8 nm voxels"`` (a number and a
length unit followed by ``voxel``/``voxels``, optionally followed by a comment
such as ``"(hemibrain)"``), or, where the caller takes the voxel size from
elsewhere, one of :data:`VOXEL_UNITS`.

Imports only :mod:`connectome_dask.errors`: the lowest layer of the package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, overload

__all__ = ["LENGTH_UNITS", "VOXEL_UNITS", "parse_units"]

#: Spelling (lower case) -> nanometres per unit.
LENGTH_UNITS: Mapping[str, float] = MappingProxyType({
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "nanometres": 1.0,
    "um": 1000.0,
    "\u00b5m": 1000.0,  # MICRO SIGN
    "\u03bcm": 1000.0,  # GREEK SMALL LETTER MU
    "micrometer": 1000.0,
    "micrometers": 1000.0,
    "micrometre": 1000.0,
    "micrometres": 1000.0,
    "micron": 1000.0,
    "microns": 1000.0,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimeters": 1e6,
    "millimetre": 1e6,
    "millimetres": 1e6,
})

#: Spellings (lower case) of "voxels" whose size is given separately (``voxel_size=``).
VOXEL_UNITS: frozenset[str] = frozenset({"voxel", "voxels", "vx"})

# "<number> <length unit> voxel(s)", e.g. "8 nm voxels" or "8 nm voxels (hemibrain)"
_VOXEL_SIZE = re.compile(
    r"^(?P<size>[0-9]+\.?[0-9]*|\.[0-9]+)\s*(?P<unit>"
    + "|".join(sorted(map(re.escape, LENGTH_UNITS), key=len, reverse=True))
    + r")\s+voxels?"
)


@overload
def parse_units(
    units: str, *, error: type[Exception] = ..., what: str = ..., voxels: Literal[False] = ...
) -> float: ...


@overload
def parse_units(
    units: str, *, error: type[Exception] = ..., what: str = ..., voxels: bool
) -> float | None: ...


def parse_units(
    units: str,
    *,
    error: type[Exception] = ValueError,
    what: str = "units",
    voxels: bool = False,
) -> float | None:
    """Nanometres per unit of a unit string (``"um"`` -> 1000.0).

    Parameters
    ----------
    units
        A spelling from :data:`LENGTH_UNITS` (``"nm"``, ``"micrometer"``,
        ``"µm"``, ``"mm"`` ...), a voxel size such as ``"8 nm voxels"``, or
        with ``voxels=True`` a spelling from :data:`VOXEL_UNITS`. Case and
        surrounding blanks are ignored.
    error
        Exception class raised for an unknown unit (e.g.
        :class:`~connectome_dask.errors.IngestError` or
        :class:`~connectome_dask.errors.RoiError`).
    what
        What the string is, for the message (``"mesh units"``).
    voxels
        Accept the bare voxel spellings (``"voxels"``, ``"vx"``) and return
        ``None`` for them: the caller knows the voxel size.

    Returns
    -------
    float or None
        The factor to nm; ``None`` for a bare voxel spelling (``voxels=True``).

    Raises
    ------
    error
        ``units`` is not a string or not a known spelling; the message lists
        the known spellings.

    Examples
    --------
    >>> parse_units("Micrometer"), parse_units("nm"), parse_units("8 nm voxels (hemibrain)")
    (1000.0, 1.0, 8.0)
    >>> parse_units("voxels", voxels=True) is None
    True
    >>> parse_units("furlong", what="mesh units")
    Traceback (most recent call last):
    ...
    ValueError: unknown mesh units 'furlong'; expected one of ['nanometer', ...
    """
    key = units.strip().lower() if isinstance(units, str) else None
    if key is not None:
        if key in LENGTH_UNITS:
            return LENGTH_UNITS[key]
        if voxels and key in VOXEL_UNITS:
            return None
        m = _VOXEL_SIZE.match(key)
        if m and float(m["size"]) > 0:
            return float(m["size"]) * LENGTH_UNITS[m["unit"]]
    known = sorted(LENGTH_UNITS, key=lambda u: (LENGTH_UNITS[u], u)) + (sorted(VOXEL_UNITS) if voxels else [])
    raise error(
        f"unknown {what} {units!r}; expected one of {known}, or a voxel size such as '8 nm voxels'"
    )
