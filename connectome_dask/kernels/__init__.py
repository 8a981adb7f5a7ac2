"""numba kernels of the package: integer / float arrays in, arrays out.

Nothing here imports from the rest of :mod:`connectome_dask` (no store, no
labels, no dask), so the kernels can be compiled, cached (``cache=True``
keeps one cache per module file) and tested on their own.

``pairs``
    Run-length pair counting over ``(pre, post)``-sorted synapse rows,
    row filters, scatter-add of pair counts into dense group blocks.
``containment``
    Exact mesh containment on a voxel label grid (used by
    :mod:`connectome_dask.rois`).
``scatter``
    Stable counting-sort scatter (used by the store's index build).
"""

__all__: list[str] = []  # the kernels are in the submodules (imported by name, e.g. ``kernels.pairs``)
