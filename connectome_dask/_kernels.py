"""Compatibility shim: the store's kernels live in :mod:`connectome_dask.kernels.scatter`."""

from .kernels.scatter import *  # noqa: F403
from .kernels.scatter import __all__, scatter_rows  # noqa: F401
