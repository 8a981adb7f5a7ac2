"""Where the work runs: the embedded ``LocalCluster``, a running scheduler, or HPC jobs.

Library calls never start a cluster: they compute on the active scheduler
(see :mod:`connectome_dask._compute`). This module starts or connects to one:

- ``"local"`` / ``None``: an embedded :class:`distributed.LocalCluster` of
  worker *processes* with a memory limit per worker (machine memory divided
  by the number of workers) and spilling to a temporary directory;
- an address (``tcp://host:8786``, ``tls://...``) or the path of a scheduler
  file (``dask scheduler --scheduler-file FILE``): a scheduler someone else
  runs, which is never shut down here;
- ``"slurm"`` / ``"pbs"`` / ``"lsf"``: a dask-jobqueue cluster whose workers
  are batch jobs, configured from ``deploy/jobqueue.yaml`` and dask's config.

Configuration precedence for :func:`jobqueue_cluster` (highest first):

1. explicit keyword arguments;
2. dask config ``connectome_dask.cluster.<kind>.<key>``, then
   ``jobqueue.<kind>.<key>`` (only values that differ from dask-jobqueue's
   shipped defaults count as set);
3. the jobqueue YAML file: ``config=`` argument, else dask config
   ``connectome_dask.cluster.jobqueue_file``, else ``deploy/jobqueue.yaml`` of
   the source tree (same layout as dask-jobqueue's ``jobqueue.yaml``);
4. the defaults in :data:`JOBQUEUE_DEFAULTS`.

Keys may be spelled with ``-`` or ``_`` (``job-extra-directives`` ==
``job_extra_directives``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import sys
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import dask.config
import yaml

__all__ = [
    "JOBQUEUE_DEFAULTS",
    "JOBQUEUE_KINDS",
    "LOCAL_MEMORY_FRACTIONS",
    "client_from_args",
    "connect",
    "dashboard_link",
    "default_jobqueue_file",
    "get_client",
    "jobqueue_cluster",
    "jobqueue_options",
    "local_cluster",
]

#: Batch systems supported through dask-jobqueue, by the name used in ``--scheduler``.
JOBQUEUE_KINDS: dict[str, str] = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "lsf": "LSFCluster",
}

#: Lowest-precedence settings of every jobqueue cluster (per kind).
JOBQUEUE_DEFAULTS: dict[str, dict[str, Any]] = {
    "slurm": {"cores": 1, "processes": 1, "memory": "4GiB", "walltime": "01:00:00"},
    "pbs": {"cores": 1, "processes": 1, "memory": "4GiB", "walltime": "01:00:00"},
    "lsf": {"cores": 1, "processes": 1, "memory": "4GiB", "walltime": "01:00"},
}

#: Worker memory thresholds (fractions of the worker's memory limit) set on every
#: cluster started here: ``target``/``spill`` start writing data to disk, ``pause``
#: stops new tasks, ``terminate`` restarts the worker (nanny).
LOCAL_MEMORY_FRACTIONS: dict[str, float] = {
    "target": 0.6,
    "spill": 0.7,
    "pause": 0.85,
    "terminate": 0.95,
}

_LOCAL_NAMES = ("local", "localcluster")
_ADDRESS_PREFIXES = ("tcp://", "tls://", "ws://", "wss://", "inproc://", "ucx://")
_REPO_JOBQUEUE_FILE = Path(__file__).resolve().parents[1] / "deploy" / "jobqueue.yaml"


# the spill directory local_cluster made for a cluster (removed with it)
_TMPDIRS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------- helpers


def _tmpdir_of(cluster: Any) -> str | None:
    """The temporary spill directory :func:`local_cluster` made for ``cluster`` (None if none)."""
    try:
        return _TMPDIRS.get(cluster)
    except TypeError:  # not weak-referenceable: not one of ours
        return None


def _cfg(key: str, default: Any = None) -> Any:
    return dask.config.get(f"connectome_dask.cluster.{key}", default)


@lru_cache(maxsize=1)
def _shipped_defaults(package: str, filename: str) -> dict:
    """The defaults a dask plugin package registers (its own YAML file)."""
    import importlib

    mod = importlib.import_module(package)
    if mod.__file__ is None:  # a namespace package: no file of its own, no shipped defaults
        return {}
    path = Path(mod.__file__).with_name(filename)
    with path.open() as f:
        return yaml.safe_load(f) or {}


def _memory_fractions() -> dict[str, float]:
    """Memory thresholds: ``connectome_dask.cluster.memory`` > user's ``distributed.worker.memory`` > ours."""
    shipped = _shipped_defaults("distributed", "distributed.yaml")
    shipped_mem = shipped.get("distributed", {}).get("worker", {}).get("memory", {})
    out = {}
    for k, ours in LOCAL_MEMORY_FRACTIONS.items():
        value = ours
        user = dask.config.get(f"distributed.worker.memory.{k}", None)
        if user is not None and user != shipped_mem.get(k):
            value = user
        value = _cfg(f"memory.{k}", None) if _cfg(f"memory.{k}", None) is not None else value
        out[k] = value
    return out


