"""Helpers for testing code that uses connectome_dask (and for the package's own tests).

* :func:`raise_if_dask_computes` - fail when a block of code runs more dask
  graphs than allowed (xarray's helper of the same name, for dask's local
  schedulers), e.g. to check that bad input is refused before any work;
* :func:`pair_reference` - the neuron-pair count rule stated in plain pandas,
  an independent reference for :func:`connectome_dask.aggregate.pair_counts`;
* :func:`assert_pairs_equal` - compare two pair tables exactly, whatever their
  row order and integer dtypes;
* :func:`build_small_store` - a small random store (and its raw tables) for tests.

Examples
--------
>>> store, neurons, synapses = build_small_store(tmp_path / "t", n_neurons=50, n_synapses=2_000)
>>> from connectome_dask.aggregate import pair_counts
>>> assert_pairs_equal(pair_counts(store, progress=False), pair_reference(synapses))
>>> with raise_if_dask_computes():
...     _ = store.neurons  # reading the neuron table runs no dask graph
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["assert_pairs_equal", "build_small_store", "pair_reference", "raise_if_dask_computes"]


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[None]:
    """Raise ``RuntimeError`` if the block runs more than ``max_computes`` dask graphs.

    Counts graph executions on dask's local schedulers (threads, processes,
    sync) with a ``dask.callbacks.Callback``; a ``distributed`` client is not
    seen (use ``distributed.utils_test`` there).

    Parameters
    ----------
    max_computes
        Graph executions allowed inside the block.

    Raises
    ------
    RuntimeError
        On leaving the block, when more graphs ran.

    Examples
    --------
    >>> import dask
    >>> with raise_if_dask_computes(max_computes=1):
    ...     _ = dask.delayed(sum)([1, 2]).compute(scheduler="sync")
    >>> with raise_if_dask_computes():
    ...     _ = dask.delayed(sum)([1, 2]).compute(scheduler="sync")
    Traceback (most recent call last):
    ...
    RuntimeError: 1 dask graph(s) ran inside a block that allows 0 (1 task(s))
    """
    from dask.callbacks import Callback

    counts = {"graphs": 0, "tasks": 0}

    class _Counter(Callback):
        def _start(self, dsk: Any) -> None:
            counts["graphs"] += 1

        def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
            counts["tasks"] += 1

    with _Counter():
        yield
    if counts["graphs"] > max_computes:
        raise RuntimeError(
            f"{counts['graphs']} dask graph(s) ran inside a block that allows {max_computes} "
            f"({counts['tasks']} task(s))"
        )


def pair_reference(
    synapses: pd.DataFrame,
    *,
    pre: str = "pre",
    post: str = "post",
    by_roi: str | None = None,
    rois: Any = None,
    confidence: float | None = None,
    confidence_column: str = "confidence",
    min_weight: int = 1,
) -> pd.DataFrame:
    """Synapse counts per neuron pair, stated in pandas (the rule :func:`pair_counts` implements).

    Keep rows whose ``roi_post`` code is in ``rois`` (if given) and whose
    confidence is strictly above ``confidence`` at float32 precision (if
    given); count rows per ``(pre, post)`` (and ``by_roi`` column); drop pairs
    with fewer than ``min_weight`` rows; sort.

    Parameters
    ----------
    synapses
        One row per synapse.
    pre, post
        Neuron columns (dense indices or body IDs).
    by_roi
        Also group by this column (e.g. ``"roi_post"``); the result calls it ``roi``.
    rois
        ROI codes to keep (compared with ``roi_post``).
    confidence
        Strict lower bound on ``confidence_column``.
    confidence_column
        Column compared with ``confidence``.
    min_weight
        Smallest count kept.

    Returns
    -------
    pandas.DataFrame
        ``pre, post, [roi,] weight`` (int64), sorted.

    Examples
    --------
    >>> syn = pd.DataFrame({"pre": [0, 0, 1], "post": [1, 1, 0], "confidence": [0.9, 0.3, 0.8]})
    >>> pair_reference(syn, confidence=0.5).values.tolist()
    [[0, 1, 1], [1, 0, 1]]
    """
    df = synapses
    keep = np.ones(len(df), dtype=bool)
    if rois is not None:
        keep &= df["roi_post"].isin(list(np.atleast_1d(rois))).to_numpy()
    if confidence is not None:
        keep &= (df[confidence_column].to_numpy(np.float32) > np.float32(confidence))
    keys = [pre, post] + ([by_roi] if by_roi else [])
    out = df.loc[keep].groupby(keys, sort=True).size().rename("weight").reset_index()
    out = out[out["weight"] >= min_weight]
    out = out.rename(columns={pre: "pre", post: "post", **({by_roi: "roi"} if by_roi else {})})
    return out.astype("int64").reset_index(drop=True)


def assert_pairs_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Assert two pair tables hold the same rows (order and integer dtypes ignored).

    Parameters
    ----------
    got, expected
        Tables with the same columns (e.g. ``pre, post, weight``).

    Raises
    ------
    AssertionError
        Naming the number of differing rows and an example.

    Examples
    --------
    >>> a = pd.DataFrame({"pre": [1, 0], "post": [0, 1], "weight": [2, 3]})
    >>> assert_pairs_equal(a, a.iloc[::-1].astype("int32"))
    >>> assert_pairs_equal(a, a.assign(weight=[2, 4]))
    Traceback (most recent call last):
    ...
    AssertionError: 1 row(s) only in got, 1 only in expected; e.g. got {'pre': 0, 'post': 1, 'weight': 3}
    """
    cols = list(expected.columns)
    if sorted(got.columns) != sorted(cols):
        raise AssertionError(f"columns differ: got {list(got.columns)}, expected {cols}")
    a = got[cols].astype("int64").sort_values(cols).reset_index(drop=True)
    b = expected[cols].astype("int64").sort_values(cols).reset_index(drop=True)
    merged = a.merge(b, how="outer", on=cols, indicator=True)
    only_a = merged[merged["_merge"] == "left_only"]
    only_b = merged[merged["_merge"] == "right_only"]
    if len(a) != len(b) or len(only_a) or len(only_b):
        example = (only_a if len(only_a) else only_b)[cols].head(1).to_dict("records")
        side = "got" if len(only_a) else "expected"
        raise AssertionError(f"{len(only_a)} row(s) only in got, {len(only_b)} only in expected"
                             + (f"; e.g. {side} {example[0]}" if example else
                                f"; {len(a)} vs {len(b)} rows (duplicates)"))


