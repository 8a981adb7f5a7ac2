"""Aggregated neuron pairs from pandas / dask synapse tables, connectivity tables and stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from ..labels import str_array
from .axes import _Annotations
from .common import _is_connectome, _is_dask_frame, _require_columns

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

    def scoped(self, ann_pos: np.ndarray, scope: str) -> _Pairs:
        """Apply the annotation scope (present sets are filtered too)."""
        if scope == "all":
            return self
        ok = ann_pos >= 0
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


def _pairs_from_synapse_frame(
    df: pd.DataFrame, pre_col: str, post_col: str, weight_mode: str, weight_column: str | None
) -> _Pairs:
    """Pairs from a pandas synapse table (rows with the same ``id`` counted once unless summing a column)."""
    _require_columns(df, [pre_col, post_col] + ([weight_column] if weight_column else []), "synapses")
    if weight_mode != "column" and "id" in df.columns:
        df = df.drop_duplicates("id")
    src, tgt, universe, uint = _encode_pair_ids(df[pre_col], df[post_col])
    if weight_mode == "column":
        try:
            w = pd.to_numeric(df[weight_column], errors="raise").to_numpy(dtype=np.float64, na_value=0.0)
        except (TypeError, ValueError) as e:
            raise ValueError(f"weight_column {weight_column!r} must be numeric ({e})") from None
    else:
        w = np.ones(len(df))
    keep = (src >= 0) & (tgt >= 0)
    s, t, ww, c = _aggregate_codes(src[keep], tgt[keep], w[keep], len(universe))
    return _Pairs(universe, s, t, ww, c, universe_int=uint)


def _pairs_from_dask(ddf, pre_col: str, post_col: str, weight_mode: str, weight_column: str | None, progress) -> _Pairs:
    """Pairs from a dask synapse table: per-pair counts (or column sums) computed out of core."""
    from .._compute import compute

    _require_columns(ddf, [pre_col, post_col] + ([weight_column] if weight_column else []), "synapses")
    if weight_mode != "column" and "id" in ddf.columns:
        ddf = ddf.drop_duplicates(subset=["id"])
    g = ddf.groupby([pre_col, post_col])
    cnt = g.size()
    if weight_mode == "column":
        (agg, counts) = compute(g[weight_column].sum(), cnt, progress=progress, desc="nested matrix: pair sums")
        frame = pd.DataFrame({"w": agg, "n": counts.reindex(agg.index)}).reset_index()
    else:
        (counts,) = compute(cnt, progress=progress, desc="nested matrix: pair counts")
        frame = counts.rename("n").reset_index()
        frame["w"] = frame["n"]
    src, tgt, universe, uint = _encode_pair_ids(frame[pre_col], frame[post_col])
    keep = (src >= 0) & (tgt >= 0)
    s, t, w, _ = _aggregate_codes(src[keep], tgt[keep], frame["w"].to_numpy(np.float64)[keep], len(universe))
    _, _, n, _ = _aggregate_codes(src[keep], tgt[keep], frame["n"].to_numpy(np.float64)[keep], len(universe))
    return _Pairs(universe, s, t, w, n.astype(np.int64), universe_int=uint)


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
        raise ValueError(
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
                raise ValueError(
                    f"connectivity weight column {wcol!r} must be numeric; e.g. row {bad.index[0]!r}: {bad.iloc[0]!r}"
                ) from None
        src, tgt, universe, uint = _encode_pair_ids(df[a], df[b])
        keep = (src >= 0) & (tgt >= 0)
        s, t, ww, c = _aggregate_codes(src[keep], tgt[keep], w[keep], len(universe))
        return _Pairs(universe, s, t, ww, c, universe_int=uint)
    # adjacency matrix: index = presynaptic IDs, columns = postsynaptic IDs
    nonnum = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if nonnum:
        raise ValueError(
            "connections_df is neither an edge list (columns pre/post[/weight], source/target[/weight|n_syn] "
            "or type.from/type.to[/weight]) nor a numeric adjacency matrix: non-numeric column(s) "
            f"{nonnum[:5]}"
        )
    rows = pd.Series(np.asarray(df.index, dtype=object))
    cols_s = pd.Series(np.asarray(df.columns, dtype=object))
    r_codes, c_codes, universe, uint = _encode_pair_ids(rows, cols_s)
    vals = df.to_numpy(dtype=np.float64, na_value=0.0)
    rr, cc = np.nonzero(vals)
    keep = (r_codes[rr] >= 0) & (c_codes[cc] >= 0)
    rr, cc = rr[keep], cc[keep]
    s, t, w, c = _aggregate_codes(r_codes[rr], c_codes[cc], vals[rr, cc], len(universe))
    return _Pairs(universe, s, t, w, c, present_src=r_codes[r_codes >= 0], present_tgt=c_codes[c_codes >= 0],
                  universe_int=uint)


def _store_annotations(conn, neuron_annotations, neuron_id_column, cell_type_column) -> tuple[pd.DataFrame, str, str]:
    """The annotation table and its ID / type columns: the store's neuron table unless one is given."""
    if neuron_annotations is None:
        return conn.neurons, neuron_id_column or "bodyId", cell_type_column or "type"
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


