"""Matrix axes: the resolved annotation table and crantpy's neuron ordering."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ConnectomeDaskError
from ..labels import is_missing, natural_type_order, str_array, str_value
from .common import _log, _require_columns

__all__ = ["EB_COLUMN_ORDER", "WITHIN_TYPE_ORDER_RULES"]

#: EB column order used for EPG/PEG neurons (crantpy's order).
EB_COLUMN_ORDER = ("R1", "L8", "R2", "L7", "R3", "L6", "R4", "L5", "R5", "L4", "R6", "L3", "R7", "L2", "R8", "L1")

#: Types whose neurons are ordered by a column label instead of annotation
#: order: type name -> (annotation columns to read, in priority order; rank of labels).
#: As crantpy: ``cell_instance`` then ``cell_subtype`` (never ``instance``).
WITHIN_TYPE_ORDER_RULES: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {
    "EPG/PEG": (("cell_instance", "cell_subtype"), {c: i for i, c in enumerate(EB_COLUMN_ORDER)}),
}
_MAX_LOGGED_IDS = 10
_COLUMN_LABEL = re.compile(r"([LR]\d+)\s*$")


class _Annotations:
    """Annotation table resolved once: one row per ID (first seen, typed rows preferred)."""

    def __init__(self, df: pd.DataFrame, id_col: str, type_col: str) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"neuron_annotations must be a pandas DataFrame, got {type(df).__name__}")
        _require_columns(df, [id_col, type_col], "neuron_annotations")
        ids = str_array(df[id_col])
        types = str_array(df[type_col])
        keep = np.array([i is not None for i in ids], dtype=bool)
        order = np.arange(len(df))
        tmp = pd.DataFrame({"id": ids[keep], "row": order[keep], "typed": np.array([t is not None for t in types[keep]])})
        tmp["first"] = tmp.groupby("id", sort=False)["row"].transform("min")
        tmp = tmp.sort_values(["first", "typed", "row"], ascending=[True, False, True], kind="stable")
        tmp = tmp.drop_duplicates("id", keep="first")
        rows = tmp["row"].to_numpy()
        self.ids = ids[rows]
        self.types = types[rows]
        self.type_col = type_col
        self.index = pd.Index(self.ids)
        inst_col = next((c for c in ("instance", "cell_instance") if c in df.columns), None)
        self.instances = str_array(df[inst_col])[rows] if inst_col else None
        self._label_cols = {
            c: str_array(df[c])[rows]
            for rule in WITHIN_TYPE_ORDER_RULES.values()
            for c in rule[0]
            if c in df.columns
        }

    def positions(self, universe: np.ndarray) -> np.ndarray:
        """Annotation row of each universe ID (-1 = not annotated)."""
        return self.index.get_indexer(universe)

    def column_rank(self, rows: np.ndarray, type_name: str) -> np.ndarray | None:
        """EB-column rank of the annotation rows ``rows`` of type ``type_name`` (inf = unresolved).

        Each neuron whose label cannot be resolved is logged at WARNING, as crantpy does.
        """
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
        for j in np.flatnonzero(~np.isfinite(out)).tolist():
            _log.warning(
                "Could not resolve a ranked column label for neuron %s from columns %s; "
                "it will be ordered after ranked neurons",
                self.ids[rows[j]], cols,
            )
        return out


class _Axis:
    """One ordered matrix axis: universe codes, IDs, types, boundaries."""

    __slots__ = ("codes", "ids", "types", "instances", "boundaries", "int_ids", "ann_rank", "n2t")

    def __init__(self, codes, ids, types, instances, boundaries, int_ids=None, ann_rank=None, n2t=None) -> None:
        self.codes = np.asarray(codes, dtype=np.int64)
        self.ids = np.asarray(ids, dtype=object)
        self.types = np.asarray(types, dtype=object)
        self.instances = np.asarray(instances, dtype=object)
        self.boundaries = dict(boundaries)
        #: The IDs as int64 when known from the input (``ids`` are their strings), else None.
        self.int_ids = None if int_ids is None else np.asarray(int_ids, dtype=np.int64)
        #: Annotation row of each typed neuron (the first ``n_typed``): ``neuron_to_type``
        #: iterates in annotation order, as crantpy's. None: axis order.
        self.ann_rank = None if ann_rank is None else np.asarray(ann_rank, dtype=np.int64)
        #: The neuron -> type mapping given to a constructor, kept as given (crantpy), else None.
        self.n2t = n2t

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_typed(self) -> int:
        return max((e for _, e in self.boundaries.values()), default=0)

    @property
    def type_sizes(self) -> np.ndarray:
        return np.array([e - s for s, e in self.boundaries.values()], dtype=np.int64)

    def neuron_to_type(self) -> dict[str, Any]:
        """Neuron ID -> type of the typed neurons, in annotation order (crantpy's ``id_map``)."""
        if self.n2t is not None:
            return dict(self.n2t)
        n = self.n_typed
        ids, types = self.ids[:n], self.types[:n]
        if self.ann_rank is not None and len(self.ann_rank) == n:
            o = np.argsort(self.ann_rank, kind="stable")
            ids, types = ids[o], types[o]
        return dict(zip(ids.tolist(), types.tolist(), strict=True))

    def indicator(self) -> sp.csr_matrix:
        """Sparse (n_neurons, n_types) 0/1 matrix of typed neurons."""
        n = len(self)
        sizes = self.type_sizes
        rows = np.arange(self.n_typed, dtype=np.int64)
        cols = np.repeat(np.arange(len(sizes)), sizes)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(sizes)))

    def body_ids(self) -> np.ndarray:
        """IDs as int64 when all are integers, else as str."""
        if self.int_ids is not None:
            return self.int_ids
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
        universe_int: np.ndarray | None = None,
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
        _log_axis(universe, untyped, missing, ann.type_col, boundaries, len(codes))
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
        int_ids = None if universe_int is None else universe_int[all_codes]
        return cls(all_codes, universe[all_codes], types, inst, boundaries, int_ids, ann_rank=t_pos)


