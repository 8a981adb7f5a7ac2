"""neuPrint- and crantpy-style queries on a local connectome store, any size.

Every function takes ``client=None`` (the default connectome from
:func:`connectome_dask.open`) or a :class:`~connectome_dask.Connectome` passed
as ``client=``, and returns pandas DataFrames with neuPrint's / crantpy's
column names, in a deterministic order.

How the work is done: neuron criteria compile to masks over the neuron table;
neuron-pair counts come from :func:`connectome_dask.aggregate.pair_counts`
(which reads through the per-body index when few bodies are involved and
streams over partitions otherwise); synapse-level reads of a few bodies use
``conn.synapses_of`` (the store's clustered indexes, no scan), larger selections
stream over partitions. No dense neuron x neuron object is built.

Conventions (deliberate choices where neuPrint has quirks)
----------------------------------------------------------
* A connection's ROI is its postsynaptic site's ROI (``roi_post``).
* A pair's *weight* counts every stored synapse row of the pair (no
  confidence filter; ingest decides which synapses are stored).
* Super-level ROIs sum the primary ROIs under them; sites in no primary ROI
  are reported under ``"NotPrimary"``.
* Criteria that match nothing give typed, empty frames (neuPrint's
  ``fetch_adjacencies`` raises instead when a side matches nothing).
"""

from __future__ import annotations

from .compute import plan as _plan
from .criteria import NeuronCriteria, SynapseCriteria
from .query.crantpy import get_adjacency, get_connectivity, get_synapse_counts, get_synapses
from .query.neuprint import (
    connection_table_to_matrix,
    fetch_adjacencies,
    fetch_neurons,
    fetch_synapse_connections,
    fetch_synapses,
    fetch_traced_adjacencies,
    merge_neuron_properties,
)

__all__ = [
    "fetch_neurons",
    "fetch_adjacencies",
    "fetch_traced_adjacencies",
    "fetch_synapses",
    "fetch_synapse_connections",
    "merge_neuron_properties",
    "connection_table_to_matrix",
    "get_synapses",
    "get_connectivity",
    "get_adjacency",
    "get_synapse_counts",
    "NeuronCriteria",
    "SynapseCriteria",
]

#: synapse-level reads through the index when they touch at most this many rows
#: (re-exported: the read-path rule and its limit live in :mod:`connectome_dask.compute.plan`)
INDEX_ROWS_LIMIT = _plan.INDEX_ROWS_LIMIT
