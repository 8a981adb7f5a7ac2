"""Column plans: CAVE / neuPrint dialect detection, column mapping and schema checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .._fsutil import check_name
from ..errors import IngestError
from .values import _is_list, _is_numeric, _is_texty

__all__ = ["DIALECTS"]

DIALECTS = ("auto", "cave", "flywire", "neuprint")


_POSITION_TARGETS = ("x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post", "x", "y", "z")


_FLOAT_TARGETS = ("confidence", "confidence_pre", "confidence_post", "size", "cleft_score")


_ROI_TARGETS = ("roi_pre", "roi_post")


_LIST_TARGETS = {"pre_position": "_pre", "post_position": "_post", "position": ""}


@dataclass
class _Plan:
    """Which source column feeds which store column."""

    dialect: str
    ids: dict[str, str]  # pre/post -> source column
    positions: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    floats: dict[str, str] = field(default_factory=dict)
    extras: dict[str, str] = field(default_factory=dict)
    rois: dict[str, str] = field(default_factory=dict)
    # per-file batch transform of a release dialect's quirks: prep(file)(batch, offset) -> batch
    prep: Callable[[str], Callable[[Any, int], Any]] | None = None
    # ROI values that mean "in no ROI" (stored as -1): Codex UNASGD, neuPrint NotPrimary
    roi_none: frozenset[str] = frozenset()
    # column names of header-less CSV files (Codex v630), else None
    csv_header: list[str] | None = None
    # the store kind: "synapses" or "connections" (weight = synapses of the row's connection)
    kind: str = "synapses"

    def source_columns(self) -> list[str]:
        cols = list(self.ids.values()) + [c for c, _ in self.positions.values()]
        cols += list(self.floats.values()) + list(self.extras.values()) + list(self.rois.values())
        return list(dict.fromkeys(cols))

    def describe(self) -> dict[str, str]:
        out = dict(self.ids)
        for t, (c, k) in self.positions.items():
            out[t] = c if k is None else f"{c}[{k}]"
        out.update(self.floats)
        out.update(self.extras)
        out.update(self.rois)
        return out


_CAVE_IDS = ("pre_pt_root_id", "post_pt_root_id")


_NEUPRINT_IDS = ("bodyId_pre", "bodyId_post")


def _position_source(
    names: set[str], candidates: Sequence[str], what: str, file: str
) -> tuple[str, str | tuple[str, str, str]] | None:
    """Find a list column or an x/y/z split of one of the candidate names."""
    for base in candidates:
        if base in names:
            return ("list", base)
        split = (f"{base}_x", f"{base}_y", f"{base}_z")
        present = [c for c in split if c in names]
        if len(present) == 3:
            return ("split", split)
        if present:
            missing = [c for c in split if c not in names]
            raise IngestError(
                f"{file}: {what} position columns incomplete: found {present}, missing {missing}",
                file=file,
                column=missing[0],
            )
    return None


def _cave_plan(names: set[str], file: str) -> _Plan:
    plan = _Plan("cave", {"pre": _CAVE_IDS[0], "post": _CAVE_IDS[1]})
    found: dict[str, tuple[str, str | tuple[str, str, str]]] = {}
    for side, cands in (
        ("_pre", ("pre_pt_position", "pre")),
        ("_post", ("post_pt_position", "post")),
        ("", ("ctr_pt_position",)),
    ):
        src = _position_source(names, cands, side.strip("_") or "centre", file)
        if src is not None:
            found[side] = src
    sides = ["_pre", "_post"] if ("_pre" in found or "_post" in found) else []
    if "" in found and not ("_pre" in found and "_post" in found):
        sides.append("")
    for side in sides:
        if side not in found:
            continue
        _, column = found[side]  # ("list", name) or ("split", (x, y, z) names)
        for k, axis in enumerate("xyz"):
            plan.positions[f"{axis}{side}"] = (column, k) if isinstance(column, str) else (column[k], None)
    for target, col in (
        ("confidence", "connection_score"),
        ("cleft_score", "cleft_score"),
        ("size", "size"),
    ):
        if col in names:
            plan.floats[target] = col
    return plan


def _neuprint_plan(names: set[str], file: str) -> _Plan:
    plan = _Plan("neuprint", {"pre": _NEUPRINT_IDS[0], "post": _NEUPRINT_IDS[1]})
    for side in ("pre", "post"):
        cols = [f"{a}_{side}" for a in "xyz"]
        present = [c for c in cols if c in names]
        if present and len(present) < 3:
            missing = [c for c in cols if c not in names]
            raise IngestError(
                f"{file}: {side} position columns incomplete: found {present}, missing {missing}",
                file=file,
                column=missing[0],
            )
        if present:
            for c in cols:
                plan.positions[c] = (c, None)
    for c in ("confidence_pre", "confidence_post", "confidence"):
        if c in names:
            plan.floats[c] = c
    for c in _ROI_TARGETS:
        if c in names:
            plan.rois[c] = c
    return plan


def _make_plan(
    schema: pa.Schema, file: str, dialect: str, columns: Mapping[str, str] | None
) -> _Plan:
    names = set(schema.names)
    d = str(dialect or "auto").lower()
    if d not in DIALECTS:
        raise IngestError(f"unknown dialect {dialect!r}; expected one of {list(DIALECTS)}")
    if columns is not None and not isinstance(columns, Mapping):
        raise IngestError(
            "columns= must be a mapping of store column to source column, e.g. "
            f"{{'pre': 'src', 'post': 'dst'}}; got {type(columns).__name__} {columns!r:.80}"
        )
    columns = dict(columns or {})
    explicit = "pre" in columns and "post" in columns
    if explicit and d == "auto":
        plan = _Plan("columns", {})
    else:
        if d == "auto":
            cave = any(c in names for c in _CAVE_IDS)
            neu = any(c in names for c in _NEUPRINT_IDS)
            if cave and neu:
                raise IngestError(
                    f"{file}: ambiguous columns: both CAVE/FlyWire ({list(_CAVE_IDS)}) and "
                    f"neuPrint ({list(_NEUPRINT_IDS)}) ID columns are present; pass "
                    "dialect='cave' or dialect='neuprint' (or columns={...})",
                    file=file,
                )
            if not cave and not neu:
                raise IngestError(
                    f"{file}: cannot recognise the synapse table: found columns "
                    f"{sorted(names)}; expected CAVE/FlyWire {list(_CAVE_IDS)} or neuPrint "
                    f"{list(_NEUPRINT_IDS)}, or an explicit mapping "
                    "columns={'pre': ..., 'post': ...}",
                    file=file,
                )
            d = "cave" if cave else "neuprint"
        plan = _cave_plan(names, file) if d in ("cave", "flywire") else _neuprint_plan(names, file)
    _apply_columns(plan, columns)
    for t in ("pre", "post"):
        if t not in plan.ids:
            raise IngestError(f"columns= must map both 'pre' and 'post' (got {sorted(columns)})")
    return plan


def _apply_columns(plan: _Plan, columns: Mapping[str, str]) -> None:
    for target, col in columns.items():
        if not isinstance(col, str):
            raise IngestError(f"columns= [{target!r}] must be a column name, got {col!r}")
        for d in (plan.ids, plan.positions, plan.floats, plan.extras, plan.rois):
            d.pop(target, None)
        if target in ("pre", "post"):
            plan.ids[target] = col
        elif target in _POSITION_TARGETS:
            plan.positions[target] = (col, None)
        elif target in _LIST_TARGETS:
            side = _LIST_TARGETS[target]
            for k, axis in enumerate("xyz"):
                plan.positions[f"{axis}{side}"] = (col, k)
        elif target in _FLOAT_TARGETS:
            plan.floats[target] = col
        elif target in _ROI_TARGETS:
            plan.rois[target] = col
        else:
            try:
                check_name(target, "store column", error=IngestError)
            except IngestError as e:
                raise IngestError(f"columns=: {e}", column=col) from None
            plan.extras[target] = col


def _check_schema(plan: _Plan, schema: pa.Schema, file: str) -> None:
    """Every mapped column exists in this file and has a usable type."""
    names = set(schema.names)
    for c in plan.source_columns():
        if c not in names:
            used = [t for t, v in plan.describe().items() if v.split("[")[0] == c]
            raise IngestError(
                f"{file}: required column {c!r} (for {used}) is missing; the file has "
                f"columns {sorted(names)}",
                file=file,
                column=c,
            )
    for t, (c, k) in plan.positions.items():
        typ = schema.field(c).type
        if k is not None and not (_is_list(typ) or _is_texty(typ) or pa.types.is_null(typ)):
            raise IngestError(
                f"{file}: column {c!r} should hold [x, y, z] lists for {t}, but has type {typ}",
                file=file,
                column=c,
            )
        if k is None and not (_is_numeric(typ) or _is_texty(typ)):
            raise IngestError(
                f"{file}: column {c!r} ({t}) must be numeric, but has type {typ}",
                file=file,
                column=c,
            )
    for t, c in {**plan.floats, **plan.extras}.items():
        typ = schema.field(c).type
        if not (_is_numeric(typ) or _is_texty(typ)):
            raise IngestError(
                f"{file}: column {c!r} ({t}) must be numeric, but has type {typ}",
                file=file,
                column=c,
            )
    for t, c in plan.rois.items():
        typ = schema.field(c).type
        if not (_is_texty(typ) or pa.types.is_null(typ)):
            raise IngestError(
                f"{file}: column {c!r} ({t}) must hold ROI names (strings), but has type {typ}",
                file=file,
                column=c,
            )
