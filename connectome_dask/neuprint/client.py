"""neuprint-python's ``Client`` on a local store, and its default-client rules.

A :class:`Client` wraps a :class:`~connectome_dask.Connectome` (a store path,
an open Connectome, or ``''`` / ``None`` for the connectome opened last). As in
neuprint-python, the first client created becomes the default used by every
query function called without ``client=``; creating a second client that is not
equal to the first clears the default, and a query then raises
:class:`NoDefaultClientError` until :func:`set_default_client` is called.
Clients are tracked by weak reference: a client that is no longer referenced
stops counting.

Examples
--------
>>> c = Client(conn.path, "demo:v1", token="ignored")
>>> set_default_client(c)  # implicit when c is the only client
>>> default_client() is c
True
>>> c.fetch_neurons("KC.*")[0].type.unique().tolist()
['KCg-m']
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import StoreError
from ..store import Connectome, default_connectome
from ..store import open as _open_store

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Client",
    "NoDefaultClientError",
    "default_client",
    "set_default_client",
    "clear_default_client",
    "list_all_clients",
    "inject_client",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class NoDefaultClientError(StoreError, RuntimeError):
    """No default client: none was created, or several different ones exist (neuprint's RuntimeError)."""


_lock = threading.RLock()
_default_ref: Callable[[], Client | None] = lambda: None  # noqa: E731
_clients: dict[int, weakref.ref] = {}


def _live() -> list[Client]:
    out = []
    for r in list(_clients.values()):
        c = r()
        if c is not None:
            out.append(c)
    return out


def _set_default(client: Client) -> None:
    global _default_ref
    _default_ref = weakref.ref(client)


def _register(client: Client) -> None:
    with _lock:
        cid = id(client)

        def _gone(_ref: weakref.ref, cid: int = cid) -> None:
            _clients.pop(cid, None)

        _clients[cid] = weakref.ref(client, _gone)
        live = _live()
        if all(c == live[0] for c in live[1:]):
            _set_default(client)
        else:
            clear_default_client()


def default_client() -> Client:
    """The client used by query functions called without ``client=`` (neuprint's rule).

    Returns
    -------
    Client
        The default set explicitly or implicitly (the only client, or one of
        several equal clients).

    Raises
    ------
    NoDefaultClientError
        No client exists yet, or several unequal clients exist and none was
        made the default (also a ``RuntimeError``, as in neuprint-python).

    Examples
    --------
    >>> c = Client(conn)
    >>> set_default_client(c)  # implicit when c is the only (or only kind of) client
    >>> default_client() is c
    True
    """
    with _lock:
        d = _default_ref()
        if d is not None:
            return d
        live = _live()
        if not live:
            raise NoDefaultClientError(
                "No default Client has been set yet because you haven't yet created a Client.\n"
            )
        if any(c != live[0] for c in live[1:]):
            raise NoDefaultClientError(
                "Currently more than one Client exists, so neither was automatically chosen as the default.\n"
                "You must explicitly pass a client to query functions, or explicitly call set_default_client().\n"
                f"Currently {len(live)} clients exist: {live}"
            )
        _set_default(live[0])
        return live[0]


def set_default_client(client: Client | None) -> None:
    """Make ``client`` the default (``None`` clears it).

    Parameters
    ----------
    client
        A :class:`Client`, or ``None``.

    Raises
    ------
    TypeError
        ``client`` is not a Client.

    Examples
    --------
    >>> a, b = Client(conn, "a"), Client(conn, "b")
    >>> set_default_client(b)
    >>> default_client() is b
    True
    """
    if client is None:
        clear_default_client()
        return
    if not isinstance(client, Client):
        raise TypeError(f"set_default_client needs a Client, got {type(client).__name__}")
    with _lock:
        if id(client) not in _clients:
            _register(client)
        _set_default(client)


def clear_default_client() -> None:
    """Leave no default client in place (query functions then need ``client=``).

    Examples
    --------
    >>> c = Client(conn)
    >>> set_default_client(c)
    >>> clear_default_client()
    >>> c.fetch_neurons("KC.*")[0].empty  # an explicit client always works
    False
    """
    global _default_ref
    with _lock:
        _default_ref = lambda: None  # noqa: E731


def list_all_clients() -> set[Client]:
    """Every live :class:`Client` (those still referenced somewhere).

    Returns
    -------
    set of Client

    Examples
    --------
    >>> c = Client(conn)
    >>> c in list_all_clients()
    True
    """
    return set(_live())


def inject_client(f: F) -> F:
    """Decorator: pass :func:`default_client` as ``client=`` when the caller gives none.

    Parameters
    ----------
    f
        A function with a keyword-only ``client`` parameter.

    Returns
    -------
    callable
        The wrapped function (same signature).

    Raises
    ------
    TypeError
        ``f`` has no keyword-only ``client`` parameter.

    Examples
    --------
    >>> @inject_client
    ... def n_neurons(*, client=None):
    ...     return client.conn.n_neurons
    >>> c = Client(conn)
    >>> set_default_client(c)
    >>> n_neurons() == n_neurons(client=c) == conn.n_neurons
    True
    """
    spec = inspect.getfullargspec(f)
    if "client" not in spec.kwonlyargs:
        raise TypeError(f"cannot wrap {f.__name__}: it must accept 'client' as a keyword-only argument")

    @functools.wraps(f)
    def wrapper(*args: Any, client: Any = None, **kwargs: Any) -> Any:
        if client is None:
            client = default_client()
        return f(*args, **kwargs, client=client)

    wrapper.__signature__ = inspect.signature(f)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def connectome_of(client: Any) -> Connectome:
    """The :class:`~connectome_dask.Connectome` behind ``client`` (a Client or a Connectome).

    Parameters
    ----------
    client
        A :class:`Client`, a Connectome, or ``None`` for :func:`default_client`.

    Returns
    -------
    Connectome

    Raises
    ------
    TypeError
        ``client`` is neither.
    NoDefaultClientError
        ``client`` is ``None`` and there is no default client.

    Examples
    --------
    >>> connectome_of(Client(conn)) is conn, connectome_of(conn) is conn
    (True, True)
    """
    if client is None:
        client = default_client()
    if isinstance(client, Connectome):
        return client
    if isinstance(getattr(client, "conn", None), Connectome) and hasattr(client, "dataset"):
        return client.conn  # a Client (by its attributes: a re-imported module has its own class)
    raise TypeError(f"client must be a neuprint Client or a Connectome, got {type(client).__name__}")


def _bind_methods(functions: dict[str, Callable[..., Any]]) -> None:
    """Make each query function a :class:`Client` method (``client=self``), with its signature and doc."""
    for name, f in functions.items():

        def method(self: Client, *args: Any, _f: Callable[..., Any] = f, **kwargs: Any) -> Any:
            return _f(*args, **kwargs, client=self)

        functools.update_wrapper(method, f)
        sig = inspect.signature(f)
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                  *(p for n, p in sig.parameters.items() if n != "client")]
        method.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        method.__qualname__ = f"Client.{name}"
        setattr(Client, name, method)


