"""Benchmark: ingest of release files as downloaded, one per dialect, vs. DuckDB reading the same file.

Writes (or reuses, under ``--data-dir``) one synapse-level file per dialect of
``--rows`` rows, generated batch by batch (bounded memory, deterministic numpy
generators), ~139 k bodies with a heavy tail:

* ``flywire_synapses_783.feather`` (flywire-783): the Zenodo v783 schema
  (``id, pre_pt_root_id, post_pt_root_id, connection_score, cleft_score,
  gaba, ach, glut, oct, ser, da, pre_pt_position_x/y/z,
  post_pt_position_x/y/z, neuropil``), Arrow IPC (lz4) in record batches of
  65,536 rows, rows in random order;
* ``synapse_coordinates.csv.gz`` (codex): ``pre_root_id, post_root_id, x, y,
  z``, sorted by (pre, post) with the ID cells blank when equal to the
  previous row's, gzip;
* ``syn-partners-bench-minconf-0.5.feather`` (janelia-flat): flyem-snapshot
  columns, 8 nm voxels, ``primary_post`` ROI names;
* ``synapses_pni_2.parquet`` (microns): CAVE columns, ``list<int64>``
  positions in 4 x 4 x 40 nm voxels;
* ``banc_888_synapses_v2_enriched.parquet`` (banc): string IDs, ``X, Y, Z``
  in nm, neuropil, 8 NT probabilities (the BANC synapse release is this
  Parquet file; its ``"x, y, z"`` position strings and ``"TRUE"/"FALSE"``
  are in the neuron tables, which this benchmark does not time);
* ``neo4j/Neuprint_*.csv`` (neuprint-neo4j): Synapses (points, ROI
  booleans), Synapse_Connections, SynapseSet_to_Synapses,
  Neuron_to_SynapseSet, Meta. The ingest joins these with an external hash
  join (bounded memory); ``--neo4j-rows`` runs it at fewer rows;
* ``exported-traced-adjacencies/`` (neuprint-compact, connection-level):
  ``traced-roi-connections.csv`` of ``--rows`` per-ROI connection rows and
  ``traced-neurons.csv``.

Then, each in a fresh process (``benchmarks._common.run_child``: peak RSS =
``VmHWM`` of the process, plus the process tree sampled), measures

* ``connectome_dask.ingest.ingest`` of each file (dialect detected from its
  name and columns; every column stored), then (not timed as ingest) the
  store's pair counts with ``connectome_dask.aggregate.pair_counts``;
* DuckDB reading the same file: a scan aggregating every column, and the
  pair counts (``GROUP BY pre, post``) written to Parquet. DuckDB reads the
  feather files through ``pyarrow.dataset`` (it has no IPC reader built in);
  for the neo4j export it joins the four CSV files as the ingest does; for
  the compact export it sums the weights per pair.

Correctness, same run: the detected dialect is the intended one, the store's
row count (``meta.json``) equals the rows written, and the store's pair
counts equal DuckDB's pair counts of the file, pair by pair (full outer join).

Results: ``benchmarks/results/dialects.{json,md}`` (the previous run's
tables, if it had another row count or other files, are kept as a section).

Usage::

    python -m benchmarks --only dialects --synapses 20_000_000
    python -m benchmarks.dialects --rows 5_000_000 --files janelia,microns
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    RESULTS,
    fmt_mb,
    human,
    machine_info,
    parse_int,
    run_child,
    write_json,
    write_text,
)

__all__ = ["main", "make_banc_parquet", "make_codex_csv", "make_flywire_feather", "make_janelia_feather",
           "make_microns_parquet", "make_neo4j_export", "make_neuprint_compact"]

N_BODIES = 139_255
PREFIX = 720575940 * 10**9
BATCH = 1 << 16
NEUROPILS = [f"{n}_{s}" for n in ("AVLP", "PVLP", "ME", "LO", "LOP", "SMP", "SLP", "MB_CA", "AL", "LH",
                                  "FB", "EB", "PB", "GNG", "SAD", "IPS", "SPS", "VES", "CRE", "LAL")
             for s in ("L", "R")]
#: neuPrint-style ROI names (apostrophes, commas, parentheses, plus signs) of the janelia / neo4j files
NP_ROIS = ["a'L(R)", "CRE(-ROB,-RUB)(R)", "MB(+ACA)(R)", "LAL(-GA)(R)", "AL(R)", "ME(R)", "LO(R)", "SMP(R)"]


def _bodies(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ids = np.sort(rng.choice(10**9, N_BODIES, replace=False)).astype(np.int64) + PREFIX
    w = rng.pareto(1.2, N_BODIES) + 1.0
    return ids, w / w.sum()


def make_flywire_feather(path: Path, rows: int, seed: int = 0) -> Path:
    """The FlyWire v783 synapse feather schema, written one record batch at a time.

    Examples
    --------
    >>> import pyarrow as pa
    >>> p = make_flywire_feather(tmp_path / "flywire_synapses_783.feather", 1000)
    >>> pa.ipc.open_file(p).schema.names[:3]
    ['id', 'pre_pt_root_id', 'post_pt_root_id']
    """
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ids, p = _bodies(rng)
    nt = ["gaba", "ach", "glut", "oct", "ser", "da"]
    fields = [("id", pa.int64()), ("pre_pt_root_id", pa.int64()), ("post_pt_root_id", pa.int64()),
              ("connection_score", pa.float32()), ("cleft_score", pa.float32())]
    fields += [(c, pa.float32()) for c in nt]
    fields += [(f"{s}_pt_position_{a}", pa.int32()) for s in ("pre", "post") for a in "xyz"]
    fields += [("neuropil", pa.dictionary(pa.int8(), pa.string()))]
    schema = pa.schema(fields)
    tmp = path.with_suffix(".tmp")
    dictionary = pa.array(NEUROPILS)
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(
        sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4")
    ) as w:
        for start in range(0, rows, BATCH):
            n = min(BATCH, rows - start)
            probs = rng.dirichlet(np.ones(6), n).astype(np.float32)
            xyz = rng.integers(0, 250_000, (n, 3)).astype(np.int32) * np.array([4, 4, 40], np.int32)
            cols = [pa.array(np.arange(start, start + n, dtype=np.int64)),
                    pa.array(ids[rng.choice(N_BODIES, n, p=p)]), pa.array(ids[rng.choice(N_BODIES, n, p=p)]),
                    pa.array(rng.integers(0, 500, n).astype(np.float32)),
                    pa.array(rng.integers(0, 200, n).astype(np.float32))]
            cols += [pa.array(probs[:, k]) for k in range(6)]
            cols += [pa.array(xyz[:, k]) for k in range(3)]
            cols += [pa.array(xyz[:, k] + rng.integers(-40, 40, n).astype(np.int32)) for k in range(3)]
            cols += [pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, len(NEUROPILS), n).astype(np.int8)),
                                                    dictionary)]
            w.write_batch(pa.record_batch(cols, schema=schema))
    tmp.replace(path)
    return path


def make_codex_csv(path: Path, rows: int, seed: int = 1) -> Path:
    """Codex ``synapse_coordinates.csv.gz``: sorted by (pre, post), repeated IDs blank, gzip.

    Examples
    --------
    >>> import gzip
    >>> p = make_codex_csv(tmp_path / "synapse_coordinates.csv.gz", 1000)
    >>> gzip.open(p, "rt").readline().strip()
    'pre_root_id,post_root_id,x,y,z'
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    ids, p = _bodies(rng)
    per_pre = rng.multinomial(rows, p)
    schema = pa.schema([("pre_root_id", pa.int64()), ("post_root_id", pa.int64()),
                        ("x", pa.int32()), ("y", pa.int32()), ("z", pa.int32())])
    tmp = path.with_suffix(".tmp")
    with pa.CompressedOutputStream(str(tmp), "gzip") as sink:
        sink.write(",".join(schema.names).encode() + b"\n")  # as released: an unquoted header
        w = pacsv.CSVWriter(sink, schema, write_options=pacsv.WriteOptions(include_header=False))
        prev_pre = prev_post = -1
        body = 0
        while body < N_BODIES:
            stop, n = body, 0  # bodies of about one batch
            while stop < N_BODIES and n < (1 << 20):
                n += int(per_pre[stop])
                stop += 1
            pre = np.repeat(ids[body:stop], per_pre[body:stop])
            post = ids[rng.choice(N_BODIES, len(pre), p=p)]
            order = np.lexsort((post, pre))
            pre, post = pre[order], post[order]
            if len(pre):
                same_pre = np.r_[pre[0] == prev_pre, pre[1:] == pre[:-1]]
                same_post = np.r_[post[0] == prev_post, post[1:] == post[:-1]]
                xyz = rng.integers(0, 1_000_000, (len(pre), 3)).astype(np.int32)
                w.write_batch(pa.record_batch([
                    pa.array(pre, mask=same_pre), pa.array(post, mask=same_post),
                    pa.array(xyz[:, 0]), pa.array(xyz[:, 1]), pa.array(xyz[:, 2])], schema=schema))
                prev_pre, prev_post = int(pre[-1]), int(post[-1])
            body = stop
        w.close()
    tmp.replace(path)
    return path


