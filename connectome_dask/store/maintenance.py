"""Garbage collection and validation of a store, as functions of a :class:`~connectome_dask.store.Connectome`.

:func:`collect_garbage` deletes only entries a write of this package left
(name pattern AND marker, or an empty shell with the pattern; never through
a symlink), :func:`unreferenced` and :func:`stale_siblings` list leftovers,
and :func:`check` validates the store (shallow: metadata, shapes, chunk
files, checksums, symlinks; deep: every chunk and every index invariant,
the ``post_perm`` / ``by_post`` comparisons through an order-free multiset
hash, :func:`_mix`). The :class:`~connectome_dask.store.Connectome` methods
of the same names delegate here.

Imports :mod:`~connectome_dask.store.format` and
:mod:`~connectome_dask.store.arrays` (not the reader: the store is passed in).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._fsutil import MARKER, is_empty_shell, read_marker, rmtree_real
from ..errors import StoreError
from .arrays import _missing_chunks, _open_array_cached, _read_range
from .format import (
    _GEN_DIR,
    _ROI_DIR,
    _ROI_PAIRS_DIR,
    _SPILL_DIR,
    _TXN_FILE,
    ROI_PAIR_COLUMNS,
    ROI_PAIRS_COLUMN,
    _inside,
    _read_meta,
    _references,
    file_digest,
)

if TYPE_CHECKING:
    from .reader import Connectome

__all__ = ["check", "collect_garbage", "stale_siblings", "unreferenced"]

#: the store's logger (the name it had as one module)
log = logging.getLogger("connectome_dask.store")


def _entries(conn: Connectome) -> list[tuple[Path, str, bool]]:
    """Every entry a write may leave in the store: (path, relative path, created by the package)."""
    out: list[tuple[Path, str, bool]] = []

    def scan(rel_dir: str, pattern: re.Pattern, want_dir: bool = True) -> None:
        d = conn.path / rel_dir if rel_dir else conn.path
        rel_parts = Path(rel_dir).parts if rel_dir else ()
        cur = conn.path
        for part in rel_parts:  # never descend through a symlink
            cur = cur / part
            if cur.is_symlink():
                out.append((cur, cur.relative_to(conn.path).as_posix(), False))
                return
        if not d.is_dir():
            return
        for p in sorted(d.iterdir()):
            if p.name in (MARKER, "zarr.json"):
                continue
            rel = p.relative_to(conn.path).as_posix()
            if p.is_symlink():
                out.append((p, rel, False))
                continue
            if want_dir != p.is_dir():
                continue
            ours = bool(pattern.match(p.name)) and (
                read_marker(p) is not None or is_empty_shell(p) if want_dir else True)
            out.append((p, rel, ours))

    syn = conn.meta["synapses"]["path"]
    idx = conn.meta["index"]["path"]
    scan(syn, _GEN_DIR)
    scan(f"{idx}/by_post", _GEN_DIR)
    scan("rois", _ROI_DIR)
    out += [e for e in _scan_spill(conn.path, idx)]
    out += _scan_roi_pairs(conn.path, idx)
    for p in sorted(conn.path.iterdir()):
        if p.name.startswith(".meta.json.tmp-") and not p.is_symlink() and p.is_file():
            out.append((p, p.name, bool(_TXN_FILE.match(p.name)) and _is_meta_tmp(p)))
    return out


def unreferenced(conn: Connectome) -> list[Path]:
    """Files and folders in the store that meta.json does not reference; see :meth:`Connectome.unreferenced`.

    Parameters
    ----------
    conn
        The store.

    Returns
    -------
    list of pathlib.Path
    """
    live = _references(conn.meta) | set(conn.meta.get("retained") or [])
    index_fixed = {f"{conn.meta['index']['path']}/by_post"}
    return [p for p, rel, _ in _entries(conn) if rel not in live and rel not in index_fixed]


def stale_siblings(conn: Connectome) -> list[Path]:
    """Temporary directories beside the store left by killed writes; see :meth:`Connectome.stale_siblings`.

    Parameters
    ----------
    conn
        The store.

    Returns
    -------
    list of pathlib.Path
        ``.<name>.tmp-*`` and ``.<name>.old-*`` beside the store, sorted.
    """
    return sorted(set(conn.path.parent.glob(f".{conn.path.name}.tmp-*"))
                  | set(conn.path.parent.glob(f".{conn.path.name}.old-*")))


def collect_garbage(conn: Connectome) -> list[Path]:
    """Delete leftovers of interrupted writes (ours only); see :meth:`Connectome.collect_garbage`.

    Parameters
    ----------
    conn
        The store.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    live = _references(conn.meta) | set(conn.meta.get("retained") or [])
    gone = []
    for p, rel, ours in _entries(conn):
        if not ours or rel in live or p.is_symlink():
            continue
        log.info("removing %s (not referenced by %s)", p, conn.path / "meta.json")
        rmtree_real(p)
        gone.append(p)
    return gone


