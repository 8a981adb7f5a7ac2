"""Benchmark: ingest of release files as downloaded (FlyWire feather, Codex gzip CSV) vs. DuckDB.

Writes (or reuses, under ``--data-dir``) two synapse files of ``--rows`` rows,
generated batch by batch (bounded memory), ~139 k root IDs with a heavy tail:

* ``flywire_synapses_783.feather``: the Zenodo v783 schema (``id,
  pre_pt_root_id, post_pt_root_id, connection_score, cleft_score, gaba, ach,
  glut, oct, ser, da, pre_pt_position_x/y/z, post_pt_position_x/y/z,
  neuropil``), Arrow IPC (lz4) in record batches of 65,536 rows, rows in
  random order;
* ``synapse_coordinates.csv.gz``: the Codex schema (``pre_root_id,
  post_root_id, x, y, z``), sorted by (pre, post) with the ID cells blank
  when equal to the previous row's, gzip.

Then, each in a fresh process (``benchmarks._common.run_child``: peak RSS =
``VmHWM`` of the process, plus the process tree sampled), measures

* ``connectome_dask.ingest.ingest`` of each file (dialect detected from its
  name; every column stored: positions, scores, NT probabilities, neuropil
  ROI codes), and
* DuckDB reading the same file: a scan aggregating every column, and the
  pair counts (``GROUP BY pre, post``) written to Parquet. DuckDB reads the
  feather file through ``pyarrow.dataset`` (it has no IPC reader built in).

Results: ``benchmarks/results/dialects{suffix}.{json,md}``.

Usage::

    python -m benchmarks --only dialects --synapses 50_000_000
    python -m benchmarks.dialects --rows 5_000_000
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

__all__ = ["main", "make_flywire_feather", "make_codex_csv"]

N_BODIES = 139_255
PREFIX = 720575940 * 10**9
BATCH = 1 << 16
NEUROPILS = [f"{n}_{s}" for n in ("AVLP", "PVLP", "ME", "LO", "LOP", "SMP", "SLP", "MB_CA", "AL", "LH",
                                  "FB", "EB", "PB", "GNG", "SAD", "IPS", "SPS", "VES", "CRE", "LAL")
             for s in ("L", "R")]


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
    with pa.CompressedOutputStream(str(tmp), "gzip") as sink, pacsv.CSVWriter(sink, schema) as w:
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
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- child tasks


def task_ingest(src: str, out: str) -> dict:
    """Ingest ``src`` (dialect detected) into ``out``; the measured operation of the child process."""
    from connectome_dask.ingest import ingest

    t = time.perf_counter()
    conn = ingest(src, out, overwrite=True, progress=False)
    dt = time.perf_counter() - t
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    return {"seconds": dt, "n_synapses": conn.n_synapses, "n_neurons": conn.n_neurons,
            "dialect": conn.meta["extra"]["ingest"]["dialect"], "columns": conn.synapse_columns,
            "store_mb": size / 2**20}


def _duckdb_source(src: str) -> tuple[Any, str]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    # the machine is shared: DuckDB spills beyond 4 GB (into the benchmark's data folder)
    con.execute("SET memory_limit = '4GB'")
    con.execute(f"SET temp_directory = '{Path(src).parent / 'duckdb_tmp'}'")
    if src.endswith(".feather"):
        import pyarrow.dataset as ds

        con.register("syn", ds.dataset(src, format="ipc"))
        return con, "syn"
    return con, f"read_csv('{src}', header = true)"


def task_duckdb_scan(src: str) -> dict:
    """DuckDB: one scan aggregating every column of the file."""
    con, rel = _duckdb_source(src)
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
    aggs = ", ".join(f'count("{c}")' if c == "neuropil" else f'sum("{c}")' for c in cols)
    t = time.perf_counter()
    row = con.execute(f"SELECT count(*), {aggs} FROM {rel}").fetchone()
    return {"seconds": time.perf_counter() - t, "n_rows": int(row[0])}


def task_duckdb_pairs(src: str, out: str) -> dict:
    """DuckDB: pair counts (GROUP BY pre, post) of the file, written to Parquet."""
    con, rel = _duckdb_source(src)
    if src.endswith(".feather"):
        pre, post = "pre_pt_root_id", "post_pt_root_id"
        sel = f"SELECT {pre} AS pre, {post} AS post FROM {rel}"
    else:  # the blank cells repeat the previous row's ID: forward fill in file order first
        sel = (f"SELECT last_value(pre_root_id IGNORE NULLS) OVER (ORDER BY rn) AS pre, "
               f"last_value(post_root_id IGNORE NULLS) OVER (ORDER BY rn) AS post "
               f"FROM (SELECT *, row_number() OVER () AS rn FROM {rel})")
    t = time.perf_counter()
    con.execute(f"COPY (SELECT pre, post, count(*) AS weight FROM ({sel}) GROUP BY pre, post) "
                f"TO '{out}' (FORMAT parquet)")
    n = con.execute(f"SELECT count(*), sum(weight) FROM read_parquet('{out}')").fetchone()
    return {"seconds": time.perf_counter() - t, "n_pairs": int(n[0]), "n_rows": int(n[1])}


# ----------------------------------------------------------------------------- driver


def _ops(kind: str) -> list[tuple[str, str]]:
    return [("ingest", "benchmarks.dialects:task_ingest"), ("duckdb_scan", "benchmarks.dialects:task_duckdb_scan"),
            ("duckdb_pairs", "benchmarks.dialects:task_duckdb_pairs")]


def render(rep: dict) -> str:
    """The Markdown report of a results dict."""
    lines = [f"# Release-file ingest benchmark ({human(rep['rows'])} rows)", "",
             f"{rep['machine'].get('cpus', '?')} CPUs; every operation in a fresh process; peak RSS = VmHWM "
             "(the child process) and the sampled process tree.", "",
             "| file | operation | seconds | M rows/s | peak RSS (MB) | tree peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|"]
    for fname, res in rep.get("files", {}).items():
        for op, r in res.get("ops", {}).items():
            if "error" in r:
                lines.append(f"| `{fname}` | {op} | error: {r['error'][-200:]!r} | | | |")
                continue
            s = r.get("seconds")
            rate = rep["rows"] / s / 1e6 if s else None
            lines.append(f"| `{fname}` ({fmt_mb(res.get('file_mb'))} MB) | {op} | {s:.1f} | "
                         f"{rate:.2f} | {fmt_mb(r.get('child_vmhwm_mb'))} | {fmt_mb(r.get('tree_peak_rss_mb'))} |")
    lines += ["", "Stores: " + "; ".join(
        f"{f}: {r['ops']['ingest'].get('n_neurons', '?'):,} neurons, {r['ops']['ingest'].get('n_synapses', '?'):,}"
        f" rows, {r['ops']['ingest'].get('store_mb', 0):.0f} MB, dialect {r['ops']['ingest'].get('dialect')}"
        for f, r in rep.get("files", {}).items() if "error" not in r.get("ops", {}).get("ingest", {"error": 1})),
        "", f"Reproduce: `python -m benchmarks --only dialects --synapses {rep['rows']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point (``python -m benchmarks.dialects``, or ``python -m benchmarks --only dialects``)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dialects", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=parse_int, default=50_000_000)
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "connectome_dask_bench_dialects")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--files", default="feather,csv", help="comma list of feather,csv")
    ap.add_argument("--keep", action="store_true", help="keep the generated files and stores")
    args = ap.parse_args(argv)
    suffix = "" if args.rows == 50_000_000 else f"_{human(args.rows)}"
    data = args.data_dir / f"rows{args.rows}"
    data.mkdir(parents=True, exist_ok=True)
    rep: dict[str, Any] = {"rows": args.rows, "machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M"),
                           "files": {}}
    wanted = [s.strip() for s in args.files.split(",") if s.strip()]
    makers = {"feather": ("flywire_synapses_783.feather", make_flywire_feather),
              "csv": ("synapse_coordinates.csv.gz", make_codex_csv)}
    for key in wanted:
        fname, make = makers[key]
        src = data / fname
        if not src.exists():
            t = time.perf_counter()
            print(f"writing {src} ...", file=sys.stderr, flush=True)
            make(src, args.rows)
            print(f"  {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        res: dict[str, Any] = {"file_mb": src.stat().st_size / 2**20, "ops": {}}
        rep["files"][fname] = res
        for op, func in _ops(key):
            print(f"{fname}: {op} ...", file=sys.stderr, flush=True)
            kw: dict[str, Any] = {"src": str(src)}
            if op == "ingest":
                kw["out"] = str(data / f"store-{key}")
            if op == "duckdb_pairs":
                kw["out"] = str(data / f"pairs-{key}.parquet")
            r = run_child(func, **kw)
            res["ops"][op] = r
            print(f"  {r.get('seconds', float('nan')):.1f} s, peak RSS {r.get('child_vmhwm_mb', 0):.0f} MB"
                  + (f" ERROR {r['error'][-300:]}" if "error" in r else ""), file=sys.stderr, flush=True)
            write_json(args.results / f"dialects{suffix}.json", rep)
            write_text(args.results / f"dialects{suffix}.md", render(rep))
            if op == "ingest" and not args.keep:
                shutil.rmtree(data / f"store-{key}", ignore_errors=True)
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    return rep


if __name__ == "__main__":
    main()