def _log_axis(universe, untyped, missing, type_col: str, boundaries: dict, n: int) -> None:
    """crantpy's per-axis messages: WARNING for untyped / unannotated neurons, INFO for the order."""
    if len(untyped):
        _log.warning(
            "%d neuron(s) present in the matrix axis have annotation rows but missing %s; they will appear "
            "in the matrix but are excluded from type-level analysis: %s",
            len(untyped), type_col, universe[untyped[:_MAX_LOGGED_IDS]].tolist(),
        )
    if len(missing):
        _log.warning(
            "%d neuron(s) present in the matrix axis but missing from annotations; they will appear in the "
            "matrix but are excluded from type-level analysis: %s",
            len(missing), universe[missing[:_MAX_LOGGED_IDS]].tolist(),
        )
    _log.info("Resolved nested ordering with %d type(s) and %d neuron(s)", len(boundaries), n)
    _log.info("Resolved type order: %s", list(boundaries)[:200])
    if _log.isEnabledFor(logging.DEBUG):
        for name, (s, e) in boundaries.items():
            _log.debug("Type %s occupies ordered_neurons[%d:%d] with %d neuron(s)", name, s, e, e - s)


def _check_axis_parts(matrix, ordered, boundaries, neuron_to_type, axis_name: str) -> _Axis:
    """Validate constructor parts (IDs, type boundaries, neuron -> type) of one axis and build it."""
    ids = [str_value(i) for i in ordered]
    if any(is_missing(i) for i in ordered):
        raise ConnectomeDaskError(f"{axis_name} contains null neuron IDs")
    seen: set[str] = set()
    dups = []  # every repeated occurrence, in order
    for i in ids:
        if i in seen:
            dups.append(i)
        seen.add(i)
    if dups:
        raise ConnectomeDaskError(f"{axis_name} contains duplicate neuron IDs: {dups[:10]}")
    n2t: dict[str, Any] = {
        str_value(k): (v if is_missing(v) else str_value(v)) for k, v in neuron_to_type.items() if not is_missing(k)
    }
    extra = sorted(set(n2t) - set(ids))
    if extra:
        raise ConnectomeDaskError(f"neuron_to_type contains neurons not present in {axis_name}: {extra[:10]}")
    b = {str_value(k): (int(s), int(e)) for k, (s, e) in boundaries.items()}
    expected = 0
    for name, (s, e) in b.items():
        if s != expected:
            raise ConnectomeDaskError("type_boundaries must be contiguous, non-overlapping, and start at 0")
        if e > len(ids) or e <= s:
            raise ConnectomeDaskError(f"type boundary {name!r} has invalid slice ({s}, {e})")
        bad = [i for i in ids[s:e] if str(n2t.get(i)) != name]  # crantpy compares str(type): None in "None"
        if bad:
            raise ConnectomeDaskError(f"type boundary {name!r} does not match neuron_to_type for neurons {bad[:10]}")
        expected = e
    after = [i for i in ids[expected:] if not is_missing(n2t.get(i))]
    if after:
        raise ConnectomeDaskError("annotated neurons must appear within type_boundaries before any unassigned neurons")
    types = np.empty(len(ids), dtype=object)
    types[:] = None
    for k in range(expected):
        v = n2t.get(ids[k])
        types[k] = None if is_missing(v) else v
    inst = np.empty(len(ids), dtype=object)
    inst[:] = None
    return _Axis(np.arange(len(ids)), np.array(ids, dtype=object), types, inst, b, n2t=n2t)
