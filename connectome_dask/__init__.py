"""connectome_dask: whole-brain connectome analysis as parallel, out-of-core Dask jobs.

Open a store with :func:`open`; query it with the neuPrint-style functions
(:func:`fetch_neurons`, :func:`fetch_adjacencies`, ...) and build labelled
matrices with :meth:`Connectome.adjacency` or :class:`NestedMatrix`.
"""

from __future__ import annotations

from . import config as _config  # noqa: F401  (registers dask config defaults)
from .store import (
    Connectome,
    StoreError,
    default_connectome,
    open,
    set_default_connectome,
    write_store,
)

__version__ = "0.1.0"

__all__ = [
    "Connectome",
    "StoreError",
    "default_connectome",
    "open",
    "set_default_connectome",
    "write_store",
    "__version__",
]
