"""The store's on-disk format: constants, names, metadata and its validation, array creation.

Everything here describes or writes the files of a store (``docs/store.md``):
the schema version and column tables, the one name rule (:func:`safe_name`),
the path rule for paths read from meta.json (:func:`_inside`), atomic JSON
and ``meta.json`` writing with its SHA-256 (:func:`write_meta`), file digests,
the array codecs and :func:`_create_array`, the neuron table, and reading and
validating ``meta.json`` (:func:`_read_meta`, :func:`_meta_token`).

The lowest module of :mod:`connectome_dask.store`: it imports nothing else
from the package but :mod:`connectome_dask._fsutil` and
:mod:`connectome_dask.errors`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._fsutil import MARKER, atomic_file, check_component, check_name, no_symlinks, write_marker
from ..errors import StoreError

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
    "KIND_SCHEMA_VERSION",
    "STORE_KINDS",
    "STANDARD_NEURON_COLUMNS",
    "SYNAPSE_DTYPES",
    "array_codecs",
    "file_digest",
    "folder_digests",
    "read_neuron_table",
    "safe_name",
    "write_json_atomic",
    "write_meta",
    "write_neuron_table",
]

SCHEMA_VERSION = 2  # the newest this package reads; synapse-level stores are still written as 1


#: schema version written for each store kind: synapse-level stores keep version 1 (older
#: readers open them); connection-level stores are version 2, which older readers refuse
#: (they would count weighted edges as single synapses)
KIND_SCHEMA_VERSION = {"synapses": 1, "connections": 2}


#: store kinds (``meta.json: kind``, absent = ``"synapses"``)
STORE_KINDS = ("synapses", "connections")


FORMAT_NAME = "connectome-dask"


DEFAULT_CHUNK_ROWS = 1 << 18  # 256 Ki rows: 1 MB per int32 column chunk (point reads decode little)


DEFAULT_PARTITION_CHUNKS = 16  # 4 Mi rows per dask partition


#: columns kept a second time in (post, row) order under index.zarr/by_post, so
#: one body's *input* synapses are contiguous slices too (a clustered index)
BY_POST_COLUMNS = (
    "pre", "x_post", "y_post", "z_post", "x", "y", "z",
    "confidence", "confidence_post", "roi_post", "weight",
)


POSITION_COLUMNS_PAIR = ("x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post")


POSITION_COLUMNS_CENTER = ("x", "y", "z")


STANDARD_NEURON_COLUMNS = ("type", "instance", "status", "cropped")


# names of the directories a commit creates: <encoded column>.g<generation>-<6 hex>
_GEN_DIR = re.compile(r"^.+\.g[0-9]+-[0-9a-f]{6}$")


_ROI_DIR = re.compile(r"^g[0-9]+(-[0-9a-f]{6})?$")


_TXN_FILE = re.compile(r"^\.meta\.json\.tmp-[0-9a-f]{8}$")


_SPILL_DIR = re.compile(r"^_spill-[0-9a-f]{6}$")


# the per-ROI connection table's directory in index.zarr: written at ingest, or by a commit
_ROI_PAIRS_DIR = re.compile(r"^roi_pairs(\.g[0-9]+-[0-9a-f]{6})?$")


#: columns (and dtypes) of the per-ROI connection table (index.zarr/roi_pairs*): one row
#: per (pre, post, roi), sorted, weight = synapses of the pair in that ROI
ROI_PAIR_COLUMNS = {"pre": "int32", "post": "int32", "roi": "int16", "weight": "int64"}


#: the synapse column the per-ROI connection table is keyed on (a connection's ROI is its
#: postsynaptic site's, as in neuPrint and fetch_adjacencies)
ROI_PAIRS_COLUMN = "roi_post"


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
}  # "weight" of a connection-level store is int64 (StoreWriter(kind="connections") requires it)


def safe_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it passes the package's one name rule (:func:`~connectome_dask._fsutil.check_name`).

    Any printable name without ``/``, ``\\``, NUL or a line break, not ``.`` or
    ``..``. Names are never used as paths unencoded
    (:func:`~connectome_dask._fsutil.encode_name`).

    Parameters
    ----------
    name
        The candidate name.
    what
        What the name is, for the message ("ROI name", "synapse column").

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    StoreError
        The name breaks the rule; the message quotes it.

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

    Parameters
    ----------
    path
        The JSON file to write (replaced atomically if it exists).
    obj
        The value; numpy scalars and arrays are written as numbers and lists.
    before_replace
        Called right before the rename; an exception it raises aborts the
        write (the old file stays).
    """
    with atomic_file(path, before_replace=before_replace) as tmp, tmp.open("w") as f:
        json.dump(obj, f, indent=1, default=_json_default)


