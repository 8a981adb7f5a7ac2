"""Helpers shared by the neuPrint- and crantpy-style queries: the client, criteria, row selection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._compute import compute
from ..compute import plan as _plan
from ..criteria import (
    NeuronCriteria,
    copy_as_neuroncriteria,
)

if TYPE_CHECKING:
    from ..store import Connectome

__all__ = ["INDEX_ROWS_LIMIT"]

#: synapse-level reads through the index when they touch at most this many rows
#: (re-exported: the read-path rule and its limit live in :mod:`connectome_dask.compute.plan`)
INDEX_ROWS_LIMIT = _plan.INDEX_ROWS_LIMIT


def _conn(client: Any) -> Connectome:
    from ..store import Connectome, default_connectome

    if client is None:
        return default_connectome()
    if not isinstance(client, Connectome):
        raise TypeError(f"client must be a Connectome (from connectome_dask.open), got {type(client).__name__}")
    return client


def _crit(obj: Any, conn: Connectome) -> NeuronCriteria:
    c = copy_as_neuroncriteria(obj)
    c.validate(conn)
    return c


def _int_weights(s: pd.Series) -> pd.Series:
    return s.astype(np.int64)


# ----------------------------------------------------------------------------- synapse rows


def _filter_block(block: dict[str, np.ndarray], start: int, pre_ok: np.ndarray | None,
                  post_ok: np.ndarray | None, either: bool) -> dict[str, np.ndarray]:
    keep: np.ndarray
    if pre_ok is not None and post_ok is not None:
        a, b = pre_ok[block["pre"]], post_ok[block["post"]]
        keep = (a | b) if either else (a & b)
    elif pre_ok is not None:
        keep = pre_ok[block["pre"]]
    elif post_ok is not None:
        keep = post_ok[block["post"]]
    else:
        keep = np.ones(len(block["pre"]), dtype=bool)
    out = {c: v[keep] for c, v in block.items()}
    out["_row"] = np.flatnonzero(keep).astype(np.int64) + start
    return out


def _select_rows(conn: Connectome, pre_idx: np.ndarray | None, post_idx: np.ndarray | None,
                 columns: Sequence[str], *, either: bool = False,
                 progress: bool | None = None) -> dict[str, np.ndarray]:
    """Synapse rows with pre in ``pre_idx`` and (or, with ``either``) post in ``post_idx``.

    Few rows: through the index; otherwise a streaming scan. Rows come back in
    storage order with their row ids in ``_row``.
    """
    cols = list(dict.fromkeys(["pre", "post", *columns]))
    nn = conn.n_neurons
    plan = _plan.plan_read(conn, pre=pre_idx, post=post_idx, what="rows", either=either)
    pre_ok = None if pre_idx is None else np.zeros(nn, dtype=bool)
    post_ok = None if post_idx is None else np.zeros(nn, dtype=bool)
    if pre_ok is not None:
        pre_ok[pre_idx] = True
    if post_ok is not None:
        post_ok[post_idx] = True
    if plan.method == "index":
        # outputs are row ranges, inputs ranges of the post-ordered copies: no scan
        if either:
            # plan_read reads "pre or post" rows through the index only when both sides are given
            assert pre_idx is not None and post_idx is not None, plan
            a = conn.synapses_of(pre_idx, "pre", cols)
            b = conn.synapses_of(post_idx, "post", cols)
            rows, first = np.unique(np.concatenate([a["row"], b["row"]]), return_index=True)
            d = {c: np.concatenate([a[c], b[c]])[first] for c in cols}
        else:
            # ... and one side's rows only when that side is given
            side = plan.side
            idx = pre_idx if side == "pre" else post_idx
            assert side is not None and idx is not None, plan
            got = conn.synapses_of(idx, side, cols)
            rows = got.pop("row")
            d = got
        d = _filter_block(d, 0, pre_ok, post_ok, either)
        d["_row"] = rows[d["_row"]]
        return d
    tasks = conn.map_partitions(_filter_block, cols, pre_ok, post_ok, either, name="select-synapses")
    parts = compute(*tasks, progress=progress)
    return {c: np.concatenate([p[c] for p in parts]) for c in [*cols, "_row"]}


def _conf_col(conn: Connectome, site: str) -> str | None:
    cols = conn.synapse_columns
    if f"confidence_{site}" in cols:
        return f"confidence_{site}"
    return "confidence" if "confidence" in cols else None


def _ids_or_none(obj: Any, conn: Connectome) -> np.ndarray | None:
    if obj is None:
        return None
    return _crit(obj, conn).indices(conn)


