"""Nested (cell-type ordered) connectivity matrices, from pandas tables up to the whole brain.

This module mirrors crantpy's ``crantpy.queries`` nested connectivity
matrices (:class:`NestedMatrix`, :class:`DirectedNestedMatrix`,
:class:`NeuropilCollection`, :data:`All`): same constructors, arguments,
ordering rules and weighting semantics, so notebooks port by changing an
import. Beyond crantpy, every constructor also accepts a
:class:`~connectome_dask.store.Connectome` (or a dask DataFrame of synapses):
pair counts are aggregated out of core by :mod:`connectome_dask.aggregate`
and the neuron-level matrix is kept as a sparse matrix, never as a dense
neuron x neuron array.

Semantics (crantpy's)
---------------------
* Weights: ``"count"`` synapses per (pre, post) pair; ``"column"`` sum of a
  synapse column per pair; ``"relative_outgoing"`` counts divided by the
  presynaptic neuron's total over the pairs kept; ``"relative_incoming"``
  likewise per postsynaptic neuron. Synapse rows with the same ``id`` are
  counted once.
* ``annotation_scope="annotated_only"`` keeps only connections whose two
  neurons both have an annotation row; ``"all"`` keeps every connection and
  appends neurons without annotation rows after the typed blocks.
  Annotated neurons whose type is missing are appended too (before the
  unannotated ones), each group sorted by ID string.
* Type blocks follow a natural sort (leading letters, then the number, then
  the label: ``ER2 < ER10 < ER``), or ``type_order``, whose entries pull in
  the exact label or every label with that letter prefix, in natural order;
  the remaining types follow. Neurons within a type keep annotation row
  order, except ``"EPG/PEG"``: ordered by EB column (R1, L8, R2, L7, ...)
  read from ``cell_instance`` / ``cell_subtype`` (/ ``instance``).
* ``mean_type_matrix`` averages over every neuron pair of the block,
  including zeros; ``get_relative_weights`` divides each row by its sum
  (rows summing to 0 stay 0).

Examples
--------
>>> import pandas as pd
>>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2, 2], "post_pt_root_id": [3, 4, 3, 3]})
>>> ann = pd.DataFrame({"root_id": [1, 2, 3, 4], "cell_type": ["KC", "KC", "MBON", "MBON"]})
>>> m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
>>> m.ordered_neurons
('1', '2', '3', '4')
>>> m.sum_type_matrix.loc["KC", "MBON"]
np.float64(4.0)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .aggregate import DenseMatrixTooLarge, check_dense, max_dense_bytes
from .labels import is_missing as _is_missing
from .labels import natural_key as _natural_key  # noqa: F401  (old private name)
from .labels import natural_type_order
from .labels import str_array as _str_array
from .labels import str_value as _str_value

__all__ = [
    "All",
    "DenseMatrixTooLarge",
    "DirectedNestedMatrix",
    "NestedMatrix",
    "NeuropilCollection",
    "WITHIN_TYPE_ORDER_RULES",
    "max_dense_bytes",
    "natural_type_order",
    "open_dataarray",
    "open_matrix",
    "plot_type_heatmap",
    "save_dataarray",
]

WeightMode = Literal["relative_outgoing", "relative_incoming", "count", "column"]
AnnotationScope = Literal["annotated_only", "all"]
NormalizationScope = Literal["selected", "all"]

_WEIGHT_MODES = ("relative_outgoing", "relative_incoming", "count", "column")
_SCOPES = ("annotated_only", "all")
_NORM_SCOPES = ("selected", "all")
_LEVELS = ("neuron", "type_mean", "type_sum")
_MATRIX_FORMAT = "connectome-dask-matrix"
_MATRIX_FORMAT_VERSION = 1

#: EB column order used for EPG/PEG neurons (crantpy's order).
EB_COLUMN_ORDER = ("R1", "L8", "R2", "L7", "R3", "L6", "R4", "L5", "R5", "L4", "R6", "L3", "R7", "L2", "R8", "L1")

#: Types whose neurons are ordered by a column label instead of annotation
#: order: type name -> (annotation columns to read, in priority order; rank of labels).
WITHIN_TYPE_ORDER_RULES: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {
    "EPG/PEG": (("cell_instance", "cell_subtype", "instance"), {c: i for i, c in enumerate(EB_COLUMN_ORDER)}),
}
_COLUMN_LABEL = re.compile(r"([LR]\d+)\s*$")


# ----------------------------------------------------------------------------- selectors


class _AllSelector:
    """Select every neuropil of a :class:`NeuropilCollection`, optionally minus some.

    Examples
    --------
    >>> All
    All
    >>> All.minus("EB", "FB").resolve(["EB", "FB", "PB"])
    ['PB']
    """

    def __init__(self, exclude: frozenset[str] = frozenset()) -> None:
        self._exclude = frozenset(exclude)

    def minus(self, *names: str) -> _AllSelector:
        """Return a selector that also excludes ``names``."""
        return _AllSelector(self._exclude | frozenset(names))

    def resolve(self, available: Iterable[str]) -> list[str]:
        """Names of ``available`` not excluded, in their order."""
        return [n for n in available if n not in self._exclude]

    def __repr__(self) -> str:
        if self._exclude:
            return f"All.minus({', '.join(repr(n) for n in sorted(self._exclude))})"
        return "All"


All = _AllSelector()


class NeuropilCollection(dict):
    """Mapping of neuropil (ROI) name to a nested matrix, with plotting shortcuts.

    Examples
    --------
    >>> c = NeuropilCollection()
    >>> c
    NeuropilCollection([])
    """

    def plot(self, name: str | _AllSelector, **kwargs: Any):
        """Plot one neuropil's matrix (``name``) or several (``All`` / ``All.minus(...)``).

        Returns ``(fig, ax)`` for one name, a dict ``{name: (fig, ax)}`` for a selector.

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> c = NestedMatrix.from_synapses_by_neuropil(conn, neuropil_names=["MB_CA_R"])
        >>> fig, ax = c.plot("MB_CA_R")
        >>> figs = c.plot(All.minus("other"))
        >>> list(figs)
        ['MB_CA_R']
        >>> plt.close("all")
        """
        if isinstance(name, _AllSelector):
            return {n: self[n].plot(**kwargs) for n in name.resolve(list(self.keys()))}
        if name not in self:
            raise KeyError(f"no neuropil named {name!r}; available: {sorted(self)}")
        return self[name].plot(**kwargs)

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"No neuropil named {name!r}") from None

    def __repr__(self) -> str:
        return f"NeuropilCollection({list(self.keys())})"


# ----------------------------------------------------------------------------- helpers


def _check_dense(nrows: int, ncols: int, what: str, hint: str) -> None:
    check_dense((nrows, ncols), 8, what, f"{hint}, or raise the limit.")


def _validate_common(weight_mode: str | None, weight_column: str | None, annotation_scope: str) -> None:
    if annotation_scope not in _SCOPES:
        raise ValueError(f"annotation_scope must be one of {list(_SCOPES)}, got {annotation_scope!r}")
    if weight_mode is None:
        return
    if weight_mode not in _WEIGHT_MODES:
        raise ValueError(f"weight_mode must be one of {list(_WEIGHT_MODES)}, got {weight_mode!r}")
    if weight_mode == "column":
        if not weight_column:
            raise ValueError("weight_column must be provided when weight_mode='column'")
    elif weight_column is not None:
        raise ValueError("weight_column can only be provided when weight_mode='column'")


def _is_connectome(obj: Any) -> bool:
    from .store import Connectome

    return isinstance(obj, Connectome)


def _is_dask_frame(obj: Any) -> bool:
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, dd.DataFrame)


def _require_columns(df: Any, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what} has no column(s) {missing}; available: {list(df.columns)[:20]}")


# ----------------------------------------------------------------------------- annotations


class _Annotations:
    """Annotation table resolved once: one row per ID (first seen, typed rows preferred)."""

    def __init__(self, df: pd.DataFrame, id_col: str, type_col: str) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"neuron_annotations must be a pandas DataFrame, got {type(df).__name__}")
        _require_columns(df, [id_col, type_col], "neuron_annotations")
        ids = _str_array(df[id_col])
        types = _str_array(df[type_col])
        keep = np.array([i is not None for i in ids], dtype=bool)
        order = np.arange(len(df))
        tmp = pd.DataFrame({"id": ids[keep], "row": order[keep], "typed": np.array([t is not None for t in types[keep]])})
        tmp["first"] = tmp.groupby("id", sort=False)["row"].transform("min")
        tmp = tmp.sort_values(["first", "typed", "row"], ascending=[True, False, True], kind="stable")
        tmp = tmp.drop_duplicates("id", keep="first")
        rows = tmp["row"].to_numpy()
        self.ids = ids[rows]
        self.types = types[rows]
        self.index = pd.Index(self.ids)
        inst_col = next((c for c in ("instance", "cell_instance") if c in df.columns), None)
        self.instances = _str_array(df[inst_col])[rows] if inst_col else None
        self._label_cols = {
            c: _str_array(df[c])[rows]
            for rule in WITHIN_TYPE_ORDER_RULES.values()
            for c in rule[0]
            if c in df.columns
        }

    def positions(self, universe: np.ndarray) -> np.ndarray:
        """Annotation row of each universe ID (-1 = not annotated)."""
        return self.index.get_indexer(universe)

    def column_rank(self, rows: np.ndarray, type_name: str) -> np.ndarray | None:
        rule = WITHIN_TYPE_ORDER_RULES.get(type_name)
        if rule is None:
            return None
        cols, rank = rule
        out = np.full(len(rows), np.inf)
        for c in cols:
            vals = self._label_cols.get(c)
            if vals is None:
                continue
            for k, r in enumerate(rows):
                if np.isfinite(out[k]) or vals[r] is None:
                    continue
                m = _COLUMN_LABEL.search(str(vals[r]).strip())
                if m and m.group(1) in rank:
                    out[k] = rank[m.group(1)]
        return out


class _Axis:
    """One ordered matrix axis: universe codes, IDs, types, boundaries."""

    __slots__ = ("codes", "ids", "types", "instances", "boundaries")

    def __init__(self, codes, ids, types, instances, boundaries) -> None:
        self.codes = np.asarray(codes, dtype=np.int64)
        self.ids = np.asarray(ids, dtype=object)
        self.types = np.asarray(types, dtype=object)
        self.instances = np.asarray(instances, dtype=object)
        self.boundaries = dict(boundaries)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_typed(self) -> int:
        return max((e for _, e in self.boundaries.values()), default=0)

    @property
    def type_sizes(self) -> np.ndarray:
        return np.array([e - s for s, e in self.boundaries.values()], dtype=np.int64)

    def neuron_to_type(self) -> dict[str, str]:
        """Neuron ID -> type of the typed neurons (the first ``n_typed`` of the axis)."""
        n = self.n_typed
        return dict(zip(self.ids[:n].tolist(), self.types[:n].tolist(), strict=True))

    def indicator(self) -> sp.csr_matrix:
        """Sparse (n_neurons, n_types) 0/1 matrix of typed neurons."""
        n = len(self)
        sizes = self.type_sizes
        rows = np.arange(self.n_typed, dtype=np.int64)
        cols = np.repeat(np.arange(len(sizes)), sizes)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(sizes)))

    def body_ids(self) -> np.ndarray:
        """IDs as int64 when all are integers, else as str."""
        try:
            ints = np.array([int(i) for i in self.ids], dtype=np.int64)
        except (ValueError, OverflowError):
            return self.ids.astype(str)
        if all(str(v) == i for v, i in zip(ints[:1000], self.ids[:1000], strict=False)):
            return ints
        return self.ids.astype(str)

    @classmethod
    def build(
        cls,
        codes: np.ndarray,
        universe: np.ndarray,
        ann: _Annotations,
        ann_pos: np.ndarray,
        type_order: Sequence[Any] | None,
    ) -> _Axis:
        """crantpy ordering of the neurons ``codes`` (unique codes into ``universe``)."""
        codes = np.unique(np.asarray(codes, dtype=np.int64))
        pos = ann_pos[codes]
        have = pos >= 0
        rel_codes, rel_pos = codes[have], pos[have]
        rtypes = ann.types[rel_pos]
        typed = np.array([t is not None for t in rtypes], dtype=bool)
        t_codes, t_pos, t_types = rel_codes[typed], rel_pos[typed], rtypes[typed]
        sorted_types = natural_type_order(set(t_types.tolist()), type_order)
        trank = {t: i for i, t in enumerate(sorted_types)}
        type_rank = np.array([trank[t] for t in t_types], dtype=np.int64)
        within = np.zeros(len(t_codes))
        for tname in WITHIN_TYPE_ORDER_RULES:
            sel = np.flatnonzero(t_types == tname) if len(t_types) else np.zeros(0, dtype=np.int64)
            if len(sel):
                r = ann.column_rank(t_pos[sel], tname)
                within[sel] = r
        order = np.lexsort((t_pos, within, type_rank))
        t_codes, t_pos, t_types, type_rank = t_codes[order], t_pos[order], t_types[order], type_rank[order]
        boundaries: dict[str, tuple[int, int]] = {}
        if len(type_rank):
            starts = np.flatnonzero(np.r_[True, type_rank[1:] != type_rank[:-1]])
            ends = np.r_[starts[1:], len(type_rank)]
            for s, e in zip(starts, ends, strict=True):
                boundaries[str(t_types[s])] = (int(s), int(e))
        untyped = rel_codes[~typed]
        untyped = untyped[np.argsort(universe[untyped].astype(str), kind="stable")]
        missing = codes[~have]
        missing = missing[np.argsort(universe[missing].astype(str), kind="stable")]
        all_codes = np.concatenate([t_codes, untyped, missing]).astype(np.int64)
        pos_all = ann_pos[all_codes]
        types = np.empty(len(all_codes), dtype=object)
        types[: len(t_codes)] = t_types
        types[len(t_codes) :] = None
        inst = np.empty(len(all_codes), dtype=object)
        inst[:] = None
        if ann.instances is not None:
            ok = pos_all >= 0
            inst[ok] = ann.instances[pos_all[ok]]
        return cls(all_codes, universe[all_codes], types, inst, boundaries)


def _selector_set(values: Any) -> set[str] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return set() if _is_missing(values) else {_str_value(values)}
    return {_str_value(v) for v in values if not _is_missing(v)}


def _select_codes(
    available: np.ndarray, universe: np.ndarray, ann: _Annotations, ann_pos: np.ndarray, types: Any, neurons: Any
) -> np.ndarray:
    """Union of type- and neuron-selected codes among ``available`` (None, None = all)."""
    tset, nset = _selector_set(types), _selector_set(neurons)
    available = np.unique(available)
    if tset is None and nset is None:
        return available
    keep = np.zeros(len(available), dtype=bool)
    if tset is not None:
        pos = ann_pos[available]
        t = np.empty(len(available), dtype=object)
        t[:] = None
        t[pos >= 0] = ann.types[pos[pos >= 0]]
        keep |= np.array([x is not None and x in tset for x in t], dtype=bool)
    if nset is not None:
        keep |= np.isin(universe[available].astype(str), np.array(sorted(nset), dtype=str))
    return available[keep]


# ----------------------------------------------------------------------------- edges


class _Pairs:
    """Aggregated connections: codes into ``universe`` plus weights and synapse counts."""

    def __init__(self, universe, src, tgt, weight, count=None, present_src=None, present_tgt=None) -> None:
        self.universe = np.asarray(universe, dtype=object)
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


def _encode_pair_ids(pre: pd.Series, post: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes of pre/post IDs into one universe of normalised ID strings (-1 = missing)."""
    both = pd.concat([pre.reset_index(drop=True), post.reset_index(drop=True)], ignore_index=True)
    codes, uniques = pd.factorize(both, use_na_sentinel=True)
    su = _str_array(pd.Series(np.asarray(uniques, dtype=object)) if len(uniques) else pd.Series([], dtype=object))
    # merge values that normalise to the same string (1, 1.0, "1")
    ucodes, universe = pd.factorize(su)
    codes = np.where(codes >= 0, ucodes[np.maximum(codes, 0)] if len(ucodes) else -1, -1).astype(np.int64)
    n = len(pre)
    return codes[:n], codes[n:], np.asarray(universe, dtype=object)


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
    _require_columns(df, [pre_col, post_col] + ([weight_column] if weight_column else []), "synapses")
    if weight_mode != "column" and "id" in df.columns:
        df = df.drop_duplicates("id")
    src, tgt, universe = _encode_pair_ids(df[pre_col], df[post_col])
    if weight_mode == "column":
        try:
            w = pd.to_numeric(df[weight_column], errors="raise").to_numpy(dtype=np.float64, na_value=0.0)
        except (TypeError, ValueError) as e:
            raise ValueError(f"weight_column {weight_column!r} must be numeric ({e})") from None
    else:
        w = np.ones(len(df))
    keep = (src >= 0) & (tgt >= 0)
    s, t, ww, c = _aggregate_codes(src[keep], tgt[keep], w[keep], len(universe))
    return _Pairs(universe, s, t, ww, c)


