"""The write path of an open store: new synapse columns computed per partition, then one atomic commit.

:func:`write_synapse_columns` holds the writer lock, writes every output
column under fresh directory names (one task per partition,
:func:`_write_outputs`), keeps the post-ordered copies in step
(:func:`~connectome_dask.store.sort._post_order`) and, when ``roi_post`` is
written, the per-ROI connection table keyed on it
(:func:`~connectome_dask.store.tables.rebuild_roi_pair_table`), and replaces ``meta.json``
only if it still holds the generation the store was opened at
(:func:`_check_current`, checked again right before the rename). The
:class:`~connectome_dask.store.Connectome` methods of the same names delegate here.

Imports :mod:`~connectome_dask.store.format`, :mod:`~connectome_dask.store.arrays`,
:mod:`~connectome_dask.store.sort`, :mod:`~connectome_dask.store.tables` and, lazily, :mod:`connectome_dask._compute`
(not the reader: the store is passed in, and re-opened as ``type(conn)(path)``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._fsutil import encode_name, remove_leftovers, rmtree_real, write_marker, writer_lock
from ..errors import StoreError
from .arrays import _ensure_group, write_chunks
from .format import (
    BY_POST_COLUMNS,
    ROI_PAIRS_COLUMN,
    _create_array,
    _inside,
    _read_meta,
    _references,
    folder_digests,
    safe_name,
    write_meta,
)
from .roi_major import copy_columns
from .sort import _post_order
from .tables import rebuild_roi_pair_table

if TYPE_CHECKING:
    from .reader import Connectome

__all__ = ["write_synapse_columns"]


def _check_current(conn: Connectome, when: str) -> dict:
    """Raise StoreError unless meta.json still holds the generation ``conn`` was opened at."""
    cur = _read_meta(conn.path)
    same = (cur.get("uuid"), cur.get("generation", 0), cur.get("checksum")) == (
        conn.meta.get("uuid"), conn.meta.get("generation", 0), conn.meta.get("checksum"))
    if not same or (cur.get("checksum") is None and cur != conn.meta):
        raise StoreError(
            f"{conn.path} changed since it was opened (generation {conn.generation} -> "
            f"{cur.get('generation', 0)}{', a different store' if cur.get('uuid') != conn.meta.get('uuid') else ''}"
            f", seen {when}): another writer committed. Reopen it with connectome_dask.open and retry"
        )
    return cur


def write_synapse_columns(
    conn: Connectome,
    func: Callable[..., Mapping[str, np.ndarray]],
    inputs: Sequence[str],
    outputs: Mapping[str, str],
    *,
    args: tuple = (),
    write_rois: Callable[[Path], None] | None = None,
    progress: bool | None = None,
    desc: str | None = None,
    meta_update: Mapping[str, Any] | None = None,
) -> Connectome:
    """Compute new synapse columns and commit them; see :meth:`Connectome.write_synapse_columns`.

    Parameters
    ----------
    conn
        The store, at the generation the commit builds on.
    func
        ``func(block, *args) -> {name: array}``, run on every partition.
    inputs
        Synapse columns read for ``func``.
    outputs
        New or replaced columns and their dtypes (never ``pre``/``post``).
    args
        Extra arguments of ``func``.
    write_rois
        Fills the new ROI folder (must create ``rois.json``), or ``None``.
    progress, desc
        Progress bar switch and label.
    meta_update
        Keys to set in meta.json with the commit.

    Returns
    -------
    Connectome
        The re-opened store (the caller updates the default connectome).

    Raises
    ------
    StoreError
        An output is ``pre``/``post`` or has a bad name, another writer holds
        the lock or committed since ``conn`` was opened, the ROI folder is a
        symlink or ``write_rois`` made no ``rois.json``.
    """
    from .._compute import compute

    for name in outputs:
        safe_name(name, "synapse column")
        if name in ("pre", "post"):
            raise StoreError(
                f"write_synapse_columns cannot replace {name!r}: it defines the row order, the "
                "index and the connection table of the store; ingest the table again instead"
            )
    with writer_lock(conn.path, StoreError):
        _check_current(conn, "before the write")
        conn.collect_garbage()
        remove_leftovers(conn.path)
        new = _write_locked(conn, func, inputs, outputs, args, write_rois, progress, desc, meta_update, compute)
        new.collect_garbage()
    return new


def _write_locked(conn: Connectome, func, inputs, outputs, args, write_rois, progress, desc, meta_update,
                  compute) -> Connectome:
    """The write itself, under the writer lock: new arrays, the ROI folder, by_post copies, meta.json."""
    gen = conn.generation + 1
    syn_root = _inside(conn.path, conn.meta["synapses"]["path"])
    idx_root = _inside(conn.path, conn.meta["index"]["path"])
    bp = [c for c in outputs if c in BY_POST_COLUMNS and conn.meta["index"].get("by_post") is not None]
    if bp:  # never write through a symlinked by_post folder (it would land outside the store)
        _inside(conn.path, f"{conn.meta['index']['path']}/by_post")
    tag = f"g{gen}-{uuid.uuid4().hex[:6]}"
    new_dirs: dict[str, str] = {}
    new_bp: dict[str, str] = {}
    new_rois_rel = None
    new_roi_pairs: str | None = None
    n_roi_pairs = 0
    copy_meta: dict[str, Any] | None = None
    try:
        for name, dt in outputs.items():
            d = f"{encode_name(name)}.{tag}"
            new_dirs[name] = d
            del_arr = _create_array(syn_root, d, conn.n_synapses, str(np.dtype(dt)), conn.chunk_rows)
            del del_arr
        if write_rois is not None:
            new_rois_rel = f"rois/{tag}"
            rroot = conn.path / "rois"
            if rroot.is_symlink():
                raise StoreError(f"{rroot} is a symlink; stores never hold symlinks (refusing to write)")
            rroot.mkdir(exist_ok=True)
            rdir = rroot / tag
            rdir.mkdir()
            write_marker(rdir, "rois")
            write_rois(rdir)
            if not (rdir / "rois.json").exists():
                raise StoreError("write_rois must create rois.json")
        tasks = conn.map_partitions(
            _write_outputs,
            list(inputs),
            func,
            {k: str(syn_root / v) for k, v in new_dirs.items()},
            args,
            name=f"write-{'-'.join(outputs)}",
        )
        compute(*tasks, progress=progress, desc=desc)
        # keep the post-ordered copies (clustered index) in step
        if bp:
            _ensure_group(idx_root / "by_post")
            post_off = conn._read_index("post_offsets")
            new_bp = {c: f"by_post/{encode_name(c)}.{tag}" for c in bp}
            _post_order(
                conn._array_path("post"),
                {c: syn_root / new_dirs[c] for c in bp},
                {c: idx_root / new_bp[c] for c in bp},
                post_off, conn.n_synapses, conn.chunk_rows, bucket=1 << 25,
            )
        # the per-ROI connection table is keyed on roi_post: rebuilt from the new column, in this commit
        if ROI_PAIRS_COLUMN in outputs:
            new_roi_pairs = f"roi_pairs.{tag}"
            # with its ROI-major copy of the confidences (synapse rows only)
            conf = copy_columns(conn.synapse_columns) if conn.kind != "connections" else []
            cols = ["pre", "post", ROI_PAIRS_COLUMN] + (["weight"] if conn.kind == "connections" else []) + conf
            src = {c: str(syn_root / new_dirs[c]) if c in new_dirs else str(conn._array_path(c)) for c in cols}
            n_roi_pairs, copy_meta = rebuild_roi_pair_table(src, conn.token, conn.partitions(align_pre=True),
                                                            idx_root / new_roi_pairs, conn.chunk_rows, conf)
            if copy_meta is not None:  # recorded with the arrays it was made from
                of = {c: new_dirs.get(c) or conn.meta["synapses"]["columns"][c] for c in [ROI_PAIRS_COLUMN, *conf]}
                copy_meta = {**copy_meta, "of": of}
    except BaseException:
        for d in new_dirs.values():
            rmtree_real(syn_root / d)
        for rel in new_bp.values():
            rmtree_real(idx_root / rel)
        if new_rois_rel:
            rmtree_real(conn.path / new_rois_rel)
        if new_roi_pairs:
            rmtree_real(idx_root / new_roi_pairs)
        raise
    meta = json.loads(json.dumps(conn.meta))
    meta["synapses"]["columns"].update(new_dirs)
    if new_bp:
        meta["index"]["by_post"].update(new_bp)
    if new_roi_pairs:
        meta["index"].update({"roi_pairs": new_roi_pairs, "n_roi_pairs": int(n_roi_pairs),
                              "roi_pairs_of": new_dirs[ROI_PAIRS_COLUMN]})
        if copy_meta is not None:
            meta["index"]["roi_major"] = copy_meta
        else:
            meta["index"].pop("roi_major", None)
    checksums = dict(meta.get("checksums") or {})
    if new_rois_rel:
        old_rois = meta.get("rois")
        if old_rois:
            checksums = {k: v for k, v in checksums.items() if not k.startswith(f"{old_rois}/")}
        checksums.update(folder_digests(conn.path, new_rois_rel))
        meta["rois"] = new_rois_rel
    meta["checksums"] = checksums
    meta["generation"] = gen
    if meta_update:
        meta.update(meta_update)
    # what the previous generation used and this one no longer does: kept
    # until the next commit, so a reader of generation g - 1 can finish
    meta["retained"] = sorted(_references(conn.meta) - _references(meta))

    def last_check() -> None:  # the store must still be at the generation this commit read
        _check_current(conn, "at the commit")

    write_meta(conn.path, meta, before_replace=last_check)
    return type(conn)(conn.path)


def _write_outputs(block, start, func, out_paths: Mapping[str, str], args):
    import zarr

    res = func(block, *args)
    n = len(next(iter(block.values()))) if block else 0
    for name, p in out_paths.items():
        a = np.asarray(res[name])
        if len(a) != n:
            raise StoreError(f"column function returned {len(a)} rows for {name!r}, expected {n}")
        # write_empty_chunks is a runtime setting, not stored with the array: without
        # it a chunk equal to the fill value (all -1: no ROI) is skipped, and the
        # committed array then lacks that chunk file (a read error, by design)
        arr = zarr.open_array(p, mode="r+").with_config({"write_empty_chunks": True})
        c = int(arr.chunks[0])
        whole = start % c == 0 and (n % c == 0 or start + n == arr.shape[0])  # partitions are chunk-aligned
        if not (whole and write_chunks(arr, p, start // c, a)):
            arr[start : start + n] = a.astype(arr.dtype, copy=False)
    return n
