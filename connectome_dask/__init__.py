"""connectome_dask: whole-brain connectome analysis as parallel, out-of-core Dask jobs.

Open a store with :func:`open`; query it with the neuPrint-style functions
(:func:`fetch_neurons`, :func:`fetch_adjacencies`, ...) and build labelled
matrices with :meth:`Connectome.adjacency` or :class:`NestedMatrix`.

Examples
--------
>>> import connectome_dask as cd
>>> conn = cd.datasets.synthetic(tmp_path / "tiny", n_neurons=300, n_synapses=20_000, progress=False)
>>> conn.n_synapses
20000
>>> neuron_df, conn_df = cd.fetch_adjacencies(conn.neurons.bodyId[:5].tolist(), None, client=conn)
>>> list(conn_df.columns)
['bodyId_pre', 'bodyId_post', 'roi', 'weight']
"""

from __future__ import annotations

from . import config as _config  # noqa: F401  (registers dask config defaults)
from . import datasets
from .aggregate import DenseMatrixTooLarge
from .criteria import IsNull, NeuronCriteria, NotNull, SynapseCriteria
from .direct import adjacency_from_files
from .ingest import ingest
from .matrix import (
    All,
    DirectedNestedMatrix,
    NestedMatrix,
    NeuropilCollection,
    open_dataarray,
    open_matrix,
    plot_type_heatmap,
    save_dataarray,
)
from .queries import (
    connection_table_to_matrix,
    fetch_adjacencies,
    fetch_neurons,
    fetch_synapse_connections,
    fetch_synapses,
    fetch_traced_adjacencies,
    get_adjacency,
    get_connectivity,
    get_synapse_counts,
    get_synapses,
    merge_neuron_properties,
)
from .rois import RoiSet, assign_rois, fetch_roi_hierarchy
from .skeletons import attach_synapses, fetch_skeleton
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
    "All",
    "Connectome",
    "adjacency_from_files",
    "RoiSet",
    "assign_rois",
    "DenseMatrixTooLarge",
    "DirectedNestedMatrix",
    "IsNull",
    "NestedMatrix",
    "NeuronCriteria",
    "NeuropilCollection",
    "NotNull",
    "StoreError",
    "SynapseCriteria",
    "attach_synapses",
    "connection_table_to_matrix",
    "datasets",
    "default_connectome",
    "fetch_adjacencies",
    "fetch_neurons",
    "fetch_roi_hierarchy",
    "fetch_skeleton",
    "fetch_synapse_connections",
    "fetch_synapses",
    "fetch_traced_adjacencies",
    "get_adjacency",
    "get_connectivity",
    "get_synapse_counts",
    "get_synapses",
    "ingest",
    "merge_neuron_properties",
    "open",
    "open_dataarray",
    "open_matrix",
    "plot_type_heatmap",
    "save_dataarray",
    "set_default_connectome",
    "write_store",
    "__version__",
]