def _pairs_from_dask(ddf, pre_col: str, post_col: str, weight_mode: str, weight_column: str | None, progress) -> _Pairs:
    from ._compute import compute

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
    src, tgt, universe = _encode_pair_ids(frame[pre_col], frame[post_col])
    keep = (src >= 0) & (tgt >= 0)
    s, t, w, _ = _aggregate_codes(src[keep], tgt[keep], frame["w"].to_numpy(np.float64)[keep], len(universe))
    _, _, n, _ = _aggregate_codes(src[keep], tgt[keep], frame["n"].to_numpy(np.float64)[keep], len(universe))
    return _Pairs(universe, s, t, w, n.astype(np.int64))


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
        src, tgt, universe = _encode_pair_ids(df[a], df[b])
        keep = (src >= 0) & (tgt >= 0)
        s, t, ww, c = _aggregate_codes(src[keep], tgt[keep], w[keep], len(universe))
        return _Pairs(universe, s, t, ww, c)
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
    r_codes, c_codes, universe = _encode_pair_ids(rows, cols_s)
    vals = df.to_numpy(dtype=np.float64, na_value=0.0)
    rr, cc = np.nonzero(vals)
    keep = (r_codes[rr] >= 0) & (c_codes[cc] >= 0)
    rr, cc = rr[keep], cc[keep]
    s, t, w, c = _aggregate_codes(r_codes[rr], c_codes[cc], vals[rr, cc], len(universe))
    return _Pairs(universe, s, t, w, c, present_src=r_codes[r_codes >= 0], present_tgt=c_codes[c_codes >= 0])


def _store_annotations(conn, neuron_annotations, neuron_id_column, cell_type_column) -> tuple[pd.DataFrame, str, str]:
    if neuron_annotations is None:
        return conn.neurons, neuron_id_column or "bodyId", cell_type_column or "type"
    return neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type"


