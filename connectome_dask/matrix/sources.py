"""Aggregated neuron pairs from pandas / dask synapse tables, connectivity tables and stores."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from ..errors import ConnectomeDaskError, UnknownColumnError
from ..labels import str_array
from . import common as _common
from .axes import _Annotations
from .common import _is_connectome, _is_dask_frame, _log, _require_columns

__all__: list[str] = []  # internal: the pair builders are private


class _Pairs:
    """Aggregated connections: codes into ``universe`` plus weights and synapse counts."""

    def __init__(
        self, universe, src, tgt, weight, count=None, present_src=None, present_tgt=None, universe_int=None
    ) -> None:
        self.universe = np.asarray(universe, dtype=object)
        #: The universe as int64 body IDs when the input IDs were integers (else None):
        #: the axes take them as they are instead of parsing the strings back.
        self.universe_int = None if universe_int is None else np.asarray(universe_int, dtype=np.int64)
        self.src = np.asarray(src, dtype=np.int64)
        self.tgt = np.asarray(tgt, dtype=np.int64)
        self.weight = np.asarray(weight, dtype=np.float64)
        self.count = None if count is None else np.asarray(count, dtype=np.int64)
        self.present_src = self.src if present_src is None else np.asarray(present_src, dtype=np.int64)
        self.present_tgt = self.tgt if present_tgt is None else np.asarray(present_tgt, dtype=np.int64)

    def subset(self, keep: np.ndarray) -> _Pairs:
        return _Pairs(
            self.universe,
            self.src[keep],
            self.tgt[keep],
            self.weight[keep],
            None if self.count is None else self.count[keep],
            universe_int=self.universe_int,
        )

    def at_least(self, min_weight: int) -> _Pairs:
        """The pairs with at least ``min_weight`` synapses."""
        n = self.weight if self.count is None else self.count
        return self.subset(np.asarray(n >= min_weight, dtype=bool))

    def scoped(self, ann_pos: np.ndarray, scope: str) -> _Pairs:
        """Apply the annotation scope (present sets are filtered too)."""
        if scope == "all":
            return self
        ok = ann_pos >= 0
        present = np.unique(np.concatenate([self.present_src, self.present_tgt]))
        removed = int((~ok[present]).sum())
        if removed:
            _log.info("Filtered connectivity to neurons present in annotations: kept=%d, removed=%d",
                      len(present) - removed, removed)
        keep = ok[self.src] & ok[self.tgt]
        out = self.subset(keep)
        out.present_src = self.present_src[ok[self.present_src]]
        out.present_tgt = self.present_tgt[ok[self.present_tgt]]
        return out

    def normalised(self, weight_mode: str) -> np.ndarray:
        """Weights after relative normalisation (crantpy: totals over the kept pairs)."""
        w = self.weight
        n = len(self.universe)
        if weight_mode == "relative_outgoing":
            tot = np.bincount(self.src, weights=w, minlength=n)[self.src]
        elif weight_mode == "relative_incoming":
            tot = np.bincount(self.tgt, weights=w, minlength=n)[self.tgt]
        else:
            return w
        tot = np.where(tot == 0, 1.0, tot)
        return w / tot


def _encode_pair_ids(
    pre: pd.Series, post: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Codes of pre/post IDs into one universe of normalised ID strings (-1 = missing).

    Returns ``(pre codes, post codes, universe, universe as int64 or None)``:
    the int64 universe is given when the IDs are integers that fit int64.
    """
    both = pd.concat([pre.reset_index(drop=True), post.reset_index(drop=True)], ignore_index=True)
    codes, uniques = pd.factorize(both, use_na_sentinel=True)
    su = str_array(pd.Series(np.asarray(uniques, dtype=object)) if len(uniques) else pd.Series([], dtype=object))
    # merge values that normalise to the same string (1, 1.0, "1")
    ucodes, universe = pd.factorize(su)
    codes = np.where(codes >= 0, ucodes[np.maximum(codes, 0)] if len(ucodes) else -1, -1).astype(np.int64)
    n = len(pre)
    return codes[:n], codes[n:], np.asarray(universe, dtype=object), _int_universe(uniques, len(universe))


def _int_universe(uniques: Any, n_universe: int) -> np.ndarray | None:
    """``uniques`` as int64 when they are integers that fit (distinct integers give distinct strings)."""
    u = np.asarray(uniques)
    if u.dtype.kind not in "iu" or len(u) != n_universe:
        return None
    if u.dtype.kind == "u" and len(u) and u.max() > np.iinfo(np.int64).max:
        return None
    return u.astype(np.int64)


