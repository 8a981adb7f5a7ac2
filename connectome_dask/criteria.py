"""Neuron and synapse selection criteria with neuPrint semantics.

:class:`NeuronCriteria` and :class:`SynapseCriteria` mirror the classes of
``neuprint-python`` so notebooks port by changing an import. Instead of being
turned into Cypher, a :class:`NeuronCriteria` is compiled into a boolean mask
over ``conn.neurons`` (:meth:`NeuronCriteria.mask`) or an array of dense
neuron indices (:meth:`NeuronCriteria.indices`). ROI conditions use per-neuron
per-ROI synapse counts: read through the index for a few candidate bodies,
from :func:`connectome_dask.compute.roi_counts.neuron_roi_counts` (a cached whole-brain
aggregation) otherwise.

ROIs
----
Each synaptic site carries one ROI code (``roi_pre`` / ``roi_post``, ``-1`` =
none) into ``conn.roi_names``. The ROI folder's ``rois.json`` may add
``primary`` (names of the primary ROIs; default: every named ROI that has no
children in the hierarchy) and ``hierarchy``: a nested mapping
``{name: {child: {...}, ...}}`` (leaves map to ``{}`` or ``None``), a mapping
``{parent: [children, ...]}``, a mapping ``{child: parent}``, or neuPrint's form
``{"name": root, "children": [{"name": ..., "children": [...]}, ...]}`` (the
root of the nested form is the dataset, not an ROI, unless it is also listed in
``names``). A site counts for an ROI when its code names that ROI or any of
its descendants, so super-level ROIs sum the primary ROIs under them, as in
neuPrint.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, SupportsFloat

import numpy as np
import pandas as pd

from .compute import plan as _plan
from .errors import CriteriaError, UnknownColumnError, UnknownRoiError
from .labels import body_labels
from .rois.model import RoiModel

if TYPE_CHECKING:
    from .store import Connectome

__all__ = [
    "NeuronCriteria",
    "SynapseCriteria",
    "NotNull",
    "IsNull",
    "CriteriaError",
    "UnknownRoiError",
    "UnknownColumnError",
    "RoiModel",
    "copy_as_neuroncriteria",
    "body_ids_of",
    "neuron_roi_table",
    "NOT_PRIMARY",
]

NOT_PRIMARY = "NotPrimary"

#: characters that make ``regex="guess"`` treat a type/instance value as a regex (neuprint's set;
#: parentheses alone do not count)
_REGEX_CHARS = re.compile(r"[\\.?\[\]+^$*]")

#: above this many synapse rows, ROI counts come from the whole-brain aggregation, not the index
#: (re-exported: the read-path rule and its limit live in :mod:`connectome_dask.compute.plan`)
INDEX_ROWS_LIMIT = _plan.INDEX_ROWS_LIMIT




class _NullSentinel:
    """Type of :data:`NotNull` / :data:`IsNull`: match any non-missing / missing value.

    Examples
    --------
    >>> typed = NeuronCriteria(type=NotNull).mask(conn)
    >>> untyped = NeuronCriteria(type=IsNull).mask(conn)
    >>> bool((typed ^ untyped).all()), int(untyped.sum()) == int(conn.neurons.type.isna().sum())
    (True, True)
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


#: match any non-null value (``type=NotNull``)
NotNull = _NullSentinel("NotNull")
#: match missing values (``type=IsNull``; same as ``type=[None]``)
IsNull = _NullSentinel("IsNull")


# ----------------------------------------------------------------------------- ROI counts


_COUNT_COLS = ["pre", "post", "downstream", "upstream"]


def code_roi_counts(conn: Connectome, idx: np.ndarray | None = None) -> pd.DataFrame:
    """Per (neuron index, site ROI code) counts ``pre, post, downstream, upstream``.

    Few neurons (at most :data:`~connectome_dask.compute.plan.INDEX_ROWS_LIMIT`
    synapse rows in all, pre and post: :func:`~connectome_dask.compute.plan.plan_read`
    with ``what="rows", either=True``) are read through the index; otherwise
    the cached whole-brain :func:`connectome_dask.compute.roi_counts.neuron_roi_counts`
    is used. Rows with
    code ``-1`` (no ROI) may or may not be present; callers derive
    ``NotPrimary`` from the neuron totals instead.
    """
    if idx is not None:
        idx = np.unique(np.asarray(idx, dtype=np.int64))
    from .compute.roi_counts import neuron_roi_counts, roi_counts_of

    if idx is not None and _plan.plan_read(conn, pre=idx, post=idx, what="rows", either=True).method == "index":
        df = roi_counts_of(conn, idx)  # the one per-neuron ROI count rule (weights on connection stores)
        return df.astype({"index": np.int64, "roi": np.int64})[["index", "roi", *_COUNT_COLS]]

    df = neuron_roi_counts(conn)
    df = df.rename(columns={"code": "roi"}) if "roi" not in df.columns else df
    if idx is not None:
        df = df[np.isin(df["index"].to_numpy(), idx)]
    df = df[["index", "roi", *_COUNT_COLS]].copy()
    df["index"] = df["index"].astype(np.int64)
    df["roi"] = df["roi"].astype(np.int64)
    return df


