"""Dense in-memory results: their limit (checked before allocating) and their allocation."""

from __future__ import annotations

import functools
import importlib
import os
import threading
from pathlib import Path

import numpy as np

from .. import config
from ..errors import DenseMatrixTooLarge

__all__ = ["max_dense_bytes", "max_result_bytes", "machine_memory", "check_dense", "DenseMatrixTooLarge",
           "sparse_zeros", "small_pages_touched", "add_cells"]


@functools.lru_cache(maxsize=1)
def machine_memory() -> int:
    """Memory this process may use (bytes): physical memory, capped by its cgroup and RSS limits.

    The smallest of psutil's total (else ``sysconf``), the memory limits of
    the process's own cgroup and of every cgroup above it (v1
    ``memory.limit_in_bytes``; v2 ``memory.max`` and ``memory.high``), and a
    hard ``RLIMIT_RSS``. A SLURM job (or a container) is confined by its
    cgroup: the host's total would let a dense result outgrow the job and be
    killed instead of refused. The package's one definition: dense and table
    limits here, the embedded cluster's worker limits (``cluster``).

    (``distributed.system.memory_limit`` does much the same but reads only
    the root cgroup's files, which is the host's on a SLURM node, and
    importing it loads all of ``distributed``, 0.3 s on the query path.)

    Returns
    -------
    int
        Bytes.

    Examples
    --------
    >>> 0 < machine_memory() <= _physical_memory()
    True
    """
    limit = _physical_memory()
    for cap in _cgroup_limits(Path("/proc/self/cgroup"), Path("/sys/fs/cgroup")):
        limit = min(limit, cap)
    try:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_RSS)[1]
        if 0 < hard < limit:
            limit = hard
    except (ImportError, OSError, ValueError):
        pass
    return int(limit)


def _physical_memory() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _cgroup_limits(proc_cgroup: Path, root: Path) -> list[int]:
    """Memory limits (bytes) of the cgroups a process is in (``proc_cgroup``, as ``/proc/self/cgroup``) and above.

    Unreadable files, ``max`` and non-numbers are no limit; a cgroup path
    that leaves ``root`` is ignored.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    out: list[int] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, rel = parts
        files: tuple[str, ...]
        if hid == "0" and controllers == "":  # cgroup v2: one unified hierarchy
            base, files = root, ("memory.max", "memory.high")
        elif "memory" in controllers.split(","):  # cgroup v1: the memory controller's hierarchy
            base, files = root / "memory", ("memory.limit_in_bytes",)
        else:
            continue
        here = Path(os.path.normpath(base / rel.lstrip("/")))
        if not here.is_relative_to(base):
            continue
        for d in (here, *here.parents):
            if not d.is_relative_to(base):
                break
            for f in files:
                try:
                    text = (d / f).read_text().strip()
                except (OSError, UnicodeDecodeError):
                    continue
                if text.isdigit() and int(text) > 0:
                    out.append(int(text))
    return out


def max_dense_bytes() -> int:
    """Largest dense in-memory object the package will build (bytes).

    ``dask.config["connectome_dask.max_dense_bytes"]``; ``None`` means half of
    :func:`machine_memory` (physical memory, capped by cgroup and RSS limits).

    Returns
    -------
    int
        The limit in bytes.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"connectome_dask.max_dense_bytes": 1000}):
    ...     max_dense_bytes()
    1000
    """
    v = config.get("max_dense_bytes", None)
    if v is not None:
        return int(v)
    return machine_memory() // 2


def max_result_bytes() -> int:
    """Memory budget of a table result built in memory, e.g. fetch_adjacencies' conn_df (bytes).

    ``dask.config["connectome_dask.max_result_bytes"]``; ``None`` means a
    quarter of :func:`machine_memory`.

    Returns
    -------
    int
        The budget in bytes.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"connectome_dask.max_result_bytes": 10**6}):
    ...     max_result_bytes()
    1000000
    """
    v = config.get("max_result_bytes", None)
    if v is not None:
        return int(v)
    return machine_memory() // 4


def check_dense(shape: tuple[int, ...], itemsize: int, what: str, hint: str | None = None) -> None:
    """Raise :class:`DenseMatrixTooLarge` before allocating a dense array above the limit.

    Parameters
    ----------
    shape
        Shape of the array about to be allocated.
    itemsize
        Bytes per element.
    what
        What the array is, for the message.
    hint
        What to do instead, for the message (default: use the sparse result).

    Raises
    ------
    DenseMatrixTooLarge
        ``prod(shape) * itemsize`` exceeds :func:`max_dense_bytes`.

    Examples
    --------
    >>> check_dense((1000, 1000), 8, "a small matrix")  # 8 MB: fine
    >>> check_dense((10**7, 10**7), 8, "a neuron x neuron matrix")
    Traceback (most recent call last):
    ...
    connectome_dask.errors.DenseMatrixTooLarge: a neuron x neuron matrix would need a dense ...
    """
    need = int(np.prod(shape, dtype=np.float64)) * itemsize
    limit = max_dense_bytes()
    if need > limit:
        dims = " x ".join(f"{int(d):,}" for d in shape)
        raise DenseMatrixTooLarge(
            f"{what} would need a dense {dims} array of {_nbytes(need)}, more than the "
            f"limit of {_nbytes(limit)} (dask config 'connectome_dask.max_dense_bytes'). "
            + (hint or "Use the sparse neuron-level result (Connectome.adjacency(...) / .to_xarray()) "
               "or restrict the neurons.")
        )


def _nbytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} bytes"


_check_dense = check_dense  # short private alias used across modules


def _hugepage_switch():
    """numpy's switch of transparent huge pages for new arrays (private, numpy >= 1.20; None if absent)."""
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(mod)._set_madvise_hugepage
        except (ImportError, AttributeError):
            continue
    return None


