"""Neurotransmitters: neuron-level and per-connection calls from per-synapse probabilities, and signs.

Per-synapse probabilities are stored as float32 synapse columns
``nt_<name>`` (``nt_ach``, ``nt_gaba``, ``nt_glut``, ``nt_da``, ``nt_ser``,
``nt_oct``, ``nt_his``, ``nt_tyr``), written by the release dialects of
:mod:`connectome_dask.ingest.dialects`.

* :func:`neuron_nt` -- per presynaptic neuron, the mean of its output
  synapses' probabilities, then the argmax (FlyWire's ``top_nt``); with
  ``weight="cleft_score"`` the mean is weighted by the cleft score (as
  fafbseg does).
* :func:`connection_nt` -- the same per (pre, post) connection.

On a connection-level store (FlyWire ``proofread_connections_783``'s
``gaba_avg`` ... as ``nt_gaba`` ...) the means are weighted by each row's
synapse count, i.e. they are means over the synapses again.
* :func:`nt_calls` -- one call per neuron: :func:`neuron_nt` when the store
  has probabilities, else a neuron-table column (``top_nt``, ``nt_type``,
  ``predicted_nt``, ``consensus_nt``, ``nt``).
* :data:`NT_SIGNS` / :func:`nt_sign` -- the sign table of signed
  adjacency: acetylcholine +1, GABA -1, glutamate -1, every other (and
  unknown) transmitter +1; pass ``signs={"his": -1}`` etc. to override.

Every mean is a sum over one neuron's (or pair's) contiguous rows in one
task (partitions start at presynaptic-neuron boundaries), so results are
identical whatever the chunk or partition size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._compute import compute

if TYPE_CHECKING:
    from ..store import Connectome

__all__ = ["NT_SIGNS", "NT_SPELLINGS", "canonical_nt", "nt_sign", "nt_columns", "neuron_nt",
           "connection_nt", "nt_calls", "NT_NEURON_COLUMNS"]

#: Sign of each transmitter in signed adjacency (others, and unknown calls: +1).
NT_SIGNS: dict[str, int] = {"ach": 1, "gaba": -1, "glut": -1}

#: Spellings of each canonical transmitter name (lower case) in the releases.
NT_SPELLINGS: dict[str, tuple[str, ...]] = {
    "ach": ("ach", "acetylcholine", "acetylcholin"),
    "gaba": ("gaba",),
    "glut": ("glut", "glu", "glutamate"),
    "da": ("da", "dopamine"),
    "ser": ("ser", "serotonin", "5-ht", "5ht"),
    "oct": ("oct", "octopamine", "oa"),
    "his": ("his", "histamine", "ha"),
    "tyr": ("tyr", "tyramine"),
}

#: Neuron-table columns holding a neuron-level call, in order of preference.
NT_NEURON_COLUMNS = ("top_nt", "nt_type", "predicted_nt", "consensus_nt", "nt")

_LOOKUP = {s: k for k, v in NT_SPELLINGS.items() for s in v}


def canonical_nt(name: Any) -> str | None:
    """The canonical name of a transmitter call (``"ACH"``, ``"acetylcholine"`` -> ``"ach"``).

    Parameters
    ----------
    name
        A call as a release spells it; missing values and unknown words
        (``"neither"``, ``"unclear"``) give ``None``.

    Returns
    -------
    str or None

    Examples
    --------
    >>> canonical_nt("ACH"), canonical_nt("glutamate"), canonical_nt("unclear"), canonical_nt(None)
    ('ach', 'glut', None, None)
    """
    if not isinstance(name, str):
        return None
    return _LOOKUP.get(name.strip().lower())


def nt_sign(calls: Any, signs: Mapping[str, int] | None = None) -> np.ndarray:
    """Signs (+1 / -1) of transmitter calls under the sign table (defaults :data:`NT_SIGNS`).

    Parameters
    ----------
    calls
        Transmitter calls (any spelling :func:`canonical_nt` knows).
    signs
        Overrides of the table, by any spelling (``{"histamine": -1}``); each
        value must be +1 or -1.

    Returns
    -------
    numpy.ndarray
        int64, one sign per call (unknown and missing calls: +1).

    Raises
    ------
    ValueError
        A sign is not +1 or -1, or an override names no known transmitter.

    Examples
    --------
    >>> nt_sign(["ACH", "GABA", "glutamate", "dopamine", None]).tolist()
    [1, -1, -1, 1, 1]
    >>> nt_sign(["histamine"], {"his": -1}).tolist()
    [-1]
    """
    table = dict(NT_SIGNS)
    for k, v in (signs or {}).items():
        c = canonical_nt(k)
        if c is None:
            raise ValueError(f"signs: unknown transmitter {k!r}; known: {sorted(NT_SPELLINGS)}")
        if v not in (1, -1):
            raise ValueError(f"signs: the sign of {k!r} must be +1 or -1, got {v!r}")
        table[c] = int(v)
    return np.array([table.get(canonical_nt(c) or "", 1) for c in calls], dtype=np.int64)


def nt_columns(conn: Connectome) -> dict[str, str]:
    """The store's per-synapse probability columns: canonical name -> synapse column.

    Parameters
    ----------
    conn
        The connectome.

    Returns
    -------
    dict
        E.g. ``{"ach": "nt_ach", "gaba": "nt_gaba", ...}`` (empty without probabilities).

    Examples
    --------
    >>> nt_columns(conn)
    {}
    """
    return {c[3:]: c for c in conn.synapse_columns if c.startswith("nt_") and c[3:] in NT_SPELLINGS}


def _runs(keys: list[np.ndarray]) -> np.ndarray:
    n = len(keys[0])
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
        for k in keys:
            change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


def _nt_chunk(block: dict[str, np.ndarray], start: int, cols: list[str], weight: str | None, by_pair: bool,
              count: str | None = None):
    pre = block["pre"]
    keys = [pre, block["post"]] if by_pair else [pre]
    starts = _runs(keys)
    n = len(pre)
    if n == 0:
        return tuple(np.zeros(0, np.int32) for _ in keys) + (np.zeros(0, np.int64), np.zeros((0, len(cols))),
                                                            np.zeros(0))
    if count is not None:  # connection-level rows: synapses per row
        counts = np.add.reduceat(block[count].astype(np.int64), starts)
    else:
        counts = np.diff(np.append(starts, n)).astype(np.int64)
    w = block[weight].astype(np.float64) if weight else None
    sums = np.empty((len(starts), len(cols)))
    for j, c in enumerate(cols):
        v = block[c].astype(np.float64)
        sums[:, j] = np.add.reduceat(v * w if w is not None else v, starts)
    den = np.add.reduceat(w, starts) if w is not None else counts.astype(np.float64)
    return tuple(k[starts] for k in keys) + (counts, sums, den)


def _reduce(conn: Connectome, weight: str | None, by_pair: bool, progress: bool | None):
    cols_map = nt_columns(conn)
    if not cols_map:
        raise KeyError(f"{conn.path}: the store has no per-synapse neurotransmitter columns (nt_*); "
                       "ingest a release that carries them (flywire-783, banc)")
    if weight is not None and weight not in conn.synapse_columns:
        raise KeyError(f"{conn.path}: no synapse column {weight!r} to weight the means by; "
                       f"columns: {conn.synapse_columns}")
    names = list(cols_map)
    cols = [cols_map[k] for k in names]
    count = conn.weight_column  # connection-level stores: means weighted by the synapse counts
    if weight is None:
        weight = count
    read = list(dict.fromkeys(["pre", "post", *cols] + [c for c in (weight, count) if c]))
    # partitions start at presynaptic-neuron boundaries: each neuron's / pair's rows are one run
    parts = conn.map_partitions(_nt_chunk, read, cols, weight, by_pair, count, align_pre=True, name="nt-means")
    res = compute(*parts, progress=progress)
    k = 2 if by_pair else 1
    out = [np.concatenate([r[i] for r in res]) for i in range(k + 3)] if res else None
    return names, out


def _frame(names: list[str], sums: np.ndarray, den: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / den[:, None]
    df = pd.DataFrame({f"nt_{n}": means[:, j] for j, n in enumerate(names)})
    ok = np.isfinite(means).all(axis=1) & (den > 0) if len(means) else np.zeros(0, bool)
    arg = np.where(ok, np.argmax(np.where(np.isfinite(means), means, -np.inf), axis=1) if len(means) else 0, -1)
    conf = np.where(ok, means[np.arange(len(means)), np.maximum(arg, 0)] if len(means) else 0.0, np.nan)
    return df, arg, conf


def neuron_nt(conn: Connectome, *, weight: str | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Neuron-level transmitter calls: the mean of each output synapse's probabilities, then the argmax.

    Parameters
    ----------
    conn
        A store with per-synapse probability columns (``nt_*``).
    weight
        ``None`` (plain mean, FlyWire's ``top_nt``) or a synapse column to
        weight the mean by, e.g. ``"cleft_score"`` (fafbseg).
    progress
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per neuron with output synapses, sorted by ``bodyId``:
        ``bodyId``, ``n_synapses`` (output synapse rows), ``nt_<name>`` (mean
        probability, float64), ``top_nt`` (canonical name of the largest
        mean; ties: the first in the store's column order) and ``top_nt_conf``
        (that mean).

    Raises
    ------
    KeyError
        The store has no probability columns, or no ``weight`` column.

    Examples
    --------
    >>> from connectome_dask.ingest import ingest
    >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 2, 1],
    ...                     "gaba": [0.75, 0.5, 0.25], "ach": [0.25, 0.5, 0.75]})
    >>> c = ingest(syn, tmp_path / "nt", columns={"nt_gaba": "gaba", "nt_ach": "ach"}, progress=False)
    >>> neuron_nt(c)[["bodyId", "nt_gaba", "nt_ach", "top_nt"]]
       bodyId  nt_gaba  nt_ach top_nt
    0       1    0.625   0.375   gaba
    1       2    0.250   0.750    ach
    """
    names, out = _reduce(conn, weight, False, progress)
    body = conn.neurons["bodyId"].to_numpy()
    if out is None:
        pre, counts, sums, den = (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros((0, len(names))),
                                  np.zeros(0))
    else:
        pre, counts, sums, den = out
    df, arg, conf = _frame(names, sums, den)
    df.insert(0, "bodyId", body[pre])
    df.insert(1, "n_synapses", counts)
    df["top_nt"] = pd.array([names[a] if a >= 0 else None for a in arg], dtype="string")
    df["top_nt_conf"] = conf
    return df