def _ids_of(rng: np.random.Generator, prefix: int, span: int = 10**9) -> tuple[np.ndarray, np.ndarray]:
    """~139 k sorted body IDs ``prefix + [0, span)`` and heavy-tailed sampling weights."""
    ids = np.sort(rng.choice(span, N_BODIES, replace=False)).astype(np.int64) + prefix
    w = rng.pareto(1.2, N_BODIES) + 1.0
    return ids, w / w.sum()


def _partners(rng: np.random.Generator, ids: np.ndarray, p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    return ids[rng.choice(N_BODIES, n, p=p)], ids[rng.choice(N_BODIES, n, p=p)]


def make_janelia_feather(path: Path, rows: int, seed: int = 2) -> Path:
    """flyem-snapshot ``syn-partners-<tag>-minconf-<c>.feather``, one record batch at a time.

    Columns ``x_pre, y_pre, z_pre, body_pre, conf_pre, x_post, y_post, z_post,
    body_post, conf_post, primary_post`` (positions int32 in 8 nm voxels,
    neuPrint body IDs < 10**11, ROI names with commas, parentheses, ``+``, ``'``).

    Examples
    --------
    >>> import pyarrow as pa
    >>> p = make_janelia_feather(tmp_path / "syn-partners-bench-minconf-0.5.feather", 1000)
    >>> t = pa.ipc.open_file(p).read_all()
    >>> t.num_rows, t.schema.names[:5], sorted(set(t.column("primary_post").to_pylist()))[:2]
    (1000, ['x_pre', 'y_pre', 'z_pre', 'body_pre', 'conf_pre'], ['AL(R)', 'CRE(-ROB,-RUB)(R)'])
    """
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ids, p = _ids_of(rng, 10**10, 9 * 10**10)
    pos = [(f"{a}_{s}", pa.int32()) for a in "xyz" for s in ("pre",)]
    schema = pa.schema([*pos, ("body_pre", pa.int64()), ("conf_pre", pa.float32()),
                        *[(f"{a}_post", pa.int32()) for a in "xyz"], ("body_post", pa.int64()),
                        ("conf_post", pa.float32()), ("primary_post", pa.dictionary(pa.int8(), pa.string()))])
    dictionary = pa.array(NP_ROIS)
    tmp = path.with_suffix(".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(
        sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4")
    ) as w:
        for start in range(0, rows, BATCH):
            n = min(BATCH, rows - start)
            pre, post = _partners(rng, ids, p, n)
            xyz = rng.integers(0, 40_000, (n, 3)).astype(np.int32)
            cols = [*(pa.array(xyz[:, k]) for k in range(3)), pa.array(pre),
                    pa.array(rng.uniform(0.5, 1.0, n).astype(np.float32)),
                    *(pa.array(xyz[:, k] + rng.integers(-10, 10, n).astype(np.int32)) for k in range(3)),
                    pa.array(post), pa.array(rng.uniform(0.5, 1.0, n).astype(np.float32)),
                    pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, len(NP_ROIS), n).astype(np.int8)),
                                                   dictionary)]
            w.write_batch(pa.record_batch(cols, schema=schema))
    tmp.replace(path)
    return path