def _aggregate_codes(src, tgt, weight, n_universe) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sum ``weight`` and count rows per (src, tgt) code pair."""
    key = src.astype(np.int64) * np.int64(max(n_universe, 1)) + tgt.astype(np.int64)
    uniq, inv = np.unique(key, return_inverse=True)
    w = np.bincount(inv, weights=weight, minlength=len(uniq))
    c = np.bincount(inv, minlength=len(uniq)).astype(np.int64)
    nu = np.int64(max(n_universe, 1))
    return uniq // nu, uniq % nu, w, c


class _PairRows:
    """Rows that are already one per connected pair (a store's pair counts, a connectivity table).

    No synapse ``id`` to de-duplicate, so a row filter is a pair filter.
    """

    def __init__(self, pairs: _Pairs) -> None:
        self._p = pairs
        self.universe = pairs.universe
        self.universe_int = pairs.universe_int
        self.present_src = np.unique(pairs.present_src)
        self.present_tgt = np.unique(pairs.present_tgt)

    def pairs(self, src_ok: np.ndarray | None = None, tgt_ok: np.ndarray | None = None) -> _Pairs:
        keep = np.ones(len(self._p.src), dtype=bool)
        if src_ok is not None:
            keep &= src_ok[self._p.src]
        if tgt_ok is not None:
            keep &= tgt_ok[self._p.tgt]
        return self._p if keep.all() else self._p.subset(keep)


class _Rows:
    """Synapse rows of a pandas table after the annotation scope: codes, weights, ``id`` keys.

    crantpy's order of steps: annotation scope, then the axis filters, then
    rows with the same ``id`` counted once (the first kept row wins), then
    the per-pair aggregation (:meth:`pairs`).
    """

    def __init__(self, universe, universe_int, src, tgt, w, dedup) -> None:
        self.universe = universe
        self.universe_int = universe_int
        self.src = src
        self.tgt = tgt
        self.w = w
        self.dedup = dedup

    @property
    def present_src(self) -> np.ndarray:
        return np.unique(self.src)

    @property
    def present_tgt(self) -> np.ndarray:
        return np.unique(self.tgt)

    def subset(self, keep: np.ndarray) -> _Rows:
        return _Rows(self.universe, self.universe_int, self.src[keep], self.tgt[keep], self.w[keep],
                     None if self.dedup is None else self.dedup[keep])

    def pairs(self, src_ok: np.ndarray | None = None, tgt_ok: np.ndarray | None = None) -> _Pairs:
        keep = np.ones(len(self.src), dtype=bool)
        if src_ok is not None:
            keep &= src_ok[self.src]
        if tgt_ok is not None:
            keep &= tgt_ok[self.tgt]
        src, tgt, w = self.src[keep], self.tgt[keep], self.w[keep]
        if self.dedup is not None and len(src):
            _, first = np.unique(self.dedup[keep], return_index=True)
            first.sort()
            src, tgt, w = src[first], tgt[first], w[first]
        s, t, ww, c = _aggregate_codes(src, tgt, w, len(self.universe))
        return _Pairs(self.universe, s, t, ww, c, universe_int=self.universe_int)


def _weights(df: pd.DataFrame, weight_mode: str, weight_column: str | None) -> np.ndarray:
    """Per-row weights: the numeric ``weight_column`` for ``"column"``, else ones (crantpy's ValueErrors)."""
    if weight_mode != "column":
        return np.ones(len(df))
    try:
        return pd.to_numeric(df[weight_column], errors="raise").to_numpy(dtype=np.float64, na_value=0.0)
    except (TypeError, ValueError):
        col = df[weight_column]
        bad = col[pd.to_numeric(col, errors="coerce").isna() & col.notna()]
        example = f"; e.g. row {bad.index[0]!r}: {bad.iloc[0]!r}" if len(bad) else ""
        raise ConnectomeDaskError(f"Connectivity weight column {weight_column!r} must be numeric{example}") from None


def _check_synapse_columns(df: Any, pre_col: str, post_col: str, weight_mode: str, weight_column: str | None) -> None:
    """crantpy's errors: ``KeyError`` for a missing ID column, ``ValueError`` for a missing ``weight_column``."""
    _require_columns(df, [pre_col, post_col], "synapses")
    if weight_mode == "column" and weight_column not in df.columns:
        raise ConnectomeDaskError(
            f"weight_column {weight_column!r} not found in synapses_df; available: {list(df.columns)[:20]}"
        )


def _rows_from_frame(
    df: pd.DataFrame, pre_col: str, post_col: str, weight_mode: str, weight_column: str | None,
    ann: _Annotations, scope: str,
) -> _Rows:  # fmt: skip
    """The rows of a pandas synapse table that the annotation scope keeps (null IDs dropped)."""
    _check_synapse_columns(df, pre_col, post_col, weight_mode, weight_column)
    src, tgt, universe, uint = _encode_pair_ids(df[pre_col], df[post_col])
    keep = (src >= 0) & (tgt >= 0)
    if scope == "annotated_only":
        ok = np.r_[ann.positions(universe) >= 0, False]  # slot -1: a null ID
        keep &= ok[src] & ok[tgt]
        removed = len(df) - int(keep.sum())
        if removed:
            _log.info("Filtered synapses to neurons present in annotations: kept=%d, removed=%d",
                      int(keep.sum()), removed)
    sub = df.loc[keep] if not keep.all() else df
    w = _weights(sub, weight_mode, weight_column)
    dedup = None
    if weight_mode != "column" and "id" in df.columns:
        dedup = pd.factorize(sub["id"], use_na_sentinel=False)[0].astype(np.int64)
    return _Rows(universe, uint, src[keep], tgt[keep], w, dedup)


def _pairs_from_synapse_frame(
    df: pd.DataFrame, pre_col: str, post_col: str, weight_mode: str, weight_column: str | None
) -> _Pairs:
    """Pairs from a pandas synapse table, every row kept (rows with the same ``id`` counted once)."""
    _check_synapse_columns(df, pre_col, post_col, weight_mode, weight_column)
    src, tgt, universe, uint = _encode_pair_ids(df[pre_col], df[post_col])
    keep = (src >= 0) & (tgt >= 0)
    sub = df.loc[keep]
    dedup = None
    if weight_mode != "column" and "id" in df.columns:
        dedup = pd.factorize(sub["id"], use_na_sentinel=False)[0].astype(np.int64)
    return _Rows(universe, uint, src[keep], tgt[keep], _weights(sub, weight_mode, weight_column), dedup).pairs()


_KEY_SHIFT = np.int64(1) << np.int64(40)  # row key: partition number << 40 | row within partition


def _scope_partition(part: pd.DataFrame, pre_col, post_col, wcol, idcol, ann_ids, int_keys, partition_info=None):
    """One dask partition: rows with both IDs (and, with ``ann_ids``, both annotated), minimal columns.

    With ``int_keys`` the ID columns are integers and stay int64 (``ann_ids``
    are then the annotation IDs that are integers); otherwise IDs become
    their normalised strings.
    """
    if int_keys:
        pre_s = part[pre_col].to_numpy().astype(np.int64)
        post_s = part[post_col].to_numpy().astype(np.int64)
        keep = np.ones(len(part), dtype=bool)
    else:
        pre_s, post_s = str_array(part[pre_col]), str_array(part[post_col])
        keep = pd.notna(pre_s) & pd.notna(post_s)
    if ann_ids is not None:
        idx = pd.Index(ann_ids)
        keep &= (idx.get_indexer(pre_s) >= 0) & (idx.get_indexer(post_s) >= 0)
    pno = 0 if partition_info is None else int(partition_info["number"])
    kind = np.int64 if int_keys else object
    out = pd.DataFrame({
        "pre": pd.Series(pre_s[keep], dtype=kind), "post": pd.Series(post_s[keep], dtype=kind),
        "_key": np.int64(pno) * _KEY_SHIFT + np.flatnonzero(keep).astype(np.int64),
    })  # fmt: skip
    out["w"] = part[wcol].to_numpy()[keep] if wcol else 1.0
    if idcol:
        out["id"] = part[idcol].to_numpy()[keep]
    return out


def _int_annotation_ids(ids: np.ndarray) -> np.ndarray:
    """The annotation IDs that are plain integers (``str(int(x)) == x``), as int64."""
    out = []
    for x in ids.tolist():
        try:
            v = int(x)
        except (TypeError, ValueError):
            continue
        if str(v) == x and -(2**63) <= v < 2**63:
            out.append(v)
    return np.asarray(out, dtype=np.int64)


def _filter_partition(part: pd.DataFrame, src_ids, tgt_ids) -> pd.DataFrame:
    """Rows whose pre ID is in ``src_ids`` and post ID in ``tgt_ids`` (None = any)."""
    keep = np.ones(len(part), dtype=bool)
    if src_ids is not None:
        keep &= pd.Index(src_ids).get_indexer(part["pre"].to_numpy()) >= 0
    if tgt_ids is not None:
        keep &= pd.Index(tgt_ids).get_indexer(part["post"].to_numpy()) >= 0
    return part.loc[keep]


def _first_per_id(part: pd.DataFrame) -> pd.DataFrame:
    """Within one hash partition of ``id``: the first row (smallest row key) of each id."""
    return part.sort_values("_key", kind="stable").drop_duplicates("id", keep="first")


class _DaskRows:
    """Synapse rows of a dask table after the annotation scope, aggregated out of core on demand.

    Same steps as :class:`_Rows`: the scope and null IDs per partition, then
    the axis filters, then ``id`` de-duplication across partitions (rows are
    hashed by ``id``; within an id the first row in table order wins, so the
    result does not depend on the partitioning), then pair counts / sums.
    """

    def __init__(self, ddf, pre_col, post_col, weight_mode, weight_column, ann: _Annotations, scope, progress):
        _check_synapse_columns(ddf, pre_col, post_col, weight_mode, weight_column)
        if weight_mode == "column":
            dtype = ddf[weight_column].dtype
            if not pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
                raise ConnectomeDaskError(f"Connectivity weight column {weight_column!r} must be numeric (dtype {dtype})")
        idcol = "id" if (weight_mode != "column" and "id" in ddf.columns) else None
        wcol = weight_column if weight_mode == "column" else None
        # integer ID columns stay int64 through the shuffle and the group-by (much faster than strings)
        self._int_keys = ddf[pre_col].dtype.kind == "i" and ddf[post_col].dtype.kind == "i"
        ann_ids: np.ndarray | None = None
        if scope == "annotated_only":
            ann_ids = _int_annotation_ids(ann.ids) if self._int_keys else np.asarray(ann.ids, dtype=object)
        kind = np.int64 if self._int_keys else object
        meta = pd.DataFrame({"pre": pd.Series([], dtype=kind), "post": pd.Series([], dtype=kind),
                             "_key": pd.Series([], dtype=np.int64), "w": pd.Series([], dtype=np.float64)})
        if idcol:
            meta["id"] = pd.Series([], dtype=ddf["id"].dtype)
        self._frame = ddf.map_partitions(_scope_partition, pre_col, post_col, wcol, idcol, ann_ids, self._int_keys,
                                         meta=meta)
        self._keys: np.ndarray | None = None  # the universe as the frame's ID values (int64 or strings)
        self._dedup = idcol is not None
        self._progress = progress
        self._universe: np.ndarray | None = None
        self._src: np.ndarray | None = None
        self._tgt: np.ndarray | None = None

    def _available(self) -> None:
        from .._compute import compute

        if self._universe is not None:
            return
        pre_u, post_u = compute(self._frame["pre"].unique(), self._frame["post"].unique(),
                                progress=self._progress, desc="nested matrix: neurons")
        pre_v, post_v = np.asarray(pre_u), np.asarray(post_u)
        self._keys = np.asarray(pd.unique(np.concatenate([pre_v, post_v])))
        self._universe = self._strings(self._keys)
        idx = pd.Index(self._keys)
        self._src = np.unique(idx.get_indexer(pre_v)).astype(np.int64)
        self._tgt = np.unique(idx.get_indexer(post_v)).astype(np.int64)

    def _strings(self, keys: np.ndarray) -> np.ndarray:
        """The universe of normalised ID strings for the frame's ID values."""
        if self._int_keys:
            return keys.astype(np.int64).astype(str).astype(object)
        return np.asarray(keys, dtype=object)

    def _ints(self, keys: np.ndarray, strings: np.ndarray) -> np.ndarray | None:
        return keys.astype(np.int64) if self._int_keys else _int_strings(strings)

    @property
    def universe(self) -> np.ndarray:
        self._available()
        assert self._universe is not None
        return self._universe

    @property
    def universe_int(self) -> np.ndarray | None:
        self._available()
        assert self._keys is not None
        return self._ints(self._keys, self.universe)

    @property
    def present_src(self) -> np.ndarray:
        self._available()
        assert self._src is not None
        return self._src

    @property
    def present_tgt(self) -> np.ndarray:
        self._available()
        assert self._tgt is not None
        return self._tgt

    def pairs(self, src_ok: np.ndarray | None = None, tgt_ok: np.ndarray | None = None) -> _Pairs:
        from .._compute import compute

        frame = self._frame
        if src_ok is not None or tgt_ok is not None:
            self._available()
            u = self._keys
            assert u is not None
            frame = frame.map_partitions(
                _filter_partition, None if src_ok is None else u[src_ok], None if tgt_ok is None else u[tgt_ok],
                meta=frame._meta,
            )  # fmt: skip
        if self._dedup:
            frame = frame.shuffle(on="id").map_partitions(_first_per_id, meta=frame._meta)
        g = frame.groupby(["pre", "post"])
        (w, n) = compute(g["w"].sum(), g.size(), progress=self._progress, desc="nested matrix: pair counts")
        agg = pd.DataFrame({"w": w, "n": n.reindex(w.index)}).reset_index()
        a_pre, a_post = agg["pre"].to_numpy(), agg["post"].to_numpy()
        if self._keys is None:  # no axis selection: the pairs define the universe
            keys = np.asarray(pd.unique(np.concatenate([a_pre, a_post])))
            su = self._strings(keys)
        else:
            keys, su = self._keys, self.universe
        idx = pd.Index(keys)
        src = idx.get_indexer(a_pre).astype(np.int64)
        tgt = idx.get_indexer(a_post).astype(np.int64)
        s, t, ww, _ = _aggregate_codes(src, tgt, agg["w"].to_numpy(np.float64), len(su))
        _, _, nn, _ = _aggregate_codes(src, tgt, agg["n"].to_numpy(np.float64), len(su))
        return _Pairs(su, s, t, ww, nn.astype(np.int64), universe_int=self._ints(keys, su))


def _int_strings(universe: np.ndarray) -> np.ndarray | None:
    """The universe of ID strings as int64 when every one is a plain integer that round-trips."""
    if len(universe) == 0:
        return None
    try:
        ints = np.array([int(x) for x in universe], dtype=np.int64)
    except (ValueError, OverflowError, TypeError):
        return None
    if all(str(v) == x for v, x in zip(ints.tolist(), universe.tolist(), strict=True)):
        return ints
    return None


def _pairs_from_connectivity(df: pd.DataFrame) -> _Pairs:
    """Edge list or adjacency matrix -> pairs (crantpy's accepted formats)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"connections_df must be a pandas DataFrame, got {type(df).__name__}")
    cols = set(map(str, df.columns))
    formats = [
        (("type.from", "type.to"), "weight"),
        (("pre", "post"), "weight"),
        (("source", "target"), "n_syn"),
    ]
    matches = [f for f in formats if set(f[0]) <= cols]
    if len(matches) > 1:
        raise ConnectomeDaskError(
            "Ambiguous edge-list format: columns match multiple formats "
            f"{[list(f[0]) for f in matches]}. Rename or drop columns so only one format matches."
        )
    if matches:
        (a, b), alt = matches[0]
        wcol = "weight" if "weight" in cols else (alt if alt in cols else None)
        if wcol is None:
            w = np.ones(len(df))
        else:
            try:
                w = pd.to_numeric(df[wcol], errors="raise").to_numpy(dtype=np.float64, na_value=0.0)
            except (TypeError, ValueError):
                bad = df[wcol][pd.to_numeric(df[wcol], errors="coerce").isna() & df[wcol].notna()]
                raise ConnectomeDaskError(
                    f"connectivity weight column {wcol!r} must be numeric; e.g. row {bad.index[0]!r}: {bad.iloc[0]!r}"
                ) from None
        src, tgt, universe, uint = _encode_pair_ids(df[a], df[b])
        keep = (src >= 0) & (tgt >= 0)
        s, t, ww, c = _aggregate_codes(src[keep], tgt[keep], w[keep], len(universe))
        return _Pairs(universe, s, t, ww, c, universe_int=uint)
    # adjacency matrix: index = presynaptic IDs, columns = postsynaptic IDs; as crantpy, any
    # values float() accepts (numbers, numeric strings, object columns), missing = 0
    try:
        vals = df.fillna(0).astype(float).to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        nonnum = [c for c in df.columns if pd.to_numeric(df[c].dropna(), errors="coerce").isna().any()]
        raise ConnectomeDaskError(
            "connections_df is neither an edge list (columns pre/post[/weight], source/target[/weight|n_syn] "
            "or type.from/type.to[/weight]) nor an adjacency matrix of numbers: non-numeric column(s) "
            f"{nonnum[:5]}"
        ) from None
    rows = pd.Series(np.asarray(df.index, dtype=object))
    cols_s = pd.Series(np.asarray(df.columns, dtype=object))
    r_codes, c_codes, universe, uint = _encode_pair_ids(rows, cols_s)
    rr, cc = np.nonzero(vals)
    keep = (r_codes[rr] >= 0) & (c_codes[cc] >= 0)
    rr, cc = rr[keep], cc[keep]
    s, t, w, c = _aggregate_codes(r_codes[rr], c_codes[cc], vals[rr, cc], len(universe))
    return _Pairs(universe, s, t, w, c, present_src=r_codes[r_codes >= 0], present_tgt=c_codes[c_codes >= 0],
                  universe_int=uint)


def _store_annotations(conn, neuron_annotations, neuron_id_column, cell_type_column) -> tuple[pd.DataFrame, str, str]:
    """The annotation table and its ID / type columns: the store's neuron table unless one is given."""
    if neuron_annotations is None:
        neurons = conn.neurons
        idc = neuron_id_column if neuron_id_column and neuron_id_column in neurons.columns else "bodyId"
        tyc = cell_type_column if cell_type_column and cell_type_column in neurons.columns else "type"
        return neurons, idc, tyc
    return neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type"


# by_roi=True also gives the ROI code of every pair, by_roi=False gives None in its place
@overload
def _pairs_from_store(
    conn, ann: _Annotations, scope: str, *, by_roi: Literal[True], rois=..., confidence=..., min_weight=..., progress=...
) -> tuple[_Pairs, np.ndarray]: ...


@overload
def _pairs_from_store(
    conn, ann: _Annotations, scope: str, *, by_roi: Literal[False] = ..., rois=..., confidence=..., min_weight=...,
    progress=...,
) -> tuple[_Pairs, None]: ...


def _pairs_from_store(
    conn, ann: _Annotations, scope: str, *, by_roi: bool = False, rois=None, confidence=None, min_weight=1, progress=None
) -> tuple[_Pairs, np.ndarray | None]:
    """Pair counts from a store (dense indices are the universe codes)."""
    from ..aggregate import pair_counts

    body_ids = conn.neurons["bodyId"].to_numpy()
    universe = str_array(body_ids)
    pre = post = None
    if scope == "annotated_only":
        ok = ann.positions(universe) >= 0  # a boolean mask over the store's neurons
        if not ok.all():
            pre = post = ok
    df = pair_counts(
        conn, pre=pre, post=post, rois=rois, by_roi=by_roi, confidence=confidence, min_weight=min_weight, progress=progress
    )
    w = df["weight"].to_numpy()
    pairs = _Pairs(
        universe, df["pre"].to_numpy(), df["post"].to_numpy(), w.astype(np.float64), w.astype(np.int64),
        universe_int=_int_universe(body_ids, len(universe)),
    )  # fmt: skip
    roi = df["roi"].to_numpy() if by_roi else None
    return pairs, roi


def _synapse_rows(
    source, neuron_annotations, pre_col, post_col, weight_mode, weight_column,
    cell_type_column, neuron_id_column, scope, confidence, min_weight, progress,
) -> tuple[_Rows | _DaskRows | _PairRows, _Annotations]:  # fmt: skip
    """The scoped synapse rows (pandas, dask or a store's pairs) and the resolved annotations."""
    if int(min_weight) < 1:
        raise ConnectomeDaskError(f"min_weight must be >= 1, got {min_weight!r}")
    if _is_connectome(source):
        if weight_mode == "column":
            raise ConnectomeDaskError("weight_mode='column' is not available for a Connectome (synapse counts only)")
        df, idc, tyc = _store_annotations(source, neuron_annotations, neuron_id_column, cell_type_column)
        ann = _Annotations(df, idc, tyc)
        pairs, _ = _pairs_from_store(source, ann, scope, confidence=confidence, min_weight=1, progress=progress)
        return _PairRows(pairs), ann
    if confidence is not None:
        raise ConnectomeDaskError("confidence= applies to a Connectome only; filter the synapse table instead")
    if neuron_annotations is None:
        raise ConnectomeDaskError("neuron_annotations is required for DataFrame input")
    ann = _Annotations(neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type")
    rows: _Rows | _DaskRows
    if _is_dask_frame(source):
        rows = _DaskRows(source, pre_col, post_col, weight_mode, weight_column, ann, scope, progress)
    elif isinstance(source, pd.DataFrame):
        rows = _rows_from_frame(source, pre_col, post_col, weight_mode, weight_column, ann, scope)
    else:
        raise TypeError(f"synapses must be a pandas/dask DataFrame or a Connectome, got {type(source).__name__}")
    return rows, ann


def _positions(df: pd.DataFrame, position_column) -> np.ndarray:
    """Synapse positions as an ``(n, 3)`` float64 array from one ``[x, y, z]`` column or three columns."""
    if isinstance(position_column, str):
        _require_columns(df, [position_column], "synapses")
        col = df[position_column]
        if len(col) == 0:
            return np.zeros((0, 3))
        pos = np.vstack(col.to_numpy()).astype(np.float64)
    else:
        cols = list(position_column)
        if len(cols) != 3:
            raise ConnectomeDaskError(f"position_column must be one column of [x, y, z] or three column names, got {cols}")
        _require_columns(df, cols, "synapses")
        pos = df[cols].to_numpy(dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ConnectomeDaskError(f"positions in {position_column!r} must be [x, y, z] triples, got shape {pos.shape}")
    return pos


def _load_roiset(rois, voxel_size):
    """``rois`` as a :class:`~connectome_dask.rois.RoiSet` (a RoiSet, or a folder of meshes)."""
    if rois is None:
        raise ConnectomeDaskError("rois= (a connectome_dask.rois.RoiSet or a folder of meshes) is required for DataFrame input")
    if (hasattr(rois, "contains") or hasattr(rois, "assign")) and hasattr(rois, "names"):
        return rois
    from ..rois import RoiSet

    return RoiSet.from_directory(rois)


def _neuropil_groups(
    source, neuron_annotations, neuropil_names, coordinates, position_column, pre_col, post_col,
    weight_mode, weight_column, cell_type_column, neuron_id_column, scope, include_other,
    voxel_offset, rois, voxel_size, confidence, min_weight, progress,
) -> list[tuple[str, _Rows | _PairRows | _DaskRows, _Annotations]]:  # fmt: skip
    """(name, rows, annotations) per listed neuropil with synapses, in the listed order, then "other".

    As crantpy: a synapse counts in EVERY listed neuropil that contains it
    (a glomerulus and its neuropil both), and in ``"other"`` when it is in
    none of the listed ones. For a store see :func:`_store_neuropil_groups`.
    """
    if int(min_weight) < 1:
        raise ConnectomeDaskError(f"min_weight must be >= 1, got {min_weight!r}")
    if _is_connectome(source):
        return _store_neuropil_groups(
            source, neuron_annotations, neuropil_names, coordinates, position_column, weight_mode,
            cell_type_column, neuron_id_column, scope, include_other, rois, confidence, progress,
        )  # fmt: skip
    if confidence is not None:
        raise ConnectomeDaskError("confidence= applies to a Connectome only; filter the synapse table instead")
    if neuron_annotations is None:
        raise ConnectomeDaskError("neuron_annotations is required for DataFrame input")
    if _is_dask_frame(source):
        return _dask_neuropil_groups(
            source, neuron_annotations, neuropil_names, coordinates, position_column, pre_col, post_col,
            weight_mode, weight_column, cell_type_column, neuron_id_column, scope, include_other,
            voxel_offset, rois, voxel_size, progress,
        )  # fmt: skip
    if not isinstance(source, pd.DataFrame):
        raise TypeError(f"synapses must be a pandas DataFrame or a Connectome, got {type(source).__name__}")
    _check_synapse_columns(source, pre_col, post_col, weight_mode, weight_column)
    roiset = _load_roiset(rois, voxel_size)
    names = list(roiset.names)
    wanted = _check_neuropils(neuropil_names, names)
    _log.info("Using %d neuropil mask(s): %s", len(wanted), wanted)
    ann = _Annotations(neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type")
    if len(source) == 0:
        _log.info("Synapse dataframe is empty; returning empty NeuropilCollection")
        return []
    df = source
    if scope == "annotated_only":
        pre_s = str_array(df[pre_col])
        post_s = str_array(df[post_col])
        ok = (ann.index.get_indexer(pre_s) >= 0) & (ann.index.get_indexer(post_s) >= 0)
        df = df.loc[ok]
        if len(df) == 0:
            _log.info("No synapses remain after filtering to annotated neurons; returning empty NeuropilCollection")
            return []
    pos = _positions(df, position_column)
    if coordinates == "pixels":
        if voxel_offset is not None:
            pos = pos + np.asarray(voxel_offset, dtype=np.float64)
        scale = _common.DEFAULT_VOXEL_SIZE if voxel_size is None else voxel_size  # read at call time
        pos = pos * np.asarray(scale, dtype=np.float64)
    rows = _rows_from_frame(df, pre_col, post_col, weight_mode, weight_column, ann, "all")
    valid = pd.notna(str_array(df[pre_col])) & pd.notna(str_array(df[post_col]))  # the rows _rows_from_frame keeps
    masks: list[tuple[str, np.ndarray]] = []
    any_in = np.zeros(len(df), dtype=bool)
    assigned = None if hasattr(roiset, "contains") else np.asarray(roiset.assign(pos))
    for n in wanted:
        m = np.asarray(roiset.contains(pos, n) if assigned is None else assigned == names.index(n), dtype=bool)
        if m.shape != (len(df),):
            raise ConnectomeDaskError(f"RoiSet.contains returned shape {m.shape}, expected ({len(df)},)")
        _log.info("Neuropil %s contains %d synapse(s)", n, int(m.sum()))
        any_in |= m
        masks.append((n, m))
    if include_other:
        masks.append(("other", ~any_in))
    out: list[tuple[str, _Rows | _PairRows | _DaskRows, _Annotations]] = []
    for n, mask in masks:
        if not mask.any():  # crantpy: a neuropil with scoped synapse rows is built (rows with a null ID count)
            _log.debug("Skipping neuropil %s because it contains no synapses", n)
            continue
        out.append((n, rows.subset(mask[valid]), ann))
    return out


def _partition_positions(part: pd.DataFrame, position_column, coordinates, voxel_offset, scale) -> np.ndarray:
    """nm positions of one partition's rows (pixels: ``(p + voxel_offset) * scale``)."""
    pos = _positions(part, position_column)
    if coordinates == "pixels":
        if voxel_offset is not None:
            pos = pos + np.asarray(voxel_offset, dtype=np.float64)
        pos = pos * np.asarray(scale, dtype=np.float64)
    return pos


def _in_neuropil(part: pd.DataFrame, roiset, names, which, position_column, coordinates, voxel_offset, scale):
    """The rows of one partition inside neuropil ``names[which]`` (``which=-1``: inside none of ``names``)."""
    if len(part) == 0:
        return part
    pos = _partition_positions(part, position_column, coordinates, voxel_offset, scale)
    if which >= 0:
        m = np.asarray(roiset.contains(pos, names[which]), dtype=bool)
    else:
        m = np.ones(len(part), dtype=bool)
        for n in names:
            m &= ~np.asarray(roiset.contains(pos, n), dtype=bool)
    return part.loc[m]


def _dask_neuropil_groups(
    ddf, neuron_annotations, neuropil_names, coordinates, position_column, pre_col, post_col,
    weight_mode, weight_column, cell_type_column, neuron_id_column, scope, include_other,
    voxel_offset, rois, voxel_size, progress,
) -> list[tuple[str, _Rows | _PairRows | _DaskRows, _Annotations]]:  # fmt: skip
    """Neuropil groups of a dask synapse table: each partition is tested against the listed meshes.

    One pass per listed neuropil (and one for "other"); within each, the same
    steps as :class:`_DaskRows` (scope, ``id`` de-duplication across partitions).
    """
    from dask import delayed

    _check_synapse_columns(ddf, pre_col, post_col, weight_mode, weight_column)
    roiset = _load_roiset(rois, voxel_size)
    names = list(roiset.names)
    wanted = _check_neuropils(neuropil_names, names)
    _log.info("Using %d neuropil mask(s): %s", len(wanted), wanted)
    ann = _Annotations(neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type")
    scale = _common.DEFAULT_VOXEL_SIZE if voxel_size is None else voxel_size
    rs = delayed(roiset, traverse=False)  # one copy of the meshes in the graph
    groups = [(n, k) for k, n in enumerate(wanted)] + ([("other", -1)] if include_other else [])
    out: list[tuple[str, _Rows | _PairRows | _DaskRows, _Annotations]] = []
    for n, k in groups:
        sub = ddf.map_partitions(_in_neuropil, rs, wanted, k, position_column, coordinates, voxel_offset, scale,
                                 meta=ddf._meta)
        rows = _DaskRows(sub, pre_col, post_col, weight_mode, weight_column, ann, scope, progress)
        if len(rows.present_src):
            out.append((n, rows, ann))
    return out


# ----------------------------------------------------------------------------- neuropils of a store

#: crantpy's position columns -> the store's columns (positions in a store are nm)
_CAVE_POSITION_COLUMNS = {
    **{f"pre_pt_position_{a}": f"{a}_pre" for a in "xyz"},
    **{f"post_pt_position_{a}": f"{a}_post" for a in "xyz"},
    **{f"ctr_pt_position_{a}": a for a in "xyz"},
}


def _store_position_columns(conn, position_column) -> tuple[str, str, str]:
    """The store's ``(x, y, z)`` columns for crantpy's ``position_column``.

    ``"pre_pt_position"`` / ``"post_pt_position"`` name a site;
    ``"ctr_pt_position"`` (crantpy's default) is the store's single centre
    point ``x, y, z``, or, for a store holding both sites (ingest keeps no
    centre point then), the postsynaptic site, the one ``roi_post`` labels.
    Three names are store columns or crantpy's split names
    (``post_pt_position_x``, ...).
    """
    from ..store import POSITION_COLUMNS_CENTER

    if not conn.positions:
        raise ConnectomeDaskError(f"store {conn.path} has no synapse positions to test against the meshes")
    if isinstance(position_column, str):
        sites = {"pre_pt_position": "pre", "post_pt_position": "post"}
        if position_column in sites:
            return conn.site_columns(sites[position_column])
        if position_column == "ctr_pt_position":
            return POSITION_COLUMNS_CENTER if conn.positions == POSITION_COLUMNS_CENTER else conn.site_columns("post")
        if position_column in _CAVE_POSITION_COLUMNS or position_column in conn.synapse_columns:
            raise ConnectomeDaskError(
                f"position_column {position_column!r} is one coordinate; give three column names for a store"
            )
        raise UnknownColumnError(
            f"store {conn.path} has no position {position_column!r}; use 'ctr_pt_position', 'pre_pt_position', "
            f"'post_pt_position' or three of its columns {list(conn.positions)}"
        )
    cols = list(position_column)
    if len(cols) != 3:
        raise ConnectomeDaskError(f"position_column must be one column of [x, y, z] or three column names, got {cols}")
    mapped = [_CAVE_POSITION_COLUMNS.get(c, c) for c in cols]
    missing = [c for c, m in zip(cols, mapped, strict=True) if m not in conn.synapse_columns]
    if missing:
        raise UnknownColumnError(f"store {conn.path} has no column(s) {missing}; positions: {list(conn.positions)}")
    return mapped[0], mapped[1], mapped[2]


def _store_roiset(conn, rois):
    """The meshes for a store: ``rois`` when given, else the store's own (None: it has no meshes).

    A store whose ``rois.json`` lists meshes but whose meshes cannot be read
    raises (:class:`~connectome_dask.errors.RoiError`), never falls back.
    """
    if rois is not None:
        return _load_roiset(rois, None)
    info = conn.roi_info
    if not info or not isinstance(info.get("meshes"), dict) or conn.rois_path is None:
        return None
    from ..rois import RoiSet

    return RoiSet.from_store(conn)


def _mesh_tests(roiset, wanted: Sequence[str]) -> list[list[str]]:
    """Per listed name, the meshes whose union is its region: its own mesh, or a group's descendants' meshes."""
    meshes = list(roiset.names)
    have = set(meshes)
    model = _roiset_model(roiset)
    out = []
    for n in wanted:
        if n in have:
            out.append([n])
        else:
            d = model.descendants(n)
            out.append([m for m in meshes if m in d])
    return out


def _roiset_model(roiset):
    """The ROI hierarchy of a RoiSet (duck-typed sets without one: no groups)."""
    from ..rois.model import RoiModel

    h = getattr(roiset, "hierarchy", None)
    return RoiModel({"names": list(roiset.names), "hierarchy": h or {}, "primary": list(roiset.names)})


def _count_keys(key: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct pair keys and their int64 synapse counts (``w``: per-row synapse weights)."""
    uniq, inv = np.unique(key, return_inverse=True)
    if w is None:
        return uniq, np.bincount(inv, minlength=len(uniq)).astype(np.int64)
    cnt = np.zeros(len(uniq), dtype=np.int64)
    np.add.at(cnt, inv, w.astype(np.int64))
    return uniq, cnt


def _inside_mesh(roiset, pos: np.ndarray, mesh: str) -> np.ndarray:
    """Per point: inside ``mesh``? (``RoiSet.contains``; a duck-typed set with ``assign`` only: its label)."""
    if hasattr(roiset, "contains"):
        m = np.asarray(roiset.contains(pos, mesh), dtype=bool)
    else:
        m = np.asarray(roiset.assign(pos)) == list(roiset.names).index(mesh)
    if m.shape != (len(pos),):
        raise ConnectomeDaskError(f"RoiSet.contains returned shape {m.shape}, expected ({len(pos)},)")
    return m


def _neuropil_block(block, start, roiset, tests, pos_cols, filt, n_neurons, include_other):
    """One store partition: per listed neuropil (then "other"), counts per (pre, post) key of the rows inside.

    A row counts in every listed neuropil whose meshes contain its position
    (the RoiSet's exact per-mesh containment, each mesh tested once), and in
    "other" when in none of them.
    """
    from ..rois.extent import RoiScaleWarning

    keep = np.flatnonzero(filt.keep(block))
    key = block["pre"][keep].astype(np.int64) * np.int64(max(n_neurons, 1)) + block["post"][keep].astype(np.int64)
    w = block[filt.weight_col][keep] if filt.weight_col else None
    n_groups = len(tests) + bool(include_other)
    if len(keep) == 0:
        return [(np.zeros(0, np.int64), np.zeros(0, np.int64))] * n_groups
    pos = np.column_stack([np.asarray(block[c][keep], dtype=np.float64) for c in pos_cols])
    inside: dict[str, np.ndarray] = {}
    any_in = np.zeros(len(keep), dtype=bool)
    out = []
    for meshes in tests:
        m = np.zeros(len(keep), dtype=bool)
        for mesh in meshes:
            if mesh not in inside:
                # one partition's points (often one neuron's) need not overlap the meshes or span
                # them: the units check ran once on a sample of the whole table before the tasks
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RoiScaleWarning)
                    inside[mesh] = _inside_mesh(roiset, pos, mesh)
            m |= inside[mesh]
        any_in |= m
        out.append(_count_keys(key[m], None if w is None else w[m]))
    if include_other:
        out.append(_count_keys(key[~any_in], None if w is None else w[~any_in]))
    return out


def _combine_neuropil_blocks(parts: list) -> list:
    """Sum the per-group pair counts of several partitions (exact integers: any partitioning, same result)."""
    out = []
    for g in range(len(parts[0])):
        keys = np.concatenate([p[g][0] for p in parts])
        cnts = np.concatenate([p[g][1] for p in parts])
        out.append(_count_keys(keys, cnts))
    return out


def _store_neuropil_groups(
    conn, neuron_annotations, neuropil_names, coordinates, position_column, weight_mode,
    cell_type_column, neuron_id_column, scope, include_other, rois, confidence, progress,
) -> list[tuple[str, _Rows | _PairRows | _DaskRows, _Annotations]]:  # fmt: skip
    """Neuropil groups of a store: crantpy's mesh rule when meshes are available, else ROI codes.

    With meshes (``rois=``, or the store's own: ``RoiSet.from_store``) every
    partition of the store tests each synapse's position (see
    :func:`_store_position_columns`) against every listed mesh, as the
    DataFrame paths do, and returns pair counts per neuropil; partitions are
    summed in a tree (integer counts: the same result for any chunk or
    partition size). A listed hierarchy group without a mesh of its own is
    the union of its descendants' meshes.

    Without meshes (a store whose ``rois.json`` has names only, or no
    positions) the store's one ROI code per synapse (``roi_post``) is used: a
    listed ROI counts every code of its subtree in the hierarchy, so two
    overlapping ROIs that are not parent and child count a synapse once.
    """
    from .._compute import compute, tree_reduce
    from ..compute import RowFilter

    if weight_mode == "column":
        raise ConnectomeDaskError("weight_mode='column' is not available for a Connectome (synapse counts only)")
    if coordinates != "nm":
        raise ConnectomeDaskError(
            "coordinates='pixels' applies to DataFrame input; a store's positions are nm (convert the meshes instead)"
        )
    roiset = _store_roiset(conn, rois)
    if roiset is not None and not conn.positions:
        if rois is not None:
            raise ConnectomeDaskError(f"store {conn.path} has no synapse positions to test against rois=")
        roiset = None
    if roiset is None:
        return _store_code_groups(conn, neuron_annotations, neuropil_names, cell_type_column, neuron_id_column,
                                  scope, include_other, confidence, progress)
    names = list(roiset.names)
    model = _roiset_model(roiset)
    names += [n for n in model.all_rois if n not in set(names)]
    wanted = _check_neuropils(neuropil_names, names)
    _log.info("Using %d neuropil mask(s): %s", len(wanted), wanted)
    df, idc, tyc = _store_annotations(conn, neuron_annotations, neuron_id_column, cell_type_column)
    ann = _Annotations(df, idc, tyc)
    body_ids = conn.neurons["bodyId"].to_numpy()
    universe = str_array(body_ids)
    ok = None
    if scope == "annotated_only":
        mask = ann.positions(universe) >= 0
        if not mask.all():
            ok = np.flatnonzero(mask)
    filt = RowFilter(conn, ok, ok, None, confidence)
    pos_cols = _store_position_columns(conn, position_column)
    tests = _mesh_tests(roiset, wanted)
    from dask import delayed
    from dask.base import tokenize

    used = list(dict.fromkeys(m for t in tests for m in t))
    if hasattr(roiset, "grid") and hasattr(roiset, "grid_key"):
        for mesh in used:
            roiset.grid([mesh])  # built once here, not in every task
        # named by the meshes' content hashes: dask need not tokenize (pickle) the grids
        rs = delayed(roiset, name="neuropil-rois-" + tokenize([roiset.grid_key([m]) for m in used]), traverse=False)
    else:
        rs = delayed(roiset, traverse=False)
    fl = delayed(filt, traverse=False)
    cols = list(dict.fromkeys(filt.columns(False) + list(pos_cols)))
    if conn.n_synapses and used:  # the units check of RoiSet.contains, once, on rows spread over the table
        rows = np.unique(np.linspace(0, conn.n_synapses - 1, min(conn.n_synapses, 4096)).astype(np.int64))
        sample = conn.take_synapses(rows, list(pos_cols))
        _inside_mesh(roiset, np.column_stack([np.asarray(sample[c], dtype=np.float64) for c in pos_cols]), used[0])
    parts = conn.map_partitions(_neuropil_block, cols, rs, tests, pos_cols, fl, conn.n_neurons, bool(include_other),
                                name="neuropil-pairs")
    (groups,) = compute(tree_reduce(parts, _combine_neuropil_blocks, name="neuropil-combine"),
                        progress=progress, desc="nested matrix: pairs by neuropil")
    labels = list(wanted) + (["other"] if include_other else [])
    n = np.int64(max(conn.n_neurons, 1))
    uint = _int_universe(body_ids, len(universe))
    out: list[tuple[str, _Rows | _PairRows | _DaskRows, _Annotations]] = []
    for label, (keys, cnt) in zip(labels, groups, strict=True):
        if label != "other":
            _log.info("Neuropil %s contains %d synapse(s)", label, int(cnt.sum()))
        if len(keys) == 0:
            _log.debug("Skipping neuropil %s because it contains no synapses", label)
            continue
        pairs = _Pairs(universe, keys // n, keys % n, cnt.astype(np.float64), cnt, universe_int=uint)
        out.append((label, _PairRows(pairs), ann))
    return out


def _store_code_groups(
    conn, neuron_annotations, neuropil_names, cell_type_column, neuron_id_column, scope, include_other,
    confidence, progress,
) -> list[tuple[str, _Rows | _PairRows | _DaskRows, _Annotations]]:  # fmt: skip
    """Neuropil groups of a store without meshes: its ROI codes (``roi_post``) and hierarchy."""
    from ..rois.model import RoiModel

    if "roi_post" not in conn.synapse_columns or not conn.roi_names:
        raise ConnectomeDaskError(
            f"store {conn.path} has no ROI meshes and no ROI codes (roi_post); run conn.assign_rois(...) "
            "first or pass rois="
        )
    model = RoiModel.of(conn)
    names = list(conn.roi_names) + [n for n in model.all_rois if n not in set(conn.roi_names)]
    wanted = _check_neuropils(neuropil_names, names)
    df, idc, tyc = _store_annotations(conn, neuron_annotations, neuron_id_column, cell_type_column)
    ann = _Annotations(df, idc, tyc)
    pairs, roi = _pairs_from_store(conn, ann, scope, by_roi=True, confidence=confidence, min_weight=1,
                                   progress=progress)
    out: list[tuple[str, _Rows | _PairRows | _DaskRows, _Annotations]] = []
    listed = np.zeros(0, dtype=np.int64)
    for n in wanted:
        codes = model.codes_for(n)
        listed = np.union1d(listed, codes)
        keep = np.isin(roi, codes)
        if keep.any():
            out.append((n, _PairRows(_merged(pairs.subset(keep))), ann))
    if include_other:
        keep = ~np.isin(roi, listed)
        if keep.any():
            out.append(("other", _PairRows(_merged(pairs.subset(keep))), ann))
    return out


def _merged(pairs: _Pairs) -> _Pairs:
    """One entry per (pre, post): a pair counted under several ROI codes of one neuropil is summed."""
    s, t, w, _ = _aggregate_codes(pairs.src, pairs.tgt, pairs.weight, len(pairs.universe))
    _, _, c, _ = _aggregate_codes(pairs.src, pairs.tgt, pairs.count.astype(np.float64) if pairs.count is not None
                                  else pairs.weight, len(pairs.universe))
    return _Pairs(pairs.universe, s, t, w, c.astype(np.int64), universe_int=pairs.universe_int)


def _check_neuropils(neuropil_names, available: Sequence[str]) -> list[str]:
    """The requested neuropil names (all by default), de-duplicated; unknown names raise ``ValueError``."""
    if neuropil_names is None:
        return list(available)
    if isinstance(neuropil_names, str):
        neuropil_names = [neuropil_names]
    bad = [n for n in neuropil_names if n not in available]
    if bad:
        raise ConnectomeDaskError(f"Invalid neuropil name(s): {bad}. Available: {list(available)}")
    return list(dict.fromkeys(neuropil_names))
