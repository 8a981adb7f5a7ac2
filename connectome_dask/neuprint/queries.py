"""neuprint-python's query functions (``neuprint.queries``) on a local store.

Each function has neuprint-python 0.6.4's signature, defaults and positional
order, takes ``client=`` (a :class:`~connectome_dask.neuprint.Client`, a
Connectome, or ``None`` for the default client) and returns neuprint's
columns. Options that only tune a server round trip (``batch_size``,
``threads``, ``timeout``) are accepted and have no effect. Criteria arguments
are coerced by neuprint's rules
(:func:`~connectome_dask.neuprint.neuroncriteria.copy_as_neuroncriteria`),
so ``NeuronCriteria()`` / ``None`` select bodies labelled ``Neuron``.

Examples
--------
>>> c = Client(conn)
>>> neuron_df, roi_counts_df = fetch_neurons(NeuronCriteria(type="KC.*"))
>>> neuron_df.columns[:5].tolist(), roi_counts_df.columns.tolist()[:4]
(['bodyId', 'instance', 'type', 'pre', 'post'], ['bodyId', 'roi', 'pre', 'post'])
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._fsutil import atomic_file
from ..criteria import NOT_PRIMARY, IsNull, NotNull
from ..errors import CriteriaError
from ..query import neuprint as _q
from ..rois.hierarchy import fetch_roi_hierarchy as _roi_hierarchy_dict
from ..rois.model import RoiModel
from .client import Client, _bind_methods, connectome_of, inject_client
from .neuroncriteria import (
    NeuronCriteria,
    NeuronCriteriaError,
    SegmentCriteria,
    SynapseCriteria,
    copy_as_neuroncriteria,
)
from .utils import ensure_list, merge_neuron_properties

__all__ = [
    "NeuronCriteria", "SegmentCriteria", "SynapseCriteria", "NotNull", "IsNull",
    "fetch_custom", "fetch_meta", "fetch_all_rois", "fetch_primary_rois", "fetch_roi_hierarchy",
    "fetch_neurons", "fetch_simple_connections", "fetch_adjacencies", "fetch_traced_adjacencies",
    "fetch_common_connectivity", "fetch_shortest_paths", "fetch_paths", "fetch_synapses",
    "fetch_mean_synapses", "fetch_synapse_connections", "fetch_output_completeness",
    "fetch_downstream_orphan_tasks", "CORE_NEURON_COLS",
]

logger = logging.getLogger(__name__)

#: neuprint-python's core neuron columns, in its order
CORE_NEURON_COLS = ["bodyId", "instance", "type", "pre", "post", "downstream", "upstream", "mito", "size",
                    "status", "cropped", "statusLabel", "cellBodyFiber", "somaRadius", "somaLocation",
                    "inputRois", "outputRois", "roiInfo"]


def _nc(obj: Any) -> NeuronCriteria:
    return copy_as_neuroncriteria(obj)


#: neuprint-python's connection weight properties; a store has ``weight`` only
WEIGHT_PROPERTIES = ["weight", "weightHP", "weightAxonAxon", "weightAxonDendrite", "weightDendriteDendrite",
                     "weightDendriteAxon"]


def _check_weight_props(weight_props: Any) -> None:
    """neuprint-python's ``weight_props`` check; the properties a store does not have are omitted
    with a warning (none for ``'all'``), as neuprint-python omits the polarity weights."""
    if weight_props is None:
        return
    if weight_props == "all":
        return
    props = [weight_props] if isinstance(weight_props, str) else list(weight_props)
    bad = set(props) - set(WEIGHT_PROPERTIES)
    if bad:
        raise NeuronCriteriaError(f"Unrecognized weight_props: {bad}. Valid options are {WEIGHT_PROPERTIES}")
    missing = sorted(set(props) - {"weight"})
    if missing:
        warnings.warn(f"A local store has one weight per connection ('weight'), so the following "
                      f"weight_props aren't available and will be omitted: {missing}", UserWarning,
                      stacklevel=3)


_STR = pd.Series([""]).dtype  # neuprint-python's dtype of ROI name columns


def _roi_str(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """ROI name columns in neuprint-python's string dtype (lists, with ``primary_only=False``, stay objects)."""
    for c in cols:
        if c in df.columns and not any(isinstance(v, list) for v in df[c]):
            df[c] = df[c].astype(_STR)
    return df


def _default_threshold(conn: Any) -> float | None:
    """The synapse confidence threshold of a default ``SynapseCriteria()`` (connection weights use it too)."""
    return SynapseCriteria(client=conn).threshold(conn)


_LOCATION_COLS = ("somaLocation", "tosomaLocation", "rootLocation")


def _as_point(v: Any) -> Any:
    """A location as neuprint-python gives it: ``[x, y, z]`` (a list), ``None`` when missing."""
    if v is None or (np.isscalar(v) and pd.isna(v)):
        return None
    if isinstance(v, str):
        parts = [p for p in v.strip("[]() ").replace(";", ",").replace(" ", ",").split(",") if p]
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            return v
        return [int(x) if float(x).is_integer() else x for x in nums]
    if isinstance(v, dict):
        return list(v.get("coordinates", v.values()))
    return list(np.asarray(v).tolist())


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """String and nullable columns as neuprint-python returns them (object, numpy dtypes);
    locations (``somaLocation``...) as ``[x, y, z]`` lists."""
    out = df.copy()
    for c in out.columns:
        if c in _LOCATION_COLS:
            out[c] = pd.Series([_as_point(v) for v in out[c]], index=out.index, dtype=object)
            continue
        dt = out[c].dtype
        if isinstance(dt, pd.StringDtype) or (pd.api.types.is_string_dtype(dt) and dt != np.dtype(object)):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
        elif isinstance(dt, pd.BooleanDtype):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
            if out[c].notna().all():
                out[c] = out[c].astype(bool)
        elif isinstance(dt, pd.api.extensions.ExtensionDtype) and pd.api.types.is_integer_dtype(dt):
            out[c] = out[c].astype(np.float64) if out[c].isna().any() else out[c].astype(np.int64)
    return out


