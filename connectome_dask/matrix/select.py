"""Selectors: :data:`All`, :class:`NeuropilCollection` and the source/target axis selections."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..labels import is_missing, str_value
from .common import _materialize

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .axes import _Annotations

__all__ = ["All", "NeuropilCollection"]


class _AllSelector:
    """Select every neuropil of a :class:`NeuropilCollection`, optionally minus some.

    Examples
    --------
    >>> All
    All
    >>> All.minus("EB", "FB").resolve(["EB", "FB", "PB"])
    ['PB']
    """

    def __init__(self, exclude: frozenset[str] = frozenset()) -> None:
        self._exclude = frozenset(exclude)

    def minus(self, *names: str) -> _AllSelector:
        """Return a selector that also excludes ``names``.

        Parameters
        ----------
        *names
            Neuropil names to leave out.
        """
        return _AllSelector(self._exclude | frozenset(names))

    def resolve(self, available: Iterable[str]) -> list[str]:
        """Names of ``available`` not excluded, in their order.

        Parameters
        ----------
        available
            The neuropil names to choose from.
        """
        return [n for n in available if n not in self._exclude]

    def __repr__(self) -> str:
        if self._exclude:
            return f"All.minus({', '.join(repr(n) for n in sorted(self._exclude))})"
        return "All"


All = _AllSelector()


class NeuropilCollection(dict):
    """Mapping of neuropil (ROI) name to a nested matrix, with plotting shortcuts.

    Examples
    --------
    >>> c = NeuropilCollection()
    >>> c
    NeuropilCollection([])
    """

    def plot(
        self, name: str | _AllSelector, **kwargs: Any
    ) -> tuple[Figure, Axes] | dict[str, tuple[Figure, Axes]]:
        """Plot one neuropil's matrix (``name``) or several (``All`` / ``All.minus(...)``).

        Returns ``(fig, ax)`` for one name, a dict ``{name: (fig, ax)}`` for a selector.

        Parameters
        ----------
        name
            A neuropil of the collection, or :data:`All` / ``All.minus(...)``.
        **kwargs
            Passed to each matrix's ``plot`` (:meth:`NestedMatrix.plot`).

        Returns
        -------
        tuple or dict
            ``(fig, ax)``, or ``{name: (fig, ax)}`` for a selector.

        Raises
        ------
        KeyError
            No neuropil is named ``name``.

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> from connectome_dask.matrix import NestedMatrix
        >>> c = NestedMatrix.from_synapses_by_neuropil(conn, neuropil_names=["MB_CA_R"])
        >>> fig, ax = c.plot("MB_CA_R")
        >>> figs = c.plot(All.minus("other"))
        >>> list(figs)
        ['MB_CA_R']
        >>> plt.close("all")
        """
        if isinstance(name, _AllSelector):
            return {n: self[n].plot(**kwargs) for n in name.resolve(list(self.keys()))}
        if name not in self:
            raise KeyError(f"no neuropil named {name!r}; available: {sorted(self)}")
        return self[name].plot(**kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"No neuropil named {name!r}") from None

    def __repr__(self) -> str:
        return f"NeuropilCollection({list(self.keys())})"


def _selector_set(values: Any) -> set[str] | None:
    """A type / neuron selector as a set of normalised labels (``None`` = no selection)."""
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return set() if is_missing(values) else {str_value(values)}
    return {str_value(v) for v in values if not is_missing(v)}


def _select_codes(
    available: np.ndarray, universe: np.ndarray, ann: _Annotations, ann_pos: np.ndarray, types: Any, neurons: Any
) -> np.ndarray:
    """Union of type- and neuron-selected codes among ``available`` (None, None = all)."""
    tset, nset = _selector_set(types), _selector_set(neurons)
    available = np.unique(available)
    if tset is None and nset is None:
        return available
    keep = np.zeros(len(available), dtype=bool)
    if tset is not None:
        pos = ann_pos[available]
        t = np.empty(len(available), dtype=object)
        t[:] = None
        t[pos >= 0] = ann.types[pos[pos >= 0]]
        keep |= np.array([x is not None and x in tset for x in t], dtype=bool)
    if nset is not None:
        keep |= np.isin(universe[available].astype(str), np.array(sorted(nset), dtype=str))
    return available[keep]


def _selection(st, tt, sn, tn, order, s_order, t_order) -> dict:
    """The directed-matrix axis selections as one dict (per-axis type orders default to ``order``).

    Generators and other one-shot iterables are read here, once, so that
    provenance and selection see the same values.
    """
    st, tt, sn, tn, order, s_order, t_order = map(_materialize, (st, tt, sn, tn, order, s_order, t_order))
    return {
        "source_types": st,
        "target_types": tt,
        "source_neurons": sn,
        "target_neurons": tn,
        "source_type_order": s_order if s_order is not None else order,
        "target_type_order": t_order if t_order is not None else order,
    }


def _sel_attrs(sel: dict) -> dict[str, list[str] | None]:
    """The selections as JSON-able lists of normalised labels (for provenance attrs)."""
    out: dict[str, list[str] | None] = {}
    for k, v in sel.items():
        if v is None:
            out[k] = None
        elif isinstance(v, str | bytes) or not isinstance(v, Iterable):
            out[k] = [str_value(v)]
        else:
            out[k] = [str_value(x) for x in v]
    return out
