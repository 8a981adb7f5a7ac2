"""neuPrint neo4j exports (``Neuprint_*.csv``): Meta, the synapse join and the per-ROI connection table.

The synapse join (sites, partner links, synapse sets) is done in memory: it is
not bounded for whole-brain exports (see the README and benchmarks/results/dialects.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import IngestError
from .dialects import REGISTRY, Release, _missing  # noqa: F401  (REGISTRY: the doctests)
from .release_neurons import _NEO4J_TYPED
from .values import _list_to_xyz

__all__ = ["neo4j_connection_table", "neo4j_meta", "neo4j_synapse_table"]


def _read_csv_table(path: str, column_types: Mapping[str, pa.DataType] | None = None) -> pa.Table:
    import pyarrow.csv as pacsv

    try:
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=dict(column_types or {}), strings_can_be_null=True))
    except (pa.ArrowException, OSError) as e:
        raise IngestError(f"{path}: cannot read the file ({type(e).__name__}: {e})", file=path) from None


def _need(t: pa.Table, path: str, cols: Sequence[str]) -> None:
    for c in cols:
        if c not in t.column_names:
            raise _missing(path, "neuprint-neo4j", c, t.column_names, "neo4j export")


def neo4j_meta(rel: Release) -> dict[str, Any]:
    """``Neuprint_Meta_*.csv``: voxel size, primary ROIs and the ROI hierarchy.

    Parameters
    ----------
    rel
        The release.

    Returns
    -------
    dict
        ``voxel_size`` (list of 3 floats or None), ``primary`` (list),
        ``hierarchy`` (neuPrint's ``{name, children}`` form or ``{}``), ``dataset``.

    Raises
    ------
    IngestError
        The meta file is unreadable, its ``roiHierarchy`` is not JSON, or its
        voxel size is not three numbers.

    Examples
    --------
    >>> neo4j_meta(Release(REGISTRY["neuprint-neo4j"], []))["primary"]
    []
    """
    out: dict[str, Any] = {"voxel_size": None, "primary": [], "hierarchy": {}, "dataset": None}
    if not rel.meta:
        return out
    path = rel.meta[0]
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    cols = {(_NEO4J_TYPED.match(c).group("name") if _NEO4J_TYPED.match(c) else c): c  # type: ignore[union-attr]
            for c in df.columns}
    row = df.iloc[0] if len(df) else None
    if row is None:
        return out
    if "voxelSize" in cols and row[cols["voxelSize"]]:
        try:
            vs = [float(v) for v in row[cols["voxelSize"]].split(";")]
        except ValueError:
            vs = []
        if len(vs) != 3:
            raise IngestError.at(path, cols["voxelSize"], 0, "voxelSize must be 3 ';'-joined numbers",
                                 row[cols["voxelSize"]])
        out["voxel_size"] = vs
    if "primaryRois" in cols and row[cols["primaryRois"]]:
        out["primary"] = [r for r in row[cols["primaryRois"]].split(";") if r]
    if "roiHierarchy" in cols and row[cols["roiHierarchy"]]:
        try:
            out["hierarchy"] = json.loads(row[cols["roiHierarchy"]])
        except ValueError as e:
            raise IngestError.at(path, cols["roiHierarchy"], 0, f"roiHierarchy is not JSON ({e})",
                                 row[cols["roiHierarchy"]]) from None
    if "dataset" in cols:
        out["dataset"] = row[cols["dataset"]] or None
    return out


def _depths(hierarchy: Any) -> dict[str, int]:
    depth: dict[str, int] = {}
    if isinstance(hierarchy, Mapping) and "name" in hierarchy:
        stack = [(hierarchy, 0)]
        while stack:
            node, k = stack.pop()
            depth[str(node["name"])] = k
            stack.extend((c, k + 1) for c in node.get("children", []) or [])
    return depth


def _roi_of_sites(t: pa.Table, roi_cols: list[str], depth: Mapping[str, int]) -> pa.Array:
    """One ROI name per site: its deepest ``true`` ROI column (ties: the first column)."""
    names = [c[: -len(":boolean")] for c in roi_cols]
    order = sorted(range(len(roi_cols)), key=lambda k: (-depth.get(names[k], 0), k))
    out = pa.nulls(t.num_rows, pa.string())
    for k in reversed(order):  # the best-ranked column is applied last
        col = t.column(roi_cols[k])
        if pa.types.is_boolean(col.type):
            flag = pc.fill_null(col, False)
        else:
            flag = pc.fill_null(pc.equal(pc.utf8_lower(pc.cast(col, pa.string())), "true"), False)
        out = pc.if_else(flag, pa.scalar(names[k]), out)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _one(files: Sequence[str], prefix: str) -> list[str]:
    return [f for f in files if os.path.basename(f).lower().startswith(prefix)]


def neo4j_synapse_table(rel: Release, depth: Mapping[str, int]) -> pa.Table:
    """Synapse rows (``bodyId_pre, bodyId_post, x_pre ... z_post, confidence_*, roi_*``) of a neo4j export.

    Joins ``Neuprint_Synapse_Connections`` (pre site -> post site) with the
    sites (``Neuprint_Synapses``) and their bodies (``SynapseSet_to_Synapses``
    then ``Neuron_to_SynapseSet``), in memory.

    Parameters
    ----------
    rel
        The release (its synapse files and the link tables in ``others``).
    depth
        ROI name -> depth in the hierarchy (the most specific ROI of a site wins).

    Returns
    -------
    pyarrow.Table
        Positions in the export's voxels.

    Raises
    ------
    IngestError
        A link table is missing or lacks a column, or a site has no body.

    Examples
    --------
    >>> rel = Release(REGISTRY["neuprint-neo4j"], [])
    >>> neo4j_synapse_table(rel, {})
    Traceback (most recent call last):
    ...
    connectome_dask.errors.IngestError: neo4j export: no Neuprint_Synapses_*.csv file
    """
    if not rel.synapses:
        raise IngestError("neo4j export: no Neuprint_Synapses_*.csv file")
    conns = _one(rel.others, "neuprint_synapse_connections")
    s2s = _one(rel.others, "neuprint_synapseset_to_synapses")
    n2s = _one(rel.others, "neuprint_neuron_to_synapseset")
    for what, fs in (("Neuprint_Synapse_Connections_*", conns), ("Neuprint_SynapseSet_to_Synapses_*", s2s),
                     ("Neuprint_Neuron_to_SynapseSet_*", n2s)):
        if not fs:
            raise IngestError(f"{rel.synapses[0]}: the neo4j export needs {what}.csv beside the synapse "
                              "file (the synapse partners and their bodies)", file=rel.synapses[0])
    i64 = pa.int64()
    sites = []
    for f in rel.synapses:
        t = _read_csv_table(f, {":ID(Syn-ID)": i64, "location:point{srid:9157}": pa.string(),
                                "type:string": pa.string()})
        _need(t, f, [":ID(Syn-ID)", "type:string", "location:point{srid:9157}"])
        xyz = _list_to_xyz(t.column("location:point{srid:9157}").combine_chunks(), f,
                           "location:point{srid:9157}", 0)
        roi_cols = [c for c in t.column_names if c.endswith(":boolean")]
        conf = (pc.cast(t.column("confidence:float"), pa.float64()) if "confidence:float" in t.column_names
                else pa.nulls(t.num_rows, pa.float64()))
        sites.append(pa.table({"site": t.column(":ID(Syn-ID)"), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                               "confidence": conf, "roi": _roi_of_sites(t, roi_cols, depth)}))
    site = pa.concat_tables(sites)

    def links(files: list[str], a: str, b: str) -> pa.Table:
        parts = []
        for f in files:
            t = _read_csv_table(f, {a: i64, b: i64})
            _need(t, f, [a, b])
            parts.append(t.select([a, b]))
        return pa.concat_tables(parts)

    pairs = links(conns, ":START_ID(Syn-ID)", ":END_ID(Syn-ID)").rename_columns(["pre_site", "post_site"])
    set_syn = links(s2s, ":START_ID(SynSet-ID)", ":END_ID(Syn-ID)").rename_columns(["set", "site"])
    body_set = links(n2s, ":START_ID(Body-ID)", ":END_ID(SynSet-ID)").rename_columns(["body", "set"])
    site_body = set_syn.join(body_set, "set", join_type="inner").select(["site", "body"])
    site_body = site_body.group_by("site").aggregate([("body", "min")]).rename_columns(["site", "body"])
    site = site.join(site_body, "site", join_type="left outer")
    out = pairs
    for side in ("pre", "post"):
        s = site.rename_columns([f"{c}_{side}" if c != "site" else f"{side}_site" for c in site.column_names])
        out = out.join(s, f"{side}_site", join_type="left outer")
    for side in ("pre", "post"):
        nobody = pc.is_null(out.column(f"body_{side}"))
        if pc.any(nobody).as_py():
            i = int(np.argmax(nobody.to_numpy(zero_copy_only=False)))
            sid = out.column(f"{side}_site")[i].as_py()
            raise IngestError.at(conns[0], ":START_ID(Syn-ID)" if side == "pre" else ":END_ID(Syn-ID)", i,
                                 f"synapse site {sid} has no body (no SynapseSet / Synapses row)", sid)
    out = out.sort_by([("pre_site", "ascending"), ("post_site", "ascending")])
    cols = {"bodyId_pre": "body_pre", "bodyId_post": "body_post"}
    for side in ("pre", "post"):
        for a in "xyz":
            cols[f"{a}_{side}"] = f"{a}_{side}"
        cols[f"confidence_{side}"] = f"confidence_{side}"
        cols[f"roi_{side}"] = f"roi_{side}"
    table = pa.table({k: out.column(v) for k, v in cols.items()})
    if all(pc.all(pc.is_null(table.column(f"confidence_{s}"))).as_py() for s in ("pre", "post")):
        table = table.drop_columns(["confidence_pre", "confidence_post"])
    return table


def neo4j_connection_table(rel: Release, primary: Sequence[str]) -> pa.Table:
    """Per-ROI rows of ``Neuprint_Neuron_Connections``: the per-edge ``roiInfo`` ``post`` counts of the primary ROIs.

    Each connection becomes one row per primary ROI it has synapses in
    (``roiInfo[roi]["post"]``) and one row without ROI for the rest of its
    ``weight`` (synapses outside every primary ROI). Done in memory (one row
    per connection of the export).

    Parameters
    ----------
    rel
        The release (its connection files).
    primary
        The primary ROIs (``Neuprint_Meta``'s ``primaryRois``).

    Returns
    -------
    pyarrow.Table
        ``:START_ID(Body-ID)``, ``:END_ID(Body-ID)``, ``roi`` (null: none), ``weight:int``.

    Raises
    ------
    IngestError
        A file lacks a column, a ``roiInfo`` is not JSON, or its primary-ROI
        counts exceed the connection's weight.

    Examples
    --------
    >>> f = tmp_path / "Neuprint_Neuron_Connections_x.csv"
    >>> _ = f.write_text(':START_ID(Body-ID),weight:int,:END_ID(Body-ID),roiInfo:string\\n'
    ...                  '1,5,2,"{""EB"": {""pre"": 3, ""post"": 3}, ""CX"": {""post"": 5}}"\\n')
    >>> t = neo4j_connection_table(Release(REGISTRY["neuprint-neo4j"], [str(f)], kind="connections"), ["EB"])
    >>> t.to_pydict()["roi"], t.to_pydict()["weight:int"]
    (['EB', None], [3, 2])
    """
    prim = set(primary)
    pre_col, post_col, w_col, info_col = ":START_ID(Body-ID)", ":END_ID(Body-ID)", "weight:int", "roiInfo:string"
    out: dict[str, list[Any]] = {pre_col: [], post_col: [], "roi": [], w_col: []}
    for f in rel.synapses:
        t = _read_csv_table(f, {pre_col: pa.int64(), post_col: pa.int64(), w_col: pa.int64(),
                                info_col: pa.string()})
        _need(t, f, [pre_col, post_col, w_col, info_col])
        pres, posts = t.column(pre_col).to_pylist(), t.column(post_col).to_pylist()
        ws, infos = t.column(w_col).to_pylist(), t.column(info_col).to_pylist()
        for i, (p, q, w, info) in enumerate(zip(pres, posts, ws, infos, strict=True)):
            try:
                d = json.loads(info) if info else {}
            except ValueError as e:
                raise IngestError.at(f, info_col, i, f"roiInfo is not JSON ({e})", info) from None
            left = w if w is not None else 0
            for roi, c in (d.items() if isinstance(d, dict) else ()):
                n = int(c.get("post", 0)) if isinstance(c, dict) else 0
                if roi in prim and n > 0:
                    out[pre_col].append(p)
                    out[post_col].append(q)
                    out["roi"].append(roi)
                    out[w_col].append(n)
                    left -= n
            if left < 0:
                raise IngestError.at(f, info_col, i, f"the primary ROIs' post counts exceed the connection's "
                                     f"weight {w}", info)
            if left > 0 or w is None:
                out[pre_col].append(p)
                out[post_col].append(q)
                out["roi"].append(None)
                out[w_col].append(w if w is None else left)
    return pa.table({pre_col: pa.array(out[pre_col], pa.int64()), post_col: pa.array(out[post_col], pa.int64()),
                     "roi": pa.array(out["roi"], pa.string()), w_col: pa.array(out[w_col], pa.int64())})