def connection_nt(conn: Connectome, *, weight: str | None = None, min_weight: int = 1,
                  progress: bool | None = None) -> pd.DataFrame:
    """Per-connection transmitter probabilities: means over each (pre, post) pair's synapses, and the argmax.

    Parameters
    ----------
    conn
        A store with per-synapse probability columns (``nt_*``).
    weight
        ``None`` or a synapse column weighting the means (``"cleft_score"``).
    min_weight
        Pairs with fewer synapses are left out.
    progress
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        ``pre``, ``post`` (dense neuron indices, int32), ``weight`` (synapse
        count), ``nt_<name>`` means and ``nt`` (the argmax), sorted by (pre, post).

    Raises
    ------
    KeyError
        The store has no probability columns, or no ``weight`` column.

    Examples
    --------
    >>> from connectome_dask.ingest import ingest
    >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 2, 1],
    ...                     "gaba": [0.75, 0.5, 0.25], "ach": [0.25, 0.5, 0.75]})
    >>> c = ingest(syn, tmp_path / "nt", columns={"nt_gaba": "gaba", "nt_ach": "ach"}, progress=False)
    >>> connection_nt(c)[["pre", "post", "weight", "nt"]].values.tolist()
    [[0, 1, 2, 'gaba'], [1, 0, 1, 'ach']]
    """
    names, out = _reduce(conn, weight, True, progress)
    if out is None:
        pre, post, counts, sums, den = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64),
                                        np.zeros((0, len(names))), np.zeros(0))
    else:
        pre, post, counts, sums, den = out
    df, arg, _ = _frame(names, sums, den)
    df.insert(0, "pre", pre.astype(np.int32))
    df.insert(1, "post", post.astype(np.int32))
    df.insert(2, "weight", counts)
    df["nt"] = pd.array([names[a] if a >= 0 else None for a in arg], dtype="string")
    if min_weight > 1:
        df = df[df["weight"].to_numpy() >= min_weight].reset_index(drop=True)
    return df