def _memory_config(fractions: Mapping[str, float]) -> dict[str, Any]:
    return {f"distributed.worker.memory.{k}": v for k, v in fractions.items()}


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b.c": v}`` -> ``{"a": {"b": {"c": v}}}`` (the form ``Nanny(config=...)`` merges)."""
    out: dict[str, Any] = {}
    for key, v in flat.items():
        d = out
        parts = key.split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


#: The glibc tunable distributed sets in every worker process it spawns.
_MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"
_SPAWN_ENV_KEY = f"distributed.nanny.pre-spawn-environ.{_MALLOC_TRIM}"


def _initial_environ() -> dict[str, str]:
    """This process's environment as it was started (``/proc/self/environ``), else the current one.

    A nanny writes its pre-spawn variables into ``os.environ`` (distributed
    documents the leak): a value found there now may come from an earlier
    cluster of this process, not from the user's shell.
    """
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return dict(os.environ)
    out = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


def _malloc_trim_setting() -> str | None:
    """The ``MALLOC_TRIM_THRESHOLD_`` the embedded cluster's workers start with (None: glibc's own).

    distributed spawns workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so freed
    memory returns to the OS at once. Setting any glibc malloc threshold turns
    off glibc's adaptive mmap threshold, so every array over 128 KiB is a fresh
    ``mmap`` whose pages the kernel faults in and zeroes again on each use. For
    this package's partition-sized arrays that made tasks ~2.5x slower than
    the same tasks in a plain process (a pairs-table scan: 75-93 ms per task
    on the workers, 33-45 ms without the variable, ~30 ms in-process). The
    embedded cluster's workers therefore keep glibc's defaults, as this
    process has. Kept as the user set it: the variable in this process's
    starting environment, or a ``distributed.nanny.pre-spawn-environ`` value
    other than distributed's shipped one.
    """
    start = _initial_environ().get(_MALLOC_TRIM)
    if start is not None:
        return start
    shipped = _shipped_defaults("distributed", "distributed.yaml")
    shipped_v = shipped.get("distributed", {}).get("nanny", {}).get("pre-spawn-environ", {}).get(_MALLOC_TRIM)
    user = dask.config.get(_SPAWN_ENV_KEY, None)
    if user is not None and str(user) != str(shipped_v):
        return str(user)
    return None


@contextlib.contextmanager
def _spawn_environ(value: str | None) -> Iterator[None]:
    """``os.environ`` while nannies spawn workers: ``MALLOC_TRIM_THRESHOLD_`` as ``value`` (None: absent).

    Spawned workers inherit this process's environment; a value an earlier
    nanny left there is taken out for the spawn and put back after it.
    """
    before = os.environ.get(_MALLOC_TRIM)
    if value is None:
        os.environ.pop(_MALLOC_TRIM, None)
    else:
        os.environ[_MALLOC_TRIM] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_MALLOC_TRIM, None)
        else:
            os.environ[_MALLOC_TRIM] = before


