"""The neuron tables of a release (annotations, classification, cell types, neo4j Neurons), merged into one."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import IngestError
from .dialects import REGISTRY, Release  # noqa: F401  (REGISTRY: the doctests)
from .values import _list_to_xyz

__all__ = ["release_neurons"]


def _read_any(path: str) -> pd.DataFrame:
    from .sources import _format_of

    low = path.lower()
    try:
        if low.endswith((".tsv", ".tsv.gz")):
            return pd.read_csv(path, sep="\t", low_memory=False)
        fmt = _format_of(path)
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "ipc":
            return pd.read_feather(path)
        return pd.read_csv(path, low_memory=False)
    except (pa.ArrowException, ValueError, OSError, UnicodeDecodeError) as e:
        raise IngestError(f"{path}: cannot read the neuron table ({type(e).__name__}: {e})", file=path) from None


def _merge_tables(frames: list[tuple[str, pd.DataFrame]], idcol: str) -> pd.DataFrame:
    out: pd.DataFrame | None = None
    for f, df in frames:
        if idcol not in df.columns:
            raise IngestError(f"{f}: the neuron table needs the column {idcol!r}; found {sorted(map(str, df.columns))}",
                              file=f, column=idcol, row=0)
        try:
            df = df.drop_duplicates()
        except TypeError:  # list cells (somaLocation): compare their text
            df = df.loc[~df.astype(str).duplicated()]
        if out is None:
            out = df
        else:
            new = [c for c in df.columns if c == idcol or c not in out.columns]
            out = out.merge(df[new], on=idcol, how="outer")
    assert out is not None
    return out


_BOOL_TEXT = {"TRUE": True, "FALSE": False, "true": True, "false": False, "True": True, "False": False}


def _text_booleans(df: pd.DataFrame) -> pd.DataFrame:
    """Columns holding only ``"TRUE"/"FALSE"`` (and blanks) become nullable booleans."""
    for c in df.columns:
        s = df[c]
        if s.dtype != object:
            continue
        vals = set(s.dropna().unique().tolist())
        if vals and all(isinstance(v, str) for v in vals) and vals <= set(_BOOL_TEXT):
            df[c] = s.map(_BOOL_TEXT).astype("boolean")
    return df


def _xyz_strings(df: pd.DataFrame, column: str, file: str, scale: Sequence[float] | None) -> pd.DataFrame:
    """A ``"x, y, z"`` / ``"[x y z]"`` / ``"{x:1,y:2,z:3}"`` text column -> three float columns."""
    s = df[column]
    ok = s.notna().to_numpy()
    xyz = np.full((len(s), 3), np.nan)
    if ok.any():
        arr = pa.array(s[ok].astype(str).tolist(), type=pa.string())
        xyz[ok] = _list_to_xyz(arr, file, column, 0)
    if scale is not None:
        xyz = xyz * np.asarray(scale, dtype=np.float64)
    df = df.drop(columns=[column])
    for k, a in enumerate("xyz"):
        df[f"{column}_{a}"] = xyz[:, k]
    return df


_NEO4J_TYPED = re.compile(r"^(?P<name>[^:]*):(?P<type>[A-Za-z]+(\[\])?|point\{[^}]*\})$")


def _neo4j_neurons(path: str) -> pd.DataFrame:
    """``Neuprint_Neurons_*.csv``: typed headers, ``true``/blank booleans, points, ``:LABEL``."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], low_memory=False)
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if c.startswith(":ID"):
            continue
        if c == ":LABEL":
            labels = df[c].fillna("").str.split(";")
            out["label"] = ["Neuron" if "Neuron" in v else "Segment" for v in labels]
            continue
        m = _NEO4J_TYPED.match(c)
        name, typ = (m.group("name"), m.group("type")) if m else (c, "string")
        if typ == "boolean":
            if name in ("cropped",):
                out[name] = df[c].map({"true": True, "false": False}).astype("boolean")
            continue  # an "<ROI>:boolean" membership flag: roiInfo holds the counts
        if typ in ("long", "int"):
            out[name] = pd.array(pd.to_numeric(df[c]), dtype="Int64")
        elif typ in ("float", "double"):
            out[name] = pd.to_numeric(df[c]).astype("float64")
        elif typ.startswith("point"):
            ok = df[c].notna().to_numpy()
            pts: list[Any] = [None] * len(df)
            if ok.any():
                xyz = _list_to_xyz(pa.array(df[c][ok].tolist(), pa.string()), path, c, 0)
                for i, v in zip(np.flatnonzero(ok), xyz, strict=True):
                    pts[i] = [int(x) if float(x).is_integer() else float(x) for x in v]
            out[name] = pts
        else:
            out[name] = df[c]
    if "roiInfo" in out.columns:  # JSON in a CSV field (quotes doubled): check it parses
        for k, v in enumerate(out["roiInfo"].tolist()):
            if isinstance(v, str) and v:
                try:
                    json.loads(v)
                except ValueError as e:
                    raise IngestError.at(path, "roiInfo:string", k, f"roiInfo is not JSON ({e})", v) from None
    return out


def _body_table(path: str) -> pd.DataFrame:
    """A per-body table keyed ``body`` (e.g. ``hemibrain-v1.2-body-mean-neurotransmitters.feather``)."""
    df = _read_any(path)
    if "bodyId" not in df.columns and "body" in df.columns:
        df = df.rename(columns={"body": "bodyId"})
    return df


def release_neurons(rel: Release) -> pd.DataFrame | None:
    """The neuron table of a release: its neuron files read and merged by the dialect's rules.

    Parameters
    ----------
    rel
        The release (from :func:`find_release`).

    Returns
    -------
    pandas.DataFrame or None
        A table :func:`~connectome_dask.ingest.read_neuron_table` accepts, or
        ``None`` when the release has no neuron file.

    Raises
    ------
    IngestError
        A neuron file cannot be read or lacks its ID column.

    Examples
    --------
    >>> release_neurons(Release(REGISTRY["microns"], [])) is None
    True
    """
    if not rel.neurons:
        return None
    name = rel.dialect.name
    if name == "neuprint-neo4j":
        nodes = [f for f in rel.neurons if os.path.basename(f).lower().startswith("neuprint_neurons_")]
        extra = [f for f in rel.neurons if f not in nodes]
        base = pd.concat([_neo4j_neurons(f) for f in nodes], ignore_index=True) if nodes else None
        frames = ([("Neuprint_Neurons", base)] if base is not None else []) + [
            (f, _body_table(f)) for f in extra]
        return _merge_tables(frames, "bodyId") if len(frames) > 1 else frames[0][1]
    frames = [(f, _read_any(f)) for f in rel.neurons]
    if name in ("janelia-flat", "neuprint-compact"):
        frames = [(f, df.rename(columns={"body": "bodyId"}) if "bodyId" not in df.columns else df)
                  for f, df in frames]
        df = _merge_tables(frames, "bodyId")
    else:
        df = _merge_tables(frames, "root_id")
    if name == "codex" and "type" not in df.columns and "primary_type" in df.columns:
        df = df.rename(columns={"primary_type": "type"})
    if name == "banc":
        df = _text_booleans(df)
        if "position" in df.columns:
            df = _xyz_strings(df, "position", rel.neurons[0], (4.0, 4.0, 45.0))
    return df


