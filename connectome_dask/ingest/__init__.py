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

Release dialects
----------------
The public releases as downloaded (:mod:`.dialects`, :data:`REGISTRY`):
``flywire-783``, ``codex``, ``neuprint-neo4j``, ``neuprint-compact``,
``janelia-flat``, ``microns``, ``banc``. ``ingest(folder, store)`` (and
``connectome-dask ingest DIR STORE``) recognises a release from its file
names (checked against their columns) or, failing that, from the first
file's columns, and finds its synapse, neuron and metadata files; each
dialect's quirks (Codex blank ID cells, prefix-stripped IDs, position
strings, neo4j ``{x:..}`` points and ROI booleans, BANC string IDs and
``TRUE``/``FALSE``) are handled, its precomputed ROI labels become the
store's ROI codes (and hierarchy: neo4j ``Meta.roiHierarchy``, FlyWire side
groups) without meshes, and per-synapse neurotransmitter probabilities are
stored as ``nt_<name>`` columns. A file that claims a dialect but lacks one
of its columns is refused before anything is read or written.

Store kinds
-----------
``kind="synapses"`` (one row per synapse) or ``kind="connections"``: the
releases' connection-level files (Codex ``connections*.csv.gz`` incl. the
header-less v630 file, FlyWire ``proofread_connections_783.feather``,
neuPrint compact exports, Janelia ``connectome-weights``, BANC's edge
list, neo4j ``Neuprint_Neuron_Connections``) become a connection-level
store: one row per connection (and ROI) with its synapse count in
``weight``, no positions, declared in ``meta.json``. ``"auto"`` takes the
synapse files when a release folder has both.

When the source has no ``label`` column, ingest records neuPrint's
``Neuron``/``Segment`` label (:func:`connectome_dask.labels.neuprint_label`)
from the ingested counts and the annotations.

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
``neurons=`` (a CSV/Parquet/Feather path or a DataFrame) adds annotations; it
is read by :func:`read_neuron_table` (which :func:`connectome_dask.datasets.synthetic`
uses too). Its ID column is ``bodyId``, else ``root_id``, else ``pt_root_id``; crantpy-style
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

Layout
------
:mod:`.sources` (finding and reading files, formats, schemas, row counts),
:mod:`.values` (value conversion and validation), :mod:`.plan` (column plans
and dialect detection), :mod:`.neurons` (the neuron table:
:func:`read_neuron_table` and ingest's renames) and :mod:`.main`
(:func:`ingest` itself), :mod:`.dialects` (the release dialects: FlyWire
783, Codex, neuPrint neo4j, Janelia flat exports, MICrONS, BANC; their file
names, columns, units and quirks). The command line (``connectome-dask ingest``) lives
in :mod:`connectome_dask.cli`.
"""

from __future__ import annotations

from ..errors import IngestError
from .dialects import REGISTRY
from .main import DEFAULT_BATCH_ROWS, DEFAULT_BUCKET_ROWS, ingest
from .neurons import read_neuron_table
from .plan import DIALECTS as _GENERIC

#: Every ``dialect=`` value: ``auto``, the generic column dialects and the release dialects.
DIALECTS = (*_GENERIC, *REGISTRY)

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_BUCKET_ROWS",
    "DIALECTS",
    "IngestError",
    "REGISTRY",
    "ingest",
    "read_neuron_table",
]


#: names that moved to :mod:`connectome_dask.cli` (argparse lives there) -> their new names
_MOVED_TO_CLI = {"add_arguments": "add_ingest_arguments", "run_from_args": "run_ingest"}


def __getattr__(name: str) -> object:
    """``add_arguments`` / ``run_from_args`` moved to :mod:`connectome_dask.cli`; they stay importable here."""
    if name in _MOVED_TO_CLI:
        import warnings

        from .. import cli

        new = _MOVED_TO_CLI[name]
        warnings.warn(f"connectome_dask.ingest.{name} moved to connectome_dask.cli.{new}",
                      DeprecationWarning, stacklevel=2)
        return getattr(cli, new)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
