"""neuprint-python's public namespace on a local connectome store.

Port a neuprint-python notebook by changing its imports::

    import connectome_dask.neuprint as neuprint
    from connectome_dask.neuprint import Client, fetch_neurons, NeuronCriteria as NC

``Client(server, dataset=None, token=None, ...)`` takes a store path (or an
open Connectome, or ``''`` for the store opened last); every query function
and the submodules ``neuprint.utils``, ``neuprint.skeleton``,
``neuprint.queries`` and ``neuprint.client`` keep neuprint-python 0.6.4's
names, signatures and result columns. The remaining differences are listed
in the README (``neuprint-python / crantpy -> connectome_dask``).

Examples
--------
>>> import connectome_dask.neuprint as neuprint
>>> c = neuprint.Client(conn.path, "hemibrain:v1.2.1", token="")
>>> neuron_df, roi_counts_df = neuprint.fetch_neurons(neuprint.NeuronCriteria(type="KC.*"))
>>> neuron_df.columns[:3].tolist()
['bodyId', 'instance', 'type']
"""

from __future__ import annotations

from . import client, queries, skeleton, utils
from .client import (
    Client,
    NoDefaultClientError,
    clear_default_client,
    default_client,
    inject_client,
    list_all_clients,
    set_default_client,
)
from .neuroncriteria import NeuronCriteriaError
from .queries import (
    IsNull,
    NeuronCriteria,
    NotNull,
    SegmentCriteria,
    SynapseCriteria,
    fetch_adjacencies,
    fetch_all_rois,
    fetch_common_connectivity,
    fetch_custom,
    fetch_downstream_orphan_tasks,
    fetch_mean_synapses,
    fetch_meta,
    fetch_neurons,
    fetch_output_completeness,
    fetch_paths,
    fetch_primary_rois,
    fetch_roi_hierarchy,
    fetch_shortest_paths,
    fetch_simple_connections,
    fetch_synapse_connections,
    fetch_synapses,
    fetch_traced_adjacencies,
)
from .skeleton import (
    attach_synapses_to_skeleton,
    calc_segment_distances,
    fetch_skeleton,
    heal_skeleton,
    reorient_skeleton,
    skeleton_df_to_nx,
    skeleton_df_to_swc,
    skeleton_segments,
    skeleton_swc_to_df,
    upsample_skeleton,
)
from .utils import connection_table_to_matrix, merge_neuron_properties

__all__ = [
    "client", "queries", "skeleton", "utils",
    "Client", "NoDefaultClientError", "NeuronCriteriaError", "default_client", "set_default_client",
    "clear_default_client", "list_all_clients", "inject_client",
    "NeuronCriteria", "SegmentCriteria", "SynapseCriteria", "NotNull", "IsNull",
    "fetch_custom", "fetch_meta", "fetch_all_rois", "fetch_primary_rois", "fetch_roi_hierarchy",
    "fetch_neurons", "fetch_simple_connections", "fetch_adjacencies", "fetch_traced_adjacencies",
    "fetch_common_connectivity", "fetch_paths", "fetch_shortest_paths", "fetch_synapses",
    "fetch_mean_synapses", "fetch_synapse_connections", "fetch_output_completeness",
    "fetch_downstream_orphan_tasks",
    "merge_neuron_properties", "connection_table_to_matrix",
    "fetch_skeleton", "skeleton_df_to_nx", "skeleton_swc_to_df", "skeleton_df_to_swc", "heal_skeleton",
    "reorient_skeleton", "calc_segment_distances", "skeleton_segments", "upsample_skeleton",
    "attach_synapses_to_skeleton",
]