def _meta_digest(meta: Mapping[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, default=_json_default, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def write_meta(path: Path, meta: dict, *, before_replace: Callable[[], None] | None = None) -> None:
    """Write a store's meta.json with its own SHA-256 (``checksum``), atomically.

    Parameters
    ----------
    path
        The store directory.
    meta
        The metadata (a ``checksum`` key is replaced by the digest of the rest).
    before_replace
        Called right before the rename (see :func:`write_json_atomic`).
    """
    meta = dict(meta)
    meta["checksum"] = _meta_digest(meta)
    write_json_atomic(Path(path) / "meta.json", meta, before_replace=before_replace)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (``sha256:<hex>``).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    str
    """
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def folder_digests(root: Path, rel: str) -> dict[str, str]:
    """SHA-256 of every regular file under ``root/rel`` except Zarr arrays (they carry CRC32C).

    Parameters
    ----------
    root
        The store directory (the keys are relative to it).
    rel
        The folder under ``root`` (e.g. ``"rois/g3-abc123"``).

    Returns
    -------
    dict of str to str
        POSIX path relative to ``root`` -> ``sha256:<hex>`` (symlinks and the
        package's marker files are skipped).
    """
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


def write_neuron_table(neurons: pd.DataFrame, path: Path) -> None:
    """Write neurons.parquet with Parquet page checksums (verified on every read).

    Parameters
    ----------
    neurons
        The neuron table (its index is not written).
    path
        The Parquet file to write.
    """
    neurons.to_parquet(path, index=False, write_page_checksum=True)


def read_neuron_table(path: Path) -> pd.DataFrame:
    """Read a store's neurons.parquet, verifying its Parquet page checksums.

    (User-supplied neuron tables are read by
    :func:`connectome_dask.ingest.read_neuron_table`.)

    Parameters
    ----------
    path
        The store's neurons.parquet.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    StoreError
        The file is missing, truncated or corrupt (a failed page checksum).
    """
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, page_checksum_verification=True).to_pandas()
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid / ArrowIOError derive from these
        raise StoreError(f"{path}: cannot read the neuron table ({type(e).__name__}: {e})") from None


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
    kind = meta.get("kind", "synapses")
    if kind not in STORE_KINDS:
        raise StoreError(f"{mp}: 'kind' must be one of {list(STORE_KINDS)}, got {str(kind)[:100]!r}")
    if kind != "synapses" and sv < KIND_SCHEMA_VERSION[kind]:
        raise StoreError(f"{mp}: a {kind!r} store needs schema_version >= {KIND_SCHEMA_VERSION[kind]}, got {sv}")
    if kind == "connections":
        cols_ = meta["synapses"].get("columns") if isinstance(meta["synapses"], dict) else None
        if not isinstance(cols_, dict) or "weight" not in cols_:
            raise StoreError(f"{mp}: a connection-level store needs the synapse column 'weight'")
        tw = meta.get("total_weight")
        if not isinstance(tw, int) or isinstance(tw, bool) or tw < 0:
            raise StoreError(f"{mp}: 'total_weight' must be a non-negative integer, got {str(tw)[:100]!r}")

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
    if idx.get("roi_pairs") is not None:
        if not isinstance(idx["roi_pairs"], str) or not _ROI_PAIRS_DIR.match(idx["roi_pairs"]):
            raise bad("index.roi_pairs", "'roi_pairs' or 'roi_pairs.g<N>-<hex>'")
        check_component(idx["roi_pairs"], "index.roi_pairs", mp, error=StoreError)
        nr = idx.get("n_roi_pairs")
        if not isinstance(nr, int) or isinstance(nr, bool) or nr < 0:
            raise bad("index.n_roi_pairs", "a non-negative integer")
        if not isinstance(idx.get("roi_pairs_of"), str):
            raise bad("index.roi_pairs_of", f"the array directory of {ROI_PAIRS_COLUMN!r} it was built from")
        rm = idx.get("roi_major")
        if rm is not None:  # the table's ROI-major copy (store.roi_major); its folder name is fixed
            sizes = ("n_runs", "n_rows", "n_codes", "chunk_rows")
            if not isinstance(rm, dict) or any(not isinstance(rm.get(k), int) or isinstance(rm.get(k), bool)
                                               or rm[k] < 0 for k in sizes) or rm["chunk_rows"] < 1:
                raise bad("index.roi_major", f"a mapping of non-negative integers {', '.join(sizes)} and 'of'")
            of = rm.get("of")
            if not isinstance(of, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in of.items()):
                raise bad("index.roi_major.of", "a mapping of column name to the array directory it was built from")
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


def _references(meta: Mapping[str, Any]) -> set[str]:
    """Relative paths (POSIX) of the entries a generation reads."""
    syn, idx = meta["synapses"]["path"], meta["index"]["path"]
    out = {f"{syn}/{d}" for d in meta["synapses"]["columns"].values()}
    out |= {f"{idx}/{a}" for a in INDEX_ARRAYS}
    out |= {f"{idx}/{v}" for v in (meta["index"].get("by_post") or {}).values()}
    if meta["index"].get("pairs"):
        out.add(f"{idx}/{meta['index']['pairs']}")
    if meta["index"].get("roi_pairs"):
        out.add(f"{idx}/{meta['index']['roi_pairs']}")
    for key in ("rois", "skeletons", "neurons"):
        if meta.get(key):
            out.add(str(meta[key]))
    return out
