"""The ``connectome-dask`` command.

Subcommands: ``demo``, ``synth``, ``ingest``, ``info``, ``assign-rois``,
``matrix``. Every command accepts ``--scheduler`` (an address, a scheduler
file, ``local`` for the embedded LocalCluster, or ``slurm``/``pbs``/``lsf``)
and ``--workers``.

Errors: an expected error (bad input, a damaged or missing file, disk full,
permission denied) is printed as ``connectome-dask: error: <message>`` on
stderr, without a traceback, and the exit status is 2. Expected are the
package's error classes (:class:`~connectome_dask.store.StoreError` and its
subclasses ``IngestError`` and ``RoiError``, ``PathError``, ``CriteriaError``,
``SkeletonError``, ``DenseMatrixTooLarge``), every ``OSError``, and the
``ValueError`` / ``KeyError`` the package raises itself about its input. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Connectome

__all__ = ["add_scheduler_argument", "build_parser", "main"]


def add_scheduler_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--scheduler`` and ``--workers`` to a CLI (sub)command parser.

    Parameters
    ----------
    parser
        The (sub)command parser; the options go into a group "where to run".

    Returns
    -------
    argparse.ArgumentParser
        ``parser`` itself.

    Examples
    --------
    >>> import argparse
    >>> from connectome_dask.cli import add_scheduler_argument
    >>> p = add_scheduler_argument(argparse.ArgumentParser())
    >>> a = p.parse_args(["--scheduler", "slurm", "--workers", "4"])
    >>> (a.scheduler, a.workers)
    ('slurm', 4)
    """
    g = parser.add_argument_group("where to run")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS|FILE|local|slurm|pbs|lsf",
        default=None,
        help=(
            "'local' (default; dask config connectome_dask.cluster.scheduler): "
            "embedded LocalCluster; tcp://HOST:PORT or a scheduler-file path: "
            "a running dask scheduler; slurm/pbs/lsf: workers as batch jobs "
            "configured by deploy/jobqueue.yaml"
        ),
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (local) or batch-job workers (slurm/pbs/lsf)",
    )
    return parser


def _add_scheduler(p: argparse.ArgumentParser) -> None:
    add_scheduler_argument(p)


def _client(args: argparse.Namespace):
    from .cluster import client_from_args

    return client_from_args(args)


def _print_dashboard(client) -> None:
    from .cluster import dashboard_link

    link = dashboard_link(client)
    if link:
        print(f"dask dashboard: {link}", flush=True)


# ----------------------------------------------------------------------------- commands


def cmd_demo(args: argparse.Namespace) -> int:
    """Build a demo store, assign ROIs, summarise it and plot the type matrix."""
    from . import datasets
    from .rois import RoiSet

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "demo_store"
    t0 = time.perf_counter()
    with _client(args) as client:
        _print_dashboard(client)
        print(f"building a demo store of {args.synapses:,} synapses at {store} ...", flush=True)
        conn = datasets.demo_store(store, n_synapses=args.synapses, overwrite=True)
        mesh_dir = datasets.meshes_for(conn)
        print(f"assigning ROIs from the meshes in {mesh_dir} ...", flush=True)
        rs = RoiSet.from_directory(mesh_dir)
        conn = conn.assign_rois(rs)
        _summary(conn)
        png = out / "type_matrix.png"
        from .matrix import plot_type_heatmap

        plot_type_heatmap(conn, png)
        print(f"whole-brain type-level heatmap written to {png}")
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 0


def _summary(conn) -> None:
    from .aggregate import neuron_roi_counts, pair_counts

    neurons = conn.neurons
    print()
    print(conn)
    print(f"  neurons:  {conn.n_neurons:,}")
    if conn.kind == "connections":
        print(f"  synapses: {conn.total_weight:,} (in {conn.n_synapses:,} connection rows)")
    else:
        print(f"  synapses: {conn.n_synapses:,}")
    print(f"  types:    {neurons['type'].nunique():,}")
    if conn.roi_names:
        print(f"  ROIs:     {len(conn.roi_names)} ({', '.join(conn.roi_names[:8])}{', ...' if len(conn.roi_names) > 8 else ''})")
    pairs = pair_counts(conn, progress=False)
    top = pairs.nlargest(10, "weight")
    bid = neurons["bodyId"].to_numpy()
    typ = neurons["type"].astype(object).to_numpy()
    print("\nstrongest connections:")
    print(f"  {'bodyId_pre':>14} {'type_pre':>14}  ->  {'bodyId_post':>14} {'type_post':>14} {'weight':>7}")
    for r in top.itertuples():
        print(f"  {bid[r.pre]:>14} {str(typ[r.pre]):>14}  ->  {bid[r.post]:>14} {str(typ[r.post]):>14} {r.weight:>7}")
    if conn.roi_names:
        rc = neuron_roi_counts(conn, progress=False)
        per = rc.groupby("roi")["post"].sum().sort_values(ascending=False).head(8)
        names = ["(none)"] + conn.roi_names
        print("\npostsynaptic sites per ROI (top 8):")
        for code, v in per.items():
            print(f"  {names[int(code) + 1]:>12} {int(v):>12,}")
    print()


