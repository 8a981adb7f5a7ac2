"""Compatibility shim: the containment kernels live in :mod:`connectome_dask.kernels.containment`.

Re-exports the public kernels and the layout constants / private helpers
that :mod:`connectome_dask.rois`, the tests and the benchmarks use.
"""

from .kernels.containment import *  # noqa: F403
from .kernels.containment import (  # noqa: F401
    BLOCK_SHIFT,
    RADIX_BITS,
    SORT_MIN,
    SUB_MIXED,
    SUB_N,
    SUB_NS,
    SUB_SHIFT,
    SUB_WORDS,
    TREC,
    __all__,
    block_table,
    column_crossings,
    gwn_points,
    pack_sub,
    query,
    scratch,
    sub_labels,
    sweep,
    tri_cells,
)