# ----------------------------------------------------------------------------- meta and ROIs


@inject_client
def fetch_custom(cypher: str, dataset: str = "", format: str = "pandas", *, client: Any = None) -> pd.DataFrame:  # noqa: A002
    """Not available on a local store (no Cypher); raises.

    Parameters
    ----------
    cypher, dataset, format
        neuprint-python's arguments.
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        Never.

    Raises
    ------
    NotImplementedError
        Always; the message names the functions to use instead.

    Examples
    --------
    >>> fetch_custom("MATCH (n) RETURN n", client=Client(conn))
    Traceback (most recent call last):
    ...
    NotImplementedError: fetch_custom: a local store has no Cypher engine; ...
    """
    return Client.fetch_custom(client, cypher, dataset, format)  # raises


def _roi_totals(conn: Any) -> dict[str, dict[str, int]]:
    from ..criteria import neuron_roi_table

    if not conn.roi_info:
        return {}
    t = neuron_roi_table(conn, None)
    tot = t.groupby("roi")[["pre", "post"]].sum()
    model = RoiModel.of(conn)
    return {r: {"pre": int(tot["pre"].get(r, 0)), "post": int(tot["post"].get(r, 0))}
            for r in sorted(model.all_rois)}


@inject_client
def fetch_meta(*, client: Any = None) -> dict[str, Any]:
    """neuPrint's dataset metadata, from the store.

    Parameters
    ----------
    client
        The client (default: the default client).

    Returns
    -------
    dict
        ``dataset``, ``primaryRois``, ``superLevelRois``, ``roiInfo``
        (``{roi: {"pre", "post"}}`` totals), ``roiHierarchy`` (neuPrint's
        ``{"name", "children"}``), ``totalPreCount``, ``totalPostCount``,
        ``postHighAccuracyThreshold`` (the store's default confidence),
        ``uuid``, ``lastDatabaseEdit``.

    Raises
    ------
    NoDefaultClientError
        No client given and no default client.

    Examples
    --------
    >>> m = fetch_meta(client=Client(conn))
    >>> "EB" in m["primaryRois"], m["roiHierarchy"]["name"] == m["dataset"]
    (True, True)
    """
    conn = connectome_of(client)
    dataset = client.dataset if isinstance(client, Client) else str(conn.meta.get("name") or conn.path.name)
    model = RoiModel.of(conn)
    primary = sorted(model.primary) if model else []
    hier: dict = {"name": dataset}
    if conn.roi_info:
        tree = _roi_hierarchy_dict(True, False, "dict", client=conn)
        (_, top), = tree.items()

        def node(name: str, kids: dict) -> dict:
            d: dict[str, Any] = {"name": name}
            if kids:
                d["children"] = [node(k, v) for k, v in kids.items()]
            return d

        hier["children"] = [node(k, v) for k, v in top.items()]
    return {
        "dataset": dataset,
        "primaryRois": primary,
        "superLevelRois": sorted(set(model.all_rois) - set(primary)) if model else [],
        "roiInfo": _roi_totals(conn),
        "roiHierarchy": hier,
        "totalPreCount": int(conn.n_synapses),
        "totalPostCount": int(conn.n_synapses),
        "postHighAccuracyThreshold": conn.meta.get("default_confidence"),
        "uuid": conn.meta.get("uuid"),
        "lastDatabaseEdit": conn.meta.get("created"),
    }


@inject_client
def fetch_all_rois(*, client: Any = None) -> list[str]:
    """Every ROI name of the store (any level), sorted.

    Parameters
    ----------
    client
        The client.

    Returns
    -------
    list of str

    Raises
    ------
    NoDefaultClientError
        No client given and no default client.

    Examples
    --------
    >>> {"EB", "CX"} <= set(fetch_all_rois(client=Client(conn)))
    True
    """
    model = RoiModel.of(connectome_of(client))
    return sorted(model.all_rois) if model else []


@inject_client
def fetch_primary_rois(*, client: Any = None) -> list[str]:
    """The primary ROI names, sorted.

    Parameters
    ----------
    client
        The client.

    Returns
    -------
    list of str

    Raises
    ------
    NoDefaultClientError
        No client given and no default client.

    Examples
    --------
    >>> "CX" in fetch_primary_rois(client=Client(conn))  # a super-level ROI
    False
    """
    model = RoiModel.of(connectome_of(client))
    return sorted(model.primary) if model else []


def _ascii_tree(d: dict) -> str:
    """``{root: {child: {...}}}`` drawn as asciitree's ``LeftAligned`` draws it (neuprint's text)."""
    (root, children), = d.items()
    lines = [root]

    def walk(node: dict, prefix: str) -> None:
        items = list(node.items())
        for i, (k, v) in enumerate(items):
            lines.append(f"{prefix} +-- {k}")
            walk(v, prefix + ("    " if i == len(items) - 1 else " |  "))

    walk(children, "")
    return "\n".join(lines)


