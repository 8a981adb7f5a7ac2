"""The query functions, by style: :mod:`.neuprint` (``fetch_*``) and :mod:`.crantpy` (``get_*``).

:mod:`connectome_dask.queries` re-exports every name (the module they were written in).
"""

from __future__ import annotations

from .crantpy import get_adjacency, get_connectivity, get_synapse_counts, get_synapses
from .neuprint import (
    connection_table_to_matrix,
    fetch_adjacencies,
    fetch_neurons,
    fetch_synapse_connections,
    fetch_synapses,
    fetch_traced_adjacencies,
    merge_neuron_properties,
)

__all__ = [
    "connection_table_to_matrix",
    "fetch_adjacencies",
    "fetch_neurons",
    "fetch_synapse_connections",
    "fetch_synapses",
    "fetch_traced_adjacencies",
    "get_adjacency",
    "get_connectivity",
    "get_synapse_counts",
    "get_synapses",
    "merge_neuron_properties",
]
