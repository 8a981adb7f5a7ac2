"""Running dask graphs: the scheduler in use, progress display and tree reductions.

The package never starts a cluster on its own inside a library call: graphs are
computed on whatever scheduler is active (a ``distributed.Client`` if one is
registered, dask's configured scheduler otherwise). The CLI and the demo start
the embedded ``LocalCluster`` (see :mod:`connectome_dask.cluster`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import dask
from dask.delayed import Delayed

from . import config

log = logging.getLogger("connectome_dask")

__all__ = ["compute", "tree_reduce", "active_client", "gather_direct", "progress_bar"]


def active_client():
    """Return the active ``distributed.Client`` or ``None``.

    Examples
    --------
    >>> active_client() is None  # no distributed client: dask's local scheduler is used
    True
    """
    if "distributed" not in sys.modules:  # no Client can exist; importing distributed costs ~0.25 s
        return None
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


_LOOPBACK = ("127.", "localhost", "[::1]", "::1")


def gather_direct(client) -> bool | None:
    """Whether ``client`` should fetch results straight from the workers (``Client.gather(direct=)``).

    distributed's default (``direct_to_workers=None`` outside a worker) routes
    every result through the scheduler, which holds it once more and sends it
    on: the right default for a remote cluster whose workers the client may
    not reach. A scheduler listening on a loopback address (or ``inproc://``)
    has only workers of this machine, which the client always reaches; there
    the second hop is pure cost (37 MB of pair counts: 55-135 ms through the
    scheduler, 39-91 ms direct, on a 2-worker LocalCluster). A choice the user
    made (``Client(direct_to_workers=...)`` or dask config
    ``distributed.client.direct-to-workers``) stands.

    Parameters
    ----------
    client
        A ``distributed.Client``.

    Returns
    -------
    bool or None
        ``True`` for a local scheduler, else ``None`` (distributed decides).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> gather_direct(NS(direct_to_workers=None, scheduler=NS(address="tcp://127.0.0.1:8786")))
    True
    >>> gather_direct(NS(direct_to_workers=None, scheduler=NS(address="tcp://10.1.2.3:8786"))) is None
    True
    >>> gather_direct(NS(direct_to_workers=False, scheduler=NS(address="tcp://127.0.0.1:8786")))
    False
    """
    chosen = getattr(client, "direct_to_workers", None)
    if chosen is not None:
        return bool(chosen)
    address = str(getattr(getattr(client, "scheduler", None), "address", "") or "")
    if address.startswith("inproc://"):
        return True
    host = address.split("://", 1)[-1]
    return True if host.startswith(_LOOPBACK) else None


def _interactive() -> bool:
    """Whether progress bars have a terminal or a notebook to draw on (else: log lines)."""
    ipython = sys.modules.get("IPython")
    if ipython is not None:  # a notebook kernel (importing ipykernel is not enough)
        with contextlib.suppress(Exception):
            if type(ipython.get_ipython()).__name__ == "ZMQInteractiveShell":
                return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _want_progress(progress: bool | None) -> bool:
    if progress is None:
        progress = config.get("progress", True)
    return bool(progress)


class _LogProgress:
    """A progress bar for a log (no terminal): a line at the start, at each quarter and at the end."""

    def __init__(self, total: int | None, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self._quarter, self._t0, self._note = 0, 0, time.perf_counter(), ""
        log.info("%s: started%s", desc, f" ({total:,} {unit})" if total else "")

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if self.total:
            q = min(4 * self.n // self.total, 3)
            if q > self._quarter:
                self._quarter = q
                log.info("%s: %d%% (%s %s, %.0f s)%s", self.desc, 25 * q, f"{self.n:,}", self.unit,
                         time.perf_counter() - self._t0, self._note)

    def set_postfix_str(self, s: str) -> None:
        self._note = f" [{s}]"
        log.info("%s: %s", self.desc, s)

    def close(self) -> None:
        log.info("%s: done, %s %s in %.1f s", self.desc, f"{self.n:,}", self.unit, time.perf_counter() - self._t0)


def progress_bar(total: int | None, desc: str, unit: str = "rows", progress: bool | None = None) -> Any:
    """A tqdm bar on a terminal or in a notebook, a few log lines in a log; None when progress is off.

    Parameters
    ----------
    total
        Expected number of units (None: unknown).
    desc
        What is being done.
    unit
        The unit counted (``"rows"`` is shown with SI prefixes).
    progress
        Show progress; ``None`` reads ``connectome_dask.progress`` from the dask config.

    Returns
    -------
    tqdm.tqdm, _LogProgress or None
        Something with ``update(n)``, ``set_postfix_str(s)`` and ``close()``.

    Raises
    ------
    ConfigError
        dask's config holds an unknown ``connectome_dask.*`` key.

    Examples
    --------
    >>> bar = progress_bar(10, "example", progress=True)  # in a doctest: no terminal, log lines
    >>> bar.update(10); bar.close()
    >>> progress_bar(10, "example", progress=False) is None
    True
    """
    if not _want_progress(progress):
        return None
    if not _interactive():
        return _LogProgress(total, desc, unit)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "rows", file=sys.stderr, leave=False)


def compute(*objs: Any, progress: bool | None = None, desc: str | None = None) -> tuple:
    """Compute dask collections on the active scheduler, optionally with a progress bar.

    Parameters
    ----------
    *objs
        Dask collections or delayed objects (anything ``dask.compute`` accepts).
    progress
        Show a progress bar. ``None`` reads ``connectome_dask.progress`` from the
        dask config (default ``True``). On a distributed client this is
        ``distributed.progress``; otherwise dask's local ``ProgressBar``.
    desc
        Short text printed before the bar.

    Returns
    -------
    tuple
        The computed results, as from ``dask.compute``.

    Raises
    ------
    ConfigError
        dask's config holds an unknown ``connectome_dask.*`` key.

    Examples
    --------
    >>> from dask import delayed
    >>> compute(delayed(sum)([1, 2]), delayed(len)("abc"), progress=False)
    (3, 3)
    """
    show = _want_progress(progress)
    client = active_client()
    if show and not _interactive():
        # a log, not a terminal: two lines instead of hundreds of \r frames
        t0 = time.perf_counter()
        log.info("%s: started", desc or "compute")
        out = (tuple(client.gather(client.compute(list(objs)), direct=gather_direct(client))) if client is not None
               else dask.compute(*objs, scheduler=_local_scheduler(objs)))
        log.info("%s: done in %.1f s", desc or "compute", time.perf_counter() - t0)
        return out
    if show and desc:
        print(desc, file=sys.stderr, flush=True)  # the bar's title, on the terminal it draws on
    if client is not None:
        futures = client.compute(list(objs))
        if show:
            from distributed import progress as dprogress

            with contextlib.suppress(Exception):  # progress display must never fail a job
                dprogress(futures)  # text bar in a terminal, widget in Jupyter
        return tuple(client.gather(futures, direct=gather_direct(client)))
    local = _local_scheduler(objs)
    if show:
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=sys.stderr, minimum=1.0):
            return dask.compute(*objs, scheduler=local)
    return dask.compute(*objs, scheduler=local)


def _local_scheduler(objs: Sequence[Any]) -> Callable | None:
    """The local scheduler dask would pick for ``objs`` when no distributed client can exist, else None.

    dask resolves a scheduler name, or the collections' default, only after
    importing ``distributed`` to look for a client (0.3-0.4 s on the first
    compute of a process). When ``distributed`` is not imported no client can
    exist, so the same choice is made here: the configured scheduler's name
    (``"threads"``, ``"sync"``...), else the collections' one default
    scheduler. Anything else (a callable, an executor, a client, several
    defaults) returns None: dask decides, as before.
    """
    if "distributed" in sys.modules:
        return None
    from dask.base import named_schedulers

    name = dask.config.get("scheduler", None)
    if name is not None:
        return named_schedulers.get(name.lower()) if isinstance(name, str) else None
    gets = {getattr(o, "__dask_scheduler__", None) for o in objs if dask.is_dask_collection(o)}
    return gets.pop() if len(gets) == 1 and None not in gets else None


def tree_reduce(
    parts: Sequence[Delayed],
    combine: Callable[[list], Any],
    *,
    split_every: int | None = None,
    name: str = "combine",
) -> Delayed:
    """Combine delayed partial results in a balanced tree (like ``dask.array.reduction``).

    ``combine`` receives a list of up to ``split_every`` partial results and
    returns one partial result of the same kind. The tree keeps the number of
    partials held in memory by any one task bounded.

    Parameters
    ----------
    parts
        The delayed partial results, in order (``combine`` sees them in order).
    combine
        Partial results -> one partial result.
    split_every
        Fan-in of the tree; ``None`` reads ``connectome_dask.split_every``
        from the dask config (default 8).
    name
        Prefix of the task keys.

    Returns
    -------
    dask.delayed.Delayed
        The combined result.

    Raises
    ------
    ValueError
        ``parts`` is empty, or ``split_every`` is below 2.

    Examples
    --------
    >>> from dask import delayed
    >>> parts = [delayed(int)(i) for i in range(20)]
    >>> total = tree_reduce(parts, sum, split_every=4)
    >>> total.compute()
    190
    """
    if not parts:
        raise ValueError("tree_reduce needs at least one part")
    if split_every is None:
        split_every = config.get("split_every", 8)
    split_every = int(split_every)
    if split_every < 2:
        raise ValueError(f"split_every must be at least 2, got {split_every}")
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    # One graph layer of plain tasks, as dask.array's reductions build theirs: a delayed call per combine
    # merged the parts' graphs again at every call (12-15 ms for 21 parts, a tenth of a small query).
    level = [p.key for p in parts]
    token = tokenize(*level)
    layer: dict[Any, Any] = {}
    depth = 0
    while True:
        nxt = []
        for j, i in enumerate(range(0, len(level), split_every)):
            key = f"{name}-{depth}-{j}-{token}"
            layer[key] = (combine, list(level[i : i + split_every]))
            nxt.append(key)
        level, depth = nxt, depth + 1
        if len(level) == 1:
            break
    layer_name = f"{name}-{token}"
    deps: list[Any] = list(parts)  # Delayed objects are dask collections (the stubs say otherwise)
    graph = HighLevelGraph.from_collections(layer_name, layer, dependencies=deps)
    return Delayed(level[0], graph, layer=layer_name)