@inject_client
def fetch_roi_hierarchy(include_subprimary: bool = True, mark_primary: bool = True, format: str = "dict",  # noqa: A002
                        *, client: Any = None) -> Any:
    """The ROI hierarchy as a dict, neuprint's text tree, or a networkx graph.

    Parameters
    ----------
    include_subprimary
        Include ROIs below primary ROIs.
    mark_primary
        Append ``*`` to primary ROI names.
    format
        ``'dict'``, ``'text'`` (drawn as neuprint-python draws it, with
        asciitree's ``+--`` style) or ``'nx'``.
    client
        The client.

    Returns
    -------
    dict, str or networkx.DiGraph

    Raises
    ------
    ValueError
        Unknown ``format``.
    connectome_dask.errors.RoiError
        The store has no ROIs.

    Examples
    --------
    >>> print(fetch_roi_hierarchy(False, format="text", client=Client(conn)).splitlines()[1])
     +-- AL_L*
    """
    if format not in ("dict", "text", "nx"):
        raise ValueError(f"format must be 'dict', 'text' or 'nx', got {format!r}")
    d = _roi_hierarchy_dict(include_subprimary, mark_primary, "dict", client=connectome_of(client))
    if format == "dict":
        return d
    if format == "text":
        return _ascii_tree(d)
    import networkx as nx

    g = nx.DiGraph()

    def add(parent: str, node: dict) -> None:
        for k, v in node.items():
            g.add_edge(parent, k)
            add(k, v)

    (root, top), = d.items()
    add(root, top)
    return g


# ----------------------------------------------------------------------------- neurons


@inject_client
def fetch_neurons(criteria: Any = None, *, omit_rois: bool = False, returned_columns: Any = "all",
                  client: Any = None) -> Any:
    """Neuron properties and per-ROI synapse counts (neuprint's ``fetch_neurons``).

    Parameters
    ----------
    criteria
        :class:`NeuronCriteria`, body ID(s), type/instance string(s), a
        DataFrame with ``bodyId``, or ``None`` (every ``Neuron``).
    omit_rois
        Return only ``neuron_df`` (no ``roiInfo``, ``inputRois``, ``outputRois``).
    returned_columns
        ``'all'`` (the core columns in neuprint's order, ``roiInfo``, the
        others sorted, ``inputRois``, ``outputRois``), ``'core'``
        (:data:`CORE_NEURON_COLS` only) or a list (those columns in that
        order, then ``roiInfo``, ``inputRois``, ``outputRois``; unknown names
        are ignored).
    client
        The client.

    Returns
    -------
    neuron_df : pandas.DataFrame
        One row per body, sorted by ``bodyId``; ``roiInfo`` holds
        ``{roi: {"pre", "post", "downstream", "upstream"}}`` dicts,
        ``inputRois`` / ``outputRois`` sorted lists.
    roi_counts_df : pandas.DataFrame
        ``bodyId, roi, pre, post, downstream, upstream`` (plus ``mito``
        when the neuron table has it: all of it under ``NotPrimary``, as a
        store does not place mitochondria), ``NotPrimary`` rows for sites in
        no primary ROI, all-zero rows dropped, sorted by ``(bodyId, roi)``.
        Not returned with ``omit_rois``.

    Raises
    ------
    ValueError
        ``returned_columns`` is not ``'all'``, ``'core'`` or a list, or names
        no existing column.
    NeuronCriteriaError
        Criteria that neuprint-python rejects.

    Examples
    --------
    >>> neuron_df, roi_df = fetch_neurons("KC.*", client=Client(conn))
    >>> neuron_df.bodyId.is_monotonic_increasing, "NotPrimary" in set(roi_df.roi) or True
    (True, True)
    """
    conn = connectome_of(client)
    nc = _nc(criteria)
    df, roi_df = _q.fetch_neurons(nc, client=conn)
    df = _plain(df)
    # neuPrint's per-ROI downstream counts the connections whose T-bar is in the ROI: here one
    # row is one connection, so it is the ROI's pre count (as upstream is its post count)
    roi_df = roi_df.assign(downstream=roi_df["pre"], upstream=roi_df["post"])
    if "mito" in df.columns and "mito" not in roi_df.columns:
        roi_df = _mito_rows(roi_df, df)
    info: dict[int, dict] = {}
    for b, roi, pre, post, dn, up in roi_df[roi_df["roi"] != NOT_PRIMARY][
            ["bodyId", "roi", "pre", "post", "downstream", "upstream"]].itertuples(index=False):
        info.setdefault(int(b), {})[roi] = {"pre": int(pre), "post": int(post),
                                            "downstream": int(dn), "upstream": int(up)}
    df["roiInfo"] = [info.get(int(b), {}) for b in df["bodyId"]]
    keys = [c for c in df.columns]
    if returned_columns == "all":
        cols = [c for c in CORE_NEURON_COLS if c in keys] + sorted(c for c in keys if c not in CORE_NEURON_COLS)
    elif returned_columns == "core":
        cols = [c for c in CORE_NEURON_COLS if c in keys]
    elif isinstance(returned_columns, Iterable) and not isinstance(returned_columns, str):
        cols = [c for c in returned_columns if c in keys]
    else:
        raise ValueError(f'returned_columns must be a list or "all" or "core"; got {returned_columns}')
    if not cols:
        raise ValueError("No requested returned_columns exist!")
    roi_cols = ("roiInfo", "inputRois", "outputRois")
    cols = [c for c in cols if c not in roi_cols]
    if omit_rois:
        return df[cols]
    if isinstance(returned_columns, str):
        # neuprint-python's order: the core columns, roiInfo, the others, then inputRois, outputRois
        n_core = sum(c in CORE_NEURON_COLS for c in cols)
        cols = [*cols[:n_core], "roiInfo", *cols[n_core:], "inputRois", "outputRois"]
    else:  # the given order (neuprint-python moves core columns first, against its docstring)
        cols = [*cols, "roiInfo", "inputRois", "outputRois"]
    counts = ["pre", "post", "downstream", "upstream"] + (["mito"] if "mito" in roi_df.columns else [])
    return df[cols], roi_df[["bodyId", "roi", *counts]].reset_index(drop=True)


