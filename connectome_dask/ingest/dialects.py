"""Release dialects: the public connectome downloads, as they are, by file names and columns.

Each :class:`Dialect` declares the file-name patterns of a release's synapse,
neuron and metadata files, the ID columns, the required and optional
columns and their store columns, the position columns (alternatives: list
columns, split ``_x/_y/_z`` columns or text such as ``"[x y z]"``,
``"x, y, z"`` or neo4j's ``"{x:1, y:2, z:3}"``), the source units, and its
quirks. :data:`REGISTRY` holds them by name; :func:`find_release` finds the
files of a release in a folder (or checks given files) and
:func:`dialect_plan` turns a file's schema into the column plan the two
ingest passes run.

Dialects
--------
``flywire-783``
    Zenodo ``flywire_synapses_783.feather`` (Arrow IPC, streamed by record
    batch): ``pre_pt_root_id, post_pt_root_id``, positions
    ``pre_pt_position_x/y/z``, ``post_pt_position_x/y/z`` (nm),
    ``connection_score`` -> ``confidence``, ``cleft_score``, the per-synapse
    neurotransmitter probabilities ``gaba, ach, glut, oct, ser, da`` ->
    ``nt_gaba`` ... ``nt_da`` and ``neuropil`` -> ROI codes (FlyWire assigns it
    by the presynaptic location; the store keeps it as ``roi_post``, the
    column ROI queries read, and ``meta.json`` says so). ``X_L`` / ``X_R``
    neuropils get the group ``X`` as their parent in the ROI hierarchy. The
    annotations TSV (``Supplemental_file1_neuron_annotations.tsv``) is the
    neuron table (``cell_type`` -> ``type``).
``codex``
    FlyWire Codex ``synapse_coordinates.csv.gz`` (``pre_root_id,
    post_root_id, x, y, z`` in nm; ID cells are blank when equal to the
    previous row's value: forward-filled per column; a blank ID in a file's
    first row is an error) and ``fafb_v783_princeton_synapse_table.csv.gz``
    (``pre_root_id_720575940`` / ``post_root_id_720575940`` drop the constant
    prefix: full ID = 720575940 * 10**9 + value; ``pre_x ... post_z``,
    ``size``, ``neuropil``). Neuron table: ``neurons.csv.gz``,
    ``classification.csv.gz`` and ``consolidated_cell_types.csv.gz`` merged
    on ``root_id`` (``primary_type`` -> ``type``).
``neuprint-neo4j``
    The neo4j CSV export (``Neuprint_*.csv``): synapse rows are joined from
    ``Neuprint_Synapses_*`` (``type`` pre/post, ``confidence``, ``location``
    ``"{x:.., y:.., z:..}"`` points in voxels, ``<ROI>:boolean`` columns),
    ``Neuprint_Synapse_Connections_*`` (pre site -> post site),
    ``Neuprint_SynapseSet_to_Synapses_*`` and
    ``Neuprint_Neuron_to_SynapseSet_*`` (the body of each site). A site's ROI
    is its most specific ``true`` ROI column (deepest in ``Meta``'s
    ``roiHierarchy``). ``Neuprint_Meta_*`` gives ``voxelSize`` (``;``-joined),
    ``primaryRois`` and ``roiHierarchy`` (the store's ROI hierarchy, no
    meshes). ``Neuprint_Neurons_*`` is the neuron table: typed headers
    (``bodyId:long``) lose their type, ``roiInfo`` JSON (doubled quotes in
    the CSV) is kept as text, ``somaLocation`` points become ``[x, y, z]``,
    ``:LABEL`` (``;``-joined) becomes ``label`` (``Neuron`` or ``Segment``),
    the per-ROI boolean columns are dropped (``roiInfo`` holds the counts).
    The join is an external hash join with bounded memory
    (:func:`connectome_dask.ingest.neo4j.neo4j_synapse_files`, scratch files in
    dask's ``temporary-directory``); a site in several synapse sets takes the
    smallest body ID, rows keep the connection files' order.
``janelia-flat``
    flyem-snapshot ``syn-partners-*.feather`` (``body_pre, body_post``,
    ``x_pre ... z_post`` in 8 nm voxels, ``conf_pre, conf_post``,
    ``<roiset>_post`` e.g. ``primary_post`` -> ROI codes) and MANC's
    ``roi_post``; ``body-annotations-*.feather`` and
    ``body-neurotransmitters-*.feather`` (``body`` -> ``bodyId``) merged as
    the neuron table.
``microns``
    CAVE ``synapses_pni_2``: ``pre_pt_root_id, post_pt_root_id``, positions
    as 3-element arrays or split ``_x/_y/_z``, ``size``, in 4 x 4 x 40 nm
    voxels (pass ``units="nm"`` for tables fetched at 1 nm resolution).
``banc``
    ``banc_888_synapses_v2_enriched.parquet``: string IDs ``pre_root_id,
    post_root_id``, ``X, Y, Z`` (nm), ``size``, ``neuropil`` -> ROI codes and
    the neurotransmitter probabilities. Neuron tables (``*banc*neurons*`` /
    ``*banc*annotations*``): ``"TRUE"/"FALSE"`` become booleans and
    ``position`` strings ``"x, y, z"`` (4 x 4 x 45 nm voxels) become
    ``position_x/_y/_z`` in nm.

Per-synapse neurotransmitter probabilities are stored as float32 columns
``nt_<name>`` with the names of :data:`NT_NAMES` (``acetylcholine`` and
``ach`` are both ``nt_ach``).

Connection-level files of these releases (Codex ``connections*.csv.gz``,
FlyWire ``proofread_connections_783.feather``, neuPrint compact exports,
Janelia ``connectome-weights``, BANC's edge list) are recognised by name
and refused with an :class:`~connectome_dask.errors.IngestError` that says
so: the store holds synapse rows.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import IngestError
from .plan import _apply_columns, _Plan
from .values import _as_text, _ids_to_int64

__all__ = [
    "NT_NAMES",
    "REGISTRY",
    "Dialect",
    "Release",
    "detect_dialect",
    "find_release",
    "flywire_hierarchy",
]

#: Canonical neurotransmitter names and the column spellings of the releases.
NT_NAMES: dict[str, tuple[str, ...]] = {
    "ach": ("ach", "acetylcholine", "ach_avg"),
    "gaba": ("gaba", "gaba_avg"),
    "glut": ("glut", "glutamate", "glut_avg"),
    "da": ("da", "dopamine", "da_avg"),
    "ser": ("ser", "serotonin", "ser_avg"),
    "oct": ("oct", "octopamine", "oct_avg"),
    "his": ("his", "histamine"),
    "tyr": ("tyr", "tyramine"),
}


Prep = Callable[[pa.RecordBatch, int], pa.RecordBatch]


@dataclass(frozen=True)
class Connections:
    """A release's connection-level files: one row per connection (and ROI), a synapse count.

    Parameters
    ----------
    files
        Groups of ``fnmatch`` patterns in order of preference: the first group
        with a match is read (e.g. per-ROI weights before totals).
    ids
        Alternatives of the (pre, post) body ID columns.
    weight
        Alternatives of the synapse-count column.
    roi
        Alternatives of the ROI column (optional).
    roi_none
        ROI values that mean "in no ROI" (``UNASGD``, ``NotPrimary``).
    nt
        Map per-connection transmitter columns (``gaba_avg`` ... -> ``nt_gaba``).
    header
        Column names of header-less files (a first row whose first cell is a number).

    Examples
    --------
    >>> REGISTRY["codex"].connections.roi_none
    ('UNASGD',)
    """

    files: tuple[tuple[str, ...], ...]
    ids: tuple[tuple[str, str], ...]
    weight: tuple[str, ...]
    roi: tuple[str, ...] = ()
    roi_none: tuple[str, ...] = ()
    nt: bool = False
    header: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Dialect:
    """One release's synapse-file layout: names, columns, units and quirks.

    Parameters
    ----------
    name
        Registry name (``dialect=``).
    description
        One line for messages and ``--help``.
    synapse_files, neuron_files, meta_files, connection_files
        ``fnmatch`` patterns (lower case) of the release's file names.
    ids
        Alternatives of the (pre, post) body ID columns; the first present is used.
    positions
        Alternatives of position mappings (store column -> source column;
        ``pre_position`` / ``post_position`` / ``position`` map list or text
        columns); the first whose columns are all present is used.
    optional
        Store column -> source column, used when present.
    nt
        Map per-synapse neurotransmitter probability columns (:data:`NT_NAMES`).
    units, voxel_size
        Source units of the positions (``"voxels"`` needs ``voxel_size``).
    ffill
        ID columns whose blank cells repeat the previous row's value.
    id_prefix
        Source ID column -> constant added to every value (prefix-stripped IDs).
    signature
        Columns whose presence identifies the dialect from a file's header.
    roi_note
        What the ROI column means, recorded in ``meta.json``.
    quirks
        The quirks handled, for documentation and messages.
    connections
        The release's connection-level files (:class:`Connections`), if any.

    Examples
    --------
    >>> REGISTRY["microns"].voxel_size
    (4.0, 4.0, 40.0)
    """

    name: str
    description: str
    synapse_files: tuple[str, ...]
    ids: tuple[tuple[str, str], ...]
    neuron_files: tuple[str, ...] = ()
    meta_files: tuple[str, ...] = ()
    connection_files: tuple[str, ...] = ()
    positions: tuple[Mapping[str, str], ...] = ()
    optional: Mapping[str, str] = field(default_factory=dict)
    nt: bool = False
    units: str = "nm"
    voxel_size: tuple[float, float, float] | None = None
    ffill: tuple[str, ...] = ()
    id_prefix: Mapping[str, int] = field(default_factory=dict)
    signature: tuple[frozenset[str], ...] = ()
    roi_note: str | None = None
    quirks: tuple[str, ...] = ()
    connections: Connections | None = None

    def __post_init__(self) -> None:
        if self.connections is not None and not self.connection_files:
            pats = tuple(p for g in self.connections.files for p in g)
            object.__setattr__(self, "connection_files", pats)

    def matches_name(self, filename: str, role: str = "synapse") -> bool:
        """Whether a file name matches one of this dialect's patterns for ``role``.

        Parameters
        ----------
        filename
            A file name (a path's last component is used).
        role
            ``"synapse"``, ``"neuron"``, ``"meta"`` or ``"connection"``.

        Returns
        -------
        bool

        Examples
        --------
        >>> REGISTRY["flywire-783"].matches_name("data/flywire_synapses_783.feather")
        True
        """
        pats = {"synapse": self.synapse_files, "neuron": self.neuron_files,
                "meta": self.meta_files, "connection": self.connection_files}[role]
        base = os.path.basename(os.fspath(filename)).lower()
        return any(fnmatch.fnmatchcase(base, p) for p in pats)

    def matches_columns(self, names: Sequence[str]) -> bool:
        """Whether a header identifies this dialect (all columns of one signature present).

        Parameters
        ----------
        names
            Column names of a file.

        Returns
        -------
        bool

        Examples
        --------
        >>> REGISTRY["janelia-flat"].matches_columns(["body_pre", "body_post", "x_pre"])
        True
        """
        s = set(names)
        return any(sig <= s for sig in self.signature)


_FLYWIRE_POS = {"x_pre": "pre_pt_position_x", "y_pre": "pre_pt_position_y", "z_pre": "pre_pt_position_z",
                "x_post": "post_pt_position_x", "y_post": "post_pt_position_y",
                "z_post": "post_pt_position_z"}
_SPLIT_PREPOST = {"x_pre": "pre_x", "y_pre": "pre_y", "z_pre": "pre_z",
                  "x_post": "post_x", "y_post": "post_y", "z_post": "post_z"}
_NEUPRINT_POS = {f"{a}_{s}": f"{a}_{s}" for s in ("pre", "post") for a in "xyz"}
_PRINCETON_PREFIX = 720575940 * 10**9


#: Every dialect by name.
REGISTRY: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            "flywire-783",
            "FlyWire FAFB v783 (Zenodo): synapses feather, annotations TSV",
            synapse_files=("flywire_synapses_*.feather", "flywire_synapses_*.arrow"),
            neuron_files=("supplemental_file1_neuron_annotations.tsv", "*neuron_annotations*.tsv"),
            ids=(("pre_pt_root_id", "post_pt_root_id"),),
            positions=(_FLYWIRE_POS,),
            optional={"confidence": "connection_score", "cleft_score": "cleft_score",
                      "roi_post": "neuropil"},
            nt=True,
            signature=(frozenset({"pre_pt_root_id", "post_pt_root_id", "neuropil"}),),
            roi_note="neuropil: FlyWire's neuropil of the synapse (assigned by the presynaptic location)",
            quirks=("record-batch streaming", "neuropil labels as ROI codes", "NT probabilities"),
            connections=Connections((("proofread_connections_*.feather",),), (("pre_pt_root_id", "post_pt_root_id"),),
                                    ("syn_count",), roi=("neuropil",), nt=True),
        ),
        Dialect(
            "codex",
            "FlyWire Codex downloads: synapse_coordinates / princeton synapse table, neurons CSVs",
            synapse_files=("synapse_coordinates*.csv*", "*princeton_synapse_table*.csv*"),
            neuron_files=("neurons.csv*", "classification.csv*", "consolidated_cell_types.csv*"),
            ids=(("pre_root_id", "post_root_id"), ("pre_root_id_720575940", "post_root_id_720575940")),
            positions=(_SPLIT_PREPOST, {"x": "x", "y": "y", "z": "z"}, {"position": "position"}),
            optional={"size": "size", "roi_post": "neuropil"},
            ffill=("pre_root_id", "post_root_id"),
            id_prefix={"pre_root_id_720575940": _PRINCETON_PREFIX,
                       "post_root_id_720575940": _PRINCETON_PREFIX},
            signature=(frozenset({"pre_root_id", "post_root_id", "x", "y", "z"}),
                       frozenset({"pre_root_id_720575940", "post_root_id_720575940"})),
            roi_note="neuropil: FlyWire's neuropil of the synapse",
            quirks=("blank ID cells forward-filled", "prefix-stripped IDs (720575940)", "header-less v630 file"),
            connections=Connections((("connections*.csv*",),), (("pre_root_id", "post_root_id"),), ("syn_count",),
                                    roi=("neuropil",), roi_none=("UNASGD",),
                                    header=("pre_root_id", "post_root_id", "neuropil", "syn_count", "nt_type")),
        ),
        Dialect(
            "neuprint-neo4j",
            "neuPrint neo4j CSV export (Neuprint_*.csv)",
            synapse_files=("neuprint_synapses_*.csv",),
            neuron_files=("neuprint_neurons_*.csv", "*body-mean-neurotransmitters*.feather"),
            meta_files=("neuprint_meta_*.csv",),
            ids=(("bodyId_pre", "bodyId_post"),),
            positions=(_NEUPRINT_POS,),
            optional={"confidence_pre": "confidence_pre", "confidence_post": "confidence_post",
                      "roi_pre": "roi_pre", "roi_post": "roi_post"},
            units="voxels",
            voxel_size=(8.0, 8.0, 8.0),
            signature=(frozenset({":ID(Syn-ID)"}),),
            roi_note="the most specific true <ROI>:boolean column of each site",
            quirks=("{x:..} points", "ROI booleans", "doubled-quote JSON", ";-joined arrays"),
            connections=Connections((("neuprint_neuron_connections_*.csv",),),
                                    ((":START_ID(Body-ID)", ":END_ID(Body-ID)"),), ("weight:int",),
                                    roi=("roi",)),
        ),
        Dialect(
            "janelia-flat",
            "Janelia flyem-snapshot flat exports: syn-partners, body-annotations",
            synapse_files=("syn-partners-*.feather", "manc*synapses*.feather"),
            neuron_files=("body-annotations-*.feather", "body-neurotransmitters-*.feather"),
            ids=(("body_pre", "body_post"),),
            positions=(_NEUPRINT_POS,),
            optional={"confidence_pre": "conf_pre", "confidence_post": "conf_post",
                      "roi_post": "primary_post"},
            units="voxels",
            voxel_size=(8.0, 8.0, 8.0),
            signature=(frozenset({"body_pre", "body_post"}),),
            roi_note="<roiset>_post: the ROI of the postsynaptic location",
            quirks=("<roiset>_post ROI column", "8 nm voxels"),
            connections=Connections((("connectome-weights-*.feather",),), (("body_pre", "body_post"),), ("weight",)),
        ),
        Dialect(
            "neuprint-compact",
            "neuPrint compact exports (traced-neurons / traced-total-connections / traced-roi-connections, "
            "neuprint-python export_dir, MANC traced-connections)",
            synapse_files=(),
            neuron_files=("traced-neurons.csv", "neurons.csv", "*body-mean-neurotransmitters*.feather"),
            ids=(("bodyId_pre", "bodyId_post"),),
            roi_note="roi: neuPrint's primary ROI of the connection's synapses (NotPrimary: none)",
            quirks=("per-ROI weights preferred over totals", "NotPrimary = no ROI"),
            connections=Connections(
                (("traced-roi-connections.csv", "roi-connections.csv", "traced-connections-per-roi.csv"),
                 ("traced-total-connections.csv", "total-connections.csv", "traced-connections.csv")),
                (("bodyId_pre", "bodyId_post"),), ("weight",), roi=("roi",), roi_none=("NotPrimary",)),
        ),
        Dialect(
            "microns",
            "MICrONS minnie65 CAVE synapse table (synapses_pni_2), 4 x 4 x 40 nm voxels",
            synapse_files=("*synapses_pni*", "*minnie*synapse*"),
            ids=(("pre_pt_root_id", "post_pt_root_id"),),
            positions=({"pre_position": "pre_pt_position", "post_position": "post_pt_position"},
                       {f"{a}_{s}": f"{s}_pt_position_{a}" for s in ("pre", "post") for a in "xyz"},
                       {"position": "ctr_pt_position"},
                       {a: f"ctr_pt_position_{a}" for a in "xyz"}),
            optional={"size": "size"},
            units="voxels",
            voxel_size=(4.0, 4.0, 40.0),
            signature=(),  # CAVE columns alone are the generic "cave" dialect (in nm)
            quirks=("array or split position columns", "4 x 4 x 40 nm voxels"),
        ),
        Dialect(
            "banc",
            "BANC v888: enriched synapses parquet (string IDs), neuron tables",
            synapse_files=("banc_*synapses*.parquet", "banc_*synapses*.feather"),
            neuron_files=("banc_*neurons*", "banc_*annotations*", "banc_*meta*"),
            ids=(("pre_root_id", "post_root_id"),),
            positions=({"x": "X", "y": "Y", "z": "Z"},),
            optional={"size": "size", "roi_post": "neuropil"},
            nt=True,
            signature=(frozenset({"pre_root_id", "post_root_id", "X", "Y", "Z"}),),
            roi_note="neuropil: BANC's neuropil of the synapse",
            quirks=("string IDs", "TRUE/FALSE booleans", "'x, y, z' position strings"),
            connections=Connections((("banc_*edgelist*",),), (("pre", "post"),), ("count",)),
        ),
    )
}


def _nt_columns(names: Sequence[str]) -> dict[str, str]:
    have = set(names)
    out = {}
    for canon, spellings in NT_NAMES.items():
        for s in spellings:
            if s in have:
                out[f"nt_{canon}"] = s
                break
    return out


def _missing(file: str, dialect: str, column: str, names: Sequence[str], what: str) -> IngestError:
    return IngestError(
        f"{file}: column {column!r} ({what}), required by dialect {dialect!r}, is missing from the "
        f"header (row 0 has only columns {sorted(names)})",
        file=file, column=column, row=0,
    )


def dialect_plan(d: Dialect, schema: pa.Schema, file: str, columns: Mapping[str, str] | None = None) -> _Plan:
    """The column plan of a file of dialect ``d``: IDs, positions, floats, NT and ROI columns.

    Parameters
    ----------
    d
        The dialect.
    schema
        The file's schema (its header).
    file
        The file, for messages.
    columns
        The caller's explicit mapping (store column -> source column); when it
        maps positions, the dialect's positions are not required.

    Returns
    -------
    _Plan
        The plan the two ingest passes run (with the dialect's batch quirks).

    Raises
    ------
    IngestError
        A required column (IDs, a complete set of positions) is missing; the
        message names the file, the column and row 0 (the header).

    Examples
    --------
    >>> cols = ["body_pre", "body_post"] + [f"{a}_{s}" for s in ("pre", "post") for a in "xyz"]
    >>> plan = dialect_plan(REGISTRY["janelia-flat"], pa.schema([(c, pa.int64()) for c in cols]), "x.feather")
    >>> plan.ids, plan.positions["x_post"]
    ({'pre': 'body_pre', 'post': 'body_post'}, ('x_post', None))
    >>> dialect_plan(REGISTRY["janelia-flat"], pa.schema([("body_pre", pa.int64())]), "x.feather")
    Traceback (most recent call last):
    ...
    connectome_dask.errors.IngestError: x.feather: column 'body_post' (body IDs), required by dialect 'janelia-flat', is missing from the header (row 0 has only columns ['body_pre'])
    """
    names = list(schema.names)
    have = set(names)
    ids = next((p for p in d.ids if p[0] in have and p[1] in have), None)
    if ids is None:
        pre, post = d.ids[0]
        col = pre if pre not in have else post
        raise _missing(file, d.name, col, names, "body IDs")
    mapping: dict[str, str] = {"pre": ids[0], "post": ids[1]}
    _pos = {"x", "y", "z", "position", "pre_position", "post_position"} | {
        f"{a}_{s}" for a in "xyz" for s in ("pre", "post")}
    if d.positions and not (set(columns or {}) & _pos):
        chosen = next((p for p in d.positions if all(c in have for c in p.values())), None)
        if chosen is None:
            best = max(d.positions, key=lambda p: sum(c in have for c in p.values()))
            col = next(c for c in best.values() if c not in have)
            raise _missing(file, d.name, col, names, "synapse positions")
        mapping.update(chosen)
    for target, col in d.optional.items():
        if col in have:
            mapping[target] = col
    if d.name == "janelia-flat" and "roi_post" not in mapping:  # <roiset>_post, e.g. MANC's roi_post
        roi = next((c for c in names if c.endswith("_post") and c not in mapping.values()
                    and c not in ("body_post", "conf_post") and not c.startswith(("x_", "y_", "z_"))),
                   None)
        if roi is not None and pa.types.is_string(_decode_type(schema.field(roi).type)):
            mapping["roi_post"] = roi
    if d.nt:
        mapping.update(_nt_columns(names))
    plan = _Plan(d.name, {})
    _apply_columns(plan, mapping)
    plan.dialect = d.name
    if any(c in d.ffill for c in ids) or any(c in d.id_prefix for c in ids):
        plan.prep = _make_prep(d, ids)
    return plan


def _decode_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.string()
    return t


def _make_prep(d: Dialect, ids: tuple[str, str]) -> Callable[[str], Prep]:
    """A per-file batch transform for the ID quirks (forward fill, prefix-stripped IDs)."""
    ffill = [c for c in ids if c in d.ffill]
    prefix = {c: d.id_prefix[c] for c in ids if c in d.id_prefix}

    def for_file(file: str) -> Prep:
        last: dict[str, Any] = {}

        def prep(batch: pa.RecordBatch, offset: int) -> pa.RecordBatch:
            cols = {n: batch.column(n) for n in batch.schema.names}
            for c in ffill:
                if c in cols:
                    cols[c] = _forward_fill(cols[c], last, file, c, offset)
            for c, base in prefix.items():
                if c in cols:
                    v = _ids_to_int64(cols[c], file, c, offset)
                    big = v >= 10**9
                    if big.any():
                        i = int(np.argmax(big))
                        raise IngestError.at(file, c, offset + i, f"body ID suffix {int(v[i])} has more than "
                                             "9 digits (the column drops the prefix 720575940)", int(v[i]))
                    cols[c] = pa.array(v + base, type=pa.int64())
            return pa.RecordBatch.from_pydict(cols)

        return prep

    return for_file


def _forward_fill(arr: pa.Array, last: dict[str, Any], file: str, column: str, offset: int) -> pa.Array:
    """Blank cells repeat the previous row's value (Codex ``synapse_coordinates``)."""
    arr = _as_text(arr, file, column, offset)
    if _decode_type(arr.type) == pa.string():
        arr = pc.if_else(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0), pa.scalar(None, arr.type), arr)
    if len(arr) == 0:
        return arr
    if not arr[0].is_valid:
        if column not in last:
            raise IngestError.at(file, column, offset, "the first row's body ID is blank: blank cells repeat "
                                 "the previous row's ID, and there is none", None)
        arr = pa.concat_arrays([pa.array([last[column]], arr.type), arr.slice(1)])
    arr = pc.fill_null_forward(arr)
    last[column] = arr[len(arr) - 1].as_py()
    return arr


@dataclass
class Release:
    """The files of one release found for ingest.

    Parameters
    ----------
    dialect
        The dialect.
    synapses
        Synapse files, sorted.
    neurons
        Neuron-table files (merged on the body ID), sorted.
    meta
        Metadata files (neo4j ``Neuprint_Meta_*``).
    others
        Further files of the release the dialect reads (neo4j's link tables).
    kind
        ``"synapses"`` (``synapses`` are synapse tables) or ``"connections"``
        (``synapses`` are the connection-level files).
    header
        Column names of header-less files (Codex v630), or None.
    """

    dialect: Dialect
    synapses: list[str]
    neurons: list[str] = field(default_factory=list)
    meta: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    kind: str = "synapses"
    header: list[str] | None = None


def _data_files(source: Any) -> list[str] | None:
    """The files a path source names (a directory: every data file below it); None for tables."""
    if isinstance(source, str | os.PathLike):
        items = [source]
    elif isinstance(source, list | tuple) and all(isinstance(s, str | os.PathLike) for s in source):
        items = list(source)
    else:
        return None
    out: list[str] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*")
                          if f.is_file() and not f.name.startswith((".", "_")) and not f.name.endswith(".crc"))
        elif p.is_file():
            out.append(str(p))
        else:
            return None  # globs and missing paths: the generic source rules report them
    return out


