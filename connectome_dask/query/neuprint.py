"""neuPrint-style queries on a local store: ``fetch_*`` and neuprint-python's table utilities.

See :mod:`connectome_dask.queries` for the conventions (connection ROI, weights, NotPrimary).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._fsutil import atomic_file, scratch_dir
from .._memory import release_unused_memory
from ..compute.dense import max_result_bytes
from ..compute.pairs import pair_counts as _index_pair_counts
from ..criteria import (
    NOT_PRIMARY,
    CriteriaError,
    NeuronCriteria,
    RoiModel,
    SynapseCriteria,
    UnknownColumnError,
    neuron_roi_table,
)
from ..errors import ResultTooLarge
from ..kernels.pairs import mark_neurons, pair_rows_by_weight

if TYPE_CHECKING:
    from ..store import Connectome

from ._common import _conf_col, _conn, _crit, _select_rows

logger = logging.getLogger("connectome_dask.query")

__all__ = [
    "fetch_neurons",
    "fetch_adjacencies",
    "fetch_traced_adjacencies",
    "fetch_synapses",
    "fetch_synapse_connections",
    "merge_neuron_properties",
    "connection_table_to_matrix",
]

# ----------------------------------------------------------------------------- fetch_neurons

_NEURON_FIRST = ["bodyId", "instance", "type", "pre", "post", "downstream", "upstream", "status", "cropped"]


def _roi_counts_long(conn: Connectome, idx: np.ndarray) -> pd.DataFrame:
    """roi_counts_df for neurons ``idx``: every ROI level + NotPrimary, zero rows dropped."""
    model = RoiModel.of(conn)
    n = conn.neurons
    body = n["bodyId"].to_numpy()
    cols = ["pre", "post", "downstream", "upstream"]
    empty = pd.DataFrame({"bodyId": np.zeros(0, np.int64), "roi": pd.Series([], dtype=object),
                          **{c: np.zeros(0, np.int64) for c in cols}})
    if len(idx) == 0:
        return empty
    tot = pd.DataFrame({"index": idx.astype(np.int64), "pre": n["pre"].to_numpy()[idx],
                        "post": n["post"].to_numpy()[idx]})
    tot["downstream"] = tot["pre"]
    tot["upstream"] = tot["post"]
    if model and "roi_post" in conn.synapse_columns:
        table = neuron_roi_table(conn, idx)
        prim = table[table["roi"].isin(model.primary)].groupby("index")[cols].sum()
        np_ = tot.set_index("index")[cols].sub(prim.reindex(tot["index"]).fillna(0).astype(np.int64))
        np_ = np_.reset_index()
    else:
        table = empty.rename(columns={"bodyId": "index"})
        np_ = tot.copy()
    np_["roi"] = NOT_PRIMARY
    out = pd.concat([table, np_[["index", "roi", *cols]]], ignore_index=True)
    out = out[(out[cols] != 0).any(axis=1)]
    out.insert(0, "bodyId", body[out["index"].to_numpy()])
    out = out.drop(columns="index").astype({c: np.int64 for c in cols})
    return out.sort_values(["bodyId", "roi"], ignore_index=True)


def fetch_neurons(criteria: Any = None, *, client: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Neuron properties and per-ROI synapse counts (neuPrint's ``fetch_neurons``).

    Parameters
    ----------
    criteria
        :class:`NeuronCriteria`, body ID(s), type/instance string(s), a
        DataFrame with ``bodyId``, or None (all neurons).
    client
        A :class:`~connectome_dask.Connectome` (from :func:`connectome_dask.open`),
        or ``None`` for :func:`connectome_dask.default_connectome`.

    Returns
    -------
    neuron_df : pandas.DataFrame
        One row per matching neuron sorted by ``bodyId``: ``bodyId, instance,
        type, pre, post, downstream, upstream, status, cropped``, every other
        annotation column, then ``inputRois`` / ``outputRois`` (sorted lists of
        the ROIs, any level, where the neuron has post / pre sites).
        ``downstream``/``upstream`` equal ``pre``/``post`` (one row is one
        synaptic connection; there is no T-bar de-duplication).
    roi_counts_df : pandas.DataFrame
        ``bodyId, roi, pre, post, downstream, upstream`` for every ROI level
        (primary and super-level), plus ``NotPrimary`` (sites in no primary
        ROI, computed as total minus the primary sums as neuPrint does);
        all-zero rows dropped (neuPrint keeps zero ``NotPrimary`` rows);
        sorted by ``(bodyId, roi)``.

    Criteria matching nothing give empty frames with these columns.

    Raises
    ------
    TypeError
        ``client`` is not a Connectome.
    connectome_dask.errors.StoreError
        ``client`` is ``None`` and no connectome is open.
    connectome_dask.errors.CriteriaError
        Invalid criteria (see :class:`NeuronCriteria` and
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria`).
    connectome_dask.errors.UnknownRoiError
        An ROI name the store does not define (also a ``KeyError``).
    connectome_dask.errors.UnknownColumnError
        A criteria property that is not a neuron column (also a ``KeyError``).

    Examples
    --------
    >>> neuron_df, roi_df = fetch_neurons(NeuronCriteria(type="KC.*"))
    >>> neuron_df.columns.tolist()[:9]
    ['bodyId', 'instance', 'type', 'pre', 'post', 'downstream', 'upstream', 'status', 'cropped']
    >>> neuron_df.type.unique().tolist(), neuron_df.bodyId.is_monotonic_increasing
    (['KCg-m'], True)
    >>> roi_df.columns.tolist()
    ['bodyId', 'roi', 'pre', 'post', 'downstream', 'upstream']
    >>> {"MB_CA_R", "MB_R"} <= set(roi_df.roi)  # primary ROI and its parent
    True
    """
    conn = _conn(client)
    crit = _crit(criteria, conn)
    idx = crit.indices(conn)
    n = conn.neurons
    df = n.iloc[idx].drop(columns=["index"]).copy()
    df["downstream"] = df["pre"]
    df["upstream"] = df["post"]
    first = [c for c in _NEURON_FIRST if c in df.columns]
    df = df[first + [c for c in df.columns if c not in first]]
    roi_df = _roi_counts_long(conn, idx)
    named = roi_df[roi_df["roi"] != NOT_PRIMARY]
    ins = named[named["post"] > 0].groupby("bodyId")["roi"].agg(lambda s: sorted(s))
    outs = named[named["pre"] > 0].groupby("bodyId")["roi"].agg(lambda s: sorted(s))
    b = df["bodyId"]
    df["inputRois"] = [ins.get(x, []) for x in b]
    df["outputRois"] = [outs.get(x, []) for x in b]
    df = df.sort_values("bodyId", ignore_index=True)
    return df, roi_df


# ----------------------------------------------------------------------------- adjacencies


def _properties_df(conn: Connectome, idx: np.ndarray, properties: Sequence[str]) -> pd.DataFrame:
    props = ["bodyId"] + [p for p in properties if p != "bodyId"]
    n = conn.neurons
    bad = [p for p in props if p not in n.columns]
    if bad:
        raise UnknownColumnError(f"unknown neuron properties {bad}; available: {list(n.columns)}")
    return n[props].iloc[np.sort(idx)].reset_index(drop=True)  # the columns first: only theirs are taken


