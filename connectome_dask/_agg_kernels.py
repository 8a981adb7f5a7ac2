"""Compatibility shim: the pair kernels live in :mod:`connectome_dask.kernels.pairs`."""

from .kernels.pairs import *  # noqa: F403
from .kernels.pairs import (  # noqa: F401
    __all__,
    block_add_pairs,
    code_range,
    pair_roi_runs,
    pair_roi_weight_runs,
    pair_runs,
    pair_weight_runs,
    row_mask,
)