def _header(file: str) -> list[str]:
    from .sources import _resolve_source, _schema_of

    src = _resolve_source(file)
    f, frag = next(src.fragments())
    return list(_schema_of(frag, f).names)


def _fits(d: Dialect, f: str) -> bool:
    """Whether file ``f`` (matched by name) has the columns of dialect ``d``."""
    spec = d.connections
    if spec is not None and spec.header and d.matches_name(f, "connection"):
        try:
            if _headerless([f], spec):
                return True
        except IngestError:
            return False
    names = set(_header(f))
    pairs = list(d.ids) + (list(spec.ids) if spec else [])
    return d.matches_columns(list(names)) or any(a in names and b in names for a, b in pairs)


def detect_dialect(files: Sequence[str]) -> Dialect | None:
    """The dialect of a set of files: by file names first, then by the header of the first file.

    Parameters
    ----------
    files
        Paths of the files (all of one release).

    Returns
    -------
    Dialect or None
        ``None`` when nothing identifies a release dialect (the generic
        ``cave`` / ``neuprint`` column detection then applies).

    Raises
    ------
    IngestError
        The files match two dialects, or a file cannot be read.

    Examples
    --------
    >>> pd.DataFrame({"pre_root_id": [1], "post_root_id": [2], "x": [0], "y": [0], "z": [0]}).to_csv(
    ...     tmp_path / "synapse_coordinates.csv.gz", index=False)
    >>> detect_dialect([str(tmp_path / "synapse_coordinates.csv.gz")]).name
    'codex'
    >>> pd.DataFrame({"src": [1], "dst": [2]}).to_csv(tmp_path / "connections.csv", index=False)
    >>> detect_dialect([str(tmp_path / "connections.csv")]) is None  # the name, but not the columns
    True
    """
    hits: dict[str, str] = {}
    for f in files:
        for d in REGISTRY.values():
            if d.matches_name(f) or d.matches_name(f, "connection"):
                hits.setdefault(d.name, f)
    # a name alone is not enough: the file's header must hold the dialect's columns (a user's own
    # "connections.csv" with other columns keeps the generic column detection)
    by_name = {name for name, f in hits.items() if _fits(REGISTRY[name], f)}
    if len(by_name) > 1:
        raise IngestError(f"the files match several release dialects {sorted(by_name)}; pass dialect=")
    if by_name:
        return REGISTRY[by_name.pop()]
    for f in files:
        if not any(d.matches_name(f, r) for d in REGISTRY.values() for r in ("neuron", "meta", "connection")):
            names = _header(f)
            found = [d for d in REGISTRY.values() if d.matches_columns(names) and _complete(d, names)]
            return found[0] if len(found) == 1 else None
    return None