def _machine_memory() -> int:
    """Usable memory of this machine in bytes (the package's one definition, cgroup and rlimit limits applied)."""
    from .compute.dense import machine_memory

    return machine_memory()


# ----------------------------------------------------------------------------- local


def local_cluster(
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: int | str | None = None,
    **kw: Any,
):
    """Start the embedded :class:`distributed.LocalCluster` used by default.

    Workers are separate processes (kernels that hold the GIL do not block each
    other) with a memory limit each; spilling to disk is configured with
    :data:`LOCAL_MEMORY_FRACTIONS` (overridable with dask config
    ``connectome_dask.cluster.memory.<target|spill|pause|terminate>`` or
    ``distributed.worker.memory.*``), and spilled data goes to a fresh temporary
    directory that is deleted when the cluster is garbage collected or at exit.
    The workers keep glibc's adaptive malloc thresholds (distributed's
    ``MALLOC_TRIM_THRESHOLD_=65536`` is not set unless the user set it; see
    :func:`_malloc_trim_setting`), and a client of this cluster fetches results
    straight from the workers (:func:`connectome_dask._compute.gather_direct`).

    Parameters
    ----------
    n_workers
        Worker processes. ``None``: dask config ``connectome_dask.cluster.local.n_workers``,
        else dask's split of the CPU count (2 workers of 1 thread on 2 cores).
    threads_per_worker
        Threads per worker. ``None``: config ``connectome_dask.cluster.local.threads_per_worker``,
        else CPU count // n_workers (at least 1).
    memory_limit
        Per-worker limit (bytes or a string such as ``"4GiB"``). ``None``: config
        ``connectome_dask.cluster.local.memory_limit``, else machine memory // n_workers.
    **kw
        Passed to :class:`distributed.LocalCluster` (e.g. ``dashboard_address=":0"``,
        ``local_directory=...``, ``processes=False``).

    Returns
    -------
    distributed.LocalCluster

    Raises
    ------
    ValueError
        ``n_workers`` or ``threads_per_worker`` (given or configured) is below 1.

    Examples
    --------
    >>> from connectome_dask.cluster import local_cluster
    >>> from distributed import Client
    >>> with local_cluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
    ...     with Client(cluster) as client:
    ...         client.submit(sum, [1, 2]).result()
    3
    """
    from distributed import LocalCluster
    from distributed.deploy.utils import nprocesses_nthreads

    ncpu = os.cpu_count() or 1
    if n_workers is None:
        n_workers = _cfg("local.n_workers", None)
    if threads_per_worker is None:
        threads_per_worker = _cfg("local.threads_per_worker", None)
    if n_workers is None and threads_per_worker is None:
        n_workers, threads_per_worker = nprocesses_nthreads(ncpu)
    elif n_workers is None:
        n_workers = max(1, ncpu // int(threads_per_worker))
    elif threads_per_worker is None:
        threads_per_worker = max(1, ncpu // int(n_workers))
    n_workers, threads_per_worker = int(n_workers), int(threads_per_worker)
    if n_workers < 1 or threads_per_worker < 1:
        raise ValueError(
            f"n_workers and threads_per_worker must be >= 1, got {n_workers}, {threads_per_worker}"
        )
    if memory_limit is None:
        memory_limit = _cfg("local.memory_limit", None)
    if memory_limit is None:
        memory_limit = _machine_memory() // n_workers
    kw.setdefault("processes", True)
    kw.setdefault("dashboard_address", _cfg("local.dashboard_address", ":8787"))
    tmpdir = None
    if "local_directory" not in kw:
        base = _cfg("local.local_directory", None) or dask.config.get("temporary-directory", None)
        if base:
            Path(base).mkdir(parents=True, exist_ok=True)
        tmpdir = tempfile.mkdtemp(prefix="connectome-dask-", dir=base)
        kw["local_directory"] = tmpdir
    fractions = _memory_fractions()
    trim = _malloc_trim_setting()
    cfg = {**_memory_config(fractions), _SPAWN_ENV_KEY: trim}
    # ``config`` is part of the worker spec: every nanny (also one the cluster
    # creates later to replace a lost worker) merges it into the config it
    # ships to each worker process it (re)starts, so the thresholds survive
    # restarts. The global dask config below only reaches the first nannies.
    # (Nanny merges it shallowly over the global config: pass a full, deep-merged snapshot)
    if kw.get("processes", True):  # only a Nanny takes ``config`` (in-process workers share ours)
        kw["config"] = dask.config.merge(
            dask.config.config, kw.pop("config", None) or {}, _nest(cfg)
        )
    try:
        # Nannies read the terminate fraction at creation and ship this config to
        # their worker processes, so the thresholds apply to every worker.
        # A nanny reads its pre-spawn environment from the global config when it is created.
        with dask.config.set(cfg), _spawn_environ(trim):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                memory_limit=memory_limit,
                **kw,
            )
    except BaseException:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    if tmpdir:
        weakref.finalize(cluster, shutil.rmtree, tmpdir, True)
        _TMPDIRS[cluster] = tmpdir
    return cluster


# ----------------------------------------------------------------------------- jobqueue


def default_jobqueue_file() -> Path | None:
    """The jobqueue YAML used when ``config=None``.

    dask config ``connectome_dask.cluster.jobqueue_file`` (or the environment
    variable ``DASK_CONNECTOME_DASK__CLUSTER__JOBQUEUE_FILE``), else the source
    tree's ``deploy/jobqueue.yaml`` when present, else ``None``.

    Returns
    -------
    pathlib.Path or None
        The file, or ``None`` when none is configured or shipped.

    Raises
    ------
    FileNotFoundError
        The configured ``jobqueue_file`` does not exist.

    Examples
    --------
    >>> from connectome_dask.cluster import default_jobqueue_file
    >>> p = default_jobqueue_file()
    >>> p is None or p.name == "jobqueue.yaml"  # None when installed without the source tree
    True
    """
    path = _cfg("jobqueue_file", None)
    if path:
        p = Path(os.path.expanduser(str(path)))
        if not p.is_file():
            raise FileNotFoundError(
                f"connectome_dask.cluster.jobqueue_file points to {p}, which does not exist"
            )
        return p
    return _REPO_JOBQUEUE_FILE if _REPO_JOBQUEUE_FILE.is_file() else None


def _norm(key: str) -> str:
    key = str(key).replace("-", "_")
    return "job_name" if key == "name" else key


def _normalize(d: Mapping[str, Any] | None) -> dict[str, Any]:
    return {_norm(k): v for k, v in (d or {}).items()}


def _kind(kind: str) -> str:
    k = str(kind).lower()
    if k not in JOBQUEUE_KINDS:
        raise ValueError(
            f"unknown batch system {kind!r}: choose one of {', '.join(JOBQUEUE_KINDS)}"
        )
    return k


def _cluster_class(kind: str):
    try:
        import dask_jobqueue
    except ImportError as e:  # pragma: no cover - dependency of the hpc extra
        raise ImportError(
            f"--scheduler {kind} needs dask-jobqueue: pip install 'connectome-dask[hpc]'"
        ) from e
    return getattr(dask_jobqueue, JOBQUEUE_KINDS[kind])


def _valid_keys(kind: str) -> set[str]:
    """Keyword arguments the dask-jobqueue cluster of ``kind`` accepts."""
    cls = _cluster_class(kind)
    keys: set[str] = set()
    for klass in (cls, cls.job_cls):
        for k in inspect.getmro(klass):
            init = k.__dict__.get("__init__")
            if init is None:
                continue
            for name, p in inspect.signature(init).parameters.items():
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name != "self":
                    keys.add(name)
    keys.discard("scheduler")
    return keys


def _read_jobqueue_file(config: str | os.PathLike | Mapping | None, kind: str) -> tuple[dict, str]:
    """The ``kind`` section of a jobqueue YAML (or mapping) and a label naming its source."""
    if config is None:
        path = default_jobqueue_file()
        if path is None:
            return {}, "no jobqueue file"
        config = path
    if isinstance(config, Mapping):
        data, label = dict(config), "config mapping"
    else:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"jobqueue config file {path} does not exist")
        with path.open() as f:
            data = yaml.safe_load(f) or {}
        label = str(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"{label}: expected a mapping at the top level, got {type(data).__name__}")
    section = data.get("jobqueue", data)
    if not isinstance(section, Mapping):
        raise ValueError(f"{label}: 'jobqueue' must be a mapping of batch systems")
    sub = section.get(kind) or {}
    if not isinstance(sub, Mapping):
        raise ValueError(f"{label}: 'jobqueue.{kind}' must be a mapping of settings")
    return _normalize(sub), label


