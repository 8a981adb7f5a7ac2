"""THE read-path rule: how a computation reads the synapse rows it needs.

Four ways to read:

``index``
    Only the rows of the selected bodies, through the store's per-body index
    (outputs of presynaptic bodies are contiguous row ranges, inputs of
    postsynaptic bodies contiguous ranges of the post-ordered copies): no scan.
``table``
    The store's connection table (``index.zarr/pairs``, one row per connected
    neuron pair, ~6x fewer rows than synapses). Only for neuron-pair counts
    without a per-synapse filter (no ROI, no confidence, not by ROI).
``roi_table``
    The store's per-ROI connection table (``index.zarr/roi_pairs*``, one row
    per ``(pre, post, roi)`` keyed on ``roi_post``, ~4x fewer rows than
    synapses). For counts with a ROI filter and/or split by ROI but no
    confidence filter (confidence needs the synapse rows).
``roi_major``
    The per-ROI connection table's ROI-major copy (``index.zarr/roi_pairs*/by_roi``):
    the selected ROIs' runs and (with a confidence filter) the confidences of
    their synapse rows only. For pair and grouped counts with a ROI filter
    and a confidence filter, or a ROI filter alone on ROIs holding at most
    :data:`ROI_MAJOR_SHARE` of the copy's runs (not split by ROI), on stores
    whose copy matches their ``roi_post`` and confidence columns.
``pairs_scan``
    The connection table's pairs with only the *filter* columns of their
    synapse rows (``confidence``, ``roi_post``): a pair's rows are the next
    ``weight`` rows of the (pre, post)-sorted arrays, so the per-row ``pre`` /
    ``post`` columns are never read. For counts the tables cannot answer (a
    confidence filter; a ROI filter without a per-ROI table) on stores of
    synapse rows.
``scan``
    Every partition of the synapse arrays, in parallel (dask), reduced in a tree.

:func:`plan_read` is the one place that chooses; pair counts, grouped counts,
synapse-level queries and ROI criteria all ask it. The decision and its
reason are logged at DEBUG level on the ``connectome_dask.compute`` logger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .. import config

if TYPE_CHECKING:
    from ..store import Connectome

__all__ = ["Plan", "plan_read", "METHODS", "INDEX_PATH_FRACTION", "INDEX_ROWS_LIMIT", "ROI_MAJOR_SHARE"]

logger = logging.getLogger("connectome_dask.compute")

#: accepted values of ``method=``
METHODS = ("auto", "index", "table", "roi_table", "roi_major", "pairs_scan", "scan")

#: counts (``what="counts"``): read through the index when the smaller side's
#: rows are at most this fraction of the table
INDEX_PATH_FRACTION = 0.05

#: synapse rows (``what="rows"``): read through the index when at most this many rows
INDEX_ROWS_LIMIT = 2_000_000

#: a ROI filter without a confidence filter reads the ROI-major copy (the selected ROIs' runs only)
#: when those ROIs hold at most this share of its runs; above it the per-ROI table's one pass over
#: every row costs less (the copy's runs are many small reads, and pair counts sort them to sum a
#: pair's ROIs). Measured at 20M synapses, 75 ROIs, threads, best of 5 (copy / table, s): share 0.20
#: pairs 0.064 / 0.080, types 0.071 / 0.119; 0.26: 0.079 / 0.077, 0.072 / 0.079; 0.35: 0.104 / 0.107,
#: 0.090 / 0.071; 0.49: 0.111 / 0.088, 0.093 / 0.083; 1.0: 0.260 / 0.140, 0.196 / 0.089
ROI_MAJOR_SHARE = 0.25


@dataclass(frozen=True)
class Plan:
    """A chosen read path (made by :func:`plan_read`).

    Parameters
    ----------
    method
        ``"index"``, ``"table"``, ``"roi_table"``, ``"roi_major"``, ``"pairs_scan"`` or ``"scan"``.
    reason
        Why, in words (also logged).
    side
        For ``index``: ``"pre"`` or ``"post"`` (read that side's bodies) or
        ``"both"`` (read both and take the union); ``None`` otherwise.
    rows
        Estimated synapse rows the index read touches (``None`` when no side
        is restricted).

    Attributes
    ----------
    method, reason, side, rows
        As given.
    """

    method: str
    reason: str
    side: str | None = None
    rows: int | None = None


def _estimates(conn: Connectome, pre: np.ndarray | None, post: np.ndarray | None) -> dict[str, int]:
    est: dict[str, int] = {}
    for side, idx in (("pre", pre), ("post", post)):
        if idx is not None:
            est[side] = int(conn.neurons[side].to_numpy()[idx].sum())
    return est


def plan_read(
    conn: Connectome,
    *,
    pre: np.ndarray | None = None,
    post: np.ndarray | None = None,
    what: Literal["counts", "rows"] = "counts",
    either: bool = False,
    by_roi: bool = False,
    roi_filter: bool = False,
    confidence: bool = False,
    output: bool = False,
    method: str = "auto",
    roi_none: bool = False,
    roi_share: float | None = None,
) -> Plan:
    """Choose how to read the synapse rows of a selection.

    The rule (``method="auto"``), with ``est(side)`` the number of synapse
    rows of the selected bodies on that side (``conn.neurons.pre`` /
    ``.post`` summed):

    1. ``output`` (results written out of core): ``scan``.
    2. ``what="counts"`` (neuron-pair and grouped counts): ``index`` when at
       least one side is restricted and the smaller ``est`` is at most
       :data:`INDEX_PATH_FRACTION` of all rows (ties read ``pre``); otherwise
       ``table`` when the dask config ``connectome_dask.use_pair_table`` is
       true, the store has a connection table and there is no ROI filter, no
       confidence filter and no ``by_roi``; otherwise ``roi_major`` when
       there is a ROI filter alone (no confidence filter, no ``by_roi``)
       whose ROIs hold at most :data:`ROI_MAJOR_SHARE` of the ROI-major
       copy's runs (``roi_share``) and the copy and the switch below are as
       for ``roi_major`` further down; otherwise ``roi_table`` when
       there is a ROI filter or ``by_roi`` but no confidence filter, the
       store has a per-ROI connection table matching its ``roi_post`` column
       (:attr:`Connectome.has_roi_pair_table`) and the dask config
       ``connectome_dask.use_roi_pair_table`` is true; otherwise
       ``roi_major`` when there is a ROI filter and a confidence filter, no
       ``by_roi``, the store's ROI-major copy matches its ``roi_post`` and
       confidence columns and ``connectome_dask.use_roi_pair_table`` is
       true; otherwise ``pairs_scan`` when the store has a connection table, holds synapse
       rows (no weight column) and ``connectome_dask.use_pair_table`` is
       true; otherwise ``scan``.
    3. ``what="rows"`` (synapse-level rows, per-neuron ROI counts): with
       ``either`` (rows with pre in ``pre`` *or* post in ``post``) ``index``
       when both sides are given and ``est(pre) + est(post)`` is at most
       :data:`INDEX_ROWS_LIMIT`; without ``either`` ``index`` when a side is
       restricted and the smaller ``est`` is at most that limit; otherwise
       ``scan`` (never ``table``: it has no synapse rows).

    Parameters
    ----------
    conn
        The connectome.
    pre, post
        Dense neuron indices of each side (``None`` = every neuron).
    what
        ``"counts"`` or ``"rows"``, see above.
    either
        Rows match when *either* side matches (``what="rows"`` only).
    by_roi, roi_filter, confidence
        The counts are split by ROI / filtered by ROI / by confidence (these
        rule out the connection table; confidence also the per-ROI table).
    output
        The result is written out of core, partition by partition.
    roi_none
        The ROI filter keeps rows in no ROI (code -1) too: the ROI-major copy
        has none of them.
    roi_share
        The selected ROIs' share of the ROI-major copy's runs
        (:func:`~connectome_dask.compute.roi_major.roi_major_share`; ``None``
        = not known: a ROI filter alone then reads the per-ROI table).
    method
        ``"auto"`` (the rule above), or force ``"index"``, ``"table"``,
        ``"roi_table"``, ``"roi_major"``, ``"pairs_scan"`` or ``"scan"``.

    Returns
    -------
    Plan
        The method, the reason, the index side and the row estimate.

    Raises
    ------
    ValueError
        ``method`` is unknown, or the forced method cannot answer this
        request (``index`` with no restricted side, ``table`` with a filter,
        for rows, without a connection table, or with ``output``;
        ``roi_table`` with a confidence filter, for rows, with ``output``, or
        without a per-ROI connection table; ``roi_major`` without both
        filters, split by ROI, for rows, with ``output`` or without a current
        ROI-major copy; ``pairs_scan`` for rows, with
        ``output``, without a connection table or on a connection-level store).

    Examples
    --------
    >>> plan_read(conn).method  # whole brain, no filter: the connection table
    'table'
    >>> p = plan_read(conn, pre=np.array([0]))
    >>> p.method, p.side
    ('index', 'pre')
    >>> plan_read(conn, roi_filter=True).method  # a ROI filter: the per-ROI connection table
    'roi_table'
    >>> plan_read(conn, roi_filter=True, roi_share=0.1).method  # a few ROIs: only their runs
    'roi_major'
    >>> plan_read(conn, confidence=True).method  # the pairs, and only the confidence of their rows
    'pairs_scan'
    >>> plan_read(conn, by_roi=True, confidence=True, method="scan").reason
    'forced'
    >>> plan_read(conn, pre=np.array([0]), method="scan").method
    'scan'
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    est = _estimates(conn, pre, post)
    plan = _choose(conn, est, what, either, by_roi, roi_filter, confidence, output, method, roi_none, roi_share)
    logger.debug("read plan: %s (%s)%s", plan.method, plan.reason,
                 "" if method == "auto" else f" [method={method!r}]", extra={"plan": plan})
    return plan


def _index_side(est: dict[str, int], either: bool) -> tuple[str, int]:
    if either:
        return "both", sum(est.values())
    side = min(est, key=lambda s: est[s])  # "pre" first: ties read pre
    return side, est[side]


def _table_blocker(conn: Connectome, by_roi: bool, roi_filter: bool, confidence: bool) -> str | None:
    if by_roi:
        return "the connection table has no counts by ROI"
    if roi_filter:
        return "the connection table cannot apply a ROI filter"
    if confidence:
        return "the connection table cannot apply a confidence filter"
    if not conn.has_pair_table:
        return "the store has no connection table"
    return None


def _roi_table_blocker(conn: Connectome, confidence: bool) -> str | None:
    if confidence:
        return "the per-ROI connection table cannot apply a confidence filter"
    if not conn.has_roi_pair_table:
        return "the store has no per-ROI connection table for its roi_post column"
    return None


def _roi_major_blocker(conn: Connectome, by_roi: bool, roi_filter: bool, confidence: bool,
                       roi_none: bool) -> str | None:
    from ..store.roi_major import copy_columns

    if not roi_filter:
        return "the ROI-major copy is for a ROI filter"
    if roi_none:
        return "the ROI-major copy has no rows in no ROI"
    if by_roi:
        return "the ROI-major copy does not split counts by ROI"
    if conn.roi_major_paths(copy_columns(conn.synapse_columns)) is None:
        return "the store has no ROI-major copy for its roi_post and confidence columns"
    return None


def _pairs_scan_blocker(conn: Connectome) -> str | None:
    if not conn.has_pair_table:
        return "the store has no connection table"
    if conn.weight_column:
        return "the store's rows are weighted connections, not synapses"
    if not bool(config.get("use_pair_table", True)):
        return "dask config connectome_dask.use_pair_table is false"
    return None


def _choose(conn, est, what, either, by_roi, roi_filter, confidence, output, method, roi_none, roi_share) -> Plan:
    if what not in ("counts", "rows"):
        raise ValueError(f"what must be 'counts' or 'rows', got {what!r}")
    if output:
        if method not in ("auto", "scan"):
            raise ValueError(f"method={method!r}: out-of-core output is written by a scan")
        return Plan("scan", "out-of-core output is written partition by partition")
    indexable = bool(est) and (not either or len(est) == 2)
    if method == "index":
        if not indexable:
            raise ValueError("method='index' needs a restricted side" + (" on both sides" if either else ""))
        side, rows = _index_side(est, either)
        return Plan("index", "forced", side, rows)
    if method == "table":
        blocker = "synapse rows are not in the connection table" if what == "rows" else \
            _table_blocker(conn, by_roi, roi_filter, confidence)
        if blocker:
            raise ValueError(f"method='table' is not possible: {blocker}")
        return Plan("table", "forced")
    if method == "roi_table":
        blocker = "synapse rows are not in the per-ROI connection table" if what == "rows" else \
            _roi_table_blocker(conn, confidence)
        if blocker:
            raise ValueError(f"method='roi_table' is not possible: {blocker}")
        return Plan("roi_table", "forced")
    if method == "roi_major":
        blocker = "synapse rows are not in the ROI-major copy" if what == "rows" else \
            _roi_major_blocker(conn, by_roi, roi_filter, confidence, roi_none)
        if blocker:
            raise ValueError(f"method='roi_major' is not possible: {blocker}")
        return Plan("roi_major", "forced")
    if method == "pairs_scan":
        blocker = "synapse rows are not in the connection table" if what == "rows" else _pairs_scan_blocker(conn)
        if blocker:
            raise ValueError(f"method='pairs_scan' is not possible: {blocker}")
        return Plan("pairs_scan", "forced")
    if method == "scan":
        return Plan("scan", "forced")
    n = max(conn.n_synapses, 1)
    if indexable:
        side, rows = _index_side(est, either)
        if what == "counts":
            limit, lim_s = INDEX_PATH_FRACTION * n, f"{INDEX_PATH_FRACTION:g} of {n:,} rows"
        else:
            limit, lim_s = INDEX_ROWS_LIMIT, f"the limit of {INDEX_ROWS_LIMIT:,} rows"
        if rows <= limit:
            return Plan("index", f"the selection's {rows:,} rows ({side}) are within {lim_s}", side, rows)
        why = f"the selection's {rows:,} rows ({side}) exceed {lim_s}"
    else:
        why = "no side restricted" if not est else "rows of either side need both sides restricted"
    if what == "rows":
        return Plan("scan", why, None, None)
    blocker = _table_blocker(conn, by_roi, roi_filter, confidence)
    if blocker is None and not bool(config.get("use_pair_table", True)):
        blocker = "dask config connectome_dask.use_pair_table is false"
    if blocker is None:
        return Plan("table", f"{why}; unfiltered pair counts come from the connection table")
    if by_roi or roi_filter:
        roi_blocker = _roi_table_blocker(conn, confidence)
        if roi_blocker is None and not bool(config.get("use_roi_pair_table", True)):
            roi_blocker = "dask config connectome_dask.use_roi_pair_table is false"
        if roi_blocker is None and roi_share is not None and roi_share <= ROI_MAJOR_SHARE \
                and _roi_major_blocker(conn, by_roi, roi_filter, confidence, roi_none) is None:
            return Plan("roi_major", f"{why}; {blocker}: the selected ROIs hold {roi_share:.0%} of the ROI-major "
                        f"copy's runs (at most {ROI_MAJOR_SHARE:.0%}): their runs only")
        if roi_blocker is None:
            return Plan("roi_table", f"{why}; {blocker}: the per-ROI connection table answers it")
        if bool(config.get("use_roi_pair_table", True)) \
                and _roi_major_blocker(conn, by_roi, roi_filter, confidence, roi_none) is None:
            return Plan("roi_major", f"{why}; {blocker}; {roi_blocker}: the ROI-major copy holds the selected "
                        "ROIs' runs and their rows' confidences")
        blocker = f"{blocker}; {roi_blocker}"
    scan_blocker = _pairs_scan_blocker(conn)
    if scan_blocker is None:
        return Plan("pairs_scan", f"{why}; {blocker}: the connection table's pairs with their rows' filter columns")
    if scan_blocker not in blocker:  # e.g. "the store has no connection table", said once
        blocker = f"{blocker}; {scan_blocker}"
    return Plan("scan", f"{why}; {blocker}")