def cmd_synth(args: argparse.Namespace) -> int:
    from . import datasets

    with _client(args) as client:
        _print_dashboard(client)
        conn = datasets.synthetic(
            args.path, args.neurons, args.synapses, seed=args.seed, neurons=args.neuron_table,
            meshes=args.meshes, parquet=args.parquet, overwrite=args.overwrite,
        )
        print(conn)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    with _client(args):
        conn = run_ingest(args)
        print(conn)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .store import Connectome

    conn = Connectome(args.path)  # not a store: a StoreError, reported by main()
    info = {
        "path": str(conn.path),
        "name": conn.meta.get("name"),
        "version": conn.meta.get("version"),
        "schema_version": conn.meta.get("schema_version"),
        "kind": conn.kind,
        "neurons": conn.n_neurons,
        # a connection-level store's rows are weighted edges: its synapses are their summed weights
        "synapses": conn.total_weight if conn.kind == "connections" else conn.n_synapses,
        **({"connection rows": conn.n_synapses} if conn.kind == "connections" else {}),
        "columns": conn.synapse_columns,
        "chunk_rows": conn.chunk_rows,
        "partitions": len(conn.partitions()),
        "rois": len(conn.roi_names),
        "units": conn.meta.get("units"),
        "voxel_size": conn.meta.get("voxel_size"),
    }
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        for k, v in info.items():
            print(f"{k:>15}: {v}")
    if args.check:
        with _client(args):
            problems = conn.check(deep=True)
        leftovers = conn.unreferenced()
        for p in leftovers:
            print(f"note: unreferenced leftover (from an interrupted write): {p}")
        for p in conn.stale_siblings():
            print(f"note: temporary directory beside the store (a killed or running ingest): {p}")
        if problems:
            print("INVALID:", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            return 2
        print("store OK")
    return 0


def cmd_assign_rois(args: argparse.Namespace) -> int:
    from . import open as open_store
    from .rois import RoiSet

    with _client(args) as client:
        _print_dashboard(client)
        conn = open_store(args.path)
        rs = RoiSet.from_directory(args.meshes, scale=args.scale)
        conn = conn.assign_rois(rs)
        print(conn)
    return 0


def _check_output_target(out: Path) -> None:
    """Refuse an output path the matrix could not be saved to, before computing it."""
    from ._fsutil import check_exists

    for parent in out.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise FileExistsError(f"{parent} is not a directory; cannot write {out} below it")
            break
    check_exists(out, "dataarray", overwrite=True, error=FileExistsError)


def cmd_matrix(args: argparse.Namespace) -> int:
    from . import open as open_store
    from .matrix import save_dataarray

    _check_output_target(Path(args.out))  # before any work is scheduled
    with _client(args) as client:
        _print_dashboard(client)
        conn = open_store(args.path)
        t0 = time.perf_counter()
        da = conn.adjacency(by=args.by, rois=args.rois or None, min_weight=args.min_weight)
        dt = time.perf_counter() - t0
        save_dataarray(da, args.out)
        nnz = int(getattr(da.data, "nnz", (da.values != 0).sum()))
        print(f"{args.by} matrix {da.shape[0]:,} x {da.shape[1]:,} ({nnz:,} non-zero) in {dt:.1f} s -> {args.out}")
    return 0


# ----------------------------------------------------------------------------- ingest arguments


def _parse_mapping(items: Sequence[str] | None) -> dict[str, str] | None:
    """``--column STORE=SOURCE`` items as a mapping (``None`` when there are none)."""
    from .errors import IngestError

    if not items:
        return None
    out = {}
    for it in items:
        if "=" not in it:
            raise IngestError(f"--column expects STORE_COLUMN=SOURCE_COLUMN, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def add_ingest_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``connectome-dask ingest`` arguments to an argparse parser.

    Parameters
    ----------
    parser
        The parser (or subparser) to extend.

    Returns
    -------
    argparse.ArgumentParser
        ``parser`` itself.

    Examples
    --------
    >>> import argparse
    >>> p = add_ingest_arguments(argparse.ArgumentParser())
    >>> a = p.parse_args(["syn.parquet", "store", "--units", "voxels", "--voxel-size", "4", "4", "40"])
    >>> a.source, a.path, a.voxel_size
    (['syn.parquet'], 'store', [4.0, 4.0, 40.0])
    """
    from .ingest import DEFAULT_BATCH_ROWS, DEFAULT_BUCKET_ROWS, DIALECTS

    parser.add_argument("source", nargs="+",
                        help="Parquet/CSV/Feather file(s), glob, or a directory (a release's files are found in it)")
    parser.add_argument("path", help="store directory to create")
    parser.add_argument(
        "--neurons", help="neuron table (CSV/Parquet/Feather) with bodyId or root_id"
    )
    parser.add_argument("--dialect", default="auto", choices=DIALECTS,
                        help="column dialect or release dialect (auto: detected from file names and columns)")
    parser.add_argument(
        "--column",
        action="append",
        metavar="STORE=SOURCE",
        help="explicit column mapping, e.g. --column pre=src --column post=dst (repeatable)",
    )
    parser.add_argument("--units", default=None,
                        help="units of source positions: nm or voxels (default: the release's, else nm)")
    parser.add_argument("--voxel-size", nargs=3, type=float, metavar=("X", "Y", "Z"))
    parser.add_argument("--voxel-offset", nargs=3, type=float, metavar=("X", "Y", "Z"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")
    parser.add_argument("--chunk-rows", type=int, default=None, help="Zarr chunk length (rows)")
    parser.add_argument(
        "--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per read batch"
    )
    parser.add_argument(
        "--bucket-rows", type=int, default=DEFAULT_BUCKET_ROWS, help="rows per sort bucket"
    )
    parser.add_argument("--name", default=None, help="dataset name for meta.json")
    parser.add_argument("--version", dest="dataset_version", default=None, help="dataset version")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--kind", default="auto", choices=("auto", "synapses", "connections"),
                        help="store kind: synapse rows, or weighted connections (a release's connection "
                             "files); auto: synapse files when the release has them")
    return parser


def run_ingest(args: argparse.Namespace) -> Connectome:
    """Run ``connectome-dask ingest`` from arguments parsed with :func:`add_ingest_arguments`.

    Parameters
    ----------
    args
        The namespace of a parser set up by :func:`add_ingest_arguments`.

    Returns
    -------
    Connectome
        The new store (the CLI prints it).

    Raises
    ------
    IngestError
        Bad input or arguments, for :func:`main` to report.

    Examples
    --------
    >>> import argparse
    >>> pd.DataFrame({"bodyId_pre": [1, 2], "bodyId_post": [2, 1]}).to_csv(tmp_path / "e.csv", index=False)
    >>> args = add_ingest_arguments(argparse.ArgumentParser()).parse_args(
    ...     [str(tmp_path / "e.csv"), str(tmp_path / "st"), "--no-progress"])
    >>> run_ingest(args).n_synapses
    2
    """
    from .ingest import ingest

    src = args.source[0] if len(args.source) == 1 else list(args.source)
    return ingest(
        src,
        args.path,
        neurons=args.neurons,
        dialect=args.dialect,
        columns=_parse_mapping(args.column),
        units=args.units,
        voxel_size=args.voxel_size,
        voxel_offset=args.voxel_offset,
        overwrite=args.overwrite,
        chunk_rows=args.chunk_rows,
        name=args.name,
        version=args.dataset_version,
        batch_rows=args.batch_rows,
        bucket_rows=args.bucket_rows,
        progress=not args.no_progress,
        kind=getattr(args, "kind", "auto"),
    )


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``connectome-dask`` (one subparser per command).

    Returns
    -------
    argparse.ArgumentParser
        Each subcommand sets ``func`` (its ``cmd_*`` function) as a default.

    Examples
    --------
    >>> args = build_parser().parse_args(["matrix", "store", "--by", "type", "--out", "m.zarr"])
    >>> args.command, args.by, args.min_weight, args.out, args.scheduler
    ('matrix', 'type', 1, 'm.zarr', None)
    """
    p = argparse.ArgumentParser(prog="connectome-dask", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="build a demo store, assign ROIs, print a summary, plot")
    d.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    d.add_argument("--synapses", type=int, default=3_000_000, help="synapses in the demo store")
    _add_scheduler(d)
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("synth", help="write a synthetic whole-brain store")
    s.add_argument("path")
    s.add_argument("--neurons", type=int, default=139_000)
    s.add_argument("--synapses", type=int, default=50_000_000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--neuron-table", default=None, help="real neuron table to reuse (CSV/Parquet)")
    s.add_argument("--meshes", default=None, help="mesh folder for synapse positions")
    s.add_argument("--parquet", default=None, help="also write a CAVE-style Parquet file here")
    s.add_argument("--overwrite", action="store_true")
    _add_scheduler(s)
    s.set_defaults(func=cmd_synth)

    i = sub.add_parser("ingest", help="ingest a synapse table (Parquet/CSV/Feather) into a store")
    add_ingest_arguments(i)
    _add_scheduler(i)
    i.set_defaults(func=cmd_ingest)

    f = sub.add_parser("info", help="describe a store; --check validates it")
    f.add_argument("path")
    f.add_argument("--check", action="store_true", help="validate every array and the index")
    f.add_argument("--json", action="store_true")
    _add_scheduler(f)
    f.set_defaults(func=cmd_info)

    a = sub.add_parser("assign-rois", help="assign ROI codes to synapse sites from meshes")
    a.add_argument("path")
    a.add_argument("meshes", help="folder of .ply/.obj/.stl meshes (+ hierarchy.json)")
    a.add_argument("--scale", type=float, default=1.0, help="multiply mesh coordinates (um->nm: 1000)")
    _add_scheduler(a)
    a.set_defaults(func=cmd_assign_rois)

    m = sub.add_parser("matrix", help="whole-brain adjacency matrix of a store, saved as Zarr")
    m.add_argument("path")
    m.add_argument("--by", default="type", help="bodyId or an annotation column (default type)")
    m.add_argument("--rois", nargs="*", default=None)
    m.add_argument("--min-weight", type=int, default=1)
    m.add_argument("--out", required=True, help="output .zarr path")
    _add_scheduler(m)
    m.set_defaults(func=cmd_matrix)
    return p


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _expected(e: BaseException) -> bool:
    """Whether ``e`` is an expected error (reported without a traceback), see the module docs."""
    from ._fsutil import PathError
    from .aggregate import DenseMatrixTooLarge
    from .criteria import CriteriaError
    from .skeletons import SkeletonError
    from .store import StoreError

    if isinstance(e, StoreError | PathError | CriteriaError | SkeletonError | DenseMatrixTooLarge | OSError):
        return True
    if type(e) in (ValueError, KeyError):
        # raised by a ``raise`` statement of the package about its input (the innermost
        # frame is package code), not by numpy / pandas / pyarrow on the way (a bug)
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(
            _PACKAGE_DIR + os.sep)
    return False


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
        return e.args[0]  # str(KeyError) would quote it
    text = str(e)
    return text if text else type(e).__name__


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at the time of each record (not at creation)."""

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[None]:
    """While a command runs, the package's INFO lines (progress in a log, leftovers removed) go to stderr.

    Skipped when the application configured handlers for the package itself;
    the handler is removed afterwards, so calling :func:`main` in a Python
    session leaves logging as it was.
    """
    lg = logging.getLogger("connectome_dask")
    if lg.handlers:
        yield
        return
    h = _StderrHandler()
    h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    level = lg.level
    lg.addHandler(h)
    lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        lg.removeHandler(h)
        lg.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``connectome-dask``; returns the exit status.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for an expected error (printed on stderr without a
        traceback); other exceptions propagate.

    Examples
    --------
    >>> import contextlib, io, json
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     status = main(["info", str(conn.path), "--json"])
    >>> info = json.loads(out.getvalue())
    >>> status, info["neurons"], info["synapses"], info["rois"] == len(conn.roi_names)
    (0, 400, 30000, True)
    >>> main(["info", str(tmp_path / "missing")])  # "connectome-dask: error: ..." on stderr
    2
    """
    args = build_parser().parse_args(argv)
    try:
        with _log_to_stderr():
            return int(args.func(args) or 0)
    except Exception as e:
        if not _expected(e):
            raise
        print(f"connectome-dask: error: {_message(e)}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