def _mito_rows(roi_df: pd.DataFrame, neuron_df: pd.DataFrame) -> pd.DataFrame:
    """``mito`` per ROI: a store keeps a body's mitochondria count, not where they are, so all of it
    is ``NotPrimary`` (neuPrint's total minus the primary ROIs' sums) and 0 in every named ROI."""
    total = pd.Series(pd.to_numeric(neuron_df["mito"], errors="coerce").fillna(0).astype(np.int64).to_numpy(),
                      index=neuron_df["bodyId"].to_numpy())
    roi_df = roi_df.assign(mito=np.int64(0))
    is_np = (roi_df["roi"] == NOT_PRIMARY).to_numpy()
    roi_df.loc[is_np, "mito"] = roi_df.loc[is_np, "bodyId"].map(total).fillna(0).astype(np.int64).to_numpy()
    have = set(roi_df.loc[is_np, "bodyId"])
    extra = total[(total > 0) & ~total.index.isin(list(have))]
    if len(extra):
        add = pd.DataFrame({"bodyId": extra.index.to_numpy(np.int64), "roi": NOT_PRIMARY,
                            **{c: np.int64(0) for c in ("pre", "post", "downstream", "upstream")},
                            "mito": extra.to_numpy(np.int64)})
        roi_df = pd.concat([roi_df, add], ignore_index=True).sort_values(["bodyId", "roi"], ignore_index=True)
    return roi_df.astype({"mito": np.int64})


# ----------------------------------------------------------------------------- connectivity


def _pair_weights(conn_df: pd.DataFrame) -> pd.DataFrame:
    return conn_df.groupby(["bodyId_pre", "bodyId_post"], as_index=False, sort=True)["weight"].sum()