def _dask_config_settings(kind: str) -> dict[str, Any]:
    """Settings the user put into dask config (values differing from dask-jobqueue's defaults)."""
    shipped = _normalize(
        _shipped_defaults("dask_jobqueue", "jobqueue.yaml").get("jobqueue", {}).get(kind, {})
    )
    current = _normalize(dask.config.get(f"jobqueue.{kind}", {}) or {})
    out = {k: v for k, v in current.items() if k not in shipped or shipped[k] != v}
    out.update(_normalize(_cfg(kind, None) or {}))
    return out


def _lsf_walltime(value: Any) -> Any:
    """LSF's ``bsub -W`` takes ``[HH:]MM``; accept ``HH:MM:SS`` too (seconds rounded up)."""
    if isinstance(value, str) and value.count(":") == 2:
        h, m, s = (int(x) for x in value.split(":"))
        m += 1 if s else 0
        return f"{h + m // 60:02d}:{m % 60:02d}"
    return value


def jobqueue_options(
    kind: str, config: str | os.PathLike | Mapping | None = None, **overrides: Any
) -> dict[str, Any]:
    """Resolve the keyword arguments :func:`jobqueue_cluster` passes to dask-jobqueue.

    Parameters
    ----------
    kind
        ``"slurm"``, ``"pbs"`` or ``"lsf"``.
    config
        A jobqueue YAML file (``jobqueue: {slurm: {...}, pbs: {...}}``, the layout
        of ``deploy/jobqueue.yaml`` and of dask-jobqueue's own file) or an
        equivalent mapping. ``None``: :func:`default_jobqueue_file`.
    **overrides
        Settings that win over everything else.

    Returns
    -------
    dict
        Keyword arguments for ``SLURMCluster`` / ``PBSCluster`` / ``LSFCluster``.

    Raises
    ------
    ValueError
        ``kind`` is not a known batch system, the jobqueue file is not a
        mapping of settings, or it holds a setting the dask-jobqueue class
        does not accept.
    FileNotFoundError
        ``config`` names a file that does not exist.
    ImportError
        dask-jobqueue is not installed.

    Examples
    --------
    >>> from connectome_dask.cluster import jobqueue_options
    >>> opts = jobqueue_options("slurm", {"jobqueue": {"slurm": {"memory": "8GiB"}}}, cores=2)
    >>> opts["cores"], opts["memory"]
    (2, '8GiB')
    """
    kind = _kind(kind)
    valid = _valid_keys(kind)
    file_settings, label = _read_jobqueue_file(config, kind)
    unknown = sorted(set(file_settings) - valid)
    if unknown:
        raise ValueError(
            f"{label}: unknown setting(s) {unknown} under jobqueue.{kind}; "
            f"valid keys include {sorted(valid)}"
        )
    dask_settings = _dask_config_settings(kind)
    opts: dict[str, Any] = dict(JOBQUEUE_DEFAULTS[kind])
    opts.update(file_settings)
    opts.update({k: v for k, v in dask_settings.items() if k in valid})
    opts.update(_normalize(overrides))
    opts = {k: v for k, v in opts.items() if v is not None}
    if kind == "lsf" and "walltime" in opts:
        opts["walltime"] = _lsf_walltime(opts["walltime"])
    for k in ("job_extra_directives", "worker_extra_args", "job_script_prologue"):
        if k in opts and isinstance(opts[k], str):
            opts[k] = [opts[k]]
    # spilling thresholds for the workers, exported in the job script
    env = [
        f"export DASK_DISTRIBUTED__WORKER__MEMORY__{k.upper()}={v}"
        for k, v in _memory_fractions().items()
    ]
    prologue = list(opts.get("job_script_prologue") or [])
    opts["job_script_prologue"] = env + [line for line in prologue if line not in env]
    opts.setdefault("python", sys.executable)
    return opts