def make_microns_parquet(path: Path, rows: int, seed: int = 3) -> Path:
    """CAVE ``synapses_pni_2`` Parquet (MICrONS): 3-element position arrays in 4 x 4 x 40 nm voxels.

    Columns ``id, valid, pre_pt_supervoxel_id, pre_pt_root_id,
    post_pt_supervoxel_id, post_pt_root_id, size, pre_pt_position,
    post_pt_position, ctr_pt_position`` (``list<int64>``), root IDs ~8.6e17,
    one row group per 2**20 rows.

    Examples
    --------
    >>> import pyarrow.parquet as pq
    >>> p = make_microns_parquet(tmp_path / "synapses_pni_2.parquet", 1000)
    >>> t = pq.read_table(p)
    >>> t.num_rows, t.column("pre_pt_position")[0].as_py().__len__(), t.column("pre_pt_root_id")[0].as_py() > 8 * 10**17
    (1000, 3, True)
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    ids, p = _ids_of(rng, 864691135 * 10**9)
    i64 = pa.int64()
    schema = pa.schema([("id", i64), ("valid", pa.bool_()), ("pre_pt_supervoxel_id", i64), ("pre_pt_root_id", i64),
                        ("post_pt_supervoxel_id", i64), ("post_pt_root_id", i64), ("size", i64),
                        ("pre_pt_position", pa.list_(i64)), ("post_pt_position", pa.list_(i64)),
                        ("ctr_pt_position", pa.list_(i64))])
    tmp = path.with_suffix(".tmp")
    step = 1 << 20
    with pq.ParquetWriter(str(tmp), schema, compression="snappy") as w:
        for start in range(0, rows, step):
            n = min(step, rows - start)
            pre, post = _partners(rng, ids, p, n)
            ctr = rng.integers(0, 250_000, (n, 3)).astype(np.int64)
            ctr[:, 2] //= 10  # 40 nm sections
            offsets = pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32))

            def lists(a: np.ndarray, offsets: pa.Array = offsets) -> pa.Array:
                return pa.ListArray.from_arrays(offsets, pa.array(a.reshape(-1)))

            cols = [pa.array(np.arange(start, start + n, dtype=np.int64)), pa.array(np.ones(n, bool)),
                    pa.array(pre + 7), pa.array(pre), pa.array(post + 7), pa.array(post),
                    pa.array(rng.integers(10, 5000, n).astype(np.int64)),
                    lists(ctr + rng.integers(-3, 4, (n, 3))), lists(ctr + rng.integers(-3, 4, (n, 3))), lists(ctr)]
            w.write_table(pa.table(cols, schema=schema))
    tmp.replace(path)
    return path


BANC_NT = ["gaba", "acetylcholine", "glutamate", "octopamine", "serotonin", "dopamine", "histamine", "tyramine"]


def make_banc_parquet(path: Path, rows: int, seed: int = 4) -> Path:
    """BANC ``banc_888_synapses_v2_enriched.parquet``: string IDs, ``X, Y, Z`` in nm, 8 NT probabilities.

    Columns ``id, size, pre_root_id, post_root_id`` (strings), ``X, Y, Z``
    (float64 nm), ``neuropil, region, side``, ``gaba ... tyramine``,
    ``syn_top_nt, syn_top_p, label``; one row group per 2**20 rows.

    Examples
    --------
    >>> import pyarrow.parquet as pq
    >>> p = make_banc_parquet(tmp_path / "banc_888_synapses_v2_enriched.parquet", 1000)
    >>> t = pq.read_table(p)
    >>> t.num_rows, str(t.schema.field("pre_root_id").type), len(t.column("pre_root_id")[0].as_py())
    (1000, 'string', 18)
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    ids, p = _ids_of(rng, PREFIX)
    f64, s = pa.float64(), pa.string()
    schema = pa.schema([("id", pa.int64()), ("size", pa.int64()), ("pre_root_id", s), ("post_root_id", s),
                        ("X", f64), ("Y", f64), ("Z", f64), ("neuropil", s), ("region", s), ("side", s),
                        *[(c, f64) for c in BANC_NT], ("syn_top_nt", s), ("syn_top_p", f64), ("label", s)])
    neuropils, nts = pa.array(NEUROPILS), pa.array(BANC_NT)
    regions, sides = pa.array(["brain", "optic", "vnc", "neck"]), pa.array(["left", "right", "center"])
    labels = pa.array(["", "glia", "x"])
    tmp = path.with_suffix(".tmp")
    step = 1 << 20
    with pq.ParquetWriter(str(tmp), schema, compression="snappy") as w:
        for start in range(0, rows, step):
            n = min(step, rows - start)
            pre, post = _partners(rng, ids, p, n)
            probs = rng.dirichlet(np.ones(len(BANC_NT)), n)
            top = probs.argmax(1)
            xyz = rng.integers(0, 250_000, (n, 3)).astype(np.float64) * np.array([4.0, 4.0, 45.0])
            cols = [pa.array(np.arange(start, start + n, dtype=np.int64)),
                    pa.array(rng.integers(10, 5000, n).astype(np.int64)),
                    pc.cast(pa.array(pre), s), pc.cast(pa.array(post), s),
                    *(pa.array(xyz[:, k]) for k in range(3)),
                    neuropils.take(pa.array(rng.integers(0, len(NEUROPILS), n))),
                    regions.take(pa.array(rng.integers(0, 4, n))), sides.take(pa.array(rng.integers(0, 3, n))),
                    *(pa.array(probs[:, k]) for k in range(len(BANC_NT))),
                    nts.take(pa.array(top)), pa.array(probs[np.arange(n), top]),
                    labels.take(pa.array(rng.integers(0, 3, n)))]
            w.write_table(pa.table(cols, schema=schema))
    tmp.replace(path)
    return path