def _complete(d: Dialect, names: Sequence[str]) -> bool:
    """Whether a header has everything the dialect requires (IDs and one complete set of positions).

    Column detection only picks a release dialect the file fully fits: a
    generic CAVE table that happens to have a ``neuropil`` column keeps the
    generic ``cave`` columns (list positions and all).
    """
    have = set(names)
    if not any(a in have and b in have for a, b in d.ids) and d.name != "neuprint-neo4j":
        return False
    return not d.positions or d.name == "neuprint-neo4j" or any(
        all(c in have for c in p.values()) for p in d.positions)


def _first_line_fields(path: str) -> list[str]:
    import csv
    import gzip

    opener: Any = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise IngestError(f"{path}: cannot read the file ({type(e).__name__}: {e})", file=path) from None


def _headerless(files: Sequence[str], spec: Connections) -> list[str] | None:
    """The column names to use when the CSV files have no header row (their first cell is a number)."""
    if spec.header is None or not files or not all(".csv" in f.lower() for f in files):
        return None
    flags = {f: bool(re.fullmatch(r"\s*[0-9]+\s*", (_first_line_fields(f) or [""])[0])) for f in files}
    if len(set(flags.values())) > 1:
        odd = next(f for f, v in flags.items() if v != flags[files[0]])
        raise IngestError(f"{odd}: some files have a header row and some do not ({files[0]}); "
                          "ingest them separately", file=odd)
    if not flags[files[0]]:
        return None
    n = len(_first_line_fields(files[0]))
    if n != len(spec.header):
        raise IngestError(f"{files[0]}: a header-less file with {n} columns; expected {len(spec.header)} "
                          f"({list(spec.header)})", file=files[0], row=0)
    return list(spec.header)