def jobqueue_cluster(
    kind: str, config: str | os.PathLike | Mapping | None = None, **overrides: Any
):
    """Create a dask-jobqueue cluster (workers run as batch jobs); no job is submitted yet.

    Call ``cluster.scale(n)`` (or :func:`get_client` with ``workers=n``) to
    submit jobs. Settings come, highest precedence first, from ``overrides``,
    dask config (``connectome_dask.cluster.<kind>.*``, ``jobqueue.<kind>.*``),
    the jobqueue YAML file (``config``, default ``deploy/jobqueue.yaml``) and
    :data:`JOBQUEUE_DEFAULTS`. Documented keys: ``cores``, ``processes``,
    ``memory``, ``walltime``, ``queue``, ``account`` (``project`` on LSF),
    ``job_extra_directives``, ``job_script_prologue``, ``local_directory``,
    ``log_directory``, ``python``, ``interface``, ``worker_extra_args``,
    ``job_name``, ``scheduler_options``, ``death_timeout``; any other keyword of
    the dask-jobqueue class is accepted too.

    Parameters
    ----------
    kind
        ``"slurm"``, ``"pbs"`` or ``"lsf"``.
    config
        Jobqueue YAML path or mapping (see :func:`jobqueue_options`).
    **overrides
        Explicit settings.

    Returns
    -------
    dask_jobqueue.JobQueueCluster

    Examples
    --------
    >>> from connectome_dask.cluster import jobqueue_cluster
    >>> cluster = jobqueue_cluster("slurm", memory="2GiB", walltime="00:10:00")  # no job submitted
    >>> script = cluster.job_script()
    >>> script.startswith("#!/usr/bin/env bash"), "#SBATCH -t 00:10:00" in script
    (True, True)
    >>> cluster.close()

    Submitting workers (``cluster.scale(4)``) needs a SLURM installation; see
    ``tests/test_slurm.py``.
    """
    opts = jobqueue_options(kind, config, **overrides)
    return _cluster_class(_kind(kind))(**opts)


