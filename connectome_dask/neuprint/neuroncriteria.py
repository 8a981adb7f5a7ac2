"""neuprint-python's ``NeuronCriteria``: the same arguments, defaults, checks and coercions.

This class is :class:`connectome_dask.criteria.NeuronCriteria` (which turns
criteria into a mask over the neuron table) with neuprint-python 0.6.4's
constructor: what it accepts, what it rejects (as an
:class:`NeuronCriteriaError`, which is also an ``AssertionError`` and a
``RuntimeError`` so ``except`` clauses written for neuprint-python still
catch it), its ``label`` default (``'Neuron'``, or ``'Segment'`` when body IDs
are given) and its ``regex='guess'`` over ``type``, ``instance``,
``flywireType``, ``hemibrainType`` and ``mancType``.

Examples
--------
>>> NeuronCriteria(type="PEN.*").regex, NeuronCriteria(mancType="DNa0[12]").regex
(True, True)
>>> NeuronCriteria().label, NeuronCriteria(bodyId=[1, 2]).label
('Neuron', 'Segment')
>>> NeuronCriteria("MBON01")
Traceback (most recent call last):
...
connectome_dask.neuprint.neuroncriteria.NeuronCriteriaError: matchvar must begin with a lowercase letter, not 'MBON01'. ...
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..criteria import IsNull, NotNull
from ..criteria import NeuronCriteria as _BaseCriteria
from ..criteria import SynapseCriteria as _BaseSynapseCriteria
from ..errors import CriteriaError
from ..rois.model import RoiModel
from .utils import ensure_list

if TYPE_CHECKING:
    from ..store import Connectome

__all__ = ["NeuronCriteria", "SegmentCriteria", "SynapseCriteria", "NeuronCriteriaError",
           "copy_as_neuroncriteria"]

#: fields matched as regular expressions when ``regex`` is True (and guessed from)
REGEX_FIELDS = ("type", "instance", "flywireType", "hemibrainType", "mancType")
#: integer list fields
INTEGER_FIELDS = ("bodyId", "group", "serial", "zapbenchId")
#: fields that only take IsNull / NotNull / None
LOCATION_FIELDS = ("somaLocation", "tosomaLocation", "rootLocation")

_REGEX_CHARS = re.compile(r"[\\.?\[\]+^$*]")


class NeuronCriteriaError(CriteriaError, AssertionError, RuntimeError):
    """Invalid NeuronCriteria arguments (neuprint-python raises AssertionError / RuntimeError)."""


def _check(ok: Any, msg: str) -> None:
    if not ok:
        raise NeuronCriteriaError(msg)


def _is_null_sentinel(v: Any) -> bool:
    return v is IsNull or v is NotNull


class NeuronCriteria(_BaseCriteria):
    """neuprint-python's ``NeuronCriteria`` on a local store.

    Parameters
    ----------
    matchvar
        Must be a non-empty alphanumeric string starting with a lowercase
        letter (catches a type passed by position).
    bodyId, group, serial, zapbenchId
        Integers or lists/arrays of integers.
    type, instance, flywireType, hemibrainType, mancType
        Strings, ``None``, :data:`IsNull` or :data:`NotNull` (or lists);
        regular expressions when ``regex`` is True.
    regex
        True, False or ``'guess'`` (True when any of those values contains
        one of ``\\ . ? [ ] + ^ $ *``).
    status, statusLabel, cropped, min_pre, min_post
        As neuprint-python (not validated there either).
    rois, inputRois, outputRois, roi_req, min_roi_inputs, min_roi_outputs
        ROI conditions; ``rois`` must be a superset of ``inputRois`` and
        ``outputRois`` when given.
    label
        ``'Neuron'`` or ``'Segment'``; default ``'Neuron'``, or ``'Segment'``
        when ``bodyId`` is given (listed bodies match whatever their label).
    somaLocation, tosomaLocation, rootLocation
        Only :data:`IsNull` / :data:`NotNull` / ``None``.
    soma
        Deprecated: True / False / None (``somaLocation=NotNull`` / ``IsNull``).
    client
        A neuprint :class:`~connectome_dask.neuprint.Client` or Connectome;
        kept on the criteria (ROI names and columns are checked when applied).
    **properties
        Any other neuron column (exact match), e.g. ``cellBodyFiber``, ``class_``.

    Raises
    ------
    NeuronCriteriaError
        What neuprint-python rejects when constructing criteria (also an
        ``AssertionError``).

    Examples
    --------
    >>> nc = NeuronCriteria(inputRois=["PB"], min_roi_inputs=100, status="Traced", cropped=False)
    >>> nc.rois, nc.inputRois, nc.label
    (['PB'], ['PB'], 'Neuron')
    >>> NeuronCriteria(min_roi_inputs=5)
    Traceback (most recent call last):
    ...
    connectome_dask.neuprint.neuroncriteria.NeuronCriteriaError: Can't stipulate min_roi_inputs without a list of inputRois
    """

    _REGEX_PROPS: tuple[str, ...] = ("flywireType", "hemibrainType", "mancType")

    def __init__(self, matchvar: str = "n", *, bodyId: Any = None, type: Any = None,  # noqa: A002
                 instance: Any = None, regex: Any = "guess", status: Any = None,
                 statusLabel: Any = None, rois: Any = None, inputRois: Any = None,
                 outputRois: Any = None, roi_req: Any = "all", min_roi_inputs: Any = 1,
                 min_roi_outputs: Any = 1, cropped: Any = None, label: Any = None,
                 min_pre: Any = 0, min_post: Any = 0, somaLocation: Any = None,
                 tosomaLocation: Any = None, rootLocation: Any = None, soma: Any = None,
                 client: Any = None, **properties: Any) -> None:
        _check(isinstance(matchvar, str),
               f"Bad matchvar argument (should be str): {matchvar}. "
               "Did you mean to pass this as bodyId, type, or instance name?")
        _check(matchvar, "matchvar cannot be an empty string")
        _check(re.match("^[a-z].*$", matchvar),
               f"matchvar must begin with a lowercase letter, not '{matchvar}'. "
               "Did you mean to pass this as a type or instance name?")
        _check(re.match("^[a-zA-Z0-9]+$", matchvar),
               f"matchvar contains invalid characters: '{matchvar}'. "
               "Did you mean to pass this as a type or instance?")
        lists: dict[str, list] = {}
        for name, v in (("bodyId", bodyId), ("group", properties.pop("group", None)),
                        ("serial", properties.pop("serial", None)),
                        ("zapbenchId", properties.pop("zapbenchId", None))):
            vals = ensure_list(v)
            _check(len(vals) == 0 or np.issubdtype(np.asarray(vals).dtype, np.integer),
                   f"{name} should be an integer or list of integers")
            lists[name] = vals
        typ, inst = ensure_list(type), ensure_list(instance)
        for name, vals in (("type", typ), ("instance", inst)):
            for t in vals:
                _check(isinstance(t, str | None) or _is_null_sentinel(t),
                       f"{name} should be a string, IsNull, NotNull or None, got {t}")
        _check(regex in (True, False, "guess"), f"regex must be True, False or 'guess', got {regex!r}")
        regex_props = {k: ensure_list(properties[k]) for k in self._REGEX_PROPS if k in properties}
        if regex == "guess":
            regex = any(isinstance(v, str) and bool(_REGEX_CHARS.search(v))
                        for vals in (typ, inst, *regex_props.values()) for v in vals)
        _check(roi_req in ("any", "all"), f"roi_req must be 'any' or 'all', got {roi_req!r}")
        rois_l, in_l, out_l = ensure_list(rois), ensure_list(inputRois), ensure_list(outputRois)
        _check(min_roi_inputs <= 1 or in_l, "Can't stipulate min_roi_inputs without a list of inputRois")
        _check(min_roi_outputs <= 1 or out_l, "Can't stipulate min_roi_outputs without a list of outputRois")
        _check(not rois_l or set(rois_l) >= set(in_l),
               "Queried intersecting rois must be a superset of the inputRois")
        _check(not rois_l or set(rois_l) >= set(out_l),
               "Queried intersecting rois must be a superset of the outputRois")
        locs = {"somaLocation": somaLocation, "tosomaLocation": tosomaLocation,
                "rootLocation": rootLocation}
        for name, v in locs.items():
            _check(v is None or _is_null_sentinel(v),
                   f"This function doesn't allow you to search for an exact {name}.\n"
                   f"You can only check for the presence or absence of the {name} property via "
                   "IsNull or NotNull.")
        if not label:
            label = "Segment" if len(lists["bodyId"]) else "Neuron"
        _check(label in ("Neuron", "Segment"), f"Invalid label: {label}")
        _check(soma in (True, False, None), f"soma must be True, False or None, not {soma}")
        # neuprint-python's check reads "soma requires somaLocation"; its message (and intent) is
        # "not both": we do the intent
        _check(soma is None or somaLocation is None,
               "Can't use both 'soma' and 'somaLocation' arguments; "
               "Since 'soma' is deprecated, just use e.g. somaLocation=NotNull")
        props = {k: ensure_list(v) for k, v in properties.items()}
        props.update({k: v for k, v in lists.items() if k != "bodyId" and v})
        props["statusLabel"] = ensure_list(statusLabel)
        extra: dict[str, Any] = {k: v for k, v in props.items() if v}
        try:
            super().__init__(
                matchvar, bodyId=np.asarray(lists["bodyId"], dtype=np.int64), type=typ, instance=inst,
                regex=bool(regex), status=ensure_list(status), rois=rois_l, inputRois=in_l,
                outputRois=out_l, roi_req=roi_req, label=label,
                **extra,
            )
        except NeuronCriteriaError:
            raise
        except CriteriaError as e:
            raise NeuronCriteriaError(str(e)) from None
        # neuprint-python does not check these: any value its Cypher would take
        self.min_roi_inputs, self.min_roi_outputs = min_roi_inputs, min_roi_outputs
        self.cropped, self.min_pre, self.min_post = cropped, min_pre, min_post
        self.somaLocation, self.tosomaLocation, self.rootLocation = somaLocation, tosomaLocation, rootLocation
        self.soma = soma
        self.client = client

    def __repr__(self) -> str:
        base = super().__repr__()
        return base if self.label == "Neuron" else base[:-1] + f", label={self.label!r})"

    def basic_mask(self, conn: Connectome) -> np.ndarray:
        """Mask of the non-ROI conditions, with the soma / location null checks.

        Parameters
        ----------
        conn
            The connectome.

        Returns
        -------
        numpy.ndarray
            Boolean, one entry per neuron.

        Raises
        ------
        connectome_dask.errors.UnknownColumnError
            A property that is not a neuron column.

        Examples
        --------
        >>> m = NeuronCriteria(somaLocation=NotNull).basic_mask(conn)
        >>> m.dtype
        dtype('bool')
        """
        mask = super().basic_mask(conn)
        n = conn.neurons
        want = dict(somaLocation=self.somaLocation, tosomaLocation=self.tosomaLocation,
                    rootLocation=self.rootLocation)
        if self.soma is not None:
            want["somaLocation"] = NotNull if self.soma else IsNull
        for col, v in want.items():
            if v is None:
                continue
            present = n[col].notna().to_numpy(bool) if col in n.columns else np.zeros(len(n), bool)
            mask &= present if v is NotNull else ~present
        return mask


#: neuprint-python's alias: the same class (its ``label`` default is still ``'Neuron'``)
SegmentCriteria = NeuronCriteria


def copy_as_neuroncriteria(obj: Any, client: Any = None) -> NeuronCriteria:
    """A query argument as :class:`NeuronCriteria`, by neuprint-python's rules.

    criteria -> a copy; ``None`` -> ``NeuronCriteria()``; an integer, a list
    or integer array of them, or a DataFrame's ``bodyId`` -> ``bodyId``; a
    string or list of strings -> ``type`` OR ``instance``; an empty list, a
    list holding only ``None`` and anything else -> an error.

    Parameters
    ----------
    obj
        The argument.
    client
        Stored on the criteria.

    Returns
    -------
    NeuronCriteria

    Raises
    ------
    NeuronCriteriaError
        ``obj`` cannot be made into criteria (also a ``RuntimeError``).

    Examples
    --------
    >>> copy_as_neuroncriteria([1, 2]).bodyId, copy_as_neuroncriteria("PEN.*").instance
    ([1, 2], ['PEN.*'])
    """
    def fail() -> NeuronCriteria:
        raise NeuronCriteriaError(f"Can't auto-construct a NeuronCriteria from {obj}.  Please explicitly create one.")

    if isinstance(obj, pd.DataFrame):
        _check("bodyId" in obj.columns,
               'If passing a DataFrame as NeuronCriteria, it must have "bodyId" column')
        return NeuronCriteria(bodyId=obj["bodyId"].values, client=client)
    if obj is None:
        return NeuronCriteria(client=client)
    if isinstance(obj, _BaseCriteria):
        nc = copy.copy(obj)
        if not isinstance(nc, NeuronCriteria):
            # a package NeuronCriteria: keep its conditions, neuprint's label default does not apply
            return nc  # type: ignore[return-value]
        if client:
            nc.client = client
        return nc
    if isinstance(obj, str):
        return NeuronCriteria(type=obj, instance=obj, client=client)
    if isinstance(obj, Mapping):  # neuprint-python fails on obj[0] (a KeyError)
        return fail()
    if not isinstance(obj, Collection):
        if np.issubdtype(np.asarray(obj).dtype, np.integer) and np.ndim(obj) == 0 \
                and not isinstance(obj, bool | np.bool_):
            return NeuronCriteria(bodyId=obj, client=client)
        return fail()
    items = list(obj) if not isinstance(obj, np.ndarray | pd.Series) else obj.tolist()
    if len(items) == 0 or (len(items) == 1 and items[0] is None):
        return fail()
    if isinstance(obj, np.ndarray) and np.issubdtype(obj.dtype, np.integer):
        return NeuronCriteria(bodyId=obj, client=client)
    first = next(x for x in items if x is not None)
    if isinstance(first, int | np.integer) and not isinstance(first, bool | np.bool_):
        return NeuronCriteria(bodyId=obj, client=client)
    if isinstance(first, str):
        return NeuronCriteria(type=items, instance=items, client=client)
    return fail()


class SynapseCriteria(_BaseSynapseCriteria):
    """neuprint-python's ``SynapseCriteria``: checked when constructed, against the client.

    Parameters
    ----------
    matchvar
        Kept for neuprint compatibility.
    rois
        ROI name(s) the site must lie in (any level).
    type
        ``'pre'``, ``'post'`` or ``None`` (a false value is ``None``).
    confidence
        Keep sites whose confidence is strictly greater; ``None``: the
        store's default confidence (neuPrint: the dataset's threshold).
    primary_only
        Name each site by its primary ROI (True) or list every containing ROI.
    client
        The client (or Connectome) whose ROIs are checked; default: the
        default client when there is one (neuprint-python needs one),
        otherwise the names are checked when the criteria are applied.

    Raises
    ------
    NeuronCriteriaError
        An invalid ``type``, an ROI the client does not define, or a
        non-primary ROI with ``primary_only=True`` (also an ``AssertionError``).

    Examples
    --------
    >>> SynapseCriteria(rois="EB", type="pre", client=conn).rois
    ['EB']
    >>> SynapseCriteria(type="tbar")
    Traceback (most recent call last):
    ...
    connectome_dask.neuprint.neuroncriteria.NeuronCriteriaError: Invalid synapse type: tbar.  Choices are 'pre' and 'post'.
    """

    def __init__(self, matchvar: str = "s", *, rois: Any = None, type: Any = None,  # noqa: A002
                 confidence: Any = None, primary_only: bool = True, client: Any = None) -> None:
        from .client import NoDefaultClientError, connectome_of, default_client

        rois_l = ensure_list(rois)
        type = type or None
        _check(type in ("pre", "post", None), f"Invalid synapse type: {type}.  Choices are 'pre' and 'post'.")
        conn = None
        try:
            conn = connectome_of(client) if client is not None else default_client().conn
        except NoDefaultClientError:
            conn = None
        if conn is not None and conn.roi_info:
            model = RoiModel.of(conn)
            unknown = set(rois_l) - set(model.all_rois)
            _check(not unknown, f"Unrecognized synapse rois: {unknown}")
            nonprimary = set(rois_l) - set(model.primary)
            _check(not nonprimary or not primary_only,
                   f"You listed non-primary ROIs ({nonprimary}) but did not specify primary_only=False")
        try:
            super().__init__(matchvar, rois=rois_l, type=type, confidence=confidence, primary_only=primary_only)
        except CriteriaError as e:
            raise NeuronCriteriaError(str(e)) from None