def find_release(source: Any, dialect: str, kind: str = "auto") -> Release | None:
    """Find the files of a release in ``source`` (a folder, files or a table) for ``dialect``.

    Parameters
    ----------
    source
        What :func:`~connectome_dask.ingest.ingest` was given.
    dialect
        A :data:`REGISTRY` name, or ``"auto"`` (detect; ``None`` is returned
        when no release dialect is recognised).
    kind
        ``"synapses"``, ``"connections"`` or ``"auto"`` (synapse files when
        the release has them, else its connection-level files).

    Returns
    -------
    Release or None

    Raises
    ------
    IngestError
        The folder holds no file of the dialect of the wanted kind, the files
        match several dialects, or header-less and headed files are mixed.

    Examples
    --------
    >>> (tmp_path / "rel").mkdir()
    >>> pd.DataFrame({"body_pre": [1], "body_post": [2]}).to_feather(tmp_path / "rel" / "syn-partners-t-minconf-0.5.feather")
    >>> find_release(tmp_path / "rel", "auto").dialect.name
    'janelia-flat'
    """
    files = _data_files(source)
    if dialect == "auto":
        if files is None:
            return None
        d = detect_dialect(files)
        if d is None:
            return None
    else:
        d = REGISTRY[dialect]
        if files is None:  # an in-memory table in the dialect's columns
            return Release(d, [], kind="connections" if kind == "connections" else "synapses")
    role = {f: next((r for r in ("synapse", "neuron", "meta", "connection") if d.matches_name(f, r)), None)
            for f in files}
    syn = [f for f, r in role.items() if r == "synapse"]
    explicit_file = not (isinstance(source, str | os.PathLike) and Path(source).is_dir())
    if not syn and explicit_file:
        syn = [f for f, r in role.items() if r is None]
    if d.name == "neuprint-neo4j":
        others = [f for f in files if os.path.basename(f).lower().startswith("neuprint_")
                  and role[f] is None]
    else:
        others = []
    def rank(f: str) -> tuple[int, str]:  # the dialect's main neuron table first: its annotations win
        base = os.path.basename(f).lower()
        return next((k for k, p in enumerate(d.neuron_files) if fnmatch.fnmatchcase(base, p)), 99), f

    neurons = sorted((f for f, r in role.items() if r == "neuron"), key=rank)
    metas = sorted(f for f, r in role.items() if r == "meta")
    conns: list[str] = []
    if d.connections is not None:
        for group in d.connections.files:
            conns = sorted(f for f in files if any(
                fnmatch.fnmatchcase(os.path.basename(f).lower(), p) for p in group))
            if conns:
                break
        if not conns and explicit_file and kind == "connections":
            conns = sorted(f for f, r in role.items() if r is None)
    if kind == "connections" or (kind == "auto" and not syn and conns):
        if d.connections is None:
            raise IngestError(f"dialect {d.name!r} has no connection-level files")
        if not conns:
            raise IngestError(f"{source}: no connection-level file of dialect {d.name!r} (file names "
                              f"{list(d.connection_files)}) among {len(files)} files")
        return Release(d, conns, neurons, metas, sorted(others), kind="connections",
                       header=_headerless(conns, d.connections))
    if not syn:
        raise IngestError(f"{source}: no synapse file of dialect {d.name!r} (file names "
                          f"{list(d.synapse_files)}) among {len(files)} files", file=os.fspath(files[0])
                          if files else None)
    return Release(d, sorted(syn), neurons, metas, sorted(others))