_HUGEPAGE_SWITCH = _hugepage_switch()
_HUGEPAGE_LOCK = threading.Lock()
#: bytes of a small page (x86-64 and arm64 Linux defaults)
SMALL_PAGE = 4096
#: :func:`sparse_zeros` keeps small pages while at most one in this many is written
SMALL_PAGE_SHARE = 8


def sparse_zeros(shape: int | tuple[int, ...], dtype: type | np.dtype = np.int64,
                 pages: int | None = None) -> np.ndarray:
    """``np.zeros`` for a large result of which only some cells are then written: small pages, not huge ones.

    On Linux numpy asks for transparent huge pages (``madvise``) for every
    array of 4 MiB or more. A result matrix of which few cells are written
    then faults in one 2 MiB page per region touched, and where the kernel's
    free memory is fragmented (after a scan's reads) each such fault first
    compacts memory: the 242 huge pages of a 0.5 GB type x type matrix took
    0.03-2.2 s to touch inside ``adjacency_from_files`` on a 2-core VM, its
    7,855 touched 4 KiB pages 12-16 ms, run after run. Cells never written
    stay unallocated and read as zero (the first full read maps them, ~0.09 s
    per 0.5 GB; resident memory is the touched pages only). Where the
    kernel's huge pages are ``always`` on (not ``madvise``) every mapping
    gets them anyway, and this is ``np.zeros``. With many cells
    written the small pages cost more than the huge ones (80 k cells: 48 ms
    against 20 ms, 41 % of its small pages), so with ``pages`` above one in
    :data:`SMALL_PAGE_SHARE` of the array's small pages numpy's huge pages
    are kept.

    Parameters
    ----------
    shape
        The array's shape.
    dtype
        Its dtype.
    pages
        How many of the array's 4 KiB pages the caller will write into
        (``None``: few); :func:`small_pages_touched` counts them.

    Returns
    -------
    numpy.ndarray
        Zeros, C order, owned by numpy as any array.

    Examples
    --------
    >>> a = sparse_zeros((1000, 1000), pages=1)
    >>> a[3, 4] = 7
    >>> a.shape, a.dtype, int(a.sum())
    ((1000, 1000), dtype('int64'), 7)
    """
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    if pages is not None and pages * SMALL_PAGE_SHARE * SMALL_PAGE > nbytes:
        return np.zeros(shape, dtype=dtype)
    if _HUGEPAGE_SWITCH is None:
        return np.zeros(shape, dtype=dtype)
    # numpy's switch is process-wide: set and restored under a lock (a concurrent allocation elsewhere
    # at most gets small pages too), so a caller's own setting is what stays
    with _HUGEPAGE_LOCK:
        before = _HUGEPAGE_SWITCH(False)
        try:
            return np.zeros(shape, dtype=dtype)
        finally:
            _HUGEPAGE_SWITCH(before)


def small_pages_touched(cells: np.ndarray, itemsize: int = 8) -> int:
    """The 4 KiB pages of a flat array that writes to ``cells`` touch (for :func:`sparse_zeros`).

    Counted with one ``np.bincount`` over the page numbers: the cells need
    not be sorted (no sort only to count them).

    Parameters
    ----------
    cells
        Flat indices of the cells to be written, in any order.
    itemsize
        Bytes per cell.

    Returns
    -------
    int

    Examples
    --------
    >>> small_pages_touched(np.array([5000, 0, 511, 1, 512]))  # 512 int64 cells per page
    3
    """
    if len(cells) == 0:
        return 0
    page = (np.asarray(cells, dtype=np.int64) * itemsize) // SMALL_PAGE
    return int(np.count_nonzero(np.bincount(page)))


#: :func:`add_cells` splits its writes over two threads from this many cells on
PARALLEL_CELLS = 1 << 13


def add_cells(out: np.ndarray, cells: np.ndarray, weights: np.ndarray) -> None:
    """``out[cells] += weights`` (flat, int64), split over two threads for many cells.

    Into a fresh :func:`sparse_zeros` array each written page is a first
    touch, a page fault: 12 k cells of a 0.5 GB type x type matrix took
    35-90 ms on one core of a 2-core VM, run after run, about half that
    split over two (the kernel's faults on different pages proceed side by
    side). Each half is :func:`~connectome_dask.kernels.hashing.add_weighted_keys`,
    which releases the GIL. Sorted cells are split where the cell changes,
    so two threads never add into one cell; unsorted cells run on one
    thread.

    Parameters
    ----------
    out
        Flat int64 array, updated in place.
    cells
        Flat indices (int64).
    weights
        int64 weight per cell.

    Examples
    --------
    >>> out = np.zeros(10, np.int64)
    >>> add_cells(out, np.array([1, 3, 3]), np.array([5, 1, 1]))
    >>> out.tolist()
    [0, 5, 0, 2, 0, 0, 0, 0, 0, 0]
    """
    from .._threads import Background
    from ..kernels.hashing import add_weighted_keys

    cells = np.asarray(cells, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.int64)
    n = len(cells)
    if n < PARALLEL_CELLS or not bool(np.all(cells[1:] >= cells[:-1])):
        add_weighted_keys(out, cells, weights)
        return
    # a split where the cell value changes: the same cell never sits on both sides
    h = int(np.searchsorted(cells, cells[n // 2], side="left"))
    if h == 0:  # the first half is all one cell
        add_weighted_keys(out, cells, weights)
        return
    with Background("connectome-dask-fill") as bg:
        bg.submit(add_weighted_keys, out, cells[h:], weights[h:])
        add_weighted_keys(out, cells[:h], weights[:h])