def _pairs_from_store(
    conn, ann: _Annotations, scope: str, *, by_roi: bool = False, rois=None, confidence=None, min_weight=1, progress=None
) -> tuple[_Pairs, np.ndarray | None]:
    """Pair counts from a store (dense indices are the universe codes)."""
    from .aggregate import pair_counts

    universe = _str_array(conn.neurons["bodyId"])
    pre = post = None
    if scope == "annotated_only":
        ok = ann.positions(universe) >= 0  # a boolean mask over the store's neurons
        if not ok.all():
            pre = post = ok
    df = pair_counts(
        conn, pre=pre, post=post, rois=rois, by_roi=by_roi, confidence=confidence, min_weight=min_weight, progress=progress
    )
    w = df["weight"].to_numpy()
    pairs = _Pairs(universe, df["pre"].to_numpy(), df["post"].to_numpy(), w.astype(np.float64), w.astype(np.int64))
    roi = df["roi"].to_numpy() if by_roi else None
    return pairs, roi


def _provenance(source: Any, **kw: Any) -> dict:
    out: dict[str, Any] = {}
    if _is_connectome(source):
        out["dataset"] = source.meta.get("name")
        out["version"] = str(source.meta.get("version"))
        out["store"] = str(source.path)
        out["source"] = "connectome store"
    elif _is_dask_frame(source):
        out["source"] = "dask DataFrame"
    else:
        out["source"] = "pandas DataFrame"
    for k, v in kw.items():
        if v is None or isinstance(v, str | int | float | bool):
            out[k] = v
        elif isinstance(v, np.integer | np.floating):
            out[k] = v.item()
        else:
            out[k] = json.loads(json.dumps(list(v) if isinstance(v, set | tuple) else v, default=str))
    return out


# ----------------------------------------------------------------------------- base class


class _NestedBase:
    """Shared storage: a sparse (rows x cols) matrix and two ordered axes."""

    _data: sp.csr_matrix
    _src: _Axis
    _tgt: _Axis
    _attrs: dict

    def _init_parts(self, data: sp.spmatrix, src: _Axis, tgt: _Axis, attrs: Mapping[str, Any]) -> None:
        data = sp.csr_matrix(data, dtype=np.float64)
        data.sum_duplicates()
        data.eliminate_zeros()
        for a in (data.data, data.indices, data.indptr):
            a.setflags(write=False)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_src", src)
        object.__setattr__(self, "_tgt", tgt)
        object.__setattr__(self, "_attrs", json.loads(json.dumps(dict(attrs))))
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable; build a new one instead of setting {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    # -- raw access
    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the neuron-level matrix."""
        return self._data.shape

    @property
    def nnz(self) -> int:
        """Number of non-zero neuron-level entries."""
        return int(self._data.nnz)

    @property
    def attrs(self) -> Mapping[str, Any]:
        """Provenance (dataset, version, weight_mode, scopes, thresholds), read-only."""
        return MappingProxyType(self._attrs)

    def to_scipy(self) -> sp.csr_matrix:
        """The neuron-level matrix as a (read-only) ``scipy.sparse.csr_matrix`` in axis order."""
        return self._data

    # -- dense views
    @cached_property
    def _dense(self) -> np.ndarray:
        _check_dense(*self.shape, f"{type(self).__name__}.matrix", "Use .to_xarray() (sparse.COO) or .to_scipy()")
        a = self._data.toarray()
        a.setflags(write=False)
        return a

    @property
    def matrix(self) -> pd.DataFrame:
        """Neuron-level matrix as a read-only pandas DataFrame (rows pre, columns post).

        Raises :class:`DenseMatrixTooLarge` when the dense frame would exceed
        ``connectome_dask.max_dense_bytes``; use :meth:`to_xarray` then.
        """
        return pd.DataFrame(
            self._dense, index=pd.Index(list(self._src.ids)), columns=pd.Index(list(self._tgt.ids)), copy=False
        )

    @cached_property
    def _type_sum(self) -> np.ndarray:
        rs, cs = self._src.indicator(), self._tgt.indicator()
        _check_dense(rs.shape[1], cs.shape[1], "type-level matrix", "Select fewer types")
        a = np.asarray((rs.T @ self._data @ cs).toarray(), dtype=np.float64)
        a.setflags(write=False)
        return a

    @cached_property
    def _type_mean(self) -> np.ndarray:
        sizes = np.outer(self._src.type_sizes, self._tgt.type_sizes).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(sizes > 0, self._type_sum / np.where(sizes > 0, sizes, 1), 0.0)
        a.setflags(write=False)
        return a

    def _type_frame(self, a: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            a, index=pd.Index(list(self._src.boundaries)), columns=pd.Index(list(self._tgt.boundaries)), copy=False
        )

    @property
    def sum_type_matrix(self) -> pd.DataFrame:
        """Type x type matrix: sum of all neuron weights in each block (read-only, cached)."""
        return self._type_frame(self._type_sum)

    @property
    def mean_type_matrix(self) -> pd.DataFrame:
        """Type x type matrix: mean weight over every neuron pair of each block, zeros included."""
        return self._type_frame(self._type_mean)

    def _relative_sparse(self) -> sp.csr_matrix:
        rs = np.asarray(self._data.sum(axis=1)).ravel()
        rs = np.where(rs == 0, 1.0, rs)
        return sp.csr_matrix(sp.diags(1.0 / rs) @ self._data)

    def get_relative_weights(self, by_type: bool = False) -> pd.DataFrame:
        """Each row divided by its sum (rows summing to 0 stay 0).

        Parameters
        ----------
        by_type
            Normalise :attr:`sum_type_matrix` instead of the neuron-level matrix.

        Returns
        -------
        pandas.DataFrame
            For whole-brain neuron-level matrices use ``to_xarray(relative=True)``.
        """
        if by_type:
            a = self._type_sum
            rs = a.sum(axis=1, keepdims=True)
            return self._type_frame(a / np.where(rs == 0, 1.0, rs))
        _check_dense(*self.shape, "get_relative_weights()", "Use .to_xarray(relative=True) (sparse.COO)")
        return pd.DataFrame(
            self._relative_sparse().toarray(),
            index=pd.Index(list(self._src.ids)),
            columns=pd.Index(list(self._tgt.ids)),
        )

    # -- xarray
    def to_xarray(self, level: str = "neuron", relative: bool = False):
        """Labelled matrix as an ``xarray.DataArray`` with dims ``("pre", "post")``.

        Parameters
        ----------
        level
            ``"neuron"`` (data ``sparse.COO``; index coords ``pre``/``post`` =
            body IDs, plus ``bodyId_pre``, ``type_pre``, ``instance_pre`` and
            the same for ``post``, as :func:`connectome_dask.aggregate.adjacency`),
            ``"type_sum"`` or ``"type_mean"`` (dense numpy; index coords = type
            names, plus ``type_*`` and ``n_neurons_*``).
        relative
            Row-normalise first (as :meth:`get_relative_weights`).

        Returns
        -------
        xarray.DataArray
            Provenance in ``attrs`` (JSON-able).
        """
        import sparse
        import xarray as xr

        if level not in _LEVELS:
            raise ValueError(f"level must be one of {list(_LEVELS)}, got {level!r}")
        attrs = dict(self._attrs)
        attrs.update(kind=type(self).__name__, level=level, relative=bool(relative))
        if level == "neuron":
            m = self._relative_sparse() if relative else self._data
            data = sparse.COO.from_scipy_sparse(m)
            coords = {}
            for side, ax in (("pre", self._src), ("post", self._tgt)):
                bid = ax.body_ids()
                coords[side] = (side, bid)
                coords[f"bodyId_{side}"] = (side, bid)
                coords[f"type_{side}"] = (side, ax.types)
                coords[f"instance_{side}"] = (side, ax.instances)
            return xr.DataArray(data, dims=("pre", "post"), coords=coords, attrs=attrs, name="weight")
        a = self._type_sum if level == "type_sum" else self._type_mean
        if relative:
            rs = a.sum(axis=1, keepdims=True)
            a = a / np.where(rs == 0, 1.0, rs)
        coords = {}
        for side, ax in (("pre", self._src), ("post", self._tgt)):
            names = np.array(list(ax.boundaries), dtype=object)
            coords[side] = (side, names)
            coords[f"type_{side}"] = (side, names)
            coords[f"n_neurons_{side}"] = (side, ax.type_sizes)
        return xr.DataArray(np.array(a), dims=("pre", "post"), coords=coords, attrs=attrs, name="weight")

    # -- zarr
    def to_zarr(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the matrix to a Zarr v3 group, atomically (temp dir + rename).

        Layout: ``data/row``, ``data/col`` (int64) and ``data/value``
        (float64) hold the neuron-level COO entries; ``type_sum`` the dense
        type-level sums; ``source/`` and ``target/`` the axes (IDs, type and
        instance codes); group attrs are JSON (kind, provenance, label lists,
        type boundaries). A failed write leaves any previous matrix at
        ``path`` untouched.

        Returns
        -------
        pathlib.Path
        """
        from ._fsutil import atomic_dir

        path = Path(path)
        if path.exists() and not _is_matrix_dir(path):
            raise FileExistsError(f"{path} exists and is not a connectome_dask matrix; refusing to replace it")
        with atomic_dir(path, "matrix", overwrite=overwrite, error=FileExistsError,
                        recognise=_is_matrix_dir) as tmp:
            _write_matrix(self, tmp)
        return path

    # -- plotting
    def plot(
        self,
        output_path: str | os.PathLike | None = None,
        level: str = "neuron",
        figsize: tuple[float, float] = (16, 14),
        show_neuron_labels: bool = False,
        vmin_percentile: float = 0.0,
        vmax_percentile: float = 100.0,
        min_neurons_for_plot: int = 1,
        linewidth_scale: float = 1.0,
    ):
        """Heatmap with type boundary lines; returns ``(fig, ax)``.

        Parameters follow crantpy. Matrices with more than 20 000 neurons on
        an axis render as an aggregated raster (weights summed into at most
        2 000 x 2 000 bins), never as per-cell patches.
        """
        from .plotting import plot_nested

        if level not in _LEVELS:
            raise ValueError(f"level must be one of {list(_LEVELS)}, got {level!r}")
        if linewidth_scale <= 0:
            raise ValueError(f"linewidth_scale must be positive, got {linewidth_scale!r}")
        if not 0 <= vmin_percentile <= vmax_percentile <= 100:
            raise ValueError("need 0 <= vmin_percentile <= vmax_percentile <= 100")
        square = isinstance(self, NestedMatrix)
        if level == "neuron":
            data: Any = self._data
            rb, cb = self._src.boundaries, self._tgt.boundaries
            rlab, clab = list(self._src.ids), list(self._tgt.ids)
            if min_neurons_for_plot > 1:
                ri, rb = _filter_bounds(rb, min_neurons_for_plot)
                ci, cb = _filter_bounds(cb, min_neurons_for_plot)
                data = self._data[ri][:, ci]
                rlab = [rlab[i] for i in ri]
                clab = [clab[i] for i in ci]
            cbar = "Weight"
        else:
            data = self._type_sum if level == "type_sum" else self._type_mean
            rb = {n: (i, i + 1) for i, n in enumerate(self._src.boundaries)}
            cb = {n: (i, i + 1) for i, n in enumerate(self._tgt.boundaries)}
            rlab, clab = list(rb), list(cb)
            cbar = "Total Weight" if level == "type_sum" else "Mean Weight"
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise ValueError(f"cannot plot an empty matrix (shape {data.shape})")
        return plot_nested(
            data,
            rb,
            cb,
            row_labels=rlab,
            col_labels=clab,
            level=level,
            square=square,
            output_path=output_path,
            figsize=figsize,
            show_neuron_labels=show_neuron_labels,
            vmin_percentile=vmin_percentile,
            vmax_percentile=vmax_percentile,
            linewidth_scale=linewidth_scale,
            colorbar_label=cbar,
        )


def _filter_bounds(bounds: Mapping[str, tuple[int, int]], min_n: int) -> tuple[np.ndarray, dict]:
    idx: list[np.ndarray] = []
    out: dict[str, tuple[int, int]] = {}
    cur = 0
    for name, (s, e) in bounds.items():
        if e - s >= min_n:
            idx.append(np.arange(s, e))
            out[name] = (cur, cur + e - s)
            cur += e - s
    return (np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)), out