# ----------------------------------------------------------------------------- clients


@lru_cache(maxsize=1)
def _client_class():
    from distributed import Client

    class _OwningClient(Client):
        """A Client that also closes the cluster it was started with."""

        _owned_cluster = None

        def close(self, *args: Any, **kwargs: Any):
            try:
                return super().close(*args, **kwargs)
            finally:
                cluster, self._owned_cluster = self._owned_cluster, None
                if cluster is not None:
                    _close_cluster(cluster)

    return _OwningClient


def _close_cluster(cluster) -> None:
    with contextlib.suppress(Exception):
        cluster.close()
    tmp = _tmpdir_of(cluster)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def _classify(scheduler: str | os.PathLike | None) -> tuple[str, str | None]:
    """``("local"|"address"|"file"|<kind>, value)`` for a ``--scheduler`` value."""
    if scheduler is None:
        return "local", None
    s = os.fspath(scheduler).strip() if not isinstance(scheduler, str) else scheduler.strip()
    low = s.lower()
    if low in _LOCAL_NAMES:
        return "local", None
    if low in JOBQUEUE_KINDS:
        return low, None
    if low.startswith(_ADDRESS_PREFIXES):
        return "address", s
    p = Path(os.path.expanduser(s))
    if p.is_file():
        return "file", str(p)
    if s.endswith(".json") or os.sep in s:
        raise FileNotFoundError(f"scheduler file {s} does not exist (is the scheduler running?)")
    host, _, port = s.rpartition(":")
    if host and port.isdigit():
        return "address", f"tcp://{s}"
    raise ValueError(
        f"unknown scheduler {scheduler!r}: use 'local', 'slurm', 'pbs', 'lsf', a scheduler "
        "address such as tcp://host:8786, or the path of a scheduler file"
    )