def neuron_roi_table(
    conn: Connectome, idx: np.ndarray | None, rois: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per (neuron index, ROI name) counts at every ROI level (``roi`` = name), no zero rows.

    Parameters
    ----------
    conn
        The connectome.
    idx
        Dense neuron indices to count (``None``: every neuron). A few neurons
        are read through the index, more from the cached whole-brain counts
        (see :func:`code_roi_counts`).
    rois
        ROI names (any level) to compute (default: every ROI of the store).
        Names are not checked here (a name the store does not define gives
        no rows): callers validate them first, e.g. with
        :meth:`NeuronCriteria.validate`.

    Returns
    -------
    pandas.DataFrame
        ``index, roi, pre, post, downstream, upstream``: one row per neuron
        and ROI in which it has a site (sites count for their ROI and every
        ROI above it), sorted by ``(index, roi)``.

    Examples
    --------
    >>> t = neuron_roi_table(conn, np.array([0, 1]), ["CX", "MB_R", "OL_L"])
    >>> t.columns.tolist()
    ['index', 'roi', 'pre', 'post', 'downstream', 'upstream']
    >>> set(t["index"]) <= {0, 1}, set(t.roi) <= {"CX", "MB_R", "OL_L"}
    (True, True)
    """
    model = RoiModel.of(conn)
    codes = code_roi_counts(conn, idx)
    codes = codes[codes["roi"] >= 0]
    mem = model.membership(rois)
    m = codes.merge(mem, left_on="roi", right_on="code", suffixes=("_code", ""))
    if len(m) == 0:
        return pd.DataFrame(
            {"index": np.zeros(0, np.int64), "roi": pd.Series([], dtype=object), **{c: np.zeros(0, np.int64) for c in _COUNT_COLS}}
        )
    out = m.groupby(["index", "roi"], sort=True)[_COUNT_COLS].sum().reset_index()
    out = out[(out[_COUNT_COLS] != 0).any(axis=1)]
    return out.reset_index(drop=True)


# ----------------------------------------------------------------------------- NeuronCriteria


def _as_list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, str | _NullSentinel) or np.isscalar(v):
        return [v]
    if isinstance(v, pd.Series | pd.Index | np.ndarray):
        return list(np.ravel(v).tolist() if isinstance(v, np.ndarray) else v.tolist())
    return list(v)


def _materialize(obj: Any) -> Any:
    """A one-shot iterable (generator, ``dict.keys()``, ``range``...) as a list; anything else as is.

    Neuron selections may be any iterable of body IDs; reading it once here
    keeps a generator from being consumed by a first type check.
    """
    if obj is None or isinstance(
        obj, str | bytes | Mapping | pd.DataFrame | pd.Series | pd.Index | np.ndarray | list | tuple | set
        | frozenset | NeuronCriteria
    ):
        return obj
    if isinstance(obj, Iterable):
        return list(obj)
    return obj


def body_ids_of(obj: Any) -> np.ndarray | None:
    """int64 body IDs when ``obj`` names neurons by body ID; ``None`` when it does not.

    Body IDs are an int (not a bool) or a collection of ints: list, tuple,
    set, frozenset, a numpy integer array, a pandas Series or Index of ints,
    or any other iterable of ints (read once). ``None`` items are dropped, as
    neuPrint does; an empty collection is an empty selection. Integers are
    always body IDs, never positional indices, whatever the container.
    Strings, bools, floats, boolean masks and criteria are not body IDs.

    Parameters
    ----------
    obj
        Anything a neuron selection may be (a one-shot iterable is read once).

    Returns
    -------
    numpy.ndarray or None
        The body IDs (int64, in the given order, duplicates kept), or
        ``None`` when ``obj`` is not given as body IDs.

    Examples
    --------
    >>> body_ids_of([5, 6]).tolist(), body_ids_of(np.array([5, 6], np.uint64)).tolist()
    ([5, 6], [5, 6])
    >>> body_ids_of(x for x in (7, None)).tolist(), body_ids_of({8}).tolist(), body_ids_of(9).tolist()
    ([7], [8], [9])
    >>> body_ids_of("KC.*") is None, body_ids_of(np.array([True, False])) is None, body_ids_of([1.5]) is None
    (True, True, True)
    """
    obj = _materialize(obj)
    if isinstance(obj, bool | np.bool_):
        return None
    if isinstance(obj, int | np.integer):
        return np.array([int(obj)], dtype=np.int64)
    if isinstance(obj, pd.Series | pd.Index):
        if pd.api.types.is_integer_dtype(obj.dtype) and obj.hasnans:
            obj = obj.dropna()  # nullable integers: missing values are dropped like None
        obj = obj.to_numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "iu":
            return obj.ravel().astype(np.int64)
        if obj.size == 0:
            return np.zeros(0, dtype=np.int64)
        if obj.dtype != object:
            return None
        obj = obj.ravel().tolist()
    if isinstance(obj, list | tuple | set | frozenset):
        real = [x for x in obj if x is not None and x is not pd.NA]
        if not real:
            return np.zeros(0, dtype=np.int64) if len(obj) == 0 else None
        if all(isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_) for x in real):
            return np.array([int(x) for x in real], dtype=np.int64)
    return None


_STANDARD = (
    "bodyId", "type", "instance", "status", "cropped", "min_pre", "min_post", "rois", "inputRois",
    "outputRois", "min_roi_inputs", "min_roi_outputs", "roi_req", "regex", "label",
)


class NeuronCriteria:
    """Select neurons the way neuPrint's ``NeuronCriteria`` does.

    Conditions are ANDed, except ``type`` and ``instance``, which are ORed
    with each other. A list of values matches any of them; ``None`` or
    :data:`IsNull` in the list matches missing values; :data:`NotNull` alone
    matches any present value.

    Parameters
    ----------
    matchvar
        Ignored (kept so neuprint code ports); must start with a lowercase
        letter so ``NeuronCriteria("MBON01")`` fails loudly instead of being
        taken as a type.
    bodyId
        Body ID or body IDs: a list, tuple, set, numpy array, pandas Series /
        Index or any other iterable of ints (always body IDs, never positional
        indices). Unknown IDs simply match nothing.
    type, instance
        Strings (or lists). Matched as full-string regular expressions when
        ``regex`` is True; ``regex="guess"`` (default) turns regex matching on
        when any value contains one of ``\\ . ? [ ] + ^ $ *`` (parentheses
        alone do not count).
    status
        ``status`` value(s), exact match.
    cropped
        True: only cropped neurons; False: not cropped, including neurons
        whose ``cropped`` is missing (neuPrint treats a missing flag as False).
    regex
        True: ``type`` / ``instance`` values are full-string regular
        expressions; False: exact matches; ``"guess"`` (default): True when
        any value contains a regex character (see ``type``).
    min_pre, min_post
        Minimum total presynaptic / postsynaptic site counts (``pre``/``post`` columns).
    rois
        ROIs the neuron must intersect (any synapse, input or output, at any
        hierarchy level). Always extended with ``inputRois`` and ``outputRois``.
    inputRois, outputRois
        ROIs in which the neuron must have at least ``min_roi_inputs`` input
        (postsynaptic) sites / ``min_roi_outputs`` output (presynaptic) sites.
    min_roi_inputs, min_roi_outputs
        The per-ROI thresholds of ``inputRois`` / ``outputRois`` (default 1;
        a larger value needs a list of those ROIs).
    roi_req
        ``"all"`` (default, as neuPrint): every listed ROI must be satisfied;
        ``"any"``: at least one (for ``inputRois`` and ``outputRois`` separately).
    label
        neuPrint's node label: ``"Neuron"`` matches only bodies labelled
        Neuron (the stored ``label`` column of the neuron table, else
        neuPrint's rule, :func:`connectome_dask.labels.body_labels`);
        ``"Segment"`` and ``None`` (default) match every body (in neuPrint
        every Neuron is also a Segment).
    client
        A :class:`~connectome_dask.store.Connectome` to validate ROI names and
        property columns against at once (:meth:`validate`); ``None``: checked
        when the criteria are applied.
    **properties
        Any other column of ``conn.neurons`` (neuPrint's ``class_`` maps to
        ``class``), exact match with the same null rules.

    Raises
    ------
    connectome_dask.errors.CriteriaError
        A bad value or combination: ``matchvar`` that is not a lowercase
        identifier, ``bodyId`` that is not integers, a non-string
        ``type``/``instance`` value, an invalid regular expression, a bad
        ``regex`` / ``cropped`` / ``roi_req`` value, a non-integer threshold,
        ``min_roi_inputs`` / ``min_roi_outputs`` above 1 without
        ``inputRois`` / ``outputRois``, ``rois`` that is not a superset of
        them, or :data:`NotNull` combined with other values.
    connectome_dask.errors.UnknownRoiError
        With ``client``: an ROI name the store does not define (also a ``KeyError``).
    connectome_dask.errors.UnknownColumnError
        With ``client``: a property that is not a neuron column (also a ``KeyError``).

    Examples
    --------
    >>> NC = NeuronCriteria
    >>> nc = NC(type="MBON.*", status="Traced", cropped=False)
    >>> nc.regex
    True
    >>> NC(type="KC(ab)").regex  # parentheses alone do not make a regex
    False
    """

    #: properties matched like ``type`` / ``instance`` (regular expressions when ``regex``)
    _REGEX_PROPS: tuple[str, ...] = ()

    def __init__(
        self,
        matchvar: str = "n",
        *,
        bodyId: Any = None,
        type: Any = None,  # noqa: A002 - neuprint's name
        instance: Any = None,
        regex: bool | str = "guess",
        status: Any = None,
        cropped: bool | None = None,
        min_pre: int = 0,
        min_post: int = 0,
        rois: Any = None,
        inputRois: Any = None,
        outputRois: Any = None,
        min_roi_inputs: int = 1,
        min_roi_outputs: int = 1,
        roi_req: str = "all",
        label: str | None = None,
        client: Any = None,
        **properties: Any,
    ) -> None:
        if not isinstance(matchvar, str) or not re.match(r"^[a-z][a-zA-Z0-9]*$", matchvar):
            raise CriteriaError(
                f"bad matchvar {matchvar!r}: pass types, instances and body IDs as keywords "
                "(NeuronCriteria(type=...)), or pass them directly to the query function"
            )
        self.matchvar = matchvar
        ids = body_ids_of(bodyId) if bodyId is not None else np.zeros(0, dtype=np.int64)
        if ids is None:
            raise CriteriaError(f"bodyId must be an integer or a collection of integers, got {bodyId!r}")
        self.bodyId = ids.tolist()
        self.type = _as_list(type)
        self.instance = _as_list(instance)
        for name, vals in (("type", self.type), ("instance", self.instance)):
            for v in vals:
                if not (v is None or isinstance(v, str | _NullSentinel)):
                    raise CriteriaError(f"{name} must be a string, None, IsNull or NotNull, got {v!r}")
        if regex not in (True, False, "guess"):
            raise CriteriaError(f"regex must be True, False or 'guess', got {regex!r}")
        if regex == "guess":
            regex = any(
                isinstance(v, str) and bool(_REGEX_CHARS.search(v)) for v in self.type + self.instance
            )
        self.regex = bool(regex)
        if self.regex:
            for v in self.type + self.instance:
                if isinstance(v, str):
                    try:
                        re.compile(v)
                    except re.error as e:
                        raise CriteriaError(f"invalid regular expression {v!r} in type/instance: {e}") from None
        self.status = _as_list(status)
        if cropped not in (None, True, False):
            raise CriteriaError(f"cropped must be True, False or None, got {cropped!r}")
        self.cropped = cropped
        for name, v in (("min_pre", min_pre), ("min_post", min_post), ("min_roi_inputs", min_roi_inputs),
                        ("min_roi_outputs", min_roi_outputs)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise CriteriaError(f"{name} must be an integer, got {v!r}")
        self.min_pre, self.min_post = int(min_pre), int(min_post)
        if roi_req not in ("any", "all"):
            raise CriteriaError(f"roi_req must be 'any' or 'all', got {roi_req!r}")
        self.roi_req = roi_req
        rois_l, in_l, out_l = _as_list(rois), _as_list(inputRois), _as_list(outputRois)
        if min_roi_inputs > 1 and not in_l:
            raise CriteriaError("min_roi_inputs needs a list of inputRois")
        if min_roi_outputs > 1 and not out_l:
            raise CriteriaError("min_roi_outputs needs a list of outputRois")
        if rois_l and not set(rois_l) >= set(in_l):
            raise CriteriaError("rois must be a superset of inputRois")
        if rois_l and not set(rois_l) >= set(out_l):
            raise CriteriaError("rois must be a superset of outputRois")
        self.inputRois = sorted(dict.fromkeys(in_l))
        self.outputRois = sorted(dict.fromkeys(out_l))
        self.rois = sorted(set(rois_l) | set(in_l) | set(out_l))
        self.min_roi_inputs, self.min_roi_outputs = int(min_roi_inputs), int(min_roi_outputs)
        if label not in (None, "Neuron", "Segment"):
            raise CriteriaError(f"label must be 'Neuron', 'Segment' or None, got {label!r}")
        self.label = label
        self.properties: dict[str, list] = {}
        for k, v in properties.items():
            col = k[:-1] if k.endswith("_") else k
            vals = _as_list(v)
            if vals:
                self.properties[col] = vals
        for col, vals in {"status": self.status, "type": self.type, "instance": self.instance,
                          **self.properties}.items():
            if NotNull in vals and len(vals) > 1:
                raise CriteriaError(f"NotNull cannot be combined with other values for {col!r}")
        if client is not None:
            self.validate(client)

    # -- representation
    def __repr__(self) -> str:
        parts = []
        for k in ("bodyId", "type", "instance", "status", "rois", "inputRois", "outputRois"):
            v = getattr(self, k)
            if v:
                parts.append(f"{k}={v if len(v) > 1 else v[0]!r}")
        if self.type or self.instance:
            parts.append(f"regex={self.regex}")
        if self.cropped is not None:
            parts.append(f"cropped={self.cropped}")
        for k, d in (("min_pre", 0), ("min_post", 0), ("min_roi_inputs", 1), ("min_roi_outputs", 1)):
            if getattr(self, k) != d:
                parts.append(f"{k}={getattr(self, k)}")
        if self.roi_req != "all":
            parts.append(f"roi_req={self.roi_req!r}")
        parts += [f"{k}={v!r}" for k, v in self.properties.items()]
        return f"NeuronCriteria({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NeuronCriteria):
            return NotImplemented
        keys = ("bodyId", "type", "instance", "status", "cropped", "min_pre", "min_post", "rois",
                "inputRois", "outputRois", "min_roi_inputs", "min_roi_outputs", "roi_req", "regex",
                "properties", "label")
        return all(_eq_val(getattr(self, k), getattr(other, k)) for k in keys)

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_everything(self) -> bool:
        """True when the criteria select every neuron (no condition given).

        Examples
        --------
        >>> NeuronCriteria().is_everything, NeuronCriteria(type="KC.*").is_everything
        (True, False)
        """
        return not (
            self.bodyId or self.type or self.instance or self.status or self.cropped is not None
            or self.min_pre or self.min_post or self.rois or self.properties or self.label == "Neuron"
        )

    # -- compile
    def validate(self, conn: Connectome) -> None:
        """Check ROI names and property columns against ``conn``, before any work is done.

        Parameters
        ----------
        conn
            The connectome the criteria will be applied to.

        Raises
        ------
        connectome_dask.errors.UnknownRoiError
            An ROI name the store does not define (also a ``KeyError``).
        connectome_dask.errors.UnknownColumnError
            A neuron property that is not a column of ``conn.neurons`` (also
            a ``KeyError``).

        Examples
        --------
        >>> NeuronCriteria(side="left", rois=["MB_CA_R"]).validate(conn)  # fine
        >>> NeuronCriteria(flavour="sweet").validate(conn)
        Traceback (most recent call last):
        ...
        connectome_dask.errors.UnknownColumnError: neuron property 'flavour' is not a column of ...
        """
        model = RoiModel.of(conn)
        model.validate(self.rois, "ROI")
        cols = list(conn.neurons.columns)
        for col in self.properties:
            if col not in cols:
                raise UnknownColumnError(
                    f"neuron property {col!r} is not a column of {conn.path}/neurons.parquet; "
                    f"available columns: {cols}"
                )

    def basic_mask(self, conn: Connectome) -> np.ndarray:
        """Mask of the non-ROI conditions (cheap: only the neuron table).

        Parameters
        ----------
        conn
            The connectome whose neuron table is matched.

        Returns
        -------
        numpy.ndarray
            Boolean, one entry per row of ``conn.neurons``.

        Raises
        ------
        connectome_dask.errors.UnknownRoiError, connectome_dask.errors.UnknownColumnError
            As :meth:`validate` (called first).
        connectome_dask.errors.CriteriaError
            The ``type`` / ``instance`` patterns do not combine into a valid
            regular expression.

        Examples
        --------
        >>> nc = NeuronCriteria(status="Traced", rois=["MB_CA_R"])
        >>> int(nc.basic_mask(conn).sum()) >= int(nc.mask(conn).sum())  # ROIs ignored here
        True
        """
        self.validate(conn)
        n = conn.neurons
        mask = np.ones(len(n), dtype=bool)
        if self.bodyId:
            mask &= n["bodyId"].isin(self.bodyId).to_numpy()
        if self.type or self.instance:
            ti = np.zeros(len(n), dtype=bool)
            if self.type:
                ti |= _match(n["type"], self.type, self.regex, "type")
            if self.instance:
                ti |= _match(n["instance"], self.instance, self.regex, "instance")
            mask &= ti
        if self.status:
            mask &= _match(n["status"], self.status, False, "status")
        for col, vals in self.properties.items():
            mask &= _match(n[col], vals, self.regex and col in self._REGEX_PROPS, col)
        if self.cropped is not None:
            c = n["cropped"].astype("boolean")
            mask &= c.fillna(False).to_numpy(dtype=bool) if self.cropped else ~c.fillna(False).to_numpy(dtype=bool)
        if self.label == "Neuron":
            mask &= (body_labels(n) == "Neuron").to_numpy(dtype=bool)
        if self.min_pre:
            mask &= n["pre"].to_numpy() >= self.min_pre
        if self.min_post:
            mask &= n["post"].to_numpy() >= self.min_post
        return mask

    def mask(self, conn: Connectome) -> np.ndarray:
        """Boolean mask over ``conn.neurons`` rows (dense indices) of the matching neurons.

        ROI conditions are checked only for the neurons that pass the other
        conditions (:meth:`basic_mask`).

        Parameters
        ----------
        conn
            The connectome.

        Returns
        -------
        numpy.ndarray
            Boolean, one entry per row of ``conn.neurons``.

        Raises
        ------
        connectome_dask.errors.UnknownRoiError, connectome_dask.errors.UnknownColumnError
            As :meth:`validate`.
        connectome_dask.errors.CriteriaError
            As :meth:`basic_mask`.

        Examples
        --------
        >>> m = NeuronCriteria(type="KC.*").mask(conn)
        >>> m.dtype, m.shape == (conn.n_neurons,), conn.neurons[m].type.unique().tolist()
        (dtype('bool'), True, ['KCg-m'])
        >>> in_mb = NeuronCriteria(type="KC.*", outputRois=["MB_CA_R"], min_roi_outputs=100).mask(conn)
        >>> bool((in_mb <= m).all())  # a subset of the KCs
        True
        """
        mask = self.basic_mask(conn)
        if not self.rois or not mask.any():
            return mask
        cand = np.flatnonzero(mask)
        table = neuron_roi_table(conn, None if len(cand) == len(mask) else cand, self.rois)
        ok = self._roi_ok(table, cand)
        out = np.zeros_like(mask)
        out[cand[ok]] = True
        return out

    def _roi_ok(self, table: pd.DataFrame, cand: np.ndarray) -> np.ndarray:
        pos = pd.Index(cand).get_indexer(table["index"].to_numpy())
        keep = pos >= 0
        table, pos = table[keep], pos[keep]
        nc = len(cand)
        ok = np.ones(nc, dtype=bool)

        def hits(rois: list[str], col: str, thr: int) -> np.ndarray:
            cnt = np.zeros(nc, dtype=np.int64)
            sel = table["roi"].isin(rois).to_numpy() & (table[col].to_numpy() >= thr)
            np.add.at(cnt, pos[sel], 1)
            return cnt

        any_syn = table.assign(_s=table["pre"] + table["post"])
        cnt = np.zeros(nc, dtype=np.int64)
        sel = any_syn["roi"].isin(self.rois).to_numpy() & (any_syn["_s"].to_numpy() > 0)
        np.add.at(cnt, pos[sel], 1)
        need = len(self.rois) if self.roi_req == "all" else 1
        ok &= cnt >= need
        if self.inputRois:
            need = len(self.inputRois) if self.roi_req == "all" else 1
            ok &= hits(self.inputRois, "post", self.min_roi_inputs) >= need
        if self.outputRois:
            need = len(self.outputRois) if self.roi_req == "all" else 1
            ok &= hits(self.outputRois, "pre", self.min_roi_outputs) >= need
        return ok

    def indices(self, conn: Connectome) -> np.ndarray:
        """Sorted int32 dense indices of the matching neurons.

        Parameters
        ----------
        conn
            The connectome.

        Returns
        -------
        numpy.ndarray
            int32 indices into ``conn.neurons`` (``np.flatnonzero`` of :meth:`mask`).

        Raises
        ------
        connectome_dask.errors.UnknownRoiError, connectome_dask.errors.UnknownColumnError
            As :meth:`validate`.
        connectome_dask.errors.CriteriaError
            As :meth:`basic_mask`.

        Examples
        --------
        >>> NeuronCriteria(bodyId=some_body).indices(conn)
        array([0], dtype=int32)
        """
        return np.flatnonzero(self.mask(conn)).astype(np.int32)

    def with_rois_any(self, rois: Sequence[str]) -> NeuronCriteria:
        """neuPrint's query speed-up, kept for identical results: when ``rois`` are given
        to a connection query and these criteria list no ROIs, require the neuron to
        intersect any of them.

        Parameters
        ----------
        rois
            The query's ROI names.

        Returns
        -------
        NeuronCriteria
            ``self`` when ``rois`` is empty or these criteria list ROIs;
            otherwise a copy with ``rois`` (sorted, unique) and ``roi_req="any"``.

        Examples
        --------
        >>> NeuronCriteria(type="KC.*").with_rois_any(["MB_ML_R", "MB_CA_R"])
        NeuronCriteria(type='KC.*', rois=['MB_CA_R', 'MB_ML_R'], regex=True, roi_req='any')
        """
        if not rois or self.rois:
            return self
        nc = copy.copy(self)
        nc.rois = sorted(set(rois))
        nc.roi_req = "any"
        return nc


def _eq_val(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(repr, a)) == sorted(map(repr, b))
    return a == b


def _match(s: pd.Series, values: list, regex: bool, name: str) -> np.ndarray:
    """neuPrint's ``where_expr`` on a pandas column."""
    isna = s.isna().to_numpy()
    if values == [NotNull]:
        return ~isna
    want_null = any(v is None or v is IsNull for v in values)
    vals = [v for v in values if v is not None and v is not IsNull]
    out = isna.copy() if want_null else np.zeros(len(s), dtype=bool)
    if not vals:
        return out
    if regex:
        pat = "|".join(f"(?:{v})" for v in vals)
        try:
            rx = re.compile(pat)
        except re.error as e:
            raise CriteriaError(f"invalid regular expression {pat!r} for {name}: {e}") from None
        strs = s.astype("string")
        m = strs.str.fullmatch(rx.pattern).fillna(False).to_numpy(dtype=bool)
        return out | m
    col = s
    if pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
        col = s.astype("string")
        vals = [str(v) if not isinstance(v, str) else v for v in vals]
    return out | col.isin(vals).fillna(False).to_numpy(dtype=bool)


def copy_as_neuroncriteria(obj: Any, client: Any = None) -> NeuronCriteria:
    """Coerce a query argument into :class:`NeuronCriteria` (neuprint's rules).

    ``NeuronCriteria`` -> a copy; ``None`` -> all neurons; int or any
    collection of ints (list, tuple, set, numpy array, pandas Series / Index,
    other iterables; see :func:`body_ids_of`) -> ``bodyId``, never positional
    indices; str or list of str -> ``type`` OR ``instance``; a DataFrame ->
    its ``bodyId`` column. Empty lists and anything else are errors.

    Parameters
    ----------
    obj
        The query argument (a one-shot iterable is read once).
    client
        Passed to the new :class:`NeuronCriteria`, which then validates
        itself against this Connectome (a given ``NeuronCriteria`` is copied
        as is, not validated).

    Returns
    -------
    NeuronCriteria

    Raises
    ------
    connectome_dask.errors.CriteriaError
        A DataFrame without ``bodyId``, a bool, an empty or all-None list, or
        anything else that is not a neuron selection; also what
        :class:`NeuronCriteria` raises for the values it is built from.

    Examples
    --------
    >>> copy_as_neuroncriteria([1, 2]).bodyId
    [1, 2]
    >>> c = copy_as_neuroncriteria("KC.*")
    >>> (c.type, c.instance, c.regex)
    (['KC.*'], ['KC.*'], True)
    """
    if isinstance(obj, pd.DataFrame):
        if "bodyId" not in obj.columns:
            raise CriteriaError("a DataFrame used as neuron criteria must have a 'bodyId' column")
        return NeuronCriteria(bodyId=obj["bodyId"].to_numpy(), client=client)
    if obj is None:
        return NeuronCriteria(client=client)
    if isinstance(obj, NeuronCriteria):
        return copy.copy(obj)
    if isinstance(obj, str):
        return NeuronCriteria(type=obj, instance=obj, client=client)
    if isinstance(obj, bool | np.bool_):
        raise CriteriaError(f"cannot build NeuronCriteria from {obj!r}")
    obj = _materialize(obj)  # any iterable, read once
    ids = body_ids_of(obj)
    if ids is not None and len(ids):
        return NeuronCriteria(bodyId=ids, client=client)
    if isinstance(obj, pd.Series | pd.Index | np.ndarray | list | tuple | set | frozenset):
        items = _as_list(obj)
        real = [x for x in items if x is not None]
        if not real:
            raise CriteriaError(f"cannot build NeuronCriteria from an empty or all-None list {obj!r}")
        if all(isinstance(x, str) for x in real):
            return NeuronCriteria(type=items, instance=items, client=client)
    raise CriteriaError(f"cannot build NeuronCriteria from {obj!r}; construct one explicitly")


# ----------------------------------------------------------------------------- SynapseCriteria


class SynapseCriteria:
    """Select synaptic sites the way neuPrint's ``SynapseCriteria`` does.

    Parameters
    ----------
    matchvar
        Ignored (neuprint compatibility).
    rois
        Keep sites inside any of these ROIs (any hierarchy level).
    type
        ``"pre"`` or ``"post"`` to keep only one kind of site (``None``: both).
    confidence
        Keep sites whose confidence is strictly greater than this; ``None``
        uses ``conn.meta["default_confidence"]`` when the criteria are applied
        (neuPrint's dataset default). As in neuPrint, a threshold of ``0``
        means no confidence filter at all.
    primary_only
        True (default): each site is reported with its single primary ROI
        (or None). False: one row per ROI (any level) containing the site.
        As in neuPrint, naming a non-primary ROI in ``rois`` requires
        ``primary_only=False``.
    client
        A :class:`~connectome_dask.store.Connectome` to validate the ROI names
        against at once (:meth:`validate`); ``None``: checked when applied.

    Raises
    ------
    connectome_dask.errors.CriteriaError
        ``type`` is not ``"pre"``, ``"post"`` or ``None``, or ``confidence``
        is not a number; with ``client``, what :meth:`validate` raises.

    Examples
    --------
    >>> SynapseCriteria(type="pre", confidence=0.5)
    SynapseCriteria(type='pre', confidence=0.5, primary_only=True)
    """

    def __init__(
        self,
        matchvar: str = "s",
        *,
        rois: Any = None,
        type: str | None = None,  # noqa: A002
        confidence: float | None = None,
        primary_only: bool = True,
        client: Any = None,
    ) -> None:
        self.matchvar = matchvar
        self.rois = sorted(dict.fromkeys(_as_list(rois)))
        type = type or None
        if type not in ("pre", "post", None):
            raise CriteriaError(f"invalid synapse type {type!r}; choices are 'pre' and 'post'")
        self.type = type
        if confidence is not None and (
            isinstance(confidence, bool)
            or not np.isscalar(confidence)
            or not isinstance(confidence, SupportsFloat | str | bytes)  # what float() converts
        ):
            raise CriteriaError(f"confidence must be a number, got {confidence!r}")
        self.confidence = None if confidence is None else float(confidence)
        self.primary_only = bool(primary_only)
        if client is not None:
            self.validate(client)

    def __repr__(self) -> str:
        args = []
        if self.rois:
            args.append(f"rois={self.rois!r}")
        if self.type:
            args.append(f"type={self.type!r}")
        if self.confidence is not None:
            args.append(f"confidence={self.confidence}")
        args.append(f"primary_only={self.primary_only}")
        return f"SynapseCriteria({', '.join(args)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SynapseCriteria):
            return NotImplemented
        return (self.rois, self.type, self.confidence, self.primary_only) == (
            other.rois, other.type, other.confidence, other.primary_only)

    __hash__ = None  # type: ignore[assignment]

    def validate(self, conn: Connectome) -> None:
        """Check ROI names (and the primary-only rule) against ``conn``.

        Parameters
        ----------
        conn
            The connectome the criteria will be applied to.

        Raises
        ------
        connectome_dask.errors.UnknownRoiError
            An ROI name the store does not define (also a ``KeyError``).
        connectome_dask.errors.CriteriaError
            A non-primary ROI is listed while ``primary_only`` is True, or an
            ROI name is not a string.

        Examples
        --------
        >>> SynapseCriteria(rois=["MB_R"], primary_only=False).validate(conn)  # fine
        >>> SynapseCriteria(rois=["MB_R"]).validate(conn)
        Traceback (most recent call last):
        ...
        connectome_dask.errors.CriteriaError: you listed non-primary ROIs ['MB_R']; pass primary_only=False to use them
        """
        model = RoiModel.of(conn)
        model.validate(self.rois, "synapse ROI")
        nonprim = sorted(set(self.rois) - set(model.primary))
        if nonprim and self.primary_only:
            raise CriteriaError(
                f"you listed non-primary ROIs {nonprim}; pass primary_only=False to use them"
            )

    def threshold(self, conn: Connectome) -> float | None:
        """The confidence threshold in effect (``None``: no filter).

        Parameters
        ----------
        conn
            The connectome whose ``meta["default_confidence"]`` applies when
            ``confidence`` is ``None``.

        Returns
        -------
        float or None
            Sites pass when their confidence is strictly greater; ``None``
            (a threshold of 0 or none at all) keeps every site.

        Examples
        --------
        >>> conn.meta["default_confidence"], SynapseCriteria().threshold(conn)
        (0.5, 0.5)
        >>> SynapseCriteria(confidence=0).threshold(conn) is None  # 0 = no filter
        True
        """
        thr = self.confidence if self.confidence is not None else conn.meta.get("default_confidence")
        return float(thr) if thr else None

    def site_mask(self, conn: Connectome, code: np.ndarray, conf: np.ndarray | None) -> np.ndarray:
        """Keep-mask of sites with ROI ``code`` and confidence ``conf`` (type not considered).

        Parameters
        ----------
        conn
            The connectome (ROI hierarchy, default confidence).
        code
            int ROI code of each site (``-1``: in no ROI).
        conf
            Confidence of each site, or ``None`` when the store has none (no
            confidence filter).

        Returns
        -------
        numpy.ndarray
            Boolean, one entry per site.

        Examples
        --------
        >>> ca = conn.roi_names.index("MB_CA_R")
        >>> sc = SynapseCriteria(rois=["MB_CA_R"])  # default confidence threshold 0.5
        >>> sc.site_mask(conn, np.array([-1, ca, ca]), np.array([0.9, 0.9, 0.2])).tolist()
        [False, True, False]
        """
        keep = np.ones(len(code), dtype=bool)
        if self.rois:
            lut = RoiModel.of(conn).code_lut(self.rois)
            keep &= lut[np.asarray(code, dtype=np.int64) + 1]
        thr = self.threshold(conn)
        if thr is not None and conf is not None:
            keep &= np.asarray(conf) > thr
        return keep