def connection_plan(d: Dialect, schema: pa.Schema, file: str) -> _Plan:
    """The column plan of a connection-level file of dialect ``d``: IDs, weight, ROI, NT means.

    Parameters
    ----------
    d
        The dialect (with :attr:`Dialect.connections`).
    schema
        The file's schema.
    file
        The file, for messages.

    Returns
    -------
    _Plan
        ``weight`` as an int64 extra column, the ROI column as ``roi_post``.

    Raises
    ------
    IngestError
        The IDs or the weight column are missing, or the weights are not integers.

    Examples
    --------
    >>> s = pa.schema([("bodyId_pre", pa.int64()), ("bodyId_post", pa.int64()), ("weight", pa.int64())])
    >>> connection_plan(REGISTRY["neuprint-compact"], s, "total-connections.csv").extras
    {'weight': 'weight'}
    """
    spec = d.connections
    if spec is None:
        raise IngestError(f"dialect {d.name!r} has no connection-level files")
    names = list(schema.names)
    have = set(names)
    ids = next((p for p in spec.ids if p[0] in have and p[1] in have), None)
    if ids is None:
        pre, post = spec.ids[0]
        raise _missing(file, d.name, pre if pre not in have else post, names, "body IDs")
    weight = next((c for c in spec.weight if c in have), None)
    if weight is None:
        raise _missing(file, d.name, spec.weight[0], names, "synapse count of the connection")
    t = _decode_type(schema.field(weight).type)
    if not pa.types.is_integer(t):
        raise IngestError(f"{file}: column {weight!r} (synapse count) must hold integers, but has type {t}",
                          file=file, column=weight)
    mapping = {"pre": ids[0], "post": ids[1], "weight": weight}
    roi = next((c for c in spec.roi if c in have), None)
    if roi is not None:
        mapping["roi_post"] = roi
    if spec.nt:
        mapping.update(_nt_columns(names))
    plan = _Plan(d.name, {})
    _apply_columns(plan, mapping)
    plan.dialect = d.name
    plan.roi_none = frozenset(spec.roi_none)
    return plan