def get_client(scheduler: str | os.PathLike | None = None, *, cluster=None, **kw: Any):
    """Return a :class:`distributed.Client` for a scheduler description.

    Parameters
    ----------
    scheduler
        ``None`` or ``"local"``: start the embedded cluster (:func:`local_cluster`).
        ``"tcp://host:port"`` (or ``host:port``, ``tls://...``): connect to a running
        scheduler. A path to a scheduler file (``dask scheduler --scheduler-file``):
        connect to that scheduler. ``"slurm"``, ``"pbs"``, ``"lsf"``: start a
        dask-jobqueue cluster (:func:`jobqueue_cluster`) and submit ``workers`` jobs.
    cluster
        An existing cluster object to connect to instead (never closed here).
    **kw
        ``workers``: number of workers (local: worker processes; jobqueue: workers
        to scale to, default dask config ``connectome_dask.cluster.workers`` or 2);
        ``config``: jobqueue YAML for batch systems. Other keywords go to
        :func:`local_cluster`, :func:`jobqueue_cluster` or, for addresses, to
        :class:`distributed.Client` (e.g. ``timeout``).

    Returns
    -------
    distributed.Client
        When this call started the cluster, closing the client also closes the
        cluster (and cancels its batch jobs). A running scheduler given by
        address or file is only disconnected from, never shut down.

    Raises
    ------
    ValueError
        Both ``scheduler`` and ``cluster`` are given, or ``scheduler`` is not
        one of the forms above (or a jobqueue setting is invalid, see
        :func:`jobqueue_options`).
    FileNotFoundError
        ``scheduler`` looks like a scheduler file path that does not exist.

    Examples
    --------
    >>> from connectome_dask.cluster import get_client
    >>> client = get_client("local", workers=1, dashboard_address=":0")
    >>> client.submit(sum, [1, 2]).result()
    3
    >>> client.close()  # also stops the LocalCluster it started
    """
    from distributed import Client

    workers = kw.pop("workers", None)
    if cluster is not None:
        if scheduler is not None:
            raise ValueError("give either scheduler or cluster, not both")
        if workers is not None:
            cluster.scale(int(workers))
        return Client(cluster, **kw)
    what, value = _classify(scheduler)
    if what in ("address", "file") and workers is not None:
        import warnings

        warnings.warn(
            f"workers={workers} ignored: the scheduler at {value} manages its own workers",
            stacklevel=2,
        )
    if what == "address":
        return Client(value, **kw)
    if what == "file":
        return Client(scheduler_file=value, **kw)
    if what == "local":
        started = local_cluster(n_workers=workers, **kw)
    else:
        config = kw.pop("config", None)
        started = jobqueue_cluster(what, config, **kw)
    try:
        if what != "local":
            n = int(workers if workers is not None else _cfg("workers", 2))
            started.scale(n)
        client = _client_class()(started)
    except BaseException:
        _close_cluster(started)
        raise
    client._owned_cluster = started
    return client


