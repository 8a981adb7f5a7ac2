"""The connectome store: on-disk format, streaming writer, and :class:`Connectome`.

This is the only module that knows the file layout (documented in
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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._fsutil import (
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
from .errors import StoreError

log = logging.getLogger(__name__)

__all__ = [
    "SCHEMA_VERSION",
    "Connectome",
    "StoreError",
    "StoreWriter",
    "open",
    "default_connectome",
    "set_default_connectome",
    "write_store",
]

SCHEMA_VERSION = 1
FORMAT_NAME = "connectome-dask"
DEFAULT_CHUNK_ROWS = 1 << 18  # 256 Ki rows: 1 MB per int32 column chunk (point reads decode little)
DEFAULT_PARTITION_CHUNKS = 16  # 4 Mi rows per dask partition
#: columns kept a second time in (post, row) order under index.zarr/by_post, so
#: one body's *input* synapses are contiguous slices too (a clustered index)
BY_POST_COLUMNS = (
    "pre", "x_post", "y_post", "z_post", "x", "y", "z",
    "confidence", "confidence_post", "roi_post",
)
POSITION_COLUMNS_PAIR = ("x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post")
POSITION_COLUMNS_CENTER = ("x", "y", "z")
STANDARD_NEURON_COLUMNS = ("type", "instance", "status", "cropped")
# names of the directories a commit creates: <encoded column>.g<generation>-<6 hex>
_GEN_DIR = re.compile(r"^.+\.g[0-9]+-[0-9a-f]{6}$")
_ROI_DIR = re.compile(r"^g[0-9]+(-[0-9a-f]{6})?$")
_TXN_FILE = re.compile(r"^\.meta\.json\.tmp-[0-9a-f]{8}$")
_SPILL_DIR = re.compile(r"^_spill-[0-9a-f]{6}$")
#: arrays of index.zarr that every store has
INDEX_ARRAYS = ("pre_offsets", "post_offsets", "post_perm")

# dtypes of the known synapse columns; other numeric columns keep their own
SYNAPSE_DTYPES: dict[str, str] = {
    "pre": "int32",
    "post": "int32",
    **{c: "float32" for c in POSITION_COLUMNS_PAIR + POSITION_COLUMNS_CENTER},
    "confidence": "float32",
    "confidence_pre": "float32",
    "confidence_post": "float32",
    "size": "float32",
    "roi_pre": "int16",
    "roi_post": "int16",
}




# ----------------------------------------------------------------------------- helpers


def safe_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it passes the package's one name rule (:func:`~connectome_dask._fsutil.check_name`).

    Any printable name without ``/``, ``\\``, NUL or a line break, not ``.`` or
    ``..``. Names are never used as paths unencoded
    (:func:`~connectome_dask._fsutil.encode_name`).

    Examples
    --------
    >>> safe_name("CRE(-ROB,-RUB)(R)", "ROI name")
    'CRE(-ROB,-RUB)(R)'
    >>> safe_name("EB\\n", "ROI name")
    Traceback (most recent call last):
    ...
    connectome_dask.errors.StoreError: ROI name 'EB\\n' is not allowed: ...
    """
    return check_name(name, what, error=StoreError)


def _inside(root: Path, rel: str) -> Path:
    """Resolve ``rel`` under ``root``: refuse anything that escapes it or passes a symlink."""
    return no_symlinks(root, rel, root / "meta.json", error=StoreError)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_json_atomic(path: Path, obj: Any, *, before_replace: Callable[[], None] | None = None) -> None:
    """Write JSON to ``path`` via a temporary file and ``os.replace`` (atomic on POSIX).

    ``before_replace`` runs after the bytes are on disk and right before the
    rename (the commit's last check).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with tmp.open("w") as f:
            json.dump(obj, f, indent=1, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _meta_digest(meta: Mapping[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, default=_json_default, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def write_meta(path: Path, meta: dict, *, before_replace: Callable[[], None] | None = None) -> None:
    """Write a store's meta.json with its own SHA-256 (``checksum``), atomically."""
    meta = dict(meta)
    meta["checksum"] = _meta_digest(meta)
    write_json_atomic(Path(path) / "meta.json", meta, before_replace=before_replace)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (``sha256:<hex>``)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def array_codecs() -> list:
    """Bytes codecs of every stored array: LZ4 Blosc, then a CRC32C checksum of the chunk.

    zarr v3 ships ``crc32c``: a flipped bit in a chunk file is a read error
    (naming the array and chunk), never a silently different value.
    """
    from zarr.codecs import BloscCodec, Crc32cCodec

    return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec()]


_codecs = array_codecs  # the older private name


def _create_array(group_path: Path, name: str, n: int, dtype: str, chunk_rows: int):
    """Create a 1-D array directory ``group_path/name`` (``name`` already encoded) with the marker."""
    import zarr

    check_component(name, "array name", group_path, error=StoreError)
    # the marker first (zarr's overwrite=True would delete it): a write killed
    # while creating the array leaves a directory garbage collection recognises
    d = group_path / name
    d.mkdir(parents=True)
    write_marker(d, "array")
    arr = zarr.create_array(
        store=str(d),
        shape=(n,),
        chunks=(int(chunk_rows),),
        dtype=dtype,
        compressors=array_codecs(),
        fill_value=-1 if np.dtype(dtype).kind == "i" else 0,
        overwrite=False,
        # every chunk gets a file, so a lost chunk file is detectable (reads
        # check for it: a missing chunk is an error, never the fill value)
        config={"write_empty_chunks": True},
    )
    return arr


def require_chunks(path: str | Path, chunk_rows: int, chunks: Iterable[int]) -> None:
    """Raise StoreError unless every listed chunk file of the array at ``path`` exists.

    zarr-python 3.1 returns the fill value for a missing chunk (an error mode
    is only in later releases, zarr-python PR 3748), hence this check: a few
    ``stat`` calls per read, next to decoding whole chunks.
    """
    base = os.path.join(os.fspath(path), "c")
    missing = [int(i) for i in chunks if not os.path.isfile(os.path.join(base, str(int(i))))]
    if missing:
        where = ", ".join(f"chunk {i} (rows {i * chunk_rows}..{(i + 1) * chunk_rows})" for i in missing[:5])
        raise StoreError(
            f"{path}: {where} missing: the chunk file was deleted or the store was "
            "replaced while reading; reopen the store, and run `connectome-dask info --check` on it"
        )