def _empty_conn_df() -> pd.DataFrame:
    return pd.DataFrame({"bodyId_pre": np.zeros(0, np.int64), "bodyId_post": np.zeros(0, np.int64),
                         "roi": pd.Series([], dtype=object), "weight": np.zeros(0, np.int64)})


def fetch_adjacencies(
    sources: Any = None,
    targets: Any = None,
    rois: str | Iterable[str] | None = None,
    min_roi_weight: int = 1,
    min_total_weight: int = 1,
    include_nonprimary: bool = False,
    export_dir: str | os.PathLike | None = None,
    properties: Sequence[str] = ("type", "instance"),
    *,
    client: Any = None,
    progress: bool | None = None,
    confidence: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Connections between sets of neurons, per ROI (neuPrint's ``fetch_adjacencies``).

    Parameters
    ----------
    sources, targets
        Presynaptic / postsynaptic neurons (criteria, IDs, types, or None = all).
    rois
        Keep only these ROIs' rows (connection ROI = postsynaptic site's ROI).
        As in neuPrint, neurons on each side whose criteria list no ROIs must
        then also intersect at least one of these ROIs, and non-primary ROIs
        need ``include_nonprimary=True``.
    min_roi_weight
        Drop (pair, ROI) rows weaker than this.
    min_total_weight
        Drop pairs whose total weight across **all** ROIs (including
        ``NotPrimary`` and ROIs removed by ``rois``) is below this. neuPrint's
        docstring promises exactly this; its code instead re-sums the rows left
        after the ``rois`` filter (and double counts with
        ``include_nonprimary``). We follow the documented behaviour, so the two
        thresholds commute and totals are never double counted.
    include_nonprimary
        Also list super-level (and other non-primary) ROIs; their rows overlap
        the primary rows, so per-pair sums then exceed the pair weight.
    export_dir
        Write neuPrint's three CSV files there: ``neurons.csv``,
        ``roi-connections.csv`` (the returned conn_df) and
        ``total-connections.csv`` (``bodyId_pre, bodyId_post, weight`` with the
        total weight of each returned pair; neuPrint writes every pair fetched
        before ROI filtering). Each file is written under a temporary name and
        renamed into place. When conn_df is estimated (before any work) above
        the dask config ``connectome_dask.max_result_bytes``, the files are
        written partition by partition (the pairs of one range of presynaptic
        neurons at a time) and conn_df is returned as a dask DataFrame reading
        ``roi-connections.csv`` (a warning says so); memory then stays at one
        partition's rows. The rows of each presynaptic neuron are then in
        conn_df's order, and the neurons follow the store's neuron order (bodyId
        order in every store :func:`~connectome_dask.ingest.ingest` writes).
    properties
        Neuron columns for ``neuron_df`` (besides ``bodyId``).
    client
        A :class:`~connectome_dask.Connectome` (from :func:`connectome_dask.open`),
        or ``None`` for :func:`connectome_dask.default_connectome`.
    progress
        Show a progress bar for whole-table scans (``None``: the dask config
        ``connectome_dask.progress``).
    confidence
        Count only synapse rows whose confidence is strictly greater
        (``None``: every stored row). :func:`connectome_dask.neuprint.fetch_adjacencies`
        passes the store's default confidence, so its weights agree with the
        synapse queries' default :class:`SynapseCriteria`, as in neuPrint.

    Returns
    -------
    neuron_df : pandas.DataFrame
        ``bodyId`` + ``properties`` of every neuron in conn_df, sorted by bodyId.
    conn_df : pandas.DataFrame
        ``bodyId_pre, bodyId_post, roi, weight`` sorted by ``(bodyId_pre,
        bodyId_post)``, weight descending, then roi. Sites in no primary ROI
        appear as ``roi == "NotPrimary"``. Empty (typed) when nothing matches.

    Raises
    ------
    TypeError
        ``client`` is not a Connectome.
    connectome_dask.errors.StoreError
        ``client`` is ``None`` and no connectome is open.
    connectome_dask.errors.ResultTooLarge
        conn_df is estimated above ``connectome_dask.max_result_bytes`` and no
        ``export_dir`` is given to stream it to (raised before any work).
    connectome_dask.errors.CriteriaError
        A non-primary ROI in ``rois`` without ``include_nonprimary=True``, a non-integer
        ``min_roi_weight`` / ``min_total_weight``, or invalid criteria (see
        :class:`NeuronCriteria` and
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria`).
    connectome_dask.errors.UnknownRoiError
        An ROI name the store does not define (also a ``KeyError``).
    connectome_dask.errors.UnknownColumnError
        A name in ``properties`` (or a criteria property) that is not a
        neuron column (also a ``KeyError``).

    Examples
    --------
    >>> neuron_df, conn_df = fetch_adjacencies("KC.*", None, rois=["MB_CA_R"])
    >>> conn_df.columns.tolist(), conn_df.roi.unique().tolist()
    (['bodyId_pre', 'bodyId_post', 'roi', 'weight'], ['MB_CA_R'])
    >>> neuron_df.columns.tolist(), bool(neuron_df.bodyId.isin(conn_df.bodyId_post).any())
    (['bodyId', 'type', 'instance'], True)

    Super-level ROIs need ``include_nonprimary=True``:

    >>> _, conn_df = fetch_adjacencies("KC.*", "KC.*", rois=["MB_R"], include_nonprimary=True)
    >>> conn_df.roi.unique().tolist()
    ['MB_R']
    """
    conn = _conn(client)
    model = RoiModel.of(conn)
    rois_l = [] if rois is None else model.validate(rois, "ROI")
    nonprim = sorted(set(rois_l) - set(model.primary))
    if nonprim and not include_nonprimary:
        raise CriteriaError(f"you listed non-primary ROIs {nonprim}; pass include_nonprimary=True")
    for name, v in (("min_roi_weight", min_roi_weight), ("min_total_weight", min_total_weight)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise CriteriaError(f"{name} must be an integer, got {v!r}")
    min_roi_weight = max(int(min_roi_weight), 1)
    min_total_weight = max(int(min_total_weight), min_roi_weight)
    props = list(properties)
    bad = [p for p in props if p not in conn.neurons.columns]
    if bad:
        raise UnknownColumnError(f"unknown neuron properties {bad}; available: {list(conn.neurons.columns)}")
    src = _crit(sources, conn).with_rois_any(rois_l)
    tgt = _crit(targets, conn).with_rois_any(rois_l)
    pre_idx = None if src.is_everything else src.indices(conn)
    post_idx = None if tgt.is_everything else tgt.indices(conn)
    nothing = (pre_idx is not None and len(pre_idx) == 0) or (post_idx is not None and len(post_idx) == 0)
    est = 0 if nothing else _conn_df_estimate(conn, pre_idx, post_idx)
    budget = max_result_bytes()
    if est > budget:
        what = (f"conn_df is estimated at {_mb(est)} (about {est // _CONN_DF_ROW_BYTES:,} rows), above "
                f"connectome_dask.max_result_bytes ({_mb(budget)})")
        if export_dir is None:
            raise ResultTooLarge(f"{what}: pass export_dir= to stream it to CSV files (conn_df is then a dask "
                                 "DataFrame reading them), restrict sources / targets / rois, or raise the budget")
        logger.warning("%s: streaming it to %s partition by partition; conn_df is a dask DataFrame reading "
                       "roi-connections.csv", what, export_dir)
        return _stream_adjacencies(conn, model, pre_idx, post_idx, rois_l, include_nonprimary, min_roi_weight,
                                   min_total_weight, export_dir, props, confidence, progress)
    if est >= _RELEASE_BYTES:
        release_unused_memory()
    if nothing:
        pc = pd.DataFrame({"pre": np.zeros(0, np.int32), "post": np.zeros(0, np.int32),
                           "roi": np.zeros(0, np.int16), "weight": np.zeros(0, np.int64)})
    elif "roi_post" in conn.synapse_columns:
        pc = _index_pair_counts(conn, pre_idx, post_idx, by_roi=True, confidence=confidence, progress=progress)
    else:
        pc = _index_pair_counts(conn, pre_idx, post_idx, confidence=confidence, progress=progress)
        pc["roi"] = np.int16(-1)
    # pair_counts returns rows sorted by (pre, post, roi) on every read path: no order check
    pre, post, slot, weight, rid, names, (pair_pre, pair_post), totals = _roi_rows(
        conn, model, pc, include_nonprimary, rois_l, min_roi_weight, min_total_weight,
        want_pairs=export_dir is not None, ordered=True)
    del pc
    body = conn.neurons["bodyId"].to_numpy().astype(np.int64, copy=False)
    rows = {"pre": pre, "post": post, "slot": slot, "weight": weight}
    del pre, post, slot, weight  # _conn_frame frees each once it is used
    used = np.zeros(conn.n_neurons, dtype=bool)
    conn_df, neuron_df = _conn_frame(body, rows, names, used, beside=lambda: _neuron_frame(conn, used, props))
    if export_dir is not None:
        os.makedirs(export_dir, exist_ok=True)
        tot = _total_rows(body, rid, pair_pre, pair_post, totals)
        for name, df in (("neurons.csv", neuron_df), ("roi-connections.csv", conn_df),
                         ("total-connections.csv", tot)):
            with atomic_file(os.path.join(export_dir, name)) as tmp:
                df.to_csv(tmp, index=False, header=True)
    return neuron_df, conn_df


#: estimated bytes of one conn_df row (two int64 IDs, the weight, the ROI string column) and its share
#: of the work arrays
_CONN_DF_ROW_BYTES = 48


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def _conn_df_estimate(conn: Connectome, pre_idx: np.ndarray | None, post_idx: np.ndarray | None) -> int:
    """Estimate of conn_df's bytes before any work: (pair, ROI) rows times the selected share of synapses.

    The rows are the per-ROI connection table's when the store has one (every
    (pair, ROI) row there is: an upper bound), the connection table's pairs
    when the store has no ROI codes (one row each), else twice the pairs (an
    older store with ROIs but no per-ROI table; at most one per synapse);
    restricted sides scale it by the share of synapse rows their neurons hold.
    """
    n = max(int(conn.n_synapses), 1)
    n_pairs = int(conn.meta["index"].get("n_pairs") or n) if conn.has_pair_table else n
    if conn.has_roi_pair_table:
        rows = conn.n_roi_pairs
    elif "roi_post" not in conn.synapse_columns:
        rows = n_pairs
    else:
        rows = min(n, 2 * n_pairs)
    frac = 1.0
    for side, idx in (("pre", pre_idx), ("post", post_idx)):
        if idx is not None:
            frac = min(frac, float(conn.neurons[side].to_numpy()[idx].sum()) / n)
    return int(rows * frac) * _CONN_DF_ROW_BYTES


#: estimated conn_df bytes from which the heap memory earlier calls freed is handed back to the OS first
#: (:mod:`.._memory`: this call's peak then does not stack on it)
_RELEASE_BYTES = 64 << 20

#: rows from which :func:`_conn_frame` builds its columns on two threads beside the caller's
_THREADED_ROWS = 1 << 18


def _mark_used(used: np.ndarray, pre: np.ndarray, post: np.ndarray) -> None:
    mark_neurons(used, pre, post)  # one pass, the GIL released (numpy's two index assignments: 35 ms at 4.8 M rows)


def _conn_frame(body: np.ndarray, rows: dict[str, np.ndarray], names: list[str], used: np.ndarray,
                beside: Callable[[], Any] | None = None) -> tuple[pd.DataFrame, Any]:
    """conn_df's rows (``bodyId_pre, bodyId_post, roi, weight``) from :func:`_roi_rows`' arrays, and ``beside()``.

    ``rows`` (``pre``, ``post``, ``slot``, ``weight``) is handed over: emptied
    here, so each array is freed once it is used. Also marks the rows'
    neurons in ``used``; ``beside`` (e.g. neuron_df from those marks) runs once
    they are made. On millions of rows in two steps of two threads (numpy,
    Arrow: the GIL is released): the body IDs are gathered while the neurons
    are marked, then, the (pre, post) indices freed, the ROI name column is
    built while ``beside`` runs; the peak then holds conn_df and the slots but
    no indices (fetch_adjacencies(None, None) at 20 M synapses: 38 MB less).
    """
    pre, post, slot, weight = (rows.pop(k) for k in ("pre", "post", "slot", "weight"))
    if beside is None:
        def beside() -> None:
            return None
    if len(weight) == 0:
        return _empty_conn_df(), beside()
    if len(slot) < _THREADED_ROWS:
        _mark_used(used, pre, post)
        df = pd.DataFrame({"bodyId_pre": body[pre], "bodyId_post": body[post],
                           "roi": _name_column(names, slot), "weight": weight}, copy=False)
        return df, beside()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as ex:
        marks = ex.submit(_mark_used, used, pre, post)
        fut_bp = ex.submit(np.take, body, pre)
        bq = body[post]
        bp = fut_bp.result()
        marks.result()
        del pre, post
        fut_roi = ex.submit(_name_column, names, slot)
        got = beside()
        roi = fut_roi.result()
    del slot
    return pd.DataFrame({"bodyId_pre": bp, "bodyId_post": bq, "roi": roi, "weight": weight}, copy=False), got


def _neuron_frame(conn: Connectome, used: np.ndarray, props: list[str]) -> pd.DataFrame:
    """neuron_df: ``bodyId`` + ``props`` of the neurons marked in ``used``, sorted by bodyId."""
    df = _properties_df(conn, np.flatnonzero(used).astype(np.int64), props)
    return df.sort_values("bodyId", ignore_index=True)


def _total_rows(body: np.ndarray, rid: np.ndarray, pair_pre: np.ndarray, pair_post: np.ndarray,
                totals: np.ndarray) -> pd.DataFrame:
    """total-connections.csv: every returned pair once, with its total weight, in bodyId order (as conn_df)."""
    first = _runs(rid) if len(rid) else np.zeros(0, np.int64)
    up = rid[first]
    return pd.DataFrame({"bodyId_pre": body[pair_pre[up]], "bodyId_post": body[pair_post[up]],
                         "weight": totals[up].astype(np.int64)})


def _stream_adjacencies(conn: Connectome, model: RoiModel, pre_idx: np.ndarray | None, post_idx: np.ndarray | None,
                        rois_l: list[str], include_nonprimary: bool, min_roi_weight: int, min_total_weight: int,
                        export_dir: str | os.PathLike, props: list[str], confidence: float | None,
                        progress: bool | None) -> tuple[pd.DataFrame, Any]:
    """fetch_adjacencies' CSV files written one partition of pairs at a time; conn_df read back lazily.

    The pair counts go out of core (``pair_counts(output=)``: Parquet parts in
    a scratch directory, each holding the complete pairs of a range of
    presynaptic neurons, in bodyId order); each part becomes its conn_df and
    total-connections rows, appended to the temporary CSV files, which are
    renamed into place at the end.
    """
    import dask.dataframe as dd
    import pyarrow.parquet as pq

    os.makedirs(export_dir, exist_ok=True)
    body = conn.neurons["bodyId"].to_numpy().astype(np.int64, copy=False)
    used = np.zeros(conn.n_neurons, dtype=bool)
    by_roi = "roi_post" in conn.synapse_columns
    conn_path = os.path.join(export_dir, "roi-connections.csv")
    with scratch_dir("fetch_adjacencies pair counts") as scratch, \
            atomic_file(conn_path) as conn_tmp, \
            atomic_file(os.path.join(export_dir, "total-connections.csv")) as tot_tmp:
        out = scratch / "pairs"
        _index_pair_counts(conn, pre_idx, post_idx, by_roi=by_roi, confidence=confidence, progress=progress,
                           output=out)
        first = True
        for part in sorted(out.glob("*.parquet")):  # partition order = bodyId_pre order
            pc = pq.read_table(part).to_pandas()
            if not by_roi:
                pc["roi"] = np.int16(-1)
            pre, post, slot, weight, rid, names, (pair_pre, pair_post), totals = _roi_rows(
                conn, model, pc, include_nonprimary, rois_l, min_roi_weight, min_total_weight,
                want_pairs=True, ordered=True)
            del pc
            chunk, _ = _conn_frame(body, {"pre": pre, "post": post, "slot": slot, "weight": weight}, names, used)
            mode = "w" if first else "a"
            chunk.to_csv(conn_tmp, index=False, header=first, mode=mode)
            _total_rows(body, rid, pair_pre, pair_post, totals).to_csv(tot_tmp, index=False, header=first, mode=mode)
            first = False
        if first:  # no partition: the headers alone
            _empty_conn_df().to_csv(conn_tmp, index=False)
            pd.DataFrame(columns=["bodyId_pre", "bodyId_post", "weight"]).to_csv(tot_tmp, index=False)
    neuron_df = _neuron_frame(conn, used, props)
    with atomic_file(os.path.join(export_dir, "neurons.csv")) as tmp:
        neuron_df.to_csv(tmp, index=False, header=True)
    conn_df = dd.read_csv(conn_path, dtype={"bodyId_pre": "int64", "bodyId_post": "int64", "roi": "string",
                                            "weight": "int64"}, keep_default_na=False, blocksize="64MB")
    return neuron_df, conn_df


def _name_column(names: list[str], slot: np.ndarray) -> pd.Series:
    """``names[slot]`` as a column of pandas' default string dtype (built in Arrow when it is Arrow's).

    Examples
    --------
    >>> _name_column(["AL", "FB"], np.array([1, 0, 1])).tolist()
    ['FB', 'AL', 'FB']
    """
    dtype = pd.Series(names[:1] or ["x"]).dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        import pyarrow as pa

        # a take of the few names by the rows' slots, as pandas stores them (large_string): 36 ms for 4.8 M
        # rows, where the cast of a dictionary array to string (then to large_string) took 59 ms
        arr = pa.array(names, pa.large_string()).take(pa.array(slot))
        return pd.Series(pd.array(arr, dtype=dtype), copy=False)
    return pd.Series(np.asarray(names, dtype=object)[slot], dtype=dtype)


def _runs(*keys: np.ndarray) -> np.ndarray:
    """Start offsets of the runs of equal consecutive ``keys`` tuples (non-empty arrays)."""
    change = np.empty(len(keys[0]), dtype=bool)
    change[0] = True
    np.not_equal(keys[0][1:], keys[0][:-1], out=change[1:])
    for k in keys[1:]:
        change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


def _roi_names(model: RoiModel, include_nonprimary: bool) -> tuple[list[str], np.ndarray, np.ndarray,
                                                                    list[np.ndarray]]:
    """conn_df's ROI names, numbered as *slots* in code order (so per-code slots mostly ascend).

    Returns ``(names, rank, prim_slot, extra)``: ``rank[slot]`` is the name's
    position in sorted order (conn_df's roi order), ``prim_slot[code + 1]`` the
    slot of the code's primary ROI (NotPrimary for none), ``extra[code + 1]``
    the slots of the non-primary ROIs containing it (``include_nonprimary``).
    """
    n_codes = len(model.names) + 1 if model else 1
    prim_of = model.primary_name_of_code() if model else np.full(1, None, dtype=object)
    names: list[str] = []
    slot: dict[str, int] = {}
    prim_slot = np.empty(n_codes, dtype=np.int64)
    for c, x in enumerate(prim_of):
        nm = NOT_PRIMARY if x is None else str(x)
        if nm not in slot:
            slot[nm] = len(names)
            names.append(nm)
        prim_slot[c] = slot[nm]
    extra: list[list[int]] = [[] for _ in range(n_codes)]
    if include_nonprimary and model:
        nonprim = sorted(set(model.all_rois) - set(model.primary))
        for nm in nonprim:
            if nm not in slot:
                slot[nm] = len(names)
                names.append(nm)
        mem = model.membership(nonprim)
        for c, r in zip(mem["code"].to_numpy(), mem["roi"].to_numpy(), strict=True):
            extra[int(c) + 1].append(slot[str(r)])
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(np.array(names, dtype=object), kind="stable")] = np.arange(len(names))
    return names, rank, prim_slot, [np.asarray(e, dtype=np.int64) for e in extra]


def _sum_by_key(key: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``key`` values (sorted) and the sum of ``w`` of each."""
    if len(key) == 0 or bool(np.all(key[1:] > key[:-1])):  # already distinct and sorted: nothing to add
        return key, w
    order = np.argsort(key, kind="stable")  # nearly sorted: few passes
    key, w = key[order], w[order]
    s = _runs(key)
    return key[s], np.add.reduceat(w, s)


def _roi_rows(conn: Connectome, model: RoiModel, pc: pd.DataFrame, include_nonprimary: bool,
              rois: Sequence[str], min_roi_weight: int, min_total_weight: int, want_pairs: bool = True,
              ordered: bool = False) -> tuple:
    """(pre, post, code, weight) rows sorted by (pre, post, code) -> conn_df's rows, as arrays.

    Integer-coded throughout: pairs are numbered by their run in the sorted
    input and ROI names by slot, so a (pair, ROI) row is one int64 key and every
    group-by is a run-length pass (no sort when each code has its own primary
    ROI). Returns ``(pre, post, slot, weight, pair number)`` of the kept rows in
    conn_df's order (bodyId_pre, bodyId_post, weight descending, roi name), the
    slots' names, the pairs' ``(pre, post)`` and their totals over all ROIs (empty unless
    ``want_pairs``: they cost three arrays of one entry per pair). ``ordered``: the rows are known
    to be sorted by (pre, post, code) (``pair_counts``' output), so the order is not checked.
    """
    pre = pc["pre"].to_numpy()
    post = pc["post"].to_numpy()
    raw_code = pc["roi"].to_numpy()  # -1: no ROI; slot lookups index code + 1
    w = pc["weight"].to_numpy().astype(np.int64, copy=False)
    names, rank, prim_slot, extra = _roi_names(model, include_nonprimary)
    R = len(names)
    n = len(pre)
    empty = np.zeros(0, np.int64)
    if n == 0:
        return empty, empty, empty, empty, empty, names, (empty, empty), empty
    # int32 temporaries where they fit: this runs on millions of rows
    idt = np.int32 if n < 2**31 - 1 else np.int64
    if not model:
        raw_code = np.full(n, -1, dtype=np.int16)
    body = conn.neurons["bodyId"].to_numpy()
    in_body_order = len(body) < 2 or bool(np.all(body[1:] > body[:-1]))
    # the kernel does not bounds-check its lookups: codes outside the model take the general path (which raises)
    if (ordered and not want_pairs and not rois and min_roi_weight <= 1 and min_total_weight <= 1
            and in_body_order and not any(len(e) for e in extra)
            and bool(raw_code.min() >= -1) and bool(raw_code.max() < len(prim_slot) - 1)):
        # every row is its (pair, ROI)'s total when each code has its own primary ROI (slots ascend
        # with the codes): conn_df is the rows, reordered inside each pair (e.g. the per-ROI
        # connection table of fetch_adjacencies(None, None)); anything else takes the general path.
        # The kernel looks each row's slot up from its code as it goes (no int32 code copy, no slot array)
        rs_f, sums_f, ok_f = pair_rows_by_weight(pre, post, raw_code, w, rank, slot_of=prim_slot.astype(idt),
                                                 shift=1)
        if ok_f:
            return pre, post, rs_f, sums_f, empty, names, (empty, empty), empty
        del rs_f, sums_f
    code = raw_code.astype(np.int32)
    code += 1
    del raw_code
    unordered = False
    if not ordered:
        dp = np.diff(pre)
        unordered = bool((dp < 0).any()) or bool(((dp == 0) & (post[1:] < post[:-1])).any())
        del dp
    if unordered:  # not (pre, post)-ordered (never from pair_counts): order it
        order = np.argsort(pre.astype(np.int64) * conn.n_neurons + post, kind="stable")
        pre, post, code, w = pre[order], post[order], code[order], w[order]
        del order
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(pre[1:], pre[:-1], out=new[1:])
    new[1:] |= post[1:] != post[:-1]
    starts = np.flatnonzero(new)
    totals = _pair_totals(w, starts) if (want_pairs or min_total_weight > 1) else empty
    pid = np.cumsum(new, dtype=idt)
    np.subtract(pid, 1, out=pid)
    slot = prim_slot.astype(idt)[code]
    # a pair's codes ascend; distinct slots that ascend with them need no sum (each code its own primary)
    same = ~new[1:]
    del new
    rows_pre = rows_post = None
    if bool((same & (slot[1:] <= slot[:-1])).any()):
        keys, sums = _sum_by_key(pid.astype(np.int64) * R + slot, w)
        rid_, rs_ = np.divmod(keys, R)
        rid, rs = rid_.astype(idt), rs_.astype(idt)
        del keys, rid_, rs_
    else:
        rid, rs, sums = pid, slot, w
        rows_pre, rows_post = pre, post  # (pre, post) of each row, when rows are still the input's
    del same, slot
    n_extra = np.array([len(e) for e in extra], dtype=np.int64)
    if n_extra.any():
        reps = n_extra[code]
        flat = np.concatenate(extra)
        off = np.concatenate([[0], np.cumsum(n_extra)[:-1]])
        rows = np.repeat(np.arange(n), reps)
        first = np.repeat(np.cumsum(reps) - reps, reps)
        xs = flat[off[code[rows]] + (np.arange(len(rows)) - first)]
        k2, s2 = _sum_by_key(pid[rows].astype(np.int64) * R + xs, w[rows])
        r2, x2 = np.divmod(k2, R)
        rid, rs, sums = (np.concatenate([rid, r2.astype(idt)]), np.concatenate([rs, x2.astype(idt)]),
                         np.concatenate([sums, s2]))
        rows_pre = rows_post = None
    del pid
    if rois or min_roi_weight > 1 or min_total_weight > 1 or not bool(np.all(sums > 0)):
        keep = (sums > 0) & (sums >= min_roi_weight)
        if min_total_weight > 1:
            keep &= totals[rid] >= min_total_weight
        if rois:
            ok = np.zeros(R, dtype=bool)
            ok[[names.index(r) for r in rois if r in names]] = True
            keep &= ok[rs]
        rid, rs, sums = rid[keep], rs[keep], sums[keep]
        if rows_pre is not None and rows_post is not None:
            rows_pre, rows_post = rows_pre[keep], rows_post[keep]
    # conn_df order: (bodyId_pre, bodyId_post), weight descending, roi name
    if len(sums) and in_body_order and bool(np.all(np.greater_equal(rid[1:], rid[:-1]))):
        # pairs already in bodyId order, each pair's rows contiguous: only pairs with several rows
        # are reordered, in place (a few % of the rows; no full-size sort key, order or copies)
        head = np.empty(len(rid), dtype=bool)
        head[0] = True
        np.not_equal(rid[1:], rid[:-1], out=head[1:])
        g = np.flatnonzero(head)
        size = np.diff(g, append=len(rid))
        idx = np.flatnonzero(np.repeat(size > 1, size))
        del head, g, size
        if len(idx):
            if not rs.flags.writeable or rs.base is not None:
                rs = rs.copy()
            sums = sums.copy() if (not sums.flags.writeable or sums is w) else sums
            o = idx[_pair_row_order(rid[idx], sums[idx], rank[rs[idx]], len(starts), R)]
            rs[idx] = rs[o]
            sums[idx] = sums[o]
    elif len(sums):
        if in_body_order:
            sort_pid = rid
        else:  # dense order is not bodyId order: order the pairs by bodyId first
            pair_order = np.lexsort((body[post[starts]], body[pre[starts]]))
            pos = np.empty(len(pair_order), dtype=np.int64)
            pos[pair_order] = np.arange(len(pair_order))
            sort_pid = pos[rid]
        order = _pair_row_order(sort_pid, sums, rank[rs], len(starts), R)
        del sort_pid
        rid, rs, sums = rid[order], rs[order], sums[order]
        rows_pre = rows_post = None
    if rows_pre is None or rows_post is None:
        rows_pre, rows_post = pre[starts[rid]], post[starts[rid]]
    pairs = (pre[starts], post[starts]) if want_pairs else (empty, empty)
    return rows_pre, rows_post, rs, sums, rid, names, pairs, totals


def _pair_totals(w: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum of ``w`` over each run starting at ``starts`` (each pair's weight over all its ROIs)."""
    cs: np.ndarray = np.cumsum(w)
    totals: np.ndarray = cs[np.append(starts[1:], len(w)) - 1]
    totals[1:] -= cs[starts[1:] - 1]
    return totals


def _pair_row_order(pair: np.ndarray, weight: np.ndarray, roi_rank: np.ndarray, n_pairs: int, R: int) -> np.ndarray:
    """Order of rows by (pair, weight descending, roi rank): one int64 key when it fits, else a lexsort."""
    wmax = int(weight.max())
    sec_bits = int(wmax * R + R).bit_length()
    if int(n_pairs).bit_length() + sec_bits <= 62:
        k = pair.astype(np.int64) << sec_bits
        sec = wmax - weight
        sec *= R
        sec += roi_rank
        k |= sec
        del sec
        return np.argsort(k, kind="stable")  # mostly sorted already (most pairs have one row)
    return np.lexsort((roi_rank, -weight, pair))


def fetch_traced_adjacencies(
    export_dir: str | os.PathLike | None = None, *, client: Any = None, progress: bool | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`fetch_adjacencies` among all ``Traced``, non-cropped neurons (neuPrint's helper).

    Cropped missing counts as not cropped, as in neuPrint.

    Parameters
    ----------
    export_dir
        Write neuPrint's three CSV files there, as :func:`fetch_adjacencies`.
    client
        A :class:`~connectome_dask.Connectome` (from :func:`connectome_dask.open`),
        or ``None`` for :func:`connectome_dask.default_connectome`.
    progress
        Show a progress bar for whole-table scans (``None``: the dask config
        ``connectome_dask.progress``).

    Returns
    -------
    neuron_df, conn_df : pandas.DataFrame
        As :func:`fetch_adjacencies`.

    Raises
    ------
    TypeError
        ``client`` is not a Connectome.
    connectome_dask.errors.StoreError
        ``client`` is ``None`` and no connectome is open.
    connectome_dask.errors.UnknownColumnError
        The neuron table has no ``type`` or ``instance`` column (the
        properties of ``neuron_df``; also a ``KeyError``).

    Examples
    --------
    >>> neuron_df, conn_df = fetch_traced_adjacencies(tmp_path / "exported")
    >>> set(conn.neurons.set_index("bodyId").loc[neuron_df.bodyId, "status"])
    {'Traced'}
    >>> sorted(p.name for p in (tmp_path / "exported").iterdir())
    ['neurons.csv', 'roi-connections.csv', 'total-connections.csv']
    """
    crit = NeuronCriteria(status="Traced", cropped=False)
    return fetch_adjacencies(crit, crit, include_nonprimary=False, export_dir=export_dir,
                             client=client, progress=progress)


def _roi_labels(model: RoiModel, code: np.ndarray, primary_only: bool) -> np.ndarray:
    code = np.asarray(code, dtype=np.int64) + 1
    if primary_only:
        return model.primary_name_of_code()[code]
    lists = model.all_names_of_code()
    out = np.empty(len(code), dtype=object)
    for i, c in enumerate(code):
        out[i] = list(lists[c])
    return out


def fetch_synapses(
    neuron_criteria: Any,
    synapse_criteria: SynapseCriteria | None = None,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Synaptic sites of a set of neurons (neuPrint's ``fetch_synapses``).

    Each body contributes one row per synapse row in which it is presynaptic
    (``type == "pre"``, the presynaptic site's position/ROI/confidence) and one
    per row in which it is postsynaptic (``type == "post"``). There is no
    T-bar de-duplication: a T-bar with 5 partners gives 5 ``pre`` rows.

    Parameters
    ----------
    neuron_criteria
        Which bodies (criteria, IDs, types; None = all, streams the whole table).
    synapse_criteria
        :class:`SynapseCriteria` (default: ``SynapseCriteria()``, i.e. the
        store's default confidence, primary ROI names). ``rois`` filters by
        the site's own ROI (any level). With ``primary_only=True`` ``roi`` is
        the site's primary ROI or None; with ``primary_only=False`` each site
        appears once per ROI (any level) containing it, and once with
        ``roi=None`` when it lies in no ROI (neuPrint duplicates sites the
        same way).
    client
        A :class:`~connectome_dask.Connectome` (from :func:`connectome_dask.open`),
        or ``None`` for :func:`connectome_dask.default_connectome`.
    progress
        Show a progress bar for whole-table scans (``None``: the dask config
        ``connectome_dask.progress``).

    Returns
    -------
    pandas.DataFrame
        ``bodyId, type, roi, x, y, z, confidence`` sorted by ``bodyId``,
        ``type`` ("post" before "pre"), storage row, then ``roi``. For a
        single-centre store ``x, y, z`` are the centre point for both sites.

    Raises
    ------
    TypeError
        ``client`` is not a Connectome.
    connectome_dask.errors.StoreError
        ``client`` is ``None`` and no connectome is open, or the store is connection-level (no synapse positions).
    connectome_dask.errors.CriteriaError
        ``synapse_criteria`` is not a :class:`SynapseCriteria`, names a non-primary ROI
        with ``primary_only=True``, the store has no synapse positions, or invalid
        neuron criteria (see :class:`NeuronCriteria` and
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria`).
    connectome_dask.errors.UnknownRoiError
        An ROI name the store does not define (also a ``KeyError``).
    connectome_dask.errors.UnknownColumnError
        A criteria property that is not a neuron column (also a ``KeyError``).

    Examples
    --------
    >>> syn = fetch_synapses(some_body, SynapseCriteria(type="pre"))
    >>> syn.columns.tolist()
    ['bodyId', 'type', 'roi', 'x', 'y', 'z', 'confidence']
    >>> syn.type.unique().tolist(), bool((syn.confidence > 0.5).all())  # store default 0.5
    (['pre'], True)
    >>> kc = fetch_synapses("KC.*", SynapseCriteria(rois=["MB_CA_R"]))
    >>> kc.roi.unique().tolist(), sorted(kc.type.unique())
    (['MB_CA_R'], ['post', 'pre'])
    """
    conn = _conn(client)
    conn.require_synapses("fetch_synapses")
    crit = _crit(neuron_criteria, conn)
    sc = synapse_criteria if synapse_criteria is not None else SynapseCriteria()
    if not isinstance(sc, SynapseCriteria):
        raise CriteriaError(f"synapse_criteria must be a SynapseCriteria, got {type(sc).__name__}")
    sc.validate(conn)
    if not conn.positions:
        raise CriteriaError(f"{conn.path}: the store has no synapse positions")
    model = RoiModel.of(conn)
    idx = None if crit.is_everything else crit.indices(conn)
    body = conn.neurons["bodyId"].to_numpy()
    frames = []
    for site in ("post", "pre"):
        if sc.type is not None and sc.type != site:
            continue
        if idx is not None and len(idx) == 0:
            continue
        xyz = conn.site_columns(site)
        conf = _conf_col(conn, site)
        roi_col = f"roi_{site}" if f"roi_{site}" in conn.synapse_columns else None
        cols = [*xyz] + ([conf] if conf else []) + ([roi_col] if roi_col else [])
        d = _select_rows(conn, idx if site == "pre" else None, idx if site == "post" else None, cols,
                         progress=progress)
        code = d[roi_col].astype(np.int64) if roi_col else np.full(len(d["pre"]), -1, np.int64)
        keep = sc.site_mask(conn, code, d[conf] if conf else None)
        df = pd.DataFrame({
            "bodyId": body[d[site][keep]],
            "type": site,
            "_row": d["_row"][keep],
            "_code": code[keep],
            "x": d[xyz[0]][keep], "y": d[xyz[1]][keep], "z": d[xyz[2]][keep],
            "confidence": (d[conf][keep] if conf else np.full(int(keep.sum()), np.nan, np.float32)),
        })
        frames.append(df)
    if not frames:
        return _empty_synapses()
    df = pd.concat(frames, ignore_index=True)
    if sc.primary_only:
        df["roi"] = _roi_labels(model, df["_code"].to_numpy(), True)
    else:
        df["roi"] = _roi_labels(model, df["_code"].to_numpy(), False)
        df["roi"] = [r if r else [None] for r in df["roi"]]
        df = df.explode("roi")
    df = df.sort_values(["bodyId", "type", "_row", "roi"], ignore_index=True, na_position="first")
    out = df[["bodyId", "type", "roi", "x", "y", "z", "confidence"]].reset_index(drop=True)
    out["roi"] = pd.Series([None if not isinstance(r, str) else r for r in out["roi"]], dtype=object)
    out["type"] = out["type"].astype(object)
    return out


def _empty_synapses() -> pd.DataFrame:
    return pd.DataFrame({"bodyId": np.zeros(0, np.int64), "type": pd.Series([], dtype=object),
                         "roi": pd.Series([], dtype=object), "x": np.zeros(0, np.float32),
                         "y": np.zeros(0, np.float32), "z": np.zeros(0, np.float32),
                         "confidence": np.zeros(0, np.float32)})


_SYNCONN_COLS = ["bodyId_pre", "bodyId_post", "roi_pre", "roi_post", "x_pre", "y_pre", "z_pre",
                 "x_post", "y_post", "z_post", "confidence_pre", "confidence_post"]


def fetch_synapse_connections(
    source_criteria: Any = None,
    target_criteria: Any = None,
    synapse_criteria: SynapseCriteria | None = None,
    min_total_weight: int = 1,
    *,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Synapse-level connections between sources and targets (neuPrint's function).

    Parameters
    ----------
    source_criteria, target_criteria
        Presynaptic / postsynaptic bodies; at least one must be given.
        ROI conditions in them select bodies, not synapses.
    synapse_criteria
        Confidence (strict ``>``, default: the store's default) applies to both
        sites; ``rois`` applies to the postsynaptic site only (neuPrint's
        convention, consistent with :func:`fetch_adjacencies`); as in
        neuPrint, bodies then must also intersect one of those ROIs.
        ``primary_only=True``: ``roi_pre``/``roi_post`` hold the primary ROI
        name or None; False: sorted lists of every ROI containing the site.
    min_total_weight
        Keep only pairs whose total weight (all their stored synapses, before
        any synapse filter) is at least this, so a pair may return fewer rows.
    client
        A :class:`~connectome_dask.Connectome` (from :func:`connectome_dask.open`),
        or ``None`` for :func:`connectome_dask.default_connectome`.
    progress
        Show a progress bar for whole-table scans (``None``: the dask config
        ``connectome_dask.progress``).

    Returns
    -------
    pandas.DataFrame
        ``bodyId_pre, bodyId_post, roi_pre, roi_post, x_pre, y_pre, z_pre,
        x_post, y_post, z_post, confidence_pre, confidence_post`` sorted by
        ``(bodyId_pre, bodyId_post)`` then storage row. Single-centre stores
        repeat the centre for both sites.

    Raises
    ------
    TypeError
        ``client`` is not a Connectome.
    connectome_dask.errors.StoreError
        ``client`` is ``None`` and no connectome is open, or the store is connection-level (no synapse positions).
    connectome_dask.errors.CriteriaError
        Neither criteria given, ``synapse_criteria`` is not a :class:`SynapseCriteria`
        (or names a non-primary ROI with ``primary_only=True``), a non-integer
        ``min_total_weight``, the store has no synapse positions, or invalid neuron
        criteria (see :class:`NeuronCriteria` and
        :func:`~connectome_dask.criteria.copy_as_neuroncriteria`).
    connectome_dask.errors.UnknownRoiError
        An ROI name the store does not define (also a ``KeyError``).
    connectome_dask.errors.UnknownColumnError
        A criteria property that is not a neuron column (also a ``KeyError``).

    Examples
    --------
    >>> syn = fetch_synapse_connections("KC.*", "KC.*", SynapseCriteria(rois=["MB_CA_R"]))
    >>> syn.columns.tolist()[:4], syn.roi_post.unique().tolist()
    (['bodyId_pre', 'bodyId_post', 'roi_pre', 'roi_post'], ['MB_CA_R'])
    """
    conn = _conn(client)
    conn.require_synapses("fetch_synapse_connections")
    if source_criteria is None and target_criteria is None:
        raise CriteriaError("fetch_synapse_connections needs source_criteria or target_criteria (or both)")
    sc = synapse_criteria if synapse_criteria is not None else SynapseCriteria()
    if not isinstance(sc, SynapseCriteria):
        raise CriteriaError(f"synapse_criteria must be a SynapseCriteria, got {type(sc).__name__}")
    sc.validate(conn)
    if isinstance(min_total_weight, bool) or not isinstance(min_total_weight, int | np.integer):
        raise CriteriaError(f"min_total_weight must be an integer, got {min_total_weight!r}")
    if not conn.positions:
        raise CriteriaError(f"{conn.path}: the store has no synapse positions")
    src = _crit(source_criteria, conn).with_rois_any(sc.rois)
    tgt = _crit(target_criteria, conn).with_rois_any(sc.rois)
    pre_idx = None if src.is_everything else src.indices(conn)
    post_idx = None if tgt.is_everything else tgt.indices(conn)
    if (pre_idx is not None and len(pre_idx) == 0) or (post_idx is not None and len(post_idx) == 0):
        return _empty_synconn()
    model = RoiModel.of(conn)
    xyz_pre, xyz_post = conn.site_columns("pre"), conn.site_columns("post")
    cpre, cpost = _conf_col(conn, "pre"), _conf_col(conn, "post")
    rcols = [c for c in ("roi_pre", "roi_post") if c in conn.synapse_columns]
    cols = list(dict.fromkeys([*xyz_pre, *xyz_post, *(c for c in (cpre, cpost) if c), *rcols]))
    d = _select_rows(conn, pre_idx, post_idx, cols, progress=progress)
    n = len(d["pre"])
    # pair totals before synapse filters (rows are sorted by (pre, post): whole pairs are present)
    key = d["pre"].astype(np.int64) * conn.n_neurons + d["post"].astype(np.int64)
    _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    keep = cnt[inv] >= int(min_total_weight)
    code_pre = d["roi_pre"].astype(np.int64) if "roi_pre" in d else np.full(n, -1, np.int64)
    code_post = d["roi_post"].astype(np.int64) if "roi_post" in d else np.full(n, -1, np.int64)
    thr = sc.threshold(conn)
    if thr is not None:
        if cpre:
            keep &= d[cpre] > thr
        if cpost:
            keep &= d[cpost] > thr
    if sc.rois:
        keep &= model.code_lut(sc.rois)[code_post + 1]
    body = conn.neurons["bodyId"].to_numpy()
    nan = np.full(int(keep.sum()), np.nan, np.float32)
    df = pd.DataFrame({
        "bodyId_pre": body[d["pre"][keep]],
        "bodyId_post": body[d["post"][keep]],
        "roi_pre": _roi_labels(model, code_pre[keep], sc.primary_only),
        "roi_post": _roi_labels(model, code_post[keep], sc.primary_only),
        "x_pre": d[xyz_pre[0]][keep], "y_pre": d[xyz_pre[1]][keep], "z_pre": d[xyz_pre[2]][keep],
        "x_post": d[xyz_post[0]][keep], "y_post": d[xyz_post[1]][keep], "z_post": d[xyz_post[2]][keep],
        "confidence_pre": d[cpre][keep] if cpre else nan,
        "confidence_post": d[cpost][keep] if cpost else nan,
        "_row": d["_row"][keep],
    })
    df = df.sort_values(["bodyId_pre", "bodyId_post", "_row"], ignore_index=True)
    return df[_SYNCONN_COLS]


def _empty_synconn() -> pd.DataFrame:
    data = {c: np.zeros(0, np.float32) for c in _SYNCONN_COLS}
    data["bodyId_pre"] = np.zeros(0, np.int64)
    data["bodyId_post"] = np.zeros(0, np.int64)
    data["roi_pre"] = pd.Series([], dtype=object)
    data["roi_post"] = pd.Series([], dtype=object)
    return pd.DataFrame(data)[_SYNCONN_COLS]


# ----------------------------------------------------------------------------- neuprint utils


def merge_neuron_properties(
    neuron_df: pd.DataFrame, conn_df: pd.DataFrame, properties: str | Sequence[str] = ("type", "instance")
) -> pd.DataFrame:
    """Add ``<prop>_pre`` / ``<prop>_post`` columns to a connection table (neuprint's util).

    Parameters
    ----------
    neuron_df
        Neuron table with ``bodyId`` and the ``properties`` columns (e.g. the
        first result of :func:`fetch_adjacencies`); the first row of each
        ``bodyId`` is used.
    conn_df
        Connection table with ``bodyId_pre`` and ``bodyId_post``.
    properties
        Column name or names of ``neuron_df`` to add.

    Returns
    -------
    pandas.DataFrame
        ``conn_df`` (a left merge: its rows and order) with ``<prop>_pre`` and
        ``<prop>_post`` appended for each property; missing where a body is
        not in ``neuron_df``.

    Raises
    ------
    connectome_dask.errors.UnknownColumnError
        ``neuron_df`` lacks ``bodyId`` or a property, or ``conn_df`` lacks
        ``bodyId_pre`` / ``bodyId_post`` (also a ``KeyError``).

    Examples
    --------
    >>> n = pd.DataFrame({"bodyId": [1, 2], "type": ["A", "B"]})
    >>> c = pd.DataFrame({"bodyId_pre": [1], "bodyId_post": [2], "weight": [3]})
    >>> merge_neuron_properties(n, c, "type")
       bodyId_pre  bodyId_post  weight type_pre type_post
    0           1            2       3        A         B
    """
    props = [properties] if isinstance(properties, str) else list(properties)
    bad = [p for p in ["bodyId", *props] if p not in neuron_df.columns]
    if bad:
        raise UnknownColumnError(f"neuron_df has no columns {bad}; available: {list(neuron_df.columns)}")
    for c in ("bodyId_pre", "bodyId_post"):
        if c not in conn_df.columns:
            raise UnknownColumnError(f"conn_df has no column {c!r}; available: {list(conn_df.columns)}")
    nd = neuron_df[["bodyId", *props]].drop_duplicates("bodyId")
    out = conn_df.merge(nd, "left", left_on="bodyId_pre", right_on="bodyId")
    out = out.drop(columns="bodyId").rename(columns={p: f"{p}_pre" for p in props})
    out = out.merge(nd, "left", left_on="bodyId_post", right_on="bodyId")
    out = out.drop(columns="bodyId").rename(columns={p: f"{p}_post" for p in props})
    return out


def connection_table_to_matrix(
    conn_df: pd.DataFrame,
    group_cols: str | Sequence[str] = "bodyId",
    weight_col: str = "weight",
    sort_by: str | Sequence[str] | None = None,
    make_square: bool = False,
) -> pd.DataFrame:
    """Pivot a connection table into a pre x post matrix (neuprint's util).

    Weights are summed per (pre group, post group). As in neuprint, the axes
    follow ``pandas.pivot_table``'s order (sorted labels: string labels
    lexicographically) unless ``sort_by`` is given.

    Parameters
    ----------
    conn_df
        Connection table with ``<col>_pre`` / ``<col>_post`` for each
        ``group_cols`` entry (and ``sort_by`` entry) and ``weight_col``.
    group_cols
        A column (or columns) appearing as ``<col>_pre`` and ``<col>_post``
        (``"bodyId"`` or e.g. ``("type", "instance")``; several give
        MultiIndex axes).
    weight_col
        The column summed.
    sort_by
        Sort rows / columns by these ``<col>_pre`` / ``<col>_post`` values
        (then by the group labels); default: by the group labels.
    make_square
        Use the union of row and column labels on both axes (missing cells
        filled with 0).

    Returns
    -------
    pandas.DataFrame
        Rows ``<group>_pre``, columns ``<group>_post``, with the dtype of
        ``weight_col`` (int64 for an empty table).

    Raises
    ------
    connectome_dask.errors.UnknownColumnError
        ``conn_df`` lacks a ``group_cols`` / ``sort_by`` column (as
        ``_pre`` or ``_post``) or ``weight_col`` (also a ``KeyError``).

    Examples
    --------
    >>> c = pd.DataFrame({"bodyId_pre": [1, 1, 2], "bodyId_post": [2, 3, 3], "weight": [5, 1, 2]})
    >>> connection_table_to_matrix(c)  # doctest: +NORMALIZE_WHITESPACE
    bodyId_post  2  3
    bodyId_pre
    1            5  1
    2            0  2
    """
    if isinstance(group_cols, str):
        group_cols = [group_cols]
    group_cols = list(group_cols)
    gpre: str | list[str]
    gpost: str | list[str]
    if len(group_cols) == 1:
        gpre, gpost = f"{group_cols[0]}_pre", f"{group_cols[0]}_post"
        need = [gpre, gpost, weight_col]
    else:
        gpre = [f"{c}_pre" for c in group_cols]
        gpost = [f"{c}_post" for c in group_cols]
        need = [*gpre, *gpost, weight_col]
    bad = [c for c in need if c not in conn_df.columns]
    if bad:
        raise UnknownColumnError(f"conn_df has no columns {bad}; available: {list(conn_df.columns)}")
    if sort_by is not None:
        sb = [sort_by] if isinstance(sort_by, str) else list(sort_by)
        for c in sb:
            for s in ("_pre", "_post"):
                if f"{c}{s}" not in conn_df.columns:
                    raise UnknownColumnError(f"sort_by column {c}{s!r} not in conn_df")
    m = conn_df.pivot_table(index=gpre, columns=gpost, values=weight_col, aggfunc="sum", fill_value=0)
    if sort_by is not None:
        sb = [sort_by] if isinstance(sort_by, str) else list(sort_by)
        keys_pre = conn_df[[*np.atleast_1d(gpre), *[f"{c}_pre" for c in sb]]].drop_duplicates()
        keys_post = conn_df[[*np.atleast_1d(gpost), *[f"{c}_post" for c in sb]]].drop_duplicates()
        rows = keys_pre.sort_values([f"{c}_pre" for c in sb] + list(np.atleast_1d(gpre)))
        cols = keys_post.sort_values([f"{c}_post" for c in sb] + list(np.atleast_1d(gpost)))
        ri = rows[gpre] if isinstance(gpre, str) else pd.MultiIndex.from_frame(rows[gpre])
        ci = cols[gpost] if isinstance(gpost, str) else pd.MultiIndex.from_frame(cols[gpost])
        m = m.reindex(index=pd.Index(ri).unique(), columns=pd.Index(ci).unique(), fill_value=0)
    if make_square:
        labels = m.index.append(m.columns.rename(m.index.names if m.index.nlevels > 1 else m.index.name)).unique()
        if sort_by is None:
            labels = labels.sort_values()
        m = m.reindex(index=labels, columns=labels, fill_value=0)
        m.index.name = gpre if isinstance(gpre, str) else None
        m.columns.name = gpost if isinstance(gpost, str) else None
    return m.astype(conn_df[weight_col].dtype if len(conn_df) else np.int64)