def build_small_store(
    path: str | os.PathLike,
    *,
    n_neurons: int = 200,
    n_synapses: int = 10_000,
    n_types: int = 8,
    n_rois: int = 4,
    chunk_rows: int = 1024,
    seed: int = 0,
):
    """Write a small random store with types, confidences and ROI codes; return it and its tables.

    Parameters
    ----------
    path
        Store directory to create (must not exist).
    n_neurons, n_synapses
        Sizes.
    n_types
        Cell types ``T0..`` (about one neuron in ten untyped).
    n_rois
        ROIs ``R0..``; ``roi_pre`` / ``roi_post`` codes are random, -1 = no ROI.
    chunk_rows
        Zarr chunk length of the store.
    seed
        Random seed.

    Returns
    -------
    tuple
        ``(Connectome, neurons, synapses)``: the raw tables as written
        (``synapses.pre`` / ``post`` are dense indices into ``neurons``).

    Examples
    --------
    >>> store, neurons, synapses = build_small_store(tmp_path / "s", n_neurons=30, n_synapses=500)
    >>> store.n_synapses, store.roi_names
    (500, ['R0', 'R1', 'R2', 'R3'])
    """
    from .store import StoreWriter

    rng = np.random.default_rng(seed)
    body = np.sort(rng.choice(10**9, n_neurons, replace=False)).astype(np.int64) + 10**9
    types = np.array([f"T{i}" for i in rng.integers(0, n_types, n_neurons)], dtype=object)
    types[rng.random(n_neurons) < 0.1] = None
    neurons = pd.DataFrame({"bodyId": body, "type": types,
                            "instance": [None if t is None else f"{t}_R" for t in types]})
    syn = pd.DataFrame({
        "pre": rng.integers(0, n_neurons, n_synapses).astype(np.int32),
        "post": rng.integers(0, n_neurons, n_synapses).astype(np.int32),
        "confidence": rng.random(n_synapses).astype(np.float32),
        "roi_pre": rng.integers(-1, n_rois, n_synapses).astype(np.int16),
        "roi_post": rng.integers(-1, n_rois, n_synapses).astype(np.int16),
    })
    names = [f"R{i}" for i in range(n_rois)]
    cols = {c: str(syn[c].dtype) for c in syn.columns if c not in ("pre", "post")}
    with StoreWriter(path, n_neurons, cols, chunk_rows=chunk_rows) as w:
        w.append({c: syn[c].to_numpy() for c in syn.columns})
        conn = w.close(neurons, {"name": Path(path).name}, rois={"names": names, "primary": names})
    return conn, neurons, syn