def check(conn: Connectome, deep: bool = True) -> list[str]:
    """Validate the store, return the problems found; see :meth:`Connectome.check`.

    Parameters
    ----------
    conn
        The store.
    deep
        Also decode every chunk and check the index invariants (a full pass),
        when the shallow checks found nothing.

    Returns
    -------
    list of str
        The problems (empty: the store is valid). Store errors met on the
        way are reported here, not raised.
    """
    problems: list[str] = []
    try:
        problems += _shallow_check(conn)
    except StoreError as e:
        problems.append(str(e))
    if deep and not problems:
        try:
            problems += _deep_check(conn)
        except StoreError as e:
            problems.append(str(e))
    return problems


def _shallow_check(conn: Connectome) -> list[str]:
    """Metadata, neuron table, array shapes and chunk files, checksums, symlinks."""
    problems: list[str] = []
    try:
        _read_meta(conn.path)
    except StoreError as e:
        return [str(e)]
    try:
        neurons = conn.neurons
        if not (neurons["index"].to_numpy() == np.arange(len(neurons))).all():
            problems.append("neurons.parquet: 'index' column is not 0..n-1")
        if neurons["bodyId"].duplicated().any():
            problems.append("neurons.parquet: duplicate bodyId")
    except Exception as e:  # noqa: BLE001 - report, don't crash
        problems.append(f"neurons.parquet unreadable: {e}")
    for p in _symlinks_in(conn.path):
        problems.append(f"{p} is a symlink; stores never hold symlinks")
    n = conn.n_synapses
    arrays = _arrays_of_generation(conn)
    for label, path, length in arrays:
        try:
            a = _open_array_cached(str(path), conn.token)
        except StoreError as e:
            problems.append(f"{label}: cannot open ({e})")
            continue
        if length is not None and a.shape != (length,):
            problems.append(f"{label}: shape {a.shape}, expected ({length},)")
        if label.startswith("synapse column") and a.chunks != (conn.chunk_rows,):
            problems.append(f"{label}: chunks {a.chunks} differ from the store grid")
        missing = _missing_chunks(path, a.shape[0], a.chunks[0])
        if missing:
            problems.append(
                f"{label}: chunk file(s) missing: {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''} (in {path})"
            )
    del n
    if conn.rois_path is not None and not (conn.rois_path / "rois.json").exists():
        problems.append(f"ROI folder {conn.rois_path} has no rois.json")
    for rel, digest in sorted((conn.meta.get("checksums") or {}).items()):
        try:
            p = _inside(conn.path, rel)
            if file_digest(p) != digest:
                problems.append(f"{p}: content does not match its checksum in meta.json")
        except (OSError, StoreError) as e:
            problems.append(f"{rel}: cannot verify its checksum ({e})")
    return problems


