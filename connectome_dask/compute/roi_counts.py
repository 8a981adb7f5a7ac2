"""Per-neuron, per-ROI synapse counts (neuPrint's ``roiInfo``): one whole-table pass, cached."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._compute import compute, tree_reduce
from .._fsutil import atomic_file
from .dense import check_dense

if TYPE_CHECKING:
    from ..store import Connectome

__all__ = ["neuron_roi_counts", "roi_counts_of"]


def _count(keys: np.ndarray, size: int, w: np.ndarray | None) -> np.ndarray:
    if w is None:
        return np.bincount(keys, minlength=size)
    order = np.argsort(keys, kind="stable")  # exact int64 sums (bincount weights are float64)
    k = keys[order]
    out = np.zeros(size, dtype=np.int64)
    if len(k):
        s = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        out[k[s]] = np.add.reduceat(w[order], s)
    return out


def _roi_counts_chunk(block, start, n: int, C: int, has_roi_pre: bool, weight: str | None = None):
    pre = block["pre"].astype(np.int64)
    post = block["post"].astype(np.int64)
    w = block[weight].astype(np.int64) if weight else None
    rpost = block["roi_post"].astype(np.int64) + 1
    down = _count(pre * C + rpost, n * C, w)
    up = _count(post * C + rpost, n * C, w)
    if has_roi_pre:
        pre_s = _count(pre * C + block["roi_pre"].astype(np.int64) + 1, n * C, w)
    else:
        pre_s = down
    return np.stack([pre_s, up, down])


def _sum_arrays(parts):
    out = parts[0].copy()
    for p in parts[1:]:
        out += p
    return out


def neuron_roi_counts(conn: Connectome, *, progress: bool | None = None, cache: bool = True) -> pd.DataFrame:
    """Per-neuron, per-ROI synapse counts (neuPrint's ``roiInfo``), long format.

    Parameters
    ----------
    conn
        The connectome (with an ROI assignment).
    progress
        Show a progress bar for the whole-table pass.
    cache
        Read / write the Parquet cache in the store's ROI folder.

    Raises
    ------
    KeyError
        The store has no ROI assignment.
    DenseMatrixTooLarge
        The ``3 x n_neurons x n_rois`` count array would exceed the dense limit.

    Returns
    -------
    pandas.DataFrame
        Columns ``index`` (int32 dense neuron index), ``roi`` (int16 ROI code,
        -1 = in no ROI), ``pre`` (rows with this neuron presynaptic whose
        presynaptic site is in the ROI), ``post`` and ``upstream`` (rows with
        this neuron postsynaptic whose postsynaptic site is in the ROI),
        ``downstream`` (rows with this neuron presynaptic whose postsynaptic
        site is in the ROI). One row is one synaptic connection; only
        non-zero rows are kept. When the store has only ``roi_post``,
        ``pre`` equals ``downstream``.

    The result is cached as Parquet in the store's ROI folder (keyed by the
    store generation) and reused.

    Examples
    --------
    >>> counts = neuron_roi_counts(conn)
    >>> counts.columns.tolist()
    ['index', 'roi', 'pre', 'post', 'downstream', 'upstream']
    >>> int(counts.downstream.sum()) == conn.n_synapses  # every row counted once per side
    True
    """
    if "roi_post" not in conn.synapse_columns or conn.rois_path is None:
        raise KeyError(f"{conn.path} has no ROI assignment; run Connectome.assign_rois first")
    from .._fsutil import no_symlinks
    from ..store import StoreError

    # a derived cache inside the ROI folder: resolved by the store's path rule (inside,
    # never through a symlink); its Parquet page checksums are verified, and a damaged
    # cache is recomputed
    cache_file = no_symlinks(conn.path, f"{conn.meta['rois']}/neuron_roi_counts.g{conn.generation}.parquet",
                             error=StoreError)
    if cache and cache_file.is_file():
        try:
            return pd.read_parquet(cache_file, page_checksum_verification=True)
        except (OSError, ValueError):
            pass
    n = conn.n_neurons
    C = len(conn.roi_names) + 1
    check_dense((3, n * C), 8, "per-neuron ROI counts")
    has_roi_pre = "roi_pre" in conn.synapse_columns
    cols = ["pre", "post", "roi_post"] + (["roi_pre"] if has_roi_pre else [])
    weight = conn.weight_column  # connection-level stores: rows count their weight
    cols += [weight] if weight else []
    parts = conn.map_partitions(_roi_counts_chunk, cols, n, C, has_roi_pre, weight, name="roi-counts")
    (tot,) = compute(tree_reduce(parts, _sum_arrays, name="roi-counts-combine"), progress=progress)
    nz = np.flatnonzero(tot.any(axis=0))
    df = pd.DataFrame(
        {
            "index": (nz // C).astype(np.int32),
            "roi": (nz % C - 1).astype(np.int16),
            "pre": tot[0, nz],
            "post": tot[1, nz],
            "downstream": tot[2, nz],
            "upstream": tot[1, nz],
        }
    )
    if cache:
        try:
            with atomic_file(cache_file) as tmp:
                df.to_parquet(tmp, index=False, write_page_checksum=True)
        except OSError:  # a read-only store still answers; it just keeps no cache
            pass
    return df



def roi_counts_of(conn: Connectome, idx: np.ndarray) -> pd.DataFrame:
    """Per (neuron, ROI code) counts of a few neurons, read through the index (no scan).

    The same columns and counting as :func:`neuron_roi_counts` restricted to
    ``idx``: outputs from the neurons' output rows, inputs from the
    post-ordered copies; on a connection-level store each row counts its
    ``weight``.

    Parameters
    ----------
    conn
        The connectome (``roi_pre`` / ``roi_post`` when present; without them every site has code -1).
    idx
        Dense neuron indices.

    Returns
    -------
    pandas.DataFrame
        ``index`` (int32), ``roi`` (int16, -1 = no ROI), ``pre``, ``post``,
        ``downstream``, ``upstream`` (int64); only non-zero rows.

    Raises
    ------
    KeyError
        An index outside the store's neurons.

    Examples
    --------
    >>> few = roi_counts_of(conn, np.array([0, 1]))
    >>> whole = neuron_roi_counts(conn)
    >>> int(few.downstream.sum()) == int(whole[whole["index"].isin([0, 1])].downstream.sum())
    True
    """
    idx = np.unique(np.asarray(idx, dtype=np.int64))
    if len(idx) and (idx[0] < 0 or idx[-1] >= conn.n_neurons):
        raise KeyError(f"neuron indices outside [0, {conn.n_neurons})")
    cols = set(conn.synapse_columns)
    weight = conn.weight_column
    w_cols = [weight] if weight else []

    def tally(index: np.ndarray, code: np.ndarray, w: np.ndarray | None, name: str) -> pd.Series:
        df = pd.DataFrame({"index": index.astype(np.int64), "roi": code.astype(np.int64),
                           "n": np.ones(len(index), np.int64) if w is None else w.astype(np.int64)})
        return df.groupby(["index", "roi"], sort=True)["n"].sum().rename(name)

    out = conn.synapses_of(idx, "pre", ["pre"] + [c for c in ("roi_pre", "roi_post") if c in cols] + w_cols)
    w = out.get(weight) if weight else None
    none = np.full(len(out["pre"]), -1, dtype=np.int64)
    parts = [tally(out["pre"], out.get("roi_pre", out.get("roi_post", none)), w, "pre"),
             tally(out["pre"], out.get("roi_post", none), w, "downstream")]
    inp = conn.synapses_of(idx, "post", ["post"] + (["roi_post"] if "roi_post" in cols else []) + w_cols)
    w = inp.get(weight) if weight else None
    up = tally(inp["post"], inp.get("roi_post", np.full(len(inp["post"]), -1, dtype=np.int64)), w, "post")
    parts += [up, up.rename("upstream")]
    df = pd.concat(parts, axis=1).fillna(0).astype(np.int64).reset_index()
    df = df[(df[["pre", "post", "downstream", "upstream"]] != 0).any(axis=1)]
    return pd.DataFrame({"index": df["index"].to_numpy(np.int32), "roi": df["roi"].to_numpy(np.int16),
                         **{c: df[c].to_numpy(np.int64) for c in ("pre", "post", "downstream", "upstream")}})
