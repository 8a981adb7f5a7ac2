"""Execute the tutorial notebooks with nbclient (the kernel is this Python).

Usage::

    python -m tests.notebooks_runner --render notebooks/rendered   # executed copies with outputs
    python -m tests.notebooks_runner --small query_tutorial         # CI sizes, one notebook

The kernel always runs ``sys.executable`` (the venv's python): a private
kernelspec pointing at it is written to a temporary folder and put first on
``JUPYTER_PATH``, so a user- or system-wide ``python3`` kernel elsewhere is
never picked up and nothing needs installing on a fresh CI machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
#: Execution order: the first one builds the shared tutorial store, the others reuse it.
NOTEBOOKS = ("query_tutorial", "nested_matrices", "whole_brain_on_a_cluster", "neuprint_query_tutorial", "crantpy_port")
KERNEL_NAME = "connectome-dask-nb"


@dataclass
class Result:
    name: str
    seconds: float
    notebook: object  # nbformat.NotebookNode with outputs
    output_path: Path | None


@contextlib.contextmanager
def private_kernel() -> Iterator[str]:
    """A kernelspec named :data:`KERNEL_NAME` running ``sys.executable -m ipykernel_launcher``."""
    with tempfile.TemporaryDirectory(prefix="cd-kernels-") as d:
        kdir = Path(d) / "kernels" / KERNEL_NAME
        kdir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"connectome_dask ({sys.executable})",
            "language": "python",
        }
        (kdir / "kernel.json").write_text(json.dumps(spec))
        old = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = d + (os.pathsep + old if old else "")
        try:
            yield KERNEL_NAME
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old


@contextlib.contextmanager
def _env(updates: dict[str, str | None]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in updates}
    for k, v in updates.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def notebook_path(name: str) -> Path:
    name = name[:-6] if name.endswith(".ipynb") else name
    return NOTEBOOK_DIR / f"{name}.ipynb"


def run_notebooks(
    names: Sequence[str] = NOTEBOOKS,
    *,
    render_dir: str | os.PathLike | None = None,
    small: bool | None = None,
    workdir: str | os.PathLike | None = None,
    timeout: int = 600,
) -> list[Result]:
    """Execute notebooks in order; raise ``nbclient.exceptions.CellExecutionError`` on any error.

    Parameters
    ----------
    names
        Notebook names (without ``.ipynb``) in ``notebooks/``.
    render_dir
        Save executed copies (with outputs) there.
    small
        Set ``CONNECTOME_DASK_NB_SMALL`` (``None``: leave the environment as it is).
    workdir
        Set ``CONNECTOME_DASK_NB_WORKDIR`` (stores, matrices, figures, summaries).
    timeout
        Seconds per cell.
    """
    import nbformat
    from nbclient import NotebookClient

    env: dict[str, str | None] = {}
    if small is not None:
        env["CONNECTOME_DASK_NB_SMALL"] = "1" if small else "0"
    if workdir is not None:
        env["CONNECTOME_DASK_NB_WORKDIR"] = str(Path(workdir).resolve())
    # the kernel must import this checkout's package even when it is not installed
    pp = os.environ.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + pp if pp else "")
    env.setdefault("MPLBACKEND", None)  # keep the inline backend of the kernel
    out_dir = Path(render_dir) if render_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with _env(env), private_kernel() as kernel:
        for name in names:
            path = notebook_path(name)
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(
                nb,
                kernel_name=kernel,
                timeout=timeout,
                resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
                coalesce_streams=True,  # one stream output per cell, progress bars collapse
            )
            t0 = time.perf_counter()
            try:
                client.execute()
            finally:
                dt = time.perf_counter() - t0
                target = None
                if out_dir is not None:
                    target = out_dir / path.name
                    nbformat.write(nb, target)
            results.append(Result(path.stem, dt, nb, target))
            print(f"{path.stem}: {dt:.1f} s" + (f" -> {target}" if target else ""), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.notebooks_runner", description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", default=list(NOTEBOOKS), help=f"notebooks to run (default: {' '.join(NOTEBOOKS)})")
    p.add_argument("--render", metavar="DIR", help="save executed notebooks (with outputs) in DIR")
    p.add_argument("--small", action="store_true", help="CI sizes (CONNECTOME_DASK_NB_SMALL=1)")
    p.add_argument("--workdir", help="data/figure folder (CONNECTOME_DASK_NB_WORKDIR)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    run_notebooks(a.names, render_dir=a.render, small=True if a.small else None, workdir=a.workdir, timeout=a.timeout)
    print(f"all notebooks: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