@inject_client
def fetch_adjacencies(sources: Any = None, targets: Any = None, rois: Any = None, min_roi_weight: int = 1,
                      min_total_weight: int = 1, include_nonprimary: bool = False,
                      export_dir: str | os.PathLike | None = None, batch_size: int = 200,
                      properties: Any = ("type", "instance"), *, weight_props: Any = "all",
                      omit_rois: bool = False, threads: int = 4, client: Any = None,
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Connections between sources and targets, per ROI (neuprint's ``fetch_adjacencies``).

    Parameters
    ----------
    sources, targets
        Criteria (``None``: every ``Neuron``).
    rois
        Keep only these ROIs' rows (a connection's ROI is its PSD's).
    min_roi_weight, min_total_weight
        Per-(pair, ROI) and per-pair (all ROIs) thresholds.
    include_nonprimary
        Also list super-level ROIs.
    export_dir
        Write ``neurons.csv``, ``roi-connections.csv``, ``total-connections.csv``.
    batch_size, threads
        Accepted; no effect (no server round trips).
    properties
        Neuron columns for ``neuron_df``.
    weight_props
        ``'all'``, ``None`` or names of neuprint-python's weight properties;
        a store has ``weight`` only: others are omitted with a warning.
    omit_rois
        ``conn_df`` with one row per pair (``bodyId_pre, bodyId_post,
        weight``), no ``roi`` column.
    client
        The client.

    Returns
    -------
    neuron_df, conn_df : pandas.DataFrame
        As :func:`connectome_dask.fetch_adjacencies`.

    Raises
    ------
    ValueError
        ``omit_rois`` with ``rois``, ``min_roi_weight`` or ``include_nonprimary``.
    NeuronCriteriaError
        A side's criteria match no neuron (as neuprint-python: also a
        ``RuntimeError``), or an unknown ``weight_props`` name.
    connectome_dask.errors.CriteriaError
        Bad criteria, ROIs or thresholds.

    Examples
    --------
    >>> n, c = fetch_adjacencies("KC.*", None, omit_rois=True, client=Client(conn))
    >>> c.columns.tolist()
    ['bodyId_pre', 'bodyId_post', 'weight']
    """
    if omit_rois:
        if ensure_list(rois):
            raise ValueError("Can't filter by rois when omit_rois=True: "
                             "per-ROI weights are required to filter connections by ROI.")
        if min_roi_weight > 1:
            raise ValueError("Can't use min_roi_weight when omit_rois=True. Use min_total_weight instead.")
        if include_nonprimary:
            raise ValueError("include_nonprimary has no meaning when omit_rois=True.")
    _check_weight_props(weight_props)
    conn = connectome_of(client)
    src, tgt = _nc(sources), _nc(targets)
    for nc, side in ((src, "source"), (tgt, "target")):
        if not nc.is_everything and len(nc.indices(conn)) == 0:
            raise NeuronCriteriaError(f"No neurons match your {side} criteria")
    neuron_df, conn_df = _q.fetch_adjacencies(
        src, tgt, ensure_list(rois) or None, min_roi_weight, min_total_weight,
        include_nonprimary, None, list(ensure_list(properties)), client=conn,
        confidence=_default_threshold(conn))
    neuron_df = _plain(neuron_df)
    if len(conn_df) == 0:  # neuprint-python's empty result
        neuron_df = pd.DataFrame({"bodyId": np.zeros(0, np.int64), "instance": pd.Series([], dtype=object),
                                  "type": pd.Series([], dtype=object)})
    if omit_rois:
        conn_df = _pair_weights(conn_df)
    if export_dir is not None:
        os.makedirs(export_dir, exist_ok=True)
        files = [("neurons.csv", neuron_df), ("total-connections.csv", _pair_weights(conn_df))]
        if not omit_rois:
            files.insert(1, ("roi-connections.csv", conn_df))
        for name, df in files:  # each under a temporary name, then renamed into place
            with atomic_file(os.path.join(export_dir, name)) as tmp:
                df.to_csv(tmp, index=False, header=True)
    return neuron_df, conn_df


@inject_client
def fetch_traced_adjacencies(export_dir: str | os.PathLike | None = None, batch_size: int = 200, *,
                             weight_props: Any = "all", omit_rois: bool = False, threads: int = 4,
                             client: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`fetch_adjacencies` among all ``Traced``, non-cropped Neurons.

    Parameters
    ----------
    export_dir, batch_size, weight_props, omit_rois, threads
        As :func:`fetch_adjacencies`.
    client
        The client.

    Returns
    -------
    neuron_df, conn_df : pandas.DataFrame

    Raises
    ------
    NoDefaultClientError
        No client given and no default client.

    Examples
    --------
    >>> n, c = fetch_traced_adjacencies(client=Client(conn))
    >>> c.columns.tolist()
    ['bodyId_pre', 'bodyId_post', 'roi', 'weight']
    """
    nc = NeuronCriteria(status="Traced", cropped=False)
    return fetch_adjacencies(nc, nc, export_dir=export_dir, omit_rois=omit_rois, client=client)


@inject_client
def fetch_simple_connections(upstream_criteria: Any = None, downstream_criteria: Any = None, rois: Any = None,
                             min_weight: int = 1, properties: Any = ("type", "instance"), *,
                             weight_props: Any = "all", client: Any = None) -> pd.DataFrame:
    """Pairs of connected neurons with their total weight (neuprint's ``fetch_simple_connections``).

    Parameters
    ----------
    upstream_criteria, downstream_criteria
        Criteria; at least one must be given.
    rois
        Keep pairs that have connections in any of these ROIs (the weight
        stays the pair's total).
    min_weight
        Minimum total weight of a pair.
    properties
        Neuron columns appended as ``<p>_pre`` / ``<p>_post``.
    weight_props
        As :func:`fetch_adjacencies`.
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        ``bodyId_pre, bodyId_post, weight, <p>_pre, <p>_post ..., conn_roiInfo``
        (``{roi: {"pre", "post"}}`` of the pair, any ROI level), sorted by
        weight descending, then ``bodyId_pre``, ``bodyId_post``.

    Raises
    ------
    connectome_dask.errors.CriteriaError
        Neither criteria given, or bad criteria / ROIs; an unknown
        ``weight_props`` name (:class:`NeuronCriteriaError`, an ``AssertionError``).

    Examples
    --------
    >>> df = fetch_simple_connections("KC.*", None, client=Client(conn))
    >>> df.columns.tolist()[:4], bool(df.weight.is_monotonic_decreasing)
    (['bodyId_pre', 'bodyId_post', 'weight', 'type_pre'], True)
    """
    if upstream_criteria is None and downstream_criteria is None:
        raise CriteriaError("Must provide either upstream_criteria or downstream_criteria (or both).")
    _check_weight_props(weight_props)
    conn = connectome_of(client)
    rois_l = ensure_list(rois)
    props = list(ensure_list(properties))
    _, roi_df = _q.fetch_adjacencies(_nc(upstream_criteria), _nc(downstream_criteria), None, 1, 1,
                                     True, None, [], client=conn,
                                     confidence=_default_threshold(conn))
    model = RoiModel.of(conn)
    prim = roi_df[~roi_df["roi"].isin(set(model.all_rois) - set(model.primary))] if model else roi_df
    tot = _pair_weights(prim)
    tot = tot[tot["weight"] >= min_weight]
    named = roi_df[roi_df["roi"] != NOT_PRIMARY]
    info: dict[tuple[int, int], dict] = {}
    for a, b, r, w in named[["bodyId_pre", "bodyId_post", "roi", "weight"]].itertuples(index=False):
        info.setdefault((int(a), int(b)), {})[r] = {"pre": int(w), "post": int(w)}
    tot["conn_roiInfo"] = [info.get((int(a), int(b)), {}) for a, b in zip(tot["bodyId_pre"], tot["bodyId_post"], strict=False)]
    if rois_l:
        want = set(rois_l)
        tot = tot[[bool(want & set(d)) for d in tot["conn_roiInfo"]]]
    tot = tot.sort_values(["weight", "bodyId_pre", "bodyId_post"], ascending=[False, True, True],
                          ignore_index=True)
    if props:
        table = _plain(conn.neurons)
        if "roiInfo" in props:
            bodies = sorted(set(tot["bodyId_pre"]) | set(tot["bodyId_post"]))
            per_body = fetch_neurons(NeuronCriteria(bodyId=bodies, label="Segment"), client=client)[0] \
                if bodies else pd.DataFrame({"bodyId": [], "roiInfo": []})
            table = table.merge(per_body[["bodyId", "roiInfo"]], "left", on="bodyId")
        tot = merge_neuron_properties(table, tot, props)
        order = ["bodyId_pre", "bodyId_post", "weight"]
        for p in props:
            order += [f"{p}_pre", f"{p}_post"]
        tot = tot[[*order, "conn_roiInfo"]]
    return tot


@inject_client
def fetch_common_connectivity(criteria: Any, search_direction: str = "upstream", min_weight: int = 1,
                              properties: Any = ("type", "instance"), *, weight_props: Any = "all",
                              client: Any = None) -> pd.DataFrame:
    """Partners shared by every neuron of ``criteria`` (neuprint's ``fetch_common_connectivity``).

    Parameters
    ----------
    criteria
        The neurons whose common partners are wanted.
    search_direction
        ``'upstream'`` (common inputs) or ``'downstream'`` (common outputs).
    min_weight
        Minimum weight of each counted connection.
    properties, weight_props
        As :func:`fetch_simple_connections`.
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        The connections (as :func:`fetch_simple_connections`) between the
        common partners and the queried neurons.

    Raises
    ------
    connectome_dask.errors.CriteriaError
        Bad ``search_direction`` or criteria.

    Examples
    --------
    >>> df = fetch_common_connectivity("KC.*", "downstream", client=Client(conn))
    >>> "bodyId_post" in df.columns
    True
    """
    if search_direction not in ("upstream", "downstream"):
        raise CriteriaError(f"search_direction must be 'upstream' or 'downstream', got {search_direction!r}")
    conn = connectome_of(client)
    nc = _nc(criteria)
    n_query = len(nc.indices(conn))
    if search_direction == "upstream":
        edges = fetch_simple_connections(None, nc, min_weight=min_weight, properties=properties,
                                         weight_props=weight_props, client=client)
        partner, query = "bodyId_pre", "bodyId_post"
    else:
        edges = fetch_simple_connections(nc, None, min_weight=min_weight, properties=properties,
                                         weight_props=weight_props, client=client)
        partner, query = "bodyId_post", "bodyId_pre"
    n_hit = edges.groupby(partner)[query].nunique()
    common = n_hit[n_hit == n_query].index
    return edges[edges[partner].isin(common)].reset_index(drop=True)


def _paths(client: Any, upstream_bodyId: int, downstream_bodyId: int, min_weight: int,
           intermediate_criteria: Any, path_length: int | None, max_path_length: int | None) -> pd.DataFrame:
    import networkx as nx

    conn = connectome_of(client)
    nc = NeuronCriteria(status="Traced") if intermediate_criteria is None else _nc(intermediate_criteria)
    if nc.inputRois or nc.outputRois:
        raise CriteriaError("This function doesn't support search criteria that specifies inputRois or outputRois.")
    ok = set(conn.neurons["bodyId"].to_numpy()[nc.indices(conn)].tolist()) | {int(upstream_bodyId),
                                                                             int(downstream_bodyId)}
    n, c = _q.fetch_adjacencies(None, None, None, 1, 1, False, None, ["type"], client=conn,
                                confidence=_default_threshold(conn))
    w = _pair_weights(c)
    w = w[(w["weight"] >= min_weight) & w["bodyId_pre"].isin(ok) & w["bodyId_post"].isin(ok)]
    g = nx.DiGraph()
    g.add_weighted_edges_from(w[["bodyId_pre", "bodyId_post", "weight"]].itertuples(index=False))
    types = conn.neurons.set_index("bodyId")["type"]
    src, dst = int(upstream_bodyId), int(downstream_bodyId)
    paths: list[list[int]] = []
    if src in g and dst in g:
        try:
            if path_length is None and max_path_length is None:
                paths = list(nx.all_shortest_paths(g, src, dst))
            else:
                cutoff = path_length if path_length is not None else max_path_length
                paths = [p for p in nx.all_simple_paths(g, src, dst, cutoff=cutoff)
                         if path_length is None or len(p) - 1 == path_length]
        except nx.NetworkXNoPath:
            paths = []
    rows = []
    for i, p in enumerate(paths):
        for j, b in enumerate(p):
            wt = 0 if j == 0 else int(g[p[j - 1]][b]["weight"])
            row = {"path": i, "bodyId": b, "type": types.get(b), "weight": wt}
            if path_length is not None or max_path_length is not None:
                row["path_length"] = len(p) - 1
            rows.append(row)
    cols = ["path", "bodyId", "type", "weight"] + ([] if path_length is None and max_path_length is None
                                                   else ["path_length"])
    return pd.DataFrame(rows, columns=cols).astype({"path": np.int64, "bodyId": np.int64, "weight": np.int64})


@inject_client
def fetch_shortest_paths(upstream_bodyId: int, downstream_bodyId: int, min_weight: int = 1,
                         intermediate_criteria: Any = None, timeout: float = 5.0, *,
                         client: Any = None) -> pd.DataFrame:
    """All shortest paths from one body to another (neuprint's ``fetch_shortest_paths``).

    Parameters
    ----------
    upstream_bodyId, downstream_bodyId
        Start and end bodies.
    min_weight
        Minimum total weight of each step.
    intermediate_criteria
        Bodies a path may pass through (default ``NeuronCriteria(status='Traced')``).
    timeout
        Accepted; no effect.
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        ``path, bodyId, type, weight`` (weight of the step into the body; 0 first).

    Raises
    ------
    connectome_dask.errors.CriteriaError
        ``intermediate_criteria`` with inputRois / outputRois.

    Examples
    --------
    >>> fetch_shortest_paths(1, 2, client=Client(conn)).columns.tolist()
    ['path', 'bodyId', 'type', 'weight']
    """
    return _paths(client, upstream_bodyId, downstream_bodyId, min_weight, intermediate_criteria, None, None)


@inject_client
def fetch_paths(upstream_bodyId: int, downstream_bodyId: int, min_weight: int = 1,
                intermediate_criteria: Any = None, timeout: float = 5.0, *, path_length: int | None = None,
                max_path_length: int | None = None, client: Any = None) -> pd.DataFrame:
    """Paths of a given or maximum length (default: shortest) from one body to another.

    Parameters
    ----------
    upstream_bodyId, downstream_bodyId, min_weight, intermediate_criteria, timeout
        As :func:`fetch_shortest_paths`.
    path_length, max_path_length
        Exact or maximum number of steps (not both).
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        ``path, bodyId, type, weight`` and ``path_length`` unless shortest.

    Raises
    ------
    ValueError
        Both ``path_length`` and ``max_path_length``, or a non-integer ``path_length``.

    Examples
    --------
    >>> fetch_paths(1, 2, path_length=2, client=Client(conn)).columns.tolist()
    ['path', 'bodyId', 'type', 'weight', 'path_length']
    """
    if path_length is not None and max_path_length is not None:
        raise ValueError("Please specify either 'path_length' or 'max_path_length', but not both.")
    if path_length is not None:
        try:
            path_length = int(path_length)
        except (TypeError, ValueError):
            raise ValueError(f"Invalid path_length: {path_length}. "
                             "Please specify an integer value for path_length.") from None
    return _paths(client, upstream_bodyId, downstream_bodyId, min_weight, intermediate_criteria,
                  path_length, max_path_length)


# ----------------------------------------------------------------------------- synapses


@inject_client
def fetch_synapses(neuron_criteria: Any, synapse_criteria: SynapseCriteria | None = None, batch_size: int = 10,
                   *, nt: Any = None, client: Any = None) -> pd.DataFrame:
    """Synaptic sites of a set of bodies (neuprint's ``fetch_synapses``).

    Parameters
    ----------
    neuron_criteria
        The bodies.
    synapse_criteria
        :class:`SynapseCriteria` (default confidence, primary ROIs).
    batch_size
        Accepted; no effect.
    nt
        Neurotransmitter columns: not in a store; must be ``None``.
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        ``bodyId, type, roi, x, y, z, confidence``; ``type`` categorical
        (``pre``, ``post``) as in neuprint-python; positions in the store's
        units (float32).

    Raises
    ------
    NotImplementedError
        ``nt`` given.

    Examples
    --------
    >>> fetch_synapses("KC.*", client=Client(conn)).columns.tolist()
    ['bodyId', 'type', 'roi', 'x', 'y', 'z', 'confidence']
    """
    if nt is not None:
        raise NotImplementedError("fetch_synapses(nt=...): the store has no neurotransmitter predictions")
    syn = _q.fetch_synapses(_nc(neuron_criteria), synapse_criteria, client=connectome_of(client))
    syn["type"] = pd.Categorical(syn["type"], categories=["pre", "post"])  # neuprint-python's dtype
    return _roi_str(syn, ["roi"])


@inject_client
def fetch_synapse_connections(source_criteria: Any = None, target_criteria: Any = None,
                              synapse_criteria: SynapseCriteria | None = None, min_total_weight: int = 1,
                              batch_size: int = 10_000, *, nt: Any = None, client: Any = None) -> pd.DataFrame:
    """Synapse-level connections between sources and targets (neuprint's function).

    Parameters
    ----------
    source_criteria, target_criteria
        Criteria (at least one).
    synapse_criteria
        :class:`SynapseCriteria`.
    min_total_weight
        Minimum pair weight.
    batch_size
        Accepted; no effect.
    nt
        Must be ``None`` (no neurotransmitter predictions in a store).
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        ``bodyId_pre, bodyId_post, roi_pre, roi_post, x_pre, y_pre, z_pre,
        x_post, y_post, z_post, confidence_pre, confidence_post``.

    Raises
    ------
    NotImplementedError
        ``nt`` given.
    connectome_dask.errors.CriteriaError
        Neither criteria given.

    Examples
    --------
    >>> fetch_synapse_connections("KC.*", client=Client(conn)).columns.tolist()[:4]
    ['bodyId_pre', 'bodyId_post', 'roi_pre', 'roi_post']
    """
    if nt is not None:
        raise NotImplementedError("fetch_synapse_connections(nt=...): the store has no neurotransmitter predictions")
    src = None if source_criteria is None else _nc(source_criteria)
    tgt = None if target_criteria is None else _nc(target_criteria)
    out = _q.fetch_synapse_connections(src, tgt, synapse_criteria, min_total_weight,
                                       client=connectome_of(client))
    return _roi_str(out, ["roi_pre", "roi_post"])


@inject_client
def fetch_mean_synapses(neuron_criteria: Any, synapse_criteria: SynapseCriteria | None = None,
                        batch_size: int = 100, *, by_roi: bool = True, client: Any = None) -> pd.DataFrame:
    """Mean synapse position and confidence per body, (ROI) and site type.

    Parameters
    ----------
    neuron_criteria
        The bodies.
    synapse_criteria
        :class:`SynapseCriteria`.
    batch_size
        Accepted; no effect.
    by_roi
        One row per (body, ROI, type) instead of per (body, type).
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        ``bodyId, [roi,] type, count, x, y, z, confidence``; ``type``
        categorical (``pre``, ``post``), ``count`` int32, coordinates float32.

    Raises
    ------
    connectome_dask.errors.CriteriaError
        ``by_roi`` not a bool.

    Examples
    --------
    >>> fetch_mean_synapses("KC.*", client=Client(conn)).columns.tolist()
    ['bodyId', 'roi', 'type', 'count', 'x', 'y', 'z', 'confidence']
    """
    if by_roi not in (True, False):
        raise CriteriaError("by_roi should be boolean")
    syn = fetch_synapses(neuron_criteria, synapse_criteria, client=client)
    keys = ["bodyId", "roi", "type"] if by_roi else ["bodyId", "type"]
    g = syn.groupby(keys, sort=True, dropna=False, observed=True)
    out = g[["x", "y", "z", "confidence"]].mean().reset_index()
    out.insert(len(keys), "count", g.size().to_numpy().astype(np.int32))
    out["type"] = pd.Categorical(out["type"].astype(object), categories=["pre", "post"])
    return out.astype({"x": np.float32, "y": np.float32, "z": np.float32, "bodyId": np.int64})


# ----------------------------------------------------------------------------- reconstruction


@inject_client
def fetch_output_completeness(criteria: Any, complete_statuses: Sequence[str] = ("Traced",),
                              batch_size: int = 1000, *, client: Any = None) -> pd.DataFrame:
    """Fraction of each body's output connections onto bodies of a complete status.

    Parameters
    ----------
    criteria
        The bodies.
    complete_statuses
        Statuses (``status`` or ``statusLabel``) that count as complete.
    batch_size
        Accepted; no effect.
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        ``bodyId, total_weight, traced_weight, untraced_weight, completeness``
        for bodies with outputs.

    Raises
    ------
    connectome_dask.errors.CriteriaError
        Bad criteria.

    Examples
    --------
    >>> fetch_output_completeness("KC.*", client=Client(conn)).columns.tolist()
    ['bodyId', 'total_weight', 'traced_weight', 'untraced_weight', 'completeness']
    """
    conn = connectome_of(client)
    _, c = _q.fetch_adjacencies(_nc(criteria), None, None, 1, 1, False, None, [], client=conn,
                                confidence=_default_threshold(conn))
    w = _pair_weights(c)
    n = conn.neurons
    done = n["status"].isin(list(complete_statuses)) if "status" in n.columns else pd.Series(False, index=n.index)
    if "statusLabel" in n.columns:
        done |= n["statusLabel"].isin(list(complete_statuses))
    complete = set(n.loc[done.to_numpy(bool), "bodyId"].tolist())
    w["traced"] = np.where(w["bodyId_post"].isin(complete), w["weight"], 0)
    out = w.groupby("bodyId_pre").agg(total_weight=("weight", "sum"), traced_weight=("traced", "sum"))
    out = out.reset_index().rename(columns={"bodyId_pre": "bodyId"})
    out["untraced_weight"] = out["total_weight"] - out["traced_weight"]
    out["completeness"] = out["traced_weight"] / out["total_weight"]
    return out[["bodyId", "total_weight", "traced_weight", "untraced_weight", "completeness"]]


@inject_client
def fetch_downstream_orphan_tasks(criteria: Any, complete_statuses: Sequence[str] = ("Traced",), *,
                                  client: Any = None) -> pd.DataFrame:
    """Downstream partners not yet complete, strongest first, with the completeness each would add.

    Parameters
    ----------
    criteria
        The upstream bodies.
    complete_statuses
        Statuses that count as complete.
    client
        The client.

    Returns
    -------
    pandas.DataFrame
        ``bodyId_pre, bodyId_post, orphan_weight, status_post, total_weight,
        orig_traced_weight, orig_untraced_weight, orig_completeness,
        cum_orphan_weight, cum_completeness``.

    Raises
    ------
    connectome_dask.errors.CriteriaError
        Bad criteria.

    Examples
    --------
    >>> "cum_completeness" in fetch_downstream_orphan_tasks("KC.*", client=Client(conn)).columns
    True
    """
    conn = connectome_of(client)
    _, c = _q.fetch_adjacencies(_nc(criteria), None, None, 1, 1, False, None, [], client=conn,
                                confidence=_default_threshold(conn))
    w = _pair_weights(c).sort_values(["bodyId_pre", "weight", "bodyId_post"], ascending=[True, False, True],
                                     ignore_index=True)
    n = conn.neurons
    cols = ["bodyId"] + [k for k in ("status", "statusLabel") if k in n.columns]
    w = w.merge(n[cols], left_on="bodyId_post", right_on="bodyId").drop(columns="bodyId")
    st = list(complete_statuses)
    keep = ~(w["status"].isin(st) if "status" in w.columns else False)
    if "statusLabel" in w.columns:
        keep &= ~w["statusLabel"].isin(st)
    w = w[keep].rename(columns={"status": "status_post", "weight": "orphan_weight"})
    w = w.drop(columns=[c for c in ("statusLabel",) if c in w.columns])
    comp = fetch_output_completeness(criteria, complete_statuses, client=client).rename(
        columns={"completeness": "orig_completeness", "traced_weight": "orig_traced_weight",
                 "untraced_weight": "orig_untraced_weight"})
    w = w.merge(comp, "left", left_on="bodyId_pre", right_on="bodyId").drop(columns=["bodyId"])
    w["cum_orphan_weight"] = w.groupby("bodyId_pre")["orphan_weight"].cumsum()
    w["cum_completeness"] = (w["orig_traced_weight"] + w["cum_orphan_weight"]) / w["total_weight"]
    return w.reset_index(drop=True)


# every query function is also a Client method (neuprint-python's Client has them as methods too)
_bind_methods({name: globals()[name] for name in __all__ if name.startswith("fetch_") and name != "fetch_custom"})