def _build_matrix(pairs: _Pairs, weights: np.ndarray, src: _Axis, tgt: _Axis) -> sp.csr_matrix:
    n = len(pairs.universe)
    ps = np.full(n, -1, dtype=np.int64)
    pt = np.full(n, -1, dtype=np.int64)
    ps[src.codes] = np.arange(len(src))
    pt[tgt.codes] = np.arange(len(tgt))
    r, c = ps[pairs.src], pt[pairs.tgt]
    keep = (r >= 0) & (c >= 0) & (weights != 0)
    return sp.csr_matrix((weights[keep], (r[keep], c[keep])), shape=(len(src), len(tgt)))


def _check_axis_parts(matrix, ordered, boundaries, neuron_to_type, axis_name: str) -> _Axis:
    ids = [_str_value(i) for i in ordered]
    if any(_is_missing(i) for i in ordered):
        raise ValueError(f"{axis_name} contains null neuron IDs")
    seen: set[str] = set()
    dups = [i for i in ids if i in seen or seen.add(i)]
    if dups:
        raise ValueError(f"{axis_name} contains duplicate neuron IDs: {dups[:10]}")
    n2t = {_str_value(k): (None if _is_missing(v) else _str_value(v)) for k, v in neuron_to_type.items() if not _is_missing(k)}
    extra = sorted(set(n2t) - set(ids))
    if extra:
        raise ValueError(f"neuron_to_type contains neurons not present in {axis_name}: {extra[:10]}")
    b = {_str_value(k): (int(s), int(e)) for k, (s, e) in boundaries.items()}
    expected = 0
    for name, (s, e) in b.items():
        if s != expected:
            raise ValueError("type_boundaries must be contiguous, non-overlapping, and start at 0")
        if e > len(ids) or e <= s:
            raise ValueError(f"type boundary {name!r} has invalid slice ({s}, {e})")
        bad = [i for i in ids[s:e] if n2t.get(i) != name]
        if bad:
            raise ValueError(f"type boundary {name!r} does not match neuron_to_type for neurons {bad[:10]}")
        expected = e
    after = [i for i in ids[expected:] if n2t.get(i) is not None]
    if after:
        raise ValueError("annotated neurons must appear within type_boundaries before any unassigned neurons")
    types = np.array([n2t.get(i) if k < expected else None for k, i in enumerate(ids)], dtype=object)
    inst = np.empty(len(ids), dtype=object)
    inst[:] = None
    return _Axis(np.arange(len(ids)), np.array(ids, dtype=object), types, inst, b)


# ----------------------------------------------------------------------------- NestedMatrix