def nt_calls(conn: Connectome, *, source: str = "auto", weight: str | None = None,
             progress: bool | None = None) -> np.ndarray:
    """One canonical transmitter call per neuron (``None`` where unknown), in ``conn.neurons`` order.

    Parameters
    ----------
    conn
        The connectome.
    source
        ``"auto"`` (per-synapse probabilities when the store has them, else
        the first of :data:`NT_NEURON_COLUMNS` in the neuron table),
        ``"synapses"``, or a neuron-table column name.
    weight
        Weighting of the per-synapse means (see :func:`neuron_nt`).
    progress
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        Object array of canonical names (``"ach"``, ``"gaba"``, ...) or ``None``.

    Raises
    ------
    KeyError
        Nothing to call transmitters from (no ``nt_*`` columns and no
        neuron-table column), or an unknown ``source`` column.

    Examples
    --------
    >>> try:
    ...     nt_calls(conn)  # the doctest store has no transmitter information
    ... except KeyError as e:
    ...     print(str(e).split(": ", 1)[1][:40])
    no neurotransmitter information: no per-
    """
    neurons = conn.neurons
    if source == "auto":
        if nt_columns(conn):
            source = "synapses"
        else:
            source = next((c for c in NT_NEURON_COLUMNS if c in neurons.columns), "")
            if not source:
                raise KeyError(f"{conn.path}: no neurotransmitter information: no per-synapse nt_* columns "
                               f"and no neuron column among {NT_NEURON_COLUMNS}")
    out = np.full(conn.n_neurons, None, dtype=object)
    if source == "synapses":
        df = neuron_nt(conn, weight=weight, progress=progress)
        idx = conn.body_to_index(df["bodyId"].to_numpy())
        out[idx] = df["top_nt"].to_numpy(dtype=object, na_value=None)
        return out
    if source not in neurons.columns:
        raise KeyError(f"unknown neuron column {source!r} for transmitter calls; available: {list(neurons.columns)}")
    return np.array([canonical_nt(v) for v in neurons[source].to_numpy(dtype=object)], dtype=object)