def _arrays_of_generation(conn: Connectome) -> list[tuple[str, Path, int | None]]:
    """(label, path, expected length) of every array the current generation reads."""
    n, nn = conn.n_synapses, conn.n_neurons
    out: list[tuple[str, Path, int | None]] = []
    for c in conn.synapse_columns:
        out.append((f"synapse column {c!r}", conn._array_path(c), n))
    out += [("index.zarr/pre_offsets", conn._index_path("pre_offsets"), nn + 1),
            ("index.zarr/post_offsets", conn._index_path("post_offsets"), nn + 1),
            ("index.zarr/post_perm", conn._index_path("post_perm"), n)]
    for c in (conn.meta["index"].get("by_post") or {}):
        bp = conn._by_post_path(c)
        assert bp is not None  # c is a key of meta["index"]["by_post"]
        out.append((f"index.zarr/by_post copy of {c!r}", bp, n))
    if conn.has_pair_table:
        root = conn.meta["index"]["pairs"]
        for c in ("pre", "post", "weight"):
            out.append((f"index.zarr/{root}/{c}", conn._index_path(f"{root}/{c}"),
                        int(conn.meta["index"]["n_pairs"])))
    # a per-ROI table recorded for another roi_post array (a commit by an older version) is never
    # read (Connectome.has_roi_pair_table is false), so it is not checked either
    if conn.has_roi_pair_table:
        for c, p in conn.roi_pair_table_paths().items():
            out.append((f"index.zarr/{conn.meta['index']['roi_pairs']}/{c}", Path(p), conn.n_roi_pairs))
    # the ROI-major copy, when it matches the current roi_post and confidence arrays (else never read)
    copy = _roi_major_of(conn)
    if copy is not None:
        rm = conn.meta["index"]["roi_major"]
        n_chunks = -(-int(rm["n_runs"]) // int(rm["chunk_rows"]))
        want = {"pre": rm["n_runs"], "post": rm["n_runs"], "weight": rm["n_runs"], "run_starts": rm["n_codes"] + 1,
                "row_starts": rm["n_codes"] + 1, "run_rows": n_chunks + 1}
        for c, p in copy.items():
            out.append((f"index.zarr/{conn.meta['index']['roi_pairs']}/by_roi/{c}", Path(p),
                        int(want.get(c, rm["n_rows"]))))
    return out


def _roi_major_of(conn: Connectome) -> dict[str, str] | None:
    """The current ROI-major copy's array paths (every column it holds), or None."""
    of = (conn.meta["index"].get("roi_major") or {}).get("of") or {}
    return conn.roi_major_paths([c for c in of if c != ROI_PAIRS_COLUMN])


def _roi_major_hashes(paths: dict[str, str], token: str, conf_cols: list[str]) -> tuple[np.ndarray, list[str]]:
    """Per ROI code, the order-free hash of the copy's ``(pre, post, confidence bits)`` rows (and its problems)."""
    rs = _read_range(paths["run_starts"], token, 0, 1 << 62)
    ws = _read_range(paths["row_starts"], token, 0, 1 << 62)
    problems: list[str] = []
    h = np.zeros((len(rs) - 1, len(conf_cols)), dtype=np.uint64)
    step = 1 << 16
    for code in range(len(rs) - 1):
        row = int(ws[code])
        for a in range(int(rs[code]), int(rs[code + 1]), step):
            b = min(a + step, int(rs[code + 1]))
            w = _read_range(paths["weight"], token, a, b).astype(np.int64)
            key = ((_read_range(paths["pre"], token, a, b).astype(np.uint64) << np.uint64(32))
                   | _read_range(paths["post"], token, a, b).astype(np.uint64))
            key = np.repeat(key, np.maximum(w, 0))
            for k, c in enumerate(conf_cols):
                v = _read_range(paths[c], token, row, row + len(key))
                if len(v) != len(key):
                    problems.append(f"the ROI-major copy's {c!r} is shorter than its runs count (ROI code {code})")
                    return h, problems
                h[code, k] += _mix(key, _bits(v)).sum(dtype=np.uint64)
            row += len(key)
        if row != int(ws[code + 1]):
            problems.append(f"the ROI-major copy's runs of ROI code {code} count {row - int(ws[code]):,} rows, "
                            f"its row_starts {int(ws[code + 1]) - int(ws[code]):,}")
    return h, problems


def _deep_check(conn: Connectome) -> list[str]:
    """Every chunk decodes, and every index invariant holds (a full pass over the table)."""
    from .._agg_kernels import pair_runs, pair_weight_runs
    from .tables import roi_runs

    problems: list[str] = []
    nn, n = conn.n_neurons, conn.n_synapses
    nroi = len(conn.roi_names)
    # every chunk of every array decodes and passes its CRC32C
    for label, path, _ in _arrays_of_generation(conn):
        a = _open_array_cached(str(path), conn.token)
        c = a.chunks[0]
        for s in range(0, a.shape[0], c):
            try:
                _read_range(str(path), conn.token, s, min(s + c, a.shape[0]))
            except StoreError as ex:
                problems.append(f"{label} rows {s}..{min(s + c, a.shape[0])}: unreadable ({ex})")
                break
    if problems:
        return problems
    last_key = -1
    pre_counts = np.zeros(nn, dtype=np.int64)
    post_counts = np.zeros(nn, dtype=np.int64)
    h_row = 0
    h_cols = {c: 0 for c in (conn.meta["index"].get("by_post") or {})}
    pairs_ok = conn.has_pair_table
    n_pairs = int(conn.meta["index"].get("n_pairs") or 0)
    pair_pos = 0
    roi_ok = conn.has_roi_pair_table
    n_roi = conn.n_roi_pairs
    roi_pos = 0
    wcol = conn.weight_column
    copy = _roi_major_of(conn)
    copy_cols = [c for c in (conn.meta["index"].get("roi_major") or {}).get("of", {}) if c != ROI_PAIRS_COLUMN]
    h_copy = np.zeros((max(nroi, 1) + 1, len(copy_cols)), dtype=np.uint64)  # per ROI code, from the rows
    for s, e in conn.partitions(align_pre=True):
        block = conn.read_synapses(conn.synapse_columns, s, e)
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
            if wcol:  # a connection-level store's pairs sum the weights of its rows
                up, uq, cnt = pair_weight_runs(pre, post, block[wcol].astype(np.int64), np.ones(len(pre), bool))
            else:
                up, uq, cnt = pair_runs(pre, post, np.ones(len(pre), dtype=bool))
            stored = conn.read_pairs(start=pair_pos, stop=min(pair_pos + len(up), n_pairs))
            if not (len(stored["pre"]) == len(up) and np.array_equal(stored["pre"], up)
                    and np.array_equal(stored["post"], uq) and np.array_equal(stored["weight"], cnt)):
                problems.append(f"index.zarr/pairs differs from a recount of the synapse rows "
                                f"(pairs {pair_pos}..{pair_pos + len(up)}, rows {s}..{e})")
                pairs_ok = False
            pair_pos += len(up)
        if copy is not None and len(pre):
            r = block[ROI_PAIRS_COLUMN].astype(np.int64)
            sel = np.flatnonzero((r >= 0) & (r < len(h_copy)))
            order = sel[np.argsort(r[sel], kind="stable")]
            if len(order):
                first = np.flatnonzero(np.r_[True, r[order][1:] != r[order][:-1]])
                pk = (pre[order].astype(np.uint64) << np.uint64(32)) | post[order].astype(np.uint64)
                for k, c in enumerate(copy_cols):
                    sums = np.add.reduceat(_mix(pk, _bits(block[c][order])), first)
                    h_copy[r[order][first], k] += sums
        if roi_ok and len(pre):
            try:
                want = roi_runs(pre, post, block[ROI_PAIRS_COLUMN], block[wcol] if wcol else None)
            except StoreError as ex:  # a ROI code below -1 (reported above)
                problems.append(f"the per-ROI connection table cannot be recounted: {ex}")
                roi_ok = False
                continue
            got = conn.read_roi_pairs(start=roi_pos, stop=min(roi_pos + len(want[0]), n_roi))
            if not (len(got["pre"]) == len(want[0])
                    and all(np.array_equal(got[c], w) for c, w in zip(ROI_PAIR_COLUMNS, want, strict=True))):
                problems.append(f"index.zarr/{conn.meta['index']['roi_pairs']} differs from a recount of the "
                                f"synapse rows (rows {roi_pos}..{roi_pos + len(want[0])}, synapse rows {s}..{e})")
                roi_ok = False
            roi_pos += len(want[0])
    if pairs_ok and pair_pos != n_pairs:
        problems.append(f"index.zarr/pairs has {n_pairs} rows, a recount gives {pair_pos}")
    if roi_ok and roi_pos != n_roi:
        problems.append(f"index.zarr/{conn.meta['index']['roi_pairs']} has {n_roi} rows, a recount gives {roi_pos}")
    if copy is not None:  # every ROI's (pair, confidence) rows, as a multiset, are the synapse rows'
        h_got, copy_problems = _roi_major_hashes(copy, conn.token, copy_cols)
        problems += copy_problems
        k = min(len(h_got), len(h_copy))
        if not copy_problems and (not np.array_equal(h_got[:k], h_copy[:k]) or h_copy[k:].any() or h_got[k:].any()):
            diff = np.flatnonzero((h_got[:k] != h_copy[:k]).any(axis=1))
            code = int(diff[0]) if len(diff) else k
            problems.append(f"index.zarr/{conn.meta['index']['roi_pairs']}/by_roi differs from the synapse rows "
                            f"(ROI code {code}: its runs or confidences)")
    pre_off = conn._read_index("pre_offsets")
    post_off = conn._read_index("post_offsets")
    if not np.array_equal(pre_off, np.concatenate([[0], np.cumsum(pre_counts)])):
        problems.append("index.zarr/pre_offsets does not match the pre column")
    if not np.array_equal(post_off, np.concatenate([[0], np.cumsum(post_counts)])):
        problems.append("index.zarr/post_offsets does not match the post column")
        return problems
    # post_perm: (perm[k], owner(k)) must be the multiset {(row, post[row])} and rows
    # must increase within each post neuron (a streaming, order-free comparison)
    perm_path = conn._index_path("post_perm")
    h_perm = 0
    h_bp = {c: 0 for c in h_cols}
    c_len = conn.chunk_rows
    prev_owner, prev_row = -1, -1
    for s in range(0, n, c_len):
        e = min(s + c_len, n)
        perm = _read_range(str(perm_path), conn.token, s, e)
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
            vals = _read_range(str(conn._by_post_path(c)), conn.token, s, e)
            h_bp[c] = (h_bp[c] + int(_mix(pu, _bits(vals)).sum(dtype=np.uint64))) & _M64
    if h_perm != h_row:
        problems.append("index.zarr/post_perm is not the (post, row) permutation of the rows")
        return problems
    for c in h_bp:
        if h_bp[c] != h_cols[c]:
            problems.append(f"index.zarr/by_post copy of {c!r} differs from the column")
    return problems


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


def _scan_roi_pairs(root: Path, idx: str) -> list[tuple[Path, str, bool]]:
    """The per-ROI connection tables in the index folder (``roi_pairs``, ``roi_pairs.g<N>-<hex>``)."""
    d = root / idx
    if d.is_symlink() or not d.is_dir():
        return []
    out = []
    for p in sorted(d.iterdir()):
        if p.name.startswith("roi_pairs"):
            rel = p.relative_to(root).as_posix()
            ours = not p.is_symlink() and p.is_dir() and bool(_ROI_PAIRS_DIR.match(p.name)) and (
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