NEO4J_PARENT = "MB(R)"  # parent of a'L(R) and MB(+ACA)(R) in the hierarchy: its flag is set too


def make_neo4j_export(folder: Path, rows: int, seed: int = 5) -> Path:
    """A neuPrint neo4j CSV export of ``rows`` synapses (pre site -> post site), written in chunks.

    Files ``Neuprint_Synapses_bench.csv`` (``":ID(Syn-ID)","type:string",
    "confidence:float","location:point{srid:9157}",":Label"`` then
    ``"<ROI>:boolean"`` columns, ``true`` or blank; locations ``"{x:.., y:..,
    z:..}"`` in 8 nm voxels), ``Neuprint_Synapse_Connections_bench.csv``,
    ``Neuprint_SynapseSet_to_Synapses_bench.csv``,
    ``Neuprint_Neuron_to_SynapseSet_bench.csv`` (one synapse set per body and
    side) and ``Neuprint_Meta_bench.csv`` (voxelSize, primaryRois,
    roiHierarchy).

    Examples
    --------
    >>> p = make_neo4j_export(tmp_path / "neo4j", 1000)
    >>> sorted(f.name for f in p.iterdir())[:2]
    ['Neuprint_Meta_bench.csv', 'Neuprint_Neuron_to_SynapseSet_bench.csv']
    >>> open(p / "Neuprint_Synapses_bench.csv").readline()[:48]
    '":ID(Syn-ID)","type:string","confidence:float","'
    """
    import json

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    ids, p = _ids_of(rng, 10**9, 9 * 10**9)
    folder.mkdir(parents=True, exist_ok=True)
    s, i64 = pa.string(), pa.int64()
    roi_cols = [f"{r}:boolean" for r in [*NP_ROIS, NEO4J_PARENT]]
    syn_schema = pa.schema([(":ID(Syn-ID)", i64), ("type:string", s), ("confidence:float", pa.float32()),
                            ("location:point{srid:9157}", s), (":Label", s), *[(c, s) for c in roi_cols]])
    conn_schema = pa.schema([(":START_ID(Syn-ID)", i64), (":END_ID(Syn-ID)", i64)])
    set_schema = pa.schema([(":START_ID(SynSet-ID)", i64), (":END_ID(Syn-ID)", i64)])
    site0, set0 = 10**10, 10**12  # site IDs: pre 2 i, post 2 i + 1 (+ site0); set of body k, side j: 2 k + j
    true = pa.scalar("true")
    none = pa.scalar(None, s)
    parent_of = np.array([r in ("a'L(R)", "MB(+ACA)(R)") for r in NP_ROIS])
    names = {k: folder / f"Neuprint_{k}_bench.csv" for k in ("Synapses", "Synapse_Connections",
                                                              "SynapseSet_to_Synapses", "Neuron_to_SynapseSet")}
    with pacsv.CSVWriter(str(names["Synapses"]), syn_schema) as ws, \
            pacsv.CSVWriter(str(names["Synapse_Connections"]), conn_schema) as wc, \
            pacsv.CSVWriter(str(names["SynapseSet_to_Synapses"]), set_schema) as wl:
        for start in range(0, rows, BATCH):
            n = min(BATCH, rows - start)
            k_pre, k_post = rng.choice(N_BODIES, n, p=p), rng.choice(N_BODIES, n, p=p)
            site = site0 + 2 * np.arange(start, start + n, dtype=np.int64)
            wc.write_batch(pa.record_batch([pa.array(site), pa.array(site + 1)], schema=conn_schema))
            sites = np.stack([site, site + 1], 1).reshape(-1)  # pre, post interleaved
            sets = np.stack([2 * k_pre, 2 * k_post + 1], 1).reshape(-1).astype(np.int64) + set0
            wl.write_batch(pa.record_batch([pa.array(sets), pa.array(sites)], schema=set_schema))
            m = 2 * n
            ctr = rng.integers(0, 40_000, (n, 3))
            xyz = (np.repeat(ctr, 2, axis=0) + rng.integers(-5, 6, (m, 3))).astype(np.int64)
            loc = pc.binary_join_element_wise("{x:", pc.cast(pa.array(xyz[:, 0]), s), ", y:",
                                              pc.cast(pa.array(xyz[:, 1]), s), ", z:",
                                              pc.cast(pa.array(xyz[:, 2]), s), "}", "")
            roi = rng.integers(0, len(NP_ROIS), m)
            flags = [pc.if_else(pa.array(roi == r), true, none) for r in range(len(NP_ROIS))]
            flags.append(pc.if_else(pa.array(parent_of[roi]), true, none))
            ws.write_batch(pa.record_batch([
                pa.array(sites), pa.array(np.tile(np.array(["pre", "post"], object), n), s),
                pa.array(rng.uniform(0.5, 1.0, m).astype(np.float32)), loc,
                pa.array(np.full(m, "Synapse;bench_Synapse", object), s), *flags], schema=syn_schema))
    body_schema = pa.schema([(":START_ID(Body-ID)", i64), (":END_ID(SynSet-ID)", i64)])
    k = np.arange(N_BODIES, dtype=np.int64)
    with pacsv.CSVWriter(str(names["Neuron_to_SynapseSet"]), body_schema) as wb:
        wb.write_batch(pa.record_batch([pa.array(np.repeat(ids, 2)),
                                        pa.array(np.stack([2 * k, 2 * k + 1], 1).reshape(-1) + set0)],
                                       schema=body_schema))
    hierarchy = {"name": "bench", "children": [
        {"name": NEO4J_PARENT, "children": [{"name": r} for r in NP_ROIS if parent_of[NP_ROIS.index(r)]]},
        *({"name": r} for r in NP_ROIS if not parent_of[NP_ROIS.index(r)])]}
    meta = pa.table({"voxelSize:float[]": ["8.0;8.0;8.0"], "voxelUnits:string": ["nanometers"],
                     "primaryRois:string[]": [";".join(NP_ROIS)], "roiHierarchy:string": [json.dumps(hierarchy)],
                     "dataset:string": ["bench"], ":LABEL": ["Meta;bench_Meta"]})
    pacsv.write_csv(meta, str(folder / "Neuprint_Meta_bench.csv"))
    return folder