class NestedMatrix(_NestedBase):
    """Square neuron x neuron connectivity matrix ordered and blocked by cell type.

    Build with :meth:`from_connectivity`, :meth:`from_synapses` or
    :meth:`from_synapses_by_neuropil` (pandas frames, a dask DataFrame, or a
    :class:`~connectome_dask.store.Connectome`). Instances are immutable;
    public properties are read-only views and type matrices are cached.

    Parameters
    ----------
    matrix
        Square DataFrame whose index and columns equal ``ordered_neurons``.
    type_boundaries
        Type -> (start, end) slices, contiguous from 0, in order.
    ordered_neurons
        Neuron IDs in matrix order (typed blocks first).
    neuron_to_type
        Neuron ID -> type for the typed neurons.

    Examples
    --------
    >>> import pandas as pd
    >>> adj = pd.DataFrame({1: [0, 10, 0], 2: [5, 0, 15], 3: [0, 20, 0]}, index=[1, 2, 3])
    >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["ER", "ER", "Pbt"]})
    >>> m = NestedMatrix.from_connectivity(adj, ann)
    >>> dict(m.type_boundaries)
    {'ER': (0, 2), 'Pbt': (2, 3)}
    """

    def __init__(
        self,
        matrix: pd.DataFrame,
        type_boundaries: Mapping[Any, tuple[int, int]],
        ordered_neurons: Iterable[Any],
        neuron_to_type: Mapping[Any, Any],
    ) -> None:
        ordered = list(ordered_neurons)
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square, got shape {matrix.shape}")
        axis = _check_axis_parts(matrix, ordered, type_boundaries, neuron_to_type, "ordered_neurons")
        idx = [_str_value(i) for i in matrix.index]
        cols = [_str_value(i) for i in matrix.columns]
        if idx != cols:
            raise ValueError("matrix index and columns must match exactly")
        if idx != list(axis.ids):
            raise ValueError("matrix axes must match ordered_neurons exactly")
        data = sp.csr_matrix(matrix.to_numpy(dtype=np.float64, na_value=0.0)) if len(idx) else sp.csr_matrix((0, 0))
        self._init_parts(data, axis, axis, {"source": "constructor"})

    @classmethod
    def _from_parts(cls, data, axis: _Axis, attrs: Mapping[str, Any]) -> NestedMatrix:
        obj = cls.__new__(cls)
        obj._init_parts(data, axis, axis, attrs)
        return obj

    def __repr__(self) -> str:
        types = list(self._src.boundaries)
        ts = ", ".join(types[:5]) + (f", ... ({len(types)} total)" if len(types) > 5 else "")
        return f"NestedMatrix({len(self._src)} neurons, types=[{ts}])"

    @property
    def type_boundaries(self) -> Mapping[str, tuple[int, int]]:
        """Read-only mapping type -> (start, end) slice of :attr:`ordered_neurons`.

        Examples
        --------
        >>> adj = pd.DataFrame({1: [0, 10, 0], 2: [5, 0, 15], 3: [0, 20, 0]}, index=[1, 2, 3])
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["ER", "ER", "Pbt"]})
        >>> m = NestedMatrix.from_connectivity(adj, ann)
        >>> dict(m.type_boundaries)
        {'ER': (0, 2), 'Pbt': (2, 3)}
        """
        return MappingProxyType(self._src.boundaries)

    @property
    def ordered_neurons(self) -> tuple[str, ...]:
        """Neuron IDs (str) in matrix order.

        Examples
        --------
        >>> adj = pd.DataFrame({1: [0, 10, 0], 2: [5, 0, 15], 3: [0, 20, 0]}, index=[1, 2, 3])
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["ER", "ER", "Pbt"]})
        >>> m = NestedMatrix.from_connectivity(adj, ann)
        >>> m.ordered_neurons
        ('1', '2', '3')
        """
        return tuple(self._src.ids.tolist())

    @cached_property
    def _n2t(self) -> dict[str, str]:
        return self._src.neuron_to_type()

    @property
    def neuron_to_type(self) -> Mapping[str, str]:
        """Read-only mapping neuron ID -> type (typed neurons only).

        Examples
        --------
        >>> adj = pd.DataFrame({1: [0, 10, 0], 2: [5, 0, 15], 3: [0, 20, 0]}, index=[1, 2, 3])
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["ER", "ER", "Pbt"]})
        >>> m = NestedMatrix.from_connectivity(adj, ann)
        >>> dict(m.neuron_to_type)
        {'1': 'ER', '2': 'ER', '3': 'Pbt'}
        """
        return MappingProxyType(self._n2t)

    # -- constructors
    @classmethod
    def from_connectivity(
        cls,
        connections_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        cell_type_column: str | None = None,
        neuron_id_column: str | None = None,
        type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
    ) -> NestedMatrix:
        """Nested matrix from an adjacency matrix or an aggregated edge list.

        Parameters
        ----------
        connections_df
            Adjacency matrix (index = presynaptic IDs, columns = postsynaptic
            IDs) or an edge list with columns ``pre, post[, weight]``,
            ``source, target[, weight | n_syn]`` or ``type.from, type.to[, weight]``
            (duplicate pairs are summed; no weight column counts rows).
            Columns matching several formats are rejected. A
            :class:`~connectome_dask.store.Connectome` gives synapse counts.
        neuron_annotations
            One row per neuron (first row per ID wins, typed rows preferred).
            Optional for a Connectome (its neuron table is used).
        cell_type_column, neuron_id_column
            Default ``"cell_type"`` / ``"root_id"`` (``"type"`` / ``"bodyId"``
            for a Connectome's own neuron table).
        type_order
            Preferred type order (exact labels or letter prefixes).
        annotation_scope
            ``"annotated_only"`` or ``"all"``.

        Returns
        -------
        NestedMatrix

        Examples
        --------
        >>> import pandas as pd
        >>> edges = pd.DataFrame({"pre": [1, 1, 2], "post": [2, 2, 1], "weight": [3, 4, 5]})
        >>> ann = pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]})
        >>> NestedMatrix.from_connectivity(edges, ann).matrix.loc["1", "2"]
        np.float64(7.0)
        """
        if _is_connectome(connections_df) or _is_dask_frame(connections_df):
            return cls.from_synapses(
                connections_df,
                neuron_annotations,
                weight_mode="count",
                cell_type_column=cell_type_column,
                neuron_id_column=neuron_id_column,
                type_order=type_order,
                annotation_scope=annotation_scope,
            )
        _validate_common(None, None, annotation_scope)
        if neuron_annotations is None:
            raise ValueError("neuron_annotations is required for pandas input")
        ann = _Annotations(neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type")
        pairs = _pairs_from_connectivity(connections_df)
        attrs = _provenance(
            connections_df, weight_mode="given", annotation_scope=annotation_scope, type_order=type_order
        )
        return cls._finish(pairs, ann, annotation_scope, None, type_order, attrs)

    @classmethod
    def _finish(cls, pairs: _Pairs, ann: _Annotations, scope: str, weight_mode, type_order, attrs) -> NestedMatrix:
        ann_pos = ann.positions(pairs.universe)
        pairs = pairs.scoped(ann_pos, scope)
        w = pairs.normalised(weight_mode) if weight_mode else pairs.weight
        present = np.concatenate([pairs.present_src, pairs.present_tgt])
        axis = _Axis.build(present, pairs.universe, ann, ann_pos, type_order)
        return cls._from_parts(_build_matrix(pairs, w, axis, axis), axis, attrs)

    @classmethod
    def from_synapses(
        cls,
        synapses_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        pre_col: str = "pre_pt_root_id",
        post_col: str = "post_pt_root_id",
        weight_mode: WeightMode = "relative_outgoing",
        weight_column: str | None = None,
        cell_type_column: str | None = None,
        neuron_id_column: str | None = None,
        type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
        *,
        confidence: float | None = None,
        min_weight: int = 1,
        progress: bool | None = None,
    ) -> NestedMatrix:
        """Nested matrix from synapse rows (pandas, dask DataFrame or a Connectome).

        Parameters
        ----------
        synapses_df
            One row per synapse with body IDs in ``pre_col`` / ``post_col``
            (pandas or dask), or a :class:`~connectome_dask.store.Connectome`
            (whole brain, out of core: pair counts via
            :func:`connectome_dask.aggregate.pair_counts`).
        neuron_annotations
            Annotation table; optional for a Connectome.
        weight_mode
            ``"relative_outgoing"``, ``"relative_incoming"``, ``"count"`` or
            ``"column"`` (sum of ``weight_column``; not for a Connectome).
        weight_column
            Column summed for ``weight_mode="column"`` only.
        cell_type_column, neuron_id_column, type_order, annotation_scope
            As :meth:`from_connectivity`.
        confidence
            Connectome only: keep synapses with confidence ``>`` this.
        min_weight
            Drop neuron pairs with fewer synapses (before normalisation).
        progress
            Show a progress bar for out-of-core work.

        Returns
        -------
        NestedMatrix

        Examples
        --------
        >>> import pandas as pd
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 1], "post_pt_root_id": [2, 2, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "B"]})
        >>> m = NestedMatrix.from_synapses(syn, ann)
        >>> round(float(m.matrix.loc["1", "2"]), 3)
        0.667
        """
        _validate_common(weight_mode, weight_column, annotation_scope)
        pairs, ann = _synapse_pairs(
            synapses_df, neuron_annotations, pre_col, post_col, weight_mode, weight_column,
            cell_type_column, neuron_id_column, annotation_scope, confidence, min_weight, progress,
        )  # fmt: skip
        attrs = _provenance(
            synapses_df, weight_mode=weight_mode, weight_column=weight_column, annotation_scope=annotation_scope,
            type_order=type_order, min_weight=min_weight, confidence=confidence,
        )  # fmt: skip
        return cls._finish(pairs, ann, annotation_scope, weight_mode, type_order, attrs)

    @classmethod
    def from_synapses_by_neuropil(
        cls,
        synapses_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        neuropil_names: Sequence[str] | None = None,
        coordinates: str = "nm",
        position_column: str | Sequence[str] = "ctr_pt_position",
        pre_col: str = "pre_pt_root_id",
        post_col: str = "post_pt_root_id",
        weight_mode: WeightMode = "relative_outgoing",
        weight_column: str | None = None,
        cell_type_column: str | None = None,
        neuron_id_column: str | None = None,
        type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
        include_other: bool = True,
        voxel_offset: tuple[float, float, float] | None = None,
        *,
        rois: Any = None,
        voxel_size: tuple[float, float, float] | None = None,
        confidence: float | None = None,
        min_weight: int = 1,
        progress: bool | None = None,
    ) -> NeuropilCollection:
        """One nested matrix per neuropil (ROI), as a :class:`NeuropilCollection`.

        With a Connectome the ROI codes already in the store are used (the
        connection's ROI is the postsynaptic site's ``roi_post``); pandas
        frames are assigned to ROIs by mesh containment with ``rois`` (a
        :class:`connectome_dask.rois.RoiSet` or a folder for
        ``RoiSet.from_directory``). Weighting, scope and ordering follow
        :meth:`from_synapses` within each neuropil.

        Parameters
        ----------
        neuropil_names
            ROIs to build (default: all). Unknown names raise ``ValueError``.
        coordinates
            ``"nm"`` or ``"pixels"`` (pixels: ``(p + voxel_offset) * voxel_size``).
        position_column
            Column holding ``[x, y, z]`` per row, or three column names.
        include_other
            Collect synapses outside every listed ROI under ``"other"``.
        rois, voxel_size
            Mesh set and voxel size for pandas input.

        Returns
        -------
        NeuropilCollection

        Examples
        --------
        From a store with ROIs assigned (neuropils without synapses are left out):

        >>> c = NestedMatrix.from_synapses_by_neuropil(conn, neuropil_names=["MB_CA_R"])
        >>> list(c), c.MB_CA_R.shape[0] > 0
        (['MB_CA_R', 'other'], True)
        """
        _validate_common(weight_mode, weight_column, annotation_scope)
        if coordinates not in ("nm", "pixels"):
            raise ValueError(f"coordinates must be 'nm' or 'pixels', got {coordinates!r}")
        groups = _neuropil_groups(
            synapses_df, neuron_annotations, neuropil_names, coordinates, position_column, pre_col, post_col,
            weight_mode, weight_column, cell_type_column, neuron_id_column, annotation_scope, include_other,
            voxel_offset, rois, voxel_size, confidence, min_weight, progress,
        )  # fmt: skip
        out = NeuropilCollection()
        for name, pairs, ann in groups:
            attrs = _provenance(
                synapses_df, weight_mode=weight_mode, weight_column=weight_column, annotation_scope=annotation_scope,
                type_order=type_order, min_weight=min_weight, confidence=confidence, neuropil=name,
            )  # fmt: skip
            out[name] = cls._finish(pairs, ann, annotation_scope, weight_mode, type_order, attrs)
        return out


# ----------------------------------------------------------------------------- DirectedNestedMatrix


class DirectedNestedMatrix(_NestedBase):
    """Rectangular source x target nested matrix with independent axes.

    Rows are presynaptic (source) neurons, columns postsynaptic (target).
    On each axis the type selector and the neuron selector are unioned;
    ``None`` for both selects every neuron available on that axis.

    Examples
    --------
    >>> import pandas as pd
    >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
    >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
    >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types="A", weight_mode="count")
    >>> d.source_neurons, d.target_neurons
    (('1',), ('2', '3'))
    """

    def __init__(
        self,
        matrix: pd.DataFrame,
        source_neurons: Iterable[Any],
        target_neurons: Iterable[Any],
        source_type_boundaries: Mapping[Any, tuple[int, int]] | None = None,
        target_type_boundaries: Mapping[Any, tuple[int, int]] | None = None,
        source_neuron_to_type: Mapping[Any, Any] | None = None,
        target_neuron_to_type: Mapping[Any, Any] | None = None,
    ) -> None:
        src = _check_axis_parts(matrix, list(source_neurons), source_type_boundaries or {}, source_neuron_to_type or {}, "source_neurons")
        tgt = _check_axis_parts(matrix, list(target_neurons), target_type_boundaries or {}, target_neuron_to_type or {}, "target_neurons")
        if [_str_value(i) for i in matrix.index] != list(src.ids):
            raise ValueError("matrix index must match source_neurons exactly")
        if [_str_value(i) for i in matrix.columns] != list(tgt.ids):
            raise ValueError("matrix columns must match target_neurons exactly")
        self._init_parts(sp.csr_matrix(matrix.to_numpy(dtype=np.float64, na_value=0.0)), src, tgt, {"source": "constructor"})

    @classmethod
    def _from_parts(cls, data, src: _Axis, tgt: _Axis, attrs: Mapping[str, Any]) -> DirectedNestedMatrix:
        obj = cls.__new__(cls)
        obj._init_parts(data, src, tgt, attrs)
        return obj

    def __repr__(self) -> str:
        return (
            f"DirectedNestedMatrix({len(self._src)} source neurons, {len(self._tgt)} target neurons, "
            f"source_types={list(self._src.boundaries)[:5]}, target_types={list(self._tgt.boundaries)[:5]})"
        )

    @property
    def source_neurons(self) -> tuple[str, ...]:
        """Row neuron IDs in order.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> d.source_neurons
        ('1', '2')
        """
        return tuple(self._src.ids.tolist())

    @property
    def target_neurons(self) -> tuple[str, ...]:
        """Column neuron IDs in order.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> d.target_neurons
        ('2', '3')
        """
        return tuple(self._tgt.ids.tolist())

    @property
    def source_type_boundaries(self) -> Mapping[str, tuple[int, int]]:
        """Read-only source type -> row slice.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> dict(d.source_type_boundaries)
        {'A': (0, 1), 'B': (1, 2)}
        """
        return MappingProxyType(self._src.boundaries)

    @property
    def target_type_boundaries(self) -> Mapping[str, tuple[int, int]]:
        """Read-only target type -> column slice.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> dict(d.target_type_boundaries)
        {'B': (0, 1), 'C': (1, 2)}
        """
        return MappingProxyType(self._tgt.boundaries)

    @property
    def source_neuron_to_type(self) -> Mapping[str, str]:
        """Read-only source neuron ID -> type.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> dict(d.source_neuron_to_type)
        {'1': 'A', '2': 'B'}
        """
        return MappingProxyType(self._src.neuron_to_type())

    @property
    def target_neuron_to_type(self) -> Mapping[str, str]:
        """Read-only target neuron ID -> type.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> dict(d.target_neuron_to_type)
        {'2': 'B', '3': 'C'}
        """
        return MappingProxyType(self._tgt.neuron_to_type())

    @classmethod
    def _finish(
        cls, pairs: _Pairs, ann: _Annotations, scope: str, weight_mode, sel: dict, norm_scope: str, attrs
    ) -> DirectedNestedMatrix:
        ann_pos = ann.positions(pairs.universe)
        pairs = pairs.scoped(ann_pos, scope)
        u = pairs.universe
        src_codes = _select_codes(pairs.present_src, u, ann, ann_pos, sel["source_types"], sel["source_neurons"])
        tgt_codes = _select_codes(pairs.present_tgt, u, ann, ann_pos, sel["target_types"], sel["target_neurons"])
        src = _Axis.build(src_codes, u, ann, ann_pos, sel["source_type_order"])
        tgt = _Axis.build(tgt_codes, u, ann, ann_pos, sel["target_type_order"])
        in_src = np.zeros(len(u), dtype=bool)
        in_src[src.codes] = True
        in_tgt = np.zeros(len(u), dtype=bool)
        in_tgt[tgt.codes] = True
        if norm_scope == "all" and weight_mode == "relative_outgoing":
            keep = in_src[pairs.src]
        elif norm_scope == "all" and weight_mode == "relative_incoming":
            keep = in_tgt[pairs.tgt]
        else:
            keep = in_src[pairs.src] & in_tgt[pairs.tgt]
        sub = pairs.subset(keep)
        w = sub.normalised(weight_mode) if weight_mode else sub.weight
        return cls._from_parts(_build_matrix(sub, w, src, tgt), src, tgt, attrs)

    @classmethod
    def from_connectivity(
        cls,
        connections_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        source_types: Any = None,
        target_types: Any = None,
        source_neurons: Any = None,
        target_neurons: Any = None,
        cell_type_column: str | None = None,
        neuron_id_column: str | None = None,
        type_order: Sequence[Any] | None = None,
        source_type_order: Sequence[Any] | None = None,
        target_type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
    ) -> DirectedNestedMatrix:
        """Rectangular nested matrix from an adjacency matrix / edge list (or a Connectome).

        Sources available are the rows (neurons with outgoing entries),
        targets the columns. See :meth:`NestedMatrix.from_connectivity`.

        Examples
        --------
        >>> edges = pd.DataFrame({"pre": [1, 1, 2], "post": [2, 3, 3], "weight": [4, 1, 6]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_connectivity(edges, ann, source_types=["A"])
        >>> d.source_neurons, d.target_neurons, d.matrix.loc["1"].tolist()
        (('1',), ('2', '3'), [4.0, 1.0])
        """
        if _is_connectome(connections_df) or _is_dask_frame(connections_df):
            return cls.from_synapses(
                connections_df, neuron_annotations, source_types, target_types, source_neurons, target_neurons,
                weight_mode="count", cell_type_column=cell_type_column, neuron_id_column=neuron_id_column,
                type_order=type_order, source_type_order=source_type_order, target_type_order=target_type_order,
                annotation_scope=annotation_scope,
            )  # fmt: skip
        _validate_common(None, None, annotation_scope)
        if neuron_annotations is None:
            raise ValueError("neuron_annotations is required for pandas input")
        ann = _Annotations(neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type")
        pairs = _pairs_from_connectivity(connections_df)
        sel = _selection(source_types, target_types, source_neurons, target_neurons, type_order, source_type_order, target_type_order)
        attrs = _provenance(connections_df, weight_mode="given", annotation_scope=annotation_scope, **_sel_attrs(sel))
        return cls._finish(pairs, ann, annotation_scope, None, sel, "selected", attrs)

    @classmethod
    def from_synapses(
        cls,
        synapses_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        source_types: Any = None,
        target_types: Any = None,
        source_neurons: Any = None,
        target_neurons: Any = None,
        pre_col: str = "pre_pt_root_id",
        post_col: str = "post_pt_root_id",
        weight_mode: WeightMode = "relative_outgoing",
        weight_column: str | None = None,
        normalization_scope: NormalizationScope = "selected",
        cell_type_column: str | None = None,
        neuron_id_column: str | None = None,
        type_order: Sequence[Any] | None = None,
        source_type_order: Sequence[Any] | None = None,
        target_type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
        *,
        confidence: float | None = None,
        min_weight: int = 1,
        progress: bool | None = None,
    ) -> DirectedNestedMatrix:
        """Rectangular nested matrix from synapse rows (pandas, dask or a Connectome).

        Parameters
        ----------
        source_types, target_types, source_neurons, target_neurons
            Axis selectors (a label/ID or an iterable); types and neurons on
            the same axis are unioned; ``None`` and ``None`` = all.
        normalization_scope
            ``"selected"``: relative weights over the selected source x target
            block only; ``"all"``: over all partners (within the annotation
            scope) of each selected source (``relative_outgoing``) or target
            (``relative_incoming``) before restricting the matrix.
        source_type_order, target_type_order
            Per-axis type order (default ``type_order``).

        Other parameters as :meth:`NestedMatrix.from_synapses`.

        Returns
        -------
        DirectedNestedMatrix

        Examples
        --------
        Kenyon cells onto themselves and one target type, from a store:

        >>> d = DirectedNestedMatrix.from_synapses(
        ...     conn, source_types=["KCg-m"], target_types=["KCg-m", "LHPV1c3"], weight_mode="count")
        >>> list(d.source_type_boundaries), list(d.target_type_boundaries)
        (['KCg-m'], ['KCg-m', 'LHPV1c3'])
        >>> d.matrix.shape == d.shape
        True
        """
        _validate_common(weight_mode, weight_column, annotation_scope)
        if normalization_scope not in _NORM_SCOPES:
            raise ValueError(f"normalization_scope must be one of {list(_NORM_SCOPES)}, got {normalization_scope!r}")
        sel = _selection(source_types, target_types, source_neurons, target_neurons, type_order, source_type_order, target_type_order)
        pairs, ann = _synapse_pairs(
            synapses_df, neuron_annotations, pre_col, post_col, weight_mode, weight_column,
            cell_type_column, neuron_id_column, annotation_scope, confidence, min_weight, progress,
        )  # fmt: skip
        attrs = _provenance(
            synapses_df, weight_mode=weight_mode, weight_column=weight_column, annotation_scope=annotation_scope,
            normalization_scope=normalization_scope, min_weight=min_weight, confidence=confidence, **_sel_attrs(sel),
        )  # fmt: skip
        return cls._finish(pairs, ann, annotation_scope, weight_mode, sel, normalization_scope, attrs)

    @classmethod
    def from_synapses_by_neuropil(
        cls,
        synapses_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        neuropil_names: Sequence[str] | None = None,
        coordinates: str = "nm",
        position_column: str | Sequence[str] = "ctr_pt_position",
        source_types: Any = None,
        target_types: Any = None,
        source_neurons: Any = None,
        target_neurons: Any = None,
        pre_col: str = "pre_pt_root_id",
        post_col: str = "post_pt_root_id",
        weight_mode: WeightMode = "relative_outgoing",
        weight_column: str | None = None,
        normalization_scope: NormalizationScope = "selected",
        cell_type_column: str | None = None,
        neuron_id_column: str | None = None,
        type_order: Sequence[Any] | None = None,
        source_type_order: Sequence[Any] | None = None,
        target_type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
        include_other: bool = True,
        voxel_offset: tuple[float, float, float] | None = None,
        *,
        rois: Any = None,
        voxel_size: tuple[float, float, float] | None = None,
        confidence: float | None = None,
        min_weight: int = 1,
        progress: bool | None = None,
    ) -> NeuropilCollection:
        """Directed nested matrices per neuropil; see :meth:`NestedMatrix.from_synapses_by_neuropil`.

        Neuropils whose matrix has no rows or no columns are left out.

        Examples
        --------
        >>> c = DirectedNestedMatrix.from_synapses_by_neuropil(
        ...     conn, neuropil_names=["MB_CA_R"], source_types=["KCg-m"], weight_mode="count")
        >>> list(c), list(c["MB_CA_R"].source_type_boundaries)
        (['MB_CA_R', 'other'], ['KCg-m'])
        """
        _validate_common(weight_mode, weight_column, annotation_scope)
        if normalization_scope not in _NORM_SCOPES:
            raise ValueError(f"normalization_scope must be one of {list(_NORM_SCOPES)}, got {normalization_scope!r}")
        if coordinates not in ("nm", "pixels"):
            raise ValueError(f"coordinates must be 'nm' or 'pixels', got {coordinates!r}")
        sel = _selection(source_types, target_types, source_neurons, target_neurons, type_order, source_type_order, target_type_order)
        groups = _neuropil_groups(
            synapses_df, neuron_annotations, neuropil_names, coordinates, position_column, pre_col, post_col,
            weight_mode, weight_column, cell_type_column, neuron_id_column, annotation_scope, include_other,
            voxel_offset, rois, voxel_size, confidence, min_weight, progress,
        )  # fmt: skip
        out = NeuropilCollection()
        for name, pairs, ann in groups:
            attrs = _provenance(
                synapses_df, weight_mode=weight_mode, weight_column=weight_column, annotation_scope=annotation_scope,
                normalization_scope=normalization_scope, min_weight=min_weight, confidence=confidence,
                neuropil=name, **_sel_attrs(sel),
            )  # fmt: skip
            m = cls._finish(pairs, ann, annotation_scope, weight_mode, sel, normalization_scope, attrs)
            if m.shape[0] and m.shape[1]:
                out[name] = m
        return out


def _selection(st, tt, sn, tn, order, s_order, t_order) -> dict:
    return {
        "source_types": st,
        "target_types": tt,
        "source_neurons": sn,
        "target_neurons": tn,
        "source_type_order": s_order if s_order is not None else order,
        "target_type_order": t_order if t_order is not None else order,
    }


def _sel_attrs(sel: dict) -> dict:
    out = {}
    for k, v in sel.items():
        if v is None:
            out[k] = None
        elif isinstance(v, str | bytes) or not isinstance(v, Iterable):
            out[k] = [_str_value(v)]
        else:
            out[k] = [_str_value(x) for x in v]
    return out


# ----------------------------------------------------------------------------- input dispatch


def _synapse_pairs(
    source, neuron_annotations, pre_col, post_col, weight_mode, weight_column,
    cell_type_column, neuron_id_column, scope, confidence, min_weight, progress,
) -> tuple[_Pairs, _Annotations]:  # fmt: skip
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
    if rois is None:
        raise ValueError("rois= (a connectome_dask.rois.RoiSet or a folder of meshes) is required for DataFrame input")
    if hasattr(rois, "assign") and hasattr(rois, "names"):
        return rois
    from .rois import RoiSet

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
        codes = {n: i for i, n in enumerate(names)}
        out = []
        listed = np.array([codes[n] for n in wanted], dtype=np.int64)
        for n in wanted:
            keep = roi == codes[n]
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
                other = _Pairs(sub.universe, s, t, w, w.astype(np.int64))
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
        pre_s = _str_array(df[pre_col])
        post_s = _str_array(df[post_col])
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
    if neuropil_names is None:
        return list(available)
    if isinstance(neuropil_names, str):
        neuropil_names = [neuropil_names]
    bad = [n for n in neuropil_names if n not in available]
    if bad:
        raise ValueError(f"Invalid neuropil name(s): {bad}. Available: {list(available)}")
    return list(dict.fromkeys(neuropil_names))


# ----------------------------------------------------------------------------- zarr I/O


def _is_matrix_dir(path: Path) -> bool:
    zj = path / "zarr.json"
    if not zj.is_file():
        return False
    try:
        meta = json.loads(zj.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("attributes", {}).get("format") == _MATRIX_FORMAT


def _labels_to_arrays(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Encode labels (None allowed) as int32 codes (-1 = None) and a JSON list of names."""
    s = pd.Series(values, dtype=object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes.astype(np.int32), [str(u) for u in uniques]


def _write_array(group, name: str, a: np.ndarray) -> None:
    from .store import array_codecs

    a = np.ascontiguousarray(a)
    chunks = tuple(max(1, min(s, 1 << 20)) for s in a.shape) if a.ndim == 1 else tuple(max(1, min(s, 2048)) for s in a.shape)
    arr = group.create_array(
        name, shape=a.shape, chunks=chunks, dtype=a.dtype, compressors=array_codecs(), fill_value=0,
        config={"write_empty_chunks": True},
    )
    if a.size:
        arr[...] = a


def _write_axis(group, axis: _Axis) -> dict:
    ids = axis.body_ids()
    meta: dict[str, Any] = {"n": len(axis), "boundaries": [[k, s, e] for k, (s, e) in axis.boundaries.items()]}
    if ids.dtype.kind == "i":
        _write_array(group, "ids", ids.astype(np.int64))
        meta["ids"] = "int64"
    else:
        c, names = _labels_to_arrays(axis.ids)
        _write_array(group, "ids", c)
        meta["ids"] = "codes"
        meta["id_names"] = names
    tc, tn = _labels_to_arrays(axis.types)
    _write_array(group, "type_code", tc)
    meta["type_names"] = tn
    ic, inames = _labels_to_arrays(axis.instances)
    _write_array(group, "instance_code", ic)
    meta["instance_names"] = inames
    return meta


def _write_matrix(m: _NestedBase, path: Path) -> None:
    import zarr

    root = zarr.open_group(str(path), mode="a")  # a fresh directory (holding only the marker)
    coo = m._data.tocoo()
    order = np.lexsort((coo.col, coo.row))
    data = root.create_group("data")
    _write_array(data, "row", coo.row[order].astype(np.int64))
    _write_array(data, "col", coo.col[order].astype(np.int64))
    _write_array(data, "value", coo.data[order].astype(np.float64))
    _write_array(root, "type_sum", np.asarray(m._type_sum))
    axes = {"source": _write_axis(root.create_group("source"), m._src)}
    if m._tgt is not m._src:
        axes["target"] = _write_axis(root.create_group("target"), m._tgt)
    attrs = {
        "format": _MATRIX_FORMAT,
        "format_version": _MATRIX_FORMAT_VERSION,
        "kind": type(m).__name__,
        "shape": list(m.shape),
        "nnz": int(coo.nnz),
        "axes": axes,
        "provenance": dict(m._attrs),
    }
    root.attrs.update(json.loads(json.dumps(attrs)))


def _read_axis(group, meta: Mapping[str, Any]) -> _Axis:
    raw = group["ids"][...]
    if meta["ids"] == "int64":
        ids = np.array([str(int(v)) for v in raw], dtype=object)
    else:
        names = np.array(meta["id_names"], dtype=object)
        ids = names[raw]

    def decode(codes, names):
        out = np.empty(len(codes), dtype=object)
        out[:] = None
        ok = codes >= 0
        out[ok] = np.array(names, dtype=object)[codes[ok]] if len(names) else None
        return out

    types = decode(group["type_code"][...], meta["type_names"])
    inst = decode(group["instance_code"][...], meta["instance_names"])
    bounds = {k: (int(s), int(e)) for k, s, e in meta["boundaries"]}
    return _Axis(np.arange(len(ids)), ids, types, inst, bounds)


def open_matrix(path: str | os.PathLike) -> NestedMatrix | DirectedNestedMatrix:
    """Open a matrix written by :meth:`NestedMatrix.to_zarr` / :meth:`DirectedNestedMatrix.to_zarr`.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> ann = pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]})
    >>> m = NestedMatrix.from_connectivity(pd.DataFrame({"pre": [1], "post": [2]}), ann)
    >>> p = m.to_zarr(pathlib.Path(tempfile.mkdtemp()) / "m.zarr")
    >>> open_matrix(p).matrix.equals(m.matrix)
    True
    """
    import zarr

    path = Path(path)
    if not _is_matrix_dir(path):
        raise FileNotFoundError(f"{path} is not a connectome_dask matrix (no zarr.json with format {_MATRIX_FORMAT!r})")
    root = zarr.open_group(str(path), mode="r")
    attrs = dict(root.attrs)
    if int(attrs.get("format_version", 0)) > _MATRIX_FORMAT_VERSION:
        raise ValueError(f"{path}: matrix format version {attrs['format_version']} is newer than this connectome_dask")
    kind = attrs["kind"]
    shape = tuple(attrs["shape"])
    src = _read_axis(root["source"], attrs["axes"]["source"])
    tgt = _read_axis(root["target"], attrs["axes"]["target"]) if "target" in attrs["axes"] else src
    row, col, val = (root["data"][k][...] for k in ("row", "col", "value"))
    data = sp.csr_matrix((val, (row, col)), shape=shape)
    if kind == "NestedMatrix":
        m: _NestedBase = NestedMatrix._from_parts(data, src, attrs["provenance"])
    elif kind == "DirectedNestedMatrix":
        m = DirectedNestedMatrix._from_parts(data, src, tgt, attrs["provenance"])
    else:
        raise ValueError(f"{path}: unknown matrix kind {kind!r}")
    ts = np.asarray(root["type_sum"][...], dtype=np.float64)
    ts.setflags(write=False)
    m.__dict__["_type_sum"] = ts  # seed the cache with the stored dense type level
    return m


# ----------------------------------------------------------------------------- DataArray I/O


_DA_FORMAT = "connectome-dask-dataarray"


def _is_da_dir(path: Path) -> bool:
    zj = path / "zarr.json"
    try:
        return json.loads(zj.read_text()).get("attributes", {}).get("format") == _DA_FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def save_dataarray(da: Any, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write a 2-D labelled matrix (dense or ``sparse.COO``) to a Zarr v3 group, atomically.

    Sparse data is stored as COO coordinate and value arrays, dense data as
    one array; 1-D coordinates as arrays (labels as int32 codes with the
    names in JSON attrs); ``attrs`` must be JSON-able. Written to a temporary
    folder and renamed into place, so a failure leaves an older file intact.

    Parameters
    ----------
    da
        ``xarray.DataArray`` with 2 dims (e.g. from ``Connectome.adjacency`` or
        :meth:`NestedMatrix.to_xarray`).
    path
        Target folder (``.zarr``).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import numpy as np, xarray as xr, tempfile, pathlib
    >>> da = xr.DataArray(np.eye(2), dims=("pre", "post"), coords={"pre": ["a", "b"], "post": [1, 2]})
    >>> p = save_dataarray(da, pathlib.Path(tempfile.mkdtemp()) / "a.zarr")
    >>> open_dataarray(p).identical(da)
    True
    """
    import zarr

    from ._fsutil import atomic_dir

    if da.ndim != 2:
        raise ValueError(f"save_dataarray writes 2-D matrices, got dims {da.dims}")
    path = Path(path)
    if path.exists() and not _is_da_dir(path):
        raise FileExistsError(f"{path} exists and is not a saved connectome_dask DataArray; refusing to replace it")
    try:
        attrs_json = json.loads(json.dumps(dict(da.attrs)))
    except TypeError as e:
        raise ValueError(f"DataArray attrs must be JSON-able: {e}") from None
    with atomic_dir(path, "dataarray", overwrite=overwrite, error=FileExistsError,
                    recognise=_is_da_dir) as tmp:
        root = zarr.open_group(str(tmp), mode="a")
        data = da.data
        meta: dict[str, Any] = {
            "format": _DA_FORMAT,
            "format_version": 1,
            "name": da.name,
            "dims": list(da.dims),
            "shape": list(da.shape),
            "attrs": attrs_json,
            "coords": {},
        }
        if hasattr(data, "coords") and hasattr(data, "nnz"):  # sparse.COO
            meta["storage"] = "coo"
            meta["dtype"] = str(data.dtype)
            _write_array(root, "row", np.asarray(data.coords[0], dtype=np.int64))
            _write_array(root, "col", np.asarray(data.coords[1], dtype=np.int64))
            _write_array(root, "value", np.asarray(data.data))
        else:
            meta["storage"] = "dense"
            _write_array(root, "values", np.asarray(data))
        cg = root.create_group("coords")
        for i, (name, c) in enumerate(da.coords.items()):
            if c.ndim != 1:
                raise ValueError(f"coordinate {name!r} is not 1-D")
            vals = np.asarray(c.values)
            key = f"c{i}"
            entry: dict[str, Any] = {"dim": c.dims[0], "key": key}
            if vals.dtype.kind in "iufb":
                _write_array(cg, key, vals)
                entry["kind"] = "array"
            else:
                codes, names = _labels_to_arrays(vals)
                _write_array(cg, key, codes)
                entry["kind"] = "labels"
                entry["names"] = names
            meta["coords"][str(name)] = entry
        root.attrs.update(meta)
    return path


def open_dataarray(path: str | os.PathLike):
    """Read a matrix written by :func:`save_dataarray` (sparse data comes back as ``sparse.COO``).

    Examples
    --------
    >>> W = conn.adjacency()  # sparse neuron x neuron
    >>> back = open_dataarray(save_dataarray(W, tmp_path / "W.zarr"))
    >>> type(back.data).__name__, back.shape == W.shape, bool((back.data == W.data).all())
    ('COO', True, True)
    """
    import sparse
    import xarray as xr
    import zarr

    path = Path(path)
    if not _is_da_dir(path):
        raise FileNotFoundError(f"{path} is not a saved connectome_dask DataArray")
    root = zarr.open_group(str(path), mode="r")
    meta = dict(root.attrs)
    shape = tuple(meta["shape"])
    if meta["storage"] == "coo":
        coords = np.stack([root["row"][...], root["col"][...]]) if meta["shape"] else None
        data: Any = sparse.COO(coords, root["value"][...], shape=shape, fill_value=0)
    else:
        data = root["values"][...]
    coords_out = {}
    for name, e in meta["coords"].items():
        raw = root["coords"][e["key"]][...]
        if e["kind"] == "labels":
            names = np.array(e["names"], dtype=object)
            v = np.empty(len(raw), dtype=object)
            v[:] = None
            ok = raw >= 0
            if len(names):
                v[ok] = names[raw[ok]]
        else:
            v = raw
        coords_out[name] = (e["dim"], v)
    return xr.DataArray(data, dims=tuple(meta["dims"]), coords=coords_out, attrs=meta["attrs"], name=meta["name"])


def plot_type_heatmap(
    source: Any,
    output_path: str | os.PathLike | None = None,
    *,
    level: str = "type_sum",
    log: bool = True,
    type_column: str = "type",
    type_order: Sequence[Any] | None = None,
    confidence: float | None = None,
    max_pixels: int = 2000,
    figsize: tuple[float, float] = (12, 11),
    dpi: int = 150,
    title: str | None = None,
    progress: bool | None = None,
):
    """Whole-brain type x type connectivity heatmap (PNG-ready); returns ``(fig, ax)``.

    Builds the type-level matrix, then draws it with
    :func:`connectome_dask.plotting.plot_type_heatmap`.

    Parameters
    ----------
    source
        A :class:`~connectome_dask.store.Connectome` (type counts aggregated
        out of core with :func:`connectome_dask.aggregate.group_counts`; types
        in natural order (:func:`connectome_dask.labels.natural_type_order`),
        untyped neurons left out), a nested matrix, or a 2-D
        ``xarray.DataArray`` (dense or ``sparse.COO`` data).
    output_path
        Where to write the image.
    level
        ``"type_sum"`` or ``"type_mean"`` (nested matrices / Connectome).
    log
        Colour by ``log10(1 + weight)``.
    type_column, type_order, confidence
        Connectome only: neuron table column with the types, preferred
        order, synapse confidence threshold.
    max_pixels
        Larger matrices are binned (weights summed) to this many pixels per axis.
    progress
        Accepted for symmetry with the builders (the type counts show no bar).

    Returns
    -------
    (matplotlib.figure.Figure, matplotlib.axes.Axes)

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plot_type_heatmap(conn, tmp_path / "types.png", figsize=(4, 4), dpi=50)
    >>> (tmp_path / "types.png").exists(), ax.get_xlabel() == f"postsynaptic type ({conn.neurons.type.nunique()})"
    (True, True)
    >>> plt.close(fig)
    >>> fig, ax = plot_type_heatmap(conn.adjacency(by="type"), tmp_path / "types.png")
    >>> plt.close(fig)
    """
    from . import plotting

    if level not in ("type_sum", "type_mean"):
        raise ValueError(f"level must be 'type_sum' or 'type_mean', got {level!r}")
    rlab = clab = None
    name = None
    if isinstance(source, _NestedBase):
        data: Any = np.asarray(source._type_sum if level == "type_sum" else source._type_mean)
        rlab, clab = list(source._src.boundaries), list(source._tgt.boundaries)
        name = type(source).__name__
    elif hasattr(source, "dims") and hasattr(source, "data"):
        data = source
    elif _is_connectome(source):
        data, order = _type_matrix_from_store(source, level, type_column, type_order, confidence)
        rlab = clab = order
        name = f"{source.meta.get('name')} v{source.meta.get('version')}"
    else:
        raise TypeError(f"source must be a Connectome, nested matrix or DataArray, got {type(source).__name__}")
    return plotting.plot_type_heatmap(
        data, output_path, row_labels=rlab, col_labels=clab, level=level, log=log, max_pixels=max_pixels,
        figsize=figsize, dpi=dpi, title=title, name=name,
    )  # fmt: skip


def _type_matrix_from_store(
    conn, level: str, type_column: str, type_order: Sequence[Any] | None, confidence: float | None
) -> tuple[np.ndarray, list[str]]:
    """Dense (types x types) synapse counts (or means per neuron pair) of a store, and the type order."""
    from .aggregate import group_counts

    neurons = conn.neurons
    if type_column not in neurons.columns:
        raise KeyError(f"neuron table of {conn.path} has no column {type_column!r}")
    types = neurons[type_column]
    order = natural_type_order(types.dropna().unique(), type_order)
    lookup = {t: i for i, t in enumerate(order)}
    codes = np.array([lookup.get(t, -1) if t is not None else -1 for t in _str_array(types)], dtype=np.int32)
    counts = group_counts(conn, codes, codes, len(order), len(order), confidence=confidence)
    data = np.asarray(counts, dtype=np.float64)
    if level == "type_mean":
        sizes = np.bincount(codes[codes >= 0], minlength=len(order)).astype(np.float64)
        denom = np.outer(sizes, sizes)
        data = np.divide(data, denom, out=np.zeros_like(data), where=denom > 0)
    return data, order
