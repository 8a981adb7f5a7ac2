"""crantpy's documented nested-matrix rules, restated in plain pandas (the tests' reference).

Written from crantpy's documentation (the ``crantpy.queries`` API reference)
and, where it is silent, from reading crantpy's code for its semantics; it
shares no code with connectome_dask. Every function works on small pandas
frames and returns plain DataFrames / dicts:

* IDs and labels compare as strings: integers and integral floats as plain
  digits, missing values dropped.
* Annotations: rows with an ID; per ID the first typed row (else the first
  row); ordered by each ID's first row.
* ``annotation_scope="annotated_only"``: synapse rows whose pre AND post IDs
  have an annotation row; the matrix's neurons are those of the kept rows.
* Synapse rows with the same ``id`` count once (the first row kept), after the
  scope and axis filters, except when summing a column.
* Types: natural order (letters upper-cased, then the number, labels without
  one after, then the label); ``type_order`` entries pull the exact label or
  every label with that letter prefix. Within a type: annotation order;
  ``"EPG/PEG"`` by EB column (``cell_instance`` then ``cell_subtype``, label
  ``[LR]n`` at the end), unresolved ones after. Untyped annotated neurons,
  then unannotated ones, each sorted by ID string, after the typed blocks.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

EB = ["R1", "L8", "R2", "L7", "R3", "L6", "R4", "L5", "R5", "L4", "R6", "L3", "R7", "L2", "R8", "L1"]


def missing(v) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def norm(v) -> str:
    if isinstance(v, bool | np.bool_):
        return str(v)
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating) and math.isfinite(float(v)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def resolved(ann: pd.DataFrame, id_col="root_id", type_col="cell_type") -> list[dict]:
    """One dict per annotated ID (id, type or None, the row), in first-seen order."""
    first: dict[str, int] = {}
    best: dict[str, dict] = {}
    for k, row in enumerate(ann.to_dict("records")):
        if missing(row[id_col]):
            continue
        i = norm(row[id_col])
        t = None if missing(row[type_col]) else norm(row[type_col])
        if i not in first:
            first[i] = k
            best[i] = {"id": i, "type": t, "row": row}
        elif best[i]["type"] is None and t is not None:
            best[i] = {"id": i, "type": t, "row": row}
    return [best[i] for i in sorted(first, key=first.get)]


def type_key(label: str):
    m = re.match(r"^([A-Za-z]+)(\d*)(.*)$", label.strip())
    if not m:
        return (label.upper(), math.inf, label)
    return (m.group(1).upper(), int(m.group(2)) if m.group(2) else math.inf, label)


def sort_types(types, type_order=None) -> list[str]:
    generic = sorted(set(types), key=type_key)
    if not type_order:
        return generic
    out = []
    for p in type_order:
        if missing(p):
            continue
        p = norm(p)
        for t in generic:
            if t not in out and (t == p or type_key(t)[0] == p):
                out.append(t)
    return out + [t for t in generic if t not in out]


def eb_rank(row: dict) -> float:
    for c in ("cell_instance", "cell_subtype"):
        v = row.get(c)
        if v is None or missing(v):
            continue
        m = re.search(r"([LR]\d+)\s*$", str(v).strip())
        if m and m.group(1) in EB:
            return EB.index(m.group(1))
    return math.inf


def axis(ids, ann, id_col="root_id", type_col="cell_type", type_order=None):
    """(ordered IDs, boundaries, neuron_to_type in annotation order) of the neuron set ``ids``."""
    ids = set(ids)
    rel = [r for r in resolved(ann, id_col, type_col) if r["id"] in ids]
    typed = [r for r in rel if r["type"] is not None]
    order, bounds = [], {}
    for t in sort_types([r["type"] for r in typed], type_order):
        group = [r for r in typed if r["type"] == t]
        if t == "EPG/PEG":
            group = sorted(group, key=lambda r: eb_rank(r["row"]))  # stable: annotation order among equals
        bounds[t] = (len(order), len(order) + len(group))
        order += [r["id"] for r in group]
    untyped = sorted(r["id"] for r in rel if r["type"] is None)
    annotated = {r["id"] for r in rel}
    order += untyped + sorted(ids - annotated)
    return order, bounds, [(r["id"], r["type"]) for r in typed]


def scoped_rows(syn, ann, scope, pre="pre_pt_root_id", post="post_pt_root_id", id_col="root_id"):
    ok = np.array([not missing(a) and not missing(b) for a, b in zip(syn[pre], syn[post], strict=True)], dtype=bool)
    df = syn.loc[ok].copy()
    df["_pre"] = [norm(v) for v in df[pre]]
    df["_post"] = [norm(v) for v in df[post]]
    if scope == "annotated_only":
        known = {norm(v) for v in ann[id_col] if not missing(v)}
        df = df[df["_pre"].isin(known) & df["_post"].isin(known)]
    return df


def edges(df, mode, wcol=None):
    if mode != "column" and "id" in df.columns:
        df = df.drop_duplicates("id")
    if mode == "column":
        e = df.assign(_w=pd.to_numeric(df[wcol]).fillna(0.0)).groupby(["_pre", "_post"])["_w"].sum()
    else:
        e = df.groupby(["_pre", "_post"]).size().astype(float)
    e = e.rename("w").reset_index()
    if mode == "relative_outgoing":
        e["w"] = e["w"] / e.groupby("_pre")["w"].transform("sum").replace(0, 1)
    elif mode == "relative_incoming":
        e["w"] = e["w"] / e.groupby("_post")["w"].transform("sum").replace(0, 1)
    return e


def dense(e, rows, cols) -> pd.DataFrame:
    out = pd.DataFrame(0.0, index=pd.Index(rows, dtype=object), columns=pd.Index(cols, dtype=object))
    for a, b, w in zip(e["_pre"], e["_post"], e["w"], strict=True):
        if a in out.index and b in out.columns:
            out.loc[a, b] += w
    return out


def nested(syn, ann, mode="relative_outgoing", wcol=None, scope="annotated_only", type_order=None, **cols):
    """(matrix, boundaries, neuron_to_type items) of ``NestedMatrix.from_synapses``."""
    e = edges(scoped_rows(syn, ann, scope, **cols), mode, wcol)
    order, bounds, n2t = axis(set(e["_pre"]) | set(e["_post"]), ann, type_order=type_order)
    return dense(e, order, order), bounds, n2t


def _select(avail, ann, types, neurons):
    def as_set(v):
        if v is None:
            return None
        if isinstance(v, str | bytes) or not hasattr(v, "__iter__"):
            return set() if missing(v) else {norm(v)}
        return {norm(x) for x in v if not missing(x)}

    ts, ns = as_set(types), as_set(neurons)
    if ts is None and ns is None:
        return set(avail)
    out = set()
    if ts is not None:
        out |= {r["id"] for r in resolved(ann) if r["id"] in avail and r["type"] is not None and r["type"] in ts}
    if ns is not None:
        out |= ns & set(avail)
    return out


def directed(syn, ann, mode="relative_outgoing", wcol=None, scope="annotated_only", norm_scope="selected",
             source_types=None, target_types=None, source_neurons=None, target_neurons=None,
             type_order=None, source_type_order=None, target_type_order=None):
    """(matrix, source axis, target axis) of ``DirectedNestedMatrix.from_synapses``."""
    df = scoped_rows(syn, ann, scope)
    src_ids = _select(set(df["_pre"]), ann, source_types, source_neurons)
    tgt_ids = _select(set(df["_post"]), ann, target_types, target_neurons)
    sa = axis(src_ids, ann, type_order=source_type_order if source_type_order is not None else type_order)
    ta = axis(tgt_ids, ann, type_order=target_type_order if target_type_order is not None else type_order)
    if norm_scope == "all" and mode == "relative_outgoing":
        df = df[df["_pre"].isin(src_ids)]
    elif norm_scope == "all" and mode == "relative_incoming":
        df = df[df["_post"].isin(tgt_ids)]
    else:
        df = df[df["_pre"].isin(src_ids) & df["_post"].isin(tgt_ids)]
    return dense(edges(df, mode, wcol), sa[0], ta[0]), sa, ta


def type_mean(mat: pd.DataFrame, rb: dict, cb: dict) -> pd.DataFrame:
    """Mean over every neuron pair of each type block, zeros included."""
    a = mat.to_numpy(dtype=float)
    v = np.array([[a[r0:r1, c0:c1].mean() for c0, c1 in cb.values()] for r0, r1 in rb.values()], dtype=float)
    return pd.DataFrame(v.reshape(len(rb), len(cb)), index=list(rb), columns=list(cb))


def type_sum(mat: pd.DataFrame, rb: dict, cb: dict) -> pd.DataFrame:
    a = mat.to_numpy(dtype=float)
    v = np.array([[a[r0:r1, c0:c1].sum() for c0, c1 in cb.values()] for r0, r1 in rb.values()], dtype=float)
    return pd.DataFrame(v.reshape(len(rb), len(cb)), index=list(rb), columns=list(cb))


def assert_matches(m, ref: pd.DataFrame, rb: dict, cb: dict | None = None, exact: bool = False) -> None:
    """A nested matrix equals the reference: axes, boundaries, values, type matrices."""
    cb = rb if cb is None else cb
    got = m.matrix
    assert list(got.index) == list(ref.index)
    assert list(got.columns) == list(ref.columns)
    rbs = m.type_boundaries if hasattr(m, "type_boundaries") else m.source_type_boundaries
    cbs = m.type_boundaries if hasattr(m, "type_boundaries") else m.target_type_boundaries
    assert dict(rbs) == rb and list(rbs) == list(rb)
    assert dict(cbs) == cb and list(cbs) == list(cb)
    if exact:
        np.testing.assert_array_equal(got.to_numpy(), ref.to_numpy(dtype=float))
    else:
        np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(dtype=float), rtol=1e-12, atol=1e-12)
    if len(ref) and len(ref.columns):
        np.testing.assert_allclose(m.mean_type_matrix.to_numpy(), type_mean(ref, rb, cb).to_numpy(),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(m.sum_type_matrix.to_numpy(), type_sum(ref, rb, cb).to_numpy(),
                                   rtol=1e-12, atol=1e-12)


def box_inside(points, lo, hi) -> np.ndarray:
    """Points strictly inside the axis-aligned box ``[lo, hi]`` (the tests keep points off the faces)."""
    p = np.asarray(points, dtype=float)
    return np.all((p > np.asarray(lo, dtype=float)) & (p < np.asarray(hi, dtype=float)), axis=1)


def by_neuropil(syn, ann, inside: dict, mode="relative_outgoing", scope="annotated_only", include_other=True,
                **cols) -> dict:
    """crantpy's ``from_synapses_by_neuropil``: ``{name: (matrix, boundaries, neuron_to_type)}``.

    ``inside`` maps each listed neuropil (in order) to a boolean mask over the
    rows of ``syn``: a synapse counts in EVERY listed neuropil containing it,
    and in ``"other"`` when it is in none of them. A neuropil appears when any
    of its synapses survives the annotation scope.
    """
    scoped = scoped_rows(syn, ann, scope, **cols)
    keep = syn.index.isin(scoped.index)
    masks = dict(inside)
    if include_other:
        masks["other"] = ~np.any([np.asarray(m, dtype=bool) for m in inside.values()], axis=0)
    out = {}
    for name, m in masks.items():
        m = np.asarray(m, dtype=bool) & keep
        if m.any():
            out[name] = nested(syn[m], ann, mode, None, scope, **cols)
    return out