def make_neuprint_compact(folder: Path, rows: int, seed: int = 6) -> Path:
    """A neuPrint compact export (connection-level) of ``rows`` per-ROI connection rows, written in chunks.

    ``traced-roi-connections.csv`` (``bodyId_pre, bodyId_post, roi, weight``:
    weights from a heavy tail, neuPrint ROI names with commas and
    parentheses; a (pre, post, roi) key may rarely repeat, which the ingest
    and DuckDB both sum) and ``traced-neurons.csv``
    (``bodyId, type, instance``), as in ``exported-traced-adjacencies``.

    Examples
    --------
    >>> p = make_neuprint_compact(tmp_path / "compact", 1000)
    >>> sorted(f.name for f in p.iterdir())
    ['traced-neurons.csv', 'traced-roi-connections.csv']
    >>> open(p / "traced-roi-connections.csv").readline().strip()
    '"bodyId_pre","bodyId_post","roi","weight"'
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    ids, p = _ids_of(rng, 10**9, 9 * 10**9)
    folder.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("bodyId_pre", pa.int64()), ("bodyId_post", pa.int64()), ("roi", pa.string()),
                        ("weight", pa.int64())])
    n_roi = len(NP_ROIS)
    done = 0
    with pacsv.CSVWriter(str(folder / "traced-roi-connections.csv"), schema) as w:
        while done < rows:
            n = min(BATCH * 4, rows - done)
            key = np.arange(done, done + n, dtype=np.int64)
            pre = ids[(key * 7919) % N_BODIES]
            post = ids[rng.choice(N_BODIES, n, p=p)]
            roi = (key + post) % n_roi
            post = np.where(post == pre, ids[(np.searchsorted(ids, pre) + 1) % N_BODIES], post)
            weight = np.minimum(np.floor(rng.pareto(1.5, n) + 1).astype(np.int64), 5000)
            w.write_batch(pa.record_batch([pa.array(pre), pa.array(post),
                                           pa.array(np.array(NP_ROIS, object)[roi], pa.string()),
                                           pa.array(weight)], schema=schema))
            done += n
    k = np.arange(N_BODIES)
    pacsv.write_csv(pa.table({"bodyId": ids, "type": pa.array([f"T{i % 7879}" for i in k]),
                              "instance": pa.array([f"T{i % 7879}_R" for i in k])}),
                    str(folder / "traced-neurons.csv"))
    return folder


# ----------------------------------------------------------------------------- child tasks


def task_ingest(src: str, out: str, pairs_out: str | None = None) -> dict:
    """Ingest ``src`` (dialect detected) into ``out``; the measured operation of the child process.

    After the timed ingest, the store's pair counts (``aggregate.pair_counts``,
    by body ID) are written to ``pairs_out`` for the correctness check.
    """
    import json

    from connectome_dask.ingest import ingest

    t = time.perf_counter()
    conn = ingest(src, out, overwrite=True, progress=False)
    dt = time.perf_counter() - t
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    meta = json.loads((Path(out) / "meta.json").read_text())
    r = {"seconds": dt, "n_synapses": conn.n_synapses, "n_neurons": conn.n_neurons,
         "meta_n_synapses": meta.get("n_synapses"),
         "dialect": conn.meta["extra"]["ingest"]["dialect"], "columns": conn.synapse_columns,
         "store_mb": size / 2**20}
    if pairs_out:
        import pyarrow as pa
        import pyarrow.parquet as pq

        import connectome_dask as cd
        from connectome_dask.aggregate import pair_counts

        t = time.perf_counter()
        c = cd.open(out, set_default=False)
        res = pair_counts(c, progress=False)
        body = c.neurons["bodyId"].to_numpy(np.int64)
        pq.write_table(pa.table({"pre": body[res["pre"].to_numpy()], "post": body[res["post"].to_numpy()],
                                 "weight": res["weight"].to_numpy(np.int64)}), pairs_out)
        r.update(pairs_s=time.perf_counter() - t, n_pairs=len(res), pairs_total=int(res["weight"].sum()))
    return r


def _duckdb():
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    # the machine is shared: DuckDB spills beyond 4 GB (into the benchmark's data folder)
    con.execute("SET memory_limit = '4GB'")
    return con


def _duckdb_source(src: str) -> tuple[Any, str]:
    con = _duckdb()
    p = Path(src)
    con.execute(f"SET temp_directory = '{p.parent / 'duckdb_tmp'}'")
    if p.is_dir() and (p / "traced-roi-connections.csv").exists():  # neuPrint compact: the connections
        return con, f"read_csv('{p / 'traced-roi-connections.csv'}', header = true)"
    if p.is_dir():  # the neo4j export: the synapse sites file
        return con, f"read_csv('{_neo4j_file(p, 'Synapses')}', header = true)"
    if src.endswith(".feather"):
        import pyarrow.dataset as ds

        con.register("syn", ds.dataset(src, format="ipc"))
        return con, "syn"
    if src.endswith(".parquet"):
        return con, f"read_parquet('{src}')"
    return con, f"read_csv('{src}', header = true)"


def _neo4j_file(folder: Path, kind: str) -> Path:
    return next(folder.glob(f"Neuprint_{kind}_*.csv"))


def task_duckdb_scan(src: str) -> dict:
    """DuckDB: one scan aggregating every column of the file (numbers summed, others counted)."""
    con, rel = _duckdb_source(src)
    cols = con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()
    num = ("INT", "BIGINT", "FLOAT", "DOUBLE", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "INTEGER")
    aggs = []
    for name, typ, *_ in cols:
        q = '"' + name.replace('"', '""') + '"'
        aggs.append(f"sum({q})" if typ in num or typ.startswith("DECIMAL") else
                    f"sum(list_sum({q}))" if typ.endswith("[]") else f"count({q})")
    t = time.perf_counter()
    row = con.execute(f"SELECT count(*), {', '.join(aggs)} FROM {rel}").fetchone()
    return {"seconds": time.perf_counter() - t, "n_rows": int(row[0])}


def _pairs_sql(key: str, src: str, rel: str) -> str:
    """SELECT pre, post (int64 body IDs, one row per synapse) of the file, in DuckDB."""
    if key == "csv":  # the blank cells repeat the previous row's ID: forward fill in file order first
        return (f"SELECT last_value(pre_root_id IGNORE NULLS) OVER (ORDER BY rn) AS pre, "
                f"last_value(post_root_id IGNORE NULLS) OVER (ORDER BY rn) AS post "
                f"FROM (SELECT *, row_number() OVER () AS rn FROM {rel})")
    if key == "compact":  # connection rows: their weights are the synapses
        return f"SELECT bodyId_pre AS pre, bodyId_post AS post, weight FROM read_csv('{Path(src) / 'traced-roi-connections.csv'}')"
    if key == "neo4j":  # pre site -> post site, each site's body through its synapse set
        f = Path(src)
        return (f"WITH sb AS (SELECT l.\":END_ID(Syn-ID)\" AS site, min(b.\":START_ID(Body-ID)\") AS body "
                f"FROM read_csv('{_neo4j_file(f, 'SynapseSet_to_Synapses')}') l "
                f"JOIN read_csv('{_neo4j_file(f, 'Neuron_to_SynapseSet')}') b "
                f"ON l.\":START_ID(SynSet-ID)\" = b.\":END_ID(SynSet-ID)\" GROUP BY site) "
                f"SELECT p.body AS pre, q.body AS post FROM read_csv('{_neo4j_file(f, 'Synapse_Connections')}') c "
                f"JOIN sb p ON c.\":START_ID(Syn-ID)\" = p.site JOIN sb q ON c.\":END_ID(Syn-ID)\" = q.site")
    pre, post = {"feather": ("pre_pt_root_id", "post_pt_root_id"), "janelia": ("body_pre", "body_post"),
                 "microns": ("pre_pt_root_id", "post_pt_root_id"),
                 "banc": ("CAST(pre_root_id AS BIGINT)", "CAST(post_root_id AS BIGINT)")}[key]
    return f"SELECT {pre} AS pre, {post} AS post FROM {rel}"


def task_duckdb_pairs(src: str, out: str, key: str) -> dict:
    """DuckDB: pair counts (GROUP BY pre, post) of the file, written to Parquet."""
    con, rel = _duckdb_source(src)
    sel = _pairs_sql(key, src, rel)
    t = time.perf_counter()
    agg = "sum(weight)" if key == "compact" else "count(*)"
    con.execute(f"COPY (SELECT pre, post, {agg} AS weight FROM ({sel}) GROUP BY pre, post) "
                f"TO '{out}' (FORMAT parquet)")
    n = con.execute(f"SELECT count(*), sum(weight) FROM read_parquet('{out}')").fetchone()
    return {"seconds": time.perf_counter() - t, "n_pairs": int(n[0]), "n_rows": int(n[1])}


def task_compare(ours: str, theirs: str) -> dict:
    """The store's pair counts vs. DuckDB's, pair by pair (full outer join on (pre, post))."""
    con = _duckdb()
    t = time.perf_counter()
    row = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE a.weight IS DISTINCT FROM b.weight), "
        f"count(*) FILTER (WHERE a.weight IS NULL), count(*) FILTER (WHERE b.weight IS NULL), "
        f"sum(a.weight), sum(b.weight) "
        f"FROM read_parquet('{ours}') a FULL OUTER JOIN read_parquet('{theirs}') b "
        f"ON a.pre = b.pre AND a.post = b.post").fetchone()
    return {"seconds": time.perf_counter() - t, "pairs_union": int(row[0]), "pairs_differing": int(row[1]),
            "only_duckdb": int(row[2]), "only_ours": int(row[3]), "ours_total": int(row[4] or 0),
            "duckdb_total": int(row[5] or 0)}


# ----------------------------------------------------------------------------- driver

#: key -> (file or folder name, maker, intended dialect)
FILES: dict[str, tuple[str, Any, str]] = {
    "feather": ("flywire_synapses_783.feather", make_flywire_feather, "flywire-783"),
    "csv": ("synapse_coordinates.csv.gz", make_codex_csv, "codex"),
    "janelia": ("syn-partners-bench-minconf-0.5.feather", make_janelia_feather, "janelia-flat"),
    "microns": ("synapses_pni_2.parquet", make_microns_parquet, "microns"),
    "banc": ("banc_888_synapses_v2_enriched.parquet", make_banc_parquet, "banc"),
    "neo4j": ("neo4j", make_neo4j_export, "neuprint-neo4j"),
    "compact": ("exported-traced-adjacencies", make_neuprint_compact, "neuprint-compact"),
}


def _size_mb(p: Path) -> float:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20
    return p.stat().st_size / 2**20


def check(res: dict) -> dict:
    """The correctness verdict of one file's results (dialect, row count, pair counts)."""
    ing, cmp_ = res["ops"].get("ingest", {}), res.get("compare", {})
    duck = res["ops"].get("duckdb_pairs", {})
    out = {"dialect_ok": ing.get("dialect") == res["dialect"],
           "rows_ok": ing.get("n_synapses") == res["rows"] and ing.get("meta_n_synapses") in (None, res["rows"]),
           # DuckDB's pair counts sum to the synapses: the rows, or (connection rows) their weights
           "duckdb_rows_ok": duck.get("n_rows") == (cmp_.get("ours_total") if res["dialect"] == "neuprint-compact"
                                                    else res["rows"]),
           "pairs_ok": bool(cmp_) and cmp_.get("pairs_differing") == 0 and ing.get("n_pairs") == duck.get("n_pairs")}
    out["ok"] = all(out.values())
    return out


