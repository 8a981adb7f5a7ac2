"""Reading a store: :class:`Connectome`, :func:`open` and the default connectome.

:class:`Connectome` holds the metadata of one generation and reads through
it: the neuron table, the body index, partitions, row ranges and row sets,
per-neuron synapses through the index, the connection table, dask frames and
per-partition tasks (:meth:`Connectome.map_partitions`, :func:`_run_block`),
ROI and skeleton files. Its write, garbage-collection and check methods are
thin delegations to :mod:`~connectome_dask.store.commit` and
:mod:`~connectome_dask.store.maintenance`; :meth:`Connectome.adjacency` and
:meth:`Connectome.assign_rois` delegate (function-local imports) to the
layers above the store.

Imports :mod:`~connectome_dask.store.format`, :mod:`~connectome_dask.store.arrays`,
:mod:`~connectome_dask.store.commit` and :mod:`~connectome_dask.store.maintenance`.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._fsutil import encode_name, no_symlinks
from ..errors import StoreError
from . import commit as _commit
from . import maintenance as _maintenance
from .arrays import _open_array_cached, _ranges_to_rows, _read_range, take_rows
from .format import (
    DEFAULT_PARTITION_CHUNKS,
    POSITION_COLUMNS_CENTER,
    POSITION_COLUMNS_PAIR,
    ROI_PAIR_COLUMNS,
    ROI_PAIRS_COLUMN,
    _inside,
    _meta_token,
    _read_meta,
    read_neuron_table,
    safe_name,
)

__all__ = ["Connectome", "default_connectome", "open", "set_default_connectome"]


@lru_cache(maxsize=64)
def _pair_cuts(pre_path: str, token: str, n_pairs: int, first: tuple[int, ...]) -> tuple[int, ...]:
    """First connection-table row of each presynaptic neuron in ``first``, once per generation and process.

    A pure function of the generation (``token``): every query over the
    connection table asks again (reading the table's ``pre`` column and
    searching it took ~10 ms per query at 4.5 M pairs).
    """
    ppre = _read_range(pre_path, token, 0, n_pairs)
    return tuple(np.searchsorted(ppre, np.asarray(first, dtype=ppre.dtype), side="left").tolist())


@lru_cache(maxsize=4)
def _store_neurons(path: str, token: str, ident: tuple[int, ...]) -> tuple[pd.DataFrame, pd.Index]:
    """A store generation's neuron table and its body-ID index, read once per process.

    Keyed by the file's path, the store's ``"<uuid>:<generation>"`` token and
    the file's identity (device, inode, size, mtime, ctime): a commit writes a
    new file, so a changed table never hits a stale entry. Each
    :class:`Connectome` gets its own copy of the frame, so a user's edits stay
    in that connectome (a deep copy, 0.5 ms: Arrow-backed text is not copied;
    a shallow one would share edits under pandas 2 without copy-on-write);
    the index is immutable and shared, its hash table built once. Reading and
    checking the pages of a 139 k-row table took 10-12 ms of every query that
    opened the store again.
    """
    df = read_neuron_table(Path(path))
    return df, pd.Index(df["bodyId"].to_numpy())


_default: Connectome | None = None


def default_connectome() -> Connectome:
    """Return the connectome opened last (neuprint's ``default_client``).

    Returns
    -------
    Connectome

    Raises
    ------
    StoreError
        No connectome has been opened (or the default was cleared).

    Examples
    --------
    >>> default_connectome() is conn  # the doctests open their example store
    True
    """
    if _default is None:
        raise StoreError("no connectome is open: call connectome_dask.open(path) first")
    return _default


def set_default_connectome(conn: Connectome | None) -> None:
    """Make ``conn`` the default used by query functions when ``client=None``.

    Parameters
    ----------
    conn
        The connectome, or ``None`` to clear the default.

    Examples
    --------
    >>> set_default_connectome(None)
    >>> default_connectome()
    Traceback (most recent call last):
    ...
    connectome_dask.errors.StoreError: no connectome is open: call connectome_dask.open(path) first
    >>> set_default_connectome(conn)
    """
    global _default
    _default = conn


def open(path: str | os.PathLike, *, set_default: bool = True) -> Connectome:  # noqa: A001
    """Open a connectome store and (by default) make it the default for queries.

    Parameters
    ----------
    path
        Store directory, as written by :func:`connectome_dask.ingest` or
        :func:`connectome_dask.datasets.synthetic`.
    set_default
        Make it the default connectome (like neuprint's default client).

    Returns
    -------
    Connectome

    Examples
    --------
    >>> import connectome_dask as cd
    >>> _ = cd.datasets.synthetic(tmp_path / "s", n_neurons=50, n_synapses=2_000, progress=False)
    >>> small = cd.open(tmp_path / "s", set_default=False)
    >>> small.n_neurons, small.n_synapses
    (50, 2000)
    >>> cd.open(tmp_path / "s") is cd.default_connectome()  # set_default=True
    True
    """
    conn = Connectome(path)
    if set_default:
        set_default_connectome(conn)
    return conn


class Connectome:
    """A connectome store opened for analysis (the local counterpart of neuprint's ``Client``).

    Parameters
    ----------
    path
        Store directory (see :func:`open`, which also sets the default connectome).

    Raises
    ------
    StoreError
        ``path`` is not a connectome store, or its meta.json is missing,
        malformed, from a newer schema or fails its checksum.

    Attributes
    ----------
    path : Path
    meta : dict
        Contents of meta.json.
    neurons : pandas.DataFrame
        One row per body, row ``i`` has ``index == i``.
    synapses : dask.dataframe.DataFrame
        One partition per range of whole chunks; reads only the columns used.

    Examples
    --------
    >>> c = Connectome(conn.path)  # or connectome_dask.open(path)
    >>> c
    <Connectome 'store' v1.0: 400 neurons, 30,000 synapses, rois=yes at ...>
    >>> c.n_neurons, c.n_synapses, c.roi_names[:2]
    (400, 30000, ['AL_L', 'AL_R'])
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.meta = _read_meta(self.path)
        #: store identity and generation: part of every cache key (client and workers)
        self.token = _meta_token(self.meta)
        self._neurons: pd.DataFrame | None = None
        self._body_index: pd.Index | None = None
        self._rois_info: dict | None = None
        self._pre_off: np.ndarray | None = None  # index.zarr/pre_offsets, read on first use

    # -- basic facts
    def __repr__(self) -> str:
        m = self.meta
        return (
            f"<Connectome {m.get('name')!r} v{m.get('version')}: {m['n_neurons']:,} neurons, "
            + (f"{m['n_synapses']:,} connections ({m.get('total_weight', 0):,} synapses)"
               if m.get("kind") == "connections" else f"{m['n_synapses']:,} synapses")
            + f", rois={'yes' if m.get('rois') else 'no'} at {self.path}>"
        )

    @property
    def n_neurons(self) -> int:
        """Number of bodies (rows of :attr:`neurons`).

        Examples
        --------
        >>> conn.n_neurons == len(conn.neurons)
        True
        """
        return int(self.meta["n_neurons"])

    @property
    def n_synapses(self) -> int:
        """Number of synapse rows (one row per synaptic connection).

        On a connection-level store (:attr:`kind` ``"connections"``) this is
        the number of stored rows (weighted connections); the number of
        synapses they stand for is :attr:`total_weight`.

        Examples
        --------
        >>> conn.n_synapses
        30000
        """
        return int(self.meta["n_synapses"])

    @property
    def kind(self) -> str:
        """``"synapses"`` (one row per synaptic connection) or ``"connections"`` (weighted edges).

        Declared in ``meta.json`` (``kind``; absent in synapse-level stores).

        Examples
        --------
        >>> conn.kind
        'synapses'
        """
        return str(self.meta.get("kind", "synapses"))

    @property
    def weight_column(self) -> str | None:
        """The synapse column holding each row's synapse count (``"weight"``), or None: every row is one.

        Examples
        --------
        >>> conn.weight_column is None
        True
        """
        return "weight" if self.kind == "connections" else None

    @property
    def total_weight(self) -> int:
        """Synapses the rows stand for: :attr:`n_synapses`, or the sum of weights of a connection-level store.

        Examples
        --------
        >>> conn.total_weight == conn.n_synapses
        True
        """
        if self.kind == "connections":
            return int(self.meta["total_weight"])
        return self.n_synapses

    def require_synapses(self, what: str) -> None:
        """Raise unless the store holds synapse rows (positions, per-synapse values).

        Parameters
        ----------
        what
            What needs them, for the message (e.g. ``"fetch_synapses"``).

        Raises
        ------
        StoreError
            The store is connection-level: it has weighted edges, no positions.

        Examples
        --------
        >>> conn.require_synapses("fetch_synapses")  # a synapse-level store: nothing happens
        """
        if self.kind != "synapses":
            raise StoreError(
                f"{what} needs synapse positions, but {self.path} is a connection-level store "
                f"(kind {self.kind!r}: one row per connection{' and ROI' if 'roi_post' in self.synapse_columns else ''}"
                ", with weights, no synapse positions); use a synapse-level release for it"
            )

    @property
    def generation(self) -> int:
        """Commit counter of the store: bumped by every :meth:`write_synapse_columns`.

        Examples
        --------
        >>> conn.generation >= 1  # 0 when written, +1 for assign_rois
        True
        """
        return int(self.meta.get("generation", 0))

    @property
    def chunk_rows(self) -> int:
        """Zarr chunk length (rows) of every synapse array.

        Examples
        --------
        >>> conn.chunk_rows > 0
        True
        """
        return int(self.meta["synapses"]["chunk_rows"])

    @property
    def synapse_columns(self) -> list[str]:
        """Names of the synapse columns, ``pre`` and ``post`` first.

        Examples
        --------
        >>> conn.synapse_columns[:2], {"confidence", "roi_pre", "roi_post"} <= set(conn.synapse_columns)
        (['pre', 'post'], True)
        """
        return list(self.meta["synapses"]["columns"])

    @property
    def positions(self) -> tuple[str, ...]:
        """Position columns present: ``x_pre..z_post``, ``x, y, z`` or empty.

        Examples
        --------
        >>> conn.positions
        ('x_pre', 'y_pre', 'z_pre', 'x_post', 'y_post', 'z_post')
        """
        cols = set(self.synapse_columns)
        if set(POSITION_COLUMNS_PAIR) <= cols:
            return POSITION_COLUMNS_PAIR
        if set(POSITION_COLUMNS_CENTER) <= cols:
            return POSITION_COLUMNS_CENTER
        return ()

    def site_columns(self, site: str) -> tuple[str, str, str]:
        """Position columns of a synapse site (``"pre"`` or ``"post"``); centre columns if single.

        Parameters
        ----------
        site
            ``"pre"`` or ``"post"``.

        Returns
        -------
        tuple of str
            ``(x, y, z)`` column names.

        Raises
        ------
        ValueError
            ``site`` is neither ``"pre"`` nor ``"post"``.
        StoreError
            The store has no synapse positions.

        Examples
        --------
        >>> conn.site_columns("post")
        ('x_post', 'y_post', 'z_post')
        """
        if site not in ("pre", "post"):
            raise ValueError(f"site must be 'pre' or 'post', got {site!r}")
        pos = self.positions
        if pos == POSITION_COLUMNS_PAIR:
            return (f"x_{site}", f"y_{site}", f"z_{site}")
        if pos == POSITION_COLUMNS_CENTER:
            return POSITION_COLUMNS_CENTER
        self.require_synapses(f"site {site!r} positions")
        raise StoreError(f"{self.path}: the store has no synapse positions")

    def _array_path(self, column: str) -> Path:
        cols = self.meta["synapses"]["columns"]
        if column not in cols and self.kind != "synapses" and column in (
            *POSITION_COLUMNS_PAIR, *POSITION_COLUMNS_CENTER, "confidence", "confidence_pre", "confidence_post",
        ):
            self.require_synapses(f"synapse column {column!r}")
        if column not in cols:
            raise KeyError(
                f"synapse column {column!r} not in store {self.path}; available: {sorted(cols)}"
            )
        return _inside(self.path, f"{self.meta['synapses']['path']}/{cols[column]}")

    def synapse_column_paths(self, columns: Sequence[str]) -> dict[str, str]:
        """Paths of synapse arrays, for tasks that read row ranges themselves.

        Read them with :func:`read_rows` and :attr:`token` (as
        :meth:`pair_table_paths`), so a task reads this generation's arrays.

        Parameters
        ----------
        columns
            Synapse columns.

        Returns
        -------
        dict of str to str

        Raises
        ------
        KeyError
            A column is not in the store.

        Examples
        --------
        >>> list(conn.synapse_column_paths(["confidence"]))
        ['confidence']
        """
        return {c: str(self._array_path(c)) for c in columns}

    def _array(self, column: str):
        return _open_array_cached(str(self._array_path(column)), self.token)

    def _index_path(self, name: str) -> Path:
        return _inside(self.path, f"{self.meta['index']['path']}/{name}")

    def _index_array(self, name: str):
        return _open_array_cached(str(self._index_path(name)), self.token)

    def _pre_offsets(self) -> np.ndarray:
        """``index.zarr/pre_offsets``, read once per Connectome (a generation's index never changes)."""
        if self._pre_off is None:
            self._pre_off = self._read_index("pre_offsets")
        return self._pre_off

    def _read_index(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """An index array, whole or at ``rows``, with the missing-chunk check."""
        arr = self._index_array(name)
        p = str(self._index_path(name))
        if rows is None:
            return _read_range(p, self.token, 0, arr.shape[0])
        return take_rows(arr, p, rows, self.token)

    # -- neurons
    @property
    def neurons(self) -> pd.DataFrame:
        """The neuron table (``neurons.parquet``), loaded once; row ``i`` has ``index == i``.

        Examples
        --------
        >>> conn.neurons.columns.tolist()[:6]
        ['bodyId', 'index', 'type', 'instance', 'status', 'cropped']
        >>> bool((conn.neurons['index'] == np.arange(conn.n_neurons)).all())
        True
        """
        if self._neurons is None:
            df, self._body_index = self._neuron_table()
            self._neurons = df.copy(deep=True)
        return self._neurons

    def _neuron_table(self) -> tuple[pd.DataFrame, pd.Index]:
        """The (shared, process-cached) neuron table of this generation and its body-ID index."""
        p = _inside(self.path, self.meta["neurons"])
        try:
            st = os.stat(p)
        except OSError as e:
            raise StoreError(f"{p}: cannot read the neuron table ({type(e).__name__}: {e})") from None
        df, index = _store_neurons(str(p), self.token, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                                                        st.st_ctime_ns))
        if len(df) != self.n_neurons:
            raise StoreError(f"{p}: {len(df)} rows but meta.json says {self.n_neurons}")
        return df, index

    @property
    def body_ids(self) -> np.ndarray:
        """Body IDs (int64) in dense-index order.

        Examples
        --------
        >>> conn.body_ids.dtype, int(conn.body_ids[0]) == some_body
        (dtype('int64'), True)
        """
        return self.neurons["bodyId"].to_numpy()

    def body_to_index(self, body_ids: Iterable[int] | np.ndarray, *, missing: str = "raise") -> np.ndarray:
        """Map body IDs to dense int32 indices.

        Parameters
        ----------
        body_ids
            Body IDs (any iterable of integers).
        missing
            ``"raise"`` (KeyError naming examples), or ``"drop"``.

        Returns
        -------
        numpy.ndarray
            int32 indices, in the order of ``body_ids`` (unknown ones dropped
            with ``missing="drop"``).

        Raises
        ------
        KeyError
            With ``missing="raise"``: a body ID is not in the store (the message
            counts them and shows up to five).

        Examples
        --------
        >>> conn.body_to_index([some_body, int(conn.body_ids[5])])
        array([0, 5], dtype=int32)
        >>> conn.body_to_index([1, some_body], missing="drop")
        array([0], dtype=int32)
        >>> conn.body_to_index([1])
        Traceback (most recent call last):
        ...
        KeyError: '1 body IDs are not in ... (e.g. [1])'
        """
        index = self._body_index
        if index is None:
            _, index = self._neuron_table()
            self._body_index = index
        ids = np.asarray(list(body_ids) if not isinstance(body_ids, np.ndarray) else body_ids)
        if ids.size == 0:
            return np.zeros(0, dtype=np.int32)
        pos = index.get_indexer(ids.astype(np.int64))
        bad = pos < 0
        if bad.any():
            if missing == "drop":
                pos = pos[~bad]
            else:
                raise KeyError(
                    f"{int(bad.sum())} body IDs are not in {self.path} (e.g. {ids[bad][:5].tolist()})"
                )
        return pos.astype(np.int32)

    # -- partitions and reads
    def partitions(self, partition_rows: int | None = None, *, align_pre: bool = False) -> list[tuple[int, int]]:
        """Row ranges of the dask partitions.

        By default whole multiples of the chunk length (required for tasks
        that write). With ``align_pre=True`` (read-only tasks) each boundary
        moves forward to the next presynaptic-neuron start, so no neuron's
        outputs (and no (pre, post) pair) are split between partitions.

        Parameters
        ----------
        partition_rows
            Rows per partition, rounded up to whole chunks; default dask config
            ``connectome_dask.partition_chunks`` chunks.
        align_pre
            Move inner boundaries to the next presynaptic-neuron start.

        Returns
        -------
        list of (int, int)
            ``(start, stop)`` row ranges covering the table (``[(0, 0)]`` when empty).

        Examples
        --------
        >>> parts = conn.partitions()
        >>> parts[0][0], parts[-1][1] == conn.n_synapses
        (0, True)

        On a tiny store with 2-row chunks (rows' pre = 0, 0, 0, 1, 2):

        >>> from connectome_dask.store import write_store
        >>> tiny = write_store(tmp_path / "tiny", pd.DataFrame({"bodyId": [10, 20, 30]}),
        ...                    pd.DataFrame({"pre": [0, 0, 0, 1, 2], "post": [1, 1, 2, 0, 1]}), chunk_rows=2)
        >>> tiny.partitions(2), tiny.partitions(2, align_pre=True)
        ([(0, 2), (2, 4), (4, 5)], [(0, 3), (3, 4), (4, 5)])
        """
        import dask

        c = self.chunk_rows
        if partition_rows is None:
            k = int(dask.config.get("connectome_dask.partition_chunks", DEFAULT_PARTITION_CHUNKS))
            partition_rows = c * max(1, k)
        per = max(1, -(-int(partition_rows) // c)) * c
        n = self.n_synapses
        bounds = list(range(0, n, per)) + [n]
        if align_pre and len(bounds) > 2:
            off = self._pre_offsets()
            inner = np.asarray(bounds[1:-1], dtype=np.int64)
            # the neuron each boundary row belongs to; move to its end unless it starts there
            i = np.searchsorted(off, inner, side="right") - 1
            inner = np.where(off[i] == inner, inner, off[np.minimum(i + 1, len(off) - 1)])
            bounds = sorted({0, n, *inner.tolist()})
        return [(s, e) for s, e in zip(bounds[:-1], bounds[1:], strict=True)] or [(0, 0)]

    def read_synapses(
        self, columns: Sequence[str], start: int = 0, stop: int | None = None
    ) -> dict[str, np.ndarray]:
        """Read a row range of synapse columns as numpy arrays.

        Parameters
        ----------
        columns
            Synapse columns to read.
        start, stop
            Row range (default: every row).

        Returns
        -------
        dict of str to numpy.ndarray

        Raises
        ------
        KeyError
            A column is not in the store.
        StoreError
            A chunk file is missing or damaged, or the store was replaced.

        Examples
        --------
        >>> block = conn.read_synapses(["pre", "post"], 0, 5)
        >>> sorted(block), str(block["pre"].dtype), len(block["post"])
        (['post', 'pre'], 'int32', 5)
        """
        stop = self.n_synapses if stop is None else stop
        return {c: _read_range(str(self._array_path(c)), self.token, start, stop) for c in columns}

    def take_synapses(self, rows: np.ndarray, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Read arbitrary rows (sorted ascending is fastest) of synapse columns.

        Parameters
        ----------
        rows
            Global row ids.
        columns
            Synapse columns to read.

        Returns
        -------
        dict of str to numpy.ndarray
            The values at ``rows``, in that order.

        Raises
        ------
        KeyError
            A column is not in the store.
        StoreError
            A chunk file is missing or damaged, or the store was replaced.

        Examples
        --------
        >>> d = conn.take_synapses(np.array([0, 10, 20]), ["pre", "confidence"])
        >>> str(d["confidence"].dtype), len(d["pre"])
        ('float32', 3)
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = {}
        for c in columns:
            arr = self._array(c)
            if len(rows) == 0:
                out[c] = np.zeros(0, dtype=arr.dtype)
                continue
            # zarr orthogonal indexing with integer arrays decodes each touched chunk once
            out[c] = take_rows(arr, str(self._array_path(c)), rows, self.token)
        return out

    def synapse_rows(self, indices: Iterable[int] | np.ndarray, side: str = "pre") -> np.ndarray:
        """Row ids of all synapses whose ``side`` ("pre" or "post") is one of ``indices``.

        Uses the index: pre rows are contiguous slices, post rows come from
        ``post_perm``. Result is sorted ascending.

        Parameters
        ----------
        indices
            Dense neuron indices.
        side
            ``"pre"`` (output synapses) or ``"post"`` (input synapses).

        Returns
        -------
        numpy.ndarray
            int64 row ids, ascending.

        Raises
        ------
        ValueError
            ``side`` is neither ``"pre"`` nor ``"post"``.

        Examples
        --------
        >>> out_rows = conn.synapse_rows([0], side="pre")  # one contiguous slice
        >>> len(out_rows) == int(conn.neurons.pre.iloc[0]), bool((np.diff(out_rows) == 1).all())
        (True, True)
        >>> len(conn.synapse_rows([0], side="post")) == int(conn.neurons.post.iloc[0])
        True
        """
        idx = np.unique(np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64))
        if idx.size == 0:
            return np.zeros(0, dtype=np.int64)
        if side == "pre":
            off = self._read_index("pre_offsets", np.concatenate([idx, idx + 1]))
            starts, stops = off[: len(idx)], off[len(idx) :]
            return _ranges_to_rows(starts, stops)
        if side == "post":
            off = self._read_index("post_offsets", np.concatenate([idx, idx + 1]))
            starts, stops = off[: len(idx)], off[len(idx) :]
            pos = _ranges_to_rows(starts, stops)
            if len(pos) == 0:
                return pos
            return np.sort(self._read_index("post_perm", pos))
        raise ValueError(f"side must be 'pre' or 'post', got {side!r}")

    def _by_post_path(self, column: str) -> Path | None:
        rel = (self.meta["index"].get("by_post") or {}).get(column)
        if rel is None:
            return None
        return _inside(self.path, f"{self.meta['index']['path']}/{rel}")

    def _by_post_array(self, column: str):
        p = self._by_post_path(column)
        return None if p is None else _open_array_cached(str(p), self.token)

    @property
    def has_pair_table(self) -> bool:
        """Whether the store keeps the connection table (``index.zarr/pairs``)."""
        return bool(self.meta["index"].get("pairs"))

    def read_pairs(self, columns: Sequence[str] = ("pre", "post", "weight"), start: int = 0,
                   stop: int | None = None) -> dict[str, np.ndarray]:
        """Rows of the connection table: one per connected (pre, post) pair, sorted.

        ``weight`` is the number of synapse rows of the pair (no filters).

        Parameters
        ----------
        columns
            Any of ``"pre"``, ``"post"``, ``"weight"``.
        start, stop
            Row range of the table (default: every pair).

        Returns
        -------
        dict of str to numpy.ndarray

        Raises
        ------
        StoreError
            The store has no connection table (written by an older version),
            or a chunk file is missing or damaged.
        KeyError
            A column is not one of the table's.

        Examples
        --------
        >>> pairs = conn.read_pairs(["weight"], 0, 3)
        >>> len(pairs["weight"]), bool((pairs["weight"] > 0).all())
        (3, True)
        """
        rel = self.meta["index"].get("pairs")
        if not rel:
            raise StoreError(f"{self.path} has no connection table (written by an older version)")
        root = _inside(self.path, f"{self.meta['index']['path']}/{rel}")
        stop = int(self.meta["index"]["n_pairs"]) if stop is None else stop
        for c in columns:
            if c not in ("pre", "post", "weight"):
                raise KeyError(f"the connection table has columns pre, post, weight, not {c!r}")
        return {c: _read_range(str(root / c), self.token, start, stop) for c in columns}

    def pair_table_paths(self) -> dict[str, str]:
        """Paths of the connection table's arrays (``pre``, ``post``, ``weight``), for tasks.

        Read them with :func:`read_rows` and :attr:`token`, so a task reads this
        generation's arrays and never a newer or replaced store's.

        Returns
        -------
        dict of str to str

        Raises
        ------
        StoreError
            The store has no connection table (written by an older version).

        Examples
        --------
        >>> sorted(conn.pair_table_paths())
        ['post', 'pre', 'weight']
        """
        rel = self.meta["index"].get("pairs")
        if not rel:
            raise StoreError(f"{self.path} has no connection table (written by an older version)")
        root = _inside(self.path, f"{self.meta['index']['path']}/{rel}")
        return {c: str(root / c) for c in ("pre", "post", "weight")}

    def pair_partitions(self, partition_rows: int | None = None) -> list[tuple[int, int, int, int]]:
        """Partitions of the synapse rows aligned to presynaptic neurons, with their connection-table rows.

        Rows are stored sorted by ``(pre, post)`` and the connection table
        holds one row per pair in the same order, so the synapse rows
        ``start:stop`` of a whole range of presynaptic neurons are exactly the
        rows of the table's pairs ``pair_start:pair_stop`` (pair ``i`` owns
        the next ``weight[i]`` rows).

        Parameters
        ----------
        partition_rows
            Synapse rows per partition, as in :meth:`partitions` (``align_pre=True``).

        Returns
        -------
        list of (int, int, int, int)
            ``(start, stop, pair_start, pair_stop)`` per partition, in row order.

        Raises
        ------
        StoreError
            The store has no connection table, or a chunk file is missing or damaged.

        Examples
        --------
        >>> parts = conn.pair_partitions()
        >>> parts[-1][1] == conn.n_synapses, parts[-1][3] == conn.meta["index"]["n_pairs"]
        (True, True)
        >>> s, e, a, b = parts[0]
        >>> int(conn.read_pairs(["weight"], a, b)["weight"].sum()) == e - s
        True
        """
        parts = self.partitions(partition_rows, align_pre=True)
        n_pairs = int(self.meta["index"]["n_pairs"]) if self.has_pair_table else 0
        if not self.has_pair_table:
            raise StoreError(f"{self.path} has no connection table (written by an older version)")
        if len(parts) == 1:
            return [(parts[0][0], parts[0][1], 0, n_pairs)]
        off = self._pre_offsets()
        # each inner boundary is the first row of a presynaptic neuron: the first neuron starting there
        first = np.searchsorted(off, np.asarray([s for s, _ in parts[1:]], dtype=np.int64), side="left")
        cut = [0, *_pair_cuts(self.pair_table_paths()["pre"], self.token, n_pairs, tuple(first.tolist())),
               n_pairs]
        return [(s, e, int(cut[i]), int(cut[i + 1])) for i, (s, e) in enumerate(parts)]

    @property
    def has_roi_pair_table(self) -> bool:
        """Whether the store keeps a per-ROI connection table that matches its ``roi_post`` column.

        The table (``index.zarr/roi_pairs*``: one row per ``(pre, post, roi)``)
        is written at ingest when the rows carry ``roi_post`` and rebuilt by
        every commit that writes ``roi_post`` (e.g. ``assign_rois``). A table
        recorded for another ``roi_post`` array than the current one is never
        used (``False``).

        Examples
        --------
        >>> conn.has_roi_pair_table
        True
        """
        idx = self.meta["index"]
        rel = idx.get("roi_pairs")
        cur = self.meta["synapses"]["columns"].get(ROI_PAIRS_COLUMN)
        return bool(rel) and cur is not None and idx.get("roi_pairs_of") == cur

    def roi_pair_table_paths(self) -> dict[str, str]:
        """Paths of the per-ROI connection table's arrays (``pre``, ``post``, ``roi``, ``weight``), for tasks.

        Read them with :func:`read_rows` and :attr:`token`, as
        :meth:`pair_table_paths`.

        Returns
        -------
        dict of str to str

        Raises
        ------
        StoreError
            The store has no per-ROI connection table matching its ``roi_post`` column.

        Examples
        --------
        >>> sorted(conn.roi_pair_table_paths())
        ['post', 'pre', 'roi', 'weight']
        """
        if not self.has_roi_pair_table:
            raise StoreError(f"{self.path} has no per-ROI connection table for its {ROI_PAIRS_COLUMN} column "
                             "(written by an older version, or the store has no ROI codes)")
        root = _inside(self.path, f"{self.meta['index']['path']}/{self.meta['index']['roi_pairs']}")
        return {c: str(root / c) for c in ROI_PAIR_COLUMNS}

    def roi_major_paths(self, conf_cols: Sequence[str] = ()) -> dict[str, str] | None:
        """Paths of the per-ROI table's ROI-major copy (:mod:`~connectome_dask.store.roi_major`), for tasks.

        ``pre``, ``post``, ``weight`` (the runs), the confidence columns asked
        for, and ``run_starts``, ``row_starts``, ``run_rows``; read them with
        :func:`read_rows` and :attr:`token`.

        Parameters
        ----------
        conf_cols
            Confidence columns the caller reads.

        Returns
        -------
        dict of str to str, or None
            ``None`` when the store has no copy, or one made from other
            ``roi_post`` / confidence arrays than the current ones (a later
            commit replaced them), or without one of ``conf_cols``.

        Examples
        --------
        >>> sorted(conn.roi_major_paths(["confidence"]))
        ['confidence', 'post', 'pre', 'row_starts', 'run_rows', 'run_starts', 'weight']
        """
        from .roi_major import BY_ROI, RUN_COLUMNS

        rm = self.meta["index"].get("roi_major")
        if not rm or not self.has_roi_pair_table:
            return None
        cur = self.meta["synapses"]["columns"]
        of = rm["of"]
        if any(cur.get(c) != d for c, d in of.items()) or any(c not in of for c in conf_cols):
            return None
        root = _inside(self.path, f"{self.meta['index']['path']}/{self.meta['index']['roi_pairs']}/{BY_ROI}")
        names = [*RUN_COLUMNS, *conf_cols, "run_starts", "row_starts", "run_rows"]
        return {c: str(root / encode_name(c)) for c in names}

    @property
    def n_roi_pairs(self) -> int:
        """Rows of the per-ROI connection table (0 without one).

        Examples
        --------
        >>> conn.n_roi_pairs >= conn.meta["index"]["n_pairs"]
        True
        """
        return int(self.meta["index"].get("n_roi_pairs") or 0) if self.has_roi_pair_table else 0

    def read_roi_pairs(self, columns: Sequence[str] = ("pre", "post", "roi", "weight"), start: int = 0,
                       stop: int | None = None) -> dict[str, np.ndarray]:
        """Rows of the per-ROI connection table: one per ``(pre, post, roi)``, sorted.

        ``weight`` is the number of synapse rows of the pair whose postsynaptic
        site has that ROI code (``roi_post``; ``-1`` = in no ROI), no other filter.

        Parameters
        ----------
        columns
            Any of ``"pre"``, ``"post"``, ``"roi"``, ``"weight"``.
        start, stop
            Row range of the table (default: every row).

        Returns
        -------
        dict of str to numpy.ndarray

        Raises
        ------
        StoreError
            The store has no per-ROI connection table (see :attr:`has_roi_pair_table`),
            or a chunk file is missing or damaged.
        KeyError
            A column is not one of the table's.

        Examples
        --------
        >>> t = conn.read_roi_pairs()
        >>> int(t["weight"].sum()) == conn.n_synapses
        True
        """
        paths = self.roi_pair_table_paths()
        stop = self.n_roi_pairs if stop is None else stop
        for c in columns:
            if c not in paths:
                raise KeyError(f"the per-ROI connection table has columns {list(paths)}, not {c!r}")
        return {c: _read_range(paths[c], self.token, start, stop) for c in columns}

    def synapses_of(
        self, indices: Iterable[int] | np.ndarray, side: str, columns: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """All synapse rows whose ``side`` neuron is one of ``indices``, without a scan.

        Outputs (``side="pre"``) are contiguous row ranges; inputs
        (``side="post"``) are contiguous ranges of the post-ordered copies in
        ``index.zarr/by_post`` (columns missing there are read by row id).

        Parameters
        ----------
        indices
            Dense neuron indices.
        side
            ``"pre"`` (output synapses) or ``"post"`` (input synapses).
        columns
            Synapse columns to read.

        Returns
        -------
        dict
            ``"row"`` (global row ids, ascending) and each requested column,
            in the same order as ``take_synapses(synapse_rows(...))``.

        Raises
        ------
        ValueError
            ``side`` is neither ``"pre"`` nor ``"post"``.
        KeyError
            A column is not in the store.

        Examples
        --------
        >>> inputs = conn.synapses_of([0], side="post", columns=["pre", "post"])
        >>> sorted(inputs), set(inputs["post"].tolist()) == {0}
        (['post', 'pre', 'row'], True)
        >>> bool((inputs["row"] == conn.synapse_rows([0], side="post")).all())
        True
        """
        idx = np.unique(np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64))
        if side == "pre" or idx.size == 0:
            rows = self.synapse_rows(idx, side)
            return {"row": rows, **self.take_synapses(rows, columns)}
        if side != "post":
            raise ValueError(f"side must be 'pre' or 'post', got {side!r}")
        off = self._read_index("post_offsets", np.concatenate([idx, idx + 1]))
        starts, stops = off[: len(idx)], off[len(idx) :]
        pos = _ranges_to_rows(starts, stops)
        out: dict[str, np.ndarray] = {}
        rows = self._read_index("post_perm", pos) if len(pos) else np.zeros(0, np.int64)
        order = np.argsort(rows, kind="stable")
        out["row"] = rows[order]
        missing = []
        for c in columns:
            if c == "post":
                out[c] = np.repeat(idx.astype(np.int32), (stops - starts).astype(np.int64))[order]
                continue
            arr = self._by_post_array(c)
            if arr is None:
                missing.append(c)
            elif len(pos):
                out[c] = take_rows(arr, str(self._by_post_path(c)), pos, self.token)[order]
            else:
                out[c] = np.zeros(0, dtype=arr.dtype)
        if missing:
            out.update(self.take_synapses(out["row"], missing))
        return {k: out[k] for k in ["row", *columns]}

    @property
    def synapses(self):
        """All synapses as a dask DataFrame (index = global row id).

        Examples
        --------
        >>> ddf = conn.synapses
        >>> ddf.columns.tolist()[:4], len(ddf) == conn.n_synapses
        (['pre', 'post', 'x_pre', 'y_pre'], True)
        """
        return self.synapse_frame()

    def synapse_frame(self, columns: Sequence[str] | None = None, partition_rows: int | None = None):
        """Dask DataFrame over the synapse arrays, one partition per chunk range.

        Parameters
        ----------
        columns
            Synapse columns (default: all).
        partition_rows
            Rows per partition (see :meth:`partitions`).

        Returns
        -------
        dask.dataframe.DataFrame
            Index = global row id.

        Raises
        ------
        KeyError
            A column is not in the store.

        Examples
        --------
        >>> ddf = conn.synapse_frame(["pre", "confidence"])
        >>> ddf.columns.tolist(), ddf.npartitions == len(conn.partitions())
        (['pre', 'confidence'], True)
        """
        import dask.dataframe as dd

        cols = list(columns) if columns is not None else self.synapse_columns
        for c in cols:
            self._array_path(c)
        parts = self.partitions(partition_rows)
        paths = {c: str(self._array_path(c)) for c in self.synapse_columns}
        meta = pd.DataFrame({c: np.zeros(0, dtype=self._array(c).dtype) for c in cols})
        divisions = [p[0] for p in parts] + [max(parts[-1][1] - 1, 0)]
        return dd.from_map(
            _read_synapse_block,
            parts,
            paths=paths,
            gen=self.token,
            columns=cols,
            meta=meta,
            divisions=divisions,
            enforce_metadata=False,
            label="read-synapses",
        )

    def map_partitions(
        self,
        func: Callable[..., Any],
        columns: Sequence[str],
        *args: Any,
        partition_rows: int | None = None,
        align_pre: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> list:
        """Build one delayed task per partition: ``func(block, start, *args, **kwargs)``.

        ``block`` is a dict of numpy arrays read inside the task (nothing large
        is embedded in the graph). Large ``args`` should be delayed objects or
        scattered futures so they appear once in the graph.

        Parameters
        ----------
        func
            ``func(block, start, *args, **kwargs)``; ``start`` is the
            partition's first global row.
        columns
            Synapse columns read into ``block``.
        *args
            Extra positional arguments of ``func``.
        partition_rows, align_pre
            Partitioning (see :meth:`partitions`).
        name
            Task name prefix (default: ``func``'s name).
        **kwargs
            Extra keyword arguments of ``func``.

        Returns
        -------
        list of dask.delayed.Delayed
            One task per partition, in row order.

        Raises
        ------
        KeyError
            A column is not in the store.

        Examples
        --------
        >>> import dask
        >>> def n_strong(block, start, threshold):
        ...     return int((block["confidence"] > threshold).sum())
        >>> tasks = conn.map_partitions(n_strong, ["confidence"], 0.9)
        >>> len(tasks) == len(conn.partitions()), 0 < sum(dask.compute(*tasks)) < conn.n_synapses
        (True, True)
        """
        from dask.base import tokenize
        from dask.delayed import delayed

        paths = {c: str(self._array_path(c)) for c in columns}
        gen = self.token
        fname = name or getattr(func, "__name__", "map")
        tok = tokenize(str(self.path), gen, fname, columns, args, kwargs)
        out = []
        for i, (s, e) in enumerate(self.partitions(partition_rows, align_pre=align_pre)):
            out.append(
                delayed(_run_block, pure=True)(
                    func, paths, gen, s, e, args, kwargs, dask_key_name=f"{fname}-{tok}-{i}"
                )
            )
        return out

    # -- analyses (thin delegations to the layers above the store)
    def adjacency(self, pre=None, post=None, by: str = "bodyId", rois=None, min_weight: int = 1, **kwargs):
        """Synapse-count matrix as a labelled xarray.DataArray; see :func:`connectome_dask.aggregate.adjacency`.

        Parameters
        ----------
        pre, post
            Neurons on each axis: ``None`` (all), ``NeuronCriteria``, body IDs,
            a boolean mask over ``conn.neurons`` or a DataFrame with ``bodyId``.
        by
            ``"bodyId"`` (neuron x neuron) or an annotation column such as
            ``"type"`` to sum over its values.
        rois
            Count only synapses whose postsynaptic site is in these ROIs.
        min_weight
            Neuron pairs with fewer synapses are dropped (before grouping).
        **kwargs
            Other keywords of :func:`connectome_dask.aggregate.adjacency`.

        Returns
        -------
        xarray.DataArray

        Examples
        --------
        >>> A = conn.adjacency(by="type", rois=["MB_CA_R"])
        >>> A.dims, A.sel(pre="KCg-m", post="KCg-m").item() > 0
        (('pre', 'post'), True)
        """
        from ..aggregate import adjacency

        return adjacency(self, pre, post, by=by, rois=rois, min_weight=min_weight, **kwargs)

    def assign_rois(self, roiset, sites: Sequence[str] = ("pre", "post"), **kwargs) -> Connectome:
        """Label synapse sites with ROI codes; see :func:`connectome_dask.rois.assign_rois`.

        Parameters
        ----------
        roiset
            A :class:`~connectome_dask.rois.RoiSet`.
        sites
            Which sites to label (``"pre"``, ``"post"``).
        **kwargs
            Other keywords of :func:`connectome_dask.rois.assign_rois`.

        Returns
        -------
        Connectome
            The re-opened store with ``roi_pre``/``roi_post``.

        Examples
        --------
        >>> import shutil
        >>> from connectome_dask.rois import RoiSet
        >>> copy = open(shutil.copytree(conn.path, tmp_path / "copy"), set_default=False)
        >>> copy.assign_rois(RoiSet.from_store(copy), exact=False).roi_names == conn.roi_names
        True
        """
        from ..rois import assign_rois

        self.require_synapses("assign_rois (ROI assignment from meshes)")
        return assign_rois(self, roiset, sites=sites, **kwargs)

    # -- ROIs
    @property
    def rois_path(self) -> Path | None:
        """Folder of the current ROI set (``rois/<tag>``), or None before :meth:`assign_rois`.

        Examples
        --------
        >>> {"grid.zarr", "meshes", "rois.json"} <= {p.name for p in conn.rois_path.iterdir()}
        True
        """
        rel = self.meta.get("rois")
        return _inside(self.path, rel) if rel else None

    @property
    def roi_info(self) -> dict | None:
        """Contents of the current ``rois.json`` (``names``, ``primary``, ``hierarchy``...) or None.

        Examples
        --------
        >>> sorted(conn.roi_info["hierarchy"]["CX"])
        ['EB', 'FB', 'NO', 'PB']
        """
        if self._rois_info is None and self.rois_path is not None:
            p = _inside(self.path, f"{self.meta['rois']}/rois.json")
            try:
                info = json.loads(p.read_bytes().decode("utf-8"))
            except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
                raise StoreError(f"{p}: cannot read the ROI set ({type(e).__name__}: {str(e)[:200]})") from None
            if not isinstance(info, dict) or not isinstance(info.get("names", []), list):
                raise StoreError(f"{p}: 'names' must be a list of ROI names")
            for n in info.get("names", []):
                safe_name(n, f"{p}: ROI name")
            # the files rois.json names (meshes, label grid) follow meta.json's rule:
            # inside the store and never through a symlink (malformed entries are
            # refused, with the entry named, by RoiSet.from_store and assign_rois)
            rels = list((info.get("meshes") or {}).values()) if isinstance(info.get("meshes"), dict) else []
            grid = info.get("grid")
            if isinstance(grid, dict):
                rels.append(grid.get("path"))
            ok = [rel for rel in rels
                  if isinstance(rel, str) and rel and not os.path.isabs(rel) and ".." not in rel.split("/")]
            # each folder resolved once, then one lstat per file (resolving every one of 75 mesh paths
            # took 20-50 ms of every query that names ROIs)
            for d in sorted({posixpath.dirname(rel) for rel in ok}):
                no_symlinks(self.path, posixpath.join(self.meta["rois"], d).rstrip("/"), p, error=StoreError)
            base = os.path.join(os.fspath(self.path), self.meta["rois"])
            for rel in ok:  # os.path on strings: a tenth of pathlib's cost for the ~75 mesh files
                if os.path.islink(os.path.join(base, rel)):
                    raise StoreError(f"{p}: {os.path.join(base, rel)} is a symlink; stores never hold symlinks "
                                     "(refusing to follow it)")
            self._rois_info = info
        return self._rois_info

    @property
    def roi_names(self) -> list[str]:
        """ROI names in code order (``roi_pre``/``roi_post`` hold indices into this list).

        Examples
        --------
        >>> conn.roi_names[:3]
        ['AL_L', 'AL_R', 'AVLP_L']
        """
        info = self.roi_info
        return list(info["names"]) if info else []

    @property
    def skeleton_dir(self) -> Path | None:
        """Folder of ``<bodyId>.swc`` skeletons, or None.

        Examples
        --------
        >>> (conn.skeleton_dir / f"{skeleton_body}.swc").exists()
        True
        """
        rel = self.meta.get("skeletons")
        return _inside(self.path, rel) if rel else None

    def skeleton_file(self, body_id: int) -> Path | None:
        """The stored SWC file of one body (a regular file inside the store), or None.

        Parameters
        ----------
        body_id
            The body ID.

        Returns
        -------
        pathlib.Path or None
            ``None`` when the store has no skeletons or none for this body.

        Raises
        ------
        StoreError
            The skeleton path leaves the store, passes a symlink or is not a
            regular file.

        Examples
        --------
        >>> conn.skeleton_file(skeleton_body).name == f"{skeleton_body}.swc"
        True
        """
        rel = self.meta.get("skeletons")
        if not rel:
            return None
        name = f"{int(body_id)}.swc"
        p = self.path / rel / name
        if not p.exists() and not p.is_symlink():
            return None
        p = _inside(self.path, f"{rel}/{name}")
        if not p.is_file():
            raise StoreError(f"{p} is not a regular file")
        return p

    # -- writes
    def _check_current(self, when: str) -> dict:
        """Raise StoreError unless meta.json still holds the generation this object opened."""
        return _commit._check_current(self, when)

    def write_synapse_columns(
        self,
        func: Callable[..., Mapping[str, np.ndarray]],
        inputs: Sequence[str],
        outputs: Mapping[str, str],
        *,
        args: tuple = (),
        write_rois: Callable[[Path], None] | None = None,
        progress: bool | None = None,
        desc: str | None = None,
        meta_update: Mapping[str, Any] | None = None,
    ) -> Connectome:
        """Compute new synapse columns partition by partition and commit them atomically.

        ``func(block, *args)`` gets a dict of the ``inputs`` arrays of one
        partition and returns a dict with one array per name in ``outputs``
        (same length). Each task writes whole chunks of new arrays under fresh
        directory names; only when every task has succeeded is ``meta.json``
        replaced to point at them (and at the new ROI folder filled by
        ``write_rois(tmpdir)``, if given). A failure or kill before that leaves
        the store exactly as it was.

        The store's writer lock is held throughout; the commit lands only if
        meta.json still holds the generation this object was opened at
        (checked at the start and right before the rename). Arrays replaced
        by this commit stay until the next one, so readers of the previous
        generation finish undisturbed.

        Parameters
        ----------
        func
            ``func(block, *args) -> {name: array}``.
        inputs
            Synapse columns read for ``func``.
        outputs
            New or replaced columns and their dtypes (never ``pre``/``post``:
            they define the row order, the index and the connection table).
        args
            Extra arguments of ``func`` (delayed objects or futures for large ones).
        write_rois
            Fills the new ROI folder (must create ``rois.json``).
        progress, desc
            Progress bar switch and label.
        meta_update
            Keys to set in meta.json with the commit.

        Returns
        -------
        Connectome
            The re-opened store.

        Raises
        ------
        StoreError
            Another writer holds the lock, or committed since this object was
            opened; an output is ``pre``/``post`` or has a bad name.

        Examples
        --------
        Add a boolean column on a copy of the example store:

        >>> import shutil
        >>> copy = open(shutil.copytree(conn.path, tmp_path / "copy"), set_default=False)
        >>> def strong(block, threshold):
        ...     return {"strong": block["confidence"] > threshold}
        >>> new = copy.write_synapse_columns(strong, ["confidence"], {"strong": "bool"}, args=(0.9,))
        >>> "strong" in new.synapse_columns, new.generation == copy.generation + 1
        (True, True)
        >>> new.read_synapses(["strong"], 0, 3)["strong"].dtype
        dtype('bool')
        """
        new = _commit.write_synapse_columns(
            self, func, inputs, outputs, args=args, write_rois=write_rois, progress=progress, desc=desc,
            meta_update=meta_update,
        )
        if _default is self:
            set_default_connectome(new)
        return new

    def _write_locked(self, func, inputs, outputs, args, write_rois, progress, desc, meta_update,
                      compute) -> Connectome:
        return _commit._write_locked(self, func, inputs, outputs, args, write_rois, progress, desc,
                                      meta_update, compute)

    # -- garbage
    def _entries(self) -> list[tuple[Path, str, bool]]:
        """Every entry a write may leave in the store: (path, relative path, created by the package)."""
        return _maintenance._entries(self)

    def unreferenced(self) -> list[Path]:
        """Files and folders in the store that meta.json does not reference (leftovers).

        Entries still used by the previous generation (``meta["retained"]``)
        are live. Symlinks found where the store keeps its arrays are listed
        too (they are never followed or deleted).

        Examples
        --------
        >>> conn.unreferenced()
        []
        """
        return _maintenance.unreferenced(self)

    def stale_siblings(self) -> list[Path]:
        """Temporary directories beside the store left by killed ingests or rewrites.

        Those with the package's marker are removed by the next write to this
        store (under its writer lock); others are only reported.

        Examples
        --------
        >>> conn.stale_siblings()
        []
        """
        return _maintenance.stale_siblings(self)

    def collect_garbage(self) -> list[Path]:
        """Delete leftovers of interrupted writes; returns what was removed.

        Only entries the store itself created are deleted: the name pattern
        of a commit (``<column>.g<N>-<hex>``, ``rois/g<N>-<hex>``, ``_spill-<hex>``,
        ``.meta.json.tmp-<hex>``) AND the package's marker file (or an empty
        shell with that pattern, :func:`~connectome_dask._fsutil.is_empty_shell`:
        what a kill right after a ``mkdir`` leaves); symlinks are never followed
        nor deleted. Unreferenced entries without the marker stay
        (``connectome-dask info --check`` lists them).

        Examples
        --------
        >>> import shutil
        >>> from connectome_dask._fsutil import write_marker
        >>> copy = open(shutil.copytree(conn.path, tmp_path / "copy"), set_default=False)
        >>> (copy.path / "synapses.zarr" / "pre.g9-dead00").mkdir()  # as if a write was killed
        >>> write_marker(copy.path / "synapses.zarr" / "pre.g9-dead00", "array")
        >>> (copy.path / "synapses.zarr" / "mine").mkdir()  # not the package's: kept
        >>> [p.name for p in copy.collect_garbage()], [p.name for p in copy.unreferenced()]
        (['pre.g9-dead00'], ['mine'])
        """
        return _maintenance.collect_garbage(self)

    # -- validation
    def check(self, deep: bool = True) -> list[str]:
        """Validate the store; return a list of problems (empty when valid).

        Checks meta.json (and its checksum), the neuron table, every array's
        shape/dtype/chunking and chunk files, the index, the ROI folder, the
        file checksums, symlinks; and with ``deep`` every chunk of every array
        of the current generation (CRC32C) and every index invariant:
        ``pre``/``post`` in range and rows sorted by (pre, post), the offsets
        equal the counts, the connection table and the per-ROI connection
        table equal a recount, ``post_perm``
        is the (post, row) ordering of the rows and each ``by_post`` copy
        equals its column in that order, ROI codes are valid.

        Parameters
        ----------
        deep
            Read and verify every chunk (minutes at whole-brain scale).

        Returns
        -------
        list of str

        Examples
        --------
        >>> conn.check()
        []
        """
        return _maintenance.check(self, deep)

    def _shallow_check(self) -> list[str]:
        """The checks without reading chunks; see :func:`~connectome_dask.store.maintenance._shallow_check`."""
        return _maintenance._shallow_check(self)

    def _arrays_of_generation(self) -> list[tuple[str, Path, int | None]]:
        """(label, path, expected length) of every array the current generation reads."""
        return _maintenance._arrays_of_generation(self)

    def _deep_check(self) -> list[str]:
        """Every chunk and index invariant; see :func:`~connectome_dask.store.maintenance._deep_check`."""
        return _maintenance._deep_check(self)


def _run_block(func, paths: Mapping[str, str], gen: str, start: int, stop: int, args, kwargs):
    block = {c: _read_range(p, gen, start, stop) for c, p in paths.items()}
    return func(block, start, *args, **kwargs)


def _read_synapse_block(
    part: tuple[int, int], paths: Mapping[str, str], gen: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read one row range of synapse columns as a DataFrame (index = global row id).

    The ``columns=`` keyword lets dask project columns: only the arrays a
    query uses are read.
    """
    s, e = part
    cols = list(paths) if columns is None else list(columns)
    data = {c: _read_range(paths[c], gen, s, e) for c in cols}
    return pd.DataFrame(data, index=pd.RangeIndex(s, e))
