"""The ROI model of a store: names, codes, the primary set and the hierarchy (from ``rois.json``).

Each synaptic site carries one ROI code (``roi_pre`` / ``roi_post``, ``-1`` =
none) into the store's ``roi_names``. :class:`RoiModel` answers which codes
count for an ROI name at any level of the hierarchy (a site counts for an ROI
when its code names that ROI or any of its descendants), which ROIs are
primary, and the names of each code. The hierarchy is parsed by the one parser
of :mod:`connectome_dask.rois.tree` (every form it accepts works here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import CriteriaError, UnknownRoiError
from .tree import hierarchy_edges

if TYPE_CHECKING:
    from ..store import Connectome

__all__ = ["RoiModel"]


class RoiModel:
    """ROI names, codes, primary set and hierarchy of a store (from ``rois.json``).

    Parameters
    ----------
    info
        The parsed ``rois.json``: ``names`` (code order), optional
        ``hierarchy`` (any form :mod:`connectome_dask.rois.tree` accepts) and
        ``primary`` (names, or one bool per name; default: the names without
        children). ``None`` or ``{}`` gives an empty model.

    Raises
    ------
    CriteriaError
        ``primary`` names something that is not an ROI, or the hierarchy is
        malformed (a node with two parents, a cycle).

    Examples
    --------
    >>> m = RoiModel({"names": ["A", "B", "C"], "hierarchy": {"C": ["A", "B"]}})
    >>> m.primary, m.all_rois
    (['A', 'B'], ['A', 'B', 'C'])
    >>> m.codes_for("C").tolist()
    [0, 1, 2]
    """

    def __init__(self, info: Mapping[str, Any] | None) -> None:
        info = dict(info or {})
        self.names: list[str] = [str(n) for n in info.get("names", [])]
        self.code_of: dict[str, int] = {n: i for i, n in enumerate(self.names)}
        self.children: dict[str, list[str]] = {}
        self.parent: dict[str, str] = {}
        self._parse_hierarchy(info.get("hierarchy") or {})
        nodes = set(self.names) | set(self.children) | set(self.parent)
        self.all_rois: list[str] = sorted(nodes)
        prim = info.get("primary")
        if prim is None:
            prim = [n for n in self.names if not self.children.get(n)]
        elif len(prim) == len(self.names) and all(isinstance(p, bool | np.bool_) for p in prim):
            prim = [n for n, p in zip(self.names, prim, strict=True) if p]
        prim = [str(p) for p in prim]
        bad = sorted(set(prim) - nodes)
        if bad:
            raise CriteriaError(f"rois.json: primary ROIs {bad} are not ROI names")
        self.primary: list[str] = sorted(prim)
        self._desc: dict[str, set[str]] = {}

    def _parse_hierarchy(self, h: Any) -> None:
        # the package's one hierarchy parser (all four forms), with this module's error
        self.children, self.parent = hierarchy_edges(h, self.names, error=CriteriaError)

    def __bool__(self) -> bool:
        return bool(self.all_rois)

    @classmethod
    def of(cls, conn: Connectome) -> RoiModel:
        """The ROI model of a connectome (cached on the object).

        Parameters
        ----------
        conn
            The store; the model is rebuilt when its ROI set or generation changes.

        Returns
        -------
        RoiModel

        Examples
        --------
        >>> m = RoiModel.of(conn)
        >>> m is RoiModel.of(conn), m.primary == conn.roi_info["primary"]
        (True, True)
        >>> sorted(m.children["CX"])
        ['EB', 'FB', 'NO', 'PB']
        """
        key = (str(conn.path), conn.meta.get("rois"), conn.generation)
        cached = getattr(conn, "_cd_roi_model", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        m = cls(conn.roi_info)
        try:
            # a cache slot Connectome (another layer) does not declare: set by name
            setattr(conn, "_cd_roi_model", (key, m))  # noqa: B010
        except AttributeError:  # pragma: no cover - slotted objects
            pass
        return m

    def validate(self, rois: Iterable[str], what: str = "ROI") -> list[str]:
        """Return ``rois`` as a list; raise :class:`UnknownRoiError` listing the valid names.

        Parameters
        ----------
        rois
            One ROI name or an iterable of names (any level of the hierarchy).
        what
            What the names are, for messages.

        Returns
        -------
        list of str

        Raises
        ------
        CriteriaError
            A name is not a string.
        UnknownRoiError
            A name is not an ROI of the store (or the store has no ROIs).

        Examples
        --------
        >>> m = RoiModel({"names": ["A", "B", "C"], "hierarchy": {"C": ["A", "B"]}})
        >>> m.validate("A")
        ['A']
        >>> m.validate(["A", "D"])
        Traceback (most recent call last):
        ...
        connectome_dask.errors.UnknownRoiError: unknown ROI ['D']; valid ROIs are: ['A', 'B', 'C']
        """
        rois = [rois] if isinstance(rois, str) else list(rois)
        for r in rois:
            if not isinstance(r, str):
                raise CriteriaError(f"{what} names must be strings, got {r!r}")
        bad = [r for r in rois if r not in set(self.all_rois)]
        if bad:
            if not self.all_rois:
                raise UnknownRoiError(
                    f"unknown {what} {bad}: this store has no ROIs (label synapses with assign_rois first)"
                )
            raise UnknownRoiError(f"unknown {what} {bad}; valid ROIs are: {self.all_rois}")
        return rois

    def descendants(self, name: str) -> set[str]:
        """``name`` and every ROI below it in the hierarchy.

        Parameters
        ----------
        name
            An ROI name (any level).

        Returns
        -------
        set of str
            Cached: do not modify.

        Examples
        --------
        >>> m = RoiModel({"names": ["A", "B", "C"], "hierarchy": {"C": ["A", "B"]}})
        >>> sorted(m.descendants("C")), sorted(m.descendants("A"))
        (['A', 'B', 'C'], ['A'])
        """
        if name not in self._desc:
            out, stack = set(), [name]
            while stack:
                n = stack.pop()
                if n in out:
                    continue
                out.add(n)
                stack.extend(self.children.get(n, ()))
            self._desc[name] = out
        return self._desc[name]

    def ancestors_or_self(self, name: str) -> list[str]:
        """``name`` followed by its parent, grandparent, ... up to the top level.

        Parameters
        ----------
        name
            An ROI name (any level).

        Returns
        -------
        list of str

        Examples
        --------
        >>> m = RoiModel({"names": ["A", "B", "C"], "hierarchy": {"C": ["A", "B"]}})
        >>> m.ancestors_or_self("A"), m.ancestors_or_self("C")
        (['A', 'C'], ['C'])
        """
        out = [name]
        while out[-1] in self.parent:
            out.append(self.parent[out[-1]])
        return out

    def codes_for(self, name: str) -> np.ndarray:
        """Site codes that count for ROI ``name`` (its own code and its descendants').

        Parameters
        ----------
        name
            An ROI name (any level; groups without a code of their own count
            through their descendants).

        Returns
        -------
        numpy.ndarray
            Sorted int64 codes.

        Examples
        --------
        >>> m = RoiModel.of(conn)
        >>> [conn.roi_names[c] for c in m.codes_for("MB_R")]
        ['MB_CA_R', 'MB_ML_R']
        """
        d = self.descendants(name)
        return np.array(sorted(self.code_of[n] for n in d if n in self.code_of), dtype=np.int64)

    def code_lut(self, rois: Iterable[str]) -> np.ndarray:
        """Boolean table indexed by ``code + 1`` (slot 0 = no ROI): site lies in any of ``rois``.

        Parameters
        ----------
        rois
            ROI names (any level).

        Returns
        -------
        numpy.ndarray
            bool, ``len(names) + 1`` entries.

        Examples
        --------
        >>> m = RoiModel({"names": ["A", "B", "C"], "hierarchy": {"C": ["A", "B"]}})
        >>> lut = m.code_lut(["A"])
        >>> lut[np.array([-1, 0, 1]) + 1].tolist()  # sites with codes -1 (none), 0 (A), 1 (B)
        [False, True, False]
        """
        lut = np.zeros(len(self.names) + 1, dtype=bool)
        for r in rois:
            lut[self.codes_for(r) + 1] = True
        return lut

    def primary_name_of_code(self) -> np.ndarray:
        """Object array indexed by ``code + 1``: the primary ROI containing each code, or None.

        Examples
        --------
        >>> m = RoiModel({"names": ["A", "B", "C"], "hierarchy": {"C": ["A", "B"]}})
        >>> m.primary_name_of_code().tolist()  # no ROI, A, B, C (not primary)
        [None, 'A', 'B', None]
        """
        prim = set(self.primary)
        out = np.empty(len(self.names) + 1, dtype=object)
        out[:] = None
        for c, n in enumerate(self.names):
            for a in self.ancestors_or_self(n):
                if a in prim:
                    out[c + 1] = a
                    break
        return out

    def all_names_of_code(self) -> list[list[str]]:
        """For each ``code + 1``: every ROI (any level) containing the code, sorted.

        Examples
        --------
        >>> m = RoiModel({"names": ["A", "B", "C"], "hierarchy": {"C": ["A", "B"]}})
        >>> m.all_names_of_code()
        [[], ['A', 'C'], ['B', 'C'], ['C']]
        """
        out: list[list[str]] = [[]]
        for n in self.names:
            out.append(sorted(self.ancestors_or_self(n)))
        return out

    def membership(self, rois: Sequence[str] | None = None) -> pd.DataFrame:
        """Pairs ``(code, roi)``: which site codes count for which ROI names (all levels by default).

        Parameters
        ----------
        rois
            ROI names (default: :attr:`all_rois`).

        Returns
        -------
        pandas.DataFrame
            Columns ``code`` (int64) and ``roi``.

        Examples
        --------
        >>> m = RoiModel({"names": ["A", "B", "C"], "hierarchy": {"C": ["A", "B"]}})
        >>> m.membership(["A", "C"]).values.tolist()
        [[0, 'A'], [0, 'C'], [1, 'C'], [2, 'C']]
        """
        rois = self.all_rois if rois is None else list(rois)
        rows_c, rows_r = [], []
        for r in rois:
            cs = self.codes_for(r)
            rows_c.append(cs)
            rows_r.extend([r] * len(cs))
        codes = np.concatenate(rows_c) if rows_c else np.zeros(0, dtype=np.int64)
        return pd.DataFrame({"code": codes.astype(np.int64), "roi": pd.Series(rows_r, dtype=object)})