def _synapse_pairs(
    source, neuron_annotations, pre_col, post_col, weight_mode, weight_column,
    cell_type_column, neuron_id_column, scope, confidence, min_weight, progress,
) -> tuple[_Pairs, _Annotations]:  # fmt: skip
    """Pairs and resolved annotations for ``from_synapses`` from any supported source."""
    if int(min_weight) < 1:
        raise ValueError(f"min_weight must be >= 1, got {min_weight!r}")
    if _is_connectome(source):
        if weight_mode == "column":
            raise ValueError("weight_mode='column' is not available for a Connectome (synapse counts only)")
        df, idc, tyc = _store_annotations(source, neuron_annotations, neuron_id_column, cell_type_column)
        ann = _Annotations(df, idc, tyc)
        pairs, _ = _pairs_from_store(source, ann, scope, confidence=confidence, min_weight=min_weight, progress=progress)
        return pairs, ann
    if confidence is not None:
        raise ValueError("confidence= applies to a Connectome only; filter the synapse table instead")
    if neuron_annotations is None:
        raise ValueError("neuron_annotations is required for DataFrame input")
    ann = _Annotations(neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type")
    if _is_dask_frame(source):
        pairs = _pairs_from_dask(source, pre_col, post_col, weight_mode, weight_column, progress)
    elif isinstance(source, pd.DataFrame):
        pairs = _pairs_from_synapse_frame(source, pre_col, post_col, weight_mode, weight_column)
    else:
        raise TypeError(f"synapses must be a pandas/dask DataFrame or a Connectome, got {type(source).__name__}")
    if min_weight > 1:
        pairs = pairs.subset(pairs.count >= min_weight)
    return pairs, ann


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
            raise ValueError(f"position_column must be one column of [x, y, z] or three column names, got {cols}")
        _require_columns(df, cols, "synapses")
        pos = df[cols].to_numpy(dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions in {position_column!r} must be [x, y, z] triples, got shape {pos.shape}")
    return pos


def _load_roiset(rois, voxel_size):
    """``rois`` as a :class:`~connectome_dask.rois.RoiSet` (a RoiSet, or a folder of meshes)."""
    if rois is None:
        raise ValueError("rois= (a connectome_dask.rois.RoiSet or a folder of meshes) is required for DataFrame input")
    if hasattr(rois, "assign") and hasattr(rois, "names"):
        return rois
    from ..rois import RoiSet

    return RoiSet.from_directory(rois)


def _neuropil_groups(
    source, neuron_annotations, neuropil_names, coordinates, position_column, pre_col, post_col,
    weight_mode, weight_column, cell_type_column, neuron_id_column, scope, include_other,
    voxel_offset, rois, voxel_size, confidence, min_weight, progress,
) -> list[tuple[str, _Pairs, _Annotations]]:  # fmt: skip
    """(name, pairs, annotations) per neuropil with synapses, in ROI order then "other"."""
    if int(min_weight) < 1:
        raise ValueError(f"min_weight must be >= 1, got {min_weight!r}")
    if _is_connectome(source):
        if weight_mode == "column":
            raise ValueError("weight_mode='column' is not available for a Connectome (synapse counts only)")
        if "roi_post" not in source.synapse_columns or not source.roi_names:
            raise ValueError(
                f"store {source.path} has no ROI codes (roi_post); run conn.assign_rois(...) first"
            )
        names = source.roi_names
        wanted = _check_neuropils(neuropil_names, names)
        df, idc, tyc = _store_annotations(source, neuron_annotations, neuron_id_column, cell_type_column)
        ann = _Annotations(df, idc, tyc)
        pairs, roi = _pairs_from_store(
            source, ann, scope, by_roi=True, confidence=confidence, min_weight=1, progress=progress
        )
        code_of = {n: i for i, n in enumerate(names)}
        out = []
        listed = np.array([code_of[n] for n in wanted], dtype=np.int64)
        for n in wanted:
            keep = roi == code_of[n]
            if min_weight > 1:
                keep &= pairs.count >= min_weight
            if keep.any():
                out.append((n, pairs.subset(keep), ann))
        if include_other:
            keep = ~np.isin(roi, listed)
            sub = pairs.subset(keep)
            if keep.any():
                # a pair can fall in several unlisted ROIs: merge them into one "other" pair
                s, t, w, _ = _aggregate_codes(sub.src, sub.tgt, sub.weight, len(sub.universe))
                other = _Pairs(sub.universe, s, t, w, w.astype(np.int64), universe_int=sub.universe_int)
                if min_weight > 1:
                    other = other.subset(other.count >= min_weight)
                if len(other.src):
                    out.append(("other", other, ann))
        return out
    if confidence is not None:
        raise ValueError("confidence= applies to a Connectome only; filter the synapse table instead")
    if neuron_annotations is None:
        raise ValueError("neuron_annotations is required for DataFrame input")
    if _is_dask_frame(source):
        raise TypeError(
            "from_synapses_by_neuropil takes a pandas DataFrame or a Connectome; ingest dask tables into a "
            "store and run conn.assign_rois(...) for out-of-core ROI matrices"
        )
    if not isinstance(source, pd.DataFrame):
        raise TypeError(f"synapses must be a pandas DataFrame or a Connectome, got {type(source).__name__}")
    if coordinates == "pixels" and voxel_size is None:
        raise ValueError("coordinates='pixels' needs voxel_size=(x, y, z) in nm")
    _require_columns(source, [pre_col, post_col] + ([weight_column] if weight_column else []), "synapses")
    pos_ok = _positions(source.iloc[:0], position_column) if len(source) == 0 else None
    del pos_ok
    roiset = _load_roiset(rois, voxel_size)
    names = list(roiset.names)
    wanted = _check_neuropils(neuropil_names, names)
    ann = _Annotations(neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type")
    if len(source) == 0:
        return []
    df = source
    if scope == "annotated_only":
        pre_s = str_array(df[pre_col])
        post_s = str_array(df[post_col])
        ok = (ann.index.get_indexer(pre_s) >= 0) & (ann.index.get_indexer(post_s) >= 0)
        df = df.loc[ok]
        if len(df) == 0:
            return []
    pos = _positions(df, position_column)
    if coordinates == "pixels":
        if voxel_offset is not None:
            pos = pos + np.asarray(voxel_offset, dtype=np.float64)
        pos = pos * np.asarray(voxel_size, dtype=np.float64)
    codes = np.asarray(roiset.assign(pos))
    if codes.shape != (len(df),):
        raise ValueError(f"RoiSet.assign returned shape {codes.shape}, expected ({len(df)},)")
    lookup = {n: i for i, n in enumerate(names)}
    listed = np.array([lookup[n] for n in wanted], dtype=np.int64)
    masks = [(n, codes == lookup[n]) for n in wanted]
    if include_other:
        masks.append(("other", ~np.isin(codes, listed)))
    out = []
    for n, mask in masks:
        if not mask.any():
            continue
        p = _pairs_from_synapse_frame(df.loc[mask], pre_col, post_col, weight_mode, weight_column)
        if min_weight > 1:
            p = p.subset(p.count >= min_weight)
        out.append((n, p, ann))
    return out


def _check_neuropils(neuropil_names, available: Sequence[str]) -> list[str]:
    """The requested neuropil names (all by default), de-duplicated; unknown names raise ``ValueError``."""
    if neuropil_names is None:
        return list(available)
    if isinstance(neuropil_names, str):
        neuropil_names = [neuropil_names]
    bad = [n for n in neuropil_names if n not in available]
    if bad:
        raise ValueError(f"Invalid neuropil name(s): {bad}. Available: {list(available)}")
    return list(dict.fromkeys(neuropil_names))