class Client:
    """A neuprint-python ``Client`` whose "server" is a local connectome store.

    Parameters
    ----------
    server
        A store path, an open :class:`~connectome_dask.Connectome`, or ``''``
        / ``None`` for :func:`connectome_dask.default_connectome` (the store
        opened last), so ``Client('', dataset, TOKEN)`` works in a notebook
        that opened its store first.
    dataset
        The dataset name reported by :meth:`fetch_datasets` and ``repr``
        (default: the store's name). Any name is accepted: a store holds one
        dataset.
    token, verify
        Accepted and ignored (no server, no authentication).
    progress
        Default for progress bars of whole-store scans.

    Raises
    ------
    connectome_dask.errors.StoreError
        ``server`` is not a store, or ``''`` / ``None`` while no store is open.
    TypeError
        ``server`` is neither a path nor a Connectome.

    Examples
    --------
    >>> c = Client(conn.path, "hemibrain:v1.2.1", "TOKEN")
    >>> c.dataset, c.server == str(conn.path)
    ('hemibrain:v1.2.1', True)
    >>> c.fetch_custom("MATCH (n) RETURN n")
    Traceback (most recent call last):
    ...
    NotImplementedError: fetch_custom: a local store has no Cypher engine; ...
    """

    def __init__(self, server: Any, dataset: str | None = None, token: str | None = None,
                 verify: bool = True, progress: bool = True) -> None:
        if isinstance(server, Connectome):
            conn = server
        elif server is None or (isinstance(server, str) and server == ""):
            conn = default_connectome()
        elif isinstance(server, str | os.PathLike):
            conn = _open_store(server, set_default=False)
        else:
            raise TypeError(f"server must be a store path or a Connectome, got {type(server).__name__}")
        self.conn = conn
        self.server = str(conn.path)
        self.dataset = dataset or str(conn.meta.get("name") or conn.path.name)
        self.token = token
        self.verify = verify
        self.progress = progress
        self._meta: dict | None = None
        self._meta_token: str | None = None
        _register(self)

    def __getattr__(self, name: str) -> Any:
        # the query methods are bound by connectome_dask.neuprint.queries (_bind_methods); a copy of
        # this module imported on its own (e.g. by a doctest collector) finds them here
        if name.startswith("fetch_"):
            from . import queries

            f = getattr(queries, name, None)
            if f is not None and name != "fetch_custom":
                return functools.partial(f, client=self)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        s = f'Client("{self.server}", "{self.dataset}"'
        if not self.verify:
            s += ", verify=False"
        return s + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Client):
            return NotImplemented
        return (self.server, self.dataset, self.token, self.verify) == (
            other.server, other.dataset, other.token, other.verify)

    def __hash__(self) -> int:
        return hash((self.server, self.dataset, self.token, self.verify))

    # -- metadata
    @property
    def meta(self) -> dict:
        """neuPrint's dataset metadata (:func:`connectome_dask.neuprint.fetch_meta`), computed once."""
        if self._meta is None or self._meta_token != self.conn.token:
            from .queries import fetch_meta

            self._meta, self._meta_token = fetch_meta(client=self), self.conn.token
        return self._meta

    @property
    def primary_rois(self) -> list[str]:
        """Sorted primary ROI names."""
        from .queries import fetch_primary_rois

        return fetch_primary_rois(client=self)

    @property
    def all_rois(self) -> list[str]:
        """Sorted names of every ROI (any level)."""
        from .queries import fetch_all_rois

        return fetch_all_rois(client=self)

    def fetch_version(self) -> str:
        """The package version (neuprint: the server's).

        Returns
        -------
        str

        Examples
        --------
        >>> Client(conn).fetch_version() == cd.__version__
        True
        """
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("connectome-dask")
        except PackageNotFoundError:  # a source checkout that is not installed
            return "0.0.0"

    def fetch_datasets(self, reload_cache: bool = False) -> dict[str, dict]:
        """``{dataset: info}`` for the one dataset of the store.

        Parameters
        ----------
        reload_cache
            Ignored.

        Returns
        -------
        dict

        Examples
        --------
        >>> list(Client(conn, "ds").fetch_datasets())
        ['ds']
        """
        m = self.conn.meta
        return {self.dataset: {"uuid": m.get("uuid"), "description": m.get("name"),
                               "superLevelRois": sorted(set(self.all_rois) - set(self.primary_rois)),
                               "ROIs": self.all_rois}}

    def fetch_custom(self, cypher: str, dataset: str = "", format: str = "pandas",  # noqa: A002
                     use_arrow: bool = False) -> pd.DataFrame:
        """Not available: a local store runs no Cypher.

        Parameters
        ----------
        cypher, dataset, format, use_arrow
            neuprint-python's arguments.

        Returns
        -------
        pandas.DataFrame
            Never: always raises.

        Raises
        ------
        NotImplementedError
            Always; the message names the functions to use instead.

        Examples
        --------
        >>> Client(conn).fetch_custom("MATCH (n:Neuron) RETURN n.bodyId")
        Traceback (most recent call last):
        ...
        NotImplementedError: fetch_custom: a local store has no Cypher engine; ...
        """
        raise NotImplementedError(
            "fetch_custom: a local store has no Cypher engine; use fetch_neurons / fetch_adjacencies / "
            "fetch_synapses / fetch_synapse_connections, or the tables directly "
            "(client.conn.neurons, client.conn.read_synapses(...))"
        )

    def fetch_skeleton(self, body: Any, heal: Any = False, export_path: Any = None,
                       format: str = "pandas", with_distances: bool = False) -> Any:  # noqa: A002
        """The skeleton of ``body`` (:func:`connectome_dask.neuprint.skeleton.fetch_skeleton`).

        Parameters
        ----------
        body, heal, export_path, format, with_distances
            As :func:`connectome_dask.neuprint.skeleton.fetch_skeleton`.

        Returns
        -------
        pandas.DataFrame, str or networkx.DiGraph

        Raises
        ------
        connectome_dask.errors.SkeletonError
            The store has no skeleton for ``body``.

        Examples
        --------
        >>> s = Client(conn).fetch_skeleton(skeleton_body, format="pandas")
        >>> s.columns.tolist()
        ['rowId', 'x', 'y', 'z', 'radius', 'link']
        """
        from .skeleton import fetch_skeleton

        return fetch_skeleton(body, heal, export_path, format, with_distances, client=self)
