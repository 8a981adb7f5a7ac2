"""Writing a new store: :class:`StoreWriter` (streaming, bounded memory) and :func:`write_store`.

The writer spills blocks to bucket files by presynaptic range and sorts each
bucket (:mod:`~connectome_dask.store.sort`), appends whole chunks
(:class:`_ChunkedAppender`), run-length encodes the connection table as rows
stream by (:class:`_PairTable`), builds the index (:func:`_build_index`),
writes the neuron table, skeletons and ``meta.json``, and moves the finished
store into place under the writer lock.

Imports :mod:`~connectome_dask.store.format`, :mod:`~connectome_dask.store.arrays`,
:mod:`~connectome_dask.store.sort` and :mod:`~connectome_dask.store.reader`
(the finished store is opened with :func:`~connectome_dask.store.reader.open`).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._fsutil import (
    AtomicDir,
    check_exists,
    encode_name,
    write_marker,
)
from .._threads import Background
from ..errors import StoreError
from .arrays import _ensure_group
from .format import (
    BY_POST_COLUMNS,
    DEFAULT_CHUNK_ROWS,
    FORMAT_NAME,
    KIND_SCHEMA_VERSION,
    ROI_PAIRS_COLUMN,
    STORE_KINDS,
    SYNAPSE_DTYPES,
    _create_array,
    file_digest,
    folder_digests,
    safe_name,
    write_json_atomic,
    write_meta,
    write_neuron_table,
)
from .reader import Connectome, open
from .roi_major import copy_columns
from .sort import (
    HeldBuckets,
    PostOrderSpill,
    _post_order,
    _record_dtype,
    post_ranges,
    spill_buckets,
    spill_fits,
    take_columns,
)
from .tables import _ChunkedAppender, _RoiPairTable

__all__ = ["StoreWriter", "write_store"]


def _pair_order(pre: np.ndarray, post: np.ndarray, n_neurons: int) -> np.ndarray:
    """The stable (pre, post) order of rows (dense indices in ``[0, n_neurons)``, checked by ``append``).

    A bucket of at least 64 k rows whose neuron count is at most 4x its rows
    (any whole brain's bucket) is put in order by a two-pass counting sort
    (:func:`~connectome_dask.kernels.scatter.stable_pair_order`): 145 ms
    instead of 295 ms for 4 M rows of a 139 k-neuron brain on this machine,
    because a bucket's rows have few distinct keys per pass. Otherwise, when
    ``pre``, ``post`` and the row number fit one int64 together, the packed
    keys are unique, so sorting them (numpy's vectorised sort, no argsort)
    gives exactly the stable order (0.11 s instead of 0.52 s for a stable
    ``argsort`` of 4 M random keys); else a stable ``argsort``.

    Examples
    --------
    >>> _pair_order(np.array([1, 0, 1, 0]), np.array([0, 5, 0, 2]), 6).tolist()
    [3, 1, 0, 2]
    """
    n = len(pre)
    if n >= 1 << 16 and n_neurons <= 4 * n:
        from ..kernels.scatter import stable_pair_order

        return stable_pair_order(pre, post, int(n_neurons))
    nb = max(int(n_neurons - 1).bit_length(), 1)
    rb = max(int(n - 1).bit_length(), 1)
    if 2 * nb + rb <= 63:
        key = (pre.astype(np.int64) << (nb + rb)) | (post.astype(np.int64) << rb) | np.arange(n, dtype=np.int64)
        key.sort()
        return key & ((1 << rb) - 1)
    return np.argsort((pre.astype(np.int64) << 32) | post.astype(np.int64), kind="stable")


class StoreWriter:
    """Stream synapse blocks into a new store with bounded memory.

    Synapse rows are stored sorted by ``(pre, post)``: each partition then owns
    contiguous runs of presynaptic neurons, so pair counting is a run-length
    scan and one neuron's output synapses are one contiguous slice.

    Blocks may arrive in any order. Unless ``presorted=True``, rows are spilled
    to bucket files by presynaptic index range (an external bucket sort: at
    most ``bucket_rows`` rows are held in memory while sorting a bucket).

    Parameters
    ----------
    path
        Store directory to create. Written under a temporary name beside it
        and renamed into place by :meth:`close`.
    n_neurons
        Number of bodies; ``pre``/``post`` must be dense indices in ``[0, n_neurons)``.
    columns
        Synapse columns besides ``pre`` and ``post`` and their dtypes.
    chunk_rows
        Zarr chunk length (rows). Dask partitions are whole multiples of it.
    presorted
        Blocks arrive already sorted by ``(pre, post)`` and in that order overall.
    pre_counts
        Synapses per presynaptic index (if known), used to balance spill buckets.
    bucket_rows
        Maximum rows per spill bucket (memory bound of the sort).
    sort_memory
        Bytes of the external sort's buckets kept in memory instead of spill
        files (the first buckets, up to this many bytes of packed rows; the
        post-order copy's spill gets the same budget, filled as the first is
        freed); ``None`` reads ``connectome_dask.sort_memory_bytes``. Only
        with ``pre_counts`` (the buckets' sizes must be known); ``0`` spills
        every bucket.
    overwrite
        Replace an existing store at ``path`` (only a connectome_dask store: any
        other directory is refused, naming the path).
    kind
        ``"synapses"`` (one row per synaptic connection) or ``"connections"``
        (one row per connection, optionally per ROI, with an int64 ``weight``
        column of positive synapse counts, no positions). A connection-level
        store is declared in ``meta.json`` (``kind``, ``total_weight``,
        ``schema_version`` 2); its ``neurons.pre``/``post`` and connection
        table sum the weights.

    Raises
    ------
    StoreError
        ``path`` exists without ``overwrite`` or is not a store this writer may
        replace, another writer holds its lock, ``chunk_rows`` is not
        positive, a column name breaks the name rule, or ``kind`` is unknown
        (or ``"connections"`` without an int64 ``weight`` column).

    Notes
    -----
    The writer holds the target's writer lock from construction until
    :meth:`close` or :meth:`abort`; leftovers of earlier killed writes to the
    same target are removed first.

    Examples
    --------
    Blocks in any order; rows come out sorted by ``(pre, post)``:

    >>> neurons = pd.DataFrame({"bodyId": [10, 20, 30], "type": ["A", "B", "B"]})
    >>> with StoreWriter(tmp_path / "tiny", 3, {"confidence": "float32"}, chunk_rows=2) as w:
    ...     w.append({"pre": np.array([2, 0, 0]), "post": np.array([1, 2, 1]),
    ...               "confidence": np.array([0.9, 0.8, 0.7])})
    ...     w.append({"pre": np.array([1, 0]), "post": np.array([0, 1]), "confidence": np.array([0.6, 0.5])})
    ...     tiny = w.close(neurons, {"name": "tiny"})
    >>> tiny
    <Connectome 'tiny' v0: 3 neurons, 5 synapses, rois=no at ...>
    >>> tiny.read_synapses(["pre", "post"], 0, tiny.n_synapses)
    {'pre': array([0, 0, 0, 1, 2], dtype=int32), 'post': array([1, 1, 2, 0, 1], dtype=int32)}
    >>> tiny.neurons[["bodyId", "pre", "post"]].values.tolist()
    [[10, 3, 1], [20, 1, 3], [30, 1, 1]]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_neurons: int,
        columns: Mapping[str, str] | None = None,
        *,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        presorted: bool = False,
        pre_counts: np.ndarray | None = None,
        bucket_rows: int = 1 << 25,
        sort_memory: int | None = None,
        overwrite: bool = False,
        kind: str = "synapses",
    ) -> None:
        from .. import config

        self.path = Path(os.path.abspath(path))
        self.overwrite = bool(overwrite)
        check_exists(self.path, "store", self.overwrite, StoreError)
        if chunk_rows < 1:
            raise StoreError(f"chunk_rows must be positive, got {chunk_rows}")
        self.n_neurons = int(n_neurons)
        self.columns = {"pre": "int32", "post": "int32"}
        for name, dt in (columns or {}).items():
            safe_name(name, "synapse column")
            self.columns[name] = str(np.dtype(SYNAPSE_DTYPES.get(name, dt)))
        if kind not in STORE_KINDS:
            raise StoreError(f"kind must be one of {list(STORE_KINDS)}, got {kind!r}")
        if kind == "connections" and self.columns.get("weight") != "int64":
            raise StoreError("a connection-level store (kind='connections') needs an int64 'weight' column")
        if pre_counts is not None and len(pre_counts) != self.n_neurons:
            raise StoreError(f"pre_counts has {len(pre_counts)} entries, expected one per neuron ({self.n_neurons})")
        memory = config.get("sort_memory_bytes", 0) if sort_memory is None else sort_memory
        if int(memory) < 0:
            raise StoreError(f"sort_memory must be >= 0 bytes, got {memory}")
        self.kind = kind
        self.chunk_rows = int(chunk_rows)
        self.bucket_rows = int(bucket_rows)
        self.presorted = presorted
        # lock, leftovers of killed writes, the marked temporary directory: held until close/abort
        self._dir = AtomicDir(self.path, "store", overwrite=self.overwrite, error=StoreError)
        self.tmp = self._dir.tmp
        self._spill = self.tmp / "_spill"
        self._post_spill: PostOrderSpill | None = None  # made at close, once the post counts are known
        self._n_rows = 0
        self._last_key = -1
        self._pre_counts = np.zeros(self.n_neurons, dtype=np.int64)
        self._post_counts = np.zeros(self.n_neurons, dtype=np.int64)
        # connection-level stores: synapses (sums of weight) per neuron, for neurons.pre/post
        self._pre_weight = np.zeros(self.n_neurons, dtype=np.int64)
        self._post_weight = np.zeros(self.n_neurons, dtype=np.int64)
        # bucket boundaries over the pre index range
        if presorted:
            self._bounds = np.array([0, self.n_neurons], dtype=np.int64)
        else:
            if pre_counts is not None:
                cum = np.cumsum(np.asarray(pre_counts, dtype=np.int64))
                total = int(cum[-1]) if len(cum) else 0
                nb = max(1, -(-total // bucket_rows))
                cuts = np.searchsorted(cum, np.arange(1, nb) * (total / nb))
                self._bounds = np.unique(np.concatenate([[0], cuts, [self.n_neurons]]))
            else:
                self._bounds = np.array([0, self.n_neurons], dtype=np.int64)
        self._pieces = [0] * (len(self._bounds) - 1)
        self._sort_memory = int(memory) if pre_counts is not None and not presorted else 0
        sizes = (np.diff(np.concatenate([[0], np.cumsum(np.asarray(pre_counts, dtype=np.int64))])[self._bounds])
                 if self._sort_memory else np.zeros(len(self._pieces), dtype=np.int64))
        record = _record_dtype(self.columns, self.columns.values())
        self._held = HeldBuckets(sizes, record.itemsize, self._sort_memory)
        self._given_pre = None if pre_counts is None else np.asarray(pre_counts, dtype=np.int64)
        self._spill_buffers: dict[str, np.ndarray] = {}  # reused by each append's spill (fresh pages are slow)
        self._closed = False
        self._out: _ChunkedAppender | None = None
        self._pairs: _PairTable | None = None
        self._roi_pairs: _RoiPairTable | None = None

    # -- appending
    def append(self, block: Mapping[str, np.ndarray]) -> None:
        """Add a block of synapse rows (a mapping of column name to 1-D array).

        Parameters
        ----------
        block
            Column name -> 1-D array, one value per row: ``pre``, ``post`` (dense
            indices) and every column given to the writer (extra keys are ignored).

        Raises
        ------
        StoreError
            A column is missing, a ``pre``/``post`` index is outside
            ``[0, n_neurons)``, a ``pre`` index has more rows than the
            ``pre_counts`` the held buckets were sized by, or with ``presorted=True`` the rows are not in
            ``(pre, post)`` order (within the block or after the previous one).

        Examples
        --------
        >>> w = StoreWriter(tmp_path / "s", n_neurons=2, columns={"confidence": "float32"})
        >>> w.append({"pre": np.array([1, 0]), "post": np.array([0, 1]), "confidence": np.array([0.9, 0.8])})
        >>> w.close(pd.DataFrame({"bodyId": [7, 8]})).read_synapses(["pre"], 0, 2)["pre"].tolist()  # sorted
        [0, 1]
        """
        missing = [c for c in self.columns if c not in block]
        if missing:
            raise StoreError(f"block is missing columns {missing}")
        n = len(block["pre"])
        if n == 0:
            return
        arrs = {c: np.asarray(block[c]).astype(self.columns[c], copy=False) for c in self.columns}
        pre, post = arrs["pre"], arrs["post"]
        for side, a in (("pre", pre), ("post", post)):
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi >= self.n_neurons:
                raise StoreError(f"{side} index out of range [0, {self.n_neurons}): {lo}..{hi}")
        self._pre_counts += np.bincount(pre, minlength=self.n_neurons)
        self._post_counts += np.bincount(post, minlength=self.n_neurons)
        if self.kind == "connections":
            w = arrs["weight"]
            if len(w) and int(w.min()) < 1:
                raise StoreError(f"connection weights must be positive integers, got {int(w.min())}")
            self._pre_weight += _weighted_bincount(pre, w, self.n_neurons)
            self._post_weight += _weighted_bincount(post, w, self.n_neurons)
        self._n_rows += n
        if self.presorted:
            key = (pre.astype(np.int64) << 32) | post.astype(np.int64)
            if key[0] < self._last_key or np.any(np.diff(key) < 0):
                raise StoreError("presorted=True but rows are not sorted by (pre, post)")
            self._last_key = int(key[-1])
            self._write_sorted(arrs)
            return
        if self._given_pre is not None and self._held.nbytes:
            over = np.flatnonzero(self._pre_counts > self._given_pre)
            if len(over):  # the held buckets are sized by pre_counts
                i = int(over[0])
                raise StoreError(f"pre index {i} has {int(self._pre_counts[i])} rows so far, more than the "
                                 f"{int(self._given_pre[i])} pre_counts gave")
        spill_buckets(self._spill, self._bounds, pre, arrs, self._pieces, buffers=self._spill_buffers,
                      held=self._held)

    # -- finishing
    def _pair_table(self) -> _PairTable:
        if self._pairs is None:
            self._pairs = _PairTable(self.tmp / "index.zarr" / "pairs", self.chunk_rows)
        return self._pairs

    def _roi_pair_table(self) -> _RoiPairTable | None:
        """The per-ROI connection table, when the rows carry the ROI column it is keyed on."""
        if ROI_PAIRS_COLUMN not in self.columns:
            return None
        if self._roi_pairs is None:
            # synapse rows with confidences: the table's ROI-major copy too (not for connection rows,
            # whose confidence is the connection's)
            conf = copy_columns(self.columns) if self.kind != "connections" else []
            self._roi_pairs = _RoiPairTable(self.tmp / "index.zarr" / "roi_pairs", self.chunk_rows, conf)
        return self._roi_pairs

    def _write_roi_pairs(self, block: Mapping[str, np.ndarray]) -> None:
        table = self._roi_pair_table()
        if table is not None:
            table.write(block["pre"], block["post"], block[ROI_PAIRS_COLUMN],
                        block["weight"] if self.kind == "connections" else None, block)

    def _appender(self) -> _ChunkedAppender:
        if self._out is None:
            self._out = _ChunkedAppender(self.tmp / "synapses.zarr", self.columns, self.chunk_rows)
        return self._out

    def _sorted_blocks(self) -> Iterable[dict[str, np.ndarray]]:
        if self.presorted:
            return
        # each bucket is read into the same buffers and sorted into one of two sets of buffers, in turn:
        # the consumer may still be writing the previous sorted block (ChunkStream and the tables keep
        # copies only) while the next is made, never the one before it
        loads: dict[str, np.ndarray] = {}
        sorted_: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
        k = 0
        for b in range(len(self._bounds) - 1):
            rows = self._held.load(self._spill, b, self._pieces[b], buffers=loads)
            if rows is None:
                continue
            order = _pair_order(np.ascontiguousarray(rows["pre"]), np.ascontiguousarray(rows["post"]), self.n_neurons)
            yield take_columns(rows, order, buffers=sorted_[k % 2])
            k += 1

    def _write_sorted(self, block: Mapping[str, np.ndarray]) -> None:
        """One sorted block of contiguous columns into the synapse arrays, the pair table and the per-ROI
        table (the post-order spill is fed beside it, :meth:`_close`)."""
        self._appender().write(block)
        self._pair_table().write(block["pre"], block["post"], block.get("weight") if self.kind == "connections"
                                 else None)
        self._write_roi_pairs(block)

    def _post_bucket(self) -> int:
        return max(self.bucket_rows, self.chunk_rows)

    def _new_post_spill(self) -> PostOrderSpill | None:
        """The post-order spill fed by the sorted blocks (their post counts are known once every row is in).

        ``None`` (the index then reads the written columns back, :func:`_post_order`) for presorted
        rows (written as they came), a table of one post range (sorted in memory) or a disk without
        room for the spill (:func:`_post_order` re-reads per range instead).
        """
        if self.presorted or self._n_rows == 0:
            return None
        post_off = np.concatenate([[0], np.cumsum(self._post_counts)]).astype(np.int64)
        dtypes = {c: np.dtype(self.columns[c]) for c in BY_POST_COLUMNS if c in self.columns}
        if len(post_ranges(post_off, self._post_bucket())) <= 2 or not spill_fits(self.tmp, self._n_rows, dtypes):
            return None
        return PostOrderSpill(self.tmp / f"_spill-post-{uuid.uuid4().hex[:6]}", post_off, self._post_bucket(),
                              dtypes, memory=self._sort_memory)

    def close(
        self,
        neurons: pd.DataFrame,
        meta: Mapping[str, Any] | None = None,
        *,
        skeletons: Mapping[int, str] | Path | None = None,
        rois: Mapping[str, Any] | None = None,
    ) -> Connectome:
        """Write arrays, neuron table, index and meta.json, then move the store into place.

        Parameters
        ----------
        neurons
            One row per body in index order: must have ``bodyId`` (int64) and
            ``len(neurons) == n_neurons``. ``index``, ``pre`` and ``post`` are
            (re)computed; standard annotation columns are added when absent.
        meta
            Dataset fields for meta.json (``name``, ``version``, ``source``,
            ``units``, ``voxel_size``, ``voxel_offset``, ``default_confidence``...).
        skeletons
            Optional SWC files to include: a folder of ``<bodyId>.swc`` files or
            a mapping of bodyId to SWC text.
        rois
            ROI names for ``roi_pre``/``roi_post`` codes already present in the
            blocks (e.g. a neuPrint export): ``{"names": [...], "primary": [...],
            "hierarchy": {...}}``, written as the store's ROI folder.

        Returns
        -------
        Connectome
            The new store (not made the default connectome).

        Raises
        ------
        StoreError
            The writer was already closed, the neuron table does not fit
            (length, ``bodyId``), the rows' ``pre`` counts differ from the
            ``pre_counts`` given (with ``sort_memory``), an ROI name is bad or repeated, or the target
            changed so that it may no longer be replaced. Any error aborts the
            write: nothing appears at ``path``.

        Examples
        --------
        >>> w = StoreWriter(tmp_path / "s", n_neurons=2, presorted=True)
        >>> w.append({"pre": np.array([0, 0, 1]), "post": np.array([1, 1, 0])})
        >>> conn2 = w.close(pd.DataFrame({"bodyId": [7, 8]}), {"name": "two", "units": "nm"})
        >>> conn2.meta["name"], conn2.n_synapses, conn2.check()
        ('two', 3, [])
        """
        if self._closed:
            raise StoreError("writer already closed")
        try:
            self._close(neurons, dict(meta or {}), skeletons, rois)
        except BaseException:
            self._closed = True
            self._dir.abort()
            raise
        self._closed = True
        self._dir.commit()  # checks the target again, moves the store into place, releases the lock
        return open(self.path, set_default=False)

    def _close(self, neurons: pd.DataFrame, meta: dict, skeletons, rois) -> None:
        if self._held.nbytes and self._given_pre is not None and not np.array_equal(self._pre_counts,
                                                                                    self._given_pre):
            i = int(np.flatnonzero(self._pre_counts != self._given_pre)[0])
            raise StoreError(f"pre index {i} got {int(self._pre_counts[i])} rows, not the "
                             f"{int(self._given_pre[i])} pre_counts gave")
        neurons = _prepare_neurons(neurons, self.n_neurons)
        weighted = self.kind == "connections"
        neurons["pre"] = self._pre_weight if weighted else self._pre_counts
        neurons["post"] = self._post_weight if weighted else self._post_counts
        syn_dir = self.tmp / "synapses.zarr"
        out = self._appender()
        pairs = self._pair_table()
        self._post_spill = self._new_post_spill()
        # a block is compressed and written on one thread, and split by post range on another, while the
        # next bucket is loaded and sorted (each thread is done with a block once the next one is handed
        # to it, before the sort reuses that block's buffers)
        with Background("connectome-dask-write") as write, Background("connectome-dask-post-spill") as post:
            for block in self._sorted_blocks():
                write.submit(self._write_sorted, block)
                if self._post_spill is not None:
                    post.submit(self._post_spill.add, block)
        n = out.finish()
        n_pairs = pairs.finish()
        roi_table = self._roi_pair_table()
        n_roi_pairs = roi_table.finish() if roi_table is not None else None
        assert n == self._n_rows, (n, self._n_rows)
        shutil.rmtree(self._spill, ignore_errors=True)
        by_post = _build_index(
            self.tmp, syn_dir, self._pre_counts, self._post_counts, n, self.chunk_rows,
            list(self.columns), bucket=self._post_bucket(), spilled=self._post_spill,
        )
        write_neuron_table(neurons, self.tmp / "neurons.parquet")
        checksums = {"neurons.parquet": file_digest(self.tmp / "neurons.parquet")}
        skel_rel = None
        if skeletons is not None:
            skel_rel = "skeletons"
            _write_skeletons(self.tmp / skel_rel, skeletons, set(neurons["bodyId"].tolist()))
            checksums[f"{skel_rel}/manifest.json"] = file_digest(self.tmp / skel_rel / "manifest.json")
        rois_rel = None
        if rois is not None:
            info = dict(rois)
            names = [safe_name(str(x), "ROI name") for x in info.get("names", [])]
            if len(set(names)) != len(names):
                raise StoreError("duplicate ROI names")
            info["names"] = names
            info.setdefault("primary", names)
            info.setdefault("hierarchy", {})
            rois_rel = "rois/g0"
            (self.tmp / rois_rel).mkdir(parents=True)
            write_marker(self.tmp / rois_rel, "rois")
            write_json_atomic(self.tmp / rois_rel / "rois.json", info)
            checksums.update(folder_digests(self.tmp, rois_rel))
        full_meta: dict[str, Any] = {
            "format": FORMAT_NAME,
            "schema_version": KIND_SCHEMA_VERSION[self.kind],
            "uuid": uuid.uuid4().hex,
            "name": meta.pop("name", self.path.name),
            "version": meta.pop("version", "0"),
            "source": meta.pop("source", None),
            "units": meta.pop("units", "nm"),
            "voxel_size": meta.pop("voxel_size", None),
            "voxel_offset": meta.pop("voxel_offset", None),
            "default_confidence": float(meta.pop("default_confidence", 0.0)),
            "n_neurons": self.n_neurons,
            "n_synapses": n,
            "generation": 0,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "neurons": "neurons.parquet",
            "synapses": {
                "path": "synapses.zarr",
                "chunk_rows": self.chunk_rows,
                "sorted_by": ["pre", "post"],
                "columns": {c: encode_name(c) for c in self.columns},
            },
            "index": {"path": "index.zarr", "by_post": by_post, "pairs": "pairs", "n_pairs": n_pairs},
            "rois": rois_rel,
            "skeletons": skel_rel,
            "checksums": checksums,
            "retained": [],
            "extra": meta,
        }
        if n_roi_pairs is not None:  # keyed on the roi_post array written here
            full_meta["index"].update({"roi_pairs": "roi_pairs", "n_roi_pairs": n_roi_pairs,
                                       "roi_pairs_of": encode_name(ROI_PAIRS_COLUMN)})
            if roi_table is not None and roi_table.copy is not None and roi_table.copy_meta is not None:
                of = {c: encode_name(c) for c in [ROI_PAIRS_COLUMN, *roi_table.copy.conf]}
                full_meta["index"]["roi_major"] = {**roi_table.copy_meta, "of": of}
        if weighted:  # declared: readers (and older versions, by schema_version 2) know the rows are edges
            full_meta["kind"] = "connections"
            full_meta["total_weight"] = int(self._pre_weight.sum())
        write_meta(self.tmp, full_meta)

    def abort(self) -> None:
        """Discard everything written so far.

        Examples
        --------
        >>> w = StoreWriter(tmp_path / "never", n_neurons=2)
        >>> w.append({"pre": np.array([0]), "post": np.array([1])})
        >>> w.abort()
        >>> sorted(p.name for p in tmp_path.iterdir())  # no store, no temp dir; the lock file stays
        ['.never.lock']
        """
        if not self._closed:
            self._closed = True
            self._dir.abort()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._closed:
            self.abort()


class _PairTable:
    """Run-length encode (pre, post)-sorted blocks into the connection table as they stream by.

    The table (one row per connected neuron pair: ``pre``, ``post``,
    ``weight``) is neuPrint's ``ConnectsTo`` weight, stored once so that
    unfiltered whole-brain pair counts and grouped matrices read ~6x fewer
    rows than the synapse table and skip the run-length pass.
    """

    def __init__(self, group_path: Path, chunk_rows: int):
        self.out = _ChunkedAppender(group_path, {"pre": "int32", "post": "int32", "weight": "int64"}, chunk_rows)
        self.pending: tuple[int, int, int] | None = None

    def write(self, pre: np.ndarray, post: np.ndarray, weight: np.ndarray | None = None) -> None:
        from .._agg_kernels import pair_runs

        if len(pre) == 0:
            return
        if weight is None:
            up, uq, cnt = pair_runs(pre, post, np.ones(len(pre), dtype=bool))
        else:  # connection rows (one per pair and ROI): the pair's weight is their sum
            starts = np.flatnonzero(np.r_[True, (pre[1:] != pre[:-1]) | (post[1:] != post[:-1])])
            up, uq = pre[starts], post[starts]
            cnt = np.add.reduceat(weight.astype(np.int64), starts)
        if self.pending is not None:
            p, q, w = self.pending
            if up[0] == p and uq[0] == q:
                cnt[0] += w
            else:
                self.out.write({"pre": np.array([p], np.int32), "post": np.array([q], np.int32),
                                "weight": np.array([w], np.int64)})
        # the last run may continue in the next block
        self.pending = (int(up[-1]), int(uq[-1]), int(cnt[-1]))
        self.out.write({"pre": up[:-1], "post": uq[:-1], "weight": cnt[:-1]})

    def finish(self) -> int:
        if self.pending is not None:
            p, q, w = self.pending
            self.out.write({"pre": np.array([p], np.int32), "post": np.array([q], np.int32),
                            "weight": np.array([w], np.int64)})
            self.pending = None
        return self.out.finish()


def _weighted_bincount(idx: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    """Exact int64 sums of ``w`` per index (``np.bincount`` with weights goes through float64)."""
    order = np.argsort(idx, kind="stable")
    s = idx[order]
    out = np.zeros(n, dtype=np.int64)
    if len(s):
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        out[s[starts]] = np.add.reduceat(w[order].astype(np.int64), starts)
    return out


#: the columns every prepared neuron table has, first and in this order (:func:`_prepare_neurons`)
PREPARED_NEURON_COLUMNS = ("bodyId", "index", "type", "instance", "status", "cropped")


def _prepare_neurons(neurons: pd.DataFrame, n_neurons: int) -> pd.DataFrame:
    if "bodyId" not in neurons.columns:
        raise StoreError("neuron table needs a 'bodyId' column")
    if len(neurons) != n_neurons:
        raise StoreError(f"neuron table has {len(neurons)} rows, expected {n_neurons}")
    neurons = neurons.reset_index(drop=True).copy()
    neurons["bodyId"] = neurons["bodyId"].astype("int64")
    if neurons["bodyId"].duplicated().any():
        dup = neurons.loc[neurons["bodyId"].duplicated(), "bodyId"].iloc[0]
        raise StoreError(f"neuron table: duplicate bodyId {dup}")
    neurons["index"] = np.arange(n_neurons, dtype=np.int32)
    for c in ("type", "instance", "status"):
        if c not in neurons.columns:  # all missing, from a scalar (a list of 139 k None took 15 ms)
            neurons[c] = pd.Series(pd.NA, index=neurons.index, dtype="string")
        else:
            neurons[c] = neurons[c].astype("string")
    if "cropped" not in neurons.columns:
        neurons["cropped"] = pd.arrays.BooleanArray(np.zeros(n_neurons, dtype=bool), np.ones(n_neurons, dtype=bool))
    else:
        neurons["cropped"] = neurons["cropped"].astype("boolean")
    first = list(PREPARED_NEURON_COLUMNS)
    return neurons[first + [c for c in neurons.columns if c not in first]]


def _write_skeletons(dest: Path, skeletons, body_ids: set[int]) -> None:
    """Write ``<bodyId>.swc`` files (regular files only) and ``manifest.json`` of their SHA-256."""
    dest.mkdir(parents=True, exist_ok=True)
    write_marker(dest, "skeletons")
    if isinstance(skeletons, str | os.PathLike):
        items = ((int(p.stem), p.read_text()) for p in Path(skeletons).glob("*.swc")
                 if p.stem.isdigit() and not p.is_symlink())
    else:
        items = ((int(k), v) for k, v in skeletons.items())
    manifest = {}
    for bid, text in items:
        if bid in body_ids:
            f = dest / f"{bid}.swc"
            f.write_text(text)
            manifest[f.name] = file_digest(f)
    write_json_atomic(dest / "manifest.json", manifest)


def _build_index(
    root: Path, syn_dir: Path, pre_counts, post_counts, n: int, chunk_rows: int,
    columns: Sequence[str], bucket: int = 1 << 25, spilled: PostOrderSpill | None = None,
) -> dict[str, str]:
    """Write index.zarr: pre_offsets, post_offsets, post_perm and by_post copies.

    Rows are sorted by pre, so ``pre_offsets`` is a cumulative sum.
    ``post_perm`` lists row ids ordered by (post, row), and ``by_post/<col>``
    holds the :data:`BY_POST_COLUMNS` present in that order. Returns the
    by_post mapping for meta.json. ``spilled``: those columns already
    split by post range as the sorted blocks were written (else they are
    read back from ``syn_dir``).
    """
    idx = root / "index.zarr"
    _ensure_group(idx)
    pre_off = np.concatenate([[0], np.cumsum(pre_counts)]).astype(np.int64)
    post_off = np.concatenate([[0], np.cumsum(post_counts)]).astype(np.int64)
    for name, a in (("pre_offsets", pre_off), ("post_offsets", post_off)):
        arr = _create_array(idx, name, len(a), "int64", chunk_rows)
        arr[:] = a
    cols = [c for c in BY_POST_COLUMNS if c in columns]
    _ensure_group(idx / "by_post")
    src = {c: syn_dir / encode_name(c) for c in cols}
    dst = {"row": idx / "post_perm", **{c: idx / "by_post" / encode_name(c) for c in cols}}
    if spilled is not None:
        if spilled.rows != n or list(spilled.dtypes) != [*cols, "row"]:
            raise StoreError("internal error: the post-order spill does not hold the table's rows")
        spilled.write(dst, chunk_rows)
    else:
        _post_order(syn_dir / "post", src, dst, post_off, n, chunk_rows, bucket, with_row=True)
    return {c: f"by_post/{encode_name(c)}" for c in cols}


def write_store(
    path: str | os.PathLike,
    neurons: pd.DataFrame,
    synapses: pd.DataFrame,
    meta: Mapping[str, Any] | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = False,
    skeletons: Mapping[int, str] | Path | None = None,
) -> Connectome:
    """Write an in-memory connectome (already encoded) to a store.

    ``neurons`` has one row per body (``bodyId`` + annotations) in index
    order; ``synapses`` has ``pre``/``post`` as dense indices into it plus
    any other synapse columns. For raw tables with body IDs use
    :func:`connectome_dask.ingest`.

    Parameters
    ----------
    path
        Store directory to create.
    neurons
        One row per body in index order, with ``bodyId``.
    synapses
        ``pre``, ``post`` (dense indices) and other synapse columns.
    meta
        Dataset fields for meta.json (see :meth:`StoreWriter.close`).
    chunk_rows
        Zarr chunk length (rows).
    overwrite
        Replace an existing connectome store at ``path``.
    skeletons
        A folder of ``<bodyId>.swc`` files or a mapping of bodyId to SWC text.

    Returns
    -------
    Connectome

    Raises
    ------
    StoreError
        As for :class:`StoreWriter` and its :meth:`~StoreWriter.append` and
        :meth:`~StoreWriter.close` (an existing target, bad indices, a neuron
        table that does not fit).

    Examples
    --------
    >>> neurons = pd.DataFrame({"bodyId": [10, 20, 30], "type": ["A", "B", "B"]})
    >>> synapses = pd.DataFrame({"pre": np.array([0, 2, 0], np.int32), "post": np.array([1, 1, 2], np.int32),
    ...                          "confidence": np.array([0.9, 0.8, 0.7], np.float32)})
    >>> small = write_store(tmp_path / "small", neurons, synapses, {"name": "small"})
    >>> small.n_synapses, small.synapse_columns, small.neurons.post.tolist()
    (3, ['pre', 'post', 'confidence'], [0, 2, 1])
    """
    cols = {c: str(synapses[c].dtype) for c in synapses.columns if c not in ("pre", "post")}
    w = StoreWriter(path, len(neurons), cols, chunk_rows=chunk_rows, overwrite=overwrite)
    with w:
        w.append({c: synapses[c].to_numpy() for c in synapses.columns})
        return w.close(neurons, meta, skeletons=skeletons)
