"""Doctest namespace: examples in docstrings run against a real tiny store.

Every doctest in ``connectome_dask/`` sees these names (besides the module's
own globals):

``cd``, ``np``, ``pd``
    ``connectome_dask``, ``numpy``, ``pandas``.
``conn``
    A small synthetic store (400 neurons, 30,000 synapses, ``seed=0``) with
    ROIs assigned from its procedural neuropil meshes and a few SWC
    skeletons. Built once per session; it is also the default connectome
    (as if opened with ``cd.open``), so ``client=None`` queries use it.
    Treat it as read-only: examples that write make their own copy
    (``shutil.copytree(conn.path, tmp_path / "copy")``).
``tmp_path``
    A fresh per-example directory.
``some_body``, ``some_type``
    The body ID of the first neuron and its cell type.
``some_roi``
    The ROI holding the most postsynaptic sites.
``skeleton_body``
    A body ID that has an SWC skeleton in the store.

The store is only built when a doctest runs, and the previous default
connectome is restored after each example, so ``tests/`` is unaffected.
Progress bars are switched off (``connectome_dask.progress: False``) while an
example runs: distributed's text bar writes to stdout, which doctest compares.
"""

from __future__ import annotations

import pytest

# Import the package before pytest collects its modules: with
# ``--import-mode=importlib``, collecting e.g. ``connectome_dask/store.py`` while
# the package is not yet imported executes that file a second time as a new
# module object, so ``cd.open`` / ``cd.set_default_connectome`` and the doctest's
# globals would live in two different copies of ``store``.
import connectome_dask  # noqa: F401, E402


@pytest.fixture(scope="session")
def _doctest_store(tmp_path_factory):
    """Build the shared doctest store once (about 6 s on 2 cores)."""
    import numpy as np

    import connectome_dask as cd

    root = tmp_path_factory.mktemp("doctest_store")
    conn = cd.datasets.synthetic(root / "store", n_neurons=400, n_synapses=30_000, seed=0,
                                 skeletons=8, progress=False)
    conn = conn.assign_rois(cd.datasets.meshes_for(conn), progress=False)
    conn = cd.open(conn.path, set_default=False)
    roi_post = conn.read_synapses(["roi_post"], 0, conn.n_synapses)["roi_post"]
    codes, counts = np.unique(roi_post[roi_post >= 0], return_counts=True)
    first = conn.neurons.iloc[0]
    skeletons = sorted(int(p.stem) for p in conn.skeleton_dir.glob("*.swc"))
    return {
        "conn": conn,
        "some_body": int(first["bodyId"]),
        "some_type": str(first["type"]),
        "some_roi": conn.roi_names[int(codes[counts.argmax()])],
        "skeleton_body": skeletons[0],
    }


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace, tmp_path):
    import numpy as np
    import pandas as pd

    import connectome_dask as cd

    doctest_namespace.update(cd=cd, np=np, pd=pd, tmp_path=tmp_path)
    if type(request.node).__name__ != "DoctestItem":
        yield
        return
    import dask

    values = request.getfixturevalue("_doctest_store")
    doctest_namespace.update(values)
    previous = cd.store._default
    cd.set_default_connectome(values["conn"])
    try:
        with dask.config.set({"connectome_dask.progress": False}):
            yield
    finally:
        cd.set_default_connectome(previous)
