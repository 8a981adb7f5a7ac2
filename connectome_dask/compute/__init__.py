"""Index-level map-reduce: counts over dense neuron indices, below criteria and labels.

Layers (one direction)::

    aggregate / queries / criteria    selections -> dense indices, labels, DataFrames
        compute                       read plan, dask graphs, tree reductions (this package)
            kernels                   numba kernels on integer arrays
            store                     rows, the per-body index, the connection table

Nothing here knows :class:`~connectome_dask.NeuronCriteria`: inputs are
sorted dense neuron indices (``None`` = all), ROI codes and thresholds.

``plan``
    :func:`plan_read`, the one rule choosing index / connection table / scan.
``pairs``
    Neuron-pair counts (:func:`pair_counts`).
``groups``
    Counts summed over neuron groups (:func:`group_counts`).
``roi_counts``
    Per-neuron per-ROI counts (:func:`neuron_roi_counts`).
``nt``
    Neurotransmitters: neuron-level and per-connection calls from the
    per-synapse probabilities, the sign table (:data:`~connectome_dask.compute.nt.NT_SIGNS`).
``dense``
    The dense-result limit (:func:`max_dense_bytes`, :func:`check_dense`).
"""

from __future__ import annotations

from .dense import DenseMatrixTooLarge, check_dense, max_dense_bytes
from .groups import group_counts
from .pairs import RowFilter, pair_counts
from .plan import INDEX_PATH_FRACTION, INDEX_ROWS_LIMIT, METHODS, Plan, plan_read
from .roi_counts import neuron_roi_counts

__all__ = [
    "Plan",
    "plan_read",
    "METHODS",
    "INDEX_PATH_FRACTION",
    "INDEX_ROWS_LIMIT",
    "RowFilter",
    "pair_counts",
    "group_counts",
    "neuron_roi_counts",
    "max_dense_bytes",
    "check_dense",
    "DenseMatrixTooLarge",
]