def _read_range(path: str, token: str, start: int, stop: int) -> np.ndarray:
    """Read rows ``start:stop`` of a store array; decode failures name the array, chunks and rows."""
    arr = _open_array_cached(path, token)
    n = arr.shape[0]
    stop = min(stop, n)
    chunks = range(0)
    if stop > start:
        c = arr.chunks[0]
        chunks = range(start // c, (stop - 1) // c + 1)
        require_chunks(path, c, chunks)
    try:
        out = arr[start:stop]
        # again after the read: a chunk file deleted between the check and the
        # read (a newer commit's garbage collection) made zarr return fill values
        require_chunks(path, arr.chunks[0], chunks)
        _check_unchanged(path, token)
        return out
    except StoreError:
        raise
    except Exception as e:  # noqa: BLE001 - zarr/blosc/crc32c raise assorted types for damaged chunks
        c = arr.chunks[0]
        bad = []
        for i in range(start // c, max(start, stop - 1) // c + 1):
            try:
                arr[i * c : min((i + 1) * c, arr.shape[0])]
            except Exception:  # noqa: BLE001
                bad.append(i)
        where = ", ".join(f"chunk {i} (rows {i * c}..{min((i + 1) * c, arr.shape[0])})" for i in bad[:5])
        raise StoreError(
            f"{path}: cannot read {where or f'rows {start}..{stop}'}: {type(e).__name__}: {e}. "
            "The chunk file may be truncated or corrupted; run `connectome-dask info --check` "
            "on the store"
        ) from e


def read_rows(path: str, token: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the store array at ``path`` for the store generation ``token``.

    The read used inside tasks: the array is opened once per (path, token) on
    each worker, every touched chunk file must exist, and a store replaced at
    the same path is refused (:attr:`Connectome.token`).
    """
    return _read_range(path, token, start, stop)


def take_rows(arr: Any, path: str | Path, rows: np.ndarray, token: str | None = None) -> np.ndarray:
    """``arr.get_orthogonal_selection(rows)`` after checking the touched chunk files exist.

    With ``token`` (the store identity the array was opened for), also that the
    array directory is still the one opened.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.zeros(0, dtype=arr.dtype)
    c = arr.chunks[0]
    chunks = np.unique(rows // c).tolist()
    require_chunks(path, c, chunks)
    try:
        out = arr.get_orthogonal_selection(rows)
        require_chunks(path, c, chunks)  # again: deleted while being read means fill values were read
        _check_unchanged(str(path), token)
        return out
    except StoreError:
        raise
    except Exception as e:  # noqa: BLE001 - zarr/blosc/crc32c raise assorted types for damaged chunks
        raise StoreError(
            f"{path}: cannot read {len(rows)} rows: {type(e).__name__}: {e}. The chunk file may be "
            "truncated or corrupted; run `connectome-dask info --check` on the store"
        ) from e


#: (path, token) -> (st_dev, st_ino) of the array directory when it was opened
_ARRAY_DIRS: dict[tuple[str, str], tuple[int, int]] = {}


@lru_cache(maxsize=256)
def _open_array_cached(path: str, token: str):
    """Open a store array once per (path, store identity and generation).

    ``token`` is ``"<store uuid>:<generation>"``: a store replaced at the same
    path (new uuid) or committed again (new generation) never hits a stale entry,
    on the client or on a worker. An array opened for a store that has since
    been replaced at the same path is refused (the uuid in meta.json differs),
    and every read checks the directory is still the one opened
    (:func:`_check_unchanged`).
    """
    import zarr

    try:
        st = os.stat(path)
        arr = zarr.open_array(path, mode="r")
    except Exception as e:  # noqa: BLE001 - FileNotFoundError, JSON errors, zarr's own
        raise StoreError(f"{path}: cannot open the array ({type(e).__name__}: {e})") from e
    _check_store_identity(path, token)
    if len(_ARRAY_DIRS) > 4096:
        _ARRAY_DIRS.clear()
    _ARRAY_DIRS[(path, token)] = (st.st_dev, st.st_ino)
    return arr


def _check_store_identity(path: str, token: str) -> None:
    """Refuse an array of a store whose meta.json now names another store (uuid) than ``token``."""
    ident = token.rsplit(":", 1)[0]
    for root in list(Path(path).parents)[:4]:
        mp = root / "meta.json"
        if mp.is_file() and not mp.is_symlink():
            try:
                cur = json.loads(mp.read_bytes()).get("uuid")
            except (OSError, ValueError, AttributeError):
                return
            if cur and cur != ident:
                raise StoreError(
                    f"{root} was replaced since it was opened (store {ident} is now {cur}); "
                    "reopen it with connectome_dask.open"
                )
            return


def _check_unchanged(path: str, token: str | None) -> None:
    """Raise StoreError unless the array directory at ``path`` is the one opened for ``token``.

    A store re-created at the same path has new directories under the same
    names: reading them with the old store's metadata would mix two stores.
    """
    want = _ARRAY_DIRS.get((path, token)) if token is not None else None
    if want is None:
        return
    try:
        st = os.stat(path)
    except OSError:
        raise StoreError(f"{path}: the array is gone (removed by a newer commit, or the store was "
                         "replaced); reopen the store") from None
    if (st.st_dev, st.st_ino) != want:
        raise StoreError(f"{path}: the array was replaced since the store was opened (a store was "
                         "re-created at this path); reopen it with connectome_dask.open")


def _ensure_group(path: Path) -> None:
    import zarr

    zarr.open_group(str(path), mode="a")


# ----------------------------------------------------------------------------- writer


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
    overwrite
        Replace an existing store at ``path`` (only a connectome_dask store: any
        other directory is refused, naming the path).

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
        overwrite: bool = False,
    ) -> None:
        import contextlib

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
        self.chunk_rows = int(chunk_rows)
        self.bucket_rows = int(bucket_rows)
        self.presorted = presorted
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(writer_lock(self.path, StoreError))
        try:
            check_exists(self.path, "store", self.overwrite, StoreError)
            remove_leftovers(self.path)
            self.tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}")
            self.tmp.mkdir()
            write_marker(self.tmp, "store", target=self.path.name)
        except BaseException:
            self._lock.close()
            raise
        self._spill = self.tmp / "_spill"
        self._n_rows = 0
        self._last_key = -1
        self._pre_counts = np.zeros(self.n_neurons, dtype=np.int64)
        self._post_counts = np.zeros(self.n_neurons, dtype=np.int64)
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
        self._closed = False
        self._out: _ChunkedAppender | None = None
        self._pairs: _PairTable | None = None

    # -- appending
    def append(self, block: Mapping[str, np.ndarray]) -> None:
        """Add a block of synapse rows (a mapping of column name to 1-D array).

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
        self._n_rows += n
        if self.presorted:
            key = (pre.astype(np.int64) << 32) | post.astype(np.int64)
            if key[0] < self._last_key or np.any(np.diff(key) < 0):
                raise StoreError("presorted=True but rows are not sorted by (pre, post)")
            self._last_key = int(key[-1])
            self._appender().write(arrs)
            self._pair_table().write(arrs["pre"], arrs["post"])
            return
        bucket = np.searchsorted(self._bounds, pre, side="right") - 1
        order = np.argsort(bucket, kind="stable")
        bsorted = bucket[order]
        starts = np.searchsorted(bsorted, np.arange(len(self._bounds)))
        for b in range(len(self._bounds) - 1):
            s, e = starts[b], starts[b + 1]
            if s == e:
                continue
            sel = order[s:e]
            d = self._spill / f"b{b:06d}"
            d.mkdir(parents=True, exist_ok=True)
            k = self._pieces[b]
            for c, a in arrs.items():
                np.save(d / f"{k:06d}.{c}.npy", a[sel], allow_pickle=False)
            self._pieces[b] += 1

    # -- finishing
    def _pair_table(self) -> _PairTable:
        if self._pairs is None:
            self._pairs = _PairTable(self.tmp / "index.zarr" / "pairs", self.chunk_rows)
        return self._pairs

    def _appender(self) -> _ChunkedAppender:
        if self._out is None:
            self._out = _ChunkedAppender(self.tmp / "synapses.zarr", self.columns, self.chunk_rows)
        return self._out

    def _sorted_blocks(self) -> Iterable[dict[str, np.ndarray]]:
        if self.presorted:
            return
        for b in range(len(self._bounds) - 1):
            d = self._spill / f"b{b:06d}"
            if not d.exists():
                continue
            block = {
                c: np.concatenate(
                    [np.load(d / f"{k:06d}.{c}.npy", allow_pickle=False) for k in range(self._pieces[b])]
                )
                for c in self.columns
            }
            key = (block["pre"].astype(np.int64) << 32) | block["post"].astype(np.int64)
            order = np.argsort(key, kind="stable")
            shutil.rmtree(d)
            yield {c: a[order] for c, a in block.items()}

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
            conn = self._close(neurons, dict(meta or {}), skeletons, rois)
        except BaseException:
            rmtree_real(self.tmp)
            raise
        finally:
            self._closed = True
            self._lock.close()
        return conn

    def _close(self, neurons: pd.DataFrame, meta: dict, skeletons, rois) -> Connectome:
        neurons = _prepare_neurons(neurons, self.n_neurons)
        neurons["pre"] = self._pre_counts
        neurons["post"] = self._post_counts
        syn_dir = self.tmp / "synapses.zarr"
        out = self._appender()
        pairs = self._pair_table()
        for block in self._sorted_blocks():
            out.write(block)
            pairs.write(block["pre"], block["post"])
        n = out.finish()
        n_pairs = pairs.finish()
        assert n == self._n_rows, (n, self._n_rows)
        shutil.rmtree(self._spill, ignore_errors=True)
        by_post = _build_index(
            self.tmp, syn_dir, self._pre_counts, self._post_counts, n, self.chunk_rows,
            list(self.columns), bucket=max(self.bucket_rows, self.chunk_rows),
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
        full_meta = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
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
        write_meta(self.tmp, full_meta)
        check_exists(self.path, "store", self.overwrite, StoreError)
        replace_dir(self.tmp, self.path)
        return open(self.path, set_default=False)

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
            rmtree_real(self.tmp)
            self._closed = True
            self._lock.close()

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

    def write(self, pre: np.ndarray, post: np.ndarray) -> None:
        from ._agg_kernels import pair_runs

        if len(pre) == 0:
            return
        up, uq, cnt = pair_runs(pre, post, np.ones(len(pre), dtype=bool))
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


class _ChunkedAppender:
    """Append rows to 1-D Zarr arrays, writing only whole chunks (plus the final tail).

    Arrays start empty and grow with ``resize`` (a metadata-only change), so a
    stream of unknown length is written once, chunk-aligned, with at most one
    chunk per column buffered in memory.
    """

    def __init__(self, group_path: Path, columns: Mapping[str, str], chunk_rows: int):
        _ensure_group(group_path)
        self.columns = dict(columns)
        self.chunk_rows = int(chunk_rows)
        self.arrays = {c: _create_array(group_path, encode_name(c), 0, dt, self.chunk_rows)
                       for c, dt in self.columns.items()}
        self.buf: dict[str, list[np.ndarray]] = {c: [] for c in self.columns}
        self.buffered = 0
        self.offset = 0

    def _flush(self, rows: int) -> None:
        end = self.offset + rows
        for c, arr in self.arrays.items():
            a = np.concatenate(self.buf[c]) if len(self.buf[c]) > 1 else self.buf[c][0]
            arr.resize((end,))
            arr[self.offset : end] = a[:rows]
            self.buf[c] = [a[rows:]]
        self.offset = end
        self.buffered -= rows

    def write(self, block: Mapping[str, np.ndarray]) -> None:
        n = len(block["pre"])
        if n == 0:
            return
        for c in self.columns:
            self.buf[c].append(block[c])
        self.buffered += n
        if self.buffered >= self.chunk_rows:
            self._flush((self.buffered // self.chunk_rows) * self.chunk_rows)

    def finish(self) -> int:
        if self.buffered:
            self._flush(self.buffered)
        return self.offset


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
        if c not in neurons.columns:
            neurons[c] = pd.Series([None] * n_neurons, dtype="string")
        else:
            neurons[c] = neurons[c].astype("string")
    if "cropped" not in neurons.columns:
        neurons["cropped"] = pd.array([pd.NA] * n_neurons, dtype="boolean")
    else:
        neurons["cropped"] = neurons["cropped"].astype("boolean")
    first = ["bodyId", "index", "type", "instance", "status", "cropped"]
    return neurons[first + [c for c in neurons.columns if c not in first]]


def write_neuron_table(neurons: pd.DataFrame, path: Path) -> None:
    """Write neurons.parquet with Parquet page checksums (verified on every read)."""
    neurons.to_parquet(path, index=False, write_page_checksum=True)


def read_neuron_table(path: Path) -> pd.DataFrame:
    """Read neurons.parquet, verifying its Parquet page checksums; errors are StoreErrors."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, page_checksum_verification=True).to_pandas()
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid / ArrowIOError derive from these
        raise StoreError(f"{path}: cannot read the neuron table ({type(e).__name__}: {e})") from None


def folder_digests(root: Path, rel: str) -> dict[str, str]:
    """SHA-256 of every regular file under ``root/rel`` except Zarr arrays (they carry CRC32C)."""
    out = {}
    base = Path(root) / rel
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.endswith(".zarr"))
        for f in sorted(filenames):
            if f == MARKER:
                continue
            p = Path(dirpath) / f
            if not p.is_symlink():
                out[p.relative_to(root).as_posix()] = file_digest(p)
    return out


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
    columns: Sequence[str], bucket: int = 1 << 25,
) -> dict[str, str]:
    """Write index.zarr: pre_offsets, post_offsets, post_perm and by_post copies.

    Rows are sorted by pre, so ``pre_offsets`` is a cumulative sum.
    ``post_perm`` lists row ids ordered by (post, row), and ``by_post/<col>``
    holds the :data:`BY_POST_COLUMNS` present in that order. Returns the
    by_post mapping for meta.json.
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
    _post_order(syn_dir / "post", src, dst, post_off, n, chunk_rows, bucket, with_row=True)
    return {c: f"by_post/{encode_name(c)}" for c in cols}


def _post_order(
    post_path: Path,
    src: Mapping[str, Path],
    dst: Mapping[str, Path],
    post_off: np.ndarray,
    n: int,
    chunk_rows: int,
    bucket: int,
    with_row: bool = False,
) -> None:
    """Copy columns from row order to (post, row) order: an external bucket sort.

    One pass over the table splits every chunk's rows by post-index range into
    spill files (rows stay in increasing order inside a range); each range,
    at most ``bucket`` rows, is then put in post order by a stable counting
    sort and written to its slice of the output (ranges are consecutive in
    post order). With ``with_row`` the row ids themselves go to ``dst["row"]``.
    Memory: one range plus one chunk per column.
    """
    import zarr

    dtypes = {c: zarr.open_array(str(p), mode="r").dtype for c, p in src.items()}
    if with_row:
        dtypes["row"] = np.dtype("int64")
    outs = {c: _create_array(Path(dst[c]).parent, Path(dst[c]).name, n, str(dt), chunk_rows)
            for c, dt in dtypes.items()}
    if n == 0:
        return
    nn = len(post_off) - 1
    # post-index ranges holding at most ``bucket`` rows (at least one neuron each)
    bounds = [0]
    while bounds[-1] < nn:
        lo = bounds[-1]
        hi = int(np.searchsorted(post_off, post_off[lo] + bucket, side="right")) - 1
        bounds.append(min(max(hi, lo + 1), nn))
    bounds_a = np.asarray(bounds, dtype=np.int64)
    post_arr = zarr.open_array(str(post_path), mode="r")
    arrays = {c: zarr.open_array(str(p), mode="r") for c, p in src.items()}
    single = len(bounds) == 2
    spill = Path(dst[next(iter(dst))]).parent.parent / f"_spill-{uuid.uuid4().hex[:6]}"
    spill_bytes = n * (sum(dt.itemsize for dt in dtypes.values()) + 4)
    if not single and shutil.disk_usage(spill.parent).free < 2 * spill_bytes:
        # not enough disk for the spill files: re-read the table once per range
        # instead, with 4x larger ranges (each range costs a full read)
        big = [0]
        while big[-1] < nn:
            lo = big[-1]
            hi = int(np.searchsorted(post_off, post_off[lo] + 4 * bucket, side="right")) - 1
            big.append(min(max(hi, lo + 1), nn))
        _post_order_rereading(post_arr, arrays, outs, big, post_off, n, chunk_rows, with_row)
        return
    pieces: dict[int, int] = {}
    held: dict[str, list[np.ndarray]] = {c: [] for c in [*dtypes, "_post"]}
    if not single:
        spill.mkdir()
        write_marker(spill, "spill")
    try:
        for s in range(0, n, chunk_rows):
            e = min(s + chunk_rows, n)
            block = {c: a[s:e] for c, a in arrays.items()}
            block["_post"] = post_arr[s:e]
            if with_row:
                block["row"] = np.arange(s, e, dtype=np.int64)
            if single:
                for c in held:
                    held[c].append(block[c])
                continue
            b = np.searchsorted(bounds_a, block["_post"], side="right") - 1
            order = np.argsort(b, kind="stable")
            starts = np.searchsorted(b[order], np.arange(len(bounds_a)))
            for k in range(len(bounds) - 1):
                lo_, hi_ = starts[k], starts[k + 1]
                if lo_ == hi_:
                    continue
                sel = order[lo_:hi_]
                d = spill / f"b{k:06d}"
                d.mkdir(parents=True, exist_ok=True)
                j = pieces.get(k, 0)
                for c, a in block.items():
                    np.save(d / f"{j:06d}.{c}.npy", a[sel], allow_pickle=False)
                pieces[k] = j + 1
        for k in range(len(bounds) - 1):
            lo, hi = bounds[k], bounds[k + 1]
            if single:
                part = {c: np.concatenate(v) for c, v in held.items()}
                held = {}
            else:
                d = spill / f"b{k:06d}"
                if not d.exists():
                    continue
                part = {
                    c: np.concatenate([np.load(d / f"{j:06d}.{c}.npy", allow_pickle=False)
                                       for j in range(pieces[k])])
                    for c in [*dtypes, "_post"]
                }
                shutil.rmtree(d)
            base = int(post_off[lo])
            size = int(post_off[hi]) - base
            cursor = post_off[lo:hi].copy() - base
            perm = np.empty(size, dtype=np.int64)
            _scatter_rows(part["_post"] - lo, np.arange(size, dtype=np.int64), cursor, perm)
            for c in dtypes:
                outs[c][base : base + size] = part[c][perm]
    finally:
        rmtree_real(spill)


def _post_order_rereading(post_arr, arrays, outs, bounds, post_off, n, chunk_rows, with_row) -> None:
    """:func:`_post_order` without spill files: one read of the table per post range.

    Slower for many ranges (each range re-reads ``post`` and the columns) but
    needs no disk beyond the output; chosen when the spill would not fit.
    """
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        base = int(post_off[lo])
        size = int(post_off[hi]) - base
        cursor = post_off[lo:hi].copy() - base
        pos = np.empty(size, dtype=np.int64)  # output position of each selected row, in row order
        sel_rows = []
        got = 0
        for s in range(0, n, chunk_rows):
            e = min(s + chunk_rows, n)
            p = post_arr[s:e]
            sel = np.flatnonzero((p >= lo) & (p < hi))
            if len(sel) == 0:
                continue
            _scatter_rows(p[sel] - lo, np.arange(got, got + len(sel), dtype=np.int64), cursor, pos)
            sel_rows.append((s, e, sel))
            got += len(sel)
        # pos[j] = selected-row index that goes to output slot j; gather each column in turn
        for c, out in outs.items():
            vals = np.empty(size, dtype=out.dtype)
            off = 0
            for s, e, sel in sel_rows:
                block = np.arange(s, e, dtype=np.int64)[sel] if c == "row" and with_row else arrays[c][s:e][sel]
                vals[off : off + len(sel)] = block
                off += len(sel)
            out[base : base + size] = vals[pos]


def _scatter_rows(keys: np.ndarray, rows: np.ndarray, cursor: np.ndarray, out: np.ndarray) -> None:
    """Stable counting-sort scatter: out[cursor[k]++] = row, for rows in increasing order."""
    from ._kernels import scatter_rows

    # the kernel does no bounds checks: validate here (cheap next to the scatter)
    if len(keys) and (keys.min() < 0 or keys.max() >= len(cursor) or len(keys) > len(out)):
        raise StoreError("internal error: post index outside the range being sorted")
    scatter_rows(keys.astype(np.int64), rows.astype(np.int64), cursor, out)


# ----------------------------------------------------------------------------- reading


_default: Connectome | None = None


def default_connectome() -> Connectome:
    """Return the connectome opened last (neuprint's ``default_client``).

    Examples
    --------
    >>> default_connectome() is conn  # the doctests open their example store
    True
    """
    if _default is None:
        raise StoreError("no connectome is open: call connectome_dask.open(path) first")
    return _default


def set_default_connectome(conn: Connectome | None) -> None:
    """Make ``conn`` the default used by query functions when ``client=None``.

    Examples
    --------
    >>> set_default_connectome(None)
    >>> default_connectome()
    Traceback (most recent call last):
    ...
    connectome_dask.errors.StoreError: no connectome is open: call connectome_dask.open(path) first
    >>> set_default_connectome(conn)
    """
    global _default
    _default = conn


def open(path: str | os.PathLike, *, set_default: bool = True) -> Connectome:  # noqa: A001
    """Open a connectome store and (by default) make it the default for queries.

    Parameters
    ----------
    path
        Store directory, as written by :func:`connectome_dask.ingest` or
        :func:`connectome_dask.datasets.synthetic`.
    set_default
        Make it the default connectome (like neuprint's default client).

    Returns
    -------
    Connectome

    Examples
    --------
    >>> import connectome_dask as cd
    >>> _ = cd.datasets.synthetic(tmp_path / "s", n_neurons=50, n_synapses=2_000, progress=False)
    >>> small = cd.open(tmp_path / "s", set_default=False)
    >>> small.n_neurons, small.n_synapses
    (50, 2000)
    >>> cd.open(tmp_path / "s") is cd.default_connectome()  # set_default=True
    True
    """
    conn = Connectome(path)
    if set_default:
        set_default_connectome(conn)
    return conn


def _read_meta(path: Path) -> dict:
    """Read and validate meta.json; every malformed input is a StoreError naming the file and key."""
    mp = path / "meta.json"
    if not path.is_dir():
        raise StoreError(f"{path} is not a connectome store directory")
    if mp.is_symlink():
        raise StoreError(f"{mp} is a symlink; a store's meta.json must be a regular file")
    if not mp.exists():
        raise StoreError(f"{mp} is missing: not a connectome store (or an interrupted write)")
    try:
        raw = mp.read_bytes()
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise StoreError(f"{mp} is not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    except OSError as e:
        raise StoreError(f"{mp} cannot be read: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise StoreError(f"{mp}: 'format' is not {FORMAT_NAME!r}")
    sv = meta.get("schema_version")
    if not isinstance(sv, int) or isinstance(sv, bool):
        raise StoreError(f"{mp}: 'schema_version' missing or not an integer")
    if sv > SCHEMA_VERSION:
        raise StoreError(
            f"{mp}: schema_version {sv} is newer than this connectome_dask understands "
            f"({SCHEMA_VERSION}); upgrade connectome_dask"
        )
    if "checksum" in meta and meta["checksum"] != _meta_digest(meta):
        raise StoreError(f"{mp}: content does not match its checksum (the file was damaged or edited)")
    for key in ("synapses", "n_neurons", "n_synapses", "neurons", "index"):
        if key not in meta:
            raise StoreError(f"{mp}: required key {key!r} missing")

    def bad(key: str, want: str, value: Any = None) -> StoreError:
        v = meta_get(key) if value is None else value
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        text = text if len(text) <= 400 else text[:400] + "..."
        return StoreError(f"{mp}: {key!r} must be {want}, got {text!r}")

    def check_rel(key: str, v: Any) -> None:
        """A relative path made of components the package writes (no '..', never absolute)."""
        parts = v.split("/") if isinstance(v, str) else []
        if not parts or any(not p for p in parts):
            raise bad(key, "a relative path inside the store", v)
        for part in parts:
            check_component(part, f"{key} {v!r}: component", mp, error=StoreError)

    def meta_get(key: str) -> Any:
        d: Any = meta
        for k in key.split("."):
            d = d.get(k) if isinstance(d, dict) else None
        return d

    for key in ("n_neurons", "n_synapses", "generation"):
        v = meta_get(key)
        if key == "generation" and v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise bad(key, "a non-negative integer")
    syn, idx = meta["synapses"], meta["index"]
    if not isinstance(syn, dict) or not isinstance(syn.get("columns"), dict) or not syn["columns"]:
        raise bad("synapses.columns", "a mapping of column name to array directory")
    cr = syn.get("chunk_rows")
    if not isinstance(cr, int) or isinstance(cr, bool) or cr < 1:
        raise bad("synapses.chunk_rows", "a positive integer")
    if not isinstance(idx, dict):
        raise bad("index", "a mapping")
    for key in ("synapses.path", "index.path", "neurons"):
        v = meta_get(key)
        if not isinstance(v, str):
            raise bad(key, "a relative path")
        check_component(v, key, mp, error=StoreError)
    for col, rel in syn["columns"].items():
        safe_name(col, f"{mp}: synapse column")
        check_component(rel, f"array directory of column {col!r}", mp, error=StoreError)
    for c in ("pre", "post"):
        if c not in syn["columns"]:
            raise StoreError(f"{mp}: synapse column {c!r} missing")
    bp = idx.get("by_post") or {}
    if not isinstance(bp, dict):
        raise bad("index.by_post", "a mapping")
    for col, rel in bp.items():
        parts = rel.split("/") if isinstance(rel, str) else []
        if len(parts) != 2 or parts[0] != "by_post":
            raise bad(f"index.by_post.{col}", "'by_post/<array>'")
        check_component(parts[1], f"index.by_post.{col} {rel!r}: component", mp, error=StoreError)
    if idx.get("pairs") is not None:
        if not isinstance(idx["pairs"], str):
            raise bad("index.pairs", "a name")
        check_component(idx["pairs"], "index.pairs", mp, error=StoreError)
        np_ = idx.get("n_pairs")
        if not isinstance(np_, int) or isinstance(np_, bool) or np_ < 0:
            raise bad("index.n_pairs", "a non-negative integer")
    for key in ("rois", "skeletons"):
        v = meta.get(key)
        if v is None:
            continue
        check_rel(key, v)
    retained = meta.get("retained", [])
    if not isinstance(retained, list) or not all(isinstance(x, str) for x in retained):
        raise bad("retained", "a list of relative paths")
    for i, x in enumerate(retained):
        check_rel(f"retained[{i}]", x)
    return meta


def _meta_token(meta: Mapping[str, Any]) -> str:
    """The store identity and generation, as used in every cache key."""
    ident = meta.get("uuid") or meta.get("checksum") or _meta_digest(meta)
    return f"{ident}:{int(meta.get('generation', 0))}"


class Connectome:
    """A connectome store opened for analysis (the local counterpart of neuprint's ``Client``).

    Attributes
    ----------
    path : Path
    meta : dict
        Contents of meta.json.
    neurons : pandas.DataFrame
        One row per body, row ``i`` has ``index == i``.
    synapses : dask.dataframe.DataFrame
        One partition per range of whole chunks; reads only the columns used.

    Examples
    --------
    >>> c = Connectome(conn.path)  # or connectome_dask.open(path)
    >>> c
    <Connectome 'store' v1.0: 400 neurons, 30,000 synapses, rois=yes at ...>
    >>> c.n_neurons, c.n_synapses, c.roi_names[:2]
    (400, 30000, ['AL_L', 'AL_R'])
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.meta = _read_meta(self.path)
        #: store identity and generation: part of every cache key (client and workers)
        self.token = _meta_token(self.meta)
        self._neurons: pd.DataFrame | None = None
        self._body_index: pd.Index | None = None
        self._rois_info: dict | None = None

    # -- basic facts
    def __repr__(self) -> str:
        m = self.meta
        return (
            f"<Connectome {m.get('name')!r} v{m.get('version')}: {m['n_neurons']:,} neurons, "
            f"{m['n_synapses']:,} synapses, rois={'yes' if m.get('rois') else 'no'} at {self.path}>"
        )

    @property
    def n_neurons(self) -> int:
        """Number of bodies (rows of :attr:`neurons`).

        Examples
        --------
        >>> conn.n_neurons == len(conn.neurons)
        True
        """
        return int(self.meta["n_neurons"])

    @property
    def n_synapses(self) -> int:
        """Number of synapse rows (one row per synaptic connection).

        Examples
        --------
        >>> conn.n_synapses
        30000
        """
        return int(self.meta["n_synapses"])

    @property
    def generation(self) -> int:
        """Commit counter of the store: bumped by every :meth:`write_synapse_columns`.

        Examples
        --------
        >>> conn.generation >= 1  # 0 when written, +1 for assign_rois
        True
        """
        return int(self.meta.get("generation", 0))

    @property
    def chunk_rows(self) -> int:
        """Zarr chunk length (rows) of every synapse array.

        Examples
        --------
        >>> conn.chunk_rows > 0
        True
        """
        return int(self.meta["synapses"]["chunk_rows"])

    @property
    def synapse_columns(self) -> list[str]:
        """Names of the synapse columns, ``pre`` and ``post`` first.

        Examples
        --------
        >>> conn.synapse_columns[:2], {"confidence", "roi_pre", "roi_post"} <= set(conn.synapse_columns)
        (['pre', 'post'], True)
        """
        return list(self.meta["synapses"]["columns"])

    @property
    def positions(self) -> tuple[str, ...]:
        """Position columns present: ``x_pre..z_post``, ``x, y, z`` or empty.

        Examples
        --------
        >>> conn.positions
        ('x_pre', 'y_pre', 'z_pre', 'x_post', 'y_post', 'z_post')
        """
        cols = set(self.synapse_columns)
        if set(POSITION_COLUMNS_PAIR) <= cols:
            return POSITION_COLUMNS_PAIR
        if set(POSITION_COLUMNS_CENTER) <= cols:
            return POSITION_COLUMNS_CENTER
        return ()

    def site_columns(self, site: str) -> tuple[str, str, str]:
        """Position columns of a synapse site (``"pre"`` or ``"post"``); centre columns if single.

        Examples
        --------
        >>> conn.site_columns("post")
        ('x_post', 'y_post', 'z_post')
        """
        if site not in ("pre", "post"):
            raise ValueError(f"site must be 'pre' or 'post', got {site!r}")
        pos = self.positions
        if pos == POSITION_COLUMNS_PAIR:
            return (f"x_{site}", f"y_{site}", f"z_{site}")
        if pos == POSITION_COLUMNS_CENTER:
            return POSITION_COLUMNS_CENTER
        raise StoreError(f"{self.path}: the store has no synapse positions")

    def _array_path(self, column: str) -> Path:
        cols = self.meta["synapses"]["columns"]
        if column not in cols:
            raise KeyError(
                f"synapse column {column!r} not in store {self.path}; available: {sorted(cols)}"
            )
        return _inside(self.path, f"{self.meta['synapses']['path']}/{cols[column]}")

    def _array(self, column: str):
        return _open_array_cached(str(self._array_path(column)), self.token)

    def _index_path(self, name: str) -> Path:
        return _inside(self.path, f"{self.meta['index']['path']}/{name}")

    def _index_array(self, name: str):
        return _open_array_cached(str(self._index_path(name)), self.token)

    def _read_index(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """An index array, whole or at ``rows``, with the missing-chunk check."""
        arr = self._index_array(name)
        p = str(self._index_path(name))
        if rows is None:
            return _read_range(p, self.token, 0, arr.shape[0])
        return take_rows(arr, p, rows, self.token)

    # -- neurons
    @property
    def neurons(self) -> pd.DataFrame:
        """The neuron table (``neurons.parquet``), loaded once; row ``i`` has ``index == i``.

        Examples
        --------
        >>> conn.neurons.columns.tolist()[:6]
        ['bodyId', 'index', 'type', 'instance', 'status', 'cropped']
        >>> bool((conn.neurons['index'] == np.arange(conn.n_neurons)).all())
        True
        """
        if self._neurons is None:
            p = _inside(self.path, self.meta["neurons"])
            df = read_neuron_table(p)
            if len(df) != self.n_neurons:
                raise StoreError(f"{p}: {len(df)} rows but meta.json says {self.n_neurons}")
            self._neurons = df
        return self._neurons

    @property
    def body_ids(self) -> np.ndarray:
        """Body IDs (int64) in dense-index order.

        Examples
        --------
        >>> conn.body_ids.dtype, int(conn.body_ids[0]) == some_body
        (dtype('int64'), True)
        """
        return self.neurons["bodyId"].to_numpy()

    def body_to_index(self, body_ids: Iterable[int] | np.ndarray, *, missing: str = "raise") -> np.ndarray:
        """Map body IDs to dense int32 indices.

        Parameters
        ----------
        missing
            ``"raise"`` (KeyError naming examples), or ``"drop"``.

        Examples
        --------
        >>> conn.body_to_index([some_body, int(conn.body_ids[5])])
        array([0, 5], dtype=int32)
        >>> conn.body_to_index([1, some_body], missing="drop")
        array([0], dtype=int32)
        >>> conn.body_to_index([1])
        Traceback (most recent call last):
        ...
        KeyError: '1 body IDs are not in ... (e.g. [1])'
        """
        if self._body_index is None:
            self._body_index = pd.Index(self.body_ids)
        ids = np.asarray(list(body_ids) if not isinstance(body_ids, np.ndarray) else body_ids)
        if ids.size == 0:
            return np.zeros(0, dtype=np.int32)
        pos = self._body_index.get_indexer(ids.astype(np.int64))
        bad = pos < 0
        if bad.any():
            if missing == "drop":
                pos = pos[~bad]
            else:
                raise KeyError(
                    f"{int(bad.sum())} body IDs are not in {self.path} (e.g. {ids[bad][:5].tolist()})"
                )
        return pos.astype(np.int32)

    # -- partitions and reads
    def partitions(self, partition_rows: int | None = None, *, align_pre: bool = False) -> list[tuple[int, int]]:
        """Row ranges of the dask partitions.

        By default whole multiples of the chunk length (required for tasks
        that write). With ``align_pre=True`` (read-only tasks) each boundary
        moves forward to the next presynaptic-neuron start, so no neuron's
        outputs (and no (pre, post) pair) are split between partitions.

        Examples
        --------
        >>> parts = conn.partitions()
        >>> parts[0][0], parts[-1][1] == conn.n_synapses
        (0, True)

        On a tiny store with 2-row chunks (rows' pre = 0, 0, 0, 1, 2):

        >>> tiny = write_store(tmp_path / "tiny", pd.DataFrame({"bodyId": [10, 20, 30]}),
        ...                    pd.DataFrame({"pre": [0, 0, 0, 1, 2], "post": [1, 1, 2, 0, 1]}), chunk_rows=2)
        >>> tiny.partitions(2), tiny.partitions(2, align_pre=True)
        ([(0, 2), (2, 4), (4, 5)], [(0, 3), (3, 4), (4, 5)])
        """
        import dask

        c = self.chunk_rows
        if partition_rows is None:
            k = int(dask.config.get("connectome_dask.partition_chunks", DEFAULT_PARTITION_CHUNKS))
            partition_rows = c * max(1, k)
        per = max(1, -(-int(partition_rows) // c)) * c
        n = self.n_synapses
        bounds = list(range(0, n, per)) + [n]
        if align_pre and len(bounds) > 2:
            off = self._read_index("pre_offsets")
            inner = np.asarray(bounds[1:-1], dtype=np.int64)
            # the neuron each boundary row belongs to; move to its end unless it starts there
            i = np.searchsorted(off, inner, side="right") - 1
            inner = np.where(off[i] == inner, inner, off[np.minimum(i + 1, len(off) - 1)])
            bounds = sorted({0, n, *inner.tolist()})
        return [(s, e) for s, e in zip(bounds[:-1], bounds[1:], strict=True)] or [(0, 0)]

    def read_synapses(
        self, columns: Sequence[str], start: int = 0, stop: int | None = None
    ) -> dict[str, np.ndarray]:
        """Read a row range of synapse columns as numpy arrays.

        Examples
        --------
        >>> block = conn.read_synapses(["pre", "post"], 0, 5)
        >>> sorted(block), str(block["pre"].dtype), len(block["post"])
        (['post', 'pre'], 'int32', 5)
        """
        stop = self.n_synapses if stop is None else stop
        return {c: _read_range(str(self._array_path(c)), self.token, start, stop) for c in columns}

    def take_synapses(self, rows: np.ndarray, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Read arbitrary rows (sorted ascending is fastest) of synapse columns.

        Examples
        --------
        >>> d = conn.take_synapses(np.array([0, 10, 20]), ["pre", "confidence"])
        >>> str(d["confidence"].dtype), len(d["pre"])
        ('float32', 3)
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = {}
        for c in columns:
            arr = self._array(c)
            if len(rows) == 0:
                out[c] = np.zeros(0, dtype=arr.dtype)
                continue
            # zarr orthogonal indexing with integer arrays decodes each touched chunk once
            out[c] = take_rows(arr, str(self._array_path(c)), rows, self.token)
        return out

    def synapse_rows(self, indices: Iterable[int] | np.ndarray, side: str = "pre") -> np.ndarray:
        """Row ids of all synapses whose ``side`` ("pre" or "post") is one of ``indices``.

        Uses the index: pre rows are contiguous slices, post rows come from
        ``post_perm``. Result is sorted ascending.

        Examples
        --------
        >>> out_rows = conn.synapse_rows([0], side="pre")  # one contiguous slice
        >>> len(out_rows) == int(conn.neurons.pre.iloc[0]), bool((np.diff(out_rows) == 1).all())
        (True, True)
        >>> len(conn.synapse_rows([0], side="post")) == int(conn.neurons.post.iloc[0])
        True
        """
        idx = np.unique(np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64))
        if idx.size == 0:
            return np.zeros(0, dtype=np.int64)
        if side == "pre":
            off = self._read_index("pre_offsets", np.concatenate([idx, idx + 1]))
            starts, stops = off[: len(idx)], off[len(idx) :]
            return _ranges_to_rows(starts, stops)
        if side == "post":
            off = self._read_index("post_offsets", np.concatenate([idx, idx + 1]))
            starts, stops = off[: len(idx)], off[len(idx) :]
            pos = _ranges_to_rows(starts, stops)
            if len(pos) == 0:
                return pos
            return np.sort(self._read_index("post_perm", pos))
        raise ValueError(f"side must be 'pre' or 'post', got {side!r}")

    def _by_post_path(self, column: str) -> Path | None:
        rel = (self.meta["index"].get("by_post") or {}).get(column)
        if rel is None:
            return None
        return _inside(self.path, f"{self.meta['index']['path']}/{rel}")

    def _by_post_array(self, column: str):
        p = self._by_post_path(column)
        return None if p is None else _open_array_cached(str(p), self.token)

    @property
    def has_pair_table(self) -> bool:
        """Whether the store keeps the connection table (``index.zarr/pairs``)."""
        return bool(self.meta["index"].get("pairs"))

    def read_pairs(self, columns: Sequence[str] = ("pre", "post", "weight"), start: int = 0,
                   stop: int | None = None) -> dict[str, np.ndarray]:
        """Rows of the connection table: one per connected (pre, post) pair, sorted.

        ``weight`` is the number of synapse rows of the pair (no filters).
        """
        rel = self.meta["index"].get("pairs")
        if not rel:
            raise StoreError(f"{self.path} has no connection table (written by an older version)")
        root = _inside(self.path, f"{self.meta['index']['path']}/{rel}")
        stop = int(self.meta["index"]["n_pairs"]) if stop is None else stop
        for c in columns:
            if c not in ("pre", "post", "weight"):
                raise KeyError(f"the connection table has columns pre, post, weight, not {c!r}")
        return {c: _read_range(str(root / c), self.token, start, stop) for c in columns}

    def pair_table_paths(self) -> dict[str, str]:
        """Paths of the connection table's arrays (``pre``, ``post``, ``weight``), for tasks.

        Read them with :func:`read_rows` and :attr:`token`, so a task reads this
        generation's arrays and never a newer or replaced store's.

        Examples
        --------
        >>> sorted(conn.pair_table_paths())
        ['post', 'pre', 'weight']
        """
        rel = self.meta["index"].get("pairs")
        if not rel:
            raise StoreError(f"{self.path} has no connection table (written by an older version)")
        root = _inside(self.path, f"{self.meta['index']['path']}/{rel}")
        return {c: str(root / c) for c in ("pre", "post", "weight")}

    def synapses_of(
        self, indices: Iterable[int] | np.ndarray, side: str, columns: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """All synapse rows whose ``side`` neuron is one of ``indices``, without a scan.

        Outputs (``side="pre"``) are contiguous row ranges; inputs
        (``side="post"``) are contiguous ranges of the post-ordered copies in
        ``index.zarr/by_post`` (columns missing there are read by row id).

        Returns
        -------
        dict
            ``"row"`` (global row ids, ascending) and each requested column,
            in the same order as ``take_synapses(synapse_rows(...))``.

        Examples
        --------
        >>> inputs = conn.synapses_of([0], side="post", columns=["pre", "post"])
        >>> sorted(inputs), set(inputs["post"].tolist()) == {0}
        (['post', 'pre', 'row'], True)
        >>> bool((inputs["row"] == conn.synapse_rows([0], side="post")).all())
        True
        """
        idx = np.unique(np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64))
        if side == "pre" or idx.size == 0:
            rows = self.synapse_rows(idx, side)
            return {"row": rows, **self.take_synapses(rows, columns)}
        if side != "post":
            raise ValueError(f"side must be 'pre' or 'post', got {side!r}")
        off = self._read_index("post_offsets", np.concatenate([idx, idx + 1]))
        starts, stops = off[: len(idx)], off[len(idx) :]
        pos = _ranges_to_rows(starts, stops)
        out: dict[str, np.ndarray] = {}
        rows = self._read_index("post_perm", pos) if len(pos) else np.zeros(0, np.int64)
        order = np.argsort(rows, kind="stable")
        out["row"] = rows[order]
        missing = []
        for c in columns:
            if c == "post":
                out[c] = np.repeat(idx.astype(np.int32), (stops - starts).astype(np.int64))[order]
                continue
            arr = self._by_post_array(c)
            if arr is None:
                missing.append(c)
            elif len(pos):
                out[c] = take_rows(arr, str(self._by_post_path(c)), pos, self.token)[order]
            else:
                out[c] = np.zeros(0, dtype=arr.dtype)
        if missing:
            out.update(self.take_synapses(out["row"], missing))
        return {k: out[k] for k in ["row", *columns]}

    @property
    def synapses(self):
        """All synapses as a dask DataFrame (index = global row id).

        Examples
        --------
        >>> ddf = conn.synapses
        >>> ddf.columns.tolist()[:4], len(ddf) == conn.n_synapses
        (['pre', 'post', 'x_pre', 'y_pre'], True)
        """
        return self.synapse_frame()

    def synapse_frame(self, columns: Sequence[str] | None = None, partition_rows: int | None = None):
        """Dask DataFrame over the synapse arrays, one partition per chunk range.

        Examples
        --------
        >>> ddf = conn.synapse_frame(["pre", "confidence"])
        >>> ddf.columns.tolist(), ddf.npartitions == len(conn.partitions())
        (['pre', 'confidence'], True)
        """
        import dask.dataframe as dd

        cols = list(columns) if columns is not None else self.synapse_columns
        for c in cols:
            self._array_path(c)
        parts = self.partitions(partition_rows)
        paths = {c: str(self._array_path(c)) for c in self.synapse_columns}
        meta = pd.DataFrame({c: np.zeros(0, dtype=self._array(c).dtype) for c in cols})
        divisions = [p[0] for p in parts] + [max(parts[-1][1] - 1, 0)]
        return dd.from_map(
            _read_synapse_block,
            parts,
            paths=paths,
            gen=self.token,
            columns=cols,
            meta=meta,
            divisions=divisions,
            enforce_metadata=False,
            label="read-synapses",
        )

    def map_partitions(
        self,
        func: Callable[..., Any],
        columns: Sequence[str],
        *args: Any,
        partition_rows: int | None = None,
        align_pre: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> list:
        """Build one delayed task per partition: ``func(block, start, *args, **kwargs)``.

        ``block`` is a dict of numpy arrays read inside the task (nothing large
        is embedded in the graph). Large ``args`` should be delayed objects or
        scattered futures so they appear once in the graph.

        Examples
        --------
        >>> import dask
        >>> def n_strong(block, start, threshold):
        ...     return int((block["confidence"] > threshold).sum())
        >>> tasks = conn.map_partitions(n_strong, ["confidence"], 0.9)
        >>> len(tasks) == len(conn.partitions()), 0 < sum(dask.compute(*tasks)) < conn.n_synapses
        (True, True)
        """
        from dask.base import tokenize
        from dask.delayed import delayed

        paths = {c: str(self._array_path(c)) for c in columns}
        gen = self.token
        fname = name or getattr(func, "__name__", "map")
        tok = tokenize(str(self.path), gen, fname, columns, args, kwargs)
        out = []
        for i, (s, e) in enumerate(self.partitions(partition_rows, align_pre=align_pre)):
            out.append(
                delayed(_run_block, pure=True)(
                    func, paths, gen, s, e, args, kwargs, dask_key_name=f"{fname}-{tok}-{i}"
                )
            )
        return out

    # -- analyses (thin delegations to the layers above the store)
    def adjacency(self, pre=None, post=None, by: str = "bodyId", rois=None, min_weight: int = 1, **kwargs):
        """Synapse-count matrix as a labelled xarray.DataArray; see :func:`connectome_dask.aggregate.adjacency`.

        Examples
        --------
        >>> A = conn.adjacency(by="type", rois=["MB_CA_R"])
        >>> A.dims, A.sel(pre="KCg-m", post="KCg-m").item() > 0
        (('pre', 'post'), True)
        """
        from .aggregate import adjacency

        return adjacency(self, pre, post, by=by, rois=rois, min_weight=min_weight, **kwargs)

    def assign_rois(self, roiset, sites: Sequence[str] = ("pre", "post"), **kwargs) -> Connectome:
        """Label synapse sites with ROI codes; see :func:`connectome_dask.rois.assign_rois`.

        Examples
        --------
        >>> import shutil
        >>> from connectome_dask.rois import RoiSet
        >>> copy = open(shutil.copytree(conn.path, tmp_path / "copy"), set_default=False)
        >>> copy.assign_rois(RoiSet.from_store(copy), exact=False).roi_names == conn.roi_names
        True
        """
        from .rois import assign_rois

        return assign_rois(self, roiset, sites=sites, **kwargs)

    # -- ROIs
    @property
    def rois_path(self) -> Path | None:
        """Folder of the current ROI set (``rois/<tag>``), or None before :meth:`assign_rois`.

        Examples
        --------
        >>> {"grid.zarr", "meshes", "rois.json"} <= {p.name for p in conn.rois_path.iterdir()}
        True
        """
        rel = self.meta.get("rois")
        return _inside(self.path, rel) if rel else None

    @property
    def roi_info(self) -> dict | None:
        """Contents of the current ``rois.json`` (``names``, ``primary``, ``hierarchy``...) or None.

        Examples
        --------
        >>> sorted(conn.roi_info["hierarchy"]["CX"])
        ['EB', 'FB', 'NO', 'PB']
        """
        if self._rois_info is None and self.rois_path is not None:
            p = _inside(self.path, f"{self.meta['rois']}/rois.json")
            try:
                info = json.loads(p.read_bytes().decode("utf-8"))
            except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
                raise StoreError(f"{p}: cannot read the ROI set ({type(e).__name__}: {str(e)[:200]})") from None
            if not isinstance(info, dict) or not isinstance(info.get("names", []), list):
                raise StoreError(f"{p}: 'names' must be a list of ROI names")
            for n in info.get("names", []):
                safe_name(n, f"{p}: ROI name")
            # the files rois.json names (meshes, label grid) follow meta.json's rule:
            # inside the store and never through a symlink (malformed entries are
            # refused, with the entry named, by RoiSet.from_store and assign_rois)
            rels = list((info.get("meshes") or {}).values()) if isinstance(info.get("meshes"), dict) else []
            grid = info.get("grid")
            if isinstance(grid, dict):
                rels.append(grid.get("path"))
            for rel in rels:
                if isinstance(rel, str) and rel and not os.path.isabs(rel) and ".." not in rel.split("/"):
                    no_symlinks(self.path, f"{self.meta['rois']}/{rel}", p, error=StoreError)
            self._rois_info = info
        return self._rois_info

    @property
    def roi_names(self) -> list[str]:
        """ROI names in code order (``roi_pre``/``roi_post`` hold indices into this list).

        Examples
        --------
        >>> conn.roi_names[:3]
        ['AL_L', 'AL_R', 'AVLP_L']
        """
        info = self.roi_info
        return list(info["names"]) if info else []

    @property
    def skeleton_dir(self) -> Path | None:
        """Folder of ``<bodyId>.swc`` skeletons, or None.

        Examples
        --------
        >>> (conn.skeleton_dir / f"{skeleton_body}.swc").exists()
        True
        """
        rel = self.meta.get("skeletons")
        return _inside(self.path, rel) if rel else None

    def skeleton_file(self, body_id: int) -> Path | None:
        """The stored SWC file of one body (a regular file inside the store), or None.

        Examples
        --------
        >>> conn.skeleton_file(skeleton_body).name == f"{skeleton_body}.swc"
        True
        """
        rel = self.meta.get("skeletons")
        if not rel:
            return None
        name = f"{int(body_id)}.swc"
        p = self.path / rel / name
        if not p.exists() and not p.is_symlink():
            return None
        p = _inside(self.path, f"{rel}/{name}")
        if not p.is_file():
            raise StoreError(f"{p} is not a regular file")
        return p

    # -- writes
    def _check_current(self, when: str) -> dict:
        """Raise StoreError unless meta.json still holds the generation this object opened."""
        cur = _read_meta(self.path)
        same = (cur.get("uuid"), cur.get("generation", 0), cur.get("checksum")) == (
            self.meta.get("uuid"), self.meta.get("generation", 0), self.meta.get("checksum"))
        if not same or (cur.get("checksum") is None and cur != self.meta):
            raise StoreError(
                f"{self.path} changed since it was opened (generation {self.generation} -> "
                f"{cur.get('generation', 0)}{', a different store' if cur.get('uuid') != self.meta.get('uuid') else ''}"
                f", seen {when}): another writer committed. Reopen it with connectome_dask.open and retry"
            )
        return cur

    def write_synapse_columns(
        self,
        func: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
        inputs: Sequence[str],
        outputs: Mapping[str, str],
        *,
        args: tuple = (),
        write_rois: Callable[[Path], None] | None = None,
        progress: bool | None = None,
        desc: str | None = None,
        meta_update: Mapping[str, Any] | None = None,
    ) -> Connectome:
        """Compute new synapse columns partition by partition and commit them atomically.

        ``func(block, *args)`` gets a dict of the ``inputs`` arrays of one
        partition and returns a dict with one array per name in ``outputs``
        (same length). Each task writes whole chunks of new arrays under fresh
        directory names; only when every task has succeeded is ``meta.json``
        replaced to point at them (and at the new ROI folder filled by
        ``write_rois(tmpdir)``, if given). A failure or kill before that leaves
        the store exactly as it was.

        The store's writer lock is held throughout; the commit lands only if
        meta.json still holds the generation this object was opened at
        (checked at the start and right before the rename). Arrays replaced
        by this commit stay until the next one, so readers of the previous
        generation finish undisturbed.

        Parameters
        ----------
        func
            ``func(block, *args) -> {name: array}``.
        inputs
            Synapse columns read for ``func``.
        outputs
            New or replaced columns and their dtypes (never ``pre``/``post``:
            they define the row order, the index and the connection table).
        args
            Extra arguments of ``func`` (delayed objects or futures for large ones).
        write_rois
            Fills the new ROI folder (must create ``rois.json``).
        progress, desc
            Progress bar switch and label.
        meta_update
            Keys to set in meta.json with the commit.

        Returns
        -------
        Connectome
            The re-opened store.

        Raises
        ------
        StoreError
            Another writer holds the lock, or committed since this object was
            opened; an output is ``pre``/``post`` or has a bad name.

        Examples
        --------
        Add a boolean column on a copy of the example store:

        >>> import shutil
        >>> copy = open(shutil.copytree(conn.path, tmp_path / "copy"), set_default=False)
        >>> def strong(block, threshold):
        ...     return {"strong": block["confidence"] > threshold}
        >>> new = copy.write_synapse_columns(strong, ["confidence"], {"strong": "bool"}, args=(0.9,))
        >>> "strong" in new.synapse_columns, new.generation == copy.generation + 1
        (True, True)
        >>> new.read_synapses(["strong"], 0, 3)["strong"].dtype
        dtype('bool')
        """
        from ._compute import compute

        for name in outputs:
            safe_name(name, "synapse column")
            if name in ("pre", "post"):
                raise StoreError(
                    f"write_synapse_columns cannot replace {name!r}: it defines the row order, the "
                    "index and the connection table of the store; ingest the table again instead"
                )
        with writer_lock(self.path, StoreError):
            self._check_current("before the write")
            self.collect_garbage()
            remove_leftovers(self.path)
            new = self._write_locked(func, inputs, outputs, args, write_rois, progress, desc, meta_update, compute)
            new.collect_garbage()
        if _default is self:
            set_default_connectome(new)
        return new

    def _write_locked(self, func, inputs, outputs, args, write_rois, progress, desc, meta_update,
                      compute) -> Connectome:
        gen = self.generation + 1
        syn_root = _inside(self.path, self.meta["synapses"]["path"])
        idx_root = _inside(self.path, self.meta["index"]["path"])
        bp = [c for c in outputs if c in BY_POST_COLUMNS and self.meta["index"].get("by_post") is not None]
        if bp:  # never write through a symlinked by_post folder (it would land outside the store)
            _inside(self.path, f"{self.meta['index']['path']}/by_post")
        tag = f"g{gen}-{uuid.uuid4().hex[:6]}"
        new_dirs: dict[str, str] = {}
        new_bp: dict[str, str] = {}
        new_rois_rel = None
        try:
            for name, dt in outputs.items():
                d = f"{encode_name(name)}.{tag}"
                new_dirs[name] = d
                del_arr = _create_array(syn_root, d, self.n_synapses, str(np.dtype(dt)), self.chunk_rows)
                del del_arr
            if write_rois is not None:
                new_rois_rel = f"rois/{tag}"
                rroot = self.path / "rois"
                if rroot.is_symlink():
                    raise StoreError(f"{rroot} is a symlink; stores never hold symlinks (refusing to write)")
                rroot.mkdir(exist_ok=True)
                rdir = rroot / tag
                rdir.mkdir()
                write_marker(rdir, "rois")
                write_rois(rdir)
                if not (rdir / "rois.json").exists():
                    raise StoreError("write_rois must create rois.json")
            tasks = self.map_partitions(
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
                post_off = self._read_index("post_offsets")
                new_bp = {c: f"by_post/{encode_name(c)}.{tag}" for c in bp}
                _post_order(
                    self._array_path("post"),
                    {c: syn_root / new_dirs[c] for c in bp},
                    {c: idx_root / new_bp[c] for c in bp},
                    post_off, self.n_synapses, self.chunk_rows, bucket=1 << 25,
                )
        except BaseException:
            for d in new_dirs.values():
                rmtree_real(syn_root / d)
            for rel in new_bp.values():
                rmtree_real(idx_root / rel)
            if new_rois_rel:
                rmtree_real(self.path / new_rois_rel)
            raise
        meta = json.loads(json.dumps(self.meta))
        meta["synapses"]["columns"].update(new_dirs)
        if new_bp:
            meta["index"]["by_post"].update(new_bp)
        checksums = dict(meta.get("checksums") or {})
        if new_rois_rel:
            old_rois = meta.get("rois")
            if old_rois:
                checksums = {k: v for k, v in checksums.items() if not k.startswith(f"{old_rois}/")}
            checksums.update(folder_digests(self.path, new_rois_rel))
            meta["rois"] = new_rois_rel
        meta["checksums"] = checksums
        meta["generation"] = gen
        if meta_update:
            meta.update(meta_update)
        # what the previous generation used and this one no longer does: kept
        # until the next commit, so a reader of generation g - 1 can finish
        meta["retained"] = sorted(_references(self.meta) - _references(meta))
        write_meta(self.path, meta, before_replace=lambda: self._check_current("at the commit"))
        return Connectome(self.path)

    # -- garbage
    def _entries(self) -> list[tuple[Path, str, bool]]:
        """Every entry a write may leave in the store: (path, relative path, created by the package)."""
        out: list[tuple[Path, str, bool]] = []

        def scan(rel_dir: str, pattern: re.Pattern, want_dir: bool = True) -> None:
            d = self.path / rel_dir if rel_dir else self.path
            rel_parts = Path(rel_dir).parts if rel_dir else ()
            cur = self.path
            for part in rel_parts:  # never descend through a symlink
                cur = cur / part
                if cur.is_symlink():
                    out.append((cur, cur.relative_to(self.path).as_posix(), False))
                    return
            if not d.is_dir():
                return
            for p in sorted(d.iterdir()):
                if p.name in (MARKER, "zarr.json"):
                    continue
                rel = p.relative_to(self.path).as_posix()
                if p.is_symlink():
                    out.append((p, rel, False))
                    continue
                if want_dir != p.is_dir():
                    continue
                ours = bool(pattern.match(p.name)) and (
                    read_marker(p) is not None or is_empty_shell(p) if want_dir else True)
                out.append((p, rel, ours))

        syn = self.meta["synapses"]["path"]
        idx = self.meta["index"]["path"]
        scan(syn, _GEN_DIR)
        scan(f"{idx}/by_post", _GEN_DIR)
        scan("rois", _ROI_DIR)
        out += [e for e in _scan_spill(self.path, idx)]
        for p in sorted(self.path.iterdir()):
            if p.name.startswith(".meta.json.tmp-") and not p.is_symlink() and p.is_file():
                out.append((p, p.name, bool(_TXN_FILE.match(p.name)) and _is_meta_tmp(p)))
        return out

    def unreferenced(self) -> list[Path]:
        """Files and folders in the store that meta.json does not reference (leftovers).

        Entries still used by the previous generation (``meta["retained"]``)
        are live. Symlinks found where the store keeps its arrays are listed
        too (they are never followed or deleted).

        Examples
        --------
        >>> conn.unreferenced()
        []
        """
        live = _references(self.meta) | set(self.meta.get("retained") or [])
        index_fixed = {f"{self.meta['index']['path']}/by_post"}
        return [p for p, rel, _ in self._entries() if rel not in live and rel not in index_fixed]

    def stale_siblings(self) -> list[Path]:
        """Temporary directories beside the store left by killed ingests or rewrites.

        Those with the package's marker are removed by the next write to this
        store (under its writer lock); others are only reported.

        Examples
        --------
        >>> conn.stale_siblings()
        []
        """
        return sorted(set(self.path.parent.glob(f".{self.path.name}.tmp-*"))
                      | set(self.path.parent.glob(f".{self.path.name}.old-*")))

    def collect_garbage(self) -> list[Path]:
        """Delete leftovers of interrupted writes; returns what was removed.

        Only entries the store itself created are deleted: the name pattern
        of a commit (``<column>.g<N>-<hex>``, ``rois/g<N>-<hex>``, ``_spill-<hex>``,
        ``.meta.json.tmp-<hex>``) AND the package's marker file (or an empty
        shell with that pattern, :func:`~connectome_dask._fsutil.is_empty_shell`:
        what a kill right after a ``mkdir`` leaves); symlinks are never followed
        nor deleted. Unreferenced entries without the marker stay
        (``connectome-dask info --check`` lists them).

        Examples
        --------
        >>> import shutil
        >>> from connectome_dask._fsutil import write_marker
        >>> copy = open(shutil.copytree(conn.path, tmp_path / "copy"), set_default=False)
        >>> (copy.path / "synapses.zarr" / "pre.g9-dead00").mkdir()  # as if a write was killed
        >>> write_marker(copy.path / "synapses.zarr" / "pre.g9-dead00", "array")
        >>> (copy.path / "synapses.zarr" / "mine").mkdir()  # not the package's: kept
        >>> [p.name for p in copy.collect_garbage()], [p.name for p in copy.unreferenced()]
        (['pre.g9-dead00'], ['mine'])
        """
        live = _references(self.meta) | set(self.meta.get("retained") or [])
        gone = []
        for p, rel, ours in self._entries():
            if not ours or rel in live or p.is_symlink():
                continue
            log.info("removing %s (not referenced by %s)", p, self.path / "meta.json")
            rmtree_real(p)
            gone.append(p)
        return gone

    # -- validation
    def check(self, deep: bool = True) -> list[str]:
        """Validate the store; return a list of problems (empty when valid).

        Checks meta.json (and its checksum), the neuron table, every array's
        shape/dtype/chunking and chunk files, the index, the ROI folder, the
        file checksums, symlinks; and with ``deep`` every chunk of every array
        of the current generation (CRC32C) and every index invariant:
        ``pre``/``post`` in range and rows sorted by (pre, post), the offsets
        equal the counts, the connection table equals a recount, ``post_perm``
        is the (post, row) ordering of the rows and each ``by_post`` copy
        equals its column in that order, ROI codes are valid.

        Parameters
        ----------
        deep
            Read and verify every chunk (minutes at whole-brain scale).

        Returns
        -------
        list of str

        Examples
        --------
        >>> conn.check()
        []
        """
        problems: list[str] = []
        try:
            problems += self._shallow_check()
        except StoreError as e:
            problems.append(str(e))
        if deep and not problems:
            try:
                problems += self._deep_check()
            except StoreError as e:
                problems.append(str(e))
        return problems

    def _shallow_check(self) -> list[str]:
        problems: list[str] = []
        try:
            _read_meta(self.path)
        except StoreError as e:
            return [str(e)]
        try:
            neurons = self.neurons
            if not (neurons["index"].to_numpy() == np.arange(len(neurons))).all():
                problems.append("neurons.parquet: 'index' column is not 0..n-1")
            if neurons["bodyId"].duplicated().any():
                problems.append("neurons.parquet: duplicate bodyId")
        except Exception as e:  # noqa: BLE001 - report, don't crash
            problems.append(f"neurons.parquet unreadable: {e}")
        for p in _symlinks_in(self.path):
            problems.append(f"{p} is a symlink; stores never hold symlinks")
        n = self.n_synapses
        arrays = self._arrays_of_generation()
        for label, path, length in arrays:
            try:
                a = _open_array_cached(str(path), self.token)
            except StoreError as e:
                problems.append(f"{label}: cannot open ({e})")
                continue
            if length is not None and a.shape != (length,):
                problems.append(f"{label}: shape {a.shape}, expected ({length},)")
            if label.startswith("synapse column") and a.chunks != (self.chunk_rows,):
                problems.append(f"{label}: chunks {a.chunks} differ from the store grid")
            missing = _missing_chunks(path, a.shape[0], a.chunks[0])
            if missing:
                problems.append(
                    f"{label}: chunk file(s) missing: {missing[:5]}"
                    f"{' ...' if len(missing) > 5 else ''} (in {path})"
                )
        del n
        if self.rois_path is not None and not (self.rois_path / "rois.json").exists():
            problems.append(f"ROI folder {self.rois_path} has no rois.json")
        for rel, digest in sorted((self.meta.get("checksums") or {}).items()):
            try:
                p = _inside(self.path, rel)
                if file_digest(p) != digest:
                    problems.append(f"{p}: content does not match its checksum in meta.json")
            except (OSError, StoreError) as e:
                problems.append(f"{rel}: cannot verify its checksum ({e})")
        return problems

    def _arrays_of_generation(self) -> list[tuple[str, Path, int | None]]:
        """(label, path, expected length) of every array the current generation reads."""
        n, nn = self.n_synapses, self.n_neurons
        out: list[tuple[str, Path, int | None]] = []
        for c in self.synapse_columns:
            out.append((f"synapse column {c!r}", self._array_path(c), n))
        out += [("index.zarr/pre_offsets", self._index_path("pre_offsets"), nn + 1),
                ("index.zarr/post_offsets", self._index_path("post_offsets"), nn + 1),
                ("index.zarr/post_perm", self._index_path("post_perm"), n)]
        for c in (self.meta["index"].get("by_post") or {}):
            out.append((f"index.zarr/by_post copy of {c!r}", self._by_post_path(c), n))  # type: ignore[arg-type]
        if self.has_pair_table:
            root = self.meta["index"]["pairs"]
            for c in ("pre", "post", "weight"):
                out.append((f"index.zarr/{root}/{c}", self._index_path(f"{root}/{c}"),
                            int(self.meta["index"]["n_pairs"])))
        return out

    def _deep_check(self) -> list[str]:
        from ._agg_kernels import pair_runs

        problems: list[str] = []
        nn, n = self.n_neurons, self.n_synapses
        nroi = len(self.roi_names)
        # every chunk of every array decodes and passes its CRC32C
        for label, path, _ in self._arrays_of_generation():
            a = _open_array_cached(str(path), self.token)
            c = a.chunks[0]
            for s in range(0, a.shape[0], c):
                try:
                    _read_range(str(path), self.token, s, min(s + c, a.shape[0]))
                except StoreError as ex:
                    problems.append(f"{label} rows {s}..{min(s + c, a.shape[0])}: unreadable ({ex})")
                    break
        if problems:
            return problems
        last_key = -1
        pre_counts = np.zeros(nn, dtype=np.int64)
        post_counts = np.zeros(nn, dtype=np.int64)
        h_row = 0
        h_cols = {c: 0 for c in (self.meta["index"].get("by_post") or {})}
        pairs_ok = self.has_pair_table
        n_pairs = int(self.meta["index"].get("n_pairs") or 0)
        pair_pos = 0
        for s, e in self.partitions(align_pre=True):
            block = self.read_synapses(self.synapse_columns, s, e)
            pre, post = block["pre"], block["post"]
            for c in ("pre", "post"):
                a = block[c]
                if len(a) and (a.min() < 0 or a.max() >= nn):
                    bad = int(np.flatnonzero((a < 0) | (a >= nn))[0]) + s
                    problems.append(f"synapse column {c!r}: row {bad} out of range 0..{nn - 1}")
                    return problems
            for c in ("roi_pre", "roi_post"):
                if c in block and len(block[c]) and (block[c].min() < -1 or block[c].max() >= nroi):
                    problems.append(f"synapse column {c!r}: ROI code outside -1..{nroi - 1}")
            key = (pre.astype(np.int64) << 32) | post.astype(np.int64)
            if len(key) and (key[0] < last_key or np.any(np.diff(key) < 0)):
                bad = s + (int(np.flatnonzero(np.diff(key) < 0)[0]) + 1 if np.any(np.diff(key) < 0) else 0)
                problems.append(f"rows are not sorted by (pre, post) at row {bad}")
            if len(key):
                last_key = int(key[-1])
            pre_counts += np.bincount(pre, minlength=nn)
            post_counts += np.bincount(post, minlength=nn)
            rows = np.arange(s, e, dtype=np.uint64)
            h_row = (h_row + int(_mix(rows, post.astype(np.uint64)).sum(dtype=np.uint64))) & _M64
            for c in h_cols:
                h_cols[c] = (h_cols[c] + int(_mix(rows, _bits(block[c])).sum(dtype=np.uint64))) & _M64
            if pairs_ok and len(pre):
                up, uq, cnt = pair_runs(pre, post, np.ones(len(pre), dtype=bool))
                stored = self.read_pairs(start=pair_pos, stop=min(pair_pos + len(up), n_pairs))
                if not (len(stored["pre"]) == len(up) and np.array_equal(stored["pre"], up)
                        and np.array_equal(stored["post"], uq) and np.array_equal(stored["weight"], cnt)):
                    problems.append(f"index.zarr/pairs differs from a recount of the synapse rows "
                                    f"(pairs {pair_pos}..{pair_pos + len(up)}, rows {s}..{e})")
                    pairs_ok = False
                pair_pos += len(up)
        if pairs_ok and pair_pos != n_pairs:
            problems.append(f"index.zarr/pairs has {n_pairs} rows, a recount gives {pair_pos}")
        pre_off = self._read_index("pre_offsets")
        post_off = self._read_index("post_offsets")
        if not np.array_equal(pre_off, np.concatenate([[0], np.cumsum(pre_counts)])):
            problems.append("index.zarr/pre_offsets does not match the pre column")
        if not np.array_equal(post_off, np.concatenate([[0], np.cumsum(post_counts)])):
            problems.append("index.zarr/post_offsets does not match the post column")
            return problems
        # post_perm: (perm[k], owner(k)) must be the multiset {(row, post[row])} and rows
        # must increase within each post neuron (a streaming, order-free comparison)
        perm_path = self._index_path("post_perm")
        h_perm = 0
        h_bp = {c: 0 for c in h_cols}
        c_len = self.chunk_rows
        prev_owner, prev_row = -1, -1
        for s in range(0, n, c_len):
            e = min(s + c_len, n)
            perm = _read_range(str(perm_path), self.token, s, e)
            owner = np.searchsorted(post_off, np.arange(s, e), side="right") - 1
            if len(perm) and (perm.min() < 0 or perm.max() >= n):
                problems.append("index.zarr/post_perm holds row ids outside the table")
                return problems
            o = np.concatenate([[prev_owner], owner])
            r = np.concatenate([[prev_row], perm])
            if np.any((o[1:] == o[:-1]) & (r[1:] <= r[:-1])):
                problems.append(f"index.zarr/post_perm is not in (post, row) order near position {s}")
                return problems
            prev_owner, prev_row = int(owner[-1]), int(perm[-1])
            pu = perm.astype(np.uint64)
            h_perm = (h_perm + int(_mix(pu, owner.astype(np.uint64)).sum(dtype=np.uint64))) & _M64
            for c in h_bp:
                vals = _read_range(str(self._by_post_path(c)), self.token, s, e)
                h_bp[c] = (h_bp[c] + int(_mix(pu, _bits(vals)).sum(dtype=np.uint64))) & _M64
        if h_perm != h_row:
            problems.append("index.zarr/post_perm is not the (post, row) permutation of the rows")
            return problems
        for c in h_bp:
            if h_bp[c] != h_cols[c]:
                problems.append(f"index.zarr/by_post copy of {c!r} differs from the column")
        return problems


def _references(meta: Mapping[str, Any]) -> set[str]:
    """Relative paths (POSIX) of the entries a generation reads."""
    syn, idx = meta["synapses"]["path"], meta["index"]["path"]
    out = {f"{syn}/{d}" for d in meta["synapses"]["columns"].values()}
    out |= {f"{idx}/{a}" for a in INDEX_ARRAYS}
    out |= {f"{idx}/{v}" for v in (meta["index"].get("by_post") or {}).values()}
    if meta["index"].get("pairs"):
        out.add(f"{idx}/{meta['index']['pairs']}")
    for key in ("rois", "skeletons", "neurons"):
        if meta.get(key):
            out.add(str(meta[key]))
    return out


def _symlinks_in(root: Path) -> list[Path]:
    """Every symlink anywhere in the store (never followed)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                out.append(p)
    return sorted(out)


def _scan_spill(root: Path, idx: str) -> list[tuple[Path, str, bool]]:
    d = root / idx
    if d.is_symlink() or not d.is_dir():
        return []
    out = []
    for p in sorted(d.iterdir()):
        if p.name.startswith("_spill-"):
            rel = p.relative_to(root).as_posix()
            ours = not p.is_symlink() and bool(_SPILL_DIR.match(p.name)) and (
                read_marker(p) is not None or is_empty_shell(p))
            out.append((p, rel, ours))
    return out


def _is_meta_tmp(p: Path) -> bool:
    """A temporary meta.json of a killed commit: empty or starting like one."""
    try:
        with p.open("rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head == b"" or b'"format": "connectome-dask"' in head or head in b'{\n "format": "connectome-dask"'


_M64 = (1 << 64) - 1


def _mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """splitmix64 of (a, b) pairs (uint64, wrapping): the summands of an order-free multiset hash."""
    with np.errstate(over="ignore"):
        z = a * np.uint64(0x9E3779B97F4A7C15) + (b ^ np.uint64(0xD1B54A32D192ED03))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _bits(values: np.ndarray) -> np.ndarray:
    """The raw bits of a numeric array as uint64 (floats compared bit for bit)."""
    v = np.ascontiguousarray(values)
    if v.dtype.kind == "b":
        v = v.astype(np.uint8)
    size = v.dtype.itemsize
    u = v.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[size])
    return u.astype(np.uint64)


def _missing_chunks(array_dir: Path, n: int, chunk_rows: int) -> list[int]:
    """Indices of chunks whose file is absent (default v3 key encoding ``c/<i>``)."""
    nchunks = -(-n // chunk_rows) if n else 0
    return [i for i in range(nchunks) if not (array_dir / "c" / str(i)).exists()]


def _ranges_to_rows(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    lens = (stops - starts).astype(np.int64)
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    rep = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return (np.arange(total, dtype=np.int64) + rep).astype(np.int64)


def _run_block(func, paths: Mapping[str, str], gen: str, start: int, stop: int, args, kwargs):
    block = {c: _read_range(p, gen, start, stop) for c, p in paths.items()}
    return func(block, start, *args, **kwargs)


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
        arr[start : start + n] = a.astype(arr.dtype, copy=False)
    return n


def _read_synapse_block(
    part: tuple[int, int], paths: Mapping[str, str], gen: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read one row range of synapse columns as a DataFrame (index = global row id).

    The ``columns=`` keyword lets dask project columns: only the arrays a
    query uses are read.
    """
    s, e = part
    cols = list(paths) if columns is None else list(columns)
    data = {c: _read_range(paths[c], gen, s, e) for c in cols}
    return pd.DataFrame(data, index=pd.RangeIndex(s, e))


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