def _table(rep: dict) -> list[str]:
    lines = ["| file (dialect) | rows | size on disk (MB) | operation | seconds | M rows/s | peak RSS (MB) | "
             "tree peak RSS (MB) |", "|---|---:|---:|---|---:|---:|---:|---:|"]
    for fname, res in rep.get("files", {}).items():
        rows = res.get("rows", rep["rows"])
        label = f"`{fname}` ({res['dialect']})" if "dialect" in res else f"`{fname}`"
        for op, r in res.get("ops", {}).items():
            if "error" in r:
                lines.append(f"| {label} | {rows:,} | {fmt_mb(res.get('file_mb'))} | {op} | error: "
                             f"{r['error'][-200:]!r} | | | |")
                continue
            s = r.get("seconds")
            rate = f"{rows / s / 1e6:.2f}" if s else "—"
            lines.append(f"| {label} | {rows:,} | {fmt_mb(res.get('file_mb'))} | {op} | {s:.1f} | {rate} | "
                         f"{fmt_mb(r.get('child_vmhwm_mb'))} | {fmt_mb(r.get('tree_peak_rss_mb'))} |")
    return lines


def render(rep: dict) -> str:
    """The Markdown report of a results dict (and of the previous runs it carries)."""
    lines = [f"# Release-file ingest benchmark, one file per dialect ({human(rep['rows'])} rows)", "",
             f"{rep['machine'].get('cpus', '?')} CPUs; {rep.get('date', '')}; every operation in a fresh process; "
             "peak RSS = VmHWM (the child process) and the sampled process tree. `ingest` = "
             "`connectome_dask.ingest.ingest(file, store)` with the dialect detected; `duckdb_scan` = DuckDB "
             "aggregating every column of the same file; `duckdb_pairs` = DuckDB `GROUP BY pre, post` of the "
             "same file to Parquet. M rows/s = synapse rows of the file / seconds.", ""]
    if rep.get("notes"):
        lines += [*(f"- {n}" for n in rep["notes"]), ""]
    lines += _table(rep)
    stores = []
    for f, r in rep.get("files", {}).items():
        i = r.get("ops", {}).get("ingest", {})
        if "seconds" in i:
            stores.append(f"- `{f}`: {i.get('n_neurons', 0):,} neurons, {i.get('n_synapses', 0):,} rows, "
                          f"store {i.get('store_mb', 0):.0f} MB, dialect `{i.get('dialect')}`; "
                          f"store pair counts (`aggregate.pair_counts`, not in the ingest time) "
                          f"{i.get('pairs_s', float('nan')):.1f} s")
    lines += ["", "Stores:", "", *stores]
    lines += ["", "## Correctness (same run)", "",
              "| file | dialect detected | store rows (meta.json) = rows written | DuckDB rows | store pairs | "
              "DuckDB pairs | pairs differing (full outer join) | total ours / DuckDB | ok |",
              "|---|---|---|---:|---:|---:|---:|---|---|"]
    for f, r in rep.get("files", {}).items():
        i, d, c = r["ops"].get("ingest", {}), r["ops"].get("duckdb_pairs", {}), r.get("compare", {})
        v = r.get("check", {})
        lines.append(f"| `{f}` | {i.get('dialect')} ({'=' if v.get('dialect_ok') else '!='} {r.get('dialect')}) | "
                     f"{i.get('meta_n_synapses', i.get('n_synapses'))} = {r.get('rows')}: "
                     f"{'yes' if v.get('rows_ok') else 'NO'} | {d.get('n_rows')} | {i.get('n_pairs')} | "
                     f"{d.get('n_pairs')} | {c.get('pairs_differing', c.get('error', '—'))} | "
                     f"{c.get('ours_total')} / {c.get('duckdb_total')} | {'yes' if v.get('ok') else 'NO'} |")
    lines += ["", f"Reproduce: `python -m benchmarks --only dialects --synapses {rep['rows']}`"]
    for prev in rep.get("previous_runs", []):
        lines += ["", f"## Previous run: {human(prev['rows'])} rows ({prev.get('date', '?')}; "
                  f"{', '.join(prev.get('files', {}))})", "", *_table(prev)]
    return "\n".join(lines) + "\n"