def flywire_hierarchy(names: Sequence[str]) -> dict[str, list[str]]:
    """FlyWire neuropil hierarchy without meshes: ``X_L`` and ``X_R`` under the group ``X``.

    Parameters
    ----------
    names
        Neuropil names (e.g. ``AVLP_R``, ``ME_L``, ``GNG``).

    Returns
    -------
    dict
        ``{group: [sided names]}`` (``{parent: [children]}``, a form
        :mod:`connectome_dask.rois.tree` reads).

    Examples
    --------
    >>> flywire_hierarchy(["AVLP_L", "AVLP_R", "GNG", "ME_R"])
    {'AVLP': ['AVLP_L', 'AVLP_R'], 'ME': ['ME_R']}
    """
    out: dict[str, list[str]] = {}
    known = set(names)
    for n in sorted(names):
        m = re.fullmatch(r"(.+)_([LR])", n)
        if m and m.group(1) not in known:
            out.setdefault(m.group(1), []).append(n)
    return out


def iter_roles(rel: Release) -> Iterator[tuple[str, list[str]]]:
    """The release's files by role, for ``meta.json``.

    Parameters
    ----------
    rel
        The release.

    Yields
    ------
    tuple
        ``(role, files)`` for the roles with files.

    Examples
    --------
    >>> dict(iter_roles(Release(REGISTRY["codex"], ["s.csv.gz"])))
    {'synapses': ['s.csv.gz']}
    """
    for role, files in (("synapses", rel.synapses), ("neurons", rel.neurons), ("meta", rel.meta),
                        ("others", rel.others)):
        if files:
            yield role, list(files)
