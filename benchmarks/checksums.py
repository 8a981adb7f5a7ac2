"""Cost of the CRC32C checksum on every stored chunk: ``python -m benchmarks.checksums``.

Writes the same synapse-like columns (``pre``/``post`` int32 sorted runs,
positions and confidence float32) as Zarr v3 arrays on the store's chunk grid
twice: with the store's codecs (LZ4 Blosc + CRC32C, ``connectome_dask.store.array_codecs``)
and with LZ4 Blosc alone, then times writing and reading every column (best
of ``--repeat``, each in this process, page cache warm for reads as in the
other benchmarks). Results: ``benchmarks/results/checksums.{md,json}``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ._common import RESULTS, machine_info, parse_int, write_json, write_text

CHUNK = 1 << 18


def _columns(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    pre = np.sort(rng.integers(0, 139_000, n, dtype=np.int32))
    post = rng.integers(0, 139_000, n, dtype=np.int32)
    cols = {"pre": pre, "post": post}
    for c in ("x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"):
        cols[c] = (rng.normal(size=n) * 1e5).astype(np.float32)
    cols["confidence"] = rng.random(n, dtype=np.float32)
    return cols


def _codecs(with_crc: bool) -> list:
    from zarr.codecs import BloscCodec

    from connectome_dask.store import array_codecs

    return array_codecs() if with_crc else [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]


def _write(root: Path, cols: dict[str, np.ndarray], with_crc: bool) -> float:
    import zarr

    t0 = time.perf_counter()
    for c, a in cols.items():
        arr = zarr.create_array(store=str(root / c), shape=a.shape, chunks=(CHUNK,), dtype=a.dtype,
                                compressors=_codecs(with_crc), fill_value=0, overwrite=True,
                                config={"write_empty_chunks": True})
        arr[:] = a
    return time.perf_counter() - t0


def _read(root: Path, cols: dict[str, np.ndarray]) -> float:
    import zarr

    t0 = time.perf_counter()
    for c, a in cols.items():
        got = zarr.open_array(str(root / c), mode="r")[:]
        if not np.array_equal(got, a):
            raise AssertionError(f"{c}: read back differs")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.checksums", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=parse_int, default=20_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    cols = _columns(args.rows)
    nbytes = sum(a.nbytes for a in cols.values())
    res: dict = {"rows": args.rows, "columns": len(cols), "bytes": nbytes, "machine": machine_info()}
    tmp = Path(tempfile.mkdtemp(prefix="cd-crc-"))
    try:
        for label, crc in (("lz4", False), ("lz4+crc32c", True)):
            d = tmp / label
            w = min(_write(d, cols, crc) for _ in range(args.repeat))
            r = min(_read(d, cols) for _ in range(args.repeat))
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            res[label] = {"write_s": w, "read_s": r, "disk_bytes": size}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    a, b = res["lz4"], res["lz4+crc32c"]
    res["read_ratio"] = b["read_s"] / a["read_s"]
    res["write_ratio"] = b["write_s"] / a["write_s"]
    lines = [
        "# Checksum cost (CRC32C on every chunk)",
        "",
        f"{args.rows:,} rows x {len(cols)} columns ({nbytes / 1e9:.2f} GB raw), chunks of {CHUNK:,} rows, "
        f"best of {args.repeat}.",
        "",
        "| codecs | write s | read s | on disk MB |",
        "|---|---:|---:|---:|",
        *(f"| {k} | {res[k]['write_s']:.2f} | {res[k]['read_s']:.2f} | {res[k]['disk_bytes'] / 1e6:.0f} |"
          for k in ("lz4", "lz4+crc32c")),
        "",
        f"read with CRC32C / without: **{res['read_ratio']:.2f}x**; write: **{res['write_ratio']:.2f}x**.",
    ]
    write_json(RESULTS / "checksums.json", res)
    write_text(RESULTS / "checksums.md", "\n".join(lines) + "\n")
    return res


if __name__ == "__main__":
    main()
