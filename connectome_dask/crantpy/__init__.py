"""``import connectome_dask.crantpy as cp``: crantpy's query namespace on a local store.

A crantpy notebook ports by changing its import: ``import crantpy as cp``
becomes ``import connectome_dask.crantpy as cp`` (and ``from crantpy.queries
import ...`` becomes ``from connectome_dask.crantpy.queries import ...``).
The names of ``crantpy.queries`` are here with crantpy's signatures and
defaults: :class:`NestedMatrix`, :class:`DirectedNestedMatrix`,
:class:`NeuropilCollection`, :data:`All`, :func:`attach_synapses`,
:func:`get_adjacency`, :func:`get_connectivity`, :func:`get_synapse_counts`,
:func:`get_synapses`.

What differs from crantpy, on purpose:

* the server-only arguments ``materialization`` and ``update_ids`` are
  accepted and have no effect (a store is one materialization with fixed
  IDs); ``dataset`` is ``None`` (the default connectome), an open
  :class:`~connectome_dask.store.Connectome` or a store path;
* every nested-matrix constructor also takes a Connectome or a dask
  DataFrame (whole brain: sparse inside, ``.matrix`` dense only when it fits);
* ``from_synapses_by_neuropil`` tests containment against ``rois=`` (a
  :class:`connectome_dask.rois.RoiSet`); a Connectome uses ``rois=`` or its
  own meshes (the same result as a DataFrame of its synapses), and only a
  store without meshes its ROI codes and hierarchy.

Settings
--------
:data:`SCALE` (``SCALE_X, SCALE_Y, SCALE_Z``): crantpy's nm per pixel,
``(8, 8, 42)``, used by ``get_synapses(return_pixels=True)`` and
``from_synapses_by_neuropil(coordinates="pixels")`` when no ``voxel_size`` is
given. :func:`set_scale` changes it for later calls.

Logging: the nested matrices log crantpy's WARNING messages (neurons missing
from annotations or without a type, EPG/PEG neurons without an EB column
label) and its INFO messages on the ``connectome_dask.crantpy`` logger.

Examples
--------
>>> import pandas as pd
>>> import connectome_dask.crantpy as cp
>>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [3, 4, 3]})
>>> ann = pd.DataFrame({"root_id": [1, 2, 3, 4], "cell_type": ["KC", "KC", "MB", "MB"]})
>>> m = cp.NestedMatrix.from_synapses(syn, ann, weight_mode="count")
>>> m.sum_type_matrix.loc["KC", "MB"]
np.float64(3.0)
>>> cp.SCALE
(8.0, 8.0, 42.0)
"""

from __future__ import annotations

from ..errors import ConnectomeDaskError
from ..matrix import common as _mcommon
from . import queries
from .queries import (
    All,
    DirectedNestedMatrix,
    NestedMatrix,
    NeuropilCollection,
    attach_synapses,
    get_adjacency,
    get_connectivity,
    get_synapse_counts,
    get_synapses,
)

__all__ = [
    "All",
    "DirectedNestedMatrix",
    "NestedMatrix",
    "NeuropilCollection",
    "SCALE",
    "SCALE_X",
    "SCALE_Y",
    "SCALE_Z",
    "attach_synapses",
    "get_adjacency",
    "get_connectivity",
    "get_synapse_counts",
    "get_synapses",
    "queries",
    "set_scale",
]

#: crantpy's dataset scale, nm per pixel (x, y, z), at import time; :func:`set_scale` changes it.
SCALE: tuple[float, float, float] = _mcommon.DEFAULT_VOXEL_SIZE
SCALE_X, SCALE_Y, SCALE_Z = SCALE


def set_scale(x: float, y: float, z: float) -> tuple[float, float, float]:
    """Set the nm-per-pixel scale used for pixel coordinates from now on; returns the previous one.

    Parameters
    ----------
    x, y, z
        nm per pixel along each axis (positive).

    Returns
    -------
    tuple of float
        The previous scale.

    Raises
    ------
    ValueError
        A value is not a positive number.

    Examples
    --------
    >>> old = set_scale(4, 4, 40)
    >>> set_scale(*old)
    (4.0, 4.0, 40.0)
    """
    global SCALE, SCALE_X, SCALE_Y, SCALE_Z
    new = (float(x), float(y), float(z))
    if not all(v > 0 for v in new):
        raise ConnectomeDaskError(f"scale must be positive numbers, got {(x, y, z)!r}")
    old = _mcommon.DEFAULT_VOXEL_SIZE
    _mcommon.DEFAULT_VOXEL_SIZE = new
    SCALE = new
    SCALE_X, SCALE_Y, SCALE_Z = new
    return old
