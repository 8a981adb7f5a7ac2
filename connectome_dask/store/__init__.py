"""The connectome store: on-disk format, streaming writer, and :class:`Connectome`.

This package is the only code that knows the file layout (documented in
``docs/store.md``). A store is a directory::

    meta.json          commit point: schema version, dataset info, and which
                       array directories / ROI folder are current
    neurons.parquet    one row per body (bodyId int64, index int32, type, ...)
    synapses.zarr/     Zarr v3 group of 1-D arrays on one chunk grid
    index.zarr/        pre_offsets, post_offsets, post_perm (fast per-body reads)
    rois/<gen>/        current ROI set (rois.json, meshes, cached label grid)
    skeletons/         optional SWC files, <bodyId>.swc

Every mutation writes new files under fresh names and then replaces
``meta.json`` atomically (``os.replace``), so a killed job leaves the previous
store exactly as it was; unreferenced leftovers are reported by
:meth:`Connectome.check` and removed by the next successful write.

Guarantees (tests in ``tests/reliability``; README "Guarantees"):

* one writer at a time: every write holds the store's writer lock
  (``.<store>.lock`` beside it, :func:`connectome_dask._fsutil.writer_lock`) and a
  commit refuses to land unless meta.json still holds the generation it
  started from;
* a reader keeps reading the generation it opened: arrays replaced by commit
  ``g + 1`` are deleted only by commit ``g + 2``;
* every array chunk carries a CRC32C checksum and a missing chunk is an error,
  never a fill value; meta.json carries a SHA-256 of its own content;
* paths read from meta.json resolve inside the store and never through a
  symlink; garbage collection deletes only entries with the package's name
  pattern and marker.

Modules, each importing only those above it in this list (plus
:mod:`connectome_dask._fsutil`, :mod:`connectome_dask.errors`, and lazily the
kernels and :mod:`connectome_dask._compute`):

:mod:`~connectome_dask.store.format`
    constants, the name and path rules, meta.json writing / reading /
    validation, digests, array codecs and creation, the neuron table;
:mod:`~connectome_dask.store.arrays`
    chunk-checked reads of store arrays, cached per store generation;
:mod:`~connectome_dask.store.sort`
    the external bucket sort (writer's (pre, post) order, the index's post order);
:mod:`~connectome_dask.store.tables`
    chunked appends, the per-ROI connection table (streamed at ingest, rebuilt by a commit);
:mod:`~connectome_dask.store.commit`
    the write path of an open store (:meth:`Connectome.write_synapse_columns`);
:mod:`~connectome_dask.store.maintenance`
    garbage collection and :meth:`Connectome.check`;
:mod:`~connectome_dask.store.reader`
    :class:`Connectome`, :func:`open`, the default connectome;
:mod:`~connectome_dask.store.writer`
    :class:`StoreWriter` and :func:`write_store`.

Every name is re-exported here (``connectome_dask.store.<name>``), private
helpers included. Monkeypatching a helper must target its defining module
(e.g. ``connectome_dask.store.writer._build_index``): the modules call their
own bindings, not these re-exports.

Examples
--------
>>> import connectome_dask.store as store
>>> store.open is store.reader.open, store.Connectome.__module__
(True, 'connectome_dask.store.reader')
"""

from __future__ import annotations

from typing import Any

# names the single-module store re-exported from _fsutil (kept importable from here)
from .._fsutil import (  # noqa: F401
    MARKER,
    check_component,
    check_exists,
    check_name,
    encode_name,
    is_empty_shell,
    no_symlinks,
    read_marker,
    remove_leftovers,
    replace_dir,
    rmtree_real,
    write_marker,
    writer_lock,
)
from ..errors import StoreError
from . import arrays, commit, format, maintenance, reader, sort, tables, writer  # noqa: F401
from .arrays import (  # noqa: F401
    _ARRAY_DIRS,
    _check_store_identity,
    _check_unchanged,
    _ensure_group,
    _missing_chunks,
    _open_array_cached,
    _ranges_to_rows,
    _read_range,
    read_rows,
    require_chunks,
    take_rows,
)
from .commit import _check_current, _write_locked, _write_outputs  # noqa: F401
from .format import (  # noqa: F401
    _GEN_DIR,
    _ROI_DIR,
    _ROI_PAIRS_DIR,
    _SPILL_DIR,
    _TXN_FILE,
    BY_POST_COLUMNS,
    DEFAULT_CHUNK_ROWS,
    DEFAULT_PARTITION_CHUNKS,
    FORMAT_NAME,
    INDEX_ARRAYS,
    POSITION_COLUMNS_CENTER,
    POSITION_COLUMNS_PAIR,
    ROI_PAIR_COLUMNS,
    ROI_PAIRS_COLUMN,
    SCHEMA_VERSION,
    STANDARD_NEURON_COLUMNS,
    SYNAPSE_DTYPES,
    _codecs,
    _create_array,
    _inside,
    _json_default,
    _meta_digest,
    _meta_token,
    _read_meta,
    _references,
    array_codecs,
    file_digest,
    folder_digests,
    read_neuron_table,
    safe_name,
    write_json_atomic,
    write_meta,
    write_neuron_table,
)
from .maintenance import _M64, _bits, _is_meta_tmp, _mix, _scan_spill, _symlinks_in  # noqa: F401
from .reader import (  # noqa: F401
    Connectome,
    _read_synapse_block,
    _run_block,
    default_connectome,
    open,  # noqa: A004
    set_default_connectome,
)
from .sort import _post_order, _post_order_rereading, _scatter_rows, load_bucket, spill_buckets  # noqa: F401
from .tables import _ChunkedAppender, _RoiPairTable, rebuild_roi_pair_table, roi_runs  # noqa: F401
from .writer import (  # noqa: F401
    StoreWriter,
    _build_index,
    _PairTable,
    _prepare_neurons,
    _write_skeletons,
    write_store,
)

__all__ = [
    "BY_POST_COLUMNS",
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_PARTITION_CHUNKS",
    "FORMAT_NAME",
    "INDEX_ARRAYS",
    "POSITION_COLUMNS_CENTER",
    "POSITION_COLUMNS_PAIR",
    "ROI_PAIR_COLUMNS",
    "ROI_PAIRS_COLUMN",
    "SCHEMA_VERSION",
    "STANDARD_NEURON_COLUMNS",
    "SYNAPSE_DTYPES",
    "Connectome",
    "StoreError",
    "StoreWriter",
    "array_codecs",
    "default_connectome",
    "file_digest",
    "folder_digests",
    "open",
    "read_neuron_table",
    "read_rows",
    "rebuild_roi_pair_table",
    "require_chunks",
    "roi_runs",
    "safe_name",
    "set_default_connectome",
    "take_rows",
    "write_json_atomic",
    "write_meta",
    "write_neuron_table",
    "write_store",
]


def __getattr__(name: str) -> Any:
    # the default connectome lives in the reader (set_default_connectome rebinds it there)
    if name == "_default":
        return reader._default
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
