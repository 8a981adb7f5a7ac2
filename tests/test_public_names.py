"""Every public name of the package before the "one house" reshaping is still importable from where it was.

``OLD_PUBLIC`` lists, per module, the names in ``__all__`` and the public
top-level functions, classes and constants at commit 973fb2c (the tree before
the package was split into ``store/``, ``compute/``, ``rois/``, ``matrix/``,
``query/``, ...). Names that moved to the CLI because argparse lives there
stay importable from their old module with a DeprecationWarning.
"""

from __future__ import annotations

import importlib
import warnings

import pytest

OLD_PUBLIC: dict[str, list[str]] = {'connectome_dask': ['All', 'Connectome', 'DenseMatrixTooLarge', 'DirectedNestedMatrix', 'IsNull',
                     'NestedMatrix', 'NeuronCriteria', 'NeuropilCollection', 'NotNull', 'RoiSet',
                     'StoreError', 'SynapseCriteria', '__version__', 'assign_rois',
                     'attach_synapses', 'connection_table_to_matrix', 'datasets',
                     'default_connectome', 'fetch_adjacencies', 'fetch_neurons',
                     'fetch_roi_hierarchy', 'fetch_skeleton', 'fetch_synapse_connections',
                     'fetch_synapses', 'fetch_traced_adjacencies', 'get_adjacency',
                     'get_connectivity', 'get_synapse_counts', 'get_synapses', 'ingest',
                     'merge_neuron_properties', 'open', 'open_dataarray', 'open_matrix',
                     'plot_type_heatmap', 'save_dataarray', 'set_default_connectome',
                     'write_store'],
 'connectome_dask.aggregate': ['DenseMatrixTooLarge', 'INDEX_PATH_FRACTION', 'adjacency',
                               'check_dense', 'group_counts', 'max_dense_bytes',
                               'neuron_roi_counts', 'pair_counts', 'resolve_neurons',
                               'resolve_rois'],
 'connectome_dask.cli': ['build_parser', 'cmd_assign_rois', 'cmd_demo', 'cmd_info', 'cmd_ingest',
                         'cmd_matrix', 'cmd_synth', 'main'],
 'connectome_dask.cluster': ['JOBQUEUE_DEFAULTS', 'JOBQUEUE_KINDS', 'LOCAL_MEMORY_FRACTIONS',
                             'add_scheduler_argument', 'client_from_args', 'connect',
                             'dashboard_link', 'default_jobqueue_file', 'get_client',
                             'jobqueue_cluster', 'jobqueue_options', 'local_cluster'],
 'connectome_dask.config': ['DEFAULTS_FILE'],
 'connectome_dask.criteria': ['CriteriaError', 'INDEX_ROWS_LIMIT', 'IsNull', 'NOT_PRIMARY',
                              'NeuronCriteria', 'NotNull', 'RoiModel', 'SynapseCriteria',
                              'UnknownColumnError', 'UnknownRoiError', 'code_roi_counts',
                              'copy_as_neuroncriteria', 'neuron_roi_table'],
 'connectome_dask.datasets': ['CAVE_VOXEL_SIZE', 'demo_store', 'meshes_for', 'procedural_meshes',
                              'synthetic', 'write_procedural_meshes'],
 'connectome_dask.ingest': ['DEFAULT_BATCH_ROWS', 'DEFAULT_BUCKET_ROWS', 'DIALECTS', 'IngestError',
                            'add_arguments', 'ingest', 'run_from_args'],
 'connectome_dask.matrix': ['All', 'DenseMatrixTooLarge', 'DirectedNestedMatrix', 'EB_COLUMN_ORDER',
                            'NestedMatrix', 'NeuropilCollection', 'WITHIN_TYPE_ORDER_RULES',
                            'max_dense_bytes', 'natural_type_order', 'open_dataarray',
                            'open_matrix', 'plot_type_heatmap', 'save_dataarray'],
 'connectome_dask.plotting': ['PURPLE_CMAP_COLORS', 'bin_matrix', 'plot_nested',
                              'plot_type_heatmap'],
 'connectome_dask.queries': ['INDEX_ROWS_LIMIT', 'NeuronCriteria', 'SynapseCriteria',
                             'connection_table_to_matrix', 'fetch_adjacencies', 'fetch_neurons',
                             'fetch_synapse_connections', 'fetch_synapses',
                             'fetch_traced_adjacencies', 'get_adjacency', 'get_connectivity',
                             'get_synapse_counts', 'get_synapses', 'merge_neuron_properties'],
 'connectome_dask.rois': ['MESH_SUFFIXES', 'RoiError', 'RoiRepairWarning', 'RoiScaleWarning',
                          'RoiSet', 'assign_rois', 'fetch_roi_hierarchy'],
 'connectome_dask.skeletons': ['SKELETON_COLUMNS', 'SkeletonError', 'attach_synapses',
                               'fetch_skeleton', 'from_navis', 'heal_skeleton', 'read_swc',
                               'skeleton_to_networkx', 'to_navis', 'write_swc'],
 'connectome_dask.store': ['BY_POST_COLUMNS', 'Connectome', 'DEFAULT_CHUNK_ROWS',
                           'DEFAULT_PARTITION_CHUNKS', 'FORMAT_NAME', 'POSITION_COLUMNS_CENTER',
                           'POSITION_COLUMNS_PAIR', 'SCHEMA_VERSION', 'STANDARD_NEURON_COLUMNS',
                           'StoreError', 'StoreWriter', 'default_connectome', 'open', 'replace_dir',
                           'safe_name', 'set_default_connectome', 'write_json_atomic',
                           'write_store']}

MOVED_TO_CLI = {
    ("connectome_dask.cluster", "add_scheduler_argument"),
    ("connectome_dask.ingest", "add_arguments"),
    ("connectome_dask.ingest", "run_from_args"),
}


@pytest.mark.parametrize("module", sorted(OLD_PUBLIC))
def test_old_public_names_import(module):
    mod = importlib.import_module(module)
    missing = []
    for name in OLD_PUBLIC[module]:
        with warnings.catch_warnings():
            warnings.simplefilter("error" if (module, name) not in MOVED_TO_CLI else "ignore")
            if not hasattr(mod, name):
                missing.append(name)
    assert not missing, f"{module} lost {missing}"


def test_moved_names_warn_and_are_the_cli_functions():
    from connectome_dask import cli

    for module, name in sorted(MOVED_TO_CLI):
        mod = importlib.import_module(module)
        with pytest.warns(DeprecationWarning, match="moved to connectome_dask.cli"):
            obj = getattr(mod, name)
        assert obj.__module__ == cli.__name__
