"""Nested (cell-type ordered) connectivity matrices, from pandas tables up to the whole brain.

This module mirrors crantpy's ``crantpy.queries`` nested connectivity
matrices (:class:`NestedMatrix`, :class:`DirectedNestedMatrix`,
:class:`NeuropilCollection`, :data:`All`): same constructors, arguments,
ordering rules and weighting semantics, so notebooks port by changing an
import. Beyond crantpy, every constructor also accepts a
:class:`~connectome_dask.store.Connectome` (or a dask DataFrame of synapses):
pair counts are aggregated out of core by :mod:`connectome_dask.aggregate`
and the neuron-level matrix is kept as a sparse matrix, never as a dense
neuron x neuron array.

Semantics (crantpy's)
---------------------
Steps in crantpy's order: the annotation scope per synapse row, then the
source / target axis filters, then rows with the same ``id`` counted once
(the first kept row; not when summing a column), then the per-pair weights.

* Weights: ``"count"`` synapses per (pre, post) pair; ``"column"`` sum of a
  synapse column per pair; ``"relative_outgoing"`` counts divided by the
  presynaptic neuron's total over the pairs kept; ``"relative_incoming"``
  likewise per postsynaptic neuron.
* ``annotation_scope="annotated_only"`` keeps only synapse rows whose two
  neurons both have an annotation row, and the matrix's neurons are those of
  the kept rows; ``"all"`` keeps every row and appends neurons without
  annotation rows after the typed blocks. Annotated neurons whose type is
  missing are appended too (before the unannotated ones), each group sorted
  by ID string. (``from_connectivity`` keeps every annotated row / column of
  its input, as crantpy.)
* Type blocks follow a natural sort (leading letters, then the number, then
  the label: ``ER2 < ER10 < ER``), or ``type_order``, whose entries pull in
  the exact label or every label with that letter prefix, in natural order;
  the remaining types follow. Neurons within a type keep annotation row
  order, except ``"EPG/PEG"``: ordered by EB column (R1, L8, R2, L7, ...)
  read from ``cell_instance`` then ``cell_subtype``. ``neuron_to_type``
  iterates in annotation order.
* ``from_synapses_by_neuropil``: a synapse counts in every listed neuropil
  mesh containing it; ``"other"`` holds those in none of the listed ones.
  DataFrames and stores with meshes (``rois=`` or the store's own) are
  tested against the meshes (a store partition by partition, the same
  result); a store without meshes falls back to its ROI codes and hierarchy.
  ``coordinates="pixels"`` scales by ``voxel_size``, default crantpy's
  ``(8, 8, 42)`` nm (:data:`connectome_dask.crantpy.SCALE`), after adding
  ``voxel_offset``.
* ``mean_type_matrix`` averages over every neuron pair of the block,
  including zeros; ``get_relative_weights`` divides each row by its sum
  (rows summing to 0 stay 0).
* Logging: crantpy's WARNING and INFO messages on the
  ``connectome_dask.crantpy`` logger.

Examples
--------
>>> import pandas as pd
>>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2, 2], "post_pt_root_id": [3, 4, 3, 3]})
>>> ann = pd.DataFrame({"root_id": [1, 2, 3, 4], "cell_type": ["KC", "KC", "MBON", "MBON"]})
>>> m = NestedMatrix.from_synapses(syn, ann, weight_mode="count")
>>> m.ordered_neurons
('1', '2', '3', '4')
>>> m.sum_type_matrix.loc["KC", "MBON"]
np.float64(4.0)

Modules
-------
One concern per module, imported in this order (each only imports the ones
above it):

* :mod:`connectome_dask.labels` (outside the package): ID / label
  normalisation and :func:`natural_type_order`.
* ``common``: argument types, checks, provenance.
* ``axes``: the resolved annotation table and the ordered axes (crantpy's ordering rules).
* ``select``: :data:`All`, :class:`NeuropilCollection`, axis selectors.
* ``sources``: aggregated neuron pairs from pandas / dask tables,
  connectivity tables and stores; neuropil groups.
* ``layout``: the on-disk Zarr layout (format markers, array writer, axes).
* ``base``: ``_NestedBase``, the immutable sparse storage with its dense,
  xarray, Zarr and plot views.
* ``nested``: :class:`NestedMatrix`, :class:`DirectedNestedMatrix`.
* ``io``: :func:`open_matrix`, :func:`save_dataarray`, :func:`open_dataarray`.
* ``heatmap``: :func:`plot_type_heatmap` (builds a type matrix, drawn by
  :mod:`connectome_dask.plotting`, which imports nothing of this package).
"""

from __future__ import annotations

from ..aggregate import DenseMatrixTooLarge, max_dense_bytes
from ..labels import is_missing as _is_missing  # noqa: F401  (old private name)
from ..labels import natural_key as _natural_key  # noqa: F401  (old private name)
from ..labels import natural_type_order
from ..labels import str_array as _str_array  # noqa: F401  (old private name)
from ..labels import str_value as _str_value  # noqa: F401  (old private name)
from .axes import EB_COLUMN_ORDER, WITHIN_TYPE_ORDER_RULES  # noqa: F401  (EB_COLUMN_ORDER: public, not in __all__)
from .base import _NestedBase  # noqa: F401  (old private name)
from .common import AnnotationScope, NormalizationScope, WeightMode  # noqa: F401  (argument types)
from .heatmap import plot_type_heatmap
from .io import open_dataarray, open_matrix, save_dataarray
from .layout import _write_array  # noqa: F401  (old private name; the patch point of layout._writer)
from .nested import DirectedNestedMatrix, NestedMatrix
from .select import All, NeuropilCollection

__all__ = [
    "All",
    "DenseMatrixTooLarge",
    "DirectedNestedMatrix",
    "NestedMatrix",
    "NeuropilCollection",
    "WITHIN_TYPE_ORDER_RULES",
    "max_dense_bytes",
    "natural_type_order",
    "open_dataarray",
    "open_matrix",
    "plot_type_heatmap",
    "save_dataarray",
]
