"""Neuron ID / label normalisation and the natural cell-type order, in one place.

crantpy compares neuron IDs and type labels as strings: integers (and
integral floats) become plain digits (``1``, ``1.0`` and ``"1"`` are the same
ID), missing values stay missing. Cell types sort "naturally": leading
letters (case-insensitive), then the number, then the label, so
``ER2 < ER10 < ER``.

The package's one cell-type order: nested matrices and type heatmaps
(:mod:`connectome_dask.matrix`) and the label axes of grouped
:func:`connectome_dask.aggregate.adjacency` results (``by="type"`` or any
column of string labels) all follow it; any other code that needs the same
labels or order uses this module.

Examples
--------
>>> str_array([1, 2.0, None, "x"]).tolist()
['1', '2', None, 'x']
>>> natural_type_order(["ER", "ER10", "ER2"])
['ER2', 'ER10', 'ER']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "is_missing", "natural_key", "natural_type_order", "neuprint_label", "body_labels", "str_array",
    "str_value",
]

_TYPE_LABEL = re.compile(r"^([A-Za-z]+)(\d*)(.*)$")


def is_missing(v: Any) -> bool:
    """Whether a scalar is missing (``None``, ``NaN``, ``pd.NA``, ``NaT``).

    Non-scalars (lists, arrays) are never "missing".

    Parameters
    ----------
    v
        Any value.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_missing(None), is_missing(float("nan")), is_missing(0), is_missing([None])
    (True, True, False, False)
    """
    m = pd.isna(v)
    return bool(m) if isinstance(m, bool | np.bool_) else False


def str_value(v: Any) -> str:
    """crantpy's ID/label normalisation of one value: integers (and integral floats) as plain digits.

    Parameters
    ----------
    v
        A scalar (not missing; see :func:`is_missing`).

    Returns
    -------
    str

    Examples
    --------
    >>> str_value(7), str_value(7.0), str_value(7.5), str_value("KC"), str_value(True)
    ('7', '7', '7.5', 'KC', 'True')
    """
    if isinstance(v, bool | np.bool_):
        return str(v)
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        if np.isfinite(f) and f.is_integer():
            return str(int(f))
    return str(v)


def str_array(values: Any) -> np.ndarray:
    """Normalise IDs/labels to an object array of str (``None`` where missing), vectorised.

    Each distinct value is normalised once (:func:`str_value`); integer
    arrays are converted in one numpy call.

    Parameters
    ----------
    values
        A pandas Series / Index, a numpy array or any sequence.

    Returns
    -------
    numpy.ndarray
        ``dtype=object``, same length as ``values``.

    Examples
    --------
    >>> str_array(np.array([10, 2, 10])).tolist()
    ['10', '2', '10']
    >>> str_array(pd.Series([1.0, None, "a"])).tolist()
    ['1', None, 'a']
    """
    s = values if isinstance(values, pd.Series | pd.Index) else pd.Series(np.asarray(values, dtype=object))
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    u = np.asarray(uniques)
    if u.dtype.kind in "iu":
        su = u.astype(str).astype(object)
    else:
        su = np.array([str_value(x) for x in u], dtype=object)
    out = np.empty(len(codes), dtype=object)
    ok = codes >= 0
    out[ok] = su[codes[ok]]
    out[~ok] = None
    return out


def natural_key(label: str) -> tuple[str, float, str]:
    """Sort key of one type label: (upper-cased letter prefix, number or ``inf``, label).

    Labels of digits only (e.g. body IDs used as types) sort by their number,
    before every lettered label; other labels not starting with a letter use
    the whole upper-cased label as prefix.

    Parameters
    ----------
    label
        A type label.

    Returns
    -------
    tuple

    Examples
    --------
    >>> natural_key("ER10"), natural_key("ER")
    (('ER', 10, 'ER10'), ('ER', inf, 'ER'))
    >>> sorted(["ER", "er3", "ER10"], key=natural_key)
    ['er3', 'ER10', 'ER']
    >>> sorted(["10", "9", "A1"], key=natural_key)
    ['9', '10', 'A1']
    """
    stripped = label.strip()
    if stripped.isascii() and stripped.isdigit():
        return ("", int(stripped), label)
    m = _TYPE_LABEL.match(stripped)
    if not m:
        return (label.upper(), float("inf"), label)
    pfx, num, _ = m.groups()
    return (pfx.upper(), int(num) if num else float("inf"), label)


def natural_type_order(types: Iterable[Any], type_order: Iterable[Any] | None = None) -> list[str]:
    """Order cell-type labels like crantpy's nested matrices.

    Labels sort by leading letters (case-insensitive), then their number
    (labels without a number after those with one), then the label. Each
    ``type_order`` entry pulls in, in that natural order, the exact label and
    every label whose upper-cased letter prefix equals the entry; the other
    types follow in natural order.

    Parameters
    ----------
    types
        Labels (missing values are ignored, numbers are normalised to digits).
    type_order
        Preferred order (entries or letter prefixes).

    Returns
    -------
    list of str
        Each distinct label once.

    Examples
    --------
    >>> natural_type_order(["ER", "ER10", "ER2", "Pbt", "EPG"])
    ['EPG', 'ER2', 'ER10', 'ER', 'Pbt']
    >>> natural_type_order(["ER", "ER10", "ER2", "Pbt", "EPG"], type_order=["Pbt", "ER"])
    ['Pbt', 'ER2', 'ER10', 'ER', 'EPG']
    """
    unique = {str_value(t) for t in types if not is_missing(t)}
    keys = {t: natural_key(t) for t in unique}
    generic = sorted(unique, key=lambda t: keys[t])
    if not type_order:
        return generic
    out: list[str] = []
    remaining = set(generic)
    for p in type_order:
        if is_missing(p):
            continue
        ps = str_value(p)
        for t in generic:
            if t in remaining and (t == ps or keys[t][0] == ps):
                out.append(t)
                remaining.discard(t)
    out.extend(t for t in generic if t in remaining)
    return out


#: neuPrint's thresholds: a body with at least this many T-bars (``pre``) or PSDs (``post``) is a Neuron
NEURON_MIN_PRE = 2
NEURON_MIN_POST = 10

#: columns whose presence (a non-empty value) makes a body a Neuron in neuPrint
_NEURON_NAME_COLS = ("type", "instance", "name", "status")
_SOMA_COLS = ("soma", "somaLocation", "somaRadius")


def neuprint_label(neurons: pd.DataFrame) -> pd.Series:
    """neuPrint's node label of each body: ``"Neuron"`` or ``"Segment"`` (the rule, computed).

    A body is a ``Neuron`` when it has at least 2 T-bars (``pre``), at least
    10 PSDs (``post``), a name (``type``, ``instance`` or ``name``), a
    ``status``, or a soma (a true ``soma`` flag, a ``somaLocation`` or a
    positive ``somaRadius``); otherwise a ``Segment``. Columns the table does
    not have count as absent; empty strings count as missing.

    Parameters
    ----------
    neurons
        A neuron table (e.g. ``conn.neurons``).

    Returns
    -------
    pandas.Series
        ``"Neuron"`` / ``"Segment"`` (object dtype), aligned with ``neurons``.

    Examples
    --------
    >>> t = pd.DataFrame({"pre": [5, 0, 0, 0], "post": [0, 3, 12, 0], "type": [None, None, None, "KC"]})
    >>> neuprint_label(t).tolist()
    ['Neuron', 'Segment', 'Neuron', 'Neuron']
    """
    n = len(neurons)
    ok = np.zeros(n, dtype=bool)
    if "pre" in neurons.columns:
        ok |= pd.to_numeric(neurons["pre"], errors="coerce").fillna(0).to_numpy() >= NEURON_MIN_PRE
    if "post" in neurons.columns:
        ok |= pd.to_numeric(neurons["post"], errors="coerce").fillna(0).to_numpy() >= NEURON_MIN_POST
    for c in _NEURON_NAME_COLS:
        if c in neurons.columns:
            v = neurons[c]
            present = v.notna().to_numpy(bool).copy()
            if v.dtype == object or pd.api.types.is_string_dtype(v.dtype):
                present &= (v.astype("string").str.len().fillna(0) > 0).to_numpy(bool)
            ok |= present
    if "soma" in neurons.columns:
        ok |= neurons["soma"].astype("boolean").fillna(False).to_numpy(bool)
    if "somaLocation" in neurons.columns:
        ok |= np.array([v is not None and not (np.isscalar(v) and is_missing(v))
                        for v in neurons["somaLocation"]], dtype=bool)
    if "somaRadius" in neurons.columns:
        ok |= pd.to_numeric(neurons["somaRadius"], errors="coerce").fillna(0).to_numpy() > 0
    return pd.Series(np.where(ok, "Neuron", "Segment"), index=neurons.index, dtype=object, name="label")


def body_labels(neurons: pd.DataFrame) -> pd.Series:
    """The ``"Neuron"`` / ``"Segment"`` label of each body: the stored ``label`` column, else the rule.

    A stored ``label`` (recorded at ingest, possibly overridden by the user)
    wins; rows where it is missing get :func:`neuprint_label`.

    Parameters
    ----------
    neurons
        A neuron table.

    Returns
    -------
    pandas.Series
        Object dtype, aligned with ``neurons``.

    Examples
    --------
    >>> t = pd.DataFrame({"pre": [5, 0], "post": [0, 0], "label": ["Segment", None]})
    >>> body_labels(t).tolist()
    ['Segment', 'Segment']
    """
    computed = neuprint_label(neurons)
    if "label" not in neurons.columns:
        return computed
    stored = neurons["label"].astype(object)
    return stored.where(stored.notna(), computed).astype(object).rename("label")
