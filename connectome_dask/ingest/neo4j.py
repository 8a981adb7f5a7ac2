"""neuPrint neo4j exports (``Neuprint_*.csv``): Meta, the synapse join and the per-ROI connection table.

The synapse join (sites, partner links, synapse sets) is an external hash join
with bounded memory (:func:`neo4j_synapse_files`); the ingest streams its output.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._fsutil import scratch_dir
from ..errors import IngestError
from .dialects import REGISTRY, Release, _missing  # noqa: F401  (REGISTRY: the doctests)
from .release_neurons import _NEO4J_TYPED
from .values import _list_to_xyz

__all__ = ["BUCKET_BYTES", "neo4j_connection_table", "neo4j_meta", "neo4j_synapse_files", "neo4j_synapse_table"]

log = logging.getLogger("connectome_dask.ingest")


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


def _roi_codes(batch: pa.RecordBatch, roi_cols: Sequence[str], rank: Sequence[int]) -> np.ndarray:
    """One ROI code per site: the best-ranked ``true`` ROI column (``rank``: best first), -1 for none."""
    codes = np.full(batch.num_rows, -1, dtype=np.int16)
    for k in reversed(rank):  # the best-ranked column is applied last
        col = batch.column(roi_cols[k])
        if pa.types.is_boolean(col.type):
            flag = pc.fill_null(col, False)
        else:
            flag = pc.fill_null(pc.equal(pc.utf8_lower(pc.cast(col, pa.string())), "true"), False)
        codes[flag.to_numpy(zero_copy_only=False)] = k
    return codes


def _one(files: Sequence[str], prefix: str) -> list[str]:
    return [f for f in files if os.path.basename(f).lower().startswith(prefix)]


# ----------------------------------------------------------------------------- the external join
#
# pyarrow's hash join (Acero) and pandas' merge hold both sides in memory, and a
# dask merge would shuffle every column through the scheduler; a whole-brain
# export (hemibrain: 70 GB of CSV) fits neither. So the join below is a plain
# Grace hash join: every table is streamed once from its CSV and routed by a
# hash of its join key into bucket files (Arrow IPC, memory-mapped when read),
# and each bucket pair is joined in memory with pyarrow. Memory is bounded by
# one bucket (about BUCKET_BYTES of CSV), whatever the size of the export.

#: CSV bytes of the export per bucket of the external join (a bucket's join holds a few times this)
BUCKET_BYTES = 192 * 2**20
#: rows buffered over all buckets of a table before they are written (each bucket flushes its share)
_BUFFER_ROWS = 1 << 21
#: CSV block size of the streaming reader
_BLOCK = 8 << 20
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: site and set IDs are often strided


def _bucket_of(keys: pa.Array | pa.ChunkedArray, k: int) -> np.ndarray:
    """Bucket number in ``[0, k)`` of each int64 key (nulls: bucket of -1)."""
    a = pc.fill_null(keys, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if k == 1:
        return np.zeros(len(a), dtype=np.int64)
    h = (a.view(np.uint64) * _GOLDEN) >> np.uint64(32)
    return (h % np.uint64(k)).astype(np.int64)


class _Buckets:
    """Rows routed to ``k`` Arrow IPC files by bucket number; rows keep their arrival order per bucket."""

    def __init__(self, folder: Path, name: str, k: int) -> None:
        self.paths = [folder / f"{name}-{i:05d}.arrow" for i in range(k)]
        self._writers: list[Any] = [None] * k
        self._buf: list[list[pa.Table]] = [[] for _ in range(k)]
        self._rows = [0] * k
        self._flush_rows = max(1024, _BUFFER_ROWS // k)  # the buffers hold about _BUFFER_ROWS rows in all

    def add(self, t: pa.Table, bucket: np.ndarray) -> None:
        if t.num_rows == 0:
            return
        k = len(self.paths)
        if k == 1:
            self.put(0, t)
            return
        order = np.argsort(bucket, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(bucket, minlength=k))])
        t = t.take(pa.array(order))
        for i in np.flatnonzero(np.diff(starts)):
            self.put(int(i), t.slice(int(starts[i]), int(starts[i + 1] - starts[i])))

    def put(self, i: int, t: pa.Table) -> None:
        self._buf[i].append(t)
        self._rows[i] += t.num_rows
        if self._rows[i] >= self._flush_rows:
            self._flush(i)

    def _flush(self, i: int) -> None:
        if not self._buf[i]:
            return
        t = pa.concat_tables(self._buf[i]).combine_chunks()
        if self._writers[i] is None:
            self._writers[i] = pa.ipc.new_file(str(self.paths[i]), t.schema)
        self._writers[i].write_table(t)
        self._buf[i], self._rows[i] = [], 0

    def close(self) -> None:
        for i in range(len(self.paths)):
            self._flush(i)
            if self._writers[i] is not None:
                self._writers[i].close()
                self._writers[i] = None

    def read(self, i: int) -> pa.Table | None:
        """Bucket ``i`` (memory-mapped); None when it got no rows."""
        p = self.paths[i]
        if not p.exists():
            return None
        return pa.ipc.open_file(pa.memory_map(str(p))).read_all()

    def take(self, i: int) -> pa.Table | None:
        """Bucket ``i``, its file then deleted (the mapping keeps the data until the table is freed)."""
        t = self.read(i)
        if t is not None:
            self.paths[i].unlink()
        return t


def _csv_names(path: str) -> list[str]:
    import pyarrow.csv as pacsv

    try:
        with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16),
                            convert_options=pacsv.ConvertOptions(include_columns=[])) as r:
            return list(r.schema.names)
    except (pa.ArrowException, OSError) as e:
        raise IngestError(f"{path}: cannot read the file ({type(e).__name__}: {e})", file=path) from None


def _stream_csv(path: str, types: Mapping[str, pa.DataType]) -> Iterator[tuple[int, pa.RecordBatch]]:
    """``(first row, batch)`` of the columns ``types`` of a CSV file, read block by block."""
    import pyarrow.csv as pacsv

    opts = pacsv.ConvertOptions(column_types=dict(types), include_columns=list(types), strings_can_be_null=True)
    offset = 0
    try:
        with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=_BLOCK), convert_options=opts) as r:
            for batch in r:
                yield offset, batch
                offset += batch.num_rows
    except (pa.ArrowException, OSError) as e:
        raise IngestError(f"{path}: cannot read the file after row {offset} ({type(e).__name__}: {e})",
                          file=path) from None


def _renamed(t: pa.Table, side: str) -> pa.Table:
    return t.rename_columns([f"{side}_site" if c == "site" else f"{c}_{side}" for c in t.column_names])


def neo4j_synapse_files(
    rel: Release, depth: Mapping[str, int], folder: str | os.PathLike, *,
    bucket_bytes: int | None = None, step: Callable[[str], None] | None = None,
) -> list[str]:
    """Join a neo4j export's synapse rows into Arrow IPC files in ``folder``, with bounded memory.

    ``Neuprint_Synapse_Connections`` (pre site -> post site) is joined with the
    sites (``Neuprint_Synapses``: point, confidence, ROI booleans) and their
    bodies (``SynapseSet_to_Synapses`` then ``Neuron_to_SynapseSet``; a site
    in several synapse sets takes the smallest body ID). Each table is
    streamed once from its CSV and routed by a hash of its join key into
    bucket files; each bucket is joined in memory. Peak memory is about one
    bucket (``bucket_bytes`` of CSV), whatever the size of the export; the
    disk holds a few times the joined rows meanwhile.

    Parameters
    ----------
    rel
        The release (its synapse files and the link tables in ``others``).
    depth
        ROI name -> depth in the hierarchy (the most specific ROI of a site wins;
        ties: the first column).
    folder
        An empty scratch directory (e.g. :func:`connectome_dask._fsutil.scratch_dir`);
        the returned files are in it, the intermediate ones are deleted.
    bucket_bytes
        CSV bytes per bucket (the memory bound; default :data:`BUCKET_BYTES`);
        the result does not depend on it.
    step
        Called with the name of each of the 7 passes as it starts (progress).

    Returns
    -------
    list of str
        Files with the columns ``bodyId_pre, bodyId_post, x_pre ... z_post,
        confidence_pre, confidence_post`` (when the sites have a confidence),
        ``roi_pre, roi_post`` (dictionary), rows in the order of the
        connection files; positions in the export's voxels.

    Raises
    ------
    IngestError
        A link table is missing or lacks a column, a point is malformed, or a
        connection's site has no body (naming the file, column and row).

    Examples
    --------
    >>> rel = Release(REGISTRY["neuprint-neo4j"], [])
    >>> neo4j_synapse_files(rel, {}, tmp_path)
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
    i64, s = pa.int64(), pa.string()
    pt, sid = "location:point{srid:9157}", ":ID(Syn-ID)"
    # every header first: a missing column is reported before any work
    site_names = {}
    for f in rel.synapses:
        names = _csv_names(f)
        for c in (sid, "type:string", pt):
            if c not in names:
                raise _missing(f, "neuprint-neo4j", c, names, "neo4j export")
        site_names[f] = names
    roi_cols = list(dict.fromkeys(c for n in site_names.values() for c in n if c.endswith(":boolean")))
    link_cols = {}
    for fs, a, b in ((conns, ":START_ID(Syn-ID)", ":END_ID(Syn-ID)"), (s2s, ":START_ID(SynSet-ID)", ":END_ID(Syn-ID)"),
                     (n2s, ":START_ID(Body-ID)", ":END_ID(SynSet-ID)")):
        for f in fs:
            names = _csv_names(f)
            for c in (a, b):
                if c not in names:
                    raise _missing(f, "neuprint-neo4j", c, names, "neo4j export")
            link_cols[f] = (a, b)
    roi_names = [c[: -len(":boolean")] for c in roi_cols]
    rank = sorted(range(len(roi_cols)), key=lambda k: (-depth.get(roi_names[k], 0), k))
    size = sum(os.path.getsize(f) for f in [*rel.synapses, *conns, *s2s, *n2s])
    per = int(BUCKET_BYTES if bucket_bytes is None else bucket_bytes)
    if per < 1:
        raise IngestError(f"bucket_bytes must be positive, got {bucket_bytes!r}")
    k = int(min(max(1, -(-size // per)), 1024))
    folder = Path(folder)
    say = step or (lambda _: None)
    log.info("neo4j export: joining %s of CSV in %d buckets (scratch %s)", f"{size / 2**20:,.0f} MB", k, folder)

    def links(files: list[str], names: tuple[str, str]) -> Iterator[pa.Table]:
        for f in files:
            a, b = link_cols[f]
            for _, batch in _stream_csv(f, {a: i64, b: i64}):
                yield pa.Table.from_batches([batch]).select([a, b]).rename_columns(list(names))

    # 1. site -> body, through the synapse sets
    say("synapse sets")
    by_set_a, by_set_b = _Buckets(folder, "setsite", k), _Buckets(folder, "setbody", k)
    for t in links(s2s, ("set", "site")):
        by_set_a.add(t, _bucket_of(t.column("set"), k))
    for t in links(n2s, ("body", "set")):
        by_set_b.add(t, _bucket_of(t.column("set"), k))
    by_set_a.close()
    by_set_b.close()
    site_body = _Buckets(folder, "sitebody", k)
    for i in range(k):
        ta, tb = by_set_a.take(i), by_set_b.take(i)
        if ta is not None and tb is not None:
            t = ta.join(tb, "set", join_type="inner").select(["site", "body"])
            site_body.add(t, _bucket_of(t.column("site"), k))
    site_body.close()
    # 2. the sites: point, confidence, ROI code
    say("synapse sites")
    sites = _Buckets(folder, "site", k)
    has_conf = False
    for f in rel.synapses:
        names = site_names[f]
        types: dict[str, pa.DataType] = {sid: i64, pt: s, **{c: s for c in roi_cols if c in names}}
        if "confidence:float" in names:
            types["confidence:float"] = pa.float64()
        for off, batch in _stream_csv(f, types):
            xyz = _list_to_xyz(batch.column(pt), f, pt, off)
            nonfinite = ~np.isfinite(xyz).all(axis=1)
            if nonfinite.any():  # here, while the row is known (the ingest later sees only the joined files)
                i = int(np.argmax(nonfinite))
                v = batch.column(pt)[i].as_py()
                raise IngestError.at(f, pt, off + i, f"point {v!r} has a missing or non-finite coordinate", v)
            for c in roi_cols:
                if c not in names:
                    batch = batch.append_column(c, pa.nulls(batch.num_rows, s))
            if "confidence:float" in names:
                conf = batch.column("confidence:float")
                has_conf = has_conf or conf.null_count < len(conf)
            else:
                conf = pa.nulls(batch.num_rows, pa.float64())
            t = pa.table({"site": batch.column(sid), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                          "confidence": conf, "roi": _roi_codes(batch, roi_cols, rank)})
            sites.add(t, _bucket_of(t.column("site"), k))
    sites.close()
    # 3. each site with its body
    say("bodies of the sites")
    full = _Buckets(folder, "full", k)
    empty = pa.schema([("site", i64), ("x", pa.float64()), ("y", pa.float64()), ("z", pa.float64()),
                       ("confidence", pa.float64()), ("roi", pa.int16()), ("body", i64)]).empty_table()
    for i in range(k):
        t, sb = sites.take(i), site_body.take(i)
        if t is None:
            continue
        if sb is None:
            t = t.append_column("body", pa.nulls(t.num_rows, i64))
        else:
            sb = sb.group_by("site").aggregate([("body", "min")]).rename_columns(["site", "body"])
            t = t.join(sb, "site", join_type="left outer")
        full.put(i, t.select(empty.column_names).cast(empty.schema))
    full.close()
    # 4. the connections (pre site -> post site), numbered in file order
    say("synapse connections")
    pairs = _Buckets(folder, "pairs", k)
    starts: list[tuple[int, str]] = []
    n_rows = 0
    for f in conns:
        starts.append((n_rows, f))
        for t in links([f], ("pre_site", "post_site")):
            t = t.add_column(0, "row", pa.array(np.arange(n_rows, n_rows + t.num_rows, dtype=np.int64)))
            n_rows += t.num_rows
            pairs.add(t, _bucket_of(t.column("pre_site"), k))
    pairs.close()
    # 5. pre sites, then 6. post sites; rows routed back by file order
    say("pre sites")
    half = _Buckets(folder, "half", k)
    for i in range(k):
        t = pairs.take(i)
        if t is None:
            continue
        sf = full.read(i)
        t = t.join(_renamed(sf if sf is not None else empty, "pre"), "pre_site", join_type="left outer")
        half.add(t, _bucket_of(t.column("post_site"), k))
    half.close()
    say("post sites")
    rows = _Buckets(folder, "rows", k)
    bad: tuple[int, str, Any] | None = None
    for i in range(k):
        t = half.take(i)
        sf = full.take(i)
        if t is None:
            continue
        t = t.join(_renamed(sf if sf is not None else empty, "post"), "post_site", join_type="left outer")
        for side in ("pre", "post"):
            nobody = pc.is_null(t.column(f"body_{side}"))
            if pc.any(nobody).as_py():
                r = pc.min(pc.filter(t.column("row"), nobody)).as_py()
                if bad is None or r < bad[0]:
                    j = int(np.flatnonzero(t.column("row").to_numpy() == r)[0])
                    bad = (r, side, t.column(f"{side}_site")[j].as_py())
        row = t.column("row").to_numpy()
        rows.add(t, np.minimum(row * k // max(n_rows, 1), k - 1))
    rows.close()
    if bad is not None:
        r, side, site = bad
        first, f = max(p for p in starts if p[0] <= r)
        raise IngestError.at(f, ":START_ID(Syn-ID)" if side == "pre" else ":END_ID(Syn-ID)", r - first,
                             f"synapse site {site} has no body (no SynapseSet / Synapses row)", site)
    # 7. file order within each range of rows; the output files
    say("write the synapse rows")
    names = pa.array(roi_names, s)
    out = []
    for i in range(k):
        t = rows.take(i)
        if t is None:
            continue
        t = t.take(pc.sort_indices(t.column("row")))
        cols: dict[str, Any] = {"bodyId_pre": t.column("body_pre"), "bodyId_post": t.column("body_post")}
        for side in ("pre", "post"):
            for a in "xyz":
                cols[f"{a}_{side}"] = t.column(f"{a}_{side}")
            if has_conf:
                cols[f"confidence_{side}"] = t.column(f"confidence_{side}")
        for side in ("pre", "post"):
            code = t.column(f"roi_{side}").combine_chunks()
            code = pc.if_else(pc.less(code, 0), pa.scalar(None, pa.int16()), code)
            cols[f"roi_{side}"] = pa.DictionaryArray.from_arrays(code, names)
        p = folder / f"synapses-{i:05d}.arrow"
        with pa.ipc.new_file(str(p), pa.table(cols).schema) as w:
            w.write_table(pa.table(cols))
        out.append(str(p))
        del t
    log.info("neo4j export: %s synapse rows joined", f"{n_rows:,}")
    return out


def neo4j_synapse_table(rel: Release, depth: Mapping[str, int], *, bucket_bytes: int | None = None) -> pa.Table:
    """The joined synapse rows of a neo4j export as one in-memory table (small exports).

    :func:`neo4j_synapse_files` into a scratch directory, read back; the
    ingest streams those files instead.

    Parameters
    ----------
    rel
        The release.
    depth
        ROI name -> depth in the hierarchy.
    bucket_bytes
        CSV bytes per bucket of the join.

    Returns
    -------
    pyarrow.Table
        The columns of :func:`neo4j_synapse_files`, in connection-file order.

    Raises
    ------
    IngestError
        As :func:`neo4j_synapse_files`.

    Examples
    --------
    >>> neo4j_synapse_table(Release(REGISTRY["neuprint-neo4j"], []), {})
    Traceback (most recent call last):
    ...
    connectome_dask.errors.IngestError: neo4j export: no Neuprint_Synapses_*.csv file
    """
    with scratch_dir("neo4j synapse join") as d:
        files = neo4j_synapse_files(rel, depth, d, bucket_bytes=bucket_bytes)
        return pa.concat_tables([pa.ipc.open_file(f).read_all() for f in files])


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