@contextlib.contextmanager
def connect(scheduler: str | os.PathLike | None = None, *, cluster=None, **kw: Any) -> Iterator:
    """Context manager form of :func:`get_client`.

    On exit the client is closed, and so is any cluster this call started
    (local workers stopped, batch jobs cancelled). A user's scheduler (address,
    scheduler file or ``cluster=`` object) keeps running.

    Parameters
    ----------
    scheduler
        As for :func:`get_client`: ``None``/``"local"``, an address, a scheduler
        file, or ``"slurm"``/``"pbs"``/``"lsf"``.
    cluster
        An existing cluster object to connect to instead (never closed here).
    **kw
        As for :func:`get_client` (``workers``, ``config``, cluster or client keywords).

    Yields
    ------
    distributed.Client

    Examples
    --------
    >>> from connectome_dask.cluster import connect
    >>> with connect("local", workers=1, dashboard_address=":0") as client:
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    client = get_client(scheduler, cluster=cluster, **kw)
    try:
        yield client
    finally:
        client.close()


def dashboard_link(client) -> str | None:
    """The URL of the scheduler's diagnostics dashboard, or ``None`` when it has none.

    The dashboard needs ``bokeh`` on the scheduler's machine; the link follows
    dask config ``distributed.dashboard.link`` (e.g. for a Jupyter proxy).

    Parameters
    ----------
    client
        A :class:`distributed.Client` (a closed one has no dashboard).

    Returns
    -------
    str or None

    Examples
    --------
    >>> from connectome_dask.cluster import connect, dashboard_link
    >>> with connect("local", workers=1, dashboard_address=":0") as client:  # a free port
    ...     link = dashboard_link(client)
    >>> link.startswith("http://"), link.endswith("/status")
    (True, True)
    """
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:  # noqa: BLE001 - a closed client has no dashboard
        return None
    if "dashboard" not in services:
        return None
    try:
        return client.dashboard_link
    except Exception:  # noqa: BLE001
        return None


# ----------------------------------------------------------------------------- CLI


@contextlib.contextmanager
def client_from_args(args: Any) -> Iterator:
    """Connect as the CLI's ``--scheduler`` / ``--workers`` say; close what was started.

    ``args`` is any object with optional ``scheduler`` and ``workers``
    attributes (the CLI passes its ``argparse.Namespace``; the parser lives in
    :mod:`connectome_dask.cli`, never in this library module).

    ``--scheduler`` missing: dask config ``connectome_dask.cluster.scheduler``,
    else the embedded LocalCluster. Show :func:`dashboard_link` to the user.

    Parameters
    ----------
    args
        Any object with optional ``scheduler`` and ``workers`` attributes.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ValueError
        ``workers`` is below 1 (or the scheduler is invalid, see :func:`get_client`).

    Examples
    --------
    >>> import argparse
    >>> from connectome_dask.cluster import client_from_args
    >>> args = argparse.Namespace(scheduler="local", workers=1)
    >>> with client_from_args(args) as client:
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    scheduler = getattr(args, "scheduler", None) or _cfg("scheduler", None)
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    kw = {} if workers is None else {"workers": workers}
    with connect(scheduler, **kw) as client:
        yield client


def __getattr__(name: str) -> Any:
    """Names that moved to :mod:`connectome_dask.cli` (argparse lives there) stay importable here."""
    if name == "add_scheduler_argument":
        import warnings

        from . import cli

        warnings.warn("connectome_dask.cluster.add_scheduler_argument moved to connectome_dask.cli",
                      DeprecationWarning, stacklevel=2)
        return cli.add_scheduler_argument
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