def _previous(path: Path, rows: int, keys: list[str]) -> list[dict]:
    """The runs to keep from the results file being overwritten (another row count or other files)."""
    import json

    if not path.exists():
        return []
    old = json.loads(path.read_text())
    runs = [{k: v for k, v in old.items() if k != "previous_runs"}, *old.get("previous_runs", [])]
    keep = []
    for r in runs:
        if r.get("rows") != rows or set(r.get("files", {})) - {FILES[k][0] for k in keys}:
            if not any(k["rows"] == r["rows"] and set(k["files"]) == set(r["files"]) for k in keep):
                keep.append(r)
    return keep[:3]


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point (``python -m benchmarks.dialects``, or ``python -m benchmarks --only dialects``)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dialects", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=parse_int, default=20_000_000)
    ap.add_argument("--neo4j-rows", type=parse_int, default=None,
                    help="synapse rows of the neo4j export (default: --rows)")
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "connectome_dask_bench_dialects")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--files", default=",".join(FILES), help="comma list of " + ",".join(FILES))
    ap.add_argument("--keep", action="store_true", help="keep the generated files and stores")
    args = ap.parse_args(argv)
    data = args.data_dir / f"rows{args.rows}"
    data.mkdir(parents=True, exist_ok=True)
    wanted = [s.strip() for s in args.files.split(",") if s.strip()]
    out_json, out_md = args.results / "dialects.json", args.results / "dialects.md"
    rep: dict[str, Any] = {"rows": args.rows, "machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M"),
                           "files": {}, "notes": [], "previous_runs": _previous(out_json, args.rows, wanted)}
    neo4j_rows = args.rows if args.neo4j_rows is None else min(args.neo4j_rows, args.rows)
    if "neo4j" in wanted and neo4j_rows < args.rows:
        rep["notes"].append(f"neuprint-neo4j at {neo4j_rows:,} rows, not {args.rows:,} (`--neo4j-rows`).")
    if "neo4j" in wanted:
        rep["notes"].append("neuprint-neo4j: the ingest joins the export's four CSV files (sites, connections, "
                            "synapse sets, bodies) with an external hash join (`neo4j_synapse_files`, bounded "
                            "memory); its rows are synapses (connections), the export has twice as many sites. "
                            "DuckDB's pairs join the same four files.")
    if "compact" in wanted:
        rep["notes"].append("neuprint-compact: its exports are connection-level; its rows are per-ROI connection "
                            "rows (`traced-roi-connections.csv`), the store a connection-level store, and the "
                            "pair check compares summed weights.")
    for key in wanted:
        fname, make, dialect = FILES[key]
        rows = neo4j_rows if key == "neo4j" else args.rows
        src = data / fname
        if not src.exists():
            t = time.perf_counter()
            print(f"writing {src} ...", file=sys.stderr, flush=True)
            make(src, rows)
            print(f"  {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        res: dict[str, Any] = {"dialect": dialect, "rows": rows, "file_mb": _size_mb(src), "ops": {}}
        rep["files"][fname] = res
        pairs = {"ours": str(data / f"pairs-ours-{key}.parquet"), "duckdb": str(data / f"pairs-duckdb-{key}.parquet")}
        for op, func, kw in (
            ("ingest", "benchmarks.dialects:task_ingest", {"out": str(data / f"store-{key}"),
                                                           "pairs_out": pairs["ours"]}),
            ("duckdb_scan", "benchmarks.dialects:task_duckdb_scan", {}),
            ("duckdb_pairs", "benchmarks.dialects:task_duckdb_pairs", {"out": pairs["duckdb"], "key": key}),
        ):
            print(f"{fname}: {op} ...", file=sys.stderr, flush=True)
            r = run_child(func, src=str(src), **kw)
            res["ops"][op] = r
            print(f"  {r.get('seconds', float('nan')):.1f} s, peak RSS {r.get('child_vmhwm_mb', 0):.0f} MB"
                  + (f" ERROR {r['error'][-300:]}" if "error" in r else ""), file=sys.stderr, flush=True)
            if op == "ingest" and not args.keep:
                shutil.rmtree(data / f"store-{key}", ignore_errors=True)
        res["compare"] = run_child("benchmarks.dialects:task_compare", ours=pairs["ours"], theirs=pairs["duckdb"])
        res["check"] = check(res)
        print(f"  check {res['check']}", file=sys.stderr, flush=True)
        write_json(out_json, rep)
        write_text(out_md, render(rep))
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    return rep


if __name__ == "__main__":
    main()
